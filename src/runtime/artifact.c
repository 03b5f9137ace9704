#include "runtime/artifact.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/memory.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"

/* FNV-1a 64. The directory digest has always started from a basis one digit short of the standard
 * one; it stays so, since changing it would make every existing artifact read as stale. */
#define FNV_BASIS 14695981039346656037ull
#define FNV_BASIS_DIR 1469598103934665603ull

static uint64_t fnv1a(uint64_t h, const void *data, size_t n) {
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

static int relevant(const char *name) {
    size_t n = strlen(name);
    if (!strcmp(name, "vlm_manifest.json")) return 0; /* an artifact's own manifest */
    return (n > 5 && !strcmp(name + n - 5, ".json")) || (n > 12 && !strcmp(name + n - 12, ".safetensors")) ||
        (n > 4 && !strcmp(name + n - 4, ".txt"));
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

vlm_status vlm_fingerprint_dir(const char *dir, char out[VLM_FINGERPRINT_LEN]) {
    DIR *d = opendir(dir);
    if (!d) return vlm_err(VLM_ERR_IO, "cannot open checkpoint directory %s", dir);
    char *names[512];
    int n = 0;
    vlm_status s = VLM_OK;
    struct dirent *e;
    while (s == VLM_OK && (e = readdir(d)) != NULL && n < 512)
        if (e->d_name[0] != '.' && relevant(e->d_name)) {
            names[n] = vlm_strdup(e->d_name, "a file name to fingerprint");
            if (names[n]) n++;
            else s = vlm_err_ctx(VLM_ERR_NOMEM, "fingerprint of %s", dir);
        }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    uint64_t h = FNV_BASIS_DIR;
    for (int i = 0; i < n && s == VLM_OK; i++) {
        char path[VLM_PATH_MAX];
        uint64_t size = 0;
        int64_t mtime = 0;
        s = vlm_path_join(path, sizeof path, dir, names[i]);
        if (s == VLM_OK) s = vlm_file_stat(path, &size, &mtime);
        h = fnv1a(h, names[i], strlen(names[i]) + 1);
        h = fnv1a(h, &size, sizeof size);
        h = fnv1a(h, &mtime, sizeof mtime);
        size_t len = strlen(names[i]);
        if (s == VLM_OK && len > 12 && !strcmp(names[i] + len - 12, ".safetensors")) {
            /* the header: u64 length + JSON (names, dtypes, shapes, offsets) */
            int fd;
            FILE *f = vlm_open_regular(path, &fd) == VLM_OK ? fdopen(fd, "rb") : NULL; /* no FIFO waits */
            if (!f && fd >= 0) close(fd);
            unsigned char lenbuf[8];
            if (f && fread(lenbuf, 1, 8, f) == 8) {
                uint64_t hl = 0;
                for (int k = 7; k >= 0; k--) hl = (hl << 8) | lenbuf[k];
                if (hl > (uint64_t)100 << 20) hl = 0;
                char *hdr = hl ? vlm_alloc(hl, "a safetensors header to fingerprint") : NULL;
                if (hl && !hdr) s = VLM_ERR_NOMEM;
                if (hdr && fread(hdr, 1, hl, f) == hl) h = fnv1a(h, hdr, hl);
                vlm_free(hdr);
            }
            if (f) fclose(f);
        }
    }
    for (int i = 0; i < n; i++) vlm_free(names[i]);
    snprintf(out, VLM_FINGERPRINT_LEN, "%016llx", (unsigned long long)h);
    return s;
}

/* ---- the per-file fingerprint of a checkpoint ---- */
static const char *base_name(const char *path) {
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

static vlm_status add_file(vlm_checkpoint_fingerprint *fp, const char *path, const vlm_st_file *st_file) {
    vlm_fingerprint_file *f = &fp->files[fp->n];
    memset(f, 0, sizeof *f);
    snprintf(f->name, sizeof f->name, "%s", base_name(path));
    VLM_TRY(vlm_file_stat(path, &f->size, &f->mtime_ns));
    if (st_file && st_file->map.size >= 8 + st_file->header_len)
        snprintf(f->header, sizeof f->header, "%016llx",
                 (unsigned long long)fnv1a(FNV_BASIS, st_file->map.data, 8 + st_file->header_len));
    fp->n++;
    return VLM_OK;
}

void vlm_checkpoint_fingerprint_free(vlm_checkpoint_fingerprint *fp) {
    vlm_free(fp->files);
    memset(fp, 0, sizeof *fp);
}

vlm_status vlm_checkpoint_fingerprint_take(const char *model_dir, vlm_checkpoint_fingerprint *fp) {
    memset(fp, 0, sizeof *fp);
    char real[PATH_MAX], path[VLM_PATH_MAX];
    if (!realpath(model_dir, real)) return vlm_err(VLM_ERR_IO, "cannot resolve %s: %s", model_dir, strerror(errno));
    snprintf(fp->checkpoint, sizeof fp->checkpoint, "%s", real);
    vlm_safetensors *st = NULL;
    VLM_TRY(vlm_st_open(model_dir, &st));
    vlm_status s = VLM_OK;
    fp->files = vlm_calloc((size_t)st->n_files + 2, sizeof *fp->files, "the checkpoint's file list");
    if (!fp->files) s = VLM_ERR_NOMEM;
    if (s == VLM_OK) s = vlm_path_join(path, sizeof path, model_dir, "config.json");
    if (s == VLM_OK) s = add_file(fp, path, NULL);
    if (s == VLM_OK) s = vlm_path_join(path, sizeof path, model_dir, "model.safetensors.index.json");
    if (s == VLM_OK && vlm_is_file(path)) s = add_file(fp, path, NULL);
    for (int i = 0; s == VLM_OK && i < st->n_files; i++) s = add_file(fp, st->files[i].path, &st->files[i]);
    vlm_st_close(st);
    if (s != VLM_OK) vlm_checkpoint_fingerprint_free(fp);
    return s;
}

/* ---- directory manifests ---- */
static const char k_manifest[] = "vlm_manifest.json";

vlm_status vlm_manifest_write(const char *artifact_dir, const vlm_manifest *m) {
    char path[VLM_PATH_MAX];
    VLM_TRY(vlm_path_join(path, sizeof path, artifact_dir, k_manifest));
    vlm_strbuf b = {0};
    vlm_sb_printf(&b, "{\n  \"kind\": ");
    vlm_sb_json_string(&b, m->kind, strlen(m->kind));
    vlm_sb_printf(&b, ",\n  \"source\": ");
    vlm_sb_json_string(&b, m->source, strlen(m->source));
    vlm_sb_printf(&b,
                  ",\n  \"fingerprint\": \"%s\",\n  \"artifact_fingerprint\": \"%s\",\n  \"vlm_version\": \"%s\"\n}\n",
                  m->fingerprint, m->artifact, m->version);
    vlm_status s =
        b.failed ? vlm_err(VLM_ERR_NOMEM, "out of memory writing %s", path) : vlm_write_file(path, b.data, b.len);
    vlm_sb_free(&b);
    return s;
}

vlm_status vlm_manifest_read(const char *artifact_dir, vlm_manifest *m) {
    char path[VLM_PATH_MAX];
    memset(m, 0, sizeof *m);
    VLM_TRY(vlm_path_join(path, sizeof path, artifact_dir, k_manifest));
    cJSON *root;
    VLM_TRY(vlm_json_load(path, &root));
    const char *kind = NULL, *source = NULL, *fp = NULL, *ver = NULL, *art = NULL;
    vlm_status s = vlm_json_str(root, "kind", path, &kind);
    if (s == VLM_OK) s = vlm_json_str(root, "source", path, &source);
    if (s == VLM_OK) s = vlm_json_str(root, "fingerprint", path, &fp);
    if (s == VLM_OK) s = vlm_json_str(root, "vlm_version", path, &ver);
    if (s == VLM_OK) s = vlm_json_str(root, "artifact_fingerprint", path, &art);
    if (s == VLM_OK && (!kind || !source || !fp))
        s = vlm_err(VLM_ERR_FORMAT, "%s: needs \"kind\", \"source\" and \"fingerprint\"", path);
    if (s == VLM_OK) {
        snprintf(m->kind, sizeof m->kind, "%s", kind);
        snprintf(m->source, sizeof m->source, "%s", source);
        snprintf(m->fingerprint, sizeof m->fingerprint, "%s", fp);
        snprintf(m->version, sizeof m->version, "%s", ver ? ver : "");
        snprintf(m->artifact, sizeof m->artifact, "%s", art ? art : "");
    }
    cJSON_Delete(root);
    return s;
}

int vlm_manifest_is_fresh(const char *artifact_dir, const char *kind, const char *source_dir, char *why, size_t cap) {
    vlm_manifest m;
    char abs[PATH_MAX], fp[VLM_FINGERPRINT_LEN];
    if (!vlm_is_dir(artifact_dir)) {
        snprintf(why, cap, "%s does not exist", artifact_dir);
        return 0;
    }
    vlm_status s = vlm_manifest_read(artifact_dir, &m);
    if (s == VLM_ERR_NOMEM) return -1; /* cannot tell: not a reason to rebuild */
    if (s != VLM_OK) {
        snprintf(why, cap, "%s has no readable manifest (%s)", artifact_dir, vlm_last_error());
        return 0;
    }
    if (strcmp(m.kind, kind) != 0) {
        snprintf(why, cap, "%s holds a %s artifact, not %s", artifact_dir, m.kind, kind);
        return 0;
    }
    if (!realpath(source_dir, abs) || strcmp(abs, m.source) != 0) {
        snprintf(why, cap, "%s was made from %s, not %s", artifact_dir, m.source, source_dir);
        return 0;
    }
    s = vlm_fingerprint_dir(source_dir, fp);
    if (s == VLM_ERR_NOMEM) return -1;
    if (s != VLM_OK || strcmp(fp, m.fingerprint) != 0) {
        snprintf(why, cap, "the checkpoint %s changed since %s was made", source_dir, artifact_dir);
        return 0;
    }
    s = vlm_fingerprint_dir(artifact_dir, fp);
    if (s == VLM_ERR_NOMEM) return -1;
    if (s != VLM_OK || strcmp(fp, m.artifact) != 0) {
        snprintf(why, cap, "the files in %s changed since it was made", artifact_dir);
        return 0;
    }
    return 1;
}

vlm_status vlm_manifest_write_for(const char *model_dir, const char *artifact_dir, const char *kind) {
    vlm_manifest m = {0};
    char abs[PATH_MAX];
    if (!realpath(model_dir, abs)) return vlm_err(VLM_ERR_IO, "cannot resolve %s", model_dir);
    snprintf(m.kind, sizeof m.kind, "%s", kind);
    snprintf(m.source, sizeof m.source, "%s", abs);
    snprintf(m.version, sizeof m.version, "%s", VLM_VERSION);
    VLM_TRY(vlm_fingerprint_dir(model_dir, m.fingerprint));
    VLM_TRY(vlm_fingerprint_dir(artifact_dir, m.artifact));
    return vlm_manifest_write(artifact_dir, &m);
}

vlm_status vlm_artifact_publish(const char *tmp_dir, const char *final_dir) {
    return vlm_replace_dir(tmp_dir, final_dir);
}
