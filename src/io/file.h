/* Files: whole-file reads, read-only mappings, atomic writes (temporary name, then rename),
 * directories and paths. Every failure names the path and the cause. */
#ifndef VLM_IO_FILE_H
#define VLM_IO_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"

enum { VLM_PATH_MAX = 4096 };

/* Opens an input file for reading, refusing anything but a regular file without blocking on it
 * (a FIFO's open would wait for a writer forever): "PATH is a FIFO (named pipe), not a regular
 * file". Every input path (images, prompt files, model files) is opened through it. */
vlm_status vlm_open_regular(const char *path, int *fd);
/* "a directory", "a FIFO (named pipe)", "a character device", ... for a stat mode. */
const char *vlm_file_kind(unsigned mode);

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

/* Atomic write: vlm_atomic_open creates the temporary "<path>.vlm-tmp.<pid>" (vlm_tmp_name);
 * vlm_atomic_commit flushes, closes and renames it to path; vlm_atomic_abort closes and removes it.
 * Nothing is left half-written; a killed writer's temporary is reaped by the next artifact writer
 * of that directory (vlm_writer_lock). */
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
/* Whether path can be written the way vlm_atomic_open writes it (its directory exists and takes
 * new files; it is not a directory; a device or pipe is writable), checked before the long work
 * (loading a model, generating) so that a bad output path fails in a second, naming `what`
 * ("--json"). An existing device or pipe (/dev/null, /dev/stdout) is written in place. */
vlm_status vlm_check_output_path(const char *path, const char *what);

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

/* ---- Artifact writers (split, quantize, ONNX export): file_writer.c ----
 * A writer holds an exclusive lock on the directory it writes into (flock, so a second process
 * writing the same artifact waits, then finds it fresh instead of racing it), and writes each
 * part into a temporary named "<final>.vlm-tmp.<pid>" that it keeps locked while it lives. Taking
 * the lock reaps the temporaries of writers that no longer exist (killed mid-write: up to gigabytes
 * each), never those of a live one. The lock is re-entrant within a thread (vlm_split_ensure
 * holds it around vlm_split_write, which takes it too); other threads of the process wait. */
typedef struct {
    int slot; /* -1: not held */
} vlm_dir_lock;
vlm_status vlm_writer_lock(const char *dir, vlm_dir_lock *lock);
/* The same for the directory that holds final_path (created when missing). */
vlm_status vlm_writer_lock_for(const char *final_path, vlm_dir_lock *lock);
void vlm_writer_unlock(vlm_dir_lock *lock);
/* "<final>.vlm-tmp.<pid>" */
vlm_status vlm_tmp_name(char *out, size_t cap, const char *final_path);
/* Removes dir's entries named "*.vlm-tmp.<pid>" whose process is gone and which no process holds
 * locked; *n_removed (may be NULL) counts them. */
vlm_status vlm_reap_temporaries(const char *dir, int *n_removed);

/* A temporary directory "<final>.vlm-tmp.<pid>" for a writer: created empty and locked while the
 * writer holds it. Once it has been put in place (vlm_replace_dir), close releases it; abort
 * removes it. */
typedef struct {
    char path[VLM_PATH_MAX];
    int fd;
} vlm_tmp_dir;
vlm_status vlm_tmp_dir_create(vlm_tmp_dir *t, const char *final_path);
void vlm_tmp_dir_close(vlm_tmp_dir *t);
void vlm_tmp_dir_abort(vlm_tmp_dir *t);
/* Renames dir to final_path; an existing final_path is moved aside first (under a temporary's
 * name, reaped if the process dies before removing it) and removed after. */
vlm_status vlm_replace_dir(const char *dir, const char *final_path);

#endif
