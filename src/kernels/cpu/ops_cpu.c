/* Element-wise and row-wise CPU kernels: norms, rotary, activations, embedding, attention. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/ref.h"

/* Element-wise loops split into chunks big enough to be worth a thread. */
#define PAR_FOR_CHUNKS(n, body)                                             \
    _Pragma("omp parallel for schedule(static) if ((n) > 16384)")           \
    for (size_t i = 0; i < (n); i++) body

void vlm_cpu_rmsnorm(float *y, const float *x, const float *w, int M, int D, float eps) {
#pragma omp parallel for schedule(static) if (M > 1)
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
#pragma omp parallel for schedule(static) if (M > 1)
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
#pragma omp simd
        for (int d = 0; d < D; d++) yr[d] = (xr[d] - mean) * r * w[d] + (b ? b[d] : 0.0f);
    }
}

void vlm_cpu_rope(float *x, int stride, const float *cos, const float *sin, int M, int n_heads, int head_dim) {
    int half = head_dim / 2;
#pragma omp parallel for schedule(static) if (M > 4)
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

void vlm_cpu_swiglu(float *y, const float *gate, const float *up, size_t n) {
    PAR_FOR_CHUNKS(n, { y[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i]; });
}

void vlm_cpu_gelu(float *x, size_t n) { PAR_FOR_CHUNKS(n, { x[i] = vlm_ref_gelu(x[i]); }); }

void vlm_cpu_quick_gelu(float *x, size_t n) { PAR_FOR_CHUNKS(n, { x[i] = x[i] / (1.0f + expf(-1.702f * x[i])); }); }

void vlm_cpu_add(float *y, const float *x, size_t n) { PAR_FOR_CHUNKS(n, { y[i] += x[i]; }); }

void vlm_cpu_embed(float *y, const vlm_tensor *table, const int32_t *ids, int n) {
    int64_t D = table->shape[table->ndim - 1];
    size_t row_bytes = vlm_dtype_row_bytes(table->dtype, D);
#pragma omp parallel for schedule(static) if (n > 16)
    for (int i = 0; i < n; i++)
        vlm_cpu_row_to_f32(table->dtype, (const char *)table->data + (size_t)ids[i] * row_bytes, y + (size_t)i * D, D);
}

/* Attention, one query row at a time per thread, keys in blocks with an online softmax: memory
 * stays linear in the number of keys (never an n_q x n_kv matrix). */
enum { ATT_KB = 256 };

void vlm_cpu_attention(float *out, const float *q, const float *k, const float *v, const vlm_attn_params *p) {
    int hd = p->head_dim, group = p->n_heads / p->n_kv_heads;
    int total = p->n_q * p->n_heads;
#pragma omp parallel
    {
        float scores[ATT_KB];
        float acc[512];
#pragma omp for schedule(dynamic, 4)
        for (int t = 0; t < total; t++) {
            int i = t / p->n_heads, h = t % p->n_heads, kh = h / group;
            int lo, hi;
            vlm_attn_key_range(p, i, &lo, &hi);
            const float *qr = q + (size_t)i * p->q_stride + (size_t)h * hd;
            float *o = out + (size_t)i * p->out_stride + (size_t)h * hd;
            float mx = -INFINITY, sum = 0;
            for (int d = 0; d < hd; d++) acc[d] = 0;
            for (int j0 = lo; j0 < hi; j0 += ATT_KB) {
                int nb = hi - j0 < ATT_KB ? hi - j0 : ATT_KB;
                float bmx = -INFINITY;
                for (int j = 0; j < nb; j++) {
                    const float *kr = k + (size_t)(j0 + j) * p->kv_stride + (size_t)kh * hd;
                    float s = 0;
#pragma omp simd reduction(+ : s)
                    for (int d = 0; d < hd; d++) s += qr[d] * kr[d];
                    scores[j] = s * p->scale;
                    if (scores[j] > bmx) bmx = scores[j];
                }
                float nmx = bmx > mx ? bmx : mx;
                float corr = expf(mx - nmx);
                sum *= corr;
                for (int d = 0; d < hd; d++) acc[d] *= corr;
                for (int j = 0; j < nb; j++) {
                    float e = expf(scores[j] - nmx);
                    sum += e;
                    const float *vr = v + (size_t)(j0 + j) * p->kv_stride + (size_t)kh * hd;
#pragma omp simd
                    for (int d = 0; d < hd; d++) acc[d] += e * vr[d];
                }
                mx = nmx;
            }
            float inv = sum > 0 ? 1.0f / sum : 0.0f;
            for (int d = 0; d < hd; d++) o[d] = acc[d] * inv;
        }
    }
}
