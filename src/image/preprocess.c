/* The Qwen2-VL image processor: smart_resize, then (after the bicubic resize in resize.c) rescale,
 * normalize and patchify — see preprocess.h. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "base/memory.h"
#include "image/preprocess.h"
#include "image/resample.h"

/* transformers refuses nothing by size except the aspect ratio, but its channel-format guess reads
 * an array 1 or 3 pixels tall as channels-first, so for such images it has no meaningful result to
 * match; we refuse images with a side under this many pixels instead of inventing one. */
enum { VLM_PREPROCESS_MIN_SIDE = 4 };

/* Python's round() of a float: to the nearest integer, halves to the even neighbour. */
static double py_round(double x) {
    double f = floor(x), d = x - f;
    if (d > 0.5) return f + 1.0;
    if (d < 0.5) return f;
    return fmod(f, 2.0) == 0.0 ? f : f + 1.0;
}

vlm_status vlm_smart_resize(long long height, long long width, int factor, long long min_pixels, long long max_pixels,
                            int *out_h, int *out_w) {
    if (height < 1 || width < 1)
        return vlm_err(VLM_ERR_INVALID, "smart_resize: image size %lldx%lld (height x width) is empty", height, width);
    if (factor < 1) return vlm_err(VLM_ERR_INVALID, "smart_resize: factor %d must be positive", factor);
    if (height > 1LL << 31 || width > 1LL << 31) /* keeps the products below in range */
        return vlm_err(VLM_ERR_INVALID, "smart_resize: image size %lldx%lld (height x width) is too large", height,
                       width);
    const double hd = (double)height, wd = (double)width;
    const double ratio = (height > width ? hd : wd) / (height > width ? wd : hd);
    if (ratio > 200)
        return vlm_err(VLM_ERR_INVALID,
                       "absolute aspect ratio must be smaller than 200, got %.17g (image %lldx%lld, height x width)",
                       ratio, height, width);
    long long h = (long long)py_round(hd / factor) * factor, w = (long long)py_round(wd / factor) * factor;
    if (h * w > max_pixels) {
        const double beta = sqrt((double)(height * width) / (double)max_pixels);
        h = (long long)floor(hd / beta / factor) * factor;
        w = (long long)floor(wd / beta / factor) * factor;
        if (h < factor) h = factor;
        if (w < factor) w = factor;
    } else if (h * w < min_pixels) {
        const double beta = sqrt((double)min_pixels / (double)(height * width));
        h = (long long)ceil(hd * beta / factor) * factor;
        w = (long long)ceil(wd * beta / factor) * factor;
    }
    if (h < 1 || w < 1 || h > 1 << 30 || w > 1 << 30 || h * w > VLM_IMAGE_DEFAULT_MAX_PIXELS)
        return vlm_err(VLM_ERR_INVALID,
                       "smart_resize: %lldx%lld resized to %lldx%lld (height x width) with min_pixels %lld, "
                       "max_pixels %lld: more than %lld pixels",
                       height, width, h, w, min_pixels, max_pixels, VLM_IMAGE_DEFAULT_MAX_PIXELS);
    *out_h = (int)h;
    *out_w = (int)w;
    return VLM_OK;
}

void vlm_pixel_values_free(vlm_pixel_values *pv) {
    if (!pv) return;
    vlm_free(pv->data);
    memset(pv, 0, sizeof *pv);
}

/* value(u8) for each channel: (float)(u8 · rescale_factor in double), then (v − mean) / std in
 * float32 — numpy's arithmetic in transformers' rescale() and normalize(). */
static void build_lut(const vlm_preproc_config *cfg, float lut[3][256]) {
    for (int c = 0; c < 3; c++)
        for (int v = 0; v < 256; v++) {
            float x = cfg->do_rescale ? (float)((double)v * cfg->rescale_factor) : (float)v;
            if (cfg->do_normalize) x = (x - cfg->mean[c]) / cfg->std[c];
            lut[c][v] = x;
        }
}

/* Checks the sizes and allocates out for an image of h x w. */
static vlm_status patchify_alloc(int h, int w, const vlm_preproc_config *cfg, vlm_pixel_values *out) {
    memset(out, 0, sizeof *out);
    const int P = cfg->patch_size, M = cfg->merge_size, T = cfg->temporal_patch_size;
    if (P <= 0 || M <= 0 || T <= 0 || P > 1024 || M > 64 || T > 64)
        return vlm_err(VLM_ERR_INVALID, "patchify: bad patch_size %d / merge_size %d / temporal_patch_size %d", P, M,
                       T);
    const int unit = P * M;
    if (h <= 0 || w <= 0 || h % unit || w % unit)
        return vlm_err(VLM_ERR_INVALID, "patchify: image %dx%d (height x width) is not a multiple of %d on each side",
                       h, w, unit);
    const int64_t gh = h / P, gw = w / P, dim = vlm_preproc_patch_dim(cfg);
    out->data = vlm_image_buffer_alloc((size_t)(gh * gw) * (size_t)dim * sizeof(float), "pixel_values");
    if (!out->data) return VLM_ERR_NOMEM;
    out->n_patches = gh * gw;
    out->patch_dim = (int)dim;
    out->grid = (vlm_grid_thw){1, (int)gh, (int)gw}; /* one image, repeated to temporal_patch_size frames */
    out->resized_h = h;
    out->resized_w = w;
    return VLM_OK;
}

/* One row of one patch: P pixels → their values for every channel c and frame t, at
 * dst + (c·T + t)·P² (the frames are the same image repeated). vector: the 4 bytes after the
 * pixels can be read, so 8 pixels at a time are looked up with gathers. */
static inline void patch_row(const uint8_t *s, float *dst, int P, int T, const float lut[3][256], int vector) {
    const int plane = P * P;
    if (vector && P >= 8) {
        const __m256i ff = _mm256_set1_epi32(255);
        for (int x0 = 0;; x0 += 8) {
            const int x = x0 + 8 <= P ? x0 : P - 8; /* the last chunk overlaps the previous one */
            const __m256i v = vlm_load8_rgb(s + 3 * x);
            const __m256 c0 = _mm256_i32gather_ps(lut[0], _mm256_and_si256(v, ff), 4);
            const __m256 c1 = _mm256_i32gather_ps(lut[1], _mm256_and_si256(_mm256_srli_epi32(v, 8), ff), 4);
            const __m256 c2 = _mm256_i32gather_ps(lut[2], _mm256_srli_epi32(v, 16), 4);
            for (int t = 0; t < T; t++) {
                _mm256_storeu_ps(dst + (size_t)t * plane + x, c0);
                _mm256_storeu_ps(dst + (size_t)(T + t) * plane + x, c1);
                _mm256_storeu_ps(dst + (size_t)(2 * T + t) * plane + x, c2);
            }
            if (x0 + 8 >= P) break;
        }
        return;
    }
    for (int x = 0; x < P; x++)
        for (int c = 0; c < 3; c++)
            for (int t = 0; t < T; t++) dst[(size_t)(c * T + t) * plane + x] = lut[c][s[3 * x + c]];
}

/* The pixel_values rows of merge-block rows [bh0, bh1), from image rows [y0, y_end) stored at
 * `rows` (W·3 bytes each). Rows are ordered (h block, w block, h in block, w in block).
 * slack: 4 bytes past the last image row can be read. Plain stores: freshly faulted (kernel-zeroed)
 * output pages are still in cache, and streaming stores measured slower. */
static void patchify_rows(const uint8_t *rows, int y0, int y_end, int W, int bh0, int bh1,
                          const vlm_preproc_config *cfg, const float lut[3][256], float *out, int slack) {
    const int P = cfg->patch_size, M = cfg->merge_size, T = cfg->temporal_patch_size;
    const int dim = 3 * T * P * P, bw_n = W / (P * M);
    for (int64_t r = (int64_t)bh0 * bw_n * M * M; r < (int64_t)bh1 * bw_n * M * M; r++) {
        const int64_t blk = r / (M * M);
        const int m = (int)(r % (M * M));
        const int py = (int)(blk / bw_n) * M + m / M, px = (int)(blk % bw_n) * M + m % M;
        const uint8_t *src = rows + ((size_t)(py * P - y0) * W + (size_t)px * P) * 3;
        for (int y = 0; y < P; y++) {
            const int vector = slack || py * P + y < y_end - 1 || (px + 1) * P < W;
            patch_row(src + (size_t)y * W * 3, out + (size_t)r * dim + (size_t)y * P, P, T, lut, vector);
        }
    }
}

typedef struct {
    const vlm_image *img;
    const vlm_preproc_config *cfg;
    float lut[3][256];
    vlm_pixel_values *out;
} patchify_job;

static void patchify_task(void *arg, int64_t bh, int thread) {
    const patchify_job *j = arg;
    patchify_rows(j->img->rgb, 0, j->img->height, j->img->width, (int)bh, (int)bh + 1, j->cfg, j->lut, j->out->data, 0);
}

static vlm_status patchify(const vlm_image *img, const vlm_preproc_config *cfg, vlm_pool *pool, vlm_pixel_values *out) {
    if (!img->rgb) return vlm_err(VLM_ERR_INVALID, "patchify: empty image");
    VLM_TRY(patchify_alloc(img->height, img->width, cfg, out));
    patchify_job j = {.img = img, .cfg = cfg, .out = out};
    build_lut(cfg, j.lut);
    const int unit = cfg->patch_size * cfg->merge_size, bh_n = img->height / unit;
    vlm_pool_run(pool, out->n_patches > 64 ? 0 : 1, bh_n, patchify_task, &j);
    return VLM_OK;
}

vlm_status vlm_image_patchify(const vlm_image *img, const vlm_preproc_config *cfg, vlm_pool *pool,
                              vlm_pixel_values *out) {
    return patchify(img, cfg, pool, out);
}

/* Resize and patchify fused, strip by strip: each thread resizes a band of output rows into a
 * buffer that stays in cache and turns it into pixel_values rows right away, so the resized image
 * (and the horizontal pass's intermediate) never exist in full. Same bytes as resize + patchify. */
typedef struct {
    const vlm_image *img;
    const vlm_preproc_config *cfg;
    const vlm_resampler *rs;
    float lut[3][256];
    uint8_t *scratch;
    size_t per, rows_bytes;
    int strip, rh, rw, unit;
    vlm_pixel_values *out;
} strip_job;

static void strip_task(void *arg, int64_t i, int thread) {
    const strip_job *j = arg;
    uint8_t *mine = j->scratch + j->per * (size_t)thread, *rows = mine + (j->per - j->rows_bytes);
    const int y0 = (int)i * j->strip, y1 = y0 + j->strip < j->rh ? y0 + j->strip : j->rh;
    vlm_resampler_rows(j->rs, j->img, y0, y1, rows, mine);
    patchify_rows(rows, y0, y1, j->rw, y0 / j->unit, y1 / j->unit, j->cfg, j->lut, j->out->data, 1);
}

static vlm_status resize_patchify(const vlm_image *img, int rh, int rw, const vlm_preproc_config *cfg, vlm_pool *pool,
                                  vlm_pixel_values *out) {
    vlm_resampler rs;
    VLM_TRY(vlm_resampler_init(&rs, img->width, img->height, rw, rh));
    vlm_status s = patchify_alloc(rh, rw, cfg, out);
    const int unit = cfg->patch_size * cfg->merge_size;
    const int strip = unit * (unit >= 48 ? 1 : (48 + unit - 1) / unit); /* 56 rows for Qwen's 28 */
    const int nthreads = out->n_patches > 64 ? vlm_pool_threads(pool) : 1;
    const size_t rows_bytes = (size_t)strip * rw * 3 + 64; /* + slack for the vector loads */
    const size_t per = (vlm_resampler_scratch(&rs, strip) + rows_bytes + 63) / 64 * 64;
    uint8_t *scratch = s == VLM_OK ? vlm_alloc(per * (size_t)nthreads, "preprocess scratch") : NULL;
    if (s == VLM_OK && !scratch) s = VLM_ERR_NOMEM;
    if (s == VLM_OK) {
        strip_job j = {.img = img,
                       .cfg = cfg,
                       .rs = &rs,
                       .scratch = scratch,
                       .per = per,
                       .rows_bytes = rows_bytes,
                       .strip = strip,
                       .rh = rh,
                       .rw = rw,
                       .unit = unit,
                       .out = out};
        build_lut(cfg, j.lut);
        vlm_pool_run(pool, nthreads, (rh + strip - 1) / strip, strip_task, &j);
    }
    vlm_free(scratch);
    vlm_resampler_free(&rs);
    if (s != VLM_OK) vlm_pixel_values_free(out);
    return s;
}

/* The processor's checks and target size: *rh x *rw, or the image's own size without do_resize. */
static vlm_status target_size(const vlm_image *img, const vlm_preproc_config *cfg, long long min_pixels,
                              long long max_pixels, int *rh, int *rw) {
    if (!img->rgb || img->width <= 0 || img->height <= 0)
        return vlm_err(VLM_ERR_INVALID, "preprocess: empty image (%dx%d)", img->width, img->height);
    if (img->width < VLM_PREPROCESS_MIN_SIDE || img->height < VLM_PREPROCESS_MIN_SIDE)
        return vlm_err(VLM_ERR_INVALID,
                       "image %dx%d is too small for the image processor (each side needs at least %d pixels)",
                       img->width, img->height, VLM_PREPROCESS_MIN_SIDE);
    long long lo = min_pixels > 0 ? min_pixels : cfg->min_pixels, hi = max_pixels > 0 ? max_pixels : cfg->max_pixels;
    if (min_pixels < 0 || max_pixels < 0 || lo > hi)
        return vlm_err(VLM_ERR_INVALID, "min_pixels %lld and max_pixels %lld must be positive with min <= max", lo, hi);
    *rh = img->height, *rw = img->width;
    const int unit = cfg->patch_size * cfg->merge_size;
    if (!cfg->do_resize && (unit <= 0 || img->height % unit || img->width % unit))
        return vlm_err(VLM_ERR_INVALID, "image %dx%d: without do_resize each side must be a multiple of %d", img->width,
                       img->height, unit);
    if (!cfg->do_resize) return VLM_OK;
    return vlm_smart_resize(img->height, img->width, cfg->patch_size * cfg->merge_size, lo, hi, rh, rw);
}

vlm_status vlm_preprocess_image(const vlm_image *img, const vlm_preproc_config *cfg, long long min_pixels,
                                long long max_pixels, vlm_pool *pool, vlm_pixel_values *out) {
    memset(out, 0, sizeof *out);
    int rh, rw;
    VLM_TRY(target_size(img, cfg, min_pixels, max_pixels, &rh, &rw));
    if (!cfg->do_resize) return patchify(img, cfg, pool, out);
    vlm_status s = resize_patchify(img, rh, rw, cfg, pool, out);
    if (s != VLM_OK) return vlm_err_ctx(s, "preprocessing a %dx%d image", img->width, img->height);
    return VLM_OK;
}

vlm_status vlm_preprocess_resize(const vlm_image *img, const vlm_preproc_config *cfg, long long min_pixels,
                                 long long max_pixels, vlm_pool *pool, vlm_image *out) {
    memset(out, 0, sizeof *out);
    int rh, rw;
    VLM_TRY(target_size(img, cfg, min_pixels, max_pixels, &rh, &rw));
    vlm_status s;
    if (cfg->do_resize) {
        s = vlm_image_resize_bicubic(img, rw, rh, pool, out);
    } else {
        s = vlm_image_alloc(out, img->width, img->height);
        if (s == VLM_OK) memcpy(out->rgb, img->rgb, (size_t)img->width * img->height * 3);
    }
    if (s != VLM_OK) return vlm_err_ctx(s, "preprocessing a %dx%d image", img->width, img->height);
    return VLM_OK;
}
