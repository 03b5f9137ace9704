/* Byte-level BPE tokenizer read from a Hugging Face tokenizer.json (the kind Qwen2, Qwen2-VL and
 * Qwen2.5-VL use), one-shot decoding, and a streaming detokenizer for generation.
 *
 * What a file may contain (anything else is refused with VLM_ERR_UNSUPPORTED, naming the part):
 *   model          "BPE" (or untyped with vocab + merges); merges as "left right" strings or
 *                  ["left", "right"] pairs; ignore_merges honoured; no byte_fallback, no dropout,
 *                  no continuing_subword_prefix / end_of_word_suffix. Unigram, WordPiece and
 *                  WordLevel are refused.
 *   added_tokens   special or not; lstrip / rstrip / single_word must be false. "normalized": true
 *                  is accepted but such tokens are matched in the raw text like the others.
 *   normalizer     null, NFC, or a Sequence of those.
 *   pre_tokenizer  Split (Regex, behavior Isolated, not inverted) and ByteLevel (add_prefix_space
 *                  false; use_regex true adds the GPT-2 split), alone or in a Sequence.
 *   decoder        ByteLevel. post_processor: ignored (encode never adds special tokens).
 *
 * Encoding (vlm_tok_encode) follows Hugging Face `tokenizers` with add_special_tokens=False:
 *   1. the text is split on the added tokens (all of them, special or not): leftmost match, the
 *      longest one at that position; each match becomes its id, neighbours are not stripped;
 *   2. every other segment is NFC-normalized (when the file asks for it);
 *   3. each segment is cut by the Split regex(es) of the file, compiled by PCRE2 (JIT, UTF, UCP).
 *      `\s` / `\S` in the file's pattern are rewritten to the Unicode White_Space class (what the
 *      Oniguruma regexes of `tokenizers` use): PCRE2's own UCP `\s` also matches U+180E;
 *   4. each piece's bytes become byte-level symbols and are merged by BPE, lowest merge rank first
 *      (leftmost on ties); the final symbols are the ids.
 * Text is (pointer, length): NUL bytes are ordinary characters (U+0000).
 * Invalid UTF-8 (which Hugging Face never sees: Python and Rust strings are valid Unicode) is kept
 * byte for byte, not replaced: ill-formed bytes are left out of NFC, never match the regex, so each
 * run of them between two matches becomes a piece of its own, and byte-level BPE encodes those
 * bytes like any others. Decoding the ids gives the same bytes back (decode's U+FFFD rule applies
 * only to the decoded text as a whole).
 *
 * Threads: loading, lookups and decoding only read the tokenizer and may run concurrently.
 * vlm_tok_encode keeps a cache of recent pieces and scratch buffers inside the tokenizer: one
 * thread at a time per tokenizer (load a second one for a second encoding thread). */
#ifndef VLM_TEXT_TOKENIZER_H
#define VLM_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/strbuf.h"

typedef struct vlm_tokenizer vlm_tokenizer;

/* A growing array of token ids (free with vlm_ids_free; {0} is an empty array). */
typedef struct {
    int32_t *v;
    size_t n, cap;
} vlm_ids;
vlm_status vlm_ids_push(vlm_ids *ids, int32_t id);
vlm_status vlm_ids_reserve(vlm_ids *ids, size_t extra);
void vlm_ids_free(vlm_ids *ids);

/* Ids of the tokens the pipeline needs, looked up by their strings at load; -1 where the file has
 * no such token. */
typedef struct {
    int32_t endoftext;    /* <|endoftext|> (Qwen's pad token and a stop token) */
    int32_t im_start;     /* <|im_start|> */
    int32_t im_end;       /* <|im_end|> (the chat models' end of turn / eos) */
    int32_t vision_start; /* <|vision_start|> */
    int32_t vision_end;   /* <|vision_end|> */
    int32_t image_pad;    /* <|image_pad|>: one per merged image patch after expansion */
    int32_t video_pad;    /* <|video_pad|> */
} vlm_tok_specials;

/* Loads a tokenizer.json file. Errors name the file and the part at fault (a truncated file, an
 * unknown model type, a merge naming a token that is not in the vocabulary, ...). */
vlm_status vlm_tok_load(const char *path, vlm_tokenizer **out);
/* Loads the JSON text of a tokenizer.json held in memory; `name` stands for the file in messages. */
vlm_status vlm_tok_load_buffer(const char *text, size_t len, const char *name, vlm_tokenizer **out);
/* Loads <dir>/tokenizer.json (a checkpoint or split-artifact directory). */
vlm_status vlm_tok_load_dir(const char *dir, vlm_tokenizer **out);
void vlm_tok_free(vlm_tokenizer *t);

/* One more than the largest id of any token (vocabulary or added): 151665 for Qwen2.5. The model's
 * embedding may have more rows; ids at or above this, and ids in gaps, have no token. */
int32_t vlm_tok_n_ids(const vlm_tokenizer *t);
/* Number of merge rules and of added tokens. */
int vlm_tok_n_merges(const vlm_tokenizer *t);
int vlm_tok_n_added(const vlm_tokenizer *t);
const vlm_tok_specials *vlm_tok_specials_of(const vlm_tokenizer *t);

/* The id of a token given as its string: an added token's content ("<|im_end|>") or a vocabulary
 * entry in the file's byte-level form ("Ġthe"). -1 when there is none. */
int32_t vlm_tok_token_id(const vlm_tokenizer *t, const char *token);
/* The same, as a status: VLM_ERR_NOT_FOUND naming the token and the file. */
vlm_status vlm_tok_find(const vlm_tokenizer *t, const char *token, int32_t *id);
/* The bytes an id decodes to (not NUL-terminated; may be invalid UTF-8 on its own: a token can
 * hold part of a character). NULL with *len = 0 for an id without a token. */
const char *vlm_tok_id_bytes(const vlm_tokenizer *t, int32_t id, size_t *len);
/* 1 when the id is an added token marked "special" (removed by skip_special), else 0. */
int vlm_tok_is_special(const vlm_tokenizer *t, int32_t id);
/* 1 when the id is any added token (special or not). */
int vlm_tok_is_added(const vlm_tokenizer *t, int32_t id);

/* Encodes len bytes of text, appending the ids to *ids (nothing is cleared). Fails only when
 * memory runs out or the regex engine reports an error. */
vlm_status vlm_tok_encode(vlm_tokenizer *t, const char *text, size_t len, vlm_ids *ids);

/* Decodes ids in one call, appending UTF-8 text to *out: the bytes of all tokens concatenated,
 * then ill-formed bytes replaced by U+FFFD, one per maximal ill-formed subpart (Python's
 * errors="replace"). skip_special drops added tokens marked special. Ids without a token
 * decode to nothing. Fails only when memory runs out. */
vlm_status vlm_tok_decode(const vlm_tokenizer *t, const int32_t *ids, size_t n, int skip_special, vlm_strbuf *out);

/* Appends n bytes to *out as valid UTF-8, each maximal ill-formed subpart replaced by U+FFFD
 * (the rule decode and the streaming detokenizer use). */
void vlm_utf8_lossy_append(vlm_strbuf *out, const char *s, size_t n);

/* Streaming detokenizer for generation: feed ids one at a time, get the text they complete.
 *   - a regular token's bytes join a buffer; everything is emitted except a trailing valid but
 *     incomplete UTF-8 prefix (1-3 bytes), which waits for the next token; ill-formed bytes are
 *     emitted as U+FFFD, one per maximal ill-formed subpart;
 *   - an added token that is output first flushes the buffer (an incomplete prefix becomes one
 *     U+FFFD), then emits its text;
 *   - a special token skipped by skip_special, or an id without a token, emits nothing and keeps
 *     the buffer, so bytes on both sides can still join;
 *   - vlm_detok_flush emits what is left at the end the same way.
 * Concatenating everything emitted plus the flush gives exactly vlm_tok_decode's text.
 * All memory is allocated by vlm_detok_init: pushing never allocates and cannot fail. The text a
 * call returns is valid UTF-8 (possibly empty) and stays valid until the next call. The tokenizer
 * must outlive the detokenizer. */
typedef struct {
    const vlm_tokenizer *tok;
    int skip_special;
    unsigned char pending[4];
    int n_pending;
    char *out; /* emitted text of the last call */
    size_t out_cap;
    char *work; /* pending bytes + one token */
} vlm_detok;
vlm_status vlm_detok_init(vlm_detok *d, const vlm_tokenizer *t, int skip_special);
/* Feeds one id; *text / *len receive the text it completes. */
void vlm_detok_push(vlm_detok *d, int32_t id, const char **text, size_t *len);
/* Ends the stream: *text / *len receive what was still buffered; the detokenizer is then empty. */
void vlm_detok_flush(vlm_detok *d, const char **text, size_t *len);
/* Drops any buffered bytes (a new stream). */
void vlm_detok_reset(vlm_detok *d);
void vlm_detok_free(vlm_detok *d);

#endif
