/* Private to the CPU kernels: the per-ISA inner kernels and the scratch buffers they share.
 * The AVX-512 functions live in *_avx512.c (compiled with AVX-512 flags) and are only called when
 * vlm_cpu_kernels_avx512() says so; the AVX2 ones are the baseline every x86-64-v3 CPU runs. */
#ifndef VLM_KERNELS_CPU_SIMD_H
#define VLM_KERNELS_CPU_SIMD_H

#include <stddef.h>
#include <stdint.h>

#include "base/pool.h"
#include "kernels/backend.h"

/* ---- scratch: per-thread buffers, grown on first use of a shape and kept (no allocation per call
 * once warm). Slots keep buffers of different users apart. NULL when memory runs out (callers
 * fall back to a path that needs none). */
enum {
    VLM_SCRATCH_GEMV_X,     /* the GEMV's input rows, reordered for the bf16 kernel */
    VLM_SCRATCH_GEMM_A,     /* packed activation block (owned by the calling thread, shared by the team) */
    VLM_SCRATCH_GEMM_B,     /* packed weight micro-panel (per worker thread) */
    VLM_SCRATCH_GEMM_C,     /* AMX accumulator tiles of a weight row pair (per worker thread) */
    VLM_SCRATCH_ATTN,       /* attention tiles (per worker thread) */
    VLM_SCRATCH_ATTN_SPLIT, /* partial results of a split decode (owned by the calling thread) */
    VLM_SCRATCH_COUNT
};
float *vlm_cpu_scratch(int slot, size_t floats);

/* ---- GEMV (M <= VLM_GEMV_MAX_M input rows): rows [n0, n1) of y = x w^T + bias.
 * `xp` is x reordered by vlm_gemv_reorder_x when w is BF16 (NULL: the kernel uses x as is, slower),
 * else ignored. */
enum { VLM_GEMV_MAX_M = 8 };
void vlm_gemv_reorder_x(float *xp, const float *x, int M, int64_t K);
void vlm_gemv_rows_avx2(float *y, const float *x, const float *xp, const vlm_tensor *w, const float *bias, int M,
                        int64_t n0, int64_t n1);
void vlm_gemv_rows_avx512(float *y, const float *x, const float *xp, const vlm_tensor *w, const float *bias, int M,
                          int64_t n0, int64_t n1);
/* The bf16 precision with BF16 weights (AVX512-BF16): xb = the M input rows rounded to bf16
 * (vlm_round_bf16_avx512, nearest even), K per row. */
void vlm_gemv_rows_bf16dp_avx512(float *y, const uint16_t *xb, const vlm_tensor *w, const float *bias, int M,
                                 int64_t n0, int64_t n1);
void vlm_round_bf16_avx512(uint16_t *dst, const float *x, size_t n);

/* ---- GEMM micro-kernels. Weights are packed k-major in panels of nr rows (bp[k * nr + j]),
 * activations k-major in strips of mr rows (ap[k * mr + i]); the kernel adds (or stores, when
 * `accumulate` is 0, plus bias when given) the mr x nr tile c[i * ldc + j] for i < rows, j < cols. */
typedef struct {
    int mr, nr; /* register tile */
    void (*pack_w)(vlm_dtype dt, const void *w, size_t row_bytes, int rows, int64_t k0, int kc, float *bp);
    void (*pack_x)(const float *x, int64_t ldx, int rows, int64_t k0, int kc, float *ap);
    void (*kernel)(int kc, const float *ap, const float *bp, float *c, int64_t ldc, int rows, int cols, int accumulate,
                   const float *bias);
} vlm_gemm_isa;
extern const vlm_gemm_isa vlm_gemm_avx2, vlm_gemm_avx512;
/* BF16 weights with activations rounded to bf16 (vdpbf16ps; gemm_bf16_avx512.c): the packed
 * panels hold pairs of bf16 in each float's place. */
extern const vlm_gemm_isa vlm_gemm_avx512_bf16;

/* AMX GEMM for BF16 weights (gemm_amx_avx512.c), activations split into `parts` bf16 numbers;
 * returns 0 (nothing done) when AMX cannot run here or memory runs out. */
int vlm_gemm_amx_available(void);
int vlm_gemm_amx(vlm_pool *pool, float *y, const float *x, const vlm_tensor *w, const float *bias, int M, int parts,
                 int threads);

/* ---- activations with AVX-512 over [i0, i1): y = silu(a) * b, gelu(a), quick_gelu(a) */
enum { VLM_ACT_SWIGLU, VLM_ACT_GELU, VLM_ACT_QUICK_GELU };
void vlm_act_avx512(int op, float *y, const float *a, const float *b, size_t i0, size_t i1);

/* ---- attention: one task = a block of query rows sharing a kv head (attention_tile.h). Rows
 * r = g * nq + ii are query i0 + ii of head kh * group + g; keys [lo, hi), causal rows stopping at
 * their own position. */
typedef struct {
    const vlm_attn_params *p;
    const float *q, *k, *v;
    float *out;
    int kh, i0, nq;
    int lo, hi;
    float *partial; /* when set: rows of [head_dim unnormalized sums, max, sum of exp] go here, not to out */
} vlm_attn_task;
enum { VLM_ATT_BK = 128, VLM_ATT_ROWS = 64 };
/* Scratch floats a task of `rows` rows needs. */
size_t vlm_attn_scratch_floats(int rows, int head_dim);
void vlm_attn_task_avx2(const vlm_attn_task *t, float *scratch);
void vlm_attn_task_avx512(const vlm_attn_task *t, float *scratch);

#endif
