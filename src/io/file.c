#include "io/file.h"
#include "base/memory.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

const char *vlm_file_kind(unsigned mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

vlm_status vlm_open_regular(const char *path, int *fd_out) {
    *fd_out = -1;
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer forever */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return vlm_err(VLM_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return vlm_err(VLM_ERR_IO, "cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return vlm_err(VLM_ERR_IO, "%s is %s, not a regular file", path, vlm_file_kind(st.st_mode));
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK); /* no effect on regular files, cleared anyway */
    *fd_out = fd;
    return VLM_OK;
}

vlm_status vlm_read_file(const char *path, size_t max_bytes, char **data, size_t *len) {
    *data = NULL;
    if (len) *len = 0;
    int fd;
    VLM_TRY(vlm_open_regular(path, &fd));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return vlm_err(VLM_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    }
    size_t size = (size_t)st.st_size;
    if (max_bytes && size > max_bytes) {
        close(fd);
        return vlm_err(VLM_ERR_FORMAT, "%s is too large (%zu bytes, limit %zu)", path, size, max_bytes);
    }
    char *buf = vlm_alloc(size + 1, "a file's contents");
    if (!buf) {
        close(fd);
        return vlm_err_ctx(VLM_ERR_NOMEM, "reading %s", path);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t n = read(fd, buf + got, size - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += (size_t)n;
    }
    close(fd);
    if (got != size) {
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
    int fd;
    VLM_TRY(vlm_open_regular(path, &fd));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return vlm_err(VLM_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
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
    if (snprintf(a->path, sizeof a->path, "%s", path) >= (int)sizeof a->path)
        return vlm_err(VLM_ERR_INVALID, "path too long: %s", path);
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
        /* /dev/null, /dev/stdout, a pipe: written in place (a rename would replace the device node) */
        a->f = fopen(path, "wb");
        if (!a->f) return vlm_err(VLM_ERR_IO, "cannot open %s for writing: %s", path, strerror(errno));
        return VLM_OK;
    }
    VLM_TRY(vlm_tmp_name(a->tmp, sizeof a->tmp, path));
    a->f = fopen(a->tmp, "wb");
    if (!a->f) return vlm_err(VLM_ERR_IO, "cannot create %s: %s", a->tmp, strerror(errno));
    flock(fileno(a->f), LOCK_EX | LOCK_NB); /* marks it as a live writer's (vlm_reap_temporaries) */
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
        if (a->tmp[0]) unlink(a->tmp);
        return vlm_err(VLM_ERR_IO, "writing %s failed: %s", a->path, strerror(e ? e : EIO));
    }
    if (a->tmp[0] && rename(a->tmp, a->path) != 0) {
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

vlm_status vlm_check_output_path(const char *path, const char *what) {
    if (!path[0]) return vlm_err(VLM_ERR_INVALID, "%s: the path is empty", what);
    struct stat st;
    if (stat(path, &st) == 0) {
        if (S_ISDIR(st.st_mode)) return vlm_err(VLM_ERR_INVALID, "%s %s: is a directory", what, path);
        if (!S_ISREG(st.st_mode)) { /* written in place (vlm_atomic_open) */
            if (access(path, W_OK) != 0)
                return vlm_err(VLM_ERR_IO, "%s %s (%s) cannot be written: %s", what, path, vlm_file_kind(st.st_mode),
                               strerror(errno));
            return VLM_OK;
        }
    }
    /* a file is written as a temporary beside it, then renamed: its directory must take new files */
    char dir[VLM_PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s", path) >= (int)sizeof dir)
        return vlm_err(VLM_ERR_INVALID, "%s: path too long: %s", what, path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    if (stat(dir, &st) != 0)
        return vlm_err(VLM_ERR_NOT_FOUND, "%s %s: the directory %s does not exist", what, path, dir);
    if (!S_ISDIR(st.st_mode))
        return vlm_err(VLM_ERR_INVALID, "%s %s: %s is %s, not a directory", what, path, dir, vlm_file_kind(st.st_mode));
    if (access(dir, W_OK | X_OK) != 0)
        return vlm_err(VLM_ERR_IO, "%s %s: cannot write in %s: %s", what, path, dir, strerror(errno));
    return VLM_OK;
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
    int fd;
    VLM_TRY(vlm_open_regular(src, &fd));
    FILE *in = fdopen(fd, "rb");
    if (!in) {
        close(fd);
        return vlm_err(VLM_ERR_IO, "cannot open %s: %s", src, strerror(errno));
    }
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
