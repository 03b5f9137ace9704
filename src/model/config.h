/* Model configuration: config.json (both families, text keys at top level or under text_config),
 * with the transformers class defaults for every key the file omits. Shapes are validated later
 * against the weights (weights.c). The processor's and the generation settings have their own
 * readers (image/preproc_config.h, text/generation_config.h); the runtime composes the three. */
#ifndef VLM_MODEL_CONFIG_H
#define VLM_MODEL_CONFIG_H

#include "base/error.h"
#include "tensor/tensor.h"

typedef enum { VLM_FAMILY_QWEN2_VL = 0, VLM_FAMILY_QWEN2_5_VL = 1 } vlm_family;

enum { VLM_MAX_EOS = 8, VLM_MAX_FULLATT = 64 };

typedef struct {
    int hidden;        /* hidden_size */
    int n_layers;      /* num_hidden_layers */
    int n_heads;       /* num_attention_heads */
    int n_kv_heads;    /* num_key_value_heads */
    int head_dim;      /* hidden / n_heads */
    int intermediate;  /* intermediate_size (SwiGLU width) */
    int vocab;         /* vocab_size (rows of the embedding) */
    int max_positions; /* max_position_embeddings */
    float rms_eps;     /* rms_norm_eps */
    double rope_theta;
    int mrope_section[3]; /* frequency slots taken from the t, h, w positions; sum = head_dim / 2 */
    int tie_embeddings;   /* tie_word_embeddings */
} vlm_text_config;

typedef struct {
    int depth;
    int width; /* ViT width: 2.5 vision hidden_size, 2 vision embed_dim */
    int n_heads;
    int head_dim;   /* width / n_heads */
    int mlp_hidden; /* 2.5: intermediate_size (SwiGLU); 2: embed_dim * mlp_ratio (QuickGELU) */
    int out_hidden; /* merger output = text hidden: 2.5 out_hidden_size, 2 vision hidden_size */
    int in_channels;
    int patch_size;
    int temporal_patch_size;
    int merge_size;                      /* spatial_merge_size */
    int window_size;                     /* 2.5: pixels per attention window side (112) */
    int fullatt_blocks[VLM_MAX_FULLATT]; /* 2.5: blocks with full attention */
    int n_fullatt;
    float norm_eps; /* 1e-6 in both families (hard-coded by transformers) */
} vlm_vision_config;

typedef struct {
    int image_token_id, video_token_id, vision_start_id, vision_end_id;
    int bos_token_id;         /* -1 when none */
    int eos_ids[VLM_MAX_EOS]; /* eos_token_id (one id or a list); generation_config.json's win */
    int n_eos;
} vlm_token_ids;

typedef struct {
    vlm_family family;
    char model_type[32];  /* "qwen2_5_vl" / "qwen2_vl" */
    char torch_dtype[16]; /* as written, "" when absent */
    vlm_text_config text;
    vlm_vision_config vision;
    vlm_token_ids tokens;
} vlm_model_config;

/* Reads DIR/config.json. */
vlm_status vlm_config_load(const char *dir, vlm_model_config *cfg);
/* The same from an already-parsed config.json (tests, fuzzing); `what` names it in errors. */
struct cJSON;
vlm_status vlm_config_parse(const struct cJSON *config, const char *what, vlm_model_config *cfg);
const char *vlm_family_name(vlm_family f); /* "Qwen2.5-VL" / "Qwen2-VL" */
/* 1 when block b of the vision tower uses full attention (always for Qwen2-VL). */
int vlm_vision_block_is_full(const vlm_vision_config *v, vlm_family f, int b);

#endif
