/* The safetensors writer: header first (offsets in spec order), then data streamed in, written to a
 * temporary file and renamed into place only when every byte has arrived. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "io/json.h"
#include "io/safetensors.h"

struct vlm_st_writer {
    vlm_atomic_file file;
    uint64_t expected, written;
};

size_t vlm_st_spec_bytes(const vlm_st_spec *s) {
    uint64_t n = vlm_dtype_size(s->dtype);
    for (int i = 0; i < s->ndim; i++) {
        if (s->shape[i] < 0) return 0;
        if (s->shape[i] && n > UINT64_MAX / (uint64_t)s->shape[i]) return 0;
        n *= (uint64_t)s->shape[i];
    }
    return (size_t)n;
}

vlm_status vlm_st_writer_open(vlm_st_writer **out, const char *path, const vlm_st_spec *specs, int n,
                              const char *const *meta_keys, const char *const *meta_values, int n_meta) {
    *out = NULL;
    vlm_strbuf h = {0};
    vlm_sb_append(&h, "{", 1);
    if (n_meta > 0) {
        vlm_sb_append(&h, "\"__metadata__\":{", 16);
        for (int i = 0; i < n_meta; i++) {
            if (i) vlm_sb_append(&h, ",", 1);
            vlm_sb_json_string(&h, meta_keys[i], strlen(meta_keys[i]));
            vlm_sb_append(&h, ":", 1);
            vlm_sb_json_string(&h, meta_values[i], strlen(meta_values[i]));
        }
        vlm_sb_append(&h, "}", 1);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const vlm_st_spec *s = &specs[i];
        if (vlm_dtype_is_quantized(s->dtype)) {
            vlm_sb_free(&h);
            return vlm_err(VLM_ERR_INVALID, "%s: tensor %s: block formats are stored as U8 tensors", path, s->name);
        }
        size_t bytes = vlm_st_spec_bytes(s);
        if (!bytes && vlm_dtype_size(s->dtype) && s->ndim) {
            int zero = 0;
            for (int d = 0; d < s->ndim; d++) zero |= s->shape[d] == 0;
            if (!zero) {
                vlm_sb_free(&h);
                return vlm_err(VLM_ERR_INVALID, "%s: tensor %s: size overflows", path, s->name);
            }
        }
        if (n_meta > 0 || i) vlm_sb_append(&h, ",", 1);
        vlm_sb_json_string(&h, s->name, strlen(s->name));
        vlm_sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", vlm_dtype_name(s->dtype));
        for (int d = 0; d < s->ndim; d++) vlm_sb_printf(&h, "%s%lld", d ? "," : "", (long long)s->shape[d]);
        vlm_sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                      (unsigned long long)(off + bytes));
        off += bytes;
    }
    vlm_sb_append(&h, "}", 1);
    while (!h.failed && h.len % 8) vlm_sb_append(&h, " ", 1); /* data starts 8-byte aligned */
    if (h.failed) {
        vlm_sb_free(&h);
        return vlm_err(VLM_ERR_NOMEM, "out of memory building the header of %s", path);
    }
    vlm_st_writer *w = vlm_calloc(1, sizeof *w, "a safetensors writer");
    if (!w) {
        vlm_sb_free(&h);
        return VLM_ERR_NOMEM;
    }
    vlm_status s = vlm_atomic_open(&w->file, path);
    if (s == VLM_OK) {
        uint8_t len[8];
        for (int i = 0; i < 8; i++) len[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
        if (fwrite(len, 1, 8, w->file.f) != 8 || fwrite(h.data, 1, h.len, w->file.f) != h.len) {
            s = vlm_err(VLM_ERR_IO, "writing %s failed: %s", path, strerror(errno));
            vlm_atomic_abort(&w->file);
        }
    }
    vlm_sb_free(&h);
    if (s != VLM_OK) {
        free(w);
        return s;
    }
    w->expected = off;
    *out = w;
    return VLM_OK;
}

vlm_status vlm_st_writer_data(vlm_st_writer *w, const void *data, size_t n) {
    if (w->written + n > w->expected)
        return vlm_err(VLM_ERR_INVALID, "%s: more tensor data than the header announced", w->file.path);
    if (n && fwrite(data, 1, n, w->file.f) != n)
        return vlm_err(VLM_ERR_IO, "writing %s failed: %s", w->file.path, strerror(errno));
    w->written += n;
    return VLM_OK;
}

vlm_status vlm_st_writer_close(vlm_st_writer *w) {
    vlm_status s;
    if (w->written != w->expected) {
        s = vlm_err(VLM_ERR_INVALID, "%s: %llu of %llu data bytes written", w->file.path,
                    (unsigned long long)w->written, (unsigned long long)w->expected);
        vlm_atomic_abort(&w->file);
    } else {
        s = vlm_atomic_commit(&w->file);
    }
    free(w);
    return s;
}

void vlm_st_writer_abort(vlm_st_writer *w) {
    if (!w) return;
    vlm_atomic_abort(&w->file);
    free(w);
}

vlm_status vlm_st_save(const char *path, const vlm_st_spec *specs, const void *const *data, int n,
                       const char *const *meta_keys, const char *const *meta_values, int n_meta) {
    /* Tensors go in order of decreasing element size (stable), as the Python writer does, so that
     * every tensor starts aligned to its element size (the format allows no padding between them). */
    int *order = vlm_alloc(((size_t)n + 1) * sizeof *order, "the order of the tensors to save");
    vlm_st_spec *sorted = order ? vlm_alloc(((size_t)n + 1) * sizeof *sorted, "the tensors to save") : NULL;
    if (!order || !sorted) {
        vlm_free(order);
        return vlm_err_ctx(VLM_ERR_NOMEM, "saving %s", path);
    }
    int k = 0;
    for (int pass = 0; pass < 5; pass++) { /* sizes 8, 4, 2, 1, then anything else */
        for (int i = 0; i < n; i++) {
            size_t size = vlm_dtype_size(specs[i].dtype);
            int is_pow2 = size == 8 || size == 4 || size == 2 || size == 1;
            if ((pass < 4 && size == (size_t)8 >> pass) || (pass == 4 && !is_pow2)) {
                order[k] = i;
                sorted[k++] = specs[i];
            }
        }
    }
    vlm_st_writer *w = NULL;
    vlm_status s = vlm_st_writer_open(&w, path, sorted, k, meta_keys, meta_values, n_meta);
    for (int i = 0; s == VLM_OK && i < k; i++) s = vlm_st_writer_data(w, data[order[i]], vlm_st_spec_bytes(&sorted[i]));
    if (s == VLM_OK) s = vlm_st_writer_close(w);
    else if (w) vlm_st_writer_abort(w);
    free(order);
    free(sorted);
    return s;
}
