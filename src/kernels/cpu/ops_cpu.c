/* Element-wise and row-wise CPU kernels: norms, rotary, activations, add, embedding.
 * All are memory-bound; they are vectorized (AVX2, exp / erfc from simd_math.h) and split across
 * threads when the work is large enough to pay for waking them. */
#include <immintrin.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_simd.h"
#include "kernels/cpu/ref.h"
#include "kernels/cpu/simd_math.h"

/* Below this many elements one thread does the whole job. */
enum { PAR_MIN_ELEMS = 32768 };

static int threads_for_elems(const vlm_cpu_ctx *c, size_t n) {
    return n >= PAR_MIN_ELEMS ? vlm_pool_threads(c->pool) : 1;
}

/* Row-wise ops: tasks of whole rows, about 4 per thread. */
typedef struct {
    float *y;
    const float *x, *w, *b, *cos, *sin;
    int M, D, stride, n_heads, rows_per_task;
    float eps;
} rows_job;

static void run_rows(const vlm_cpu_ctx *c, rows_job *j, size_t elems, vlm_pool_fn fn) {
    int threads = threads_for_elems(c, elems);
    int per = (j->M + 4 * threads - 1) / (4 * threads);
    j->rows_per_task = per < 1 ? 1 : per;
    vlm_pool_run(c->pool, threads, (j->M + j->rows_per_task - 1) / j->rows_per_task, fn, j);
}

static void rmsnorm_task(void *arg, int64_t t, int thread) {
    const rows_job *j = arg;
    const int D = j->D;
    int m1 = (int)(t + 1) * j->rows_per_task < j->M ? (int)(t + 1) * j->rows_per_task : j->M;
    for (int m = (int)t * j->rows_per_task; m < m1; m++) {
        const float *xr = j->x + (size_t)m * D;
        float *yr = j->y + (size_t)m * D;
        /* the sum of squares in double: a float sum of 2048+ terms drifts by several ulp with the
         * order the compiler picks (vector lanes at -O2, one by one at -O0), and this is cheap */
        double ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
        float r = 1.0f / sqrtf((float)(ss / D) + j->eps);
        const float *w = j->w;
#pragma omp simd
        for (int d = 0; d < D; d++) yr[d] = w[d] * (xr[d] * r);
    }
}

void vlm_cpu_rmsnorm(const vlm_cpu_ctx *c, float *y, const float *x, const float *w, int M, int D, float eps) {
    rows_job j = {.y = y, .x = x, .w = w, .M = M, .D = D, .eps = eps};
    run_rows(c, &j, (size_t)M * (size_t)D, rmsnorm_task);
}

static void layernorm_task(void *arg, int64_t t, int thread) {
    const rows_job *j = arg;
    const int D = j->D;
    const float *w = j->w, *b = j->b;
    int m1 = (int)(t + 1) * j->rows_per_task < j->M ? (int)(t + 1) * j->rows_per_task : j->M;
    for (int m = (int)t * j->rows_per_task; m < m1; m++) {
        const float *xr = j->x + (size_t)m * D;
        float *yr = j->y + (size_t)m * D;
        float mean = 0, var = 0;
#pragma omp simd reduction(+ : mean)
        for (int d = 0; d < D; d++) mean += xr[d];
        mean /= (float)D;
#pragma omp simd reduction(+ : var)
        for (int d = 0; d < D; d++) var += (xr[d] - mean) * (xr[d] - mean);
        float r = 1.0f / sqrtf(var / (float)D + j->eps);
        if (b) {
#pragma omp simd
            for (int d = 0; d < D; d++) yr[d] = (xr[d] - mean) * r * w[d] + b[d];
        } else {
#pragma omp simd
            for (int d = 0; d < D; d++) yr[d] = (xr[d] - mean) * r * w[d];
        }
    }
}

void vlm_cpu_layernorm(const vlm_cpu_ctx *c, float *y, const float *x, const float *w, const float *b, int M, int D,
                       float eps) {
    rows_job j = {.y = y, .x = x, .w = w, .b = b, .M = M, .D = D, .eps = eps};
    run_rows(c, &j, (size_t)M * (size_t)D, layernorm_task);
}

static void rope_task(void *arg, int64_t t, int thread) {
    const rows_job *j = arg;
    const int half = j->D / 2;
    int m1 = (int)(t + 1) * j->rows_per_task < j->M ? (int)(t + 1) * j->rows_per_task : j->M;
    for (int m = (int)t * j->rows_per_task; m < m1; m++)
        for (int h = 0; h < j->n_heads; h++) {
            float *v = j->y + (size_t)m * j->stride + (size_t)h * j->D;
            const float *c = j->cos + (size_t)m * half, *s = j->sin + (size_t)m * half;
#pragma omp simd
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
}

void vlm_cpu_rope(const vlm_cpu_ctx *c, float *x, int stride, const float *cos, const float *sin, int M, int n_heads,
                  int head_dim) {
    rows_job j = {.y = x, .cos = cos, .sin = sin, .M = M, .D = head_dim, .stride = stride, .n_heads = n_heads};
    run_rows(c, &j, (size_t)M * (size_t)n_heads * (size_t)head_dim, rope_task);
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

/* Element-wise ops: chunks of CHUNK elements (a multiple of 16), about 4 per thread at most. */
enum { CHUNK = 16384 };
typedef void (*span_fn)(int op, float *y, const float *a, const float *b, size_t i0, size_t i1);
typedef struct {
    span_fn fn;
    int op;
    float *y;
    const float *a, *b;
    size_t n, chunk;
} elem_job;

static void elem_task(void *arg, int64_t t, int thread) {
    const elem_job *j = arg;
    size_t i0 = (size_t)t * j->chunk, i1 = i0 + j->chunk < j->n ? i0 + j->chunk : j->n;
    j->fn(j->op, j->y, j->a, j->b, i0, i1);
}

static void run_elems(const vlm_cpu_ctx *c, span_fn fn, int op, float *y, const float *a, const float *b, size_t n) {
    int threads = threads_for_elems(c, n);
    size_t chunk = (n + 4 * (size_t)threads - 1) / (4 * (size_t)threads);
    chunk = chunk < CHUNK ? CHUNK : (chunk + 15) / 16 * 16;
    elem_job j = {.fn = fn, .op = op, .y = y, .a = a, .b = b, .n = n, .chunk = chunk};
    vlm_pool_run(c->pool, threads, (int64_t)((n + chunk - 1) / chunk), elem_task, &j);
}

/* The AVX2 spans: 8 lanes at a time, the scalar reference functions for the tails. */
enum { ACT_ADD = 100 };
static void span_avx2(int op, float *y, const float *a, const float *b, size_t i0, size_t i1) {
    size_t i = i0;
    switch (op) {
    case VLM_ACT_SWIGLU:
        for (; i + 8 <= i1; i += 8)
            _mm256_storeu_ps(y + i, _mm256_mul_ps(silu8(_mm256_loadu_ps(a + i)), _mm256_loadu_ps(b + i)));
        for (; i < i1; i++) y[i] = vlm_ref_silu(a[i]) * b[i];
        break;
    case VLM_ACT_GELU:
        for (; i + 8 <= i1; i += 8) _mm256_storeu_ps(y + i, gelu8(_mm256_loadu_ps(a + i)));
        for (; i < i1; i++) y[i] = gelu1(a[i]);
        break;
    case VLM_ACT_QUICK_GELU: {
        const __m256 k = _mm256_set1_ps(1.702f);
        for (; i + 8 <= i1; i += 8) {
            __m256 v = _mm256_loadu_ps(a + i);
            __m256 e = vlm_exp256(_mm256_mul_ps(_mm256_sub_ps(_mm256_setzero_ps(), k), v));
            _mm256_storeu_ps(y + i, _mm256_div_ps(v, _mm256_add_ps(_mm256_set1_ps(1.0f), e)));
        }
        for (; i < i1; i++) y[i] = vlm_ref_quick_gelu(a[i]);
        break;
    }
    default: /* ACT_ADD: y += a */
        for (; i + 8 <= i1; i += 8)
            _mm256_storeu_ps(y + i, _mm256_add_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(a + i)));
        for (; i < i1; i++) y[i] += a[i];
        break;
    }
}

static void act(const vlm_cpu_ctx *c, int op, float *y, const float *a, const float *b, size_t n) {
    run_elems(c, vlm_cpu_kernels_avx512() ? vlm_act_avx512 : span_avx2, op, y, a, b, n);
}

void vlm_cpu_swiglu(const vlm_cpu_ctx *c, float *y, const float *gate, const float *up, size_t n) {
    act(c, VLM_ACT_SWIGLU, y, gate, up, n);
}

void vlm_cpu_gelu(const vlm_cpu_ctx *c, float *x, size_t n) { act(c, VLM_ACT_GELU, x, x, NULL, n); }

void vlm_cpu_quick_gelu(const vlm_cpu_ctx *c, float *x, size_t n) { act(c, VLM_ACT_QUICK_GELU, x, x, NULL, n); }

void vlm_cpu_add(const vlm_cpu_ctx *c, float *y, const float *x, size_t n) {
    run_elems(c, span_avx2, ACT_ADD, y, x, NULL, n);
}

typedef struct {
    float *y;
    const vlm_tensor *table;
    const int32_t *ids;
    int64_t D;
} embed_job;

static void embed_task(void *arg, int64_t i, int thread) {
    const embed_job *j = arg;
    size_t row_bytes = vlm_dtype_row_bytes(j->table->dtype, j->D);
    vlm_cpu_row_to_f32(j->table->dtype, (const char *)j->table->data + (size_t)j->ids[i] * row_bytes,
                       j->y + (size_t)i * (size_t)j->D, j->D);
}

void vlm_cpu_embed(const vlm_cpu_ctx *c, float *y, const vlm_tensor *table, const int32_t *ids, int n) {
    embed_job j = {.y = y, .table = table, .ids = ids, .D = table->shape[table->ndim - 1]};
    vlm_pool_run(c->pool, threads_for_elems(c, (size_t)n * (size_t)j.D), n, embed_task, &j);
}
