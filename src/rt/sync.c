/*
 * Wait queues and the fiber synchronisation primitives built on them:
 * mutex (FIFO hand-off), condition variable, event, wait group.
 *
 * A waiter is a small record on the waiting fiber's stack, linked into the
 * queue; waking pops it and readies the fiber, and a timeout or cancellation
 * unlinks it through the fiber's unlink hook. Everything here is shard-local
 * and lock-free by construction: only one thread ever touches a queue.
 */
#include "rt/rt_internal.h"

void waitq_push(wv_waitq *q, waiter *w)
{
    w->q = q;
    w->next = NULL;
    w->prev = q->tail_;
    if (q->tail_)
        ((waiter *)q->tail_)->next = w;
    else
        q->head_ = w;
    q->tail_ = w;
}

void waitq_remove(wv_waitq *q, waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        q->head_ = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        q->tail_ = w->prev;
    w->q = NULL;
    w->prev = w->next = NULL;
}

waiter *waitq_pop(wv_waitq *q)
{
    waiter *w = q->head_;
    if (w)
        waitq_remove(q, w);
    return w;
}

void waiter_unlink(void *p)
{
    waiter *w = p;
    if (w->q)
        waitq_remove(w->q, w);
}

int waitq_wait(wv_waitq *q, int64_t at)
{
    wv_fiber *f = current();
    if (!f)
        return -EPERM;
    waiter w = {.f = f};
    waitq_push(q, &w);
    return park(at, waiter_unlink, &w);
}

void waitq_wake_one(wv_waitq *q, int result)
{
    waiter *w = waitq_pop(q);
    if (w)
        fiber_wake(w->f, result);
}

void waitq_wake_all(wv_waitq *q, int result)
{
    waiter *w;
    while ((w = waitq_pop(q)) != NULL)
        fiber_wake(w->f, result);
}

/* ------------------------------------------------------------------ mutex */

int wv_mutex_lock(wv_mutex *m)
{
    wv_fiber *f = current();
    if (!f)
        return -EPERM;
    if (m->owner_ == f->id)
        return -EDEADLK;
    if (m->owner_ == 0) {
        if (f->cancelled)
            return -ECANCELED;
        m->owner_ = f->id;
        return 0;
    }
    /* unlock hands the mutex straight to the first waiter (sets owner_) */
    int rc = waitq_wait(&m->q_, WV_NEVER);
    if (m->owner_ == f->id)
        return 0; /* handed over in the same pass its timeout fired */
    return rc < 0 ? rc : -EAGAIN;
}

int wv_mutex_trylock(wv_mutex *m)
{
    wv_fiber *f = current();
    if (!f)
        return -EPERM;
    if (m->owner_ != 0)
        return -EBUSY;
    m->owner_ = f->id;
    return 0;
}

void wv_mutex_unlock(wv_mutex *m)
{
    waiter *w = waitq_pop(&m->q_);
    if (w) {
        m->owner_ = w->f->id;
        fiber_wake(w->f, 0);
    } else {
        m->owner_ = 0;
    }
}

/* ------------------------------------------------------------------- cond */

static void relock(wv_mutex *m)
{
    wv_fiber *f = current();
    while (m->owner_ != 0 && m->owner_ != f->id) {
        waiter w = {.f = f};
        waitq_push(&m->q_, &w);
        park_nocancel(waiter_unlink, &w);
    }
    m->owner_ = f->id;
}

int wv_cond_wait(wv_cond *c, wv_mutex *m)
{
    wv_fiber *f = current();
    if (!f)
        return -EPERM;
    if (m->owner_ != f->id)
        return -EPERM;
    wv_mutex_unlock(m);
    int rc = waitq_wait(&c->q_, WV_NEVER);
    relock(m);
    return rc;
}

void wv_cond_signal(wv_cond *c)
{
    waitq_wake_one(&c->q_, 0);
}

void wv_cond_broadcast(wv_cond *c)
{
    waitq_wake_all(&c->q_, 0);
}

/* ------------------------------------------------------------------ event */

int wv_event_wait(wv_event *e)
{
    if (!current())
        return -EPERM;
    if (e->set_)
        return 0;
    int rc = waitq_wait(&e->q_, WV_NEVER);
    return rc < 0 && e->set_ ? 0 : rc;
}

void wv_event_set(wv_event *e)
{
    e->set_ = true;
    waitq_wake_all(&e->q_, 0);
}

void wv_event_clear(wv_event *e)
{
    e->set_ = false;
}

/* -------------------------------------------------------------- waitgroup */

void wv_waitgroup_add(wv_waitgroup *wg, int64_t n)
{
    wg->count_ += n;
    if (wg->count_ <= 0) {
        wg->count_ = 0;
        waitq_wake_all(&wg->q_, 0);
    }
}

void wv_waitgroup_done(wv_waitgroup *wg)
{
    wv_waitgroup_add(wg, -1);
}

int wv_waitgroup_wait(wv_waitgroup *wg)
{
    if (!current())
        return -EPERM;
    if (wg->count_ == 0)
        return 0;
    return waitq_wait(&wg->q_, WV_NEVER);
}

/* For cleanup that must not be cut short by the caller's cancellation
 * (waiting for a helper fiber that uses the caller's memory). */
void wv_event_wait_shielded(wv_event *e)
{
    wv_fiber *f = current();
    while (f && !e->set_) {
        waiter w = {.f = f};
        waitq_push(&e->q_, &w);
        park_nocancel(waiter_unlink, &w);
    }
}
