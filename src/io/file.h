/* Files: whole-file reads, read-only mappings, atomic writes (temporary name, then rename),
 * directories and paths. Every failure names the path and the cause. */
#ifndef VLM_IO_FILE_H
#define VLM_IO_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"

enum { VLM_PATH_MAX = 4096 };

/* Reads a whole file into a NUL-terminated buffer (freed with free()); *len excludes the NUL.
 * Files larger than max_bytes are refused (0 = no limit). */
vlm_status vlm_read_file(const char *path, size_t max_bytes, char **data, size_t *len);

/* A read-only mapping of a whole file. */
typedef struct {
    void *data;
    size_t size;
} vlm_mapping;
vlm_status vlm_map_file(const char *path, vlm_mapping *m);
void vlm_unmap(vlm_mapping *m);

/* Atomic write: vlm_atomic_open creates "<path>.tmp.<pid>"; vlm_atomic_commit flushes, closes and
 * renames it to path; vlm_atomic_abort closes and removes it. Nothing is left half-written. */
typedef struct {
    FILE *f;
    char path[VLM_PATH_MAX];
    char tmp[VLM_PATH_MAX];
} vlm_atomic_file;
vlm_status vlm_atomic_open(vlm_atomic_file *a, const char *path);
vlm_status vlm_atomic_commit(vlm_atomic_file *a);
void vlm_atomic_abort(vlm_atomic_file *a);
/* Writes a whole buffer atomically. */
vlm_status vlm_write_file(const char *path, const void *data, size_t len);

int vlm_path_exists(const char *path);
int vlm_is_dir(const char *path);
int vlm_is_file(const char *path);
/* out = a + "/" + b; an error if it does not fit. */
vlm_status vlm_path_join(char *out, size_t cap, const char *a, const char *b);
/* mkdir -p */
vlm_status vlm_mkdirs(const char *path);
/* rm -rf of a directory the project created (refuses "/" and ""). */
vlm_status vlm_remove_tree(const char *path);
/* Copies a file (atomically at the destination). */
vlm_status vlm_copy_file(const char *src, const char *dst);
/* File size and modification time (ns); an error when the file cannot be stat'ed. */
vlm_status vlm_file_stat(const char *path, uint64_t *size, int64_t *mtime_ns);

#endif
