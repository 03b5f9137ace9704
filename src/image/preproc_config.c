#include "image/preproc_config.h"

#include <cjson/cJSON.h>

#include "io/file.h"
#include "io/json.h"

vlm_status vlm_preproc_config_parse(const cJSON *p, const char *what, vlm_preproc_config *pp) {
    /* Qwen2VLImageProcessor defaults */
    *pp = (vlm_preproc_config){.min_pixels = 56 * 56,
                               .max_pixels = 28 * 28 * 1280,
                               .patch_size = 14,
                               .temporal_patch_size = 2,
                               .merge_size = 2,
                               .rescale_factor = 1.0 / 255.0,
                               .mean = {0.48145466f, 0.4578275f, 0.40821073f},
                               .std = {0.26862954f, 0.26130258f, 0.27577711f},
                               .do_resize = 1,
                               .do_rescale = 1,
                               .do_normalize = 1};
    if (!p) return VLM_OK;
    int64_t v;
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(p, "size");
    if (cJSON_IsObject(size)) {
        v = pp->min_pixels;
        VLM_TRY(vlm_json_int(size, "shortest_edge", what, &v));
        pp->min_pixels = v;
        v = pp->max_pixels;
        VLM_TRY(vlm_json_int(size, "longest_edge", what, &v));
        pp->max_pixels = v;
    }
    v = pp->min_pixels;
    VLM_TRY(vlm_json_int(p, "min_pixels", what, &v));
    pp->min_pixels = v;
    v = pp->max_pixels;
    VLM_TRY(vlm_json_int(p, "max_pixels", what, &v));
    pp->max_pixels = v;
    VLM_TRY(vlm_json_i32(p, "patch_size", what, &pp->patch_size));
    VLM_TRY(vlm_json_i32(p, "temporal_patch_size", what, &pp->temporal_patch_size));
    VLM_TRY(vlm_json_i32(p, "merge_size", what, &pp->merge_size));
    VLM_TRY(vlm_json_num(p, "rescale_factor", what, &pp->rescale_factor));
    VLM_TRY(vlm_json_bool(p, "do_resize", what, &pp->do_resize));
    VLM_TRY(vlm_json_bool(p, "do_rescale", what, &pp->do_rescale));
    VLM_TRY(vlm_json_bool(p, "do_normalize", what, &pp->do_normalize));
    double arr[3];
    int n = 0;
    VLM_TRY(vlm_json_num_array(p, "image_mean", what, arr, 3, &n));
    if (n == 3)
        for (int i = 0; i < 3; i++) pp->mean[i] = (float)arr[i];
    else if (n) return vlm_err(VLM_ERR_FORMAT, "%s: image_mean must have 3 entries", what);
    n = 0;
    VLM_TRY(vlm_json_num_array(p, "image_std", what, arr, 3, &n));
    if (n == 3)
        for (int i = 0; i < 3; i++) pp->std[i] = (float)arr[i];
    else if (n) return vlm_err(VLM_ERR_FORMAT, "%s: image_std must have 3 entries", what);
    for (int i = 0; i < 3; i++)
        if (!(pp->std[i] > 0)) return vlm_err(VLM_ERR_FORMAT, "%s: image_std must be positive", what);
    if (pp->min_pixels <= 0 || pp->max_pixels < pp->min_pixels)
        return vlm_err(VLM_ERR_FORMAT, "%s: need 0 < min_pixels (%lld) <= max_pixels (%lld)", what, pp->min_pixels,
                       pp->max_pixels);
    if (pp->patch_size <= 0 || pp->temporal_patch_size <= 0 || pp->merge_size <= 0)
        return vlm_err(VLM_ERR_FORMAT, "%s: patch sizes must be positive", what);
    return vlm_patch_geometry_check(what, "", "merge_size", pp->patch_size, pp->temporal_patch_size, pp->merge_size);
}

vlm_status vlm_patch_geometry_check(const char *what, const char *prefix, const char *merge_key, int patch,
                                    int temporal, int merge) {
    if (patch > VLM_MAX_PATCH_SIZE || temporal > VLM_MAX_TEMPORAL_PATCH_SIZE || merge > VLM_MAX_MERGE_SIZE)
        return vlm_err(VLM_ERR_FORMAT,
                       "%s: %spatch_size %d / temporal_patch_size %d / %s %d beyond what vlm takes (%d / %d / %d; "
                       "Qwen2-VL and Qwen2.5-VL use 14 / 2 / 2)",
                       what, prefix, patch, temporal, merge_key, merge, VLM_MAX_PATCH_SIZE, VLM_MAX_TEMPORAL_PATCH_SIZE,
                       VLM_MAX_MERGE_SIZE);
    return VLM_OK;
}

vlm_status vlm_preproc_config_load(const char *dir, vlm_preproc_config *pp) {
    char path[VLM_PATH_MAX];
    VLM_TRY(vlm_path_join(path, sizeof path, dir, "preprocessor_config.json"));
    if (!vlm_path_exists(path)) return vlm_preproc_config_parse(NULL, path, pp);
    cJSON *p = NULL;
    VLM_TRY(vlm_json_load(path, &p));
    vlm_status s = vlm_preproc_config_parse(p, path, pp);
    cJSON_Delete(p);
    return s;
}
