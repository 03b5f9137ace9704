/* The HTTP layer of vlm serve (src/serve/http.c) with libcurl and raw sockets as clients, on a
 * test handler: the API key (401), the body cap (413, by Content-Length and chunked), streamed
 * bodies, Retry-After, a client that goes away (noticed while a handler waits and while it streams),
 * a client that does not read (the others are served meanwhile), and quiescing (new connections are
 * refused while open ones finish). */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/timer.h"
#include "harness.h"
#include "serve/http.h"

typedef struct {
    atomic_int closes;       /* stream close() calls */
    atomic_int stream_gone;  /* a stream noticed its client leave */
    atomic_int handler_gone; /* a waiting handler noticed its client leave */
    atomic_int rejects;      /* on_reject calls */
    atomic_int big_open;     /* the unread /big stream is still open */
} state;

static state g;

typedef struct {
    int fd, n, sent;
    long total;
} stream_ctx;

static long read_count(void *user, char *buf, size_t cap) { /* /stream: 5 chunks */
    stream_ctx *c = user;
    if (c->sent == c->n) return 0;
    usleep(2000);
    return snprintf(buf, cap, "chunk %d\n", c->sent++);
}

static long read_forever(void *user, char *buf, size_t cap) { /* until the client leaves */
    stream_ctx *c = user;
    vlm_http_wake w = vlm_http_wait(c->fd, -1, 20);
    if (w == VLM_HTTP_GONE) {
        atomic_store(&g.stream_gone, 1);
        return -1;
    }
    return snprintf(buf, cap, "tick\n");
}

static long read_big(void *user, char *buf, size_t cap) { /* 256 MB, as fast as the socket takes it */
    stream_ctx *c = user;
    if (c->total >= (256L << 20)) return 0;
    memset(buf, 'x', cap);
    c->total += (long)cap;
    return (long)cap;
}

static void close_stream(void *user) {
    stream_ctx *c = user;
    if (c->n == -2) atomic_store(&g.big_open, 0);
    free(c);
    atomic_fetch_add(&g.closes, 1);
}

static void handler(void *user, const vlm_http_request *rq, vlm_http_response *rs) {
    (void)user;
    if (!strcmp(rq->path, "/echo") || !strcmp(rq->path, "/health")) {
        rs->status = 200;
        vlm_sb_printf(&rs->body, "{\"method\":\"%s\",\"len\":%zu,\"nul\":%d}", rq->method, rq->body_len,
                      rq->body[rq->body_len] == 0);
    } else if (!strcmp(rq->path, "/retry")) {
        rs->status = 429;
        rs->retry_after_s = 3;
        vlm_sb_printf(&rs->body, "{}");
    } else if (!strcmp(rq->path, "/wait")) { /* a long request: waits until its client leaves */
        if (vlm_http_wait(rq->fd, -1, 5000) == VLM_HTTP_GONE) atomic_store(&g.handler_gone, 1);
        rs->status = 200;
    } else if (!strncmp(rq->path, "/stream", 7) || !strcmp(rq->path, "/forever") || !strcmp(rq->path, "/big")) {
        stream_ctx *c = calloc(1, sizeof *c);
        c->fd = rq->fd;
        c->n = !strcmp(rq->path, "/big") ? -2 : 5;
        rs->status = 200;
        rs->content_type = "text/event-stream";
        rs->stream = (vlm_http_stream){.read = !strcmp(rq->path, "/forever") ? read_forever
                                           : !strcmp(rq->path, "/big")       ? read_big
                                                                             : read_count,
                                       .close = close_stream,
                                       .user = c};
        if (c->n == -2) atomic_store(&g.big_open, 1);
    } else {
        rs->status = 404;
    }
}

static void on_reject(void *user, int status) {
    (void)user;
    (void)status;
    atomic_fetch_add(&g.rejects, 1);
}

static vlm_http *g_http;
static char g_base[64];

static const char *url(const char *path) {
    static char buf[4][256];
    static int k;
    char *b = buf[k++ % 4];
    snprintf(b, 256, "%s%s", g_base, path);
    return b;
}

typedef struct {
    long status;
    vlm_strbuf body, headers;
    CURLcode rc;
} reply;

static size_t collect(char *p, size_t sz, size_t n, void *user) {
    vlm_sb_append(user, p, sz * n);
    return sz * n;
}

/* One request with libcurl. body NULL: GET. chunked: send the body with Transfer-Encoding: chunked. */
static reply request(const char *path, const char *body, size_t len, const char *key, int chunked) {
    reply r = {0};
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char auth[128];
    if (key) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    if (chunked) h = curl_slist_append(h, "Transfer-Encoding: chunked");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(c, CURLOPT_URL, url(path));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, chunked ? (curl_off_t)-1 : (curl_off_t)len);
    }
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r.headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    r.rc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    if (!r.body.data) vlm_sb_append(&r.body, "", 0);
    if (!r.headers.data) vlm_sb_append(&r.headers, "", 0);
    return r;
}

static void reply_free(reply *r) {
    vlm_sb_free(&r->body);
    vlm_sb_free(&r->headers);
}

static int wait_for(atomic_int *flag, int want, double seconds) {
    double end = vlm_now() + seconds;
    while (atomic_load(flag) != want && vlm_now() < end) usleep(5000);
    return atomic_load(flag) == want;
}

static int connect_raw(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)vlm_http_port(g_http))};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void test_auth(void) {
    reply r = request("/health", NULL, 0, NULL, 0); /* an open path */
    CHECK(r.rc == CURLE_OK && r.status == 200);
    reply_free(&r);
    int before = atomic_load(&g.rejects);
    r = request("/echo", "{}", 2, NULL, 0);
    CHECK(r.status == 401 && strstr(r.body.data, "\"code\":\"invalid_api_key\"") &&
          strstr(r.body.data, "Authorization: Bearer"));
    CHECK(strstr(r.headers.data, "WWW-Authenticate: Bearer") != NULL);
    reply_free(&r);
    r = request("/echo", "{}", 2, "wrong", 0);
    CHECK(r.status == 401);
    reply_free(&r);
    r = request("/echo", "{}", 2, "sekrit-longer", 0);
    CHECK(r.status == 401);
    reply_free(&r);
    CHECK(atomic_load(&g.rejects) == before + 3);
    r = request("/echo", "{\"a\":1}", 7, "sekrit", 0);
    CHECK(r.status == 200 && strstr(r.body.data, "\"method\":\"POST\",\"len\":7,\"nul\":1"));
    reply_free(&r);
}

static void test_body_cap(void) {
    static char big[5000];
    memset(big, 'a', sizeof big);
    reply r = request("/echo", big, 1000, "sekrit", 0); /* exactly the cap */
    CHECK(r.status == 200 && strstr(r.body.data, "\"len\":1000"));
    reply_free(&r);
    r = request("/echo", big, 1001, "sekrit", 0);
    CHECK_MSG(r.status == 413 && strstr(r.body.data, "\"code\":\"request_too_large\"") &&
                  strstr(r.body.data, "1000 bytes"),
              "%ld %s", r.status, r.body.data);
    reply_free(&r);
    big[4999] = 0;
    r = request("/echo", big, 4999, "sekrit", 1); /* chunked: the cap is found while reading */
    CHECK_MSG(r.status == 413, "%ld %s", r.status, r.body.data);
    reply_free(&r);
    r = request("/echo", "{}", 2, "sekrit", 1);
    CHECK(r.status == 200 && strstr(r.body.data, "\"len\":2"));
    reply_free(&r);
    /* still healthy */
    r = request("/health", NULL, 0, NULL, 0);
    CHECK(r.status == 200);
    reply_free(&r);
}

static void test_stream_and_headers(void) {
    int closes = atomic_load(&g.closes);
    reply r = request("/stream", NULL, 0, "sekrit", 0);
    CHECK(r.status == 200 && !strcmp(r.body.data, "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n"));
    CHECK(strstr(r.headers.data, "Content-Type: text/event-stream") && strstr(r.headers.data, "X-Accel-Buffering: no"));
    CHECK(strstr(r.headers.data, "Transfer-Encoding: chunked") != NULL);
    reply_free(&r);
    CHECK(wait_for(&g.closes, closes + 1, 5));
    r = request("/retry", NULL, 0, "sekrit", 0);
    CHECK(r.status == 429 && strstr(r.headers.data, "Retry-After: 3"));
    reply_free(&r);
}

static size_t abort_after_first(char *p, size_t sz, size_t n, void *user) {
    (void)p;
    (*(int *)user)++;
    return 0 * sz * n; /* 0: curl aborts the transfer and closes the connection */
}

static void test_client_leaves(void) {
    /* while streaming */
    int closes = atomic_load(&g.closes), calls = 0;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer sekrit");
    curl_easy_setopt(c, CURLOPT_URL, url("/forever"));
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, abort_after_first);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &calls);
    CHECK(curl_easy_perform(c) == CURLE_WRITE_ERROR && calls == 1);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    CHECK_MSG(wait_for(&g.stream_gone, 1, 5), "the stream did not notice its client leave");
    CHECK(wait_for(&g.closes, closes + 1, 5));
    /* while a handler waits for its request to end */
    int fd = connect_raw();
    CHECK(fd >= 0);
    const char *req = "GET /wait HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekrit\r\n\r\n";
    CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
    usleep(100000);
    double t0 = vlm_now();
    close(fd);
    CHECK_MSG(wait_for(&g.handler_gone, 1, 3), "the handler did not notice its client leave");
    CHECK(vlm_now() - t0 < 2);
}

static void test_slow_client_does_not_stall(void) {
    /* a client that asks for a large stream and never reads: its thread blocks on a full socket */
    int fd = connect_raw();
    int small = 4096;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small);
    const char *req = "GET /big HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekrit\r\n\r\n";
    CHECK(write(fd, req, strlen(req)) == (ssize_t)strlen(req));
    CHECK(wait_for(&g.big_open, 1, 5));
    usleep(200000);
    double worst = 0;
    for (int i = 0; i < 20; i++) {
        double t0 = vlm_now();
        reply r = request("/echo", "{}", 2, "sekrit", 0);
        double dt = vlm_now() - t0;
        worst = dt > worst ? dt : worst;
        CHECK(r.status == 200);
        reply_free(&r);
    }
    CHECK_MSG(worst < 1.0, "a request took %.3f s beside the unread stream", worst);
    CHECK(atomic_load(&g.big_open) == 1); /* still stuck, as it should be */
    close(fd);
    CHECK_MSG(wait_for(&g.big_open, 0, 10), "the unread stream was not closed after its client left");
}

static void test_wait(void) {
    int sv[2], ev[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0 && pipe(ev) == 0);
    CHECK(vlm_http_wait(sv[0], ev[0], 10) == VLM_HTTP_TIMEOUT);
    CHECK(write(ev[1], "x", 1) == 1);
    CHECK(vlm_http_wait(sv[0], ev[0], 1000) == VLM_HTTP_EVENT);
    CHECK(write(sv[1], "GET", 3) == 3); /* data from the client is not a wake-up */
    char b;
    CHECK(read(ev[0], &b, 1) == 1);
    CHECK(vlm_http_wait(sv[0], ev[0], 10) == VLM_HTTP_TIMEOUT);
    close(sv[1]);
    CHECK(vlm_http_wait(sv[0], ev[0], 1000) == VLM_HTTP_GONE);
    close(sv[0]);
    close(ev[0]);
    close(ev[1]);
}

static void test_bind_errors(void) {
    vlm_http *h = NULL;
    vlm_http_options o = {.host = "127.0.0.1", .port = vlm_http_port(g_http), .max_body_bytes = 10, .handler = handler};
    CHECK_ERR(vlm_http_start(&o, &h), VLM_ERR_IO, "cannot listen on 127.0.0.1 port");
    CHECK(h == NULL);
    o.host = "no-such-host.invalid";
    o.port = 0;
    CHECK_ERR(vlm_http_start(&o, &h), VLM_ERR_INVALID, "--host no-such-host.invalid");
    /* IPv6 loopback, when the machine has it */
    o.host = "::1";
    if (vlm_http_start(&o, &h) == VLM_OK) {
        CHECK(vlm_http_port(h) > 0);
        vlm_http_stop(h);
    }
}

static void test_quiesce(void) {
    /* an open connection finishes its stream after the listening socket is closed */
    int fd = connect_raw();
    const char *req = "GET /stream HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sekrit\r\n\r\n";
    CHECK(fd >= 0 && write(fd, req, strlen(req)) == (ssize_t)strlen(req));
    usleep(50000);
    vlm_http_quiesce(g_http);
    CHECK(connect_raw() < 0); /* refused at once */
    char buf[4096];
    size_t got = 0;
    double end = vlm_now() + 5;
    while (vlm_now() < end && got < sizeof buf - 1) {
        ssize_t n = read(fd, buf + got, sizeof buf - 1 - got);
        if (n <= 0) break;
        got += (size_t)n;
        buf[got] = 0;
        if (strstr(buf, "chunk 4\n")) break;
    }
    buf[got] = 0;
    CHECK_MSG(strstr(buf, "HTTP/1.1 200") && strstr(buf, "chunk 4\n"), "%s", buf);
    close(fd);
}

int main(void) {
    curl_global_init(CURL_GLOBAL_DEFAULT);
    static const char *const open_paths[] = {"/health", NULL};
    vlm_http_options o = {.host = "127.0.0.1",
                          .port = 0,
                          .max_body_bytes = 1000,
                          .max_connections = 64,
                          .idle_timeout_s = 30,
                          .api_key = "sekrit",
                          .open_paths = open_paths,
                          .handler = handler,
                          .on_reject = on_reject};
    CHECK_OK(vlm_http_start(&o, &g_http));
    if (!g_http) return test_summary();
    snprintf(g_base, sizeof g_base, "http://127.0.0.1:%d", vlm_http_port(g_http));
    RUN(test_wait);
    RUN(test_auth);
    RUN(test_body_cap);
    RUN(test_stream_and_headers);
    RUN(test_client_leaves);
    RUN(test_slow_client_does_not_stall);
    RUN(test_bind_errors);
    RUN(test_quiesce);
    vlm_http_stop(g_http);
    curl_global_cleanup();
    return test_summary();
}
