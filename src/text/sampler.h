/* Next-token selection with transformers' semantics (generate(): logits processors, then warpers).
 *
 * Order, as transformers applies them to the last position's logits:
 *   1. repetition penalty over every id seen so far (the prompt included): a positive logit is
 *      divided by the penalty, a negative one multiplied (each id once, however often it occurs);
 *   2. without sampling: argmax (first maximum);
 *   3. with sampling: logits / temperature, top-k (keeps every logit >= the k-th largest, ties
 *      included), top-p (sorts ascending, removes the tokens whose cumulative probability is
 *      <= 1 - top_p, always keeps the most likely), then draws from the softmax of what is left
 *      with a seeded generator (xoshiro256**; the same seed gives the same draws, not torch's).
 * A sampler holds its scratch buffers: no allocation per token. */
#ifndef VLM_TEXT_SAMPLER_H
#define VLM_TEXT_SAMPLER_H

#include <stdint.h>

#include "text/generation_config.h"
#include "vlm.h"

typedef struct {
    int do_sample;            /* 0: argmax after the repetition penalty */
    float temperature;        /* > 0; 1 leaves the logits unchanged */
    int top_k;                /* 0: off */
    float top_p;              /* in (0, 1]; 1: off */
    float repetition_penalty; /* > 0; 1: off */
    uint64_t seed;
} vlm_sampler_params;

/* Plain argmax: no penalty, no sampling (`--greedy`, and what the fixtures' ids are). */
vlm_sampler_params vlm_sampler_greedy(void);

/* The parameters a request asks for. user->greedy gives vlm_sampler_greedy(). Otherwise every field
 * the user did not give (user->given) comes from the generation config when user->use_generation_config
 * (else from transformers' GenerationConfig defaults: no sampling, temperature 1, top_k 50, top_p 1,
 * penalty 1); setting temperature, top_k or top_p explicitly turns sampling on, and temperature 0
 * means argmax. A given value that is invalid is an error naming it, even where it would not be used.
 * user may be NULL (all from the generation config). */
vlm_status vlm_sampler_params_resolve(const vlm_generation_config *gc, const vlm_sampling *user,
                                      vlm_sampler_params *out);
/* Rejects values transformers rejects (temperature <= 0 with sampling, top_p outside (0, 1],
 * top_k < 0, penalty <= 0), naming the value. */
vlm_status vlm_sampler_params_check(const vlm_sampler_params *p);

typedef struct vlm_sampler vlm_sampler;

vlm_status vlm_sampler_create(int vocab, const vlm_sampler_params *p, vlm_sampler **out);
void vlm_sampler_free(vlm_sampler *s);
/* Records ids (the prompt, then each chosen token) for the repetition penalty; ids outside
 * [0, vocab) are ignored. */
void vlm_sampler_accept(vlm_sampler *s, const int32_t *ids, int n);
/* Chooses the next id from logits [vocab], which it modifies (penalty, temperature, masks). */
int32_t vlm_sampler_sample(vlm_sampler *s, float *logits);

#endif
