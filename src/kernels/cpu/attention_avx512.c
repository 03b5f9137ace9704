/* Tiled attention with AVX-512 (the task body is attention_tile.h). */
#include <immintrin.h>

#include "kernels/cpu/simd_math.h"
#include "kernels/cpu/transpose_avx512.h"

#define VEC __m512
#define VL 16
#define VMASK __mmask16
#define vzero() _mm512_setzero_ps()
#define vset1(x) _mm512_set1_ps(x)
#define vloadu(p) _mm512_loadu_ps(p)
#define vstoreu(p, v) _mm512_storeu_ps(p, v)
#define vfmadd(a, b, c) _mm512_fmadd_ps(a, b, c)
#define vmul(a, b) _mm512_mul_ps(a, b)
#define vadd(a, b) _mm512_add_ps(a, b)
#define vsub(a, b) _mm512_sub_ps(a, b)
#define vmax(a, b) _mm512_max_ps(a, b)
#define vexp(x) vlm_exp512(x)
#define vhmax(v) _mm512_reduce_max_ps(v)
#define vhsum(v) _mm512_reduce_add_ps(v)
#define vmask_first(n) ((__mmask16)((1u << (n)) - 1u))
#define vload_mask(p, m) _mm512_maskz_loadu_ps(m, p)
#define vload_mask_fill(p, m, fill) _mm512_mask_loadu_ps(_mm512_set1_ps(fill), m, p)
#define vkeep(v, m) _mm512_maskz_mov_ps(m, v)
#define RT_S 12
#define PV_ACC 24
#define PV_MAXV 8
#define ATTN_TASK_FN vlm_attn_task_avx512

/* kt[d * ld + j] = K[j][d] for j < nb, zero for nb <= j < nbp (16 keys per in-register transpose) */
static inline void pack_kt(float *kt, int ld, const float *k, size_t kvs, int nb, int nbp, int hd) {
    for (int j = 0; j < nbp; j += 16) {
        int rows = nb - j < 16 ? (nb - j > 0 ? nb - j : 0) : 16;
        vlm_pack16(VLM_DT_F32, (const char *)(k + (size_t)j * kvs), kvs * sizeof(float), rows, 0, hd, kt + j, ld,
                   0xffff);
    }
}
#define PACK_KT pack_kt

/* dst[d * ld + i] = q[i * qs + d] for i < rows (16 rows per in-register transpose) */
static inline void pack_q(float *dst, int ld, const float *q, size_t qs, int rows, int hd) {
    for (int i = 0; i < rows; i += 16) {
        int n = rows - i < 16 ? rows - i : 16;
        vlm_pack16(VLM_DT_F32, (const char *)(q + (size_t)i * qs), qs * sizeof(float), n, 0, hd, dst + i, ld,
                   (__mmask16)((1u << n) - 1u));
    }
}
#define PACK_Q pack_q

#include "kernels/cpu/attention_tile.h"
