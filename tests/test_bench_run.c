/* The benchmark runner against the engine: a device that cannot run here makes every mode skipped
 * with the reason (the cuda side of --compare-devices) or is an error (--device cuda alone); a
 * missing model is an error; on the fixture model each mode either runs (2 measured runs with the
 * per-run metrics filled in) or, for run_onnx in a build without ONNX Runtime, is skipped with the
 * reason the engine gave. */
#include <string.h>

#include "bench/bench.h"
#include "harness.h"

static void config(vlm_bench_config *c, const char **img) {
    vlm_bench_config_init(c);
    *img = test_fixture("cases/q25_photo/photo_256x300.png");
    c->images = img;
    c->n_images = 1;
    c->model_id = test_fixture("models/tiny-qwen2_5-vl");
    c->output_dir = test_tmp("split");
    c->runs = 2;
    c->max_tokens = 4;
    c->device = VLM_DEV_CPU;
}

static void test_unusable_device(void) {
    char why[256];
    if (vlm_cuda_usable(why, sizeof why)) {
        fprintf(stderr, "  (a GPU is usable here: the no-GPU checks do not apply)\n");
        return;
    }
    vlm_bench_config c;
    const char *img;
    config(&c, &img);
    c.device = VLM_DEV_CUDA;
    vlm_bench_results r;
    CHECK_ERR(vlm_bench_measure(&c, 0, &r), VLM_ERR_UNAVAILABLE, "--device cuda: no usable GPU");
    CHECK_OK(vlm_bench_measure(&c, 1, &r));
    CHECK(r.n_modes == 3 && vlm_bench_n_ran(&r) == 0 && r.device == VLM_DEV_CUDA);
    for (int k = 0; k < r.n_modes; k++) {
        CHECK(r.overall[k].outcome == VLM_BENCH_SKIPPED);
        CHECK(strstr(r.overall[k].reason, "--device cuda: no usable GPU") && strstr(r.overall[k].reason, why));
    }
    int written = -1;
    char path[VLM_PATH_MAX];
    CHECK_OK(vlm_bench_write_side(&r, test_tmpdir(), "cuda", "20250101_000000", 0, &written, path, sizeof path));
    CHECK(written == 0);
    vlm_bench_results_free(&r);
}

static void test_missing_model(void) {
    vlm_bench_config c;
    const char *img;
    config(&c, &img);
    c.model_id = test_tmp("no-model-here");
    vlm_bench_results r;
    CHECK_ERR(vlm_bench_measure(&c, 0, &r), VLM_ERR_NOT_FOUND, "no-model-here");
}

static void test_fixture_model(void) {
    vlm_bench_config c;
    const char *img;
    config(&c, &img);
    vlm_bench_results r;
    CHECK_OK(vlm_bench_measure(&c, 0, &r));
    if (!r.images) return;
    CHECK(r.images[0].width == 256 && r.images[0].height == 300);
    CHECK(r.model_path && strstr(r.model_path, "tiny-qwen2_5-vl"));
    char onnx_why[VLM_BENCH_REASON_MAX];
    int onnx = vlm_onnx_available(onnx_why, sizeof onnx_why);
    for (int k = 0; k < r.n_modes; k++) {
        const vlm_bench_mode_result *m = &r.overall[k];
        if (m->outcome == VLM_BENCH_SKIPPED) {
            /* only what this build lacks: ONNX Runtime for run_onnx */
            int ok = m->mode == VLM_MODE_RUN_ONNX && !onnx && !strcmp(m->reason, onnx_why);
            CHECK_MSG(ok, "%s skipped: %s", vlm_mode_name(m->mode), m->reason);
            continue;
        }
        CHECK(m->n_runs == 2);
        for (int j = 0; j < m->n_runs; j++) {
            const double *v = m->runs[j].m;
            CHECK(v[VLM_BM_DURATION] > 0);
            CHECK(v[VLM_BM_TOKENS_GENERATED] >= 1 && v[VLM_BM_TOKENS_GENERATED] <= 4);
            CHECK(v[VLM_BM_TOKENS_PER_SEC] == v[VLM_BM_TOKENS_GENERATED] / v[VLM_BM_DURATION]);
            CHECK(v[VLM_BM_VISION_TIME] > 0 && v[VLM_BM_VISION_TIME] < v[VLM_BM_DURATION]);
            CHECK(v[VLM_BM_LANGUAGE_SIZE] > 0);
            CHECK(v[VLM_BM_GPU_PEAK_MEM] == 0 && v[VLM_BM_GPU_MEM_DELTA] == 0);
            CHECK(v[VLM_BM_CPU_PEAK_MEM] > 0);
            CHECK((v[VLM_BM_ONNX_SIZE] > 0) == (m->mode == VLM_MODE_RUN_ONNX));
        }
        CHECK(m->stats[VLM_BM_DURATION].min <= m->stats[VLM_BM_DURATION].mean);
    }
    vlm_bench_results_free(&r);
}

int main(void) {
    RUN(test_unusable_device);
    RUN(test_missing_model);
    RUN(test_fixture_model);
    return test_summary();
}
