/* GEMV with AVX2 + FMA (the baseline every supported CPU runs): the same scheme as gemv_avx512.c
 * with 8-wide vectors and fewer registers (16), so fewer weight rows side by side. Steps of 32
 * weights use the same reordered x layout as the AVX-512 kernel (vlm_gemv_reorder_x). */
#include <immintrin.h>

#include "kernels/cpu/hsum_avx2.h"

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_simd.h"
#include "tensor/tensor.h"

#define AI static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

enum { W_BF16_EO, W_BF16, W_F16, W_F32 };

void vlm_gemv_reorder_x(float *xp, const float *x, int M, int64_t K) {
    int64_t K32 = K & ~(int64_t)31;
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * K;
        float *o = xp + (size_t)m * K;
        for (int64_t k = 0; k < K32; k += 32)
            for (int i = 0; i < 16; i++) {
                o[k + i] = xr[k + 2 * i];
                o[k + 16 + i] = xr[k + 2 * i + 1];
            }
        for (int64_t k = K32; k < K; k++) o[k] = xr[k];
    }
}

AI __m256 bf16x8(const char *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

/* Quarter q (8 weights) of the 32-weight step at k, and the offset of the x elements it pairs with. */
AI __m256 load8(const int mode, const char *row, int64_t k, int q, int *xoff) {
    switch (mode) {
    case W_BF16_EO: {
        /* q 0/1: even/odd of weights k..k+15; q 2/3: even/odd of k+16..k+31 */
        __m256i v = _mm256_loadu_si256((const __m256i *)(row + 2 * (k + (q >> 1) * 16)));
        *xoff = (q & 1) * 16 + (q >> 1) * 8;
        if (q & 1) return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
        return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    }
    case W_BF16: *xoff = 8 * q; return bf16x8(row + 2 * (k + 8 * q));
    case W_F16: *xoff = 8 * q; return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(row + 2 * (k + 8 * q))));
    default: *xoff = 8 * q; return _mm256_loadu_ps((const float *)(row + 4 * (k + 8 * q)));
    }
}

AI float weight_at(const int mode, const char *row, int64_t k) {
    if (mode == W_F32) return ((const float *)row)[k];
    uint16_t h = ((const uint16_t *)row)[k];
    return mode == W_F16 ? vlm_f16_to_f32(h) : vlm_bf16_to_f32(h);
}

AI int elem_bytes(const int mode) { return mode == W_F32 ? 4 : 2; }

AI void tile(const int mode, const int M, const int R, const int pf, const char *w, size_t rb, const float *xv,
             const float *x, int64_t ldx, int64_t K, float *out) {
    __m256 acc[VLM_GEMV_MAX_M][4];
    UNROLL for (int m = 0; m < M; m++) UNROLL for (int r = 0; r < R; r++) acc[m][r] = _mm256_setzero_ps();
    const int64_t K32 = K & ~(int64_t)31;
    for (int64_t k = 0; k < K32; k += 32) {
        UNROLL for (int r = 0; r < R; r++) {
            /* the same place in the next group of rows: a whole tile ahead, never past this chunk */
            if (pf) _mm_prefetch(w + (size_t)(r + R) * rb + (size_t)k * elem_bytes(mode), _MM_HINT_T0);
            if (pf && elem_bytes(mode) == 4) _mm_prefetch(w + (size_t)(r + R) * rb + (size_t)k * 4 + 64, _MM_HINT_T0);
        }
        UNROLL for (int q = 0; q < 4; q++) {
            __m256 wq[4];
            int xoff = 0;
            UNROLL for (int r = 0; r < R; r++) wq[r] = load8(mode, w + (size_t)r * rb, k, q, &xoff);
            UNROLL for (int m = 0; m < M; m++) {
                __m256 xq = _mm256_loadu_ps(xv + (size_t)m * ldx + k + xoff);
                UNROLL for (int r = 0; r < R; r++) acc[m][r] = _mm256_fmadd_ps(wq[r], xq, acc[m][r]);
            }
        }
    }
    UNROLL for (int m = 0; m < M; m++) UNROLL for (int r = 0; r < R; r++) {
        float s = vlm_hsum8(acc[m][r]);
        for (int64_t k = K32; k < K; k++) s += weight_at(mode, w + (size_t)r * rb, k) * x[(size_t)m * ldx + k];
        out[m * R + r] = s;
    }
}

#define R_FOR(M) ((M) <= 2 ? 4 : (M) <= 4 ? 2 : 1)
#define GEMV_ROWS_NAME vlm_gemv_rows_avx2
#include "kernels/cpu/gemv_rows.inc"
