#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/memory.h"
#include "io/json.h"

static const vlm_dtype k_plain[] = {VLM_DT_F32, VLM_DT_F16, VLM_DT_BF16, VLM_DT_I64, VLM_DT_I32, VLM_DT_I8, VLM_DT_U8};

static int parse_plain_dtype(const char *name, vlm_dtype *t) {
    for (size_t i = 0; i < sizeof k_plain / sizeof k_plain[0]; i++) {
        if (!strcmp(name, vlm_dtype_name(k_plain[i]))) {
            *t = k_plain[i];
            return 0;
        }
    }
    return -1;
}

/* Names are owned by a per-set string arena: one allocation per name keeps this simple. */
typedef struct {
    vlm_st_entry *v;
    int n, cap;
} entry_vec;

static vlm_status entry_push(entry_vec *ev, const vlm_st_entry *e) {
    if (ev->n == ev->cap) {
        int cap = ev->cap ? ev->cap * 2 : 256;
        vlm_st_entry *p = vlm_realloc(ev->v, (size_t)cap * sizeof *p, "the list of tensors");
        if (!p) return VLM_ERR_NOMEM;
        ev->v = p;
        ev->cap = cap;
    }
    ev->v[ev->n++] = *e;
    return VLM_OK;
}

typedef struct {
    uint64_t begin, end;
    const char *name;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

static int cmp_entry(const void *a, const void *b) {
    return strcmp(((const vlm_st_entry *)a)->name, ((const vlm_st_entry *)b)->name);
}

/* Parses one tensor description; `path` and `name` only feed error messages. */
static vlm_status parse_entry(const cJSON *desc, const char *path, const char *name, uint64_t data_size,
                              vlm_st_entry *e, span *sp) {
    if (!cJSON_IsObject(desc))
        return vlm_err(VLM_ERR_FORMAT, "%s: tensor %s: description must be an object", path, name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(desc, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(desc, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(desc, "data_offsets");
    if (!cJSON_IsString(dt))
        return vlm_err(VLM_ERR_FORMAT, "%s: tensor %s: missing or non-string \"dtype\"", path, name);
    if (parse_plain_dtype(dt->valuestring, &e->dtype) != 0)
        return vlm_err(VLM_ERR_UNSUPPORTED,
                       "%s: tensor %s has dtype %s, which is not supported (supported: F32, F16, BF16, "
                       "I64, I32, I8, U8)",
                       path, name, dt->valuestring);
    if (!cJSON_IsArray(shape))
        return vlm_err(VLM_ERR_FORMAT, "%s: tensor %s: missing or non-array \"shape\"", path, name);
    int nd = cJSON_GetArraySize(shape);
    if (nd > VLM_MAX_DIMS)
        return vlm_err(VLM_ERR_UNSUPPORTED, "%s: tensor %s has %d dimensions (at most %d supported)", path, name, nd,
                       VLM_MAX_DIMS);
    e->ndim = nd;
    uint64_t numel = 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape) {
        double v = cJSON_IsNumber(d) ? d->valuedouble : -1;
        /* range first: casting a double outside int64's range (1e19) is undefined behaviour */
        if (!(v >= 0 && v <= 9.0e15) || v != floor(v))
            return vlm_err(VLM_ERR_FORMAT, "%s: tensor %s: shape[%d] is not a non-negative integer", path, name, i);
        e->shape[i++] = (int64_t)v;
        if (v > 0 && numel > UINT64_MAX / (uint64_t)v)
            return vlm_err(VLM_ERR_FORMAT, "%s: tensor %s: shape overflows", path, name);
        numel *= (uint64_t)v;
    }
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return vlm_err(VLM_ERR_FORMAT, "%s: tensor %s: \"data_offsets\" must be [begin, end]", path, name);
    double b = cJSON_GetArrayItem(offs, 0)->valuedouble, en = cJSON_GetArrayItem(offs, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(offs, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(offs, 1)) ||
        !(b >= 0 && en >= 0) || b != floor(b) || en != floor(en))
        return vlm_err(VLM_ERR_FORMAT, "%s: tensor %s: \"data_offsets\" must be non-negative integers", path, name);
    /* exact in a double up to 2^53, and no file is that large: refuse before casting (1e20 does not
     * fit a uint64_t, and such a cast is undefined behaviour) */
    if (b > (double)data_size || en > (double)data_size)
        return vlm_err(VLM_ERR_FORMAT,
                       "%s: tensor %s: data_offsets [%.17g, %.17g] out of range (data section is %llu bytes; "
                       "file truncated?)",
                       path, name, b, en, (unsigned long long)data_size);
    uint64_t begin = (uint64_t)b, end = (uint64_t)en;
    if (begin > end || end > data_size)
        return vlm_err(VLM_ERR_FORMAT,
                       "%s: tensor %s: data_offsets [%llu, %llu] out of range (data section is %llu bytes; "
                       "file truncated?)",
                       path, name, (unsigned long long)begin, (unsigned long long)end, (unsigned long long)data_size);
    uint64_t esz = vlm_dtype_size(e->dtype);
    if (numel > UINT64_MAX / esz || numel * esz != end - begin)
        return vlm_err(VLM_ERR_FORMAT, "%s: tensor %s: %llu bytes in data_offsets but shape x dtype needs %llu", path,
                       name, (unsigned long long)(end - begin), (unsigned long long)(numel * esz));
    e->nbytes = (size_t)(end - begin);
    sp->begin = begin;
    sp->end = end;
    sp->name = name;
    return VLM_OK;
}

/* Validates one file's bytes (f->map), appending its tensors to ev. */
static vlm_status parse_file(vlm_st_file *f, int file_index, entry_vec *ev) {
    const uint8_t *p = f->map.data;
    size_t size = f->map.size;
    if (size < 8) return vlm_err(VLM_ERR_FORMAT, "%s: not a safetensors file (%zu bytes, too short)", f->path, size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | p[i];
    if (hlen > VLM_ST_MAX_HEADER)
        return vlm_err(VLM_ERR_FORMAT, "%s: header length %llu exceeds the %d-byte limit (not a safetensors file?)",
                       f->path, (unsigned long long)hlen, VLM_ST_MAX_HEADER);
    if (hlen > size - 8)
        return vlm_err(VLM_ERR_FORMAT, "%s: header length %llu but the file has only %zu bytes (truncated?)", f->path,
                       (unsigned long long)hlen, size);
    if (hlen < 2)
        return vlm_err(VLM_ERR_FORMAT, "%s: header too short (%llu bytes)", f->path, (unsigned long long)hlen);
    f->header_len = (size_t)hlen;
    char what[VLM_PATH_MAX + 32];
    snprintf(what, sizeof what, "header of %s", f->path);
    cJSON *root;
    VLM_TRY(vlm_json_parse((const char *)p + 8, (size_t)hlen, what, &root));
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return vlm_err(VLM_ERR_FORMAT, "%s: header must be a JSON object", f->path);
    }
    uint64_t data_size = size - 8 - hlen;
    const uint8_t *data = p + 8 + hlen;
    int count = cJSON_GetArraySize(root);
    span *spans = vlm_alloc(((size_t)count + 1) * sizeof *spans, "the tensor extents of a safetensors header");
    if (!spans) {
        cJSON_Delete(root);
        return vlm_err_ctx(VLM_ERR_NOMEM, "%s", f->path);
    }
    int ns = 0;
    vlm_status s = VLM_OK;
    const cJSON *item;
    cJSON_ArrayForEach(item, root) {
        const char *name = item->string;
        if (!strcmp(name, "__metadata__")) {
            const cJSON *m;
            if (!cJSON_IsObject(item)) {
                s = vlm_err(VLM_ERR_FORMAT, "%s: \"__metadata__\" must be an object of strings", f->path);
                break;
            }
            cJSON_ArrayForEach(m, item) {
                if (!cJSON_IsString(m)) {
                    s = vlm_err(VLM_ERR_FORMAT, "%s: \"__metadata__\".%s must be a string", f->path, m->string);
                    break;
                }
            }
            if (s != VLM_OK) break;
            free(f->metadata_json);
            f->metadata_json = cJSON_PrintUnformatted(item);
            if (!f->metadata_json) {
                s = vlm_err(VLM_ERR_NOMEM, "%s: out of memory copying the \"__metadata__\"", f->path);
                break;
            }
            continue;
        }
        vlm_st_entry e = {0};
        s = parse_entry(item, f->path, name, data_size, &e, &spans[ns]);
        if (s != VLM_OK) break;
        e.name = vlm_strdup(name, "a tensor name");
        if (!e.name) {
            s = VLM_ERR_NOMEM;
            break;
        }
        e.data = data + spans[ns].begin;
        e.file = file_index;
        spans[ns].name = e.name;
        ns++;
        s = entry_push(ev, &e);
        if (s != VLM_OK) {
            free((char *)e.name);
            break;
        }
    }
    if (s == VLM_OK) {
        if (ns > 1) qsort(spans, (size_t)ns, sizeof *spans, cmp_span);
        for (int i = 1; i < ns; i++) {
            if (spans[i].begin < spans[i - 1].end && spans[i].end > spans[i].begin) {
                s = vlm_err(VLM_ERR_FORMAT, "%s: tensors %s and %s overlap in the data section", f->path,
                            spans[i - 1].name, spans[i].name);
                break;
            }
        }
    }
    free(spans);
    cJSON_Delete(root);
    return s;
}

static vlm_status open_file(vlm_st_file *f, int file_index, entry_vec *ev) {
    VLM_TRY(vlm_map_file(f->path, &f->map));
    return parse_file(f, file_index, ev);
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Lists the shard files: from an index's weight_map, or every *.safetensors in a directory. */
typedef struct {
    char **v;
    int n, cap;
} path_list;

static void free_names(char **v, int n) {
    for (int i = 0; i < n; i++) vlm_free(v[i]);
    vlm_free(v);
}

static vlm_status path_push(path_list *l, const char *dir, const char *name) {
    char full[VLM_PATH_MAX];
    VLM_TRY(vlm_path_join(full, sizeof full, dir, name));
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 8;
        char **p = vlm_realloc(l->v, (size_t)cap * sizeof *p, "the list of safetensors files");
        if (!p) return VLM_ERR_NOMEM;
        l->v = p;
        l->cap = cap;
    }
    if (!(l->v[l->n] = vlm_strdup(full, "a safetensors path"))) return VLM_ERR_NOMEM;
    l->n++;
    return VLM_OK;
}

/* The shard files a model.safetensors.index.json names, each once, in order of first mention. */
static vlm_status files_of_index(const char *index_path, const char *dir, cJSON **index, path_list *l) {
    VLM_TRY(vlm_json_load(index_path, index));
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(*index, "weight_map");
    if (!cJSON_IsObject(wm)) return vlm_err(VLM_ERR_FORMAT, "%s: missing \"weight_map\" object", index_path);
    const cJSON *e;
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e))
            return vlm_err(VLM_ERR_FORMAT, "%s: weight_map entry %s must name a file", index_path, e->string);
        if (strchr(e->valuestring, '/') || !strcmp(e->valuestring, ".."))
            return vlm_err(VLM_ERR_FORMAT, "%s: weight_map file name %s must not contain '/'", index_path,
                           e->valuestring);
        int seen = 0;
        for (int i = 0; i < l->n && !seen; i++) {
            const char *base = strrchr(l->v[i], '/');
            seen = !strcmp(base ? base + 1 : l->v[i], e->valuestring);
        }
        if (!seen) VLM_TRY(path_push(l, dir, e->valuestring));
    }
    return VLM_OK;
}

/* Every *.safetensors file of a directory, sorted by name. */
static vlm_status files_of_dir(const char *dir, path_list *l) {
    DIR *d = opendir(dir);
    if (!d) return vlm_err(VLM_ERR_IO, "cannot open directory %s", dir);
    vlm_status s = VLM_OK;
    for (struct dirent *de; s == VLM_OK && (de = readdir(d)) != NULL;)
        if (has_suffix(de->d_name, ".safetensors")) s = path_push(l, dir, de->d_name);
    closedir(d);
    if (s != VLM_OK) return s;
    if (!l->n) return vlm_err(VLM_ERR_NOT_FOUND, "no *.safetensors file in %s", dir);
    qsort(l->v, (size_t)l->n, sizeof *l->v, cmp_str);
    return VLM_OK;
}

static vlm_status list_files(const char *path, char ***files, int *n, cJSON **index) {
    char buf[VLM_PATH_MAX];
    *files = NULL;
    *n = 0;
    *index = NULL;
    const char *index_path = NULL;
    const char *dir = NULL;
    char dirbuf[VLM_PATH_MAX];
    if (vlm_is_dir(path)) {
        VLM_TRY(vlm_path_join(buf, sizeof buf, path, "model.safetensors.index.json"));
        if (vlm_is_file(buf)) index_path = buf;
        dir = path;
    } else if (has_suffix(path, ".json")) {
        index_path = path;
        snprintf(dirbuf, sizeof dirbuf, "%s", path);
        char *slash = strrchr(dirbuf, '/');
        if (slash) *slash = '\0';
        else snprintf(dirbuf, sizeof dirbuf, ".");
        dir = dirbuf;
    } else {
        if (!vlm_path_exists(path)) return vlm_err(VLM_ERR_NOT_FOUND, "%s does not exist", path);
        *files = vlm_alloc(sizeof(char *), "the list of safetensors files");
        if (!*files) return VLM_ERR_NOMEM;
        if (!((*files)[0] = vlm_strdup(path, "a safetensors path"))) {
            vlm_free(*files);
            *files = NULL;
            return VLM_ERR_NOMEM;
        }
        *n = 1;
        return VLM_OK;
    }
    path_list l = {0};
    vlm_status s = index_path ? files_of_index(index_path, dir, index, &l) : files_of_dir(dir, &l);
    if (s != VLM_OK) {
        free_names(l.v, l.n);
        return s;
    }
    *files = l.v;
    *n = l.n;
    return VLM_OK;
}

void vlm_st_close(vlm_safetensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n_entries; i++) free((char *)st->entries[i].name);
    free(st->entries);
    for (int i = 0; i < st->n_files; i++) {
        if (!st->files[i].borrowed) vlm_unmap(&st->files[i].map);
        free(st->files[i].metadata_json);
    }
    free(st->files);
    free(st);
}

vlm_status vlm_st_open(const char *path, vlm_safetensors **out) {
    *out = NULL;
    char **names = NULL;
    int n = 0;
    cJSON *index = NULL;
    vlm_status s = list_files(path, &names, &n, &index);
    vlm_safetensors *st = s == VLM_OK ? vlm_calloc(1, sizeof *st, "a safetensors reader") : NULL;
    entry_vec ev = {0};
    if (s == VLM_OK && !st) s = VLM_ERR_NOMEM;
    if (s == VLM_OK && !(st->files = vlm_calloc((size_t)n, sizeof *st->files, "the safetensors files")))
        s = VLM_ERR_NOMEM;
    for (int i = 0; s == VLM_OK && i < n; i++) {
        snprintf(st->files[i].path, sizeof st->files[i].path, "%s", names[i]);
        st->n_files = i + 1;
        s = open_file(&st->files[i], i, &ev);
    }
    if (st) {
        st->entries = ev.v;
        st->n_entries = ev.n;
    }
    if (s == VLM_OK && st->n_entries > 1) {
        qsort(st->entries, (size_t)st->n_entries, sizeof *st->entries, cmp_entry);
        for (int i = 1; i < st->n_entries; i++) {
            if (!strcmp(st->entries[i].name, st->entries[i - 1].name)) {
                s = vlm_err(VLM_ERR_FORMAT, "tensor %s appears twice (in %s and %s)", st->entries[i].name,
                            st->files[st->entries[i - 1].file].path, st->files[st->entries[i].file].path);
                break;
            }
        }
    }
    if (s == VLM_OK && index) { /* every tensor the index names must be in the file it names */
        const cJSON *e;
        cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(index, "weight_map")) {
            const vlm_st_entry *t = vlm_st_find(st, e->string);
            const char *base = t ? strrchr(st->files[t->file].path, '/') : NULL;
            base = base ? base + 1 : (t ? st->files[t->file].path : NULL);
            if (!t || strcmp(base, e->valuestring) != 0) {
                s = vlm_err(VLM_ERR_FORMAT, "index lists tensor %s in %s, but that file does not hold it", e->string,
                            e->valuestring);
                break;
            }
        }
    }
    free_names(names, n);
    cJSON_Delete(index);
    if (s != VLM_OK) {
        vlm_st_close(st);
        return s;
    }
    *out = st;
    return VLM_OK;
}

vlm_status vlm_st_open_buffer(const void *data, size_t size, const char *name, vlm_safetensors **out) {
    *out = NULL;
    vlm_safetensors *st = vlm_calloc(1, sizeof *st, "a safetensors reader");
    if (!st || !(st->files = vlm_calloc(1, sizeof *st->files, "the safetensors files"))) {
        vlm_free(st);
        return VLM_ERR_NOMEM;
    }
    st->n_files = 1;
    vlm_st_file *f = &st->files[0];
    snprintf(f->path, sizeof f->path, "%s", name);
    f->map.data = (void *)data;
    f->map.size = size;
    f->borrowed = 1;
    entry_vec ev = {0};
    vlm_status s = parse_file(f, 0, &ev);
    st->entries = ev.v;
    st->n_entries = ev.n;
    if (s == VLM_OK && st->n_entries > 1) {
        qsort(st->entries, (size_t)st->n_entries, sizeof *st->entries, cmp_entry);
        for (int i = 1; i < st->n_entries && s == VLM_OK; i++)
            if (!strcmp(st->entries[i].name, st->entries[i - 1].name))
                s = vlm_err(VLM_ERR_FORMAT, "%s: tensor %s appears twice", name, st->entries[i].name);
    }
    if (s != VLM_OK) {
        vlm_st_close(st);
        return s;
    }
    *out = st;
    return VLM_OK;
}

const vlm_st_entry *vlm_st_find(const vlm_safetensors *st, const char *name) {
    if (st->n_entries == 0) return NULL;
    vlm_st_entry key = {.name = name};
    return bsearch(&key, st->entries, (size_t)st->n_entries, sizeof key, cmp_entry);
}

const char *vlm_st_meta(const vlm_safetensors *st, const vlm_st_entry *e, const char *key) {
    static _Thread_local char value[1024];
    int fi = e ? e->file : 0;
    if (fi >= st->n_files || !st->files[fi].metadata_json) return NULL;
    cJSON *m = cJSON_Parse(st->files[fi].metadata_json);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m, key);
    const char *r = NULL;
    if (cJSON_IsString(v)) {
        snprintf(value, sizeof value, "%s", v->valuestring);
        r = value;
    }
    cJSON_Delete(m);
    return r;
}

vlm_tensor vlm_st_tensor(const vlm_st_entry *e) {
    vlm_tensor t = {.dtype = e->dtype, .ndim = e->ndim, .data = (void *)e->data, .nbytes = e->nbytes};
    for (int i = 0; i < e->ndim; i++) t.shape[i] = e->shape[i];
    return t;
}

uint64_t vlm_st_bytes_with_prefix(const vlm_safetensors *st, const char *prefix) {
    uint64_t total = 0;
    size_t lp = strlen(prefix);
    for (int i = 0; i < st->n_entries; i++)
        if (!strncmp(st->entries[i].name, prefix, lp)) total += st->entries[i].nbytes;
    return total;
}
