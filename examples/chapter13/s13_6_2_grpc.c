/*
 * §13.6.2 gRPC for inter-language communication: the chapter's MyService
 * (service.proto, beside this file) served by weave,
 *
 *     class MyServiceServicer(service_pb2_grpc.MyServiceServicer):
 *         async def SayHello(self, request, context):
 *             await asyncio.sleep(1)
 *             return service_pb2.HelloResponse(message=f"Hello, {request.name}!")
 *
 *     server.add_insecure_port('[::]:50051')
 *
 * on its own port, --grpc-port / GRPC_PORT (0, the default: not served;
 * the book's port is 50051, which `make run` uses), over h2c and, when the
 * service has a certificate (--tls-cert), over TLS. The wait is the
 * chapter's asyncio.sleep(1) (--async-delay-ms), in the call's own fiber:
 * a thousand callers wait together, and a caller's deadline (grpc-timeout)
 * or cancellation ends the wait with DEADLINE_EXCEEDED or CANCELLED.
 *
 * Beside it, gRPC's standard health service (grpc.health.v1), which
 * Kubernetes' gRPC probes call.
 *
 * The chapter's Python client and server (server.py, client.py) call this
 * and are called by it in tests/integration/test_chapter13_grpc.py.
 */
#include <stdio.h>
#include <stdlib.h>

#include <weave/grpc.h>

#include "chapter13.h"
#include "service.pb-c.h"

void s13_6_2_grpc_options(wv_app *app)
{
    wv_app_option(app, "grpc-port", "GRPC_PORT", WV_OPT_INT, "0",
                  "serve the chapter's gRPC MyService on this port (0: not served; the book "
                  "uses 50051)");
}

static int say_hello(wv_grpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    const HelloRequest *req = (const HelloRequest *)in;
    int rc = wv_sleep_ms(async_delay_ms); /* await asyncio.sleep(1) */
    if (rc < 0)
        return rc;
    ((HelloResponse *)out)->message = wv_grpc_printf(call, "Hello, %s!", req->name);
    return 0;
}

static const wv_grpc_method my_service[] = {
    {"SayHello", .unary = say_hello},
};

void s13_6_2_grpc(wv_app *app)
{
    int64_t port = wv_app_int(app, "grpc-port");
    if (port <= 0)
        return;
    wv_router *r = wv_app_listen(app, "grpc", (int)port);
    /* and gRPC's health service, for probes and load balancers */
    if (!r ||
        wv_grpc_service(r, &my_service__descriptor, my_service,
                        sizeof my_service / sizeof *my_service, NULL) < 0 ||
        wv_grpc_health(r) < 0) {
        fprintf(stderr, "chapter13: gRPC on port %lld: %s\n", (long long)port, wv_errmsg());
        exit(2);
    }
}
