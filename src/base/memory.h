/* Allocation with failures reported as errors, and memory probes (resident set, peak, available). */
#ifndef VLM_BASE_MEMORY_H
#define VLM_BASE_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

enum { VLM_ALIGN = 64 };

/* 64-byte aligned allocation; on failure records "out of memory allocating N bytes for WHAT". */
void *vlm_alloc(size_t bytes, const char *what);
void *vlm_calloc(size_t count, size_t size, const char *what);
void vlm_free(void *p);
/* strdup that records an error on failure. */
char *vlm_strdup(const char *s);

/* Resident set size of this process, now and its peak (VmHWM), in bytes; 0 when unknown. */
uint64_t vlm_rss_bytes(void);
uint64_t vlm_peak_rss_bytes(void);
/* Resets the peak RSS counter to the current RSS where the kernel allows it (returns 0 if done). */
int vlm_reset_peak_rss(void);
/* MemAvailable from /proc/meminfo, or the cgroup limit minus usage when that is smaller, or
 * $VLM_MEMORY_LIMIT_MB when that is smaller still. */
uint64_t vlm_available_memory_bytes(void);

#endif
