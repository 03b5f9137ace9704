/* Fuzz target: config.json, preprocessor_config.json and generation_config.json parsing
 * (vlm_config_parse, vlm_preproc_config_parse, vlm_generation_config_parse), and the arithmetic
 * the parsed processor values feed (smart_resize, patchify).
 * The input is up to three JSON texts separated by NUL bytes: config.json, then optionally
 * preprocessor_config.json and generation_config.json. Any input must parse or fail with a message;
 * what parses must hold what the model code relies on, and preprocessing an image with it must
 * succeed or fail with a message — never a crash, an overflow, a bad cast or a leak. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

#include "image/preproc_config.h"
#include "image/preprocess.h"
#include "model/config.h"
#include "text/generation_config.h"

static void check(int cond) {
    if (!cond) __builtin_trap();
}

static void check_model(const vlm_model_config *c) {
    const vlm_text_config *t = &c->text;
    check(t->hidden > 0 && t->n_layers > 0 && t->n_heads > 0 && t->n_kv_heads > 0 && t->vocab > 0);
    check(t->head_dim * t->n_heads == t->hidden && t->n_heads % t->n_kv_heads == 0);
    check(t->head_dim % 2 == 0 && t->head_dim <= 256);
    check(t->mrope_section[0] >= 0 && t->mrope_section[1] >= 0 && t->mrope_section[2] >= 0);
    check(t->mrope_section[0] + t->mrope_section[1] + t->mrope_section[2] == t->head_dim / 2);
    check(t->rms_eps > 0 && t->rope_theta > 0);
    const vlm_vision_config *v = &c->vision;
    check(v->depth > 0 && v->n_heads > 0 && v->head_dim * v->n_heads == v->width && v->head_dim % 4 == 0);
    check(v->mlp_hidden > 0 && v->out_hidden > 0 && v->patch_size > 0 && v->merge_size > 0);
    check(v->n_fullatt >= 0 && v->n_fullatt <= VLM_MAX_FULLATT);
}

static void check_preproc(const vlm_preproc_config *p) {
    check(p->min_pixels > 0 && p->max_pixels >= p->min_pixels);
    check(p->patch_size > 0 && p->temporal_patch_size > 0 && p->merge_size > 0);
    check(p->patch_size <= VLM_MAX_PATCH_SIZE && p->temporal_patch_size <= VLM_MAX_TEMPORAL_PATCH_SIZE &&
          p->merge_size <= VLM_MAX_MERGE_SIZE);
    check(p->std[0] > 0 && p->std[1] > 0 && p->std[2] > 0);
}

/* Preprocesses a small gradient image with the parsed processor settings: the pixel limits are
 * capped so that a config asking for a huge image does not make every input slow. */
static void preprocess(const vlm_preproc_config *p) {
    static uint8_t rgb[40 * 56 * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 7);
    vlm_image img = {.width = 40, .height = 56, .rgb = rgb};
    int rh, rw;
    long long sizes[][2] = {{56, 40}, {1, 1}, {4000, 30}, {1LL << 31, 1LL << 31}};
    int factor = p->patch_size > (1 << 15) || p->merge_size > (1 << 15) ? 1 << 30 : p->patch_size * p->merge_size;
    for (int i = 0; i < 4; i++)
        if (vlm_smart_resize(sizes[i][0], sizes[i][1], factor, p->min_pixels, p->max_pixels, &rh, &rw) == VLM_OK)
            check(rh > 0 && rw > 0 && rh % factor == 0 && rw % factor == 0);
        else check(vlm_last_error()[0] != '\0');
    long long lo = p->min_pixels < (1 << 16) ? 0 : 3136, hi = p->max_pixels < (1 << 16) ? 0 : 1 << 16;
    if (lo && hi < lo) hi = lo;
    vlm_pixel_values pv;
    if (vlm_preprocess_image(&img, p, lo, hi, NULL, &pv) == VLM_OK) {
        check(pv.n_patches == vlm_grid_patches(&pv.grid) && pv.n_patches > 0);
        vlm_pixel_values_free(&pv);
    } else {
        check(vlm_last_error()[0] != '\0');
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    cJSON *json[3] = {NULL, NULL, NULL};
    size_t at = 0;
    for (int i = 0; i < 3 && at <= size; i++) { /* NUL-separated pieces */
        const uint8_t *z = memchr(data + at, 0, size - at);
        size_t len = z ? (size_t)(z - (data + at)) : size - at;
        json[i] = cJSON_ParseWithLength((const char *)data + at, len);
        at += len + 1;
    }
    vlm_model_config cfg;
    if (json[0]) {
        if (vlm_config_parse(json[0], "fuzz config.json", &cfg) == VLM_OK) check_model(&cfg);
        else check(vlm_last_error()[0] != '\0');
    }
    vlm_preproc_config pp;
    if (vlm_preproc_config_parse(json[1], "fuzz preprocessor_config.json", &pp) == VLM_OK) {
        check_preproc(&pp);
        if (json[1]) preprocess(&pp);
    } else {
        check(vlm_last_error()[0] != '\0');
    }
    vlm_generation_config gc;
    if (vlm_generation_config_parse(json[2], "fuzz generation_config.json", &gc) == VLM_OK)
        check(gc.n_eos >= 0 && gc.n_eos <= VLM_GEN_MAX_EOS);
    else check(vlm_last_error()[0] != '\0');
    for (int i = 0; i < 3; i++) cJSON_Delete(json[i]);
    return 0;
}
