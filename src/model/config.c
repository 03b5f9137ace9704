#include "model/config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "image/preproc_config.h"
#include "io/file.h"
#include "io/json.h"

const char *vlm_family_name(vlm_family f) { return f == VLM_FAMILY_QWEN2_5_VL ? "Qwen2.5-VL" : "Qwen2-VL"; }

int vlm_vision_block_is_full(const vlm_vision_config *v, vlm_family f, int b) {
    if (f == VLM_FAMILY_QWEN2_VL) return 1;
    for (int i = 0; i < v->n_fullatt; i++)
        if (v->fullatt_blocks[i] == b) return 1;
    return 0;
}

/* Text keys live under text_config in newer files and at top level in older ones: prefer the
 * nested object, fall back to the top level, per key. */
static const cJSON *text_obj(const cJSON *cfg, const char *key) {
    const cJSON *tc = cJSON_GetObjectItemCaseSensitive(cfg, "text_config");
    if (cJSON_IsObject(tc) && cJSON_GetObjectItemCaseSensitive(tc, key)) return tc;
    return cfg;
}

#define TEXT_I32(key, dst) VLM_TRY(vlm_json_i32(text_obj(c, key), key, what, dst))

static vlm_status parse_family(const cJSON *c, const char *what, vlm_model_config *cfg) {
    const char *mt = NULL;
    VLM_TRY(vlm_json_str(c, "model_type", what, &mt));
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(c, "architectures");
    const char *a0 = cJSON_IsArray(arch) && cJSON_IsString(cJSON_GetArrayItem(arch, 0))
        ? cJSON_GetArrayItem(arch, 0)->valuestring
        : NULL;
    if (mt && !strcmp(mt, "qwen2_5_vl")) cfg->family = VLM_FAMILY_QWEN2_5_VL;
    else if (mt && !strcmp(mt, "qwen2_vl")) cfg->family = VLM_FAMILY_QWEN2_VL;
    else if (!mt && a0 && !strcmp(a0, "Qwen2_5_VLForConditionalGeneration")) cfg->family = VLM_FAMILY_QWEN2_5_VL;
    else if (!mt && a0 && !strcmp(a0, "Qwen2VLForConditionalGeneration")) cfg->family = VLM_FAMILY_QWEN2_VL;
    else
        return vlm_err(VLM_ERR_UNSUPPORTED,
                       "%s: model_type \"%s\" (architecture %s) is not supported; supported: qwen2_5_vl "
                       "(Qwen2_5_VLForConditionalGeneration), qwen2_vl (Qwen2VLForConditionalGeneration)",
                       what, mt ? mt : "(none)", a0 ? a0 : "(none)");
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s",
             cfg->family == VLM_FAMILY_QWEN2_5_VL ? "qwen2_5_vl" : "qwen2_vl");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(c, "quantization_config");
    if (cJSON_IsObject(q)) {
        const char *method = NULL;
        VLM_TRY(vlm_json_str(q, "quant_method", what, &method));
        return vlm_err(VLM_ERR_UNSUPPORTED,
                       "%s: pre-quantized checkpoints (quant_method \"%s\", e.g. AWQ/GPTQ) are not supported; "
                       "use the bf16 checkpoint and `--quantize` or `vlm quantize`",
                       what, method ? method : "?");
    }
    return VLM_OK;
}

static vlm_status parse_text(const cJSON *c, const char *what, vlm_model_config *cfg) {
    vlm_text_config *t = &cfg->text;
    /* Qwen2_5_VLTextConfig / Qwen2VLTextConfig defaults */
    *t = (vlm_text_config){.hidden = 8192,
                           .n_layers = 80,
                           .n_heads = 64,
                           .n_kv_heads = 8,
                           .intermediate = 29568,
                           .vocab = 152064,
                           .max_positions = 32768,
                           .rms_eps = 1e-5f,
                           .rope_theta = 1000000.0,
                           .tie_embeddings = 0};
    TEXT_I32("hidden_size", &t->hidden);
    TEXT_I32("num_hidden_layers", &t->n_layers);
    TEXT_I32("num_attention_heads", &t->n_heads);
    t->n_kv_heads = t->n_heads;
    TEXT_I32("num_key_value_heads", &t->n_kv_heads);
    TEXT_I32("intermediate_size", &t->intermediate);
    TEXT_I32("vocab_size", &t->vocab);
    TEXT_I32("max_position_embeddings", &t->max_positions);
    double eps = t->rms_eps, theta = t->rope_theta;
    VLM_TRY(vlm_json_num(text_obj(c, "rms_norm_eps"), "rms_norm_eps", what, &eps));
    VLM_TRY(vlm_json_num(text_obj(c, "rope_theta"), "rope_theta", what, &theta));
    t->rms_eps = (float)eps;
    t->rope_theta = theta;
    /* tie_word_embeddings is a top-level (model) flag, but some files repeat it in text_config */
    VLM_TRY(vlm_json_bool(text_obj(c, "tie_word_embeddings"), "tie_word_embeddings", what, &t->tie_embeddings));
    if (t->hidden <= 0 || t->n_layers <= 0 || t->n_heads <= 0 || t->n_kv_heads <= 0 || t->vocab <= 0 ||
        t->intermediate <= 0)
        return vlm_err(VLM_ERR_FORMAT, "%s: text sizes must be positive", what);
    if (t->hidden % t->n_heads)
        return vlm_err(VLM_ERR_FORMAT, "%s: hidden_size %d is not a multiple of num_attention_heads %d", what,
                       t->hidden, t->n_heads);
    if (t->n_heads % t->n_kv_heads)
        return vlm_err(VLM_ERR_FORMAT, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", what,
                       t->n_heads, t->n_kv_heads);
    t->head_dim = t->hidden / t->n_heads;
    if (t->head_dim > 256) return vlm_err(VLM_ERR_UNSUPPORTED, "%s: head_dim %d is larger than 256", what, t->head_dim);
    if (t->head_dim % 2) return vlm_err(VLM_ERR_FORMAT, "%s: head_dim %d must be even", what, t->head_dim);
    /* eps is used as a float: 1e-46 would be 0 there (a zero row then divides by zero), 1e39 infinity */
    if (!(t->rms_eps > 0) || !isfinite(t->rms_eps) || !(theta > 0) || !isfinite(theta))
        return vlm_err(VLM_ERR_FORMAT,
                       "%s: rms_norm_eps (%g) and rope_theta (%g) must be positive and finite (eps as a float32)", what,
                       eps, theta);

    /* rope_scaling: {"type"|"rope_type": "mrope"|"default", "mrope_section": [t, h, w]} */
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(text_obj(c, "rope_scaling"), "rope_scaling");
    int n = 0;
    if (cJSON_IsObject(rs)) {
        const char *type = NULL;
        VLM_TRY(vlm_json_str(rs, "rope_type", what, &type));
        if (!type) VLM_TRY(vlm_json_str(rs, "type", what, &type));
        if (type && strcmp(type, "mrope") != 0 && strcmp(type, "default") != 0)
            return vlm_err(VLM_ERR_UNSUPPORTED, "%s: rope_scaling type \"%s\" is not supported (mrope, default)", what,
                           type);
        VLM_TRY(vlm_json_int_array(rs, "mrope_section", what, t->mrope_section, 3, &n));
    }
    if (n != 3) return vlm_err(VLM_ERR_FORMAT, "%s: rope_scaling.mrope_section must list 3 sections (t, h, w)", what);
    int sum = t->mrope_section[0] + t->mrope_section[1] + t->mrope_section[2];
    if (t->mrope_section[0] < 0 || t->mrope_section[1] < 0 || t->mrope_section[2] < 0 || sum != t->head_dim / 2)
        return vlm_err(VLM_ERR_FORMAT, "%s: mrope_section [%d, %d, %d] must add up to head_dim/2 = %d", what,
                       t->mrope_section[0], t->mrope_section[1], t->mrope_section[2], t->head_dim / 2);
    const char *dt = NULL;
    VLM_TRY(vlm_json_str(text_obj(c, "torch_dtype"), "torch_dtype", what, &dt));
    if (!dt) VLM_TRY(vlm_json_str(text_obj(c, "dtype"), "dtype", what, &dt));
    snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "%s", dt ? dt : "");
    return VLM_OK;
}

static vlm_status parse_vision(const cJSON *c, const char *what, vlm_model_config *cfg) {
    vlm_vision_config *v = &cfg->vision;
    const cJSON *vc = cJSON_GetObjectItemCaseSensitive(c, "vision_config");
    if (vc && !cJSON_IsObject(vc)) return vlm_err(VLM_ERR_FORMAT, "%s: vision_config must be an object", what);
    int is25 = cfg->family == VLM_FAMILY_QWEN2_5_VL;
    /* class defaults: Qwen2_5_VLVisionConfig / Qwen2VLVisionConfig */
    *v = (vlm_vision_config){.depth = 32,
                             .width = is25 ? 3584 : 1280,
                             .n_heads = 16,
                             .mlp_hidden = is25 ? 3420 : 0,
                             .out_hidden = 3584,
                             .in_channels = 3,
                             .patch_size = 14,
                             .temporal_patch_size = 2,
                             .merge_size = 2,
                             .window_size = 112,
                             .n_fullatt = is25 ? 4 : 0,
                             .norm_eps = 1e-6f};
    if (is25) {
        int full[4] = {7, 15, 23, 31};
        memcpy(v->fullatt_blocks, full, sizeof full);
    }
    VLM_TRY(vlm_json_i32(vc, "depth", what, &v->depth));
    VLM_TRY(vlm_json_i32(vc, "num_heads", what, &v->n_heads));
    VLM_TRY(vlm_json_i32(vc, "in_channels", what, &v->in_channels));
    VLM_TRY(vlm_json_i32(vc, "in_chans", what, &v->in_channels));
    VLM_TRY(vlm_json_i32(vc, "patch_size", what, &v->patch_size));
    VLM_TRY(vlm_json_i32(vc, "temporal_patch_size", what, &v->temporal_patch_size));
    VLM_TRY(vlm_json_i32(vc, "spatial_merge_size", what, &v->merge_size));
    if (is25) {
        VLM_TRY(vlm_json_i32(vc, "hidden_size", what, &v->width));
        VLM_TRY(vlm_json_i32(vc, "intermediate_size", what, &v->mlp_hidden));
        VLM_TRY(vlm_json_i32(vc, "out_hidden_size", what, &v->out_hidden));
        VLM_TRY(vlm_json_i32(vc, "window_size", what, &v->window_size));
        if (cJSON_GetObjectItemCaseSensitive(vc, "fullatt_block_indexes"))
            VLM_TRY(vlm_json_int_array(vc, "fullatt_block_indexes", what, v->fullatt_blocks, VLM_MAX_FULLATT,
                                       &v->n_fullatt));
        const char *act = NULL;
        VLM_TRY(vlm_json_str(vc, "hidden_act", what, &act));
        if (act && strcmp(act, "silu") != 0)
            return vlm_err(VLM_ERR_UNSUPPORTED, "%s: vision hidden_act \"%s\" is not supported for qwen2_5_vl (silu)",
                           what, act);
    } else {
        VLM_TRY(vlm_json_i32(vc, "embed_dim", what, &v->width));
        VLM_TRY(vlm_json_i32(vc, "hidden_size", what, &v->out_hidden));
        double ratio = 4;
        VLM_TRY(vlm_json_num(vc, "mlp_ratio", what, &ratio));
        v->mlp_hidden = (int)(v->width * ratio); /* int(embed_dim * mlp_ratio), as transformers */
        const char *act = NULL;
        VLM_TRY(vlm_json_str(vc, "hidden_act", what, &act));
        if (act && strcmp(act, "quick_gelu") != 0)
            return vlm_err(VLM_ERR_UNSUPPORTED,
                           "%s: vision hidden_act \"%s\" is not supported for qwen2_vl (quick_gelu)", what, act);
    }
    if (v->depth <= 0 || v->width <= 0 || v->n_heads <= 0 || v->mlp_hidden <= 0 || v->out_hidden <= 0 ||
        v->patch_size <= 0 || v->temporal_patch_size <= 0 || v->merge_size <= 0 || v->in_channels <= 0)
        return vlm_err(VLM_ERR_FORMAT, "%s: vision sizes must be positive", what);
    VLM_TRY(vlm_patch_geometry_check(what, "vision ", "spatial_merge_size", v->patch_size, v->temporal_patch_size,
                                     v->merge_size));
    if (v->width % v->n_heads)
        return vlm_err(VLM_ERR_FORMAT, "%s: vision width %d is not a multiple of num_heads %d", what, v->width,
                       v->n_heads);
    v->head_dim = v->width / v->n_heads;
    if (v->head_dim % 4)
        return vlm_err(VLM_ERR_FORMAT, "%s: vision head_dim %d must be a multiple of 4 (2-D rotary)", what,
                       v->head_dim);
    if (is25 && (v->window_size <= 0 || v->window_size % (v->patch_size * v->merge_size)))
        return vlm_err(VLM_ERR_FORMAT, "%s: window_size %d must be a positive multiple of %d", what, v->window_size,
                       v->patch_size * v->merge_size);
    /* indexes beyond depth are accepted and never match, as in transformers */
    for (int i = 0; i < v->n_fullatt; i++)
        if (v->fullatt_blocks[i] < 0)
            return vlm_err(VLM_ERR_FORMAT, "%s: fullatt_block_indexes[%d] = %d is negative", what, i,
                           v->fullatt_blocks[i]);
    if (v->head_dim > 256)
        return vlm_err(VLM_ERR_UNSUPPORTED, "%s: vision head_dim %d is larger than 256", what, v->head_dim);
    return VLM_OK;
}

static vlm_status parse_tokens(const cJSON *c, const char *what, vlm_model_config *cfg) {
    vlm_token_ids *t = &cfg->tokens;
    *t = (vlm_token_ids){.image_token_id = 151655,
                         .video_token_id = 151656,
                         .vision_start_id = 151652,
                         .vision_end_id = 151653,
                         .bos_token_id = -1};
    VLM_TRY(vlm_json_i32(text_obj(c, "image_token_id"), "image_token_id", what, &t->image_token_id));
    VLM_TRY(vlm_json_i32(text_obj(c, "video_token_id"), "video_token_id", what, &t->video_token_id));
    VLM_TRY(vlm_json_i32(text_obj(c, "vision_start_token_id"), "vision_start_token_id", what, &t->vision_start_id));
    VLM_TRY(vlm_json_i32(text_obj(c, "vision_end_token_id"), "vision_end_token_id", what, &t->vision_end_id));
    VLM_TRY(vlm_json_i32(text_obj(c, "bos_token_id"), "bos_token_id", what, &t->bos_token_id));
    return vlm_json_int_array(text_obj(c, "eos_token_id"), "eos_token_id", what, t->eos_ids, VLM_MAX_EOS, &t->n_eos);
}

vlm_status vlm_config_parse(const cJSON *c, const char *what, vlm_model_config *cfg) {
    memset(cfg, 0, sizeof *cfg);
    if (!cJSON_IsObject(c)) return vlm_err(VLM_ERR_FORMAT, "%s: must be a JSON object", what);
    VLM_TRY(parse_family(c, what, cfg));
    VLM_TRY(parse_text(c, what, cfg));
    VLM_TRY(parse_vision(c, what, cfg));
    return parse_tokens(c, what, cfg);
}

vlm_status vlm_config_load(const char *dir, vlm_model_config *cfg) {
    char path[VLM_PATH_MAX];
    VLM_TRY(vlm_path_join(path, sizeof path, dir, "config.json"));
    cJSON *c = NULL;
    VLM_TRY(vlm_json_load(path, &c));
    vlm_status s = vlm_config_parse(c, path, cfg);
    cJSON_Delete(c);
    return s;
}
