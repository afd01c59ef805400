/*
 * Private structures of the PostgreSQL client, shared by the files of
 * src/pg/.
 *
 * The picture. A wv_pg_conn owns one libpq connection in non-blocking
 * pipeline mode and two fibers: the writer and the reader. A caller turns
 * its statement into an op, appends it to the `unsent` queue, wakes the
 * writer and suspends on the op's event. The writer runs after the fibers
 * that were ready with it, so it usually finds many ops queued: it sends
 * them all (each op's statements + one Sync) in one write and moves them to
 * `inflight`; it sends nothing more until that batch is answered, so what
 * arrives meanwhile makes the next batch. The reader waits on the
 * socket, feeds libpq, and hands each op its results in order, waking its
 * fiber. An op whose fiber stops
 * waiting (deadline, cancellation) is abandoned: dropped if unsent, else
 * left in `inflight` for the reader to drain, and cancelled on the server
 * by a short-lived canceller fiber once it is the statement running there.
 *
 * COPY cannot run in pipeline mode, so it takes the connection exclusively:
 * an OP_EXCL op in the queue makes the writer wait until `inflight` is
 * empty, park the reader, leave pipeline mode and hand the socket to the
 * COPY's fiber until it gives it back.
 *
 * Memory: ops are heap-allocated and freed by whoever holds them last (the
 * waiting fiber, or the reader for an abandoned op). The connection is
 * reference counted: the owner (until wv_pg_close), the reader, the
 * writer, each canceller and each call suspended inside it (so a fiber may
 * close it while others wait in it); the last one frees it.
 */
#ifndef WEAVE_PG_INTERNAL_H
#define WEAVE_PG_INTERNAL_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#include "weave/metrics.h"
#include "weave/pg.h"

#pragma GCC visibility push(hidden)

enum {
    PG_MSG = 256,     /* error messages kept with an op or a connection */
    BYTEAOID_ = 17,   /* bytea, for binary arguments */
    ERRBUF_SIZE = 256 /* wv_errmsg's own size */
};

/* ------------------------------------------------------------- metrics */

typedef struct pg_metrics {
    wv_series *ok, *error, *timeout, *canceled;
    wv_series *duration;
    wv_series *batches, *cancels;
    wv_series *connect_ok, *connect_error;
    wv_series *idle, *busy;
    wv_series *max, *waiters, *acquire_timeouts; /* the pools' exhaustion */
} pg_metrics;

/* The series of the db label `name` (made once per name, kept forever);
 * never NULL (its series may be, when metrics are unavailable). */
pg_metrics *pg_metrics_for(const char *name);

/* ------------------------------------------------------------ arguments */

/* One statement ready for libpq: text or binary values, types (0 = let
 * the server infer), NULL values for SQL NULL. */
typedef struct pg_stmt {
    const char *sql;
    int nparams;
    const char *const *values;
    const int *lengths;
    const int *formats;
    const Oid *types;
} pg_stmt;

/* Arguments encoded for libpq. Small sets live in the struct itself. */
enum { ARGS_INLINE = 8, ARGS_SCRATCH = 256 };
typedef struct pg_args {
    int n;
    const char **values;
    int *lengths;
    int *formats;
    Oid *types;
    char *scratch; /* formatted numbers, NUL-terminated copies */
    void *heap;    /* one block when the inline room is too small */
    const char *values_in[ARGS_INLINE];
    int lengths_in[ARGS_INLINE];
    int formats_in[ARGS_INLINE];
    Oid types_in[ARGS_INLINE];
    char scratch_in[ARGS_SCRATCH];
} pg_args;

/* Encode args into a (which must be freed with pg_args_free). With
 * `copy`, every value is copied (the caller's memory may go away); else
 * NUL-terminated text and bytes point at the caller's memory. 0, -EINVAL
 * (with the message), -ENOMEM. */
int pg_args_encode(pg_args *a, const wv_pg_arg *args, int nargs, bool copy);
void pg_args_free(pg_args *a);
void pg_args_stmt(const pg_args *a, const char *sql, pg_stmt *s);

/* Microseconds since the epoch <-> ISO text ("2024-01-02 03:04:05.000006+00",
 * "infinity"). format writes at most 48 bytes; parse returns 0 or -EPROTO. */
void pg_format_timestamp(int64_t us, char *out);
int pg_parse_timestamp(const char *s, int64_t *us);

/* ------------------------------------------------------ statement cache */

typedef struct stmt_entry stmt_entry;
struct stmt_entry {
    stmt_entry *hnext;               /* hash chain */
    stmt_entry *lru_prev, *lru_next; /* most recent first */
    uint64_t hash;
    char *sql;
    int nparams;
    Oid *types;
    char name[24];
    bool ready; /* the server confirmed the Parse */
    bool dead;  /* out of the cache; freed when refs drop to 0 */
    int refs;   /* parts in flight using it */
};

typedef struct stmt_cache {
    stmt_entry **buckets;
    size_t nbuckets;
    int count, max;
    stmt_entry *lru_head, *lru_tail;
    uint64_t next_name;
} stmt_cache;

void pg_cache_init(stmt_cache *sc, int max);
void pg_cache_destroy(stmt_cache *sc);
stmt_entry *pg_cache_find(stmt_cache *sc, const pg_stmt *s);
/* A new pending entry (NULL when the cache is off or out of memory). */
stmt_entry *pg_cache_add(stmt_cache *sc, const pg_stmt *s);
/* The least recently used ready entry, to make room (NULL if none). */
stmt_entry *pg_cache_victim(stmt_cache *sc);
void pg_cache_touch(stmt_cache *sc, stmt_entry *e);
/* Take e out of the cache (freed now or when its last part finishes). */
void pg_cache_remove(stmt_cache *sc, stmt_entry *e);
void pg_cache_unref(stmt_cache *sc, stmt_entry *e);

/* ------------------------------------------------------------------ ops */

enum op_kind { OP_STMTS, OP_EXCL };
enum part_role { PART_EXEC, PART_PREPARE, PART_DEALLOC };

typedef struct pg_part {
    uint8_t role;
    int stmt;          /* the statement it belongs to */
    stmt_entry *entry; /* PREPARE, or EXEC of a cached statement (a ref) */
} pg_part;

typedef struct pg_op pg_op;
struct pg_op {
    pg_op *next;
    int kind;
    uint64_t seq; /* given when sent; ops complete in seq order */
    wv_event done;
    bool sent, finished, abandoned;
    bool no_cancel; /* never send a cancel for it (COMMIT, ROLLBACK) */
    bool keep;      /* still send it after its fiber gave up (ROLLBACK) */
    bool in_tx;     /* sent inside a transaction: never sent twice */
    bool cancel_sent;
    int retries;
    int64_t t0;
    int nstmt;
    const pg_stmt *stmts;
    pg_stmt own_stmt; /* for internal ops whose SQL is a literal */
    /* what the reader expects: parts (Parse/Execute/DEALLOCATE) in order,
     * each a result and a NULL, then the Sync */
    int nparts, part;
    bool part_got;
    pg_part *parts;
    pg_part parts_in[3];
    /* outcome: a result per statement, or a failure of the whole op */
    PGresult **res;
    PGresult *res_in;
    int err;
    char errmsg[PG_MSG];
};

/* ------------------------------------------------------------ connection */

struct wv_pg_conn {
    PGconn *pg;
    int fd;
    bool tcp;
    void *ssl; /* OpenSSL's SSL *, when TLS is on */
    int refs;
    bool broken, closing;
    int broken_err;
    char broken_msg[PG_MSG];
    char last_fatal[PG_MSG]; /* a FATAL notice seen while idle */
    wv_pg_opts opts;
    char name[64];
    pg_metrics *m;

    pg_op *unsent, *unsent_tail;
    pg_op *inflight, *inflight_tail;
    uint64_t next_seq, done_seq;
    wv_event wkick;    /* the writer has something to look at */
    wv_event progress; /* an op completed / the queue drained */

    /* exclusive use (COPY) */
    bool excl_active, reader_paused;
    uint64_t excl_owner; /* the fiber holding it */
    wv_event excl_done, reader_resume;

    /* transaction owner (a fiber id) */
    uint64_t tx_fiber;
    bool tx_retryable; /* a statement of it hit 40001 / 40P01 */
    wv_event tx_free;

    /* cancellation */
    PGcancel *cancel;
    bool cancel_running;
    int cancel_armed; /* cancels sent whose effect was not seen yet */

    /* LISTEN */
    bool listening;
    wv_chan *notes; /* of wv_pg_notification * */
    bool notes_warned;

    stmt_cache cache;
    wv_pg_conn_stats st;

    /* pool */
    wv_pg_pool *pool;
    wv_pg_conn *pool_next;
    bool resetting;
};

/* conn.c */
/* Keep the connection's memory while a call is inside it (a fiber may
 * close the connection meanwhile); release frees it after the last one. */
static inline void pg_conn_hold(wv_pg_conn *c)
{
    c->refs++;
}
void pg_conn_release(wv_pg_conn *c);
pg_op *pg_op_new(int nstmt, const pg_stmt *stmts);
void pg_op_free(pg_op *o);
/* Queue o and wait for it: 0 when it finished (its outcome is in o), or
 * -ETIMEDOUT / -ECANCELED (o was abandoned: it is no longer the caller's),
 * or the connection's failure (o freed). */
int pg_op_run(wv_pg_conn *c, pg_op *o);
/* Queue an internal statement nobody waits for (ROLLBACK, UNLISTEN *). */
void pg_op_detach_sql(wv_pg_conn *c, const char *sql);
/* The outcome of statement i of a finished op: 0, or its error (set in
 * wv_errmsg). */
int pg_op_outcome(const pg_op *o, int i);
/* The same for one result of statement i (NULL: none came). */
int pg_outcome(const PGresult *r, int i);
/* Wait while another fiber holds the connection for a transaction. */
int pg_conn_tx_turn(wv_pg_conn *c);
/* 0, or the connection's failure (with its message). */
int pg_conn_usable(const wv_pg_conn *c);
/* Mark the connection unusable: every queued op fails with err. */
void pg_conn_break(wv_pg_conn *c, int err, const char *fmt, ...) WV_PRINTF(3, 4);
/* libpq says the connection is gone: break with its words. */
void pg_conn_lost(wv_pg_conn *c);
/* Read what the socket has and dispatch results and notifications. */
void pg_conn_pump(wv_pg_conn *c);
/* Are there bytes to read (socket or TLS buffer)? */
bool pg_conn_input_pending(wv_pg_conn *c);
/* Exclusive use for COPY: wait for the grant / give it back. */
int pg_conn_excl_acquire(wv_pg_conn *c);
void pg_conn_excl_release(wv_pg_conn *c);
/* Called when the queues drain or the connection breaks (pool reset). */
void pg_pool_conn_settled(wv_pg_conn *c);
/* The notification channel, made on first use (NULL when out of memory). */
wv_chan *pg_conn_notes(wv_pg_conn *c);
void pg_conn_drop_notes(wv_pg_conn *c);
/* Run one internal statement (no arguments) and wait: 0 or the error;
 * *res (if not NULL) gets the result. EXEC_NO_CANCEL: never cancel it on
 * the server; EXEC_KEEP: send it even if the fiber stops waiting (sql must
 * then outlive the call: a literal). */
enum { EXEC_NO_CANCEL = 1, EXEC_KEEP = 2 };
int pg_conn_exec_internal(wv_pg_conn *c, const char *sql, int flags, PGresult **res);

/* result.c */
/* The errno for a server error result, and its text for wv_errmsg. */
int pg_error_errno(const PGresult *r);
void pg_error_format(const PGresult *r, char *out, size_t n);
/* Is r an error with this SQLSTATE? */
bool pg_error_is(const PGresult *r, const char *state);
/* Wrap a PGresult (taken over) as a caller's result; NULL when out of
 * memory (r is then freed). */
wv_pg_result *pg_result_wrap(PGresult *r);
/* For a batch: wrap in place (the batch owns the struct). */
void pg_result_init(wv_pg_result *out, PGresult *r);
void pg_result_clear(wv_pg_result *r);

struct pg_blob;
struct wv_pg_result {
    PGresult *res;
    int nrows, ncols;
    struct pg_blob *blobs; /* decoded bytea values */
};

/* Trim libpq's multi-line messages into one line. */
void pg_one_line(const char *in, char *out, size_t n);

#pragma GCC visibility pop

#endif
