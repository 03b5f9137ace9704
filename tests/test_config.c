/* Config parsing (both families, both layouts, the variants seen in the wild), weight binding
 * (missing / unexpected / wrongly shaped tensors), parameter counts, and --model-id resolution. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "image/preproc_config.h"
#include "io/file.h"
#include "io/hf_cache.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/weights.h"
#include "text/generation_config.h"

/* The three configs as the runtime composes them: the generation config's stop ids default to
 * config.json's eos_token_id. */
typedef struct {
    vlm_text_config text;
    vlm_vision_config vision;
    vlm_token_ids tokens;
    vlm_family family;
    vlm_preproc_config preproc;
    vlm_generation_config gen;
} configs;

static vlm_status parse_str(const char *json, const char *prep, const char *gen, configs *cfg) {
    cJSON *c = cJSON_Parse(json), *p = prep ? cJSON_Parse(prep) : NULL, *g = gen ? cJSON_Parse(gen) : NULL;
    vlm_model_config mc;
    vlm_status s = vlm_config_parse(c, "config.json", &mc);
    if (s == VLM_OK) s = vlm_preproc_config_parse(p, "preprocessor_config.json", &cfg->preproc);
    if (s == VLM_OK) s = vlm_generation_config_parse(g, "generation_config.json", &cfg->gen);
    if (s == VLM_OK) {
        vlm_generation_config_default_eos(&cfg->gen, mc.tokens.eos_ids, mc.tokens.n_eos);
        cfg->text = mc.text, cfg->vision = mc.vision, cfg->tokens = mc.tokens, cfg->family = mc.family;
    }
    cJSON_Delete(c);
    cJSON_Delete(p);
    cJSON_Delete(g);
    return s;
}

static void test_fixture_configs(void) {
    vlm_model_config c;
    CHECK_OK(vlm_config_load(test_fixture("models/tiny-qwen2_5-vl"), &c));
    CHECK(c.family == VLM_FAMILY_QWEN2_5_VL);
    CHECK(c.text.hidden == 64 && c.text.n_layers == 2 && c.text.n_heads == 4 && c.text.n_kv_heads == 2);
    CHECK(c.text.head_dim == 16 && c.text.intermediate == 128 && c.text.tie_embeddings == 1);
    CHECK(c.text.mrope_section[0] == 2 && c.text.mrope_section[1] == 3 && c.text.mrope_section[2] == 3);
    CHECK(c.vision.depth == 4 && c.vision.width == 32 && c.vision.n_heads == 2 && c.vision.mlp_hidden == 48);
    CHECK(c.vision.out_hidden == 64 && c.vision.n_fullatt == 2 && c.vision.fullatt_blocks[1] == 3);
    vlm_preproc_config preproc;
    vlm_generation_config gen;
    CHECK_OK(vlm_preproc_config_load(test_fixture("models/tiny-qwen2_5-vl"), &preproc));
    CHECK_OK(vlm_generation_config_load(test_fixture("models/tiny-qwen2_5-vl"), &gen));
    CHECK(preproc.min_pixels == 3136 && preproc.max_pixels == 12845056);
    CHECK(gen.n_eos == 2 && gen.eos_ids[0] == 151645 && gen.eos_ids[1] == 151643);
    CHECK(c.tokens.image_token_id == 151655 && c.tokens.vision_start_id == 151652);

    CHECK_OK(vlm_config_load(test_fixture("models/tiny-qwen2-vl-c"), &c));
    CHECK(c.family == VLM_FAMILY_QWEN2_VL);
    CHECK(c.vision.width == 40 && c.vision.out_hidden == 48 && c.vision.mlp_hidden == 160);
    CHECK(c.vision.head_dim == 20 && c.text.hidden == 48 && c.text.n_heads == 3);
    CHECK(vlm_vision_block_is_full(&c.vision, c.family, 1));
}

static const char *k_q25 =
    "{\"model_type\": \"qwen2_5_vl\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_attention_heads\": 4,"
    " \"num_key_value_heads\": 2, \"intermediate_size\": 128, \"vocab_size\": 1000,"
    " \"rope_scaling\": {\"type\": \"mrope\", \"mrope_section\": [2, 3, 3]},"
    " \"vision_config\": {\"hidden_size\": 32, \"out_hidden_size\": 64, \"num_heads\": 2, \"depth\": 2}}";

static void test_variants(void) {
    configs c;
    /* text keys under text_config, rope_type instead of type */
    CHECK_OK(parse_str("{\"model_type\": \"qwen2_5_vl\", \"tie_word_embeddings\": true, \"text_config\": {"
                       "\"hidden_size\": 2048, \"num_hidden_layers\": 36, \"num_attention_heads\": 16,"
                       " \"num_key_value_heads\": 2, \"intermediate_size\": 11008, \"vocab_size\": 151936,"
                       " \"rope_scaling\": {\"rope_type\": \"default\", \"mrope_section\": [16, 24, 24]}},"
                       " \"vision_config\": {\"hidden_size\": 1280, \"out_hidden_size\": 2048}}",
                       NULL, NULL, &c));
    CHECK(c.text.hidden == 2048 && c.text.n_layers == 36 && c.text.head_dim == 128 && c.text.tie_embeddings);
    /* omitted vision keys take the class defaults */
    CHECK(c.vision.depth == 32 && c.vision.n_heads == 16 && c.vision.mlp_hidden == 3420 && c.vision.n_fullatt == 4);
    /* preprocessor size {shortest_edge, longest_edge} */
    CHECK_OK(parse_str(k_q25, "{\"size\": {\"shortest_edge\": 100, \"longest_edge\": 5000}}", NULL, &c));
    CHECK(c.preproc.min_pixels == 100 && c.preproc.max_pixels == 5000);
    /* no generation_config eos: config.json's single id */
    CHECK_OK(parse_str("{\"model_type\": \"qwen2_5_vl\", \"eos_token_id\": 7, \"hidden_size\": 64,"
                       " \"num_attention_heads\": 4, \"rope_scaling\": {\"mrope_section\": [2, 3, 3]}}",
                       NULL, "{\"temperature\": 0.1, \"top_k\": 1}", &c));
    CHECK(c.gen.n_eos == 1 && c.gen.eos_ids[0] == 7 && c.gen.top_k == 1 && c.gen.temperature < 0.11f);
}

static void test_bad_configs(void) {
    configs c;
    CHECK_ERR(parse_str("{\"model_type\": \"llava\"}", NULL, NULL, &c), VLM_ERR_UNSUPPORTED, "qwen2_5_vl");
    CHECK_ERR(parse_str("{\"model_type\": \"qwen2_5_vl\", \"quantization_config\": {\"quant_method\": \"awq\"}}", NULL,
                        NULL, &c),
              VLM_ERR_UNSUPPORTED, "awq");
    CHECK_ERR(parse_str("{\"model_type\": \"qwen2_5_vl\", \"hidden_size\": \"big\"}", NULL, NULL, &c), VLM_ERR_FORMAT,
              "hidden_size");
    CHECK_ERR(parse_str("{\"model_type\": \"qwen2_5_vl\", \"hidden_size\": 64, \"num_attention_heads\": 4,"
                        " \"rope_scaling\": {\"mrope_section\": [2, 3, 4]}}",
                        NULL, NULL, &c),
              VLM_ERR_FORMAT, "add up to head_dim/2 = 8");
    CHECK_ERR(
        parse_str("{\"model_type\": \"qwen2_5_vl\", \"hidden_size\": 64, \"num_attention_heads\": 5}", NULL, NULL, &c),
        VLM_ERR_FORMAT, "multiple of num_attention_heads");
    CHECK_ERR(parse_str(k_q25, "{\"image_mean\": [0.5, 0.5]}", NULL, &c), VLM_ERR_FORMAT, "image_mean");
    /* patch geometry beyond the bounds (a fuzzer's merge_size 48 with patch_size 57 made the smallest
     * resized image 2736 x 2736 pixels) */
    CHECK_ERR(parse_str(k_q25, "{\"patch_size\": 57, \"merge_size\": 48}", NULL, &c), VLM_ERR_FORMAT,
              "merge_size 48 beyond what vlm takes");
    CHECK_ERR(parse_str(k_q25, "{\"temporal_patch_size\": 9}", NULL, &c), VLM_ERR_FORMAT, "temporal_patch_size 9");
    CHECK_ERR(parse_str("{\"model_type\": \"qwen2_5_vl\", \"hidden_size\": 64, \"num_attention_heads\": 4,"
                        " \"rope_scaling\": {\"mrope_section\": [2, 3, 3]}, \"vision_config\": {\"patch_size\": 65}}",
                        NULL, NULL, &c),
              VLM_ERR_FORMAT, "vision patch_size 65");
    /* found by fuzzing: an eps that is 0 as a float32 (a zero row would divide by zero), an infinite one */
    CHECK_ERR(parse_str("{\"model_type\": \"qwen2_5_vl\", \"hidden_size\": 64, \"num_attention_heads\": 4,"
                        " \"rms_norm_eps\": 1e-46, \"rope_scaling\": {\"mrope_section\": [2, 3, 3]}}",
                        NULL, NULL, &c),
              VLM_ERR_FORMAT, "rms_norm_eps (1e-46) and rope_theta (1e+06) must be positive and finite");
    CHECK_ERR(parse_str("{\"model_type\": \"qwen2_5_vl\", \"hidden_size\": 64, \"num_attention_heads\": 4,"
                        " \"rms_norm_eps\": 1e39, \"rope_scaling\": {\"mrope_section\": [2, 3, 3]}}",
                        NULL, NULL, &c),
              VLM_ERR_FORMAT, "rms_norm_eps (1e+39)");
    vlm_write_file(test_tmp("bad.json"), "{\"model_type\": ", 15);
    cJSON *root;
    CHECK_ERR(vlm_json_load(test_tmp("bad.json"), &root), VLM_ERR_FORMAT, "bad.json is not valid JSON");
    vlm_model_config mc;
    CHECK_ERR(vlm_config_load(test_tmp("nowhere"), &mc), VLM_ERR_IO, "nowhere/config.json");
}

static void test_bind_fixtures(void) {
    const char *models[] = {"models/tiny-qwen2_5-vl", "models/tiny-qwen2-vl", "models/tiny-qwen2-vl-c"};
    for (int i = 0; i < 3; i++) {
        vlm_model_config c;
        vlm_safetensors *st;
        CHECK_OK(vlm_config_load(test_fixture(models[i]), &c));
        CHECK_OK(vlm_st_open(test_fixture(models[i]), &st));
        if (!st) continue;
        vlm_vision_weights vw;
        vlm_text_weights tw;
        CHECK_OK(vlm_bind_weights(st, &c, 1, 1, &vw, &tw));
        /* parameter counts from the config equal the tensors in the file */
        int64_t total = 0;
        for (int e = 0; e < st->n_entries; e++) {
            vlm_tensor t = vlm_st_tensor(&st->entries[e]);
            total += vlm_tensor_numel(&t);
        }
        CHECK(vlm_vision_param_count(&c) + vlm_text_param_count(&c) == total);
        CHECK(vw.patch_embed.ndim == 2 && vw.patch_embed.shape[1] == 1176);
        CHECK(tw.lm_head.data == (c.text.tie_embeddings ? tw.embed.data : tw.lm_head.data));
        vlm_vision_weights_free(&vw);
        vlm_text_weights_free(&tw);
        vlm_st_close(st);
    }
}

/* Writes a copy of the tiny Qwen2-VL-c checkpoint with one tensor renamed, reshaped or added. */
static const char *mutated(const char *tag, const char *drop, const char *add, int64_t reshape0) {
    vlm_safetensors *st;
    if (vlm_st_open(test_fixture("models/tiny-qwen2-vl-c"), &st) != VLM_OK) return NULL;
    int n = st->n_entries;
    vlm_st_spec *specs = calloc((size_t)n + 1, sizeof *specs);
    const void **data = calloc((size_t)n + 1, sizeof *data);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const vlm_st_entry *e = &st->entries[i];
        if (drop && !strcmp(e->name, drop)) {
            if (!reshape0) continue;
            specs[k] = (vlm_st_spec){e->name, e->dtype, 1, {reshape0}};
            data[k++] = e->data;
            continue;
        }
        specs[k] = (vlm_st_spec){e->name, e->dtype, e->ndim, {0}};
        memcpy(specs[k].shape, e->shape, sizeof specs[k].shape);
        data[k++] = e->data;
    }
    static uint16_t extra[4];
    if (add) {
        specs[k] = (vlm_st_spec){add, VLM_DT_BF16, 1, {4}};
        data[k++] = extra;
    }
    const char *dir = test_tmp(tag);
    char path[1024];
    vlm_mkdirs(dir);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    vlm_st_save(path, specs, data, k, NULL, NULL, 0);
    snprintf(path, sizeof path, "%s/config.json", dir);
    vlm_copy_file(test_fixture("models/tiny-qwen2-vl-c/config.json"), path);
    free(specs);
    free(data);
    vlm_st_close(st);
    return dir;
}

static void check_bind_error(const char *dir, vlm_status want, const char *needle) {
    vlm_model_config c;
    vlm_safetensors *st;
    CHECK_OK(vlm_config_load(dir, &c));
    CHECK_OK(vlm_st_open(dir, &st));
    if (!st) return;
    vlm_vision_weights vw;
    vlm_text_weights tw;
    CHECK_ERR(vlm_bind_weights(st, &c, 1, 1, &vw, &tw), want, needle);
    vlm_vision_weights_free(&vw);
    vlm_text_weights_free(&tw);
    vlm_st_close(st);
}

static void test_bind_errors(void) {
    check_bind_error(mutated("missing", "model.layers.1.mlp.up_proj.weight", NULL, 0), VLM_ERR_NOT_FOUND,
                     "missing tensor model.layers.1.mlp.up_proj.weight");
    check_bind_error(mutated("unexpected", NULL, "model.layers.0.extra.weight", 0), VLM_ERR_FORMAT,
                     "unexpected tensor model.layers.0.extra.weight");
    check_bind_error(mutated("shape", "visual.blocks.1.norm2.bias", NULL, 41), VLM_ERR_FORMAT,
                     "visual.blocks.1.norm2.bias has shape [41], the config implies [40]");
}

static void test_hf_cache(void) {
    char out[4096];
    const char *cache = test_tmp("hub");
    char snap[1024], ref[1024];
    snprintf(snap, sizeof snap, "%s/models--Qwen--Tiny-VL/snapshots/abc123", cache);
    vlm_mkdirs(snap);
    snprintf(ref, sizeof ref, "%s/models--Qwen--Tiny-VL/refs", cache);
    vlm_mkdirs(ref);
    strcat(ref, "/main");
    vlm_write_file(ref, "abc123\n", 7);
    strcat(snap, "/config.json");
    vlm_copy_file(test_fixture("models/tiny-qwen2-vl/config.json"), snap);
    setenv("HF_HUB_CACHE", cache, 1);
    CHECK_OK(vlm_resolve_model("Qwen/Tiny-VL", out, sizeof out));
    CHECK(strstr(out, "snapshots/abc123") != NULL);
    CHECK_ERR(vlm_resolve_model("Qwen/Missing-VL", out, sizeof out), VLM_ERR_NOT_FOUND, "models--Qwen--Missing-VL");
    unsetenv("HF_HUB_CACHE");
    setenv("HF_HOME", test_tmpdir(), 1); /* HF_HOME/hub */
    CHECK_OK(vlm_resolve_model("Qwen/Tiny-VL", out, sizeof out));
    unsetenv("HF_HOME");
    CHECK_OK(vlm_resolve_model(test_fixture("models/tiny-qwen2-vl"), out, sizeof out));
    CHECK_ERR(vlm_resolve_model(test_tmpdir(), out, sizeof out), VLM_ERR_NOT_FOUND, "no config.json");
    CHECK_ERR(vlm_resolve_model("./not/here/at/all", out, sizeof out), VLM_ERR_NOT_FOUND, "not found");
}

int main(void) {
    RUN(test_fixture_configs);
    RUN(test_variants);
    RUN(test_bad_configs);
    RUN(test_bind_fixtures);
    RUN(test_bind_errors);
    RUN(test_hf_cache);
    return test_summary();
}
