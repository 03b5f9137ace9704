/* Matrix products on the CPU.
 * - Small M (decode, at most GEMV_MAX_M rows): every weight row is streamed once from memory and
 *   dotted with each input row; threads split the output columns. Memory-bandwidth bound.
 * - Large M (prefill, vision): threads take panels of PANEL_N weight rows, convert each panel to
 *   f32 in a per-thread buffer and multiply it with OpenBLAS's sgemm (single-threaded inside our
 *   parallel region). Never a full f32 copy of a weight matrix. */
#include <cblas.h>
#include <immintrin.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/quant_kernels.h"

enum { GEMV_MAX_M = 8, PANEL_N = 64 };

static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline __m256 load8_bf16(const uint16_t *p) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
}

void vlm_cpu_row_to_f32(vlm_dtype t, const void *row, float *dst, int64_t K) {
    vlm_to_f32(t, row, dst, (size_t)K);
}

float vlm_cpu_dot_row(vlm_dtype t, const void *row, const float *x, int64_t K) {
    int64_t k = 0;
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    float tail = 0;
    switch (t) {
    case VLM_DT_BF16: {
        const uint16_t *w = row;
        for (; k + 16 <= K; k += 16) {
            a0 = _mm256_fmadd_ps(load8_bf16(w + k), _mm256_loadu_ps(x + k), a0);
            a1 = _mm256_fmadd_ps(load8_bf16(w + k + 8), _mm256_loadu_ps(x + k + 8), a1);
        }
        for (; k < K; k++) tail += vlm_bf16_to_f32(w[k]) * x[k];
        break;
    }
    case VLM_DT_F16: {
        const uint16_t *w = row;
        for (; k + 8 <= K; k += 8)
            a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + k))), _mm256_loadu_ps(x + k), a0);
        for (; k < K; k++) tail += vlm_f16_to_f32(w[k]) * x[k];
        break;
    }
    case VLM_DT_F32: {
        const float *w = row;
        for (; k + 8 <= K; k += 8) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + k), _mm256_loadu_ps(x + k), a0);
        for (; k < K; k++) tail += w[k] * x[k];
        break;
    }
    default: return 0.0f;
    }
    return hsum256(_mm256_add_ps(a0, a1)) + tail;
}

void vlm_cpu_gemv_rows(float *y, const float *x, const vlm_tensor *w, const float *bias, int M, int64_t n0,
                       int64_t n1) {
    int64_t N = w->shape[0], K = w->shape[w->ndim - 1];
    size_t rb = vlm_dtype_row_bytes(w->dtype, K);
    for (int64_t n = n0; n < n1; n++) {
        const void *row = (const char *)w->data + (size_t)n * rb;
        float b = bias ? bias[n] : 0.0f;
        for (int m = 0; m < M; m++) y[(size_t)m * N + n] = vlm_cpu_dot_row(w->dtype, row, x + (size_t)m * K, K) + b;
    }
}

static void gemv(float *y, const float *x, const vlm_tensor *w, const float *bias, int M) {
    int64_t N = w->shape[0];
    const int64_t chunk = 16;
    int64_t nchunks = (N + chunk - 1) / chunk;
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < nchunks; c++) {
        int64_t n0 = c * chunk, n1 = n0 + chunk < N ? n0 + chunk : N;
        vlm_cpu_gemv_rows(y, x, w, bias, M, n0, n1);
    }
}

/* Per-thread f32 panel buffers, grown when a wider K arrives (first use of each shape only). */
static _Thread_local float *t_panel;
static _Thread_local size_t t_panel_cap;

static float *panel_buffer(size_t floats) {
    if (floats > t_panel_cap) {
        free(t_panel);
        t_panel = aligned_alloc(64, (floats * sizeof(float) + 63) / 64 * 64);
        t_panel_cap = t_panel ? floats : 0;
    }
    return t_panel;
}

static void gemm_panels(float *y, const float *x, const vlm_tensor *w, const float *bias, int M) {
    int64_t N = w->shape[0], K = w->shape[w->ndim - 1];
    size_t rb = vlm_dtype_row_bytes(w->dtype, K);
    int64_t npanels = (N + PANEL_N - 1) / PANEL_N;
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t p = 0; p < npanels; p++) {
        int64_t n0 = p * PANEL_N, nb = N - n0 < PANEL_N ? N - n0 : PANEL_N;
        const float *wp;
        if (w->dtype == VLM_DT_F32) {
            wp = (const float *)w->data + n0 * K;
        } else {
            float *buf = panel_buffer((size_t)(PANEL_N * K));
            if (!buf) { /* out of memory for a panel: fall back to the streaming path */
                vlm_cpu_gemv_rows(y, x, w, bias, M, n0, n0 + nb);
                continue;
            }
            for (int64_t r = 0; r < nb; r++)
                vlm_cpu_row_to_f32(w->dtype, (const char *)w->data + (size_t)(n0 + r) * rb, buf + r * K, K);
            wp = buf;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, (int)nb, (int)K, 1.0f, x, (int)K, wp, (int)K, 0.0f,
                    y + n0, (int)N);
        if (bias)
            for (int m = 0; m < M; m++)
                for (int64_t r = 0; r < nb; r++) y[(size_t)m * N + n0 + r] += bias[n0 + r];
    }
}

void vlm_cpu_matmul(float *y, const float *x, const vlm_tensor *w, const float *bias, int M) {
    if (vlm_dtype_is_quantized(w->dtype)) {
        vlm_cpu_matmul_quant(y, x, w, bias, M);
        return;
    }
    if (M <= GEMV_MAX_M || vlm_dtype_is_quantized(w->dtype)) gemv(y, x, w, bias, M);
    else gemm_panels(y, x, w, bias, M);
}
