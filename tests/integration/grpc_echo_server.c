/*
 * The server tests/integration/test_grpc_server.py calls with grpcio:
 * grpc_echo/echo.proto's Echo service on weave's gRPC server, over h2c
 * (TLS too when TLS_CERT and TLS_KEY name a certificate and its key).
 *
 *   Unary         the request's text back; sleep_ms first; status/message
 *                 end it with that status; metadata x-echo-initial comes
 *                 back as a header, x-echo-trailing-bin as a trailer, and
 *                 the grpc-timeout the server saw as x-seen-timeout
 *   ServerStream  `count` replies (index 0..count-1), sleep_ms before each
 *   ClientStream  one reply: the texts joined by ",", index = how many
 *   Bidi          a reply per request as it comes, status ends it
 *   Stats         "cancelled=C deadline=D": handlers whose wait ended
 *                 with -ECANCELED / -ETIMEDOUT so far
 *   Missing       no handler: UNIMPLEMENTED
 *   SetHealth     wv_grpc_health_set(text, status) for grpc.health.v1,
 *                 which the server also serves, with server reflection
 *
 * PORT (0 = any; "listening on PORT" is printed), COMPRESS=1 to gzip
 * replies for clients that accept it, MAX_RECV bytes per request message.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "echo.pb-c.h"
#include "weave/grpc.h"
#include "weave/http.h"
#include "weave/rt.h"

static int cancelled, deadline;

/* Wait as asked, counting how such waits end. */
static int nap(int ms)
{
    if (ms <= 0)
        return 0;
    int rc = wv_sleep_ms(ms);
    if (rc == -ECANCELED)
        __atomic_add_fetch(&cancelled, 1, __ATOMIC_RELAXED);
    if (rc == -ETIMEDOUT)
        __atomic_add_fetch(&deadline, 1, __ATOMIC_RELAXED);
    return rc;
}

static void fill(wv_grpc_call *call, const Weave__Test__EchoRequest *req,
                 Weave__Test__EchoReply *out, int index)
{
    out->text = wv_grpc_printf(call, "%s", req->text);
    out->index = index;
    if (req->reply_size > 0) {
        uint8_t *p = wv_grpc_alloc(call, (size_t)req->reply_size);
        if (p)
            memset(p, 'w', (size_t)req->reply_size);
        out->payload = (ProtobufCBinaryData){p ? (size_t)req->reply_size : 0, p};
    } else {
        out->payload = req->payload;
    }
}

static int unary(wv_grpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Weave__Test__EchoRequest *req = (const Weave__Test__EchoRequest *)in;
    wv_str v;
    if (wv_grpc_metadata(call, "x-echo-initial", &v) == 0)
        wv_grpc_header(call, "x-echo-initial", v.p, v.n);
    if (wv_grpc_metadata(call, "x-echo-trailing-bin", &v) == 0)
        wv_grpc_trailer(call, "x-echo-trailing-bin", v.p, v.n);
    if (wv_grpc_metadata(call, "grpc-timeout", &v) == 0)
        wv_grpc_header(call, "x-seen-timeout", v.p, v.n);
    int rc = nap(req->sleep_ms);
    if (rc < 0)
        return rc;
    if (req->status)
        return wv_grpc_fail(call, req->status, "%s", req->message);
    fill(call, req, (Weave__Test__EchoReply *)out, 0);
    return 0;
}

static int server_stream(wv_grpc_call *call)
{
    ProtobufCMessage *m;
    int rc = wv_grpc_recv(call, &m);
    if (rc <= 0)
        return rc < 0 ? rc : wv_grpc_fail(call, WV_GRPC_INTERNAL, "no request");
    const Weave__Test__EchoRequest *req = (const Weave__Test__EchoRequest *)m;
    for (int i = 0; i < req->count; i++) {
        if ((rc = nap(req->sleep_ms)) < 0)
            return rc;
        Weave__Test__EchoReply out = WEAVE__TEST__ECHO_REPLY__INIT;
        fill(call, req, &out, i);
        if ((rc = wv_grpc_send(call, &out.base)) < 0)
            return rc;
    }
    if (req->status)
        return wv_grpc_fail(call, req->status, "%s", req->message);
    return 0;
}

static int client_stream(wv_grpc_call *call)
{
    wv_buf texts = {0};
    int n = 0, rc;
    ProtobufCMessage *m;
    while ((rc = wv_grpc_recv(call, &m)) > 0) {
        const Weave__Test__EchoRequest *req = (const Weave__Test__EchoRequest *)m;
        if (n++ > 0)
            wv_buf_append(&texts, ",", 1);
        wv_buf_append(&texts, req->text, strlen(req->text));
    }
    if (rc == 0) {
        Weave__Test__EchoReply out = WEAVE__TEST__ECHO_REPLY__INIT;
        out.text = wv_grpc_printf(call, "%.*s", (int)texts.n, texts.n ? texts.p : "");
        out.index = n;
        rc = wv_grpc_send(call, &out.base);
    }
    wv_buf_free(&texts);
    return rc;
}

static int bidi(wv_grpc_call *call)
{
    int n = 0, rc;
    ProtobufCMessage *m;
    while ((rc = wv_grpc_recv(call, &m)) > 0) {
        const Weave__Test__EchoRequest *req = (const Weave__Test__EchoRequest *)m;
        if ((rc = nap(req->sleep_ms)) < 0)
            return rc;
        if (req->status)
            return wv_grpc_fail(call, req->status, "%s", req->message);
        Weave__Test__EchoReply out = WEAVE__TEST__ECHO_REPLY__INIT;
        fill(call, req, &out, n++);
        if ((rc = wv_grpc_send(call, &out.base)) < 0)
            return rc;
    }
    return rc;
}

static int stats(wv_grpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    (void)in;
    ((Weave__Test__EchoReply *)out)->text = wv_grpc_printf(
        call, "cancelled=%d deadline=%d", __atomic_load_n(&cancelled, __ATOMIC_RELAXED),
        __atomic_load_n(&deadline, __ATOMIC_RELAXED));
    return 0;
}

static int set_health(wv_grpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    (void)call, (void)out;
    const Weave__Test__EchoRequest *req = (const Weave__Test__EchoRequest *)in;
    return wv_grpc_health_set(req->text, req->status);
}

static const wv_grpc_method echo_methods[] = {
    {"Unary", .unary = unary},
    {"ServerStream", .stream = server_stream},
    {"ClientStream", .stream = client_stream},
    {"Bidi", .stream = bidi},
    {"Stats", .unary = stats},
    {"SetHealth", .unary = set_health},
};

typedef struct announce {
    wv_event *ready;
    int *port;
} announce;

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
    const char *compress = getenv("COMPRESS"), *max_recv = getenv("MAX_RECV");
    wv_grpc_service_opts so = {
        .compress = compress && !strcmp(compress, "1"),
        .max_recv = max_recv ? (size_t)strtoull(max_recv, NULL, 10) : 0,
    };
    if (wv_grpc_service(r, &weave__test__echo__descriptor, echo_methods,
                        sizeof echo_methods / sizeof *echo_methods, &so) < 0 ||
        wv_grpc_health(r) < 0 || wv_grpc_reflection(r) < 0) {
        fprintf(stderr, "grpc_echo_server: %s\n", wv_errmsg());
        return 1;
    }
    int port = 0;
    const char *p = getenv("PORT");
    wv_http_opts o = {.port = p ? atoi(p) : 0, .bound_port = &port};
    const char *cert = getenv("TLS_CERT"), *key = getenv("TLS_KEY");
    if (cert && key &&
        wv_tls_ctx_server(&(wv_tls_opts){.cert_file = cert, .key_file = key, .alpn = "h2"},
                          &o.tls) < 0) {
        fprintf(stderr, "grpc_echo_server: %s\n", wv_errmsg());
        return 1;
    }
    wv_event ready = {0};
    o.ready = &ready;
    announce a = {&ready, &port};
    wv_spawn(announce_port, &a, NULL);
    int rc = wv_http_serve(r, &o);
    if (rc < 0)
        fprintf(stderr, "grpc_echo_server: %s\n", wv_errmsg());
    wv_router_free(r);
    wv_tls_ctx_free(o.tls);
    return rc < 0 ? 1 : 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    return wv_main(NULL, serve, NULL);
}
