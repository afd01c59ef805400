/*
 * A gRPC call, the part the server's and the client's sides share
 * (call.c): turning messages into framed bytes and back, the metadata the
 * peer sent, the call's memory. Each side gives the bytes' transport as
 * ops: the server through its HTTP request and response (server.c), the
 * client through its own HTTP/2 stream (client.c).
 */
#ifndef WEAVE_GRPC_CALL_H
#define WEAVE_GRPC_CALL_H

#include "grpc_internal.h"
#include "weave/buf.h"
#include "weave/grpc.h"

#pragma GCC visibility push(hidden)

typedef struct grpc_call_ops {
    /* The peer's message bytes as they come: some, 0 at its half-close,
     * or an error (the call's status, for a client, once it is known). */
    ssize_t (*read)(wv_grpc_call *c, void *buf, size_t n);
    /* Framed message bytes to the peer (the server sends its headers
     * with the first). */
    int (*write)(wv_grpc_call *c, const void *p, size_t n);
} grpc_call_ops;

/* A block of the call's memory (wv_grpc_alloc), freed with it. */
typedef struct grpc_block {
    struct grpc_block *next;
    max_align_t data[];
} grpc_block;

struct wv_grpc_call {
    const grpc_call_ops *ops;
    bool server;
    int shard; /* the shard whose fibers may use it */
    const ProtobufCServiceDescriptor *svc;
    const ProtobufCMethodDescriptor *method;
    const ProtobufCMessageDescriptor *recv_type, *send_type;
    char *path; /* "/Service/Method", allocated with the call (grpc_call_init) */
    /* receiving */
    grpc_reader reader;
    grpc_encoding recv_enc; /* the peer's grpc-encoding */
    size_t max_recv;
    ProtobufCMessage *last; /* the message wv_grpc_recv returned last */
    bool recv_done;         /* the peer half-closed, or reading failed */
    int recv_err;           /* why reading stopped (0: half-close) */
    uint8_t *rbuf;          /* a read buffer, GRPC_CALL_READ bytes */
    size_t rbuf_n, rbuf_off;
    /* sending */
    bool send_gzip; /* compress what is sent (asked, and the peer accepts it) */
    size_t max_send;
    bool send_closed;
    /* the peer's metadata, in arrival order (headers, then a client's
     * trailers); each field's text is in the call's memory, so what
     * wv_grpc_metadata handed out stays put while more fields arrive */
    wv_str (*md)[2];
    int nmd, capmd;
    int md_trailers_from; /* the first trailer's index (client); -1: none yet */
    /* memory that lives as long as the call */
    grpc_block *blocks;
};

enum { GRPC_CALL_READ = 16384 };

/* Set up the shared part: path from svc and method, the reader. 0 or
 * -ENOMEM. The side fills in ops and the rest. */
int grpc_call_init(wv_grpc_call *c, const ProtobufCServiceDescriptor *svc,
                   const ProtobufCMethodDescriptor *method, bool server, size_t max_recv,
                   size_t max_send);

/* Free what grpc_call_init and the shared calls allocated (not c). */
void grpc_call_release(wv_grpc_call *c);

/* Record a metadata field the peer sent (headers, then trailers). 0 or
 * -ENOMEM. */
int grpc_call_md_add(wv_grpc_call *c, const char *name, size_t nn, const char *value, size_t vn);

/* The method of svc named `name`, or NULL with -EINVAL in wv_errmsg. */
const ProtobufCMethodDescriptor *grpc_method_find(const ProtobufCServiceDescriptor *svc,
                                                  const char *name);

/* Pack msg as the call sends it (type-checked, size-limited, gzip if
 * send_gzip), framed: *out malloc'ed. 0, -EINVAL (wrong type), -ENOSPC
 * (over max_send), -ENOMEM. */
int grpc_call_pack(wv_grpc_call *c, const ProtobufCMessage *msg, uint8_t **out, size_t *n);

/* A service wv_grpc_service registered: SERVING for the health service
 * unless wv_grpc_health_set said otherwise (health.c). 0 or -ENOMEM. */
int grpc_health_registered(const char *service);

/* A service wv_grpc_service registered, for reflection's list_services
 * (reflection.c). 0 or -ENOMEM. */
int grpc_reflection_listed(const char *service);

#pragma GCC visibility pop

#endif
