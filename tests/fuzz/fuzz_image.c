/* Fuzz target: the image decoders' wrapper (format detection, libjpeg / libpng set-up and error
 * handling, EXIF / PNG metadata parsing, orientation) and, for what decodes, the preprocessing
 * (smart_resize, bicubic resize, patchify). Any input must give VLM_OK or an error with a message —
 * never a crash, an out-of-bounds access, an exit() from a library or a leak.
 * PNG chunk CRCs would stop most mutations at the first chunk, so for half of the PNG inputs the
 * CRCs are recomputed before decoding. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "image/preprocess.h"

static void fix_png_crcs(uint8_t *d, size_t n) {
    size_t pos = 8;
    while (n - pos >= 12) {
        uint32_t len = (uint32_t)d[pos] << 24 | (uint32_t)d[pos + 1] << 16 | (uint32_t)d[pos + 2] << 8 | d[pos + 3];
        if (len > n - pos - 12) break;
        uint32_t crc = (uint32_t)crc32(0, d + pos + 4, len + 4);
        uint8_t *c = d + pos + 8 + len;
        c[0] = (uint8_t)(crc >> 24), c[1] = (uint8_t)(crc >> 16), c[2] = (uint8_t)(crc >> 8), c[3] = (uint8_t)crc;
        pos += 12 + (size_t)len;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint8_t *copy = NULL;
    if (size > 8 && vlm_image_detect(data, size) == VLM_IMAGE_FORMAT_PNG && (data[size - 1] & 1)) {
        copy = malloc(size);
        if (!copy) return 0;
        memcpy(copy, data, size);
        fix_png_crcs(copy, size);
        data = copy;
    }
    vlm_image img;
    vlm_image_info info;
    /* a small pixel limit keeps mutated headers from asking for gigabytes */
    vlm_status s = vlm_image_decode_memory(data, size, "fuzz", 1 << 20, &img, &info);
    if (s == VLM_OK) {
        if (img.width <= 0 || img.height <= 0 || (long long)img.width * img.height > (1 << 20)) __builtin_trap();
        vlm_preproc_config cfg = {.min_pixels = 3136,
                                  .max_pixels = 28 * 28 * 16,
                                  .patch_size = 14,
                                  .temporal_patch_size = 2,
                                  .merge_size = 2,
                                  .rescale_factor = 1.0 / 255.0,
                                  .mean = {0.5f, 0.5f, 0.5f},
                                  .std = {0.25f, 0.25f, 0.25f},
                                  .do_resize = 1,
                                  .do_rescale = 1,
                                  .do_normalize = 1};
        vlm_pixel_values pv;
        if (vlm_preprocess_image(&img, &cfg, 0, 0, NULL, &pv) == VLM_OK) {
            if (pv.n_patches <= 0 || pv.n_patches != vlm_grid_patches(&pv.grid)) __builtin_trap();
            vlm_pixel_values_free(&pv);
        } else if (!vlm_last_error()[0]) {
            __builtin_trap();
        }
        vlm_image_free(&img);
    } else if (!vlm_last_error()[0]) {
        __builtin_trap(); /* an error without a message */
    }
    free(copy);
    return 0;
}
