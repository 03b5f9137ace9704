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

#include "kernels/cpu/cpu_kernels.h"
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
 * xv: the input rows as the main loop wants them (reordered for W_BF16_EO), x: as given.
 * pf: prefetch the next group of rows in software (vlm_cpu_streams() == 4). */
AI void tile(const int mode, const int M, const int R, const int pf, const char *w, size_t rb, const float *xv,
             const float *x, int64_t ldx, int64_t K, float *out) {
    __m512 acc[VLM_GEMV_MAX_M][4];
    UNROLL for (int m = 0; m < M; m++) UNROLL for (int r = 0; r < R; r++) acc[m][r] = _mm512_setzero_ps();
    const int64_t K32 = K & ~(int64_t)31;
    for (int64_t k = 0; k < K32; k += 32) {
        __m512 w0[4], w1[4];
        UNROLL for (int r = 0; r < R; r++) {
            /* the same place in the next group of rows: a whole tile ahead, never past this chunk */
            if (pf) _mm_prefetch(w + (size_t)(r + R) * rb + (size_t)k * elem_bytes(mode), _MM_HINT_T0);
            if (pf && elem_bytes(mode) == 4) _mm_prefetch(w + (size_t)(r + R) * rb + (size_t)k * 4 + 64, _MM_HINT_T0);
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
    UNROLL for (int m = 0; m < M; m++) UNROLL for (int r = 0; r < R; r++) out[m * R + r] =
        _mm512_reduce_add_ps(acc[m][r]);
}

/* Weight rows side by side: enough accumulators to hide the FMA latency, few enough to stay in
 * the 32 vector registers (M * R accumulators + 2 R weight vectors + 2 x vectors). With one input
 * row and vlm_cpu_streams() == 1 the rows go one at a time instead (gemv_rows.inc): a single
 * sequential stream, which the memory system of some CPUs serves fastest. */
#define R_FOR(M) ((M) <= 4 ? 4 : 2)
#define GEMV_ROWS_NAME vlm_gemv_rows_avx512
#include "kernels/cpu/gemv_rows.inc"

/* ---- the bf16 precision: x rounded to bf16 once per call (xb: M rows of K), then vdpbf16ps on
 * 32 weights at a time, straight from the stored bf16 rows (no conversion at all). Each (input
 * row, weight row) pair has one accumulator over all of K: the same order for every M. */
AI void tile_dp(const int M, const int R, const int pf, const char *w, size_t rb, const uint16_t *xb, int64_t K,
                float *out) {
    __m512 acc[VLM_GEMV_MAX_M][4];
    UNROLL for (int m = 0; m < M; m++) UNROLL for (int r = 0; r < R; r++) acc[m][r] = _mm512_setzero_ps();
    const int64_t K32 = K & ~(int64_t)31;
    for (int64_t k = 0; k < K32; k += 32) {
        __m512bh wv[4];
        UNROLL for (int r = 0; r < R; r++) {
            if (pf) _mm_prefetch(w + (size_t)(r + R) * rb + (size_t)k * 2, _MM_HINT_T0);
            wv[r] = (__m512bh)_mm512_loadu_si512((const void *)(w + (size_t)r * rb + (size_t)k * 2));
        }
        UNROLL for (int m = 0; m < M; m++) {
            __m512bh xv = (__m512bh)_mm512_loadu_si512((const void *)(xb + (size_t)m * (size_t)K + k));
            UNROLL for (int r = 0; r < R; r++) acc[m][r] = _mm512_dpbf16_ps(acc[m][r], wv[r], xv);
        }
    }
    if (K32 < K) {
        __mmask32 msk = (__mmask32)((1ull << (K - K32)) - 1);
        __m512bh wv[4];
        UNROLL for (int r = 0; r < R; r++) wv[r] =
            (__m512bh)_mm512_maskz_loadu_epi16(msk, w + (size_t)r * rb + (size_t)K32 * 2);
        UNROLL for (int m = 0; m < M; m++) {
            __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(msk, xb + (size_t)m * (size_t)K + K32);
            UNROLL for (int r = 0; r < R; r++) acc[m][r] = _mm512_dpbf16_ps(acc[m][r], wv[r], xv);
        }
    }
    UNROLL for (int m = 0; m < M; m++) UNROLL for (int r = 0; r < R; r++) out[m * R + r] =
        _mm512_reduce_add_ps(acc[m][r]);
}

AI void rows_dp(const int M, const int R, const int pf, float *y, const uint16_t *xb, const vlm_tensor *w,
                const float *bias, int64_t n0, int64_t n1) {
    int64_t N = w->shape[0], K = w->shape[w->ndim - 1];
    size_t rb = (size_t)K * 2;
    const char *base = (const char *)w->data;
    float out[VLM_GEMV_MAX_M * 4];
    int64_t n = n0;
    for (; n + R <= n1; n += R) {
        tile_dp(M, R, pf, base + (size_t)n * rb, rb, xb, K, out);
        for (int m = 0; m < M; m++)
            for (int r = 0; r < R; r++) y[(size_t)m * N + n + r] = out[m * R + r] + (bias ? bias[n + r] : 0.0f);
    }
    for (; n < n1; n++) {
        tile_dp(M, 1, pf, base + (size_t)n * rb, rb, xb, K, out);
        for (int m = 0; m < M; m++) y[(size_t)m * N + n] = out[m] + (bias ? bias[n] : 0.0f);
    }
}

void vlm_gemv_rows_bf16dp_avx512(float *y, const uint16_t *xb, const vlm_tensor *w, const float *bias, int M,
                                 int64_t n0, int64_t n1) {
    if (n0 >= n1 || w->dtype != VLM_DT_BF16) return;
    switch (M) { /* one specialised loop per row count */
    case 1:
        if (vlm_cpu_streams() == 1) rows_dp(1, 1, 0, y, xb, w, bias, n0, n1); /* one stream: see R_FOR */
        else rows_dp(1, R_FOR(1), 1, y, xb, w, bias, n0, n1);
        break;
    case 2: rows_dp(2, R_FOR(2), 1, y, xb, w, bias, n0, n1); break;
    case 3: rows_dp(3, R_FOR(3), 1, y, xb, w, bias, n0, n1); break;
    case 4: rows_dp(4, R_FOR(4), 1, y, xb, w, bias, n0, n1); break;
    case 5: rows_dp(5, R_FOR(5), 1, y, xb, w, bias, n0, n1); break;
    case 6: rows_dp(6, R_FOR(6), 1, y, xb, w, bias, n0, n1); break;
    case 7: rows_dp(7, R_FOR(7), 1, y, xb, w, bias, n0, n1); break;
    case 8: rows_dp(8, R_FOR(8), 1, y, xb, w, bias, n0, n1); break;
    default: break;
    }
}

void vlm_round_bf16_avx512(uint16_t *dst, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32)
        _mm512_storeu_si512(dst + i, (__m512i)_mm512_cvtne2ps_pbh(_mm512_loadu_ps(x + i + 16), _mm512_loadu_ps(x + i)));
    for (; i < n; i += 16) {
        __mmask16 m = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1u);
        _mm256_mask_storeu_epi16(dst + i, m, (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i)));
    }
}
