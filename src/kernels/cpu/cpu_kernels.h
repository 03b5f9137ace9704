/* The CPU backend's kernels (multi-threaded with OpenMP, SIMD chosen at run time: AVX-512 where
 * the CPU has it, else AVX2). Each has a scalar reference in ref.h that tests compare it with. */
#ifndef VLM_KERNELS_CPU_KERNELS_H
#define VLM_KERNELS_CPU_KERNELS_H

#include "kernels/backend.h"

/* y[M, N] = x[M, K] · w[N, K]^T (+ bias): GEMV for M <= 8 (weights streamed once from memory),
 * blocked GEMM above (weight micro-panels converted to f32 as they are packed, never a full f32
 * copy). Weights F32, F16 or BF16. */
void vlm_cpu_matmul(float *y, const float *x, const vlm_tensor *w, const float *bias, int M);
/* Matrix-vector product with rows [n0, n1) of w for M (<= 8) input rows, on the calling thread. */
void vlm_cpu_gemv_rows(float *y, const float *x, const vlm_tensor *w, const float *bias, int M, int64_t n0, int64_t n1);
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

/* 1 when the kernels take their AVX-512 paths (the CPU has AVX-512, VLM_NO_AVX512 is not set and
 * vlm_cpu_kernels_force_avx2 was not called with 1). */
int vlm_cpu_kernels_avx512(void);
/* Forces the AVX2 paths (on = 1) or returns to the automatic choice (on = 0); for tests and
 * benchmarks that compare the paths. Call it between ops, not while one runs. */
void vlm_cpu_kernels_force_avx2(int on);

/* For tests: 1 makes every scratch buffer request fail, so the kernels take the fallback paths
 * they use when memory runs out; 0 returns to normal. */
void vlm_cpu_kernels_test_no_scratch(int on);

/* Matrix products with M > 8 rows and BF16 weights can run on AMX (where the CPU has it), the f32
 * activations split into `parts` bf16 numbers whose products with the weights are exact:
 *   0: no AMX, f32 FMA kernels
 *   3: x = x1 + x2 + x3 exactly: f32 accuracy, only the summation order differs (the default)
 *   2: 16 mantissa bits of x: relative error <= 2^-17 per product
 *   1: bf16 activations: relative error <= 2^-9 per product (the fast, lower-precision path)
 * VLM_CPU_AMX_PARTS=N in the environment sets the initial value. */
void vlm_cpu_set_amx_parts(int parts);
int vlm_cpu_amx_parts(void);
/* 1 when AMX kernels can run on this CPU and kernel. */
int vlm_cpu_amx_available(void);

#endif
