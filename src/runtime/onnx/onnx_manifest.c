/* Export manifest and staleness check, over the per-file checkpoint fingerprint of
 * runtime/artifact.h (config.json, the safetensors index when present and every safetensors file by
 * size and mtime, plus a hash of each safetensors header) — no tensor data is read. */
#include "runtime/onnx/onnx_manifest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "io/file.h"
#include "io/json.h"
#include "runtime/artifact.h"

#define MANIFEST_FORMAT "vlm-onnx-vision"

vlm_status vlm_onnx_manifest_write(const char *model_dir, const char *out_dir, const vlm_onnx_export_options *o,
                                   int external) {
    char path[VLM_PATH_MAX], out_path[VLM_PATH_MAX];
    VLM_TRY(vlm_path_join(path, sizeof path, out_dir, VLM_ONNX_MANIFEST_FILE));
    vlm_checkpoint_fingerprint fp;
    VLM_TRY(vlm_checkpoint_fingerprint_take(model_dir, &fp));
    vlm_strbuf b = {0};
    vlm_sb_printf(&b, "{\n  \"format\": \"%s\",\n  \"exporter_version\": %d,\n  \"checkpoint\": ", MANIFEST_FORMAT,
                  VLM_ONNX_EXPORTER_VERSION);
    vlm_sb_json_string(&b, fp.checkpoint, strlen(fp.checkpoint));
    vlm_sb_printf(&b, ",\n  \"weights\": \"%s\",\n  \"external_data\": %s,\n  \"files\": [",
                  vlm_onnx_weights_name(o->weights), external ? "true" : "false");
    for (int i = 0; i < fp.n; i++) {
        vlm_sb_printf(&b, "%s\n    {\"name\": ", i ? "," : "");
        vlm_sb_json_string(&b, fp.files[i].name, strlen(fp.files[i].name));
        vlm_sb_printf(&b, ", \"size\": %llu, \"mtime_ns\": \"%lld\", \"header_fnv1a64\": \"%s\"}",
                      (unsigned long long)fp.files[i].size, (long long)fp.files[i].mtime_ns, fp.files[i].header);
    }
    vlm_sb_printf(&b, "\n  ],\n  \"outputs\": [");
    const char *outs[2] = {VLM_ONNX_FILE, VLM_ONNX_DATA_FILE};
    vlm_status s = VLM_OK;
    for (int i = 0; s == VLM_OK && i < (external ? 2 : 1); i++) {
        uint64_t size = 0;
        int64_t mt = 0;
        s = vlm_path_join(out_path, sizeof out_path, out_dir, outs[i]);
        if (s == VLM_OK) s = vlm_file_stat(out_path, &size, &mt);
        if (s == VLM_OK)
            vlm_sb_printf(&b, "%s\n    {\"name\": \"%s\", \"size\": %llu}", i ? "," : "", outs[i],
                          (unsigned long long)size);
    }
    vlm_sb_printf(&b, "\n  ]\n}\n");
    if (s == VLM_OK && b.failed) s = vlm_err(VLM_ERR_NOMEM, "out of memory writing %s", path);
    if (s == VLM_OK) s = vlm_write_file(path, b.data, b.len);
    vlm_sb_free(&b);
    vlm_checkpoint_fingerprint_free(&fp);
    return s;
}

/* ---- staleness ---- */

#define STALE(...) (snprintf(why, cap, __VA_ARGS__), 0)

static int64_t json_i64_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? strtoll(v->valuestring, NULL, 10) : -1;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double json_num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* 1 when the manifest's files match the fingerprint; otherwise 0 and why names the first change. */
static int files_match(const cJSON *files, const vlm_checkpoint_fingerprint *fp, char *why, size_t cap) {
    if (!cJSON_IsArray(files)) return STALE("the manifest lists no checkpoint files");
    int n = cJSON_GetArraySize(files);
    for (int i = 0; i < fp->n; i++) {
        const vlm_fingerprint_file *f = &fp->files[i];
        const cJSON *m = NULL, *it;
        cJSON_ArrayForEach(it, files) if (!strcmp(json_str(it, "name"), f->name)) m = it;
        if (!m) return STALE("checkpoint file %s is new since the export", f->name);
        if ((uint64_t)json_num(m, "size") != f->size)
            return STALE("checkpoint file %s changed size (%llu bytes, exported from %.0f)", f->name,
                         (unsigned long long)f->size, json_num(m, "size"));
        if (strcmp(json_str(m, "header_fnv1a64"), f->header) != 0)
            return STALE("the tensor header of checkpoint file %s changed", f->name);
        if (json_i64_str(m, "mtime_ns") != f->mtime_ns)
            return STALE("checkpoint file %s was modified after the export", f->name);
    }
    if (n != fp->n) return STALE("the checkpoint had %d files at export, now %d", n, fp->n);
    return 1;
}

static int outputs_match(const cJSON *outputs, const char *out_dir, char *why, size_t cap) {
    if (!cJSON_IsArray(outputs) || cJSON_GetArraySize(outputs) < 1) return STALE("the manifest lists no ONNX file");
    const cJSON *it;
    cJSON_ArrayForEach(it, outputs) {
        char path[VLM_PATH_MAX];
        uint64_t size;
        int64_t mt;
        const char *name = json_str(it, "name");
        if (!*name || strchr(name, '/') || vlm_path_join(path, sizeof path, out_dir, name) != VLM_OK)
            return STALE("the manifest names a bad output file");
        if (vlm_file_stat(path, &size, &mt) != VLM_OK) {
            vlm_err_clear();
            return STALE("%s is missing", path);
        }
        if ((double)size != json_num(it, "size"))
            return STALE("%s has %llu bytes, the export wrote %.0f", path, (unsigned long long)size,
                         json_num(it, "size"));
    }
    return 1;
}

static int options_match(const cJSON *m, const vlm_onnx_export_options *o, char *why, size_t cap) {
    if (!o) return 1;
    const char *w = json_str(m, "weights");
    if (strcmp(w, vlm_onnx_weights_name(o->weights)) != 0)
        return STALE("exported with weights \"%s\", \"%s\" asked for", w, vlm_onnx_weights_name(o->weights));
    int ext = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "external_data"));
    if ((o->external == VLM_ONNX_EXTERNAL_ALWAYS && !ext) || (o->external == VLM_ONNX_EXTERNAL_NEVER && ext))
        return STALE("exported %s an external data file", ext ? "with" : "without");
    return 1;
}

vlm_status vlm_onnx_export_current(const char *model_dir, const char *out_dir, const vlm_onnx_export_options *o,
                                   int *current, char *why, size_t cap) {
    char path[VLM_PATH_MAX];
    *current = 0;
    if (why && cap) why[0] = '\0';
    char dummy[8];
    if (!why || !cap) why = dummy, cap = sizeof dummy;
    VLM_TRY(vlm_path_join(path, sizeof path, out_dir, VLM_ONNX_MANIFEST_FILE));
    if (!vlm_is_file(path)) {
        snprintf(why, cap, "no export in %s (%s is missing)", out_dir, VLM_ONNX_MANIFEST_FILE);
        return VLM_OK;
    }
    vlm_checkpoint_fingerprint fp;
    VLM_TRY(vlm_checkpoint_fingerprint_take(model_dir, &fp));
    cJSON *m = NULL;
    vlm_status s = vlm_json_load(path, &m);
    if (s == VLM_ERR_NOMEM) { /* cannot tell: not a reason to export again */
        vlm_checkpoint_fingerprint_free(&fp);
        return vlm_err_ctx(s, "checking %s", path);
    }
    if (s != VLM_OK) {
        snprintf(why, cap, "unreadable manifest: %s", vlm_last_error());
        vlm_err_clear();
    } else if (strcmp(json_str(m, "format"), MANIFEST_FORMAT) != 0 ||
               json_num(m, "exporter_version") != VLM_ONNX_EXPORTER_VERSION) {
        snprintf(why, cap, "made by another exporter version (%.0f, this one is %d)", json_num(m, "exporter_version"),
                 VLM_ONNX_EXPORTER_VERSION);
    } else if (strcmp(json_str(m, "checkpoint"), fp.checkpoint) != 0) {
        snprintf(why, cap, "exported from %s, not %s", json_str(m, "checkpoint"), fp.checkpoint);
    } else {
        *current = options_match(m, o, why, cap) &&
            files_match(cJSON_GetObjectItemCaseSensitive(m, "files"), &fp, why, cap) &&
            outputs_match(cJSON_GetObjectItemCaseSensitive(m, "outputs"), out_dir, why, cap);
    }
    cJSON_Delete(m);
    vlm_checkpoint_fingerprint_free(&fp);
    return VLM_OK;
}

vlm_status vlm_onnx_ensure_export(const char *model_dir, const char *out_dir, const vlm_onnx_export_options *o,
                                  int *exported) {
    int current;
    char why[VLM_PATH_MAX + 256];
    if (exported) *exported = 0;
    VLM_TRY(vlm_onnx_export_current(model_dir, out_dir, o, &current, why, sizeof why));
    if (current) return VLM_OK;
    /* look again under the lock: another process may be exporting now */
    VLM_TRY(vlm_mkdirs(out_dir));
    vlm_dir_lock lock;
    VLM_TRY(vlm_writer_lock(out_dir, &lock));
    vlm_status s = vlm_onnx_export_current(model_dir, out_dir, o, &current, why, sizeof why);
    if (s == VLM_OK && !current) {
        VLM_LOG_I("exporting the vision tower to ONNX in %s: %s", out_dir, why);
        s = vlm_onnx_export(model_dir, out_dir, o);
        if (s == VLM_OK && exported) *exported = 1;
    }
    vlm_writer_unlock(&lock);
    return s;
}
