/*
 * gRPC services on the HTTP server's routes (weave/grpc.h).
 *
 * wv_grpc_service makes a route group "/<Service>" with a route per
 * method; the group's middleware owns the service's table (freed with the
 * router). A call is one HTTP/2 request: its handler fiber reads the
 * request body as messages (wv_req_read) and writes the response body as
 * messages (wv_res_begin, wv_res_write), and the status goes in the
 * trailers, or alone in the head when nothing was sent (Trailers-Only).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"

/* A stream's body waits as long as the call's deadline allows, not the
 * HTTP server's 30 s for a request body: a streaming call may last. */
#define STREAM_BODY_MS (INT64_C(400) * 24 * 3600 * 1000)

typedef struct grpc_route {
    const ProtobufCServiceDescriptor *svc;
    const ProtobufCMethodDescriptor *method;
    wv_grpc_unary_fn *unary;
    wv_grpc_stream_fn *stream;
    const wv_grpc_service_opts *opts; /* the service's, in its table */
} grpc_route;

typedef struct grpc_service {
    wv_grpc_service_opts opts;
    size_t n;
    grpc_route routes[];
} grpc_service;

typedef struct server_call {
    wv_grpc_call c; /* first: the ops get a wv_grpc_call * */
    const grpc_route *route;
    wv_req *req;
    wv_res *res;
    bool began; /* the response head is out */
    int status; /* set by wv_grpc_fail, else -1 */
    char *message;
    wv_buf trailers; /* "name\0value\0" pairs */
} server_call;

static server_call *sc_of(wv_grpc_call *c)
{
    return (server_call *)c;
}

/* ------------------------------------------------------------- the ops */

static ssize_t server_read(wv_grpc_call *c, void *buf, size_t n)
{
    return wv_req_read(sc_of(c)->req, buf, n);
}

static int server_write(wv_grpc_call *c, const void *p, size_t n)
{
    server_call *sc = sc_of(c);
    if (!sc->began) {
        if (c->send_gzip)
            wv_res_header(sc->res, "grpc-encoding", "gzip");
        int rc = wv_res_begin(sc->res, 200, "application/grpc");
        if (rc < 0)
            return rc;
        sc->began = true;
    }
    return wv_res_write(sc->res, p, n);
}

static const grpc_call_ops server_ops = {.read = server_read, .write = server_write};

/* ------------------------------------------------------------ metadata */

/* Check a metadata field to send and give its value as it goes on the
 * wire (base64 for -bin, in the call's memory). */
static int md_value(wv_grpc_call *call, const char *name, const void *value, size_t n,
                    const char **wire)
{
    size_t nn = strlen(name);
    if (grpc_metadata_check_name(name, nn) < 0)
        return wv_fail(-EINVAL, "gRPC metadata: %s is not a name that may be sent", name);
    if (grpc_metadata_is_binary(name, nn)) {
        char *b = wv_grpc_alloc(call, grpc_base64_encoded_len(n) + 1);
        if (!b)
            return -ENOMEM;
        b[grpc_base64_encode(value, n, b)] = 0;
        *wire = b;
        return 0;
    }
    if (grpc_metadata_check_value(value, n) < 0)
        return wv_fail(-EINVAL, "gRPC metadata %s: a value must be printable ASCII", name);
    char *v = wv_grpc_alloc(call, n + 1);
    if (!v)
        return -ENOMEM;
    memcpy(v, value, n);
    v[n] = 0;
    *wire = v;
    return 0;
}

int wv_grpc_header(wv_grpc_call *call, const char *name, const void *value, size_t n)
{
    if (!call->server)
        return wv_fail(-EINVAL, "gRPC: a client's metadata goes in wv_grpc_call_opts");
    server_call *sc = sc_of(call);
    if (sc->began || wv_res_started(sc->res))
        return wv_fail(-EALREADY, "gRPC %s: the response headers are already sent", call->path);
    const char *wire;
    int rc = md_value(call, name, value, n, &wire);
    return rc < 0 ? rc : wv_res_header(sc->res, name, wire);
}

int wv_grpc_trailer(wv_grpc_call *call, const char *name, const void *value, size_t n)
{
    if (!call->server)
        return wv_fail(-EINVAL, "gRPC: a client sends no trailers");
    server_call *sc = sc_of(call);
    const char *wire;
    int rc = md_value(call, name, value, n, &wire);
    if (rc < 0)
        return rc;
    if (wv_buf_append(&sc->trailers, name, strlen(name) + 1) < 0 ||
        wv_buf_append(&sc->trailers, wire, strlen(wire) + 1) < 0)
        return -ENOMEM;
    return 0;
}

int wv_grpc_fail(wv_grpc_call *call, int code, const char *fmt, ...)
{
    if (code < 0 || code >= GRPC_CODE_COUNT)
        code = WV_GRPC_UNKNOWN;
    char *msg = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        if (n >= 0 && (msg = wv_grpc_alloc(call, (size_t)n + 1))) {
            va_start(ap, fmt);
            vsnprintf(msg, (size_t)n + 1, fmt, ap);
            va_end(ap);
        }
    }
    if (call->server) {
        server_call *sc = sc_of(call);
        sc->status = code;
        sc->message = msg;
    }
    int err = grpc_code_to_errno(code);
    return msg ? wv_fail(err, "%s", msg) : err;
}

void *wv_grpc_data(const wv_grpc_call *call)
{
    return call->server ? ((const server_call *)call)->route->opts->data : NULL;
}

wv_req *wv_grpc_req(const wv_grpc_call *call)
{
    return call->server ? ((const server_call *)call)->req : NULL;
}

/* ---------------------------------------------------------- the status */

/* The status and trailing metadata: in the trailers after the messages,
 * or, when no message went out, in the head alone (Trailers-Only). */
static int finish(server_call *sc, int rc)
{
    int code = sc->status >= 0 ? sc->status : grpc_code_from_errno(rc);
    const char *text = sc->status >= 0 ? sc->message : rc < 0 ? wv_errmsg() : NULL;
    if (code != WV_GRPC_OK && (!text || !*text))
        text = strerror(rc < 0 ? -rc : EIO);
    if (code == WV_GRPC_OK)
        text = NULL;
    char num[4];
    snprintf(num, sizeof num, "%d", code);
    char *pct = NULL;
    if (text) {
        size_t tn = strlen(text);
        pct = wv_grpc_alloc(&sc->c, grpc_percent_encoded_len((const uint8_t *)text, tn) + 1);
        if (pct)
            pct[grpc_percent_encode((const uint8_t *)text, tn, pct)] = 0;
    }
    int (*put)(wv_res *, const char *, const char *) = sc->began ? wv_res_trailer : wv_res_header;
    put(sc->res, "grpc-status", num);
    if (pct)
        put(sc->res, "grpc-message", pct);
    for (size_t at = 0; at < sc->trailers.n;) {
        const char *name = sc->trailers.p + at;
        const char *value = name + strlen(name) + 1;
        put(sc->res, name, value);
        at = (size_t)(value + strlen(value) + 1 - sc->trailers.p);
    }
    if (sc->began)
        return 0; /* the HTTP server ends the body, then the trailers */
    return wv_res_send(sc->res, 200, "application/grpc", NULL, 0);
}

/* ---------------------------------------------------------- a call */

/* The unary shape: exactly one request message, then the handler, then
 * its response. */
static int run_unary(server_call *sc)
{
    wv_grpc_call *c = &sc->c;
    ProtobufCMessage *in;
    int rc = wv_grpc_recv(c, &in);
    if (rc == 0)
        return wv_grpc_fail(c, WV_GRPC_INTERNAL, "%s: the request message is missing", c->path);
    if (rc < 0)
        return rc;
    ProtobufCMessage *extra;
    /* the request's end; a second message is the client's mistake */
    ProtobufCMessage *keep = c->last;
    c->last = NULL;
    rc = wv_grpc_recv(c, &extra);
    c->last = keep;
    if (rc > 0) {
        protobuf_c_message_free_unpacked(extra, NULL);
        return wv_grpc_fail(c, WV_GRPC_INTERNAL, "%s: a unary call got more than one request",
                            c->path);
    }
    if (rc < 0)
        return rc;
    ProtobufCMessage *out = wv_grpc_alloc(c, c->send_type->sizeof_message);
    if (!out)
        return -ENOMEM;
    protobuf_c_message_init(c->send_type, out);
    rc = sc->route->unary(c, in, out);
    if (rc < 0 || sc->status >= 0)
        return rc;
    return wv_grpc_send(c, out);
}

static int header_is(wv_req *req, const char *name, wv_str *v)
{
    *v = wv_req_header(req, name);
    return v->p != NULL;
}

static int grpc_handle(wv_req *req, wv_res *res)
{
    const grpc_route *route = wv_req_data(req);
    if (wv_req_version(req) != 20)
        return wv_res_text(res, 505, "gRPC needs HTTP/2\n");
    wv_str ct = wv_req_header(req, "content-type");
    if (ct.n < 16 || memcmp(ct.p, "application/grpc", 16) != 0 ||
        (ct.n > 16 && ct.p[16] != '+' && ct.p[16] != ';'))
        return wv_res_text(res, 415, "gRPC wants content-type application/grpc\n");

    server_call sc = {.route = route, .req = req, .res = res, .status = -1};
    wv_grpc_call *c = &sc.c;
    c->ops = &server_ops;
    int rc = grpc_call_init(c, route->svc, route->method, true, route->opts->max_recv,
                            route->opts->max_send);
    if (rc == 0) {
        wv_str v;
        int64_t old_deadline = wv_deadline();
        if (header_is(req, "grpc-timeout", &v)) {
            int64_t ns;
            if (grpc_timeout_parse(v.p, v.n, &ns) < 0) {
                rc =
                    wv_grpc_fail(c, WV_GRPC_INTERNAL, "malformed grpc-timeout %.*s", (int)v.n, v.p);
            } else {
                int64_t at = grpc_timeout_deadline(wv_now(), ns);
                if (at < old_deadline)
                    wv_deadline_set(at);
            }
        }
        if (rc == 0 && header_is(req, "grpc-encoding", &v)) {
            int enc = grpc_encoding_parse(v.p, v.n);
            if (enc < 0) {
                wv_res_header(res, "grpc-accept-encoding", GRPC_ACCEPT_ENCODING);
                rc = wv_grpc_fail(c, WV_GRPC_UNIMPLEMENTED, "grpc-encoding %.*s is not supported",
                                  (int)v.n, v.p);
            } else {
                c->recv_enc = (grpc_encoding)enc;
            }
        }
        if (rc == 0 && route->opts->compress && header_is(req, "grpc-accept-encoding", &v) &&
            grpc_accept_encoding_has(v.p, v.n, GRPC_ENCODING_GZIP))
            c->send_gzip = true;
        int nh = wv_req_header_count(req);
        for (int i = 0; rc == 0 && i < nh; i++) {
            wv_str name, value;
            wv_req_header_at(req, i, &name, &value);
            if (grpc_call_md_add(c, name.p, name.n, value.p, value.n) < 0)
                rc = -ENOMEM;
        }
        wv_req_body_timeout(req, STREAM_BODY_MS);
        if (rc == 0)
            rc = route->unary ? run_unary(&sc) : route->stream(c);
        /* the status goes out whatever the deadline did to the handler */
        wv_deadline_set(old_deadline);
    }
    int done = finish(&sc, rc);
    grpc_call_release(c);
    wv_buf_free(&sc.trailers);
    return done < 0 && !sc.began ? done : 0;
}

static int unimplemented(wv_grpc_call *call)
{
    return wv_grpc_fail(call, WV_GRPC_UNIMPLEMENTED, "%s is not implemented", call->path);
}

/* A path no service has: UNIMPLEMENTED for a gRPC client (whose library
 * would otherwise make do with the HTTP 404), 404 for anyone else. */
static int unknown_path(wv_req *req, wv_res *res)
{
    wv_str ct = wv_req_header(req, "content-type");
    if (ct.n < 16 || memcmp(ct.p, "application/grpc", 16) != 0)
        return wv_res_text(res, 404, "not found\n");
    wv_res_header(res, "grpc-status", "12");
    wv_res_header(res, "grpc-message", "no such service or method");
    return wv_res_send(res, 200, "application/grpc", NULL, 0);
}

/* ------------------------------------------------------ registration */

static void service_free(void *arg)
{
    free(arg);
}

int wv_grpc_service(wv_router *r, const ProtobufCServiceDescriptor *svc,
                    const wv_grpc_method *methods, size_t n, const wv_grpc_service_opts *opts)
{
    if (!r || !svc || svc->magic != PROTOBUF_C__SERVICE_DESCRIPTOR_MAGIC)
        return wv_fail(-EINVAL, "wv_grpc_service: not a protobuf-c service descriptor");
    for (size_t i = 0; i < n; i++) {
        if (!grpc_method_find(svc, methods[i].name))
            return -EINVAL;
        if (!methods[i].unary == !methods[i].stream)
            return wv_fail(-EINVAL,
                           "wv_grpc_service: %s.%s needs exactly one of unary and "
                           "stream",
                           svc->name, methods[i].name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(methods[i].name, methods[j].name))
                return wv_fail(-EINVAL, "wv_grpc_service: %s.%s given twice", svc->name,
                               methods[i].name);
    }
    grpc_service *s = calloc(1, sizeof *s + svc->n_methods * sizeof *s->routes);
    if (!s)
        return -ENOMEM;
    if (opts)
        s->opts = *opts;
    s->n = svc->n_methods;
    for (unsigned k = 0; k < svc->n_methods; k++) {
        grpc_route *rt = &s->routes[k];
        rt->svc = svc;
        rt->method = &svc->methods[k];
        rt->opts = &s->opts;
        rt->stream = unimplemented;
        for (size_t i = 0; i < n; i++)
            if (!strcmp(methods[i].name, rt->method->name)) {
                rt->unary = methods[i].unary;
                rt->stream = methods[i].unary ? NULL : methods[i].stream;
            }
    }
    if (grpc_health_registered(svc->name) < 0 || grpc_reflection_listed(svc->name) < 0) {
        free(s);
        return -ENOMEM;
    }
    /* once per router; a router that has its own POST catch-all keeps it */
    int rc = wv_route(r, "POST", "/{grpc_unknown...}", unknown_path);
    if (rc < 0 && rc != -EEXIST) {
        free(s);
        return rc;
    }
    size_t plen = strlen(svc->name) + 2;
    char *prefix = malloc(plen);
    if (!prefix) {
        free(s);
        return -ENOMEM;
    }
    snprintf(prefix, plen, "/%s", svc->name);
    wv_router *g = wv_router_group(r, prefix);
    free(prefix);
    if (!g) {
        free(s);
        return -ENOMEM;
    }
    /* the group's middleware does nothing but own the table */
    rc = wv_router_use(g, &(wv_middleware){.name = "grpc", .arg = s, .free = service_free});
    if (rc < 0)
        return rc;
    for (size_t k = 0; k < s->n; k++) {
        char path[512];
        if (snprintf(path, sizeof path, "/%s", s->routes[k].method->name) >= (int)sizeof path)
            return wv_fail(-EINVAL, "wv_grpc_service: method name too long");
        rc = wv_route_with(g, "POST", path, grpc_handle, &s->routes[k]);
        if (rc < 0)
            return rc;
    }
    return 0;
}
