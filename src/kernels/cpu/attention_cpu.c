/* Attention on the CPU: the work is cut into tasks (a block of query rows x one kv head, the
 * query heads of a GQA group stacked so that each key block is packed once for all of them) that
 * threads take dynamically; each task runs the tiled online-softmax kernel of attention_tile.h.
 * Memory is linear in the sequence length: no n_q x n_kv matrix is ever built.
 * - vision (segments): tasks never cross a segment; windows of 64 rows are one task per head.
 * - causal prefill: blocks of query rows, heaviest (latest) first; decode (one query): one task
 *   per kv head with the group's query heads as its rows. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "base/cpu.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_simd.h"
#include "kernels/cpu/ref.h"

size_t vlm_attn_scratch_floats(int rows, int head_dim) {
    size_t R = (size_t)rows, Rp = R + 16, hd = (size_t)head_dim, hdp = hd + 16;
    return hd * Rp + hd * VLM_ATT_BK + Rp * VLM_ATT_BK + R * hdp + 2 * R + 64;
}

/* Without scratch memory: one query row at a time (stack buffers only). */
enum { FALLBACK_KB = 256, FALLBACK_MAX_HD = 512 };

static void attention_row(float *out, const float *q, const float *k, const float *v, const vlm_attn_params *p,
                          int i, int h) {
    int hd = p->head_dim, kh = h / (p->n_heads / p->n_kv_heads), lo, hi;
    float scores[FALLBACK_KB], acc[FALLBACK_MAX_HD];
    vlm_attn_key_range(p, i, &lo, &hi);
    const float *qr = q + (size_t)i * p->q_stride + (size_t)h * hd;
    float *o = out + (size_t)i * p->out_stride + (size_t)h * hd;
    float mx = -INFINITY, sum = 0;
    for (int d = 0; d < hd; d++) acc[d] = 0;
    for (int j0 = lo; j0 < hi; j0 += FALLBACK_KB) {
        int nb = hi - j0 < FALLBACK_KB ? hi - j0 : FALLBACK_KB;
        float bmx = -INFINITY;
        for (int j = 0; j < nb; j++) {
            const float *kr = k + (size_t)(j0 + j) * p->kv_stride + (size_t)kh * hd;
            float s = 0;
            for (int d = 0; d < hd; d++) s += qr[d] * kr[d];
            scores[j] = s * p->scale;
            if (scores[j] > bmx) bmx = scores[j];
        }
        float nmx = bmx > mx ? bmx : mx, corr = expf(mx - nmx);
        sum *= corr;
        for (int d = 0; d < hd; d++) acc[d] *= corr;
        for (int j = 0; j < nb; j++) {
            float e = expf(scores[j] - nmx);
            const float *vr = v + (size_t)(j0 + j) * p->kv_stride + (size_t)kh * hd;
            sum += e;
            for (int d = 0; d < hd; d++) acc[d] += e * vr[d];
        }
        mx = nmx;
    }
    float inv = sum > 0 ? 1.0f / sum : 0.0f;
    for (int d = 0; d < hd; d++) o[d] = acc[d] * inv;
}

static void fill_rows(float *out, const vlm_attn_params *p, int i0, int i1, float value) {
    for (int i = i0; i < i1; i++)
        for (int d = 0; d < p->n_heads * p->head_dim; d++) out[(size_t)i * p->out_stride + d] = value;
}

/* One task: with the tiled kernel when this thread has its scratch, else row by row. */
static void run_task(const vlm_attn_task *t, int rows, int avx512) {
    const vlm_attn_params *p = t->p;
    float *scratch = vlm_cpu_scratch(VLM_SCRATCH_ATTN, vlm_attn_scratch_floats(rows, p->head_dim));
    if (scratch) {
        if (avx512) vlm_attn_task_avx512(t, scratch);
        else vlm_attn_task_avx2(t, scratch);
        return;
    }
    int group = p->n_heads / p->n_kv_heads;
    for (int ii = 0; ii < t->nq; ii++)
        for (int g = 0; g < group; g++) {
            if (p->head_dim <= FALLBACK_MAX_HD) attention_row(t->out, t->q, t->k, t->v, p, t->i0 + ii, t->kh * group + g);
            else fill_rows(t->out, p, t->i0 + ii, t->i0 + ii + 1, NAN);
        }
}

static int params_ok(const vlm_attn_params *p) {
    if (p->n_q <= 0) return 1; /* nothing to do */
    if (p->n_heads <= 0 || p->n_kv_heads <= 0 || p->n_heads % p->n_kv_heads || p->head_dim <= 0) return 0;
    if (p->segments && p->n_segments < 0) return 0;
    return 1;
}

void vlm_cpu_attention(float *out, const float *q, const float *k, const float *v, const vlm_attn_params *p) {
    if (!params_ok(p)) { /* a malformed call: NaN rows, never plausible numbers */
        if (p->n_heads > 0 && p->head_dim > 0) fill_rows(out, p, 0, p->n_q, NAN);
        return;
    }
    if (p->n_q <= 0) return;
    const int group = p->n_heads / p->n_kv_heads, nkv = p->n_kv_heads;
    int bq = VLM_ATT_ROWS / group;
    if (bq < 1) bq = 1;
    const int rows = group * bq;
    const int avx512 = vlm_cpu_kernels_avx512();
    int threads = vlm_threads();
    double work = (double)p->n_q * p->n_heads * (p->causal ? p->q_pos0 + p->n_q : p->n_kv) * p->head_dim;
    if (work < 2e5) threads = 1;

    if (p->causal) {
        int nblocks = (p->n_q + bq - 1) / bq, ntasks = nblocks * nkv;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (int t = ntasks - 1; t >= 0; t--) { /* latest query blocks (most keys) first */
            int b = t / nkv;
            vlm_attn_task task = {.p = p, .q = q, .k = k, .v = v, .out = out, .kh = t % nkv, .i0 = b * bq};
            task.nq = p->n_q - task.i0 < bq ? p->n_q - task.i0 : bq;
            task.lo = 0;
            task.hi = p->q_pos0 + task.i0 + task.nq;
            if (task.hi > p->n_kv) task.hi = p->n_kv;
            run_task(&task, rows, avx512);
        }
        return;
    }

    /* segments (or one over all rows); rows outside every segment attend nothing */
    int nseg = p->segments ? p->n_segments : 1;
    if (p->segments && nseg > 0) {
        int first = p->segments[0] < 0 ? 0 : p->segments[0], last = p->segments[nseg];
        if (first > p->n_q) first = p->n_q;
        if (last < first) last = first;
        if (last > p->n_q) last = p->n_q;
        fill_rows(out, p, 0, first, 0.0f);
        fill_rows(out, p, last, p->n_q, 0.0f);
    } else if (p->segments) {
        fill_rows(out, p, 0, p->n_q, 0.0f);
        return;
    }
#pragma omp parallel num_threads(threads)
    {
        for (int s = 0; s < nseg; s++) {
            int s0 = p->segments ? p->segments[s] : 0, s1 = p->segments ? p->segments[s + 1] : p->n_q;
            if (s0 < 0) s0 = 0;
            if (s1 > p->n_q) s1 = p->n_q;
            int klo = p->segments ? s0 : 0, khi = p->segments ? s1 : p->n_kv;
            if (khi > p->n_kv) khi = p->n_kv;
            int nblocks = s1 > s0 ? (s1 - s0 + bq - 1) / bq : 0;
            /* no barrier between segments: a thread done with one takes tasks of the next */
#pragma omp for schedule(dynamic, 1) nowait
            for (int t = 0; t < nblocks * nkv; t++) {
                int b = t / nkv;
                vlm_attn_task task = {.p = p, .q = q, .k = k, .v = v, .out = out, .kh = t % nkv, .i0 = s0 + b * bq};
                task.nq = s1 - task.i0 < bq ? s1 - task.i0 : bq;
                task.lo = klo;
                task.hi = khi;
                run_task(&task, rows, avx512);
            }
        }
    }
}
