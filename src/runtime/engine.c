/* The engine's public API: options, create (the KV pool sized and stated), free, submit and cancel
 * from any thread, the run loop, stop, stats. The step is engine_step.c. See engine.h for who may
 * touch what. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
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

/* The default pool: half of the memory left beside the weights, the pass buffers and the image
 * cache (the other half stays for the vision encoder's activations and the rest of the machine),
 * and never more than max_running sequences of the whole context. */
static int default_blocks(vlm_engine *e, uint64_t per_block, uint64_t reserved, char *why, size_t cap) {
    vlm_model *m = e->m;
    uint64_t avail, budget;
    avail = vlm_backend_available_memory(m->be);
    if (vlm_backend_host_memory(m->be)) {
        /* mapped weights not yet read count as available: count them out */
        uint64_t weights = m->lang.bytes + (m->vision ? m->vis.bytes : 0), rss = vlm_rss_bytes();
        uint64_t pending = weights > rss ? weights - rss : 0;
        budget = avail > pending + reserved ? (avail - pending - reserved) / 2 : 0;
        snprintf(why, cap, "half of the %.1f GB available beside the weights", avail / 1e9);
    } else {
        budget = avail > reserved ? (avail - reserved) / 2 : 0;
        snprintf(why, cap, "half of the %.1f GB of device memory free", avail / 1e9);
    }
    int64_t most = ((int64_t)e->opt.max_running * e->m->lang.cfg.text.max_positions + e->opt.kv_block_tokens - 1) /
        e->opt.kv_block_tokens;
    int64_t n = (int64_t)(budget / per_block);
    if (n > most) {
        n = most;
        snprintf(why, cap, "max_running sequences of the whole context");
    }
    return n > INT32_MAX / e->opt.kv_block_tokens ? INT32_MAX / e->opt.kv_block_tokens : (int)n;
}

/* The KV pool, the pass buffers and the image cache. */
static vlm_status engine_memory(vlm_engine *e, int n_blocks) {
    vlm_model *m = e->m;
    const vlm_engine_options *o = &e->opt;
    int rows = o->max_step_tokens > o->max_running ? o->max_step_tokens : o->max_running;
    VLM_TRY(vlm_text_batch_create(m->text, rows, o->max_running, &e->batch));
    uint64_t per_block = vlm_kv_block_bytes(&m->lang.cfg, o->kv_block_tokens);
    char why[160] = "";
    int stated = !n_blocks;
    if (!n_blocks && o->kv_cache_mb) {
        uint64_t n = (uint64_t)o->kv_cache_mb * 1048576 / per_block;
        n_blocks = n > INT32_MAX / (uint64_t)o->kv_block_tokens ? INT32_MAX / o->kv_block_tokens : (int)n;
        snprintf(why, sizeof why, "kv_cache_mb %lld", o->kv_cache_mb);
    } else if (!n_blocks) {
        uint64_t reserved = e->batch.act_bytes + (uint64_t)o->image_cache_mb * 1048576;
        n_blocks = default_blocks(e, per_block, reserved, why, sizeof why);
    }
    if (n_blocks < 1)
        return vlm_err(VLM_ERR_NOMEM,
                       "engine: no memory for a KV cache (%s gives none; one block of %d positions is %.1f MB)", why,
                       o->kv_block_tokens, per_block / 1048576.0);
    VLM_TRY(vlm_kv_pool_create(m->text, n_blocks, o->kv_block_tokens, &e->pool));
    VLM_TRY(vlm_kvc_init(&e->kvc, n_blocks));
    vlm_image_cache_init(&e->images, m->be, (uint64_t)o->image_cache_mb * 1048576);
    VLM_TRY(vlm_image_sizes_init(&e->sizes, 1024));
    size_t R = (size_t)e->batch.max_rows, S = (size_t)o->max_running;
    e->ts = vlm_calloc(S, sizeof *e->ts, "the engine's pass");
    e->seqs = vlm_calloc(S, sizeof *e->seqs, "the engine's pass");
    e->in_pass = vlm_calloc(S, sizeof *e->in_pass, "the engine's pass");
    e->rows = vlm_calloc(S, sizeof *e->rows, "the engine's pass");
    e->pos = vlm_calloc(3 * R, sizeof *e->pos, "the engine's pass");
    if (!e->ts || !e->seqs || !e->in_pass || !e->rows || !e->pos) return VLM_ERR_NOMEM;
    if (stated)
        VLM_LOG_I("engine: KV cache of %d blocks x %d positions = %.2f GB (%s); at most %d sequences and %d rows per "
                  "step",
                  n_blocks, o->kv_block_tokens, e->pool.bytes / 1e9, why, o->max_running, o->max_step_tokens);
    return VLM_OK;
}

static void engine_release(vlm_engine *e) {
    vlm_image_cache_free(&e->images);
    if (e->sizes.e) vlm_image_sizes_free(&e->sizes);
    vlm_kvc_free(&e->kvc);
    vlm_kv_pool_free(e->m->text, &e->pool);
    vlm_text_batch_free(e->m->text, &e->batch);
    vlm_free(e->ts);
    vlm_free(e->seqs);
    vlm_free(e->in_pass);
    vlm_free(e->rows);
    vlm_free(e->pos);
    vlm_free(e->running);
}

vlm_status vlm_engine_create_sized(vlm_model *m, const vlm_engine_options *o, int n_blocks, vlm_engine **out) {
    *out = NULL;
    vlm_engine_options opt;
    if (o) opt = *o;
    else vlm_engine_options_init(&opt);
    VLM_TRY(check_options(&opt));
    vlm_engine *e = vlm_calloc(1, sizeof *e, "the engine");
    if (!e) return VLM_ERR_NOMEM;
    pthread_mutex_lock(&m->lock);
    int taken = m->engine != NULL;
    if (!taken) m->engine = e;
    pthread_mutex_unlock(&m->lock);
    if (taken) {
        vlm_free(e);
        return vlm_err(VLM_ERR_BUSY, "this model already has an engine (one engine per model at a time)");
    }
    e->m = m;
    e->opt = opt;
    e->running = vlm_calloc((size_t)opt.max_running, sizeof *e->running, "the engine's running list");
    vlm_status s = e->running ? engine_memory(e, n_blocks) : VLM_ERR_NOMEM;
    if (s != VLM_OK) {
        engine_release(e);
        pthread_mutex_lock(&m->lock);
        m->engine = NULL;
        pthread_mutex_unlock(&m->lock);
        vlm_free(e);
        return vlm_err_ctx(s, "creating the engine");
    }
    pthread_mutex_init(&e->lock, NULL);
    sem_init(&e->wake, 0, 0);
    e->stats.kv_blocks_total = e->pool.n_blocks;
    e->stats.kv_block_tokens = e->pool.block_tokens;
    e->stats.kv_pool_bytes = e->pool.bytes;
    *out = e;
    return VLM_OK;
}

vlm_status vlm_engine_create(vlm_model *m, const vlm_engine_options *o, vlm_engine **out) {
    return vlm_engine_create_sized(m, o, 0, out);
}

void vlm_engine_free(vlm_engine *e) {
    if (!e) return;
    while (e->n_running) {
        vlm_job *j = e->running[--e->n_running];
        vlm_job_finish(j, VLM_STOP_CANCELLED);
        vlm_engine_complete(e, j, VLM_OK, NULL);
    }
    while (e->wait_head) {
        vlm_job *j = e->wait_head;
        e->wait_head = j->next;
        e->n_waiting--;
        vlm_job_finish(j, VLM_STOP_CANCELLED);
        vlm_engine_complete(e, j, VLM_OK, NULL);
    }
    engine_release(e);
    pthread_mutex_lock(&e->m->lock);
    e->m->engine = NULL;
    pthread_mutex_unlock(&e->m->lock);
    sem_destroy(&e->wake);
    pthread_mutex_destroy(&e->lock);
    vlm_free(e);
}

vlm_status vlm_engine_enqueue(vlm_engine *e, vlm_job *j, vlm_done_fn on_done, void *done_user, vlm_request_id *id) {
    if (id) *id = 0;
    vlm_status s = vlm_job_plan_blocks(j, e->pool.block_tokens, e->opt.prefix_cache);
    if (s == VLM_OK && j->n_blocks > e->pool.n_blocks)
        s = vlm_err(VLM_ERR_NOMEM,
                    "the request can never fit the KV cache: a prompt of %d tokens plus max_tokens %d needs %d blocks "
                    "of %d positions, the cache has %d (%.2f GB; see kv_cache_mb)",
                    j->n_ids, j->max_tokens, j->n_blocks, e->pool.block_tokens, e->pool.n_blocks, e->pool.bytes / 1e9);
    if (s != VLM_OK) {
        vlm_job_free(e->m, j);
        return s;
    }
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

vlm_status vlm_engine_submit(vlm_engine *e, const vlm_request *r, vlm_done_fn on_done, void *done_user,
                             vlm_request_id *id) {
    if (id) *id = 0;
    if (!e || !r) return vlm_err(VLM_ERR_INVALID, "vlm_engine_submit: no engine or no request");
    vlm_job *j;
    VLM_TRY(vlm_job_prepare(e->m, r, &e->sizes, &j));
    return vlm_engine_enqueue(e, j, on_done, done_user, id);
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
    pthread_mutex_unlock(&e->lock);
}
