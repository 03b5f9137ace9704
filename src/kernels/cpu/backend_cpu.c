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

/* The kernels' context: this backend's threads and precision. */
#define CTX(be) (&(vlm_cpu_ctx){.pool = (be)->pool, .bf16 = (be)->bf16})

static vlm_status cpu_weight(vlm_backend *be, const vlm_tensor *host, vlm_tensor *dev) {
    return vlm_cpu_quant_prepare(be->pool, host, dev); /* a view into the mapping, or an interleaved quantized copy */
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
    vlm_cpu_matmul(CTX(be), y, x, w, bias, M);
}
static void cpu_rmsnorm(vlm_backend *be, float *y, const float *x, const float *w, int M, int D, float eps) {
    vlm_cpu_rmsnorm(CTX(be), y, x, w, M, D, eps);
}
static void cpu_layernorm(vlm_backend *be, float *y, const float *x, const float *w, const float *b, int M, int D,
                          float eps) {
    vlm_cpu_layernorm(CTX(be), y, x, w, b, M, D, eps);
}
static void cpu_rope(vlm_backend *be, float *x, int stride, const float *cos, const float *sin, int M, int n_heads,
                     int head_dim) {
    vlm_cpu_rope(CTX(be), x, stride, cos, sin, M, n_heads, head_dim);
}
static void cpu_attention(vlm_backend *be, float *out, const float *q, const float *k, const float *v,
                          const vlm_attn_params *p) {
    vlm_cpu_attention(CTX(be), out, q, k, v, p);
}
static void cpu_swiglu(vlm_backend *be, float *y, const float *g, const float *u, size_t n) {
    vlm_cpu_swiglu(CTX(be), y, g, u, n);
}
static void cpu_gelu(vlm_backend *be, float *x, size_t n) { vlm_cpu_gelu(CTX(be), x, n); }
static void cpu_quick_gelu(vlm_backend *be, float *x, size_t n) { vlm_cpu_quick_gelu(CTX(be), x, n); }
static void cpu_add(vlm_backend *be, float *y, const float *x, size_t n) { vlm_cpu_add(CTX(be), y, x, n); }
static void cpu_embed(vlm_backend *be, float *y, const vlm_tensor *t, const int32_t *ids, int n) {
    vlm_cpu_embed(CTX(be), y, t, ids, n);
}

/* Row copies: dst row di(i) = src row si(i), tasks of 64 rows when there are many. */
typedef struct {
    float *dst;
    const float *src;
    const int32_t *idx;
    int n, row, scatter;
} rows_copy_job;

static void rows_copy_task(void *arg, int64_t t, int thread) {
    const rows_copy_job *j = arg;
    int i1 = (int)(t + 1) * 64 < j->n ? (int)(t + 1) * 64 : j->n;
    for (int i = (int)t * 64; i < i1; i++) {
        size_t d = (size_t)(j->scatter ? j->idx[i] : i), s = (size_t)(j->scatter ? i : j->idx[i]);
        memcpy(j->dst + d * (size_t)j->row, j->src + s * (size_t)j->row, sizeof(float) * (size_t)j->row);
    }
}

static void rows_copy(vlm_backend *be, float *dst, const float *src, const int32_t *idx, int n, int row, int scatter) {
    rows_copy_job j = {.dst = dst, .src = src, .idx = idx, .n = n, .row = row, .scatter = scatter};
    vlm_pool_run(be->pool, n > 256 ? 0 : 1, (n + 63) / 64, rows_copy_task, &j);
}

static void cpu_gather_rows(vlm_backend *be, float *dst, const float *src, const int32_t *idx, int n, int row) {
    rows_copy(be, dst, src, idx, n, row, 0);
}

static void cpu_scatter_rows(vlm_backend *be, float *dst, const int32_t *idx, const float *src, int n, int row) {
    rows_copy(be, dst, src, idx, n, row, 1);
}

static void cpu_copy(vlm_backend *be, float *dst, const float *src, size_t n) {
    if (dst != src) memmove(dst, src, n * sizeof(float));
}

static void cpu_destroy(vlm_backend *be) { vlm_free(be); } /* the pool: vlm_backend_destroy */

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

vlm_status vlm_cpu_backend_create(const vlm_backend_options *o, vlm_backend **out) {
    *out = NULL;
    vlm_backend *be = vlm_calloc(1, sizeof *be, "the CPU backend");
    if (!be) return VLM_ERR_NOMEM;
    vlm_status s = vlm_pool_create(o ? o->threads : 0, &be->pool);
    if (s != VLM_OK) {
        vlm_free(be);
        return s;
    }
    be->threads = vlm_pool_threads(be->pool);
    be->bf16 = o ? o->bf16 : 0;
    be->ops = &k_cpu_ops;
    be->kind = VLM_DEV_CPU;
    be->name = "cpu";
    snprintf(be->device_name, sizeof be->device_name, "%s", vlm_cpu_name());
    *out = be;
    return VLM_OK;
}
