/* Answers in the OpenAI schema: chat.completion, chat.completion.chunk, the error object, and the
 * "vlm" object (timings per stage, one entry per image) every answer carries. */
#include <string.h>

#include "base/memory.h"
#include "serve/openai.h"

/* Appends a string literal. */
#define LIT(b, s) vlm_sb_append((b), (s), sizeof(s) - 1)

static void str(vlm_strbuf *b, const char *s) { vlm_sb_json_string(b, s, strlen(s)); }

static void str_or_null(vlm_strbuf *b, const char *s) {
    if (s && s[0]) str(b, s);
    else LIT(b, "null");
}

static void ids(vlm_strbuf *b, const int32_t *v, int n) {
    LIT(b, "[");
    for (int i = 0; i < n; i++) vlm_sb_printf(b, i ? ",%d" : "%d", (int)v[i]);
    LIT(b, "]");
}

const char *vlm_oai_finish_reason(vlm_stop_reason s) {
    switch (s) {
    case VLM_STOP_MAX_TOKENS: return "length";
    case VLM_STOP_CANCELLED: return "abort";
    default: return "stop"; /* end of sequence, a stop string, the streaming callback */
    }
}

void vlm_oai_error_body(vlm_strbuf *b, const vlm_oai_error *e) {
    LIT(b, "{\"error\":{\"message\":");
    str(b, e->message);
    LIT(b, ",\"type\":");
    str(b, e->type ? e->type : "server_error");
    LIT(b, ",\"param\":");
    str_or_null(b, e->param);
    LIT(b, ",\"code\":");
    str_or_null(b, e->code);
    LIT(b, "}}");
}

void vlm_oai_vlm_object(vlm_strbuf *b, const vlm_result *r) {
    const vlm_timings *t = &r->timings;
    vlm_sb_printf(b,
                  "{\"timings\":{\"queue\":%.6f,\"preprocess\":%.6f,\"vision\":%.6f,\"prefill\":%.6f,\"decode\":%.6f,"
                  "\"total\":%.6f,\"time_to_first_token\":%.6f,\"prefill_tokens_per_s\":%.3f,"
                  "\"decode_tokens_per_s\":%.3f},",
                  t->queue_s, t->preprocess_s, t->vision_s, t->prefill_s, t->decode_s, t->total_s,
                  t->time_to_first_token_s, t->prefill_tokens_per_s, t->decode_tokens_per_s);
    vlm_sb_printf(b, "\"tokens\":{\"prompt\":%d,\"image\":%d,\"cached\":%d,\"generated\":%d},\"images\":[",
                  t->prompt_tokens, t->image_tokens, t->cached_tokens, r->n_generated);
    for (int i = 0; i < r->n_images; i++) {
        const vlm_image_summary *im = &r->images[i];
        vlm_sb_printf(b, "%s{\"width\":%d,\"height\":%d,\"resized_width\":%d,\"resized_height\":%d,\"tokens\":%d}",
                      i ? "," : "", im->width, im->height, im->resized_width, im->resized_height, im->tokens);
    }
    LIT(b, "]}");
}

static void usage(vlm_strbuf *b, const vlm_result *r) {
    int prompt = r->timings.prompt_tokens ? r->timings.prompt_tokens : r->n_input;
    vlm_sb_printf(b,
                  "\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d,"
                  "\"prompt_tokens_details\":{\"cached_tokens\":%d}}",
                  prompt, r->n_generated, prompt + r->n_generated, r->timings.cached_tokens);
}

static void head(vlm_strbuf *b, const vlm_oai_meta *m, const char *object) {
    LIT(b, "{\"id\":");
    str(b, m->id);
    vlm_sb_printf(b, ",\"object\":\"%s\",\"created\":%lld,\"model\":", object, m->created);
    str(b, m->model ? m->model : "");
}

void vlm_oai_completion(vlm_strbuf *b, const vlm_oai_meta *m, const vlm_result *r, int with_ids) {
    head(b, m, "chat.completion");
    LIT(b, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
    str(b, r->text ? r->text : "");
    vlm_sb_printf(b, "},\"logprobs\":null,\"finish_reason\":\"%s\"", vlm_oai_finish_reason(r->stop));
    if (with_ids) {
        LIT(b, ",\"token_ids\":");
        ids(b, r->generated_ids, r->n_generated);
    }
    LIT(b, "}],");
    usage(b, r);
    if (with_ids) {
        LIT(b, ",\"prompt_token_ids\":");
        ids(b, r->input_ids, r->n_input);
    }
    LIT(b, ",\"vlm\":");
    vlm_oai_vlm_object(b, r);
    LIT(b, "}");
}

void vlm_oai_chunk_delta(vlm_strbuf *b, const vlm_oai_meta *m, const char *role, const char *text, size_t len,
                         int usage_null) {
    head(b, m, "chat.completion.chunk");
    LIT(b, ",\"choices\":[{\"index\":0,\"delta\":{");
    if (role) {
        LIT(b, "\"role\":");
        str(b, role);
        LIT(b, ",");
    }
    LIT(b, "\"content\":");
    vlm_sb_json_string(b, text ? text : "", text ? len : 0);
    LIT(b, "},\"logprobs\":null,\"finish_reason\":null}]");
    if (usage_null) LIT(b, ",\"usage\":null");
    LIT(b, "}");
}

void vlm_oai_chunk_finish(vlm_strbuf *b, const vlm_oai_meta *m, const vlm_result *r, int with_ids, int usage_null) {
    head(b, m, "chat.completion.chunk");
    vlm_sb_printf(b, ",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"%s\"",
                  vlm_oai_finish_reason(r->stop));
    if (with_ids) {
        LIT(b, ",\"token_ids\":");
        ids(b, r->generated_ids, r->n_generated);
    }
    LIT(b, "}]");
    if (with_ids) {
        LIT(b, ",\"prompt_token_ids\":");
        ids(b, r->input_ids, r->n_input);
    }
    if (usage_null) LIT(b, ",\"usage\":null");
    LIT(b, ",\"vlm\":");
    vlm_oai_vlm_object(b, r);
    LIT(b, "}");
}

void vlm_oai_chunk_usage(vlm_strbuf *b, const vlm_oai_meta *m, const vlm_result *r) {
    head(b, m, "chat.completion.chunk");
    LIT(b, ",\"choices\":[],");
    usage(b, r);
    LIT(b, "}");
}

/* ---- copies of results ----------------------------------------------------------------------------- */

static void *dup_bytes(const void *src, size_t n, const char *what, vlm_status *s) {
    if (!src || !n || *s != VLM_OK) return NULL;
    void *d = vlm_alloc(n, what);
    if (!d) *s = VLM_ERR_NOMEM;
    else memcpy(d, src, n);
    return d;
}

vlm_status vlm_oai_result_copy(const vlm_result *src, vlm_result *dst) {
    vlm_status s = VLM_OK;
    *dst = *src;
    dst->input_ids = dup_bytes(src->input_ids, (size_t)src->n_input * sizeof *src->input_ids, "prompt ids", &s);
    dst->generated_ids =
        dup_bytes(src->generated_ids, (size_t)src->n_generated * sizeof *src->generated_ids, "generated ids", &s);
    dst->text = dup_bytes(src->text ? src->text : "", (src->text ? strlen(src->text) : 0) + 1, "answer text", &s);
    dst->images = dup_bytes(src->images, (size_t)src->n_images * sizeof *src->images, "image summaries", &s);
    dst->token_times =
        dup_bytes(src->token_times, (size_t)src->n_generated * sizeof *src->token_times, "token times", &s);
    if (s != VLM_OK) vlm_oai_result_release(dst);
    return s;
}

void vlm_oai_result_release(vlm_result *r) {
    vlm_free(r->input_ids);
    vlm_free(r->generated_ids);
    vlm_free(r->text);
    vlm_free(r->images);
    vlm_free(r->token_times);
    memset(r, 0, sizeof *r);
}
