#include "kernels/backend.h"

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

vlm_status vlm_backend_create(vlm_device kind, vlm_backend **out) {
    *out = NULL;
    if (kind == VLM_DEV_CPU) return vlm_cpu_backend_create(out);
    if (kind != VLM_DEV_CUDA)
        return vlm_err(VLM_ERR_INVALID, "no backend for device %d (resolve auto first)", (int)kind);
    char why[256];
    if (!vlm_cuda_available(why, sizeof why)) return vlm_err(VLM_ERR_UNAVAILABLE, "no usable CUDA device: %s", why);
    return vlm_cuda_backend_create(out);
}

void vlm_backend_destroy(vlm_backend *be) {
    if (be) be->ops->destroy(be);
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
