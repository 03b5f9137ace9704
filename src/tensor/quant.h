/* Block-quantized weight formats and their scalar reference quantize / dequantize.
 *
 * A row of K weights is K / block blocks stored back to back (the row of a [N, K] matrix is
 * vlm_dtype_row_bytes(t, K) bytes). Every block holds a little-endian f16 scale first:
 *
 *   Q8_0 (GGUF Q8_0), 32 weights in 34 bytes: f16 d, int8 q[32];    w[j] = d * q[j]
 *   Q4_0 (GGUF Q4_0), 32 weights in 18 bytes: f16 d, u8 qs[16];     w[j] = d * (nibble - 8), where
 *        element j (< 16) is the low nibble of qs[j] and element j + 16 its high nibble
 *   NF4 (bitsandbytes' 4-bit NormalFloat code book), 64 weights in 34 bytes: f16 absmax, u8 qs[32];
 *        w[j] = absmax * vlm_nf4_code[nibble], element j (< 32) in the low nibble of qs[j], element
 *        j + 32 in the high nibble (GGUF's nibble order, which unpacks into SIMD lanes in order)
 *
 * Quantization rounds to nearest with the scale taken from the block's largest magnitude, computed
 * from the f16 scale actually stored (so the bounds below hold for the stored value), and gives
 * these per-element error bounds (d, absmax: the stored scales; the tests check them):
 *   Q8_0: d = amax / 127; |w - w'| <= d / 2 (every element is in range).
 *   Q4_0: d = -m / 8 with m the element of largest magnitude (GGUF's choice: m maps to -8, using the
 *         16th level on m's side); |w - w'| <= |d| / 2 when w / d lies in [-8.5, 7.5]; the other side
 *         stops at 7, so elements of the opposite sign beyond 7.5 |d| (at most |m| = 8 |d|) are
 *         clamped: |w - w'| <= |w| - 7 |d| <= |d|.
 *   NF4:  |w - w'| <= absmax * (half the gap between the two codes around w / absmax), at most
 *         0.1519 * absmax (between -1 and -0.696); finer near zero, where normal weights are.
 * A block whose scale underflows f16 (largest magnitude below ~1e-7 for Q8_0 / Q4_0, 6e-8 for NF4)
 * comes back as zeros.
 *
 * Interleaved copies (Q4_0_R16, Q8_0_R16), made by the CPU backend when it loads weights (never in
 * files): the blocks of each row in groups of 16 (a row's last group has G = the blocks left), a
 * group of G blocks being
 *     G f16 scales, then for each step s (4 for Q4_0: the 16 packed bytes / 4; 8 for Q8_0) and each
 *     block i < G, the 4 bytes qs_i[4s .. 4s + 3]
 * : the same bytes as the G blocks (a row keeps its size), placed so that one 512-bit load holds 4
 * bytes of each of 16 blocks and a vpdpbusd accumulates one whole block per int32 lane, which
 * takes a permute, a conversion and a multiply-add per 64 weights out of the inner loop. */
#ifndef VLM_TENSOR_QUANT_H
#define VLM_TENSOR_QUANT_H

#include <stdint.h>

#include "tensor/tensor.h"

enum { VLM_QK8_0 = 32, VLM_QK4_0 = 32, VLM_QK_NF4 = 64 };

/* bitsandbytes' NF4 code book (ascending; code[7] = 0, code[15] = 1). */
extern const float vlm_nf4_code[16];
/* The code book as int8 (round(127 * code)): the integer kernels use it with scale absmax / 127,
 * which adds at most 0.5 / 127 * absmax per weight to NF4's own error (see kernels/cpu/quant_kernels.h). */
extern const int8_t vlm_nf4_i8[16];

/* "q4_0", "q8_0", "nf4" for the block formats; NULL otherwise. The tags name formats on the
 * command line and in the __metadata__ of quantized checkpoints. */
const char *vlm_quant_tag(vlm_dtype t);
/* The dtype of a tag (case-insensitive); 0 on success, -1 when unknown. */
int vlm_quant_from_tag(const char *tag, vlm_dtype *t);
/* "q4_0, q8_0, nf4", for messages. */
const char *vlm_quant_known_tags(void);

/* Quantizes K values (K a multiple of the block) into dst (vlm_dtype_row_bytes(t, K) bytes).
 * Returns 0, or -1 when a value is not finite or a scale does not fit an f16 (|w| > ~5e5): the
 * block is then written as zeros and the caller reports the tensor. */
int vlm_quantize_row(vlm_dtype t, const float *x, void *dst, int64_t K);
/* The reverse: K weights of a quantized row as f32 (for the interleaved layouts, a whole row). */
void vlm_dequantize_row(vlm_dtype t, const void *src, float *dst, int64_t K);
/* Interleaved layouts: Q4_0 -> Q4_0_R16, Q8_0 -> Q8_0_R16 (others: themselves), and back. */
vlm_dtype vlm_quant_interleaved(vlm_dtype t);
vlm_dtype vlm_quant_base(vlm_dtype t);
/* One row of K weights of format t (Q4_0 or Q8_0) into its interleaved layout, and block b of an
 * interleaved row (nb blocks) back into the plain block layout (out: vlm_dtype_size bytes). */
void vlm_quant_interleave_row(vlm_dtype t, const void *src, void *dst, int64_t K);
void vlm_quant_interleaved_block(vlm_dtype t, const void *row, int64_t nb, int64_t b, uint8_t *out);

/* The f32 value of a block's stored scale (d, or absmax for NF4). */
static inline float vlm_quant_block_scale(const void *block) {
    const uint8_t *b = block;
    return vlm_f16_to_f32((uint16_t)(b[0] | b[1] << 8));
}

#endif
