/* One sequence at the token level: checks, the rope index, prefill chunks (image rows put in
 * place), sampling and decode steps. See sequence.h. */
#include "runtime/sequence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"

enum { DEFAULT_PREFILL_CHUNK = 512 };

static vlm_status check_request(const vlm_text_model *m, const vlm_gen_request *r) {
    const vlm_model_config *cfg = vlm_text_model_config(m);
    const vlm_text_config *t = &cfg->text;
    int L = r->n_ids;
    if (L < 1) return vlm_err(VLM_ERR_INVALID, "the prompt is empty (no tokens)");
    if (r->max_new_tokens < 0) return vlm_err(VLM_ERR_INVALID, "max new tokens %d must be >= 0", r->max_new_tokens);
    if ((int64_t)L + r->max_new_tokens > t->max_positions)
        return vlm_err(VLM_ERR_INVALID,
                       "a prompt of %d tokens plus %d new tokens (%lld) exceeds the model's context of "
                       "%d positions (max_position_embeddings); shorten the prompt or lower --max-tokens",
                       L, r->max_new_tokens, (long long)L + r->max_new_tokens, t->max_positions);
    if (r->embeds) {
        if (!r->positions) return vlm_err(VLM_ERR_INVALID, "precomputed embeddings need their positions");
    } else if (!r->ids) {
        return vlm_err(VLM_ERR_INVALID, "the request has neither token ids nor embeddings");
    }
    for (int i = 0; r->ids && i < L; i++)
        if (r->ids[i] < 0 || r->ids[i] >= t->vocab)
            return vlm_err(VLM_ERR_INVALID, "token %d of the prompt has id %d, outside the vocabulary (0..%d)", i,
                           r->ids[i], t->vocab - 1);
    if (r->embeds) return VLM_OK;
    int n_img = 0;
    for (int i = 0; i < L; i++) n_img += r->ids[i] == cfg->tokens.image_token_id;
    if (n_img != r->n_image_rows)
        return vlm_err(VLM_ERR_INVALID, "the prompt has %d image tokens but %d image feature rows were given", n_img,
                       r->n_image_rows);
    if (n_img && (!r->image_embeds || !r->grids || r->n_images < 1))
        return vlm_err(VLM_ERR_INVALID, "the prompt has %d image tokens but no image features or grids", n_img);
    int64_t grid_rows = 0;
    for (int k = 0; k < r->n_images; k++) grid_rows += vlm_grid_tokens(&r->grids[k], cfg->vision.merge_size);
    if (grid_rows != n_img)
        return vlm_err(VLM_ERR_INVALID, "the image grids describe %lld image tokens, the prompt has %d",
                       (long long)grid_rows, n_img);
    return VLM_OK;
}

/* Host memory of the sequence and its positions. */
static vlm_status positions_init(vlm_seq *s) {
    const vlm_gen_request *r = &s->r;
    const vlm_model_config *cfg = vlm_text_model_config(s->m);
    int L = r->n_ids, D = cfg->text.hidden;
    s->pos = vlm_alloc(3 * (size_t)L * sizeof *s->pos, "prompt positions");
    s->img_pos = vlm_alloc(((size_t)r->n_image_rows + 1) * sizeof *s->img_pos, "image token positions");
    s->img_local = vlm_alloc((size_t)s->chunk * sizeof *s->img_local, "image token positions");
    s->out = vlm_alloc(((size_t)r->max_new_tokens + 1) * sizeof *s->out, "generated ids");
    if (!vlm_backend_host_memory(vlm_text_model_backend(s->m)))
        s->logits_h = vlm_alloc((size_t)cfg->text.vocab * sizeof(float), "host logits");
    if (r->dump) s->dump_buf = vlm_alloc(3 * (size_t)L * D * sizeof(float), "dumped activations");
    if (!s->pos || !s->img_pos || !s->img_local || !s->out ||
        (!vlm_backend_host_memory(vlm_text_model_backend(s->m)) && !s->logits_h) || (r->dump && !s->dump_buf))
        return VLM_ERR_NOMEM;
    if (r->embeds) {
        memcpy(s->pos, r->positions, 3 * (size_t)L * sizeof *s->pos);
        int32_t mx = 0;
        for (int i = 0; i < 3 * L; i++) mx = s->pos[i] > mx ? s->pos[i] : mx;
        s->rope_delta = mx + 1 - L;
        return VLM_OK;
    }
    int k = 0;
    for (int i = 0; i < L; i++)
        if (r->ids[i] == cfg->tokens.image_token_id) s->img_pos[k++] = i;
    return vlm_rope_index(r->ids, L, r->grids, r->n_image_rows ? r->n_images : 0, cfg, s->pos, &s->rope_delta);
}

vlm_status vlm_seq_start(vlm_seq *s, vlm_text_model *m, const vlm_gen_request *r) {
    memset(s, 0, sizeof *s);
    s->m = m;
    s->r = *r;
    VLM_TRY(check_request(m, r));
    int L = r->n_ids, chunk = r->prefill_chunk > 0 ? r->prefill_chunk : DEFAULT_PREFILL_CHUNK;
    s->chunk = L < chunk ? L : chunk;
    /* the last chosen token is never run: the cache needs L + max_new - 1 positions */
    int capacity = L + (r->max_new_tokens > 1 ? r->max_new_tokens - 1 : 0);
    vlm_status st = vlm_text_state_create(m, capacity, s->chunk, &s->st); /* checks the memory first */
    if (st == VLM_OK) st = positions_init(s);
    if (st == VLM_OK) st = vlm_sampler_create(vlm_text_model_config(m)->text.vocab, &r->sampling, &s->smp);
    if (st == VLM_OK && r->ids) vlm_sampler_accept(s->smp, r->ids, L);
    if (st != VLM_OK) vlm_seq_free(s);
    return st;
}

void vlm_seq_free(vlm_seq *s) {
    if (s->m) vlm_text_state_free(s->m, &s->st);
    vlm_sampler_free(s->smp);
    vlm_free(s->pos);
    vlm_free(s->img_pos);
    vlm_free(s->img_local);
    vlm_free(s->logits_h);
    vlm_free(s->dump_buf);
    vlm_free(s->out);
    memset(s, 0, sizeof *s);
}

/* Puts the embeddings of prompt rows [c0, c0 + n) into the pass's input rows. */
static void embed_rows(vlm_seq *s, int c0, int n) {
    const vlm_gen_request *r = &s->r;
    size_t D = (size_t)vlm_text_model_config(s->m)->text.hidden;
    if (r->embeds) {
        vlm_text_set_rows(s->m, &s->st, r->embeds + c0 * D, n);
        return;
    }
    vlm_text_embed(s->m, &s->st, r->ids + c0, n);
    int k0 = 0, cnt = 0; /* image tokens are sorted: those of this chunk are consecutive */
    while (k0 < r->n_image_rows && s->img_pos[k0] < c0) k0++;
    while (k0 + cnt < r->n_image_rows && s->img_pos[k0 + cnt] < c0 + n) {
        s->img_local[cnt] = s->img_pos[k0 + cnt] - c0;
        cnt++;
    }
    vlm_text_scatter_image_rows(s->m, &s->st, s->img_local, r->image_embeds + k0 * D, cnt);
}

static vlm_status dump_prompt(vlm_seq *s, const float *logits) {
    const vlm_gen_request *r = &s->r;
    vlm_dump *d = r->dump;
    const vlm_text_config *t = &vlm_text_model_config(s->m)->text;
    int64_t L = r->n_ids, D = t->hidden, V = t->vocab;
    int64_t shp_ld[2] = {L, D}, shp_pos[2] = {3, L}, one = 1;
    int64_t delta = s->rope_delta;
    if (r->ids) VLM_TRY(vlm_dump_i32_as_i64(d, "input_ids", r->ids, 1, &L));
    VLM_TRY(vlm_dump_i32_as_i64(d, "position_ids", s->pos, 2, shp_pos));
    VLM_TRY(vlm_dump_i64(d, "rope_deltas", &delta, 1, &one));
    VLM_TRY(vlm_dump_f32_host(d, "inputs_embeds", s->dump_buf, 2, shp_ld));
    VLM_TRY(vlm_dump_f32_host(d, "decoder_layer0_out", s->dump_buf + L * D, 2, shp_ld));
    VLM_TRY(vlm_dump_f32_host(d, "final_norm_out", s->dump_buf + 2 * L * D, 2, shp_ld));
    VLM_TRY(vlm_dump_f32_host(d, "logits_last", logits, 1, &V));
    return vlm_seq_dump_ids(s);
}

vlm_status vlm_seq_prefill(vlm_seq *s) {
    int L = s->r.n_ids, c0 = s->n_prefilled;
    if (s->prefilled) return VLM_OK;
    int n = L - c0 < s->chunk ? L - c0 : s->chunk;
    size_t D = (size_t)vlm_text_model_config(s->m)->text.hidden, LD = (size_t)L * D;
    embed_rows(s, c0, n);
    vlm_text_taps taps = {0};
    if (s->dump_buf)
        taps = (vlm_text_taps){s->dump_buf + c0 * D, s->dump_buf + LD + c0 * D, s->dump_buf + 2 * LD + c0 * D};
    VLM_TRY(vlm_text_forward(s->m, &s->st, n, s->pos + c0, L, c0 + n == L, &taps));
    s->n_prefilled += n;
    if (s->n_prefilled < L) return VLM_OK;
    s->prefilled = 1;
    if (!s->r.dump) return VLM_OK;
    float *logits;
    VLM_TRY(vlm_seq_logits(s, &logits));
    return dump_prompt(s, logits); /* before sampling changes the logits */
}

vlm_status vlm_seq_logits(vlm_seq *s, float **logits) {
    if (!s->logits_h) { /* CPU: device memory is host memory */
        *logits = s->st.logits;
        return VLM_OK;
    }
    *logits = s->logits_h;
    size_t bytes = (size_t)vlm_text_model_config(s->m)->text.vocab * sizeof(float);
    return vlm_to_host(vlm_text_model_backend(s->m), s->logits_h, s->st.logits, bytes);
}

vlm_status vlm_seq_sample(vlm_seq *s, int32_t *id) {
    if (s->n_out >= s->r.max_new_tokens)
        return vlm_err(VLM_ERR_INVALID, "the sequence already has its %d tokens", s->r.max_new_tokens);
    float *logits;
    VLM_TRY(vlm_seq_logits(s, &logits));
    char what[80];
    snprintf(what, sizeof what, "the language model's logits for generated token %d", s->n_out + 1);
    VLM_TRY(vlm_check_finite(NULL, logits, 1, vlm_text_model_config(s->m)->text.vocab, what));
    int32_t tok = vlm_sampler_sample(s->smp, logits);
    s->out[s->n_out++] = tok;
    vlm_sampler_accept(s->smp, &tok, 1);
    *id = tok;
    return VLM_OK;
}

int vlm_seq_is_stop(const vlm_seq *s, int32_t id) {
    for (int i = 0; i < s->r.n_stop; i++)
        if (s->r.stop_ids[i] == id) return 1;
    return 0;
}

vlm_status vlm_seq_decode(vlm_seq *s) {
    int32_t tok = s->out[s->n_out - 1], p = s->st.n_past + s->rope_delta, pos[3] = {p, p, p};
    vlm_text_embed(s->m, &s->st, &tok, 1);
    return vlm_text_forward(s->m, &s->st, 1, pos, 1, 1, NULL);
}

vlm_status vlm_seq_dump_ids(vlm_seq *s) {
    if (!s->r.dump) return VLM_OK;
    int64_t gen = s->n_out;
    return vlm_dump_i32_as_i64(s->r.dump, "generated_ids", s->out, 1, &gen);
}
