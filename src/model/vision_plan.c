/* Memory planning and FLOP counting of the vision encoder (vision_plan.h). The buffer sizes here
 * are the ones vision_model.c allocates, so the planned bytes are the allocated bytes. */
#include "model/vision_plan.h"

#include "model/vision_layout.h"

int vlm_vision_patch_dim(const vlm_vision_config *v) {
    return v->in_channels * v->temporal_patch_size * v->patch_size * v->patch_size;
}

static size_t max_sz(size_t a, size_t b) { return a > b ? a : b; }

size_t vlm_vision_scratch_floats(const vlm_vision_config *v, int is25, size_t N, int include_pixels) {
    size_t W = (size_t)v->width, F = (size_t)v->mlp_hidden, unit = (size_t)v->merge_size * v->merge_size;
    size_t M = N / unit;
    size_t b = N * 3 * W;                                      /* qkv; the proj output reuses it */
    b = max_sz(b, N * F * (is25 ? 2 : 1));                     /* gate + up, or fc1 */
    b = max_sz(b, M * (unit * W + 2 * (size_t)v->out_hidden)); /* merger hidden, output, staging */
    if (include_pixels) b = max_sz(b, N * (size_t)vlm_vision_patch_dim(v));
    return b;
}

uint64_t vlm_vision_device_bytes(const vlm_vision_config *v, int is25, size_t N, int include_pixels) {
    size_t floats =
        2 * N * (size_t)v->width + vlm_vision_scratch_floats(v, is25, N, include_pixels) + N * (size_t)v->head_dim;
    return (uint64_t)floats * sizeof(float);
}

/* Device buffers plus the host-side tables of one call (layout, cos/sin staging). */
static uint64_t call_bytes(const vlm_vision_config *v, int is25, size_t N, size_t frames, size_t windows,
                           int include_pixels) {
    size_t unit = (size_t)v->merge_size * v->merge_size, M = N / unit;
    uint64_t host = (uint64_t)N * (size_t)(v->head_dim / 2) * sizeof(float) /* rot */
        + (uint64_t)N * (size_t)v->head_dim * sizeof(float)                 /* cos/sin staging */
        + (frames + 1 + (is25 ? windows + 1 + 2 * M : 0)) * sizeof(int);
    return vlm_vision_device_bytes(v, is25, N, include_pixels) + host;
}

int64_t vlm_vision_output_rows(const vlm_model_config *cfg, const vlm_grid_thw *grids, int n_images) {
    int N;
    if (vlm_vision_grids_check(&cfg->vision, grids, n_images, &N) != VLM_OK) return -1;
    return N / (cfg->vision.merge_size * cfg->vision.merge_size);
}

uint64_t vlm_vision_activation_bytes(const vlm_model_config *cfg, const vlm_grid_thw *grids, int n_images,
                                     int include_pixels) {
    int N;
    if (vlm_vision_grids_check(&cfg->vision, grids, n_images, &N) != VLM_OK) return 0;
    int64_t frames = 0;
    for (int i = 0; i < n_images; i++) frames += grids[i].t;
    int is25 = cfg->family == VLM_FAMILY_QWEN2_5_VL;
    return call_bytes(&cfg->vision, is25, (size_t)N, (size_t)frames,
                      (size_t)vlm_vision_max_windows(&cfg->vision, grids, n_images), include_pixels);
}

int64_t vlm_vision_max_pixels_fitting(const vlm_model_config *cfg, int n_images, uint64_t available,
                                      int include_pixels) {
    const vlm_vision_config *v = &cfg->vision;
    int is25 = cfg->family == VLM_FAMILY_QWEN2_5_VL;
    size_t unit = (size_t)v->merge_size * v->merge_size;
    if (n_images < 1) n_images = 1;
    /* g = merged tokens per image; windows bounded by 2g + 1 per image (any shape). */
    int64_t lo = 0, hi = VLM_VISION_MAX_PATCHES / (int64_t)unit / n_images;
    while (lo < hi) {
        int64_t g = (lo + hi + 1) / 2;
        size_t M = (size_t)g * (size_t)n_images;
        uint64_t b = call_bytes(v, is25, M * unit, (size_t)n_images, 2 * M + (size_t)n_images, include_pixels);
        if (b <= available) lo = g;
        else hi = g - 1;
    }
    int64_t side = (int64_t)v->patch_size * v->merge_size;
    return lo * side * side;
}

vlm_status vlm_vision_check_memory(const vlm_model_config *cfg, const vlm_grid_thw *grids, int n_images,
                                   uint64_t available, int include_pixels) {
    int N;
    VLM_TRY(vlm_vision_grids_check(&cfg->vision, grids, n_images, &N));
    uint64_t need = vlm_vision_activation_bytes(cfg, grids, n_images, include_pixels);
    if (need <= available) return VLM_OK;
    int64_t fit = vlm_vision_max_pixels_fitting(cfg, n_images, available, include_pixels);
    double mib = 1024.0 * 1024.0;
    if (fit <= 0)
        return vlm_err(VLM_ERR_NOMEM,
                       "vision encoder: %d image(s) of %d patches need %.1f MiB of activation memory, only %.1f MiB "
                       "available; no --max-pixels fits",
                       n_images, N, need / mib, available / mib);
    return vlm_err(VLM_ERR_NOMEM,
                   "vision encoder: %d image(s) of %d patches need %.1f MiB of activation memory, only %.1f MiB "
                   "available; --max-pixels %lld (or less) fits",
                   n_images, N, need / mib, available / mib, (long long)fit);
}

double vlm_vision_flops(const vlm_model_config *cfg, const vlm_grid_thw *grids, int n_images) {
    const vlm_vision_config *v = &cfg->vision;
    int is25 = cfg->family == VLM_FAMILY_QWEN2_5_VL;
    vlm_vision_layout l;
    if (vlm_vision_layout_build(v, is25, grids, n_images, &l) != VLM_OK) return 0;
    double N = l.n_patches, M = l.n_merged, W = v->width, F = v->mlp_hidden, unit = l.unit;
    double per_row = W * 3 * W + W * W + (is25 ? 3 : 2) * W * F; /* qkv, proj, MLP */
    double full = 0, win = 0;
    for (int s = 0; s < l.n_full; s++) {
        double n = l.full_segments[s + 1] - l.full_segments[s];
        full += n * n;
    }
    for (int s = 0; s < l.n_windows; s++) {
        double n = l.window_segments[s + 1] - l.window_segments[s];
        win += n * n;
    }
    double f = 2 * N * vlm_vision_patch_dim(v) * W;
    for (int b = 0; b < v->depth; b++)
        f += 2 * N * per_row + 4 * W * (vlm_vision_block_is_full(v, cfg->family, b) ? full : win);
    f += 2 * M * (unit * W) * (unit * W) + 2 * M * (unit * W) * v->out_hidden; /* merger */
    vlm_vision_layout_free(&l);
    return f;
}
