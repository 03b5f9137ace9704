/* The tiled (flash-style) attention of one task, written once for both SIMD widths: included by
 * attention_avx2.c and attention_avx512.c after they define the vector macros below.
 *
 * A task is a block of query rows that share a kv head (the heads of a GQA group stacked: row
 * r = g * nq + ii is query i0 + ii of head kh * group + g) and walks its key range in blocks of
 * ATT_BK keys. Per key block:
 *   KT = K_block^T (packed [head_dim][ATT_BK], zero-padded)
 *   S  = (scale Q) KT                       register tiles of RT_S rows x 2 vectors of keys
 *   online softmax per row: new max, rescale of O and l by exp(m_old - m_new), P = exp(S - m)
 *   O += P V_block                          register tiles of RT_PV rows x NV_PV vectors of head_dim
 * Memory is O(rows x (head_dim + ATT_BK)) whatever the sequence length; O, m and l stay f32.
 *
 * Expected macros: VEC, VL, VMASK, vzero, vset1, vloadu, vstoreu, vfmadd, vmul, vadd, vsub, vmax,
 * vexp, vhmax, vhsum, vmask_first(n), vload_mask(p, m) (0 where masked), vload_mask_fill(p, m, fill),
 * vkeep(v, m) (v where m, else 0), RT_S, RT_PV, NV_PV, ATTN_TASK_FN (the function name), PACK_KT (or 0). */
#include <math.h>
#include <string.h>

#include "kernels/cpu/cpu_simd.h"

#define AI static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 32")

/* S[r][j] for rows r0 .. r0 + RT_S - 1 (rows valid), keys j0 .. j0 + 2 VL - 1 */
static void s_tile(int hd, const float *qp, int ldq, const float *kt, int ldk, float *s, int lds, int rows) {
    VEC acc[RT_S][2];
    UNROLL for (int r = 0; r < RT_S; r++) acc[r][0] = acc[r][1] = vzero();
    for (int d = 0; d < hd; d++) {
        VEC k0 = vloadu(kt + (size_t)d * ldk), k1 = vloadu(kt + (size_t)d * ldk + VL);
        const float *qd = qp + (size_t)d * ldq;
        UNROLL for (int r = 0; r < RT_S; r++) {
            VEC a = vset1(qd[r]);
            acc[r][0] = vfmadd(a, k0, acc[r][0]);
            acc[r][1] = vfmadd(a, k1, acc[r][1]);
        }
    }
    UNROLL for (int r = 0; r < RT_S; r++) {
        if (r >= rows) break;
        vstoreu(s + (size_t)r * lds, acc[r][0]);
        vstoreu(s + (size_t)r * lds + VL, acc[r][1]);
    }
}

/* O[r][d0 .. d0 + NV VL) += sum_j P[r][j] V[j][d0 ..] for `rows` rows, `nk` keys; `width` valid
 * columns of the chunk (the last vector masked). NV and ROWS are constants at each call site. */
AI void pv_chunk(const int NV, const int ROWS, int nk, const float *p, int ldp, const float *v, size_t ldv, float *o,
                 int ldo, int width) {
    VEC acc[RT_PV][NV_PV];
    VMASK last = vmask_first(width - (NV - 1) * VL);
    UNROLL for (int r = 0; r < ROWS; r++) UNROLL for (int c = 0; c < NV; c++) acc[r][c] = vloadu(o + (size_t)r * ldo + c * VL);
    for (int j = 0; j < nk; j++) {
        VEC vv[NV_PV];
        const float *vj = v + (size_t)j * ldv;
        UNROLL for (int c = 0; c < NV; c++) vv[c] = c == NV - 1 ? vload_mask(vj + c * VL, last) : vloadu(vj + c * VL);
        UNROLL for (int r = 0; r < ROWS; r++) {
            VEC a = vset1(p[(size_t)r * ldp + j]);
            UNROLL for (int c = 0; c < NV; c++) acc[r][c] = vfmadd(a, vv[c], acc[r][c]);
        }
    }
    UNROLL for (int r = 0; r < ROWS; r++) UNROLL for (int c = 0; c < NV; c++) vstoreu(o + (size_t)r * ldo + c * VL, acc[r][c]);
}

/* All RT_PV rows, or fewer (then one row at a time). */
AI void pv_rows(const int NV, int nk, const float *p, int ldp, const float *v, size_t ldv, float *o, int ldo, int rows,
                int width) {
    if (rows == RT_PV) {
        pv_chunk(NV, RT_PV, nk, p, ldp, v, ldv, o, ldo, width);
        return;
    }
    for (int r = 0; r < rows; r++) pv_chunk(NV, 1, nk, p + (size_t)r * ldp, ldp, v, ldv, o + (size_t)r * ldo, ldo, width);
}

static void pv_tile(int nk, const float *p, int ldp, const float *v, size_t ldv, float *o, int ldo, int rows, int hd) {
    for (int d0 = 0; d0 < hd; d0 += NV_PV * VL) {
        int width = hd - d0 < NV_PV * VL ? hd - d0 : NV_PV * VL;
        int nv = (width + VL - 1) / VL;
        /* a constant vector count per call, so the accumulators stay in registers */
        switch (nv) {
#if NV_PV >= 4
        case 4: pv_rows(4, nk, p, ldp, v + d0, ldv, o + d0, ldo, rows, width); break;
#endif
#if NV_PV >= 3
        case 3: pv_rows(3, nk, p, ldp, v + d0, ldv, o + d0, ldo, rows, width); break;
#endif
        case 2: pv_rows(2, nk, p, ldp, v + d0, ldv, o + d0, ldo, rows, width); break;
        default: pv_rows(1, nk, p, ldp, v + d0, ldv, o + d0, ldo, rows, width); break;
        }
    }
}

/* Online-softmax step for one row of S (nb keys in the block, nv of them valid for this row):
 * P replaces S in place (zeros past nv, up to nbp), O row and l rescaled. */
static void softmax_row(float *s, int nv, int nbp, float *m, float *l, float *o, int hdp) {
    if (nv <= 0) {
        memset(s, 0, sizeof(float) * (size_t)nbp);
        return;
    }
    VEC bm = vset1(-INFINITY);
    for (int j = 0; j < nv; j += VL) {
        int n = nv - j < VL ? nv - j : VL;
        bm = vmax(bm, vload_mask_fill(s + j, vmask_first(n), -INFINITY));
    }
    float bmax = vhmax(bm), mnew = bmax > *m ? bmax : *m;
    float corr = expf(*m - mnew); /* 0 on the first block (m = -inf) */
    VEC vm = vset1(mnew), sum = vzero();
    for (int j = 0; j < nbp; j += VL) {
        VEC e = vzero();
        if (j < nv) {
            VMASK mk = vmask_first(nv - j < VL ? nv - j : VL);
            e = vkeep(vexp(vsub(vload_mask(s + j, mk), vm)), mk);
        }
        vstoreu(s + j, e);
        sum = vadd(sum, e);
    }
    *l = *l * corr + vhsum(sum);
    *m = mnew;
    if (corr != 1.0f) {
        VEC vc = vset1(corr);
        for (int d = 0; d < hdp; d += VL) vstoreu(o + d, vmul(vloadu(o + d), vc));
    }
}

void ATTN_TASK_FN(const vlm_attn_task *t, float *scratch) {
    const vlm_attn_params *p = t->p;
    const int hd = p->head_dim, group = p->n_heads / p->n_kv_heads, R = group * t->nq, BK = VLM_ATT_BK;
    const int Rp = (R + RT_S - 1) / RT_S * RT_S, hdp = (hd + VL - 1) / VL * VL;
    float *qp = scratch, *kt = qp + (size_t)hd * Rp, *s = kt + (size_t)hd * BK, *o = s + (size_t)Rp * BK;
    float *m = o + (size_t)R * hdp, *l = m + R;
    const size_t kvs = (size_t)p->kv_stride;
    const float *kh_k = t->k + (size_t)t->kh * hd, *kh_v = t->v + (size_t)t->kh * hd;

    /* Q rows of the task, scaled, transposed to [head_dim][Rp] */
    for (int r = 0; r < Rp; r++) {
        if (r >= R) {
            for (int d = 0; d < hd; d++) qp[(size_t)d * Rp + r] = 0.0f;
            continue;
        }
        int g = r / t->nq, i = t->i0 + r % t->nq;
        const float *qr = t->q + (size_t)i * p->q_stride + (size_t)(t->kh * group + g) * hd;
        for (int d = 0; d < hd; d++) qp[(size_t)d * Rp + r] = qr[d] * p->scale;
    }
    memset(o, 0, sizeof(float) * (size_t)R * hdp);
    for (int r = 0; r < R; r++) m[r] = -INFINITY, l[r] = 0.0f;

    for (int j0 = t->lo; j0 < t->hi; j0 += BK) {
        int nb = t->hi - j0 < BK ? t->hi - j0 : BK, nbp = (nb + 2 * VL - 1) / (2 * VL) * (2 * VL);
        PACK_KT(kt, BK, kh_k + (size_t)j0 * kvs, kvs, nb, nbp, hd);
        for (int r0 = 0; r0 < R; r0 += RT_S)
            for (int jj = 0; jj < nbp; jj += 2 * VL)
                s_tile(hd, qp + r0, Rp, kt + jj, BK, s + (size_t)r0 * BK + jj, BK, R - r0 < RT_S ? R - r0 : RT_S);
        for (int r = 0; r < R; r++) {
            int nv = nb;
            if (p->causal) {
                int hi_r = p->q_pos0 + t->i0 + r % t->nq + 1;
                if (hi_r > p->n_kv) hi_r = p->n_kv;
                nv = hi_r - j0 < nb ? hi_r - j0 : nb;
            }
            softmax_row(s + (size_t)r * BK, nv, nbp, &m[r], &l[r], o + (size_t)r * hdp, hdp);
        }
        for (int r0 = 0; r0 < R; r0 += RT_PV)
            pv_tile(nb, s + (size_t)r0 * BK, BK, kh_v + (size_t)j0 * kvs, kvs, o + (size_t)r0 * hdp, hdp,
                    R - r0 < RT_PV ? R - r0 : RT_PV, hd);
    }

    if (t->partial) { /* one part of a split key range: unnormalized rows, max and sum */
        for (int r = 0; r < R; r++) {
            memcpy(t->partial + (size_t)r * (hd + 2), o + (size_t)r * hdp, sizeof(float) * (size_t)hd);
            t->partial[(size_t)r * (hd + 2) + hd] = m[r];
            t->partial[(size_t)r * (hd + 2) + hd + 1] = l[r];
        }
        return;
    }
    for (int r = 0; r < R; r++) {
        int g = r / t->nq, i = t->i0 + r % t->nq;
        float *dst = t->out + (size_t)i * p->out_stride + (size_t)(t->kh * group + g) * hd;
        float inv = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;
        for (int d = 0; d < hd; d++) dst[d] = o[(size_t)r * hdp + d] * inv;
    }
}
