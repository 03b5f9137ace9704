/* Image decoding + preprocessing speed against Pillow + numpy doing the same work, in one run on one
 * machine: a 1920x1080 photo as JPEG (quality 90, written by Pillow from the fixture PNG) and as
 * PNG. Stages, as in transformers' load_image + Qwen2VLImageProcessor:
 *   decode         file → RGB (vlm_image_decode_file / Image.open + exif_transpose + convert)
 *   resize         smart_resize + Pillow BICUBIC (vlm_image_resize_bicubic / Image.resize)
 *   norm+patchify  rescale, normalize, patchify (vlm_image_patchify / numpy)
 *   preprocess     what the pipeline runs: vlm_preprocess_image, resize and patchify fused strip by
 *                  strip (Pillow: resize + numpy)
 *   total          decode + preprocess
 * Medians of --runs runs: wall-clock, and for the one-thread runs also the thread's CPU time, which
 * stays meaningful when the machine is busy (Pillow is single-threaded: the same two numbers are
 * taken in perf/pillow_preprocess.py, run right after vlm so the two never share the cores). Both
 * sides' pixel_values are checked to be identical (SHA-256).
 *
 *   perf_preprocess [--runs N] [IMAGE ...]      (default: the 1920x1080 fixture as JPEG and PNG) */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../tests/sha256.h"
#include "base/cpu.h"
#include "base/timer.h"
#include "image/preprocess.h"
#include "io/file.h"
#include "io/json.h"

enum { MAX_RUNS = 200, MAX_IMAGES = 8, N_STAGES = 5 };
static const char *k_stage[N_STAGES] = {"decode", "resize", "norm+patchify", "preprocess", "total"};

typedef struct {
    double wall[N_STAGES], cpu[N_STAGES]; /* median ms */
    int have_cpu;
    int w, h, rh, rw;
    int64_t patches;
    char sha[65];
} result;

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

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

static vlm_pool *g_pool; /* the fused preprocessing's threads (NULL: one) */

static int bench_vlm(const char *path, int runs, int with_cpu, result *r) {
    const vlm_preproc_config cfg = qwen_config();
    static double wall[N_STAGES][MAX_RUNS], cpu[N_STAGES][MAX_RUNS];
    for (int i = 0; i <= runs; i++) { /* run 0 warms up (page cache, thread pool) */
        vlm_image img, resized;
        vlm_pixel_values pv, fused;
        double t[5], c[5];
        t[0] = vlm_now(), c[0] = cpu_now();
        if (vlm_image_decode_file(path, 0, &img, NULL) != VLM_OK) return 0;
        t[1] = vlm_now(), c[1] = cpu_now();
        int rh, rw;
        if (vlm_smart_resize(img.height, img.width, 28, cfg.min_pixels, cfg.max_pixels, &rh, &rw) != VLM_OK ||
            vlm_image_resize_bicubic(&img, rw, rh, g_pool, &resized) != VLM_OK)
            return 0;
        t[2] = vlm_now(), c[2] = cpu_now();
        if (vlm_image_patchify(&resized, &cfg, g_pool, &pv) != VLM_OK) return 0;
        t[3] = vlm_now(), c[3] = cpu_now();
        vlm_image_free(&resized);
        vlm_pixel_values_free(&pv);
        t[4] = vlm_now(), c[4] = cpu_now();
        if (vlm_preprocess_image(&img, &cfg, 0, 0, g_pool, &fused) != VLM_OK) return 0;
        const double t5 = vlm_now(), c5 = cpu_now();
        if (i) {
            for (int s = 0; s < 3; s++)
                wall[s][i - 1] = (t[s + 1] - t[s]) * 1e3, cpu[s][i - 1] = (c[s + 1] - c[s]) * 1e3;
            wall[3][i - 1] = (t5 - t[4]) * 1e3, cpu[3][i - 1] = (c5 - c[4]) * 1e3;
            wall[4][i - 1] = wall[0][i - 1] + wall[3][i - 1], cpu[4][i - 1] = cpu[0][i - 1] + cpu[3][i - 1];
        }
        if (i == runs) {
            r->w = img.width, r->h = img.height, r->rh = rh, r->rw = rw, r->patches = fused.n_patches;
            sha256_hex(fused.data, (size_t)fused.n_patches * fused.patch_dim * sizeof(float), r->sha);
        }
        vlm_pixel_values_free(&fused);
        vlm_image_free(&img);
    }
    for (int s = 0; s < N_STAGES; s++) r->wall[s] = median(wall[s], runs), r->cpu[s] = median(cpu[s], runs);
    r->have_cpu = with_cpu;
    return 1;
}

static void print_row(const char *who, const double *v) {
    printf("  %-26s", who);
    for (int s = 0; s < N_STAGES; s++) printf(" %13.1f", v[s]);
    printf(" ms\n");
}

/* Pillow's numbers from one JSON line: its preprocess = resize + arith, total = decode + those. */
static int pillow_row(const cJSON *j, const char *prefix, double *v) {
    const char *keys[3] = {"decode", "resize", "arith"};
    for (int s = 0; s < 3; s++) {
        char k[32];
        snprintf(k, sizeof k, "%s%s", prefix, keys[s]);
        const cJSON *x = cJSON_GetObjectItem(j, k);
        if (!cJSON_IsNumber(x)) return 0;
        v[s] = x->valuedouble;
    }
    v[3] = v[1] + v[2];
    v[4] = v[0] + v[3];
    return 1;
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
    int made_jpeg = 0;
    if (!n) {
        if (!have_python) {
            fprintf(stderr, "perf_preprocess: /usr/bin/python3 with Pillow is needed to write the JPEG\n");
            return 1;
        }
        snprintf(jpeg, sizeof jpeg, "%s/photo_1920x1080_q90.jpg", tmp);
        snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/perf/pillow_preprocess.py --make-jpeg '%s' '%s'", VLM_SOURCE_DIR,
                 png, jpeg);
        if (system(cmd) != 0) return 1;
        images[n++] = jpeg;
        images[n++] = png;
        made_jpeg = 1;
    }
    FILE *la = fopen("/proc/loadavg", "r");
    char load[64] = "?";
    if (la) {
        if (!fgets(load, sizeof load, la)) load[0] = 0;
        load[strcspn(load, " ")] = 0;
        fclose(la);
    }
    const int threads = vlm_threads();
    vlm_pool *all = NULL;
    if (vlm_pool_create(threads, &all) != VLM_OK) return 1;
    printf("perf_preprocess: %s, %d threads, load average %s at start, median of %d runs\n", vlm_cpu_name(), threads,
           load, runs);
    result mine1[MAX_IMAGES], mineN[MAX_IMAGES];
    for (int i = 0; i < n; i++) {
        vlm_set_threads(1); /* the separate resize (OpenMP) */
        g_pool = NULL;
        int ok = bench_vlm(images[i], runs, 1, &mine1[i]);
        vlm_set_threads(threads);
        g_pool = all;
        ok = ok && bench_vlm(images[i], runs, 0, &mineN[i]);
        if (!ok) {
            fprintf(stderr, "perf_preprocess: %s: %s\n", images[i], vlm_last_error());
            return 1;
        }
    }
    cJSON *pil[MAX_IMAGES] = {0};
    char out[300];
    snprintf(out, sizeof out, "%s/pillow.jsonl", tmp);
    if (have_python) {
        int k =
            snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/perf/pillow_preprocess.py --runs %d", VLM_SOURCE_DIR, runs);
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
    } else {
        printf("(no /usr/bin/python3 with Pillow + numpy: vlm numbers only)\n");
    }
    for (int i = 0; i < n; i++) {
        const result *a = &mine1[i], *b = &mineN[i];
        printf("\n%s: %dx%d -> %dx%d (h x w), %lld patches\n", images[i], a->w, a->h, a->rh, a->rw,
               (long long)a->patches);
        printf("  %-26s", "");
        for (int s = 0; s < N_STAGES; s++) printf(" %13s", k_stage[s]);
        printf("\n");
        char who[64];
        print_row("vlm, 1 thread, wall", a->wall);
        print_row("vlm, 1 thread, CPU", a->cpu);
        snprintf(who, sizeof who, "vlm, %d threads, wall", threads);
        print_row(who, b->wall);
        double pw[N_STAGES], pc[N_STAGES];
        if (!pil[i] || !pillow_row(pil[i], "", pw) || !pillow_row(pil[i], "cpu_", pc)) continue;
        print_row("Pillow + numpy, wall", pw);
        print_row("Pillow + numpy, CPU", pc);
        const cJSON *sh = cJSON_GetObjectItem(pil[i], "pixel_values_sha256");
        printf("  identical pixel_values (SHA-256): %s\n",
               cJSON_IsString(sh) && !strcmp(sh->valuestring, a->sha) && !strcmp(a->sha, b->sha) ? "yes" : "NO");
        printf("  Pillow resize alone / vlm decode+preprocess: %.2fx CPU, %.2fx wall (1 thread), %.2fx wall (%d "
               "threads)\n",
               pc[1] / a->cpu[4], pw[1] / a->wall[4], pw[1] / b->wall[4], threads);
        printf("  Pillow + numpy total / vlm total:            %.2fx CPU, %.2fx wall (1 thread), %.2fx wall (%d "
               "threads)\n",
               pc[4] / a->cpu[4], pw[4] / a->wall[4], pw[4] / b->wall[4], threads);
        printf("  per stage, Pillow / vlm (CPU, 1 thread): decode %.2fx, resize %.2fx, norm+patchify %.2fx\n",
               pc[0] / a->cpu[0], pc[1] / a->cpu[1], pc[2] / a->cpu[2]);
    }
    for (int i = 0; i < n; i++) cJSON_Delete(pil[i]);
    if (made_jpeg) unlink(jpeg);
    unlink(out);
    rmdir(tmp);
    return 0;
}
