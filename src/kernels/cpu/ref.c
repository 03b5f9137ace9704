#include "kernels/cpu/ref.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"

float vlm_ref_weight_at(const vlm_tensor *w, int64_t row, int64_t col) {
    int64_t K = w->shape[w->ndim - 1];
    int64_t i = row * K + col;
    switch (w->dtype) {
    case VLM_DT_F32: return ((const float *)w->data)[i];
    case VLM_DT_BF16: return vlm_bf16_to_f32(((const uint16_t *)w->data)[i]);
    case VLM_DT_F16: return vlm_f16_to_f32(((const uint16_t *)w->data)[i]);
    default: return NAN; /* block formats have their own reference (tensor/quant.h) */
    }
}

void vlm_ref_matmul(float *y, const float *x, const vlm_tensor *w, const float *bias, int M) {
    int64_t N = w->shape[0], K = w->shape[w->ndim - 1];
    for (int m = 0; m < M; m++)
        for (int64_t n = 0; n < N; n++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k++) acc += (double)x[m * K + k] * vlm_ref_weight_at(w, n, k);
            y[m * N + n] = (float)acc + (bias ? bias[n] : 0.0f);
        }
}

void vlm_ref_rmsnorm(float *y, const float *x, const float *w, int M, int D, float eps) {
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * D;
        double ss = 0;
        for (int d = 0; d < D; d++) ss += (double)xr[d] * xr[d];
        float r = 1.0f / sqrtf((float)(ss / D) + eps);
        for (int d = 0; d < D; d++) y[(size_t)m * D + d] = w[d] * (xr[d] * r);
    }
}

void vlm_ref_layernorm(float *y, const float *x, const float *w, const float *b, int M, int D, float eps) {
    for (int m = 0; m < M; m++) {
        const float *xr = x + (size_t)m * D;
        double mean = 0, var = 0;
        for (int d = 0; d < D; d++) mean += xr[d];
        mean /= D;
        for (int d = 0; d < D; d++) var += (xr[d] - mean) * (xr[d] - mean);
        var /= D;
        float r = 1.0f / sqrtf((float)var + eps);
        for (int d = 0; d < D; d++) y[(size_t)m * D + d] = (float)(xr[d] - mean) * r * w[d] + (b ? b[d] : 0.0f);
    }
}

void vlm_ref_rope(float *x, int stride, const float *cos, const float *sin, int M, int n_heads, int head_dim) {
    int half = head_dim / 2;
    for (int m = 0; m < M; m++)
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)m * stride + (size_t)h * head_dim;
            const float *c = cos + (size_t)m * half, *s = sin + (size_t)m * half;
            for (int i = 0; i < half; i++) {
                float a = v[i], b = v[i + half];
                v[i] = a * c[i] - b * s[i];
                v[i + half] = b * c[i] + a * s[i];
            }
        }
}

void vlm_attn_key_range(const vlm_attn_params *p, int i, int *lo, int *hi) {
    if (p->causal) {
        *lo = 0;
        *hi = p->q_pos0 + i + 1;
        if (*hi > p->n_kv) *hi = p->n_kv;
        return;
    }
    *lo = 0;
    *hi = p->n_kv;
    if (!p->segments) return;
    for (int s = 0; s < p->n_segments; s++) {
        if (i >= p->segments[s] && i < p->segments[s + 1]) {
            *lo = p->segments[s];
            *hi = p->segments[s + 1];
            return;
        }
    }
    *lo = *hi = 0; /* a row outside every segment attends nothing */
}

void vlm_ref_attention_row(float *out, const float *q, const float *k, const float *v, const vlm_attn_params *p, int i,
                           float *scores) {
    int lo, hi, group = p->n_heads / p->n_kv_heads, hd = p->head_dim;
    vlm_attn_key_range(p, i, &lo, &hi);
    for (int h = 0; h < p->n_heads; h++) {
        const float *qr = q + (size_t)i * p->q_stride + (size_t)h * hd;
        int kh = h / group;
        float *o = out + (size_t)i * p->out_stride + (size_t)h * hd;
        float mx = -INFINITY;
        for (int j = lo; j < hi; j++) {
            const float *kr = k + (size_t)j * p->kv_stride + (size_t)kh * hd;
            float s = 0;
            for (int d = 0; d < hd; d++) s += qr[d] * kr[d];
            scores[j - lo] = s * p->scale;
            if (scores[j - lo] > mx) mx = scores[j - lo];
        }
        double sum = 0;
        for (int j = lo; j < hi; j++) {
            scores[j - lo] = expf(scores[j - lo] - mx);
            sum += scores[j - lo];
        }
        for (int d = 0; d < hd; d++) o[d] = 0;
        for (int j = lo; j < hi; j++) {
            const float *vr = v + (size_t)j * p->kv_stride + (size_t)kh * hd;
            float w = (float)(scores[j - lo] / sum);
            for (int d = 0; d < hd; d++) o[d] += w * vr[d];
        }
    }
}

void vlm_ref_attention(float *out, const float *q, const float *k, const float *v, const vlm_attn_params *p) {
    float *scores = vlm_alloc(sizeof(float) * (size_t)(p->n_kv > 0 ? p->n_kv : 1), "reference attention scores");
    if (!scores) return;
    for (int i = 0; i < p->n_q; i++) vlm_ref_attention_row(out, q, k, v, p, i, scores);
    free(scores);
}

float vlm_ref_silu(float x) { return x / (1.0f + expf(-x)); }
float vlm_ref_gelu(float x) { return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f)); }
float vlm_ref_quick_gelu(float x) { return x / (1.0f + expf(-1.702f * x)); }

void vlm_ref_embed(float *y, const vlm_tensor *table, const int32_t *ids, int n) {
    int64_t D = table->shape[1];
    for (int i = 0; i < n; i++)
        for (int64_t d = 0; d < D; d++) y[(size_t)i * D + d] = vlm_ref_weight_at(table, ids[i], d);
}
