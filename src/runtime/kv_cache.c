/* Block bookkeeping of the KV pool: reference counts, the free list and the hash table of cached
 * blocks. See kv_cache.h. */
#include "runtime/kv_cache.h"

#include <string.h>

#include "base/memory.h"

vlm_status vlm_kvc_init(vlm_kv_cache *c, int n_blocks) {
    memset(c, 0, sizeof *c);
    if (n_blocks < 1) return vlm_err(VLM_ERR_INVALID, "a KV cache of %d blocks", n_blocks);
    int nb = 1;
    while (nb < n_blocks) nb *= 2;
    size_t n = (size_t)n_blocks;
    c->ref = vlm_calloc(n, sizeof *c->ref, "KV block references");
    c->hash = vlm_calloc(n, sizeof *c->hash, "KV block hashes");
    c->hashed = vlm_calloc(n, sizeof *c->hashed, "KV block hashes");
    c->prev = vlm_alloc(n * sizeof *c->prev, "the KV free list");
    c->next = vlm_alloc(n * sizeof *c->next, "the KV free list");
    c->chain = vlm_alloc(n * sizeof *c->chain, "the KV block table");
    c->bucket = vlm_alloc((size_t)nb * sizeof *c->bucket, "the KV block table");
    if (!c->ref || !c->hash || !c->hashed || !c->prev || !c->next || !c->chain || !c->bucket) {
        vlm_kvc_free(c);
        return VLM_ERR_NOMEM;
    }
    c->n_blocks = n_blocks;
    c->n_buckets = nb;
    for (int i = 0; i < nb; i++) c->bucket[i] = -1;
    for (int i = 0; i < n_blocks; i++) { /* every block free, in order */
        c->prev[i] = i - 1;
        c->next[i] = i + 1 < n_blocks ? i + 1 : -1;
        c->chain[i] = -1;
    }
    c->head = 0;
    c->tail = n_blocks - 1;
    c->n_free = n_blocks;
    return VLM_OK;
}

void vlm_kvc_free(vlm_kv_cache *c) {
    vlm_free(c->ref);
    vlm_free(c->hash);
    vlm_free(c->hashed);
    vlm_free(c->prev);
    vlm_free(c->next);
    vlm_free(c->chain);
    vlm_free(c->bucket);
    memset(c, 0, sizeof *c);
}

static int bucket_of(const vlm_kv_cache *c, const vlm_block_hash *h) {
    uint32_t v;
    memcpy(&v, h->h, sizeof v);
    return (int)(v & (uint32_t)(c->n_buckets - 1));
}

static void unlink_free(vlm_kv_cache *c, int b) {
    if (c->prev[b] >= 0) c->next[c->prev[b]] = c->next[b];
    else c->head = c->next[b];
    if (c->next[b] >= 0) c->prev[c->next[b]] = c->prev[b];
    else c->tail = c->prev[b];
    c->prev[b] = c->next[b] = -1;
    c->n_free--;
}

static void push_free(vlm_kv_cache *c, int b, int at_head) {
    if (at_head) {
        c->prev[b] = -1;
        c->next[b] = c->head;
        if (c->head >= 0) c->prev[c->head] = b;
        else c->tail = b;
        c->head = b;
    } else {
        c->next[b] = -1;
        c->prev[b] = c->tail;
        if (c->tail >= 0) c->next[c->tail] = b;
        else c->head = b;
        c->tail = b;
    }
    c->n_free++;
}

/* Takes b out of the hash table. */
static void forget(vlm_kv_cache *c, int b) {
    if (!c->hashed[b]) return;
    int *link = &c->bucket[bucket_of(c, &c->hash[b])];
    while (*link >= 0 && *link != b) link = &c->chain[*link];
    if (*link == b) *link = c->chain[b];
    c->chain[b] = -1;
    c->hashed[b] = 0;
}

int vlm_kvc_alloc(vlm_kv_cache *c) {
    int b = c->head;
    if (b < 0) return -1;
    unlink_free(c, b);
    forget(c, b);
    c->ref[b] = 1;
    return b;
}

void vlm_kvc_retain(vlm_kv_cache *c, int b) {
    if (c->ref[b]++ == 0) unlink_free(c, b);
}

void vlm_kvc_release(vlm_kv_cache *c, int b) {
    if (c->ref[b] <= 0) return;
    if (--c->ref[b] == 0) push_free(c, b, !c->hashed[b]); /* empty ones are reused first */
}

int vlm_kvc_find(const vlm_kv_cache *c, const vlm_block_hash *h) {
    for (int b = c->bucket[bucket_of(c, h)]; b >= 0; b = c->chain[b])
        if (!memcmp(c->hash[b].h, h->h, sizeof h->h)) return b;
    return -1;
}

void vlm_kvc_publish(vlm_kv_cache *c, int b, const vlm_block_hash *h) {
    if (c->hashed[b] || vlm_kvc_find(c, h) >= 0) return;
    c->hash[b] = *h;
    c->hashed[b] = 1;
    int *head = &c->bucket[bucket_of(c, h)];
    c->chain[b] = *head;
    *head = b;
}

vlm_status vlm_block_hashes(const int32_t *ids, int n_ids, int block_tokens, const uint8_t (*image_hash)[32],
                            const int32_t (*image_grid)[3], const int *image_start, const int *image_tokens,
                            int n_images, vlm_block_hash *out) {
    int n_full = n_ids / block_tokens;
    for (int i = 0; i < n_full; i++) {
        int p0 = i * block_tokens, p1 = p0 + block_tokens;
        vlm_sha256 h;
        VLM_TRY(vlm_sha256_begin(&h));
        if (i) vlm_sha256_update(&h, out[i - 1].h, sizeof out[i - 1].h);
        vlm_sha256_update(&h, ids + p0, (size_t)block_tokens * sizeof *ids);
        for (int k = 0; k < n_images; k++)
            if (image_start[k] < p1 && image_start[k] + image_tokens[k] > p0) {
                int32_t where[2] = {k, image_start[k]}; /* which image, and where its pads begin */
                vlm_sha256_update(&h, where, sizeof where);
                vlm_sha256_update(&h, image_hash[k], 32);
                vlm_sha256_update(&h, image_grid[k], 3 * sizeof(int32_t));
            }
        VLM_TRY(vlm_sha256_final(&h, out[i].h));
    }
    return VLM_OK;
}
