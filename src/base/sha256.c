#include "base/sha256.h"

#include <openssl/evp.h>

vlm_status vlm_sha256_bytes(const void *data, size_t n, uint8_t out[VLM_SHA256_BYTES]) {
    unsigned int len = 0;
    if (!EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) || len != VLM_SHA256_BYTES)
        return vlm_err(VLM_ERR_RUNTIME, "SHA-256 of %zu bytes failed (OpenSSL)", n);
    return VLM_OK;
}

vlm_status vlm_sha256_begin(vlm_sha256 *h) {
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    h->ctx = ctx;
    if (!ctx) return vlm_err(VLM_ERR_NOMEM, "out of memory for a SHA-256 context");
    if (!EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(ctx);
        h->ctx = NULL;
        return vlm_err(VLM_ERR_RUNTIME, "SHA-256 init failed (OpenSSL)");
    }
    return VLM_OK;
}

void vlm_sha256_update(vlm_sha256 *h, const void *data, size_t n) {
    if (h->ctx && n) EVP_DigestUpdate(h->ctx, data, n);
}

vlm_status vlm_sha256_final(vlm_sha256 *h, uint8_t out[VLM_SHA256_BYTES]) {
    unsigned int len = 0;
    int ok = h->ctx && EVP_DigestFinal_ex(h->ctx, out, &len) && len == VLM_SHA256_BYTES;
    EVP_MD_CTX_free(h->ctx);
    h->ctx = NULL;
    return ok ? VLM_OK : vlm_err(VLM_ERR_RUNTIME, "SHA-256 failed (OpenSSL)");
}
