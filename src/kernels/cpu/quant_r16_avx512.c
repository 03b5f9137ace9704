/* AVX-512 VNNI kernel for the interleaved weight layouts Q4_0_R16 / Q8_0_R16 (tensor/quant.h).
 * Compiled with AVX-512 flags: call only after vlm_cpu_has_avx512() and vlm_cpu()->avx512_vnni.
 *
 * A group of 16 blocks is one vector of 16 int32 lanes, one per block: each 64-byte load holds 4
 * weight bytes of every block, the activations are interleaved the same way (vlm_qact_interleave),
 * and vpdpbusd adds 4 products into each block's lane. After the group's 4 (Q4_0: low and high
 * nibbles) or 8 (Q8_0) steps the lanes hold the 16 block dots: one conversion and one multiply-add
 * with the 16 scale products finish the group. Weights enter as unsigned bytes with an offset
 * (nibble: 8, q + 128: 128) removed per block with the activation sums, as in quant_avx512.c. */
#include <immintrin.h>

#include "kernels/cpu/quant_kernels.h"
#include "tensor/quant.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* 16 x 4 bytes, or the first G dword lanes (zero beyond) of a partial group. */
static ALWAYS_INLINE __m512i load_lanes(const void *p, const int full, __mmask16 k) {
    return full ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi32(k, p);
}

static ALWAYS_INLINE __m512 load_f32(const float *p, const int full, __mmask16 k) {
    return full ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(k, p);
}

/* One group of G blocks (G = 16 when full) starting at block g0; adds its products to acc[m]. */
/* ni: int32 accumulators per row. With few independent rows several, so that no chain of
 * dependent vpdpbusd grows long (latency 5); with more rows the rows are the independent chains. */
enum { NI_MAX = 4 };
#define NI_FOR(M) ((M) == 1 ? 4 : (M) == 2 ? 2 : 1)

static ALWAYS_INLINE void group(const vlm_dtype t, const vlm_qact *a, const int M, const uint8_t *grp, int64_t g0,
                                const int G, const int full, __m512 *acc, const int ni) {
    __mmask16 k = (__mmask16)((1u << G) - 1);
    __m256i hs = full ? _mm256_loadu_si256((const __m256i *)grp) : _mm256_maskz_loadu_epi16(k, grp);
    __m512 dw = _mm512_cvtph_ps(hs);
    __m512 dwo = _mm512_mul_ps(dw, _mm512_set1_ps(t == VLM_DT_Q4_0_R16 ? 8.0f : 128.0f));
    __m512 sc[VLM_QTILE_AVX512];
    __m512i acci[VLM_QTILE_AVX512][NI_MAX];
#pragma GCC unroll 8
    for (int m = 0; m < M; m++) {
        sc[m] = _mm512_mul_ps(dw, load_f32(a->d + m * a->nb + g0, full, k));
        acc[m] = _mm512_fnmadd_ps(dwo, load_f32(a->s + m * a->nb + g0, full, k), acc[m]);
        for (int c = 0; c < ni; c++) acci[m][c] = _mm512_setzero_si512();
    }
    const uint8_t *q = grp + 2 * G;
    const int8_t *at = a->qt + g0 * VLM_QA_BLOCK;
    if (t == VLM_DT_Q4_0_R16) {
        const __m512i m0f = _mm512_set1_epi8(0x0f);
#pragma GCC unroll 4
        for (int s = 0; s < 4; s++) {
            __m512i v = load_lanes(q + 4 * G * s, full, k);
            __m512i lo = _mm512_and_si512(v, m0f), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), m0f);
#pragma GCC unroll 8
            for (int m = 0; m < M; m++) {
                const int8_t *am = at + m * a->K;
                __m512i *ai = acci[m];
                ai[(2 * s) % ni] = _mm512_dpbusd_epi32(ai[(2 * s) % ni], lo, load_lanes(am + 4 * G * s, full, k));
                ai[(2 * s + 1) % ni] =
                    _mm512_dpbusd_epi32(ai[(2 * s + 1) % ni], hi, load_lanes(am + 4 * G * (s + 4), full, k));
            }
        }
    } else {
        const __m512i x80 = _mm512_set1_epi8((char)0x80);
#pragma GCC unroll 8
        for (int s = 0; s < 8; s++) {
            __m512i v = _mm512_xor_si512(load_lanes(q + 4 * G * s, full, k), x80);
#pragma GCC unroll 8
            for (int m = 0; m < M; m++) {
                __m512i *ai = acci[m];
                ai[s % ni] = _mm512_dpbusd_epi32(ai[s % ni], v, load_lanes(at + m * a->K + 4 * G * s, full, k));
            }
        }
    }
#pragma GCC unroll 8
    for (int m = 0; m < M; m++) {
        __m512i sum = acci[m][0];
        for (int c = 1; c < ni; c++) sum = _mm512_add_epi32(sum, acci[m][c]);
        acc[m] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), sc[m], acc[m]);
    }
}

/* The weights VLM_QPREFETCH bytes past this group (a hint; never faults). */
static ALWAYS_INLINE void prefetch_group(const uint8_t *grp, const int bs) {
    for (int l = 0; l < 16 * bs; l += 64) _mm_prefetch((const char *)grp + VLM_QPREFETCH + l, _MM_HINT_T0);
}

/* pf: prefetch in software (vlm_cpu_streams() == 4), else the hardware prefetchers alone. */
static ALWAYS_INLINE void row_kernel(const vlm_dtype t, const vlm_qact *a, const int M, int pf, const uint8_t *row,
                                     float *y, int64_t ldy) {
    const int bs = t == VLM_DT_Q4_0_R16 ? 18 : 34;
    __m512 acc[VLM_QTILE_AVX512];
#pragma GCC unroll 8
    for (int m = 0; m < M; m++) acc[m] = _mm512_setzero_ps();
    int64_t full = a->nb / 16 * 16;
    for (int64_t g0 = 0; g0 < full; g0 += 16) {
        if (pf) prefetch_group(row + bs * g0, bs);
        group(t, a, M, row + bs * g0, g0, 16, 1, acc, NI_FOR(M));
    }
    if (full < a->nb) group(t, a, M, row + bs * full, full, (int)(a->nb - full), 0, acc, NI_FOR(M));
#pragma GCC unroll 8
    for (int m = 0; m < M; m++) y[m * ldy] = _mm512_reduce_add_ps(acc[m]);
}

/* Decode (one input row) where vlm_cpu_streams() == 4: S weight rows from S distant places of the
 * matrix go through the loop side by side, so that S sequential streams are in flight at once (on
 * the Xeon one stream per core stopped at about 14 GB/s, against 18-20 with 4 to 8 streams). */
enum { STREAMS = 4 };

static ALWAYS_INLINE void rows_lockstep(const vlm_dtype t, const vlm_qact *a, const uint8_t *w, size_t rb, int64_t n0,
                                        int64_t len, float *y) {
    const int bs = t == VLM_DT_Q4_0_R16 ? 18 : 34;
    int64_t full = a->nb / 16 * 16;
    for (int64_t i = 0; i < len; i++) {
        const uint8_t *row[STREAMS];
        __m512 acc[STREAMS];
#pragma GCC unroll 8
        for (int s = 0; s < STREAMS; s++) {
            row[s] = w + (size_t)(n0 + s * len + i) * rb;
            acc[s] = _mm512_setzero_ps();
        }
        for (int64_t g0 = 0; g0 < full; g0 += 16) {
#pragma GCC unroll 8
            for (int s = 0; s < STREAMS; s++) {
                prefetch_group(row[s] + bs * g0, bs);
                group(t, a, 1, row[s] + bs * g0, g0, 16, 1, &acc[s], 1);
            }
        }
#pragma GCC unroll 8
        for (int s = 0; s < STREAMS; s++) {
            if (full < a->nb) group(t, a, 1, row[s] + bs * full, full, (int)(a->nb - full), 0, &acc[s], 1);
            y[n0 + s * len + i] = _mm512_reduce_add_ps(acc[s]);
        }
    }
}

#define ROWS_M(T, MM)                                                                                                  \
    case MM:                                                                                                           \
        for (int64_t n = n0; n < n1; n++) row_kernel(T, a, MM, pf, w + (size_t)n * rb, y + n, ldy);                    \
        break;

#define ROWS_T(T)                                                                                                      \
    switch (M) {                                                                                                       \
        ROWS_M(T, 1)                                                                                                   \
        ROWS_M(T, 2)                                                                                                   \
        ROWS_M(T, 3)                                                                                                   \
        ROWS_M(T, 4)                                                                                                   \
        ROWS_M(T, 5)                                                                                                   \
        ROWS_M(T, 6)                                                                                                   \
        ROWS_M(T, 7)                                                                                                   \
        ROWS_M(T, 8)                                                                                                   \
    default: vlm_qrows_scalar(T, a, M, w, rb, n0, n1, y, ldy); break;                                                  \
    }

void vlm_qrows_r16_avx512(vlm_dtype t, const vlm_qact *a, int M, const uint8_t *w, size_t rb, int64_t n0, int64_t n1,
                          float *y, int64_t ldy) {
    const int pf = vlm_cpu_streams() > 1;
    if (pf && M == 1 && n1 - n0 >= 4 * STREAMS) { /* rows in lockstep, the few left over one by one */
        int64_t len = (n1 - n0) / STREAMS;
        if (t == VLM_DT_Q4_0_R16) rows_lockstep(VLM_DT_Q4_0_R16, a, w, rb, n0, len, y);
        else rows_lockstep(VLM_DT_Q8_0_R16, a, w, rb, n0, len, y);
        n0 += STREAMS * len;
    }
    if (t == VLM_DT_Q4_0_R16) ROWS_T(VLM_DT_Q4_0_R16)
    else if (t == VLM_DT_Q8_0_R16) ROWS_T(VLM_DT_Q8_0_R16)
    else vlm_qrows_scalar(t, a, M, w, rb, n0, n1, y, ldy);
}
