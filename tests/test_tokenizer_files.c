/* tokenizer.json variants: small byte-level BPE files written here (merge forms, ignore_merges,
 * ByteLevel's own regex), broken and unsupported files (each must fail with a clear message), and
 * broken copies of the real Qwen file. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "io/file.h"
#include "io/json.h"
#include "text/tokenizer.h"

/* ---- a small byte-level BPE file ---- */

typedef struct {
    const char *model_type;    /* "\"BPE\"" */
    const char *extra_vocab;   /* extra "form": id entries, starting with ", " */
    const char *merges;        /* the merges array text */
    const char *model_extra;   /* extra model members, starting with ", " */
    const char *normalizer;    /* JSON value */
    const char *pre_tokenizer; /* JSON value */
    const char *decoder;
    const char *added; /* added_tokens array */
    int drop_byte;     /* leave this byte's token out of the vocabulary (-1: none) */
} small_spec;

static uint32_t byte_char(unsigned b) {
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0) return 0x100 + 33 + (b - 0x7F);
    if (b == 0xAD) return 0x143;
    return b;
}

static small_spec default_spec(void) {
    small_spec s = {
        "\"BPE\"",
        ", \"ab\": 256, \"abc\": 257, \"o\\u0120\": 258, \"\\u0120w\": 259",
        "[\"a b\", \"ab c\", \"o \\u0120\", \"\\u0120 w\"]",
        "",
        "{\"type\": \"NFC\"}",
        "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": false}",
        "{\"type\": \"ByteLevel\"}",
        "[{\"id\": 300, \"content\": \"<|end|>\", \"special\": true}, {\"id\": 301, \"content\": \"<x>\", \"special\": "
        "false}]",
        -1,
    };
    return s;
}

static char *small_json(const small_spec *sp) {
    vlm_strbuf b = {0};
    vlm_sb_printf(&b,
                  "{\"version\": \"1.0\", \"added_tokens\": %s, \"normalizer\": %s, \"pre_tokenizer\": %s, "
                  "\"post_processor\": null, \"decoder\": %s,\n \"model\": {\"type\": %s, \"dropout\": null, "
                  "\"unk_token\": null%s, \"vocab\": {",
                  sp->added, sp->normalizer, sp->pre_tokenizer, sp->decoder, sp->model_type, sp->model_extra);
    int first = 1;
    for (unsigned c = 0; c < 256; c++) {
        if ((int)c == sp->drop_byte) continue;
        char u[3];
        uint32_t cp = byte_char(c);
        size_t n = 1;
        if (cp < 0x80) u[0] = (char)cp;
        else {
            u[0] = (char)(0xC0 | cp >> 6);
            u[1] = (char)(0x80 | (cp & 0x3F));
            n = 2;
        }
        if (!first) vlm_sb_append(&b, ", ", 2);
        first = 0;
        vlm_sb_json_string(&b, u, n);
        vlm_sb_printf(&b, ": %u", c);
    }
    vlm_sb_printf(&b, "%s}, \"merges\": %s}}\n", sp->extra_vocab, sp->merges);
    return b.data;
}

static vlm_status load_spec(const small_spec *sp, vlm_tokenizer **t) {
    char *j = small_json(sp);
    vlm_status s = vlm_tok_load_buffer(j, strlen(j), "small.json", t);
    free(j);
    return s;
}

static int encode_is(vlm_tokenizer *t, const char *text, const int32_t *want, size_t n) {
    vlm_ids ids = {0};
    int ok = vlm_tok_encode(t, text, strlen(text), &ids) == VLM_OK && ids.n == n && !memcmp(ids.v, want, n * 4);
    if (!ok) {
        fprintf(stderr, "    encode \"%s\":", text);
        for (size_t i = 0; i < ids.n; i++) fprintf(stderr, " %d", ids.v[i]);
        fprintf(stderr, "\n");
    }
    vlm_ids_free(&ids);
    return ok;
}

static void test_small(void) {
    small_spec sp = default_spec();
    vlm_tokenizer *t = NULL;
    CHECK_OK(load_spec(&sp, &t));
    if (!t) return;
    CHECK(vlm_tok_n_ids(t) == 302 && vlm_tok_n_merges(t) == 4 && vlm_tok_n_added(t) == 2);
    CHECK(encode_is(t, "abcab", (const int32_t[]){257, 256}, 2));
    CHECK(encode_is(t, "abc<|end|>ab<x>", (const int32_t[]){257, 300, 256, 301}, 4));
    /* no regex split: "o w" merges across the space ("oĠ" ranks before "Ġw") */
    CHECK(encode_is(t, "o w", (const int32_t[]){258, 'w'}, 2));
    CHECK(vlm_tok_specials_of(t)->im_end == -1);
    vlm_strbuf out = {0};
    CHECK_OK(vlm_tok_decode(t, (const int32_t[]){257, 300, 301, 999}, 4, 1, &out));
    CHECK(out.len == 6 && !memcmp(out.data, "abc<x>", 6));
    vlm_sb_free(&out);
    vlm_tok_free(t);

    /* the same merges as pairs */
    sp.merges = "[[\"a\", \"b\"], [\"ab\", \"c\"], [\"o\", \"\\u0120\"], [\"\\u0120\", \"w\"]]";
    CHECK_OK(load_spec(&sp, &t));
    if (t) CHECK(encode_is(t, "abcab", (const int32_t[]){257, 256}, 2));
    vlm_tok_free(t);

    /* ByteLevel's own GPT-2 split keeps " w" apart from "o" */
    sp = default_spec();
    sp.pre_tokenizer = "{\"type\": \"ByteLevel\", \"add_prefix_space\": false}";
    CHECK_OK(load_spec(&sp, &t));
    if (t) CHECK(encode_is(t, "o w", (const int32_t[]){'o', 259}, 2));
    vlm_tok_free(t);

    /* ignore_merges: a piece that is a vocabulary entry is taken whole */
    sp = default_spec();
    sp.merges = "[\"a b\"]";
    CHECK_OK(load_spec(&sp, &t));
    if (t) CHECK(encode_is(t, "abc", (const int32_t[]){256, 'c'}, 2));
    vlm_tok_free(t);
    sp.model_extra = ", \"ignore_merges\": true";
    CHECK_OK(load_spec(&sp, &t));
    if (t) CHECK(encode_is(t, "abc", (const int32_t[]){257}, 1));
    vlm_tok_free(t);

    /* no normalizer: NFD text stays NFD */
    sp = default_spec();
    sp.normalizer = "null";
    CHECK_OK(load_spec(&sp, &t));
    if (t) CHECK(encode_is(t, "e\xcc\x81", (const int32_t[]){'e', 0xCC, 0x81}, 3));
    vlm_tok_free(t);
    sp = default_spec();
    CHECK_OK(load_spec(&sp, &t));
    if (t) CHECK(encode_is(t, "e\xcc\x81", (const int32_t[]){0xC3, 0xA9}, 2));
    vlm_tok_free(t);
}

/* ---- broken and unsupported files ---- */

typedef struct {
    const char *what;
    small_spec spec;
    vlm_status code;
    const char *needle;
} bad_case;

static void test_bad_small(void) {
    bad_case cases[16];
    int n = 0;
    small_spec d = default_spec();
#define BAD(field, value, status, text)                                                                                \
    do {                                                                                                               \
        cases[n] = (bad_case){#field, d, status, text};                                                                \
        cases[n].spec.field = value;                                                                                   \
        n++;                                                                                                           \
    } while (0)
    BAD(model_type, "\"Foo\"", VLM_ERR_FORMAT, "unknown tokenizer model type \"Foo\"");
    BAD(model_type, "\"Unigram\"", VLM_ERR_UNSUPPORTED, "\"Unigram\" is not supported");
    BAD(model_type, "\"WordPiece\"", VLM_ERR_UNSUPPORTED, "\"WordPiece\" is not supported");
    BAD(merges, "[\"a zq\"]", VLM_ERR_FORMAT, "merge 0 (\"a zq\"): \"zq\" is not in the vocabulary");
    BAD(merges, "[\"a b\", \"b c\"]", VLM_ERR_FORMAT,
        "merge 1 (\"b c\"): the merged token \"bc\" is not in the vocabulary");
    BAD(merges, "[\"ab\"]", VLM_ERR_FORMAT, "not of the form \"left right\"");
    BAD(merges, "[[\"a\"]]", VLM_ERR_FORMAT, "expected ','");
    BAD(drop_byte, 'q', VLM_ERR_FORMAT, "no token \"q\" for byte 0x71");
    BAD(extra_vocab, ", \"ab\": 97, \"abc\": 257, \"o\\u0120\": 258, \"\\u0120w\": 259", VLM_ERR_FORMAT,
        "gives id 97 to both");
    BAD(extra_vocab, ", \"\\ud800\": 400", VLM_ERR_FORMAT, "lone high surrogate");
    BAD(normalizer, "{\"type\": \"NFKC\"}", VLM_ERR_UNSUPPORTED, "normalizer \"NFKC\"");
    BAD(pre_tokenizer, "{\"type\": \"Whitespace\"}", VLM_ERR_UNSUPPORTED, "pre-tokenizer \"Whitespace\"");
    BAD(pre_tokenizer,
        "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, "
        "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}",
        VLM_ERR_FORMAT, "regex does not compile");
    BAD(pre_tokenizer,
        "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s\"}, "
        "\"behavior\": \"Removed\", \"invert\": false}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}",
        VLM_ERR_UNSUPPORTED, "behavior \"Removed\"");
    BAD(decoder, "{\"type\": \"WordPiece\"}", VLM_ERR_UNSUPPORTED, "decoder \"WordPiece\"");
    BAD(added, "[{\"id\": 300, \"content\": \"<e>\", \"lstrip\": true}]", VLM_ERR_UNSUPPORTED, "lstrip");
#undef BAD
    for (int i = 0; i < n; i++) {
        vlm_tokenizer *t = NULL;
        fprintf(stderr, "  bad file: %s\n", cases[i].what);
        CHECK_ERR(load_spec(&cases[i].spec, &t), cases[i].code, cases[i].needle);
        CHECK(t == NULL);
        vlm_tok_free(t);
    }
    small_spec s = default_spec();
    s.model_extra = ", \"byte_fallback\": true";
    vlm_tokenizer *t = NULL;
    CHECK_ERR(load_spec(&s, &t), VLM_ERR_UNSUPPORTED, "byte_fallback");
    s = default_spec();
    s.pre_tokenizer =
        "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", \"pattern\": {\"Regex\": \"[\\\\S]\"}, "
        "\"behavior\": \"Isolated\"}, {\"type\": \"ByteLevel\", \"use_regex\": false}]}";
    CHECK_ERR(load_spec(&s, &t), VLM_ERR_UNSUPPORTED, "\\S inside a character class");

    /* every truncation of a valid file fails with a message, never a crash */
    s = default_spec();
    char *j = small_json(&s);
    size_t len = strlen(j);
    int failures = 0;
    for (size_t cut = 0; cut + 1 < len; cut += 7) {
        vlm_status st = vlm_tok_load_buffer(j, cut, "cut.json", &t);
        if (st == VLM_OK || !vlm_last_error()[0]) failures++;
        vlm_tok_free(t);
        t = NULL;
    }
    CHECK(failures == 0);
    CHECK_ERR(vlm_tok_load_buffer(j, len / 2, "cut.json", &t), VLM_ERR_FORMAT, "cut.json: ");
    CHECK_ERR(vlm_tok_load_buffer(j, len / 2, "cut.json", &t), VLM_ERR_FORMAT, "truncated");
    free(j);
    CHECK_ERR(
        vlm_tok_load_buffer("{\"model\": {\"type\": \"BPE\", \"vocab\": {}, \"merges\": []}} x", 55, "trail.json", &t),
        VLM_ERR_FORMAT, "text after the JSON value");
    CHECK_ERR(vlm_tok_load_buffer("{\"added_tokens\": []}", 20, "nomodel.json", &t), VLM_ERR_FORMAT, "no \"model\"");
    const char *twice = "{\"model\": {\"type\": \"BPE\"}, \"model\": {}}";
    CHECK_ERR(vlm_tok_load_buffer(twice, strlen(twice), "twice.json", &t), VLM_ERR_FORMAT, "a second \"model\"");
}

/* ---- broken copies of the real file ---- */

static char *g_real;
static size_t g_real_len;

/* Writes the real file with the first `from` replaced by `to` and loads it. */
static vlm_status load_edited(const char *name, const char *from, const char *to) {
    char *at = memmem(g_real, g_real_len, from, strlen(from));
    CHECK_MSG(at != NULL, "\"%s\" not found in the fixture", from);
    if (!at) return VLM_ERR_INVALID;
    size_t pre = (size_t)(at - g_real), nf = strlen(from), nt = strlen(to);
    vlm_strbuf b = {0};
    vlm_sb_append(&b, g_real, pre);
    vlm_sb_append(&b, to, nt);
    vlm_sb_append(&b, at + nf, g_real_len - pre - nf);
    const char *path = test_tmp(name);
    CHECK_OK(vlm_write_file(path, b.data, b.len));
    vlm_sb_free(&b);
    vlm_tokenizer *t = NULL;
    vlm_status s = vlm_tok_load(path, &t);
    vlm_tok_free(t);
    return s;
}

static void test_bad_real(void) {
    CHECK_OK(vlm_read_file(test_fixture("tokenizer/qwen2_5_vl/tokenizer.json"), 0, &g_real, &g_real_len));
    if (!g_real) return;
    vlm_tokenizer *t = NULL;
    CHECK_ERR(vlm_tok_load(test_tmp("missing/tokenizer.json"), &t), VLM_ERR_IO, "missing/tokenizer.json");
    CHECK_ERR(vlm_tok_load_dir(test_tmpdir(), &t), VLM_ERR_NOT_FOUND, "no tokenizer.json");
    CHECK_OK(vlm_write_file(test_tmp("truncated.json"), g_real, g_real_len * 2 / 3));
    CHECK_ERR(vlm_tok_load(test_tmp("truncated.json"), &t), VLM_ERR_FORMAT, "truncated.json: ");
    CHECK_ERR(vlm_tok_load(test_tmp("truncated.json"), &t), VLM_ERR_FORMAT, "truncated");
    CHECK_OK(vlm_write_file(test_tmp("cut_vocab.json"), g_real, 4000));
    CHECK_ERR(vlm_tok_load(test_tmp("cut_vocab.json"), &t), VLM_ERR_FORMAT, "truncated");
    CHECK_ERR(load_edited("type.json", "\"type\": \"BPE\"", "\"type\": \"BPEX\""), VLM_ERR_FORMAT,
              "unknown tokenizer model type \"BPEX\"");
    CHECK_ERR(load_edited("unigram2.json", "\"type\": \"BPE\"", "\"type\": \"Unigram\""), VLM_ERR_UNSUPPORTED,
              "\"Unigram\" is not supported");
    CHECK_ERR(load_edited("merge.json", "\"\xc4\xa0 \xc4\xa0\"", "\"\xc4\xa0 q\xe2\x82\xac\xe2\x82\xac\""),
              VLM_ERR_FORMAT, "merge 0");
    CHECK_ERR(load_edited("merge2.json", "\"\xc4\xa0 \xc4\xa0\"", "\"\xc4\xa0 q\xe2\x82\xac\xe2\x82\xac\""),
              VLM_ERR_FORMAT, "is not in the vocabulary");
    CHECK_ERR(load_edited("vocab.json", "\"!\": 0", "\"!\": -3"), VLM_ERR_FORMAT, "the id of \"!\" must be an integer");
    CHECK_ERR(load_edited("notjson.json", "\"version\"", "version"), VLM_ERR_FORMAT, "expected a string");
    free(g_real);
}

int main(void) {
    RUN(test_small);
    RUN(test_bad_small);
    RUN(test_bad_real);
    return test_summary();
}
