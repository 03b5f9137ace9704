/* The Qwen2-VL image processor: smart_resize, then (after the bicubic resize in resize.c) rescale,
 * normalize and patchify — see preprocess.h. */
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "base/memory.h"
#include "image/preprocess.h"

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

/* 8 RGB pixels (24 bytes; the next 4 must be readable) → 8 dwords R | G << 8 | B << 16 */
static inline __m256i load8_rgb(const uint8_t *p) {
    const __m256i shuf = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1, 0, 1, 2, -1, 3, 4, 5,
                                          -1, 6, 7, 8, -1, 9, 10, 11, -1);
    __m256i v = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(p + 12)), _mm_loadu_si128((const __m128i *)p));
    return _mm256_shuffle_epi8(v, shuf);
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

vlm_status vlm_image_patchify(const vlm_image *img, const vlm_preproc_config *cfg, vlm_pixel_values *out) {
    memset(out, 0, sizeof *out);
    const int P = cfg->patch_size, M = cfg->merge_size, T = cfg->temporal_patch_size;
    if (P <= 0 || M <= 0 || T <= 0 || P > 1024 || M > 64 || T > 64)
        return vlm_err(VLM_ERR_INVALID, "patchify: bad patch_size %d / merge_size %d / temporal_patch_size %d", P, M, T);
    const int unit = P * M;
    if (!img->rgb || img->height <= 0 || img->width <= 0 || img->height % unit || img->width % unit)
        return vlm_err(VLM_ERR_INVALID, "patchify: image %dx%d (height x width) is not a multiple of %d on each side",
                       img->height, img->width, unit);
    const int gh = img->height / P, gw = img->width / P, W = img->width;
    const int dim = 3 * T * P * P, plane = P * P;
    const int64_t n = (int64_t)gh * gw;
    out->data = vlm_image_buffer_alloc((size_t)n * (size_t)dim * sizeof(float), "pixel_values");
    if (!out->data) return VLM_ERR_NOMEM;
    out->n_patches = n;
    out->patch_dim = dim;
    out->grid_thw[0] = 1; /* one image, repeated to temporal_patch_size frames */
    out->grid_thw[1] = gh;
    out->grid_thw[2] = gw;
    out->resized_h = img->height;
    out->resized_w = img->width;
    float lut[3][256];
    build_lut(cfg, lut);
    const int bw_n = gw / M;
    /* rows: (h block, w block, h in block, w in block); each row (channel, frame, y, x). Plain
     * stores: the freshly faulted (kernel-zeroed) output pages are still in cache, which streaming
     * stores measured slower here. */
#pragma omp parallel for schedule(static) if (n > 64)
    for (int64_t r = 0; r < n; r++) {
        const int64_t blk = r / (M * M);
        const int in_blk = (int)(r % (M * M));
        const int py = (int)(blk / bw_n) * M + in_blk / M, px = (int)(blk % bw_n) * M + in_blk % M;
        float *dst = out->data + (size_t)r * dim;
        const uint8_t *src = img->rgb + ((size_t)py * P * W + (size_t)px * P) * 3;
        /* the 4-byte over-read of the vector path must stay inside the image */
        const int edge = (px + 1) * P == W && (py + 1) * P == img->height;
        for (int y = 0; y < P; y++) {
            const uint8_t *s = src + (size_t)y * W * 3;
            float *d0 = dst + y * P, *d1 = d0 + T * plane, *d2 = d1 + T * plane;
            if (P >= 8 && !(edge && y == P - 1)) {
                for (int x0 = 0;; x0 += 8) {
                    const int x = x0 + 8 <= P ? x0 : P - 8; /* the last chunk overlaps the previous one */
                    const __m256i v = load8_rgb(s + 3 * x), ff = _mm256_set1_epi32(255);
                    _mm256_storeu_ps(d0 + x, _mm256_i32gather_ps(lut[0], _mm256_and_si256(v, ff), 4));
                    _mm256_storeu_ps(d1 + x, _mm256_i32gather_ps(lut[1], _mm256_and_si256(_mm256_srli_epi32(v, 8), ff), 4));
                    _mm256_storeu_ps(d2 + x, _mm256_i32gather_ps(lut[2], _mm256_srli_epi32(v, 16), 4));
                    if (x0 + 8 >= P) break;
                }
                continue;
            }
            for (int x = 0; x < P; x++) {
                d0[x] = lut[0][s[3 * x]];
                d1[x] = lut[1][s[3 * x + 1]];
                d2[x] = lut[2][s[3 * x + 2]];
            }
        }
        for (int c = 0; c < 3; c++) /* the repeated frames */
            for (int t = 1; t < T; t++)
                memcpy(dst + (size_t)(c * T + t) * plane, dst + (size_t)c * T * plane, sizeof(float) * plane);
    }
    return VLM_OK;
}

vlm_status vlm_preprocess_image(const vlm_image *img, const vlm_preproc_config *cfg, long long min_pixels,
                                long long max_pixels, vlm_pixel_values *out) {
    memset(out, 0, sizeof *out);
    if (!img->rgb || img->width <= 0 || img->height <= 0)
        return vlm_err(VLM_ERR_INVALID, "preprocess: empty image (%dx%d)", img->width, img->height);
    if (img->width < VLM_PREPROCESS_MIN_SIDE || img->height < VLM_PREPROCESS_MIN_SIDE)
        return vlm_err(VLM_ERR_INVALID,
                       "image %dx%d is too small for the image processor (each side needs at least %d pixels)",
                       img->width, img->height, VLM_PREPROCESS_MIN_SIDE);
    long long lo = min_pixels > 0 ? min_pixels : cfg->min_pixels, hi = max_pixels > 0 ? max_pixels : cfg->max_pixels;
    if (min_pixels < 0 || max_pixels < 0 || lo > hi)
        return vlm_err(VLM_ERR_INVALID, "min_pixels %lld and max_pixels %lld must be positive with min <= max", lo, hi);
    if (!cfg->do_resize) return vlm_image_patchify(img, cfg, out);
    int rh, rw;
    VLM_TRY(vlm_smart_resize(img->height, img->width, cfg->patch_size * cfg->merge_size, lo, hi, &rh, &rw));
    vlm_image resized;
    VLM_TRY(vlm_image_resize_bicubic(img, rw, rh, &resized));
    vlm_status s = vlm_image_patchify(&resized, cfg, out);
    vlm_image_free(&resized);
    return s;
}
