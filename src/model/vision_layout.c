#include "model/vision_layout.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"

int vlm_vision_window_tokens(const vlm_vision_config *v) {
    int t = v->window_size / v->patch_size / v->merge_size;
    return t > 0 ? t : 1;
}

vlm_status vlm_vision_grids_check(const vlm_vision_config *v, const vlm_grid_thw *grids, int n_images, int *n_patches) {
    if (n_images <= 0 || !grids) return vlm_err(VLM_ERR_INVALID, "vision encoder: no image grid given");
    int64_t total = 0;
    int ms = v->merge_size;
    for (int i = 0; i < n_images; i++) {
        int t = grids[i].t, h = grids[i].h, w = grids[i].w;
        if (t < 1 || h < ms || w < ms || h % ms || w % ms)
            return vlm_err(VLM_ERR_INVALID,
                           "vision encoder: image %d has grid (t=%d, h=%d, w=%d); t must be >= 1 and h, w positive "
                           "multiples of the merge size %d",
                           i, t, h, w, ms);
        int64_t n = (int64_t)t * h * w;
        if (n > VLM_VISION_MAX_PATCHES || total + n > VLM_VISION_MAX_PATCHES)
            return vlm_err(VLM_ERR_INVALID,
                           "vision encoder: image %d (grid %d x %d x %d) brings the request to more than %d patches", i,
                           t, h, w, (int)VLM_VISION_MAX_PATCHES);
        total += n;
    }
    *n_patches = (int)total;
    return VLM_OK;
}

int64_t vlm_vision_max_windows(const vlm_vision_config *v, const vlm_grid_thw *grids, int n_images) {
    int vm = vlm_vision_window_tokens(v), ms = v->merge_size;
    int64_t n = 0;
    for (int i = 0; i < n_images; i++) {
        int64_t lh = grids[i].h / ms, lw = grids[i].w / ms;
        n += (int64_t)grids[i].t * (lh / vm + 1) * (lw / vm + 1);
    }
    return n;
}

/* inv_freq of transformers' VisionRotaryEmbedding(dim = head_dim / 2, theta = 10000), in float32:
 * 1 / 10000^(arange(0, dim, 2) / dim). */
static void rotary_inv_freq(int dim, float *inv) {
    for (int i = 0; i < dim / 2; i++) {
        float e = (float)(2 * i) / (float)dim;
        inv[i] = 1.0f / (float)pow(10000.0, (double)e);
    }
}

/* Angles of every patch in patch order: patch p of a frame lies in merge group p / unit (groups in
 * raster order over the merged grid) at offset p % unit (raster order inside the group). */
static void fill_rotary(const vlm_vision_config *v, const vlm_grid_thw *grids, int n_images, int rot_dim, float *rot) {
    int ms = v->merge_size, unit = ms * ms, quarter = rot_dim / 2;
    float inv[128];
    rotary_inv_freq(rot_dim, inv);
    size_t row = 0;
    for (int i = 0; i < n_images; i++) {
        int t = grids[i].t, h = grids[i].h, w = grids[i].w, lw = w / ms;
        for (int f = 0; f < t; f++)
            for (int p = 0; p < h * w; p++, row++) {
                int g = p / unit, o = p % unit;
                int hpos = (g / lw) * ms + o / ms, wpos = (g % lw) * ms + o % ms;
                float *r = rot + row * (size_t)rot_dim;
                for (int k = 0; k < quarter; k++) {
                    r[k] = (float)hpos * inv[k];
                    r[quarter + k] = (float)wpos * inv[k];
                }
            }
    }
}

/* get_window_index: the merged grid of each frame is padded to whole windows of vm x vm tokens
 * with pad = vm - side % vm (a full empty window row/column when the side is already a multiple
 * of vm); windows are listed in raster order, tokens inside a window in raster order, padding
 * dropped. Empty windows would repeat a boundary, which unique_consecutive removes: skip them. */
static void fill_windows(const vlm_vision_config *v, const vlm_grid_thw *grids, int n_images, vlm_vision_layout *l) {
    int ms = v->merge_size, vm = vlm_vision_window_tokens(v), unit = ms * ms;
    int k = 0, nw = 0, base = 0;
    l->window_segments[0] = 0;
    for (int i = 0; i < n_images; i++) {
        int t = grids[i].t, lh = grids[i].h / ms, lw = grids[i].w / ms;
        int nwh = (lh + vm - lh % vm) / vm, nww = (lw + vm - lw % vm) / vm;
        for (int f = 0; f < t; f++) {
            int frame = base + f * lh * lw;
            for (int wh = 0; wh < nwh; wh++)
                for (int ww = 0; ww < nww; ww++) {
                    int count = 0;
                    for (int r = wh * vm; r < (wh + 1) * vm && r < lh; r++)
                        for (int c = ww * vm; c < (ww + 1) * vm && c < lw; c++, count++)
                            l->window_index[k++] = frame + r * lw + c;
                    if (count) {
                        l->window_segments[nw + 1] = l->window_segments[nw] + count * unit;
                        nw++;
                    }
                }
        }
        base += t * lh * lw;
    }
    l->n_windows = nw;
    for (int j = 0; j < l->n_merged; j++) l->window_inverse[l->window_index[j]] = j;
}

vlm_status vlm_vision_layout_build(const vlm_vision_config *v, int with_windows, const vlm_grid_thw *grids,
                                   int n_images, vlm_vision_layout *l) {
    memset(l, 0, sizeof *l);
    int N;
    VLM_TRY(vlm_vision_grids_check(v, grids, n_images, &N));
    if (v->head_dim % 4 || v->head_dim / 4 > 128)
        return vlm_err(VLM_ERR_UNSUPPORTED, "vision encoder: head_dim %d (must be a multiple of 4, at most 512)",
                       v->head_dim);
    l->n_images = n_images;
    l->n_patches = N;
    l->unit = v->merge_size * v->merge_size;
    l->n_merged = N / l->unit;
    l->rot_dim = v->head_dim / 2;
    int frames = 0;
    for (int i = 0; i < n_images; i++) frames += grids[i].t;
    l->rot = vlm_alloc((size_t)N * (size_t)l->rot_dim * sizeof(float), "the vision rotary table");
    l->full_segments = vlm_alloc(sizeof(int) * (size_t)(frames + 1), "the vision image segments");
    if (!l->rot || !l->full_segments) goto nomem;
    fill_rotary(v, grids, n_images, l->rot_dim, l->rot);
    l->n_full = frames;
    l->full_segments[0] = 0;
    for (int i = 0, s = 0; i < n_images; i++)
        for (int f = 0; f < grids[i].t; f++, s++)
            l->full_segments[s + 1] = l->full_segments[s] + grids[i].h * grids[i].w;
    if (with_windows) {
        int64_t maxw = vlm_vision_max_windows(v, grids, n_images);
        l->window_index = vlm_alloc(sizeof(int32_t) * (size_t)l->n_merged, "the vision window index");
        l->window_inverse = vlm_alloc(sizeof(int32_t) * (size_t)l->n_merged, "the vision window index");
        l->window_segments = vlm_alloc(sizeof(int) * (size_t)(maxw + 1), "the vision window boundaries");
        if (!l->window_index || !l->window_inverse || !l->window_segments) goto nomem;
        fill_windows(v, grids, n_images, l);
    }
    return VLM_OK;
nomem:
    vlm_vision_layout_free(l);
    return VLM_ERR_NOMEM;
}

void vlm_vision_layout_free(vlm_vision_layout *l) {
    vlm_free(l->rot);
    vlm_free(l->full_segments);
    vlm_free(l->window_index);
    vlm_free(l->window_inverse);
    vlm_free(l->window_segments);
    memset(l, 0, sizeof *l);
}
