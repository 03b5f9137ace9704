/* Element-wise and row-wise CPU kernels: norms, rotary, activations, add, embedding.
 * All are memory-bound; they are vectorized (AVX2, exp / erfc from simd_math.h) and split across
 * threads when the work is large enough to pay for waking them. */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_simd.h"
#include "kernels/cpu/ref.h"
#include "kernels/cpu/simd_math.h"

/* Below this many elements one thread does the whole job. */
enum { PAR_MIN_ELEMS = 32768 };

static int threads_for_elems(size_t n) { return n >= PAR_MIN_ELEMS ? vlm_threads() : 1; }

void vlm_cpu_rmsnorm(float *y, const float *x, const float *w, int M, int D, float eps) {
#pragma omp parallel for schedule(static) num_threads(threads_for_elems((size_t)M *D))
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * D;
        float *yr = y + (size_t)m * D;
        float ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int d = 0; d < D; d++) ss += xr[d] * xr[d];
        float r = 1.0f / sqrtf(ss / (float)D + eps);
#pragma omp simd
        for (int d = 0; d < D; d++) yr[d] = w[d] * (xr[d] * r);
    }
}

void vlm_cpu_layernorm(float *y, const float *x, const float *w, const float *b, int M, int D, float eps) {
#pragma omp parallel for schedule(static) num_threads(threads_for_elems((size_t)M *D))
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * D;
        float *yr = y + (size_t)m * D;
        float mean = 0, var = 0;
#pragma omp simd reduction(+ : mean)
        for (int d = 0; d < D; d++) mean += xr[d];
        mean /= (float)D;
#pragma omp simd reduction(+ : var)
        for (int d = 0; d < D; d++) var += (xr[d] - mean) * (xr[d] - mean);
        float r = 1.0f / sqrtf(var / (float)D + eps);
        if (b) {
#pragma omp simd
            for (int d = 0; d < D; d++) yr[d] = (xr[d] - mean) * r * w[d] + b[d];
        } else {
#pragma omp simd
            for (int d = 0; d < D; d++) yr[d] = (xr[d] - mean) * r * w[d];
        }
    }
}

void vlm_cpu_rope(float *x, int stride, const float *cos, const float *sin, int M, int n_heads, int head_dim) {
    int half = head_dim / 2;
#pragma omp parallel for schedule(static) num_threads(threads_for_elems((size_t)M *n_heads *head_dim))
    for (int m = 0; m < M; m++)
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)m * stride + (size_t)h * head_dim;
            const float *c = cos + (size_t)m * half, *s = sin + (size_t)m * half;
#pragma omp simd
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
}

/* ---- activations: 8 lanes at a time, scalar reference functions for the tails */
static inline __m256 silu8(__m256 g) {
    __m256 e = vlm_exp256(_mm256_sub_ps(_mm256_setzero_ps(), g));
    return _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static inline __m256 gelu8(__m256 x) {
    /* 0.5 x erfc(-x / sqrt 2): erfc of |z|, reflected (erfc(-z) = 2 - erfc(z)) for x > 0 */
    __m256 z = _mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.0f), x), _mm256_set1_ps(0.70710678118654752f));
    __m256 c = vlm_erfc256_pos(z);
    __m256 pos = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ);
    c = _mm256_blendv_ps(c, _mm256_sub_ps(_mm256_set1_ps(2.0f), c), pos);
    return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), c);
}

/* The same in scalar form, for the last n % 8 elements. */
static float gelu1(float x) {
    float buf[8] = {x};
    _mm256_storeu_ps(buf, gelu8(_mm256_loadu_ps(buf)));
    return buf[0];
}

/* Runs body over [0, n) in blocks of 8 lanes split across threads; `i` indexes the first lane. */
#define ELEMENTWISE(n, vec_body, tail_body)                                                                            \
    do {                                                                                                               \
        size_t n8_ = (n) / 8 * 8;                                                                                      \
        _Pragma("omp parallel for schedule(static) num_threads(threads_for_elems(n))") for (size_t i = 0; i < n8_;     \
                                                                                            i += 8) vec_body;          \
        for (size_t i = n8_; i < (n); i++) tail_body;                                                                  \
    } while (0)

/* The AVX-512 activations, in chunks split across threads; 0 when the AVX2 path must run. */
static int act_avx512(int op, float *y, const float *a, const float *b, size_t n) {
    if (!vlm_cpu_kernels_avx512()) return 0;
    enum { CHUNK = 16384 };
    size_t chunks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static) num_threads(threads_for_elems(n))
    for (size_t c = 0; c < chunks; c++)
        vlm_act_avx512(op, y, a, b, c * CHUNK, (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n);
    return 1;
}

void vlm_cpu_swiglu(float *y, const float *gate, const float *up, size_t n) {
    if (act_avx512(VLM_ACT_SWIGLU, y, gate, up, n)) return;
    ELEMENTWISE(n, _mm256_storeu_ps(y + i, _mm256_mul_ps(silu8(_mm256_loadu_ps(gate + i)), _mm256_loadu_ps(up + i))),
                y[i] = vlm_ref_silu(gate[i]) * up[i]);
}

void vlm_cpu_gelu(float *x, size_t n) {
    if (act_avx512(VLM_ACT_GELU, x, x, NULL, n)) return;
    ELEMENTWISE(n, _mm256_storeu_ps(x + i, gelu8(_mm256_loadu_ps(x + i))), x[i] = gelu1(x[i]));
}

void vlm_cpu_quick_gelu(float *x, size_t n) {
    if (act_avx512(VLM_ACT_QUICK_GELU, x, x, NULL, n)) return;
    const __m256 k = _mm256_set1_ps(1.702f);
    ELEMENTWISE(
        n,
        {
            __m256 v = _mm256_loadu_ps(x + i);
            __m256 e = vlm_exp256(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), k), v));
            _mm256_storeu_ps(x + i, _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e)));
        },
        x[i] = vlm_ref_quick_gelu(x[i]));
}

void vlm_cpu_add(float *y, const float *x, size_t n) {
    ELEMENTWISE(n, _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(x + i))),
                y[i] += x[i]);
}

void vlm_cpu_embed(float *y, const vlm_tensor *table, const int32_t *ids, int n) {
    int64_t D = table->shape[table->ndim - 1];
    size_t row_bytes = vlm_dtype_row_bytes(table->dtype, D);
#pragma omp parallel for schedule(static) num_threads(threads_for_elems((size_t)n *(size_t)D))
    for (int i = 0; i < n; i++)
        vlm_cpu_row_to_f32(table->dtype, (const char *)table->data + (size_t)ids[i] * row_bytes, y + (size_t)i * D, D);
}
