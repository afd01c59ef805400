/*
 * TEMPORARY (grpc-client branch): a plain version of the shared call code
 * (src/grpc/call.h) so the client can be built and tested before the
 * server's call.c lands. At the merge the server branch's call.c replaces
 * this file; nothing of the client lives here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* call.h declares its functions with default visibility: keep them out of
 * libweave.so's exports */
#include "grpc/grpc_internal.h"
#include "weave/buf.h"
#include "weave/grpc.h"
#pragma GCC visibility push(hidden)
#include "grpc/call.h"
#pragma GCC visibility pop

#include "weave/rt.h"

/* ------------------------------------------------------------- status */

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

/* ------------------------------------------------------------- the call */

const ProtobufCMethodDescriptor *grpc_method_find(const ProtobufCServiceDescriptor *svc,
                                                  const char *name)
{
    if (!svc || !name)
        return wv_fail(-EINVAL, "grpc: no service or method"), NULL;
    for (unsigned i = 0; i < svc->n_methods; i++)
        if (strcmp(svc->methods[i].name, name) == 0)
            return &svc->methods[i];
    wv_fail(-EINVAL, "grpc: %s has no method %s", svc->name, name);
    return NULL;
}

int grpc_call_init(wv_grpc_call *c, const ProtobufCServiceDescriptor *svc,
                   const ProtobufCMethodDescriptor *method, bool server, size_t max_recv,
                   size_t max_send)
{
    c->svc = svc;
    c->method = method;
    c->server = server;
    c->recv_type = server ? method->input : method->output;
    c->send_type = server ? method->output : method->input;
    c->max_recv = max_recv ? max_recv : GRPC_DEFAULT_MAX_MESSAGE;
    c->max_send = max_send ? max_send : GRPC_DEFAULT_MAX_MESSAGE;
    size_t n = strlen(svc->name) + strlen(method->name) + 3;
    c->path = malloc(n);
    c->rbuf = malloc(GRPC_CALL_READ);
    if (!c->path || !c->rbuf) {
        free(c->path);
        free(c->rbuf);
        c->path = NULL;
        c->rbuf = NULL;
        return -ENOMEM;
    }
    snprintf(c->path, n, "/%s/%s", svc->name, method->name);
    grpc_reader_init(&c->reader, c->max_recv > UINT32_MAX ? UINT32_MAX : (uint32_t)c->max_recv);
    return 0;
}

void grpc_call_release(wv_grpc_call *c)
{
    if (c->last)
        protobuf_c_message_free_unpacked(c->last, NULL);
    c->last = NULL;
    grpc_reader_free(&c->reader);
    free(c->path);
    free(c->rbuf);
    wv_buf_free(&c->md_text);
    free(c->md);
    while (c->blocks) {
        grpc_block *b = c->blocks;
        c->blocks = b->next;
        free(b);
    }
    c->path = NULL;
    c->rbuf = NULL;
    c->md = NULL;
}

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
    size_t at = c->md_text.n;
    if (wv_buf_append(&c->md_text, name, nn) < 0 || wv_buf_append(&c->md_text, "", 1) < 0 ||
        wv_buf_append(&c->md_text, value, vn) < 0 || wv_buf_append(&c->md_text, "", 1) < 0)
        return -ENOMEM;
    size_t *o = c->md[c->nmd++];
    o[0] = at;
    o[1] = nn;
    o[2] = at + nn + 1;
    o[3] = vn;
    return 0;
}

int grpc_call_pack(wv_grpc_call *c, const ProtobufCMessage *msg, uint8_t **out, size_t *n)
{
    if (!msg || msg->descriptor != c->send_type)
        return wv_fail(-EINVAL, "%s: a message of the wrong type (%s, not %s)", c->path + 1,
                       msg ? msg->descriptor->name : "NULL", c->send_type->name);
    size_t len = protobuf_c_message_get_packed_size(msg);
    if (len > c->max_send)
        return wv_fail(-ENOSPC, "%s: a message of %zu bytes, over the limit of %zu", c->path + 1,
                       len, c->max_send);
    uint8_t *packed = malloc(len ? len : 1);
    if (!packed)
        return -ENOMEM;
    protobuf_c_message_pack(msg, packed);
    int rc = grpc_message_encode(
        packed, len, c->send_gzip ? GRPC_ENCODING_GZIP : GRPC_ENCODING_IDENTITY, out, n);
    free(packed);
    return rc;
}

int wv_grpc_recv(wv_grpc_call *c, ProtobufCMessage **msg)
{
    *msg = NULL;
    if (c->shard != wv_shard_id())
        return wv_fail(-EXDEV, "%s: a call used from another shard than its own", c->path + 1);
    if (c->last) {
        protobuf_c_message_free_unpacked(c->last, NULL);
        c->last = NULL;
    }
    for (;;) {
        if (c->recv_done)
            return c->recv_err;
        if (c->rbuf_off < c->rbuf_n) {
            size_t used = 0;
            grpc_message m;
            int rc = grpc_reader_feed(&c->reader, c->rbuf + c->rbuf_off, c->rbuf_n - c->rbuf_off,
                                      &used, &m);
            c->rbuf_off += used;
            if (rc < 0) {
                c->recv_done = true;
                c->recv_err =
                    rc == -EMSGSIZE
                        ? wv_fail(-ENOSPC, "%s: a message over %zu bytes", c->path + 1, c->max_recv)
                        : wv_fail(-EPROTO, "%s: broken message framing", c->path + 1);
                return c->recv_err;
            }
            if (rc == 0)
                continue;
            grpc_payload pl;
            rc = grpc_message_decode(&m, c->recv_enc, c->max_recv, &pl);
            if (rc < 0) {
                c->recv_done = true;
                c->recv_err = rc == -EMSGSIZE ? wv_fail(-ENOSPC, "%s: a message over %zu bytes",
                                                        c->path + 1, c->max_recv)
                              : rc == -ENOMEM ? rc
                                              : wv_fail(-EPROTO,
                                                        "%s: a message that does not "
                                                        "decompress",
                                                        c->path + 1);
                return c->recv_err;
            }
            c->last = protobuf_c_message_unpack(c->recv_type, NULL, pl.len, pl.data);
            grpc_payload_free(&pl);
            if (!c->last) {
                c->recv_done = true;
                c->recv_err = wv_fail(-EPROTO, "%s: a message that does not unpack as %s",
                                      c->path + 1, c->recv_type->name);
                return c->recv_err;
            }
            *msg = c->last;
            return 1;
        }
        ssize_t got = c->ops->read(c, c->rbuf, GRPC_CALL_READ);
        if (got > 0) {
            c->rbuf_n = (size_t)got;
            c->rbuf_off = 0;
            continue;
        }
        c->recv_done = true;
        c->recv_err = (int)got;
        if (got == 0 && !grpc_reader_idle(&c->reader))
            c->recv_err = wv_fail(-EPROTO, "%s: the stream ended inside a message", c->path + 1);
        return c->recv_err;
    }
}

int wv_grpc_send(wv_grpc_call *c, const ProtobufCMessage *msg)
{
    if (c->shard != wv_shard_id())
        return wv_fail(-EXDEV, "%s: a call used from another shard than its own", c->path + 1);
    if (c->send_closed)
        return wv_fail(-EPIPE, "%s: sending after the end", c->path + 1);
    uint8_t *wire;
    size_t n;
    int rc = grpc_call_pack(c, msg, &wire, &n);
    if (rc < 0)
        return rc;
    rc = c->ops->write(c, wire, n);
    free(wire);
    return rc;
}

void *wv_grpc_alloc(wv_grpc_call *c, size_t n)
{
    grpc_block *b = malloc(sizeof *b + (n ? n : 1));
    if (!b)
        return NULL;
    b->next = c->blocks;
    c->blocks = b;
    return b->data;
}

char *wv_grpc_printf(wv_grpc_call *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = wv_grpc_alloc(c, (size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

const char *wv_grpc_call_path(const wv_grpc_call *c)
{
    return c->path;
}

/* ----------------------------------------------------------- metadata */

int wv_grpc_metadata(wv_grpc_call *c, const char *name, wv_str *out)
{
    size_t nn = strlen(name);
    for (int i = 0; i < c->nmd; i++) {
        const size_t *o = c->md[i];
        if (o[1] != nn || memcmp(c->md_text.p + o[0], name, nn) != 0)
            continue;
        const char *v = c->md_text.p + o[2];
        /* a copy in the call's memory: md_text moves as fields arrive */
        if (grpc_metadata_is_binary(name, nn)) {
            uint8_t *d = wv_grpc_alloc(c, grpc_base64_decoded_max(o[3]) + 1);
            size_t dn = 0;
            if (!d)
                return -ENOMEM;
            if (grpc_base64_decode(v, o[3], d, &dn) < 0)
                return wv_fail(-EINVAL, "%s: %s is not base64", c->path + 1, name);
            d[dn] = 0;
            *out = (wv_str){(const char *)d, dn};
        } else {
            char *d = wv_grpc_alloc(c, o[3] + 1);
            if (!d)
                return -ENOMEM;
            memcpy(d, v, o[3]);
            d[o[3]] = 0;
            *out = (wv_str){d, o[3]};
        }
        return 0;
    }
    return -ENOENT;
}

int wv_grpc_metadata_count(const wv_grpc_call *c)
{
    return c->nmd;
}

void wv_grpc_metadata_at(const wv_grpc_call *c, int i, wv_str *name, wv_str *value)
{
    const size_t *o = c->md[i];
    *name = (wv_str){c->md_text.p + o[0], o[1]};
    *value = (wv_str){c->md_text.p + o[2], o[3]};
}
