/* Micro-benchmarks of the CPU kernels, each printed as a ratio to a baseline measured in the same
 * run (the host is shared and its DRAM bandwidth drifts from minute to minute):
 * - GEMV (decode): GB/s of weights streamed per shape vs the read bandwidth of
 *   vlm_measure_read_bandwidth, measured right before; weights cycle through copies larger than
 *   the last-level cache, so every call reads DRAM as in a real decode step.
 * - GEMM (prefill, vision): GFLOP/s vs OpenBLAS sgemm on large f32 matrices (the f32 peak), and
 *   per shape vs sgemm on an f32 copy of the same weights and vs the former panel + sgemm scheme.
 * - attention: ms and GFLOP/s of the tiled kernel, vs the former row-at-a-time kernel.
 * - element-wise ops: GB/s.
 * usage: perf_kernels [gemv] [gemm] [attn] [ops] [--reps N] [--mem-mb MB] [--threads N] [--cpu-clock]
 *                      [--shape M,N,K]
 * Run it with `nice` at quiet moments; it prints the load average before and after. On a busy
 * host, --cpu-clock times the compute-bound kernels by CPU time (GEMV always by wall time). */
#include "perf_common.h"
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/cpu.h"
#include "base/membw.h"
#include "base/timer.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/ref.h"

/* The kernels' context of a micro-benchmark: a pool of the threads set_threads asked for. */
static vlm_cpu_ctx g_ctx;
static void set_threads(int n) {
    vlm_pool_free(g_ctx.pool);
    g_ctx.pool = NULL;
    if (vlm_pool_create(n, &g_ctx.pool) != VLM_OK) g_ctx.pool = NULL; /* one thread */
}

static int g_reps = 5;
static int g_cpu_clock; /* --cpu-clock: compute kernels timed by process CPU time / threads */
static int g_threads = 1;

/* Wall time, or (--cpu-clock) the process's CPU time divided by the thread count: on a host
 * shared with other jobs, time spent descheduled does not count, so ratios of compute-bound
 * kernels stay meaningful (threads spinning at a barrier still count). */
static double bench_now(void) {
    if (!g_cpu_clock) return vlm_now();
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ((double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec) / g_threads;
}
static int g_shape_M; /* --shape M,N,K: only this GEMM shape */
static long long g_shape_N, g_shape_K;
static size_t g_mem = (size_t)1024 << 20;

static void print_load(const char *when) {
    FILE *f = fopen("/proc/loadavg", "r");
    char buf[128] = "?";
    if (f) {
        if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
        fclose(f);
    }
    buf[strcspn(buf, "\n")] = 0;
    printf("# load average %s: %s\n", when, buf);
}

static void fill_random(void *p, size_t bytes, vlm_dtype dt) {
    /* a 64 KiB pattern of proper values (no NaN, Inf or subnormals), repeated */
    enum { PAT = 1 << 16 };
    static unsigned char pat[3][PAT];
    static int ready[3];
    int d = dt == VLM_DT_F32 ? 0 : dt == VLM_DT_F16 ? 1 : 2;
    if (!ready[d]) {
        uint64_t s = 99 + (uint64_t)d;
        for (int i = 0; i < PAT / 4; i++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            float v = ((float)((s >> 40) & 0xffffff) / 8388608.0f - 1.0f) * 0.05f;
            if (d == 0) ((float *)pat[d])[i] = v;
            else {
                uint16_t h = d == 1 ? vlm_f32_to_f16(v) : vlm_f32_to_bf16(v);
                ((uint16_t *)pat[d])[2 * i] = h;
                ((uint16_t *)pat[d])[2 * i + 1] = h ^ 0x8000u;
            }
        }
        ready[d] = 1;
    }
    for (size_t o = 0; o < bytes; o += PAT) memcpy((char *)p + o, pat[d], bytes - o < PAT ? bytes - o : PAT);
}

/* ------------------------------------------------------------------------------------------ GEMV */
typedef struct {
    const char *name;
    int64_t N, K;
} shape;

static const shape k_gemv_shapes[] = {
    {"q/o 2048->2048", 2048, 2048},    {"k/v 2048->256", 256, 2048},           {"gate/up 2048->11008", 11008, 2048},
    {"down 11008->2048", 2048, 11008}, {"lm_head 2048->151936", 151936, 2048},
};

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One shape: `reps` rounds, each a bandwidth probe over as many bytes as one pass through the
 * weight copies, right before that pass (so both see the same load on the host). Reports the
 * median GB/s and the median and best of the per-round ratios. */
static void bench_gemv_shape(vlm_dtype dt, const shape *s, int M, char *pool, size_t pool_bytes, float *x, float *y,
                             int threads, double *gbs, double *bw, double *ratio_med, double *ratio_best) {
    size_t mat = (size_t)s->N * vlm_dtype_row_bytes(dt, s->K);
    size_t copies = pool_bytes / mat;
    double g[64], b[64], r[64];
    int n = 0;
    *gbs = *bw = *ratio_med = *ratio_best = 0;
    if (copies < 2) return;
    for (int rep = 0; rep <= g_reps && n < 64; rep++) {
        double bwr = vlm_measure_read_bandwidth(copies * mat, 1, threads);
        double t0 = vlm_now();
        for (size_t c = 0; c < copies; c++) {
            vlm_tensor w = {.dtype = dt, .ndim = 2, .shape = {s->N, s->K}, .data = pool + c * mat, .nbytes = mat};
            vlm_cpu_matmul(&g_ctx, y, x, &w, NULL, M);
        }
        double t = vlm_now() - t0;
        if (rep == 0) continue; /* warm-up: page faults of the copies, scratch buffers */
        g[n] = (double)(copies * mat) / t / 1e9, b[n] = bwr, r[n] = bwr > 0 ? g[n] / bwr : 0;
        n++;
    }
    qsort(g, (size_t)n, sizeof *g, cmp_double);
    qsort(b, (size_t)n, sizeof *b, cmp_double);
    qsort(r, (size_t)n, sizeof *r, cmp_double);
    *gbs = g[n / 2], *bw = b[n / 2], *ratio_med = r[n / 2], *ratio_best = r[n - 1];
}

static void bench_gemv(int threads) {
    printf("\n## GEMV (decode), %d threads: weights streamed per call (copies cycled, %zu MiB, so from DRAM), median "
           "GB/s;\n   read bandwidth probed right before each round; median and best of the per-round ratios\n",
           threads, g_mem >> 20);
    char *pool = aligned_alloc(64, g_mem);
    float *x = malloc(sizeof(float) * 8 * 151936), *y = malloc(sizeof(float) * 8 * 151936);
    if (!pool || !x || !y) {
        printf("out of memory\n");
        return;
    }
    for (int i = 0; i < 8 * 151936; i++) x[i] = (float)((i * 37) % 101) * 0.01f - 0.5f;
    static const vlm_dtype dts[] = {VLM_DT_BF16, VLM_DT_F16, VLM_DT_F32};
    printf("%-6s %-7s %-22s %2s %9s %9s %9s %9s\n", "path", "dtype", "shape", "M", "GB/s", "bw GB/s", "ratio", "best");
    for (int isa = 0; isa < 2; isa++) {
        vlm_cpu_kernels_force_avx2(isa);
        if (isa == 0 && !vlm_cpu_kernels_avx512()) continue;
        for (int d = 0; d < 3; d++) {
            fill_random(pool, g_mem, dts[d]);
            for (size_t si = 0; si < sizeof k_gemv_shapes / sizeof *k_gemv_shapes; si++) {
                const shape *s = &k_gemv_shapes[si];
                if (isa == 1 && dts[d] != VLM_DT_BF16 && si > 0) continue; /* AVX2: the main shapes only */
                static const int Ms[] = {1, 4, 8};
                for (int mi = 0; mi < 3; mi++) {
                    int M = Ms[mi];
                    if (M > 1 && (dts[d] != VLM_DT_BF16 || si != 0)) continue;
                    if (g_mem / ((size_t)s->N * vlm_dtype_row_bytes(dts[d], s->K)) < 2) {
                        printf("%-6s %-7s %-22s %2d   (needs --mem-mb of at least two copies)\n",
                               isa ? "avx2" : "avx512", vlm_dtype_name(dts[d]), s->name, M);
                        continue;
                    }
                    double gbs, bw, rmed, rbest;
                    bench_gemv_shape(dts[d], s, M, pool, g_mem, x, y, threads, &gbs, &bw, &rmed, &rbest);
                    printf("%-6s %-7s %-22s %2d %9.2f %9.2f %9.2f %9.2f\n", isa ? "avx2" : "avx512",
                           vlm_dtype_name(dts[d]), s->name, M, gbs, bw, rmed, rbest);
                    fflush(stdout);
                }
            }
        }
    }
    vlm_cpu_kernels_force_avx2(0);
    free(pool), free(x), free(y);
}

/* ------------------------------------------------------------------------------------------ GEMM */
static double time_best(void (*fn)(void *), void *arg) {
    double best = 1e30;
    fn(arg); /* warm: scratch buffers, page faults */
    for (int r = 0; r < g_reps; r++) {
        double t0 = bench_now();
        fn(arg);
        double t = bench_now() - t0;
        if (t < best) best = t;
    }
    return best;
}

typedef struct {
    int M;
    int64_t N, K;
    float *x, *y, *wf; /* wf: f32 copy of the weights */
    vlm_tensor w;
} gemm_job;

static void run_ours(void *a) {
    gemm_job *j = a;
    vlm_cpu_matmul(&g_ctx, j->y, j->x, &j->w, NULL, j->M);
}
static void run_sgemm(void *a) {
    gemm_job *j = a;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->M, (int)j->N, (int)j->K, 1.0f, j->x, (int)j->K, j->wf,
                (int)j->K, 0.0f, j->y, (int)j->N);
}
/* The former scheme: 64-row weight panels converted to f32, OpenBLAS sgemm per panel inside our
 * OpenMP region (where OpenBLAS runs single-threaded). */
static void run_panels(void *a) {
    gemm_job *j = a;
    enum { P = 64 };
    int64_t N = j->N, K = j->K, np = (N + P - 1) / P;
    size_t rb = vlm_dtype_row_bytes(j->w.dtype, K);
#pragma omp parallel
    {
        float *buf = malloc(sizeof(float) * P * (size_t)K);
#pragma omp for schedule(dynamic, 1)
        for (int64_t p = 0; p < np; p++) {
            int64_t n0 = p * P, nb = N - n0 < P ? N - n0 : P;
            for (int64_t r = 0; r < nb; r++)
                vlm_to_f32(j->w.dtype, (const char *)j->w.data + (size_t)(n0 + r) * rb, buf + r * K, (size_t)K);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, j->M, (int)nb, (int)K, 1.0f, j->x, (int)K, buf, (int)K,
                        0.0f, j->y + n0, (int)N);
        }
        free(buf);
    }
}

static gemm_job make_job(int M, int64_t N, int64_t K, vlm_dtype dt) {
    gemm_job j = {.M = M, .N = N, .K = K};
    j.x = malloc(sizeof(float) * (size_t)M * K);
    j.y = malloc(sizeof(float) * (size_t)M * N);
    j.wf = malloc(sizeof(float) * (size_t)N * K);
    j.w = (vlm_tensor){.dtype = dt, .ndim = 2, .shape = {N, K}};
    j.w.nbytes = (size_t)N * vlm_dtype_row_bytes(dt, K);
    j.w.data = malloc(j.w.nbytes);
    fill_random(j.x, sizeof(float) * (size_t)M * K, VLM_DT_F32);
    fill_random(j.w.data, j.w.nbytes, dt);
    vlm_to_f32(dt, j.w.data, j.wf, (size_t)(N * K));
    return j;
}
static void free_job(gemm_job *j) { free(j->x), free(j->y), free(j->wf), free(j->w.data); }

static double peak_sgemm(void) {
    gemm_job j = make_job(2048, 2048, 2048, VLM_DT_F32);
    double t = time_best(run_sgemm, &j);
    free_job(&j);
    return 2.0 * 2048 * 2048 * 2048 / t / 1e9;
}

static double bench_gemm(int threads) {
    printf("\n## GEMM (prefill / vision), %d threads; OpenBLAS: %s\n", threads, openblas_get_config());
    double peak = peak_sgemm();
    printf("f32 peak (OpenBLAS sgemm 2048^3): %.1f GFLOP/s\n", peak);
    if (g_shape_M < 0) return peak;
    static const struct {
        const char *name;
        int M;
        int64_t N, K;
    } shapes[] = {
        {"prefill q/o", 512, 2048, 2048},   {"prefill k/v", 512, 256, 2048},      {"prefill gate/up", 512, 11008, 2048},
        {"prefill down", 512, 2048, 11008}, {"vision qkv", 1024, 3840, 1280},     {"vision gate/up", 1024, 3420, 1280},
        {"vision down", 1024, 1280, 3420},  {"vision proj", 1024, 1280, 1280},    {"patch embed", 1024, 1280, 1176},
        {"merger fc1", 256, 5120, 5120},    {"short prompt q/o", 40, 2048, 2048}, {"big image qkv", 4096, 3840, 1280},
    };
    printf("FMA kernels (bf16 weights): GFLOP/s, ratio to the f32 peak, to sgemm on an f32 copy of the weights and to "
           "the\n"
           "former panel + sgemm scheme; AMX with the activations in 3 / 2 / 1 bf16 parts and the FMA kernels on f32\n"
           "weights: ratio to the f32 peak\n");
    printf("%-7s %-18s %5s %6s %6s %8s %6s %7s %7s %6s %6s %6s %6s\n", "path", "shape", "M", "N", "K", "GFLOP/s",
           "/peak", "/sgemm", "/panels", "amx3", "amx2", "amx1", "f32w");
    int amx = vlm_cpu_amx_available(), saved_parts = vlm_cpu_amx_parts();
    for (int isa = 0; isa < 2; isa++) {
        vlm_cpu_kernels_force_avx2(isa);
        if (isa == 0 && !vlm_cpu_kernels_avx512()) continue;
        size_t nshapes = g_shape_M ? 1 : sizeof shapes / sizeof *shapes;
        for (size_t i = 0; i < nshapes; i++) {
            if (isa == 1 && i != 0 && i != 4) continue;
            gemm_job j = g_shape_M ? make_job(g_shape_M, g_shape_N, g_shape_K, VLM_DT_BF16)
                                   : make_job(shapes[i].M, shapes[i].N, shapes[i].K, VLM_DT_BF16);
            double flops = 2.0 * j.M * (double)j.N * (double)j.K;
            vlm_cpu_set_amx_parts(0);
            double t_ours = time_best(run_ours, &j), t_sgemm = time_best(run_sgemm, &j);
            double t_panels = time_best(run_panels, &j);
            double t_amx[4] = {0, 0, 0, 0};
            for (int parts = 3; parts >= 1 && amx && isa == 0; parts--) {
                vlm_cpu_set_amx_parts(parts);
                t_amx[parts] = time_best(run_ours, &j);
            }
            vlm_cpu_set_amx_parts(0);
            gemm_job jf = j;
            jf.w.dtype = VLM_DT_F32;
            jf.w.data = j.wf;
            double t_f32 = time_best(run_ours, &jf);
#define R(t) ((t) > 0 ? flops / (t) / 1e9 / peak : 0.0)
            printf("%-7s %-18s %5d %6lld %6lld %8.1f %6.2f %7.2f %7.2f %6.2f %6.2f %6.2f %6.2f\n",
                   isa ? "avx2" : "avx512", g_shape_M ? "custom" : shapes[i].name, j.M, (long long)j.N, (long long)j.K,
                   flops / t_ours / 1e9, R(t_ours), t_sgemm / t_ours, t_panels / t_ours, R(t_amx[3]), R(t_amx[2]),
                   R(t_amx[1]), R(t_f32));
#undef R
            fflush(stdout);
            free_job(&j);
        }
    }
    vlm_cpu_set_amx_parts(saved_parts);
    vlm_cpu_kernels_force_avx2(0);
    return peak;
}

/* ------------------------------------------------------------------------------------- attention */
/* The former kernel (one query row per thread step, scalar exp), kept here as the baseline. */
static void attention_former(float *out, const float *q, const float *k, const float *v, const vlm_attn_params *p) {
    enum { KB = 256 };
    int hd = p->head_dim, group = p->n_heads / p->n_kv_heads, total = p->n_q * p->n_heads;
#pragma omp parallel
    {
        float scores[KB], acc[512];
#pragma omp for schedule(dynamic, 4)
        for (int t = 0; t < total; t++) {
            int i = t / p->n_heads, h = t % p->n_heads, kh = h / group, lo, hi;
            vlm_attn_key_range(p, i, &lo, &hi);
            const float *qr = q + (size_t)i * p->q_stride + (size_t)h * hd;
            float *o = out + (size_t)i * p->out_stride + (size_t)h * hd;
            float mx = -INFINITY, sum = 0;
            for (int d = 0; d < hd; d++) acc[d] = 0;
            for (int j0 = lo; j0 < hi; j0 += KB) {
                int nb = hi - j0 < KB ? hi - j0 : KB;
                float bmx = -INFINITY;
                for (int j = 0; j < nb; j++) {
                    const float *kr = k + (size_t)(j0 + j) * p->kv_stride + (size_t)kh * hd;
                    float s = 0;
#pragma omp simd reduction(+ : s)
                    for (int d = 0; d < hd; d++) s += qr[d] * kr[d];
                    scores[j] = s * p->scale;
                    if (scores[j] > bmx) bmx = scores[j];
                }
                float nmx = bmx > mx ? bmx : mx, corr = expf(mx - nmx);
                sum *= corr;
                for (int d = 0; d < hd; d++) acc[d] *= corr;
                for (int j = 0; j < nb; j++) {
                    float e = expf(scores[j] - nmx);
                    sum += e;
                    const float *vr = v + (size_t)(j0 + j) * p->kv_stride + (size_t)kh * hd;
#pragma omp simd
                    for (int d = 0; d < hd; d++) acc[d] += e * vr[d];
                }
                mx = nmx;
            }
            float inv = sum > 0 ? 1.0f / sum : 0.0f;
            for (int d = 0; d < hd; d++) o[d] = acc[d] * inv;
        }
    }
}

typedef struct {
    vlm_attn_params p;
    float *q, *k, *v, *out;
    int former;
} attn_job;

static void run_attn(void *a) {
    attn_job *j = a;
    if (j->former) attention_former(j->out, j->q, j->k, j->v, &j->p);
    else vlm_cpu_attention(&g_ctx, j->out, j->q, j->k, j->v, &j->p);
}

static void bench_attention(int threads, double peak) {
    printf("\n## attention (%d threads): tiled kernel vs the former row-at-a-time kernel\n", threads);
    static const struct {
        const char *name;
        int n_q, n_kv, q_pos0, causal, heads, kv_heads, hd, window;
    } cases[] = {
        {"vision full 448x448", 1024, 1024, 0, 0, 16, 16, 80, 0},
        {"vision windows 64", 1024, 1024, 0, 0, 16, 16, 80, 64},
        {"vision full 4096", 4096, 4096, 0, 0, 16, 16, 80, 0},
        {"prefill causal 512", 512, 512, 0, 1, 16, 2, 128, 0},
        {"decode 1 of 4096", 1, 4096, 4095, 1, 16, 2, 128, 0},
        {"decode 1 of 512", 1, 512, 511, 1, 16, 2, 128, 0},
    };
    printf("%-7s %-22s %9s %9s %8s %8s\n", "path", "case", "ms", "GFLOP/s", "/peak", "x former");
    for (int isa = 0; isa < 2; isa++) {
        vlm_cpu_kernels_force_avx2(isa);
        if (isa == 0 && !vlm_cpu_kernels_avx512()) continue;
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            attn_job j = {0};
            vlm_attn_params *p = &j.p;
            *p = (vlm_attn_params){.n_q = cases[c].n_q,
                                   .n_kv = cases[c].n_kv,
                                   .q_pos0 = cases[c].q_pos0,
                                   .causal = cases[c].causal,
                                   .n_heads = cases[c].heads,
                                   .n_kv_heads = cases[c].kv_heads,
                                   .head_dim = cases[c].hd};
            p->q_stride = p->out_stride = p->n_heads * p->head_dim;
            p->kv_stride = p->n_kv_heads * p->head_dim;
            p->scale = 1.0f / sqrtf((float)p->head_dim);
            int nseg = cases[c].window ? (p->n_q + cases[c].window - 1) / cases[c].window : 0;
            int *segs = NULL;
            if (nseg) {
                segs = malloc(sizeof(int) * (size_t)(nseg + 1));
                for (int s = 0; s <= nseg; s++) segs[s] = s * cases[c].window < p->n_q ? s * cases[c].window : p->n_q;
                p->segments = segs;
                p->n_segments = nseg;
            }
            size_t nq = (size_t)p->n_q * p->q_stride, nkv = (size_t)p->n_kv * p->kv_stride;
            j.q = malloc(sizeof(float) * nq), j.out = malloc(sizeof(float) * nq);
            j.k = malloc(sizeof(float) * nkv), j.v = malloc(sizeof(float) * nkv);
            fill_random(j.q, sizeof(float) * nq, VLM_DT_F32);
            fill_random(j.k, sizeof(float) * nkv, VLM_DT_F32);
            fill_random(j.v, sizeof(float) * nkv, VLM_DT_F32);
            /* useful work: 4 flops per (query, key, head, dim) pair actually attended */
            double pairs = 0;
            for (int i = 0; i < p->n_q; i++) {
                int lo, hi;
                vlm_attn_key_range(p, i, &lo, &hi);
                pairs += hi - lo;
            }
            double flops = 4.0 * pairs * p->n_heads * p->head_dim;
            double t = time_best(run_attn, &j), tf = 0;
            if (isa == 0 || c != 2) {
                j.former = 1;
                int reps = g_reps;
                if (c == 2) g_reps = 1;
                tf = time_best(run_attn, &j);
                g_reps = reps;
            }
            printf("%-7s %-22s %9.3f %9.1f %8.2f %8.2f\n", isa ? "avx2" : "avx512", cases[c].name, t * 1e3,
                   flops / t / 1e9, flops / t / 1e9 / peak, tf > 0 ? tf / t : 0);
            fflush(stdout);
            free(j.q), free(j.k), free(j.v), free(j.out), free(segs);
        }
    }
    vlm_cpu_kernels_force_avx2(0);
}

/* ---------------------------------------------------------------------------------- element-wise */
typedef struct {
    int op;
    float *a, *b, *c, *w;
    int M, D;
} ops_job;

static void run_op(void *arg) {
    ops_job *j = arg;
    size_t n = (size_t)j->M * j->D;
    switch (j->op) {
    case 0: vlm_cpu_rmsnorm(&g_ctx, j->c, j->a, j->w, j->M, j->D, 1e-6f); break;
    case 1: vlm_cpu_layernorm(&g_ctx, j->c, j->a, j->w, j->w, j->M, j->D, 1e-6f); break;
    case 2: vlm_cpu_swiglu(&g_ctx, j->c, j->a, j->b, n); break;
    case 3: vlm_cpu_gelu(&g_ctx, j->c, n); break;
    case 4: vlm_cpu_quick_gelu(&g_ctx, j->c, n); break;
    case 5: vlm_cpu_add(&g_ctx, j->c, j->a, n); break;
    default: vlm_cpu_rope(&g_ctx, j->c, j->D, j->a, j->b, j->M, j->D / 80, 80); break;
    }
}

static void bench_ops(int threads) {
    printf("\n## element-wise ops (%d threads): GB/s of memory traffic (reads + writes), [1024 x D] f32\n", threads);
    static const struct {
        const char *name;
        int op, D;
        double bytes_per_elem;
    } ops[] = {
        {"rmsnorm D=1280", 0, 1280, 8},    {"layernorm D=1280", 1, 1280, 8}, {"swiglu 3420", 2, 3420, 12},
        {"gelu 5120", 3, 5120, 8},         {"quick_gelu 5120", 4, 5120, 8},  {"add 1280", 5, 1280, 12},
        {"rope 1280 (16x80)", 6, 1280, 8},
    };
    double bw = vlm_measure_read_bandwidth(g_mem / 2, 3, threads);
    printf("read bandwidth now: %.1f GB/s\n", bw);
    for (size_t i = 0; i < sizeof ops / sizeof *ops; i++) {
        ops_job j = {.op = ops[i].op, .M = 1024, .D = ops[i].D};
        size_t n = (size_t)j.M * j.D;
        j.a = malloc(sizeof(float) * n), j.b = malloc(sizeof(float) * n), j.c = malloc(sizeof(float) * n);
        j.w = malloc(sizeof(float) * (size_t)j.D);
        fill_random(j.a, sizeof(float) * n, VLM_DT_F32);
        fill_random(j.b, sizeof(float) * n, VLM_DT_F32);
        fill_random(j.c, sizeof(float) * n, VLM_DT_F32);
        fill_random(j.w, sizeof(float) * (size_t)j.D, VLM_DT_F32);
        double t = time_best(run_op, &j);
        printf("%-20s %8.3f ms %8.1f GB/s\n", ops[i].name, t * 1e3, ops[i].bytes_per_elem * (double)n / t / 1e9);
        free(j.a), free(j.b), free(j.c), free(j.w);
    }
}

int main(int argc, char **argv) {
    int do_gemv = 0, do_gemm = 0, do_attn = 0, do_ops = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "gemv")) do_gemv = 1;
        else if (!strcmp(argv[i], "gemm")) do_gemm = 1;
        else if (!strcmp(argv[i], "attn")) do_attn = 1;
        else if (!strcmp(argv[i], "ops")) do_ops = 1;
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) g_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mem-mb") && i + 1 < argc) g_mem = (size_t)atol(argv[++i]) << 20;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--cpu-clock")) g_cpu_clock = 1;
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc)
            sscanf(argv[++i], "%d,%lld,%lld", &g_shape_M, &g_shape_N, &g_shape_K);
        else {
            fprintf(stderr,
                    "usage: perf_kernels [gemv] [gemm] [attn] [ops] [--reps N] [--mem-mb MB] [--threads N] "
                    "[--cpu-clock] [--shape M,N,K]\n");
            return 2;
        }
    }
    if (!do_gemv && !do_gemm && !do_attn && !do_ops) do_gemv = do_gemm = do_attn = do_ops = 1;
    bench_fair_openblas(argv);
    if (threads > 0) vlm_set_threads(threads); /* OpenBLAS, the bandwidth probe */
    set_threads(threads);
    threads = vlm_pool_threads(g_ctx.pool);
    g_threads = threads;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    printf("# perf_kernels: %s, %d threads, AVX-512 kernels %s, AMX %s, reps %d, %s\n", vlm_cpu_name(), threads,
           vlm_cpu_kernels_avx512() ? "yes" : "no", vlm_cpu_amx_available() ? "yes" : "no", g_reps,
           g_cpu_clock ? "GEMM / attention / ops timed by CPU time per thread" : "wall-clock times");
    print_load("at start");
    if (do_gemv) bench_gemv(threads);
    double peak = 0;
    if (do_gemm) peak = bench_gemm(threads);
    if (do_attn) {
        if (!do_gemm) {
            g_shape_M = -1; /* the peak only */
            peak = bench_gemm(threads);
        }
        bench_attention(threads, peak);
    }
    if (do_ops) bench_ops(threads);
    print_load("at end");
    return 0;
}
