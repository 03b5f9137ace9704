/* Base64 (RFC 4648 §4, the standard alphabet) as data: URIs carry images. No packaged library fits:
 * libcurl and libmicrohttpd keep theirs private, and OpenSSL or GLib would be a large dependency
 * for forty lines. */
#ifndef VLM_SERVE_BASE64_H
#define VLM_SERVE_BASE64_H

#include <stddef.h>

#include "base/error.h"

/* Decodes n characters of base64. ASCII whitespace is skipped (MIME wraps lines); '=' padding is
 * optional but, when present, must be where it belongs. Anything else is VLM_ERR_FORMAT naming the
 * offset and the character. *out (vlm_free) holds *out_n bytes plus a NUL. */
vlm_status vlm_base64_decode(const char *in, size_t n, unsigned char **out, size_t *out_n);

#endif
