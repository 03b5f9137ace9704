/* vlm serve: lifecycle (bind, load, warm up, serve, drain) and the routes. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/timer.h"
#include "serve/serve_internal.h"

void vlm_serve_options_init(vlm_serve_options *o) {
    memset(o, 0, sizeof *o);
    vlm_load_options_init(&o->load);
    vlm_engine_options_init(&o->engine);
    o->host = "127.0.0.1";
    o->port = 8080;
    o->max_body_bytes = (size_t)64 << 20;
    o->max_connections = 512;
    o->idle_timeout_s = 120;
    o->shutdown_grace_s = 30;
    o->default_max_tokens = 1024;
    o->warmup = 1;
}

uint64_t vlm_serve_random(vlm_server *s) {
    pthread_mutex_lock(&s->mu);
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull); /* splitmix64 */
    pthread_mutex_unlock(&s->mu);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t random_seed(void) {
    uint64_t v = 0;
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (read(fd, &v, sizeof v) != (ssize_t)sizeof v) v = 0;
        close(fd);
    }
    return v ^ (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
}

/* ---- routes ------------------------------------------------------------------------------------------ */

static void route_health(vlm_server *s, const vlm_http_request *rq, vlm_http_response *rs) {
    (void)rq;
    serve_state st = (serve_state)atomic_load(&s->state);
    rs->status = st == SERVE_READY ? 200 : 503;
    vlm_sb_printf(&rs->body, "{\"status\":\"%s\"}",
                  st == SERVE_READY         ? "ok"
                      : st == SERVE_LOADING ? "loading"
                                            : "draining");
    if (st != SERVE_READY) rs->retry_after_s = 5;
}

static void route_metrics(vlm_server *s, const vlm_http_request *rq, vlm_http_response *rs) {
    (void)rq;
    vlm_engine_stats st = {0};
    if (s->engine) vlm_engine_get_stats(s->engine, &st);
    vlm_metrics_render(&s->metrics, &st, &rs->body);
    rs->status = 200;
    rs->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static void route_models(vlm_server *s, const vlm_http_request *rq, vlm_http_response *rs) {
    (void)rq;
    rs->status = 200;
    vlm_sb_printf(&rs->body, "{\"object\":\"list\",\"data\":[{\"id\":");
    vlm_sb_json_string(&rs->body, s->model_names[0], strlen(s->model_names[0]));
    vlm_sb_printf(&rs->body,
                  ",\"object\":\"model\",\"created\":%lld,\"owned_by\":\"vlm\",\"root\":", (long long)time(NULL));
    vlm_sb_json_string(&rs->body, s->model_names[1], strlen(s->model_names[1]));
    vlm_sb_printf(&rs->body, "}]}");
}

typedef void (*route_fn)(vlm_server *s, const vlm_http_request *rq, vlm_http_response *rs);

static const struct {
    const char *path, *method;
    route_fn fn;
    int needs_model; /* 503 while loading or draining */
} k_routes[] = {
    {"/health", "GET", route_health, 0},
    {"/metrics", "GET", route_metrics, 0},
    {"/v1/models", "GET", route_models, 1},
    {"/v1/chat/completions", "POST", vlm_serve_chat, 1},
};

static void refuse(vlm_server *s, vlm_http_response *rs, vlm_outcome o, int status, const char *code, const char *msg) {
    vlm_oai_error e;
    vlm_oai_error_set(&e, status, code, NULL, "%s", msg);
    vlm_metrics_count(&s->metrics, o);
    vlm_serve_error(rs, &e);
}

static void handle(void *user, const vlm_http_request *rq, vlm_http_response *rs) {
    vlm_server *s = user;
    size_t k = 0;
    while (k < sizeof k_routes / sizeof *k_routes && strcmp(k_routes[k].path, rq->path) != 0) k++;
    char msg[512];
    if (k == sizeof k_routes / sizeof *k_routes) {
        snprintf(msg, sizeof msg,
                 "No route %s %s (the API: POST /v1/chat/completions, GET /v1/models, /health, /metrics).", rq->method,
                 rq->path);
        return refuse(s, rs, VLM_OUTCOME_INVALID, 404, "not_found", msg);
    }
    int head = !strcmp(rq->method, "HEAD") && !strcmp(k_routes[k].method, "GET");
    if (strcmp(rq->method, k_routes[k].method) != 0 && !head) {
        snprintf(msg, sizeof msg, "%s takes %s, not %s.", rq->path, k_routes[k].method, rq->method);
        return refuse(s, rs, VLM_OUTCOME_INVALID, 405, "method_not_allowed", msg);
    }
    serve_state st = (serve_state)atomic_load(&s->state);
    if (k_routes[k].needs_model && st == SERVE_LOADING)
        return refuse(s, rs, VLM_OUTCOME_UNAVAILABLE, 503, "loading",
                      "The model is still loading; retry shortly (GET /health turns 200 when it is ready).");
    if (k_routes[k].needs_model && st == SERVE_DRAINING)
        return refuse(s, rs, VLM_OUTCOME_UNAVAILABLE, 503, "shutting_down",
                      "The server is shutting down; retry on another replica.");
    k_routes[k].fn(s, rq, rs);
}

static void on_reject(void *user, int status) {
    vlm_server *s = user;
    vlm_metrics_count(&s->metrics,
                      status == 401       ? VLM_OUTCOME_UNAUTHORIZED
                          : status == 413 ? VLM_OUTCOME_TOO_LARGE
                                          : VLM_OUTCOME_INVALID);
}

/* ---- start: load, engine, warm-up ------------------------------------------------------------------ */

/* A 56x56 mid-grey PNG (made with zlib by hand): the smallest useful image runs every weight of the
 * vision tower, and the warm-up request every weight of the language model. */
static const unsigned char k_warmup_png[] = {
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
    0x00, 0x38, 0x00, 0x00, 0x00, 0x38, 0x08, 0x02, 0x00, 0x00, 0x00, 0x27, 0xe4, 0xac, 0x49, 0x00, 0x00, 0x00,
    0x3f, 0x49, 0x44, 0x41, 0x54, 0x78, 0xda, 0xed, 0xce, 0x31, 0x0d, 0x00, 0x00, 0x0c, 0x03, 0xa0, 0x4a, 0xaf,
    0xf4, 0x1e, 0x53, 0xb1, 0x04, 0x14, 0x90, 0x3e, 0x11, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51,
    0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51,
    0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0x51, 0xd1, 0x33, 0x8c, 0xde, 0x61, 0x0f, 0x0d, 0x4c, 0xb7, 0x7f,
    0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82};

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    vlm_status status;
    char error[512];
} warmup_wait;

static void warmup_done(void *user, vlm_request_id id, vlm_status status, const char *error, const vlm_result *r) {
    (void)id;
    (void)r;
    warmup_wait *w = user;
    pthread_mutex_lock(&w->mu);
    w->status = status;
    snprintf(w->error, sizeof w->error, "%s", error ? error : "");
    w->done = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* One small request (an image when the model has a vision encoder, two tokens) through the engine:
 * it pages in every weight the model uses and creates the thread pools and scratch buffers, so the
 * first client request is as fast as the rest. */
static vlm_status warmup(vlm_server *s) {
    vlm_image_input img = {.bytes = k_warmup_png, .n_bytes = sizeof k_warmup_png};
    vlm_request r;
    vlm_request_init(&r);
    r.image_inputs = &img;
    r.n_image_inputs = 1;
    r.text = "Describe this image.";
    r.sampling.max_tokens = 2;
    r.sampling.greedy = 1;
    double t0 = vlm_now();
    for (int with_image = 1; with_image >= 0; with_image--) {
        warmup_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
        vlm_request_id id;
        vlm_status st = vlm_engine_submit(s->engine, &r, warmup_done, &w, &id);
        if (st == VLM_OK) {
            pthread_mutex_lock(&w.mu);
            while (!w.done) pthread_cond_wait(&w.cv, &w.mu);
            pthread_mutex_unlock(&w.mu);
            st = w.status;
            if (st != VLM_OK) vlm_err(st, "%s", w.error);
        }
        if (st == VLM_OK) break;
        /* a language-only model (a split language artifact) cannot take the image: warm up on text */
        if (!with_image || st != VLM_ERR_UNSUPPORTED) return vlm_err_ctx(st, "warm-up request");
        r.image_inputs = NULL;
        r.n_image_inputs = 0;
    }
    VLM_LOG_I("serve: warm-up request done in %.2f s", vlm_now() - t0);
    return VLM_OK;
}

typedef struct {
    vlm_server *s;
    pthread_t engine_thread;
    int engine_running;
    atomic_int finished; /* 1: ready, -1: failed */
    vlm_status status;
    char error[1024];
} loader;

static void *engine_main(void *arg) {
    vlm_server *s = arg;
    vlm_status st = vlm_engine_run(s->engine);
    if (st != VLM_OK) VLM_LOG_E("serve: the engine stopped: %s", vlm_last_error());
    return NULL;
}

static void load_progress(void *user, const char *stage, double fraction) {
    (void)user;
    if (fraction >= 0) vlm_progress(fraction >= 1, "serve: %s %3.0f%%", stage, fraction * 100);
    else vlm_progress(0, "serve: %s", stage);
}

static void *loader_main(void *arg) {
    loader *l = arg;
    vlm_server *s = l->s;
    vlm_load_options lo = s->o->load;
    lo.progress = load_progress;
    vlm_status st = vlm_load(&lo, &s->model);
    if (st == VLM_OK) st = vlm_engine_create(s->model, &s->o->engine, &s->engine);
    if (st == VLM_OK) {
        if (pthread_create(&l->engine_thread, NULL, engine_main, s) != 0)
            st = vlm_err(VLM_ERR_RUNTIME, "cannot start the engine's thread");
        else l->engine_running = 1;
    }
    if (st == VLM_OK && s->o->warmup) st = warmup(s);
    l->status = st;
    if (st != VLM_OK) snprintf(l->error, sizeof l->error, "%s", vlm_last_error());
    atomic_store(&l->finished, st == VLM_OK ? 1 : -1);
    return NULL;
}

/* ---- stop: drain, cancel, free --------------------------------------------------------------------- */

static int jobs_in_flight(vlm_server *s) {
    pthread_mutex_lock(&s->mu);
    int n = s->n_jobs;
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* Waits for a signal for up to ms milliseconds; 1 when one came. */
static int signal_within(const sigset_t *set, int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    return sigtimedwait(set, NULL, &ts) > 0;
}

static void drain(vlm_server *s, const sigset_t *set) {
    atomic_store(&s->state, SERVE_DRAINING);
    vlm_http_quiesce(s->http);
    int n = jobs_in_flight(s);
    VLM_LOG_I("serve: draining: %d request(s) in flight, %.1f s of grace", n, s->o->shutdown_grace_s);
    double end = vlm_now() + s->o->shutdown_grace_s;
    while (jobs_in_flight(s) > 0 && vlm_now() < end)
        if (signal_within(set, 20)) {
            VLM_LOG_I("serve: second signal: cancelling now");
            break;
        }
    /* cancel what is left; a request submitted meanwhile is caught by the next round */
    double give_up = vlm_now() + 30;
    while (jobs_in_flight(s) > 0 && vlm_now() < give_up) {
        int c = vlm_serve_cancel_all(s);
        if (c) VLM_LOG_D("serve: cancelling %d request(s)", c);
        signal_within(set, 50);
    }
}

static void server_free(vlm_server *s, loader *l) {
    vlm_http_stop(s->http); /* connection threads end; their jobs are released */
    if (l->engine_running) {
        vlm_engine_stop(s->engine);
        pthread_join(l->engine_thread, NULL);
    }
    vlm_engine_free(s->engine);
    vlm_model_free(s->model);
    vlm_metrics_destroy(&s->metrics);
    pthread_mutex_destroy(&s->mu);
}

static void listening_line(const vlm_server *s) {
    const char *h = s->o->host;
    int v6 = strchr(h, ':') != NULL;
    fprintf(stderr, "vlm serve: listening on http://%s%s%s:%d (model %s)\n", v6 ? "[" : "", h, v6 ? "]" : "",
            vlm_http_port(s->http), s->model_names[0]);
    fflush(stderr);
}

vlm_status vlm_serve_run(const vlm_serve_options *o) {
    vlm_server srv = {.o = o};
    vlm_server *s = &srv;
    atomic_init(&s->state, SERVE_LOADING);
    pthread_mutex_init(&s->mu, NULL);
    vlm_metrics_init(&s->metrics);
    s->rng = random_seed();
    s->model_names[0] = o->served_model_name ? o->served_model_name : o->load.model_id;
    s->model_names[1] = o->load.model_id;
    s->oai = (vlm_oai_options){.models = s->model_names, .n_models = 2, .default_max_tokens = o->default_max_tokens};
    if (o->media_dir) {
        if (!realpath(o->media_dir, s->media_dir))
            return vlm_err(VLM_ERR_NOT_FOUND, "--media-dir %s: %s", o->media_dir, strerror(errno));
        s->oai.media_dir = s->media_dir;
    }

    /* Signals are taken by sigtimedwait on this thread only: block them before any thread starts. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    signal(SIGPIPE, SIG_IGN);

    static const char *const open_paths[] = {"/health", "/metrics", NULL};
    vlm_http_options ho = {.host = o->host,
                           .port = o->port,
                           .max_body_bytes = o->max_body_bytes,
                           .max_connections = o->max_connections,
                           .idle_timeout_s = o->idle_timeout_s,
                           .api_key = o->api_key,
                           .open_paths = open_paths,
                           .handler = handle,
                           .on_reject = on_reject,
                           .user = s};
    vlm_status st = vlm_http_start(&ho, &s->http);
    if (st != VLM_OK) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        vlm_metrics_destroy(&s->metrics);
        pthread_mutex_destroy(&s->mu);
        return st;
    }
    VLM_LOG_I("serve: loading %s (http://%s:%d answers 503 until it is ready)", o->load.model_id, o->host,
              vlm_http_port(s->http));

    loader l = {.s = s};
    atomic_init(&l.finished, 0);
    pthread_t lt;
    if (pthread_create(&lt, NULL, loader_main, &l) != 0) {
        vlm_http_stop(s->http);
        return vlm_err(VLM_ERR_RUNTIME, "cannot start the loading thread");
    }
    int stop = 0;
    while (!stop && atomic_load(&l.finished) == 0) stop = signal_within(&set, 100);
    if (stop && atomic_load(&l.finished) == 0) {
        /* nothing is in flight while loading: stop at once rather than wait for the load */
        fprintf(stderr, "vlm serve: stopped while loading\n");
        vlm_http_stop(s->http);
        _exit(0);
    }
    pthread_join(lt, NULL);
    if (atomic_load(&l.finished) < 0) {
        server_free(s, &l);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        return vlm_err(l.status, "%s", l.error);
    }
    vlm_progress(1, " ");
    atomic_store(&s->state, SERVE_READY);
    listening_line(s);
    while (!stop) stop = signal_within(&set, 1000);
    drain(s, &set);
    server_free(s, &l);
    /* SIGINT and SIGTERM stay blocked: the process is exiting, and a signal sent again meanwhile (a
     * supervisor's second SIGTERM) must not turn this clean exit into a kill */
    VLM_LOG_I("serve: stopped");
    return VLM_OK;
}
