/* The image-embedding cache: the vision encoder's output for an image, kept in device memory and
 * found again by the image's identity (the SHA-256 of its encoded bytes) and its patch grid (which
 * the pixel limits decide), so a second question about the same image skips the encoder. Least
 * recently used entries go first when the cache is over its byte budget; an entry larger than the
 * whole budget is not kept. Engine thread only. */
#ifndef VLM_RUNTIME_IMAGE_CACHE_H
#define VLM_RUNTIME_IMAGE_CACHE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "image/grid.h"
#include "kernels/backend.h"
#include "vlm.h"

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

/* What preprocessing decided for an image seen before, by its content hash and pixel limits: its
 * size, its resized size and grid. With it, submit skips decoding and resizing an image it has
 * seen (the bytes are kept and decoded when the request runs, only if its embeddings are then
 * in neither the prefix cache nor the image cache). Thread-safe: submit runs on many threads. */
typedef struct {
    uint8_t hash[32];
    long long min_pixels, max_pixels;
    vlm_image_summary summary;
    vlm_grid_thw grid;
    uint64_t stamp; /* last use, for replacing the least recently used entry */
} vlm_image_size;

typedef struct {
    pthread_mutex_t lock;
    vlm_image_size *e;
    int n, cap;
    uint64_t clock;
} vlm_image_sizes;

vlm_status vlm_image_sizes_init(vlm_image_sizes *s, int cap);
void vlm_image_sizes_free(vlm_image_sizes *s);
/* 1 and *out when this image with these limits was seen. */
int vlm_image_sizes_find(vlm_image_sizes *s, const uint8_t hash[32], long long min_pixels, long long max_pixels,
                         vlm_image_size *out);
void vlm_image_sizes_add(vlm_image_sizes *s, const vlm_image_size *in);

#endif
