/* Internal pieces of image decoding (src/io/image_*.c): the per-format decoders, the EXIF
 * orientation reader and the transposes. Not for use outside src/io. */
#ifndef VLM_IO_IMAGE_INTERNAL_H
#define VLM_IO_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "io/image_decode.h"

/* Each decoder fills out (RGB, as stored: no rotation) and info (format, file size, mode,
 * orientation = the EXIF value it found, 1 when none). max_pixels > 0. */
vlm_status vlm_jpeg_decode(const uint8_t *data, size_t size, const char *name, long long max_pixels, vlm_image *out,
                           vlm_image_info *info);
vlm_status vlm_png_decode(const uint8_t *data, size_t size, const char *name, long long max_pixels, vlm_image *out,
                          vlm_image_info *info);

/* The checks every decoder makes on the header, before allocating: positive size, at most
 * max_pixels pixels. */
vlm_status vlm_image_check_size(const char *name, const char *format, long long width, long long height,
                                long long max_pixels);

/* The EXIF Orientation (tag 0x0112) of IFD0 of a TIFF-structured block (optionally starting with
 * "Exif\0\0"), read as Pillow's Exif class reads it: integer-valued SHORT/LONG/SSHORT/SLONG/RATIONAL/
 * SRATIONAL/FLOAT/DOUBLE entries, first value when there are several. 0 when absent or unreadable. */
int vlm_exif_orientation(const uint8_t *data, size_t len);
/* Applies orientation o (2..8, as ImageOps.exif_transpose) to img, replacing its pixels.
 * 1 and unknown values leave it unchanged. */
vlm_status vlm_image_apply_orientation(vlm_image *img, int o);

#endif
