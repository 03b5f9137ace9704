/* CPU kernels against their scalar references (src/kernels/cpu/ref.c): every op, every weight
 * dtype and both SIMD paths (AVX-512 where the CPU has it, AVX2 forced), on many shapes including
 * the awkward ones (K not a multiple of the vector width, N not a multiple of the panel, M = 1..9,
 * blocks that cross the GEMM's KC / MC boundaries, causal attention with q_pos0 > 0, segments,
 * GQA groups, head_dim 16 / 20 / 64 / 80 / 128).
 *
 * Tolerances (max |got - ref| <= rtol * max |ref| + atol over the output):
 * - matmul: rtol 2e-6 * sqrt(K) (f32 accumulation in a different order than the double reference)
 * - norms, rope, add, embed, gather/scatter: 1e-6 (same math, different summation order)
 * - activations: 2e-6 relative per element (vectorized exp / erf approximations)
 * - attention: rtol 1e-5 (online softmax rescaling, vectorized exp) */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "harness.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/ref.h"

/* The kernels' context: a pool of the threads set_threads asked for (0: every core). */
static vlm_cpu_ctx g_ctx;
static void set_threads(int n) {
    vlm_pool_free(g_ctx.pool);
    g_ctx.pool = NULL;
    if (vlm_pool_create(n, &g_ctx.pool) != VLM_OK) g_ctx.pool = NULL; /* one thread */
}

static uint64_t g_seed = 12345;

static float *rand_floats(size_t n, float scale) {
    float *p = malloc(n * sizeof(float) + 64);
    for (size_t i = 0; i < n; i++) p[i] = test_rand(&g_seed) * scale;
    return p;
}

/* A weight matrix [N, K] of dtype dt with values in [-scale, scale). */
static vlm_tensor rand_weight(vlm_dtype dt, int64_t N, int64_t K, float scale) {
    vlm_tensor w = {.dtype = dt, .ndim = 2, .shape = {N, K}};
    size_t n = (size_t)(N * K);
    w.nbytes = n * vlm_dtype_size(dt);
    w.data = malloc(w.nbytes + 64);
    for (size_t i = 0; i < n; i++) {
        float v = test_rand(&g_seed) * scale;
        if (dt == VLM_DT_F32) ((float *)w.data)[i] = v;
        else if (dt == VLM_DT_BF16) ((uint16_t *)w.data)[i] = vlm_f32_to_bf16(v);
        else ((uint16_t *)w.data)[i] = vlm_f32_to_f16(v);
    }
    return w;
}

/* Runs the body once per SIMD path this CPU has and per way of streaming decode's weights
 * (vlm_cpu_streams: 1 or 4), with `path` naming them. */
#define FOR_EACH_PATH(...)                                                                                             \
    do {                                                                                                               \
        for (int p_ = 0; p_ < 4; p_++) {                                                                               \
            int force_ = p_ & 1;                                                                                       \
            vlm_cpu_kernels_force_avx2(force_);                                                                        \
            vlm_cpu_set_streams(p_ & 2 ? 4 : 1);                                                                       \
            if (!force_ && !vlm_cpu_kernels_avx512()) continue;                                                        \
            static const char *const names_[] = {"avx512/1 stream", "avx2/1 stream", "avx512/4 streams",               \
                                                 "avx2/4 streams"};                                                    \
            const char *path = names_[p_];                                                                             \
            (void)path;                                                                                                \
            __VA_ARGS__;                                                                                               \
        }                                                                                                              \
        vlm_cpu_kernels_force_avx2(0);                                                                                 \
        vlm_cpu_set_streams(0);                                                                                        \
    } while (0)

static const vlm_dtype k_dtypes[] = {VLM_DT_F32, VLM_DT_F16, VLM_DT_BF16};

static void check_matmul(vlm_dtype dt, int M, int64_t N, int64_t K, int with_bias) {
    vlm_tensor w = rand_weight(dt, N, K, 1.0f);
    float *x = rand_floats((size_t)M * K, 1.0f), *bias = with_bias ? rand_floats((size_t)N, 1.0f) : NULL;
    float *ref = malloc(sizeof(float) * (size_t)M * N), *got = malloc(sizeof(float) * (size_t)M * N);
    vlm_ref_matmul(ref, x, &w, bias, M);
    FOR_EACH_PATH({
        for (size_t i = 0; i < (size_t)M * N; i++) got[i] = -777.0f; /* every output must be written */
        vlm_cpu_matmul(&g_ctx, got, x, &w, bias, M);
        char what[160];
        snprintf(what, sizeof what, "matmul %s %s M=%d N=%lld K=%lld bias=%d", path, vlm_dtype_name(dt), M,
                 (long long)N, (long long)K, with_bias);
        test_close(what, got, ref, (size_t)M * N, 2e-6f * sqrtf((float)K) + 1e-6f, 1e-6f);
    });
    free(w.data), free(x), free(bias), free(ref), free(got);
}

static void test_gemv_shapes(void) {
    static const int64_t Ks[] = {1, 7, 16, 31, 32, 33, 63, 64, 100, 257};
    static const int64_t Ns[] = {1, 3, 4, 5, 16, 17, 33};
    for (size_t d = 0; d < 3; d++)
        for (int M = 1; M <= 8; M++)
            for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
                for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
                    check_matmul(k_dtypes[d], M, Ns[ni], Ks[ki], (int)((ki + ni) & 1));
}

static void test_gemv_threads(void) {
    /* big enough to be split across threads, with odd splits */
    for (int threads = 1; threads <= 3; threads++) {
        set_threads(threads);
        for (size_t d = 0; d < 3; d++) {
            check_matmul(k_dtypes[d], 1, 517, 300, 1);
            check_matmul(k_dtypes[d], 3, 1000, 129, 0);
            check_matmul(k_dtypes[d], 8, 333, 2048, 1);
            check_matmul(k_dtypes[d], 5, 40, 7001, 1); /* x in k chunks, the last one with a tail */
            check_matmul(k_dtypes[d], 1, 37, 11008, 0);
        }
    }
    set_threads(0);
}

static void test_gemm_shapes(void) {
    static const int Ms[] = {9, 29, 64, 65, 70, 71, 83}; /* the GEMM from 65 rows (VLM_CPU_SMALL_M) */
    static const int64_t Ns[] = {1, 16, 31, 32, 33, 70};
    static const int64_t Ks[] = {1, 15, 16, 17, 100, 256, 257};
    for (size_t d = 0; d < 3; d++)
        for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
            for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
                for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
                    check_matmul(k_dtypes[d], Ms[mi], Ns[ni], Ks[ki], (int)((mi + ki) & 1));
}

static void test_gemm_blocks(void) {
    /* crosses the KC (256) and MC (at most 1400 rows) blocks with tails in every dimension */
    for (int threads = 1; threads <= 3; threads += 2) {
        set_threads(threads);
        for (size_t d = 0; d < 3; d++) check_matmul(k_dtypes[d], 700, 70, 600, 1);
        check_matmul(VLM_DT_BF16, 100, 1000, 1176, 1);
        check_matmul(VLM_DT_BF16, 50, 200, 3420, 0);
        check_matmul(VLM_DT_F16, 1500, 40, 300, 1);
        check_matmul(VLM_DT_BF16, 2900, 33, 20, 0);
    }
    set_threads(0);
}

/* AMX with the activations in 3, 2 or 1 bf16 parts (BF16 weights only): 3 parts is as accurate as
 * the f32 kernels, 2 parts within 2e-5, 1 part (bf16 activations) within 1e-2. */
static void check_matmul_amx(int parts, int M, int64_t N, int64_t K, int with_bias) {
    vlm_tensor w = rand_weight(VLM_DT_BF16, N, K, 1.0f);
    float *x = rand_floats((size_t)M * K, 1.0f), *bias = with_bias ? rand_floats((size_t)N, 1.0f) : NULL;
    float *ref = malloc(sizeof(float) * (size_t)M * N), *got = malloc(sizeof(float) * (size_t)M * N);
    vlm_ref_matmul(ref, x, &w, bias, M);
    for (size_t i = 0; i < (size_t)M * N; i++) got[i] = -777.0f;
    vlm_cpu_set_amx_parts(parts);
    vlm_cpu_matmul(&g_ctx, got, x, &w, bias, M);
    char what[160];
    snprintf(what, sizeof what, "matmul amx parts=%d M=%d N=%lld K=%lld bias=%d", parts, M, (long long)N, (long long)K,
             with_bias);
    float rtol = parts == 3 ? 2e-6f * sqrtf((float)K) + 1e-6f : parts == 2 ? 2e-5f : 1e-2f;
    test_close(what, got, ref, (size_t)M * N, rtol, 1e-6f);
    free(w.data), free(x), free(bias), free(ref), free(got);
}

static void test_matmul_amx(void) {
    if (!vlm_cpu_amx_available()) {
        fprintf(stderr, "  (no AMX on this CPU: AMX paths not tested)\n");
        return;
    }
    int saved = vlm_cpu_amx_parts();
    static const int Ms[] = {65, 80, 96, 97, 100}; /* AMX runs from 65 rows (VLM_CPU_SMALL_M) */
    static const int64_t Ns[] = {1, 15, 16, 17, 32, 33, 70};
    static const int64_t Ks[] = {1, 31, 32, 33, 100, 513};
    for (int parts = 1; parts <= 3; parts++)
        for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
            for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
                for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
                    check_matmul_amx(parts, Ms[mi], Ns[ni], Ks[ki], (int)((mi + ni + ki) & 1));
    /* several k blocks (1344 .. 4096 k per block), row blocks (128 .. 1024 rows), packings, threads */
    for (int threads = 1; threads <= 3; threads += 2) {
        set_threads(threads);
        for (int parts = 1; parts <= 3; parts++) {
            check_matmul_amx(parts, 300, 100, 5000, 1);
            check_matmul_amx(parts, 1100, 70, 40, 0);
            check_matmul_amx(parts, 200, 1000, 1176, 1);
        }
        check_matmul_amx(3, 4200, 40, 1400, 1); /* more rows than one packing (32 MiB) holds */
    }
    set_threads(0);
    vlm_cpu_set_amx_parts(saved);
}

/* --precision bf16: activations rounded to bf16 (nearest even), products exact, f32 sums. The
 * reference is the f32 product of the rounded activations, to the f32 tolerance. */
static void check_matmul_bf16(int M, int64_t N, int64_t K, int with_bias) {
    vlm_tensor w = rand_weight(VLM_DT_BF16, N, K, 1.0f);
    float *x = rand_floats((size_t)M * K, 1.0f), *bias = with_bias ? rand_floats((size_t)N, 1.0f) : NULL;
    float *xr = malloc(sizeof(float) * (size_t)M * K);
    float *ref = malloc(sizeof(float) * (size_t)M * N), *got = malloc(sizeof(float) * (size_t)M * N);
    for (size_t i = 0; i < (size_t)M * K; i++) xr[i] = vlm_bf16_to_f32(vlm_f32_to_bf16(x[i]));
    vlm_ref_matmul(ref, xr, &w, bias, M);
    g_ctx.bf16 = 1;
    FOR_EACH_PATH({
        for (size_t i = 0; i < (size_t)M * N; i++) got[i] = -777.0f;
        vlm_cpu_matmul(&g_ctx, got, x, &w, bias, M);
        char what[160];
        snprintf(what, sizeof what, "matmul bf16 precision %s M=%d N=%lld K=%lld", path, M, (long long)N, (long long)K);
        /* the AVX2 path has no bf16 kernel: f32-exact, within 2^-8 relative per product of it */
        float rtol = !strncmp(path, "avx2", 4) || !vlm_cpu()->avx512_bf16 ? 8e-3f : 2e-6f * sqrtf((float)K) + 1e-6f;
        test_close(what, got, ref, (size_t)M * N, rtol, 1e-6f);
    });
    g_ctx.bf16 = 0;
    free(w.data), free(x), free(xr), free(bias), free(ref), free(got);
}

static void test_matmul_bf16(void) {
    vlm_cpu_set_amx_parts(0);
    check_matmul_bf16(65, 70, 257, 1); /* odd K: the last pair half zero */
    check_matmul_bf16(100, 33, 32, 0);
    check_matmul_bf16(300, 130, 600, 1); /* several KC blocks */
    check_matmul_bf16(8, 40, 300, 1);    /* small M: the vdpbf16ps tiles */
    check_matmul_bf16(1, 77, 33, 0);
    check_matmul_bf16(20, 130, 2048, 1);
    set_threads(3);
    check_matmul_bf16(700, 517, 1176, 1);
    set_threads(0);
}

/* Batch invariance (what the engine's continuous batching relies on): up to VLM_CPU_SMALL_M rows,
 * a row's result is bitwise the same whatever the other rows and their number, in each precision
 * and for every weight dtype, quantized ones included (quant_matmul.c). */
static void test_batch_invariance(void) {
    static const int Ms[] = {1, 2, 3, 5, 8, 9, 16, 17, 32, 64};
    static const vlm_dtype dts[] = {VLM_DT_F32, VLM_DT_F16, VLM_DT_BF16};
    const int64_t N = 45, K = 6144 + 100; /* K over the GEMV's L1 chunk (6144); N: 4-row tiles and a tail */
    for (size_t d = 0; d < 3; d++)
        for (int bf16 = 0; bf16 <= 1; bf16++) {
            vlm_tensor w = rand_weight(dts[d], N, K, 1.0f);
            float *x = rand_floats((size_t)64 * K, 1.0f), *bias = rand_floats((size_t)N, 1.0f);
            float *one = malloc(sizeof(float) * 64 * (size_t)N), *many = malloc(sizeof(float) * 64 * (size_t)N);
            g_ctx.bf16 = bf16;
            FOR_EACH_PATH({
                for (int m = 0; m < 64; m++)
                    vlm_cpu_matmul(&g_ctx, one + (size_t)m * N, x + (size_t)m * K, &w, bias, 1);
                for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++) {
                    int M = Ms[mi], off = 64 - M; /* the last M rows, so row m of the batch is row off + m */
                    vlm_cpu_matmul(&g_ctx, many, x + (size_t)off * K, &w, bias, M);
                    CHECK_MSG(!memcmp(many, one + (size_t)off * N, sizeof(float) * (size_t)M * N),
                              "batch invariance %s %s bf16=%d: M=%d differs from M=1", path, vlm_dtype_name(dts[d]),
                              bf16, M);
                }
            });
            g_ctx.bf16 = 0;
            free(w.data), free(x), free(bias), free(one), free(many);
        }
}

/* Decode's way of streaming weights (vlm_cpu_streams) changes the order rows are visited in, never a
 * result: one input row gives bitwise the same outputs with 1 and with 4 streams. */
static void test_streams_same_result(void) {
    const int64_t N = 203, K = 6144 + 100;
    for (size_t d = 0; d < 3; d++)
        for (int bf16 = 0; bf16 <= 1; bf16++) {
            vlm_tensor w = rand_weight(k_dtypes[d], N, K, 1.0f);
            float *x = rand_floats((size_t)K, 1.0f), *y1 = malloc(sizeof(float) * N), *y4 = malloc(sizeof(float) * N);
            g_ctx.bf16 = bf16;
            vlm_cpu_set_streams(1);
            vlm_cpu_matmul(&g_ctx, y1, x, &w, NULL, 1);
            vlm_cpu_set_streams(4);
            vlm_cpu_matmul(&g_ctx, y4, x, &w, NULL, 1);
            CHECK_MSG(!memcmp(y1, y4, sizeof(float) * N), "%s bf16=%d: 1 stream vs 4", vlm_dtype_name(k_dtypes[d]),
                      bf16);
            g_ctx.bf16 = 0;
            vlm_cpu_set_streams(0);
            free(w.data), free(x), free(y1), free(y4);
        }
}

static void test_matmul_bad_dtype(void) {
    /* a format without a kernel gives NaN, never plausible numbers */
    vlm_tensor w = {.dtype = VLM_DT_I32, .ndim = 2, .shape = {4, 8}};
    int32_t data[32] = {0};
    w.data = data;
    float x[8] = {1}, y[4] = {0};
    vlm_cpu_matmul(&g_ctx, y, x, &w, NULL, 1);
    for (int i = 0; i < 4; i++) CHECK(isnan(y[i]));
}

/* ------------------------------------------------------------------------------------ attention */
static void check_attention(const char *what, vlm_attn_params p, float qscale) {
    int hd = p.head_dim;
    size_t nq = (size_t)p.n_q, nkv = (size_t)p.n_kv;
    float *q = rand_floats(nq * p.q_stride, qscale), *k = rand_floats(nkv * p.kv_stride, 1.0f);
    float *v = rand_floats(nkv * p.kv_stride, 1.0f);
    float *ref = calloc(nq * p.out_stride, sizeof(float)), *got = malloc(sizeof(float) * nq * p.out_stride);
    vlm_ref_attention(ref, q, k, v, &p);
    FOR_EACH_PATH({
        for (size_t i = 0; i < nq * p.out_stride; i++) got[i] = 0.0f;
        /* the strided layout leaves gaps the kernel must not write; mark the rows it must */
        for (size_t i = 0; i < nq; i++)
            for (int d = 0; d < p.n_heads * hd; d++) got[i * p.out_stride + d] = -777.0f;
        vlm_cpu_attention(&g_ctx, got, q, k, v, &p);
        char msg[200];
        snprintf(msg, sizeof msg, "%s %s n_q=%d n_kv=%d q_pos0=%d heads=%d/%d hd=%d", what, path, p.n_q, p.n_kv,
                 p.q_pos0, p.n_heads, p.n_kv_heads, hd);
        test_close(msg, got, ref, nq * p.out_stride, 1e-5f, 1e-6f);
    });
    free(q), free(k), free(v), free(ref), free(got);
}

static vlm_attn_params attn_params(int n_q, int n_kv, int heads, int kv_heads, int hd, int causal, int q_pos0) {
    vlm_attn_params p = {.n_q = n_q,
                         .n_kv = n_kv,
                         .q_pos0 = q_pos0,
                         .causal = causal,
                         .n_heads = heads,
                         .n_kv_heads = kv_heads,
                         .head_dim = hd,
                         .q_stride = heads * hd,
                         .kv_stride = kv_heads * hd,
                         .out_stride = heads * hd,
                         .scale = 1.0f / sqrtf((float)hd)};
    return p;
}

static void test_attention_vision(void) {
    static const int hds[] = {16, 20, 64, 80, 128};
    for (size_t i = 0; i < sizeof hds / sizeof *hds; i++) {
        int hd = hds[i];
        /* one segment over all rows (full attention), more rows than a task and keys than a block */
        vlm_attn_params p = attn_params(300, 300, 3, 3, hd, 0, 0);
        check_attention("full", p, 1.0f);
        /* windows of varying sizes, rows outside every segment, qkv interleaved in one buffer */
        int segs[] = {5, 69, 133, 150, 151, 290};
        p.segments = segs;
        p.n_segments = 5;
        p.q_stride = p.kv_stride = 3 * p.n_heads * hd + 4; /* a padded row: gaps between rows */
        p.out_stride = p.n_heads * hd + 3;
        check_attention("windows", p, 3.0f);
    }
    /* the real shape of a Qwen2.5-VL window: 64 patches, 16 heads of 80 */
    int segs[] = {0, 64, 128};
    vlm_attn_params p = attn_params(128, 128, 16, 16, 80, 0, 0);
    p.segments = segs;
    p.n_segments = 2;
    check_attention("window64", p, 1.0f);
    /* an empty segment list: every row attends nothing */
    p.n_segments = 0;
    check_attention("no segments", p, 1.0f);
}

static void test_attention_causal(void) {
    static const int hds[] = {16, 64, 80, 128};
    static const int groups[][2] = {{4, 4}, {4, 2}, {3, 1}, {16, 2}};
    for (size_t i = 0; i < sizeof hds / sizeof *hds; i++)
        for (size_t g = 0; g < sizeof groups / sizeof *groups; g++) {
            int H = groups[g][0], KV = groups[g][1];
            check_attention("prefill", attn_params(70, 70, H, KV, hds[i], 1, 0), 2.0f);
            check_attention("chunk", attn_params(37, 237, H, KV, hds[i], 1, 200), 2.0f);
            check_attention("decode", attn_params(1, 1000, H, KV, hds[i], 1, 999), 2.0f);
            check_attention("decode short", attn_params(1, 3, H, KV, hds[i], 1, 2), 2.0f);
        }
    /* decode over a cache longer than the query position allows: keys beyond it are ignored */
    check_attention("past cache", attn_params(2, 500, 4, 2, 64, 1, 100), 1.0f);
}

static void test_attention_threads(void) {
    for (int threads = 1; threads <= 3; threads += 2) {
        set_threads(threads);
        check_attention("prefill t", attn_params(129, 129, 16, 2, 128, 1, 0), 1.0f);
        check_attention("full t", attn_params(257, 257, 4, 4, 80, 0, 0), 1.0f);
        /* decode with fewer kv heads than threads: the key range split across threads, merged */
        check_attention("decode split", attn_params(1, 2000, 16, 2, 128, 1, 1999), 2.0f);
        check_attention("decode split 1 kv", attn_params(1, 3000, 3, 1, 64, 1, 1234), 2.0f);
    }
    set_threads(0);
}

/* Paged keys and values: the same keys scattered over a pool in shuffled blocks and read through a
 * block table give exactly the contiguous result, on every path (tiled, decode split, fallback). */
static void check_paged(const char *what, vlm_attn_params p, int bs) {
    int n_blocks = (p.n_kv + bs - 1) / bs, pool_blocks = 2 * n_blocks + 3;
    size_t row = (size_t)p.kv_stride, nq = (size_t)p.n_q;
    float *q = rand_floats(nq * p.q_stride, 2.0f), *k = rand_floats((size_t)p.n_kv * row, 1.0f);
    float *v = rand_floats((size_t)p.n_kv * row, 1.0f);
    float *kp = rand_floats((size_t)pool_blocks * bs * row, 9.0f),
          *vp = rand_floats((size_t)pool_blocks * bs * row, 9.0f);
    int32_t *table = malloc(sizeof *table * (size_t)n_blocks);
    uint64_t st = 12345;
    for (int b = 0; b < n_blocks; b++) { /* distinct pool blocks, shuffled: 2b + 1 + (0 or 1) */
        table[b] = n_blocks - 1 - b + (test_rand(&st) > 0 ? n_blocks + 3 : 0);
    }
    for (int j = 0; j < p.n_kv; j++) {
        size_t dst = ((size_t)table[j / bs] * bs + j % bs) * row;
        memcpy(kp + dst, k + (size_t)j * row, row * sizeof(float));
        memcpy(vp + dst, v + (size_t)j * row, row * sizeof(float));
    }
    float *want = calloc(nq * p.out_stride, sizeof(float)), *got = calloc(nq * p.out_stride, sizeof(float));
    vlm_attn_params pp = p;
    pp.kv_blocks = table;
    pp.kv_block_size = bs;
    FOR_EACH_PATH({
        vlm_cpu_attention(&g_ctx, want, q, k, v, &p);
        vlm_cpu_attention(&g_ctx, got, q, kp, vp, &pp);
        CHECK_MSG(!memcmp(got, want, sizeof(float) * nq * p.out_stride), "%s %s (blocks of %d): paged != contiguous",
                  what, path, bs);
    });
    vlm_ref_attention(want, q, k, v, &p);
    vlm_ref_attention(got, q, kp, vp, &pp);
    CHECK_MSG(!memcmp(got, want, sizeof(float) * nq * p.out_stride), "%s reference (blocks of %d)", what, bs);
    free(q), free(k), free(v), free(kp), free(vp), free(table), free(want), free(got);
}

static void test_attention_paged(void) {
    static const int sizes[] = {16, 5, 128};
    for (int threads = 1; threads <= 3; threads += 2) {
        set_threads(threads);
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            check_paged("prefill chunk", attn_params(37, 237, 16, 2, 128, 1, 200), sizes[i]);
            check_paged("decode", attn_params(1, 1000, 16, 2, 128, 1, 999), sizes[i]);
            check_paged("decode split", attn_params(1, 3000, 3, 1, 64, 1, 2999), sizes[i]);
            check_paged("small", attn_params(3, 20, 4, 2, 16, 1, 17), sizes[i]);
        }
    }
    vlm_cpu_kernels_test_no_scratch(1);
    check_paged("fallback", attn_params(5, 300, 4, 2, 64, 1, 295), 16);
    vlm_cpu_kernels_test_no_scratch(0);
    set_threads(0);
}

/* Without scratch memory every kernel falls back to a path that needs none: same results. */
static void test_no_scratch_fallbacks(void) {
    vlm_cpu_kernels_test_no_scratch(1);
    set_threads(3);
    check_matmul(VLM_DT_BF16, 3, 100, 300, 1); /* GEMV without the reordered x */
    check_matmul(VLM_DT_BF16, 80, 70, 300, 1); /* GEMM as GEMV groups */
    check_matmul(VLM_DT_F16, 20, 33, 65, 0);
    if (vlm_cpu_amx_available()) check_matmul_amx(3, 40, 70, 100, 1);
    vlm_cpu_set_amx_parts(0);
    check_attention("fallback prefill", attn_params(70, 100, 4, 2, 64, 1, 30), 1.0f);
    check_attention("fallback decode", attn_params(1, 2000, 16, 2, 128, 1, 1999), 1.0f);
    int segs[] = {0, 40, 70};
    vlm_attn_params p = attn_params(70, 70, 2, 2, 20, 0, 0);
    p.segments = segs;
    p.n_segments = 2;
    check_attention("fallback windows", p, 1.0f);
    set_threads(0);
    vlm_cpu_kernels_test_no_scratch(0);
}

/* ---------------------------------------------------------------------------------- other ops */
static void test_norms(void) {
    static const int Ds[] = {1, 7, 16, 33, 1280, 2048};
    for (size_t i = 0; i < sizeof Ds / sizeof *Ds; i++)
        for (int M = 1; M <= 40; M += 13) {
            int D = Ds[i];
            size_t n = (size_t)M * D;
            float *x = rand_floats(n, 3.0f), *w = rand_floats((size_t)D, 1.0f), *b = rand_floats((size_t)D, 1.0f);
            float *ref = malloc(sizeof(float) * n), *got = malloc(sizeof(float) * n);
            char what[64];
            snprintf(what, sizeof what, "rmsnorm M=%d D=%d", M, D);
            vlm_ref_rmsnorm(ref, x, w, M, D, 1e-6f);
            vlm_cpu_rmsnorm(&g_ctx, got, x, w, M, D, 1e-6f);
            test_close(what, got, ref, n, 1e-6f, 1e-7f);
            for (int with_b = 0; with_b < 2; with_b++) {
                snprintf(what, sizeof what, "layernorm M=%d D=%d bias=%d", M, D, with_b);
                vlm_ref_layernorm(ref, x, w, with_b ? b : NULL, M, D, 1e-5f);
                vlm_cpu_layernorm(&g_ctx, got, x, w, with_b ? b : NULL, M, D, 1e-5f);
                test_close(what, got, ref, n, 2e-6f, 1e-7f);
            }
            /* in place, as the models call it */
            memcpy(got, x, sizeof(float) * n);
            vlm_cpu_rmsnorm(&g_ctx, got, got, w, M, D, 1e-6f);
            vlm_ref_rmsnorm(ref, x, w, M, D, 1e-6f);
            test_close("rmsnorm in place", got, ref, n, 1e-6f, 1e-7f);
            free(x), free(w), free(b), free(ref), free(got);
        }
}

static void test_rope(void) {
    static const int hds[] = {16, 20, 64, 80, 128};
    for (size_t i = 0; i < sizeof hds / sizeof *hds; i++) {
        int hd = hds[i], H = 3, M = 37, stride = 3 * H * hd + 5;
        size_t n = (size_t)M * stride;
        float *x = rand_floats(n, 1.0f), *c = rand_floats((size_t)M * hd / 2, 1.0f),
              *s = rand_floats((size_t)M * hd / 2, 1.0f);
        float *ref = malloc(sizeof(float) * n);
        memcpy(ref, x, sizeof(float) * n);
        vlm_ref_rope(ref, stride, c, s, M, H, hd);
        vlm_cpu_rope(&g_ctx, x, stride, c, s, M, H, hd);
        test_close("rope", x, ref, n, 1e-6f, 1e-7f);
        free(x), free(c), free(s), free(ref);
    }
}

/* |got - ref| <= rel |ref| + abs max(1, |x|) element by element */
static void check_activation(const char *what, const float *x, const float *got, const float *ref, size_t n, float rel,
                             float abs_) {
    size_t bad = 0, worst = 0;
    float worst_err = 0;
    for (size_t i = 0; i < n; i++) {
        float err = fabsf(got[i] - ref[i]), lim = rel * fabsf(ref[i]) + abs_ * fmaxf(1.0f, fabsf(x[i]));
        if (!(err <= lim)) {
            if (!bad || err > worst_err) worst = i, worst_err = err;
            bad++;
        }
    }
    CHECK_MSG(bad == 0, "%s: %zu elements off, worst x=%g got %.9g ref %.9g", what, bad, x[worst], got[worst],
              ref[worst]);
}

static void test_activations(void) {
    /* a dense sweep of [-30, 30], extremes, and sizes that leave tails and use threads */
    size_t n = 200003;
    float *x = malloc(sizeof(float) * n), *u = rand_floats(n, 2.0f), *got = malloc(sizeof(float) * n);
    float *ref = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = -30.0f + 60.0f * (float)i / (float)(n - 1);
    static const float extremes[] = {0.0f, -0.0f, 1e-30f, -1e-30f, 88.0f, -88.0f, 100.0f, -100.0f, 1e4f, -1e4f};
    memcpy(x, extremes, sizeof extremes);
    for (size_t len = 1; len <= n; len = len * 7 + 3)
        FOR_EACH_PATH({
            char what[64];
            for (size_t i = 0; i < len; i++) ref[i] = vlm_ref_silu(x[i]) * u[i];
            vlm_cpu_swiglu(&g_ctx, got, x, u, len);
            snprintf(what, sizeof what, "swiglu %s n=%zu", path, len);
            check_activation(what, x, got, ref, len, 2e-6f, 1e-7f);
            for (size_t i = 0; i < len; i++) ref[i] = vlm_ref_gelu(x[i]), got[i] = x[i];
            vlm_cpu_gelu(&g_ctx, got, len);
            snprintf(what, sizeof what, "gelu %s n=%zu", path, len);
            check_activation(what, x, got, ref, len, 2e-6f, 1e-7f);
            for (size_t i = 0; i < len; i++) ref[i] = vlm_ref_quick_gelu(x[i]), got[i] = x[i];
            vlm_cpu_quick_gelu(&g_ctx, got, len);
            snprintf(what, sizeof what, "quick_gelu %s n=%zu", path, len);
            check_activation(what, x, got, ref, len, 2e-6f, 1e-7f);
            for (size_t i = 0; i < len; i++) ref[i] = u[i] + x[i], got[i] = u[i];
            vlm_cpu_add(&g_ctx, got, x, len);
            check_activation("add", x, got, ref, len, 0.0f, 0.0f);
        });
    free(x), free(u), free(got), free(ref);
}

static void test_embed_gather(void) {
    vlm_backend *be = NULL;
    CHECK_OK(vlm_cpu_backend_create(NULL, &be));
    if (!be) return;
    int32_t ids[] = {0, 5, 99, 5, 42, 1, 0, 77};
    int n = 8;
    for (size_t d = 0; d < 3; d++) {
        vlm_tensor t = rand_weight(k_dtypes[d], 100, 37, 2.0f);
        float ref[8 * 37], got[8 * 37];
        vlm_ref_embed(ref, &t, ids, n);
        vlm_embed(be, got, &t, ids, n);
        test_close("embed", got, ref, (size_t)n * 37, 0.0f, 0.0f);
        free(t.data);
    }
    float *src = rand_floats(100 * 9, 1.0f), dst[8 * 9], back[100 * 9];
    vlm_gather_rows(be, dst, src, ids, n, 9);
    for (int i = 0; i < n; i++) CHECK(!memcmp(dst + i * 9, src + ids[i] * 9, 9 * sizeof(float)));
    memset(back, 0, sizeof back);
    int32_t perm[] = {3, 1, 7, 0, 6, 2, 5, 4};
    vlm_scatter_rows(be, back, perm, dst, n, 9);
    for (int i = 0; i < n; i++) CHECK(!memcmp(back + perm[i] * 9, dst + i * 9, 9 * sizeof(float)));
    free(src);
    vlm_backend_destroy(be);
}

int main(void) {
    fprintf(stderr, "CPU: %s, AVX-512 kernels: %s, AMX: %s\n", vlm_cpu_name(), vlm_cpu_kernels_avx512() ? "yes" : "no",
            vlm_cpu_amx_available() ? "yes" : "no");
    set_threads(0);
    vlm_cpu_set_amx_parts(0); /* the FMA kernels first; test_matmul_amx covers AMX */
    RUN(test_gemv_shapes);
    RUN(test_gemv_threads);
    RUN(test_gemm_shapes);
    RUN(test_gemm_blocks);
    RUN(test_matmul_bad_dtype);
    RUN(test_matmul_amx);
    RUN(test_matmul_bf16);
    RUN(test_batch_invariance);
    RUN(test_streams_same_result);
    RUN(test_attention_vision);
    RUN(test_attention_causal);
    RUN(test_attention_threads);
    RUN(test_attention_paged);
    RUN(test_no_scratch_fallbacks);
    RUN(test_norms);
    RUN(test_rope);
    RUN(test_activations);
    RUN(test_embed_gather);
    return test_summary();
}
