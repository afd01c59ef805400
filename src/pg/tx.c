/*
 * Transactions: BEGIN / COMMIT / ROLLBACK with isolation levels, and
 * wv_pg_transact, which runs a callback in a transaction and retries it
 * after serialization failures and deadlocks.
 *
 * A transaction makes the connection its fiber's: conn.c holds other
 * fibers' statements back (pg_conn_tx_turn) until it ends. Whatever happens to
 * the fiber, the end is certain: a BEGIN or COMMIT it could not wait for
 * is followed by a ROLLBACK that is sent anyway, ahead of anyone else's
 * statements.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "pg/pg_internal.h"

enum { DEFAULT_TX_RETRIES = 5 };

static void tx_end(wv_pg_conn *c)
{
    c->tx_fiber = 0;
    wv_event_set(&c->tx_free);
}

/* The fiber gave up while BEGIN or COMMIT may still run: make sure the
 * transaction ends before anything else runs on the connection. */
static void tx_abandon(wv_pg_conn *c)
{
    pg_op_detach_sql(c, "ROLLBACK");
    tx_end(c);
}

static const char *begin_sql(const wv_pg_tx_opts *o)
{
    static const char *const sql[3][2][2] = {
        {{"BEGIN ISOLATION LEVEL READ COMMITTED", "BEGIN ISOLATION LEVEL READ COMMITTED"},
         {"BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY",
          "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY"}},
        {{"BEGIN ISOLATION LEVEL REPEATABLE READ", "BEGIN ISOLATION LEVEL REPEATABLE READ"},
         {"BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
          "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"}},
        {{"BEGIN ISOLATION LEVEL SERIALIZABLE", "BEGIN ISOLATION LEVEL SERIALIZABLE"},
         {"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY",
          "BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE"}},
    };
    if (!o)
        return "BEGIN";
    int iso = o->isolation == WV_PG_SERIALIZABLE      ? 2
              : o->isolation == WV_PG_REPEATABLE_READ ? 1
                                                      : 0;
    return sql[iso][o->read_only][o->read_only && o->deferrable];
}

static int begin_held(wv_pg_conn *c, const wv_pg_tx_opts *opts)
{
    if (!c)
        return wv_fail(-EINVAL, "pg: begin needs a connection");
    if (opts && (unsigned)opts->isolation > WV_PG_SERIALIZABLE)
        return wv_fail(-EINVAL, "pg: unknown isolation level %d", (int)opts->isolation);
    uint64_t me = wv_fiber_id();
    if (me == 0)
        return wv_fail(-EPERM, "pg: begin outside a fiber");
    if (c->tx_fiber == me)
        return wv_fail(-EINVAL, "pg: this fiber already has a transaction open on the connection");
    int rc = pg_conn_tx_turn(c);
    if (rc < 0)
        return rc;
    c->tx_fiber = me;
    c->tx_retryable = false;
    wv_event_clear(&c->tx_free);
    PGresult *r;
    rc = pg_conn_exec_internal(c, begin_sql(opts), EXEC_NO_CANCEL, &r);
    PQclear(r);
    if (rc == -ETIMEDOUT || rc == -ECANCELED)
        tx_abandon(c);
    else if (rc < 0)
        tx_end(c);
    return rc;
}

static int check_owner(wv_pg_conn *c)
{
    if (!c)
        return wv_fail(-EINVAL, "pg: no connection");
    if (c->tx_fiber == 0 || c->tx_fiber != wv_fiber_id())
        return wv_fail(-EINVAL, "pg: no transaction of this fiber is open on the connection");
    return 0;
}

static int commit_held(wv_pg_conn *c)
{
    int rc = check_owner(c);
    if (rc < 0)
        return rc;
    PGresult *r;
    rc = pg_conn_exec_internal(c, "COMMIT", EXEC_NO_CANCEL, &r);
    bool retryable = c->tx_retryable;
    if (rc == 0 && strcmp(PQcmdStatus(r), "ROLLBACK") == 0) {
        /* COMMIT of a failed transaction answers ROLLBACK, not an error */
        rc = retryable ? wv_fail(-EAGAIN, "pg: COMMIT rolled back: the transaction had a "
                                          "serialization failure")
                       : wv_fail(-EREMOTEIO, "pg: COMMIT rolled back: a statement of the "
                                             "transaction had failed");
    }
    PQclear(r);
    if (rc == -ETIMEDOUT || rc == -ECANCELED)
        tx_abandon(c);
    else
        tx_end(c);
    return rc;
}

static int rollback_held(wv_pg_conn *c)
{
    int rc = check_owner(c);
    if (rc < 0)
        return rc;
    rc = pg_conn_exec_internal(c, "ROLLBACK", EXEC_NO_CANCEL | EXEC_KEEP, NULL);
    tx_end(c);
    return rc;
}

static int pause_before_retry(int attempt)
{
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (uint32_t)wv_now();
    int64_t ms = 1 + (int64_t)(r % 5u) * (attempt + 1);
    return wv_sleep_ms(ms);
}

static int transact_held(wv_pg_conn *c, const wv_pg_tx_opts *opts, wv_pg_tx_fn *fn, void *arg)
{
    if (!c || !fn)
        return wv_fail(-EINVAL, "pg: transact needs a connection and a function");
    int max = !opts || opts->max_retries == 0 ? DEFAULT_TX_RETRIES
                                              : (opts->max_retries < 0 ? 0 : opts->max_retries);
    for (int attempt = 0;; attempt++) {
        int rc = begin_held(c, opts);
        if (rc < 0)
            return rc;
        int r = fn(c, arg);
        if (r >= 0) {
            rc = commit_held(c);
            if (rc == 0)
                return r;
        } else {
            bool retryable = r == -EAGAIN || c->tx_retryable;
            char msg[ERRBUF_SIZE];
            snprintf(msg, sizeof msg, "%s", wv_errmsg());
            rollback_held(c);
            rc = retryable ? -EAGAIN : r;
            wv_fail(rc, "%s", msg); /* the failure, not the rollback's words */
        }
        if (rc != -EAGAIN || attempt >= max)
            return rc;
        char msg[ERRBUF_SIZE];
        snprintf(msg, sizeof msg, "%s", wv_errmsg());
        if (pause_before_retry(attempt) < 0)
            return wv_fail(rc, "%s", msg);
    }
}

int wv_pg_begin(wv_pg_conn *c, const wv_pg_tx_opts *opts)
{
    if (!c)
        return wv_fail(-EINVAL, "pg: begin needs a connection");
    pg_conn_hold(c);
    int rc = begin_held(c, opts);
    pg_conn_release(c);
    return rc;
}

int wv_pg_commit(wv_pg_conn *c)
{
    if (!c)
        return wv_fail(-EINVAL, "pg: commit needs a connection");
    pg_conn_hold(c);
    int rc = commit_held(c);
    pg_conn_release(c);
    return rc;
}

int wv_pg_rollback(wv_pg_conn *c)
{
    if (!c)
        return wv_fail(-EINVAL, "pg: rollback needs a connection");
    pg_conn_hold(c);
    int rc = rollback_held(c);
    pg_conn_release(c);
    return rc;
}

int wv_pg_transact(wv_pg_conn *c, const wv_pg_tx_opts *opts, wv_pg_tx_fn *fn, void *arg)
{
    if (!c)
        return wv_fail(-EINVAL, "pg: transact needs a connection");
    pg_conn_hold(c);
    int rc = transact_held(c, opts, fn, arg);
    pg_conn_release(c);
    return rc;
}
