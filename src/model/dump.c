#include "model/dump.h"

#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "io/safetensors.h"

typedef struct {
    char name[96];
    vlm_st_spec spec;
    void *data;
} dump_item;

struct vlm_dump {
    dump_item *items;
    int n, cap;
};

vlm_status vlm_dump_create(vlm_dump **out) {
    *out = vlm_calloc(1, sizeof **out, "a tensor dump");
    return *out ? VLM_OK : VLM_ERR_NOMEM;
}

void vlm_dump_free(vlm_dump *d) {
    if (!d) return;
    for (int i = 0; i < d->n; i++) free(d->items[i].data);
    free(d->items);
    free(d);
}

/* A slot for name (reused when the name exists), with bytes of storage. */
static vlm_status slot(vlm_dump *d, const char *name, vlm_dtype t, int ndim, const int64_t *shape, void **data) {
    dump_item *it = NULL;
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->items[i].name, name)) it = &d->items[i];
    if (!it) {
        if (d->n == d->cap) {
            int cap = d->cap ? 2 * d->cap : 16;
            dump_item *p = vlm_realloc(d->items, (size_t)cap * sizeof *p, "the list of dumped tensors");
            if (!p) return VLM_ERR_NOMEM;
            d->items = p;
            d->cap = cap;
        }
        it = &d->items[d->n++];
        memset(it, 0, sizeof *it);
    }
    vlm_free(it->data);
    it->data = NULL;
    snprintf(it->name, sizeof it->name, "%s", name);
    it->spec = (vlm_st_spec){.name = it->name, .dtype = t, .ndim = ndim};
    for (int i = 0; i < ndim; i++) it->spec.shape[i] = shape[i];
    size_t bytes = vlm_st_spec_bytes(&it->spec);
    it->data = vlm_alloc(bytes ? bytes : 1, "a dumped tensor");
    if (!it->data) return vlm_err_ctx(VLM_ERR_NOMEM, "dumping %s", name);
    *data = it->data;
    return VLM_OK;
}

vlm_status vlm_dump_f32(vlm_dump *d, vlm_backend *be, const char *name, const float *dev, int64_t rows, int64_t cols) {
    if (!d) return VLM_OK;
    void *p = NULL;
    int64_t shape[2] = {rows, cols};
    VLM_TRY(slot(d, name, VLM_DT_F32, 2, shape, &p));
    VLM_TRY(vlm_sync(be));
    return vlm_to_host(be, p, dev, (size_t)(rows * cols) * sizeof(float));
}

vlm_status vlm_dump_f32_host(vlm_dump *d, const char *name, const float *data, int ndim, const int64_t *shape) {
    if (!d) return VLM_OK;
    void *p = NULL;
    VLM_TRY(slot(d, name, VLM_DT_F32, ndim, shape, &p));
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    memcpy(p, data, (size_t)n * sizeof(float));
    return VLM_OK;
}

vlm_status vlm_dump_i64(vlm_dump *d, const char *name, const int64_t *data, int ndim, const int64_t *shape) {
    if (!d) return VLM_OK;
    void *p = NULL;
    VLM_TRY(slot(d, name, VLM_DT_I64, ndim, shape, &p));
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    memcpy(p, data, (size_t)n * sizeof(int64_t));
    return VLM_OK;
}

vlm_status vlm_dump_i32_as_i64(vlm_dump *d, const char *name, const int32_t *data, int ndim, const int64_t *shape) {
    if (!d) return VLM_OK;
    void *p = NULL;
    VLM_TRY(slot(d, name, VLM_DT_I64, ndim, shape, &p));
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    for (int64_t i = 0; i < n; i++) ((int64_t *)p)[i] = data[i];
    return VLM_OK;
}

vlm_status vlm_dump_grids(vlm_dump *d, const char *name, const vlm_grid_thw *grids, int n) {
    if (!d) return VLM_OK;
    void *p = NULL;
    int64_t shape[2] = {n, 3};
    VLM_TRY(slot(d, name, VLM_DT_I64, 2, shape, &p));
    int64_t *g = p;
    for (int i = 0; i < n; i++) g[3 * i] = grids[i].t, g[3 * i + 1] = grids[i].h, g[3 * i + 2] = grids[i].w;
    return VLM_OK;
}

vlm_status vlm_dump_write(const vlm_dump *d, const char *path) {
    vlm_st_spec *specs = vlm_calloc((size_t)d->n + 1, sizeof *specs, "the dumped tensors");
    const void **data = specs ? vlm_calloc((size_t)d->n + 1, sizeof *data, "the dumped tensors") : NULL;
    vlm_status s = (!specs || !data) ? vlm_err_ctx(VLM_ERR_NOMEM, "writing %s", path) : VLM_OK;
    for (int i = 0; s == VLM_OK && i < d->n; i++) {
        specs[i] = d->items[i].spec;
        specs[i].name = d->items[i].name; /* the items may have moved since the spec was made */
        data[i] = d->items[i].data;
    }
    if (s == VLM_OK) s = vlm_st_save(path, specs, data, d->n, NULL, NULL, 0);
    free(specs);
    free(data);
    return s;
}
