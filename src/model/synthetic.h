/* Synthetic checkpoints: a Hugging Face directory with a real architecture (from a config) and
 * seeded random bf16 weights, plus the tokenizer and processor files. This is how speed and memory
 * are measured without downloading real weights. */
#ifndef VLM_MODEL_SYNTHETIC_H
#define VLM_MODEL_SYNTHETIC_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* config: a name under configs/ (e.g. "qwen2.5-vl-3b", "demo"), a directory with config.json, or a
 * config.json path. Weights larger than shard_bytes are split into model-0000i-of-0000n shards with
 * an index (0 = 4 GiB). */
vlm_status vlm_make_synthetic(const char *config, const char *out_dir, uint64_t seed, uint64_t shard_bytes);
/* Lists the config names shipped under configs/ (comma separated) into buf. */
void vlm_synthetic_config_names(char *buf, size_t cap);

#endif
