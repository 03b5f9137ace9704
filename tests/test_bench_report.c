/* Benchmark reporting on synthetic results (no pipeline needed): JSON structure, keys and
 * statistics recomputed from "values", CSV header and rows, the console summary's shape, fastest
 * mode / relative performance / throughput order, targets pass/fail, skipped modes, the timestamped
 * files of both comparisons, and well-formed SVG / HTML charts. Also the image helpers. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bench/bench.h"
#include "harness.h"
#include "io/json.h"

static const char *k_img1 = "cases/preproc_jpeg_641x479/jpeg_photo_641x479.jpg";
static const char *k_img2 = "cases/preproc_photo_1920x1080/photo_1920x1080.png";
static const char *k_onnx_reason = "ONNX Runtime is not available in this build";

/* ---- synthetic results ---------------------------------------------------------------------- */

static void make_run(vlm_bench_run *r, double dur, double tokens, double mem) {
    memset(r, 0, sizeof *r);
    double *m = r->m;
    m[VLM_BM_DURATION] = dur;
    m[VLM_BM_TOKENS_GENERATED] = tokens;
    m[VLM_BM_TOKENS_PER_SEC] = tokens / dur;
    m[VLM_BM_PREPROCESS_TIME] = 0.05 * dur;
    m[VLM_BM_VISION_TIME] = 0.15 * dur;
    m[VLM_BM_PREFILL_TIME] = 0.2 * dur;
    m[VLM_BM_DECODE_TIME] = 0.55 * dur;
    m[VLM_BM_TTFT] = 0.4 * dur;
    m[VLM_BM_PREFILL_TPS] = 700 / (0.2 * dur);
    m[VLM_BM_DECODE_TPS] = (tokens - 1) / (0.55 * dur);
    m[VLM_BM_CPU_MEM_DELTA] = mem;
    m[VLM_BM_CPU_PEAK_MEM] = 7000 + mem;
    m[VLM_BM_VISION_SIZE] = 1277.5;
    m[VLM_BM_LANGUAGE_SIZE] = 5888.25;
}

typedef struct {
    double dur[3], tokens, mem[3];
} mode_runs;

/* original: 2.0 / 2.5 / 3.0 s, 128 tokens; split_native: 1.0 / 1.25 / 1.5 s but only 32 tokens (the
 * fastest mode is not the one with the highest throughput); run_onnx skipped. */
static const mode_runs k_original = {{2.0, 2.5, 3.0}, 128, {1.0 / 3.0, 0.1 + 0.2, -2.0 / 7.0}};
static const mode_runs k_split = {{1.0, 1.25, 1.5}, 32, {10, 20, 30}};

static void build(vlm_bench_results *r, vlm_device dev, int n_images, int onnx_runs, double scale) {
    const char *imgs[2] = {test_fixture(k_img1), test_fixture(k_img2)};
    vlm_bench_config c;
    vlm_bench_config_init(&c);
    c.images = imgs;
    c.n_images = n_images;
    c.runs = 3;
    c.device = dev;
    CHECK_OK(vlm_bench_results_init(r, &c, dev));
    if (!r->images) return;
    if (dev == VLM_DEV_CUDA) snprintf(r->device_name, sizeof r->device_name, "NVIDIA Test GPU");
    const mode_runs *mr[2] = {&k_original, &k_split};
    for (int i = 0; i < n_images; i++)
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < 3; j++) {
                vlm_bench_run run;
                make_run(&run, mr[k]->dur[j] * scale * (i + 1), mr[k]->tokens, mr[k]->mem[j]);
                if (dev == VLM_DEV_CUDA) run.m[VLM_BM_GPU_PEAK_MEM] = 3500 + 100 * k;
                CHECK_OK(vlm_bench_add_run(r, i, k, &run));
            }
    if (onnx_runs) {
        for (int i = 0; i < n_images; i++)
            for (int j = 0; j < 3; j++) {
                vlm_bench_run run;
                make_run(&run, 1.2, 128, 0);
                run.m[VLM_BM_ONNX_SIZE] = 1300;
                run.m[VLM_BM_GPU_PEAK_MEM] = 2900;
                CHECK_OK(vlm_bench_add_run(r, i, 2, &run));
            }
    } else {
        vlm_bench_skip(r, 2, k_onnx_reason);
    }
    CHECK_OK(vlm_bench_finish(r));
}

static char *capture(void (*fn)(FILE *, const vlm_bench_results *), const vlm_bench_results *r) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fn(f, r);
    fclose(f);
    return buf;
}

static cJSON *parse_json(const vlm_bench_results *r) {
    vlm_strbuf b = {0};
    CHECK_OK(vlm_bench_json(r, &b));
    cJSON *root = NULL;
    CHECK_OK(vlm_json_parse(b.data, b.len, "bench json", &root));
    vlm_sb_free(&b);
    return root;
}

/* ---- JSON ----------------------------------------------------------------------------------- */

static void check_mode_object(const cJSON *mode, const char *name) {
    CHECK_MSG(cJSON_IsObject(mode), "%s", name);
    if (!cJSON_IsObject(mode)) return;
    const cJSON *nr = cJSON_GetObjectItemCaseSensitive(mode, "num_runs");
    CHECK(cJSON_IsNumber(nr));
    int n = nr ? nr->valueint : 0;
    CHECK(cJSON_GetArraySize(mode) == VLM_BM_COUNT + 1);
    for (int k = 0; k < VLM_BM_COUNT; k++) {
        const char *key = vlm_bench_metrics[k].key;
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(mode, key);
        CHECK_MSG(cJSON_IsObject(m) && cJSON_GetArraySize(m) == 6, "%s.%s", name, key);
        if (!cJSON_IsObject(m)) continue;
        const cJSON *vals = cJSON_GetObjectItemCaseSensitive(m, "values");
        CHECK_MSG(cJSON_IsArray(vals) && cJSON_GetArraySize(vals) == n, "%s.%s.values", name, key);
        double v[64], sum = 0, lo = 1e300, hi = -1e300;
        int nv = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, vals) if (nv < 64) {
            v[nv] = e->valuedouble;
            sum += v[nv];
            lo = fmin(lo, v[nv]);
            hi = fmax(hi, v[nv]);
            nv++;
        }
        if (nv == 0) continue;
        /* a direct computation over the values written */
        double mean = sum / nv, ss = 0;
        for (int i = 0; i < nv; i++) ss += (v[i] - mean) * (v[i] - mean);
        double sorted[64];
        memcpy(sorted, v, sizeof(double) * nv);
        for (int i = 1; i < nv; i++)
            for (int j = i; j > 0 && sorted[j] < sorted[j - 1]; j--) {
                double t = sorted[j];
                sorted[j] = sorted[j - 1];
                sorted[j - 1] = t;
            }
        double median = nv % 2 ? sorted[nv / 2] : (sorted[nv / 2 - 1] + sorted[nv / 2]) / 2;
        double got_mean = cJSON_GetObjectItemCaseSensitive(m, "mean")->valuedouble;
        double got_std = cJSON_GetObjectItemCaseSensitive(m, "std")->valuedouble;
        CHECK_MSG(fabs(got_mean - mean) <= 1e-12 * fmax(1, fabs(mean)), "%s.%s mean %.17g vs %.17g", name, key,
                  got_mean, mean);
        CHECK_MSG(fabs(got_std - sqrt(ss / nv)) <= 1e-12 * fmax(1, fabs(mean)), "%s.%s std", name, key);
        CHECK_MSG(cJSON_GetObjectItemCaseSensitive(m, "min")->valuedouble == lo, "%s.%s min", name, key);
        CHECK_MSG(cJSON_GetObjectItemCaseSensitive(m, "max")->valuedouble == hi, "%s.%s max", name, key);
        CHECK_MSG(cJSON_GetObjectItemCaseSensitive(m, "median")->valuedouble == median, "%s.%s median", name, key);
        /* and exactly the statistics of those values (numpy's summation) */
        vlm_bench_stats s;
        double scratch[64];
        vlm_bench_stats_compute(v, nv, scratch, &s);
        CHECK_MSG(s.mean == got_mean && s.std == got_std, "%s.%s exact", name, key);
    }
}

static void test_json_single(void) {
    vlm_bench_results r;
    build(&r, VLM_DEV_CPU, 1, 0, 1.0);
    cJSON *root = parse_json(&r);
    if (!root) return;
    /* top level: the modes that ran + metadata, nothing else for one image */
    CHECK(cJSON_GetArraySize(root) == 3);
    check_mode_object(cJSON_GetObjectItemCaseSensitive(root, "original"), "original");
    check_mode_object(cJSON_GetObjectItemCaseSensitive(root, "split_native"), "split_native");
    CHECK(!cJSON_GetObjectItemCaseSensitive(root, "run_onnx"));
    CHECK(!cJSON_GetObjectItemCaseSensitive(root, "images"));
    /* results["original"]["duration"]["mean"] */
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(root, "original");
    CHECK(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "duration"), "mean")->valuedouble ==
          2.5);
    CHECK(cJSON_GetObjectItemCaseSensitive(o, "num_runs")->valueint == 3);
    /* full precision: the values read back are the doubles measured */
    const cJSON *mem =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "cpu_memory_delta"), "values");
    CHECK(cJSON_GetArrayItem(mem, 0)->valuedouble == 1.0 / 3.0);
    CHECK(cJSON_GetArrayItem(mem, 1)->valuedouble == 0.1 + 0.2);
    CHECK(cJSON_GetArrayItem(mem, 2)->valuedouble == -2.0 / 7.0);
    /* sizes always present, 0 where a part does not apply */
    CHECK(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "onnx_model_size"), "max")->valuedouble ==
        0);
    CHECK(
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(o, "gpu_peak_memory"), "max")->valuedouble ==
        0);

    const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    CHECK(cJSON_IsObject(md));
    const char *keys[] = {"model_id", "model_path", "device",     "device_name", "image_path", "image_size",
                          "prompt",   "runs",       "max_tokens", "warmup",      "ignore_eos", "quantization",
                          "version",  "timestamp",  "skipped",    "precision"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        CHECK_MSG(cJSON_HasObjectItem(md, keys[i]), "metadata.%s", keys[i]);
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(md, "model_id")->valuestring, "Qwen/Qwen2.5-VL-3B-Instruct"));
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(md, "device")->valuestring, "cpu"));
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(md, "prompt")->valuestring, "Describe this image."));
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(md, "image_path")->valuestring, test_fixture(k_img1)));
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(md, "image_size");
    CHECK(cJSON_GetObjectItemCaseSensitive(size, "width")->valueint == 641);
    CHECK(cJSON_GetObjectItemCaseSensitive(size, "height")->valueint == 479);
    CHECK(cJSON_GetObjectItemCaseSensitive(md, "runs")->valueint == 3);
    CHECK(cJSON_GetObjectItemCaseSensitive(md, "max_tokens")->valueint == 128);
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(md, "warmup")));
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(md, "quantization")->valuestring, "none"));
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(md, "precision")->valuestring, "f32"));
    CHECK(!strcmp(cJSON_GetObjectItemCaseSensitive(md, "version")->valuestring, VLM_VERSION));
    const cJSON *skipped = cJSON_GetObjectItemCaseSensitive(md, "skipped");
    CHECK(cJSON_GetArraySize(skipped) == 1);
    const cJSON *why = cJSON_GetObjectItemCaseSensitive(skipped, "run_onnx");
    CHECK(cJSON_IsString(why) && !strcmp(why->valuestring, k_onnx_reason));
    cJSON_Delete(root);
    vlm_bench_results_free(&r);
}

static void test_json_images(void) {
    vlm_bench_results r;
    build(&r, VLM_DEV_CPU, 2, 1, 1.0);
    cJSON *root = parse_json(&r);
    if (!root) return;
    CHECK(cJSON_GetArraySize(root) == 5); /* three modes, metadata, images */
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(root, "images");
    CHECK(cJSON_IsArray(images) && cJSON_GetArraySize(images) == 2);
    const cJSON *overall =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, "original"), "duration");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(overall, "values")) == 6);
    int i = 0;
    const cJSON *im;
    cJSON_ArrayForEach(im, images) {
        const cJSON *info = cJSON_GetObjectItemCaseSensitive(im, "image");
        CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(info, "path")));
        CHECK(cJSON_GetObjectItemCaseSensitive(info, "width")->valueint == (i ? 1920 : 641));
        CHECK(cJSON_GetObjectItemCaseSensitive(info, "height")->valueint == (i ? 1080 : 479));
        for (int k = 0; k < 3; k++) {
            const char *name = vlm_mode_name((vlm_mode)k);
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(im, name);
            check_mode_object(m, name);
            /* the overall values are the images' values, image after image */
            const cJSON *v =
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(m, "duration"), "values");
            const cJSON *all = cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(root, name), "duration"), "values");
            for (int j = 0; j < 3; j++)
                CHECK(cJSON_GetArrayItem(v, j)->valuedouble == cJSON_GetArrayItem(all, 3 * i + j)->valuedouble);
        }
        i++;
    }
    for (int k = 0; k < 3; k++)
        check_mode_object(cJSON_GetObjectItemCaseSensitive(root, vlm_mode_name((vlm_mode)k)), "overall");
    const cJSON *md = cJSON_GetObjectItemCaseSensitive(root, "metadata");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(md, "image_path")) == 2);
    CHECK(cJSON_GetObjectItemCaseSensitive(md, "num_images")->valueint == 2);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(md, "skipped")) == 0);
    cJSON_Delete(root);
    vlm_bench_results_free(&r);
}

/* ---- CSV ------------------------------------------------------------------------------------ */

static void test_csv(void) {
    vlm_bench_results r;
    build(&r, VLM_DEV_CPU, 1, 0, 1.0);
    vlm_strbuf b = {0};
    CHECK_OK(vlm_bench_csv(&r, &b));
    CHECK(!strncmp(b.data, "Mode,Metric,Mean,Std,Min,Max,Median,Num Runs\n", 45));
    int lines = 0;
    for (size_t i = 0; i < b.len; i++) lines += b.data[i] == '\n';
    CHECK(lines == 1 + 2 * VLM_BM_COUNT);
    CHECK(strstr(b.data, "\noriginal,duration,2.5000,0.4082,2.0000,3.0000,2.5000,3\n"));
    CHECK(strstr(b.data, "\nsplit_native,duration,1.2500,0.2041,1.0000,1.5000,1.2500,3\n"));
    CHECK(strstr(b.data, "\noriginal,tokens_generated,128.0000,0.0000,128.0000,128.0000,128.0000,3\n"));
    CHECK(strstr(b.data, "\noriginal,onnx_model_size,0.0000,0.0000,0.0000,0.0000,0.0000,3\n"));
    CHECK(!strstr(b.data, "run_onnx"));
    vlm_sb_free(&b);

    char p[256];
    vlm_bench_csv_path("out/results.json", p, sizeof p);
    CHECK(!strcmp(p, "out/results.csv"));
    vlm_bench_csv_path("results", p, sizeof p);
    CHECK(!strcmp(p, "results.csv"));
    const char *json = test_tmp("r.json");
    CHECK_OK(vlm_bench_write_json(&r, json));
    vlm_bench_csv_path(json, p, sizeof p);
    CHECK_OK(vlm_bench_write_csv(&r, p));
    CHECK(vlm_is_file(json) && vlm_is_file(test_tmp("r.csv")));
    CHECK_ERR(vlm_bench_write_json(&r, test_tmp("no/such/dir/r.json")), VLM_ERR_IO, "no/such/dir");
    vlm_bench_results_free(&r);
}

/* ---- console -------------------------------------------------------------------------------- */

static void test_console(void) {
    vlm_bench_results r;
    build(&r, VLM_DEV_CPU, 1, 0, 1.0);
    char *out = capture(vlm_bench_print_report, &r);
    const char *rule = "======================================================================\n";
    char want[1024];
    /* configuration header */
    CHECK(strstr(out, "BENCHMARK CONFIGURATION"));
    CHECK(strstr(out, "\nModel:        Qwen/Qwen2.5-VL-3B-Instruct\n"));
    CHECK(strstr(out, "\nDevice:       cpu ("));
    snprintf(want, sizeof want, "\nImage:        %s (641x479)\n", test_fixture(k_img1));
    CHECK(strstr(out, want));
    CHECK(strstr(out, "\nPrompt:       Describe this image.\n"));
    CHECK(strstr(out, "\nRuns:         3 per mode (+1 warm-up)\n"));
    CHECK(strstr(out, "\nMax tokens:   128 "));
    CHECK(strstr(out, "\nQuantization: none\n"));
    CHECK(strstr(out, "\nPrecision:    f32\n"));
    /* the summary, in the spec's shape */
    snprintf(
        want, sizeof want,
        "\n%sBENCHMARK RESULTS SUMMARY\n%s\nMode            Metric                    Mean         Std          Min"
        "          Max\n--------------------------------------------------------------------------------------\n"
        "original        Duration (s)              2.500        0.408        2.000        3.000\n"
        "original        Tokens/sec                52.62        8.77         42.67        64.00\n"
        "original        Tokens Generated          128.000      0.000        128.000      128.000\n",
        rule, rule);
    CHECK_MSG(strstr(out, want), "%s", out);
    CHECK(strstr(out, "\nsplit_native    Duration (s)              1.250        0.204        1.000        1.500\n"));
    CHECK(strstr(out, "\noriginal        GPU Peak Mem (MB)         0.000        0.000        0.000        0.000\n"));
    /* fastest by duration; throughput sorted on its own (split_native is faster but makes fewer tokens) */
    CHECK(strstr(out,
                 "\n\nFastest Mode: split_native (1.250s)\n\nRelative Performance (vs split_native):\n"
                 "  split_native   : 1.250s (1.00x, +0.0%)\n"
                 "  original       : 2.500s (0.50x, +100.0%)\n\nThroughput Comparison:\n"
                 "  original       : 52.62 tokens/sec\n"
                 "  split_native   : 26.31 tokens/sec\n"));
    CHECK(strstr(out, "different numbers of tokens"));
    snprintf(want, sizeof want, "\nSkipped modes:\n  run_onnx       : skipped: %s\n", k_onnx_reason);
    CHECK(strstr(out, want));
    CHECK(strstr(out, "TARGETS"));
    /* stdout carries no progress escape sequences */
    CHECK(!strchr(out, '\r') && !strchr(out, '\033'));
    free(out);
    vlm_bench_results_free(&r);

    /* one mode only: no comparison lines */
    build(&r, VLM_DEV_CPU, 1, 0, 1.0);
    vlm_bench_skip(&r, 1, "test");
    CHECK_OK(vlm_bench_finish(&r));
    out = capture(vlm_bench_print_report, &r);
    CHECK(!strstr(out, "Fastest Mode") && !strstr(out, "Throughput Comparison"));
    CHECK(strstr(out, "  split_native   : skipped: test\n"));
    free(out);
    vlm_bench_results_free(&r);

    /* several images: one summary per image and one over all */
    build(&r, VLM_DEV_CPU, 2, 1, 1.0);
    out = capture(vlm_bench_print_report, &r);
    CHECK(strstr(out, "BENCHMARK RESULTS SUMMARY: image 1/2, "));
    CHECK(strstr(out, "BENCHMARK RESULTS SUMMARY: image 2/2, "));
    CHECK(strstr(out, "(1920x1080)\n"));
    CHECK(strstr(out, "BENCHMARK RESULTS SUMMARY: all 2 images\n"));
    CHECK(strstr(out, "\nImages:       2\n"));
    CHECK(!strstr(out, "Skipped modes"));
    free(out);
    vlm_bench_results_free(&r);
}

static void test_rank(void) {
    vlm_bench_mode_result m[3];
    memset(m, 0, sizeof m);
    for (int i = 0; i < 3; i++) {
        m[i].mode = (vlm_mode)i;
        m[i].n_runs = 1;
    }
    m[0].stats[VLM_BM_DURATION].mean = 2;
    m[1].stats[VLM_BM_DURATION].mean = 1;
    m[2].stats[VLM_BM_DURATION].mean = 2;
    int order[3];
    CHECK(vlm_bench_rank(m, 3, VLM_BM_DURATION, 0, order) == 3);
    CHECK(order[0] == 1 && order[1] == 0 && order[2] == 2); /* ties keep mode order */
    CHECK(vlm_bench_rank(m, 3, VLM_BM_DURATION, 1, order) == 3);
    CHECK(order[0] == 0 && order[1] == 2 && order[2] == 1);
    m[1].outcome = VLM_BENCH_SKIPPED;
    CHECK(vlm_bench_rank(m, 3, VLM_BM_DURATION, 0, order) == 2);
    CHECK(order[0] == 0 && order[1] == 2);
}

/* ---- targets -------------------------------------------------------------------------------- */

/* Sets every run's CPU peak memory to its delta + base (the builder's base is 7000 MB). */
static void set_cpu_peak(vlm_bench_results *r, double base) {
    for (int k = 0; k < r->n_modes; k++)
        for (int j = 0; j < r->images[0].modes[k].n_runs; j++) {
            double *m = r->images[0].modes[k].runs[j].m;
            m[VLM_BM_CPU_PEAK_MEM] = base + m[VLM_BM_CPU_MEM_DELTA];
        }
    CHECK_OK(vlm_bench_finish(r));
}

static void test_targets(void) {
    vlm_bench_results r;
    vlm_bench_target_row rows[9];
    /* cpu: only the development profile applies. original: 2.5 s, 52.6 tok/s, peak ~1000 MB: PASS;
     * split_native: 26.3 tok/s passes, memory 1020 MB passes. Scaled by 4: 10 s is not < 10 s. */
    build(&r, VLM_DEV_CPU, 1, 0, 1.0);
    set_cpu_peak(&r, 1000);
    int n = vlm_bench_targets_eval(&r, rows, 9);
    CHECK(n == 2);
    CHECK(rows[0].mode == VLM_MODE_ORIGINAL && !strcmp(rows[0].target->profile, "development (CPU)"));
    CHECK(rows[0].pass && rows[0].duration_ok && rows[0].throughput_ok && rows[0].memory_ok);
    CHECK(rows[0].duration == 2.5);
    char *out = capture(vlm_bench_print_targets, &r);
    CHECK(strstr(out, "original        development (CPU)"));
    CHECK(strstr(out, "2.500s < 10s PASS"));
    CHECK_MSG(strstr(out, "CPU peak 1000.1 < 2048 MB PASS (delta 0.1)"), "%s", out);
    CHECK(!strstr(out, "production"));
    free(out);
    vlm_bench_results_free(&r);

    build(&r, VLM_DEV_CPU, 1, 0, 4.0); /* original mean 10 s: not below the target */
    set_cpu_peak(&r, 1000);
    n = vlm_bench_targets_eval(&r, rows, 9);
    CHECK(n == 2 && !rows[0].duration_ok && !rows[0].pass && rows[0].throughput_ok); /* 13.2 tok/s */
    CHECK(rows[1].duration_ok && !rows[1].throughput_ok && !rows[1].pass);           /* 5 s, 6.6 tok/s */
    out = capture(vlm_bench_print_targets, &r);
    CHECK(strstr(out, "10.000s < 10s FAIL"));
    free(out);
    vlm_bench_results_free(&r);

    /* memory: the peak (not the delta) against 2 GB: a 7 GB peak fails with a delta near zero */
    build(&r, VLM_DEV_CPU, 1, 0, 1.0);
    n = vlm_bench_targets_eval(&r, rows, 9);
    CHECK(n == 2 && !rows[0].memory_ok && !rows[0].pass && rows[0].duration_ok && rows[0].throughput_ok);
    CHECK(rows[0].memory_mb > 7000 && fabs(rows[0].memory_delta_mb) < 1);
    out = capture(vlm_bench_print_targets, &r);
    CHECK(strstr(out, "CPU peak 7000.1 < 2048 MB FAIL (delta 0.1)"));
    free(out);
    set_cpu_peak(&r, 0);
    for (int j = 0; j < 3; j++) r.images[0].modes[1].runs[j].m[VLM_BM_CPU_PEAK_MEM] = 2048;
    CHECK_OK(vlm_bench_finish(&r));
    n = vlm_bench_targets_eval(&r, rows, 9);
    CHECK(n == 2 && rows[1].memory_mb == 2048 && !rows[1].memory_ok && !rows[1].pass && rows[0].memory_ok);
    vlm_bench_results_free(&r);

    /* cuda: production for every mode, optimized (GPU + ONNX vision) for run_onnx; memory = gpu_peak_memory */
    build(&r, VLM_DEV_CUDA, 1, 1, 0.5);
    n = vlm_bench_targets_eval(&r, rows, 9);
    CHECK(n == 4);
    CHECK(!strcmp(rows[0].target->profile, "production (GPU)") && rows[0].mode == VLM_MODE_ORIGINAL);
    CHECK(rows[0].memory_mb == 3500 && rows[0].memory_ok);
    CHECK(rows[0].duration == 1.25 && rows[0].duration_ok && rows[0].throughput_ok && rows[0].pass);    /* 105 tok/s */
    CHECK(rows[1].mode == VLM_MODE_SPLIT_NATIVE && rows[1].throughput_ok && rows[1].memory_mb == 3600); /* 52.6 tok/s */
    CHECK(rows[2].mode == VLM_MODE_RUN_ONNX && !strcmp(rows[2].target->profile, "production (GPU)"));
    CHECK(rows[3].mode == VLM_MODE_RUN_ONNX && !strcmp(rows[3].target->profile, "optimized (GPU + ONNX vision)"));
    CHECK(rows[3].memory_mb == 2900 && rows[3].memory_ok); /* < 3 GB */
    CHECK(rows[3].duration == 1.2 && rows[3].duration_ok && rows[3].throughput_ok && rows[3].pass);
    vlm_bench_results_free(&r);
}

/* ---- comparisons ---------------------------------------------------------------------------- */

static cJSON *load(const char *path) {
    cJSON *j = NULL;
    CHECK_OK(vlm_json_load(path, &j));
    return j;
}

static void test_comparison_files(void) {
    char stamp[32];
    vlm_bench_file_timestamp(stamp, sizeof stamp);
    CHECK(strlen(stamp) == 15 && stamp[8] == '_');
    for (int i = 0; i < 15; i++) CHECK(i == 8 || isdigit((unsigned char)stamp[i]));

    const char *dir = test_tmp("cmp");
    CHECK_OK(vlm_mkdirs(dir));
    char path[VLM_PATH_MAX], want[VLM_PATH_MAX];
    CHECK_OK(vlm_bench_comparison_path(path, sizeof path, NULL, "cpu", "20250102_030405"));
    CHECK(!strcmp(path, "benchmark_cpu_20250102_030405.json"));

    /* devices: the cuda side skipped (no GPU) is not written, the cpu side is */
    vlm_bench_results cpu, cuda;
    build(&cpu, VLM_DEV_CPU, 1, 0, 1.0);
    build(&cuda, VLM_DEV_CUDA, 1, 0, 1.0);
    for (int k = 0; k < 3; k++) vlm_bench_skip(&cuda, k, "--device cuda: no usable GPU: none here");
    CHECK_OK(vlm_bench_finish(&cuda));
    int written = -1;
    CHECK_OK(vlm_bench_write_side(&cuda, dir, "cuda", stamp, 1, &written, path, sizeof path));
    CHECK(written == 0);
    snprintf(want, sizeof want, "%s/benchmark_cuda_%s.json", dir, stamp);
    CHECK(!vlm_path_exists(want));
    CHECK_OK(vlm_bench_write_side(&cpu, dir, "cpu", stamp, 1, &written, path, sizeof path));
    snprintf(want, sizeof want, "%s/benchmark_cpu_%s.json", dir, stamp);
    CHECK(written == 1 && !strcmp(path, want) && vlm_is_file(want));
    cJSON *j = load(want);
    CHECK(j && cJSON_HasObjectItem(j, "metadata") && cJSON_HasObjectItem(j, "original"));
    cJSON_Delete(j);
    snprintf(want, sizeof want, "%s/benchmark_cpu_%s.csv", dir, stamp);
    CHECK(vlm_is_file(want));

    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    vlm_bench_print_comparison(f, "DEVICE COMPARISON (cpu vs cuda)", "cpu", &cpu, "cuda", &cuda);
    fclose(f);
    CHECK(strstr(buf, "DEVICE COMPARISON (cpu vs cuda)"));
    CHECK(strstr(buf, "\ncuda: skipped: --device cuda: no usable GPU: none here\n"));
    CHECK(strstr(buf, "original        skipped on cuda: --device cuda: no usable GPU"));
    free(buf);
    vlm_bench_results_free(&cpu);
    vlm_bench_results_free(&cuda);

    /* quantization: both sides written; the 4-bit side twice as fast */
    vlm_bench_results nq, q;
    build(&nq, VLM_DEV_CPU, 1, 0, 1.0);
    build(&q, VLM_DEV_CPU, 1, 0, 0.5);
    q.quantize = 1;
    const char *sides[2] = {"non_quantized", "quantized"};
    const vlm_bench_results *rs[2] = {&nq, &q};
    for (int i = 0; i < 2; i++) {
        CHECK_OK(vlm_bench_write_side(rs[i], dir, sides[i], stamp, 0, &written, path, sizeof path));
        snprintf(want, sizeof want, "%s/benchmark_%s_%s.json", dir, sides[i], stamp);
        CHECK(written == 1 && vlm_is_file(want));
        j = load(want);
        const cJSON *qm = j
            ? cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "metadata"), "quantization")
            : NULL;
        CHECK(cJSON_IsString(qm) && !strcmp(qm->valuestring, i ? "4-bit" : "none"));
        cJSON_Delete(j);
        snprintf(want, sizeof want, "%s/benchmark_%s_%s.csv", dir, sides[i], stamp);
        CHECK(!vlm_path_exists(want)); /* csv off */
    }
    f = open_memstream(&buf, &len);
    vlm_bench_print_comparison(f, "QUANTIZATION COMPARISON", "non_quantized", &nq, "quantized", &q);
    fclose(f);
    CHECK(strstr(buf, "\noriginal        2.500                1.250                2.00x "));
    CHECK(strstr(buf, "\nsplit_native    1.250                0.625                2.00x "));
    CHECK(strstr(buf, "run_onnx        skipped on non_quantized: ONNX Runtime"));
    free(buf);
    vlm_bench_results_free(&nq);
    vlm_bench_results_free(&q);
}

/* ---- charts --------------------------------------------------------------------------------- */

/* A small XML well-formedness check: balanced tags, quoted attributes, known entities, one root. */
static int xml_ok(const char *s, char *why, size_t cap) {
    char stack[64][32];
    int depth = 0, roots = 0;
    while (*s) {
        if (*s == '<') {
            if (!strncmp(s, "<!--", 4)) {
                const char *e = strstr(s, "-->");
                if (!e) return snprintf(why, cap, "unterminated comment"), 0;
                s = e + 3;
                continue;
            }
            if (!strncmp(s, "<!DOCTYPE", 9) || !strncmp(s, "<?", 2)) {
                if (depth || roots) return snprintf(why, cap, "declaration inside the document"), 0;
                s = strchr(s, '>');
                if (!s) return snprintf(why, cap, "unterminated declaration"), 0;
                s++;
                continue;
            }
            int closing = s[1] == '/';
            s += closing ? 2 : 1;
            char name[32];
            int n = 0;
            while (isalnum((unsigned char)*s) || *s == '-' || *s == ':' || *s == '_') {
                if (n < 31) name[n++] = *s;
                s++;
            }
            name[n] = '\0';
            if (!n) return snprintf(why, cap, "tag without a name"), 0;
            if (closing) {
                if (!depth || strcmp(stack[depth - 1], name))
                    return snprintf(why, cap, "</%s> closes %s", name, depth ? stack[depth - 1] : "nothing"), 0;
                depth--;
                if (*s++ != '>') return snprintf(why, cap, "bad </%s>", name), 0;
                continue;
            }
            if (!depth && roots++) return snprintf(why, cap, "second root <%s>", name), 0;
            for (;;) {
                while (isspace((unsigned char)*s)) s++;
                if (s[0] == '/' && s[1] == '>') {
                    s += 2;
                    break;
                }
                if (*s == '>') {
                    if (depth == 64) return snprintf(why, cap, "too deep"), 0;
                    snprintf(stack[depth++], 32, "%s", name);
                    s++;
                    break;
                }
                int an = 0;
                while (isalnum((unsigned char)*s) || *s == '-' || *s == ':' || *s == '_') s++, an++;
                if (!an || *s != '=' || (s[1] != '"' && s[1] != '\''))
                    return snprintf(why, cap, "bad attribute in <%s> near '%.20s'", name, s), 0;
                char q = s[1];
                s += 2;
                while (*s && *s != q) {
                    if (*s == '<') return snprintf(why, cap, "'<' in an attribute of <%s>", name), 0;
                    s++;
                }
                if (!*s++) return snprintf(why, cap, "unterminated attribute in <%s>", name), 0;
            }
            continue;
        }
        if (*s == '&') {
            const char *ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
            int ok = 0;
            for (int i = 0; i < 5; i++) ok |= !strncmp(s, ents[i], strlen(ents[i]));
            if (!ok && s[1] == '#') {
                const char *p = s + 2;
                while (isxdigit((unsigned char)*p) || *p == 'x') p++;
                ok = *p == ';' && p > s + 2;
            }
            if (!ok) return snprintf(why, cap, "bad entity '%.8s'", s), 0;
        } else if (!depth && !isspace((unsigned char)*s)) {
            return snprintf(why, cap, "text outside the root: '%.20s'", s), 0;
        }
        s++;
    }
    if (depth) return snprintf(why, cap, "<%s> not closed", stack[depth - 1]), 0;
    if (roots != 1) return snprintf(why, cap, "%d roots", roots), 0;
    return 1;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) n++;
    return n;
}

static void test_plot(void) {
    char why[256] = "";
    CHECK(!xml_ok("<a><b></a></b>", why, sizeof why));
    CHECK(!xml_ok("<a x=1></a>", why, sizeof why));
    CHECK(!xml_ok("<a>&nbsp;</a>", why, sizeof why));
    CHECK(!xml_ok("<a></a><b/>", why, sizeof why));
    CHECK(xml_ok("<a x=\"1\"><b/>t &amp; &#177;</a>", why, sizeof why));

    vlm_bench_results r;
    build(&r, VLM_DEV_CPU, 1, 0, 1.0);
    free(r.model_id);
    r.model_id = strdup("weird <model> & \"id\"");
    vlm_strbuf b = {0};
    CHECK_OK(vlm_bench_plot_svg(&r, &b));
    CHECK_MSG(xml_ok(b.data, why, sizeof why), "svg: %s", why);
    CHECK(!strncmp(b.data, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39));
    CHECK(strstr(b.data, "weird &lt;model&gt; &amp; &quot;id&quot;"));
    /* two panels: original and split_native each have a stacked bar and a throughput bar */
    CHECK(count(b.data, "<g class=\"bar\" data-mode=\"original\"") == 2);
    CHECK(count(b.data, "<g class=\"bar\" data-mode=\"split_native\"") == 2);
    CHECK(count(b.data, "data-mode=\"run_onnx\"") == 0);
    CHECK(count(b.data, ">skipped</text>") == 2);
    /* error bars: 4 stages + total per stacked bar, 1 per throughput bar */
    CHECK(count(b.data, "<g class=\"err\"") == 2 * 5 + 2);
    for (const char *st = "preprocess\0vision\0prefill\0decode\0"; *st; st += strlen(st) + 1) CHECK(strstr(b.data, st));
    CHECK(strstr(b.data, "Throughput (tokens/s)"));
    vlm_sb_free(&b);

    const char *svg = test_tmp("chart.svg"), *html = test_tmp("chart.html");
    CHECK_OK(vlm_bench_write_plot(&r, svg));
    CHECK_OK(vlm_bench_write_plot(&r, html));
    char *data;
    size_t len;
    CHECK_OK(vlm_read_file(html, 0, &data, &len));
    if (data) {
        CHECK(!strncmp(data, "<!DOCTYPE html>", 15));
        CHECK_MSG(xml_ok(data, why, sizeof why), "html: %s", why);
        CHECK(strstr(data, "<svg ") && strstr(data, "</table>"));
        CHECK(strstr(data, "skipped: ONNX Runtime"));
        CHECK(!strstr(data, "<script"));
        free(data);
    }
    CHECK(vlm_bench_plot_format_ok("a.svg") && vlm_bench_plot_format_ok("a.HTML") &&
          !vlm_bench_plot_format_ok("a.png"));
    CHECK_ERR(vlm_bench_write_plot(&r, test_tmp("chart.png")), VLM_ERR_INVALID, ".svg or .html");
    vlm_bench_results_free(&r);

    /* all skipped: still a valid chart */
    build(&r, VLM_DEV_CPU, 1, 0, 1.0);
    for (int k = 0; k < 3; k++) vlm_bench_skip(&r, k, "x");
    CHECK_OK(vlm_bench_finish(&r));
    b = (vlm_strbuf){0};
    CHECK_OK(vlm_bench_plot_svg(&r, &b));
    CHECK_MSG(xml_ok(b.data, why, sizeof why), "svg: %s", why);
    vlm_sb_free(&b);
    vlm_bench_results_free(&r);
}

/* ---- images and results --------------------------------------------------------------------- */

static void write_bytes(const char *path, const void *data, size_t n) { CHECK_OK(vlm_write_file(path, data, n)); }

static void test_image_size(void) {
    int w, h;
    CHECK_OK(vlm_bench_image_size(test_fixture(k_img1), &w, &h));
    CHECK(w == 641 && h == 479);
    CHECK_OK(vlm_bench_image_size(test_fixture(k_img2), &w, &h));
    CHECK(w == 1920 && h == 1080);
    CHECK_OK(vlm_bench_image_size(test_fixture("cases/preproc_jpeg_progressive/jpeg_progressive_rings_175x131.jpg"), &w,
                                  &h));
    CHECK(w == 175 && h == 131); /* SOF2 */
    CHECK_OK(vlm_bench_image_size(test_fixture("cases/preproc_jpeg_cmyk/jpeg_cmyk_159x119.jpg"), &w, &h));
    CHECK(w == 159 && h == 119);
    /* the upright size of an EXIF-rotated photo (stored 171x121, orientation 6) */
    CHECK_OK(vlm_bench_image_size(test_fixture("cases/preproc_jpeg_exif6/jpeg_exif6_photo_171x121.jpg"), &w, &h));
    CHECK(w == 121 && h == 171);
    /* files the decoder cannot read are errors naming them, before any run */
    const unsigned char jpg[] = {0xFF, 0xD8, 0xFF, 0xE0, 0,  6, 'J',  'F',  'I',  'F',  0xFF, 0xFF, 0xFE, 0, 3,
                                 'x',  0xFF, 0xC0, 0,    11, 8, 0x01, 0x2C, 0x02, 0x58, 1,    1,    0x11, 0};
    write_bytes(test_tmp("t.jpg"), jpg, sizeof jpg); /* a frame header and no image data */
    vlm_status st = vlm_bench_image_size(test_tmp("t.jpg"), &w, &h);
    CHECK(st != VLM_OK && strstr(vlm_last_error(), "t.jpg") && w == 0 && h == 0);
    write_bytes(test_tmp("c.bmp"), "BM\0\0", 4);
    CHECK_ERR(vlm_bench_image_size(test_tmp("c.bmp"), &w, &h), VLM_ERR_UNSUPPORTED, "supported formats: JPEG, PNG");
    CHECK_ERR(vlm_bench_image_size(test_tmp("missing.jpg"), &w, &h), VLM_ERR_IO, "missing.jpg");
}

static void test_collect_images(void) {
    const char *dir = test_tmp("imgs");
    CHECK_OK(vlm_mkdirs(dir));
    const char *names[] = {"b.png", "a.JPG", "c.jpeg", "notes.txt", ".hidden.png"};
    for (int i = 0; i < 5; i++) {
        char p[VLM_PATH_MAX];
        snprintf(p, sizeof p, "%s/%s", dir, names[i]);
        write_bytes(p, "x", 1);
    }
    char sub[VLM_PATH_MAX];
    snprintf(sub, sizeof sub, "%s/sub.png", dir); /* a directory named like an image is not one */
    CHECK_OK(vlm_mkdirs(sub));
    const char *args[2] = {test_fixture(k_img1), dir};
    char **list;
    int n;
    CHECK_OK(vlm_bench_collect_images(args, 2, &list, &n));
    CHECK(n == 4);
    if (n == 4) {
        CHECK(!strcmp(list[0], test_fixture(k_img1)));
        CHECK(strstr(list[1], "/a.JPG") && strstr(list[2], "/b.png") && strstr(list[3], "/c.jpeg"));
    }
    vlm_bench_free_list(list, n);
    const char *empty = test_tmp("empty");
    CHECK_OK(vlm_mkdirs(empty));
    CHECK_ERR(vlm_bench_collect_images(&empty, 1, &list, &n), VLM_ERR_NOT_FOUND, "no .jpg, .jpeg or .png");
    const char *missing = test_tmp("nope.jpg");
    CHECK_ERR(vlm_bench_collect_images(&missing, 1, &list, &n), VLM_ERR_NOT_FOUND, "nope.jpg");
}

static void test_results_errors(void) {
    vlm_bench_config c;
    vlm_bench_config_init(&c);
    /* the spec's defaults */
    CHECK(!strcmp(c.model_id, "Qwen/Qwen2.5-VL-3B-Instruct") && !strcmp(c.text, "Describe this image."));
    CHECK(c.runs == 5 && c.max_tokens == 128 && c.warmup == 1 && c.n_modes == 3 && c.device == VLM_DEV_AUTO);
    CHECK(!strcmp(c.output_dir, "split_models") && !c.quantize && !c.ignore_eos);
    const char *img = test_fixture(k_img1);
    c.images = &img;
    c.n_images = 1;
    vlm_bench_results r;
    c.runs = 0;
    CHECK_ERR(vlm_bench_results_init(&r, &c, VLM_DEV_CPU), VLM_ERR_INVALID, "--runs 0");
    c.runs = 2;
    const char *bad = test_tmp("absent.png");
    c.images = &bad;
    CHECK_ERR(vlm_bench_results_init(&r, &c, VLM_DEV_CPU), VLM_ERR_IO, "absent.png");
    c.images = &img;
    CHECK_OK(vlm_bench_results_init(&r, &c, VLM_DEV_CPU));
    vlm_bench_run run;
    make_run(&run, 1, 1, 0);
    CHECK_ERR(vlm_bench_add_run(&r, 1, 0, &run), VLM_ERR_INVALID, "image 1");
    CHECK_ERR(vlm_bench_add_run(&r, 0, 3, &run), VLM_ERR_INVALID, "mode 3");
    for (int i = 0; i < 5; i++) CHECK_OK(vlm_bench_add_run(&r, 0, 0, &run)); /* more than --runs: grows */
    CHECK_OK(vlm_bench_finish(&r));
    CHECK(r.overall[0].n_runs == 5 && r.overall[0].stats[VLM_BM_DURATION].mean == 1);
    CHECK(vlm_bench_n_ran(&r) == 1); /* the modes without runs are not reported as ran */
    CHECK(r.overall[1].outcome == VLM_BENCH_SKIPPED);
    vlm_bench_results_free(&r);

    /* output files are checked before a long run */
    CHECK_OK(vlm_bench_check_output_path(test_tmp("out.json"), "--output"));
    CHECK_OK(vlm_bench_check_output_path("relative.json", "--output"));
    CHECK_ERR(vlm_bench_check_output_path(test_tmp("none/out.json"), "--output"), VLM_ERR_NOT_FOUND,
              "none does not exist");
    CHECK_ERR(vlm_bench_check_output_path(test_tmpdir(), "--plot"), VLM_ERR_INVALID, "is a directory");

    vlm_device d;
    CHECK_OK(vlm_device_resolve(VLM_DEV_CPU, &d));
    CHECK(d == VLM_DEV_CPU);
    char why[256];
    int gpu = vlm_cuda_usable(why, sizeof why);
    CHECK_OK(vlm_device_resolve(VLM_DEV_AUTO, &d));
    CHECK(d == (gpu ? VLM_DEV_CUDA : VLM_DEV_CPU));
    if (!gpu) CHECK_ERR(vlm_device_resolve(VLM_DEV_CUDA, &d), VLM_ERR_UNAVAILABLE, "--device cuda: no usable GPU");
}

int main(void) {
    RUN(test_json_single);
    RUN(test_json_images);
    RUN(test_csv);
    RUN(test_console);
    RUN(test_rank);
    RUN(test_targets);
    RUN(test_comparison_files);
    RUN(test_plot);
    RUN(test_image_size);
    RUN(test_collect_images);
    RUN(test_results_errors);
    return test_summary();
}
