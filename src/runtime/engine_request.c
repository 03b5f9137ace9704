/* Request preparation, on the submitting thread: the conversation is collected (one user turn, or
 * messages whose content is text after images or interleaved parts), each image is read, hashed,
 * decoded and resized as the model will see it, the chat template is rendered and tokenized (image
 * pads expanded), sampling is resolved and every limit checked, so bad input fails at submit. */
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "base/timer.h"
#include "image/preprocess.h"
#include "io/file.h"
#include "runtime/engine.h"
#include "text/chat.h"

enum { MAX_IMAGE_FILE_BYTES = 1 << 30 };

/* The conversation as chat messages, and its images in prompt order. */
typedef struct {
    vlm_chat_message *msgs;
    int n_msgs;
    vlm_chat_part *parts;
    int n_parts, cap_parts;
    const vlm_image_input **inputs; /* [n_images], pointing into the request or into `paths` */
    vlm_image_input *paths;         /* inputs made from image file paths */
    int n_images, cap_images;
} conversation;

static void conversation_free(conversation *c) {
    vlm_free(c->msgs);
    vlm_free(c->parts);
    vlm_free(c->inputs);
    vlm_free(c->paths);
}

static vlm_status text_part(conversation *c, const char *text, size_t len) {
    if (c->n_parts == c->cap_parts) return vlm_err(VLM_ERR_INVALID, "too many parts in the conversation");
    c->parts[c->n_parts++] = (vlm_chat_part){.type = VLM_CHAT_TEXT, .text = text, .len = len};
    return VLM_OK;
}

static vlm_status image_part(conversation *c, const vlm_image_input *in) {
    if (c->n_parts == c->cap_parts || c->n_images == c->cap_images)
        return vlm_err(VLM_ERR_INVALID, "too many images in the conversation");
    c->parts[c->n_parts++] = (vlm_chat_part){.type = VLM_CHAT_IMAGE};
    c->inputs[c->n_images++] = in;
    return VLM_OK;
}

/* Images given as file paths or as vlm_image_input (one of the two), as parts of the current message. */
static vlm_status add_images(conversation *c, const char *const *paths, int n_paths, const vlm_image_input *inputs,
                             int n_inputs, const char *where) {
    if (n_paths < 0 || n_inputs < 0) return vlm_err(VLM_ERR_INVALID, "%s: a negative image count", where);
    if (n_paths && n_inputs)
        return vlm_err(
            VLM_ERR_INVALID,
            "%s: images given both as paths (%d) and as vlm_image_input (%d); give one list, in prompt order", where,
            n_paths, n_inputs);
    if ((n_paths && !paths) || (n_inputs && !inputs))
        return vlm_err(VLM_ERR_INVALID, "%s: an image count without the images", where);
    for (int i = 0; i < n_paths; i++) {
        if (!paths[i]) return vlm_err(VLM_ERR_INVALID, "%s: image path %d is NULL", where, i);
        vlm_image_input *in = &c->paths[c->n_images];
        *in = (vlm_image_input){.path = paths[i]};
        VLM_TRY(image_part(c, in));
    }
    for (int i = 0; i < n_inputs; i++) VLM_TRY(image_part(c, &inputs[i]));
    return VLM_OK;
}

static size_t text_len(const char *text, size_t len) { return text ? (len ? len : strlen(text)) : 0; }

static vlm_status collect_message(conversation *c, const vlm_message *msg, int index) {
    char where[64];
    snprintf(where, sizeof where, "message %d", index);
    if (!msg->role || !*msg->role) return vlm_err(VLM_ERR_INVALID, "%s has no role", where);
    vlm_chat_message *cm = &c->msgs[c->n_msgs++];
    cm->role = msg->role;
    cm->parts = c->parts + c->n_parts;
    int first = c->n_parts;
    if (msg->n_parts < 0) return vlm_err(VLM_ERR_INVALID, "%s: a negative part count", where);
    if (msg->n_parts > 0) {
        if (!msg->parts) return vlm_err(VLM_ERR_INVALID, "%s: %d parts without the parts", where, msg->n_parts);
        for (int i = 0; i < msg->n_parts; i++) {
            const vlm_content_part *p = &msg->parts[i];
            if (p->image && p->text)
                return vlm_err(VLM_ERR_INVALID, "%s, part %d: both text and an image (one per part)", where, i);
            if (p->image) VLM_TRY(image_part(c, p->image));
            else if (p->text) VLM_TRY(text_part(c, p->text, text_len(p->text, p->text_len)));
            else return vlm_err(VLM_ERR_INVALID, "%s, part %d: neither text nor an image", where, i);
        }
    } else {
        VLM_TRY(add_images(c, msg->images, msg->n_images, msg->image_inputs, msg->n_image_inputs, where));
        if (msg->text) VLM_TRY(text_part(c, msg->text, strlen(msg->text)));
    }
    cm->n_parts = c->n_parts - first;
    return VLM_OK;
}

static vlm_status collect(const vlm_request *r, conversation *c) {
    memset(c, 0, sizeof *c);
    int n_msgs = 2, n_parts = 2, n_images = 0;
    if (r->n_messages < 0) return vlm_err(VLM_ERR_INVALID, "a negative message count");
    if (r->messages && r->n_messages > 0) {
        n_msgs = r->n_messages;
        n_parts = 0;
        for (int i = 0; i < r->n_messages; i++) {
            const vlm_message *msg = &r->messages[i];
            int k = msg->n_parts > 0 ? msg->n_parts : abs(msg->n_images) + abs(msg->n_image_inputs) + 1;
            n_parts += k;
            n_images += k;
        }
    } else {
        n_images = abs(r->n_images) + abs(r->n_image_inputs);
        n_parts += n_images;
    }
    c->cap_parts = n_parts;
    c->cap_images = n_images;
    c->msgs = vlm_calloc((size_t)n_msgs, sizeof *c->msgs, "chat messages");
    c->parts = vlm_calloc((size_t)n_parts, sizeof *c->parts, "chat message parts");
    c->inputs = vlm_calloc((size_t)n_images + 1, sizeof *c->inputs, "request images");
    c->paths = vlm_calloc((size_t)n_images + 1, sizeof *c->paths, "request images");
    if (!c->msgs || !c->parts || !c->inputs || !c->paths) return VLM_ERR_NOMEM;
    if (r->messages && r->n_messages > 0) {
        if (r->images || r->n_images || r->image_inputs || r->n_image_inputs || r->text || r->system)
            return vlm_err(VLM_ERR_INVALID,
                           "a request has either messages or a single turn (images, text, system), not both");
        for (int i = 0; i < r->n_messages; i++) VLM_TRY(collect_message(c, &r->messages[i], i));
        return VLM_OK;
    }
    if (r->system) { /* otherwise the template adds the default system prompt */
        c->msgs[c->n_msgs++] = (vlm_chat_message){.role = "system", .parts = c->parts, .n_parts = 1};
        VLM_TRY(text_part(c, r->system, strlen(r->system)));
    }
    vlm_chat_message *user = &c->msgs[c->n_msgs++];
    user->role = "user";
    user->parts = c->parts + c->n_parts;
    VLM_TRY(add_images(c, r->images, r->n_images, r->image_inputs, r->n_image_inputs, "the request"));
    VLM_TRY(text_part(c, r->text ? r->text : "", text_len(r->text, r->text_len)));
    user->n_parts = (int)(c->parts + c->n_parts - user->parts);
    return VLM_OK;
}

/* The pixel limit of an image: its own, else the request's, else the load options' (0: the
 * preprocessor config's). */
static long long pick_limit(long long image, long long request, long long model) {
    return image ? image : request ? request : model;
}

/* Decodes and resizes encoded image bytes as the model sees them; fills the image's size fields. */
static vlm_status decode_resize(vlm_model *m, const void *data, size_t n, const char *name, vlm_job_image *out) {
    vlm_image img = {0};
    vlm_image_info info;
    const vlm_preproc_config *pc = &m->preproc;
    vlm_status s = vlm_image_decode_memory(data, n, name, 0, &img, &info);
    if (s == VLM_OK) s = vlm_preprocess_resize(&img, pc, out->min_pixels, out->max_pixels, m->be->pool, &out->resized);
    if (s == VLM_OK) {
        out->grid = (vlm_grid_thw){1, out->resized.height / pc->patch_size, out->resized.width / pc->patch_size};
        s = vlm_chat_vision_tokens(out->grid.t, out->grid.h, out->grid.w, pc->merge_size, &out->tokens);
        out->summary = (vlm_image_summary){.width = img.width,
                                           .height = img.height,
                                           .resized_width = out->resized.width,
                                           .resized_height = out->resized.height,
                                           .tokens = out->tokens};
    }
    vlm_image_free(&img);
    return s;
}

static vlm_status prepare_image(vlm_model *m, const vlm_request *r, const vlm_image_input *in, vlm_image_sizes *sizes,
                                vlm_job_image *out) {
    int has_path = in->path != NULL, has_bytes = in->bytes != NULL || in->n_bytes > 0;
    if (has_path == has_bytes)
        return vlm_err(VLM_ERR_INVALID, "give either a path or encoded bytes, not %s", has_path ? "both" : "neither");
    if (has_bytes && (!in->bytes || !in->n_bytes)) return vlm_err(VLM_ERR_INVALID, "empty image bytes");
    if (in->min_pixels < 0 || in->max_pixels < 0)
        return vlm_err(VLM_ERR_INVALID, "min_pixels %lld / max_pixels %lld must be >= 0 (0: the request's)",
                       in->min_pixels, in->max_pixels);
    out->min_pixels = pick_limit(in->min_pixels, r->min_pixels, m->opt.min_pixels);
    out->max_pixels = pick_limit(in->max_pixels, r->max_pixels, m->opt.max_pixels);
    char *file = NULL;
    size_t n = in->n_bytes;
    const void *data = in->bytes;
    if (has_path) {
        VLM_TRY(vlm_read_file(in->path, MAX_IMAGE_FILE_BYTES, &file, &n));
        data = file;
    }
    vlm_status s = vlm_sha256_bytes(data, n, out->hash);
    vlm_image_size seen;
    if (s == VLM_OK && sizes && vlm_image_sizes_find(sizes, out->hash, out->min_pixels, out->max_pixels, &seen)) {
        /* seen before: its sizes are known; keep the bytes in case it must be encoded again */
        out->grid = seen.grid;
        out->summary = seen.summary;
        out->tokens = seen.summary.tokens;
        out->n_encoded = n;
        if (file) {
            out->encoded = file;
            file = NULL;
        } else if (!data) { /* not reached: bytes were checked above; said for the analyzer */
            s = vlm_err(VLM_ERR_INVALID, "empty image bytes");
        } else if ((out->encoded = vlm_alloc(n, "image bytes"))) {
            memcpy(out->encoded, data, n);
        } else {
            s = VLM_ERR_NOMEM;
        }
    } else if (s == VLM_OK) {
        s = decode_resize(m, data, n, has_path ? in->path : "image bytes", out);
        if (s == VLM_OK && sizes) {
            vlm_image_size add = {.min_pixels = out->min_pixels,
                                  .max_pixels = out->max_pixels,
                                  .summary = out->summary,
                                  .grid = out->grid};
            memcpy(add.hash, out->hash, 32);
            vlm_image_sizes_add(sizes, &add);
        }
    }
    free(file);
    return s;
}

vlm_status vlm_job_image_pixels(vlm_model *m, vlm_job *j, int i) {
    vlm_job_image *im = &j->images[i];
    if (im->resized.rgb) return VLM_OK;
    if (!im->encoded) return vlm_err(VLM_ERR_RUNTIME, "image %d has neither pixels nor bytes", i);
    vlm_image_summary want = im->summary;
    VLM_TRY(decode_resize(m, im->encoded, im->n_encoded, "image bytes", im));
    if (memcmp(&want, &im->summary, sizeof want) != 0)
        return vlm_err(VLM_ERR_RUNTIME, "image %d decodes to another size than when it was first seen", i);
    vlm_free(im->encoded);
    im->encoded = NULL;
    return VLM_OK;
}

/* The native encoder's activations for these images must fit in the memory available now (on the
 * CPU; a device's allocation decides there): else the request fails at once, suggesting a
 * max_pixels that fits, instead of after waiting in the queue. */
static vlm_status check_vision_memory(vlm_model *m, const vlm_job *j) {
    uint64_t avail = vlm_backend_available_memory(m->be);
    if (!m->vision || !vlm_backend_host_memory(m->be) || !avail) return VLM_OK;
    vlm_grid_thw *grids = vlm_calloc((size_t)j->n_images, sizeof *grids, "image grids");
    if (!grids) return VLM_ERR_NOMEM;
    for (int i = 0; i < j->n_images; i++) grids[i] = j->images[i].grid;
    vlm_status s = vlm_vision_check_memory(&m->vis.cfg, grids, j->n_images, avail, 0);
    vlm_free(grids);
    return s;
}

static vlm_status prepare_images(vlm_model *m, const vlm_request *r, const conversation *c, vlm_image_sizes *sizes,
                                 vlm_job *j) {
    if (!c->n_images) return VLM_OK;
    if (!m->vision && !m->onnx)
        return vlm_err(VLM_ERR_UNSUPPORTED, "this model has no vision encoder, so it cannot take images");
    j->images = vlm_calloc((size_t)c->n_images, sizeof *j->images, "request images");
    if (!j->images) return VLM_ERR_NOMEM;
    j->n_images = c->n_images;
    for (int i = 0; i < c->n_images; i++) {
        vlm_status s = prepare_image(m, r, c->inputs[i], sizes, &j->images[i]);
        if (s != VLM_OK) {
            const char *p = c->inputs[i]->path;
            return p ? vlm_err_ctx(s, "image %d (%s)", i, p) : vlm_err_ctx(s, "image %d (bytes)", i);
        }
        j->n_image_tokens += j->images[i].tokens;
    }
    return check_vision_memory(m, j);
}

static vlm_status build_prompt(vlm_model *m, const conversation *c, vlm_job *j) {
    int *counts = vlm_calloc((size_t)c->n_images + 1, sizeof *counts, "image token counts");
    if (!counts) return VLM_ERR_NOMEM;
    for (int i = 0; i < j->n_images; i++) counts[i] = j->images[i].tokens;
    vlm_ids ids = {0};
    vlm_chat_options opt = {.add_generation_prompt = 1};
    pthread_mutex_lock(&m->lock); /* one encoding thread per tokenizer */
    vlm_status s = vlm_chat_build(m->tok, c->msgs, c->n_msgs, &opt, counts, c->n_images, &ids, NULL);
    pthread_mutex_unlock(&m->lock);
    vlm_free(counts);
    if (s != VLM_OK) {
        vlm_ids_free(&ids); /* a failed build rewinds ids->n but keeps the buffer it grew */
        return s;
    }
    j->ids = vlm_alloc((ids.n + 1) * sizeof *j->ids, "the prompt ids");
    if (j->ids) memcpy(j->ids, ids.v, ids.n * sizeof *j->ids);
    j->n_ids = (int)ids.n;
    vlm_ids_free(&ids);
    if (!j->ids) return VLM_ERR_NOMEM;
    /* where each image's pads are: the k-th run of <|image_pad|> is image k's */
    j->image_start = vlm_calloc((size_t)j->n_images + 1, sizeof *j->image_start, "image positions");
    if (!j->image_start) return VLM_ERR_NOMEM;
    int32_t pad = m->lang.cfg.tokens.image_token_id;
    for (int i = 0, k = 0; i < j->n_ids; i++)
        if (j->ids[i] == pad && (i == 0 || j->ids[i - 1] != pad) && k < j->n_images) j->image_start[k++] = i;
    return VLM_OK;
}

vlm_status vlm_job_plan_blocks(vlm_job *j, int block_tokens, int hash_blocks) {
    int64_t positions = (int64_t)j->n_ids + j->max_tokens - 1;
    j->n_blocks = (int)((positions + block_tokens - 1) / block_tokens);
    if (!hash_blocks || j->dump_path) return VLM_OK; /* a dump runs every stage: no sharing */
    j->n_block_hash = j->n_ids / block_tokens;
    if (!j->n_block_hash) return VLM_OK;
    j->block_hash = vlm_alloc((size_t)j->n_block_hash * sizeof *j->block_hash, "prompt block hashes");
    uint8_t(*ih)[32] = vlm_alloc(((size_t)j->n_images + 1) * 32, "image hashes");
    int32_t(*ig)[3] = vlm_alloc(((size_t)j->n_images + 1) * sizeof *ig, "image grids");
    int *tokens = vlm_alloc(((size_t)j->n_images + 1) * sizeof *tokens, "image tokens");
    vlm_status s = j->block_hash && ih && ig && tokens ? VLM_OK : VLM_ERR_NOMEM;
    for (int k = 0; s == VLM_OK && k < j->n_images; k++) {
        memcpy(ih[k], j->images[k].hash, 32);
        ig[k][0] = j->images[k].grid.t, ig[k][1] = j->images[k].grid.h, ig[k][2] = j->images[k].grid.w;
        tokens[k] = j->images[k].tokens;
    }
    if (s == VLM_OK)
        s = vlm_block_hashes(j->ids, j->n_ids, block_tokens, (const uint8_t(*)[32])ih, (const int32_t(*)[3])ig,
                             j->image_start, tokens, j->n_images, j->block_hash);
    vlm_free(ih);
    vlm_free(ig);
    vlm_free(tokens);
    return s;
}

static vlm_status check_limits(vlm_model *m, const vlm_request *r, vlm_job *j) {
    const vlm_text_config *t = &m->lang.cfg.text;
    if ((int64_t)j->n_ids + j->max_tokens > t->max_positions)
        return vlm_err(VLM_ERR_INVALID,
                       "a prompt of %d tokens plus max_tokens %d exceeds the model's context of %d positions "
                       "(max_position_embeddings); shorten the prompt or lower max_tokens",
                       j->n_ids, j->max_tokens, t->max_positions);
    if (!r->sampling.ignore_eos) {
        const vlm_generation_config *gc = &m->gen;
        for (int i = 0; i < gc->n_eos && i < VLM_MAX_EOS; i++) j->stop_ids[j->n_stop_ids++] = gc->eos_ids[i];
    }
    return VLM_OK;
}

static vlm_status prepare(vlm_model *m, const vlm_request *r, vlm_image_sizes *sizes, vlm_job *j) {
    if (r->sampling.max_tokens < 1)
        return vlm_err(VLM_ERR_INVALID, "max_tokens %d must be at least 1", r->sampling.max_tokens);
    if (r->min_pixels < 0 || r->max_pixels < 0)
        return vlm_err(VLM_ERR_INVALID, "min_pixels %lld / max_pixels %lld must be >= 0 (0: the model's)",
                       r->min_pixels, r->max_pixels);
    j->max_tokens = r->sampling.max_tokens;
    VLM_TRY(vlm_sampler_params_resolve(&m->gen, &r->sampling, &j->sampling));
    VLM_TRY(vlm_stop_init(&j->stop, r->stop, r->n_stop));
    if (r->dump_path && !(j->dump_path = vlm_strdup(r->dump_path, "the dump path"))) return VLM_ERR_NOMEM;
    conversation c;
    vlm_status s = collect(r, &c);
    if (s == VLM_OK) s = prepare_images(m, r, &c, sizes, j);
    if (s == VLM_OK) s = build_prompt(m, &c, j);
    conversation_free(&c);
    if (s == VLM_OK) s = check_limits(m, r, j);
    return s;
}

vlm_status vlm_job_prepare(vlm_model *m, const vlm_request *r, vlm_image_sizes *sizes, vlm_job **out) {
    *out = NULL;
    vlm_job *j = vlm_calloc(1, sizeof *j, "a request");
    if (!j) return VLM_ERR_NOMEM;
    j->t_submit = vlm_now();
    j->on_text = r->on_text;
    j->user = r->user;
    vlm_status s = prepare(m, r, sizes, j);
    if (s != VLM_OK) {
        vlm_job_free(m, j);
        return s;
    }
    j->preprocess_s = vlm_now() - j->t_submit;
    *out = j;
    return VLM_OK;
}

void vlm_job_free(vlm_model *m, vlm_job *j) {
    (void)m;
    if (!j) return;
    for (int i = 0; j->images && i < j->n_images; i++) {
        vlm_image_free(&j->images[i].resized);
        vlm_free(j->images[i].encoded);
    }
    vlm_free(j->images);
    vlm_free(j->image_start);
    vlm_free(j->block_hash);
    vlm_free(j->ids);
    vlm_stop_free(&j->stop);
    free(j->dump_path);
    vlm_free(j);
}
