/* CUDA backend: every op against the CPU scalar reference (kernels/cpu/ref.h) on random inputs.
 * Skipped (exit 77, with the reason) where no GPU or no CUDA build is present. Tolerances: f32
 * ops rtol 1e-5 of max |ref|; the default matmul rounds activations to bf16 for tensor cores
 * (rtol 1e-2); with VLM_CUDA_GEMM_F32=1 (set here for the parity cases) f32 GEMM, rtol 1e-5. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "kernels/backend.h"
#include "kernels/cpu/ref.h"

static vlm_backend *g_be;
static uint64_t g_seed = 1;

static float *rnd(size_t n, float scale) {
    float *p = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = scale * test_rand(&g_seed);
    return p;
}

static float *up(const float *h, size_t n) {
    float *d = vlm_dev_alloc(g_be, n * sizeof(float), "test");
    vlm_to_device(g_be, d, h, n * sizeof(float));
    return d;
}

static void down(float *h, const float *d, size_t n) {
    CHECK_OK(vlm_sync(g_be));
    CHECK_OK(vlm_to_host(g_be, h, d, n * sizeof(float)));
}

static void test_norms_rope_act(void) {
    int M = 37, D = 200;
    size_t n = (size_t)M * D;
    float *x = rnd(n, 2), *w = rnd(D, 1), *b = rnd(D, 1), *ref = malloc(n * 4), *got = malloc(n * 4);
    float *dx = up(x, n), *dw = up(w, D), *db = up(b, D), *dy = vlm_dev_alloc(g_be, n * 4, "y");
    vlm_ref_rmsnorm(ref, x, w, M, D, 1e-6f);
    vlm_rmsnorm(g_be, dy, dx, dw, M, D, 1e-6f);
    down(got, dy, n);
    test_close("rmsnorm", got, ref, n, 1e-5f, 1e-6f);
    vlm_ref_layernorm(ref, x, w, b, M, D, 1e-6f);
    vlm_layernorm(g_be, dy, dx, dw, db, M, D, 1e-6f);
    down(got, dy, n);
    test_close("layernorm", got, ref, n, 1e-5f, 1e-6f);
    /* rope over 5 heads of 40 with a row stride of 200 */
    float *cs = rnd((size_t)M * 20, 1), *sn = rnd((size_t)M * 20, 1);
    float *dc = up(cs, (size_t)M * 20), *ds = up(sn, (size_t)M * 20);
    memcpy(ref, x, n * 4);
    vlm_ref_rope(ref, D, cs, sn, M, 5, 40);
    vlm_rope(g_be, dx, D, dc, ds, M, 5, 40);
    down(got, dx, n);
    test_close("rope", got, ref, n, 1e-5f, 1e-6f);
    vlm_to_device(g_be, dx, x, n * 4);
    for (size_t i = 0; i < n; i++) ref[i] = vlm_ref_silu(x[i]) * x[i];
    vlm_swiglu(g_be, dy, dx, dx, n);
    down(got, dy, n);
    test_close("swiglu", got, ref, n, 1e-5f, 1e-6f);
    for (size_t i = 0; i < n; i++) ref[i] = vlm_ref_gelu(x[i]);
    vlm_copy(g_be, dy, dx, n);
    vlm_gelu(g_be, dy, n);
    down(got, dy, n);
    test_close("gelu", got, ref, n, 1e-5f, 1e-6f);
    for (size_t i = 0; i < n; i++) ref[i] = vlm_ref_quick_gelu(x[i]);
    vlm_copy(g_be, dy, dx, n);
    vlm_quick_gelu(g_be, dy, n);
    down(got, dy, n);
    test_close("quick_gelu", got, ref, n, 1e-5f, 1e-6f);
    for (size_t i = 0; i < n; i++) ref[i] = 2 * x[i];
    vlm_copy(g_be, dy, dx, n);
    vlm_add(g_be, dy, dx, n);
    down(got, dy, n);
    test_close("add", got, ref, n, 1e-6f, 0);
    int32_t idx[5] = {3, 0, 36, 7, 7};
    vlm_gather_rows(g_be, dy, dx, idx, 5, D);
    down(got, dy, (size_t)5 * D);
    for (int i = 0; i < 5; i++) CHECK(!memcmp(got + i * D, x + idx[i] * D, (size_t)D * 4));
    vlm_dev_free(g_be, dx), vlm_dev_free(g_be, dw), vlm_dev_free(g_be, db), vlm_dev_free(g_be, dy);
    vlm_dev_free(g_be, dc), vlm_dev_free(g_be, ds);
    free(x), free(w), free(b), free(ref), free(got), free(cs), free(sn);
}

static void matmul_case(vlm_dtype t, int M, int N, int K, float rtol) {
    size_t wn = (size_t)N * K;
    float *wf = rnd(wn, 0.1f), *x = rnd((size_t)M * K, 1), *bias = rnd(N, 1);
    uint16_t *w16 = malloc(wn * 2);
    vlm_tensor w = {.dtype = t, .ndim = 2, .shape = {N, K}};
    if (t == VLM_DT_F32) {
        w.data = wf;
        w.nbytes = wn * 4;
    } else {
        for (size_t i = 0; i < wn; i++) w16[i] = t == VLM_DT_BF16 ? vlm_f32_to_bf16(wf[i]) : vlm_f32_to_f16(wf[i]);
        w.data = w16;
        w.nbytes = wn * 2;
    }
    float *ref = malloc((size_t)M * N * 4), *got = malloc((size_t)M * N * 4);
    vlm_ref_matmul(ref, x, &w, bias, M);
    vlm_tensor dw;
    CHECK_OK(g_be->ops->weight(g_be, &w, &dw));
    float *dx = up(x, (size_t)M * K), *db = up(bias, N), *dy = vlm_dev_alloc(g_be, (size_t)M * N * 4, "y");
    vlm_matmul(g_be, dy, dx, &dw, db, M);
    down(got, dy, (size_t)M * N);
    char what[64];
    snprintf(what, sizeof what, "matmul %s M=%d N=%d K=%d", vlm_dtype_name(t), M, N, K);
    test_close(what, got, ref, (size_t)M * N, rtol, 1e-5f);
    g_be->ops->weight_free(g_be, &dw);
    vlm_dev_free(g_be, dx), vlm_dev_free(g_be, db), vlm_dev_free(g_be, dy);
    free(wf), free(x), free(bias), free(w16), free(ref), free(got);
}

static void test_matmul(void) {
    vlm_dtype types[] = {VLM_DT_BF16, VLM_DT_F16, VLM_DT_F32};
    for (int t = 0; t < 3; t++) {
        matmul_case(types[t], 1, 300, 200, 1e-5f);                                  /* GEMV */
        matmul_case(types[t], 7, 129, 72, 1e-5f);                                   /* GEMV, several rows, odd N */
        matmul_case(types[t], 50, 96, 136, types[t] == VLM_DT_F32 ? 1e-5f : 1e-2f); /* tensor cores */
    }
}

static void attention_case(int n_q, int n_kv, int q_pos0, int causal, int heads, int kv_heads, int hd, const int *segs,
                           int n_segs) {
    int qs = heads * hd, ks = kv_heads * hd;
    float *q = rnd((size_t)n_q * qs, 1), *k = rnd((size_t)n_kv * ks, 1), *v = rnd((size_t)n_kv * ks, 1);
    float *ref = malloc((size_t)n_q * qs * 4), *got = malloc((size_t)n_q * qs * 4);
    vlm_attn_params p = {.n_q = n_q,
                         .n_kv = n_kv,
                         .q_pos0 = q_pos0,
                         .causal = causal,
                         .segments = segs,
                         .n_segments = n_segs,
                         .n_heads = heads,
                         .n_kv_heads = kv_heads,
                         .head_dim = hd,
                         .q_stride = qs,
                         .kv_stride = ks,
                         .out_stride = qs,
                         .scale = 1.0f / sqrtf((float)hd)};
    vlm_ref_attention(ref, q, k, v, &p);
    float *dq = up(q, (size_t)n_q * qs), *dk = up(k, (size_t)n_kv * ks), *dv = up(v, (size_t)n_kv * ks);
    float *dout = vlm_dev_alloc(g_be, (size_t)n_q * qs * 4, "out");
    vlm_attention(g_be, dout, dq, dk, dv, &p);
    down(got, dout, (size_t)n_q * qs);
    char what[96];
    snprintf(what, sizeof what, "attention nq=%d nkv=%d causal=%d hd=%d segs=%d", n_q, n_kv, causal, hd, n_segs);
    test_close(what, got, ref, (size_t)n_q * qs, 1e-4f, 1e-5f);
    vlm_dev_free(g_be, dq), vlm_dev_free(g_be, dk), vlm_dev_free(g_be, dv), vlm_dev_free(g_be, dout);
    free(q), free(k), free(v), free(ref), free(got);
}

static void test_attention(void) {
    attention_case(1, 300, 299, 1, 16, 2, 128, NULL, 0); /* decode */
    attention_case(70, 70, 0, 1, 4, 2, 64, NULL, 0);     /* prefill */
    attention_case(9, 40, 31, 1, 3, 1, 16, NULL, 0);     /* prefill after a cached prefix */
    int segs[] = {0, 64, 100, 164, 171};
    attention_case(171, 171, 0, 0, 2, 2, 80, segs, 4); /* vision windows */
    attention_case(171, 171, 0, 0, 2, 2, 20, NULL, 0); /* full attention */
    attention_case(33, 33, 0, 0, 2, 2, 48, NULL, 0);   /* head size without a tiled kernel */
}

static void test_embed(void) {
    int V = 50, D = 24;
    float *tf = rnd((size_t)V * D, 1);
    uint16_t *tb = malloc((size_t)V * D * 2);
    for (int i = 0; i < V * D; i++) tb[i] = vlm_f32_to_bf16(tf[i]);
    vlm_tensor t = {.dtype = VLM_DT_BF16, .ndim = 2, .shape = {V, D}, .data = tb, .nbytes = (size_t)V * D * 2}, dt;
    int32_t ids[4] = {49, 0, 3, 3};
    float ref[4 * 24], got[4 * 24];
    vlm_ref_embed(ref, &t, ids, 4);
    CHECK_OK(g_be->ops->weight(g_be, &t, &dt));
    float *dy = vlm_dev_alloc(g_be, sizeof got, "y");
    vlm_embed(g_be, dy, &dt, ids, 4);
    down(got, dy, 4 * 24);
    CHECK(!memcmp(got, ref, sizeof got));
    g_be->ops->weight_free(g_be, &dt);
    vlm_dev_free(g_be, dy);
    free(tf), free(tb);
}

/* The finiteness check's op finds the first NaN or infinity as the CPU's does, in a buffer larger
 * than one grid pass. */
static void test_find_nonfinite(void) {
    size_t n = (size_t)3 << 20;
    float *h = rnd(n, 1);
    float *d = up(h, n);
    int64_t first = 7;
    CHECK_OK(g_be->ops->find_nonfinite(g_be, d, n, &first));
    CHECK(first == -1);
    size_t at[] = {n - 1, 2000003, 5, 0};
    for (int k = 0; k < 4; k++) {
        h[at[k]] = k & 1 ? INFINITY : NAN;
        CHECK_OK(vlm_to_device(g_be, d, h, n * sizeof(float)));
        CHECK_OK(g_be->ops->find_nonfinite(g_be, d, n, &first));
        CHECK_MSG(first == (int64_t)at[k], "first %lld, want %zu", (long long)first, at[k]);
    }
    CHECK_ERR(vlm_check_finite(g_be, d, 3, (int64_t)n / 3, "gpu buffer"), VLM_ERR_RUNTIME, "at row 0, column 0");
    vlm_dev_free(g_be, d);
    free(h);
}

int main(void) {
    char why[256];
    if (!vlm_cuda_available(why, sizeof why)) {
        fprintf(stderr, "test_cuda skipped: %s\n", why);
        return 77;
    }
    if (vlm_backend_create(VLM_DEV_CUDA, NULL, &g_be) != VLM_OK) {
        fprintf(stderr, "cannot create the CUDA backend: %s\n", vlm_last_error());
        return 1;
    }
    fprintf(stderr, "GPU: %s\n", g_be->device_name);
    RUN(test_norms_rope_act);
    RUN(test_matmul);
    RUN(test_attention);
    RUN(test_embed);
    RUN(test_find_nonfinite);
    vlm_backend_destroy(g_be);
    setenv("VLM_CUDA_GEMM_F32", "1", 1); /* the parity GEMM */
    if (vlm_backend_create(VLM_DEV_CUDA, NULL, &g_be) == VLM_OK) {
        g_test_name = "f32 gemm";
        matmul_case(VLM_DT_BF16, 50, 96, 136, 1e-5f);
        vlm_backend_destroy(g_be);
    }
    return test_summary();
}
