/* The HTTP layer of `vlm serve`, on libmicrohttpd: one thread per connection (poll-based), so a
 * handler may block while its request runs, and a client that does not read stalls only its own
 * thread (the engine never writes to a socket). The layer owns what is about HTTP and nothing else:
 * the listening socket, the body (collected up to a cap: 413), the API key (401), connection limits
 * and idle timeouts, streamed bodies (chunked), and draining at shutdown. Routing and answers are the
 * handler's.
 *
 *   vlm_http_options o = {.host = "127.0.0.1", .port = 0, .handler = fn, .user = ctx, ...};
 *   vlm_http *h;  vlm_http_start(&o, &h);  ... vlm_http_port(h) ...
 *   vlm_http_quiesce(h);   (stop accepting)   ...   vlm_http_stop(h);
 */
#ifndef VLM_SERVE_HTTP_H
#define VLM_SERVE_HTTP_H

#include <stddef.h>

#include "base/error.h"
#include "base/strbuf.h"

typedef struct vlm_http vlm_http;

typedef struct {
    const char *method; /* "GET", "POST", ... */
    const char *path;   /* without the query string */
    const char *body;   /* the whole body, NUL-terminated (body_len bytes before the NUL) */
    size_t body_len;
    double t_arrival; /* vlm_now() when its headers had arrived */
    int fd;           /* the connection's socket: vlm_http_wait notices the client going away */
} vlm_http_request;

/* A body produced while it is sent (chunked transfer encoding). read blocks until bytes are ready
 * and returns their count (<= cap, > 0), 0 at the end, -1 to abort the connection; close is called
 * once when the layer is done with the stream: after the last read, or early when the client went
 * away or the server stopped. Both run on the connection's thread. */
typedef struct {
    long (*read)(void *user, char *buf, size_t cap);
    void (*close)(void *user);
    void *user;
} vlm_http_stream;

typedef struct {
    int status;
    const char *content_type; /* NULL: application/json */
    vlm_strbuf body;          /* the body (the layer takes it) ... */
    vlm_http_stream stream;   /* ... or, when stream.read is set, a streamed body */
    int retry_after_s;        /* > 0: a Retry-After header (429, 503) */
} vlm_http_response;

/* Runs on the connection's thread; fills rs (status 0 is answered as 500). */
typedef void (*vlm_http_handler)(void *user, const vlm_http_request *rq, vlm_http_response *rs);
/* Told of each request the layer answered by itself (401, 413), for the metrics. */
typedef void (*vlm_http_reject_fn)(void *user, int status);

typedef struct {
    const char *host; /* an address or a name: "127.0.0.1", "::1", "0.0.0.0", "localhost" */
    int port;         /* 0: a free port (vlm_http_port tells which) */
    size_t max_body_bytes;
    int max_connections;
    int idle_timeout_s;            /* a connection with no traffic for this long is closed (0: never) */
    const char *api_key;           /* NULL: none; else "Authorization: Bearer KEY" on every path ... */
    const char *const *open_paths; /* ... but these (NULL-terminated), e.g. /health and /metrics */
    vlm_http_handler handler;
    vlm_http_reject_fn on_reject; /* may be NULL */
    void *user;
} vlm_http_options;

/* Binds and starts serving. The address is bound before it returns (errors name host and port). */
vlm_status vlm_http_start(const vlm_http_options *o, vlm_http **out);
int vlm_http_port(const vlm_http *h);
/* Stops accepting connections (the listening socket is closed; new clients are refused at once).
 * Open connections go on until vlm_http_stop. */
void vlm_http_quiesce(vlm_http *h);
/* Connections open now. */
unsigned vlm_http_connections(vlm_http *h);
/* Closes every connection (their threads end after their handlers return) and frees. */
void vlm_http_stop(vlm_http *h);

/* What a handler waiting for its request's next event saw (vlm_http_wait). */
typedef enum { VLM_HTTP_EVENT, VLM_HTTP_GONE, VLM_HTTP_TIMEOUT } vlm_http_wake;
/* Waits until event_fd is readable, the client on sock_fd hangs up, or timeout_ms passes (-1: no
 * limit). Does not read either descriptor. A client that shuts down its sending side after its
 * request (POLLRDHUP) counts as gone: HTTP clients keep the connection open for the answer. */
vlm_http_wake vlm_http_wait(int sock_fd, int event_fd, int timeout_ms);

#endif
