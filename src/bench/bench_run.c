/* The benchmark runner: the only part of src/bench that calls the engine. Per mode: load and
 * prepare (split / export / quantize when needed; not measured), one unmeasured warm-up, then the
 * measured runs — each one vlm_generate call with greedy decoding, timed by the wall clock around
 * it, with the process RSS read before and after and its peak reset before. */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/memory.h"
#include "base/timer.h"
#include "bench/bench.h"
#include "io/hf_cache.h"

static void on_load_progress(void *user, const char *stage, double fraction) {
    const char *mode = user;
    if (fraction >= 0) vlm_progress(0, "bench %s: %s %3.0f%%", mode, stage, 100.0 * fraction);
    else vlm_progress(0, "bench %s: %s ...", mode, stage);
}

static void make_request(const vlm_bench_config *c, const char *const *image, vlm_request *rq) {
    vlm_request_init(rq);
    rq->images = image;
    rq->n_images = 1;
    rq->text = c->text;
    /* greedy: every mode does the same work (same tokens for the same weights) */
    rq->sampling.greedy = 1;
    rq->sampling.max_tokens = c->max_tokens;
    rq->sampling.ignore_eos = c->ignore_eos;
}

static double mb(uint64_t bytes) { return (double)bytes / VLM_BENCH_MB; }

/* One measured run. */
static vlm_status measure(vlm_model *model, const vlm_model_info *info, const vlm_request *rq, vlm_device device,
                          vlm_bench_run *out) {
    vlm_result res;
    memset(&res, 0, sizeof res);
    vlm_reset_peak_rss(); /* where the kernel refuses, the peak is the process's so far */
    uint64_t rss0 = vlm_rss_bytes();
    double t0 = vlm_now();
    vlm_status s = vlm_generate(model, rq, &res);
    double dt = vlm_now() - t0;
    uint64_t rss1 = vlm_rss_bytes(), peak = vlm_peak_rss_bytes();
    if (s != VLM_OK) {
        vlm_result_free(&res);
        return s;
    }
    const vlm_timings *t = &res.timings;
    double *m = out->m;
    memset(out, 0, sizeof *out);
    m[VLM_BM_DURATION] = dt;
    m[VLM_BM_TOKENS_GENERATED] = res.n_generated;
    m[VLM_BM_TOKENS_PER_SEC] = dt > 0 ? res.n_generated / dt : 0.0;
    m[VLM_BM_VISION_TIME] = t->vision_s;
    m[VLM_BM_CPU_MEM_DELTA] = mb(rss1) - mb(rss0);
    if (device == VLM_DEV_CUDA) {
        m[VLM_BM_GPU_MEM_DELTA] = mb(t->gpu_mem_after) - mb(t->gpu_mem_before);
        m[VLM_BM_GPU_PEAK_MEM] = mb(t->gpu_mem_peak);
    }
    m[VLM_BM_VISION_SIZE] = mb(info->vision_model_bytes);
    m[VLM_BM_LANGUAGE_SIZE] = mb(info->language_model_bytes);
    m[VLM_BM_ONNX_SIZE] = mb(info->onnx_model_bytes);
    m[VLM_BM_PREFILL_TPS] = t->prefill_tokens_per_s;
    m[VLM_BM_DECODE_TPS] = t->decode_tokens_per_s;
    m[VLM_BM_TTFT] = t->time_to_first_token_s;
    m[VLM_BM_PREPROCESS_TIME] = t->preprocess_s;
    m[VLM_BM_PREFILL_TIME] = t->prefill_s;
    m[VLM_BM_DECODE_TIME] = t->decode_s;
    if (peak < rss1) peak = rss1;
    m[VLM_BM_CPU_PEAK_MEM] = mb(peak);
    vlm_result_free(&res);
    return VLM_OK;
}

/* Loads one mode; VLM_ERR_UNAVAILABLE (this build or machine lacks what the mode needs) is passed
 * up for the caller to record as skipped. */
static vlm_status load_mode(const vlm_bench_config *c, vlm_mode mode, vlm_device device, vlm_model **model) {
    char why[VLM_BENCH_REASON_MAX];
    if (mode == VLM_MODE_RUN_ONNX && !vlm_onnx_available(why, sizeof why))
        return vlm_err(VLM_ERR_UNAVAILABLE, "%s", why);
    vlm_load_options o;
    vlm_load_options_init(&o);
    o.model_id = c->model_id;
    o.mode = mode;
    o.output_dir = c->output_dir;
    o.device = device;
    o.threads = c->threads;
    o.precision = c->precision;
    o.quantize = c->quantize;
    o.progress = on_load_progress;
    o.progress_user = (void *)vlm_mode_name(mode);
    vlm_progress(0, "bench %s: loading %s ...", vlm_mode_name(mode), c->model_id);
    return vlm_load(&o, model);
}

static vlm_status run_mode(const vlm_bench_config *c, int k, vlm_bench_results *r) {
    vlm_mode mode = c->modes[k];
    const char *name = vlm_mode_name(mode);
    vlm_model *model = NULL;
    vlm_status s = load_mode(c, mode, r->device, &model);
    if (s == VLM_ERR_UNAVAILABLE) {
        vlm_progress(1, "bench %s: skipped", name);
        VLM_LOG_W("%s: skipped: %s", name, vlm_last_error());
        vlm_bench_skip(r, k, vlm_last_error());
        vlm_err_clear();
        return VLM_OK;
    }
    if (s != VLM_OK) return vlm_err_ctx(s, "bench %s", name);
    vlm_model_info info;
    vlm_model_get_info(model, &info);
    if (!r->device_name[0] && info.device_name) snprintf(r->device_name, sizeof r->device_name, "%s", info.device_name);

    vlm_request rq;
    if (c->warmup) {
        vlm_progress(0, "bench %s: warm-up run", name);
        vlm_bench_run unused;
        make_request(c, &c->images[0], &rq);
        s = measure(model, &info, &rq, r->device, &unused);
        if (s != VLM_OK) vlm_err_ctx(s, "bench %s: warm-up on %s", name, c->images[0]);
    }
    for (int i = 0; s == VLM_OK && i < c->n_images; i++) {
        make_request(c, &c->images[i], &rq);
        for (int j = 0; s == VLM_OK && j < c->runs; j++) {
            if (c->n_images > 1)
                vlm_progress(0, "bench %s: image %d/%d, run %d/%d", name, i + 1, c->n_images, j + 1, c->runs);
            else vlm_progress(0, "bench %s: run %d/%d", name, j + 1, c->runs);
            vlm_bench_run run;
            s = measure(model, &info, &rq, r->device, &run);
            if (s != VLM_OK) vlm_err_ctx(s, "bench %s: run %d on %s", name, j + 1, c->images[i]);
            else s = vlm_bench_add_run(r, i, k, &run);
        }
    }
    vlm_model_free(model);
    vlm_progress(1, "bench %s: %s", name, s == VLM_OK ? "done" : "failed");
    return s;
}

vlm_status vlm_bench_measure(const vlm_bench_config *c, int skip_unusable_device, vlm_bench_results *out) {
    memset(out, 0, sizeof *out);
    vlm_device device;
    vlm_status s = vlm_device_resolve(c->device, &device);
    if (s == VLM_ERR_UNAVAILABLE && skip_unusable_device) {
        char why[VLM_BENCH_REASON_MAX];
        snprintf(why, sizeof why, "%s", vlm_last_error());
        vlm_err_clear();
        VLM_TRY(vlm_bench_results_init(out, c, VLM_DEV_CUDA));
        for (int k = 0; k < out->n_modes; k++) vlm_bench_skip(out, k, why);
        return vlm_bench_finish(out);
    }
    VLM_TRY(s);
    char path[VLM_PATH_MAX];
    VLM_TRY(vlm_resolve_model(c->model_id, path, sizeof path));
    VLM_TRY(vlm_bench_results_init(out, c, device));
    if (!(out->model_path = vlm_strdup(path, "the model path"))) s = VLM_ERR_NOMEM;
    for (int k = 0; s == VLM_OK && k < c->n_modes; k++) s = run_mode(c, k, out);
    if (s == VLM_OK) s = vlm_bench_finish(out);
    if (s != VLM_OK) vlm_bench_results_free(out);
    return s;
}
