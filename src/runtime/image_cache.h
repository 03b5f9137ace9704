/* The image-embedding cache: the vision encoder's output for an image, kept in device memory and
 * found again by the image's identity (the SHA-256 of its encoded bytes) and its patch grid (which
 * the pixel limits decide), so a second question about the same image skips the encoder. Least
 * recently used entries go first when the cache is over its byte budget; an entry larger than the
 * whole budget is not kept. Engine thread only. */
#ifndef VLM_RUNTIME_IMAGE_CACHE_H
#define VLM_RUNTIME_IMAGE_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "image/grid.h"
#include "kernels/backend.h"

typedef struct vlm_image_entry vlm_image_entry;

typedef struct {
    vlm_backend *be;
    uint64_t cap, used; /* bytes */
    vlm_image_entry *mru, *lru;
    int n;
} vlm_image_cache;

void vlm_image_cache_init(vlm_image_cache *c, vlm_backend *be, uint64_t cap_bytes);
void vlm_image_cache_free(vlm_image_cache *c);
/* The embeddings ([rows, dim] on the device) cached for this image and grid, now the most recently
 * used; NULL when absent. */
const float *vlm_image_cache_get(vlm_image_cache *c, const uint8_t hash[32], vlm_grid_thw grid, int rows, int dim);
/* Keeps a copy of the embeddings (device) for this image and grid, evicting the least recently used
 * entries as needed. Failing to make room or memory is not an error: the image is just not kept. */
void vlm_image_cache_put(vlm_image_cache *c, const uint8_t hash[32], vlm_grid_thw grid, const float *embeds, int rows,
                         int dim);

#endif
