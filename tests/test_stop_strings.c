/* Stop strings with held-back streaming (src/text/stop_strings.h): matches inside a piece and
 * across pieces, the earliest of several strings, text held back only while it could still become
 * a stop string, flushing at the end, and bad strings refused. */
#include <string.h>

#include "harness.h"
#include "text/stop_strings.h"

/* Feeds pieces; returns the released text joined with '|' between releases, and whether it hit. */
static int feed(vlm_stop_matcher *sm, const char *const *pieces, int n, char *log, size_t cap) {
    int hit = 0;
    log[0] = '\0';
    for (int i = 0; i < n && !hit; i++) {
        const char *out;
        size_t len;
        hit = vlm_stop_push(sm, pieces[i], strlen(pieces[i]), &out, &len);
        strncat(log, out, len < cap - strlen(log) - 2 ? len : cap - strlen(log) - 2);
        strcat(log, "|");
    }
    if (!hit) {
        const char *out;
        size_t len;
        vlm_stop_flush(sm, &out, &len);
        strncat(log, out, len < cap - strlen(log) - 1 ? len : cap - strlen(log) - 1);
    }
    return hit;
}

static void test_match_across_pieces(void) {
    const char *stops[1] = {"o w"};
    vlm_stop_matcher sm;
    CHECK_OK(vlm_stop_init(&sm, stops, 1));
    const char *pieces[3] = {"Hel", "lo w", "orld"};
    char log[256];
    CHECK(feed(&sm, pieces, 3, log, sizeof log) == 1);
    CHECK_MSG(!strcmp(log, "Hel|l|"), "log %s", log);
    CHECK(!strcmp(sm.text.data, "Hell") && sm.text.len == 4 && sm.matched);
    vlm_stop_free(&sm);
}

static void test_hold_back_then_release(void) {
    const char *stops[2] = {"END", "ENOUGH"};
    vlm_stop_matcher sm;
    CHECK_OK(vlm_stop_init(&sm, stops, 2));
    const char *pieces[4] = {"abc E", "N", "O", "x"};
    char log[256];
    CHECK(feed(&sm, pieces, 4, log, sizeof log) == 0);
    /* "E", "EN", "ENO" could start ENOUGH: held; "ENOx" cannot: released at once */
    CHECK_MSG(!strcmp(log, "abc |||ENOx|"), "log %s", log);
    CHECK(!strcmp(sm.text.data, "abc ENOx") && !sm.matched);
    vlm_stop_free(&sm);
    /* held back at the end of the answer: flushed */
    CHECK_OK(vlm_stop_init(&sm, stops, 2));
    const char *tail[1] = {"the EN"};
    CHECK(feed(&sm, tail, 1, log, sizeof log) == 0);
    CHECK_MSG(!strcmp(log, "the |EN"), "log %s", log);
    vlm_stop_free(&sm);
}

static void test_earliest_of_several(void) {
    const char *stops[3] = {"zz", "bc", "abcd"};
    vlm_stop_matcher sm;
    CHECK_OK(vlm_stop_init(&sm, stops, 3));
    const char *pieces[1] = {"xxabcdzz"};
    char log[256];
    CHECK(feed(&sm, pieces, 1, log, sizeof log) == 1);
    CHECK_MSG(!strcmp(log, "xx|") && !strcmp(sm.text.data, "xx"), "log %s", log); /* "abcd" starts first */
    const char *out;
    size_t len;
    CHECK(vlm_stop_push(&sm, "more", 4, &out, &len) == 1 && len == 0); /* nothing after a match */
    vlm_stop_free(&sm);
}

static void test_no_stops_and_bad_input(void) {
    vlm_stop_matcher sm;
    CHECK_OK(vlm_stop_init(&sm, NULL, 0));
    const char *pieces[2] = {"any", " text"};
    char log[64];
    CHECK(feed(&sm, pieces, 2, log, sizeof log) == 0);
    CHECK(!strcmp(log, "any| text|"));
    vlm_stop_free(&sm);
    const char *empty[2] = {"ok", ""};
    CHECK_ERR(vlm_stop_init(&sm, empty, 2), VLM_ERR_INVALID, "stop string 1 is empty");
    const char *null[1] = {NULL};
    CHECK_ERR(vlm_stop_init(&sm, null, 1), VLM_ERR_INVALID, "stop string 0 is empty");
    CHECK_ERR(vlm_stop_init(&sm, NULL, 2), VLM_ERR_INVALID, "without the strings");
    /* multi-byte UTF-8: a stop string that begins inside a character's bytes is still found */
    const char *utf[1] = {"\xc3\xa9t\xc3\xa9"};
    CHECK_OK(vlm_stop_init(&sm, utf, 1));
    const char *p2[2] = {"l'\xc3", "\xa9t\xc3\xa9 fini"};
    CHECK(feed(&sm, p2, 2, log, sizeof log) == 1 && !strcmp(sm.text.data, "l'"));
    vlm_stop_free(&sm);
}

int main(void) {
    RUN(test_match_across_pieces);
    RUN(test_hold_back_then_release);
    RUN(test_earliest_of_several);
    RUN(test_no_stops_and_bad_input);
    return test_summary();
}
