#include "kernels/backend.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/memory.h"

#ifndef VLM_HAVE_CUDA
/* Without the CUDA build these report why cuda cannot be used. */
int vlm_cuda_available(char *reason, size_t cap) {
    if (reason) snprintf(reason, cap, "this vlm was built without CUDA (nvcc was not found at build time)");
    return 0;
}
vlm_status vlm_cuda_backend_create(vlm_backend **out) {
    *out = NULL;
    return vlm_err(VLM_ERR_UNAVAILABLE, "this vlm was built without CUDA (nvcc was not found at build time)");
}
vlm_status vlm_gpu_memory(uint64_t *used, uint64_t *total) {
    *used = *total = 0;
    return VLM_OK;
}
#endif

vlm_status vlm_backend_create(vlm_device kind, const vlm_backend_options *o, vlm_backend **out) {
    *out = NULL;
    if (kind == VLM_DEV_CPU) return vlm_cpu_backend_create(o, out);
    if (kind != VLM_DEV_CUDA)
        return vlm_err(VLM_ERR_INVALID, "no backend for device %d (resolve auto first)", (int)kind);
    char why[256];
    if (!vlm_cuda_available(why, sizeof why)) return vlm_err(VLM_ERR_UNAVAILABLE, "no usable CUDA device: %s", why);
    VLM_TRY(vlm_cuda_backend_create(out));
    /* host threads for the host-side work of a GPU run */
    vlm_status s = vlm_pool_create(o ? o->threads : 0, &(*out)->pool);
    if (s != VLM_OK) {
        vlm_backend_destroy(*out);
        *out = NULL;
        return s;
    }
    (*out)->threads = vlm_pool_threads((*out)->pool);
    (*out)->bf16 = o ? o->bf16 : 0;
    return VLM_OK;
}

void vlm_backend_destroy(vlm_backend *be) {
    if (!be) return;
    vlm_pool *pool = be->pool;
    be->ops->destroy(be);
    vlm_pool_free(pool);
}

uint64_t vlm_backend_available_memory(vlm_backend *be) {
    if (vlm_backend_host_memory(be)) return vlm_available_memory_bytes();
    uint64_t used = 0, total = 0;
    if (vlm_gpu_memory(&used, &total) != VLM_OK) {
        vlm_err_clear();
        return 0;
    }
    return total > used ? total - used : 0;
}

int64_t vlm_find_nonfinite_host(const float *x, size_t n) {
    /* blocks of 1024 checked branch-free (it vectorizes), the first bad one searched after */
    for (size_t b = 0; b < n; b += 1024) {
        size_t e = n - b < 1024 ? n : b + 1024;
        int bad = 0;
        for (size_t i = b; i < e; i++) bad |= !isfinite(x[i]);
        if (!bad) continue;
        for (size_t i = b; i < e; i++)
            if (!isfinite(x[i])) return (int64_t)i;
    }
    return -1;
}

vlm_status vlm_check_finite(vlm_backend *be, const float *x, int64_t rows, int64_t cols, const char *what) {
    size_t n = (size_t)rows * (size_t)cols;
    int64_t first = -1;
    if (be) VLM_TRY(be->ops->find_nonfinite(be, x, n, &first));
    else first = vlm_find_nonfinite_host(x, n);
    if (first < 0) return VLM_OK;
    return vlm_err(VLM_ERR_RUNTIME,
                   "%s: not finite (NaN or infinity) at row %lld, column %lld of %lld x %lld: a weight of the "
                   "checkpoint is NaN or infinite, or a value overflowed",
                   what, (long long)(first / cols), (long long)(first % cols), (long long)rows, (long long)cols);
}
