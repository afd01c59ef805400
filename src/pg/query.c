/*
 * Statements: one at a time (wv_pg_query, wv_pg_exec) and in an explicit
 * batch (wv_pg_batch). Both become one op on the connection's queue; the
 * writer and reader fibers of conn.c do the rest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"

/* One statement through the queue; *res gets its result on success. */
static int run_one(wv_pg_conn *c, const char *sql, const wv_pg_arg *args, int nargs, PGresult **res)
{
    if (!c || !sql)
        return wv_fail(-EINVAL, "pg: a statement needs a connection and SQL");
    pg_args a;
    int rc = pg_args_encode(&a, args, nargs, false);
    if (rc < 0)
        return rc;
    pg_stmt s;
    pg_args_stmt(&a, sql, &s);
    pg_op *o = pg_op_new(1, &s);
    if (!o) {
        pg_args_free(&a);
        return wv_fail(-ENOMEM, "pg: out of memory");
    }
    rc = pg_op_run(c, o);
    if (rc == 0) {
        rc = pg_op_outcome(o, 0);
        if (rc == 0) {
            *res = o->res[0];
            o->res[0] = NULL;
        }
        pg_op_free(o);
    }
    pg_args_free(&a);
    return rc;
}

int wv_pg_query_args(wv_pg_conn *c, wv_pg_result **out, const char *sql, const wv_pg_arg *args,
                     int nargs)
{
    if (!out)
        return wv_fail(-EINVAL, "pg: no place for the result");
    *out = NULL;
    PGresult *res;
    int rc = run_one(c, sql, args, nargs, &res);
    if (rc < 0)
        return rc;
    wv_pg_result *w = pg_result_wrap(res);
    if (!w)
        return wv_fail(-ENOMEM, "pg: out of memory");
    *out = w;
    return w->nrows;
}

static int affected(const PGresult *r)
{
    const char *n = PQcmdTuples((PGresult *)r);
    return n && *n ? atoi(n) : 0;
}

int wv_pg_exec_args(wv_pg_conn *c, const char *sql, const wv_pg_arg *args, int nargs)
{
    PGresult *res;
    int rc = run_one(c, sql, args, nargs, &res);
    if (rc < 0)
        return rc;
    rc = affected(res);
    PQclear(res);
    return rc;
}

/* ------------------------------------------------------------------ batch */

typedef struct batch_item {
    char *sql;
    pg_args args; /* copies of the values */
} batch_item;

struct wv_pg_batch {
    int n, cap;
    batch_item **items;
    wv_pg_result *results; /* one per statement after a run */
    int nresults;
    int err; /* the whole batch failed (connection, deadline) */
    char errmsg[PG_MSG];
};

wv_pg_batch *wv_pg_batch_new(void)
{
    return calloc(1, sizeof(wv_pg_batch));
}

static void batch_clear_results(wv_pg_batch *b)
{
    for (int i = 0; i < b->nresults; i++)
        pg_result_clear(&b->results[i]);
    free(b->results);
    b->results = NULL;
    b->nresults = 0;
    b->err = 0;
    b->errmsg[0] = '\0';
}

int wv_pg_batch_add_args(wv_pg_batch *b, const char *sql, const wv_pg_arg *args, int nargs)
{
    if (!b || !sql)
        return wv_fail(-EINVAL, "pg: batch_add needs a batch and SQL");
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 8;
        batch_item **items = realloc(b->items, (size_t)cap * sizeof *items);
        if (!items)
            return wv_fail(-ENOMEM, "pg: out of memory");
        b->items = items;
        b->cap = cap;
    }
    batch_item *it = calloc(1, sizeof *it);
    if (!it)
        return wv_fail(-ENOMEM, "pg: out of memory");
    it->sql = strdup(sql);
    int rc = it->sql ? pg_args_encode(&it->args, args, nargs, true)
                     : wv_fail(-ENOMEM, "pg: out of memory");
    if (rc < 0) {
        free(it->sql);
        free(it);
        return rc;
    }
    b->items[b->n++] = it;
    return 0;
}

int wv_pg_batch_len(const wv_pg_batch *b)
{
    return b ? b->n : 0;
}

int wv_pg_batch_run(wv_pg_conn *c, wv_pg_batch *b)
{
    if (!c || !b)
        return wv_fail(-EINVAL, "pg: batch_run needs a connection and a batch");
    batch_clear_results(b);
    if (b->n == 0)
        return 0;
    pg_stmt *stmts = calloc((size_t)b->n, sizeof *stmts);
    b->results = calloc((size_t)b->n, sizeof *b->results);
    pg_op *o = stmts && b->results ? pg_op_new(b->n, stmts) : NULL;
    if (!o) {
        free(stmts);
        free(b->results);
        b->results = NULL;
        return wv_fail(-ENOMEM, "pg: out of memory");
    }
    b->nresults = b->n;
    for (int i = 0; i < b->n; i++)
        pg_args_stmt(&b->items[i]->args, b->items[i]->sql, &stmts[i]);
    int rc = pg_op_run(c, o);
    if (rc < 0) {
        free(stmts);
        b->err = rc;
        snprintf(b->errmsg, sizeof b->errmsg, "%s", wv_errmsg());
        return rc;
    }
    if (o->err) {
        b->err = o->err;
        snprintf(b->errmsg, sizeof b->errmsg, "%s", o->errmsg);
    } else {
        for (int i = 0; i < b->n; i++) {
            pg_result_init(&b->results[i], o->res[i]);
            o->res[i] = NULL;
        }
    }
    pg_op_free(o);
    free(stmts);
    /* the first real failure (skipped statements only follow one) */
    if (b->err)
        return wv_fail(b->err, "%s", b->errmsg);
    for (int i = 0; i < b->n; i++) {
        const PGresult *r = b->results[i].res;
        if (!r || PQresultStatus(r) != PGRES_PIPELINE_ABORTED) {
            rc = pg_outcome(r, i);
            if (rc < 0)
                return rc;
        }
    }
    return 0;
}

int wv_pg_batch_result(wv_pg_batch *b, int i, wv_pg_result **out)
{
    if (out)
        *out = NULL;
    if (!b || !out)
        return wv_fail(-EINVAL, "pg: batch_result needs a batch and a result pointer");
    if (i < 0 || i >= b->nresults)
        return wv_fail(-ERANGE, "pg: batch statement %d out of range (%d results)", i, b->nresults);
    if (b->err)
        return wv_fail(b->err, "%s", b->errmsg);
    int rc = pg_outcome(b->results[i].res, i);
    if (rc < 0)
        return rc;
    *out = &b->results[i];
    return b->results[i].nrows;
}

void wv_pg_batch_free(wv_pg_batch *b)
{
    if (!b)
        return;
    batch_clear_results(b);
    for (int i = 0; i < b->n; i++) {
        pg_args_free(&b->items[i]->args);
        free(b->items[i]->sql);
        free(b->items[i]);
    }
    free(b->items);
    free(b);
}
