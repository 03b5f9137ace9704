/* POST /v1/chat/completions: the request body -> vlm_request. One function per field; every error
 * is a 400 (404 for an unknown model) naming the field as OpenAI's "param" does. */
#include <curl/curl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "base/base64.h"
#include "base/memory.h"
#include "serve/openai.h"

enum { MAX_STOP = 16 };

int vlm_oai_error_set(vlm_oai_error *e, int status, const char *code, const char *param, const char *fmt, ...) {
    e->status = status;
    e->type = status == 401 ? "authentication_error"
        : status == 404     ? "not_found_error"
        : status == 429     ? "rate_limit_error"
        : status >= 500     ? "server_error"
                            : "invalid_request_error";
    e->code = code;
    snprintf(e->param, sizeof e->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof e->message, fmt, ap);
    va_end(ap);
    return status;
}

int vlm_oai_error_from_status(vlm_oai_error *e, vlm_status s, const char *msg) {
    switch (s) {
    case VLM_ERR_BUSY: return vlm_oai_error_set(e, 429, "queue_full", NULL, "%s", msg);
    case VLM_ERR_NOMEM: return vlm_oai_error_set(e, 503, "insufficient_memory", NULL, "%s", msg);
    case VLM_ERR_RUNTIME: return vlm_oai_error_set(e, 500, NULL, NULL, "%s", msg);
    default: return vlm_oai_error_set(e, 400, NULL, NULL, "%s", msg);
    }
}

typedef struct {
    const vlm_oai_options *o;
    vlm_oai_chat *c;
    vlm_oai_error *e;
    int n_parts, n_images; /* filled so far */
    int max_tokens_given, max_completion_tokens_given, stream_options_given;
    int max_tokens, max_completion_tokens;
} parser;

static int bad(parser *p, const char *param, const char *fmt, ...) VLM_PRINTF(3, 4);
static int bad(parser *p, const char *param, const char *fmt, ...) {
    char msg[sizeof p->e->message];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return vlm_oai_error_set(p->e, 400, NULL, param, "%s", msg);
}

static const char *json_type(const cJSON *v) {
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsObject(v)) return "an object";
    return "null";
}

static int wrong_type(parser *p, const char *param, const cJSON *v, const char *expected) {
    return bad(p, param, "Invalid type for '%s': expected %s, but got %s instead.", param, expected, json_type(v));
}

/* An integer in [lo, hi]. */
static int get_int(parser *p, const char *param, const cJSON *v, double lo, double hi, long long *out) {
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble)) return wrong_type(p, param, v, "an integer");
    if (!(v->valuedouble >= lo && v->valuedouble <= hi))
        return bad(p, param, "'%s' = %.17g is out of range: it must be in [%.17g, %.17g].", param, v->valuedouble, lo,
                   hi);
    *out = (long long)v->valuedouble;
    return 0;
}

static int get_bool(parser *p, const char *param, const cJSON *v, int *out) {
    if (!cJSON_IsBool(v)) return wrong_type(p, param, v, "a boolean");
    *out = cJSON_IsTrue(v);
    return 0;
}

/* ---- sampling and limits ------------------------------------------------------------------------ */

static int f_max_tokens(parser *p, const cJSON *v) {
    long long n = 0;
    if (get_int(p, "max_tokens", v, 1, INT_MAX, &n)) return 400;
    p->max_tokens = (int)n;
    p->max_tokens_given = 1;
    return 0;
}

static int f_max_completion_tokens(parser *p, const cJSON *v) {
    long long n = 0;
    if (get_int(p, "max_completion_tokens", v, 1, INT_MAX, &n)) return 400;
    p->max_completion_tokens = (int)n;
    p->max_completion_tokens_given = 1;
    return 0;
}

static int f_temperature(parser *p, const cJSON *v) {
    if (!cJSON_IsNumber(v)) return wrong_type(p, "temperature", v, "a number");
    if (!(v->valuedouble >= 0 && v->valuedouble <= 1e6))
        return bad(p, "temperature", "'temperature' = %.17g must be >= 0 (0 means argmax).", v->valuedouble);
    p->c->req.sampling.temperature = (float)v->valuedouble;
    p->c->req.sampling.given |= VLM_SAMPLING_TEMPERATURE;
    return 0;
}

static int f_top_p(parser *p, const cJSON *v) {
    if (!cJSON_IsNumber(v)) return wrong_type(p, "top_p", v, "a number");
    if (!(v->valuedouble > 0 && v->valuedouble <= 1))
        return bad(p, "top_p", "'top_p' = %.17g must be in (0, 1].", v->valuedouble);
    p->c->req.sampling.top_p = (float)v->valuedouble;
    p->c->req.sampling.given |= VLM_SAMPLING_TOP_P;
    return 0;
}

/* vLLM's extension: -1 (or 0) turns it off. */
static int f_top_k(parser *p, const cJSON *v) {
    long long k = 0;
    if (get_int(p, "top_k", v, -1, INT_MAX, &k)) return 400;
    p->c->req.sampling.top_k = k < 0 ? 0 : (int)k;
    p->c->req.sampling.given |= VLM_SAMPLING_TOP_K;
    return 0;
}

static int f_repetition_penalty(parser *p, const cJSON *v) {
    if (!cJSON_IsNumber(v)) return wrong_type(p, "repetition_penalty", v, "a number");
    if (!(v->valuedouble > 0 && v->valuedouble <= 1e6))
        return bad(p, "repetition_penalty", "'repetition_penalty' = %.17g must be > 0 (1 turns it off).",
                   v->valuedouble);
    p->c->req.sampling.repetition_penalty = (float)v->valuedouble;
    p->c->req.sampling.given |= VLM_SAMPLING_REPETITION_PENALTY;
    return 0;
}

/* Any integer a JSON number holds exactly (|seed| <= 2^53); negative seeds wrap to uint64. */
static int f_seed(parser *p, const cJSON *v) {
    long long s = 0;
    if (get_int(p, "seed", v, -9007199254740992.0, 9007199254740992.0, &s)) return 400;
    p->c->req.sampling.seed = (uint64_t)s;
    p->c->seed_given = 1;
    return 0;
}

static int f_ignore_eos(parser *p, const cJSON *v) {
    return get_bool(p, "ignore_eos", v, &p->c->req.sampling.ignore_eos) ? 400 : 0;
}

static int f_n(parser *p, const cJSON *v) {
    long long n = 0;
    if (get_int(p, "n", v, 1, INT_MAX, &n)) return 400;
    if (n != 1)
        return bad(p, "n", "'n' = %lld is not supported: this server returns one choice per request (n = 1).", n);
    return 0;
}

static int f_stop(parser *p, const cJSON *v) {
    int n = cJSON_IsString(v) ? 1 : cJSON_IsArray(v) ? cJSON_GetArraySize(v) : -1;
    if (n < 0) return wrong_type(p, "stop", v, "a string or an array of strings");
    if (n > MAX_STOP) return bad(p, "stop", "'stop' has %d strings; at most %d are supported.", n, MAX_STOP);
    if (n == 0) return 0;
    p->c->stop = vlm_calloc((size_t)n, sizeof *p->c->stop, "stop strings");
    if (!p->c->stop) return vlm_oai_error_set(p->e, 500, NULL, NULL, "%s", vlm_last_error());
    const cJSON *it = cJSON_IsString(v) ? v : v->child;
    for (int i = 0; i < n; i++, it = it->next) {
        char param[32];
        snprintf(param, sizeof param, cJSON_IsString(v) ? "stop" : "stop[%d]", i);
        if (!cJSON_IsString(it)) return wrong_type(p, param, it, "a string");
        if (!it->valuestring[0])
            return bad(p, param, "'%s' is empty; a stop string needs at least one character.", param);
        p->c->stop[i] = it->valuestring;
    }
    p->c->req.stop = p->c->stop;
    p->c->req.n_stop = n;
    return 0;
}

static int f_stream(parser *p, const cJSON *v) { return get_bool(p, "stream", v, &p->c->stream) ? 400 : 0; }

static int f_stream_options(parser *p, const cJSON *v) {
    if (!cJSON_IsObject(v)) return wrong_type(p, "stream_options", v, "an object");
    for (const cJSON *it = v->child; it; it = it->next) {
        if (!strcmp(it->string, "include_usage")) {
            if (!cJSON_IsNull(it) && get_bool(p, "stream_options.include_usage", it, &p->c->include_usage)) return 400;
        } else {
            return bad(p, "stream_options", "Unrecognized stream option '%s' (supported: include_usage).", it->string);
        }
    }
    p->stream_options_given = 1;
    return 0;
}

static int f_return_token_ids(parser *p, const cJSON *v) {
    return get_bool(p, "return_token_ids", v, &p->c->return_token_ids) ? 400 : 0;
}

/* Image area limits for the whole request (an image part may set its own). */
static int pixels(parser *p, const char *param, const cJSON *v, long long *out) {
    return get_int(p, param, v, 1, (double)INT_MAX, out) ? 400 : 0;
}
static int f_min_pixels(parser *p, const cJSON *v) { return pixels(p, "min_pixels", v, &p->c->req.min_pixels); }
static int f_max_pixels(parser *p, const cJSON *v) { return pixels(p, "max_pixels", v, &p->c->req.max_pixels); }

static int f_model(parser *p, const cJSON *v) {
    if (!cJSON_IsString(v)) return wrong_type(p, "model", v, "a string");
    p->c->model = v->valuestring;
    if (p->o->n_models == 0) return 0;
    for (int i = 0; i < p->o->n_models; i++)
        if (!strcmp(v->valuestring, p->o->models[i])) return 0;
    return vlm_oai_error_set(p->e, 404, "model_not_found", "model",
                             "The model '%s' does not exist: this server serves '%s' (GET /v1/models).", v->valuestring,
                             p->o->models[0]);
}

/* ---- fields accepted only with values that ask for nothing this server would do differently ---- */

static int unsupported(parser *p, const char *param, const char *what) {
    return bad(p, param, "'%s' is not supported by this server (%s).", param, what);
}

static int f_zero_penalty(parser *p, const cJSON *v, const char *name) {
    if (!cJSON_IsNumber(v)) return wrong_type(p, name, v, "a number");
    return v->valuedouble == 0 ? 0 : unsupported(p, name, "only 0; use repetition_penalty");
}
static int f_frequency_penalty(parser *p, const cJSON *v) { return f_zero_penalty(p, v, "frequency_penalty"); }
static int f_presence_penalty(parser *p, const cJSON *v) { return f_zero_penalty(p, v, "presence_penalty"); }

static int f_logprobs(parser *p, const cJSON *v) {
    int on = 0;
    if (get_bool(p, "logprobs", v, &on)) return 400;
    return on ? unsupported(p, "logprobs", "log probabilities are not returned") : 0;
}

static int f_top_logprobs(parser *p, const cJSON *v) {
    long long n = 0;
    if (get_int(p, "top_logprobs", v, 0, 20, &n)) return 400;
    return n ? unsupported(p, "top_logprobs", "log probabilities are not returned") : 0;
}

static int f_logit_bias(parser *p, const cJSON *v) {
    if (!cJSON_IsObject(v)) return wrong_type(p, "logit_bias", v, "an object");
    return v->child ? unsupported(p, "logit_bias", "only an empty object") : 0;
}

static int f_tools(parser *p, const cJSON *v) {
    if (!cJSON_IsArray(v)) return wrong_type(p, "tools", v, "an array");
    return v->child ? unsupported(p, "tools", "no tool calling") : 0;
}

static int f_functions(parser *p, const cJSON *v) {
    if (!cJSON_IsArray(v)) return wrong_type(p, "functions", v, "an array");
    return v->child ? unsupported(p, "functions", "no function calling") : 0;
}

static int f_tool_choice(parser *p, const cJSON *v) {
    if (cJSON_IsString(v) && (!strcmp(v->valuestring, "none") || !strcmp(v->valuestring, "auto"))) return 0;
    return unsupported(p, "tool_choice", "no tool calling: only \"none\" or \"auto\"");
}

static int f_function_call(parser *p, const cJSON *v) {
    if (cJSON_IsString(v) && (!strcmp(v->valuestring, "none") || !strcmp(v->valuestring, "auto"))) return 0;
    return unsupported(p, "function_call", "no function calling: only \"none\" or \"auto\"");
}

static int f_response_format(parser *p, const cJSON *v) {
    const cJSON *t = cJSON_IsObject(v) ? cJSON_GetObjectItemCaseSensitive(v, "type") : NULL;
    if (!t || !cJSON_IsString(t)) return wrong_type(p, "response_format", v, "an object with a \"type\"");
    return strcmp(t->valuestring, "text") != 0 ? unsupported(p, "response_format", "only {\"type\": \"text\"}") : 0;
}

static int f_modalities(parser *p, const cJSON *v) {
    if (!cJSON_IsArray(v)) return wrong_type(p, "modalities", v, "an array");
    for (const cJSON *it = v->child; it; it = it->next)
        if (!cJSON_IsString(it) || strcmp(it->valuestring, "text") != 0)
            return unsupported(p, "modalities", "the answer is text: only [\"text\"]");
    return 0;
}

/* Accepted and ignored: they change nothing in the answer. */
static int f_string(parser *p, const cJSON *v, const char *name) {
    return cJSON_IsString(v) ? 0 : wrong_type(p, name, v, "a string");
}
static int f_user(parser *p, const cJSON *v) { return f_string(p, v, "user"); }
static int f_service_tier(parser *p, const cJSON *v) { return f_string(p, v, "service_tier"); }
static int f_metadata(parser *p, const cJSON *v) {
    return cJSON_IsObject(v) ? 0 : wrong_type(p, "metadata", v, "an object");
}
static int f_store(parser *p, const cJSON *v) {
    int b = 0;
    return get_bool(p, "store", v, &b) ? 400 : 0;
}
static int f_parallel_tool_calls(parser *p, const cJSON *v) {
    int b = 0;
    return get_bool(p, "parallel_tool_calls", v, &b) ? 400 : 0;
}

/* ---- images -------------------------------------------------------------------------------------- */

/* data:image/<subtype>;base64,<data> */
static int data_uri(parser *p, const char *param, const char *url, vlm_image_input *img, unsigned char **owned) {
    const char *comma = strchr(url, ',');
    const char *media = url + 5;
    if (!comma) return bad(p, param, "'%s': a data: URI needs a ',' before its data.", param);
    size_t mlen = (size_t)(comma - media);
    if (mlen < 7 || strncasecmp(comma - 7, ";base64", 7) != 0)
        return bad(p, param, "'%s': only base64 data: URIs are supported (data:image/png;base64,...).", param);
    if (strncasecmp(media, "image/", 6) != 0)
        return bad(p, param, "'%s': the data: URI's media type '%.*s' is not an image (expected image/...).", param,
                   (int)(mlen - 7), media);
    size_t n;
    vlm_status s = vlm_base64_decode(comma + 1, strlen(comma + 1), owned, &n);
    if (s == VLM_ERR_NOMEM) return vlm_oai_error_set(p->e, 503, "insufficient_memory", param, "%s", vlm_last_error());
    if (s != VLM_OK) return bad(p, param, "'%s': the data: URI is not valid base64: %s", param, vlm_last_error());
    if (n == 0) return bad(p, param, "'%s': the data: URI holds no data.", param);
    img->bytes = *owned;
    img->n_bytes = n;
    return 0;
}

/* real (a resolved path) is dir or below it. */
static int inside(const char *real, const char *dir) {
    size_t n = strlen(dir);
    if (n == 1) return 1; /* "/" */
    return !strncmp(real, dir, n) && (real[n] == '/' || real[n] == 0);
}

/* file://[localhost]/path, percent-decoded by libcurl's URL parser; the file must resolve (links
 * followed) to a regular file inside --media-dir. */
static int file_url(parser *p, const char *param, const char *url, vlm_image_input *img, char **owned) {
    const char *dir = p->o->media_dir;
    if (!dir)
        return bad(p, param, "'%s': file:// URLs are refused: the server was started without --media-dir.", param);
    CURLU *u = curl_url();
    char *path = NULL;
    CURLUcode rc = u ? curl_url_set(u, CURLUPART_URL, url, 0) : CURLUE_OUT_OF_MEMORY;
    if (rc == CURLUE_OK) rc = curl_url_get(u, CURLUPART_PATH, &path, CURLU_URLDECODE);
    curl_url_cleanup(u);
    if (rc != CURLUE_OK) return bad(p, param, "'%s': not a usable file:// URL (%s).", param, curl_url_strerror(rc));
    char *real = realpath(path, NULL);
    int r = 0;
    struct stat st;
    if (!real) r = bad(p, param, "'%s': %s: no such file.", param, path);
    else if (!inside(real, dir)) r = bad(p, param, "'%s': %s is outside --media-dir.", param, path);
    else if (stat(real, &st) != 0 || !S_ISREG(st.st_mode)) r = bad(p, param, "'%s': %s is not a file.", param, path);
    curl_free(path);
    if (r) {
        free(real);
        return r;
    }
    *owned = real;
    img->path = real;
    return 0;
}

static int image_pixels(parser *p, const char *param, const cJSON *a, const cJSON *b, const char *key, long long *out) {
    const cJSON *va = a ? cJSON_GetObjectItemCaseSensitive(a, key) : NULL;
    const cJSON *vb = b ? cJSON_GetObjectItemCaseSensitive(b, key) : NULL;
    if (cJSON_IsNull(va)) va = NULL;
    if (cJSON_IsNull(vb)) vb = NULL;
    if (va && vb) return bad(p, param, "'%s' is given both in the part and in its image_url; give it once.", key);
    char name[200];
    snprintf(name, sizeof name, "%s.%s", param, key);
    return (va || vb) ? pixels(p, name, va ? va : vb, out) : 0;
}

/* {"type": "image_url", "image_url": {"url": ..., "detail": ..., "min_pixels", "max_pixels"}} or
 * "image_url": "<url>"; min_pixels / max_pixels may also sit beside "image_url" in the part. */
static int image_part(parser *p, const char *param, const cJSON *part, vlm_content_part *out) {
    const cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
    char name[200];
    snprintf(name, sizeof name, "%s.image_url", param);
    const cJSON *url = iu;
    if (cJSON_IsObject(iu)) {
        for (const cJSON *it = iu->child; it; it = it->next) {
            if (!strcmp(it->string, "url") || !strcmp(it->string, "min_pixels") || !strcmp(it->string, "max_pixels"))
                continue;
            if (!strcmp(it->string, "detail")) {
                if (cJSON_IsNull(it)) continue;
                if (cJSON_IsString(it) &&
                    (!strcmp(it->valuestring, "auto") || !strcmp(it->valuestring, "low") ||
                     !strcmp(it->valuestring, "high")))
                    continue; /* the resolution follows min_pixels / max_pixels, not "detail" */
                return bad(p, name, "'%s.detail' must be \"auto\", \"low\" or \"high\".", name);
            }
            return bad(p, name, "Unrecognized field '%s' in '%s' (expected url, detail, min_pixels, max_pixels).",
                       it->string, name);
        }
        url = cJSON_GetObjectItemCaseSensitive(iu, "url");
        snprintf(name, sizeof name, "%s.image_url.url", param);
    } else if (!cJSON_IsString(iu)) {
        return wrong_type(p, name, iu, "an object with a \"url\"");
    }
    if (!cJSON_IsString(url)) return wrong_type(p, name, url, "a string");
    int k = p->n_images++;
    vlm_image_input *img = &p->c->images[k];
    const char *u = url->valuestring;
    int r;
    if (!strncasecmp(u, "data:", 5)) r = data_uri(p, name, u, img, &p->c->image_bytes[k]);
    else if (!strncasecmp(u, "file:", 5)) r = file_url(p, name, u, img, &p->c->image_paths[k]);
    else if (!strncasecmp(u, "http://", 7) || !strncasecmp(u, "https://", 8))
        r = bad(p, name,
                "'%s': http(s) URLs are not fetched (this server makes no network requests); send the image as a "
                "data:image/...;base64, URI or as a file:// URL inside --media-dir.",
                name);
    else r = bad(p, name, "'%s': unsupported URL '%.40s' (expected data:image/...;base64, or file://).", name, u);
    if (r) return r;
    snprintf(name, sizeof name, "%s", param);
    const cJSON *inner = cJSON_IsObject(iu) ? iu : NULL;
    if (image_pixels(p, name, part, inner, "min_pixels", &img->min_pixels) ||
        image_pixels(p, name, part, inner, "max_pixels", &img->max_pixels))
        return 400;
    if (img->min_pixels && img->max_pixels && img->min_pixels > img->max_pixels)
        return bad(p, name, "'%s': min_pixels %lld is larger than max_pixels %lld.", name, img->min_pixels,
                   img->max_pixels);
    out->image = img;
    return 0;
}

/* ---- messages ------------------------------------------------------------------------------------ */

static int content_part(parser *p, const char *param, const cJSON *part, vlm_content_part *out) {
    if (!cJSON_IsObject(part)) return wrong_type(p, param, part, "an object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
    char name[200];
    snprintf(name, sizeof name, "%s.type", param);
    if (!cJSON_IsString(type)) return wrong_type(p, name, type, "a string");
    const char *t = type->valuestring;
    int is_text = !strcmp(t, "text"), is_image = !strcmp(t, "image_url");
    if (!is_text && !is_image)
        return bad(p, name, "Content part type '%s' is not supported (expected \"text\" or \"image_url\").", t);
    for (const cJSON *it = part->child; it; it = it->next) {
        const char *k = it->string;
        int ok = !strcmp(k, "type") || (is_text && !strcmp(k, "text")) ||
            (is_image && (!strcmp(k, "image_url") || !strcmp(k, "min_pixels") || !strcmp(k, "max_pixels")));
        if (!ok) return bad(p, param, "Unrecognized field '%s' in a \"%s\" content part ('%s').", k, t, param);
    }
    if (is_image) return image_part(p, param, part, out);
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
    snprintf(name, sizeof name, "%s.text", param);
    if (!cJSON_IsString(text)) return wrong_type(p, name, text, "a string");
    out->text = text->valuestring;
    out->text_len = strlen(text->valuestring);
    return 0;
}

static const char *const k_roles[] = {"system", "user", "assistant", "developer"};

/* Message keys other clients echo back from earlier answers: fine when null or empty. */
static int ignorable_key(const cJSON *it) {
    static const char *const keys[] = {"refusal", "tool_calls", "function_call", "audio", "annotations"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (!strcmp(it->string, keys[i])) return cJSON_IsNull(it) || (cJSON_IsArray(it) && !it->child);
    return 0;
}

static int message(parser *p, int i, const cJSON *m, vlm_message *out) {
    char param[64], name[96];
    snprintf(param, sizeof param, "messages[%d]", i);
    if (!cJSON_IsObject(m)) return wrong_type(p, param, m, "an object");
    const cJSON *role = NULL, *content = NULL;
    for (const cJSON *it = m->child; it; it = it->next) {
        if (!strcmp(it->string, "role")) role = it;
        else if (!strcmp(it->string, "content")) content = it;
        else if (!strcmp(it->string, "name")) {
            snprintf(name, sizeof name, "%s.name", param);
            if (!cJSON_IsString(it)) return wrong_type(p, name, it, "a string");
        } else if (!ignorable_key(it)) {
            return bad(p, param, "Unrecognized or unsupported field '%s' in '%s' (expected role, content, name).",
                       it->string, param);
        }
    }
    snprintf(name, sizeof name, "%s.role", param);
    if (!role || !cJSON_IsString(role)) return wrong_type(p, name, role, "a string");
    int known = 0;
    for (size_t k = 0; k < sizeof k_roles / sizeof *k_roles; k++) known |= !strcmp(role->valuestring, k_roles[k]);
    if (!known)
        return bad(p, name, "Role '%s' is not supported (expected system, developer, user or assistant).",
                   role->valuestring);
    /* "developer" is OpenAI's newer name for the system role */
    out->role = !strcmp(role->valuestring, "developer") ? "system" : role->valuestring;
    snprintf(name, sizeof name, "%s.content", param);
    if (cJSON_IsString(content)) {
        out->text = content->valuestring;
        return 0;
    }
    if (!cJSON_IsArray(content)) return wrong_type(p, name, content, "a string or an array of content parts");
    out->parts = p->c->parts + p->n_parts;
    int j = 0;
    for (const cJSON *part = content->child; part; part = part->next, j++) {
        char pname[128];
        snprintf(pname, sizeof pname, "%s[%d]", name, j);
        if (content_part(p, pname, part, &p->c->parts[p->n_parts])) return 400;
        p->n_parts++;
        out->n_parts++;
    }
    if (!out->n_parts) out->text = ""; /* an empty list of parts: empty content */
    return 0;
}

static int f_messages(parser *p, const cJSON *v) {
    if (!cJSON_IsArray(v)) return wrong_type(p, "messages", v, "an array");
    int n = cJSON_GetArraySize(v);
    if (n == 0) return bad(p, "messages", "'messages' is empty; at least one message is required.");
    /* upper bounds: every content part could be an image */
    int n_parts = 0;
    for (const cJSON *m = v->child; m; m = m->next) {
        const cJSON *c = cJSON_IsObject(m) ? cJSON_GetObjectItemCaseSensitive(m, "content") : NULL;
        if (cJSON_IsArray(c)) n_parts += cJSON_GetArraySize(c);
    }
    vlm_oai_chat *c = p->c;
    c->messages = vlm_calloc((size_t)n, sizeof *c->messages, "request messages");
    c->parts = vlm_calloc((size_t)n_parts + 1, sizeof *c->parts, "request content parts");
    c->images = vlm_calloc((size_t)n_parts + 1, sizeof *c->images, "request images");
    c->image_bytes = vlm_calloc((size_t)n_parts + 1, sizeof *c->image_bytes, "request image data");
    c->image_paths = vlm_calloc((size_t)n_parts + 1, sizeof *c->image_paths, "request image paths");
    if (!c->messages || !c->parts || !c->images || !c->image_bytes || !c->image_paths)
        return vlm_oai_error_set(p->e, 503, "insufficient_memory", NULL, "%s", vlm_last_error());
    int i = 0;
    for (const cJSON *m = v->child; m; m = m->next, i++) {
        int r = message(p, i, m, &c->messages[i]);
        c->n_images = p->n_images; /* what was decoded so far is freed with the request */
        if (r) return r;
    }
    c->req.messages = c->messages;
    c->req.n_messages = n;
    return 0;
}

/* ---- the request --------------------------------------------------------------------------------- */

typedef int (*field_fn)(parser *p, const cJSON *v);
static const struct {
    const char *name;
    field_fn fn;
} k_fields[] = {
    {"model", f_model},
    {"messages", f_messages},
    {"max_tokens", f_max_tokens},
    {"max_completion_tokens", f_max_completion_tokens},
    {"temperature", f_temperature},
    {"top_p", f_top_p},
    {"top_k", f_top_k},
    {"repetition_penalty", f_repetition_penalty},
    {"seed", f_seed},
    {"stop", f_stop},
    {"n", f_n},
    {"stream", f_stream},
    {"stream_options", f_stream_options},
    {"ignore_eos", f_ignore_eos},
    {"min_pixels", f_min_pixels},
    {"max_pixels", f_max_pixels},
    {"return_token_ids", f_return_token_ids},
    {"frequency_penalty", f_frequency_penalty},
    {"presence_penalty", f_presence_penalty},
    {"logprobs", f_logprobs},
    {"top_logprobs", f_top_logprobs},
    {"logit_bias", f_logit_bias},
    {"tools", f_tools},
    {"tool_choice", f_tool_choice},
    {"functions", f_functions},
    {"function_call", f_function_call},
    {"parallel_tool_calls", f_parallel_tool_calls},
    {"response_format", f_response_format},
    {"modalities", f_modalities},
    {"user", f_user},
    {"metadata", f_metadata},
    {"store", f_store},
    {"service_tier", f_service_tier},
};

/* cJSON ends strings at a NUL, so a "\u0000" escape would silently cut the text: refuse it. An
 * escape is real when the backslash before the 'u' is not itself escaped (an odd run of them). */
static int has_nul_escape(const char *s, size_t n) {
    for (size_t i = 0; i + 6 <= n; i++) {
        if (s[i] != '\\' || s[i + 1] != 'u' || memcmp(s + i + 2, "0000", 4) != 0) continue;
        size_t run = 0;
        while (run < i + 1 && s[i - run] == '\\') run++;
        if (run % 2) return 1;
    }
    return 0;
}

static int parse(parser *p, const char *body, size_t len) {
    if (len == 0) return bad(p, NULL, "The request body is empty; expected a JSON object.");
    if (has_nul_escape(body, len))
        return bad(p, NULL, "The request holds a \\u0000 escape: NUL characters are not supported in strings.");
    const char *end = NULL;
    p->c->root = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!p->c->root) {
        size_t off = end && end >= body ? (size_t)(end - body) : 0;
        return bad(p, NULL, "The request body is not valid JSON (error near byte %zu of %zu).", off, len);
    }
    const cJSON *root = p->c->root;
    if (!cJSON_IsObject(root)) return bad(p, NULL, "The request body must be a JSON object, not %s.", json_type(root));
    const cJSON *messages = NULL;
    for (const cJSON *it = root->child; it; it = it->next) {
        if (cJSON_GetObjectItemCaseSensitive(root, it->string) != it)
            return bad(p, it->string, "'%s' is given twice.", it->string);
        size_t k = 0;
        while (k < sizeof k_fields / sizeof *k_fields && strcmp(k_fields[k].name, it->string) != 0) k++;
        if (k == sizeof k_fields / sizeof *k_fields)
            return bad(p, it->string, "Unrecognized request argument supplied: %s", it->string);
        if (k_fields[k].fn == f_messages) messages = it;
        else if (!cJSON_IsNull(it) && k_fields[k].fn(p, it)) return p->e->status;
    }
    if (!messages || cJSON_IsNull(messages)) return bad(p, "messages", "Missing required parameter: 'messages'.");
    if (f_messages(p, messages)) return p->e->status;
    vlm_request *r = &p->c->req;
    if (r->min_pixels && r->max_pixels && r->min_pixels > r->max_pixels)
        return bad(p, "min_pixels", "'min_pixels' %lld is larger than 'max_pixels' %lld.", r->min_pixels,
                   r->max_pixels);
    if (p->stream_options_given && !p->c->stream)
        return bad(p, "stream_options", "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
    /* max_completion_tokens is OpenAI's newer name; it wins when both are given */
    r->sampling.max_tokens = p->max_completion_tokens_given ? p->max_completion_tokens
        : p->max_tokens_given                               ? p->max_tokens
                                                            : p->o->default_max_tokens;
    return 0;
}

int vlm_oai_parse_chat(const char *body, size_t len, const vlm_oai_options *o, vlm_oai_chat *c, vlm_oai_error *e) {
    memset(c, 0, sizeof *c);
    memset(e, 0, sizeof *e);
    vlm_request_init(&c->req);
    parser p = {.o = o, .c = c, .e = e};
    int status = parse(&p, body, len);
    if (status) vlm_oai_chat_free(c);
    return status;
}

void vlm_oai_chat_free(vlm_oai_chat *c) {
    for (int i = 0; i < c->n_images; i++) {
        vlm_free(c->image_bytes ? c->image_bytes[i] : NULL);
        free(c->image_paths ? c->image_paths[i] : NULL); /* from realpath */
    }
    vlm_free(c->image_bytes);
    vlm_free(c->image_paths);
    vlm_free(c->images);
    vlm_free(c->parts);
    vlm_free(c->messages);
    vlm_free(c->stop);
    cJSON_Delete(c->root);
    memset(c, 0, sizeof *c);
}
