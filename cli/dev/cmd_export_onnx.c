/* vlm export-onnx: the vision tower as DIR/vision.onnx for run_onnx (ONNX Runtime). Skips the work
 * when DIR already holds an up-to-date export of the same checkpoint (unless --force). Prints the
 * path of vision.onnx on stdout. */
#include <stdio.h>

#include "args.h"
#include "base/log.h"
#include "base/timer.h"
#include "commands.h"
#include "io/file.h"
#include "io/hf_cache.h"
#include "runtime/onnx/onnx_vision.h"

int cmd_export_onnx(int argc, char **argv) {
    const char *model_id = NULL, *out_dir = NULL, *weights = "stored", *external = "auto";
    int force = 0;
    vlm_arg spec[] = {
        {"--model-id", ARG_STR, &model_id, "ID", "checkpoint directory or Hugging Face model id"},
        {"--output-dir", ARG_STR, &out_dir, "DIR", "where vision.onnx (+ vision.onnx.data) and its manifest go"},
        {"--weights", ARG_STR, &weights, "stored|f32",
         "weights as stored in the checkpoint with Cast nodes (default), or converted to float32"},
        {"--external-data", ARG_STR, &external, "auto|always|never",
         "weights in vision.onnx.data: when over 256 MB (auto, default), always, or never"},
        {"--force", ARG_FLAG, &force, NULL, "export even when DIR holds an up-to-date export"},
        {0},
    };
    const char *synopsis = "--model-id ID --output-dir DIR [--weights stored|f32] [--external-data auto|always|never]";
    int r = vlm_args_parse("export-onnx", synopsis, spec, argc, argv);
    if (r) return r < 0 ? 0 : r;
    if (!model_id) return vlm_usage_error("export-onnx", "--model-id is required");
    if (!out_dir) return vlm_usage_error("export-onnx", "--output-dir is required");
    vlm_onnx_export_options o;
    vlm_onnx_export_options_init(&o);
    if (vlm_onnx_weights_parse(weights, &o.weights))
        return vlm_usage_error("export-onnx", "--weights must be stored or f32, not '%s'", weights);
    if (vlm_onnx_external_parse(external, &o.external))
        return vlm_usage_error("export-onnx", "--external-data must be auto, always or never, not '%s'", external);

    char dir[VLM_PATH_MAX], onnx_path[VLM_PATH_MAX], why[VLM_PATH_MAX + 256];
    vlm_status s = vlm_resolve_model(model_id, dir, sizeof dir);
    if (s == VLM_OK) s = vlm_path_join(onnx_path, sizeof onnx_path, out_dir, VLM_ONNX_FILE);
    int current = 0;
    if (s == VLM_OK && !force) s = vlm_onnx_export_current(dir, out_dir, &o, &current, why, sizeof why);
    double t0 = vlm_now();
    if (s == VLM_OK && current) {
        VLM_LOG_I("%s is up to date for %s (--force exports again)", onnx_path, dir);
    } else if (s == VLM_OK) {
        if (!force) VLM_LOG_I("exporting: %s", why);
        s = vlm_onnx_export(dir, out_dir, &o);
        if (s == VLM_OK) VLM_LOG_I("exported the vision tower of %s in %.1f s", dir, vlm_now() - t0);
    }
    if (s != VLM_OK) return vlm_cli_fail(s);
    printf("%s\n", onnx_path);
    return 0;
}
