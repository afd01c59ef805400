/*
 * The server the HTTP integration tests (tests/integration/test_http_*.py)
 * talk to: one route per behaviour under test. Configured by environment:
 * PORT (0 = any; the chosen port is printed as "listening on PORT"),
 * WEAVE_SHARDS, MAX_BODY, MAX_HEADERS, MAX_HEAD, MAX_REQUEST_LINE,
 * HEADER_TIMEOUT_MS, BODY_TIMEOUT_MS, IDLE_TIMEOUT_MS, DRAIN_TIMEOUT_MS,
 * MAX_CONNECTIONS, ACCESS_LOG (common|json), STATIC_DIR (served at /static),
 * TLS_CERT and TLS_KEY (PEM files: serve HTTPS, ALPN h2 and http/1.1),
 * TLS_RESUMPTION=0 (no session resumption), NO_H2=1 (HTTP/1.1 only).
 * CORS allows http://localhost:8000 and http://allowed.example, with
 * credentials.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/http.h>

static long env_num(const char *name, long def)
{
    const char *v = getenv(name);
    return v && *v ? strtol(v, NULL, 10) : def;
}

static int plaintext(wv_req *req, wv_res *res)
{
    (void)req;
    return wv_res_text(res, 200, "Hello, World!");
}

/* GET /sleep?ms=N: sleeps without blocking other requests */
static int sleep_route(wv_req *req, wv_res *res)
{
    int64_t ms;
    int rc = wv_req_query_i64(req, "ms", 100, &ms);
    if (rc < 0)
        return rc;
    rc = wv_sleep_ms(ms);
    if (rc < 0)
        return rc;
    return wv_res_json(res, 200, "{\"slept\":true}");
}

/* GET /trailers?n=N: N streamed lines, then the trailers x-checksum (the
 * lines' count) and grpc-status: 0 */
static int trailers(wv_req *req, wv_res *res)
{
    int64_t n;
    int rc = wv_req_query_i64(req, "n", 3, &n);
    if (rc < 0)
        return rc;
    rc = wv_res_begin(res, 200, "text/plain");
    for (int64_t i = 0; i < n && rc == 0; i++) {
        char line[32];
        int k = snprintf(line, sizeof line, "line %lld\n", (long long)i);
        rc = wv_res_write(res, line, (size_t)k);
    }
    char count[24];
    snprintf(count, sizeof count, "%lld", (long long)n);
    if (rc == 0)
        rc = wv_res_trailer(res, "X-Checksum", count);
    if (rc == 0)
        rc = wv_res_trailer(res, "grpc-status", "0");
    if (rc == 0)
        rc = wv_res_trailer(res, "Content-Length", "1") == -EINVAL ? 0 : -EFAULT;
    if (rc < 0)
        return rc;
    return wv_res_end(res);
}

/* GET /trailers-whole: a whole body (wv_res_send), a trailer set before;
 * ?empty=1 with no body at all */
static int trailers_whole(wv_req *req, wv_res *res)
{
    int rc = wv_res_trailer(res, "grpc-status", "0");
    if (rc < 0)
        return rc;
    wv_str e;
    bool empty = wv_req_query_param(req, "empty", &e) == 0;
    rc = wv_res_send(res, 200, "application/grpc", empty ? "" : "whole", empty ? 0 : 5);
    if (rc == 0 && wv_res_trailer(res, "late", "1") != -EALREADY)
        return -EFAULT; /* not after the response ended */
    return rc;
}

/* GET /trailers-only: gRPC's error shape, every field in the head and no
 * body: one HEADERS frame with END_STREAM over HTTP/2 */
static int trailers_only(wv_req *req, wv_res *res)
{
    (void)req;
    wv_res_header(res, "grpc-status", "5");
    wv_res_header(res, "grpc-message", "not found");
    return wv_res_send(res, 200, "application/grpc", NULL, 0);
}

/* GET /cancellable?ms=N sleeps N ms; a sleep cut by -ECANCELED (the
 * client reset the stream, the connection died) is counted with how long
 * it had slept, which GET /cancelled reports */
static atomic_int cancelled_count;
static atomic_llong cancelled_after_ms;

static int cancellable(wv_req *req, wv_res *res)
{
    int64_t ms;
    int rc = wv_req_query_i64(req, "ms", 10000, &ms);
    if (rc < 0)
        return rc;
    int64_t t0 = wv_now();
    rc = wv_sleep_ms(ms);
    if (rc == -ECANCELED) {
        atomic_store(&cancelled_after_ms, (long long)((wv_now() - t0) / 1000000));
        atomic_fetch_add(&cancelled_count, 1);
    }
    if (rc < 0)
        return rc;
    return wv_res_json(res, 200, "{\"slept\":true}");
}

static int cancelled(wv_req *req, wv_res *res)
{
    (void)req;
    char out[96];
    snprintf(out, sizeof out, "{\"count\":%d,\"after_ms\":%lld}", atomic_load(&cancelled_count),
             atomic_load(&cancelled_after_ms));
    return wv_res_json(res, 200, out);
}

/* POST /echo: the body back with the request's content type */
static int echo(wv_req *req, wv_res *res)
{
    wv_str body;
    int rc = wv_req_body(req, &body);
    if (rc < 0)
        return rc;
    wv_str ct = wv_req_header(req, "Content-Type");
    char type[256] = "application/octet-stream";
    if (ct.p && ct.n < sizeof type)
        snprintf(type, sizeof type, "%.*s", (int)ct.n, ct.p);
    return wv_res_send(res, 200, type, body.p, body.n);
}

/* POST /trailers-in: reads the body (streamed, or whole with ?whole=1)
 * and answers its length and the request's trailers x-checksum and
 * grpc-status (wv_req_trailer), "-" for one absent; whether x-checksum
 * could be seen before the body's end too. */
static int trailers_in(wv_req *req, wv_res *res)
{
    bool early = wv_req_trailer(req, "x-checksum").p != NULL;
    int64_t whole;
    int rc = wv_req_query_i64(req, "whole", 0, &whole);
    if (rc < 0)
        return rc;
    long long total = 0;
    if (whole) {
        wv_str body;
        if ((rc = wv_req_body(req, &body)) < 0)
            return rc;
        total = (long long)body.n;
    } else {
        char buf[8192];
        ssize_t n;
        while ((n = wv_req_read(req, buf, sizeof buf)) > 0)
            total += n;
        if (n < 0)
            return (int)n;
    }
    wv_str sum = wv_req_trailer(req, "X-Checksum"), st = wv_req_trailer(req, "grpc-status");
    char out[512];
    snprintf(out, sizeof out, "%lld %.*s %.*s %s", total, sum.p ? (int)sum.n : 1,
             sum.p ? sum.p : "-", st.p ? (int)st.n : 1, st.p ? st.p : "-",
             early ? "early" : "after");
    return wv_res_text(res, 200, out);
}

/* POST /upload: streams the body, answers its length and a checksum;
 * ?body_timeout_ms=T gives the body T ms instead of the server's bound */
static int upload(wv_req *req, wv_res *res)
{
    int64_t body_ms;
    int rc = wv_req_query_i64(req, "body_timeout_ms", 0, &body_ms);
    if (rc == 0 && body_ms)
        rc = wv_req_body_timeout(req, body_ms);
    if (rc < 0)
        return rc;
    char buf[8192];
    long long total = 0;
    unsigned long long sum = 0;
    ssize_t n;
    while ((n = wv_req_read(req, buf, sizeof buf)) > 0) {
        total += n;
        for (ssize_t i = 0; i < n; i++)
            sum = sum * 31 + (unsigned char)buf[i];
    }
    if (n < 0)
        return (int)n;
    char out[128];
    snprintf(out, sizeof out, "{\"bytes\":%lld,\"sum\":%llu}", total, sum);
    return wv_res_json(res, 200, out);
}

/* GET /users/{id}: a typed path parameter (400 when not an integer) */
static int user(wv_req *req, wv_res *res)
{
    int64_t id;
    int rc = wv_req_param_i64(req, "id", &id);
    if (rc < 0)
        return rc;
    char out[64];
    snprintf(out, sizeof out, "{\"id\":%lld}", (long long)id);
    return wv_res_json(res, 200, out);
}

/* GET /files/{path...}: the catch-all, decoded */
static int files(wv_req *req, wv_res *res)
{
    wv_str p;
    int rc = wv_req_param(req, "path", &p);
    if (rc < 0)
        return rc;
    return wv_res_send(res, 200, "text/plain", p.p, p.n);
}

/* GET /query?name=...: a decoded query parameter */
static int query(wv_req *req, wv_res *res)
{
    wv_str v;
    int rc = wv_req_query_param(req, "name", &v);
    if (rc == -ENOENT)
        return wv_res_text(res, 200, "(none)");
    if (rc < 0)
        return rc;
    return wv_res_send(res, 200, "text/plain", v.p, v.n);
}

/* GET /stream?n=N: N lines "chunk I\n" of a streamed (chunked) response;
 * &length=L promises L bytes (Content-Length) instead, and a line that
 * would pass it is replaced by "E<errno>\n" of its refusal, then the
 * stream ends; &fail=K makes the handler fail (-EIO) after K lines */
static int stream(wv_req *req, wv_res *res)
{
    int64_t n, length, fail_after;
    int rc = wv_req_query_i64(req, "n", 3, &n);
    if (rc == 0)
        rc = wv_req_query_i64(req, "length", -1, &length);
    if (rc == 0)
        rc = wv_req_query_i64(req, "fail", -1, &fail_after);
    if (rc < 0)
        return rc;
    rc = wv_res_begin_length(res, 200, "text/plain", length);
    for (int64_t i = 0; rc == 0 && i < n; i++) {
        if (i == fail_after)
            return wv_fail(-EIO, "the stream's source failed after %lld lines", (long long)i);
        char line[32];
        snprintf(line, sizeof line, "chunk %lld\n", (long long)i);
        rc = wv_res_write(res, line, strlen(line));
        if (rc == -EMSGSIZE) {
            /* past the promise: refused, and the rest still fits */
            snprintf(line, sizeof line, "E%d\n", -rc);
            rc = wv_res_write(res, line, strlen(line));
            break;
        }
    }
    return rc < 0 ? rc : wv_res_end(res);
}

/* GET /sse: three Server-Sent Events */
static int sse(wv_req *req, wv_res *res)
{
    (void)req;
    int rc = wv_res_sse_begin(res);
    if (rc == 0)
        rc = wv_res_sse_send(res, "greeting", "hello");
    if (rc == 0)
        rc = wv_res_sse_send(res, NULL, "line one\nline two");
    if (rc == 0)
        rc = wv_res_sse_send(res, "bye", "");
    return rc < 0 ? rc : wv_res_end(res);
}

static int cookie(wv_req *req, wv_res *res)
{
    (void)req;
    wv_res_cookie(
        res, "session", "abc123",
        &(wv_cookie){.path = "/", .max_age = 3600, .http_only = true, .same_site = "Lax"});
    return wv_res_text(res, 200, "cookie set");
}

static int redirect(wv_req *req, wv_res *res)
{
    (void)req;
    return wv_res_redirect(res, 302, "/plaintext");
}

static void json_str(wv_buf *b, wv_str s)
{
    wv_buf_append(b, "\"", 1);
    for (size_t i = 0; i < s.n; i++) {
        unsigned char ch = (unsigned char)s.p[i];
        if (ch == '"' || ch == '\\')
            wv_buf_printf(b, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            wv_buf_printf(b, "\\u%04x", ch);
        else
            wv_buf_append(b, &s.p[i], 1);
    }
    wv_buf_append(b, "\"", 1);
}

/* GET /headers: the request's headers as JSON pairs, and its id */
static int headers(wv_req *req, wv_res *res)
{
    wv_buf b = {0};
    wv_buf_puts(&b, "{\"headers\":[");
    for (int i = 0; i < wv_req_header_count(req); i++) {
        wv_str n, v;
        wv_req_header_at(req, i, &n, &v);
        wv_buf_puts(&b, i ? ",[" : "[");
        json_str(&b, n);
        wv_buf_puts(&b, ",");
        json_str(&b, v);
        wv_buf_puts(&b, "]");
    }
    wv_buf_puts(&b, "],\"request_id\":");
    json_str(&b, wv_req_id(req));
    wv_buf_puts(&b, "}");
    int rc = wv_res_send(res, 200, "application/json", b.p, b.n);
    wv_buf_free(&b);
    return rc;
}

/* GET /fail/{errno}: a handler returning -errno */
static int fail(wv_req *req, wv_res *res)
{
    (void)res;
    int64_t e;
    int rc = wv_req_param_i64(req, "errno", &e);
    if (rc < 0)
        return rc;
    return wv_fail((int)-e, "failing on purpose with errno %lld", (long long)e);
}

static int noresponse(wv_req *req, wv_res *res)
{
    (void)req;
    (void)res;
    return 0;
}

static int big(wv_req *req, wv_res *res)
{
    int64_t n;
    int rc = wv_req_query_i64(req, "n", 1 << 20, &n);
    if (rc < 0)
        return rc;
    if (n < 0 || n > (64 << 20))
        return wv_fail(-EINVAL, "n out of range");
    char *p = wv_req_alloc(req, (size_t)n);
    if (!p)
        return -ENOMEM;
    for (int64_t i = 0; i < n; i++)
        p[i] = (char)('a' + i % 26);
    return wv_res_send(res, 200, "application/octet-stream", p, (size_t)n);
}

/* POST /json/users: a JSON body read with wv_json_parse and its getters (400
 * for malformed JSON, 422 naming the field that is wrong), answered with the
 * streaming writer */
static int create_user(wv_req *req, wv_res *res)
{
    wv_str body;
    int rc = wv_req_body(req, &body);
    if (rc < 0)
        return rc;
    wv_json_doc *doc;
    rc = wv_json_parse(body.p, body.n, &doc);
    if (rc < 0)
        return rc; /* -EINVAL: 400 with the parser's message */
    const wv_json_val *root = wv_json_doc_root(doc);
    const char *name;
    size_t name_len;
    int64_t age = 0;
    if (wv_json_get_string(root, "name", &name, &name_len) < 0 ||
        (wv_json_get(root, "age") && wv_json_get_i64(root, "age", &age) < 0)) {
        wv_json_doc_free(doc);
        return wv_res_error(res, -ERANGE); /* 422, the getter's message */
    }
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "id");
    wv_json_int(j, 1);
    wv_json_key(j, "name");
    wv_json_stringn(j, name, name_len);
    wv_json_key(j, "age");
    wv_json_int(j, age);
    wv_json_object_end(j);
    wv_json_doc_free(doc);
    return wv_res_json_send(res, 201);
}

/* middleware for /admin: 401 without the right token */
static int require_token(wv_req *req, wv_res *res, void *arg)
{
    wv_str t = wv_req_header(req, "X-Token");
    if (!t.p || !wv_str_eq_cstr(t, (const char *)arg)) {
        wv_res_header(res, "WWW-Authenticate", "Token");
        return wv_res_json(res, 401, "{\"detail\":\"Not authenticated\"}");
    }
    return WV_NEXT;
}

static void tag_after(wv_req *req, wv_res *res, void *arg)
{
    (void)req;
    (void)res;
    (void)arg;
}

static int stamp(wv_req *req, wv_res *res, void *arg)
{
    (void)req;
    wv_res_header(res, "X-Stamp", (const char *)arg);
    return WV_NEXT;
}

static int admin_stats(wv_req *req, wv_res *res)
{
    (void)req;
    return wv_res_json(res, 200, "{\"admin\":true}");
}

typedef struct announce {
    wv_event *ready;
    int *port;
} announce;

/* Print the port once every shard listens, for the test to read. */
static int announce_port(void *arg)
{
    announce *a = arg;
    if (wv_event_wait(a->ready) == 0)
        printf("listening on %d\n", *a->port);
    return 0;
}

static int serve(void *arg)
{
    (void)arg;
    wv_router *r = wv_router_new();
    wv_router_use(
        r, &(wv_middleware){.name = "stamp", .before = stamp, .after = tag_after, .arg = "root"});
    static const char *const origins[] = {"http://localhost:8000", "http://allowed.example", NULL};
    wv_cors(r, &(wv_cors_opts){.origins = origins, .credentials = true, .expose = "X-Stamp"});
    wv_get(r, "/plaintext", plaintext);
    wv_get(r, "/sleep", sleep_route);
    wv_get(r, "/trailers", trailers);
    wv_get(r, "/trailers-whole", trailers_whole);
    wv_get(r, "/trailers-only", trailers_only);
    wv_get(r, "/cancellable", cancellable);
    wv_get(r, "/cancelled", cancelled);
    wv_post(r, "/echo", echo);
    wv_post(r, "/upload", upload);
    wv_post(r, "/trailers-in", trailers_in);
    wv_get(r, "/users/{id}", user);
    wv_get(r, "/files/{path...}", files);
    wv_get(r, "/query", query);
    wv_get(r, "/stream", stream);
    wv_get(r, "/sse", sse);
    wv_get(r, "/cookie", cookie);
    wv_get(r, "/redirect", redirect);
    wv_get(r, "/headers", headers);
    wv_get(r, "/fail/{errno}", fail);
    wv_get(r, "/noresponse", noresponse);
    wv_get(r, "/big", big);
    wv_post(r, "/json/users", create_user);
    const char *dir = getenv("STATIC_DIR");
    if (dir && wv_static(r, "/static", dir) < 0) {
        fprintf(stderr, "http_test_server: %s\n", wv_errmsg());
        return 1;
    }
    wv_router *admin = wv_router_group(r, "/admin");
    wv_router_use(admin,
                  &(wv_middleware){.name = "token", .before = require_token, .arg = "s3cret"});
    wv_get(admin, "/stats", admin_stats);

    int port = 0;
    const char *log = getenv("ACCESS_LOG");
    wv_http_opts o = {
        .port = (int)env_num("PORT", 0),
        .max_body = (size_t)env_num("MAX_BODY", 0),
        .max_headers = (int)env_num("MAX_HEADERS", 0),
        .max_head = (size_t)env_num("MAX_HEAD", 0),
        .max_request_line = (size_t)env_num("MAX_REQUEST_LINE", 0),
        .header_timeout_ms = env_num("HEADER_TIMEOUT_MS", 0),
        .body_timeout_ms = env_num("BODY_TIMEOUT_MS", 0),
        .idle_timeout_ms = env_num("IDLE_TIMEOUT_MS", 0),
        .drain_timeout_ms = env_num("DRAIN_TIMEOUT_MS", 0),
        .max_connections = (int)env_num("MAX_CONNECTIONS", 0),
        .no_h2 = env_num("NO_H2", 0) != 0,
        .access_log = log && !strcmp(log, "json")     ? WV_ACCESS_LOG_JSON
                      : log && !strcmp(log, "common") ? WV_ACCESS_LOG_COMMON
                                                      : WV_ACCESS_LOG_OFF,
        .bound_port = &port,
    };
    const char *cert = getenv("TLS_CERT"), *key = getenv("TLS_KEY");
    const char *resume = getenv("TLS_RESUMPTION");
    if (cert && key &&
        wv_tls_ctx_server(&(wv_tls_opts){.cert_file = cert,
                                         .key_file = key,
                                         .alpn = "h2,http/1.1",
                                         .no_resumption = resume && !strcmp(resume, "0")},
                          &o.tls) < 0) {
        fprintf(stderr, "http_test_server: %s\n", wv_errmsg());
        return 1;
    }
    wv_event ready = {0};
    o.ready = &ready;
    announce a = {&ready, &port};
    wv_spawn(announce_port, &a, NULL);
    int rc = wv_http_serve(r, &o);
    if (rc < 0)
        fprintf(stderr, "http_test_server: %s\n", wv_errmsg());
    wv_router_free(r);
    wv_tls_ctx_free(o.tls);
    return rc < 0 ? 1 : 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    return wv_main(NULL, serve, NULL);
}
