/* JSON helpers over cJSON: load a file with errors that name it, and typed getters that tell a
 * missing key (use the default) from a key of the wrong type (an error naming key and file). */
#ifndef VLM_IO_JSON_H
#define VLM_IO_JSON_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "base/error.h"
#include "base/strbuf.h"

/* Parses a JSON file (at most 256 MB). The caller frees *root with cJSON_Delete. */
vlm_status vlm_json_load(const char *path, cJSON **root);
/* Parses a buffer; `what` names it in errors (e.g. "header of model.safetensors"). */
vlm_status vlm_json_parse(const char *text, size_t len, const char *what, cJSON **root);

/* Getters: return VLM_OK and leave *out untouched when the key is absent (or JSON null);
 * VLM_ERR_FORMAT naming `what` and the key when it has the wrong type or range. */
vlm_status vlm_json_int(const cJSON *obj, const char *key, const char *what, int64_t *out);
vlm_status vlm_json_i32(const cJSON *obj, const char *key, const char *what, int *out);
vlm_status vlm_json_num(const cJSON *obj, const char *key, const char *what, double *out);
vlm_status vlm_json_bool(const cJSON *obj, const char *key, const char *what, int *out);
/* *out points into the cJSON tree. */
vlm_status vlm_json_str(const cJSON *obj, const char *key, const char *what, const char **out);
/* An integer array of at most cap entries; *n receives the count. Also accepts a single number. */
vlm_status vlm_json_int_array(const cJSON *obj, const char *key, const char *what, int *out, int cap, int *n);
vlm_status vlm_json_num_array(const cJSON *obj, const char *key, const char *what, double *out, int cap, int *n);

/* Appends the JSON text of a string (with quotes and escapes) to a growing buffer. */
void vlm_sb_json_string(vlm_strbuf *b, const char *s, size_t n);
/* Appends a double at full precision (%.17g; non-finite values as null). */
void vlm_sb_json_number(vlm_strbuf *b, double v);

#endif
