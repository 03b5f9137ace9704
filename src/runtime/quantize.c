#include "runtime/quantize.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/cpu.h"
#include "base/log.h"
#include "base/memory.h"
#include "base/timer.h"
#include "io/file.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model/config.h"
#include "model/weights.h"
#include "runtime/artifact.h"
#include "tensor/quant.h"

enum { CHUNK_FLOATS = 4 << 20 }; /* rows converted to f32 per step: 16 MB */

/* Support files copied when the source has them (config.json is rewritten, not copied). */
static const char *const k_support[] = {"generation_config.json",
                                        "tokenizer.json",
                                        "tokenizer_config.json",
                                        "chat_template.json",
                                        "chat_template.jinja",
                                        "vocab.json",
                                        "merges.txt",
                                        "special_tokens_map.json",
                                        "added_tokens.json",
                                        "preprocessor_config.json",
                                        NULL};

void vlm_quant_options_default(vlm_quant_options *o) {
    memset(o, 0, sizeof *o);
    o->linear = VLM_DT_Q4_0;
    o->embed = VLM_DT_Q8_0;
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

vlm_dtype vlm_quant_choose(const char *name, int ndim, const int64_t *shape, int is_vision, int is_text,
                           const vlm_quant_options *o) {
    if (ndim != 2 || !ends_with(name, ".weight")) return VLM_QUANT_KEEP; /* norms, biases, the conv kernel */
    vlm_dtype t = VLM_QUANT_KEEP;
    if (is_text) {
        if (ends_with(name, "embed_tokens.weight") || !strcmp(name, "lm_head.weight")) t = o->embed;
        else if (ends_with(name, "_proj.weight")) t = o->linear;
    } else if (is_vision && o->vision) {
        t = o->linear;
    }
    if (t == VLM_QUANT_KEEP || !vlm_dtype_is_quantized(t) || shape[1] % vlm_dtype_block(t)) return VLM_QUANT_KEEP;
    return t;
}

void vlm_quant_kind(const vlm_quant_options *o, char *buf, int cap) {
    snprintf(buf, (size_t)cap, "%s-%s", o->language_only ? "language" : "quantized", vlm_quant_tag(o->linear));
}

/* ---- streaming the tensors ---- */
typedef struct {
    const vlm_st_entry **src;
    vlm_dtype *qt; /* VLM_QUANT_KEEP or the format */
    float *f32;
    uint8_t *qbuf;
    size_t f32_cap, qbuf_cap;
    const vlm_quant_options *o;
} fill_ctx;

/* Drops a source range from this process's resident set once written (the page cache keeps it
 * while memory allows), so quantizing a 7 GB checkpoint needs no more than a few MB of RSS. */
static void release_pages(const void *p, size_t n) {
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)p & ~(page - 1), b = ((uintptr_t)p + n + page - 1) & ~(page - 1);
    if (n) madvise((void *)a, b - a, MADV_DONTNEED);
}

static vlm_status grow(void **buf, size_t *cap, size_t need, const char *what) {
    if (need <= *cap) return VLM_OK;
    vlm_free(*buf);
    *buf = vlm_alloc(need, what);
    *cap = *buf ? need : 0;
    return *buf ? VLM_OK : VLM_ERR_NOMEM;
}

static vlm_status quantize_tensor(fill_ctx *c, const vlm_st_entry *e, vlm_dtype t, vlm_st_writer *w) {
    int64_t N = e->shape[0], K = e->shape[1];
    size_t rb = vlm_dtype_row_bytes(t, K), in_rb = (size_t)K * vlm_dtype_size(e->dtype);
    int64_t R = CHUNK_FLOATS / K > 0 ? CHUNK_FLOATS / K : 1;
    if (R > N) R = N;
    VLM_TRY(grow((void **)&c->f32, &c->f32_cap, (size_t)R * (size_t)K * sizeof(float), "quantization rows"));
    VLM_TRY(grow((void **)&c->qbuf, &c->qbuf_cap, (size_t)R * rb, "quantized rows"));
    for (int64_t r0 = 0; r0 < N; r0 += R) {
        int64_t r = N - r0 < R ? N - r0 : R, bad = INT64_MAX;
#pragma omp parallel for schedule(static) num_threads(vlm_threads()) reduction(min : bad)
        for (int64_t i = 0; i < r; i++) {
            float *f = c->f32 + (size_t)i * (size_t)K;
            vlm_to_f32(e->dtype, (const char *)e->data + (size_t)(r0 + i) * in_rb, f, (size_t)K);
            if (vlm_quantize_row(t, f, c->qbuf + (size_t)i * rb, K) != 0 && r0 + i < bad) bad = r0 + i;
        }
        if (bad != INT64_MAX)
            return vlm_err(VLM_ERR_FORMAT,
                           "tensor %s, row %lld: a weight is not finite or too large for an f16 scale; cannot "
                           "quantize it to %s",
                           e->name, (long long)bad, vlm_quant_tag(t));
        VLM_TRY(vlm_st_writer_data(w, c->qbuf, (size_t)r * rb));
        release_pages((const char *)e->data + (size_t)r0 * in_rb, (size_t)r * in_rb);
    }
    return VLM_OK;
}

static vlm_status fill(void *ctx, int i, vlm_st_writer *w) {
    fill_ctx *c = ctx;
    const vlm_st_entry *e = c->src[i];
    vlm_status s =
        c->qt[i] == VLM_QUANT_KEEP ? vlm_st_writer_data(w, e->data, e->nbytes) : quantize_tensor(c, e, c->qt[i], w);
    release_pages(e->data, e->nbytes);
    return s;
}

static void on_progress(void *user, uint64_t done, uint64_t total) {
    fill_ctx *c = user;
    if (c->o->progress) c->o->progress(c->o->progress_user, total ? (double)done / (double)total : 1.0);
}

/* ---- the output directory ---- */
static vlm_status check_replaceable(const char *out_dir) {
    if (!vlm_path_exists(out_dir)) return VLM_OK;
    if (!vlm_is_dir(out_dir)) return vlm_err(VLM_ERR_INVALID, "%s exists and is not a directory", out_dir);
    DIR *d = opendir(out_dir);
    int empty = d != NULL;
    for (struct dirent *de; d && (de = readdir(d)) != NULL;)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) empty = 0;
    if (d) closedir(d);
    if (empty) return VLM_OK;
    vlm_manifest m;
    vlm_dtype t;
    if (vlm_manifest_read(out_dir, &m) == VLM_OK) {
        const char *dash = strchr(m.kind, '-');
        if (dash && vlm_quant_from_tag(dash + 1, &t) == 0) return VLM_OK;
    }
    return vlm_err(VLM_ERR_INVALID,
                   "refusing to replace %s: it is not empty and does not hold a checkpoint written by vlm quantize",
                   out_dir);
}

static vlm_status write_config(const char *model_dir, const char *dir, const vlm_quant_options *o, const int *counts) {
    char src[VLM_PATH_MAX], dst[VLM_PATH_MAX], abs[PATH_MAX];
    VLM_TRY(vlm_path_join(src, sizeof src, model_dir, "config.json"));
    VLM_TRY(vlm_path_join(dst, sizeof dst, dir, "config.json"));
    if (!realpath(model_dir, abs)) return vlm_err(VLM_ERR_IO, "cannot resolve %s", model_dir);
    cJSON *root;
    VLM_TRY(vlm_json_load(src, &root));
    cJSON *q = cJSON_CreateObject(), *tensors = cJSON_CreateObject();
    if (q && tensors) {
        cJSON_AddNumberToObject(q, "version", 1);
        cJSON_AddStringToObject(q, "linear", vlm_quant_tag(o->linear));
        cJSON_AddStringToObject(q, "embeddings", o->embed == VLM_QUANT_KEEP ? "stored" : vlm_quant_tag(o->embed));
        cJSON_AddStringToObject(q, "vision",
                                o->language_only ? "absent"
                                    : o->vision  ? vlm_quant_tag(o->linear)
                                                 : "stored");
        for (int t = 0; t < VLM_DT_COUNT; t++)
            if (counts[t]) cJSON_AddNumberToObject(tensors, vlm_quant_tag((vlm_dtype)t), counts[t]);
        cJSON_AddItemToObject(q, "tensors", tensors);
        tensors = NULL;
        cJSON_AddStringToObject(q, "source", abs);
        cJSON_AddItemToObject(root, "vlm_quantization", q);
        q = NULL;
    }
    cJSON_Delete(q);
    cJSON_Delete(tensors);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    if (!text) return vlm_err(VLM_ERR_NOMEM, "out of memory writing %s", dst);
    vlm_status s = vlm_write_file(dst, text, strlen(text));
    free(text);
    return s;
}

static vlm_status copy_support(const char *model_dir, const char *dir, int language_only) {
    for (int i = 0; k_support[i]; i++) {
        if (language_only && !strcmp(k_support[i], "preprocessor_config.json")) continue;
        char src[VLM_PATH_MAX], dst[VLM_PATH_MAX];
        VLM_TRY(vlm_path_join(src, sizeof src, model_dir, k_support[i]));
        if (!vlm_is_file(src)) continue;
        VLM_TRY(vlm_path_join(dst, sizeof dst, dir, k_support[i]));
        VLM_TRY(vlm_copy_file(src, dst));
    }
    return VLM_OK;
}

static vlm_status write_manifest(const char *model_dir, const char *dir, const vlm_quant_options *o) {
    char kind[32];
    vlm_quant_kind(o, kind, sizeof kind);
    return vlm_manifest_write_for(model_dir, dir, kind);
}

/* The output must load: bind it as the engine will. */
static vlm_status verify(const char *dir, const vlm_model_config *cfg, int vision) {
    vlm_safetensors *st;
    VLM_TRY(vlm_st_open(dir, &st));
    vlm_vision_weights vw;
    vlm_text_weights tw;
    vlm_status s = vlm_bind_weights(st, cfg, vision, 1, &vw, &tw);
    vlm_vision_weights_free(&vw);
    vlm_text_weights_free(&tw);
    vlm_st_close(st);
    if (s != VLM_OK) vlm_err_ctx(s, "the quantized checkpoint written to %s does not bind", dir);
    return s;
}

/* Picks the tensors to write and what each becomes. */
static vlm_status plan(const vlm_safetensors *st, const vlm_model_config *cfg, const vlm_checkpoint_parts *parts,
                       const vlm_quant_options *o, fill_ctx *c, vlm_st_spec *specs, int *n_out, vlm_quant_stats *stats,
                       int *counts) {
    const char *vprefix = vlm_vision_prefix(parts->naming);
    int n = 0;
    for (int i = 0; i < st->n_entries; i++) {
        const vlm_st_entry *e = &st->entries[i];
        char key[600];
        snprintf(key, sizeof key, "quant:%s", e->name);
        if (e->dtype == VLM_DT_U8 && vlm_st_meta(st, e, key))
            return vlm_err(VLM_ERR_INVALID, "tensor %s is already quantized (%s); quantize the original checkpoint",
                           e->name, vlm_st_meta(st, e, key));
        int is_vision = strncmp(e->name, vprefix, strlen(vprefix)) == 0;
        if (is_vision && o->language_only) continue;
        if (cfg->text.tie_embeddings && !strcmp(e->name, "lm_head.weight")) {
            stats->n_dropped++; /* a duplicate of the tied embedding */
            continue;
        }
        int plain = e->dtype == VLM_DT_F32 || e->dtype == VLM_DT_F16 || e->dtype == VLM_DT_BF16;
        vlm_dtype t = plain ? vlm_quant_choose(e->name, e->ndim, e->shape, is_vision, !is_vision, o) : VLM_QUANT_KEEP;
        c->src[n] = e;
        c->qt[n] = t;
        specs[n] = (vlm_st_spec){.name = e->name, .dtype = e->dtype, .ndim = e->ndim};
        memcpy(specs[n].shape, e->shape, sizeof specs[n].shape);
        if (t != VLM_QUANT_KEEP) {
            specs[n].dtype = VLM_DT_U8;
            specs[n].shape[1] = (int64_t)vlm_dtype_row_bytes(t, e->shape[1]);
            counts[t]++;
            stats->n_quantized++;
        } else {
            stats->n_kept++;
        }
        uint64_t ob = vlm_st_spec_bytes(&specs[n]);
        stats->src_bytes += e->nbytes;
        stats->out_bytes += ob;
        if (!is_vision) {
            stats->text_src_bytes += e->nbytes;
            stats->text_out_bytes += ob;
        }
        n++;
    }
    *n_out = n;
    return VLM_OK;
}

static vlm_status quantize_into(const char *model_dir, const char *tmp, const vlm_safetensors *st,
                                const vlm_model_config *cfg, const vlm_checkpoint_parts *parts,
                                const vlm_quant_options *o, vlm_quant_stats *stats) {
    fill_ctx c = {.o = o};
    int counts[VLM_DT_COUNT] = {0}, n = 0, n_meta = 0;
    size_t n_in = (size_t)st->n_entries;
    c.src = vlm_calloc(n_in + 1, sizeof *c.src, "the tensors to quantize");
    c.qt = vlm_calloc(n_in + 1, sizeof *c.qt, "the quantization plan");
    vlm_st_spec *specs = vlm_calloc(n_in + 1, sizeof *specs, "the quantized tensors");
    const char **keys = vlm_calloc(n_in + 2, sizeof *keys, "the quantized files' metadata");
    const char **vals = vlm_calloc(n_in + 2, sizeof *vals, "the quantized files' metadata");
    char **owned = vlm_calloc(n_in + 1, sizeof *owned, "the quantized files' metadata");
    vlm_status s = (!c.src || !c.qt || !specs || !keys || !vals || !owned) ? VLM_ERR_NOMEM : VLM_OK;
    if (s == VLM_OK) s = plan(st, cfg, parts, o, &c, specs, &n, stats, counts);
    if (s == VLM_OK && stats->n_quantized == 0)
        s = vlm_err(VLM_ERR_INVALID, "%s has no tensor that %s applies to (row lengths must be multiples of %d)",
                    model_dir, vlm_quant_tag(o->linear), vlm_dtype_block(o->linear));
    if (s == VLM_OK) {
        keys[n_meta] = "format", vals[n_meta++] = "pt";
        keys[n_meta] = "vlm_quant_version", vals[n_meta++] = "1";
        for (int i = 0; i < n && s == VLM_OK; i++) {
            if (c.qt[i] == VLM_QUANT_KEEP) continue;
            size_t len = strlen(c.src[i]->name) + 8;
            char *k = owned[i] = vlm_alloc(len, "a metadata key");
            if (!k) s = VLM_ERR_NOMEM;
            else snprintf(k, len, "quant:%s", c.src[i]->name);
            keys[n_meta] = k, vals[n_meta++] = vlm_quant_tag(c.qt[i]);
        }
    }
    if (s == VLM_OK)
        s = vlm_st_write_sharded(tmp, specs, n, o->shard_bytes, fill, &c, keys, vals, n_meta, on_progress, &c);
    if (s == VLM_OK) s = copy_support(model_dir, tmp, o->language_only);
    if (s == VLM_OK) s = write_config(model_dir, tmp, o, counts);
    if (s == VLM_OK) s = verify(tmp, cfg, parts->has_vision && !o->language_only);
    if (s == VLM_OK) s = write_manifest(model_dir, tmp, o);
    for (int i = 0; owned && i < st->n_entries; i++) free(owned[i]);
    free(owned);
    free(keys);
    free(vals);
    free(specs);
    free(c.src);
    free(c.qt);
    vlm_free(c.f32);
    vlm_free(c.qbuf);
    return s;
}

vlm_status vlm_quantize_checkpoint(const char *model_dir, const char *out_dir, const vlm_quant_options *o,
                                   vlm_quant_stats *stats) {
    double t0 = vlm_now();
    memset(stats, 0, sizeof *stats);
    if (!vlm_dtype_is_quantized(o->linear))
        return vlm_err(VLM_ERR_INVALID, "the linear-weight format must be one of %s", vlm_quant_known_tags());
    if (o->embed != VLM_QUANT_KEEP && !vlm_dtype_is_quantized(o->embed))
        return vlm_err(VLM_ERR_INVALID, "the embedding format must be one of %s, or kept", vlm_quant_known_tags());
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(model_dir, a) && realpath(out_dir, b) && !strcmp(a, b))
        return vlm_err(VLM_ERR_INVALID, "the output directory %s is the checkpoint itself", out_dir);
    VLM_TRY(check_replaceable(out_dir));
    vlm_model_config cfg;
    VLM_TRY(vlm_config_load(model_dir, &cfg));
    vlm_safetensors *st;
    VLM_TRY(vlm_st_open(model_dir, &st));
    vlm_checkpoint_parts parts;
    vlm_status s = vlm_detect_parts(st, &parts);
    if (s == VLM_OK && !parts.has_text) s = vlm_err(VLM_ERR_FORMAT, "%s has no language model", model_dir);
    vlm_dir_lock lock = {-1};
    vlm_tmp_dir tmp = {.fd = -1};
    if (s == VLM_OK) s = vlm_writer_lock_for(out_dir, &lock);
    if (s == VLM_OK) s = vlm_tmp_dir_create(&tmp, out_dir);
    if (s == VLM_OK) s = quantize_into(model_dir, tmp.path, st, &cfg, &parts, o, stats);
    vlm_st_close(st);
    if (s == VLM_OK) s = vlm_artifact_publish(tmp.path, out_dir);
    if (s == VLM_OK) vlm_tmp_dir_close(&tmp);
    else vlm_tmp_dir_abort(&tmp);
    vlm_writer_unlock(&lock);
    if (s != VLM_OK) vlm_err_ctx(s, "quantizing %s to %s", model_dir, out_dir);
    stats->seconds = vlm_now() - t0;
    return s;
}
