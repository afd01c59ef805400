/*
 * Bodies on the move: curl's head, body, read and seek callbacks, and the
 * requesting fiber's side of a transfer (httpc_pump), which together
 * stream a request body from a source and a response body to a sink or a
 * reader with bounded memory; and wv_httpc_read / wv_httpc_close.
 *
 * The rule that shapes it: curl's callbacks run inside curl, on whichever
 * of the shard's fibers drives it (the io fiber, the timer fiber, or a
 * fiber unpausing a transfer), and must never suspend. A source may
 * suspend (reading another stream), and so may a sink (writing to a slow
 * client). So the two meet through the transfer's buffers and its event:
 *
 *  - upload: the requesting fiber calls the source into `up` (64 KiB)
 *    whenever it is at most half full; curl's read callback copies out of
 *    it, and when it finds it empty returns CURL_READFUNC_PAUSE and wakes
 *    the fiber, which unpauses the transfer once it has put bytes in (or
 *    learnt that the body has ended).
 *  - download: curl's write callback appends to `down` while it holds at
 *    most 256 KiB, and past that returns CURL_WRITEFUNC_PAUSE (curl keeps
 *    the piece it was handed and delivers it again later); the fiber takes
 *    bytes out, and once at most half is left, unpauses.
 *
 * While a direction is paused curl stops asking about its socket, so the
 * server is held back by TCP itself; nothing piles up in memory whatever
 * the body's size. curl_easy_pause is called from the requesting fiber,
 * outside any callback, and curl's pause state covers both directions at
 * once: `recv_paused` and `send_paused` mirror it and each unpause passes
 * both.
 *
 * The head. In streaming mode the caller wants the final response's head
 * before its body: the header callback tells a final head's end (its
 * blank line) from an interim one (1xx) and from a redirect curl is about
 * to follow (3xx with Location while redirects are followed), and wakes
 * the fiber.
 *
 * Rewinding. curl rewinds a request body when it must send it again (a
 * reused connection found dead, a redirect that keeps the method): a
 * streamed body can be sent again only while its first bytes are still in
 * `up`; past that the transfer fails, with a reason that says so.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpc/httpc_internal.h"

/* ------------------------------------------------------------ the head */

static bool iprefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    if (len < n)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char x = (unsigned char)s[i];
        if (x >= 'A' && x <= 'Z')
            x |= 0x20;
        if (x != (unsigned char)prefix[i])
            return false;
    }
    return true;
}

/* "HTTP/1.1 200 OK", "HTTP/2 200": the status, 0 if there is none */
static int status_of(const char *p, size_t len)
{
    const char *sp = memchr(p, ' ', len);
    if (!sp)
        return 0;
    size_t i = (size_t)(sp - p) + 1;
    if (len - i < 3)
        return 0;
    int code = 0;
    for (size_t k = i; k < i + 3; k++) {
        if (p[k] < '0' || p[k] > '9')
            return 0;
        code = code * 10 + (p[k] - '0');
    }
    return code;
}

size_t httpc_on_header(char *p, size_t size, size_t n, void *arg)
{
    httpc_transfer *t = arg;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* a new response (after a 1xx or a redirect): only the last one's
         * head and body are the answer */
        t->head.n = 0;
        if (!t->streaming)
            t->resp->body.n = 0;
        t->head_seen = true;
        t->head_status = status_of(p, len);
        t->head_location = false;
    } else if (t->streaming && t->head_done) {
        return len; /* trailers after a streamed body: not kept */
    } else if (len <= 2 && (p[0] == '\r' || p[0] == '\n')) {
        bool interim = t->head_status >= 100 && t->head_status < 200;
        bool followed =
            t->follows && t->head_location && t->head_status >= 300 && t->head_status < 400;
        if (!interim && !followed) {
            t->head_done = true;
            if (t->streaming) /* a whole response's fiber waits for its end */
                wv_event_set(&t->wake);
        }
    } else if (iprefix(p, len, "location:")) {
        t->head_location = true;
    }
    if (len > HTTPC_MAX_HEAD - t->head.n) {
        t->head_big = true;
        return 0;
    }
    if (wv_buf_append(&t->head, p, len) < 0) {
        t->no_memory = true;
        return 0;
    }
    return len;
}

/* ------------------------------------------------------------ the body */

/* The whole body into resp->body, up to max_response. */
static size_t collect(httpc_transfer *t, const char *p, size_t len)
{
    wv_buf *b = &t->resp->body;
    if (len > t->max_response - b->n) {
        t->too_big = true;
        return 0; /* ends the transfer */
    }
    if (b->cap == 0) {
        /* the first bytes: room for what the server announced at once */
        curl_off_t announced = -1;
        curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced);
        if (announced > 0 && (uint64_t)announced <= t->max_response)
            wv_buf_reserve(b, (size_t)announced);
    }
    if (wv_buf_append(b, p, len) < 0) {
        t->no_memory = true;
        return 0;
    }
    return len;
}

size_t httpc_on_body(char *p, size_t size, size_t n, void *arg)
{
    httpc_transfer *t = arg;
    size_t len = size * n;
    if (!t->streaming)
        return collect(t, p, len);
    t->head_done = true; /* a body follows only the final head */
    size_t avail = httpc_down_avail(t);
    if ((avail > 0 && avail + len > HTTPC_DOWN_CAP) ||
        (t->down_pinned && t->down.cap - t->down.n < len)) {
        /* the reader is behind: hold the server back (curl keeps this
         * piece and hands it over again once unpaused) */
        t->recv_paused = true;
        wv_event_set(&t->wake);
        return CURL_WRITEFUNC_PAUSE;
    }
    if (avail == 0) {
        t->down.n = t->down_off = 0;
    } else if (t->down.cap - t->down.n < len && t->down_off > 0 && !t->down_pinned) {
        memmove(t->down.p, t->down.p + t->down_off, avail);
        t->down.n = avail;
        t->down_off = 0;
    }
    if (wv_buf_append(&t->down, p, len) < 0) {
        t->no_memory = true;
        return 0;
    }
    wv_event_set(&t->wake);
    return len;
}

size_t httpc_on_read(char *p, size_t size, size_t n, void *arg)
{
    httpc_transfer *t = arg;
    if (!t->source)
        return 0; /* no body is streamed: nothing to read (curl never asks) */
    size_t want = size * n;
    size_t have = t->up_len - t->up_off;
    if (have == 0) {
        if (t->up_eof)
            return 0; /* the end of the body */
        /* the source has not caught up: wait for the fiber to fill `up` */
        t->send_paused = true;
        wv_event_set(&t->wake);
        return CURL_READFUNC_PAUSE;
    }
    size_t k = have < want ? have : want;
    memcpy(p, t->up + t->up_off, k);
    t->up_off += k;
    wv_event_set(&t->wake);
    return k;
}

int httpc_on_seek(void *arg, curl_off_t offset, int origin)
{
    httpc_transfer *t = arg;
    if (origin != SEEK_SET || offset != 0 || t->up_dropped)
        return CURL_SEEKFUNC_CANTSEEK;
    t->up_off = 0; /* every byte the source gave is still in `up` */
    return CURL_SEEKFUNC_OK;
}

/* ------------------------------------------------------- the fiber's side */

bool httpc_head_ready(const httpc_transfer *t)
{
    return t->head_done;
}

bool httpc_body_ready(const httpc_transfer *t)
{
    return httpc_down_avail(t) > 0;
}

bool httpc_never(const httpc_transfer *t)
{
    return false;
}

/* Tell curl the pause state both directions should have now. */
static void repause(httpc_transfer *t)
{
    if (!t->in_multi)
        return;
    curl_easy_pause(t->easy,
                    (t->recv_paused ? CURLPAUSE_RECV : 0) | (t->send_paused ? CURLPAUSE_SEND : 0));
}

void httpc_down_consume(httpc_transfer *t, size_t k)
{
    t->down_off += k;
    if (t->down_off >= t->down.n)
        t->down.n = t->down_off = 0;
    if (t->recv_paused && httpc_down_avail(t) <= HTTPC_DOWN_CAP / 2) {
        t->recv_paused = false;
        repause(t); /* may hand the body callback what curl kept, at once */
    }
}

/* Fill `up` from the source once (the call may suspend). 0, or the
 * source's failure (wv_errmsg set). */
static int fill_up(httpc_transfer *t)
{
    if (!t->up && !(t->up = malloc(HTTPC_UP_CAP)))
        return wv_fail(-ENOMEM, "%s: out of memory", httpc_what(t));
    if (t->up_off > 0 && HTTPC_UP_CAP - t->up_len < HTTPC_UP_CAP / 2) {
        memmove(t->up, t->up + t->up_off, t->up_len - t->up_off);
        t->up_len -= t->up_off;
        t->up_off = 0;
        t->up_dropped = true; /* what curl took cannot be sent again */
    }
    size_t room = HTTPC_UP_CAP - t->up_len;
    if (t->up_left >= 0 && (uint64_t)t->up_left < room)
        room = (size_t)t->up_left;
    ssize_t k = t->source(t->source_arg, t->up + t->up_len, room);
    t->source_failed = k < 0 || (size_t)k > room || (k == 0 && t->up_left > 0);
    if (k < 0) {
        char why[256];
        snprintf(why, sizeof why, "%s", wv_errmsg()[0] ? wv_errmsg() : wv_strerror((int)k));
        return wv_fail((int)k, "%s: the request body's source failed: %s", httpc_what(t), why);
    }
    if ((size_t)k > room)
        return wv_fail(-EINVAL, "%s: the request body's source returned %zd bytes for room of %zu",
                       httpc_what(t), k, room);
    if (k == 0) {
        if (t->up_left > 0)
            return wv_fail(
                -EPIPE, "%s: the request body's source ended after %lld of its %lld bytes",
                httpc_what(t), (long long)t->up_total, (long long)(t->up_total + t->up_left));
        t->up_eof = true;
        return 0;
    }
    t->up_len += (size_t)k;
    t->up_total += k;
    if (t->up_left > 0) {
        t->up_left -= k;
        t->up_eof = t->up_left == 0; /* exactly body_len bytes: not asked again */
    }
    return 0;
}

int httpc_pump(httpc_transfer *t, bool (*until)(const httpc_transfer *t))
{
    for (;;) {
        wv_event_clear(&t->wake);
        if (t->done || t->shut_down || !t->in_multi || until(t))
            return 0;
        if (t->source && !t->up_eof && t->up_len - t->up_off <= HTTPC_UP_CAP / 2) {
            int rc = fill_up(t);
            if (rc < 0)
                return rc;
            continue;
        }
        if (t->send_paused && (t->up_len > t->up_off || t->up_eof)) {
            t->send_paused = false;
            repause(t);
            continue;
        }
        int rc = wv_event_wait(&t->wake);
        if (rc < 0)
            return rc;
    }
}

void httpc_bodies_free(httpc_transfer *t)
{
    free(t->up);
    t->up = NULL;
    wv_buf_free(&t->down);
}

/* -------------------------------------------------------------- streams */

struct wv_httpc_stream {
    httpc_transfer t;
};

/* After a call: a stream the client closed under it lets go at once. */
static void settle(httpc_transfer *t)
{
    t->busy = false;
    if (t->sc && t->shut_down && !t->orphan)
        httpc_transfer_orphan(t->sc, t);
}

static ssize_t fail_stream(httpc_transfer *t, int rc)
{
    t->stream_error = rc;
    if (t->sc && t->in_multi)
        httpc_transfer_abort(t->sc, t); /* its connection closed at once */
    return rc;
}

ssize_t wv_httpc_read(wv_httpc_stream *s, void *buf, size_t n)
{
    if (!s)
        return wv_fail(-EINVAL, "httpc: no stream to read");
    httpc_transfer *t = &s->t;
    if (t->stream_error)
        return wv_fail(t->stream_error, "%s: %s (the transfer has ended)", httpc_what(t),
                       wv_strerror(t->stream_error));
    if (t->orphan)
        return wv_fail(-ESHUTDOWN, "%s: the runtime is stopping", httpc_what(t));
    if (!httpc_shard_is_here(t->sc))
        return wv_fail(-EXDEV, "%s: a stream is read on the shard that opened it", httpc_what(t));
    if (n == 0)
        return 0;
    if (!buf)
        return wv_fail(-EINVAL, "%s: no buffer to read into", httpc_what(t));

    t->busy = true;
    int64_t start = wv_now();
    int64_t deadline = wv_deadline();
    if (t->deadline < deadline)
        deadline = t->deadline;
    int64_t old = wv_deadline_set(deadline);
    int woke = httpc_pump(t, httpc_body_ready);
    wv_deadline_set(old);

    ssize_t rc;
    size_t avail = httpc_down_avail(t);
    if (avail > 0) {
        /* what came is delivered first, even when the wait then failed */
        size_t k = avail < n ? avail : n;
        memcpy(buf, t->down.p + t->down_off, k);
        httpc_down_consume(t, k);
        rc = (ssize_t)k;
    } else if (t->done && t->code == CURLE_OK && woke == 0) {
        rc = 0; /* the end */
    } else {
        rc = fail_stream(t, httpc_stopped(t, woke, start, deadline));
    }
    settle(t);
    return rc;
}

void wv_httpc_close(wv_httpc_stream *s)
{
    if (!s)
        return;
    httpc_transfer *t = &s->t;
    httpc_shard *sc = t->orphan ? NULL : t->sc;
    bool reusable = false;
    if (sc) {
        /* a body read to its end went back to the shard's cache already;
         * else taking it out of the multi handle closes its connection */
        bool whole = t->done && t->code == CURLE_OK && httpc_down_avail(t) == 0;
        reusable = whole && t->reusable;
        httpc_transfer_end(sc, t);
    }
    httpc_transfer_give(sc, t, reusable);
}

wv_httpc_stream *httpc_stream_of(httpc_transfer *t)
{
    httpc_what(t); /* now, while the request's URL is still there */
    t->url = NULL;
    t->is_stream = true;
    return (wv_httpc_stream *)t;
}
