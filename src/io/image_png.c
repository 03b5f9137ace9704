/* PNG through libpng, giving the pixels Pillow 9.4 gives (it has its own PNG reader; PNG is lossless,
 * so only the mode conversions matter): samples are read raw (no gamma, no tRNS expansion, palette
 * indices unexpanded) and converted as Pillow's modes convert to RGB:
 *   gray 1/2/4/8 (modes "1", "L" with L;2 ×85, L;4 ×17)  → replicated
 *   gray 16 (mode "I")                                    → clipped to 0..255, not rescaled
 *   gray+alpha, RGB, RGBA (8 or 16 bit)                   → alpha dropped, 16-bit samples keep the high byte
 *   palette (mode "P")                                    → PLTE colour; indices past the PLTE entries get
 *                                                           Pillow's default palette entry (i, i, i)
 * Pillow-compatible checks: the CRC of every chunk before the first IDAT is verified (Pillow raises
 * "broken PNG file" on a mismatch), IDAT and later CRCs are not (Pillow does not read them). A file
 * whose image data ends early is refused ("image file is truncated"); one that ends after the last
 * row's data (no zlib trailer, no IEND) is accepted, as Pillow accepts it.
 * EXIF orientation comes from the metadata Pillow's getexif() reads for a PNG: an eXIf chunk or a tEXt
 * "exif" (whichever is last), else a "Raw profile type exif" text, else "tiff:Orientation" in an
 * "XML:com.adobe.xmp" text. */
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "base/memory.h"
#include "io/image_internal.h"

enum { PNG_TEXT_MAX = 1 << 20 }; /* Pillow's MAX_TEXT_CHUNK (ImageFile.SAFEBLOCK) */

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int is_cid(const uint8_t *t) {
    for (int i = 0; i < 4; i++) {
        uint8_t c = t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return 0;
    }
    return 1;
}

/* ---- metadata: where the EXIF orientation comes from ---- */

typedef struct {
    int exif_set, exif_orient; /* info["exif"]: from eXIf or tEXt "exif" (the last one wins) */
    int raw_set, raw_orient;   /* info["Raw profile type exif"] */
    int xmp_set, xmp_orient;   /* info["XML:com.adobe.xmp"] */
    int nomem;                 /* a buffer for a text chunk could not be allocated */
} png_meta;

/* Text of a tEXt / zTXt / iTXt chunk for one of the keys we read: *out (malloc'ed) and *key_id
 * (1 exif, 2 raw profile, 3 xmp). 0 when the chunk is something else or unreadable. */
static int inflate_capped(const uint8_t *src, size_t n, uint8_t **out, size_t *out_len, int *nomem) {
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit(&z) != Z_OK) return 0;
    uint8_t *buf = vlm_alloc(PNG_TEXT_MAX + 1, "a compressed PNG text chunk");
    if (!buf) {
        inflateEnd(&z);
        *nomem = 1;
        return 0;
    }
    z.next_in = (Bytef *)src;
    z.avail_in = (uInt)n;
    z.next_out = buf;
    z.avail_out = PNG_TEXT_MAX + 1;
    int r = inflate(&z, Z_FINISH);
    size_t got = (size_t)(z.next_out - buf);
    inflateEnd(&z);
    if ((r != Z_STREAM_END && r != Z_BUF_ERROR) || got > PNG_TEXT_MAX) { /* error or too large: Pillow fails */
        free(buf);
        return 0;
    }
    buf[got] = 0;
    *out = buf;
    *out_len = got;
    return 1;
}

static int key_id(const uint8_t *k, size_t n) {
    if (n == 4 && !memcmp(k, "exif", 4)) return 1;
    if (n == 21 && !memcmp(k, "Raw profile type exif", 21)) return 2;
    if (n == 17 && !memcmp(k, "XML:com.adobe.xmp", 17)) return 3;
    return 0;
}

/* ImageMagick's hex form: lines 4.. of the text are hex digits (whitespace ignored). */
static int raw_profile_orientation(const uint8_t *v, size_t n, int *nomem) {
    size_t i = 0;
    for (int nl = 0; i < n && nl < 3; i++)
        if (v[i] == '\n') nl++;
    uint8_t *bin = vlm_alloc(n / 2 + 1, "a PNG raw EXIF profile");
    if (!bin) {
        *nomem = 1;
        return 0;
    }
    size_t m = 0;
    int hi = -1, ok = 1;
    for (; i < n; i++) {
        int c = v[i], d;
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f') {
            if (hi >= 0) ok = 0; /* whitespace inside a byte: bytes.fromhex raises */
            continue;
        }
        if (c >= '0' && c <= '9') d = c - '0';
        else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
        else {
            ok = 0;
            break;
        }
        if (hi < 0) hi = d;
        else bin[m++] = (uint8_t)(hi << 4 | d), hi = -1;
    }
    int o = ok && hi < 0 ? vlm_exif_orientation(bin, m) : 0;
    free(bin);
    return o;
}

/* re.search(r'tiff:Orientation(="|>)([0-9])', xmp) */
static int xmp_orientation(const uint8_t *v, size_t n) {
    static const char pat[] = "tiff:Orientation";
    const size_t pn = sizeof pat - 1;
    for (size_t i = 0; i + pn < n; i++) {
        if (memcmp(v + i, pat, pn) != 0) continue;
        size_t j = i + pn;
        if (j + 1 < n && v[j] == '>' && v[j + 1] >= '0' && v[j + 1] <= '9') return v[j + 1] - '0';
        if (j + 2 < n && v[j] == '=' && v[j + 1] == '"' && v[j + 2] >= '0' && v[j + 2] <= '9') return v[j + 2] - '0';
    }
    return 0;
}

static void meta_text(png_meta *m, int id, int raw_bytes, const uint8_t *v, size_t n) {
    if (id == 1) {
        /* only a tEXt value is bytes; a compressed one is a str that Pillow's Exif cannot load */
        m->exif_set = 1;
        m->exif_orient = raw_bytes ? vlm_exif_orientation(v, n) : 0;
    } else if (id == 2) {
        m->raw_set = 1;
        m->raw_orient = raw_profile_orientation(v, n, &m->nomem);
    } else if (id == 3) {
        m->xmp_set = 1;
        m->xmp_orient = xmp_orientation(v, n);
    }
}

static void meta_chunk(png_meta *m, const uint8_t *type, const uint8_t *d, size_t n) {
    if (!memcmp(type, "eXIf", 4)) {
        m->exif_set = 1;
        m->exif_orient = vlm_exif_orientation(d, n);
        return;
    }
    int text = !memcmp(type, "tEXt", 4), ztxt = !memcmp(type, "zTXt", 4), itxt = !memcmp(type, "iTXt", 4);
    if (!text && !ztxt && !itxt) return;
    const uint8_t *z = memchr(d, 0, n);
    size_t kn = z ? (size_t)(z - d) : n;
    int id = key_id(d, kn);
    if (!id) return;
    const uint8_t *v = z ? z + 1 : d + n;
    size_t vn = (size_t)(d + n - v);
    if (text) {
        meta_text(m, id, 1, v, vn);
    } else if (ztxt) {
        uint8_t *u;
        size_t un;
        if (vn >= 1 && v[0] == 0 && inflate_capped(v + 1, vn - 1, &u, &un, &m->nomem)) {
            meta_text(m, id, 0, u, un);
            free(u);
        }
    } else { /* iTXt: flag, method, language\0, translated keyword\0, text */
        if (vn < 2) return;
        int cf = v[0], cm = v[1];
        const uint8_t *p = v + 2, *end = d + n;
        for (int i = 0; i < 2; i++) {
            const uint8_t *q = memchr(p, 0, (size_t)(end - p));
            if (!q) return;
            p = q + 1;
        }
        if (!cf) meta_text(m, id, 0, p, (size_t)(end - p));
        else if (cm == 0) {
            uint8_t *u;
            size_t un;
            if (inflate_capped(p, (size_t)(end - p), &u, &un, &m->nomem)) {
                meta_text(m, id, 0, u, un);
                free(u);
            }
        }
    }
}

/* Walks the chunks: CRCs up to the first IDAT (Pillow's _open), metadata everywhere (its load_end
 * reads the chunks after the image data, stopping quietly at the first malformed one). */
static vlm_status scan_chunks(const uint8_t *data, size_t size, const char *name, png_meta *m) {
    size_t pos = 8;
    int seen_idat = 0;
    memset(m, 0, sizeof *m);
    for (;;) {
        if (size - pos < 8) {
            if (seen_idat) return VLM_OK;
            return vlm_err(VLM_ERR_FORMAT, "%s: image file is truncated (PNG ends before its image data)", name);
        }
        uint32_t len = be32(data + pos);
        const uint8_t *type = data + pos + 4;
        if (!is_cid(type) || len > 0x7fffffffu) {
            if (seen_idat) return VLM_OK;
            return vlm_err(VLM_ERR_FORMAT, "%s: broken PNG file (invalid chunk header at offset %zu)", name, pos);
        }
        int idat = !memcmp(type, "IDAT", 4);
        if (!seen_idat && idat) seen_idat = 1;
        if (size - pos - 8 < (size_t)len + (seen_idat ? 0 : 4)) {
            if (seen_idat) return VLM_OK;
            return vlm_err(VLM_ERR_FORMAT, "%s: image file is truncated (PNG chunk %.4s at offset %zu is cut off)",
                           name, (const char *)type, pos);
        }
        const uint8_t *d = data + pos + 8;
        if (!seen_idat) {
            uint32_t crc = (uint32_t)crc32(crc32(0L, type, 4), d, len);
            if (crc != be32(d + len))
                return vlm_err(VLM_ERR_FORMAT, "%s: broken PNG file (bad checksum in chunk %.4s)", name,
                               (const char *)type);
        }
        if (!memcmp(type, "IEND", 4)) return VLM_OK;
        if (!idat) meta_chunk(m, type, d, len);
        if (m->nomem) return vlm_err_ctx(VLM_ERR_NOMEM, "%s: reading its metadata", name);
        if (size - pos - 8 - len < 4) return VLM_OK;
        pos += 12 + (size_t)len;
    }
}

static int meta_orientation(const png_meta *m) {
    int o = m->exif_set ? m->exif_orient : m->raw_set ? m->raw_orient : 0;
    if (!o && m->xmp_set) o = m->xmp_orient; /* XMP only when the EXIF data has no orientation */
    return o;
}

/* ---- pixels ---- */

/* libpng's progressive reader is fed the whole file: like Pillow's incremental decoder, it hands over
 * each row as soon as its data has arrived, so a file that ends early is judged by the rows it
 * completed, not by where libpng wanted to read ahead. */
typedef struct {
    png_structp png;
    png_infop info;
    const char *name;
    long long max_pixels;
    vlm_image_info *iinfo;
    vlm_status status; /* set before a png_error raised by our own callbacks */
    char msg[512];
    char warning[256];            /* libpng's last warning (benign errors are warnings: Pillow reads on too) */
    int color, depth, interlaced; /* from IHDR (before png_set_packing) */
    long rows_done, rows_expected;
    uint8_t *raw; /* interlaced: the whole raw image, combined pass by pass */
    size_t rowbytes;
    vlm_image img;
    uint8_t pal[256][3];
} png_ctx;

static void on_error(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    if (c->status == VLM_OK) snprintf(c->msg, sizeof c->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void on_warning(png_structp png, png_const_charp msg) {
    png_ctx *c = png_get_error_ptr(png);
    snprintf(c->warning, sizeof c->warning, "%s", msg);
}

/* Fails from inside a callback with a vlm error already recorded. */
static void fail(png_ctx *c, vlm_status s) {
    c->status = s;
    snprintf(c->msg, sizeof c->msg, "%s", vlm_last_error());
    png_error(c->png, "callback failed");
}

/* One raw row (after png_set_packing) → RGB, as Pillow's mode conversion does. */
static void convert_row(const png_ctx *c, int color, int depth, const uint8_t *in, uint8_t *out, int w) {
    switch (color) {
    case PNG_COLOR_TYPE_GRAY:
        if (depth == 16) {
            for (int x = 0; x < w; x++, in += 2, out += 3) {
                unsigned v = (unsigned)in[0] << 8 | in[1];
                out[0] = out[1] = out[2] = (uint8_t)(v > 255 ? 255 : v); /* mode I → RGB clips */
            }
        } else {
            int mul = depth == 1 ? 255 : depth == 2 ? 85 : depth == 4 ? 17 : 1;
            for (int x = 0; x < w; x++, out += 3) out[0] = out[1] = out[2] = (uint8_t)(in[x] * mul);
        }
        break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: {
        int step = depth == 16 ? 4 : 2;
        for (int x = 0; x < w; x++, in += step, out += 3) out[0] = out[1] = out[2] = in[0];
        break;
    }
    case PNG_COLOR_TYPE_RGB:
    case PNG_COLOR_TYPE_RGB_ALPHA: {
        int ch = color == PNG_COLOR_TYPE_RGB ? 3 : 4, b = depth == 16 ? 2 : 1, step = ch * b;
        if (step == 3) {
            memcpy(out, in, (size_t)w * 3);
            break;
        }
        for (int x = 0; x < w; x++, in += step, out += 3) {
            out[0] = in[0];
            out[1] = in[b];
            out[2] = in[2 * b];
        }
        break;
    }
    case PNG_COLOR_TYPE_PALETTE:
        for (int x = 0; x < w; x++, out += 3) memcpy(out, c->pal[in[x]], 3);
        break;
    }
}

static const char *pil_mode(int color, int depth) {
    switch (color) {
    case PNG_COLOR_TYPE_GRAY: return depth == 1 ? "1" : depth == 16 ? "I" : "L";
    case PNG_COLOR_TYPE_GRAY_ALPHA: return depth == 16 ? "RGBA" : "LA";
    case PNG_COLOR_TYPE_RGB: return "RGB";
    case PNG_COLOR_TYPE_RGB_ALPHA: return "RGBA";
    default: return "P";
    }
}

static void on_info(png_structp png, png_infop pi) {
    png_ctx *c = png_get_progressive_ptr(png);
    if (c->img.rgb) {
        /* libpng calls this again when a chunk interrupts the image data (IDAT, eXIf, IDAT): the
         * image is already set up, so stop here, as Pillow's reader stops at the end of the first
         * run of IDATs (what decoded by then is judged as a file ending there) */
        snprintf(c->msg, sizeof c->msg, "the image data is interrupted by another chunk");
        png_longjmp(png, 1);
    }
    png_uint_32 w, h;
    int depth, color, interlace;
    png_get_IHDR(png, pi, &w, &h, &depth, &color, &interlace, NULL, NULL);
    vlm_status s = vlm_image_check_size(c->name, "PNG", (long long)w, (long long)h, c->max_pixels);
    if (s != VLM_OK) fail(c, s);
    c->color = color;
    c->depth = depth;
    c->interlaced = interlace != PNG_INTERLACE_NONE;
    snprintf(c->iinfo->mode, sizeof c->iinfo->mode, "%s", pil_mode(color, depth));
    c->iinfo->file_width = (int)w;
    c->iinfo->file_height = (int)h;
    if (color == PNG_COLOR_TYPE_PALETTE) {
        for (int i = 0; i < 256; i++) c->pal[i][0] = c->pal[i][1] = c->pal[i][2] = (uint8_t)i;
        png_colorp plte;
        int n = 0;
        if (png_get_PLTE(png, pi, &plte, &n) != PNG_INFO_PLTE || n <= 0) {
            vlm_err(VLM_ERR_FORMAT, "%s: palette PNG without a PLTE chunk", c->name);
            fail(c, VLM_ERR_FORMAT);
        }
        for (int i = 0; i < n && i < 256; i++) {
            c->pal[i][0] = plte[i].red;
            c->pal[i][1] = plte[i].green;
            c->pal[i][2] = plte[i].blue;
        }
    }
    if (depth < 8) png_set_packing(png);
    (void)png_set_interlace_handling(png);
    png_read_update_info(png, pi);
    c->rowbytes = png_get_rowbytes(png, pi);
    size_t need = (size_t)w * (depth == 16 ? 2 : 1) * (size_t)png_get_channels(png, pi);
    if (c->rowbytes < need) {
        vlm_err(VLM_ERR_FORMAT, "%s: libpng row size %zu is too small", c->name, c->rowbytes);
        fail(c, VLM_ERR_FORMAT);
    }
    s = vlm_image_alloc(&c->img, (int)w, (int)h);
    if (s != VLM_OK) fail(c, s);
    c->rows_expected = 0;
    if (!c->interlaced) c->rows_expected = (long)h;
    else
        for (int p = 0; p < 7; p++)
            if (PNG_PASS_COLS(w, p) > 0) c->rows_expected += (long)PNG_PASS_ROWS(h, p);
    if (c->interlaced) { /* the passes fill one raw image, converted at the end */
        if (c->rowbytes > SIZE_MAX / h) {
            vlm_err(VLM_ERR_NOMEM, "%s: PNG too large", c->name);
            fail(c, VLM_ERR_NOMEM);
        }
        c->raw = vlm_calloc(h, c->rowbytes, "interlaced PNG image");
        if (!c->raw) fail(c, VLM_ERR_NOMEM);
    }
}

static void on_row(png_structp png, png_bytep row, png_uint_32 y, int pass) {
    png_ctx *c = png_get_progressive_ptr(png);
    if (!row || y >= (png_uint_32)c->img.height) return; /* no new data for this row in this pass */
    if (c->interlaced) {
        /* libpng also hands a pass's row to the rows below it ("blocky" progressive display, later
         * passes overwrite those pixels); only rows the pass owns count as decoded */
        png_progressive_combine_row(png, c->raw + (size_t)y * c->rowbytes, row);
        if (PNG_ROW_IN_INTERLACE_PASS(y, pass)) c->rows_done++;
    } else {
        convert_row(c, c->color, c->depth, row, c->img.rgb + (size_t)y * c->img.width * 3, c->img.width);
        c->rows_done++;
    }
}

vlm_status vlm_png_decode(const uint8_t *data, size_t size, const char *name, long long max_pixels, vlm_image *out,
                          vlm_image_info *info) {
    png_meta meta;
    VLM_TRY(scan_chunks(data, size, name, &meta));
    png_ctx *c = vlm_calloc(1, sizeof *c, "PNG decoder");
    if (!c) return VLM_ERR_NOMEM;
    c->name = name;
    c->max_pixels = max_pixels;
    c->iinfo = info;
    c->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, c, on_error, on_warning);
    c->info = c->png ? png_create_info_struct(c->png) : NULL;
    vlm_status s = VLM_OK;
    if (!c->png || !c->info) {
        s = vlm_err(VLM_ERR_NOMEM, "%s: cannot create a libpng decoder", name);
    } else if (setjmp(png_jmpbuf(c->png))) {
        if (c->status != VLM_OK) s = vlm_err(c->status, "%s", c->msg);
        else if (!(c->img.rgb && c->rows_done >= c->rows_expected)) /* errors after the last row are Pillow's too */
            s = vlm_err(VLM_ERR_FORMAT, "%s: cannot decode PNG: %s", name, c->msg);
    } else {
        png_set_progressive_read_fn(c->png, c, on_info, on_row, NULL);
        png_set_crc_action(c->png, PNG_CRC_QUIET_USE, PNG_CRC_QUIET_USE); /* checked where Pillow checks them */
        png_set_benign_errors(c->png, 1);
        png_set_user_limits(c->png, 0x7fffffff, 0x7fffffff); /* our own limit is on pixels (on_info) */
        png_process_data(c->png, c->info, (png_bytep)data, size);
    }
    if (s == VLM_OK && !(c->img.rgb && c->rows_done >= c->rows_expected)) {
        if (c->warning[0]) /* libpng stopped on damaged data */
            s = vlm_err(VLM_ERR_FORMAT, "%s: cannot decode PNG: %s (after %ld of %ld rows)", name, c->warning,
                        c->rows_done, c->rows_expected);
        else
            s = vlm_err(VLM_ERR_FORMAT, "%s: image file is truncated (the PNG data ends after %ld of %ld rows)", name,
                        c->rows_done, c->rows_expected);
    }
    if (s == VLM_OK && c->interlaced)
        for (int y = 0; y < c->img.height; y++)
            convert_row(c, c->color, c->depth, c->raw + (size_t)y * c->rowbytes,
                        c->img.rgb + (size_t)y * c->img.width * 3, c->img.width);
    png_destroy_read_struct(c->png ? &c->png : NULL, c->info ? &c->info : NULL, NULL);
    vlm_free(c->raw);
    if (s == VLM_OK) {
        int o = meta_orientation(&meta);
        info->orientation = o ? o : 1;
        *out = c->img;
    } else {
        vlm_image_free(&c->img);
    }
    vlm_free(c);
    return s;
}
