/* POST /v1/chat/completions: parse, submit to the engine, answer at the end or stream as it comes.
 *
 * A job joins the two threads a request lives on: the connection's thread (parses, submits, waits
 * or streams, answers) and the engine's thread (on_text appends the new text, on_done keeps a copy
 * of the result). Each side holds a reference; the last one to let go frees the job. The engine's
 * callbacks never block: they append under the job's lock and signal its eventfd, which the
 * connection's thread polls together with the client's socket, so a client that goes away is
 * noticed at once and its sequence cancelled (its KV blocks return to the pool). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/memory.h"
#include "base/timer.h"
#include "serve/serve_internal.h"
#include "serve/sse.h"

enum { KEEPALIVE_MS = 10000 }; /* an SSE comment after this much silence keeps proxies and timers happy */

struct serve_job {
    vlm_server *srv;
    pthread_mutex_t mu;
    int refs; /* the connection's and (until on_done) the engine's */
    int efd;  /* eventfd: new text, or the end */
    int fd;   /* the client's socket */
    double t_arrival, t_submit;
    vlm_request_id id;
    int cancelling;
    vlm_outcome cancel_reason;
    /* written on the engine's thread, under mu */
    vlm_strbuf pending; /* streamed text not sent yet */
    int done;
    vlm_status status;
    char error[1024];
    vlm_result result; /* a copy, when status is VLM_OK */
    /* the connection's side */
    vlm_sse_chat sse;
    vlm_strbuf out; /* SSE bytes not sent yet, from out_pos */
    size_t out_pos;
    int out_over; /* the stream's last bytes are in out */
    serve_job *prev, *next;
    int listed;
};

static void signal_job(serve_job *j) {
    uint64_t one = 1;
    ssize_t r = write(j->efd, &one, sizeof one);
    (void)r; /* the counter only saturates; a wake-up is never lost */
}

static void drain_events(int efd) {
    uint64_t v;
    ssize_t r = read(efd, &v, sizeof v);
    (void)r;
}

static serve_job *job_new(vlm_server *s, const vlm_http_request *rq) {
    serve_job *j = vlm_calloc(1, sizeof *j, "a request's state");
    if (!j) return NULL;
    j->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (j->efd < 0) {
        vlm_err(VLM_ERR_RUNTIME, "eventfd: %s", strerror(errno));
        vlm_free(j);
        return NULL;
    }
    pthread_mutex_init(&j->mu, NULL);
    j->srv = s;
    j->refs = 2;
    j->fd = rq->fd;
    j->t_arrival = rq->t_arrival;
    j->cancel_reason = VLM_OUTCOME_ABORTED; /* unless the client goes away first */
    return j;
}

static void job_unref(serve_job *j) {
    pthread_mutex_lock(&j->mu);
    int left = --j->refs;
    pthread_mutex_unlock(&j->mu);
    if (left) return;
    close(j->efd);
    pthread_mutex_destroy(&j->mu);
    vlm_sb_free(&j->pending);
    vlm_sb_free(&j->out);
    vlm_oai_result_release(&j->result);
    vlm_free(j);
}

static void job_list(vlm_server *s, serve_job *j) {
    pthread_mutex_lock(&s->mu);
    j->next = s->jobs;
    if (s->jobs) s->jobs->prev = j;
    s->jobs = j;
    s->n_jobs++;
    j->listed = 1;
    pthread_mutex_unlock(&s->mu);
}

/* The connection is done with the job (answered, or the client went away). */
static void job_finish(vlm_server *s, serve_job *j) {
    pthread_mutex_lock(&s->mu);
    if (j->listed) {
        if (j->prev) j->prev->next = j->next;
        else s->jobs = j->next;
        if (j->next) j->next->prev = j->prev;
        s->n_jobs--;
        j->listed = 0;
    }
    pthread_mutex_unlock(&s->mu);
    job_unref(j);
}

/* Asks the engine to end the job's sequence (once); on_done follows at its next step. */
static void job_cancel(serve_job *j, vlm_outcome why) {
    pthread_mutex_lock(&j->mu);
    int go = !j->done && !j->cancelling;
    if (go) {
        j->cancelling = 1;
        j->cancel_reason = why;
    }
    pthread_mutex_unlock(&j->mu);
    if (go) vlm_engine_cancel(j->srv->engine, j->id);
}

int vlm_serve_cancel_all(vlm_server *s) {
    pthread_mutex_lock(&s->mu);
    int n = 0;
    for (serve_job *j = s->jobs; j; j = j->next, n++) {
        pthread_mutex_lock(&j->mu);
        int go = !j->done && !j->cancelling;
        if (go) j->cancelling = 1; /* cancel_reason stays "aborted" */
        pthread_mutex_unlock(&j->mu);
        if (go) vlm_engine_cancel(s->engine, j->id);
    }
    pthread_mutex_unlock(&s->mu);
    return n;
}

/* ---- the engine's callbacks (on its thread; they must not block) ---------------------------------- */

static int on_text(void *user, const char *piece, size_t len) {
    serve_job *j = user;
    pthread_mutex_lock(&j->mu);
    vlm_sb_append(&j->pending, piece, len);
    pthread_mutex_unlock(&j->mu);
    signal_job(j);
    return 0;
}

static vlm_outcome outcome_of(const serve_job *j, const vlm_result *r) {
    if (r->stop == VLM_STOP_CANCELLED) return j->cancel_reason;
    return r->stop == VLM_STOP_MAX_TOKENS ? VLM_OUTCOME_LENGTH : VLM_OUTCOME_STOP;
}

static void on_done(void *user, vlm_request_id id, vlm_status status, const char *error, const vlm_result *r) {
    (void)id;
    serve_job *j = user;
    double now = vlm_now();
    pthread_mutex_lock(&j->mu);
    j->status = status;
    if (status == VLM_OK && (j->status = vlm_oai_result_copy(r, &j->result)) != VLM_OK) error = vlm_last_error();
    if (j->status != VLM_OK) snprintf(j->error, sizeof j->error, "%s", error && error[0] ? error : "engine failure");
    vlm_outcome o = j->status == VLM_OK ? outcome_of(j, r) : VLM_OUTCOME_ERROR;
    j->done = 1;
    pthread_mutex_unlock(&j->mu);
    if (status == VLM_OK) {
        double ttft = r->n_generated > 0 && r->token_times ? (j->t_submit - j->t_arrival) + r->token_times[0] : 0;
        vlm_metrics_observe(&j->srv->metrics, o, r, ttft, now - j->t_arrival);
    } else {
        vlm_metrics_count(&j->srv->metrics, o);
        VLM_LOG_W("serve: a request failed in the engine: %s", j->error);
    }
    signal_job(j);
    job_unref(j);
}

/* ---- answers ---------------------------------------------------------------------------------------- */

static void meta_init(vlm_server *s, vlm_oai_meta *m) {
    uint64_t a = vlm_serve_random(s), b = vlm_serve_random(s);
    snprintf(m->id, sizeof m->id, "chatcmpl-%016llx%08llx", (unsigned long long)a, (unsigned long long)(b >> 32));
    m->created = (long long)time(NULL);
    m->model = s->model_names[0];
}

/* The error a finished job answers with: the engine's failure, or its cancellation at shutdown. */
static void job_error(const serve_job *j, vlm_oai_error *e) {
    if (j->status != VLM_OK) vlm_oai_error_from_status(e, j->status, j->error);
    else
        vlm_oai_error_set(e, 503, "shutting_down", NULL,
                          "The request was cancelled: the server is shutting down (retry on another replica).");
}

static int job_failed(const serve_job *j) { return j->status != VLM_OK || j->result.stop == VLM_STOP_CANCELLED; }

/* Waits for the end of a non-streamed request; 0 when the client went away first. */
static int wait_done(serve_job *j) {
    for (;;) {
        pthread_mutex_lock(&j->mu);
        int done = j->done;
        pthread_mutex_unlock(&j->mu);
        if (done) return 1;
        vlm_http_wake w = vlm_http_wait(j->fd, j->efd, -1);
        if (w == VLM_HTTP_GONE) return 0;
        if (w == VLM_HTTP_EVENT) drain_events(j->efd);
    }
}

/* Moves what the engine produced into SSE bytes: the new text, and the end once it came. */
static void stream_fill(serve_job *j, int idle) {
    pthread_mutex_lock(&j->mu);
    int done = j->done;
    if (j->pending.len) vlm_sse_chat_text(&j->sse, j->pending.data, j->pending.len, &j->out);
    j->pending.len = 0;
    pthread_mutex_unlock(&j->mu);
    if (done) { /* the engine no longer touches result or status */
        if (!job_failed(j)) vlm_sse_chat_end(&j->sse, &j->result, &j->out);
        else {
            vlm_oai_error e;
            job_error(j, &e);
            vlm_sse_chat_error(&j->sse, &e, &j->out);
        }
        j->out_over = 1;
    } else if (idle && j->out.len == j->out_pos) {
        vlm_sse_keepalive(&j->out);
    }
}

static long stream_read(void *user, char *buf, size_t cap) {
    serve_job *j = user;
    for (;;) {
        if (j->out.failed) return -1; /* out of memory: drop the connection rather than send garbage */
        if (j->out_pos < j->out.len) {
            size_t n = j->out.len - j->out_pos < cap ? j->out.len - j->out_pos : cap;
            memcpy(buf, j->out.data + j->out_pos, n);
            j->out_pos += n;
            if (j->out_pos == j->out.len) j->out.len = j->out_pos = 0;
            return (long)n;
        }
        if (j->out_over) return 0;
        vlm_http_wake w = vlm_http_wait(j->fd, j->efd, KEEPALIVE_MS);
        if (w == VLM_HTTP_GONE) {
            job_cancel(j, VLM_OUTCOME_DISCONNECTED);
            return -1;
        }
        if (w == VLM_HTTP_EVENT) drain_events(j->efd);
        stream_fill(j, w == VLM_HTTP_TIMEOUT);
    }
}

/* The layer is done with the stream: ended, or the client went away, or the server stopped. */
static void stream_close(void *user) {
    serve_job *j = user;
    if (!j->out_over) job_cancel(j, VLM_OUTCOME_DISCONNECTED);
    job_finish(j->srv, j);
}

void vlm_serve_error(vlm_http_response *rs, const vlm_oai_error *e) {
    rs->status = e->status;
    vlm_oai_error_body(&rs->body, e);
    if (e->status == 429) rs->retry_after_s = 1;
    if (e->status == 503) rs->retry_after_s = 5;
}

static vlm_outcome rejection_outcome(int status) {
    switch (status) {
    case 429: return VLM_OUTCOME_BUSY;
    case 503: return VLM_OUTCOME_UNAVAILABLE;
    case 500: return VLM_OUTCOME_ERROR;
    default: return VLM_OUTCOME_INVALID;
    }
}

static void reject(vlm_server *s, vlm_http_response *rs, const vlm_oai_error *e) {
    vlm_metrics_count(&s->metrics, rejection_outcome(e->status));
    vlm_serve_error(rs, e);
}

void vlm_serve_chat(vlm_server *s, const vlm_http_request *rq, vlm_http_response *rs) {
    vlm_oai_chat c;
    vlm_oai_error e;
    if (vlm_oai_parse_chat(rq->body, rq->body_len, &s->oai, &c, &e)) {
        reject(s, rs, &e);
        return;
    }
    serve_job *j = job_new(s, rq);
    if (!j) {
        vlm_oai_chat_free(&c);
        vlm_oai_error_set(&e, 503, "insufficient_memory", NULL, "%s", vlm_last_error());
        reject(s, rs, &e);
        return;
    }
    if (c.stream) {
        c.req.on_text = on_text;
        c.req.user = j;
    }
    if (!c.seed_given) c.req.sampling.seed = vlm_serve_random(s); /* OpenAI: unseeded requests differ */
    int stream = c.stream;
    meta_init(s, &j->sse.meta);
    j->sse.include_usage = c.include_usage;
    j->sse.with_ids = c.return_token_ids;
    j->t_submit = vlm_now();
    vlm_status st = vlm_engine_submit(s->engine, &c.req, on_done, j, &j->id);
    vlm_oai_chat_free(&c);
    if (st != VLM_OK) { /* on_done will not come: drop the engine's reference too */
        vlm_oai_error_from_status(&e, st, vlm_last_error());
        reject(s, rs, &e);
        job_unref(j);
        job_unref(j);
        return;
    }
    job_list(s, j);
    if (stream) {
        vlm_sse_chat_begin(&j->sse, &j->out);
        rs->status = 200;
        rs->content_type = "text/event-stream";
        rs->stream = (vlm_http_stream){.read = stream_read, .close = stream_close, .user = j};
        return;
    }
    if (!wait_done(j)) {
        job_cancel(j, VLM_OUTCOME_DISCONNECTED);
        rs->status = 499; /* nobody reads it: the client is gone */
    } else if (job_failed(j)) {
        job_error(j, &e);
        vlm_serve_error(rs, &e);
    } else {
        rs->status = 200;
        vlm_oai_completion(&rs->body, &j->sse.meta, &j->result, j->sse.with_ids);
    }
    job_finish(s, j);
}
