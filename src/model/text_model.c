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
 * Run state */

static float *carve(char **p, size_t floats) {
    float *r = (float *)*p;
    *p += padded((int64_t)floats) * sizeof(float);
    return r;
}

vlm_status vlm_text_state_create(vlm_text_model *m, int capacity, int max_rows, vlm_text_state *st) {
    memset(st, 0, sizeof *st);
    const vlm_text_config *t = &m->cfg.text;
    if (capacity < 1 || max_rows < 1 || max_rows > capacity)
        return vlm_err(VLM_ERR_INVALID, "language model: bad run state size (%d positions, %d rows per pass)", capacity,
                       max_rows);
    size_t R = (size_t)max_rows, D = (size_t)t->hidden, Q = (size_t)t->n_heads * t->head_dim;
    size_t I = (size_t)t->intermediate, half = (size_t)t->head_dim / 2;
    size_t act = padded((int64_t)(R * D)) * 2 + padded((int64_t)(R * Q)) * 2 + padded((int64_t)(R * I)) * 2 +
        padded(t->vocab) + padded((int64_t)(R * half)) * 2;
    st->act_bytes = act * sizeof(float);
    st->kv_bytes = vlm_text_kv_cache_bytes(&m->cfg, capacity);
    uint64_t avail = vlm_backend_available_memory(m->be);
    if (avail && st->kv_bytes + st->act_bytes > avail)
        return vlm_err(VLM_ERR_NOMEM,
                       "the KV cache for %d positions (%.2f GB) and activations (%.2f GB) exceed "
                       "the available memory (%.2f GB); ask for fewer tokens",
                       capacity, st->kv_bytes / 1e9, st->act_bytes / 1e9, avail / 1e9);
    st->capacity = capacity;
    st->max_rows = max_rows;
    st->act_block = vlm_dev_alloc(m->be, st->act_bytes, "language model activations");
    st->kv_block = st->act_block ? vlm_dev_alloc(m->be, st->kv_bytes, "the KV cache") : NULL;
    st->cos_h = vlm_alloc(R * half * sizeof(float) * 2, "rotary tables");
    if (!st->act_block || !st->kv_block || !st->cos_h) {
        vlm_status s = vlm_err_ctx(VLM_ERR_NOMEM, "KV cache for %d positions (%.2f GB)", capacity, st->kv_bytes / 1e9);
        vlm_text_state_free(m, st);
        return s;
    }
    st->sin_h = st->cos_h + R * half;
    char *p = st->act_block;
    st->x = carve(&p, R * D);
    st->xn = carve(&p, R * D);
    st->q = carve(&p, R * Q);
    st->att = carve(&p, R * Q);
    st->gate = carve(&p, R * I);
    st->up = carve(&p, R * I);
    st->logits = carve(&p, (size_t)t->vocab);
    st->cos = carve(&p, R * half);
    st->sin = carve(&p, R * half);
    st->k_cache = st->kv_block;
    st->v_cache = st->k_cache + st->kv_bytes / sizeof(float) / 2;
    return VLM_OK;
}

void vlm_text_state_free(vlm_text_model *m, vlm_text_state *st) {
    vlm_dev_free(m->be, st->act_block);
    vlm_dev_free(m->be, st->kv_block);
    vlm_free(st->cos_h);
    memset(st, 0, sizeof *st);
}

/* ---------------------------------------------------------------------------------------------
 * Inputs of a pass */

void vlm_text_embed(vlm_text_model *m, vlm_text_state *st, const int32_t *ids, int n) {
    vlm_embed(m->be, st->x, &m->embed, ids, n);
}

void vlm_text_set_rows(vlm_text_model *m, vlm_text_state *st, const float *embeds, int n) {
    vlm_copy(m->be, st->x, embeds, (size_t)n * m->cfg.text.hidden);
}

void vlm_text_scatter_image_rows(vlm_text_model *m, vlm_text_state *st, const int32_t *rows, const float *feats,
                                 int n) {
    if (n > 0) vlm_scatter_rows(m->be, st->x, rows, feats, n, m->cfg.text.hidden);
}

/* ---------------------------------------------------------------------------------------------
 * Forward pass */

/* x += o_proj(attention(rope(q), rope(k), v)) over rows of x; k and v go straight into the cache. */
static void attention_block(vlm_text_model *m, vlm_text_state *st, int l, int n) {
    vlm_backend *be = m->be;
    const vlm_text_config *t = &m->cfg.text;
    const vlm_text_layer *L = &m->layers[l];
    int D = t->hidden, Q = t->n_heads * t->head_dim, KV = t->n_kv_heads * t->head_dim;
    size_t layer_off = (size_t)l * st->capacity * KV;
    float *kc = st->k_cache + layer_off, *vc = st->v_cache + layer_off;
    float *k_new = kc + (size_t)st->n_past * KV, *v_new = vc + (size_t)st->n_past * KV;

    vlm_rmsnorm(be, st->xn, st->x, L->in_norm, n, D, t->rms_eps);
    vlm_matmul(be, st->q, st->xn, &L->q_w, L->q_b, n);
    vlm_matmul(be, k_new, st->xn, &L->k_w, L->k_b, n);
    vlm_matmul(be, v_new, st->xn, &L->v_w, L->v_b, n);
    vlm_rope(be, st->q, Q, st->cos, st->sin, n, t->n_heads, t->head_dim);
    vlm_rope(be, k_new, KV, st->cos, st->sin, n, t->n_kv_heads, t->head_dim);
    vlm_attn_params p = {.n_q = n,
                         .n_kv = st->n_past + n,
                         .q_pos0 = st->n_past,
                         .causal = 1,
                         .n_heads = t->n_heads,
                         .n_kv_heads = t->n_kv_heads,
                         .head_dim = t->head_dim,
                         .q_stride = Q,
                         .kv_stride = KV,
                         .out_stride = Q,
                         .scale = (float)pow((double)t->head_dim, -0.5)};
    vlm_attention(be, st->att, st->q, kc, vc, &p);
    vlm_matmul(be, st->xn, st->att, &L->o_w, NULL, n);
    vlm_add(be, st->x, st->xn, (size_t)n * D);
}

/* x += down(silu(gate(y)) * up(y)), y = RMSNorm(x) */
static void mlp_block(vlm_text_model *m, vlm_text_state *st, int l, int n) {
    vlm_backend *be = m->be;
    const vlm_text_config *t = &m->cfg.text;
    const vlm_text_layer *L = &m->layers[l];
    vlm_rmsnorm(be, st->xn, st->x, L->post_norm, n, t->hidden, t->rms_eps);
    vlm_matmul(be, st->gate, st->xn, &L->gate_w, NULL, n);
    vlm_matmul(be, st->up, st->xn, &L->up_w, NULL, n);
    vlm_swiglu(be, st->gate, st->gate, st->up, (size_t)n * t->intermediate);
    vlm_matmul(be, st->xn, st->gate, &L->down_w, NULL, n);
    vlm_add(be, st->x, st->xn, (size_t)n * t->hidden);
}

static vlm_status rotary_tables(vlm_text_model *m, vlm_text_state *st, int n, const int32_t *pos, int pos_stride) {
    int half = m->cfg.text.head_dim / 2;
    vlm_mrope_cos_sin(m->inv_freq, half, m->cfg.text.mrope_section, pos, pos_stride, n, st->cos_h, st->sin_h);
    VLM_TRY(vlm_to_device(m->be, st->cos, st->cos_h, (size_t)n * half * sizeof(float)));
    return vlm_to_device(m->be, st->sin, st->sin_h, (size_t)n * half * sizeof(float));
}

static vlm_status tap(vlm_backend *be, float *host, const float *dev, size_t floats) {
    if (!host) return VLM_OK;
    VLM_TRY(vlm_sync(be));
    return vlm_to_host(be, host, dev, floats * sizeof(float));
}

vlm_status vlm_text_forward(vlm_text_model *m, vlm_text_state *st, int n, const int32_t *pos, int pos_stride,
                            int want_logits, const vlm_text_taps *taps) {
    vlm_backend *be = m->be;
    const vlm_text_config *t = &m->cfg.text;
    static const vlm_text_taps no_taps;
    if (!taps) taps = &no_taps;
    if (n < 1 || n > st->max_rows || st->n_past + n > st->capacity)
        return vlm_err(VLM_ERR_INVALID,
                       "language model: %d rows at position %d do not fit the run state (%d rows "
                       "per pass, %d positions)",
                       n, st->n_past, st->max_rows, st->capacity);
    size_t D = (size_t)t->hidden;
    VLM_TRY(rotary_tables(m, st, n, pos, pos_stride));
    VLM_TRY(tap(be, taps->inputs_embeds, st->x, n * D));
    for (int l = 0; l < t->n_layers; l++) {
        attention_block(m, st, l, n);
        mlp_block(m, st, l, n);
        if (l == 0) VLM_TRY(tap(be, taps->layer0_out, st->x, n * D));
    }
    st->n_past += n;
    if (taps->final_norm_out) { /* every row, for the dump */
        vlm_rmsnorm(be, st->xn, st->x, m->norm, n, (int)D, t->rms_eps);
        VLM_TRY(tap(be, taps->final_norm_out, st->xn, n * D));
    } else if (want_logits) { /* the last row only */
        vlm_rmsnorm(be, st->xn + (n - 1) * D, st->x + (n - 1) * D, m->norm, 1, (int)D, t->rms_eps);
    }
    if (want_logits) vlm_matmul(be, st->logits, st->xn + (n - 1) * D, &m->lm_head, NULL, 1);
    return vlm_sync(be);
}
