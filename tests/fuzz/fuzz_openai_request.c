/* Fuzz target: the chat-completions request parser of vlm serve (JSON -> vlm_request). Any input
 * either parses into a consistent request (messages and parts in range, every image given by bytes
 * or by a path inside the media directory, max_tokens >= 1, stop strings non-empty) or is refused
 * with 400 / 404 and a message, whose error body is valid JSON. "@MEDIA@" in an input stands for the
 * media directory (the assets folder), so seeds can name files inside it wherever the tree is. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/openai.h"

static void check(int cond) {
    if (!cond) __builtin_trap();
}

static char g_media[PATH_MAX];

static void check_request(const vlm_oai_chat *c) {
    const vlm_request *r = &c->req;
    check(r->n_messages > 0 && r->messages == c->messages);
    check(r->sampling.max_tokens >= 1);
    int images = 0;
    for (int i = 0; i < r->n_messages; i++) {
        const vlm_message *m = &r->messages[i];
        check(m->role && (!strcmp(m->role, "system") || !strcmp(m->role, "user") || !strcmp(m->role, "assistant")));
        check(m->n_parts > 0 ? m->text == NULL : m->text != NULL);
        for (int k = 0; k < m->n_parts; k++) {
            const vlm_content_part *p = &m->parts[k];
            if (!p->image) {
                check(p->text && p->text_len == strlen(p->text));
                continue;
            }
            check(p->image == &c->images[images]);
            images++;
            check((p->image->bytes != NULL) != (p->image->path != NULL));
            if (p->image->bytes) check(p->image->n_bytes > 0);
            else check(!strncmp(p->image->path, g_media, strlen(g_media)));
            check(p->image->min_pixels >= 0 && p->image->max_pixels >= 0);
        }
    }
    check(images == c->n_images);
    for (int i = 0; i < r->n_stop; i++) check(r->stop[i] && r->stop[i][0]);
    check(!c->include_usage || c->stream);
    if (r->sampling.given & VLM_SAMPLING_TOP_P) check(r->sampling.top_p > 0 && r->sampling.top_p <= 1);
    if (r->sampling.given & VLM_SAMPLING_TEMPERATURE) check(r->sampling.temperature >= 0);
}

/* The input with every "@MEDIA@" replaced by the media directory (malloc'ed). */
static char *expand(const uint8_t *data, size_t size, size_t *n) {
    size_t m = strlen(g_media), cap = size + 1, k = 0;
    for (size_t i = 0; i + 7 <= size; i++) cap += memcmp(data + i, "@MEDIA@", 7) ? 0 : m;
    char *out = malloc(cap);
    for (size_t i = 0; i < size;) {
        if (i + 7 <= size && !memcmp(data + i, "@MEDIA@", 7)) {
            memcpy(out + k, g_media, m);
            k += m;
            i += 7;
        } else out[k++] = (char)data[i++];
    }
    *n = k;
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *raw, size_t raw_size) {
    if (!g_media[0]) check(realpath(VLM_SOURCE_DIR "/assets", g_media) != NULL);
    size_t size;
    char *data = expand(raw, raw_size, &size);
    static const char *const models[] = {"tiny"};
    vlm_oai_options o = {.media_dir = g_media, .models = models, .n_models = 1, .default_max_tokens = 16};
    vlm_oai_chat c;
    vlm_oai_error e;
    int st = vlm_oai_parse_chat(data, size, &o, &c, &e);
    free(data);
    if (st == 0) {
        check_request(&c);
        vlm_oai_chat_free(&c);
        return 0;
    }
    check((st == 400 || st == 404 || st == 503) && st == e.status && e.message[0] && e.type);
    check(c.root == NULL && c.messages == NULL && c.images == NULL);
    vlm_strbuf b = {0};
    vlm_oai_error_body(&b, &e);
    cJSON *j = cJSON_ParseWithLength(b.data, b.len);
    check(j != NULL && cJSON_IsObject(cJSON_GetObjectItem(j, "error")));
    cJSON_Delete(j);
    vlm_sb_free(&b);
    return 0;
}
