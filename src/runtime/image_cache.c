/* The image-embedding LRU cache (see image_cache.h): a doubly linked list, most recently used
 * first; lookups walk it (the budget holds tens to hundreds of images, and a lookup is per image
 * of a new request, next to a vision encoder run it may save). */
#include "runtime/image_cache.h"

#include <string.h>

#include "base/memory.h"

struct vlm_image_entry {
    uint8_t hash[32];
    vlm_grid_thw grid;
    int rows, dim;
    float *embeds; /* device */
    uint64_t bytes;
    vlm_image_entry *prev, *next;
};

void vlm_image_cache_init(vlm_image_cache *c, vlm_backend *be, uint64_t cap_bytes) {
    memset(c, 0, sizeof *c);
    c->be = be;
    c->cap = cap_bytes;
}

static void unlink_entry(vlm_image_cache *c, vlm_image_entry *e) {
    if (e->prev) e->prev->next = e->next;
    else c->mru = e->next;
    if (e->next) e->next->prev = e->prev;
    else c->lru = e->prev;
    e->prev = e->next = NULL;
}

static void push_front(vlm_image_cache *c, vlm_image_entry *e) {
    e->prev = NULL;
    e->next = c->mru;
    if (c->mru) c->mru->prev = e;
    else c->lru = e;
    c->mru = e;
}

static void drop(vlm_image_cache *c, vlm_image_entry *e) {
    unlink_entry(c, e);
    c->used -= e->bytes;
    c->n--;
    vlm_dev_free(c->be, e->embeds);
    vlm_free(e);
}

void vlm_image_cache_free(vlm_image_cache *c) {
    while (c->mru) drop(c, c->mru);
}

const float *vlm_image_cache_get(vlm_image_cache *c, const uint8_t hash[32], vlm_grid_thw grid, int rows, int dim) {
    for (vlm_image_entry *e = c->mru; e; e = e->next)
        if (!memcmp(e->hash, hash, 32) && e->grid.t == grid.t && e->grid.h == grid.h && e->grid.w == grid.w &&
            e->rows == rows && e->dim == dim) {
            unlink_entry(c, e);
            push_front(c, e);
            return e->embeds;
        }
    return NULL;
}

void vlm_image_cache_put(vlm_image_cache *c, const uint8_t hash[32], vlm_grid_thw grid, const float *embeds, int rows,
                         int dim) {
    uint64_t bytes = (uint64_t)rows * dim * sizeof(float);
    if (!bytes || bytes > c->cap || vlm_image_cache_get(c, hash, grid, rows, dim)) return;
    while (c->lru && c->used + bytes > c->cap) drop(c, c->lru);
    vlm_image_entry *e = vlm_calloc(1, sizeof *e, "an image-cache entry");
    if (!e) return;
    e->embeds = vlm_dev_alloc(c->be, bytes, "cached image embeddings");
    if (!e->embeds) {
        vlm_free(e);
        vlm_err_clear(); /* not being able to cache is not an error of the request */
        return;
    }
    memcpy(e->hash, hash, 32);
    e->grid = grid;
    e->rows = rows;
    e->dim = dim;
    e->bytes = bytes;
    vlm_copy(c->be, e->embeds, embeds, (size_t)rows * dim);
    push_front(c, e);
    c->used += bytes;
    c->n++;
}

/* ---- the image-size memo ---- */

vlm_status vlm_image_sizes_init(vlm_image_sizes *s, int cap) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->e = vlm_calloc((size_t)cap, sizeof *s->e, "the image-size memo");
    if (!s->e) return VLM_ERR_NOMEM;
    s->cap = cap;
    return VLM_OK;
}

void vlm_image_sizes_free(vlm_image_sizes *s) {
    vlm_free(s->e);
    pthread_mutex_destroy(&s->lock);
    memset(s, 0, sizeof *s);
}

static int same_key(const vlm_image_size *e, const uint8_t hash[32], long long lo, long long hi) {
    return e->min_pixels == lo && e->max_pixels == hi && !memcmp(e->hash, hash, 32);
}

int vlm_image_sizes_find(vlm_image_sizes *s, const uint8_t hash[32], long long min_pixels, long long max_pixels,
                         vlm_image_size *out) {
    int found = 0;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n && !found; i++)
        if (same_key(&s->e[i], hash, min_pixels, max_pixels)) {
            s->e[i].stamp = ++s->clock;
            *out = s->e[i];
            found = 1;
        }
    pthread_mutex_unlock(&s->lock);
    return found;
}

void vlm_image_sizes_add(vlm_image_sizes *s, const vlm_image_size *in) {
    pthread_mutex_lock(&s->lock);
    int at = -1;
    for (int i = 0; i < s->n && at < 0; i++)
        if (same_key(&s->e[i], in->hash, in->min_pixels, in->max_pixels)) at = i;
    if (at < 0 && s->n < s->cap) at = s->n++;
    if (at < 0) { /* full: the least recently used goes */
        at = 0;
        for (int i = 1; i < s->n; i++)
            if (s->e[i].stamp < s->e[at].stamp) at = i;
    }
    s->e[at] = *in;
    s->e[at].stamp = ++s->clock;
    pthread_mutex_unlock(&s->lock);
}
