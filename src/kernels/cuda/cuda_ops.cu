/* Row-wise and element-wise CUDA kernels: norms, rotary, activations, embedding, row gathers. */
#include <math.h>

#include "cuda_common.cuh"

static inline unsigned blocks_for(size_t n, unsigned threads) { return (unsigned)((n + threads - 1) / threads); }

/* ---- reductions ---- */
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Sum over a block of up to 1024 threads; every thread gets the result. */
__device__ float block_sum(float v) {
    __shared__ float part[32];
    __shared__ float total;
    int lane = threadIdx.x & 31, wid = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) part[wid] = v;
    __syncthreads();
    if (wid == 0) {
        float t = lane < (int)((blockDim.x + 31) >> 5) ? part[lane] : 0.0f;
        t = warp_sum(t);
        if (lane == 0) total = t;
    }
    __syncthreads();
    float r = total;
    __syncthreads();
    return r;
}

/* ---- norms: one block per row ---- */
__global__ void k_rmsnorm(float *y, const float *x, const float *w, int D, float eps) {
    const float *xr = x + (size_t)blockIdx.x * D;
    float *yr = y + (size_t)blockIdx.x * D;
    float ss = 0;
    for (int d = threadIdx.x; d < D; d += blockDim.x) ss += xr[d] * xr[d];
    ss = block_sum(ss);
    float r = rsqrtf(ss / (float)D + eps);
    for (int d = threadIdx.x; d < D; d += blockDim.x) yr[d] = w[d] * (xr[d] * r);
}

__global__ void k_layernorm(float *y, const float *x, const float *w, const float *b, int D, float eps) {
    const float *xr = x + (size_t)blockIdx.x * D;
    float *yr = y + (size_t)blockIdx.x * D;
    float s = 0;
    for (int d = threadIdx.x; d < D; d += blockDim.x) s += xr[d];
    float mean = block_sum(s) / (float)D;
    float v = 0;
    for (int d = threadIdx.x; d < D; d += blockDim.x) v += (xr[d] - mean) * (xr[d] - mean);
    float r = rsqrtf(block_sum(v) / (float)D + eps);
    for (int d = threadIdx.x; d < D; d += blockDim.x) yr[d] = (xr[d] - mean) * r * w[d] + (b ? b[d] : 0.0f);
}

void cuda_rmsnorm(vlm_backend *be, float *y, const float *x, const float *w, int M, int D, float eps) {
    if (M <= 0) return;
    k_rmsnorm<<<M, 256, 0, impl_of(be)->stream>>>(y, x, w, D, eps);
    CUDA_LAUNCH_CHECK(be, "rmsnorm");
}

void cuda_layernorm(vlm_backend *be, float *y, const float *x, const float *w, const float *b, int M, int D,
                    float eps) {
    if (M <= 0) return;
    k_layernorm<<<M, 256, 0, impl_of(be)->stream>>>(y, x, w, b, D, eps);
    CUDA_LAUNCH_CHECK(be, "layernorm");
}

/* ---- rotary: x = x·cos + rotate_half(x)·sin, cos/sin [M, head_dim/2] ---- */
__global__ void k_rope(float *x, int stride, const float *cs, const float *sn, int M, int n_heads, int half) {
    size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t total = (size_t)M * n_heads * half;
    if (t >= total) return;
    int i = (int)(t % half);
    size_t mh = t / half;
    int h = (int)(mh % n_heads), m = (int)(mh / n_heads);
    float *v = x + (size_t)m * stride + (size_t)h * 2 * half;
    float c = cs[(size_t)m * half + i], s = sn[(size_t)m * half + i];
    float a = v[i], b = v[i + half];
    v[i] = a * c - b * s;
    v[i + half] = b * c + a * s;
}

void cuda_rope(vlm_backend *be, float *x, int stride, const float *cos, const float *sin, int M, int n_heads,
               int head_dim) {
    size_t n = (size_t)M * n_heads * (head_dim / 2);
    if (!n) return;
    k_rope<<<blocks_for(n, 256), 256, 0, impl_of(be)->stream>>>(x, stride, cos, sin, M, n_heads, head_dim / 2);
    CUDA_LAUNCH_CHECK(be, "rope");
}

/* ---- activations ---- */
__global__ void k_swiglu(float *y, const float *g, const float *u, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
__global__ void k_gelu(float *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752440f));
}
__global__ void k_quick_gelu(float *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = x[i] / (1.0f + expf(-1.702f * x[i]));
}
__global__ void k_add(float *y, const float *x, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] += x[i];
}
__global__ void k_add_bias(float *y, const float *b, int M, int N) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (size_t)M * N) y[i] += b[i % N];
}

#define ELEMENTWISE(name, kernel, ...)                                                                                 \
    if (!n) return;                                                                                                    \
    kernel<<<blocks_for(n, 256), 256, 0, impl_of(be)->stream>>>(__VA_ARGS__);                                          \
    CUDA_LAUNCH_CHECK(be, name)

void cuda_swiglu(vlm_backend *be, float *y, const float *g, const float *u, size_t n) {
    ELEMENTWISE("swiglu", k_swiglu, y, g, u, n);
}
void cuda_gelu(vlm_backend *be, float *x, size_t n) { ELEMENTWISE("gelu", k_gelu, x, n); }
void cuda_quick_gelu(vlm_backend *be, float *x, size_t n) { ELEMENTWISE("quick_gelu", k_quick_gelu, x, n); }
void cuda_add(vlm_backend *be, float *y, const float *x, size_t n) { ELEMENTWISE("add", k_add, y, x, n); }
void cuda_add_bias(vlm_backend *be, float *y, const float *b, int M, int N) {
    size_t n = (size_t)M * N;
    ELEMENTWISE("bias", k_add_bias, y, b, M, N);
}

/* ---- embedding and row moves (indices copied from the host first) ---- */
static int32_t *upload_idx(vlm_backend *be, const int32_t *idx, int n) {
    cuda_impl *c = impl_of(be);
    int32_t *d = (int32_t *)cuda_scratch(be, (void **)&c->idx, &c->idx_cap, (size_t)n * sizeof(int32_t), "row indices");
    if (!d) return NULL;
    cuda_note(be, cudaMemcpyAsync(d, idx, (size_t)n * sizeof(int32_t), cudaMemcpyHostToDevice, c->stream), "indices");
    return d;
}

__device__ float weight_at(const uint8_t *row, vlm_dtype t, int64_t k) {
    switch (t) {
    case VLM_DT_F32: return ((const float *)row)[k];
    case VLM_DT_BF16: return cuda_bf16_to_float(((const uint16_t *)row)[k]);
    case VLM_DT_F16: return cuda_half_to_float(((const uint16_t *)row)[k]);
    case VLM_DT_Q8_0: {
        const uint8_t *blk = row + (k / 32) * 34;
        float d = cuda_half_to_float((uint16_t)(blk[0] | (blk[1] << 8)));
        return d * (float)(int8_t)blk[2 + k % 32];
    }
    case VLM_DT_Q4_0: {
        const uint8_t *blk = row + (k / 32) * 18;
        float d = cuda_half_to_float((uint16_t)(blk[0] | (blk[1] << 8)));
        int i = (int)(k % 32);
        int q = i < 16 ? (blk[2 + i] & 0x0f) : (blk[2 + i - 16] >> 4);
        return d * (float)(q - 8);
    }
    default: return 0.0f;
    }
}

__global__ void k_embed(float *y, const uint8_t *table, size_t row_bytes, vlm_dtype t, const int32_t *ids, int n,
                        int D) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)n * D) return;
    int r = (int)(i / D), d = (int)(i % D);
    y[i] = weight_at(table + (size_t)ids[r] * row_bytes, t, d);
}

void cuda_embed(vlm_backend *be, float *y, const vlm_tensor *table, const int32_t *ids, int n) {
    int D = (int)table->shape[table->ndim - 1];
    int32_t *d_ids = upload_idx(be, ids, n);
    if (!d_ids || !n) return;
    size_t total = (size_t)n * D;
    k_embed<<<blocks_for(total, 256), 256, 0, impl_of(be)->stream>>>(
        y, (const uint8_t *)table->data, vlm_dtype_row_bytes(table->dtype, D), table->dtype, d_ids, n, D);
    CUDA_LAUNCH_CHECK(be, "embed");
}

__global__ void k_gather(float *dst, const float *src, const int32_t *idx, int n, int row) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)n * row) return;
    size_t r = i / row, c = i % row;
    dst[i] = src[(size_t)idx[r] * row + c];
}
__global__ void k_scatter(float *dst, const int32_t *idx, const float *src, int n, int row) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)n * row) return;
    size_t r = i / row, c = i % row;
    dst[(size_t)idx[r] * row + c] = src[i];
}

void cuda_gather_rows(vlm_backend *be, float *dst, const float *src, const int32_t *idx, int n, int row) {
    int32_t *d = upload_idx(be, idx, n);
    size_t total = (size_t)n * row;
    if (!d || !total) return;
    k_gather<<<blocks_for(total, 256), 256, 0, impl_of(be)->stream>>>(dst, src, d, n, row);
    CUDA_LAUNCH_CHECK(be, "gather rows");
}

void cuda_scatter_rows(vlm_backend *be, float *dst, const int32_t *idx, const float *src, int n, int row) {
    int32_t *d = upload_idx(be, idx, n);
    size_t total = (size_t)n * row;
    if (!d || !total) return;
    k_scatter<<<blocks_for(total, 256), 256, 0, impl_of(be)->stream>>>(dst, d, src, n, row);
    CUDA_LAUNCH_CHECK(be, "scatter rows");
}

/* ---- the finiteness check (vlm_check_finite) ---- */
__global__ void k_first_nonfinite(const float *x, size_t n, unsigned long long *first) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        if (!isfinite(x[i])) atomicMin(first, (unsigned long long)i);
}

vlm_status cuda_find_nonfinite(vlm_backend *be, const float *x, size_t n, int64_t *first) {
    cuda_impl *c = impl_of(be);
    *first = -1;
    unsigned long long *d = NULL, h = ~0ull;
    cudaError_t e = cudaMallocAsync((void **)&d, sizeof *d, c->stream);
    if (e == cudaSuccess) e = cudaMemcpyAsync(d, &h, sizeof h, cudaMemcpyHostToDevice, c->stream);
    if (e == cudaSuccess && n) {
        unsigned blocks = blocks_for(n, 256);
        if (blocks > 4096) blocks = 4096; /* grid-stride loop */
        k_first_nonfinite<<<blocks, 256, 0, c->stream>>>(x, n, d);
        e = cudaGetLastError();
    }
    if (e == cudaSuccess) e = cudaMemcpyAsync(&h, d, sizeof h, cudaMemcpyDeviceToHost, c->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    if (d) cudaFreeAsync(d, c->stream);
    if (e != cudaSuccess)
        return vlm_err(VLM_ERR_RUNTIME, "CUDA error in the finiteness check: %s", cudaGetErrorString(e));
    if (h != ~0ull) *first = (int64_t)h;
    return VLM_OK;
}
