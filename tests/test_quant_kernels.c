/* Quantized matrix products (kernels/cpu/quant_kernels.h): every path (scalar, AVX2, AVX-512 VNNI
 * where the CPU has it) against the scalar reference and against dequantize-then-f32 with the
 * derived bound, over odd shapes (N not a multiple of the thread chunk, odd block counts, M = 1..9
 * and larger), through vlm_cpu_matmul's dispatch, with 1 and 2 threads, and with non-finite inputs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "harness.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/quant_kernels.h"
#include "tensor/quant.h"

/* The kernels' context: a pool of the threads set_threads asked for (0: every core). */
static vlm_cpu_ctx g_ctx;
static void set_threads(int n) {
    vlm_pool_free(g_ctx.pool);
    g_ctx.pool = NULL;
    if (vlm_pool_create(n, &g_ctx.pool) != VLM_OK) g_ctx.pool = NULL; /* one thread */
}

static uint64_t g_rng = 12345;

typedef struct {
    vlm_tensor w;
    float *deq; /* [N, K] dequantized */
} qmat;

static qmat make_qmat(vlm_dtype t, int64_t N, int64_t K, float sigma) {
    qmat m = {0};
    size_t rb = vlm_dtype_row_bytes(t, K);
    float *row = malloc(sizeof(float) * (size_t)K);
    m.w = (vlm_tensor){.dtype = t, .ndim = 2, .shape = {N, K}, .nbytes = rb * (size_t)N};
    /* exactly the tensor's bytes, so a read past the last row is caught under ASan */
    m.w.data = malloc(m.w.nbytes);
    m.deq = malloc(sizeof(float) * (size_t)(N * K));
    for (int64_t n = 0; n < N; n++) {
        for (int64_t k = 0; k < K; k++) row[k] = sigma * test_rand(&g_rng) * (k % 97 == 5 ? 8.0f : 1.0f);
        vlm_quantize_row(t, row, (uint8_t *)m.w.data + n * rb, K);
        vlm_dequantize_row(t, (uint8_t *)m.w.data + n * rb, m.deq + n * K, K);
    }
    free(row);
    return m;
}

/* The CPU backend's interleaved copy (Q4_0 / Q8_0 -> *_R16), made here directly (prepare() only
 * makes it when the AVX-512 path runs). */
static void interleave_qmat(qmat *m) {
    int64_t N = m->w.shape[0], K = m->w.shape[1];
    size_t rb = vlm_dtype_row_bytes(m->w.dtype, K);
    uint8_t *buf = malloc(m->w.nbytes);
    for (int64_t n = 0; n < N; n++)
        vlm_quant_interleave_row(m->w.dtype, (uint8_t *)m->w.data + n * rb, buf + n * rb, K);
    free(m->w.data);
    m->w.data = buf;
    m->w.dtype = vlm_quant_interleaved(m->w.dtype);
}

static void free_qmat(qmat *m) {
    free(m->w.data);
    free(m->deq);
}

static float *rand_vec(size_t n, float scale) {
    float *v = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) v[i] = scale * test_rand(&g_rng);
    return v;
}

/* Activation quantization: every path gives the same bytes, NaN blocks included. */
static void test_act_quant(void) {
    enum { K = 64 * 19 };
    float *x = rand_vec(K, 3.0f);
    for (int j = 64; j < 96; j++) x[j] = 0; /* an all-zero block */
    x[200] = NAN;
    x[330] = -INFINITY;
    x[400] = 1e30f;
    int8_t q0[K], q1[K], q2[K];
    float d0[K / 32], d1[K / 32], d2[K / 32], s0[K / 32], s1[K / 32], s2[K / 32];
    vlm_qact_row_scalar(x, K, q0, d0, s0);
    vlm_qact_row_avx2(x, K, q1, d1, s1);
    CHECK(!memcmp(q0, q1, K) && !memcmp(d0, d1, sizeof d0) && !memcmp(s0, s1, sizeof s0));
    if (vlm_cpu_has_avx512() && vlm_cpu()->avx512_vnni) {
        vlm_qact_row_avx512(x, K, q2, d2, s2);
        CHECK(!memcmp(q0, q2, K) && !memcmp(d0, d2, sizeof d0) && !memcmp(s0, s2, sizeof s0));
    }
    CHECK(isnan(d0[200 / 32]) && isnan(d0[330 / 32]) && d0[2] == 0.0f && d0[400 / 32] > 1e27f);
    int in_range = 1;
    for (int j = 0; j < K; j++) in_range &= q0[j] != -128;
    CHECK(in_range);
    free(x);
}

/* Compares y = x · w^T on path p with the scalar reference and with the f32 product of the
 * dequantized weights (bound: activation rounding, NF4's int8 code book, float rounding). */
static void check_shape(vlm_qpath p, vlm_dtype t, int64_t N, int64_t K, int M, int with_bias) {
    qmat m = make_qmat(vlm_quant_base(t), N, K, 0.05f);
    if (t != vlm_quant_base(t)) interleave_qmat(&m);
    float *x = rand_vec((size_t)M * K, 2.0f), *bias = with_bias ? rand_vec((size_t)N, 1.0f) : NULL;
    float *y = malloc(sizeof(float) * (size_t)(M * N));
    int64_t nb = K / 32;
    int8_t *q = malloc((size_t)K);
    float *d = malloc(sizeof(float) * (size_t)nb), *s = malloc(sizeof(float) * (size_t)nb);
    vlm_cpu_quant_set_path(p);
    vlm_cpu_matmul_quant(&g_ctx, y, x, &m.w, bias, M);
    vlm_cpu_quant_set_path(VLM_QPATH_AUTO);
    size_t rb = vlm_dtype_row_bytes(t, K);
    int bad_ref = 0, bad_f32 = 0;
    for (int r = 0; r < M; r++) {
        vlm_qact_row_scalar(x + (size_t)r * K, K, q, d, s);
        for (int64_t n = 0; n < N; n++) {
            double ref = vlm_qdot_ref(t, (const uint8_t *)m.w.data + n * rb, q, d, K), f32 = 0, mag = 0, bnd = 0;
            const float *wr = m.deq + n * K, *xr = x + (size_t)r * K;
            for (int64_t b = 0; b < nb; b++) {
                double wabs = 0;
                for (int j = 0; j < 32; j++) {
                    int64_t k = b * 32 + j;
                    f32 += (double)wr[k] * xr[k];
                    mag += fabs((double)wr[k] * xr[k]);
                    wabs += fabs((double)wr[k]);
                    if (t == VLM_DT_NF4) /* the int8 code book: 0.5/127 of absmax per weight */
                        bnd += fabs((double)xr[k]) * 1.0001 *
                            vlm_quant_block_scale((const uint8_t *)m.w.data + n * rb + (size_t)(k / 64) * 34) / 254.0;
                }
                bnd += d[b] / 2 * wabs;
            }
            double b0 = bias ? bias[n] : 0, got = y[(size_t)r * N + n];
            double tol_ref = 2e-6 * mag + 1e-6 + 1e-6 * fabs(b0);
            if (fabs(got - (ref + b0)) > tol_ref && bad_ref++ < 3)
                fprintf(stderr, "  %s %s N=%lld K=%lld M=%d: y[%d,%lld] = %.7g, reference %.7g\n", vlm_qpath_name(p),
                        vlm_quant_tag(t), (long long)N, (long long)K, M, r, (long long)n, got, ref + b0);
            if (fabs(got - (f32 + b0)) > bnd + tol_ref && bad_f32++ < 3)
                fprintf(stderr, "  %s %s: y = %.7g, dequantized f32 %.7g, bound %.3g\n", vlm_qpath_name(p),
                        vlm_quant_tag(t), got, f32 + b0, bnd + tol_ref);
        }
    }
    CHECK_MSG(bad_ref == 0, "%s %s N=%lld K=%lld M=%d vs the scalar reference", vlm_qpath_name(p), vlm_quant_tag(t),
              (long long)N, (long long)K, M);
    CHECK_MSG(bad_f32 == 0, "%s %s N=%lld K=%lld M=%d vs dequantize-then-f32", vlm_qpath_name(p), vlm_quant_tag(t),
              (long long)N, (long long)K, M);
    free(x), free(bias), free(y), free(q), free(d), free(s);
    free_qmat(&m);
}

static int path_runs(vlm_qpath p) {
    vlm_cpu_quant_set_path(p);
    int ok = vlm_cpu_quant_path() == p;
    vlm_cpu_quant_set_path(VLM_QPATH_AUTO);
    return ok;
}

static void test_paths(void) {
    vlm_qpath paths[] = {VLM_QPATH_SCALAR, VLM_QPATH_AVX2, VLM_QPATH_AVX512};
    vlm_dtype ts[] = {VLM_DT_Q4_0, VLM_DT_Q8_0, VLM_DT_NF4, VLM_DT_Q4_0_R16, VLM_DT_Q8_0_R16};
    for (int pi = 0; pi < 3; pi++) {
        if (!path_runs(paths[pi])) {
            fprintf(stderr, "  (the %s path cannot run on this CPU: not tested)\n", vlm_qpath_name(paths[pi]));
            continue;
        }
        for (int ti = 0; ti < 5; ti++) {
            vlm_dtype t = ts[ti];
            /* one group; an odd block count; full groups and an odd tail; full groups and an even tail */
            int64_t Ks[] = {128, 96, 32 * 47, 64 * 33};
            for (int ki = 0; ki < 4; ki++) {
                int64_t K = Ks[ki];
                if (K % vlm_dtype_block(t)) continue;
                int64_t Ns[] = {1, 17, 33};
                for (int ni = 0; ni < 3; ni++)
                    for (int M = 1; M <= 9; M++) check_shape(paths[pi], t, Ns[ni], K, M, (M + ni) & 1);
            }
            check_shape(paths[pi], t, 67, 512, 23, 1);   /* tiles of the larger-M path, partial last tile */
            check_shape(paths[pi], t, 1001, 1536, 1, 1); /* decode: rows in lockstep streams + leftovers */
            check_shape(paths[pi], t, 300, 1088, 40, 0);
        }
    }
}

/* vlm_cpu_matmul hands block formats to the quantized product; threads do not change results. */
static void test_dispatch_and_threads(void) {
    qmat m = make_qmat(VLM_DT_Q4_0, 101, 1024, 0.05f);
    float *x = rand_vec(3 * 1024, 1.0f), *b = rand_vec(101, 1.0f);
    float y1[303], y2[303], y3[303];
    set_threads(1);
    vlm_cpu_matmul(&g_ctx, y1, x, &m.w, b, 3);
    set_threads(2);
    vlm_cpu_matmul(&g_ctx, y2, x, &m.w, b, 3);
    vlm_cpu_matmul_quant(&g_ctx, y3, x, &m.w, b, 3);
    set_threads(0);
    CHECK(!memcmp(y1, y2, sizeof y1) && !memcmp(y2, y3, sizeof y2));
    /* a non-finite input makes its row's outputs NaN, not silent garbage */
    x[1024 + 77] = NAN;
    vlm_cpu_matmul(&g_ctx, y1, x, &m.w, NULL, 3);
    int nan_row = 1, clean = 1;
    for (int n = 0; n < 101; n++) {
        nan_row &= isnan(y1[101 + n]);
        clean &= isfinite(y1[n]) && isfinite(y1[202 + n]);
    }
    CHECK(nan_row && clean);
    free(x), free(b);
    free_qmat(&m);
}

/* Batch invariance: a row's result is bitwise the same alone (M = 1, the decode kernel, with either
 * way of streaming the weights) and among M rows, for the interleaved layouts the backend uses and
 * the plain ones, on every path. */
static void test_batch_invariance(void) {
    vlm_dtype ts[] = {VLM_DT_Q4_0, VLM_DT_Q8_0, VLM_DT_NF4};
    vlm_qpath paths[] = {VLM_QPATH_AVX512, VLM_QPATH_AVX2, VLM_QPATH_SCALAR};
    static const int Ms[] = {2, 5, 8, 9, 16, 33, 64};
    for (int pi = 0; pi < 3; pi++) {
        vlm_cpu_quant_set_path(paths[pi]);
        if (vlm_cpu_quant_path() != paths[pi]) continue;
        for (int i = 0; i < 3; i++) {
            const int64_t N = 77, K = 64 * 35;
            qmat m = make_qmat(ts[i], N, K, 0.05f);
            vlm_tensor dev;
            CHECK_OK(vlm_cpu_quant_prepare(g_ctx.pool, &m.w, &dev));
            float *x = rand_vec(64 * K, 1.0f), *one = malloc(sizeof(float) * 64 * N),
                  *many = malloc(sizeof(float) * 64 * N);
            for (int r = 0; r < 64; r++) vlm_cpu_matmul(&g_ctx, one + r * N, x + r * K, &dev, NULL, 1);
            /* decode's other way of streaming the weights (vlm_cpu_streams) visits rows in another
             * order: the same results */
            int streams = vlm_cpu_streams();
            vlm_cpu_set_streams(streams == 1 ? 4 : 1);
            for (int r = 0; r < 64; r++) vlm_cpu_matmul(&g_ctx, many + r * N, x + r * K, &dev, NULL, 1);
            vlm_cpu_set_streams(streams);
            CHECK_MSG(!memcmp(many, one, sizeof(float) * (size_t)(64 * N)), "%s %s: 1 stream vs 4",
                      vlm_qpath_name(paths[pi]), vlm_dtype_name(dev.dtype));
            for (int mi = 0; mi < 7; mi++) {
                int M = Ms[mi], off = 64 - M;
                vlm_cpu_matmul(&g_ctx, many, x + off * K, &dev, NULL, M);
                CHECK_MSG(!memcmp(many, one + off * N, sizeof(float) * (size_t)(M * N)), "%s %s M=%d",
                          vlm_qpath_name(paths[pi]), vlm_dtype_name(dev.dtype), M);
            }
            vlm_cpu_quant_release(&dev);
            free(x), free(one), free(many);
            free_qmat(&m);
        }
    }
    vlm_cpu_quant_set_path(VLM_QPATH_AUTO);
}

/* The backend's weight preparation: interleaved copies compute the same products (integer block
 * dots are identical; only the float summation order differs), embedding rows read back the same,
 * and release frees the copy. */
static void test_prepare(void) {
    vlm_dtype ts[] = {VLM_DT_Q4_0, VLM_DT_Q8_0, VLM_DT_NF4};
    for (int i = 0; i < 3; i++) {
        qmat m = make_qmat(ts[i], 45, 64 * 19, 0.05f);
        vlm_tensor dev;
        CHECK_OK(vlm_cpu_quant_prepare(g_ctx.pool, &m.w, &dev));
        int avx512 = vlm_cpu_quant_path() == VLM_QPATH_AVX512;
        CHECK(dev.dtype == (avx512 ? vlm_quant_interleaved(ts[i]) : ts[i]));
        CHECK(ts[i] != VLM_DT_NF4 || dev.data == m.w.data);
        float *x = rand_vec(5 * 64 * 19, 1.0f), y0[5 * 45], y1[5 * 45];
        vlm_cpu_matmul(&g_ctx, y0, x, &m.w, NULL, 5);
        vlm_cpu_matmul(&g_ctx, y1, x, &dev, NULL, 5);
        CHECK(test_close(vlm_dtype_name(dev.dtype), y1, y0, 5 * 45, 1e-5f, 1e-5f));
        int32_t ids[2] = {44, 3};
        float e[2 * 64 * 19];
        vlm_cpu_embed(&g_ctx, e, &dev, ids, 2);
        CHECK(!memcmp(e, m.deq + 44 * 64 * 19, sizeof(float) * 64 * 19));
        CHECK(!memcmp(e + 64 * 19, m.deq + 3 * 64 * 19, sizeof(float) * 64 * 19));
        void *before = dev.data;
        vlm_cpu_quant_release(&dev);
        CHECK(dev.data == (avx512 && ts[i] != VLM_DT_NF4 ? NULL : before));
        free(x);
        free_qmat(&m);
    }
}

int main(void) {
    set_threads(0);
    RUN(test_act_quant);
    RUN(test_dispatch_and_threads);
    RUN(test_prepare);
    for (int streams = 1; streams <= 4; streams += 3) { /* each way of streaming decode's weights */
        fprintf(stderr, "-- decode with %d weight stream%s per thread\n", streams, streams > 1 ? "s" : "");
        vlm_cpu_set_streams(streams);
        RUN(test_paths);
        RUN(test_batch_invariance);
    }
    vlm_cpu_set_streams(0);
    return test_summary();
}
