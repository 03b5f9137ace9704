/* vlm split: write the vision encoder and the language model as separate artifacts. */
#include <stdio.h>

#include "args.h"
#include "base/log.h"
#include "base/timer.h"
#include "commands.h"
#include "io/file.h"
#include "io/hf_cache.h"
#include "runtime/split.h"

static void show_progress(void *user, const char *stage, double f) {
    vlm_progress(f >= 1.0, "split: writing %s (%.0f%%)", stage, 100.0 * f);
}

int cmd_split(int argc, char **argv) {
    const char *model_id = NULL, *out = "split_models";
    int force = 0;
    vlm_arg spec[] = {
        {"--model-id", ARG_STR, &model_id, "ID", "checkpoint directory or Hugging Face model id"},
        {"--output-dir", ARG_STR, &out, "DIR", "where vision/ and language/ are written (default split_models)"},
        {"--force", ARG_FLAG, &force, NULL, "rewrite even when the split is up to date"},
        {0},
    };
    int r = vlm_args_parse("split", "--model-id ID [--output-dir DIR] [--force]", spec, argc, argv);
    if (r) return r < 0 ? 0 : r;
    if (!model_id) return vlm_usage_error("split", "--model-id is required");
    char dir[VLM_PATH_MAX], why[VLM_PATH_MAX + 256];
    vlm_status s = vlm_resolve_model(model_id, dir, sizeof dir);
    if (s != VLM_OK) return vlm_cli_fail(s);
    if (!force && vlm_split_is_fresh(dir, out, why, sizeof why) > 0) {
        VLM_LOG_I("%s/vision and %s/language are up to date with %s", out, out, dir);
        return 0;
    }
    double t0 = vlm_now();
    s = vlm_split_write(dir, out, show_progress, NULL);
    if (s != VLM_OK) return vlm_cli_fail(s);
    VLM_LOG_I("wrote %s/vision and %s/language in %.1f s", out, out, vlm_now() - t0);
    return 0;
}
