/* Images for the benchmark: the --image arguments expanded (directories to their image files) and
 * each image's size read from its header (the configuration header and metadata report it; the
 * image itself is decoded by the pipeline, inside the measured run). */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/log.h"
#include "base/memory.h"
#include "bench/bench.h"

static unsigned be16(const unsigned char *p) { return (unsigned)p[0] << 8 | p[1]; }
static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Walks the JPEG markers to the first frame header (SOF0..SOF15 but DHT, JPG and DAC). */
static vlm_status jpeg_size(FILE *f, const char *path, int *w, int *h) {
    unsigned char b[8];
    for (;;) {
        int c = fgetc(f);
        if (c == EOF) break;
        if (c != 0xFF) return vlm_err(VLM_ERR_FORMAT, "%s: JPEG marker expected, found byte 0x%02x", path, c);
        while ((c = fgetc(f)) == 0xFF) {} /* fill bytes */
        if (c == EOF) break;
        if (c == 0xD8 || c == 0x01 || (c >= 0xD0 && c <= 0xD7)) continue; /* no length */
        if (c == 0xD9 || c == 0xDA) break; /* end of image / start of scan before any frame */
        if (fread(b, 1, 2, f) != 2) break;
        unsigned len = be16(b);
        if (len < 2) return vlm_err(VLM_ERR_FORMAT, "%s: JPEG segment 0x%02x with length %u", path, c, len);
        int sof = c >= 0xC0 && c <= 0xCF && c != 0xC4 && c != 0xC8 && c != 0xCC;
        if (sof) {
            if (len < 7 || fread(b, 1, 5, f) != 5) break;
            *h = (int)be16(b + 1);
            *w = (int)be16(b + 3);
            if (*w == 0 || *h == 0)
                return vlm_err(VLM_ERR_FORMAT, "%s: JPEG frame header gives a %dx%d image", path, *w, *h);
            return VLM_OK;
        }
        if (fseek(f, (long)len - 2, SEEK_CUR) != 0) break;
    }
    return vlm_err(VLM_ERR_FORMAT, "%s: truncated JPEG (no frame header)", path);
}

vlm_status vlm_bench_image_size(const char *path, int *width, int *height) {
    *width = *height = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return vlm_err(VLM_ERR_IO, "--image %s: cannot open: %s", path, strerror(errno));
    unsigned char b[24];
    size_t n = fread(b, 1, sizeof b, f);
    vlm_status s = VLM_OK;
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (n >= 2 && b[0] == 0xFF && b[1] == 0xD8) {
        fseek(f, 2, SEEK_SET);
        s = jpeg_size(f, path, width, height);
    } else if (n >= 8 && !memcmp(b, png_sig, 8)) {
        if (n < 24 || memcmp(b + 12, "IHDR", 4))
            s = vlm_err(VLM_ERR_FORMAT, "%s: PNG without an IHDR chunk first", path);
        else {
            uint32_t w = be32(b + 16), h = be32(b + 20);
            if (w == 0 || h == 0 || w > INT32_MAX || h > INT32_MAX)
                s = vlm_err(VLM_ERR_FORMAT, "%s: PNG header gives a %ux%u image", path, w, h);
            *width = (int)w;
            *height = (int)h;
        }
    } else {
        /* not ours to reject: the pipeline's decoder says whether it reads this file */
        VLM_LOG_W("%s: not a JPEG or PNG file; its size is not shown", path);
    }
    fclose(f);
    if (s != VLM_OK) *width = *height = 0;
    return s;
}

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return name[0] != '.' && dot &&
           (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct {
    char **v;
    int n, cap;
} str_list;

static vlm_status list_push(str_list *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **p = realloc(l->v, (size_t)cap * sizeof *p);
        if (!p) return vlm_err(VLM_ERR_NOMEM, "out of memory listing images");
        l->v = p;
        l->cap = cap;
    }
    if (!(l->v[l->n] = vlm_strdup(s))) return VLM_ERR_NOMEM;
    l->n++;
    return VLM_OK;
}

static vlm_status add_dir(str_list *l, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return vlm_err(VLM_ERR_IO, "--image %s: cannot read the directory: %s", dir, strerror(errno));
    int first = l->n;
    vlm_status s = VLM_OK;
    struct dirent *e;
    char path[VLM_PATH_MAX];
    while (s == VLM_OK && (e = readdir(d))) {
        if (!is_image_name(e->d_name)) continue;
        s = vlm_path_join(path, sizeof path, dir, e->d_name);
        if (s == VLM_OK && vlm_is_file(path)) s = list_push(l, path);
    }
    closedir(d);
    if (s != VLM_OK) return s;
    if (l->n == first) return vlm_err(VLM_ERR_NOT_FOUND, "--image %s: no .jpg, .jpeg or .png file in this directory", dir);
    qsort(l->v + first, (size_t)(l->n - first), sizeof *l->v, cmp_str);
    return VLM_OK;
}

vlm_status vlm_bench_collect_images(const char *const *args, int n, char ***out, int *n_out) {
    str_list l = {0};
    vlm_status s = VLM_OK;
    *out = NULL;
    *n_out = 0;
    for (int i = 0; s == VLM_OK && i < n; i++) {
        if (vlm_is_dir(args[i])) s = add_dir(&l, args[i]);
        else if (!vlm_is_file(args[i])) s = vlm_err(VLM_ERR_NOT_FOUND, "--image %s: no such file or directory", args[i]);
        else s = list_push(&l, args[i]);
    }
    if (s != VLM_OK) {
        vlm_bench_free_list(l.v, l.n);
        return s;
    }
    *out = l.v;
    *n_out = l.n;
    return VLM_OK;
}

void vlm_bench_free_list(char **list, int n) {
    for (int i = 0; i < n; i++) free(list[i]);
    free(list);
}
