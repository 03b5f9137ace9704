/* Multimodal rotary positions of the language model (M-RoPE), as transformers computes them.
 *
 * - vlm_rope_index: transformers' `get_rope_index` for a prompt with images. Every token gets three
 *   positions (t, h, w). Text counts up with all three rows equal; an image of merged grid
 *   (T, H, W) that starts after text ending at position p is laid out over p+1 + (t, row, col);
 *   text after it continues from the largest position so far + 1. rope_delta = max position + 1 -
 *   prompt length: a decode step at cache position c uses c + rope_delta in all three rows.
 * - vlm_rope_inv_freq / vlm_mrope_cos_sin: the cos/sin tables the decoder's rotary kernel takes
 *   ([rows, head_dim/2], the same half for both halves), frequency slot j taking its position
 *   from the axis whose mrope_section holds j, computed in float32 as transformers does. */
#ifndef VLM_MODEL_ROPE_INDEX_H
#define VLM_MODEL_ROPE_INDEX_H

#include <stdint.h>

#include "image/grid.h"
#include "model/config.h"

/* Positions of n prompt tokens into pos (three rows t, h, w, each n long: pos[a * n + i]) and the
 * rope delta. grids lists the images in prompt order (n_images = 0: a text-only prompt, positions
 * 0..n-1 in all rows, as transformers without image_grid_thw). Each image must appear as
 * <|vision_start|> followed by exactly vlm_grid_tokens() <|image_pad|> tokens; a count that does not
 * match the grids is an error naming the image. Qwen2.5-VL gives image tokens temporal index 0
 * (second_per_grid_t = 0 for images), Qwen2-VL the grid's t index. */
vlm_status vlm_rope_index(const int32_t *ids, int n, const vlm_grid_thw *grids, int n_images,
                          const vlm_model_config *cfg, int32_t *pos, int32_t *rope_delta);

/* inv_freq[i] = 1 / theta^(2i / head_dim), i < head_dim / 2, as transformers' default rope init:
 * the exponent in float32 (arange(0, dim, 2).float() / dim), the power and the reciprocal rounded
 * to float32. */
void vlm_rope_inv_freq(double theta, int head_dim, float *inv_freq);

/* cos/sin [n, half] (half = head_dim / 2) for rows r < n with positions pos[a * pos_stride + r]
 * (a = 0, 1, 2 for t, h, w). Slot j < sections[0] takes t, the next sections[1] slots h, the last
 * sections[2] w. angle = float(position) * inv_freq[j] in float32, then cos/sin of that float. */
void vlm_mrope_cos_sin(const float *inv_freq, int half, const int sections[3], const int32_t *pos, int pos_stride,
                       int n, float *cos_out, float *sin_out);

#endif
