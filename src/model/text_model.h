/* The language model of Qwen2-VL / Qwen2.5-VL: a Qwen2 decoder with multimodal rotary positions,
 * run on any backend (src/kernels/backend.h) against a preallocated KV cache, and the generation
 * loop around it (prefill, sampling, decode steps, stop ids, streaming callback).
 *
 *   vlm_text_model *m;  vlm_text_model_open(be, "/path/to/checkpoint", &m);
 *   vlm_gen_request r;  vlm_gen_request_init(&r);
 *   r.ids = ids;  r.n_ids = n;  r.max_new_tokens = 128;  r.sampling = vlm_sampler_greedy();
 *   r.stop_ids = gen_cfg.eos_ids;  r.n_stop = gen_cfg.n_eos;  r.on_token = print_piece;
 *   vlm_gen_result res;  vlm_text_generate(m, &r, &res);  ...  vlm_gen_result_free(&res);
 *
 * Per request, generate allocates (once) the KV cache for prompt + max_new_tokens positions and the
 * activation buffers for one batched pass of up to prefill_chunk rows; decode steps allocate
 * nothing. The prompt runs as matrix-matrix passes of up to prefill_chunk rows (default 512: a
 * prompt that fits is one pass), each decode step as matrix-vector products. Logits are computed for
 * the last row only. */
#ifndef VLM_MODEL_TEXT_MODEL_H
#define VLM_MODEL_TEXT_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/backend.h"
#include "model/config.h"
#include "model/dump.h"
#include "model/rope_index.h"
#include "model/weights.h"
#include "text/sampler.h"
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

/* Bytes of the KV cache (f32 keys and values of every layer) for this many positions. */
uint64_t vlm_text_kv_cache_bytes(const vlm_model_config *cfg, int positions);

/* Called with each generated id as soon as it is chosen (the stop id that ends generation is not
 * passed). Return nonzero to stop. */
typedef int (*vlm_token_fn)(void *user, int32_t id);

typedef struct {
    /* The prompt: token ids (image tokens already expanded to one <|image_pad|> per merged token). */
    const int32_t *ids;
    int n_ids;
    /* Images: image_embeds [n_image_rows, hidden] in device memory (the vision tower's output, in
     * prompt order) replace the <|image_pad|> rows in order; grids give the rope index. */
    const float *image_embeds;
    int n_image_rows;
    const vlm_grid_thw *grids;
    int n_images;
    /* Test hook: the whole prompt's embeddings [n_ids, hidden] (device) and positions (host,
     * three rows t, h, w of n_ids each), used instead of embedding ids and the rope index. ids
     * may still be given (repetition penalty, dump); otherwise the penalty sees generated ids only. */
    const float *embeds;
    const int32_t *positions;
    vlm_sampler_params sampling;
    const int32_t *stop_ids; /* stop when one of these is chosen (it is kept in the result) */
    int n_stop;
    int max_new_tokens; /* 0: prefill only (logits and dump, no token) */
    int prefill_chunk;  /* rows per batched prefill pass; 0: 512 */
    vlm_token_fn on_token;
    void *user;
    vlm_dump *dump; /* NULL, or collects the fixture tensors of this request */
} vlm_gen_request;

typedef struct {
    int32_t *ids; /* generated ids, the stop id included when one ended it (free: result_free) */
    int n_ids;
    vlm_stop_reason stop;
    int prompt_tokens;
    double prefill_s;          /* embedding + all prefill passes + the first token's logits */
    double decode_s;           /* every decode step (n_ids - 1 forward passes) with sampling */
    double first_token_s;      /* from the call to the first generated id */
    uint64_t kv_cache_bytes;   /* KV cache allocated for this request */
    uint64_t activation_bytes; /* activation buffers allocated for this request */
} vlm_gen_result;

void vlm_gen_request_init(vlm_gen_request *r);
/* Runs one request. Errors before any computation when the prompt + max_new_tokens exceeds the
 * model's max_position_embeddings, when the KV cache cannot be allocated (or exceeds available
 * memory), on ids outside the vocabulary, or when image rows / grids do not match the prompt. */
vlm_status vlm_text_generate(vlm_text_model *m, const vlm_gen_request *r, vlm_gen_result *out);
void vlm_gen_result_free(vlm_gen_result *r);

#endif
