/*
 * weave PostgreSQL client: libpq's non-blocking API driven by the shard's
 * loop, with auto-pipelining, a pool per shard, transactions, LISTEN/NOTIFY
 * and COPY.
 *
 *     wv_pg_pool *db;
 *     wv_pg_pool_new("postgres://app:app@127.0.0.1:5432/appdb", NULL, &db);
 *
 *     wv_pg_result *r;
 *     int n = wv_pg_pool_query(db, &r, "SELECT id, name FROM users WHERE id > $1",
 *                              WV_PG_INT(41));
 *     if (n < 0)
 *         return n;                       // wv_errmsg(): "ERROR 42P01 relation ..."
 *     for (int i = 0; i < n; i++) {
 *         int64_t id;
 *         wv_str name;
 *         wv_pg_get_int(r, i, 0, &id);
 *         wv_pg_get_text(r, i, 1, &name);
 *     }
 *     wv_pg_result_free(r);
 *
 * The model.
 *
 *  - A connection (wv_pg_conn) belongs to the shard that opened it and may
 *    be used by any number of its fibers at once. Their statements are
 *    pipelined: each fiber queues its statement and suspends; a writer
 *    fiber sends everything queued in one write, and a reader fiber hands
 *    each result to the fiber that asked, in order. While a batch is on the
 *    wire, new statements wait and form the next batch, so under load a
 *    batch holds every waiting fiber's statement: 64 fibers on one
 *    connection cost one round trip per 64 statements. Each statement
 *    still has its own Sync: it runs in its own implicit transaction and
 *    fails alone, exactly as if it had been sent alone.
 *    wv_pg_opts.no_pipeline sends one statement at a time instead.
 *  - Only parameterised statements: values travel as wv_pg_arg ($1, $2, ...)
 *    and are never spliced into SQL text. Each call is one statement (the
 *    extended protocol); several statements go in a wv_pg_batch or a
 *    transaction. Statements are prepared once per connection and kept in
 *    a cache (LRU, by SQL text and argument types).
 *  - Every call honours the fiber's deadline and cancellation. A statement
 *    cut short is abandoned: if it was not sent yet it never is; if it
 *    runs on the server it is cancelled there (libpq's PQcancel blocks, so
 *    the request goes out from the offload pool) and its results are read
 *    and dropped, so the connection is back to idle before anything else
 *    is answered on it. One that still runs cancel_timeout_ms after the
 *    cancel request closes the connection. Other fibers' statements are
 *    not affected: one that a cancel hits by accident (its neighbour
 *    finished a moment before) is sent again, as is one whose cached
 *    prepared statement went stale (the table changed shape); never inside
 *    a transaction.
 *  - A transaction (wv_pg_begin / wv_pg_transact) makes the connection the
 *    caller's until commit or rollback: other fibers' statements wait. Do
 *    not send BEGIN by hand on a connection other fibers share.
 *  - A pool (wv_pg_pool) belongs to its shard too (make one per shard, in
 *    wv_shard_each): a bounded set of connections, made on demand, checked
 *    before they are handed out, reset or closed when they come back in a
 *    bad state, and made again with backoff when the server goes away.
 *
 * Errors are negative errno values with the detail in wv_errmsg():
 *
 *   -EREMOTEIO   the server refused the statement; wv_errmsg() reads
 *                "ERROR 23505 duplicate key value violates unique constraint
 *                "t_pkey" (detail: Key (id)=(1) already exists.)", and
 *                wv_pg_sqlstate() gives the code. Except:
 *   -EAGAIN      serialization failure or deadlock (40001, 40P01): retry the
 *                transaction (wv_pg_transact does);
 *   -EACCES      authentication or privilege (28xxx, 42501);
 *   -ECANCELED   the statement was cancelled on the server (57014), or it
 *                was skipped because an earlier one of its batch failed;
 *   -ECONNRESET  the connection is gone (server restart, FATAL error,
 *                network); the connection object stays unusable;
 *   -ECONNREFUSED / -EHOSTUNREACH / -ETIMEDOUT  while connecting;
 *   -ETIMEDOUT / -ECANCELED  the fiber's deadline passed or it was
 *                cancelled;
 *   -EDOM        a typed accessor met a column of another type
 *                ("column 1 (name) is text, not an integer");
 *   -ENODATA     a typed accessor met a NULL;
 *   -ERANGE      a row or column index out of range;
 *   -EINVAL      bad arguments (the message says which);
 *   -EPROTO      the server's reply could not be understood (or a COPY was
 *                sent as a plain statement); the connection is closed;
 *   -EDEADLK     a statement on a connection from inside its own COPY
 *                callback;
 *   -ESHUTDOWN   the pool was freed; -EPERM outside a fiber.
 *
 * Metrics (default registry, registered at the first connection; label db
 * is wv_pg_opts.name): weave_pg_queries_total{db,status="ok|error|timeout|
 * canceled"}, weave_pg_query_duration_seconds{db},
 * weave_pg_pool_connections{db,state="idle|busy"},
 * weave_pg_batches_total{db} (writes to the server, each one round trip),
 * weave_pg_cancels_total{db}, weave_pg_connects_total{db,status="ok|error"};
 * a pool's exhaustion: weave_pg_pool_max_connections{db} (max_size, summed
 * over the pools of that name: one per shard), weave_pg_pool_waiters{db}
 * (fibers waiting in wv_pg_pool_acquire now) and
 * weave_pg_pool_acquire_timeouts_total{db} (waits ended by the fiber's
 * deadline). wv_db on PostgreSQL is a pool named "default".
 */
#ifndef WEAVE_PG_H
#define WEAVE_PG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weave/rt.h"
#include "weave/str.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_pg_conn wv_pg_conn;
typedef struct wv_pg_pool wv_pg_pool;
typedef struct wv_pg_result wv_pg_result;
typedef struct wv_pg_batch wv_pg_batch;
typedef struct wv_pg_copy wv_pg_copy;

/* ------------------------------------------------------------- arguments */

enum {
    WV_PG_ARG_NULL,
    WV_PG_ARG_INT,       /* int64_t, sent as text; the server infers the type */
    WV_PG_ARG_FLOAT,     /* double */
    WV_PG_ARG_BOOL,      /* bool */
    WV_PG_ARG_TEXT,      /* UTF-8 text */
    WV_PG_ARG_BYTES,     /* bytes, sent as bytea (binary) */
    WV_PG_ARG_TIMESTAMP, /* int64_t microseconds since 1970-01-01 UTC */
};

/* One statement argument ($1, $2, ...). Make them with the macros below. */
typedef struct wv_pg_arg {
    int type;
    union {
        int64_t i;
        double f;
        bool b;
        struct {
            const char *p;
            size_t n; /* SIZE_MAX: p is NUL-terminated */
        } s;
    } v;
} wv_pg_arg;

#define WV_PG_NULL         ((wv_pg_arg){.type = WV_PG_ARG_NULL})
#define WV_PG_INT(x)       ((wv_pg_arg){.type = WV_PG_ARG_INT, .v.i = (int64_t)(x)})
#define WV_PG_FLOAT(x)     ((wv_pg_arg){.type = WV_PG_ARG_FLOAT, .v.f = (double)(x)})
#define WV_PG_BOOL(x)      ((wv_pg_arg){.type = WV_PG_ARG_BOOL, .v.b = (x)})
#define WV_PG_TIMESTAMP(x) ((wv_pg_arg){.type = WV_PG_ARG_TIMESTAMP, .v.i = (int64_t)(x)})
/* A NUL-terminated string; NULL sends SQL NULL. */
#define WV_PG_TEXT(str) ((wv_pg_arg){.type = WV_PG_ARG_TEXT, .v.s = {(str), SIZE_MAX}})
/* n bytes of text (no NUL needed; a NUL inside is refused with -EINVAL). */
#define WV_PG_TEXTN(ptr, len) ((wv_pg_arg){.type = WV_PG_ARG_TEXT, .v.s = {(ptr), (len)}})
#define WV_PG_STR(wvstr)      WV_PG_TEXTN((wvstr).p, (wvstr).n)
#define WV_PG_BYTES(ptr, len)                                                                      \
    ((wv_pg_arg){.type = WV_PG_ARG_BYTES, .v.s = {(const char *)(ptr), (len)}})

/* The variadic forms below take the arguments after the SQL and count them:
 * wv_pg_query(c, &r, "SELECT $1::int + $2", WV_PG_INT(1), WV_PG_INT(2)). */
#define WV_PG__ARGS(...)  ((const wv_pg_arg[]){{0}, __VA_ARGS__} + 1)
#define WV_PG__NARGS(...) ((int)(sizeof((wv_pg_arg[]){{0}, __VA_ARGS__}) / sizeof(wv_pg_arg)) - 1)

/* ------------------------------------------------------------- connecting */

typedef struct wv_pg_opts {
    /* A label for metrics and logs ("db" label); NULL = "default". */
    const char *name;
    /* Connecting may take this long (and never past the fiber's deadline);
     * 0 = the URL's connect_timeout, else 10 s. */
    int64_t connect_timeout_ms;
    /* A cancelled statement must stop within this long after the cancel
     * request, else the connection is closed; 0 = 5 s. */
    int64_t cancel_timeout_ms;
    /* Prepared statements kept per connection; 0 = 256, < 0 = none (every
     * statement is parsed each time). */
    int statement_cache;
    /* Statements per write; 0 = 512. */
    int max_batch;
    /* Send one statement at a time and wait for its result before the next
     * (no pipelining), as a classic driver does. */
    bool no_pipeline;
    /* Notifications kept for wv_pg_notification_recv before the oldest are
     * dropped (and counted in the log); 0 = 10000. */
    int max_notifications;
} wv_pg_opts;

/*
 * Connect to `url`: postgres://user:pass@host:port/db?sslmode=disable&
 * application_name=x (any libpq URI or "key=value" conninfo). Host names
 * are resolved on the offload pool (libpq would block the loop); libpq does
 * the rest (SCRAM, TLS) without blocking. opts may be NULL.
 * Errors: -ECONNREFUSED, -EHOSTUNREACH (no such host), -EACCES (password,
 * pg_hba), -ENOENT (no such database), -ETIMEDOUT, -ECANCELED, -EINVAL (bad
 * URL), -ECONNRESET / -EIO (anything else), with libpq's words in
 * wv_errmsg(). *out is NULL on error.
 */
int wv_pg_connect(const char *url, const wv_pg_opts *opts, wv_pg_conn **out);

/* Close: statements still queued or running fail with -ECONNRESET, the
 * server is told goodbye, the memory goes once the connection's fibers have
 * stopped. Never suspends. NULL is ignored. A pool's connection goes back
 * with wv_pg_pool_release instead. */
void wv_pg_close(wv_pg_conn *c);

/* Is the connection still usable (not lost, not closing)? */
bool wv_pg_conn_ok(const wv_pg_conn *c);

/* The server process id serving this connection (pg_stat_activity.pid). */
int wv_pg_conn_pid(const wv_pg_conn *c);

/* Counters of one connection, for tests and dashboards. */
typedef struct wv_pg_conn_stats {
    uint64_t statements; /* statements sent (each retry counts) */
    uint64_t batches;    /* writes that carried statements: round trips */
    uint64_t prepares;   /* statements prepared (cache misses) */
    uint64_t cancels;    /* cancel requests sent */
    uint64_t retries;    /* statements sent again (a stray cancel, a stale plan) */
    uint64_t notifications_dropped;
} wv_pg_conn_stats;

void wv_pg_conn_stats_get(const wv_pg_conn *c, wv_pg_conn_stats *out);

/* ------------------------------------------------------------- statements */

/*
 * Run one statement and keep its rows: returns the number of rows (>= 0)
 * with the result in *out (free it with wv_pg_result_free), or an error
 * (*out is NULL). `args` may be NULL when nargs is 0.
 */
int wv_pg_query_args(wv_pg_conn *c, wv_pg_result **out, const char *sql, const wv_pg_arg *args,
                     int nargs);
#define wv_pg_query(c, out, sql, ...)                                                              \
    wv_pg_query_args((c), (out), (sql), WV_PG__ARGS(__VA_ARGS__), WV_PG__NARGS(__VA_ARGS__))

/* Run one statement for its effect: returns the rows it touched
 * (INSERT/UPDATE/DELETE/SELECT count; 0 for others), or an error. */
int wv_pg_exec_args(wv_pg_conn *c, const char *sql, const wv_pg_arg *args, int nargs);
#define wv_pg_exec(c, sql, ...)                                                                    \
    wv_pg_exec_args((c), (sql), WV_PG__ARGS(__VA_ARGS__), WV_PG__NARGS(__VA_ARGS__))

/* The SQLSTATE of the running fiber's last error, when it came from the
 * server: copied into state (5 characters + NUL) and true; else "" and
 * false. */
bool wv_pg_sqlstate(char state[6]);

/* ---------------------------------------------------------------- results */

/* Rows and columns of a result. */
int wv_pg_nrows(const wv_pg_result *r);
int wv_pg_ncols(const wv_pg_result *r);

/* A column's name (NULL when out of range), and the column named `name`
 * (its index, or -ENOENT). */
const char *wv_pg_colname(const wv_pg_result *r, int col);
int wv_pg_colnum(const wv_pg_result *r, const char *name);

/* A column's type OID (pg_type.oid: 16 bool, 17 bytea, 20 int8, 23 int4,
 * 25 text, 701 float8, 1114 timestamp, 1184 timestamptz, 1700 numeric, ...),
 * for code that dispatches on types itself; 0 when out of range. */
unsigned wv_pg_coltype(const wv_pg_result *r, int col);

/* Is the value NULL? (false when out of range) */
bool wv_pg_isnull(const wv_pg_result *r, int row, int col);

/*
 * Typed accessors. Each checks the column's type and returns 0 with the
 * value, -EDOM when the column is of another type, -ENODATA for NULL,
 * -ERANGE for an index out of range (the message names the column).
 *
 *  int        int2, int4, int8, oid
 *  float      float4, float8, numeric (and the integer types)
 *  bool       bool
 *  text       text, varchar, char(n), name, json, jsonb, xml, unknown:
 *             *out points into the result (NUL-terminated), valid until it
 *             is freed
 *  bytes      bytea, decoded; *out valid until the result is freed
 *  timestamp  timestamp, timestamptz, date: microseconds since
 *             1970-01-01 00:00 UTC (a timestamp without time zone is taken
 *             as UTC); infinity / -infinity are INT64_MAX / INT64_MIN. The
 *             server's DateStyle must be ISO (its default).
 */
int wv_pg_get_int(const wv_pg_result *r, int row, int col, int64_t *out);
int wv_pg_get_float(const wv_pg_result *r, int row, int col, double *out);
int wv_pg_get_bool(const wv_pg_result *r, int row, int col, bool *out);
int wv_pg_get_text(const wv_pg_result *r, int row, int col, wv_str *out);
int wv_pg_get_bytes(wv_pg_result *r, int row, int col, wv_str *out);
int wv_pg_get_timestamp(const wv_pg_result *r, int row, int col, int64_t *out);

/* Any value as the server wrote it (its text form, whatever the type), or
 * NULL for SQL NULL or out of range. */
const char *wv_pg_value(const wv_pg_result *r, int row, int col);

/* Free a result. NULL is ignored. */
void wv_pg_result_free(wv_pg_result *r);

/* ------------------------------------------------------------------ batch */

/*
 * An explicit pipeline for one fiber: queue statements, send them in one
 * write, read every result. The statements run in order as one implicit
 * transaction (one Sync at the end): if one fails, the ones after it are
 * skipped (-ECANCELED) and the effects of the ones before are rolled back,
 * unless the batch runs inside a transaction of yours.
 */
/* NULL when out of memory. */
wv_pg_batch *wv_pg_batch_new(void);

/* Queue a statement; its arguments are copied. 0, -EINVAL, -ENOMEM. */
int wv_pg_batch_add_args(wv_pg_batch *b, const char *sql, const wv_pg_arg *args, int nargs);
#define wv_pg_batch_add(b, sql, ...)                                                               \
    wv_pg_batch_add_args((b), (sql), WV_PG__ARGS(__VA_ARGS__), WV_PG__NARGS(__VA_ARGS__))

/* Statements queued. */
int wv_pg_batch_len(const wv_pg_batch *b);

/* Send every queued statement and wait for all results: 0 when all
 * succeeded, else the first statement's error (wv_pg_batch_result says
 * which one failed). Results of an earlier run are dropped first. */
int wv_pg_batch_run(wv_pg_conn *c, wv_pg_batch *b);

/* The i-th statement's outcome after a run: its row count with *out set
 * (the result stays the batch's: do not free it; valid until the next run or
 * wv_pg_batch_free), or its error (wv_errmsg() set; *out NULL). */
int wv_pg_batch_result(wv_pg_batch *b, int i, wv_pg_result **out);

/* Free the batch, its statements and results. NULL is ignored. */
void wv_pg_batch_free(wv_pg_batch *b);

/* ----------------------------------------------------------- transactions */

typedef enum wv_pg_isolation {
    WV_PG_READ_COMMITTED = 0,
    WV_PG_REPEATABLE_READ,
    WV_PG_SERIALIZABLE,
} wv_pg_isolation;

typedef struct wv_pg_tx_opts {
    wv_pg_isolation isolation;
    bool read_only;
    bool deferrable; /* with serializable + read_only */
    /* wv_pg_transact: attempts after a serialization failure or deadlock;
     * 0 = 5, < 0 = none. */
    int max_retries;
} wv_pg_tx_opts;

/* BEGIN with the options (NULL = read committed, read write). From here
 * until commit/rollback the connection is this fiber's. -EINVAL when the
 * fiber already has a transaction open on it. */
int wv_pg_begin(wv_pg_conn *c, const wv_pg_tx_opts *opts);

/* COMMIT. If the transaction had failed, the server rolls it back: that is
 * an error (-EAGAIN after a serialization failure, else -EREMOTEIO). The
 * connection is released to other fibers either way. */
int wv_pg_commit(wv_pg_conn *c);

/* ROLLBACK. It is sent even when the fiber can no longer wait (deadline
 * passed, cancelled): then that error is returned, and the rollback still
 * happens before anything else runs on the connection. */
int wv_pg_rollback(wv_pg_conn *c);

/*
 * Run fn(c, arg) in a transaction: BEGIN, fn, COMMIT; ROLLBACK when fn
 * returns < 0. A serialization failure or deadlock (fn or COMMIT returning
 * -EAGAIN, or one seen by any statement of the attempt) rolls back and runs
 * fn again, up to max_retries times, after a short random pause. Returns
 * fn's result (>= 0) once committed, or the error.
 */
typedef int wv_pg_tx_fn(wv_pg_conn *c, void *arg);
int wv_pg_transact(wv_pg_conn *c, const wv_pg_tx_opts *opts, wv_pg_tx_fn *fn, void *arg);

/* ---------------------------------------------------------- LISTEN/NOTIFY */

/* A notification; free with wv_pg_notification_free. */
typedef struct wv_pg_notification {
    const char *channel;
    const char *payload;
    int pid; /* the notifying server process */
} wv_pg_notification;

/* LISTEN on a channel (its name is quoted as an identifier, never
 * spliced). Notifications then queue on the connection until received.
 * Use a connection of its own for listening (a pool's connection stops
 * listening when released). */
int wv_pg_listen(wv_pg_conn *c, const char *channel);

/* UNLISTEN a channel; NULL for all. */
int wv_pg_unlisten(wv_pg_conn *c, const char *channel);

/* Wait for the next notification: 0 with *out (the caller's), or
 * -ETIMEDOUT / -ECANCELED, -ECONNRESET when the connection is lost. */
int wv_pg_notification_recv(wv_pg_conn *c, wv_pg_notification **out);

void wv_pg_notification_free(wv_pg_notification *n);

/* The channel the connection's notifications arrive on, for a fiber that
 * waits on them among other channels (wv_chan_select): its elements are
 * wv_pg_notification pointers, which the receiver frees. It belongs to the
 * connection (valid until wv_pg_close) and is closed (receives return
 * -EPIPE once drained) when the connection is lost or closed. NULL for a
 * NULL connection or when out of memory. */
wv_chan *wv_pg_notifications(wv_pg_conn *c);

/* NOTIFY channel, payload (pg_notify($1, $2)); payload may be NULL. */
int wv_pg_notify(wv_pg_conn *c, const char *channel, const char *payload);

/* ------------------------------------------------------------------- COPY */

/*
 * COPY ... FROM STDIN. The connection is this fiber's for the duration
 * (other fibers' statements wait); fn(cp, arg) writes the data with
 * wv_pg_copy_row / wv_pg_copy_write. fn returning >= 0 ends the COPY;
 * < 0 aborts it (the server keeps nothing) and is returned. Returns the
 * rows copied, or an error. A COPY cut short by the deadline or
 * cancellation closes the connection (its stream cannot be resumed).
 */
typedef int wv_pg_copy_in_fn(wv_pg_copy *cp, void *arg);
int wv_pg_copy_in(wv_pg_conn *c, const char *sql, wv_pg_copy_in_fn *fn, void *arg);

/* One row in COPY's text format, each value escaped (NULL as \N). For
 * "COPY t (a, b) FROM STDIN" without FORMAT options. */
int wv_pg_copy_row_args(wv_pg_copy *cp, const wv_pg_arg *args, int nargs);
#define wv_pg_copy_row(cp, ...)                                                                    \
    wv_pg_copy_row_args((cp), WV_PG__ARGS(__VA_ARGS__), WV_PG__NARGS(__VA_ARGS__))

/* Raw bytes in the COPY's own format (CSV, text, binary), sent as they are. */
int wv_pg_copy_write(wv_pg_copy *cp, const void *data, size_t n);

/*
 * COPY ... TO STDOUT: fn(data, n, arg) is called for each row (in the
 * COPY's format, with its newline). fn returning < 0 stops the calls; the
 * rest is read and dropped, and that value is returned. Returns the rows
 * copied, or an error. The connection is this fiber's meanwhile.
 */
typedef int wv_pg_copy_out_fn(const char *data, size_t n, void *arg);
int wv_pg_copy_out(wv_pg_conn *c, const char *sql, wv_pg_copy_out_fn *fn, void *arg);

/* ------------------------------------------------------------------- pool */

typedef struct wv_pg_pool_opts {
    int max_size; /* connections at most; 0 = 10 */
    /* reconnect backoff after a failed connect: doubles from min to max;
     * 0 = 50 ms .. 2 s */
    int64_t backoff_min_ms, backoff_max_ms;
    wv_pg_opts conn; /* for each connection; conn.name labels the pool */
} wv_pg_pool_opts;

/* A pool for the calling shard; no connection is made yet. opts may be
 * NULL. -EINVAL, -ENOMEM, -EPERM outside the runtime. */
int wv_pg_pool_new(const char *url, const wv_pg_pool_opts *opts, wv_pg_pool **out);

/* Close the idle connections now and each busy one when it is released;
 * the pool's memory goes with the last of them. Never suspends. */
void wv_pg_pool_free(wv_pg_pool *p);

/*
 * A connection for the calling fiber alone, until wv_pg_pool_release: an
 * idle one that passes a health check, or a new one while fewer than
 * max_size exist. Waits (within the fiber's deadline) when all are busy.
 * When the server cannot be reached, connects are retried with backoff;
 * while backing off with no connection left, acquire fails at once with
 * the last connect error.
 */
int wv_pg_pool_acquire(wv_pg_pool *p, wv_pg_conn **out);

/* Give a connection back. One with an open or failed transaction is rolled
 * back, one still running a cancelled statement is drained, one that
 * listens is told UNLISTEN *, before anyone gets it again; one that is
 * lost, or cannot be reset, is closed. Never suspends. */
void wv_pg_pool_release(wv_pg_pool *p, wv_pg_conn *c);

/* acquire + statement + release. */
int wv_pg_pool_query_args(wv_pg_pool *p, wv_pg_result **out, const char *sql, const wv_pg_arg *args,
                          int nargs);
#define wv_pg_pool_query(p, out, sql, ...)                                                         \
    wv_pg_pool_query_args((p), (out), (sql), WV_PG__ARGS(__VA_ARGS__), WV_PG__NARGS(__VA_ARGS__))
int wv_pg_pool_exec_args(wv_pg_pool *p, const char *sql, const wv_pg_arg *args, int nargs);
#define wv_pg_pool_exec(p, sql, ...)                                                               \
    wv_pg_pool_exec_args((p), (sql), WV_PG__ARGS(__VA_ARGS__), WV_PG__NARGS(__VA_ARGS__))

/* acquire + wv_pg_transact + release. */
int wv_pg_pool_transact(wv_pg_pool *p, const wv_pg_tx_opts *opts, wv_pg_tx_fn *fn, void *arg);

typedef struct wv_pg_pool_stats {
    int idle, busy;     /* connections */
    int connecting;     /* connects under way */
    int resetting;      /* released, being drained or rolled back */
    int waiting;        /* fibers waiting in acquire */
    uint64_t connects;  /* connections made */
    uint64_t failures;  /* connects that failed */
    uint64_t discarded; /* connections closed as lost or unusable */
} wv_pg_pool_stats;

void wv_pg_pool_stats_get(const wv_pg_pool *p, wv_pg_pool_stats *out);

#ifdef __cplusplus
}
#endif

#endif
