/* Loading tokenizer.json: one validating pass over the text. model.vocab and model.merges are read
 * in place as the scanner meets them (tokenizer_vocab.c; merges are kept for later when they come
 * before the vocab), the small sections are recorded as spans and handed to cJSON. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "text/tokenizer_internal.h"
#include "text/tokenizer_json.h"

typedef struct {
    const char *p;
    size_t n;
} span;

typedef struct {
    span added, normalizer, pre_tokenizer, decoder, model, vocab, merges;
    cJSON *model_opts; /* the model's small members */
} sections;

/* The allocator recorded what it could not allocate; this adds the file. */
static vlm_status nomem(const vlm_tokenizer *t) { return vlm_err_ctx(VLM_ERR_NOMEM, "%s", t->path); }

/* ---- the top-level scan ---- */

static vlm_status record(vlm_tokjs *js, span *sp) {
    vlm_tokjs_ws(js);
    const char *start = js->p;
    VLM_TRY(vlm_tokjs_skip(js));
    sp->p = start;
    sp->n = (size_t)(js->p - start);
    return VLM_OK;
}

static vlm_status scan_model(vlm_tokenizer *t, vlm_tokjs *js, sections *sec, vlm_tokjs_buf *key, vlm_tok_build *bu) {
    if (vlm_tokjs_peek(js) != '{') return vlm_tokjs_fail(js, "\"model\" must be an object");
    js->p++;
    sec->model_opts = cJSON_CreateObject();
    if (!sec->model_opts) return vlm_err(VLM_ERR_NOMEM, "%s: out of memory for the model's options", js->what);
    int64_t i = 0;
    int more;
    for (;;) {
        VLM_TRY(vlm_tokjs_next(js, '}', &i, &more));
        if (!more) return VLM_OK;
        VLM_TRY(vlm_tokjs_string(js, key));
        VLM_TRY(vlm_tokjs_expect(js, ':'));
        int is_vocab = !strcmp(key->data, "vocab"), is_merges = !strcmp(key->data, "merges");
        /* read in place when possible; else (another model type, merges first) later */
        if (is_vocab && !bu->have_vocab && vlm_tokjs_peek(js) == '{') {
            sec->vocab.p = js->p;
            VLM_TRY(vlm_tok_read_vocab(t, js, bu));
            continue;
        }
        if (is_merges && bu->have_vocab && !bu->have_merges && vlm_tokjs_peek(js) == '[') {
            sec->merges.p = js->p;
            VLM_TRY(vlm_tok_read_merges(t, js, bu));
            continue;
        }
        span v;
        VLM_TRY(record(js, &v));
        if (is_vocab) sec->vocab = v;
        else if (is_merges) sec->merges = v;
        else {
            cJSON *item;
            VLM_TRY(vlm_json_parse(v.p, v.n, js->what, &item));
            cJSON_AddItemToObject(sec->model_opts, key->data, item);
        }
    }
}

static vlm_status scan(vlm_tokenizer *t, vlm_tokjs *js, sections *sec, vlm_tok_build *bu) {
    vlm_tokjs_buf key = {0};
    vlm_status s = vlm_tokjs_expect(js, '{');
    int64_t i = 0;
    int more = 1;
    while (s == VLM_OK) {
        s = vlm_tokjs_next(js, '}', &i, &more);
        if (s != VLM_OK || !more) break;
        s = vlm_tokjs_string(js, &key);
        if (s == VLM_OK) s = vlm_tokjs_expect(js, ':');
        if (s != VLM_OK) break;
        if (!strcmp(key.data, "model")) {
            if (sec->model.p) {
                s = vlm_tokjs_fail(js, "a second \"model\"");
                break;
            }
            vlm_tokjs_ws(js);
            sec->model.p = js->p;
            s = scan_model(t, js, sec, &key, bu);
            sec->model.n = (size_t)(js->p - sec->model.p);
            continue;
        }
        span v;
        s = record(js, &v);
        if (s != VLM_OK) break;
        if (!strcmp(key.data, "added_tokens")) sec->added = v;
        else if (!strcmp(key.data, "normalizer")) sec->normalizer = v;
        else if (!strcmp(key.data, "pre_tokenizer")) sec->pre_tokenizer = v;
        else if (!strcmp(key.data, "decoder")) sec->decoder = v;
    }
    if (s == VLM_OK && vlm_tokjs_peek(js) != 0) s = vlm_tokjs_fail(js, "text after the JSON value");
    vlm_tokjs_buf_free(&key);
    return s;
}

/* ---- model ---- */

static vlm_status check_model(vlm_tokenizer *t, const sections *sec) {
    if (!sec->model.p) return vlm_err(VLM_ERR_FORMAT, "%s: no \"model\" section", t->path);
    const cJSON *o = sec->model_opts;
    const char *type = NULL;
    VLM_TRY(vlm_json_str(o, "type", t->path, &type));
    if (type && strcmp(type, "BPE") != 0) {
        if (!strcmp(type, "Unigram") || !strcmp(type, "WordPiece") || !strcmp(type, "WordLevel"))
            return vlm_err(VLM_ERR_UNSUPPORTED,
                           "%s: tokenizer model type \"%s\" is not supported (only byte-level BPE)", t->path, type);
        return vlm_err(VLM_ERR_FORMAT, "%s: unknown tokenizer model type \"%s\"", t->path, type);
    }
    if (!sec->vocab.p || !sec->merges.p)
        return vlm_err(VLM_ERR_FORMAT, "%s: model has no %s (a BPE model needs vocab and merges)", t->path,
                       sec->vocab.p ? "merges" : "vocab");
    int byte_fallback = 0, fuse = 0;
    double dropout = 0;
    const char *prefix = NULL, *suffix = NULL;
    VLM_TRY(vlm_json_bool(o, "byte_fallback", t->path, &byte_fallback));
    VLM_TRY(vlm_json_bool(o, "fuse_unk", t->path, &fuse));
    VLM_TRY(vlm_json_bool(o, "ignore_merges", t->path, &t->ignore_merges));
    VLM_TRY(vlm_json_num(o, "dropout", t->path, &dropout));
    VLM_TRY(vlm_json_str(o, "continuing_subword_prefix", t->path, &prefix));
    VLM_TRY(vlm_json_str(o, "end_of_word_suffix", t->path, &suffix));
    if (byte_fallback) return vlm_err(VLM_ERR_UNSUPPORTED, "%s: BPE with byte_fallback is not supported", t->path);
    if (dropout != 0) return vlm_err(VLM_ERR_UNSUPPORTED, "%s: BPE dropout %g is not supported", t->path, dropout);
    if ((prefix && *prefix) || (suffix && *suffix))
        return vlm_err(VLM_ERR_UNSUPPORTED, "%s: BPE continuing_subword_prefix / end_of_word_suffix are not supported",
                       t->path);
    return VLM_OK;
}

/* vocab / merges that could not be read during the scan */
static vlm_status read_deferred(vlm_tokenizer *t, const sections *sec, vlm_tok_build *bu) {
    vlm_tokjs js;
    if (!bu->have_vocab) {
        vlm_tokjs_init(&js, sec->vocab.p, sec->vocab.n, t->path);
        VLM_TRY(vlm_tok_read_vocab(t, &js, bu));
    }
    if (!bu->have_merges) {
        vlm_tokjs_init(&js, sec->merges.p, sec->merges.n, t->path);
        VLM_TRY(vlm_tok_read_merges(t, &js, bu));
    }
    return VLM_OK;
}

/* ---- added tokens ---- */

static int added_cmp(const void *a, const void *b) {
    const vlm_tok_added *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static vlm_status read_added(vlm_tokenizer *t, const span *sp, uint8_t **special_of) {
    if (!sp->p) return VLM_OK;
    cJSON *arr;
    VLM_TRY(vlm_json_parse(sp->p, sp->n, t->path, &arr));
    vlm_status s = VLM_OK;
    if (cJSON_IsNull(arr)) goto done;
    if (!cJSON_IsArray(arr)) {
        s = vlm_err(VLM_ERR_FORMAT, "%s: added_tokens must be an array", t->path);
        goto done;
    }
    int n = cJSON_GetArraySize(arr);
    t->added = vlm_calloc((size_t)n + 1, sizeof *t->added, "the added tokens");
    *special_of = t->added ? vlm_calloc((size_t)n + 1, 1, "the special-token marks") : NULL;
    if (!t->added || !*special_of) {
        s = nomem(t);
        goto done;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        char what[VLM_PATH_MAX + 32];
        snprintf(what, sizeof what, "%s: added_tokens[%d]", t->path, t->n_added);
        int64_t id = -1;
        const char *content = NULL;
        int special = 0, lstrip = 0, rstrip = 0, single = 0;
        if (!cJSON_IsObject(e)) s = vlm_err(VLM_ERR_FORMAT, "%s must be an object", what);
        if (s == VLM_OK) s = vlm_json_int(e, "id", what, &id);
        if (s == VLM_OK) s = vlm_json_str(e, "content", what, &content);
        if (s == VLM_OK) s = vlm_json_bool(e, "special", what, &special);
        if (s == VLM_OK) s = vlm_json_bool(e, "lstrip", what, &lstrip);
        if (s == VLM_OK) s = vlm_json_bool(e, "rstrip", what, &rstrip);
        if (s == VLM_OK) s = vlm_json_bool(e, "single_word", what, &single);
        if (s != VLM_OK) break;
        if (id < 0 || id >= (1 << VLM_TOK_ID_BITS) || !content || !*content) {
            s = vlm_err(VLM_ERR_FORMAT, "%s needs an \"id\" in [0, %d) and a non-empty \"content\"", what,
                        1 << VLM_TOK_ID_BITS);
            break;
        }
        if (lstrip || rstrip || single) {
            s = vlm_err(VLM_ERR_UNSUPPORTED, "%s (\"%.64s\"): lstrip / rstrip / single_word are not supported", what,
                        content);
            break;
        }
        vlm_tok_added *a = &t->added[t->n_added];
        uint32_t off;
        size_t len = strlen(content); /* JSON \u0000 inside an added token is not supported: cut there */
        s = vlm_tok_forms_add(t, content, len, &off);
        if (s != VLM_OK) break;
        a->id = (int32_t)id;
        a->len = (uint32_t)len;
        a->content = (const char *)(uintptr_t)off; /* an offset until the arena stops moving */
        (*special_of)[t->n_added] = (uint8_t)special;
        t->n_added++;
    }
done:
    cJSON_Delete(arr);
    return s;
}

static void finish_added(vlm_tokenizer *t, const uint8_t *special_of) {
    for (int k = 0; k < t->n_added; k++) {
        vlm_tok_added *a = &t->added[k];
        if (special_of && special_of[k]) t->flags[a->id] |= VLM_TOK_SPECIAL;
    }
    if (t->n_added) qsort(t->added, (size_t)t->n_added, sizeof *t->added, added_cmp);
    for (int k = 0; k < t->n_added; k++) t->added_first[(unsigned char)t->added[k].content[0]] = 1;
}

/* ---- load ---- */

static vlm_status parse_small(vlm_tokenizer *t, const span *sp, cJSON **out) {
    *out = NULL;
    if (!sp->p) return VLM_OK;
    return vlm_json_parse(sp->p, sp->n, t->path, out);
}

static vlm_status load_text(vlm_tokenizer *t, const char *text, size_t len) {
    sections sec = {0};
    vlm_tok_build bu = {0};
    uint8_t *special_of = NULL;
    cJSON *norm = NULL, *pre = NULL, *dec = NULL;
    vlm_tokjs js;
    vlm_tokjs_init(&js, text, len, t->path);
    vlm_status s = scan(t, &js, &sec, &bu);
    if (s == VLM_OK) s = check_model(t, &sec);
    if (s == VLM_OK) s = read_deferred(t, &sec, &bu);
    if (s == VLM_OK) s = parse_small(t, &sec.normalizer, &norm);
    if (s == VLM_OK) s = parse_small(t, &sec.pre_tokenizer, &pre);
    if (s == VLM_OK) s = parse_small(t, &sec.decoder, &dec);
    if (s == VLM_OK) s = vlm_tok_read_pipeline(t, norm, pre, dec);
    if (s == VLM_OK) s = read_added(t, &sec.added, &special_of);
    if (s == VLM_OK) { /* the arena no longer moves: offsets become pointers */
        for (int k = 0; k < t->n_added; k++) t->added[k].content = t->forms + (uintptr_t)t->added[k].content;
        s = vlm_tok_build_tables(t, &bu);
    }
    if (s == VLM_OK) finish_added(t, special_of);
    cJSON_Delete(sec.model_opts);
    cJSON_Delete(norm);
    cJSON_Delete(pre);
    cJSON_Delete(dec);
    free(bu.v);
    free(bu.m);
    free(special_of);
    return s;
}

static void lookup_specials(vlm_tokenizer *t) {
    vlm_tok_specials *sp = &t->sp;
    sp->endoftext = vlm_tok_token_id(t, "<|endoftext|>");
    sp->im_start = vlm_tok_token_id(t, "<|im_start|>");
    sp->im_end = vlm_tok_token_id(t, "<|im_end|>");
    sp->vision_start = vlm_tok_token_id(t, "<|vision_start|>");
    sp->vision_end = vlm_tok_token_id(t, "<|vision_end|>");
    sp->image_pad = vlm_tok_token_id(t, "<|image_pad|>");
    sp->video_pad = vlm_tok_token_id(t, "<|video_pad|>");
}

vlm_status vlm_tok_load_buffer(const char *text, size_t len, const char *name, vlm_tokenizer **out) {
    *out = NULL;
    vlm_tokenizer *t = vlm_calloc(1, sizeof *t, "a tokenizer");
    if (!t) return vlm_err_ctx(VLM_ERR_NOMEM, "%s", name);
    snprintf(t->path, sizeof t->path, "%s", name);
    t->bpe_linear_max = VLM_TOK_LINEAR_MAX;
    vlm_status s = load_text(t, text, len);
    if (s == VLM_OK) {
        t->cache = vlm_calloc(VLM_TOK_CACHE_SLOTS, sizeof *t->cache, "the tokenizer's piece cache");
        t->cache_arena = t->cache ? vlm_alloc(VLM_TOK_CACHE_ARENA, "the tokenizer's piece cache") : NULL;
        if (!t->cache || !t->cache_arena) s = nomem(t);
    }
    if (s != VLM_OK) {
        vlm_tok_free(t);
        return s;
    }
    lookup_specials(t);
    VLM_LOG_D("tokenizer %s: %d ids, %d merges, %d added tokens", name, t->n_ids, t->n_merges, t->n_added);
    *out = t;
    return VLM_OK;
}

vlm_status vlm_tok_load(const char *path, vlm_tokenizer **out) {
    *out = NULL;
    char *text;
    size_t len;
    VLM_TRY(vlm_read_file(path, (size_t)1 << 30, &text, &len));
    vlm_status s = vlm_tok_load_buffer(text, len, path, out);
    free(text);
    return s;
}

vlm_status vlm_tok_load_dir(const char *dir, vlm_tokenizer **out) {
    char path[VLM_PATH_MAX];
    *out = NULL;
    VLM_TRY(vlm_path_join(path, sizeof path, dir, "tokenizer.json"));
    if (!vlm_path_exists(path)) /* one that is not a regular file is refused by vlm_tok_load, by name */
        return vlm_err(VLM_ERR_NOT_FOUND,
                       "%s: no tokenizer.json in this directory (only tokenizer.json files are read)", dir);
    return vlm_tok_load(path, out);
}

void vlm_tok_free(vlm_tokenizer *t) {
    if (!t) return;
    for (int i = 0; i < t->n_split; i++) vlm_tok_regex_free(&t->split[i]);
    free(t->flags);
    free(t->forms);
    free(t->raw_off);
    free(t->raw_len);
    free(t->raw);
    free(t->vocab.slot);
    free(t->merge_tab);
    free(t->merge_result);
    free(t->byte_pair_rank);
    free(t->added);
    free(t->cache);
    free(t->cache_arena);
    free(t->bpe.id);
    free(t->bpe.prev);
    free(t->bpe.next);
    free(t->bpe.rank);
    free(t->bpe.heap);
    free(t->norm);
    free(t->nfc_u32);
    free(t->nfc_tmp);
    free(t->piece_form);
    free(t);
}

/* ---- lookups ---- */

int32_t vlm_tok_n_ids(const vlm_tokenizer *t) { return t->n_ids; }
int vlm_tok_n_merges(const vlm_tokenizer *t) { return t->n_merges; }
int vlm_tok_n_added(const vlm_tokenizer *t) { return t->n_added; }
const vlm_tok_specials *vlm_tok_specials_of(const vlm_tokenizer *t) { return &t->sp; }

int32_t vlm_tok_token_id(const vlm_tokenizer *t, const char *token) {
    size_t n = strlen(token);
    for (int k = 0; k < t->n_added; k++)
        if (t->added[k].len == n && !memcmp(t->added[k].content, token, n)) return t->added[k].id;
    return vlm_tok_map_get(t, &t->vocab, token, n);
}

vlm_status vlm_tok_find(const vlm_tokenizer *t, const char *token, int32_t *id) {
    *id = vlm_tok_token_id(t, token);
    if (*id < 0) return vlm_err(VLM_ERR_NOT_FOUND, "%s: no token \"%s\"", t->path, token);
    return VLM_OK;
}

const char *vlm_tok_id_bytes(const vlm_tokenizer *t, int32_t id, size_t *len) {
    if (id < 0 || id >= t->n_ids || !t->flags[id]) {
        *len = 0;
        return NULL;
    }
    *len = t->raw_len[id];
    return t->raw + t->raw_off[id];
}

int vlm_tok_is_special(const vlm_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_ids && (t->flags[id] & VLM_TOK_SPECIAL);
}

int vlm_tok_is_added(const vlm_tokenizer *t, int32_t id) {
    return id >= 0 && id < t->n_ids && (t->flags[id] & VLM_TOK_ADDED);
}
