/* The Qwen2-VL image processor (transformers' Qwen2VLImageProcessor, used by Qwen2-VL and
 * Qwen2.5-VL), bit for bit: smart_resize, Pillow's BICUBIC resize of the 8-bit RGB image, rescale by
 * rescale_factor (in double, then float32), normalize with mean/std (float32), and patchify into
 * pixel_values [grid_t·grid_h·grid_w, C·T·P·P] with the temporal repeat and the 2×2 merge-group row
 * order; image_grid_thw alongside.
 *
 *   vlm_image img;  vlm_image_decode_file(path, 0, &img, NULL);
 *   vlm_pixel_values pv;  vlm_preprocess_image(&img, &preproc_cfg, 0, 0, pool, &pv);
 *   ... pv.data [pv.n_patches × pv.patch_dim], pv.grid ...
 *   vlm_pixel_values_free(&pv);  vlm_image_free(&img);
 *
 * Several images are preprocessed one by one; the caller concatenates their rows and grids. */
#ifndef VLM_IMAGE_PREPROCESS_H
#define VLM_IMAGE_PREPROCESS_H

#include <stdint.h>

#include "base/error.h"
#include "base/pool.h"
#include "image/grid.h"
#include "image/preproc_config.h"
#include "io/image_decode.h"

typedef struct {
    float *data;       /* [n_patches, patch_dim], vlm_alloc'ed */
    int64_t n_patches; /* grid_t · grid_h · grid_w */
    int patch_dim;     /* 3 channels · temporal_patch_size · patch_size² (vlm_preproc_patch_dim) */
    vlm_grid_thw grid; /* (t, h, w) in patches */
    int resized_h, resized_w;
} vlm_pixel_values;

/* smart_resize(height, width, factor, min_pixels, max_pixels) of transformers: both sides rounded to
 * multiples of factor (Python's round: halves to even), then scaled down to at most max_pixels or up
 * to at least min_pixels keeping the aspect ratio; computed in double as Python does. Errors: a side
 * below 1, aspect ratio over 200 (transformers' ValueError), a result too large to allocate. */
vlm_status vlm_smart_resize(long long height, long long width, int factor, long long min_pixels, long long max_pixels,
                            int *out_h, int *out_w);

/* Pillow's Image.resize((out_w, out_h), Resampling.BICUBIC) on an RGB image, exactly (libImaging/
 * Resample.c: separable, horizontal pass first over the rows the vertical pass needs, 8-bit
 * intermediate, 22-bit fixed-point coefficients). out is allocated here. */
vlm_status vlm_image_resize_bicubic(const vlm_image *in, int out_w, int out_h, vlm_pool *pool, vlm_image *out);
/* The same computed by the plain scalar reference (for tests and benchmarks). */
vlm_status vlm_image_resize_bicubic_ref(const vlm_image *in, int out_w, int out_h, vlm_image *out);

/* Rescale + normalize + patchify an image that already has the final size (sides multiples of
 * patch_size · merge_size): the last steps of the processor. Every function here that takes a pool
 * runs on its threads (the model's backend's; NULL: the calling thread alone). */
vlm_status vlm_image_patchify(const vlm_image *img, const vlm_preproc_config *cfg, vlm_pool *pool,
                              vlm_pixel_values *out);

/* The whole processor on one decoded image. min_pixels / max_pixels override the config when > 0
 * (transformers' min_pixels / max_pixels processor arguments). Runs on the pool's threads (the
 * model's backend's; NULL: the calling thread). */
vlm_status vlm_preprocess_image(const vlm_image *img, const vlm_preproc_config *cfg, long long min_pixels,
                                long long max_pixels, vlm_pool *pool, vlm_pixel_values *out);
/* The processor's first half: its checks, smart_resize and the bicubic resize (a copy when the
 * config has do_resize false), into out (allocated here). vlm_image_patchify of out gives the same
 * pixel_values as vlm_preprocess_image: a caller can keep the smaller 8-bit image until it needs
 * the rows (the engine's queue does). */
vlm_status vlm_preprocess_resize(const vlm_image *img, const vlm_preproc_config *cfg, long long min_pixels,
                                 long long max_pixels, vlm_pool *pool, vlm_image *out);
void vlm_pixel_values_free(vlm_pixel_values *pv);

#endif
