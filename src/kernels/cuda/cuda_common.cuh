/* Shared declarations of the CUDA backend (kernels/backend.h implemented for NVIDIA GPUs). */
#pragma once

#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

extern "C" {
#include "base/error.h"
#include "base/memory.h"
#include "kernels/backend.h"
}

/* Device-side state of one CUDA backend. Scratch buffers grow on first use of a larger shape and
 * are then reused: decode steps allocate nothing. */
struct cuda_impl {
    int device;
    cudaStream_t stream;
    cublasHandle_t cublas;
    cudaError_t sticky;         /* first CUDA error seen by an op; reported by sync */
    char sticky_what[128];
    int gemm_f32;               /* VLM_CUDA_GEMM_F32=1: f32 GEMM (parity) instead of bf16 tensor cores */
    void *act16;  size_t act16_cap;   /* activations converted to bf16/f16 for cuBLAS */
    void *wtmp;   size_t wtmp_cap;    /* dequantized or widened weights */
    int *ranges;  size_t ranges_cap;  /* per-row attention key ranges */
    int32_t *idx; size_t idx_cap;     /* ids / row indices copied from the host */
    float *scores; size_t scores_cap; /* attention scores of the small-query kernel */
};

static inline cuda_impl *impl_of(vlm_backend *be) { return (cuda_impl *)be->impl; }

/* Records the first failure; later calls are no-ops until sync reports it. */
void cuda_note(vlm_backend *be, cudaError_t e, const char *what);
void cuda_note_cublas(vlm_backend *be, cublasStatus_t s, const char *what);
/* Grows a scratch device buffer to at least `bytes`; returns NULL (and notes) on failure. */
void *cuda_scratch(vlm_backend *be, void **buf, size_t *cap, size_t bytes, const char *what);

/* Ops implemented in the .cu files */
void cuda_matmul(vlm_backend *be, float *y, const float *x, const vlm_tensor *w, const float *bias, int M);
void cuda_rmsnorm(vlm_backend *be, float *y, const float *x, const float *w, int M, int D, float eps);
void cuda_layernorm(vlm_backend *be, float *y, const float *x, const float *w, const float *b, int M, int D, float eps);
void cuda_rope(vlm_backend *be, float *x, int stride, const float *cos, const float *sin, int M, int n_heads,
               int head_dim);
void cuda_attention(vlm_backend *be, float *out, const float *q, const float *k, const float *v,
                    const vlm_attn_params *p);
void cuda_swiglu(vlm_backend *be, float *y, const float *gate, const float *up, size_t n);
void cuda_gelu(vlm_backend *be, float *x, size_t n);
void cuda_quick_gelu(vlm_backend *be, float *x, size_t n);
void cuda_add(vlm_backend *be, float *y, const float *x, size_t n);
void cuda_embed(vlm_backend *be, float *y, const vlm_tensor *table, const int32_t *ids, int n);
void cuda_gather_rows(vlm_backend *be, float *dst, const float *src, const int32_t *idx, int n, int row);
void cuda_scatter_rows(vlm_backend *be, float *dst, const int32_t *idx, const float *src, int n, int row);
void cuda_add_bias(vlm_backend *be, float *y, const float *bias, int M, int N);
vlm_status cuda_find_nonfinite(vlm_backend *be, const float *x, size_t n, int64_t *first);

/* Reads element i of a weight row of dtype t as f32 (plain and block formats). */
__device__ __forceinline__ float cuda_half_to_float(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float cuda_bf16_to_float(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }

#define CUDA_LAUNCH_CHECK(be, what) cuda_note((be), cudaGetLastError(), (what))
