/* Image files → 8-bit RGB, pixel for pixel as transformers' load_image gets them from Pillow 9.4:
 * PIL.Image.open, ImageOps.exif_transpose, convert("RGB").
 *
 * JPEG goes through libjpeg-turbo and PNG through libpng, set up so that the pixels equal Pillow's:
 * JPEG with libjpeg's default decompression (islow IDCT, fancy upsampling), 4-component files
 * inverted as Pillow always does ("CMYK;I") and converted with Pillow's cmyk2rgb; PNG samples taken
 * raw and converted the way Pillow's modes convert (16-bit gray opens as mode I and is clipped to
 * 0..255, other 16-bit samples keep their high byte, alpha and tRNS are dropped, palette indices
 * beyond the PLTE entries map to gray i,i,i). The format is detected from the magic bytes, never from
 * the file name. Bad input gives an error naming the file and the problem; nothing is printed and
 * nothing aborts. Files whose data ends early are refused, as Pillow refuses them by default
 * (ImageFile.LOAD_TRUNCATED_IMAGES = False). */
#ifndef VLM_IO_IMAGE_DECODE_H
#define VLM_IO_IMAGE_DECODE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

/* Pillow's decompression-bomb limit (2 · Image.MAX_IMAGE_PIXELS): more pixels than this is an error
 * unless the caller passes another limit. */
#define VLM_IMAGE_DEFAULT_MAX_PIXELS 178956970LL

typedef struct {
    int width, height;
    uint8_t *rgb; /* height rows of width·3 bytes (R, G, B), no padding; vlm_alloc'ed */
} vlm_image;

typedef enum { VLM_IMAGE_FORMAT_UNKNOWN = 0, VLM_IMAGE_FORMAT_JPEG, VLM_IMAGE_FORMAT_PNG } vlm_image_format;

/* What the file held, for reports and tests. */
typedef struct {
    vlm_image_format format;
    int file_width, file_height; /* as stored, before the EXIF rotation */
    char mode[8];    /* the Pillow mode the file opens as: "RGB", "L", "CMYK", "P", "LA", "RGBA", "I", "1" */
    int orientation; /* EXIF orientation that was applied (1 = none) */
} vlm_image_info;

/* Decodes a JPEG or PNG file. max_pixels: refuse images with more pixels than this, checked on the
 * header before any pixel memory is allocated (0 = VLM_IMAGE_DEFAULT_MAX_PIXELS). info may be NULL.
 * On failure *out is left empty. */
vlm_status vlm_image_decode_file(const char *path, long long max_pixels, vlm_image *out, vlm_image_info *info);
/* The same from bytes in memory; name is used in messages. */
vlm_status vlm_image_decode_memory(const void *data, size_t size, const char *name, long long max_pixels,
                                   vlm_image *out, vlm_image_info *info);
/* A buffer for image-sized data (freed with vlm_free): large ones are 2 MiB-aligned and ask for
 * transparent huge pages, which saves thousands of page faults per megapixel image (costly under
 * virtualization). Records an error and returns NULL when out of memory. */
void *vlm_image_buffer_alloc(size_t bytes, const char *what);
/* Allocates an image of the given size (contents undefined). */
vlm_status vlm_image_alloc(vlm_image *img, int width, int height);
void vlm_image_free(vlm_image *img);

/* The format from the first bytes; UNKNOWN when neither. */
vlm_image_format vlm_image_detect(const void *data, size_t size);
const char *vlm_image_format_name(vlm_image_format f); /* "JPEG", "PNG", "unknown" */

#endif
