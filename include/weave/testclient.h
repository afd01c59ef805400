/*
 * weave test client: requests run through a router in-process, with no
 * socket (FastAPI's TestClient). Each request goes through the same
 * routing, middleware (CORS, deadlines, metrics, auth...), handler, error
 * mapping and limits as over a real server, in a fiber of its own like a
 * connection's, so its handler may sleep or call any client. The response
 * comes back whole: status, headers, body (and its chunks as the handler
 * wrote them), trailers.
 *
 *     static int body(void *arg)
 *     {
 *         wv_router *r = wv_router_new();
 *         wv_get(r, "/async-endpoint", async_endpoint);   // sleeps 1 s
 *         wv_test_client *c = wv_test_client_new(r, NULL);
 *         wv_test_res *res;
 *         if (wv_test_get(c, "/async-endpoint", &res) == 0) {
 *             CHECK_EQ(wv_test_res_status(res), 200);
 *             const char *msg;
 *             wv_json_as_string(wv_json_get(wv_test_res_json(res), "message"), &msg, NULL);
 *             wv_test_res_free(res);
 *         }
 *         wv_test_client_free(c);
 *         wv_router_free(r);
 *         return 0;
 *     }
 *     ... wv_main(&(wv_main_opts){.virtual_clock = true}, body, NULL) ...
 *
 * Under the runtime's virtual clock (wv_main_opts.virtual_clock) that
 * request answers in microseconds of real time while its handler sees a
 * full second pass; docs/testing.md has the clock's rules.
 *
 * What differs from a socket: the request is carried as HTTP/2 carries it
 * (the exchange seam of weave/http.h), so there is no HTTP/1.1 framing to
 * get wrong. The response's header names come lower-case, without
 * connection-specific fields (Connection, Keep-Alive, Transfer-Encoding);
 * its trailers are always kept (over HTTP/1.1 only a request with "TE:
 * trailers" gets them); a protocol upgrade (WebSocket) is refused
 * (-EPROTONOSUPPORT from wv_res_upgrade); wv_req_local_port answers
 * -ENOTCONN and wv_req_is_tls false. A test can compare with a real
 * server for anything else.
 *
 * Threading: a client belongs to the shard of its first request; requests
 * come from fibers of that shard, any number at once.
 */
#ifndef WEAVE_TESTCLIENT_H
#define WEAVE_TESTCLIENT_H

#include "weave/http.h"
#include "weave/json.h"
#include "weave/str.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_test_client wv_test_client;
typedef struct wv_test_res wv_test_res;

typedef struct wv_test_client_opts {
    /* The server options the requests run under, as wv_http_serve takes
     * them: max_body, body_timeout_ms, server_name, access_log,
     * no_compression, context (what wv_req_context returns)...; the
     * listening ones (host, port, tls...) are ignored. NULL = the
     * defaults. Copied. */
    const wv_http_opts *http;
    /* What wv_req_peer answers; NULL = "127.0.0.1:50000". Copied (63
     * bytes kept). */
    const char *peer;
    /* The Host header of requests that send none; NULL = "testserver". */
    const char *host;
    /* What wv_req_version answers: 10, 11 or 20; 0 = 11. */
    int version;
} wv_test_client_opts;

/* A client for r (not owned: free it after the client). opts may be NULL
 * and is copied. NULL on OOM or a bad option (r NULL, a version other
 * than 10, 11, 20). Callable outside the runtime. */
wv_test_client *wv_test_client_new(wv_router *r, const wv_test_client_opts *opts);

/* Free the client once no request of it is in flight. NULL is ignored. */
void wv_test_client_free(wv_test_client *c);

/* The response's body as it arrives: called for each piece the handler
 * writes, in the requesting fiber's shard (it must not suspend). Return 0
 * to go on, or anything else to stop as a client that goes away would: the
 * handler's write fails with -ECONNRESET, and the response is kept as it
 * was, not complete. For an endless stream (Server-Sent Events). */
typedef int wv_test_chunk_fn(void *arg, const void *data, size_t n);

typedef struct wv_test_req {
    const char *method; /* NULL = "GET" */
    const char *target; /* path and query as sent: "/users?limit=5" (or "*") */
    /* header fields as name, value pairs, NULL-terminated:
     * (const char *[]){"Origin", "http://a.example", NULL}. Content-Length
     * and Transfer-Encoding are the client's to set (from the body): -EINVAL. */
    const char *const *headers;
    const void *body; /* may be NULL: no body */
    size_t body_len;
    /* The body's delivery: at most chunk_size bytes a read (0 = as much as
     * the handler asks for), with chunk_delay_ms of sleep before each
     * piece after the first (a slow client: the server's body_timeout_ms
     * applies). chunked: no length is declared (a chunked body), so
     * max_body is checked as the bytes arrive, not up front. cut: the body
     * ends with a reset instead of its end (-ECONNRESET to the handler's
     * read: a client that went away mid-upload). */
    size_t chunk_size;
    int64_t chunk_delay_ms;
    bool chunked;
    bool cut;
    /* trailer fields sent after the body, as name, value pairs,
     * NULL-terminated (wv_req_trailer reads them) */
    const char *const *trailers;
    const char *peer; /* what wv_req_peer answers for this request; NULL = the client's */
    wv_test_chunk_fn *on_chunk;
    void *on_chunk_arg;
} wv_test_req;

/*
 * Run one request: a fiber runs it through the router as the server would
 * (its handler starts without a deadline, as a connection's does) and this
 * call waits for its response, then puts it in *out (free it with
 * wv_test_res_free). Any status is a response, 0: a 404 or a 504 is there
 * to be checked. Errors (with *out NULL): -EINVAL for a request no HTTP
 * client could send (a method that is not a token, a target that does not
 * start with '/' or holds spaces or control bytes, a bad header name or a
 * value with CR, LF or NUL; wv_errmsg says which), -EPERM outside a fiber,
 * -EXDEV from a shard other than the client's, -ENOMEM, -ECONNRESET when
 * the server answered nothing at all (it reset the request before a
 * head). If the calling fiber is cancelled or its deadline passes first,
 * the request is cancelled (its handler sees -ECANCELED, as when a client
 * goes away) and waited for, and -ECANCELED / -ETIMEDOUT is returned.
 */
int wv_test_request(wv_test_client *c, const wv_test_req *req, wv_test_res **out);

/* GET target. */
int wv_test_get(wv_test_client *c, const char *target, wv_test_res **out);

/* POST target with this JSON text as the body (Content-Type:
 * application/json). The text is sent as is, not checked. */
int wv_test_post_json(wv_test_client *c, const char *target, const char *json, wv_test_res **out);

/* ------------------------------------------------------------ response */

/* The status (200, 404, ...). */
int wv_test_res_status(const wv_test_res *res);

/* The first header field of that name (any case); .p NULL when absent.
 * Valid until the response is freed. */
wv_str wv_test_res_header(const wv_test_res *res, const char *name);

/* Header count and the i-th field in the order sent (lower-case names). */
int wv_test_res_header_count(const wv_test_res *res);
void wv_test_res_header_at(const wv_test_res *res, int i, wv_str *name, wv_str *value);

/* A trailer field (any case); .p NULL when absent. */
wv_str wv_test_res_trailer(const wv_test_res *res, const char *name);

/* The whole body received ("" when none; a HEAD's is empty). Valid until
 * the response is freed; NUL-terminated after its n bytes. */
wv_str wv_test_res_body(const wv_test_res *res);

/* The body's pieces as the server sent them: one for wv_res_send, one per
 * wv_res_write / wv_res_sse_send for a stream. */
int wv_test_res_chunk_count(const wv_test_res *res);
wv_str wv_test_res_chunk(const wv_test_res *res, int i);

/* Did the body end as a whole one? false when the handler failed after
 * beginning it (the stream was cut, as a client sees a connection closed
 * mid-body) or on_chunk stopped it. */
bool wv_test_res_complete(const wv_test_res *res);

/* The body read as JSON with weave's strict reader (parsed once, kept
 * with the response): its root, or NULL when the body is not JSON
 * (wv_errmsg says why). */
const wv_json_val *wv_test_res_json(wv_test_res *res);

/* Free a response. NULL is ignored. */
void wv_test_res_free(wv_test_res *res);

#ifdef __cplusplus
}
#endif

#endif
