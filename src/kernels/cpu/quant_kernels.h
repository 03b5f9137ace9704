/* Matrix products with block-quantized weights (Q4_0, Q8_0, NF4; formats in tensor/quant.h).
 *
 * y[M, N] = x[M, K] · w[N, K]^T (+ bias). Each input row is quantized once per call to int8 in
 * 32-blocks (scale d = amax / 127, round to nearest even; Q8_0's layout), then every block product
 * is an integer dot product of the weight's integer levels with the activation's, scaled by the
 * two f16/f32 scales:  y = Σ_blocks d_w · d_x · Σ_j q_w[j] q_x[j].
 *
 * Paths, chosen at run time (vlm_cpu_quant_path):
 *   scalar  the reference (quant_ref.c): the definition above, accumulated in double;
 *   avx2    maddubs / madd with the sign trick (|q_w| times q_x with q_w's sign), per-block scale;
 *   avx512  AVX-512 VNNI vpdpbusd on 64 weights at a time: weights as unsigned bytes with an
 *           offset (Q4_0: nibble, offset 8; Q8_0: q + 128; NF4: int8 code + 128), the offset
 *           removed once per block with the activation block's precomputed sum (d_x · Σ q_x).
 * Matrix-vector (M <= the path's tile) streams every weight byte once and unpacks each 64-weight
 * unit once for all M rows; larger M takes weight rows in chunks that stay in cache while all input
 * rows pass over them in tiles. The backend's threads split the output rows.
 *
 * Error with respect to dequantize-then-f32 (what tests bound): the activation rounding,
 * |Σ_k w_k (x_k - x'_k)| <= Σ_blocks d_x / 2 · Σ_j |w_j|, plus for NF4 the int8 code book,
 * <= Σ_k |x'_k| · absmax / 254; float rounding aside, the paths agree with the reference exactly
 * in every integer block dot. */
#ifndef VLM_KERNELS_CPU_QUANT_KERNELS_H
#define VLM_KERNELS_CPU_QUANT_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "kernels/cpu/cpu_kernels.h"
#include "tensor/tensor.h"

enum { VLM_QA_BLOCK = 32 }; /* activation block */
/* Where vlm_cpu_streams() == 4, weights are prefetched this many bytes ahead of use: the hardware
 * streamers stop at every 4 KB page, and on the Xeon's decode products 4 KB ahead took Q4_0 from
 * ~70% to ~90% of the probed bandwidth. Decode then also walks 4 distant rows side by side
 * (quant_r16_avx512.c): that core kept more requests in flight with several streams than with one
 * (14 GB/s with one, 18-20 with 4 to 8), which took Q4_0 from ~26 to ~30 GB/s with two threads. */
enum { VLM_QPREFETCH = 4096 };

typedef enum { VLM_QPATH_AUTO = 0, VLM_QPATH_SCALAR, VLM_QPATH_AVX2, VLM_QPATH_AVX512 } vlm_qpath;

/* y = x · w^T (+ bias) for a quantized w [N, K] (K a multiple of the block). */
void vlm_cpu_matmul_quant(const vlm_cpu_ctx *c, float *y, const float *x, const vlm_tensor *w, const float *bias,
                          int M);

/* Weights as the CPU backend keeps them (its `weight` op): Q4_0 and Q8_0 matrices become their
 * interleaved copies (Q4_0_R16 / Q8_0_R16, a new allocation; the source pages are dropped from the
 * resident set, so memory holds one copy) when the AVX-512 VNNI path runs; anything else is a view
 * of host. vlm_cpu_quant_release frees what prepare allocated (and leaves views alone). */
vlm_status vlm_cpu_quant_prepare(vlm_pool *pool, const vlm_tensor *host, vlm_tensor *dev);
void vlm_cpu_quant_release(vlm_tensor *dev);

/* The path used (AUTO resolves to the best this CPU runs). Forcing a path the CPU lacks falls back
 * to AUTO. For tests and benchmarks; not thread-safe against concurrent matmuls. */
void vlm_cpu_quant_set_path(vlm_qpath p);
vlm_qpath vlm_cpu_quant_path(void);
const char *vlm_qpath_name(vlm_qpath p);

/* ---- the pieces, exposed for tests ---- */

/* Quantized activation rows: row m has K int8 values at q + m*K, and K/32 scales and sums at
 * d + m*nb, s + m*nb (s = d · Σ q over the block). */
typedef struct {
    int8_t *q;
    float *d, *s;
    int64_t K;
    int64_t nb;
    int8_t *qt; /* for interleaved weights: row m's values in the same interleaving, at qt + m*K */
} vlm_qact;

/* Row q (K values) in the interleaved order of tensor/quant.h's R16 layouts: per group of G <= 16
 * blocks, 8 steps of G lanes of 4 bytes (lane i of step s: bytes 4s .. 4s + 3 of block i). */
void vlm_qact_interleave(const int8_t *q, int64_t K, int8_t *qt);

/* Quantizes one row of K (a multiple of 32) floats; every path gives the same bytes. A block with
 * a non-finite value gets q = 0 and d = s = NaN, so the outputs that use it are NaN. */
void vlm_qact_row_scalar(const float *x, int64_t K, int8_t *q, float *d, float *s);
void vlm_qact_row_avx2(const float *x, int64_t K, int8_t *q, float *d, float *s);
void vlm_qact_row_avx512(const float *x, int64_t K, int8_t *q, float *d, float *s);

/* Output rows [n0, n1) for input rows 0..M-1 of a (M <= the path's tile, VLM_QTILE_*):
 * y[m * ldy + n] = Σ_k w[n, k] x'[m, k]. w points at row 0; rb = bytes per row. */
typedef void (*vlm_qrows_fn)(vlm_dtype t, const vlm_qact *a, int M, const uint8_t *w, size_t rb, int64_t n0, int64_t n1,
                             float *y, int64_t ldy);
enum { VLM_QTILE_SCALAR = 8, VLM_QTILE_AVX2 = 4, VLM_QTILE_AVX512 = 8 };
void vlm_qrows_scalar(vlm_dtype t, const vlm_qact *a, int M, const uint8_t *w, size_t rb, int64_t n0, int64_t n1,
                      float *y, int64_t ldy);
void vlm_qrows_avx2(vlm_dtype t, const vlm_qact *a, int M, const uint8_t *w, size_t rb, int64_t n0, int64_t n1,
                    float *y, int64_t ldy);
void vlm_qrows_avx512(vlm_dtype t, const vlm_qact *a, int M, const uint8_t *w, size_t rb, int64_t n0, int64_t n1,
                      float *y, int64_t ldy);

/* Interleaved weights (Q4_0_R16, Q8_0_R16): one int32 lane per block, M <= VLM_QTILE_AVX512. */
void vlm_qrows_r16_avx512(vlm_dtype t, const vlm_qact *a, int M, const uint8_t *w, size_t rb, int64_t n0, int64_t n1,
                          float *y, int64_t ldy);

/* The reference dot product of one quantized weight row with one quantized activation row. */
double vlm_qdot_ref(vlm_dtype t, const uint8_t *wrow, const int8_t *q, const float *d, int64_t K);

#endif
