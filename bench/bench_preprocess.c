/* Image decoding + preprocessing speed against Pillow + numpy doing the same work, in one run on one
 * machine: a 1920x1080 photo as JPEG (quality 90, written by Pillow from the fixture PNG) and as
 * PNG, through decode, smart_resize + bicubic resize, and rescale + normalize + patchify (the stages
 * of transformers' load_image + Qwen2VLImageProcessor). Medians of --runs runs, vlm with one thread
 * and with all threads; bench/pillow_preprocess.py measures Pillow (single-threaded) right after,
 * and the pixel_values of both sides are checked to be identical (SHA-256).
 *
 *   bench_preprocess [--runs N] [IMAGE ...]      (default: the 1920x1080 fixture as JPEG and PNG) */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../tests/sha256.h"
#include "base/cpu.h"
#include "base/timer.h"
#include "image/preprocess.h"
#include "io/file.h"
#include "io/json.h"

enum { MAX_RUNS = 200, MAX_IMAGES = 8 };

typedef struct {
    double decode, resize, patchify, total; /* median ms */
    int w, h, rh, rw;
    int64_t patches;
    char sha[65];
} result;

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static vlm_preproc_config qwen_config(void) {
    vlm_preproc_config c = {.min_pixels = 3136, .max_pixels = 12845056, .patch_size = 14, .temporal_patch_size = 2,
                            .merge_size = 2, .rescale_factor = 1.0 / 255.0,
                            .mean = {0.48145466f, 0.4578275f, 0.40821073f},
                            .std = {0.26862954f, 0.26130258f, 0.27577711f},
                            .do_resize = 1, .do_rescale = 1, .do_normalize = 1};
    return c;
}

static int bench_vlm(const char *path, int runs, result *r) {
    const vlm_preproc_config cfg = qwen_config();
    double td[MAX_RUNS], tr[MAX_RUNS], tp[MAX_RUNS], tt[MAX_RUNS];
    for (int i = 0; i <= runs; i++) { /* run 0 warms up (page cache, thread pool) */
        vlm_image img, resized;
        vlm_pixel_values pv;
        double t0 = vlm_now();
        if (vlm_image_decode_file(path, 0, &img, NULL) != VLM_OK) return 0;
        double t1 = vlm_now();
        int rh, rw;
        if (vlm_smart_resize(img.height, img.width, 28, cfg.min_pixels, cfg.max_pixels, &rh, &rw) != VLM_OK ||
            vlm_image_resize_bicubic(&img, rw, rh, &resized) != VLM_OK)
            return 0;
        double t2 = vlm_now();
        if (vlm_image_patchify(&resized, &cfg, &pv) != VLM_OK) return 0;
        double t3 = vlm_now();
        if (i) td[i - 1] = (t1 - t0) * 1e3, tr[i - 1] = (t2 - t1) * 1e3, tp[i - 1] = (t3 - t2) * 1e3,
               tt[i - 1] = (t3 - t0) * 1e3;
        if (i == runs) {
            r->w = img.width, r->h = img.height, r->rh = rh, r->rw = rw, r->patches = pv.n_patches;
            sha256_hex(pv.data, (size_t)pv.n_patches * pv.patch_dim * sizeof(float), r->sha);
        }
        vlm_pixel_values_free(&pv);
        vlm_image_free(&resized);
        vlm_image_free(&img);
    }
    r->decode = median(td, runs), r->resize = median(tr, runs), r->patchify = median(tp, runs);
    r->total = median(tt, runs);
    return 1;
}

static void row(const char *who, const result *r) {
    printf("  %-22s %8.1f %8.1f %14.1f %8.1f ms\n", who, r->decode, r->resize, r->patchify, r->total);
}

int main(int argc, char **argv) {
    int runs = 10;
    const char *images[MAX_IMAGES];
    int n = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--runs") && i + 1 < argc) runs = atoi(argv[++i]);
        else if (n < MAX_IMAGES) images[n++] = argv[i];
    }
    if (runs < 1 || runs > MAX_RUNS) runs = 10;
    const int have_python = system("/usr/bin/python3 -c 'import PIL, numpy' >/dev/null 2>&1") == 0;
    char tmp[] = "/tmp/vlm-bench-XXXXXX", jpeg[256], cmd[4096];
    if (!mkdtemp(tmp)) return 1;
    const char *png = VLM_TEST_FIXTURES "/cases/preproc_photo_1920x1080/photo_1920x1080.png";
    if (!n) {
        if (!have_python) {
            fprintf(stderr, "bench_preprocess: /usr/bin/python3 with Pillow is needed to write the JPEG\n");
            return 1;
        }
        snprintf(jpeg, sizeof jpeg, "%s/photo_1920x1080_q90.jpg", tmp);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/bench/pillow_preprocess.py --make-jpeg '%s' '%s'",
                 VLM_SOURCE_DIR, png, jpeg);
        if (system(cmd) != 0) return 1;
        images[n++] = jpeg;
        images[n++] = png;
    }
    printf("bench_preprocess: %s, %d threads available (machine may be shared), median of %d runs\n", vlm_cpu_name(),
           vlm_threads(), runs);
    result mine1[MAX_IMAGES], mineN[MAX_IMAGES];
    const int threads = vlm_threads();
    for (int i = 0; i < n; i++) {
        vlm_set_threads(1);
        int ok = bench_vlm(images[i], runs, &mine1[i]);
        vlm_set_threads(threads);
        ok = ok && bench_vlm(images[i], runs, &mineN[i]);
        if (!ok) {
            fprintf(stderr, "bench_preprocess: %s: %s\n", images[i], vlm_last_error());
            return 1;
        }
    }
    /* Pillow after vlm, so the two never share the cores */
    cJSON *pil[MAX_IMAGES] = {0};
    if (have_python) {
        char out[300];
        snprintf(out, sizeof out, "%s/pillow.jsonl", tmp);
        int k = snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/bench/pillow_preprocess.py --runs %d", VLM_SOURCE_DIR,
                         runs);
        for (int i = 0; i < n; i++) k += snprintf(cmd + k, sizeof cmd - (size_t)k, " '%s'", images[i]);
        snprintf(cmd + k, sizeof cmd - (size_t)k, " > '%s'", out);
        char *text = NULL;
        size_t len = 0;
        if (system(cmd) == 0 && vlm_read_file(out, 0, &text, &len) == VLM_OK) {
            char *line = text;
            for (int i = 0; i < n && line && *line; i++) {
                char *nl = strchr(line, '\n');
                if (nl) *nl = 0;
                if (vlm_json_parse(line, strlen(line), "pillow_preprocess.py output", &pil[i]) != VLM_OK) pil[i] = NULL;
                line = nl ? nl + 1 : NULL;
            }
        }
        free(text);
    }
    for (int i = 0; i < n; i++) {
        const result *a = &mine1[i], *b = &mineN[i];
        printf("\n%s: %dx%d -> %dx%d (h x w), %lld patches\n", images[i], a->w, a->h, a->rh, a->rw,
               (long long)a->patches);
        printf("  %-22s %8s %8s %14s %8s\n", "", "decode", "resize", "norm+patchify", "total");
        row("vlm, 1 thread", a);
        char who[64];
        snprintf(who, sizeof who, "vlm, %d threads", threads);
        row(who, b);
        if (!pil[i]) continue;
        const cJSON *d = cJSON_GetObjectItem(pil[i], "decode"), *rs = cJSON_GetObjectItem(pil[i], "resize"),
                    *ar = cJSON_GetObjectItem(pil[i], "arith"),
                    *sh = cJSON_GetObjectItem(pil[i], "pixel_values_sha256");
        if (!cJSON_IsNumber(d) || !cJSON_IsNumber(rs) || !cJSON_IsNumber(ar)) continue;
        result p = {.decode = d->valuedouble, .resize = rs->valuedouble, .patchify = ar->valuedouble};
        p.total = p.decode + p.resize + p.patchify;
        row("Pillow + numpy", &p);
        printf("  same pixel_values as Pillow + numpy: %s\n",
               cJSON_IsString(sh) && !strcmp(sh->valuestring, a->sha) && !strcmp(a->sha, b->sha) ? "yes (SHA-256)" : "NO");
        printf("  Pillow resize alone / vlm decode+preprocess: %.2fx (1 thread), %.2fx (%d threads)\n",
               p.resize / a->total, p.resize / b->total, threads);
        printf("  Pillow + numpy total / vlm total:            %.2fx (1 thread), %.2fx (%d threads)\n",
               p.total / a->total, p.total / b->total, threads);
        printf("  stage ratios, Pillow / vlm (1 thread): decode %.2fx, resize %.2fx, norm+patchify %.2fx\n",
               p.decode / a->decode, p.resize / a->resize, p.patchify / a->patchify);
    }
    for (int i = 0; i < n; i++) cJSON_Delete(pil[i]);
    if (n && !strncmp(images[0], tmp, strlen(tmp))) unlink(images[0]);
    snprintf(cmd, sizeof cmd, "%s/pillow.jsonl", tmp);
    unlink(cmd);
    rmdir(tmp);
    return 0;
}
