/*
 * bench/bench_db_sqlite.c: single-row selects by primary key through wv_db's
 * SQLite backend (every statement on the offload pool), the shape of the
 * chapter's asyncpg example: `SELECT id, name FROM users WHERE id = $1`.
 *
 *     bench_db_sqlite PATH SECONDS [wide|raw]
 *
 * PATH is the database file (made, with a `users` table of 10,000 rows
 * (id, 'user <id>'), when missing or different). It runs one shard, warms up,
 * then for SECONDS issues the select from 1 fiber (with `wide`: from 16
 * fibers at once), ids drawn at random. Every row is checked (its id and
 * name); a wrong or missing row fails the run. Output on stdout:
 *
 *     # 1 fiber: <n> queries/s (<us> us each)      (or # 16 fibers: ...)
 *     value=<queries/s>
 *
 * With `raw`, no runtime at all: the same select with sqlite3 called in a
 * plain C loop on this thread (a read-only connection, the statement
 * prepared once), rows checked the same way; value= is its queries/s. That
 * is the ceiling any implementation reaches on one core, which run_db.sh
 * prints beside the figure. (PATH must exist then.)
 *
 * Errors go to stderr, with exit status 1 and no value line.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <weave/db.h>
#include <weave/rt.h>

#include <sqlite3.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { ROWS = 10000, WIDE = 16 };

static const char *path;
static double seconds;
static bool wide; /* 16 fibers instead of 1 */

static int fail(const char *what, int rc)
{
    fprintf(stderr, "bench_db_sqlite: %s: %s (%s)\n", what, wv_strerror(rc), wv_errmsg());
    return rc < 0 ? rc : -EIO;
}

static int insert_rows(wv_db *tx, void *arg)
{
    int rc = wv_db_exec(tx, "DROP TABLE IF EXISTS users");
    if (rc >= 0)
        rc = wv_db_exec(tx, "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT NOT NULL)");
    for (int i = 1; rc >= 0 && i <= ROWS; i++) {
        char name[32];
        snprintf(name, sizeof name, "user %d", i);
        rc = wv_db_exec(tx, "INSERT INTO users(id, name) VALUES ($1, $2)", wv_db_int(i),
                        wv_db_text(name));
    }
    return rc < 0 ? rc : 0;
}

/* The table holds exactly ids 1..ROWS named "user <id>", or is rebuilt. */
static int prepare(wv_db *db)
{
    int64_t n = -1, lo = -1, hi = -1;
    int rc = wv_db_query_int(db, &n, "SELECT count(*) FROM users");
    if (rc == 0)
        rc = wv_db_query_int(db, &lo, "SELECT min(id) FROM users");
    if (rc == 0)
        rc = wv_db_query_int(db, &hi, "SELECT max(id) FROM users");
    if (rc == 0 && n == ROWS && lo == 1 && hi == ROWS)
        return 0;
    fprintf(stderr, "bench_db_sqlite: making %s with %d users\n", path, ROWS);
    rc = wv_db_transaction(db, insert_rows, NULL);
    return rc < 0 ? fail("create the users table", rc) : 0;
}

typedef struct worker {
    wv_db *db;
    uint64_t seed;
    int64_t until;
    int64_t queries;
    int rc;
} worker;

static uint64_t next_random(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

/* One select, checked. */
static int select_one(wv_db *db, int64_t id)
{
    wv_db_rows *rows;
    int rc = wv_db_query_row(db, &rows, "SELECT id, name FROM users WHERE id = $1", wv_db_int(id));
    if (rc < 0)
        return fail("select", rc);
    int64_t got = -1;
    const char *name = NULL;
    char want[32];
    snprintf(want, sizeof want, "user %" PRId64, id);
    rc = wv_db_get_int(rows, 0, 0, &got);
    if (rc == 0)
        rc = wv_db_get_text(rows, 0, 1, &name, NULL);
    if (rc == 0 && (got != id || strcmp(name, want) != 0)) {
        fprintf(stderr, "bench_db_sqlite: id %" PRId64 " came back as %" PRId64 " \"%s\"\n", id,
                got, name);
        rc = -EIO;
    }
    wv_db_rows_free(rows);
    return rc;
}

static int work(void *arg)
{
    worker *w = arg;
    while (wv_now() < w->until) {
        int rc = select_one(w->db, (int64_t)(next_random(&w->seed) % ROWS) + 1);
        if (rc < 0) {
            w->rc = rc;
            return rc;
        }
        w->queries++;
    }
    return 0;
}

/* Queries per second from `fibers` fibers for `seconds`. */
static int measure(wv_db *db, int fibers, double *qps)
{
    worker w[WIDE];
    int64_t t0 = wv_now();
    int64_t until = t0 + (int64_t)(seconds * 1e9);
    wv_group *g = wv_group_new();
    if (!g)
        return fail("wv_group_new", -ENOMEM);
    for (int i = 0; i < fibers; i++) {
        w[i] = (worker){.db = db, .seed = 0x9e3779b97f4a7c15u * (uint64_t)(i + 1), .until = until};
        int rc = wv_group_spawn(g, work, &w[i], NULL);
        if (rc < 0) {
            wv_group_free(g);
            return fail("spawn", rc);
        }
    }
    int rc = wv_group_join(g);
    int64_t t1 = wv_now();
    wv_group_free(g);
    if (rc < 0)
        return rc;
    int64_t total = 0;
    for (int i = 0; i < fibers; i++)
        total += w[i].queries;
    if (total == 0)
        return fail("no query completed", -EIO);
    *qps = (double)total / ((double)(t1 - t0) / 1e9);
    return 0;
}

static int bench(void *arg)
{
    char url[4096];
    snprintf(url, sizeof url, "sqlite://%s", path);
    wv_db *db;
    int rc = wv_db_open(url, NULL, &db);
    if (rc < 0)
        return fail("open", rc);
    rc = prepare(db);
    for (int i = 1; rc == 0 && i <= 2000; i++) /* warm up: threads, caches, pages */
        rc = select_one(db, i % ROWS + 1);
    int fibers = wide ? WIDE : 1;
    double rate = 0;
    if (rc == 0)
        rc = measure(db, fibers, &rate);
    wv_db_close(db);
    if (rc < 0)
        return rc;
    printf("# %d fiber%s: %.0f queries/s (%.2f us each)\n", fibers, fibers > 1 ? "s" : "", rate,
           1e6 / rate);
    printf("value=%.0f\n", rate);
    return 0;
}

/* The select in a plain loop on this thread: no runtime, no offload. */
static int raw(void)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "SELECT id, name FROM users WHERE id = $1", -1, &st, NULL);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "bench_db_sqlite: raw: %s\n", db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return 1;
    }
    uint64_t seed = 0x9e3779b97f4a7c15u;
    int64_t n = 0, t0 = wv_now(), until = t0 + (int64_t)(seconds * 1e9), t1;
    while ((t1 = wv_now()) < until) {
        for (int k = 0; k < 64; k++, n++) {
            int64_t id = (int64_t)(next_random(&seed) % ROWS) + 1;
            char want[32];
            snprintf(want, sizeof want, "user %" PRId64, id);
            sqlite3_bind_int64(st, 1, id);
            const unsigned char *name = NULL;
            bool ok = sqlite3_step(st) == SQLITE_ROW && sqlite3_column_int64(st, 0) == id &&
                      (name = sqlite3_column_text(st, 1)) && strcmp((const char *)name, want) == 0;
            sqlite3_reset(st);
            if (!ok) {
                fprintf(stderr, "bench_db_sqlite: raw: wrong or missing row for id %" PRId64 "\n",
                        id);
                sqlite3_finalize(st);
                sqlite3_close(db);
                return 1;
            }
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    printf("value=%.0f\n", (double)n / ((double)(t1 - t0) / 1e9));
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4 || (seconds = atof(argv[2])) <= 0 ||
        (argc == 4 && strcmp(argv[3], "raw") != 0 && strcmp(argv[3], "wide") != 0)) {
        fprintf(stderr, "usage: bench_db_sqlite PATH SECONDS [wide|raw]\n");
        return 2;
    }
    path = argv[1];
    if (argc == 4 && strcmp(argv[3], "raw") == 0)
        return raw();
    wide = argc == 4;
    int rc = wv_main(&(wv_main_opts){.shards = 1}, bench, NULL);
    return rc < 0 ? 1 : 0;
}
