/* A small validating JSON reader for tokenizer.json. cJSON builds a node per value, which costs
 * ~80 ms on the 7 MB Qwen file (150k vocabulary entries and 150k merges); this reader walks the
 * text in place, so the big vocab and merges sections are read straight into the tokenizer's
 * tables, and the small sections (added tokens, normalizer, ...) are handed to cJSON as spans.
 * Internal to src/text. */
#ifndef VLM_TEXT_TOKENIZER_JSON_H
#define VLM_TEXT_TOKENIZER_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef struct {
    const char *p, *end, *start;
    const char *what; /* the file, for messages */
    int depth;
} vlm_tokjs;

/* A reusable buffer for decoded strings (NUL-terminated; data may also hold NUL bytes). */
typedef struct {
    char *data;
    size_t len, cap;
} vlm_tokjs_buf;

void vlm_tokjs_init(vlm_tokjs *s, const char *text, size_t len, const char *what);
/* VLM_ERR_FORMAT: "<what>: <msg> at byte N" (or "truncated" when the text ended). */
vlm_status vlm_tokjs_fail(const vlm_tokjs *s, const char *msg);
void vlm_tokjs_ws(vlm_tokjs *s);
/* The next non-space character (0 at the end of the text), not consumed. */
int vlm_tokjs_peek(vlm_tokjs *s);
/* Consumes the character c (after white space) or fails. */
vlm_status vlm_tokjs_expect(vlm_tokjs *s, char c);
/* Skips one value of any kind, checking its syntax. */
vlm_status vlm_tokjs_skip(vlm_tokjs *s);
/* Reads a string value (escapes decoded, surrogate pairs joined) into b. */
vlm_status vlm_tokjs_string(vlm_tokjs *s, vlm_tokjs_buf *b);
/* Reads an integer value (no fraction or exponent) in [lo, hi]. */
vlm_status vlm_tokjs_int(vlm_tokjs *s, int64_t lo, int64_t hi, int64_t *v);
/* Inside an object or array opened with vlm_tokjs_expect('{' or '['): call before each element
 * with *index counting elements read so far (start at 0). Consumes the ',' between elements or
 * the closing character; *more = 1 when an element follows. */
vlm_status vlm_tokjs_next(vlm_tokjs *s, char close, int64_t *index, int *more);
void vlm_tokjs_buf_free(vlm_tokjs_buf *b);

#endif
