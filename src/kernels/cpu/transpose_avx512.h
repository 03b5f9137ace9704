/* 16 x 16 in-register transposes for the AVX-512 kernels (include only from *_avx512.c files):
 * packing of GEMM operands and of attention key blocks, which are stored with the reduction
 * dimension contiguous but streamed k-major by the micro-kernels. */
#ifndef VLM_KERNELS_CPU_TRANSPOSE_AVX512_H
#define VLM_KERNELS_CPU_TRANSPOSE_AVX512_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "tensor/tensor.h"

#define VLM_AI static inline __attribute__((always_inline))
#define VLM_UNROLL _Pragma("GCC unroll 32")

/* In-register transpose of 16 x 16 floats: r[i] lane j  ->  r[j] lane i. */
VLM_AI void vlm_transpose16(__m512 r[16]) {
    __m512 a[16], b[16];
    VLM_UNROLL for (int i = 0; i < 8; i++) {
        a[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        a[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    VLM_UNROLL for (int q = 0; q < 4; q++) {
        __m512d a0 = _mm512_castps_pd(a[4 * q]), a1 = _mm512_castps_pd(a[4 * q + 1]);
        __m512d a2 = _mm512_castps_pd(a[4 * q + 2]), a3 = _mm512_castps_pd(a[4 * q + 3]);
        b[4 * q + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a0, a2));
        b[4 * q + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a0, a2));
        b[4 * q + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(a1, a3));
        b[4 * q + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(a1, a3));
    }
    /* b[4q + c] lane l holds rows 4q..4q+3 of column 4l + c */
    VLM_UNROLL for (int c = 0; c < 4; c++) {
        __m512 c0 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0x88), c1 = _mm512_shuffle_f32x4(b[c], b[4 + c], 0xdd);
        __m512 c2 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0x88),
               c3 = _mm512_shuffle_f32x4(b[8 + c], b[12 + c], 0xdd);
        r[c] = _mm512_shuffle_f32x4(c0, c2, 0x88);
        r[8 + c] = _mm512_shuffle_f32x4(c0, c2, 0xdd);
        r[4 + c] = _mm512_shuffle_f32x4(c1, c3, 0x88);
        r[12 + c] = _mm512_shuffle_f32x4(c1, c3, 0xdd);
    }
}

/* 16 consecutive elements (mask m) of a row of dtype dt as f32. */
VLM_AI __m512 vlm_load_row16(vlm_dtype dt, const char *p, __mmask16 m) {
    switch (dt) {
    case VLM_DT_BF16:
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
    case VLM_DT_F16: return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
    default: return _mm512_maskz_loadu_ps(m, p);
    }
}

/* Transposes rows [0, rows) (rows <= 16, the rest zero), columns [k0, k0 + kc) of a [*, K] matrix
 * into dst[k * ld + i] for i < 16 (store mask smask). */
VLM_AI void vlm_pack16(vlm_dtype dt, const char *src, size_t row_bytes, int rows, int64_t k0, int kc, float *dst,
                       int ld, __mmask16 smask) {
    size_t es = dt == VLM_DT_F32 ? 4 : 2;
    for (int k = 0; k < kc; k += 16) {
        int n = kc - k < 16 ? kc - k : 16;
        __mmask16 m = (__mmask16)((1u << n) - 1u);
        __m512 r[16];
        VLM_UNROLL for (int i = 0; i < 16; i++) r[i] =
            i < rows ? vlm_load_row16(dt, src + (size_t)i * row_bytes + (size_t)(k0 + k) * es, m) : _mm512_setzero_ps();
        vlm_transpose16(r);
        if (n == 16 && smask == 0xffff) {
            VLM_UNROLL for (int j = 0; j < 16; j++) _mm512_storeu_ps(dst + (size_t)(k + j) * ld, r[j]);
        } else {
            VLM_UNROLL for (int j = 0; j < 16; j++) if (j < n)
                _mm512_mask_storeu_ps(dst + (size_t)(k + j) * ld, smask, r[j]);
        }
    }
}

#endif
