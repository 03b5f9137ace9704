/* vlm_generate: one request through the pipeline, as the one-request user of the engine.
 *   images --decode, resize (on submit), patchify, vision encoder--> image embeddings
 *   messages --chat template, tokenizer--> ids (one <|image_pad|> per merged patch)
 *   ids + image embeddings --language model (prefill, decode loop)--> ids --detokenizer--> text
 * Per-stage timings and memory probes come with the result. */
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "runtime/engine.h"

typedef struct {
    vlm_status status;
    char error[1024];
    vlm_result *out;
} generate_ctx;

static void on_done(void *user, vlm_request_id id, vlm_status status, const char *error, const vlm_result *result) {
    (void)id;
    generate_ctx *c = user;
    c->status = status;
    if (status == VLM_OK) {
        c->status = vlm_result_copy(result, c->out);
        if (c->status != VLM_OK) snprintf(c->error, sizeof c->error, "%s", vlm_last_error());
    } else {
        snprintf(c->error, sizeof c->error, "%s", error ? error : "");
    }
}

vlm_status vlm_generate(vlm_model *m, const vlm_request *r, vlm_result *out) {
    memset(out, 0, sizeof *out);
    vlm_reset_peak_rss();
    m->be->bytes_peak = m->be->bytes_in_use;
    /* a private engine for this request alone: no sharing, no caches */
    vlm_engine_options o;
    vlm_engine_options_init(&o);
    o.max_running = 1;
    o.max_waiting = 1;
    o.prefix_cache = 0;
    o.image_cache_mb = 0;
    vlm_engine *e;
    vlm_status s = vlm_engine_create(m, &o, &e);
    if (s == VLM_ERR_BUSY)
        return vlm_err(s, "this model has an engine (vlm_engine_create): submit the request to it instead");
    if (s != VLM_OK) return s;
    generate_ctx c = {.status = VLM_OK, .out = out};
    s = vlm_engine_submit(e, r, on_done, &c, NULL);
    for (int active = 1; s == VLM_OK && active;) s = vlm_engine_step(e, &active);
    vlm_engine_free(e);
    if (s != VLM_OK) return s;
    if (c.status != VLM_OK) {
        vlm_result_free(out);
        return vlm_err(c.status, "%s", c.error);
    }
    return VLM_OK;
}

static void *dup_bytes(const void *src, size_t bytes, const char *what) {
    void *p = vlm_alloc(bytes ? bytes : 1, what);
    if (p && bytes) memcpy(p, src, bytes);
    return p;
}

vlm_status vlm_result_copy(const vlm_result *src, vlm_result *dst) {
    *dst = *src;
    dst->input_ids = dup_bytes(src->input_ids, (size_t)src->n_input * sizeof(int32_t), "the result's prompt ids");
    dst->generated_ids =
        dup_bytes(src->generated_ids, (size_t)src->n_generated * sizeof(int32_t), "the result's generated ids");
    dst->text = dup_bytes(src->text ? src->text : "", src->text ? strlen(src->text) + 1 : 1, "the result's text");
    dst->images = src->n_images ? dup_bytes(src->images, (size_t)src->n_images * sizeof *src->images, "images") : NULL;
    dst->token_times = dup_bytes(src->token_times, (size_t)src->n_generated * sizeof(double), "token times");
    if (!dst->input_ids || !dst->generated_ids || !dst->text || (src->n_images && !dst->images) || !dst->token_times) {
        vlm_result_free(dst);
        return VLM_ERR_NOMEM;
    }
    return VLM_OK;
}

void vlm_result_free(vlm_result *r) {
    free(r->input_ids);
    free(r->generated_ids);
    free(r->text);
    free(r->images);
    free(r->token_times);
    memset(r, 0, sizeof *r);
}
