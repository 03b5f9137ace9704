/* GEMV with AVX-512: y[m, n] = x[m, :] . w[n, :] (+ bias[n]) for a few input rows (decode).
 * Memory-bandwidth bound: each weight row is read once and dotted with every input row while it is
 * in registers; R weight rows go through the loop side by side so that each x vector loaded is used
 * R times. Accumulation stays in f32 (one accumulator vector per (input row, weight row)).
 *
 * BF16 weights: a 64-byte load holds 32 weights; shifting each 32-bit lane left by 16 gives the
 * even-indexed weights as f32, masking the low half gives the odd ones. The input rows are
 * reordered once per call to match (vlm_gemv_reorder_x: per block of 32, the 16 even elements then
 * the 16 odd ones), so a 32-weight step costs one load and two single-uop conversions. */
#include <immintrin.h>

#include "kernels/cpu/cpu_simd.h"

#define AI static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

/* How the weights of one row are read: BF16 with reordered x, BF16 with x as is, F16, F32. */
enum { W_BF16_EO, W_BF16, W_F16, W_F32 };


AI void load32(const int mode, const char *row, int64_t k, __m512 *w0, __m512 *w1) {
    switch (mode) {
    case W_BF16_EO: {
        __m512i v = _mm512_loadu_si512((const void *)(row + 2 * k));
        *w0 = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
        *w1 = _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
        break;
    }
    case W_BF16:
        *w0 = _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(row + 2 * k))), 16));
        *w1 = _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(row + 2 * k + 32))), 16));
        break;
    case W_F16:
        *w0 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 2 * k)));
        *w1 = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(row + 2 * k + 32)));
        break;
    default:
        *w0 = _mm512_loadu_ps((const float *)(row + 4 * k));
        *w1 = _mm512_loadu_ps((const float *)(row + 4 * k + 64));
        break;
    }
}

/* Up to 16 weights at k (mask m), natural order, zero elsewhere. */
AI __m512 load16_masked(const int mode, const char *row, int64_t k, __mmask16 m) {
    switch (mode) {
    case W_BF16_EO:
    case W_BF16:
        return _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, row + 2 * k)), 16));
    case W_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 2 * k));
    default: return _mm512_maskz_loadu_ps(m, row + 4 * k);
    }
}

AI int elem_bytes(const int mode) { return mode == W_F32 ? 4 : 2; }

/* out[m * R + r] = x[m] . w[r] for M input rows and R weight rows starting at w (rows rb apart).
 * xv: the input rows as the main loop wants them (reordered for W_BF16_EO), x: as given. */
AI void tile(const int mode, const int M, const int R, const char *w, size_t rb, const float *xv, const float *x,
             int64_t ldx, int64_t K, float *out) {
    __m512 acc[VLM_GEMV_MAX_M][4];
    UNROLL for (int m = 0; m < M; m++) UNROLL for (int r = 0; r < R; r++) acc[m][r] = _mm512_setzero_ps();
    const int64_t K32 = K & ~(int64_t)31;
    for (int64_t k = 0; k < K32; k += 32) {
        __m512 w0[4], w1[4];
        UNROLL for (int r = 0; r < R; r++) {
            /* the same place in the next group of rows: a whole tile ahead, never past this chunk */
            _mm_prefetch(w + (size_t)(r + R) * rb + (size_t)k * elem_bytes(mode), _MM_HINT_T0);
            if (elem_bytes(mode) == 4) _mm_prefetch(w + (size_t)(r + R) * rb + (size_t)k * 4 + 64, _MM_HINT_T0);
            load32(mode, w + (size_t)r * rb, k, &w0[r], &w1[r]);
        }
        UNROLL for (int m = 0; m < M; m++) {
            __m512 x0 = _mm512_loadu_ps(xv + (size_t)m * ldx + k), x1 = _mm512_loadu_ps(xv + (size_t)m * ldx + k + 16);
            UNROLL for (int r = 0; r < R; r++) {
                acc[m][r] = _mm512_fmadd_ps(w0[r], x0, acc[m][r]);
                acc[m][r] = _mm512_fmadd_ps(w1[r], x1, acc[m][r]);
            }
        }
    }
    for (int64_t k = K32; k < K; k += 16) {
        int n = K - k < 16 ? (int)(K - k) : 16;
        __mmask16 msk = (__mmask16)((1u << n) - 1u);
        __m512 wt[4];
        UNROLL for (int r = 0; r < R; r++) wt[r] = load16_masked(mode, w + (size_t)r * rb, k, msk);
        UNROLL for (int m = 0; m < M; m++) {
            __m512 xt = _mm512_maskz_loadu_ps(msk, x + (size_t)m * ldx + k);
            UNROLL for (int r = 0; r < R; r++) acc[m][r] = _mm512_fmadd_ps(wt[r], xt, acc[m][r]);
        }
    }
    UNROLL for (int m = 0; m < M; m++) UNROLL for (int r = 0; r < R; r++) out[m * R + r] = _mm512_reduce_add_ps(acc[m][r]);
}

/* Weight rows side by side: enough accumulators to hide the FMA latency, few enough to stay in
 * the 32 vector registers (M * R accumulators + 2 R weight vectors + 2 x vectors). */
#define R_FOR(M) ((M) <= 4 ? 4 : 2)

/* Input rows larger than this are taken in k chunks that stay in L1 (the partial sums of each
 * chunk are added into y), rather than streamed from L2 once per group of weight rows. */
enum { X_L1_BYTES = 24 * 1024 };

AI void rows_impl(const int mode, const int M, float *y, const float *xv, const float *x, const vlm_tensor *w,
                  const float *bias, int64_t n0, int64_t n1) {
    const int R = R_FOR(M);
    int64_t N = w->shape[0], K = w->shape[w->ndim - 1];
    size_t rb = (size_t)K * (size_t)elem_bytes(mode);
    int64_t kchunk = K;
    if ((size_t)M * (size_t)K * sizeof(float) > X_L1_BYTES) {
        kchunk = (int64_t)(X_L1_BYTES / ((size_t)M * sizeof(float))) & ~(int64_t)31;
        if (kchunk < 32) kchunk = 32;
    }
    float out[VLM_GEMV_MAX_M * 4];
    for (int64_t kb = 0; kb < K; kb += kchunk) {
        int64_t kn = K - kb < kchunk ? K - kb : kchunk;
        const char *base = (const char *)w->data + (size_t)kb * (size_t)elem_bytes(mode);
        const float *xvb = xv + kb, *xb = x + kb;
        int64_t n = n0;
        for (; n + R <= n1; n += R) {
            tile(mode, M, R, base + (size_t)n * rb, rb, xvb, xb, K, kn, out);
            for (int m = 0; m < M; m++)
                for (int r = 0; r < R; r++) {
                    float *yo = &y[(size_t)m * N + n + r];
                    *yo = out[m * R + r] + (kb ? *yo : bias ? bias[n + r] : 0.0f);
                }
        }
        for (; n < n1; n++) {
            tile(mode, M, 1, base + (size_t)n * rb, rb, xvb, xb, K, kn, out);
            for (int m = 0; m < M; m++) {
                float *yo = &y[(size_t)m * N + n];
                *yo = out[m] + (kb ? *yo : bias ? bias[n] : 0.0f);
            }
        }
    }
}

typedef void (*rows_fn)(float *y, const float *xv, const float *x, const vlm_tensor *w, const float *bias, int64_t n0,
                        int64_t n1);

#define DEF_ROWS(mode, M)                                                                                          \
    static void rows_##mode##_##M(float *y, const float *xv, const float *x, const vlm_tensor *w, const float *bias, \
                                  int64_t n0, int64_t n1) {                                                        \
        rows_impl(mode, M, y, xv, x, w, bias, n0, n1);                                                             \
    }
#define DEF_MODE(mode)                                                                                             \
    DEF_ROWS(mode, 1) DEF_ROWS(mode, 2) DEF_ROWS(mode, 3) DEF_ROWS(mode, 4) DEF_ROWS(mode, 5) DEF_ROWS(mode, 6)    \
    DEF_ROWS(mode, 7) DEF_ROWS(mode, 8)                                                                           \
    static const rows_fn rows_##mode[VLM_GEMV_MAX_M] = {rows_##mode##_1, rows_##mode##_2, rows_##mode##_3,          \
                                                        rows_##mode##_4, rows_##mode##_5, rows_##mode##_6,          \
                                                        rows_##mode##_7, rows_##mode##_8};
DEF_MODE(W_BF16_EO)
DEF_MODE(W_BF16)
DEF_MODE(W_F16)
DEF_MODE(W_F32)

void vlm_gemv_rows_avx512(float *y, const float *x, const float *xp, const vlm_tensor *w, const float *bias, int M,
                          int64_t n0, int64_t n1) {
    if (M < 1 || M > VLM_GEMV_MAX_M || n0 >= n1) return;
    switch (w->dtype) {
    case VLM_DT_BF16:
        if (xp) rows_W_BF16_EO[M - 1](y, xp, x, w, bias, n0, n1);
        else rows_W_BF16[M - 1](y, x, x, w, bias, n0, n1);
        break;
    case VLM_DT_F16: rows_W_F16[M - 1](y, x, x, w, bias, n0, n1); break;
    case VLM_DT_F32: rows_W_F32[M - 1](y, x, x, w, bias, n0, n1); break;
    default: break; /* the dispatcher only sends plain float dtypes */
    }
}
