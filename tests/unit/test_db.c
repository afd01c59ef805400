/*
 * wv_db over SQLite (a file in a temp dir, and :memory:): opening by URL,
 * typed parameters and accessors, $N placeholders, big results, error
 * mapping, transactions (nested ones too) and what happens to a failed one,
 * deadlines and cancellation interrupting a running statement, the loop
 * never blocking, 1,000 concurrent fibers on a WAL file, the models (with the
 * PostgreSQL dialect's SQL compared text for text), and the metrics.
 */
#include "harness.h"
#include "pg_harness.h"

#include <dirent.h>
#include <sys/stat.h>

#include "db/db_internal.h"
#include "weave/db.h"
#include "weave/metrics.h"

static char tmpdir[64];

static int make_tmpdir(void **state)
{
    strcpy(tmpdir, "/tmp/weave_test_db_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    DIR *d = opendir(tmpdir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char p[512];
            snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(tmpdir);
    return 0;
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, make_tmpdir, remove_tmpdir)

static const char *file_url(const char *name)
{
    static char url[256];
    snprintf(url, sizeof url, "sqlite://%s/%s", tmpdir, name);
    return url;
}

static bool contains(const char *s, const char *part)
{
    return s && strstr(s, part) != NULL;
}

#define CHECK_MSG(part)                                                                            \
    check_true(contains(wv_errmsg(), part), __FILE__, __LINE__, "errmsg has " part)

/* ------------------------------------------------------------ the runner */

typedef int db_body(wv_db *db);

typedef struct db_case {
    char url[256];
    wv_db_opts opts;
    db_body *body;
} db_case;

static int with_db(void *arg)
{
    db_case *c = arg;
    wv_db *db = NULL;
    int rc = wv_db_open(c->url, &c->opts, &db);
    if (!CHECK_EQ(rc, 0)) {
        fprintf(stderr, "open %s: %s\n", c->url, wv_errmsg());
        return -1;
    }
    rc = c->body(db);
    wv_db_close(db);
    return rc;
}

static void run_db_opts(db_body *body, const char *url, wv_db_opts opts)
{
    db_case c = {.opts = opts, .body = body};
    snprintf(c.url, sizeof c.url, "%s", url);
    assert_int_equal(run_in_rt(1, with_db, &c), 0);
    assert_checks_passed();
}

/* On :memory: and on a file. */
static void run_db_both(db_body *body)
{
    run_db_opts(body, "sqlite::memory:", (wv_db_opts){0});
    run_db_opts(body, file_url("both.db"), (wv_db_opts){0});
}

/* PostgreSQL: the server `make test` starts (WEAVE_TEST_PG_URL), in a
 * schema of its own that every case starts empty. Without the variable the
 * case fails, unless WEAVE_TEST_PG_SKIP=1. */
static const char pg_schema_sql[] = "SET search_path TO weave_test_db";

static void run_db_pg(db_body *body)
{
    const char *url = pg_test_url();
    if (!url)
        return;
    pg_test_reset_schema(url, "weave_test_db");
    run_db_opts(body, url, (wv_db_opts){.on_connect = pg_schema_sql});
}

/* On SQLite (:memory: and a file) and on PostgreSQL. */
static void run_db_all(db_body *body)
{
    run_db_both(body);
    run_db_pg(body);
}

static int run_fiber(wv_fn *fn)
{
    return run_in_rt(1, fn, NULL);
}

/* --------------------------------------------------------- open and close */

static int open_memory_and_file(void *arg)
{
    wv_db *db;
    REQUIRE_EQ(wv_db_open("sqlite::memory:", NULL, &db), 0);
    CHECK_STR_EQ(wv_db_backend(db), "sqlite");
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE t(x)"), 0);
    wv_db_close(db);
    REQUIRE_EQ(wv_db_open("sqlite://:memory:", NULL, &db), 0);
    wv_db_close(db);

    REQUIRE_EQ(wv_db_open(file_url("a.db"), NULL, &db), 0);
    wv_db_rows *rows;
    REQUIRE_EQ(wv_db_query_row(db, &rows, "PRAGMA journal_mode"), 0);
    const char *mode = NULL;
    CHECK_EQ(wv_db_get_text(rows, 0, 0, &mode, NULL), 0);
    CHECK_STR_EQ(mode, "wal");
    wv_db_rows_free(rows);
    wv_db_close(db);
    struct stat st;
    CHECK_EQ(stat(file_url("a.db") + strlen("sqlite://"), &st), 0);
    wv_db_close(NULL);
    return 0;
}

static void test_open_memory_and_a_file_in_wal_mode_then_close(void **state)
{
    assert_int_equal(run_fiber(open_memory_and_file), 0);
    assert_checks_passed();
}

static int open_bad_urls(void *arg)
{
    wv_db *db = (wv_db *)&db;
    CHECK_EQ(wv_db_open("mysql://root:hunter2@localhost/x", NULL, &db), -EINVAL);
    CHECK(db == NULL);
    CHECK_MSG("mysql");
    CHECK(!contains(wv_errmsg(), "hunter2"));
    CHECK_EQ(wv_db_open("nonsense", NULL, &db), -EINVAL);
    CHECK_MSG("not a database URL");
    CHECK_EQ(wv_db_open("", NULL, &db), -EINVAL);
    CHECK_EQ(wv_db_open(NULL, NULL, &db), -EINVAL);
    CHECK_EQ(wv_db_open("sqlite:", NULL, &db), -EINVAL);
    CHECK_MSG("sqlite:///path");
    CHECK_EQ(wv_db_open("sqlite://", NULL, &db), -EINVAL);
    CHECK_EQ(wv_db_open("sqlite:relative.db", NULL, &db), -EINVAL);
    CHECK_EQ(wv_db_open("sqlite::memory:", NULL, NULL), -EINVAL);
    CHECK_EQ(wv_db_open("sqlite::memory:", &(wv_db_opts){.connections = 65}, &db), -EINVAL);
    CHECK_EQ(wv_db_open("sqlite::memory:", &(wv_db_opts){.connections = -1}, &db), -EINVAL);
    CHECK_EQ(wv_db_open("sqlite::memory:", &(wv_db_opts){.busy_timeout_ms = -1}, &db), -EINVAL);
    CHECK_EQ(wv_db_open("sqlite:///nonexistent-dir-weave/x/y.db", NULL, &db), -ENOENT);
    CHECK_MSG("unable to open");
    CHECK(db == NULL);
    return 0;
}

static void test_open_bad_url_or_options_returns_einval_with_a_message(void **state)
{
    assert_int_equal(run_fiber(open_bad_urls), 0);
    assert_checks_passed();
}

static int open_postgres(void *arg)
{
    wv_db *db;
    const char *url = getenv("WEAVE_TEST_PG_URL");
    REQUIRE(url != NULL);
    REQUIRE_EQ(wv_db_open(url, NULL, &db), 0);
    CHECK_STR_EQ(wv_db_backend(db), "postgres");
    int64_t v = 0;
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT $1::bigint + 1", wv_db_int(41)), 0);
    CHECK_EQ(v, 42);
    wv_db_close(db);
    /* a wrong password fails the open, and the message keeps the secret */
    char bad[300];
    const char *at = strchr(url, '@');
    REQUIRE(at != NULL);
    snprintf(bad, sizeof bad, "postgres://app:wrong-secret%s", at);
    CHECK_EQ(wv_db_open(bad, NULL, &db), -EACCES);
    CHECK(!contains(wv_errmsg(), "wrong-secret"));
    /* nothing listens there */
    CHECK_EQ(wv_db_open("postgresql://app:x@127.0.0.1:1/appdb", NULL, &db), -ECONNREFUSED);
    return 0;
}

static void test_open_postgres_url_connects_and_refuses_bad_credentials(void **state)
{
    if (!getenv("WEAVE_TEST_PG_URL")) {
        run_db_pg(NULL); /* fails with the reason, or skips */
        return;
    }
    assert_int_equal(run_fiber(open_postgres), 0);
    assert_checks_passed();
}

/* The PostgreSQL engine through the common API: every parameter type in and
 * out through its column type, NULLs, the errno table, transactions
 * (commit, rollback, a failed statement failing the transaction, nested
 * savepoints), and a deadline cancelling a statement on the server. */
static int pg_engine(wv_db *db)
{
    CHECK_STR_EQ(wv_db_backend(db), "postgres");
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE v (i BIGINT, f DOUBLE PRECISION, t TEXT, b BYTEA, "
                            "ok BOOLEAN, at TIMESTAMPTZ, n TEXT, u INTEGER UNIQUE NOT NULL)"),
             0);
    static const unsigned char blob[] = {0, 1, 2, 255, 0};
    CHECK_EQ(wv_db_exec(db, "INSERT INTO v VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        wv_db_int(-9007199254740993), wv_db_float(2.5), wv_db_text("héllo"),
                        wv_db_blob(blob, sizeof blob), wv_db_bool(true),
                        wv_db_time(1700000000123456), wv_db_null(), wv_db_int(1)),
             1);
    wv_db_rows *r = NULL;
    CHECK_EQ(wv_db_query_row(db, &r, "SELECT i, f, t, b, ok, at, n FROM v"), 0);
    int64_t i = 0, at = 0;
    double f = 0;
    const char *t = NULL;
    const void *b = NULL;
    size_t tn = 0, bn = 0;
    bool ok = false;
    CHECK_EQ(wv_db_get_int(r, 0, 0, &i), 0);
    CHECK(i == -9007199254740993);
    CHECK_EQ(wv_db_get_float(r, 0, 1, &f), 0);
    CHECK(f == 2.5);
    CHECK_EQ(wv_db_get_text(r, 0, 2, &t, &tn), 0);
    CHECK(tn == strlen("héllo") && memcmp(t, "héllo", tn) == 0);
    CHECK_EQ(wv_db_get_blob(r, 0, 3, &b, &bn), 0);
    CHECK(bn == sizeof blob && memcmp(b, blob, bn) == 0);
    CHECK_EQ(wv_db_get_bool(r, 0, 4, &ok), 0);
    CHECK(ok);
    CHECK_EQ(wv_db_get_time(r, 0, 5, &at), 0);
    CHECK(at == 1700000000123456);
    CHECK(wv_db_is_null(r, 0, 6));
    CHECK_EQ(wv_db_get_text(r, 0, 6, &t, &tn), -ENODATA);
    CHECK_EQ(wv_db_get_int(r, 0, 2, &i), -EINVAL); /* text is not an integer */
    wv_db_rows_free(r);

    /* the errno table: unique, NOT NULL, a missing table, a syntax error */
    CHECK_EQ(wv_db_exec(db, "INSERT INTO v (u) VALUES ($1)", wv_db_int(1)), -EEXIST);
    CHECK_MSG("postgres: 23505");
    CHECK_EQ(wv_db_exec(db, "INSERT INTO v (u) VALUES ($1)", wv_db_null()), -EINVAL);
    CHECK_MSG("postgres: 23502");
    CHECK(wv_db_exec(db, "SELECT x FROM nowhere") < 0);
    CHECK_MSG("postgres: 42P01");
    CHECK(wv_db_exec(db, "SELEKT 1") < 0);
    CHECK_MSG("postgres: 42601");

    /* transactions */
    wv_db *tx;
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO v (u) VALUES ($1)", wv_db_int(2)), 1);
    CHECK_EQ(wv_db_commit(tx), 0);
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO v (u) VALUES ($1)", wv_db_int(3)), 1);
    CHECK_EQ(wv_db_rollback(tx), 0);
    int64_t n = 0;
    CHECK_EQ(wv_db_query_int(db, &n, "SELECT count(*) FROM v"), 0);
    CHECK_EQ(n, 2);
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO v (u) VALUES ($1)", wv_db_int(4)), 1);
    wv_db *inner;
    REQUIRE_EQ(wv_db_begin(tx, &inner), 0); /* a savepoint */
    CHECK_EQ(wv_db_exec(inner, "INSERT INTO v (u) VALUES ($1)", wv_db_int(1)), -EEXIST);
    CHECK_EQ(wv_db_rollback(inner), 0); /* undoes only the inner part */
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO v (u) VALUES ($1)", wv_db_int(5)), 1);
    CHECK_EQ(wv_db_commit(tx), 0);
    CHECK_EQ(wv_db_query_int(db, &n, "SELECT count(*) FROM v"), 0);
    CHECK_EQ(n, 4);
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO v (u) VALUES ($1)", wv_db_int(6)), 1);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO v (u) VALUES ($1)", wv_db_int(1)), -EEXIST);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO v (u) VALUES ($1)", wv_db_int(7)), -ENOTRECOVERABLE);
    CHECK(wv_db_commit(tx) < 0); /* rolled back */
    CHECK_EQ(wv_db_query_int(db, &n, "SELECT count(*) FROM v WHERE u >= 6"), 0);
    CHECK_EQ(n, 0);

    /* a deadline cancels the statement on the server; the database goes on */
    int64_t t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(200));
    CHECK_EQ(wv_db_exec(db, "SELECT pg_sleep(10)"), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK(wv_now() - t0 < 3000 * NS_PER_MS);
    /* the call returns at its deadline; the cancel request goes to the
     * server beside it, so the statement stops there a moment later */
    for (int tries = 0; tries < 300; tries++) {
        CHECK_EQ(wv_db_query_int(db, &n,
                                 "SELECT count(*) FROM pg_stat_activity "
                                 "WHERE query = 'SELECT pg_sleep(10)' AND state = 'active'"),
                 0);
        if (n == 0)
            break;
        wv_sleep_ms(10);
    }
    CHECK_EQ(n, 0);
    CHECK(wv_now() - t0 < 4000 * NS_PER_MS); /* long before the 10 s it asked for */
    CHECK_EQ(wv_db_query_int(db, &n, "SELECT 7"), 0);
    CHECK_EQ(n, 7);
    return 0;
}

static void test_postgres_engine_types_errors_transactions_and_deadlines(void **state)
{
    run_db_pg(pg_engine);
}

static void test_open_outside_a_fiber_returns_eperm(void **state)
{
    wv_db *db;
    assert_int_equal(wv_db_open("sqlite::memory:", NULL, &db), -EPERM);
    assert_null(db);
}

static int on_connect_everywhere(wv_db *db)
{
    /* a SELECT goes to a reader, the INSERT to the writer: both have it on */
    int64_t on = 0;
    CHECK_EQ(wv_db_query_int(db, &on, "SELECT foreign_keys FROM pragma_foreign_keys"), 0);
    CHECK_EQ(on, 1);
    CHECK(wv_db_exec(db, "CREATE TABLE p(id INTEGER PRIMARY KEY);"
                         "CREATE TABLE c(p INTEGER REFERENCES p(id))") >= 0);
    CHECK_EQ(wv_db_exec(db, "INSERT INTO c VALUES ($1)", wv_db_int(7)), -EINVAL);
    CHECK_MSG("FOREIGN KEY constraint failed");
    return 0;
}

static void test_on_connect_runs_on_every_connection(void **state)
{
    run_db_opts(on_connect_everywhere, file_url("fk.db"),
                (wv_db_opts){.on_connect = "PRAGMA foreign_keys = ON"});
}

static int bad_on_connect(void *arg)
{
    wv_db *db;
    CHECK_EQ(wv_db_open("sqlite::memory:", &(wv_db_opts){.on_connect = "PRAGMA nonsense ="}, &db),
             -EINVAL);
    CHECK_MSG("on_connect");
    return 0;
}

static void test_on_connect_error_fails_the_open(void **state)
{
    assert_int_equal(run_fiber(bad_on_connect), 0);
    assert_checks_passed();
}

/* ----------------------------------------------- parameters and accessors */

static int every_type(wv_db *db)
{
    REQUIRE_EQ(wv_db_exec(db, "CREATE TABLE v(i INTEGER, f REAL, t TEXT, b BLOB, ok BOOLEAN, "
                              "n TEXT, at TEXT)"),
               0);
    static const unsigned char bytes[] = {0, 1, 2, 0xff, 0};
    int64_t at = INT64_C(1764102601000123); /* 2025-11-25T20:30:01.000123Z */
    CHECK_EQ(wv_db_exec(db, "INSERT INTO v VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        wv_db_int(-9007199254740993), wv_db_float(2.5), wv_db_text("héllo"),
                        wv_db_blob(bytes, sizeof bytes), wv_db_bool(true), wv_db_null(),
                        wv_db_time(at)),
             1);
    CHECK_EQ(wv_db_exec(db, "INSERT INTO v VALUES ($1, $2, $3, $4, $5, $6, $7)",
                        wv_db_int(INT64_MAX), wv_db_float(-0.0), wv_db_textn("a\0b", 3),
                        wv_db_blob(NULL, 0), wv_db_bool(false), wv_db_text(NULL), wv_db_time(-1)),
             1);
    wv_db_rows *r;
    REQUIRE_EQ(wv_db_query(db, &r, "SELECT i, f, t, b, ok, n, at FROM v ORDER BY rowid"), 2);
    CHECK_EQ(wv_db_rows_count(r), 2);
    CHECK_EQ(wv_db_cols(r), 7);
    int64_t i = 0;
    double f = 0;
    const char *t = NULL;
    size_t len = 0;
    const void *b = NULL;
    bool ok = false;
    int64_t when = 0;
    CHECK_EQ(wv_db_get_int(r, 0, 0, &i), 0);
    CHECK(i == -9007199254740993);
    CHECK_EQ(wv_db_get_float(r, 0, 1, &f), 0);
    CHECK(f == 2.5);
    CHECK_EQ(wv_db_get_text(r, 0, 2, &t, &len), 0);
    CHECK_STR_EQ(t, "héllo");
    CHECK_EQ(len, strlen("héllo"));
    CHECK_EQ(wv_db_get_blob(r, 0, 3, &b, &len), 0);
    CHECK_EQ(len, sizeof bytes);
    CHECK(b && memcmp(b, bytes, sizeof bytes) == 0);
    CHECK_EQ(wv_db_type_at(r, 0, 4), WV_DB_BOOL);
    CHECK_EQ(wv_db_get_bool(r, 0, 4, &ok), 0);
    CHECK(ok);
    CHECK(wv_db_is_null(r, 0, 5));
    CHECK_EQ(wv_db_type_at(r, 0, 5), WV_DB_NULL);
    CHECK_EQ(wv_db_type_at(r, 0, 6), WV_DB_TEXT);
    CHECK_EQ(wv_db_get_text(r, 0, 6, &t, NULL), 0);
    CHECK_STR_EQ(t, "2025-11-25T20:30:01.000123Z");
    CHECK_EQ(wv_db_get_time(r, 0, 6, &when), 0);
    CHECK_EQ(when, at);

    CHECK_EQ(wv_db_get_int(r, 1, 0, &i), 0);
    CHECK(i == INT64_MAX);
    CHECK_EQ(wv_db_get_text(r, 1, 2, &t, &len), 0);
    CHECK_EQ(len, 3);
    CHECK(memcmp(t, "a\0b", 4) == 0);
    CHECK_EQ(wv_db_type_at(r, 1, 3), WV_DB_BLOB);
    CHECK_EQ(wv_db_get_blob(r, 1, 3, &b, &len), 0);
    CHECK_EQ(len, 0);
    CHECK(b != NULL);
    CHECK_EQ(wv_db_get_bool(r, 1, 4, &ok), 0);
    CHECK(!ok);
    CHECK(wv_db_is_null(r, 1, 5));
    CHECK_EQ(wv_db_get_time(r, 1, 6, &when), 0);
    CHECK_EQ(when, -1);
    wv_db_rows_free(r);

    /* expressions have no declared type: integers, read as booleans too */
    REQUIRE_EQ(wv_db_query_row(db, &r, "SELECT 1 = 1, 2, 3"), 0);
    CHECK_EQ(wv_db_type_at(r, 0, 0), WV_DB_INT);
    CHECK_EQ(wv_db_get_bool(r, 0, 0, &ok), 0);
    CHECK(ok);
    CHECK_EQ(wv_db_get_float(r, 0, 1, &f), 0); /* an integer reads as a float */
    CHECK(f == 2.0);
    wv_db_rows_free(r);
    return 0;
}

static void test_every_parameter_type_round_trips_through_its_accessor(void **state)
{
    run_db_both(every_type);
}

static int mismatches(wv_db *db)
{
    wv_db_rows *r;
    REQUIRE_EQ(wv_db_query_row(db, &r,
                               "SELECT 'x' AS name, 42 AS n, NULL AS empty, 2 AS two, "
                               "x'00' AS bin, 'soon' AS at"),
               0);
    int64_t i = 77;
    double f = 7.5;
    bool b = true;
    const char *t = "keep";
    const void *blob = t;
    size_t len = 99;
    CHECK_EQ(wv_db_get_int(r, 0, 0, &i), -EINVAL);
    CHECK_MSG("column 0 (name)");
    CHECK_MSG("expected an integer, got text");
    CHECK_EQ(i, 77);
    CHECK_EQ(wv_db_get_text(r, 0, 1, &t, &len), -EINVAL);
    CHECK_MSG("expected text, got an integer");
    CHECK_STR_EQ(t, "keep");
    CHECK_EQ(len, 99);
    CHECK_EQ(wv_db_get_float(r, 0, 0, &f), -EINVAL);
    CHECK(f == 7.5);
    CHECK_EQ(wv_db_get_blob(r, 0, 0, &blob, &len), -EINVAL);
    CHECK_EQ(wv_db_get_text(r, 0, 4, &t, NULL), -EINVAL);
    CHECK_MSG("got a blob");
    CHECK_EQ(wv_db_get_int(r, 0, 2, &i), -ENODATA);
    CHECK_MSG("column 2 (empty), row 0: NULL");
    CHECK_EQ(wv_db_get_text(r, 0, 2, &t, NULL), -ENODATA);
    CHECK_EQ(wv_db_get_bool(r, 0, 3, &b), -EINVAL);
    CHECK_MSG("got the integer 2");
    CHECK(b);
    CHECK_EQ(wv_db_get_time(r, 0, 5, &i), -EINVAL);
    CHECK_MSG("not an ISO 8601 time");
    CHECK_EQ(wv_db_get_int(r, 1, 0, &i), -EINVAL);
    CHECK_MSG("out of range");
    CHECK_EQ(wv_db_get_int(r, 0, 6, &i), -EINVAL);
    CHECK_EQ(wv_db_get_int(r, 0, -1, &i), -EINVAL);
    CHECK_EQ(wv_db_get_int(NULL, 0, 0, &i), -EINVAL);
    CHECK_EQ(wv_db_type_at(r, 0, 6), 0);
    CHECK_EQ(wv_db_type_at(r, 1, 0), 0);
    CHECK(!wv_db_is_null(r, 5, 0));
    CHECK_EQ(wv_db_cols(r), 6);
    CHECK_STR_EQ(wv_db_col_name(r, 1), "n");
    CHECK(wv_db_col_name(r, 6) == NULL);
    CHECK(wv_db_col_name(r, -1) == NULL);
    CHECK_EQ(wv_db_col_index(r, "bin"), 4);
    CHECK_EQ(wv_db_col_index(r, "missing"), -ENOENT);
    CHECK_EQ(wv_db_rows_count(NULL), 0);
    CHECK_EQ(wv_db_cols(NULL), 0);
    wv_db_rows_free(r);
    wv_db_rows_free(NULL);
    return 0;
}

static void test_accessors_refuse_a_mismatched_type_or_null_naming_the_column(void **state)
{
    run_db_opts(mismatches, "sqlite::memory:", (wv_db_opts){0});
}

/* ---------------------------------------------------------- placeholders */

static int placeholders(wv_db *db)
{
    wv_db_rows *r;
    const char *t = NULL;
    /* '$1' in a literal is text; $1 used twice; a comment's $2 is nothing */
    REQUIRE_EQ(wv_db_query_row(db, &r, "SELECT $1 || '$1' || $2 || '''$2' /* $3 */, $1 -- $3\n",
                               wv_db_text("a"), wv_db_text("b")),
               0);
    CHECK_EQ(wv_db_get_text(r, 0, 0, &t, NULL), 0);
    CHECK_STR_EQ(t, "a$1b'$2");
    CHECK_EQ(wv_db_get_text(r, 0, 1, &t, NULL), 0);
    CHECK_STR_EQ(t, "a");
    wv_db_rows_free(r);

    /* values bind by number, not by order of appearance */
    int64_t v = 0;
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT $2 * 10 + $1", wv_db_int(1), wv_db_int(2)), 0);
    CHECK_EQ(v, 21);

    /* a quoted identifier named "$1" and a literal with no parameters */
    REQUIRE_EQ(wv_db_query_row(db, &r, "SELECT '$1' AS \"$1\", \"x$2\" FROM (SELECT 5 AS \"x$2\")"),
               0);
    CHECK_STR_EQ(wv_db_col_name(r, 0), "$1");
    CHECK_EQ(wv_db_get_text(r, 0, 0, &t, NULL), 0);
    CHECK_STR_EQ(t, "$1");
    CHECK_EQ(wv_db_get_int(r, 0, 1, &v), 0);
    CHECK_EQ(v, 5);
    wv_db_rows_free(r);

    /* values are never SQL */
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE s(x TEXT)"), 0);
    CHECK_EQ(wv_db_exec(db, "INSERT INTO s VALUES ($1)", wv_db_text("'); DROP TABLE s; --")), 1);
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT count(*) FROM s WHERE x = $1",
                             wv_db_text("'); DROP TABLE s; --")),
             0);
    CHECK_EQ(v, 1);

    /* the count must be the highest $N */
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT $1 + $2", wv_db_int(1)), -EINVAL);
    CHECK_MSG("takes 2 parameters but 1 value was given");
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT $1", wv_db_int(1), wv_db_int(2)), -EINVAL);
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT 1", wv_db_int(1)), -EINVAL);
    /* other placeholder forms are refused */
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT ?", wv_db_int(1)), -EINVAL);
    CHECK_MSG("write parameters as $1, $2");
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT ?1", wv_db_int(1)), -EINVAL);
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT :name", wv_db_int(1)), -EINVAL);
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT $0", wv_db_int(1)), -EINVAL);
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT $01", wv_db_int(1)), -EINVAL);
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT $a", wv_db_int(1)), -EINVAL);
    return 0;
}

static void test_dollar_placeholders_bind_by_number_and_literals_stay_text(void **state)
{
    run_db_both(placeholders);
}

static int argv_forms(wv_db *db)
{
    const wv_db_value args[] = {wv_db_int(3), wv_db_text("x")};
    CHECK_EQ(wv_db_exec_argv(db, "CREATE TABLE a(n INTEGER, s TEXT)", NULL, 0), 0);
    CHECK_EQ(wv_db_exec_argv(db, "INSERT INTO a VALUES ($1, $2), ($1 + 1, $2)", args, 2), 2);
    wv_db_rows *r;
    CHECK_EQ(wv_db_query_argv(db, &r, "SELECT n FROM a WHERE s = $1 ORDER BY n", args + 1, 1), 2);
    wv_db_rows_free(r);
    CHECK_EQ(wv_db_query_row_argv(db, &r, "SELECT n FROM a WHERE n = $1", args, 1), 0);
    wv_db_rows_free(r);
    int64_t v = 0;
    CHECK_EQ(wv_db_query_int_argv(db, &v, "SELECT max(n) FROM a WHERE s = $2 AND n >= $1", args, 2),
             0);
    CHECK_EQ(v, 4);
    /* bad arrays */
    CHECK_EQ(wv_db_exec_argv(db, "SELECT $1", NULL, 1), -EINVAL);
    const wv_db_value bad[] = {{.type = (wv_db_type)42}};
    CHECK_EQ(wv_db_exec_argv(db, "SELECT $1", bad, 1), -EINVAL);
    CHECK_MSG("unknown type");
    const wv_db_value nullp[] = {{.type = WV_DB_TEXT, .n = 3}};
    CHECK_EQ(wv_db_exec_argv(db, "SELECT $1", nullp, 1), -EINVAL);
    CHECK_EQ(wv_db_exec_argv(db, NULL, NULL, 0), -EINVAL);
    CHECK_EQ(wv_db_query_argv(db, NULL, "SELECT 1", NULL, 0), -EINVAL);
    CHECK_EQ(wv_db_query_row_argv(db, NULL, "SELECT 1", NULL, 0), -EINVAL);
    CHECK_EQ(wv_db_query_int_argv(db, NULL, "SELECT 1", NULL, 0), -EINVAL);
    CHECK_EQ(wv_db_exec_argv(NULL, "SELECT 1", NULL, 0), -EINVAL);
    return 0;
}

static void test_argv_forms_take_an_array_and_a_count(void **state)
{
    run_db_both(argv_forms);
}

/* ------------------------------------------------------ fetch shapes, exec */

static int fetch_shapes(wv_db *db)
{
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE n(x INTEGER); INSERT INTO n VALUES (1), (2), (3);"
                            "INSERT INTO n VALUES (NULL)"),
             4);
    wv_db_rows *r = (wv_db_rows *)&r;
    CHECK_EQ(wv_db_query_row(db, &r, "SELECT x FROM n WHERE x > $1 ORDER BY x", wv_db_int(1)), 0);
    CHECK_EQ(wv_db_rows_count(r), 1);
    int64_t v = 0;
    CHECK_EQ(wv_db_get_int(r, 0, 0, &v), 0);
    CHECK_EQ(v, 2);
    wv_db_rows_free(r);
    CHECK_EQ(wv_db_query_row(db, &r, "SELECT x FROM n WHERE x > 10"), -ENOENT);
    CHECK(r == NULL);
    CHECK_EQ(wv_db_query(db, &r, "SELECT x FROM n WHERE x > 10"), 0);
    CHECK(r != NULL);
    CHECK_EQ(wv_db_rows_count(r), 0);
    CHECK_EQ(wv_db_cols(r), 1);
    wv_db_rows_free(r);
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT count(*) FROM n"), 0);
    CHECK_EQ(v, 4);
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT x FROM n WHERE x > 10"), -ENOENT);
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT x FROM n WHERE x IS NULL"), -ENODATA);
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT 'text'"), -EINVAL);
    CHECK_EQ(wv_db_exec(db, "UPDATE n SET x = x + 1 WHERE x >= $1", wv_db_int(2)), 2);
    CHECK_EQ(wv_db_exec(db, "DELETE FROM n WHERE x IS NULL"), 1);
    CHECK_EQ(wv_db_exec(db, "SELECT * FROM n"), 0);
    /* a statement that starts like a read but writes goes to the writer */
    CHECK_EQ(
        wv_db_exec(db, "WITH v(x) AS (VALUES ($1)) INSERT INTO n SELECT x FROM v", wv_db_int(5)),
        1);
    CHECK_EQ(wv_db_exec(db, "DELETE FROM n WHERE x = 5"), 1);
    /* RETURNING through fetchval */
    CHECK_EQ(wv_db_query_int(db, &v, "INSERT INTO n VALUES ($1) RETURNING x * 2", wv_db_int(21)),
             0);
    CHECK_EQ(v, 42);
    /* several statements: only exec without parameters */
    CHECK_EQ(wv_db_query(db, &r, "SELECT 1; SELECT 2"), -EINVAL);
    CHECK_MSG("several statements");
    CHECK_EQ(wv_db_exec(db, "DELETE FROM n WHERE x = $1; SELECT 1", wv_db_int(1)), -EINVAL);
    CHECK_EQ(wv_db_exec(db, "SELECT 1;  -- fine\n ; /* also */"), 0); /* one statement */
    CHECK_EQ(wv_db_exec(db, "  -- nothing\n"), -EINVAL);
    CHECK_MSG("empty statement");
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE z(a); INSERT INTO z VALUES (1); BOGUS"), -EINVAL);
    CHECK_MSG("syntax error");
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT count(*) FROM z"), 0); /* ran up to the error */
    CHECK_EQ(v, 1);
    return 0;
}

static void test_fetch_fetchrow_fetchval_and_execute_shapes(void **state)
{
    run_db_both(fetch_shapes);
}

static int large_result(wv_db *db)
{
    wv_db_rows *r;
    int n = wv_db_query(db, &r,
                        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < "
                        "$1) SELECT x, 'row ' || x FROM c",
                        wv_db_int(100000));
    REQUIRE_EQ(n, 100000);
    int64_t sum = 0;
    bool ok = true;
    for (size_t i = 0; i < wv_db_rows_count(r); i++) {
        int64_t x = 0;
        const char *t = NULL;
        size_t len;
        ok = ok && wv_db_get_int(r, i, 0, &x) == 0 && x == (int64_t)i + 1;
        ok = ok && wv_db_get_text(r, i, 1, &t, &len) == 0 && strncmp(t, "row ", 4) == 0 &&
             strtoll(t + 4, NULL, 10) == x;
        sum += x;
    }
    CHECK(ok);
    CHECK_EQ(sum, INT64_C(5000050000));
    wv_db_rows_free(r);
    return 0;
}

static void test_a_100k_row_result_comes_back_whole(void **state)
{
    run_db_both(large_result);
}

/* ------------------------------------------------------------------ errors */

static int error_mapping(wv_db *db)
{
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE u(id INTEGER PRIMARY KEY, email TEXT UNIQUE, "
                            "name TEXT NOT NULL, age INTEGER CHECK (age >= 0))"),
             0);
    CHECK_EQ(wv_db_exec(db, "INSERT INTO u VALUES (1, 'a@x', 'A', 1)"), 1);
    CHECK_EQ(wv_db_exec(db, "INSERT INTO u VALUES (2, 'a@x', 'B', 1)"), -EEXIST);
    CHECK_MSG("sqlite: UNIQUE constraint failed: u.email");
    CHECK_EQ(wv_db_exec(db, "INSERT INTO u VALUES (1, 'b@x', 'B', 1)"), -EEXIST);
    CHECK_EQ(wv_db_exec(db, "INSERT INTO u VALUES (3, 'c@x', NULL, 1)"), -EINVAL);
    CHECK_MSG("NOT NULL constraint failed: u.name");
    CHECK_EQ(wv_db_exec(db, "INSERT INTO u VALUES (3, 'c@x', 'C', -1)"), -EINVAL);
    CHECK_MSG("CHECK constraint failed");
    CHECK_EQ(wv_db_exec(db, "SELEC 1"), -EINVAL);
    CHECK_MSG("syntax error");
    CHECK_EQ(wv_db_exec(db, "SELECT * FROM nowhere"), -EINVAL);
    CHECK_MSG("no such table: nowhere");
    CHECK_EQ(wv_db_exec(db, "INSERT INTO u(id, email, name) VALUES ($1, 'd@x', 'D')",
                        wv_db_text("not a number")),
             -EINVAL); /* datatype mismatch on the rowid */
    CHECK_EQ(wv_db_exec(db, "SELECT $1", wv_db_time(INT64_MAX)), -ERANGE);
    /* transaction control is ours */
    CHECK_EQ(wv_db_exec(db, "BEGIN"), -EINVAL);
    CHECK_MSG("wv_db_begin");
    CHECK_EQ(wv_db_exec(db, "  commit"), -EINVAL);
    CHECK_EQ(wv_db_exec(db, "/* x */ ROLLBACK"), -EINVAL);
    CHECK_EQ(wv_db_exec(db, "SAVEPOINT a"), -EINVAL);
    CHECK_EQ(wv_db_exec(db, "RELEASE a"), -EINVAL);
    CHECK_EQ(wv_db_exec(db, "END"), -EINVAL);
    /* a script that opens one: rolled back, refused */
    CHECK_EQ(wv_db_exec(db, "SELECT 1; BEGIN; INSERT INTO u VALUES (9, '9', '9', 9)"), -EINVAL);
    CHECK_MSG("left a transaction open");
    int64_t n = 0;
    CHECK_EQ(wv_db_query_int(db, &n, "SELECT count(*) FROM u"), 0);
    CHECK_EQ(n, 1);
    return 0;
}

static void test_errors_map_to_errno_with_sqlites_message(void **state)
{
    run_db_both(error_mapping);
}

typedef struct busy_case {
    char url[256];
} busy_case;

static int busy_timeout(void *arg)
{
    busy_case *c = arg;
    wv_db *a, *b, *tx;
    REQUIRE_EQ(wv_db_open(c->url, NULL, &a), 0);
    REQUIRE_EQ(wv_db_open(c->url, &(wv_db_opts){.busy_timeout_ms = 50}, &b), 0);
    CHECK_EQ(wv_db_exec(a, "CREATE TABLE t(x)"), 0);
    REQUIRE_EQ(wv_db_begin(a, &tx), 0); /* holds the file's write lock */
    int64_t t0 = wv_now();
    CHECK_EQ(wv_db_exec(b, "INSERT INTO t VALUES (1)"), -EBUSY);
    CHECK_MSG("locked");
    CHECK_BETWEEN(ms_since(t0), 40, 2000);
    int64_t n = -1;
    CHECK_EQ(wv_db_query_int(b, &n, "SELECT count(*) FROM t"), 0); /* readers never wait */
    CHECK_EQ(n, 0);
    CHECK_EQ(wv_db_commit(tx), 0);
    CHECK_EQ(wv_db_exec(b, "INSERT INTO t VALUES (1)"), 1);
    wv_db_close(a);
    wv_db_close(b);
    return 0;
}

static void test_a_write_lock_held_elsewhere_is_ebusy_after_the_busy_timeout(void **state)
{
    busy_case c;
    snprintf(c.url, sizeof c.url, "%s", file_url("busy.db"));
    assert_int_equal(run_in_rt(1, busy_timeout, &c), 0);
    assert_checks_passed();
}

static void test_sqlstates_map_to_the_same_errno_as_sqlite_codes(void **state)
{
    assert_int_equal(db_errno_from_sqlstate("23505"), -EEXIST);
    assert_int_equal(db_errno_from_sqlstate("23P01"), -EEXIST);
    assert_int_equal(db_errno_from_sqlstate("23502"), -EINVAL);
    assert_int_equal(db_errno_from_sqlstate("23514"), -EINVAL);
    assert_int_equal(db_errno_from_sqlstate("23503"), -EINVAL);
    assert_int_equal(db_errno_from_sqlstate("22P02"), -EINVAL);
    assert_int_equal(db_errno_from_sqlstate("22003"), -ERANGE);
    assert_int_equal(db_errno_from_sqlstate("42601"), -EINVAL);
    assert_int_equal(db_errno_from_sqlstate("42P01"), -EINVAL);
    assert_int_equal(db_errno_from_sqlstate("42501"), -EACCES);
    assert_int_equal(db_errno_from_sqlstate("28P01"), -EACCES);
    assert_int_equal(db_errno_from_sqlstate("55P03"), -EBUSY);
    assert_int_equal(db_errno_from_sqlstate("40001"), -EAGAIN);
    assert_int_equal(db_errno_from_sqlstate("40P01"), -EDEADLK);
    assert_int_equal(db_errno_from_sqlstate("57014"), -ECANCELED);
    assert_int_equal(db_errno_from_sqlstate("25P02"), -ENOTRECOVERABLE);
    assert_int_equal(db_errno_from_sqlstate("25006"), -EROFS);
    assert_int_equal(db_errno_from_sqlstate("53200"), -ENOMEM);
    assert_int_equal(db_errno_from_sqlstate("53100"), -ENOSPC);
    assert_int_equal(db_errno_from_sqlstate("54000"), -EMSGSIZE);
    assert_int_equal(db_errno_from_sqlstate("3D000"), -ENOENT);
    assert_int_equal(db_errno_from_sqlstate("08006"), -ECONNRESET);
    assert_int_equal(db_errno_from_sqlstate("57P01"), -ECONNRESET);
    assert_int_equal(db_errno_from_sqlstate("XX000"), -EIO);
    assert_int_equal(db_errno_from_sqlstate("123"), -EIO);
    assert_int_equal(db_errno_from_sqlstate(NULL), -EIO);
}

/* ------------------------------------------------------------ transactions */

static int count_rows(wv_db *db, const char *table)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    int64_t n = -1;
    int rc = wv_db_query_int(db, &n, sql);
    return rc < 0 ? rc : (int)n;
}

static int commit_and_rollback(wv_db *db)
{
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE t(x INTEGER UNIQUE)"), 0);
    wv_db *tx = (wv_db *)&tx;
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    CHECK_STR_EQ(wv_db_backend(tx), "sqlite");
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO t VALUES ($1)", wv_db_int(1)), 1);
    CHECK_EQ(count_rows(tx, "t"), 1); /* its own writes */
    CHECK_EQ(wv_db_commit(tx), 0);
    CHECK_EQ(count_rows(db, "t"), 1);

    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO t VALUES ($1)", wv_db_int(2)), 1);
    CHECK_EQ(wv_db_rollback(tx), 0);
    CHECK_EQ(count_rows(db, "t"), 1);

    /* handles that are not transactions */
    CHECK_EQ(wv_db_commit(db), -EINVAL);
    CHECK_EQ(wv_db_rollback(db), -EINVAL);
    CHECK_EQ(wv_db_commit(NULL), -EINVAL);
    CHECK_EQ(wv_db_rollback(NULL), -EINVAL);
    CHECK_EQ(wv_db_begin(db, NULL), -EINVAL);
    CHECK_EQ(wv_db_begin(NULL, &tx), -EINVAL);
    CHECK(tx == NULL);
    wv_db_close(tx); /* NULL: ignored */
    return 0;
}

static void test_commit_keeps_and_rollback_drops_a_transactions_writes(void **state)
{
    run_db_both(commit_and_rollback);
}

static int failed_statement(wv_db *db)
{
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE t(x INTEGER UNIQUE); INSERT INTO t VALUES (1)"), 1);
    wv_db *tx;
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO t VALUES (2)"), 1);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO t VALUES (1)"), -EEXIST);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO t VALUES (3)"), -ENOTRECOVERABLE);
    CHECK_MSG("UNIQUE constraint failed");
    CHECK_EQ(count_rows(tx, "t"), -ENOTRECOVERABLE);
    CHECK_EQ(wv_db_commit(tx), -ENOTRECOVERABLE);
    CHECK_MSG("rolled back");
    CHECK_EQ(count_rows(db, "t"), 1);
    /* the next transaction starts clean */
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO t VALUES (2)"), 1);
    CHECK_EQ(wv_db_commit(tx), 0);
    CHECK_EQ(count_rows(db, "t"), 2);
    return 0;
}

static void test_a_failed_statement_fails_its_transaction_and_commit_rolls_back(void **state)
{
    run_db_both(failed_statement);
}

typedef struct tx_arg {
    int value;
    int result;
} tx_arg;

static int insert_then(wv_db *tx, void *arg)
{
    tx_arg *a = arg;
    int rc = wv_db_exec(tx, "INSERT INTO t VALUES ($1)", wv_db_int(a->value));
    if (rc < 0)
        return rc;
    if (a->result < 0)
        return wv_fail(a->result, "the body gave up on %d", a->value);
    return a->result;
}

static int nested_helper(wv_db *tx, void *arg)
{
    tx_arg inner = {.value = 20, .result = -EIO};
    CHECK_EQ(wv_db_transaction(tx, insert_then, &inner), -EIO); /* a savepoint, undone */
    tx_arg keep = {.value = 21, .result = 0};
    CHECK_EQ(wv_db_transaction(tx, insert_then, &keep), 0);
    return 5;
}

static int transaction_helper(wv_db *db)
{
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE t(x INTEGER UNIQUE)"), 0);
    tx_arg ok = {.value = 1, .result = 7};
    CHECK_EQ(wv_db_transaction(db, insert_then, &ok), 7);
    tx_arg gave_up = {.value = 2, .result = -EPERM};
    CHECK_EQ(wv_db_transaction(db, insert_then, &gave_up), -EPERM);
    CHECK_MSG("the body gave up on 2"); /* the body's message survives the rollback */
    tx_arg dup = {.value = 1, .result = 0};
    CHECK_EQ(wv_db_transaction(db, insert_then, &dup), -EEXIST);
    CHECK_EQ(count_rows(db, "t"), 1);
    CHECK_EQ(wv_db_transaction(db, nested_helper, NULL), 5);
    int64_t n = 0;
    CHECK_EQ(wv_db_query_int(db, &n, "SELECT sum(x) FROM t"), 0);
    CHECK_EQ(n, 1 + 21);
    CHECK_EQ(wv_db_transaction(db, NULL, NULL), -EINVAL);
    return 0;
}

static void test_transaction_helper_commits_or_rolls_back_on_failure(void **state)
{
    run_db_both(transaction_helper);
}

static int nested(wv_db *db)
{
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE t(x INTEGER UNIQUE)"), 0);
    wv_db *tx, *sp, *sp2;
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO t VALUES (1)"), 1);
    REQUIRE_EQ(wv_db_begin(tx, &sp), 0);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO t VALUES (9)"), -EBUSY); /* the outer waits */
    CHECK_MSG("nested transaction is open");
    CHECK_EQ(wv_db_exec(sp, "INSERT INTO t VALUES (2)"), 1);
    CHECK_EQ(wv_db_exec(sp, "INSERT INTO t VALUES (1)"), -EEXIST); /* fails the savepoint only */
    CHECK_EQ(wv_db_exec(sp, "INSERT INTO t VALUES (3)"), -ENOTRECOVERABLE);
    CHECK_EQ(wv_db_rollback(sp), 0);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO t VALUES (4)"), 1); /* the outer goes on */
    REQUIRE_EQ(wv_db_begin(tx, &sp), 0);
    CHECK_EQ(wv_db_exec(sp, "INSERT INTO t VALUES (5)"), 1);
    REQUIRE_EQ(wv_db_begin(sp, &sp2), 0);
    CHECK_EQ(wv_db_exec(sp2, "INSERT INTO t VALUES (6)"), 1);
    CHECK_EQ(wv_db_commit(sp2), 0);
    CHECK_EQ(wv_db_commit(sp), 0);
    CHECK_EQ(wv_db_commit(tx), 0);
    int64_t sum = 0;
    CHECK_EQ(wv_db_query_int(db, &sum, "SELECT sum(x) FROM t"), 0);
    CHECK_EQ(sum, 1 + 4 + 5 + 6);

    /* committing the outer with a nested one open rolls everything back */
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO t VALUES (100)"), 1);
    REQUIRE_EQ(wv_db_begin(tx, &sp), 0);
    CHECK_EQ(wv_db_exec(sp, "INSERT INTO t VALUES (101)"), 1);
    CHECK_EQ(wv_db_commit(tx), -EBUSY);
    CHECK_EQ(wv_db_query_int(db, &sum, "SELECT sum(x) FROM t"), 0);
    CHECK_EQ(sum, 1 + 4 + 5 + 6);

    /* rolling back the outer ends the nested ones too */
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    REQUIRE_EQ(wv_db_begin(tx, &sp), 0);
    CHECK_EQ(wv_db_exec(sp, "INSERT INTO t VALUES (102)"), 1);
    CHECK_EQ(wv_db_rollback(tx), 0);
    CHECK_EQ(count_rows(db, "t"), 4);
    return 0;
}

static void test_nested_transactions_are_savepoints(void **state)
{
    run_db_both(nested);
}

static int deadlock(wv_db *db)
{
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE t(x)"), 0);
    wv_db *tx, *other;
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    CHECK_EQ(wv_db_exec(db, "INSERT INTO t VALUES (1)"), -EDEADLK);
    CHECK_MSG("transaction's handle");
    CHECK_EQ(wv_db_begin(db, &other), -EDEADLK);
    CHECK_EQ(wv_db_rollback(tx), 0);
    CHECK_EQ(wv_db_exec(db, "INSERT INTO t VALUES (1)"), 1);
    return 0;
}

static void test_using_the_database_while_holding_its_writer_is_edeadlk(void **state)
{
    run_db_both(deadlock);
}

/* A fiber begins, writes, is cancelled in the middle, and rolls back from
 * its cleanup path while cancelled: the rollback cannot run on that fiber,
 * yet the next user finds no trace of it. */
typedef struct abandon {
    wv_db *db;
    atomic_int began;
    int rc;
} abandon;

static int abandoned_tx(void *arg)
{
    abandon *a = arg;
    wv_db *tx;
    int rc = wv_db_begin(a->db, &tx);
    if (rc < 0)
        return rc;
    wv_db_exec(tx, "INSERT INTO t VALUES (1)");
    atomic_store(&a->began, 1);
    a->rc = wv_sleep_ms(10000); /* cancelled here */
    wv_db_rollback(tx);
    return 0;
}

static int no_leak(wv_db *db)
{
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE t(x)"), 0);
    abandon a = {.db = db};
    wv_group *g = wv_group_new();
    REQUIRE_EQ(wv_group_spawn(g, abandoned_tx, &a, NULL), 0);
    CHECK(wait_for_atomic(&a.began, 1, 5000));
    wv_group_cancel(g);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(a.rc, -ECANCELED);
    CHECK_EQ(count_rows(db, "t"), 0);
    wv_db *tx;
    REQUIRE_EQ(wv_db_begin(db, &tx), 0); /* the writer came back, clean */
    CHECK_EQ(count_rows(tx, "t"), 0);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO t VALUES (2)"), 1);
    CHECK_EQ(wv_db_commit(tx), 0);
    CHECK_EQ(count_rows(db, "t"), 1);
    return 0;
}

static void test_a_transaction_abandoned_by_a_cancelled_fiber_never_leaks(void **state)
{
    run_db_both(no_leak);
}

/* ---------------------------------------------------- deadlines, the loop */

#define FOREVER_SQL                                                                                \
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "        \
    "SELECT count(*) FROM c"

static int deadline_interrupts(wv_db *db)
{
    int64_t n = 0;
    int64_t old = wv_deadline_set(wv_after_ms(100));
    int64_t t0 = wv_now();
    CHECK_EQ(wv_db_query_int(db, &n, FOREVER_SQL), -ETIMEDOUT);
    CHECK_BETWEEN(ms_since(t0), 95, 600);
    CHECK_MSG("deadline");
    wv_deadline_set(old);
    /* the connection is usable (on :memory: it is the only one) */
    CHECK_EQ(wv_db_query_int(db, &n, "SELECT 41 + 1"), 0);
    CHECK_EQ(n, 42);
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE after(x)"), 0);
    /* a deadline already past: nothing runs */
    old = wv_deadline_set(wv_after_ms(-1));
    CHECK_EQ(wv_db_exec(db, "INSERT INTO after VALUES (1)"), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_EQ(count_rows(db, "after"), 0);

    /* in a transaction: interrupted, the transaction is failed, rollback
     * works past the deadline, and the writer is usable again */
    wv_db *tx;
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO after VALUES (1)"), 1);
    old = wv_deadline_set(wv_after_ms(50));
    CHECK_EQ(wv_db_query_int(tx, &n, FOREVER_SQL), -ETIMEDOUT);
    CHECK_EQ(wv_db_exec(tx, "INSERT INTO after VALUES (2)"), -ENOTRECOVERABLE);
    CHECK_EQ(wv_db_rollback(tx), 0);
    wv_deadline_set(old);
    CHECK_EQ(count_rows(db, "after"), 0);
    CHECK_EQ(wv_db_exec(db, "INSERT INTO after VALUES (3)"), 1);
    return 0;
}

static void test_deadline_interrupts_a_long_query_and_the_connection_stays_usable(void **state)
{
    run_db_both(deadline_interrupts);
}

typedef struct long_query {
    wv_db *db;
    atomic_int started;
    int rc;
} long_query;

static int run_forever(void *arg)
{
    long_query *q = arg;
    atomic_store(&q->started, 1);
    int64_t n;
    q->rc = wv_db_query_int(q->db, &n, FOREVER_SQL);
    return 0;
}

static int cancel_interrupts(wv_db *db)
{
    long_query q = {.db = db};
    wv_group *g = wv_group_new();
    REQUIRE_EQ(wv_group_spawn(g, run_forever, &q, NULL), 0);
    CHECK(wait_for_atomic(&q.started, 1, 5000));
    wv_sleep_ms(50);
    int64_t t0 = wv_now();
    wv_group_cancel(g);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_BETWEEN(ms_since(t0), 0, 1500);
    wv_group_free(g);
    CHECK_EQ(q.rc, -ECANCELED);
    int64_t n = 0;
    CHECK_EQ(wv_db_query_int(db, &n, "SELECT 7"), 0);
    CHECK_EQ(n, 7);
    return 0;
}

static void test_cancellation_interrupts_a_long_query(void **state)
{
    run_db_both(cancel_interrupts);
}

typedef struct ticker {
    atomic_int stop;
    int ticks;
    int64_t max_gap_ns;
} ticker;

static int tick(void *arg)
{
    ticker *t = arg;
    int64_t last = wv_now();
    while (!atomic_load(&t->stop)) {
        if (wv_sleep_ms(1) != 0)
            return -1;
        int64_t now = wv_now();
        if (now - last > t->max_gap_ns)
            t->max_gap_ns = now - last;
        last = now;
        t->ticks++;
    }
    return 0;
}

static int loop_free(wv_db *db)
{
    ticker t = {0};
    wv_group *g = wv_group_new();
    REQUIRE_EQ(wv_group_spawn(g, tick, &t, NULL), 0);
    wv_sleep_ms(5);
    int64_t n = 0;
    int64_t old = wv_deadline_set(wv_after_ms(500));
    CHECK_EQ(wv_db_query_int(db, &n, FOREVER_SQL), -ETIMEDOUT);
    wv_deadline_set(old);
    atomic_store(&t.stop, 1);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    /* a ~1 ms ticker over the 500 ms the query ran: ~450 ticks. Were the
     * query on the loop, there would be none and one 500 ms gap; the margins
     * leave room for a busy machine preempting the shard now and then. */
    CHECK_BETWEEN(t.ticks, 100, 1000);
    CHECK_BETWEEN(t.max_gap_ns / NS_PER_MS, 0, 250);
    return 0;
}

static void test_the_loop_keeps_ticking_while_a_slow_query_runs(void **state)
{
    run_db_both(loop_free);
}

/* ----------------------------------------------------------- concurrency */

typedef struct crowd {
    wv_db *db;
    int i;
} crowd;

static int crowd_member(void *arg)
{
    crowd *c = arg;
    wv_db *db = c->db;
    if (wv_db_exec(db, "INSERT INTO t(v) VALUES ($1)", wv_db_int(c->i)) != 1)
        return -EIO;
    int64_t v = -1, n = 0;
    /* read our own committed write back, through a reader */
    if (wv_db_query_int(db, &v, "SELECT v FROM t WHERE v = $1", wv_db_int(c->i)) != 0 || v != c->i)
        return -EIO;
    if (wv_db_query_int(db, &n, "SELECT count(*) FROM t") != 0 || n < 1)
        return -EIO;
    if (c->i % 10 == 0) {
        wv_db *tx;
        int rc = wv_db_begin(db, &tx);
        if (rc < 0)
            return rc;
        rc = wv_db_exec(tx, "INSERT INTO pairs VALUES ($1), ($1)", wv_db_int(c->i));
        if (rc != 2) {
            wv_db_rollback(tx);
            return -EIO;
        }
        rc = wv_db_commit(tx);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int thousand(wv_db *db)
{
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER);"
                            "CREATE INDEX t_v ON t(v); CREATE TABLE pairs(v INTEGER)"),
             0);
    enum { N = 1000 };
    static crowd members[N];
    wv_group *g = wv_group_new();
    for (int i = 0; i < N; i++) {
        members[i] = (crowd){db, i};
        REQUIRE_EQ(wv_group_spawn(g, crowd_member, &members[i], NULL), 0);
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(count_rows(db, "t"), N);
    CHECK_EQ(count_rows(db, "pairs"), 2 * N / 10);
    int64_t sum = 0;
    CHECK_EQ(wv_db_query_int(db, &sum, "SELECT sum(v) FROM t"), 0);
    CHECK_EQ(sum, (int64_t)N * (N - 1) / 2);
    return 0;
}

static void test_1000_concurrent_fibers_read_and_write_a_wal_file(void **state)
{
    run_db_opts(thousand, file_url("crowd.db"), (wv_db_opts){0});
    run_db_opts(thousand, "sqlite::memory:", (wv_db_opts){0});
}

/* Reads in flight together run in one batch on a reader's lane (one read
 * transaction): every fiber still sees its own write, committed before
 * its read was sent, and the right rows. */
typedef struct rw_fiber {
    wv_db *db;
    int id;
} rw_fiber;

static int write_then_read(void *arg)
{
    rw_fiber *f = arg;
    for (int round = 0; round < 20; round++) {
        int64_t v = f->id * 100 + round;
        if (wv_db_exec(f->db, "INSERT INTO t(v) VALUES ($1)", wv_db_int(v)) != 1)
            return -EIO;
        int64_t seen = -1, count = -1;
        if (wv_db_query_int(f->db, &seen, "SELECT v FROM t WHERE v = $1", wv_db_int(v)) < 0 ||
            wv_db_query_int(f->db, &count, "SELECT count(*) FROM t WHERE v / 100 = $1",
                            wv_db_int(f->id)) < 0)
            return -EIO;
        if (seen != v || count != round + 1)
            return -EPROTO;
    }
    return 0;
}

static int batched_reads(wv_db *db)
{
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v INTEGER UNIQUE)"), 0);
    enum { N = 64 };
    static rw_fiber fibers[N];
    wv_group *g = wv_group_new();
    for (int i = 0; i < N; i++) {
        fibers[i] = (rw_fiber){db, i};
        REQUIRE_EQ(wv_group_spawn(g, write_then_read, &fibers[i], NULL), 0);
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(count_rows(db, "t"), N * 20);
    return 0;
}

static void test_reads_in_flight_together_see_their_own_committed_writes(void **state)
{
    run_db_opts(batched_reads, file_url("batch.db"), (wv_db_opts){0});
}

/* One reader, so its lane runs everything: a slow read (deadline 300 ms)
 * runs while a quick one waits behind it with a 50 ms deadline. The quick
 * one's deadline ends the quick one only (it leaves the queue), and the
 * slow one runs to its own deadline. */
typedef struct timed_read {
    wv_db *db;
    const char *sql;
    int64_t deadline_ms;
    int rc;
    int64_t took_ms;
} timed_read;

static int read_with_deadline(void *arg)
{
    timed_read *t = arg;
    int64_t n, t0 = wv_now(), old = wv_deadline_set(wv_after_ms(t->deadline_ms));
    t->rc = wv_db_query_int(t->db, &n, t->sql);
    wv_deadline_set(old);
    t->took_ms = ms_since(t0);
    return 0;
}

static int deadline_in_a_lane(wv_db *db)
{
    timed_read slow = {db, FOREVER_SQL, 300, 0, 0}, quick = {db, "SELECT 1", 50, 0, 0};
    wv_group *g = wv_group_new();
    REQUIRE_EQ(wv_group_spawn(g, read_with_deadline, &slow, NULL), 0);
    wv_sleep_ms(20); /* the slow read is running */
    REQUIRE_EQ(wv_group_spawn(g, read_with_deadline, &quick, NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(quick.rc, -ETIMEDOUT);
    CHECK_BETWEEN(quick.took_ms, 45, 250);
    CHECK_EQ(slow.rc, -ETIMEDOUT);
    CHECK_BETWEEN(slow.took_ms, 280, 2000);
    int64_t v = 0;
    CHECK_EQ(wv_db_query_int(db, &v, "SELECT 41 + 1"), 0); /* the lane goes on */
    CHECK_EQ(v, 42);
    return 0;
}

static void test_a_deadline_on_a_lane_interrupts_only_its_own_statement(void **state)
{
    run_db_opts(deadline_in_a_lane, file_url("deadline.db"), (wv_db_opts){.connections = 1});
}

static int tiny_cache(wv_db *db)
{
    CHECK_EQ(wv_db_exec(db, "CREATE TABLE t(x)"), 0);
    for (int round = 0; round < 20; round++) {
        int64_t v = 0;
        CHECK_EQ(wv_db_exec(db, "INSERT INTO t VALUES ($1)", wv_db_int(round)), 1);
        CHECK_EQ(wv_db_query_int(db, &v, "SELECT $1 + 1", wv_db_int(round)), 0);
        CHECK_EQ(v, round + 1);
        CHECK_EQ(wv_db_query_int(db, &v, "SELECT $1 + 2", wv_db_int(round)), 0);
        CHECK_EQ(v, round + 2);
        CHECK_EQ(wv_db_query_int(db, &v, "SELECT count(*) FROM t"), 0);
        CHECK_EQ(v, round + 1);
    }
    return 0;
}

static void test_statements_still_run_when_the_cache_evicts(void **state)
{
    run_db_opts(tiny_cache, "sqlite::memory:", (wv_db_opts){.statement_cache = 2});
    run_db_opts(tiny_cache, file_url("cache.db"), (wv_db_opts){.statement_cache = 1});
}

typedef struct shard_case {
    wv_db *db;
} shard_case;

static int use_from_shard_1(void *arg)
{
    shard_case *c = arg;
    CHECK_EQ(wv_db_exec(c->db, "SELECT 1"), -EXDEV);
    CHECK_MSG("shard 0");
    wv_db *tx;
    CHECK_EQ(wv_db_begin(c->db, &tx), -EXDEV);
    return 0;
}

static int cross_shard(void *arg)
{
    shard_case c;
    REQUIRE_EQ(wv_db_open("sqlite::memory:", NULL, &c.db), 0);
    CHECK_EQ(wv_shard_call(1, use_from_shard_1, &c), 0);
    CHECK_EQ(wv_db_exec(c.db, "SELECT 1"), 0);
    wv_db_close(c.db);
    return 0;
}

static void test_a_database_is_used_from_the_shard_that_opened_it(void **state)
{
    assert_int_equal(run_in_rt(2, cross_shard, NULL), 0);
    assert_checks_passed();
}

/* every shard opens the same new file at once (a service's start) */
static int open_each(void *arg)
{
    const char *url = arg;
    wv_db *db = NULL;
    int rc = wv_db_open(url, NULL, &db);
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        CHECK_EQ(wv_db_exec(db, "CREATE TABLE IF NOT EXISTS t (x INTEGER)"), 0);
        wv_db_close(db);
    }
    return 0;
}

static int open_same_new_file(void *arg)
{
    for (int i = 0; i < 20; i++) {
        char name[32];
        snprintf(name, sizeof name, "fresh%d.db", i);
        CHECK_EQ(wv_shard_each(open_each, (void *)file_url(name)), 0);
    }
    return 0;
}

static void test_shards_opening_the_same_new_file_at_once_all_succeed(void **state)
{
    assert_int_equal(run_in_rt(2, open_same_new_file, NULL), 0);
    assert_checks_passed();
}

/* ----------------------------------------------------------------- metrics */

/* The value of the sample line starting with `prefix` in the default
 * registry's exposition, or -1. */
static double sample(const char *prefix)
{
    wv_buf out = {0};
    double v = -1;
    if (wv_metrics_render(NULL, WV_METRICS_PROMETHEUS, &out) == 0 &&
        wv_buf_append(&out, "", 1) == 0) {
        const char *p = strstr(out.p, prefix);
        if (p)
            v = strtod(p + strlen(prefix), NULL);
    }
    wv_buf_free(&out);
    return v;
}

#define OK_LINE      "weave_db_queries_total{db=\"sqlite\",status=\"ok\"} "
#define ERROR_LINE   "weave_db_queries_total{db=\"sqlite\",status=\"error\"} "
#define TIMEOUT_LINE "weave_db_queries_total{db=\"sqlite\",status=\"timeout\"} "
#define DUR_LINE     "weave_db_query_duration_seconds_count{db=\"sqlite\"} "

static int metrics_counted(wv_db *db)
{
    CHECK_EQ(wv_db_exec(db, "SELECT 1"), 0); /* registered by now */
    double ok = sample(OK_LINE), err = sample(ERROR_LINE), tmo = sample(TIMEOUT_LINE);
    double dur = sample(DUR_LINE);
    CHECK(ok >= 1 && err >= 0 && tmo >= 0 && dur >= 1);
    CHECK_EQ(wv_db_exec(db, "SELECT 2"), 0);
    CHECK_EQ(wv_db_exec(db, "SELECT nothing FROM nowhere"), -EINVAL);
    int64_t n;
    int64_t old = wv_deadline_set(wv_after_ms(20));
    CHECK_EQ(wv_db_query_int(db, &n, FOREVER_SQL), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_EQ(sample(OK_LINE), ok + 1);
    CHECK_EQ(sample(ERROR_LINE), err + 1);
    CHECK_EQ(sample(TIMEOUT_LINE), tmo + 1);
    CHECK_EQ(sample(DUR_LINE), dur + 3);
    return 0;
}

static void test_queries_are_counted_and_timed_in_the_default_registry(void **state)
{
    run_db_opts(metrics_counted, "sqlite::memory:", (wv_db_opts){0});
}

/* ------------------------------------------------------------------- time */

static void test_times_format_and_parse_as_iso_8601(void **state)
{
    char s[32];
    assert_int_equal(db_time_format(0, s), 0);
    assert_string_equal(s, "1970-01-01T00:00:00.000000Z");
    assert_int_equal(db_time_format(-1, s), 0);
    assert_string_equal(s, "1969-12-31T23:59:59.999999Z");
    assert_int_equal(db_time_format(INT64_C(951782400000000), s), 0);
    assert_string_equal(s, "2000-02-29T00:00:00.000000Z");
    assert_int_equal(db_time_format(INT64_C(253402300799999999), s), 0);
    assert_string_equal(s, "9999-12-31T23:59:59.999999Z");
    assert_int_equal(db_time_format(INT64_C(253402300800000000), s), -ERANGE);
    assert_int_equal(db_time_format(-INT64_C(62167219200000000), s), 0);
    assert_string_equal(s, "0000-01-01T00:00:00.000000Z");
    assert_int_equal(db_time_format(-INT64_C(62167219200000001), s), -ERANGE);

    int64_t us = 1;
    const char *ok[] = {"1970-01-01T00:00:00Z",         "1970-01-01 00:00:00",
                        "1970-01-01t00:00:00z",         "1970-01-01T02:00:00+02:00",
                        "1970-01-01T02:00:00+02",       "1969-12-31T19:30:00-0430",
                        "1970-01-01 00:00:00.000000+00"};
    for (size_t i = 0; i < ARRAY_LEN(ok); i++) {
        us = 1;
        assert_int_equal(db_time_parse(ok[i], strlen(ok[i]), &us), 0);
        assert_int_equal(us, 0);
    }
    const char *frac = "2026-11-25 20:30:01.1234567+00";
    assert_int_equal(db_time_parse(frac, strlen(frac), &us), 0);
    assert_int_equal(us % 1000000, 123456);
    const char *bad[] = {"",
                         "1970-01-01",
                         "1970-13-01T00:00:00Z",
                         "1970-02-30T00:00:00Z",
                         "1971-02-29T00:00:00Z",
                         "1970-01-01T24:00:00Z",
                         "1970-01-01T00:00:00.Z",
                         "1970-01-01T00:00:00.1234567890Z",
                         "1970-01-01T00:00:00Q",
                         "1970-01-01T00:00:00+2",
                         "197x-01-01T00:00:00Z"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_int_equal(db_time_parse(bad[i], strlen(bad[i]), &us), -EINVAL);
    /* round trips */
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < 10000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t t = (int64_t)(x % UINT64_C(315537897600000000)) - INT64_C(62167219200000000);
        int64_t back = 0;
        assert_int_equal(db_time_format(t, s), 0);
        assert_int_equal(db_time_parse(s, strlen(s), &back), 0);
        assert_int_equal(back, t);
    }
}

/* ------------------------------------------------------------------ models */

typedef struct account {
    int64_t id;
    char name[64]; /* at most 50 */
    char email[32];
    double score;
    bool active;
    unsigned char avatar[8];
    size_t avatar_len;
    int64_t created_at;
    int not_a_column; /* members without a field are left alone */
} account;

static const wv_db_field account_fields[] = {
    WV_DB_FIELD(account, id, WV_DB_INT, WV_DB_PRIMARY_KEY | WV_DB_AUTOINCREMENT),
    WV_DB_TEXT_FIELD(account, name, 50, WV_DB_NOT_NULL),
    WV_DB_TEXT_FIELD(account, email, 0, WV_DB_NOT_NULL | WV_DB_UNIQUE),
    WV_DB_FIELD(account, score, WV_DB_FLOAT, 0),
    WV_DB_FIELD(account, active, WV_DB_BOOL, WV_DB_NOT_NULL),
    WV_DB_BLOB_FIELD(account, avatar, avatar_len, 0),
    WV_DB_FIELD(account, created_at, WV_DB_TIME, 0),
};

static const wv_db_model account_model = WV_DB_MODEL("accounts", account, account_fields);

static account make_account(const char *name, const char *email, double score, bool active)
{
    account a = {0};
    snprintf(a.name, sizeof a.name, "%s", name);
    snprintf(a.email, sizeof a.email, "%s", email);
    a.score = score;
    a.active = active;
    a.avatar_len = 3;
    memcpy(a.avatar, "\x01\x00\x02", 3);
    a.created_at = INT64_C(1764102601000123) + (int64_t)score;
    return a;
}

static bool same_account(const account *a, const account *b)
{
    return a->id == b->id && strcmp(a->name, b->name) == 0 && strcmp(a->email, b->email) == 0 &&
           a->score == b->score && a->active == b->active && a->avatar_len == b->avatar_len &&
           memcmp(a->avatar, b->avatar, a->avatar_len) == 0 && a->created_at == b->created_at;
}

static void test_model_sql_for_postgres_and_sqlite(void **state)
{
    wv_buf b = {0};
    assert_int_equal(db_model_check(&account_model), 0);

    assert_int_equal(db_sql_create_table(DB_POSTGRES, &account_model, &b), 0);
    assert_string_equal(b.p, "CREATE TABLE IF NOT EXISTS \"accounts\" ("
                             "\"id\" BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
                             "\"name\" TEXT NOT NULL, \"email\" TEXT NOT NULL UNIQUE, "
                             "\"score\" DOUBLE PRECISION, \"active\" BOOLEAN NOT NULL, "
                             "\"avatar\" BYTEA, \"created_at\" TIMESTAMPTZ)");
    wv_buf_reset(&b);
    assert_int_equal(db_sql_create_table(DB_SQLITE, &account_model, &b), 0);
    assert_string_equal(b.p, "CREATE TABLE IF NOT EXISTS \"accounts\" ("
                             "\"id\" INTEGER PRIMARY KEY AUTOINCREMENT, "
                             "\"name\" TEXT NOT NULL, \"email\" TEXT NOT NULL UNIQUE, "
                             "\"score\" REAL, \"active\" BOOLEAN NOT NULL, "
                             "\"avatar\" BLOB, \"created_at\" TEXT)");

    wv_buf_reset(&b);
    assert_int_equal(db_sql_insert(DB_POSTGRES, &account_model, false, &b), 0);
    assert_string_equal(b.p, "INSERT INTO \"accounts\" (\"name\", \"email\", \"score\", "
                             "\"active\", \"avatar\", \"created_at\") VALUES ($1, $2, $3, $4, $5, "
                             "$6) RETURNING \"id\"");
    wv_buf_reset(&b);
    assert_int_equal(db_sql_insert(DB_POSTGRES, &account_model, true, &b), 0);
    assert_string_equal(b.p, "INSERT INTO \"accounts\" (\"id\", \"name\", \"email\", \"score\", "
                             "\"active\", \"avatar\", \"created_at\") VALUES ($1, $2, $3, $4, $5, "
                             "$6, $7) RETURNING \"id\"");

    wv_buf_reset(&b);
    assert_int_equal(db_sql_get(DB_POSTGRES, &account_model, &b), 0);
    assert_string_equal(b.p, "SELECT \"id\", \"name\", \"email\", \"score\", \"active\", "
                             "\"avatar\", \"created_at\" FROM \"accounts\" WHERE \"id\" = $1");

    wv_buf_reset(&b);
    wv_db_filter_opts f = {
        .where = "active, name", .order_by = "-score,id", .limit = 10, .offset = 20};
    assert_int_equal(db_sql_filter(DB_POSTGRES, &account_model, &f, 0, &b), 0);
    assert_string_equal(b.p, "SELECT \"id\", \"name\", \"email\", \"score\", \"active\", "
                             "\"avatar\", \"created_at\" FROM \"accounts\" WHERE \"active\" = $1 "
                             "AND \"name\" = $2 ORDER BY \"score\" DESC, \"id\" LIMIT $3 OFFSET "
                             "$4");
    wv_buf_reset(&b);
    f = (wv_db_filter_opts){.where = "email,name,score", .offset = 5};
    assert_int_equal(db_sql_filter(DB_POSTGRES, &account_model, &f, 2, &b), 0);
    assert_string_equal(b.p, "SELECT \"id\", \"name\", \"email\", \"score\", \"active\", "
                             "\"avatar\", \"created_at\" FROM \"accounts\" WHERE \"email\" = $1 "
                             "AND \"name\" IS NULL AND \"score\" = $2 ORDER BY \"id\" OFFSET $3");
    wv_buf_reset(&b);
    assert_int_equal(db_sql_filter(DB_SQLITE, &account_model, &f, 2, &b), 0);
    assert_string_equal(b.p, "SELECT \"id\", \"name\", \"email\", \"score\", \"active\", "
                             "\"avatar\", \"created_at\" FROM \"accounts\" WHERE \"email\" = $1 "
                             "AND \"name\" IS NULL AND \"score\" = $2 ORDER BY \"id\" LIMIT -1 "
                             "OFFSET $3");
    wv_buf_reset(&b);
    assert_int_equal(db_sql_filter(DB_POSTGRES, &account_model, NULL, 0, &b), 0);
    assert_string_equal(b.p, "SELECT \"id\", \"name\", \"email\", \"score\", \"active\", "
                             "\"avatar\", \"created_at\" FROM \"accounts\" ORDER BY \"id\"");

    wv_buf_reset(&b);
    assert_int_equal(db_sql_update(DB_POSTGRES, &account_model, NULL, &b), 0);
    assert_string_equal(b.p, "UPDATE \"accounts\" SET \"name\" = $1, \"email\" = $2, \"score\" "
                             "= $3, \"active\" = $4, \"avatar\" = $5, \"created_at\" = $6 WHERE "
                             "\"id\" = $7");
    wv_buf_reset(&b);
    assert_int_equal(db_sql_update(DB_POSTGRES, &account_model, "score, active", &b), 0);
    assert_string_equal(b.p, "UPDATE \"accounts\" SET \"score\" = $1, \"active\" = $2 WHERE "
                             "\"id\" = $3");

    wv_buf_reset(&b);
    assert_int_equal(db_sql_delete(DB_POSTGRES, &account_model, &b), 0);
    assert_string_equal(b.p, "DELETE FROM \"accounts\" WHERE \"id\" = $1");

    /* names are checked, never spliced */
    wv_buf_reset(&b);
    f = (wv_db_filter_opts){.where = "name; DROP TABLE x"};
    assert_int_equal(db_sql_filter(DB_POSTGRES, &account_model, &f, 0, &b), -EINVAL);
    wv_buf_reset(&b);
    f = (wv_db_filter_opts){.order_by = "id DESC"};
    assert_int_equal(db_sql_filter(DB_POSTGRES, &account_model, &f, 0, &b), -EINVAL);
    wv_buf_reset(&b);
    assert_int_equal(db_sql_update(DB_POSTGRES, &account_model, "id", &b), -EINVAL);
    wv_buf_reset(&b);
    assert_int_equal(db_sql_update(DB_POSTGRES, &account_model, "", &b), -EINVAL);
    wv_buf_free(&b);
}

typedef struct keyed {
    char code[8];
    int64_t n;
} keyed;

static const wv_db_field keyed_fields[] = {
    WV_DB_TEXT_FIELD(keyed, code, 0, WV_DB_PRIMARY_KEY),
    WV_DB_FIELD(keyed, n, WV_DB_INT, 0),
};
static const wv_db_model keyed_model = WV_DB_MODEL("keyed", keyed, keyed_fields);

static void test_model_sql_for_a_text_primary_key(void **state)
{
    wv_buf b = {0};
    assert_int_equal(db_sql_create_table(DB_POSTGRES, &keyed_model, &b), 0);
    assert_string_equal(b.p, "CREATE TABLE IF NOT EXISTS \"keyed\" (\"code\" TEXT PRIMARY KEY "
                             "NOT NULL, \"n\" BIGINT)");
    wv_buf_reset(&b);
    assert_int_equal(db_sql_insert(DB_SQLITE, &keyed_model, true, &b), 0);
    assert_string_equal(
        b.p, "INSERT INTO \"keyed\" (\"code\", \"n\") VALUES ($1, $2) RETURNING \"code\"");
    wv_buf_free(&b);
}

static int models(wv_db *db)
{
    CHECK_EQ(wv_db_create_table(db, &account_model), 0);
    CHECK_EQ(wv_db_create_table(db, &account_model), 0); /* idempotent */
    account a = make_account("Alice", "alice@x", 3.5, true);
    a.not_a_column = 99;
    CHECK_EQ(wv_db_insert(db, &account_model, &a), 0);
    CHECK_EQ(a.id, 1);
    account b = make_account("Bob", "bob@x", 1.25, false);
    CHECK_EQ(wv_db_insert(db, &account_model, &b), 0);
    CHECK_EQ(b.id, 2);
    account c = make_account("Carol", "carol@x", 2, true);
    c.id = 10; /* an explicit key is kept */
    CHECK_EQ(wv_db_insert(db, &account_model, &c), 0);
    CHECK_EQ(c.id, 10);
    account d = make_account("Dave", "dave@x", 0, true);
    CHECK_EQ(wv_db_insert(db, &account_model, &d), 0);
    CHECK_EQ(d.id, 11);

    /* get */
    account got = {.not_a_column = 7};
    CHECK_EQ(wv_db_get(db, &account_model, wv_db_int(1), &got), 0);
    CHECK(same_account(&got, &a));
    CHECK_EQ(got.not_a_column, 7);
    account untouched = {.id = 555};
    CHECK_EQ(wv_db_get(db, &account_model, wv_db_int(404), &untouched), -ENOENT);
    CHECK_MSG("no row");
    CHECK_EQ(untouched.id, 555);

    /* filter */
    account *list = NULL;
    size_t n = 99;
    CHECK_EQ(wv_db_filter(db, &account_model, NULL, &list, &n), 0);
    CHECK_EQ(n, 4);
    CHECK(list && list[0].id == 1 && list[1].id == 2 && list[2].id == 10 && list[3].id == 11);
    CHECK(list && same_account(&list[2], &c));
    free(list);
    CHECK_EQ(wv_db_filter(db, &account_model,
                          &(wv_db_filter_opts){.where = "active",
                                               .args = (wv_db_value[]){wv_db_bool(true)},
                                               .order_by = "-score"},
                          &list, &n),
             0);
    CHECK_EQ(n, 3);
    CHECK(list && strcmp(list[0].name, "Alice") == 0 && strcmp(list[1].name, "Carol") == 0 &&
          strcmp(list[2].name, "Dave") == 0);
    free(list);
    CHECK_EQ(wv_db_filter(db, &account_model,
                          &(wv_db_filter_opts){
                              .where = "active,name",
                              .args = (wv_db_value[]){wv_db_bool(true), wv_db_text("Carol")}},
                          &list, &n),
             0);
    CHECK_EQ(n, 1);
    CHECK(list && list[0].id == 10);
    free(list);
    CHECK_EQ(wv_db_filter(db, &account_model,
                          &(wv_db_filter_opts){.order_by = "-id", .limit = 2, .offset = 1}, &list,
                          &n),
             0);
    CHECK_EQ(n, 2);
    CHECK(list && list[0].id == 10 && list[1].id == 2);
    free(list);
    CHECK_EQ(wv_db_filter(db, &account_model, &(wv_db_filter_opts){.offset = 3}, &list, &n), 0);
    CHECK_EQ(n, 1);
    free(list);
    list = (account *)&n;
    CHECK_EQ(wv_db_filter(db, &account_model,
                          &(wv_db_filter_opts){.where = "name",
                                               .args = (wv_db_value[]){wv_db_text("Nobody")}},
                          &list, &n),
             0);
    CHECK_EQ(n, 0);
    CHECK(list == NULL);
    CHECK_EQ(wv_db_filter(db, &account_model, &(wv_db_filter_opts){.where = "nope"}, &list, &n),
             -EINVAL);
    CHECK_EQ(wv_db_filter(db, &account_model, &(wv_db_filter_opts){.where = "name"}, &list, &n),
             -EINVAL);
    CHECK_EQ(wv_db_filter(db, &account_model, &(wv_db_filter_opts){.limit = -1}, &list, &n),
             -EINVAL);

    /* update */
    a.score = 9.75;
    snprintf(a.name, sizeof a.name, "Alice B.");
    CHECK_EQ(wv_db_update(db, &account_model, &a, NULL), 0);
    CHECK_EQ(wv_db_get(db, &account_model, wv_db_int(1), &got), 0);
    CHECK(same_account(&got, &a));
    b.score = 100;
    snprintf(b.name, sizeof b.name, "ignored");
    CHECK_EQ(wv_db_update(db, &account_model, &b, "score"), 0);
    CHECK_EQ(wv_db_get(db, &account_model, wv_db_int(2), &got), 0);
    CHECK(got.score == 100);
    CHECK_STR_EQ(got.name, "Bob");
    account ghost = make_account("Ghost", "ghost@x", 0, false);
    ghost.id = 777;
    CHECK_EQ(wv_db_update(db, &account_model, &ghost, NULL), -ENOENT);
    CHECK_EQ(wv_db_update(db, &account_model, &ghost, "id"), -EINVAL);
    CHECK_EQ(wv_db_update(db, &account_model, &ghost, "bogus"), -EINVAL);
    /* a duplicate UNIQUE value */
    snprintf(b.email, sizeof b.email, "alice@x");
    CHECK_EQ(wv_db_update(db, &account_model, &b, "email"), -EEXIST);
    account twin = make_account("Twin", "alice@x", 0, false);
    CHECK_EQ(wv_db_insert(db, &account_model, &twin), -EEXIST);
    if (strcmp(wv_db_backend(db), "postgres") == 0)
        CHECK_MSG("postgres: 23505");
    else
        CHECK_MSG("UNIQUE constraint failed: accounts.email");

    /* delete */
    CHECK_EQ(wv_db_delete(db, &account_model, wv_db_int(2)), 0);
    CHECK_EQ(wv_db_get(db, &account_model, wv_db_int(2), &got), -ENOENT);
    CHECK_EQ(wv_db_delete(db, &account_model, wv_db_int(2)), -ENOENT);

    /* a NULL written by other code reads as the zero value, and matches IS NULL */
    CHECK_EQ(wv_db_exec(db,
                        "INSERT INTO accounts(id, name, email, active) VALUES (50, 'N', 'n@x', $1)",
                        wv_db_bool(false)),
             1);
    account nul = {.score = 1, .avatar_len = 5, .created_at = 9};
    CHECK_EQ(wv_db_get(db, &account_model, wv_db_int(50), &nul), 0);
    CHECK(nul.score == 0 && nul.avatar_len == 0 && nul.created_at == 0);
    CHECK_EQ(
        wv_db_filter(db, &account_model,
                     &(wv_db_filter_opts){.where = "score", .args = (wv_db_value[]){wv_db_null()}},
                     &list, &n),
        0);
    CHECK_EQ(n, 1);
    CHECK(list && list[0].id == 50);
    free(list);

    /* models inside a transaction */
    wv_db *tx;
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    account e = make_account("Eve", "eve@x", 5, true);
    CHECK_EQ(wv_db_insert(tx, &account_model, &e), 0);
    CHECK_EQ(wv_db_get(tx, &account_model, wv_db_int(e.id), &got), 0);
    CHECK_EQ(wv_db_rollback(tx), 0);
    CHECK_EQ(wv_db_get(db, &account_model, wv_db_int(e.id), &got), -ENOENT);

    /* a text primary key */
    CHECK_EQ(wv_db_create_table(db, &keyed_model), 0);
    keyed k = {.code = "abc", .n = 3}, kk = {0};
    CHECK_EQ(wv_db_insert(db, &keyed_model, &k), 0);
    CHECK_EQ(wv_db_get(db, &keyed_model, wv_db_text("abc"), &kk), 0);
    CHECK_STR_EQ(kk.code, "abc");
    CHECK_EQ(kk.n, 3);
    CHECK_EQ(wv_db_insert(db, &keyed_model, &k), -EEXIST);
    CHECK_EQ(wv_db_delete(db, &keyed_model, wv_db_text("abc")), 0);
    return 0;
}

static void test_models_create_insert_get_filter_update_delete(void **state)
{
    run_db_all(models);
}

static int too_long(wv_db *db)
{
    CHECK_EQ(wv_db_create_table(db, &account_model), 0);
    account a = make_account("", "long@x", 1, true);
    memset(a.name, 'x', 51); /* max_len is 50 */
    CHECK_EQ(wv_db_insert(db, &account_model, &a), -EMSGSIZE);
    CHECK_MSG("accounts.name: a text of 51 bytes, longer than the field's 50");
    memset(a.email, 'e', sizeof a.email); /* no NUL at all */
    a.name[50] = '\0';
    CHECK_EQ(wv_db_insert(db, &account_model, &a), -EMSGSIZE);
    CHECK_MSG("no NUL");
    snprintf(a.email, sizeof a.email, "ok@x");
    a.avatar_len = 9; /* the array has 8 bytes */
    CHECK_EQ(wv_db_insert(db, &account_model, &a), -EMSGSIZE);
    CHECK_MSG("blob of 9 bytes");
    CHECK_EQ(count_rows(db, "accounts"), 0);
    a.avatar_len = 8;
    CHECK_EQ(wv_db_insert(db, &account_model, &a), 0); /* 50 bytes fit */
    memset(a.name, 'y', 60);
    a.name[60] = '\0';
    CHECK_EQ(wv_db_update(db, &account_model, &a, "name"), -EMSGSIZE);
    /* stored by other code, too long for the field: an error, not a truncation */
    char z[59];
    memset(z, 'z', 58);
    z[58] = '\0';
    CHECK_EQ(wv_db_exec(db, "UPDATE accounts SET name = $1 WHERE id = $2", wv_db_text(z),
                        wv_db_int(a.id)),
             1);
    account got = {0};
    CHECK_EQ(wv_db_get(db, &account_model, wv_db_int(a.id), &got), -EMSGSIZE);
    CHECK_MSG("stored text has 58 bytes");
    CHECK_EQ(got.id, 0);
    return 0;
}

static void test_a_text_too_long_for_its_field_is_emsgsize_never_truncated(void **state)
{
    run_db_opts(too_long, "sqlite::memory:", (wv_db_opts){0});
}

typedef struct thing {
    int64_t id;
    char s[4];
    int32_t small;
} thing;

static int bad_models(wv_db *db)
{
    const wv_db_field no_key[] = {WV_DB_FIELD(thing, id, WV_DB_INT, 0)};
    const wv_db_model m1 = WV_DB_MODEL("things", thing, no_key);
    CHECK_EQ(wv_db_create_table(db, &m1), -EINVAL);
    CHECK_MSG("0 primary keys");
    const wv_db_field two_keys[] = {WV_DB_FIELD(thing, id, WV_DB_INT, WV_DB_PRIMARY_KEY),
                                    WV_DB_TEXT_FIELD(thing, s, 0, WV_DB_PRIMARY_KEY)};
    const wv_db_model m2 = WV_DB_MODEL("things", thing, two_keys);
    CHECK_EQ(wv_db_create_table(db, &m2), -EINVAL);
    const wv_db_field text_auto[] = {
        WV_DB_TEXT_FIELD(thing, s, 0, WV_DB_PRIMARY_KEY | WV_DB_AUTOINCREMENT)};
    const wv_db_model m3 = WV_DB_MODEL("things", thing, text_auto);
    CHECK_EQ(wv_db_insert(db, &m3, &(thing){0}), -EINVAL);
    CHECK_MSG("AUTOINCREMENT");
    const wv_db_field wrong_size[] = {WV_DB_FIELD(thing, id, WV_DB_INT, WV_DB_PRIMARY_KEY),
                                      WV_DB_FIELD(thing, small, WV_DB_INT, 0)};
    const wv_db_model m4 = WV_DB_MODEL("things", thing, wrong_size);
    CHECK_EQ(wv_db_get(db, &m4, wv_db_int(1), &(thing){0}), -EINVAL);
    CHECK_MSG("member of 4 bytes");
    const wv_db_field ok[] = {WV_DB_FIELD(thing, id, WV_DB_INT, WV_DB_PRIMARY_KEY)};
    const wv_db_model bad_table = WV_DB_MODEL("things\"; DROP", thing, ok);
    CHECK_EQ(wv_db_create_table(db, &bad_table), -EINVAL);
    CHECK_MSG("not an identifier");
    const wv_db_field too_long_max[] = {WV_DB_FIELD(thing, id, WV_DB_INT, WV_DB_PRIMARY_KEY),
                                        WV_DB_TEXT_FIELD(thing, s, 4, 0)};
    const wv_db_model m5 = WV_DB_MODEL("things", thing, too_long_max);
    CHECK_EQ(wv_db_filter(db, &m5, NULL, &(thing *){NULL}, &(size_t){0}), -EINVAL);
    const wv_db_field twice[] = {WV_DB_FIELD(thing, id, WV_DB_INT, WV_DB_PRIMARY_KEY),
                                 WV_DB_FIELD(thing, id, WV_DB_INT, 0)};
    const wv_db_model m6 = WV_DB_MODEL("things", thing, twice);
    CHECK_EQ(wv_db_update(db, &m6, &(thing){0}, NULL), -EINVAL);
    CHECK_EQ(wv_db_delete(db, &m6, wv_db_int(1)), -EINVAL);
    CHECK_EQ(wv_db_create_table(db, NULL), -EINVAL);
    CHECK_EQ(wv_db_create_table(NULL, &account_model), -EINVAL);
    CHECK_EQ(wv_db_insert(db, &account_model, NULL), -EINVAL);
    CHECK_EQ(count_rows(db, "sqlite_master"), 0);
    return 0;
}

static void test_a_badly_declared_model_is_einval(void **state)
{
    run_db_opts(bad_models, "sqlite::memory:", (wv_db_opts){0});
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        TEST(test_open_memory_and_a_file_in_wal_mode_then_close),
        TEST(test_open_bad_url_or_options_returns_einval_with_a_message),
        TEST(test_open_postgres_url_connects_and_refuses_bad_credentials),
        TEST(test_postgres_engine_types_errors_transactions_and_deadlines),
        TEST(test_open_outside_a_fiber_returns_eperm),
        TEST(test_on_connect_runs_on_every_connection),
        TEST(test_on_connect_error_fails_the_open),
        TEST(test_every_parameter_type_round_trips_through_its_accessor),
        TEST(test_accessors_refuse_a_mismatched_type_or_null_naming_the_column),
        TEST(test_dollar_placeholders_bind_by_number_and_literals_stay_text),
        TEST(test_argv_forms_take_an_array_and_a_count),
        TEST(test_fetch_fetchrow_fetchval_and_execute_shapes),
        TEST(test_a_100k_row_result_comes_back_whole),
        TEST(test_errors_map_to_errno_with_sqlites_message),
        TEST(test_a_write_lock_held_elsewhere_is_ebusy_after_the_busy_timeout),
        TEST(test_sqlstates_map_to_the_same_errno_as_sqlite_codes),
        TEST(test_commit_keeps_and_rollback_drops_a_transactions_writes),
        TEST(test_a_failed_statement_fails_its_transaction_and_commit_rolls_back),
        TEST(test_transaction_helper_commits_or_rolls_back_on_failure),
        TEST(test_nested_transactions_are_savepoints),
        TEST(test_using_the_database_while_holding_its_writer_is_edeadlk),
        TEST(test_a_transaction_abandoned_by_a_cancelled_fiber_never_leaks),
        TEST(test_deadline_interrupts_a_long_query_and_the_connection_stays_usable),
        TEST(test_cancellation_interrupts_a_long_query),
        TEST(test_the_loop_keeps_ticking_while_a_slow_query_runs),
        TEST(test_1000_concurrent_fibers_read_and_write_a_wal_file),
        TEST(test_statements_still_run_when_the_cache_evicts),
        TEST(test_reads_in_flight_together_see_their_own_committed_writes),
        TEST(test_a_deadline_on_a_lane_interrupts_only_its_own_statement),
        TEST(test_a_database_is_used_from_the_shard_that_opened_it),
        TEST(test_queries_are_counted_and_timed_in_the_default_registry),
        TEST(test_times_format_and_parse_as_iso_8601),
        TEST(test_model_sql_for_postgres_and_sqlite),
        TEST(test_model_sql_for_a_text_primary_key),
        TEST(test_models_create_insert_get_filter_update_delete),
        TEST(test_a_text_too_long_for_its_field_is_emsgsize_never_truncated),
        TEST(test_a_badly_declared_model_is_einval),
        TEST(test_shards_opening_the_same_new_file_at_once_all_succeed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
