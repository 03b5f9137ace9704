/* Image decoding, bicubic resize and smart_resize against Pillow 9.4 itself, on cases generated at
 * test time by tests/pillow_cases.py (Debian's /usr/bin/python3 with Pillow and numpy): every PNG bit
 * depth / colour type (palettes with short PLTEs, tRNS, 16-bit, Adam7 at every depth), JPEG
 * subsamplings / progressive / gray / CMYK with and without the Adobe marker, all eight EXIF
 * orientations (JPEG APP1, PNG eXIf before and after the image data, ImageMagick raw profile, XMP),
 * truncated and corrupt files (we fail exactly where Pillow fails), BICUBIC up- and down-scaling in
 * each axis (SIMD and scalar paths), and transformers' smart_resize formula on 1200 sizes.
 * Skipped, with a message, when that Python is not there; the fixture tests do not need it. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "image/preprocess.h"
#include "io/file.h"
#include "sha256.h"

static const char *g_dir;
static int g_n[3];

static void check_decode(const char *file, const char *want, int w, int h) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", g_dir, file);
    vlm_image img;
    vlm_status s = vlm_image_decode_file(path, 0, &img, NULL);
    if (!strcmp(want, "ERROR")) {
        CHECK_MSG(s != VLM_OK, "%s: Pillow refuses it, we decoded it", file);
        if (s != VLM_OK) CHECK_MSG(vlm_last_error()[0] != 0, "%s: an error without a message", file);
    } else {
        CHECK_MSG(s == VLM_OK, "%s: Pillow decodes it, we failed: %s", file, vlm_last_error());
        if (s == VLM_OK) {
            char got[65];
            sha256_hex(img.rgb, (size_t)img.width * img.height * 3, got);
            CHECK_MSG(img.width == w && img.height == h, "%s: %dx%d, Pillow %dx%d", file, img.width, img.height, w, h);
            CHECK_MSG(!strcmp(got, want), "%s: RGB differs from Pillow's", file);
        }
    }
    vlm_image_free(&img);
    g_n[0]++;
}

static void check_resize(const char *file, int iw, int ih, int ow, int oh, const char *want) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", g_dir, file);
    char *data = NULL;
    size_t len = 0;
    CHECK_OK(vlm_read_file(path, 0, &data, &len));
    if (!data || len != (size_t)iw * ih * 3) {
        CHECK_MSG(0, "%s: raw size %zu", file, len);
        free(data);
        return;
    }
    vlm_image in = {iw, ih, (uint8_t *)data}, a, b;
    CHECK_OK(vlm_image_resize_bicubic(&in, ow, oh, NULL, &a));
    CHECK_OK(vlm_image_resize_bicubic_ref(&in, ow, oh, &b));
    if (a.rgb && b.rgb) {
        char ga[65], gb[65];
        sha256_hex(a.rgb, (size_t)ow * oh * 3, ga);
        sha256_hex(b.rgb, (size_t)ow * oh * 3, gb);
        CHECK_MSG(!strcmp(ga, want), "resize %dx%d -> %dx%d: SIMD result differs from Pillow's", iw, ih, ow, oh);
        CHECK_MSG(!strcmp(gb, want), "resize %dx%d -> %dx%d: scalar result differs from Pillow's", iw, ih, ow, oh);
    }
    vlm_image_free(&a);
    vlm_image_free(&b);
    free(data);
    g_n[1]++;
}

static void check_smart(long long h, long long w, long long lo, long long hi, const char *rh, const char *rw) {
    int oh = 0, ow = 0;
    vlm_status s = vlm_smart_resize(h, w, 28, lo, hi, &oh, &ow);
    if (!strcmp(rh, "ERROR")) {
        CHECK_MSG(s == VLM_ERR_INVALID, "smart_resize(%lld, %lld) should fail", h, w);
    } else {
        CHECK_MSG(s == VLM_OK && oh == atoi(rh) && ow == atoi(rw),
                  "smart_resize(%lld, %lld, %lld, %lld) = %dx%d, want %sx%s", h, w, lo, hi, oh, ow, rh, rw);
    }
    g_n[2]++;
}

static void test_against_pillow(void) {
    if (system("/usr/bin/python3 -c 'import PIL, numpy' >/dev/null 2>&1") != 0) {
        fprintf(stderr, "  SKIP: /usr/bin/python3 with Pillow and numpy is not available\n");
        return;
    }
    g_dir = test_tmp("pillow");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 -W ignore '%s/tests/pillow_cases.py' '%s'", VLM_SOURCE_DIR, g_dir);
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "%s failed (%d)", cmd, rc);
    if (rc != 0) return;
    char path[2048];
    snprintf(path, sizeof path, "%s/manifest.txt", g_dir);
    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char kind[16], a[256], b[256], c[128], d[128], e[128], g[128];
        int n = sscanf(line, "%15s %255s %255s %127s %127s %127s %127s", kind, a, b, c, d, e, g);
        if (n >= 5 && !strcmp(kind, "decode")) check_decode(a, b, atoi(c), atoi(d));
        else if (n == 7 && !strcmp(kind, "resize")) check_resize(a, atoi(b), atoi(c), atoi(d), atoi(e), g);
        else if (n >= 6 && !strcmp(kind, "smart"))
            check_smart(atoll(a), atoll(b), atoll(c), atoll(d), e, n == 7 ? g : "");
        else CHECK_MSG(0, "bad manifest line: %s", line);
    }
    fclose(f);
    fprintf(stderr, "  compared with Pillow: %d decodes, %d resizes, %d smart_resize cases\n", g_n[0], g_n[1], g_n[2]);
    CHECK(g_n[0] > 50 && g_n[1] > 10 && g_n[2] > 1000);
}

int main(void) {
    RUN(test_against_pillow);
    return test_summary();
}
