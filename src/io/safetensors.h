/* safetensors: a validating, mmapping reader (one file, a directory, or shards listed in
 * model.safetensors.index.json) and a streaming, atomic writer.
 *
 * Format: u64 little-endian header length, a JSON header {name: {dtype, shape, data_offsets},
 * "__metadata__": {str: str}}, then the data; offsets are relative to the end of the header. */
#ifndef VLM_IO_SAFETENSORS_H
#define VLM_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "io/file.h"
#include "tensor/tensor.h"

enum { VLM_ST_MAX_HEADER = 100 << 20 }; /* the format's own limit on header size */

typedef struct {
    const char *name;
    vlm_dtype dtype; /* a plain dtype: F32 F16 BF16 I64 I32 I8 U8 */
    int ndim;
    int64_t shape[VLM_MAX_DIMS];
    const void *data; /* inside the mapping */
    size_t nbytes;
    int file; /* index of the file that holds it */
} vlm_st_entry;

typedef struct {
    char path[VLM_PATH_MAX];
    vlm_mapping map;
    size_t header_len;
    char *metadata_json; /* the "__metadata__" object as JSON text, or NULL */
    int borrowed;        /* map not owned (vlm_st_open_buffer) */
} vlm_st_file;

typedef struct {
    vlm_st_file *files;
    int n_files;
    vlm_st_entry *entries; /* sorted by name */
    int n_entries;
} vlm_safetensors;

/* Opens path: a .safetensors file, a model.safetensors.index.json, or a directory holding either
 * (a directory without an index takes every *.safetensors file in it, in name order). */
vlm_status vlm_st_open(const char *path, vlm_safetensors **out);
/* Parses safetensors bytes held by the caller (kept alive until close); name is used in messages. */
vlm_status vlm_st_open_buffer(const void *data, size_t size, const char *name, vlm_safetensors **out);
void vlm_st_close(vlm_safetensors *st);
/* NULL when absent. */
const vlm_st_entry *vlm_st_find(const vlm_safetensors *st, const char *name);
/* A value of the "__metadata__" map of the file holding entry e (or file 0 when e is NULL). */
const char *vlm_st_meta(const vlm_safetensors *st, const vlm_st_entry *e, const char *key);
/* A tensor view of an entry. */
vlm_tensor vlm_st_tensor(const vlm_st_entry *e);
/* Sum of tensor bytes whose name starts with prefix ("" = all). */
uint64_t vlm_st_bytes_with_prefix(const vlm_safetensors *st, const char *prefix);

/* ---- writer ---- */
typedef struct {
    const char *name;
    vlm_dtype dtype;
    int ndim;
    int64_t shape[VLM_MAX_DIMS];
} vlm_st_spec;

typedef struct vlm_st_writer vlm_st_writer;
/* Writes the header for specs (data follows in spec order). meta: n_meta key/value pairs. */
vlm_status vlm_st_writer_open(vlm_st_writer **w, const char *path, const vlm_st_spec *specs, int n,
                              const char *const *meta_keys, const char *const *meta_values, int n_meta);
/* Appends tensor bytes; the total must end up equal to the sum of the specs' sizes. */
vlm_status vlm_st_writer_data(vlm_st_writer *w, const void *data, size_t n);
/* Checks the byte count and renames the file into place. Frees w. */
vlm_status vlm_st_writer_close(vlm_st_writer *w);
/* Removes the partial file. Frees w. */
void vlm_st_writer_abort(vlm_st_writer *w);
/* Writes n in-memory tensors in one call. */
vlm_status vlm_st_save(const char *path, const vlm_st_spec *specs, const void *const *data, int n,
                       const char *const *meta_keys, const char *const *meta_values, int n_meta);
/* Bytes of one spec's data; 0 on overflow. */
size_t vlm_st_spec_bytes(const vlm_st_spec *s);

/* ---- sharded checkpoints ---- */
/* Produces the bytes of tensor `index` by calling vlm_st_writer_data on w (any number of times). */
typedef vlm_status (*vlm_st_fill_fn)(void *ctx, int index, vlm_st_writer *w);
/* Writes n tensors into dir as model.safetensors, or, when they exceed shard_bytes (0 = 4 GiB), as
 * model-0000i-of-0000n.safetensors shards (consecutive runs of tensors) plus
 * model.safetensors.index.json. Every file is written atomically. progress(user, done, total bytes)
 * may be NULL. */
vlm_status vlm_st_write_sharded(const char *dir, const vlm_st_spec *specs, int n, uint64_t shard_bytes,
                                vlm_st_fill_fn fill, void *ctx, const char *const *meta_keys,
                                const char *const *meta_values, int n_meta,
                                void (*progress)(void *user, uint64_t done, uint64_t total), void *user);

#endif
