#include "model/rope_index.h"

#include <math.h>

static void text_run(int32_t *pos, int n, int from, int len, int32_t start) {
    for (int j = 0; j < len; j++)
        for (int a = 0; a < 3; a++) pos[(size_t)a * n + from + j] = start + j;
}

static int find_image_token(const int32_t *ids, int n, int from, int image_id) {
    for (int i = from; i < n; i++)
        if (ids[i] == image_id) return i;
    return -1;
}

static vlm_status check_grid(const vlm_grid_thw *g, int k, int merge) {
    if (g->t <= 0 || g->h <= 0 || g->w <= 0 || g->h % merge || g->w % merge)
        return vlm_err(VLM_ERR_INVALID,
                       "image %d: grid (t %d, h %d, w %d) must be positive with h and w multiples of the merge "
                       "size %d",
                       k, g->t, g->h, g->w, merge);
    return VLM_OK;
}

/* Lays out image k at ids[ed ..): t, row, col offsets from base; returns the largest position. */
static vlm_status image_run(const int32_t *ids, int n, int32_t *pos, int ed, const vlm_grid_thw *g, int k,
                            const vlm_model_config *cfg, int32_t base, int32_t *max_pos) {
    int merge = cfg->vision.merge_size, gh = g->h / merge, gw = g->w / merge;
    int64_t count = vlm_grid_tokens(g, merge);
    if (ed + count > n)
        return vlm_err(VLM_ERR_INVALID,
                       "image %d: grid (%d, %d, %d) needs %lld image tokens from position %d, "
                       "the prompt has %d tokens",
                       k, g->t, g->h, g->w, (long long)count, ed, n);
    /* Qwen2.5-VL scales the temporal index by second_per_grid_t (0 for images) times
     * tokens_per_second; Qwen2-VL uses the index itself. */
    int t_step = cfg->family == VLM_FAMILY_QWEN2_VL ? 1 : 0;
    int32_t mx = base;
    int64_t i = ed;
    for (int t = 0; t < g->t; t++)
        for (int r = 0; r < gh; r++)
            for (int c = 0; c < gw; c++, i++) {
                if (ids[i] != cfg->tokens.image_token_id)
                    return vlm_err(VLM_ERR_INVALID,
                                   "image %d: expected %lld image tokens (id %d) from position "
                                   "%d, found id %d at position %lld",
                                   k, (long long)count, cfg->tokens.image_token_id, ed, ids[i], (long long)i);
                int32_t p[3] = {base + t * t_step, base + r, base + c};
                for (int a = 0; a < 3; a++) {
                    pos[(size_t)a * n + i] = p[a];
                    if (p[a] > mx) mx = p[a];
                }
            }
    *max_pos = mx;
    return VLM_OK;
}

vlm_status vlm_rope_index(const int32_t *ids, int n, const vlm_grid_thw *grids, int n_images,
                          const vlm_model_config *cfg, int32_t *pos, int32_t *rope_delta) {
    *rope_delta = 0;
    if (n_images == 0) { /* transformers without image_grid_thw: 0..n-1 in every row */
        text_run(pos, n, 0, n, 0);
        return VLM_OK;
    }
    const vlm_token_ids *tok = &cfg->tokens;
    /* transformers counts the images as <|vision_start|> tokens followed by an image token */
    int found = 0;
    for (int i = 0; i + 1 < n; i++) found += ids[i] == tok->vision_start_id && ids[i + 1] == tok->image_token_id;
    if (found != n_images)
        return vlm_err(VLM_ERR_INVALID,
                       "the prompt has %d image spans (<|vision_start|><|image_pad|>), but %d "
                       "image grids were given",
                       found, n_images);
    int st = 0;
    int32_t next = 0, mx = -1;
    for (int k = 0; k < n_images; k++) {
        VLM_TRY(check_grid(&grids[k], k, cfg->vision.merge_size));
        int ed = find_image_token(ids, n, st, tok->image_token_id);
        if (ed < 0) return vlm_err(VLM_ERR_INVALID, "image %d: no image token after position %d", k, st);
        text_run(pos, n, st, ed - st, next);
        VLM_TRY(image_run(ids, n, pos, ed, &grids[k], k, cfg, next + (ed - st), &mx));
        next = mx + 1;
        st = ed + (int)vlm_grid_tokens(&grids[k], cfg->vision.merge_size);
    }
    if (st < n) {
        text_run(pos, n, st, n - st, next);
        mx = next + (n - st) - 1;
    }
    *rope_delta = mx + 1 - n;
    return VLM_OK;
}

void vlm_rope_inv_freq(double theta, int head_dim, float *inv_freq) {
    float base = (float)theta; /* the Python float meets a float32 tensor: computed in float32 */
    for (int i = 0; i < head_dim / 2; i++) {
        float e = (float)(2 * i) / (float)head_dim;
        float p = (float)pow((double)base, (double)e);
        inv_freq[i] = 1.0f / p;
    }
}

void vlm_mrope_cos_sin(const float *inv_freq, int half, const int sections[3], const int32_t *pos, int pos_stride,
                       int n, float *cos_out, float *sin_out) {
    for (int r = 0; r < n; r++) {
        int j = 0;
        for (int a = 0; a < 3; a++) {
            float p = (float)pos[(size_t)a * pos_stride + r];
            for (int e = 0; e < sections[a] && j < half; e++, j++) {
                float angle = p * inv_freq[j];
                cos_out[(size_t)r * half + j] = (float)cos((double)angle);
                sin_out[(size_t)r * half + j] = (float)sin((double)angle);
            }
        }
    }
}
