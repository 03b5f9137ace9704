/* The CPU backend: device memory is host memory, weights are used in place from the mapping. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/memory.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/quant_kernels.h"

/* Allocations carry a small header with their size, for the in-use / peak accounting. */
typedef struct {
    size_t size;
    size_t pad[7]; /* keeps the payload 64-byte aligned */
} alloc_hdr;

static void *cpu_alloc(vlm_backend *be, size_t bytes, const char *what) {
    alloc_hdr *h = vlm_alloc(sizeof(alloc_hdr) + bytes, what);
    if (!h) return NULL;
    h->size = bytes;
    be->bytes_in_use += bytes;
    if (be->bytes_in_use > be->bytes_peak) be->bytes_peak = be->bytes_in_use;
    return h + 1;
}

static void cpu_free(vlm_backend *be, void *p) {
    if (!p) return;
    alloc_hdr *h = (alloc_hdr *)p - 1;
    be->bytes_in_use -= h->size;
    vlm_free(h);
}

static vlm_status cpu_copy_bytes(vlm_backend *be, void *dst, const void *src, size_t bytes) {
    if (dst != src && bytes) memcpy(dst, src, bytes);
    return VLM_OK;
}

static vlm_status cpu_sync(vlm_backend *be) { return VLM_OK; }

static vlm_status cpu_weight(vlm_backend *be, const vlm_tensor *host, vlm_tensor *dev) {
    return vlm_cpu_quant_prepare(host, dev); /* a view into the mapping, or an interleaved quantized copy */
}

static vlm_status cpu_weight_f32(vlm_backend *be, const vlm_tensor *host, vlm_tensor *dev) {
    int64_t n = vlm_tensor_numel(host);
    if (vlm_dtype_is_quantized(host->dtype) || vlm_dtype_size(host->dtype) == 0 ||
        (host->dtype != VLM_DT_F32 && host->dtype != VLM_DT_F16 && host->dtype != VLM_DT_BF16))
        return vlm_err(VLM_ERR_UNSUPPORTED, "cannot convert a %s tensor to f32", vlm_dtype_name(host->dtype));
    *dev = *host;
    dev->dtype = VLM_DT_F32;
    dev->nbytes = (size_t)n * sizeof(float);
    dev->data = cpu_alloc(be, dev->nbytes, "an f32 weight vector");
    if (!dev->data) return VLM_ERR_NOMEM;
    vlm_to_f32(host->dtype, host->data, dev->data, (size_t)n);
    return VLM_OK;
}

static void cpu_weight_free(vlm_backend *be, vlm_tensor *dev) { vlm_cpu_quant_release(dev); }

static void cpu_matmul(vlm_backend *be, float *y, const float *x, const vlm_tensor *w, const float *bias, int M) {
    vlm_cpu_matmul(y, x, w, bias, M);
}
static void cpu_rmsnorm(vlm_backend *be, float *y, const float *x, const float *w, int M, int D, float eps) {
    vlm_cpu_rmsnorm(y, x, w, M, D, eps);
}
static void cpu_layernorm(vlm_backend *be, float *y, const float *x, const float *w, const float *b, int M, int D,
                          float eps) {
    vlm_cpu_layernorm(y, x, w, b, M, D, eps);
}
static void cpu_rope(vlm_backend *be, float *x, int stride, const float *cos, const float *sin, int M, int n_heads,
                     int head_dim) {
    vlm_cpu_rope(x, stride, cos, sin, M, n_heads, head_dim);
}
static void cpu_attention(vlm_backend *be, float *out, const float *q, const float *k, const float *v,
                          const vlm_attn_params *p) {
    vlm_cpu_attention(out, q, k, v, p);
}
static void cpu_swiglu(vlm_backend *be, float *y, const float *g, const float *u, size_t n) {
    vlm_cpu_swiglu(y, g, u, n);
}
static void cpu_gelu(vlm_backend *be, float *x, size_t n) { vlm_cpu_gelu(x, n); }
static void cpu_quick_gelu(vlm_backend *be, float *x, size_t n) { vlm_cpu_quick_gelu(x, n); }
static void cpu_add(vlm_backend *be, float *y, const float *x, size_t n) { vlm_cpu_add(y, x, n); }
static void cpu_embed(vlm_backend *be, float *y, const vlm_tensor *t, const int32_t *ids, int n) {
    vlm_cpu_embed(y, t, ids, n);
}

static void cpu_gather_rows(vlm_backend *be, float *dst, const float *src, const int32_t *idx, int n, int row) {
#pragma omp parallel for schedule(static) if (n > 256)
    for (int i = 0; i < n; i++) memcpy(dst + (size_t)i * row, src + (size_t)idx[i] * row, sizeof(float) * (size_t)row);
}

static void cpu_scatter_rows(vlm_backend *be, float *dst, const int32_t *idx, const float *src, int n, int row) {
#pragma omp parallel for schedule(static) if (n > 256)
    for (int i = 0; i < n; i++) memcpy(dst + (size_t)idx[i] * row, src + (size_t)i * row, sizeof(float) * (size_t)row);
}

static void cpu_copy(vlm_backend *be, float *dst, const float *src, size_t n) {
    if (dst != src) memmove(dst, src, n * sizeof(float));
}

static void cpu_destroy(vlm_backend *be) { free(be); }

static vlm_status cpu_find_nonfinite(vlm_backend *be, const float *x, size_t n, int64_t *first) {
    *first = vlm_find_nonfinite_host(x, n);
    return VLM_OK;
}

static const vlm_backend_ops k_cpu_ops = {
    .alloc = cpu_alloc,
    .free = cpu_free,
    .to_device = cpu_copy_bytes,
    .to_host = cpu_copy_bytes,
    .sync = cpu_sync,
    .weight = cpu_weight,
    .weight_f32 = cpu_weight_f32,
    .weight_free = cpu_weight_free,
    .matmul = cpu_matmul,
    .rmsnorm = cpu_rmsnorm,
    .layernorm = cpu_layernorm,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .swiglu = cpu_swiglu,
    .gelu = cpu_gelu,
    .quick_gelu = cpu_quick_gelu,
    .add = cpu_add,
    .embed = cpu_embed,
    .gather_rows = cpu_gather_rows,
    .scatter_rows = cpu_scatter_rows,
    .copy = cpu_copy,
    .destroy = cpu_destroy,
    .find_nonfinite = cpu_find_nonfinite,
};

vlm_status vlm_cpu_backend_create(vlm_backend **out) {
    vlm_backend *be = vlm_calloc(1, sizeof *be, "the CPU backend");
    if (!be) return VLM_ERR_NOMEM;
    be->ops = &k_cpu_ops;
    be->kind = VLM_DEV_CPU;
    be->name = "cpu";
    snprintf(be->device_name, sizeof be->device_name, "%s", vlm_cpu_name());
    *out = be;
    return VLM_OK;
}
