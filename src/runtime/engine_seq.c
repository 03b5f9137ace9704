/* One running request: its images through the vision encoder, its sequence through prefill and
 * decode, each chosen token through the detokenizer and the stop strings to the stream, and at the
 * end its result with the timings. */
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "base/timer.h"
#include "image/preprocess.h"
#include "runtime/engine.h"

/* pixel_values of the images, concatenated in prompt order (host). */
static vlm_status make_pixels(const vlm_model *m, const vlm_job *j, float **pixels, int64_t *rows) {
    const vlm_preproc_config *pc = &m->preproc;
    int64_t n = 0;
    for (int i = 0; i < j->n_images; i++) n += vlm_grid_patches(&j->images[i].grid);
    size_t dim = (size_t)vlm_preproc_patch_dim(pc);
    *rows = n;
    *pixels = vlm_alloc((size_t)n * dim * sizeof(float), "pixel_values");
    if (!*pixels) return VLM_ERR_NOMEM;
    int64_t row = 0;
    for (int i = 0; i < j->n_images; i++) {
        vlm_pixel_values pv;
        VLM_TRY(vlm_image_patchify(&j->images[i].resized, pc, &pv));
        memcpy(*pixels + row * dim, pv.data, (size_t)pv.n_patches * dim * sizeof(float));
        row += pv.n_patches;
        vlm_pixel_values_free(&pv);
    }
    return VLM_OK;
}

/* The vision component: native on the model's backend, or ONNX Runtime on the host (the features
 * are then copied to the backend). out: [image tokens, hidden] on the device. */
static vlm_status encode(vlm_model *m, vlm_job *j, const float *pixels, int64_t rows, float *out) {
    if (m->vision) return vlm_vision_encode(m->vision, pixels, rows, j->grids, j->n_images, out, 0, j->dump);
    int hidden = m->lang.cfg.text.hidden;
    size_t bytes = (size_t)j->n_image_tokens * hidden * sizeof(float);
    float *host = vlm_alloc(bytes, "image features");
    vlm_status s = host ? VLM_OK : VLM_ERR_NOMEM;
    if (s == VLM_OK)
        s = vlm_ort_vision_run(m->onnx, pixels, rows, rows ? vlm_preproc_patch_dim(&m->preproc) : 0, j->grids,
                               j->n_images, host, j->n_image_tokens);
    if (s == VLM_OK) s = vlm_to_device(m->be, out, host, bytes);
    if (s == VLM_OK && j->dump) {
        int64_t shape[2] = {j->n_image_tokens, hidden};
        s = vlm_dump_f32_host(j->dump, "image_embeds", host, 2, shape);
    }
    vlm_free(host);
    return s;
}

static vlm_status encode_images(vlm_model *m, vlm_job *j) {
    double t0 = vlm_now();
    float *pixels = NULL;
    int64_t rows = 0;
    j->grids = vlm_calloc((size_t)j->n_images, sizeof *j->grids, "image grids");
    vlm_status s = j->grids ? VLM_OK : VLM_ERR_NOMEM;
    for (int i = 0; s == VLM_OK && i < j->n_images; i++) j->grids[i] = j->images[i].grid;
    if (s == VLM_OK) s = make_pixels(m, j, &pixels, &rows);
    if (s == VLM_OK && j->dump) {
        int64_t shape[2] = {rows, vlm_preproc_patch_dim(&m->preproc)};
        s = vlm_dump_f32_host(j->dump, "pixel_values", pixels, 2, shape);
        if (s == VLM_OK) s = vlm_dump_grids(j->dump, "image_grid_thw", j->grids, j->n_images);
    }
    size_t bytes = (size_t)j->n_image_tokens * m->lang.cfg.text.hidden * sizeof(float);
    if (s == VLM_OK && !(j->image_embeds = vlm_dev_alloc(m->be, bytes, "image embeddings"))) s = VLM_ERR_NOMEM;
    if (s == VLM_OK) s = encode(m, j, pixels, rows, j->image_embeds);
    if (s == VLM_OK) s = vlm_sync(m->be);
    if (s == VLM_OK)
        s = vlm_check_finite(m->be, j->image_embeds, j->n_image_tokens, m->lang.cfg.text.hidden,
                             "the vision encoder's output (the image embeddings)");
    vlm_free(pixels);
    j->vision_s = vlm_now() - t0;
    return s;
}

vlm_status vlm_job_start(vlm_engine *e, vlm_job *j) {
    vlm_model *m = e->m;
    j->started = 1;
    j->t_admit = vlm_now();
    j->rss_before = vlm_rss_bytes();
    uint64_t total;
    vlm_gpu_memory(&j->gpu_before, &total);
    if (j->dump_path) VLM_TRY(vlm_dump_create(&j->dump));
    if (j->n_images) VLM_TRY(encode_images(m, j));
    j->token_times = vlm_calloc((size_t)j->max_tokens, sizeof *j->token_times, "token times");
    if (!j->token_times) return VLM_ERR_NOMEM;
    VLM_TRY(vlm_detok_init(&j->detok, m->tok, 1));
    j->detok_ready = 1;
    vlm_gen_request gr;
    vlm_gen_request_init(&gr);
    gr.ids = j->ids;
    gr.n_ids = j->n_ids;
    gr.image_embeds = j->image_embeds;
    gr.n_image_rows = j->n_image_tokens;
    gr.grids = j->grids;
    gr.n_images = j->n_images;
    gr.sampling = j->sampling;
    gr.stop_ids = j->stop_ids;
    gr.n_stop = j->n_stop_ids;
    gr.max_new_tokens = j->max_tokens;
    gr.prefill_chunk = e->opt.max_step_tokens;
    gr.dump = j->dump;
    return vlm_seq_start(&j->seq, m->text, &gr);
}

/* Text on its way to the caller: through the stop strings, then on_text. Returns 1 when the
 * answer must end (a stop string completed, or the callback asked to stop). */
static int stream(vlm_job *j, const char *text, size_t len, int to_caller) {
    const char *out;
    size_t n;
    int hit = vlm_stop_push(&j->stop, text, len, &out, &n);
    if (n && to_caller && j->on_text && j->on_text(j->user, out, n)) {
        j->stop_reason = VLM_STOP_CALLBACK;
        return 1;
    }
    if (hit) j->stop_reason = VLM_STOP_STRING;
    return hit;
}

static vlm_status next_token(vlm_job *j) {
    int32_t tok;
    VLM_TRY(vlm_seq_sample(&j->seq, &tok));
    double now = vlm_now();
    int n = j->seq.n_out;
    j->token_times[n - 1] = now - j->t_submit;
    if (n == 1) j->t_first = now;
    if (vlm_seq_is_stop(&j->seq, tok)) {
        vlm_job_finish(j, VLM_STOP_EOS);
        return VLM_OK;
    }
    const char *text;
    size_t len;
    vlm_detok_push(&j->detok, tok, &text, &len);
    if (len && stream(j, text, len, 1)) {
        j->finished = 1;
        return VLM_OK;
    }
    if (!vlm_stop_ok(&j->stop)) return vlm_err(VLM_ERR_NOMEM, "out of memory for the answer's text");
    if (n == j->max_tokens) vlm_job_finish(j, VLM_STOP_MAX_TOKENS);
    return VLM_OK;
}

vlm_status vlm_job_advance(vlm_engine *e, vlm_job *j) {
    (void)e;
    if (!j->seq.prefilled) {
        if (!j->t_prefill) j->t_prefill = vlm_now();
        VLM_TRY(vlm_seq_prefill(&j->seq));
        if (!j->seq.prefilled) return VLM_OK;
    } else {
        VLM_TRY(vlm_seq_decode(&j->seq));
    }
    return next_token(j);
}

void vlm_job_finish(vlm_job *j, vlm_stop_reason reason) {
    if (j->finished) return;
    j->finished = 1;
    j->stop_reason = reason;
    int to_caller = reason != VLM_STOP_CANCELLED;
    if (j->detok_ready) { /* bytes the detokenizer still held, then what the stop strings held back */
        const char *text;
        size_t len;
        vlm_detok_flush(&j->detok, &text, &len);
        if (len && stream(j, text, len, to_caller)) return;
    }
    const char *out;
    size_t n;
    vlm_stop_flush(&j->stop, &out, &n);
    if (n && to_caller && j->on_text) j->on_text(j->user, out, n);
}

static void *copy_of(const void *src, size_t bytes, const char *what) {
    void *p = vlm_alloc(bytes ? bytes : 1, what);
    if (p && bytes) memcpy(p, src, bytes);
    return p;
}

static void fill_timings(vlm_engine *e, vlm_job *j, vlm_timings *t) {
    double t_end = vlm_now(), t_queued = j->t_submit + j->preprocess_s;
    double t_first = j->t_first ? j->t_first : t_end, t_prefill = j->t_prefill ? j->t_prefill : t_end;
    int n = j->seq.n_out;
    t->preprocess_s = j->preprocess_s;
    t->queue_s = j->t_admit > t_queued ? j->t_admit - t_queued : 0;
    t->vision_s = j->vision_s;
    t->prefill_s = t_first - t_prefill;
    t->decode_s = j->t_first ? t_end - j->t_first : 0;
    t->total_s = t_end - j->t_submit;
    t->time_to_first_token_s = j->t_first ? j->t_first - j->t_submit : 0;
    t->prompt_tokens = j->n_ids;
    t->image_tokens = j->n_image_tokens;
    t->generated_tokens = n;
    t->prefill_tokens_per_s = t->prefill_s > 0 && j->seq.prefilled ? j->n_ids / t->prefill_s : 0;
    t->decode_tokens_per_s = t->decode_s > 0 && n > 1 ? (n - 1) / t->decode_s : 0;
    t->kv_cache_bytes = j->seq.st.kv_bytes;
    t->cpu_rss_before = j->rss_before;
    t->cpu_rss_after = vlm_rss_bytes();
    t->cpu_rss_peak = vlm_peak_rss_bytes();
    uint64_t total;
    t->gpu_mem_before = j->gpu_before;
    vlm_gpu_memory(&t->gpu_mem_after, &total);
    /* the peak of the project's own device allocator (activations, KV cache, weights) */
    t->gpu_mem_peak = e->m->device == VLM_DEV_CUDA ? e->m->be->bytes_peak : 0;
}

vlm_status vlm_job_result(vlm_engine *e, vlm_job *j, vlm_result *out) {
    memset(out, 0, sizeof *out);
    if (j->dump && j->stop_reason != VLM_STOP_CANCELLED) {
        VLM_TRY(vlm_seq_dump_ids(&j->seq));
        VLM_TRY(vlm_dump_write(j->dump, j->dump_path));
    }
    int n = j->seq.n_out;
    out->input_ids = copy_of(j->ids, (size_t)j->n_ids * sizeof *j->ids, "the result's prompt ids");
    out->generated_ids = copy_of(j->seq.out, (size_t)n * sizeof(int32_t), "the result's generated ids");
    out->text = copy_of(j->stop.text.data ? j->stop.text.data : "", j->stop.text.len + 1, "the result's text");
    if (j->n_images) out->images = vlm_alloc((size_t)j->n_images * sizeof *out->images, "the result's images");
    for (int i = 0; out->images && i < j->n_images; i++) out->images[i] = j->images[i].summary;
    out->token_times = copy_of(j->token_times, (size_t)n * sizeof(double), "the result's token times");
    if (!out->input_ids || !out->generated_ids || !out->text || (j->n_images && !out->images) || !out->token_times) {
        vlm_result_free(out);
        return VLM_ERR_NOMEM;
    }
    out->n_input = j->n_ids;
    out->n_generated = n;
    out->n_images = j->n_images;
    out->stop = j->stop_reason;
    fill_timings(e, j, &out->timings);
    return VLM_OK;
}

void vlm_job_release(vlm_engine *e, vlm_job *j) {
    vlm_seq_free(&j->seq);
    vlm_dev_free(e->m->be, j->image_embeds);
    j->image_embeds = NULL;
    vlm_free(j->grids);
    j->grids = NULL;
    if (j->detok_ready) vlm_detok_free(&j->detok);
    j->detok_ready = 0;
    vlm_dump_free(j->dump);
    j->dump = NULL;
    vlm_free(j->token_times);
    j->token_times = NULL;
}
