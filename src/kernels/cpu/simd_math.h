/* Vectorized exp and erfc for the CPU kernels, AVX2 (always) and AVX-512 (in *_avx512.c files).
 * - exp: Cephes' single-precision scheme (x = n ln2 + r, |r| <= ln2/2, degree-6 polynomial),
 *   within 2 ulp of expf over the normal range; results below FLT_MIN flush to 0 on AVX2 (expf
 *   gives subnormals there; the difference is below 1.2e-38). NaN propagates.
 * - erfc: Numerical Recipes' erfcc (Chebyshev fit, fractional error < 1.2e-7 for every x >= 0),
 *   used for GELU as 0.5 x erfc(-x / sqrt 2): accurate in relative terms in the negative tail,
 *   where 1 + erf(x) cancels. */
#ifndef VLM_KERNELS_CPU_SIMD_MATH_H
#define VLM_KERNELS_CPU_SIMD_MATH_H

#include <immintrin.h>

#define VLM_EXP_LOG2E 1.44269504088896341f
#define VLM_EXP_C1 0.693359375f
#define VLM_EXP_C2 (-2.12194440e-4f)
#define VLM_EXP_P0 1.9875691500e-4f
#define VLM_EXP_P1 1.3981999507e-3f
#define VLM_EXP_P2 8.3334519073e-3f
#define VLM_EXP_P3 4.1665795894e-2f
#define VLM_EXP_P4 1.6666665459e-1f
#define VLM_EXP_P5 5.0000001201e-1f

static inline __m256 vlm_exp256(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3365402f), hi = _mm256_set1_ps(88.3762626f);
    __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
    x = _mm256_min_ps(hi, _mm256_max_ps(lo, x)); /* NaN stays NaN (max/min return the 2nd operand) */
    __m256 n =
        _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(VLM_EXP_LOG2E)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VLM_EXP_C1), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(VLM_EXP_C2), r);
    __m256 p = _mm256_set1_ps(VLM_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VLM_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VLM_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VLM_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VLM_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(VLM_EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    /* n in [-126, 128): 2^n by building the exponent field (2^128 = inf, as expf overflows) */
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    __m256 res = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    return _mm256_andnot_ps(under, res);
}

/* erfc(z) for z >= 0 */
static inline __m256 vlm_erfc256_pos(__m256 z) {
    __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(_mm256_set1_ps(0.5f), z, _mm256_set1_ps(1.0f)));
    __m256 p = _mm256_set1_ps(0.17087277f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
    p = _mm256_fnmadd_ps(z, z, p);
    return _mm256_mul_ps(t, vlm_exp256(p));
}

#ifdef __AVX512F__
static inline __m512 vlm_exp512(__m512 x) {
    /* scalef handles the whole range (subnormal results included); clamping keeps r finite */
    x = _mm512_min_ps(_mm512_set1_ps(88.7228394f), _mm512_max_ps(_mm512_set1_ps(-104.0f), x));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(VLM_EXP_LOG2E)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VLM_EXP_C1), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(VLM_EXP_C2), r);
    __m512 p = _mm512_set1_ps(VLM_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VLM_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VLM_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VLM_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VLM_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(VLM_EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(p, n);
}

static inline __m512 vlm_erfc512_pos(__m512 z) {
    __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_set1_ps(0.5f), z, _mm512_set1_ps(1.0f)));
    __m512 p = _mm512_set1_ps(0.17087277f);
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.82215223f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.48851587f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.13520398f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.27886807f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-0.18628806f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.09678418f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(0.37409196f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(1.00002368f));
    p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(-1.26551223f));
    p = _mm512_fnmadd_ps(z, z, p);
    return _mm512_mul_ps(t, vlm_exp512(p));
}
#endif

#endif
