#include "io/json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/file.h"

vlm_status vlm_json_parse(const char *text, size_t len, const char *what, cJSON **root) {
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!*root) {
        size_t off = end && end >= text ? (size_t)(end - text) : 0;
        return vlm_err(VLM_ERR_FORMAT, "%s is not valid JSON (error near byte %zu of %zu)", what, off, len);
    }
    return VLM_OK;
}

vlm_status vlm_json_load(const char *path, cJSON **root) {
    char *text;
    size_t len;
    *root = NULL;
    VLM_TRY(vlm_read_file(path, (size_t)256 << 20, &text, &len));
    vlm_status s = vlm_json_parse(text, len, path, root);
    free(text);
    return s;
}

static const cJSON *get(const cJSON *obj, const char *key) {
    const cJSON *v = obj ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
    return (v && !cJSON_IsNull(v)) ? v : NULL;
}

vlm_status vlm_json_num(const cJSON *obj, const char *key, const char *what, double *out) {
    const cJSON *v = get(obj, key);
    if (!v) return VLM_OK;
    if (!cJSON_IsNumber(v)) return vlm_err(VLM_ERR_FORMAT, "%s: \"%s\" must be a number", what, key);
    *out = v->valuedouble;
    return VLM_OK;
}

vlm_status vlm_json_int(const cJSON *obj, const char *key, const char *what, int64_t *out) {
    const cJSON *v = get(obj, key);
    if (!v) return VLM_OK;
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || fabs(d) > 9.007199254740992e15)
        return vlm_err(VLM_ERR_FORMAT, "%s: \"%s\" must be an integer", what, key);
    *out = (int64_t)d;
    return VLM_OK;
}

vlm_status vlm_json_i32(const cJSON *obj, const char *key, const char *what, int *out) {
    int64_t v = *out;
    VLM_TRY(vlm_json_int(obj, key, what, &v));
    if (v < -2147483647LL || v > 2147483647LL)
        return vlm_err(VLM_ERR_FORMAT, "%s: \"%s\" = %lld is out of range", what, key, (long long)v);
    *out = (int)v;
    return VLM_OK;
}

vlm_status vlm_json_bool(const cJSON *obj, const char *key, const char *what, int *out) {
    const cJSON *v = get(obj, key);
    if (!v) return VLM_OK;
    if (!cJSON_IsBool(v)) return vlm_err(VLM_ERR_FORMAT, "%s: \"%s\" must be true or false", what, key);
    *out = cJSON_IsTrue(v);
    return VLM_OK;
}

vlm_status vlm_json_str(const cJSON *obj, const char *key, const char *what, const char **out) {
    const cJSON *v = get(obj, key);
    if (!v) return VLM_OK;
    if (!cJSON_IsString(v)) return vlm_err(VLM_ERR_FORMAT, "%s: \"%s\" must be a string", what, key);
    *out = v->valuestring;
    return VLM_OK;
}

vlm_status vlm_json_num_array(const cJSON *obj, const char *key, const char *what, double *out, int cap, int *n) {
    const cJSON *v = get(obj, key);
    if (!v) return VLM_OK;
    if (cJSON_IsNumber(v)) {
        if (cap < 1) return vlm_err(VLM_ERR_FORMAT, "%s: \"%s\" has too many entries", what, key);
        out[0] = v->valuedouble;
        *n = 1;
        return VLM_OK;
    }
    if (!cJSON_IsArray(v)) return vlm_err(VLM_ERR_FORMAT, "%s: \"%s\" must be an array of numbers", what, key);
    int count = cJSON_GetArraySize(v);
    if (count > cap)
        return vlm_err(VLM_ERR_FORMAT, "%s: \"%s\" has %d entries, at most %d are supported", what, key, count, cap);
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsNumber(e)) return vlm_err(VLM_ERR_FORMAT, "%s: \"%s\"[%d] must be a number", what, key, i);
        out[i++] = e->valuedouble;
    }
    *n = count;
    return VLM_OK;
}

vlm_status vlm_json_int_array(const cJSON *obj, const char *key, const char *what, int *out, int cap, int *n) {
    double tmp[256] = {0};
    int count = 0;
    if (cap > 256) cap = 256;
    VLM_TRY(vlm_json_num_array(obj, key, what, tmp, cap, &count));
    if (!get(obj, key)) return VLM_OK;
    for (int i = 0; i < count; i++) {
        if (tmp[i] != floor(tmp[i]) || fabs(tmp[i]) > 2147483647.0)
            return vlm_err(VLM_ERR_FORMAT, "%s: \"%s\"[%d] must be an integer", what, key, i);
        out[i] = (int)tmp[i];
    }
    *n = count;
    return VLM_OK;
}

/* ---- JSON text ---- */

void vlm_sb_json_string(vlm_strbuf *b, const char *s, size_t n) {
    vlm_sb_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': vlm_sb_append(b, "\\\"", 2); break;
        case '\\': vlm_sb_append(b, "\\\\", 2); break;
        case '\n': vlm_sb_append(b, "\\n", 2); break;
        case '\r': vlm_sb_append(b, "\\r", 2); break;
        case '\t': vlm_sb_append(b, "\\t", 2); break;
        default:
            if (c < 0x20) vlm_sb_printf(b, "\\u%04x", c);
            else vlm_sb_append(b, (const char *)&s[i], 1);
        }
    }
    vlm_sb_append(b, "\"", 1);
}

void vlm_sb_json_number(vlm_strbuf *b, double v) {
    if (!isfinite(v)) vlm_sb_append(b, "null", 4);
    else vlm_sb_printf(b, "%.17g", v);
}
