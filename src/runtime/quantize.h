/* Writing a quantized checkpoint: a flat Hugging Face-style directory that loads without
 * re-quantizing and that other safetensors tools can still open.
 *
 * Layout of the output directory:
 *   config.json            the source config plus "vlm_quantization": {"version": 1, "linear": "q4_0",
 *                          "embeddings": "q8_0", "vision": "stored" | "q4_0", "tensors": {tag: count},
 *                          "source": path} (engines that do not know the key ignore it)
 *   *.safetensors          tensor names as in the source; a quantized tensor is a U8 tensor
 *                          [N, bytes_per_row] holding its rows of blocks (tensor/quant.h), and every
 *                          file's __metadata__ has "vlm_quant_version": "1" and, for each quantized
 *                          tensor of the checkpoint, "quant:<tensor name>": "<tag>" (q4_0 | q8_0 | nf4).
 *                          The logical shape is [N, bytes_per_row / block_bytes * block]; the binder
 *                          (model/weights.c, vlm_quant_bind) checks it against the config. Other tensors
 *                          keep dtype and bytes.
 *   tokenizer, processor, chat template and generation files, copied
 *   vlm_manifest.json      kind "quantized-<tag>" (or "language-<tag>" for a language-only artifact),
 *                          the source path and fingerprint, so stale copies are detected (artifact.h).
 *
 * Policy (vlm_quant_choose): the language model's linear weights (q/k/v/o, gate/up/down) take
 * `linear`; the token embedding and an untied lm_head take `embed`; a tied lm_head duplicate is
 * dropped (the binder ties it to the embedding); norms and biases keep their stored dtype; the
 * vision tower keeps it too unless `vision` is set, when its 2-D linear weights take `linear`.
 * A matrix whose row length is not a multiple of the format's block keeps its stored dtype.
 *
 * Quantization streams tensor by tensor (a few MB of buffers; source pages are released after
 * use) and is atomic: everything is written into DIR.vlm-tmp.<pid> and renamed to DIR at the end,
 * under a lock on DIR's parent (io/file.h: writers of one directory take turns, a killed one's
 * temporary is removed by the next). */
#ifndef VLM_RUNTIME_QUANTIZE_H
#define VLM_RUNTIME_QUANTIZE_H

#include <stdint.h>

#include "base/error.h"
#include "tensor/tensor.h"

#define VLM_QUANT_KEEP VLM_DT_COUNT /* "leave in stored precision" */

typedef struct {
    vlm_dtype linear;     /* VLM_DT_Q4_0 (default), VLM_DT_Q8_0 or VLM_DT_NF4 */
    vlm_dtype embed;      /* VLM_DT_Q8_0 (default), a 4-bit format, or VLM_QUANT_KEEP */
    int vision;           /* also quantize the vision tower (--quantize-vision) */
    int language_only;    /* write only the language model (the --quantize artifact of vlm run) */
    uint64_t shard_bytes; /* largest output file (0 = 4 GiB) */
    /* progress(user, fraction of tensor bytes done), may be NULL */
    void (*progress)(void *user, double fraction);
    void *progress_user;
} vlm_quant_options;

typedef struct {
    uint64_t src_bytes, out_bytes;           /* tensor bytes written: source, quantized */
    uint64_t text_src_bytes, text_out_bytes; /* the language model's share */
    int n_quantized, n_kept, n_dropped;
    double seconds;
} vlm_quant_stats;

void vlm_quant_options_default(vlm_quant_options *o);

/* What a tensor of a checkpoint becomes under o: a block format, or VLM_QUANT_KEEP. is_vision /
 * is_text say which part it belongs to. */
vlm_dtype vlm_quant_choose(const char *name, int ndim, const int64_t *shape, int is_vision, int is_text,
                           const vlm_quant_options *o);

/* Quantizes the checkpoint in model_dir (a resolved directory) into out_dir. out_dir must not
 * exist, be empty, or hold an earlier output of this function (then it is replaced). */
vlm_status vlm_quantize_checkpoint(const char *model_dir, const char *out_dir, const vlm_quant_options *o,
                                   vlm_quant_stats *stats);

/* The manifest kind an output of o has: "quantized-q4_0", "language-nf4", ... */
void vlm_quant_kind(const vlm_quant_options *o, char *buf, int cap);

#endif
