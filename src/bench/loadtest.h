/* Load tests: many requests at once, against an in-process engine (vlm bench --concurrency) or an
 * OpenAI-compatible server over HTTP (vlm bench --serve URL, bench_serve.c). Both record each
 * request as its client saw it (vlm_loadtest_request) and share what follows: the statistics (the
 * bench's statistic object plus p90 and p99, as numpy computes them), the console table, the JSON
 * ("concurrency" / "request_rate" objects keyed by the level as a string), the CSV and the chart.
 *
 *   vlm_loadtest_results r;  vlm_loadtest_init(&r, "http://...", ...);
 *   vlm_loadtest_level *l = vlm_loadtest_add_level(&r, 4, 0);            // concurrency 4
 *   vlm_loadtest_add_run(l, reqs, n, duration_s);                         // once per run
 *   vlm_loadtest_finish(&r);  vlm_loadtest_print(stdout, &r);  vlm_loadtest_write_json(&r, "x.json");
 *   vlm_loadtest_free(&r);
 */
#ifndef VLM_BENCH_LOADTEST_H
#define VLM_BENCH_LOADTEST_H

#include <stdio.h>

#include "base/error.h"
#include "base/strbuf.h"

/* One request as its client saw it. Times in seconds from the start of its run. */
typedef struct {
    double start_s, end_s;
    double first_token_s;  /* < 0: no token came */
    const double *token_s; /* arrival of each token (or streamed piece) after the first, n_token_s of them */
    int n_token_s;
    int output_tokens; /* as the server or engine counted them */
    const char *error; /* NULL: it succeeded; else its kind ("http_429", "connect", "timeout", ...) */
} vlm_loadtest_request;

/* The bench's statistic object with percentiles: mean, population std, min, max, median (numpy) and
 * p90 / p99 (numpy.percentile, linear interpolation). n = 0: all zero. */
typedef struct {
    double mean, std, min, max, median, p90, p99;
    int n;
} vlm_loadtest_stats;

/* numpy.percentile(v, q) of sorted[0..n) (n >= 1), bit for bit (numpy 1.22+ "linear"). */
double vlm_loadtest_percentile(const double *sorted, int n, double q);
/* Statistics of v[0..n); scratch holds n doubles. */
void vlm_loadtest_stats_compute(const double *v, int n, double *scratch, vlm_loadtest_stats *out);

/* A growing list of doubles (the "values" of a statistic). */
typedef struct {
    double *v;
    int n, cap;
} vlm_loadtest_values;

enum { VLM_LOADTEST_MAX_ERROR_KINDS = 16 };

/* One level of load: a concurrency (N requests in flight) or a request rate (Poisson arrivals). */
typedef struct {
    int concurrency;     /* > 0 for a concurrency level */
    double request_rate; /* > 0 for a request-rate level (requests/s) */
    int n_runs, n_requests, n_ok;
    /* per run */
    vlm_loadtest_values output_tokens_per_sec, requests_per_sec, duration;
    /* per successful request, over every run */
    vlm_loadtest_values ttft, itl, e2e, output_tokens;
    /* failed requests by kind */
    char error_kinds[VLM_LOADTEST_MAX_ERROR_KINDS][48];
    int error_counts[VLM_LOADTEST_MAX_ERROR_KINDS];
    int n_error_kinds;
    /* in-process only (vlm bench --concurrency): per run, the output tokens per second of the engine
     * steps that ran decode rows only, with all N sequences running (empty for a server) */
    vlm_loadtest_values decode_tokens_per_sec;
    vlm_loadtest_stats s_decode_tokens_per_sec;
    /* filled by vlm_loadtest_finish */
    vlm_loadtest_stats s_tokens_per_sec, s_requests_per_sec, s_duration, s_ttft, s_itl, s_e2e, s_output_tokens;
} vlm_loadtest_level;

typedef struct {
    char *target; /* "in-process engine (mode, precision, the device used)" or the server's URL */
    char *model, *prompt;
    char **images;
    int n_images;
    int max_tokens, ignore_eos, requests, runs, warmup;
    char timestamp[40];
    int n_levels;
    vlm_loadtest_level *levels;
} vlm_loadtest_results;

/* Copies the description of the test (images may be NULL). requests: per level and run (0: N). */
vlm_status vlm_loadtest_init(vlm_loadtest_results *r, const char *target, const char *model, const char *prompt,
                             const char *const *images, int n_images, int max_tokens, int ignore_eos, int requests,
                             int runs, int warmup);
/* A new level (exactly one of concurrency and request_rate is > 0); NULL when out of memory. */
vlm_loadtest_level *vlm_loadtest_add_level(vlm_loadtest_results *r, int concurrency, double request_rate);
/* Adds one run of n requests that took duration_s (first start to last end). Throughputs count the
 * successful requests' output tokens; latencies come from the successful requests only. */
vlm_status vlm_loadtest_add_run(vlm_loadtest_level *l, const vlm_loadtest_request *reqs, int n, double duration_s);
/* Adds one run's decode-only throughput (in-process levels). */
vlm_status vlm_loadtest_add_decode(vlm_loadtest_level *l, double tokens_per_sec);
/* Computes every statistic. */
vlm_status vlm_loadtest_finish(vlm_loadtest_results *r);
void vlm_loadtest_free(vlm_loadtest_results *r);
/* Failed requests of a level (all kinds). */
int vlm_loadtest_errors(const vlm_loadtest_level *l);

/* Reporting (bench_loadtest_report.c). */
void vlm_loadtest_print(FILE *f, const vlm_loadtest_results *r);
/* {"concurrency": {"<N>": {...}}, "request_rate": {"<R>": {...}}, "metadata": {...}}; each level:
 * output_tokens_per_sec, requests_per_sec, duration, ttft, itl, e2e, output_tokens (statistic objects
 * with "values"), num_runs, num_requests, num_ok, errors {kind: count}. */
vlm_status vlm_loadtest_json(const vlm_loadtest_results *r, vlm_strbuf *out);
vlm_status vlm_loadtest_write_json(const vlm_loadtest_results *r, const char *path);
/* Level,Metric,Mean,Std,Min,Max,Median,P90,P99,Count (level "c=4" or "r=2.5"). */
vlm_status vlm_loadtest_csv(const vlm_loadtest_results *r, vlm_strbuf *out);
vlm_status vlm_loadtest_write_csv(const vlm_loadtest_results *r, const char *path);
/* An SVG (or an HTML page with it): aggregate output tok/s and TTFT p50/p90 per level. */
vlm_status vlm_loadtest_plot_svg(const vlm_loadtest_results *r, vlm_strbuf *out);
vlm_status vlm_loadtest_write_plot(const vlm_loadtest_results *r, const char *path);

#endif
