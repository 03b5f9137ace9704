/* Internal to src/image: Pillow's BICUBIC resampling split into coefficient tables (resize.c) and a
 * strip-wise SIMD engine (resize_simd.c) that produces any band of output rows on its own, so the
 * processor can resize and patchify one strip at a time in cache (preprocess.c). */
#ifndef VLM_IMAGE_RESAMPLE_H
#define VLM_IMAGE_RESAMPLE_H

#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "io/image_decode.h"

enum { VLM_RESAMPLE_BITS = 22 }; /* Pillow's PRECISION_BITS for 8-bit images: 32 - 8 - 2 */

/* One axis: per output index the first input index, the tap count and the fixed-point weights. */
typedef struct {
    int in_size, out_size, ksize;
    int max_n;   /* the largest tap count */
    int *bounds; /* [out_size][2]: first tap, number of taps */
    int32_t *k;  /* [out_size][ksize]: weights with 22 fractional bits, zero past the tap count */
} vlm_resample_axis;

/* precompute_coeffs + normalize_coeffs_8bpc of Pillow's Resample.c, in the same double operations. */
vlm_status vlm_resample_axis_init(vlm_resample_axis *a, int in_size, int out_size);
void vlm_resample_axis_free(vlm_resample_axis *a);

typedef struct {
    int in_w, in_h, out_w, out_h;
    int need_h, need_v; /* a pass runs only when its size changes (Pillow skips the other) */
    vlm_resample_axis h, v;
} vlm_resampler;

vlm_status vlm_resampler_init(vlm_resampler *rs, int in_w, int in_h, int out_w, int out_h);
void vlm_resampler_free(vlm_resampler *rs);
/* Scratch bytes one thread needs to produce strips of `strip` output rows starting at multiples of
 * `strip`. */
size_t vlm_resampler_scratch(const vlm_resampler *rs, int strip);
/* Output rows [y0, y1) of the resized image into dst (rows of out_w·3 bytes), bit-exact with the
 * whole-image resize. scratch: vlm_resampler_scratch bytes, 64-byte aligned, one per thread. */
void vlm_resampler_rows(const vlm_resampler *rs, const vlm_image *in, int y0, int y1, uint8_t *dst, void *scratch);

/* 8 RGB pixels (24 bytes; the 4 after them must be readable) → 8 dwords R | G << 8 | B << 16. */
static inline __m256i vlm_load8_rgb(const uint8_t *p) {
    const __m256i shuf = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1, 0, 1, 2, -1, 3, 4, 5,
                                          -1, 6, 7, 8, -1, 9, 10, 11, -1);
    __m256i v = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(p + 12)), _mm_loadu_si128((const __m128i *)p));
    return _mm256_shuffle_epi8(v, shuf);
}

#endif
