/* GEMM pieces with AVX512-BF16 for the bf16 precision (activations rounded to bf16, BF16 weights):
 * the blocked driver of matmul_cpu.c with a 14 x 32 register tile whose step is vdpbf16ps, which
 * multiplies pairs of bf16 numbers exactly and adds both products into an f32 lane: 32 products
 * per instruction against an FMA's 16, so twice the f32 kernel's arithmetic per cycle (on CPUs
 * without AMX, e.g. AMD Zen 4).
 *
 * Packed layouts, in 32-bit words (one pair of consecutive k of one row = what vdpbf16ps pairs):
 *   weights      bp[p * 32 + j] = (w[j][k0 + 2p], w[j][k0 + 2p + 1])   for 32 columns j
 *   activations  ap[p * MR + i] = (x[i][k0 + 2p], x[i][k0 + 2p + 1])   rounded to nearest even
 * so a packed panel is half the size of the f32 one (the driver's buffers are large enough). A
 * weight row's words are already pairs: packing is a 16 x 16 word transpose, no conversion. An odd
 * k block ends with a pair whose second half is zero. */
#include <immintrin.h>

#include "kernels/cpu/cpu_simd.h"
#include "kernels/cpu/transpose_avx512.h"

#define UNROLL _Pragma("GCC unroll 32")

enum { MR = 14, NR = 32 };

/* 16 rows (rows valid) x 32 k (kn valid) of bf16 rows as words, transposed into dst[p * ld + i]
 * for the pairs p < (kn + 1) / 2 and lanes i in smask. */
static void pack_words16(const uint16_t *const *row, int rows, int kn, uint32_t *dst, int ld, __mmask16 smask) {
    __mmask32 m = kn >= 32 ? 0xffffffffu : (__mmask32)((1u << kn) - 1u);
    __m512 r[16];
    UNROLL for (int i = 0; i < 16; i++) r[i] =
        i < rows ? _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(m, row[i])) : _mm512_setzero_ps();
    vlm_transpose16(r);
    int np = (kn + 1) / 2;
    UNROLL for (int p = 0; p < 16; p++) if (p < np) _mm512_mask_storeu_ps((float *)(dst + (size_t)p * ld), smask, r[p]);
}

static void pack_w(vlm_dtype dt, const void *w, size_t row_bytes, int rows, int64_t k0, int kc, float *bp) {
    uint32_t *dst = (uint32_t *)bp;
    for (int k = 0; k < kc; k += 32) {
        int kn = kc - k < 32 ? kc - k : 32;
        for (int h = 0; h < 2; h++) {
            const uint16_t *row[16];
            int hr = rows - 16 * h;
            for (int i = 0; i < 16; i++)
                row[i] = (const uint16_t *)((const char *)w + (size_t)(16 * h + i) * row_bytes) + k0 + k;
            pack_words16(row, hr < 0 ? 0 : hr > 16 ? 16 : hr, kn, dst + (size_t)(k / 2) * NR + 16 * h, NR, 0xffff);
        }
    }
}

/* x rows (f32) to bf16, 32 k at a time, into 16 rows of words, then transposed (14 lanes kept). */
static void pack_x(const float *x, int64_t ldx, int rows, int64_t k0, int kc, float *ap) {
    uint32_t *dst = (uint32_t *)ap;
    uint16_t tmp[16][32] __attribute__((aligned(64)));
    for (int k = 0; k < kc; k += 32) {
        int kn = kc - k < 32 ? kc - k : 32;
        __mmask16 m0 = kn >= 16 ? 0xffff : (__mmask16)((1u << kn) - 1u);
        __mmask16 m1 = kn >= 32 ? 0xffff : kn > 16 ? (__mmask16)((1u << (kn - 16)) - 1u) : 0;
        const uint16_t *row[16];
        for (int i = 0; i < 16; i++) {
            __m512 v0 = _mm512_setzero_ps(), v1 = _mm512_setzero_ps();
            if (i < rows) {
                const float *xr = x + (size_t)i * (size_t)ldx + k0 + k;
                v0 = _mm512_maskz_loadu_ps(m0, xr);
                v1 = _mm512_maskz_loadu_ps(m1, xr + 16);
            }
            _mm512_store_si512(tmp[i], (__m512i)_mm512_cvtne2ps_pbh(v1, v0)); /* k 0..15 from v0 */
            row[i] = tmp[i];
        }
        pack_words16(row, 16, kn, dst + (size_t)(k / 2) * MR, MR, (__mmask16)((1u << MR) - 1u));
    }
}

static void kernel(int kc, const float *ap, const float *bp, float *c, int64_t ldc, int rows, int cols, int accumulate,
                   const float *bias) {
    __m512 acc[MR][2];
    UNROLL for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    const int32_t *a = (const int32_t *)ap;
    const int np = (kc + 1) / 2;
    for (int p = 0; p < np; p++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(bp), b1 = (__m512bh)_mm512_load_si512(bp + 16);
        UNROLL for (int i = 0; i < MR; i++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32(a[i]);
            acc[i][0] = _mm512_dpbf16_ps(acc[i][0], av, b0);
            acc[i][1] = _mm512_dpbf16_ps(acc[i][1], av, b1);
        }
        a += MR;
        bp += NR;
    }
    __mmask16 m0 = cols >= 16 ? 0xffff : (__mmask16)((1u << cols) - 1u);
    __mmask16 m1 = cols >= 32 ? 0xffff : cols > 16 ? (__mmask16)((1u << (cols - 16)) - 1u) : 0;
    __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : _mm512_setzero_ps();
    __m512 bias1 = bias ? _mm512_maskz_loadu_ps(m1, bias + 16) : _mm512_setzero_ps();
    UNROLL for (int i = 0; i < MR; i++) {
        if (i >= rows) break;
        float *ci = c + (size_t)i * ldc;
        __m512 v0 = acc[i][0], v1 = acc[i][1];
        if (accumulate) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, ci));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, ci + 16));
        } else {
            v0 = _mm512_add_ps(v0, bias0);
            v1 = _mm512_add_ps(v1, bias1);
        }
        _mm512_mask_storeu_ps(ci, m0, v0);
        _mm512_mask_storeu_ps(ci + 16, m1, v1);
    }
}

const vlm_gemm_isa vlm_gemm_avx512_bf16 = {.mr = MR, .nr = NR, .pack_w = pack_w, .pack_x = pack_x, .kernel = kernel};
