/* --model-id resolution: a checkpoint directory, or a Hugging Face model id looked up in the local
 * cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub; layout
 * models--ORG--NAME/snapshots/REV/ with REV read from refs/main). */
#ifndef VLM_IO_HF_CACHE_H
#define VLM_IO_HF_CACHE_H

#include <stddef.h>

#include "base/error.h"

/* Writes the directory to use into out. The error, when there is none, says where it looked and
 * how to get the model. */
vlm_status vlm_resolve_model(const char *model_id, char *out, size_t cap);
/* The hub cache directory that would be searched (for messages). */
void vlm_hf_cache_dir(char *out, size_t cap);

#endif
