/* A reader of server-sent events (the client side of vlm bench --serve): bytes in as they arrive,
 * each complete event's data out. Plain C, built in every configuration. */
#include <string.h>

#include "bench/serve_bench.h"

static void sse_line(vlm_sse_reader *r, void (*on_data)(void *, const char *, size_t), void *user) {
    const char *l = r->line.data ? r->line.data : "";
    size_t n = r->line.len;
    if (n == 0) { /* a blank line ends the event */
        if (r->has_data) on_data(user, r->data.data ? r->data.data : "", r->data.len);
        r->data.len = 0;
        r->has_data = 0;
        return;
    }
    if (n >= 5 && !memcmp(l, "data:", 5)) {
        size_t skip = n > 5 && l[5] == ' ' ? 6 : 5;
        if (r->has_data) vlm_sb_append(&r->data, "\n", 1);
        vlm_sb_append(&r->data, l + skip, n - skip);
        if (!r->data.data) vlm_sb_append(&r->data, "", 0);
        r->has_data = 1;
    } /* comments (":...") and other fields (event:, id:, retry:) carry nothing we need */
}

void vlm_sse_feed(vlm_sse_reader *r, const char *bytes, size_t n,
                  void (*on_data)(void *user, const char *data, size_t len), void *user) {
    for (size_t i = 0; i < n; i++) {
        char c = bytes[i];
        if (c == '\r') continue;
        if (c != '\n') {
            vlm_sb_append(&r->line, &c, 1);
            continue;
        }
        sse_line(r, on_data, user);
        r->line.len = 0;
    }
}

void vlm_sse_reader_free(vlm_sse_reader *r) {
    vlm_sb_free(&r->line);
    vlm_sb_free(&r->data);
}
