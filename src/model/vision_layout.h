/* Layout of the vision tower's input: which patch is where. Pure host-side bookkeeping, computed
 * once per encode from the images' grids, exactly as transformers does it:
 * - the 2-D rotary angle table (`rot_pos_emb`), one row per patch in patch order (the patches of
 *   one merge group are consecutive);
 * - Qwen2.5-VL: the window permutation of merged tokens (`get_window_index`) and the window
 *   boundaries in patches (`cu_window_seqlens` after `unique_consecutive`);
 * - the full-attention segments: one per image frame (attention never crosses images).
 * Several images: each image's layout is built on its own grid, then offset. */
#ifndef VLM_MODEL_VISION_LAYOUT_H
#define VLM_MODEL_VISION_LAYOUT_H

#include <stdint.h>

#include "image/grid.h"
#include "model/config.h"

/* Upper bound on the patches of one encode call (all images together): 64x the largest image
 * the default max_pixels allows (65536 patches), far below any int overflow in row indexing. */
enum { VLM_VISION_MAX_PATCHES = 1 << 22 };

typedef struct {
    int n_images;
    int n_patches;      /* N: rows of pixel_values, sum of t*h*w */
    int n_merged;       /* M = N / unit: merged tokens (rows of the output) */
    int unit;           /* merge_size^2: patches per merged token */
    int rot_dim;        /* head_dim / 2: columns of rot */
    float *rot;         /* [N, rot_dim] rotary angles (row·inv_freq, col·inv_freq), patch order */
    int *full_segments; /* [n_full + 1] patch boundaries of each image frame */
    int n_full;
    /* Qwen2.5-VL only (NULL / 0 for Qwen2-VL): */
    int32_t *window_index;   /* [M] merged token at window-order position i (original index) */
    int32_t *window_inverse; /* [M] window-order position of original merged token j */
    int *window_segments;    /* [n_windows + 1] window boundaries in patches (non-empty windows) */
    int n_windows;
} vlm_vision_layout;

/* Checks grids (t >= 1, h and w positive multiples of merge_size, total patches within
 * VLM_VISION_MAX_PATCHES) and returns the total patch count. Errors name the image and value. */
vlm_status vlm_vision_grids_check(const vlm_vision_config *v, const vlm_grid_thw *grids, int n_images, int *n_patches);
/* Builds the layout; with_windows = 1 for Qwen2.5-VL. Free with vlm_vision_layout_free. */
vlm_status vlm_vision_layout_build(const vlm_vision_config *v, int with_windows, const vlm_grid_thw *grids,
                                   int n_images, vlm_vision_layout *out);
void vlm_vision_layout_free(vlm_vision_layout *l);
/* Merged tokens per window side: window_size / patch_size / merge_size (4 for 112 px). */
int vlm_vision_window_tokens(const vlm_vision_config *v);
/* Upper bound on the window segments of a grid list (for memory estimates). */
int64_t vlm_vision_max_windows(const vlm_vision_config *v, const vlm_grid_thw *grids, int n_images);

#endif
