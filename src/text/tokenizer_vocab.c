/* The big sections of tokenizer.json, read in place by the scanner: model.vocab into the forms
 * arena and a string -> id map, model.merges into (left, right, merged) id triples resolved
 * through that map; then the per-id tables and the merge hash table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text/tokenizer_internal.h"

/* The allocator recorded what it could not allocate; this adds the file. */
static vlm_status nomem(const vlm_tokenizer *t) { return vlm_err_ctx(VLM_ERR_NOMEM, "%s", t->path); }

static int grow(void **p, size_t *cap, size_t need, size_t elem, const char *what) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 1024;
    while (c < need) c *= 2;
    void *q = vlm_realloc(*p, c * elem, what);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

vlm_status vlm_tok_forms_add(vlm_tokenizer *t, const char *s, size_t n, uint32_t *off) {
    if (t->forms_len + n + 1 > UINT32_MAX) return vlm_err(VLM_ERR_UNSUPPORTED, "%s: vocabulary too large", t->path);
    if (!grow((void **)&t->forms, &t->forms_cap, t->forms_len + n + 1, 1, "the vocabulary's strings")) return nomem(t);
    memcpy(t->forms + t->forms_len, s, n);
    t->forms[t->forms_len + n] = '\0';
    *off = (uint32_t)t->forms_len;
    t->forms_len += n + 1;
    return VLM_OK;
}

/* ---- string -> id map over the vocabulary forms ---- */

static int slot_is(const vlm_tokenizer *t, const vlm_tok_map_slot *e, const char *s, size_t n) {
    if (e->len != n) return 0;
    return !memcmp(n <= VLM_TOK_MAP_INLINE ? e->key.s : t->forms + e->key.off, s, n);
}

int32_t vlm_tok_map_get_h(const vlm_tokenizer *t, const vlm_tok_map *m, const char *s, size_t n, uint64_t h) {
    if (!m->slot) return -1;
    for (size_t i = (size_t)(h >> 32) & m->mask;; i = (i + 1) & m->mask) {
        const vlm_tok_map_slot *e = &m->slot[i];
        if (e->id < 0) return -1;
        if (slot_is(t, e, s, n)) return e->id;
    }
}

int32_t vlm_tok_map_get(const vlm_tokenizer *t, const vlm_tok_map *m, const char *s, size_t n) {
    return vlm_tok_map_get_h(t, m, s, n, vlm_tok_hash(s, n));
}

static void prefetch_slot(const vlm_tok_map *m, uint64_t h) {
    __builtin_prefetch(&m->slot[(size_t)(h >> 32) & m->mask]);
}

static vlm_status map_build(vlm_tokenizer *t, const vlm_tok_build *b) {
    size_t cap = 1024;
    while (cap < b->n + b->n / 2) cap *= 2;
    vlm_tok_map *m = &t->vocab;
    m->slot = vlm_alloc(cap * sizeof *m->slot, "the vocabulary's hash table");
    if (!m->slot) return nomem(t);
    for (size_t i = 0; i < cap; i++) m->slot[i].id = -1;
    m->mask = cap - 1;
    enum { AHEAD = 8 };
    uint64_t hash[AHEAD];
    for (size_t k = 0; k < b->n + AHEAD; k++) {
        if (k >= AHEAD) { /* insert entry k - AHEAD, hashed and prefetched AHEAD iterations ago */
            size_t j = k - AHEAD;
            const char *s = t->forms + b->v[j].off;
            size_t n = b->v[j].len, i = (size_t)(hash[j % AHEAD] >> 32) & m->mask;
            for (; m->slot[i].id >= 0; i = (i + 1) & m->mask)
                if (slot_is(t, &m->slot[i], s, n))
                    return vlm_err(VLM_ERR_FORMAT, "%s: model.vocab lists \"%.*s\" twice", t->path,
                                   (int)(n > 64 ? 64 : n), s);
            vlm_tok_map_slot *e = &m->slot[i];
            e->id = b->v[j].id;
            e->len = (uint32_t)n;
            if (n <= VLM_TOK_MAP_INLINE) memcpy(e->key.s, s, n);
            else e->key.off = b->v[j].off;
        }
        if (k < b->n) {
            hash[k % AHEAD] = vlm_tok_hash(t->forms + b->v[k].off, b->v[k].len);
            prefetch_slot(m, hash[k % AHEAD]);
        }
    }
    return VLM_OK;
}

/* ---- model.vocab ---- */

vlm_status vlm_tok_read_vocab(vlm_tokenizer *t, vlm_tokjs *js, vlm_tok_build *b) {
    vlm_tokjs_buf key = {0};
    vlm_status s = vlm_tokjs_peek(js) == '{' ? vlm_tokjs_expect(js, '{')
                                             : vlm_err(VLM_ERR_FORMAT, "%s: model.vocab must be an object", t->path);
    int64_t i = 0, id;
    int more = 1;
    while (s == VLM_OK) {
        s = vlm_tokjs_next(js, '}', &i, &more);
        if (s != VLM_OK || !more) break;
        s = vlm_tokjs_string(js, &key);
        if (s == VLM_OK) s = vlm_tokjs_expect(js, ':');
        if (s == VLM_OK && vlm_tokjs_int(js, 0, ((int64_t)1 << VLM_TOK_ID_BITS) - 1, &id) != VLM_OK)
            s = vlm_err(VLM_ERR_FORMAT, "%s: model.vocab: the id of \"%.64s\" must be an integer in [0, %d)", t->path,
                        key.data, 1 << VLM_TOK_ID_BITS);
        if (s == VLM_OK && !grow((void **)&b->v, &b->cap, b->n + 1, sizeof *b->v, "the vocabulary")) s = nomem(t);
        if (s == VLM_OK) s = vlm_tok_forms_add(t, key.data, key.len, &b->v[b->n].off);
        if (s != VLM_OK) break;
        b->v[b->n].id = (int32_t)id;
        b->v[b->n].len = (uint32_t)key.len;
        b->n++;
    }
    vlm_tokjs_buf_free(&key);
    if (s == VLM_OK) s = map_build(t, b);
    if (s == VLM_OK) b->have_vocab = 1;
    return s;
}

/* ---- model.merges ---- */

/* A parsed merge waiting for its lookups: PIPE merges are parsed ahead, their table slots
 * prefetched, so the random accesses overlap with parsing. */
enum { PIPE = 16 };
typedef struct {
    vlm_tokjs_buf text; /* "left right\0leftright" */
    size_t nl, nr;
    uint64_t h[3]; /* hashes of left, right, leftright */
} pending_merge;

static vlm_status text_reserve(const vlm_tokenizer *t, vlm_tokjs_buf *b, size_t need) {
    if (need + 1 <= b->cap) return VLM_OK;
    char *d = vlm_realloc(b->data, need + 64, "a merge's text");
    if (!d) return nomem(t);
    b->data = d;
    b->cap = need + 64;
    return VLM_OK;
}

/* Parses one merge at the scanner: "left right" or ["left", "right"]. */
static vlm_status parse_merge(vlm_tokenizer *t, vlm_tokjs *js, int64_t k, vlm_tokjs_buf *r, pending_merge *p) {
    vlm_tokjs_buf *b = &p->text;
    if (vlm_tokjs_peek(js) == '[') {
        js->p++;
        VLM_TRY(vlm_tokjs_string(js, b));
        VLM_TRY(vlm_tokjs_expect(js, ','));
        VLM_TRY(vlm_tokjs_string(js, r));
        VLM_TRY(vlm_tokjs_expect(js, ']'));
        p->nl = b->len;
        p->nr = r->len;
        VLM_TRY(text_reserve(t, b, b->len + r->len + 1));
        b->data[b->len] = ' ';
        memcpy(b->data + b->len + 1, r->data, r->len);
        b->len += r->len + 1;
    } else {
        if (vlm_tokjs_peek(js) != '"')
            return vlm_err(VLM_ERR_FORMAT, "%s: merge %lld must be a string \"left right\" or a pair", t->path,
                           (long long)k);
        VLM_TRY(vlm_tokjs_string(js, b));
        const char *sp = memchr(b->data, ' ', b->len);
        if (!sp || sp == b->data || sp + 1 == b->data + b->len)
            return vlm_err(VLM_ERR_FORMAT, "%s: merge %lld (\"%.64s\") is not of the form \"left right\"", t->path,
                           (long long)k, b->data);
        p->nl = (size_t)(sp - b->data);
        p->nr = b->len - p->nl - 1;
    }
    size_t n = b->len; /* append '\0' + left + right */
    VLM_TRY(text_reserve(t, b, n + 1 + p->nl + p->nr));
    b->data[n] = '\0';
    memcpy(b->data + n + 1, b->data, p->nl);
    memcpy(b->data + n + 1 + p->nl, b->data + p->nl + 1, p->nr);
    p->h[0] = vlm_tok_hash(b->data, p->nl);
    p->h[1] = vlm_tok_hash(b->data + p->nl + 1, p->nr);
    p->h[2] = vlm_tok_hash(b->data + n + 1, p->nl + p->nr);
    for (int i = 0; i < 3; i++) prefetch_slot(&t->vocab, p->h[i]);
    return VLM_OK;
}

static vlm_status resolve_merge(vlm_tokenizer *t, const pending_merge *p, int64_t k, vlm_tok_merge *m) {
    const char *s = p->text.data, *right = s + p->nl + 1, *cat = s + p->nl + p->nr + 2;
    m->a = vlm_tok_map_get_h(t, &t->vocab, s, p->nl, p->h[0]);
    m->b = vlm_tok_map_get_h(t, &t->vocab, right, p->nr, p->h[1]);
    m->r = vlm_tok_map_get_h(t, &t->vocab, cat, p->nl + p->nr, p->h[2]);
    if (m->a < 0 || m->b < 0)
        return vlm_err(VLM_ERR_FORMAT, "%s: merge %lld (\"%.64s\"): \"%.*s\" is not in the vocabulary", t->path,
                       (long long)k, s, m->a < 0 ? (int)(p->nl > 64 ? 64 : p->nl) : (int)(p->nr > 64 ? 64 : p->nr),
                       m->a < 0 ? s : right);
    if (m->r < 0)
        return vlm_err(VLM_ERR_FORMAT, "%s: merge %lld (\"%.64s\"): the merged token \"%.*s\" is not in the vocabulary",
                       t->path, (long long)k, s, (int)(p->nl + p->nr > 64 ? 64 : p->nl + p->nr), cat);
    return VLM_OK;
}

vlm_status vlm_tok_read_merges(vlm_tokenizer *t, vlm_tokjs *js, vlm_tok_build *bu) {
    if (vlm_tokjs_peek(js) != '[') return vlm_err(VLM_ERR_FORMAT, "%s: model.merges must be an array", t->path);
    js->p++;
    pending_merge pipe[PIPE];
    memset(pipe, 0, sizeof pipe);
    vlm_tokjs_buf r = {0};
    int64_t k = 0, done = 0; /* k merges parsed, `done` resolved */
    int more = 1;
    vlm_status s = VLM_OK;
    while (s == VLM_OK) {
        s = vlm_tokjs_next(js, ']', &k, &more);
        if (s != VLM_OK) break;
        if (more && k >= (1 << 24) - 1)
            s = vlm_err(VLM_ERR_UNSUPPORTED, "%s: more than %d merges", t->path, (1 << 24) - 2);
        if (s == VLM_OK && more && !grow((void **)&bu->m, &bu->cap_m, (size_t)k, sizeof *bu->m, "the merges"))
            s = nomem(t);
        if (s == VLM_OK && more) s = parse_merge(t, js, k - 1, &r, &pipe[(k - 1) % PIPE]);
        /* resolve the oldest once the pipe is full, everything at the end */
        while (s == VLM_OK && done < k && (!more || k - done >= PIPE)) {
            s = resolve_merge(t, &pipe[done % PIPE], done, &bu->m[done]);
            done++;
        }
        if (!more) break;
    }
    for (int i = 0; i < PIPE; i++) vlm_tokjs_buf_free(&pipe[i].text);
    vlm_tokjs_buf_free(&r);
    if (s == VLM_OK) {
        bu->n_m = (size_t)k;
        bu->have_merges = 1;
    }
    return s;
}

/* ---- the tables, once every id is known ---- */

static void set_raw(vlm_tokenizer *t, int32_t id, const char *form, size_t n, size_t *used) {
    t->raw_off[id] = (uint32_t)*used;
    t->raw_len[id] = (uint32_t)vlm_tok_bytelevel_decode(form, n, t->raw + *used);
    *used += t->raw_len[id];
    if (t->raw_len[id] > t->max_token_bytes) t->max_token_bytes = t->raw_len[id];
}

static vlm_status build_ids(vlm_tokenizer *t, const vlm_tok_build *b) {
    int32_t n_ids = 0;
    for (size_t k = 0; k < b->n; k++)
        if (b->v[k].id + 1 > n_ids) n_ids = b->v[k].id + 1;
    for (int k = 0; k < t->n_added; k++)
        if (t->added[k].id + 1 > n_ids) n_ids = t->added[k].id + 1;
    t->n_ids = n_ids;
    size_t n = (size_t)n_ids + 1;
    t->flags = vlm_calloc(n, 1, "the token flags");
    t->raw_off = t->flags ? vlm_calloc(n, sizeof *t->raw_off, "the token table") : NULL;
    t->raw_len = t->raw_off ? vlm_calloc(n, sizeof *t->raw_len, "the token table") : NULL;
    t->raw = t->raw_len ? vlm_alloc(t->forms_len + 1, "the tokens' strings") : NULL;
    if (!t->flags || !t->raw_off || !t->raw_len || !t->raw) return nomem(t);
    size_t used = 0;
    for (size_t k = 0; k < b->n; k++) {
        int32_t id = b->v[k].id;
        if (t->flags[id])
            return vlm_err(VLM_ERR_FORMAT, "%s: model.vocab gives id %d to both \"%.64s\" and \"%.64s\"", t->path, id,
                           t->raw + t->raw_off[id], t->forms + b->v[k].off);
        t->flags[id] = VLM_TOK_PRESENT;
        set_raw(t, id, t->forms + b->v[k].off, b->v[k].len, &used);
    }
    for (int k = 0; k < t->n_added; k++) {
        int32_t id = t->added[k].id;
        if (t->flags[id] & VLM_TOK_ADDED)
            return vlm_err(VLM_ERR_FORMAT, "%s: added_tokens lists id %d twice", t->path, id);
        t->flags[id] |= VLM_TOK_PRESENT | VLM_TOK_ADDED; /* an added token may reuse a vocabulary id */
        set_raw(t, id, t->added[k].content, t->added[k].len, &used);
    }
    for (int c = 0; c < 256; c++) {
        char u[2];
        uint32_t cp = vlm_tok_byte_char((unsigned)c);
        size_t n8 = cp < 0x80 ? 1 : 2;
        if (n8 == 1) u[0] = (char)cp;
        else {
            u[0] = (char)(0xC0 | cp >> 6);
            u[1] = (char)(0x80 | (cp & 0x3F));
        }
        t->byte_id[c] = vlm_tok_map_get(t, &t->vocab, u, n8);
        if (t->byte_id[c] < 0)
            return vlm_err(VLM_ERR_FORMAT,
                           "%s: the vocabulary has no token \"%.*s\" for byte 0x%02x: not a byte-level BPE "
                           "vocabulary",
                           t->path, (int)n8, u, c);
    }
    return VLM_OK;
}

static vlm_status build_merge_table(vlm_tokenizer *t, const vlm_tok_merge *m, size_t n) {
    size_t cap = 1024; /* load <= 0.67: 2 MB for Qwen's 151k merges, so it mostly stays in cache */
    while (cap < n + n / 2) cap *= 2;
    t->merge_tab = vlm_calloc(cap, sizeof *t->merge_tab, "the merge hash table");
    t->merge_result = t->merge_tab ? vlm_alloc((n ? n : 1) * sizeof *t->merge_result, "the merge results") : NULL;
    if (!t->merge_tab || !t->merge_result) return nomem(t);
    t->merge_mask = cap - 1;
    for (size_t r = 0; r < n; r++) {
        uint64_t key = (uint64_t)m[r].a << 44 | (uint64_t)m[r].b << 24;
        size_t i = vlm_tok_merge_slot(m[r].a, m[r].b) & t->merge_mask;
        int dup = 0;
        for (; t->merge_tab[i]; i = (i + 1) & t->merge_mask)
            if ((t->merge_tab[i] & ~(uint64_t)0xFFFFFF) == key) dup = 1;
        t->merge_result[r] = m[r].r;
        if (!dup) t->merge_tab[i] = key | (uint64_t)(r + 1); /* a repeated pair keeps its first (lowest) rank */
    }
    t->n_merges = (int)n;
    /* byte pairs: walk the merges once (lowest rank first wins) instead of probing 65536 pairs */
    t->byte_pair_rank = vlm_alloc(65536 * sizeof *t->byte_pair_rank, "the byte-pair ranks");
    int16_t *byte_of = t->byte_pair_rank ? vlm_alloc((size_t)t->n_ids * sizeof *byte_of, "the byte of each id") : NULL;
    if (!t->byte_pair_rank || !byte_of) {
        vlm_free(byte_of);
        return nomem(t);
    }
    memset(t->byte_pair_rank, 0xFF, 65536 * sizeof *t->byte_pair_rank);
    for (int32_t id = 0; id < t->n_ids; id++) byte_of[id] = -1;
    for (int c = 0; c < 256; c++) byte_of[t->byte_id[c]] = (int16_t)c;
    for (size_t r = 0; r < n; r++) {
        int a = byte_of[m[r].a], b = byte_of[m[r].b];
        if (a >= 0 && b >= 0 && t->byte_pair_rank[a << 8 | b] == UINT32_MAX)
            t->byte_pair_rank[a << 8 | b] = (uint32_t)r;
    }
    free(byte_of);
    return VLM_OK;
}

vlm_status vlm_tok_build_tables(vlm_tokenizer *t, const vlm_tok_build *b) {
    VLM_TRY(build_ids(t, b));
    return build_merge_table(t, b->m, b->n_m);
}
