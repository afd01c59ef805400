/*
 * The SQLite backend of wv_db: every sqlite3 call runs in an offload job, so
 * a shard's loop never blocks on the database.
 *
 * Connections. A file database has one writer connection and a few reader
 * connections (WAL mode: readers see the last commit and never wait for the
 * writer); ":memory:" has just the one connection. Every connection has a
 * lane of its own (wv_lane: a thread that runs the jobs queued for it in
 * order, woken once per pass of the loop for all of them), so a connection
 * is only ever used by one thread at a time (SQLITE_OPEN_NOMUTEX) and a
 * burst of statements costs one hand-off each way, not one per statement.
 * A SELECT (VALUES, WITH, EXPLAIN) is queued on a reader's lane, the first
 * one that is not already busy with many (bigger batches: fewer wake-ups);
 * if SQLite says the prepared statement writes after all (WITH ... INSERT),
 * it is sent again to the writer. The writer sits in a channel and a fiber
 * takes it for the length of a statement or a transaction: so writes are
 * serialized by a fiber-level queue, not by SQLite's lock. Databases opened
 * on different shards (or processes) share the file through SQLite's own
 * locking and the busy timeout.
 *
 * Statements. Each connection keeps an LRU cache of prepared statements
 * keyed by their SQL text. Placeholders are bound by name: SQLite parses
 * "$1" as a named parameter, so the SQL is passed through untouched (a '$1'
 * inside a literal stays text) and each named parameter is bound to the
 * value its number says; any other form of parameter is refused.
 *
 * Deadlines. When the calling fiber has a deadline, a loop timer armed at it
 * calls sqlite3_interrupt() on the connection if the job is the one running
 * there (the job itself polls nothing); a statement interrupted while its
 * own deadline has not passed was hit by another job's timer in the instant
 * the lane moved on, and runs again.
 *
 * Batches. A reader's lane runs the statements it finds together inside
 * one read transaction (BEGIN ... COMMIT around the batch): they were all
 * in flight at once, so one snapshot serves them, and the file locks and
 * checks SQLite makes per transaction are paid once per batch. A cancelled fiber is noticed by a
 * progress handler that polls wv_offload_cancelled() every 1000 VM steps, and by the busy handler,
 * which also gives up then. Either way the statement stops, the job resets it and the connection
 * goes back to its channel, usable.
 *
 * Transactions hold the writer (BEGIN IMMEDIATE, so they never fail later for
 * want of the write lock). A connection given back with a transaction open
 * (a rollback that could not run: the fiber was cancelled) is rolled back by
 * a cleanup fiber of its own, and every job outside a transaction rolls back
 * whatever is left open before its statement anyway.
 */
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "db/db_internal.h"

enum {
    NEED_WRITER = 1, /* a reader's job: the statement writes, send it to the writer */
    SCRIPT = 2,      /* cache_get: sql holds several statements */
    MSG_SIZE = 256,
    STACK_COLS = 64,
    READER_FILL = 32, /* statements a reader's lane takes before the next reader's is used */
    READER_STUCK_NS = 2000000, /* a lane whose batch runs this long is not given more */
};

typedef struct stmt_entry stmt_entry;
struct stmt_entry {
    stmt_entry *hnext;         /* hash chain */
    stmt_entry *newer, *older; /* LRU list */
    uint64_t hash;
    size_t len;
    char *sql;
    sqlite3_stmt *st;
    int nvars;  /* SQLite's parameters */
    int nargs;  /* the highest $N */
    int *argof; /* per SQLite parameter, the value it takes (0-based) */
    bool readonly;
};

typedef struct sq_conn {
    sqlite3 *db;
    wv_lane *lane; /* the thread that runs its statements */
    bool reader;
    bool batch_tx;                    /* a reader: its lane runs a batch in one read transaction */
    _Atomic(struct sq_job *) running; /* the job on the connection now */
    bool needs_rollback;              /* a transaction may be open: roll it back first */
    int64_t busy_since, busy_timeout_ns;
    stmt_entry **buckets;
    size_t nbuckets;             /* a power of two */
    stmt_entry *newest, *oldest; /* LRU ends */
    int cached, cache_cap;
} sq_conn;

typedef struct sq_state {
    char *path; /* NULL for :memory: */
    char *on_connect;
    int nconns;
    sq_conn *conns;    /* [0] the writer, then the readers */
    wv_chan *writers;  /* the writer while free (capacity 1) */
    uint64_t tx_fiber; /* the fiber holding the writer for a transaction */
    int refs;          /* the database's, and one per cleanup fiber */
    bool closing;
} sq_state;

typedef enum sq_op { OP_OPEN, OP_CLOSE, OP_RUN, OP_BEGIN, OP_COMMIT, OP_ROLLBACK } sq_op;

typedef struct sq_job {
    wv_timer timer;   /* interrupts the statement at the fiber's deadline */
    int64_t deadline; /* the fiber's (wv_now's clock) */
    sq_state *s;
    sq_conn *c;
    sq_op op;
    bool in_tx;
    db_call *call;
    sq_conn **close; /* OP_CLOSE: the connections, n of them */
    int nclose;
    /* out */
    int rc;
    bool ran;
    char msg[MSG_SIZE];
} sq_job;

/* ------------------------------------------------------------ on the pool */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int map_code(sqlite3 *db, int code)
{
    switch (code) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
    case SQLITE_CONSTRAINT_ROWID:
        return -EEXIST;
    case SQLITE_BUSY_SNAPSHOT:
        return -EAGAIN;
    }
    switch (code & 0xff) {
    case SQLITE_CONSTRAINT:
    case SQLITE_ERROR:
    case SQLITE_MISMATCH:
    case SQLITE_RANGE:
        return -EINVAL;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return -EBUSY;
    case SQLITE_INTERRUPT:
        return -EINTR; /* only we interrupt: the fiber turns it into its deadline's error */
    case SQLITE_NOMEM:
        return -ENOMEM;
    case SQLITE_READONLY:
        return -EROFS;
    case SQLITE_PERM:
    case SQLITE_AUTH:
        return -EACCES;
    case SQLITE_FULL:
        return -ENOSPC;
    case SQLITE_TOOBIG:
        return -EMSGSIZE;
    case SQLITE_SCHEMA:
        return -EAGAIN;
    case SQLITE_CANTOPEN: {
        int e = db ? sqlite3_system_errno(db) : 0;
        return e > 0 ? -e : -ENOENT;
    }
    }
    return -EIO;
}

static int fail(sq_job *j, int rc, const char *fmt, ...) WV_PRINTF(3, 4);
static int fail(sq_job *j, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->msg, sizeof j->msg, fmt, ap);
    va_end(ap);
    return rc;
}

/* SQLite's error `code` on j's connection, with its message. */
static int fail_sqlite(sq_job *j, int code)
{
    sqlite3 *db = j->c ? j->c->db : NULL;
    const char *m = db ? sqlite3_errmsg(db) : sqlite3_errstr(code);
    return fail(j, map_code(db, code), "%s", m);
}

static int busy_wait(void *arg, int count)
{
    sq_conn *c = arg;
    int64_t now = mono_ns();
    if (count == 0)
        c->busy_since = now;
    if (wv_offload_cancelled() || now - c->busy_since >= c->busy_timeout_ns)
        return 0;
    struct timespec ts = {0, count < 10 ? 200000 : 1000000};
    nanosleep(&ts, NULL);
    return 1;
}

static int progress(void *arg)
{
    return wv_offload_cancelled();
}

/* ---------------------------------------------------- the statement cache */

static uint64_t hash_sql(const char *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 0x100000001b3u;
    return h;
}

static void entry_free(stmt_entry *e)
{
    sqlite3_finalize(e->st);
    free(e->argof);
    free(e->sql);
    free(e);
}

static void lru_unlink(sq_conn *c, stmt_entry *e)
{
    if (e->newer)
        e->newer->older = e->older;
    else
        c->newest = e->older;
    if (e->older)
        e->older->newer = e->newer;
    else
        c->oldest = e->newer;
    e->newer = e->older = NULL;
}

static void lru_push(sq_conn *c, stmt_entry *e)
{
    e->older = c->newest;
    e->newer = NULL;
    if (c->newest)
        c->newest->newer = e;
    else
        c->oldest = e;
    c->newest = e;
}

static void cache_remove(sq_conn *c, stmt_entry *e)
{
    stmt_entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    lru_unlink(c, e);
    c->cached--;
    entry_free(e);
}

static void cache_clear(sq_conn *c)
{
    while (c->oldest)
        cache_remove(c, c->oldest);
    free(c->buckets);
    c->buckets = NULL;
}

/* Map each of st's parameters to a value: only $N names are allowed. */
static int map_params(sq_job *j, stmt_entry *e)
{
    e->nvars = sqlite3_bind_parameter_count(e->st);
    if (!e->nvars)
        return 0;
    e->argof = malloc((size_t)e->nvars * sizeof *e->argof);
    if (!e->argof)
        return fail(j, -ENOMEM, "out of memory");
    for (int i = 0; i < e->nvars; i++) {
        const char *name = sqlite3_bind_parameter_name(e->st, i + 1);
        long n = 0;
        bool ok = name && name[0] == '$' && name[1] >= '1' && name[1] <= '9';
        for (const char *p = ok ? name + 1 : ""; ok && *p; p++) {
            ok = *p >= '0' && *p <= '9' && n < 100000;
            n = n * 10 + (*p - '0');
        }
        if (!ok || n > 65535)
            return fail(j, -EINVAL, "placeholder \"%s\": write parameters as $1, $2, ...",
                        name ? name : "?");
        e->argof[i] = (int)n - 1;
        if (n > e->nargs)
            e->nargs = (int)n;
    }
    return 0;
}

/* The prepared statement for sql on j's connection: from the cache, or
 * prepared and cached. SCRIPT when sql holds more than one statement. */
static int cache_get(sq_job *j, const char *sql, stmt_entry **out)
{
    sq_conn *c = j->c;
    size_t len = strlen(sql);
    uint64_t h = hash_sql(sql, len);
    if (c->buckets) {
        for (stmt_entry *e = c->buckets[h & (c->nbuckets - 1)]; e; e = e->hnext) {
            if (e->hash == h && e->len == len && memcmp(e->sql, sql, len) == 0) {
                if (c->newest != e) {
                    lru_unlink(c, e);
                    lru_push(c, e);
                }
                *out = e;
                return 0;
            }
        }
    } else {
        size_t nb = 16;
        while (nb < (size_t)c->cache_cap * 2)
            nb *= 2;
        c->buckets = calloc(nb, sizeof *c->buckets);
        if (!c->buckets)
            return fail(j, -ENOMEM, "out of memory");
        c->nbuckets = nb;
    }

    sqlite3_stmt *st = NULL;
    const char *tail = NULL;
    int rc = sqlite3_prepare_v3(c->db, sql, (int)(len < INT32_MAX ? len + 1 : INT32_MAX),
                                SQLITE_PREPARE_PERSISTENT, &st, &tail);
    if (rc != SQLITE_OK)
        return fail_sqlite(j, rc);
    if (!st)
        return fail(j, -EINVAL, "empty statement");
    if (tail && !db_sql_blank(tail)) {
        sqlite3_finalize(st);
        return SCRIPT;
    }
    stmt_entry *e = calloc(1, sizeof *e);
    if (!e || !(e->sql = malloc(len + 1))) {
        free(e);
        sqlite3_finalize(st);
        return fail(j, -ENOMEM, "out of memory");
    }
    memcpy(e->sql, sql, len + 1);
    e->len = len;
    e->hash = h;
    e->st = st;
    e->readonly = sqlite3_stmt_readonly(st) != 0;
    rc = map_params(j, e);
    if (rc < 0) {
        entry_free(e);
        return rc;
    }
    while (c->cached >= c->cache_cap && c->oldest)
        cache_remove(c, c->oldest);
    stmt_entry **b = &c->buckets[h & (c->nbuckets - 1)];
    e->hnext = *b;
    *b = e;
    lru_push(c, e);
    c->cached++;
    *out = e;
    return 0;
}

/* --------------------------------------------------------------- running */

static int bind_args(sq_job *j, stmt_entry *e)
{
    const db_call *call = j->call;
    for (int k = 0; k < e->nvars; k++) {
        const wv_db_value *v = &call->args[e->argof[k]];
        int idx = k + 1, rc = SQLITE_OK;
        switch (v->type) {
        case WV_DB_NULL:
            rc = sqlite3_bind_null(e->st, idx);
            break;
        case WV_DB_INT:
            rc = sqlite3_bind_int64(e->st, idx, v->i);
            break;
        case WV_DB_FLOAT:
            rc = sqlite3_bind_double(e->st, idx, v->f);
            break;
        case WV_DB_BOOL:
            rc = sqlite3_bind_int(e->st, idx, v->b ? 1 : 0);
            break;
        case WV_DB_TEXT: /* the values outlive the job: the fiber waits for it */
            rc = sqlite3_bind_text64(e->st, idx, v->n ? (const char *)v->p : "", v->n,
                                     SQLITE_STATIC, SQLITE_UTF8);
            break;
        case WV_DB_BLOB:
            rc = v->n ? sqlite3_bind_blob64(e->st, idx, v->p, v->n, SQLITE_STATIC)
                      : sqlite3_bind_zeroblob(e->st, idx, 0);
            break;
        case WV_DB_TIME: {
            char t[32];
            if (db_time_format(v->i, t) < 0)
                return fail(j, -ERANGE, "parameter $%d: time outside the years 0 to 9999",
                            e->argof[k] + 1);
            rc = sqlite3_bind_text(e->st, idx, t, -1, SQLITE_TRANSIENT);
            break;
        }
        case WV_DB_OBJECT: /* schema-only field types: db.c refuses them as values */
        case WV_DB_ARRAY:
            break;
        }
        if (rc != SQLITE_OK)
            return fail_sqlite(j, rc);
    }
    return 0;
}

static bool declared_bool(sqlite3_stmt *st, int col)
{
    const char *t = sqlite3_column_decltype(st, col);
    return t && (strcasecmp(t, "BOOLEAN") == 0 || strcasecmp(t, "BOOL") == 0);
}

/* Step st to the end (or its first row for DB_ROW), collecting rows. */
static int collect(sq_job *j, sqlite3_stmt *st)
{
    db_call *call = j->call;
    int ncols = sqlite3_column_count(st);
    wv_db_rows *rows = db_rows_new(ncols);
    uint8_t stack_bool[STACK_COLS];
    uint8_t *isbool = ncols <= STACK_COLS ? stack_bool : malloc((size_t)ncols);
    if (!rows || !isbool) {
        wv_db_rows_free(rows);
        if (isbool != stack_bool)
            free(isbool);
        return fail(j, -ENOMEM, "out of memory");
    }
    int rc = 0;
    for (int i = 0; i < ncols && rc == 0; i++) {
        const char *name = sqlite3_column_name(st, i);
        rc = db_rows_set_name(rows, i, name, name ? strlen(name) : 0);
        isbool[i] = declared_bool(st, i);
    }
    int step = SQLITE_DONE;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        db_cell *cell = db_rows_add(rows);
        if (!cell) {
            rc = -ENOMEM;
            break;
        }
        for (int i = 0; i < ncols && rc == 0; i++) {
            switch (sqlite3_column_type(st, i)) {
            case SQLITE_INTEGER: {
                int64_t v = sqlite3_column_int64(st, i);
                db_cell_int(&cell[i], isbool[i] && (v == 0 || v == 1) ? WV_DB_BOOL : WV_DB_INT, v);
                break;
            }
            case SQLITE_FLOAT:
                db_cell_float(&cell[i], sqlite3_column_double(st, i));
                break;
            case SQLITE_TEXT: {
                const unsigned char *p = sqlite3_column_text(st, i);
                int n = sqlite3_column_bytes(st, i);
                rc = p ? db_cell_bytes(rows, &cell[i], WV_DB_TEXT, p, (size_t)n) : -ENOMEM;
                break;
            }
            case SQLITE_BLOB: {
                const void *p = sqlite3_column_blob(st, i);
                int n = sqlite3_column_bytes(st, i);
                rc = db_cell_bytes(rows, &cell[i], WV_DB_BLOB, p ? p : "", p ? (size_t)n : 0);
                break;
            }
            default:
                break; /* NULL, as added */
            }
        }
        if (call->mode == DB_ROW)
            break;
    }
    if (isbool != stack_bool)
        free(isbool);
    if (rc == 0 && step != SQLITE_ROW && step != SQLITE_DONE)
        rc = fail_sqlite(j, step);
    else if (rc < 0)
        rc = fail(j, rc, "%s", rc == -ENOMEM ? "out of memory" : "a value over 4 GiB");
    if (rc < 0) {
        wv_db_rows_free(rows);
        return rc;
    }
    call->rows = rows;
    return 0;
}

/* Several statements, no parameters (wv_db_exec's scripts). */
static int run_script(sq_job *j)
{
    sqlite3 *db = j->c->db;
    const char *p = j->call->sql;
    int64_t before = sqlite3_total_changes64(db);
    while (!db_sql_blank(p)) {
        sqlite3_stmt *st = NULL;
        const char *tail = NULL;
        int rc = sqlite3_prepare_v2(db, p, -1, &st, &tail);
        if (rc != SQLITE_OK)
            return fail_sqlite(j, rc);
        if (!st)
            break;
        if (sqlite3_bind_parameter_count(st)) {
            sqlite3_finalize(st);
            return fail(j, -EINVAL,
                        "parameters in a statement of a script (only one statement "
                        "may be sent with parameters)");
        }
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        }
        if (rc != SQLITE_DONE) {
            rc = fail_sqlite(j, rc);
            sqlite3_finalize(st);
            return rc;
        }
        sqlite3_finalize(st);
        p = tail;
    }
    j->call->changes = sqlite3_total_changes64(db) - before;
    return 0;
}

static int run_statement_once(sq_job *j);

/* A statement interrupted before its own deadline was hit by another
 * job's timer (the lane had moved on): run it again. */
static int run_statement(sq_job *j)
{
    for (int tries = 0;; tries++) {
        int rc = run_statement_once(j);
        if (rc != -EINTR || tries == 3 || wv_now() >= j->deadline || wv_offload_cancelled())
            return rc;
    }
}

static int run_statement_once(sq_job *j)
{
    db_call *call = j->call;
    stmt_entry *e = NULL;
    int rc = cache_get(j, call->sql, &e);
    if (rc == SCRIPT) {
        if (call->nargs || call->mode != DB_EXEC)
            return fail(j, -EINVAL,
                        "several statements in one call: only wv_db_exec without "
                        "parameters runs a script");
        return j->c->reader ? NEED_WRITER : run_script(j);
    }
    if (rc < 0)
        return rc;
    if (j->c->reader && !e->readonly)
        return NEED_WRITER;
    if ((size_t)e->nargs != call->nargs)
        return fail(j, -EINVAL, "the statement takes %d parameter%s but %zu value%s given",
                    e->nargs, e->nargs == 1 ? "" : "s", call->nargs,
                    call->nargs == 1 ? " was" : "s were");
    rc = bind_args(j, e);
    if (rc == 0) {
        if (call->mode == DB_EXEC) {
            /* sqlite3_changes64() keeps the last INSERT/UPDATE/DELETE's count
             * across other statements: trust it only when something changed */
            int64_t before = sqlite3_total_changes64(j->c->db);
            int step;
            while ((step = sqlite3_step(e->st)) == SQLITE_ROW) {
            }
            if (step == SQLITE_DONE)
                call->changes =
                    sqlite3_total_changes64(j->c->db) != before ? sqlite3_changes64(j->c->db) : 0;
            else
                rc = fail_sqlite(j, step);
        } else {
            rc = collect(j, e->st);
        }
    }
    sqlite3_reset(e->st);
    return rc;
}

/* Run a short fixed statement (BEGIN, COMMIT, ...) through the cache. */
static int run_fixed(sq_job *j, const char *sql)
{
    stmt_entry *e = NULL;
    int rc = cache_get(j, sql, &e);
    if (rc < 0)
        return rc;
    int step;
    while ((step = sqlite3_step(e->st)) == SQLITE_ROW) {
    }
    rc = step == SQLITE_DONE ? 0 : fail_sqlite(j, step);
    sqlite3_reset(e->st);
    return rc;
}

/* Roll back whatever transaction is open on j's connection. */
static int rollback_now(sq_job *j)
{
    sq_conn *c = j->c;
    if (!sqlite3_get_autocommit(c->db)) {
        int rc = run_fixed(j, "ROLLBACK");
        if (rc < 0)
            return rc;
    }
    c->needs_rollback = false;
    return 0;
}

/* Open one connection. */
static int open_conn(sq_job *j, sq_conn *c)
{
    sq_state *s = j->s;
    j->c = c;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(s->path ? s->path : ":memory:", &c->db, flags, NULL);
    if (rc != SQLITE_OK) {
        rc = c->db ? fail(j, map_code(c->db, rc), "%s: %s", sqlite3_errmsg(c->db),
                          s->path ? s->path : ":memory:")
                   : fail(j, -ENOMEM, "out of memory");
        sqlite3_close(c->db);
        c->db = NULL;
        return rc;
    }
    sqlite3_extended_result_codes(c->db, 1);
    sqlite3_busy_handler(c->db, busy_wait, c);
    sqlite3_progress_handler(c->db, 1000, progress, NULL);
    if (s->path && !c->reader) {
        /* switching a new file to WAL takes an exclusive lock without
         * calling the busy handler: another process or shard opening the
         * same file at that moment gets SQLITE_BUSY. Retry for a while. */
        for (int tries = 0;; tries++) {
            rc = run_fixed(j, "PRAGMA journal_mode = WAL");
            if (rc != -EBUSY || tries == 500 || wv_offload_cancelled())
                break;
            struct timespec ts = {0, 2000000};
            nanosleep(&ts, NULL);
        }
        if (rc == 0)
            rc = run_fixed(j, "PRAGMA synchronous = NORMAL");
    } else if (c->reader) {
        rc = run_fixed(j, "PRAGMA query_only = 1");
    }
    if (rc == 0 && s->on_connect) {
        char *err = NULL;
        int code = sqlite3_exec(c->db, s->on_connect, NULL, NULL, &err);
        if (code != SQLITE_OK)
            rc = fail(j, map_code(c->db, code), "on_connect: %s", err ? err : sqlite3_errstr(code));
        sqlite3_free(err);
    }
    return rc;
}

static void close_conn(sq_conn *c)
{
    cache_clear(c);
    if (c->db)
        sqlite3_close_v2(c->db); /* rolls back what is open */
    c->db = NULL;
}

static int job_main(void *arg)
{
    sq_job *j = arg;
    int rc = 0;
    switch (j->op) {
    case OP_OPEN:
        for (int i = 0; i < j->s->nconns && rc == 0; i++)
            rc = open_conn(j, &j->s->conns[i]);
        if (rc < 0)
            for (int i = 0; i < j->s->nconns; i++)
                close_conn(&j->s->conns[i]);
        break;
    case OP_CLOSE:
        for (int i = 0; i < j->nclose; i++)
            close_conn(j->close[i]);
        break;
    case OP_ROLLBACK:
        rc = rollback_now(j);
        break;
    default:
        atomic_store(&j->c->running, j);
        /* outside a transaction, nothing may be left open from before (a
         * reader's batch transaction is its lane's, not left over) */
        if (!j->in_tx && !j->c->batch_tx &&
            (j->c->needs_rollback || !sqlite3_get_autocommit(j->c->db)))
            rc = rollback_now(j);
        if (rc < 0)
            break;
        if (j->op == OP_BEGIN) {
            rc = run_fixed(j, "BEGIN IMMEDIATE");
        } else if (j->op == OP_COMMIT) {
            rc = run_fixed(j, "COMMIT");
            if (rc < 0) {
                sq_job r = {.s = j->s, .c = j->c};
                rollback_now(&r);
            }
        } else {
            rc = run_statement(j);
            bool open = !sqlite3_get_autocommit(j->c->db);
            if (!j->in_tx && open && !j->c->batch_tx) {
                sq_job r = {.s = j->s, .c = j->c};
                rollback_now(&r);
                if (rc >= 0)
                    rc = fail(j, -EINVAL,
                              "the statement left a transaction open (rolled back): "
                              "use wv_db_begin");
            } else if (j->in_tx && !open && rc >= 0) {
                rc = fail(j, -EINVAL, "the statement ended the transaction: use wv_db_commit");
            }
        }
    }
    if (j->c)
        atomic_store(&j->c->running, NULL);
    j->rc = rc;
    j->ran = true;
    return rc;
}

/* A reader's lane, around a batch: one read transaction for all of it. */
static void batch_begin(void *arg, int n)
{
    sq_conn *c = arg;
    (void)n;
    c->batch_tx = c->db && sqlite3_get_autocommit(c->db) &&
                  sqlite3_exec(c->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK;
}

static void batch_end(void *arg)
{
    sq_conn *c = arg;
    if (c->batch_tx && !sqlite3_get_autocommit(c->db))
        sqlite3_exec(c->db, "COMMIT", NULL, NULL, NULL); /* reads only: nothing to lose */
    c->batch_tx = false;
}

/* ------------------------------------------------------------ on the shard */

static void interrupt_at_deadline(wv_timer *t)
{
    sq_job *j = (sq_job *)(void *)((char *)t - offsetof(sq_job, timer));
    if (atomic_load(&j->c->running) == j) /* not another job of its lane */
        sqlite3_interrupt(j->c->db);
}

/* Run j on its connection's lane (the offload pool for jobs on no one
 * connection) and set wv_errmsg() on failure. When the fiber gives up
 * (deadline, cancellation), what the job made is freed. */
static int offload(sq_job *j, bool interruptible)
{
    int64_t deadline = wv_deadline();
    j->deadline = deadline;
    bool armed = interruptible && deadline != WV_NEVER && j->c && j->c->db;
    if (armed)
        wv_timer_start(&j->timer, deadline, interrupt_at_deadline);
    int rc = j->c && j->c->lane ? wv_lane_run(j->c->lane, job_main, j) : wv_offload(job_main, j);
    if (armed)
        wv_timer_stop(&j->timer);
    if (rc == -EINTR) /* interrupted by us, then finished before the fiber woke */
        rc = wv_cancelled() ? -ECANCELED : -ETIMEDOUT;
    if (rc < 0 && j->call && j->call->rows) {
        wv_db_rows_free(j->call->rows);
        j->call->rows = NULL;
    }
    if (rc >= 0)
        return rc;
    if (j->ran && rc == j->rc)
        return wv_fail(rc, "sqlite: %s", j->msg);
    if (rc == -ETIMEDOUT || rc == -ECANCELED)
        return wv_fail(rc, "sqlite: %s %s", j->ran ? "statement interrupted:" : "not run:",
                       rc == -ETIMEDOUT ? "the fiber's deadline passed"
                                        : "the fiber was cancelled");
    return wv_fail(rc, "sqlite: %s", wv_strerror(rc));
}

/* The writer, for a statement or a transaction. */
static int take_writer(sq_state *s, sq_conn **out)
{
    int rc = wv_chan_recv(s->writers, out);
    if (rc < 0)
        return wv_fail(rc, "sqlite: %s while waiting for the write connection",
                       rc == -ETIMEDOUT ? "the deadline passed" : "cancelled");
    return 0;
}

static void give_writer(sq_state *s, sq_conn *c)
{
    wv_chan_try_send(s->writers, &c);
}

/* A reader for one statement: the first whose lane is neither busy with
 * many statements nor stuck on a long one (its batches grow instead of
 * waking another thread), else the least busy that is not stuck, else the
 * least busy. Readers are never taken: their lanes keep order. */
static sq_conn *pick_reader(sq_state *s)
{
    sq_conn *best = NULL;
    int best_load = 0;
    bool best_stuck = true;
    int64_t now = wv_now();
    for (int i = 1; i < s->nconns; i++) {
        int load = wv_lane_load(s->conns[i].lane);
        int64_t since = wv_lane_busy_since(s->conns[i].lane);
        bool stuck = since && now - since > READER_STUCK_NS;
        if (load < READER_FILL && !stuck)
            return &s->conns[i];
        if (!best || (best_stuck && !stuck) || (stuck == best_stuck && load < best_load)) {
            best = &s->conns[i];
            best_load = load;
            best_stuck = stuck;
        }
    }
    return best;
}

static void state_unref(sq_state *s)
{
    if (--s->refs > 0)
        return;
    for (int i = 0; s->conns && i < s->nconns; i++)
        wv_lane_free(s->conns[i].lane);
    wv_chan_free(s->writers);
    free(s->conns);
    free(s->path);
    free(s->on_connect);
    free(s);
}

/* Close connections from a fiber: on the pool, or here when the fiber can
 * no longer offload (cancelled at shutdown). */
static void close_now(sq_state *s, sq_conn **conns, int n)
{
    int64_t old = wv_deadline_set(WV_NEVER);
    sq_job j = {.s = s, .op = OP_CLOSE, .close = conns, .nclose = n};
    /* one connection: on its lane, after what is queued there */
    int rc = n == 1 && conns[0]->lane ? wv_lane_run(conns[0]->lane, job_main, &j)
                                      : wv_offload(job_main, &j);
    wv_deadline_set(old);
    if (rc < 0 && !j.ran)
        for (int i = 0; i < n; i++)
            close_conn(conns[i]);
}

typedef struct cleanup {
    sq_state *s;
    sq_conn *c;
} cleanup;

/* A connection that could not be rolled back by its fiber: roll it back
 * here (a fresh fiber: no deadline, not cancelled), then give it back. */
static int cleanup_main(void *arg)
{
    cleanup cl = *(cleanup *)arg;
    free(arg);
    if (!cl.s->closing) {
        sq_job j = {.s = cl.s, .c = cl.c, .op = OP_ROLLBACK, .in_tx = true};
        offload(&j, false); /* failed: the next job on it rolls back first */
    }
    if (cl.s->closing)
        close_now(cl.s, &cl.c, 1);
    else
        give_writer(cl.s, cl.c);
    state_unref(cl.s);
    return 0;
}

static void sq_rollback(void *state, void *conn)
{
    sq_state *s = state;
    sq_conn *c = conn;
    s->tx_fiber = 0;
    c->needs_rollback = true;
    if (wv_check() == 0) {
        sq_job j = {.s = s, .c = c, .op = OP_ROLLBACK, .in_tx = true};
        offload(&j, false);
        if (j.ran && j.rc == 0) {
            give_writer(s, c);
            return;
        }
    }
    cleanup *cl = malloc(sizeof *cl);
    if (cl) {
        *cl = (cleanup){s, c};
        s->refs++;
        if (wv_spawn(cleanup_main, cl, &(wv_spawn_opts){.name = "db-rollback"}) == 0)
            return;
        s->refs--;
        free(cl);
    }
    give_writer(s, c); /* still marked: rolled back before its next use */
}

/* ---------------------------------------------------------------- vtable */

static bool wants_reader(const char *sql)
{
    char w[16];
    db_first_keyword(sql, w);
    return strcmp(w, "SELECT") == 0 || strcmp(w, "VALUES") == 0 || strcmp(w, "WITH") == 0 ||
           strcmp(w, "EXPLAIN") == 0;
}

static int sq_query(void *state, db_call *call)
{
    sq_state *s = state;
    sq_conn *c;
    int rc;
    if (s->nconns > 1 && wants_reader(call->sql)) {
        sq_job j = {.s = s, .c = pick_reader(s), .op = OP_RUN, .call = call};
        rc = offload(&j, true);
        if (rc != NEED_WRITER)
            return rc;
    }
    if (s->tx_fiber && s->tx_fiber == wv_fiber_id())
        return wv_fail(-EDEADLK, "sqlite: this fiber holds a transaction on the database, and "
                                 "this statement needs its connection: send it through the "
                                 "transaction's handle");
    rc = take_writer(s, &c);
    if (rc < 0)
        return rc;
    sq_job j = {.s = s, .c = c, .op = OP_RUN, .call = call};
    rc = offload(&j, true);
    give_writer(s, c);
    return rc;
}

static int sq_begin(void *state, void **conn)
{
    sq_state *s = state;
    if (s->tx_fiber && s->tx_fiber == wv_fiber_id())
        return wv_fail(-EDEADLK, "sqlite: this fiber already holds a transaction on the "
                                 "database: nest it with wv_db_begin(tx, ...)");
    sq_conn *c;
    int rc = take_writer(s, &c);
    if (rc < 0)
        return rc;
    sq_job j = {.s = s, .c = c, .op = OP_BEGIN};
    rc = offload(&j, true);
    if (rc < 0) {
        if (j.ran && j.rc == 0) { /* begun, but the fiber gave up meanwhile */
            char msg[MSG_SIZE];
            snprintf(msg, sizeof msg, "%s", wv_errmsg());
            sq_rollback(s, c);
            return wv_fail(rc, "%s", msg);
        }
        give_writer(s, c);
        return rc;
    }
    s->tx_fiber = wv_fiber_id();
    *conn = c;
    return 0;
}

static int sq_run(void *state, void *conn, db_call *call)
{
    sq_job j = {.s = state, .c = conn, .op = OP_RUN, .in_tx = true, .call = call};
    return offload(&j, true);
}

static int sq_commit(void *state, void *conn)
{
    sq_state *s = state;
    sq_conn *c = conn;
    sq_job j = {.s = s, .c = c, .op = OP_COMMIT, .in_tx = true};
    int rc = offload(&j, false);
    if (j.ran && j.rc == 0) { /* committed: durable, whatever the fiber's clock says */
        s->tx_fiber = 0;
        give_writer(s, c);
        return 0;
    }
    char msg[MSG_SIZE];
    snprintf(msg, sizeof msg, "%s", wv_errmsg());
    sq_rollback(s, c);
    return wv_fail(rc, "%s (rolled back)", msg);
}

/* sqlite:///abs/path, sqlite://rel/path, sqlite::memory:, sqlite://:memory: */
static int parse_url(const char *url, char **path, bool *memory)
{
    const char *rest = url + strlen("sqlite:");
    *path = NULL;
    *memory = strcmp(rest, ":memory:") == 0 || strcmp(rest, "//:memory:") == 0;
    if (*memory)
        return 0;
    if (strncmp(rest, "//", 2) != 0 || !rest[2])
        return wv_fail(-EINVAL, "wv_db_open: a SQLite URL is sqlite:///path/to/file, "
                                "sqlite://relative/path or sqlite::memory:");
    *path = strdup(rest + 2);
    return *path ? 0 : wv_fail(-ENOMEM, "wv_db_open: out of memory");
}

static int sq_open(const char *url, const wv_db_opts *o, void **state)
{
    char *path;
    bool memory;
    int rc = parse_url(url, &path, &memory);
    if (rc < 0)
        return rc;
    sq_state *s = calloc(1, sizeof *s);
    if (!s) {
        free(path);
        return wv_fail(-ENOMEM, "wv_db_open: out of memory");
    }
    s->refs = 1;
    s->path = path;
    s->nconns = memory ? 1 : 1 + o->connections;
    s->conns = calloc((size_t)s->nconns, sizeof *s->conns);
    s->on_connect = o->on_connect ? strdup(o->on_connect) : NULL;
    s->writers = wv_chan_new(sizeof(sq_conn *), 1);
    if (!s->conns || (o->on_connect && !s->on_connect) || !s->writers) {
        state_unref(s);
        return wv_fail(-ENOMEM, "wv_db_open: out of memory");
    }
    for (int i = 0; i < s->nconns; i++) {
        s->conns[i].reader = i > 0;
        s->conns[i].cache_cap = o->statement_cache;
        s->conns[i].busy_timeout_ns = o->busy_timeout_ms * 1000000;
        wv_lane_opts lo = {.batch_begin = batch_begin, .batch_end = batch_end, .arg = &s->conns[i]};
        rc = wv_lane_new(i > 0 ? &lo : NULL, &s->conns[i].lane);
        if (rc < 0) {
            state_unref(s);
            return wv_fail(rc, "wv_db_open: cannot start a thread: %s", wv_strerror(rc));
        }
    }
    sq_job j = {.s = s, .op = OP_OPEN};
    rc = offload(&j, false);
    if (rc < 0) {
        if (j.ran && j.rc == 0) { /* opened, but the fiber gave up meanwhile */
            sq_conn *all[65];
            for (int i = 0; i < s->nconns; i++)
                all[i] = &s->conns[i];
            close_now(s, all, s->nconns);
        }
        state_unref(s);
        return rc;
    }
    give_writer(s, &s->conns[0]);
    *state = s;
    return 0;
}

static void sq_close(void *state)
{
    sq_state *s = state;
    s->closing = true;
    sq_conn *c;
    if (wv_chan_try_recv(s->writers, &c) == 0)
        close_now(s, &c, 1);
    for (int i = 1; i < s->nconns; i++) { /* each after the statements on its lane */
        c = &s->conns[i];
        close_now(s, &c, 1);
    }
    state_unref(s); /* cleanup fibers still running close their connection */
}

const db_backend db_sqlite_backend = {
    .name = "sqlite",
    .dialect = DB_SQLITE,
    .returning = true,
    .open = sq_open,
    .close = sq_close,
    .query = sq_query,
    .begin = sq_begin,
    .run = sq_run,
    .commit = sq_commit,
    .rollback = sq_rollback,
};
