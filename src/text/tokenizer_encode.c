/* Encoding: added tokens first, then per segment NFC -> regex split(s) -> byte-level BPE, with a
 * cache of recent pieces (most words repeat). */
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"

/* ---- id arrays ---- */

vlm_status vlm_ids_reserve(vlm_ids *ids, size_t extra) {
    if (ids->n + extra <= ids->cap) return VLM_OK;
    size_t cap = ids->cap ? ids->cap : 64;
    while (cap < ids->n + extra) cap *= 2;
    int32_t *v = vlm_realloc(ids->v, cap * sizeof *v, "token ids");
    if (!v) return VLM_ERR_NOMEM;
    ids->v = v;
    ids->cap = cap;
    return VLM_OK;
}

vlm_status vlm_ids_push(vlm_ids *ids, int32_t id) {
    if (ids->n == ids->cap) VLM_TRY(vlm_ids_reserve(ids, 1));
    ids->v[ids->n++] = id;
    return VLM_OK;
}

void vlm_ids_free(vlm_ids *ids) {
    free(ids->v);
    memset(ids, 0, sizeof *ids);
}

/* ---- BPE ---- */

static vlm_status bpe_reserve(vlm_tokenizer *t, size_t n) {
    vlm_tok_bpe *b = &t->bpe;
    if (n <= b->cap) return VLM_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < n) cap *= 2;
    int32_t *id = vlm_realloc(b->id, cap * sizeof *id, "BPE state");
    if (id) b->id = id;
    int32_t *prev = id ? vlm_realloc(b->prev, cap * sizeof *prev, "BPE state") : NULL;
    if (prev) b->prev = prev;
    int32_t *next = prev ? vlm_realloc(b->next, cap * sizeof *next, "BPE state") : NULL;
    if (next) b->next = next;
    uint32_t *rank = next ? vlm_realloc(b->rank, cap * sizeof *rank, "BPE state") : NULL;
    if (rank) b->rank = rank;
    uint64_t *heap = rank ? vlm_realloc(b->heap, 3 * cap * sizeof *heap, "BPE state") : NULL;
    if (heap) b->heap = heap;
    if (!heap) return vlm_err_ctx(VLM_ERR_NOMEM, "BPE of a piece of %zu bytes", n);
    b->cap = cap;
    return VLM_OK;
}

/* rank[i]: the rank of the pair (i, next[i]); the merged id is read from merge_result[rank]. */
static inline void set_rank(const vlm_tokenizer *t, vlm_tok_bpe *b, int32_t i) {
    int32_t j = b->next[i];
    uint32_t r;
    int32_t m;
    b->rank[i] = (j >= 0 && vlm_tok_merge_find(t, b->id[i], b->id[j], &r, &m)) ? r : UINT32_MAX;
}

static void merge_at(const vlm_tokenizer *t, vlm_tok_bpe *b, int32_t i) {
    int32_t j = b->next[i];
    b->id[i] = t->merge_result[b->rank[i]];
    b->id[j] = -1;
    b->rank[j] = UINT32_MAX; /* removed: never the minimum */
    b->next[i] = b->next[j];
    if (b->next[j] >= 0) b->prev[b->next[j]] = i;
}

/* Short words: scan for the lowest rank (leftmost on ties) after each merge. The scan runs over
 * the whole array (removed symbols have no rank), not the linked list: no dependent loads. */
static void bpe_linear(const vlm_tokenizer *t, vlm_tok_bpe *b, int32_t n) {
    for (;;) {
        uint32_t best = UINT32_MAX;
        int32_t bi = -1;
        for (int32_t i = 0; i < n; i++)
            if (b->rank[i] < best) {
                best = b->rank[i];
                bi = i;
            }
        if (bi < 0) return;
        merge_at(t, b, bi);
        set_rank(t, b, bi);
        if (b->prev[bi] >= 0) set_rank(t, b, b->prev[bi]);
    }
}

static void heap_push(vlm_tok_bpe *b, uint64_t e) {
    size_t i = b->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (b->heap[p] <= e) break;
        b->heap[i] = b->heap[p];
        i = p;
    }
    b->heap[i] = e;
}

static uint64_t heap_pop(vlm_tok_bpe *b) {
    uint64_t top = b->heap[0], e = b->heap[--b->heap_n];
    size_t i = 0, n = b->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && b->heap[c + 1] < b->heap[c]) c++;
        if (e <= b->heap[c]) break;
        b->heap[i] = b->heap[c];
        i = c;
    }
    if (n) b->heap[i] = e;
    return top;
}

/* Long words: a heap of (rank, position); entries whose pair has changed since are skipped. */
static void bpe_heap(const vlm_tokenizer *t, vlm_tok_bpe *b, int32_t n) {
    b->heap_n = 0;
    for (int32_t i = 0; i < n; i++)
        if (b->rank[i] != UINT32_MAX) heap_push(b, (uint64_t)b->rank[i] << 32 | (uint32_t)i);
    while (b->heap_n) {
        uint64_t e = heap_pop(b);
        int32_t i = (int32_t)(uint32_t)e;
        if (b->id[i] < 0 || b->rank[i] != (uint32_t)(e >> 32)) continue; /* stale */
        merge_at(t, b, i);
        set_rank(t, b, i);
        if (b->rank[i] != UINT32_MAX) heap_push(b, (uint64_t)b->rank[i] << 32 | (uint32_t)i);
        int32_t p = b->prev[i];
        if (p >= 0) {
            set_rank(t, b, p);
            if (b->rank[p] != UINT32_MAX) heap_push(b, (uint64_t)b->rank[p] << 32 | (uint32_t)p);
        }
    }
}

/* BPE of one piece; the ids are appended to *ids. */
static vlm_status bpe_piece(vlm_tokenizer *t, const unsigned char *s, size_t n, vlm_ids *ids) {
    if (n > INT32_MAX / 4) return vlm_err(VLM_ERR_UNSUPPORTED, "BPE: a piece of %zu bytes is too long", n);
    VLM_TRY(bpe_reserve(t, n));
    vlm_tok_bpe *b = &t->bpe;
    for (size_t i = 0; i < n; i++) {
        b->id[i] = t->byte_id[s[i]];
        b->prev[i] = (int32_t)i - 1;
        b->next[i] = i + 1 < n ? (int32_t)i + 1 : -1;
    }
    /* the first pairs are byte pairs: a small table answers them without the big one */
    for (size_t i = 0; i + 1 < n; i++) b->rank[i] = t->byte_pair_rank[s[i] << 8 | s[i + 1]];
    b->rank[n - 1] = UINT32_MAX;
    if (n <= t->bpe_linear_max) bpe_linear(t, b, (int32_t)n);
    else bpe_heap(t, b, (int32_t)n);
    size_t count = 0;
    for (int32_t i = 0; i >= 0; i = b->next[i]) count++;
    VLM_TRY(vlm_ids_reserve(ids, count));
    for (int32_t i = 0; i >= 0; i = b->next[i]) ids->v[ids->n++] = b->id[i];
    return VLM_OK;
}

/* The piece as one vocabulary entry (ignore_merges): -1 when it is not one. */
static int32_t whole_piece(vlm_tokenizer *t, const unsigned char *s, size_t n) {
    if (t->piece_form_cap < 2 * n) {
        unsigned char *p = vlm_realloc(t->piece_form, 2 * n, "a piece's vocabulary form");
        if (!p) return -1; /* then BPE runs, which gives the same ids for a vocabulary word */
        t->piece_form = p;
        t->piece_form_cap = 2 * n;
    }
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = vlm_tok_byte_char(s[i]);
        if (cp < 0x80) t->piece_form[m++] = (unsigned char)cp;
        else {
            t->piece_form[m++] = (unsigned char)(0xC0 | cp >> 6);
            t->piece_form[m++] = (unsigned char)(0x80 | (cp & 0x3F));
        }
    }
    return vlm_tok_map_get(t, &t->vocab, (const char *)t->piece_form, m);
}

static int slot_inline(size_t len, size_t n) { return len <= VLM_TOK_SLOT_BYTES && n <= VLM_TOK_SLOT_IDS; }

/* The cached ids of a piece, or NULL. */
static const int32_t *cache_get(const vlm_tokenizer *t, const vlm_tok_cache_slot *slot, uint32_t h,
                                const unsigned char *s, size_t n) {
    if (slot->hash != h || slot->len != n) return NULL;
    if (slot_inline(n, slot->n)) return memcmp(slot->u.in.bytes, s, n) ? NULL : slot->u.in.ids;
    const char *a = t->cache_arena + slot->u.off;
    return memcmp(a + 4u * slot->n, s, n) ? NULL : (const int32_t *)a;
}

static void cache_put(vlm_tokenizer *t, vlm_tok_cache_slot *slot, uint32_t h, const unsigned char *s, size_t n,
                      const int32_t *ids, size_t count) {
    if (count > 255) return;
    if (!slot_inline(n, count)) {
        size_t need = 4 * count + ((n + 3) & ~(size_t)3);
        if (t->cache_used + need > VLM_TOK_CACHE_ARENA) { /* full: start over */
            memset(t->cache, 0, VLM_TOK_CACHE_SLOTS * sizeof *t->cache);
            t->cache_used = 0;
        }
        slot->u.off = (uint32_t)t->cache_used;
        memcpy(t->cache_arena + t->cache_used, ids, 4 * count);
        memcpy(t->cache_arena + t->cache_used + 4 * count, s, n);
        t->cache_used += need;
    } else {
        memcpy(slot->u.in.bytes, s, n);
        memcpy(slot->u.in.ids, ids, 4 * count);
    }
    slot->hash = h;
    slot->len = (uint8_t)n;
    slot->n = (uint8_t)count;
}

static vlm_status encode_piece(vlm_tokenizer *t, const unsigned char *s, size_t n, vlm_ids *ids) {
    if (n == 1) return vlm_ids_push(ids, t->byte_id[s[0]]);
    vlm_tok_cache_slot *slot = NULL;
    uint32_t h = 0;
    if (n <= VLM_TOK_CACHE_MAX_PIECE && !t->cache_off) {
        uint64_t h64 = vlm_tok_hash(s, n);
        h = (uint32_t)(h64 >> 32);
        slot = &t->cache[h64 & (VLM_TOK_CACHE_SLOTS - 1)];
        const int32_t *hit = cache_get(t, slot, h, s, n);
        if (hit) {
            VLM_TRY(vlm_ids_reserve(ids, slot->n));
            memcpy(ids->v + ids->n, hit, 4u * slot->n);
            ids->n += slot->n;
            return VLM_OK;
        }
    }
    size_t before = ids->n;
    int32_t whole = t->ignore_merges ? whole_piece(t, s, n) : -1;
    if (whole >= 0) VLM_TRY(vlm_ids_push(ids, whole));
    else VLM_TRY(bpe_piece(t, s, n, ids));
    if (slot) cache_put(t, slot, h, s, n, ids->v + before, ids->n - before);
    return VLM_OK;
}

/* ---- pre-tokenization ---- */

static size_t next_char(const unsigned char *s, size_t n, size_t i) {
    i++;
    while (i < n && (s[i] & 0xC0) == 0x80) i++;
    return i;
}

/* Split stage `stage` over s[0, n): matches and the gaps between them are both pieces
 * (behavior Isolated), each cut further by the next stage, then encoded. */
static vlm_status split(vlm_tokenizer *t, int stage, const unsigned char *s, size_t n, vlm_ids *ids) {
    if (stage >= t->n_split || stage >= VLM_TOK_MAX_SPLITS) return encode_piece(t, s, n, ids);
    const vlm_tok_regex *r = &t->split[stage];
    size_t pos = 0, start = 0;
    while (start < n) {
        int rc = r->jit ? pcre2_jit_match(r->code, s, n, start, 0, r->md, NULL)
                        : pcre2_match(r->code, s, n, start, 0, r->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return vlm_err(VLM_ERR_RUNTIME, "%s: pre-tokenizer regex failed at byte %zu of a %zu-byte segment: %s",
                           t->path, start, n, (const char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(r->md);
        size_t ms = ov[0], me = ov[1];
        if (me <= ms) { /* an empty match: move on, it stays in the gap */
            start = next_char(s, n, ms);
            continue;
        }
        if (ms > pos) VLM_TRY(split(t, stage + 1, s + pos, ms - pos, ids));
        VLM_TRY(split(t, stage + 1, s + ms, me - ms, ids));
        pos = start = me;
    }
    if (pos < n) VLM_TRY(split(t, stage + 1, s + pos, n - pos, ids));
    return VLM_OK;
}

static vlm_status encode_segment(vlm_tokenizer *t, const char *s, size_t n, vlm_ids *ids) {
    const char *norm = s;
    size_t nn = n;
    if (t->nfc) VLM_TRY(vlm_tok_nfc(t, s, n, &norm, &nn));
    return split(t, 0, (const unsigned char *)norm, nn, ids);
}

/* ---- added tokens ---- */

/* The leftmost added token at or after `from`, the longest there. */
static const vlm_tok_added *find_added(const vlm_tokenizer *t, const char *s, size_t n, size_t from, size_t *at) {
    for (size_t i = from; i < n; i++) {
        if (!t->added_first[(unsigned char)s[i]]) continue;
        for (int k = 0; k < t->n_added; k++) {
            const vlm_tok_added *a = &t->added[k];
            if (a->len <= n - i && a->content[0] == s[i] && !memcmp(a->content, s + i, a->len)) {
                *at = i;
                return a;
            }
        }
    }
    return NULL;
}

vlm_status vlm_tok_encode(vlm_tokenizer *t, const char *text, size_t len, vlm_ids *ids) {
    size_t seg = 0, at;
    const vlm_tok_added *a;
    if (!text) len = 0;
    while (seg < len && (a = find_added(t, text, len, seg, &at)) != NULL) {
        if (at > seg) VLM_TRY(encode_segment(t, text + seg, at - seg, ids));
        VLM_TRY(vlm_ids_push(ids, a->id));
        seg = at + a->len;
    }
    if (seg < len) VLM_TRY(encode_segment(t, text + seg, len - seg, ids));
    return VLM_OK;
}
