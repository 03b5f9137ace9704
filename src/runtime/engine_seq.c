/* One running request: its images through the vision encoder, its sequence through prefill and
 * decode, each chosen token through the detokenizer and the stop strings to the stream, and at the
 * end its result with the timings. */
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "base/timer.h"
#include "image/preprocess.h"
#include "runtime/engine.h"

/* pixel_values of images [k0, k1), concatenated in prompt order (host). */
static vlm_status make_pixels(vlm_model *m, vlm_job *j, int k0, int k1, float **pixels, int64_t *rows) {
    const vlm_preproc_config *pc = &m->preproc;
    int64_t n = 0;
    for (int i = k0; i < k1; i++) n += vlm_grid_patches(&j->images[i].grid);
    size_t dim = (size_t)vlm_preproc_patch_dim(pc);
    *rows = n;
    *pixels = vlm_alloc((size_t)n * dim * sizeof(float), "pixel_values");
    if (!*pixels) return VLM_ERR_NOMEM;
    int64_t row = 0;
    for (int i = k0; i < k1; i++) {
        vlm_pixel_values pv;
        VLM_TRY(vlm_job_image_pixels(m, j, i));
        VLM_TRY(vlm_image_patchify(&j->images[i].resized, pc, m->be->pool, &pv));
        memcpy(*pixels + row * dim, pv.data, (size_t)pv.n_patches * dim * sizeof(float));
        row += pv.n_patches;
        vlm_pixel_values_free(&pv);
    }
    return VLM_OK;
}

/* Runs the vision component on images [k0, k1): native on the model's backend, or ONNX Runtime on
 * the host (the features are then copied to the backend). out: [their tokens, hidden] (device). */
static vlm_status encode_range(vlm_model *m, vlm_job *j, int k0, int k1, float *out) {
    int n = k1 - k0, hidden = m->lang.cfg.text.hidden, tokens = 0;
    int dim = vlm_preproc_patch_dim(&m->preproc);
    const vlm_grid_thw *grids = j->grids + k0;
    for (int i = k0; i < k1; i++) tokens += j->images[i].tokens;
    float *pixels = NULL;
    int64_t rows = 0;
    vlm_status s = make_pixels(m, j, k0, k1, &pixels, &rows);
    if (s == VLM_OK && j->dump) {
        int64_t shape[2] = {rows, dim};
        s = vlm_dump_f32_host(j->dump, "pixel_values", pixels, 2, shape);
        if (s == VLM_OK) s = vlm_dump_grids(j->dump, "image_grid_thw", grids, n);
    }
    if (s == VLM_OK && m->vision) {
        s = vlm_vision_encode(m->vision, pixels, rows, grids, n, out, 0, j->dump);
    } else if (s == VLM_OK) {
        size_t bytes = (size_t)tokens * hidden * sizeof(float);
        float *host = vlm_alloc(bytes, "image features");
        s = host ? vlm_ort_vision_run(m->onnx, pixels, rows, rows ? dim : 0, grids, n, host, tokens) : VLM_ERR_NOMEM;
        if (s == VLM_OK) s = vlm_to_device(m->be, out, host, bytes);
        if (s == VLM_OK && j->dump) {
            int64_t shape[2] = {tokens, hidden};
            s = vlm_dump_f32_host(j->dump, "image_embeds", host, 2, shape);
        }
        vlm_free(host);
    }
    if (s == VLM_OK) s = vlm_sync(m->be);
    if (s == VLM_OK)
        s = vlm_check_finite(m->be, out, tokens, hidden, "the vision encoder's output (the image embeddings)");
    vlm_free(pixels);
    return s;
}

/* The embeddings of images [first_image, n_images) into j->image_embeds: each from the cache when
 * it is there, the others through the encoder in one call (and into the cache). */
static vlm_status image_embeddings(vlm_engine *e, vlm_job *j, int *encoded) {
    vlm_model *m = e->m;
    int D = m->lang.cfg.text.hidden, k0 = j->first_image, rows = 0;
    for (int k = k0; k < j->n_images; k++) rows += j->images[k].tokens;
    if (!rows) return VLM_OK;
    double t0 = vlm_now();
    j->image_embeds = vlm_dev_alloc(m->be, (size_t)rows * D * sizeof(float), "image embeddings");
    if (!j->image_embeds) return VLM_ERR_NOMEM;
    int use_cache = e->opt.image_cache_mb > 0 && !j->dump;
    if (!use_cache) { /* all in one call, straight into place (the dump sees every image) */
        *encoded = 1;
        vlm_status s = encode_range(m, j, k0, j->n_images, j->image_embeds);
        j->vision_s = vlm_now() - t0;
        return s;
    }
    /* runs of images missing from the cache go through the encoder, one call per run */
    for (int k = k0, row = 0; k < j->n_images;) {
        const vlm_job_image *im = &j->images[k];
        const float *hit = vlm_image_cache_get(&e->images, im->hash, im->grid, im->tokens, D);
        if (hit) {
            vlm_copy(m->be, j->image_embeds + (size_t)row * D, hit, (size_t)im->tokens * D);
            j->image_hits++;
            row += im->tokens;
            k++;
            continue;
        }
        int k1 = k, run_rows = 0;
        while (k1 < j->n_images &&
               !vlm_image_cache_get(&e->images, j->images[k1].hash, j->images[k1].grid, j->images[k1].tokens, D)) {
            run_rows += j->images[k1].tokens;
            k1++;
        }
        *encoded = 1;
        float *out = j->image_embeds + (size_t)row * D;
        VLM_TRY(encode_range(m, j, k, k1, out));
        for (int i = k, r = 0; i < k1; r += j->images[i].tokens, i++) {
            vlm_image_cache_put(&e->images, j->images[i].hash, j->images[i].grid, out + (size_t)r * D,
                                j->images[i].tokens, D);
            j->image_misses++;
        }
        row += run_rows;
        k = k1;
    }
    j->vision_s = vlm_now() - t0;
    return vlm_sync(m->be);
}

/* Leading blocks of the prompt the prefix cache holds, never all of it: the last prompt row is
 * always run (its logits choose the first token). */
static int shared_blocks(vlm_engine *e, const vlm_job *j, int *were_free) {
    int B = e->pool.block_tokens, most = (j->n_ids - 1) / B, n = 0;
    *were_free = 0;
    if (!e->opt.prefix_cache || !j->block_hash) return 0;
    while (n < most && n < j->n_block_hash) {
        int b = vlm_kvc_find(&e->kvc, &j->block_hash[n]);
        if (b < 0) break;
        *were_free += e->kvc.ref[b] == 0;
        n++;
    }
    return n;
}

int vlm_job_blocks_needed(vlm_engine *e, const vlm_job *j, int *shared) {
    int were_free;
    *shared = shared_blocks(e, j, &were_free);
    return j->n_blocks - *shared + were_free;
}

/* The job's block table: its shared prefix, then fresh blocks. */
static vlm_status take_blocks(vlm_engine *e, vlm_job *j) {
    int were_free, shared = shared_blocks(e, j, &were_free);
    for (int i = 0; i < j->seq.n_blocks; i++) j->seq.blocks[i] = -1;
    for (int i = 0; i < shared; i++) {
        int b = vlm_kvc_find(&e->kvc, &j->block_hash[i]);
        vlm_kvc_retain(&e->kvc, b);
        j->seq.blocks[i] = b;
    }
    for (int i = shared; i < j->seq.n_blocks; i++)
        if ((j->seq.blocks[i] = vlm_kvc_alloc(&e->kvc)) < 0)
            return vlm_err(VLM_ERR_NOMEM, "the KV cache ran out of blocks (%d free for %d)",
                           vlm_kvc_free_count(&e->kvc), j->seq.n_blocks - i);
    j->n_shared = j->n_published = shared;
    return VLM_OK;
}

vlm_status vlm_job_start(vlm_engine *e, vlm_job *j, int *encoded) {
    vlm_model *m = e->m;
    int B = e->pool.block_tokens;
    j->started = 1;
    j->t_admit = vlm_now();
    j->rss_before = vlm_rss_bytes();
    uint64_t total;
    vlm_gpu_memory(&j->gpu_before, &total);
    if (j->dump_path) VLM_TRY(vlm_dump_create(&j->dump));
    int were_free, shared = shared_blocks(e, j, &were_free), cached = shared * B, image_row0 = 0;
    while (j->first_image < j->n_images && j->image_start[j->first_image] + j->images[j->first_image].tokens <= cached)
        image_row0 += j->images[j->first_image++].tokens;
    j->grids = vlm_calloc((size_t)j->n_images + 1, sizeof *j->grids, "image grids");
    if (!j->grids) return VLM_ERR_NOMEM;
    for (int i = 0; i < j->n_images; i++) j->grids[i] = j->images[i].grid;
    VLM_TRY(image_embeddings(e, j, encoded));
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
    gr.image_row0 = image_row0;
    gr.grids = j->grids;
    gr.n_images = j->n_images;
    gr.sampling = j->sampling;
    gr.stop_ids = j->stop_ids;
    gr.n_stop = j->n_stop_ids;
    gr.max_new_tokens = j->max_tokens;
    gr.dump = j->dump;
    VLM_TRY(vlm_seq_start(&j->seq, m->text, &gr, B));
    VLM_TRY(take_blocks(e, j));
    return vlm_seq_skip(&j->seq, cached);
}

void vlm_job_publish(vlm_engine *e, vlm_job *j) {
    int full = j->seq.n_past / e->pool.block_tokens;
    if (full > j->n_block_hash) full = j->n_block_hash;
    for (; j->n_published < full; j->n_published++)
        vlm_kvc_publish(&e->kvc, j->seq.blocks[j->n_published], &j->block_hash[j->n_published]);
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

vlm_status vlm_job_next_token(vlm_engine *e, vlm_job *j) {
    int32_t tok;
    VLM_TRY(vlm_seq_sample(&j->seq, &e->batch, &tok));
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
    t->kv_cache_bytes = (uint64_t)j->seq.n_blocks * vlm_kv_block_bytes(&e->m->lang.cfg, e->pool.block_tokens);
    t->cached_tokens = j->n_shared * e->pool.block_tokens;
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
    for (int i = 0; j->seq.blocks && i < j->seq.n_blocks; i++)
        if (j->seq.blocks[i] >= 0) vlm_kvc_release(&e->kvc, j->seq.blocks[i]);
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
