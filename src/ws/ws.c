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
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <netdb.h>
#include <pthread.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "weave/ws.h"
#include "ws/frame.h"
#include "ws/ws_internal.h"

enum { DEFAULT_MAX = 1 << 20, CLOSE_WAIT_MS = 1000, DEFLATE_MIN = 32, BATCH_MAX = 64 * 1024 };

/* ---------------------------------------------------------------- sending */

/* Masking keys for client frames: a per-thread xorshift seeded from the
 * kernel's entropy (RFC 6455 10.3 wants them unpredictable to the page). */
static uint32_t mask_key(void)
{
    static _Thread_local uint64_t x;
    if (!x && (getrandom(&x, sizeof x, 0) != (ssize_t)sizeof x || !x))
        x = (uint64_t)wv_now() | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return (uint32_t)(x >> 16);
}

/* ------------------------------------------------------- permessage-deflate */

/* Compress one message into ws->zsend, without the final 00 00 ff ff
 * (RFC 7692 7.2.1). <0: send it uncompressed. */
static int compress_message(wv_ws *ws, const void *data, size_t n)
{
    if (!ws->zout_ready) {
        memset(&ws->zout, 0, sizeof ws->zout);
        if (deflateInit2(&ws->zout, 6, Z_DEFLATED, -ws->server_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return -ENOMEM;
        ws->zout_ready = true;
    }
    ws->zsend.n = 0;
    if (wv_buf_reserve(&ws->zsend, n + 64) < 0)
        return -ENOMEM;
    ws->zout.next_in = (Bytef *)data;
    ws->zout.avail_in = (uInt)n;
    for (;;) {
        ws->zout.next_out = (Bytef *)ws->zsend.p + ws->zsend.n;
        ws->zout.avail_out = (uInt)(ws->zsend.cap - ws->zsend.n);
        int zr = deflate(&ws->zout, Z_SYNC_FLUSH);
        ws->zsend.n = ws->zsend.cap - ws->zout.avail_out;
        if (zr != Z_OK && zr != Z_BUF_ERROR)
            return -EIO;
        if (ws->zout.avail_out > 0)
            break;
        if (wv_buf_reserve(&ws->zsend, 4096) < 0)
            return -ENOMEM;
    }
    if (ws->zsend.n >= 4 && memcmp(ws->zsend.p + ws->zsend.n - 4, "\x00\x00\xff\xff", 4) == 0)
        ws->zsend.n -= 4;
    if (ws->server_no_ctx)
        deflateReset(&ws->zout);
    return 0;
}

/* Inflate a gathered message (ws->zsend) into ws->msg, never past the
 * message limit: a small frame must not expand into gigabytes. */
static int inflate_message(wv_ws *ws)
{
    if (!ws->zin_ready) {
        memset(&ws->zin, 0, sizeof ws->zin);
        if (inflateInit2(&ws->zin, -ws->client_bits) != Z_OK)
            return -ENOMEM;
        ws->zin_ready = true;
    }
    if (wv_buf_append(&ws->zgather, "\x00\x00\xff\xff", 4) < 0)
        return -ENOMEM;
    ws->msg.n = 0;
    ws->zin.next_in = (Bytef *)ws->zgather.p;
    ws->zin.avail_in = (uInt)ws->zgather.n;
    for (;;) {
        size_t room = ws->max_message + 1 - ws->msg.n;
        if (wv_buf_reserve(&ws->msg, room < 65536 ? room : 65536) < 0)
            return -ENOMEM;
        size_t take = ws->msg.cap - ws->msg.n;
        if (take > room)
            take = room;
        ws->zin.next_out = (Bytef *)ws->msg.p + ws->msg.n;
        ws->zin.avail_out = (uInt)take;
        int zr = inflate(&ws->zin, Z_SYNC_FLUSH);
        ws->msg.n += take - ws->zin.avail_out;
        if (ws->msg.n > ws->max_message)
            return -EMSGSIZE;
        if (zr != Z_OK && zr != Z_BUF_ERROR && zr != Z_STREAM_END)
            return -EPROTO;
        if (ws->zin.avail_in == 0 && ws->zin.avail_out > 0)
            break;
        if (zr == Z_BUF_ERROR && ws->zin.avail_out > 0)
            break;
    }
    ws->zgather.n = 0;
    if (ws->client_no_ctx)
        inflateReset(&ws->zin);
    return 0;
}

static void flush_deferred(wv_pass_hook *h);

/* The end of a half-written frame goes first (the send lock is held), and
 * what the stream kept of an earlier try_writev before that. */
static int write_pending(wv_ws *ws)
{
    if (ws->wpending.n == 0) {
        int rc = wv_stream_flush(ws->s);
        if (rc < 0)
            ws->broken = true;
        return rc;
    }
    ssize_t w = wv_stream_write(ws->s, ws->wpending.p + ws->wpending_off,
                                ws->wpending.n - ws->wpending_off);
    if (w < 0) {
        ws->broken = true;
        return (int)w;
    }
    ws->wpending.n = 0;
    ws->wpending_off = 0;
    return 0;
}

int ws_flush_pending(wv_ws *ws)
{
    int rc = wv_mutex_lock(&ws->send_lock);
    if (rc < 0)
        return rc;
    rc = write_pending(ws);
    wv_mutex_unlock(&ws->send_lock);
    return rc;
}

/* A fiber that finishes writing what the socket would not take at once. */
static int flusher(void *arg)
{
    wv_ws *ws = arg;
    int64_t old = wv_deadline_set(WV_NEVER);
    ws_flush_pending(ws);
    wv_deadline_set(old);
    ws->flushing = false;
    if (--ws->remote_senders == 0 && ws->draining)
        wv_event_set(&ws->senders_done);
    return 0;
}

/* The end of a pass: write the frames gathered in wpending without
 * waiting; what the socket does not take goes to a flusher fiber. A sender
 * holding the lock writes them itself (or defers again when it leaves). */
static void flush_deferred(wv_pass_hook *h)
{
    wv_ws *ws = (wv_ws *)((char *)h - offsetof(wv_ws, flush_hook));
    if (ws->send_lock.owner_ || ws->broken || ws->flushing ||
        (!ws->wpending.n && !wv_stream_unsent(ws->s)))
        return;
    size_t left = ws->wpending.n - ws->wpending_off;
    struct iovec iov = {ws->wpending.p + ws->wpending_off, left};
    ssize_t w = left ? wv_stream_try_writev(ws->s, &iov, 1) : 0;
    if (w == (ssize_t)left && !wv_stream_unsent(ws->s)) {
        ws->wpending.n = 0;
        ws->wpending_off = 0;
        if (ws->wpending.cap > 16384)
            wv_buf_free(&ws->wpending); /* a burst is over: do not pin 64 KiB */
        return;
    }
    if (w < 0) {
        ws->broken = true;
        return;
    }
    ws->wpending_off += (size_t)w;
    if (ws->wpending_off == ws->wpending.n)
        ws->wpending.n = ws->wpending_off = 0; /* only the stream's kept record is left */
    ws->flushing = true;
    ws->remote_senders++; /* the teardown waits for it */
    if (wv_spawn(flusher, ws, &(wv_spawn_opts){.name = "ws-flush"}) < 0) {
        ws->flushing = false;
        ws->remote_senders--;
        ws->broken = true;
        wv_stream_shutdown(ws->s, SHUT_RDWR);
    }
}

int ws_send_nowait(wv_ws *ws, const void *frame, size_t n)
{
    if (ws->broken || ws->close_sent)
        return -EPIPE;
    if (ws->send_lock.owner_ || ws->wpending.n || wv_stream_unsent(ws->s) || ws->deflate ||
        ws->client)
        return 0;
    ssize_t w = wv_stream_try_write(ws->s, frame, n);
    if (w < 0) {
        ws->broken = true;
        return -EPIPE;
    }
    if (w == 0)
        return 0;
    size_t done = (size_t)w;
    if (done == n) {
        if (wv_stream_unsent(ws->s)) /* a TLS record is left to send */
            wv_pass_hook_queue(&ws->flush_hook, flush_deferred);
        return 1;
    }
    /* half a frame is out: keep the rest; nothing may go before it */
    if (wv_buf_append(&ws->wpending, (const char *)frame + done, n - done) < 0) {
        /* the stream cannot be completed: nothing after this is trustworthy */
        ws->broken = true;
        wv_stream_shutdown(ws->s, SHUT_RDWR);
        return -EPIPE;
    }
    wv_pass_hook_queue(&ws->flush_hook, flush_deferred);
    return 1;
}

int ws_send_frame(wv_ws *ws, uint8_t opcode, const void *data, size_t n)
{
    if (ws->broken || ws->close_sent)
        return -EPIPE;
    uint8_t head[14];
    uint8_t *masked = NULL;
    size_t hl;
    if (ws->client) {
        uint32_t r = mask_key();
        uint8_t key[4];
        memcpy(key, &r, sizeof key);
        if (n) {
            masked = malloc(n);
            if (!masked)
                return -ENOMEM;
            memcpy(masked, data, n);
            ws_unmask(masked, n, key, 0); /* XOR: masking and unmasking are one */
            data = masked;
        }
        hl = ws_write_header(head, true, 0, opcode, n, key);
    } else {
        hl = ws_write_header(head, true, 0, opcode, n, NULL);
    }
    int rc = wv_mutex_lock(&ws->send_lock);
    if (rc < 0) {
        free(masked);
        return rc;
    }
    if (ws->broken || ws->close_sent) { /* while we waited for the lock */
        wv_mutex_unlock(&ws->send_lock);
        free(masked);
        return -EPIPE;
    }
    if (ws->deflate && !ws->client && (opcode == WS_OP_TEXT || opcode == WS_OP_BINARY) &&
        n >= DEFLATE_MIN && compress_message(ws, data, n) == 0) {
        /* the compressed bytes go out instead, with RSV1 */
        data = ws->zsend.p;
        n = ws->zsend.n;
        hl = ws_write_header(head, true, WS_RSV1, opcode, n, NULL);
    }
    if (ws->wpending.n + hl + n <= BATCH_MAX) {
        /* gathered with this pass's other frames, written once the shard's
         * ready fibers have run: one system call for a burst of replies */
        rc = wv_buf_append(&ws->wpending, head, hl);
        if (rc == 0 && n)
            rc = wv_buf_append(&ws->wpending, data, n);
        if (rc < 0) { /* half a frame may be in: the stream is lost */
            ws->broken = true;
            wv_stream_shutdown(ws->s, SHUT_RDWR);
        } else if (opcode == WS_OP_CLOSE) {
            ws->close_sent = true;
        }
        wv_mutex_unlock(&ws->send_lock);
        free(masked);
        if (rc == 0)
            wv_pass_hook_queue(&ws->flush_hook, flush_deferred);
        return rc < 0 ? -EPIPE : 0;
    }
    if ((rc = write_pending(ws)) < 0) {
        wv_mutex_unlock(&ws->send_lock);
        free(masked);
        return rc;
    }
    struct iovec iov[2] = {{head, hl}, {(void *)data, n}};
    ssize_t w = wv_stream_writev(ws->s, iov, n ? 2 : 1);
    wv_mutex_unlock(&ws->send_lock);
    free(masked);
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
    int rc = ws_send_frame(ws, WS_OP_CLOSE, p, n);
    /* a close goes out now, with whatever was gathered before it: the
     * socket may be closed or shut down right after */
    if (rc == 0 && ws->wpending.n)
        rc = ws_flush_pending(ws);
    return rc;
}

/* ------------------------------------------------------------- receiving */

/* Read more bytes into ws->in; >0, 0 at EOF, <0. Honours the keepalive:
 * silence past ping_due sends a ping, past pong_due is a dead peer.
 *
 * An idle connection holds no receive buffer: when nothing is buffered and
 * the last read emptied the socket, the buffer is freed and the fiber waits
 * for readiness first, then takes 2 KiB again and reads. (Freed at once, so
 * the next connection reuses the memory: measured by ws.conn_rss.) The first
 * such wait also gives back the stack pages the handshake's deeper calls
 * touched. (wv_stream_wait also sees bytes a TLS library holds.) */
static ssize_t fill(wv_ws *ws)
{
    if (ws->pos > 0 && ws->pos == ws->in.n) {
        ws->in.n = ws->pos = 0;
    } else if (ws->pos > 65536) {
        memmove(ws->in.p, ws->in.p + ws->pos, ws->in.n - ws->pos);
        ws->in.n -= ws->pos;
        ws->pos = 0;
    }
    for (;;) {
        if (!ws->client && wv_stopping()) {
            /* stopping while this handler was busy elsewhere (a sleep):
             * its wake-up at shutdown was missed, so say goodbye here */
            ws_send_close(ws, WV_WS_GOING_AWAY, "server shutting down");
            return wv_fail(-ESHUTDOWN, "the server is shutting down");
        }
        int64_t wake = ws->pong_due ? ws->pong_due : ws->ping_due;
        int64_t old = wv_deadline();
        bool ours = wake && wake < old;
        if (ours)
            wv_deadline_set(wake);
        ssize_t n = 0;
        if (ws->in.n == 0 && ws->drained) {
            wv_buf_free(&ws->in);
            if (!ws->trimmed) { /* the handshake's deep calls are over */
                wv_fiber_trim_stack();
                ws->trimmed = true;
            }
            n = wv_stream_wait(ws->s, WV_IN, wv_deadline());
            ws->drained = n < 0;
            n = n < 0 ? n : 0;
        }
        /* 2 KiB free is enough to make progress (a bigger frame reserves
         * its own room before calling here) */
        if (n == 0 && (n = wv_buf_reserve(&ws->in, 2048)) == 0) {
            size_t room = ws->in.cap - ws->in.n;
            n = wv_stream_read(ws->s, ws->in.p + ws->in.n, room);
            ws->drained = n > 0 && (size_t)n < room;
        }
        wv_deadline_set(old);
        if (n > 0) {
            ws->in.n += (size_t)n;
            ws->pong_due = 0;
            if (ws->ping_interval_ms > 0)
                ws->ping_due = wv_after_ms(ws->ping_interval_ms);
            return n;
        }
        if (n == -EBADF && !ws->client && wv_stopping())
            continue; /* the server is shutting down (close_idle woke us) */
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
    wv_warn("websocket %s: %s; closing with %d", ws->peer, why, code);
    ws_send_close(ws, code, why);
    ws->broken = true; /* HTTP lingers before closing: the peer reads our close */
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
    bool compressed = false;
    ws->zgather.n = 0;
    uint32_t utf8 = 0;
    int utf8_last = WS_UTF8_OK; /* what the last piece of text left us at */
    for (;;) {
        ws_header h;
        size_t avail = ws->in.n - ws->pos;
        /* a compressed frame may be a little larger than what it inflates to */
        size_t frame_max =
            ws->deflate ? ws->max_message + ws->max_message / 64 + 1024 : ws->max_message;
        /* in.p is NULL while idle (fill freed it) */
        const uint8_t *at = avail ? (const uint8_t *)ws->in.p + ws->pos : (const uint8_t *)"";
        int hs = ws_parse_header(at, avail, !ws->client, ws->deflate ? WS_RSV1 : 0, frame_max, &h);
        if (hs < 0)
            return violation(ws, -hs, hs == -1009 ? "message too big" : "bad frame header");
        if (hs == 0 || avail < (size_t)hs + h.len) {
            if (hs > 0 && h.len > frame_max)
                return violation(ws, WV_WS_TOO_BIG, "message too big");
            if (hs > 0) {
                /* make room for the whole frame */
                int rc = wv_buf_reserve(&ws->in, (size_t)hs + (size_t)h.len);
                if (rc < 0)
                    return violation(ws, WV_WS_TOO_BIG, "message too big");
            }
            ssize_t n = fill(ws);
            if (n == 0) {
                /* the peer closed its side only: frames the handler has
                 * already sent (gathered for the end of the pass) still go */
                if (ws->wpending.n)
                    ws_flush_pending(ws);
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
        if ((h.rsv & WS_RSV1) && (h.opcode >= 8 || h.opcode == WS_OP_CONT))
            return violation(ws, WV_WS_PROTOCOL_ERROR, "RSV1 on a control or continuation frame");
        uint8_t *payload = (uint8_t *)ws->in.p + ws->pos + hs;
        if (h.masked)
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
            compressed = (h.rsv & WS_RSV1) != 0;
            break;
        case WS_OP_CONT:
            if (!type)
                return violation(ws, WV_WS_PROTOCOL_ERROR, "continuation without a message");
            break;
        default:
            return violation(ws, WV_WS_PROTOCOL_ERROR, "unknown opcode");
        }
        if (compressed) {
            /* gather the compressed message; inflate it whole at its end */
            /* incompressible data grows a little under deflate (stored
             * blocks): allow the wire size that much over the limit */
            size_t wire_max = ws->max_message + ws->max_message / 64 + 1024;
            if (ws->zgather.n + h.len > wire_max ||
                wv_buf_append(&ws->zgather, payload, (size_t)h.len) < 0)
                return violation(ws, WV_WS_TOO_BIG, "message too big");
            if (!h.fin)
                continue;
            int zr = inflate_message(ws);
            if (zr == -EMSGSIZE)
                return violation(ws, WV_WS_TOO_BIG, "message too big once inflated");
            if (zr < 0)
                return violation(ws, WV_WS_INVALID_DATA, "bad deflate data");
            if (type == WV_WS_TEXT &&
                ws_utf8_feed(&utf8, (const uint8_t *)ws->msg.p, ws->msg.n) != WS_UTF8_OK)
                return violation(ws, WV_WS_INVALID_DATA, "text is not UTF-8");
            *out = (wv_str){ws->msg.p ? ws->msg.p : "", ws->msg.n};
            return type;
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

static void ws_free_buffers(wv_ws *ws)
{
    wv_buf_free(&ws->in);
    wv_buf_free(&ws->msg);
    wv_buf_free(&ws->zgather);
    wv_buf_free(&ws->zsend);
    wv_buf_free(&ws->wpending);
    if (ws->zin_ready)
        inflateEnd(&ws->zin);
    if (ws->zout_ready)
        deflateEnd(&ws->zout);
}

/* After the handler: close cleanly if it did not, free the buffers. */
static void ws_done(void *arg)
{
    wv_ws *ws = arg;
    ws_unregister(ws); /* no new wv_ws_send_to from here on */
    if (ws->rooms || ws->writer_running)
        hub_detach(ws);
    int64_t old = wv_deadline_set(wv_after_ms(CLOSE_WAIT_MS));
    if (ws->opened && !ws->close_sent && !ws->broken)
        ws_send_close(ws, wv_stopping() ? WV_WS_GOING_AWAY : WV_WS_NORMAL, NULL);
    if (ws->s && (ws->wpending.n || wv_stream_unsent(ws->s)) && !ws->broken)
        ws_flush_pending(ws); /* the socket closes after this */
    wv_deadline_set(old);
    wv_pass_hook_cancel(&ws->flush_hook);
    ws_drain_senders(ws);
    ws_free_buffers(ws);
    free(ws);
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

/* One token or param=value of an extension offer, trimmed. */
static wv_str trim(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t'))
        p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    return (wv_str){p, (size_t)(e - p)};
}

static int window_bits(wv_str v, int lo)
{
    if (v.n >= 2 && v.p[0] == '"' && v.p[v.n - 1] == '"')
        v = (wv_str){v.p + 1, v.n - 2};
    if (v.n < 1 || v.n > 2)
        return -1;
    int n = 0;
    for (size_t i = 0; i < v.n; i++) {
        if (v.p[i] < '0' || v.p[i] > '9')
            return -1;
        n = n * 10 + (v.p[i] - '0');
    }
    return n >= lo && n <= 15 ? n : -1;
}

/* Accept the first permessage-deflate offer (RFC 7692) we can honour and
 * write the response's extension value. zlib cannot compress with an
 * 8-bit window, so an offer that insists on server_max_window_bits=8 is
 * declined. */
static bool negotiate_deflate(wv_str ext, wv_ws *ws, char *out, size_t cap)
{
    if (!ext.p)
        return false; /* nothing offered */
    const char *p = ext.p, *end = ext.p + ext.n;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *oe = comma ? comma : end;
        bool ok = true, seen[4] = {false};
        bool sno = false, cno = false;
        int sbits = 15, cbits = 15;
        const char *q = p;
        int idx = 0;
        while (q < oe && ok) {
            const char *semi = memchr(q, ';', (size_t)(oe - q));
            const char *pe = semi ? semi : oe;
            wv_str t = trim(q, pe);
            const char *eq = memchr(t.p, '=', t.n);
            wv_str name = eq ? trim(t.p, eq) : t;
            wv_str val = eq ? trim(eq + 1, t.p + t.n) : (wv_str){NULL, 0};
            if (idx == 0) {
                ok = wv_str_eq_cstr(t, "permessage-deflate");
            } else if (wv_str_eq_cstr(name, "server_no_context_takeover") && !val.p && !seen[0]) {
                sno = seen[0] = true;
            } else if (wv_str_eq_cstr(name, "client_no_context_takeover") && !val.p && !seen[1]) {
                cno = seen[1] = true;
            } else if (wv_str_eq_cstr(name, "server_max_window_bits") && val.p && !seen[2]) {
                seen[2] = true;
                sbits = window_bits(val, 9);
                ok = sbits > 0;
            } else if (wv_str_eq_cstr(name, "client_max_window_bits") && !seen[3]) {
                seen[3] = true;
                if (val.p) {
                    cbits = window_bits(val, 8);
                    ok = cbits > 0;
                }
            } else {
                ok = false; /* an unknown or repeated parameter: decline this offer */
            }
            idx++;
            q = semi ? semi + 1 : oe;
        }
        if (ok && idx > 0) {
            ws->deflate = true;
            ws->server_no_ctx = sno;
            ws->client_no_ctx = cno;
            ws->server_bits = sbits;
            ws->client_bits = cbits;
            snprintf(out, cap, "permessage-deflate%s%s", sno ? "; server_no_context_takeover" : "",
                     cno ? "; client_no_context_takeover" : "");
            if (seen[2]) {
                size_t l = strlen(out);
                snprintf(out + l, cap - l, "; server_max_window_bits=%d", sbits);
            }
            if (seen[3] && cbits != 15) {
                size_t l = strlen(out);
                snprintf(out + l, cap - l, "; client_max_window_bits=%d", cbits);
            }
            return true;
        }
        p = comma ? comma + 1 : end;
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
    if (wv_res_started(res))
        return -EALREADY;
    if (!wv_str_eq_cstr(wv_req_method(req), "GET") || wv_req_version(req) != 11)
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

    /* not from the request arena: that would pin a 4 KiB block for the
     * connection's whole life for a few hundred bytes; ws_done frees it */
    wv_ws *ws = calloc(1, sizeof *ws);
    if (!ws)
        return -ENOMEM;
    wv_res_on_done(res, ws_done, ws); /* frees it, whatever happens below */
    snprintf(ws->peer, sizeof ws->peer, "%s", wv_req_peer(req));
    ws->max_message = opts.max_message ? opts.max_message : DEFAULT_MAX;
    ws->ping_interval_ms = opts.ping_interval_ms ? opts.ping_interval_ms : 30000;
    ws->pong_timeout_ms = opts.pong_timeout_ms > 0 ? opts.pong_timeout_ms : 10000;
    if (ws->ping_interval_ms > 0)
        ws->ping_due = wv_after_ms(ws->ping_interval_ms);
    ws->subprotocol = proto;

    /* the 101, written now: the connection is the handler's from here, and
     * bytes that came right behind the handshake are WebSocket frames */
    wv_res_header(res, "Upgrade", "websocket");
    wv_res_header(res, "Connection", "Upgrade");
    wv_res_header(res, "Sec-WebSocket-Accept", accept);
    if (proto)
        wv_res_header(res, "Sec-WebSocket-Protocol", proto);
    char ext[160];
    if (!opts.no_compression &&
        negotiate_deflate(wv_req_header(req, "Sec-WebSocket-Extensions"), ws, ext, sizeof ext))
        wv_res_header(res, "Sec-WebSocket-Extensions", ext);
    int rc = wv_res_upgrade(res, &ws->s, &ws->in);
    if (rc < 0)
        return rc;
    ws->opened = true;
    /* nothing came behind the handshake: the first receive waits without a
     * buffer and with the handshake's stack pages given back, like every
     * idle wait after it (a client that only listens costs that from the
     * start); the stream knows whether its last read left bytes behind */
    if (ws->in.n == 0)
        ws->drained = true;
    else if (wv_buf_reserve(&ws->in, 2048) < 0)
        return -ENOMEM;
    rc = ws_register(ws);
    if (rc < 0)
        return rc;
    *out = ws;
    return 0;
}

/* ---------------------------------------------------------------- client */

static bool header_has(const char *head, const char *name, const char *token)
{
    size_t nl = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line && line[2];
         line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            const char *eol = strstr(v, "\r\n");
            wv_str value = {v, eol ? (size_t)(eol - v) : strlen(v)};
            if (has_token(value, token))
                return true;
        }
    }
    return false;
}

/* The value of the response head's first `name` header, trimmed; .p is
 * NULL when absent. */
static wv_str header_value(const char *head, const char *name)
{
    size_t nl = strlen(name);
    for (const char *line = strstr(head, "\r\n"); line && line[2];
         line = strstr(line + 2, "\r\n")) {
        const char *l = line + 2;
        if (strncasecmp(l, name, nl) == 0 && l[nl] == ':') {
            const char *v = l + nl + 1;
            const char *eol = strstr(v, "\r\n");
            return trim(v, eol ? eol : v + strlen(v));
        }
    }
    return (wv_str){NULL, 0};
}

int wv_ws_connect(const char *url, const wv_ws_connect_opts *o, wv_ws **out)
{
    wv_ws_connect_opts opts = o ? *o : (wv_ws_connect_opts){0};
    *out = NULL;
    char shown[256];
    wv_url_redact(url, shown, sizeof shown);
    wv_url u;
    int rc = wv_url_parse(url, &u);
    if (rc < 0)
        return rc;
    bool tls = strcmp(u.scheme, "wss") == 0;
    if (!tls && strcmp(u.scheme, "ws") != 0) {
        wv_url_free(&u);
        return wv_fail(-EINVAL, "not a ws:// or wss:// URL: %s", shown);
    }
    if (!u.host[0]) {
        wv_url_free(&u);
        return wv_fail(-EINVAL, "no host in %s", shown);
    }
    wv_ws *ws = calloc(1, sizeof *ws);
    if (!ws) {
        wv_url_free(&u);
        return -ENOMEM;
    }
    ws->client = true;
    bool v6 = strchr(u.host, ':') != NULL;
    snprintf(ws->peer, sizeof ws->peer, "%s%.40s%s:%d", v6 ? "[" : "", u.host, v6 ? "]" : "",
             u.port);
    /* frames are whole writes: TCP_NODELAY, the dialer's default */
    wv_dial_opts dial = {.tls = tls ? (opts.tls ? opts.tls : wv_tls_ctx_default()) : NULL};
    if (tls && !dial.tls)
        rc = -EPROTO;
    else
        rc = wv_dial_host(u.host, u.port, &dial, &ws->s);
    if (rc < 0) {
        char why[200];
        snprintf(why, sizeof why, "%s", wv_errmsg());
        wv_url_free(&u);
        wv_ws_free(ws);
        return wv_fail(rc, "%s: %s", shown, why);
    }
    uint8_t nonce[16];
    for (int i = 0; i < 16; i += 4) {
        uint32_t r = mask_key();
        memcpy(nonce + i, &r, 4);
    }
    char key[25], expect[29];
    ws_base64(nonce, sizeof nonce, key);
    ws_accept_key(key, 24, expect);
    wv_buf req = {0};
    wv_buf_printf(&req, "GET %s%s%s%s HTTP/1.1\r\nHost: %s%s%s", u.path[0] ? "" : "/", u.path,
                  u.query ? "?" : "", u.query ? u.query : "", v6 ? "[" : "", u.host, v6 ? "]" : "");
    if (u.port != wv_url_default_port(u.scheme))
        wv_buf_printf(&req, ":%d", u.port);
    wv_buf_printf(&req,
                  "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                  "Sec-WebSocket-Version: 13\r\n",
                  key);
    wv_url_free(&u);
    for (size_t i = 0; i < req.n; i++) /* nothing from the URL may split the head */
        if (((unsigned char)req.p[i] < ' ' && req.p[i] != '\r' && req.p[i] != '\n') ||
            req.p[i] == 0x7f)
            rc = wv_fail(-EINVAL, "bad character in %s", shown);
    if (opts.origin)
        wv_buf_printf(&req, "Origin: %s\r\n", opts.origin);
    for (const char *const *p = opts.subprotocols; p && *p; p++)
        wv_buf_printf(&req, "Sec-WebSocket-Protocol: %s\r\n", *p);
    if (rc == 0)
        rc = wv_buf_puts(&req, "\r\n");
    if (rc == 0) {
        ssize_t w = wv_stream_write(ws->s, req.p, req.n);
        rc = w < 0 ? (int)w : 0;
    }
    wv_buf_free(&req);

    /* the response head, then frames may follow in the same read */
    char *head_end = NULL;
    while (rc == 0 && !head_end) {
        if (ws->in.n > 16384) {
            rc = wv_fail(-EPROTO, "%s: the handshake response is too long", shown);
            break;
        }
        rc = wv_buf_reserve(&ws->in, 4096);
        if (rc < 0)
            break;
        ssize_t n = wv_stream_read(ws->s, ws->in.p + ws->in.n, ws->in.cap - ws->in.n - 1);
        if (n <= 0) {
            rc = n == 0 ? wv_fail(-ECONNRESET, "%s closed during the handshake", shown) : (int)n;
            break;
        }
        ws->in.n += (size_t)n;
        ws->in.p[ws->in.n] = '\0';
        head_end = strstr(ws->in.p, "\r\n\r\n");
    }
    if (rc == 0) {
        *head_end = '\0';
        char accept_hdr[64];
        snprintf(accept_hdr, sizeof accept_hdr, "%s", expect);
        const char *acc = strcasestr(ws->in.p, "\r\nSec-WebSocket-Accept:");
        const char *v = acc ? acc + 23 : NULL;
        while (v && (*v == ' ' || *v == '\t'))
            v++;
        if (strncmp(ws->in.p, "HTTP/1.1 101", 12) != 0) {
            const char *eol = strstr(ws->in.p, "\r\n");
            rc = wv_fail(-EPROTO, "%s answered '%.*s'", shown, (int)(eol ? eol - ws->in.p : 60),
                         ws->in.p);
        } else if (!header_has(ws->in.p, "Upgrade", "websocket") ||
                   !header_has(ws->in.p, "Connection", "upgrade") || !v ||
                   strncmp(v, accept_hdr, 28) != 0) {
            rc = wv_fail(-EPROTO, "%s: bad 101 (Upgrade, Connection or Sec-WebSocket-Accept)",
                         shown);
        }
    }
    if (rc == 0) {
        /* the subprotocol chosen must be exactly one we offered (RFC 6455
         * 4.1: otherwise the client fails the connection) */
        wv_str chosen = header_value(ws->in.p, "Sec-WebSocket-Protocol");
        for (const char *const *p = opts.subprotocols; chosen.p && p && *p; p++)
            if (wv_str_eq_cstr(chosen, *p))
                ws->subprotocol = *p;
        if (chosen.p && !ws->subprotocol)
            rc = wv_fail(-EPROTO,
                         "%s: the server chose the subprotocol \"%.*s\", which we did not offer",
                         shown, (int)(chosen.n > 64 ? 64 : chosen.n), chosen.p);
    }
    if (rc < 0) {
        wv_ws_free(ws);
        return rc;
    }
    /* keep what followed the head: frames */
    ws->pos = (size_t)(head_end - ws->in.p) + 4;
    ws->max_message = opts.max_message ? opts.max_message : DEFAULT_MAX;
    ws->ping_interval_ms = opts.ping_interval_ms ? opts.ping_interval_ms : 30000;
    ws->pong_timeout_ms = opts.pong_timeout_ms > 0 ? opts.pong_timeout_ms : 10000;
    if (ws->ping_interval_ms > 0)
        ws->ping_due = wv_after_ms(ws->ping_interval_ms);
    rc = ws_register(ws);
    if (rc < 0) {
        wv_ws_free(ws);
        return rc;
    }
    *out = ws;
    return 0;
}

void wv_ws_free(wv_ws *ws)
{
    if (!ws || !ws->client)
        return;
    if (ws->s && (ws->wpending.n || wv_stream_unsent(ws->s)) && !ws->broken) {
        int64_t old = wv_deadline_set(wv_after_ms(CLOSE_WAIT_MS));
        ws_flush_pending(ws);
        wv_deadline_set(old);
    }
    wv_pass_hook_cancel(&ws->flush_hook);
    ws_drain_senders(ws);
    wv_stream_close(ws->s);
    wv_buf_free(&ws->in);
    wv_buf_free(&ws->msg);
    wv_buf_free(&ws->wpending);
    free(ws);
}
