/* Quantized matrix products on a real-size language model, against BF16 and the machine's read
 * bandwidth measured in the same run.
 *
 *   perf_quant [--model DIR] [--work DIR] [--types q4_0,nf4,q8_0] [--rounds R] [--threads N]
 *               [--requantize] [--prefill M] [--plain] [--spin]
 *
 * For each type it quantizes the language model of DIR (default /work/models/q25-3b) into
 * WORK/<name>-<type> (reused when its manifest is fresh, unless --requantize), reports the time and
 * the sizes on disk and in memory, then times "decode tokens": one matrix-vector product with every
 * linear weight of the language model in layer order plus the lm_head, the work a decoder does
 * with its weights per generated token (attention, norms and the rest are not included). Variants
 * run in alternating rounds (bandwidth drifts on shared hosts); the table gives the median, and
 * the bound = bytes read per token / bandwidth (best of the two probes around the rounds). */
#include <dirent.h>
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/cpu.h"
#include "base/membw.h"
#include "base/memory.h"
#include "base/timer.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/quant_kernels.h"
#include "model/config.h"
#include "model/weights.h"
#include "runtime/artifact.h"
#include "runtime/quantize.h"
#include "tensor/quant.h"

/* The kernels' context of a micro-benchmark: a pool of the threads set_threads asked for. */
static vlm_cpu_ctx g_ctx;
static void set_threads(int n) {
    vlm_pool_free(g_ctx.pool);
    g_ctx.pool = NULL;
    if (vlm_pool_create(n, &g_ctx.pool) != VLM_OK) g_ctx.pool = NULL; /* one thread */
}

enum { MAX_VARIANTS = 8, MAX_ROUNDS = 64 };

enum { MAX_MATS = 7 * 128 + 1 };

typedef struct {
    char name[24];
    char dir[VLM_PATH_MAX];
    vlm_safetensors *st;
    vlm_text_weights tw;
    vlm_tensor mats[MAX_MATS]; /* as the CPU backend keeps them (vlm_cpu_quant_prepare) */
    int n_mats;
    int interleave;
    uint64_t bytes;      /* weight bytes read per token */
    uint64_t disk_bytes; /* safetensors files of the directory */
    uint64_t resident;   /* bytes of its decode weights in memory after the rounds (mincore) */
    double quant_s;      /* < 0: reused */
    double t[MAX_ROUNDS];
    double prefill_gflops;
} variant;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static uint64_t dir_safetensors_bytes(const char *dir) {
    DIR *d = opendir(dir);
    uint64_t total = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        char path[VLM_PATH_MAX];
        uint64_t size;
        int64_t mt;
        if (n > 12 && !strcmp(e->d_name + n - 12, ".safetensors") &&
            vlm_path_join(path, sizeof path, dir, e->d_name) == VLM_OK && vlm_file_stat(path, &size, &mt) == VLM_OK)
            total += size;
    }
    if (d) closedir(d);
    return total;
}

/* Every linear weight in the order a decode step reads them. */
static int token_mats(const vlm_text_weights *tw, const vlm_tensor **out) {
    int n = 0;
    for (int l = 0; l < tw->n_layers && n + 7 < MAX_MATS; l++) {
        const vlm_text_layer_weights *L = &tw->layers[l];
        const vlm_tensor *m[] = {&L->q_w, &L->k_w, &L->v_w, &L->o_w, &L->gate_w, &L->up_w, &L->down_w};
        for (int i = 0; i < 7; i++) out[n++] = m[i];
    }
    out[n++] = &tw->lm_head;
    return n;
}

static double token_pass(const variant *v, const float *x, float *y) {
    double t0 = vlm_now();
    for (int i = 0; i < v->n_mats; i++) vlm_cpu_matmul(&g_ctx, y, x, &v->mats[i], NULL, 1);
    return vlm_now() - t0;
}

/* Bytes of [p, p + n) resident in memory now (mincore, page granularity). */
static uint64_t resident_bytes(const void *p, size_t n) {
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p & ~(uintptr_t)(page - 1), b = ((uintptr_t)p + n + page - 1) & ~(uintptr_t)(page - 1);
    size_t pages = (b - a) / page;
    unsigned char *v = malloc(pages ? pages : 1);
    uint64_t r = 0;
    if (v && mincore((void *)a, b - a, v) == 0)
        for (size_t i = 0; i < pages; i++) r += (v[i] & 1) ? page : 0;
    free(v);
    return r;
}

static uint64_t variant_resident(const variant *v) {
    uint64_t r = 0;
    for (int i = 0; i < v->n_mats; i++)
        if (i == 0 || v->mats[i].data != v->mats[i - 1].data) r += resident_bytes(v->mats[i].data, v->mats[i].nbytes);
    return r;
}

static vlm_status open_variant(variant *v, const vlm_model_config *cfg, const float *x, float *y) {
    VLM_TRY(vlm_st_open(v->dir, &v->st));
    vlm_vision_weights vw;
    VLM_TRY(vlm_bind_weights(v->st, cfg, 0, 1, &vw, &v->tw));
    const vlm_tensor *src[MAX_MATS];
    v->n_mats = token_mats(&v->tw, src);
    v->bytes = 0;
    for (int i = 0; i < v->n_mats; i++) {
        if (v->interleave) VLM_TRY(vlm_cpu_quant_prepare(g_ctx.pool, src[i], &v->mats[i]));
        else v->mats[i] = *src[i];
        v->bytes += v->mats[i].nbytes;
    }
    token_pass(v, x, y); /* faults the weights in */
    v->disk_bytes = dir_safetensors_bytes(v->dir);
    return VLM_OK;
}

/* The read bandwidth with S concurrent sequential streams per thread (interleaved 256 bytes at a
 * time): one stream per core (what vlm_measure_read_bandwidth reads) leaves this machine's memory
 * well short of busy, and the decode kernels use 4. */
static double probe_streams(size_t bytes, int reps, int S) {
    size_t n = bytes / 256 * 256;
    __m256i *buf = aligned_alloc(64, n);
    if (!buf) return 0;
    memset(buf, 1, n);
    double best = 0;
    int threads = vlm_threads();
    for (int r = 0; r < reps; r++) {
        double t0 = vlm_now();
        int acc_all = 0;
#pragma omp parallel num_threads(threads) reduction(^ : acc_all)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            size_t lo = n / nt * t / 256 * 256, hi = t == nt - 1 ? n : n / nt * (t + 1) / 256 * 256;
            size_t len = (hi - lo) / S / 256 * 256;
            const char *p = (const char *)buf + lo;
            __m256i a = _mm256_setzero_si256();
            for (size_t i = 0; i < len; i += 256)
                for (int s = 0; s < S; s++)
                    for (int k = 0; k < 256; k += 32)
                        a = _mm256_xor_si256(a, _mm256_load_si256((const __m256i *)(p + s * len + i + k)));
            acc_all ^= _mm256_extract_epi32(a, 0);
        }
        double gbs = (double)(n / threads / S / 256 * 256 * S * threads) / (vlm_now() - t0) / 1e9;
        if (acc_all == 42) gbs += 0; /* keeps the loads */
        if (gbs > best) best = gbs;
    }
    free(buf);
    return best;
}

/* Prefill-sized product on one layer's MLP weights: GFLOP/s. */
static double prefill(const variant *v, int M, const float *x, float *y) {
    const vlm_tensor *m[] = {&v->mats[4], &v->mats[5], &v->mats[6]}; /* layer 0: gate, up, down */
    double flops = 0, best = 1e30;
    for (int i = 0; i < 3; i++) flops += 2.0 * M * (double)m[i]->shape[0] * (double)m[i]->shape[1];
    for (int r = 0; r < 3; r++) {
        double t0 = vlm_now();
        for (int i = 0; i < 3; i++) vlm_cpu_matmul(&g_ctx, y, x, m[i], NULL, M);
        double t = vlm_now() - t0;
        if (t < best) best = t;
    }
    return flops / best / 1e9;
}

/* libgomp reads its wait policy when it loads, before main: set it by running again. Active
 * spinning (its default) costs a whole scheduler tick (4 ms) at a barrier whenever another process
 * holds one of the cores, which on a shared 2-core machine dominates 253 products per token. */
static void passive_waits(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--spin")) return;
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    setenv("OMP_WAIT_POLICY", "passive", 1);
    execv("/proc/self/exe", argv);
}

int main(int argc, char **argv) {
    passive_waits(argc, argv);
    const char *model = "/work/models/q25-3b", *work = "/tmp/vlm-bench-quant", *types = "q4_0,nf4,q8_0";
    int rounds = 5, threads = 0, requant = 0, prefill_m = 64, plain = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--work") && i + 1 < argc) work = argv[++i];
        else if (!strcmp(argv[i], "--types") && i + 1 < argc) types = argv[++i];
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--prefill") && i + 1 < argc) prefill_m = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--requantize")) requant = 1;
        else if (!strcmp(argv[i], "--plain")) plain = 1;
        else if (!strcmp(argv[i], "--spin")) continue;
        else {
            fprintf(stderr,
                    "usage: perf_quant [--model DIR] [--work DIR] [--types q4_0,nf4,q8_0] [--rounds R] "
                    "[--threads N] [--requantize] [--prefill M] [--plain] [--spin]\n");
            return 2;
        }
    }
    if (rounds < 1 || rounds > MAX_ROUNDS) rounds = 5;
    if (threads > 0) vlm_set_threads(threads); /* the bandwidth probe */
    set_threads(threads);
    vlm_model_config cfg;
    if (vlm_config_load(model, &cfg) != VLM_OK) {
        fprintf(stderr, "perf_quant: %s\n", vlm_last_error());
        return 1;
    }
    const char *wp = getenv("OMP_WAIT_POLICY"), *sc = getenv("GOMP_SPINCOUNT");
    printf("perf_quant: %s, %d threads, %s, quantized path %s, OMP_WAIT_POLICY=%s GOMP_SPINCOUNT=%s (machine "
           "shared with other jobs)\n",
           model, vlm_threads(), vlm_cpu_name(), vlm_qpath_name(vlm_cpu_quant_path()), wp ? wp : "(default)",
           sc ? sc : "(default)");

    static variant v[MAX_VARIANTS];
    int nv = 1;
    snprintf(v[0].name, sizeof v[0].name, "bf16");
    snprintf(v[0].dir, sizeof v[0].dir, "%s", model);
    v[0].quant_s = -1;
    char list[64];
    snprintf(list, sizeof list, "%s", types);
    for (char *tok = strtok(list, ","); tok && nv < MAX_VARIANTS; tok = strtok(NULL, ",")) {
        vlm_quant_options o;
        vlm_quant_options_default(&o);
        o.language_only = 1;
        if (vlm_quant_from_tag(tok, &o.linear) != 0) {
            fprintf(stderr, "perf_quant: unknown type %s\n", tok);
            return 2;
        }
        variant *q = &v[nv++];
        snprintf(q->name, sizeof q->name, "%s", tok);
        q->interleave = 1;
        const char *base = strrchr(model, '/');
        snprintf(q->dir, sizeof q->dir, "%s/%s-%s", work, base ? base + 1 : model, tok);
        char kind[64], why[VLM_PATH_MAX + 256];
        vlm_quant_kind(&o, kind, sizeof kind);
        q->quant_s = -1;
        if (requant || vlm_manifest_is_fresh(q->dir, kind, model, why, sizeof why) != 1) {
            vlm_quant_stats qs;
            vlm_mkdirs(work);
            if (vlm_quantize_checkpoint(model, q->dir, &o, &qs) != VLM_OK) {
                fprintf(stderr, "perf_quant: %s\n", vlm_last_error());
                return 1;
            }
            q->quant_s = qs.seconds;
        }
    }

    /* --plain: the Q4_0 / Q8_0 file layout as bound, next to the interleaved copies */
    for (int i = 1, n0 = nv; plain && i < n0 && nv < MAX_VARIANTS; i++) {
        if (strcmp(v[i].name, "q4_0") && strcmp(v[i].name, "q8_0")) continue; /* NF4 has one layout */
        char name[sizeof v[i].name];
        snprintf(name, sizeof name, "%.16s-plain", v[i].name);
        v[nv] = v[i];
        memcpy(v[nv].name, name, sizeof name);
        v[nv++].interleave = 0;
    }
    int64_t kmax = cfg.text.intermediate > cfg.text.hidden ? cfg.text.intermediate : cfg.text.hidden;
    size_t xn = (size_t)kmax * (size_t)(prefill_m > 0 ? prefill_m : 1);
    size_t yn = (size_t)cfg.text.vocab > (size_t)kmax * (size_t)prefill_m ? (size_t)cfg.text.vocab
                                                                          : (size_t)kmax * (size_t)prefill_m;
    float *x = vlm_alloc(xn * sizeof(float), "inputs"), *y = vlm_alloc(yn * sizeof(float), "outputs");
    if (!x || !y) return 1;
    uint64_t rng = 1;
    for (size_t i = 0; i < xn; i++) {
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
    }
    for (int i = 0; i < nv; i++) {
        if (open_variant(&v[i], &cfg, x, y) != VLM_OK) {
            fprintf(stderr, "perf_quant: %s: %s\n", v[i].dir, vlm_last_error());
            return 1;
        }
    }

    /* Each round: the bandwidth probe, then every variant once (rotating the order); fractions of
     * the bound and ratios to bf16 are taken within a round, then the median over rounds. */
    double bw[MAX_ROUNDS], bw4[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) {
        bw[r] = vlm_measure_read_bandwidth((size_t)1 << 30, 2, 0);
        bw4[r] = probe_streams((size_t)1 << 30, 2, 4);
        for (int i = 0; i < nv; i++) { /* the better of two tokens: a preempted thread delays a whole pass */
            variant *vi = &v[(i + r) % nv];
            double a = token_pass(vi, x, y), b = token_pass(vi, x, y);
            vi->t[r] = a < b ? a : b;
        }
    }
    for (int i = 0; i < nv; i++) v[i].resident = variant_resident(&v[i]);
    if (prefill_m > 0)
        for (int i = 0; i < nv; i++) v[i].prefill_gflops = prefill(&v[i], prefill_m, x, y);

    double sbw[MAX_ROUNDS], sbw4[MAX_ROUNDS];
    memcpy(sbw, bw, sizeof(double) * (size_t)rounds);
    memcpy(sbw4, bw4, sizeof(double) * (size_t)rounds);
    qsort(sbw, (size_t)rounds, sizeof *sbw, cmp_double);
    qsort(sbw4, (size_t)rounds, sizeof *sbw4, cmp_double);
    printf("read bandwidth (1 GiB, %d threads), per round: vlm_measure_read_bandwidth median %.1f GB/s (min %.1f, "
           "max %.1f); with 4 streams per thread median %.1f GB/s (min %.1f, max %.1f)\n",
           vlm_threads(), sbw[rounds / 2], sbw[0], sbw[rounds - 1], sbw4[rounds / 2], sbw4[0], sbw4[rounds - 1]);
    printf("\n%-10s %9s %9s %8s %8s %9s %9s %8s %9s %10s\n", "type", "MB/token", "ms/token", "tok/s", "GB/s", "%bound",
           "%bound4", "x bf16", "best ms", "prefill GF");
    for (int i = 0; i < nv; i++) {
        double s[MAX_ROUNDS], f[MAX_ROUNDS], f4[MAX_ROUNDS], x16[MAX_ROUNDS];
        for (int r = 0; r < rounds; r++) {
            s[r] = v[i].t[r];
            f[r] = (double)v[i].bytes / v[i].t[r] / 1e9 / bw[r];
            f4[r] = (double)v[i].bytes / v[i].t[r] / 1e9 / bw4[r];
            x16[r] = v[0].t[r] / v[i].t[r];
        }
        qsort(s, (size_t)rounds, sizeof *s, cmp_double);
        qsort(f, (size_t)rounds, sizeof *f, cmp_double);
        qsort(f4, (size_t)rounds, sizeof *f4, cmp_double);
        qsort(x16, (size_t)rounds, sizeof *x16, cmp_double);
        double med = s[rounds / 2];
        printf("%-10s %9.1f %9.1f %8.2f %8.1f %8.1f%% %8.1f%% %7.2fx %9.1f %10.1f\n", v[i].name,
               (double)v[i].bytes / 1e6, med * 1e3, 1.0 / med, (double)v[i].bytes / med / 1e9, 100.0 * f[rounds / 2],
               100.0 * f4[rounds / 2], x16[rounds / 2], s[0] * 1e3, v[i].prefill_gflops);
    }
    printf("(medians over %d rounds of the better of 2 tokens; %%bound = (bytes per token / time) / the round's "
           "vlm_measure_read_bandwidth, %%bound4 the same with the 4-stream probe; both best of 2)\n",
           rounds);
    uint64_t lm0 = 1;
    printf("\n%-10s %14s %16s %14s %12s\n", "type", "LM tensors MB", "safetensors MB", "resident MB", "quantize s");
    for (int i = 0; i < nv; i++) {
        vlm_checkpoint_parts parts;
        uint64_t lm = vlm_st_bytes_with_prefix(v[i].st, "");
        if (vlm_detect_parts(v[i].st, &parts) == VLM_OK && parts.has_vision)
            lm -= vlm_st_bytes_with_prefix(v[i].st, vlm_vision_prefix(parts.naming));
        char qs[32];
        if (v[i].quant_s >= 0) snprintf(qs, sizeof qs, "%.1f", v[i].quant_s);
        else snprintf(qs, sizeof qs, i ? "(reused)" : "-");
        printf("%-10s %14.1f %16.1f %14.1f %12s   (%.1f%% smaller than bf16)\n", v[i].name, (double)lm / 1e6,
               (double)v[i].disk_bytes / 1e6, (double)v[i].resident / 1e6, qs,
               i ? 100.0 * (1.0 - (double)lm / (double)lm0) : 0.0);
        if (i == 0) lm0 = lm;
    }
    printf("(bf16 safetensors include the vision tower; resident = the decode weights in memory after the rounds, "
           "by mincore: mapped file pages or the CPU backend's interleaved copies)\n");
    return 0;
}
