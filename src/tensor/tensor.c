#include "tensor/tensor.h"

#include "tensor/quant.h"

#include <immintrin.h>
#include <stdio.h>
#include <string.h>

static const struct {
    const char *name;
    size_t size;
    int block;
} k_dtypes[VLM_DT_COUNT] = {
    [VLM_DT_F32] = {"F32", 4, 1},
    [VLM_DT_F16] = {"F16", 2, 1},
    [VLM_DT_BF16] = {"BF16", 2, 1},
    [VLM_DT_I64] = {"I64", 8, 1},
    [VLM_DT_I32] = {"I32", 4, 1},
    [VLM_DT_I8] = {"I8", 1, 1},
    [VLM_DT_U8] = {"U8", 1, 1},
    [VLM_DT_Q8_0] = {"Q8_0", 34, 32},
    [VLM_DT_Q4_0] = {"Q4_0", 18, 32},
    [VLM_DT_NF4] = {"NF4", 34, 64},
    [VLM_DT_Q4_0_R16] = {"Q4_0_R16", 18, 32},
    [VLM_DT_Q8_0_R16] = {"Q8_0_R16", 34, 32},
};

const char *vlm_dtype_name(vlm_dtype t) { return (unsigned)t < VLM_DT_COUNT ? k_dtypes[t].name : "?"; }

int vlm_dtype_from_name(const char *name, vlm_dtype *t) {
    for (int i = 0; i < VLM_DT_COUNT; i++) {
        if (!strcmp(name, k_dtypes[i].name)) {
            *t = (vlm_dtype)i;
            return 0;
        }
    }
    return -1;
}

size_t vlm_dtype_size(vlm_dtype t) { return (unsigned)t < VLM_DT_COUNT ? k_dtypes[t].size : 0; }
int vlm_dtype_block(vlm_dtype t) { return (unsigned)t < VLM_DT_COUNT ? k_dtypes[t].block : 1; }
int vlm_dtype_is_quantized(vlm_dtype t) { return vlm_dtype_block(t) > 1; }

int64_t vlm_tensor_numel(const vlm_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

size_t vlm_dtype_row_bytes(vlm_dtype t, int64_t cols) {
    int64_t block = vlm_dtype_block(t);
    if (cols < 0 || cols % block) return 0;
    uint64_t blocks = (uint64_t)(cols / block);
    if (blocks > SIZE_MAX / 64) return 0;
    return (size_t)blocks * vlm_dtype_size(t);
}

const char *vlm_shape_str(const vlm_tensor *t, char *buf, size_t cap) {
    size_t n = 0;
    n += (size_t)snprintf(buf + n, cap - n, "[");
    for (int i = 0; i < t->ndim && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (n < cap) snprintf(buf + n, cap - n, "]");
    return buf;
}

float vlm_f16_to_f32(uint16_t h) { return _cvtsh_ss(h); }
uint16_t vlm_f32_to_f16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

void vlm_to_f32(vlm_dtype t, const void *src, float *dst, size_t n) {
    size_t i = 0;
    switch (t) {
    case VLM_DT_F32: memcpy(dst, src, n * sizeof(float)); break;
    case VLM_DT_BF16: {
        const uint16_t *s = src;
        for (; i + 8 <= n; i += 8) {
            __m128i h = _mm_loadu_si128((const __m128i *)(s + i));
            __m256i w = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
            _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(w));
        }
        for (; i < n; i++) dst[i] = vlm_bf16_to_f32(s[i]);
        break;
    }
    case VLM_DT_F16: {
        const uint16_t *s = src;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + i))));
        for (; i < n; i++) dst[i] = vlm_f16_to_f32(s[i]);
        break;
    }
    default:
        if (vlm_dtype_is_quantized(t)) vlm_dequantize_row(t, src, dst, (int64_t)n); /* an embedding row */
        else memset(dst, 0, n * sizeof(float));                                     /* callers check the dtype first */
        break;
    }
}
