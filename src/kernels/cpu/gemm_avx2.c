/* GEMM pieces with AVX2 + FMA (the baseline path): 6 x 16 register tile (12 accumulators of the
 * 16 vector registers), packing by plain loops (converted rows, then a strided copy). */
#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/cpu_simd.h"
#include "tensor/tensor.h"

#define UNROLL _Pragma("GCC unroll 16")

enum { MR = 6, NR = 16, KC_MAX = 1024 };

static void pack_w(vlm_dtype dt, const void *w, size_t row_bytes, int rows, int64_t k0, int kc, float *bp) {
    size_t es = dt == VLM_DT_F32 ? 4 : 2;
    float tmp[KC_MAX];
    for (int r = 0; r < NR; r++) {
        if (r < rows) {
            for (int k0c = 0; k0c < kc; k0c += KC_MAX) { /* kc never exceeds KC_MAX in practice */
                int n = kc - k0c < KC_MAX ? kc - k0c : KC_MAX;
                vlm_to_f32(dt, (const char *)w + (size_t)r * row_bytes + (size_t)(k0 + k0c) * es, tmp, (size_t)n);
                for (int k = 0; k < n; k++) bp[(size_t)(k0c + k) * NR + r] = tmp[k];
            }
        } else {
            for (int k = 0; k < kc; k++) bp[(size_t)k * NR + r] = 0.0f;
        }
    }
}

static void pack_x(const float *x, int64_t ldx, int rows, int64_t k0, int kc, float *ap) {
    for (int i = 0; i < MR; i++) {
        const float *xr = x + (size_t)i * (size_t)ldx + k0;
        if (i < rows)
            for (int k = 0; k < kc; k++) ap[(size_t)k * MR + i] = xr[k];
        else
            for (int k = 0; k < kc; k++) ap[(size_t)k * MR + i] = 0.0f;
    }
}

static inline __m256i tail_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

static void kernel(int kc, const float *ap, const float *bp, float *c, int64_t ldc, int rows, int cols, int accumulate,
                   const float *bias) {
    __m256 acc[MR][2];
    UNROLL for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m256 b0 = _mm256_load_ps(bp), b1 = _mm256_load_ps(bp + 8);
        UNROLL for (int i = 0; i < MR; i++) {
            __m256 a = _mm256_broadcast_ss(ap + i);
            acc[i][0] = _mm256_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm256_fmadd_ps(a, b1, acc[i][1]);
        }
        ap += MR;
        bp += NR;
    }
    __m256i m0 = tail_mask(cols), m1 = tail_mask(cols - 8);
    __m256 bias0 = bias ? _mm256_maskload_ps(bias, m0) : _mm256_setzero_ps();
    __m256 bias1 = bias ? _mm256_maskload_ps(bias + 8, m1) : _mm256_setzero_ps();
    UNROLL for (int i = 0; i < MR; i++) {
        if (i >= rows) break;
        float *ci = c + (size_t)i * ldc;
        __m256 v0 = acc[i][0], v1 = acc[i][1];
        if (accumulate) {
            v0 = _mm256_add_ps(v0, _mm256_maskload_ps(ci, m0));
            v1 = _mm256_add_ps(v1, _mm256_maskload_ps(ci + 8, m1));
        } else {
            v0 = _mm256_add_ps(v0, bias0);
            v1 = _mm256_add_ps(v1, bias1);
        }
        _mm256_maskstore_ps(ci, m0, v0);
        _mm256_maskstore_ps(ci + 8, m1, v1);
    }
}

const vlm_gemm_isa vlm_gemm_avx2 = {.mr = MR, .nr = NR, .pack_w = pack_w, .pack_x = pack_x, .kernel = kernel};
