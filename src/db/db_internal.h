/*
 * The database layer's insides: the backend vtable every engine implements
 * (sqlite_backend.c now; pg_backend.c next), the row builder backends fill
 * results with, the error mapping shared by both, and the model layer's SQL
 * generation (exposed here so tests can compare it per dialect).
 *
 * How a call flows. db.c checks the handle (fiber, shard, transaction
 * state), the SQL (not empty, no transaction control) and the parameters,
 * then hands a db_call to the backend: `query` for a statement on the
 * database itself (the backend picks a connection: on SQLite a reader for a
 * SELECT, the writer otherwise), `run` for a statement on the connection a
 * transaction holds. It times the call for the metrics, and marks a
 * transaction failed when a statement in it fails. Transactions are a
 * connection taken by `begin` and given back by `commit` / `rollback`;
 * nested ones are SAVEPOINT statements sent through `run` (same SQL on both
 * engines).
 *
 * PostgreSQL (pg_backend.c) is a pool of weave's PostgreSQL client
 * (include/weave/pg.h) per database handle; the "postgres" dialect of the
 * model SQL below is what its models send.
 */
#ifndef WEAVE_SRC_DB_INTERNAL_H
#define WEAVE_SRC_DB_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/buf.h"
#include "weave/db.h"

#pragma GCC visibility push(hidden)

typedef enum db_dialect {
    DB_SQLITE = 0,
    DB_POSTGRES = 1,
} db_dialect;

/* What a statement's rows are for. */
typedef enum db_mode {
    DB_ROWS, /* every row into call->rows */
    DB_ROW,  /* the first row (if any) into call->rows */
    DB_EXEC, /* no rows kept; rows changed into call->changes */
} db_mode;

/* One statement, as db.c hands it to a backend. */
typedef struct db_call {
    const char *sql;
    const wv_db_value *args; /* checked: valid types, p != NULL when n > 0 */
    size_t nargs;
    db_mode mode;
    wv_db_rows *rows; /* out: DB_ROWS / DB_ROW (may be empty, never NULL on success) */
    int64_t changes;  /* out: DB_EXEC */
} db_call;

/*
 * A database engine. Every function is called on the shard that opened the
 * database, from a fiber; every one that can suspend honours the fiber's
 * deadline and cancellation, and on failure returns a negative errno mapped
 * as the table in db.h says, with wv_errmsg() set ("sqlite: ...",
 * "postgres: <SQLSTATE> ..."). `state` is what open stored; `conn` is a
 * connection begin handed out.
 */
typedef struct db_backend {
    const char *name;   /* "sqlite", "postgres": the metrics' db label */
    db_dialect dialect; /* the model layer's SQL */
    bool returning;     /* INSERT ... RETURNING works (the models rely on it) */

    /* Open the database at url (the scheme already matched) with opts
     * (defaults filled in, validated). */
    int (*open)(const char *url, const wv_db_opts *opts, void **state);
    /* Close every connection and free state. No call is running. */
    void (*close)(void *state);

    /* Run one statement outside any transaction (autocommit), on a
     * connection the backend picks and gives back. */
    int (*query)(void *state, db_call *call);

    /* Take a connection for a transaction and begin it (BEGIN; on SQLite
     * BEGIN IMMEDIATE on the writer). On failure nothing is held. */
    int (*begin)(void *state, void **conn);
    /* One statement inside the transaction. */
    int (*run)(void *state, void *conn, db_call *call);
    /* COMMIT and give the connection back, whatever happens: when the
     * commit fails or cannot be sent, the transaction is rolled back. A
     * commit that completed returns 0 even if the deadline passed. */
    int (*commit)(void *state, void *conn);
    /* ROLLBACK and give the connection back. Cannot fail, never waits past
     * the fiber's deadline or cancellation: if it cannot roll back now, the
     * connection is rolled back before its next use. */
    void (*rollback)(void *state, void *conn);
} db_backend;

extern const db_backend db_sqlite_backend;
extern const db_backend db_pg_backend; /* pg_backend.c, over include/weave/pg.h */

/* The errno for a PostgreSQL SQLSTATE (5 characters), per db.h's table. */
int db_errno_from_sqlstate(const char *sqlstate);

/* ------------------------------------------------------------ row builder */

/*
 * Backends build results here, possibly on an offload thread (the builder
 * only allocates). Cells are 16 bytes; text and blobs are copied into one
 * growing arena, each followed by a NUL.
 */
typedef struct db_cell {
    union {
        int64_t i;
        double f;
        uint64_t off; /* TEXT, BLOB: offset into the arena */
    } v;
    uint32_t len; /* TEXT, BLOB: length in bytes */
    uint8_t type; /* wv_db_type */
} db_cell;

/* A result with ncols columns (names set with db_rows_set_name) and no row.
 * NULL when out of memory. */
wv_db_rows *db_rows_new(int ncols);
int db_rows_set_name(wv_db_rows *r, int col, const char *name, size_t n);
/* Append a row of NULL cells and return them (valid until the next call),
 * or NULL when out of memory. */
db_cell *db_rows_add(wv_db_rows *r);
/* Set a cell of the row just added: type INT, FLOAT, BOOL, TIME take v. */
void db_cell_int(db_cell *c, wv_db_type type, int64_t v);
void db_cell_float(db_cell *c, double v);
/* TEXT or BLOB: copies n bytes. 0, -ENOMEM, -EMSGSIZE past 4 GiB. Call it
 * for the row just added (the arena may move; cells keep offsets). */
int db_cell_bytes(wv_db_rows *r, db_cell *c, wv_db_type type, const void *p, size_t n);

/* ------------------------------------------------------------------ time */

/* "YYYY-MM-DDTHH:MM:SS.ffffffZ" (27 bytes + NUL) for us since the epoch;
 * -ERANGE outside years 0..9999. */
int db_time_format(int64_t us, char out[32]);
/* ISO 8601 date and time, 'T' or ' ' between, optional fraction (up to 9
 * digits, rounded down to microseconds) and zone (Z, +HH, +HHMM, +HH:MM; none
 * = UTC). 0 or -EINVAL. */
int db_time_parse(const char *s, size_t n, int64_t *us);

/* ------------------------------------------------------------ SQL helpers */

/* The first keyword of sql, upper-cased into word (skipping blanks and
 * comments); "" when there is none. */
void db_first_keyword(const char *sql, char word[16]);

/* Whether sql holds nothing but blanks, comments and ';'. */
bool db_sql_blank(const char *sql);

/* -------------------------------------------------------------- model SQL */

/* 0, or -EINVAL with wv_errmsg() saying what is wrong with m. */
int db_model_check(const wv_db_model *m);

/* The statements the model calls send, for a checked model, appended to out
 * (NUL-terminated). Values are always $N parameters, in the order the model
 * layer binds them: insert: every field but an omitted AUTOINCREMENT key;
 * filter: the where fields, then LIMIT, then OFFSET (each only when set);
 * update: the set fields, then the key. `where_null` marks where fields
 * compared with IS NULL (bit i: field i of the where list; those take no
 * parameter). 0, -EINVAL (an unknown field name), -ENOMEM. */
int db_sql_create_table(db_dialect d, const wv_db_model *m, wv_buf *out);
int db_sql_insert(db_dialect d, const wv_db_model *m, bool with_key, wv_buf *out);
int db_sql_get(db_dialect d, const wv_db_model *m, wv_buf *out);
int db_sql_filter(db_dialect d, const wv_db_model *m, const wv_db_filter_opts *f,
                  uint64_t where_null, wv_buf *out);
int db_sql_update(db_dialect d, const wv_db_model *m, const char *fields, wv_buf *out);
int db_sql_delete(db_dialect d, const wv_db_model *m, wv_buf *out);

/* The dialect of a database handle (for the model layer). */
db_dialect db_dialect_of(const wv_db *db);

#pragma GCC visibility pop

#endif
