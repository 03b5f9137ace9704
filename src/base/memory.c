#include "base/memory.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void *vlm_alloc(size_t bytes, const char *what) {
    void *p = NULL;
    size_t rounded = (bytes + VLM_ALIGN - 1) / VLM_ALIGN * VLM_ALIGN;
    if (rounded < bytes || posix_memalign(&p, VLM_ALIGN, rounded ? rounded : VLM_ALIGN) != 0) {
        vlm_err(VLM_ERR_NOMEM, "out of memory allocating %zu bytes for %s", bytes, what);
        return NULL;
    }
    return p;
}

void *vlm_calloc(size_t count, size_t size, const char *what) {
    if (size && count > SIZE_MAX / size) {
        vlm_err(VLM_ERR_NOMEM, "allocation size overflow for %s (%zu x %zu)", what, count, size);
        return NULL;
    }
    void *p = vlm_alloc(count * size, what);
    if (p) memset(p, 0, count * size);
    return p;
}

void vlm_free(void *p) { free(p); }

char *vlm_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (!d) {
        vlm_err(VLM_ERR_NOMEM, "out of memory copying a string of %zu bytes", n);
        return NULL;
    }
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
