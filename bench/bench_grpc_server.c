/*
 * The weave side of the gRPC benchmarks (bench/run_grpc.sh): the
 * BenchService of bench/grpc/bench.proto on h2c (prior knowledge),
 *
 *   SayHello     the chapter's §13.6.2 handler without its 1 s sleep:
 *                "Hello, <name>!" (examples/chapter13/s13_6_2_grpc.c)
 *   StreamHello  server streaming: `count` messages, the i-th
 *                "Hello, <name>! <i>", each built and sent on its own
 *
 * exactly what the grpc.aio and grpc-js anchors beside it do
 * (bench/grpc/aio_server.py, bench/grpc/grpcjs_server.js). PORT (default
 * 50051) and WEAVE_SHARDS set where and how wide it runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <weave/grpc.h>
#include <weave/http.h>

#include "bench.pb-c.h"

static int say_hello(wv_grpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const Bench__HelloRequest *req = (const Bench__HelloRequest *)in;
    ((Bench__HelloResponse *)out)->message = wv_grpc_printf(call, "Hello, %s!", req->name);
    return ((Bench__HelloResponse *)out)->message ? 0 : -ENOMEM;
}

static int stream_hello(wv_grpc_call *call)
{
    ProtobufCMessage *m;
    int rc = wv_grpc_recv(call, &m);
    if (rc <= 0)
        return rc < 0 ? rc : wv_grpc_fail(call, WV_GRPC_INVALID_ARGUMENT, "no request");
    const Bench__StreamRequest *req = (const Bench__StreamRequest *)m;
    char text[256];
    for (int i = 0; i < req->count; i++) {
        /* wv_grpc_send packs the message before it returns: a buffer on
         * the stack will do */
        snprintf(text, sizeof text, "Hello, %s! %d", req->name, i);
        Bench__HelloResponse out = BENCH__HELLO_RESPONSE__INIT;
        out.message = text;
        if ((rc = wv_grpc_send(call, &out.base)) < 0)
            return rc;
    }
    return 0;
}

static const wv_grpc_method bench_methods[] = {
    {"SayHello", .unary = say_hello},
    {"StreamHello", .stream = stream_hello},
};

static int serve(void *arg)
{
    (void)arg;
    const char *p = getenv("PORT");
    wv_router *r = wv_router_new();
    if (!r || wv_grpc_service(r, &bench__bench_service__descriptor, bench_methods,
                              sizeof bench_methods / sizeof *bench_methods, NULL) < 0) {
        fprintf(stderr, "bench_grpc_server: %s\n", wv_errmsg());
        return 1;
    }
    int rc =
        wv_http_serve(r, &(wv_http_opts){.port = p ? atoi(p) : 50051, .max_connections = 20000});
    if (rc < 0)
        fprintf(stderr, "bench_grpc_server: %s\n", wv_errmsg());
    wv_router_free(r);
    return rc < 0 ? 1 : 0;
}

int main(void)
{
    return wv_main(NULL, serve, NULL);
}
