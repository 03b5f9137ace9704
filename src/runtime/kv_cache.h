/* The engine's bookkeeping of the KV pool's blocks (the memory itself is the model's vlm_kv_pool):
 * who uses each block, which blocks are free, and which hold a finished block of some prompt that
 * another request may share (prefix reuse).
 *
 * - A block in use has ref > 0 (the sequences whose block tables list it). A block's identity is
 *   the chained hash of its tokens (vlm_block_hashes): equal hashes mean equal tokens and images in
 *   this block and in every block before it, hence equal keys and values.
 * - Free blocks (ref 0) wait in one list: blocks without content first (reused first), then cached
 *   blocks from the least to the most recently released. Allocating takes the head; a cached block
 *   taken that way is forgotten (evicted). So cached prefixes live as long as the pool has room,
 *   and the free count counts them as free.
 * Engine thread only: no locking. */
#ifndef VLM_RUNTIME_KV_CACHE_H
#define VLM_RUNTIME_KV_CACHE_H

#include <stdint.h>

#include "base/sha256.h"

typedef struct {
    uint8_t h[VLM_SHA256_BYTES];
} vlm_block_hash;

typedef struct {
    int n_blocks;
    int *ref;               /* [n_blocks] users */
    vlm_block_hash *hash;   /* [n_blocks] identity of a cached block */
    uint8_t *hashed;        /* [n_blocks] 1 when hash is valid (the block is findable) */
    int *prev, *next;       /* [n_blocks] the free list (-1 ends) */
    int head, tail, n_free; /* free list ends and length */
    int *bucket, n_buckets; /* hash table of cached blocks: chains through chain[] */
    int *chain;
} vlm_kv_cache;

vlm_status vlm_kvc_init(vlm_kv_cache *c, int n_blocks);
void vlm_kvc_free(vlm_kv_cache *c);
/* A block for new content (ref 1): an empty one, else the least recently used cached one (which is
 * forgotten). -1 when every block is in use. */
int vlm_kvc_alloc(vlm_kv_cache *c);
/* One more user of block b (a cached block found by its hash leaves the free list). */
void vlm_kvc_retain(vlm_kv_cache *c, int b);
/* One user less; at none, the block is free (a cached one stays findable until it is reused). */
void vlm_kvc_release(vlm_kv_cache *c, int b);
/* The block cached under h, or -1. */
int vlm_kvc_find(const vlm_kv_cache *c, const vlm_block_hash *h);
/* Block b now holds complete content with identity h: findable (unless another block already is
 * under h, or b already has an identity). */
void vlm_kvc_publish(vlm_kv_cache *c, int b, const vlm_block_hash *h);
/* Free blocks (empty or cached). */
static inline int vlm_kvc_free_count(const vlm_kv_cache *c) { return c->n_free; }

/* The chained identities of the full blocks of a prompt: block i hashes block i-1's identity, its
 * block_tokens ids and, for every image with tokens in the block, that image's content hash and
 * grid (its pads are all the same id: the image is what differs). image_start[k] / image_tokens[k]:
 * where image k's pads are in the prompt. out: [n_ids / block_tokens]. */
vlm_status vlm_block_hashes(const int32_t *ids, int n_ids, int block_tokens, const uint8_t (*image_hash)[32],
                            const int32_t (*image_grid)[3], const int *image_start, const int *image_tokens,
                            int n_images, vlm_block_hash *out);

#endif
