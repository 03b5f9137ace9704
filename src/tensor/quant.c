/* Scalar reference quantization (the definition of each format; see quant.h). Written for
 * clarity: it runs once per weight when a checkpoint is quantized (threads split the rows). */
#include "tensor/quant.h"

#include <immintrin.h>
#include <math.h>
#include <string.h>
#include <strings.h>

const float vlm_nf4_code[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

const int8_t vlm_nf4_i8[16] = {-127, -88, -67, -50, -36, -23, -12, 0, 10, 20, 31, 43, 56, 71, 92, 127};

static const struct {
    vlm_dtype t;
    const char *tag;
} k_tags[] = {{VLM_DT_Q4_0, "q4_0"}, {VLM_DT_Q8_0, "q8_0"}, {VLM_DT_NF4, "nf4"}};
enum { N_TAGS = sizeof k_tags / sizeof k_tags[0] };

const char *vlm_quant_tag(vlm_dtype t) {
    for (int i = 0; i < N_TAGS; i++)
        if (k_tags[i].t == t) return k_tags[i].tag;
    return NULL;
}

int vlm_quant_from_tag(const char *tag, vlm_dtype *t) {
    for (int i = 0; tag && i < N_TAGS; i++) {
        if (!strcasecmp(tag, k_tags[i].tag)) {
            *t = k_tags[i].t;
            return 0;
        }
    }
    return -1;
}

const char *vlm_quant_known_tags(void) { return "q4_0, q8_0, nf4"; }

/* Round to nearest, ties to even (the default MXCSR mode): lrintf without the library call. */
static inline long round_even(float v) { return _mm_cvtss_si32(_mm_set_ss(v)); }

static void put_f16(uint8_t *b, uint16_t h) {
    b[0] = (uint8_t)(h & 0xff);
    b[1] = (uint8_t)(h >> 8);
}

/* The stored f16 of a scale, or -1 when it is not finite or does not fit. */
static int32_t scale_f16(float d) {
    if (!isfinite(d) || fabsf(d) > 65504.0f) return -1;
    return vlm_f32_to_f16(d);
}

/* Largest magnitude of n (a multiple of 4) values: four independent chains, not one long one. */
static float block_amax(const float *x, int n) {
    float m[4] = {0, 0, 0, 0};
    for (int j = 0; j < n; j += 4)
        for (int k = 0; k < 4; k++) m[k] = fabsf(x[j + k]) > m[k] ? fabsf(x[j + k]) : m[k];
    float a = m[0] > m[1] ? m[0] : m[1], b = m[2] > m[3] ? m[2] : m[3];
    return a > b ? a : b;
}

static int block_finite(const float *x, int n) {
    int ok = 1;
    for (int j = 0; j < n; j++) ok &= isfinite(x[j]) != 0;
    return ok;
}

static int quantize_q8_0(const float *x, uint8_t *b) {
    float amax = block_amax(x, VLM_QK8_0);
    int32_t h = block_finite(x, VLM_QK8_0) ? scale_f16(amax / 127.0f) : -1;
    memset(b, 0, 34);
    if (h < 0) return -1;
    put_f16(b, (uint16_t)h);
    float d = vlm_f16_to_f32((uint16_t)h), id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < VLM_QK8_0; j++) {
        long q = round_even(x[j] * id);
        ((int8_t *)b)[2 + j] = (int8_t)(q < -127 ? -127 : q > 127 ? 127 : q);
    }
    return 0;
}

static int quantize_q4_0(const float *x, uint8_t *b) {
    float amax = block_amax(x, VLM_QK4_0), m = 0;
    for (int j = 0; j < VLM_QK4_0; j++) { /* the first element of largest magnitude, with its sign */
        if (fabsf(x[j]) == amax) {
            m = x[j];
            break;
        }
    }
    int32_t h = block_finite(x, VLM_QK4_0) ? scale_f16(m / -8.0f) : -1;
    memset(b, 0, 18);
    if (h < 0) return -1;
    put_f16(b, (uint16_t)h);
    float d = vlm_f16_to_f32((uint16_t)h), id = d != 0.0f ? 1.0f / d : 0.0f;
    for (int j = 0; j < VLM_QK4_0 / 2; j++) {
        long q0 = round_even(x[j] * id) + 8, q1 = round_even(x[j + 16] * id) + 8;
        q0 = q0 < 0 ? 0 : q0 > 15 ? 15 : q0;
        q1 = q1 < 0 ? 0 : q1 > 15 ? 15 : q1;
        b[2 + j] = (uint8_t)(q0 | q1 << 4);
    }
    return 0;
}

/* The index of the code nearest v (v in about [-1, 1]): codes are ascending, so count the
 * midpoints below v (ties go to the lower code). */
static int nf4_index(float v, const float *mid) {
    int i = 0;
    for (int k = 0; k < 15; k++) i += v > mid[k];
    return i;
}

static int quantize_nf4(const float *x, uint8_t *b) {
    float amax = block_amax(x, VLM_QK_NF4);
    int32_t h = block_finite(x, VLM_QK_NF4) ? scale_f16(amax) : -1;
    memset(b, 0, 34);
    if (h < 0) return -1;
    put_f16(b, (uint16_t)h);
    float a = vlm_f16_to_f32((uint16_t)h), ia = a != 0.0f ? 1.0f / a : 0.0f, mid[15];
    for (int k = 0; k < 15; k++) mid[k] = 0.5f * (vlm_nf4_code[k] + vlm_nf4_code[k + 1]);
    for (int j = 0; j < VLM_QK_NF4 / 2; j++)
        b[2 + j] = (uint8_t)(nf4_index(x[j] * ia, mid) | nf4_index(x[j + 32] * ia, mid) << 4);
    return 0;
}

int vlm_quantize_row(vlm_dtype t, const float *x, void *dst, int64_t K) {
    int bk = vlm_dtype_block(t), bad = 0;
    size_t bs = vlm_dtype_size(t);
    uint8_t *o = dst;
    if (bk <= 1 || K % bk) return -1;
    for (int64_t k = 0; k < K; k += bk, o += bs, x += bk) {
        switch (t) {
        case VLM_DT_Q8_0: bad |= quantize_q8_0(x, o); break;
        case VLM_DT_Q4_0: bad |= quantize_q4_0(x, o); break;
        case VLM_DT_NF4: bad |= quantize_nf4(x, o); break;
        default: return -1;
        }
    }
    return bad ? -1 : 0;
}

vlm_dtype vlm_quant_interleaved(vlm_dtype t) {
    return t == VLM_DT_Q4_0 ? VLM_DT_Q4_0_R16 : t == VLM_DT_Q8_0 ? VLM_DT_Q8_0_R16 : t;
}

vlm_dtype vlm_quant_base(vlm_dtype t) {
    return t == VLM_DT_Q4_0_R16 ? VLM_DT_Q4_0 : t == VLM_DT_Q8_0_R16 ? VLM_DT_Q8_0 : t;
}

/* Where byte j of block i's packed values sits in a group of G interleaved blocks. */
static size_t interleaved_at(int G, int i, int j) { return (size_t)(2 * G + (j / 4) * 4 * G + 4 * i + j % 4); }

void vlm_quant_interleave_row(vlm_dtype t, const void *src, void *dst, int64_t K) {
    size_t bs = vlm_dtype_size(t);
    int64_t nb = K / vlm_dtype_block(t);
    const uint8_t *s = src;
    uint8_t *d = dst;
    for (int64_t g0 = 0; g0 < nb; g0 += 16) {
        int G = nb - g0 < 16 ? (int)(nb - g0) : 16;
        for (int i = 0; i < G; i++) {
            const uint8_t *b = s + (size_t)(g0 + i) * bs;
            d[2 * i] = b[0], d[2 * i + 1] = b[1];
            for (int j = 0; j < (int)bs - 2; j += 4) memcpy(d + interleaved_at(G, i, j), b + 2 + j, 4);
        }
        d += (size_t)G * bs;
    }
}

void vlm_quant_interleaved_block(vlm_dtype t, const void *row, int64_t nb, int64_t b, uint8_t *out) {
    vlm_dtype base = vlm_quant_base(t);
    size_t bs = vlm_dtype_size(base);
    int64_t g0 = b / 16 * 16;
    int G = nb - g0 < 16 ? (int)(nb - g0) : 16, i = (int)(b - g0);
    const uint8_t *g = (const uint8_t *)row + (size_t)g0 * bs;
    out[0] = g[2 * i], out[1] = g[2 * i + 1];
    for (int j = 0; j < (int)bs - 2; j++) out[2 + j] = g[interleaved_at(G, i, j)];
}

void vlm_dequantize_row(vlm_dtype t, const void *src, float *dst, int64_t K) {
    if (t != vlm_quant_base(t)) { /* interleaved: block by block through the plain layout */
        uint8_t blk[34] = {0};
        int64_t nb = K / 32;
        for (int64_t b = 0; b < nb; b++) {
            vlm_quant_interleaved_block(t, src, nb, b, blk);
            vlm_dequantize_row(vlm_quant_base(t), blk, dst + b * 32, 32);
        }
        return;
    }
    int bk = vlm_dtype_block(t);
    size_t bs = vlm_dtype_size(t);
    const uint8_t *b = src;
    for (int64_t k = 0; k < K; k += bk, b += bs, dst += bk) {
        float d = vlm_quant_block_scale(b);
        switch (t) {
        case VLM_DT_Q8_0:
            for (int j = 0; j < 32; j++) dst[j] = d * (float)((const int8_t *)b)[2 + j];
            break;
        case VLM_DT_Q4_0:
            for (int j = 0; j < 16; j++) {
                dst[j] = d * (float)((b[2 + j] & 15) - 8);
                dst[j + 16] = d * (float)((b[2 + j] >> 4) - 8);
            }
            break;
        case VLM_DT_NF4:
            for (int j = 0; j < 32; j++) {
                dst[j] = d * vlm_nf4_code[b[2 + j] & 15];
                dst[j + 32] = d * vlm_nf4_code[b[2 + j] >> 4];
            }
            break;
        default: memset(dst, 0, (size_t)bk * sizeof *dst); break;
        }
    }
}
