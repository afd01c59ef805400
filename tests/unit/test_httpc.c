/*
 * The HTTP client (include/weave/httpc.h) against real servers the test
 * starts on loopback: weave's own HTTP server in the same runtime, plain
 * and HTTPS (tests/make_certs.sh's certificates), with a route for each
 * behaviour (small, large, trickling and never-ending bodies, redirects,
 * compression, echoes, statuses), and nghttpd (nghttp2-server) for HTTP/2
 * over TLS by ALPN and h2c with prior knowledge. Each test checks one
 * behaviour: what the caller gets, and where it matters what the server
 * saw (headers, methods, connections by their peer port) and how long it
 * took. Also the curl-result table and the head parser on their own.
 *
 * The proxy variables are cleared at start so that a proxy set where the
 * tests run cannot take loopback requests elsewhere; the proxy test sets
 * its own.
 */
#include "harness.h"

#include <dirent.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <zlib.h>

#include <weave/http.h>
#include <weave/httpc.h>
#include <weave/net.h>

#include "httpc/httpc_internal.h"

static char dir[64];      /* certificates and nghttpd's documents */
static char ca_file[128]; /* the test CA */
static wv_tls_ctx *server_tls;

/* ------------------------------------------------------------ the servers */

typedef struct servers {
    int plain, tls; /* ports */
    wv_event plain_ready, tls_ready;
    int plain_rc, tls_rc;
    wv_group *g;
} servers;

static servers srv;

static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 131u + (i >> 11)) & 0xff);
}

static int small(wv_req *req, wv_res *res)
{
    return wv_res_text(res, 200, "hello");
}

static int large(wv_req *req, wv_res *res)
{
    int64_t n;
    int rc = wv_req_query_i64(req, "n", 1 << 20, &n);
    if (rc < 0)
        return rc;
    unsigned char *p = wv_req_alloc(req, (size_t)n);
    if (!p)
        return -ENOMEM;
    for (size_t i = 0; i < (size_t)n; i++)
        p[i] = pattern(i);
    return wv_res_send(res, 200, "application/octet-stream", p, (size_t)n);
}

/* n bytes, one write each, ms apart: chunked, as a slow upstream sends */
static int slow(wv_req *req, wv_res *res)
{
    int64_t n, ms;
    if (wv_req_query_i64(req, "n", 20, &n) < 0 || wv_req_query_i64(req, "ms", 5, &ms) < 0)
        return -EINVAL;
    int rc = wv_res_begin(res, 200, "application/octet-stream");
    for (int64_t i = 0; rc == 0 && i < n; i++) {
        unsigned char b = pattern((size_t)i);
        rc = wv_res_write(res, &b, 1);
        if (rc == 0 && ms > 0)
            rc = wv_sleep_ms(ms);
    }
    return rc < 0 ? rc : wv_res_end(res);
}

/* answers only when the server stops */
static int hang(wv_req *req, wv_res *res)
{
    wv_stop_wait();
    return wv_res_text(res, 503, "stopping");
}

static int redirect(wv_req *req, wv_res *res)
{
    int64_t n;
    int rc = wv_req_param_i64(req, "n", &n);
    if (rc < 0)
        return rc;
    if (n <= 0)
        return wv_res_text(res, 200, "arrived");
    char to[64];
    snprintf(to, sizeof to, "/redirect/%lld", (long long)n - 1);
    return wv_res_redirect(res, 302, to);
}

static int loop(wv_req *req, wv_res *res)
{
    return wv_res_redirect(res, 302, "/loop");
}

/* on the HTTPS server: to plain HTTP */
static int downgrade(wv_req *req, wv_res *res)
{
    char to[64];
    snprintf(to, sizeof to, "http://127.0.0.1:%d/small", srv.plain);
    return wv_res_redirect(res, 302, to);
}

/* on the plain server: to HTTPS */
static int upgrade(wv_req *req, wv_res *res)
{
    char to[64];
    snprintf(to, sizeof to, "https://127.0.0.1:%d/small", srv.tls);
    return wv_res_redirect(res, 302, to);
}

static const char gzip_text[] = "weave decodes what the server gzipped. ";

static int gzipped(wv_req *req, wv_res *res)
{
    enum { REPEAT = 200 };
    size_t n = (sizeof gzip_text - 1) * REPEAT;
    char *text = wv_req_alloc(req, n);
    unsigned char *out = wv_req_alloc(req, n + 64);
    if (!text || !out)
        return -ENOMEM;
    for (int i = 0; i < REPEAT; i++)
        memcpy(text + (size_t)i * (sizeof gzip_text - 1), gzip_text, sizeof gzip_text - 1);
    z_stream z = {0};
    if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -EIO;
    z.next_in = (unsigned char *)text;
    z.avail_in = (unsigned)n;
    z.next_out = out;
    z.avail_out = (unsigned)(n + 64);
    int zr = deflate(&z, Z_FINISH);
    size_t len = z.total_out;
    deflateEnd(&z);
    if (zr != Z_STREAM_END)
        return -EIO;
    wv_res_header(res, "Content-Encoding", "gzip");
    return wv_res_send(res, 200, "application/octet-stream", out, len);
}

/* text the server compresses itself (br, zstd or gzip: what was accepted) */
static int text(wv_req *req, wv_res *res)
{
    int64_t n;
    if (wv_req_query_i64(req, "n", 20000, &n) < 0)
        return -EINVAL;
    char *p = wv_req_alloc(req, (size_t)n);
    if (!p)
        return -ENOMEM;
    for (size_t i = 0; i < (size_t)n; i++)
        p[i] = (char)('a' + (i * 7 + i / 13) % 26);
    return wv_res_send(res, 200, "text/plain; charset=utf-8", p, (size_t)n);
}

static int echo(wv_req *req, wv_res *res)
{
    wv_str body;
    int rc = wv_req_body(req, &body);
    if (rc < 0)
        return rc;
    wv_str type = wv_req_header(req, "Content-Type");
    char ctype[128] = "application/octet-stream";
    if (type.p)
        snprintf(ctype, sizeof ctype, "%.*s", (int)type.n, type.p);
    return wv_res_send(res, 200, ctype, body.p, body.n);
}

/* the request's headers as "name: value\n" lines, and some of our own */
static int headers(wv_req *req, wv_res *res)
{
    wv_buf b = {0};
    for (int i = 0; i < wv_req_header_count(req); i++) {
        wv_str name, value;
        wv_req_header_at(req, i, &name, &value);
        wv_buf_printf(&b, "%.*s: %.*s\n", (int)name.n, name.p, (int)value.n, value.p);
    }
    wv_res_header(res, "X-One", "1");
    wv_res_header(res, "X-Multi", "a");
    wv_res_header(res, "X-Multi", "b");
    wv_res_header(res, "X-Padded", "  padded value  ");
    int rc = wv_res_send(res, 200, "application/octet-stream", b.p, b.n);
    wv_buf_free(&b);
    return rc;
}

/* "METHOD bytes-of-body" */
static int method(wv_req *req, wv_res *res)
{
    wv_str body;
    int rc = wv_req_body(req, &body);
    if (rc < 0)
        return rc;
    wv_str m = wv_req_method(req);
    wv_str len = wv_req_header(req, "Content-Length");
    char out[96];
    snprintf(out, sizeof out, "%.*s %zu %.*s", (int)m.n, m.p, body.n, len.p ? (int)len.n : 1,
             len.p ? len.p : "-");
    return wv_res_text(res, 200, out);
}

static int peer(wv_req *req, wv_res *res)
{
    return wv_res_text(res, 200, wv_req_peer(req));
}

static int id(wv_req *req, wv_res *res)
{
    wv_str n;
    int rc = wv_req_param(req, "n", &n);
    if (rc < 0)
        return rc;
    return wv_res_send(res, 200, "text/plain", n.p, n.n);
}

static int status(wv_req *req, wv_res *res)
{
    int64_t code;
    int rc = wv_req_param_i64(req, "code", &code);
    if (rc < 0)
        return rc;
    char out[32];
    snprintf(out, sizeof out, "status %lld", (long long)code);
    return wv_res_text(res, (int)code, out);
}

static int target(wv_req *req, wv_res *res)
{
    wv_str t = wv_req_target(req);
    return wv_res_send(res, 200, "text/plain", t.p, t.n);
}

/* ------------------------------------------------------------ deadline routes */

/* GET /observe: "left=MS id=ID header=V": the handler's deadline (-1 for
 * none), its request id and the deadline header as it came */
static int observe(wv_req *req, wv_res *res)
{
    int64_t d = wv_deadline();
    long long left = d == WV_NEVER ? -1 : (long long)((d - wv_now()) / NS_PER_MS);
    wv_str id = wv_req_id(req);
    wv_str h = wv_req_header(req, WV_DEADLINE_HEADER);
    char out[160];
    snprintf(out, sizeof out, "left=%lld id=%.*s header=%.*s", left, (int)id.n, id.p,
             h.p ? (int)h.n : 1, h.p ? h.p : "-");
    return wv_res_text(res, 200, out);
}

static int sleep_runs;

/* GET /sleep?ms=: sleeps under the handler's deadline */
static int sleeper(wv_req *req, wv_res *res)
{
    int64_t ms;
    if (wv_req_query_i64(req, "ms", 1000, &ms) < 0)
        return -EINVAL;
    sleep_runs++;
    int rc = wv_sleep_ms(ms);
    return rc < 0 ? rc : wv_res_text(res, 200, "slept");
}

static wv_router *routes(void)
{
    wv_router *r = wv_router_new();
    if (!r)
        return NULL;
    wv_get(r, "/small", small);
    wv_get(r, "/large", large);
    wv_get(r, "/slow", slow);
    wv_get(r, "/hang", hang);
    wv_get(r, "/redirect/{n}", redirect);
    wv_get(r, "/loop", loop);
    wv_get(r, "/downgrade", downgrade);
    wv_get(r, "/upgrade", upgrade);
    wv_get(r, "/gzip", gzipped);
    wv_get(r, "/text", text);
    wv_post(r, "/echo", echo);
    wv_get(r, "/headers", headers);
    wv_route(r, "*", "/method", method);
    wv_get(r, "/peer", peer);
    wv_get(r, "/id/{n}", id);
    wv_get(r, "/status/{code}", status);
    wv_get(r, "/target", target);
    wv_get(r, "/observe", observe);
    wv_get(r, "/sleep", sleeper);
    if (wv_deadline_header(r, &(wv_deadline_opts){.max_ms = 60000}) < 0) {
        wv_router_free(r);
        return NULL;
    }
    return r;
}

static int serve(wv_tls_ctx *tls, int *port, wv_event *ready)
{
    wv_router *r = routes();
    if (!r)
        return -ENOMEM;
    int rc = wv_http_serve(r, &(wv_http_opts){.host = "127.0.0.1",
                                              .tls = tls,
                                              .max_body = 16 << 20,
                                              .drain_timeout_ms = 500,
                                              .bound_port = port,
                                              .ready = ready});
    wv_router_free(r);
    return rc;
}

static int serve_plain(void *arg)
{
    return srv.plain_rc = serve(NULL, &srv.plain, &srv.plain_ready);
}

static int serve_tls(void *arg)
{
    return srv.tls_rc = serve(server_tls, &srv.tls, &srv.tls_ready);
}

static int servers_start(void)
{
    memset(&srv, 0, sizeof srv);
    srv.g = wv_group_new();
    REQUIRE(srv.g != NULL);
    REQUIRE_EQ(wv_group_spawn(srv.g, serve_plain, NULL, NULL), 0);
    REQUIRE_EQ(wv_group_spawn(srv.g, serve_tls, NULL, NULL), 0);
    REQUIRE_EQ(wv_event_wait(&srv.plain_ready), 0);
    REQUIRE_EQ(wv_event_wait(&srv.tls_ready), 0);
    REQUIRE(srv.plain > 0 && srv.tls > 0);
    return 0;
}

static void servers_stop(void)
{
    wv_stop();
    CHECK_EQ(wv_group_join(srv.g), 0);
    wv_group_free(srv.g);
    CHECK_EQ(srv.plain_rc, 0);
    CHECK_EQ(srv.tls_rc, 0);
}

/* ------------------------------------------------------------ scenarios */

typedef struct scenario {
    int (*body)(void);
} scenario;

static int scenario_main(void *arg)
{
    if (servers_start() < 0)
        return -1;
    int rc = ((scenario *)arg)->body();
    servers_stop();
    return rc;
}

static void run_on(int shards, int (*body)(void))
{
    scenario sc = {body};
    assert_int_equal(run_in_rt(shards, scenario_main, &sc), 0);
    assert_checks_passed();
}

static void run(int (*body)(void))
{
    run_on(1, body);
}

static const char *url_of(char *buf, size_t cap, const char *path)
{
    snprintf(buf, cap, "http://127.0.0.1:%d%s", srv.plain, path);
    return buf;
}

static const char *tls_url_of(char *buf, size_t cap, const char *path)
{
    snprintf(buf, cap, "https://127.0.0.1:%d%s", srv.tls, path);
    return buf;
}

static int get(const char *path, wv_httpc_response *resp)
{
    char url[128];
    return wv_httpc_get(url_of(url, sizeof url, path), resp);
}

static bool body_is(const wv_httpc_response *resp, const char *want)
{
    return resp->body.n == strlen(want) && memcmp(resp->body.p, want, resp->body.n) == 0;
}

#define CHECK_BODY(resp, want)                                                                     \
    do {                                                                                           \
        if (!CHECK(body_is((resp), (want))))                                                       \
            fprintf(stderr, "  body: \"%.*s\"\n", (int)(resp)->body.n, (resp)->body.p);            \
    } while (0)

#define CHECK_MSG(substr)                                                                          \
    do {                                                                                           \
        if (!CHECK(strstr(wv_errmsg(), (substr)) != NULL))                                         \
            fprintf(stderr, "  wv_errmsg: \"%s\"\n", wv_errmsg());                                 \
    } while (0)

/* ------------------------------------------------------------ plain GETs */

static int simple_get(void)
{
    char url[128];
    url_of(url, sizeof url, "/small");
    wv_httpc_response resp;
    REQUIRE_EQ(wv_httpc_get(url, &resp), 0);
    CHECK_EQ(resp.status, 200);
    CHECK_EQ(resp.version, 11);
    CHECK_BODY(&resp, "hello");
    CHECK_STR_EQ(resp.url, url);
    CHECK_EQ(resp.redirects, 0);
    CHECK_STR_EQ(wv_httpc_header_get(&resp, "Content-Type"), "text/plain; charset=utf-8");
    CHECK_STR_EQ(wv_httpc_header_get(&resp, "content-length"), "5");
    CHECK(wv_httpc_header_get(&resp, "X-Not-There") == NULL);
    wv_httpc_response_free(&resp);
    CHECK(resp.body.p == NULL && resp.headers == NULL && resp.url == NULL);
    wv_httpc_stats st;
    wv_httpc_stats_get(&st);
    CHECK_EQ(st.requests, 1);
    CHECK_EQ(st.in_flight, 0);
    CHECK_EQ(st.connections, 1);
    return 0;
}

static void test_httpc_get_returns_status_body_headers_url_and_version(void **state)
{
    run(simple_get);
}

static int large_body(void)
{
    enum { N = 8 << 20 };
    wv_httpc_response resp;
    char path[64];
    snprintf(path, sizeof path, "/large?n=%d", N);
    REQUIRE_EQ(get(path, &resp), 0);
    CHECK_EQ(resp.status, 200);
    CHECK_EQ(resp.body.n, N);
    size_t bad = 0;
    for (size_t i = 0; i < resp.body.n; i++)
        bad += (unsigned char)resp.body.p[i] != pattern(i);
    CHECK_EQ(bad, 0);
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_httpc_large_body_arrives_whole_and_intact(void **state)
{
    run(large_body);
}

typedef struct slow_call {
    int rc;
    int64_t done_at;
    wv_httpc_response resp;
} slow_call;

static int slow_get(void *arg)
{
    slow_call *c = arg;
    c->rc = get("/slow?n=40&ms=5", &c->resp);
    c->done_at = wv_now();
    return 0;
}

static int trickle(void)
{
    slow_call c = {0};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    REQUIRE_EQ(wv_group_spawn(g, slow_get, &c, NULL), 0);
    /* while the slow body trickles in, other requests come and go */
    int64_t last_small = 0;
    for (int i = 0; i < 5; i++) {
        wv_httpc_response resp;
        CHECK_EQ(get("/small", &resp), 0);
        CHECK_BODY(&resp, "hello");
        wv_httpc_response_free(&resp);
        last_small = wv_now();
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(c.rc, 0);
    CHECK(c.done_at > last_small);
    REQUIRE_EQ(c.resp.body.n, 40);
    for (size_t i = 0; i < 40; i++)
        CHECK_EQ((unsigned char)c.resp.body.p[i], pattern(i));
    CHECK_STR_EQ(wv_httpc_header_get(&c.resp, "Transfer-Encoding"), "chunked");
    wv_httpc_response_free(&c.resp);
    return 0;
}

static void test_httpc_body_trickling_byte_by_byte_arrives_whole_while_others_run(void **state)
{
    run(trickle);
}

/* ------------------------------------------------------------ deadlines */

static int never_answering(void)
{
    char url[128];
    url_of(url, sizeof url, "/hang");
    wv_httpc_response resp;

    int64_t old = wv_deadline_set(wv_after_ms(300));
    int64_t t0 = wv_now();
    CHECK_EQ(wv_httpc_get(url, &resp), -ETIMEDOUT);
    CHECK_BETWEEN(ms_since(t0), 290, 1000);
    CHECK_MSG("deadline");
    CHECK(resp.body.p == NULL && resp.status == 0);
    wv_deadline_set(old);

    /* the request's own timeout, with no deadline on the fiber */
    t0 = wv_now();
    CHECK_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .timeout_ms = 200}, &resp), -ETIMEDOUT);
    CHECK_BETWEEN(ms_since(t0), 190, 900);

    /* a deadline already past: nothing is sent */
    wv_httpc_stats before, after;
    wv_httpc_stats_get(&before);
    old = wv_deadline_set(wv_now() - 1);
    CHECK_EQ(wv_httpc_get(url, &resp), -ETIMEDOUT);
    wv_deadline_set(old);
    wv_httpc_stats_get(&after);
    CHECK_EQ(after.requests, before.requests);

    /* and the shard's client goes on */
    CHECK_EQ(get("/small", &resp), 0);
    CHECK_BODY(&resp, "hello");
    wv_httpc_response_free(&resp);
    wv_httpc_stats_get(&after);
    CHECK_EQ(after.in_flight, 0);
    return 0;
}

static void test_httpc_server_that_never_answers_is_etimedout_at_the_deadline(void **state)
{
    run(never_answering);
}

/* ------------------------------------------------------------ redirects */

static int redirect_chain(void)
{
    wv_httpc_response resp;
    REQUIRE_EQ(get("/redirect/3", &resp), 0);
    CHECK_EQ(resp.status, 200);
    CHECK_EQ(resp.redirects, 3);
    CHECK_BODY(&resp, "arrived");
    char want[128];
    CHECK_STR_EQ(resp.url, url_of(want, sizeof want, "/redirect/0"));
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_httpc_redirect_chain_is_followed_and_counted(void **state)
{
    run(redirect_chain);
}

static int redirect_loop(void)
{
    char url[128];
    url_of(url, sizeof url, "/loop");
    wv_httpc_response resp;
    CHECK_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .max_redirects = 5}, &resp), -ELOOP);
    CHECK_MSG("more than 5 redirects");
    CHECK(resp.status == 0 && resp.body.p == NULL);
    /* the default bound */
    CHECK_EQ(wv_httpc_get(url, &resp), -ELOOP);
    CHECK_MSG("more than 10 redirects");
    return 0;
}

static void test_httpc_redirect_loop_ends_at_max_redirects_with_eloop(void **state)
{
    run(redirect_loop);
}

static int redirect_not_followed(void)
{
    char url[128];
    url_of(url, sizeof url, "/redirect/2");
    wv_httpc_response resp;
    REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .max_redirects = -1}, &resp), 0);
    CHECK_EQ(resp.status, 302);
    CHECK_EQ(resp.redirects, 0);
    CHECK_STR_EQ(wv_httpc_header_get(&resp, "Location"), "/redirect/1");
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_httpc_negative_max_redirects_returns_the_3xx_itself(void **state)
{
    run(redirect_not_followed);
}

static int scheme_changes(void)
{
    char url[128];
    wv_httpc_response resp;
    /* https -> http: refused, nothing fetched over plain text */
    tls_url_of(url, sizeof url, "/downgrade");
    CHECK_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .ca_file = ca_file}, &resp), -EPROTO);
    CHECK_MSG("refused to follow a redirect");
    CHECK_MSG("http://127.0.0.1");
    /* http -> https: followed, and the certificate checked */
    url_of(url, sizeof url, "/upgrade");
    REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .ca_file = ca_file}, &resp), 0);
    CHECK_EQ(resp.status, 200);
    CHECK_BODY(&resp, "hello");
    CHECK(strncmp(resp.url, "https://", 8) == 0);
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_httpc_redirect_from_https_to_http_is_refused_http_to_https_followed(void **state)
{
    run(scheme_changes);
}

/* ------------------------------------------------------------ encodings */

static int gzip_response(void)
{
    wv_httpc_response resp;
    REQUIRE_EQ(get("/gzip", &resp), 0);
    CHECK_EQ(resp.status, 200);
    CHECK_STR_EQ(wv_httpc_header_get(&resp, "Content-Encoding"), "gzip");
    size_t unit = sizeof gzip_text - 1;
    CHECK_EQ(resp.body.n, unit * 200);
    bool same = resp.body.n == unit * 200;
    for (size_t i = 0; same && i < 200; i++)
        same = memcmp(resp.body.p + i * unit, gzip_text, unit) == 0;
    CHECK(same);
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_httpc_gzip_encoded_response_is_decoded(void **state)
{
    run(gzip_response);
}

static bool text_is_right(const wv_httpc_response *resp, size_t n)
{
    if (resp->body.n != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (resp->body.p[i] != (char)('a' + (i * 7 + i / 13) % 26))
            return false;
    return true;
}

static int server_compressed(void)
{
    wv_httpc_response resp;
    REQUIRE_EQ(get("/text?n=20000", &resp), 0);
    /* the client offered br, the server's first choice */
    CHECK_STR_EQ(wv_httpc_header_get(&resp, "Content-Encoding"), "br");
    CHECK(text_is_right(&resp, 20000));
    wv_httpc_response_free(&resp);
    /* each coding on its own */
    const char *codings[] = {"gzip", "zstd", "br", "deflate"};
    for (size_t i = 0; i < ARRAY_LEN(codings); i++) {
        char url[128];
        wv_httpc_header accept = {"Accept-Encoding", codings[i]};
        REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url_of(url, sizeof url, "/text"),
                                                    .headers = &accept,
                                                    .nheaders = 1},
                                    &resp),
                   0);
        const char *got = wv_httpc_header_get(&resp, "Content-Encoding");
        if (strcmp(codings[i], "deflate") == 0) /* the server does not deflate: identity */
            CHECK(got == NULL);
        else
            CHECK_STR_EQ(got, codings[i]);
        CHECK(text_is_right(&resp, 20000));
        wv_httpc_response_free(&resp);
    }
    return 0;
}

static void test_httpc_response_the_server_compressed_is_decoded(void **state)
{
    run(server_compressed);
}

static int no_decompress(void)
{
    char url[128];
    wv_httpc_response resp;
    REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url_of(url, sizeof url, "/headers"),
                                                .no_decompress = true},
                                &resp),
               0);
    wv_buf_append(&resp.body, "", 1);
    CHECK(strcasestr(resp.body.p, "accept-encoding") == NULL);
    wv_httpc_response_free(&resp);
    REQUIRE_EQ(get("/headers", &resp), 0);
    wv_buf_append(&resp.body, "", 1);
    CHECK(strcasestr(resp.body.p, "accept-encoding: deflate, gzip, br, zstd\n") != NULL);
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_httpc_no_decompress_asks_for_no_encoding(void **state)
{
    run(no_decompress);
}

/* ------------------------------------------------------------ limits */

static int size_limit(void)
{
    char url[128];
    wv_httpc_response resp;
    /* announced by Content-Length */
    url_of(url, sizeof url, "/large?n=100000");
    CHECK_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .max_response = 1000}, &resp), -EMSGSIZE);
    CHECK_MSG("larger than the limit of 1000 bytes");
    CHECK(resp.body.p == NULL);
    /* chunked: found out while it arrives */
    url_of(url, sizeof url, "/slow?n=3000&ms=0");
    CHECK_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .max_response = 1000}, &resp), -EMSGSIZE);
    CHECK_MSG("larger than the limit of 1000 bytes");
    /* exactly the limit is fine */
    url_of(url, sizeof url, "/large?n=1000");
    REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .max_response = 1000}, &resp), 0);
    CHECK_EQ(resp.body.n, 1000);
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_httpc_response_over_max_response_is_emsgsize(void **state)
{
    run(size_limit);
}

/* ------------------------------------------------------------ bodies and methods */

static int post_echo(void)
{
    char url[128];
    url_of(url, sizeof url, "/echo");
    size_t sizes[] = {0, 5, 300 << 10, 5 << 20};
    for (size_t k = 0; k < ARRAY_LEN(sizes); k++) {
        size_t n = sizes[k];
        unsigned char *body = malloc(n + 1);
        REQUIRE(body != NULL);
        for (size_t i = 0; i < n; i++)
            body[i] = pattern(i + k);
        wv_httpc_response resp;
        int rc = wv_httpc_post(url, "application/x-test", body, n, &resp);
        CHECK_EQ(rc, 0);
        if (rc == 0) {
            CHECK_EQ(resp.status, 200);
            CHECK_STR_EQ(wv_httpc_header_get(&resp, "Content-Type"), "application/x-test");
            CHECK(resp.body.n == n && (n == 0 || memcmp(resp.body.p, body, n) == 0));
        }
        wv_httpc_response_free(&resp);
        free(body);
    }
    return 0;
}

static void test_httpc_post_sends_the_body_and_its_content_type(void **state)
{
    run(post_echo);
}

static int methods(void)
{
    char url[128];
    url_of(url, sizeof url, "/method");
    struct {
        const char *method, *body, *want;
    } cases[] = {
        {"PUT", "12345", "PUT 5 5"}, {"PATCH", NULL, "PATCH 0 0"}, {"DELETE", NULL, "DELETE 0 -"},
        {"GET", NULL, "GET 0 -"},    {"POST", NULL, "POST 0 0"},   {"OPTIONS", NULL, "OPTIONS 0 -"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        wv_httpc_response resp;
        int rc = wv_httpc_request(&(wv_httpc_req){.method = cases[i].method,
                                                  .url = url,
                                                  .body = cases[i].body,
                                                  .body_len = cases[i].body ? 5 : 0},
                                  &resp);
        CHECK_EQ(rc, 0);
        CHECK_BODY(&resp, cases[i].want);
        wv_httpc_response_free(&resp);
    }
    /* HEAD: the head alone */
    wv_httpc_response resp;
    REQUIRE_EQ(
        wv_httpc_request(
            &(wv_httpc_req){.method = "HEAD", .url = url_of(url, sizeof url, "/small")}, &resp),
        0);
    CHECK_EQ(resp.status, 200);
    CHECK_EQ(resp.body.n, 0);
    CHECK_STR_EQ(wv_httpc_header_get(&resp, "Content-Length"), "5");
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_httpc_each_method_reaches_the_server_with_its_body(void **state)
{
    run(methods);
}

static int header_echo(void)
{
    char url[128];
    url_of(url, sizeof url, "/headers");
    wv_httpc_header sent[] = {
        {"X-Test", "hello"},
        {"Accept", "application/json"},
        {"X-Empty", ""},
    };
    wv_httpc_response resp;
    REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .headers = sent, .nheaders = 3}, &resp),
               0);
    wv_buf_append(&resp.body, "", 1);
    const char *seen = resp.body.p;
    CHECK(strstr(seen, "X-Test: hello\n") != NULL);
    CHECK(strstr(seen, "Accept: application/json\n") != NULL);
    CHECK(strstr(seen, "X-Empty: \n") != NULL);
    CHECK(strstr(seen, "Accept: */*") == NULL); /* ours replaced curl's */
    CHECK(strstr(seen, "User-Agent: weave/") != NULL);
    CHECK(strcasestr(seen, "Expect:") == NULL);
    /* response headers: any case, first of several, values trimmed */
    CHECK_STR_EQ(wv_httpc_header_get(&resp, "x-one"), "1");
    CHECK_STR_EQ(wv_httpc_header_get(&resp, "X-MULTI"), "a");
    CHECK_STR_EQ(wv_httpc_header_get(&resp, "X-Padded"), "padded value");
    int multi = 0;
    for (size_t i = 0; i < resp.nheaders; i++)
        if (strcmp(resp.headers[i].name, "X-Multi") == 0)
            multi++;
    CHECK_EQ(multi, 2);
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_httpc_headers_go_out_and_come_back_found_in_any_case(void **state)
{
    run(header_echo);
}

static int bad_requests(void)
{
    char url[128];
    url_of(url, sizeof url, "/headers");
    wv_httpc_stats before, after;
    wv_httpc_stats_get(&before);
    wv_httpc_response resp;
    wv_httpc_header evil = {"X-Test", "a\r\nX-Injected: b"};
    CHECK_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .headers = &evil, .nheaders = 1}, &resp),
             -EINVAL);
    CHECK_MSG("line break");
    wv_httpc_header bad_name = {"X Test", "a"};
    CHECK_EQ(
        wv_httpc_request(&(wv_httpc_req){.url = url, .headers = &bad_name, .nheaders = 1}, &resp),
        -EINVAL);
    CHECK_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .method = "GE T"}, &resp), -EINVAL);
    CHECK_EQ(wv_httpc_get("ftp://127.0.0.1/x", &resp), -EINVAL);
    CHECK_MSG("only http:// and https://");
    CHECK_EQ(wv_httpc_get("file:///etc/passwd", &resp), -EINVAL);
    CHECK_EQ(wv_httpc_get("", &resp), -EINVAL);
    CHECK_EQ(wv_httpc_get("http://", &resp), -EINVAL);
    CHECK_EQ(wv_httpc_request(NULL, &resp), -EINVAL);
    wv_httpc_stats_get(&after);
    CHECK_EQ(after.connections, before.connections); /* nothing was sent */
    /* the password of a URL never shows in a message */
    CHECK_EQ(wv_httpc_get("gopher://user:s3cret@127.0.0.1/", &resp), -EINVAL);
    CHECK(strstr(wv_errmsg(), "s3cret") == NULL);
    return 0;
}

static void test_httpc_malformed_requests_are_einval_and_nothing_is_sent(void **state)
{
    run(bad_requests);
}

static int error_status(void)
{
    char url[128];
    url_of(url, sizeof url, "/status/404");
    wv_httpc_response resp;
    REQUIRE_EQ(wv_httpc_get(url, &resp), 0);
    CHECK_EQ(resp.status, 404);
    CHECK_BODY(&resp, "status 404");
    wv_httpc_response_free(&resp);
    url_of(url, sizeof url, "/status/503");
    CHECK_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .fail_on_status = true}, &resp), -EIO);
    CHECK_MSG("HTTP 503");
    CHECK_EQ(resp.status, 503); /* still there */
    CHECK_BODY(&resp, "status 503");
    wv_httpc_response_free(&resp);
    url_of(url, sizeof url, "/status/204");
    REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .fail_on_status = true}, &resp), 0);
    CHECK_EQ(resp.status, 204);
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_httpc_error_status_is_a_response_unless_fail_on_status(void **state)
{
    run(error_status);
}

/* ------------------------------------------------------------ connections */

static int refused(void)
{
    uint16_t port = 0;
    int lfd = listen_loopback(&port);
    REQUIRE(lfd >= 0);
    wv_close(lfd); /* nothing listens there now */
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/", port);
    wv_httpc_response resp;
    int64_t t0 = wv_now();
    CHECK_EQ(wv_httpc_get(url, &resp), -ECONNREFUSED);
    CHECK(ms_since(t0) < 1000);
    CHECK_MSG("cannot connect");
    CHECK_MSG(url);
    return 0;
}

static void test_httpc_port_nobody_listens_on_is_econnrefused(void **state)
{
    run(refused);
}

/* curl's sockets come from wv_socket: a socket(2) that fails there fails
 * the request with the system's reason, and the next one works */
static int socket_fails(void)
{
    char url[128];
    url_of(url, sizeof url, "/small");
    wv_httpc_response resp;
    wv_fault_inject(WV_FAULT_SOCKET, 1, EMFILE);
    int rc = wv_httpc_get(url, &resp);
    wv_fault_clear();
    CHECK_EQ(rc, -EMFILE);
    CHECK_MSG("cannot make a socket: Too many open files");
    REQUIRE_EQ(wv_httpc_get(url, &resp), 0);
    CHECK_BODY(&resp, "hello");
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_httpc_socket_that_cannot_be_made_fails_the_request_with_its_errno(void **state)
{
    run(socket_fails);
}

typedef struct many_call {
    int i;
    int rc;
    bool right;
} many_call;

static int many_get(void *arg)
{
    many_call *c = arg;
    char path[32], want[16];
    snprintf(path, sizeof path, "/id/%d", c->i);
    snprintf(want, sizeof want, "%d", c->i);
    wv_httpc_response resp;
    c->rc = get(path, &resp);
    c->right = c->rc == 0 && resp.status == 200 && body_is(&resp, want);
    wv_httpc_response_free(&resp);
    return 0;
}

static int many_fibers(void)
{
    enum { N = 200 };
    static many_call calls[N];
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    int64_t old = wv_deadline_set(wv_after_ms(20000));
    for (int i = 0; i < N; i++) {
        calls[i] = (many_call){.i = i, .rc = 1};
        REQUIRE_EQ(wv_group_spawn(g, many_get, &calls[i], NULL), 0);
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_deadline_set(old);
    wv_group_free(g);
    int right = 0;
    for (int i = 0; i < N; i++) {
        right += calls[i].right;
        if (!calls[i].right && calls[i].rc != 0)
            CHECK_EQ(calls[i].rc, 0);
    }
    CHECK_EQ(right, N);
    wv_httpc_stats st;
    wv_httpc_stats_get(&st);
    CHECK_EQ(st.requests, N);
    CHECK_EQ(st.in_flight, 0);
    return 0;
}

static void test_httpc_200_fibers_at_once_on_one_shard_all_get_their_answer(void **state)
{
    run(many_fibers);
}

typedef struct hanging_call {
    int rc;
    int64_t returned_at;
} hanging_call;

static int hanging_get(void *arg)
{
    hanging_call *c = arg;
    wv_httpc_response resp;
    c->rc = get("/hang", &resp);
    c->returned_at = wv_now();
    wv_httpc_response_free(&resp);
    return 0;
}

/* descriptors the process has open */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    int n = 0;
    while (readdir(d))
        n++;
    closedir(d);
    return n;
}

static int cancel_mid_transfer(void)
{
    hanging_call c = {.rc = 1};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    REQUIRE_EQ(wv_group_spawn(g, hanging_get, &c, NULL), 0);
    wv_sleep_ms(100); /* the request is out, the server is holding it */
    wv_httpc_stats st;
    wv_httpc_stats_get(&st);
    CHECK_EQ(st.in_flight, 1);
    int during = open_fds();
    int64_t t0 = wv_now();
    wv_group_cancel(g);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(c.rc, -ECANCELED);
    CHECK((c.returned_at - t0) / NS_PER_MS < 50);
    wv_httpc_stats_get(&st);
    CHECK_EQ(st.in_flight, 0);
    /* the transfer is gone, not left running: its connection was closed at
     * once (the server's end stays open while its handler waits) */
    CHECK_EQ(open_fds(), during - 1);
    /* the shard goes on */
    for (int i = 0; i < 3; i++) {
        wv_httpc_response resp;
        CHECK_EQ(get("/small", &resp), 0);
        CHECK_BODY(&resp, "hello");
        wv_httpc_response_free(&resp);
    }
    return 0;
}

static void test_httpc_cancelled_fiber_returns_ecanceled_at_once_and_the_shard_goes_on(void **state)
{
    run(cancel_mid_transfer);
}

static int reuse(void)
{
    wv_httpc_stats before, after;
    wv_httpc_stats_get(&before);
    char first[64] = "";
    for (int i = 0; i < 10; i++) {
        wv_httpc_response resp;
        REQUIRE_EQ(get("/peer", &resp), 0);
        char now[64];
        snprintf(now, sizeof now, "%.*s", (int)resp.body.n, resp.body.p);
        if (i == 0)
            snprintf(first, sizeof first, "%s", now);
        CHECK_STR_EQ(now, first); /* the server saw one client port: one connection */
        wv_httpc_response_free(&resp);
    }
    wv_httpc_stats_get(&after);
    CHECK_EQ(after.connections - before.connections, 1);
    CHECK_EQ(after.requests - before.requests, 10);
    return 0;
}

static void test_httpc_requests_one_after_another_reuse_one_connection(void **state)
{
    run(reuse);
}

/* ------------------------------------------------------------ TLS */

static int tls_verify(void)
{
    char url[128];
    tls_url_of(url, sizeof url, "/small");
    wv_httpc_response resp;
    /* the test CA trusted: verified, served over HTTP/1.1 (weave offers no h2) */
    REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .ca_file = ca_file}, &resp), 0);
    CHECK_EQ(resp.status, 200);
    CHECK_EQ(resp.version, 11);
    CHECK_BODY(&resp, "hello");
    wv_httpc_response_free(&resp);
    /* the system's CAs do not know it */
    CHECK_EQ(wv_httpc_get(url, &resp), -EPROTO);
    CHECK_MSG("certificate");
    /* insecure skips the check */
    REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .insecure = true}, &resp), 0);
    CHECK_EQ(resp.status, 200);
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_httpc_https_verifies_the_servers_certificate_by_default(void **state)
{
    run(tls_verify);
}

/* ------------------------------------------------------------ proxies */

static int proxy_from_env(void)
{
    char proxy[64];
    snprintf(proxy, sizeof proxy, "http://127.0.0.1:%d", srv.plain);
    setenv("http_proxy", proxy, 1);
    wv_httpc_response resp;
    /* a name that resolves nowhere: only the proxy can answer */
    int rc = wv_httpc_get("http://weave-proxy-test.invalid/target", &resp);
    unsetenv("http_proxy");
    REQUIRE_EQ(rc, 0);
    CHECK_EQ(resp.status, 200);
    CHECK_BODY(&resp, "http://weave-proxy-test.invalid/target");
    wv_httpc_response_free(&resp);
    /* an explicit one, the environment empty */
    rc = wv_httpc_request(
        &(wv_httpc_req){.url = "http://weave-proxy-test.invalid/target", .proxy = proxy}, &resp);
    REQUIRE_EQ(rc, 0);
    CHECK_BODY(&resp, "http://weave-proxy-test.invalid/target");
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_httpc_proxy_named_by_the_environment_is_used(void **state)
{
    run(proxy_from_env);
}

/* ------------------------------------------------------------ shards */

static atomic_int shard_failures;

static int per_shard(void *arg)
{
    for (int i = 0; i < 10; i++) {
        wv_httpc_response resp;
        if (get("/small", &resp) != 0 || !body_is(&resp, "hello"))
            atomic_fetch_add(&shard_failures, 1);
        wv_httpc_response_free(&resp);
    }
    wv_httpc_stats st;
    wv_httpc_stats_get(&st);
    CHECK_EQ(st.requests, 10); /* this shard's own client */
    CHECK_EQ(st.connections, 1);
    return 0;
}

static int every_shard(void)
{
    atomic_store(&shard_failures, 0);
    CHECK_EQ(wv_shard_each(per_shard, NULL), 0);
    CHECK_EQ(atomic_load(&shard_failures), 0);
    return 0;
}

static void test_httpc_every_shard_has_a_client_of_its_own(void **state)
{
    run_on(2, every_shard);
}

/* A name /etc/hosts gives 127.0.0.1, other than localhost (which curl
 * answers itself): looked up by curl's resolver thread, whose wake-up
 * reaches the shard through the same epoll set as the sockets. */
static char hosts_name[128];

static bool find_hosts_name(void)
{
    FILE *f = fopen("/etc/hosts", "r");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        char *save = NULL, *addr = strtok_r(line, " \t\r\n", &save);
        if (!addr || addr[0] == '#' || strcmp(addr, "127.0.0.1") != 0)
            continue;
        for (char *name; !found && (name = strtok_r(NULL, " \t\r\n", &save));) {
            if (name[0] == '#')
                break;
            if (strncmp(name, "localhost", 9) == 0 || strstr(name, ".localhost"))
                continue;
            struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
            if (getaddrinfo(name, NULL, &hints, &res) != 0)
                continue;
            struct sockaddr_in *a = (struct sockaddr_in *)res->ai_addr;
            found = a->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
            freeaddrinfo(res);
            if (found)
                snprintf(hosts_name, sizeof hosts_name, "%s", name);
        }
    }
    fclose(f);
    return found;
}

static int by_name(void)
{
    char url[256];
    snprintf(url, sizeof url, "http://%s:%d/small", hosts_name, srv.plain);
    for (int i = 0; i < 2; i++) { /* the second from curl's cache of names */
        wv_httpc_response resp;
        REQUIRE_EQ(wv_httpc_get(url, &resp), 0);
        CHECK_EQ(resp.status, 200);
        CHECK_BODY(&resp, "hello");
        wv_httpc_response_free(&resp);
    }
    return 0;
}

static void test_httpc_host_name_from_etc_hosts_is_resolved_by_curls_resolver(void **state)
{
    if (!find_hosts_name()) {
        print_message("no name other than localhost maps to 127.0.0.1 in /etc/hosts\n");
        skip();
    }
    run(by_name);
}

static void test_httpc_outside_a_fiber_is_eperm(void **state)
{
    wv_httpc_response resp;
    assert_int_equal(wv_httpc_get("http://127.0.0.1:1/", &resp), -EPERM);
}

/* ------------------------------------------------------------ HTTP/2 (nghttpd) */

static char htdocs[128];
static char token[64];

static const char *nghttpd_path(void)
{
    static const char *const where[] = {"/usr/sbin/nghttpd", "/usr/bin/nghttpd",
                                        "/usr/local/bin/nghttpd", "/usr/local/sbin/nghttpd"};
    for (size_t i = 0; i < ARRAY_LEN(where); i++)
        if (access(where[i], X_OK) == 0)
            return where[i];
    return NULL;
}

/* Has nghttpd got what it needs? Fails the test (or skips it, with
 * WEAVE_TEST_HTTPC_SKIP_H2=1) when it is not installed. */
static bool need_nghttpd(void)
{
    if (nghttpd_path())
        return true;
    const char *skip_h2 = getenv("WEAVE_TEST_HTTPC_SKIP_H2");
    if (skip_h2 && strcmp(skip_h2, "1") == 0)
        return false;
    print_error("nghttpd is not installed: apt-get install nghttp2-server (scripts/deps.sh "
                "test), or set WEAVE_TEST_HTTPC_SKIP_H2=1 to skip the HTTP/2 tests\n");
    fail();
    return false;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback_addr(0);
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_answers(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback_addr((uint16_t)port);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

typedef struct h2_server {
    pid_t pid;
    int port;
} h2_server;

/* nghttpd on a free port of 127.0.0.1, over TLS or h2c; pid 0 on failure */
static h2_server nghttpd_start(bool tls)
{
    char key[160], cert[160], port_s[16];
    snprintf(key, sizeof key, "%s/server.key", dir);
    snprintf(cert, sizeof cert, "%s/server.pem", dir);
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = free_port();
        if (port <= 0)
            continue;
        snprintf(port_s, sizeof port_s, "%d", port);
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            break;
        if (pid == 0) {
            prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlives the test */
            int null = open("/dev/null", O_RDWR);
            dup2(null, 1);
            dup2(null, 2);
            const char *exe = nghttpd_path();
            if (tls)
                execl(exe, "nghttpd", "-a", "127.0.0.1", "-d", htdocs, port_s, key, cert,
                      (char *)NULL);
            else
                execl(exe, "nghttpd", "-a", "127.0.0.1", "-d", htdocs, "--no-tls", port_s,
                      (char *)NULL);
            _exit(127);
        }
        for (int i = 0; i < 100; i++) {
            if (port_answers(port))
                return (h2_server){pid, port};
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid)
                break; /* it died: the port was taken meanwhile; another */
            usleep(20000);
        }
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
    }
    return (h2_server){0, 0};
}

static void nghttpd_stop(h2_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        waitpid(s->pid, NULL, 0);
    }
    s->pid = 0;
}

static h2_server h2_tls, h2_plain;

static int h2_tls_get(void)
{
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/token.txt", h2_tls.port);
    wv_httpc_response resp;
    REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .ca_file = ca_file}, &resp), 0);
    CHECK_EQ(resp.status, 200);
    CHECK_EQ(resp.version, 20); /* chosen by ALPN */
    CHECK_BODY(&resp, token);   /* and it is our nghttpd that answered */
    wv_httpc_response_free(&resp);
    return 0;
}

/* nghttpd for one test: started before it, stopped after it even when it
 * fails (a test without nghttpd installed fails or skips in its body) */
static int h2_tls_up(void **state)
{
    if (nghttpd_path())
        h2_tls = nghttpd_start(true);
    return 0;
}

static int h2_tls_down(void **state)
{
    nghttpd_stop(&h2_tls);
    return 0;
}

static int h2_plain_up(void **state)
{
    if (nghttpd_path())
        h2_plain = nghttpd_start(false);
    return 0;
}

static int h2_plain_down(void **state)
{
    nghttpd_stop(&h2_plain);
    return 0;
}

static void test_httpc_http2_over_tls_is_chosen_by_alpn(void **state)
{
    if (!need_nghttpd())
        skip();
    assert_true(h2_tls.pid > 0);
    run(h2_tls_get);
}

static int h2c_get(void)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/token.txt", h2_plain.port);
    wv_httpc_response resp;
    REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .version = WV_HTTPC_HTTP2}, &resp), 0);
    CHECK_EQ(resp.status, 200);
    CHECK_EQ(resp.version, 20);
    CHECK_BODY(&resp, token);
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_httpc_h2c_with_prior_knowledge_speaks_http2_on_plain_tcp(void **state)
{
    if (!need_nghttpd())
        skip();
    assert_true(h2_plain.pid > 0);
    run(h2c_get);
}

static int h2_one_get(void *arg)
{
    many_call *c = arg;
    char url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/token.txt", h2_tls.port);
    wv_httpc_response resp;
    c->rc = wv_httpc_request(&(wv_httpc_req){.url = url, .ca_file = ca_file}, &resp);
    c->right = c->rc == 0 && resp.version == 20 && body_is(&resp, token);
    wv_httpc_response_free(&resp);
    return 0;
}

static int h2_shared(void)
{
    enum { N = 20 };
    many_call calls[N];
    wv_httpc_stats before, after;
    wv_httpc_stats_get(&before);
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < N; i++) {
        calls[i] = (many_call){.i = i, .rc = 1};
        REQUIRE_EQ(wv_group_spawn(g, h2_one_get, &calls[i], NULL), 0);
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    int right = 0;
    for (int i = 0; i < N; i++)
        right += calls[i].right;
    CHECK_EQ(right, N);
    wv_httpc_stats_get(&after);
    CHECK_EQ(after.connections - before.connections, 1); /* N streams, one connection */
    return 0;
}

static void test_httpc_concurrent_http2_requests_share_one_connection(void **state)
{
    if (!need_nghttpd())
        skip();
    assert_true(h2_tls.pid > 0);
    run(h2_shared);
}

/* ------------------------------------------------------------ deadline propagation, the server's
 * end */

static long long field_of(const char *body, const char *name)
{
    const char *p = strstr(body, name);
    return p ? strtoll(p + strlen(name), NULL, 10) : LLONG_MIN;
}

static int deadline_header(void)
{
    char url[128];
    url_of(url, sizeof url, "/observe");
    wv_httpc_response resp;
    struct {
        const char *value;
        long long lo, hi;
    } cases[] = {
        {"5000", 4000, 5000},     /* the handler's deadline */
        {"120000", 50000, 60000}, /* no more than max_ms */
        {NULL, -1, -1},           /* no header: no deadline */
    };
    wv_httpc_stats before, after;
    wv_httpc_stats_get(&before);
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        wv_httpc_header h = {WV_DEADLINE_HEADER, cases[i].value};
        REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url,
                                                    .headers = cases[i].value ? &h : NULL,
                                                    .nheaders = cases[i].value ? 1 : 0},
                                    &resp),
                   0);
        wv_buf_append(&resp.body, "", 1);
        if (!CHECK_BETWEEN(field_of(resp.body.p, "left="), cases[i].lo, cases[i].hi))
            fprintf(stderr, "  %s: %s\n", cases[i].value ? cases[i].value : "(none)", resp.body.p);
        wv_httpc_response_free(&resp);
    }
    /* all on one connection: a deadline ends with its request */
    wv_httpc_stats_get(&after);
    CHECK_EQ(after.connections, before.connections + (before.connections == 0));

    /* a value that is not milliseconds: 400 */
    wv_httpc_header bad = {WV_DEADLINE_HEADER, "soon"};
    REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url, .headers = &bad, .nheaders = 1}, &resp),
               0);
    CHECK_EQ(resp.status, 400);
    wv_buf_append(&resp.body, "", 1);
    CHECK(strstr(resp.body.p, "whole number of milliseconds") != NULL);
    wv_httpc_response_free(&resp);

    /* 0: the caller has given up; the handler does not run */
    int runs = sleep_runs;
    wv_httpc_header zero = {WV_DEADLINE_HEADER, "0"};
    REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url_of(url, sizeof url, "/sleep?ms=1"),
                                                .headers = &zero,
                                                .nheaders = 1},
                                &resp),
               0);
    CHECK_EQ(resp.status, 504);
    CHECK_EQ(sleep_runs, runs);
    wv_httpc_response_free(&resp);

    /* a handler that outlives it answers 504 when it runs out */
    wv_httpc_header short_one = {WV_DEADLINE_HEADER, "200"};
    int64_t t0 = wv_now();
    REQUIRE_EQ(wv_httpc_request(&(wv_httpc_req){.url = url_of(url, sizeof url, "/sleep?ms=2000"),
                                                .headers = &short_one,
                                                .nheaders = 1},
                                &resp),
               0);
    CHECK_EQ(resp.status, 504);
    CHECK_BETWEEN(ms_since(t0), 190, 1000);
    CHECK_EQ(sleep_runs, runs + 1);
    wv_httpc_response_free(&resp);
    return 0;
}

static void test_http_deadline_header_becomes_the_handlers_deadline_never_longer(void **state)
{
    run(deadline_header);
}

/* ------------------------------------------------------------ the parts alone */

static void test_httpc_curl_results_map_to_errno_and_a_reason(void **state)
{
    struct {
        CURLcode code;
        int os_errno, socket_errno;
        int want;
        const char *words;
    } cases[] = {
        {CURLE_COULDNT_RESOLVE_HOST, 0, 0, -EHOSTUNREACH, "cannot resolve the host name"},
        {CURLE_COULDNT_RESOLVE_PROXY, 0, 0, -EHOSTUNREACH, "proxy"},
        {CURLE_COULDNT_CONNECT, ECONNREFUSED, 0, -ECONNREFUSED, "Connection refused"},
        {CURLE_COULDNT_CONNECT, ENETUNREACH, 0, -ENETUNREACH, "cannot connect"},
        {CURLE_COULDNT_CONNECT, 0, 0, -ECONNREFUSED, "cannot connect"},
        {CURLE_COULDNT_CONNECT, 0, EMFILE, -EMFILE, "cannot make a socket: Too many open files"},
        {CURLE_OPERATION_TIMEDOUT, 0, 0, -ETIMEDOUT, "timed out"},
        {CURLE_PEER_FAILED_VERIFICATION, 0, 0, -EPROTO, "certificate did not verify"},
        {CURLE_SSL_CONNECT_ERROR, 0, 0, -EPROTO, "TLS"},
        {CURLE_FILESIZE_EXCEEDED, 0, 0, -EMSGSIZE, "limit of 1234 bytes"},
        {CURLE_TOO_MANY_REDIRECTS, 0, 0, -ELOOP, "more than 7 redirects"},
        {CURLE_URL_MALFORMAT, 0, 0, -EINVAL, "malformed URL"},
        {CURLE_UNSUPPORTED_PROTOCOL, 0, 0, -EPROTO, "refused to follow a redirect"},
        {CURLE_GOT_NOTHING, 0, 0, -ECONNRESET, "without answering"},
        {CURLE_RECV_ERROR, 0, 0, -ECONNRESET, "broke"},
        {CURLE_HTTP2_STREAM, 0, 0, -ECONNRESET, "broke"},
        {CURLE_WEIRD_SERVER_REPLY, 0, 0, -EPROTO, "broke HTTP"},
        {CURLE_OUT_OF_MEMORY, 0, 0, -ENOMEM, "memory"},
        {CURLE_LOGIN_DENIED, 0, 0, -EIO, "curl error 67"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char why[512];
        httpc_failure f = {.code = cases[i].code,
                           .os_errno = cases[i].os_errno,
                           .socket_errno = cases[i].socket_errno,
                           .detail = "curl's words",
                           .max_redirects = 7,
                           .max_response = 1234};
        int rc = httpc_error(&f, why, sizeof why);
        if (rc != cases[i].want || !strstr(why, cases[i].words))
            print_error("case %zu (curl %d): got %d \"%s\"\n", i, (int)cases[i].code, rc, why);
        assert_int_equal(rc, cases[i].want);
        assert_non_null(strstr(why, cases[i].words));
    }
}

static void test_httpc_head_becomes_fields_folded_lines_joined(void **state)
{
    const char raw[] = "HTTP/1.1 200 OK\r\n"
                       "Content-Type: text/plain\r\n"
                       "X-Folded: first\r\n"
                       "  second\r\n"
                       "X-Empty:\r\n"
                       "no colon here\r\n"
                       "X-Spaces: \t  v  \t\r\n"
                       "\r\n";
    wv_buf head = {0};
    assert_int_equal(wv_buf_append(&head, raw, sizeof raw - 1), 0);
    wv_httpc_response resp = {0};
    assert_int_equal(httpc_response_take_head(&resp, &head), 0);
    assert_null(head.p);
    assert_int_equal(resp.nheaders, 4);
    assert_string_equal(resp.headers[0].name, "Content-Type");
    assert_string_equal(resp.headers[0].value, "text/plain");
    assert_string_equal(wv_httpc_header_get(&resp, "x-folded"), "first    second");
    assert_string_equal(wv_httpc_header_get(&resp, "X-EMPTY"), "");
    assert_string_equal(wv_httpc_header_get(&resp, "x-spaces"), "v");
    assert_null(wv_httpc_header_get(&resp, "no colon here"));
    wv_httpc_response_free(&resp);
    wv_httpc_response_free(&resp); /* twice: harmless */
}

/* ------------------------------------------------------------ main */

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/weave-httpc-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    const char *src = getenv("WEAVE_SOURCE_DIR");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "bash %s/tests/make_certs.sh %s", src ? src : ".", dir);
    if (system(cmd) != 0)
        return -1;
    char c[128], k[128];
    snprintf(c, sizeof c, "%s/server.pem", dir);
    snprintf(k, sizeof k, "%s/server.key", dir);
    snprintf(ca_file, sizeof ca_file, "%s/ca.pem", dir);
    if (wv_tls_ctx_server(&(wv_tls_opts){.cert_file = c, .key_file = k}, &server_tls) < 0)
        return -1;
    /* nghttpd's documents: a token that proves which server answered */
    snprintf(htdocs, sizeof htdocs, "%s/htdocs", dir);
    snprintf(token, sizeof token, "weave-h2-%d", (int)getpid());
    snprintf(cmd, sizeof cmd, "%s/token.txt", htdocs);
    FILE *f = mkdir(htdocs, 0755) == 0 ? fopen(cmd, "w") : NULL;
    if (!f)
        return -1;
    fputs(token, f);
    return fclose(f) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    wv_tls_ctx_free(server_tls);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    harness_init();
    static const char *const proxy_vars[] = {"http_proxy", "https_proxy", "all_proxy",
                                             "no_proxy",   "HTTPS_PROXY", "ALL_PROXY",
                                             "NO_PROXY",   "HTTP_PROXY"};
    for (size_t i = 0; i < ARRAY_LEN(proxy_vars); i++)
        unsetenv(proxy_vars[i]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_httpc_curl_results_map_to_errno_and_a_reason),
        cmocka_unit_test(test_httpc_head_becomes_fields_folded_lines_joined),
        cmocka_unit_test(test_httpc_outside_a_fiber_is_eperm),
        cmocka_unit_test(test_httpc_get_returns_status_body_headers_url_and_version),
        cmocka_unit_test(test_httpc_large_body_arrives_whole_and_intact),
        cmocka_unit_test(test_httpc_body_trickling_byte_by_byte_arrives_whole_while_others_run),
        cmocka_unit_test(test_httpc_server_that_never_answers_is_etimedout_at_the_deadline),
        cmocka_unit_test(test_httpc_redirect_chain_is_followed_and_counted),
        cmocka_unit_test(test_httpc_redirect_loop_ends_at_max_redirects_with_eloop),
        cmocka_unit_test(test_httpc_negative_max_redirects_returns_the_3xx_itself),
        cmocka_unit_test(test_httpc_redirect_from_https_to_http_is_refused_http_to_https_followed),
        cmocka_unit_test(test_httpc_gzip_encoded_response_is_decoded),
        cmocka_unit_test(test_httpc_response_the_server_compressed_is_decoded),
        cmocka_unit_test(test_httpc_no_decompress_asks_for_no_encoding),
        cmocka_unit_test(test_httpc_response_over_max_response_is_emsgsize),
        cmocka_unit_test(test_httpc_post_sends_the_body_and_its_content_type),
        cmocka_unit_test(test_httpc_each_method_reaches_the_server_with_its_body),
        cmocka_unit_test(test_httpc_headers_go_out_and_come_back_found_in_any_case),
        cmocka_unit_test(test_httpc_malformed_requests_are_einval_and_nothing_is_sent),
        cmocka_unit_test(test_httpc_error_status_is_a_response_unless_fail_on_status),
        cmocka_unit_test(test_httpc_port_nobody_listens_on_is_econnrefused),
        cmocka_unit_test(test_httpc_socket_that_cannot_be_made_fails_the_request_with_its_errno),
        cmocka_unit_test(test_httpc_200_fibers_at_once_on_one_shard_all_get_their_answer),
        cmocka_unit_test(
            test_httpc_cancelled_fiber_returns_ecanceled_at_once_and_the_shard_goes_on),
        cmocka_unit_test(test_httpc_requests_one_after_another_reuse_one_connection),
        cmocka_unit_test(test_httpc_https_verifies_the_servers_certificate_by_default),
        cmocka_unit_test(test_httpc_proxy_named_by_the_environment_is_used),
        cmocka_unit_test(test_httpc_every_shard_has_a_client_of_its_own),
        cmocka_unit_test(test_httpc_host_name_from_etc_hosts_is_resolved_by_curls_resolver),
        cmocka_unit_test(test_http_deadline_header_becomes_the_handlers_deadline_never_longer),
        cmocka_unit_test_setup_teardown(test_httpc_http2_over_tls_is_chosen_by_alpn, h2_tls_up,
                                        h2_tls_down),
        cmocka_unit_test_setup_teardown(
            test_httpc_h2c_with_prior_knowledge_speaks_http2_on_plain_tcp, h2_plain_up,
            h2_plain_down),
        cmocka_unit_test_setup_teardown(test_httpc_concurrent_http2_requests_share_one_connection,
                                        h2_tls_up, h2_tls_down),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
