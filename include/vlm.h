/* vlm — public C API: load a Qwen2-VL / Qwen2.5-VL checkpoint in one of three modes, run requests
 * (images + text) with streaming output, read per-stage timings and memory, free.
 * The `vlm` command-line tool is built on this API only.
 *
 *   vlm_load_options o;  vlm_load_options_init(&o);  o.model_id = "Qwen/Qwen2.5-VL-3B-Instruct";
 *   vlm_model *m;  if (vlm_load(&o, &m) != VLM_OK) puts(vlm_last_error());
 *   vlm_request r;  vlm_request_init(&r);  r.text = "Describe this image.";  r.images = &path; r.n_images = 1;
 *   vlm_result res;  vlm_generate(m, &r, &res);  ...  vlm_result_free(&res);  vlm_model_free(m);
 */
#ifndef VLM_H
#define VLM_H

#include <stddef.h>
#include <stdint.h>

#include "vlm_status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    VLM_MODE_ORIGINAL = 0,     /* the checkpoint as published, one pipeline */
    VLM_MODE_SPLIT_NATIVE = 1, /* vision and language as separate artifacts under output_dir */
    VLM_MODE_RUN_ONNX = 2      /* vision encoder in ONNX Runtime, language model native */
} vlm_mode;

typedef enum { VLM_DEV_AUTO = 0, VLM_DEV_CPU = 1, VLM_DEV_CUDA = 2 } vlm_device;

/* Parses "original" | "split_native" | "run_onnx" (0 on success) and names a mode. */
int vlm_mode_parse(const char *name, vlm_mode *out);
const char *vlm_mode_name(vlm_mode m);

/* Progress of long work (loading, splitting, exporting, quantizing): stage name and a fraction in
 * [0, 1] (negative when unknown). */
typedef void (*vlm_progress_fn)(void *user, const char *stage, double fraction);

typedef struct {
    const char *model_id; /* checkpoint directory or Hugging Face id in the local cache */
    vlm_mode mode;
    const char *output_dir; /* split / ONNX / quantized artifacts; default "split_models" */
    vlm_device device;
    int threads;                      /* 0 = every core (or VLM_THREADS) */
    int quantize;                     /* 4-bit language weights (a cached artifact under output_dir) */
    int quantize_vision;              /* also quantize the vision tower */
    long long min_pixels, max_pixels; /* 0 = from preprocessor_config.json */
    vlm_progress_fn progress;
    void *progress_user;
} vlm_load_options;

/* vlm_sampling.given: which of the optional sampling fields the caller set. A field not given comes
 * from generation_config.json (or transformers' defaults); a given one is checked, never ignored. */
enum {
    VLM_SAMPLING_TEMPERATURE = 1 << 0,
    VLM_SAMPLING_TOP_K = 1 << 1,
    VLM_SAMPLING_TOP_P = 1 << 2,
    VLM_SAMPLING_REPETITION_PENALTY = 1 << 3
};

typedef struct {
    int max_tokens;            /* at most this many new tokens (default 128) */
    int greedy;                /* plain argmax, no penalty (overrides the rest) */
    int use_generation_config; /* 1 (default): fields not given come from generation_config.json */
    unsigned given;            /* VLM_SAMPLING_* bits: which of the four fields below are set */
    float temperature;         /* >= 0; 0 = argmax; giving it (or top_k, top_p) turns sampling on */
    int top_k;                 /* >= 0; 0 = off */
    float top_p;               /* in (0, 1]; 1 = off */
    float repetition_penalty;  /* > 0; 1 = off */
    uint64_t seed;
    int ignore_eos; /* generate exactly max_tokens */
} vlm_sampling;

/* One turn of a conversation (multi-turn requests). role: "system" | "user" | "assistant". */
typedef struct {
    const char *role;
    const char *text;
    const char *const *images; /* image file paths, placed before the text */
    int n_images;
} vlm_message;

typedef struct {
    /* Either a conversation ... */
    const vlm_message *messages;
    int n_messages;
    /* ... or one user turn: images then text, with an optional system prompt (NULL = default). */
    const char *const *images;
    int n_images;
    const char *text;
    size_t text_len; /* 0 = strlen(text); text may hold any bytes */
    const char *system;
    vlm_sampling sampling;
    /* Streaming: called with each new piece of UTF-8 text; return nonzero to stop early. */
    int (*on_text)(void *user, const char *piece, size_t len);
    void *user;
    const char *dump_path; /* write intermediate tensors (fixture names) to this safetensors file */
} vlm_request;

typedef struct {
    double preprocess_s, vision_s, prefill_s, decode_s, total_s;
    double time_to_first_token_s; /* from the start of the request to the first generated token */
    int prompt_tokens, image_tokens, generated_tokens;
    double prefill_tokens_per_s, decode_tokens_per_s;
    uint64_t cpu_rss_before, cpu_rss_after, cpu_rss_peak; /* bytes */
    uint64_t gpu_mem_before, gpu_mem_after, gpu_mem_peak; /* bytes (0 on cpu) */
    uint64_t kv_cache_bytes;
} vlm_timings;

typedef enum { VLM_STOP_EOS = 0, VLM_STOP_MAX_TOKENS = 1, VLM_STOP_CALLBACK = 2 } vlm_stop_reason;

typedef struct {
    int32_t *input_ids; /* the prompt after image-token expansion */
    int n_input;
    int32_t *generated_ids;
    int n_generated;
    char *text; /* the decoded answer (UTF-8, NUL-terminated) */
    vlm_stop_reason stop;
    vlm_timings timings;
} vlm_result;

typedef struct {
    const char *family; /* "Qwen2.5-VL" / "Qwen2-VL" */
    const char *resolved_path;
    const char *device_name; /* CPU model or GPU name */
    vlm_device device;       /* the device actually used */
    vlm_mode mode;
    int quantized;
    uint64_t vision_model_bytes, language_model_bytes, onnx_model_bytes; /* on disk, as used */
    double load_s;
} vlm_model_info;

typedef struct vlm_model vlm_model;

void vlm_load_options_init(vlm_load_options *o);
void vlm_request_init(vlm_request *r);
/* Loads (and prepares: split / export / quantize when missing or stale) a model. */
vlm_status vlm_load(const vlm_load_options *o, vlm_model **out);
void vlm_model_free(vlm_model *m);
void vlm_model_get_info(const vlm_model *m, vlm_model_info *info);
/* Runs one request. The result is owned by the caller (vlm_result_free). */
vlm_status vlm_generate(vlm_model *m, const vlm_request *r, vlm_result *out);
void vlm_result_free(vlm_result *r);

/* 1 when ONNX Runtime is available in this build (run_onnx); reason explains a 0. */
int vlm_onnx_available(char *reason, size_t cap);
/* 1 when the CUDA backend can run here; reason explains a 0. */
int vlm_cuda_usable(char *reason, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
