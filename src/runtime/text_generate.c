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

/* Samples and decodes until a stop condition. */
static vlm_status run(vlm_seq *s, vlm_gen_result *out, double t0) {
    const vlm_gen_request *r = &s->r;
    while (!s->prefilled) VLM_TRY(vlm_seq_prefill(s));
    out->stop = VLM_STOP_MAX_TOKENS;
    double t_first = vlm_now();
    out->prefill_s = t_first - t0;
    while (s->n_out < r->max_new_tokens) {
        int32_t tok;
        VLM_TRY(vlm_seq_sample(s, &tok));
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
        VLM_TRY(vlm_seq_decode(s));
    }
    out->decode_s = vlm_now() - t_first;
    return vlm_seq_dump_ids(s); /* the ids are known only now */
}

vlm_status vlm_text_generate(vlm_text_model *m, const vlm_gen_request *r, vlm_gen_result *out) {
    double t0 = vlm_now();
    memset(out, 0, sizeof *out);
    vlm_seq s;
    vlm_status status = vlm_seq_start(&s, m, r);
    if (status != VLM_OK) return vlm_err_ctx(status, "generating with the language model");
    out->prompt_tokens = r->n_ids;
    out->kv_cache_bytes = s.st.kv_bytes;
    out->activation_bytes = s.st.act_bytes;
    status = run(&s, out, t0);
    if (status == VLM_OK) {
        out->ids = vlm_alloc(((size_t)s.n_out + 1) * sizeof *out->ids, "the generated ids");
        if (!out->ids) status = VLM_ERR_NOMEM;
    }
    if (status == VLM_OK) {
        memcpy(out->ids, s.out, (size_t)s.n_out * sizeof *out->ids);
        out->n_ids = s.n_out;
    }
    vlm_seq_free(&s);
    if (status != VLM_OK) {
        vlm_gen_result_free(out);
        return vlm_err_ctx(status, "generating with the language model");
    }
    return VLM_OK;
}
