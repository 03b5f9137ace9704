/* The machine's arithmetic peaks, and matrix products at small M (decode M = 1 and the batched decode
 * of continuous batching, M = 2..64) on the synthetic 3B's shapes, each stated against the limits
 * measured in the same run:
 *   peaks   f32 FMA, bf16 dot products (vdpbf16ps), int8 dot products (vpdpbusd), and AMX bf16 /
 *           int8 where the CPU has it: register-only loops on the backend's threads, GFLOP/s
 *           (int8: GOP/s);
 *   bw      DRAM read bandwidth (vlm_measure_read_bandwidth);
 *   small M per shape, weight format and M: ms per call, weights GB/s as a fraction of the
 *           bandwidth, arithmetic as a fraction of the matching peak (f32 FMA for the f32
 *           precision, bf16 dot for the bf16 precision, int8 dot for Q4_0 / Q8_0), and the
 *           speed-up over M separate calls of one row (what batching M sequences buys).
 * Weights cycle through copies larger than the last-level cache, so every call reads DRAM as a
 * real decode step does.
 *
 * prefill: the same at M = 128 and 512 (the blocked GEMM; lm_head left out).
 *
 *   perf_small_m [peaks] [small] [prefill] [--threads N] [--reps N] [--mem-mb MB] [--shape NAME]
 */
#include <immintrin.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/cpu.h"
#include "base/membw.h"
#include "base/pool.h"
#include "base/timer.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/quant_kernels.h"
#include "tensor/quant.h"

static vlm_cpu_ctx g_ctx;
static int g_reps = 3;
static size_t g_mem = (size_t)768 << 20;

/* ---------------------------------------------------------------------------------------- peaks */
enum { PEAK_ITERS = 1 << 20, CHAINS = 12 };

/* Each returns the operations (multiply + add = 2) one call performs. */
__attribute__((target("avx512f"), noinline)) static double peak_fma(float *sink) {
    __m512 a[CHAINS], b = _mm512_set1_ps(1.0f + 1e-7f), c = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm512_set1_ps((float)i);
    for (int it = 0; it < PEAK_ITERS; it++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    __m512 s = a[0];
    for (int i = 1; i < CHAINS; i++) s = _mm512_add_ps(s, a[i]);
    *sink += _mm512_reduce_add_ps(s);
    return 2.0 * 16 * CHAINS * PEAK_ITERS;
}

__attribute__((target("avx512f,avx512bf16"), noinline)) static double peak_bf16(float *sink) {
    __m512 a[CHAINS];
    __m512bh x = (__m512bh)_mm512_set1_epi16(0x3f80), y = (__m512bh)_mm512_set1_epi16(0x0001);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm512_set1_ps((float)i);
    for (int it = 0; it < PEAK_ITERS; it++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) a[i] = _mm512_dpbf16_ps(a[i], x, y);
    __m512 s = a[0];
    for (int i = 1; i < CHAINS; i++) s = _mm512_add_ps(s, a[i]);
    *sink += _mm512_reduce_add_ps(s);
    return 2.0 * 32 * CHAINS * PEAK_ITERS;
}

__attribute__((target("avx512f,avx512vnni"), noinline)) static double peak_int8(float *sink) {
    __m512i a[CHAINS], x = _mm512_set1_epi8(1), y = _mm512_set1_epi8(1);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm512_set1_epi32(i);
    for (int it = 0; it < PEAK_ITERS; it++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) a[i] = _mm512_dpbusd_epi32(a[i], x, y);
    __m512i s = a[0];
    for (int i = 1; i < CHAINS; i++) s = _mm512_add_epi32(s, a[i]);
    *sink += (float)_mm512_reduce_add_epi32(s);
    return 2.0 * 64 * CHAINS * PEAK_ITERS;
}

/* AMX: 4 accumulator tiles, each 16 x 16, fed by 4 operand tiles that stay in registers. Not run
 * on CPUs without AMX (this build was only ever run where AMX is absent: an untested path). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

__attribute__((target("amx-tile,amx-bf16,amx-int8"), noinline)) static double peak_amx(float *sink, int int8) {
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
    static const uint8_t zero[1024] __attribute__((aligned(64)));
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, zero, 64);
    _tile_loadd(5, zero, 64);
    _tile_loadd(6, zero, 64);
    _tile_loadd(7, zero, 64);
    const int iters = PEAK_ITERS / 16;
    for (int it = 0; it < iters; it++) {
        if (int8) {
            _tile_dpbusd(0, 4, 6);
            _tile_dpbusd(1, 4, 7);
            _tile_dpbusd(2, 5, 6);
            _tile_dpbusd(3, 5, 7);
        } else {
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
    }
    float out[256] __attribute__((aligned(64)));
    _tile_stored(0, out, 64);
    _tile_release();
    *sink += out[0];
    /* per instruction: 16 x 16 outputs x 32 (bf16) or 64 (int8) products */
    return 2.0 * 4 * iters * 16 * 16 * (int8 ? 64 : 32);
}

typedef struct {
    int kind; /* 0 fma, 1 bf16, 2 int8, 3 amx bf16, 4 amx int8 */
    double ops[64];
    float sink[64];
} peak_job;

static void peak_task(void *arg, int64_t t, int thread) {
    peak_job *j = arg;
    double ops = 0;
    switch (j->kind) {
    case 0: ops = peak_fma(&j->sink[thread]); break;
    case 1: ops = peak_bf16(&j->sink[thread]); break;
    case 2: ops = peak_int8(&j->sink[thread]); break;
    default: ops = peak_amx(&j->sink[thread], j->kind == 4); break;
    }
    j->ops[thread] += ops;
}

/* G(FL)OP/s of one kind on every thread of the pool: the best of g_reps rounds. */
static double measure_peak(int kind) {
    int threads = vlm_pool_threads(g_ctx.pool);
    double best = 0;
    for (int r = 0; r < g_reps + 1; r++) {
        peak_job j = {.kind = kind};
        double t0 = vlm_now();
        vlm_pool_run(g_ctx.pool, 0, 2 * threads, peak_task, &j);
        double t = vlm_now() - t0, ops = 0;
        for (int i = 0; i < 64; i++) ops += j.ops[i];
        if (r > 0 && ops / t / 1e9 > best) best = ops / t / 1e9;
    }
    return best;
}

typedef struct {
    double fma, bf16, int8, amx_bf16, amx_int8, bw;
} limits;

static limits bench_peaks(void) {
    limits L = {0};
    const vlm_cpu_features *c = vlm_cpu();
    int avx512 = vlm_cpu_has_avx512();
    printf("\n## peaks (%d threads, register-only loops, best of %d)\n", vlm_pool_threads(g_ctx.pool), g_reps);
    if (avx512) L.fma = measure_peak(0);
    if (avx512 && c->avx512_bf16) L.bf16 = measure_peak(1);
    if (avx512 && c->avx512_vnni) L.int8 = measure_peak(2);
    if (vlm_cpu_amx_available()) {
        L.amx_bf16 = measure_peak(3);
        if (c->amx_int8) L.amx_int8 = measure_peak(4);
    }
    L.bw = vlm_measure_read_bandwidth((size_t)1 << 30, 3, vlm_pool_threads(g_ctx.pool));
    printf("f32 FMA (vfmadd, zmm)        %8.1f GFLOP/s\n", L.fma);
    printf("bf16 dot (vdpbf16ps, zmm)    %8.1f GFLOP/s  (%.2fx the f32 FMA peak)\n", L.bf16,
           L.fma ? L.bf16 / L.fma : 0);
    printf("int8 dot (vpdpbusd, zmm)     %8.1f GOP/s    (%.2fx)\n", L.int8, L.fma ? L.int8 / L.fma : 0);
    if (L.amx_bf16) {
        printf("AMX bf16 (tdpbf16ps)         %8.1f GFLOP/s  (%.2fx)\n", L.amx_bf16, L.amx_bf16 / L.fma);
        printf("AMX int8 (tdpbusd)           %8.1f GOP/s    (%.2fx)\n", L.amx_int8, L.amx_int8 / L.fma);
    } else {
        printf("AMX                          absent on this CPU\n");
    }
    printf("DRAM read bandwidth          %8.1f GB/s\n", L.bw);
    return L;
}

/* ------------------------------------------------------------------------------------- small M */
typedef struct {
    const char *name;
    int64_t N, K;
} shape;

static const shape k_shapes[] = {
    {"q/o", 2048, 2048}, {"k/v", 256, 2048}, {"gate/up", 11008, 2048}, {"down", 2048, 11008}, {"lm_head", 151936, 2048},
};

enum { FMT_F32, FMT_BF16, FMT_Q4_0, FMT_Q8_0, N_FMT };
static const char *const k_fmt_names[N_FMT] = {"bf16 w, f32", "bf16 w, bf16", "Q4_0", "Q8_0"};

/* Copies of one matrix in a format, as the backend holds them, cycled through in the timings. */
typedef struct {
    vlm_tensor *w;
    int n;
    void **owned;
    int n_owned;
} mats;

static void fill_floats(float *x, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = ((float)((seed >> 40) & 0xffffff) / 8388608.0f - 1.0f) * 0.05f;
    }
}

static int make_mats(const shape *s, int fmt, mats *m) {
    vlm_dtype dt = fmt == FMT_Q4_0 ? VLM_DT_Q4_0 : fmt == FMT_Q8_0 ? VLM_DT_Q8_0 : VLM_DT_BF16;
    size_t rb = vlm_dtype_row_bytes(dt, s->K), bytes = (size_t)s->N * rb;
    int copies = (int)(g_mem / bytes);
    if (copies < 1) copies = 1;
    if (copies > 64) copies = 64;
    memset(m, 0, sizeof *m);
    m->w = calloc((size_t)copies, sizeof *m->w);
    m->owned = calloc((size_t)copies * 2, sizeof *m->owned);
    float *row = malloc(sizeof(float) * (size_t)s->K);
    if (!m->w || !m->owned || !row) return 0;
    for (int c = 0; c < copies; c++) {
        uint8_t *data = malloc(bytes);
        if (!data) break;
        m->owned[m->n_owned++] = data;
        for (int64_t n = 0; n < s->N; n++) {
            fill_floats(row, (size_t)s->K, (uint64_t)(n * 131 + c));
            if (dt == VLM_DT_BF16)
                for (int64_t k = 0; k < s->K; k++) ((uint16_t *)(data + (size_t)n * rb))[k] = vlm_f32_to_bf16(row[k]);
            else vlm_quantize_row(dt, row, data + (size_t)n * rb, s->K);
        }
        vlm_tensor host = {.dtype = dt, .ndim = 2, .shape = {s->N, s->K}, .data = data, .nbytes = bytes};
        if (vlm_cpu_quant_prepare(g_ctx.pool, &host, &m->w[m->n]) != VLM_OK) break;
        if (m->w[m->n].data != data) m->owned[m->n_owned++] = m->w[m->n].data;
        m->n++;
    }
    free(row);
    return m->n > 0;
}

static void free_mats(mats *m) {
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned), free(m->w);
}

/* Median seconds per call of M rows, the copies cycled. */
static double time_call(const mats *m, int M, const float *x, float *y) {
    double t[16];
    int n = 0;
    for (int r = 0; r <= g_reps && n < 16; r++) {
        int calls = 0;
        double t0 = vlm_now();
        do {
            for (int c = 0; c < m->n; c++, calls++) vlm_cpu_matmul(&g_ctx, y, x, &m->w[c], NULL, M);
        } while (vlm_now() - t0 < 0.05);
        double dt = (vlm_now() - t0) / calls;
        if (r > 0) t[n++] = dt; /* round 0: warm-up */
    }
    for (int i = 1; i < n; i++) /* insertion sort: a handful */
        for (int j = i; j > 0 && t[j] < t[j - 1]; j--) {
            double v = t[j];
            t[j] = t[j - 1], t[j - 1] = v;
        }
    return t[n / 2];
}

static void bench_small(const limits *L, const char *only, int prefill) {
    static const int small[] = {1, 2, 4, 8, 16, 32, 64}, large[] = {128, 512};
    const int *Ms = prefill ? large : small, nM = prefill ? 2 : 7;
    if (prefill)
        printf("\n## prefill M (%d threads): the same columns; xM=1 against M one-row calls\n",
               vlm_pool_threads(g_ctx.pool));
    else
        printf("\n## small M (%d threads; weights cycled through %zu MiB of copies, so read from DRAM)\n"
               "   bw: weights GB/s / DRAM bandwidth; peak: arithmetic / the format's peak (f32 FMA, bf16 dot, int8 "
               "dot);\n"
               "   xM=1: M separate one-row calls' time / this call's time (what batching M sequences buys)\n",
               vlm_pool_threads(g_ctx.pool), g_mem >> 20);
    printf("%-8s %-13s %3s %9s %8s %6s %9s %6s %7s\n", "shape", "format", "M", "ms", "GB/s", "bw", "GFLOP/s", "peak",
           "xM=1");
    float *x = malloc(sizeof(float) * 512 * 11008),
          *y = malloc(sizeof(float) * 64 * (size_t)151936); /* >= 512 x 11008 */
    if (!x || !y) return;
    fill_floats(x, 512 * 11008, 7);
    for (size_t si = 0; si < sizeof k_shapes / sizeof *k_shapes; si++) {
        const shape *s = &k_shapes[si];
        if ((only && strcmp(only, s->name)) || (prefill && !strcmp(s->name, "lm_head"))) continue;
        for (int fmt = 0; fmt < N_FMT; fmt++) {
            mats m;
            if (!make_mats(s, fmt, &m)) {
                printf("%-8s %-13s out of memory\n", s->name, k_fmt_names[fmt]);
                free_mats(&m);
                continue;
            }
            g_ctx.bf16 = fmt == FMT_BF16;
            double peak = fmt == FMT_F32 ? L->fma : fmt == FMT_BF16 ? L->bf16 : L->int8;
            double t1 = 0;
            if (prefill) t1 = time_call(&m, 1, x, y);
            for (int mi = 0; mi < nM; mi++) {
                int M = Ms[mi];
                double t = time_call(&m, M, x, y);
                if (M == 1) t1 = t;
                double gbs = (double)m.w[0].nbytes / t / 1e9, gflops = 2.0 * M * (double)s->N * (double)s->K / t / 1e9;
                printf("%-8s %-13s %3d %9.3f %8.1f %5.0f%% %9.1f %5.0f%% %7.2f\n", s->name, k_fmt_names[fmt], M,
                       t * 1e3, gbs, 100 * gbs / L->bw, gflops, peak > 0 ? 100 * gflops / peak : 0, M * t1 / t);
                fflush(stdout);
            }
            g_ctx.bf16 = 0;
            free_mats(&m);
        }
    }
    free(x), free(y);
}

int main(int argc, char **argv) {
    int threads = 0, do_peaks = 0, do_small = 0, do_prefill = 0;
    const char *only = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "peaks")) do_peaks = 1;
        else if (!strcmp(argv[i], "small")) do_small = 1;
        else if (!strcmp(argv[i], "prefill")) do_prefill = 1;
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) g_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--mem-mb") && i + 1 < argc) g_mem = (size_t)atol(argv[++i]) << 20;
        else if (!strcmp(argv[i], "--shape") && i + 1 < argc) only = argv[++i];
        else {
            fprintf(stderr,
                    "usage: perf_small_m [peaks] [small] [prefill] [--threads N] [--reps N] [--mem-mb MB] "
                    "[--shape q/o|k/v|gate/up|down|lm_head]\n");
            return 2;
        }
    }
    if (!do_peaks && !do_small && !do_prefill) do_peaks = do_small = do_prefill = 1;
    if (g_reps < 1) g_reps = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (vlm_pool_create(threads, &g_ctx.pool) != VLM_OK) {
        fprintf(stderr, "perf_small_m: %s\n", vlm_last_error());
        return 1;
    }
    if (!vlm_cpu_has_avx512()) {
        printf("perf_small_m: the peaks are measured with AVX-512 instructions, which this CPU lacks\n");
        return 0;
    }
    printf("# perf_small_m: %s, %d threads, quantized path %s\n", vlm_cpu_name(), vlm_pool_threads(g_ctx.pool),
           vlm_qpath_name(vlm_cpu_quant_path()));
    limits L = bench_peaks(); /* the small-M fractions need them */
    (void)do_peaks;
    if (do_small) bench_small(&L, only, 0);
    if (do_prefill) bench_small(&L, only, 1);
    vlm_pool_free(g_ctx.pool);
    return 0;
}
