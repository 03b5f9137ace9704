/* Parts of run_onnx built in every configuration: export options, the public availability query,
 * and the answers of a build without protobuf-c (no exporter) or without ONNX Runtime (no session):
 * those report VLM_ERR_UNAVAILABLE with the reason instead of being absent. */
#include <stdio.h>
#include <string.h>

#include "runtime/onnx/onnx_vision.h"
#include "vlm.h"

void vlm_onnx_export_options_init(vlm_onnx_export_options *o) {
    memset(o, 0, sizeof *o);
    o->weights = VLM_ONNX_WEIGHTS_STORED;
    o->external = VLM_ONNX_EXTERNAL_AUTO;
}

const char *vlm_onnx_weights_name(vlm_onnx_weights w) { return w == VLM_ONNX_WEIGHTS_F32 ? "f32" : "stored"; }

int vlm_onnx_weights_parse(const char *s, vlm_onnx_weights *out) {
    if (!strcmp(s, "stored")) *out = VLM_ONNX_WEIGHTS_STORED;
    else if (!strcmp(s, "f32")) *out = VLM_ONNX_WEIGHTS_F32;
    else return -1;
    return 0;
}

int vlm_onnx_external_parse(const char *s, vlm_onnx_external *out) {
    if (!strcmp(s, "auto")) *out = VLM_ONNX_EXTERNAL_AUTO;
    else if (!strcmp(s, "always")) *out = VLM_ONNX_EXTERNAL_ALWAYS;
    else if (!strcmp(s, "never")) *out = VLM_ONNX_EXTERNAL_NEVER;
    else return -1;
    return 0;
}

int vlm_onnx_available(char *reason, size_t cap) { return vlm_ort_available(reason, cap); }

#ifndef VLM_HAVE_ONNX_EXPORT
#define NO_EXPORT                                                                                                      \
    "ONNX export is not built in: protobuf-c (protoc-c, libprotobuf-c) or onnx.proto (libonnx-dev) "                   \
    "was not found when vlm was configured; run scripts/setup.sh and reconfigure"

int vlm_onnx_export_available(char *reason, size_t cap) {
    if (reason && cap) snprintf(reason, cap, "%s", NO_EXPORT);
    return 0;
}

vlm_status vlm_onnx_export(const char *model_dir, const char *out_dir, const vlm_onnx_export_options *o) {
    (void)out_dir, (void)o;
    return vlm_err(VLM_ERR_UNAVAILABLE, "exporting %s: %s", model_dir, NO_EXPORT);
}
#endif

#ifndef VLM_HAVE_ORT
#define NO_ORT                                                                                                         \
    "run_onnx is unavailable: vlm was built without ONNX Runtime (third_party/onnxruntime from "                       \
    "scripts/setup.sh, or ORT_ROOT, was not found when vlm was configured)"

int vlm_ort_available(char *reason, size_t cap) {
    if (reason && cap) snprintf(reason, cap, "%s", NO_ORT);
    return 0;
}

vlm_status vlm_ort_vision_open(const char *path, int threads, vlm_device device, vlm_ort_vision **out) {
    (void)threads, (void)device;
    *out = NULL;
    return vlm_err(VLM_ERR_UNAVAILABLE, "opening %s: %s", path, NO_ORT);
}

void vlm_ort_vision_close(vlm_ort_vision *v) { (void)v; }

int vlm_ort_vision_out_hidden(const vlm_ort_vision *v) {
    (void)v;
    return 0;
}

int vlm_ort_vision_patch_dim(const vlm_ort_vision *v) {
    (void)v;
    return 0;
}

vlm_status vlm_ort_vision_run(vlm_ort_vision *v, const float *pixel_values, int64_t n_patches, int patch_dim,
                              const vlm_grid_thw *grids, int n_images, float *out, int64_t out_rows) {
    (void)v, (void)pixel_values, (void)n_patches, (void)patch_dim, (void)grids, (void)n_images, (void)out,
        (void)out_rows;
    return vlm_err(VLM_ERR_UNAVAILABLE, "%s", NO_ORT);
}
#endif
