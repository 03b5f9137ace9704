/* The vision towers of Qwen2.5-VL (RMSNorm, SwiGLU, window attention with full attention in
 * fullatt_block_indexes) and Qwen2-VL (LayerNorm, QuickGELU, full attention everywhere), written
 * once against the backend interface:
 *
 *   pixel_values [N, C*T*P*P] --patch embed (the Conv3d as one matmul)--> [N, W]
 *   (2.5: rows permuted to window order, 4 patches per merged token)
 *   blocks: x += proj(attn(rope(qkv(norm1(x))))), x += mlp(norm2(x))
 *           attention segments = windows, or one segment per image for full-attention blocks
 *   merger: norm, 4 rows -> one [4W] row, Linear, GELU, Linear -> [N/4, out_hidden]
 *   (2.5: rows back to raster order)
 *
 * Several images per call, each with its own grid (windows and full attention never cross
 * images); the output rows are the merged tokens of image 0, then image 1, ... in raster order. */
#ifndef VLM_MODEL_VISION_MODEL_H
#define VLM_MODEL_VISION_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/backend.h"
#include "model/config.h"
#include "model/dump.h"
#include "model/vision_plan.h"
#include "model/weights.h"

typedef struct vlm_vision_model vlm_vision_model;

/* Binds the weights to backend be (matrices as stored, norm weights and biases as f32). cfg, w and
 * the checkpoint mapping behind w must outlive the model; be too. */
vlm_status vlm_vision_create(const vlm_model_config *cfg, const vlm_vision_weights *w, vlm_backend *be,
                             vlm_vision_model **out);
void vlm_vision_free(vlm_vision_model *m);

/* Encodes n_images images.
 * pixels: host [n_rows, C*T*P*P] f32 (the image processor's pixel_values, images concatenated);
 * grids: n_images grids (t, h, w) in patches; n_rows must equal sum t*h*w.
 * out: [sum(t*h*w) / merge^2, out_hidden] f32, in device memory of the backend, or in host memory
 * when out_on_host (the same thing on the CPU backend).
 * dump (may be NULL): vision_patch_embed, vision_rotary_pos_emb, vision_window_index and
 * vision_cu_window_seqlens (2.5), vision_block0_out and vision_merger_out (2.5: window order),
 * image_embeds.
 * Fails before computing anything when the activations would not fit in available memory (CPU),
 * naming the bytes needed and a --max-pixels that fits. Activation buffers are kept for the next
 * call and reused when large enough (vlm_vision_trim releases them). */
vlm_status vlm_vision_encode(vlm_vision_model *m, const float *pixels, int64_t n_rows, const vlm_grid_thw *grids,
                             int n_images, float *out, int out_on_host, vlm_dump *dump);
/* Releases the activation buffers kept between calls. */
void vlm_vision_trim(vlm_vision_model *m);

#endif
