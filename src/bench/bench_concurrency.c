/* vlm bench --concurrency N[,N...]: the in-process load test. Per level N, each run submits N
 * requests at once (request i on image i mod the image count, the bench's prompt, greedy,
 * max_tokens, --ignore-eos) to an engine of the loaded model with room for all N (max_running N),
 * then steps it on this thread until every request is done. Each request is recorded as its caller
 * saw it (submission, each token's arrival from vlm_result.token_times, the end), and the shared
 * load-test statistics follow (loadtest.h). Beside them, the decode rate the batching is for: the
 * output tokens per second of the steps that ran only decode rows with all N sequences running
 * (vision and prefill steps, and the tail where sequences have finished, left out). */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/memory.h"
#include "base/timer.h"
#include "bench/bench.h"
#include "bench/loadtest.h"

/* One request of a run, as on_done leaves it. */
typedef struct {
    double t0;      /* the run's start (vlm_now) */
    double start_s; /* its submission, from the run's start */
    double end_s;
    double *token_s; /* each token's arrival, from the run's start */
    int n_tokens, done;
    vlm_status status;
    char error[64];
} conc_req;

static void on_done(void *user, vlm_request_id id, vlm_status status, const char *error, const vlm_result *res) {
    (void)id;
    conc_req *q = user;
    q->done = 1;
    q->end_s = vlm_now() - q->t0;
    q->status = status;
    if (status != VLM_OK) {
        snprintf(q->error, sizeof q->error, "%s", vlm_status_name(status));
        (void)error;
        return;
    }
    q->token_s = vlm_alloc(((size_t)res->n_generated + 1) * sizeof *q->token_s, "token arrival times");
    if (!q->token_s) {
        snprintf(q->error, sizeof q->error, "out of memory");
        q->status = VLM_ERR_NOMEM;
        return;
    }
    /* token_times count from the submission */
    for (int i = 0; i < res->n_generated; i++) q->token_s[i] = q->start_s + res->token_times[i];
    q->n_tokens = res->n_generated;
}

static void make_request(const vlm_bench_config *c, const char *const *image, vlm_request *r) {
    vlm_request_init(r);
    r->images = image;
    r->n_images = image ? 1 : 0;
    r->text = c->text;
    r->sampling.greedy = 1;
    r->sampling.max_tokens = c->max_tokens;
    r->sampling.ignore_eos = c->ignore_eos;
}

typedef struct {
    double decode_tokens, decode_s; /* decode-only steps with all N running */
    int peak_blocks;
} step_stats;

/* Steps the engine until it is idle, timing the steps that ran decode rows only with n running. */
static vlm_status run_engine(vlm_engine *e, int n, step_stats *ss) {
    vlm_engine_stats before, after;
    vlm_engine_get_stats(e, &before);
    for (int active = 1; active;) {
        double t = vlm_now();
        VLM_TRY(vlm_engine_step(e, &active));
        double dt = vlm_now() - t;
        vlm_engine_get_stats(e, &after);
        uint64_t gen = after.generation_tokens - before.generation_tokens;
        if (before.running == n && before.waiting == 0 && after.prompt_tokens == before.prompt_tokens && gen) {
            ss->decode_tokens += (double)gen;
            ss->decode_s += dt;
        }
        if (after.kv_blocks_used > ss->peak_blocks) ss->peak_blocks = after.kv_blocks_used;
        before = after;
    }
    return VLM_OK;
}

/* One run of n requests at once; adds it to the level. */
static vlm_status one_run(vlm_engine *e, const vlm_bench_config *c, int n, vlm_loadtest_level *l, step_stats *ss) {
    conc_req *q = vlm_calloc((size_t)n, sizeof *q, "load-test requests");
    vlm_loadtest_request *rec = vlm_calloc((size_t)n, sizeof *rec, "load-test requests");
    vlm_status s = q && rec ? VLM_OK : VLM_ERR_NOMEM;
    double t0 = vlm_now();
    for (int i = 0; s == VLM_OK && i < n; i++) {
        vlm_request r;
        make_request(c, c->n_images ? &c->images[i % c->n_images] : NULL, &r);
        q[i].t0 = t0;
        q[i].start_s = vlm_now() - t0;
        s = vlm_engine_submit(e, &r, on_done, &q[i], NULL);
        if (s != VLM_OK) vlm_err_ctx(s, "request %d of %d", i + 1, n);
    }
    if (s == VLM_OK) s = run_engine(e, n, ss);
    double end = 0;
    for (int i = 0; s == VLM_OK && i < n; i++) {
        if (!q[i].done) s = vlm_err(VLM_ERR_RUNTIME, "request %d of %d never ended", i + 1, n);
        rec[i] = (vlm_loadtest_request){.start_s = q[i].start_s,
                                        .end_s = q[i].end_s,
                                        .first_token_s = q[i].n_tokens ? q[i].token_s[0] : -1,
                                        .token_s = q[i].n_tokens > 1 ? q[i].token_s + 1 : NULL,
                                        .n_token_s = q[i].n_tokens > 1 ? q[i].n_tokens - 1 : 0,
                                        .output_tokens = q[i].n_tokens,
                                        .error = q[i].status == VLM_OK ? NULL : q[i].error};
        if (q[i].end_s > end) end = q[i].end_s;
    }
    if (s == VLM_OK) s = vlm_loadtest_add_run(l, rec, n, end);
    if (s == VLM_OK && ss->decode_s > 0) s = vlm_loadtest_add_decode(l, ss->decode_tokens / ss->decode_s);
    for (int i = 0; q && i < n; i++) vlm_free(q[i].token_s);
    vlm_free(q);
    vlm_free(rec);
    return s;
}

static vlm_status run_level(vlm_model *m, const vlm_bench_config *c, int n, vlm_loadtest_results *out) {
    vlm_loadtest_level *l = vlm_loadtest_add_level(out, n, 0);
    if (!l) return VLM_ERR_NOMEM;
    vlm_engine_options o;
    vlm_engine_options_init(&o);
    o.max_running = n;
    o.max_waiting = n;
    if (c->no_reuse) o.prefix_cache = 0, o.image_cache_mb = 0;
    vlm_engine *e;
    VLM_TRY(vlm_engine_create(m, &o, &e));
    vlm_reset_peak_rss();
    vlm_status s = VLM_OK;
    step_stats all = {0};
    for (int run = 0; s == VLM_OK && run < c->runs; run++) {
        vlm_progress(0, "bench: concurrency %d, run %d/%d", n, run + 1, c->runs);
        step_stats ss = {0};
        s = one_run(e, c, n, l, &ss);
        all.decode_tokens += ss.decode_tokens, all.decode_s += ss.decode_s;
        if (ss.peak_blocks > all.peak_blocks) all.peak_blocks = ss.peak_blocks;
    }
    vlm_engine_stats st;
    vlm_engine_get_stats(e, &st);
    vlm_engine_free(e);
    vlm_progress(1, "bench: concurrency %d %s", n, s == VLM_OK ? "done" : "failed");
    if (s == VLM_OK) {
        vlm_model_info info;
        vlm_model_get_info(m, &info);
        double per_block = st.kv_blocks_total ? (double)st.kv_pool_bytes / st.kv_blocks_total : 0;
        VLM_LOG_I("bench: concurrency %d: peak RSS %.0f MB = weights %.0f MB (mapped) + KV cache (pool %.0f MB, "
                  "at most %.0f MB of it used) + activations and the rest",
                  n, vlm_peak_rss_bytes() / VLM_BENCH_MB,
                  (info.language_model_bytes + info.vision_model_bytes) / VLM_BENCH_MB, st.kv_pool_bytes / VLM_BENCH_MB,
                  all.peak_blocks * per_block / VLM_BENCH_MB);
    }
    return s;
}

vlm_status vlm_bench_concurrency(const vlm_bench_config *c, const int *levels, int n_levels,
                                 vlm_loadtest_results *out) {
    memset(out, 0, sizeof *out);
    vlm_load_options o;
    vlm_load_options_init(&o);
    o.model_id = c->model_id;
    o.mode = c->n_modes == 1 ? c->modes[0] : VLM_MODE_ORIGINAL; /* all three by default: original */
    o.output_dir = c->output_dir;
    o.device = c->device;
    o.threads = c->threads;
    o.quantize = c->quantize;
    o.precision = c->precision;
    vlm_model *m = NULL;
    VLM_TRY(vlm_load(&o, &m));
    vlm_model_info info;
    vlm_model_get_info(m, &info);
    char target[160]; /* what ran, for the report's title and the JSON's "target" */
    snprintf(target, sizeof target, "in-process engine (%s, %s%s, %s)", vlm_mode_name(o.mode),
             vlm_precision_name(o.precision), o.quantize ? ", 4-bit" : "", vlm_device_name(info.device));
    vlm_status s = vlm_loadtest_init(out, target, c->model_id, c->text, c->images, c->n_images, c->max_tokens,
                                     c->ignore_eos, 0, c->runs, c->warmup);
    if (s == VLM_OK && c->warmup) { /* one request alone, unmeasured */
        vlm_progress(0, "bench: warm-up request");
        vlm_request r;
        vlm_result res;
        make_request(c, c->n_images ? &c->images[0] : NULL, &r);
        s = vlm_generate(m, &r, &res);
        if (s == VLM_OK) vlm_result_free(&res);
        else vlm_err_ctx(s, "bench: warm-up request");
    }
    for (int i = 0; s == VLM_OK && i < n_levels; i++) s = run_level(m, c, levels[i], out);
    if (s == VLM_OK) s = vlm_loadtest_finish(out);
    vlm_model_free(m);
    if (s != VLM_OK) vlm_loadtest_free(out);
    return s;
}
