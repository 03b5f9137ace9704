/* GEMM pieces with AVX-512: packing (weights converted to f32 on the way) and the 14 x 32
 * register-tile micro-kernel. The driver (gemm_cpu.c) blocks the product so that a packed weight
 * micro-panel (KC x 32 floats) stays in L1 and a packed activation block in L2.
 *
 * Both operands are stored with K contiguous ([rows, K]), so both need a transpose into the
 * k-major layout the kernel streams; it is done 16 x 16 in registers (4 shuffle stages). */
#include <immintrin.h>

#include "kernels/cpu/cpu_simd.h"
#include "kernels/cpu/transpose_avx512.h"

#define UNROLL _Pragma("GCC unroll 32")

enum { MR = 14, NR = 32 };

static void pack_w(vlm_dtype dt, const void *w, size_t row_bytes, int rows, int64_t k0, int kc, float *bp) {
    const char *src = w;
    int r0 = rows < 16 ? rows : 16, r1 = rows - 16 > 0 ? rows - 16 : 0;
    vlm_pack16(dt, src, row_bytes, r0, k0, kc, bp, NR, 0xffff);
    vlm_pack16(dt, src + 16 * row_bytes, row_bytes, r1, k0, kc, bp + 16, NR, 0xffff);
}

static void pack_x(const float *x, int64_t ldx, int rows, int64_t k0, int kc, float *ap) {
    vlm_pack16(VLM_DT_F32, (const char *)x, (size_t)ldx * sizeof(float), rows, k0, kc, ap, MR,
               (__mmask16)((1u << MR) - 1u));
}

static void kernel(int kc, const float *ap, const float *bp, float *c, int64_t ldc, int rows, int cols, int accumulate,
                   const float *bias) {
    __m512 acc[MR][2];
    UNROLL for (int i = 0; i < MR; i++) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    for (int k = 0; k < kc; k++) {
        __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);
        UNROLL for (int i = 0; i < MR; i++) {
            __m512 a = _mm512_set1_ps(ap[i]);
            acc[i][0] = _mm512_fmadd_ps(a, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(a, b1, acc[i][1]);
        }
        ap += MR;
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

const vlm_gemm_isa vlm_gemm_avx512 = {.mr = MR, .nr = NR, .pack_w = pack_w, .pack_x = pack_x, .kernel = kernel};
