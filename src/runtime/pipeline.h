/* The inference pipeline behind include/vlm.h: a loaded model is a backend plus two components,
 * the vision encoder (native, or an ONNX Runtime session) and the language model with its
 * tokenizer. In `original` both come from the checkpoint as published; in `split_native` and
 * `run_onnx` each comes from its own artifact under the output directory, and the only thing the
 * two components exchange is the image-embedding tensor. */
#ifndef VLM_RUNTIME_PIPELINE_H
#define VLM_RUNTIME_PIPELINE_H

#include <pthread.h>

#include "image/preproc_config.h"
#include "io/file.h"
#include "io/safetensors.h"
#include "kernels/backend.h"
#include "model/config.h"
#include "model/text_model.h"
#include "model/vision_model.h"
#include "model/weights.h"
#include "runtime/onnx/onnx_vision.h"
#include "text/generation_config.h"
#include "text/tokenizer.h"
#include "vlm.h"

/* One component: where it was loaded from, its config and its mapped weights. In `original` the
 * two components share one checkpoint mapping (owned by the language side). */
typedef struct {
    char dir[VLM_PATH_MAX];
    vlm_model_config cfg;
    vlm_safetensors *st;
    int owns_st;
    uint64_t bytes; /* bytes on disk of this component's weights, as used */
} vlm_component;

struct vlm_model {
    vlm_load_options opt; /* strings below are owned copies */
    char model_id[VLM_PATH_MAX];
    char output_dir[VLM_PATH_MAX];
    char source_dir[VLM_PATH_MAX]; /* the resolved checkpoint */
    vlm_device device;
    vlm_backend *be;

    vlm_component vis;
    vlm_vision_weights vw;
    vlm_vision_model *vision;   /* native encoder (original, split_native) */
    vlm_ort_vision *onnx;       /* ONNX Runtime session (run_onnx) */
    vlm_preproc_config preproc; /* the vision component's preprocessor_config.json */
    uint64_t onnx_bytes;

    vlm_component lang;
    vlm_text_weights tw;
    vlm_text_model *text;
    vlm_tokenizer *tok;
    vlm_generation_config gen; /* the language component's generation_config.json (+ config.json's eos) */
    /* The tokenizer encodes on one thread at a time (its piece cache): requests are prepared on
     * their callers' threads, so chat templates and tokenization take this lock. It also guards
     * `engine`: at most one engine per model (the backend's scratch memory serves one thread). */
    pthread_mutex_t lock;
    struct vlm_engine *engine;

    double load_s;
    /* after values stopped being finite: which weight is NaN or infinite (scanned once) */
    int weights_scanned;
    char bad_weight[512];
};

/* Adds to the current error which tensor of the checkpoint holds a NaN or infinity, when one does
 * (every weight is scanned, once per model: only a run whose values stopped being finite pays). */
void vlm_model_explain_nonfinite(vlm_model *m);

#endif
