/* Planning one call of the vision encoder before running it: the rows it outputs, the memory its
 * activations need (and the largest --max-pixels that fits), and the floating-point operations it
 * does (vlm bench's FLOP/s). Pure functions of the config and the grids. */
#ifndef VLM_MODEL_VISION_PLAN_H
#define VLM_MODEL_VISION_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "image/grid.h"
#include "model/config.h"

/* Rows of the output for these grids (merged tokens); -1 with an error for invalid grids. */
int64_t vlm_vision_output_rows(const vlm_model_config *cfg, const vlm_grid_thw *grids, int n_images);

/* Memory one encode call of these grids needs for activations, in bytes (device buffers plus the
 * host-side tables, for the CPU backend; pass include_pixels = 1 for a device backend, which
 * holds a copy of pixel_values). 0 for invalid grids. */
uint64_t vlm_vision_activation_bytes(const vlm_model_config *cfg, const vlm_grid_thw *grids, int n_images,
                                     int include_pixels);
/* The largest --max-pixels (a multiple of 28 x 28) with which n_images images of at most that
 * many pixels each fit in `available` bytes of activation memory; 0 when none does. */
int64_t vlm_vision_max_pixels_fitting(const vlm_model_config *cfg, int n_images, uint64_t available,
                                      int include_pixels);
/* VLM_OK when the activations of these grids fit in `available` bytes; otherwise VLM_ERR_NOMEM
 * with a message naming the bytes needed, the bytes available and a --max-pixels that fits. */
vlm_status vlm_vision_check_memory(const vlm_model_config *cfg, const vlm_grid_thw *grids, int n_images,
                                   uint64_t available, int include_pixels);

/* Floating-point operations of one encode call: every matmul (2*M*N*K) and the attention
 * products QK^T and PV (4 * len^2 * head_dim * heads per segment). Element-wise ops not counted. */
double vlm_vision_flops(const vlm_model_config *cfg, const vlm_grid_thw *grids, int n_images);

/* The sizes behind these (for vision_model.c): values per patch row (C*T*P*P), floats of the shared
 * scratch buffer and bytes of the device buffers for N patches (include_pixels: the device holds a
 * copy of pixel_values). */
int vlm_vision_patch_dim(const vlm_vision_config *v);
size_t vlm_vision_scratch_floats(const vlm_vision_config *v, int is25, size_t N, int include_pixels);
uint64_t vlm_vision_device_bytes(const vlm_vision_config *v, int is25, size_t N, int include_pixels);

#endif
