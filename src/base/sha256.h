/* SHA-256 (OpenSSL's libcrypto), for content identities that must not collide: an image's encoded
 * bytes, and the chained hashes of KV-cache blocks that requests share. A 64-bit hash would let a
 * chance (or crafted) collision hand one request another's cached keys and values. */
#ifndef VLM_BASE_SHA256_H
#define VLM_BASE_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

enum { VLM_SHA256_BYTES = 32 };

typedef struct {
    void *ctx; /* OpenSSL's EVP_MD_CTX */
} vlm_sha256;

/* The digest of n bytes in one call. */
vlm_status vlm_sha256_bytes(const void *data, size_t n, uint8_t out[VLM_SHA256_BYTES]);

/* Incremental: begin, update (any number of times), final (which also releases the context). */
vlm_status vlm_sha256_begin(vlm_sha256 *h);
void vlm_sha256_update(vlm_sha256 *h, const void *data, size_t n);
vlm_status vlm_sha256_final(vlm_sha256 *h, uint8_t out[VLM_SHA256_BYTES]);

#endif
