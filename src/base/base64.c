#include "base/base64.h"

#include "base/memory.h"

/* 0..63 for the alphabet, 64 for whitespace, 65 for '=', 66 for anything else */
static int sextet(unsigned char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') return 64;
    if (c == '=') return 65;
    return 66;
}

static vlm_status bad_char(const char *in, size_t i, const char *why) {
    unsigned char c = (unsigned char)in[i];
    if (c >= 0x20 && c < 0x7f) return vlm_err(VLM_ERR_FORMAT, "base64: '%c' at offset %zu %s", c, i, why);
    return vlm_err(VLM_ERR_FORMAT, "base64: byte 0x%02x at offset %zu %s", c, i, why);
}

vlm_status vlm_base64_decode(const char *in, size_t n, unsigned char **out, size_t *out_n) {
    *out = NULL;
    *out_n = 0;
    unsigned char *dst = vlm_alloc(n / 4 * 3 + 4, "decoded base64");
    if (!dst) return VLM_ERR_NOMEM;
    size_t len = 0;
    unsigned acc = 0;
    int k = 0;   /* sextets in the current quantum (0..3) */
    int pad = 0; /* '=' seen so far: only whitespace and more '=' may follow */
    for (size_t i = 0; i < n; i++) {
        int v = sextet((unsigned char)in[i]);
        if (v == 64) continue;
        vlm_status s = VLM_OK;
        if (v == 66) s = bad_char(in, i, "is not a base64 character");
        else if (v == 65 && (k < 2 || k + pad + 1 > 4)) s = bad_char(in, i, "is misplaced padding");
        else if (v < 64 && pad) s = bad_char(in, i, "follows the '=' padding");
        if (s != VLM_OK) {
            vlm_free(dst);
            return s;
        }
        if (v == 65) {
            pad++; /* padding completes a last group of 2 or 3 characters: "xx==" or "xxx=" */
            continue;
        }
        acc = acc << 6 | (unsigned)v;
        if (++k == 4) {
            dst[len++] = (unsigned char)(acc >> 16);
            dst[len++] = (unsigned char)(acc >> 8);
            dst[len++] = (unsigned char)acc;
            acc = 0;
            k = 0;
        }
    }
    /* the last quantum: 2 sextets give one byte, 3 give two; 1 is not base64 */
    if (k == 1 || (pad && k + pad != 4)) {
        vlm_free(dst);
        return vlm_err(VLM_ERR_FORMAT, "base64: the input ends inside a group of four characters (%zu characters)", n);
    }
    if (k == 2) dst[len++] = (unsigned char)(acc >> 4);
    if (k == 3) {
        dst[len++] = (unsigned char)(acc >> 10);
        dst[len++] = (unsigned char)(acc >> 2);
    }
    dst[len] = 0;
    *out = dst;
    *out_n = len;
    return VLM_OK;
}

void vlm_base64_encode(const void *in, size_t n, vlm_strbuf *out) {
    static const char k[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = in;
    char q[4];
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) | (i + 2 < n ? p[i + 2] : 0);
        q[0] = k[v >> 18 & 63];
        q[1] = k[v >> 12 & 63];
        q[2] = i + 1 < n ? k[v >> 6 & 63] : '=';
        q[3] = i + 2 < n ? k[v & 63] : '=';
        vlm_sb_append(out, q, 4);
    }
}
