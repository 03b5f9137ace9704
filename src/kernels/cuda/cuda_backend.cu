/* The CUDA backend: device memory through cudaMalloc (counted for the in-use / peak figures),
 * weights uploaded once per load, ops on one stream, errors sticky until vlm_sync. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda_common.cuh"

extern "C" {
#include "base/memory.h"
}

void cuda_note(vlm_backend *be, cudaError_t e, const char *what) {
    cuda_impl *c = impl_of(be);
    if (e == cudaSuccess || c->sticky != cudaSuccess) return;
    c->sticky = e;
    snprintf(c->sticky_what, sizeof c->sticky_what, "%s", what);
}

void cuda_note_cublas(vlm_backend *be, cublasStatus_t s, const char *what) {
    if (s != CUBLAS_STATUS_SUCCESS) cuda_note(be, cudaErrorUnknown, what);
}

/* Allocations carry a small header with their size, for the accounting. */
struct alloc_hdr {
    size_t size;
    size_t pad[31]; /* keeps the payload 256-byte aligned */
};

static void *cu_alloc(vlm_backend *be, size_t bytes, const char *what) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, sizeof(alloc_hdr) + bytes);
    if (e != cudaSuccess) {
        size_t free_b = 0, total = 0;
        cudaMemGetInfo(&free_b, &total);
        vlm_err(VLM_ERR_NOMEM, "out of GPU memory allocating %zu bytes for %s (%zu MB free of %zu MB): %s", bytes, what,
                free_b >> 20, total >> 20, cudaGetErrorString(e));
        cudaGetLastError();
        return NULL;
    }
    alloc_hdr h = {};
    h.size = bytes;
    cudaMemcpy(p, &h, sizeof h, cudaMemcpyHostToDevice);
    be->bytes_in_use += bytes;
    if (be->bytes_in_use > be->bytes_peak) be->bytes_peak = be->bytes_in_use;
    return (char *)p + sizeof(alloc_hdr);
}

static void cu_free(vlm_backend *be, void *p) {
    if (!p) return;
    char *base = (char *)p - sizeof(alloc_hdr);
    alloc_hdr h;
    if (cudaMemcpy(&h, base, sizeof h, cudaMemcpyDeviceToHost) == cudaSuccess) be->bytes_in_use -= h.size;
    cudaFree(base);
}

void *cuda_scratch(vlm_backend *be, void **buf, size_t *cap, size_t bytes, const char *what) {
    if (bytes <= *cap && *buf) return *buf;
    cuda_impl *c = impl_of(be);
    cudaStreamSynchronize(c->stream); /* the old buffer may still be in use */
    cu_free(be, *buf);
    *buf = NULL;
    *cap = 0;
    size_t want = bytes + bytes / 4; /* some headroom: fewer regrowths */
    *buf = cu_alloc(be, want, what);
    if (!*buf) {
        cuda_note(be, cudaErrorMemoryAllocation, what);
        return NULL;
    }
    *cap = want;
    return *buf;
}

static vlm_status status_of(cudaError_t e, const char *what) {
    if (e == cudaSuccess) return VLM_OK;
    return vlm_err(e == cudaErrorMemoryAllocation ? VLM_ERR_NOMEM : VLM_ERR_RUNTIME, "CUDA error in %s: %s", what,
                   cudaGetErrorString(e));
}

static vlm_status cu_to_device(vlm_backend *be, void *dst, const void *src, size_t bytes) {
    return status_of(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, impl_of(be)->stream), "copy to device");
}

static vlm_status cu_to_host(vlm_backend *be, void *dst, const void *src, size_t bytes) {
    cuda_impl *c = impl_of(be);
    cudaError_t e = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream);
    if (e == cudaSuccess) e = cudaStreamSynchronize(c->stream);
    return status_of(e, "copy to host");
}

static vlm_status cu_sync(vlm_backend *be) {
    cuda_impl *c = impl_of(be);
    cudaError_t e = cudaStreamSynchronize(c->stream);
    if (c->sticky != cudaSuccess) {
        vlm_status s = status_of(c->sticky, c->sticky_what);
        c->sticky = cudaSuccess;
        return s;
    }
    return status_of(e, "stream synchronize");
}

static vlm_status cu_weight(vlm_backend *be, const vlm_tensor *host, vlm_tensor *dev) {
    switch (host->dtype) {
    case VLM_DT_F32:
    case VLM_DT_F16:
    case VLM_DT_BF16:
    case VLM_DT_Q8_0:
    case VLM_DT_Q4_0: break;
    default:
        return vlm_err(VLM_ERR_UNSUPPORTED,
                       "the CUDA backend has no kernels for %s weights (F32, F16, BF16, Q8_0, "
                       "Q4_0 are supported)",
                       vlm_dtype_name(host->dtype));
    }
    *dev = *host;
    dev->data = cu_alloc(be, host->nbytes, "a weight");
    if (!dev->data) return VLM_ERR_NOMEM;
    return status_of(cudaMemcpy(dev->data, host->data, host->nbytes, cudaMemcpyHostToDevice), "weight upload");
}

static vlm_status cu_weight_f32(vlm_backend *be, const vlm_tensor *host, vlm_tensor *dev) {
    int64_t n = vlm_tensor_numel(host);
    if (host->dtype != VLM_DT_F32 && host->dtype != VLM_DT_F16 && host->dtype != VLM_DT_BF16)
        return vlm_err(VLM_ERR_UNSUPPORTED, "cannot convert a %s tensor to f32", vlm_dtype_name(host->dtype));
    float *tmp = (float *)vlm_alloc((size_t)n * sizeof(float) + 1, "a weight vector converted to f32");
    if (!tmp) return VLM_ERR_NOMEM;
    vlm_to_f32(host->dtype, host->data, tmp, (size_t)n);
    *dev = *host;
    dev->dtype = VLM_DT_F32;
    dev->nbytes = (size_t)n * sizeof(float);
    dev->data = cu_alloc(be, dev->nbytes, "an f32 weight vector");
    vlm_status s = dev->data ? status_of(cudaMemcpy(dev->data, tmp, dev->nbytes, cudaMemcpyHostToDevice), "upload")
                             : VLM_ERR_NOMEM;
    free(tmp);
    return s;
}

static void cu_weight_free(vlm_backend *be, vlm_tensor *dev) {
    cu_free(be, dev->data);
    dev->data = NULL;
}

static void cu_copy(vlm_backend *be, float *dst, const float *src, size_t n) {
    if (dst != src)
        cuda_note(be, cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, impl_of(be)->stream),
                  "copy");
}

static void cu_destroy(vlm_backend *be) {
    cuda_impl *c = impl_of(be);
    cudaStreamSynchronize(c->stream);
    cu_free(be, c->act16);
    cu_free(be, c->wtmp);
    cu_free(be, c->ranges);
    cu_free(be, c->idx);
    cu_free(be, c->scores);
    cublasDestroy(c->cublas);
    cudaStreamDestroy(c->stream);
    free(c);
    free(be);
}

static const vlm_backend_ops k_cuda_ops = {
    cu_alloc,        cu_free,       cu_to_device,        cu_to_host,       cu_sync,
    cu_weight,       cu_weight_f32, cu_weight_free,      cuda_matmul,      cuda_rmsnorm,
    cuda_layernorm,  cuda_rope,     cuda_attention,      cuda_swiglu,      cuda_gelu,
    cuda_quick_gelu, cuda_add,      cuda_embed,          cuda_gather_rows, cuda_scatter_rows,
    cu_copy,         cu_destroy,    cuda_find_nonfinite,
};

extern "C" int vlm_cuda_available(char *reason, size_t cap) {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        if (reason)
            snprintf(reason, cap, "no usable NVIDIA GPU (%s)",
                     e != cudaSuccess ? cudaGetErrorString(e) : "cudaGetDeviceCount found no device");
        cudaGetLastError();
        return 0;
    }
    return 1;
}

extern "C" vlm_status vlm_cuda_backend_create(vlm_backend **out) {
    *out = NULL;
    char why[256];
    if (!vlm_cuda_available(why, sizeof why)) return vlm_err(VLM_ERR_UNAVAILABLE, "no usable CUDA device: %s", why);
    vlm_backend *be = (vlm_backend *)vlm_calloc(1, sizeof *be, "the CUDA backend");
    cuda_impl *c = be ? (cuda_impl *)vlm_calloc(1, sizeof *c, "the CUDA backend") : NULL;
    if (!be || !c) {
        vlm_free(be);
        return VLM_ERR_NOMEM;
    }
    cudaDeviceProp prop;
    cudaGetDevice(&c->device);
    cudaGetDeviceProperties(&prop, c->device);
    vlm_status s = status_of(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking), "stream create");
    if (s == VLM_OK && cublasCreate(&c->cublas) != CUBLAS_STATUS_SUCCESS)
        s = vlm_err(VLM_ERR_RUNTIME, "cuBLAS initialisation failed");
    if (s != VLM_OK) {
        free(be);
        free(c);
        return s;
    }
    cublasSetStream(c->cublas, c->stream);
    const char *f32 = getenv("VLM_CUDA_GEMM_F32");
    c->gemm_f32 = f32 && *f32 && strcmp(f32, "0") != 0;
    be->ops = &k_cuda_ops;
    be->kind = VLM_DEV_CUDA;
    be->name = "cuda";
    be->impl = c;
    snprintf(be->device_name, sizeof be->device_name, "%s", prop.name);
    *out = be;
    return VLM_OK;
}

extern "C" vlm_status vlm_gpu_memory(uint64_t *used, uint64_t *total) {
    size_t free_b = 0, total_b = 0;
    cudaError_t e = cudaMemGetInfo(&free_b, &total_b);
    if (e != cudaSuccess) return status_of(e, "cudaMemGetInfo");
    *used = total_b - free_b;
    *total = total_b;
    return VLM_OK;
}
