/* The scheduler: one step of the engine.
 *   1. cancelled requests leave (queued ones straight away; running ones with what they generated);
 *   2. admission, first come first served: a waiting request is admitted when its KV blocks fit the
 *      free ones (its shared prefix counted out) and fewer than max_running run; admitting takes its
 *      blocks and gets its images' embeddings (cache or encoder: at most one encoder call per step,
 *      so a burst of images does not stall the running sequences for long);
 *   3. one forward pass over every running sequence's next rows: each decoding sequence's last
 *      token first, then chunks of the prompts being prefilled, up to max_step_tokens rows;
 *   4. each sequence whose logits came out samples its next token, streams, may finish;
 *   5. finished requests are handed back (on_done) and their blocks freed (full prompt blocks stay
 *      findable for later requests until the pool needs them). */
#include <string.h>

#include "base/memory.h"
#include "base/timer.h"
#include "runtime/engine.h"

void vlm_engine_complete(vlm_engine *e, vlm_job *j, vlm_status status, const char *error) {
    vlm_result res;
    int have = 0;
    char msg[1024];
    if (status == VLM_OK) {
        status = vlm_job_result(e, j, &res);
        have = status == VLM_OK;
        if (!have) error = vlm_last_error();
    }
    if (status != VLM_OK) snprintf(msg, sizeof msg, "%s", error && *error ? error : vlm_status_name(status));
    int B = e->pool.block_tokens;
    vlm_job_release(e, j);
    pthread_mutex_lock(&e->lock);
    vlm_engine_stats *st = &e->stats;
    st->cached_tokens += (uint64_t)j->n_shared * B;
    st->image_cache_hits += (uint64_t)j->image_hits;
    st->image_cache_misses += (uint64_t)j->image_misses;
    st->kv_blocks_used = e->pool.n_blocks - vlm_kvc_free_count(&e->kvc);
    if (status != VLM_OK) st->requests_failed++;
    else if (j->stop_reason == VLM_STOP_CANCELLED) st->requests_cancelled++;
    else st->requests_finished++;
    pthread_mutex_unlock(&e->lock);
    if (j->on_done) j->on_done(j->done_user, j->id, status, status == VLM_OK ? NULL : msg, have ? &res : NULL);
    if (have) vlm_result_free(&res);
    vlm_job_free(e->m, j);
}

/* Takes running job i out of the running list (keeping the order: admission order is prefill order). */
static void remove_running(vlm_engine *e, int i) {
    pthread_mutex_lock(&e->lock);
    memmove(&e->running[i], &e->running[i + 1], (size_t)(e->n_running - i - 1) * sizeof *e->running);
    e->n_running--;
    pthread_mutex_unlock(&e->lock);
}

/* Queued requests cancelled since the last step leave the queue. */
static void drop_cancelled(vlm_engine *e) {
    for (;;) {
        vlm_job *found = NULL;
        pthread_mutex_lock(&e->lock);
        for (vlm_job **link = &e->wait_head, *prev = NULL; *link; prev = *link, link = &(*link)->next)
            if (atomic_load(&(*link)->cancelled)) {
                found = *link;
                *link = found->next;
                if (e->wait_tail == found) e->wait_tail = prev;
                e->n_waiting--;
                found->next = NULL;
                break;
            }
        pthread_mutex_unlock(&e->lock);
        if (!found) return;
        vlm_job_finish(found, VLM_STOP_CANCELLED);
        vlm_engine_complete(e, found, VLM_OK, NULL);
    }
}

/* Admits waiting requests in order while they fit. */
static void admit(vlm_engine *e) {
    int encoded = 0;
    while (e->n_running < e->opt.max_running) {
        pthread_mutex_lock(&e->lock);
        vlm_job *j = e->wait_head; /* only this thread takes jobs out: j stays valid */
        pthread_mutex_unlock(&e->lock);
        if (!j) return;
        int shared, needed = vlm_job_blocks_needed(e, j, &shared);
        if (needed > vlm_kvc_free_count(&e->kvc)) return; /* it waits for blocks to come free */
        if (encoded && j->n_images > 0) return;           /* one encoder call per step */
        pthread_mutex_lock(&e->lock);
        e->wait_head = j->next;
        if (!e->wait_head) e->wait_tail = NULL;
        e->n_waiting--;
        j->next = NULL;
        j->state = VLM_JOB_RUNNING;
        e->running[e->n_running++] = j;
        pthread_mutex_unlock(&e->lock);
        vlm_status s = vlm_job_start(e, j, &encoded);
        if (s != VLM_OK) {
            if (s == VLM_ERR_RUNTIME) vlm_model_explain_nonfinite(e->m); /* names a NaN weight when there is one */
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", vlm_last_error());
            remove_running(e, e->n_running - 1);
            vlm_engine_complete(e, j, s, msg);
        }
    }
}

/* The pass: decode rows first (one per prefilled sequence), then prompt chunks while rows remain. */
static int plan_pass(vlm_engine *e) {
    int n = 0, budget = e->opt.max_step_tokens;
    for (int i = 0; i < e->n_running; i++) {
        vlm_job *j = e->running[i];
        if (!j->seq.prefilled || j->finished) continue;
        e->in_pass[n] = j, e->seqs[n] = &j->seq, e->rows[n] = 1;
        n++;
        budget--;
    }
    for (int i = 0; i < e->n_running && budget > 0; i++) {
        vlm_job *j = e->running[i];
        if (j->seq.prefilled || j->finished) continue;
        int rows = vlm_seq_next_rows(&j->seq, budget);
        e->in_pass[n] = j, e->seqs[n] = &j->seq, e->rows[n] = rows;
        n++;
        budget -= rows;
    }
    return n;
}

/* Runs the pass and takes each sequence's next token. A failed pass fails its requests. The token
 * counters move as the work is done (a server's metrics read them live). */
static void run_pass(vlm_engine *e, int n) {
    uint64_t prompt_rows = 0, tokens = 0;
    double now = vlm_now();
    for (int i = 0; i < n; i++) {
        prompt_rows += e->seqs[i]->prefilled ? 0 : (uint64_t)e->rows[i];
        if (!e->in_pass[i]->t_prefill) e->in_pass[i]->t_prefill = now; /* its first prompt rows run now */
    }
    vlm_status s = vlm_seqs_forward(e->m->text, &e->batch, &e->pool, e->seqs, e->rows, n, e->ts, e->pos);
    char msg[1024] = "";
    if (s == VLM_ERR_RUNTIME) vlm_model_explain_nonfinite(e->m); /* names a NaN weight when there is one */
    if (s != VLM_OK) snprintf(msg, sizeof msg, "%s", vlm_last_error());
    for (int i = 0; i < n; i++) {
        vlm_job *j = e->in_pass[i];
        vlm_status js = s;
        if (js == VLM_OK) {
            vlm_job_publish(e, j);
            if (j->seq.logits_row >= 0) js = vlm_job_next_token(e, j), tokens++;
            if (js == VLM_ERR_RUNTIME) vlm_model_explain_nonfinite(e->m);
            if (js != VLM_OK) snprintf(msg, sizeof msg, "%s", vlm_last_error());
        }
        if (js != VLM_OK) {
            j->finished = 1;
            j->failed = js;
            snprintf(j->error, sizeof j->error, "%s", msg);
        }
    }
    pthread_mutex_lock(&e->lock);
    e->stats.prompt_tokens += s == VLM_OK ? prompt_rows : 0;
    e->stats.generation_tokens += tokens;
    pthread_mutex_unlock(&e->lock);
}

vlm_status vlm_engine_step(vlm_engine *e, int *active) {
    drop_cancelled(e);
    for (int i = 0; i < e->n_running; i++) { /* running requests cancelled since the last step */
        vlm_job *j = e->running[i];
        if (!atomic_load(&j->cancelled) || j->finished) continue;
        vlm_job_finish(j, VLM_STOP_CANCELLED);
    }
    for (int i = 0; i < e->n_running; i++) { /* finished ones free their blocks before admission */
        vlm_job *j = e->running[i];
        if (!j->finished) continue;
        remove_running(e, i--);
        vlm_engine_complete(e, j, j->failed, j->failed ? j->error : NULL);
    }
    admit(e);
    int n = plan_pass(e);
    if (n) run_pass(e, n);
    for (int i = 0; i < e->n_running; i++) {
        vlm_job *j = e->running[i];
        if (!j->finished) continue;
        remove_running(e, i--);
        vlm_engine_complete(e, j, j->failed, j->failed ? j->error : NULL);
    }
    pthread_mutex_lock(&e->lock);
    e->stats.kv_blocks_used = e->pool.n_blocks - vlm_kvc_free_count(&e->kvc);
    if (active) *active = e->n_running + e->n_waiting;
    pthread_mutex_unlock(&e->lock);
    return VLM_OK;
}
