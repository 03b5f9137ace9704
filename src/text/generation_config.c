#include "text/generation_config.h"

#include <cjson/cJSON.h>

#include "io/file.h"
#include "io/json.h"

vlm_status vlm_generation_config_parse(const cJSON *g, const char *what, vlm_generation_config *gc) {
    /* transformers GenerationConfig defaults */
    *gc = (vlm_generation_config){.do_sample = 0,
                                  .temperature = 1.0f,
                                  .top_p = 1.0f,
                                  .repetition_penalty = 1.0f,
                                  .top_k = 50,
                                  .n_eos = 0,
                                  .pad_token_id = -1};
    if (!g) return VLM_OK;
    double d;
    VLM_TRY(vlm_json_bool(g, "do_sample", what, &gc->do_sample));
    d = gc->temperature;
    VLM_TRY(vlm_json_num(g, "temperature", what, &d));
    gc->temperature = (float)d;
    d = gc->top_p;
    VLM_TRY(vlm_json_num(g, "top_p", what, &d));
    gc->top_p = (float)d;
    d = gc->repetition_penalty;
    VLM_TRY(vlm_json_num(g, "repetition_penalty", what, &d));
    gc->repetition_penalty = (float)d;
    VLM_TRY(vlm_json_i32(g, "top_k", what, &gc->top_k));
    VLM_TRY(vlm_json_i32(g, "pad_token_id", what, &gc->pad_token_id));
    return vlm_json_int_array(g, "eos_token_id", what, gc->eos_ids, VLM_GEN_MAX_EOS, &gc->n_eos);
}

vlm_status vlm_generation_config_load(const char *dir, vlm_generation_config *gc) {
    char path[VLM_PATH_MAX];
    VLM_TRY(vlm_path_join(path, sizeof path, dir, "generation_config.json"));
    if (!vlm_path_exists(path)) return vlm_generation_config_parse(NULL, path, gc);
    cJSON *g = NULL;
    VLM_TRY(vlm_json_load(path, &g));
    vlm_status s = vlm_generation_config_parse(g, path, gc);
    cJSON_Delete(g);
    return s;
}

void vlm_generation_config_default_eos(vlm_generation_config *gc, const int *eos_ids, int n) {
    if (gc->n_eos) return;
    for (int i = 0; i < n && i < VLM_GEN_MAX_EOS; i++) gc->eos_ids[gc->n_eos++] = eos_ids[i];
}
