/* The vision tower as an ONNX graph (opset 17, standard ops only), both families:
 *   Qwen2.5-VL: RMSNorm, SwiGLU MLP with biases, window attention except fullatt_block_indexes;
 *   Qwen2-VL:   LayerNorm, QuickGELU MLP, full attention everywhere.
 *
 * Hidden states stay in the image processor's patch order from start to end. Transformers permutes
 * them into window order before block 0 and back after the merger; since every op except attention
 * works row by row and the merger groups the same 4 patches in either order, only attention needs
 * the windows: in a window block q/k/v rows are gathered into [windows, 64] slots (padding slots
 * masked as keys), attended, and the output rows gathered back. The result equals transformers'
 * up to float summation order, with no permutation at the end. */
#include "runtime/onnx/export_vision.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define FLOAT_T ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT

typedef struct {
    vlm_ox_graph *g;
    const vlm_model_config *cfg;
    const vlm_vision_weights *w;
    int is25;
    int64_t D, heads, hd;
    int64_t slots;            /* patches per attention window (64) */
    const char *cos, *sin;    /* [N, 1, hd] */
    const char *frames_shape; /* [4]: (t, -1, heads, hd), full attention per frame */
    const char *win_gather;   /* [windows*slots] patch index of each slot (0 for padding) */
    const char *win_scatter;  /* [N] slot of each patch */
    const char *win_mask;     /* [windows, 1, 1, slots] 0 or -1e30 (padding keys) */
} vision_graph;

static const char *c64(vision_graph *v, int64_t x) { return vlm_ox_i64_scalar(v->g, x); }

/* Per-patch rotary tables and (Qwen2.5-VL) window indices, from image_grid_thw. Integer index
 * math mirrors transformers' rot_pos_emb / get_window_index; see the file comment. */
static void build_indices(vision_graph *v, int window_merged) {
    vlm_ox_graph *g = v->g;
    const char *grid = OP(g, "Reshape", "image_grid_thw", I64S(g, 3));
    const char *t = OPA(g, "Gather", ATTRS(AI("axis", 0)), grid, c64(v, 0));
    const char *h = OPA(g, "Gather", ATTRS(AI("axis", 0)), grid, c64(v, 1));
    const char *w = OPA(g, "Gather", ATTRS(AI("axis", 0)), grid, c64(v, 2));
    int64_t ms = v->cfg->vision.merge_size, mm = ms * ms;
    const char *H = OP(g, "Div", h, c64(v, ms)), *W = OP(g, "Div", w, c64(v, ms));
    const char *HW = OP(g, "Mul", H, W);
    const char *n = OP(g, "Mul", OP(g, "Mul", t, HW), c64(v, mm));
    v->frames_shape =
        OPA(g, "Concat", ATTRS(AI("axis", 0)), OP(g, "Unsqueeze", t, I64S(g, 0)), I64S(g, -1, v->heads, v->hd));

    /* patch p = ((f*H + i)*W + j)*mm + di*ms + dj: merged token m = p / mm at (i, j) of frame f */
    const char *p = OP(g, "Range", c64(v, 0), n, c64(v, 1));
    const char *k = OP(g, "Mod", p, c64(v, mm)), *m = OP(g, "Div", p, c64(v, mm));
    const char *di = OP(g, "Div", k, c64(v, ms)), *dj = OP(g, "Mod", k, c64(v, ms));
    const char *j = OP(g, "Mod", m, W), *i = OP(g, "Mod", OP(g, "Div", m, W), H);
    const char *row = OP(g, "Add", OP(g, "Mul", i, c64(v, ms)), di);
    const char *col = OP(g, "Add", OP(g, "Mul", j, c64(v, ms)), dj);

    /* angles [row·inv_freq, col·inv_freq] (hd/2), duplicated to hd; inv_freq[i] = 1/10000^(2i/(hd/2))
     * in float32 steps, as torch computes it */
    int64_t q = v->hd / 4, rot_dim = v->hd / 2;
    float inv_freq[256];
    for (int64_t x = 0; x < q; x++) inv_freq[x] = 1.0f / powf(10000.0f, (float)(2 * x) / (float)rot_dim);
    const char *freq = vlm_ox_f32(g, (int)q, inv_freq);
    const char *ar = OP(g, "Mul", OP(g, "Unsqueeze", OPA(g, "Cast", ATTRS(AI("to", FLOAT_T)), row), I64S(g, 1)), freq);
    const char *ac = OP(g, "Mul", OP(g, "Unsqueeze", OPA(g, "Cast", ATTRS(AI("to", FLOAT_T)), col), I64S(g, 1)), freq);
    const char *ang = OPA(g, "Concat", ATTRS(AI("axis", 1)), ar, ac, ar, ac);
    v->cos = OP(g, "Unsqueeze", OP(g, "Cos", ang), I64S(g, 1));
    v->sin = OP(g, "Unsqueeze", OP(g, "Sin", ang), I64S(g, 1));
    if (!window_merged) return;

    /* Windows of ws x ws merged tokens per frame, ceil(H/ws) x ceil(W/ws) of them (transformers
     * pads one more row/column when a side divides evenly, then drops the empty windows again).
     * Slot s of window win holds merged token tok = s / mm (raster order inside the window). */
    int64_t ws = window_merged, S = v->slots;
    const char *nwh = OP(g, "Div", OP(g, "Add", H, c64(v, ws - 1)), c64(v, ws));
    const char *nww = OP(g, "Div", OP(g, "Add", W, c64(v, ws - 1)), c64(v, ws));
    const char *nwf = OP(g, "Mul", nwh, nww);
    /* scatter: patch -> slot */
    const char *f = OP(g, "Div", m, HW);
    const char *win = OP(g, "Add", OP(g, "Mul", OP(g, "Add", OP(g, "Mul", f, nwh), OP(g, "Div", i, c64(v, ws))), nww),
                         OP(g, "Div", j, c64(v, ws)));
    const char *tok = OP(g, "Add", OP(g, "Mul", OP(g, "Mod", i, c64(v, ws)), c64(v, ws)), OP(g, "Mod", j, c64(v, ws)));
    v->win_scatter = OP(g, "Add", OP(g, "Add", OP(g, "Mul", win, c64(v, S)), OP(g, "Mul", tok, c64(v, mm))), k);
    /* gather: slot -> patch (padding slots -> patch 0, masked) */
    const char *s = OP(g, "Range", c64(v, 0), OP(g, "Mul", OP(g, "Mul", t, nwf), c64(v, S)), c64(v, 1));
    const char *sw = OP(g, "Div", s, c64(v, S)), *sr = OP(g, "Mod", s, c64(v, S));
    const char *stok = OP(g, "Div", sr, c64(v, mm)), *sk = OP(g, "Mod", sr, c64(v, mm));
    const char *sf = OP(g, "Div", sw, nwf), *swr = OP(g, "Mod", sw, nwf);
    const char *si = OP(g, "Add", OP(g, "Mul", OP(g, "Div", swr, nww), c64(v, ws)), OP(g, "Div", stok, c64(v, ws)));
    const char *sj = OP(g, "Add", OP(g, "Mul", OP(g, "Mod", swr, nww), c64(v, ws)), OP(g, "Mod", stok, c64(v, ws)));
    const char *valid = OP(g, "And", OP(g, "Less", si, H), OP(g, "Less", sj, W));
    const char *sp =
        OP(g, "Add", OP(g, "Mul", OP(g, "Add", OP(g, "Mul", OP(g, "Add", OP(g, "Mul", sf, H), si), W), sj), c64(v, mm)),
           sk);
    v->win_gather = OP(g, "Where", valid, sp, c64(v, 0));
    v->win_mask = OP(g, "Reshape", OP(g, "Where", valid, vlm_ox_f32_scalar(g, 0.0f), vlm_ox_f32_scalar(g, -1e30f)),
                     I64S(g, -1, 1, 1, S));
}

/* ---- layers ---- */

static const char *weight(vision_graph *v, const vlm_tensor *t, const char *fmt, int b) {
    char name[128];
    snprintf(name, sizeof name, fmt, b);
    return vlm_ox_weight(v->g, name, t, t->ndim, t->shape);
}

/* y = x · W^T + b, W as stored [out, in] */
static const char *linear(vision_graph *v, const char *x, const vlm_tensor *w, const vlm_tensor *b, const char *fmt,
                          int blk) {
    char wn[128], bn[128];
    snprintf(wn, sizeof wn, "%s.weight", fmt);
    snprintf(bn, sizeof bn, "%s.bias", fmt);
    const char *W = weight(v, w, wn, blk);
    if (!b || !b->data) return OPA(v->g, "Gemm", ATTRS(AI("transB", 1)), x, W);
    return OPA(v->g, "Gemm", ATTRS(AI("transB", 1)), x, W, weight(v, b, bn, blk));
}

/* RMSNorm as ONNX Runtime's SimplifiedLayerNormalization fusion expects it:
 * x / sqrt(mean(x^2) + eps) * w */
static const char *rmsnorm(vision_graph *v, const char *x, const vlm_tensor *w, const char *fmt, int blk) {
    vlm_ox_graph *g = v->g;
    const char *ms =
        OPA(g, "ReduceMean", ATTRS(AINTS("axes", -1), AI("keepdims", 1)), OP(g, "Pow", x, vlm_ox_f32_scalar(g, 2.0f)));
    const char *den = OP(g, "Sqrt", OP(g, "Add", ms, vlm_ox_f32_scalar(g, v->cfg->vision.norm_eps)));
    return OP(g, "Mul", OP(g, "Div", x, den), weight(v, w, fmt, blk));
}

static const char *layernorm(vision_graph *v, const char *x, const vlm_tensor *w, const vlm_tensor *b, const char *fmt,
                             int blk) {
    char wn[128], bn[128];
    snprintf(wn, sizeof wn, "%s.weight", fmt);
    snprintf(bn, sizeof bn, "%s.bias", fmt);
    return OPA(v->g, "LayerNormalization", ATTRS(AI("axis", -1), AF("epsilon", v->cfg->vision.norm_eps)), x,
               weight(v, w, wn, blk), weight(v, b, bn, blk));
}

static const char *norm(vision_graph *v, const char *x, const vlm_tensor *w, const vlm_tensor *b, const char *fmt,
                        int blk) {
    if (v->is25) {
        char wn[128];
        snprintf(wn, sizeof wn, "%s.weight", fmt);
        return rmsnorm(v, x, w, wn, blk);
    }
    return layernorm(v, x, w, b, fmt, blk);
}

/* x·cos + rotate_half(x)·sin over [N, heads, hd], rotate_half(x) = (-x[hd/2:], x[:hd/2]) */
static const char *rope(vision_graph *v, const char *x) {
    vlm_ox_graph *g = v->g;
    int64_t h2 = v->hd / 2;
    const char *x1 = OP(g, "Slice", x, I64S(g, 0), I64S(g, h2), I64S(g, 2));
    const char *x2 = OP(g, "Slice", x, I64S(g, h2), I64S(g, v->hd), I64S(g, 2));
    const char *rot = OPA(g, "Concat", ATTRS(AI("axis", 2)), OP(g, "Neg", x2), x1);
    return OP(g, "Add", OP(g, "Mul", x, v->cos), OP(g, "Mul", rot, v->sin));
}

/* Full attention over [t, heads, n, hd] one head at a time, so that only one head's [n, n] scores
 * (and their softmax) are alive at once: 0.9 GB instead of 15 GB for a 1920x1080 image. */
static const char *full_attention(vision_graph *v, const char *q4, const char *kt, const char *v4) {
    vlm_ox_graph *g = v->g;
    enum { MAX_HEADS = 64 };
    int64_t ones[MAX_HEADS];
    int nh = (int)v->heads;
    for (int i = 0; i < nh; i++) ones[i] = 1;
    const char *split = vlm_ox_i64(g, nh, ones), *qs[MAX_HEADS], *ks[MAX_HEADS], *vs[MAX_HEADS];
    if (nh == 1) {
        const char *scores = OP(g, "MatMul", q4, kt);
        return OP(g, "MatMul", OPA(g, "Softmax", ATTRS(AI("axis", -1)), scores), v4);
    }
    vlm_ox_op_n(g, "Split", ATTRS(AI("axis", 1)), OX_IN(q4, split), nh, qs);
    vlm_ox_op_n(g, "Split", ATTRS(AI("axis", 1)), OX_IN(kt, split), nh, ks);
    vlm_ox_op_n(g, "Split", ATTRS(AI("axis", 1)), OX_IN(v4, split), nh, vs);
    const char *outs[MAX_HEADS + 1];
    for (int h = 0; h < nh; h++) {
        const char *scores = OP(g, "MatMul", qs[h], ks[h]);
        outs[h] = OP(g, "MatMul", OPA(g, "Softmax", ATTRS(AI("axis", -1)), scores), vs[h]);
    }
    outs[nh] = vlm_ox_end;
    return vlm_ox_op(g, "Concat", ATTRS(AI("axis", 1)), outs);
}

/* softmax(q·k^T) v per window ([windows, heads, 64, 64]) or per frame of the image ([t, 1, hw, hw]
 * per head); q is already scaled. q, k, v: [N, heads, hd]; returns [N, D]. */
static const char *attend(vision_graph *v, const char *q, const char *k, const char *val, int window) {
    vlm_ox_graph *g = v->g;
    const char *shape = v->frames_shape;
    if (window) {
        q = OPA(g, "Gather", ATTRS(AI("axis", 0)), q, v->win_gather);
        k = OPA(g, "Gather", ATTRS(AI("axis", 0)), k, v->win_gather);
        val = OPA(g, "Gather", ATTRS(AI("axis", 0)), val, v->win_gather);
        shape = I64S(g, -1, v->slots, v->heads, v->hd);
    }
    const char *q4 = OPA(g, "Transpose", ATTRS(AINTS("perm", 0, 2, 1, 3)), OP(g, "Reshape", q, shape));
    const char *kt = OPA(g, "Transpose", ATTRS(AINTS("perm", 0, 2, 3, 1)), OP(g, "Reshape", k, shape));
    const char *v4 = OPA(g, "Transpose", ATTRS(AINTS("perm", 0, 2, 1, 3)), OP(g, "Reshape", val, shape));
    const char *o;
    if (window) {
        const char *scores = OP(g, "Add", OP(g, "MatMul", q4, kt), v->win_mask);
        o = OP(g, "MatMul", OPA(g, "Softmax", ATTRS(AI("axis", -1)), scores), v4);
    } else {
        o = full_attention(v, q4, kt, v4);
    }
    o = OP(g, "Reshape", OPA(g, "Transpose", ATTRS(AINTS("perm", 0, 2, 1, 3)), o), I64S(g, -1, v->D));
    if (window) o = OPA(g, "Gather", ATTRS(AI("axis", 0)), o, v->win_scatter);
    return o;
}

static const char *block(vision_graph *v, const char *x, int b) {
    vlm_ox_graph *g = v->g;
    const vlm_vision_block_weights *B = &v->w->blocks[b];
    int window = v->is25 && !vlm_vision_block_is_full(&v->cfg->vision, v->cfg->family, b);

    const char *y = norm(v, x, &B->norm1_w, &B->norm1_b, "blocks.%d.norm1", b);
    const char *qkv = linear(v, y, &B->qkv_w, &B->qkv_b, "blocks.%d.attn.qkv", b);
    const char *parts[3];
    vlm_ox_op_n(g, "Split", ATTRS(AI("axis", 1)), OX_IN(qkv, I64S(g, v->D, v->D, v->D)), 3, parts);
    const char *head_shape = I64S(g, -1, v->heads, v->hd);
    const char *q = rope(v, OP(g, "Reshape", parts[0], head_shape));
    const char *k = rope(v, OP(g, "Reshape", parts[1], head_shape));
    const char *val = OP(g, "Reshape", parts[2], head_shape);
    q = OP(g, "Mul", q, vlm_ox_f32_scalar(g, (float)(1.0 / sqrt((double)v->hd))));
    const char *a = attend(v, q, k, val, window);
    x = OP(g, "Add", x, linear(v, a, &B->proj_w, &B->proj_b, "blocks.%d.attn.proj", b));

    y = norm(v, x, &B->norm2_w, &B->norm2_b, "blocks.%d.norm2", b);
    const char *mlp;
    if (v->is25) {
        const char *gate = linear(v, y, &B->gate_w, &B->gate_b, "blocks.%d.mlp.gate_proj", b);
        const char *up = linear(v, y, &B->up_w, &B->up_b, "blocks.%d.mlp.up_proj", b);
        const char *act = OP(g, "Mul", OP(g, "Mul", gate, OP(g, "Sigmoid", gate)), up);
        mlp = linear(v, act, &B->down_w, &B->down_b, "blocks.%d.mlp.down_proj", b);
    } else {
        const char *h = linear(v, y, &B->fc1_w, &B->fc1_b, "blocks.%d.mlp.fc1", b);
        const char *act = OP(g, "Mul", h, OP(g, "Sigmoid", OP(g, "Mul", h, vlm_ox_f32_scalar(g, 1.702f))));
        mlp = linear(v, act, &B->down_w, &B->down_b, "blocks.%d.mlp.fc2", b);
    }
    return OP(g, "Add", x, mlp);
}

/* exact GELU 0.5·x·(1 + erf(x/√2)), in the form ONNX Runtime fuses */
static const char *gelu(vision_graph *v, const char *x) {
    vlm_ox_graph *g = v->g;
    const char *e = OP(g, "Erf", OP(g, "Div", x, vlm_ox_f32_scalar(g, (float)sqrt(2.0))));
    return OP(g, "Mul", OP(g, "Mul", x, OP(g, "Add", e, vlm_ox_f32_scalar(g, 1.0f))), vlm_ox_f32_scalar(g, 0.5f));
}

static const char *merger(vision_graph *v, const char *x) {
    const vlm_vision_weights *w = v->w;
    int64_t mm = (int64_t)v->cfg->vision.merge_size * v->cfg->vision.merge_size;
    const char *y = norm(v, x, &w->merger_norm_w, &w->merger_norm_b, "merger.ln_q", 0);
    y = OP(v->g, "Reshape", y, I64S(v->g, -1, mm * v->D));
    y = gelu(v, linear(v, y, &w->merger_fc1_w, &w->merger_fc1_b, "merger.mlp.0", 0));
    return linear(v, y, &w->merger_fc2_w, &w->merger_fc2_b, "merger.mlp.2", 0);
}

vlm_status vlm_onnx_build_vision(vlm_ox_graph *g, const vlm_model_config *cfg, const vlm_vision_weights *w) {
    const vlm_vision_config *vc = &cfg->vision;
    vision_graph v = {.g = g,
                      .cfg = cfg,
                      .w = w,
                      .is25 = cfg->family == VLM_FAMILY_QWEN2_5_VL,
                      .D = vc->width,
                      .heads = vc->n_heads,
                      .hd = vc->head_dim};
    if (v.hd % 4 || v.hd / 4 > 256 || v.heads * v.hd != v.D || v.heads > 64)
        return vlm_err(VLM_ERR_UNSUPPORTED,
                       "vision head_dim %lld (width %lld, %lld heads) is not supported by the "
                       "ONNX exporter (needs a multiple of 4, at most 1024, and at most 64 heads)",
                       (long long)v.hd, (long long)v.D, (long long)v.heads);
    int window_merged = 0;
    if (v.is25) {
        int unit = vc->patch_size * vc->merge_size;
        if (unit <= 0 || vc->window_size % unit || vc->window_size < unit)
            return vlm_err(VLM_ERR_UNSUPPORTED,
                           "vision window_size %d is not a multiple of patch_size x merge_size (%d)", vc->window_size,
                           unit);
        window_merged = vc->window_size / unit;
        v.slots = (int64_t)window_merged * window_merged * vc->merge_size * vc->merge_size;
    }
    build_indices(&v, window_merged);
    const char *x = linear(&v, "pixel_values", &w->patch_embed, NULL, "patch_embed.proj", 0);
    for (int b = 0; b < w->n_blocks; b++) x = block(&v, x, b);
    vlm_ox_output(g, merger(&v, x), "image_embeds");
    return g->failed ? vlm_err_ctx(VLM_ERR_NOMEM, "building the vision graph") : VLM_OK;
}
