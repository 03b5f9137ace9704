/* Generation settings: generation_config.json (transformers' GenerationConfig), with the class
 * defaults for every key the file omits (and for a missing file). */
#ifndef VLM_TEXT_GENERATION_CONFIG_H
#define VLM_TEXT_GENERATION_CONFIG_H

#include "base/error.h"

enum { VLM_GEN_MAX_EOS = 8 };

typedef struct {
    int do_sample;
    float temperature, top_p, repetition_penalty;
    int top_k;
    int eos_ids[VLM_GEN_MAX_EOS]; /* the stop ids; n_eos == 0 when the file names none */
    int n_eos;
    int pad_token_id; /* -1 when none */
} vlm_generation_config;

/* Parses a generation_config.json object; g == NULL gives the class defaults. `what` names the
 * file in errors. */
struct cJSON;
vlm_status vlm_generation_config_parse(const struct cJSON *g, const char *what, vlm_generation_config *gc);
/* Reads DIR/generation_config.json, or gives the class defaults when the file is absent. */
vlm_status vlm_generation_config_load(const char *dir, vlm_generation_config *gc);
/* Stop ids for a config whose file names none: the model's own (config.json's eos_token_id), as
 * transformers' GenerationConfig.from_model_config takes them. A no-op when gc has stop ids. */
void vlm_generation_config_default_eos(vlm_generation_config *gc, const int *eos_ids, int n);

#endif
