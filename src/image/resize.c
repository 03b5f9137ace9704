/* Pillow's BICUBIC resize of an 8-bit RGB image, bit for bit (Pillow 9.4, libImaging/Resample.c).
 *
 * Per axis: scale = in/out, filterscale = max(scale, 1), support = 2·filterscale; output pixel i
 * has center (i + 0.5)·scale and taps int(center − support + 0.5) .. int(center + support + 0.5)
 * clamped to the image, weights cubic((tap − center + 0.5)/filterscale) with a = −0.5, normalized to
 * sum 1 in double, then rounded half away from zero to 22 fractional bits. A pass accumulates
 * pixel·weight in int32 starting at 1 << 21 and stores clip(sum >> 22) as 8 bits. The horizontal
 * pass runs first, over the input rows the vertical pass uses; a pass whose size does not change is
 * skipped (when both are, the result is a copy).
 *
 * Integer sums are exact in any order, so the SIMD passes below (SSE4.1 per output pixel
 * horizontally, AVX2 over 16 bytes vertically) equal the scalar reference exactly; both are kept and
 * compared by the tests. The coefficient tables are built once per axis. */
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "base/memory.h"
#include "image/preprocess.h"

enum { PRECISION_BITS = 32 - 8 - 2 };

typedef struct {
    int out_size, ksize;
    int *bounds; /* [out_size][2]: first tap, number of taps */
    int32_t *k;  /* [out_size][ksize]: fixed-point weights, zero past the tap count */
} axis_coeffs;

static double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

static void axis_free(axis_coeffs *a) {
    vlm_free(a->bounds);
    vlm_free(a->k);
    a->bounds = NULL;
    a->k = NULL;
}

/* precompute_coeffs + normalize_coeffs_8bpc of Resample.c, in the same double operations. */
static vlm_status axis_init(axis_coeffs *a, int in_size, int out_size) {
    memset(a, 0, sizeof *a);
    double scale = (double)(float)in_size / out_size, filterscale = scale;
    if (filterscale < 1.0) filterscale = 1.0;
    const double support = 2.0 * filterscale;
    const int ksize = (int)ceil(support) * 2 + 1;
    a->out_size = out_size;
    a->ksize = ksize;
    a->bounds = vlm_alloc(sizeof(int) * 2 * (size_t)out_size, "resize bounds");
    a->k = vlm_alloc(sizeof(int32_t) * (size_t)ksize * (size_t)out_size, "resize coefficients");
    double *w = vlm_alloc(sizeof(double) * (size_t)ksize, "resize weights");
    if (!a->bounds || !a->k || !w) {
        vlm_free(w);
        axis_free(a);
        return VLM_ERR_NOMEM;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = 0.0 + (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        if (xmax > ksize) xmax = ksize; /* cannot happen; keeps the table in bounds */
        if (xmax < 0) xmax = 0;
        for (int x = 0; x < xmax; x++) {
            double v = bicubic_filter((x + xmin - center + 0.5) * ss);
            w[x] = v;
            ww += v;
        }
        for (int x = 0; x < xmax; x++)
            if (ww != 0.0) w[x] /= ww;
        int32_t *k = a->k + (size_t)xx * ksize;
        for (int x = 0; x < ksize; x++) {
            double v = x < xmax ? w[x] : 0.0;
            k[x] = v < 0 ? (int32_t)(-0.5 + v * (1 << PRECISION_BITS)) : (int32_t)(0.5 + v * (1 << PRECISION_BITS));
        }
        a->bounds[2 * xx] = xmin;
        a->bounds[2 * xx + 1] = xmax;
    }
    vlm_free(w);
    return VLM_OK;
}

static inline uint8_t clip8(int32_t v) {
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

/* ---- scalar reference: Resample.c's loops ---- */

static void horiz_row_ref(const uint8_t *src, uint8_t *dst, const axis_coeffs *a) {
    for (int xx = 0; xx < a->out_size; xx++) {
        const int xmin = a->bounds[2 * xx], n = a->bounds[2 * xx + 1];
        const int32_t *k = a->k + (size_t)xx * a->ksize;
        int32_t s0 = 1 << (PRECISION_BITS - 1), s1 = s0, s2 = s0;
        for (int x = 0; x < n; x++) {
            const uint8_t *p = src + (size_t)(x + xmin) * 3;
            s0 += p[0] * k[x];
            s1 += p[1] * k[x];
            s2 += p[2] * k[x];
        }
        dst[3 * xx] = clip8(s0);
        dst[3 * xx + 1] = clip8(s1);
        dst[3 * xx + 2] = clip8(s2);
    }
}

/* out row yy from rows of src (stride bytes apart, first row = the one bounds count from). */
static void vert_row_ref(const uint8_t *src, size_t stride, int ymin, int n, const int32_t *k, uint8_t *dst,
                         size_t nbytes) {
    for (size_t i = 0; i < nbytes; i++) {
        int32_t s = 1 << (PRECISION_BITS - 1);
        for (int y = 0; y < n; y++) s += src[(size_t)(y + ymin) * stride + i] * k[y];
        dst[i] = clip8(s);
    }
}

/* ---- SIMD passes ---- */

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

/* 8 RGB pixels (24 bytes; the next 4 must be readable) → 8 RGBX dwords */
static inline __m256i load8_rgb(const uint8_t *p) {
    const __m256i shuf = _mm256_setr_epi8(0, 1, 2, -1, 3, 4, 5, -1, 6, 7, 8, -1, 9, 10, 11, -1, 0, 1, 2, -1, 3, 4, 5,
                                          -1, 6, 7, 8, -1, 9, 10, 11, -1);
    __m256i v = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(p + 12)), _mm_loadu_si128((const __m128i *)p));
    return _mm256_shuffle_epi8(v, shuf);
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
        for (int r = 0; r < 8; r++) v[r] = load8_rgb(rows[r] + (size_t)x * 3);
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

static void horiz_rows8_simd(const uint32_t *tin, uint32_t *tout, const axis_coeffs *a) {
    const __m256i init = _mm256_set1_epi32(1 << (PRECISION_BITS - 1)), ff = _mm256_set1_epi32(255);
    const __m256i zero = _mm256_setzero_si256();
    for (int xx = 0; xx < a->out_size; xx++) {
        const int n = a->bounds[2 * xx + 1];
        const __m256i *src = (const __m256i *)(tin + (size_t)a->bounds[2 * xx] * 8);
        const int32_t *k = a->k + (size_t)xx * a->ksize;
        __m256i r = init, g = init, b = init;
        for (int t = 0; t < n; t++) {
            const __m256i v = _mm256_load_si256(src + t), kv = _mm256_set1_epi32(k[t]);
            r = _mm256_add_epi32(r, _mm256_mullo_epi32(_mm256_and_si256(v, ff), kv));
            g = _mm256_add_epi32(g, _mm256_mullo_epi32(_mm256_and_si256(_mm256_srli_epi32(v, 8), ff), kv));
            b = _mm256_add_epi32(b, _mm256_mullo_epi32(_mm256_srli_epi32(v, 16), kv));
        }
        r = _mm256_max_epi32(_mm256_min_epi32(_mm256_srai_epi32(r, PRECISION_BITS), ff), zero);
        g = _mm256_max_epi32(_mm256_min_epi32(_mm256_srai_epi32(g, PRECISION_BITS), ff), zero);
        b = _mm256_max_epi32(_mm256_min_epi32(_mm256_srai_epi32(b, PRECISION_BITS), ff), zero);
        __m256i px = _mm256_or_si256(r, _mm256_or_si256(_mm256_slli_epi32(g, 8), _mm256_slli_epi32(b, 16)));
        _mm256_store_si256((__m256i *)(tout + (size_t)xx * 8), px);
    }
}

static void vert_row_simd(const uint8_t *src, size_t stride, int ymin, int n, const int32_t *k, uint8_t *dst,
                          size_t nbytes) {
    const uint8_t *base = src + (size_t)ymin * stride;
    size_t i = 0;
    for (; i + 16 <= nbytes; i += 16) {
        __m256i a0 = _mm256_set1_epi32(1 << (PRECISION_BITS - 1)), a1 = a0;
        for (int y = 0; y < n; y++) {
            __m128i p = _mm_loadu_si128((const __m128i *)(base + (size_t)y * stride + i));
            __m256i kk = _mm256_set1_epi32(k[y]);
            a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(p), kk));
            a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(p, 8)), kk));
        }
        a0 = _mm256_srai_epi32(a0, PRECISION_BITS);
        a1 = _mm256_srai_epi32(a1, PRECISION_BITS);
        __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(a0, a1), 0xD8); /* a0[0..7], a1[0..7] */
        __m256i b8 = _mm256_packus_epi16(w16, w16);
        __m128i lo = _mm256_castsi256_si128(b8), hi = _mm256_extracti128_si256(b8, 1);
        _mm_storeu_si128((__m128i *)(dst + i), _mm_unpacklo_epi64(lo, hi));
    }
    if (i < nbytes) vert_row_ref(src + i, stride, ymin, n, k, dst + i, nbytes - i);
}

/* ---- the two passes ---- */

/* Rows [y0, y0 + n) of in → rows [0, n) of out (out->width = a->out_size). */
static vlm_status horizontal_pass(const vlm_image *in, int y0, int n, const axis_coeffs *a, vlm_image *out, int simd) {
    VLM_TRY(vlm_image_alloc(out, a->out_size, n));
    const size_t in_stride = (size_t)in->width * 3, out_stride = (size_t)a->out_size * 3;
    const long work = (long)n * a->out_size * a->ksize;
    if (!simd) {
#pragma omp parallel for schedule(static) if (work > 200000)
        for (int y = 0; y < n; y++)
            horiz_row_ref(in->rgb + (size_t)(y0 + y) * in_stride, out->rgb + (size_t)y * out_stride, a);
        return VLM_OK;
    }
    /* per-thread interleaved rows: in->width + out_size columns of 8 dwords */
    const int nthreads = work > 200000 ? omp_get_max_threads() : 1;
    const size_t per = ((size_t)in->width + (size_t)a->out_size) * 8;
    uint32_t *scratch = vlm_alloc(per * sizeof(uint32_t) * (size_t)nthreads, "resize scratch");
    if (!scratch) {
        vlm_image_free(out);
        return VLM_ERR_NOMEM;
    }
    const int groups = (n + 7) / 8;
#pragma omp parallel for schedule(static) num_threads(nthreads)
    for (int g = 0; g < groups; g++) {
        uint32_t *tin = scratch + per * (size_t)omp_get_thread_num(), *tout = tin + (size_t)in->width * 8;
        const int first = g * 8, rows = n - first < 8 ? n - first : 8;
        const uint8_t *src[8];
        uint8_t *dst[8];
        for (int r = 0; r < 8; r++) {
            const int rr = r < rows ? r : rows - 1;
            src[r] = in->rgb + (size_t)(y0 + first + rr) * in_stride;
            dst[r] = out->rgb + (size_t)(first + rr) * out_stride;
        }
        interleave8(src, in->width, tin);
        horiz_rows8_simd(tin, tout, a);
        deinterleave8(tout, a->out_size, dst, rows);
    }
    vlm_free(scratch);
    return VLM_OK;
}

/* out->height = a->out_size; the bounds count rows of `in` from row_offset. */
static vlm_status vertical_pass(const vlm_image *in, int row_offset, const axis_coeffs *a, vlm_image *out, int simd) {
    VLM_TRY(vlm_image_alloc(out, in->width, a->out_size));
    const size_t stride = (size_t)in->width * 3;
    const long work = (long)a->out_size * in->width * a->ksize;
#pragma omp parallel for schedule(static) if (work > 200000)
    for (int yy = 0; yy < a->out_size; yy++) {
        const int ymin = a->bounds[2 * yy] - row_offset, n = a->bounds[2 * yy + 1];
        const int32_t *k = a->k + (size_t)yy * a->ksize;
        uint8_t *dst = out->rgb + (size_t)yy * stride;
        if (simd) vert_row_simd(in->rgb, stride, ymin, n, k, dst, stride);
        else vert_row_ref(in->rgb, stride, ymin, n, k, dst, stride);
    }
    return VLM_OK;
}

static vlm_status resize(const vlm_image *in, int out_w, int out_h, vlm_image *out, int simd) {
    out->rgb = NULL;
    out->width = out->height = 0;
    if (!in->rgb || in->width <= 0 || in->height <= 0)
        return vlm_err(VLM_ERR_INVALID, "resize: empty input image (%dx%d)", in->width, in->height);
    if (out_w <= 0 || out_h <= 0) return vlm_err(VLM_ERR_INVALID, "resize: bad output size %dx%d", out_w, out_h);
    const int need_h = out_w != in->width, need_v = out_h != in->height;
    if (!need_h && !need_v) { /* Pillow returns a copy */
        VLM_TRY(vlm_image_alloc(out, in->width, in->height));
        memcpy(out->rgb, in->rgb, (size_t)in->width * in->height * 3);
        return VLM_OK;
    }
    axis_coeffs ah = {0}, av = {0};
    vlm_status s = VLM_OK;
    if (need_h) s = axis_init(&ah, in->width, out_w);
    if (s == VLM_OK && need_v) s = axis_init(&av, in->height, out_h);
    if (s != VLM_OK) goto done;
    if (!need_v) {
        s = horizontal_pass(in, 0, in->height, &ah, out, simd);
    } else if (!need_h) {
        s = vertical_pass(in, 0, &av, out, simd);
    } else {
        /* only the rows the vertical pass reads go through the horizontal pass */
        const int first = av.bounds[0], last = av.bounds[2 * (out_h - 1)] + av.bounds[2 * (out_h - 1) + 1];
        vlm_image tmp;
        s = horizontal_pass(in, first, last - first, &ah, &tmp, simd);
        if (s == VLM_OK) s = vertical_pass(&tmp, first, &av, out, simd);
        vlm_image_free(&tmp);
    }
done:
    axis_free(&ah);
    axis_free(&av);
    if (s != VLM_OK) return vlm_err_ctx(s, "resizing %dx%d to %dx%d", in->width, in->height, out_w, out_h);
    return VLM_OK;
}

vlm_status vlm_image_resize_bicubic(const vlm_image *in, int out_w, int out_h, vlm_image *out) {
    return resize(in, out_w, out_h, out, 1);
}

vlm_status vlm_image_resize_bicubic_ref(const vlm_image *in, int out_w, int out_h, vlm_image *out) {
    return resize(in, out_w, out_h, out, 0);
}
