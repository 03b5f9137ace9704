#include "base/memory.h"

#include <inttypes.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- failure injection ---- */
static _Atomic uint64_t g_count;   /* allocations since the last vlm_alloc_fail_at */
static _Atomic uint64_t g_fail_at; /* 0: off */
static _Atomic int g_failed, g_env_read;
static const char *_Atomic g_failed_what;

void vlm_alloc_fail_at(uint64_t n) {
    atomic_store(&g_env_read, 1); /* an explicit setting wins over VLM_FAIL_ALLOC */
    atomic_store(&g_count, 0);
    atomic_store(&g_failed, 0);
    atomic_store(&g_failed_what, NULL);
    atomic_store(&g_fail_at, n);
}

uint64_t vlm_alloc_count(void) { return atomic_load(&g_count); }
int vlm_alloc_failed(void) { return atomic_load(&g_failed); }

const char *vlm_alloc_failure_what(void) {
    const char *w = atomic_load(&g_failed_what);
    return w ? w : "";
}

/* The one point every allocation passes: counts it, and says whether it is the one to fail. */
static int alloc_point(const char *what) {
    if (!atomic_load(&g_env_read) && !atomic_exchange(&g_env_read, 1)) {
        const char *e = getenv("VLM_FAIL_ALLOC");
        if (e && *e) atomic_store(&g_fail_at, strtoull(e, NULL, 10));
    }
    uint64_t k = atomic_fetch_add(&g_count, 1) + 1;
    if (k != atomic_load(&g_fail_at)) return 0;
    atomic_store(&g_failed_what, what);
    atomic_store(&g_failed, 1);
    return 1;
}

static void *nomem(size_t bytes, const char *what) {
    vlm_err(VLM_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes, what ? what : "(unnamed)");
    return NULL;
}

void *vlm_alloc_aligned(size_t bytes, size_t align, const char *what) {
    void *p = NULL;
    size_t rounded = (bytes + align - 1) / align * align;
    if (alloc_point(what) || rounded < bytes || posix_memalign(&p, align, rounded ? rounded : align) != 0)
        return nomem(bytes, what);
    return p;
}

void *vlm_alloc(size_t bytes, const char *what) { return vlm_alloc_aligned(bytes, VLM_ALIGN, what); }

void *vlm_calloc(size_t count, size_t size, const char *what) {
    if (size && count > SIZE_MAX / size) {
        vlm_err(VLM_ERR_NOMEM, "allocation size overflow for %s (%zu x %zu)", what, count, size);
        return NULL;
    }
    void *p = vlm_alloc(count * size, what);
    if (p) memset(p, 0, count * size);
    return p;
}

void *vlm_realloc(void *p, size_t bytes, const char *what) {
    void *q = alloc_point(what) ? NULL : realloc(p, bytes ? bytes : 1);
    return q ? q : nomem(bytes, what);
}

void vlm_free(void *p) { free(p); }

char *vlm_strdup(const char *s, const char *what) {
    size_t n = strlen(s) + 1;
    char *d = alloc_point(what) ? NULL : malloc(n);
    if (!d) return nomem(n, what);
    memcpy(d, s, n);
    return d;
}

/* Reads "Key:   123 kB" from a /proc file. */
static uint64_t proc_kb(const char *path, const char *key) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[256];
    size_t klen = strlen(key);
    uint64_t v = 0;
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, key, klen) && line[klen] == ':') {
            v = strtoull(line + klen + 1, NULL, 10) * 1024;
            break;
        }
    }
    fclose(f);
    return v;
}

uint64_t vlm_rss_bytes(void) { return proc_kb("/proc/self/status", "VmRSS"); }
uint64_t vlm_peak_rss_bytes(void) { return proc_kb("/proc/self/status", "VmHWM"); }

void vlm_release_free_memory(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

int vlm_reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return -1;
    int ok = fputs("5", f) >= 0;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

static uint64_t read_u64_file(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char buf[64] = {0};
    uint64_t v = 0;
    if (fgets(buf, sizeof buf, f) && strncmp(buf, "max", 3) != 0) v = strtoull(buf, NULL, 10);
    fclose(f);
    return v;
}

uint64_t vlm_available_memory_bytes(void) {
    uint64_t avail = proc_kb("/proc/meminfo", "MemAvailable");
    /* VLM_MEMORY_LIMIT_MB caps what vlm plans to use (shared machines, tests of the limits) */
    const char *cap = getenv("VLM_MEMORY_LIMIT_MB");
    if (cap && strtoull(cap, NULL, 10) > 0) {
        uint64_t c = strtoull(cap, NULL, 10) << 20;
        if (!avail || c < avail) avail = c;
    }
    uint64_t limit = read_u64_file("/sys/fs/cgroup/memory.max");
    if (limit) {
        uint64_t used = read_u64_file("/sys/fs/cgroup/memory.current");
        uint64_t left = limit > used ? limit - used : 0;
        if (!avail || left < avail) avail = left;
    }
    return avail;
}
