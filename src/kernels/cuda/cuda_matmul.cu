/* Matrix products on the GPU: y[M, N] = x[M, K] · w[N, K]^T (+ bias).
 * - M <= 8 (decode): one warp per output row streams the weight row once for all M inputs, in the
 *   stored dtype (BF16, F16, F32, Q8_0, Q4_0) with f32 accumulation — bandwidth bound.
 * - larger M: cuBLAS on tensor cores: activations rounded to bf16 (f16 for F16 weights), f32
 *   accumulation and output; block-quantized weights are first expanded to bf16. With
 *   VLM_CUDA_GEMM_F32=1 the weights are widened to f32 instead and the product is a plain f32 GEMM
 *   (the parity path, matching the CPU within the fixtures' tolerances). */
#include "cuda_common.cuh"

enum { GEMV_MAX_M = 8 };

__device__ __forceinline__ float warp_sum_mm(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Plain dtypes: lanes stride over K; 8 weights per lane per step for 16-bit types. */
__global__ void k_gemv_plain(float *y, const float *x, const uint8_t *w, vlm_dtype t, const float *bias, int M,
                             int64_t N, int64_t K) {
    int64_t n = (int64_t)blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (n >= N) return;
    float acc[GEMV_MAX_M];
    for (int m = 0; m < GEMV_MAX_M; m++) acc[m] = 0;
    if (t == VLM_DT_F32) {
        const float *row = (const float *)w + n * K;
        for (int64_t k = lane; k < K; k += 32) {
            float wv = row[k];
            for (int m = 0; m < M; m++) acc[m] += wv * x[(size_t)m * K + k];
        }
    } else {
        const uint16_t *row = (const uint16_t *)w + n * K;
        int bf = t == VLM_DT_BF16;
        int64_t k = (int64_t)lane * 8;
        if ((K & 7) == 0) {
            for (; k < K; k += 32 * 8) {
                uint4 pk = *(const uint4 *)(row + k); /* 8 x 16-bit weights */
                const uint16_t *h = (const uint16_t *)&pk;
                for (int j = 0; j < 8; j++) {
                    float wv = bf ? cuda_bf16_to_float(h[j]) : cuda_half_to_float(h[j]);
                    for (int m = 0; m < M; m++) acc[m] += wv * x[(size_t)m * K + k + j];
                }
            }
        } else {
            for (k = lane; k < K; k += 32) {
                float wv = bf ? cuda_bf16_to_float(row[k]) : cuda_half_to_float(row[k]);
                for (int m = 0; m < M; m++) acc[m] += wv * x[(size_t)m * K + k];
            }
        }
    }
    for (int m = 0; m < M; m++) {
        float s = warp_sum_mm(acc[m]);
        if (lane == 0) y[(size_t)m * N + n] = s + (bias ? bias[n] : 0.0f);
    }
}

/* Block formats: each lane takes whole 32-weight blocks. */
__global__ void k_gemv_blocks(float *y, const float *x, const uint8_t *w, vlm_dtype t, const float *bias, int M,
                              int64_t N, int64_t K) {
    int64_t n = (int64_t)blockIdx.x * (blockDim.x / 32) + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31;
    if (n >= N) return;
    int64_t nb = K / 32;
    size_t bsz = t == VLM_DT_Q8_0 ? 34 : 18;
    const uint8_t *row = w + (size_t)n * nb * bsz;
    float acc[GEMV_MAX_M];
    for (int m = 0; m < GEMV_MAX_M; m++) acc[m] = 0;
    for (int64_t b = lane; b < nb; b += 32) {
        const uint8_t *blk = row + (size_t)b * bsz;
        float d = cuda_half_to_float((uint16_t)(blk[0] | (blk[1] << 8)));
        float part[GEMV_MAX_M];
        for (int m = 0; m < M; m++) part[m] = 0;
        for (int i = 0; i < 32; i++) {
            float q = t == VLM_DT_Q8_0 ? (float)(int8_t)blk[2 + i]
                                       : (float)((i < 16 ? (blk[2 + i] & 0x0f) : (blk[2 + i - 16] >> 4)) - 8);
            for (int m = 0; m < M; m++) part[m] += q * x[(size_t)m * K + b * 32 + i];
        }
        for (int m = 0; m < M; m++) acc[m] += d * part[m];
    }
    for (int m = 0; m < M; m++) {
        float s = warp_sum_mm(acc[m]);
        if (lane == 0) y[(size_t)m * N + n] = s + (bias ? bias[n] : 0.0f);
    }
}

/* Conversions for the cuBLAS path. */
__global__ void k_f32_to_bf16(__nv_bfloat16 *dst, const float *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __float2bfloat16(src[i]);
}
__global__ void k_f32_to_f16(__half *dst, const float *src, size_t n) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) dst[i] = __float2half(src[i]);
}
/* Expands a weight matrix (any dtype) to bf16 or f32. */
__global__ void k_expand(void *dst, int to_f32, const uint8_t *w, vlm_dtype t, int64_t N, int64_t K) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= (size_t)N * K) return;
    int64_t n = (int64_t)(i / K), k = (int64_t)(i % K);
    float v;
    switch (t) {
    case VLM_DT_F32: v = ((const float *)w)[i]; break;
    case VLM_DT_BF16: v = cuda_bf16_to_float(((const uint16_t *)w)[i]); break;
    case VLM_DT_F16: v = cuda_half_to_float(((const uint16_t *)w)[i]); break;
    default: {
        size_t bsz = t == VLM_DT_Q8_0 ? 34 : 18;
        const uint8_t *blk = w + ((size_t)n * (K / 32) + (size_t)(k / 32)) * bsz;
        float d = cuda_half_to_float((uint16_t)(blk[0] | (blk[1] << 8)));
        int j = (int)(k % 32);
        v = t == VLM_DT_Q8_0 ? d * (float)(int8_t)blk[2 + j]
                             : d * (float)((j < 16 ? (blk[2 + j] & 0x0f) : (blk[2 + j - 16] >> 4)) - 8);
    }
    }
    if (to_f32) ((float *)dst)[i] = v;
    else ((__nv_bfloat16 *)dst)[i] = __float2bfloat16(v);
}

static unsigned nblocks(size_t n) { return (unsigned)((n + 255) / 256); }

void cuda_matmul(vlm_backend *be, float *y, const float *x, const vlm_tensor *w, const float *bias, int M) {
    cuda_impl *c = impl_of(be);
    int64_t N = w->shape[0], K = w->shape[w->ndim - 1];
    if (M <= 0 || N <= 0) return;
    if (M <= GEMV_MAX_M) {
        unsigned warps = 8, grid = (unsigned)((N + warps - 1) / warps);
        if (vlm_dtype_is_quantized(w->dtype))
            k_gemv_blocks<<<grid, warps * 32, 0, c->stream>>>(y, x, (const uint8_t *)w->data, w->dtype, bias, M, N, K);
        else k_gemv_plain<<<grid, warps * 32, 0, c->stream>>>(y, x, (const uint8_t *)w->data, w->dtype, bias, M, N, K);
        CUDA_LAUNCH_CHECK(be, "gemv");
        return;
    }
    const float one = 1.0f, zero = 0.0f;
    cublasStatus_t st;
    if (c->gemm_f32 || w->dtype == VLM_DT_F32) {
        const float *wf = (const float *)w->data;
        if (w->dtype != VLM_DT_F32) {
            float *tmp = (float *)cuda_scratch(be, &c->wtmp, &c->wtmp_cap, (size_t)N * K * 4, "widened weights");
            if (!tmp) return;
            k_expand<<<nblocks((size_t)N * K), 256, 0, c->stream>>>(tmp, 1, (const uint8_t *)w->data, w->dtype, N, K);
            wf = tmp;
        }
        /* column-major view: y^T[N, M] = w[N, K] · x^T[K, M] */
        st = cublasSgemm(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, M, (int)K, &one, wf, (int)K, x, (int)K, &zero, y,
                         (int)N);
    } else {
        int f16 = w->dtype == VLM_DT_F16;
        void *xa = cuda_scratch(be, &c->act16, &c->act16_cap, (size_t)M * K * 2, "16-bit activations");
        if (!xa) return;
        if (f16) k_f32_to_f16<<<nblocks((size_t)M * K), 256, 0, c->stream>>>((__half *)xa, x, (size_t)M * K);
        else k_f32_to_bf16<<<nblocks((size_t)M * K), 256, 0, c->stream>>>((__nv_bfloat16 *)xa, x, (size_t)M * K);
        const void *wd = w->data;
        if (vlm_dtype_is_quantized(w->dtype)) {
            void *tmp = cuda_scratch(be, &c->wtmp, &c->wtmp_cap, (size_t)N * K * 2, "expanded weights");
            if (!tmp) return;
            k_expand<<<nblocks((size_t)N * K), 256, 0, c->stream>>>(tmp, 0, (const uint8_t *)w->data, w->dtype, N, K);
            wd = tmp;
        }
        cudaDataType_t t16 = f16 ? CUDA_R_16F : CUDA_R_16BF;
        st = cublasGemmEx(c->cublas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, M, (int)K, &one, wd, t16, (int)K, xa, t16,
                          (int)K, &zero, y, CUDA_R_32F, (int)N, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    }
    cuda_note_cublas(be, st, "cuBLAS GEMM");
    CUDA_LAUNCH_CHECK(be, "gemm");
    if (bias) cuda_add_bias(be, y, bias, M, (int)N);
}
