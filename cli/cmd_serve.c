/* vlm serve: an OpenAI-compatible HTTP server (src/serve). Parses and checks the options; the
 * server runs until SIGTERM or SIGINT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "base/error.h"
#include "commands.h"
#include "serve/server.h"

static const char k_synopsis[] =
    "--model-id M [--host 127.0.0.1] [--port 8080] [--mode M] [--device D] [--quantize] [--threads N]\n"
    "       [--precision f32|bf16] [--max-running N] [--max-waiting N] [--kv-cache-mb N] [--no-prefix-cache]\n"
    "       [--image-cache-mb N] [--api-key KEY] [--media-dir DIR] [--max-body-mb N] [--max-connections N]\n"
    "       [--idle-timeout S] [--shutdown-grace S] [--max-tokens N]";

#ifndef VLM_HAVE_SERVE
int cmd_serve(int argc, char **argv) {
    (void)argc;
    (void)argv;
    vlm_err(VLM_ERR_UNAVAILABLE,
            "vlm serve is not in this build: libmicrohttpd and libcurl were not found when vlm "
            "was configured (scripts/setup.sh installs them)");
    return vlm_cli_fail(VLM_ERR_UNAVAILABLE);
}
#else
int cmd_serve(int argc, char **argv) {
    vlm_serve_options o;
    vlm_serve_options_init(&o);
    const char *mode = "original", *device = "auto", *precision = "f32";
    int max_body_mb = 64, no_warmup = 0, no_prefix_cache = 0;
    long long kv_mb = 0;
    float grace = (float)o.shutdown_grace_s;
    vlm_arg spec[] = {
        {"--model-id", ARG_STR, &o.load.model_id, "ID",
         "checkpoint directory or Hugging Face id (default Qwen/Qwen2.5-VL-3B-Instruct)"},
        {"--host", ARG_STR, &o.host, "ADDR", "address to bind (default 127.0.0.1; 0.0.0.0 for every interface)"},
        {"--port", ARG_INT, &o.port, "N", "port (default 8080; 0: a free one, printed when ready)"},
        {"--mode", ARG_STR, &mode, "MODE", "original | split_native | run_onnx (default original)"},
        {"--output-dir", ARG_STR, &o.load.output_dir, "DIR",
         "split / ONNX / quantized artifacts (default split_models)"},
        {"--device", ARG_STR, &device, "DEV", "auto | cuda | cpu (default auto)"},
        {"--threads", ARG_INT, &o.load.threads, "N", "CPU threads (default: all cores)"},
        {"--quantize", ARG_FLAG, &o.load.quantize, NULL, "4-bit language model weights"},
        {"--precision", ARG_STR, &precision, "P", "f32 (default) | bf16: arithmetic of the matrix products"},
        {"--min-pixels", ARG_LLONG, &o.load.min_pixels, "N", "default min_pixels of images (default: the processor's)"},
        {"--max-pixels", ARG_LLONG, &o.load.max_pixels, "N", "default max_pixels of images (default: the processor's)"},
        {"--max-running", ARG_INT, &o.engine.max_running, "N", "sequences in one batch at most (default 16)"},
        {"--max-waiting", ARG_INT, &o.engine.max_waiting, "N",
         "queued requests at most; beyond, 429 with Retry-After (default 256)"},
        {"--kv-cache-mb", ARG_LLONG, &kv_mb, "N", "KV-cache pool (default: what fits beside the weights)"},
        {"--no-prefix-cache", ARG_FLAG, &no_prefix_cache, NULL,
         "do not share the KV blocks of prompt prefixes between requests"},
        {"--image-cache-mb", ARG_LLONG, &o.engine.image_cache_mb, "N",
         "LRU of image embeddings by content (default 256; 0: off)"},
        {"--api-key", ARG_STR, &o.api_key, "KEY",
         "require 'Authorization: Bearer KEY' on /v1/* (default: $VLM_API_KEY, else none)"},
        {"--media-dir", ARG_STR, &o.media_dir, "DIR", "allow file:// image URLs inside DIR (default: refused)"},
        {"--served-model-name", ARG_STR, &o.served_model_name, "NAME",
         "the model's name in the API (default: --model-id)"},
        {"--max-tokens", ARG_INT, &o.default_max_tokens, "N", "max_tokens of a request that gives none (default 1024)"},
        {"--max-body-mb", ARG_INT, &max_body_mb, "N", "request bodies above N MB get 413 (default 64)"},
        {"--max-connections", ARG_INT, &o.max_connections, "N", "open connections at most (default 512)"},
        {"--idle-timeout", ARG_INT, &o.idle_timeout_s, "S", "close connections idle for S seconds (default 120)"},
        {"--shutdown-grace", ARG_FLOAT, &grace, "S",
         "on SIGTERM/SIGINT, let requests finish for S seconds, then cancel them (default 30)"},
        {"--no-warmup", ARG_FLAG, &no_warmup, NULL, "skip the warm-up request (the first request pays the page-in)"},
        {0},
    };
    int rc = vlm_args_parse("serve", k_synopsis, spec, argc, argv);
    if (rc) return rc < 0 ? 0 : rc;
    if (vlm_mode_parse(mode, &o.load.mode) != 0)
        return vlm_usage_error("serve", "unknown --mode '%s' (expected original, split_native or run_onnx)", mode);
    if (vlm_device_parse(device, &o.load.device) != 0)
        return vlm_usage_error("serve", "unknown --device '%s' (expected auto, cuda or cpu)", device);
    if (vlm_precision_parse(precision, &o.load.precision) != 0)
        return vlm_usage_error("serve", "unknown --precision '%s' (expected f32 or bf16)", precision);
    if (o.port < 0 || o.port > 65535) return vlm_usage_error("serve", "--port %d must be in [0, 65535]", o.port);
    if (o.load.threads < 0) return vlm_usage_error("serve", "--threads must be 0 (every core) or more");
    if (o.load.min_pixels < 0 || o.load.max_pixels < 0)
        return vlm_usage_error("serve", "--min-pixels / --max-pixels must be positive");
    if (o.engine.max_running < 1) return vlm_usage_error("serve", "--max-running must be at least 1");
    if (o.engine.max_waiting < 0) return vlm_usage_error("serve", "--max-waiting must be 0 or more");
    if (o.engine.image_cache_mb < 0) return vlm_usage_error("serve", "--image-cache-mb must be 0 (off) or more");
    o.engine.prefix_cache = !no_prefix_cache;
    if (kv_mb < 0) return vlm_usage_error("serve", "--kv-cache-mb must be positive (0: what fits)");
    if (o.default_max_tokens < 1) return vlm_usage_error("serve", "--max-tokens must be at least 1");
    if (max_body_mb < 1 || max_body_mb > 4096) return vlm_usage_error("serve", "--max-body-mb must be in [1, 4096]");
    if (o.max_connections < 1) return vlm_usage_error("serve", "--max-connections must be at least 1");
    if (o.idle_timeout_s < 0) return vlm_usage_error("serve", "--idle-timeout must be 0 (none) or more");
    if (!(grace >= 0)) return vlm_usage_error("serve", "--shutdown-grace must be 0 or more seconds");
    if (!o.api_key && getenv("VLM_API_KEY") && getenv("VLM_API_KEY")[0]) o.api_key = getenv("VLM_API_KEY");
    if (o.api_key && !o.api_key[0]) return vlm_usage_error("serve", "--api-key is empty");
    o.engine.kv_cache_mb = kv_mb;
    o.max_body_bytes = (size_t)max_body_mb << 20;
    o.shutdown_grace_s = grace;
    o.warmup = !no_warmup;
    vlm_status s = vlm_serve_run(&o);
    return s == VLM_OK ? 0 : vlm_cli_fail(s);
}
#endif
