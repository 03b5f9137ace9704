/* The fast path of Pillow's BICUBIC resize (see resize.c for the arithmetic): AVX2, strip by strip.
 * Any band of output rows is computed on its own — its input rows through the horizontal pass into
 * scratch, then the vertical pass — which gives the same bytes as the whole-image passes (each
 * output row depends only on its own input window), so callers can resize in cache-sized strips
 * and in parallel. Integer sums are exact in any order; the tests compare with the scalar
 * reference and with Pillow. */
#include <immintrin.h>
#include <string.h>

#include "image/resample.h"

/* Horizontal pass, 8 rows at a time: the rows are interleaved pixel by pixel (one RGBX dword per
 * row, 8 rows = one 256-bit vector per input column), so each tap of an output pixel is one aligned
 * load and three 8-lane multiply-adds, one lane per row. 8x8 dword transposes do the interleaving
 * and the way back. */

static inline void transpose8x8(__m256i r[8]) {
    __m256i t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
        u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
        u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
        u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int i = 0; i < 4; i++) {
        r[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
    }
}

/* 8 RGBX dwords → 24 RGB bytes; writes 4 bytes past them */
static inline void store8_rgb(uint8_t *p, __m256i v) {
    const __m256i shuf = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1, 0, 1, 2, 4, 5, 6, 8,
                                          9, 10, 12, 13, 14, -1, -1, -1, -1);
    v = _mm256_shuffle_epi8(v, shuf);
    _mm_storeu_si128((__m128i *)p, _mm256_castsi256_si128(v));
    _mm_storeu_si128((__m128i *)(p + 12), _mm256_extracti128_si256(v, 1));
}

static inline uint32_t rgbx(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16; }

/* rows[0..7] (rows past nrows repeat the last one) → tin[x·8 + r] */
static void interleave8(const uint8_t *const rows[8], int w, uint32_t *tin) {
    int x = 0;
    for (; x + 10 <= w; x += 8) {
        __m256i v[8];
        for (int r = 0; r < 8; r++) v[r] = vlm_load8_rgb(rows[r] + (size_t)x * 3);
        transpose8x8(v);
        for (int i = 0; i < 8; i++) _mm256_store_si256((__m256i *)(tin + (size_t)(x + i) * 8), v[i]);
    }
    for (; x < w; x++)
        for (int r = 0; r < 8; r++) tin[(size_t)x * 8 + r] = rgbx(rows[r] + (size_t)x * 3);
}

/* tout[x·8 + r] → outs[r] for r < nrows */
static void deinterleave8(const uint32_t *tout, int w, uint8_t *const outs[8], int nrows) {
    int x = 0;
    for (; x + 10 <= w; x += 8) {
        __m256i v[8];
        for (int i = 0; i < 8; i++) v[i] = _mm256_load_si256((const __m256i *)(tout + (size_t)(x + i) * 8));
        transpose8x8(v);
        for (int r = 0; r < nrows; r++) store8_rgb(outs[r] + (size_t)x * 3, v[r]);
    }
    for (; x < w; x++)
        for (int r = 0; r < nrows; r++) {
            uint32_t v = tout[(size_t)x * 8 + r];
            uint8_t *d = outs[r] + (size_t)x * 3;
            d[0] = (uint8_t)v, d[1] = (uint8_t)(v >> 8), d[2] = (uint8_t)(v >> 16);
        }
}

/* Every output pixel runs the same number of taps (nt = the largest tap count; the weights past a
 * pixel's own count are zero and tin has nt zero columns after the image), so the loop has a fixed
 * trip count: no mispredicted exits, and unrolled for the usual counts. */
static inline __attribute__((always_inline)) void horiz_taps(const uint32_t *tin, uint32_t *tout,
                                                             const vlm_resample_axis *a, const int nt) {
    const __m256i init = _mm256_set1_epi32(1 << (VLM_RESAMPLE_BITS - 1)), ff = _mm256_set1_epi32(255);
    const __m256i zero = _mm256_setzero_si256();
    for (int xx = 0; xx < a->out_size; xx++) {
        const __m256i *src = (const __m256i *)(tin + (size_t)a->bounds[2 * xx] * 8);
        const int32_t *k = a->k + (size_t)xx * a->ksize;
        __m256i r = init, g = init, b = init;
        for (int t = 0; t < nt; t++) {
            const __m256i v = _mm256_load_si256(src + t), kv = _mm256_set1_epi32(k[t]);
            r = _mm256_add_epi32(r, _mm256_mullo_epi32(_mm256_and_si256(v, ff), kv));
            g = _mm256_add_epi32(g, _mm256_mullo_epi32(_mm256_and_si256(_mm256_srli_epi32(v, 8), ff), kv));
            b = _mm256_add_epi32(b, _mm256_mullo_epi32(_mm256_srli_epi32(v, 16), kv));
        }
        r = _mm256_max_epi32(_mm256_min_epi32(_mm256_srai_epi32(r, VLM_RESAMPLE_BITS), ff), zero);
        g = _mm256_max_epi32(_mm256_min_epi32(_mm256_srai_epi32(g, VLM_RESAMPLE_BITS), ff), zero);
        b = _mm256_max_epi32(_mm256_min_epi32(_mm256_srai_epi32(b, VLM_RESAMPLE_BITS), ff), zero);
        __m256i px = _mm256_or_si256(r, _mm256_or_si256(_mm256_slli_epi32(g, 8), _mm256_slli_epi32(b, 16)));
        _mm256_store_si256((__m256i *)(tout + (size_t)xx * 8), px);
    }
}

static void horiz_rows8_simd(const uint32_t *tin, uint32_t *tout, const vlm_resample_axis *a) {
    switch (a->max_n) {
    case 4: horiz_taps(tin, tout, a, 4); break;
    case 5: horiz_taps(tin, tout, a, 5); break;
    case 6: horiz_taps(tin, tout, a, 6); break;
    case 7: horiz_taps(tin, tout, a, 7); break;
    default: horiz_taps(tin, tout, a, a->max_n); break;
    }
}

static void vert_row_simd(const uint8_t *src, size_t stride, int ymin, int n, const int32_t *k, uint8_t *dst,
                          size_t nbytes) {
    const uint8_t *base = src + (size_t)ymin * stride;
    size_t i = 0;
    for (; i + 16 <= nbytes; i += 16) {
        __m256i a0 = _mm256_set1_epi32(1 << (VLM_RESAMPLE_BITS - 1)), a1 = a0;
        for (int y = 0; y < n; y++) {
            __m128i p = _mm_loadu_si128((const __m128i *)(base + (size_t)y * stride + i));
            __m256i kk = _mm256_set1_epi32(k[y]);
            a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(p), kk));
            a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(p, 8)), kk));
        }
        a0 = _mm256_srai_epi32(a0, VLM_RESAMPLE_BITS);
        a1 = _mm256_srai_epi32(a1, VLM_RESAMPLE_BITS);
        __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(a0, a1), 0xD8); /* a0[0..7], a1[0..7] */
        __m256i b8 = _mm256_packus_epi16(w16, w16);
        __m128i lo = _mm256_castsi256_si128(b8), hi = _mm256_extracti128_si256(b8, 1);
        _mm_storeu_si128((__m128i *)(dst + i), _mm_unpacklo_epi64(lo, hi));
    }
    for (; i < nbytes; i++) {
        int32_t s = 1 << (VLM_RESAMPLE_BITS - 1);
        for (int y = 0; y < n; y++) s += base[(size_t)y * stride + i] * k[y];
        s >>= VLM_RESAMPLE_BITS;
        dst[i] = (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
    }
}

/* Input rows [a, b) through the horizontal pass into dst (rows of out_size·3 bytes). */
static void horiz_rows(const vlm_resampler *rs, const vlm_image *in, int a, int b, uint8_t *dst, uint32_t *tin,
                       uint32_t *tout) {
    const size_t in_stride = (size_t)in->width * 3, out_stride = (size_t)rs->out_w * 3;
    for (int first = a; first < b; first += 8) {
        const int rows = b - first < 8 ? b - first : 8;
        const uint8_t *src[8];
        uint8_t *out[8];
        for (int r = 0; r < 8; r++) {
            const int rr = r < rows ? r : rows - 1; /* a short group repeats its last row */
            src[r] = in->rgb + (size_t)(first + rr) * in_stride;
            out[r] = dst + (size_t)(first - a + rr) * out_stride;
        }
        interleave8(src, in->width, tin);
        memset(tin + (size_t)in->width * 8, 0, sizeof(uint32_t) * 8 * (size_t)rs->h.max_n);
        horiz_rows8_simd(tin, tout, &rs->h);
        deinterleave8(tout, rs->out_w, out, rows);
    }
}

/* The input rows [first, last) the vertical pass reads for output rows [y0, y1). */
static void input_rows(const vlm_resampler *rs, int y0, int y1, int *first, int *last) {
    *first = rs->v.bounds[2 * y0];
    *last = *first;
    for (int yy = y0; yy < y1; yy++) {
        const int end = rs->v.bounds[2 * yy] + rs->v.bounds[2 * yy + 1];
        if (end > *last) *last = end;
        if (rs->v.bounds[2 * yy] < *first) *first = rs->v.bounds[2 * yy];
    }
}

size_t vlm_resampler_scratch(const vlm_resampler *rs, int strip) {
    size_t rows = 0;
    if (rs->need_h && rs->need_v)
        for (int y0 = 0; y0 < rs->out_h; y0 += strip) {
            int first, last;
            input_rows(rs, y0, y0 + strip < rs->out_h ? y0 + strip : rs->out_h, &first, &last);
            if ((size_t)(last - first) > rows) rows = (size_t)(last - first);
        }
    return ((size_t)rs->in_w + (size_t)rs->h.max_n + (size_t)rs->out_w) * 8 * sizeof(uint32_t) +
        rows * (size_t)rs->out_w * 3 + 64;
}

void vlm_resampler_rows(const vlm_resampler *rs, const vlm_image *in, int y0, int y1, uint8_t *dst, void *scratch) {
    const size_t out_stride = (size_t)rs->out_w * 3;
    uint32_t *tin = scratch, *tout = tin + ((size_t)rs->in_w + (size_t)rs->h.max_n) * 8;
    uint8_t *tmp = (uint8_t *)(tout + (size_t)rs->out_w * 8);
    if (!rs->need_v) {
        if (rs->need_h) horiz_rows(rs, in, y0, y1, dst, tin, tout);
        else memcpy(dst, in->rgb + (size_t)y0 * out_stride, (size_t)(y1 - y0) * out_stride);
        return;
    }
    const uint8_t *src = in->rgb; /* no horizontal pass: the vertical one reads the input itself */
    int offset = 0;
    if (rs->need_h) {
        int first, last;
        input_rows(rs, y0, y1, &first, &last);
        horiz_rows(rs, in, first, last, tmp, tin, tout);
        src = tmp;
        offset = first;
    }
    for (int yy = y0; yy < y1; yy++)
        vert_row_simd(src, out_stride, rs->v.bounds[2 * yy] - offset, rs->v.bounds[2 * yy + 1],
                      rs->v.k + (size_t)yy * rs->v.ksize, dst + (size_t)(yy - y0) * out_stride, out_stride);
}
