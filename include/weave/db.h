/*
 * weave databases: one API over SQLite (embedded, the default) and
 * PostgreSQL, with parameterized queries, typed rows, transactions and a
 * small model layer.
 *
 * The model. wv_db_open() takes a URL and gives a wv_db: a database with its
 * own connections, belonging to the shard that opened it (open one per
 * shard; wv_app does). Calls suspend only the calling fiber, honour its
 * deadline and cancellation, and return negative errno values with the
 * database's own words in wv_errmsg(). The query calls mirror asyncpg's:
 *
 *     asyncpg            weave
 *     conn.fetch(...)    wv_db_query      every row, in a wv_db_rows you free
 *     conn.fetchrow(...) wv_db_query_row  the first row, or -ENOENT
 *     conn.fetchval(...) wv_db_query_int  the first column of the first row
 *     conn.execute(...)  wv_db_exec       rows changed
 *
 *     wv_db *db;
 *     if (wv_db_open("sqlite:///var/lib/app/app.db", NULL, &db) < 0)
 *         ... wv_errmsg() says why
 *     wv_db_rows *rows;
 *     int n = wv_db_query(db, &rows, "SELECT id, name FROM users WHERE id > $1 ORDER BY id",
 *                         wv_db_int(10));                    // the row count, or an error
 *     for (size_t i = 0; n > 0 && i < wv_db_rows_count(rows); i++) {
 *         int64_t id;
 *         const char *name;
 *         if (wv_db_get_int(rows, i, 0, &id) == 0 && wv_db_get_text(rows, i, 1, &name, NULL) == 0)
 *             printf("%lld %s\n", (long long)id, name);
 *     }
 *     wv_db_rows_free(rows);
 *     wv_db_close(db);
 *
 * URLs: "sqlite:///abs/path.db" (everything after "sqlite://" is the file's
 * path, so "sqlite://rel.db" is relative), "sqlite::memory:" (also
 * "sqlite://:memory:"; a private database per wv_db, gone at close), and
 * "postgres://user:password@host:port/dbname" ("postgresql://" too).
 *
 * Parameters are values, never SQL: placeholders are written $1, $2, ... on
 * both backends (repeat one to use a value twice; "$1" inside a string
 * literal or a quoted identifier is just text), and each value carries its
 * type (wv_db_int, wv_db_float, wv_db_bool, wv_db_text, wv_db_blob,
 * wv_db_time, wv_db_null). The statement must use exactly as many
 * parameters as are given: its highest $N is the count.
 *
 * Rows come back whole (fetched before the call returns) and belong to the
 * caller. Typed accessors read a cell and check its type: a NULL cell is
 * -ENODATA, another type -EINVAL, each with wv_errmsg() naming the column
 * ("column 1 (name): expected an integer, got text"). SQLite has no boolean
 * type: a value of a column declared BOOLEAN/BOOL that is 0 or 1 reads as
 * WV_DB_BOOL, and wv_db_get_bool also accepts the integers 0 and 1.
 *
 * Transactions: wv_db_begin(db, &tx) gives another wv_db, bound to one
 * connection; every query call (and every model call) takes it in place of
 * the database, and wv_db_commit / wv_db_rollback end it and free it.
 * wv_db_begin on a transaction opens a nested one (a SAVEPOINT): rolling it
 * back undoes only its own work. wv_db_transaction(db, fn, arg) runs fn in a
 * transaction and commits, or rolls back when fn fails. As on PostgreSQL, on
 * both backends a statement that fails inside a transaction fails the
 * transaction: later statements in it return -ENOTRECOVERABLE and commit
 * rolls back (to try a statement that may fail, nest a transaction around
 * it). Writes are not allowed to race: on SQLite one connection writes
 * (transactions hold it until they end), others read (WAL mode: readers
 * never wait for the writer). On SQLite every connection has a thread of
 * its own (a wv_lane); reads in flight at the same moment run together in
 * one read transaction, so they see one snapshot, taken after each was
 * sent: a fiber always reads what it committed before. Do not write BEGIN/COMMIT/ROLLBACK/SAVEPOINT
 * yourself: those calls return -EINVAL. A fiber that holds a transaction and
 * asks the database itself for the connection the transaction holds gets
 * -EDEADLK instead of waiting forever.
 *
 * Deadlines: a statement still running at the fiber's deadline (or when the
 * fiber is cancelled) is interrupted, the call returns -ETIMEDOUT
 * (-ECANCELED), and the connection stays usable; inside a transaction, the
 * transaction is then failed. A connection given back with a transaction
 * still open in it (an abandoned handle, a failed rollback) is rolled back
 * before anyone uses it again.
 *
 * Errors map the same way on both backends (wv_errmsg() carries the
 * database's message, prefixed "sqlite: " or "postgres: <SQLSTATE> "):
 *
 *     errno             meaning                  SQLite (extended)           PostgreSQL SQLSTATE
 *     -EEXIST           unique / primary key     CONSTRAINT_UNIQUE,          23505, 23P01
 *                       violated                 _PRIMARYKEY, _ROWID
 *     -EINVAL           the statement or its     CONSTRAINT_NOTNULL, _CHECK, 23502, 23514, 23503,
 *                       data is wrong: NOT NULL, _FOREIGNKEY, other          class 22 (but 22003),
 *                       CHECK, foreign key,      CONSTRAINT, ERROR (syntax,  class 42 (but 42501)
 *                       syntax, no such table,   no such table), MISMATCH,
 *                       bad placeholders/count   RANGE
 *     -ERANGE           number out of range      -                           22003
 *     -EBUSY            locked by another        BUSY, LOCKED (after the     55P03
 *                       connection               busy timeout)
 *     -EAGAIN           serialization failure:   BUSY_SNAPSHOT, SCHEMA       40001
 *                       retry the transaction
 *     -EDEADLK          deadlock                 -                           40P01
 *     -ETIMEDOUT,       the fiber's deadline or  INTERRUPT                   57014
 *     -ECANCELED        cancellation
 *     -ENOTRECOVERABLE  in a failed transaction  -                           25P02
 *     -EROFS            read-only                READONLY                    25006
 *     -EACCES           not allowed              PERM, AUTH                  42501, class 28
 *     -ENOMEM           out of memory            NOMEM                       53200
 *     -ENOSPC           disk full                FULL                        53100
 *     -EMSGSIZE         value too big            TOOBIG                      54000
 *     -ENOENT           no such database file /  CANTOPEN (the OS's errno    3D000
 *                       database                 when it has one)
 *     -ECONNRESET       connection lost          -                           class 08, 57P01-57P03
 *     -EIO              anything else: I/O       IOERR, CORRUPT, NOTADB ...  other
 *                       error, corruption
 *
 * Models declare a C struct once, as a table of fields, and get the SQL for
 * both backends (the columns quoted, the values always parameters):
 *
 *     typedef struct user {
 *         int64_t id;
 *         char name[51];
 *         bool active;
 *     } user;
 *     static const wv_db_field user_fields[] = {
 *         WV_DB_FIELD(user, id, WV_DB_INT, WV_DB_PRIMARY_KEY | WV_DB_AUTOINCREMENT),
 *         WV_DB_TEXT_FIELD(user, name, 50, WV_DB_NOT_NULL | WV_DB_UNIQUE),
 *         WV_DB_FIELD(user, active, WV_DB_BOOL, WV_DB_NOT_NULL),
 *     };
 *     static const wv_db_model user_model = WV_DB_MODEL("users", user, user_fields);
 *
 *     wv_db_create_table(db, &user_model);              // Tortoise.generate_schemas()
 *     user alice = {.name = "Alice", .active = true};
 *     wv_db_insert(db, &user_model, &alice);            // User.create(name="Alice"): alice.id set
 *     user u;
 *     wv_db_get(db, &user_model, wv_db_int(alice.id), &u);   // User.get(id=...) or -ENOENT
 *     user *list;
 *     size_t n;
 *     wv_db_filter(db, &user_model, &(wv_db_filter_opts){
 *                      .where = "active", .args = (wv_db_value[]){wv_db_bool(true)},
 *                      .order_by = "-id", .limit = 10}, &list, &n);   // User.filter(...)
 *     free(list);
 *
 * Field types and their columns:
 *
 *     type          C member                 SQLite                     PostgreSQL
 *     WV_DB_INT     int64_t                  INTEGER                    BIGINT
 *     ... + PRIMARY_KEY | AUTOINCREMENT      INTEGER PRIMARY KEY        BIGINT GENERATED BY DEFAULT
 *                                            AUTOINCREMENT              AS IDENTITY PRIMARY KEY
 *     WV_DB_FLOAT   double                   REAL                       DOUBLE PRECISION
 *     WV_DB_BOOL    bool                     BOOLEAN                    BOOLEAN
 *     WV_DB_TEXT    char[max_len + 1] or     TEXT                       TEXT
 *                   bigger (NUL-terminated)
 *     WV_DB_BLOB    unsigned char[N] and a   BLOB                       BYTEA
 *                   size_t length member
 *     WV_DB_TIME    int64_t, microseconds    TEXT (ISO 8601 in UTC,     TIMESTAMPTZ
 *                   since 1970-01-01 UTC     "2026-11-25T20:30:01.000123Z", sorts in time order)
 *
 * Text lives in the struct (a fixed char array, nothing to free). A text
 * longer than the field's max_len, or an array with no NUL in it, is
 * -EMSGSIZE at insert or update, and a stored value too long for the field is
 * -EMSGSIZE when read: never truncated. The model layer never writes NULL; a
 * NULL read back (a row written by other code) becomes the zero value (0,
 * 0.0, false, "", an empty blob).
 *
 * Metrics (the default registry, registered at first use):
 * weave_db_queries_total{db="sqlite|postgres",status="ok|error|timeout|canceled"}
 * and weave_db_query_duration_seconds{db}, for every statement sent
 * (transaction control included), from the call to its result.
 *
 * Calls must be made from a fiber (-EPERM outside one), on the shard that
 * opened the database (-EXDEV from another).
 */
#ifndef WEAVE_DB_H
#define WEAVE_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weave/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A database, or a transaction on one (see wv_db_begin). */
typedef struct wv_db wv_db;

/* A query's result: rows of typed cells, owned by the caller. */
typedef struct wv_db_rows wv_db_rows;

/* ------------------------------------------------------------------ values */

typedef enum wv_db_type {
    WV_DB_NULL = 1,
    WV_DB_INT,   /* int64_t */
    WV_DB_FLOAT, /* double */
    WV_DB_BOOL,  /* bool */
    WV_DB_TEXT,  /* UTF-8 bytes */
    WV_DB_BLOB,  /* bytes */
    WV_DB_TIME,  /* int64_t microseconds since 1970-01-01T00:00:00Z */
    /* Model fields only (include/weave/schema.h), never values or columns: */
    WV_DB_OBJECT, /* a nested struct, described by .object */
    WV_DB_ARRAY,  /* a fixed array of elements described by .items, and a count */
} wv_db_type;

/* A typed value: a query parameter. Make them with the functions below. */
typedef struct wv_db_value {
    wv_db_type type;
    size_t n; /* TEXT, BLOB: length in bytes */
    union {
        int64_t i;     /* INT; TIME: microseconds since the epoch, UTC */
        double f;      /* FLOAT */
        bool b;        /* BOOL */
        const void *p; /* TEXT, BLOB: the bytes (need not end in NUL) */
    };
} wv_db_value;

static inline wv_db_value wv_db_null(void)
{
    wv_db_value v = {WV_DB_NULL, 0, {0}};
    return v;
}

static inline wv_db_value wv_db_int(int64_t i)
{
    wv_db_value v = {WV_DB_INT, 0, {0}};
    v.i = i;
    return v;
}

static inline wv_db_value wv_db_float(double f)
{
    wv_db_value v = {WV_DB_FLOAT, 0, {0}};
    v.f = f;
    return v;
}

static inline wv_db_value wv_db_bool(bool b)
{
    wv_db_value v = {WV_DB_BOOL, 0, {0}};
    v.b = b;
    return v;
}

/* n bytes of text at s (s may hold no NUL). */
static inline wv_db_value wv_db_textn(const char *s, size_t n)
{
    wv_db_value v = {WV_DB_TEXT, n, {0}};
    v.p = s;
    return v;
}

/* A NUL-terminated text; NULL gives a NULL value. */
static inline wv_db_value wv_db_text(const char *s)
{
    return s ? wv_db_textn(s, strlen(s)) : wv_db_null();
}

static inline wv_db_value wv_db_blob(const void *p, size_t n)
{
    wv_db_value v = {WV_DB_BLOB, n, {0}};
    v.p = p;
    return v;
}

/* A point in time: microseconds since 1970-01-01T00:00:00Z (years 0 to
 * 9999). SQLite stores it as ISO 8601 text in UTC
 * ("2026-11-25T20:30:01.000123Z"), PostgreSQL as a timestamptz. */
static inline wv_db_value wv_db_time(int64_t us)
{
    wv_db_value v = {WV_DB_TIME, 0, {0}};
    v.i = us;
    return v;
}

/* ------------------------------------------------------------ open, close */

typedef struct wv_db_opts {
    /* SQLite: read connections beside the one writer (file databases;
     * :memory: always uses a single connection), default 4, at most 64.
     * PostgreSQL: the pool's size. */
    int connections;
    /* SQLite: how long a write waits for another process's (or shard's)
     * write lock before -EBUSY; default 5000 ms. */
    int64_t busy_timeout_ms;
    /* Prepared statements kept per connection (least recently used go
     * first); default 128. */
    int statement_cache;
    /* SQL run on every new connection, e.g. "PRAGMA foreign_keys = ON" on
     * SQLite (several statements may be separated by ';'). NULL for none. */
    const char *on_connect;
} wv_db_opts;

/*
 * Open the database at url (see the top of this file) and store it in *out.
 * SQLite: the file is created when missing and put in WAL mode
 * (synchronous=NORMAL); every connection gets the busy timeout, a statement
 * cache and opts->on_connect. `opts` may be NULL.
 * Errors: -EINVAL for a URL that is not one of the forms above or bad
 * options (wv_errmsg() says which; a URL's password is never echoed),
 * -ENOENT and the like when the file cannot be opened, an on_connect
 * statement's error, -ENOMEM. *out is NULL on error.
 */
int wv_db_open(const char *url, const wv_db_opts *opts, wv_db **out);

/* Close the database and free it. No other fiber may be using it, and its
 * transactions must have ended. NULL is ignored; so is a transaction handle
 * (end those with commit or rollback). */
void wv_db_close(wv_db *db);

/* The backend: "sqlite" or "postgres" (for the rare dialect-specific SQL). */
const char *wv_db_backend(const wv_db *db);

/* ---------------------------------------------------------------- queries */

/*
 * Every query call has two forms: a macro taking the parameters as
 * arguments,
 *     wv_db_query(db, &rows, "SELECT name FROM users WHERE id = $1", wv_db_int(id))
 * and a function taking them as an array (`_argv`), for a count known only at
 * run time. The macros pass nargs = WV_DB_ARGS_END: the array then ends at
 * its first element of type 0.
 *
 * Each returns, besides the errors in the table above: -EINVAL for a NULL
 * sql, an empty statement, a placeholder other than $N, a count of values
 * that is not the statement's highest $N, several statements (allowed only
 * in wv_db_exec without parameters), or transaction control written as SQL;
 * -EBUSY when db is a transaction with a nested one open;
 * -ENOTRECOVERABLE in a failed transaction; -EDEADLK (see above).
 */
#define WV_DB_ARGS_END SIZE_MAX

/* fetch: every row into *out (free with wv_db_rows_free). Returns the number
 * of rows (capped at INT_MAX; wv_db_rows_count has the exact one). *out is
 * NULL on error. */
int wv_db_query_argv(wv_db *db, wv_db_rows **out, const char *sql, const wv_db_value *args,
                     size_t nargs);
#define wv_db_query(db, out, ...)                                                                  \
    wv_db_query_argv((db), (out), WV__DB_SQL(__VA_ARGS__, 0),                                      \
                     WV__DB_ARGS(__VA_ARGS__, WV__DB_END), WV_DB_ARGS_END)

/* fetchrow: the first row only, in *out (one row; free it): the others are
 * not read, though a write with RETURNING still changes every row it
 * matches. 0, or -ENOENT when there is no row. */
int wv_db_query_row_argv(wv_db *db, wv_db_rows **out, const char *sql, const wv_db_value *args,
                         size_t nargs);
#define wv_db_query_row(db, out, ...)                                                              \
    wv_db_query_row_argv((db), (out), WV__DB_SQL(__VA_ARGS__, 0),                                  \
                         WV__DB_ARGS(__VA_ARGS__, WV__DB_END), WV_DB_ARGS_END)

/* fetchval: the first column of the first row as an integer, in *out
 * ("SELECT count(*) ...", "INSERT ... RETURNING id"). 0, -ENOENT when there
 * is no row, -ENODATA when it is NULL, -EINVAL when it is not an integer. */
int wv_db_query_int_argv(wv_db *db, int64_t *out, const char *sql, const wv_db_value *args,
                         size_t nargs);
#define wv_db_query_int(db, out, ...)                                                              \
    wv_db_query_int_argv((db), (out), WV__DB_SQL(__VA_ARGS__, 0),                                  \
                         WV__DB_ARGS(__VA_ARGS__, WV__DB_END), WV_DB_ARGS_END)

/* execute: run a statement and drop any rows it returns. Returns the number
 * of rows it inserted, updated or deleted (0 for others; capped at
 * INT_MAX). Without parameters, sql may hold several statements separated
 * by ';' (a schema script); they run in order, stopping at the first error,
 * and the count is their sum. */
int wv_db_exec_argv(wv_db *db, const char *sql, const wv_db_value *args, size_t nargs);
#define wv_db_exec(db, ...)                                                                        \
    wv_db_exec_argv((db), WV__DB_SQL(__VA_ARGS__, 0), WV__DB_ARGS(__VA_ARGS__, WV__DB_END),        \
                    WV_DB_ARGS_END)

/* ------------------------------------------------------------------- rows */

/* Rows and columns; column names as the statement gave them (NULL for an
 * index out of range). */
size_t wv_db_rows_count(const wv_db_rows *r);
int wv_db_cols(const wv_db_rows *r);
const char *wv_db_col_name(const wv_db_rows *r, int col);

/* The index of the first column called `name` (exact match), or -ENOENT. */
int wv_db_col_index(const wv_db_rows *r, const char *name);

/* A cell's type, or 0 when row or col is out of range. */
wv_db_type wv_db_type_at(const wv_db_rows *r, size_t row, int col);

/* Whether a cell is NULL (false out of range). */
bool wv_db_is_null(const wv_db_rows *r, size_t row, int col);

/*
 * Typed reads of the cell at (row, col): 0, or -ENODATA for a NULL cell,
 * -EINVAL for a cell of another type or a row/col out of range, with
 * wv_errmsg() naming the column. The outputs are untouched on failure.
 *   int:   INT, and BOOL (0 or 1)
 *   float: FLOAT, and INT (converted)
 *   bool:  BOOL, and INT 0 or 1
 *   text:  TEXT: NUL-terminated, valid until the rows are freed; len may be
 *          NULL
 *   blob:  BLOB: valid until the rows are freed (not NULL even when empty)
 *   time:  TIME, and TEXT in ISO 8601 ("2026-11-25T20:30:01.5Z",
 *          "2026-11-25 20:30:01+02:00"; no zone means UTC)
 */
int wv_db_get_int(const wv_db_rows *r, size_t row, int col, int64_t *out);
int wv_db_get_float(const wv_db_rows *r, size_t row, int col, double *out);
int wv_db_get_bool(const wv_db_rows *r, size_t row, int col, bool *out);
int wv_db_get_text(const wv_db_rows *r, size_t row, int col, const char **out, size_t *len);
int wv_db_get_blob(const wv_db_rows *r, size_t row, int col, const void **out, size_t *len);
int wv_db_get_time(const wv_db_rows *r, size_t row, int col, int64_t *us);

/* Free rows and every value in them. NULL is fine. */
void wv_db_rows_free(wv_db_rows *r);

/* ----------------------------------------------------------- transactions */

/*
 * Begin a transaction on db and store its handle in *tx: use it in place of
 * db, and end it with wv_db_commit or wv_db_rollback. On a database, it
 * holds one connection until it ends (on SQLite the writer: BEGIN
 * IMMEDIATE, so it never fails later for want of the write lock); on a
 * transaction, it is nested (a SAVEPOINT), and the outer one is unusable
 * (-EBUSY) until it ends.
 * Errors: -EBUSY / -ENOTRECOVERABLE on a transaction as for queries, the
 * deadline while waiting for the connection, -EDEADLK, database errors.
 * *tx is NULL on error.
 */
int wv_db_begin(wv_db *db, wv_db **tx);

/*
 * Commit tx and free it (whatever the result: the handle is gone). 0, or an
 * error after which the transaction has been rolled back: -ENOTRECOVERABLE
 * when a statement in it had failed (wv_errmsg() repeats that failure),
 * -EBUSY when a nested transaction was still open (it is rolled back too,
 * and freed), the deadline or cancellation before the commit could run, a
 * database error. A commit that completed is reported as 0 even when the
 * deadline passed while it ran. -EINVAL for NULL or a database handle.
 */
int wv_db_commit(wv_db *tx);

/*
 * Roll tx back and free it, with any nested transactions still open in it.
 * Always ends the transaction, and never waits past the fiber's deadline or
 * cancellation: a connection that cannot be rolled back now is rolled back
 * by a fiber of its own before it is used again (a nested transaction that
 * cannot be rolled back fails its parent). So it is the one call a cleanup
 * path needs. 0, or -EINVAL for NULL or a database handle.
 */
int wv_db_rollback(wv_db *tx);

/* The body of a transaction. Returns >= 0 to commit, < 0 to roll back. */
typedef int wv_db_tx_fn(wv_db *tx, void *arg);

/*
 * Run fn(tx, arg) in a transaction begun on db (nested when db is a
 * transaction): commit when it returns >= 0, roll back when it fails.
 * Returns fn's result when it committed, fn's error (with its wv_errmsg())
 * when fn failed, or the error of begin or commit.
 */
int wv_db_transaction(wv_db *db, wv_db_tx_fn *fn, void *arg);

/* ----------------------------------------------------------------- models */

/* Field flags. */
enum {
    WV_DB_PRIMARY_KEY = 1,   /* exactly one field has it */
    WV_DB_AUTOINCREMENT = 2, /* an INT primary key the database assigns */
    WV_DB_NOT_NULL = 4,
    WV_DB_UNIQUE = 8,
    WV_DB_NULLABLE = 16, /* schema: JSON null is accepted (the zero value; see present_offset) */
};

struct wv_db_model;

/* One column of a model: a member of its struct. Use the macros below (and
 * WV_FIELD_* in include/weave/schema.h). The members after len_offset are
 * the schema's (decoding, validation, encoding, JSON Schema): all optional,
 * zero meaning absent, ignored by the database calls. */
typedef struct wv_db_field {
    const char *name;  /* column name, [A-Za-z_][A-Za-z0-9_]*, the member's by default */
    wv_db_type type;   /* INT, FLOAT, BOOL, TEXT, BLOB or TIME (not NULL); schema: also
                        * OBJECT and ARRAY */
    unsigned flags;    /* WV_DB_PRIMARY_KEY | ... */
    size_t offset;     /* offsetof(struct, member) */
    size_t size;       /* sizeof(member) */
    size_t max_len;    /* TEXT, BLOB: longest value in bytes; 0 = the array's room */
    size_t len_offset; /* BLOB: offsetof the size_t member holding the length; ARRAY: the
                        * size_t member holding the element count */

    /* ---- schema only (include/weave/schema.h) ---- */
    const struct wv_db_model *object; /* OBJECT: the nested struct's model */
    const struct wv_db_field *items;  /* ARRAY: one element (its type, size, constraints) */
    size_t present_offset;            /* offsetof a bool member + 1 (WV_PRESENT): set true when the
                                       * input gave the field a non-null value */
    const char *default_json;         /* the default as JSON text ("0", "\"x\"", "null"): an absent
                                       * field takes it; a field without one is required */
    const char *description;          /* JSON Schema "description" */
    const char *example;              /* JSON text: JSON Schema "examples": [example] */
    bool has_min, min_exclusive, has_max, max_exclusive; /* INT, FLOAT: see WV_GE ... */
    double min, max;
    size_t min_chars, max_chars;    /* TEXT: in Unicode code points; 0 = no bound */
    const char *pattern;            /* TEXT: a POSIX extended regex, searched */
    const char *const *enum_values; /* TEXT: the allowed values, NULL-terminated */
    size_t min_items, max_items;    /* ARRAY: 0 = no bound (the capacity bounds it anyway) */
} wv_db_field;

/* An INT (int64_t), FLOAT (double), BOOL (bool) or TIME (int64_t) member. */
#define WV_DB_FIELD(T_, member_, type_, flags_)                                                    \
    {                                                                                              \
        .name = #member_, .type = (type_), .flags = (flags_), .offset = offsetof(T_, member_),     \
        .size = sizeof(((T_ *)0)->member_)                                                         \
    }

/* A char array member holding a NUL-terminated text of at most max_len_
 * bytes (0: the array's size - 1). */
#define WV_DB_TEXT_FIELD(T_, member_, max_len_, flags_)                                            \
    {                                                                                              \
        .name = #member_, .type = WV_DB_TEXT, .flags = (flags_), .offset = offsetof(T_, member_),  \
        .size = sizeof(((T_ *)0)->member_), .max_len = (max_len_)                                  \
    }

/* A byte array member whose length is the size_t member len_member_. */
#define WV_DB_BLOB_FIELD(T_, member_, len_member_, flags_)                                         \
    {                                                                                              \
        .name = #member_, .type = WV_DB_BLOB, .flags = (flags_), .offset = offsetof(T_, member_),  \
        .size = sizeof(((T_ *)0)->member_), .len_offset = offsetof(T_, len_member_)                \
    }

/* A model: a table and the struct its rows map to. A model with no table
 * (.table = NULL) describes a request or response body only
 * (include/weave/schema.h): the database calls refuse it (-EINVAL). */
typedef struct wv_db_model {
    const char *table; /* [A-Za-z_][A-Za-z0-9_]*, or NULL: no table */
    size_t size;       /* sizeof the struct */
    const wv_db_field *fields;
    size_t nfields; /* at most 64 */

    /* ---- schema only (include/weave/schema.h) ---- */
    const char *name;        /* the JSON Schema component name ("User"); NULL = table's */
    const char *description; /* JSON Schema "description" */
    bool forbid_extra;       /* members that are not fields are errors (extra_forbidden) */
} wv_db_model;

#define WV_DB_MODEL(table_, T_, fields_)                                                           \
    {                                                                                              \
        .table = (table_), .size = sizeof(T_), .fields = (fields_),                                \
        .nfields = sizeof(fields_) / sizeof((fields_)[0])                                          \
    }

/*
 * Every model call returns -EINVAL (wv_errmsg() says what) for a model that
 * is not well formed: no table (a body-only model), a bad table or column
 * name, an OBJECT or ARRAY field (those are schema-only), not exactly one primary
 * key, AUTOINCREMENT on anything but an INT primary key, a member size that
 * does not fit its type, a max_len past the array. Besides the database's
 * errors (a duplicate UNIQUE value is -EEXIST), each may return -EMSGSIZE
 * for a text or blob too long for its field (naming it).
 */

/* CREATE TABLE IF NOT EXISTS with the columns above (generate_schemas): a
 * second call changes nothing. */
int wv_db_create_table(wv_db *db, const wv_db_model *m);

/* INSERT the struct at obj (every field; an AUTOINCREMENT key only when it
 * is not 0) and store the key the database returns (RETURNING) in obj. */
int wv_db_insert(wv_db *db, const wv_db_model *m, void *obj);

/* The row whose primary key equals key, into the struct at obj. 0 or
 * -ENOENT (obj untouched). */
int wv_db_get(wv_db *db, const wv_db_model *m, wv_db_value key, void *obj);

typedef struct wv_db_filter_opts {
    /* Fields that must equal args, ANDed: "name" or "name,active". NULL or
     * "" selects every row. A NULL arg matches NULL (IS NULL). */
    const char *where;
    const wv_db_value *args; /* one per field of where, in order */
    /* Sort fields, '-' first for descending: "name", "-created_at,id".
     * NULL: the primary key, ascending. */
    const char *order_by;
    int64_t limit;  /* at most this many rows; 0 = no limit */
    int64_t offset; /* rows skipped before the first one returned */
} wv_db_filter_opts;

/* The rows that match f (NULL: every row), as a malloc'd array of structs
 * stored in *(T **)out, and their number in *count (the caller frees the
 * array; it is NULL when there is no row). */
int wv_db_filter(wv_db *db, const wv_db_model *m, const wv_db_filter_opts *f, void *out,
                 size_t *count);

/* UPDATE the row whose key is obj's with obj's values of the listed fields
 * ("name,active"; NULL = every field but the key). 0, or -ENOENT when no
 * row has that key. */
int wv_db_update(wv_db *db, const wv_db_model *m, const void *obj, const char *fields);

/* DELETE the row whose primary key equals key. 0, or -ENOENT. */
int wv_db_delete(wv_db *db, const wv_db_model *m, wv_db_value key);

/* ---------------------------------------------------- private: the macros */

#define WV__DB_SQL(sql, ...)  (sql)
#define WV__DB_ARGS(sql, ...) ((const wv_db_value[]){__VA_ARGS__})
#define WV__DB_END            ((wv_db_value){.type = (wv_db_type)0})

#ifdef __cplusplus
}
#endif

#endif
