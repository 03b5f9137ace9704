/* Vision towers against the fixtures (every case with images, both families): patch embedding,
 * rotary table, window index and boundaries (exact), block-0 output, merger output and image
 * embeddings, read back from the --dump file. Plus: several calls on one model (buffer reuse),
 * images encoded together vs one by one, bad grids and pixel counts, the memory check. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/safetensors.h"
#include "kernels/backend.h"
#include "model/config.h"
#include "model/dump.h"
#include "model/vision_layout.h"
#include "model/vision_model.h"
#include "model/weights.h"

static const float k_rtol = 1e-4f, k_atol = 1e-5f;

/* A loaded tiny model: config, mapping, bound weights, CPU backend, encoder. */
typedef struct {
    vlm_model_config cfg;
    vlm_safetensors *st;
    vlm_vision_weights vw;
    vlm_text_weights tw;
    vlm_backend *be;
    vlm_vision_model *m;
} tiny;

static int tiny_open(tiny *t, const char *model) {
    memset(t, 0, sizeof *t);
    char dir[1024], file[1100];
    snprintf(dir, sizeof dir, "%s", test_fixture(model));
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    vlm_status s = vlm_config_load(dir, &t->cfg);
    if (s == VLM_OK) s = vlm_st_open(file, &t->st);
    if (s == VLM_OK) s = vlm_bind_weights(t->st, &t->cfg, 1, 0, &t->vw, &t->tw);
    if (s == VLM_OK) s = vlm_cpu_backend_create(NULL, &t->be);
    if (s == VLM_OK) s = vlm_vision_create(&t->cfg, &t->vw, t->be, &t->m);
    CHECK_OK(s);
    return s == VLM_OK;
}

static void tiny_close(tiny *t) {
    vlm_vision_free(t->m);
    if (t->be) vlm_backend_destroy(t->be);
    vlm_vision_weights_free(&t->vw);
    vlm_text_weights_free(&t->tw);
    vlm_st_close(t->st);
}

/* A copy of a tensor's data (the mapping may not be aligned for floats). */
static void *tensor_copy(const vlm_safetensors *st, const char *name, vlm_dtype want, int64_t *n_out,
                         int64_t shape[2]) {
    const vlm_st_entry *e = vlm_st_find(st, name);
    CHECK_MSG(e != NULL, "tensor %s missing", name);
    if (!e) return NULL;
    CHECK_MSG(e->dtype == want, "tensor %s has dtype %s", name, vlm_dtype_name(e->dtype));
    if (e->dtype != want) return NULL;
    int64_t n = 1;
    for (int i = 0; i < e->ndim; i++) n *= e->shape[i];
    if (shape) shape[0] = e->shape[0], shape[1] = e->ndim > 1 ? e->shape[1] : 1;
    void *p = malloc(e->nbytes ? e->nbytes : 1);
    if (p) memcpy(p, e->data, e->nbytes);
    *n_out = n;
    return p;
}

static void compare_f32(const vlm_safetensors *got, const vlm_safetensors *ref, const char *name, const char *cs) {
    int64_t ng = 0, nr = 0, sg[2], sr[2];
    float *g = tensor_copy(got, name, VLM_DT_F32, &ng, sg), *r = tensor_copy(ref, name, VLM_DT_F32, &nr, sr);
    if (g && r) {
        CHECK_MSG(sg[0] == sr[0] && sg[1] == sr[1], "%s %s: shape [%lld, %lld] vs [%lld, %lld]", cs, name,
                  (long long)sg[0], (long long)sg[1], (long long)sr[0], (long long)sr[1]);
        char what[128];
        snprintf(what, sizeof what, "%s %s", cs, name);
        if (ng == nr) test_close(what, g, r, (size_t)nr, k_rtol, k_atol);
    }
    free(g);
    free(r);
}

static void compare_i64(const vlm_safetensors *got, const vlm_safetensors *ref, const char *name, const char *cs) {
    int64_t ng = 0, nr = 0;
    int64_t *g = tensor_copy(got, name, VLM_DT_I64, &ng, NULL), *r = tensor_copy(ref, name, VLM_DT_I64, &nr, NULL);
    if (g && r) {
        CHECK_MSG(ng == nr, "%s %s: %lld vs %lld entries", cs, name, (long long)ng, (long long)nr);
        int same = ng == nr;
        for (int64_t i = 0; same && i < nr; i++) same = g[i] == r[i];
        CHECK_MSG(same, "%s %s differs", cs, name);
    }
    free(g);
    free(r);
}

/* The fixture inputs: pixel_values and image_grid_thw. */
typedef struct {
    float *pixels;
    int64_t rows;
    vlm_grid_thw grids[8];
    int n_images;
} case_input;

static int read_input(const vlm_safetensors *ref, case_input *in) {
    memset(in, 0, sizeof *in);
    int64_t n, sp[2], sg[2];
    in->pixels = tensor_copy(ref, "pixel_values", VLM_DT_F32, &n, sp);
    int64_t *g = tensor_copy(ref, "image_grid_thw", VLM_DT_I64, &n, sg);
    int ok = in->pixels && g && sg[0] <= 8 && sg[1] == 3;
    if (ok) {
        in->rows = sp[0];
        in->n_images = (int)sg[0];
        for (int i = 0; i < in->n_images; i++)
            in->grids[i] = (vlm_grid_thw){(int)g[i * 3], (int)g[i * 3 + 1], (int)g[i * 3 + 2]};
    }
    free(g);
    return ok;
}

static void run_case(const char *cs, const char *model) {
    tiny t;
    char path[256];
    snprintf(path, sizeof path, "cases/%s/expected.safetensors", cs);
    vlm_safetensors *ref = NULL, *got = NULL;
    CHECK_OK(vlm_st_open(test_fixture(path), &ref));
    if (!ref) return;
    case_input in;
    if (!read_input(ref, &in) || !tiny_open(&t, model)) {
        free(in.pixels);
        vlm_st_close(ref);
        return;
    }
    int64_t M = vlm_vision_output_rows(&t.cfg, in.grids, in.n_images);
    CHECK(M == in.rows / 4);
    float *out = calloc((size_t)M * t.cfg.vision.out_hidden, sizeof(float));
    vlm_dump *d = NULL;
    CHECK_OK(vlm_dump_create(&d));
    CHECK_OK(vlm_vision_encode(t.m, in.pixels, in.rows, in.grids, in.n_images, out, 1, d));
    snprintf(path, sizeof path, "%s.dump.safetensors", cs);
    CHECK_OK(vlm_dump_write(d, test_tmp(path)));
    CHECK_OK(vlm_st_open(test_tmp(path), &got));
    if (got) {
        compare_f32(got, ref, "vision_patch_embed", cs);
        compare_f32(got, ref, "vision_rotary_pos_emb", cs);
        compare_f32(got, ref, "vision_block0_out", cs);
        compare_f32(got, ref, "vision_merger_out", cs);
        compare_f32(got, ref, "image_embeds", cs);
        if (t.cfg.family == VLM_FAMILY_QWEN2_5_VL) {
            compare_i64(got, ref, "vision_window_index", cs);
            compare_i64(got, ref, "vision_cu_window_seqlens", cs);
        } else {
            CHECK(vlm_st_find(got, "vision_window_index") == NULL);
        }
        /* the output buffer itself, not only its dump */
        int64_t n, s[2];
        float *emb = tensor_copy(ref, "image_embeds", VLM_DT_F32, &n, s);
        if (emb && n == M * t.cfg.vision.out_hidden) test_close(cs, out, emb, (size_t)n, k_rtol, k_atol);
        free(emb);
    }
    vlm_st_close(got);
    vlm_dump_free(d);
    free(out);
    free(in.pixels);
    tiny_close(&t);
    vlm_st_close(ref);
}

static void test_fixture_cases(void) {
    static const char *cases[][2] = {
        {"q25_photo", "models/tiny-qwen2_5-vl"},      {"q25_wide", "models/tiny-qwen2_5-vl"},
        {"q25_tiny_image", "models/tiny-qwen2_5-vl"}, {"q25_gray", "models/tiny-qwen2_5-vl"},
        {"q25_rgba", "models/tiny-qwen2_5-vl"},       {"q25_two_images", "models/tiny-qwen2_5-vl"},
        {"q2vl_photo", "models/tiny-qwen2-vl"},       {"q2vl_rgba", "models/tiny-qwen2-vl"},
        {"q2vlc_photo", "models/tiny-qwen2-vl-c"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int before = g_test_failures;
        run_case(cases[i][0], cases[i][1]);
        fprintf(stderr, "    %s %s\n", g_test_failures == before ? "ok  " : "FAIL", cases[i][0]);
    }
}

/* Two images encoded in one call equal the two encoded alone, one after the other on the same
 * model (buffers reused, shrinking then growing), and a repeated call gives the same bits. */
static void test_multi_image_and_reuse(void) {
    static const char *models[] = {"models/tiny-qwen2_5-vl", "models/tiny-qwen2-vl-c"};
    vlm_safetensors *ref = NULL;
    CHECK_OK(vlm_st_open(test_fixture("cases/q25_two_images/expected.safetensors"), &ref));
    case_input in;
    if (!ref || !read_input(ref, &in)) {
        vlm_st_close(ref);
        return;
    }
    CHECK(in.n_images == 2);
    for (int mi = 0; mi < 2; mi++) {
        tiny t;
        if (!tiny_open(&t, models[mi])) continue;
        int D = t.cfg.vision.out_hidden;
        int64_t M = in.rows / 4, m0 = (int64_t)in.grids[0].t * in.grids[0].h * in.grids[0].w / 4;
        float *both = calloc((size_t)M * D, sizeof(float)), *one = calloc((size_t)M * D, sizeof(float));
        float *again = calloc((size_t)M * D, sizeof(float));
        CHECK_OK(vlm_vision_encode(t.m, in.pixels, in.rows, in.grids, 2, both, 1, NULL));
        CHECK_OK(vlm_vision_encode(t.m, in.pixels + (size_t)m0 * 4 * 1176, in.rows - m0 * 4, in.grids + 1, 1,
                                   one + (size_t)m0 * D, 1, NULL));
        CHECK_OK(vlm_vision_encode(t.m, in.pixels, m0 * 4, in.grids, 1, one, 1, NULL));
        test_close(models[mi], one, both, (size_t)M * D, 1e-5f, 1e-6f);
        vlm_vision_trim(t.m);
        CHECK_OK(vlm_vision_encode(t.m, in.pixels, in.rows, in.grids, 2, again, 1, NULL));
        CHECK(memcmp(again, both, sizeof(float) * (size_t)M * D) == 0);
        free(both), free(one), free(again);
        tiny_close(&t);
    }
    free(in.pixels);
    vlm_st_close(ref);
}

static void test_bad_input(void) {
    tiny t;
    if (!tiny_open(&t, "models/tiny-qwen2_5-vl")) return;
    float px[16 * 1176] = {0}, out[4 * 64];
    vlm_grid_thw odd[1] = {{1, 3, 4}}, zero_t[1] = {{0, 4, 4}}, ok[1] = {{1, 4, 4}};
    CHECK_ERR(vlm_vision_encode(t.m, px, 12, odd, 1, out, 1, NULL), VLM_ERR_INVALID, "h=3");
    CHECK_ERR(vlm_vision_encode(t.m, px, 0, zero_t, 1, out, 1, NULL), VLM_ERR_INVALID, "t=0");
    CHECK_ERR(vlm_vision_encode(t.m, px, 15, ok, 1, out, 1, NULL), VLM_ERR_INVALID, "15 rows");
    CHECK_ERR(vlm_vision_encode(t.m, px, 16, ok, 0, out, 1, NULL), VLM_ERR_INVALID, "no image");
    vlm_grid_thw huge[1] = {{1, 4096, 4096}};
    CHECK_ERR(vlm_vision_encode(t.m, px, 4096 * 4096, huge, 1, out, 1, NULL), VLM_ERR_INVALID, "patches");
    CHECK(vlm_vision_output_rows(&t.cfg, odd, 1) == -1);
    CHECK_OK(vlm_vision_encode(t.m, px, 16, ok, 1, out, 1, NULL));
    /* weights not bound */
    vlm_vision_weights none = {0};
    vlm_vision_model *m = NULL;
    CHECK_ERR(vlm_vision_create(&t.cfg, &none, t.be, &m), VLM_ERR_INVALID, "not bound");
    CHECK(m == NULL);
    tiny_close(&t);
}

/* The activation estimate grows with the grid, the check fails with the numbers and a
 * --max-pixels that does fit; on the real 3B shapes the estimate matches the buffers. */
static void test_memory_check(void) {
    vlm_model_config cfg;
    CHECK_OK(vlm_config_load(test_fixture("models/tiny-qwen2_5-vl"), &cfg));
    vlm_grid_thw small[1] = {{1, 32, 32}}, big[1] = {{1, 64, 64}}, two[2] = {{1, 32, 32}, {1, 32, 32}};
    uint64_t bs = vlm_vision_activation_bytes(&cfg, small, 1, 0);
    uint64_t bb = vlm_vision_activation_bytes(&cfg, big, 1, 0);
    uint64_t b2 = vlm_vision_activation_bytes(&cfg, two, 2, 0);
    CHECK(bs > 0 && bb > 3 * bs && b2 >= 2 * bs - 64 && b2 <= 2 * bs + 4096);
    CHECK(vlm_vision_activation_bytes(&cfg, small, 1, 1) > bs); /* + a pixel copy */
    /* W=32: per patch 2W + max(3W, 2F, ...) + head_dim floats at least */
    CHECK(bs >= (uint64_t)1024 * (2 * 32 + 96 + 16) * 4);
    CHECK_OK(vlm_vision_check_memory(&cfg, big, 1, bb, 0));
    CHECK_ERR(vlm_vision_check_memory(&cfg, big, 1, bb - 1, 0), VLM_ERR_NOMEM, "--max-pixels");
    CHECK_ERR(vlm_vision_check_memory(&cfg, big, 1, bs, 0), VLM_ERR_NOMEM, "MiB");
    CHECK_ERR(vlm_vision_check_memory(&cfg, big, 1, 100, 0), VLM_ERR_NOMEM, "no --max-pixels");
    /* the suggestion: a multiple of 784 whose square-ish grid fits, and the next step does not */
    int64_t p = vlm_vision_max_pixels_fitting(&cfg, 1, bs, 0);
    CHECK(p > 0 && p % 784 == 0);
    CHECK(p >= 1000 * 196 && p <= 1030 * 196); /* about the 32x32 grid whose estimate it was given */
    int64_t g = p / 784;                       /* merged tokens: a 1 x g strip of merged tokens */
    vlm_grid_thw strip[1] = {{1, 2, (int)(2 * g)}}, over[1] = {{1, 2, (int)(2 * (g + 1))}};
    CHECK(vlm_vision_activation_bytes(&cfg, strip, 1, 0) <= bs);
    CHECK(vlm_vision_activation_bytes(&cfg, over, 1, 0) > bs);
    CHECK(vlm_vision_max_pixels_fitting(&cfg, 2, bs, 0) <= p / 2 + 784);
    CHECK(vlm_vision_max_pixels_fitting(&cfg, 1, 0, 0) == 0);
}

/* FLOP count: the 3B-shaped formula on a hand-checked case. */
static void test_flops(void) {
    vlm_model_config cfg;
    CHECK_OK(vlm_config_load(test_fixture("models/tiny-qwen2-vl"), &cfg));
    vlm_grid_thw g[1] = {{1, 4, 4}};
    /* Qwen2-VL tiny: W=32, F=64, depth 2, out 32; N=16, M=4, one full segment of 16 */
    double N = 16, W = 32, F = 64, M = 4;
    double want = 2 * N * 1176 * W + 2 * (2 * N * (3 * W * W + W * W + 2 * W * F) + 4 * W * N * N) + 2 * M * 128 * 128 +
        2 * M * 128 * 32;
    double got = vlm_vision_flops(&cfg, g, 1);
    CHECK_MSG(got == want, "%g vs %g", got, want);
}

int main(void) {
    RUN(test_fixture_cases);
    RUN(test_multi_image_and_reuse);
    RUN(test_bad_input);
    RUN(test_memory_check);
    RUN(test_flops);
    return test_summary();
}
