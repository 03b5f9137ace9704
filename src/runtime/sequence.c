/* One sequence at the token level: checks, the rope index, its rows of a pass (prompt chunks with
 * image rows put in place, or its last token), sampling. See sequence.h. */
#include "runtime/sequence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"

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
    if (r->image_row0 < 0 || r->image_row0 > n_img)
        return vlm_err(VLM_ERR_INVALID, "image rows from %d of %d", r->image_row0, n_img);
    if (n_img && (!r->grids || r->n_images < 1 || (r->image_row0 < n_img && !r->image_embeds)))
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
    s->img_rows = vlm_alloc((size_t)L * sizeof *s->img_rows, "image token rows");
    s->out = vlm_alloc(((size_t)r->max_new_tokens + 1) * sizeof *s->out, "generated ids");
    s->blocks = vlm_calloc((size_t)s->n_blocks, sizeof *s->blocks, "a block table");
    if (r->dump) s->dump_buf = vlm_alloc(3 * (size_t)L * D * sizeof(float), "dumped activations");
    if (!s->pos || !s->img_pos || !s->img_rows || !s->out || !s->blocks || (r->dump && !s->dump_buf))
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

vlm_status vlm_seq_start(vlm_seq *s, vlm_text_model *m, const vlm_gen_request *r, int block_tokens) {
    memset(s, 0, sizeof *s);
    s->m = m;
    s->r = *r;
    s->logits_row = -1;
    VLM_TRY(check_request(m, r));
    if (block_tokens < 1) return vlm_err(VLM_ERR_INVALID, "KV blocks of %d positions", block_tokens);
    /* the last chosen token is never run: the cache needs L + max_new - 1 positions */
    int capacity = r->n_ids + (r->max_new_tokens > 1 ? r->max_new_tokens - 1 : 0);
    s->block_tokens = block_tokens;
    s->n_blocks = (capacity + block_tokens - 1) / block_tokens;
    vlm_status st = positions_init(s);
    if (st == VLM_OK) st = vlm_sampler_create(vlm_text_model_config(m)->text.vocab, &r->sampling, &s->smp);
    if (st == VLM_OK && r->ids) vlm_sampler_accept(s->smp, r->ids, r->n_ids);
    if (st != VLM_OK) vlm_seq_free(s);
    return st;
}

void vlm_seq_free(vlm_seq *s) {
    vlm_sampler_free(s->smp);
    vlm_free(s->pos);
    vlm_free(s->img_pos);
    vlm_free(s->img_rows);
    vlm_free(s->dump_buf);
    vlm_free(s->out);
    vlm_free(s->blocks);
    memset(s, 0, sizeof *s);
}

vlm_status vlm_seq_skip(vlm_seq *s, int n) {
    if (n <= 0) return VLM_OK;
    if (n >= s->r.n_ids || s->n_past)
        return vlm_err(VLM_ERR_INVALID, "a cached prefix of %d positions for a prompt of %d (%d already run)", n,
                       s->r.n_ids, s->n_past);
    int k = 0;
    while (k < s->r.n_image_rows && s->img_pos[k] < n) k++;
    if (k < s->r.image_row0)
        return vlm_err(VLM_ERR_INVALID, "image rows from %d are given, the prompt needs them from %d", s->r.image_row0,
                       k);
    s->n_past = n;
    return VLM_OK;
}

int vlm_seq_next_rows(const vlm_seq *s, int budget) {
    if (s->prefilled) return 1;
    int left = s->r.n_ids - s->n_past;
    return left < budget ? left : budget;
}

/* The inputs of prompt rows [c0, c0 + n) at pass row row0, and their positions. */
static void fill_prompt(vlm_seq *s, vlm_text_batch *b, int row0, int c0, int n, int32_t *pos, int stride) {
    const vlm_gen_request *r = &s->r;
    size_t D = (size_t)vlm_text_model_config(s->m)->text.hidden;
    int L = r->n_ids;
    for (int a = 0; a < 3; a++) memcpy(pos + (size_t)a * stride + row0, s->pos + (size_t)a * L + c0, n * sizeof *pos);
    if (r->embeds) {
        vlm_text_set_rows(s->m, b, row0, r->embeds + c0 * D, n);
        return;
    }
    vlm_text_embed(s->m, b, row0, r->ids + c0, n);
    int k0 = 0, cnt = 0; /* image tokens are sorted: those of this chunk are consecutive */
    while (k0 < r->n_image_rows && s->img_pos[k0] < c0) k0++;
    while (k0 + cnt < r->n_image_rows && s->img_pos[k0 + cnt] < c0 + n) {
        s->img_rows[cnt] = row0 + s->img_pos[k0 + cnt] - c0;
        cnt++;
    }
    if (cnt) vlm_text_scatter_image_rows(s->m, b, s->img_rows, r->image_embeds + (k0 - r->image_row0) * D, cnt);
}

/* Sequence i's inputs at pass row row0 and its part of the pass. */
static void fill(vlm_seq *s, vlm_text_batch *b, int row0, int n, int32_t *pos, int stride, vlm_text_seq *ts) {
    *ts = (vlm_text_seq){.n = n, .n_past = s->n_past, .blocks = s->blocks};
    s->pass_rows = n;
    if (s->prefilled) { /* the last chosen token, at the next position of all three axes */
        int32_t tok = s->out[s->n_out - 1], p = s->n_past + s->rope_delta;
        vlm_text_embed(s->m, b, row0, &tok, 1);
        for (int a = 0; a < 3; a++) pos[(size_t)a * stride + row0] = p;
        ts->want_logits = 1;
        return;
    }
    int c0 = s->n_past, L = s->r.n_ids;
    fill_prompt(s, b, row0, c0, n, pos, stride);
    ts->want_logits = c0 + n == L;
    if (s->dump_buf) {
        size_t D = (size_t)vlm_text_model_config(s->m)->text.hidden, LD = (size_t)L * D;
        s->taps = (vlm_text_taps){s->dump_buf + c0 * D, s->dump_buf + LD + c0 * D, s->dump_buf + 2 * LD + c0 * D};
        ts->taps = &s->taps;
    }
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

/* After the pass: the rows are in the cache; a finished prompt is dumped before sampling changes
 * its logits. */
static vlm_status after(vlm_seq *s, const vlm_text_batch *b, int logits_row) {
    s->n_past += s->pass_rows;
    s->pass_rows = 0;
    s->logits_row = logits_row;
    if (s->prefilled || s->n_past < s->r.n_ids) return VLM_OK;
    s->prefilled = 1;
    if (!s->r.dump) return VLM_OK;
    return dump_prompt(s, vlm_text_logits(s->m, b, logits_row));
}

vlm_status vlm_seqs_forward(vlm_text_model *m, vlm_text_batch *b, vlm_kv_pool *pool, vlm_seq *const *seqs,
                            const int *rows, int n, vlm_text_seq *ts, int32_t *pos) {
    int R = 0;
    for (int i = 0; i < n; i++) R += rows[i];
    if (R < 1 || R > b->max_rows)
        return vlm_err(VLM_ERR_INVALID, "a pass of %d rows (the buffers hold %d)", R, b->max_rows);
    for (int i = 0, row0 = 0; i < n; row0 += rows[i], i++) fill(seqs[i], b, row0, rows[i], pos, R, &ts[i]);
    vlm_status st = vlm_text_forward(m, b, pool, ts, n, pos, R);
    for (int i = 0, nl = 0; i < n; i++) {
        if (st != VLM_OK) {
            seqs[i]->pass_rows = 0;
            continue;
        }
        vlm_status s2 = after(seqs[i], b, ts[i].want_logits ? nl : -1);
        if (s2 != VLM_OK) st = s2;
        nl += ts[i].want_logits;
    }
    return st;
}

vlm_status vlm_seq_sample(vlm_seq *s, const vlm_text_batch *b, int32_t *id) {
    if (s->n_out >= s->r.max_new_tokens)
        return vlm_err(VLM_ERR_INVALID, "the sequence already has its %d tokens", s->r.max_new_tokens);
    if (s->logits_row < 0) return vlm_err(VLM_ERR_INVALID, "the sequence has no logits to sample from");
    float *logits = vlm_text_logits(s->m, b, s->logits_row);
    char what[80];
    snprintf(what, sizeof what, "the language model's logits for generated token %d", s->n_out + 1);
    VLM_TRY(vlm_check_finite(NULL, logits, 1, vlm_text_model_config(s->m)->text.vocab, what));
    int32_t tok = vlm_sampler_sample(s->smp, logits);
    s->logits_row = -1;
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

vlm_status vlm_seq_dump_ids(vlm_seq *s) {
    if (!s->r.dump) return VLM_OK;
    int64_t gen = s->n_out;
    return vlm_dump_i32_as_i64(s->r.dump, "generated_ids", s->out, 1, &gen);
}
