/* The language model of Qwen2-VL / Qwen2.5-VL: a Qwen2 decoder with multimodal rotary positions,
 * run on any backend (src/kernels/backend.h) against a preallocated KV cache. The model knows no
 * sampler and no clock: it embeds ids, puts image rows in place and runs forward passes; the
 * generation loop around it lives in src/runtime (text_generate.h, the engine).
 *
 *   vlm_text_model *m;  vlm_text_model_open(be, "/path/to/checkpoint", &m);
 *   vlm_text_state st;  vlm_text_state_create(m, capacity, rows_per_pass, &st);
 *   vlm_text_embed(m, &st, ids, n);  vlm_text_forward(m, &st, n, pos, n, 1, NULL);  ... st.logits ...
 *
 * The state holds the KV cache of capacity positions and the activations of one pass of up to
 * max_rows rows; passes allocate nothing. Logits are computed for the last row of a pass only. */
#ifndef VLM_MODEL_TEXT_MODEL_H
#define VLM_MODEL_TEXT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/backend.h"
#include "model/config.h"
#include "model/rope_index.h"
#include "model/weights.h"
#include "vlm.h"

typedef struct vlm_text_model vlm_text_model;

/* A model over weights already bound (views into a mapping that must outlive the model); matrices
 * stay in their stored dtype (be->ops->weight), norm weights and biases are converted to f32. */
vlm_status vlm_text_model_create(vlm_backend *be, const vlm_model_config *cfg, const vlm_text_weights *tw,
                                 vlm_text_model **out);
/* Opens a checkpoint directory (config.json, generation_config.json, one safetensors file or
 * shards with model.safetensors.index.json) and binds the language part only; the model owns the
 * mapping. */
vlm_status vlm_text_model_open(vlm_backend *be, const char *dir, vlm_text_model **out);
void vlm_text_model_free(vlm_text_model *m);
const vlm_model_config *vlm_text_model_config(const vlm_text_model *m);
vlm_backend *vlm_text_model_backend(const vlm_text_model *m);

/* Bytes of the KV cache (f32 keys and values of every layer) for this many positions. */
uint64_t vlm_text_kv_cache_bytes(const vlm_model_config *cfg, int positions);

/* Run state of one sequence: its KV cache and the activations of one batched pass. */
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

/* Allocates the run state (checks the memory first, naming the bytes). */
vlm_status vlm_text_state_create(vlm_text_model *m, int capacity, int max_rows, vlm_text_state *st);
void vlm_text_state_free(vlm_text_model *m, vlm_text_state *st);

/* The inputs of a pass: st->x rows [0, n) = embeddings of ids (host array). */
void vlm_text_embed(vlm_text_model *m, vlm_text_state *st, const int32_t *ids, int n);
/* st->x rows [0, n) = rows of embeds (device), for callers that computed the embeddings. */
void vlm_text_set_rows(vlm_text_model *m, vlm_text_state *st, const float *embeds, int n);
/* st->x row rows[i] = image feature row feats[i] (device) for i < n: the image rows of a prompt
 * replace the <|image_pad|> embeddings. rows is a host array of rows of this pass. */
void vlm_text_scatter_image_rows(vlm_text_model *m, vlm_text_state *st, const int32_t *rows, const float *feats, int n);

/* Host destinations for intermediate tensors of one pass (rows of this pass), or NULL. */
typedef struct {
    float *inputs_embeds, *layer0_out, *final_norm_out;
} vlm_text_taps;

/* Runs the n rows already in st->x at cache positions st->n_past .. + n - 1 with positions
 * pos[a * pos_stride + r] (host), appends their keys and values to the cache and, when
 * want_logits, leaves the last row's logits in st->logits (device). */
vlm_status vlm_text_forward(vlm_text_model *m, vlm_text_state *st, int n, const int32_t *pos, int pos_stride,
                            int want_logits, const vlm_text_taps *taps);

#endif
