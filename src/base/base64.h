/* Base64 (RFC 4648 §4, the standard alphabet), as data: URIs carry images: the server decodes them,
 * vlm bench --serve encodes them. No packaged library fits: libcurl and libmicrohttpd keep theirs
 * private, and OpenSSL or GLib would be large dependencies for sixty lines. */
#ifndef VLM_BASE_BASE64_H
#define VLM_BASE_BASE64_H

#include <stddef.h>

#include "base/error.h"
#include "base/strbuf.h"

/* Decodes n characters of base64. ASCII whitespace is skipped (MIME wraps lines); '=' padding is
 * optional but, when present, must be where it belongs. Anything else is VLM_ERR_FORMAT naming the
 * offset and the character. *out (vlm_free) holds *out_n bytes plus a NUL. */
vlm_status vlm_base64_decode(const char *in, size_t n, unsigned char **out, size_t *out_n);

/* Appends the base64 text of n bytes (with '=' padding, no line breaks) to out. */
void vlm_base64_encode(const void *in, size_t n, vlm_strbuf *out);

#endif
