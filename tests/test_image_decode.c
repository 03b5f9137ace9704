/* Image decoding: bad input (empty, truncated, corrupt, enormous headers, other formats, wrong
 * extensions, missing files), the pixel limit and its override, the EXIF orientation reader, and
 * the in-memory API. Pixel parity with Pillow is in test_image_fixtures.c / test_image_pillow.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <zlib.h>

#include "harness.h"
#include "image/preprocess.h"
#include "io/file.h"
#include "io/image_internal.h"

static const char *k_jpeg = "cases/preproc_jpeg_420/jpeg420_photo_151x177.jpg";
static const char *k_png = "cases/q25_photo/photo_256x300.png";

static char *slurp(const char *rel, size_t *len) {
    char *d = NULL;
    CHECK_OK(vlm_read_file(test_fixture(rel), 0, &d, len));
    return d;
}

static void put32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16), p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

/* A PNG: signature, IHDR (w, h, 8-bit RGB), IDAT of `rows` zlib-compressed filtered rows, IEND. */
static size_t make_png(uint8_t *out, size_t cap, uint32_t w, uint32_t h, int rows) {
    static const uint8_t sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    size_t n = 0;
    memcpy(out, sig, 8);
    n = 8;
    uint8_t ihdr[13];
    put32(ihdr, w), put32(ihdr + 4, h);
    ihdr[8] = 8, ihdr[9] = 2, ihdr[10] = ihdr[11] = ihdr[12] = 0;
    uLong raw_len = (uLong)rows * (1 + 3 * w);
    uint8_t *raw = calloc(raw_len ? raw_len : 1, 1);
    uLongf zlen = compressBound(raw_len);
    uint8_t *z = malloc(zlen);
    compress(z, &zlen, raw, raw_len);
    const struct {
        const char *type;
        const uint8_t *d;
        size_t len;
    } chunks[3] = {{"IHDR", ihdr, 13}, {"IDAT", z, zlen}, {"IEND", NULL, 0}};
    for (int i = 0; i < 3; i++) {
        if (n + 12 + chunks[i].len > cap) break;
        put32(out + n, (uint32_t)chunks[i].len);
        memcpy(out + n + 4, chunks[i].type, 4);
        if (chunks[i].len) memcpy(out + n + 8, chunks[i].d, chunks[i].len);
        uint32_t crc = (uint32_t)crc32(0, out + n + 4, (uInt)(4 + chunks[i].len));
        put32(out + n + 8 + chunks[i].len, crc);
        n += 12 + chunks[i].len;
    }
    free(raw);
    free(z);
    return n;
}

/* A small baseline JPEG written by libjpeg (gray gradient). */
static uint8_t *make_jpeg(int w, int h, unsigned long *len) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr e;
    c.err = jpeg_std_error(&e);
    jpeg_create_compress(&c);
    unsigned char *buf = NULL;
    *len = 0;
    jpeg_mem_dest(&c, &buf, len);
    c.image_width = (JDIMENSION)w, c.image_height = (JDIMENSION)h, c.input_components = 3, c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_start_compress(&c, TRUE);
    uint8_t *row = malloc((size_t)w * 3);
    while (c.next_scanline < c.image_height) {
        for (int x = 0; x < w * 3; x++) row[x] = (uint8_t)(x + c.next_scanline * 3);
        JSAMPROW r = row;
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    return buf;
}

static vlm_status decode_mem(const void *d, size_t n, long long limit) {
    vlm_image img;
    vlm_status s = vlm_image_decode_memory(d, n, "mem", limit, &img, NULL);
    if (s == VLM_OK) vlm_image_free(&img);
    else CHECK(img.rgb == NULL && img.width == 0);
    return s;
}

static void test_empty_and_missing(void) {
    const char *p = test_tmp("empty.jpg");
    CHECK_OK(vlm_write_file(p, "", 0));
    vlm_image img;
    CHECK_ERR(vlm_image_decode_file(p, 0, &img, NULL), VLM_ERR_FORMAT, "empty");
    CHECK_ERR(vlm_image_decode_file(test_tmp("nope.png"), 0, &img, NULL), VLM_ERR_IO, "nope.png");
    CHECK_ERR(vlm_image_decode_file(test_tmpdir(), 0, &img, NULL), VLM_ERR_IO, "not a regular file");
    CHECK_ERR(decode_mem("\xff\xd8\xff", 3, 0), VLM_ERR_FORMAT, "truncated");
    CHECK_ERR(decode_mem("\x89PNG\r\n\x1a\n", 8, 0), VLM_ERR_FORMAT, "truncated");
}

static void test_other_formats(void) {
    CHECK_ERR(decode_mem("GIF89a\1\0\1\0\0\0\0", 13, 0), VLM_ERR_UNSUPPORTED, "GIF images are not supported");
    CHECK_ERR(decode_mem("BM\x3e\0\0\0\0\0", 8, 0), VLM_ERR_UNSUPPORTED, "supported formats: JPEG, PNG");
    CHECK_ERR(decode_mem("RIFF\0\0\0\0WEBPVP8 ", 16, 0), VLM_ERR_UNSUPPORTED, "WebP");
    CHECK_ERR(decode_mem("hello, world", 12, 0), VLM_ERR_UNSUPPORTED, "not a JPEG or PNG");
    /* video containers: MP4 (ftyp isom), WebM (EBML), AVI; HEIF is an image format */
    CHECK_ERR(decode_mem("\0\0\0\x18"
                         "ftypisom\0\0\0\0",
                         16, 0),
              VLM_ERR_UNSUPPORTED, "video input is not supported");
    CHECK_ERR(decode_mem("\x1a\x45\xdf\xa3\x9f\x42\x86\x81", 8, 0), VLM_ERR_UNSUPPORTED, "video input");
    CHECK_ERR(decode_mem("RIFF\0\0\0\0AVI LIST", 16, 0), VLM_ERR_UNSUPPORTED, "video input");
    CHECK_ERR(decode_mem("\0\0\0\x18"
                         "ftypheic\0\0\0\0",
                         16, 0),
              VLM_ERR_UNSUPPORTED, "HEIF/AVIF images");
    CHECK(vlm_image_detect("\xff\xd8\xff\xe0", 4) == VLM_IMAGE_FORMAT_JPEG);
    CHECK(vlm_image_detect("\xff\xd8", 2) == VLM_IMAGE_FORMAT_UNKNOWN);
    CHECK(!strcmp(vlm_image_format_name(VLM_IMAGE_FORMAT_PNG), "PNG"));
}

/* The format comes from the bytes: a PNG named .jpg decodes, a text file named .png does not. */
static void test_wrong_extension(void) {
    size_t n;
    char *png = slurp(k_png, &n);
    const char *p = test_tmp("really_a_png.jpg");
    CHECK_OK(vlm_write_file(p, png, n));
    vlm_image img;
    vlm_image_info info;
    CHECK_OK(vlm_image_decode_file(p, 0, &img, &info));
    CHECK(info.format == VLM_IMAGE_FORMAT_PNG && img.width == 256 && img.height == 300);
    vlm_image_free(&img);
    free(png);
    p = test_tmp("notes.png");
    CHECK_OK(vlm_write_file(p, "just some text\n", 15));
    CHECK_ERR(vlm_image_decode_file(p, 0, &img, NULL), VLM_ERR_UNSUPPORTED, "notes.png: not a JPEG or PNG");
}

static void test_truncated(void) {
    size_t n;
    char *jpg = slurp(k_jpeg, &n);
    CHECK_OK(decode_mem(jpg, n, 0));
    size_t cuts[] = {4, 30, 200, n / 2, n - 100, n - 2};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) CHECK_ERR(decode_mem(jpg, cuts[i], 0), VLM_ERR_FORMAT, "");
    CHECK_ERR(decode_mem(jpg, n / 2, 0), VLM_ERR_FORMAT, "truncated");
    free(jpg);
    char *png = slurp(k_png, &n);
    CHECK_OK(decode_mem(png, n, 0));
    size_t pcuts[] = {9, 20, 33, 100, n / 2, n - 40};
    for (size_t i = 0; i < sizeof pcuts / sizeof *pcuts; i++)
        CHECK_ERR(decode_mem(png, pcuts[i], 0), VLM_ERR_FORMAT, "truncated");
    CHECK_OK(decode_mem(png, n - 12, 0)); /* IEND missing: Pillow loads it too */
    free(png);
}

static void test_corrupt(void) {
    size_t n;
    char *png = slurp(k_png, &n);
    png[20] ^= 0x40; /* inside IHDR: its CRC no longer matches */
    CHECK_ERR(decode_mem(png, n, 0), VLM_ERR_FORMAT, "bad checksum in chunk IHDR");
    png[20] ^= 0x40;
    for (size_t i = 60; i < 90; i++) png[i] = (char)0xA5; /* the zlib stream */
    CHECK_ERR(decode_mem(png, n, 0), VLM_ERR_FORMAT, "cannot decode PNG");
    free(png);
    unsigned long jl;
    uint8_t *j = make_jpeg(16, 16, &jl);
    for (unsigned long i = 2; i + 9 < jl; i++)
        if (j[i] == 0xFF && j[i + 1] == 0xC0) {
            j[i + 5] = j[i + 6] = 0; /* height 0 */
            break;
        }
    CHECK_ERR(decode_mem(j, jl, 0), VLM_ERR_FORMAT, "cannot decode JPEG: ");
    free(j);
    j = make_jpeg(16, 16, &jl);
    for (unsigned long i = 2; i + 4 < jl; i++)
        if (j[i] == 0xFF && j[i + 1] == 0xC4) { /* DHT: an impossible table */
            memset(j + i + 5, 0xFF, 16);
            break;
        }
    CHECK_ERR(decode_mem(j, jl, 0), VLM_ERR_FORMAT, "cannot decode JPEG: ");
    free(j);
    /* random bytes after each magic: any outcome but a crash, and errors carry a message */
    uint64_t rng = 7;
    uint8_t buf[600];
    for (int t = 0; t < 200; t++) {
        for (size_t i = 0; i < sizeof buf; i++) buf[i] = (uint8_t)(test_rand(&rng) * 128 + 128);
        if (t & 1) memcpy(buf, "\xff\xd8\xff", 3);
        else make_png(buf, sizeof buf, 16, 16, 16), buf[40 + t % 100] ^= 0xff;
        vlm_image img;
        if (vlm_image_decode_memory(buf, sizeof buf, "random", 0, &img, NULL) == VLM_OK) vlm_image_free(&img);
        else CHECK(vlm_last_error()[0] != 0);
    }
}

/* IHDR, IDAT (the whole image), eXIf, IDAT: libpng announces the image a second time when image
 * data follows another chunk. The decoder keeps the image it has (Pillow reads the same pixels: its
 * decoder is done when the first IDAT run ends), where it used to allocate a second one, leaking the
 * first (the sanitizer build's leak check sees that) and returning the second, all zeros. The file
 * is a regression input of the fuzz corpus. */
static void test_image_data_after_another_chunk(void) {
    char *png = NULL;
    size_t n;
    CHECK_OK(vlm_read_file(VLM_SOURCE_DIR "/tests/fuzz/corpus/fuzz_image/regress_idat_exif_idat.png", 0, &png, &n));
    if (!png) return;
    vlm_image img;
    CHECK_OK(vlm_image_decode_memory(png, n, "idat-exif-idat", 0, &img, NULL));
    int ok = img.width == 16 && img.height == 16;
    for (int y = 0; ok && y < 16; y++) /* the rows the file's first IDAT holds: (x * 7 + y * 13) mod 256 */
        for (int x = 0; ok && x < 48; x++) ok = img.rgb[y * 48 + x] == (uint8_t)(x * 7 + y * 13);
    CHECK(ok);
    vlm_image_free(&img);
    free(png);
}

static void test_enormous_headers(void) {
    uint8_t buf[4096];
    /* a PNG claiming 100000 x 100000 (10^10 pixels): refused from the header, nothing allocated */
    size_t n = make_png(buf, sizeof buf, 100000, 100000, 0);
    CHECK_ERR(decode_mem(buf, n, 0), VLM_ERR_UNSUPPORTED,
              "100000x100000 = 10000000000 pixels, more than the limit of 178956970");
    /* a JPEG whose SOF claims 65500 x 65500 */
    unsigned long jl;
    uint8_t *j = make_jpeg(16, 16, &jl);
    for (unsigned long i = 2; i + 9 < jl; i++)
        if (j[i] == 0xFF && j[i + 1] == 0xC0) {
            j[i + 5] = 0xFF, j[i + 6] = 0xDC, j[i + 7] = 0xFF, j[i + 8] = 0xDC;
            break;
        }
    CHECK_ERR(decode_mem(j, jl, 0), VLM_ERR_UNSUPPORTED, "65500x65500");
    free(j);
    /* the limit is the caller's: 300x200 passes the default, not a limit of 50000 pixels */
    n = make_png(buf, sizeof buf, 300, 200, 200);
    CHECK_OK(decode_mem(buf, n, 0));
    CHECK_ERR(decode_mem(buf, n, 50000), VLM_ERR_UNSUPPORTED, "limit of 50000");
    CHECK_OK(decode_mem(buf, n, 60000));
    /* an empty image */
    n = make_png(buf, sizeof buf, 0, 10, 0);
    CHECK_ERR(decode_mem(buf, n, 0), VLM_ERR_FORMAT, "");
}

static void test_memory_api(void) {
    unsigned long jl;
    uint8_t *j = make_jpeg(33, 17, &jl);
    vlm_image img;
    vlm_image_info info;
    CHECK_OK(vlm_image_decode_memory(j, jl, NULL, 0, &img, &info));
    CHECK(img.width == 33 && img.height == 17 && info.format == VLM_IMAGE_FORMAT_JPEG && info.orientation == 1);
    CHECK(!strcmp(info.mode, "RGB") && info.file_width == 33);
    vlm_image_free(&img);
    vlm_image_free(&img); /* twice is harmless */
    free(j);
}

/* TIFF blocks holding IFD0 entries: tag, type, count, 4 value bytes. */
static size_t tiff(uint8_t *b, int big, const uint16_t (*e)[3], const uint8_t (*v)[4], int n) {
    memcpy(b, big ? "MM\0*" : "II*\0", 4);
#define W16(p, x)                                                                                                      \
    (big ? ((p)[0] = (uint8_t)((x) >> 8), (p)[1] = (uint8_t)(x))                                                       \
         : ((p)[0] = (uint8_t)(x), (p)[1] = (uint8_t)((x) >> 8)))
    uint8_t *p = b + 4;
    if (big) p[0] = p[1] = p[2] = 0, p[3] = 8;
    else p[0] = 8, p[1] = p[2] = p[3] = 0;
    W16(b + 8, n);
    for (int i = 0; i < n; i++) {
        uint8_t *q = b + 10 + 12 * i;
        W16(q, e[i][0]);
        W16(q + 2, e[i][1]);
        if (big) q[4] = q[5] = q[6] = 0, q[7] = (uint8_t)e[i][2];
        else q[4] = (uint8_t)e[i][2], q[5] = q[6] = q[7] = 0;
        memcpy(q + 8, v[i], 4);
    }
#undef W16
    return 10 + 12 * (size_t)n + 4;
}

static void test_exif_orientation(void) {
    uint8_t b[256];
    const uint16_t short6[1][3] = {{0x0112, 3, 1}};
    const uint8_t le6[1][4] = {{6, 0, 0, 0}}, be6[1][4] = {{0, 6, 0, 0}};
    CHECK(vlm_exif_orientation(b, tiff(b, 0, short6, le6, 1)) == 6);
    CHECK(vlm_exif_orientation(b, tiff(b, 1, short6, be6, 1)) == 6);
    uint8_t ex[300] = "Exif\0\0";
    size_t n = tiff(ex + 6, 1, short6, be6, 1);
    CHECK(vlm_exif_orientation(ex, n + 6) == 6);
    CHECK(vlm_exif_orientation(ex, 5) == 0);
    const uint16_t long8[1][3] = {{0x0112, 4, 1}}, byte6[1][3] = {{0x0112, 1, 1}}, ascii[1][3] = {{0x0112, 2, 2}};
    const uint8_t le8[1][4] = {{8, 0, 0, 0}}, s6[1][4] = {{'6', 0, 0, 0}};
    CHECK(vlm_exif_orientation(b, tiff(b, 0, long8, le8, 1)) == 8);
    CHECK(vlm_exif_orientation(b, tiff(b, 0, byte6, le6, 1)) == 0); /* BYTE loads as bytes in Pillow */
    CHECK(vlm_exif_orientation(b, tiff(b, 0, ascii, s6, 1)) == 0);  /* ASCII loads as str */
    const uint16_t two[2][3] = {{0x0112, 3, 1}, {0x0112, 3, 1}};
    const uint8_t v36[2][4] = {{3, 0, 0, 0}, {6, 0, 0, 0}};
    CHECK(vlm_exif_orientation(b, tiff(b, 0, two, v36, 2)) == 6);  /* the later entry wins */
    const uint16_t other[2][3] = {{0x010F, 2, 4}, {0x0112, 3, 2}}; /* count 2: the first value */
    const uint8_t vo[2][4] = {{'a', 'b', 'c', 0}, {2, 0, 9, 0}};
    CHECK(vlm_exif_orientation(b, tiff(b, 0, other, vo, 2)) == 2);
    const uint16_t far[1][3] = {{0x0112, 3, 4}}; /* 8 bytes at an offset past the end: skipped */
    const uint8_t off[1][4] = {{200, 0, 0, 0}};
    CHECK(vlm_exif_orientation(b, tiff(b, 0, far, off, 1)) == 0);
    const uint8_t le9[1][4] = {{9, 0, 0, 0}}, le0[1][4] = {{0, 0, 0, 0}};
    CHECK(vlm_exif_orientation(b, tiff(b, 0, short6, le9, 1)) == 0);
    CHECK(vlm_exif_orientation(b, tiff(b, 0, short6, le0, 1)) == 0);
    n = tiff(b, 0, short6, le6, 1);
    CHECK(vlm_exif_orientation(b, n - 10) == 0); /* IFD cut short */
    b[0] = 'X';
    CHECK(vlm_exif_orientation(b, n) == 0);
    uint8_t huge_ifd[14] = {'I', 'I', '*', 0, 0xF0, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0, 0};
    CHECK(vlm_exif_orientation(huge_ifd, sizeof huge_ifd) == 0);
}

/* Orientation 2..8 on a 3x2 image whose pixels are numbered, against the definitions of PIL's
 * transposes. */
static void test_transposes(void) {
    for (int o = 1; o <= 8; o++) {
        vlm_image img;
        CHECK_OK(vlm_image_alloc(&img, 3, 2));
        for (int i = 0; i < 6; i++) img.rgb[3 * i] = (uint8_t)i, img.rgb[3 * i + 1] = img.rgb[3 * i + 2] = 0;
        CHECK_OK(vlm_image_apply_orientation(&img, o));
        static const int want[9][6] = {{0},
                                       {0, 1, 2, 3, 4, 5},
                                       {2, 1, 0, 5, 4, 3},
                                       {5, 4, 3, 2, 1, 0},
                                       {3, 4, 5, 0, 1, 2},
                                       {0, 3, 1, 4, 2, 5},
                                       {3, 0, 4, 1, 5, 2},
                                       {5, 2, 4, 1, 3, 0},
                                       {2, 5, 1, 4, 0, 3}};
        const int swap = o >= 5;
        CHECK(img.width == (swap ? 2 : 3) && img.height == (swap ? 3 : 2));
        int ok = 1;
        for (int i = 0; i < 6; i++) ok &= img.rgb[3 * i] == want[o][i];
        CHECK_MSG(ok, "orientation %d", o);
        vlm_image_free(&img);
    }
}

int main(void) {
    RUN(test_empty_and_missing);
    RUN(test_other_formats);
    RUN(test_wrong_extension);
    RUN(test_truncated);
    RUN(test_corrupt);
    RUN(test_image_data_after_another_chunk);
    RUN(test_enormous_headers);
    RUN(test_memory_api);
    RUN(test_exif_orientation);
    RUN(test_transposes);
    return test_summary();
}
