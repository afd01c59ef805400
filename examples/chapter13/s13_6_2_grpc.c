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
 * Kubernetes' gRPC probes call, and server reflection, so that grpcurl and
 * Postman can list MyService and call it without the .proto.
 *
 * And the chapter's client, as a route: GET /grpc/hello?name=Python calls
 * SayHello with weave's gRPC client,
 *
 *     async with grpc.aio.insecure_channel('localhost:50051') as channel:
 *         stub = service_pb2_grpc.MyServiceStub(channel)
 *         response = await stub.SayHello(service_pb2.HelloRequest(name="Python"))
 *
 * on --grpc-target / GRPC_TARGET (host:port, http://host:port or
 * https://host:port; by default this service's own --grpc-port), and
 * answers {"message": "Hello, Python!"}. The call carries the request's
 * deadline (X-Request-Timeout-Ms) as grpc-timeout; 504 when it runs out,
 * 502 with the status when the call fails, 503 when there is no target.
 *
 * The chapter's Python client and server (grpc/server.py, grpc/client.py)
 * call this and are called by it in tests/integration/test_chapter13_grpc.py.
 */
#include <stdio.h>
#include <stdlib.h>

#include <string.h>

#include <weave/grpc.h>
#include <weave/json.h>

#include "chapter13.h"
#include "service.pb-c.h"

void s13_6_2_grpc_options(wv_app *app)
{
    wv_app_option(app, "grpc-port", "GRPC_PORT", WV_OPT_INT, "0",
                  "serve the chapter's gRPC MyService on this port (0: not served; the book "
                  "uses 50051)");
    wv_app_option(app, "grpc-target", "GRPC_TARGET", WV_OPT_STRING, NULL,
                  "the MyService GET /grpc/hello calls: host:port, http:// or https:// "
                  "(default: this service's own --grpc-port)");
}

static wv_grpc_channel *channel; /* what GET /grpc/hello calls, or NULL */

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

enum { NAME_MAX_CHARS = 256 };

/* ?name=: FastAPI's name: str = Query("Python", max_length=256) */
static const wv_db_field name_param = {.name = "name",
                                       .type = WV_DB_TEXT,
                                       .size = 4 * NAME_MAX_CHARS + 1,
                                       .max_chars = NAME_MAX_CHARS,
                                       .default_json = "\"Python\"",
                                       .description = "Who SayHello greets",
                                       .example = "\"weave\""};

/* The answer of GET /grpc/hello: HelloResponse as JSON */
typedef struct hello_out {
    char message[4 * NAME_MAX_CHARS + 16];
} hello_out;

static const wv_db_field hello_out_fields[] = {
    WV_FIELD_TEXT(hello_out, message, .description = "SayHello's answer",
                  .example = "\"Hello, Python!\""),
};
static const wv_db_model hello_out_model = WV_SCHEMA_MODEL("HelloOut", hello_out, hello_out_fields);

/* GET /grpc/hello?name=: response = await stub.SayHello(HelloRequest(name=...)) */
static int grpc_hello(wv_req *req, wv_res *res)
{
    HelloRequest hello = HELLO_REQUEST__INIT;
    hello.name = wv_req_alloc(req, name_param.size);
    if (!hello.name)
        return -ENOMEM;
    wv_schema_errors errs = {0};
    int rc = input_end(res, input_query(req, &name_param, hello.name, &errs), &errs);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    if (!channel)
        return detail_error(res, 503, "no gRPC target: set --grpc-target or --grpc-port");
    ProtobufCMessage *reply;
    rc = wv_grpc_unary(channel, &my_service__descriptor, "SayHello", &hello.base, &reply, NULL);
    if (rc == -ETIMEDOUT || rc == -ECANCELED)
        return rc; /* 504, 503 */
    if (rc < 0)
        return detail_error(res, 502, wv_errmsg());
    hello_out out;
    snprintf(out.message, sizeof out.message, "%s", ((HelloResponse *)reply)->message);
    wv_grpc_free(reply);
    wv_json *j = wv_res_json_writer(res);
    rc = wv_schema_encode(&hello_out_model, &out, j);
    return rc < 0 ? rc : wv_res_json_send(res, 200);
}

void s13_6_2_grpc_free(void)
{
    wv_grpc_channel_free(channel);
    channel = NULL;
}

void s13_6_2_grpc(wv_app *app)
{
    int64_t port = wv_app_int(app, "grpc-port");
    const char *target = wv_app_str(app, "grpc-target");
    char own[64];
    if (!target && port > 0) {
        snprintf(own, sizeof own, "%s://localhost:%d",
                 wv_app_str(app, "tls-cert") ? "https" : "http", (int)port);
        target = own;
    }
    if (target && !(channel = wv_grpc_channel_new(target, NULL))) {
        fprintf(stderr, "chapter13: --grpc-target %s: %s\n", target, wv_errmsg());
        exit(2);
    }
    wv_get(app, "/grpc/hello", grpc_hello);
    if (port <= 0)
        return;
    wv_router *r = wv_app_listen(app, "grpc", (int)port);
    /* and gRPC's health service, for probes and load balancers, and server
     * reflection, for grpcurl and Postman */
    if (!r ||
        wv_grpc_service(r, &my_service__descriptor, my_service,
                        sizeof my_service / sizeof *my_service, NULL) < 0 ||
        wv_grpc_health(r) < 0 || wv_grpc_reflection(r) < 0) {
        fprintf(stderr, "chapter13: gRPC on port %lld: %s\n", (long long)port, wv_errmsg());
        exit(2);
    }
}
