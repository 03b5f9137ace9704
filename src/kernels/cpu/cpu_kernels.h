/* The CPU backend's kernels (multi-threaded with OpenMP, SIMD chosen at run time). Each has a
 * scalar reference in ref.h that tests compare it with. */
#ifndef VLM_KERNELS_CPU_KERNELS_H
#define VLM_KERNELS_CPU_KERNELS_H

#include "kernels/backend.h"

/* y[M, N] = x[M, K] · w[N, K]^T (+ bias): GEMV-style for small M (weights streamed once),
 * panel GEMM for large M (weight panels converted to f32 as they are used). */
void vlm_cpu_matmul(float *y, const float *x, const vlm_tensor *w, const float *bias, int M);
/* Matrix-vector product with rows [n0, n1) of w for M (<= 8) input rows. */
void vlm_cpu_gemv_rows(float *y, const float *x, const vlm_tensor *w, const float *bias, int M, int64_t n0,
                       int64_t n1);
void vlm_cpu_rmsnorm(float *y, const float *x, const float *w, int M, int D, float eps);
void vlm_cpu_layernorm(float *y, const float *x, const float *w, const float *b, int M, int D, float eps);
void vlm_cpu_rope(float *x, int stride, const float *cos, const float *sin, int M, int n_heads, int head_dim);
void vlm_cpu_attention(float *out, const float *q, const float *k, const float *v, const vlm_attn_params *p);
void vlm_cpu_swiglu(float *y, const float *gate, const float *up, size_t n);
void vlm_cpu_gelu(float *x, size_t n);
void vlm_cpu_quick_gelu(float *x, size_t n);
void vlm_cpu_add(float *y, const float *x, size_t n);
void vlm_cpu_embed(float *y, const vlm_tensor *table, const int32_t *ids, int n);

/* Dot product of a weight row (dtype t, K elements) with an f32 vector. */
float vlm_cpu_dot_row(vlm_dtype t, const void *row, const float *x, int64_t K);
/* Converts a weight row to f32. */
void vlm_cpu_row_to_f32(vlm_dtype t, const void *row, float *dst, int64_t K);

#endif
