/* Tiled attention with AVX2 (the task body is attention_tile.h). */
#include <immintrin.h>

#include "kernels/cpu/hsum_avx2.h"
#include "kernels/cpu/simd_math.h"

static inline __m256i vlm_mask8(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

#define VEC __m256
#define VL 8
#define VMASK __m256i
#define vzero() _mm256_setzero_ps()
#define vset1(x) _mm256_set1_ps(x)
#define vloadu(p) _mm256_loadu_ps(p)
#define vstoreu(p, v) _mm256_storeu_ps(p, v)
#define vfmadd(a, b, c) _mm256_fmadd_ps(a, b, c)
#define vmul(a, b) _mm256_mul_ps(a, b)
#define vadd(a, b) _mm256_add_ps(a, b)
#define vsub(a, b) _mm256_sub_ps(a, b)
#define vmax(a, b) _mm256_max_ps(a, b)
#define vexp(x) vlm_exp256(x)
#define vhmax(v) vlm_hmax8(v)
#define vhsum(v) vlm_hsum8(v)
#define vmask_first(n) vlm_mask8(n)
#define vload_mask(p, m) _mm256_maskload_ps(p, m)
#define vload_mask_fill(p, m, fill)                                                                                    \
    _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m))
#define vkeep(v, m) _mm256_and_ps(v, _mm256_castsi256_ps(m))
#define RT_S 6
#define PV_ACC 12
#define PV_MAXV 4
#define ATTN_TASK_FN vlm_attn_task_avx2

/* kt[d * ld + j] = K[j][d] for j < nb, zero for nb <= j < nbp */
static inline void pack_kt(float *kt, int ld, const float *k, size_t kvs, int nb, int nbp, int hd) {
    for (int j = 0; j < nb; j++)
        for (int d = 0; d < hd; d++) kt[(size_t)d * ld + j] = k[(size_t)j * kvs + d];
    for (int d = 0; d < hd; d++)
        for (int j = nb; j < nbp; j++) kt[(size_t)d * ld + j] = 0.0f;
}
#define PACK_KT pack_kt

/* dst[d * ld + i] = q[i * qs + d] for i < rows */
static inline void pack_q(float *dst, int ld, const float *q, size_t qs, int rows, int hd) {
    for (int i = 0; i < rows; i++)
        for (int d = 0; d < hd; d++) dst[(size_t)d * ld + i] = q[(size_t)i * qs + d];
}
#define PACK_Q pack_q

#include "kernels/cpu/attention_tile.h"
