/* The vision towers (see vision_model.h). One function per stage; all buffers are sized from the
 * grid once per call (kept and reused across calls), nothing is allocated inside the block loop. */
#include "model/vision_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/memory.h"
#include "model/vision_layout.h"
#include "model/vision_plan.h"

typedef struct {
    vlm_tensor norm1_w, norm1_b, norm2_w, norm2_b; /* f32 vectors (biases: Qwen2-VL LayerNorm) */
    vlm_tensor qkv_w, qkv_b, proj_w, proj_b;
    vlm_tensor fc1_w, fc1_b;   /* 2.5: gate_proj; 2: fc1 */
    vlm_tensor up_w, up_b;     /* 2.5 only */
    vlm_tensor down_w, down_b; /* 2.5: down_proj; 2: fc2 */
} vblock;

/* The activation buffers of one call, all device memory, sized for `cap` patches. */
typedef struct {
    int cap;
    float *x;         /* [N, W] residual stream */
    float *h;         /* [N, W] norm output, attention output, MLP output */
    float *big;       /* qkv [N, 3W] | gate, up [N, 2F] | merger [M, 4W] + [M, out] x 2 | pixels [N, K] */
    float *cos, *sin; /* [N, head_dim / 2] */
    uint64_t bytes;
} vbuffers;

struct vlm_vision_model {
    vlm_vision_config v;
    vlm_family family;
    int is25;
    vlm_backend *be;
    vlm_tensor patch_w; /* [W, C*T*P*P] */
    vblock *blocks;
    vlm_tensor merger_norm_w, merger_norm_b, merger_fc1_w, merger_fc1_b, merger_fc2_w, merger_fc2_b;
    vbuffers buf;
};

/* ---------- weights ---------- */

static vlm_status mat(vlm_backend *be, const vlm_tensor *host, vlm_tensor *dev) {
    return host->data ? be->ops->weight(be, host, dev) : VLM_OK;
}
static vlm_status vec(vlm_backend *be, const vlm_tensor *host, vlm_tensor *dev) {
    return host->data ? be->ops->weight_f32(be, host, dev) : VLM_OK;
}
static void mat_free(vlm_backend *be, vlm_tensor *t) {
    if (t->data) be->ops->weight_free(be, t);
    memset(t, 0, sizeof *t);
}
/* weight_f32 makes a new device allocation (a converted copy). */
static void vec_free(vlm_backend *be, vlm_tensor *t) {
    vlm_dev_free(be, t->data);
    memset(t, 0, sizeof *t);
}

static vlm_status bind_block(vlm_backend *be, const vlm_vision_block_weights *s, int is25, vblock *d) {
    VLM_TRY(vec(be, &s->norm1_w, &d->norm1_w));
    VLM_TRY(vec(be, &s->norm1_b, &d->norm1_b));
    VLM_TRY(vec(be, &s->norm2_w, &d->norm2_w));
    VLM_TRY(vec(be, &s->norm2_b, &d->norm2_b));
    VLM_TRY(mat(be, &s->qkv_w, &d->qkv_w));
    VLM_TRY(vec(be, &s->qkv_b, &d->qkv_b));
    VLM_TRY(mat(be, &s->proj_w, &d->proj_w));
    VLM_TRY(vec(be, &s->proj_b, &d->proj_b));
    VLM_TRY(mat(be, is25 ? &s->gate_w : &s->fc1_w, &d->fc1_w));
    VLM_TRY(vec(be, is25 ? &s->gate_b : &s->fc1_b, &d->fc1_b));
    if (is25) {
        VLM_TRY(mat(be, &s->up_w, &d->up_w));
        VLM_TRY(vec(be, &s->up_b, &d->up_b));
    }
    VLM_TRY(mat(be, &s->down_w, &d->down_w));
    VLM_TRY(vec(be, &s->down_b, &d->down_b));
    return VLM_OK;
}

static void free_block(vlm_backend *be, vblock *d) {
    vec_free(be, &d->norm1_w), vec_free(be, &d->norm1_b), vec_free(be, &d->norm2_w), vec_free(be, &d->norm2_b);
    mat_free(be, &d->qkv_w), vec_free(be, &d->qkv_b), mat_free(be, &d->proj_w), vec_free(be, &d->proj_b);
    mat_free(be, &d->fc1_w), vec_free(be, &d->fc1_b), mat_free(be, &d->up_w), vec_free(be, &d->up_b);
    mat_free(be, &d->down_w), vec_free(be, &d->down_b);
}

static vlm_status check_weights(const vlm_vision_config *v, int is25, const vlm_vision_weights *w) {
    if (!w->blocks || w->n_blocks != v->depth || !w->patch_embed.data || !w->merger_fc1_w.data ||
        !w->merger_fc2_w.data || !w->merger_norm_w.data)
        return vlm_err(VLM_ERR_INVALID, "vision encoder: weights are not bound (%d blocks, config depth %d)",
                       w->n_blocks, v->depth);
    if (w->patch_embed.ndim != 2 || w->patch_embed.shape[0] != v->width ||
        w->patch_embed.shape[1] != vlm_vision_patch_dim(v))
        return vlm_err(VLM_ERR_FORMAT, "vision encoder: patch embedding is not [%d, %d]", v->width,
                       vlm_vision_patch_dim(v));
    for (int b = 0; b < v->depth; b++) {
        const vlm_vision_block_weights *B = &w->blocks[b];
        int ok = B->qkv_w.data && B->proj_w.data && B->down_w.data && B->norm1_w.data && B->norm2_w.data &&
            (is25 ? B->gate_w.data && B->up_w.data : B->fc1_w.data && B->norm1_b.data && B->norm2_b.data);
        if (!ok) return vlm_err(VLM_ERR_INVALID, "vision encoder: block %d has unbound weights", b);
    }
    return VLM_OK;
}

vlm_status vlm_vision_create(const vlm_model_config *cfg, const vlm_vision_weights *w, vlm_backend *be,
                             vlm_vision_model **out) {
    *out = NULL;
    int is25 = cfg->family == VLM_FAMILY_QWEN2_5_VL;
    VLM_TRY(check_weights(&cfg->vision, is25, w));
    vlm_vision_model *m = vlm_calloc(1, sizeof *m, "the vision encoder");
    if (!m) return VLM_ERR_NOMEM;
    m->v = cfg->vision;
    m->family = cfg->family;
    m->is25 = is25;
    m->be = be;
    m->blocks = vlm_calloc((size_t)m->v.depth, sizeof *m->blocks, "the vision encoder's blocks");
    vlm_status s = m->blocks ? VLM_OK : VLM_ERR_NOMEM;
    if (s == VLM_OK) s = mat(be, &w->patch_embed, &m->patch_w);
    for (int b = 0; s == VLM_OK && b < m->v.depth; b++) {
        s = bind_block(be, &w->blocks[b], is25, &m->blocks[b]);
        if (s != VLM_OK) vlm_err_ctx(s, "vision block %d", b);
    }
    if (s == VLM_OK) s = vec(be, &w->merger_norm_w, &m->merger_norm_w);
    if (s == VLM_OK) s = vec(be, &w->merger_norm_b, &m->merger_norm_b);
    if (s == VLM_OK) s = mat(be, &w->merger_fc1_w, &m->merger_fc1_w);
    if (s == VLM_OK) s = vec(be, &w->merger_fc1_b, &m->merger_fc1_b);
    if (s == VLM_OK) s = mat(be, &w->merger_fc2_w, &m->merger_fc2_w);
    if (s == VLM_OK) s = vec(be, &w->merger_fc2_b, &m->merger_fc2_b);
    if (s != VLM_OK) {
        vlm_vision_free(m);
        return vlm_err_ctx(s, "binding the vision encoder to the %s backend", be->name);
    }
    *out = m;
    return VLM_OK;
}

void vlm_vision_trim(vlm_vision_model *m) {
    vbuffers *b = &m->buf;
    vlm_dev_free(m->be, b->x), vlm_dev_free(m->be, b->h), vlm_dev_free(m->be, b->big);
    vlm_dev_free(m->be, b->cos), vlm_dev_free(m->be, b->sin);
    memset(b, 0, sizeof *b);
}

void vlm_vision_free(vlm_vision_model *m) {
    if (!m) return;
    vlm_backend *be = m->be;
    vlm_vision_trim(m);
    if (m->blocks)
        for (int b = 0; b < m->v.depth; b++) free_block(be, &m->blocks[b]);
    free(m->blocks);
    mat_free(be, &m->patch_w);
    vec_free(be, &m->merger_norm_w), vec_free(be, &m->merger_norm_b);
    mat_free(be, &m->merger_fc1_w), vec_free(be, &m->merger_fc1_b);
    mat_free(be, &m->merger_fc2_w), vec_free(be, &m->merger_fc2_b);
    free(m);
}

/* ---------- forward ---------- */

static int on_cpu(const vlm_vision_model *m) { return vlm_backend_host_memory(m->be); }

/* Buffers for N patches: reused when the kept ones are large enough. */
static vlm_status ensure_buffers(vlm_vision_model *m, int N) {
    vbuffers *b = &m->buf;
    if (b->cap >= N && b->x) return VLM_OK;
    vlm_vision_trim(m);
    size_t n = (size_t)N, W = (size_t)m->v.width;
    vlm_backend *be = m->be;
    b->x = vlm_dev_alloc(be, n * W * sizeof(float), "the vision residual stream");
    b->h = vlm_dev_alloc(be, n * W * sizeof(float), "the vision activations");
    b->big = vlm_dev_alloc(be, vlm_vision_scratch_floats(&m->v, m->is25, n, !on_cpu(m)) * sizeof(float),
                           "the vision activations");
    b->cos = vlm_dev_alloc(be, n * (size_t)(m->v.head_dim / 2) * sizeof(float), "the vision rotary table");
    b->sin = vlm_dev_alloc(be, n * (size_t)(m->v.head_dim / 2) * sizeof(float), "the vision rotary table");
    if (!b->x || !b->h || !b->big || !b->cos || !b->sin) {
        vlm_vision_trim(m);
        return VLM_ERR_NOMEM;
    }
    b->cap = N;
    b->bytes = vlm_vision_device_bytes(&m->v, m->is25, n, !on_cpu(m));
    return VLM_OK;
}

/* cos/sin of the rotary angles, rows in the order the blocks see them (window order for 2.5). */
static vlm_status upload_rotary(vlm_vision_model *m, const vlm_vision_layout *l) {
    size_t half = (size_t)l->rot_dim, n = (size_t)l->n_patches * half;
    float *hc = vlm_alloc(2 * n * sizeof(float), "the vision rotary cos/sin");
    if (!hc) return VLM_ERR_NOMEM;
    float *hs = hc + n;
    for (int j = 0; j < l->n_merged; j++) {
        int src = l->window_index ? l->window_index[j] : j;
        for (int u = 0; u < l->unit; u++) {
            const float *a = l->rot + ((size_t)src * l->unit + u) * half;
            size_t o = ((size_t)j * l->unit + u) * half;
            for (size_t i = 0; i < half; i++) hc[o + i] = cosf(a[i]), hs[o + i] = sinf(a[i]);
        }
    }
    vlm_status s = vlm_to_device(m->be, m->buf.cos, hc, n * sizeof(float));
    if (s == VLM_OK) s = vlm_to_device(m->be, m->buf.sin, hs, n * sizeof(float));
    vlm_free(hc);
    return s;
}

static void norm(vlm_vision_model *m, float *y, const float *x, const vlm_tensor *w, const vlm_tensor *b, int rows,
                 int D) {
    if (m->is25) vlm_rmsnorm(m->be, y, x, w->data, rows, D, m->v.norm_eps);
    else vlm_layernorm(m->be, y, x, w->data, b->data, rows, D, m->v.norm_eps);
}

/* x += proj(attention(rope(qkv(norm1(x))))) with attention inside each segment. The qkv rows are
 * [q | k | v] (heads x head_dim each): rope and attention read them in place through strides. */
static void attention_block(vlm_vision_model *m, const vblock *B, int N, const int *segs, int n_segs) {
    vlm_backend *be = m->be;
    int W = m->v.width, hd = m->v.head_dim, H = m->v.n_heads;
    float *x = m->buf.x, *h = m->buf.h, *qkv = m->buf.big;
    norm(m, h, x, &B->norm1_w, &B->norm1_b, N, W);
    vlm_matmul(be, qkv, h, &B->qkv_w, B->qkv_b.data, N);
    /* q and k are adjacent in each row: one call rotates 2H heads */
    vlm_rope(be, qkv, 3 * W, m->buf.cos, m->buf.sin, N, 2 * H, hd);
    vlm_attn_params p = {.n_q = N,
                         .n_kv = N,
                         .causal = 0,
                         .segments = segs,
                         .n_segments = n_segs,
                         .n_heads = H,
                         .n_kv_heads = H,
                         .head_dim = hd,
                         .q_stride = 3 * W,
                         .kv_stride = 3 * W,
                         .out_stride = W,
                         .scale = 1.0f / sqrtf((float)hd)};
    vlm_attention(be, h, qkv, qkv + W, qkv + 2 * W, &p);
    vlm_matmul(be, qkv, h, &B->proj_w, B->proj_b.data, N); /* q, k, v are dead: reuse */
    vlm_add(be, x, qkv, (size_t)N * W);
}

/* x += down(silu(gate(y)) * up(y)) (2.5) or fc2(quick_gelu(fc1(y))) (2), y = norm2(x). */
static void mlp_block(vlm_vision_model *m, const vblock *B, int N) {
    vlm_backend *be = m->be;
    int W = m->v.width;
    size_t nf = (size_t)N * m->v.mlp_hidden;
    float *x = m->buf.x, *h = m->buf.h, *a = m->buf.big;
    norm(m, h, x, &B->norm2_w, &B->norm2_b, N, W);
    vlm_matmul(be, a, h, &B->fc1_w, B->fc1_b.data, N);
    if (m->is25) {
        vlm_matmul(be, a + nf, h, &B->up_w, B->up_b.data, N);
        vlm_swiglu(be, a, a, a + nf, nf); /* element-wise: in place over gate */
    } else {
        vlm_quick_gelu(be, a, nf);
    }
    vlm_matmul(be, h, a, &B->down_w, B->down_b.data, N);
    vlm_add(be, x, h, (size_t)N * W);
}

/* Merger over the rows of x (window order for 2.5): norm, groups of `unit` rows as one row,
 * Linear, GELU, Linear into y [M, out]. */
static void merger(vlm_vision_model *m, float *y, int N, int M) {
    vlm_backend *be = m->be;
    int W = m->v.width;
    size_t mw = (size_t)W * m->v.merge_size * m->v.merge_size;
    float *h = m->buf.h, *hid = m->buf.big;
    norm(m, h, m->buf.x, &m->merger_norm_w, &m->merger_norm_b, N, W);
    vlm_matmul(be, hid, h, &m->merger_fc1_w, m->merger_fc1_b.data, M); /* [N, W] is [M, 4W] */
    vlm_gelu(be, hid, (size_t)M * mw);
    vlm_matmul(be, y, hid, &m->merger_fc2_w, m->merger_fc2_b.data, M);
}

static vlm_status dump_layout(vlm_dump *d, const vlm_vision_layout *l) {
    if (!d) return VLM_OK;
    int64_t rs[2] = {l->n_patches, l->rot_dim};
    VLM_TRY(vlm_dump_f32_host(d, "vision_rotary_pos_emb", l->rot, 2, rs));
    if (!l->window_index) return VLM_OK;
    int64_t ms[1] = {l->n_merged}, cs[1] = {l->n_windows + 1};
    VLM_TRY(vlm_dump_i32_as_i64(d, "vision_window_index", l->window_index, 1, ms));
    return vlm_dump_i32_as_i64(d, "vision_cu_window_seqlens", l->window_segments, 1, cs);
}

/* What the backend has available (a device backend's buffers also hold a copy of pixel_values).
 * What this model already holds counts as available. */
static vlm_status check_available(vlm_vision_model *m, const vlm_model_config *cfg, const vlm_grid_thw *grids,
                                  int n_images) {
    uint64_t avail = vlm_backend_available_memory(m->be);
    if (!avail) return VLM_OK; /* unknown here: the allocation decides */
    return vlm_vision_check_memory(cfg, grids, n_images, avail + m->buf.bytes, !on_cpu(m));
}

static vlm_status run(vlm_vision_model *m, const float *pixels, const vlm_vision_layout *l, float *out, int out_on_host,
                      vlm_dump *d) {
    vlm_backend *be = m->be;
    int N = l->n_patches, M = l->n_merged, W = m->v.width, out_w = m->v.out_hidden;
    size_t unit_row = (size_t)l->unit * W;
    VLM_TRY(ensure_buffers(m, N));
    VLM_TRY(upload_rotary(m, l));
    const float *px = pixels;
    if (!on_cpu(m)) {
        VLM_TRY(vlm_to_device(be, m->buf.big, pixels, (size_t)N * vlm_vision_patch_dim(&m->v) * sizeof(float)));
        px = m->buf.big;
    }
    /* patch embedding; 2.5 then moves whole merge groups to window order */
    float *pe = m->is25 ? m->buf.h : m->buf.x;
    vlm_matmul(be, pe, px, &m->patch_w, NULL, N);
    VLM_TRY(vlm_dump_f32(d, be, "vision_patch_embed", pe, N, W));
    VLM_TRY(dump_layout(d, l));
    if (m->is25) vlm_gather_rows(be, m->buf.x, pe, l->window_index, M, (int)unit_row);
    for (int b = 0; b < m->v.depth; b++) {
        int full = vlm_vision_block_is_full(&m->v, m->family, b);
        attention_block(m, &m->blocks[b], N, full ? l->full_segments : l->window_segments,
                        full ? l->n_full : l->n_windows);
        mlp_block(m, &m->blocks[b], N);
        if (b == 0) VLM_TRY(vlm_dump_f32(d, be, "vision_block0_out", m->buf.x, N, W));
    }
    /* The result goes straight to `out` when that is device memory, else to a staging area in
     * big after the merger's hidden rows. 2.5 computes the merger in window order (y), then
     * gathers the rows back to raster order. */
    int direct = !out_on_host || on_cpu(m);
    float *stage = m->buf.big + (size_t)M * unit_row;
    float *dst = direct ? out : stage + (m->is25 ? (size_t)M * out_w : 0);
    float *y = m->is25 ? stage : dst;
    merger(m, y, N, M);
    VLM_TRY(vlm_dump_f32(d, be, "vision_merger_out", y, M, out_w));
    if (m->is25) vlm_gather_rows(be, dst, y, l->window_inverse, M, out_w);
    VLM_TRY(vlm_dump_f32(d, be, "image_embeds", dst, M, out_w));
    VLM_TRY(vlm_sync(be));
    if (!direct) VLM_TRY(vlm_to_host(be, out, dst, (size_t)M * out_w * sizeof(float)));
    return VLM_OK;
}

vlm_status vlm_vision_encode(vlm_vision_model *m, const float *pixels, int64_t n_rows, const vlm_grid_thw *grids,
                             int n_images, float *out, int out_on_host, vlm_dump *dump) {
    vlm_model_config cfg = {.family = m->family, .vision = m->v};
    int N;
    VLM_TRY(vlm_vision_grids_check(&m->v, grids, n_images, &N));
    if (n_rows != N)
        return vlm_err(VLM_ERR_INVALID, "vision encoder: pixel_values has %lld rows, the grids give %d patches",
                       (long long)n_rows, N);
    if (!pixels || !out) return vlm_err(VLM_ERR_INVALID, "vision encoder: no pixel_values or output buffer");
    VLM_TRY(check_available(m, &cfg, grids, n_images));
    vlm_vision_layout l;
    VLM_TRY(vlm_vision_layout_build(&m->v, m->is25, grids, n_images, &l));
    vlm_status s = run(m, pixels, &l, out, out_on_host, dump);
    vlm_vision_layout_free(&l);
    if (s != VLM_OK) vlm_err_ctx(s, "vision encoder (%d image(s), %d patches)", n_images, N);
    return s;
}
