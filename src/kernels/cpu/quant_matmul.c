/* The quantized matrix product's driver (see quant_kernels.h): picks the path, quantizes the input
 * rows once into a per-thread buffer (grown on the first call of each size, never per token), and
 * splits the output rows over the backend's threads (tasks of weight rows).
 *
 * Batch invariance: a row's result does not depend on M or on the other rows (each row is quantized
 * on its own, block dots are exact integers, and the f32 accumulation per row runs in the same
 * order in every tile size and in the decode kernel), on each path. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/cpu.h"
#include "base/memory.h"
#include "kernels/cpu/quant_kernels.h"
#include "tensor/quant.h"

/* Weight rows per task. Matrix-vector: 16 (balances any thread count; each thread still streams a
 * contiguous share). Larger M: as many rows as fit in about 256 KB of L2, so the input rows, which
 * pass over every chunk, are read fewer times. */
enum { ROW_CHUNK = 16, CHUNK_BYTES = 256 << 10 };

static int64_t rows_per_chunk(int M, int tile, size_t rb, int64_t N, int threads) {
    if (M <= tile) return ROW_CHUNK;
    int64_t r = (int64_t)(CHUNK_BYTES / (rb ? rb : 1)), share = (N + 2 * threads - 1) / (2 * threads);
    if (r > share) r = share; /* at least two chunks per thread */
    return r < ROW_CHUNK ? ROW_CHUNK : r > 256 ? 256 : r;
}

static vlm_qpath g_forced = VLM_QPATH_AUTO;

static int can_run(vlm_qpath p) {
    switch (p) {
    case VLM_QPATH_SCALAR: return 1;
    case VLM_QPATH_AVX2: return vlm_cpu()->avx2 && vlm_cpu()->fma && vlm_cpu()->f16c;
    case VLM_QPATH_AVX512: return vlm_cpu_has_avx512() && vlm_cpu()->avx512_vnni;
    default: return 0;
    }
}

void vlm_cpu_quant_set_path(vlm_qpath p) { g_forced = p; }

vlm_qpath vlm_cpu_quant_path(void) {
    if (g_forced != VLM_QPATH_AUTO && can_run(g_forced)) return g_forced;
    if (can_run(VLM_QPATH_AVX512)) return VLM_QPATH_AVX512;
    if (can_run(VLM_QPATH_AVX2)) return VLM_QPATH_AVX2;
    return VLM_QPATH_SCALAR;
}

const char *vlm_qpath_name(vlm_qpath p) {
    switch (p) {
    case VLM_QPATH_SCALAR: return "scalar";
    case VLM_QPATH_AVX2: return "avx2";
    case VLM_QPATH_AVX512: return "avx512-vnni";
    default: return "auto";
    }
}

/* The calling thread's activation buffer. */
static _Thread_local void *t_buf;
static _Thread_local size_t t_cap;

static int act_alloc(vlm_qact *a, int M, int64_t K, int interleaved) {
    a->K = K;
    a->nb = K / VLM_QA_BLOCK;
    size_t qbytes = ((size_t)M * (size_t)K + 64 + 63) / 64 * 64; /* + 64: room for a full-vector tail load */
    size_t need = qbytes * (interleaved ? 2 : 1) + 2 * (size_t)M * (size_t)a->nb * sizeof(float);
    if (need > t_cap) {
        vlm_free(t_buf);
        t_buf = vlm_alloc(need, "quantized activations"); /* may fail: then the unbuffered path runs */
        t_cap = t_buf ? need : 0;
        if (!t_buf) return -1;
    }
    a->q = t_buf;
    a->qt = interleaved ? (int8_t *)t_buf + qbytes : NULL;
    a->d = (float *)((char *)t_buf + qbytes * (interleaved ? 2 : 1));
    a->s = a->d + (size_t)M * (size_t)a->nb;
    return 0;
}

/* Without a buffer (out of memory): dequantize block by block and dot with the f32 input. */
typedef struct {
    float *y;
    const float *x, *bias;
    const vlm_tensor *w;
    int M, serial;
    int64_t N, K, rows_per_task;
    vlm_qact a;
    vlm_qrows_fn rows;
    int tile, interleaved;
    void (*quant_row)(const float *, int64_t, int8_t *, float *, float *);
} qjob;

static void unbuffered_task(void *arg, int64_t t, int thread) {
    const qjob *j = arg;
    const vlm_tensor *w = j->w;
    int64_t K = j->K, N = j->N;
    int bk = vlm_dtype_block(w->dtype);
    size_t rb = vlm_dtype_row_bytes(w->dtype, K), bs = vlm_dtype_size(w->dtype);
    int64_t n1 = (t + 1) * j->rows_per_task < N ? (t + 1) * j->rows_per_task : N;
    for (int64_t n = t * j->rows_per_task; n < n1; n++) {
        float blk[64];
        for (int m = 0; m < j->M; m++) {
            double acc = 0;
            for (int64_t k = 0; k < K; k += bk) {
                vlm_dequantize_row(w->dtype, (const uint8_t *)w->data + (size_t)n * rb + (size_t)(k / bk) * bs, blk,
                                   bk);
                for (int i = 0; i < bk; i++) acc += (double)blk[i] * j->x[(size_t)m * K + k + i];
            }
            j->y[(size_t)m * N + n] = (float)acc + (j->bias ? j->bias[n] : 0.0f);
        }
    }
}

static void quant_row_task(void *arg, int64_t m, int thread) {
    const qjob *j = arg;
    const vlm_qact *a = &j->a;
    int64_t K = j->K;
    j->quant_row(j->x + (size_t)m * K, K, a->q + (size_t)m * K, a->d + (size_t)m * a->nb, a->s + (size_t)m * a->nb);
    if (j->interleaved) vlm_qact_interleave(a->q + (size_t)m * K, K, a->qt + (size_t)m * K);
}

/* Weight rows [n0, n1) against every input row, in tiles of the path's size: the weight rows stay
 * in cache while the tiles pass over them. */
static void rows_task(void *arg, int64_t t, int thread) {
    const qjob *j = arg;
    int64_t N = j->N, n0 = t * j->rows_per_task, n1 = n0 + j->rows_per_task < N ? n0 + j->rows_per_task : N;
    size_t rb = vlm_dtype_row_bytes(j->w->dtype, j->K);
    for (int m0 = 0; m0 < j->M; m0 += j->tile) {
        vlm_qact a = j->a;
        a.q += (size_t)m0 * j->K;
        if (a.qt) a.qt += (size_t)m0 * j->K;
        a.d += (size_t)m0 * a.nb;
        a.s += (size_t)m0 * a.nb;
        int mt = j->M - m0 < j->tile ? j->M - m0 : j->tile;
        j->rows(j->w->dtype, &a, mt, (const uint8_t *)j->w->data, rb, n0, n1, j->y + (size_t)m0 * N, N);
    }
    for (int m = 0; j->bias && m < j->M; m++)
        for (int64_t n = n0; n < n1; n++) j->y[(size_t)m * N + n] += j->bias[n];
}

void vlm_cpu_matmul_quant(const vlm_cpu_ctx *c, float *y, const float *x, const vlm_tensor *w, const float *bias,
                          int M) {
    int64_t N = w->shape[0], K = w->shape[w->ndim - 1];
    if (M <= 0 || N <= 0) return;
    int threads = vlm_pool_threads(c->pool);
    qjob j = {.y = y, .x = x, .bias = bias, .w = w, .M = M, .N = N, .K = K};
    j.interleaved = vlm_quant_base(w->dtype) != w->dtype;
    if (act_alloc(&j.a, M, K, j.interleaved) != 0) {
        j.rows_per_task = (N + 4 * threads - 1) / (4 * threads);
        vlm_pool_run(c->pool, threads, (N + j.rows_per_task - 1) / j.rows_per_task, unbuffered_task, &j);
        return;
    }
    vlm_qpath path = vlm_cpu_quant_path();
    (void)vlm_cpu_streams(); /* chosen on this thread, before the kernels read it on theirs */
    j.quant_row = path == VLM_QPATH_AVX512 ? vlm_qact_row_avx512
        : path == VLM_QPATH_AVX2           ? vlm_qact_row_avx2
                                           : vlm_qact_row_scalar;
    j.rows = path == VLM_QPATH_AVX512 ? vlm_qrows_avx512 : path == VLM_QPATH_AVX2 ? vlm_qrows_avx2 : vlm_qrows_scalar;
    j.tile = path == VLM_QPATH_AVX512 ? VLM_QTILE_AVX512 : path == VLM_QPATH_AVX2 ? VLM_QTILE_AVX2 : VLM_QTILE_SCALAR;
    if (j.interleaved) { /* only AVX-512 has kernels for these; other paths use the reference */
        j.rows = path == VLM_QPATH_AVX512 ? vlm_qrows_r16_avx512 : vlm_qrows_scalar;
        j.tile = path == VLM_QPATH_AVX512 ? VLM_QTILE_AVX512 : VLM_QTILE_SCALAR;
    }
    size_t rb = vlm_dtype_row_bytes(w->dtype, K);
    /* a few input rows are quantized here (microseconds), sparing the threads a round trip */
    if (M <= j.tile)
        for (int m = 0; m < M; m++) quant_row_task(&j, m, 0);
    else vlm_pool_run(c->pool, threads, M, quant_row_task, &j);
    if (M <= j.tile) {
        /* Matrix-vector: contiguous ranges (long streams; the kernels split them further into
         * concurrent streams), about 4 per thread so that a descheduled thread holds up little. */
        int64_t r = (N + 4 * threads - 1) / (4 * threads);
        j.rows_per_task = r < ROW_CHUNK ? ROW_CHUNK : (r + 15) & ~(int64_t)15;
    } else {
        j.rows_per_task = rows_per_chunk(M, j.tile, rb, N, threads);
    }
    vlm_pool_run(c->pool, threads, (N + j.rows_per_task - 1) / j.rows_per_task, rows_task, &j);
}

/* 1 when [a, b) lies in one read-only private mapping of a file (per /proc/self/maps). */
static int readonly_file_mapping(uintptr_t a, uintptr_t b) {
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    int found = 0;
    while (f && !found && fgets(line, sizeof line, f)) {
        unsigned long lo, hi, off, inode;
        char perms[8];
        unsigned dev_major, dev_minor;
        if (sscanf(line, "%lx-%lx %7s %lx %x:%x %lu", &lo, &hi, perms, &off, &dev_major, &dev_minor, &inode) != 7)
            continue;
        if (a >= lo && b <= hi) found = inode != 0 && !strcmp(perms, "r--p") ? 1 : -1;
    }
    if (f) fclose(f);
    return found == 1;
}

typedef struct {
    const vlm_tensor *host;
    uint8_t *buf;
    int64_t rows_per_task;
} interleave_job;

static void interleave_task(void *arg, int64_t t, int thread) {
    const interleave_job *j = arg;
    int64_t N = j->host->shape[0], K = j->host->shape[1];
    size_t rb = vlm_dtype_row_bytes(j->host->dtype, K);
    int64_t n1 = (t + 1) * j->rows_per_task < N ? (t + 1) * j->rows_per_task : N;
    for (int64_t n = t * j->rows_per_task; n < n1; n++)
        vlm_quant_interleave_row(j->host->dtype, (const uint8_t *)j->host->data + (size_t)n * rb,
                                 j->buf + (size_t)n * rb, K);
}

vlm_status vlm_cpu_quant_prepare(vlm_pool *pool, const vlm_tensor *host, vlm_tensor *dev) {
    *dev = *host;
    vlm_dtype it = vlm_quant_interleaved(host->dtype);
    if (it == host->dtype || host->ndim != 2 || vlm_cpu_quant_path() != VLM_QPATH_AVX512) return VLM_OK;
    int64_t N = host->shape[0];
    uint8_t *buf = vlm_alloc(host->nbytes, "an interleaved copy of quantized weights");
    if (!buf) return VLM_ERR_NOMEM;
#ifdef MADV_HUGEPAGE
    /* streamed once per token: 2 MB pages spare the TLB a miss every 4 KB (a hint; "madvise" is
     * the usual transparent-huge-page setting) */
    uintptr_t hp = (uintptr_t)2 << 20, h0 = ((uintptr_t)buf + hp - 1) & ~(hp - 1),
              h1 = ((uintptr_t)buf + host->nbytes) & ~(hp - 1);
    if (h1 > h0) madvise((void *)h0, h1 - h0, MADV_HUGEPAGE);
#endif
    interleave_job j = {.host = host, .buf = buf, .rows_per_task = 64};
    vlm_pool_run(pool, 0, (N + 63) / 64, interleave_task, &j);
    /* The source pages are not read again: when they are a read-only file mapping (a checkpoint),
     * drop them from this process (the page cache keeps them for the next load, and a view read
     * later faults them back in), so that memory holds one copy. Other memory is left alone:
     * MADV_DONTNEED would zero anonymous pages. */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE), p0 = (uintptr_t)host->data;
    uintptr_t a = (p0 + page - 1) & ~(page - 1), b = (p0 + host->nbytes) & ~(page - 1);
    if (b > a && readonly_file_mapping(a, b)) madvise((void *)a, b - a, MADV_DONTNEED);
    dev->dtype = it;
    dev->data = buf;
    return VLM_OK;
}

void vlm_cpu_quant_release(vlm_tensor *dev) {
    if (vlm_quant_base(dev->dtype) == dev->dtype) return; /* a view: nothing to free */
    vlm_free(dev->data);
    dev->data = NULL;
}
