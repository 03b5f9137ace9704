/* The generation loop of one sequence: prefill in chunks, then sample and decode one token at a time
 * until a stop id, max_new_tokens or the callback ends it, with the timers around it. */
#include <string.h>

#include "base/memory.h"
#include "base/timer.h"
#include "runtime/sequence.h"

void vlm_gen_request_init(vlm_gen_request *r) {
    memset(r, 0, sizeof *r);
    r->sampling = vlm_sampler_greedy();
    r->max_new_tokens = 128;
}

void vlm_gen_result_free(vlm_gen_result *r) {
    vlm_free(r->ids);
    memset(r, 0, sizeof *r);
}

enum { DEFAULT_PREFILL_CHUNK = 512 };

/* One sequence with its own pool (one block holding every position it can reach) and pass buffers. */
typedef struct {
    vlm_seq s;
    vlm_kv_pool pool;
    vlm_text_batch b;
    vlm_text_seq ts;
    int32_t *pos;
    int chunk;
} single;

static vlm_status pass(vlm_text_model *m, single *g, int rows) {
    vlm_seq *sp = &g->s;
    return vlm_seqs_forward(m, &g->b, &g->pool, &sp, &rows, 1, &g->ts, g->pos);
}

/* Prefills, then samples and decodes until a stop condition. */
static vlm_status run(vlm_text_model *m, single *g, vlm_gen_result *out, double t0) {
    vlm_seq *s = &g->s;
    const vlm_gen_request *r = &s->r;
    while (!s->prefilled) VLM_TRY(pass(m, g, vlm_seq_next_rows(s, g->chunk)));
    out->stop = VLM_STOP_MAX_TOKENS;
    double t_first = vlm_now();
    out->prefill_s = t_first - t0;
    while (s->n_out < r->max_new_tokens) {
        int32_t tok;
        VLM_TRY(vlm_seq_sample(s, &g->b, &tok));
        if (s->n_out == 1) {
            t_first = vlm_now();
            out->first_token_s = t_first - t0;
            out->prefill_s = t_first - t0;
        }
        if (vlm_seq_is_stop(s, tok)) {
            out->stop = VLM_STOP_EOS;
            break;
        }
        if (r->on_token && r->on_token(r->user, tok)) {
            out->stop = VLM_STOP_CALLBACK;
            break;
        }
        if (s->n_out == r->max_new_tokens) break;
        VLM_TRY(pass(m, g, 1));
    }
    out->decode_s = vlm_now() - t_first;
    return vlm_seq_dump_ids(s); /* the ids are known only now */
}

static vlm_status start(vlm_text_model *m, const vlm_gen_request *r, single *g) {
    int L = r->n_ids, chunk = r->prefill_chunk > 0 ? r->prefill_chunk : DEFAULT_PREFILL_CHUNK;
    /* the last chosen token is never run: the cache needs L + max_new - 1 positions */
    int capacity = L + (r->max_new_tokens > 1 ? r->max_new_tokens - 1 : 0);
    g->chunk = L < chunk ? L : chunk;
    VLM_TRY(vlm_seq_start(&g->s, m, r, capacity > 0 ? capacity : 1));
    VLM_TRY(vlm_kv_pool_create(m, 1, capacity, &g->pool)); /* checks the memory first */
    VLM_TRY(vlm_text_batch_create(m, g->chunk, 1, &g->b));
    g->pos = vlm_alloc(3 * (size_t)g->chunk * sizeof *g->pos, "positions of a pass");
    if (!g->pos) return VLM_ERR_NOMEM;
    g->s.blocks[0] = 0;
    return VLM_OK;
}

static void finish(vlm_text_model *m, single *g) {
    vlm_seq_free(&g->s);
    vlm_kv_pool_free(m, &g->pool);
    vlm_text_batch_free(m, &g->b);
    vlm_free(g->pos);
}

vlm_status vlm_text_generate(vlm_text_model *m, const vlm_gen_request *r, vlm_gen_result *out) {
    double t0 = vlm_now();
    memset(out, 0, sizeof *out);
    single g;
    memset(&g, 0, sizeof g);
    vlm_status status = start(m, r, &g);
    out->prompt_tokens = r->n_ids;
    out->kv_cache_bytes = g.pool.bytes;
    out->activation_bytes = g.b.act_bytes;
    if (status == VLM_OK) status = run(m, &g, out, t0);
    if (status == VLM_OK) {
        out->ids = vlm_alloc(((size_t)g.s.n_out + 1) * sizeof *out->ids, "the generated ids");
        if (!out->ids) status = VLM_ERR_NOMEM;
    }
    if (status == VLM_OK) {
        memcpy(out->ids, g.s.out, (size_t)g.s.n_out * sizeof *out->ids);
        out->n_ids = g.s.n_out;
    }
    finish(m, &g);
    if (status != VLM_OK) {
        vlm_gen_result_free(out);
        return vlm_err_ctx(status, "generating with the language model");
    }
    return VLM_OK;
}
