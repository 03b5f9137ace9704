/* Fixture parity of image decoding and preprocessing: every image of every case under
 * fixtures/cases/ (preproc_*, and the model cases that have images) is decoded and preprocessed, and
 * compared with what Pillow 9.4 + transformers produced: the SHA-256 of the decoded RGB
 * (decoded_rgb_sha256), the size after the EXIF rotation, the grid, pixel_values (all rows, or the
 * sampled rows and row sums of the large cases) and the SHA-256 of the float32 pixel_values —
 * i.e. bit-exact. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "image/preprocess.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "sha256.h"

enum { MAX_IMAGES = 4 };

static const cJSON *image_meta(const cJSON *expected, int i, int n) {
    const cJSON *imgs = cJSON_GetObjectItemCaseSensitive(expected, "images");
    if (cJSON_IsArray(imgs)) return cJSON_GetArrayItem(imgs, i);
    return n == 1 ? expected : NULL;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int json_pair(const cJSON *o, const char *key, int out[2]) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2) return 0;
    out[0] = cJSON_GetArrayItem(v, 0)->valueint;
    out[1] = cJSON_GetArrayItem(v, 1)->valueint;
    return 1;
}

static int g_cases, g_images, g_rgb_hashes, g_pv_hashes;
static vlm_pool *g_pool; /* every core, as a model's backend has */

static void check_pixel_values(const char *name, const vlm_safetensors *st, const float *pv, int64_t n, int dim,
                               const cJSON *expected) {
    const vlm_st_entry *full = vlm_st_find(st, "pixel_values");
    if (full) {
        CHECK_MSG(full->shape[0] == n && full->shape[1] == dim, "%s: pixel_values shape", name);
        if (full->shape[0] == n && full->shape[1] == dim) {
            float d = test_max_abs_diff(pv, full->data, (size_t)n * dim);
            CHECK_MSG(d <= 1e-6f, "%s: pixel_values max diff %g", name, d);
        }
    } else {
        const vlm_st_entry *rows = vlm_st_find(st, "pixel_values_sample_rows");
        const vlm_st_entry *samp = vlm_st_find(st, "pixel_values_sampled");
        const vlm_st_entry *sums = vlm_st_find(st, "pixel_values_row_sums");
        CHECK_MSG(rows && samp && sums, "%s: no pixel_values in expected.safetensors", name);
        if (rows && samp && sums) {
            const int64_t *r = rows->data;
            for (int64_t i = 0; i < rows->shape[0]; i++) {
                CHECK(r[i] >= 0 && r[i] < n);
                if (r[i] < 0 || r[i] >= n) continue;
                float d = test_max_abs_diff(pv + r[i] * dim, (const float *)samp->data + i * dim, (size_t)dim);
                CHECK_MSG(d <= 1e-6f, "%s: sampled row %lld max diff %g", name, (long long)r[i], d);
            }
            CHECK(sums->shape[0] == n);
            const float *s = sums->data;
            int bad = 0;
            for (int64_t i = 0; i < n && sums->shape[0] == n; i++) {
                double acc = 0;
                for (int j = 0; j < dim; j++) acc += pv[i * dim + j];
                if (fabs((float)acc - s[i]) > 1e-4 * (1 + fabs(s[i]))) bad++;
            }
            CHECK_MSG(bad == 0, "%s: %d row sums differ", name, bad);
        }
    }
    const char *want = json_str(expected, "pixel_values_sha256_f32le");
    if (want) {
        char got[65];
        sha256_hex(pv, (size_t)n * dim * sizeof(float), got);
        CHECK_MSG(!strcmp(got, want), "%s: pixel_values SHA-256 %s, expected %s", name, got, want);
        g_pv_hashes += !strcmp(got, want);
    }
}

static void run_case(const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/request.json", test_fixture("cases"), name);
    cJSON *req = NULL, *exp = NULL;
    if (vlm_json_load(path, &req) != VLM_OK) {
        CHECK_MSG(0, "%s: %s", name, vlm_last_error());
        return;
    }
    const char *files[MAX_IMAGES];
    int n_img = 0;
    const cJSON *one = cJSON_GetObjectItemCaseSensitive(req, "image");
    const cJSON *many = cJSON_GetObjectItemCaseSensitive(req, "images");
    if (cJSON_IsString(one)) files[n_img++] = one->valuestring;
    const cJSON *it;
    cJSON_ArrayForEach(it, many) if (cJSON_IsString(it) && n_img < MAX_IMAGES) files[n_img++] = it->valuestring;
    if (n_img == 0) {
        cJSON_Delete(req);
        return;
    }
    g_cases++;
    /* the model whose preprocessor_config.json applies; cases without one (the 1920x1080 photo) used
     * the real Qwen2(.5)-VL values, which every fixture model carries */
    const char *model = json_str(req, "model");
    char dir[1024];
    if (model) snprintf(dir, sizeof dir, "%s/%s/%s", test_fixture("cases"), name, model);
    else snprintf(dir, sizeof dir, "%s", test_fixture("models/tiny-qwen2_5-vl"));
    vlm_preproc_config cfg;
    snprintf(path, sizeof path, "%s/%s/expected.json", test_fixture("cases"), name);
    vlm_safetensors *st = NULL;
    char stpath[1024];
    snprintf(stpath, sizeof stpath, "%s/%s/expected.safetensors", test_fixture("cases"), name);
    vlm_pixel_values pv[MAX_IMAGES] = {{0}};
    if (vlm_preproc_config_load(dir, &cfg) != VLM_OK || vlm_json_load(path, &exp) != VLM_OK ||
        vlm_st_open(stpath, &st) != VLM_OK) {
        CHECK_MSG(0, "%s: %s", name, vlm_last_error());
        goto out;
    }
    int64_t total = 0;
    for (int i = 0; i < n_img; i++) {
        g_images++;
        const cJSON *meta = image_meta(exp, i, n_img);
        snprintf(path, sizeof path, "%s/%s/%s", test_fixture("cases"), name, files[i]);
        vlm_image img;
        vlm_image_info info;
        vlm_status s = vlm_image_decode_file(path, 0, &img, &info);
        CHECK_MSG(s == VLM_OK, "%s: %s", name, vlm_last_error());
        if (s != VLM_OK) goto out;
        int wh[2];
        if (json_pair(meta, "image_size_wh", wh))
            CHECK_MSG(img.width == wh[0] && img.height == wh[1], "%s/%s: size %dx%d, expected %dx%d", name, files[i],
                      img.width, img.height, wh[0], wh[1]);
        if (json_pair(meta, "file_size_wh", wh)) CHECK(info.file_width == wh[0] && info.file_height == wh[1]);
        const char *mode = json_str(meta, "file_mode");
        if (mode) CHECK_MSG(!strcmp(mode, info.mode), "%s: mode %s, expected %s", name, info.mode, mode);
        const char *want = json_str(meta, "decoded_rgb_sha256");
        if (want) {
            char got[65];
            sha256_hex(img.rgb, (size_t)img.width * img.height * 3, got);
            CHECK_MSG(!strcmp(got, want), "%s/%s: decoded RGB SHA-256 %s, expected %s", name, files[i], got, want);
            g_rgb_hashes += !strcmp(got, want);
        }
        s = vlm_preprocess_image(&img, &cfg, 0, 0, g_pool, &pv[i]);
        vlm_image_free(&img);
        CHECK_MSG(s == VLM_OK, "%s: %s", name, vlm_last_error());
        if (s != VLM_OK) goto out;
        int hw[2];
        if (json_pair(meta, "resized_hw", hw))
            CHECK_MSG(pv[i].resized_h == hw[0] && pv[i].resized_w == hw[1], "%s: resized %dx%d, expected %dx%d", name,
                      pv[i].resized_h, pv[i].resized_w, hw[0], hw[1]);
        total += pv[i].n_patches;
    }
    /* grid and pixel_values of all images, concatenated as the processor does */
    const vlm_st_entry *grid = vlm_st_find(st, "image_grid_thw");
    CHECK_MSG(grid && grid->dtype == VLM_DT_I64 && grid->shape[0] == n_img && grid->shape[1] == 3, "%s: grid", name);
    if (grid && grid->shape[0] == n_img)
        for (int i = 0; i < n_img; i++)
            for (int j = 0; j < 3; j++)
                CHECK_MSG(((const int64_t *)grid->data)[i * 3 + j] == (&pv[i].grid.t)[j], "%s: grid[%d][%d]", name, i,
                          j);
    const int dim = pv[0].patch_dim;
    float *all = malloc((size_t)total * dim * sizeof(float));
    CHECK(all != NULL);
    if (all) {
        size_t off = 0;
        for (int i = 0; i < n_img; i++) {
            memcpy(all + off, pv[i].data, (size_t)pv[i].n_patches * dim * sizeof(float));
            off += (size_t)pv[i].n_patches * dim;
        }
        check_pixel_values(name, st, all, total, dim, exp);
        free(all);
    }
out:
    for (int i = 0; i < n_img; i++) vlm_pixel_values_free(&pv[i]);
    vlm_st_close(st);
    cJSON_Delete(exp);
    cJSON_Delete(req);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void test_all_cases(void) {
    DIR *d = opendir(test_fixture("cases"));
    CHECK(d != NULL);
    if (!d) return;
    char *names[256];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 256)
        if (e->d_name[0] != '.') names[n++] = strdup(e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    for (int i = 0; i < n; i++) {
        int before = g_test_failures;
        run_case(names[i]);
        if (g_test_failures != before) fprintf(stderr, "  case %s failed\n", names[i]);
        free(names[i]);
    }
    fprintf(stderr, "  %d cases, %d images: %d decoded-RGB hashes and %d pixel_values hashes matched\n", g_cases,
            g_images, g_rgb_hashes, g_pv_hashes);
    /* every case with images must have been seen: 15 preprocess-only + 8 model cases with images */
    CHECK(g_cases >= 23 && g_images >= 24);
}

int main(void) {
    if (vlm_pool_create(0, &g_pool) != VLM_OK) return 1;
    RUN(test_all_cases);
    vlm_pool_free(g_pool);
    return test_summary();
}
