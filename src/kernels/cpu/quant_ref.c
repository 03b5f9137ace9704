/* Scalar reference of the quantized matrix product (see quant_kernels.h): activation quantization
 * and the block-by-block integer dot product, written for clarity. */
#include <math.h>
#include <string.h>

#include "kernels/cpu/quant_kernels.h"
#include "tensor/quant.h"

void vlm_qact_row_scalar(const float *x, int64_t K, int8_t *q, float *d, float *s) {
    for (int64_t b = 0; b < K / VLM_QA_BLOCK; b++) {
        const float *xb = x + b * VLM_QA_BLOCK;
        int8_t *qb = q + b * VLM_QA_BLOCK;
        float amax = 0;
        int finite = 1;
        for (int j = 0; j < VLM_QA_BLOCK; j++) {
            finite &= isfinite(xb[j]) != 0;
            amax = fabsf(xb[j]) > amax ? fabsf(xb[j]) : amax;
        }
        if (!finite) {
            memset(qb, 0, VLM_QA_BLOCK);
            d[b] = s[b] = NAN;
            continue;
        }
        float id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < VLM_QA_BLOCK; j++) {
            qb[j] = (int8_t)lrintf(xb[j] * id); /* |x * id| <= 127 (+ rounding): fits */
            sum += qb[j];
        }
        d[b] = amax / 127.0f;
        s[b] = d[b] * (float)sum;
    }
}

/* The integer level of element e of a weight block and the factor that turns levels into values
 * (d for Q8_0 / Q4_0, absmax / 127 for NF4's int8 code book). */
static int weight_level(vlm_dtype t, const uint8_t *blk, int e) {
    switch (t) {
    case VLM_DT_Q8_0: return ((const int8_t *)blk)[2 + e];
    case VLM_DT_Q4_0: return (e < 16 ? blk[2 + e] & 15 : blk[2 + e - 16] >> 4) - 8;
    case VLM_DT_NF4: return vlm_nf4_i8[e < 32 ? blk[2 + e] & 15 : blk[2 + e - 32] >> 4];
    default: return 0;
    }
}

void vlm_qact_interleave(const int8_t *q, int64_t K, int8_t *qt) {
    int64_t nb = K / VLM_QA_BLOCK;
    for (int64_t g0 = 0; g0 < nb; g0 += 16) {
        int G = nb - g0 < 16 ? (int)(nb - g0) : 16;
        int8_t *o = qt + g0 * VLM_QA_BLOCK;
        for (int s = 0; s < 8; s++)
            for (int i = 0; i < G; i++) memcpy(o + 4 * (s * G + i), q + (g0 + i) * VLM_QA_BLOCK + 4 * s, 4);
    }
}

double vlm_qdot_ref(vlm_dtype t, const uint8_t *wrow, const int8_t *q, const float *d, int64_t K) {
    vlm_dtype base = vlm_quant_base(t);
    int wb = vlm_dtype_block(base);
    size_t bs = vlm_dtype_size(base);
    double acc = 0;
    uint8_t tmp[34];
    for (int64_t b = 0; b < K / VLM_QA_BLOCK; b++) {
        int64_t k0 = b * VLM_QA_BLOCK;
        const uint8_t *blk = wrow + (size_t)(k0 / wb) * bs;
        if (base != t) { /* interleaved: this block in the plain layout */
            vlm_quant_interleaved_block(t, wrow, K / wb, k0 / wb, tmp);
            blk = tmp;
        }
        int e0 = (int)(k0 % wb);
        int dot = 0;
        for (int j = 0; j < VLM_QA_BLOCK; j++) dot += weight_level(base, blk, e0 + j) * q[k0 + j];
        double dw = vlm_quant_block_scale(blk);
        if (base == VLM_DT_NF4) dw /= 127.0;
        acc += dw * (double)d[b] * (double)dot;
    }
    return acc;
}

void vlm_qrows_scalar(vlm_dtype t, const vlm_qact *a, int M, const uint8_t *w, size_t rb, int64_t n0, int64_t n1,
                      float *y, int64_t ldy) {
    for (int64_t n = n0; n < n1; n++)
        for (int m = 0; m < M; m++)
            y[m * ldy + n] = (float)vlm_qdot_ref(t, w + (size_t)n * rb, a->q + m * a->K, a->d + m * a->nb, a->K);
}
