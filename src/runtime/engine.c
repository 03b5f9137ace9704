/* The engine's public API: options, create / free, submit and cancel from any thread, the step
 * (admission, one unit of work per running request, completions) and the run loop, stop, stats.
 * See engine.h for who may touch what. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "runtime/engine.h"

void vlm_engine_options_init(vlm_engine_options *o) {
    memset(o, 0, sizeof *o);
    o->max_running = 16;
    o->max_step_tokens = 512;
    o->max_waiting = 256;
    o->kv_cache_mb = 0;
    o->kv_block_tokens = 16;
    o->prefix_cache = 1;
    o->image_cache_mb = 256;
}

static vlm_status check_options(const vlm_engine_options *o) {
    if (o->max_running < 1) return vlm_err(VLM_ERR_INVALID, "engine: max_running %d must be >= 1", o->max_running);
    if (o->max_step_tokens < 1)
        return vlm_err(VLM_ERR_INVALID, "engine: max_step_tokens %d must be >= 1", o->max_step_tokens);
    if (o->max_waiting < 0) return vlm_err(VLM_ERR_INVALID, "engine: max_waiting %d must be >= 0", o->max_waiting);
    if (o->kv_cache_mb < 0) return vlm_err(VLM_ERR_INVALID, "engine: kv_cache_mb %lld must be >= 0", o->kv_cache_mb);
    if (o->kv_block_tokens < 1)
        return vlm_err(VLM_ERR_INVALID, "engine: kv_block_tokens %d must be >= 1", o->kv_block_tokens);
    if (o->image_cache_mb < 0)
        return vlm_err(VLM_ERR_INVALID, "engine: image_cache_mb %lld must be >= 0", o->image_cache_mb);
    return VLM_OK;
}

vlm_status vlm_engine_create(vlm_model *m, const vlm_engine_options *o, vlm_engine **out) {
    *out = NULL;
    vlm_engine_options opt;
    if (o) opt = *o;
    else vlm_engine_options_init(&opt);
    VLM_TRY(check_options(&opt));
    vlm_engine *e = vlm_calloc(1, sizeof *e, "the engine");
    if (!e) return VLM_ERR_NOMEM;
    e->running = vlm_calloc((size_t)opt.max_running, sizeof *e->running, "the engine's running list");
    if (!e->running) {
        vlm_free(e);
        return VLM_ERR_NOMEM;
    }
    pthread_mutex_lock(&m->lock);
    int taken = m->engine != NULL;
    if (!taken) m->engine = e;
    pthread_mutex_unlock(&m->lock);
    if (taken) {
        vlm_free(e->running);
        vlm_free(e);
        return vlm_err(VLM_ERR_BUSY, "this model already has an engine (one engine per model at a time)");
    }
    e->m = m;
    e->opt = opt;
    pthread_mutex_init(&e->lock, NULL);
    sem_init(&e->wake, 0, 0);
    *out = e;
    return VLM_OK;
}

/* Hands a finished job to its caller: result (or error), counters, on_done, free. Engine thread,
 * lock not held. */
static void complete(vlm_engine *e, vlm_job *j, vlm_status status, const char *error) {
    vlm_result res;
    int have = 0;
    char msg[1024];
    if (status == VLM_OK) {
        status = vlm_job_result(e, j, &res);
        have = status == VLM_OK;
        if (!have) error = vlm_last_error();
    }
    if (status != VLM_OK) snprintf(msg, sizeof msg, "%s", error && *error ? error : vlm_status_name(status));
    pthread_mutex_lock(&e->lock);
    vlm_engine_stats *st = &e->stats;
    st->prompt_tokens += (uint64_t)(j->started ? j->n_ids : 0);
    st->generation_tokens += (uint64_t)j->seq.n_out;
    if (status != VLM_OK) st->requests_failed++;
    else if (j->stop_reason == VLM_STOP_CANCELLED) st->requests_cancelled++;
    else st->requests_finished++;
    pthread_mutex_unlock(&e->lock);
    if (j->on_done) j->on_done(j->done_user, j->id, status, status == VLM_OK ? NULL : msg, have ? &res : NULL);
    if (have) vlm_result_free(&res);
    vlm_job_release(e, j);
    vlm_job_free(e->m, j);
}

void vlm_engine_free(vlm_engine *e) {
    if (!e) return;
    for (int i = 0; i < e->n_running; i++) {
        vlm_job_finish(e->running[i], VLM_STOP_CANCELLED);
        complete(e, e->running[i], VLM_OK, NULL);
    }
    e->n_running = 0;
    while (e->wait_head) {
        vlm_job *j = e->wait_head;
        e->wait_head = j->next;
        vlm_job_finish(j, VLM_STOP_CANCELLED);
        complete(e, j, VLM_OK, NULL);
    }
    pthread_mutex_lock(&e->m->lock);
    e->m->engine = NULL;
    pthread_mutex_unlock(&e->m->lock);
    sem_destroy(&e->wake);
    pthread_mutex_destroy(&e->lock);
    vlm_free(e->running);
    vlm_free(e);
}

vlm_status vlm_engine_submit(vlm_engine *e, const vlm_request *r, vlm_done_fn on_done, void *done_user,
                             vlm_request_id *id) {
    if (id) *id = 0;
    if (!e || !r) return vlm_err(VLM_ERR_INVALID, "vlm_engine_submit: no engine or no request");
    vlm_job *j;
    VLM_TRY(vlm_job_prepare(e->m, r, &j));
    j->on_done = on_done;
    j->done_user = done_user;
    pthread_mutex_lock(&e->lock);
    if (e->n_waiting >= e->opt.max_waiting) {
        int n = e->n_waiting;
        pthread_mutex_unlock(&e->lock);
        vlm_job_free(e->m, j);
        return vlm_err(VLM_ERR_BUSY, "the engine's queue is full (%d requests waiting); retry later", n);
    }
    j->id = ++e->next_id;
    j->state = VLM_JOB_WAITING;
    if (e->wait_tail) e->wait_tail->next = j;
    else e->wait_head = j;
    e->wait_tail = j;
    e->n_waiting++;
    if (id) *id = j->id;
    pthread_mutex_unlock(&e->lock);
    sem_post(&e->wake);
    return VLM_OK;
}

int vlm_engine_cancel(vlm_engine *e, vlm_request_id id) {
    int found = 0;
    pthread_mutex_lock(&e->lock);
    for (vlm_job *j = e->wait_head; j && !found; j = j->next)
        if (j->id == id) found = 1, atomic_store(&j->cancelled, 1);
    for (int i = 0; i < e->n_running && !found; i++)
        if (e->running[i]->id == id) found = 1, atomic_store(&e->running[i]->cancelled, 1);
    pthread_mutex_unlock(&e->lock);
    if (found) sem_post(&e->wake);
    return found ? 0 : -1;
}

/* Under the lock: takes cancelled jobs out of the queue (into *done) and admits waiting jobs while
 * there is room. */
static void admit(vlm_engine *e, vlm_job **done, int *n_done, int cap_done) {
    vlm_job **link = &e->wait_head, *prev = NULL;
    while (*link) {
        vlm_job *j = *link;
        if (atomic_load(&j->cancelled) && *n_done < cap_done) {
            *link = j->next;
            if (e->wait_tail == j) e->wait_tail = prev;
            e->n_waiting--;
            j->next = NULL;
            done[(*n_done)++] = j;
            continue;
        }
        prev = j;
        link = &j->next;
    }
    while (e->wait_head && e->n_running < e->opt.max_running) {
        vlm_job *j = e->wait_head;
        e->wait_head = j->next;
        if (!e->wait_head) e->wait_tail = NULL;
        e->n_waiting--;
        j->next = NULL;
        j->state = VLM_JOB_RUNNING;
        e->running[e->n_running++] = j;
    }
}

/* One unit of work for a running job; errors end that job only. */
static vlm_status work(vlm_engine *e, vlm_job *j) {
    if (atomic_load(&j->cancelled)) {
        vlm_job_finish(j, VLM_STOP_CANCELLED);
        return VLM_OK;
    }
    vlm_status s = j->started ? VLM_OK : vlm_job_start(e, j);
    if (s == VLM_OK) s = vlm_job_advance(e, j);
    if (s == VLM_ERR_RUNTIME) vlm_model_explain_nonfinite(e->m); /* names a NaN weight when there is one */
    return s;
}

vlm_status vlm_engine_step(vlm_engine *e, int *active) {
    enum { CAP = 64 };
    vlm_job *cancelled[CAP];
    int n_cancelled = 0;
    pthread_mutex_lock(&e->lock);
    admit(e, cancelled, &n_cancelled, CAP);
    pthread_mutex_unlock(&e->lock);
    for (int i = 0; i < n_cancelled; i++) {
        vlm_job_finish(cancelled[i], VLM_STOP_CANCELLED);
        complete(e, cancelled[i], VLM_OK, NULL);
    }
    for (int i = 0; i < e->n_running; i++) {
        vlm_job *j = e->running[i];
        vlm_status s = work(e, j);
        if (s != VLM_OK) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", vlm_last_error());
            j->finished = 1;
            pthread_mutex_lock(&e->lock);
            e->running[i] = e->running[--e->n_running];
            pthread_mutex_unlock(&e->lock);
            complete(e, j, s, msg);
            i--;
        } else if (j->finished) {
            pthread_mutex_lock(&e->lock);
            e->running[i] = e->running[--e->n_running];
            pthread_mutex_unlock(&e->lock);
            complete(e, j, VLM_OK, NULL);
            i--;
        }
    }
    if (active) {
        pthread_mutex_lock(&e->lock);
        *active = e->n_running + e->n_waiting;
        pthread_mutex_unlock(&e->lock);
    }
    return VLM_OK;
}

vlm_status vlm_engine_run(vlm_engine *e) {
    while (!atomic_load(&e->stop_requested)) {
        int active = 0;
        VLM_TRY(vlm_engine_step(e, &active));
        if (active || atomic_load(&e->stop_requested)) continue;
        while (sem_wait(&e->wake) != 0 && errno == EINTR) {}
    }
    atomic_store(&e->stop_requested, 0);
    return VLM_OK;
}

void vlm_engine_stop(vlm_engine *e) {
    atomic_store(&e->stop_requested, 1);
    sem_post(&e->wake); /* async-signal-safe, unlike a condition variable */
}

void vlm_engine_get_stats(vlm_engine *e, vlm_engine_stats *s) {
    pthread_mutex_lock(&e->lock);
    *s = e->stats;
    s->running = e->n_running;
    s->waiting = e->n_waiting;
    s->kv_block_tokens = e->opt.kv_block_tokens;
    pthread_mutex_unlock(&e->lock);
}
