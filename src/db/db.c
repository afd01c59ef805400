/*
 * The database API's common half: opening by URL, the query calls,
 * transactions (and nested ones as savepoints), the checks every call makes
 * before a backend sees it, and the metrics. The engines live behind the
 * vtable in db_internal.h (sqlite_backend.c; pg_backend.c to come).
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db_internal.h"
#include "weave/metrics.h"

enum { FAILMSG_SIZE = 240, MAX_ARGS = 65535 };

struct wv_db {
    const db_backend *be;
    void *state;   /* the backend's, shared by the database and its transactions */
    wv_db *root;   /* the database (itself for the database) */
    wv_db *parent; /* a nested transaction's enclosing one */
    wv_db *child;  /* the nested transaction open in this one */
    void *conn;    /* transactions: the connection held */
    int depth;     /* 0 the database, 1 a transaction, 2.. nested ones */
    int shard;
    bool failed; /* a statement in this transaction failed */
    int failed_rc;
    char failmsg[FAILMSG_SIZE];
};

/* ------------------------------------------------------------------ metrics */

enum { ST_OK, ST_ERROR, ST_TIMEOUT, ST_CANCELED, ST_COUNT };

static const char *const status_names[ST_COUNT] = {"ok", "error", "timeout", "canceled"};

static struct {
    pthread_once_t once;
    wv_series *count[2][ST_COUNT];
    wv_series *duration[2];
} metrics = {.once = PTHREAD_ONCE_INIT};

static void metrics_register(void)
{
    wv_metric *count = NULL, *duration = NULL;
    int rc = wv_metric_register(NULL,
                                &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                                                  .name = "weave_db_queries_total",
                                                  .help = "Database statements sent, by backend "
                                                          "and outcome.",
                                                  .labels = "db,status"},
                                &count);
    if (rc == 0)
        rc = wv_metric_register(NULL,
                                &(wv_metric_opts){.type = WV_METRIC_HISTOGRAM,
                                                  .name = "weave_db_query_duration_seconds",
                                                  .help = "Time from a database call to its "
                                                          "result, in seconds.",
                                                  .labels = "db",
                                                  .unit = "seconds"},
                                &duration);
    if (rc < 0) {
        wv_warn("weave_db metrics not registered: %s", wv_errmsg());
        return;
    }
    static const char *const dbs[2] = {"sqlite", "postgres"};
    for (int d = 0; d < 2; d++) {
        for (int s = 0; s < ST_COUNT; s++)
            wv_metric_series(count, (const char *const[]){dbs[d], status_names[s]},
                             &metrics.count[d][s]);
        wv_metric_series(duration, (const char *const[]){dbs[d]}, &metrics.duration[d]);
    }
}

static void observe(const db_backend *be, int rc, int64_t t0)
{
    pthread_once(&metrics.once, metrics_register);
    int st = rc >= 0            ? ST_OK
             : rc == -ETIMEDOUT ? ST_TIMEOUT
             : rc == -ECANCELED ? ST_CANCELED
                                : ST_ERROR;
    int d = be->dialect == DB_POSTGRES;
    wv_counter_inc(metrics.count[d][st]);
    wv_histogram_observe(metrics.duration[d], (double)(wv_now() - t0) / 1e9);
}

/* ------------------------------------------------------------- open, close */

/* The backend for a URL, or NULL with *rc set. */
static const db_backend *pick_backend(const char *url, int *rc)
{
    if (strncmp(url, "sqlite:", 7) == 0)
        return &db_sqlite_backend;
    if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        return &db_pg_backend;
    size_t scheme = strcspn(url, ":/?#@");
    if (url[scheme] == ':' && scheme > 0 && scheme < 32)
        *rc = wv_fail(-EINVAL,
                      "wv_db_open: unknown database URL scheme \"%.*s\" (use sqlite:///path, "
                      "sqlite::memory: or postgres://...)",
                      (int)scheme, url);
    else
        *rc = wv_fail(-EINVAL, "wv_db_open: not a database URL (use sqlite:///path, "
                               "sqlite::memory: or postgres://...)");
    return NULL;
}

int wv_db_open(const char *url, const wv_db_opts *opts, wv_db **out)
{
    if (!out)
        return wv_fail(-EINVAL, "wv_db_open: out is NULL");
    *out = NULL;
    if (!url || !*url)
        return wv_fail(-EINVAL, "wv_db_open: no URL");
    if (!wv_fiber_id())
        return wv_fail(-EPERM, "wv_db_open: call it from a fiber");
    wv_db_opts o = opts ? *opts : (wv_db_opts){0};
    if (o.connections < 0 || o.connections > 64)
        return wv_fail(-EINVAL, "wv_db_open: connections %d: want 0 (the default) to 64",
                       o.connections);
    if (o.busy_timeout_ms < 0 || o.statement_cache < 0)
        return wv_fail(-EINVAL, "wv_db_open: busy_timeout_ms and statement_cache must be >= 0");
    if (!o.busy_timeout_ms)
        o.busy_timeout_ms = 5000;
    if (!o.statement_cache)
        o.statement_cache = 128;
    int rc = 0;
    const db_backend *be = pick_backend(url, &rc);
    if (!be)
        return rc;
    if (!o.connections)
        o.connections = be->dialect == DB_SQLITE ? 4 : 10;
    wv_db *db = calloc(1, sizeof *db);
    if (!db)
        return wv_fail(-ENOMEM, "wv_db_open: out of memory");
    db->be = be;
    db->root = db;
    db->shard = wv_shard_id();
    rc = be->open(url, &o, &db->state);
    if (rc < 0) {
        free(db);
        return rc;
    }
    *out = db;
    return 0;
}

void wv_db_close(wv_db *db)
{
    if (!db || db->depth != 0)
        return;
    db->be->close(db->state);
    free(db);
}

const char *wv_db_backend(const wv_db *db)
{
    return db ? db->be->name : "";
}

db_dialect db_dialect_of(const wv_db *db)
{
    return db->be->dialect;
}

/* ------------------------------------------------------------------ checks */

/* The handle may be used by this fiber now. */
static int check_handle(const wv_db *db, const char *what)
{
    if (!db)
        return wv_fail(-EINVAL, "%s: db is NULL", what);
    if (!wv_fiber_id())
        return wv_fail(-EPERM, "%s: call it from a fiber", what);
    if (wv_shard_id() != db->root->shard)
        return wv_fail(-EXDEV, "%s: the database belongs to shard %d (open one per shard)", what,
                       db->root->shard);
    if (db->child)
        return wv_fail(-EBUSY, "%s: a nested transaction is open in this one; end it first", what);
    if (db->failed)
        return wv_fail(-ENOTRECOVERABLE, "%s: the transaction failed earlier (%s); roll it back",
                       what, db->failmsg);
    return 0;
}

static bool is_transaction_control(const char *sql)
{
    static const char *const words[] = {"BEGIN",   "COMMIT",    "END",   "ROLLBACK",
                                        "RELEASE", "SAVEPOINT", "START", "ABORT"};
    char w[16];
    db_first_keyword(sql, w);
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (strcmp(w, words[i]) == 0)
            return true;
    return false;
}

/* Count (for WV_DB_ARGS_END) and check the values. */
static int check_args(const wv_db_value *args, size_t *nargs)
{
    if (*nargs == WV_DB_ARGS_END) {
        size_t n = 0;
        while (args && args[n].type != 0 && n <= MAX_ARGS)
            n++;
        *nargs = n;
    }
    if (*nargs > MAX_ARGS)
        return wv_fail(-EINVAL, "more than %d parameters", MAX_ARGS);
    if (*nargs && !args)
        return wv_fail(-EINVAL, "%zu parameters but args is NULL", *nargs);
    for (size_t i = 0; i < *nargs; i++) {
        const wv_db_value *v = &args[i];
        if (v->type < WV_DB_NULL || v->type > WV_DB_TIME)
            return wv_fail(-EINVAL, "parameter $%zu: unknown type %d", i + 1, (int)v->type);
        if ((v->type == WV_DB_TEXT || v->type == WV_DB_BLOB) && v->n && !v->p)
            return wv_fail(-EINVAL, "parameter $%zu: %zu bytes at NULL", i + 1, v->n);
    }
    return 0;
}

/* A statement failed inside transaction tx: the transaction is failed. */
static void fail_tx(wv_db *tx, int rc)
{
    if (tx->depth == 0 || tx->failed)
        return;
    tx->failed = true;
    tx->failed_rc = rc;
    snprintf(tx->failmsg, sizeof tx->failmsg, "%s", wv_errmsg()[0] ? wv_errmsg() : "error");
}

/* Send one statement the caller checked through the backend, timed. */
static int send_call(wv_db *db, db_call *call)
{
    int64_t t0 = wv_now();
    int rc =
        db->depth == 0 ? db->be->query(db->state, call) : db->be->run(db->state, db->conn, call);
    observe(db->be, rc, t0);
    if (rc < 0)
        fail_tx(db, rc);
    return rc;
}

static int run_user_call(wv_db *db, db_call *call, const char *what)
{
    int rc = check_handle(db, what);
    if (rc < 0)
        return rc;
    if (!call->sql)
        return wv_fail(-EINVAL, "%s: sql is NULL", what);
    if (is_transaction_control(call->sql))
        return wv_fail(-EINVAL,
                       "%s: write transactions with wv_db_begin/commit/rollback, not as SQL", what);
    rc = check_args(call->args, &call->nargs);
    if (rc < 0)
        return rc;
    return send_call(db, call);
}

/* ----------------------------------------------------------------- queries */

int wv_db_query_argv(wv_db *db, wv_db_rows **out, const char *sql, const wv_db_value *args,
                     size_t nargs)
{
    if (!out)
        return wv_fail(-EINVAL, "wv_db_query: out is NULL");
    *out = NULL;
    db_call call = {.sql = sql, .args = args, .nargs = nargs, .mode = DB_ROWS};
    int rc = run_user_call(db, &call, "wv_db_query");
    if (rc < 0)
        return rc;
    *out = call.rows;
    size_t n = wv_db_rows_count(call.rows);
    return n > INT_MAX ? INT_MAX : (int)n;
}

int wv_db_query_row_argv(wv_db *db, wv_db_rows **out, const char *sql, const wv_db_value *args,
                         size_t nargs)
{
    if (!out)
        return wv_fail(-EINVAL, "wv_db_query_row: out is NULL");
    *out = NULL;
    db_call call = {.sql = sql, .args = args, .nargs = nargs, .mode = DB_ROW};
    int rc = run_user_call(db, &call, "wv_db_query_row");
    if (rc < 0)
        return rc;
    if (wv_db_rows_count(call.rows) == 0) {
        wv_db_rows_free(call.rows);
        return wv_fail(-ENOENT, "wv_db_query_row: no row");
    }
    *out = call.rows;
    return 0;
}

int wv_db_query_int_argv(wv_db *db, int64_t *out, const char *sql, const wv_db_value *args,
                         size_t nargs)
{
    if (!out)
        return wv_fail(-EINVAL, "wv_db_query_int: out is NULL");
    db_call call = {.sql = sql, .args = args, .nargs = nargs, .mode = DB_ROW};
    int rc = run_user_call(db, &call, "wv_db_query_int");
    if (rc < 0)
        return rc;
    if (wv_db_rows_count(call.rows) == 0)
        rc = wv_fail(-ENOENT, "wv_db_query_int: no row");
    else if (wv_db_cols(call.rows) < 1)
        rc = wv_fail(-EINVAL, "wv_db_query_int: the statement returns no column");
    else
        rc = wv_db_get_int(call.rows, 0, 0, out);
    wv_db_rows_free(call.rows);
    return rc;
}

int wv_db_exec_argv(wv_db *db, const char *sql, const wv_db_value *args, size_t nargs)
{
    db_call call = {.sql = sql, .args = args, .nargs = nargs, .mode = DB_EXEC};
    int rc = run_user_call(db, &call, "wv_db_exec");
    if (rc < 0)
        return rc;
    return call.changes > INT_MAX ? INT_MAX : (int)call.changes;
}

/* ------------------------------------------------------------ transactions */

/* Run a savepoint statement on transaction tx's connection. */
static int savepoint_sql(wv_db *tx, const char *verb, int depth)
{
    char sql[64];
    snprintf(sql, sizeof sql, "%s wv_savepoint_%d", verb, depth);
    db_call call = {.sql = sql, .mode = DB_EXEC};
    int64_t t0 = wv_now();
    int rc = tx->be->run(tx->state, tx->conn, &call);
    observe(tx->be, rc, t0);
    return rc;
}

int wv_db_begin(wv_db *db, wv_db **out)
{
    if (!out)
        return wv_fail(-EINVAL, "wv_db_begin: out is NULL");
    *out = NULL;
    int rc = check_handle(db, "wv_db_begin");
    if (rc < 0)
        return rc;
    wv_db *tx = calloc(1, sizeof *tx);
    if (!tx)
        return wv_fail(-ENOMEM, "wv_db_begin: out of memory");
    tx->be = db->be;
    tx->state = db->state;
    tx->root = db->root;
    tx->shard = db->shard;
    tx->depth = db->depth + 1;
    if (db->depth == 0) {
        int64_t t0 = wv_now();
        rc = db->be->begin(db->state, &tx->conn);
        observe(db->be, rc, t0);
    } else {
        tx->conn = db->conn;
        rc = savepoint_sql(db, "SAVEPOINT", tx->depth);
        if (rc < 0)
            fail_tx(db, rc);
    }
    if (rc < 0) {
        free(tx);
        return rc;
    }
    if (db->depth > 0) {
        tx->parent = db;
        db->child = tx;
    }
    *out = tx;
    return 0;
}

static void detach_free(wv_db *tx)
{
    if (tx->parent)
        tx->parent->child = NULL;
    free(tx);
}

/* Roll tx (and whatever is nested in it) back and free it. */
static void rollback_tx(wv_db *tx)
{
    if (tx->child)
        rollback_tx(tx->child);
    if (tx->depth == 1) {
        int64_t t0 = wv_now();
        tx->be->rollback(tx->state, tx->conn);
        observe(tx->be, 0, t0);
    } else {
        /* a savepoint that cannot be undone now leaves its work in the
         * enclosing transaction, which is then failed */
        int rc = savepoint_sql(tx, "ROLLBACK TO SAVEPOINT", tx->depth);
        if (rc == 0)
            rc = savepoint_sql(tx, "RELEASE SAVEPOINT", tx->depth);
        if (rc < 0)
            fail_tx(tx->parent, rc);
    }
    detach_free(tx);
}

int wv_db_rollback(wv_db *tx)
{
    if (!tx || tx->depth == 0)
        return wv_fail(-EINVAL, "wv_db_rollback: not a transaction");
    /* errors of the statements that led here stay readable */
    char keep[256];
    snprintf(keep, sizeof keep, "%s", wv_errmsg());
    rollback_tx(tx);
    wv_fail(0, "%s", keep);
    return 0;
}

int wv_db_commit(wv_db *tx)
{
    if (!tx || tx->depth == 0)
        return wv_fail(-EINVAL, "wv_db_commit: not a transaction");
    if (tx->child) {
        rollback_tx(tx);
        return wv_fail(-EBUSY, "wv_db_commit: a nested transaction was still open; everything "
                               "was rolled back");
    }
    if (tx->failed) {
        char msg[FAILMSG_SIZE];
        memcpy(msg, tx->failmsg, sizeof msg);
        rollback_tx(tx);
        return wv_fail(-ENOTRECOVERABLE,
                       "wv_db_commit: rolled back, a statement in the transaction failed: %s", msg);
    }
    int rc;
    if (tx->depth == 1) {
        int64_t t0 = wv_now();
        rc = tx->be->commit(tx->state, tx->conn);
        observe(tx->be, rc, t0);
        detach_free(tx);
        return rc;
    }
    rc = savepoint_sql(tx, "RELEASE SAVEPOINT", tx->depth);
    if (rc < 0) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s", wv_errmsg());
        rollback_tx(tx); /* undoes its work, or fails the enclosing transaction */
        return wv_fail(rc, "%s", msg);
    }
    detach_free(tx);
    return 0;
}

int wv_db_transaction(wv_db *db, wv_db_tx_fn *fn, void *arg)
{
    if (!fn)
        return wv_fail(-EINVAL, "wv_db_transaction: fn is NULL");
    wv_db *tx;
    int rc = wv_db_begin(db, &tx);
    if (rc < 0)
        return rc;
    int result = fn(tx, arg);
    if (result < 0) {
        wv_db_rollback(tx); /* keeps fn's wv_errmsg() */
        return result;
    }
    rc = wv_db_commit(tx);
    return rc < 0 ? rc : result;
}

/* ------------------------------------------------------------ error mapping */

int db_errno_from_sqlstate(const char *s)
{
    if (!s || strlen(s) != 5)
        return -EIO;
    static const struct {
        const char *code;
        int err;
    } exact[] = {
        {"23505", -EEXIST},     {"23P01", -EEXIST},          {"23502", -EINVAL},
        {"23514", -EINVAL},     {"23503", -EINVAL},          {"22003", -ERANGE},
        {"55P03", -EBUSY},      {"40001", -EAGAIN},          {"40P01", -EDEADLK},
        {"57014", -ECANCELED},  {"25P02", -ENOTRECOVERABLE}, {"25006", -EROFS},
        {"42501", -EACCES},     {"53200", -ENOMEM},          {"53100", -ENOSPC},
        {"54000", -EMSGSIZE},   {"3D000", -ENOENT},          {"57P01", -ECONNRESET},
        {"57P02", -ECONNRESET}, {"57P03", -ECONNRESET},
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (memcmp(s, exact[i].code, 5) == 0)
            return exact[i].err;
    if (memcmp(s, "23", 2) == 0 || memcmp(s, "22", 2) == 0 || memcmp(s, "42", 2) == 0)
        return -EINVAL;
    if (memcmp(s, "28", 2) == 0)
        return -EACCES;
    if (memcmp(s, "08", 2) == 0)
        return -ECONNRESET;
    return -EIO;
}

/* ------------------------------------------------------------- SQL lexing */

/* Skip blanks and comments. */
static const char *skip_blank(const char *p)
{
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\f' || *p == '\v')
            p++;
        if (p[0] == '-' && p[1] == '-') {
            while (*p && *p != '\n')
                p++;
        } else if (p[0] == '/' && p[1] == '*') {
            const char *end = strstr(p + 2, "*/");
            p = end ? end + 2 : p + strlen(p);
        } else {
            return p;
        }
    }
}

void db_first_keyword(const char *sql, char word[16])
{
    const char *p = skip_blank(sql);
    size_t n = 0;
    while (n < 15 && ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z'))) {
        word[n++] = (char)(*p >= 'a' ? *p - 'a' + 'A' : *p);
        p++;
    }
    word[n] = '\0';
}

bool db_sql_blank(const char *sql)
{
    for (const char *p = skip_blank(sql); *p; p = skip_blank(p + 1))
        if (*p != ';')
            return false;
    return true;
}
