/*
 * The part of a gRPC call both sides share: messages to framed bytes and
 * back, the peer's metadata, the call's memory, the status codes' public
 * names. The bytes themselves move through the side's ops (call.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"

const char *wv_grpc_code_name(int code)
{
    return grpc_code_name(code);
}

int wv_grpc_code_from_errno(int err)
{
    return grpc_code_from_errno(err);
}

int wv_grpc_errno_of(int code)
{
    return grpc_code_to_errno(code);
}

int grpc_call_init(wv_grpc_call *c, const ProtobufCServiceDescriptor *svc,
                   const ProtobufCMethodDescriptor *method, bool server, size_t max_recv,
                   size_t max_send)
{
    c->svc = svc;
    c->method = method;
    c->server = server;
    c->shard = wv_shard_id();
    c->md_trailers_from = -1;
    c->recv_type = server ? method->input : method->output;
    c->send_type = server ? method->output : method->input;
    c->max_recv = max_recv ? max_recv : GRPC_DEFAULT_MAX_MESSAGE;
    c->max_send = max_send ? max_send : GRPC_DEFAULT_MAX_MESSAGE;
    size_t n = strlen(svc->name) + strlen(method->name) + 3;
    c->path = wv_grpc_alloc(c, n);
    if (!c->path)
        return -ENOMEM;
    snprintf(c->path, n, "/%s/%s", svc->name, method->name);
    /* the limit on the wire: a compressed message is checked again once
     * inflated (grpc_message_decode) */
    grpc_reader_init(&c->reader, c->max_recv > UINT32_MAX ? UINT32_MAX : (uint32_t)c->max_recv);
    return 0;
}

void grpc_call_release(wv_grpc_call *c)
{
    if (c->last)
        protobuf_c_message_free_unpacked(c->last, NULL);
    c->last = NULL;
    grpc_reader_free(&c->reader);
    free(c->rbuf);
    c->rbuf = NULL;
    free(c->md);
    c->md = NULL;
    c->nmd = c->capmd = 0;
    while (c->blocks) {
        grpc_block *b = c->blocks;
        c->blocks = b->next;
        free(b);
    }
}

void *wv_grpc_alloc(wv_grpc_call *call, size_t n)
{
    grpc_block *b = malloc(sizeof *b + (n ? n : 1));
    if (!b)
        return NULL;
    b->next = call->blocks;
    call->blocks = b;
    return b->data;
}

char *wv_grpc_printf(wv_grpc_call *call, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = wv_grpc_alloc(call, (size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

const char *wv_grpc_call_path(const wv_grpc_call *call)
{
    return call->path;
}

const ProtobufCMethodDescriptor *grpc_method_find(const ProtobufCServiceDescriptor *svc,
                                                  const char *name)
{
    const ProtobufCMethodDescriptor *m =
        name ? protobuf_c_service_descriptor_get_method_by_name(svc, name) : NULL;
    if (!m)
        wv_fail(-EINVAL, "gRPC: service %s has no method %s", svc->name, name ? name : "(null)");
    return m;
}

/* ------------------------------------------------------------ metadata */

int grpc_call_md_add(wv_grpc_call *c, const char *name, size_t nn, const char *value, size_t vn)
{
    if (c->nmd == c->capmd) {
        int cap = c->capmd ? c->capmd * 2 : 8;
        void *p = realloc(c->md, (size_t)cap * sizeof *c->md);
        if (!p)
            return -ENOMEM;
        c->md = p;
        c->capmd = cap;
    }
    char *text = wv_grpc_alloc(c, nn + vn + 2);
    if (!text)
        return -ENOMEM;
    memcpy(text, name, nn);
    text[nn] = 0;
    memcpy(text + nn + 1, value, vn);
    text[nn + 1 + vn] = 0;
    c->md[c->nmd][0] = (wv_str){text, nn};
    c->md[c->nmd][1] = (wv_str){text + nn + 1, vn};
    c->nmd++;
    return 0;
}

int wv_grpc_metadata_count(const wv_grpc_call *call)
{
    return call->nmd;
}

void wv_grpc_metadata_at(const wv_grpc_call *call, int i, wv_str *name, wv_str *value)
{
    *name = call->md[i][0];
    *value = call->md[i][1];
}

int wv_grpc_metadata_headers(const wv_grpc_call *call)
{
    return call->md_trailers_from < 0 ? call->nmd : call->md_trailers_from;
}

static int find_md(wv_grpc_call *call, int from, const char *name, wv_str *out)
{
    size_t nn = strlen(name);
    for (int i = from; i < call->nmd; i++) {
        wv_str n, v;
        wv_grpc_metadata_at(call, i, &n, &v);
        if (n.n != nn || memcmp(n.p, name, nn) != 0)
            continue;
        if (!grpc_metadata_is_binary(name, nn)) {
            *out = v;
            return 0;
        }
        uint8_t *bin = wv_grpc_alloc(call, grpc_base64_decoded_max(v.n) + 1);
        if (!bin)
            return -ENOMEM;
        size_t len = 0;
        if (grpc_base64_decode(v.p, v.n, bin, &len) < 0)
            return wv_fail(-EINVAL, "gRPC metadata %s: not base64", name);
        *out = (wv_str){(const char *)bin, len};
        return 0;
    }
    return -ENOENT;
}

int wv_grpc_metadata(wv_grpc_call *call, const char *name, wv_str *out)
{
    return find_md(call, 0, name, out);
}

int wv_grpc_trailing_metadata(wv_grpc_call *call, const char *name, wv_str *out)
{
    return call->md_trailers_from < 0 ? -ENOENT : find_md(call, call->md_trailers_from, name, out);
}

/* ------------------------------------------------------------ messages */

static int check_shard(const wv_grpc_call *c)
{
    int id = wv_shard_id();
    if (id < 0)
        return wv_fail(-EPERM, "gRPC: called outside a fiber");
    if (id != c->shard)
        return wv_fail(-EXDEV, "gRPC: a call of shard %d used from shard %d", c->shard, id);
    return 0;
}

int grpc_call_pack(wv_grpc_call *c, const ProtobufCMessage *msg, uint8_t **out, size_t *n)
{
    if (!msg || msg->descriptor != c->send_type)
        return wv_fail(-EINVAL, "gRPC %s: a %s sent where %s is expected", c->path,
                       msg ? msg->descriptor->name : "NULL message", c->send_type->name);
    size_t len = protobuf_c_message_get_packed_size(msg);
    if (len > c->max_send)
        return wv_fail(-ENOSPC, "gRPC %s: a %zu-byte message is over the %zu-byte limit", c->path,
                       len, c->max_send);
    uint8_t *raw = malloc(len ? len : 1);
    if (!raw)
        return -ENOMEM;
    protobuf_c_message_pack(msg, raw);
    int rc = grpc_message_encode(
        raw, len, c->send_gzip ? GRPC_ENCODING_GZIP : GRPC_ENCODING_IDENTITY, out, n);
    free(raw);
    return rc;
}

int wv_grpc_send(wv_grpc_call *call, const ProtobufCMessage *msg)
{
    int rc = check_shard(call);
    if (rc < 0)
        return rc;
    if (call->send_closed)
        return wv_fail(-EPIPE, "gRPC %s: sending after the end of this side's messages",
                       call->path);
    uint8_t *framed;
    size_t n;
    rc = grpc_call_pack(call, msg, &framed, &n);
    if (rc < 0)
        return rc;
    rc = call->ops->write(call, framed, n);
    free(framed);
    return rc;
}

/* The reader's error as the call reports it. */
static int framing_error(wv_grpc_call *c, int err)
{
    if (err == -EMSGSIZE)
        return wv_fail(-ENOSPC, "gRPC %s: a message over the %zu-byte limit", c->path, c->max_recv);
    return wv_fail(-EPROTO, "gRPC %s: broken message framing", c->path);
}

int wv_grpc_recv(wv_grpc_call *call, ProtobufCMessage **msg)
{
    int rc = check_shard(call);
    if (rc < 0)
        return rc;
    if (call->last) {
        protobuf_c_message_free_unpacked(call->last, NULL);
        call->last = NULL;
    }
    *msg = NULL;
    if (!call->rbuf && !(call->rbuf = malloc(GRPC_CALL_READ)))
        return -ENOMEM;
    for (;;) {
        if (call->rbuf_off < call->rbuf_n) {
            grpc_message m;
            size_t used = 0;
            rc = grpc_reader_feed(&call->reader, call->rbuf + call->rbuf_off,
                                  call->rbuf_n - call->rbuf_off, &used, &m);
            call->rbuf_off += used;
            if (rc < 0) {
                call->recv_done = true;
                return call->recv_err = framing_error(call, rc);
            }
            if (rc == 1) {
                grpc_payload pl;
                rc = grpc_message_decode(&m, call->recv_enc, call->max_recv, &pl);
                if (rc < 0) {
                    call->recv_done = true;
                    return call->recv_err = rc == -EMSGSIZE ? framing_error(call, rc)
                                            : rc == -ENOMEM
                                                ? rc
                                                : wv_fail(-EPROTO,
                                                          "gRPC %s: a compressed message that does "
                                                          "not inflate (%s)",
                                                          call->path, strerror(-rc));
                }
                *msg = protobuf_c_message_unpack(call->recv_type, NULL, pl.len, pl.data);
                grpc_payload_free(&pl);
                if (!*msg) {
                    call->recv_done = true;
                    return call->recv_err = wv_fail(-EPROTO,
                                                    "gRPC %s: a message that is not "
                                                    "a valid %s",
                                                    call->path, call->recv_type->name);
                }
                call->last = *msg;
                return 1;
            }
            continue;
        }
        if (call->recv_done)
            return call->recv_err;
        ssize_t got = call->ops->read(call, call->rbuf, GRPC_CALL_READ);
        if (got < 0) {
            call->recv_done = true;
            return call->recv_err = (int)got;
        }
        if (got == 0) {
            call->recv_done = true;
            if (!grpc_reader_idle(&call->reader))
                return call->recv_err = wv_fail(
                           -EPROTO, "gRPC %s: the stream ended inside a message", call->path);
            return 0;
        }
        call->rbuf_n = (size_t)got;
        call->rbuf_off = 0;
    }
}
