/* The tokenizer's tables, shared by the files of src/text (load, regex, NFC, encode, decode).
 * Not part of the API: other modules include text/tokenizer.h. */
#ifndef VLM_TEXT_TOKENIZER_INTERNAL_H
#define VLM_TEXT_TOKENIZER_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "base/memory.h"
#include "io/file.h"
#include "io/json.h"
#include "text/tokenizer.h"
#include "text/tokenizer_json.h"

enum { VLM_TOK_PRESENT = 1, VLM_TOK_ADDED = 2, VLM_TOK_SPECIAL = 4 };
enum {
    VLM_TOK_ID_BITS = 20,          /* ids < 2^20 and ranks < 2^24 - 1: a merge packs into 64 bits */
    VLM_TOK_MAX_SPLITS = 4,        /* regex split stages */
    VLM_TOK_CACHE_SLOTS = 1 << 16, /* piece cache: direct-mapped */
    VLM_TOK_CACHE_MAX_PIECE = 48,  /* longer pieces are not cached */
    VLM_TOK_CACHE_ARENA = 4 << 20,
    VLM_TOK_LINEAR_MAX = 96, /* BPE on longer pieces uses a heap */
};

/* A compiled regex of a Split stage. */
typedef struct {
    pcre2_code *code;
    pcre2_match_data *md;
    int jit; /* pcre2_jit_compile succeeded */
} vlm_tok_regex;

typedef struct {
    int32_t id;
    uint32_t len;
    const char *content; /* into vlm_tokenizer.forms */
} vlm_tok_added;

/* string -> id, open addressing over a power-of-two table. A slot holds its key inline when it
 * fits (nearly every token), so a lookup costs one cache miss; loading does ~450k lookups in
 * random order, and misses are what it waits on. */
enum { VLM_TOK_MAP_INLINE = 24 };
typedef struct {
    int32_t id; /* -1: empty */
    uint32_t len;
    union {
        char s[VLM_TOK_MAP_INLINE]; /* len <= VLM_TOK_MAP_INLINE */
        uint32_t off;               /* else: the key in t->forms */
    } key;
} vlm_tok_map_slot;
typedef struct {
    vlm_tok_map_slot *slot;
    size_t mask;
} vlm_tok_map;

/* A cached piece: short ones (<= 12 bytes, <= 3 ids: most words) entirely in the 32-byte slot,
 * so a hit costs one cache miss; longer ones in cache_arena. */
enum { VLM_TOK_SLOT_BYTES = 12, VLM_TOK_SLOT_IDS = 3 };
typedef struct {
    uint32_t hash; /* high half of the piece's hash */
    uint8_t len;   /* piece bytes; 0: empty slot */
    uint8_t n;     /* ids */
    uint16_t pad;
    union {
        struct {
            char bytes[VLM_TOK_SLOT_BYTES];
            int32_t ids[VLM_TOK_SLOT_IDS];
        } in;
        uint32_t off; /* into cache_arena: n int32 ids, then the piece bytes */
    } u;
} vlm_tok_cache_slot;

/* Scratch for one BPE word (grown as needed, kept between calls). */
typedef struct {
    int32_t *id, *prev, *next;
    uint32_t *rank; /* rank of the pair (i, next[i]); UINT32_MAX: none */
    uint64_t *heap; /* (rank << 32 | left index) entries, min-heap */
    size_t cap, heap_n;
} vlm_tok_bpe;

struct vlm_tokenizer {
    char path[VLM_PATH_MAX];
    int32_t n_ids;
    uint8_t *flags; /* VLM_TOK_* per id */
    char *forms;    /* vocabulary forms and added-token contents */
    size_t forms_len, forms_cap;
    uint32_t *raw_off, *raw_len; /* per id: the bytes it decodes to */
    char *raw;
    size_t raw_len_total;
    size_t max_token_bytes;
    vlm_tok_map vocab;    /* forms of the vocabulary (not added tokens) */
    int32_t byte_id[256]; /* the token of each single byte */

    uint64_t *merge_tab; /* (left << 44 | right << 24 | rank + 1); 0: empty */
    size_t merge_mask;
    int32_t *merge_result;    /* by rank */
    uint32_t *byte_pair_rank; /* [a << 8 | b]: the rank of merging byte tokens a, b (UINT32_MAX: none) */
    int n_merges;
    int ignore_merges;

    vlm_tok_added *added; /* longest first */
    int n_added;
    uint8_t added_first[256]; /* 1 when some added token starts with this byte */

    int nfc;
    vlm_tok_regex split[VLM_TOK_MAX_SPLITS];
    int n_split;
    vlm_tok_specials sp;

    /* encode state (one thread at a time) */
    size_t bpe_linear_max; /* VLM_TOK_LINEAR_MAX; tests lower it to exercise the heap */
    int cache_off;         /* tests: 1 disables the piece cache */
    vlm_tok_cache_slot *cache;
    char *cache_arena;
    size_t cache_used;
    vlm_tok_bpe bpe;
    char *norm; /* NFC output of the current segment */
    size_t norm_cap;
    int32_t *nfc_u32, *nfc_tmp; /* NFC of one window: code points, sort scratch */
    size_t nfc_cap;
    unsigned char *piece_form; /* ignore_merges: the vocabulary form of a piece */
    size_t piece_form_cap;
};

/* Hashes used by the maps and the piece cache. */
static inline uint64_t vlm_tok_hash(const void *data, size_t n) {
    const unsigned char *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ull ^ (n * 0xff51afd7ed558ccdull);
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        h = (h ^ v) * 0xbf58476d1ce4e5b9ull;
        h ^= h >> 31;
        p += 8;
        n -= 8;
    }
    if (n) {
        uint64_t v = 0;
        memcpy(&v, p, n);
        h = (h ^ v) * 0x94d049bb133111ebull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return h ^ (h >> 32);
}

static inline size_t vlm_tok_merge_slot(int32_t a, int32_t b) {
    uint64_t h = ((uint64_t)a * 0x9E3779B97F4A7C15ull) ^ ((uint64_t)b * 0xC2B2AE3D27D4EB4Full);
    return (size_t)(h >> 32);
}

/* The merge of (a, b): its rank and the merged id, or 0 when there is none. */
static inline int vlm_tok_merge_find(const vlm_tokenizer *t, int32_t a, int32_t b, uint32_t *rank, int32_t *merged) {
    uint64_t key = (uint64_t)a << 44 | (uint64_t)b << 24;
    size_t i = vlm_tok_merge_slot(a, b) & t->merge_mask;
    for (;;) {
        uint64_t e = t->merge_tab[i];
        if (!e) return 0;
        if ((e & ~(uint64_t)0xFFFFFF) == key) {
            *rank = (uint32_t)(e & 0xFFFFFF) - 1;
            *merged = t->merge_result[*rank];
            return 1;
        }
        i = (i + 1) & t->merge_mask;
    }
}

/* tokenizer_vocab.c: what loading collects before the tables are built. */
typedef struct {
    int32_t id;
    uint32_t off, len; /* the form in t->forms */
} vlm_tok_entry;
typedef struct {
    int32_t a, b, r; /* left, right, merged */
} vlm_tok_merge;
typedef struct {
    vlm_tok_entry *v; /* model.vocab in file order */
    size_t n, cap;
    vlm_tok_merge *m; /* model.merges by rank */
    size_t n_m, cap_m;
    int have_vocab, have_merges;
} vlm_tok_build;
vlm_status vlm_tok_forms_add(vlm_tokenizer *t, const char *s, size_t n, uint32_t *off);
/* Reads the vocab object at the scanner and builds t->vocab. */
vlm_status vlm_tok_read_vocab(vlm_tokenizer *t, vlm_tokjs *js, vlm_tok_build *b);
/* Reads the merges array at the scanner (t->vocab must exist). */
vlm_status vlm_tok_read_merges(vlm_tokenizer *t, vlm_tokjs *js, vlm_tok_build *b);
/* The per-id tables, byte ids and the merge table (after the added tokens are read). */
vlm_status vlm_tok_build_tables(vlm_tokenizer *t, const vlm_tok_build *b);
/* Vocabulary lookup by form (-1: none); _h with the key's vlm_tok_hash already computed. */
int32_t vlm_tok_map_get(const vlm_tokenizer *t, const vlm_tok_map *m, const char *s, size_t n);
int32_t vlm_tok_map_get_h(const vlm_tokenizer *t, const vlm_tok_map *m, const char *s, size_t n, uint64_t h);

/* tokenizer_regex.c: the pre-tokenizer's regexes. */
/* Rewrites \s and \S of a pattern to the Unicode White_Space class (see tokenizer.h). */
vlm_status vlm_tok_regex_rewrite(const char *pat, size_t n, char **out, size_t *out_len);
vlm_status vlm_tok_regex_compile(vlm_tok_regex *r, const char *pat, size_t n, const char *what);
void vlm_tok_regex_free(vlm_tok_regex *r);
/* Reads the normalizer, pre_tokenizer, decoder and model options of the file into t. */
vlm_status vlm_tok_read_pipeline(vlm_tokenizer *t, const cJSON *normalizer, const cJSON *pre_tokenizer,
                                 const cJSON *decoder);

/* tokenizer_nfc.c: NFC of a segment. *out is the text itself when it is already normalized,
 * else points into t->norm. */
vlm_status vlm_tok_nfc(vlm_tokenizer *t, const char *s, size_t n, const char **out, size_t *out_len);

/* detok.c: the bytes of a token string under the ByteLevel decoder: each character mapped back
 * to its byte, or the string's own bytes when some character is not in the byte map. Writes at
 * most n bytes to out; returns the count. */
size_t vlm_tok_bytelevel_decode(const char *s, size_t n, char *out);
/* The byte-level character (as a code point) of each byte. */
uint32_t vlm_tok_byte_char(unsigned b);

#endif
