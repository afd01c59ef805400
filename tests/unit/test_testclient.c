/*
 * The test client (weave/testclient.h): requests through a router with no
 * socket, on the virtual clock. A 1-second route answers in microseconds
 * while its handler sees the second; a deadline header cuts it at 300 ms
 * of virtual time; middleware, errors, streams, bodies and trailers come
 * back as a real server sends them (compared with one, over a socket, in
 * the same runtime); concurrent requests; the caller's own deadline
 * cancels the request; and requests no client could send are refused.
 */
#include <time.h>

#include "harness.h"
#include "weave/http.h"
#include "weave/testclient.h"

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int run_virtual(int shards, wv_fn *fn, void *arg)
{
    wv_main_opts o = {.shards = shards, .no_signal_handling = true, .virtual_clock = true};
    return run_in_rt_opts(&o, fn, arg);
}

/* ------------------------------------------------------------ the app */

static int64_t async_slept_ns; /* what /async-endpoint's handler measured */
static int async_rc;           /* and what its sleep returned */
static int events_rc;          /* the error that ended /events */

static int hello(wv_req *req, wv_res *res)
{
    return wv_res_json(res, 200, "{\"message\":\"Hello\"}");
}

/* the chapter's GET /async-endpoint */
static int async_endpoint(wv_req *req, wv_res *res)
{
    int64_t t0 = wv_now();
    async_rc = wv_sleep_ms(1000);
    async_slept_ns = wv_now() - t0;
    if (async_rc < 0)
        return async_rc;
    return wv_res_json(res, 200, "{\"message\":\"Asynchronous Response\"}");
}

static int get_user(wv_req *req, wv_res *res)
{
    int64_t id;
    int rc = wv_req_param_i64(req, "id", &id);
    if (rc < 0)
        return rc;
    if (id == 404)
        return wv_fail(-ENOENT, "no user 404");
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "id");
    wv_json_int(j, id);
    wv_str q;
    if (wv_req_query_param(req, "peer", &q) == 0) { /* differs over a socket */
        wv_json_key(j, "peer");
        wv_json_string(j, wv_req_peer(req));
    }
    wv_json_key(j, "version");
    wv_json_int(j, wv_req_version(req));
    wv_json_object_end(j);
    return wv_res_json_send(res, 201);
}

/* the body back, with its content type */
static int echo(wv_req *req, wv_res *res)
{
    wv_str body;
    int rc = wv_req_body(req, &body);
    if (rc < 0)
        return rc;
    wv_str ct = wv_req_header(req, "Content-Type");
    char type[128] = "application/octet-stream";
    if (ct.p)
        snprintf(type, sizeof type, "%.*s", (int)ct.n, ct.p);
    return wv_res_send(res, 200, type, body.p, body.n);
}

/* the body streamed through a small buffer: bytes, reads, a checksum, and
 * a trailer the client sent after it */
static int upload(wv_req *req, wv_res *res)
{
    char buf[1000];
    int64_t total = 0, reads = 0;
    uint32_t sum = 0;
    ssize_t n;
    while ((n = wv_req_read(req, buf, sizeof buf)) > 0) {
        total += n;
        reads++;
        for (ssize_t i = 0; i < n; i++)
            sum = sum * 31 + (unsigned char)buf[i];
    }
    if (n < 0)
        return (int)n;
    wv_str t = wv_req_trailer(req, "x-sum");
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "bytes");
    wv_json_int(j, total);
    wv_json_key(j, "reads");
    wv_json_int(j, reads);
    wv_json_key(j, "sum");
    wv_json_uint(j, sum);
    wv_json_key(j, "trailer");
    wv_json_stringn(j, t.p, t.n);
    wv_json_object_end(j);
    return wv_res_json_send(res, 200);
}

/* three pieces 100 ms apart, and a trailer */
static int stream(wv_req *req, wv_res *res)
{
    int rc = wv_res_trailer(res, "x-pieces", "3");
    if (rc == 0)
        rc = wv_res_begin(res, 200, "text/plain");
    static const char *const pieces[] = {"one\n", "two\n", "three\n"};
    for (int i = 0; i < 3 && rc == 0; i++) {
        if (i)
            rc = wv_sleep_ms(100);
        if (rc == 0)
            rc = wv_res_write(res, pieces[i], strlen(pieces[i]));
    }
    return rc < 0 ? rc : wv_res_end(res);
}

/* a stream that fails midway: the client must see it cut */
static int broken(wv_req *req, wv_res *res)
{
    int rc = wv_res_begin(res, 200, "text/plain");
    if (rc == 0)
        rc = wv_res_write(res, "partial", 7);
    return rc < 0 ? rc : -EIO;
}

/* Server-Sent Events every 100 ms until the client goes */
static int events(wv_req *req, wv_res *res)
{
    int rc = wv_res_sse_begin(res);
    char data[32];
    for (int i = 0; rc == 0; i++) {
        snprintf(data, sizeof data, "tick %d", i);
        rc = wv_res_sse_send(res, "tick", data);
        if (rc == 0)
            rc = wv_sleep_ms(100);
    }
    events_rc = rc;
    return rc;
}

/* 4 KiB of text: compressed when the client accepts it */
static int big(wv_req *req, wv_res *res)
{
    char text[4096];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = (char)('a' + i % 26);
    return wv_res_send(res, 200, "text/plain; charset=utf-8", text, sizeof text);
}

static int no_response(wv_req *req, wv_res *res)
{
    return 0; /* weave answers 500 for it */
}

static wv_router *make_app(void)
{
    wv_router *r = wv_router_new();
    static const char *const origins[] = {"http://a.example", NULL};
    if (!r || wv_cors(r, &(wv_cors_opts){.origins = origins, .expose = "X-Request-Id"}) < 0 ||
        wv_deadline_header(r, NULL) < 0) {
        wv_router_free(r);
        return NULL;
    }
    wv_get(r, "/hello", hello);
    wv_get(r, "/async-endpoint", async_endpoint);
    wv_get(r, "/users/{id}", get_user);
    wv_post(r, "/echo", echo);
    wv_post(r, "/upload", upload);
    wv_get(r, "/stream", stream);
    wv_get(r, "/broken", broken);
    wv_get(r, "/events", events);
    wv_get(r, "/big", big);
    wv_get(r, "/nothing", no_response);
    return r;
}

/* ------------------------------------------------- the chapter's route */

static int async_route(void *arg)
{
    wv_router *r = make_app();
    REQUIRE(r != NULL);
    wv_test_client *c = wv_test_client_new(r, NULL);
    REQUIRE(c != NULL);
    wv_test_res *res = NULL;
    int64_t r0 = real_ns(), v0 = wv_now();
    CHECK_EQ(wv_test_get(c, "/async-endpoint", &res), 0);
    int64_t real = real_ns() - r0, virt = wv_now() - v0;
    CHECK(real < 50 * NS_PER_MS);
    CHECK(async_slept_ns >= 1000 * NS_PER_MS);
    CHECK(virt >= 1000 * NS_PER_MS && virt < 1020 * NS_PER_MS);
    if (res) {
        CHECK_EQ(wv_test_res_status(res), 200);
        wv_str ct = wv_test_res_header(res, "Content-Type");
        CHECK(wv_str_eq_cstr(ct, "application/json"));
        const char *msg = NULL;
        CHECK_EQ(wv_json_get_string(wv_test_res_json(res), "message", &msg, NULL), 0);
        CHECK_STR_EQ(msg, "Asynchronous Response");
        CHECK(wv_test_res_complete(res));
        CHECK_EQ(wv_test_res_chunk_count(res), 1);
    }
    wv_test_res_free(res);
    wv_test_client_free(c);
    wv_router_free(r);
    return 0;
}

static void test_a_one_second_route_answers_at_once_on_the_virtual_clock(void **state)
{
    assert_int_equal(run_virtual(1, async_route, NULL), 0);
    assert_checks_passed();
}

static int deadline_cuts(void *arg)
{
    wv_router *r = make_app();
    wv_test_client *c = wv_test_client_new(r, NULL);
    REQUIRE(c != NULL);
    const char *h[] = {"X-Request-Timeout-Ms", "300", NULL};
    wv_test_res *res = NULL;
    int64_t r0 = real_ns(), v0 = wv_now();
    CHECK_EQ(wv_test_request(c, &(wv_test_req){.target = "/async-endpoint", .headers = h}, &res),
             0);
    int64_t virt = wv_now() - v0;
    CHECK(real_ns() - r0 < 50 * NS_PER_MS);
    CHECK_BETWEEN(virt, 300 * NS_PER_MS, 320 * NS_PER_MS);
    CHECK_EQ(async_rc, -ETIMEDOUT);
    /* counted from the request's start, a moment before the handler's */
    CHECK_BETWEEN(async_slept_ns, 295 * NS_PER_MS, 315 * NS_PER_MS);
    if (res) {
        CHECK_EQ(wv_test_res_status(res), 504);
        const char *detail = NULL;
        CHECK_EQ(wv_json_get_string(wv_test_res_json(res), "detail", &detail, NULL), 0);
    }
    wv_test_res_free(res);
    /* a bad value: 400 before the handler */
    async_rc = 1;
    const char *bad[] = {"X-Request-Timeout-Ms", "soon", NULL};
    CHECK_EQ(wv_test_request(c, &(wv_test_req){.target = "/async-endpoint", .headers = bad}, &res),
             0);
    if (res)
        CHECK_EQ(wv_test_res_status(res), 400);
    CHECK_EQ(async_rc, 1);
    wv_test_res_free(res);
    wv_test_client_free(c);
    wv_router_free(r);
    return 0;
}

static void test_a_deadline_header_answers_504_at_virtual_300_ms(void **state)
{
    assert_int_equal(run_virtual(1, deadline_cuts, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------- the same over a socket */

/* A response read off a socket (Connection: close), chunked bodies
 * decoded. */
typedef struct raw_res {
    int status;
    char head[8192];
    wv_buf body;
    bool chunked;
} raw_res;

static wv_str raw_header(const raw_res *r, const char *name)
{
    size_t nl = strlen(name);
    const char *p = strstr(r->head, "\r\n");
    while (p && p[2] != '\r') {
        const char *line = p + 2, *eol = strstr(line, "\r\n");
        if (!eol)
            break;
        if ((size_t)(eol - line) > nl && line[nl] == ':' && strncasecmp(line, name, nl) == 0) {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            return (wv_str){v, (size_t)(eol - v)};
        }
        p = eol;
    }
    return (wv_str){NULL, 0};
}

static int raw_request(int port, const char *text, raw_res *out)
{
    memset(out, 0, sizeof *out);
    int fd = wv_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    struct sockaddr_in a = loopback_addr((uint16_t)port);
    int rc = wv_connect(fd, (struct sockaddr *)&a, sizeof a);
    if (rc == 0 && wv_write(fd, text, strlen(text)) < 0)
        rc = -EIO;
    wv_buf all = {0};
    char buf[4096];
    ssize_t n;
    while (rc == 0 && (n = wv_read(fd, buf, sizeof buf)) > 0)
        wv_buf_append(&all, buf, (size_t)n);
    wv_close(fd);
    if (rc < 0) {
        wv_buf_free(&all);
        return rc;
    }
    wv_buf_append(&all, "", 1);
    const char *end = strstr(all.p, "\r\n\r\n");
    if (!end || (size_t)(end - all.p) + 4 >= sizeof out->head) {
        wv_buf_free(&all);
        return -EPROTO;
    }
    memcpy(out->head, all.p, (size_t)(end - all.p) + 4);
    out->status = atoi(all.p + 9);
    const char *body = end + 4;
    size_t left = all.n - 1 - (size_t)(body - all.p);
    wv_str te = raw_header(out, "Transfer-Encoding");
    out->chunked = te.p && te.n == 7 && strncasecmp(te.p, "chunked", 7) == 0;
    if (!out->chunked) {
        wv_buf_append(&out->body, body, left);
    } else {
        for (;;) {
            char *after;
            unsigned long size = strtoul(body, &after, 16);
            const char *data = strstr(after, "\r\n");
            if (!data || size == 0)
                break;
            data += 2;
            wv_buf_append(&out->body, data, size);
            body = data + size + 2;
        }
    }
    wv_buf_free(&all);
    return 0;
}

typedef struct server_state {
    wv_router *r;
    int port;
    wv_event ready;
    int rc;
} server_state;

static int serve(void *arg)
{
    server_state *s = arg;
    s->rc = wv_http_serve(
        s->r, &(wv_http_opts){.host = "127.0.0.1", .bound_port = &s->port, .ready = &s->ready});
    return s->rc;
}

/* Fields that belong to one connection or one moment, not to the
 * response. */
static bool skip_field(wv_str name)
{
    static const char *const skip[] = {"date", "connection", "keep-alive", "transfer-encoding",
                                       NULL};
    for (int i = 0; skip[i]; i++)
        if (wv_str_ieq(name, (wv_str){skip[i], strlen(skip[i])}))
            return true;
    return false;
}

/* Same status, same fields both ways (a socket's chunked body has no
 * Content-Length), same body. */
static void compare(const char *what, const raw_res *sock, const wv_test_res *tc)
{
    if (!CHECK_EQ(wv_test_res_status(tc), sock->status))
        fprintf(stderr, "  in %s\n", what);
    for (int i = 0; i < wv_test_res_header_count(tc); i++) {
        wv_str name, value;
        wv_test_res_header_at(tc, i, &name, &value);
        char cname[64];
        snprintf(cname, sizeof cname, "%.*s", (int)name.n, name.p);
        wv_str other = raw_header(sock, cname);
        if (skip_field(name) || (sock->chunked && wv_str_eq_cstr(name, "content-length")))
            continue;
        if (!CHECK(other.p && other.n == value.n && memcmp(other.p, value.p, value.n) == 0))
            fprintf(stderr, "  %s: %s is \"%.*s\" in-process, \"%.*s\" over the socket\n", what,
                    cname, (int)value.n, value.p, (int)other.n, other.p ? other.p : "");
    }
    int sock_fields = 0;
    for (const char *p = strstr(sock->head, "\r\n"); p && p[2] != '\r'; p = strstr(p + 2, "\r\n")) {
        const char *colon = strchr(p + 2, ':');
        wv_str name = {p + 2, colon ? (size_t)(colon - p - 2) : 0};
        if (!skip_field(name))
            sock_fields++;
    }
    int tc_fields = 0;
    for (int i = 0; i < wv_test_res_header_count(tc); i++) {
        wv_str name, value;
        wv_test_res_header_at(tc, i, &name, &value);
        if (!skip_field(name) && !(sock->chunked && wv_str_eq_cstr(name, "content-length")))
            tc_fields++;
    }
    if (!CHECK_EQ(tc_fields, sock_fields))
        fprintf(stderr, "  in %s; over the socket:\n%s", what, sock->head);
    wv_str body = wv_test_res_body(tc);
    if (!CHECK(body.n == sock->body.n &&
               memcmp(body.p, sock->body.p ? sock->body.p : "", body.n) == 0))
        fprintf(stderr, "  %s: bodies differ (%zu and %zu bytes)\n", what, body.n, sock->body.n);
}

typedef struct case_def {
    const char *what;
    const char *method, *target;
    const char *headers[12];
    const char *body;
} case_def;

static int same_as_a_socket(void *arg)
{
    server_state s = {.r = make_app()};
    REQUIRE(s.r != NULL);
    wv_group *g = wv_group_new();
    wv_group_spawn(g, serve, &s, NULL);
    REQUIRE_EQ(wv_event_wait(&s.ready), 0);
    wv_test_client *c = wv_test_client_new(s.r, NULL);
    static const case_def cases[] = {
        {"a JSON route", "GET", "/hello", {NULL}, NULL},
        {"CORS on an allowed origin", "GET", "/hello", {"Origin", "http://a.example", NULL}, NULL},
        {"CORS on another origin", "GET", "/hello", {"Origin", "http://b.example", NULL}, NULL},
        {"a CORS preflight",
         "OPTIONS",
         "/hello",
         {"Origin", "http://a.example", "Access-Control-Request-Method", "GET",
          "Access-Control-Request-Headers", "X-Custom", NULL},
         NULL},
        {"a refused preflight",
         "OPTIONS",
         "/hello",
         {"Origin", "http://evil.example", "Access-Control-Request-Method", "GET", NULL},
         NULL},
        {"a bad deadline header", "GET", "/hello", {"X-Request-Timeout-Ms", "12ms", NULL}, NULL},
        {"a deadline of 0", "GET", "/hello", {"X-Request-Timeout-Ms", "0", NULL}, NULL},
        {"a 404", "GET", "/nowhere", {"Origin", "http://a.example", NULL}, NULL},
        {"a 405", "DELETE", "/hello", {NULL}, NULL},
        {"an OPTIONS without preflight", "OPTIONS", "/users/7", {NULL}, NULL},
        {"a HEAD", "HEAD", "/hello", {NULL}, NULL},
        {"a path parameter", "GET", "/users/42", {NULL}, NULL},
        {"a bad path parameter", "GET", "/users/abc", {NULL}, NULL},
        {"a handler's -ENOENT", "GET", "/users/404", {NULL}, NULL},
        {"a JSON body echoed",
         "POST",
         "/echo",
         {"Content-Type", "application/json", NULL},
         "{\"name\":\"x\"}"},
        {"a stream with trailers", "GET", "/stream", {NULL}, NULL},
        {"compression", "GET", "/big", {"Accept-Encoding", "gzip", NULL}, NULL},
        {"no compression asked", "GET", "/big", {NULL}, NULL},
        {"a handler that did not answer", "GET", "/nothing", {NULL}, NULL},
        {"a query", "GET", "/hello?x=1&y=%20", {NULL}, NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const case_def *k = &cases[i];
        /* a fixed request id, so both carry the same */
        const char *headers[16];
        int n = 0;
        for (int j = 0; k->headers[j]; j++)
            headers[n++] = k->headers[j];
        headers[n++] = "X-Request-Id";
        headers[n++] = "req-0001";
        headers[n] = NULL;
        wv_buf text = {0};
        wv_buf_printf(&text, "%s %s HTTP/1.1\r\nHost: testserver\r\nConnection: close\r\n",
                      k->method, k->target);
        for (int j = 0; j < n; j += 2)
            wv_buf_printf(&text, "%s: %s\r\n", headers[j], headers[j + 1]);
        if (k->body)
            wv_buf_printf(&text, "Content-Length: %zu\r\n", strlen(k->body));
        wv_buf_printf(&text, "\r\n%s", k->body ? k->body : "");
        wv_buf_append(&text, "", 1);
        raw_res sock;
        int rc = raw_request(s.port, text.p, &sock);
        wv_buf_free(&text);
        if (!CHECK_EQ(rc, 0))
            continue;
        wv_test_res *res = NULL;
        rc = wv_test_request(c,
                             &(wv_test_req){.method = k->method,
                                            .target = k->target,
                                            .headers = headers,
                                            .body = k->body,
                                            .body_len = k->body ? strlen(k->body) : 0},
                             &res);
        if (CHECK_EQ(rc, 0))
            compare(k->what, &sock, res);
        wv_test_res_free(res);
        wv_buf_free(&sock.body);
    }
    wv_test_client_free(c);
    wv_stop();
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(s.rc, 0);
    wv_router_free(s.r);
    return 0;
}

static void test_responses_match_a_real_server_over_a_socket(void **state)
{
    assert_int_equal(run_virtual(1, same_as_a_socket, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ streams */

static int streams(void *arg)
{
    wv_router *r = make_app();
    wv_test_client *c = wv_test_client_new(r, NULL);
    REQUIRE(c != NULL);
    wv_test_res *res = NULL;
    int64_t v0 = wv_now();
    CHECK_EQ(wv_test_get(c, "/stream", &res), 0);
    CHECK_BETWEEN(wv_now() - v0, 200 * NS_PER_MS, 220 * NS_PER_MS);
    if (res) {
        CHECK_EQ(wv_test_res_status(res), 200);
        CHECK_EQ(wv_test_res_chunk_count(res), 3);
        CHECK(wv_str_eq_cstr(wv_test_res_chunk(res, 0), "one\n"));
        CHECK(wv_str_eq_cstr(wv_test_res_chunk(res, 1), "two\n"));
        CHECK(wv_str_eq_cstr(wv_test_res_chunk(res, 2), "three\n"));
        CHECK(wv_test_res_chunk(res, 3).p == NULL);
        CHECK(wv_str_eq_cstr(wv_test_res_body(res), "one\ntwo\nthree\n"));
        CHECK(wv_str_eq_cstr(wv_test_res_trailer(res, "X-Pieces"), "3"));
        CHECK(wv_test_res_header(res, "content-length").p == NULL);
        CHECK(wv_test_res_complete(res));
        CHECK(wv_test_res_json(res) == NULL); /* not JSON */
    }
    wv_test_res_free(res);

    /* a stream that fails midway is cut, not whole */
    CHECK_EQ(wv_test_get(c, "/broken", &res), 0);
    if (res) {
        CHECK_EQ(wv_test_res_status(res), 200);
        CHECK(wv_str_eq_cstr(wv_test_res_body(res), "partial"));
        CHECK(!wv_test_res_complete(res));
    }
    wv_test_res_free(res);
    wv_test_client_free(c);
    wv_router_free(r);
    return 0;
}

static void test_streamed_responses_are_collected_piece_by_piece(void **state)
{
    assert_int_equal(run_virtual(1, streams, NULL), 0);
    assert_checks_passed();
}

typedef struct tick_count {
    int n;
    char last[64];
} tick_count;

static int count_ticks(void *arg, const void *data, size_t n)
{
    tick_count *t = arg;
    snprintf(t->last, sizeof t->last, "%.*s", (int)n, (const char *)data);
    return ++t->n == 5 ? 1 : 0; /* enough */
}

static int endless(void *arg)
{
    wv_router *r = make_app();
    wv_test_client *c = wv_test_client_new(r, NULL);
    REQUIRE(c != NULL);
    tick_count t = {0};
    wv_test_res *res = NULL;
    int64_t v0 = wv_now();
    CHECK_EQ(wv_test_request(
                 c,
                 &(wv_test_req){.target = "/events", .on_chunk = count_ticks, .on_chunk_arg = &t},
                 &res),
             0);
    CHECK_BETWEEN(wv_now() - v0, 400 * NS_PER_MS, 420 * NS_PER_MS);
    CHECK_EQ(t.n, 5);
    CHECK_STR_EQ(t.last, "event: tick\ndata: tick 4\n\n");
    CHECK_EQ(events_rc, -ECONNRESET);
    if (res) {
        CHECK_EQ(wv_test_res_status(res), 200);
        CHECK(wv_str_eq_cstr(wv_test_res_header(res, "content-type"), "text/event-stream"));
        CHECK_EQ(wv_test_res_chunk_count(res), 5);
        CHECK(!wv_test_res_complete(res));
    }
    wv_test_res_free(res);
    wv_test_client_free(c);
    wv_router_free(r);
    return 0;
}

static void test_an_endless_stream_stops_when_the_client_does(void **state)
{
    assert_int_equal(run_virtual(1, endless, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ bodies */

static int bodies(void *arg)
{
    wv_router *r = make_app();
    wv_test_client *c = wv_test_client_new(r, NULL);
    REQUIRE(c != NULL);
    size_t len = 300 * 1000 + 7;
    char *body = malloc(len);
    REQUIRE(body != NULL);
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        body[i] = (char)(i * 7 + i / 1000);
        sum = sum * 31 + (unsigned char)body[i];
    }
    const char *trailers[] = {"X-Sum", "abc", NULL};
    /* delivered in pieces of 4096, read 1000 bytes at a time */
    wv_test_res *res = NULL;
    CHECK_EQ(wv_test_request(c,
                             &(wv_test_req){.method = "POST",
                                            .target = "/upload",
                                            .body = body,
                                            .body_len = len,
                                            .chunk_size = 4096,
                                            .trailers = trailers},
                             &res),
             0);
    if (res) {
        CHECK_EQ(wv_test_res_status(res), 200);
        const wv_json_val *j = wv_test_res_json(res);
        int64_t bytes = 0, reads = 0, got = 0;
        CHECK_EQ(wv_json_get_i64(j, "bytes", &bytes), 0);
        CHECK_EQ(wv_json_get_i64(j, "reads", &reads), 0);
        CHECK_EQ(wv_json_get_i64(j, "sum", &got), 0);
        CHECK_EQ(bytes, (int64_t)len);
        CHECK(reads >= (int64_t)(len / 1000));
        CHECK_EQ(got, sum);
        const char *t = NULL;
        CHECK_EQ(wv_json_get_string(j, "trailer", &t, NULL), 0);
        CHECK_STR_EQ(t, "abc");
    }
    wv_test_res_free(res);

    /* whole, echoed: the same bytes back, chunked (no length) too */
    for (int chunked = 0; chunked < 2; chunked++) {
        const char *h[] = {"Content-Type", "application/x-test", NULL};
        CHECK_EQ(wv_test_request(c,
                                 &(wv_test_req){.method = "POST",
                                                .target = "/echo",
                                                .headers = h,
                                                .body = body,
                                                .body_len = len,
                                                .chunk_size = 10000,
                                                .chunked = chunked},
                                 &res),
                 0);
        if (res) {
            CHECK_EQ(wv_test_res_status(res), 200);
            wv_str b = wv_test_res_body(res);
            CHECK(b.n == len && memcmp(b.p, body, len) == 0);
            CHECK(wv_str_eq_cstr(wv_test_res_header(res, "content-type"), "application/x-test"));
        }
        wv_test_res_free(res);
    }
    free(body);

    /* past max_body: 413, declared or not */
    wv_test_client *small =
        wv_test_client_new(r, &(wv_test_client_opts){.http = &(wv_http_opts){.max_body = 1000}});
    char two_k[2000];
    memset(two_k, 'x', sizeof two_k);
    for (int chunked = 0; chunked < 2; chunked++) {
        CHECK_EQ(wv_test_request(small,
                                 &(wv_test_req){.method = "POST",
                                                .target = "/echo",
                                                .body = two_k,
                                                .body_len = sizeof two_k,
                                                .chunk_size = 500,
                                                .chunked = chunked},
                                 &res),
                 0);
        if (res)
            CHECK_EQ(wv_test_res_status(res), 413);
        wv_test_res_free(res);
    }

    /* a slow client: the body timeout (1 s here) answers 408, on the
     * virtual clock */
    wv_test_client *strict = wv_test_client_new(
        r, &(wv_test_client_opts){.http = &(wv_http_opts){.body_timeout_ms = 1000}});
    int64_t r0 = real_ns(), v0 = wv_now();
    CHECK_EQ(wv_test_request(strict,
                             &(wv_test_req){.method = "POST",
                                            .target = "/echo",
                                            .body = two_k,
                                            .body_len = sizeof two_k,
                                            .chunk_size = 100,
                                            .chunk_delay_ms = 400},
                             &res),
             0);
    CHECK_BETWEEN(wv_now() - v0, 1000 * NS_PER_MS, 1020 * NS_PER_MS);
    CHECK(real_ns() - r0 < 50 * NS_PER_MS);
    if (res)
        CHECK_EQ(wv_test_res_status(res), 408);
    wv_test_res_free(res);

    /* a client that goes away mid-body: the handler's read fails */
    CHECK_EQ(
        wv_test_request(
            c,
            &(wv_test_req){
                .method = "POST", .target = "/upload", .body = two_k, .body_len = 100, .cut = true},
            &res),
        0);
    if (res) /* what weave answers for it, though no client is left to read it */
        CHECK_EQ(wv_test_res_status(res), wv_http_status_for(-ECONNRESET));
    wv_test_res_free(res);

    wv_test_client_free(strict);
    wv_test_client_free(small);
    wv_test_client_free(c);
    wv_router_free(r);
    return 0;
}

static void test_request_bodies_in_pieces_limits_and_timeouts(void **state)
{
    assert_int_equal(run_virtual(1, bodies, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ concurrency */

typedef struct conc {
    wv_test_client *c;
    int ok;
} conc;

static int one_request(void *arg)
{
    conc *k = arg;
    wv_test_res *res = NULL;
    if (wv_test_get(k->c, "/async-endpoint", &res) == 0 && wv_test_res_status(res) == 200)
        k->ok++;
    wv_test_res_free(res);
    return 0;
}

static int concurrent(void *arg)
{
    wv_router *r = make_app();
    conc k = {.c = wv_test_client_new(r, NULL)};
    REQUIRE(k.c != NULL);
    int64_t r0 = real_ns(), v0 = wv_now();
    wv_group *g = wv_group_new();
    for (int i = 0; i < 50; i++)
        wv_group_spawn(g, one_request, &k, NULL);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(k.ok, 50);
    /* together: one second, not fifty */
    CHECK_BETWEEN(wv_now() - v0, 1000 * NS_PER_MS, 1100 * NS_PER_MS);
    CHECK(real_ns() - r0 < 500 * NS_PER_MS);
    wv_test_client_free(k.c);
    wv_router_free(r);
    return 0;
}

static void test_concurrent_requests_from_many_fibers(void **state)
{
    assert_int_equal(run_virtual(1, concurrent, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------ the caller gives up */

static int caller_deadline(void *arg)
{
    wv_router *r = make_app();
    wv_test_client *c = wv_test_client_new(r, NULL);
    REQUIRE(c != NULL);
    async_rc = 1;
    wv_test_res *res = (wv_test_res *)1;
    int64_t v0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(100));
    CHECK_EQ(wv_test_get(c, "/async-endpoint", &res), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK(res == NULL);
    CHECK_BETWEEN(wv_now() - v0, 100 * NS_PER_MS, 120 * NS_PER_MS);
    CHECK_EQ(async_rc, -ECANCELED); /* its handler was cancelled, and waited for */
    wv_test_client_free(c);
    wv_router_free(r);
    return 0;
}

static void test_the_callers_deadline_cancels_the_request(void **state)
{
    assert_int_equal(run_virtual(1, caller_deadline, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ details */

static int details(void *arg)
{
    wv_router *r = make_app();
    wv_test_client *c =
        wv_test_client_new(r, &(wv_test_client_opts){.peer = "10.0.0.9:1234", .version = 20});
    REQUIRE(c != NULL);
    wv_test_res *res = NULL;
    CHECK_EQ(wv_test_get(c, "/users/5?peer=1", &res), 0);
    if (res) {
        CHECK_EQ(wv_test_res_status(res), 201);
        const char *peer = NULL;
        int64_t version = 0;
        CHECK_EQ(wv_json_get_string(wv_test_res_json(res), "peer", &peer, NULL), 0);
        CHECK_STR_EQ(peer, "10.0.0.9:1234");
        CHECK_EQ(wv_json_get_i64(wv_test_res_json(res), "version", &version), 0);
        CHECK_EQ(version, 20);
        CHECK(wv_str_eq_cstr(wv_test_res_header(res, "Content-Type"), "application/json"));
        CHECK(wv_str_eq_cstr(wv_test_res_header(res, "CONTENT-TYPE"), "application/json"));
        CHECK(wv_test_res_header(res, "no-such-field").p == NULL);
        wv_str name, value;
        wv_test_res_header_at(res, 999, &name, &value);
        CHECK(name.p == NULL && value.p == NULL);
    }
    wv_test_res_free(res);
    /* a request's own peer */
    CHECK_EQ(
        wv_test_request(c, &(wv_test_req){.target = "/users/6?peer=1", .peer = "[::1]:9"}, &res),
        0);
    if (res) {
        const char *peer = NULL;
        CHECK_EQ(wv_json_get_string(wv_test_res_json(res), "peer", &peer, NULL), 0);
        CHECK_STR_EQ(peer, "[::1]:9");
    }
    wv_test_res_free(res);
    /* the JSON helper */
    CHECK_EQ(wv_test_post_json(c, "/echo", "{\"name\":\"x\"}", &res), 0);
    if (res) {
        const char *name = NULL;
        CHECK_EQ(wv_json_get_string(wv_test_res_json(res), "name", &name, NULL), 0);
        CHECK_STR_EQ(name, "x");
        CHECK(wv_str_eq_cstr(wv_test_res_header(res, "content-type"), "application/json"));
    }
    wv_test_res_free(res);
    wv_test_client_free(c);
    wv_router_free(r);
    return 0;
}

static void test_peer_version_and_helpers(void **state)
{
    assert_int_equal(run_virtual(1, details, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ bad input */

static int refuses(void *arg)
{
    wv_router *r = make_app();
    wv_test_client *c = wv_test_client_new(r, NULL);
    REQUIRE(c != NULL);
    wv_test_res *res = (wv_test_res *)1;
    const char *crlf[] = {"X-A", "v\r\nX-Injected: 1", NULL};
    const char *bad_name[] = {"X A", "v", NULL};
    const char *no_value[] = {"X-A", NULL};
    const char *length[] = {"Content-Length", "5", NULL};
    const char *te[] = {"transfer-encoding", "chunked", NULL};
    const wv_test_req bad[] = {
        {.method = "GE T", .target = "/hello"},
        {.method = "", .target = "/hello"},
        {.target = NULL},
        {.target = "hello"},
        {.target = "http://testserver/hello"},
        {.target = "/hel lo"},
        {.target = "/hel\tlo"},
        {.target = "/hello\x7f"},
        {.target = "/hello", .headers = crlf},
        {.target = "/hello", .headers = bad_name},
        {.target = "/hello", .headers = no_value},
        {.target = "/hello", .headers = length},
        {.target = "/hello", .headers = te},
        {.target = "/hello", .trailers = crlf},
        {.target = "/hello", .body = NULL, .body_len = 3},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        res = (wv_test_res *)1;
        if (!CHECK_EQ(wv_test_request(c, &bad[i], &res), -EINVAL))
            fprintf(stderr, "  case %zu\n", i);
        CHECK(res == NULL);
        CHECK(wv_errmsg()[0] != '\0');
    }
    CHECK(wv_test_client_new(NULL, NULL) == NULL);
    CHECK(wv_test_client_new(r, &(wv_test_client_opts){.version = 12}) == NULL);
    wv_test_client_free(NULL);
    wv_test_res_free(NULL);
    /* a handler that never answers: weave's 500, as over a socket */
    CHECK_EQ(wv_test_get(c, "/nothing", &res), 0);
    if (res)
        CHECK_EQ(wv_test_res_status(res), 500);
    wv_test_res_free(res);
    wv_test_client_free(c);
    wv_router_free(r);
    return 0;
}

static void test_requests_no_client_could_send_are_refused(void **state)
{
    assert_int_equal(run_virtual(1, refuses, NULL), 0);
    assert_checks_passed();
}

static int from_shard_1(void *arg)
{
    wv_test_res *res = (wv_test_res *)1;
    int rc = wv_test_get(arg, "/hello", &res);
    CHECK(res == NULL);
    return rc == -EXDEV ? 0 : -1;
}

static int other_shard(void *arg)
{
    wv_router *r = make_app();
    wv_test_client *c = wv_test_client_new(r, NULL);
    wv_test_res *res = NULL;
    CHECK_EQ(wv_test_get(c, "/hello", &res), 0); /* shard 0's now */
    wv_test_res_free(res);
    CHECK_EQ(wv_shard_call(1, from_shard_1, c), 0);
    wv_test_client_free(c);
    wv_router_free(r);
    return 0;
}

static void test_a_client_belongs_to_one_shard(void **state)
{
    assert_int_equal(run_virtual(2, other_shard, NULL), 0);
    assert_checks_passed();
}

static void test_outside_a_fiber_is_refused(void **state)
{
    wv_router *r = make_app();
    wv_test_client *c = wv_test_client_new(r, NULL); /* allowed outside */
    assert_non_null(c);
    wv_test_res *res = (wv_test_res *)1;
    assert_int_equal(wv_test_get(c, "/hello", &res), -EPERM);
    assert_null(res);
    wv_test_client_free(c);
    wv_router_free(r);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_one_second_route_answers_at_once_on_the_virtual_clock),
        cmocka_unit_test(test_a_deadline_header_answers_504_at_virtual_300_ms),
        cmocka_unit_test(test_responses_match_a_real_server_over_a_socket),
        cmocka_unit_test(test_streamed_responses_are_collected_piece_by_piece),
        cmocka_unit_test(test_an_endless_stream_stops_when_the_client_does),
        cmocka_unit_test(test_request_bodies_in_pieces_limits_and_timeouts),
        cmocka_unit_test(test_concurrent_requests_from_many_fibers),
        cmocka_unit_test(test_the_callers_deadline_cancels_the_request),
        cmocka_unit_test(test_peer_version_and_helpers),
        cmocka_unit_test(test_requests_no_client_could_send_are_refused),
        cmocka_unit_test(test_a_client_belongs_to_one_shard),
        cmocka_unit_test(test_outside_a_fiber_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
