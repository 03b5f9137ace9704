/* A growing string buffer: appends never fail loudly; a failed allocation sets `failed` and the
 * buffer keeps what fit, so a writer checks once at the end. data is NUL-terminated (NULL while
 * nothing was appended). */
#ifndef VLM_BASE_STRBUF_H
#define VLM_BASE_STRBUF_H

#include <stddef.h>

#include "base/error.h"

typedef struct {
    char *data;
    size_t len, cap;
    int failed; /* set on allocation failure; the buffer then holds what fit */
} vlm_strbuf;

void vlm_sb_append(vlm_strbuf *b, const char *s, size_t n);
void vlm_sb_printf(vlm_strbuf *b, const char *fmt, ...) VLM_PRINTF(2, 3);
void vlm_sb_free(vlm_strbuf *b);

#endif
