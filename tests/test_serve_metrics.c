/* The metrics of vlm serve: histogram buckets, counters by outcome, and the exposition text checked
 * line by line against the Prometheus text format (every sample under a HELP and TYPE of its
 * family, buckets cumulative and ending with +Inf = _count, the gauges the Gateway API Inference
 * Extension reads). */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "serve/metrics.h"

static void test_histogram(void) {
    const double b[] = {0.1, 1, 10};
    vlm_histogram h;
    vlm_histogram_init(&h, b, 3);
    double v[] = {0.05, 0.1, 0.5, 1, 3, 100};
    for (int i = 0; i < 6; i++) vlm_histogram_observe(&h, v[i]);
    /* le is inclusive: 0.1 counts in the 0.1 bucket */
    CHECK(h.counts[0] == 2 && h.counts[1] == 2 && h.counts[2] == 1 && h.counts[3] == 1);
    CHECK(h.count == 6 && h.sum == 0.05 + 0.1 + 0.5 + 1 + 3 + 100);
}

/* The value of the sample line that starts with `name ` (name may hold labels). */
static double sample(const char *text, const char *name) {
    size_t n = strlen(name);
    for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL)
        if (!strncmp(l, name, n) && l[n] == ' ') return strtod(l + n + 1, NULL);
    CHECK_MSG(0, "no sample %s", name);
    return -1;
}

/* Every line is a comment (# HELP / # TYPE of the family that follows) or "name[{labels}] value";
 * samples belong to the family declared last; histogram buckets are cumulative. */
static void check_format(const char *text) {
    char family[128] = "", type[32] = "";
    double last_bucket = -1;
    int lines = 0;
    for (const char *l = text; *l; lines++) {
        const char *end = strchr(l, '\n');
        CHECK_MSG(end != NULL, "the text does not end with a newline");
        if (!end) break;
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(end - l), l);
        l = end + 1;
        if (!strncmp(line, "# HELP ", 7)) {
            CHECK(sscanf(line + 7, "%127s", family) == 1);
            last_bucket = -1;
            continue;
        }
        if (!strncmp(line, "# TYPE ", 7)) {
            char name[128];
            CHECK(sscanf(line + 7, "%127s %31s", name, type) == 2 && !strcmp(name, family));
            CHECK(!strcmp(type, "gauge") || !strcmp(type, "counter") || !strcmp(type, "histogram"));
            continue;
        }
        CHECK_MSG(line[0] != '#', "unknown comment: %s", line);
        size_t fn = strlen(family);
        CHECK_MSG(family[0] && !strncmp(line, family, fn), "sample outside its family: %s", line);
        const char *rest = line + fn;
        char *value_at = strrchr(line, ' ');
        CHECK(value_at != NULL);
        char *endp;
        double v = value_at ? strtod(value_at + 1, &endp) : 0;
        CHECK_MSG(value_at && *endp == 0, "bad value: %s", line);
        if (!strcmp(type, "histogram")) {
            if (!strncmp(rest, "_bucket{le=\"", 12)) {
                CHECK_MSG(v >= last_bucket, "buckets not cumulative: %s", line);
                last_bucket = v;
            } else if (!strncmp(rest, "_count ", 7)) {
                CHECK_MSG(v == last_bucket, "_count %g != +Inf bucket %g", v, last_bucket);
            } else CHECK_MSG(!strncmp(rest, "_sum ", 5), "unknown histogram sample: %s", line);
        } else CHECK_MSG(*rest == ' ' || *rest == '{', "sample name is not the family's: %s", line);
    }
    CHECK(lines > 20);
}

static void test_render(void) {
    vlm_metrics m;
    vlm_metrics_init(&m);
    double times[] = {1.0, 1.25, 1.3125, 1.8125}; /* exact in binary */
    vlm_result r = {.n_input = 30, .n_generated = 4, .token_times = times, .n_images = 1, .stop = VLM_STOP_EOS};
    r.timings.prompt_tokens = 30;
    r.timings.cached_tokens = 16;
    r.timings.vision_s = 0.3;
    vlm_metrics_observe(&m, VLM_OUTCOME_STOP, &r, 1.5, 2.5);
    r.n_images = 0;
    r.n_generated = 0;
    vlm_metrics_observe(&m, VLM_OUTCOME_DISCONNECTED, &r, 0, 0.2);
    vlm_metrics_count(&m, VLM_OUTCOME_BUSY);
    vlm_metrics_count(&m, VLM_OUTCOME_BUSY);
    vlm_metrics_count(&m, VLM_OUTCOME_UNAUTHORIZED);
    vlm_engine_stats s = {.running = 3, .waiting = 7, .kv_blocks_total = 200, .kv_blocks_used = 50};
    vlm_strbuf b = {0};
    vlm_metrics_render(&m, &s, &b);
    check_format(b.data);
    CHECK(sample(b.data, "vlm:num_requests_running") == 3 && sample(b.data, "vlm:num_requests_waiting") == 7);
    CHECK(sample(b.data, "vlm:kv_cache_usage_perc") == 0.25);
    CHECK(sample(b.data, "vlm:prompt_tokens_total") == 60 && sample(b.data, "vlm:generation_tokens_total") == 4);
    CHECK(sample(b.data, "vlm:cached_prompt_tokens_total") == 32);
    CHECK(sample(b.data, "vlm:requests_total{outcome=\"stop\"}") == 1);
    CHECK(sample(b.data, "vlm:requests_total{outcome=\"disconnected\"}") == 1);
    CHECK(sample(b.data, "vlm:requests_total{outcome=\"busy\"}") == 2);
    CHECK(sample(b.data, "vlm:requests_total{outcome=\"unauthorized\"}") == 1);
    CHECK(sample(b.data, "vlm:requests_total{outcome=\"length\"}") == 0);
    /* ttft only for a request that produced a token; three gaps of 0.25, 0.0625 and 0.5 s */
    CHECK(sample(b.data, "vlm:time_to_first_token_seconds_count") == 1);
    CHECK(sample(b.data, "vlm:time_to_first_token_seconds_sum") == 1.5);
    CHECK(sample(b.data, "vlm:inter_token_latency_seconds_count") == 3);
    CHECK(sample(b.data, "vlm:inter_token_latency_seconds_bucket{le=\"0.05\"}") == 0);
    CHECK(sample(b.data, "vlm:inter_token_latency_seconds_bucket{le=\"0.075\"}") == 1);
    CHECK(sample(b.data, "vlm:inter_token_latency_seconds_bucket{le=\"0.3\"}") == 2);
    CHECK(sample(b.data, "vlm:inter_token_latency_seconds_bucket{le=\"+Inf\"}") == 3);
    CHECK(sample(b.data, "vlm:e2e_request_latency_seconds_count") == 2);
    CHECK(sample(b.data, "vlm:vision_encoder_seconds_count") == 1);
    CHECK(sample(b.data, "vlm:vision_encoder_seconds_bucket{le=\"0.25\"}") == 0);
    CHECK(sample(b.data, "vlm:vision_encoder_seconds_bucket{le=\"0.5\"}") == 1);
    /* an engine without a KV pool yet: usage 0, not NaN */
    vlm_sb_free(&b);
    vlm_engine_stats none = {0};
    vlm_metrics_render(&m, &none, &b);
    CHECK(sample(b.data, "vlm:kv_cache_usage_perc") == 0);
    vlm_sb_free(&b);
    vlm_metrics_destroy(&m);
    CHECK(!strcmp(vlm_outcome_name(VLM_OUTCOME_TOO_LARGE), "too_large"));
}

int main(void) {
    RUN(test_histogram);
    RUN(test_render);
    return test_summary();
}
