/*
 * wv_pool: a generic pool of connections for one shard (include/weave/net.h,
 * "pools"). This file owns the pool's bookkeeping: which connections exist,
 * which are idle, who waits for one, and when one is checked, kept or
 * closed. The connections themselves are the client's: the pool only calls
 * its open, close and check callbacks.
 *
 * How it works:
 *
 *  - Everything happens on the shard that made the pool (recorded at
 *    wv_pool_new), so there is no lock: state only changes between
 *    suspensions. The callbacks may suspend; the pool never holds an
 *    invariant across them that another fiber could break (see "slots").
 *  - Every connection the pool knows has an entry, found from the
 *    connection pointer through a small chained hash table (power-of-two
 *    buckets, grown when it fills), so release and discard are O(1) and a
 *    pointer the pool does not know is only logged (wv_warn) and ignored.
 *  - Idle entries sit on a list, newest first: acquire takes the warmest.
 *    Before one goes out it is checked (opts.check) if it sat idle at
 *    least check_idle_ms; a failed check closes it and the next idle one
 *    is tried, or a new one opened.
 *  - Slots: max_size bounds idle + in use + opening + reserved, where a
 *    reserved slot is capacity promised to one fiber that is about to
 *    open (a waiter woken because a connection was closed, or an acquirer
 *    whose idle connection failed its check while it held it). Opening
 *    happens outside any lock and counts while it runs. A connection
 *    being closed no longer counts (its place is free as close starts).
 *  - Waiters queue FIFO, each with a wv_event on its own stack. A released
 *    connection goes straight to the first waiter (handed over, counted as
 *    in use, not checked: it did not sit idle); capacity that frees up
 *    while fibers wait (a close, a failed open) is handed to the first
 *    waiter as a reserved slot. A new acquire queues behind existing
 *    waiters even if it could have taken something itself: no barging. A
 *    waiter whose deadline passes or who is cancelled leaves the queue; if
 *    it had been handed a connection or a slot in the same moment, it
 *    passes it on to the next waiter (or the idle list) and still returns
 *    -ETIMEDOUT / -ECANCELED.
 *  - Lifetimes: max_lifetime_ms counts from the open, idle_timeout_ms from
 *    the release. Both are enforced lazily, without a timer: a connection
 *    past its lifetime when it is released is closed; at every acquire and
 *    release the idle list is swept for connections past either limit
 *    (only when the earliest such expiry is due, so the sweep costs
 *    nothing most of the time), and the connection acquire is about to
 *    hand out is checked against both. An idle connection of a pool that
 *    sees no traffic at all is therefore kept until the next call (the
 *    check catches one the server dropped meanwhile).
 *  - Errors: an open failure goes back to the fiber whose acquire opened
 *    (unless a connection came back to the idle list while it opened: it
 *    takes that one instead), and the freed slot goes to the next waiter,
 *    which tries its own open.
 *  - Stats: `opening` counts opens in progress and reserved slots (so
 *    idle + in_use + opening never exceeds max_size); `in_use` includes
 *    connections being checked and ones handed to a waiter that has not
 *    run yet. `reused` counts connections handed out again (from the idle
 *    list or straight from a release), `closed` every close the pool
 *    makes, `open_errors` failed opens except those cut short by the
 *    caller's own deadline or cancellation, and `timeouts` acquires that
 *    returned -ETIMEDOUT because the caller's deadline passed.
 *  - wv_pool_free marks the pool closing, closes the idle connections and
 *    wakes the waiters with -ESHUTDOWN. Connections still in use are closed
 *    as they come back, and the memory is freed once nothing refers to it:
 *    no entries, no open in progress and no fiber inside a pool call (the
 *    `inside` count covers fibers suspended in a callback or a wait).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weave/net.h"

enum { DEFAULT_MAX_SIZE = 10, MIN_BUCKETS = 16, MSG_CAP = 512 };

#define NS_PER_MS INT64_C(1000000)

typedef enum entry_state {
    E_IDLE,     /* on the idle list */
    E_IN_USE,   /* a fiber holds it */
    E_HANDED,   /* given to a waiter that has not run yet (counted in use) */
    E_CHECKING, /* an acquirer runs opts.check on it (counted in use) */
} entry_state;

typedef struct entry entry;
struct entry {
    void *conn;
    int64_t opened_at;  /* wv_now() when open returned */
    int64_t idle_since; /* wv_now() when it joined the idle list */
    entry *hnext;       /* hash chain */
    entry *prev, *next; /* idle list, newest first */
    entry_state state;
};

typedef struct waiter waiter;
struct waiter {
    wv_event ev;
    waiter *prev, *next;
    bool queued;
    entry *handed; /* a connection given to this waiter */
    bool slot;     /* a reserved slot given to this waiter (to open one) */
    bool shutdown; /* the pool is being freed */
};

struct wv_pool {
    wv_pool_opts o;
    int shard;
    entry **buckets;
    size_t nbuckets, nentries;
    entry *idle_head, *idle_tail; /* newest at the head */
    int nidle, nin_use, nopening, nreserved;
    waiter *wq_head, *wq_tail;
    int nwaiting;
    int64_t sweep_at; /* no idle connection expires before this */
    int inside;       /* calls in progress that may suspend */
    bool closing;
    wv_pool_stats st; /* the since-made counters */
};

/* ------------------------------------------------------------ entry table */

static size_t hash_ptr(const void *p, size_t nbuckets)
{
    uint64_t x = (uint64_t)(uintptr_t)p;
    x ^= x >> 33;
    x *= UINT64_C(0xff51afd7ed558ccd);
    x ^= x >> 33;
    return (size_t)x & (nbuckets - 1);
}

static entry *table_find(const wv_pool *p, const void *conn)
{
    for (entry *e = p->buckets[hash_ptr(conn, p->nbuckets)]; e; e = e->hnext)
        if (e->conn == conn)
            return e;
    return NULL;
}

/* Double the table when it is full; on allocation failure keep the old one
 * (the chains only get longer). */
static void table_grow(wv_pool *p)
{
    size_t n = p->nbuckets * 2;
    entry **b = calloc(n, sizeof *b);
    if (!b)
        return;
    for (size_t i = 0; i < p->nbuckets; i++) {
        entry *e = p->buckets[i];
        while (e) {
            entry *next = e->hnext;
            size_t h = hash_ptr(e->conn, n);
            e->hnext = b[h];
            b[h] = e;
            e = next;
        }
    }
    free(p->buckets);
    p->buckets = b;
    p->nbuckets = n;
}

static void table_add(wv_pool *p, entry *e)
{
    if (p->nentries >= p->nbuckets)
        table_grow(p);
    size_t h = hash_ptr(e->conn, p->nbuckets);
    e->hnext = p->buckets[h];
    p->buckets[h] = e;
    p->nentries++;
}

static void table_remove(wv_pool *p, entry *e)
{
    entry **pp = &p->buckets[hash_ptr(e->conn, p->nbuckets)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp) {
        *pp = e->hnext;
        p->nentries--;
    }
    e->hnext = NULL;
}

/* -------------------------------------------------------------- idle list */

static void idle_unlink(wv_pool *p, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        p->idle_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        p->idle_tail = e->prev;
    e->prev = e->next = NULL;
    p->nidle--;
}

static int64_t expiry(const wv_pool *p, const entry *e)
{
    int64_t at = WV_NEVER;
    if (p->o.max_lifetime_ms > 0)
        at = e->opened_at + p->o.max_lifetime_ms * NS_PER_MS;
    if (p->o.idle_timeout_ms > 0 && e->state == E_IDLE) {
        int64_t t = e->idle_since + p->o.idle_timeout_ms * NS_PER_MS;
        if (t < at)
            at = t;
    }
    return at;
}

static bool past_lifetime(const wv_pool *p, const entry *e, int64_t now)
{
    return p->o.max_lifetime_ms > 0 && now - e->opened_at >= p->o.max_lifetime_ms * NS_PER_MS;
}

static void idle_push(wv_pool *p, entry *e)
{
    e->state = E_IDLE;
    e->idle_since = wv_now();
    e->prev = NULL;
    e->next = p->idle_head;
    if (p->idle_head)
        p->idle_head->prev = e;
    else
        p->idle_tail = e;
    p->idle_head = e;
    p->nidle++;
    int64_t at = expiry(p, e);
    if (at < p->sweep_at)
        p->sweep_at = at;
}

/* ---------------------------------------------------------------- waiters */

static void wq_push(wv_pool *p, waiter *w)
{
    w->next = NULL;
    w->prev = p->wq_tail;
    if (p->wq_tail)
        p->wq_tail->next = w;
    else
        p->wq_head = w;
    p->wq_tail = w;
    w->queued = true;
    p->nwaiting++;
}

static void wq_remove(wv_pool *p, waiter *w)
{
    if (!w->queued)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        p->wq_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        p->wq_tail = w->prev;
    w->prev = w->next = NULL;
    w->queued = false;
    p->nwaiting--;
}

/* ------------------------------------------------------------------ slots */

static int total(const wv_pool *p)
{
    return p->nidle + p->nin_use + p->nopening + p->nreserved;
}

/* Capacity may have freed up: hand it, as reserved slots, to the waiters at
 * the front of the queue. */
static void kick(wv_pool *p)
{
    while (!p->closing && p->wq_head && total(p) < p->o.max_size) {
        waiter *w = p->wq_head;
        wq_remove(p, w);
        p->nreserved++;
        w->slot = true;
        wv_event_set(&w->ev);
    }
}

static void unreserve(wv_pool *p)
{
    p->nreserved--;
    kick(p);
}

static void maybe_free(wv_pool *p)
{
    if (p->closing && p->inside == 0 && p->nentries == 0 && p->nopening == 0 && p->nreserved == 0 &&
        p->nwaiting == 0) {
        free(p->buckets);
        free(p);
    }
}

/* Forget an entry that is on no list (its state's counter already
 * adjusted) and close its connection. The caller holds p->inside. */
static void close_detached(wv_pool *p, entry *e)
{
    void *conn = e->conn;
    table_remove(p, e);
    free(e);
    p->st.closed++;
    p->o.close(p->o.ctx, conn);
}

/* Close every idle connection past its lifetime or idle timeout, when the
 * earliest expiry is due. Detached first, closed after: close may suspend. */
static void sweep(wv_pool *p)
{
    int64_t now = wv_now();
    if (now < p->sweep_at)
        return;
    entry *dead = NULL;
    int64_t next = WV_NEVER;
    for (entry *e = p->idle_tail; e;) {
        entry *prev = e->prev;
        int64_t at = expiry(p, e);
        if (at <= now) {
            idle_unlink(p, e);
            e->next = dead;
            dead = e;
        } else if (at < next) {
            next = at;
        }
        e = prev;
    }
    p->sweep_at = next;
    if (!dead)
        return;
    p->inside++;
    kick(p);
    while (dead) {
        entry *e = dead;
        dead = e->next;
        e->next = NULL;
        close_detached(p, e);
    }
    p->inside--;
}

/* A connection nobody holds any more (released, or passed on by a waiter
 * that left): to the first waiter, else the idle list, else closed. The
 * caller holds p->inside. */
static void give_back(wv_pool *p, entry *e)
{
    p->nin_use--;
    if (p->closing || past_lifetime(p, e, wv_now())) {
        kick(p); /* the waiters may open a fresh one */
        close_detached(p, e);
        return;
    }
    if (p->wq_head) {
        waiter *w = p->wq_head;
        wq_remove(p, w);
        e->state = E_HANDED;
        p->nin_use++;
        w->handed = e;
        wv_event_set(&w->ev);
        return;
    }
    if (p->nidle >= p->o.max_idle) {
        close_detached(p, e);
        return;
    }
    idle_push(p, e);
}

/* ---------------------------------------------------------------- acquire */

static bool in_pool_shard(const wv_pool *p, const char *what)
{
    int id = wv_shard_id();
    if (id == p->shard)
        return true;
    wv_warn("pool: %s from %s (the pool belongs to shard %d); ignored", what,
            id < 0 ? "outside the runtime" : "another shard", p->shard);
    return false;
}

int wv_pool_new(const wv_pool_opts *opts, wv_pool **out)
{
    if (!out)
        return wv_fail(-EINVAL, "pool: no place for the pool");
    *out = NULL;
    if (!opts || !opts->open || !opts->close)
        return wv_fail(-EINVAL, "pool: open and close are required");
    if (opts->max_size < 0 || opts->max_idle < 0 || opts->max_lifetime_ms < 0 ||
        opts->idle_timeout_ms < 0 || opts->check_idle_ms < 0)
        return wv_fail(-EINVAL, "pool: negative size or time in the options");
    int shard = wv_shard_id();
    if (shard < 0)
        return wv_fail(-EPERM, "pool: a pool belongs to a shard: make it inside the runtime");
    wv_pool *p = calloc(1, sizeof *p);
    entry **b = calloc(MIN_BUCKETS, sizeof *b);
    if (!p || !b) {
        free(p);
        free(b);
        return wv_fail(-ENOMEM, "pool: out of memory");
    }
    p->o = *opts;
    if (p->o.max_size == 0)
        p->o.max_size = DEFAULT_MAX_SIZE;
    if (p->o.max_idle == 0 || p->o.max_idle > p->o.max_size)
        p->o.max_idle = p->o.max_size;
    p->shard = shard;
    p->buckets = b;
    p->nbuckets = MIN_BUCKETS;
    p->sweep_at = WV_NEVER;
    *out = p;
    return 0;
}

static int shutdown_error(void)
{
    return wv_fail(-ESHUTDOWN, "pool: the pool is being freed");
}

/* The calling fiber's deadline or cancellation made rc: count it. */
static void count_own_failure(wv_pool *p, int rc)
{
    if (rc == -ETIMEDOUT)
        p->st.timeouts++;
}

/* Open a connection with a slot the caller holds (p->nreserved counts it
 * on entry; it is used up either way). 0 with *out an entry in use, or an
 * error. */
static int open_one(wv_pool *p, entry **out)
{
    p->nreserved--;
    p->nopening++;
    void *conn = NULL;
    int rc = p->o.open(p->o.ctx, &conn);
    p->nopening--;
    if (rc >= 0 && !conn)
        rc = wv_fail(-EPROTO, "pool: open returned no connection");
    if (rc < 0) {
        if ((rc == -ETIMEDOUT || rc == -ECANCELED) && wv_check() < 0)
            count_own_failure(p, rc); /* our deadline or cancellation */
        else
            p->st.open_errors++;
        kick(p);
        return rc;
    }
    p->st.opened++;
    entry *e = calloc(1, sizeof *e);
    if (!e || p->closing) {
        free(e);
        p->st.closed++;
        kick(p);
        p->o.close(p->o.ctx, conn);
        return p->closing ? shutdown_error() : wv_fail(-ENOMEM, "pool: out of memory");
    }
    e->conn = conn;
    e->opened_at = wv_now();
    e->state = E_IN_USE;
    table_add(p, e);
    p->nin_use++;
    *out = e;
    return 0;
}

/* open failed (not because of our own deadline): take a connection that
 * came back to the idle list meanwhile, if there is one, else keep open's
 * error and message. */
static int try_get(wv_pool *p, bool *slot, bool may_open, entry **out);

static int after_open_failure(wv_pool *p, int rc, entry **out)
{
    char msg[MSG_CAP];
    snprintf(msg, sizeof msg, "%s", wv_errmsg());
    bool slot = false;
    int r = try_get(p, &slot, false, out);
    if (r == 0 || r == -ESHUTDOWN)
        return r;
    return wv_fail(rc, "%s", msg);
}

/* Take an idle connection (checked) or open one. *slot says whether the
 * caller holds a reserved slot; it is used or given up before returning.
 * may_open false: only idle ones. 0 with *out, 1 when the caller has to
 * wait, or an error. */
static int try_get(wv_pool *p, bool *slot, bool may_open, entry **out)
{
    for (;;) {
        if (p->closing) {
            if (*slot) {
                *slot = false;
                unreserve(p);
            }
            return shutdown_error();
        }
        sweep(p);
        entry *e = p->idle_head;
        if (e) {
            idle_unlink(p, e);
            int64_t now = wv_now();
            bool dead = expiry(p, e) <= now; /* lifetime or idle timeout */
            bool check = p->o.check && now - e->idle_since >= p->o.check_idle_ms * NS_PER_MS;
            e->state = E_CHECKING;
            p->nin_use++;
            int rc = 0;
            if (!dead && check) {
                rc = p->o.check(p->o.ctx, e->conn);
                if (rc != 0)
                    p->st.failed_checks++;
            }
            if (dead || rc != 0 || p->closing) {
                p->nin_use--;
                if (!*slot && !p->closing) {
                    /* its place is ours: we came before any waiter */
                    *slot = true;
                    p->nreserved++;
                } else {
                    kick(p);
                }
                close_detached(p, e);
                continue;
            }
            if (*slot) {
                *slot = false;
                unreserve(p);
            }
            e->state = E_IN_USE;
            p->st.reused++;
            *out = e;
            return 0;
        }
        if (!may_open) {
            if (*slot) {
                *slot = false;
                unreserve(p);
            }
            return 1;
        }
        if (!*slot) {
            if (total(p) >= p->o.max_size)
                return 1;
            p->nreserved++;
        }
        *slot = false;
        int rc = open_one(p, out);
        if (rc >= 0 || rc == -ESHUTDOWN || !p->idle_head || wv_check() < 0)
            return rc;
        return after_open_failure(p, rc, out);
    }
}

/* Queue behind the fibers already waiting until a connection or a slot is
 * handed over. 0 with *out, or an error. */
static int wait_turn(wv_pool *p, entry **out)
{
    int err;
    for (;;) {
        waiter w;
        memset(&w, 0, sizeof w);
        wq_push(p, &w);
        int rc = wv_event_wait(&w.ev);
        wq_remove(p, &w);
        if (w.shutdown)
            return shutdown_error();
        err = wv_check();
        if (w.handed) {
            entry *e = w.handed;
            e->state = E_IN_USE;
            if (err < 0 || p->closing) {
                /* we leave: the connection goes on to the next waiter */
                give_back(p, e);
                if (err < 0)
                    break;
                return shutdown_error();
            }
            p->st.reused++;
            *out = e;
            return 0;
        }
        if (w.slot) {
            if (err < 0) {
                unreserve(p); /* the slot goes on to the next waiter */
                break;
            }
            bool slot = true;
            rc = try_get(p, &slot, true, out);
            if (rc != 1)
                return rc;
            continue; /* cannot happen with a slot; wait again */
        }
        if (rc < 0) {
            err = rc;
            break;
        }
        /* woken with nothing (cannot happen): wait again */
    }
    count_own_failure(p, err);
    return wv_fail(err, "pool: %s waiting for a connection (%d in use, %d waiting)",
                   err == -ETIMEDOUT ? "timed out" : "cancelled", p->nin_use, p->nwaiting);
}

int wv_pool_acquire(wv_pool *p, void **conn)
{
    if (!conn)
        return wv_fail(-EINVAL, "pool: no place for the connection");
    *conn = NULL;
    if (!p)
        return wv_fail(-EINVAL, "pool: no pool");
    int id = wv_shard_id();
    if (id < 0 || wv_fiber_id() == 0)
        return wv_fail(-EPERM, "pool: acquire from a fiber of the pool's shard");
    if (id != p->shard)
        return wv_fail(-EXDEV, "pool: the pool belongs to shard %d, not shard %d", p->shard, id);
    if (p->closing)
        return shutdown_error();
    if (wv_cancelled())
        return wv_fail(-ECANCELED, "pool: cancelled");
    p->inside++;
    entry *e = NULL;
    bool slot = false;
    int rc = p->wq_head ? 1 : try_get(p, &slot, true, &e); /* no barging */
    if (rc == 1)
        rc = wait_turn(p, &e);
    p->inside--;
    if (rc == 0)
        *conn = e->conn;
    maybe_free(p);
    return rc;
}

/* ------------------------------------------------------- release, discard */

static void put_back(wv_pool *p, void *conn, bool discard)
{
    const char *what = discard ? "discard" : "release";
    if (!p || !conn)
        return;
    if (!in_pool_shard(p, what))
        return;
    entry *e = table_find(p, conn);
    if (!e || e->state != E_IN_USE) {
        wv_warn("pool: %s of a connection the pool %s; ignored", what,
                e ? "has not handed out (released twice?)" : "does not know");
        return;
    }
    p->inside++;
    if (discard) {
        p->nin_use--;
        kick(p); /* its place may go to a waiter at once */
        close_detached(p, e);
    } else {
        give_back(p, e);
    }
    if (!p->closing)
        sweep(p);
    p->inside--;
    maybe_free(p);
}

void wv_pool_release(wv_pool *p, void *conn)
{
    put_back(p, conn, false);
}

void wv_pool_discard(wv_pool *p, void *conn)
{
    put_back(p, conn, true);
}

/* ---------------------------------------------------------- stats, free */

void wv_pool_stats_get(const wv_pool *p, wv_pool_stats *st)
{
    if (!st)
        return;
    if (!p) {
        memset(st, 0, sizeof *st);
        return;
    }
    *st = p->st;
    st->idle = p->nidle;
    st->in_use = p->nin_use;
    st->opening = p->nopening + p->nreserved;
    st->waiting = p->nwaiting;
}

void wv_pool_free(wv_pool *p)
{
    if (!p || p->closing)
        return;
    if (!in_pool_shard(p, "free"))
        return;
    p->closing = true;
    p->inside++;
    while (p->wq_head) {
        waiter *w = p->wq_head;
        wq_remove(p, w);
        w->shutdown = true;
        wv_event_set(&w->ev);
    }
    while (p->idle_head) {
        entry *e = p->idle_head;
        idle_unlink(p, e);
        close_detached(p, e);
    }
    p->inside--;
    maybe_free(p);
}
