/* NFC normalization of a segment, fast when the text is already normalized (nearly always).
 *
 * utf8proc normalizes ~20 MB/s, too slow to run on every segment. A code point is "quick" here
 * when NFC can never change it or combine it with its neighbours: combining class 0, not the
 * second part of any canonical composition, and (when it has a canonical decomposition) NFC of it
 * alone is itself and the first code point of its decomposition is not a second part either.
 * NFC never combines or reorders across a quick code point, so only the runs of non-quick code
 * points, each with the quick code point before it, are normalized. ASCII is quick.
 * Such a window is decomposed and composed by utf8proc, but put in canonical order here: utf8proc
 * orders combining marks with a gnome sort, quadratic on a long run of marks (a 1 MB run took
 * minutes); a stable counting sort by combining class is linear.
 * Ill-formed UTF-8 bytes are left as they are and bound the runs (tokenizer.h). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "text/tokenizer_internal.h"

enum { N_CP = 0x110000 };
static uint8_t g_second[N_CP / 8]; /* may be the second part of a canonical composition */
static uint8_t g_quick[N_CP / 8];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static int bit(const uint8_t *set, uint32_t cp) { return set[cp >> 3] >> (cp & 7) & 1; }
static void set_bit(uint8_t *set, uint32_t cp) { set[cp >> 3] |= (uint8_t)(1u << (cp & 7)); }

static int canonical_decomposition(uint32_t cp, utf8proc_int32_t *buf, int cap) {
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
    if (p->decomp_seqindex == UINT16_MAX || p->decomp_type != 0) return 0;
    int last = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)cp, buf, cap, UTF8PROC_DECOMPOSE, &last);
    return n > 0 && n <= cap ? (int)n : 0;
}

static void build_tables(void) {
    utf8proc_int32_t d[32];
    /* every non-first code point of a canonical decomposition may be a composition's second part */
    for (uint32_t cp = 0x80; cp < N_CP; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        int n = canonical_decomposition(cp, d, 32);
        for (int k = 1; k < n; k++) set_bit(g_second, (uint32_t)d[k]);
    }
    for (uint32_t cp = 0x1100; cp <= 0x11FF; cp++) set_bit(g_second, cp); /* Hangul jamo compose algorithmically */
    for (uint32_t cp = 0; cp < N_CP; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        if (cp < 0x80) {
            set_bit(g_quick, cp);
            continue;
        }
        const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
        if (p->combining_class != 0 || bit(g_second, cp)) continue;
        int n = canonical_decomposition(cp, d, 32);
        if (n > 0) {
            if (p->comp_exclusion || bit(g_second, (uint32_t)d[0])) continue;
            utf8proc_ssize_t m = utf8proc_normalize_utf32(d, n, UTF8PROC_COMPOSE | UTF8PROC_STABLE);
            if (m != 1 || (uint32_t)d[0] != cp) continue;
        }
        set_bit(g_quick, cp);
    }
}

/* Decodes one well-formed UTF-8 sequence at s (n > 0 bytes available); returns its length, or 0
 * when the bytes there are ill-formed. */
static int utf8_next(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = (c & 0x1F) << 6 | (s[1] & 0x3F);
        return 2;
    }
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F)) return 0;
        *cp = (c & 0x0F) << 12 | (uint32_t)(s[1] & 0x3F) << 6 | (s[2] & 0x3F);
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F)) return 0;
        *cp = (c & 0x07) << 18 | (uint32_t)(s[1] & 0x3F) << 12 | (uint32_t)(s[2] & 0x3F) << 6 | (s[3] & 0x3F);
        return 4;
    }
    return 0;
}

static int norm_put(vlm_tokenizer *t, size_t *len, const void *s, size_t n) {
    if (!n) return 1;
    if (*len + n > t->norm_cap) {
        size_t cap = t->norm_cap ? t->norm_cap : 4096;
        while (cap < *len + n) cap *= 2;
        char *p = vlm_realloc(t->norm, cap, "the normalized text");
        if (!p) return 0;
        t->norm = p;
        t->norm_cap = cap;
    }
    memcpy(t->norm + *len, s, n);
    *len += n;
    return 1;
}

static int u32_reserve(vlm_tokenizer *t, size_t n) {
    if (n <= t->nfc_cap) return 1;
    size_t cap = t->nfc_cap ? t->nfc_cap : 256;
    while (cap < n) cap *= 2;
    int32_t *a = vlm_realloc(t->nfc_u32, cap * sizeof *a, "NFC code points");
    if (a) t->nfc_u32 = a;
    int32_t *b = a ? vlm_realloc(t->nfc_tmp, cap * sizeof *b, "NFC code points") : NULL;
    if (b) t->nfc_tmp = b;
    if (!a || !b) return 0;
    t->nfc_cap = cap;
    return 1;
}

static int ccc(int32_t cp) { return utf8proc_get_property(cp)->combining_class; }

/* Stable sort of a run of non-starters by combining class. */
static void order_run(int32_t *v, int32_t *tmp, size_t n) {
    if (n <= 32) {
        for (size_t i = 1; i < n; i++) {
            int32_t x = v[i];
            int c = ccc(x);
            size_t j = i;
            for (; j > 0 && ccc(v[j - 1]) > c; j--) v[j] = v[j - 1];
            v[j] = x;
        }
        return;
    }
    size_t count[257] = {0};
    for (size_t i = 0; i < n; i++) count[ccc(v[i]) + 1]++;
    for (int c = 0; c < 256; c++) count[c + 1] += count[c];
    for (size_t i = 0; i < n; i++) tmp[count[ccc(v[i])]++] = v[i];
    memcpy(v, tmp, n * sizeof *v);
}

/* NFC of a well-formed window; the UTF-8 result is left at the start of t->nfc_u32 (as bytes),
 * *out_len bytes. */
static vlm_status nfc_window(vlm_tokenizer *t, const unsigned char *s, size_t n, size_t *out_len) {
    size_t w = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int k = utf8_next(s + i, n - i, &cp);
        if (k <= 0) return vlm_err(VLM_ERR_RUNTIME, "NFC: ill-formed UTF-8 inside a window"); /* cannot happen */
        i += (size_t)k;
        for (;;) {
            if (!u32_reserve(t, w + 8)) return vlm_err_ctx(VLM_ERR_NOMEM, "NFC normalization");
            int last = 0;
            utf8proc_ssize_t d = utf8proc_decompose_char((utf8proc_int32_t)cp, t->nfc_u32 + w,
                                                         (utf8proc_ssize_t)(t->nfc_cap - w), UTF8PROC_DECOMPOSE, &last);
            if (d < 0) return vlm_err(VLM_ERR_RUNTIME, "NFC: utf8proc cannot decompose U+%04X", cp);
            if ((size_t)d <= t->nfc_cap - w) {
                w += (size_t)d;
                break;
            }
            if (!u32_reserve(t, w + (size_t)d)) return vlm_err_ctx(VLM_ERR_NOMEM, "NFC normalization");
        }
    }
    for (size_t i = 0; i < w;) { /* canonical ordering */
        if (ccc(t->nfc_u32[i]) == 0) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < w && ccc(t->nfc_u32[j]) != 0) j++;
        order_run(t->nfc_u32 + i, t->nfc_tmp, j - i);
        i = j;
    }
    utf8proc_ssize_t m = utf8proc_reencode(t->nfc_u32, (utf8proc_ssize_t)w, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (m < 0) return vlm_err(VLM_ERR_RUNTIME, "NFC: utf8proc failed (%s)", utf8proc_errmsg(m));
    *out_len = (size_t)m;
    return VLM_OK;
}

static size_t ascii_prefix(const unsigned char *s, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        if (v & 0x8080808080808080ull) break;
    }
    while (i < n && s[i] < 0x80) i++;
    return i;
}

vlm_status vlm_tok_nfc(vlm_tokenizer *t, const char *text, size_t n, const char **out, size_t *out_len) {
    const unsigned char *s = (const unsigned char *)text;
    *out = text;
    *out_len = n;
    size_t i = ascii_prefix(s, n);
    if (i == n) return VLM_OK;
    pthread_once(&g_once, build_tables);
    size_t copied = 0, len = 0; /* s[0, copied) is in t->norm[0, len) */
    int written = 0;
    long last_quick = i > 0 ? (long)i - 1 : -1;
    while (i < n) {
        if (s[i] < 0x80) {
            last_quick = (long)i++;
            continue;
        }
        uint32_t cp;
        int k = utf8_next(s + i, n - i, &cp);
        if (k == 0) { /* ill-formed byte: left alone, bounds the runs */
            i++;
            last_quick = -1;
            continue;
        }
        if (bit(g_quick, cp)) {
            last_quick = (long)i;
            i += (size_t)k;
            continue;
        }
        size_t ws = last_quick >= (long)copied ? (size_t)last_quick : i, we = i + (size_t)k;
        while (we < n) {
            int k2 = utf8_next(s + we, n - we, &cp);
            if (k2 == 0 || bit(g_quick, cp)) break;
            we += (size_t)k2;
        }
        size_t m = 0;
        vlm_status st = nfc_window(t, s + ws, we - ws, &m);
        if (st != VLM_OK) return st;
        if (!norm_put(t, &len, s + copied, ws - copied) || !norm_put(t, &len, t->nfc_u32, m))
            return vlm_err_ctx(VLM_ERR_NOMEM, "NFC normalization");
        copied = we;
        written = 1;
        i = we;
        last_quick = -1;
    }
    if (!written) return VLM_OK;
    if (!norm_put(t, &len, s + copied, n - copied)) return vlm_err_ctx(VLM_ERR_NOMEM, "NFC normalization");
    *out = t->norm;
    *out_len = len;
    return VLM_OK;
}
