/* The tiled (flash-style) attention of one task, written once for both SIMD widths: included by
 * attention_avx2.c and attention_avx512.c after they define the vector macros below.
 *
 * A task is a block of query rows that share a kv head (the heads of a GQA group stacked: row
 * r = g * nq + ii is query i0 + ii of head kh * group + g) and walks its key range in blocks of
 * ATT_BK keys. Per key block:
 *   KT = K_block^T (packed [head_dim][ATT_BK], zero-padded)
 *   S  = (scale Q) KT                       register tiles of RT_S rows x 2 vectors of keys
 *   online softmax per row: new max, rescale of O and l by exp(m_old - m_new), P = exp(S - m)
 *   O += P V_block                          V packed; register tiles of rows x vectors of head_dim
 * Memory is O(rows x (head_dim + ATT_BK)) whatever the sequence length; O, m and l stay f32.
 *
 * Expected macros: VEC, VL, VMASK, vzero, vset1, vloadu, vstoreu, vfmadd, vmul, vadd, vsub, vmax,
 * vexp, vhmax, vhsum, vmask_first(n), vload_mask(p, m) (0 where masked), vload_mask_fill(p, m, fill),
 * vkeep(v, m) (v where m, else 0), RT_S (rows of an S tile), PV_ACC (accumulator vectors of a PV
 * tile), PV_MAXV (most vectors of head_dim per PV pass), ATTN_TASK_FN (the function name),
 * PACK_KT(kt, ld, k, kv_stride, nb, nbp, hd), PACK_Q(dst, ld, q, q_stride, rows, hd) (dst[d * ld + i]
 * = q[i * q_stride + d] for i < rows). */
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

/* O[r][0 .. NV VL) += sum_j P[r][j] V[j][0 ..] for ROWS rows and `nk` keys, V packed (rows ldv
 * apart, zero-padded to whole vectors). NV and ROWS are constants at each call site. */
AI void pv_kernel(const int NV, const int ROWS, int nk, const float *p, int ldp, const float *v, int ldv, float *o,
                  int ldo) {
    VEC acc[PV_ACC][PV_MAXV > PV_ACC ? PV_MAXV : PV_ACC];
    UNROLL for (int r = 0; r < ROWS; r++) UNROLL for (int c = 0; c < NV; c++) acc[r][c] =
        vloadu(o + (size_t)r * ldo + c * VL);
    for (int j = 0; j < nk; j++) {
        VEC vv[PV_MAXV];
        const float *vj = v + (size_t)j * ldv;
        UNROLL for (int c = 0; c < NV; c++) vv[c] = vloadu(vj + c * VL);
        UNROLL for (int r = 0; r < ROWS; r++) {
            VEC a = vset1(p[(size_t)r * ldp + j]);
            UNROLL for (int c = 0; c < NV; c++) acc[r][c] = vfmadd(a, vv[c], acc[r][c]);
        }
    }
    UNROLL for (int r = 0; r < ROWS; r++) UNROLL for (int c = 0; c < NV; c++)
        vstoreu(o + (size_t)r * ldo + c * VL, acc[r][c]);
}

/* Rows as many at a time as the accumulators allow (PV_ACC vectors), the rest one by one. */
#define PV_ROWS(NV) ((PV_ACC / (NV)) < 12 ? (PV_ACC / (NV)) : 12)
AI void pv_rows(const int NV, int nk, const float *p, int ldp, const float *v, int ldv, float *o, int ldo, int rows) {
    int r = 0;
    for (; r + PV_ROWS(NV) <= rows; r += PV_ROWS(NV))
        pv_kernel(NV, PV_ROWS(NV), nk, p + (size_t)r * ldp, ldp, v, ldv, o + (size_t)r * ldo, ldo);
    for (; r < rows; r++) pv_kernel(NV, 1, nk, p + (size_t)r * ldp, ldp, v, ldv, o + (size_t)r * ldo, ldo);
}

/* O[rows][hdp] += P[rows][nk] V[nk][hdp] in passes of at most PV_MAXV vectors of columns. */
static void pv_tile(int nk, const float *p, int ldp, const float *v, int ldv, float *o, int ldo, int rows, int hdp) {
    for (int d0 = 0; d0 < hdp; d0 += PV_MAXV * VL) {
        int nv = (hdp - d0) / VL < PV_MAXV ? (hdp - d0) / VL : PV_MAXV;
        const float *vd = v + d0;
        float *od = o + d0;
        switch (nv) { /* a constant vector count per call, so the accumulators stay in registers */
#if PV_MAXV >= 8
        case 8: pv_rows(8, nk, p, ldp, vd, ldv, od, ldo, rows); break;
        case 7: pv_rows(7, nk, p, ldp, vd, ldv, od, ldo, rows); break;
        case 6: pv_rows(6, nk, p, ldp, vd, ldv, od, ldo, rows); break;
        case 5: pv_rows(5, nk, p, ldp, vd, ldv, od, ldo, rows); break;
#endif
        case 4: pv_rows(4, nk, p, ldp, vd, ldv, od, ldo, rows); break;
        case 3: pv_rows(3, nk, p, ldp, vd, ldv, od, ldo, rows); break;
        case 2: pv_rows(2, nk, p, ldp, vd, ldv, od, ldo, rows); break;
        default: pv_rows(1, nk, p, ldp, vd, ldv, od, ldo, rows); break;
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
    float *vb = o + (size_t)R * hdp, *m = vb + (size_t)BK * hdp, *l = m + R;
    float *kstage = l + R + 64; /* paged keys gathered into consecutive rows before packing */
    const size_t kvs = (size_t)p->kv_stride;
    const float *kh_k = t->k + (size_t)t->kh * hd, *kh_v = t->v + (size_t)t->kh * hd;

    /* Q rows of the task, scaled, transposed to [head_dim][Rp] (rows R.. Rp zero) */
    for (int g = 0; g < group; g++)
        PACK_Q(qp + g * t->nq, Rp, t->q + (size_t)t->i0 * p->q_stride + (size_t)(t->kh * group + g) * hd,
               (size_t)p->q_stride, t->nq, hd);
    for (int d = 0; d < hd; d++) {
        float *qd = qp + (size_t)d * Rp;
        int r = 0;
        for (; r + VL <= R; r += VL) vstoreu(qd + r, vmul(vloadu(qd + r), vset1(p->scale)));
        for (; r < R; r++) qd[r] *= p->scale;
        for (; r < Rp; r++) qd[r] = 0.0f;
    }
    memset(o, 0, sizeof(float) * (size_t)R * hdp);
    for (int r = 0; r < R; r++) m[r] = -INFINITY, l[r] = 0.0f;

    for (int j0 = t->lo; j0 < t->hi; j0 += BK) {
        int nb = t->hi - j0 < BK ? t->hi - j0 : BK, nbp = (nb + 2 * VL - 1) / (2 * VL) * (2 * VL);
        if (p->kv_blocks) {
            for (int j = 0; j < nb; j++)
                memcpy(kstage + (size_t)j * hd, kh_k + vlm_attn_kv_row(p, j0 + j) * kvs, sizeof(float) * (size_t)hd);
            PACK_KT(kt, BK, kstage, (size_t)hd, nb, nbp, hd);
        } else {
            PACK_KT(kt, BK, kh_k + (size_t)j0 * kvs, kvs, nb, nbp, hd);
        }
        for (int j = 0; j < nb; j++) { /* V rows contiguous and zero-padded: no cache-set conflicts */
            memcpy(vb + (size_t)j * hdp, kh_v + vlm_attn_kv_row(p, j0 + j) * kvs, sizeof(float) * (size_t)hd);
            for (int d = hd; d < hdp; d++) vb[(size_t)j * hdp + d] = 0.0f;
        }
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
        pv_tile(nb, s, BK, vb, hdp, o, hdp, R, hdp);
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
