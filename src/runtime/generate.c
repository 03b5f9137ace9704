/* vlm_generate: one request through the pipeline.
 *   images --decode, preprocess--> pixel_values + grids --vision encoder--> image embeddings
 *   messages --chat template, tokenizer--> ids (one <|image_pad|> per merged patch)
 *   ids + image embeddings --language model (prefill, decode loop)--> ids --detokenizer--> text
 * Per-stage timings and memory probes around each stage. */
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/memory.h"
#include "base/timer.h"
#include "image/preprocess.h"
#include "model/dump.h"
#include "runtime/pipeline.h"
#include "text/chat.h"
#include "text/sampler.h"

/* The images of a request, preprocessed and concatenated. */
typedef struct {
    float *pixels;
    int64_t n_rows;
    int (*grids)[3];
    int n_images;
    int *tokens; /* merged tokens per image */
    int64_t n_tokens;
} image_batch;

static void image_batch_free(image_batch *b) {
    vlm_free(b->pixels);
    free(b->grids);
    free(b->tokens);
    memset(b, 0, sizeof *b);
}

static vlm_status preprocess_images(vlm_model *m, const char *const *paths, int n, image_batch *b) {
    memset(b, 0, sizeof *b);
    if (!n) return VLM_OK;
    const vlm_preproc_config *pc = &m->preproc;
    b->grids = calloc((size_t)n, sizeof *b->grids);
    b->tokens = calloc((size_t)n, sizeof *b->tokens);
    vlm_pixel_values *pv = calloc((size_t)n, sizeof *pv);
    vlm_status s = (!b->grids || !b->tokens || !pv) ? vlm_err(VLM_ERR_NOMEM, "out of memory") : VLM_OK;
    for (int i = 0; s == VLM_OK && i < n; i++) {
        vlm_image img = {0};
        s = vlm_image_decode_file(paths[i], 0, &img, NULL);
        if (s == VLM_OK) s = vlm_preprocess_image(&img, pc, m->opt.min_pixels, m->opt.max_pixels, m->be->pool, &pv[i]);
        vlm_image_free(&img);
        if (s != VLM_OK) {
            vlm_err_ctx(s, "image %s", paths[i]);
            break;
        }
        for (int k = 0; k < 3; k++) b->grids[i][k] = (int)pv[i].grid_thw[k];
        s = vlm_chat_vision_tokens(b->grids[i][0], b->grids[i][1], b->grids[i][2], pc->merge_size, &b->tokens[i]);
        b->n_rows += pv[i].n_patches;
        b->n_tokens += b->tokens[i];
    }
    if (s == VLM_OK) {
        int dim = pv[0].patch_dim;
        b->pixels = vlm_alloc((size_t)b->n_rows * dim * sizeof(float), "pixel_values");
        if (!b->pixels) s = VLM_ERR_NOMEM;
        int64_t row = 0;
        for (int i = 0; s == VLM_OK && i < n; i++) {
            memcpy(b->pixels + row * dim, pv[i].data, (size_t)pv[i].n_patches * dim * sizeof(float));
            row += pv[i].n_patches;
        }
        b->n_images = n;
    }
    for (int i = 0; pv && i < n; i++) vlm_pixel_values_free(&pv[i]);
    free(pv);
    if (s != VLM_OK) image_batch_free(b);
    return s;
}

/* Runs the vision component: native on the model's backend, or ONNX Runtime on the host (the
 * features are then copied to the backend). out: [n_tokens, hidden] on the device. */
static vlm_status encode_images(vlm_model *m, const image_batch *b, float *out, vlm_dump *dump) {
    if (m->vision)
        return vlm_vision_encode(m->vision, b->pixels, b->n_rows, (const int(*)[3])b->grids, b->n_images, out, 0, dump);
    if (!m->onnx) return vlm_err(VLM_ERR_UNSUPPORTED, "this model has no vision encoder, so it cannot take images");
    int hidden = m->lang.cfg.text.hidden;
    float *host = vlm_alloc((size_t)b->n_tokens * hidden * sizeof(float), "image features");
    if (!host) return VLM_ERR_NOMEM;
    int64_t grids[64][3];
    vlm_status s = VLM_OK;
    if (b->n_images > 64) s = vlm_err(VLM_ERR_INVALID, "at most 64 images per request in run_onnx");
    for (int i = 0; s == VLM_OK && i < b->n_images; i++)
        for (int k = 0; k < 3; k++) grids[i][k] = b->grids[i][k];
    if (s == VLM_OK)
        s = vlm_ort_vision_run(m->onnx, b->pixels, b->n_rows, (int)(b->n_rows ? 1176 : 0), &grids[0][0], b->n_images,
                               host, b->n_tokens);
    if (s == VLM_OK) s = vlm_to_device(m->be, out, host, (size_t)b->n_tokens * hidden * sizeof(float));
    if (s == VLM_OK && dump) {
        int64_t shape[2] = {b->n_tokens, hidden};
        s = vlm_dump_f32_host(dump, "image_embeds", host, 2, shape);
    }
    if (s == VLM_OK) s = vlm_sync(m->be);
    vlm_free(host);
    return s;
}

/* The prompt's ids: a conversation, or one user turn of images then text. */
static vlm_status build_prompt(vlm_model *m, const vlm_request *r, const image_batch *b, vlm_ids *ids) {
    if (r->messages && r->n_messages > 0) {
        int n_parts = 0, img = 0;
        for (int i = 0; i < r->n_messages; i++) n_parts += r->messages[i].n_images + 1;
        vlm_chat_part *parts = calloc((size_t)n_parts, sizeof *parts);
        vlm_chat_message *msgs = calloc((size_t)r->n_messages, sizeof *msgs);
        if (!parts || !msgs) {
            free(parts);
            free(msgs);
            return vlm_err(VLM_ERR_NOMEM, "out of memory");
        }
        int k = 0;
        for (int i = 0; i < r->n_messages; i++) {
            const vlm_message *msg = &r->messages[i];
            msgs[i].role = msg->role;
            msgs[i].parts = parts + k;
            for (int j = 0; j < msg->n_images; j++, img++) parts[k++] = (vlm_chat_part){.type = VLM_CHAT_IMAGE};
            if (msg->text)
                parts[k++] = (vlm_chat_part){.type = VLM_CHAT_TEXT, .text = msg->text, .len = strlen(msg->text)};
            msgs[i].n_parts = (int)(parts + k - msgs[i].parts);
        }
        vlm_chat_options opt = {.add_generation_prompt = 1};
        vlm_status s = vlm_chat_build(m->tok, msgs, r->n_messages, &opt, b->tokens, b->n_images, ids, NULL);
        free(parts);
        free(msgs);
        return s;
    }
    size_t len = r->text_len ? r->text_len : (r->text ? strlen(r->text) : 0);
    if (!r->system)
        return vlm_chat_build_prompt(m->tok, r->text ? r->text : "", len, b->tokens, b->n_images, ids, NULL);
    vlm_chat_part sys = {.type = VLM_CHAT_TEXT, .text = r->system, .len = strlen(r->system)};
    vlm_chat_part *user = calloc((size_t)b->n_images + 1, sizeof *user);
    if (!user) return vlm_err(VLM_ERR_NOMEM, "out of memory");
    for (int i = 0; i < b->n_images; i++) user[i].type = VLM_CHAT_IMAGE;
    user[b->n_images] = (vlm_chat_part){.type = VLM_CHAT_TEXT, .text = r->text ? r->text : "", .len = len};
    vlm_chat_message msgs[2] = {{.role = "system", .parts = &sys, .n_parts = 1},
                                {.role = "user", .parts = user, .n_parts = b->n_images + 1}};
    vlm_chat_options opt = {.add_generation_prompt = 1};
    vlm_status s = vlm_chat_build(m->tok, msgs, 2, &opt, b->tokens, b->n_images, ids, NULL);
    free(user);
    return s;
}

/* Streams each generated id's text to the caller. */
typedef struct {
    vlm_detok detok;
    const vlm_request *r;
    int stopped;
} stream_ctx;

static int on_token(void *user, int32_t id) {
    stream_ctx *c = user;
    const char *text;
    size_t len;
    vlm_detok_push(&c->detok, id, &text, &len);
    if (len && c->r->on_text && c->r->on_text(c->r->user, text, len)) c->stopped = 1;
    return c->stopped;
}

static int count_images(const vlm_request *r) {
    if (!r->messages) return r->n_images;
    int n = 0;
    for (int i = 0; i < r->n_messages; i++) n += r->messages[i].n_images;
    return n;
}

static const char *const *image_paths(const vlm_request *r, const char **buf, int n) {
    if (!r->messages) return r->images;
    int k = 0;
    for (int i = 0; i < r->n_messages; i++)
        for (int j = 0; j < r->messages[i].n_images && k < n; j++) buf[k++] = r->messages[i].images[j];
    return buf;
}

/* Parts of the request API that the engine (src/runtime/engine.c, in progress) brings. */
static vlm_status check_supported(const vlm_request *r) {
    int inputs = r->n_image_inputs;
    for (int i = 0; r->messages && i < r->n_messages; i++) {
        inputs += r->messages[i].n_image_inputs;
        if (r->messages[i].n_parts) return vlm_err(VLM_ERR_UNSUPPORTED, "message parts are not implemented yet");
    }
    if (inputs) return vlm_err(VLM_ERR_UNSUPPORTED, "images given as vlm_image_input are not implemented yet");
    if (r->n_stop) return vlm_err(VLM_ERR_UNSUPPORTED, "stop strings are not implemented yet");
    if (r->min_pixels || r->max_pixels)
        return vlm_err(VLM_ERR_UNSUPPORTED, "per-request min_pixels / max_pixels are not implemented yet");
    return VLM_OK;
}

vlm_status vlm_generate(vlm_model *m, const vlm_request *r, vlm_result *out) {
    memset(out, 0, sizeof *out);
    VLM_TRY(check_supported(r));
    vlm_timings *t = &out->timings;
    double t0 = vlm_now();
    vlm_reset_peak_rss();
    t->cpu_rss_before = vlm_rss_bytes();
    uint64_t total;
    vlm_gpu_memory(&t->gpu_mem_before, &total);
    m->be->bytes_peak = m->be->bytes_in_use;

    int n_images = count_images(r);
    const char **paths_buf = calloc((size_t)n_images + 1, sizeof *paths_buf);
    image_batch b = {0};
    vlm_ids ids = {0};
    vlm_dump *dump = NULL;
    float *embeds = NULL;
    stream_ctx sc = {.r = r};
    vlm_gen_result g = {0};
    vlm_status s = paths_buf ? VLM_OK : vlm_err(VLM_ERR_NOMEM, "out of memory");
    if (s == VLM_OK && r->dump_path) s = vlm_dump_create(&dump);
    if (s == VLM_OK) s = preprocess_images(m, image_paths(r, paths_buf, n_images), n_images, &b);
    double t_pre = vlm_now();
    if (s == VLM_OK && b.n_images) {
        int64_t shape[2] = {b.n_rows, 1176};
        s = vlm_dump_f32_host(dump, "pixel_values", b.pixels, 2, shape);
        int64_t gshape[2] = {b.n_images, 3};
        int64_t g64[64 * 3];
        for (int i = 0; i < b.n_images && i < 64; i++)
            for (int k = 0; k < 3; k++) g64[i * 3 + k] = b.grids[i][k];
        if (s == VLM_OK && b.n_images <= 64) s = vlm_dump_i64(dump, "image_grid_thw", g64, 2, gshape);
        int hidden = m->lang.cfg.text.hidden;
        if (s == VLM_OK &&
            !(embeds = vlm_dev_alloc(m->be, (size_t)b.n_tokens * hidden * sizeof(float), "image embeddings")))
            s = VLM_ERR_NOMEM;
        if (s == VLM_OK) s = encode_images(m, &b, embeds, dump);
        if (s == VLM_OK) s = vlm_sync(m->be);
    }
    double t_vis = vlm_now();
    if (s == VLM_OK) s = build_prompt(m, r, &b, &ids);
    vlm_grid_thw *grids = NULL;
    if (s == VLM_OK && b.n_images) {
        grids = calloc((size_t)b.n_images, sizeof *grids);
        if (!grids) s = vlm_err(VLM_ERR_NOMEM, "out of memory");
        for (int i = 0; grids && i < b.n_images; i++)
            grids[i] = (vlm_grid_thw){b.grids[i][0], b.grids[i][1], b.grids[i][2]};
    }
    vlm_gen_request gr;
    vlm_gen_request_init(&gr);
    if (s == VLM_OK) s = vlm_sampler_params_resolve(&m->gen, &r->sampling, &gr.sampling);
    if (s == VLM_OK) s = vlm_detok_init(&sc.detok, m->tok, 1);
    if (s == VLM_OK) {
        if (r->sampling.max_tokens < 1) s = vlm_err(VLM_ERR_INVALID, "max_tokens must be at least 1");
        gr.ids = ids.v;
        gr.n_ids = (int)ids.n;
        gr.image_embeds = embeds;
        gr.n_image_rows = (int)b.n_tokens;
        gr.grids = grids;
        gr.n_images = b.n_images;
        gr.stop_ids = r->sampling.ignore_eos ? NULL : m->gen.eos_ids;
        gr.n_stop = r->sampling.ignore_eos ? 0 : m->gen.n_eos;
        gr.max_new_tokens = r->sampling.max_tokens;
        gr.on_token = on_token;
        gr.user = &sc;
        gr.dump = dump;
    }
    double t_gen = vlm_now();
    if (s == VLM_OK) s = vlm_text_generate(m->text, &gr, &g);
    if (s == VLM_OK && r->on_text) {
        const char *text;
        size_t len;
        vlm_detok_flush(&sc.detok, &text, &len);
        if (len) r->on_text(r->user, text, len);
    }
    if (s == VLM_OK) { /* the whole answer, special tokens skipped, as transformers' decode */
        vlm_strbuf text = {0};
        s = vlm_tok_decode(m->tok, g.ids, g.n_ids, 1, &text);
        out->text = text.data ? text.data : calloc(1, 1);
        if (s == VLM_OK && !out->text) s = vlm_err(VLM_ERR_NOMEM, "out of memory");
    }
    if (s == VLM_OK && dump) s = vlm_dump_write(dump, r->dump_path);
    double t_end = vlm_now();
    if (s == VLM_OK) {
        out->input_ids = malloc((ids.n ? ids.n : 1) * sizeof(int32_t));
        out->generated_ids = malloc((g.n_ids ? (size_t)g.n_ids : 1) * sizeof(int32_t));
        if (!out->input_ids || !out->generated_ids) s = vlm_err(VLM_ERR_NOMEM, "out of memory");
    }
    if (s == VLM_OK) {
        memcpy(out->input_ids, ids.v, ids.n * sizeof(int32_t));
        out->n_input = (int)ids.n;
        memcpy(out->generated_ids, g.ids, (size_t)g.n_ids * sizeof(int32_t));
        out->n_generated = g.n_ids;
        out->stop = sc.stopped ? VLM_STOP_CALLBACK : g.stop;
        t->preprocess_s = t_pre - t0;
        t->vision_s = t_vis - t_pre;
        t->prefill_s = g.prefill_s;
        t->decode_s = g.decode_s;
        t->total_s = t_end - t0;
        t->time_to_first_token_s = (t_gen - t0) + g.first_token_s;
        t->prompt_tokens = (int)ids.n;
        t->image_tokens = (int)b.n_tokens;
        t->generated_tokens = g.n_ids;
        t->prefill_tokens_per_s = g.prefill_s > 0 ? ids.n / g.prefill_s : 0;
        t->decode_tokens_per_s = g.decode_s > 0 && g.n_ids > 1 ? (g.n_ids - 1) / g.decode_s : 0;
        t->kv_cache_bytes = g.kv_cache_bytes;
        t->cpu_rss_after = vlm_rss_bytes();
        t->cpu_rss_peak = vlm_peak_rss_bytes();
        vlm_gpu_memory(&t->gpu_mem_after, &total);
        /* the peak of the project's own device allocator (activations, KV cache, weights) */
        t->gpu_mem_peak = m->device == VLM_DEV_CUDA ? m->be->bytes_peak : 0;
    }
    vlm_gen_result_free(&g);
    vlm_detok_free(&sc.detok);
    free(grids);
    vlm_dev_free(m->be, embeds);
    vlm_ids_free(&ids);
    image_batch_free(&b);
    vlm_dump_free(dump);
    free(paths_buf);
    if (s != VLM_OK) vlm_result_free(out);
    return s;
}

void vlm_result_free(vlm_result *r) {
    free(r->input_ids);
    free(r->generated_ids);
    free(r->text);
    free(r->images);
    free(r->token_times);
    memset(r, 0, sizeof *r);
}
