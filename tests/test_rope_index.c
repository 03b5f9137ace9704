/* Rope index (transformers' get_rope_index) on hand-made layouts and on every fixture case, and
 * the M-RoPE cos/sin tables against a direct formula. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/rope_index.h"

enum { VS = 151652, VE = 151653, IMG = 151655 };

static vlm_model_config g_q25, g_q2;

/* Builds ids from a pattern: 'T' a text token, 'S' vision start, 'E' vision end, digit k: the
 * image tokens of grid k. */
static int build(const char *pat, const vlm_grid_thw *grids, int32_t *ids) {
    int n = 0;
    for (const char *p = pat; *p; p++) {
        if (*p == 'T') ids[n] = 1000 + n, n++;
        else if (*p == 'S') ids[n++] = VS;
        else if (*p == 'E') ids[n++] = VE;
        else
            for (int64_t i = 0; i < vlm_grid_tokens(&grids[*p - '0'], 2); i++) ids[n++] = IMG;
    }
    return n;
}

static void check_row(const int32_t *pos, int n, int row, const int *want, const char *what) {
    int ok = 1;
    for (int i = 0; i < n; i++) ok &= pos[row * n + i] == want[i];
    CHECK_MSG(ok, "%s row %d", what, row);
    if (!ok) {
        for (int i = 0; i < n; i++) fprintf(stderr, "%d/%d ", pos[row * n + i], want[i]);
        fprintf(stderr, "\n");
    }
}

static void test_text_only(void) {
    int32_t ids[5] = {1, 2, 3, 4, 5}, pos[15], delta = 99;
    CHECK_OK(vlm_rope_index(ids, 5, NULL, 0, &g_q25, pos, &delta));
    int want[5] = {0, 1, 2, 3, 4};
    for (int a = 0; a < 3; a++) check_row(pos, 5, a, want, "text only");
    CHECK(delta == 0);
}

static void test_one_image(void) {
    vlm_grid_thw g = {1, 4, 6}; /* merged 2 x 3 */
    int32_t ids[32], pos[96], delta;
    int n = build("TTS0ETT", &g, ids);
    CHECK(n == 12);
    CHECK_OK(vlm_rope_index(ids, n, &g, 1, &g_q25, pos, &delta));
    int t[12] = {0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7, 8};
    int h[12] = {0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7, 8};
    int w[12] = {0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7, 8};
    check_row(pos, n, 0, t, "one image");
    check_row(pos, n, 1, h, "one image");
    check_row(pos, n, 2, w, "one image");
    CHECK(delta == 9 - 12);
    /* an image that ends the prompt: delta from the image's own maximum */
    n = build("TS0", &g, ids);
    CHECK_OK(vlm_rope_index(ids, n, &g, 1, &g_q25, pos, &delta));
    CHECK(delta == (2 + 2) + 1 - n); /* max = 2 + (3 - 1) */
}

static void test_two_images_text_between(void) {
    vlm_grid_thw g[2] = {{1, 2, 4}, {1, 6, 2}}; /* merged 1 x 2 and 3 x 1 */
    int32_t ids[32], pos[96], delta;
    int n = build("TS0ETTS1ET", g, ids);
    CHECK(n == 13);
    CHECK_OK(vlm_rope_index(ids, n, g, 2, &g_q25, pos, &delta));
    /* T S | img0 (base 2: w 2,3) | E T T S (4..7) | img1 (base 8: h 8,9,10) | E T (11, 12) */
    int t[13] = {0, 1, 2, 2, 4, 5, 6, 7, 8, 8, 8, 11, 12};
    int h[13] = {0, 1, 2, 2, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    int w[13] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 8, 8, 11, 12};
    check_row(pos, n, 0, t, "two images");
    check_row(pos, n, 1, h, "two images");
    check_row(pos, n, 2, w, "two images");
    CHECK(delta == 13 - 13);
    /* two images back to back */
    n = build("S0ES1ET", g, ids);
    CHECK_OK(vlm_rope_index(ids, n, g, 2, &g_q25, pos, &delta));
    int h2[10] = {0, 1, 1, 3, 4, 5, 6, 7, 8, 9};
    int w2[10] = {0, 1, 2, 3, 4, 5, 5, 5, 8, 9};
    check_row(pos, n, 1, h2, "back to back");
    check_row(pos, n, 2, w2, "back to back");
    CHECK(delta == 10 - 10);
}

static void test_temporal_index(void) {
    vlm_grid_thw g = {2, 2, 4}; /* two temporal patches, merged 1 x 2 */
    int32_t ids[16], pos[48], delta;
    int n = build("S0E", &g, ids);
    CHECK(n == 6);
    /* Qwen2-VL: t follows the temporal index; Qwen2.5-VL images: second_per_grid_t = 0 */
    CHECK_OK(vlm_rope_index(ids, n, &g, 1, &g_q2, pos, &delta));
    int t2[6] = {0, 1, 1, 2, 2, 3};
    check_row(pos, n, 0, t2, "qwen2-vl temporal");
    CHECK(delta == 4 - 6);
    CHECK_OK(vlm_rope_index(ids, n, &g, 1, &g_q25, pos, &delta));
    int t25[6] = {0, 1, 1, 1, 1, 3};
    check_row(pos, n, 0, t25, "qwen2.5-vl temporal");
    CHECK(delta == 4 - 6);
}

static void test_bad_layouts(void) {
    vlm_grid_thw g[2] = {{1, 4, 6}, {1, 2, 2}};
    int32_t ids[32], pos[96], delta;
    int n = build("TS0ET", g, ids);
    CHECK_ERR(vlm_rope_index(ids, n, g, 2, &g_q25, pos, &delta), VLM_ERR_INVALID, "1 image spans");
    ids[5] = 7; /* one image token short */
    CHECK_ERR(vlm_rope_index(ids, n, g, 1, &g_q25, pos, &delta), VLM_ERR_INVALID, "found id 7 at position 5");
    n = build("TS0", g, ids);
    CHECK_ERR(vlm_rope_index(ids, n - 1, g, 1, &g_q25, pos, &delta), VLM_ERR_INVALID, "needs 6 image tokens");
    vlm_grid_thw odd = {1, 3, 4};
    n = build("TS1", g, ids);
    CHECK_ERR(vlm_rope_index(ids, n, &odd, 1, &g_q25, pos, &delta), VLM_ERR_INVALID, "multiples of the merge");
}

static int32_t *read_i64(const vlm_safetensors *st, const char *name, int64_t *count) {
    const vlm_st_entry *e = vlm_st_find(st, name);
    if (!e || e->dtype != VLM_DT_I64) return NULL;
    vlm_tensor t = vlm_st_tensor(e);
    *count = vlm_tensor_numel(&t);
    int32_t *out = malloc((size_t)*count * sizeof *out + 1);
    const int64_t *d = e->data;
    for (int64_t i = 0; i < *count; i++) out[i] = (int32_t)d[i];
    return out;
}

static void test_fixture_cases(void) {
    static const char *cases[] = {"q25_gray",       "q25_photo",      "q25_rgba",   "q25_text_only",
                                  "q25_tiny_image", "q25_two_images", "q25_wide",   "q2vl_photo",
                                  "q2vl_rgba",      "q2vl_text_only", "q2vlc_photo"};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char rel[256];
        snprintf(rel, sizeof rel, "cases/%s/expected.safetensors", cases[c]);
        vlm_safetensors *st = NULL;
        CHECK_OK(vlm_st_open(test_fixture(rel), &st));
        if (!st) continue;
        int64_t n = 0, np = 0, nd = 0, ng = 0;
        int32_t *ids = read_i64(st, "input_ids", &n), *want = read_i64(st, "position_ids", &np);
        int32_t *wd = read_i64(st, "rope_deltas", &nd), *grid = read_i64(st, "image_grid_thw", &ng);
        CHECK(ids && want && wd && np == 3 * n);
        vlm_grid_thw g[4];
        int n_img = grid ? (int)(ng / 3) : 0;
        for (int k = 0; k < n_img && k < 4; k++) g[k] = (vlm_grid_thw){grid[3 * k], grid[3 * k + 1], grid[3 * k + 2]};
        int32_t *pos = malloc(3 * (size_t)n * sizeof *pos), delta = 12345;
        const vlm_model_config *cfg = cases[c][2] == '5' ? &g_q25 : &g_q2;
        CHECK_OK(vlm_rope_index(ids, (int)n, g, n_img, cfg, pos, &delta));
        CHECK_MSG(!memcmp(pos, want, 3 * (size_t)n * sizeof *pos), "%s: position_ids", cases[c]);
        CHECK_MSG(delta == wd[0], "%s: rope delta %d, expected %d", cases[c], delta, wd[0]);
        free(ids), free(want), free(wd), free(grid), free(pos);
        vlm_st_close(st);
    }
}

static void test_mrope_table(void) {
    const int hd = 128, half = 64, sec[3] = {16, 24, 24};
    float inv[64];
    vlm_rope_inv_freq(1e6, hd, inv);
    for (int i = 0; i < half; i++) {
        double want = 1.0 / pow(1e6, 2.0 * i / hd);
        CHECK_MSG(fabs(inv[i] - want) <= 2e-7 * want, "inv_freq[%d] %.9g vs %.9g", i, inv[i], want);
    }
    /* three rows of different positions: slot j takes its axis from the sections */
    int32_t pos[3 * 4] = {5, 0, 300, 17, /* t */ 9, 1, 200, 17, /* h */ 40, 2, 100, 17 /* w */};
    float c[4 * 64], s[4 * 64];
    vlm_mrope_cos_sin(inv, half, sec, pos, 4, 4, c, s);
    double worst = 0;
    for (int r = 0; r < 4; r++)
        for (int j = 0; j < half; j++) {
            int a = j < 16 ? 0 : j < 40 ? 1 : 2;
            double ang = (double)pos[a * 4 + r] / pow(1e6, 2.0 * j / hd);
            double e = fmax(fabs(c[r * half + j] - cos(ang)), fabs(s[r * half + j] - sin(ang)));
            worst = fmax(worst, e);
        }
    CHECK_MSG(worst < 1e-4, "max cos/sin error %g against the direct formula", worst);
    /* the last row has t = h = w: ordinary RoPE, cos(p * inv_freq[j]) for every slot */
    int ok = 1;
    for (int j = 0; j < half; j++) {
        float ang = 17.0f * inv[j];
        ok &= c[3 * half + j] == (float)cos((double)ang) && s[3 * half + j] == (float)sin((double)ang);
    }
    CHECK(ok);
    /* positions as float32 products, as transformers: position 32767 at the fastest frequency */
    int32_t big[3] = {32767, 32767, 32767};
    vlm_mrope_cos_sin(inv, half, sec, big, 1, 1, c, s);
    CHECK(c[0] == (float)cos((double)(32767.0f * inv[0])));
}

int main(void) {
    CHECK_OK(vlm_config_load(test_fixture("models/tiny-qwen2_5-vl"), &g_q25));
    CHECK_OK(vlm_config_load(test_fixture("models/tiny-qwen2-vl"), &g_q2));
    RUN(test_text_only);
    RUN(test_one_image);
    RUN(test_two_images_text_between);
    RUN(test_temporal_index);
    RUN(test_bad_layouts);
    RUN(test_fixture_cases);
    RUN(test_mrope_table);
    return test_summary();
}
