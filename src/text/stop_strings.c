/* Stop strings: search the new text for a complete stop string, hold back a suffix that could
 * still become one. See stop_strings.h. */
#include "text/stop_strings.h"

#include <string.h>

#include "base/memory.h"

vlm_status vlm_stop_init(vlm_stop_matcher *sm, const char *const *stops, int n) {
    memset(sm, 0, sizeof *sm);
    if (n < 0) return vlm_err(VLM_ERR_INVALID, "%d stop strings: the count must be >= 0", n);
    if (n > 0 && !stops) return vlm_err(VLM_ERR_INVALID, "%d stop strings given without the strings", n);
    for (int i = 0; i < n; i++)
        if (!stops[i] || !stops[i][0])
            return vlm_err(VLM_ERR_INVALID, "stop string %d is empty (it would end every answer at once)", i);
    if (n == 0) return VLM_OK;
    sm->stops = vlm_calloc((size_t)n, sizeof *sm->stops, "stop strings");
    sm->lens = vlm_calloc((size_t)n, sizeof *sm->lens, "stop strings");
    if (!sm->stops || !sm->lens) {
        vlm_stop_free(sm);
        return VLM_ERR_NOMEM;
    }
    sm->n = n;
    for (int i = 0; i < n; i++) {
        sm->lens[i] = strlen(stops[i]);
        sm->stops[i] = vlm_alloc(sm->lens[i] + 1, "a stop string");
        if (!sm->stops[i]) {
            vlm_stop_free(sm);
            return VLM_ERR_NOMEM;
        }
        memcpy(sm->stops[i], stops[i], sm->lens[i] + 1);
        if (sm->lens[i] > sm->max_len) sm->max_len = sm->lens[i];
    }
    return VLM_OK;
}

void vlm_stop_free(vlm_stop_matcher *sm) {
    for (int i = 0; sm->stops && i < sm->n; i++) vlm_free(sm->stops[i]);
    vlm_free(sm->stops);
    vlm_free(sm->lens);
    vlm_sb_free(&sm->text);
    memset(sm, 0, sizeof *sm);
}

int vlm_stop_ok(const vlm_stop_matcher *sm) { return !sm->text.failed; }

/* The earliest start of a stop string that ends at or after `from`; -1 when none. */
static long first_match(const vlm_stop_matcher *sm, size_t from) {
    const char *t = sm->text.data;
    size_t len = sm->text.len;
    long best = -1;
    for (int i = 0; i < sm->n; i++) {
        size_t n = sm->lens[i], start = from >= n - 1 ? from - (n - 1) : 0;
        if (len < n || start > len - n) continue;
        const char *hit = memmem(t + start, len - start, sm->stops[i], n);
        if (hit && (best < 0 || hit - t < best)) best = hit - t;
    }
    return best;
}

/* The longest suffix of the text after `from` that is a proper prefix of some stop string. */
static size_t held_suffix(const vlm_stop_matcher *sm, size_t from) {
    const char *t = sm->text.data;
    size_t len = sm->text.len, most = sm->max_len - 1 < len - from ? sm->max_len - 1 : len - from;
    for (size_t k = most; k > 0; k--)
        for (int i = 0; i < sm->n; i++)
            if (sm->lens[i] > k && !memcmp(t + len - k, sm->stops[i], k)) return k;
    return 0;
}

int vlm_stop_push(vlm_stop_matcher *sm, const char *piece, size_t len, const char **out, size_t *out_len) {
    *out = "";
    *out_len = 0;
    if (sm->matched || !len) return sm->matched;
    size_t old = sm->text.len;
    vlm_sb_append(&sm->text, piece, len);
    if (sm->text.failed) return 0;
    size_t end = sm->text.len;
    if (sm->n) {
        long hit = first_match(sm, old);
        if (hit >= 0) {
            sm->matched = 1;
            end = (size_t)hit > sm->released ? (size_t)hit : sm->released; /* never inside released text */
            sm->text.len = end;
            sm->text.data[end] = '\0';
        } else {
            end -= held_suffix(sm, sm->released);
        }
    }
    *out = sm->text.data + sm->released;
    *out_len = end > sm->released ? end - sm->released : 0;
    if (end > sm->released) sm->released = end;
    return sm->matched;
}

void vlm_stop_flush(vlm_stop_matcher *sm, const char **out, size_t *out_len) {
    *out = sm->text.data ? sm->text.data + sm->released : "";
    *out_len = sm->text.len - sm->released;
    sm->released = sm->text.len;
}
