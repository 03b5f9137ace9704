/* vlm — public C API: load a Qwen2-VL / Qwen2.5-VL checkpoint in one of three modes, run requests
 * (images + text) with streaming output, read per-stage timings and memory, free.
 * The `vlm` command-line tool's model commands (run, bench: cli/) are built on this API only; its
 * developer tools (split, export-onnx, quantize, info, tokenize, preprocess, make-synthetic:
 * cli/dev/) work on checkpoints and artifacts piece by piece with the internal modules.
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

/* Arithmetic of the matrix products (activations are f32 in every other op):
 *   f32   f32-exact products, as the reference computes them (the default; the parity path)
 *   bf16  activations rounded to bf16 in the matrix products, as Hugging Face runs a bf16
 *         checkpoint: about twice the CPU's matrix throughput (AVX512-BF16 / AMX), error against
 *         the f32 reference documented in docs/DESIGN.md. */
typedef enum { VLM_PRECISION_F32 = 0, VLM_PRECISION_BF16 = 1 } vlm_precision;

/* Parses "f32" | "bf16" (0 on success) and names a precision. */
int vlm_precision_parse(const char *name, vlm_precision *out);
const char *vlm_precision_name(vlm_precision p);

/* Parses "original" | "split_native" | "run_onnx" (0 on success) and names a mode. */
int vlm_mode_parse(const char *name, vlm_mode *out);
const char *vlm_mode_name(vlm_mode m);

/* Parses "auto" | "cpu" | "cuda" (0 on success) and names a device. */
int vlm_device_parse(const char *name, vlm_device *out);
const char *vlm_device_name(vlm_device d);
/* The device a load with `want` runs on: auto is cuda when a usable GPU is present, else cpu;
 * cuda without a usable GPU is VLM_ERR_UNAVAILABLE with the reason. vlm_load resolves its
 * options.device with this; callers that must know before loading (vlm bench names its results by
 * device) call it too. */
vlm_status vlm_device_resolve(vlm_device want, vlm_device *got);

/* Progress of long work (loading, splitting, exporting, quantizing): stage name and a fraction in
 * [0, 1] (negative when unknown). */
typedef void (*vlm_progress_fn)(void *user, const char *stage, double fraction);

typedef struct {
    const char *model_id; /* checkpoint directory or Hugging Face id in the local cache */
    vlm_mode mode;
    const char *output_dir; /* split / ONNX / quantized artifacts; default "split_models" */
    vlm_device device;
    int threads;                      /* CPU threads of this model; 0 = VLM_THREADS, else every core */
    vlm_precision precision;          /* matrix-product arithmetic (default f32) */
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

/* An image given by file or by its encoded bytes in memory (JPEG, PNG, ...: what a server receives
 * as base64), with optional limits on its resized area (0: the request's, else the model's). */
typedef struct {
    const char *path;  /* a file, or NULL when bytes are given */
    const void *bytes; /* the encoded image */
    size_t n_bytes;
    long long min_pixels, max_pixels;
} vlm_image_input;

/* One piece of a message's content, in order: text (image == NULL) or an image. */
typedef struct {
    const char *text;
    size_t text_len; /* 0 = strlen(text) */
    const vlm_image_input *image;
} vlm_content_part;

/* One turn of a conversation (multi-turn requests). role: "system" | "user" | "assistant". Its
 * content is either text after images (paths, or image_inputs for bytes and per-image limits; not
 * both), or parts in the order given (as OpenAI's content arrays interleave text and images). */
typedef struct {
    const char *role;
    const char *text;
    const char *const *images; /* image file paths */
    int n_images;
    const vlm_image_input *image_inputs;
    int n_image_inputs;
    const vlm_content_part *parts; /* when n_parts > 0: the whole content (text and images above unused) */
    int n_parts;
} vlm_message;

typedef struct {
    /* Either a conversation ... */
    const vlm_message *messages;
    int n_messages;
    /* ... or one user turn: images (paths, or image_inputs; not both) then text, with an optional
     * system prompt (NULL = default). */
    const char *const *images;
    int n_images;
    const vlm_image_input *image_inputs;
    int n_image_inputs;
    const char *text;
    size_t text_len; /* 0 = strlen(text); text may hold any bytes */
    const char *system;
    long long min_pixels, max_pixels; /* resized image area limits; 0: the load options', else the model's */
    vlm_sampling sampling;
    /* Stop strings: generation ends when the answer's text contains one of them; the text returned
     * and streamed ends before it (streamed text is held back while it could be the start of one). */
    const char *const *stop;
    int n_stop;
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
    double queue_s;    /* waiting in an engine's queue before it was admitted (0 for vlm_generate) */
    int cached_tokens; /* prompt tokens whose KV came from the prefix cache (not computed again) */
} vlm_timings;

typedef enum {
    VLM_STOP_EOS = 0,        /* an end-of-sequence token */
    VLM_STOP_MAX_TOKENS = 1, /* max_tokens reached */
    VLM_STOP_CALLBACK = 2,   /* on_text returned nonzero */
    VLM_STOP_STRING = 3,     /* one of the request's stop strings */
    VLM_STOP_CANCELLED = 4   /* vlm_engine_cancel, or the engine freed before the request ended */
} vlm_stop_reason;

/* "eos", "max_tokens", "callback", "stop_string", "cancelled" ("?" for other values). */
const char *vlm_stop_reason_name(vlm_stop_reason r);

/* One image of a request as the model saw it: its size after decoding (and EXIF rotation), after
 * smart_resize (grounding boxes of Qwen2.5-VL are in these pixels), and its merged tokens. */
typedef struct {
    int width, height;
    int resized_width, resized_height;
    int tokens;
} vlm_image_summary;

typedef struct {
    int32_t *input_ids; /* the prompt after image-token expansion */
    int n_input;
    int32_t *generated_ids;
    int n_generated;
    char *text; /* the decoded answer (UTF-8, NUL-terminated; cut before a stop string) */
    vlm_stop_reason stop;
    vlm_timings timings;
    vlm_image_summary *images; /* one per image, in prompt order */
    int n_images;
    double *token_times; /* [n_generated]: seconds from the request's start (submission) to each token */
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

/* ---- The engine: many requests at once ------------------------------------------------------------
 * An engine runs the requests submitted to it together (continuous batching): each step is one
 * forward pass over the next token of every running sequence plus chunks of waiting prompts, with a
 * paged KV cache whose blocks are shared between prompts that begin alike (same tokens, same images)
 * and a cache of image embeddings. vlm_generate is its one-request user.
 *
 *   vlm_engine *e;  vlm_engine_create(model, NULL, &e);
 *   r.on_done = done;  vlm_engine_submit(e, &r, &id);      (any thread)
 *   vlm_engine_run(e);                                      (the engine's thread, until vlm_engine_stop)
 *
 * Callbacks (on_text, on_done) run on the thread that steps the engine; they must not block. */
typedef struct vlm_engine vlm_engine;
typedef uint64_t vlm_request_id;

typedef struct {
    int max_running;          /* sequences in one step at most (default 16) */
    int max_step_tokens;      /* rows of one forward pass: decode rows + prefill chunks (default 512) */
    int max_waiting;          /* queued requests at most; beyond, submit fails with VLM_ERR_BUSY (default 256) */
    long long kv_cache_mb;    /* KV-cache pool; 0: what fits in memory beside the weights (stated at start) */
    int kv_block_tokens;      /* positions per KV block (default 16) */
    int prefix_cache;         /* share the KV blocks of identical prompt prefixes (default 1) */
    long long image_cache_mb; /* LRU of image embeddings by content hash (default 256; 0: off) */
} vlm_engine_options;

/* Called once per submitted request, when it ends (done, stopped, cancelled or failed), on the
 * engine's thread. status != VLM_OK: error names the cause and result is NULL. The result is the
 * engine's: it is freed when the callback returns. */
typedef void (*vlm_done_fn)(void *user, vlm_request_id id, vlm_status status, const char *error,
                            const vlm_result *result);

typedef struct {
    int running, waiting;                /* sequences now in the batch, requests queued */
    int kv_blocks_total, kv_blocks_used; /* the KV pool (shared blocks counted once) */
    int kv_block_tokens;
    uint64_t kv_pool_bytes;
    /* totals since creation, counted as the work is done: prompt tokens run through the model,
     * tokens generated, prompt tokens whose KV came from the prefix cache instead */
    uint64_t prompt_tokens, generation_tokens, cached_tokens;
    uint64_t requests_finished, requests_failed, requests_cancelled;
    uint64_t image_cache_hits, image_cache_misses;
} vlm_engine_stats;

void vlm_engine_options_init(vlm_engine_options *o);
/* An engine on a loaded model (o NULL: defaults). One engine per model at a time. */
vlm_status vlm_engine_create(vlm_model *m, const vlm_engine_options *o, vlm_engine **out);
/* Ends every request still queued or running (on_done with VLM_STOP_CANCELLED) and frees. */
void vlm_engine_free(vlm_engine *e);
/* Queues a request (thread-safe). The engine copies what it needs (texts, image bytes, stop
 * strings): r may be freed on return. Decoding and preprocessing the images, the chat template and
 * tokenization happen here, on the caller's thread, so bad input fails at once (VLM_ERR_INVALID,
 * VLM_ERR_FORMAT, ...), as does a request that can never fit the context or the KV pool; a full
 * queue fails with VLM_ERR_BUSY. On success on_done will be called exactly once. */
vlm_status vlm_engine_submit(vlm_engine *e, const vlm_request *r, vlm_done_fn on_done, void *done_user,
                             vlm_request_id *id);
/* Cancels a queued or running request (thread-safe): it ends at the next step with
 * VLM_STOP_CANCELLED and its KV blocks return to the pool. Returns 0, or -1 when id is not active. */
int vlm_engine_cancel(vlm_engine *e, vlm_request_id id);
/* One step: admits waiting requests that fit, encodes their images, runs one batched forward pass,
 * samples, streams and completes. *active: requests still queued or running after it. */
vlm_status vlm_engine_step(vlm_engine *e, int *active);
/* Steps until vlm_engine_stop; waits without spinning while there is no work. */
vlm_status vlm_engine_run(vlm_engine *e);
/* Makes vlm_engine_run return after the current step (thread-safe, async-signal-safe). */
void vlm_engine_stop(vlm_engine *e);
/* A snapshot of the engine's gauges and counters (thread-safe). */
void vlm_engine_get_stats(vlm_engine *e, vlm_engine_stats *s);

/* 1 when ONNX Runtime is available in this build (run_onnx); reason explains a 0. */
int vlm_onnx_available(char *reason, size_t cap);
/* 1 when the CUDA backend can run here; reason explains a 0. */
int vlm_cuda_usable(char *reason, size_t cap);

#ifdef __cplusplus
}
#endif
#endif
