/* What server.c (lifecycle, routes) and chat.c (the chat-completions handler) share. */
#ifndef VLM_SERVE_INTERNAL_H
#define VLM_SERVE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "serve/http.h"
#include "serve/metrics.h"
#include "serve/openai.h"
#include "serve/server.h"

typedef enum { SERVE_LOADING, SERVE_READY, SERVE_DRAINING } serve_state;

typedef struct serve_job serve_job;

typedef struct {
    const vlm_serve_options *o;
    vlm_http *http;
    vlm_model *model;
    vlm_engine *engine;
    atomic_int state; /* serve_state */
    vlm_metrics metrics;
    vlm_oai_options oai;
    const char *model_names[2]; /* the served name, the model id */
    char media_dir[4096];       /* realpath of --media-dir */
    pthread_mutex_t mu;         /* guards jobs and rng */
    serve_job *jobs;            /* requests submitted and not yet answered */
    int n_jobs;
    uint64_t rng;
} vlm_server;

/* POST /v1/chat/completions */
void vlm_serve_chat(vlm_server *s, const vlm_http_request *rq, vlm_http_response *rs);
/* Cancels every request in flight (shutdown after the grace period); returns how many. */
int vlm_serve_cancel_all(vlm_server *s);
/* A fresh 64-bit random number (request ids, seeds of unseeded requests). */
uint64_t vlm_serve_random(vlm_server *s);
/* rs = the OpenAI error object e. */
void vlm_serve_error(vlm_http_response *rs, const vlm_oai_error *e);

#endif
