/* Tensors: a dtype, a row-major shape and a pointer to data that lives on a device (host memory
 * for the CPU backend; weights on the CPU are views into mmapped checkpoint files). */
#ifndef VLM_TENSOR_TENSOR_H
#define VLM_TENSOR_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

typedef enum {
    VLM_DT_F32 = 0,
    VLM_DT_F16,
    VLM_DT_BF16,
    VLM_DT_I64,
    VLM_DT_I32,
    VLM_DT_I8,
    VLM_DT_U8,
    /* Block-quantized formats (src/tensor/quant.h): rows of K weights stored as K/block blocks. */
    VLM_DT_Q8_0, /* 32 weights: f16 scale + 32 x int8 (34 bytes) */
    VLM_DT_Q4_0, /* 32 weights: f16 scale + 16 bytes of 4-bit values (18 bytes) */
    VLM_DT_NF4,  /* 64 weights: f16 absmax + 32 bytes of 4-bit NormalFloat codes (34 bytes) */
    /* The CPU backend's interleaved copies of Q4_0 / Q8_0 (same bytes per row, blocks regrouped by
     * 16 for SIMD; tensor/quant.h). Made at load, never found in files. */
    VLM_DT_Q4_0_R16,
    VLM_DT_Q8_0_R16,
    VLM_DT_COUNT
} vlm_dtype;

enum { VLM_MAX_DIMS = 6 };

typedef struct {
    vlm_dtype dtype;
    int ndim;
    int64_t shape[VLM_MAX_DIMS];
    void *data; /* device memory of the backend that owns it (host for the CPU) */
    size_t nbytes;
} vlm_tensor;

const char *vlm_dtype_name(vlm_dtype t);                 /* "F32", "BF16", "Q4_0", ... */
int vlm_dtype_from_name(const char *name, vlm_dtype *t); /* 0 on success */
/* Bytes per element for plain dtypes; for block formats, bytes per block (see block_size). */
size_t vlm_dtype_size(vlm_dtype t);
/* Elements per block: 1 for plain dtypes, 32 for Q8_0 / Q4_0, 64 for NF4. */
int vlm_dtype_block(vlm_dtype t);
int vlm_dtype_is_quantized(vlm_dtype t);

int64_t vlm_tensor_numel(const vlm_tensor *t);
/* Bytes of a row-major [rows, cols] matrix (or vector when rows = 1) in dtype t; 0 when cols does
 * not fill whole blocks or on overflow. */
size_t vlm_dtype_row_bytes(vlm_dtype t, int64_t cols);
/* "[2, 3, 4]" into buf. */
const char *vlm_shape_str(const vlm_tensor *t, char *buf, size_t cap);

/* Scalar conversions (round to nearest even, as torch does). */
static inline float vlm_bf16_to_f32(uint16_t h) {
    union {
        uint32_t u;
        float f;
    } v = {.u = (uint32_t)h << 16};
    return v.f;
}
static inline uint16_t vlm_f32_to_bf16(float f) {
    union {
        float f;
        uint32_t u;
    } v = {.f = f};
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40); /* quiet NaN */
    uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)((v.u + rounding) >> 16);
}
float vlm_f16_to_f32(uint16_t h);
uint16_t vlm_f32_to_f16(float f);

/* Converts n elements of a plain float dtype (F32, F16, BF16) to f32; for a block format, the n
 * elements are one row of a matrix (an embedding row) and are dequantized (tensor/quant.h). */
void vlm_to_f32(vlm_dtype t, const void *src, float *dst, size_t n);

#endif
