/* Attention on the CPU: the work is cut into tasks (a block of query rows x one kv head, the
 * query heads of a GQA group stacked so that each key block is packed once for all of them) that
 * threads take dynamically; each task runs the tiled online-softmax kernel of attention_tile.h.
 * Memory is linear in the sequence length: no n_q x n_kv matrix is ever built.
 * - vision (segments): tasks never cross a segment; windows of 64 rows are one task per head.
 * - causal prefill: blocks of query rows, heaviest (latest) first; decode (one query): one task
 *   per kv head with the group's query heads as its rows. */
#include <math.h>
#include <string.h>

#include "base/memory.h"
#include "kernels/cpu/cpu_kernels.h"
#include "kernels/cpu/cpu_simd.h"
#include "kernels/cpu/ref.h"

size_t vlm_attn_scratch_floats(int rows, int head_dim) {
    size_t R = (size_t)rows, Rp = R + 16, hd = (size_t)head_dim, hdp = hd + 16;
    /* Q, packed K^T, S, O, packed V, m and l; then the staging rows of paged keys */
    return hd * Rp + hd * VLM_ATT_BK + Rp * VLM_ATT_BK + R * hdp + VLM_ATT_BK * hdp + 2 * R + 64 + VLM_ATT_BK * hd;
}

/* Without scratch memory: one query row at a time (stack buffers only). */
enum { FALLBACK_KB = 256, FALLBACK_MAX_HD = 512 };

/* Row ii, head g of the group, of task t, over the task's keys (stopping at the row's own position
 * when causal); into the output, or as [unnormalized sums, max, sum of exp] into t->partial. */
static void attention_row(const vlm_attn_task *t, int ii, int g) {
    const vlm_attn_params *p = t->p;
    int hd = p->head_dim, group = p->n_heads / p->n_kv_heads, i = t->i0 + ii, h = t->kh * group + g;
    int lo = t->lo, hi = t->hi;
    if (p->causal && p->q_pos0 + i + 1 < hi) hi = p->q_pos0 + i + 1;
    float scores[FALLBACK_KB], acc[FALLBACK_MAX_HD];
    const float *qr = t->q + (size_t)i * p->q_stride + (size_t)h * hd;
    float mx = -INFINITY, sum = 0;
    for (int d = 0; d < hd; d++) acc[d] = 0;
    for (int j0 = lo; j0 < hi; j0 += FALLBACK_KB) {
        int nb = hi - j0 < FALLBACK_KB ? hi - j0 : FALLBACK_KB;
        float bmx = -INFINITY;
        for (int j = 0; j < nb; j++) {
            const float *kr = t->k + vlm_attn_kv_row(p, j0 + j) * p->kv_stride + (size_t)t->kh * hd;
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
            const float *vr = t->v + vlm_attn_kv_row(p, j0 + j) * p->kv_stride + (size_t)t->kh * hd;
            sum += e;
            for (int d = 0; d < hd; d++) acc[d] += e * vr[d];
        }
        mx = nmx;
    }
    if (t->partial) {
        float *pr = t->partial + (size_t)(g * t->nq + ii) * (size_t)(hd + 2);
        memcpy(pr, acc, sizeof(float) * (size_t)hd);
        pr[hd] = mx, pr[hd + 1] = sum;
        return;
    }
    float *o = t->out + (size_t)i * p->out_stride + (size_t)h * hd;
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
            if (p->head_dim <= FALLBACK_MAX_HD) attention_row(t, ii, g);
            else if (!t->partial) fill_rows(t->out, p, t->i0 + ii, t->i0 + ii + 1, NAN);
        }
}

static int params_ok(const vlm_attn_params *p) {
    if (p->n_q <= 0) return 1; /* nothing to do */
    if (p->n_heads <= 0 || p->n_kv_heads <= 0 || p->n_heads % p->n_kv_heads || p->head_dim <= 0) return 0;
    if (p->segments && p->n_segments < 0) return 0;
    return 1;
}

/* Decode (one query) with fewer kv heads than threads: each head's key range is cut into parts
 * that threads take, each part's unnormalized result is kept with its max and sum, and the parts
 * are merged (flash-decoding). Returns 0 when not worth it or without scratch memory. */
typedef struct {
    const vlm_attn_params *p;
    const float *q, *k, *v;
    float *out, *partial;
    int parts, span, hi, rows, avx512;
    size_t per_task;
} split_job;

static void split_task(void *arg, int64_t t, int thread) {
    const split_job *j = arg;
    int kh = (int)t / j->parts, part = (int)t % j->parts;
    vlm_attn_task task = {.p = j->p,
                          .q = j->q,
                          .k = j->k,
                          .v = j->v,
                          .out = j->out,
                          .kh = kh,
                          .i0 = 0,
                          .nq = 1,
                          .lo = part * j->span,
                          .hi = (part + 1) * j->span < j->hi ? (part + 1) * j->span : j->hi,
                          .partial = j->partial + (size_t)t * j->per_task};
    run_task(&task, j->rows, j->avx512);
}

static int decode_split(vlm_pool *pool, float *out, const float *q, const float *k, const float *v,
                        const vlm_attn_params *p, int rows, int threads, int avx512) {
    const int nkv = p->n_kv_heads, hd = p->head_dim, group = p->n_heads / nkv;
    int hi = p->q_pos0 + 1 < p->n_kv ? p->q_pos0 + 1 : p->n_kv;
    int parts = (threads + nkv - 1) / nkv; /* parts per head so that every thread has work */
    if (nkv >= threads || hi < 2 * VLM_ATT_BK * parts || hd > FALLBACK_MAX_HD) return 0;
    int span = (hi + parts - 1) / parts;
    span = (span + VLM_ATT_BK - 1) / VLM_ATT_BK * VLM_ATT_BK; /* whole key blocks */
    parts = (hi + span - 1) / span;
    size_t row = (size_t)hd + 2, per_task = (size_t)group * row;
    float *partial = vlm_cpu_scratch(VLM_SCRATCH_ATTN_SPLIT, per_task * (size_t)(nkv * parts));
    if (!partial) return 0;
    split_job j = {.p = p,
                   .q = q,
                   .k = k,
                   .v = v,
                   .out = out,
                   .parts = parts,
                   .span = span,
                   .hi = hi,
                   .rows = rows,
                   .avx512 = avx512,
                   .partial = partial,
                   .per_task = per_task};
    vlm_pool_run(pool, threads, nkv * parts, split_task, &j);
    for (int kh = 0; kh < nkv; kh++)
        for (int g = 0; g < group; g++) {
            float mx = -INFINITY, sum = 0.0f;
            for (int part = 0; part < parts; part++) {
                float m = partial[(size_t)(kh * parts + part) * per_task + (size_t)g * row + hd];
                if (m > mx) mx = m;
            }
            float *dst = out + (size_t)(kh * group + g) * hd;
            for (int d = 0; d < hd; d++) dst[d] = 0.0f;
            for (int part = 0; part < parts; part++) {
                const float *pr = partial + (size_t)(kh * parts + part) * per_task + (size_t)g * row;
                if (pr[hd + 1] <= 0.0f) continue; /* a part without keys */
                float c = expf(pr[hd] - mx);
                sum += pr[hd + 1] * c;
                for (int d = 0; d < hd; d++) dst[d] += pr[d] * c;
            }
            float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
            for (int d = 0; d < hd; d++) dst[d] *= inv;
        }
    return 1;
}

/* Causal blocks and segment blocks: task t of `ntasks`. Causal: the latest query blocks (most keys)
 * first. Segments: block t lies in the segment s with first[s] <= t < first[s + 1] (tasks never
 * cross a segment; no barrier between segments, a thread done with one takes tasks of the next). */
typedef struct {
    const vlm_attn_params *p;
    const float *q, *k, *v;
    float *out;
    int bq, rows, avx512, ntasks, seg_base;
    const int *first; /* per segment, its first task (NULL: causal) */
    int nseg;
} blocks_job;

static void causal_task(void *arg, int64_t tt, int thread) {
    const blocks_job *j = arg;
    const vlm_attn_params *p = j->p;
    int t = j->ntasks - 1 - (int)tt, nkv = p->n_kv_heads, b = t / nkv;
    vlm_attn_task task = {.p = p, .q = j->q, .k = j->k, .v = j->v, .out = j->out, .kh = t % nkv, .i0 = b * j->bq};
    task.nq = p->n_q - task.i0 < j->bq ? p->n_q - task.i0 : j->bq;
    task.lo = 0;
    task.hi = p->q_pos0 + task.i0 + task.nq;
    if (task.hi > p->n_kv) task.hi = p->n_kv;
    run_task(&task, j->rows, j->avx512);
}

static void segment_task(void *arg, int64_t tt, int thread) {
    const blocks_job *j = arg;
    const vlm_attn_params *p = j->p;
    int lo = 0, hi = j->nseg - 1, t = (int)tt; /* the last segment whose first task <= t */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (j->first[mid] <= t) lo = mid;
        else hi = mid - 1;
    }
    int s = lo + j->seg_base, nkv = p->n_kv_heads;
    int s0 = p->segments ? p->segments[s] : 0, s1 = p->segments ? p->segments[s + 1] : p->n_q;
    if (s0 < 0) s0 = 0;
    if (s1 > p->n_q) s1 = p->n_q;
    int klo = p->segments ? s0 : 0, khi = p->segments ? s1 : p->n_kv;
    if (khi > p->n_kv) khi = p->n_kv;
    int local = t - j->first[lo], b = local / nkv;
    vlm_attn_task task = {
        .p = p, .q = j->q, .k = j->k, .v = j->v, .out = j->out, .kh = local % nkv, .i0 = s0 + b * j->bq};
    task.nq = s1 - task.i0 < j->bq ? s1 - task.i0 : j->bq;
    task.lo = klo;
    task.hi = khi;
    run_task(&task, j->rows, j->avx512);
}

/* The tasks of segments [s_from, s_to) as one job (first: room for s_to - s_from ints). */
static void run_segments(vlm_pool *pool, blocks_job *j, int threads, int s_from, int s_to, int *first) {
    const vlm_attn_params *p = j->p;
    int total = 0;
    for (int s = s_from; s < s_to; s++) {
        int s0 = p->segments ? p->segments[s] : 0, s1 = p->segments ? p->segments[s + 1] : p->n_q;
        if (s0 < 0) s0 = 0;
        if (s1 > p->n_q) s1 = p->n_q;
        first[s - s_from] = total;
        total += (s1 > s0 ? (s1 - s0 + j->bq - 1) / j->bq : 0) * p->n_kv_heads;
    }
    j->first = first;
    j->nseg = s_to - s_from;
    j->seg_base = s_from;
    vlm_pool_run(pool, threads, total, segment_task, j);
}

void vlm_cpu_attention(const vlm_cpu_ctx *c, float *out, const float *q, const float *k, const float *v,
                       const vlm_attn_params *p) {
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
    int threads = vlm_pool_threads(c->pool);
    double work = (double)p->n_q * p->n_heads * (p->causal ? p->q_pos0 + p->n_q : p->n_kv) * p->head_dim;
    if (work < 2e5) threads = 1;

    if (p->causal && p->n_q == 1 && threads > 1 && decode_split(c->pool, out, q, k, v, p, rows, threads, avx512))
        return;
    blocks_job j = {.p = p, .q = q, .k = k, .v = v, .out = out, .bq = bq, .rows = rows, .avx512 = avx512};
    if (p->causal) {
        j.ntasks = (p->n_q + bq - 1) / bq * nkv;
        vlm_pool_run(c->pool, threads, j.ntasks, causal_task, &j);
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
    enum { SEG_GROUP = 256 }; /* segments per job when no memory is left for one list of all */
    int *first = nseg > SEG_GROUP ? vlm_alloc(sizeof(int) * (size_t)nseg, "attention segment offsets") : NULL;
    if (first) {
        run_segments(c->pool, &j, threads, 0, nseg, first);
        vlm_free(first);
        return;
    }
    int local[SEG_GROUP];
    for (int s = 0; s < nseg; s += SEG_GROUP)
        run_segments(c->pool, &j, threads, s, s + SEG_GROUP < nseg ? s + SEG_GROUP : nseg, local);
}
