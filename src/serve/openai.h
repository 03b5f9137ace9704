/* The OpenAI chat-completions API as vlm serves it: a request body (JSON) becomes a vlm_request, and
 * a vlm_result becomes an answer (a chat.completion, or chat.completion.chunk objects for SSE).
 * Every way a request can be wrong is an error with the HTTP status and the OpenAI error object
 * {"error": {"message", "type", "param", "code"}} naming the field at fault.
 *
 *   vlm_oai_chat c;  vlm_oai_error e;
 *   if (vlm_oai_parse_chat(body, len, &opts, &c, &e) != 0)  -> answer e.status with vlm_oai_error_body(&e)
 *   c.req is ready for vlm_engine_submit (add on_text / user);  vlm_oai_chat_free(&c);
 *
 * This file knows JSON and the vlm API; nothing of HTTP or of the engine's threads. */
#ifndef VLM_SERVE_OPENAI_H
#define VLM_SERVE_OPENAI_H

#include <stdint.h>

#include "io/json.h"
#include "vlm.h"

/* An error answer: HTTP status and the OpenAI error object. */
typedef struct {
    int status;       /* 400, 401, 404, 405, 413, 429, 500, 503 */
    const char *type; /* "invalid_request_error", "authentication_error", ... */
    const char *code; /* NULL (JSON null) or e.g. "model_not_found" */
    char param[160];  /* "" = null; e.g. "messages[0].content[1].image_url.url" */
    char message[1024];
} vlm_oai_error;

/* Fills e (status, type, code, param "" or a name) with a printf message; returns e->status. */
int vlm_oai_error_set(vlm_oai_error *e, int status, const char *code, const char *param, const char *fmt, ...)
    VLM_PRINTF(5, 6);
/* The error object for a failed vlm call: VLM_ERR_BUSY -> 429, VLM_ERR_NOMEM -> 503, VLM_ERR_RUNTIME and
 * VLM_ERR_IO of the server's own -> 500, other input errors -> 400; the message is msg. */
int vlm_oai_error_from_status(vlm_oai_error *e, vlm_status s, const char *msg);

typedef struct {
    const char *media_dir;     /* realpath of --media-dir; NULL: file:// URLs are refused */
    const char *const *models; /* the names "model" may take (absent "model" is fine); n_models 0: any */
    int n_models;
    int default_max_tokens; /* when the request gives neither max_tokens nor max_completion_tokens */
} vlm_oai_options;

/* A parsed chat-completions request. req and everything it points to live here (strings point
 * into the cJSON tree, images into decoded buffers) until vlm_oai_chat_free. */
typedef struct {
    cJSON *root;
    vlm_request req;
    vlm_message *messages;
    vlm_content_part *parts;
    vlm_image_input *images; /* every image of the conversation, in order */
    int n_images;
    unsigned char **image_bytes; /* [n_images]: decoded data: URIs (NULL for file:// images) */
    char **image_paths;          /* [n_images]: resolved file:// paths (NULL for data: URIs) */
    const char **stop;
    const char *model; /* as the request named it, or NULL */
    int stream, include_usage, return_token_ids, seed_given;
} vlm_oai_chat;

/* Parses a request body (len bytes, not necessarily NUL-terminated). 0 on success; otherwise the
 * HTTP status of the error, e filled and *c empty. Unknown fields, fields this server cannot honour
 * (n > 1, logprobs, tools, penalties other than 0, ...), wrong types and ranges are all errors. */
int vlm_oai_parse_chat(const char *body, size_t len, const vlm_oai_options *o, vlm_oai_chat *c, vlm_oai_error *e);
void vlm_oai_chat_free(vlm_oai_chat *c);

/* ---- answers (openai_response.c) --------------------------------------------------------------- */

/* What every object of one answer shares: "chatcmpl-<hex>", the creation time, the model name. */
typedef struct {
    char id[48];
    long long created; /* Unix seconds */
    const char *model;
} vlm_oai_meta;

/* "stop" (end of sequence, stop string), "length" (max_tokens), "abort" (cancelled). */
const char *vlm_oai_finish_reason(vlm_stop_reason s);
/* {"error": {...}} */
void vlm_oai_error_body(vlm_strbuf *b, const vlm_oai_error *e);
/* A chat.completion: choices[0].message, finish_reason, usage and the "vlm" object (timings per
 * stage, one entry per image). with_ids: prompt_token_ids and choices[0].token_ids as well. */
void vlm_oai_completion(vlm_strbuf *b, const vlm_oai_meta *m, const vlm_result *r, int with_ids);
/* chat.completion.chunk objects. usage_null: add "usage": null (stream_options.include_usage). */
void vlm_oai_chunk_delta(vlm_strbuf *b, const vlm_oai_meta *m, const char *role, const char *text, size_t len,
                         int usage_null);
/* The last chunk with choices: an empty delta, finish_reason and the "vlm" object. */
void vlm_oai_chunk_finish(vlm_strbuf *b, const vlm_oai_meta *m, const vlm_result *r, int with_ids, int usage_null);
/* The usage chunk of stream_options.include_usage: "choices": [] and "usage". */
void vlm_oai_chunk_usage(vlm_strbuf *b, const vlm_oai_meta *m, const vlm_result *r);
/* The "vlm" object alone: {"timings": {...}, "images": [...]} */
void vlm_oai_vlm_object(vlm_strbuf *b, const vlm_result *r);

/* A deep copy of a result (the engine frees its own when on_done returns), and its release. */
vlm_status vlm_oai_result_copy(const vlm_result *src, vlm_result *dst);
void vlm_oai_result_release(vlm_result *r);

#endif
