/* Load-test results (vlm bench --serve, and the in-process --concurrency): percentiles bit for bit as
 * numpy 1.24 computes them, levels gathered from per-request records (errors by kind, throughput over
 * the run's wall clock, TTFT / ITL / E2E from the successful requests), the JSON read back, the CSV and
 * the chart; and the client's SSE reader on streams cut at every byte. */
#include <stdlib.h>
#include <string.h>

#include "bench/loadtest.h"
#include "bench/serve_bench.h"
#include "harness.h"
#include "io/json.h"

static void test_percentiles_match_numpy(void) {
    /* values and expectations printed by numpy 1.24.2: repr(np.percentile(v, q)) */
    double v[] = {0.1, 0.11, 0.13, 0.2, 0.3, 0.7, 5.0}; /* sorted [0.3,0.1,0.7,0.2,5.0,0.11,0.13] */
    CHECK(vlm_loadtest_percentile(v, 7, 90) == 2.4200000000000017);
    CHECK(vlm_loadtest_percentile(v, 7, 99) == 4.741999999999998);
    CHECK(vlm_loadtest_percentile(v, 7, 50) == 0.2);
    double w[13];
    for (int i = 0; i < 13; i++) w[i] = 0.1 * (i + 1);
    CHECK(vlm_loadtest_percentile(w, 13, 90) == 1.1800000000000002);
    CHECK(vlm_loadtest_percentile(w, 13, 99) == 1.288);
    CHECK(vlm_loadtest_percentile(w, 13, 10) == 0.22000000000000003);
    double two[] = {1.0, 2.0}, one[] = {3.5};
    CHECK(vlm_loadtest_percentile(two, 2, 90) == 1.9);
    CHECK(vlm_loadtest_percentile(one, 1, 99) == 3.5);
    CHECK(vlm_loadtest_percentile(two, 2, 100) == 2.0 && vlm_loadtest_percentile(two, 2, 0) == 1.0);
    double unsorted[] = {0.3, 0.1, 0.7, 0.2, 5.0, 0.11, 0.13}, scratch[7];
    vlm_loadtest_stats s;
    vlm_loadtest_stats_compute(unsorted, 7, scratch, &s);
    CHECK(s.n == 7 && s.min == 0.1 && s.max == 5.0 && s.median == 0.2 && s.p90 == 2.4200000000000017);
    CHECK(unsorted[0] == 0.3); /* the input is left as it was */
}

static void test_levels(void) {
    vlm_loadtest_results r;
    const char *imgs[] = {"a.jpg"};
    CHECK_OK(vlm_loadtest_init(&r, "http://x:1", "tiny", "Describe.", imgs, 1, 8, 1, 0, 2, 1));
    vlm_loadtest_level *l = vlm_loadtest_add_level(&r, 2, 0);
    CHECK(l != NULL);
    double t1[] = {1.25, 1.5, 2.0}, t2[] = {2.5};
    vlm_loadtest_request run1[] = {
        {.start_s = 0, .first_token_s = 1.0, .token_s = t1, .n_token_s = 3, .end_s = 2.0, .output_tokens = 4},
        {.start_s = 0, .first_token_s = -1, .end_s = 0.5, .error = "http_429"},
    };
    CHECK_OK(vlm_loadtest_add_run(l, run1, 2, 2.0));
    vlm_loadtest_request run2[] = {
        {.start_s = 0.5, .first_token_s = 2.0, .token_s = t2, .n_token_s = 1, .end_s = 3.0, .output_tokens = 2},
        {.start_s = 0, .first_token_s = -1, .end_s = 0.1, .error = "http_429"},
        {.start_s = 0, .first_token_s = -1, .end_s = 0.1, .error = "connect"},
    };
    CHECK_OK(vlm_loadtest_add_run(l, run2, 3, 4.0));
    vlm_loadtest_level *rate = vlm_loadtest_add_level(&r, 0, 2.5);
    CHECK(rate != NULL);
    l = &r.levels[0]; /* the array moved */
    vlm_loadtest_request one = {.start_s = 0, .first_token_s = 0.25, .end_s = 0.5, .output_tokens = 1};
    CHECK_OK(vlm_loadtest_add_run(rate, &one, 1, 0.5));
    CHECK_OK(vlm_loadtest_finish(&r));
    CHECK(l->n_runs == 2 && l->n_requests == 5 && l->n_ok == 2 && vlm_loadtest_errors(l) == 3);
    CHECK(l->n_error_kinds == 2 && !strcmp(l->error_kinds[0], "http_429") && l->error_counts[0] == 2);
    CHECK(!strcmp(l->error_kinds[1], "connect") && l->error_counts[1] == 1);
    /* tok/s per run: 4 / 2 s, 2 / 4 s; ttft 1.0 and 1.5; itl 0.25 0.25 0.5 and 0.5 */
    CHECK(l->output_tokens_per_sec.n == 2 && l->output_tokens_per_sec.v[0] == 2 &&
          l->output_tokens_per_sec.v[1] == 0.5);
    CHECK(l->s_tokens_per_sec.mean == 1.25 && l->s_requests_per_sec.mean == (0.5 + 0.25) / 2);
    CHECK(l->s_ttft.n == 2 && l->s_ttft.min == 1.0 && l->s_ttft.max == 1.5);
    CHECK(l->s_itl.n == 4 && l->s_itl.median == 0.375 && l->s_itl.max == 0.5);
    CHECK(l->s_e2e.n == 2 && l->s_e2e.min == 2.0 && l->s_e2e.max == 2.5);
    /* JSON */
    vlm_strbuf b = {0};
    CHECK_OK(vlm_loadtest_json(&r, &b));
    cJSON *j = cJSON_ParseWithLength(b.data, b.len);
    CHECK_MSG(j != NULL, "not JSON: %s", b.data);
    const cJSON *c2 = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "concurrency"), "2");
    const cJSON *r25 = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "request_rate"), "2.5");
    CHECK(c2 && r25);
    const cJSON *ttft = cJSON_GetObjectItem(c2, "ttft");
    CHECK(cJSON_GetObjectItem(ttft, "p90") && cJSON_GetObjectItem(ttft, "p99") && cJSON_GetObjectItem(ttft, "median"));
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(ttft, "values")) == 2);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(c2, "output_tokens_per_sec"), "mean")->valuedouble == 1.25);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(c2, "errors"), "http_429")->valueint == 2);
    CHECK(cJSON_GetObjectItem(c2, "num_requests")->valueint == 5 && cJSON_GetObjectItem(c2, "num_ok")->valueint == 2);
    const cJSON *meta = cJSON_GetObjectItem(j, "metadata");
    CHECK(!strcmp(cJSON_GetObjectItem(meta, "target")->valuestring, "http://x:1"));
    CHECK(!strcmp(cJSON_GetObjectItem(meta, "requests_per_run")->valuestring, "N"));
    CHECK(cJSON_IsTrue(cJSON_GetObjectItem(meta, "ignore_eos")));
    cJSON_Delete(j);
    vlm_sb_free(&b);
    /* CSV: a header and 7 metrics per level */
    CHECK_OK(vlm_loadtest_csv(&r, &b));
    int lines = 0;
    for (const char *p = b.data; (p = strchr(p, '\n')); p++) lines++;
    CHECK(lines == 1 + 2 * 7 && strstr(b.data, "c=2,ttft,1.250000,") && strstr(b.data, "r=2.5/s,e2e,"));
    vlm_sb_free(&b);
    /* the chart is an SVG document */
    CHECK_OK(vlm_loadtest_plot_svg(&r, &b));
    CHECK(!strncmp(b.data, "<svg", 4) && strstr(b.data, "</svg>") && strstr(b.data, "c=2"));
    vlm_sb_free(&b);
    CHECK_OK(vlm_loadtest_write_plot(&r, test_tmp("chart.html")));
    FILE *f = fopen(test_tmp("chart.html"), "r");
    CHECK(f != NULL);
    if (f) fclose(f);
    FILE *out = fopen("/dev/null", "w");
    vlm_loadtest_print(out, &r);
    fclose(out);
    vlm_loadtest_free(&r);
}

typedef struct {
    char events[16][128];
    int n;
} sink;

static void on_data(void *user, const char *data, size_t len) {
    sink *s = user;
    if (s->n < 16) snprintf(s->events[s->n++], 128, "%.*s", (int)len, data);
}

static void test_sse_reader(void) {
    const char *stream =
        ": keep-alive\n\ndata: {\"a\":1}\n\ndata:{\"b\":2}\r\n\r\nevent: x\nid: 3\ndata: one\ndata: two\n\n"
        "retry: 10\n\ndata: [DONE]\n\n";
    /* whole, then cut at every byte: the same events */
    for (size_t cut = 0; cut <= strlen(stream); cut++) {
        sink s = {0};
        vlm_sse_reader r = {0};
        vlm_sse_feed(&r, stream, cut, on_data, &s);
        vlm_sse_feed(&r, stream + cut, strlen(stream) - cut, on_data, &s);
        CHECK_MSG(s.n == 4, "cut %zu: %d events", cut, s.n);
        CHECK(!strcmp(s.events[0], "{\"a\":1}") && !strcmp(s.events[1], "{\"b\":2}"));
        CHECK(!strcmp(s.events[2], "one\ntwo") && !strcmp(s.events[3], "[DONE]"));
        vlm_sse_reader_free(&r);
    }
    /* an event without its blank line is not delivered */
    sink s = {0};
    vlm_sse_reader r = {0};
    vlm_sse_feed(&r, "data: x\n", 8, on_data, &s);
    CHECK(s.n == 0);
    vlm_sse_reader_free(&r);
}

int main(void) {
    RUN(test_percentiles_match_numpy);
    RUN(test_levels);
    RUN(test_sse_reader);
    return test_summary();
}
