/* Stop strings with held-back streaming: generation ends when the answer's text contains one of
 * the strings; the answer ends just before it. Text is released to the stream as soon as it can no
 * longer be the start of a stop string, so a streamed answer never shows part of one.
 *
 *   vlm_stop_matcher sm;  vlm_stop_init(&sm, stops, n);
 *   for each piece of text:  hit = vlm_stop_push(&sm, piece, len, &out, &out_len);  stream(out, out_len);
 *                            if (hit) break;
 *   vlm_stop_flush(&sm, &out, &out_len);  stream(out, out_len);     what was held back, at the end
 *   sm.text.data: the whole answer (cut before the stop string)
 *
 * Only generated text is searched (a stop string in the prompt does not end anything), and a match
 * may span pieces. With no stop strings everything is released at once. */
#ifndef VLM_TEXT_STOP_STRINGS_H
#define VLM_TEXT_STOP_STRINGS_H

#include <stddef.h>

#include "io/json.h"

typedef struct {
    char **stops; /* owned copies */
    size_t *lens;
    int n;
    size_t max_len;
    vlm_strbuf text; /* the answer so far (released and held-back text) */
    size_t released; /* bytes of text already released */
    int matched;     /* a stop string was found; text ends before it */
} vlm_stop_matcher;

/* Copies the strings. VLM_ERR_INVALID for an empty or NULL stop string (it would match at once). */
vlm_status vlm_stop_init(vlm_stop_matcher *sm, const char *const *stops, int n);
/* Appends a piece; *out / *out_len receive the text that can be released now (valid until the next
 * call). Returns 1 when a stop string completed (the text is cut before it; push no more). */
int vlm_stop_push(vlm_stop_matcher *sm, const char *piece, size_t len, const char **out, size_t *out_len);
/* Releases what was held back (the answer ended without completing a stop string). */
void vlm_stop_flush(vlm_stop_matcher *sm, const char **out, size_t *out_len);
/* 0 when memory ran out while the text grew (the text is then incomplete). */
int vlm_stop_ok(const vlm_stop_matcher *sm);
void vlm_stop_free(vlm_stop_matcher *sm);

#endif
