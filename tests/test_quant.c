/* Block formats (tensor/quant.h): layouts by known answers, and the round-trip error of every format
 * on normal and heavy-tailed weights checked element by element against the format's bound,
 * computed from the scale actually stored. Prints the measured relative RMS error (the numbers
 * behind the choice of the default 4-bit format). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "tensor/quant.h"

static uint64_t g_rng = 0x9e3779b97f4a7c15ull;

static float unif01(void) { return 0.5f * (test_rand(&g_rng) + 1.0f) * 0.999999f + 1e-7f; }
static float normal(void) { return sqrtf(-2.0f * logf(unif01())) * cosf(6.2831853f * unif01()); }
static float student_t3(void) {
    float z = normal(), c = 0;
    for (int i = 0; i < 3; i++) {
        float g = normal();
        c += g * g;
    }
    return z / sqrtf(c / 3.0f);
}
static float laplace(void) {
    float u = unif01() - 0.5f;
    return (u < 0 ? 1.0f : -1.0f) * logf(1.0f - 2.0f * fabsf(u)) / sqrtf(2.0f);
}

static void test_dtypes(void) {
    CHECK(vlm_dtype_size(VLM_DT_NF4) == 34 && vlm_dtype_block(VLM_DT_NF4) == 64);
    CHECK(vlm_dtype_size(VLM_DT_Q4_0) == 18 && vlm_dtype_block(VLM_DT_Q4_0) == 32);
    CHECK(vlm_dtype_size(VLM_DT_Q8_0) == 34 && vlm_dtype_block(VLM_DT_Q8_0) == 32);
    CHECK(vlm_dtype_row_bytes(VLM_DT_Q4_0, 2048) == 64 * 18);
    CHECK(vlm_dtype_row_bytes(VLM_DT_NF4, 96) == 0); /* not whole blocks */
    CHECK(!strcmp(vlm_dtype_name(VLM_DT_NF4), "NF4"));
    vlm_dtype t;
    CHECK(vlm_quant_from_tag("Q4_0", &t) == 0 && t == VLM_DT_Q4_0);
    CHECK(vlm_quant_from_tag("nf4", &t) == 0 && t == VLM_DT_NF4);
    CHECK(vlm_quant_from_tag("q5_k", &t) == -1);
    CHECK(vlm_quant_tag(VLM_DT_BF16) == NULL && !strcmp(vlm_quant_tag(VLM_DT_Q8_0), "q8_0"));
    for (int i = 0; i < 16; i++) CHECK(vlm_nf4_i8[i] == (int8_t)lrintf(127.0f * vlm_nf4_code[i]));
    for (int i = 0; i < 15; i++) CHECK(vlm_nf4_code[i] < vlm_nf4_code[i + 1]);
}

/* Hand-made blocks decode to the documented values. */
static void test_layouts(void) {
    uint8_t b[34];
    float out[64];
    b[0] = 0x00, b[1] = 0x3c; /* f16 1.0 */
    for (int j = 0; j < 16; j++) b[2 + j] = (uint8_t)(j | (15 - j) << 4);
    vlm_dequantize_row(VLM_DT_Q4_0, b, out, 32);
    int ok = 1;
    for (int j = 0; j < 16; j++) ok &= out[j] == (float)(j - 8) && out[16 + j] == (float)(7 - j);
    CHECK(ok);
    b[0] = 0x00, b[1] = 0x40; /* 2.0 */
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)(int8_t)(j - 16);
    vlm_dequantize_row(VLM_DT_Q8_0, b, out, 32);
    ok = 1;
    for (int j = 0; j < 32; j++) ok &= out[j] == 2.0f * (float)(j - 16);
    CHECK(ok);
    b[0] = 0x00, b[1] = 0x38; /* 0.5 */
    for (int j = 0; j < 32; j++) b[2 + j] = (uint8_t)((j & 15) | (15 - (j & 15)) << 4);
    vlm_dequantize_row(VLM_DT_NF4, b, out, 64);
    ok = 1;
    for (int j = 0; j < 32; j++)
        ok &= out[j] == 0.5f * vlm_nf4_code[j & 15] && out[32 + j] == 0.5f * vlm_nf4_code[15 - (j & 15)];
    CHECK(ok);
    /* vlm_to_f32 (embedding rows) dequantizes block formats */
    float via[64];
    vlm_to_f32(VLM_DT_NF4, b, via, 64);
    CHECK(!memcmp(via, out, sizeof via));
}

/* Interleaved rows hold the same blocks (tail groups included) and dequantize the same. */
static void test_interleaved(void) {
    vlm_dtype ts[] = {VLM_DT_Q4_0, VLM_DT_Q8_0};
    int64_t Ks[] = {32, 32 * 16, 32 * 37, 32 * 344};
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < 4; k++) {
            int64_t K = Ks[k], nb = K / 32;
            size_t rb = vlm_dtype_row_bytes(ts[i], K), bs = vlm_dtype_size(ts[i]);
            float *x = malloc(sizeof(float) * (size_t)K), *a = malloc(sizeof(float) * (size_t)K),
                  *b = malloc(sizeof(float) * (size_t)K);
            uint8_t *q = malloc(rb), *r = malloc(rb), blk[34];
            for (int64_t j = 0; j < K; j++) x[j] = test_rand(&g_rng);
            CHECK(vlm_quantize_row(ts[i], x, q, K) == 0);
            vlm_quant_interleave_row(ts[i], q, r, K);
            CHECK(vlm_dtype_row_bytes(vlm_quant_interleaved(ts[i]), K) == rb);
            int same = 1;
            for (int64_t j = 0; j < nb; j++) {
                vlm_quant_interleaved_block(vlm_quant_interleaved(ts[i]), r, nb, j, blk);
                same &= !memcmp(blk, q + (size_t)j * bs, bs);
            }
            CHECK_MSG(same, "%s K=%lld", vlm_quant_tag(ts[i]), (long long)K);
            /* the documented position of one byte: block 17's packed byte 5 sits in group 1, step 1 */
            if (nb >= 18) {
                int G = nb - 16 < 16 ? (int)(nb - 16) : 16;
                CHECK(r[16 * bs + 2 * G + 4 * G + 4 * 1 + 1] == q[17 * bs + 2 + 5]);
            }
            vlm_dequantize_row(ts[i], q, a, K);
            vlm_dequantize_row(vlm_quant_interleaved(ts[i]), r, b, K);
            CHECK(!memcmp(a, b, sizeof(float) * (size_t)K));
            free(x), free(a), free(b), free(q), free(r);
        }
    }
    CHECK(vlm_quant_base(VLM_DT_Q4_0_R16) == VLM_DT_Q4_0 && vlm_quant_interleaved(VLM_DT_NF4) == VLM_DT_NF4);
    vlm_dtype t;
    CHECK(vlm_quant_from_tag("q4_0_r16", &t) == -1); /* not a file format */
}

/* The bound of element w of a block whose stored scale is d (quant.h). */
static double elem_bound(vlm_dtype t, float d, float w) {
    double slack = 1e-6 * fabs((double)d) + 1e-30;
    if (t == VLM_DT_Q8_0) return fabs((double)d) / 2 + slack;
    if (t == VLM_DT_Q4_0) {
        if (d == 0.0f) return 0;
        double v = (double)w / d;
        return (v <= 7.5 ? fabs((double)d) / 2 : fabs((double)w) - 7 * fabs((double)d)) + slack;
    }
    if (d == 0.0f) return 0;
    double v = (double)w / d;
    if (fabs(v) >= 1) return fabs((double)w) - fabs((double)d) + slack;
    int i = 0;
    while (i < 14 && v > vlm_nf4_code[i + 1]) i++;
    return (double)d * (vlm_nf4_code[i + 1] - vlm_nf4_code[i]) / 2 + slack;
}

typedef float (*gen_fn)(void);

static void round_trip(vlm_dtype t, const char *dist, gen_fn gen, float sigma) {
    enum { ROWS = 64, K = 2048 };
    float *w = malloc(sizeof(float) * ROWS * K), *back = malloc(sizeof(float) * ROWS * K);
    uint8_t *q = malloc(vlm_dtype_row_bytes(t, K));
    if (!w || !back || !q) {
        CHECK(0);
        return;
    }
    for (int i = 0; i < ROWS * K; i++) w[i] = sigma * gen();
    int bk = vlm_dtype_block(t), bad = 0, clamped = 0;
    double se = 0, ss = 0, worst = 0; /* worst: error / bound */
    for (int r = 0; r < ROWS; r++) {
        CHECK(vlm_quantize_row(t, w + r * K, q, K) == 0);
        vlm_dequantize_row(t, q, back + r * K, K);
        for (int k = 0; k < K; k++) {
            float d = vlm_quant_block_scale(q + (size_t)(k / bk) * vlm_dtype_size(t));
            float x = w[r * K + k], e = fabsf(x - back[r * K + k]);
            double bnd = elem_bound(t, d, x);
            if (e > bnd) {
                if (bad++ < 3)
                    fprintf(stderr, "  %s %s: w=%g back=%g d=%g bound %g\n", vlm_quant_tag(t), dist, x, back[r * K + k],
                            d, bnd);
            }
            if (t == VLM_DT_Q4_0 && d != 0.0f && (double)x / d > 7.5) clamped++;
            if (bnd > 0 && e / bnd > worst) worst = e / bnd;
            se += (double)e * e;
            ss += (double)x * x;
        }
    }
    CHECK_MSG(bad == 0, "%s on %s: %d elements beyond the bound", vlm_quant_tag(t), dist, bad);
    fprintf(stderr, "  %-5s %-9s relative RMS error %.4f (%.2f bits/weight), worst error / bound %.3f%s\n",
            vlm_quant_tag(t), dist, sqrt(se / ss), 8.0 * (double)vlm_dtype_size(t) / bk, worst,
            clamped ? " (some clamped at +7)" : "");
    free(w);
    free(back);
    free(q);
}

static void test_round_trip(void) {
    vlm_dtype ts[] = {VLM_DT_Q8_0, VLM_DT_Q4_0, VLM_DT_NF4};
    for (int i = 0; i < 3; i++) {
        round_trip(ts[i], "normal", normal, 0.02f);
        round_trip(ts[i], "student-3", student_t3, 0.02f);
        round_trip(ts[i], "laplace", laplace, 0.02f);
        round_trip(ts[i], "normal*1e3", normal, 1e3f);
    }
}

/* Blocks at the edges: zeros, one outlier, the Q4_0 clamp side, tiny values, f16 limits. */
static void test_special_blocks(void) {
    vlm_dtype ts[] = {VLM_DT_Q8_0, VLM_DT_Q4_0, VLM_DT_NF4};
    float x[64], back[64];
    uint8_t q[64];
    for (int i = 0; i < 3; i++) {
        vlm_dtype t = ts[i];
        int bk = vlm_dtype_block(t);
        memset(x, 0, sizeof x);
        CHECK(vlm_quantize_row(t, x, q, bk) == 0);
        vlm_dequantize_row(t, q, back, bk);
        CHECK(test_max_abs(back, (size_t)bk) == 0.0f);
        /* the extreme value itself comes back almost exactly (only the f16 scale rounds) */
        for (int j = 0; j < bk; j++) x[j] = 0.001f * (float)(j % 7 - 3);
        x[5] = -0.7f;
        x[9] = 0.69f; /* opposite sign, near the extreme: Q4_0 clamps it to +7 d */
        CHECK(vlm_quantize_row(t, x, q, bk) == 0);
        vlm_dequantize_row(t, q, back, bk);
        CHECK(fabsf(back[5] - x[5]) <= 0.7f * 1e-3f);
        float d = vlm_quant_block_scale(q);
        for (int j = 0; j < bk; j++) CHECK(fabsf(x[j] - back[j]) <= elem_bound(t, d, x[j]));
        if (t == VLM_DT_Q4_0) CHECK(fabsf(back[9] - 7 * fabsf(d)) < 1e-7f);
        /* not finite, or a scale beyond f16: refused */
        x[3] = NAN;
        CHECK(vlm_quantize_row(t, x, q, bk) == -1);
        x[3] = INFINITY;
        CHECK(vlm_quantize_row(t, x, q, bk) == -1);
        x[3] = 1e9f;
        CHECK(vlm_quantize_row(t, x, q, bk) == -1);
        x[3] = 0;
        CHECK(vlm_quantize_row(t, x, q, bk) == 0);
        CHECK(vlm_quantize_row(t, x, q, bk / 2) == -1); /* not whole blocks: refused, nothing written */
    }
}

int main(void) {
    RUN(test_dtypes);
    RUN(test_layouts);
    RUN(test_round_trip);
    RUN(test_special_blocks);
    RUN(test_interleaved);
    return test_summary();
}
