/* vlm make-synthetic: a checkpoint with a real architecture and seeded random weights. */
#include <stdio.h>

#include "args.h"
#include "base/log.h"
#include "base/timer.h"
#include "commands.h"
#include "model/synthetic.h"

int cmd_make_synthetic(int argc, char **argv) {
    const char *config = NULL, *out = NULL;
    long long seed = 0, shard_mb = 0;
    vlm_arg spec[] = {
        {"--config", ARG_STR, &config, "NAME|PATH",
         "a config under configs/ (qwen2.5-vl-3b, ...), a directory or a config.json"},
        {"--out", ARG_STR, &out, "DIR", "output checkpoint directory"},
        {"--seed", ARG_LLONG, &seed, "S", "random seed (default 0)"},
        {"--shard-mb", ARG_LLONG, &shard_mb, "MB", "largest safetensors shard in MiB (default 4096)"},
        {0},
    };
    int r = vlm_args_parse("make-synthetic", "--config NAME|PATH --out DIR [--seed S]", spec, argc, argv);
    if (r) return r < 0 ? 0 : r;
    if (!config) return vlm_usage_error("make-synthetic", "--config is required");
    if (!out) return vlm_usage_error("make-synthetic", "--out is required");
    if (shard_mb < 0) return vlm_usage_error("make-synthetic", "--shard-mb must be positive");
    double t0 = vlm_now();
    vlm_status s = vlm_make_synthetic(config, out, (uint64_t)seed, (uint64_t)shard_mb << 20);
    if (s != VLM_OK) return vlm_cli_fail(s);
    VLM_LOG_I("wrote synthetic %s checkpoint to %s in %.1f s (random weights: for speed and memory, not quality)",
              config, out, vlm_now() - t0);
    return 0;
}
