/* The backend interface: the ops the model code is written against, once, for every device.
 * A backend owns device memory (host memory for the CPU backend) and implements each op on it.
 * Model code (src/model) only ever calls the vlm_* wrappers below.
 *
 * Conventions: activations are f32, row-major; `x[M, K]` means M rows of K floats. Weight matrices
 * are [N, K] (PyTorch's Linear layout) in any dtype the backend supports (BF16, F16, F32, Q8_0,
 * Q4_0). Ops do not fail; device errors are sticky and reported by vlm_sync. */
#ifndef VLM_KERNELS_BACKEND_H
#define VLM_KERNELS_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "base/pool.h"
#include "tensor/tensor.h"
#include "vlm.h" /* vlm_device: a backend is VLM_DEV_CPU or VLM_DEV_CUDA (vlm_load resolves auto) */

/* Attention over rows of q, k, v (each row: heads x head_dim, at the given strides).
 * - Decoder (causal = 1): queries are positions q_pos0 .. q_pos0 + n_q - 1 of a sequence whose
 *   keys/values are rows 0 .. n_kv - 1; query i attends keys 0 .. q_pos0 + i.
 * - Vision (causal = 0, segments): rows are split into segments [seg[s], seg[s+1]); a query
 *   attends the keys of its own segment only (windows, or one whole image). q and k have the
 *   same rows (n_q = n_kv). segments = NULL means one segment over all rows.
 * Grouped-query heads: query head h reads kv head h / (n_heads / n_kv_heads).
 * Paged keys and values (kv_blocks != NULL): key/value j of the sequence is row
 * kv_blocks[j / kv_block_size] * kv_block_size + j % kv_block_size of k and v (a block table over
 * a pool of blocks, as the engine's KV cache keeps them); otherwise row j. */
typedef struct {
    int n_q, n_kv, q_pos0, causal;
    const int *segments; /* host array of n_segments + 1 boundaries, or NULL */
    int n_segments;
    int n_heads, n_kv_heads, head_dim;
    int q_stride, kv_stride, out_stride; /* floats between consecutive rows */
    float scale;
    const int32_t *kv_blocks; /* host block table covering n_kv positions, or NULL */
    int kv_block_size;
} vlm_attn_params;

/* The row of k and v that holds key j (see kv_blocks above). */
static inline size_t vlm_attn_kv_row(const vlm_attn_params *p, int j) {
    if (!p->kv_blocks) return (size_t)j;
    return (size_t)p->kv_blocks[j / p->kv_block_size] * (size_t)p->kv_block_size + (size_t)(j % p->kv_block_size);
}

typedef struct vlm_backend vlm_backend;

typedef struct {
    /* memory */
    void *(*alloc)(vlm_backend *be, size_t bytes, const char *what); /* NULL + error on failure */
    void (*free)(vlm_backend *be, void *p);
    vlm_status (*to_device)(vlm_backend *be, void *dst, const void *src, size_t bytes);
    vlm_status (*to_host)(vlm_backend *be, void *dst, const void *src, size_t bytes);
    vlm_status (*sync)(vlm_backend *be);
    /* weights: `host` is a view into a checkpoint mapping. weight() results are released with
     * weight_free (a no-op for the CPU's views); weight_f32() results are ordinary device
     * allocations, released with free. */
    vlm_status (*weight)(vlm_backend *be, const vlm_tensor *host, vlm_tensor *dev);     /* as stored */
    vlm_status (*weight_f32)(vlm_backend *be, const vlm_tensor *host, vlm_tensor *dev); /* converted */
    void (*weight_free)(vlm_backend *be, vlm_tensor *dev);
    /* ops */
    void (*matmul)(vlm_backend *be, float *y, const float *x, const vlm_tensor *w, const float *bias, int M);
    void (*rmsnorm)(vlm_backend *be, float *y, const float *x, const float *w, int M, int D, float eps);
    void (*layernorm)(vlm_backend *be, float *y, const float *x, const float *w, const float *b, int M, int D,
                      float eps);
    void (*rope)(vlm_backend *be, float *x, int stride, const float *cos, const float *sin, int M, int n_heads,
                 int head_dim);
    void (*attention)(vlm_backend *be, float *out, const float *q, const float *k, const float *v,
                      const vlm_attn_params *p);
    void (*swiglu)(vlm_backend *be, float *y, const float *gate, const float *up, size_t n);
    void (*gelu)(vlm_backend *be, float *x, size_t n);
    void (*quick_gelu)(vlm_backend *be, float *x, size_t n);
    void (*add)(vlm_backend *be, float *y, const float *x, size_t n);
    void (*embed)(vlm_backend *be, float *y, const vlm_tensor *table, const int32_t *ids, int n);
    void (*gather_rows)(vlm_backend *be, float *dst, const float *src, const int32_t *idx, int n, int row);
    void (*scatter_rows)(vlm_backend *be, float *dst, const int32_t *idx, const float *src, int n, int row);
    void (*copy)(vlm_backend *be, float *dst, const float *src, size_t n);
    void (*destroy)(vlm_backend *be);
    /* *first = index of the first NaN or infinity in x[0, n), or -1 (waits for the device) */
    vlm_status (*find_nonfinite)(vlm_backend *be, const float *x, size_t n, int64_t *first);
} vlm_backend_ops;

/* How a backend computes (ggml passes n_threads per backend the same way): set at creation. */
typedef struct {
    int threads; /* host threads: the CPU kernels, and every backend's host-side work (image
                  * preprocessing, ONNX Runtime); <= 0: one per core this process may use */
    int bf16;    /* 1: matrix products round activations to bf16 (--precision bf16); 0: f32 */
} vlm_backend_options;

struct vlm_backend {
    const vlm_backend_ops *ops;
    vlm_device kind;                 /* VLM_DEV_CPU or VLM_DEV_CUDA */
    const char *name;                /* "cpu" / "cuda" */
    vlm_pool *pool;                  /* host threads (options.threads of them) */
    int threads;                     /* vlm_pool_threads(pool) */
    int bf16;                        /* options.bf16 */
    char device_name[128];           /* CPU model or GPU name */
    size_t bytes_in_use, bytes_peak; /* this backend's own allocations (activations, device weights) */
    void *impl;
};

/* Creates the backend for kind (VLM_DEV_CPU or VLM_DEV_CUDA; auto is the caller's to resolve) with
 * options o (NULL: defaults); VLM_ERR_UNAVAILABLE with the reason when it cannot run here. */
vlm_status vlm_backend_create(vlm_device kind, const vlm_backend_options *o, vlm_backend **out);
void vlm_backend_destroy(vlm_backend *be);
/* 1 when this build has the CUDA backend and a usable GPU is present; reason explains a 0. */
int vlm_cuda_available(char *reason, size_t cap);
/* Device memory in use and total of the GPU (0, 0 without CUDA). */
vlm_status vlm_gpu_memory(uint64_t *used, uint64_t *total);

/* What the model code asks of a backend, answered here rather than guessed from the device:
 * whether device buffers are host memory (the model may then read and write them in place, and
 * skip staging copies), and how many bytes a new allocation of activations may take (host memory
 * for the CPU backend, free GPU memory for a device backend; 0 when unknown: the allocation
 * itself decides). */
static inline int vlm_backend_host_memory(const vlm_backend *be) { return be->kind == VLM_DEV_CPU; }
uint64_t vlm_backend_available_memory(vlm_backend *be);

/* Backend constructors (kernels/cpu, kernels/cuda). */
vlm_status vlm_cpu_backend_create(const vlm_backend_options *o, vlm_backend **out);
vlm_status vlm_cuda_backend_create(vlm_backend **out);

/* ---- wrappers the model code calls ---- */
static inline void *vlm_dev_alloc(vlm_backend *be, size_t bytes, const char *what) {
    return be->ops->alloc(be, bytes, what);
}
static inline void vlm_dev_free(vlm_backend *be, void *p) {
    if (p) be->ops->free(be, p);
}
/* y[M, N] = x[M, K] · w[N, K]^T (+ bias[N]) */
static inline void vlm_matmul(vlm_backend *be, float *y, const float *x, const vlm_tensor *w, const float *bias,
                              int M) {
    be->ops->matmul(be, y, x, w, bias, M);
}
static inline void vlm_rmsnorm(vlm_backend *be, float *y, const float *x, const float *w, int M, int D, float eps) {
    be->ops->rmsnorm(be, y, x, w, M, D, eps);
}
static inline void vlm_layernorm(vlm_backend *be, float *y, const float *x, const float *w, const float *b, int M,
                                 int D, float eps) {
    be->ops->layernorm(be, y, x, w, b, M, D, eps);
}
/* Rotary embedding in place on M rows of n_heads x head_dim (rows `stride` floats apart):
 * x = x·cos + rotate_half(x)·sin with cos/sin [M, head_dim/2] (the same half for both halves). */
static inline void vlm_rope(vlm_backend *be, float *x, int stride, const float *cos, const float *sin, int M,
                            int n_heads, int head_dim) {
    be->ops->rope(be, x, stride, cos, sin, M, n_heads, head_dim);
}
static inline void vlm_attention(vlm_backend *be, float *out, const float *q, const float *k, const float *v,
                                 const vlm_attn_params *p) {
    be->ops->attention(be, out, q, k, v, p);
}
/* y = silu(gate) * up */
static inline void vlm_swiglu(vlm_backend *be, float *y, const float *gate, const float *up, size_t n) {
    be->ops->swiglu(be, y, gate, up, n);
}
/* exact (erf) GELU, in place */
static inline void vlm_gelu(vlm_backend *be, float *x, size_t n) { be->ops->gelu(be, x, n); }
/* x * sigmoid(1.702 x), in place */
static inline void vlm_quick_gelu(vlm_backend *be, float *x, size_t n) { be->ops->quick_gelu(be, x, n); }
/* y += x */
static inline void vlm_add(vlm_backend *be, float *y, const float *x, size_t n) { be->ops->add(be, y, x, n); }
/* y[i] = table[ids[i]] as f32; ids is a host array */
static inline void vlm_embed(vlm_backend *be, float *y, const vlm_tensor *table, const int32_t *ids, int n) {
    be->ops->embed(be, y, table, ids, n);
}
/* dst[i] = src[idx[i]] (rows of `row` floats); idx is a host array */
static inline void vlm_gather_rows(vlm_backend *be, float *dst, const float *src, const int32_t *idx, int n, int row) {
    be->ops->gather_rows(be, dst, src, idx, n, row);
}
/* dst[idx[i]] = src[i]; idx is a host array */
static inline void vlm_scatter_rows(vlm_backend *be, float *dst, const int32_t *idx, const float *src, int n, int row) {
    be->ops->scatter_rows(be, dst, idx, src, n, row);
}
static inline void vlm_copy(vlm_backend *be, float *dst, const float *src, size_t n) { be->ops->copy(be, dst, src, n); }
static inline vlm_status vlm_to_device(vlm_backend *be, void *dst, const void *src, size_t bytes) {
    return be->ops->to_device(be, dst, src, bytes);
}
static inline vlm_status vlm_to_host(vlm_backend *be, void *dst, const void *src, size_t bytes) {
    return be->ops->to_host(be, dst, src, bytes);
}
static inline vlm_status vlm_sync(vlm_backend *be) { return be->ops->sync(be); }

/* What a stage hands on must be finite: NaN weights or an overflow would otherwise give garbage
 * with exit 0. Checks x[rows, cols] (device memory of be; host memory when be is NULL) and fails
 * with VLM_ERR_RUNTIME naming `what` (the stage and tensor) and the first bad row and column. */
vlm_status vlm_check_finite(vlm_backend *be, const float *x, int64_t rows, int64_t cols, const char *what);
/* The host loop behind it (and behind the CPU backend's op). */
int64_t vlm_find_nonfinite_host(const float *x, size_t n);

#endif
