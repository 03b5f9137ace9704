/* Matrix products on the CPU: y[M, N] = x[M, K] · w[N, K]^T (+ bias).
 * - Small M (at most VLM_CPU_SMALL_M = 64 rows: decode, and the batched decode of continuous
 *   batching): register tiles of up to 8 input rows against 2-4 weight rows (gemv_*.c). Tasks are
 *   ranges of weight rows; with more than 8 input rows a range is small enough to stay in L2
 *   while every group of 8 rows passes over it, so each weight is read once from memory per call.
 * - Large M (prefill, vision): blocked GEMM with our own micro-kernels (gemm_avx512.c,
 *   gemm_avx2.c). Weights are converted to f32 as micro-panels (KC x NR) are packed, so there is
 *   never an f32 copy of a weight matrix; activations are packed block by block (MC x KC).
 *   Tasks are groups of weight micro-panels.
 * - Large M with BF16 weights on CPUs with AMX: gemm_amx_avx512.c (the activations split into 3
 *   bf16 parts by default, which keeps f32 accuracy at about twice the FMA kernels' speed; see
 *   vlm_cpu_set_amx_parts). In the bf16 precision: 1 part on AMX, else vdpbf16ps
 *   (gemm_bf16_avx512.c) where the CPU has AVX512-BF16.
 *
 * Batch invariance (what continuous batching needs for identical greedy results alone and in a
 * batch): for M <= VLM_CPU_SMALL_M a row's result is bitwise independent of M and of the other
 * rows, for every weight dtype, in both precisions (tested): each (input row, weight row) pair has
 * its own accumulator whose sum runs in the same order in every tile shape, and the k chunking of
 * gemv_rows.inc depends on K alone. In the bf16 precision (BF16 weights, AVX512-BF16) the tiles
 * are vdpbf16ps on activations rounded to bf16, twice the arithmetic per cycle for the batched
 * decode; elsewhere the small-M path computes f32-exact products in both precisions. Quantized
 * weights are batch-invariant at every M (quant_matmul.c). Between the small-M and the large-M
 * paths (M <= 64 vs M > 64, i.e. decode vs prefill) results differ in the last bits: the GEMM sums
 * k in KC blocks with another association. On AMX CPUs this keeps M = 9..64 on the FMA tiles
 * rather than AMX, a trade of speed for invariance made blind (no AMX machine to measure on).
 * Our own GEMM rather than OpenBLAS: Debian's OpenBLAS 0.3.21 does not recognise recent Xeons and
 * falls back to its SSE3 (Prescott) kernels there (about 1/6 of the AVX-512 speed), and a packing
 * step that converts bf16 in place saves the separate conversion pass. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_simd.h"
#include "kernels/cpu/quant_kernels.h"

/* Blocking: a KC x NR weight micro-panel (32 KiB for NR 32) stays in L1 while the kernel runs
 * over every activation strip of the block; the packed activation block (MC x KC, at most
 * GEMM_MC_MAX rows: 1.4 MiB) stays in L2. MC is as large as that allows, since weights are
 * re-packed once per MC block. */
enum { GEMM_KC = 256, GEMM_MC_MAX = 1400, GEMM_MIN_GROUP = 8, GEMV_TASK_L2 = 384 << 10 };

void vlm_cpu_row_to_f32(vlm_dtype t, const void *row, float *dst, int64_t K) { vlm_to_f32(t, row, dst, (size_t)K); }

float vlm_cpu_dot_row(vlm_dtype t, const void *row, const float *x, int64_t K) {
    if (t != VLM_DT_F32 && t != VLM_DT_F16 && t != VLM_DT_BF16) return NAN;
    vlm_tensor w = {.dtype = t, .ndim = 2, .shape = {1, K}, .data = (void *)row};
    float y;
    vlm_cpu_gemv_rows(&y, x, &w, NULL, 1, 0, 1);
    return y;
}

static int plain_float(vlm_dtype t) { return t == VLM_DT_F32 || t == VLM_DT_F16 || t == VLM_DT_BF16; }

void vlm_cpu_gemv_rows(float *y, const float *x, const vlm_tensor *w, const float *bias, int M, int64_t n0,
                       int64_t n1) {
    if (vlm_cpu_kernels_avx512()) vlm_gemv_rows_avx512(y, x, NULL, w, bias, M, n0, n1);
    else vlm_gemv_rows_avx2(y, x, NULL, w, bias, M, n0, n1);
}

/* Threads worth using for a job that reads `bytes` of weights or does `flops` of arithmetic. */
static int threads_for(const vlm_cpu_ctx *c, double work, double min_work_per_thread) {
    int t = vlm_pool_threads(c->pool);
    int useful = (int)(work / min_work_per_thread);
    if (useful < 1) useful = 1;
    return t < useful ? t : useful;
}

/* ---- small M: tiles of up to 8 input rows over ranges of weight rows */
typedef struct {
    float *y;
    const float *x, *xp, *bias;
    const uint16_t *xb; /* the bf16 precision: x rounded to bf16 */
    const vlm_tensor *w;
    int M, avx512;
    int64_t N, K, rows_per_task;
} gemv_job;

static void gemv_task(void *arg, int64_t task, int thread) {
    const gemv_job *j = arg;
    int64_t n0 = task * j->rows_per_task, n1 = n0 + j->rows_per_task < j->N ? n0 + j->rows_per_task : j->N;
    /* the weight rows of this task stay in L2 while every group of 8 input rows passes over them */
    for (int m0 = 0; m0 < j->M; m0 += VLM_GEMV_MAX_M) {
        int mt = j->M - m0 < VLM_GEMV_MAX_M ? j->M - m0 : VLM_GEMV_MAX_M;
        float *y = j->y + (size_t)m0 * (size_t)j->N;
        const float *x = j->x + (size_t)m0 * (size_t)j->K, *xp = j->xp ? j->xp + (size_t)m0 * (size_t)j->K : NULL;
        if (j->xb) vlm_gemv_rows_bf16dp_avx512(y, j->xb + (size_t)m0 * (size_t)j->K, j->w, j->bias, mt, n0, n1);
        else if (j->avx512) vlm_gemv_rows_avx512(y, x, xp, j->w, j->bias, mt, n0, n1);
        else vlm_gemv_rows_avx2(y, x, xp, j->w, j->bias, mt, n0, n1);
    }
}

static void gemv(const vlm_cpu_ctx *c, float *y, const float *x, const vlm_tensor *w, const float *bias, int M) {
    int64_t N = w->shape[0], K = w->shape[w->ndim - 1];
    size_t rb = vlm_dtype_row_bytes(w->dtype, K);
    gemv_job j = {.y = y, .x = x, .bias = bias, .w = w, .M = M, .avx512 = vlm_cpu_kernels_avx512(), .N = N, .K = K};
    if (w->dtype == VLM_DT_BF16 && c->bf16 && j.avx512 && vlm_cpu()->avx512_bf16) { /* rounded once */
        uint16_t *buf = (uint16_t *)vlm_cpu_scratch(VLM_SCRATCH_GEMV_X, ((size_t)M * (size_t)K + 1) / 2);
        if (buf) {
            vlm_round_bf16_avx512(buf, x, (size_t)M * (size_t)K);
            j.xb = buf;
        }
    }
    if (!j.xb && w->dtype == VLM_DT_BF16 && K >= 32) { /* reordered once, read by every thread */
        float *buf = vlm_cpu_scratch(VLM_SCRATCH_GEMV_X, (size_t)M * (size_t)K);
        if (buf) {
            vlm_gemv_reorder_x(buf, x, M, K);
            j.xp = buf;
        }
    }
    int threads = threads_for(c, (double)N * (double)rb, 128 * 1024);
    /* Tasks: contiguous ranges of weight rows (long sequential streams), a few per thread so that a
     * descheduled thread holds up one small range only. With several groups of input rows, a range
     * is at most GEMV_TASK_L2 bytes of weights, which stay in L2 for the later groups. */
    int64_t rows = (N + 4 * threads - 1) / (4 * threads);
    if (M > VLM_GEMV_MAX_M) {
        int64_t l2 = (int64_t)(GEMV_TASK_L2 / (rb ? rb : 1));
        if (rows > l2) rows = l2;
    }
    rows = (rows + 15) & ~(int64_t)15;
    if (rows < 16) rows = 16;
    j.rows_per_task = rows;
    (void)vlm_cpu_streams(); /* chosen on this thread, before the kernels read it on theirs */
    vlm_pool_run(c->pool, threads, (N + rows - 1) / rows, gemv_task, &j);
}

static int g_amx_parts = -1; /* -1: not read from the environment yet */

void vlm_cpu_set_amx_parts(int parts) { g_amx_parts = parts < 0 ? 0 : parts > 3 ? 3 : parts; }

int vlm_cpu_amx_parts(void) {
    if (g_amx_parts < 0) {
        const char *e = getenv("VLM_CPU_AMX_PARTS");
        vlm_cpu_set_amx_parts(e && *e ? atoi(e) : 3);
    }
    return g_amx_parts;
}

int vlm_cpu_amx_available(void) { return vlm_cpu_kernels_avx512() && vlm_gemm_amx_available(); }

static int g_streams; /* 0: not chosen yet */

void vlm_cpu_set_streams(int streams) { g_streams = streams <= 0 ? 0 : streams == 1 ? 1 : 4; }

int vlm_cpu_streams(void) {
    if (!g_streams) {
        const char *e = getenv("VLM_CPU_STREAMS");
        vlm_cpu_set_streams(e && *e ? atoi(e) : vlm_cpu()->amd ? 1 : 4);
    }
    return g_streams;
}

/* ---- large M: the blocked GEMM. A work item is a group of weight micro-panels done whole (every k
 * and row block) by one thread with its own packed activations; threads take items dynamically.
 * No barrier between threads: on a busy host a thread that is descheduled holds up nobody, and
 * the others take its items. The price, every item packing the activations again, is under
 * 1/GEMM_MIN_GROUP of its work. */
typedef struct {
    const vlm_gemm_isa *g;
    float *y;
    const float *x, *bias;
    const vlm_tensor *w;
    int M, mc_max;
    int64_t N, K, nstrips, group;
} gemm_job;

static void gemm_task(void *arg, int64_t it, int thread) {
    const gemm_job *jb = arg;
    const vlm_gemm_isa *g = jb->g;
    const int mr = g->mr, nr = g->nr, M = jb->M, mc_max = jb->mc_max;
    const int64_t N = jb->N, K = jb->K;
    const vlm_tensor *w = jb->w;
    const float *x = jb->x, *bias = jb->bias;
    float *y = jb->y;
    size_t rb = vlm_dtype_row_bytes(w->dtype, K);
    const char *wbase = (const char *)w->data;
    int64_t j0 = it * jb->group, j1 = j0 + jb->group < jb->nstrips ? j0 + jb->group : jb->nstrips;
    float *ap = vlm_cpu_scratch(VLM_SCRATCH_GEMM_A, (size_t)mc_max * GEMM_KC);
    float bp[GEMM_KC * 32] __attribute__((aligned(64))); /* one weight micro-panel, nr <= 32 */
    if (!ap) { /* no memory for packed activations: GEMV over groups of rows (slow, correct) */
        for (int m = 0; m < M; m += VLM_GEMV_MAX_M)
            vlm_cpu_gemv_rows(y + (size_t)m * (size_t)N, x + (size_t)m * (size_t)K, w, bias,
                              M - m < VLM_GEMV_MAX_M ? M - m : VLM_GEMV_MAX_M, j0 * nr, j1 * nr < N ? j1 * nr : N);
        return;
    }
    for (int64_t k0 = 0; k0 < K; k0 += GEMM_KC) {
        int kc = K - k0 < GEMM_KC ? (int)(K - k0) : GEMM_KC;
        for (int m0 = 0; m0 < M; m0 += mc_max) {
            int mc = M - m0 < mc_max ? M - m0 : mc_max, nms = (mc + mr - 1) / mr;
            for (int s = 0; s < nms; s++) {
                int rows = mc - s * mr < mr ? mc - s * mr : mr;
                g->pack_x(x + (size_t)(m0 + s * mr) * (size_t)K, K, rows, k0, kc, ap + (size_t)s * mr * kc);
            }
            for (int64_t j = j0; j < j1; j++) {
                int cols = N - j * nr < nr ? (int)(N - j * nr) : nr;
                g->pack_w(w->dtype, wbase + (size_t)j * nr * rb, rb, cols, k0, kc, bp);
                const float *bj = k0 == 0 && bias ? bias + j * nr : NULL;
                for (int s = 0; s < nms; s++) {
                    int rows = mc - s * mr < mr ? mc - s * mr : mr;
                    g->kernel(kc, ap + (size_t)s * mr * kc, bp, y + (size_t)(m0 + s * mr) * (size_t)N + j * nr, N, rows,
                              cols, k0 > 0, bj);
                }
            }
        }
    }
}

static void gemm(const vlm_cpu_ctx *c, float *y, const float *x, const vlm_tensor *w, const float *bias, int M) {
    int64_t N = w->shape[0], K = w->shape[w->ndim - 1];
    double flops = 2.0 * M * (double)N * (double)K;
    int parts = c->bf16 ? 1 : vlm_cpu_amx_parts();
    if (parts && w->dtype == VLM_DT_BF16 && vlm_cpu_amx_available()) {
        if (vlm_gemm_amx(c->pool, y, x, w, bias, M, parts, threads_for(c, flops, 1.6e7))) return;
    }
    const vlm_gemm_isa *g = vlm_cpu_kernels_avx512() ? &vlm_gemm_avx512 : &vlm_gemm_avx2;
    if (c->bf16 && w->dtype == VLM_DT_BF16 && vlm_cpu_kernels_avx512() && vlm_cpu()->avx512_bf16)
        g = &vlm_gemm_avx512_bf16;
    const int mr = g->mr, nr = g->nr;
    int mblocks = (M + GEMM_MC_MAX - 1) / GEMM_MC_MAX;
    int mc_max = ((M + mblocks - 1) / mblocks + mr - 1) / mr * mr; /* equal blocks, whole strips */
    int64_t nstrips = (N + nr - 1) / nr;
    int threads = threads_for(c, flops, 4e6);
    if (threads > nstrips) threads = (int)nstrips;
    int64_t items = 3 * (int64_t)threads; /* a multiple of the thread count, so they end together */
    if (nstrips < items * GEMM_MIN_GROUP) {
        items = nstrips / ((int64_t)threads * GEMM_MIN_GROUP) * threads;
        if (items < threads) items = threads;
    }
    int64_t group = (nstrips + items - 1) / items;
    items = (nstrips + group - 1) / group;
    gemm_job j = {.g = g,
                  .y = y,
                  .x = x,
                  .bias = bias,
                  .w = w,
                  .M = M,
                  .mc_max = mc_max,
                  .N = N,
                  .K = K,
                  .nstrips = nstrips,
                  .group = group};
    vlm_pool_run(c->pool, threads, items, gemm_task, &j);
}

void vlm_cpu_matmul(const vlm_cpu_ctx *c, float *y, const float *x, const vlm_tensor *w, const float *bias, int M) {
    if (vlm_dtype_is_quantized(w->dtype)) {
        vlm_cpu_matmul_quant(c, y, x, w, bias, M);
        return;
    }
    if (M <= 0) return;
    int64_t N = w->shape[0], K = w->shape[w->ndim - 1];
    if (!plain_float(w->dtype)) {
        /* no kernel for this format in this build: NaN, never plausible garbage */
        for (size_t i = 0; i < (size_t)M * (size_t)N; i++) y[i] = NAN;
        return;
    }
    if (K <= 0) {
        for (int m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) y[(size_t)m * N + n] = bias ? bias[n] : 0.0f;
        return;
    }
    if (M <= VLM_CPU_SMALL_M) gemv(c, y, x, w, bias, M);
    else gemm(c, y, x, w, bias, M);
}
