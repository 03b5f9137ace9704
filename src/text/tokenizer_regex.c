/* The normalizer / pre-tokenizer / decoder sections of tokenizer.json, and the Split regexes:
 * taken from the file, \s rewritten to Unicode White_Space, compiled by PCRE2 with JIT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "text/tokenizer_internal.h"

/* Unicode White_Space (PropList.txt), the `\s` of Oniguruma (Hugging Face `tokenizers`) and of
 * Python's `regex`. PCRE2's UCP `\s` is \p{Zs} + \h + \v, which adds U+180E. */
static const char k_ws_members[] = "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
                                   "\\x{202F}\\x{205F}\\x{3000}";

/* The split that ByteLevel(use_regex=true) applies: GPT-2's pattern. */
static const char k_gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

typedef struct {
    char *p;
    size_t n, cap;
} obuf;

static int oput(obuf *o, const char *s, size_t n) {
    if (o->n + n + 1 > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        while (cap < o->n + n + 1) cap *= 2;
        char *q = vlm_realloc(o->p, cap, "the rewritten pre-tokenizer regex");
        if (!q) return 0;
        o->p = q;
        o->cap = cap;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
    o->p[o->n] = '\0';
    return 1;
}

vlm_status vlm_tok_regex_rewrite(const char *pat, size_t n, char **out, size_t *out_len) {
    obuf o = {0};
    int in_class = 0, ok = 1;
    size_t i = 0;
    *out = NULL;
    while (i < n && ok) {
        char c = pat[i];
        if (c == '\\' && i + 1 < n) {
            char d = pat[i + 1];
            if (d == 'Q') { /* a quoted run \Q...\E is copied as is */
                const char *e = NULL;
                for (size_t k = i + 2; k + 1 < n; k++)
                    if (pat[k] == '\\' && pat[k + 1] == 'E') {
                        e = pat + k + 2;
                        break;
                    }
                size_t len = e ? (size_t)(e - (pat + i)) : n - i;
                ok = oput(&o, pat + i, len);
                i += len;
                continue;
            }
            if (d == 's') {
                ok = in_class ? oput(&o, k_ws_members, sizeof k_ws_members - 1)
                              : oput(&o, "[", 1) && oput(&o, k_ws_members, sizeof k_ws_members - 1) && oput(&o, "]", 1);
            } else if (d == 'S') {
                if (in_class) {
                    free(o.p);
                    return vlm_err(VLM_ERR_UNSUPPORTED,
                                   "pre-tokenizer regex: \\S inside a character class is not supported");
                }
                ok = oput(&o, "[^", 2) && oput(&o, k_ws_members, sizeof k_ws_members - 1) && oput(&o, "]", 1);
            } else {
                ok = oput(&o, pat + i, 2);
            }
            i += 2;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = 1;
            size_t k = i + 1;
            if (k < n && pat[k] == '^') k++;
            if (k < n && pat[k] == ']') k++; /* a ']' first in a class is a literal */
            ok = oput(&o, pat + i, k - i);
            i = k;
            continue;
        }
        if (c == '[' && in_class && i + 1 < n && pat[i + 1] == ':') { /* [:alpha:] */
            const char *e = NULL;
            for (size_t k = i + 2; k + 1 < n; k++)
                if (pat[k] == ':' && pat[k + 1] == ']') {
                    e = pat + k + 2;
                    break;
                }
            size_t len = e ? (size_t)(e - (pat + i)) : 1;
            ok = oput(&o, pat + i, len);
            i += len;
            continue;
        }
        if (c == ']' && in_class) in_class = 0;
        ok = oput(&o, &c, 1);
        i++;
    }
    if (!ok || (!o.p && !oput(&o, "", 0))) {
        free(o.p);
        return vlm_err_ctx(VLM_ERR_NOMEM, "pre-tokenizer regex");
    }
    *out = o.p;
    *out_len = o.n;
    return VLM_OK;
}

vlm_status vlm_tok_regex_compile(vlm_tok_regex *r, const char *pat, size_t n, const char *what) {
    memset(r, 0, sizeof *r);
    char *rw;
    size_t rn;
    VLM_TRY(vlm_tok_regex_rewrite(pat, n, &rw, &rn));
    int code;
    PCRE2_SIZE off;
    r->code = pcre2_compile((PCRE2_SPTR)rw, rn, PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &code, &off, NULL);
    free(rw);
    if (!r->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(code, msg, sizeof msg);
        return vlm_err(VLM_ERR_FORMAT,
                       "%s: the pre-tokenizer regex does not compile (%s, near offset %zu of the "
                       "rewritten pattern): %.200s",
                       what, (const char *)msg, (size_t)off, pat);
    }
    r->jit = pcre2_jit_compile(r->code, PCRE2_JIT_COMPLETE) == 0;
    if (!r->jit) VLM_LOG_D("%s: PCRE2 JIT unavailable, the regex runs interpreted", what);
    r->md = pcre2_match_data_create_from_pattern(r->code, NULL);
    if (!r->md) {
        vlm_tok_regex_free(r);
        return vlm_err(VLM_ERR_NOMEM, "%s: out of memory for the regex's match data", what);
    }
    return VLM_OK;
}

void vlm_tok_regex_free(vlm_tok_regex *r) {
    pcre2_match_data_free(r->md);
    pcre2_code_free(r->code);
    memset(r, 0, sizeof *r);
}

/* ---- pipeline sections ---- */

static const char *type_of(const cJSON *o) {
    const cJSON *ty = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(ty) ? ty->valuestring : NULL;
}

static vlm_status read_normalizer(vlm_tokenizer *t, const cJSON *n) {
    if (!n || cJSON_IsNull(n)) return VLM_OK;
    const char *ty = type_of(n);
    if (!ty) return vlm_err(VLM_ERR_FORMAT, "%s: normalizer has no \"type\"", t->path);
    if (!strcmp(ty, "NFC")) {
        t->nfc = 1;
        return VLM_OK;
    }
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers"), *e;
        if (!cJSON_IsArray(list))
            return vlm_err(VLM_ERR_FORMAT, "%s: normalizer Sequence without \"normalizers\"", t->path);
        cJSON_ArrayForEach(e, list) VLM_TRY(read_normalizer(t, e));
        return VLM_OK;
    }
    return vlm_err(VLM_ERR_UNSUPPORTED, "%s: normalizer \"%s\" is not supported (only NFC)", t->path, ty);
}

static vlm_status add_split(vlm_tokenizer *t, const char *pat, size_t n) {
    if (t->n_split >= VLM_TOK_MAX_SPLITS)
        return vlm_err(VLM_ERR_UNSUPPORTED, "%s: more than %d regex splits in the pre-tokenizer", t->path,
                       VLM_TOK_MAX_SPLITS);
    VLM_TRY(vlm_tok_regex_compile(&t->split[t->n_split], pat, n, t->path));
    t->n_split++;
    return VLM_OK;
}

static vlm_status read_pre(vlm_tokenizer *t, const cJSON *p, int *byte_level) {
    const char *ty = type_of(p);
    if (!ty) return vlm_err(VLM_ERR_FORMAT, "%s: a pre-tokenizer has no \"type\"", t->path);
    if (*byte_level)
        return vlm_err(VLM_ERR_UNSUPPORTED, "%s: pre-tokenizer \"%s\" after ByteLevel is not supported", t->path, ty);
    if (!strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *e;
        if (!cJSON_IsArray(list))
            return vlm_err(VLM_ERR_FORMAT, "%s: pre-tokenizer Sequence without \"pretokenizers\"", t->path);
        cJSON_ArrayForEach(e, list) VLM_TRY(read_pre(t, e, byte_level));
        return VLM_OK;
    }
    if (!strcmp(ty, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(p, "pattern");
        const cJSON *re = pat ? cJSON_GetObjectItemCaseSensitive(pat, "Regex") : NULL;
        const char *behavior = NULL;
        int invert = 0;
        VLM_TRY(vlm_json_str(p, "behavior", t->path, &behavior));
        VLM_TRY(vlm_json_bool(p, "invert", t->path, &invert));
        if (!re || !cJSON_IsString(re))
            return vlm_err(VLM_ERR_UNSUPPORTED, "%s: Split pre-tokenizer without a \"Regex\" pattern is not supported",
                           t->path);
        if (!behavior || strcmp(behavior, "Isolated") != 0 || invert)
            return vlm_err(VLM_ERR_UNSUPPORTED,
                           "%s: Split pre-tokenizer with behavior \"%s\"%s is not supported (only "
                           "Isolated)",
                           t->path, behavior ? behavior : "(none)", invert ? ", inverted" : "");
        return add_split(t, re->valuestring, strlen(re->valuestring));
    }
    if (!strcmp(ty, "ByteLevel")) {
        int prefix = 0, use_regex = 1; /* the defaults of `tokenizers` */
        VLM_TRY(vlm_json_bool(p, "add_prefix_space", t->path, &prefix));
        VLM_TRY(vlm_json_bool(p, "use_regex", t->path, &use_regex));
        if (prefix) return vlm_err(VLM_ERR_UNSUPPORTED, "%s: ByteLevel add_prefix_space is not supported", t->path);
        if (use_regex) VLM_TRY(add_split(t, k_gpt2_pattern, sizeof k_gpt2_pattern - 1));
        *byte_level = 1;
        return VLM_OK;
    }
    return vlm_err(VLM_ERR_UNSUPPORTED, "%s: pre-tokenizer \"%s\" is not supported (only Split and ByteLevel)", t->path,
                   ty);
}

static vlm_status read_decoder(vlm_tokenizer *t, const cJSON *d) {
    if (!d || cJSON_IsNull(d))
        return vlm_err(VLM_ERR_UNSUPPORTED, "%s: no decoder (only the ByteLevel decoder is supported)", t->path);
    const char *ty = type_of(d);
    if (ty && !strcmp(ty, "ByteLevel")) return VLM_OK;
    if (ty && !strcmp(ty, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders"), *e;
        int n = 0;
        cJSON_ArrayForEach(e, list) {
            VLM_TRY(read_decoder(t, e));
            n++;
        }
        if (n) return VLM_OK;
    }
    return vlm_err(VLM_ERR_UNSUPPORTED, "%s: decoder \"%s\" is not supported (only ByteLevel)", t->path, ty ? ty : "?");
}

vlm_status vlm_tok_read_pipeline(vlm_tokenizer *t, const cJSON *normalizer, const cJSON *pre_tokenizer,
                                 const cJSON *decoder) {
    VLM_TRY(read_normalizer(t, normalizer));
    int byte_level = 0;
    if (pre_tokenizer && !cJSON_IsNull(pre_tokenizer)) VLM_TRY(read_pre(t, pre_tokenizer, &byte_level));
    if (!byte_level)
        return vlm_err(VLM_ERR_UNSUPPORTED,
                       "%s: the pre-tokenizer has no ByteLevel step (only byte-level BPE is "
                       "supported)",
                       t->path);
    return read_decoder(t, decoder);
}
