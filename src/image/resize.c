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
 * This file has the coefficient tables and the scalar reference, Resample.c's loops over whole
 * images; the fast path (resize_simd.c) works strip by strip and must equal it exactly — integer
 * sums are exact in any order — which the tests check on many sizes. */
#include <math.h>
#include <string.h>

#include "base/memory.h"
#include "image/preprocess.h"
#include "image/resample.h"

static double bicubic_filter(double x) {
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

void vlm_resample_axis_free(vlm_resample_axis *a) {
    vlm_free(a->bounds);
    vlm_free(a->k);
    a->bounds = NULL;
    a->k = NULL;
}

vlm_status vlm_resample_axis_init(vlm_resample_axis *a, int in_size, int out_size) {
    memset(a, 0, sizeof *a);
    double scale = (double)(float)in_size / out_size, filterscale = scale;
    if (filterscale < 1.0) filterscale = 1.0;
    const double support = 2.0 * filterscale;
    const int ksize = (int)ceil(support) * 2 + 1;
    a->in_size = in_size;
    a->out_size = out_size;
    a->ksize = ksize;
    a->bounds = vlm_alloc(sizeof(int) * 2 * (size_t)out_size, "resize bounds");
    a->k = vlm_alloc(sizeof(int32_t) * (size_t)ksize * (size_t)out_size, "resize coefficients");
    double *w = vlm_alloc(sizeof(double) * (size_t)ksize, "resize weights");
    if (!a->bounds || !a->k || !w) {
        vlm_free(w);
        vlm_resample_axis_free(a);
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
            k[x] =
                v < 0 ? (int32_t)(-0.5 + v * (1 << VLM_RESAMPLE_BITS)) : (int32_t)(0.5 + v * (1 << VLM_RESAMPLE_BITS));
        }
        a->bounds[2 * xx] = xmin;
        a->bounds[2 * xx + 1] = xmax;
        if (xmax > a->max_n) a->max_n = xmax;
    }
    vlm_free(w);
    return VLM_OK;
}

/* ---- scalar reference: Resample.c's loops ---- */

static inline uint8_t clip8(int32_t v) {
    v >>= VLM_RESAMPLE_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

static void horiz_row_ref(const uint8_t *src, uint8_t *dst, const vlm_resample_axis *a) {
    for (int xx = 0; xx < a->out_size; xx++) {
        const int xmin = a->bounds[2 * xx], n = a->bounds[2 * xx + 1];
        const int32_t *k = a->k + (size_t)xx * a->ksize;
        int32_t s0 = 1 << (VLM_RESAMPLE_BITS - 1), s1 = s0, s2 = s0;
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

static void vert_row_ref(const uint8_t *src, size_t stride, int ymin, int n, const int32_t *k, uint8_t *dst,
                         size_t nbytes) {
    for (size_t i = 0; i < nbytes; i++) {
        int32_t s = 1 << (VLM_RESAMPLE_BITS - 1);
        for (int y = 0; y < n; y++) s += src[(size_t)(y + ymin) * stride + i] * k[y];
        dst[i] = clip8(s);
    }
}

/* ImagingResampleInner: rows [first, last) through the horizontal pass into tmp, then the vertical
 * pass with bounds counted from `first`. */
static vlm_status resize_ref(const vlm_image *in, vlm_image *out, const vlm_resampler *rs) {
    const size_t in_stride = (size_t)in->width * 3, out_stride = (size_t)rs->out_w * 3;
    vlm_image tmp = {0};
    const vlm_image *src = in;
    int first = 0;
    if (rs->need_h) {
        int last = in->height;
        if (rs->need_v) {
            first = rs->v.bounds[0];
            last = rs->v.bounds[2 * (rs->out_h - 1)] + rs->v.bounds[2 * (rs->out_h - 1) + 1];
        }
        VLM_TRY(vlm_image_alloc(&tmp, rs->out_w, last - first));
        for (int y = 0; y < last - first; y++)
            horiz_row_ref(in->rgb + (size_t)(first + y) * in_stride, tmp.rgb + (size_t)y * out_stride, &rs->h);
        src = &tmp;
    }
    if (rs->need_v) {
        vlm_status s = vlm_image_alloc(out, rs->out_w, rs->out_h);
        if (s != VLM_OK) {
            vlm_image_free(&tmp);
            return s;
        }
        for (int yy = 0; yy < rs->out_h; yy++)
            vert_row_ref(src->rgb, out_stride, rs->v.bounds[2 * yy] - first, rs->v.bounds[2 * yy + 1],
                         rs->v.k + (size_t)yy * rs->v.ksize, out->rgb + (size_t)yy * out_stride, out_stride);
        vlm_image_free(&tmp);
    } else {
        *out = tmp;
    }
    return VLM_OK;
}

/* ---- the resampler ---- */

vlm_status vlm_resampler_init(vlm_resampler *rs, int in_w, int in_h, int out_w, int out_h) {
    memset(rs, 0, sizeof *rs);
    if (in_w <= 0 || in_h <= 0) return vlm_err(VLM_ERR_INVALID, "resize: empty input image (%dx%d)", in_w, in_h);
    if (out_w <= 0 || out_h <= 0) return vlm_err(VLM_ERR_INVALID, "resize: bad output size %dx%d", out_w, out_h);
    rs->in_w = in_w, rs->in_h = in_h, rs->out_w = out_w, rs->out_h = out_h;
    rs->need_h = out_w != in_w;
    rs->need_v = out_h != in_h;
    vlm_status s = VLM_OK;
    if (rs->need_h) s = vlm_resample_axis_init(&rs->h, in_w, out_w);
    if (s == VLM_OK && rs->need_v) s = vlm_resample_axis_init(&rs->v, in_h, out_h);
    if (s != VLM_OK) vlm_resampler_free(rs);
    return s;
}

void vlm_resampler_free(vlm_resampler *rs) {
    vlm_resample_axis_free(&rs->h);
    vlm_resample_axis_free(&rs->v);
}

typedef struct {
    const vlm_resampler *rs;
    const vlm_image *in;
    vlm_image *out;
    uint8_t *scratch;
    size_t per;
    int strip;
} resize_job;

static void resize_task(void *arg, int64_t i, int thread) {
    const resize_job *j = arg;
    const int out_h = j->out->height, out_w = j->out->width;
    const int y0 = (int)i * j->strip, y1 = y0 + j->strip < out_h ? y0 + j->strip : out_h;
    vlm_resampler_rows(j->rs, j->in, y0, y1, j->out->rgb + (size_t)y0 * out_w * 3,
                       j->scratch + j->per * (size_t)thread);
}

static vlm_status resize(const vlm_image *in, int out_w, int out_h, vlm_image *out, int simd, vlm_pool *pool) {
    out->rgb = NULL;
    out->width = out->height = 0;
    if (!in->rgb) return vlm_err(VLM_ERR_INVALID, "resize: empty input image (%dx%d)", in->width, in->height);
    vlm_resampler rs;
    VLM_TRY(vlm_resampler_init(&rs, in->width, in->height, out_w, out_h));
    vlm_status s = VLM_OK;
    if (!rs.need_h && !rs.need_v) { /* Pillow returns a copy */
        s = vlm_image_alloc(out, in->width, in->height);
        if (s == VLM_OK) memcpy(out->rgb, in->rgb, (size_t)in->width * in->height * 3);
    } else if (!simd) {
        s = resize_ref(in, out, &rs);
    } else {
        enum { STRIP = 32 };
        const int nthreads = (long)out_w * out_h > 100000 ? vlm_pool_threads(pool) : 1;
        const size_t per = (vlm_resampler_scratch(&rs, STRIP) + 63) / 64 * 64;
        uint8_t *scratch = vlm_alloc(per * (size_t)nthreads, "resize scratch");
        s = scratch ? vlm_image_alloc(out, out_w, out_h) : VLM_ERR_NOMEM;
        if (s == VLM_OK) {
            resize_job j = {.rs = &rs, .in = in, .out = out, .scratch = scratch, .per = per, .strip = STRIP};
            vlm_pool_run(pool, nthreads, (out_h + STRIP - 1) / STRIP, resize_task, &j);
        }
        vlm_free(scratch);
    }
    vlm_resampler_free(&rs);
    if (s != VLM_OK) return vlm_err_ctx(s, "resizing %dx%d to %dx%d", in->width, in->height, out_w, out_h);
    return VLM_OK;
}

vlm_status vlm_image_resize_bicubic(const vlm_image *in, int out_w, int out_h, vlm_pool *pool, vlm_image *out) {
    return resize(in, out_w, out_h, out, 1, pool);
}

vlm_status vlm_image_resize_bicubic_ref(const vlm_image *in, int out_w, int out_h, vlm_image *out) {
    return resize(in, out_w, out_h, out, 0, NULL);
}
