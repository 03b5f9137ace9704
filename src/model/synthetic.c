#include "model/synthetic.h"

#include <dirent.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/memory.h"
#include "io/data_path.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/weights.h"

/* ---- the tensor list, from the same table the binder uses ---- */
typedef struct {
    char name[160];
    int ndim;
    int64_t shape[VLM_MAX_DIMS];
} spec_item;

typedef struct {
    spec_item *v;
    int n, cap;
    int failed;
} spec_list;

static void collect(void *ctx, const char *name, int ndim, const int64_t *shape) {
    spec_list *l = ctx;
    if (l->failed) return;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 256;
        spec_item *p = vlm_realloc(l->v, (size_t)cap * sizeof *p, "the list of synthetic tensors");
        if (!p) {
            l->failed = 1;
            return;
        }
        l->v = p;
        l->cap = cap;
    }
    spec_item *it = &l->v[l->n++];
    snprintf(it->name, sizeof it->name, "%s", name);
    it->ndim = ndim;
    for (int i = 0; i < ndim; i++) it->shape[i] = shape[i];
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

/* ---- values: a counter-based generator, so threads fill any range deterministically ---- */
static inline uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* Norm weights are 1 and LayerNorm biases 0; every other tensor is uniform with std 0.02 (the
 * models' initializer_range), so activations stay finite through every layer. */
static void fill(uint16_t *dst, size_t n, size_t first, const char *name, uint64_t seed) {
    int is_norm_w = strstr(name, "norm") && ends_with(name, ".weight");
    int is_norm_b = strstr(name, "norm") && ends_with(name, ".bias");
    if (is_norm_w || is_norm_b) {
        uint16_t v = vlm_f32_to_bf16(is_norm_w ? 1.0f : 0.0f);
        for (size_t i = 0; i < n; i++) dst[i] = v;
        return;
    }
    const float a = 0.02f * 1.7320508f; /* uniform(-a, a) has std 0.02 */
    uint64_t key = hash_name(name) ^ splitmix64(seed);
#pragma omp parallel for schedule(static) if (n > 65536)
    for (size_t i = 0; i < n; i += 4) {
        uint64_t r = splitmix64(key + (first + i) / 4);
        for (size_t j = 0; j < 4 && i + j < n; j++) {
            float u = (float)((r >> (16 * j)) & 0xffff) * (1.0f / 65536.0f);
            dst[i + j] = vlm_f32_to_bf16((2.0f * u - 1.0f) * a);
        }
    }
}

/* Fills tensor i in chunks, so a 7 GB checkpoint is written with a 64 MB buffer. */
typedef struct {
    const spec_item *items;
    uint64_t seed;
    uint16_t *buf;
    size_t chunk;
} fill_ctx;

static vlm_status fill_tensor(void *ctx, int i, vlm_st_writer *w) {
    fill_ctx *f = ctx;
    size_t total = 1;
    for (int d = 0; d < f->items[i].ndim; d++) total *= (size_t)f->items[i].shape[d];
    for (size_t done = 0; done < total; done += f->chunk) {
        size_t m = total - done < f->chunk ? total - done : f->chunk;
        fill(f->buf, m, done, f->items[i].name, f->seed);
        VLM_TRY(vlm_st_writer_data(w, f->buf, m * 2));
    }
    return VLM_OK;
}

static void report(void *user, uint64_t done, uint64_t total) {
    vlm_progress(done == total, "make-synthetic: %.0f%% of %.1f GB", 100.0 * (double)done / (double)total,
                 (double)total / 1e9);
}

static vlm_status write_weights(const char *out_dir, const spec_list *l, uint64_t seed, uint64_t shard_bytes) {
    vlm_st_spec *specs = vlm_calloc((size_t)l->n + 1, sizeof *specs, "the synthetic tensors");
    fill_ctx f = {.items = l->v, .seed = seed, .chunk = (size_t)32 << 20};
    f.buf = specs ? vlm_alloc(f.chunk * 2, "synthetic weights") : NULL;
    vlm_status s = (!specs || !f.buf) ? VLM_ERR_NOMEM : VLM_OK;
    for (int i = 0; s == VLM_OK && i < l->n; i++) {
        specs[i] = (vlm_st_spec){.name = l->v[i].name, .dtype = VLM_DT_BF16, .ndim = l->v[i].ndim};
        memcpy(specs[i].shape, l->v[i].shape, sizeof specs[i].shape);
    }
    const char *mk[] = {"format"}, *mv[] = {"pt"};
    if (s == VLM_OK)
        s = vlm_st_write_sharded(out_dir, specs, l->n, shard_bytes, fill_tensor, &f, mk, mv, 1, report, NULL);
    vlm_free(f.buf);
    free(specs);
    return s;
}

/* Finds the config: a name under configs/, a directory, or a file. */
static vlm_status find_config(const char *config, char *cfg_dir, size_t cap, char *cfg_file, size_t fcap) {
    if (vlm_is_file(config)) {
        snprintf(cfg_file, fcap, "%s", config);
        snprintf(cfg_dir, cap, "%s", config);
        char *slash = strrchr(cfg_dir, '/');
        if (slash) *slash = '\0';
        else snprintf(cfg_dir, cap, ".");
        return VLM_OK;
    }
    if (vlm_is_dir(config)) {
        snprintf(cfg_dir, cap, "%s", config);
    } else {
        char rel[VLM_PATH_MAX];
        snprintf(rel, sizeof rel, "configs/%s", config);
        if (strchr(config, '/') || vlm_data_path(rel, cfg_dir, cap) != VLM_OK) {
            char names[512];
            vlm_synthetic_config_names(names, sizeof names);
            return vlm_err(VLM_ERR_NOT_FOUND, "config '%s' not found: not a file, a directory, or one of: %s", config,
                           names);
        }
    }
    VLM_TRY(vlm_path_join(cfg_file, fcap, cfg_dir, "config.json"));
    if (!vlm_is_file(cfg_file)) return vlm_err(VLM_ERR_NOT_FOUND, "%s not found", cfg_file);
    return VLM_OK;
}

void vlm_synthetic_config_names(char *buf, size_t cap) {
    char dir[VLM_PATH_MAX];
    buf[0] = '\0';
    if (vlm_data_path("configs", dir, sizeof dir) != VLM_OK) return;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    size_t n = 0;
    while ((e = readdir(d)) != NULL && n < cap) {
        if (e->d_name[0] == '.') continue;
        n += (size_t)snprintf(buf + n, cap - n, "%s%s", n ? ", " : "", e->d_name);
    }
    closedir(d);
}

/* Copies a support file: from the config's directory when it has one, else from assets/. */
static vlm_status copy_support(const char *cfg_dir, const char *asset_rel, const char *name, const char *out_dir) {
    char src[VLM_PATH_MAX], dst[VLM_PATH_MAX];
    VLM_TRY(vlm_path_join(src, sizeof src, cfg_dir, name));
    if (!vlm_is_file(src)) VLM_TRY(vlm_data_path(asset_rel, src, sizeof src));
    VLM_TRY(vlm_path_join(dst, sizeof dst, out_dir, name));
    return vlm_copy_file(src, dst);
}

vlm_status vlm_make_synthetic(const char *config, const char *out_dir, uint64_t seed, uint64_t shard_bytes) {
    char cfg_dir[VLM_PATH_MAX], cfg_file[VLM_PATH_MAX], path[VLM_PATH_MAX];
    VLM_TRY(find_config(config, cfg_dir, sizeof cfg_dir, cfg_file, sizeof cfg_file));
    cJSON *root;
    VLM_TRY(vlm_json_load(cfg_file, &root));
    vlm_model_config cfg;
    vlm_status s = vlm_config_parse(root, cfg_file, &cfg);
    cJSON_Delete(root);
    if (s != VLM_OK) return s;
    spec_list l = {0};
    s = vlm_enumerate_weights(&cfg, VLM_NAMES_LEGACY, 1, 1, collect, &l);
    if (s == VLM_OK && l.failed) s = VLM_ERR_NOMEM; /* vlm_realloc named it */
    if (s != VLM_OK) {
        vlm_free(l.v);
        return s;
    }
    s = vlm_mkdirs(out_dir);
    if (s == VLM_OK) s = write_weights(out_dir, &l, seed, shard_bytes);
    free(l.v);
    if (s == VLM_OK) s = vlm_path_join(path, sizeof path, out_dir, "config.json");
    if (s == VLM_OK) s = vlm_copy_file(cfg_file, path);
    if (s == VLM_OK) s = copy_support(cfg_dir, "assets/generation_config.json", "generation_config.json", out_dir);
    if (s == VLM_OK) s = copy_support(cfg_dir, "assets/preprocessor_config.json", "preprocessor_config.json", out_dir);
    if (s == VLM_OK) s = copy_support(cfg_dir, "assets/tokenizer/tokenizer.json", "tokenizer.json", out_dir);
    if (s == VLM_OK)
        s = copy_support(cfg_dir, "assets/tokenizer/tokenizer_config.json", "tokenizer_config.json", out_dir);
    if (s == VLM_OK) s = copy_support(cfg_dir, "assets/tokenizer/chat_template.json", "chat_template.json", out_dir);
    return s;
}
