/* Artifact writers' locks and temporaries (file.h): a flock on the output directory, temporaries
 * named "<final>.vlm-tmp.<pid>" and held locked by their writer, and the reaping of those left by
 * writers that were killed. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "io/file.h"

static const char k_tmp_tag[] = ".vlm-tmp.";

vlm_status vlm_tmp_name(char *out, size_t cap, const char *final_path) {
    int n = snprintf(out, cap, "%s%s%d", final_path, k_tmp_tag, (int)getpid());
    if (n < 0 || (size_t)n >= cap) return vlm_err(VLM_ERR_INVALID, "path too long: %s", final_path);
    return VLM_OK;
}

/* The pid in a temporary's name "*.vlm-tmp.<pid>", or 0 when the name is not one. */
static pid_t tmp_owner(const char *name) {
    const char *tag = NULL;
    for (const char *p = strstr(name, k_tmp_tag); p; p = strstr(p + 1, k_tmp_tag)) tag = p;
    if (!tag || tag == name) return 0;
    const char *d = tag + sizeof k_tmp_tag - 1;
    long pid = 0;
    for (; *d; d++) {
        if (*d < '0' || *d > '9' || pid > 1 << 30) return 0;
        pid = pid * 10 + (*d - '0');
    }
    return d == tag + sizeof k_tmp_tag - 1 ? 0 : (pid_t)pid;
}

static int process_exists(pid_t pid) { return kill(pid, 0) == 0 || errno == EPERM; }

/* 1 when some process holds the temporary locked (its writer is alive, maybe in another PID
 * namespace sharing this directory), or it cannot be opened to tell. */
static int tmp_is_locked(const char *path) {
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return 1;
    int locked = flock(fd, LOCK_EX | LOCK_NB) != 0;
    close(fd);
    return locked;
}

vlm_status vlm_reap_temporaries(const char *dir, int *n_removed) {
    if (n_removed) *n_removed = 0;
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? VLM_OK : vlm_err(VLM_ERR_IO, "cannot read directory %s: %s", dir, strerror(errno));
    vlm_status s = VLM_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        pid_t pid = tmp_owner(e->d_name);
        if (pid <= 0 || pid == getpid() || process_exists(pid)) continue;
        char path[VLM_PATH_MAX];
        if (vlm_path_join(path, sizeof path, dir, e->d_name) != VLM_OK || tmp_is_locked(path)) continue;
        vlm_status r = vlm_remove_tree(path);
        if (r == VLM_OK) {
            VLM_LOG_I("removed %s, left by a writer (pid %d) that no longer runs", path, (int)pid);
            if (n_removed) (*n_removed)++;
        } else if (s == VLM_OK) {
            s = r;
        }
    }
    closedir(d);
    return s;
}

/* ---- the directory lock ---- */

/* flock is per open file: two descriptors of one process on one directory exclude each other, so
 * the process keeps one per locked directory, with its owning thread and a depth for re-entry. */
enum { MAX_HELD = 16 };
static struct {
    int used, fd, depth;
    dev_t dev;
    ino_t ino;
    pthread_t owner;
} g_held[MAX_HELD];
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;

vlm_status vlm_writer_lock(const char *dir, vlm_dir_lock *lock) {
    lock->slot = -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return vlm_err(VLM_ERR_IO, "cannot open directory %s to lock it: %s", dir, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return vlm_err(VLM_ERR_IO, "cannot stat %s: %s", dir, strerror(errno));
    }
    pthread_mutex_lock(&g_mu);
    int slot = -1;
    for (;;) {
        int other = -1;
        for (int i = 0; i < MAX_HELD; i++)
            if (g_held[i].used && g_held[i].dev == st.st_dev && g_held[i].ino == st.st_ino) other = i;
        if (other < 0) break;
        if (pthread_equal(g_held[other].owner, pthread_self())) { /* re-entry */
            g_held[other].depth++;
            pthread_mutex_unlock(&g_mu);
            close(fd);
            lock->slot = other;
            return VLM_OK;
        }
        pthread_cond_wait(&g_cv, &g_mu);
    }
    for (int i = 0; i < MAX_HELD && slot < 0; i++)
        if (!g_held[i].used) slot = i;
    if (slot < 0) {
        pthread_mutex_unlock(&g_mu);
        close(fd);
        return vlm_err(VLM_ERR_IO, "cannot lock %s: %d directories are locked already", dir, MAX_HELD);
    }
    g_held[slot].used = 1, g_held[slot].fd = fd, g_held[slot].depth = 1;
    g_held[slot].dev = st.st_dev, g_held[slot].ino = st.st_ino, g_held[slot].owner = pthread_self();
    pthread_mutex_unlock(&g_mu);
    lock->slot = slot;

    int r = flock(fd, LOCK_EX | LOCK_NB);
    if (r != 0 && errno == EWOULDBLOCK) {
        VLM_LOG_I("waiting for another vlm process writing in %s", dir);
        while ((r = flock(fd, LOCK_EX)) != 0 && errno == EINTR) {}
    }
    if (r != 0) {
        int e = errno;
        vlm_writer_unlock(lock);
        return vlm_err(VLM_ERR_IO, "cannot lock directory %s: %s", dir, strerror(e));
    }
    vlm_status s = vlm_reap_temporaries(dir, NULL);
    if (s != VLM_OK) VLM_LOG_W("%s", vlm_last_error()); /* leftovers stay; this write still goes on */
    return VLM_OK;
}

vlm_status vlm_writer_lock_for(const char *final_path, vlm_dir_lock *lock) {
    char dir[VLM_PATH_MAX];
    lock->slot = -1;
    if (snprintf(dir, sizeof dir, "%s", final_path) >= (int)sizeof dir)
        return vlm_err(VLM_ERR_INVALID, "path too long: %s", final_path);
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') dir[--n] = '\0';
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    VLM_TRY(vlm_mkdirs(dir));
    return vlm_writer_lock(dir, lock);
}

void vlm_writer_unlock(vlm_dir_lock *lock) {
    if (lock->slot < 0) return;
    pthread_mutex_lock(&g_mu);
    if (--g_held[lock->slot].depth == 0) {
        flock(g_held[lock->slot].fd, LOCK_UN);
        close(g_held[lock->slot].fd);
        g_held[lock->slot].used = 0;
        pthread_cond_broadcast(&g_cv);
    }
    pthread_mutex_unlock(&g_mu);
    lock->slot = -1;
}

/* ---- temporary directories ---- */

vlm_status vlm_tmp_dir_create(vlm_tmp_dir *t, const char *final_path) {
    t->fd = -1;
    VLM_TRY(vlm_tmp_name(t->path, sizeof t->path, final_path));
    VLM_TRY(vlm_remove_tree(t->path)); /* this process's own, from an earlier failed attempt */
    if (mkdir(t->path, 0755) != 0)
        return vlm_err(VLM_ERR_IO, "cannot create directory %s: %s", t->path, strerror(errno));
    t->fd = open(t->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (t->fd >= 0) flock(t->fd, LOCK_EX | LOCK_NB);
    return VLM_OK;
}

void vlm_tmp_dir_abort(vlm_tmp_dir *t) {
    if (t->path[0]) vlm_remove_tree(t->path);
    if (t->fd >= 0) close(t->fd);
    t->fd = -1;
    t->path[0] = '\0';
}

void vlm_tmp_dir_close(vlm_tmp_dir *t) {
    if (t->fd >= 0) close(t->fd);
    t->fd = -1;
    t->path[0] = '\0';
}

vlm_status vlm_replace_dir(const char *dir, const char *final_path) {
    if (rename(dir, final_path) == 0) return VLM_OK; /* final absent (or an empty directory) */
    /* rename cannot replace a non-empty directory: final goes aside under a temporary's name, so a
     * kill between the renames leaves something the next writer of this directory reaps */
    char old[VLM_PATH_MAX + 8], aside[VLM_PATH_MAX + 32];
    snprintf(old, sizeof old, "%s.old", final_path);
    VLM_TRY(vlm_tmp_name(aside, sizeof aside, old));
    VLM_TRY(vlm_remove_tree(aside));
    if (rename(final_path, aside) != 0)
        return vlm_err(VLM_ERR_IO, "cannot move %s aside to replace it: %s", final_path, strerror(errno));
    if (rename(dir, final_path) != 0) {
        int e = errno;
        rename(aside, final_path);
        return vlm_err(VLM_ERR_IO, "cannot rename %s to %s: %s", dir, final_path, strerror(e));
    }
    return vlm_remove_tree(aside);
}
