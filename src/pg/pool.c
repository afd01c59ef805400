/*
 * A pool of connections for one shard.
 *
 * Connections are made on demand up to max_size and handed to one fiber
 * at a time. Idle ones are kept newest first (the warmest statement
 * caches and sockets go out first) and checked before they go out: their
 * reader fiber notices a server that went away while they sat idle, and a
 * peek at the socket catches a goodbye not read yet. A connection that
 * comes back dirty (a transaction left open or failed, a cancelled
 * statement still draining, LISTENs) is reset by statements queued ahead
 * of anything else (ROLLBACK, UNLISTEN *) and only rejoins the idle list
 * once its queue is empty and the server says it is idle; one that broke
 * is closed. When connecting fails, attempts back off exponentially;
 * meanwhile acquire waits for a busy connection to come back, or fails at
 * once if there is none.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pg/pg_internal.h"

enum { DEFAULT_MAX = 10, DEFAULT_BACKOFF_MIN = 50, DEFAULT_BACKOFF_MAX = 2000 };

struct wv_pg_pool {
    char *url;
    wv_pg_pool_opts opts;
    char name[64];
    pg_metrics *m;
    wv_pg_conn *idle; /* newest first */
    int nidle, nbusy, nconnecting, nresetting;
    int inside; /* fibers inside acquire */
    int waiting;
    wv_mutex mu; /* only to wait on cv */
    wv_cond cv;
    int64_t next_attempt, backoff_ms;
    int last_err;
    char last_msg[PG_MSG];
    bool closing;
    wv_pg_pool_stats st;
};

static int total(const wv_pg_pool *p)
{
    return p->nidle + p->nbusy + p->nconnecting + p->nresetting;
}

static void maybe_free(wv_pg_pool *p)
{
    if (p->closing && total(p) == 0 && p->inside == 0) {
        wv_gauge_add(p->m->max, -p->opts.max_size);
        free(p->url);
        free(p);
    }
}

int wv_pg_pool_new(const char *url, const wv_pg_pool_opts *opts, wv_pg_pool **out)
{
    if (!out)
        return wv_fail(-EINVAL, "pg: no place for the pool");
    *out = NULL;
    if (!url)
        return wv_fail(-EINVAL, "pg: no URL");
    if (wv_shard_id() < 0)
        return wv_fail(-EPERM, "pg: a pool belongs to a shard: make it inside the runtime");
    wv_pg_pool *p = calloc(1, sizeof *p);
    if (!p || !(p->url = strdup(url))) {
        free(p);
        return wv_fail(-ENOMEM, "pg: out of memory");
    }
    if (opts)
        p->opts = *opts;
    if (p->opts.max_size <= 0)
        p->opts.max_size = DEFAULT_MAX;
    if (p->opts.backoff_min_ms <= 0)
        p->opts.backoff_min_ms = DEFAULT_BACKOFF_MIN;
    if (p->opts.backoff_max_ms <= 0)
        p->opts.backoff_max_ms = DEFAULT_BACKOFF_MAX;
    if (p->opts.backoff_max_ms < p->opts.backoff_min_ms)
        p->opts.backoff_max_ms = p->opts.backoff_min_ms;
    snprintf(p->name, sizeof p->name, "%s", p->opts.conn.name ? p->opts.conn.name : "default");
    p->opts.conn.name = p->name;
    p->m = pg_metrics_for(p->name);
    wv_gauge_add(p->m->max, p->opts.max_size);
    p->backoff_ms = p->opts.backoff_min_ms;
    *out = p;
    return 0;
}

static void discard(wv_pg_pool *p, wv_pg_conn *c)
{
    c->pool = NULL;
    wv_pg_close(c);
    p->st.discarded++;
}

void wv_pg_pool_free(wv_pg_pool *p)
{
    if (!p || p->closing)
        return;
    p->closing = true;
    while (p->idle) {
        wv_pg_conn *c = p->idle;
        p->idle = c->pool_next;
        p->nidle--;
        wv_gauge_dec(p->m->idle);
        c->pool = NULL;
        wv_pg_close(c);
    }
    wv_cond_broadcast(&p->cv);
    maybe_free(p);
}

/* Fit to be handed out? The reader fiber keeps `broken` current; bytes
 * waiting on an idle connection are most likely the server's goodbye, so
 * read them now. */
static bool healthy(wv_pg_conn *c)
{
    if (!wv_pg_conn_ok(c))
        return false;
    if (c->fd < 0)
        return false;
    char b;
    ssize_t r = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (r == 0)
        return false;
    if (r > 0)
        pg_conn_pump(c);
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return false;
    return wv_pg_conn_ok(c);
}

static void push_idle(wv_pg_pool *p, wv_pg_conn *c)
{
    c->pool_next = p->idle;
    p->idle = c;
    p->nidle++;
    wv_gauge_inc(p->m->idle);
    wv_cond_signal(&p->cv);
}

/* Wait for a release, until `until` at most (then 1), or the fiber's own
 * deadline / cancellation. */
static int wait_for_release(wv_pg_pool *p, int64_t until)
{
    int64_t own = wv_deadline();
    int rc = wv_mutex_lock(&p->mu);
    if (rc < 0)
        return rc;
    if (until < own)
        wv_deadline_set(until);
    p->waiting++;
    wv_gauge_inc(p->m->waiters);
    rc = wv_cond_wait(&p->cv, &p->mu);
    wv_gauge_dec(p->m->waiters);
    p->waiting--;
    wv_deadline_set(own);
    wv_mutex_unlock(&p->mu);
    if (rc == -ETIMEDOUT && until < own && wv_now() < own)
        return 1;
    return rc;
}

static int acquire(wv_pg_pool *p, wv_pg_conn **out)
{
    for (;;) {
        if (p->closing)
            return wv_fail(-ESHUTDOWN, "pg pool %s: closed", p->name);
        while (p->idle) {
            wv_pg_conn *c = p->idle;
            p->idle = c->pool_next;
            p->nidle--;
            wv_gauge_dec(p->m->idle);
            if (!healthy(c)) {
                discard(p, c);
                continue;
            }
            p->nbusy++;
            wv_gauge_inc(p->m->busy);
            *out = c;
            return 0;
        }
        int64_t now = wv_now();
        if (total(p) < p->opts.max_size && now >= p->next_attempt) {
            p->nconnecting++;
            wv_pg_conn *c;
            int rc = wv_pg_connect(p->url, &p->opts.conn, &c);
            p->nconnecting--;
            if (rc == 0) {
                p->st.connects++;
                p->backoff_ms = p->opts.backoff_min_ms;
                p->next_attempt = 0;
                if (p->closing) {
                    wv_pg_close(c);
                    return wv_fail(-ESHUTDOWN, "pg pool %s: closed", p->name);
                }
                c->pool = p;
                p->nbusy++;
                wv_gauge_inc(p->m->busy);
                *out = c;
                return 0;
            }
            if (wv_check() < 0)
                return rc; /* our deadline or cancellation, not the server */
            p->st.failures++;
            p->last_err = rc;
            snprintf(p->last_msg, sizeof p->last_msg, "%s", wv_errmsg());
            p->next_attempt = wv_now() + p->backoff_ms * 1000000;
            p->backoff_ms = p->backoff_ms * 2 > p->opts.backoff_max_ms ? p->opts.backoff_max_ms
                                                                       : p->backoff_ms * 2;
            wv_cond_broadcast(&p->cv);
            if (total(p) == 0)
                return rc;
            continue;
        }
        if (total(p) == 0)
            return wv_fail(p->last_err ? p->last_err : -ECONNREFUSED,
                           "%s (pool %s: next attempt in %lld ms)", p->last_msg, p->name,
                           (long long)((p->next_attempt - now) / 1000000));
        int rc = wait_for_release(p, total(p) < p->opts.max_size ? p->next_attempt : WV_NEVER);
        if (rc == -ETIMEDOUT)
            wv_counter_inc(p->m->acquire_timeouts);
        if (rc < 0)
            return wv_fail(rc, "pg pool %s: %s waiting for a connection (%d busy)", p->name,
                           rc == -ETIMEDOUT ? "timed out" : "cancelled", p->nbusy);
    }
}

int wv_pg_pool_acquire(wv_pg_pool *p, wv_pg_conn **out)
{
    if (!out)
        return wv_fail(-EINVAL, "pg: no place for the connection");
    *out = NULL;
    if (!p)
        return wv_fail(-EINVAL, "pg: no pool");
    p->inside++;
    int rc = acquire(p, out);
    p->inside--;
    maybe_free(p);
    return rc;
}

void pg_pool_conn_settled(wv_pg_conn *c)
{
    wv_pg_pool *p = c->pool;
    if (!p || !c->resetting || c->unsent || c->inflight)
        return;
    c->resetting = false;
    p->nresetting--;
    if (p->closing || !wv_pg_conn_ok(c) || PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        discard(p, c);
    else
        push_idle(p, c);
    maybe_free(p);
}

void wv_pg_pool_release(wv_pg_pool *p, wv_pg_conn *c)
{
    if (!p || !c)
        return;
    if (c->pool != p) {
        wv_warn("pg pool %s: released a connection it does not own; closing it", p->name);
        wv_pg_close(c);
        return;
    }
    p->nbusy--;
    wv_gauge_dec(p->m->busy);
    if (p->closing || !wv_pg_conn_ok(c) || c->excl_active) {
        discard(p, c);
        wv_cond_signal(&p->cv);
        maybe_free(p);
        return;
    }
    bool queued = c->unsent || c->inflight;
    PGTransactionStatusType ts = queued ? PQTRANS_UNKNOWN : PQtransactionStatus(c->pg);
    bool in_tx = c->tx_fiber || (ts != PQTRANS_IDLE);
    if (!in_tx && !c->listening) {
        push_idle(p, c);
        return;
    }
    /* reset ahead of anything else, and rejoin when the queue drains */
    c->resetting = true;
    p->nresetting++;
    if (in_tx) {
        c->tx_fiber = 0;
        wv_event_set(&c->tx_free);
        pg_op_detach_sql(c, "ROLLBACK");
    }
    if (c->listening) {
        pg_op_detach_sql(c, "UNLISTEN *");
        c->listening = false;
        pg_conn_drop_notes(c);
    }
    pg_pool_conn_settled(c); /* in case nothing could be queued (broken) */
}

int wv_pg_pool_query_args(wv_pg_pool *p, wv_pg_result **out, const char *sql, const wv_pg_arg *args,
                          int nargs)
{
    if (out)
        *out = NULL;
    wv_pg_conn *c;
    int rc = wv_pg_pool_acquire(p, &c);
    if (rc < 0)
        return rc;
    rc = wv_pg_query_args(c, out, sql, args, nargs);
    wv_pg_pool_release(p, c);
    return rc;
}

int wv_pg_pool_exec_args(wv_pg_pool *p, const char *sql, const wv_pg_arg *args, int nargs)
{
    wv_pg_conn *c;
    int rc = wv_pg_pool_acquire(p, &c);
    if (rc < 0)
        return rc;
    rc = wv_pg_exec_args(c, sql, args, nargs);
    wv_pg_pool_release(p, c);
    return rc;
}

int wv_pg_pool_transact(wv_pg_pool *p, const wv_pg_tx_opts *opts, wv_pg_tx_fn *fn, void *arg)
{
    wv_pg_conn *c;
    int rc = wv_pg_pool_acquire(p, &c);
    if (rc < 0)
        return rc;
    rc = wv_pg_transact(c, opts, fn, arg);
    wv_pg_pool_release(p, c);
    return rc;
}

void wv_pg_pool_stats_get(const wv_pg_pool *p, wv_pg_pool_stats *out)
{
    if (!p) {
        memset(out, 0, sizeof *out);
        return;
    }
    *out = p->st;
    out->idle = p->nidle;
    out->busy = p->nbusy;
    out->connecting = p->nconnecting;
    out->resetting = p->nresetting;
    out->waiting = p->waiting;
}
