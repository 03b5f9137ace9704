/* libmicrohttpd glue: the access handler collects a request (checking the key and the body cap
 * first), calls the server's handler and turns its answer into an MHD response. */
#include "serve/http.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include <microhttpd.h>
#include <netdb.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/memory.h"
#include "base/timer.h"
#include "serve/openai.h"

struct vlm_http {
    struct MHD_Daemon *daemon;
    vlm_http_options o;
    int port;
    int quiesced;
};

/* Per request (MHD's con_cls): the body as it arrives. */
typedef struct {
    vlm_strbuf body;
    size_t discarded; /* bytes dropped after the body went over the cap */
    int too_large;
    double t_arrival;
} request_state;

static int is_open_path(const vlm_http *h, const char *path) {
    for (const char *const *p = h->o.open_paths; p && *p; p++)
        if (!strcmp(*p, path)) return 1;
    return 0;
}

/* Compares the whole key whatever the first difference, so timing tells nothing of the key. */
static int key_matches(const char *given, const char *key) {
    size_t n = strlen(key), m = strlen(given);
    unsigned diff = (unsigned)(n ^ m);
    for (size_t i = 0; i < n; i++) diff |= (unsigned char)key[i] ^ (unsigned char)(i < m ? given[i] : 0);
    return diff == 0;
}

static int authorized(const vlm_http *h, struct MHD_Connection *c) {
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!v || strncasecmp(v, "Bearer ", 7) != 0) return 0;
    v += 7;
    while (*v == ' ') v++;
    return key_matches(v, h->o.api_key);
}

/* A streamed body: the handler's read and close behind MHD's content-reader callbacks. */
static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    vlm_http_stream *st = cls;
    long n = st->read(st->user, buf, max);
    return n > 0 ? (ssize_t)n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls) {
    vlm_http_stream *st = cls;
    st->close(st->user);
    vlm_free(st);
}

static struct MHD_Response *stream_response(const vlm_http_stream *s) {
    vlm_http_stream *st = vlm_alloc(sizeof *st, "an HTTP stream");
    struct MHD_Response *r = NULL;
    if (st) {
        *st = *s;
        r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st, stream_free);
    }
    if (!r) { /* the stream's close still runs exactly once */
        vlm_free(st);
        s->close(s->user);
    }
    return r;
}

static enum MHD_Result queue(struct MHD_Connection *c, vlm_http_response *rs) {
    struct MHD_Response *r;
    if (rs->stream.read) r = stream_response(&rs->stream);
    else if (rs->body.data) {
        r = MHD_create_response_from_buffer(rs->body.len, rs->body.data, MHD_RESPMEM_MUST_FREE);
        if (r) rs->body = (vlm_strbuf){0}; /* MHD frees it */
    } else r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    vlm_sb_free(&rs->body);
    if (!r) return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rs->content_type ? rs->content_type : "application/json");
    if (rs->stream.read) {
        MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        MHD_add_response_header(r, "X-Accel-Buffering", "no"); /* nginx: pass the events on at once */
    }
    if (rs->retry_after_s > 0) {
        char v[16];
        snprintf(v, sizeof v, "%d", rs->retry_after_s);
        MHD_add_response_header(r, MHD_HTTP_HEADER_RETRY_AFTER, v);
    }
    if (rs->status == 401) MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)rs->status, r);
    MHD_destroy_response(r);
    return ok;
}

/* An answer of the layer itself: the OpenAI error object. */
static enum MHD_Result reject(vlm_http *h, struct MHD_Connection *c, int status, const char *code, const char *fmt,
                              const char *arg) {
    vlm_oai_error e;
    vlm_oai_error_set(&e, status, code, NULL, fmt, arg);
    vlm_http_response rs = {.status = status};
    vlm_oai_error_body(&rs.body, &e);
    if (h->o.on_reject) h->o.on_reject(h->o.user, status);
    return queue(c, &rs);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls) {
    (void)version;
    vlm_http *h = cls;
    request_state *st = *con_cls;
    char limit[64];
    snprintf(limit, sizeof limit, "%zu bytes", h->o.max_body_bytes);
    if (!st) { /* the headers are in: check what can be checked before reading the body */
        st = vlm_calloc(1, sizeof *st, "an HTTP request");
        if (!st) return MHD_NO;
        st->t_arrival = vlm_now();
        *con_cls = st;
        if (h->o.api_key && !is_open_path(h, url) && !authorized(h, c))
            return reject(h, c, 401, "invalid_api_key", "%s",
                          "Missing or wrong API key: send the header 'Authorization: Bearer <key>'.");
        const char *len = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (len && strtoull(len, NULL, 10) > h->o.max_body_bytes)
            return reject(h, c, 413, "request_too_large", "The request body is larger than the server's limit of %s.",
                          limit);
        return MHD_YES;
    }
    if (*upload_size) { /* a piece of the body */
        size_t n = *upload_size;
        *upload_size = 0;
        if (!st->too_large && st->body.len + n > h->o.max_body_bytes) {
            st->too_large = 1; /* a chunked body: answered once it has been read */
            vlm_sb_free(&st->body);
        }
        if (st->too_large) {
            st->discarded += n;
            return st->discarded > 4 * h->o.max_body_bytes + (1 << 20) ? MHD_NO : MHD_YES;
        }
        vlm_sb_append(&st->body, upload, n);
        return st->body.failed ? MHD_NO : MHD_YES;
    }
    if (st->too_large)
        return reject(h, c, 413, "request_too_large", "The request body is larger than the server's limit of %s.",
                      limit);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    vlm_http_request rq = {.method = method,
                           .path = url,
                           .body = st->body.data ? st->body.data : "",
                           .body_len = st->body.len,
                           .t_arrival = st->t_arrival,
                           .fd = ci ? ci->connect_fd : -1};
    vlm_http_response rs = {0};
    h->o.handler(h->o.user, &rq, &rs);
    vlm_sb_free(&st->body); /* the handler is done with it; a streamed answer may last long */
    if (rs.status == 0) rs.status = 500;
    return queue(c, &rs);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why) {
    (void)cls;
    (void)c;
    request_state *st = *con_cls;
    if (why != MHD_REQUEST_TERMINATED_COMPLETED_OK) VLM_LOG_D("serve: a connection ended early (code %d)", (int)why);
    if (st) {
        vlm_sb_free(&st->body);
        vlm_free(st);
    }
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
    (void)cls;
    if (vlm_log_get_level() < VLM_LOG_DEBUG) return;
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    VLM_LOG_D("libmicrohttpd: %s", msg);
}

vlm_status vlm_http_start(const vlm_http_options *o, vlm_http **out) {
    *out = NULL;
    char port[16];
    snprintf(port, sizeof port, "%d", o->port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
    int rc = getaddrinfo(o->host, port, &hints, &ai);
    if (rc != 0) return vlm_err(VLM_ERR_INVALID, "--host %s: %s", o->host, gai_strerror(rc));
    vlm_http *h = vlm_calloc(1, sizeof *h, "the HTTP server");
    if (!h) {
        freeaddrinfo(ai);
        return VLM_ERR_NOMEM;
    }
    h->o = *o;
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC |
        MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    h->daemon = MHD_start_daemon(
        flags, (uint16_t)o->port, NULL, NULL, on_access, h, MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)(o->max_connections > 0 ? o->max_connections : 256),
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(o->idle_timeout_s > 0 ? o->idle_timeout_s : 0),
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h, MHD_OPTION_END);
    int err = errno;
    freeaddrinfo(ai);
    if (!h->daemon) {
        vlm_free(h);
        return vlm_err(VLM_ERR_IO, "cannot listen on %s port %d: %s", o->host, o->port,
                       err ? strerror(err) : "libmicrohttpd refused to start");
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di ? di->port : o->port;
    *out = h;
    return VLM_OK;
}

int vlm_http_port(const vlm_http *h) { return h->port; }

void vlm_http_quiesce(vlm_http *h) {
    if (h->quiesced) return;
    h->quiesced = 1;
    MHD_socket fd = MHD_quiesce_daemon(h->daemon);
    if (fd == MHD_INVALID_SOCKET) return;
    /* shutdown first: the listening thread may still hold the socket in its poll set for a moment,
     * and a socket that is only closed would go on queueing new connections until then */
    shutdown(fd, SHUT_RDWR);
    close(fd);
}

unsigned vlm_http_connections(vlm_http *h) {
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(h->daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    return di ? di->num_connections : 0;
}

void vlm_http_stop(vlm_http *h) {
    if (!h) return;
    MHD_stop_daemon(h->daemon);
    vlm_free(h);
}

vlm_http_wake vlm_http_wait(int sock_fd, int event_fd, int timeout_ms) {
    struct pollfd p[2] = {{.fd = event_fd, .events = POLLIN}, {.fd = sock_fd, .events = POLLRDHUP}};
    for (;;) {
        int n = poll(p, 2, timeout_ms);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return VLM_HTTP_GONE;
        if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) return VLM_HTTP_GONE;
        if (p[0].revents) return VLM_HTTP_EVENT;
        return VLM_HTTP_TIMEOUT;
    }
}
