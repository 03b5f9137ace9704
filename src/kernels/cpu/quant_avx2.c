/* AVX2 path of the quantized matrix product (see quant_kernels.h): one 32-weight activation block
 * at a time, maddubs / madd on |q_w| and q_x with q_w's sign (exact int16 pairs: 2 * 127 * 127
 * fits), one f32 fused multiply-add per block with the product of the two scales. */
#include <immintrin.h>
#include <string.h>

#include "kernels/cpu/hsum_avx2.h"
#include "kernels/cpu/quant_kernels.h"
#include "tensor/quant.h"

#define ALWAYS_INLINE inline __attribute__((always_inline))

static ALWAYS_INLINE int hsum8i(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

void vlm_qact_row_avx2(const float *x, int64_t K, int8_t *q, float *d, float *s) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (int64_t b = 0; b < K / VLM_QA_BLOCK; b++) {
        const float *xb = x + b * VLM_QA_BLOCK;
        __m256 v[4], bad = _mm256_setzero_ps(), mx = _mm256_setzero_ps();
        for (int i = 0; i < 4; i++) {
            v[i] = _mm256_loadu_ps(xb + 8 * i);
            __m256 z = _mm256_sub_ps(v[i], v[i]); /* NaN exactly where v is NaN or infinite */
            bad = _mm256_or_ps(bad, _mm256_cmp_ps(z, z, _CMP_UNORD_Q));
            mx = _mm256_max_ps(mx, _mm256_andnot_ps(sign, v[i]));
        }
        if (_mm256_movemask_ps(bad)) {
            memset(q + b * VLM_QA_BLOCK, 0, VLM_QA_BLOCK);
            d[b] = s[b] = __builtin_nanf("");
            continue;
        }
        float amax = vlm_hmax8(mx);
        __m256 id = _mm256_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(v[0], id)), i1 = _mm256_cvtps_epi32(_mm256_mul_ps(v[1], id));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(v[2], id)), i3 = _mm256_cvtps_epi32(_mm256_mul_ps(v[3], id));
        int sum = hsum8i(_mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3)));
        __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        _mm256_storeu_si256((__m256i *)(q + b * VLM_QA_BLOCK), _mm256_permutevar8x32_epi32(p, order));
        d[b] = amax / 127.0f;
        s[b] = d[b] * (float)sum;
    }
}

/* Σ w[j] a[j] over 32 int8 pairs as 8 int32 lanes. */
static ALWAYS_INLINE __m256i dot_i8(__m256i w, __m256i a) {
    __m256i p = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* Adds the block's product with every input row: acc[m] += d_w d_x[m] Σ w a[m]. */
static ALWAYS_INLINE void block_rows(__m256 *acc, __m256i w, float dw, const vlm_qact *a, int M, int64_t j) {
#pragma GCC unroll 8
    for (int m = 0; m < M; m++) {
        __m256i av = _mm256_loadu_si256((const __m256i *)(a->q + m * a->K + j * VLM_QA_BLOCK));
        __m256 sc = _mm256_set1_ps(dw * a->d[m * a->nb + j]);
        acc[m] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(dot_i8(w, av)), sc, acc[m]);
    }
}

/* pf: prefetch in software (vlm_cpu_streams() == 4), else the hardware prefetchers alone. */
static ALWAYS_INLINE void row_kernel(vlm_dtype t, const vlm_qact *a, const int M, const int pf, const uint8_t *row,
                                     float *y, int64_t ldy) {
    const __m256i m0f = _mm256_set1_epi8(0x0f);
    __m256 acc[VLM_QTILE_AVX2];
#pragma GCC unroll 8
    for (int m = 0; m < M; m++) acc[m] = _mm256_setzero_ps();
    if (t == VLM_DT_Q4_0) {
        for (int64_t j = 0; j < a->nb; j++) {
            const uint8_t *b = row + 18 * j;
            if (pf) _mm_prefetch((const char *)b + VLM_QPREFETCH, _MM_HINT_T0);
            __m128i x = _mm_loadu_si128((const __m128i *)(b + 2));
            __m256i w = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(x, 4), x), m0f);
            block_rows(acc, _mm256_sub_epi8(w, _mm256_set1_epi8(8)), vlm_quant_block_scale(b), a, M, j);
        }
    } else if (t == VLM_DT_Q8_0) {
        for (int64_t j = 0; j < a->nb; j++) {
            const uint8_t *b = row + 34 * j;
            if (pf) _mm_prefetch((const char *)b + VLM_QPREFETCH, _MM_HINT_T0);
            block_rows(acc, _mm256_loadu_si256((const __m256i *)(b + 2)), vlm_quant_block_scale(b), a, M, j);
        }
    } else { /* NF4: one 64-weight block feeds two activation blocks */
        const __m256i lut = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)vlm_nf4_i8));
        for (int64_t j = 0; j < a->nb; j += 2) {
            const uint8_t *b = row + 34 * (j / 2);
            if (pf) _mm_prefetch((const char *)b + VLM_QPREFETCH, _MM_HINT_T0);
            __m256i x = _mm256_loadu_si256((const __m256i *)(b + 2));
            float dw = vlm_quant_block_scale(b) * (1.0f / 127.0f);
            block_rows(acc, _mm256_shuffle_epi8(lut, _mm256_and_si256(x, m0f)), dw, a, M, j);
            block_rows(acc, _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(x, 4), m0f)), dw, a, M, j + 1);
        }
    }
#pragma GCC unroll 8
    for (int m = 0; m < M; m++) y[m * ldy] = vlm_hsum8(acc[m]);
}

/* Decode where vlm_cpu_streams() == 4: rows from 4 distant places in turn, 4 memory streams in
 * flight (see vlm_cpu_streams). */
enum { STREAMS = 4 };
#define ROWS_M(MM)                                                                                                     \
    case MM:                                                                                                           \
        if (pf && MM == 1 && n1 - n0 >= 4 * STREAMS) {                                                                 \
            int64_t len = (n1 - n0) / STREAMS;                                                                         \
            for (int64_t i = 0; i < len; i++)                                                                          \
                for (int s = 0; s < STREAMS; s++)                                                                      \
                    row_kernel(t, a, 1, 1, w + (size_t)(n0 + s * len + i) * rb, y + n0 + s * len + i, ldy);            \
            n0 += STREAMS * len;                                                                                       \
        }                                                                                                              \
        for (int64_t n = n0; n < n1; n++) row_kernel(t, a, MM, pf, w + (size_t)n * rb, y + n, ldy);                    \
        break;

void vlm_qrows_avx2(vlm_dtype t, const vlm_qact *a, int M, const uint8_t *w, size_t rb, int64_t n0, int64_t n1,
                    float *y, int64_t ldy) {
    const int pf = vlm_cpu_streams() > 1;
    switch (M) {
        ROWS_M(1)
        ROWS_M(2)
        ROWS_M(3)
        ROWS_M(4)
    default: vlm_qrows_scalar(t, a, M, w, rb, n0, n1, y, ldy); break;
    }
}
