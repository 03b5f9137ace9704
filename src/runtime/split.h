/* Split artifacts (mode split_native): the vision encoder and the language model of a checkpoint
 * as two self-contained Hugging Face-style directories, OUTPUT_DIR/vision and OUTPUT_DIR/language,
 * each with its config, its tensors byte-identical to the source, its support files (processor
 * config for vision; tokenizer, chat template and generation config for language) and a manifest
 * naming the source checkpoint and its fingerprint. Each loads alone. */
#ifndef VLM_RUNTIME_SPLIT_H
#define VLM_RUNTIME_SPLIT_H

#include <stddef.h>

#include "base/error.h"
#include "vlm.h"

#define VLM_SPLIT_VISION "vision"
#define VLM_SPLIT_LANGUAGE "language"

/* Writes both artifacts (replacing old ones). model_dir is a resolved checkpoint directory.
 * Each part is written to a temporary directory and renamed into place when complete. */
vlm_status vlm_split_write(const char *model_dir, const char *output_dir, vlm_progress_fn progress, void *user);
/* 1 when both artifacts exist and were made from model_dir as it is now; else 0 and why; -1 when
 * out of memory (recorded). */
int vlm_split_is_fresh(const char *model_dir, const char *output_dir, char *why, size_t cap);
/* Writes the split when it is missing or stale (saying so on stderr); a no-op when fresh. */
vlm_status vlm_split_ensure(const char *model_dir, const char *output_dir, vlm_progress_fn progress, void *user);

#endif
