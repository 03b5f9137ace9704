#include "model/weights.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "tensor/quant.h"

const char *vlm_vision_prefix(vlm_naming n) { return n == VLM_NAMES_NESTED ? "model.visual." : "visual."; }
const char *vlm_text_prefix(vlm_naming n) { return n == VLM_NAMES_NESTED ? "model.language_model." : "model."; }

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

vlm_status vlm_detect_parts(const vlm_safetensors *st, vlm_checkpoint_parts *parts) {
    int legacy_v = 0, nested_v = 0, legacy_t = 0, nested_t = 0, head = 0;
    for (int i = 0; i < st->n_entries; i++) {
        const char *n = st->entries[i].name;
        if (has_prefix(n, "visual.")) legacy_v = 1;
        else if (has_prefix(n, "model.visual.")) nested_v = 1;
        else if (has_prefix(n, "model.language_model.")) nested_t = 1;
        else if (has_prefix(n, "model.")) legacy_t = 1;
        else if (has_prefix(n, "lm_head.")) head = 1; /* the same name in both schemes */
    }
    if ((legacy_v || legacy_t) && (nested_v || nested_t))
        return vlm_err(VLM_ERR_FORMAT,
                       "checkpoint mixes the two naming schemes (visual.*, model.layers.* and "
                       "model.visual.*, model.language_model.*)");
    legacy_t |= head && !nested_v && !nested_t;
    parts->has_vision = legacy_v || nested_v;
    parts->has_text = legacy_t || nested_t || head;
    parts->naming = (nested_v || nested_t) ? VLM_NAMES_NESTED : VLM_NAMES_LEGACY;
    if (!parts->has_vision && !parts->has_text)
        return vlm_err(VLM_ERR_FORMAT, "checkpoint has neither vision (visual.*) nor language (model.*) tensors");
    return VLM_OK;
}

/* Binding context: marks each tensor of the file as used. */
typedef struct {
    const vlm_safetensors *st;
    unsigned char *used;
    vlm_tensor_visitor visit; /* enumerate mode: report names and shapes, bind nothing */
    void *visit_ctx;
} binder;

static vlm_status bind(binder *b, vlm_tensor *out, int ndim, const int64_t *shape, const char *fmt, ...)
    VLM_PRINTF(5, 6);

static vlm_status bind(binder *b, vlm_tensor *out, int ndim, const int64_t *shape, const char *fmt, ...) {
    char name[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (b->visit) {
        b->visit(b->visit_ctx, name, ndim, shape);
        out->ndim = ndim;
        for (int i = 0; i < ndim; i++) out->shape[i] = shape[i];
        return VLM_OK;
    }
    const vlm_st_entry *e = vlm_st_find(b->st, name);
    if (!e) return vlm_err(VLM_ERR_NOT_FOUND, "missing tensor %s", name);
    if (e->dtype == VLM_DT_U8) { /* a quantized checkpoint (runtime/quantize.h) */
        VLM_TRY(vlm_quant_bind(b->st, e, ndim, shape, out));
        b->used[e - b->st->entries] = 1;
        return VLM_OK;
    }
    if (e->dtype != VLM_DT_F32 && e->dtype != VLM_DT_F16 && e->dtype != VLM_DT_BF16)
        return vlm_err(VLM_ERR_UNSUPPORTED, "tensor %s has dtype %s; weights must be F32, F16 or BF16", name,
                       vlm_dtype_name(e->dtype));
    int ok = e->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = e->shape[i] == shape[i];
    if (!ok) {
        vlm_tensor t = vlm_st_tensor(e), w = {.ndim = ndim};
        for (int i = 0; i < ndim; i++) w.shape[i] = shape[i];
        char s1[96], s2[96];
        return vlm_err(VLM_ERR_FORMAT, "tensor %s has shape %s, the config implies %s", name,
                       vlm_shape_str(&t, s1, sizeof s1), vlm_shape_str(&w, s2, sizeof s2));
    }
    *out = vlm_st_tensor(e);
    out->ndim = ndim;
    for (int i = 0; i < ndim; i++) out->shape[i] = shape[i];
    b->used[e - b->st->entries] = 1;
    return VLM_OK;
}

#define V1(n) ((int64_t[]){(n)})
#define V2(a, c) ((int64_t[]){(a), (c)})

static vlm_status bind_text(binder *b, const vlm_model_config *cfg, vlm_naming nm, vlm_text_weights *tw) {
    const vlm_text_config *t = &cfg->text;
    const char *p = vlm_text_prefix(nm);
    int64_t D = t->hidden, Q = (int64_t)t->n_heads * t->head_dim, KV = (int64_t)t->n_kv_heads * t->head_dim,
            I = t->intermediate;
    memset(tw, 0, sizeof *tw);
    tw->layers = vlm_calloc((size_t)t->n_layers, sizeof *tw->layers, "the language model's layer weights");
    if (!tw->layers) return VLM_ERR_NOMEM;
    tw->n_layers = t->n_layers;
    VLM_TRY(bind(b, &tw->embed, 2, V2(t->vocab, D), "%sembed_tokens.weight", p));
    VLM_TRY(bind(b, &tw->norm, 1, V1(D), "%snorm.weight", p));
    for (int l = 0; l < t->n_layers; l++) {
        vlm_text_layer_weights *L = &tw->layers[l];
        VLM_TRY(bind(b, &L->in_norm, 1, V1(D), "%slayers.%d.input_layernorm.weight", p, l));
        VLM_TRY(bind(b, &L->post_norm, 1, V1(D), "%slayers.%d.post_attention_layernorm.weight", p, l));
        VLM_TRY(bind(b, &L->q_w, 2, V2(Q, D), "%slayers.%d.self_attn.q_proj.weight", p, l));
        VLM_TRY(bind(b, &L->q_b, 1, V1(Q), "%slayers.%d.self_attn.q_proj.bias", p, l));
        VLM_TRY(bind(b, &L->k_w, 2, V2(KV, D), "%slayers.%d.self_attn.k_proj.weight", p, l));
        VLM_TRY(bind(b, &L->k_b, 1, V1(KV), "%slayers.%d.self_attn.k_proj.bias", p, l));
        VLM_TRY(bind(b, &L->v_w, 2, V2(KV, D), "%slayers.%d.self_attn.v_proj.weight", p, l));
        VLM_TRY(bind(b, &L->v_b, 1, V1(KV), "%slayers.%d.self_attn.v_proj.bias", p, l));
        VLM_TRY(bind(b, &L->o_w, 2, V2(D, Q), "%slayers.%d.self_attn.o_proj.weight", p, l));
        VLM_TRY(bind(b, &L->gate_w, 2, V2(I, D), "%slayers.%d.mlp.gate_proj.weight", p, l));
        VLM_TRY(bind(b, &L->up_w, 2, V2(I, D), "%slayers.%d.mlp.up_proj.weight", p, l));
        VLM_TRY(bind(b, &L->down_w, 2, V2(D, I), "%slayers.%d.mlp.down_proj.weight", p, l));
    }
    if (t->tie_embeddings) {
        tw->lm_head = tw->embed;
        const vlm_st_entry *head = b->st ? vlm_st_find(b->st, "lm_head.weight") : NULL;
        if (head) b->used[head - b->st->entries] = 1; /* a redundant copy some exporters write */
    } else {
        VLM_TRY(bind(b, &tw->lm_head, 2, V2(t->vocab, D), "lm_head.weight"));
    }
    return VLM_OK;
}

static vlm_status bind_vision(binder *b, const vlm_model_config *cfg, vlm_naming nm, vlm_vision_weights *vw) {
    const vlm_vision_config *v = &cfg->vision;
    const char *p = vlm_vision_prefix(nm);
    int is25 = cfg->family == VLM_FAMILY_QWEN2_5_VL;
    int64_t W = v->width, F = v->mlp_hidden, M4 = (int64_t)W * v->merge_size * v->merge_size;
    int64_t patch = (int64_t)v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
    memset(vw, 0, sizeof *vw);
    vw->blocks = vlm_calloc((size_t)v->depth, sizeof *vw->blocks, "the vision tower's block weights");
    if (!vw->blocks) return VLM_ERR_NOMEM;
    vw->n_blocks = v->depth;
    /* the Conv3d kernel [W, C, T, P, P], used as the matrix [W, C*T*P*P] */
    VLM_TRY(bind(b, &vw->patch_embed, 5,
                 ((int64_t[]){W, v->in_channels, v->temporal_patch_size, v->patch_size, v->patch_size}),
                 "%spatch_embed.proj.weight", p));
    vw->patch_embed.ndim = 2;
    vw->patch_embed.shape[1] = patch;
    for (int i = 0; i < v->depth; i++) {
        vlm_vision_block_weights *B = &vw->blocks[i];
        VLM_TRY(bind(b, &B->norm1_w, 1, V1(W), "%sblocks.%d.norm1.weight", p, i));
        VLM_TRY(bind(b, &B->norm2_w, 1, V1(W), "%sblocks.%d.norm2.weight", p, i));
        VLM_TRY(bind(b, &B->qkv_w, 2, V2(3 * W, W), "%sblocks.%d.attn.qkv.weight", p, i));
        VLM_TRY(bind(b, &B->qkv_b, 1, V1(3 * W), "%sblocks.%d.attn.qkv.bias", p, i));
        VLM_TRY(bind(b, &B->proj_w, 2, V2(W, W), "%sblocks.%d.attn.proj.weight", p, i));
        VLM_TRY(bind(b, &B->proj_b, 1, V1(W), "%sblocks.%d.attn.proj.bias", p, i));
        if (is25) {
            VLM_TRY(bind(b, &B->gate_w, 2, V2(F, W), "%sblocks.%d.mlp.gate_proj.weight", p, i));
            VLM_TRY(bind(b, &B->gate_b, 1, V1(F), "%sblocks.%d.mlp.gate_proj.bias", p, i));
            VLM_TRY(bind(b, &B->up_w, 2, V2(F, W), "%sblocks.%d.mlp.up_proj.weight", p, i));
            VLM_TRY(bind(b, &B->up_b, 1, V1(F), "%sblocks.%d.mlp.up_proj.bias", p, i));
            VLM_TRY(bind(b, &B->down_w, 2, V2(W, F), "%sblocks.%d.mlp.down_proj.weight", p, i));
            VLM_TRY(bind(b, &B->down_b, 1, V1(W), "%sblocks.%d.mlp.down_proj.bias", p, i));
        } else {
            VLM_TRY(bind(b, &B->norm1_b, 1, V1(W), "%sblocks.%d.norm1.bias", p, i));
            VLM_TRY(bind(b, &B->norm2_b, 1, V1(W), "%sblocks.%d.norm2.bias", p, i));
            VLM_TRY(bind(b, &B->fc1_w, 2, V2(F, W), "%sblocks.%d.mlp.fc1.weight", p, i));
            VLM_TRY(bind(b, &B->fc1_b, 1, V1(F), "%sblocks.%d.mlp.fc1.bias", p, i));
            VLM_TRY(bind(b, &B->down_w, 2, V2(W, F), "%sblocks.%d.mlp.fc2.weight", p, i));
            VLM_TRY(bind(b, &B->down_b, 1, V1(W), "%sblocks.%d.mlp.fc2.bias", p, i));
        }
    }
    VLM_TRY(bind(b, &vw->merger_norm_w, 1, V1(W), "%smerger.ln_q.weight", p));
    if (!is25) VLM_TRY(bind(b, &vw->merger_norm_b, 1, V1(W), "%smerger.ln_q.bias", p));
    VLM_TRY(bind(b, &vw->merger_fc1_w, 2, V2(M4, M4), "%smerger.mlp.0.weight", p));
    VLM_TRY(bind(b, &vw->merger_fc1_b, 1, V1(M4), "%smerger.mlp.0.bias", p));
    VLM_TRY(bind(b, &vw->merger_fc2_w, 2, V2(v->out_hidden, M4), "%smerger.mlp.2.weight", p));
    VLM_TRY(bind(b, &vw->merger_fc2_b, 1, V1(v->out_hidden), "%smerger.mlp.2.bias", p));
    return VLM_OK;
}

vlm_status vlm_bind_weights(const vlm_safetensors *st, const vlm_model_config *cfg, int want_vision, int want_text,
                            vlm_vision_weights *vw, vlm_text_weights *tw) {
    memset(vw, 0, sizeof *vw);
    memset(tw, 0, sizeof *tw);
    vlm_checkpoint_parts parts;
    VLM_TRY(vlm_detect_parts(st, &parts));
    binder b = {.st = st, .used = vlm_calloc((size_t)st->n_entries + 1, 1, "the binder's tensor marks")};
    if (!b.used) return VLM_ERR_NOMEM;
    vlm_status s = VLM_OK;
    if (want_vision) {
        s = bind_vision(&b, cfg, parts.naming, vw);
        if (s != VLM_OK) vlm_err_ctx(s, "vision tower");
    }
    if (s == VLM_OK && want_text) {
        s = bind_text(&b, cfg, parts.naming, tw);
        if (s != VLM_OK) vlm_err_ctx(s, "language model");
    }
    /* Tensors of a part not asked for are fine (a language-only load of a full checkpoint);
     * anything else left over is unexpected. */
    for (int i = 0; s == VLM_OK && i < st->n_entries; i++) {
        if (b.used[i]) continue;
        const char *n = st->entries[i].name;
        int is_vision = has_prefix(n, vlm_vision_prefix(parts.naming));
        if ((is_vision && !want_vision) || (!is_vision && !want_text)) continue;
        s = vlm_err(VLM_ERR_FORMAT, "unexpected tensor %s (not part of a %s model as configured)", n,
                    vlm_family_name(cfg->family));
    }
    free(b.used);
    if (s != VLM_OK) {
        vlm_vision_weights_free(vw);
        vlm_text_weights_free(tw);
    }
    return s;
}

void vlm_text_weights_free(vlm_text_weights *tw) {
    free(tw->layers);
    memset(tw, 0, sizeof *tw);
}

void vlm_vision_weights_free(vlm_vision_weights *vw) {
    free(vw->blocks);
    memset(vw, 0, sizeof *vw);
}

int64_t vlm_vision_param_count(const vlm_model_config *cfg) {
    const vlm_vision_config *v = &cfg->vision;
    int is25 = cfg->family == VLM_FAMILY_QWEN2_5_VL;
    int64_t W = v->width, F = v->mlp_hidden, M4 = W * v->merge_size * v->merge_size;
    int64_t patch = (int64_t)v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
    int64_t block =
        (is25 ? 2 * W : 4 * W) + 3 * W * W + 3 * W + W * W + W + (is25 ? 3 * F * W + 2 * F + W : 2 * F * W + F + W);
    int64_t merger = (is25 ? W : 2 * W) + M4 * M4 + M4 + (int64_t)v->out_hidden * M4 + v->out_hidden;
    return W * patch + v->depth * block + merger;
}

int64_t vlm_text_param_count(const vlm_model_config *cfg) {
    const vlm_text_config *t = &cfg->text;
    int64_t D = t->hidden, Q = (int64_t)t->n_heads * t->head_dim, KV = (int64_t)t->n_kv_heads * t->head_dim,
            I = t->intermediate;
    int64_t layer = 2 * D + Q * D + Q + 2 * (KV * D + KV) + D * Q + 3 * I * D;
    int64_t emb = (int64_t)t->vocab * D;
    return emb + t->n_layers * layer + D + (t->tie_embeddings ? 0 : emb);
}

vlm_status vlm_enumerate_weights(const vlm_model_config *cfg, vlm_naming naming, int vision, int text,
                                 vlm_tensor_visitor visit, void *ctx) {
    binder b = {.visit = visit, .visit_ctx = ctx};
    vlm_vision_weights vw = {0};
    vlm_text_weights tw = {0};
    vlm_status s = VLM_OK;
    if (vision) s = bind_vision(&b, cfg, naming, &vw);
    if (s == VLM_OK && text) s = bind_text(&b, cfg, naming, &tw);
    vlm_vision_weights_free(&vw);
    vlm_text_weights_free(&tw);
    return s;
}

/* ---- quantized tensors (written by runtime/quantize.c) ---- */
vlm_status vlm_quant_bind(const vlm_safetensors *st, const vlm_st_entry *e, int ndim, const int64_t *shape,
                          vlm_tensor *out) {
    char key[600];
    snprintf(key, sizeof key, "quant:%s", e->name);
    const char *tag = vlm_st_meta(st, e, key);
    vlm_dtype t;
    if (!tag)
        return vlm_err(VLM_ERR_FORMAT,
                       "tensor %s is stored as U8 without a quantization format (no \"%s\" in the __metadata__ of "
                       "its file)",
                       e->name, key);
    if (vlm_quant_from_tag(tag, &t) != 0)
        return vlm_err(VLM_ERR_FORMAT, "tensor %s has unknown quantization format '%s' (known: %s)", e->name, tag,
                       vlm_quant_known_tags());
    if (ndim != 2)
        return vlm_err(VLM_ERR_FORMAT,
                       "tensor %s is quantized (%s) but the model needs a %d-D tensor there; only "
                       "matrices can be quantized",
                       e->name, tag, ndim);
    if (e->ndim != 2)
        return vlm_err(VLM_ERR_FORMAT,
                       "tensor %s: a quantized tensor is stored as U8 [rows, bytes per row], found "
                       "%d dimensions",
                       e->name, e->ndim);
    if (e->shape[0] != shape[0])
        return vlm_err(VLM_ERR_FORMAT, "tensor %s has %lld rows, the config implies %lld", e->name,
                       (long long)e->shape[0], (long long)shape[0]);
    int64_t K = shape[1], bk = vlm_dtype_block(t), bs = (int64_t)vlm_dtype_size(t), bpr = e->shape[1];
    if (K % bk)
        return vlm_err(VLM_ERR_FORMAT,
                       "tensor %s: rows of %lld weights (from the config) cannot be %s, whose blocks "
                       "hold %lld",
                       e->name, (long long)K, tag, (long long)bk);
    if (bpr % bs)
        return vlm_err(VLM_ERR_FORMAT,
                       "tensor %s: %lld bytes per row is not a whole number of %lld-byte %s blocks "
                       "(truncated or padded rows)",
                       e->name, (long long)bpr, (long long)bs, tag);
    if (bpr / bs != K / bk)
        return vlm_err(VLM_ERR_FORMAT,
                       "tensor %s has %lld %s blocks per row (%lld weights), the config implies %lld "
                       "(%lld weights)",
                       e->name, (long long)(bpr / bs), tag, (long long)(bpr / bs * bk), (long long)(K / bk),
                       (long long)K);
    *out = (vlm_tensor){.dtype = t, .ndim = 2, .shape = {shape[0], K}, .data = (void *)e->data, .nbytes = e->nbytes};
    return VLM_OK;
}
