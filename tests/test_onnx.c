/* run_onnx: the vision tower exported to ONNX and run in ONNX Runtime, against transformers'
 * image_embeds of every fixture image case; onnx.checker on the exports; broken files; staleness. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "runtime/onnx/onnx_vision.h"
#include "vlm.h"

typedef struct {
    const char *name;
    const char *model; /* under fixtures/models */
} image_case;

static const image_case k_cases[] = {
    {"q25_photo", "tiny-qwen2_5-vl"}, {"q25_wide", "tiny-qwen2_5-vl"}, {"q25_tiny_image", "tiny-qwen2_5-vl"},
    {"q25_gray", "tiny-qwen2_5-vl"},  {"q25_rgba", "tiny-qwen2_5-vl"}, {"q25_two_images", "tiny-qwen2_5-vl"},
    {"q2vl_photo", "tiny-qwen2-vl"},  {"q2vl_rgba", "tiny-qwen2-vl"},  {"q2vlc_photo", "tiny-qwen2-vl-c"},
};
enum { N_CASES = sizeof k_cases / sizeof k_cases[0] };

static const char *k_models[] = {"tiny-qwen2_5-vl", "tiny-qwen2-vl", "tiny-qwen2-vl-c"};

static int have_ort(void) {
#ifdef VLM_HAVE_ORT
    return 1;
#else
    return 0;
#endif
}

static int have_export(void) {
    char why[512];
    if (vlm_onnx_export_available(why, sizeof why)) return 1;
    fprintf(stderr, "  skip: %s\n", why);
    return 0;
}

/* The export directory of a model with the default options (made once per program). */
static const char *export_dir(const char *model) {
    static char dirs[3][1024];
    for (int i = 0; i < 3; i++) {
        if (strcmp(k_models[i], model)) continue;
        if (!dirs[i][0]) {
            char rel[256];
            snprintf(rel, sizeof rel, "export-%s", model);
            snprintf(dirs[i], sizeof dirs[i], "%s", test_tmp(rel));
            snprintf(rel, sizeof rel, "models/%s", model);
            CHECK_OK(vlm_onnx_export(test_fixture(rel), dirs[i], NULL));
        }
        return dirs[i];
    }
    return NULL;
}

/* Runs a fixture case through the session; returns 1 when it matched image_embeds. */
static int check_case(vlm_ort_vision *sess, const char *case_name, const char *label) {
    char rel[256];
    snprintf(rel, sizeof rel, "cases/%s/expected.safetensors", case_name);
    vlm_safetensors *st = NULL;
    vlm_status s = vlm_st_open(test_fixture(rel), &st);
    CHECK_OK(s);
    if (s != VLM_OK) return 0;
    const vlm_st_entry *pv = vlm_st_find(st, "pixel_values"), *grid = vlm_st_find(st, "image_grid_thw"),
                       *emb = vlm_st_find(st, "image_embeds");
    CHECK(pv && grid && emb && pv->dtype == VLM_DT_F32 && grid->dtype == VLM_DT_I64 && emb->dtype == VLM_DT_F32);
    int ok = 0;
    if (pv && grid && emb) {
        int64_t rows = emb->shape[0], hidden = emb->shape[1];
        CHECK(vlm_ort_vision_out_hidden(sess) == hidden);
        float *out = calloc((size_t)(rows * hidden), sizeof(float));
        vlm_grid_thw grids[8];
        const int64_t *g = grid->data;
        for (int i = 0; i < grid->shape[0] && i < 8; i++)
            grids[i] = (vlm_grid_thw){(int)g[3 * i], (int)g[3 * i + 1], (int)g[3 * i + 2]};
        s = vlm_ort_vision_run(sess, pv->data, pv->shape[0], (int)pv->shape[1], grids, (int)grid->shape[0], out, rows);
        CHECK_OK(s);
        char what[128];
        snprintf(what, sizeof what, "%s image_embeds (%s)", case_name, label);
        ok = s == VLM_OK && test_close(what, out, emb->data, (size_t)(rows * hidden), 1e-4f, 1e-5f);
        CHECK_MSG(ok, "%s", what);
        if (ok)
            fprintf(stderr, "  %s: max |diff| / max |ref| = %.2e\n", what,
                    test_max_abs_diff(out, emb->data, (size_t)(rows * hidden)) /
                        test_max_abs(emb->data, (size_t)(rows * hidden)));
        free(out);
    }
    vlm_st_close(st);
    return ok;
}

/* Every fixture image case: ONNX Runtime's features equal transformers' within 1e-4 relative. */
static void test_fixture_cases(void) {
    if (!have_export()) return;
    if (!have_ort()) {
        fprintf(stderr, "  skip: ONNX Runtime is not built in (VLM_HAVE_ORT undefined)\n");
        return;
    }
    for (int i = 0; i < N_CASES; i++) {
        const char *dir = export_dir(k_cases[i].model);
        vlm_ort_vision *sess = NULL;
        CHECK_OK(vlm_ort_vision_open(dir, 2, VLM_DEV_CPU, &sess));
        if (!sess) continue;
        check_case(sess, k_cases[i].name, "bf16 weights, 2 threads");
        vlm_ort_vision_close(sess);
    }
}

/* A grid with t = 2 frames (video) attends per frame: two copies of one image's rows give two
 * copies of its features. */
static void test_two_frames(void) {
    if (!have_export() || !have_ort()) return;
    const char *cases[2][2] = {{"q25_photo", "tiny-qwen2_5-vl"}, {"q2vl_photo", "tiny-qwen2-vl"}};
    for (int c = 0; c < 2; c++) {
        char rel[256];
        snprintf(rel, sizeof rel, "cases/%s/expected.safetensors", cases[c][0]);
        vlm_safetensors *st = NULL;
        vlm_ort_vision *sess = NULL;
        CHECK_OK(vlm_st_open(test_fixture(rel), &st));
        CHECK_OK(vlm_ort_vision_open(export_dir(cases[c][1]), 2, VLM_DEV_CPU, &sess));
        const vlm_st_entry *pv = st ? vlm_st_find(st, "pixel_values") : NULL;
        const vlm_st_entry *grid = st ? vlm_st_find(st, "image_grid_thw") : NULL;
        const vlm_st_entry *emb = st ? vlm_st_find(st, "image_embeds") : NULL;
        if (sess && pv && grid && emb) {
            size_t n = (size_t)(pv->shape[0] * pv->shape[1]), m = (size_t)(emb->shape[0] * emb->shape[1]);
            float *pix = malloc(2 * n * sizeof(float)), *out = malloc(2 * m * sizeof(float));
            memcpy(pix, pv->data, n * sizeof(float));
            memcpy(pix + n, pv->data, n * sizeof(float));
            const int64_t *g = grid->data;
            vlm_grid_thw g2 = {2, (int)g[1], (int)g[2]};
            CHECK_OK(vlm_ort_vision_run(sess, pix, 2 * pv->shape[0], 1176, &g2, 1, out, 2 * emb->shape[0]));
            CHECK(test_close("frame 0", out, emb->data, m, 1e-4f, 1e-5f));
            CHECK(test_close("frame 1", out + m, emb->data, m, 1e-4f, 1e-5f));
            free(pix);
            free(out);
        }
        vlm_ort_vision_close(sess);
        vlm_st_close(st);
    }
}

/* The other file layouts: float32 weights inline, float32 and bf16 weights in an external file. */
static void test_export_variants(void) {
    if (!have_export() || !have_ort()) return;
    struct {
        vlm_onnx_weights w;
        vlm_onnx_external e;
        const char *dir, *label;
        int has_data;
    } v[] = {
        {VLM_ONNX_WEIGHTS_F32, VLM_ONNX_EXTERNAL_NEVER, "var-f32", "f32 inline", 0},
        {VLM_ONNX_WEIGHTS_F32, VLM_ONNX_EXTERNAL_ALWAYS, "var-f32-ext", "f32 external data", 1},
        {VLM_ONNX_WEIGHTS_STORED, VLM_ONNX_EXTERNAL_ALWAYS, "var-bf16-ext", "bf16 external data", 1},
    };
    const char *models[] = {"tiny-qwen2_5-vl", "tiny-qwen2-vl-c"}, *cases[] = {"q25_two_images", "q2vlc_photo"};
    for (int m = 0; m < 2; m++)
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
            char rel[256], dir[1024], data[1100];
            snprintf(rel, sizeof rel, "%s-%d", v[i].dir, m);
            snprintf(dir, sizeof dir, "%s", test_tmp(rel));
            vlm_onnx_export_options o = {.weights = v[i].w, .external = v[i].e};
            snprintf(rel, sizeof rel, "models/%s", models[m]);
            CHECK_OK(vlm_onnx_export(test_fixture(rel), dir, &o));
            snprintf(data, sizeof data, "%s/%s", dir, VLM_ONNX_DATA_FILE);
            CHECK(vlm_is_file(data) == v[i].has_data);
            vlm_ort_vision *sess = NULL;
            CHECK_OK(vlm_ort_vision_open(dir, 1, VLM_DEV_CPU, &sess));
            if (sess) check_case(sess, cases[m], v[i].label);
            vlm_ort_vision_close(sess);
        }
}

/* Debian's onnx 1.12 checker (full_check: with shape inference) accepts every export. */
static void test_onnx_checker(void) {
    if (!have_export()) return;
    if (system("/usr/bin/python3 -c 'import onnx' 2>/dev/null") != 0) {
        fprintf(stderr, "  skip: /usr/bin/python3 has no onnx module (python3-onnx; scripts/setup.sh installs it)\n");
        return;
    }
    const char *dirs[5];
    int n = 0;
    for (int i = 0; i < 3; i++) dirs[n++] = export_dir(k_models[i]);
    vlm_onnx_export_options o = {.weights = VLM_ONNX_WEIGHTS_F32, .external = VLM_ONNX_EXTERNAL_ALWAYS};
    dirs[n] = test_tmp("checker-ext");
    CHECK_OK(vlm_onnx_export(test_fixture("models/tiny-qwen2_5-vl"), dirs[n++], &o));
    for (int i = 0; i < n; i++) {
        char cmd[2048];
        snprintf(
            cmd, sizeof cmd,
            "/usr/bin/python3 -c 'import onnx, sys; p = sys.argv[1]; onnx.checker.check_model(p, full_check=True); "
            "m = onnx.load(p); assert m.ir_version <= 8, m.ir_version; "
            "assert all(o.version <= 17 for o in m.opset_import), m.opset_import; "
            "assert [i.name for i in m.graph.input] == [\"pixel_values\", \"image_grid_thw\"]; "
            "assert [o.name for o in m.graph.output] == [\"image_embeds\"]' '%s/%s'",
            dirs[i], VLM_ONNX_FILE);
        int rc = system(cmd);
        CHECK_MSG(rc == 0, "onnx.checker rejected %s/%s", dirs[i], VLM_ONNX_FILE);
    }
}

static int copy_prefix(const char *src, const char *dst, size_t keep) {
    char *data;
    size_t len;
    if (vlm_read_file(src, 0, &data, &len) != VLM_OK) return -1;
    vlm_status s = vlm_write_file(dst, data, keep < len ? keep : len);
    free(data);
    return s == VLM_OK ? 0 : -1;
}

/* Missing, corrupt and truncated files give errors naming the file. */
static void test_broken_files(void) {
    if (!have_export() || !have_ort()) return;
    vlm_ort_vision *sess = NULL;
    CHECK_ERR(vlm_ort_vision_open(test_tmp("nowhere/vision.onnx"), 1, VLM_DEV_CPU, &sess), VLM_ERR_NOT_FOUND,
              "nowhere/vision.onnx not found");
    CHECK(!sess);

    const char *good = export_dir("tiny-qwen2_5-vl");
    char src[1100];
    snprintf(src, sizeof src, "%s/%s", good, VLM_ONNX_FILE);
    uint64_t size;
    int64_t mt;
    CHECK_OK(vlm_file_stat(src, &size, &mt));

    CHECK_OK(vlm_mkdirs(test_tmp("corrupt")));
    CHECK_OK(vlm_write_file(test_tmp("corrupt/vision.onnx"), "this is not a protobuf\xff\xff\xff", 25));
    CHECK_ERR(vlm_ort_vision_open(test_tmp("corrupt"), 1, VLM_DEV_CPU, &sess), VLM_ERR_FORMAT,
              "corrupt/vision.onnx: ONNX Runtime cannot load it");
    fprintf(stderr, "  corrupt: %s\n", vlm_last_error());

    CHECK_OK(vlm_mkdirs(test_tmp("truncated")));
    CHECK(copy_prefix(src, test_tmp("truncated/vision.onnx"), (size_t)size / 2) == 0);
    CHECK_ERR(vlm_ort_vision_open(test_tmp("truncated"), 1, VLM_DEV_CPU, &sess), VLM_ERR_FORMAT,
              "truncated/vision.onnx: ONNX Runtime cannot load it");
    fprintf(stderr, "  truncated: %s\n", vlm_last_error());
    CHECK(!sess);

    CHECK_OK(vlm_write_file(test_tmp("corrupt/empty.onnx"), "", 0));
    CHECK_ERR(vlm_ort_vision_open(test_tmp("corrupt/empty.onnx"), 1, VLM_DEV_CPU, &sess), VLM_ERR_FORMAT, "empty.onnx");

    /* an external data file cut short */
    vlm_onnx_export_options o = {.weights = VLM_ONNX_WEIGHTS_STORED, .external = VLM_ONNX_EXTERNAL_ALWAYS};
    const char *ext = test_tmp("truncated-data");
    CHECK_OK(vlm_onnx_export(test_fixture("models/tiny-qwen2_5-vl"), ext, &o));
    char data[1100], tmp[1200];
    snprintf(data, sizeof data, "%s/%s", ext, VLM_ONNX_DATA_FILE);
    snprintf(tmp, sizeof tmp, "%s.cut", data);
    CHECK_OK(vlm_file_stat(data, &size, &mt));
    CHECK(copy_prefix(data, tmp, (size_t)size / 2) == 0 && rename(tmp, data) == 0);
    CHECK_ERR(vlm_ort_vision_open(ext, 1, VLM_DEV_CPU, &sess), VLM_ERR_FORMAT, "truncated-data/vision.onnx");
    CHECK(strstr(vlm_last_error(), "out of bounds") != NULL); /* ONNX Runtime's own words, passed through */
    fprintf(stderr, "  truncated data file: %s\n", vlm_last_error());
    CHECK(!sess);

    /* a valid ONNX model that is not a vlm vision export */
    if (system("/usr/bin/python3 -c 'import onnx' 2>/dev/null") == 0) {
        char cmd[1400];
        snprintf(
            cmd, sizeof cmd,
            "/usr/bin/python3 -c 'import onnx, sys; from onnx import helper as h, TensorProto as T; "
            "g = h.make_graph([h.make_node(\"Identity\", [\"x\"], [\"y\"])], \"g\", "
            "[h.make_tensor_value_info(\"x\", T.FLOAT, [1])], [h.make_tensor_value_info(\"y\", T.FLOAT, [1])]); "
            "onnx.save(h.make_model(g, opset_imports=[h.make_opsetid(\"\", 17)], ir_version=8), sys.argv[1])' '%s'",
            test_tmp("corrupt/identity.onnx"));
        CHECK(system(cmd) == 0);
        CHECK_ERR(vlm_ort_vision_open(test_tmp("corrupt/identity.onnx"), 1, VLM_DEV_CPU, &sess), VLM_ERR_FORMAT,
                  "not a vision tower exported by vlm export-onnx");
        CHECK(!sess);
    }
}

/* Bad grids and shapes are refused before ONNX Runtime sees them; --device cuda says why not. */
static void test_bad_requests(void) {
    if (!have_export() || !have_ort()) return;
    vlm_ort_vision *sess = NULL;
    CHECK_OK(vlm_ort_vision_open(export_dir("tiny-qwen2_5-vl"), 1, VLM_DEV_CPU, &sess));
    if (!sess) return;
    float pixels[16 * 1176] = {0}, out[4 * 64];
    CHECK_ERR(vlm_ort_vision_run(sess, pixels, 16, 1176, &(vlm_grid_thw){1, 4, 3}, 1, out, 4), VLM_ERR_INVALID,
              "multiples of 2");
    CHECK_ERR(vlm_ort_vision_run(sess, pixels, 16, 1176, &(vlm_grid_thw){1, 4, 2}, 1, out, 4), VLM_ERR_INVALID,
              "cover 8 patches but pixel_values has 16 rows");
    CHECK_ERR(vlm_ort_vision_run(sess, pixels, 16, 1000, &(vlm_grid_thw){1, 4, 4}, 1, out, 4), VLM_ERR_INVALID,
              "expects 1176");
    CHECK_ERR(vlm_ort_vision_run(sess, pixels, 16, 1176, &(vlm_grid_thw){1, 4, 4}, 1, out, 3), VLM_ERR_INVALID,
              "needs 4 rows");
    /* a zero image is still a valid image */
    CHECK_OK(vlm_ort_vision_run(sess, pixels, 16, 1176, &(vlm_grid_thw){1, 4, 4}, 1, out, 4));
    int finite = 1;
    for (int i = 0; i < 4 * 64; i++) finite &= out[i] == out[i];
    CHECK(finite);
    vlm_ort_vision_close(sess);

    vlm_ort_vision *cuda = NULL;
    vlm_status s = vlm_ort_vision_open(export_dir("tiny-qwen2_5-vl"), 1, VLM_DEV_CUDA, &cuda);
    if (s != VLM_OK) {
        CHECK_ERR(s, VLM_ERR_UNAVAILABLE, "no CUDA execution provider");
        fprintf(stderr, "  --device cuda: %s\n", vlm_last_error());
    }
    vlm_ort_vision_close(cuda);
}

static void touch_later(const char *path) {
    struct timespec ts[2];
    clock_gettime(CLOCK_REALTIME, &ts[0]);
    ts[0].tv_sec += 10;
    ts[1] = ts[0];
    CHECK(utimensat(0, path, ts, 0) == 0);
}

/* The manifest tells an up-to-date export from a stale one, and ensure_export re-exports. */
static void test_staleness(void) {
    /* a private copy of the checkpoint whose files the test may touch */
    const char *model = test_tmp("stale-model"), *out = test_tmp("stale-export");
    CHECK_OK(vlm_mkdirs(model));
    const char *files[] = {"config.json", "model.safetensors", "preprocessor_config.json"};
    for (int i = 0; i < 3; i++) {
        char src[512], dst[1100];
        snprintf(src, sizeof src, "models/tiny-qwen2_5-vl/%s", files[i]);
        snprintf(dst, sizeof dst, "%s/%s", model, files[i]);
        CHECK_OK(vlm_copy_file(test_fixture(src), dst));
    }
    int current = -1, exported = -1;
    char why[1024];
    CHECK_OK(vlm_onnx_export_current(model, out, NULL, &current, why, sizeof why));
    CHECK(current == 0 && strstr(why, "missing"));
    if (!have_export()) {
        CHECK_ERR(vlm_onnx_ensure_export(model, out, NULL, &exported), VLM_ERR_UNAVAILABLE, "not built in");
        return;
    }
    CHECK_OK(vlm_onnx_ensure_export(model, out, NULL, &exported));
    CHECK(exported == 1);
    CHECK_OK(vlm_onnx_export_current(model, out, NULL, &current, why, sizeof why));
    CHECK_MSG(current == 1, "%s", why);
    CHECK_OK(vlm_onnx_ensure_export(model, out, NULL, &exported));
    CHECK(exported == 0);

    /* other options asked for */
    vlm_onnx_export_options f32 = {.weights = VLM_ONNX_WEIGHTS_F32}, ext = {.external = VLM_ONNX_EXTERNAL_ALWAYS};
    CHECK_OK(vlm_onnx_export_current(model, out, &f32, &current, why, sizeof why));
    CHECK(current == 0 && strstr(why, "\"f32\" asked for"));
    CHECK_OK(vlm_onnx_export_current(model, out, &ext, &current, why, sizeof why));
    CHECK(current == 0 && strstr(why, "without an external data file"));

    /* the checkpoint changed */
    char path[1100];
    snprintf(path, sizeof path, "%s/config.json", model);
    touch_later(path);
    CHECK_OK(vlm_onnx_export_current(model, out, NULL, &current, why, sizeof why));
    CHECK(current == 0 && strstr(why, "config.json was modified"));
    CHECK_OK(vlm_onnx_ensure_export(model, out, NULL, &exported));
    CHECK(exported == 1);
    CHECK_OK(vlm_onnx_export_current(model, out, NULL, &current, why, sizeof why));
    CHECK_MSG(current == 1, "%s", why);

    /* the same size and mtime but another header (a rewritten shard) */
    snprintf(path, sizeof path, "%s/model.safetensors", model);
    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    char *data;
    size_t len;
    CHECK_OK(vlm_read_file(path, 0, &data, &len));
    char *dt = data ? strstr(data + 8, "\"model.norm.weight\"") : NULL;
    CHECK(dt != NULL);
    if (dt) {
        dt[1] = 'M'; /* a renamed tensor, same length: still valid, the header hash differs */
        FILE *f = fopen(path, "r+b");
        CHECK(f && fwrite(data, 1, len, f) == len);
        if (f) fclose(f);
        struct timespec ts[2] = {sb.st_atim, sb.st_mtim};
        CHECK(utimensat(0, path, ts, 0) == 0);
        CHECK_OK(vlm_onnx_export_current(model, out, NULL, &current, why, sizeof why));
        CHECK(current == 0 && strstr(why, "tensor header of checkpoint file model.safetensors changed"));
        dt[1] = 'm';
        f = fopen(path, "r+b");
        CHECK(f && fwrite(data, 1, len, f) == len);
        if (f) fclose(f);
        CHECK(utimensat(0, path, ts, 0) == 0);
        CHECK_OK(vlm_onnx_export_current(model, out, NULL, &current, why, sizeof why));
        CHECK_MSG(current == 1, "%s", why);
    }
    free(data);

    /* the export files themselves */
    snprintf(path, sizeof path, "%s/%s", out, VLM_ONNX_FILE);
    CHECK(truncate(path, 100) == 0);
    CHECK_OK(vlm_onnx_export_current(model, out, NULL, &current, why, sizeof why));
    CHECK(current == 0 && strstr(why, "has 100 bytes"));
    CHECK(remove(path) == 0);
    CHECK_OK(vlm_onnx_export_current(model, out, NULL, &current, why, sizeof why));
    CHECK(current == 0 && strstr(why, "vision.onnx is missing"));
    snprintf(path, sizeof path, "%s/%s", out, VLM_ONNX_MANIFEST_FILE);
    CHECK_OK(vlm_write_file(path, "{not json", 9));
    CHECK_OK(vlm_onnx_export_current(model, out, NULL, &current, why, sizeof why));
    CHECK(current == 0 && strstr(why, "unreadable manifest"));

    /* another checkpoint into the same directory */
    CHECK_OK(vlm_onnx_ensure_export(model, out, NULL, &exported));
    CHECK_OK(vlm_onnx_export_current(test_fixture("models/tiny-qwen2-vl"), out, NULL, &current, why, sizeof why));
    CHECK(current == 0 && strstr(why, "exported from"));

    /* an unreadable checkpoint is an error, not "stale" */
    CHECK_ERR(vlm_onnx_export_current(test_tmp("no-model"), out, NULL, &current, why, sizeof why), VLM_ERR_IO,
              "no-model");
}

static void test_availability(void) {
    char reason[512];
    int a = vlm_onnx_available(reason, sizeof reason);
    CHECK(a == have_ort());
    if (!a) {
        CHECK(strstr(reason, "run_onnx is unavailable") != NULL);
        fprintf(stderr, "  %s\n", reason);
    }
}

int main(void) {
    RUN(test_availability);
    RUN(test_fixture_cases);
    RUN(test_two_frames);
    RUN(test_export_variants);
    RUN(test_onnx_checker);
    RUN(test_broken_files);
    RUN(test_bad_requests);
    RUN(test_staleness);
    return test_summary();
}
