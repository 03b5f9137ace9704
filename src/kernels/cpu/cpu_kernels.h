/* The CPU backend's kernels (multi-threaded with OpenMP, SIMD chosen at run time: AVX-512 where
 * the CPU has it, else AVX2). Each has a scalar reference in ref.h that tests compare it with. */
#ifndef VLM_KERNELS_CPU_KERNELS_H
#define VLM_KERNELS_CPU_KERNELS_H

#include "base/pool.h"
#include "kernels/backend.h"

/* What every CPU kernel runs with: the backend's threads and its arithmetic precision. Kernels
 * read nothing else (no process-wide thread count): two backends with different settings coexist. */
typedef struct {
    vlm_pool *pool; /* the backend's threads; NULL: the calling thread alone */
    int bf16;       /* 1: matrix products round the activations to bf16 (one product per weight, HF's
                     * bf16 arithmetic); 0: f32-exact products (the default, parity with the reference) */
} vlm_cpu_ctx;

/* Input rows up to which a matrix product takes the small-M path (see vlm_cpu_matmul). */
enum { VLM_CPU_SMALL_M = 64 };

/* y[M, N] = x[M, K] · w[N, K]^T (+ bias). Weights F32, F16, BF16 or quantized (quant_kernels.h).
 * Small M (<= VLM_CPU_SMALL_M: decode, batched decode): register tiles of up to 8 input rows
 * against a few weight rows, every weight read once from memory; large M (prefill, vision): the
 * blocked GEMM, or AMX. Which rows agree bitwise with which is stated in matmul_cpu.c. */
void vlm_cpu_matmul(const vlm_cpu_ctx *c, float *y, const float *x, const vlm_tensor *w, const float *bias, int M);
/* Matrix-vector product with rows [n0, n1) of w for M (<= 8) input rows, on the calling thread. */
void vlm_cpu_gemv_rows(float *y, const float *x, const vlm_tensor *w, const float *bias, int M, int64_t n0, int64_t n1);
void vlm_cpu_rmsnorm(const vlm_cpu_ctx *c, float *y, const float *x, const float *w, int M, int D, float eps);
void vlm_cpu_layernorm(const vlm_cpu_ctx *c, float *y, const float *x, const float *w, const float *b, int M, int D,
                       float eps);
void vlm_cpu_rope(const vlm_cpu_ctx *c, float *x, int stride, const float *cos, const float *sin, int M, int n_heads,
                  int head_dim);
void vlm_cpu_attention(const vlm_cpu_ctx *c, float *out, const float *q, const float *k, const float *v,
                       const vlm_attn_params *p);
void vlm_cpu_swiglu(const vlm_cpu_ctx *c, float *y, const float *gate, const float *up, size_t n);
void vlm_cpu_gelu(const vlm_cpu_ctx *c, float *x, size_t n);
void vlm_cpu_quick_gelu(const vlm_cpu_ctx *c, float *x, size_t n);
void vlm_cpu_add(const vlm_cpu_ctx *c, float *y, const float *x, size_t n);
void vlm_cpu_embed(const vlm_cpu_ctx *c, float *y, const vlm_tensor *table, const int32_t *ids, int n);

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

/* How a decode product (one input row) reads its weights from memory, a property of the CPU's
 * memory system, measured on each:
 *   1: one sequential stream per thread, left to the hardware prefetchers. AMD Zen 4 (2 cores):
 *      bf16 28-31 GB/s, Q4_0 27-33 GB/s, against 21-25 / 23-25 with the 4-stream way.
 *   4: 4 weight rows side by side per thread and software prefetch 4 KB ahead. The Sapphire Rapids
 *      Xeon of earlier sessions: one stream per core stopped at ~14 GB/s, 4 streams reached 18-20,
 *      and the prefetch took Q4_0 from ~70% to ~90% of the probed bandwidth.
 * Default: 1 on AMD CPUs, 4 elsewhere; VLM_CPU_STREAMS=1|4 in the environment overrides, and
 * vlm_cpu_set_streams (perf tools, tests) sets it (0: back to the default). Results do not depend on it (batch invariance
 * included): only the order in which rows are visited changes, never a sum's order. */
void vlm_cpu_set_streams(int streams);
int vlm_cpu_streams(void);

#endif
