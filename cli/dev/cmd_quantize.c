/* vlm quantize: write a quantized copy of a checkpoint (layout and policy in model/quantize.h). */
#include <stdio.h>
#include <string.h>

#include "args.h"
#include "base/cpu.h"
#include "base/log.h"
#include "commands.h"
#include "io/file.h"
#include "io/hf_cache.h"
#include "runtime/quantize.h"
#include "tensor/quant.h"

static void show_progress(void *user, double f) {
    (void)user;
    vlm_progress(f >= 1.0, "quantize: %.0f%%", 100.0 * f);
}

int cmd_quantize(int argc, char **argv) {
    const char *model_id = NULL, *out = NULL, *type = "q4_0", *embed_type = "q8_0";
    int vision = 0, language_only = 0, threads = 0;
    long long shard_mb = 0;
    vlm_arg spec[] = {
        {"--model-id", ARG_STR, &model_id, "ID", "checkpoint directory or Hugging Face model id"},
        {"--out", ARG_STR, &out, "DIR", "output directory (replaced if it holds an earlier quantized copy)"},
        {"--type", ARG_STR, &type, "T", "format of the language model's linear weights: q4_0 (default), q8_0, nf4"},
        {"--embed-type", ARG_STR, &embed_type, "T",
         "format of the embeddings and lm_head: q8_0 (default), q4_0, nf4, keep"},
        {"--quantize-vision", ARG_FLAG, &vision, NULL, "also quantize the vision tower's linear weights (--type)"},
        {"--language-only", ARG_FLAG, &language_only, NULL, "write only the language model"},
        {"--shard-mb", ARG_LLONG, &shard_mb, "MB", "largest safetensors file in MiB (default 4096)"},
        {"--threads", ARG_INT, &threads, "N", "threads (default: all cores)"},
        {0},
    };
    const char *synopsis = "--model-id ID --out DIR [--type q4_0|q8_0|nf4] [--embed-type T|keep] [--quantize-vision]";
    int r = vlm_args_parse("quantize", synopsis, spec, argc, argv);
    if (r) return r < 0 ? 0 : r;
    if (!model_id) return vlm_usage_error("quantize", "--model-id is required");
    if (!out) return vlm_usage_error("quantize", "--out is required");
    vlm_quant_options o;
    vlm_quant_options_default(&o);
    if (vlm_quant_from_tag(type, &o.linear) != 0)
        return vlm_usage_error("quantize", "--type must be one of %s, got '%s'", vlm_quant_known_tags(), type);
    if (!strcmp(embed_type, "keep")) o.embed = VLM_QUANT_KEEP;
    else if (vlm_quant_from_tag(embed_type, &o.embed) != 0)
        return vlm_usage_error("quantize", "--embed-type must be one of %s or keep, got '%s'", vlm_quant_known_tags(),
                               embed_type);
    if (shard_mb < 0) return vlm_usage_error("quantize", "--shard-mb must be positive");
    if (threads < 0) return vlm_usage_error("quantize", "--threads must be positive");
    if (vision && language_only) return vlm_usage_error("quantize", "--quantize-vision and --language-only conflict");
    if (threads) vlm_set_threads(threads);
    o.vision = vision;
    o.language_only = language_only;
    o.shard_bytes = (uint64_t)shard_mb << 20;
    o.progress = show_progress;

    char dir[VLM_PATH_MAX];
    vlm_status s = vlm_resolve_model(model_id, dir, sizeof dir);
    if (s != VLM_OK) return vlm_cli_fail(s);
    vlm_quant_stats st;
    s = vlm_quantize_checkpoint(dir, out, &o, &st);
    if (s != VLM_OK) return vlm_cli_fail(s);
    double mb = 1.0 / (1 << 20);
    VLM_LOG_I("wrote %s in %.1f s: %d tensors quantized (%s linear, %s embeddings), %d kept, %d dropped", out,
              st.seconds, st.n_quantized, vlm_quant_tag(o.linear),
              o.embed == VLM_QUANT_KEEP ? "stored" : vlm_quant_tag(o.embed), st.n_kept, st.n_dropped);
    VLM_LOG_I("language model %.1f MiB -> %.1f MiB (-%.1f%%); all tensors %.1f MiB -> %.1f MiB",
              (double)st.text_src_bytes * mb, (double)st.text_out_bytes * mb,
              st.text_src_bytes ? 100.0 * (1.0 - (double)st.text_out_bytes / (double)st.text_src_bytes) : 0.0,
              (double)st.src_bytes * mb, (double)st.out_bytes * mb);
    return 0;
}
