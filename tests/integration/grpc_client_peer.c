/*
 * The C side of tests/integration/test_grpc_client.py: weave's gRPC client
 * calling the test's grpcio server (tests/integration/grpc_echo/client.proto).
 *
 *   grpc_client_peer TARGET SCENARIO [ARG...] [--ca FILE] [--gzip]
 *
 * Each scenario prints what it saw as "key value" lines on stdout, which
 * the Python side checks against what its server saw; "done" last. Exit 1
 * when a call fails in a way the scenario did not expect (with the reason
 * on stderr).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client.pb-c.h"
#include "weave/grpc.h"
#include "weave/rt.h"

static const char *target;
static const char *scenario;
static char **args;
static int nargs;
static wv_grpc_channel *ch;
static const ProtobufCServiceDescriptor *svc = &echo__echo__descriptor;

static void hex(const char *key, const void *p, size_t n)
{
    printf("%s ", key);
    for (size_t i = 0; i < n; i++)
        printf("%02x", ((const unsigned char *)p)[i]);
    printf("\n");
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "grpc_client_peer %s: %s: %d %s\n", scenario, what, rc, wv_errmsg());
    printf("error %s %d %s\n", what, wv_grpc_code_from_errno(rc), wv_errmsg());
    return 1;
}

static int arg_int(int i, int def)
{
    return i < nargs ? atoi(args[i]) : def;
}

/* ----------------------------------------------------------- scenarios */

static int unary(void)
{
    static const unsigned char bin[] = {0, 1, 2, 0xfe, 0xff, '\n', 'x'};
    wv_grpc_md md[] = {
        {"x-text", "hello there", 0},
        {"x-data-bin", bin, sizeof bin},
    };
    Echo__EchoRequest req = ECHO__ECHO_REQUEST__INIT;
    req.text = nargs > 0 ? args[0] : "hello";
    wv_grpc_call *c;
    int rc = wv_grpc_call_start(ch, svc, "Unary",
                                &(wv_grpc_call_opts){.metadata = md, .nmetadata = 2}, &c);
    if (rc < 0)
        return fail("start", rc);
    if ((rc = wv_grpc_send(c, &req.base)) < 0 || (rc = wv_grpc_close_send(c)) < 0)
        return fail("send", rc);
    ProtobufCMessage *m;
    if ((rc = wv_grpc_recv(c, &m)) != 1)
        return fail("recv", rc);
    Echo__EchoReply *r = (Echo__EchoReply *)m;
    printf("reply %s\n", r->text);
    printf("peer %s\n", r->peer);
    wv_str v;
    if (wv_grpc_metadata(c, "x-text", &v) == 0)
        printf("header x-text %.*s\n", (int)v.n, v.p);
    if (wv_grpc_metadata(c, "x-data-bin", &v) == 0)
        hex("header x-data-bin", v.p, v.n);
    if ((rc = wv_grpc_recv(c, &m)) != 0)
        return fail("recv end", rc);
    if (wv_grpc_metadata(c, "t-text", &v) == 0)
        printf("trailer t-text %.*s\n", (int)v.n, v.p);
    if (wv_grpc_metadata(c, "t-data-bin", &v) == 0)
        hex("trailer t-data-bin", v.p, v.n);
    if (wv_grpc_metadata(c, "grpc-encoding", &v) == 0)
        printf("encoding %.*s\n", (int)v.n, v.p);
    int code = -1;
    char *msg = NULL;
    rc = wv_grpc_call_end(c, &code, &msg);
    printf("end %d %d\n", rc, code);
    free(msg);
    /* and the same through wv_grpc_unary */
    ProtobufCMessage *resp;
    rc = wv_grpc_unary(ch, svc, "Unary", &req.base, &resp, NULL);
    if (rc < 0)
        return fail("unary", rc);
    printf("unary %s\n", ((Echo__EchoReply *)resp)->text);
    wv_grpc_free(resp);
    return 0;
}

/* One wv_grpc_unary of Unary(text ARG0): "once rc N code C reply TEXT". */
static int once(void)
{
    Echo__EchoRequest req = ECHO__ECHO_REQUEST__INIT;
    req.text = nargs > 0 ? args[0] : "once";
    ProtobufCMessage *resp = NULL;
    int rc = wv_grpc_unary(ch, svc, "Unary", &req.base, &resp,
                           &(wv_grpc_call_opts){.timeout_ms = 10000});
    printf("once rc %d code %d reply %s\n", rc, wv_grpc_code_from_errno(rc),
           rc == 0 ? ((Echo__EchoReply *)resp)->text : "-");
    if (rc == 0)
        wv_grpc_free(resp);
    return 0;
}

static int status(void)
{
    Echo__EchoRequest req = ECHO__ECHO_REQUEST__INIT;
    req.code = arg_int(0, 5);
    req.text = nargs > 1 ? args[1] : "nope";
    ProtobufCMessage *resp;
    int rc = wv_grpc_unary(ch, svc, "Unary", &req.base, &resp, NULL);
    printf("rc %d code %d\n", rc, wv_grpc_code_from_errno(rc));
    printf("errmsg %s\n", wv_errmsg());
    /* the message alone, through call_end */
    wv_grpc_call *c;
    if ((rc = wv_grpc_call_start(ch, svc, "Unary", NULL, &c)) < 0)
        return fail("start", rc);
    wv_grpc_send(c, &req.base);
    wv_grpc_close_send(c);
    ProtobufCMessage *m;
    rc = wv_grpc_recv(c, &m);
    printf("recv %d\n", wv_grpc_code_from_errno(rc));
    int code = -1;
    char *msg = NULL;
    rc = wv_grpc_call_end(c, &code, &msg);
    hex("message", msg ? msg : "", msg ? strlen(msg) : 0);
    printf("endcode %d\n", code);
    free(msg);
    return 0;
}

static int deadline(void)
{
    Echo__EchoRequest req = ECHO__ECHO_REQUEST__INIT;
    req.text = "slow";
    req.sleep_ms = arg_int(1, 5000);
    ProtobufCMessage *resp;
    int64_t t0 = wv_now();
    int rc = wv_grpc_unary(ch, svc, "Unary", &req.base, &resp,
                           &(wv_grpc_call_opts){.timeout_ms = arg_int(0, 500)});
    printf("rc %d code %d ms %lld\n", rc, wv_grpc_code_from_errno(rc),
           (long long)((wv_now() - t0) / 1000000));
    printf("errmsg %s\n", wv_errmsg());
    /* the fiber's own deadline, too */
    int64_t old = wv_deadline_set(wv_after_ms(arg_int(0, 500)));
    rc = wv_grpc_unary(ch, svc, "Unary", &req.base, &resp, NULL);
    wv_deadline_set(old);
    printf("fiber rc %d code %d\n", rc, wv_grpc_code_from_errno(rc));
    return 0;
}

static int slow_call(void *arg)
{
    Echo__EchoRequest req = ECHO__ECHO_REQUEST__INIT;
    req.text = arg;
    req.sleep_ms = 10000;
    ProtobufCMessage *resp;
    int rc = wv_grpc_unary(ch, svc, "Unary", &req.base, &resp, NULL);
    printf("call %s rc %d code %d\n", (char *)arg, rc, wv_grpc_code_from_errno(rc));
    fflush(stdout);
    return 0;
}

/* a fiber's cancellation, and wv_grpc_cancel */
static int cancel(void)
{
    wv_group *g = wv_group_new();
    wv_group_spawn(g, slow_call, "cancel-fiber", NULL);
    wv_sleep_ms(300);
    wv_group_cancel(g);
    wv_group_join(g);
    wv_group_free(g);

    Echo__EchoRequest req = ECHO__ECHO_REQUEST__INIT;
    req.text = "cancel-call";
    req.sleep_ms = 10000;
    wv_grpc_call *c;
    int rc = wv_grpc_call_start(ch, svc, "Unary", NULL, &c);
    if (rc < 0)
        return fail("start", rc);
    wv_grpc_send(c, &req.base);
    wv_grpc_close_send(c);
    wv_sleep_ms(300);
    wv_grpc_cancel(c);
    ProtobufCMessage *m;
    rc = wv_grpc_recv(c, &m);
    printf("recv after cancel %d code %d\n", rc, wv_grpc_code_from_errno(rc));
    rc = wv_grpc_call_end(c, NULL, NULL);
    printf("end after cancel code %d\n", wv_grpc_code_from_errno(rc));
    return 0;
}

static int server_stream(void)
{
    Echo__EchoRequest req = ECHO__ECHO_REQUEST__INIT;
    req.text = "s";
    req.count = arg_int(0, 10);
    wv_grpc_call *c;
    int rc = wv_grpc_call_start(ch, svc, "ServerStream", NULL, &c);
    if (rc < 0 || (rc = wv_grpc_send(c, &req.base)) < 0 || (rc = wv_grpc_close_send(c)) < 0)
        return fail("start", rc);
    int n = 0, in_order = 1;
    ProtobufCMessage *m;
    while ((rc = wv_grpc_recv(c, &m)) == 1) {
        if (((Echo__EchoReply *)m)->index != n)
            in_order = 0;
        n++;
    }
    printf("stream got %d in_order %d recv %d\n", n, in_order, rc);
    rc = wv_grpc_call_end(c, NULL, NULL);
    printf("end %d\n", rc);
    return 0;
}

static int client_stream(void)
{
    int count = arg_int(0, 10);
    wv_grpc_call *c;
    int rc = wv_grpc_call_start(ch, svc, "ClientStream", NULL, &c);
    if (rc < 0)
        return fail("start", rc);
    for (int i = 0; i < count; i++) {
        Echo__EchoRequest req = ECHO__ECHO_REQUEST__INIT;
        char t[16];
        snprintf(t, sizeof t, "%d,", i);
        req.text = t;
        if ((rc = wv_grpc_send(c, &req.base)) < 0)
            return fail("send", rc);
    }
    wv_grpc_close_send(c);
    ProtobufCMessage *m;
    if ((rc = wv_grpc_recv(c, &m)) != 1)
        return fail("recv", rc);
    printf("joined %s\n", ((Echo__EchoReply *)m)->text);
    rc = wv_grpc_recv(c, &m);
    printf("recv end %d\n", rc);
    printf("end %d\n", wv_grpc_call_end(c, NULL, NULL));
    return 0;
}

/* ping-pong: each reply read before the next request is sent */
static int bidi(void)
{
    int count = arg_int(0, 20);
    wv_grpc_call *c;
    int rc = wv_grpc_call_start(ch, svc, "Bidi", NULL, &c);
    if (rc < 0)
        return fail("start", rc);
    int ok = 0;
    for (int i = 0; i < count; i++) {
        Echo__EchoRequest req = ECHO__ECHO_REQUEST__INIT;
        char t[16];
        snprintf(t, sizeof t, "ping %d", i);
        req.text = t;
        if ((rc = wv_grpc_send(c, &req.base)) < 0)
            return fail("send", rc);
        ProtobufCMessage *m;
        if ((rc = wv_grpc_recv(c, &m)) != 1)
            return fail("recv", rc);
        char want[32];
        snprintf(want, sizeof want, "pong %d", i);
        if (strcmp(((Echo__EchoReply *)m)->text, want) == 0)
            ok++;
    }
    wv_grpc_close_send(c);
    ProtobufCMessage *m;
    rc = wv_grpc_recv(c, &m);
    printf("pingpong %d of %d recv end %d\n", ok, count, rc);
    printf("end %d\n", wv_grpc_call_end(c, NULL, NULL));
    return 0;
}

static int big(void)
{
    size_t size = (size_t)arg_int(0, 1000000);
    Echo__EchoRequest req = ECHO__ECHO_REQUEST__INIT;
    req.blob.data = malloc(size);
    req.blob.len = size;
    for (size_t i = 0; i < size; i++)
        req.blob.data[i] = (uint8_t)(i * 7 + (i >> 12));
    req.text = nargs > 1 ? args[1] : "big";
    ProtobufCMessage *resp;
    int rc = wv_grpc_unary(ch, svc, "Unary", &req.base, &resp, NULL);
    printf("rc %d code %d\n", rc, wv_grpc_code_from_errno(rc));
    printf("errmsg %s\n", wv_errmsg());
    if (rc == 0) {
        Echo__EchoReply *r = (Echo__EchoReply *)resp;
        printf("echoed %zu same %d\n", r->blob.len,
               r->blob.len == size && memcmp(r->blob.data, req.blob.data, size) == 0);
        wv_grpc_free(resp);
    }
    free(req.blob.data);
    return 0;
}

static int nconc_ok;
static char first_peer[128];
static int distinct;

static int one_call(void *arg)
{
    Echo__EchoRequest req = ECHO__ECHO_REQUEST__INIT;
    char t[32];
    snprintf(t, sizeof t, "c%ld", (long)(intptr_t)arg);
    req.text = t;
    req.sleep_ms = 200; /* so they overlap */
    ProtobufCMessage *resp;
    int rc = wv_grpc_unary(ch, svc, "Unary", &req.base, &resp, NULL);
    if (rc < 0) {
        fprintf(stderr, "concurrent call: %s\n", wv_errmsg());
        return 0;
    }
    Echo__EchoReply *r = (Echo__EchoReply *)resp;
    if (strcmp(r->text, t) == 0)
        nconc_ok++;
    if (!first_peer[0])
        snprintf(first_peer, sizeof first_peer, "%s", r->peer);
    else if (strcmp(first_peer, r->peer) != 0)
        distinct++;
    wv_grpc_free(resp);
    return 0;
}

static int concurrent(void)
{
    int n = arg_int(0, 150);
    wv_group *g = wv_group_new();
    for (int i = 0; i < n; i++)
        wv_group_spawn(g, one_call, (void *)(intptr_t)i, NULL);
    wv_group_join(g);
    wv_group_free(g);
    printf("concurrent ok %d of %d other_peers %d\n", nconc_ok, n, distinct);
    return 0;
}

/* calls in flight when the server dies, then one after it is back */
static int killed(void)
{
    ProtobufCMessage *resp;
    Echo__EchoRequest req = ECHO__ECHO_REQUEST__INIT;
    req.text = "warm";
    int rc = wv_grpc_unary(ch, svc, "Unary", &req.base, &resp, NULL);
    if (rc < 0)
        return fail("warm", rc);
    wv_grpc_free(resp);
    wv_group *g = wv_group_new();
    for (int i = 0; i < 3; i++)
        wv_group_spawn(g, slow_call, (void *)(i == 0 ? "k0" : i == 1 ? "k1" : "k2"), NULL);
    wv_sleep_ms(300);
    printf("in flight\n");
    fflush(stdout);
    wv_group_join(g); /* the test kills the server now */
    wv_group_free(g);
    /* at once: the server is still down */
    req.text = "down";
    rc = wv_grpc_unary(ch, svc, "Unary", &req.base, &resp, NULL);
    printf("while down code %d\n", wv_grpc_code_from_errno(rc));
    printf("errmsg %s\n", wv_errmsg());
    fflush(stdout);
    /* the test restarts it; wait_for_ready waits through the backoff */
    req.text = "back";
    rc = wv_grpc_unary(ch, svc, "Unary", &req.base, &resp,
                       &(wv_grpc_call_opts){.wait_for_ready = true, .timeout_ms = 20000});
    printf("after restart rc %d\n", rc);
    if (rc == 0) {
        printf("reply %s\n", ((Echo__EchoReply *)resp)->text);
        wv_grpc_free(resp);
    } else {
        printf("errmsg %s\n", wv_errmsg());
    }
    return 0;
}

/* a call in flight when the server stops gracefully (GOAWAY) ends well */
static int drain_call(void *arg)
{
    Echo__EchoRequest req = ECHO__ECHO_REQUEST__INIT;
    req.text = arg;
    req.sleep_ms = 1500;
    ProtobufCMessage *resp;
    int rc = wv_grpc_unary(ch, svc, "Unary", &req.base, &resp, NULL);
    printf("drained %s rc %d\n", (char *)arg, rc);
    if (rc == 0)
        wv_grpc_free(resp);
    else
        printf("errmsg %s\n", wv_errmsg());
    return 0;
}

static int goaway(void)
{
    wv_group *g = wv_group_new();
    wv_group_spawn(g, drain_call, "g0", NULL);
    wv_group_spawn(g, drain_call, "g1", NULL);
    wv_sleep_ms(300);
    printf("in flight\n");
    fflush(stdout);
    wv_group_join(g);
    wv_group_free(g);
    return 0;
}

static int run(void *arg)
{
    (void)arg;
    int rc;
    if (!strcmp(scenario, "once"))
        rc = once();
    else if (!strcmp(scenario, "unary"))
        rc = unary();
    else if (!strcmp(scenario, "status"))
        rc = status();
    else if (!strcmp(scenario, "deadline"))
        rc = deadline();
    else if (!strcmp(scenario, "cancel"))
        rc = cancel();
    else if (!strcmp(scenario, "server_stream"))
        rc = server_stream();
    else if (!strcmp(scenario, "client_stream"))
        rc = client_stream();
    else if (!strcmp(scenario, "bidi"))
        rc = bidi();
    else if (!strcmp(scenario, "big"))
        rc = big();
    else if (!strcmp(scenario, "concurrent"))
        rc = concurrent();
    else if (!strcmp(scenario, "goaway"))
        rc = goaway();
    else if (!strcmp(scenario, "killed"))
        rc = killed();
    else {
        fprintf(stderr, "unknown scenario %s\n", scenario);
        rc = 2;
    }
    printf("done\n");
    fflush(stdout);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: grpc_client_peer TARGET SCENARIO [ARG...] [--ca FILE] [--gzip]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    target = argv[1];
    scenario = argv[2];
    wv_grpc_channel_opts o = {.backoff_base_ms = 200, .backoff_max_ms = 1000};
    args = calloc((size_t)argc, sizeof *args);
    for (int i = 3; i < argc; i++) {
        if (!strcmp(argv[i], "--ca") && i + 1 < argc)
            o.ca_file = argv[++i];
        else if (!strcmp(argv[i], "--gzip"))
            o.compress = true;
        else
            args[nargs++] = argv[i];
    }
    ch = wv_grpc_channel_new(target, &o);
    if (!ch) {
        fprintf(stderr, "grpc_client_peer: channel: %s\n", wv_errmsg());
        return 1;
    }
    int rc = wv_main(&(wv_main_opts){.shards = 1}, run, NULL);
    wv_grpc_channel_free(ch);
    free(args);
    return rc == 0 ? 0 : 1;
}
