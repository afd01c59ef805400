/*
 * weave gRPC: services and clients on HTTP/2, messages from protobuf-c.
 *
 * A service is the descriptor protoc-c generates from a .proto file (the
 * build's weave_protobuf_c() makes it, docs/grpc.md) and one handler per
 * method. Each call runs in a fiber of its own, so a handler reads like
 * the Python it replaces:
 *
 *     static int say_hello(wv_grpc_call *call, const ProtobufCMessage *in,
 *                          ProtobufCMessage *out)
 *     {
 *         const HelloRequest *req = (const HelloRequest *)in;
 *         wv_sleep_ms(1000);                        // await asyncio.sleep(1)
 *         ((HelloResponse *)out)->message =
 *             wv_grpc_printf(call, "Hello, %s!", req->name);
 *         return 0;                                 // status OK
 *     }
 *
 *     static const wv_grpc_method my_service[] = {
 *         {"SayHello", .unary = say_hello},
 *     };
 *     wv_grpc_service(router, &my_service__descriptor, my_service, 1, NULL);
 *
 * and a client calls it with the fiber's deadline and cancellation:
 *
 *     wv_grpc_channel *ch = wv_grpc_channel_new("http://127.0.0.1:50051", NULL);
 *     HelloRequest req = HELLO_REQUEST__INIT;
 *     req.name = "weave";
 *     ProtobufCMessage *resp;
 *     int rc = wv_grpc_unary(ch, &my_service__descriptor, "SayHello", &req.base,
 *                            &resp, NULL);
 *     if (rc < 0)                        // wv_grpc_code_of(rc): the status code,
 *         return rc;                     // wv_errmsg(): "MyService/SayHello: ..."
 *     puts(((HelloResponse *)resp)->message);
 *     wv_grpc_free(resp);
 *
 * The model.
 *
 *  - gRPC rides on weave's HTTP/2 (weave/h2.h): wv_grpc_service adds a
 *    route "POST /<package.Service>/<Method>" per method to a router, and
 *    wv_http_serve serves it on h2c (prior knowledge) and on TLS by ALPN.
 *    gRPC needs HTTP/2: a request over HTTP/1.1 is answered 505.
 *  - All four kinds of call have one shape: a call object with recv and
 *    send. A unary handler (wv_grpc_method.unary) gets its request
 *    unpacked and fills the response weave sends; a streaming one
 *    (wv_grpc_method.stream) reads with wv_grpc_recv until it returns 0
 *    and writes with wv_grpc_send, in any order (bidirectional streams
 *    interleave freely). protoc-c's descriptors do not say which methods
 *    stream; the handler's kind does.
 *  - The status: a handler returns 0 for OK or a negative errno, which
 *    becomes the status code by the table in wv_grpc_code_from_errno
 *    (-ENOENT is NOT_FOUND, -ETIMEDOUT DEADLINE_EXCEEDED, ...) with
 *    wv_errmsg() as grpc-message; wv_grpc_fail sets an exact code and
 *    message. The status goes in the trailers (or alone, "Trailers-Only",
 *    when nothing was sent), with the trailing metadata.
 *  - Deadlines: a call's grpc-timeout becomes the handler fiber's
 *    deadline, so every wait inside it (a database query, another gRPC
 *    call) ends with -ETIMEDOUT when the client's time is up; the client
 *    sends its fiber's remaining time (and the call's own timeout_ms) as
 *    grpc-timeout. Cancellation goes both ways: a client that resets its
 *    stream (or whose deadline passes) cancels the handler's fiber; a
 *    cancelled client fiber resets its stream (RST_STREAM CANCEL).
 *  - Messages over max_recv bytes (default 4 MiB, as gRPC's) are refused
 *    with RESOURCE_EXHAUSTED before they are buffered. Messages may be
 *    gzip-compressed: weave reads gzip and identity, and compresses what
 *    it sends only when asked (compress) and the peer accepts gzip.
 *  - The client keeps one HTTP/2 connection per channel per shard,
 *    multiplexing every call of the shard's fibers on it; it connects on
 *    the first call, reconnects with backoff after a failure, and fails the
 *    calls in flight with UNAVAILABLE (-EAGAIN) when the connection dies.
 *
 * Errors of the calls below, besides a status received (its code's errno):
 *   -EINVAL    a method the service descriptor does not have, a bad
 *              metadata name or value, a message of the wrong type
 *   -EPERM     called outside a fiber
 *   -EXDEV     a call used from a fiber of another shard
 *   -EPIPE     wv_grpc_send after wv_grpc_close_send, or after the server
 *              ended the call
 *   -ENOMEM    out of memory
 */
#ifndef WEAVE_GRPC_H
#define WEAVE_GRPC_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/http.h"
#include "weave/str.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------- status */

/* gRPC's status codes. */
typedef enum wv_grpc_code {
    WV_GRPC_OK = 0,
    WV_GRPC_CANCELLED = 1,
    WV_GRPC_UNKNOWN = 2,
    WV_GRPC_INVALID_ARGUMENT = 3,
    WV_GRPC_DEADLINE_EXCEEDED = 4,
    WV_GRPC_NOT_FOUND = 5,
    WV_GRPC_ALREADY_EXISTS = 6,
    WV_GRPC_PERMISSION_DENIED = 7,
    WV_GRPC_RESOURCE_EXHAUSTED = 8,
    WV_GRPC_FAILED_PRECONDITION = 9,
    WV_GRPC_ABORTED = 10,
    WV_GRPC_OUT_OF_RANGE = 11,
    WV_GRPC_UNIMPLEMENTED = 12,
    WV_GRPC_INTERNAL = 13,
    WV_GRPC_UNAVAILABLE = 14,
    WV_GRPC_DATA_LOSS = 15,
    WV_GRPC_UNAUTHENTICATED = 16,
} wv_grpc_code;

/* "OK", "CANCELLED", ..., or NULL for a number that is not a code. */
const char *wv_grpc_code_name(int code);

/*
 * The code a handler's return value (0 or a negative errno) becomes:
 *
 *   0 OK; -ECANCELED CANCELLED; -EINVAL, -EDOM, -EILSEQ INVALID_ARGUMENT;
 *   -ETIMEDOUT DEADLINE_EXCEEDED; -ENOENT, -ESRCH NOT_FOUND; -EEXIST
 *   ALREADY_EXISTS; -EACCES, -EPERM PERMISSION_DENIED; -ENOSPC, -ENOMEM,
 *   -EMSGSIZE, -E2BIG, -ENOBUFS, -EMFILE, -ENFILE, -EDQUOT
 *   RESOURCE_EXHAUSTED; -EBUSY, -ENOTEMPTY, -EISDIR, -ENOTDIR, -EALREADY
 *   FAILED_PRECONDITION; -EDEADLK ABORTED; -ERANGE, -EOVERFLOW
 *   OUT_OF_RANGE; -ENOSYS, -ENOTSUP, -EPROTONOSUPPORT UNIMPLEMENTED;
 *   -EPROTO, -EBADMSG, -EFAULT INTERNAL; -EAGAIN and the connection errors
 *   (-ECONNREFUSED, -ECONNRESET, -EPIPE, -ESHUTDOWN, -EHOSTUNREACH, ...)
 *   UNAVAILABLE; -EUCLEAN DATA_LOSS; -EKEYREJECTED, -EKEYEXPIRED
 *   UNAUTHENTICATED; anything else (-EIO, -EREMOTEIO) UNKNOWN.
 *
 * wv_grpc_errno_of(code) is the first errno of the code's list (UNKNOWN:
 * -EREMOTEIO, UNAVAILABLE: -EAGAIN, RESOURCE_EXHAUSTED: -ENOSPC, ...): what
 * a client call returns for a status it received, so wv_grpc_code_of()
 * gives the code back exactly, for all 17.
 */
int wv_grpc_code_from_errno(int err);
int wv_grpc_errno_of(int code);

/* The status code of a client call's error return (wv_grpc_code_from_errno). */
static inline int wv_grpc_code_of(int err)
{
    return wv_grpc_code_from_errno(err);
}

/* ---------------------------------------------------------- the call */

/* A call in progress: the server's side in a handler, the client's from
 * wv_grpc_call_start. Used from its own shard's fibers only. */
typedef struct wv_grpc_call wv_grpc_call;

/*
 * The next message from the peer: 1 and *msg (of the method's request
 * type on a server, its response type on a client), 0 once the peer has
 * half-closed (no more messages), or an error: -ECANCELED or -ETIMEDOUT
 * as the fiber's, -ENOSPC (RESOURCE_EXHAUSTED) for a message over
 * max_recv, -EPROTO (INTERNAL) for a message that does not unpack or a
 * broken framing, -ECONNRESET when a client reset the stream (server), the
 * status the server ended with (client). *msg belongs to the call: valid
 * until the next wv_grpc_recv or the call's end.
 */
int wv_grpc_recv(wv_grpc_call *call, ProtobufCMessage **msg);

/*
 * Send a message (of the method's response type on a server, its request
 * type on a client), waiting while HTTP/2 flow control holds the stream's
 * buffer full (a slow peer stalls this call, never memory). On a server the
 * response headers (with the metadata added by then) go out with the first.
 */
int wv_grpc_send(wv_grpc_call *call, const ProtobufCMessage *msg);

/*
 * Metadata the peer sent: a server's request metadata; a client's
 * response headers, then its trailers as they arrive (all of them by the
 * time wv_grpc_recv has returned 0 or an error). *out is the value of the
 * first field of that name (lower case), "-bin" values base64-decoded,
 * valid until the call ends; 0, or -ENOENT. wv_grpc_trailing_metadata
 * looks among a client's trailers only (gRPC's trailing_metadata(); a
 * Trailers-Only response's fields are trailers).
 */
int wv_grpc_metadata(wv_grpc_call *call, const char *name, wv_str *out);
int wv_grpc_trailing_metadata(wv_grpc_call *call, const char *name, wv_str *out);

/* Every field of it, in order, as received (-bin values still base64):
 * a count, and the i-th field. The first wv_grpc_metadata_headers() of
 * them are the headers (initial metadata), the rest a client's trailers;
 * a server's are all headers. */
int wv_grpc_metadata_count(const wv_grpc_call *call);
void wv_grpc_metadata_at(const wv_grpc_call *call, int i, wv_str *name, wv_str *value);
int wv_grpc_metadata_headers(const wv_grpc_call *call);

/*
 * Metadata to send. A server adds initial metadata (the response
 * headers) until its first wv_grpc_send, and trailing metadata any time
 * before the handler returns (wv_grpc_trailer); a client gives its
 * request metadata in wv_grpc_call_opts. name: lower case 0-9 a-z _ - .,
 * not reserved (grpc-*, content-type, te, :pseudo...); a name ending in
 * "-bin" takes any bytes (sent base64), others printable ASCII.
 * 0, -EINVAL (wv_errmsg says why), -EALREADY (headers already sent).
 */
int wv_grpc_header(wv_grpc_call *call, const char *name, const void *value, size_t n);
int wv_grpc_trailer(wv_grpc_call *call, const char *name, const void *value, size_t n);

/* Memory that lives as long as the call (for a unary response's strings
 * and submessages); NULL on OOM. */
void *wv_grpc_alloc(wv_grpc_call *call, size_t n);
char *wv_grpc_printf(wv_grpc_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The method's path, "/package.Service/Method". */
const char *wv_grpc_call_path(const wv_grpc_call *call);

/* ----------------------------------------------------------- serving */

/* A unary handler: `in` is the request, `out` a response of the method's
 * output type, initialised, for the handler to fill (with memory from
 * wv_grpc_alloc or static); sent when it returns 0. */
typedef int wv_grpc_unary_fn(wv_grpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out);

/* A streaming handler (client, server or bidirectional streaming, and
 * unary too if it likes): wv_grpc_recv and wv_grpc_send as it goes. */
typedef int wv_grpc_stream_fn(wv_grpc_call *call);

/* A method's handler, by the method's name in the service descriptor;
 * exactly one of unary and stream. */
typedef struct wv_grpc_method {
    const char *name;
    wv_grpc_unary_fn *unary;
    wv_grpc_stream_fn *stream;
} wv_grpc_method;

/* Per service (wv_grpc_service_opts); every 0 field is its default. */
typedef struct wv_grpc_service_opts {
    size_t max_recv; /* a request message's bytes at most; 0 = 4 MiB */
    size_t max_send; /* a response message's at most; 0 = 4 MiB, more is RESOURCE_EXHAUSTED */
    bool compress;   /* gzip responses when the client accepts it */
    void *data;      /* for the handlers: wv_grpc_data() */
} wv_grpc_service_opts;

/*
 * Serve svc on router r: a route "POST /<svc->name>/<Method>" for every
 * method of the descriptor; methods without a handler in `methods` answer
 * UNIMPLEMENTED. The first service on a router also routes "POST
 * /{...}" (unless the router has such a route): a gRPC request for a
 * service or method nobody serves gets UNIMPLEMENTED, anything else 404. 0, -EINVAL (a name svc
 * does not have, a method with no or two handlers; wv_errmsg says which), -EEXIST (already routed),
 * -ENOMEM.
 */
int wv_grpc_service(wv_router *r, const ProtobufCServiceDescriptor *svc,
                    const wv_grpc_method *methods, size_t n, const wv_grpc_service_opts *opts);

/*
 * End the call with this status instead of the one the return value
 * would give: returns the errno of `code` (wv_grpc_errno_of), for
 * `return wv_grpc_fail(call, WV_GRPC_NOT_FOUND, "no user %d", id);`.
 * message: printf-style, may be NULL; sent percent-encoded.
 */
int wv_grpc_fail(wv_grpc_call *call, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The service's opts.data, and the HTTP request carrying the call (its
 * peer address, TLS, headers). */
void *wv_grpc_data(const wv_grpc_call *call);
wv_req *wv_grpc_req(const wv_grpc_call *call);

/* ------------------------------------------------------------ health */

/* A service's health, as grpc.health.v1 names it. */
enum {
    WV_GRPC_SERVING_STATUS_UNKNOWN = 0,
    WV_GRPC_SERVING = 1,
    WV_GRPC_NOT_SERVING = 2,
    WV_GRPC_SERVICE_UNKNOWN = 3, /* no such service (what Watch sends) */
};

/*
 * Serve gRPC's standard health service, grpc.health.v1.Health, on r:
 * Check answers a service's status (NOT_FOUND for a name nobody serves),
 * Watch sends it and then every change, and, once the runtime begins to
 * stop, NOT_SERVING and the stream's end. The service "" (the server as a
 * whole) is SERVING, and so is every service wv_grpc_service registered,
 * unless wv_grpc_health_set says otherwise. Errors as wv_grpc_service.
 */
int wv_grpc_health(wv_router *r);

/* Set a service's status ("" for the whole server), from any thread;
 * watchers on every shard see the change. 0, -EINVAL, -ENOMEM. */
int wv_grpc_health_set(const char *service, int status);

/* -------------------------------------------------------- reflection */

/*
 * Serve gRPC server reflection (grpc.reflection.v1alpha.ServerReflection,
 * what grpcurl and Postman ask) on r: the services wv_grpc_service has
 * registered in this process, and the .proto files that define them and
 * what they import, found by file name or by a symbol ("pkg.Service",
 * "pkg.Service.Method", "pkg.Message", "pkg.Enum"). The files are those
 * weave_protobuf_c compiled into the program (and the library's own). A
 * name nobody has is an error response NOT_FOUND on the stream, which
 * goes on. Errors as wv_grpc_service.
 */
int wv_grpc_reflection(wv_router *r);

/* For the code weave_protobuf_c generates: a .proto's descriptor set (a
 * serialized FileDescriptorSet), registered when the program starts; set
 * stays valid for the process's life. Files already known by name are
 * skipped. Safe before the runtime starts and from any thread. */
void wv_grpc_reflection_register(const uint8_t *set, size_t n);

/* ----------------------------------------------------------- calling */

/* A target: where calls go, and a connection to it per shard. */
typedef struct wv_grpc_channel wv_grpc_channel;

typedef struct wv_grpc_channel_opts {
    const char *ca_file;        /* https: CAs to trust (PEM); NULL = the system's */
    bool insecure;              /* https: do not verify the certificate (tests only) */
    const char *server_name;    /* https: the name sent (SNI) and checked in the certificate,
                                 * instead of the target's host (gRPC's
                                 * ssl_target_name_override); NULL = the host */
    const char *authority;      /* :authority sent, instead of the target's host:port
                                 * (gRPC's default_authority); NULL = host:port */
    int64_t connect_timeout_ms; /* 0 = 10000 */
    size_t max_recv;            /* a response message's bytes at most; 0 = 4 MiB */
    size_t max_send;            /* a request message's bytes at most; 0 = no limit
                                 * but gRPC's framing's (4 GiB), as grpcio's; more
                                 * is -ENOSPC (RESOURCE_EXHAUSTED), nothing sent */
    bool compress;              /* gzip request messages (the server must accept gzip) */
    /* reconnecting after a failure: waits base_ms * 2^n (random, up to
     * max_ms) between attempts; calls meanwhile fail UNAVAILABLE at once
     * unless wait_for_ready. 0 = 100 and 10000 */
    int64_t backoff_base_ms, backoff_max_ms;
} wv_grpc_channel_opts;

/*
 * A channel to target: "http://host:port" (h2c with prior knowledge),
 * "https://host:port" (TLS, h2 by ALPN), or "host:port" (as http://).
 * Nothing connects until a call. Made once and used from every shard;
 * free it after the runtime has stopped. NULL on a bad target (wv_errmsg)
 * or OOM.
 */
wv_grpc_channel *wv_grpc_channel_new(const char *target, const wv_grpc_channel_opts *opts);
void wv_grpc_channel_free(wv_grpc_channel *ch);

/* A metadata field to send: value_len 0 = strlen(value). */
typedef struct wv_grpc_md {
    const char *name;
    const void *value;
    size_t value_len;
} wv_grpc_md;

/* Per call (wv_grpc_call_opts); all zero = defaults. */
typedef struct wv_grpc_call_opts {
    const wv_grpc_md *metadata; /* request metadata */
    size_t nmetadata;
    int64_t timeout_ms;  /* this call at most (the fiber's deadline applies too); 0 = that only */
    bool wait_for_ready; /* while the channel is reconnecting, wait (within the deadline)
                          * instead of failing UNAVAILABLE at once */
} wv_grpc_call_opts;

/*
 * A unary call: send req, wait for the response. 0 and *resp (the
 * method's output type; free it with wv_grpc_free), or a negative errno:
 * the status the server ended with (wv_grpc_code_of(rc) is it, wv_errmsg
 * "Service/Method: CODE: message"), -ETIMEDOUT (DEADLINE_EXCEEDED) when
 * the deadline passed, -ECANCELED when the fiber was cancelled, -EAGAIN
 * (UNAVAILABLE) when the server cannot be reached or the connection died.
 */
int wv_grpc_unary(wv_grpc_channel *ch, const ProtobufCServiceDescriptor *svc, const char *method,
                  const ProtobufCMessage *req, ProtobufCMessage **resp,
                  const wv_grpc_call_opts *opts);

/* Free a message wv_grpc_unary returned. */
void wv_grpc_free(ProtobufCMessage *msg);

/*
 * A streaming call (or a unary one, by hand): the stream opens with the
 * request metadata; then wv_grpc_send, wv_grpc_close_send when there is no
 * more to send, wv_grpc_recv until 0, and wv_grpc_call_end for the status.
 */
int wv_grpc_call_start(wv_grpc_channel *ch, const ProtobufCServiceDescriptor *svc,
                       const char *method, const wv_grpc_call_opts *opts, wv_grpc_call **out);

/* No more messages from this side (half-close). */
int wv_grpc_close_send(wv_grpc_call *call);

/*
 * End the call and free it: if the server's status is not in yet, this
 * waits for it (unless messages are still arriving unread: then the call
 * is cancelled, RST_STREAM CANCEL, and ends CANCELLED). 0 for OK, or the
 * status's errno as wv_grpc_unary's. Pass code/message (may be NULL) to
 * get them; *message is malloc'd, free it.
 */
int wv_grpc_call_end(wv_grpc_call *call, int *code, char **message);

/* Cancel a client call now (RST_STREAM CANCEL): the server sees
 * CANCELLED, and this side's waits return -ECANCELED. */
void wv_grpc_cancel(wv_grpc_call *call);

#ifdef __cplusplus
}
#endif

#endif
