/* AVX-512 VNNI path of the quantized matrix product (see quant_kernels.h). Compiled with AVX-512
 * flags: call only after vlm_cpu_has_avx512() and vlm_cpu()->avx512_vnni.
 *
 * The unit of work is 64 weights = two activation blocks, unpacked into one register of unsigned
 * bytes in element order (weight level + offset), multiplied with the 64 activation bytes by one
 * vpdpbusd: int32 lanes 0-7 then belong to the first activation block, 8-15 to the second.
 * Scales come 16 activation blocks at a time (one gather of the f16 weight scales, times the
 * activation scales); a permute spreads the unit's two scales over its lanes. The offset is taken
 * out once per 16 blocks: Σ_b d_w d_x Σ_j (q_w + o) q_x = ... + o Σ_b d_w (d_x Σ_j q_x). */
#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/quant_kernels.h"
#include "tensor/quant.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

void vlm_qact_row_avx512(const float *x, int64_t K, int8_t *q, float *d, float *s) {
    for (int64_t b = 0; b < K / VLM_QA_BLOCK; b++) {
        const float *xb = x + b * VLM_QA_BLOCK;
        __m512 x0 = _mm512_loadu_ps(xb), x1 = _mm512_loadu_ps(xb + 16);
        /* 0x99: quiet NaN, signalling NaN, +Inf, -Inf */
        if (_mm512_fpclass_ps_mask(x0, 0x99) | _mm512_fpclass_ps_mask(x1, 0x99)) {
            memset(q + b * VLM_QA_BLOCK, 0, VLM_QA_BLOCK);
            d[b] = s[b] = __builtin_nanf("");
            continue;
        }
        float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(x0), _mm512_abs_ps(x1)));
        __m512 id = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        __m512i i0 = _mm512_cvtps_epi32(_mm512_mul_ps(x0, id)), i1 = _mm512_cvtps_epi32(_mm512_mul_ps(x1, id));
        int sum = _mm512_reduce_add_epi32(_mm512_add_epi32(i0, i1));
        _mm_storeu_si128((__m128i *)(q + b * VLM_QA_BLOCK), _mm512_cvtsepi32_epi8(i0));
        _mm_storeu_si128((__m128i *)(q + b * VLM_QA_BLOCK + 16), _mm512_cvtsepi32_epi8(i1));
        d[b] = amax / 127.0f;
        s[b] = d[b] * (float)sum;
    }
}

/* Per-format constants. */
typedef struct {
    __m512i m0f, sh, lut, x80;
} consts;

static ALWAYS_INLINE consts make_consts(vlm_dtype t) {
    consts c;
    c.m0f = _mm512_set1_epi8(0x0f);
    c.x80 = _mm512_set1_epi8((char)0x80);
    /* per-16-bit-lane shift: Q4_0 high nibbles in 128-bit lanes 1 and 3, NF4 in the upper half */
    c.sh = t == VLM_DT_Q4_0 ? _mm512_setr_epi64(0, 0, 0x0004000400040004ll, 0x0004000400040004ll, 0, 0,
                                                0x0004000400040004ll, 0x0004000400040004ll)
                            : _mm512_setr_epi64(0, 0, 0, 0, 0x0004000400040004ll, 0x0004000400040004ll,
                                                0x0004000400040004ll, 0x0004000400040004ll);
    __m128i l = _mm_add_epi8(_mm_loadu_si128((const __m128i *)vlm_nf4_i8), _mm_set1_epi8((char)0x80));
    c.lut = _mm512_broadcast_i32x4(l);
    return c;
}

static ALWAYS_INLINE int offset_of(vlm_dtype t) { return t == VLM_DT_Q4_0 ? 8 : 128; }

/* Unit u (weights 64u .. 64u + 63) of a row as unsigned bytes (level + offset), in element order. */
static ALWAYS_INLINE __m512i unpack_unit(vlm_dtype t, const uint8_t *row, int64_t u, const consts *c) {
    if (t == VLM_DT_Q8_0) {
        const uint8_t *b = row + 68 * u;
        __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(b + 2))),
                                       _mm256_loadu_si256((const __m256i *)(b + 36)), 1);
        return _mm512_xor_si512(w, c->x80);
    }
    if (t == VLM_DT_Q4_0) { /* [q0 | q0 | q1 | q1] >> [0, 4, 0, 4]: low, high nibbles of each block */
        const uint8_t *b = row + 36 * u;
        __m512i w = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(b + 2)));
        w = _mm512_mask_broadcast_i32x4(w, 0xff00, _mm_loadu_si128((const __m128i *)(b + 20)));
        return _mm512_and_si512(_mm512_srlv_epi16(w, c->sh), c->m0f);
    }
    const uint8_t *b = row + 34 * u; /* NF4: [qs | qs] >> [0, 4], then the code book */
    __m512i w = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(b + 2)));
    return _mm512_shuffle_epi8(c->lut, _mm512_and_si512(_mm512_srlv_epi16(w, c->sh), c->m0f));
}

/* The last activation block j of a row with an odd block count (Q8_0 / Q4_0): the low 256 bits hold
 * it; the high half is multiplied by zero activation bytes. */
static ALWAYS_INLINE __m512i unpack_last(vlm_dtype t, const uint8_t *row, int64_t j, const consts *c) {
    if (t == VLM_DT_Q8_0)
        return _mm512_xor_si512(_mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(row + 34 * j + 2))),
                                c->x80);
    __m512i w = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(row + 18 * j + 2)));
    return _mm512_and_si512(_mm512_srlv_epi16(w, c->sh), c->m0f);
}

/* The f32 weight scale of each of the 16 activation blocks j0 .. j0 + 15 (lanes past cnt: 0). */
static ALWAYS_INLINE __m512 weight_scales(vlm_dtype t, const uint8_t *row, int64_t j0, int cnt) {
    if (t == VLM_DT_NF4) { /* 8 weight blocks, each scale twice; levels are 127 * code */
        const __m256i idx = _mm256_setr_epi32(0, 34, 68, 102, 136, 170, 204, 238);
        const uint8_t *base = row + 34 * (j0 / 2);
        __m256i g = cnt == 16
            ? _mm256_i32gather_epi32((const int *)base, idx, 1)
            : _mm256_mmask_i32gather_epi32(_mm256_setzero_si256(), (__mmask8)((1u << (cnt / 2)) - 1), idx, base, 1);
        __m512 w8 = _mm512_castps256_ps512(_mm256_cvtph_ps(_mm256_cvtepi32_epi16(g)));
        const __m512i dup = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
        return _mm512_mul_ps(_mm512_permutexvar_ps(dup, w8), _mm512_set1_ps(1.0f / 127.0f));
    }
    const int bs = t == VLM_DT_Q4_0 ? 18 : 34;
    const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                           _mm512_set1_epi32(bs));
    const uint8_t *base = row + (int64_t)bs * j0;
    __m512i g = cnt == 16
        ? _mm512_i32gather_epi32(idx, base, 1)
        : _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), (__mmask16)((1u << cnt) - 1), idx, base, 1);
    return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(g));
}

/* Lanes of unit u of a group: activation block 2u in lanes 0-7, 2u + 1 in lanes 8-15. */
static ALWAYS_INLINE __m512i unit_lanes(int u) {
    return _mm512_setr_epi32(2 * u, 2 * u, 2 * u, 2 * u, 2 * u, 2 * u, 2 * u, 2 * u, 2 * u + 1, 2 * u + 1, 2 * u + 1,
                             2 * u + 1, 2 * u + 1, 2 * u + 1, 2 * u + 1, 2 * u + 1);
}

/* acc[m] += the products of 64 weights (w, unpacked) with input row m's activations at byte q0. */
static ALWAYS_INLINE void unit_rows(__m512i w, const vlm_qact *a, const int M, int64_t q0, __m512i lanes,
                                    const __m512 *sc, __m512 *acc) {
#pragma GCC unroll 8
    for (int m = 0; m < M; m++) {
        __m512i av = _mm512_loadu_si512(a->q + m * a->K + q0);
        __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, av);
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(lanes, sc[m]), acc[m]);
    }
}

/* The group's scales: sc[m] = d_w d_x per activation block; the offset's share leaves acc. */
static ALWAYS_INLINE void group_scales(vlm_dtype t, const vlm_qact *a, const int M, const uint8_t *row, int64_t j0,
                                       int cnt, __m512 *sc, __m512 *acc) {
    __m512 dw = weight_scales(t, row, j0, cnt), dwo = _mm512_mul_ps(dw, _mm512_set1_ps((float)offset_of(t)));
    __mmask16 k = (__mmask16)((1u << cnt) - 1);
#pragma GCC unroll 8
    for (int m = 0; m < M; m++) {
        const float *d = a->d + m * a->nb + j0, *s = a->s + m * a->nb + j0;
        __m512 dv = cnt == 16 ? _mm512_loadu_ps(d) : _mm512_maskz_loadu_ps(k, d);
        __m512 sv = cnt == 16 ? _mm512_loadu_ps(s) : _mm512_maskz_loadu_ps(k, s);
        sc[m] = _mm512_mul_ps(dw, dv);
        acc[m] = _mm512_fnmadd_ps(dwo, sv, acc[m]);
    }
}

/* pf: prefetch in software (vlm_cpu_streams() == 4), else the hardware prefetchers alone. */
static ALWAYS_INLINE void row_kernel(vlm_dtype t, const vlm_qact *a, const int M, int pf, const uint8_t *row, float *y,
                                     int64_t ldy, const consts *c) {
    /* two chains per row (the FMA latency hidden when rows are few), for every M: a row's sum runs
     * in the same order whatever the rows beside it (batch invariance) */
    __m512 acc0[VLM_QTILE_AVX512], acc1[VLM_QTILE_AVX512], sc[VLM_QTILE_AVX512];
    __m512 *accb = acc1;
#pragma GCC unroll 8
    for (int m = 0; m < M; m++) acc0[m] = acc1[m] = _mm512_setzero_ps();
    int64_t full = a->nb / 16 * 16;
    const int gb = t == VLM_DT_Q8_0 ? 16 * 34 : t == VLM_DT_Q4_0 ? 16 * 18 : 8 * 34; /* bytes per group */
    for (int64_t j0 = 0; j0 < full; j0 += 16) {
        for (int l = 0; pf && l < gb; l += 64)
            _mm_prefetch((const char *)row + (j0 / 16) * gb + VLM_QPREFETCH + l, _MM_HINT_T0);
        group_scales(t, a, M, row, j0, 16, sc, acc0);
#pragma GCC unroll 8
        for (int u = 0; u < 8; u += 2) {
            unit_rows(unpack_unit(t, row, j0 / 2 + u, c), a, M, (j0 + 2 * u) * VLM_QA_BLOCK, unit_lanes(u), sc, acc0);
            unit_rows(unpack_unit(t, row, j0 / 2 + u + 1, c), a, M, (j0 + 2 * u + 2) * VLM_QA_BLOCK, unit_lanes(u + 1),
                      sc, accb);
        }
    }
    if (full < a->nb) { /* a last, partial group */
        int cnt = (int)(a->nb - full);
        group_scales(t, a, M, row, full, cnt, sc, acc0);
        for (int u = 0; u < cnt / 2; u++)
            unit_rows(unpack_unit(t, row, full / 2 + u, c), a, M, (full + 2 * u) * VLM_QA_BLOCK, unit_lanes(u), sc,
                      acc0);
        if (cnt & 1) { /* and an odd last block: zero activation bytes in the upper half */
            int64_t j = a->nb - 1;
            __m512i w = unpack_last(t, row, j, c), lanes = unit_lanes(cnt / 2);
#pragma GCC unroll 8
            for (int m = 0; m < M; m++) {
                __m512i av = _mm512_maskz_loadu_epi8(0xffffffffull, a->q + m * a->K + j * VLM_QA_BLOCK);
                __m512i dot = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, av);
                acc0[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(dot), _mm512_permutexvar_ps(lanes, sc[m]), acc0[m]);
            }
        }
    }
#pragma GCC unroll 8
    for (int m = 0; m < M; m++) y[m * ldy] = _mm512_reduce_add_ps(_mm512_add_ps(acc0[m], acc1[m]));
}

/* Decode (one input row) where vlm_cpu_streams() == 4: rows from 4 distant places of the matrix in
 * turn, so that 4 memory streams are in flight (see vlm_cpu_streams); the rows left over one by one. */
enum { STREAMS = 4 };
#define ROWS_M(T, MM)                                                                                                  \
    case MM:                                                                                                           \
        if (pf && MM == 1 && n1 - n0 >= 4 * STREAMS) {                                                                 \
            int64_t len = (n1 - n0) / STREAMS;                                                                         \
            for (int64_t i = 0; i < len; i++)                                                                          \
                for (int s = 0; s < STREAMS; s++)                                                                      \
                    row_kernel(T, a, 1, 1, w + (size_t)(n0 + s * len + i) * rb, y + n0 + s * len + i, ldy, &c);        \
            n0 += STREAMS * len;                                                                                       \
        }                                                                                                              \
        for (int64_t n = n0; n < n1; n++) row_kernel(T, a, MM, pf, w + (size_t)n * rb, y + n, ldy, &c);                \
        break;

#define ROWS_T(T)                                                                                                      \
    do {                                                                                                               \
        consts c = make_consts(T);                                                                                     \
        const int pf = vlm_cpu_streams() > 1;                                                                          \
        switch (M) {                                                                                                   \
            ROWS_M(T, 1)                                                                                               \
            ROWS_M(T, 2)                                                                                               \
            ROWS_M(T, 3)                                                                                               \
            ROWS_M(T, 4)                                                                                               \
            ROWS_M(T, 5)                                                                                               \
            ROWS_M(T, 6)                                                                                               \
            ROWS_M(T, 7)                                                                                               \
            ROWS_M(T, 8)                                                                                               \
        default: vlm_qrows_scalar(T, a, M, w, rb, n0, n1, y, ldy); break;                                              \
        }                                                                                                              \
    } while (0)

void vlm_qrows_avx512(vlm_dtype t, const vlm_qact *a, int M, const uint8_t *w, size_t rb, int64_t n0, int64_t n1,
                      float *y, int64_t ldy) {
    switch (t) {
    case VLM_DT_Q4_0: ROWS_T(VLM_DT_Q4_0); break;
    case VLM_DT_Q8_0: ROWS_T(VLM_DT_Q8_0); break;
    case VLM_DT_NF4: ROWS_T(VLM_DT_NF4); break;
    default: vlm_qrows_scalar(t, a, M, w, rb, n0, n1, y, ldy); break;
    }
}
