/* The image processor's settings: preprocessor_config.json (transformers' Qwen2VLImageProcessor),
 * with the class defaults for every key the file omits (and for a missing file). */
#ifndef VLM_IMAGE_PREPROC_CONFIG_H
#define VLM_IMAGE_PREPROC_CONFIG_H

#include "base/error.h"
#include "image/grid.h"

typedef struct {
    long long min_pixels, max_pixels;
    int patch_size, temporal_patch_size, merge_size;
    double rescale_factor;
    float mean[3], std[3];
    int do_resize, do_rescale, do_normalize;
} vlm_preproc_config;

/* Values in one row of pixel_values: 3 channels (RGB) x temporal_patch_size x patch_size^2 (1176
 * for the published models). */
static inline int vlm_preproc_patch_dim(const vlm_preproc_config *c) {
    return 3 * c->temporal_patch_size * c->patch_size * c->patch_size;
}

/* Parses a preprocessor_config.json object; p == NULL gives the class defaults. `what` names the
 * file in errors. Accepts `size: {shortest_edge, longest_edge}` in place of min/max_pixels. */
struct cJSON;
vlm_status vlm_preproc_config_parse(const struct cJSON *p, const char *what, vlm_preproc_config *pp);
/* Reads DIR/preprocessor_config.json, or gives the class defaults when the file is absent. */
vlm_status vlm_preproc_config_load(const char *dir, vlm_preproc_config *pp);
/* The patch geometry against the bounds of image/grid.h, for preprocessor_config.json and
 * config.json's vision_config alike: an error naming the keys ("PREFIXpatch_size", MERGE_KEY). */
vlm_status vlm_patch_geometry_check(const char *what, const char *prefix, const char *merge_key, int patch,
                                    int temporal, int merge);

#endif
