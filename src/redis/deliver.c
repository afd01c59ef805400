/*
 * What a reply becomes for the op that waits for it: a tree in one
 * allocation, a bulk string copied into the caller's buffer, an integer,
 * a status. They run on the fiber that reads the connection, so they never
 * suspend; the common replies (GET's bulk string, SET's +OK, INCR's
 * integer) take the scanner's fast path and build no tree at all.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis_internal.h"

const char *redis_type_name(wv_redis_type t)
{
    switch (t) {
    case WV_REDIS_NIL:
        return "a nil";
    case WV_REDIS_STATUS:
        return "a status";
    case WV_REDIS_ERROR:
        return "an error";
    case WV_REDIS_INT:
        return "an integer";
    case WV_REDIS_STRING:
        return "a bulk string";
    case WV_REDIS_ARRAY:
        return "an array";
    case WV_REDIS_MAP:
        return "a map";
    case WV_REDIS_SET:
        return "a set";
    case WV_REDIS_DOUBLE:
        return "a double";
    case WV_REDIS_BOOL:
        return "a boolean";
    case WV_REDIS_BIGNUM:
        return "a big number";
    case WV_REDIS_VERBATIM:
        return "a verbatim string";
    case WV_REDIS_PUSH:
        return "a push message";
    }
    return "an unknown reply";
}

void wv_redis_reply_free(wv_redis_reply *reply)
{
    free(reply); /* the root heads the one allocation */
}

/* The whole reply as a tree in one allocation: [nodes][bytes]. */
static wv_redis_reply *build_tree(const char *p, size_t len, const resp_scanner *sc)
{
    size_t nodes = resp_scan_nodes(sc);
    if (nodes > (SIZE_MAX - len - 1) / sizeof(wv_redis_reply))
        return NULL;
    char *mem = malloc(nodes * sizeof(wv_redis_reply) + len + 1);
    if (!mem)
        return NULL;
    wv_redis_reply *root = (wv_redis_reply *)mem;
    char *bytes = mem + nodes * sizeof(wv_redis_reply);
    memcpy(bytes, p, len);
    bytes[len] = '\0';
    resp_build(bytes, len, root, nodes);
    return root;
}

/* An error reply's words: "-ERR x\r\n" or a blob error, NUL-terminated in
 * place (the bytes are the reader's to change). */
static void fail_with_error_reply(redis_op *op, char *p, const resp_scanner *sc)
{
    wv_str text = resp_scan_text(sc, p);
    redis_op_fail(op, -EIO, "%.*s", (int)(text.n < REDIS_MSG ? text.n : REDIS_MSG - 1), text.p);
}

void redis_deliver_tree(redis_op *op, char *p, size_t len, const resp_scanner *sc)
{
    wv_redis_reply **slots = op->out;
    if (!op->keep_errors && resp_scan_type(sc) == WV_REDIS_ERROR) {
        fail_with_error_reply(op, p, sc);
        return;
    }
    wv_redis_reply *tree = build_tree(p, len, sc);
    if (!tree) {
        redis_op_fail(op, -ENOMEM, "redis: no memory for a reply of %zu bytes", len);
        return;
    }
    if (slots)
        slots[op->req.got] = tree;
    else
        wv_redis_reply_free(tree);
}

void redis_deliver_bulk(redis_op *op, char *p, size_t len, const resp_scanner *sc)
{
    wv_redis_type t = resp_scan_type(sc);
    if (t == WV_REDIS_STRING || t == WV_REDIS_VERBATIM) {
        wv_str v = resp_scan_text(sc, p);
        if (op->out && wv_buf_append(op->out, v.p, v.n) < 0) {
            redis_op_fail(op, -ENOMEM, "redis: a value of %zu bytes does not fit the buffer", v.n);
            return;
        }
        op->integer = 1;
    } else if (t == WV_REDIS_NIL) {
        op->integer = 0;
    } else if (t == WV_REDIS_ERROR) {
        fail_with_error_reply(op, p, sc);
    } else {
        redis_op_fail(op, -EPROTO, "the server answered %s, not a bulk string", redis_type_name(t));
    }
    (void)len;
}

void redis_deliver_int(redis_op *op, char *p, size_t len, const resp_scanner *sc)
{
    wv_redis_type t = resp_scan_type(sc);
    if (t == WV_REDIS_INT || t == WV_REDIS_BOOL)
        op->integer = resp_scan_integer(sc);
    else if (t == WV_REDIS_ERROR)
        fail_with_error_reply(op, p, sc);
    else
        redis_op_fail(op, -EPROTO, "the server answered %s, not an integer", redis_type_name(t));
    (void)len;
}

void redis_deliver_status(redis_op *op, char *p, size_t len, const resp_scanner *sc)
{
    wv_redis_type t = resp_scan_type(sc);
    if (t == WV_REDIS_STATUS || t == WV_REDIS_STRING)
        op->integer = 1;
    else if (t == WV_REDIS_NIL)
        op->integer = 0;
    else if (t == WV_REDIS_ERROR)
        fail_with_error_reply(op, p, sc);
    else
        redis_op_fail(op, -EPROTO, "the server answered %s, not a status", redis_type_name(t));
    (void)len;
}

void redis_deliver_ignore(redis_op *op, char *p, size_t len, const resp_scanner *sc)
{
    if (resp_scan_type(sc) == WV_REDIS_ERROR)
        fail_with_error_reply(op, p, sc);
    (void)len;
}
