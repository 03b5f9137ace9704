/* Internals of the language model (its weights on the device), for text_model.c and the
 * micro-benchmarks that count its bytes. Other modules use text_model.h. */
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

#endif
