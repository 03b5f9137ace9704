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

/* Bounds on the patch geometry a config may give (Qwen2-VL / Qwen2.5-VL: patch 14, temporal 2,
 * merge 2). Checked where config.json and preprocessor_config.json are read: beyond them the smallest
 * resized image (patch * merge squared) and the products of sizes stop being sane. */
enum { VLM_MAX_PATCH_SIZE = 64, VLM_MAX_TEMPORAL_PATCH_SIZE = 8, VLM_MAX_MERGE_SIZE = 8 };

#endif
