/* Activations with AVX-512 (16 lanes; exp and erfc from simd_math.h): the compute-bound
 * element-wise ops (an exp and a division per element), twice as wide as the AVX2 versions. */
#include <immintrin.h>

#include "kernels/cpu/cpu_simd.h"
#include "kernels/cpu/simd_math.h"

static inline __m512 silu16(__m512 g) {
    __m512 e = vlm_exp512(_mm512_sub_ps(_mm512_setzero_ps(), g));
    return _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

static inline __m512 gelu16(__m512 x) {
    __m512 z = _mm512_mul_ps(_mm512_abs_ps(x), _mm512_set1_ps(0.70710678118654752f));
    __m512 c = vlm_erfc512_pos(z);
    __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
    c = _mm512_mask_sub_ps(c, pos, _mm512_set1_ps(2.0f), c);
    return _mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(0.5f), x), c);
}

static inline __m512 quick_gelu16(__m512 x) {
    __m512 e = vlm_exp512(_mm512_mul_ps(_mm512_set1_ps(-1.702f), x));
    return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
}

/* [i0, i1) with masked tails: the whole range, so callers need no scalar loop */
void vlm_act_avx512(int op, float *y, const float *a, const float *b, size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; i += 16) {
        __mmask16 m = i1 - i >= 16 ? 0xffff : (__mmask16)((1u << (i1 - i)) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(m, a + i), r;
        switch (op) {
        case VLM_ACT_SWIGLU: r = _mm512_mul_ps(silu16(v), _mm512_maskz_loadu_ps(m, b + i)); break;
        case VLM_ACT_GELU: r = gelu16(v); break;
        default: r = quick_gelu16(v); break;
        }
        _mm512_mask_storeu_ps(y + i, m, r);
    }
}
