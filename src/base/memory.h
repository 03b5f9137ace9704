/* Allocation with failures reported as errors, and memory probes (resident set, peak, available). */
#ifndef VLM_BASE_MEMORY_H
#define VLM_BASE_MEMORY_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

enum { VLM_ALIGN = 64 };

/* Every allocation of the engine goes through these (only the libraries' own allocations — cJSON,
 * libjpeg, libpng, PCRE2, ONNX Runtime, the CUDA runtime — do not). On failure each records
 * "out of memory allocating N bytes for WHAT" and returns NULL: WHAT names what the memory is for,
 * and callers return VLM_ERR_NOMEM without replacing that message (vlm_err_ctx may add context).
 * Memory from any of them is released with vlm_free. */
void *vlm_alloc(size_t bytes, const char *what); /* 64-byte aligned */
void *vlm_alloc_aligned(size_t bytes, size_t align, const char *what);
void *vlm_calloc(size_t count, size_t size, const char *what);
/* Grows or shrinks p (NULL: a new block) to bytes; on failure p is left as it was. The result is
 * aligned as malloc aligns (16 bytes), not VLM_ALIGN. */
void *vlm_realloc(void *p, size_t bytes, const char *what);
char *vlm_strdup(const char *s, const char *what);
void vlm_free(void *p);

/* Allocation-failure injection, as SQLite tests its failure paths: the n-th allocation from now
 * (1: the next) fails as if memory were exhausted; 0 turns injection off. The environment variable
 * VLM_FAIL_ALLOC=N does the same from the first allocation of the process (for the CLI).
 * vlm_alloc_count says how many allocations were made since the last vlm_alloc_fail_at, and
 * vlm_alloc_failed whether the injected failure has happened. Counts are process-wide (atomic). */
void vlm_alloc_fail_at(uint64_t n);
uint64_t vlm_alloc_count(void);
int vlm_alloc_failed(void);
/* What the injected failure was for (the allocation's `what`), "" before it happened. */
const char *vlm_alloc_failure_what(void);

/* Resident set size of this process, now and its peak (VmHWM), in bytes; 0 when unknown. */
uint64_t vlm_rss_bytes(void);
uint64_t vlm_peak_rss_bytes(void);
/* Resets the peak RSS counter to the current RSS where the kernel allows it (returns 0 if done). */
int vlm_reset_peak_rss(void);
/* Hands the allocator's free memory back to the system (glibc keeps large freed blocks for reuse:
 * after a model with an ONNX Runtime session is freed, ~2.7 GB stayed resident and counted in the
 * next model's RSS). A hint: does nothing where the C library has no such call. */
void vlm_release_free_memory(void);
/* MemAvailable from /proc/meminfo, or the cgroup limit minus usage when that is smaller, or
 * $VLM_MEMORY_LIMIT_MB when that is smaller still. */
uint64_t vlm_available_memory_bytes(void);

#endif
