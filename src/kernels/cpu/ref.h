/* Scalar reference kernels: the plain definition of every op, written for clarity. The CPU backend's
 * fast paths (SIMD, tiling, threads) and the CUDA kernels are tested against these. */
#ifndef VLM_KERNELS_CPU_REF_H
#define VLM_KERNELS_CPU_REF_H

#include <stddef.h>

#include "kernels/backend.h"

/* One element of a weight matrix row as f32 (plain float dtypes). */
float vlm_ref_weight_at(const vlm_tensor *w, int64_t row, int64_t col);

void vlm_ref_matmul(float *y, const float *x, const vlm_tensor *w, const float *bias, int M);
void vlm_ref_rmsnorm(float *y, const float *x, const float *w, int M, int D, float eps);
void vlm_ref_layernorm(float *y, const float *x, const float *w, const float *b, int M, int D, float eps);
void vlm_ref_rope(float *x, int stride, const float *cos, const float *sin, int M, int n_heads, int head_dim);
/* One query row (index i of p->n_q) of attention; scratch holds n_kv floats. */
void vlm_ref_attention_row(float *out, const float *q, const float *k, const float *v, const vlm_attn_params *p, int i,
                           float *scratch);
void vlm_ref_attention(float *out, const float *q, const float *k, const float *v, const vlm_attn_params *p);
float vlm_ref_silu(float x);
float vlm_ref_gelu(float x);
float vlm_ref_quick_gelu(float x);
void vlm_ref_embed(float *y, const vlm_tensor *table, const int32_t *ids, int n);
/* The key range [lo, hi) query i may attend. */
void vlm_attn_key_range(const vlm_attn_params *p, int i, int *lo, int *hi);

#endif
