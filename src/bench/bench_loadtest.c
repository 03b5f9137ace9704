/* Load tests: per-request records gathered into levels, and their statistics computed as numpy
 * computes them (so the JSON "values" recompute to the same numbers). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/memory.h"
#include "bench/bench.h"
#include "bench/loadtest.h"

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy's _lerp: a + (b-a)*t, computed from b's side for t >= 0.5 (so t = 1 gives b exactly). */
static double lerp(double a, double b, double t) {
    double d = b - a;
    return t >= 0.5 ? b - d * (1 - t) : a + d * t;
}

double vlm_loadtest_percentile(const double *sorted, int n, double q) {
    double quantile = q / 100.0;
    double virt = (n - 1) * quantile; /* numpy's "linear" method (Hyndman & Fan 7) */
    if (virt >= n - 1) return sorted[n - 1];
    if (virt < 0) return sorted[0];
    double prev = floor(virt);
    int i = (int)prev;
    return lerp(sorted[i], sorted[i + 1], virt - prev);
}

void vlm_loadtest_stats_compute(const double *v, int n, double *scratch, vlm_loadtest_stats *out) {
    memset(out, 0, sizeof *out);
    if (n <= 0) return;
    vlm_bench_stats s;
    vlm_bench_stats_compute(v, n, scratch, &s);
    *out = (vlm_loadtest_stats){.mean = s.mean, .std = s.std, .min = s.min, .max = s.max, .median = s.median, .n = n};
    memcpy(scratch, v, (size_t)n * sizeof *v);
    qsort(scratch, (size_t)n, sizeof *scratch, cmp_double);
    out->p90 = vlm_loadtest_percentile(scratch, n, 90);
    out->p99 = vlm_loadtest_percentile(scratch, n, 99);
}

static vlm_status push(vlm_loadtest_values *a, double v) {
    if (a->n == a->cap) {
        int cap = a->cap ? a->cap * 2 : 64;
        double *p = vlm_alloc((size_t)cap * sizeof *p, "load-test values");
        if (!p) return VLM_ERR_NOMEM;
        if (a->n) memcpy(p, a->v, (size_t)a->n * sizeof *p);
        vlm_free(a->v);
        a->v = p;
        a->cap = cap;
    }
    a->v[a->n++] = v;
    return VLM_OK;
}

static char *dup_or_null(const char *s) { return s ? vlm_strdup(s, "a load-test record") : NULL; }

vlm_status vlm_loadtest_init(vlm_loadtest_results *r, const char *target, const char *model, const char *prompt,
                             const char *const *images, int n_images, int max_tokens, int ignore_eos, int requests,
                             int runs, int warmup) {
    memset(r, 0, sizeof *r);
    r->target = dup_or_null(target);
    r->model = dup_or_null(model);
    r->prompt = dup_or_null(prompt);
    r->max_tokens = max_tokens;
    r->ignore_eos = ignore_eos;
    r->requests = requests;
    r->runs = runs;
    r->warmup = warmup;
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(r->timestamp, sizeof r->timestamp, "%Y-%m-%dT%H:%M:%S%z", &tm);
    if (n_images > 0) {
        r->images = vlm_calloc((size_t)n_images, sizeof *r->images, "load-test image list");
        if (!r->images) return VLM_ERR_NOMEM;
        r->n_images = n_images;
        for (int i = 0; i < n_images; i++)
            if (!(r->images[i] = vlm_strdup(images[i], "an image name"))) return VLM_ERR_NOMEM;
    }
    return VLM_OK;
}

vlm_loadtest_level *vlm_loadtest_add_level(vlm_loadtest_results *r, int concurrency, double request_rate) {
    vlm_loadtest_level *l = vlm_calloc((size_t)r->n_levels + 1, sizeof *l, "load-test levels");
    if (!l) return NULL;
    if (r->n_levels) memcpy(l, r->levels, (size_t)r->n_levels * sizeof *l);
    vlm_free(r->levels);
    r->levels = l;
    l = &r->levels[r->n_levels++];
    l->concurrency = concurrency;
    l->request_rate = request_rate;
    return l;
}

static void count_error(vlm_loadtest_level *l, const char *kind) {
    int k = 0;
    while (k < l->n_error_kinds && strcmp(l->error_kinds[k], kind) != 0) k++;
    if (k == l->n_error_kinds) {
        if (k == VLM_LOADTEST_MAX_ERROR_KINDS) k--; /* the last slot gathers the rest */
        else snprintf(l->error_kinds[l->n_error_kinds++], sizeof l->error_kinds[0], "%s", kind);
    }
    l->error_counts[k]++;
}

vlm_status vlm_loadtest_add_run(vlm_loadtest_level *l, const vlm_loadtest_request *reqs, int n, double duration_s) {
    double tokens = 0;
    int ok = 0;
    vlm_status s = VLM_OK;
    for (int i = 0; i < n && s == VLM_OK; i++) {
        const vlm_loadtest_request *q = &reqs[i];
        l->n_requests++;
        if (q->error) {
            count_error(l, q->error);
            continue;
        }
        ok++;
        tokens += q->output_tokens;
        s = push(&l->e2e, q->end_s - q->start_s);
        if (s == VLM_OK) s = push(&l->output_tokens, q->output_tokens);
        if (s == VLM_OK && q->first_token_s >= 0) s = push(&l->ttft, q->first_token_s - q->start_s);
        double prev = q->first_token_s;
        for (int k = 0; s == VLM_OK && k < q->n_token_s; k++) {
            s = push(&l->itl, q->token_s[k] - prev);
            prev = q->token_s[k];
        }
    }
    l->n_ok += ok;
    l->n_runs++;
    double d = duration_s > 0 ? duration_s : 0;
    if (s == VLM_OK) s = push(&l->duration, d);
    if (s == VLM_OK) s = push(&l->output_tokens_per_sec, d > 0 ? tokens / d : 0);
    if (s == VLM_OK) s = push(&l->requests_per_sec, d > 0 ? ok / d : 0);
    return s;
}

vlm_status vlm_loadtest_add_decode(vlm_loadtest_level *l, double tokens_per_sec) {
    return push(&l->decode_tokens_per_sec, tokens_per_sec);
}

static vlm_status stats(const vlm_loadtest_values *a, vlm_loadtest_stats *out) {
    memset(out, 0, sizeof *out);
    if (!a->n) return VLM_OK;
    double *scratch = vlm_alloc((size_t)a->n * sizeof *scratch, "load-test statistics");
    if (!scratch) return VLM_ERR_NOMEM;
    vlm_loadtest_stats_compute(a->v, a->n, scratch, out);
    vlm_free(scratch);
    return VLM_OK;
}

vlm_status vlm_loadtest_finish(vlm_loadtest_results *r) {
    for (int i = 0; i < r->n_levels; i++) {
        vlm_loadtest_level *l = &r->levels[i];
        VLM_TRY(stats(&l->output_tokens_per_sec, &l->s_tokens_per_sec));
        VLM_TRY(stats(&l->requests_per_sec, &l->s_requests_per_sec));
        VLM_TRY(stats(&l->duration, &l->s_duration));
        VLM_TRY(stats(&l->ttft, &l->s_ttft));
        VLM_TRY(stats(&l->itl, &l->s_itl));
        VLM_TRY(stats(&l->e2e, &l->s_e2e));
        VLM_TRY(stats(&l->output_tokens, &l->s_output_tokens));
        VLM_TRY(stats(&l->decode_tokens_per_sec, &l->s_decode_tokens_per_sec));
    }
    return VLM_OK;
}

int vlm_loadtest_errors(const vlm_loadtest_level *l) { return l->n_requests - l->n_ok; }

static void values_free(vlm_loadtest_values *a) {
    vlm_free(a->v);
    memset(a, 0, sizeof *a);
}

void vlm_loadtest_free(vlm_loadtest_results *r) {
    for (int i = 0; i < r->n_levels; i++) {
        vlm_loadtest_level *l = &r->levels[i];
        values_free(&l->output_tokens_per_sec);
        values_free(&l->requests_per_sec);
        values_free(&l->duration);
        values_free(&l->ttft);
        values_free(&l->itl);
        values_free(&l->e2e);
        values_free(&l->output_tokens);
        values_free(&l->decode_tokens_per_sec);
    }
    vlm_free(r->levels);
    for (int i = 0; i < r->n_images; i++) free(r->images[i]);
    vlm_free(r->images);
    free(r->target);
    free(r->model);
    free(r->prompt);
    memset(r, 0, sizeof *r);
}
