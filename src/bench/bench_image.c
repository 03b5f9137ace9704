/* Images for the benchmark: the --image arguments expanded (directories to their image files) and
 * each image's size (the configuration header and metadata report it; the pipeline decodes the
 * image again inside each measured run, as a user's request would). */
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/log.h"
#include "base/memory.h"
#include "bench/bench.h"
#include "io/image_decode.h"

/* The size the model sees: the decoder's output, after the EXIF orientation (a rotated photo
 * reports its upright size). Decoding costs milliseconds, once per image before the runs, and an
 * unreadable image is reported before the long work starts. */
vlm_status vlm_bench_image_size(const char *path, int *width, int *height) {
    *width = *height = 0;
    vlm_image img = {0};
    vlm_status s = vlm_image_decode_file(path, 0, &img, NULL);
    if (s != VLM_OK) return vlm_err_ctx(s, "--image");
    *width = img.width;
    *height = img.height;
    vlm_image_free(&img);
    return VLM_OK;
}

static int is_image_name(const char *name) {
    const char *dot = strrchr(name, '.');
    return name[0] != '.' && dot && (!strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg") || !strcasecmp(dot, ".png"));
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

typedef struct {
    char **v;
    int n, cap;
} str_list;

static vlm_status list_push(str_list *l, const char *s) {
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        char **p = vlm_realloc(l->v, (size_t)cap * sizeof *p, "the list of images");
        if (!p) return VLM_ERR_NOMEM;
        l->v = p;
        l->cap = cap;
    }
    if (!(l->v[l->n] = vlm_strdup(s, "an image path"))) return VLM_ERR_NOMEM;
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
    if (l->n == first)
        return vlm_err(VLM_ERR_NOT_FOUND, "--image %s: no .jpg, .jpeg or .png file in this directory", dir);
    qsort(l->v + first, (size_t)(l->n - first), sizeof *l->v, cmp_str);
    return VLM_OK;
}

vlm_status vlm_bench_collect_images(const char *const *args, int n, char ***out, int *n_out) {
    str_list l = {0};
    vlm_status s = VLM_OK;
    *out = NULL;
    *n_out = 0;
    for (int i = 0; s == VLM_OK && i < n; i++) {
        struct stat st;
        if (vlm_is_dir(args[i])) s = add_dir(&l, args[i]);
        else if (stat(args[i], &st) != 0) s = vlm_err(VLM_ERR_NOT_FOUND, "--image %s: %s", args[i], strerror(errno));
        else if (!S_ISREG(st.st_mode))
            s = vlm_err(VLM_ERR_INVALID, "--image %s is %s, not a regular file", args[i], vlm_file_kind(st.st_mode));
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
