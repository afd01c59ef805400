/*
 * weave's peer in gRPC's interop cases (tests/integration/test_grpc_interop.py,
 * tests/integration/grpc/README.md): grpc.testing.TestService on weave's
 * gRPC server, and the cases on weave's gRPC client, with the command lines
 * of the grpcio and grpc-js peers.
 *
 *   grpc_interop_peer server --port PORT [--host H]
 *                            [--use_tls --cert_file PEM --key_file PEM]
 *   grpc_interop_peer client --server_port PORT --test_case NAME [--server_host H]
 *                            [--use_tls [--ca_file PEM] [--server_host_override NAME]]
 *   grpc_interop_peer client --list
 *
 * Flags take "--flag value" or "--flag=value". The server prints "listening
 * on PORT" once it serves and exits 0 on SIGTERM. The client prints "PASS
 * NAME" and exits 0, or "FAIL NAME: why" on stderr and exits 1; 2 for bad
 * arguments.
 *
 * --server_host_override NAME: the client connects to --server_host and
 * checks the certificate for NAME (wv_grpc_channel_opts.server_name) and
 * sends NAME as :authority, as gRPC's ssl_target_name_override does.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "empty.pb-c.h"
#include "messages.pb-c.h"
#include "test.pb-c.h"
#include "weave/grpc.h"
#include "weave/http.h"
#include "weave/net.h"
#include "weave/rt.h"

#define ECHO_INITIAL       "x-grpc-test-echo-initial"
#define ECHO_INITIAL_VALUE "test_initial_metadata_value"
#define ECHO_TRAILING      "x-grpc-test-echo-trailing-bin"

static const ProtobufCServiceDescriptor *test_service = &grpc__testing__test_service__descriptor;

/* ============================================================== server */

/* Echo Metadata: the two fields the client asks to have back. */
static void echo_metadata(wv_grpc_call *call)
{
    wv_str v;
    if (wv_grpc_metadata(call, ECHO_INITIAL, &v) == 0)
        wv_grpc_header(call, ECHO_INITIAL, v.p, v.n);
    if (wv_grpc_metadata(call, ECHO_TRAILING, &v) == 0)
        wv_grpc_trailer(call, ECHO_TRAILING, v.p, v.n);
}

/* A payload of n zero bytes, in the call's memory. */
static Grpc__Testing__Payload *zero_payload(wv_grpc_call *call, int32_t n)
{
    Grpc__Testing__Payload *p = wv_grpc_alloc(call, sizeof *p);
    if (!p)
        return NULL;
    grpc__testing__payload__init(p);
    if (n > 0) {
        p->body.data = wv_grpc_alloc(call, (size_t)n);
        if (!p->body.data)
            return NULL;
        memset(p->body.data, 0, (size_t)n);
        p->body.len = (size_t)n;
    }
    return p;
}

static bool asks_status(const Grpc__Testing__EchoStatus *s)
{
    return s && s->code != 0;
}

static int end_with(wv_grpc_call *call, const Grpc__Testing__EchoStatus *s)
{
    return wv_grpc_fail(call, s->code, "%s", s->message ? s->message : "");
}

static int empty_call(wv_grpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    (void)in, (void)out;
    echo_metadata(call);
    return 0;
}

static int unary_call(wv_grpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Grpc__Testing__SimpleRequest *req = (const Grpc__Testing__SimpleRequest *)in;
    echo_metadata(call);
    if (asks_status(req->response_status))
        return end_with(call, req->response_status);
    Grpc__Testing__Payload *p = zero_payload(call, req->response_size);
    if (!p)
        return -ENOMEM;
    ((Grpc__Testing__SimpleResponse *)out)->payload = p;
    return 0;
}

/* One response of the given size after interval_us. */
static int respond_one(wv_grpc_call *call, int32_t size, int32_t interval_us)
{
    if (interval_us > 0) {
        int rc = wv_sleep_until(wv_now() + (int64_t)interval_us * 1000);
        if (rc < 0)
            return rc;
    }
    Grpc__Testing__StreamingOutputCallResponse resp =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_RESPONSE__INIT;
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    uint8_t *body = NULL;
    if (size > 0) {
        body = calloc(1, (size_t)size);
        if (!body)
            return -ENOMEM;
        p.body = (ProtobufCBinaryData){(size_t)size, body};
    }
    resp.payload = &p;
    int rc = wv_grpc_send(call, &resp.base);
    free(body);
    return rc;
}

/* The responses a StreamingOutputCallRequest asks for, or its status. */
static int respond(wv_grpc_call *call, const Grpc__Testing__StreamingOutputCallRequest *req)
{
    if (asks_status(req->response_status))
        return end_with(call, req->response_status);
    for (size_t i = 0; i < req->n_response_parameters; i++) {
        const Grpc__Testing__ResponseParameters *rp = req->response_parameters[i];
        int rc = respond_one(call, rp->size, rp->interval_us);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int streaming_output_call(wv_grpc_call *call)
{
    echo_metadata(call);
    ProtobufCMessage *m;
    int rc = wv_grpc_recv(call, &m);
    if (rc <= 0)
        return rc < 0 ? rc : wv_grpc_fail(call, WV_GRPC_INTERNAL, "no request");
    return respond(call, (const Grpc__Testing__StreamingOutputCallRequest *)m);
}

static int streaming_input_call(wv_grpc_call *call)
{
    echo_metadata(call);
    int32_t total = 0;
    ProtobufCMessage *m;
    int rc;
    while ((rc = wv_grpc_recv(call, &m)) > 0) {
        const Grpc__Testing__StreamingInputCallRequest *req =
            (const Grpc__Testing__StreamingInputCallRequest *)m;
        if (req->payload)
            total += (int32_t)req->payload->body.len;
    }
    if (rc < 0)
        return rc;
    Grpc__Testing__StreamingInputCallResponse resp =
        GRPC__TESTING__STREAMING_INPUT_CALL_RESPONSE__INIT;
    resp.aggregated_payload_size = total;
    return wv_grpc_send(call, &resp.base);
}

static int full_duplex_call(wv_grpc_call *call)
{
    echo_metadata(call);
    ProtobufCMessage *m;
    int rc;
    while ((rc = wv_grpc_recv(call, &m)) > 0)
        if ((rc = respond(call, (const Grpc__Testing__StreamingOutputCallRequest *)m)) < 0)
            return rc;
    return rc;
}

/* What a HalfDuplexCall request asked for, kept past its wv_grpc_recv. */
typedef struct asked {
    int32_t size, interval_us;
} asked;

static int half_duplex_call(wv_grpc_call *call)
{
    echo_metadata(call);
    asked *v = NULL;
    size_t n = 0, cap = 0;
    int status = 0;
    char *message = NULL;
    ProtobufCMessage *m;
    int rc;
    while ((rc = wv_grpc_recv(call, &m)) > 0) {
        const Grpc__Testing__StreamingOutputCallRequest *req =
            (const Grpc__Testing__StreamingOutputCallRequest *)m;
        if (status)
            continue; /* nothing after a status is answered */
        if (asks_status(req->response_status)) {
            status = req->response_status->code;
            message = wv_grpc_printf(
                call, "%s", req->response_status->message ? req->response_status->message : "");
            continue;
        }
        for (size_t i = 0; i < req->n_response_parameters; i++) {
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                asked *nv = realloc(v, cap * sizeof *v);
                if (!nv) {
                    free(v);
                    return -ENOMEM;
                }
                v = nv;
            }
            v[n++] = (asked){req->response_parameters[i]->size,
                             req->response_parameters[i]->interval_us};
        }
    }
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = respond_one(call, v[i].size, v[i].interval_us);
    free(v);
    if (rc == 0 && status)
        rc = wv_grpc_fail(call, status, "%s", message ? message : "");
    return rc;
}

/* UnimplementedCall has no handler: UNIMPLEMENTED. */
static const wv_grpc_method test_methods[] = {
    {"EmptyCall", .unary = empty_call},
    {"UnaryCall", .unary = unary_call},
    {"StreamingOutputCall", .stream = streaming_output_call},
    {"StreamingInputCall", .stream = streaming_input_call},
    {"FullDuplexCall", .stream = full_duplex_call},
    {"HalfDuplexCall", .stream = half_duplex_call},
};

typedef struct server_args {
    const char *host;
    int port;
    bool tls;
    const char *cert_file, *key_file;
} server_args;

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
    const server_args *sa = arg;
    wv_router *r = wv_router_new();
    if (!r || wv_grpc_service(r, test_service, test_methods,
                              sizeof test_methods / sizeof *test_methods, NULL) < 0) {
        fprintf(stderr, "grpc_interop_peer server: %s\n", wv_errmsg());
        wv_router_free(r);
        return 1;
    }
    int port = 0;
    wv_event ready = {0};
    wv_http_opts o = {.host = sa->host, .port = sa->port, .bound_port = &port, .ready = &ready};
    if (sa->tls &&
        wv_tls_ctx_server(
            &(wv_tls_opts){.cert_file = sa->cert_file, .key_file = sa->key_file, .alpn = "h2"},
            &o.tls) < 0) {
        fprintf(stderr, "grpc_interop_peer server: TLS: %s\n", wv_errmsg());
        wv_router_free(r);
        return 1;
    }
    announce a = {&ready, &port};
    wv_spawn(announce_port, &a, NULL);
    int rc = wv_http_serve(r, &o);
    if (rc < 0)
        fprintf(stderr, "grpc_interop_peer server: %s\n", wv_errmsg());
    wv_router_free(r);
    wv_tls_ctx_free(o.tls);
    return rc < 0 ? 1 : 0;
}

/* ============================================================== client */

#define TIMEOUT_MS 30000 /* every call but timeout_on_sleeping_server's */

static wv_grpc_channel *ch;
static char why[1024]; /* the failure, for FAIL NAME: why */

static int failf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int failf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    return -1;
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            return failf(__VA_ARGS__);                                                             \
    } while (0)

/* A failed call: its status and message. */
#define CHECK_RC(rc, what)                                                                         \
    do {                                                                                           \
        int rc_ = (rc);                                                                            \
        if (rc_ < 0)                                                                               \
            return failf("%s: %s (%d): %s", what, wv_grpc_code_name(wv_grpc_code_of(rc_)), rc_,    \
                         wv_errmsg());                                                             \
    } while (0)

static const wv_grpc_call_opts call_opts = {.timeout_ms = TIMEOUT_MS};

/* A payload of n zero bytes (free body.data). */
static Grpc__Testing__Payload zeros(size_t n)
{
    Grpc__Testing__Payload p = GRPC__TESTING__PAYLOAD__INIT;
    if (n > 0) {
        p.body.data = calloc(1, n);
        p.body.len = p.body.data ? n : 0;
    }
    return p;
}

static int check_payload(const Grpc__Testing__Payload *p, size_t size, const char *what)
{
    size_t len = p ? p->body.len : 0;
    CHECK(len == size, "%s: payload body of %zu bytes, expected %zu", what, len, size);
    for (size_t i = 0; i < len; i++)
        CHECK(p->body.data[i] == 0, "%s: payload body is not all zeros (byte %zu)", what, i);
    return 0;
}

/* Ends a call that must end with status `want` (and message `msg` if not
 * NULL); rc is what the call's last wait returned. */
static int expect_end(wv_grpc_call *c, int want, const char *msg, const char *what)
{
    int code = -1;
    char *got = NULL;
    int rc = wv_grpc_call_end(c, &code, &got);
    int ok = code == want && (rc < 0 ? wv_grpc_code_of(rc) == want : want == WV_GRPC_OK) &&
             (!msg || (got && !strcmp(got, msg)));
    if (!ok)
        failf("%s: ended %s (%d) \"%s\", expected %s%s%s%s", what, wv_grpc_code_name(code), rc,
              got ? got : "", wv_grpc_code_name(want), msg ? " \"" : "", msg ? msg : "",
              msg ? "\"" : "");
    free(got);
    return ok ? 0 : -1;
}

static int empty_unary(void)
{
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
    ProtobufCMessage *resp;
    CHECK_RC(wv_grpc_unary(ch, test_service, "EmptyCall", &req.base, &resp, &call_opts),
             "EmptyCall");
    bool ok = resp->descriptor == &grpc__testing__empty__descriptor;
    wv_grpc_free(resp);
    CHECK(ok, "EmptyCall returned a message of another type");
    return 0;
}

static int large_unary(void)
{
    Grpc__Testing__SimpleRequest req = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    Grpc__Testing__Payload p = zeros(271828);
    req.response_size = 314159;
    req.payload = &p;
    ProtobufCMessage *resp;
    int rc = wv_grpc_unary(ch, test_service, "UnaryCall", &req.base, &resp, &call_opts);
    free(p.body.data);
    CHECK_RC(rc, "UnaryCall");
    rc = check_payload(((Grpc__Testing__SimpleResponse *)resp)->payload, 314159,
                       "UnaryCall response");
    wv_grpc_free(resp);
    return rc;
}

static int client_streaming(void)
{
    static const size_t sizes[] = {27182, 8, 1828, 45904};
    wv_grpc_call *c;
    CHECK_RC(wv_grpc_call_start(ch, test_service, "StreamingInputCall", &call_opts, &c),
             "StreamingInputCall start");
    int rc = 0;
    for (size_t i = 0; rc >= 0 && i < 4; i++) {
        Grpc__Testing__StreamingInputCallRequest req =
            GRPC__TESTING__STREAMING_INPUT_CALL_REQUEST__INIT;
        Grpc__Testing__Payload p = zeros(sizes[i]);
        req.payload = &p;
        rc = wv_grpc_send(c, &req.base);
        free(p.body.data);
    }
    if (rc >= 0)
        rc = wv_grpc_close_send(c);
    ProtobufCMessage *m;
    if (rc >= 0)
        rc = wv_grpc_recv(c, &m);
    if (rc < 0) {
        wv_grpc_call_end(c, NULL, NULL);
        CHECK_RC(rc, "StreamingInputCall");
    }
    int32_t total =
        rc > 0 ? ((Grpc__Testing__StreamingInputCallResponse *)m)->aggregated_payload_size : -1;
    if (rc == 0) {
        wv_grpc_call_end(c, NULL, NULL);
        return failf("StreamingInputCall: no response");
    }
    if (total != 74922) {
        wv_grpc_call_end(c, NULL, NULL);
        return failf("aggregated_payload_size %d, expected 74922", total);
    }
    rc = wv_grpc_recv(c, &m);
    if (rc != 0) {
        wv_grpc_call_end(c, NULL, NULL);
        return failf("StreamingInputCall: after the response, recv gave %d, expected the end", rc);
    }
    return expect_end(c, WV_GRPC_OK, NULL, "StreamingInputCall");
}

static int server_streaming(void)
{
    static const int32_t sizes[] = {31415, 9, 2653, 58979};
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__ResponseParameters rp[4], *rpp[4];
    for (int i = 0; i < 4; i++) {
        grpc__testing__response_parameters__init(&rp[i]);
        rp[i].size = sizes[i];
        rpp[i] = &rp[i];
    }
    req.n_response_parameters = 4;
    req.response_parameters = rpp;
    wv_grpc_call *c;
    CHECK_RC(wv_grpc_call_start(ch, test_service, "StreamingOutputCall", &call_opts, &c),
             "StreamingOutputCall start");
    int rc = wv_grpc_send(c, &req.base);
    if (rc >= 0)
        rc = wv_grpc_close_send(c);
    int n = 0;
    ProtobufCMessage *m;
    while (rc >= 0 && (rc = wv_grpc_recv(c, &m)) > 0) {
        if (n < 4) {
            char what[32];
            snprintf(what, sizeof what, "response %d", n);
            if (check_payload(((Grpc__Testing__StreamingOutputCallResponse *)m)->payload,
                              (size_t)sizes[n], what) < 0) {
                wv_grpc_call_end(c, NULL, NULL);
                return -1;
            }
        }
        n++;
    }
    if (rc < 0) {
        wv_grpc_call_end(c, NULL, NULL);
        CHECK_RC(rc, "StreamingOutputCall");
    }
    if (n != 4) {
        wv_grpc_call_end(c, NULL, NULL);
        return failf("%d responses, expected 4", n);
    }
    return expect_end(c, WV_GRPC_OK, NULL, "StreamingOutputCall");
}

/* A FullDuplexCall request asking for one response of out bytes, with a
 * payload of in zero bytes; sent on c. */
static int send_ask(wv_grpc_call *c, int32_t out, size_t in)
{
    Grpc__Testing__StreamingOutputCallRequest req =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__ResponseParameters rp = GRPC__TESTING__RESPONSE_PARAMETERS__INIT, *rpp = &rp;
    rp.size = out;
    if (out >= 0) {
        req.n_response_parameters = 1;
        req.response_parameters = &rpp;
    }
    Grpc__Testing__Payload p = zeros(in);
    req.payload = &p;
    int rc = wv_grpc_send(c, &req.base);
    free(p.body.data);
    return rc;
}

static int ping_pong(void)
{
    static const int32_t outs[] = {31415, 9, 2653, 58979};
    static const size_t ins[] = {27182, 8, 1828, 45904};
    wv_grpc_call *c;
    CHECK_RC(wv_grpc_call_start(ch, test_service, "FullDuplexCall", &call_opts, &c),
             "FullDuplexCall start");
    for (int i = 0; i < 4; i++) {
        int rc = send_ask(c, outs[i], ins[i]);
        ProtobufCMessage *m;
        if (rc >= 0)
            rc = wv_grpc_recv(c, &m);
        if (rc <= 0) {
            wv_grpc_call_end(c, NULL, NULL);
            if (rc == 0)
                return failf("the stream ended after %d responses, expected 4", i);
            CHECK_RC(rc, "FullDuplexCall");
        }
        char what[32];
        snprintf(what, sizeof what, "response %d", i);
        if (check_payload(((Grpc__Testing__StreamingOutputCallResponse *)m)->payload,
                          (size_t)outs[i], what) < 0) {
            wv_grpc_call_end(c, NULL, NULL);
            return -1;
        }
    }
    int rc = wv_grpc_close_send(c);
    ProtobufCMessage *m;
    if (rc >= 0)
        rc = wv_grpc_recv(c, &m);
    if (rc != 0) {
        wv_grpc_call_end(c, NULL, NULL);
        if (rc > 0)
            return failf("a response after the fourth, expected none");
        CHECK_RC(rc, "FullDuplexCall end");
    }
    return expect_end(c, WV_GRPC_OK, NULL, "FullDuplexCall");
}

static int empty_stream(void)
{
    wv_grpc_call *c;
    CHECK_RC(wv_grpc_call_start(ch, test_service, "FullDuplexCall", &call_opts, &c),
             "FullDuplexCall start");
    int rc = wv_grpc_close_send(c);
    ProtobufCMessage *m;
    if (rc >= 0)
        rc = wv_grpc_recv(c, &m);
    if (rc != 0) {
        wv_grpc_call_end(c, NULL, NULL);
        if (rc > 0)
            return failf("a response, expected none");
        CHECK_RC(rc, "FullDuplexCall");
    }
    return expect_end(c, WV_GRPC_OK, NULL, "FullDuplexCall");
}

static int timeout_on_sleeping_server(void)
{
    /* connected first (an EmptyCall), so that the 1 ms go to the call, not
     * to the connection, as grpcio's client waits for its channel */
    int rc = empty_unary();
    if (rc < 0)
        return failf("connecting first: %s", why);
    wv_grpc_call *c;
    rc = wv_grpc_call_start(ch, test_service, "FullDuplexCall",
                            &(wv_grpc_call_opts){.timeout_ms = 1}, &c);
    if (rc < 0) {
        CHECK(wv_grpc_code_of(rc) == WV_GRPC_DEADLINE_EXCEEDED,
              "FullDuplexCall start: %s (%d), expected DEADLINE_EXCEEDED: %s",
              wv_grpc_code_name(wv_grpc_code_of(rc)), rc, wv_errmsg());
        return 0;
    }
    rc = send_ask(c, -1, 27182);
    ProtobufCMessage *m;
    if (rc >= 0)
        rc = wv_grpc_recv(c, &m);
    if (rc >= 0) {
        wv_grpc_call_end(c, NULL, NULL);
        return failf("FullDuplexCall: recv gave %d, expected DEADLINE_EXCEEDED", rc);
    }
    if (wv_grpc_code_of(rc) != WV_GRPC_DEADLINE_EXCEEDED) {
        wv_grpc_call_end(c, NULL, NULL);
        CHECK_RC(rc, "FullDuplexCall (expected DEADLINE_EXCEEDED)");
    }
    return expect_end(c, WV_GRPC_DEADLINE_EXCEEDED, NULL, "FullDuplexCall");
}

static int cancel_after_begin(void)
{
    /* cancelled 100 ms after the start, as the other clients do (README) */
    wv_grpc_call *c;
    CHECK_RC(wv_grpc_call_start(ch, test_service, "StreamingInputCall", &call_opts, &c),
             "StreamingInputCall start");
    wv_sleep_ms(100);
    wv_grpc_cancel(c);
    ProtobufCMessage *m;
    int rc = wv_grpc_recv(c, &m);
    if (rc >= 0 || wv_grpc_code_of(rc) != WV_GRPC_CANCELLED) {
        wv_grpc_call_end(c, NULL, NULL);
        return failf("recv after the cancel gave %d (%s), expected CANCELLED", rc,
                     rc < 0 ? wv_grpc_code_name(wv_grpc_code_of(rc)) : "a message or the end");
    }
    return expect_end(c, WV_GRPC_CANCELLED, NULL, "StreamingInputCall");
}

static int cancel_after_first_response(void)
{
    wv_grpc_call *c;
    CHECK_RC(wv_grpc_call_start(ch, test_service, "FullDuplexCall", &call_opts, &c),
             "FullDuplexCall start");
    int rc = send_ask(c, 31415, 27182);
    ProtobufCMessage *m;
    if (rc >= 0)
        rc = wv_grpc_recv(c, &m);
    if (rc <= 0) {
        wv_grpc_call_end(c, NULL, NULL);
        if (rc == 0)
            return failf("the stream ended with no response");
        CHECK_RC(rc, "FullDuplexCall");
    }
    if (check_payload(((Grpc__Testing__StreamingOutputCallResponse *)m)->payload, 31415,
                      "the first response") < 0) {
        wv_grpc_call_end(c, NULL, NULL);
        return -1;
    }
    wv_grpc_cancel(c);
    rc = wv_grpc_recv(c, &m);
    if (rc >= 0 || wv_grpc_code_of(rc) != WV_GRPC_CANCELLED) {
        wv_grpc_call_end(c, NULL, NULL);
        return failf("the next read gave %d (%s), expected CANCELLED", rc,
                     rc < 0 ? wv_grpc_code_name(wv_grpc_code_of(rc)) : "a message or the end");
    }
    return expect_end(c, WV_GRPC_CANCELLED, NULL, "FullDuplexCall");
}

static int status_code_and_message(void)
{
    static const char msg[] = "test status message";
    Grpc__Testing__EchoStatus status = GRPC__TESTING__ECHO_STATUS__INIT;
    status.code = 2;
    status.message = (char *)msg;

    /* UnaryCall, by hand to have the message alone */
    Grpc__Testing__SimpleRequest ureq = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    ureq.response_status = &status;
    wv_grpc_call *c;
    CHECK_RC(wv_grpc_call_start(ch, test_service, "UnaryCall", &call_opts, &c), "UnaryCall start");
    int rc = wv_grpc_send(c, &ureq.base);
    if (rc >= 0)
        rc = wv_grpc_close_send(c);
    ProtobufCMessage *m;
    if (rc >= 0)
        rc = wv_grpc_recv(c, &m);
    if (rc >= 0) {
        wv_grpc_call_end(c, NULL, NULL);
        return failf("UnaryCall: recv gave %d, expected UNKNOWN", rc);
    }
    if (expect_end(c, WV_GRPC_UNKNOWN, msg, "UnaryCall") < 0)
        return -1;
    /* and wv_grpc_unary's return value */
    rc = wv_grpc_unary(ch, test_service, "UnaryCall", &ureq.base, &m, &call_opts);
    if (rc == 0)
        wv_grpc_free(m);
    CHECK(rc < 0 && wv_grpc_code_of(rc) == WV_GRPC_UNKNOWN,
          "wv_grpc_unary UnaryCall: %d (%s), expected UNKNOWN", rc,
          rc < 0 ? wv_grpc_code_name(wv_grpc_code_of(rc)) : "OK");
    CHECK(strstr(wv_errmsg(), msg), "wv_grpc_unary UnaryCall: wv_errmsg \"%s\" lacks \"%s\"",
          wv_errmsg(), msg);

    /* FullDuplexCall */
    Grpc__Testing__StreamingOutputCallRequest sreq =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    sreq.response_status = &status;
    CHECK_RC(wv_grpc_call_start(ch, test_service, "FullDuplexCall", &call_opts, &c),
             "FullDuplexCall start");
    rc = wv_grpc_send(c, &sreq.base);
    if (rc >= 0)
        rc = wv_grpc_close_send(c);
    if (rc >= 0)
        rc = wv_grpc_recv(c, &m);
    if (rc >= 0) {
        wv_grpc_call_end(c, NULL, NULL);
        return failf("FullDuplexCall: recv gave %d, expected UNKNOWN", rc);
    }
    return expect_end(c, WV_GRPC_UNKNOWN, msg, "FullDuplexCall");
}

static const unsigned char trailing_value[] = {0xab, 0xab, 0xab};

/* Is `name` among the response headers (not the trailers)? */
static bool in_headers(wv_grpc_call *c, const char *name)
{
    int n = wv_grpc_metadata_headers(c);
    for (int i = 0; i < n; i++) {
        wv_str fn, fv;
        wv_grpc_metadata_at(c, i, &fn, &fv);
        if (fn.n == strlen(name) && !memcmp(fn.p, name, fn.n))
            return true;
    }
    return false;
}

static int check_initial(wv_grpc_call *c, const char *what)
{
    wv_str v;
    CHECK(in_headers(c, ECHO_INITIAL), "%s: no %s in the response headers", what, ECHO_INITIAL);
    CHECK(wv_grpc_metadata(c, ECHO_INITIAL, &v) == 0, "%s: no %s in the response's metadata", what,
          ECHO_INITIAL);
    CHECK(v.n == strlen(ECHO_INITIAL_VALUE) && !memcmp(v.p, ECHO_INITIAL_VALUE, v.n),
          "%s: %s = \"%.*s\", expected \"%s\"", what, ECHO_INITIAL, (int)v.n, v.p,
          ECHO_INITIAL_VALUE);
    return 0;
}

static int check_trailing(wv_grpc_call *c, const char *what)
{
    wv_str v;
    CHECK(wv_grpc_trailing_metadata(c, ECHO_TRAILING, &v) == 0,
          "%s: no %s in the trailing metadata", what, ECHO_TRAILING);
    CHECK(!in_headers(c, ECHO_TRAILING), "%s: %s in the response headers", what, ECHO_TRAILING);
    CHECK(v.n == sizeof trailing_value && !memcmp(v.p, trailing_value, v.n),
          "%s: %s is %zu bytes, expected ab ab ab", what, ECHO_TRAILING, v.n);
    return 0;
}

/*
 * The initial echo must be in the response headers and the trailing one
 * in the trailers (wv_grpc_metadata_headers splits them). FullDuplexCall's
 * initial metadata is also checked after the first response and before
 * the half-close, when the server cannot have sent its trailers yet.
 */
static int custom_metadata(void)
{
    wv_grpc_md md[] = {
        {ECHO_INITIAL, ECHO_INITIAL_VALUE, 0},
        {ECHO_TRAILING, trailing_value, sizeof trailing_value},
    };
    wv_grpc_call_opts o = {.metadata = md, .nmetadata = 2, .timeout_ms = TIMEOUT_MS};
    Grpc__Testing__Payload p = zeros(271828);

    /* UnaryCall */
    Grpc__Testing__SimpleRequest ureq = GRPC__TESTING__SIMPLE_REQUEST__INIT;
    ureq.response_size = 314159;
    ureq.payload = &p;
    wv_grpc_call *c;
    int rc = wv_grpc_call_start(ch, test_service, "UnaryCall", &o, &c);
    if (rc < 0) {
        free(p.body.data);
        CHECK_RC(rc, "UnaryCall start");
    }
    rc = wv_grpc_send(c, &ureq.base);
    if (rc >= 0)
        rc = wv_grpc_close_send(c);
    ProtobufCMessage *m;
    if (rc >= 0)
        rc = wv_grpc_recv(c, &m);
    if (rc > 0)
        rc = check_payload(((Grpc__Testing__SimpleResponse *)m)->payload, 314159,
                           "UnaryCall response");
    else if (rc == 0)
        rc = failf("UnaryCall: no response");
    else
        rc = failf("UnaryCall: %s (%d): %s", wv_grpc_code_name(wv_grpc_code_of(rc)), rc,
                   wv_errmsg());
    if (rc >= 0 && (rc = wv_grpc_recv(c, &m)) != 0)
        rc = failf("UnaryCall: after the response, recv gave %d, expected the end", rc);
    if (rc >= 0)
        rc = check_initial(c, "UnaryCall");
    if (rc >= 0)
        rc = check_trailing(c, "UnaryCall");
    if (rc < 0) {
        wv_grpc_call_end(c, NULL, NULL);
        free(p.body.data);
        return -1;
    }
    if (expect_end(c, WV_GRPC_OK, NULL, "UnaryCall") < 0) {
        free(p.body.data);
        return -1;
    }

    /* FullDuplexCall */
    rc = wv_grpc_call_start(ch, test_service, "FullDuplexCall", &o, &c);
    if (rc < 0) {
        free(p.body.data);
        CHECK_RC(rc, "FullDuplexCall start");
    }
    Grpc__Testing__StreamingOutputCallRequest sreq =
        GRPC__TESTING__STREAMING_OUTPUT_CALL_REQUEST__INIT;
    Grpc__Testing__ResponseParameters rp = GRPC__TESTING__RESPONSE_PARAMETERS__INIT, *rpp = &rp;
    rp.size = 314159;
    sreq.n_response_parameters = 1;
    sreq.response_parameters = &rpp;
    sreq.payload = &p;
    rc = wv_grpc_send(c, &sreq.base);
    free(p.body.data);
    if (rc >= 0)
        rc = wv_grpc_recv(c, &m);
    if (rc > 0)
        rc = check_payload(((Grpc__Testing__StreamingOutputCallResponse *)m)->payload, 314159,
                           "FullDuplexCall response");
    else if (rc == 0)
        rc = failf("FullDuplexCall: no response");
    else
        rc = failf("FullDuplexCall: %s (%d): %s", wv_grpc_code_name(wv_grpc_code_of(rc)), rc,
                   wv_errmsg());
    if (rc >= 0)
        rc = check_initial(c, "FullDuplexCall");
    wv_str v;
    if (rc >= 0 && wv_grpc_metadata(c, ECHO_TRAILING, &v) == 0)
        rc = failf("FullDuplexCall: %s in the initial metadata, expected in the trailing only",
                   ECHO_TRAILING);
    if (rc >= 0)
        rc = wv_grpc_close_send(c);
    int n = 0;
    while (rc >= 0 && (rc = wv_grpc_recv(c, &m)) > 0)
        n++;
    if (rc < 0)
        rc = failf("FullDuplexCall: %s (%d): %s", wv_grpc_code_name(wv_grpc_code_of(rc)), rc,
                   wv_errmsg());
    else if (n != 0)
        rc = failf("FullDuplexCall: %d responses more, expected 1 in all", n);
    else
        rc = check_trailing(c, "FullDuplexCall");
    if (rc < 0) {
        wv_grpc_call_end(c, NULL, NULL);
        return -1;
    }
    return expect_end(c, WV_GRPC_OK, NULL, "FullDuplexCall");
}

static int expect_unimplemented(const ProtobufCServiceDescriptor *svc, const char *what)
{
    Grpc__Testing__Empty req = GRPC__TESTING__EMPTY__INIT;
    ProtobufCMessage *resp;
    int rc = wv_grpc_unary(ch, svc, "UnimplementedCall", &req.base, &resp, &call_opts);
    if (rc == 0) {
        wv_grpc_free(resp);
        return failf("%s: succeeded, expected UNIMPLEMENTED", what);
    }
    CHECK(wv_grpc_code_of(rc) == WV_GRPC_UNIMPLEMENTED, "%s: %s (%d), expected UNIMPLEMENTED: %s",
          what, wv_grpc_code_name(wv_grpc_code_of(rc)), rc, wv_errmsg());
    return 0;
}

static int unimplemented_method(void)
{
    return expect_unimplemented(test_service, "TestService/UnimplementedCall");
}

static int unimplemented_service(void)
{
    return expect_unimplemented(&grpc__testing__unimplemented_service__descriptor,
                                "UnimplementedService/UnimplementedCall");
}

static const struct {
    const char *name;
    int (*run)(void);
} cases[] = {
    {"empty_unary", empty_unary},
    {"large_unary", large_unary},
    {"client_streaming", client_streaming},
    {"server_streaming", server_streaming},
    {"ping_pong", ping_pong},
    {"empty_stream", empty_stream},
    {"timeout_on_sleeping_server", timeout_on_sleeping_server},
    {"cancel_after_begin", cancel_after_begin},
    {"cancel_after_first_response", cancel_after_first_response},
    {"status_code_and_message", status_code_and_message},
    {"custom_metadata", custom_metadata},
    {"unimplemented_method", unimplemented_method},
    {"unimplemented_service", unimplemented_service},
};
#define NCASES (sizeof cases / sizeof *cases)

static int run_case(void *arg)
{
    int (*run)(void) = arg;
    return run() < 0 ? 1 : 0;
}

/* ============================================================ arguments */

typedef struct flags {
    const char *port, *host, *use_tls, *cert_file, *key_file;               /* server */
    const char *server_host, *server_port, *test_case, *ca_file, *override; /* client */
    bool list;
} flags;

static int usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage(const char *fmt, ...)
{
    fprintf(stderr, "grpc_interop_peer: ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: grpc_interop_peer server --port PORT [--host H] [--use_tls "
                    "--cert_file PEM --key_file PEM]\n"
                    "       grpc_interop_peer client --server_port PORT --test_case NAME "
                    "[--server_host H] [--use_tls [--ca_file PEM] [--server_host_override "
                    "NAME]]\n"
                    "       grpc_interop_peer client --list\n");
    return 2;
}

/* A boolean flag's value: "true"/"1"/"yes" or "false"/"0"/"no"; absent is
 * false. */
static int parse_bool(const char *v, bool *out)
{
    if (!v)
        *out = false;
    else if (!strcmp(v, "true") || !strcmp(v, "1") || !strcmp(v, "yes"))
        *out = true;
    else if (!strcmp(v, "false") || !strcmp(v, "0") || !strcmp(v, "no"))
        *out = false;
    else
        return -1;
    return 0;
}

static int parse_flags(int argc, char **argv, flags *f)
{
    static const struct {
        const char *name;
        size_t off;
    } known[] = {
        {"port", offsetof(flags, port)},
        {"host", offsetof(flags, host)},
        {"cert_file", offsetof(flags, cert_file)},
        {"key_file", offsetof(flags, key_file)},
        {"server_host", offsetof(flags, server_host)},
        {"server_port", offsetof(flags, server_port)},
        {"test_case", offsetof(flags, test_case)},
        {"ca_file", offsetof(flags, ca_file)},
        {"server_host_override", offsetof(flags, override)},
    };
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0)
            return usage("unexpected argument %s", a);
        a += 2;
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        if (n == 4 && !strncmp(a, "list", 4) && !eq) {
            f->list = true;
            continue;
        }
        if (n == 7 && !strncmp(a, "use_tls", 7)) {
            /* --use_tls, --use_tls=BOOL, or --use_tls BOOL */
            if (eq)
                f->use_tls = eq + 1;
            else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                f->use_tls = argv[++i];
            else
                f->use_tls = "true";
            continue;
        }
        size_t k;
        for (k = 0; k < sizeof known / sizeof *known; k++)
            if (strlen(known[k].name) == n && !strncmp(known[k].name, a, n))
                break;
        if (k == sizeof known / sizeof *known)
            return usage("unknown flag %s", argv[i]);
        const char *v = eq ? eq + 1 : i + 1 < argc ? argv[++i] : NULL;
        if (!v)
            return usage("%s needs a value", argv[i]);
        *(const char **)((char *)f + known[k].off) = v;
    }
    return 0;
}

static int port_of(const char *s)
{
    char *end;
    long v = s ? strtol(s, &end, 10) : -1;
    return s && *s && !*end && v >= 0 && v <= 65535 ? (int)v : -1;
}

static int server_main(const flags *f)
{
    server_args sa = {.host = f->host ? f->host : "127.0.0.1",
                      .port = port_of(f->port),
                      .cert_file = f->cert_file,
                      .key_file = f->key_file};
    if (sa.port < 0)
        return usage("server: --port PORT is required (0 for any free port)");
    if (parse_bool(f->use_tls, &sa.tls) < 0)
        return usage("--use_tls: not a boolean: %s", f->use_tls);
    if (sa.tls && (!sa.cert_file || !sa.key_file))
        return usage("--use_tls needs --cert_file and --key_file");
    return wv_main(NULL, serve, &sa) == 0 ? 0 : 1;
}

static int client_main(const flags *f)
{
    if (f->list) {
        for (size_t i = 0; i < NCASES; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    int port = port_of(f->server_port);
    if (port <= 0 || !f->test_case)
        return usage("client: --server_port and --test_case are required");
    size_t k;
    for (k = 0; k < NCASES; k++)
        if (!strcmp(cases[k].name, f->test_case))
            break;
    if (k == NCASES)
        return usage("unknown --test_case %s", f->test_case);
    bool tls;
    if (parse_bool(f->use_tls, &tls) < 0)
        return usage("--use_tls: not a boolean: %s", f->use_tls);
    const char *host = f->server_host ? f->server_host : "127.0.0.1";
    char target[600], authority[600];
    snprintf(target, sizeof target, "%s://%s%s%s:%d", tls ? "https" : "http",
             strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "", port);
    if (f->override)
        snprintf(authority, sizeof authority, "%s:%d", f->override, port);
    ch = wv_grpc_channel_new(target,
                             &(wv_grpc_channel_opts){.ca_file = tls ? f->ca_file : NULL,
                                                     .server_name = f->override,
                                                     .authority = f->override ? authority : NULL});
    if (!ch) {
        fprintf(stderr, "FAIL %s: channel %s: %s\n", f->test_case, target, wv_errmsg());
        return 1;
    }
    int rc = wv_main(&(wv_main_opts){.shards = 1}, run_case, (void *)cases[k].run);
    wv_grpc_channel_free(ch);
    if (rc != 0) {
        fprintf(stderr, "FAIL %s: %s\n", f->test_case, why[0] ? why : "the runtime failed");
        return 1;
    }
    printf("PASS %s\n", f->test_case);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 2 || (strcmp(argv[1], "server") && strcmp(argv[1], "client")))
        return usage("the first argument is server or client");
    flags f = {0};
    int rc = parse_flags(argc, argv, &f);
    if (rc)
        return rc;
    return !strcmp(argv[1], "server") ? server_main(&f) : client_main(&f);
}
