/*
 * Channels: a ring buffer of fixed-size elements plus two wait queues, one
 * of fibers waiting to send and one waiting to receive, in the manner of Go.
 *
 * A waiting receiver always means the buffer is empty, and a waiting sender
 * that the buffer is full, so a send first hands its element straight to a
 * waiting receiver, and a receive refills the buffer from a waiting sender.
 * Blocking operations are a select over one case; a select registers one
 * waiter per case, and the first channel to fire it unlinks the others.
 */
#include <stdlib.h>
#include <string.h>

#include "rt/rt_internal.h"

struct wv_chan {
    shard *sh;
    size_t esz;
    size_t cap;   /* logical capacity (SIZE_MAX: unbounded) */
    size_t slots; /* allocated ring slots */
    size_t head;  /* index of the oldest element */
    size_t len;
    char *ring;
    bool closed;
    wv_waitq sendq, recvq;
};

typedef struct sel sel;

typedef struct chan_waiter {
    waiter w; /* first: queues hold waiters */
    sel *s;
    int idx;
    void *elem;
} chan_waiter;

struct sel {
    wv_fiber *f;
    chan_waiter *ws;
    int n;
    int fired;
    int result;
};

wv_chan *wv_chan_new(size_t elem_size, size_t capacity)
{
    if (!wv__shard || elem_size == 0)
        return NULL;
    wv_chan *c = calloc(1, sizeof *c);
    if (!c)
        die("out of memory allocating a channel");
    c->sh = wv__shard;
    c->esz = elem_size;
    c->cap = capacity;
    return c;
}

static void *slot(wv_chan *c, size_t i)
{
    return c->ring + ((c->head + i) % c->slots) * c->esz;
}

static int ring_grow(wv_chan *c)
{
    size_t want = c->slots ? c->slots * 2 : 16;
    if (want > c->cap)
        want = c->cap;
    if (want > SIZE_MAX / c->esz)
        return -ENOMEM;
    char *r = malloc(want * c->esz);
    if (!r)
        return -ENOMEM;
    for (size_t i = 0; i < c->len; i++)
        memcpy(r + i * c->esz, slot(c, i), c->esz);
    free(c->ring);
    c->ring = r;
    c->slots = want;
    c->head = 0;
    return 0;
}

static int ring_put(wv_chan *c, const void *elem)
{
    if (c->len == c->slots) {
        int rc = ring_grow(c);
        if (rc < 0)
            return rc;
    }
    memcpy(slot(c, c->len), elem, c->esz);
    c->len++;
    return 0;
}

static void ring_take(wv_chan *c, void *elem)
{
    memcpy(elem, slot(c, 0), c->esz);
    c->head = (c->head + 1) % c->slots;
    c->len--;
}

static void sel_unlink_all(void *p)
{
    sel *s = p;
    for (int i = 0; i < s->n; i++)
        waiter_unlink(&s->ws[i].w);
}

static void sel_fire(chan_waiter *cw, int result)
{
    sel *s = cw->s;
    s->fired = cw->idx;
    s->result = result;
    sel_unlink_all(s);
    fiber_wake(s->f, 0);
}

static int try_send(wv_chan *c, const void *elem)
{
    if (c->closed)
        return -EPIPE;
    chan_waiter *rw = (chan_waiter *)waitq_pop(&c->recvq);
    if (rw) {
        memcpy(rw->elem, elem, c->esz);
        sel_fire(rw, 0);
        return 0;
    }
    if (c->len < c->cap)
        return ring_put(c, elem);
    return -EAGAIN;
}

static int try_recv(wv_chan *c, void *elem)
{
    if (c->len > 0) {
        ring_take(c, elem);
        chan_waiter *sw = (chan_waiter *)waitq_pop(&c->sendq);
        if (sw) {
            ring_put(c, sw->elem); /* cannot fail: a slot was just freed */
            sel_fire(sw, 0);
        }
        return 0;
    }
    chan_waiter *sw = (chan_waiter *)waitq_pop(&c->sendq);
    if (sw) {
        memcpy(elem, sw->elem, c->esz);
        sel_fire(sw, 0);
        return 0;
    }
    return c->closed ? -EPIPE : -EAGAIN;
}

static int try_case(wv_select_case *k)
{
    return k->op == WV_SEND ? try_send(k->chan, k->elem) : try_recv(k->chan, k->elem);
}

int wv_chan_select(wv_select_case *cases, int n, int64_t at)
{
    wv_fiber *f = current();
    if (!f)
        return -EPERM;
    if (n <= 0 || !cases)
        return -EINVAL;
    for (int i = 0; i < n; i++) {
        if (!cases[i].chan || !cases[i].elem || (cases[i].op != WV_SEND && cases[i].op != WV_RECV))
            return -EINVAL;
        if (cases[i].chan->sh != wv__shard)
            return -EXDEV;
    }
    for (int i = 0; i < n; i++) {
        int rc = try_case(&cases[i]);
        if (rc == 0 || rc == -EPIPE) {
            cases[i].result = rc;
            return i;
        }
        if (rc != -EAGAIN)
            return rc;
    }
    chan_waiter local[8];
    chan_waiter *ws = n <= 8 ? local : calloc((size_t)n, sizeof *ws);
    if (!ws)
        return -ENOMEM;
    sel s = {.f = f, .ws = ws, .n = n, .fired = -1};
    for (int i = 0; i < n; i++) {
        ws[i] = (chan_waiter){.w = {.f = f}, .s = &s, .idx = i, .elem = cases[i].elem};
        wv_chan *c = cases[i].chan;
        waitq_push(cases[i].op == WV_SEND ? &c->sendq : &c->recvq, &ws[i].w);
    }
    int rc = park(at, sel_unlink_all, &s);
    sel_unlink_all(&s);
    if (ws != local)
        free(ws);
    if (s.fired >= 0) {
        cases[s.fired].result = s.result;
        return s.fired;
    }
    return rc < 0 ? rc : -EAGAIN;
}

static int one(wv_chan *c, int op, void *elem, int64_t at)
{
    wv_select_case k = {.chan = c, .op = op, .elem = elem};
    int rc = wv_chan_select(&k, 1, at);
    return rc < 0 ? rc : k.result;
}

int wv_chan_send(wv_chan *c, const void *elem)
{
    if (c->sh == wv__shard && current()) {
        int rc = try_send(c, elem);
        if (rc != -EAGAIN)
            return rc;
    }
    return one(c, WV_SEND, (void *)elem, WV_NEVER);
}

int wv_chan_recv(wv_chan *c, void *elem)
{
    if (c->sh == wv__shard && current()) {
        int rc = try_recv(c, elem);
        if (rc != -EAGAIN)
            return rc;
    }
    return one(c, WV_RECV, elem, WV_NEVER);
}

int wv_chan_recv_until(wv_chan *c, void *elem, int64_t at)
{
    return one(c, WV_RECV, elem, at);
}

int wv_chan_try_send(wv_chan *c, const void *elem)
{
    if (c->sh != wv__shard)
        return wv__shard ? -EXDEV : -EPERM;
    return try_send(c, elem);
}

int wv_chan_try_recv(wv_chan *c, void *elem)
{
    if (c->sh != wv__shard)
        return wv__shard ? -EXDEV : -EPERM;
    return try_recv(c, elem);
}

void wv_chan_close(wv_chan *c)
{
    if (c->closed)
        return;
    c->closed = true;
    chan_waiter *w;
    while ((w = (chan_waiter *)waitq_pop(&c->sendq)) != NULL)
        sel_fire(w, -EPIPE);
    while ((w = (chan_waiter *)waitq_pop(&c->recvq)) != NULL)
        sel_fire(w, -EPIPE);
}

size_t wv_chan_len(const wv_chan *c)
{
    return c->len;
}

void wv_chan_free(wv_chan *c)
{
    if (!c)
        return;
    wv_chan_close(c);
    free(c->ring);
    free(c);
}
