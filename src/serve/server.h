/* `vlm serve`: an OpenAI-compatible HTTP server on the engine (continuous batching).
 *
 *   GET  /health               200 when the model is loaded and warm; 503 while loading or draining
 *   GET  /metrics              Prometheus text (metrics.h)
 *   GET  /v1/models            the served model
 *   POST /v1/chat/completions  openai.h; streamed as server-sent events with "stream": true
 *
 * Lifecycle: bind (health answers 503), load the model, create the engine and its thread, run one
 * small warm-up request (every weight the model uses is paged in, thread pools and scratch
 * buffers exist), then /health turns 200 and "vlm serve: listening on http://HOST:PORT" is printed.
 * SIGTERM / SIGINT: /health 503, no new connections, in-flight requests finish within the grace
 * period (then they are cancelled), exit 0. This module uses include/vlm.h only (and base/ utilities). */
#ifndef VLM_SERVE_SERVER_H
#define VLM_SERVE_SERVER_H

#include <stddef.h>

#include "vlm.h"

typedef struct {
    vlm_load_options load;
    vlm_engine_options engine;
    const char *host; /* default 127.0.0.1 */
    int port;         /* default 8080; 0: a free port */
    const char *api_key;
    const char *media_dir;         /* file:// images must resolve inside it; NULL: refused */
    const char *served_model_name; /* NULL: the model id as given */
    size_t max_body_bytes;         /* default 64 MB */
    int max_connections;           /* default 512 */
    int idle_timeout_s;            /* default 120 */
    double shutdown_grace_s;       /* default 30 */
    int default_max_tokens;        /* when a request gives none (default 1024) */
    int warmup;                    /* default 1 */
} vlm_serve_options;

void vlm_serve_options_init(vlm_serve_options *o);
/* Serves until SIGTERM or SIGINT, then drains. VLM_OK after a clean shutdown; an error when the
 * address cannot be bound or the model cannot be loaded or warmed up. */
vlm_status vlm_serve_run(const vlm_serve_options *o);

#endif
