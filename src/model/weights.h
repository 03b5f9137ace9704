/* Weight binding: finds every tensor of the vision tower and the language model by name in a
 * checkpoint (either naming scheme), checks its shape against the config, and hands out views into
 * the mapping. A missing, unexpected or wrongly shaped tensor is an error naming it. */
#ifndef VLM_MODEL_WEIGHTS_H
#define VLM_MODEL_WEIGHTS_H

#include "io/safetensors.h"
#include "model/config.h"

typedef struct {
    vlm_tensor in_norm, post_norm;           /* [D] */
    vlm_tensor q_w, q_b, k_w, k_b, v_w, v_b; /* [H*hd, D], [kvH*hd, D] + biases */
    vlm_tensor o_w;                          /* [D, H*hd] */
    vlm_tensor gate_w, up_w, down_w;         /* [I, D], [I, D], [D, I] */
} vlm_text_layer_weights;

typedef struct {
    vlm_tensor embed;   /* [vocab, D] */
    vlm_tensor norm;    /* [D] */
    vlm_tensor lm_head; /* [vocab, D]; the embedding itself when tied */
    vlm_text_layer_weights *layers;
    int n_layers;
} vlm_text_weights;

typedef struct {
    vlm_tensor norm1_w, norm1_b, norm2_w, norm2_b; /* biases: Qwen2-VL LayerNorm only */
    vlm_tensor qkv_w, qkv_b, proj_w, proj_b;
    vlm_tensor gate_w, gate_b, up_w, up_b; /* Qwen2.5-VL SwiGLU */
    vlm_tensor down_w, down_b;             /* Qwen2.5-VL down_proj; Qwen2-VL fc2 */
    vlm_tensor fc1_w, fc1_b;               /* Qwen2-VL fc1 */
} vlm_vision_block_weights;

typedef struct {
    vlm_tensor patch_embed; /* [width, C*T*P*P] (the Conv3d kernel, flattened) */
    vlm_vision_block_weights *blocks;
    int n_blocks;
    vlm_tensor merger_norm_w, merger_norm_b; /* ln_q (bias for Qwen2-VL) */
    vlm_tensor merger_fc1_w, merger_fc1_b;   /* mlp.0: [4w, 4w] */
    vlm_tensor merger_fc2_w, merger_fc2_b;   /* mlp.2: [out, 4w] */
} vlm_vision_weights;

typedef enum {
    VLM_NAMES_LEGACY = 0, /* visual.*, model.layers.*, model.embed_tokens, lm_head */
    VLM_NAMES_NESTED = 1  /* model.visual.*, model.language_model.*, lm_head */
} vlm_naming;

/* What a checkpoint holds, found from its tensor names. */
typedef struct {
    int has_vision, has_text;
    vlm_naming naming;
} vlm_checkpoint_parts;

vlm_status vlm_detect_parts(const vlm_safetensors *st, vlm_checkpoint_parts *parts);
/* Prefixes of each part's tensors under a naming scheme ("visual." / "model.visual."; the text
 * part has two: the decoder and lm_head). */
const char *vlm_vision_prefix(vlm_naming n);
const char *vlm_text_prefix(vlm_naming n);

/* Binds the parts present; every tensor of the file must be used by the parts bound (others are
 * reported as unexpected). want_vision / want_text select parts (a part asked for but absent is an
 * error naming the first missing tensor). */
vlm_status vlm_bind_weights(const vlm_safetensors *st, const vlm_model_config *cfg, int want_vision, int want_text,
                            vlm_vision_weights *vw, vlm_text_weights *tw);
/* Calls visit(name, ndim, stored shape) for every tensor of the selected parts, in binding order
 * (what vlm make-synthetic writes). */
typedef void (*vlm_tensor_visitor)(void *ctx, const char *name, int ndim, const int64_t *shape);
vlm_status vlm_enumerate_weights(const vlm_model_config *cfg, vlm_naming naming, int vision, int text,
                                 vlm_tensor_visitor visit, void *ctx);
/* The view of a quantized checkpoint tensor (a U8 [N, bytes per row] entry whose format is in its
 * file's __metadata__) as a block-format tensor of the logical shape [N, K] the model expects
 * (ndim, shape). A missing or unknown format tag, a wrong row count, rows that are not whole blocks
 * (truncated or padded) or a block count that does not match K is an error naming the tensor. */
vlm_status vlm_quant_bind(const vlm_safetensors *st, const vlm_st_entry *e, int ndim, const int64_t *shape,
                          vlm_tensor *out);

void vlm_text_weights_free(vlm_text_weights *tw);
void vlm_vision_weights_free(vlm_vision_weights *vw);

/* Parameter counts (elements) of each part as configured. */
int64_t vlm_vision_param_count(const vlm_model_config *cfg);
int64_t vlm_text_param_count(const vlm_model_config *cfg);

/* ---- NaN and infinity in the weights (weights_check.c) ---- */
typedef struct {
    const char *name;
    int64_t first, count; /* the first bad element (a block, for a quantized tensor's scales), how many */
    int64_t row, col;     /* of the first (col -1 for a block scale) */
    int in_scales;        /* a quantized tensor's block scale */
} vlm_weight_issue;
/* Called for each tensor holding a NaN or infinity; nonzero stops the scan. */
typedef int (*vlm_weight_issue_fn)(void *user, const vlm_weight_issue *issue);
/* Reads every weight of st (float tensors element by element, quantized tensors' block scales);
 * *n_bad counts the tensors with a non-finite value. */
vlm_status vlm_weights_scan_finite(const vlm_safetensors *st, vlm_weight_issue_fn on_issue, void *user, int *n_bad);
/* "tensor NAME: N values are NaN or infinite (the first at row R, column C)" */
void vlm_weight_issue_describe(const vlm_weight_issue *is, char *out, size_t cap);

#endif
