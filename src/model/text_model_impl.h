/* Internals of the language model shared by text_model.c (weights, run state, forward pass) and
 * text_generate.c (the generation loop). Not for other modules: they use text_model.h. */
#ifndef VLM_MODEL_TEXT_MODEL_IMPL_H
#define VLM_MODEL_TEXT_MODEL_IMPL_H

#include "model/text_model.h"

enum { VLM_TEXT_MAX_HALF = 128 }; /* head_dim <= 256 (config.c) */

/* One decoder layer on the device: matrices as stored, vectors as f32 (inside model->vecs). */
typedef struct {
    vlm_tensor q_w, k_w, v_w, o_w, gate_w, up_w, down_w;
    const float *in_norm, *post_norm, *q_b, *k_b, *v_b;
} vlm_text_layer;

struct vlm_text_model {
    vlm_backend *be;
    vlm_model_config cfg;
    vlm_text_layer *layers;
    vlm_tensor embed, lm_head; /* lm_head is embed itself when tied */
    const float *norm;         /* final RMSNorm weight */
    float *vecs;               /* one device block holding every f32 vector */
    float inv_freq[VLM_TEXT_MAX_HALF];
    vlm_safetensors *st; /* set when the model opened the checkpoint itself */
};

/* Run state of one request: the KV cache and the activations of one batched pass. */
typedef struct {
    int capacity; /* positions the KV cache holds */
    int max_rows; /* rows one pass may run */
    int n_past;   /* positions already in the cache */
    /* device memory */
    float *x;                 /* [max_rows, D] residual stream (the pass's input embeddings on entry) */
    float *xn;                /* [max_rows, D] normed input / projection output */
    float *q;                 /* [max_rows, H*hd] */
    float *att;               /* [max_rows, H*hd] attention output */
    float *gate, *up;         /* [max_rows, I] */
    float *logits;            /* [vocab] of the last row */
    float *k_cache, *v_cache; /* [layers, capacity, kvH*hd] each */
    float *cos, *sin;         /* [max_rows, hd/2] */
    void *act_block, *kv_block;
    /* host scratch for the rotary tables */
    float *cos_h, *sin_h;
    uint64_t kv_bytes, act_bytes;
} vlm_text_state;

vlm_status vlm_text_state_create(vlm_text_model *m, int capacity, int max_rows, vlm_text_state *st);
void vlm_text_state_free(vlm_text_model *m, vlm_text_state *st);

/* Host destinations for intermediate tensors of one pass (rows of this pass), or NULL. */
typedef struct {
    float *inputs_embeds, *layer0_out, *final_norm_out;
} vlm_text_taps;

/* Runs the n rows already embedded in st->x at cache positions st->n_past .. + n - 1 with
 * positions pos[a * pos_stride + r] (host), appends their keys and values to the cache and, when
 * want_logits, leaves the last row's logits in st->logits. */
vlm_status vlm_text_forward(vlm_text_model *m, vlm_text_state *st, int n, const int32_t *pos, int pos_stride,
                            int want_logits, const vlm_text_taps *taps);

#endif
