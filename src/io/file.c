#include "io/file.h"
#include "base/memory.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

vlm_status vlm_read_file(const char *path, size_t max_bytes, char **data, size_t *len) {
    *data = NULL;
    if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return vlm_err(VLM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return vlm_err(VLM_ERR_IO, "%s is not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if (max_bytes && size > max_bytes) {
        fclose(f);
        return vlm_err(VLM_ERR_FORMAT, "%s is too large (%zu bytes, limit %zu)", path, size, max_bytes);
    }
    char *buf = vlm_alloc(size + 1, "a file's contents");
    if (!buf) {
        fclose(f);
        return vlm_err_ctx(VLM_ERR_NOMEM, "reading %s", path);
    }
    size_t got = fread(buf, 1, size, f);
    int err = ferror(f);
    fclose(f);
    if (got != size || err) {
        free(buf);
        return vlm_err(VLM_ERR_IO, "short read on %s (%zu of %zu bytes)", path, got, size);
    }
    buf[size] = '\0';
    *data = buf;
    if (len) *len = size;
    return VLM_OK;
}

vlm_status vlm_map_file(const char *path, vlm_mapping *m) {
    m->data = NULL;
    m->size = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vlm_err(VLM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return vlm_err(VLM_ERR_IO, "%s is not a regular file", path);
    }
    m->size = (size_t)st.st_size;
    if (m->size == 0) {
        close(fd);
        return VLM_OK; /* an empty file maps to nothing; callers check the size */
    }
    void *p = mmap(NULL, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) {
        m->size = 0;
        return vlm_err(VLM_ERR_IO, "cannot map %s: %s", path, strerror(errno));
    }
    m->data = p;
    return VLM_OK;
}

void vlm_unmap(vlm_mapping *m) {
    if (m->data) munmap(m->data, m->size);
    m->data = NULL;
    m->size = 0;
}

vlm_status vlm_atomic_open(vlm_atomic_file *a, const char *path) {
    memset(a, 0, sizeof *a);
    if (snprintf(a->path, sizeof a->path, "%s", path) >= (int)sizeof a->path ||
        snprintf(a->tmp, sizeof a->tmp, "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof a->tmp)
        return vlm_err(VLM_ERR_INVALID, "path too long: %s", path);
    a->f = fopen(a->tmp, "wb");
    if (!a->f) return vlm_err(VLM_ERR_IO, "cannot create %s: %s", a->tmp, strerror(errno));
    return VLM_OK;
}

vlm_status vlm_atomic_commit(vlm_atomic_file *a) {
    if (!a->f) return vlm_err(VLM_ERR_IO, "%s was not opened", a->path);
    int bad = ferror(a->f) != 0;
    bad |= fflush(a->f) != 0;
    int e = errno;
    bad |= fclose(a->f) != 0;
    a->f = NULL;
    if (bad) {
        unlink(a->tmp);
        return vlm_err(VLM_ERR_IO, "writing %s failed: %s", a->path, strerror(e ? e : EIO));
    }
    if (rename(a->tmp, a->path) != 0) {
        e = errno;
        unlink(a->tmp);
        return vlm_err(VLM_ERR_IO, "cannot rename %s to %s: %s", a->tmp, a->path, strerror(e));
    }
    return VLM_OK;
}

void vlm_atomic_abort(vlm_atomic_file *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    if (a->tmp[0]) unlink(a->tmp);
}

vlm_status vlm_write_file(const char *path, const void *data, size_t len) {
    vlm_atomic_file a;
    VLM_TRY(vlm_atomic_open(&a, path));
    if (len && fwrite(data, 1, len, a.f) != len) {
        int e = errno;
        vlm_atomic_abort(&a);
        return vlm_err(VLM_ERR_IO, "writing %s failed: %s", path, strerror(e));
    }
    return vlm_atomic_commit(&a);
}

int vlm_path_exists(const char *path) { return access(path, F_OK) == 0; }

int vlm_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int vlm_is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

vlm_status vlm_path_join(char *out, size_t cap, const char *a, const char *b) {
    size_t la = strlen(a);
    int slash = la > 0 && a[la - 1] != '/';
    int n = snprintf(out, cap, "%s%s%s", a, slash ? "/" : "", b);
    if (n < 0 || (size_t)n >= cap) return vlm_err(VLM_ERR_INVALID, "path too long: %s/%s", a, b);
    return VLM_OK;
}

vlm_status vlm_mkdirs(const char *path) {
    char buf[VLM_PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return vlm_err(VLM_ERR_INVALID, "path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return vlm_err(VLM_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
        return vlm_err(VLM_ERR_IO, "cannot create directory %s: %s", buf, strerror(errno));
    if (!vlm_is_dir(buf)) return vlm_err(VLM_ERR_IO, "%s exists and is not a directory", buf);
    return VLM_OK;
}

vlm_status vlm_remove_tree(const char *path) {
    if (!path[0] || !strcmp(path, "/")) return vlm_err(VLM_ERR_INVALID, "refusing to remove '%s'", path);
    struct stat st;
    if (lstat(path, &st) != 0) return errno == ENOENT ? VLM_OK : vlm_err(VLM_ERR_IO, "cannot stat %s", path);
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        if (!d) return vlm_err(VLM_ERR_IO, "cannot open directory %s: %s", path, strerror(errno));
        struct dirent *e;
        vlm_status s = VLM_OK;
        while (s == VLM_OK && (e = readdir(d)) != NULL) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char child[VLM_PATH_MAX];
            s = vlm_path_join(child, sizeof child, path, e->d_name);
            if (s == VLM_OK) s = vlm_remove_tree(child);
        }
        closedir(d);
        if (s != VLM_OK) return s;
        if (rmdir(path) != 0) return vlm_err(VLM_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
        return VLM_OK;
    }
    if (unlink(path) != 0) return vlm_err(VLM_ERR_IO, "cannot remove %s: %s", path, strerror(errno));
    return VLM_OK;
}

vlm_status vlm_copy_file(const char *src, const char *dst) {
    FILE *in = fopen(src, "rb");
    if (!in) return vlm_err(VLM_ERR_IO, "cannot open %s: %s", src, strerror(errno));
    vlm_atomic_file a;
    vlm_status s = vlm_atomic_open(&a, dst);
    if (s != VLM_OK) {
        fclose(in);
        return s;
    }
    char buf[1 << 16];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (fwrite(buf, 1, n, a.f) != n) {
            fclose(in);
            vlm_atomic_abort(&a);
            return vlm_err(VLM_ERR_IO, "writing %s failed: %s", dst, strerror(errno));
        }
    }
    int rerr = ferror(in);
    fclose(in);
    if (rerr) {
        vlm_atomic_abort(&a);
        return vlm_err(VLM_ERR_IO, "reading %s failed", src);
    }
    return vlm_atomic_commit(&a);
}

vlm_status vlm_file_stat(const char *path, uint64_t *size, int64_t *mtime_ns) {
    struct stat st;
    if (stat(path, &st) != 0) return vlm_err(VLM_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    if (size) *size = (uint64_t)st.st_size;
    if (mtime_ns) *mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
    return VLM_OK;
}
