/* One sequence being generated, at the token level: its prompt (ids, image rows, M-RoPE positions
 * and rope delta), the model's run state for it (its own KV cache), its sampler and the ids chosen
 * so far. vlm_text_generate and the engine drive it the same way:
 *
 *   vlm_seq_start(&s, model, &request);           checks, allocates, computes the rope index
 *   while (!s.prefilled) vlm_seq_prefill(&s);     one chunk of the prompt per call
 *   for (;;) { id = vlm_seq_sample(&s); if (stop) break; vlm_seq_decode(&s); }
 *   vlm_seq_free(&s);
 *
 * The request's arrays (ids, image features, grids, hook embeddings) are borrowed: they must
 * outlive the sequence. */
#ifndef VLM_RUNTIME_SEQUENCE_H
#define VLM_RUNTIME_SEQUENCE_H

#include "runtime/text_generate.h"

typedef struct {
    vlm_text_model *m;
    vlm_gen_request r; /* a copy; its arrays are borrowed */
    vlm_text_state st;
    vlm_sampler *smp;
    int32_t *pos;       /* [3, L] prompt positions (t, h, w rows) */
    int32_t *img_pos;   /* prompt positions of the image tokens, in order */
    int32_t *img_local; /* [rows per pass] chunk-relative rows of image tokens */
    float *logits_h;    /* [vocab] host copy of the logits (the device's own when it is the host) */
    float *dump_buf;    /* [3, L, D] inputs_embeds, layer-0 output, final norm (dump only) */
    int32_t rope_delta;
    int chunk;       /* rows per prefill pass */
    int n_prefilled; /* prompt rows already in the cache */
    int prefilled;   /* the whole prompt is in the cache and its last logits are ready */
    int32_t *out;    /* [max_new_tokens + 1] chosen ids */
    int n_out;
} vlm_seq;

/* Checks the request (prompt, vocabulary, image rows against grids, context length), allocates
 * the run state (checking available memory first) and computes the positions. */
vlm_status vlm_seq_start(vlm_seq *s, vlm_text_model *m, const vlm_gen_request *r);
/* Runs the next chunk of the prompt; after the last one, s->prefilled is set and the logits of
 * the prompt's last row are ready (and dumped when the request has a dump). */
vlm_status vlm_seq_prefill(vlm_seq *s);
/* The logits of the last pass on the host ([vocab]; the sampler modifies them). */
vlm_status vlm_seq_logits(vlm_seq *s, float **logits);
/* Chooses the next id from the last logits and records it (result ids, repetition penalty). */
vlm_status vlm_seq_sample(vlm_seq *s, int32_t *id);
/* 1 when id is one of the request's stop ids. */
int vlm_seq_is_stop(const vlm_seq *s, int32_t id);
/* Runs the last chosen id through the model (its logits become the next ones). */
vlm_status vlm_seq_decode(vlm_seq *s);
/* Records the ids generated so far in the dump (no-op without a dump). */
vlm_status vlm_seq_dump_ids(vlm_seq *s);
void vlm_seq_free(vlm_seq *s);

#endif
