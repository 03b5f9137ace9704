/* Tokenizer: every encode and decode case of fixtures/tokenizer (one-shot and streaming), round
 * trips, the White_Space edge cases, NFC against utf8proc, NUL and ill-formed UTF-8, the BPE heap
 * path, unknown ids, and broken or unsupported tokenizer.json files. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "base/timer.h"
#include "harness.h"
#include "io/file.h"
#include "text/tokenizer.h"
#include "text/tokenizer_internal.h"

static vlm_tokenizer *g_tok;

/* ---- fixture helpers ---- */

static int hex_bytes(const char *hex, char **out, size_t *n) {
    size_t len = strlen(hex);
    *out = malloc(len / 2 + 1);
    *n = len / 2;
    for (size_t i = 0; i < *n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return 0;
        (*out)[i] = (char)v;
    }
    (*out)[*n] = '\0';
    return 1;
}

typedef struct {
    cJSON **v;
    int n;
} jsonl;

static jsonl read_jsonl(const char *rel) {
    jsonl r = {0};
    char *text;
    size_t len;
    if (vlm_read_file(test_fixture(rel), 0, &text, &len) != VLM_OK) {
        CHECK_MSG(0, "%s", vlm_last_error());
        return r;
    }
    r.v = calloc(4096, sizeof *r.v);
    for (char *line = text; line && *line && r.n < 4096;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        if (n) CHECK_OK(vlm_json_parse(line, n, rel, &r.v[r.n++]));
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return r;
}

static void free_jsonl(jsonl *r) {
    for (int i = 0; i < r->n; i++) cJSON_Delete(r->v[i]);
    free(r->v);
}

static int ids_of(const cJSON *arr, int32_t *out, int cap) {
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) if (n < cap) out[n++] = (int32_t)e->valueint;
    return n;
}

static int same_ids(const vlm_ids *got, const int32_t *want, int n) {
    return got->n == (size_t)n && (n == 0 || !memcmp(got->v, want, (size_t)n * sizeof *want));
}

static void print_ids(const char *what, const int32_t *v, size_t n) {
    fprintf(stderr, "    %s:", what);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(stderr, " %d", v[i]);
    fprintf(stderr, "%s\n", n > 40 ? " ..." : "");
}

static const char *str_of(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* ---- load and lookups ---- */

static void test_load(void) {
    CHECK_OK(vlm_tok_load(test_fixture("tokenizer/qwen2_5_vl/tokenizer.json"), &g_tok));
    if (!g_tok) exit(1);
    CHECK(vlm_tok_n_ids(g_tok) == 151665);
    CHECK(vlm_tok_n_merges(g_tok) == 151387);
    CHECK(vlm_tok_n_added(g_tok) == 22);
    const vlm_tok_specials *sp = vlm_tok_specials_of(g_tok);
    CHECK(sp->endoftext == 151643 && sp->im_start == 151644 && sp->im_end == 151645);
    CHECK(sp->vision_start == 151652 && sp->vision_end == 151653 && sp->image_pad == 151655 && sp->video_pad == 151656);
    CHECK(vlm_tok_token_id(g_tok, "Hello") == 9707);
    CHECK(vlm_tok_token_id(g_tok, "\xc4\xa0world") == 1879); /* "Ġworld" */
    CHECK(vlm_tok_token_id(g_tok, "<tool_call>") == 151657);
    int32_t id;
    CHECK_ERR(vlm_tok_find(g_tok, "<|no_such_token|>", &id), VLM_ERR_NOT_FOUND, "<|no_such_token|>");
    size_t n;
    const char *b = vlm_tok_id_bytes(g_tok, 1879, &n);
    CHECK(b && n == 6 && !memcmp(b, " world", 6));
    b = vlm_tok_id_bytes(g_tok, 151645, &n);
    CHECK(b && n == 10 && !memcmp(b, "<|im_end|>", 10));
    CHECK(!vlm_tok_id_bytes(g_tok, 151665, &n) && n == 0);
    CHECK(!vlm_tok_id_bytes(g_tok, 151935, &n) && !vlm_tok_id_bytes(g_tok, -1, &n));
    CHECK(vlm_tok_is_special(g_tok, 151645) && !vlm_tok_is_special(g_tok, 151657) && !vlm_tok_is_special(g_tok, 9707));
    CHECK(vlm_tok_is_added(g_tok, 151657) && !vlm_tok_is_added(g_tok, 9707));
    /* every added token encodes to its own id */
    for (int32_t k = 151643; k < 151665; k++) {
        vlm_ids ids = {0};
        b = vlm_tok_id_bytes(g_tok, k, &n);
        CHECK_OK(vlm_tok_encode(g_tok, b, n, &ids));
        CHECK_MSG(ids.n == 1 && ids.v[0] == k, "added token %d", k);
        vlm_ids_free(&ids);
    }
}

/* ---- encode cases ---- */

static int run_encode_cases(const char *rel, const char *ids_key) {
    jsonl cases = read_jsonl(rel);
    int failures = 0;
    CHECK(cases.n > 0);
    for (int c = 0; c < cases.n; c++) {
        const cJSON *o = cases.v[c];
        char *text;
        size_t n;
        int32_t want[8192];
        CHECK(hex_bytes(str_of(o, "text_utf8_hex"), &text, &n));
        int nw = ids_of(cJSON_GetObjectItemCaseSensitive(o, ids_key), want, 8192);
        for (int pass = 0; pass < 2; pass++) { /* the second pass hits the piece cache */
            vlm_ids ids = {0};
            CHECK_OK(vlm_tok_encode(g_tok, text, n, &ids));
            if (!same_ids(&ids, want, nw)) {
                failures++;
                CHECK_MSG(0, "%s case %s (pass %d)", rel, str_of(o, "name"), pass);
                print_ids("want", want, (size_t)nw);
                print_ids("got ", ids.v, ids.n);
            }
            vlm_ids_free(&ids);
        }
        free(text);
    }
    free_jsonl(&cases);
    return failures;
}

static void test_encode_cases(void) {
    jsonl cases = read_jsonl("tokenizer/cases.jsonl");
    CHECK(cases.n == 208);
    free_jsonl(&cases);
    CHECK(run_encode_cases("tokenizer/cases.jsonl", "ids") == 0);
}

/* The same cases with the heap BPE everywhere and no cache. */
static void test_encode_cases_heap(void) {
    g_tok->bpe_linear_max = 1;
    g_tok->cache_off = 1;
    CHECK(run_encode_cases("tokenizer/cases.jsonl", "ids") == 0);
    g_tok->bpe_linear_max = VLM_TOK_LINEAR_MAX;
    g_tok->cache_off = 0;
}

/* U+FEFF is not White_Space, U+0085 is (Hugging Face / Python regex semantics, not JavaScript's). */
static void test_whitespace_edge_cases(void) {
    CHECK(run_encode_cases("tokenizer/whitespace_edge_cases.jsonl", "ids") == 0);
    /* U+180E is in PCRE2's UCP \s but not White_Space: "x \u180E" must not split like a space */
    vlm_ids a = {0}, b = {0};
    CHECK_OK(vlm_tok_encode(g_tok, "x \xe1\xa0\x8ey", 6, &a));
    CHECK_OK(vlm_tok_encode(g_tok, "x", 1, &b));
    CHECK_OK(vlm_tok_encode(g_tok, " \xe1\xa0\x8e", 4, &b)); /* one piece " ?[^\s\p{L}\p{N}]+" */
    CHECK_OK(vlm_tok_encode(g_tok, "y", 1, &b));
    CHECK(a.n == b.n && !memcmp(a.v, b.v, a.n * 4));
    vlm_ids_free(&a);
    vlm_ids_free(&b);
}

/* ---- decode cases ---- */

static void test_decode_cases(void) {
    jsonl cases = read_jsonl("tokenizer/decode_cases.jsonl");
    CHECK(cases.n == 31);
    for (int c = 0; c < cases.n; c++) {
        const cJSON *o = cases.v[c];
        const char *name = str_of(o, "name");
        int32_t ids[4096];
        int n = ids_of(cJSON_GetObjectItemCaseSensitive(o, "ids"), ids, 4096);
        int skip = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "skip_special_tokens"));
        const char *want = str_of(o, "text");
        vlm_strbuf out = {0};
        CHECK_OK(vlm_tok_decode(g_tok, ids, (size_t)n, skip, &out));
        CHECK_MSG(out.len == strlen(want) && !memcmp(out.data ? out.data : "", want, out.len),
                  "decode case %s: got \"%s\"", name, out.data ? out.data : "");
        vlm_sb_free(&out);

        vlm_detok d;
        CHECK_OK(vlm_detok_init(&d, g_tok, skip));
        const cJSON *stream = cJSON_GetObjectItemCaseSensitive(o, "stream");
        CHECK(cJSON_GetArraySize(stream) == n);
        for (int i = 0; i < n; i++) {
            const char *piece;
            size_t len;
            vlm_detok_push(&d, ids[i], &piece, &len);
            const cJSON *w = cJSON_GetArrayItem(stream, i);
            const char *ws = cJSON_IsString(w) ? w->valuestring : "?";
            CHECK_MSG(len == strlen(ws) && !memcmp(piece, ws, len), "stream case %s step %d: got \"%.*s\" want \"%s\"",
                      name, i, (int)len, piece, ws);
        }
        const char *piece;
        size_t len;
        vlm_detok_flush(&d, &piece, &len);
        const char *wf = str_of(o, "stream_flush");
        CHECK_MSG(len == strlen(wf) && !memcmp(piece, wf, len), "stream case %s flush", name);
        vlm_detok_free(&d);
    }
    free_jsonl(&cases);
}

/* Decoding an encode case gives its text, NFC-normalized. */
static void test_round_trip(void) {
    jsonl cases = read_jsonl("tokenizer/cases.jsonl");
    for (int c = 0; c < cases.n; c++) {
        const cJSON *o = cases.v[c];
        char *text;
        size_t n;
        CHECK(hex_bytes(str_of(o, "text_utf8_hex"), &text, &n));
        vlm_ids ids = {0};
        vlm_strbuf out = {0};
        CHECK_OK(vlm_tok_encode(g_tok, text, n, &ids));
        CHECK_OK(vlm_tok_decode(g_tok, ids.v, ids.n, 0, &out));
        utf8proc_uint8_t *nfc = NULL;
        utf8proc_ssize_t m =
            utf8proc_map((const utf8proc_uint8_t *)text, (utf8proc_ssize_t)n, &nfc, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        CHECK_MSG(m >= 0 && out.len == (size_t)m && !memcmp(out.data ? out.data : "", nfc, out.len), "round trip %s",
                  str_of(o, "name"));
        free(nfc);
        free(text);
        vlm_ids_free(&ids);
        vlm_sb_free(&out);
    }
    free_jsonl(&cases);
}

/* ---- bytes: NUL, ill-formed UTF-8 ---- */

static void raw_concat(const vlm_ids *ids, vlm_strbuf *out) {
    for (size_t i = 0; i < ids->n; i++) {
        size_t n;
        const char *b = vlm_tok_id_bytes(g_tok, ids->v[i], &n);
        vlm_sb_append(out, b ? b : "", n);
    }
}

static void test_bytes(void) {
    static const char *inputs[] = {"a\0b",
                                   "\xff",
                                   "abc\xff"
                                   "def",
                                   "\xc3(",
                                   "caf\xc3",
                                   "\xe2\x82 x",
                                   "\xed\xa0\x80",
                                   "\xf4\x90\x80\x80 z",
                                   "\xc0\xaf\xfe\xfe",
                                   " \x80\x80\x80 ",
                                   "<|im_end|>\xff<|im_start|>"};
    static const size_t lens[] = {3, 1, 7, 2, 4, 4, 3, 6, 4, 5, 23};
    for (size_t k = 0; k < sizeof lens / sizeof lens[0]; k++) {
        vlm_ids ids = {0};
        vlm_strbuf raw = {0}, lossy = {0}, want = {0};
        CHECK_OK(vlm_tok_encode(g_tok, inputs[k], lens[k], &ids));
        raw_concat(&ids, &raw);
        CHECK_MSG(raw.len == lens[k] && !memcmp(raw.data, inputs[k], lens[k]), "bytes case %zu round trip", k);
        CHECK_OK(vlm_tok_decode(g_tok, ids.v, ids.n, 0, &lossy));
        vlm_utf8_lossy_append(&want, inputs[k], lens[k]);
        CHECK_MSG(lossy.len == want.len && !memcmp(lossy.data, want.data, want.len), "bytes case %zu decode", k);
        vlm_ids_free(&ids);
        vlm_sb_free(&raw);
        vlm_sb_free(&lossy);
        vlm_sb_free(&want);
    }
    /* an ill-formed byte is a piece of its own: "abc" 0xFF "def" = enc("abc") + [byte] + enc("def") */
    vlm_ids a = {0}, b = {0};
    CHECK_OK(vlm_tok_encode(g_tok,
                            "abc\xff"
                            "def",
                            7, &a));
    CHECK_OK(vlm_tok_encode(g_tok, "abc", 3, &b));
    CHECK_OK(vlm_ids_push(&b, g_tok->byte_id[0xFF]));
    CHECK_OK(vlm_tok_encode(g_tok, "def", 3, &b));
    CHECK(a.n == b.n && !memcmp(a.v, b.v, a.n * 4));
    vlm_ids_free(&a);
    vlm_ids_free(&b);
    /* U+FFFD per maximal ill-formed subpart (Unicode 3.9, Table 3-8 example) */
    vlm_strbuf out = {0};
    vlm_utf8_lossy_append(&out, "\x61\xF1\x80\x80\xE1\x80\xC2\x62\x80\x63\x80\xBF\x64", 13);
    const char *want = "a\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                       "b\xEF\xBF\xBD"
                       "c\xEF\xBF\xBD\xEF\xBF\xBD"
                       "d";
    CHECK(out.len == strlen(want) && !memcmp(out.data, want, out.len));
    vlm_sb_free(&out);
}

/* ---- unknown ids, random streams ---- */

static int valid_utf8(const char *s, size_t n) {
    vlm_strbuf b = {0};
    vlm_utf8_lossy_append(&b, s, n);
    int ok = b.len == n && (n == 0 || !memcmp(b.data, s, n));
    vlm_sb_free(&b);
    return ok;
}

static void test_unknown_ids(void) {
    /* 82912 + 246 is "龘" split in two tokens; unknown ids between them keep the buffer */
    int32_t ids[] = {82912, 151665, 151935, -5, 246};
    vlm_strbuf out = {0};
    CHECK_OK(vlm_tok_decode(g_tok, ids, 5, 0, &out));
    CHECK(out.len == 3 && !memcmp(out.data, "\xe9\xbe\x98", 3));
    vlm_sb_free(&out);
    vlm_detok d;
    CHECK_OK(vlm_detok_init(&d, g_tok, 0));
    const char *p;
    size_t n, total = 0;
    for (int i = 0; i < 4; i++) {
        vlm_detok_push(&d, ids[i], &p, &n);
        total += n;
    }
    CHECK(total == 0);
    vlm_detok_push(&d, ids[4], &p, &n);
    CHECK(n == 3 && !memcmp(p, "\xe9\xbe\x98", 3));
    vlm_detok_flush(&d, &p, &n);
    CHECK(n == 0);
    vlm_detok_free(&d);
}

static void test_stream_random(void) {
    uint64_t rng = 12345;
    for (int iter = 0; iter < 300; iter++) {
        int32_t ids[64];
        int n = 1 + iter % 64;
        for (int i = 0; i < n; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            uint32_t r = (uint32_t)(rng >> 33);
            /* mostly byte-level fragments (ids < 256 are single bytes), some added and unknown ids */
            ids[i] = r % 8 == 0 ? 151643 + (int32_t)(r / 8 % 300)
                : r % 3 == 0    ? (int32_t)(r / 3 % 151643)
                                : (int32_t)(r % 256);
        }
        for (int skip = 0; skip < 2; skip++) {
            vlm_strbuf one = {0}, streamed = {0};
            CHECK_OK(vlm_tok_decode(g_tok, ids, (size_t)n, skip, &one));
            vlm_detok d;
            CHECK_OK(vlm_detok_init(&d, g_tok, skip));
            const char *p;
            size_t len;
            for (int i = 0; i < n; i++) {
                vlm_detok_push(&d, ids[i], &p, &len);
                CHECK(valid_utf8(p, len));
                vlm_sb_append(&streamed, p, len);
            }
            vlm_detok_flush(&d, &p, &len);
            CHECK(valid_utf8(p, len));
            vlm_sb_append(&streamed, p, len);
            CHECK_MSG(one.len == streamed.len &&
                          !memcmp(one.data ? one.data : "", streamed.data ? streamed.data : "", one.len),
                      "random stream %d skip %d", iter, skip);
            vlm_detok_free(&d);
            vlm_sb_free(&one);
            vlm_sb_free(&streamed);
        }
    }
}

/* ---- NFC ---- */

static void test_nfc_against_utf8proc(void) {
    static const uint32_t alphabet[] = {
        'a',    'e',    'A',    ' ',    0x0301, 0x0308, 0x0323, 0x031B, 0x00E9,  0x00C5,  0x212B, 0x2126, 0x1100,
        0x1161, 0x11A8, 0xAC00, 0xAC01, 0x0B47, 0x0B3E, 0x0B57, 0x0DD9, 0x0DCF,  0x0DCA,  0xF900, 0x0958, 0x0344,
        0x0F73, 0x4E00, 0x3099, 0x304B, 0x1E0A, 0x0307, 0x05B7, 0x0591, 0x1D15E, 0x1D165, 0x0627, 0x0653};
    enum { NA = sizeof alphabet / sizeof alphabet[0] };
    uint64_t rng = 99;
    for (int iter = 0; iter < 4000; iter++) {
        char s[256];
        size_t n = 0;
        int len = 1 + iter % 12;
        for (int i = 0; i < len; i++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            n += (size_t)utf8proc_encode_char((utf8proc_int32_t)alphabet[(rng >> 33) % NA], (utf8proc_uint8_t *)s + n);
        }
        const char *out;
        size_t out_len;
        CHECK_OK(vlm_tok_nfc(g_tok, s, n, &out, &out_len));
        utf8proc_uint8_t *ref = NULL;
        utf8proc_ssize_t m =
            utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &ref, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        CHECK_MSG(m >= 0 && out_len == (size_t)m && !memcmp(out, ref, out_len), "NFC of random string %d", iter);
        free(ref);
    }
}

/* A long run of combining marks: canonical ordering must stay linear (utf8proc's own is quadratic),
 * and match utf8proc on a short run. */
static void test_nfc_long_marks(void) {
    enum { PAIRS = 200000 };
    size_t n = 1 + 4 * (size_t)PAIRS;
    char *s = malloc(n);
    s[0] = 'a';
    for (size_t i = 0; i < PAIRS; i++) memcpy(s + 1 + 4 * i, "\xcc\x81\xcc\xa3", 4); /* U+0301 (230), U+0323 (220) */
    const char *out;
    size_t out_len;
    double t0 = vlm_now();
    CHECK_OK(vlm_tok_nfc(g_tok, s, n, &out, &out_len));
    CHECK_MSG(vlm_now() - t0 < 5.0, "NFC of %zu bytes of marks took %.1f s", n, vlm_now() - t0);
    /* a + U+0323 composes to U+1EA1; then the other U+0323s, then every U+0301 */
    int ok = out_len == n && !memcmp(out, "\xe1\xba\xa1", 3);
    for (size_t i = 0; ok && i < PAIRS - 1; i++) ok = !memcmp(out + 3 + 2 * i, "\xcc\xa3", 2);
    for (size_t i = 0; ok && i < PAIRS; i++) ok = !memcmp(out + 3 + 2 * (PAIRS - 1) + 2 * i, "\xcc\x81", 2);
    CHECK(ok);
    utf8proc_uint8_t *ref = NULL;
    size_t small = 1 + 4 * 300;
    utf8proc_ssize_t m =
        utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)small, &ref, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    CHECK_OK(vlm_tok_nfc(g_tok, s, small, &out, &out_len));
    CHECK(m >= 0 && out_len == (size_t)m && !memcmp(out, ref, out_len));
    free(ref);
    vlm_ids ids = {0};
    CHECK_OK(vlm_tok_encode(g_tok, s, n, &ids));
    CHECK(ids.n > 0);
    vlm_ids_free(&ids);
    free(s);
}

/* ---- long pieces: heap BPE against the linear one ---- */

static void test_long_pieces(void) {
    char buf[3000];
    const char *units[] = {" ", "ab", "\xe4\xb8\xad", "x", "=", "\xf0\x9f\x98\x80", "\n"};
    for (int u = 0; u < 7; u++) {
        size_t ul = strlen(units[u]), n = 0;
        while (n + ul <= 2000) {
            memcpy(buf + n, units[u], ul);
            n += ul;
        }
        vlm_ids heap = {0}, lin = {0};
        g_tok->cache_off = 1;
        g_tok->bpe_linear_max = 1;
        CHECK_OK(vlm_tok_encode(g_tok, buf, n, &heap));
        g_tok->bpe_linear_max = 1 << 30;
        CHECK_OK(vlm_tok_encode(g_tok, buf, n, &lin));
        CHECK_MSG(heap.n == lin.n && !memcmp(heap.v, lin.v, heap.n * 4), "long piece of unit %d", u);
        vlm_strbuf raw = {0};
        raw_concat(&heap, &raw);
        CHECK(raw.len == n && !memcmp(raw.data, buf, n));
        vlm_sb_free(&raw);
        vlm_ids_free(&heap);
        vlm_ids_free(&lin);
    }
    g_tok->cache_off = 0;
    g_tok->bpe_linear_max = VLM_TOK_LINEAR_MAX;
    /* a 1 MB run of spaces is one piece: it must not be quadratic */
    size_t big = 1 << 20;
    char *sp = malloc(big);
    memset(sp, ' ', big);
    vlm_ids ids = {0};
    CHECK_OK(vlm_tok_encode(g_tok, sp, big, &ids));
    vlm_strbuf raw = {0};
    raw_concat(&ids, &raw);
    CHECK(raw.len == big && ids.n < big / 8);
    vlm_sb_free(&raw);
    vlm_ids_free(&ids);
    free(sp);
}

int main(void) {
    RUN(test_load);
    RUN(test_encode_cases);
    RUN(test_encode_cases_heap);
    RUN(test_whitespace_edge_cases);
    RUN(test_decode_cases);
    RUN(test_round_trip);
    RUN(test_bytes);
    RUN(test_unknown_ids);
    RUN(test_stream_random);
    RUN(test_nfc_against_utf8proc);
    RUN(test_nfc_long_marks);
    RUN(test_long_pieces);
    vlm_tok_free(g_tok);
    return test_summary();
}
