/* An image's patch grid, as the processor's image_grid_thw row: temporal patches, patch rows and
 * patch columns. The one grid type from preprocessing to the vision encoder (native or ONNX), the
 * rope index and the fixture dumps. */
#ifndef VLM_IMAGE_GRID_H
#define VLM_IMAGE_GRID_H

#include <stdint.h>

typedef struct {
    int t, h, w;
} vlm_grid_thw;

/* Patches (rows of pixel_values) of one image: t * h * w. */
static inline int64_t vlm_grid_patches(const vlm_grid_thw *g) { return (int64_t)g->t * g->h * g->w; }

/* Merged tokens (image embeddings, <|image_pad|> tokens) of one image: t * (h / merge) * (w / merge). */
static inline int64_t vlm_grid_tokens(const vlm_grid_thw *g, int merge_size) {
    return (int64_t)g->t * (g->h / merge_size) * (g->w / merge_size);
}

#endif
