/* The small, model-independent parts of the public API: option defaults, name parsing, and what
 * this build and machine can run. */
#include <string.h>

#include "kernels/backend.h"
#include "vlm.h"

void vlm_load_options_init(vlm_load_options *o) {
    memset(o, 0, sizeof *o);
    o->model_id = "Qwen/Qwen2.5-VL-3B-Instruct";
    o->mode = VLM_MODE_ORIGINAL;
    o->output_dir = "split_models";
    o->device = VLM_DEV_AUTO;
}

void vlm_request_init(vlm_request *r) {
    memset(r, 0, sizeof *r);
    r->sampling.max_tokens = 128;
    r->sampling.use_generation_config = 1;
}

static const char *const k_modes[] = {"original", "split_native", "run_onnx"};

int vlm_mode_parse(const char *name, vlm_mode *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, k_modes[i])) {
            *out = (vlm_mode)i;
            return 0;
        }
    return -1;
}

const char *vlm_mode_name(vlm_mode m) { return (unsigned)m < 3 ? k_modes[m] : "?"; }

int vlm_precision_parse(const char *name, vlm_precision *out) {
    if (!strcmp(name, "f32")) *out = VLM_PRECISION_F32;
    else if (!strcmp(name, "bf16")) *out = VLM_PRECISION_BF16;
    else return -1;
    return 0;
}

const char *vlm_precision_name(vlm_precision p) {
    return p == VLM_PRECISION_F32 ? "f32" : p == VLM_PRECISION_BF16 ? "bf16" : "?";
}

const char *vlm_stop_reason_name(vlm_stop_reason r) {
    static const char *const names[] = {"eos", "max_tokens", "callback", "stop_string", "cancelled"};
    return (unsigned)r < sizeof names / sizeof *names ? names[r] : "?";
}

static const char *const k_devices[] = {"auto", "cpu", "cuda"}; /* VLM_DEV_AUTO, VLM_DEV_CPU, VLM_DEV_CUDA */

int vlm_device_parse(const char *name, vlm_device *out) {
    for (int i = 0; i < 3; i++)
        if (!strcmp(name, k_devices[i])) {
            *out = (vlm_device)i;
            return 0;
        }
    return -1;
}

const char *vlm_device_name(vlm_device d) { return (unsigned)d < 3 ? k_devices[d] : "?"; }

vlm_status vlm_device_resolve(vlm_device want, vlm_device *got) {
    char why[256] = "";
    if (want == VLM_DEV_CPU) {
        *got = VLM_DEV_CPU;
        return VLM_OK;
    }
    if ((unsigned)want > VLM_DEV_CUDA) return vlm_err(VLM_ERR_INVALID, "unknown device %d", (int)want);
    int usable = vlm_cuda_available(why, sizeof why);
    *got = usable ? VLM_DEV_CUDA : VLM_DEV_CPU;
    if (want == VLM_DEV_CUDA && !usable) {
        *got = VLM_DEV_CUDA;
        return vlm_err(VLM_ERR_UNAVAILABLE, "--device cuda: no usable GPU: %s", why);
    }
    return VLM_OK;
}

int vlm_cuda_usable(char *reason, size_t cap) { return vlm_cuda_available(reason, cap); }
