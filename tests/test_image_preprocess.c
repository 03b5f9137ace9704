/* Preprocessing units: smart_resize (Python rounding, both branches, errors), the bicubic resize
 * (SIMD against the scalar reference on many sizes, properties any resampler must have), rescale /
 * normalize values, patchify layout and the whole processor's errors and overrides. The comparison
 * with Pillow itself is in test_image_pillow.c, with transformers' output in test_image_fixtures.c. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "image/preprocess.h"

static vlm_preproc_config qwen_config(void) {
    vlm_preproc_config c = {.min_pixels = 3136,
                            .max_pixels = 12845056,
                            .patch_size = 14,
                            .temporal_patch_size = 2,
                            .merge_size = 2,
                            .rescale_factor = 1.0 / 255.0,
                            .mean = {0.48145466f, 0.4578275f, 0.40821073f},
                            .std = {0.26862954f, 0.26130258f, 0.27577711f},
                            .do_resize = 1,
                            .do_rescale = 1,
                            .do_normalize = 1};
    return c;
}

static int sr(long long h, long long w, long long lo, long long hi, int *oh, int *ow) {
    return vlm_smart_resize(h, w, 28, lo, hi, oh, ow) == VLM_OK;
}

static void test_smart_resize(void) {
    int h, w;
    /* round half to even: 70/28 = 2.5 → 2, 42/28 = 1.5 → 2, 98/28 = 3.5 → 4, 126/28 = 4.5 → 4 */
    CHECK(sr(70, 70, 0, 1 << 30, &h, &w) && h == 56 && w == 56);
    CHECK(sr(42, 98, 0, 1 << 30, &h, &w) && h == 56 && w == 112);
    CHECK(sr(126, 126, 0, 1 << 30, &h, &w) && h == 112 && w == 112);
    CHECK(sr(71, 43, 0, 1 << 30, &h, &w) && h == 84 && w == 56);
    /* the fixtures' cases */
    CHECK(sr(1080, 1920, 3136, 12845056, &h, &w) && h == 1092 && w == 1932);
    CHECK(sr(300, 256, 3136, 12845056, &h, &w) && h == 308 && w == 252);
    CHECK(sr(80, 640, 3136, 12845056, &h, &w) && h == 84 && w == 644);
    /* min_pixels branch: 20x30 → round to 28x28 = 784 < 3136 → beta = sqrt(3136/600) → 56x84 */
    CHECK(sr(20, 30, 3136, 12845056, &h, &w) && h == 56 && w == 84);
    CHECK(sr(1, 1, 3136, 12845056, &h, &w) && h == 56 && w == 56);
    /* max_pixels branch: 1080x1920 with 1003520 → beta = sqrt(2073600/1003520) → floor → 728x1316 */
    CHECK(sr(1080, 1920, 3136, 1003520, &h, &w) && h == 728 && w == 1316);
    CHECK((long long)h * w <= 1003520);
    /* floors to at least one factor: a wide strip under a tiny budget */
    CHECK(sr(100, 2000, 3136, 784, &h, &w) && h == 28 && w == 112);
    /* both sides round to 0: the min_pixels branch runs even past max_pixels, as in transformers */
    CHECK(sr(10, 2000, 3136, 784, &h, &w) && h == 28 && w == 812);
    /* aspect ratio: 200 passes, over 200 is transformers' ValueError */
    CHECK(sr(1, 200, 3136, 12845056, &h, &w));
    CHECK_ERR(vlm_smart_resize(1, 201, 28, 3136, 12845056, &h, &w), VLM_ERR_INVALID,
              "absolute aspect ratio must be smaller than 200, got 201");
    CHECK_ERR(vlm_smart_resize(1000, 4, 28, 3136, 12845056, &h, &w), VLM_ERR_INVALID, "aspect ratio");
    CHECK_ERR(vlm_smart_resize(0, 10, 28, 3136, 12845056, &h, &w), VLM_ERR_INVALID, "empty");
    CHECK_ERR(vlm_smart_resize(10, 10, 0, 3136, 12845056, &h, &w), VLM_ERR_INVALID, "factor");
    /* a result too large to hold */
    CHECK_ERR(vlm_smart_resize(60000, 60000, 28, 3136, 1LL << 40, &h, &w), VLM_ERR_INVALID, "more than");
}

static vlm_image random_image(int w, int h, uint64_t *rng, int smooth) {
    vlm_image img;
    CHECK_OK(vlm_image_alloc(&img, w, h));
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w * 3; x++) {
            float r = test_rand(rng);
            int v = smooth ? (int)(128 + 60 * sinf(x * 0.05f + y * 0.11f) + 40 * r) : (int)(128 + 127.9f * r);
            img.rgb[(size_t)y * w * 3 + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    return img;
}

static int same(const vlm_image *a, const vlm_image *b) {
    return a->width == b->width && a->height == b->height && !memcmp(a->rgb, b->rgb, (size_t)a->width * a->height * 3);
}

static void test_resize_simd_matches_reference(void) {
    uint64_t rng = 42;
    static const int sizes[][4] = {{1, 1, 28, 56},    {2, 3, 1, 1},       {5, 5, 5, 9},         {17, 3, 56, 28},
                                   {100, 80, 28, 28}, {640, 480, 84, 56}, {1000, 7, 28, 28},    {3, 500, 28, 476},
                                   {64, 64, 64, 65},  {64, 64, 65, 64},   {129, 257, 140, 252}, {300, 200, 1000, 700}};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        vlm_image in = random_image(sizes[i][0], sizes[i][1], &rng, (int)(i & 1)), a, b;
        CHECK_OK(vlm_image_resize_bicubic(&in, sizes[i][2], sizes[i][3], NULL, &a));
        CHECK_OK(vlm_image_resize_bicubic_ref(&in, sizes[i][2], sizes[i][3], &b));
        CHECK_MSG(same(&a, &b), "%dx%d -> %dx%d", sizes[i][0], sizes[i][1], sizes[i][2], sizes[i][3]);
        vlm_image_free(&a);
        vlm_image_free(&b);
        vlm_image_free(&in);
    }
    /* random sizes, both directions on each axis */
    for (int t = 0; t < 40; t++) {
        int iw = 1 + (int)((test_rand(&rng) + 1) * 150), ih = 1 + (int)((test_rand(&rng) + 1) * 150);
        int ow = 1 + (int)((test_rand(&rng) + 1) * 150), oh = 1 + (int)((test_rand(&rng) + 1) * 150);
        vlm_image in = random_image(iw, ih, &rng, t & 1), a, b;
        CHECK_OK(vlm_image_resize_bicubic(&in, ow, oh, NULL, &a));
        CHECK_OK(vlm_image_resize_bicubic_ref(&in, ow, oh, &b));
        CHECK_MSG(same(&a, &b), "%dx%d -> %dx%d", iw, ih, ow, oh);
        vlm_image_free(&a);
        vlm_image_free(&b);
        vlm_image_free(&in);
    }
}

static void test_resize_properties(void) {
    uint64_t rng = 3;
    vlm_image in = random_image(37, 23, &rng, 0), out;
    /* the same size: an exact copy (Pillow returns a copy too) */
    CHECK_OK(vlm_image_resize_bicubic(&in, 37, 23, NULL, &out));
    CHECK(same(&in, &out));
    vlm_image_free(&out);
    /* a constant image stays constant, whatever the scale (weights sum to 1) */
    memset(in.rgb, 200, 37 * 23 * 3);
    CHECK_OK(vlm_image_resize_bicubic(&in, 300, 5, NULL, &out));
    int ok = 1;
    for (size_t i = 0; i < 300 * 5 * 3; i++) ok &= out.rgb[i] == 200;
    CHECK(ok);
    vlm_image_free(&out);
    CHECK_ERR(vlm_image_resize_bicubic(&in, 0, 5, NULL, &out), VLM_ERR_INVALID, "output size");
    vlm_image_free(&in);
    vlm_image empty = {0};
    CHECK_ERR(vlm_image_resize_bicubic(&empty, 5, 5, NULL, &out), VLM_ERR_INVALID, "empty");
}

/* Each pixel value is the same function of (x, y, channel), so every pixel_values entry says where
 * it came from. Qwen's sizes, and others that take the scalar path (patch under 8) or odd frames. */
static void check_layout(int P, int M, int T, int gw_blocks, int gh_blocks) {
    vlm_preproc_config c = qwen_config();
    c.patch_size = P, c.merge_size = M, c.temporal_patch_size = T;
    c.do_rescale = 0;
    c.do_normalize = 0; /* values stay the u8 levels */
    const int W = P * M * gw_blocks, H = P * M * gh_blocks, gw = W / P, gh = H / P, dim = 3 * T * P * P;
    vlm_image img;
    CHECK_OK(vlm_image_alloc(&img, W, H));
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int ch = 0; ch < 3; ch++)
                img.rgb[((size_t)y * W + x) * 3 + ch] = (uint8_t)((x * 7 + y * 3 + ch * 50) & 255);
    vlm_pixel_values pv;
    CHECK_OK(vlm_image_patchify(&img, &c, NULL, &pv));
    CHECK(pv.n_patches == gw * gh && pv.patch_dim == dim);
    CHECK(pv.grid.t == 1 && pv.grid.h == gh && pv.grid.w == gw);
    int bad = 0;
    for (int r = 0; r < gw * gh && pv.data; r++) {
        /* rows: h block, w block, then the MxM group in raster order */
        int blk = r / (M * M), in = r % (M * M);
        int ph = (blk / gw_blocks) * M + in / M, pw = (blk % gw_blocks) * M + in % M;
        for (int ch = 0; ch < 3; ch++)
            for (int t = 0; t < T; t++)
                for (int y = 0; y < P; y++)
                    for (int x = 0; x < P; x++) {
                        int gx = pw * P + x, gy = ph * P + y;
                        float want = (float)((gx * 7 + gy * 3 + ch * 50) & 255);
                        bad += pv.data[(size_t)r * dim + ((ch * T + t) * P + y) * P + x] != want;
                    }
    }
    CHECK_MSG(bad == 0, "patch %d merge %d frames %d: %d misplaced values", P, M, T, bad);
    vlm_pixel_values_free(&pv);
    img.width = W - 1; /* fits in the buffer, no longer a multiple */
    CHECK_ERR(vlm_image_patchify(&img, &c, NULL, &pv), VLM_ERR_INVALID, "is not a multiple of");
    img.width = W;
    vlm_image_free(&img);
}

static void test_patchify_layout(void) {
    check_layout(14, 2, 2, 2, 3); /* 56 x 84: grid 6 x 4, merged 3 x 2 */
    check_layout(4, 2, 3, 3, 2);
    check_layout(8, 1, 1, 5, 4);
    check_layout(9, 3, 2, 2, 1);
}

/* value = float32(u8 · (1/255 in double)), then (value − mean) / std in float32. */
static void test_rescale_normalize_values(void) {
    vlm_preproc_config c = qwen_config();
    vlm_image img;
    CHECK_OK(vlm_image_alloc(&img, 28, 28));
    for (int i = 0; i < 28 * 28; i++) img.rgb[3 * i] = (uint8_t)i, img.rgb[3 * i + 1] = 255, img.rgb[3 * i + 2] = 0;
    vlm_pixel_values pv;
    CHECK_OK(vlm_image_patchify(&img, &c, NULL, &pv));
    /* row 0 = patch (0,0); channel 0, frame 0, pixel (0,1) holds level 1 */
    float v1 = (float)(1.0 * (1.0 / 255.0));
    CHECK(pv.data[1] == (v1 - 0.48145466f) / 0.26862954f);
    CHECK(pv.data[392] == (1.0f - 0.4578275f) / 0.26130258f);  /* channel 1, level 255 */
    CHECK(pv.data[784] == (0.0f - 0.40821073f) / 0.27577711f); /* channel 2, level 0 */
    CHECK(pv.data[196 + 1] == pv.data[1]);                     /* frame 1 repeats frame 0 */
    vlm_pixel_values_free(&pv);
    c.do_normalize = 0;
    CHECK_OK(vlm_image_patchify(&img, &c, NULL, &pv));
    CHECK(pv.data[1] == v1 && pv.data[392] == 1.0f);
    vlm_pixel_values_free(&pv);
    vlm_image_free(&img);
}

static void test_preprocess_errors_and_overrides(void) {
    vlm_preproc_config c = qwen_config();
    uint64_t rng = 9;
    vlm_image img = random_image(200, 100, &rng, 1);
    vlm_pixel_values pv;
    CHECK_OK(vlm_preprocess_image(&img, &c, 0, 0, NULL, &pv));
    CHECK(pv.resized_h == 112 && pv.resized_w == 196 && pv.n_patches == 8 * 14);
    vlm_pixel_values_free(&pv);
    /* a min_pixels override scales up, a max_pixels override scales down */
    CHECK_OK(vlm_preprocess_image(&img, &c, 200000, 0, NULL, &pv));
    CHECK((long long)pv.resized_h * pv.resized_w >= 200000 && pv.resized_h == 336 && pv.resized_w == 644);
    vlm_pixel_values_free(&pv);
    CHECK_OK(vlm_preprocess_image(&img, &c, 0, 5000, NULL, &pv));
    CHECK(pv.resized_h == 28 && pv.resized_w == 84);
    vlm_pixel_values_free(&pv);
    CHECK_ERR(vlm_preprocess_image(&img, &c, 9000, 5000, NULL, &pv), VLM_ERR_INVALID, "min_pixels 9000");
    CHECK_ERR(vlm_preprocess_image(&img, &c, -1, 0, NULL, &pv), VLM_ERR_INVALID, "must be positive");
    vlm_image_free(&img);
    /* too small for the processor, and too elongated */
    img = random_image(3, 3, &rng, 0);
    CHECK_ERR(vlm_preprocess_image(&img, &c, 0, 0, NULL, &pv), VLM_ERR_INVALID, "too small");
    CHECK(pv.data == NULL);
    vlm_image_free(&img);
    img = random_image(1000, 4, &rng, 0);
    CHECK_ERR(vlm_preprocess_image(&img, &c, 0, 0, NULL, &pv), VLM_ERR_INVALID, "aspect ratio");
    vlm_image_free(&img);
    img = random_image(4, 4, &rng, 0);
    CHECK_OK(vlm_preprocess_image(&img, &c, 0, 0, NULL, &pv));
    CHECK(pv.resized_h == 56 && pv.resized_w == 56);
    vlm_pixel_values_free(&pv);
    vlm_image_free(&img);
}

/* The processor resizes and patchifies strip by strip in parallel; it must give the same bytes as
 * the scalar whole-image resize followed by patchify, for up- and downscaling and any strip split. */
static void test_fused_matches_separate_steps(void) {
    vlm_preproc_config c = qwen_config();
    uint64_t rng = 77;
    static const long long cases[][4] = {/* w, h, min_pixels, max_pixels */
                                         {1920, 1080, 3136, 12845056}, {333, 517, 3136, 12845056},
                                         {640, 480, 3136, 50000},      {50, 70, 300000, 12845056},
                                         {1000, 20, 3136, 12845056},   {97, 97, 3136, 7000},
                                         {2000, 1500, 3136, 400000},   {56, 84, 3136, 12845056}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        vlm_image img = random_image((int)cases[i][0], (int)cases[i][1], &rng, (int)(i & 1)), ref;
        vlm_pixel_values got, want;
        CHECK_OK(vlm_preprocess_image(&img, &c, cases[i][2], cases[i][3], NULL, &got));
        int rh, rw;
        CHECK_OK(vlm_smart_resize(img.height, img.width, 28, cases[i][2], cases[i][3], &rh, &rw));
        CHECK_OK(vlm_image_resize_bicubic_ref(&img, rw, rh, &ref));
        CHECK_OK(vlm_image_patchify(&ref, &c, NULL, &want));
        CHECK_MSG(got.data && want.data && got.n_patches == want.n_patches &&
                      !memcmp(got.data, want.data, (size_t)got.n_patches * got.patch_dim * sizeof(float)),
                  "%lldx%lld -> %dx%d", cases[i][0], cases[i][1], rw, rh);
        vlm_pixel_values_free(&got);
        vlm_pixel_values_free(&want);
        vlm_image_free(&ref);
        vlm_image_free(&img);
    }
}

int main(void) {
    RUN(test_smart_resize);
    RUN(test_resize_simd_matches_reference);
    RUN(test_resize_properties);
    RUN(test_patchify_layout);
    RUN(test_rescale_normalize_values);
    RUN(test_preprocess_errors_and_overrides);
    RUN(test_fused_matches_separate_steps);
    return test_summary();
}
