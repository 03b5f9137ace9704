#include "serve/metrics.h"

#include <string.h>

static const char *const k_outcomes[VLM_OUTCOME_COUNT] = {
    [VLM_OUTCOME_STOP] = "stop",
    [VLM_OUTCOME_LENGTH] = "length",
    [VLM_OUTCOME_DISCONNECTED] = "disconnected",
    [VLM_OUTCOME_ABORTED] = "aborted",
    [VLM_OUTCOME_INVALID] = "invalid",
    [VLM_OUTCOME_UNAUTHORIZED] = "unauthorized",
    [VLM_OUTCOME_TOO_LARGE] = "too_large",
    [VLM_OUTCOME_BUSY] = "busy",
    [VLM_OUTCOME_UNAVAILABLE] = "unavailable",
    [VLM_OUTCOME_ERROR] = "error",
};

const char *vlm_outcome_name(vlm_outcome o) { return (unsigned)o < VLM_OUTCOME_COUNT ? k_outcomes[o] : "?"; }

/* Bucket bounds in seconds, wide enough for a 3B model on two CPU cores (first token ~10 s) and for
 * a GPU (first token ~50 ms). */
static const double k_ttft[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 320};
static const double k_itl[] = {0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5, 10};
static const double k_e2e[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 20, 30, 40, 60, 120, 240, 480, 960, 1920};
static const double k_vision[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80};
#define N_OF(a) ((int)(sizeof a / sizeof *a))

void vlm_histogram_init(vlm_histogram *h, const double *bounds, int n) {
    memset(h, 0, sizeof *h);
    h->n_bounds = n < VLM_HIST_MAX_BOUNDS ? n : VLM_HIST_MAX_BOUNDS;
    memcpy(h->bounds, bounds, (size_t)h->n_bounds * sizeof *bounds);
}

void vlm_histogram_observe(vlm_histogram *h, double v) {
    int i = 0;
    while (i < h->n_bounds && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void vlm_metrics_init(vlm_metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
    vlm_histogram_init(&m->ttft, k_ttft, N_OF(k_ttft));
    vlm_histogram_init(&m->itl, k_itl, N_OF(k_itl));
    vlm_histogram_init(&m->e2e, k_e2e, N_OF(k_e2e));
    vlm_histogram_init(&m->vision, k_vision, N_OF(k_vision));
}

void vlm_metrics_destroy(vlm_metrics *m) { pthread_mutex_destroy(&m->mu); }

void vlm_metrics_count(vlm_metrics *m, vlm_outcome o) {
    pthread_mutex_lock(&m->mu);
    m->outcomes[o]++;
    pthread_mutex_unlock(&m->mu);
}

void vlm_metrics_observe(vlm_metrics *m, vlm_outcome o, const vlm_result *r, double ttft_s, double e2e_s) {
    pthread_mutex_lock(&m->mu);
    m->outcomes[o]++;
    m->prompt_tokens += (uint64_t)(r->timings.prompt_tokens > 0 ? r->timings.prompt_tokens : r->n_input);
    m->generation_tokens += (uint64_t)(r->n_generated > 0 ? r->n_generated : 0);
    m->cached_tokens += (uint64_t)(r->timings.cached_tokens > 0 ? r->timings.cached_tokens : 0);
    if (r->n_generated > 0) vlm_histogram_observe(&m->ttft, ttft_s);
    for (int i = 1; r->token_times && i < r->n_generated; i++)
        vlm_histogram_observe(&m->itl, r->token_times[i] - r->token_times[i - 1]);
    vlm_histogram_observe(&m->e2e, e2e_s);
    if (r->n_images > 0) vlm_histogram_observe(&m->vision, r->timings.vision_s);
    pthread_mutex_unlock(&m->mu);
}

static void family(vlm_strbuf *b, const char *name, const char *type, const char *help) {
    vlm_sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge(vlm_strbuf *b, const char *name, const char *help, double v) {
    family(b, name, "gauge", help);
    vlm_sb_printf(b, "%s %.17g\n", name, v);
}

static void counter(vlm_strbuf *b, const char *name, const char *help, uint64_t v) {
    family(b, name, "counter", help);
    vlm_sb_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void histogram(vlm_strbuf *b, const char *name, const char *help, const vlm_histogram *h) {
    family(b, name, "histogram", help);
    uint64_t cum = 0;
    for (int i = 0; i < h->n_bounds; i++) {
        cum += h->counts[i];
        vlm_sb_printf(b, "%s_bucket{le=\"%.15g\"} %llu\n", name, h->bounds[i], (unsigned long long)cum);
    }
    cum += h->counts[h->n_bounds];
    vlm_sb_printf(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
    vlm_sb_printf(b, "%s_sum %.17g\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

void vlm_metrics_render(vlm_metrics *m, const vlm_engine_stats *s, vlm_strbuf *b) {
    gauge(b, "vlm:num_requests_running", "Requests in the engine's running batch.", s->running);
    gauge(b, "vlm:num_requests_waiting", "Requests queued for the engine.", s->waiting);
    double kv = s->kv_blocks_total > 0 ? (double)s->kv_blocks_used / s->kv_blocks_total : 0.0;
    gauge(b, "vlm:kv_cache_usage_perc", "Fraction of the KV-cache blocks in use (0-1).", kv);
    pthread_mutex_lock(&m->mu);
    counter(b, "vlm:prompt_tokens_total", "Prompt tokens of the requests served (image tokens included).",
            m->prompt_tokens);
    counter(b, "vlm:generation_tokens_total", "Tokens generated.", m->generation_tokens);
    counter(b, "vlm:cached_prompt_tokens_total", "Prompt tokens whose KV came from the prefix cache.",
            m->cached_tokens);
    family(b, "vlm:requests_total", "counter", "Requests by outcome.");
    for (int o = 0; o < VLM_OUTCOME_COUNT; o++)
        vlm_sb_printf(b, "vlm:requests_total{outcome=\"%s\"} %llu\n", k_outcomes[o],
                      (unsigned long long)m->outcomes[o]);
    histogram(b, "vlm:time_to_first_token_seconds", "Time from a request's arrival to its first token.", &m->ttft);
    histogram(b, "vlm:inter_token_latency_seconds", "Time between two tokens of a sequence.", &m->itl);
    histogram(b, "vlm:e2e_request_latency_seconds", "Time from a request's arrival to its end.", &m->e2e);
    histogram(b, "vlm:vision_encoder_seconds", "Vision encoder time of a request with images.", &m->vision);
    pthread_mutex_unlock(&m->mu);
}
