#include "kernels/backend.h"

#include <stdio.h>
#include <string.h>

#ifndef VLM_HAVE_CUDA
/* Without the CUDA build these report why cuda cannot be used. */
int vlm_cuda_available(char *reason, size_t cap) {
    if (reason) snprintf(reason, cap, "this vlm was built without CUDA (nvcc was not found at build time)");
    return 0;
}
vlm_status vlm_cuda_backend_create(vlm_backend **out) {
    *out = NULL;
    return vlm_err(VLM_ERR_UNAVAILABLE,
                   "--device cuda: this vlm was built without CUDA (nvcc was not found at build time)");
}
vlm_status vlm_gpu_memory(uint64_t *used, uint64_t *total) {
    *used = *total = 0;
    return VLM_OK;
}
#endif

vlm_status vlm_backend_create(vlm_device_kind kind, const vlm_backend_options *o, vlm_backend **out) {
    *out = NULL;
    if (kind == VLM_DEVICE_CPU) return vlm_cpu_backend_create(o, out);
    char why[256];
    if (!vlm_cuda_available(why, sizeof why)) return vlm_err(VLM_ERR_UNAVAILABLE, "--device cuda: %s", why);
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

vlm_status vlm_device_parse(const char *name, vlm_device_kind *out) {
    if (!strcmp(name, "cpu")) *out = VLM_DEVICE_CPU;
    else if (!strcmp(name, "cuda")) *out = VLM_DEVICE_CUDA;
    else if (!strcmp(name, "auto")) *out = vlm_cuda_available(NULL, 0) ? VLM_DEVICE_CUDA : VLM_DEVICE_CPU;
    else return vlm_err(VLM_ERR_USAGE, "unknown device '%s' (expected auto, cuda or cpu)", name);
    return VLM_OK;
}
