/* Generation at the token level: one sequence of the language model from prompt ids (image rows
 * already expanded, image features on the device) to generated ids, with a sampler, stop ids, a
 * per-token callback, timers and the fixture dump. llama2.c's split: the loop here calls the
 * model's forward pass (src/model/text_model.h) and the sampler (src/text/sampler.h); the model
 * knows neither sampler nor clock.
 *
 *   vlm_gen_request r;  vlm_gen_request_init(&r);
 *   r.ids = ids;  r.n_ids = n;  r.max_new_tokens = 128;  r.sampling = vlm_sampler_greedy();
 *   r.stop_ids = cfg->gen.eos_ids;  r.n_stop = cfg->gen.n_eos;  r.on_token = print_piece;
 *   vlm_gen_result res;  vlm_text_generate(m, &r, &res);  ...  vlm_gen_result_free(&res);
 *
 * The sequence (runtime/sequence.h) allocates once, before the first pass, the KV cache for
 * prompt + max_new_tokens positions and the activations of one pass of up to prefill_chunk rows:
 * the prompt runs as matrix-matrix passes of up to prefill_chunk rows (default 512: a prompt that
 * fits is one pass), each decode step as a one-row pass. */
#ifndef VLM_RUNTIME_TEXT_GENERATE_H
#define VLM_RUNTIME_TEXT_GENERATE_H

#include <stdint.h>

#include "model/dump.h"
#include "model/rope_index.h"
#include "model/text_model.h"
#include "text/sampler.h"
#include "vlm.h"

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
