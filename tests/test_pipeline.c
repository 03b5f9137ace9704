/* End to end through the public API (include/vlm.h), from the image files and the prompt text:
 * for every fixture case and every mode (original, split_native, run_onnx where ONNX Runtime is
 * built), the input ids and the 16 greedy ids equal the fixture's, and every intermediate the run
 * dumps matches expected.safetensors within the fixture tolerances. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "vlm.h"

typedef struct {
    char name[64];
    char model[1024];
    char prompt[4096];
    char images[2][1024];
    int n_images;
    int max_new_tokens;
} fixture_case;

static int load_case(const char *name, fixture_case *c) {
    char path[1024];
    snprintf(path, sizeof path, "%s/request.json", test_fixture("cases"));
    snprintf(path, sizeof path, "%s/%s/request.json", test_fixture("cases"), name);
    cJSON *j;
    if (vlm_json_load(path, &j) != VLM_OK) return 0;
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    const cJSON *prompt = cJSON_GetObjectItem(j, "prompt"), *model = cJSON_GetObjectItem(j, "model");
    const cJSON *pre = cJSON_GetObjectItem(j, "preprocess_only");
    int ok = cJSON_IsString(prompt) && cJSON_IsString(model) && !cJSON_IsTrue(pre);
    if (ok) {
        snprintf(c->prompt, sizeof c->prompt, "%s", prompt->valuestring);
        snprintf(c->model, sizeof c->model, "%s/%s/%s", test_fixture("cases"), name, model->valuestring);
        const cJSON *img = cJSON_GetObjectItem(j, "image"), *imgs = cJSON_GetObjectItem(j, "images"), *e;
        if (cJSON_IsString(img))
            snprintf(c->images[c->n_images++], 1024, "%s/%s/%s", test_fixture("cases"), name, img->valuestring);
        cJSON_ArrayForEach(e, imgs) if (cJSON_IsString(e) && c->n_images < 2)
            snprintf(c->images[c->n_images++], 1024, "%s/%s/%s", test_fixture("cases"), name, e->valuestring);
        const cJSON *mx = cJSON_GetObjectItem(j, "max_new_tokens");
        c->max_new_tokens = cJSON_IsNumber(mx) ? mx->valueint : 16;
    }
    cJSON_Delete(j);
    return ok;
}

/* Compares one dumped tensor with the fixture's, with the fixture README's tolerance for it. */
static void compare_tensor(const char *case_name, const char *mode, const vlm_st_entry *got, const vlm_st_entry *want) {
    char what[256];
    snprintf(what, sizeof what, "%s %s %s", case_name, mode, want->name);
    int same_shape = got->ndim == want->ndim;
    for (int i = 0; same_shape && i < got->ndim; i++) same_shape = got->shape[i] == want->shape[i];
    /* generated_ids: the fixture stores what was generated; a dump holds the same */
    CHECK_MSG(same_shape && got->dtype == want->dtype, "%s: shape or dtype differs", what);
    if (!same_shape || got->dtype != want->dtype) return;
    if (want->dtype == VLM_DT_I64) {
        CHECK_MSG(!memcmp(got->data, want->data, want->nbytes), "%s: integers differ", what);
        return;
    }
    size_t n = want->nbytes / 4;
    const char *nm = want->name;
    if (!strcmp(nm, "pixel_values")) test_close(what, got->data, want->data, n, 0, 1e-6f);
    else if (!strcmp(nm, "logits_last")) test_close(what, got->data, want->data, n, 0, 1e-3f);
    else test_close(what, got->data, want->data, n, 1e-4f, 1e-5f);
}

/* Relative RMS difference of the last-position logits: the documented tolerance of 4-bit weights
 * (Q4_0 linear layers, Q8_0 embedding / lm_head) against the f32 reference is 0.35 on the tiny
 * random fixtures (measured 0.07-0.25: hidden sizes of 32-64 average little noise out); greedy ids
 * are reported, not required (the random models' logits are nearly flat, so 4-bit changes the
 * argmax). */
static void check_quantized(const fixture_case *c, const vlm_result *res, vlm_safetensors *got, vlm_safetensors *want) {
    const vlm_st_entry *g = vlm_st_find(got, "logits_last"), *w = vlm_st_find(want, "logits_last");
    CHECK(g && w && g->nbytes == w->nbytes);
    if (!g || !w || g->nbytes != w->nbytes) return;
    const float *a = g->data, *b = w->data;
    double num = 0, den = 0;
    for (size_t i = 0; i < w->nbytes / 4; i++) {
        num += (double)(a[i] - b[i]) * (a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    double rel = sqrt(num / den);
    const vlm_st_entry *gen = vlm_st_find(want, "generated_ids");
    int same = 0;
    for (int i = 0; gen && i < res->n_generated && i < gen->shape[0]; i++)
        same += res->generated_ids[i] == ((const int64_t *)gen->data)[i];
    fprintf(stderr, "  %s 4-bit: logits relative RMS %.3f of f32, greedy ids equal to the f32 fixture: %d/%lld\n",
            c->name, rel, same, gen ? (long long)gen->shape[0] : 0LL);
    CHECK_MSG(rel < 0.35, "%s: 4-bit logits relative RMS %.3f >= 0.35", c->name, rel);
}

/* --precision bf16 against the f32 fixtures: per stage, the largest difference relative to the
 * stage's largest magnitude (max |got - ref| / max |ref|), and the greedy ids that agree. The
 * documented tolerance (docs/DESIGN.md) is BF16_STAGE_TOL for every stage; greedy ids are reported,
 * not required (the tiny random models' logits are nearly flat). */
#define BF16_STAGE_TOL 0.03
static double g_bf16_worst;
static int g_bf16_same, g_bf16_total;

static void check_bf16(const fixture_case *c, const vlm_result *res, vlm_safetensors *got, vlm_safetensors *want) {
    char line[4096];
    size_t len = 0;
    line[0] = 0;
    for (int i = 0; i < want->n_entries; i++) {
        const vlm_st_entry *w = &want->entries[i], *g = vlm_st_find(got, w->name);
        if (!g || w->dtype != VLM_DT_F32 || g->dtype != VLM_DT_F32 || g->nbytes != w->nbytes) continue;
        const float *a = g->data, *b = w->data;
        double maxd = 0, maxr = 0;
        for (size_t k = 0; k < w->nbytes / 4; k++) {
            double d = fabs((double)a[k] - b[k]), r = fabs((double)b[k]);
            if (!(d <= maxd)) maxd = d; /* NaN counts as the worst */
            if (r > maxr) maxr = r;
        }
        double rel = maxr > 0 ? maxd / maxr : maxd;
        if (!(rel <= g_bf16_worst)) g_bf16_worst = rel;
        if (len < sizeof line - 128)
            len += (size_t)snprintf(line + len, sizeof line - len, " %s %.1e/%.1e", w->name, maxd, rel);
        CHECK_MSG(rel <= BF16_STAGE_TOL, "%s bf16: %s max |diff| %.3g = %.3g of max |ref| > %.2g", c->name, w->name,
                  maxd, rel, BF16_STAGE_TOL);
    }
    const vlm_st_entry *gen = vlm_st_find(want, "generated_ids");
    int same = 0, n = gen ? (int)gen->shape[0] : 0;
    for (int i = 0; i < res->n_generated && i < n; i++) {
        if (res->generated_ids[i] != ((const int64_t *)gen->data)[i]) break;
        same++;
    }
    g_bf16_same += same, g_bf16_total += n;
    fprintf(stderr,
            "  %s bf16 (stage max abs / relative):%s; greedy ids equal to the f32 fixture's before the first "
            "difference: %d/%d\n",
            c->name, line, same, n);
}

static void run_case_q(const fixture_case *c, vlm_mode mode, int quantize) {
    vlm_load_options o;
    vlm_load_options_init(&o);
    o.model_id = c->model;
    o.mode = mode;
    o.quantize = quantize == 1;
    o.precision = quantize == 2 ? VLM_PRECISION_BF16 : VLM_PRECISION_F32;
    o.device = VLM_DEV_CPU;
    char out_dir[1024];
    snprintf(out_dir, sizeof out_dir, "%s", test_tmp(strrchr(c->model, '/') + 1));
    o.output_dir = out_dir;
    vlm_model *m;
    vlm_status s = vlm_load(&o, &m);
    CHECK_MSG(s == VLM_OK, "%s %s: load: %s", c->name, vlm_mode_name(mode), vlm_last_error());
    if (s != VLM_OK) return;
    const char *images[2] = {c->images[0], c->images[1]};
    vlm_request r;
    vlm_request_init(&r);
    r.images = images;
    r.n_images = c->n_images;
    r.text = c->prompt;
    r.sampling.greedy = 1;
    r.sampling.max_tokens = c->max_new_tokens;
    char dump[1024];
    snprintf(dump, sizeof dump, "%s/dump-%s-%s.safetensors", test_tmpdir(), c->name, vlm_mode_name(mode));
    r.dump_path = dump;
    vlm_result res;
    s = vlm_generate(m, &r, &res);
    CHECK_MSG(s == VLM_OK, "%s %s: generate: %s", c->name, vlm_mode_name(mode), vlm_last_error());
    char exp_path[1024];
    snprintf(exp_path, sizeof exp_path, "%s/%s/expected.safetensors", test_fixture("cases"), c->name);
    vlm_safetensors *want = NULL, *got = NULL;
    if (s == VLM_OK) {
        CHECK_OK(vlm_st_open(exp_path, &want));
        CHECK_OK(vlm_st_open(dump, &got));
    }
    if (want && got && quantize == 1) check_quantized(c, &res, got, want);
    if (want && got && quantize == 2) check_bf16(c, &res, got, want);
    if (want && got && !quantize) {
        const vlm_st_entry *ids = vlm_st_find(want, "input_ids"), *gen = vlm_st_find(want, "generated_ids");
        int ok = ids && (int64_t)res.n_input == ids->shape[0];
        for (int i = 0; ok && i < res.n_input; i++) ok = res.input_ids[i] == ((const int64_t *)ids->data)[i];
        CHECK_MSG(ok, "%s %s: input ids differ from the fixture", c->name, vlm_mode_name(mode));
        ok = gen && (int64_t)res.n_generated == gen->shape[0];
        for (int i = 0; ok && i < res.n_generated; i++) ok = res.generated_ids[i] == ((const int64_t *)gen->data)[i];
        CHECK_MSG(ok, "%s %s: generated ids differ from the fixture", c->name, vlm_mode_name(mode));
        int compared = 0;
        for (int i = 0; i < want->n_entries; i++) {
            const vlm_st_entry *w = &want->entries[i], *g = vlm_st_find(got, w->name);
            if (!g) continue;
            compare_tensor(c->name, vlm_mode_name(mode), g, w);
            compared++;
        }
        /* the text side always dumps these; the vision side where it ran natively */
        CHECK_MSG(compared >= (c->n_images ? 8 : 6), "%s %s: only %d tensors dumped", c->name, vlm_mode_name(mode),
                  compared);
    }
    vlm_st_close(want);
    vlm_st_close(got);
    vlm_result_free(&res);
    vlm_model_free(m);
}

static void run_case(const fixture_case *c, vlm_mode mode) { run_case_q(c, mode, 0); }

static char g_cases[64][64];
static int g_n_cases;

static int cmp(const void *a, const void *b) { return strcmp(a, b); }

static void list_cases(void) {
    DIR *d = opendir(test_fixture("cases"));
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && g_n_cases < 64)
        if (e->d_name[0] != '.' && strncmp(e->d_name, "preproc_", 8) != 0)
            snprintf(g_cases[g_n_cases++], 64, "%s", e->d_name);
    if (d) closedir(d);
    qsort(g_cases, (size_t)g_n_cases, sizeof g_cases[0], cmp);
}

static void for_mode(vlm_mode mode) {
    for (int i = 0; i < g_n_cases; i++) {
        fixture_case c;
        if (load_case(g_cases[i], &c)) run_case(&c, mode);
    }
}

static void test_original(void) { for_mode(VLM_MODE_ORIGINAL); }
static void test_split_native(void) { for_mode(VLM_MODE_SPLIT_NATIVE); }
static void test_run_onnx(void) {
    char why[512];
    if (!vlm_onnx_available(why, sizeof why)) {
        fprintf(stderr, "  run_onnx not tested: %s\n", why);
        return;
    }
    for_mode(VLM_MODE_RUN_ONNX);
}

static void test_quantized(void) {
    for (int i = 0; i < g_n_cases; i++) {
        fixture_case c;
        if (load_case(g_cases[i], &c)) run_case_q(&c, VLM_MODE_ORIGINAL, 1);
    }
}

static void test_bf16(void) {
    for (int i = 0; i < g_n_cases; i++) {
        fixture_case c;
        if (load_case(g_cases[i], &c)) run_case_q(&c, VLM_MODE_ORIGINAL, 2);
    }
    fprintf(stderr, "  bf16: worst stage %.3g of its max |ref| (tolerance %.2g); greedy ids agreeing %d/%d\n",
            g_bf16_worst, BF16_STAGE_TOL, g_bf16_same, g_bf16_total);
}

int main(void) {
    list_cases();
    CHECK(g_n_cases >= 11);
    RUN(test_original);
    RUN(test_split_native);
    RUN(test_run_onnx);
    RUN(test_quantized);
    RUN(test_bf16);
    return test_summary();
}
