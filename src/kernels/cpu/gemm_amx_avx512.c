/* GEMM with AMX (Sapphire Rapids and later) for BF16 weights: y = x w^T (+ bias).
 *
 * AMX multiplies bf16 tiles with f32 accumulation (tdpbf16ps: 16 x 16 outputs, 32 products each).
 * The weights already are bf16; the f32 activations are split into `parts` bf16 numbers
 * x = x1 + x2 (+ x3), each the bf16 rounding of what the previous ones leave, and every part is
 * multiplied with the same weight tile:
 *   parts 3: x is represented exactly (8 + 8 + 8 mantissa bits): f32 accuracy.
 *   parts 2: 16 bits of x (relative error <= 2^-17 per product).
 *   parts 1: bf16 activations (relative error <= 2^-9 per product).
 * Products of bf16 numbers are exact in f32, so only the accumulation order differs from the f32
 * kernels.
 *
 * The product is computed transposed, y^T = w x^T: the weight rows are the tiles' left operand
 * in their stored layout (16 rows x 32 k, loaded straight from the mapping: no weight packing),
 * the activations the right operand, packed once per block into the k-pair order tdpbf16ps wants
 * (a 16 x 16 dword transpose). A 32 x 32 output block (4 accumulator tiles, 2 weight tiles, 2
 * activation tiles: all 8 tile registers) runs over a whole k block (KC up to 4096 / parts) with
 * the accumulators in tiles, then is transposed into y. The pool's threads take (row block, group
 * of weight rows) items. */
#pragma GCC target("amx-tile,amx-bf16")

#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/cpu.h"
#include "kernels/cpu/cpu_simd.h"
#include "kernels/cpu/transpose_avx512.h"

enum {
    TILE_ELEMS = 512,      /* bf16 per tile: 16 rows x 64 bytes */
    AMX_X_BYTES = 1 << 20, /* packed activation block budget (L2) */
    AMX_MC_MIN = 128,      /* rows per block at least: weights are re-read once per block */
    AMX_MC_MAX = 1024,     /* rows per block at most (accumulator buffer: 128 KiB) */
    AMX_X_ALL = 32 << 20,  /* activations packed at once, for several row blocks */
    AMX_SUB = 16,          /* chunks per pass over the row pairs: 32 weight rows x 512 k in L1 */
};

#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} tile_config;

static pthread_once_t g_amx_once = PTHREAD_ONCE_INIT;
static int g_amx_ok;

static void amx_init(void) {
    const vlm_cpu_features *c = vlm_cpu();
    if (!c->amx_bf16 || !vlm_cpu_has_avx512() || !c->avx512_bf16) return;
    /* Linux keeps the 8 KiB tile state off until a process asks for it */
    g_amx_ok = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
}

int vlm_gemm_amx_available(void) {
    pthread_once(&g_amx_once, amx_init);
    return g_amx_ok;
}

static void load_tile_config(void) {
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
}

/* ---- packing of activations: 16 rows (rows valid) x 32 k (kn valid) of x into `parts` tiles in
 * k-pair order: tile[kk][m] = (x_p[m][2kk], x_p[m][2kk + 1]). */
static void pack_x_tiles(const float *x, int64_t ldx, int rows, int kn, int parts, uint16_t *dst, size_t part_stride) {
    __mmask16 m0 = kn >= 16 ? 0xffff : (__mmask16)((1u << kn) - 1u);
    __mmask16 m1 = kn >= 32 ? 0xffff : kn > 16 ? (__mmask16)((1u << (kn - 16)) - 1u) : 0;
    __m512 r[3][16];
    for (int i = 0; i < 16; i++) {
        __m512 v0 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps();
        if (i < rows) {
            v0 = _mm512_maskz_loadu_ps(m0, x + (size_t)i * (size_t)ldx);
            v1 = _mm512_maskz_loadu_ps(m1, x + (size_t)i * (size_t)ldx + 16);
        }
        for (int p = 0; p < parts; p++) {
            __m512bh h = _mm512_cvtne2ps_pbh(v1, v0); /* k 0..15 from v0, 16..31 from v1 */
            r[p][i] = _mm512_castsi512_ps((__m512i)h);
            if (p + 1 < parts) { /* what this part leaves for the next */
                __m512i hi = (__m512i)h;
                v0 = _mm512_sub_ps(v0, _mm512_cvtpbh_ps((__m256bh)_mm512_castsi512_si256(hi)));
                v1 = _mm512_sub_ps(v1, _mm512_cvtpbh_ps((__m256bh)_mm512_extracti64x4_epi64(hi, 1)));
            }
        }
    }
    for (int p = 0; p < parts; p++) {
        vlm_transpose16(r[p]);
        for (int kk = 0; kk < 16; kk++)
            _mm512_storeu_ps((float *)(dst + (size_t)p * part_stride + (size_t)kk * 32), r[p][kk]);
    }
}

/* ---- output: y block (rows m.. of 16, cols n.. of 16) = or += the transposed tile ct[n][m] */
static void store_tile_t(const float *ct, float *y, int64_t N, int rows, int cols, int accumulate) {
    __m512 r[16];
    for (int i = 0; i < 16; i++) r[i] = _mm512_load_ps(ct + i * 16);
    vlm_transpose16(r);
    __mmask16 cm = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1u);
    for (int i = 0; i < rows; i++) {
        float *yr = y + (size_t)i * N;
        __m512 v = r[i];
        if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(cm, yr));
        _mm512_mask_storeu_ps(yr, cm, v);
    }
}

/* Weights of one 32-row pair for one k block: straight from the mapping, or (row or k edges)
 * from a zero-padded copy. */
typedef struct {
    const uint16_t *base; /* tile (t, chunk ch) at base + t * 16 * stride + ch * 32 */
    size_t stride;        /* elements between rows */
    const uint16_t *tail; /* the last chunk's two tiles when it is partial (else NULL) */
} wsrc;

static wsrc weight_source(const uint16_t *w, int64_t N, int64_t K, int64_t n, int64_t k0, int kc, uint16_t *wbuf,
                          uint16_t *tailbuf) {
    wsrc s = {.base = w + (size_t)n * (size_t)K + k0, .stride = (size_t)K, .tail = NULL};
    int rows = N - n < 32 ? (int)(N - n) : 32, chunks = (kc + 31) / 32;
    if (rows < 32) { /* the last pair: copy its rows into a padded [32][chunks * 32] buffer */
        size_t ld = (size_t)chunks * 32;
        for (int i = 0; i < 32; i++) {
            uint16_t *dst = wbuf + (size_t)i * ld;
            if (i < rows) {
                memcpy(dst, w + (size_t)(n + i) * (size_t)K + k0, sizeof(uint16_t) * (size_t)kc);
                memset(dst + kc, 0, sizeof(uint16_t) * (ld - (size_t)kc));
            } else {
                memset(dst, 0, sizeof(uint16_t) * ld);
            }
        }
        s.base = wbuf;
        s.stride = ld;
        return s;
    }
    if (kc % 32) { /* a partial last chunk: its two tiles, zero-padded */
        int kn = kc % 32;
        for (int i = 0; i < 32; i++) {
            uint16_t *dst = tailbuf + (size_t)(i / 16) * TILE_ELEMS + (size_t)(i % 16) * 32;
            memcpy(dst, w + (size_t)(n + i) * (size_t)K + k0 + (chunks - 1) * 32, sizeof(uint16_t) * (size_t)kn);
            memset(dst + kn, 0, sizeof(uint16_t) * (size_t)(32 - kn));
        }
        s.tail = tailbuf;
    }
    return s;
}

/* One 32 (weight rows) x 32 (activation rows) block over chunks [c0, c1) of 32 k.
 * xt: the activation tiles of this row pair: (m-tile t, chunk ch, part p) at
 * xt + ((t * chunks + ch) * parts + p) * TILE_ELEMS. The 4 accumulator tiles start from `init`
 * (4 tiles of 16 x 16, 256 floats apart; tile q: weight rows (q / 2) * 16, x rows (q % 2) * 16),
 * or from zero (init NULL), and end in ct (same layout; ct may be init). */
static void amx_block(const wsrc *w, int chunks, int c0, int c1, int parts, const uint16_t *xt, const float *init,
                      float *ct) {
    if (init) {
        _tile_loadd(0, init, 64);
        _tile_loadd(1, init + 256, 64);
        _tile_loadd(2, init + 512, 64);
        _tile_loadd(3, init + 768, 64);
    } else {
        _tile_zero(0);
        _tile_zero(1);
        _tile_zero(2);
        _tile_zero(3);
    }
    size_t wstride = w->stride * sizeof(uint16_t), xs = (size_t)chunks * parts * TILE_ELEMS;
    /* loads interleaved with the products that free their tile registers (tiles are not renamed) */
    for (int ch = c0; ch < c1; ch++) {
        const uint16_t *w0 = w->base + (size_t)ch * 32, *w1 = w0 + 16 * w->stride;
        size_t ws = wstride;
        if (w->tail && ch == chunks - 1) w0 = w->tail, w1 = w->tail + TILE_ELEMS, ws = 64;
        for (int p = 0; p < parts; p++) {
            const uint16_t *x0 = xt + ((size_t)ch * parts + p) * TILE_ELEMS;
            if (p == 0) _tile_loadd(4, w0, ws);
            _tile_loadd(6, x0, 64);
            _tile_dpbf16ps(0, 4, 6); /* w rows 0..15  x x rows 0..15 */
            _tile_loadd(7, x0 + xs, 64);
            _tile_dpbf16ps(1, 4, 7); /* w rows 0..15  x x rows 16..31 */
            if (p == 0) _tile_loadd(5, w1, ws);
            _tile_dpbf16ps(2, 5, 6); /* w rows 16..31 x x rows 0..15 */
            _tile_dpbf16ps(3, 5, 7); /* w rows 16..31 x x rows 16..31 */
        }
    }
    _tile_stored(0, ct, 64);
    _tile_stored(1, ct + 256, 64);
    _tile_stored(2, ct + 512, 64);
    _tile_stored(3, ct + 768, 64);
}

/* One work item: weight row pairs [j0, j1) against the activation rows [m0, m0 + mc) of a packed
 * block (its tiles from xt on), for the k block at k0. */
static void amx_item(float *y, const vlm_tensor *w, const float *bias, int M, int parts, int64_t k0, int kc, int m0,
                     int mc, const uint16_t *xt, int64_t j0, int64_t j1, uint16_t *wbuf, uint16_t *tailbuf,
                     float *biast, float *cbuf) {
    const int64_t N = w->shape[0], K = w->shape[w->ndim - 1];
    const int chunks = (kc + 31) / 32, mtiles = (mc + 31) / 32 * 2;
    for (int64_t j = j0; j < j1; j++) {
        int64_t n = j * 32;
        int cols = N - n < 32 ? (int)(N - n) : 32;
        wsrc src = weight_source(w->data, N, K, n, k0, kc, wbuf, tailbuf);
        const float *init = NULL;
        if (k0 == 0 && bias) { /* tile rows are weight rows: row i holds bias[n + i] */
            for (int i = 0; i < 32; i++) {
                __m512 b = _mm512_set1_ps(i < cols ? bias[n + i] : 0.0f);
                _mm512_store_ps(biast + (i / 16) * 512 + (i % 16) * 16, b);
                _mm512_store_ps(biast + (i / 16) * 512 + 256 + (i % 16) * 16, b);
            }
            init = biast;
        }
        /* passes of AMX_SUB chunks over every row pair: this pair's weights stay in L1; after the
         * last pass each block goes to y while the next one computes */
        for (int c0 = 0; c0 < chunks; c0 += AMX_SUB) {
            int c1 = c0 + AMX_SUB < chunks ? c0 + AMX_SUB : chunks, last = c1 == chunks;
            for (int mp = 0; mp < mtiles; mp += 2) {
                float *acc = cbuf + (size_t)(mp / 2) * 1024;
                int m = m0 + mp * 16, rows = M - m < 32 ? M - m : 32;
                if (last) /* the rows of y this block will write, fetched for writing meanwhile */
                    for (int i = 0; i < rows; i++) __builtin_prefetch(y + (size_t)(m + i) * N + n, 1, 3);
                amx_block(&src, chunks, c0, c1, parts, xt + (size_t)mp * chunks * parts * TILE_ELEMS, c0 ? acc : init,
                          acc);
                if (!last) continue;
                for (int q = 0; q < 4; q++) { /* tile q: weight rows (q / 2) * 16, x rows (q % 2) * 16 */
                    int r = rows - (q % 2) * 16, c = cols - (q / 2) * 16;
                    if (r > 0 && c > 0)
                        store_tile_t(acc + q * 256, y + (size_t)(m + (q % 2) * 16) * N + n + (q / 2) * 16, N,
                                     r > 16 ? 16 : r, c > 16 ? 16 : c, k0 > 0);
                }
            }
        }
    }
}

/* The product's shape and buffers, shared by its tasks. */
typedef struct {
    float *y;
    const float *x, *bias;
    const vlm_tensor *w;
    int M, parts, mc_max, chunks_max;
    int64_t npairs;
    uint16_t *xp;       /* packed activations of the current group of row blocks */
    uint16_t *wbuf_all; /* per thread: the edge pair's weights */
    float *cbuf_all;    /* per thread: accumulators */
    size_t wbuf_per, cbuf_per;
    /* the current k block and group of rows */
    int64_t k0;
    int kc, chunks, g0, rows_g;
    int64_t groups, gsize;
} amx_job;

static void amx_pack_task(void *arg, int64_t t, int thread) {
    const amx_job *j = arg;
    const int64_t K = j->w->shape[j->w->ndim - 1];
    int rows = j->rows_g - (int)t * 16;
    rows = rows < 0 ? 0 : rows > 16 ? 16 : rows;
    for (int ch = 0; ch < j->chunks; ch++) {
        int kn = j->kc - ch * 32 < 32 ? j->kc - ch * 32 : 32;
        pack_x_tiles(j->x + (size_t)(j->g0 + t * 16) * (size_t)K + j->k0 + ch * 32, K, rows, kn, j->parts,
                     j->xp + ((size_t)t * j->chunks + ch) * j->parts * TILE_ELEMS, TILE_ELEMS);
    }
}

/* Items: (row block, group of weight row pairs), row block major. */
static void amx_item_task(void *arg, int64_t it, int thread) {
    const amx_job *j = arg;
    uint16_t tailbuf[2 * TILE_ELEMS] __attribute__((aligned(64)));
    float biast[4 * 256] __attribute__((aligned(64)));
    int mb = (int)(it / j->groups);
    int64_t j0 = it % j->groups * j->gsize, j1 = j0 + j->gsize < j->npairs ? j0 + j->gsize : j->npairs;
    int m0 = j->g0 + mb * j->mc_max, mc = j->g0 + j->rows_g - m0 < j->mc_max ? j->g0 + j->rows_g - m0 : j->mc_max;
    load_tile_config(); /* per task: tile state is per thread, and released when the task ends */
    amx_item(j->y, j->w, j->bias, j->M, j->parts, j->k0, j->kc, m0, mc,
             j->xp + (size_t)(mb * j->mc_max / 16) * j->chunks * j->parts * TILE_ELEMS, j0, j1,
             j->wbuf_all + (size_t)thread * j->wbuf_per, tailbuf, biast, j->cbuf_all + (size_t)thread * j->cbuf_per);
    _tile_release();
}

int vlm_gemm_amx(vlm_pool *pool, float *y, const float *x, const vlm_tensor *w, const float *bias, int M, int parts,
                 int threads) {
    if (w->dtype != VLM_DT_BF16 || parts < 1 || parts > 3 || M <= 0 || !vlm_gemm_amx_available()) return 0;
    const int64_t N = w->shape[0], K = w->shape[w->ndim - 1];
    /* k block: AMX_MC_MIN rows of packed activations fill the L2 budget; rows per block: the rest */
    int64_t kc_max = (int64_t)(AMX_X_BYTES / (AMX_MC_MIN * parts * 2)) / 32 * 32;
    if (kc_max > (K + 31) / 32 * 32) kc_max = (K + 31) / 32 * 32;
    int mc_max = (int)(AMX_X_BYTES / ((size_t)kc_max * parts * 2)) / 32 * 32;
    if (mc_max > AMX_MC_MAX) mc_max = AMX_MC_MAX;
    int mblocks = (M + mc_max - 1) / mc_max;
    mc_max = ((M + mblocks - 1) / mblocks + 31) / 32 * 32;
    /* packed at once: as many row blocks as AMX_X_ALL holds */
    int per_pack = (int)(AMX_X_ALL / ((size_t)mc_max * kc_max * parts * 2));
    if (per_pack < 1) per_pack = 1;
    if (per_pack > mblocks) per_pack = mblocks;
    const int rows_pack = per_pack * mc_max, chunks_max = (int)(kc_max / 32);
    if (threads > vlm_pool_threads(pool)) threads = vlm_pool_threads(pool);
    if (threads < 1) threads = 1;
    amx_job j = {.y = y,
                 .x = x,
                 .bias = bias,
                 .w = w,
                 .M = M,
                 .parts = parts,
                 .mc_max = mc_max,
                 .chunks_max = chunks_max,
                 .npairs = (N + 31) / 32};
    /* every buffer is taken by the caller before any work: per-thread ones indexed by the task's
     * thread number */
    j.wbuf_per = (size_t)32 * chunks_max * 32 + 32;                  /* uint16: 32 rows of chunks_max * 32 */
    j.cbuf_per = ((size_t)(mc_max / 32) * 1024 + 16 + 15) / 16 * 16; /* floats */
    j.xp = (uint16_t *)vlm_cpu_scratch(VLM_SCRATCH_GEMM_A,
                                       (size_t)(rows_pack / 16) * chunks_max * parts * TILE_ELEMS / 2 + 16);
    j.wbuf_all = (uint16_t *)vlm_cpu_scratch(VLM_SCRATCH_GEMM_B, (size_t)threads * j.wbuf_per / 2 + 16);
    j.cbuf_all = vlm_cpu_scratch(VLM_SCRATCH_GEMM_C, (size_t)threads * j.cbuf_per);
    if (!j.xp || !j.wbuf_all || !j.cbuf_all) return 0;
    for (int64_t k0 = 0; k0 < K; k0 += kc_max) {
        j.k0 = k0;
        j.kc = K - k0 < kc_max ? (int)(K - k0) : (int)kc_max;
        j.chunks = (j.kc + 31) / 32;
        for (int g0 = 0; g0 < M; g0 += rows_pack) {
            j.g0 = g0;
            j.rows_g = M - g0 < rows_pack ? M - g0 : rows_pack;
            vlm_pool_run(pool, threads, (j.rows_g + 31) / 32 * 2, amx_pack_task, &j);
            int nmb = (j.rows_g + mc_max - 1) / mc_max;
            int64_t groups = (4 * (int64_t)threads + nmb - 1) / nmb;
            if (groups > j.npairs) groups = j.npairs;
            j.gsize = (j.npairs + groups - 1) / groups;
            j.groups = (j.npairs + j.gsize - 1) / j.gsize;
            vlm_pool_run(pool, threads, nmb * j.groups, amx_item_task, &j);
        }
    }
    return 1;
}
