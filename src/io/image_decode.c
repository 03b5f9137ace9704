/* Image decoding entry points: format detection from magic bytes, the pixel limit, and the EXIF
 * orientation applied after decoding (the per-format work is in image_jpeg.c / image_png.c). */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/memory.h"
#include "io/file.h"
#include "io/image_internal.h"

vlm_image_format vlm_image_detect(const void *data, size_t size) {
    const uint8_t *p = data;
    static const uint8_t png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    /* Pillow accepts a JPEG on "\xFF\xD8\xFF" (JpegImagePlugin._accept) */
    if (size >= 3 && p[0] == 0xFF && p[1] == 0xD8 && p[2] == 0xFF) return VLM_IMAGE_FORMAT_JPEG;
    if (size >= 8 && !memcmp(p, png_sig, 8)) return VLM_IMAGE_FORMAT_PNG;
    return VLM_IMAGE_FORMAT_UNKNOWN;
}

const char *vlm_image_format_name(vlm_image_format f) {
    switch (f) {
    case VLM_IMAGE_FORMAT_JPEG: return "JPEG";
    case VLM_IMAGE_FORMAT_PNG: return "PNG";
    default: return "unknown";
    }
}

/* A few other formats by their magic, so the message can say what the file is. */
/* Video containers: MP4/MOV (ftyp with a video brand), WebM/Matroska (EBML), AVI. */
static int looks_like_video(const uint8_t *p, size_t n) {
    if (n >= 12 && !memcmp(p + 4, "ftyp", 4))
        return memcmp(p + 8, "hei", 3) != 0 && memcmp(p + 8, "mif1", 4) != 0 && memcmp(p + 8, "avif", 4) != 0;
    if (n >= 4 && !memcmp(p, "\x1a\x45\xdf\xa3", 4)) return 1;
    if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "AVI ", 4)) return 1;
    return 0;
}

static const char *guess_other(const uint8_t *p, size_t n) {
    if (n >= 6 && (!memcmp(p, "GIF87a", 6) || !memcmp(p, "GIF89a", 6))) return "GIF";
    if (n >= 2 && !memcmp(p, "BM", 2)) return "BMP";
    if (n >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4)) return "WebP";
    if (n >= 4 && (!memcmp(p, "II*\0", 4) || !memcmp(p, "MM\0*", 4))) return "TIFF";
    if (n >= 12 && !memcmp(p + 4, "ftyp", 4))
        return (!memcmp(p + 8, "hei", 3) || !memcmp(p + 8, "mif1", 4) || !memcmp(p + 8, "avif", 4)) ? "HEIF/AVIF"
                                                                                                    : NULL;
    if (n >= 4 && !memcmp(p, "\0\0\1\0", 4)) return "ICO";
    if (n >= 2 && p[0] == 'P' && p[1] >= '1' && p[1] <= '7') return "PNM";
    if (n >= 4 && !memcmp(p, "8BPS", 4)) return "PSD";
    return NULL;
}

vlm_status vlm_image_check_size(const char *name, const char *format, long long width, long long height,
                                long long max_pixels) {
    if (width <= 0 || height <= 0)
        return vlm_err(VLM_ERR_FORMAT, "%s: %s header gives an empty image (%lldx%lld)", name, format, width, height);
    if (width > max_pixels / height)
        return vlm_err(VLM_ERR_UNSUPPORTED,
                       "%s: %s image is %lldx%lld = %lld pixels, more than the limit of %lld decoded pixels "
                       "(Pillow's decompression-bomb limit by default; the caller can raise it)",
                       name, format, width, height, width * height, max_pixels);
    return VLM_OK;
}

void *vlm_image_buffer_alloc(size_t bytes, const char *what) {
    enum { HUGE = 2 << 20 };
    if (bytes < 2 * (size_t)HUGE) return vlm_alloc(bytes, what);
    void *p = vlm_alloc_aligned(bytes, HUGE, what); /* rounded up to whole huge pages */
    if (!p) return NULL;
#ifdef MADV_HUGEPAGE
    /* advice only: without THP the buffer works the same */
    (void)madvise(p, (bytes + HUGE - 1) / HUGE * HUGE, MADV_HUGEPAGE);
#endif
    return p;
}

vlm_status vlm_image_alloc(vlm_image *img, int width, int height) {
    img->width = img->height = 0;
    img->rgb = NULL;
    if (width <= 0 || height <= 0) return vlm_err(VLM_ERR_INVALID, "image size %dx%d is empty", width, height);
    size_t n = (size_t)width * (size_t)height * 3;
    img->rgb = vlm_image_buffer_alloc(n, "RGB image");
    if (!img->rgb) return VLM_ERR_NOMEM;
    img->width = width;
    img->height = height;
    return VLM_OK;
}

void vlm_image_free(vlm_image *img) {
    if (!img) return;
    vlm_free(img->rgb);
    img->rgb = NULL;
    img->width = img->height = 0;
}

vlm_status vlm_image_decode_memory(const void *data, size_t size, const char *name, long long max_pixels,
                                   vlm_image *out, vlm_image_info *info) {
    vlm_image_info local;
    if (!info) info = &local;
    memset(info, 0, sizeof *info);
    info->orientation = 1;
    out->width = out->height = 0;
    out->rgb = NULL;
    if (!name) name = "image";
    if (max_pixels <= 0) max_pixels = VLM_IMAGE_DEFAULT_MAX_PIXELS;
    if (size == 0) return vlm_err(VLM_ERR_FORMAT, "%s: the file is empty (expected a JPEG or PNG image)", name);
    vlm_image_format f = vlm_image_detect(data, size);
    vlm_status s;
    if (f == VLM_IMAGE_FORMAT_JPEG) s = vlm_jpeg_decode(data, size, name, max_pixels, out, info);
    else if (f == VLM_IMAGE_FORMAT_PNG) s = vlm_png_decode(data, size, name, max_pixels, out, info);
    else {
        if (looks_like_video(data, size))
            return vlm_err(VLM_ERR_UNSUPPORTED, "%s: video input is not supported (still images only: JPEG, PNG)",
                           name);
        const char *other = guess_other(data, size);
        if (other)
            return vlm_err(VLM_ERR_UNSUPPORTED, "%s: %s images are not supported (supported formats: JPEG, PNG)", name,
                           other);
        return vlm_err(VLM_ERR_UNSUPPORTED,
                       "%s: not a JPEG or PNG file (unrecognised first bytes; supported formats: JPEG, PNG)", name);
    }
    info->format = f;
    if (s != VLM_OK) {
        vlm_image_free(out);
        return s;
    }
    s = vlm_image_apply_orientation(out, info->orientation);
    if (s != VLM_OK) {
        vlm_image_free(out);
        return vlm_err_ctx(s, "%s", name);
    }
    return VLM_OK;
}

vlm_status vlm_image_decode_file(const char *path, long long max_pixels, vlm_image *out, vlm_image_info *info) {
    out->width = out->height = 0;
    out->rgb = NULL;
    vlm_mapping m;
    VLM_TRY(vlm_map_file(path, &m));
    vlm_status s = vlm_image_decode_memory(m.data, m.size, path, max_pixels, out, info);
    vlm_unmap(&m);
    return s;
}
