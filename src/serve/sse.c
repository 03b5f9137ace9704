#include "serve/sse.h"

#define LIT(b, s) vlm_sb_append((b), (s), sizeof(s) - 1)

/* One event: the JSON is built in place after "data: ". */
static void event_begin(vlm_strbuf *out) { LIT(out, "data: "); }
static void event_end(vlm_strbuf *out) { LIT(out, "\n\n"); }

void vlm_sse_chat_begin(const vlm_sse_chat *s, vlm_strbuf *out) {
    event_begin(out);
    vlm_oai_chunk_delta(out, &s->meta, "assistant", "", 0, s->include_usage);
    event_end(out);
}

void vlm_sse_chat_text(const vlm_sse_chat *s, const char *text, size_t len, vlm_strbuf *out) {
    if (!len) return;
    event_begin(out);
    vlm_oai_chunk_delta(out, &s->meta, NULL, text, len, s->include_usage);
    event_end(out);
}

static void done(vlm_strbuf *out) { LIT(out, "data: [DONE]\n\n"); }

void vlm_sse_chat_end(const vlm_sse_chat *s, const vlm_result *r, vlm_strbuf *out) {
    event_begin(out);
    vlm_oai_chunk_finish(out, &s->meta, r, s->with_ids, s->include_usage);
    event_end(out);
    if (s->include_usage) {
        event_begin(out);
        vlm_oai_chunk_usage(out, &s->meta, r);
        event_end(out);
    }
    done(out);
}

void vlm_sse_chat_error(const vlm_sse_chat *s, const vlm_oai_error *e, vlm_strbuf *out) {
    (void)s;
    event_begin(out);
    vlm_oai_error_body(out, e);
    event_end(out);
    done(out);
}

void vlm_sse_keepalive(vlm_strbuf *out) { LIT(out, ": keep-alive\n\n"); }
