/* The server's metrics in the Prometheus text format (version 0.0.4), under the names the Kubernetes
 * Gateway API Inference Extension and vLLM dashboards read:
 *   gauges      vlm:num_requests_running, vlm:num_requests_waiting, vlm:kv_cache_usage_perc (0-1)
 *   counters    vlm:prompt_tokens_total, vlm:generation_tokens_total, vlm:cached_prompt_tokens_total,
 *               vlm:requests_total{outcome="..."} (enum vlm_outcome)
 *   histograms  vlm:time_to_first_token_seconds, vlm:inter_token_latency_seconds,
 *               vlm:e2e_request_latency_seconds, vlm:vision_encoder_seconds
 * The gauges are read from the engine when scraped; the rest is recorded as requests end. All
 * functions are thread-safe. */
#ifndef VLM_SERVE_METRICS_H
#define VLM_SERVE_METRICS_H

#include <pthread.h>
#include <stdint.h>

#include "base/strbuf.h"
#include "vlm.h"

typedef enum {
    VLM_OUTCOME_STOP,         /* finished: end of sequence or a stop string */
    VLM_OUTCOME_LENGTH,       /* finished: max_tokens */
    VLM_OUTCOME_DISCONNECTED, /* the client went away; its sequence was cancelled */
    VLM_OUTCOME_ABORTED,      /* cancelled at shutdown, after the grace period */
    VLM_OUTCOME_INVALID,      /* 400 / 404 / 405: a request the server could not take */
    VLM_OUTCOME_UNAUTHORIZED, /* 401 */
    VLM_OUTCOME_TOO_LARGE,    /* 413 */
    VLM_OUTCOME_BUSY,         /* 429: the queue was full */
    VLM_OUTCOME_UNAVAILABLE,  /* 503: loading or draining */
    VLM_OUTCOME_ERROR,        /* 500: the engine failed */
    VLM_OUTCOME_COUNT
} vlm_outcome;

const char *vlm_outcome_name(vlm_outcome o);

enum { VLM_HIST_MAX_BOUNDS = 24 };

/* A histogram with fixed upper bounds (seconds); counts[i] counts observations <= bounds[i] that
 * exceed bounds[i-1] (the last slot: above every bound). Written cumulatively. */
typedef struct {
    double bounds[VLM_HIST_MAX_BOUNDS];
    int n_bounds;
    uint64_t counts[VLM_HIST_MAX_BOUNDS + 1];
    double sum;
    uint64_t count;
} vlm_histogram;

void vlm_histogram_init(vlm_histogram *h, const double *bounds, int n);
void vlm_histogram_observe(vlm_histogram *h, double v);

typedef struct {
    pthread_mutex_t mu;
    uint64_t prompt_tokens, generation_tokens, cached_tokens;
    uint64_t outcomes[VLM_OUTCOME_COUNT];
    vlm_histogram ttft, itl, e2e, vision;
} vlm_metrics;

void vlm_metrics_init(vlm_metrics *m);
void vlm_metrics_destroy(vlm_metrics *m);
/* A request that never reached the engine (401, 413, 429, 400, ...). */
void vlm_metrics_count(vlm_metrics *m, vlm_outcome o);
/* A request the engine ran to its end (finished or cancelled): tokens, latencies, outcome. ttft_s and
 * e2e_s are measured by the server from the request's arrival; token_times (r) give the gaps. */
void vlm_metrics_observe(vlm_metrics *m, vlm_outcome o, const vlm_result *r, double ttft_s, double e2e_s);
/* The exposition text: the engine's gauges from s, then the counters and histograms. */
void vlm_metrics_render(vlm_metrics *m, const vlm_engine_stats *s, vlm_strbuf *out);

#endif
