/* Decoding: the ByteLevel byte map, one-shot decode, UTF-8 repair (U+FFFD per maximal ill-formed
 * subpart) and the streaming detokenizer. */
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "text/tokenizer_internal.h"

/* ---- the GPT-2 byte <-> character map ---- */

/* Printable bytes (0x21-0x7E, 0xA1-0xAC, 0xAE-0xFF) stand for themselves; the other 68, in byte
 * order, for U+0100.. U+0143. */
uint32_t vlm_tok_byte_char(unsigned b) {
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0) return 0x100 + 33 + (b - 0x7F);
    if (b == 0xAD) return 0x143;
    return b;
}

static int char_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
    if (cp >= 0x100 && cp <= 0x120) return (int)(cp - 0x100);
    if (cp >= 0x121 && cp <= 0x142) return (int)(0x7F + cp - 0x121);
    if (cp == 0x143) return 0xAD;
    return -1;
}

size_t vlm_tok_bytelevel_decode(const char *str, size_t n, char *out) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, o = 0;
    while (i < n) {
        uint32_t cp;
        if (s[i] < 0x80) cp = s[i++];
        else if ((s[i] & 0xE0) == 0xC0 && i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
            cp = (uint32_t)(s[i] & 0x1F) << 6 | (s[i + 1] & 0x3F);
            i += 2;
        } else break; /* every mapped character is below U+0800 */
        int b = char_byte(cp);
        if (b < 0) break;
        out[o++] = (char)b;
    }
    if (i == n) return o;
    memcpy(out, str, n); /* not a byte-level string: its own bytes, as the ByteLevel decoder does */
    return n;
}

/* ---- UTF-8 repair ---- */

enum { STEP_VALID, STEP_INVALID, STEP_INCOMPLETE };

/* One step of a UTF-8 decoder over s[0, n): a well-formed sequence, a maximal ill-formed subpart
 * (replaced by one U+FFFD), or a well-formed but unfinished prefix reaching the end. */
static size_t utf8_step(const unsigned char *s, size_t n, int *status) {
    unsigned c = s[0];
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c < 0x80) {
        *status = STEP_VALID;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 2;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 3;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        *status = STEP_INVALID;
        return 1;
    }
    for (size_t k = 1; k <= need; k++) {
        if (k >= n) {
            *status = STEP_INCOMPLETE;
            return k;
        }
        if (s[k] < lo || s[k] > hi) {
            *status = STEP_INVALID;
            return k;
        }
        lo = 0x80;
        hi = 0xBF;
    }
    *status = STEP_VALID;
    return need + 1;
}

static const char k_fffd[3] = {(char)0xEF, (char)0xBF, (char)0xBD};

/* Writes the repaired text of s[0, n) to out (room for 3n bytes); returns the bytes written.
 * keep_tail: a trailing incomplete prefix is not written; *tail receives its length. */
static size_t repair(const unsigned char *s, size_t n, char *out, int keep_tail, size_t *tail) {
    size_t i = 0, o = 0;
    if (tail) *tail = 0;
    while (i < n) {
        int st;
        size_t k = utf8_step(s + i, n - i, &st);
        if (st == STEP_VALID) {
            memcpy(out + o, s + i, k);
            o += k;
        } else if (st == STEP_INCOMPLETE && keep_tail) {
            *tail = k;
            return o;
        } else {
            memcpy(out + o, k_fffd, 3);
            o += 3;
        }
        i += k;
    }
    return o;
}

void vlm_utf8_lossy_append(vlm_strbuf *out, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        size_t start = i;
        int st = STEP_VALID;
        size_t k = 0;
        while (i < n) { /* the longest well-formed run */
            if (s[i] < 0x80) {
                i++;
                continue;
            }
            k = utf8_step(s + i, n - i, &st);
            if (st != STEP_VALID) break;
            i += k;
        }
        vlm_sb_append(out, str + start, i - start);
        if (i < n) {
            vlm_sb_append(out, k_fffd, 3);
            i += k;
        }
    }
}

/* ---- one-shot decode ---- */

static int emitted(const vlm_tokenizer *t, int32_t id, int skip_special) {
    if (id < 0 || id >= t->n_ids || !t->flags[id]) return 0;
    return !(skip_special && (t->flags[id] & VLM_TOK_SPECIAL));
}

vlm_status vlm_tok_decode(const vlm_tokenizer *t, const int32_t *ids, size_t n, int skip_special, vlm_strbuf *out) {
    vlm_strbuf bytes = {0};
    for (size_t i = 0; i < n; i++)
        if (emitted(t, ids[i], skip_special)) vlm_sb_append(&bytes, t->raw + t->raw_off[ids[i]], t->raw_len[ids[i]]);
    if (!bytes.failed) vlm_utf8_lossy_append(out, bytes.data ? bytes.data : "", bytes.len);
    int failed = bytes.failed || out->failed;
    vlm_sb_free(&bytes);
    if (failed) return vlm_err(VLM_ERR_NOMEM, "out of memory decoding %zu ids to text", n);
    return VLM_OK;
}

/* ---- streaming ---- */

vlm_status vlm_detok_init(vlm_detok *d, const vlm_tokenizer *t, int skip_special) {
    memset(d, 0, sizeof *d);
    d->tok = t;
    d->skip_special = skip_special;
    size_t work = t->max_token_bytes + 4;
    d->out_cap = 3 * work + 8;
    d->out = vlm_alloc(d->out_cap + work, "the streaming detokenizer");
    if (!d->out) return VLM_ERR_NOMEM;
    d->work = d->out + d->out_cap;
    return VLM_OK;
}

void vlm_detok_push(vlm_detok *d, int32_t id, const char **text, size_t *len) {
    const vlm_tokenizer *t = d->tok;
    *text = d->out;
    *len = 0;
    if (!emitted(t, id, d->skip_special)) return; /* the buffer waits for the next token */
    const char *b = t->raw + t->raw_off[id];
    size_t nb = t->raw_len[id], o = 0;
    if (t->flags[id] & VLM_TOK_ADDED) {
        if (d->n_pending) {
            memcpy(d->out, k_fffd, 3);
            o = 3;
            d->n_pending = 0;
        }
        o += repair((const unsigned char *)b, nb, d->out + o, 0, NULL);
    } else {
        memcpy(d->work, d->pending, (size_t)d->n_pending);
        memcpy(d->work + d->n_pending, b, nb);
        size_t n = (size_t)d->n_pending + nb, tail;
        o = repair((const unsigned char *)d->work, n, d->out, 1, &tail);
        memcpy(d->pending, d->work + n - tail, tail);
        d->n_pending = (int)tail;
    }
    *len = o;
}

void vlm_detok_flush(vlm_detok *d, const char **text, size_t *len) {
    *text = d->out;
    *len = 0;
    if (d->n_pending) {
        memcpy(d->out, k_fffd, 3);
        *len = 3;
    }
    d->n_pending = 0;
}

void vlm_detok_reset(vlm_detok *d) { d->n_pending = 0; }

void vlm_detok_free(vlm_detok *d) {
    free(d->out);
    memset(d, 0, sizeof *d);
}
