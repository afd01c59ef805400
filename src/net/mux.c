/*
 * wv_mux: one connection shared by many fibers of a shard, for protocols
 * that answer requests in order and carry no request ids (Redis,
 * memcached). include/weave/net.h ("shared connections") is the contract;
 * this file owns the mechanism:
 *
 *  - The queue of requests waiting for replies is a ring of slots in the
 *    order their bytes went out. A slot points at its request (on the
 *    waiting fiber's stack) and counts the replies it still expects; a
 *    request whose fiber stops waiting is abandoned by pointing its slot
 *    nowhere, so its replies are still read, in order, and dropped.
 *  - Sending: callers encode into `out`. With auto-pipelining the bytes go
 *    out at the end of the shard's pass (a wv_pass_hook), so every request
 *    the fibers issued during the pass leaves in one send; without it they
 *    go out at once. What the socket does not take at once is written by
 *    the writer fiber (double-buffered: callers keep appending to `out`
 *    while it writes `sending`).
 *  - Receiving: the reader fiber reads into `in`, cuts replies with the
 *    protocol's frame function and hands each to the request at the head
 *    of the ring (its deliver function), waking its fiber when it has all
 *    its replies. With a response timeout, a request unanswered that long
 *    breaks the connection.
 *  - Breaking: every request in the ring fails with the reason, the socket
 *    is shut, and later pushes fail at once; so every request completes
 *    exactly once, with its replies or an error.
 *  - Dedicated mode: no reader or writer; the one fiber holding the
 *    connection writes and reads itself in wv_mux_wait (one switch less
 *    per request), and a wait cut short breaks the connection.
 *  - Memory: the mux is reference counted: its owner, the reader, the
 *    writer and each fiber suspended inside it; the last one frees it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weave/buf.h"
#include "weave/net.h"

#define NS_PER_MS INT64_C(1000000)

enum { IN_MIN = 16384, SLACK = 65536 };

typedef struct slot {
    wv_mux_req *req; /* NULL once abandoned */
    int left;        /* replies still expected */
    int64_t sent;    /* wv_now_coarse when queued */
} slot;

struct wv_mux {
    wv_stream *s;
    wv_mux_opts o;
    char name[200];
    int refs;
    bool broken, shared, reader_on, writer_on, writer_busy;
    int rc;
    char msg[WV_MUX_MSG];

    wv_buf out, sending;
    size_t pushed; /* bytes of `out` that belong to pushed requests */
    wv_pass_hook flush_hook;
    wv_event wkick;

    slot *ring;
    uint64_t head, tail;
    size_t mask;

    char *in;
    size_t in_start, in_end, in_cap;
};

static void mux_unref(wv_mux *m);

/* ------------------------------------------------------------- requests */

void wv_mux_req_fail(wv_mux_req *r, int rc, const char *fmt, ...)
{
    if (r->rc < 0)
        return;
    r->rc = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->msg, sizeof r->msg, fmt, ap);
    va_end(ap);
}

static void req_finish(wv_mux_req *r)
{
    r->done_ = true;
    wv_event_set(&r->done_ev_);
}

static int ring_push(wv_mux *m, wv_mux_req *r)
{
    if (!m->ring || m->tail - m->head == m->mask + 1) {
        size_t cap = m->ring ? (m->mask + 1) * 2 : 64;
        slot *ring = calloc(cap, sizeof *ring);
        if (!ring)
            return -ENOMEM;
        for (uint64_t i = m->head; i < m->tail; i++)
            ring[i & (cap - 1)] = m->ring[i & m->mask];
        free(m->ring);
        m->ring = ring;
        m->mask = cap - 1;
    }
    slot *sl = &m->ring[m->tail & m->mask];
    sl->req = r;
    sl->left = r->replies > 0 ? r->replies : 1;
    sl->sent = wv_now_coarse();
    r->seq_ = m->tail++;
    return 0;
}

/* ------------------------------------------------------------- breaking */

void wv_mux_fail(wv_mux *m, int rc, const char *fmt, ...)
{
    if (m->broken)
        return;
    m->broken = true;
    m->rc = rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m->msg, sizeof m->msg, fmt, ap);
    va_end(ap);
    for (uint64_t i = m->head; i < m->tail; i++) {
        wv_mux_req *r = m->ring[i & m->mask].req;
        if (r) {
            wv_mux_req_fail(r, rc, "%s", m->msg);
            req_finish(r);
        }
    }
    m->head = m->tail;
    m->out.n = m->pushed = 0;
    wv_pass_hook_cancel(&m->flush_hook);
    /* the reader and writer see `broken` when they wake and leave; the
     * peer sees the connection end now */
    wv_stream_shutdown(m->s, SHUT_RDWR);
    wv_stream_interrupt(m->s);
    wv_event_set(&m->wkick);
}

bool wv_mux_broken(const wv_mux *m)
{
    return m->broken;
}

int wv_mux_error(const wv_mux *m)
{
    return m->broken ? wv_fail(m->rc, "%s", m->msg) : 0;
}

/* A read's failure as the connection's end, with its reason. */
static void fail_read(wv_mux *m, int rc)
{
    if (m->broken)
        return;
    if (rc == -ECONNRESET || rc == -EPIPE || rc == 0)
        wv_mux_fail(m, -ECONNRESET, "%s: the server closed the connection", m->name);
    else if (rc == -ETIMEDOUT || rc == -ECANCELED)
        wv_mux_fail(m, rc, "%s: %s waiting for the reply", m->name,
                    rc == -ETIMEDOUT ? "the deadline passed" : "cancelled");
    else if (rc == -EMSGSIZE)
        wv_mux_fail(m, rc, "%s: a reply is larger than the limit (%zu bytes)", m->name,
                    m->o.max_reply);
    else if (rc == -ESHUTDOWN)
        wv_mux_fail(m, rc, "%s: the runtime is stopping", m->name);
    else
        wv_mux_fail(m, -ECONNRESET, "%s: connection lost: %s", m->name, wv_strerror(rc));
}

/* ------------------------------------------------------------- sending */

static void count_write(wv_mux *m)
{
    if (m->o.writes)
        (*m->o.writes)++;
}

/* Hand the pushed bytes to the socket without waiting; the writer fiber
 * takes what it does not accept. Never suspends. */
static void flush_now(wv_mux *m)
{
    if (m->broken || m->writer_busy || m->pushed == 0)
        return;
    ssize_t k = wv_stream_try_write(m->s, m->out.p, m->pushed);
    count_write(m);
    if (k < 0) {
        wv_mux_fail(m, -ECONNRESET, "%s: connection lost while sending: %s", m->name,
                    wv_strerror((int)k));
        return;
    }
    memmove(m->out.p, m->out.p + k, m->out.n - (size_t)k);
    m->out.n -= (size_t)k;
    m->pushed -= (size_t)k;
    if (m->pushed || wv_stream_unsent(m->s))
        wv_event_set(&m->wkick);
}

static void flush_hook_fn(wv_pass_hook *h)
{
    flush_now((wv_mux *)((char *)h - offsetof(wv_mux, flush_hook)));
}

static int writer_main(void *arg)
{
    wv_mux *m = arg;
    while (!m->broken) {
        if (m->pushed == 0 && wv_stream_unsent(m->s) == 0) {
            wv_event_clear(&m->wkick);
            if (wv_event_wait(&m->wkick) < 0)
                break;
            continue;
        }
        /* take the pushed bytes; what follows them (a request being
         * encoded) stays in `out` */
        m->writer_busy = true;
        m->sending.n = 0;
        int rc = wv_buf_append(&m->sending, m->out.p, m->pushed);
        if (rc == 0) {
            memmove(m->out.p, m->out.p + m->pushed, m->out.n - m->pushed);
            m->out.n -= m->pushed;
            m->pushed = 0;
            rc = wv_stream_flush(m->s);
            if (rc >= 0 && m->sending.n) {
                /* counted before: once the write suspends, the mux may be
                 * closed and the counters' owner gone */
                count_write(m);
                rc = (int)wv_stream_write(m->s, m->sending.p, m->sending.n);
            }
        }
        m->sending.n = 0;
        m->writer_busy = false;
        if (rc < 0 && !m->broken)
            wv_mux_fail(m, rc == -ENOMEM ? rc : -ECONNRESET,
                        "%s: connection lost while sending: %s", m->name, wv_strerror(rc));
    }
    m->writer_on = false;
    mux_unref(m);
    return 0;
}

/* ----------------------------------------------------------- receiving */

/* Read once into `in` (suspending until bytes come): 0, or an error. */
static int fill(wv_mux *m)
{
    if (m->in_start == m->in_end)
        m->in_start = m->in_end = 0;
    /* what is unread is the start of one reply: at max_reply, it is too long */
    if (m->in_end - m->in_start >= m->o.max_reply)
        return -EMSGSIZE;
    if (m->in_end == m->in_cap) {
        if (m->in_start > 0) {
            memmove(m->in, m->in + m->in_start, m->in_end - m->in_start);
            m->in_end -= m->in_start;
            m->in_start = 0;
        } else {
            size_t limit = m->o.max_reply + SLACK;
            if (m->in_cap >= limit)
                return -EMSGSIZE;
            size_t cap = m->in_cap ? m->in_cap * 2 : IN_MIN;
            char *in = realloc(m->in, cap < limit ? cap : limit);
            if (!in)
                return -ENOMEM;
            m->in = in;
            m->in_cap = cap < limit ? cap : limit;
        }
    }
    ssize_t n = wv_stream_read(m->s, m->in + m->in_end, m->in_cap - m->in_end);
    if (n <= 0)
        return n == 0 ? -ECONNRESET : (int)n;
    m->in_end += (size_t)n;
    return 0;
}

/* The next whole reply in `in`: its length (> 0, consumed), 0 when more
 * is needed, or the error that broke the connection. */
static ssize_t next_reply(wv_mux *m, char **p)
{
    if (m->in_start == m->in_end)
        return 0;
    char why[WV_MUX_MSG] = "";
    *p = m->in + m->in_start;
    ssize_t len = m->o.frame(m->o.ctx, *p, m->in_end - m->in_start, why, sizeof why);
    if (len < 0) {
        wv_mux_fail(m, (int)len, "%s: %s", m->name, why[0] ? why : wv_strerror((int)len));
        return len;
    }
    m->in_start += (size_t)len;
    return len;
}

/* Hand every whole reply read so far to its request. */
static int dispatch(wv_mux *m)
{
    while (!m->broken) {
        char *p;
        ssize_t len = next_reply(m, &p);
        if (len <= 0)
            return (int)len;
        if (m->o.unsolicited && m->o.unsolicited(m->o.ctx, p, (size_t)len))
            continue;
        if (m->head == m->tail) {
            wv_mux_fail(m, -EPROTO, "%s: a reply came that no request asked for", m->name);
            return -EPROTO;
        }
        slot *sl = &m->ring[m->head & m->mask];
        wv_mux_req *r = sl->req;
        if (r) {
            r->deliver(r, p, (size_t)len);
            r->got++;
            if (m->broken) /* the deliverer broke it: the queue is already failed */
                return m->rc;
        }
        if (--sl->left == 0) {
            m->head++;
            if (r)
                req_finish(r);
        }
    }
    return m->rc;
}

static int reader_main(void *arg)
{
    wv_mux *m = arg;
    int64_t timeout = m->o.response_timeout_ms;
    while (!m->broken) {
        int64_t at = WV_NEVER;
        if (timeout > 0 && m->head != m->tail)
            at = m->ring[m->head & m->mask].sent + timeout * NS_PER_MS;
        wv_deadline_set(at);
        int rc = fill(m);
        if (rc >= 0) {
            dispatch(m);
            continue;
        }
        if (rc == -ETIMEDOUT && !m->broken) {
            if (m->head != m->tail &&
                m->ring[m->head & m->mask].sent + timeout * NS_PER_MS <= wv_now_coarse())
                wv_mux_fail(m, -ETIMEDOUT, "%s: no reply for %lld ms", m->name, (long long)timeout);
            continue;
        }
        fail_read(m, rc == -ECANCELED ? -ESHUTDOWN : rc);
    }
    m->reader_on = false;
    mux_unref(m);
    return 0;
}

/* ------------------------------------------------------------- the API */

wv_buf *wv_mux_out(wv_mux *m)
{
    return &m->out;
}

int wv_mux_push(wv_mux *m, wv_mux_req *r)
{
    if (m->broken) {
        m->out.n = m->pushed;
        return wv_mux_error(m);
    }
    int rc = ring_push(m, r);
    if (rc < 0) {
        m->out.n = m->pushed; /* the request's bytes go too */
        return wv_fail(rc, "%s: no memory for a request", m->name);
    }
    m->pushed = m->out.n;
    if (m->o.queued)
        *m->o.queued += (uint64_t)(r->replies > 0 ? r->replies : 1);
    if (m->shared) {
        if (m->o.no_autopipeline)
            flush_now(m);
        else
            wv_pass_hook_queue(&m->flush_hook, flush_hook_fn);
    }
    return 0;
}

int wv_mux_send(wv_mux *m, wv_mux_req *r, const void *p, size_t n)
{
    if (m->broken)
        return wv_mux_error(m);
    if (wv_buf_append(&m->out, p, n) < 0) {
        m->out.n = m->pushed;
        return wv_fail(-ENOMEM, "%s: no memory for a request", m->name);
    }
    return wv_mux_push(m, r);
}

/* Dedicated: write what is pushed, then read until r is answered. */
static void wait_dedicated(wv_mux *m, wv_mux_req *r)
{
    while (!r->done_ && !m->broken) {
        int rc = 0;
        if (m->pushed) {
            count_write(m);
            ssize_t w = wv_stream_write(m->s, m->out.p, m->pushed);
            memmove(m->out.p, m->out.p + m->pushed, m->out.n - m->pushed);
            m->out.n -= m->pushed;
            m->pushed = 0;
            rc = w < 0 ? (int)w : 0;
        }
        if (rc >= 0 && (rc = dispatch(m)) == 0 && !r->done_ && (rc = fill(m)) == 0)
            rc = dispatch(m);
        if (rc < 0)
            fail_read(m, rc);
    }
}

int wv_mux_wait(wv_mux *m, wv_mux_req *r)
{
    if (!r->done_) {
        m->refs++;
        if (!m->shared) {
            wait_dedicated(m, r);
        } else {
            int rc = wv_event_wait(&r->done_ev_);
            if (!r->done_) {
                /* abandoned: the slot stays, pointing nowhere */
                if (r->seq_ >= m->head && r->seq_ < m->tail)
                    m->ring[r->seq_ & m->mask].req = NULL;
                wv_mux_req_fail(r, rc, "%s: %s waiting for the reply", m->name,
                                rc == -ETIMEDOUT ? "the deadline passed" : "cancelled");
                r->done_ = true;
            }
        }
        mux_unref(m);
    }
    return r->rc < 0 ? wv_fail(r->rc, "%s", r->msg) : 0;
}

int wv_mux_read(wv_mux *m, char **p, size_t *len)
{
    for (;;) {
        if (m->broken)
            return wv_mux_error(m);
        ssize_t n = next_reply(m, p);
        if (n > 0) {
            *len = (size_t)n;
            return 0;
        }
        if (n < 0)
            return wv_mux_error(m);
        int rc = fill(m);
        if (rc < 0) {
            fail_read(m, rc);
            return wv_mux_error(m);
        }
    }
}

int wv_mux_flush(wv_mux *m)
{
    if (m->broken)
        return wv_mux_error(m);
    if (m->shared) {
        flush_now(m);
        return 0;
    }
    m->pushed = m->out.n; /* dedicated: everything appended goes */
    count_write(m);
    ssize_t w = m->pushed ? wv_stream_write(m->s, m->out.p, m->pushed) : 0;
    memmove(m->out.p, m->out.p + m->pushed, m->out.n - m->pushed);
    m->out.n -= m->pushed;
    m->pushed = 0;
    if (w < 0) {
        wv_mux_fail(m, -ECONNRESET, "%s: connection lost while sending: %s", m->name,
                    wv_strerror((int)w));
        return wv_mux_error(m);
    }
    return 0;
}

size_t wv_mux_pending(const wv_mux *m)
{
    return (size_t)(m->tail - m->head);
}

wv_stream *wv_mux_stream(const wv_mux *m)
{
    return m->s;
}

int wv_mux_new(wv_stream *s, const wv_mux_opts *o, wv_mux **out)
{
    *out = NULL;
    if (!s || !o || !o->frame) {
        wv_stream_close(s);
        return -EINVAL;
    }
    wv_mux *m = calloc(1, sizeof *m);
    if (!m) {
        wv_stream_close(s);
        return -ENOMEM;
    }
    m->s = s;
    m->o = *o;
    if (!m->o.max_reply)
        m->o.max_reply = (size_t)512 << 20;
    snprintf(m->name, sizeof m->name, "%s", o->name ? o->name : "connection");
    m->o.name = m->name;
    m->refs = 1;
    *out = m;
    return 0;
}

int wv_mux_share(wv_mux *m)
{
    if (m->shared)
        return 0;
    if (m->broken)
        return wv_mux_error(m);
    m->shared = true;
    m->refs += 2;
    m->reader_on = m->writer_on = true;
    wv_spawn_opts so = {.name = "mux-reader"};
    int rc = wv_spawn(reader_main, m, &so);
    if (rc < 0) {
        m->refs -= 2;
        m->reader_on = m->writer_on = m->shared = false;
        return wv_fail(rc, "%s: cannot start its reader", m->name);
    }
    so.name = "mux-writer";
    if ((rc = wv_spawn(writer_main, m, &so)) < 0) {
        m->refs--;
        m->writer_on = false;
        wv_mux_fail(m, rc, "%s: cannot start its writer", m->name);
        return wv_mux_error(m);
    }
    return 0;
}

static void mux_free(wv_mux *m)
{
    wv_pass_hook_cancel(&m->flush_hook);
    wv_stream_close(m->s);
    wv_buf_free(&m->out);
    wv_buf_free(&m->sending);
    free(m->ring);
    free(m->in);
    free(m);
}

static void mux_unref(wv_mux *m)
{
    if (--m->refs == 0)
        mux_free(m);
}

void wv_mux_close(wv_mux *m)
{
    if (!m)
        return;
    wv_mux_fail(m, -ESHUTDOWN, "%s: closed", m->name);
    mux_unref(m);
}
