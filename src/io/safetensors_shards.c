/* Writing a checkpoint as one safetensors file or as shards with an index, the layout Hugging Face
 * uses (used by make-synthetic, split and quantize). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "io/json.h"
#include "io/safetensors.h"

vlm_status vlm_st_write_sharded(const char *dir, const vlm_st_spec *specs, int n, uint64_t shard_bytes,
                                vlm_st_fill_fn fill, void *ctx, const char *const *meta_keys,
                                const char *const *meta_values, int n_meta,
                                void (*progress)(void *user, uint64_t done, uint64_t total), void *user) {
    if (!shard_bytes) shard_bytes = (uint64_t)4 << 30;
    int *first = vlm_calloc((size_t)n + 2, sizeof *first, "the shard plan");
    if (!first) return VLM_ERR_NOMEM;
    int n_shards = 0;
    uint64_t acc = 0, total = 0;
    for (int i = 0; i < n; i++) {
        uint64_t b = vlm_st_spec_bytes(&specs[i]);
        if (i == 0 || (acc > 0 && acc + b > shard_bytes)) {
            first[n_shards++] = i;
            acc = 0;
        }
        acc += b;
        total += b;
    }
    if (n == 0) first[n_shards++] = 0;
    first[n_shards] = n;
    vlm_status s = VLM_OK;
    vlm_strbuf index = {0};
    if (n_shards > 1)
        vlm_sb_printf(&index, "{\n  \"metadata\": {\"total_size\": %llu},\n  \"weight_map\": {",
                      (unsigned long long)total);
    uint64_t done = 0;
    for (int sh = 0; s == VLM_OK && sh < n_shards; sh++) {
        char fname[64], path[VLM_PATH_MAX];
        if (n_shards == 1) snprintf(fname, sizeof fname, "model.safetensors");
        else snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", sh + 1, n_shards);
        s = vlm_path_join(path, sizeof path, dir, fname);
        int a = first[sh], b = first[sh + 1];
        vlm_st_writer *w = NULL;
        if (s == VLM_OK) s = vlm_st_writer_open(&w, path, specs + a, b - a, meta_keys, meta_values, n_meta);
        for (int i = a; s == VLM_OK && i < b; i++) {
            s = fill(ctx, i, w);
            done += vlm_st_spec_bytes(&specs[i]);
            if (progress) progress(user, done, total);
            if (n_shards > 1) {
                vlm_sb_printf(&index, "%s\n    ", i ? "," : "");
                vlm_sb_json_string(&index, specs[i].name, strlen(specs[i].name));
                vlm_sb_printf(&index, ": \"%s\"", fname);
            }
        }
        if (w) {
            if (s == VLM_OK) s = vlm_st_writer_close(w);
            else vlm_st_writer_abort(w);
        }
    }
    if (s == VLM_OK && n_shards > 1) {
        char path[VLM_PATH_MAX];
        vlm_sb_printf(&index, "\n  }\n}\n");
        s = vlm_path_join(path, sizeof path, dir, "model.safetensors.index.json");
        if (s == VLM_OK)
            s = index.failed ? vlm_err(VLM_ERR_NOMEM, "out of memory writing %s", path)
                             : vlm_write_file(path, index.data, index.len);
    }
    vlm_sb_free(&index);
    free(first);
    return s;
}
