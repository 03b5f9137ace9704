#include "text/tokenizer_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"

enum { MAX_DEPTH = 256 };

void vlm_tokjs_init(vlm_tokjs *s, const char *text, size_t len, const char *what) {
    s->p = s->start = text;
    s->end = text + len;
    s->what = what;
    s->depth = 0;
}

vlm_status vlm_tokjs_fail(const vlm_tokjs *s, const char *msg) {
    if (s->p >= s->end)
        return vlm_err(VLM_ERR_FORMAT, "%s: %s: the JSON text ends early (truncated file?) at byte %zu", s->what, msg,
                       (size_t)(s->end - s->start));
    return vlm_err(VLM_ERR_FORMAT, "%s: %s at byte %zu", s->what, msg, (size_t)(s->p - s->start));
}

void vlm_tokjs_ws(vlm_tokjs *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) s->p++;
}

int vlm_tokjs_peek(vlm_tokjs *s) {
    vlm_tokjs_ws(s);
    return s->p < s->end ? (unsigned char)*s->p : 0;
}

vlm_status vlm_tokjs_expect(vlm_tokjs *s, char c) {
    if (vlm_tokjs_peek(s) != (unsigned char)c) {
        char msg[32];
        snprintf(msg, sizeof msg, "expected '%c'", c);
        return vlm_tokjs_fail(s, msg);
    }
    s->p++;
    return VLM_OK;
}

static int buf_reserve(vlm_tokjs_buf *b, size_t need) {
    if (need + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need + 1) cap *= 2;
    char *d = vlm_realloc(b->data, cap, "a decoded JSON string");
    if (!d) return 0;
    b->data = d;
    b->cap = cap;
    return 1;
}

void vlm_tokjs_buf_free(vlm_tokjs_buf *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(vlm_tokjs *s, unsigned *v) {
    if (s->end - s->p < 4) return 0;
    unsigned x = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval((unsigned char)s->p[i]);
        if (h < 0) return 0;
        x = x << 4 | (unsigned)h;
    }
    s->p += 4;
    *v = x;
    return 1;
}

static size_t put_utf8(char *o, unsigned cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* One escape after the backslash; b may be NULL (skipping). */
static vlm_status read_escape(vlm_tokjs *s, vlm_tokjs_buf *b) {
    if (s->p >= s->end) return vlm_tokjs_fail(s, "unfinished escape in a string");
    char c = *s->p++, out;
    switch (c) {
    case '"': out = '"'; break;
    case '\\': out = '\\'; break;
    case '/': out = '/'; break;
    case 'b': out = '\b'; break;
    case 'f': out = '\f'; break;
    case 'n': out = '\n'; break;
    case 'r': out = '\r'; break;
    case 't': out = '\t'; break;
    case 'u': {
        unsigned cp;
        if (!read_hex4(s, &cp)) return vlm_tokjs_fail(s, "bad \\u escape");
        if (cp >= 0xDC00 && cp <= 0xDFFF) return vlm_tokjs_fail(s, "lone low surrogate in a \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            unsigned lo;
            if (s->end - s->p < 2 || s->p[0] != '\\' || s->p[1] != 'u')
                return vlm_tokjs_fail(s, "lone high surrogate in a \\u escape");
            s->p += 2;
            if (!read_hex4(s, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return vlm_tokjs_fail(s, "bad surrogate pair in a \\u escape");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (b) {
            if (!buf_reserve(b, b->len + 4)) return vlm_err_ctx(VLM_ERR_NOMEM, "%s", s->what);
            b->len += put_utf8(b->data + b->len, cp);
        }
        return VLM_OK;
    }
    default: s->p--; return vlm_tokjs_fail(s, "bad escape in a string");
    }
    if (b) {
        if (!buf_reserve(b, b->len + 1)) return vlm_err_ctx(VLM_ERR_NOMEM, "%s", s->what);
        b->data[b->len++] = out;
    }
    return VLM_OK;
}

/* Reads (b != NULL) or skips a string; s->p is at the opening quote. */
static vlm_status string_body(vlm_tokjs *s, vlm_tokjs_buf *b) {
    if (s->p >= s->end || *s->p != '"') return vlm_tokjs_fail(s, "expected a string");
    s->p++;
    if (b) b->len = 0;
    for (;;) {
        const char *q = s->p;
        while (q < s->end && *q != '"' && *q != '\\' && (unsigned char)*q >= 0x20) q++;
        if (b && q > s->p) {
            size_t n = (size_t)(q - s->p);
            if (!buf_reserve(b, b->len + n)) return vlm_err_ctx(VLM_ERR_NOMEM, "%s", s->what);
            memcpy(b->data + b->len, s->p, n);
            b->len += n;
        }
        s->p = q;
        if (q >= s->end) return vlm_tokjs_fail(s, "unterminated string");
        if (*q == '"') {
            s->p++;
            break;
        }
        if (*q != '\\') return vlm_tokjs_fail(s, "control character inside a string");
        s->p++;
        VLM_TRY(read_escape(s, b));
    }
    if (b) {
        if (!buf_reserve(b, b->len)) return vlm_err_ctx(VLM_ERR_NOMEM, "%s", s->what);
        b->data[b->len] = '\0';
    }
    return VLM_OK;
}

vlm_status vlm_tokjs_string(vlm_tokjs *s, vlm_tokjs_buf *b) {
    vlm_tokjs_ws(s);
    return string_body(s, b);
}

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static vlm_status skip_number(vlm_tokjs *s) {
    const char *p = s->p;
    if (p < s->end && *p == '-') p++;
    if (p >= s->end || !is_digit(*p)) return vlm_tokjs_fail(s, "bad number");
    if (*p == '0') p++;
    else
        while (p < s->end && is_digit(*p)) p++;
    if (p < s->end && *p == '.') {
        p++;
        if (p >= s->end || !is_digit(*p)) return vlm_tokjs_fail(s, "bad number");
        while (p < s->end && is_digit(*p)) p++;
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < s->end && (*p == '+' || *p == '-')) p++;
        if (p >= s->end || !is_digit(*p)) return vlm_tokjs_fail(s, "bad number");
        while (p < s->end && is_digit(*p)) p++;
    }
    s->p = p;
    return VLM_OK;
}

vlm_status vlm_tokjs_int(vlm_tokjs *s, int64_t lo, int64_t hi, int64_t *v) {
    vlm_tokjs_ws(s);
    const char *start = s->p;
    VLM_TRY(skip_number(s));
    const char *p = start;
    int neg = *p == '-';
    if (neg) p++;
    int64_t x = 0;
    for (; p < s->p && is_digit(*p); p++) {
        if (x > (INT64_MAX - 9) / 10) {
            s->p = start;
            return vlm_tokjs_fail(s, "integer out of range");
        }
        x = x * 10 + (*p - '0');
    }
    if (p != s->p) {
        s->p = start;
        return vlm_tokjs_fail(s, "expected an integer");
    }
    if (neg) x = -x;
    if (x < lo || x > hi) {
        s->p = start;
        return vlm_tokjs_fail(s, "integer out of range");
    }
    *v = x;
    return VLM_OK;
}

static vlm_status skip_literal(vlm_tokjs *s, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0) return vlm_tokjs_fail(s, "unexpected character");
    s->p += n;
    return VLM_OK;
}

vlm_status vlm_tokjs_next(vlm_tokjs *s, char close, int64_t *index, int *more) {
    int c = vlm_tokjs_peek(s);
    if (c == (unsigned char)close) {
        s->p++;
        *more = 0;
        return VLM_OK;
    }
    if (*index > 0) {
        if (c != ',') return vlm_tokjs_fail(s, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
        s->p++;
        if (vlm_tokjs_peek(s) == (unsigned char)close) return vlm_tokjs_fail(s, "trailing comma");
    }
    if (s->p >= s->end) return vlm_tokjs_fail(s, "unfinished object or array");
    (*index)++;
    *more = 1;
    return VLM_OK;
}

vlm_status vlm_tokjs_skip(vlm_tokjs *s) {
    int c = vlm_tokjs_peek(s);
    switch (c) {
    case '"': return string_body(s, NULL);
    case 't': return skip_literal(s, "true");
    case 'f': return skip_literal(s, "false");
    case 'n': return skip_literal(s, "null");
    case '{':
    case '[': {
        char close = c == '{' ? '}' : ']';
        if (++s->depth > MAX_DEPTH) return vlm_tokjs_fail(s, "nesting too deep");
        s->p++;
        int64_t i = 0;
        int more = 0;
        for (;;) {
            VLM_TRY(vlm_tokjs_next(s, close, &i, &more));
            if (!more) break;
            if (close == '}') {
                VLM_TRY(vlm_tokjs_string(s, NULL));
                VLM_TRY(vlm_tokjs_expect(s, ':'));
            }
            VLM_TRY(vlm_tokjs_skip(s));
        }
        s->depth--;
        return VLM_OK;
    }
    case 0: return vlm_tokjs_fail(s, "expected a value");
    default:
        if (c == '-' || is_digit((char)c)) return skip_number(s);
        return vlm_tokjs_fail(s, "unexpected character");
    }
}
