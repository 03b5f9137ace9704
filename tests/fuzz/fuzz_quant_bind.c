/* Fuzz target: binding a quantized checkpoint (model/weights.h, vlm_quant_bind) and running the
 * quantized kernels on whatever bytes bind. Any input must bind or fail with a message; what binds
 * must multiply and embed without reading out of bounds. Seed: corpus/fuzz_quant_bind/ (made by
 * make_quant_seed.py: a one-layer model, hidden 64, vocab 32). */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <string.h>

#include "base/cpu.h"
#include "io/safetensors.h"
#include "kernels/cpu/cpu_kernels.h"
#include "model/config.h"
#include "model/weights.h"

/* The kernels' context: a pool of the threads set_threads asked for (0: every core). */
static vlm_cpu_ctx g_ctx;
static void set_threads(int n) {
    vlm_pool_free(g_ctx.pool);
    g_ctx.pool = NULL;
    if (vlm_pool_create(n, &g_ctx.pool) != VLM_OK) g_ctx.pool = NULL; /* one thread */
}

static const char k_config[] =
    "{\"model_type\": \"qwen2_5_vl\", \"hidden_size\": 64, \"num_hidden_layers\": 1, \"num_attention_heads\": 2,"
    " \"num_key_value_heads\": 1, \"intermediate_size\": 64, \"vocab_size\": 32, \"tie_word_embeddings\": true,"
    " \"rope_scaling\": {\"type\": \"mrope\", \"mrope_section\": [4, 6, 6]},"
    " \"vision_config\": {\"depth\": 1, \"hidden_size\": 32, \"num_heads\": 2, \"intermediate_size\": 48,"
    " \"out_hidden_size\": 64}}";

static void run(const vlm_tensor *w) {
    float x[2 * 64], y[2 * 64];
    for (int i = 0; i < 2 * 64; i++) x[i] = (float)(i % 7) - 3.0f;
    if (w->shape[1] <= 64 && w->shape[0] <= 64) vlm_cpu_matmul(&g_ctx, y, x, w, NULL, 2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static vlm_model_config cfg;
    static int ready;
    if (!ready) {
        cJSON *c = cJSON_Parse(k_config);
        if (!c || vlm_config_parse(c, "fuzz config", &cfg) != VLM_OK) __builtin_trap();
        cJSON_Delete(c);
        set_threads(1);
        ready = 1;
    }
    vlm_safetensors *st = NULL;
    if (vlm_st_open_buffer(data, size, "fuzz.safetensors", &st) != VLM_OK) {
        if (!vlm_last_error()[0]) __builtin_trap();
        return 0;
    }
    vlm_vision_weights vw;
    vlm_text_weights tw;
    if (vlm_bind_weights(st, &cfg, 0, 1, &vw, &tw) == VLM_OK) {
        const vlm_text_layer_weights *L = &tw.layers[0];
        const vlm_tensor *m[] = {&L->q_w, &L->k_w, &L->v_w, &L->o_w, &L->gate_w, &L->up_w, &L->down_w, &tw.lm_head};
        for (int i = 0; i < 8; i++) run(m[i]);
        float e[2 * 64];
        int32_t ids[2] = {0, 31};
        vlm_cpu_embed(&g_ctx, e, &tw.embed, ids, 2);
        vlm_text_weights_free(&tw);
    } else if (!vlm_last_error()[0]) {
        __builtin_trap();
    }
    vlm_st_close(st);
    return 0;
}
