/* The language model of Qwen2-VL / Qwen2.5-VL: a Qwen2 decoder with multimodal rotary positions,
 * run on any backend (src/kernels/backend.h) against a preallocated KV cache. The model knows no
 * sampler and no clock: it embeds ids, puts image rows in place and runs forward passes; the
 * generation loop around it lives in src/runtime (text_generate.h, the engine).
 *
 *   vlm_text_model *m;  vlm_text_model_open(be, "/path/to/checkpoint", &m);
 *   vlm_kv_pool pool;  vlm_kv_pool_create(m, n_blocks, block_tokens, &pool);
 *   vlm_text_batch b;  vlm_text_batch_create(m, rows_per_pass, sequences_per_pass, &b);
 *   vlm_text_embed(m, &b, 0, ids, n);
 *   vlm_text_seq sq = {.n = n, .n_past = 0, .blocks = table, .want_logits = 1};
 *   vlm_text_forward(m, &b, &pool, &sq, 1, pos, n);  ... vlm_text_logits(m, &b, 0) ...
 *
 * One pass runs the rows of many sequences (continuous batching): each weight is read once for all
 * of them, each sequence attends only its own positions in the pool. */
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

/* The KV cache: one pool of blocks of block_tokens positions; each holds the keys and values of
 * its positions for every layer. A sequence's positions live in the blocks its block table lists,
 * so sequences share one pool and full blocks can be shared between sequences (the engine's prefix
 * cache). Layout: k and v each [layers][n_blocks * block_tokens][kv_heads * head_dim]. */
typedef struct {
    int n_blocks, block_tokens;
    float *k, *v; /* device */
    uint64_t bytes;
} vlm_kv_pool;

/* Bytes of one block (keys and values of every layer). */
uint64_t vlm_kv_block_bytes(const vlm_model_config *cfg, int block_tokens);
/* Allocates the pool (on the CPU, checking the available memory first and naming the bytes). */
vlm_status vlm_kv_pool_create(vlm_text_model *m, int n_blocks, int block_tokens, vlm_kv_pool *pool);
void vlm_kv_pool_free(vlm_text_model *m, vlm_kv_pool *pool);

/* The activations of one forward pass over up to max_rows rows of up to max_seqs sequences (each
 * contributes consecutive rows: a chunk of its prompt or its next token), and the logits of the
 * last row of each sequence that asks for them. Passes allocate nothing. */
typedef struct {
    int max_rows, max_seqs;
    /* device memory */
    float *x;                /* [max_rows, D] residual stream (the pass's input embeddings on entry) */
    float *xn;               /* [max_rows, D] normed input / projection output */
    float *q, *att;          /* [max_rows, H*hd] queries, attention output */
    float *k, *v;            /* [max_rows, kvH*hd] the rows' keys and values, before they go to the pool */
    float *gate, *up;        /* [max_rows, I] */
    float *last, *last_norm; /* [max_seqs, D] rows whose logits are asked for */
    float *logits;           /* [max_seqs, vocab] */
    float *cos, *sin;        /* [max_rows, hd/2] */
    void *act_block;
    /* host memory */
    float *cos_h, *sin_h;
    int32_t *slots;     /* [max_rows] pool row of each row's key and value */
    int32_t *last_rows; /* [max_seqs] */
    float *logits_h;    /* [max_seqs, vocab] when the device is not the host */
    int n_logits;       /* logits rows of the last pass */
    uint64_t act_bytes;
} vlm_text_batch;

vlm_status vlm_text_batch_create(vlm_text_model *m, int max_rows, int max_seqs, vlm_text_batch *b);
void vlm_text_batch_free(vlm_text_model *m, vlm_text_batch *b);

/* The inputs of a pass: b->x rows [row0, row0 + n) = embeddings of ids (host array). */
void vlm_text_embed(vlm_text_model *m, vlm_text_batch *b, int row0, const int32_t *ids, int n);
/* b->x rows [row0, row0 + n) = rows of embeds (device), for callers that computed the embeddings. */
void vlm_text_set_rows(vlm_text_model *m, vlm_text_batch *b, int row0, const float *embeds, int n);
/* b->x row rows[i] = image feature row feats[i] (device) for i < n: the image rows of a prompt
 * replace the <|image_pad|> embeddings. rows is a host array of rows of the pass. */
void vlm_text_scatter_image_rows(vlm_text_model *m, vlm_text_batch *b, const int32_t *rows, const float *feats, int n);

/* Host destinations for intermediate tensors of a sequence's rows of a pass (the dump), or NULL. */
typedef struct {
    float *inputs_embeds, *layer0_out, *final_norm_out;
} vlm_text_taps;

/* One sequence's part of a pass: its next n rows (after those of the sequences before it). */
typedef struct {
    int n;                 /* rows in this pass: a chunk of the prompt, or the next token */
    int n_past;            /* positions already in its cache: the rows are positions n_past .. + n - 1 */
    const int32_t *blocks; /* its block table (host): blocks for positions 0 .. n_past + n - 1 */
    int want_logits;       /* the logits of its last row */
    const vlm_text_taps *taps;
} vlm_text_seq;

/* Runs the rows already in b->x: each row with its positions pos[a * pos_stride + r] (host, a = t,
 * h, w), its key and value written to the pool at its sequence's position, each sequence attending
 * its own cache (causal) through its block table. Every matrix product runs once over all rows.
 * Leaves the logits of the sequences with want_logits, in order, as vlm_text_logits(m, b, 0..). */
vlm_status vlm_text_forward(vlm_text_model *m, vlm_text_batch *b, vlm_kv_pool *pool, const vlm_text_seq *seqs,
                            int n_seqs, const int32_t *pos, int pos_stride);
/* The i-th logits row of the last pass, in host memory ([vocab]; callers may modify it). */
float *vlm_text_logits(const vlm_text_model *m, const vlm_text_batch *b, int i);

#endif
