/* TEMPORARY (development scaffolding, removed when src/runtime/pipeline.c lands): the model entry
 * points of include/vlm.h report that the pipeline is not built yet, so code written against the
 * API (the benchmark) links and reports errors cleanly while the pipeline is assembled. */
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "kernels/backend.h"
#include "vlm.h"

vlm_status vlm_load(const vlm_load_options *o, vlm_model **out) {
    *out = NULL;
    return vlm_err(VLM_ERR_UNAVAILABLE, "loading %s: the inference pipeline is not built yet (development build)",
                   o->model_id);
}
void vlm_model_free(vlm_model *m) { (void)m; }
void vlm_model_get_info(const vlm_model *m, vlm_model_info *info) {
    (void)m;
    memset(info, 0, sizeof *info);
}
vlm_status vlm_generate(vlm_model *m, const vlm_request *r, vlm_result *out) {
    (void)m, (void)r;
    memset(out, 0, sizeof *out);
    return vlm_err(VLM_ERR_UNAVAILABLE, "the inference pipeline is not built yet (development build)");
}
void vlm_result_free(vlm_result *r) { memset(r, 0, sizeof *r); }
int vlm_cuda_usable(char *reason, size_t cap) { return vlm_cuda_available(reason, cap); }
