/* JPEG through libjpeg-turbo, set up as Pillow 9.4's JpegDecode.c sets it up, so the pixels are
 * Pillow's: default decompression parameters (islow IDCT, fancy upsampling), output colour space by
 * component count (1 → gray, 3 → RGB, 4 → CMYK; libjpeg converts YCbCr and YCCK itself), 4-component
 * data inverted (Pillow's rawmode "CMYK;I", applied to every CMYK JPEG) and then converted with
 * Pillow's cmyk2rgb.
 *
 * Errors: libjpeg's error_exit longjmps back here with its message (it never exits). Warnings are
 * ignored as Pillow ignores them, except running out of data: Pillow raises "image file is
 * truncated" when the decoder needs bytes the file does not have before the last scanline, and so
 * do we. Running out while finishing (after every scanline, e.g. a missing EOI) is accepted, as in
 * Pillow. */
#include <setjmp.h>
#include <stdio.h>
#include <string.h>

#include <jerror.h>
#include <jpeglib.h>

#include "base/memory.h"
#include "io/image_internal.h"

typedef struct {
    struct jpeg_error_mgr pub;
    jmp_buf jump;
    char msg[JMSG_LENGTH_MAX + 64];
    int scanlines_done; /* every scanline was read: running out of data is no longer an error */
    int eof_seen;
} jpeg_err;

static void on_error_exit(j_common_ptr cinfo) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    char buf[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, buf);
    snprintf(e->msg, sizeof e->msg, "%s", buf);
    longjmp(e->jump, 1);
}

static void on_emit_message(j_common_ptr cinfo, int level) {
    jpeg_err *e = (jpeg_err *)cinfo->err;
    if (level >= 0) return; /* trace messages */
    if (cinfo->err->msg_code == JWRN_JPEG_EOF) {
        e->eof_seen = 1;
        if (!e->scanlines_done) {
            snprintf(e->msg, sizeof e->msg, "image file is truncated (the JPEG data ends before the image does)");
            longjmp(e->jump, 1);
        }
    }
    /* other warnings (corrupt entropy data, extraneous bytes, ...): Pillow ignores them */
}

static void on_output_message(j_common_ptr cinfo) { (void)cinfo; /* never print */ }

/* Pillow's MULDIV255: a·b/255 rounded, exactly as in its Convert.c */
static inline int muldiv255(int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
}

static inline uint8_t clip8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* Inverted CMYK (Pillow's "CMYK;I" unpacking) then cmyk2rgb. */
static void cmyk_row_to_rgb(const uint8_t *in, uint8_t *out, int w) {
    for (int x = 0; x < w; x++, in += 4, out += 3) {
        int c = 255 - in[0], m = 255 - in[1], y = 255 - in[2], k = 255 - in[3];
        int nk = 255 - k;
        out[0] = clip8(nk - muldiv255(c, nk));
        out[1] = clip8(nk - muldiv255(m, nk));
        out[2] = clip8(nk - muldiv255(y, nk));
    }
}

static void gray_row_to_rgb(const uint8_t *in, uint8_t *out, int w) {
    for (int x = 0; x < w; x++, out += 3) out[0] = out[1] = out[2] = in[x];
}

/* The first APP1 segment that starts with "Exif\0" (Pillow keeps the first one). */
static int exif_orientation(j_decompress_ptr cinfo) {
    for (jpeg_saved_marker_ptr m = cinfo->marker_list; m; m = m->next)
        if (m->marker == JPEG_APP0 + 1 && m->data_length >= 5 && !memcmp(m->data, "Exif\0", 5))
            return vlm_exif_orientation(m->data, m->data_length);
    return 0;
}

typedef struct {
    struct jpeg_decompress_struct cinfo;
    jpeg_err err;
    uint8_t *row; /* conversion row for gray / CMYK */
    vlm_image img;
} jpeg_ctx;

/* Everything that can longjmp is in here; ctx holds what must be freed afterwards. */
static vlm_status decode(jpeg_ctx *ctx, const uint8_t *data, size_t size, const char *name, long long max_pixels,
                         vlm_image_info *info) {
    j_decompress_ptr cinfo = &ctx->cinfo;
    jpeg_mem_src(cinfo, data, (unsigned long)size);
    jpeg_save_markers(cinfo, JPEG_APP0 + 1, 0xFFFF);
    jpeg_read_header(cinfo, TRUE);

    /* Pillow's modes by component count; it refuses anything else and non-8-bit samples */
    const char *mode;
    switch (cinfo->num_components) {
    case 1: mode = "L", cinfo->out_color_space = JCS_GRAYSCALE; break;
    case 3: mode = "RGB", cinfo->out_color_space = JCS_RGB; break;
    case 4: mode = "CMYK", cinfo->out_color_space = JCS_CMYK; break;
    default:
        return vlm_err(VLM_ERR_UNSUPPORTED, "%s: JPEG with %d components is not supported (1, 3 or 4)", name,
                       cinfo->num_components);
    }
    if (cinfo->data_precision != 8)
        return vlm_err(VLM_ERR_UNSUPPORTED, "%s: %d-bit JPEG samples are not supported (8-bit only)", name,
                       cinfo->data_precision);
    VLM_TRY(vlm_image_check_size(name, "JPEG", cinfo->image_width, cinfo->image_height, max_pixels));
    snprintf(info->mode, sizeof info->mode, "%s", mode);
    info->file_width = (int)cinfo->image_width;
    info->file_height = (int)cinfo->image_height;
    int o = exif_orientation(cinfo);
    info->orientation = o ? o : 1;

    jpeg_start_decompress(cinfo);
    const int w = (int)cinfo->output_width, h = (int)cinfo->output_height, nc = cinfo->output_components;
    if (w != (int)cinfo->image_width || h != (int)cinfo->image_height || nc != cinfo->num_components)
        return vlm_err(VLM_ERR_FORMAT, "%s: libjpeg output %dx%dx%d differs from the header", name, w, h, nc);
    VLM_TRY(vlm_image_alloc(&ctx->img, w, h));
    if (nc != 3) {
        ctx->row = vlm_alloc((size_t)w * (size_t)nc * (size_t)cinfo->rec_outbuf_height, "JPEG scanlines");
        if (!ctx->row) return VLM_ERR_NOMEM;
    }
    enum { MAX_ROWS = 16 };
    while (cinfo->output_scanline < cinfo->output_height) {
        JSAMPROW rows[MAX_ROWS];
        int first = (int)cinfo->output_scanline;
        int n = cinfo->rec_outbuf_height < MAX_ROWS ? cinfo->rec_outbuf_height : MAX_ROWS;
        if (n > h - first) n = h - first;
        for (int i = 0; i < n; i++)
            rows[i] = nc == 3 ? ctx->img.rgb + (size_t)(first + i) * w * 3 : ctx->row + (size_t)i * w * nc;
        int got = (int)jpeg_read_scanlines(cinfo, rows, (JDIMENSION)n);
        if (got <= 0) return vlm_err(VLM_ERR_FORMAT, "%s: libjpeg returned no scanlines at row %d", name, first);
        for (int i = 0; i < got && nc != 3; i++) {
            uint8_t *dst = ctx->img.rgb + (size_t)(first + i) * w * 3;
            if (nc == 1) gray_row_to_rgb(rows[i], dst, w);
            else cmyk_row_to_rgb(rows[i], dst, w);
        }
    }
    ctx->err.scanlines_done = 1;
    jpeg_finish_decompress(cinfo);
    return VLM_OK;
}

vlm_status vlm_jpeg_decode(const uint8_t *data, size_t size, const char *name, long long max_pixels, vlm_image *out,
                           vlm_image_info *info) {
    jpeg_ctx *ctx = vlm_calloc(1, sizeof *ctx, "JPEG decoder");
    if (!ctx) return VLM_ERR_NOMEM;
    ctx->cinfo.err = jpeg_std_error(&ctx->err.pub);
    ctx->err.pub.error_exit = on_error_exit;
    ctx->err.pub.emit_message = on_emit_message;
    ctx->err.pub.output_message = on_output_message;
    vlm_status s;
    if (setjmp(ctx->err.jump)) {
        s = vlm_err(VLM_ERR_FORMAT, "%s: cannot decode JPEG: %s", name, ctx->err.msg);
    } else {
        jpeg_create_decompress(&ctx->cinfo);
        s = decode(ctx, data, size, name, max_pixels, info);
    }
    jpeg_destroy_decompress(&ctx->cinfo);
    vlm_free(ctx->row);
    if (s == VLM_OK) *out = ctx->img;
    else vlm_image_free(&ctx->img);
    vlm_free(ctx);
    return s;
}
