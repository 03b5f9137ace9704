/* vlm bench --serve: many streaming chat completions at once over HTTP, with libcurl's multi
 * interface on one thread. Each transfer reads its SSE stream as it arrives and stamps the content
 * chunks; the scheduler keeps N requests in flight (concurrency) or starts them at Poisson arrival
 * times (request rate). */
#include <curl/curl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base64.h"
#include "base/log.h"
#include "base/memory.h"
#include "base/timer.h"
#include "bench/serve_bench.h"
#include "io/file.h"
#include "io/json.h"

/* ---- one request --------------------------------------------------------------------------------- */

typedef struct {
    CURL *h;
    struct curl_slist *headers;
    vlm_sse_reader sse;
    vlm_strbuf raw; /* the first bytes of a body that is not a stream (an error answer) */
    double start, first, end;
    double *token_s;
    int n_token_s, cap_token_s;
    int chunks, usage_tokens, done;
    const char *error;
    char error_buf[48];
    long http;
} xfer;

static void set_error(xfer *x, const char *kind) {
    if (x->error) return;
    snprintf(x->error_buf, sizeof x->error_buf, "%s", kind);
    x->error = x->error_buf;
}

static void on_event(void *user, const char *data, size_t len) {
    xfer *x = user;
    double now = vlm_now();
    if (len == 6 && !memcmp(data, "[DONE]", 6)) {
        x->done = 1;
        return;
    }
    cJSON *j = cJSON_ParseWithLength(data, len);
    if (!j) {
        set_error(x, "protocol");
        return;
    }
    if (cJSON_GetObjectItemCaseSensitive(j, "error")) set_error(x, "stream_error");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive(j, "usage");
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(usage, "completion_tokens");
    if (cJSON_IsNumber(ct)) x->usage_tokens = ct->valueint;
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "choices"), 0);
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(c0, "delta"), "content");
    if (cJSON_IsString(content) && content->valuestring[0]) {
        x->chunks++;
        if (x->first < 0) x->first = now;
        else {
            if (x->n_token_s == x->cap_token_s) {
                int cap = x->cap_token_s ? 2 * x->cap_token_s : 256;
                double *p = vlm_alloc((size_t)cap * sizeof *p, "token arrival times");
                if (p && x->n_token_s) memcpy(p, x->token_s, (size_t)x->n_token_s * sizeof *p);
                vlm_free(x->token_s);
                x->token_s = p;
                x->cap_token_s = p ? cap : 0;
                if (!p) x->n_token_s = 0;
            }
            if (x->token_s) x->token_s[x->n_token_s++] = now;
        }
    }
    cJSON_Delete(j);
}

static size_t on_body(char *p, size_t sz, size_t n, void *user) {
    xfer *x = user;
    if (!x->http) curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->http);
    if (x->http == 200) vlm_sse_feed(&x->sse, p, sz * n, on_event, x);
    else if (x->raw.len < 2048) vlm_sb_append(&x->raw, p, sz * n);
    return sz * n;
}

static void xfer_free(xfer *x) {
    if (x->h) curl_easy_cleanup(x->h);
    curl_slist_free_all(x->headers);
    vlm_sse_reader_free(&x->sse);
    vlm_sb_free(&x->raw);
    vlm_free(x->token_s);
    memset(x, 0, sizeof *x);
}

typedef struct {
    const vlm_bench_serve_config *c;
    char endpoint[1024], models_url[1024], auth[512];
    vlm_strbuf *bodies; /* one request body per image (or one, text only) */
    int n_bodies;
    char logged[VLM_LOADTEST_MAX_ERROR_KINDS][48]; /* error kinds already explained on stderr */
    int n_logged;
} client;

static vlm_status xfer_start(client *cl, CURLM *m, xfer *x, int index) {
    memset(x, 0, sizeof *x);
    x->first = -1;
    const vlm_strbuf *body = &cl->bodies[index % cl->n_bodies];
    x->h = curl_easy_init();
    if (!x->h) return vlm_err(VLM_ERR_NOMEM, "curl_easy_init failed");
    x->headers = curl_slist_append(NULL, "Content-Type: application/json");
    x->headers = curl_slist_append(x->headers, "Accept: text/event-stream");
    if (cl->auth[0]) x->headers = curl_slist_append(x->headers, cl->auth);
    x->headers = curl_slist_append(x->headers, "Expect:");
    curl_easy_setopt(x->h, CURLOPT_URL, cl->endpoint);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, body->data);
    curl_easy_setopt(x->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, x);
    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->h, CURLOPT_TIMEOUT_MS, (long)(cl->c->timeout_s * 1000));
    x->start = vlm_now();
    if (curl_multi_add_handle(m, x->h) != CURLM_OK) return vlm_err(VLM_ERR_RUNTIME, "curl_multi_add_handle failed");
    return VLM_OK;
}

/* How a finished transfer went: NULL (fine) or its error kind. */
static void xfer_end(client *cl, xfer *x, CURLcode rc) {
    x->end = vlm_now();
    curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->http);
    char kind[48];
    kind[0] = 0;
    if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST) snprintf(kind, sizeof kind, "connect");
    else if (rc == CURLE_OPERATION_TIMEDOUT) snprintf(kind, sizeof kind, "timeout");
    else if (rc == CURLE_GOT_NOTHING || rc == CURLE_RECV_ERROR || rc == CURLE_PARTIAL_FILE || rc == CURLE_SEND_ERROR)
        snprintf(kind, sizeof kind, "connection_lost");
    else if (rc != CURLE_OK) snprintf(kind, sizeof kind, "transport");
    else if (x->http != 200) snprintf(kind, sizeof kind, "http_%ld", x->http);
    else if (x->error) snprintf(kind, sizeof kind, "%s", x->error);
    else if (!x->done) snprintf(kind, sizeof kind, "incomplete");
    x->error = NULL;
    if (kind[0]) set_error(x, kind);
    if (!x->error) return;
    for (int k = 0; k < cl->n_logged; k++)
        if (!strcmp(cl->logged[k], x->error)) return;
    if (cl->n_logged < VLM_LOADTEST_MAX_ERROR_KINDS) snprintf(cl->logged[cl->n_logged++], 48, "%s", x->error);
    VLM_LOG_W("bench --serve: a request failed (%s): %s%.300s", x->error, rc != CURLE_OK ? curl_easy_strerror(rc) : "",
              x->raw.data ? x->raw.data : "");
}

/* The record of a finished transfer, its times from t0 (the token times are shifted in place). */
static vlm_loadtest_request record(xfer *x, double t0) {
    for (int i = 0; i < x->n_token_s; i++) x->token_s[i] -= t0;
    vlm_loadtest_request q = {.start_s = x->start - t0,
                              .end_s = x->end - t0,
                              .first_token_s = x->first >= 0 ? x->first - t0 : -1,
                              .token_s = x->token_s,
                              .n_token_s = x->n_token_s,
                              .output_tokens = x->usage_tokens > 0 ? x->usage_tokens : x->chunks,
                              .error = x->error};
    return q;
}

/* ---- one run of a level -------------------------------------------------------------------------- */

/* Exponential inter-arrival times at rate per second, from a seeded generator (splitmix64). */
static double next_arrival(uint64_t *state, double rate) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    double u = ((z >> 11) + 0.5) * (1.0 / 9007199254740992.0); /* in (0, 1) */
    return -log(u) / rate;
}

/* Runs n requests: at most `inflight` at once (concurrency), or started at Poisson times (rate > 0).
 * reqs[n] receive the records (token times stay owned by xs until xs are freed). */
static vlm_status run_requests(client *cl, int n, int inflight, double rate, uint64_t *rng, xfer *xs,
                               double *duration) {
    CURLM *m = curl_multi_init();
    if (!m) return vlm_err(VLM_ERR_NOMEM, "curl_multi_init failed");
    double t0 = vlm_now(), next_t = t0, last_end = t0; /* next_t: when request `started` arrives (rate) */
    int started = 0, finished = 0, running = 0;
    vlm_status s = VLM_OK;
    while (s == VLM_OK && finished < n) {
        while (s == VLM_OK && started < n && (rate > 0 ? vlm_now() >= next_t : running < inflight)) {
            s = xfer_start(cl, m, &xs[started], started);
            started++;
            running++;
            if (rate > 0) next_t += next_arrival(rng, rate);
        }
        int still;
        curl_multi_perform(m, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            xfer *x;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            xfer_end(cl, x, msg->data.result);
            curl_multi_remove_handle(m, msg->easy_handle);
            curl_easy_cleanup(x->h);
            x->h = NULL;
            last_end = x->end > last_end ? x->end : last_end;
            finished++;
            running--;
        }
        if (finished == n) break;
        int wait_ms = 100;
        if (rate > 0 && started < n) {
            double dt = next_t - vlm_now();
            wait_ms = dt <= 0 ? 0 : dt < 0.1 ? (int)(dt * 1000) + 1 : 100;
        }
        curl_multi_poll(m, NULL, 0, wait_ms, NULL);
    }
    curl_multi_cleanup(m);
    *duration = last_end - (started ? xs[0].start : t0);
    return s;
}

/* ---- setup: the endpoint, the model, the request bodies --------------------------------------------- */

static size_t collect(char *p, size_t sz, size_t n, void *user) {
    vlm_strbuf *b = user;
    if (b->len < (16u << 20)) vlm_sb_append(b, p, sz * n);
    return sz * n;
}

/* GET /v1/models: the first model's id (the server must answer for the benchmark to make sense). */
static vlm_status discover_model(client *cl, char *out, size_t cap) {
    CURL *h = curl_easy_init();
    vlm_strbuf b = {0};
    struct curl_slist *hd = cl->auth[0] ? curl_slist_append(NULL, cl->auth) : NULL;
    curl_easy_setopt(h, CURLOPT_URL, cl->models_url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(h);
    long http = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_cleanup(h);
    curl_slist_free_all(hd);
    vlm_status s = VLM_OK;
    if (rc != CURLE_OK) s = vlm_err(VLM_ERR_IO, "--serve: GET %s: %s", cl->models_url, curl_easy_strerror(rc));
    else if (http != 200)
        s = vlm_err(VLM_ERR_IO, "--serve: GET %s answered %ld: %.300s", cl->models_url, http, b.data ? b.data : "");
    cJSON *j = s == VLM_OK ? cJSON_ParseWithLength(b.data ? b.data : "", b.len) : NULL;
    const cJSON *id =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "data"), 0), "id");
    if (s == VLM_OK && !cJSON_IsString(id))
        s = vlm_err(VLM_ERR_FORMAT, "--serve: GET %s named no model (give --served-model)", cl->models_url);
    if (s == VLM_OK) snprintf(out, cap, "%s", id->valuestring);
    cJSON_Delete(j);
    vlm_sb_free(&b);
    return s;
}

static const char *mime_of(const unsigned char *p, size_t n) {
    if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff) return "image/jpeg";
    if (n >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8)) return "image/png";
    if (n >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6))) return "image/gif";
    if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) return "image/webp";
    return "image/jpeg";
}

static vlm_status build_body(const vlm_bench_serve_config *c, const char *model, const char *image, vlm_strbuf *b) {
    vlm_sb_printf(b, "{\"model\":");
    vlm_sb_json_string(b, model, strlen(model));
    vlm_sb_printf(b, ",\"messages\":[{\"role\":\"user\",\"content\":[");
    if (image) {
        char *data = NULL;
        size_t n = 0;
        VLM_TRY(vlm_read_file(image, (size_t)256 << 20, &data, &n));
        vlm_sb_printf(b, "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:%s;base64,",
                      mime_of((const unsigned char *)data, n));
        vlm_base64_encode(data, n, b);
        vlm_sb_printf(b, "\"}},");
        free(data);
    }
    vlm_sb_printf(b, "{\"type\":\"text\",\"text\":");
    vlm_sb_json_string(b, c->text, strlen(c->text));
    vlm_sb_printf(b,
                  "}]}],\"max_tokens\":%d,\"temperature\":0,\"stream\":true,"
                  "\"stream_options\":{\"include_usage\":true}",
                  c->max_tokens);
    if (c->ignore_eos) vlm_sb_printf(b, ",\"ignore_eos\":true"); /* vLLM's extension, also vlm's */
    vlm_sb_printf(b, "}");
    return b->failed ? vlm_err(VLM_ERR_NOMEM, "out of memory building a request body") : VLM_OK;
}

static vlm_status client_init(client *cl, const vlm_bench_serve_config *c, char *model, size_t model_cap) {
    memset(cl, 0, sizeof *cl);
    cl->c = c;
    char base[1024];
    snprintf(base, sizeof base, "%s", c->url);
    size_t n = strlen(base);
    while (n && base[n - 1] == '/') base[--n] = 0;
    if (n >= 3 && !strcmp(base + n - 3, "/v1")) base[n -= 3] = 0;
    if (strncmp(base, "http://", 7) != 0 && strncmp(base, "https://", 8) != 0)
        return vlm_err(VLM_ERR_USAGE, "--serve %s: expected an http:// or https:// URL", c->url);
    snprintf(cl->endpoint, sizeof cl->endpoint, "%s/v1/chat/completions", base);
    snprintf(cl->models_url, sizeof cl->models_url, "%s/v1/models", base);
    if (c->api_key) snprintf(cl->auth, sizeof cl->auth, "Authorization: Bearer %s", c->api_key);
    if (c->model) snprintf(model, model_cap, "%s", c->model);
    else VLM_TRY(discover_model(cl, model, model_cap));
    cl->n_bodies = c->n_images > 0 ? c->n_images : 1;
    cl->bodies = vlm_calloc((size_t)cl->n_bodies, sizeof *cl->bodies, "request bodies");
    if (!cl->bodies) return VLM_ERR_NOMEM;
    for (int i = 0; i < cl->n_bodies; i++)
        VLM_TRY(build_body(c, model, c->n_images > 0 ? c->images[i] : NULL, &cl->bodies[i]));
    return VLM_OK;
}

static void client_free(client *cl) {
    for (int i = 0; cl->bodies && i < cl->n_bodies; i++) vlm_sb_free(&cl->bodies[i]);
    vlm_free(cl->bodies);
}

/* ---- the benchmark ------------------------------------------------------------------------------- */

static vlm_status run_level(client *cl, vlm_loadtest_level *l, int n, uint64_t *rng) {
    const vlm_bench_serve_config *c = cl->c;
    xfer *xs = vlm_calloc((size_t)n, sizeof *xs, "requests in flight");
    vlm_loadtest_request *reqs = vlm_calloc((size_t)n, sizeof *reqs, "request records");
    vlm_status s = xs && reqs ? VLM_OK : VLM_ERR_NOMEM;
    for (int run = 0; s == VLM_OK && run < c->runs; run++) {
        double duration = 0;
        char name[48];
        if (l->concurrency > 0) snprintf(name, sizeof name, "concurrency %d", l->concurrency);
        else snprintf(name, sizeof name, "rate %g/s", l->request_rate);
        vlm_progress(0, "bench --serve: %s, run %d/%d (%d requests)", name, run + 1, c->runs, n);
        s = run_requests(cl, n, l->concurrency, l->request_rate, rng, xs, &duration);
        double t0 = xs[0].start;
        for (int i = 0; s == VLM_OK && i < n; i++) reqs[i] = record(&xs[i], t0);
        if (s == VLM_OK) s = vlm_loadtest_add_run(l, reqs, n, duration);
        for (int i = 0; i < n; i++) xfer_free(&xs[i]);
    }
    vlm_progress(1, " ");
    vlm_free(xs);
    vlm_free(reqs);
    return s;
}

vlm_status vlm_bench_serve(const vlm_bench_serve_config *c, vlm_loadtest_results *out) {
    memset(out, 0, sizeof *out);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    client cl;
    char model[512];
    vlm_status s = client_init(&cl, c, model, sizeof model);
    if (s == VLM_OK)
        s = vlm_loadtest_init(out, c->url, model, c->text, c->images, c->n_images, c->max_tokens, c->ignore_eos,
                              c->requests, c->runs, c->warmup);
    uint64_t rng = c->seed;
    if (s == VLM_OK && c->warmup) { /* one unmeasured request; its failure says the server cannot serve */
        xfer x = {0};               /* run_requests may fail before it fills x */
        double d;
        s = run_requests(&cl, 1, 1, 0, &rng, &x, &d);
        if (s == VLM_OK && x.error)
            s = vlm_err(VLM_ERR_IO, "--serve: the warm-up request to %s failed (%s)%s%.300s", cl.endpoint, x.error,
                        x.raw.data ? ": " : "", x.raw.data ? x.raw.data : "");
        xfer_free(&x);
    }
    for (int i = 0; s == VLM_OK && i < c->n_concurrency + c->n_rates; i++) {
        int conc = i < c->n_concurrency ? c->concurrency[i] : 0;
        double rate = i < c->n_concurrency ? 0 : c->rates[i - c->n_concurrency];
        int n = c->requests > 0 ? c->requests : conc > 0 ? conc : 16;
        vlm_loadtest_level *l = vlm_loadtest_add_level(out, conc, rate);
        s = l ? run_level(&cl, l, n, &rng) : VLM_ERR_NOMEM;
    }
    if (s == VLM_OK) s = vlm_loadtest_finish(out);
    client_free(&cl);
    curl_global_cleanup();
    if (s != VLM_OK) vlm_loadtest_free(out);
    return s;
}
