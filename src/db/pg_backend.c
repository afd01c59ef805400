/*
 * wv_db's PostgreSQL engine: the backend vtable (db_internal.h) over weave's
 * PostgreSQL client (include/weave/pg.h).
 *
 * A database is a wv_pg_pool of opts->connections connections on the shard
 * that opened it. A statement outside a transaction takes a connection for
 * itself; a transaction holds one from BEGIN to COMMIT/ROLLBACK. Values go
 * as typed parameters, never into the SQL ($N are PostgreSQL's own). Each
 * result column's cells take the db type of its PostgreSQL type (integers,
 * float/numeric, bool, date/timestamp, bytea, else text), and rows are
 * copied into a wv_db_rows. opts->on_connect runs once on every new
 * connection (known by its server process id).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_internal.h"
#include "weave/pg.h"

typedef struct pg_state {
    wv_pg_pool *pool;
    char *on_connect;
    /* the server pids of the connections on_connect has run on: a ring, so
     * the oldest are forgotten (at worst one runs it twice) */
    int ready_pids[256];
    size_t npids; /* ever added */
} pg_state;

/* The client's error as the db layer reports it: the errno of its SQLSTATE
 * (db.h's table) and "postgres: <SQLSTATE> message". */
static int pg_error(int rc)
{
    char state[6];
    char msg[512];
    snprintf(msg, sizeof msg, "%s", wv_errmsg());
    if (rc == -ETIMEDOUT || rc == -ECANCELED)
        return wv_fail(rc, "postgres: %s", strncmp(msg, "pg: ", 4) == 0 ? msg + 4 : msg);
    if (!wv_pg_sqlstate(state))
        return wv_fail(rc, "postgres: %s", msg);
    /* the client writes "ERROR 23505 text": keep the text */
    const char *text = msg;
    if (strncmp(text, "ERROR ", 6) == 0 || strncmp(text, "FATAL ", 6) == 0)
        text += 6;
    if (strncmp(text, state, 5) == 0)
        text += 5;
    while (*text == ' ')
        text++;
    return wv_fail(db_errno_from_sqlstate(state), "postgres: %s %s", state, text);
}

static void to_args(const wv_db_value *in, size_t n, wv_pg_arg *out)
{
    for (size_t i = 0; i < n; i++) {
        const wv_db_value *v = &in[i];
        switch (v->type) {
        case WV_DB_INT:
            out[i] = WV_PG_INT(v->i);
            break;
        case WV_DB_FLOAT:
            out[i] = WV_PG_FLOAT(v->f);
            break;
        case WV_DB_BOOL:
            out[i] = WV_PG_BOOL(v->b);
            break;
        case WV_DB_TEXT:
            out[i] = WV_PG_TEXTN((const char *)v->p, v->n);
            break;
        case WV_DB_BLOB:
            out[i] = WV_PG_BYTES(v->p, v->n);
            break;
        case WV_DB_TIME:
            out[i] = WV_PG_TIMESTAMP(v->i);
            break;
        default:
            out[i] = WV_PG_NULL;
            break;
        }
    }
}

/* The db type a PostgreSQL column's values read as, from its type OID. */
static wv_db_type column_kind(const wv_pg_result *r, int col)
{
    switch (wv_pg_coltype(r, col)) {
    case 16: /* bool */
        return WV_DB_BOOL;
    case 17: /* bytea */
        return WV_DB_BLOB;
    case 20: /* int8 */
    case 21: /* int2 */
    case 23: /* int4 */
    case 26: /* oid */
        return WV_DB_INT;
    case 700:  /* float4 */
    case 701:  /* float8 */
    case 1700: /* numeric */
        return WV_DB_FLOAT;
    case 1082: /* date */
    case 1114: /* timestamp */
    case 1184: /* timestamptz */
        return WV_DB_TIME;
    default: /* text, varchar, json, uuid, interval, ...: their text */
        return WV_DB_TEXT;
    }
}

/* Copy the client's result into a wv_db_rows (only the first row for
 * DB_ROW). */
static int build_rows(wv_pg_result *r, db_mode mode, wv_db_rows **out)
{
    int ncols = wv_pg_ncols(r), nrows = wv_pg_nrows(r);
    if (mode == DB_ROW && nrows > 1)
        nrows = 1;
    wv_db_rows *rows = db_rows_new(ncols);
    if (!rows)
        return wv_fail(-ENOMEM, "postgres: out of memory");
    wv_db_type kinds[ncols > 0 ? ncols : 1];
    int rc = 0;
    for (int c = 0; c < ncols && rc == 0; c++) {
        const char *name = wv_pg_colname(r, c);
        rc = db_rows_set_name(rows, c, name ? name : "", name ? strlen(name) : 0);
        kinds[c] = column_kind(r, c);
    }
    for (int row = 0; row < nrows && rc == 0; row++) {
        db_cell *cells = db_rows_add(rows);
        if (!cells) {
            rc = -ENOMEM;
            break;
        }
        for (int c = 0; c < ncols && rc == 0; c++) {
            if (wv_pg_isnull(r, row, c))
                continue; /* cells start NULL */
            db_cell *cell = &cells[c];
            int64_t i;
            double f;
            bool b;
            wv_str s;
            switch (kinds[c]) {
            case WV_DB_INT:
                rc = wv_pg_get_int(r, row, c, &i);
                db_cell_int(cell, WV_DB_INT, i);
                break;
            case WV_DB_FLOAT:
                rc = wv_pg_get_float(r, row, c, &f);
                db_cell_float(cell, f);
                break;
            case WV_DB_BOOL:
                rc = wv_pg_get_bool(r, row, c, &b);
                db_cell_int(cell, WV_DB_BOOL, b);
                break;
            case WV_DB_TIME:
                rc = wv_pg_get_timestamp(r, row, c, &i);
                db_cell_int(cell, WV_DB_TIME, i);
                break;
            case WV_DB_BLOB:
                rc = wv_pg_get_bytes(r, row, c, &s);
                if (rc == 0)
                    rc = db_cell_bytes(rows, cell, WV_DB_BLOB, s.p, s.n);
                break;
            default: {
                const char *v = wv_pg_value(r, row, c);
                rc = db_cell_bytes(rows, cell, WV_DB_TEXT, v ? v : "", v ? strlen(v) : 0);
                break;
            }
            }
        }
    }
    if (rc < 0) {
        wv_db_rows_free(rows);
        return rc == -ENOMEM ? wv_fail(rc, "postgres: out of memory")
                             : wv_fail(-EPROTO, "postgres: a value could not be read");
    }
    *out = rows;
    return 0;
}

/* One statement on connection c. */
static int run_on(wv_pg_conn *c, db_call *call)
{
    wv_pg_arg args[call->nargs ? call->nargs : 1];
    to_args(call->args, call->nargs, args);
    if (call->mode == DB_EXEC) {
        int n = wv_pg_exec_args(c, call->sql, args, (int)call->nargs);
        if (n < 0)
            return pg_error(n);
        call->changes = n;
        return 0;
    }
    wv_pg_result *r = NULL;
    int n = wv_pg_query_args(c, &r, call->sql, args, (int)call->nargs);
    if (n < 0) {
        wv_pg_result_free(r);
        return pg_error(n);
    }
    int rc = build_rows(r, call->mode, &call->rows);
    wv_pg_result_free(r);
    return rc;
}

/* Run on_connect on c if it is new to us. */
static int prepare_conn(pg_state *s, wv_pg_conn *c)
{
    enum { RING = sizeof s->ready_pids / sizeof s->ready_pids[0] };
    int pid = wv_pg_conn_pid(c);
    for (size_t i = 0; i < s->npids && i < RING; i++)
        if (s->ready_pids[i] == pid)
            return 0;
    int n = wv_pg_exec(c, s->on_connect);
    if (n < 0)
        return pg_error(n);
    s->ready_pids[s->npids++ % RING] = pid;
    return 0;
}

static int acquire(pg_state *s, wv_pg_conn **c)
{
    int rc = wv_pg_pool_acquire(s->pool, c);
    if (rc < 0)
        return pg_error(rc);
    if (s->on_connect && (rc = prepare_conn(s, *c)) < 0) {
        wv_pg_pool_release(s->pool, *c);
        return rc;
    }
    return 0;
}

static int pg_query(void *state, db_call *call)
{
    pg_state *s = state;
    wv_pg_conn *c;
    int rc = acquire(s, &c);
    if (rc < 0)
        return rc;
    rc = run_on(c, call);
    wv_pg_pool_release(s->pool, c);
    return rc;
}

static int pg_begin(void *state, void **conn)
{
    pg_state *s = state;
    wv_pg_conn *c;
    int rc = acquire(s, &c);
    if (rc < 0)
        return rc;
    rc = wv_pg_begin(c, NULL);
    if (rc < 0) {
        rc = pg_error(rc);
        wv_pg_pool_release(s->pool, c);
        return rc;
    }
    *conn = c;
    return 0;
}

static int pg_run(void *state, void *conn, db_call *call)
{
    return run_on(conn, call);
}

static int pg_commit(void *state, void *conn)
{
    pg_state *s = state;
    int rc = wv_pg_commit(conn);
    if (rc < 0)
        rc = pg_error(rc);
    /* released whatever happened: the pool rolls back a connection that
     * comes back with a transaction still open */
    wv_pg_pool_release(s->pool, conn);
    return rc;
}

static void pg_rollback(void *state, void *conn)
{
    pg_state *s = state;
    /* sent even past the deadline, and done before the connection's next
     * use (wv_pg_rollback's contract) */
    wv_pg_rollback(conn);
    wv_pg_pool_release(s->pool, conn);
}

static int pg_open(const char *url, const wv_db_opts *opts, void **state)
{
    pg_state *s = calloc(1, sizeof *s);
    if (!s)
        return wv_fail(-ENOMEM, "postgres: out of memory");
    int rc = wv_pg_pool_new(
        url, &(wv_pg_pool_opts){.max_size = opts->connections > 0 ? opts->connections : 10},
        &s->pool);
    if (rc < 0) {
        free(s);
        return pg_error(rc);
    }
    if (opts->on_connect && *opts->on_connect && !(s->on_connect = strdup(opts->on_connect)))
        rc = wv_fail(-ENOMEM, "postgres: out of memory");
    /* connect one now: a wrong URL, password or database fails the open,
     * as it does on SQLite */
    wv_pg_conn *c;
    if (rc == 0)
        rc = acquire(s, &c);
    if (rc == 0)
        wv_pg_pool_release(s->pool, c);
    if (rc < 0) {
        wv_pg_pool_free(s->pool);
        free(s->on_connect);
        free(s);
        return rc;
    }
    *state = s;
    return 0;
}

static void pg_close(void *state)
{
    pg_state *s = state;
    wv_pg_pool_free(s->pool);
    free(s->on_connect);
    free(s);
}

const db_backend db_pg_backend = {
    .name = "postgres",
    .dialect = DB_POSTGRES,
    .returning = true,
    .open = pg_open,
    .close = pg_close,
    .query = pg_query,
    .begin = pg_begin,
    .run = pg_run,
    .commit = pg_commit,
    .rollback = pg_rollback,
};
