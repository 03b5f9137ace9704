/* The generation loop: checks a request, embeds the prompt (image rows replaced), computes its
 * rope index, prefills it in batched passes, then samples and decodes one token at a time until a
 * stop id, max_new_tokens or the callback ends it. */
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "base/timer.h"
#include "model/text_model_impl.h"

enum { DEFAULT_PREFILL_CHUNK = 512 };

void vlm_gen_request_init(vlm_gen_request *r) {
    memset(r, 0, sizeof *r);
    r->sampling = vlm_sampler_greedy();
    r->max_new_tokens = 128;
}

void vlm_gen_result_free(vlm_gen_result *r) {
    free(r->ids);
    memset(r, 0, sizeof *r);
}

static vlm_status check_request(const vlm_text_model *m, const vlm_gen_request *r) {
    const vlm_text_config *t = &m->cfg.text;
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
    for (int i = 0; i < L; i++) n_img += r->ids[i] == m->cfg.tokens.image_token_id;
    if (n_img != r->n_image_rows)
        return vlm_err(VLM_ERR_INVALID, "the prompt has %d image tokens but %d image feature rows were given", n_img,
                       r->n_image_rows);
    if (n_img && (!r->image_embeds || !r->grids || r->n_images < 1))
        return vlm_err(VLM_ERR_INVALID, "the prompt has %d image tokens but no image features or grids", n_img);
    int64_t grid_rows = 0;
    for (int k = 0; k < r->n_images; k++) grid_rows += vlm_grid_tokens(&r->grids[k], m->cfg.vision.merge_size);
    if (grid_rows != n_img)
        return vlm_err(VLM_ERR_INVALID, "the image grids describe %lld image tokens, the prompt has %d",
                       (long long)grid_rows, n_img);
    return VLM_OK;
}

/* Per-request host memory, allocated once before the first pass. */
typedef struct {
    int32_t *pos;       /* [3, L] */
    int32_t *img_pos;   /* positions of the image tokens, in order */
    int32_t *img_local; /* [rows per pass] chunk-relative positions */
    float *logits_h;    /* [vocab] when the device is not the host */
    float *dump_buf;    /* [3, L, D] inputs_embeds, layer-0 output, final norm (dump only) */
    int32_t rope_delta;
} gen_scratch;

static void scratch_free(gen_scratch *s) {
    vlm_free(s->pos);
    vlm_free(s->img_pos);
    vlm_free(s->img_local);
    vlm_free(s->logits_h);
    vlm_free(s->dump_buf);
}

static vlm_status scratch_init(vlm_text_model *m, const vlm_gen_request *r, int rows, gen_scratch *s) {
    int L = r->n_ids, D = m->cfg.text.hidden;
    memset(s, 0, sizeof *s);
    s->pos = vlm_alloc(3 * (size_t)L * sizeof *s->pos, "prompt positions");
    s->img_pos = vlm_alloc(((size_t)r->n_image_rows + 1) * sizeof *s->img_pos, "image token positions");
    s->img_local = vlm_alloc((size_t)rows * sizeof *s->img_local, "image token positions");
    if (!vlm_backend_host_memory(m->be))
        s->logits_h = vlm_alloc((size_t)m->cfg.text.vocab * sizeof(float), "host logits");
    if (r->dump) s->dump_buf = vlm_alloc(3 * (size_t)L * D * sizeof(float), "dumped activations");
    if (!s->pos || !s->img_pos || !s->img_local || (!vlm_backend_host_memory(m->be) && !s->logits_h) ||
        (r->dump && !s->dump_buf))
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
        if (r->ids[i] == m->cfg.tokens.image_token_id) s->img_pos[k++] = i;
    return vlm_rope_index(r->ids, L, r->grids, r->n_image_rows ? r->n_images : 0, &m->cfg, s->pos, &s->rope_delta);
}

/* Puts the embeddings of prompt rows [c0, c0 + n) into st->x. */
static void embed_rows(vlm_text_model *m, vlm_text_state *st, const vlm_gen_request *r, gen_scratch *s, int c0, int n) {
    size_t D = (size_t)m->cfg.text.hidden;
    if (r->embeds) {
        vlm_copy(m->be, st->x, r->embeds + c0 * D, n * D);
        return;
    }
    vlm_embed(m->be, st->x, &m->embed, r->ids + c0, n);
    int k0 = 0, cnt = 0; /* image tokens are sorted: those of this chunk are consecutive */
    while (k0 < r->n_image_rows && s->img_pos[k0] < c0) k0++;
    while (k0 + cnt < r->n_image_rows && s->img_pos[k0 + cnt] < c0 + n) {
        s->img_local[cnt] = s->img_pos[k0 + cnt] - c0;
        cnt++;
    }
    if (cnt) vlm_scatter_rows(m->be, st->x, s->img_local, r->image_embeds + k0 * D, cnt, (int)D);
}

static vlm_status prefill(vlm_text_model *m, vlm_text_state *st, const vlm_gen_request *r, gen_scratch *s) {
    int L = r->n_ids;
    size_t D = (size_t)m->cfg.text.hidden, LD = (size_t)L * D;
    for (int c0 = 0; c0 < L; c0 += st->max_rows) {
        int n = L - c0 < st->max_rows ? L - c0 : st->max_rows;
        embed_rows(m, st, r, s, c0, n);
        vlm_text_taps taps = {0};
        if (s->dump_buf)
            taps = (vlm_text_taps){s->dump_buf + c0 * D, s->dump_buf + LD + c0 * D, s->dump_buf + 2 * LD + c0 * D};
        VLM_TRY(vlm_text_forward(m, st, n, s->pos + c0, L, c0 + n == L, &taps));
    }
    return VLM_OK;
}

static vlm_status decode_step(vlm_text_model *m, vlm_text_state *st, int32_t token, int32_t rope_delta) {
    int32_t p = st->n_past + rope_delta, pos[3] = {p, p, p};
    vlm_embed(m->be, st->x, &m->embed, &token, 1);
    return vlm_text_forward(m, st, 1, pos, 1, 1, NULL);
}

static vlm_status host_logits(vlm_text_model *m, vlm_text_state *st, gen_scratch *s, float **out) {
    if (!s->logits_h) { /* CPU: device memory is host memory */
        *out = st->logits;
        return VLM_OK;
    }
    *out = s->logits_h;
    return vlm_to_host(m->be, s->logits_h, st->logits, (size_t)m->cfg.text.vocab * sizeof(float));
}

static int is_stop(const vlm_gen_request *r, int32_t id) {
    for (int i = 0; i < r->n_stop; i++)
        if (r->stop_ids[i] == id) return 1;
    return 0;
}

static vlm_status dump_request(vlm_text_model *m, const vlm_gen_request *r, const gen_scratch *s, const float *logits,
                               const vlm_gen_result *out) {
    vlm_dump *d = r->dump;
    int64_t L = r->n_ids, D = m->cfg.text.hidden, V = m->cfg.text.vocab;
    int64_t shp_ld[2] = {L, D}, shp_pos[2] = {3, L}, one = 1, gen = out->n_ids;
    int64_t delta = s->rope_delta;
    if (r->ids) VLM_TRY(vlm_dump_i32_as_i64(d, "input_ids", r->ids, 1, &L));
    VLM_TRY(vlm_dump_i32_as_i64(d, "position_ids", s->pos, 2, shp_pos));
    VLM_TRY(vlm_dump_i64(d, "rope_deltas", &delta, 1, &one));
    VLM_TRY(vlm_dump_f32_host(d, "inputs_embeds", s->dump_buf, 2, shp_ld));
    VLM_TRY(vlm_dump_f32_host(d, "decoder_layer0_out", s->dump_buf + L * D, 2, shp_ld));
    VLM_TRY(vlm_dump_f32_host(d, "final_norm_out", s->dump_buf + 2 * L * D, 2, shp_ld));
    VLM_TRY(vlm_dump_f32_host(d, "logits_last", logits, 1, &V));
    return vlm_dump_i32_as_i64(d, "generated_ids", out->ids, 1, &gen);
}

/* Prefill, then sample / decode until a stop condition. */
static vlm_status run(vlm_text_model *m, vlm_text_state *st, vlm_sampler *smp, const vlm_gen_request *r, gen_scratch *s,
                      vlm_gen_result *out, double t0) {
    VLM_TRY(prefill(m, st, r, s));
    float *logits;
    VLM_TRY(host_logits(m, st, s, &logits));
    if (r->dump) VLM_TRY(dump_request(m, r, s, logits, out)); /* before sampling changes the logits */
    out->stop = VLM_STOP_MAX_TOKENS;
    double t_first = vlm_now();
    out->prefill_s = t_first - t0;
    while (out->n_ids < r->max_new_tokens) {
        int32_t tok = vlm_sampler_sample(smp, logits);
        out->ids[out->n_ids++] = tok;
        vlm_sampler_accept(smp, &tok, 1);
        if (out->n_ids == 1) {
            t_first = vlm_now();
            out->first_token_s = t_first - t0;
            out->prefill_s = t_first - t0;
        }
        if (is_stop(r, tok)) {
            out->stop = VLM_STOP_EOS;
            break;
        }
        if (r->on_token && r->on_token(r->user, tok)) {
            out->stop = VLM_STOP_CALLBACK;
            break;
        }
        if (out->n_ids == r->max_new_tokens) break;
        VLM_TRY(decode_step(m, st, tok, s->rope_delta));
        VLM_TRY(host_logits(m, st, s, &logits));
    }
    out->decode_s = vlm_now() - t_first;
    if (r->dump) { /* the ids are known only now */
        int64_t gen = out->n_ids;
        VLM_TRY(vlm_dump_i32_as_i64(r->dump, "generated_ids", out->ids, 1, &gen));
    }
    return VLM_OK;
}

vlm_status vlm_text_generate(vlm_text_model *m, const vlm_gen_request *r, vlm_gen_result *out) {
    double t0 = vlm_now();
    memset(out, 0, sizeof *out);
    VLM_TRY(check_request(m, r));
    int L = r->n_ids, chunk = r->prefill_chunk > 0 ? r->prefill_chunk : DEFAULT_PREFILL_CHUNK;
    int rows = L < chunk ? L : chunk;
    /* the last chosen token is never run: the cache needs L + max_new - 1 positions */
    int capacity = L + (r->max_new_tokens > 1 ? r->max_new_tokens - 1 : 0);
    out->prompt_tokens = L;
    gen_scratch s = {0};
    vlm_text_state st;
    vlm_sampler *smp = NULL;
    vlm_status status = vlm_text_state_create(m, capacity, rows, &st); /* checks the memory first */
    if (status != VLM_OK) return vlm_err_ctx(status, "generating with the language model");
    out->kv_cache_bytes = st.kv_bytes;
    out->activation_bytes = st.act_bytes;
    out->ids = vlm_alloc(((size_t)r->max_new_tokens + 1) * sizeof *out->ids, "the generated ids");
    status = out->ids ? scratch_init(m, r, rows, &s) : VLM_ERR_NOMEM;
    if (status == VLM_OK) status = vlm_sampler_create(m->cfg.text.vocab, &r->sampling, &smp);
    if (status == VLM_OK) {
        if (r->ids) vlm_sampler_accept(smp, r->ids, L);
        status = run(m, &st, smp, r, &s, out, t0);
    }
    vlm_text_state_free(m, &st);
    vlm_sampler_free(smp);
    scratch_free(&s);
    if (status != VLM_OK) {
        vlm_gen_result_free(out);
        return vlm_err_ctx(status, "generating with the language model");
    }
    return VLM_OK;
}
