/* Writes the language model of a Qwen2(.5)-VL checkpoint as a GGUF file (llama.cpp's format,
 * version 3, architecture "qwen2": the same matrices, so the same work per token), so that
 * llama.cpp can be measured on the very weights vlm runs (perf/llama_anchor.mjs). A benchmark tool,
 * not a converter for real use: the M-RoPE sections are not recorded (plain rope costs the same).
 *
 *   perf_gguf_write --model DIR --out FILE.gguf [--type f16|bf16|q8_0|q4_0]
 *
 * --type applies to the layer matrices; the embedding (also the tied output) takes f16 / bf16 as
 * given, and Q8_0 for q8_0 and q4_0 (vlm --quantize's policy); norms and biases stay f32.
 * Layout (ggml's docs/gguf.md): "GGUF", version, tensor and key counts, key/value pairs, tensor
 * infos (name, dims innermost first, ggml type, offset), padding to the alignment (32), data. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"
#include "io/safetensors.h"
#include "tensor/quant.h"

enum { ALIGN = 32 };
enum { T_UINT32 = 4, T_INT32 = 5, T_FLOAT32 = 6, T_STRING = 8, T_ARRAY = 9 }; /* gguf value types */
enum { G_F32 = 0, G_F16 = 1, G_Q4_0 = 2, G_Q8_0 = 8, G_BF16 = 30 };           /* ggml tensor types */
enum { TOK_NORMAL = 1, TOK_CONTROL = 3, TOK_USER = 4, TOK_UNUSED = 5 };       /* token types */

static FILE *g_out;
static int g_fail;

static void put(const void *p, size_t n) {
    if (fwrite(p, 1, n, g_out) != n) g_fail = 1;
}
static void put_u32(uint32_t v) { put(&v, 4); }
static void put_u64(uint64_t v) { put(&v, 8); }
static void put_str(const char *s) {
    put_u64(strlen(s));
    put(s, strlen(s));
}
static void kv_str(const char *k, const char *v) {
    put_str(k);
    put_u32(T_STRING);
    put_str(v);
}
static void kv_u32(const char *k, uint32_t v) {
    put_str(k);
    put_u32(T_UINT32);
    put_u32(v);
}
static void kv_f32(const char *k, float v) {
    put_str(k);
    put_u32(T_FLOAT32);
    put(&v, 4);
}

/* One tensor of the output: its source entry, name and type. */
typedef struct {
    char name[96];
    const vlm_st_entry *src;
    int type;
    uint64_t offset, bytes;
} out_tensor;

static uint64_t tensor_bytes(int type, int64_t rows, int64_t K) {
    switch (type) {
    case G_F32: return (uint64_t)(rows * K * 4);
    case G_F16:
    case G_BF16: return (uint64_t)(rows * K * 2);
    case G_Q8_0: return (uint64_t)rows * vlm_dtype_row_bytes(VLM_DT_Q8_0, K);
    default: return (uint64_t)rows * vlm_dtype_row_bytes(VLM_DT_Q4_0, K);
    }
}

/* Converts the tensor row by row into its output type. */
static int write_data(const out_tensor *t) {
    const vlm_st_entry *e = t->src;
    int64_t K = e->shape[e->ndim - 1], rows = (int64_t)(e->nbytes / vlm_dtype_size(e->dtype)) / K;
    size_t in_rb = (size_t)K * vlm_dtype_size(e->dtype);
    float *f = malloc(sizeof(float) * (size_t)K);
    void *row = malloc((size_t)tensor_bytes(G_F32, 1, K) + 64);
    if (!f || !row) return -1;
    for (int64_t r = 0; r < rows; r++) {
        vlm_to_f32(e->dtype, (const char *)e->data + (size_t)r * in_rb, f, (size_t)K);
        size_t n = (size_t)tensor_bytes(t->type, 1, K);
        switch (t->type) {
        case G_F32: memcpy(row, f, n); break;
        case G_F16:
            for (int64_t k = 0; k < K; k++) ((uint16_t *)row)[k] = vlm_f32_to_f16(f[k]);
            break;
        case G_BF16:
            for (int64_t k = 0; k < K; k++) ((uint16_t *)row)[k] = vlm_f32_to_bf16(f[k]);
            break;
        default: /* vlm's Q8_0 / Q4_0 blocks are GGUF's */
            if (vlm_quantize_row(t->type == G_Q8_0 ? VLM_DT_Q8_0 : VLM_DT_Q4_0, f, row, K) != 0) return -1;
        }
        put(row, n);
    }
    free(f), free(row);
    return g_fail ? -1 : 0;
}

/* The tokenizer as GGUF's "gpt2" model: tokens by id (vocab, then added tokens, then padding up to
 * the embedding's rows), their types, and the merges. */
static int write_tokenizer(const char *dir, int64_t n_vocab) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    cJSON *j;
    if (vlm_json_load(path, &j) != VLM_OK) return -1;
    const cJSON *model = cJSON_GetObjectItem(j, "model"), *vocab = cJSON_GetObjectItem(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItem(model, "merges"), *added = cJSON_GetObjectItem(j, "added_tokens"), *e;
    const char **tok = calloc((size_t)n_vocab, sizeof *tok);
    int32_t *type = calloc((size_t)n_vocab, sizeof *type);
    if (!tok || !type || !cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) return -1;
    cJSON_ArrayForEach(e, vocab) if (cJSON_IsNumber(e) && e->valueint >= 0 && e->valueint < n_vocab) {
        tok[e->valueint] = e->string;
        type[e->valueint] = TOK_NORMAL;
    }
    cJSON_ArrayForEach(e, added) {
        const cJSON *id = cJSON_GetObjectItem(e, "id"), *content = cJSON_GetObjectItem(e, "content");
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content) || id->valueint < 0 || id->valueint >= n_vocab) continue;
        tok[id->valueint] = content->valuestring;
        type[id->valueint] = cJSON_IsTrue(cJSON_GetObjectItem(e, "special")) ? TOK_CONTROL : TOK_USER;
    }
    char(*pad)[32] = calloc((size_t)n_vocab, 32);
    for (int64_t i = 0; i < n_vocab; i++)
        if (!tok[i]) {
            snprintf(pad[i], 32, "[PAD%lld]", (long long)i);
            tok[i] = pad[i];
            type[i] = TOK_UNUSED;
        }
    kv_str("tokenizer.ggml.model", "gpt2");
    kv_str("tokenizer.ggml.pre", "qwen2");
    put_str("tokenizer.ggml.tokens");
    put_u32(T_ARRAY);
    put_u32(T_STRING);
    put_u64((uint64_t)n_vocab);
    for (int64_t i = 0; i < n_vocab; i++) put_str(tok[i]);
    put_str("tokenizer.ggml.token_type");
    put_u32(T_ARRAY);
    put_u32(T_INT32);
    put_u64((uint64_t)n_vocab);
    put(type, sizeof(int32_t) * (size_t)n_vocab);
    put_str("tokenizer.ggml.merges");
    put_u32(T_ARRAY);
    put_u32(T_STRING);
    put_u64((uint64_t)cJSON_GetArraySize(merges));
    cJSON_ArrayForEach(e, merges) {
        if (cJSON_IsString(e)) put_str(e->valuestring);
        else { /* newer files: ["a", "b"] */ char m[1024];
            snprintf(m, sizeof m, "%s %s", cJSON_GetArrayItem(e, 0)->valuestring,
                     cJSON_GetArrayItem(e, 1)->valuestring);
            put_str(m);
        }
    }
    kv_u32("tokenizer.ggml.bos_token_id", 151643);
    kv_u32("tokenizer.ggml.eos_token_id", 151645);
    kv_u32("tokenizer.ggml.padding_token_id", 151643);
    free(tok), free(type), free(pad);
    cJSON_Delete(j);
    return g_fail ? -1 : 0;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *out = NULL, *type_name = "f16";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) dir = argv[i + 1];
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else if (!strcmp(argv[i], "--type")) type_name = argv[i + 1];
    }
    int wtype = !strcmp(type_name, "f16") ? G_F16
        : !strcmp(type_name, "bf16")      ? G_BF16
        : !strcmp(type_name, "q8_0")      ? G_Q8_0
        : !strcmp(type_name, "q4_0")      ? G_Q4_0
                                          : -1;
    if (!dir || !out || wtype < 0) {
        fprintf(stderr, "usage: perf_gguf_write --model DIR --out FILE.gguf [--type f16|bf16|q8_0|q4_0]\n");
        return 2;
    }
    int etype = wtype == G_Q4_0 || wtype == G_Q8_0 ? G_Q8_0 : wtype;
    char cpath[4096];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    cJSON *cfg;
    vlm_safetensors *st;
    if (vlm_json_load(cpath, &cfg) != VLM_OK || vlm_st_open(dir, &st) != VLM_OK) {
        fprintf(stderr, "perf_gguf_write: %s\n", vlm_last_error());
        return 1;
    }
    const cJSON *tc = cJSON_GetObjectItem(cfg, "text_config");
    if (!tc) tc = cfg;
#define CFG_INT(key) (cJSON_GetObjectItem(tc, key) ? cJSON_GetObjectItem(tc, key)->valueint : 0)
    int layers = CFG_INT("num_hidden_layers"), hidden = CFG_INT("hidden_size"), ffn = CFG_INT("intermediate_size");
    int heads = CFG_INT("num_attention_heads"), kv_heads = CFG_INT("num_key_value_heads");
    double theta = cJSON_GetObjectItem(tc, "rope_theta") ? cJSON_GetObjectItem(tc, "rope_theta")->valuedouble : 1e6;
    double eps = cJSON_GetObjectItem(tc, "rms_norm_eps") ? cJSON_GetObjectItem(tc, "rms_norm_eps")->valuedouble : 1e-6;
    /* the tensors, in llama.cpp's names; both checkpoint naming schemes */
    out_tensor *ts = calloc((size_t)layers * 12 + 4, sizeof *ts);
    int n = 0;
    const char *prefix = vlm_st_find(st, "model.embed_tokens.weight") ? "model." : "model.language_model.";
    char src[160];
#define ADD(gg, hf, ty)                                                                                                \
    do {                                                                                                               \
        snprintf(src, sizeof src, "%s%s", prefix, hf);                                                                 \
        const vlm_st_entry *e_ = vlm_st_find(st, src);                                                                 \
        if (!e_) {                                                                                                     \
            fprintf(stderr, "perf_gguf_write: %s has no tensor %s\n", dir, src);                                       \
            return 1;                                                                                                  \
        }                                                                                                              \
        snprintf(ts[n].name, sizeof ts[n].name, "%s", gg);                                                             \
        ts[n].src = e_;                                                                                                \
        ts[n++].type = (ty);                                                                                           \
    } while (0)
    ADD("token_embd.weight", "embed_tokens.weight", etype);
    const int64_t n_vocab = ts[0].src->shape[0];
    for (int l = 0; l < layers; l++) {
        char g[96], h[160];
        static const char *const mats[7][2] = {{"attn_q", "self_attn.q_proj"}, {"attn_k", "self_attn.k_proj"},
                                               {"attn_v", "self_attn.v_proj"}, {"attn_output", "self_attn.o_proj"},
                                               {"ffn_gate", "mlp.gate_proj"},  {"ffn_up", "mlp.up_proj"},
                                               {"ffn_down", "mlp.down_proj"}};
        snprintf(g, sizeof g, "blk.%d.attn_norm.weight", l),
            snprintf(h, sizeof h, "layers.%d.input_layernorm.weight", l);
        ADD(g, h, G_F32);
        for (int m = 0; m < 7; m++) {
            snprintf(g, sizeof g, "blk.%d.%s.weight", l, mats[m][0]);
            snprintf(h, sizeof h, "layers.%d.%s.weight", l, mats[m][1]);
            ADD(g, h, wtype);
            if (m < 3) { /* q, k, v have biases */
                snprintf(g, sizeof g, "blk.%d.%s.bias", l, mats[m][0]);
                snprintf(h, sizeof h, "layers.%d.%s.bias", l, mats[m][1]);
                ADD(g, h, G_F32);
            }
        }
        snprintf(g, sizeof g, "blk.%d.ffn_norm.weight", l);
        snprintf(h, sizeof h, "layers.%d.post_attention_layernorm.weight", l);
        ADD(g, h, G_F32);
    }
    ADD("output_norm.weight", "norm.weight", G_F32);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const vlm_st_entry *e = ts[i].src;
        int64_t K = e->shape[e->ndim - 1], rows = e->ndim > 1 ? e->shape[0] : 1;
        ts[i].offset = off;
        ts[i].bytes = tensor_bytes(ts[i].type, rows, K);
        off += (ts[i].bytes + ALIGN - 1) / ALIGN * ALIGN;
    }
    g_out = fopen(out, "wb");
    if (!g_out) {
        perror(out);
        return 1;
    }
    put("GGUF", 4);
    put_u32(3);
    put_u64((uint64_t)n);
    put_u64(20); /* key/value pairs below: 12 here, 8 of the tokenizer */
    kv_str("general.architecture", "qwen2");
    kv_str("general.name", "vlm synthetic language model");
    kv_u32("general.alignment", ALIGN);
    kv_u32("qwen2.context_length", 32768);
    kv_u32("qwen2.embedding_length", (uint32_t)hidden);
    kv_u32("qwen2.block_count", (uint32_t)layers);
    kv_u32("qwen2.feed_forward_length", (uint32_t)ffn);
    kv_u32("qwen2.attention.head_count", (uint32_t)heads);
    kv_u32("qwen2.attention.head_count_kv", (uint32_t)kv_heads);
    kv_f32("qwen2.rope.freq_base", (float)theta);
    kv_f32("qwen2.attention.layer_norm_rms_epsilon", (float)eps);
    kv_u32("general.file_type", wtype == G_F16 ? 1 : wtype == G_BF16 ? 32 : wtype == G_Q8_0 ? 7 : 2);
    if (write_tokenizer(dir, n_vocab) != 0) {
        fprintf(stderr, "perf_gguf_write: cannot read %s/tokenizer.json\n", dir);
        return 1;
    }
    for (int i = 0; i < n; i++) {
        const vlm_st_entry *e = ts[i].src;
        put_str(ts[i].name);
        put_u32((uint32_t)e->ndim);
        for (int d = e->ndim - 1; d >= 0; d--) put_u64((uint64_t)e->shape[d]); /* innermost first */
        put_u32((uint32_t)ts[i].type);
        put_u64(ts[i].offset);
    }
    static const char zeros[ALIGN];
    long pos = ftell(g_out);
    put(zeros, (size_t)((ALIGN - pos % ALIGN) % ALIGN));
    for (int i = 0; i < n; i++) {
        if (write_data(&ts[i]) != 0) {
            fprintf(stderr, "perf_gguf_write: writing %s failed\n", ts[i].name);
            return 1;
        }
        put(zeros, (size_t)((ALIGN - ts[i].bytes % ALIGN) % ALIGN));
    }
    if (fclose(g_out) != 0 || g_fail) {
        fprintf(stderr, "perf_gguf_write: writing %s failed\n", out);
        return 1;
    }
    printf("wrote %s: %d tensors, %s layers, %.1f MB of tensor data\n", out, n, type_name, (double)off / 1e6);
    vlm_st_close(st);
    cJSON_Delete(cfg);
    return 0;
}
