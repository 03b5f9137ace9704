#include "text/chat.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/memory.h"

static const char k_default_system[] = "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n";
static const char k_image[] = "<|vision_start|><|image_pad|><|vision_end|>";
static const char k_video[] = "<|vision_start|><|video_pad|><|vision_end|>";

static void put(vlm_strbuf *b, const char *s) { vlm_sb_append(b, s, strlen(s)); }

vlm_status vlm_chat_render(const vlm_chat_message *msgs, int n_msgs, const vlm_chat_options *opt, vlm_strbuf *out) {
    static const vlm_chat_options k_default = {1, 0};
    if (!opt) opt = &k_default;
    if (n_msgs < 1 || !msgs) return vlm_err(VLM_ERR_INVALID, "chat: no messages");
    for (int m = 0; m < n_msgs; m++) {
        const char *role = msgs[m].role;
        if (!role || !*role || strpbrk(role, "\r\n"))
            return vlm_err(VLM_ERR_INVALID, "chat: message %d has %s", m,
                           role && *role ? "a line break in its role" : "no role");
        if (msgs[m].n_parts < 0 || (msgs[m].n_parts > 0 && !msgs[m].parts))
            return vlm_err(VLM_ERR_INVALID, "chat: message %d has a bad part list", m);
    }
    int images = 0, videos = 0;
    if (strcmp(msgs[0].role, "system") != 0) put(out, k_default_system);
    for (int m = 0; m < n_msgs; m++) {
        put(out, "<|im_start|>");
        put(out, msgs[m].role);
        put(out, "\n");
        for (int p = 0; p < msgs[m].n_parts; p++) {
            const vlm_chat_part *part = &msgs[m].parts[p];
            switch (part->type) {
            case VLM_CHAT_TEXT:
                if (part->len && !part->text)
                    return vlm_err(VLM_ERR_INVALID, "chat: message %d part %d has no text", m, p);
                vlm_sb_append(out, part->text ? part->text : "", part->len);
                break;
            case VLM_CHAT_IMAGE:
                if (opt->add_vision_id) vlm_sb_printf(out, "Picture %d: ", ++images);
                put(out, k_image);
                break;
            case VLM_CHAT_VIDEO:
                if (opt->add_vision_id) vlm_sb_printf(out, "Video %d: ", ++videos);
                put(out, k_video);
                break;
            default:
                return vlm_err(VLM_ERR_INVALID, "chat: message %d part %d has an unknown type %d", m, p,
                               (int)part->type);
            }
        }
        put(out, "<|im_end|>\n");
    }
    if (opt->add_generation_prompt) put(out, "<|im_start|>assistant\n");
    if (out->failed) return vlm_err(VLM_ERR_NOMEM, "out of memory rendering the chat template");
    return VLM_OK;
}

static int count_vision_parts(const vlm_chat_message *msgs, int n_msgs) {
    int n = 0;
    for (int m = 0; m < n_msgs; m++)
        for (int p = 0; p < msgs[m].n_parts; p++) n += msgs[m].parts[p].type != VLM_CHAT_TEXT;
    return n;
}

/* Replaces the k-th pad id of ids[from..] by pad_counts[k] copies. */
static vlm_status expand_pads(const vlm_tokenizer *t, vlm_ids *ids, size_t from, const int *pad_counts, int n_pads) {
    const vlm_tok_specials *sp = vlm_tok_specials_of(t);
    size_t extra = 0;
    int k = 0;
    for (size_t i = from; i < ids->n; i++) {
        int32_t id = ids->v[i];
        if (id != sp->image_pad && id != sp->video_pad) continue;
        if (k >= n_pads)
            return vlm_err(VLM_ERR_INVALID,
                           "chat: the prompt holds more <|image_pad|> / <|video_pad|> tokens than its %d "
                           "image and video parts (does a text part spell one out?)",
                           n_pads);
        if (pad_counts[k] < 1 || (size_t)pad_counts[k] > (size_t)INT32_MAX - extra)
            return vlm_err(VLM_ERR_INVALID, "chat: image %d has a token count of %d", k, pad_counts[k]);
        extra += (size_t)pad_counts[k] - 1;
        k++;
    }
    if (k != n_pads)
        return vlm_err(VLM_ERR_INVALID, "chat: the prompt holds %d vision pad tokens for %d image and video parts", k,
                       n_pads);
    size_t n_old = ids->n;
    VLM_TRY(vlm_ids_reserve(ids, extra));
    /* expand in place from the end */
    size_t w = n_old + extra;
    k = n_pads;
    for (size_t i = n_old; i-- > from;) {
        int32_t id = ids->v[i];
        if (id == sp->image_pad || id == sp->video_pad) {
            int c = pad_counts[--k];
            for (int j = 0; j < c; j++) ids->v[--w] = id;
        } else ids->v[--w] = id;
    }
    ids->n = n_old + extra;
    return VLM_OK;
}

vlm_status vlm_chat_build(vlm_tokenizer *t, const vlm_chat_message *msgs, int n_msgs, const vlm_chat_options *opt,
                          const int *pad_counts, int n_pads, vlm_ids *ids, vlm_strbuf *text) {
    int parts = count_vision_parts(msgs, n_msgs > 0 && msgs ? n_msgs : 0);
    if (n_pads != parts || (n_pads > 0 && !pad_counts))
        return vlm_err(VLM_ERR_INVALID, "chat: %d token counts given for %d image and video parts", n_pads, parts);
    const vlm_tok_specials *sp = vlm_tok_specials_of(t);
    if (parts && (sp->vision_start < 0 || sp->vision_end < 0 || sp->image_pad < 0 || sp->video_pad < 0))
        return vlm_err(VLM_ERR_INVALID,
                       "chat: the tokenizer has no <|vision_start|> / <|image_pad|> / <|video_pad|> / "
                       "<|vision_end|> tokens, so it cannot take images");
    vlm_strbuf own = {0}, *buf = text ? text : &own;
    size_t text_start = buf->len, ids_start = ids->n;
    vlm_status s = vlm_chat_render(msgs, n_msgs, opt, buf);
    if (s == VLM_OK) s = vlm_tok_encode(t, buf->data + text_start, buf->len - text_start, ids);
    if (s == VLM_OK) s = expand_pads(t, ids, ids_start, pad_counts, n_pads);
    vlm_sb_free(&own);
    if (s != VLM_OK) {
        ids->n = ids_start;
        if (text && text->data) text->data[text->len = text_start] = '\0';
    }
    return s;
}

vlm_status vlm_chat_build_prompt(vlm_tokenizer *t, const char *prompt, size_t prompt_len, const int *image_tokens,
                                 int n_images, vlm_ids *ids, vlm_strbuf *text) {
    if (n_images < 0) return vlm_err(VLM_ERR_INVALID, "chat: %d images in one prompt", n_images);
    vlm_chat_part *parts = vlm_calloc((size_t)n_images + 1, sizeof *parts, "the parts of a chat message");
    if (!parts) return VLM_ERR_NOMEM;
    for (int k = 0; k < n_images; k++) parts[k] = (vlm_chat_part){VLM_CHAT_IMAGE, NULL, 0};
    parts[n_images] = (vlm_chat_part){VLM_CHAT_TEXT, prompt, prompt ? prompt_len : 0};
    vlm_chat_message msg = {"user", parts, n_images + 1};
    vlm_chat_options opt = {1, 0};
    vlm_status s = vlm_chat_build(t, &msg, 1, &opt, image_tokens, n_images, ids, text);
    vlm_free(parts);
    return s;
}

vlm_status vlm_chat_vision_tokens(int grid_t, int grid_h, int grid_w, int merge_size, int *tokens) {
    if (grid_t < 1 || grid_h < 1 || grid_w < 1 || merge_size < 1)
        return vlm_err(VLM_ERR_INVALID, "image grid (%d, %d, %d) with merge size %d", grid_t, grid_h, grid_w,
                       merge_size);
    int64_t n = (int64_t)grid_t * grid_h * grid_w, m = (int64_t)merge_size * merge_size;
    if (n % m || n / m > INT32_MAX)
        return vlm_err(VLM_ERR_INVALID, "image grid (%d, %d, %d) is not a whole number of %dx%d merged patches", grid_t,
                       grid_h, grid_w, merge_size, merge_size);
    *tokens = (int)(n / m);
    return VLM_OK;
}
