/* The Qwen2 decoder: weights on the backend, the run state (KV cache + activations), the inputs of
 * a pass (embedding, image rows) and the forward pass of a batch of rows. Written once against the
 * backend interface. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "io/file.h"
#include "model/text_model_impl.h"

/* ---------------------------------------------------------------------------------------------
 * Weights */

const vlm_model_config *vlm_text_model_config(const vlm_text_model *m) { return &m->cfg; }
vlm_backend *vlm_text_model_backend(const vlm_text_model *m) { return m->be; }

uint64_t vlm_text_kv_cache_bytes(const vlm_model_config *cfg, int positions) {
    const vlm_text_config *t = &cfg->text;
    return 2ull * (uint64_t)t->n_layers * (uint64_t)positions * (uint64_t)t->n_kv_heads * t->head_dim * sizeof(float);
}

/* Vectors are packed into one block, each starting on a 64-byte boundary. */
static size_t padded(int64_t n) { return (size_t)(n + 15) / 16 * 16; }

typedef struct {
    const vlm_tensor *src;
    const float **dst;
} vec_slot;

static vlm_status upload_vectors(vlm_text_model *m, const vlm_text_weights *tw) {
    int n_slots = 5 * tw->n_layers + 1, k = 0;
    vec_slot *slots = vlm_calloc((size_t)n_slots, sizeof *slots, "the language model's vector table");
    if (!slots) return VLM_ERR_NOMEM;
    for (int l = 0; l < tw->n_layers; l++) {
        const vlm_text_layer_weights *W = &tw->layers[l];
        vlm_text_layer *L = &m->layers[l];
        slots[k++] = (vec_slot){&W->in_norm, &L->in_norm};
        slots[k++] = (vec_slot){&W->post_norm, &L->post_norm};
        slots[k++] = (vec_slot){&W->q_b, &L->q_b};
        slots[k++] = (vec_slot){&W->k_b, &L->k_b};
        slots[k++] = (vec_slot){&W->v_b, &L->v_b};
    }
    slots[k++] = (vec_slot){&tw->norm, &m->norm};
    size_t total = 0;
    for (int i = 0; i < n_slots; i++) total += padded(vlm_tensor_numel(slots[i].src));
    float *host = vlm_calloc(total, sizeof(float), "f32 norm weights and biases");
    vlm_status s = host ? VLM_OK : VLM_ERR_NOMEM;
    if (s == VLM_OK) {
        m->vecs = vlm_dev_alloc(m->be, total * sizeof(float), "f32 norm weights and biases");
        if (!m->vecs) s = VLM_ERR_NOMEM;
    }
    size_t off = 0;
    for (int i = 0; s == VLM_OK && i < n_slots; i++) {
        int64_t n = vlm_tensor_numel(slots[i].src);
        vlm_to_f32(slots[i].src->dtype, slots[i].src->data, host + off, (size_t)n);
        *slots[i].dst = m->vecs + off;
        off += padded(n);
    }
    if (s == VLM_OK) s = vlm_to_device(m->be, m->vecs, host, total * sizeof(float));
    vlm_free(host);
    free(slots);
    return s;
}

static vlm_status upload_matrices(vlm_text_model *m, const vlm_text_weights *tw) {
    vlm_backend *be = m->be;
    for (int l = 0; l < tw->n_layers; l++) {
        const vlm_text_layer_weights *W = &tw->layers[l];
        vlm_text_layer *L = &m->layers[l];
        const vlm_tensor *src[7] = {&W->q_w, &W->k_w, &W->v_w, &W->o_w, &W->gate_w, &W->up_w, &W->down_w};
        vlm_tensor *dst[7] = {&L->q_w, &L->k_w, &L->v_w, &L->o_w, &L->gate_w, &L->up_w, &L->down_w};
        for (int i = 0; i < 7; i++) VLM_TRY(be->ops->weight(be, src[i], dst[i]));
    }
    VLM_TRY(be->ops->weight(be, &tw->embed, &m->embed));
    if (m->cfg.text.tie_embeddings) m->lm_head = m->embed;
    else VLM_TRY(be->ops->weight(be, &tw->lm_head, &m->lm_head));
    return VLM_OK;
}

vlm_status vlm_text_model_create(vlm_backend *be, const vlm_model_config *cfg, const vlm_text_weights *tw,
                                 vlm_text_model **out) {
    *out = NULL;
    if (tw->n_layers != cfg->text.n_layers || !tw->layers)
        return vlm_err(VLM_ERR_INVALID, "language model: %d bound layers, the config has %d", tw->n_layers,
                       cfg->text.n_layers);
    if (cfg->text.head_dim / 2 > VLM_TEXT_MAX_HALF)
        return vlm_err(VLM_ERR_UNSUPPORTED, "language model: head_dim %d is larger than %d", cfg->text.head_dim,
                       2 * VLM_TEXT_MAX_HALF);
    vlm_text_model *m = vlm_calloc(1, sizeof *m, "the language model");
    if (!m) return VLM_ERR_NOMEM;
    m->be = be;
    m->cfg = *cfg;
    m->layers = vlm_calloc((size_t)tw->n_layers, sizeof *m->layers, "the language model's layers");
    vlm_status s = m->layers ? VLM_OK : VLM_ERR_NOMEM;
    if (s == VLM_OK) s = upload_matrices(m, tw);
    if (s == VLM_OK) s = upload_vectors(m, tw);
    if (s != VLM_OK) {
        vlm_text_model_free(m);
        return vlm_err_ctx(s, "language model on %s", be->name);
    }
    vlm_rope_inv_freq(cfg->text.rope_theta, cfg->text.head_dim, m->inv_freq);
    *out = m;
    return VLM_OK;
}

vlm_status vlm_text_model_open(vlm_backend *be, const char *dir, vlm_text_model **out) {
    *out = NULL;
    vlm_model_config cfg;
    VLM_TRY(vlm_config_load(dir, &cfg));
    vlm_safetensors *st = NULL;
    VLM_TRY(vlm_st_open(dir, &st));
    vlm_vision_weights vw;
    vlm_text_weights tw;
    vlm_status s = vlm_bind_weights(st, &cfg, 0, 1, &vw, &tw);
    if (s != VLM_OK) {
        vlm_st_close(st);
        return vlm_err_ctx(s, "%s", dir);
    }
    s = vlm_text_model_create(be, &cfg, &tw, out);
    vlm_text_weights_free(&tw); /* the model holds its own views; the mapping must stay */
    if (s != VLM_OK) {
        vlm_st_close(st);
        return vlm_err_ctx(s, "%s", dir);
    }
    (*out)->st = st;
    return VLM_OK;
}

void vlm_text_model_free(vlm_text_model *m) {
    if (!m) return;
    vlm_backend *be = m->be;
    if (m->layers)
        for (int l = 0; l < m->cfg.text.n_layers; l++) {
            vlm_text_layer *L = &m->layers[l];
            vlm_tensor *w[7] = {&L->q_w, &L->k_w, &L->v_w, &L->o_w, &L->gate_w, &L->up_w, &L->down_w};
            for (int i = 0; i < 7; i++)
                if (w[i]->data) be->ops->weight_free(be, w[i]);
        }
    if (m->lm_head.data && m->lm_head.data != m->embed.data) be->ops->weight_free(be, &m->lm_head);
    if (m->embed.data) be->ops->weight_free(be, &m->embed);
    vlm_dev_free(be, m->vecs);
    vlm_free(m->layers);
    vlm_st_close(m->st);
    vlm_free(m);
}

/* ---------------------------------------------------------------------------------------------
 * KV cache: a pool of blocks */

uint64_t vlm_kv_block_bytes(const vlm_model_config *cfg, int block_tokens) {
    return vlm_text_kv_cache_bytes(cfg, block_tokens);
}

vlm_status vlm_kv_pool_create(vlm_text_model *m, int n_blocks, int block_tokens, vlm_kv_pool *pool) {
    memset(pool, 0, sizeof *pool);
    if (n_blocks < 1 || block_tokens < 1 || (int64_t)n_blocks * block_tokens > INT32_MAX)
        return vlm_err(VLM_ERR_INVALID, "KV cache: bad pool size (%d blocks of %d positions)", n_blocks, block_tokens);
    uint64_t bytes = (uint64_t)n_blocks * vlm_kv_block_bytes(&m->cfg, block_tokens);
    {
        uint64_t avail = vlm_backend_available_memory(m->be);
        if (avail && bytes > avail)
            return vlm_err(VLM_ERR_NOMEM,
                           "the KV cache for %lld positions (%.2f GB) exceeds the available memory (%.2f GB); "
                           "ask for fewer tokens",
                           (long long)n_blocks * block_tokens, bytes / 1e9, avail / 1e9);
    }
    pool->k = vlm_dev_alloc(m->be, bytes, "the KV cache");
    if (!pool->k)
        return vlm_err_ctx(VLM_ERR_NOMEM, "KV cache for %lld positions (%.2f GB)", (long long)n_blocks * block_tokens,
                           bytes / 1e9);
    pool->v = pool->k + bytes / sizeof(float) / 2;
    pool->n_blocks = n_blocks;
    pool->block_tokens = block_tokens;
    pool->bytes = bytes;
    return VLM_OK;
}

void vlm_kv_pool_free(vlm_text_model *m, vlm_kv_pool *pool) {
    vlm_dev_free(m->be, pool->k);
    memset(pool, 0, sizeof *pool);
}

/* ---------------------------------------------------------------------------------------------
 * Activations of a pass */

static float *carve(char **p, size_t floats) {
    float *r = (float *)*p;
    *p += padded((int64_t)floats) * sizeof(float);
    return r;
}

vlm_status vlm_text_batch_create(vlm_text_model *m, int max_rows, int max_seqs, vlm_text_batch *b) {
    memset(b, 0, sizeof *b);
    const vlm_text_config *t = &m->cfg.text;
    if (max_rows < 1 || max_seqs < 1 || max_seqs > max_rows)
        return vlm_err(VLM_ERR_INVALID, "language model: bad pass size (%d rows, %d sequences)", max_rows, max_seqs);
    size_t R = (size_t)max_rows, S = (size_t)max_seqs, D = (size_t)t->hidden, Q = (size_t)t->n_heads * t->head_dim;
    size_t KV = (size_t)t->n_kv_heads * t->head_dim, I = (size_t)t->intermediate, half = (size_t)t->head_dim / 2;
    size_t act = padded((int64_t)(R * D)) * 2 + padded((int64_t)(R * Q)) * 2 + padded((int64_t)(R * KV)) * 2 +
        padded((int64_t)(R * I)) * 2 + padded((int64_t)(S * D)) * 2 + padded((int64_t)(S * t->vocab)) +
        padded((int64_t)(R * half)) * 2;
    b->act_bytes = act * sizeof(float);
    b->max_rows = max_rows;
    b->max_seqs = max_seqs;
    b->act_block = vlm_dev_alloc(m->be, b->act_bytes, "language model activations");
    b->cos_h = vlm_alloc(R * half * sizeof(float) * 2, "rotary tables");
    b->slots = vlm_alloc(R * sizeof *b->slots, "KV cache slots of a pass");
    b->last_rows = vlm_alloc(S * sizeof *b->last_rows, "rows with logits");
    int host = vlm_backend_host_memory(m->be);
    if (!host) b->logits_h = vlm_alloc(S * t->vocab * sizeof(float), "host logits");
    if (!b->act_block || !b->cos_h || !b->slots || !b->last_rows || (!host && !b->logits_h)) {
        vlm_text_batch_free(m, b);
        return VLM_ERR_NOMEM;
    }
    b->sin_h = b->cos_h + R * half;
    char *p = b->act_block;
    b->x = carve(&p, R * D);
    b->xn = carve(&p, R * D);
    b->q = carve(&p, R * Q);
    b->att = carve(&p, R * Q);
    b->k = carve(&p, R * KV);
    b->v = carve(&p, R * KV);
    b->gate = carve(&p, R * I);
    b->up = carve(&p, R * I);
    b->last = carve(&p, S * D);
    b->last_norm = carve(&p, S * D);
    b->logits = carve(&p, S * t->vocab);
    b->cos = carve(&p, R * half);
    b->sin = carve(&p, R * half);
    return VLM_OK;
}

void vlm_text_batch_free(vlm_text_model *m, vlm_text_batch *b) {
    vlm_dev_free(m->be, b->act_block);
    vlm_free(b->cos_h);
    vlm_free(b->slots);
    vlm_free(b->last_rows);
    vlm_free(b->logits_h);
    memset(b, 0, sizeof *b);
}

/* ---------------------------------------------------------------------------------------------
 * Inputs of a pass */

void vlm_text_embed(vlm_text_model *m, vlm_text_batch *b, int row0, const int32_t *ids, int n) {
    vlm_embed(m->be, b->x + (size_t)row0 * m->cfg.text.hidden, &m->embed, ids, n);
}

void vlm_text_set_rows(vlm_text_model *m, vlm_text_batch *b, int row0, const float *embeds, int n) {
    size_t D = (size_t)m->cfg.text.hidden;
    vlm_copy(m->be, b->x + (size_t)row0 * D, embeds, (size_t)n * D);
}

void vlm_text_scatter_image_rows(vlm_text_model *m, vlm_text_batch *b, const int32_t *rows, const float *feats, int n) {
    if (n > 0) vlm_scatter_rows(m->be, b->x, rows, feats, n, m->cfg.text.hidden);
}

/* ---------------------------------------------------------------------------------------------
 * Forward pass */

/* x += o_proj(attention(rope(q), rope(k), v)) over the pass's rows; each row's key and value go
 * to its slot of the pool, then each sequence attends its own cache through its block table. */
static void attention_block(vlm_text_model *m, vlm_text_batch *b, vlm_kv_pool *pool, const vlm_text_seq *seqs,
                            int n_seqs, int l, int R) {
    vlm_backend *be = m->be;
    const vlm_text_config *t = &m->cfg.text;
    const vlm_text_layer *L = &m->layers[l];
    int D = t->hidden, Q = t->n_heads * t->head_dim, KV = t->n_kv_heads * t->head_dim;
    size_t layer_off = (size_t)l * pool->n_blocks * pool->block_tokens * KV;
    float *kc = pool->k + layer_off, *vc = pool->v + layer_off;

    vlm_rmsnorm(be, b->xn, b->x, L->in_norm, R, D, t->rms_eps);
    vlm_matmul(be, b->q, b->xn, &L->q_w, L->q_b, R);
    vlm_matmul(be, b->k, b->xn, &L->k_w, L->k_b, R);
    vlm_matmul(be, b->v, b->xn, &L->v_w, L->v_b, R);
    vlm_rope(be, b->q, Q, b->cos, b->sin, R, t->n_heads, t->head_dim);
    vlm_rope(be, b->k, KV, b->cos, b->sin, R, t->n_kv_heads, t->head_dim);
    vlm_scatter_rows(be, kc, b->slots, b->k, R, KV);
    vlm_scatter_rows(be, vc, b->slots, b->v, R, KV);
    float scale = (float)pow((double)t->head_dim, -0.5);
    for (int i = 0, row0 = 0; i < n_seqs; row0 += seqs[i].n, i++) {
        const vlm_text_seq *sq = &seqs[i];
        vlm_attn_params p = {.n_q = sq->n,
                             .n_kv = sq->n_past + sq->n,
                             .q_pos0 = sq->n_past,
                             .causal = 1,
                             .n_heads = t->n_heads,
                             .n_kv_heads = t->n_kv_heads,
                             .head_dim = t->head_dim,
                             .q_stride = Q,
                             .kv_stride = KV,
                             .out_stride = Q,
                             .scale = scale,
                             .kv_blocks = sq->blocks,
                             .kv_block_size = pool->block_tokens};
        vlm_attention(be, b->att + (size_t)row0 * Q, b->q + (size_t)row0 * Q, kc, vc, &p);
    }
    vlm_matmul(be, b->xn, b->att, &L->o_w, NULL, R);
    vlm_add(be, b->x, b->xn, (size_t)R * D);
}

/* x += down(silu(gate(y)) * up(y)), y = RMSNorm(x) */
static void mlp_block(vlm_text_model *m, vlm_text_batch *b, int l, int R) {
    vlm_backend *be = m->be;
    const vlm_text_config *t = &m->cfg.text;
    const vlm_text_layer *L = &m->layers[l];
    vlm_rmsnorm(be, b->xn, b->x, L->post_norm, R, t->hidden, t->rms_eps);
    vlm_matmul(be, b->gate, b->xn, &L->gate_w, NULL, R);
    vlm_matmul(be, b->up, b->xn, &L->up_w, NULL, R);
    vlm_swiglu(be, b->gate, b->gate, b->up, (size_t)R * t->intermediate);
    vlm_matmul(be, b->xn, b->gate, &L->down_w, NULL, R);
    vlm_add(be, b->x, b->xn, (size_t)R * t->hidden);
}

static vlm_status rotary_tables(vlm_text_model *m, vlm_text_batch *b, int R, const int32_t *pos, int pos_stride) {
    int half = m->cfg.text.head_dim / 2;
    vlm_mrope_cos_sin(m->inv_freq, half, m->cfg.text.mrope_section, pos, pos_stride, R, b->cos_h, b->sin_h);
    VLM_TRY(vlm_to_device(m->be, b->cos, b->cos_h, (size_t)R * half * sizeof(float)));
    return vlm_to_device(m->be, b->sin, b->sin_h, (size_t)R * half * sizeof(float));
}

/* Copies each tapped sequence's rows of src (device, rows of D floats) to its host destination. */
enum { TAP_INPUTS, TAP_LAYER0, TAP_FINAL };
static vlm_status taps(vlm_text_model *m, const vlm_text_seq *seqs, int n_seqs, int which, const float *src) {
    size_t D = (size_t)m->cfg.text.hidden;
    for (int i = 0, row0 = 0; i < n_seqs; row0 += seqs[i].n, i++) {
        const vlm_text_taps *tp = seqs[i].taps;
        float *dst = !tp          ? NULL
            : which == TAP_INPUTS ? tp->inputs_embeds
            : which == TAP_LAYER0 ? tp->layer0_out
                                  : tp->final_norm_out;
        if (!dst) continue;
        VLM_TRY(vlm_sync(m->be));
        VLM_TRY(vlm_to_host(m->be, dst, src + (size_t)row0 * D, (size_t)seqs[i].n * D * sizeof(float)));
    }
    return VLM_OK;
}

/* Checks the pass against its buffers and the pool, and fills the slots of its rows. */
static vlm_status plan_pass(vlm_text_model *m, vlm_text_batch *b, const vlm_kv_pool *pool, const vlm_text_seq *seqs,
                            int n_seqs, int *rows, int *n_logits, int *any_final) {
    int R = 0, nl = 0, B = pool->block_tokens;
    *any_final = 0;
    for (int i = 0; i < n_seqs; i++) {
        const vlm_text_seq *sq = &seqs[i];
        if (sq->n < 1 || sq->n_past < 0 || R + sq->n > b->max_rows || !sq->blocks)
            return vlm_err(VLM_ERR_INVALID,
                           "language model: sequence %d of the pass (%d rows after %d) does not fit the pass "
                           "(%d rows at most)",
                           i, sq->n, R, b->max_rows);
        for (int r = 0; r < sq->n; r++) {
            int p = sq->n_past + r, blk = sq->blocks[p / B];
            if (blk < 0 || blk >= pool->n_blocks)
                return vlm_err(VLM_ERR_INVALID,
                               "language model: position %d of sequence %d is in block %d, outside "
                               "the KV cache's %d blocks",
                               p, i, blk, pool->n_blocks);
            b->slots[R + r] = blk * B + p % B;
        }
        R += sq->n;
        if (sq->want_logits) {
            if (nl == b->max_seqs)
                return vlm_err(VLM_ERR_INVALID, "language model: more than %d sequences want logits", b->max_seqs);
            b->last_rows[nl++] = R - 1;
        }
        if (sq->taps && sq->taps->final_norm_out) *any_final = 1;
    }
    if (R < 1) return vlm_err(VLM_ERR_INVALID, "language model: an empty pass");
    *rows = R;
    *n_logits = nl;
    return VLM_OK;
}

vlm_status vlm_text_forward(vlm_text_model *m, vlm_text_batch *b, vlm_kv_pool *pool, const vlm_text_seq *seqs,
                            int n_seqs, const int32_t *pos, int pos_stride) {
    vlm_backend *be = m->be;
    const vlm_text_config *t = &m->cfg.text;
    int R = 0, nl = 0, any_final = 0, D = t->hidden;
    VLM_TRY(plan_pass(m, b, pool, seqs, n_seqs, &R, &nl, &any_final));
    VLM_TRY(rotary_tables(m, b, R, pos, pos_stride));
    VLM_TRY(taps(m, seqs, n_seqs, TAP_INPUTS, b->x));
    for (int l = 0; l < t->n_layers; l++) {
        attention_block(m, b, pool, seqs, n_seqs, l, R);
        mlp_block(m, b, l, R);
        if (l == 0) VLM_TRY(taps(m, seqs, n_seqs, TAP_LAYER0, b->x));
    }
    if (any_final) { /* every row of the tapped sequences, for the dump */
        vlm_rmsnorm(be, b->xn, b->x, m->norm, R, D, t->rms_eps);
        VLM_TRY(taps(m, seqs, n_seqs, TAP_FINAL, b->xn));
    }
    b->n_logits = nl;
    if (nl) { /* the last row of each sequence that wants logits */
        vlm_gather_rows(be, b->last, b->x, b->last_rows, nl, D);
        vlm_rmsnorm(be, b->last_norm, b->last, m->norm, nl, D, t->rms_eps);
        vlm_matmul(be, b->logits, b->last_norm, &m->lm_head, NULL, nl);
    }
    VLM_TRY(vlm_sync(be));
    if (nl && b->logits_h) VLM_TRY(vlm_to_host(be, b->logits_h, b->logits, (size_t)nl * t->vocab * sizeof(float)));
    return VLM_OK;
}

float *vlm_text_logits(const vlm_text_model *m, const vlm_text_batch *b, int i) {
    return (b->logits_h ? b->logits_h : b->logits) + (size_t)i * m->cfg.text.vocab;
}
