/* EXIF orientation: the reader (IFD0 of the TIFF structure inside an EXIF block, as Pillow's Exif
 * class reads it) and the eight transposes of ImageOps.exif_transpose. */
#include <math.h>
#include <string.h>

#include "base/memory.h"
#include "io/image_internal.h"

typedef struct {
    const uint8_t *p;
    size_t n;
    int big; /* big-endian ("MM") */
} tiff;

static int rd16(const tiff *t, size_t off, uint32_t *v) {
    if (off > t->n || t->n - off < 2) return 0;
    const uint8_t *q = t->p + off;
    *v = t->big ? (uint32_t)(q[0] << 8 | q[1]) : (uint32_t)(q[1] << 8 | q[0]);
    return 1;
}

static int rd32(const tiff *t, size_t off, uint32_t *v) {
    if (off > t->n || t->n - off < 4) return 0;
    const uint8_t *q = t->p + off;
    *v = t->big ? ((uint32_t)q[0] << 24 | (uint32_t)q[1] << 16 | (uint32_t)q[2] << 8 | q[3])
                : ((uint32_t)q[3] << 24 | (uint32_t)q[2] << 16 | (uint32_t)q[1] << 8 | q[0]);
    return 1;
}

/* What Pillow's tag loader makes of an IFD entry: -1 when it skips the entry (unknown type, no data,
 * data outside the block), 0 when it stores a value that never equals an orientation number (BYTE
 * and UNDEFINED load as bytes, ASCII as str), 1 with *out = the first value otherwise. */
static int entry_value(const tiff *t, uint32_t type, uint32_t count, size_t value_off, double *out) {
    /* unit sizes of the types Pillow 9.4 registers: 1..13 and 16 (LONG8) */
    static const uint8_t unit[17] = {0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8, 4, 0, 0, 8};
    if (type > 16 || unit[type] == 0) return -1;
    uint64_t size = (uint64_t)count * unit[type];
    if (size == 0) return -1;
    size_t off = value_off;
    if (size > 4) { /* the value lives at an offset */
        uint32_t o;
        if (!rd32(t, value_off, &o)) return -1;
        if (o > t->n || t->n - o < size) return -1;
        off = o;
    }
    uint32_t a, b;
    switch (type) {
    case 1:
    case 2:
    case 7: return 0;
    case 6: *out = (int8_t)t->p[off]; return 1; /* SBYTE */
    case 3:
        if (!rd16(t, off, &a)) return -1;
        *out = a;
        return 1; /* SHORT */
    case 8:
        if (!rd16(t, off, &a)) return -1;
        *out = (int16_t)a;
        return 1; /* SSHORT */
    case 4:
    case 13:
        if (!rd32(t, off, &a)) return -1;
        *out = a;
        return 1; /* LONG, IFD */
    case 9:
        if (!rd32(t, off, &a)) return -1;
        *out = (int32_t)a;
        return 1; /* SLONG */
    case 5:
    case 10: /* RATIONAL / SRATIONAL: an IFDRational equals an int when it is one */
        if (!rd32(t, off, &a) || !rd32(t, off + 4, &b)) return -1;
        if (b == 0) return 0; /* nan */
        *out = type == 5 ? (double)a / (double)b : (double)(int32_t)a / (double)(int32_t)b;
        return 1;
    case 11: { /* FLOAT */
        if (!rd32(t, off, &a)) return -1;
        float f;
        memcpy(&f, &a, 4);
        *out = f;
        return 1;
    }
    case 12:
    case 16: { /* DOUBLE, LONG8 */
        uint32_t w0, w1;
        if (!rd32(t, off, &w0) || !rd32(t, off + 4, &w1)) return -1;
        uint64_t u = t->big ? (uint64_t)w0 << 32 | w1 : (uint64_t)w1 << 32 | w0;
        if (type == 16) *out = (double)u;
        else memcpy(out, &u, 8);
        return 1;
    }
    default: return -1;
    }
}

int vlm_exif_orientation(const uint8_t *data, size_t len) {
    if (len >= 6 && !memcmp(data, "Exif\0\0", 6)) {
        data += 6;
        len -= 6;
    }
    if (len < 8) return 0;
    tiff t = {data, len, 0};
    /* Pillow's TIFF prefixes (classic TIFF; BigTIFF EXIF blocks are not seen in practice) */
    if (!memcmp(data, "II*\0", 4) || !memcmp(data, "II\0*", 4)) t.big = 0;
    else if (!memcmp(data, "MM\0*", 4) || !memcmp(data, "MM*\0", 4)) t.big = 1;
    else return 0;
    uint32_t ifd, n;
    if (!rd32(&t, 4, &ifd) || !rd16(&t, ifd, &n)) return 0;
    int found = 0;
    double value = 0;
    for (uint32_t i = 0; i < n; i++) {
        size_t e = (size_t)ifd + 2 + (size_t)i * 12;
        uint32_t tag, type, count;
        if (!rd16(&t, e, &tag) || !rd16(&t, e + 2, &type) || !rd32(&t, e + 4, &count) || e + 12 > t.n)
            break; /* a short IFD: Pillow keeps the entries read so far */
        if (tag != 0x0112) continue;
        double v = 0;
        int r = entry_value(&t, type, count, e + 8, &v);
        if (r < 0) continue; /* skipped: an earlier entry stays */
        found = r;           /* a later duplicate replaces an earlier one, as in Pillow's tag dict */
        value = v;
    }
    if (!found || !(value >= 1 && value <= 8) || value != floor(value)) return 0;
    return (int)value;
}

/* Pixel (x, y) of the output takes input pixel (sx, sy) = (ax + bx·x + cx·y, ay + by·x + cy·y). */
vlm_status vlm_image_apply_orientation(vlm_image *img, int o) {
    if (o < 2 || o > 8) return VLM_OK;
    const int W = img->width, H = img->height;
    const int swap = o >= 5; /* TRANSPOSE, ROTATE_270, TRANSVERSE, ROTATE_90 exchange the sides */
    const int ow = swap ? H : W, oh = swap ? W : H;
    long ax = 0, bx = 0, cx = 0, ay = 0, by = 0, cy = 0;
    switch (o) {
    case 2: ax = W - 1, bx = -1, cy = 1; break;              /* FLIP_LEFT_RIGHT */
    case 3: ax = W - 1, bx = -1, ay = H - 1, cy = -1; break; /* ROTATE_180 */
    case 4: bx = 1, ay = H - 1, cy = -1; break;              /* FLIP_TOP_BOTTOM */
    case 5: cx = 1, by = 1; break;                           /* TRANSPOSE */
    case 6: cx = 1, ay = H - 1, by = -1; break;              /* ROTATE_270 (90° clockwise) */
    case 7: ax = W - 1, cx = -1, ay = H - 1, by = -1; break; /* TRANSVERSE */
    case 8: ax = W - 1, cx = -1, by = 1; break;              /* ROTATE_90 (90° counter-clockwise) */
    }
    vlm_image out;
    VLM_TRY(vlm_image_alloc(&out, ow, oh));
    const uint8_t *src = img->rgb;
    for (long y = 0; y < oh; y++) {
        uint8_t *d = out.rgb + (size_t)y * ow * 3;
        long sx = ax + cx * y, sy = ay + cy * y;
        for (long x = 0; x < ow; x++, sx += bx, sy += by) {
            const uint8_t *s = src + ((size_t)sy * W + (size_t)sx) * 3;
            d[0] = s[0];
            d[1] = s[1];
            d[2] = s[2];
            d += 3;
        }
    }
    vlm_image_free(img);
    *img = out;
    return VLM_OK;
}
