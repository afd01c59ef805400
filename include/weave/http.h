/*
 * weave HTTP server: routes, middleware, requests and responses, over
 * HTTP/1.1 and HTTP/2 (src/h2: h2c with prior knowledge on the same port,
 * and "h2" by ALPN over TLS; docs/h2.md). A handler sees the same wv_req
 * and wv_res whichever protocol carried the request (wv_req_version says).
 *
 *     static int hello(wv_req *req, wv_res *res)
 *     {
 *         wv_sleep_ms(1000);                  // other requests keep running
 *         return wv_res_json(res, 200, "{\"message\":\"Asynchronous Response\"}");
 *     }
 *
 *     static int serve(void *arg)
 *     {
 *         wv_router *r = wv_router_new();
 *         wv_get(r, "/async-endpoint", hello);
 *         return wv_http_serve(r, &(wv_http_opts){.port = 8000});
 *     }
 *
 *     int main(void) { return wv_main(NULL, serve, NULL); }
 *
 * Every connection is a fiber, so a handler may sleep or call any client
 * without blocking other requests. wv_http_serve listens on every shard
 * (SO_REUSEPORT), serves until wv_stop() / SIGTERM, then stops accepting,
 * lets requests in flight finish (up to drain_timeout_ms), closes idle
 * keep-alive connections and returns 0.
 *
 * A handler returns 0 once it has responded, or a negative errno to let
 * weave answer for it (wv_res_error: -EINVAL 400, -ENOENT 404, ...) with
 * wv_errmsg() as the message. Request strings (wv_str) point into the
 * connection's buffer and are valid until the handler returns.
 */
#ifndef WEAVE_HTTP_H
#define WEAVE_HTTP_H

#include "weave/buf.h"
#include "weave/json.h"
#include "weave/net.h"
#include "weave/rt.h"
#include "weave/str.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_req wv_req;
typedef struct wv_res wv_res;
typedef struct wv_router wv_router;

typedef int wv_handler(wv_req *req, wv_res *res);

/* ------------------------------------------------------------- routing */

/* A router (or a route group made from one). NULL on OOM. */
wv_router *wv_router_new(void);

/* Free a router and its groups (after the server has returned). */
void wv_router_free(wv_router *r);

/*
 * Add a route. method: "GET", "POST", ... or "*" for any. pattern: static
 * segments, "{name}" parameters (one segment) and a last "{name...}"
 * catch-all: "/users/{id}", "/static/{path...}". HEAD is answered by GET
 * routes (without the body), OPTIONS automatically (Allow), unknown paths
 * 404, known paths with another method 405 with Allow.
 * 0, -EINVAL (bad pattern; wv_errmsg says why), -EEXIST (a duplicate).
 */
int wv_route(wv_router *r, const char *method, const char *pattern, wv_handler *h);

/* wv_route with a pointer the handler reads back with wv_req_data(). */
int wv_route_with(wv_router *r, const char *method, const char *pattern, wv_handler *h, void *data);

#define wv_get(r, pattern, h)    wv_route((r), "GET", (pattern), (h))
#define wv_post(r, pattern, h)   wv_route((r), "POST", (pattern), (h))
#define wv_put(r, pattern, h)    wv_route((r), "PUT", (pattern), (h))
#define wv_patch(r, pattern, h)  wv_route((r), "PATCH", (pattern), (h))
#define wv_delete(r, pattern, h) wv_route((r), "DELETE", (pattern), (h))

/* A group: routes added to it get `prefix` in front and the group's own
 * middleware after its parent's (Django's include()). Freed with its root. */
wv_router *wv_router_group(wv_router *parent, const char *prefix);

/*
 * Middleware. `before` runs ahead of the handler: return WV_NEXT to go on, 0
 * once it has responded itself (auth failure, CORS preflight, rate limit),
 * or a negative errno as a handler would. `after` runs once the response
 * is decided, whatever happened (logging, metrics). Either may be NULL.
 * Middleware of a router applies to all its routes and its groups' routes,
 * in the order added, outermost first.
 */
#define WV_NEXT 1
typedef struct wv_middleware {
    const char *name;
    int (*before)(wv_req *req, wv_res *res, void *arg);
    void (*after)(wv_req *req, wv_res *res, void *arg);
    void *arg;
    void (*free)(void *arg); /* if set, called with arg when the router is freed */
} wv_middleware;

/* 0 or -ENOMEM (free(arg) is then called at once). The struct is copied. */
int wv_router_use(wv_router *r, const wv_middleware *mw);

/* wv_router_use, but ahead of the middleware already there: outermost, so
 * it sees every request, even those another middleware answers itself
 * (metrics, tracing). */
int wv_router_use_first(wv_router *r, const wv_middleware *mw);

/* ------------------------------------------------------ route descriptions */

/*
 * What a route takes and answers, for an API description (weave/openapi.h
 * turns it into OpenAPI 3.1, as FastAPI does from a path operation's
 * signature). The router only keeps the pointer: routing never reads it,
 * so a description costs nothing per request. Everything it points to
 * must outlive the router: declare it at file scope (static const), as
 * wv_db_model descriptors are.
 *
 *     static const wv_db_field user_id = {.name = "id", .type = WV_DB_INT, WV_GE(1)};
 *     static const wv_route_info get_user_info = {
 *         .summary = "Read a user",
 *         .tags = (const char *const[]){"users", NULL},
 *         .params = (const wv_route_param[]){{"path", &user_id}, {0}},
 *         .responses = (const wv_route_response[]){
 *             {200, "The user", .model = &user_model}, {.status = 404, .description = "No such
 * user"}, {0}},
 *     };
 *     wv_get(r, "/users/{id}", get_user);
 *     wv_route_doc(r, "GET", "/users/{id}", &get_user_info);
 */
struct wv_db_field;
struct wv_db_model;

/* One parameter: where it is read and its wv_db_field (weave/schema.h),
 * the descriptor wv_schema_param validates it with: name, type (INT, FLOAT,
 * BOOL, TEXT, TIME), constraints, description, example; required unless
 * it has a default_json (a path parameter always is). */
typedef struct wv_route_param {
    const char *in; /* "path", "query", "header" or "cookie" */
    const struct wv_db_field *field;
} wv_route_param;

/* One response: a status and what its body is. */
typedef struct wv_route_response {
    int status;
    const char *description;         /* NULL = the status's reason phrase */
    const struct wv_db_model *model; /* a JSON body of this model, or NULL */
    bool array;                      /* the body is an array of model */
    const char *schema;              /* or any JSON Schema (JSON text) for a free-form body */
    const char *media_type;          /* NULL = "application/json" when there is a body */
} wv_route_response;

typedef struct wv_route_info {
    const char *summary;
    const char *description;
    const char *operation_id;           /* NULL = one made from the method and pattern */
    const char *const *tags;            /* NULL-terminated, or NULL */
    const wv_route_param *params;       /* ended by an entry whose field is NULL, or NULL */
    const struct wv_db_model *body;     /* the request body (wv_schema_decode_body), or NULL */
    const char *body_media_type;        /* NULL = "application/json" */
    bool body_optional;                 /* else the body is required */
    const wv_route_response *responses; /* ended by status 0; NULL = 200 alone */
    bool deprecated;
    bool hidden; /* left out of the description (FastAPI's include_in_schema=False) */
} wv_route_info;

/* Attach info to the route method + pattern already added to r (pattern
 * relative to r's prefix, written as it was added; method exactly as added,
 * "*" included). A second call replaces the first; NULL removes it. 0,
 * -EINVAL (NULL method or pattern), -ENOENT (no such route; wv_errmsg says).
 * Before the server starts, from the thread that builds the router. */
int wv_route_doc(wv_router *r, const char *method, const char *pattern, const wv_route_info *info);

/* wv_route_with and wv_route_doc in one call (data may be NULL). */
int wv_route_with_info(wv_router *r, const char *method, const char *pattern, wv_handler *h,
                       void *data, const wv_route_info *info);

/* A registered route, as wv_router_each_route shows it. */
typedef struct wv_route_entry {
    const char *method;        /* as registered: "GET", "*" */
    const char *pattern;       /* the full pattern, group prefixes included */
    const wv_route_info *info; /* wv_route_doc's, or NULL */
    const wv_router *group;    /* the router or group it was added to */
} wv_route_entry;

/* Call fn for every route of r's root (all groups), in the order they
 * were added; a non-zero return of fn stops the walk and is returned.
 * 0 otherwise, -EINVAL for NULL arguments. The entry is valid during the
 * call. Not while routes are being added. */
int wv_router_each_route(const wv_router *r, int (*fn)(const wv_route_entry *e, void *arg),
                         void *arg);

/* The middleware that runs for routes added to g, outermost first (the
 * root's, then each group's down to g), as request dispatch builds it:
 * the first max of them in out[]. Returns how many there are (which may
 * exceed max). The pointers live as long as the router. */
size_t wv_router_chain(const wv_router *g, const wv_middleware **out, size_t max);

/*
 * CORS (the browser's cross-origin rules), as a middleware on r. A request
 * with an allowed Origin gets Access-Control-Allow-Origin (the origin itself,
 * or "*" when any origin is allowed and credentials are off) and Vary:
 * Origin; a preflight (OPTIONS with Access-Control-Request-Method) is
 * answered 204 with the allowed methods and headers, or 403 for an origin
 * that is not allowed. Installed on the root router it also covers 404s.
 */
typedef struct wv_cors_opts {
    const char *const *origins; /* NULL-terminated; "*" = any origin */
    const char *methods;        /* NULL = "GET, POST, PUT, PATCH, DELETE, OPTIONS" */
    const char *headers;        /* allowed request headers; NULL = whatever is asked */
    const char *expose;         /* Access-Control-Expose-Headers, or NULL */
    bool credentials;           /* Access-Control-Allow-Credentials: true */
    int max_age;                /* preflight cache, seconds; 0 = 600 */
} wv_cors_opts;

/* 0, -ENOMEM, -EINVAL (no origins, or "*" with credentials). Copied. */
int wv_cors(wv_router *r, const wv_cors_opts *opts);

/*
 * Deadline propagation, the server's end: a caller that will wait only so
 * long says so in X-Request-Timeout-Ms (whole milliseconds left, relative,
 * so the two clocks need not agree: weave's HTTP client sends it with
 * wv_httpc_req.from), and this middleware makes it the handler's deadline,
 * counted from the request's first byte. Every suspending call of the
 * handler then honours it (-ETIMEDOUT, which answers 504), and so does a
 * call it makes onwards with .from = req, which passes on what is left.
 * It never extends a deadline the fiber already has, nor past max_ms. A
 * value of 0 (the caller has given up) is answered 504 without running
 * the handler; one that is not a number of milliseconds, 400. The
 * response says the budget taken (after max_ms) as "Server-Timing:
 * deadline;dur=<ms>". Without the header nothing changes. Installed
 * outermost (wv_router_use_first), so other middleware runs under the
 * deadline too; the fiber's deadline is restored once the request is
 * answered.
 */
#define WV_DEADLINE_HEADER "X-Request-Timeout-Ms"

typedef struct wv_deadline_opts {
    /* the longest deadline a caller may ask for, in ms; 0 = no bound but
     * the handler's own (a caller asking for an hour gets its hour) */
    int64_t max_ms;
} wv_deadline_opts;

/* 0 or -ENOMEM. opts may be NULL; it is copied. */
int wv_deadline_header(wv_router *r, const wv_deadline_opts *opts);

/*
 * Load shedding: refuse at once what the shard cannot take in time. A
 * request that arrives while its shard already handles max_in_flight
 * requests (of this middleware), or while the shard's event loop runs more
 * than max_loop_lag_ms late, is answered 503 with "Retry-After: 1" and
 * {"detail":"Service Unavailable: overloaded"} without running any other
 * middleware or the handler; weave's HTTP client retries such an answer
 * after the second (within its deadline), as a load balancer would send it
 * elsewhere. Limits are per shard: each shard counts its own requests
 * (a plain counter, no atomics) and samples its own loop's lag (a fiber
 * per shard waking every 50 ms, started by the shard's first request; a
 * stall is remembered for a few samples, and one still going on counts
 * too). WebSockets and streams count as in flight while they last. The
 * exempt paths are never refused nor counted: probes and scrapes must see
 * an overloaded service. Each refusal counts in
 * weave_http_shed_total{reason="in_flight|loop_lag"} (the default
 * registry); refused requests run no other middleware, so
 * http_requests_total does not see them when this is outermost.
 * Installed outermost (wv_router_use_first): install it after the other
 * middleware that must not run for a refused request. wv_app installs it
 * from --max-in-flight and --max-loop-lag-ms.
 */
typedef struct wv_shed_opts {
    int64_t max_in_flight;     /* per shard; 0 = no bound */
    int64_t max_loop_lag_ms;   /* 0 = no bound */
    const char *const *exempt; /* NULL-terminated exact paths; NULL =
                                * "/healthz", "/readyz", "/metrics" */
} wv_shed_opts;

/* 0; -EINVAL (no router, a negative limit, or both limits 0; wv_errmsg
 * says); -ENOMEM. opts and the strings are copied. */
int wv_shed(wv_router *r, const wv_shed_opts *opts);

/* -------------------------------------------------------------- server */

typedef enum wv_access_log {
    WV_ACCESS_LOG_OFF,
    WV_ACCESS_LOG_COMMON,
    WV_ACCESS_LOG_JSON
} wv_access_log;

typedef struct wv_http_opts {
    const char *host;          /* NULL = "0.0.0.0" */
    int port;                  /* 0 = any free port (see bound_port) */
    int backlog;               /* 0 = 4096 */
    size_t max_request_line;   /* 0 = 8 KiB; longer: 414 */
    size_t max_head;           /* 0 = 64 KiB of request line + headers; more: 431 */
    int max_headers;           /* 0 = 100; more: 431 */
    size_t max_body;           /* 0 = 1 MiB; a larger declared body: 413 before reading it */
    int64_t header_timeout_ms; /* 0 = 10 s to receive a request head, else 408 */
    int64_t body_timeout_ms;   /* 0 = 30 s to receive a body, else 408 */
    int64_t idle_timeout_ms;   /* 0 = 60 s between keep-alive requests, then closed */
    int64_t drain_timeout_ms;  /* 0 = 10 s for requests in flight at shutdown */
    int max_connections;       /* per shard; 0 = 10000; at the cap accept waits */
    const char *server_name;   /* the Server header; NULL = "weave" */
    wv_access_log access_log;  /* one line per request to stderr */
    bool no_compression;       /* else bodies >= 1 KiB of text types are sent
                                * br, zstd or gzip per Accept-Encoding */
    wv_tls_ctx *tls;           /* serve HTTPS with this server context
                                * (wv_tls_ctx_server); NULL = plain HTTP. The
                                * handshake must finish within header_timeout_ms */
    void *context;             /* what wv_req_context returns (a wv_app, its clients) */
    bool no_h2;                /* serve HTTP/1.1 only: no h2c preface sniffing, and a
                                * TLS connection that negotiated "h2" is closed. HTTP/2
                                * is on by default; over TLS it needs "h2" in the
                                * context's ALPN list ("h2,http/1.1") */
    int h2_max_streams;        /* HTTP/2: concurrent streams per connection; 0 = 100 */
    int *bound_port;           /* if set, receives the port once listening */
    wv_event *ready;           /* if set, set once every shard listens */
} wv_http_opts;

/* Serve r on every shard until wv_stop(), then drain and return 0. Call it
 * from a fiber (typically the main one). Errors: -EADDRINUSE etc. when the
 * socket cannot be bound (wv_errmsg says which address). */
int wv_http_serve(wv_router *r, const wv_http_opts *opts);

/* Connections open on the calling shard, every server's together
 * (WebSockets included). */
int64_t wv_http_connections(void);

/* ------------------------------------------------------------- request */

wv_str wv_req_method(const wv_req *req);
wv_str wv_req_target(const wv_req *req); /* as sent: path and query */
wv_str wv_req_path(const wv_req *req);   /* still percent-encoded */
wv_str wv_req_query(const wv_req *req);  /* without '?'; empty if none */
int wv_req_version(const wv_req *req);   /* 11 for HTTP/1.1, 10 for HTTP/1.0, 20 for HTTP/2 */

/* The matched route's pattern ("/users/{id}"), for logs and metrics; empty
 * for 404s. */
wv_str wv_req_route(const wv_req *req);

/* The first header of that name (case-insensitive); .p is NULL if absent. */
wv_str wv_req_header(const wv_req *req, const char *name);

/* A trailer field the client sent after the request body (case-insensitive
 * name; .p is NULL if absent): over HTTP/2 a HEADERS frame ending the
 * stream, over HTTP/1.1 the fields after a chunked body's last chunk (at
 * most max_head bytes of them, or the body's read fails with -EMSGSIZE).
 * Known once the body has been read to its end: after wv_req_read returned
 * 0 or wv_req_body returned; before that, and for a body left unread, none.
 * The value stays valid for the request's life. */
wv_str wv_req_trailer(const wv_req *req, const char *name);

/* Header count and the i-th header, in arrival order. */
int wv_req_header_count(const wv_req *req);
void wv_req_header_at(const wv_req *req, int i, wv_str *name, wv_str *value);

/* A path parameter, percent-decoded. 0 or -ENOENT. */
int wv_req_param(wv_req *req, const char *name, wv_str *out);

/* A path parameter as an integer: 0, -ENOENT, or -EINVAL with wv_errmsg()
 * naming it (return that to answer 400). */
int wv_req_param_i64(wv_req *req, const char *name, int64_t *out);

/* A query parameter (first occurrence), decoded ('+' is a space). 0 or
 * -ENOENT. */
int wv_req_query_param(wv_req *req, const char *name, wv_str *out);

/* A query parameter as an integer; `def` when absent. 0 or -EINVAL
 * (wv_errmsg names it). */
int wv_req_query_i64(wv_req *req, const char *name, int64_t def, int64_t *out);

/* Read the whole body (at most max_body; Content-Length or chunked).
 * Suspends. 0, -EMSGSIZE (413), -ETIMEDOUT (408), -EPROTO (bad chunked
 * framing: 400), -ECONNRESET. The body stays valid until the handler
 * returns. */
int wv_req_body(wv_req *req, wv_str *out);

/* Stream the body instead: bytes read (0 at its end) or an error as above.
 * For uploads larger than max_body; nothing is buffered whole. */
ssize_t wv_req_read(wv_req *req, void *buf, size_t n);

/* The time the whole body may take to arrive, counted from now, in place
 * of the server's body_timeout_ms (30 s by default): a handler streaming a
 * large upload gives it longer. 0, or -EINVAL for ms <= 0. */
int wv_req_body_timeout(wv_req *req, int64_t ms);

/* The request id: the X-Request-Id sent by the client when it is sane,
 * else a generated one; echoed in the response. */
wv_str wv_req_id(const wv_req *req);

/* The peer's address ("127.0.0.1:53122", "[::1]:53122"). */
const char *wv_req_peer(const wv_req *req);

/* The port the request came in on: the server's own, also when it was
 * started on port 0 (a service calling itself). -errno if the socket
 * cannot say. */
int wv_req_local_port(const wv_req *req);

/* When the request's first byte arrived (wv_now()'s clock). */
int64_t wv_req_start(const wv_req *req);

/* Did it come over TLS (HTTPS)? */
bool wv_req_is_tls(const wv_req *req);

/* The `data` given to wv_route_with for the matched route (else NULL). */
void *wv_req_data(const wv_req *req);

/* The server's wv_http_opts.context (NULL when none was given). */
void *wv_req_context(const wv_req *req);

/* Memory that lives until the response is done. NULL on OOM. */
void *wv_req_alloc(wv_req *req, size_t n);

/*
 * Per-request state a middleware leaves for the handler (the claims of a
 * verified token, the name of an API key), like Starlette's request.state.
 * `key` is any address the middleware owns (a static variable's), so two
 * middlewares never collide. Setting a key again replaces its value, the
 * old one freed. free_fn, if set, is called with the value when the
 * request's memory is released, after the response is done. 0, or -ENOMEM
 * (free_fn(value) is then called at once). From the request's fiber only.
 */
int wv_req_state_set(wv_req *req, const void *key, void *value, void (*free_fn)(void *value));

/* The value set under key for this request, or NULL. */
void *wv_req_state(const wv_req *req, const void *key);

/* -------------------------------------------------------------- response */

/* Add a response header. -EINVAL if name is not a token or either holds
 * CR, LF or NUL (header injection); -EALREADY once the head was sent. */
int wv_res_header(wv_res *res, const char *name, const char *value);

/* The whole response in one call. content_type may be NULL (none). */
int wv_res_send(wv_res *res, int status, const char *content_type, const void *body, size_t n);

/* text/plain; charset=utf-8 */
int wv_res_text(wv_res *res, int status, const char *text);

/* application/json (the text must already be JSON) */
int wv_res_json(wv_res *res, int status, const char *json);

/*
 * A JSON response written with weave's streaming writer straight into the
 * response:
 *     wv_json *j = wv_res_json_writer(res);
 *     wv_json_object_begin(j); wv_json_key(j, "id"); wv_json_int(j, 7);
 *     wv_json_object_end(j);
 *     return wv_res_json_send(res, 200);
 * The writer lives as long as the response. wv_res_json_send answers 500
 * (and returns -EINVAL) if the document is unbalanced or a write failed.
 */
wv_json *wv_res_json_writer(wv_res *res);
int wv_res_json_send(wv_res *res, int status);

/* An error response for a negative errno, as JSON {"detail": ...}:
 * -EINVAL 400, -EACCES 403, -EPERM 403, -ENOENT 404, -EEXIST 409,
 * -EMSGSIZE 413, -ERANGE 422, -EAGAIN 429, -ETIMEDOUT 504,
 * -ECANCELED 503, -ECONNREFUSED 502, -EHOSTUNREACH 502, other 500. The
 * detail is wv_errmsg() when set, else the status's reason. */
int wv_res_error(wv_res *res, int err);

/* The status wv_res_error uses for err. */
int wv_http_status_for(int err);

/* 301/302/303/307/308 with Location. */
int wv_res_redirect(wv_res *res, int status, const char *location);

typedef struct wv_cookie {
    const char *path;   /* NULL = none */
    const char *domain; /* NULL = none */
    int64_t max_age;    /* seconds; 0 = session cookie, < 0 = delete */
    bool secure, http_only;
    const char *same_site; /* "Strict", "Lax", "None" or NULL */
} wv_cookie;

/* Set-Cookie. -EINVAL for a bad name or value characters. opts may be NULL. */
int wv_res_cookie(wv_res *res, const char *name, const char *value, const wv_cookie *opts);

/* Streamed response: chunked on HTTP/1.1 (close-delimited on 1.0). Each
 * write is sent at once (suspending while the peer is slow); end finishes.
 * -EPIPE / -ECONNRESET once the peer has gone. */
int wv_res_begin(wv_res *res, int status, const char *content_type);
int wv_res_write(wv_res *res, const void *data, size_t n);
int wv_res_end(wv_res *res);

/*
 * A trailer field, sent after the body (gRPC's grpc-status and
 * grpc-message go this way). Call it any time before the response ends:
 * before wv_res_send, or between wv_res_begin* and wv_res_end (which a
 * handler returning 0 calls for it). Over HTTP/2 the trailers are a
 * HEADERS frame with END_STREAM after the last DATA, whatever the body's
 * framing. Over HTTP/1.1 they follow the last chunk of a chunked body
 * (wv_res_begin) when the request said "TE: trailers", and are dropped
 * otherwise (a whole or Content-Length body has no place for them, and
 * a client that did not ask may not expect them). A response to HEAD
 * drops them. -EINVAL for a bad name, a value with CR, LF or NUL, or a
 * field a trailer must not carry (content-length, content-type, host,
 * te, trailer, transfer-encoding, set-cookie, connection-specific ones);
 * -EALREADY once the response has ended.
 *
 * A response with no body whose fields are all in its head (gRPC's
 * "trailers-only" error) needs nothing of this: wv_res_header then
 * wv_res_send(res, 200, "application/grpc", NULL, 0) is one HEADERS
 * frame with END_STREAM over HTTP/2. Trailers set on an empty body keep
 * the stream open past the head and close it with them instead.
 */
int wv_res_trailer(wv_res *res, const char *name, const char *value);

/* A streamed response whose length is known (a file, an object from
 * storage): sent with Content-Length, not chunked. A write past `length`
 * is refused (-EMSGSIZE, nothing sent); ending it short is -EIO and closes
 * the connection, so the client sees a cut body.
 *
 * Whatever the framing, a handler that returns an error after
 * wv_res_begin* has sent the head ends the connection without finishing
 * the body (no last chunk): a client never takes a broken stream for a
 * whole one. */
int wv_res_begin_length(wv_res *res, int status, const char *content_type, int64_t length);

/* Server-Sent Events (text/event-stream). `event` may be NULL; multi-line
 * data is split into data: lines. */
int wv_res_sse_begin(wv_res *res);
int wv_res_sse_send(wv_res *res, const char *event, const char *data);

/*
 * Send a file with sendfile: Content-Type from its extension, ETag and
 * Last-Modified with 304 for If-None-Match / If-Modified-Since, a single
 * Range as 206 (416 when unsatisfiable), HEAD without the body. -ENOENT
 * when missing (404), -EACCES for what is not a regular file (403).
 * Opening and sending assume a local file system whose hot files are in the
 * page cache, as nginx does without aio.
 */
int wv_res_file(wv_res *res, const char *path);

/* Serve the files under `dir` at `prefix` ("/static"): GET and HEAD of
 * prefix/{path...}; "index.html" for a directory; any ".." segment, NUL or
 * symlink leading outside `dir` is refused (404). 0, -ENOENT if dir does
 * not exist, -EINVAL for a bad prefix. */
int wv_static(wv_router *r, const char *prefix, const char *dir);

/* The Content-Type weave uses for a file name ("text/css; charset=utf-8"). */
const char *wv_mime_type(const char *path);

/* Run fn(arg) once the handler has returned and its response is done,
 * whatever happened (an error, a cancelled fiber): cleanup that belongs
 * after the handler, while the connection is still open. One per
 * response: a second call replaces the first. */
void wv_res_on_done(wv_res *res, void (*fn)(void *arg), void *arg);

/*
 * Switch the connection to another protocol (RFC 9110 7.8; WebSocket,
 * h2c): send "101 Switching Protocols" with the headers set on res
 * (Upgrade, ...) and hand the handler the connection as a stream, plus the
 * bytes the client sent behind this request's head, appended to *rest
 * (they belong to the new protocol). From here the stream is the
 * handler's to read and write until it returns; HTTP then closes it,
 * half-closing first and draining what the peer still sends, so do not
 * close it yourself. The request's strings stay valid until the handler
 * returns. At shutdown the stream is interrupted (wv_stream_interrupt:
 * reads return -EBADF while wv_stopping() is true) so the protocol can say
 * goodbye. -EALREADY once a response was started, -ENOMEM, or the
 * write's error; -EPROTONOSUPPORT over HTTP/2 (it has no Upgrade).
 */
int wv_res_upgrade(wv_res *res, wv_stream **stream, wv_buf *rest);

/* Has the response (or its head) been sent? */
bool wv_res_started(const wv_res *res);

/* The status sent (0 before). */
int wv_res_status(const wv_res *res);

/* ---------------------------------------- another protocol's requests */

/*
 * The seam through which a protocol that carries HTTP's requests in its own
 * framing (HTTP/2, src/h2) serves a server's routes: the HTTP server hands
 * it a connection (wv_h2_serve in weave/h2.h gets a wv_http_conn), and it
 * runs each request with wv_http_exchange_run, giving the request's parts
 * and the calls that move its bodies. Handlers, middleware, errors, access
 * logs and limits are the HTTP server's, exactly as over HTTP/1.1.
 */
typedef struct wv_http_conn wv_http_conn; /* a server connection, opaque */

typedef struct wv_http_field {
    wv_str name, value;
} wv_http_field;

typedef struct wv_http_exchange_ops {
    /* The request body: bytes read (suspending while none are there), 0
     * at its end, or an error (-ECONNRESET: the peer cancelled). */
    ssize_t (*read)(void *x, void *buf, size_t n);
    /* The response head: the status and header fields (lower-case names,
     * no connection-specific fields). end: no body follows. */
    int (*head)(void *x, int status, const wv_http_field *fields, int nfields, bool end);
    /* Body bytes: taken once buffered (suspending while the peer's flow
     * control holds the stream's buffer full), or an error. */
    int (*write)(void *x, const void *data, size_t n);
    /* The body is complete. */
    int (*end)(void *x);
    /* The body stopped midway: the peer must see it cut, never whole. */
    void (*abort)(void *x);
    /* The body is complete and these trailer fields (lower-case names,
     * copied before it returns) end it, in place of end. NULL: the
     * protocol takes no trailers; end is called and they are dropped. */
    int (*trailers)(void *x, const wv_http_field *fields, int nfields);
    /* The request's trailer field of that name (any case), asked only once
     * read has returned 0; .p NULL when absent. The value stays valid until
     * wv_http_exchange_run returns. NULL: the protocol keeps none. */
    wv_str (*trailer)(void *x, const char *name);
} wv_http_exchange_ops;

typedef struct wv_http_exchange {
    wv_str method, target, authority; /* target: path and query */
    const wv_http_field *headers;     /* in arrival order; they stay valid
                                       * until wv_http_exchange_run returns */
    int nheaders;
    int64_t content_length; /* -1 when not declared */
    bool no_body;           /* the request ended with its head */
    int version;            /* what wv_req_version answers: 20 */
    const wv_http_exchange_ops *ops;
    void *x; /* the ops' first argument */
} wv_http_exchange;

/* Run one request on conn's server: route, middleware, handler, the
 * response through ex->ops, the access log. Returns once the handler has
 * returned and the response has been ended (or aborted). Call it from a
 * fiber of the connection's shard, one per request; several may run on one
 * connection at once. */
void wv_http_exchange_run(wv_http_conn *conn, const wv_http_exchange *ex);

/* Run fn(arg) when the server begins its graceful stop (it stops
 * accepting; requests in flight get drain_timeout_ms): the protocol says
 * goodbye (HTTP/2's GOAWAY) and finishes what is in flight. One per
 * connection; NULL clears it. */
void wv_http_conn_on_stop(wv_http_conn *conn, void (*fn)(void *arg), void *arg);

/* The server's limits, for the protocol's own settings. */
typedef struct wv_http_conn_limits {
    size_t max_head;           /* a request's header bytes */
    int max_headers;           /* a request's header count */
    int max_streams;           /* requests in flight on one connection */
    int64_t header_timeout_ms; /* a new connection's first request */
    int64_t idle_timeout_ms;   /* a connection with nothing in flight */
    int64_t body_timeout_ms;   /* a request body's silence (and, over HTTP/2, a
                                * connection's whose streams all wait on the peer) */
} wv_http_conn_limits;

void wv_http_conn_limits_of(const wv_http_conn *conn, wv_http_conn_limits *out);

#ifdef __cplusplus
}
#endif

#endif
