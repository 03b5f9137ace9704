/* Fuzz target: the tokenizer. The first byte picks what the rest is:
 *   0: text for vlm_tok_encode (the Qwen tokenizer, loaded once): ids in range, the same ids again
 *      (piece cache), the tokens' bytes give ASCII text back exactly, decode succeeds;
 *   1: token ids (3 bytes each, any value up to past the embedding size) for the streaming
 *      detokenizer: every chunk valid UTF-8, all chunks + flush = one-shot decode, both skip modes;
 *   2: a tokenizer.json text: loads, or fails with a message. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer.h"

static vlm_tokenizer *g_tok;

static void check(int cond) {
    if (!cond) __builtin_trap();
}

static int valid_utf8(const char *s, size_t n) {
    vlm_strbuf b = {0};
    vlm_utf8_lossy_append(&b, s, n);
    int ok = b.len == n && (n == 0 || !memcmp(b.data, s, n));
    vlm_sb_free(&b);
    return ok;
}

static void fuzz_encode(const uint8_t *data, size_t size) {
    vlm_ids a = {0}, b = {0};
    check(vlm_tok_encode(g_tok, (const char *)data, size, &a) == VLM_OK);
    check(vlm_tok_encode(g_tok, (const char *)data, size, &b) == VLM_OK);
    check(a.n == b.n && (a.n == 0 || !memcmp(a.v, b.v, a.n * sizeof *a.v)));
    int ascii = 1;
    for (size_t i = 0; i < size; i++) ascii &= data[i] < 0x80;
    vlm_strbuf raw = {0}, text = {0};
    for (size_t i = 0; i < a.n; i++) {
        size_t n;
        const char *p = vlm_tok_id_bytes(g_tok, a.v[i], &n);
        check(p != NULL);
        vlm_sb_append(&raw, p, n);
    }
    if (ascii) check(raw.len == size && (size == 0 || !memcmp(raw.data, data, size)));
    check(vlm_tok_decode(g_tok, a.v, a.n, 0, &text) == VLM_OK);
    check(valid_utf8(text.data ? text.data : "", text.len));
    vlm_sb_free(&raw);
    vlm_sb_free(&text);
    vlm_ids_free(&a);
    vlm_ids_free(&b);
}

static void fuzz_stream(const uint8_t *data, size_t size) {
    size_t n = size / 3;
    int32_t *ids = malloc((n ? n : 1) * sizeof *ids);
    for (size_t i = 0; i < n; i++)
        ids[i] = (int32_t)((data[3 * i] | data[3 * i + 1] << 8 | (uint32_t)data[3 * i + 2] << 16) % 152000u);
    for (int skip = 0; skip < 2; skip++) {
        vlm_strbuf one = {0}, streamed = {0};
        check(vlm_tok_decode(g_tok, ids, n, skip, &one) == VLM_OK);
        vlm_detok d;
        check(vlm_detok_init(&d, g_tok, skip) == VLM_OK);
        const char *p;
        size_t len;
        for (size_t i = 0; i < n; i++) {
            vlm_detok_push(&d, ids[i], &p, &len);
            check(valid_utf8(p, len));
            vlm_sb_append(&streamed, p, len);
        }
        vlm_detok_flush(&d, &p, &len);
        vlm_sb_append(&streamed, p, len);
        check(one.len == streamed.len && (one.len == 0 || !memcmp(one.data, streamed.data, one.len)));
        vlm_detok_free(&d);
        vlm_sb_free(&one);
        vlm_sb_free(&streamed);
    }
    free(ids);
}

static void fuzz_load(const uint8_t *data, size_t size) {
    vlm_tokenizer *t = NULL;
    if (vlm_tok_load_buffer((const char *)data, size, "fuzz.json", &t) == VLM_OK) {
        vlm_ids ids = {0};
        check(vlm_tok_encode(t, "abc <x> o w\xff", 12, &ids) == VLM_OK);
        vlm_ids_free(&ids);
        vlm_tok_free(t);
    } else {
        check(vlm_last_error()[0] != '\0');
    }
}

/* libFuzzer calls this once before the first input: loading the 7 MB tokenizer.json here keeps it
 * out of the first input's time (under ASan, on a busy machine, it passed the 20 s per-input timeout) */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (!g_tok) check(vlm_tok_load(VLM_SOURCE_DIR "/assets/tokenizer/tokenizer.json", &g_tok) == VLM_OK);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_tok) check(vlm_tok_load(VLM_SOURCE_DIR "/assets/tokenizer/tokenizer.json", &g_tok) == VLM_OK);
    if (size == 0) return 0;
    switch (data[0] % 3) {
    case 0: fuzz_encode(data + 1, size - 1); break;
    case 1: fuzz_stream(data + 1, size - 1); break;
    default: fuzz_load(data + 1, size - 1); break;
    }
    return 0;
}
