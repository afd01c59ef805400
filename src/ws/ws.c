/*
 * WebSocket connections on the HTTP server: the opening handshake, whole
 * messages from frames (fragments, control frames between them, UTF-8 of
 * text checked as it arrives), automatic pongs, keepalive pings, the
 * closing handshake, and serialized sends. Frame bytes are the business of
 * frame.c (sans-I/O); this file owns the socket.
 *
 * After the 101 the connection belongs to the handler's fiber. Bytes that
 * arrived behind the handshake are moved into the connection's own buffer;
 * the HTTP buffer is left alone because the handler still holds slices of
 * the request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include "http/http_internal.h"
#include "weave/ws.h"
#include "ws/frame.h"
#include "ws/ws_internal.h"

enum { DEFAULT_MAX = 1 << 20, CLOSE_WAIT_MS = 1000 };

/* ---------------------------------------------------------------- sending */

int ws_send_frame(wv_ws *ws, uint8_t opcode, const void *data, size_t n)
{
    if (ws->broken)
        return -EPIPE;
    if (ws->close_sent)
        return -EPIPE;
    uint8_t head[14];
    size_t hl = ws_write_header(head, true, 0, opcode, n, NULL);
    struct iovec iov[2] = {{head, hl}, {(void *)data, n}};
    int rc = wv_mutex_lock(&ws->send_lock);
    if (rc < 0)
        return rc;
    ssize_t w = wv_writev(ws->fd, iov, n ? 2 : 1);
    wv_mutex_unlock(&ws->send_lock);
    if (w < 0) {
        ws->broken = true;
        return (int)w;
    }
    if (opcode == WS_OP_CLOSE)
        ws->close_sent = true;
    return 0;
}

int wv_ws_send(wv_ws *ws, int type, const void *data, size_t n)
{
    if (type != WV_WS_TEXT && type != WV_WS_BINARY)
        return -EINVAL;
    return ws_send_frame(ws, type == WV_WS_TEXT ? WS_OP_TEXT : WS_OP_BINARY, data, n);
}

int wv_ws_send_text(wv_ws *ws, const char *text)
{
    return wv_ws_send(ws, WV_WS_TEXT, text, strlen(text));
}

int wv_ws_ping(wv_ws *ws, const void *data, size_t n)
{
    if (n > 125)
        return -EINVAL;
    return ws_send_frame(ws, WS_OP_PING, data, n);
}

int ws_send_close(wv_ws *ws, int code, const char *reason)
{
    uint8_t p[125];
    size_t n = 0;
    if (code != WV_WS_NO_STATUS && code > 0) {
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        n = 2;
        if (reason) {
            size_t rl = strlen(reason);
            if (rl > 123)
                rl = 123;
            memcpy(p + 2, reason, rl);
            n += rl;
        }
    }
    return ws_send_frame(ws, WS_OP_CLOSE, p, n);
}

/* ------------------------------------------------------------- receiving */

/* Read more bytes into ws->in; >0, 0 at EOF, <0. Honours the keepalive:
 * silence past ping_due sends a ping, past pong_due is a dead peer. */
static ssize_t fill(wv_ws *ws)
{
    if (ws->pos > 0 && ws->pos == ws->in.n) {
        ws->in.n = ws->pos = 0;
    } else if (ws->pos > 65536) {
        memmove(ws->in.p, ws->in.p + ws->pos, ws->in.n - ws->pos);
        ws->in.n -= ws->pos;
        ws->pos = 0;
    }
    int rc = wv_buf_reserve(&ws->in, 16384);
    if (rc < 0)
        return rc;
    for (;;) {
        int64_t wake = ws->pong_due ? ws->pong_due : ws->ping_due;
        int64_t old = wv_deadline();
        bool ours = wake && wake < old;
        if (ours)
            wv_deadline_set(wake);
        ssize_t n = wv_read(ws->fd, ws->in.p + ws->in.n, ws->in.cap - ws->in.n);
        wv_deadline_set(old);
        if (n > 0) {
            ws->in.n += (size_t)n;
            ws->pong_due = 0;
            if (ws->ping_interval_ms > 0)
                ws->ping_due = wv_after_ms(ws->ping_interval_ms);
            return n;
        }
        if (n == -EBADF && ws->c->srv->stopping) {
            /* the server is shutting down (close_idle woke us) */
            ws_send_close(ws, WV_WS_GOING_AWAY, "server shutting down");
            return wv_fail(-ESHUTDOWN, "the server is shutting down");
        }
        if (n == -ETIMEDOUT && ours && wv_now() < old) {
            if (ws->pong_due) {
                ws_send_close(ws, WV_WS_INTERNAL_ERROR, "pong timeout");
                return wv_fail(-ETIMEDOUT, "websocket peer did not answer a ping");
            }
            wv_ws_ping(ws, "weave", 5);
            ws->pong_due = wv_after_ms(ws->pong_timeout_ms);
            continue;
        }
        return n;
    }
}

/* The peer broke the protocol: close with its code, log once, -EPROTO. */
static int violation(wv_ws *ws, int code, const char *why)
{
    wv_warn("websocket %s: %s; closing with %d", ws->c->peer, why, code);
    ws_send_close(ws, code, why);
    ws->broken = true;
    ws->c->linger = true; /* let the peer read our close before the socket goes */
    ws->close_code = WV_WS_ABNORMAL;
    return wv_fail(-EPROTO, "websocket: %s", why);
}

int wv_ws_recv(wv_ws *ws, wv_str *out)
{
    if (ws->close_received)
        return -EPIPE;
    if (ws->broken)
        return -ECONNRESET;
    ws->msg.n = 0;
    int type = 0;
    uint32_t utf8 = 0;
    int utf8_last = WS_UTF8_OK; /* what the last piece of text left us at */
    for (;;) {
        ws_header h;
        size_t avail = ws->in.n - ws->pos;
        int hs =
            ws_parse_header((uint8_t *)ws->in.p + ws->pos, avail, true, 0, ws->max_message, &h);
        if (hs < 0)
            return violation(ws, -hs, hs == -1009 ? "message too big" : "bad frame header");
        if (hs == 0 || avail < (size_t)hs + h.len) {
            if (hs > 0 && h.len > ws->max_message)
                return violation(ws, WV_WS_TOO_BIG, "message too big");
            if (hs > 0) {
                /* make room for the whole frame */
                int rc = wv_buf_reserve(&ws->in, (size_t)hs + (size_t)h.len);
                if (rc < 0)
                    return violation(ws, WV_WS_TOO_BIG, "message too big");
            }
            ssize_t n = fill(ws);
            if (n == 0) {
                ws->broken = true;
                ws->close_code = WV_WS_ABNORMAL;
                return wv_fail(-ECONNRESET, "websocket peer went away without a close frame");
            }
            if (n < 0) {
                if (n != -ETIMEDOUT && n != -ECANCELED)
                    ws->broken = true;
                return (int)n;
            }
            continue;
        }
        uint8_t *payload = (uint8_t *)ws->in.p + ws->pos + hs;
        ws_unmask(payload, (size_t)h.len, h.mask, 0);
        ws->pos += (size_t)hs + (size_t)h.len;
        switch (h.opcode) {
        case WS_OP_PING:
            ws_send_frame(ws, WS_OP_PONG, payload, (size_t)h.len);
            continue;
        case WS_OP_PONG:
            ws->pong_due = 0;
            continue;
        case WS_OP_CLOSE: {
            int code;
            const char *reason;
            size_t rl;
            int rc = ws_parse_close(payload, (size_t)h.len, &code, &reason, &rl);
            if (rc < 0)
                return violation(ws, -rc, "bad close frame");
            ws->close_received = true;
            ws->close_code = code;
            if (!ws->close_sent)
                ws_send_close(ws, code == WV_WS_NO_STATUS ? WV_WS_NORMAL : code, NULL);
            return -EPIPE;
        }
        case WS_OP_TEXT:
        case WS_OP_BINARY:
            if (type)
                return violation(ws, WV_WS_PROTOCOL_ERROR, "new message inside a fragmented one");
            type = h.opcode == WS_OP_TEXT ? WV_WS_TEXT : WV_WS_BINARY;
            break;
        case WS_OP_CONT:
            if (!type)
                return violation(ws, WV_WS_PROTOCOL_ERROR, "continuation without a message");
            break;
        default:
            return violation(ws, WV_WS_PROTOCOL_ERROR, "unknown opcode");
        }
        if (ws->msg.n + h.len > ws->max_message)
            return violation(ws, WV_WS_TOO_BIG, "message too big");
        if (type == WV_WS_TEXT) {
            utf8_last = ws_utf8_feed(&utf8, payload, (size_t)h.len);
            if (utf8_last == WS_UTF8_BAD)
                return violation(ws, WV_WS_INVALID_DATA, "text is not UTF-8");
        }
        if (h.fin && ws->msg.n == 0) {
            /* a single-frame message: hand out the bytes in place */
            if (type == WV_WS_TEXT && utf8_last != WS_UTF8_OK)
                return violation(ws, WV_WS_INVALID_DATA, "text is not UTF-8");
            *out = (wv_str){(const char *)payload, (size_t)h.len};
            return type;
        }
        if (wv_buf_append(&ws->msg, payload, (size_t)h.len) < 0)
            return violation(ws, WV_WS_TOO_BIG, "message too big");
        if (h.fin) {
            if (type == WV_WS_TEXT && utf8_last != WS_UTF8_OK)
                return violation(ws, WV_WS_INVALID_DATA, "text is not UTF-8");
            *out = (wv_str){ws->msg.p ? ws->msg.p : "", ws->msg.n};
            return type;
        }
    }
}

int wv_ws_close(wv_ws *ws, int code, const char *reason)
{
    if (!ws->close_sent && !ws->broken)
        ws_send_close(ws, code, reason);
    /* wait for the peer's close (bounded) so it is not cut off mid-reply */
    int64_t old = wv_deadline_set(wv_after_ms(CLOSE_WAIT_MS));
    wv_str ignored;
    while (!ws->close_received && !ws->broken) {
        int rc = wv_ws_recv(ws, &ignored);
        if (rc < 0)
            break;
    }
    wv_deadline_set(old);
    return 0;
}

int wv_ws_close_code(const wv_ws *ws)
{
    return ws->close_code;
}

const char *wv_ws_subprotocol(const wv_ws *ws)
{
    return ws->subprotocol;
}

/* After the handler: close cleanly if it did not, free the buffers. */
static void ws_done(void *arg)
{
    wv_ws *ws = arg;
    if (ws->rooms || ws->writer_running)
        hub_detach(ws);
    if (!ws->close_sent && !ws->broken) {
        int64_t old = wv_deadline_set(wv_after_ms(CLOSE_WAIT_MS));
        ws_send_close(ws, ws->c->srv->stopping ? WV_WS_GOING_AWAY : WV_WS_NORMAL, NULL);
        wv_deadline_set(old);
    }
    wv_buf_free(&ws->in);
    wv_buf_free(&ws->msg);
}

/* -------------------------------------------------------------- handshake */

static bool has_token(wv_str list, const char *token)
{
    if (!list.p)
        return false; /* the header is absent */
    size_t tl = strlen(token);
    const char *p = list.p, *end = list.p + list.n;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        const char *t = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > t && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        if ((size_t)(e - t) == tl && strncasecmp(t, token, tl) == 0)
            return true;
    }
    return false;
}

static int refuse(wv_res *res, int status, const char *why)
{
    wv_fail(-EINVAL, "%s", why);
    char body[256];
    snprintf(body, sizeof body, "{\"detail\":\"%s\"}", why);
    wv_res_json(res, status, body);
    return -EPROTO;
}

int wv_ws_accept(wv_req *req, wv_res *res, const wv_ws_opts *o, wv_ws **out)
{
    wv_ws_opts opts = o ? *o : (wv_ws_opts){0};
    *out = NULL;
    if (res->started)
        return -EALREADY;
    if (!wv_str_eq_cstr(req->h.method, "GET") || req->h.minor != 1)
        return refuse(res, 400, "a WebSocket handshake is an HTTP/1.1 GET");
    if (!has_token(wv_req_header(req, "Upgrade"), "websocket") ||
        !has_token(wv_req_header(req, "Connection"), "upgrade")) {
        wv_res_header(res, "Upgrade", "websocket");
        wv_res_header(res, "Connection", "Upgrade");
        return refuse(res, 426, "this route speaks WebSocket: send Upgrade: websocket");
    }
    wv_str version = wv_req_header(req, "Sec-WebSocket-Version");
    if (!wv_str_eq_cstr(version, "13")) {
        wv_res_header(res, "Sec-WebSocket-Version", "13");
        return refuse(res, 426, "unsupported Sec-WebSocket-Version (13 is)");
    }
    wv_str key = wv_req_header(req, "Sec-WebSocket-Key");
    char accept[29];
    if (!key.p || ws_accept_key(key.p, key.n, accept) < 0)
        return refuse(res, 400, "missing or malformed Sec-WebSocket-Key");
    if (opts.check_origin) {
        wv_str origin = wv_req_header(req, "Origin");
        if (!opts.check_origin(origin, opts.origin_arg))
            return refuse(res, 403, "origin not allowed");
    }
    const char *proto = NULL;
    wv_str offered = wv_req_header(req, "Sec-WebSocket-Protocol");
    for (const char *const *p = opts.subprotocols; p && *p && offered.p && !proto; p++)
        if (has_token(offered, *p))
            proto = *p;

    wv_ws *ws = wv_req_alloc(req, sizeof *ws);
    if (!ws)
        return -ENOMEM;
    memset(ws, 0, sizeof *ws);
    ws->c = req->c;
    ws->fd = req->c->fd;
    ws->max_message = opts.max_message ? opts.max_message : DEFAULT_MAX;
    ws->ping_interval_ms = opts.ping_interval_ms ? opts.ping_interval_ms : 30000;
    ws->pong_timeout_ms = opts.pong_timeout_ms > 0 ? opts.pong_timeout_ms : 10000;
    if (ws->ping_interval_ms > 0)
        ws->ping_due = wv_after_ms(ws->ping_interval_ms);
    ws->subprotocol = proto;

    /* the 101, written now: the connection is the handler's from here */
    wv_res_header(res, "Upgrade", "websocket");
    wv_res_header(res, "Connection", "Upgrade");
    wv_res_header(res, "Sec-WebSocket-Accept", accept);
    if (proto)
        wv_res_header(res, "Sec-WebSocket-Protocol", proto);
    res->upgraded = true;
    req->c->upgraded = true;
    int rc = wv_res_send(res, 101, NULL, NULL, 0);
    if (rc == 0)
        rc = res_flush(req->c);
    if (rc < 0)
        return rc;
    /* bytes that came right behind the handshake are WebSocket frames */
    if (wv_buf_reserve(&ws->in, 4096) < 0)
        return -ENOMEM;
    conn *c = req->c;
    size_t at = c->rstart + req->head_len;
    if (c->rlen > at) {
        if (wv_buf_append(&ws->in, c->rbuf + at, c->rlen - at) < 0)
            return -ENOMEM;
        c->rlen = at;
    }
    res->on_done = ws_done;
    res->on_done_arg = ws;
    *out = ws;
    return 0;
}
