/* vlm bench --serve URL: the benchmark driven over HTTP against any OpenAI-compatible server (vlm
 * serve, llama-server, vLLM, ...). Streaming chat completions (stream_options.include_usage) with the
 * bench's images as base64 data: URIs and its prompt, greedy (temperature 0); per level either a
 * concurrency N (a closed loop: N requests in flight until `requests` have run) or a request rate R
 * (an open loop: Poisson arrivals at R per second). The client is libcurl's multi interface, one
 * thread for every request, so the client's own overhead stays small and measured times are what a
 * client sees: TTFT to the first content chunk, inter-token latency between content chunks,
 * end-to-end to the end of the stream. Results are load tests (loadtest.h). */
#ifndef VLM_BENCH_SERVE_BENCH_H
#define VLM_BENCH_SERVE_BENCH_H

#include <stdint.h>

#include "bench/loadtest.h"

typedef struct {
    const char *url;     /* the server: http://host:port (a trailing "/" or "/v1" is fine) */
    const char *api_key; /* NULL: none */
    const char *model;   /* NULL: the first of GET /v1/models */
    const char *text;    /* the prompt */
    const char *const *images;
    int n_images; /* request i uses image i % n_images; 0: text only */
    int max_tokens, ignore_eos, warmup, runs;
    int requests; /* per level and run; 0: the level's concurrency (request rates: 16) */
    const int *concurrency;
    int n_concurrency;
    const double *rates;
    int n_rates;
    double timeout_s; /* per request */
    uint64_t seed;    /* of the Poisson arrivals */
} vlm_bench_serve_config;

/* Runs every level (a warm-up request first unless disabled); out is finished on success. Failed
 * requests are counted by kind, not fatal; the server being unreachable or answering no model is. */
vlm_status vlm_bench_serve(const vlm_bench_serve_config *c, vlm_loadtest_results *out);

/* A server-sent-events reader: feed bytes as they arrive; each complete event's data (its "data:"
 * lines joined by "\n", CRs dropped) goes to on_data. Comments and other fields are skipped. */
typedef struct {
    vlm_strbuf line, data; /* the line being read; the event's data so far */
    int has_data;
} vlm_sse_reader;
void vlm_sse_feed(vlm_sse_reader *r, const char *bytes, size_t n,
                  void (*on_data)(void *user, const char *data, size_t len), void *user);
void vlm_sse_reader_free(vlm_sse_reader *r);

#endif
