/*
 * COPY FROM STDIN and COPY TO STDOUT.
 *
 * libpq cannot COPY in pipeline mode, so a COPY takes the connection for
 * itself (pg_conn_excl_acquire: the writer lets the statements before it
 * finish, parks the reader and leaves pipeline mode) and drives the socket
 * directly from the calling fiber, honouring its deadline. Rows written
 * are gathered into 64 KiB CopyData messages. A COPY stream cut short by a
 * deadline or cancellation cannot be resumed, so the connection is then
 * closed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"
#include "weave/buf.h"

enum { COPY_CHUNK = 64 * 1024, YIELD_EVERY = 1024 };

struct wv_pg_copy {
    wv_pg_conn *c;
    wv_buf buf;
    int err;
};

/* A wait failed in the middle of a COPY: nothing can resume the stream. */
static int wait_failed(wv_pg_conn *c, int rc)
{
    if (c->broken || c->closing)
        return pg_conn_usable(c);
    pg_conn_break(c, -ECONNRESET, "pg: the connection was closed: a COPY on it was %s",
                  rc == -ETIMEDOUT ? "cut short by a deadline" : "interrupted");
    return wv_fail(rc, "pg: COPY %s (the connection was closed)",
                   rc == -ETIMEDOUT ? "timed out" : "cancelled");
}

static int lost(wv_pg_conn *c)
{
    pg_conn_lost(c);
    return pg_conn_usable(c);
}

static int x_flush(wv_pg_conn *c)
{
    for (;;) {
        int r = PQflush(c->pg);
        if (r == 0)
            return 0;
        if (r < 0)
            return lost(c);
        int rc = wv_fd_wait(c->fd, WV_IN | WV_OUT, WV_NEVER);
        if (rc < 0)
            return wait_failed(c, rc);
        if ((rc & WV_IN) && !PQconsumeInput(c->pg))
            return lost(c);
    }
}

static int x_input(wv_pg_conn *c)
{
    if (!pg_conn_input_pending(c)) {
        int rc = wv_fd_wait(c->fd, WV_IN, WV_NEVER);
        if (rc < 0)
            return wait_failed(c, rc);
    }
    return PQconsumeInput(c->pg) ? 0 : lost(c);
}

static int x_result(wv_pg_conn *c, PGresult **r)
{
    *r = NULL;
    while (PQisBusy(c->pg)) {
        int rc = x_input(c);
        if (rc < 0)
            return rc;
    }
    *r = PQgetResult(c->pg);
    return 0;
}

/* Read results until libpq is idle again. */
static int x_drain(wv_pg_conn *c)
{
    for (;;) {
        PGresult *r;
        int rc = x_result(c, &r);
        if (rc < 0)
            return rc;
        if (!r)
            return 0;
        ExecStatusType st = PQresultStatus(r);
        PQclear(r);
        if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
            pg_conn_break(c, -EPROTO, "pg: unexpected COPY state");
            return pg_conn_usable(c);
        }
    }
}

/* Send the statement and read its first result, which must be `want`. */
static int start(wv_pg_conn *c, const char *sql, ExecStatusType want, const char *what)
{
    if (!PQsendQueryParams(c->pg, sql, 0, NULL, NULL, NULL, NULL, 0)) {
        char msg[PG_MSG];
        pg_one_line(PQerrorMessage(c->pg), msg, sizeof msg);
        if (PQstatus(c->pg) == CONNECTION_BAD)
            return lost(c);
        return wv_fail(-EIO, "pg: cannot send the COPY: %s", msg);
    }
    int rc = x_flush(c);
    PGresult *r = NULL;
    if (rc == 0)
        rc = x_result(c, &r);
    if (rc < 0)
        return rc;
    if (r && PQresultStatus(r) == want) {
        PQclear(r);
        return 0;
    }
    rc = r && PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK
             ? pg_outcome(r, 0)
             : wv_fail(-EINVAL, "pg: the statement is not a %s", what);
    char msg[ERRBUF_SIZE];
    snprintf(msg, sizeof msg, "%s", wv_errmsg());
    PQclear(r);
    int drc = x_drain(c);
    return drc < 0 ? drc : wv_fail(rc, "%s", msg);
}

/* The final result of the COPY: its row count, or its error. */
static int finish(wv_pg_conn *c)
{
    PGresult *r;
    int rc = x_result(c, &r);
    if (rc < 0)
        return rc;
    int rows = 0;
    if (r && PQresultStatus(r) == PGRES_COMMAND_OK)
        rows = atoi(PQcmdTuples(r));
    else
        rows = pg_outcome(r, 0);
    char msg[ERRBUF_SIZE];
    snprintf(msg, sizeof msg, "%s", wv_errmsg());
    PQclear(r);
    rc = x_drain(c);
    if (rc < 0)
        return rc;
    return rows < 0 ? wv_fail(rows, "%s", msg) : rows;
}

/* ----------------------------------------------------------------- COPY IN */

static int put(wv_pg_conn *c, const char *data, size_t n)
{
    while (n > 0) {
        int take = n > COPY_CHUNK ? COPY_CHUNK : (int)n;
        int r = PQputCopyData(c->pg, data, take);
        if (r < 0)
            return lost(c);
        if (r == 1) {
            data += take;
            n -= (size_t)take;
        }
        int rc = x_flush(c); /* keeps libpq's buffer small; also r == 0 */
        if (rc < 0)
            return rc;
    }
    return 0;
}

int wv_pg_copy_write(wv_pg_copy *cp, const void *data, size_t n)
{
    if (!cp || (!data && n))
        return wv_fail(-EINVAL, "pg: copy_write needs a COPY and data");
    if (cp->err)
        return cp->err;
    if (n >= COPY_CHUNK && cp->buf.n == 0) {
        cp->err = put(cp->c, data, n);
        return cp->err;
    }
    if (wv_buf_append(&cp->buf, data, n) < 0)
        return cp->err = wv_fail(-ENOMEM, "pg: out of memory");
    if (cp->buf.n >= COPY_CHUNK) {
        cp->err = put(cp->c, cp->buf.p, cp->buf.n);
        wv_buf_reset(&cp->buf);
    }
    return cp->err;
}

/* One value in COPY's text format. */
static int copy_escape(wv_buf *b, const char *p, size_t n)
{
    const char *run = p;
    for (size_t i = 0; i < n; i++) {
        char e = 0;
        switch (p[i]) {
        case '\\':
            e = '\\';
            break;
        case '\t':
            e = 't';
            break;
        case '\n':
            e = 'n';
            break;
        case '\r':
            e = 'r';
            break;
        default:
            continue;
        }
        char esc[2] = {'\\', e};
        if (wv_buf_append(b, run, (size_t)(p + i - run)) < 0 || wv_buf_append(b, esc, 2) < 0)
            return -ENOMEM;
        run = p + i + 1;
    }
    return wv_buf_append(b, run, (size_t)(p + n - run));
}

static int copy_bytes(wv_buf *b, const unsigned char *p, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (wv_buf_append(b, "\\\\x", 3) < 0 || wv_buf_reserve(b, n * 2) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        b->p[b->n++] = hex[p[i] >> 4];
        b->p[b->n++] = hex[p[i] & 15];
    }
    return 0;
}

int wv_pg_copy_row_args(wv_pg_copy *cp, const wv_pg_arg *args, int nargs)
{
    if (!cp)
        return wv_fail(-EINVAL, "pg: copy_row needs a COPY");
    if (cp->err)
        return cp->err;
    pg_args a;
    int rc = pg_args_encode(&a, args, nargs, false);
    if (rc < 0)
        return rc;
    wv_buf *b = &cp->buf;
    size_t mark = b->n;
    for (int i = 0; i < nargs && rc == 0; i++) {
        if (i && wv_buf_append(b, "\t", 1) < 0)
            rc = -ENOMEM;
        else if (!a.values[i])
            rc = wv_buf_append(b, "\\N", 2);
        else if (args[i].type == WV_PG_ARG_BYTES)
            rc = copy_bytes(b, (const unsigned char *)a.values[i], (size_t)a.lengths[i]);
        else
            rc = copy_escape(b, a.values[i], strlen(a.values[i]));
    }
    if (rc == 0)
        rc = wv_buf_append(b, "\n", 1);
    pg_args_free(&a);
    if (rc < 0) {
        b->n = mark;
        return wv_fail(-ENOMEM, "pg: out of memory");
    }
    if (b->n >= COPY_CHUNK) {
        cp->err = put(cp->c, b->p, b->n);
        wv_buf_reset(b);
    }
    return cp->err;
}

static int copy_in_owned(wv_pg_conn *c, const char *sql, wv_pg_copy_in_fn *fn, void *arg)
{
    int rc = start(c, sql, PGRES_COPY_IN, "COPY ... FROM STDIN");
    if (rc < 0)
        return rc;
    wv_pg_copy cp = {.c = c};
    int frc = fn(&cp, arg);
    if (cp.err && frc >= 0)
        frc = cp.err;
    char saved[ERRBUF_SIZE] = "";
    if (frc < 0)
        snprintf(saved, sizeof saved, "%s", wv_errmsg());
    if (c->broken) {
        wv_buf_free(&cp.buf);
        return pg_conn_usable(c);
    }
    if (frc >= 0 && cp.buf.n)
        frc = put(c, cp.buf.p, cp.buf.n);
    wv_buf_free(&cp.buf);
    if (c->broken)
        return pg_conn_usable(c);
    for (;;) {
        int e = PQputCopyEnd(c->pg, frc < 0 ? "aborted by the application" : NULL);
        if (e < 0)
            return lost(c);
        rc = x_flush(c);
        if (rc < 0)
            return rc;
        if (e == 1)
            break;
    }
    rc = finish(c);
    if (frc < 0)
        return c->broken ? pg_conn_usable(c) : wv_fail(frc, "%s", saved);
    return rc;
}

int wv_pg_copy_in(wv_pg_conn *c, const char *sql, wv_pg_copy_in_fn *fn, void *arg)
{
    if (!c || !sql || !fn)
        return wv_fail(-EINVAL, "pg: copy_in needs a connection, SQL and a function");
    pg_conn_hold(c);
    int rc = pg_conn_excl_acquire(c);
    if (rc == 0) {
        rc = copy_in_owned(c, sql, fn, arg);
        pg_conn_excl_release(c);
    }
    pg_conn_release(c);
    return rc;
}

/* ---------------------------------------------------------------- COPY OUT */

static int copy_out_owned(wv_pg_conn *c, const char *sql, wv_pg_copy_out_fn *fn, void *arg)
{
    int rc = start(c, sql, PGRES_COPY_OUT, "COPY ... TO STDOUT");
    if (rc < 0)
        return rc;
    int frc = 0, since_yield = 0;
    char saved[ERRBUF_SIZE] = "";
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(c->pg, &buf, 1);
        if (n > 0) {
            if (frc >= 0) {
                frc = fn(buf, (size_t)n, arg);
                if (frc < 0)
                    snprintf(saved, sizeof saved, "%s", wv_errmsg());
            }
            PQfreemem(buf);
            if (++since_yield == YIELD_EVERY) {
                since_yield = 0;
                if ((rc = wv_yield()) < 0)
                    return wait_failed(c, rc);
            }
            continue;
        }
        if (n == 0) {
            if ((rc = x_input(c)) < 0)
                return rc;
            continue;
        }
        if (n == -1)
            break;
        if (PQstatus(c->pg) == CONNECTION_BAD)
            return lost(c);
        char msg[PG_MSG];
        pg_one_line(PQerrorMessage(c->pg), msg, sizeof msg);
        pg_conn_break(c, -EPROTO, "pg: COPY OUT failed: %s", msg);
        return pg_conn_usable(c);
    }
    rc = finish(c);
    if (frc < 0)
        return rc < 0 && c->broken ? rc : wv_fail(frc, "%s", saved);
    return rc;
}

int wv_pg_copy_out(wv_pg_conn *c, const char *sql, wv_pg_copy_out_fn *fn, void *arg)
{
    if (!c || !sql || !fn)
        return wv_fail(-EINVAL, "pg: copy_out needs a connection, SQL and a function");
    pg_conn_hold(c);
    int rc = pg_conn_excl_acquire(c);
    if (rc == 0) {
        rc = copy_out_owned(c, sql, fn, arg);
        pg_conn_excl_release(c);
    }
    pg_conn_release(c);
    return rc;
}
