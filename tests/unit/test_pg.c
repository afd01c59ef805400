/*
 * The PostgreSQL client against a real server: $WEAVE_TEST_PG_URL
 * (scripts/pg_test_server.sh start prints one). Without it the test fails
 * and says so, unless WEAVE_TEST_PG_SKIP=1. The restart test also needs
 * WEAVE_TEST_PG_CTL (scripts/pg_test_server.sh) and WEAVE_TEST_PG_DIR.
 *
 * Each test makes its own tables (named with the process id, so two builds
 * can run side by side on one server) and drops them.
 */
#include "harness.h"

#include <math.h>
#include <stdarg.h>

#include "weave/buf.h"
#include "weave/metrics.h"
#include "weave/pg.h"

static const char *url;

/* "name_<pid>": a table of this test run. */
static const char *tname(char *buf, size_t n, const char *base)
{
    snprintf(buf, n, "wvt_%s_%d", base, (int)getpid());
    return buf;
}

/* SQL with a table name put in (identifiers cannot be parameters). */
static const char *sqlf(char *buf, size_t n, const char *fmt, ...) WV_PRINTF(3, 4);
static const char *sqlf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    return buf;
}

static wv_pg_conn *connect_ok(const wv_pg_opts *opts)
{
    wv_pg_conn *c = NULL;
    int rc = wv_pg_connect(url, opts, &c);
    if (!CHECK_EQ(rc, 0))
        fprintf(stderr, "connect: %s\n", wv_errmsg());
    return c;
}

/* A single integer from a query (INT64_MIN on failure). */
static int64_t query_int(wv_pg_conn *c, const char *sql, const wv_pg_arg *args, int nargs)
{
    wv_pg_result *r;
    int n = wv_pg_query_args(c, &r, sql, args, nargs);
    if (n < 1) {
        fprintf(stderr, "query_int(%s): %d %s\n", sql, n, wv_errmsg());
        wv_pg_result_free(r);
        return INT64_MIN;
    }
    int64_t v = INT64_MIN;
    if (wv_pg_get_int(r, 0, 0, &v) < 0)
        fprintf(stderr, "query_int(%s): %s\n", sql, wv_errmsg());
    wv_pg_result_free(r);
    return v;
}

/* Is the connection inside a transaction block? SAVEPOINT says: it works
 * in one (1; released at once), fails with 25P01 outside (0), 25P02 in a
 * failed one (2). */
static int tx_state(wv_pg_conn *c)
{
    int rc = wv_pg_exec_args(c, "SAVEPOINT wv_probe", NULL, 0);
    char st[6];
    if (rc == 0) {
        wv_pg_exec_args(c, "RELEASE SAVEPOINT wv_probe", NULL, 0);
        return 1;
    }
    if (wv_pg_sqlstate(st) && strcmp(st, "25P01") == 0)
        return 0;
    if (wv_pg_sqlstate(st) && strcmp(st, "25P02") == 0)
        return 2;
    fprintf(stderr, "tx_state: %d %s\n", rc, wv_errmsg());
    return -1;
}

#define QUERY_INT(c, sql, ...)                                                                     \
    query_int((c), (sql), WV_PG__ARGS(__VA_ARGS__), WV_PG__NARGS(__VA_ARGS__))

static bool errmsg_has(const char *needle)
{
    if (strstr(wv_errmsg(), needle))
        return true;
    fprintf(stderr, "errmsg \"%s\" lacks \"%s\"\n", wv_errmsg(), needle);
    return false;
}

/* ------------------------------------------------------------ connecting */

static int connect_good_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL);
    REQUIRE(c);
    CHECK(wv_pg_conn_ok(c));
    int pid = wv_pg_conn_pid(c);
    CHECK(pid > 0);
    CHECK_EQ(QUERY_INT(c, "SELECT pg_backend_pid()"), pid);
    CHECK_EQ(QUERY_INT(c, "SELECT 1 + 1"), 2);
    wv_pg_close(c);
    return 0;
}

static void test_connect_succeeds_and_reports_the_backend_pid(void **state)
{
    assert_int_equal(run_in_rt(1, connect_good_body, NULL), 0);
    assert_checks_passed();
}

static int connect_wrong_password_body(void *arg)
{
    char bad[600];
    snprintf(bad, sizeof bad, "%s%spassword=wrong-password", url, strchr(url, '?') ? "&" : "?");
    wv_pg_conn *c = (wv_pg_conn *)1;
    CHECK_EQ(wv_pg_connect(bad, NULL, &c), -EACCES);
    CHECK(c == NULL);
    CHECK(errmsg_has("password authentication failed"));
    return 0;
}

static void test_connect_with_a_wrong_password_is_eacces(void **state)
{
    assert_int_equal(run_in_rt(1, connect_wrong_password_body, NULL), 0);
    assert_checks_passed();
}

/* A port nothing listens on (1, where none could be had). */
static uint16_t free_port(void)
{
    int port = loopback_free_port();
    return port > 0 ? (uint16_t)port : 1;
}

static int connect_refused_body(void *arg)
{
    char u[200];
    snprintf(u, sizeof u, "postgres://app:app@127.0.0.1:%u/appdb", (unsigned)free_port());
    wv_pg_conn *c;
    int64_t t0 = wv_now();
    CHECK_EQ(wv_pg_connect(u, NULL, &c), -ECONNREFUSED);
    CHECK(errmsg_has("refused"));
    CHECK(ms_since(t0) < 2000);
    return 0;
}

static void test_connect_to_a_closed_port_is_econnrefused(void **state)
{
    assert_int_equal(run_in_rt(1, connect_refused_body, NULL), 0);
    assert_checks_passed();
}

static int connect_localhost_body(void *arg)
{
    /* a host name: resolved on the offload pool, every address tried */
    const char *at = strstr(url, "@127.0.0.1:");
    if (!at) {
        fprintf(stderr, "(URL has no @127.0.0.1: host; localhost check skipped)\n");
        return 0;
    }
    char u[600];
    snprintf(u, sizeof u, "%.*s@localhost:%s", (int)(at - url), url, at + strlen("@127.0.0.1:"));
    wv_pg_conn *c;
    REQUIRE_EQ(wv_pg_connect(u, NULL, &c), 0);
    CHECK_EQ(QUERY_INT(c, "SELECT 3"), 3);
    wv_pg_close(c);
    CHECK_EQ(wv_pg_connect("postgres://app:app@no-such-host.invalid:5432/appdb", NULL, &c),
             -EHOSTUNREACH);
    CHECK(errmsg_has("no-such-host.invalid"));
    return 0;
}

static void test_connect_resolves_host_names_off_the_loop(void **state)
{
    assert_int_equal(run_in_rt(1, connect_localhost_body, NULL), 0);
    assert_checks_passed();
}

static int connect_silent_body(void *arg)
{
    uint16_t port = 0;
    int lfd = listen_loopback(&port); /* accepts (backlog) but never answers */
    REQUIRE(lfd >= 0);
    char u[200];
    snprintf(u, sizeof u, "postgres://app:app@127.0.0.1:%u/appdb?sslmode=disable", (unsigned)port);
    wv_pg_conn *c;
    int64_t t0 = wv_now();
    CHECK_EQ(wv_pg_connect(u, &(wv_pg_opts){.connect_timeout_ms = 300}, &c), -ETIMEDOUT);
    CHECK_BETWEEN(ms_since(t0), 250, 1500);
    /* the fiber's own deadline applies too */
    t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(150));
    CHECK_EQ(wv_pg_connect(u, NULL, &c), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_BETWEEN(ms_since(t0), 100, 1000);
    wv_close(lfd);
    CHECK_EQ(wv_pg_connect("postgres://[::1", NULL, &c), -EINVAL);
    return 0;
}

static void test_connect_honours_timeouts_and_rejects_bad_urls(void **state)
{
    assert_int_equal(run_in_rt(1, connect_silent_body, NULL), 0);
    assert_checks_passed();
}

/* ---------------------------------------------------------------- values */

static int nulls_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL);
    REQUIRE(c);
    wv_pg_result *r;
    REQUIRE_EQ(wv_pg_query(c, &r, "SELECT NULL::int AS a, 5 AS b, NULL::text AS c"), 1);
    CHECK_EQ(wv_pg_nrows(r), 1);
    CHECK_EQ(wv_pg_ncols(r), 3);
    CHECK_STR_EQ(wv_pg_colname(r, 1), "b");
    CHECK(wv_pg_colname(r, 3) == NULL);
    CHECK_EQ(wv_pg_colnum(r, "c"), 2);
    CHECK_EQ(wv_pg_colnum(r, "zz"), -ENOENT);
    CHECK(wv_pg_isnull(r, 0, 0));
    CHECK(!wv_pg_isnull(r, 0, 1));
    CHECK(wv_pg_isnull(r, 0, 2));
    CHECK(wv_pg_value(r, 0, 0) == NULL);
    CHECK_STR_EQ(wv_pg_value(r, 0, 1), "5");
    int64_t v = 42;
    CHECK_EQ(wv_pg_get_int(r, 0, 0, &v), -ENODATA);
    CHECK(errmsg_has("column 0 (a) is NULL"));
    CHECK_EQ(v, 42);
    wv_str s;
    CHECK_EQ(wv_pg_get_text(r, 0, 2, &s), -ENODATA);
    CHECK_EQ(wv_pg_get_int(r, 0, 1, &v), 0);
    CHECK_EQ(v, 5);
    wv_pg_result_free(r);

    /* NULL arguments */
    REQUIRE_EQ(wv_pg_query(c, &r, "SELECT $1::int IS NULL, $2::text IS NULL, $3::text", WV_PG_NULL,
                           WV_PG_TEXT(NULL), WV_PG_TEXT("x")),
               1);
    bool b1 = false, b2 = false;
    CHECK_EQ(wv_pg_get_bool(r, 0, 0, &b1), 0);
    CHECK_EQ(wv_pg_get_bool(r, 0, 1, &b2), 0);
    CHECK(b1 && b2);
    wv_pg_result_free(r);
    wv_pg_close(c);
    return 0;
}

static void test_nulls_read_as_nulls_and_typed_reads_say_enodata(void **state)
{
    assert_int_equal(run_in_rt(1, nulls_body, NULL), 0);
    assert_checks_passed();
}

static const char *typed_sql =
    "SELECT 1::int2 AS a, 2::int4 AS b, (-3)::int8 AS c, 4::oid AS d, 1.5::float4 AS e,"
    " 2.25::float8 AS f, 3.125::numeric AS g, true AS h, 'hé'::text AS i, 'v'::varchar AS j,"
    " 'c'::char(3) AS k, '{\"a\": 1}'::json AS l, '{\"b\": 2}'::jsonb AS m,"
    " '\\x00ff10'::bytea AS n, '2024-01-02 03:04:05.123456'::timestamp AS o,"
    " '2024-01-02 03:04:05.5+02'::timestamptz AS p, '1970-01-02'::date AS q,"
    " 'infinity'::timestamp AS r, '-infinity'::timestamptz AS s,"
    " '0044-03-15 12:00:00 BC'::timestamp AS t, 'NaN'::float8 AS u, 'Infinity'::numeric AS v,"
    " (extract(epoch from '2024-01-02 03:04:05.123456'::timestamp) * 1000000)::int8 AS o_us,"
    " (extract(epoch from '2024-01-02 03:04:05.5+02'::timestamptz) * 1000000)::int8 AS p_us,"
    " (extract(epoch from '0044-03-15 12:00:00 BC'::timestamp) * 1000000)::int8 AS t_us,"
    " now() AS w, (extract(epoch from now()) * 1000000)::int8 AS w_us";

static int typed_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL);
    REQUIRE(c);
    wv_pg_result *r;
    REQUIRE_EQ(wv_pg_query(c, &r, typed_sql), 1);
    CHECK_EQ(wv_pg_coltype(r, 0), 21);  /* int2 */
    CHECK_EQ(wv_pg_coltype(r, 7), 16);  /* bool */
    CHECK_EQ(wv_pg_coltype(r, 13), 17); /* bytea */
    CHECK_EQ(wv_pg_coltype(r, 15), 1184);
    CHECK_EQ(wv_pg_coltype(r, 99), 0);
    int64_t i;
    CHECK_EQ(wv_pg_get_int(r, 0, 0, &i), 0);
    CHECK_EQ(i, 1);
    CHECK_EQ(wv_pg_get_int(r, 0, 1, &i), 0);
    CHECK_EQ(i, 2);
    CHECK_EQ(wv_pg_get_int(r, 0, 2, &i), 0);
    CHECK_EQ(i, -3);
    CHECK_EQ(wv_pg_get_int(r, 0, 3, &i), 0);
    CHECK_EQ(i, 4);
    double f;
    CHECK_EQ(wv_pg_get_float(r, 0, 4, &f), 0);
    CHECK(f == 1.5);
    CHECK_EQ(wv_pg_get_float(r, 0, 5, &f), 0);
    CHECK(f == 2.25);
    CHECK_EQ(wv_pg_get_float(r, 0, 6, &f), 0);
    CHECK(f == 3.125);
    CHECK_EQ(wv_pg_get_float(r, 0, 2, &f), 0); /* integers read as numbers too */
    CHECK(f == -3.0);
    CHECK_EQ(wv_pg_get_float(r, 0, 20, &f), 0);
    CHECK(isnan(f));
    CHECK_EQ(wv_pg_get_float(r, 0, 21, &f), 0);
    CHECK(isinf(f) && f > 0);
    bool b = false;
    CHECK_EQ(wv_pg_get_bool(r, 0, 7, &b), 0);
    CHECK(b);
    wv_str s;
    CHECK_EQ(wv_pg_get_text(r, 0, 8, &s), 0);
    CHECK(s.n == 3 && memcmp(s.p, "hé", 3) == 0);
    CHECK_EQ(wv_pg_get_text(r, 0, 9, &s), 0);
    CHECK(wv_str_eq_cstr(s, "v"));
    CHECK_EQ(wv_pg_get_text(r, 0, 10, &s), 0);
    CHECK(wv_str_eq_cstr(s, "c  "));
    CHECK_EQ(wv_pg_get_text(r, 0, 11, &s), 0);
    CHECK(wv_str_eq_cstr(s, "{\"a\": 1}"));
    CHECK_EQ(wv_pg_get_text(r, 0, 12, &s), 0);
    CHECK(wv_str_eq_cstr(s, "{\"b\": 2}"));
    CHECK_EQ(wv_pg_get_bytes(r, 0, 13, &s), 0);
    CHECK(s.n == 3 && memcmp(s.p, "\x00\xff\x10", 3) == 0);
    wv_str s2;
    CHECK_EQ(wv_pg_get_bytes(r, 0, 13, &s2), 0); /* decoded once, kept */
    CHECK(s2.p == s.p);
    int64_t ts, want;
    CHECK_EQ(wv_pg_get_int(r, 0, 22, &want), 0);
    CHECK_EQ(wv_pg_get_timestamp(r, 0, 14, &ts), 0);
    CHECK_EQ(ts, want);
    CHECK_EQ(ts, INT64_C(1704164645123456));
    CHECK_EQ(wv_pg_get_int(r, 0, 23, &want), 0);
    CHECK_EQ(wv_pg_get_timestamp(r, 0, 15, &ts), 0);
    CHECK_EQ(ts, want);
    CHECK_EQ(ts, INT64_C(1704157445500000));
    CHECK_EQ(wv_pg_get_timestamp(r, 0, 16, &ts), 0);
    CHECK_EQ(ts, INT64_C(86400000000));
    CHECK_EQ(wv_pg_get_timestamp(r, 0, 17, &ts), 0);
    CHECK_EQ(ts, INT64_MAX);
    CHECK_EQ(wv_pg_get_timestamp(r, 0, 18, &ts), 0);
    CHECK_EQ(ts, INT64_MIN);
    CHECK_EQ(wv_pg_get_int(r, 0, 24, &want), 0);
    CHECK_EQ(wv_pg_get_timestamp(r, 0, 19, &ts), 0);
    CHECK_EQ(ts, want);
    CHECK_EQ(wv_pg_get_int(r, 0, 26, &want), 0);
    CHECK_EQ(wv_pg_get_timestamp(r, 0, 25, &ts), 0);
    CHECK_EQ(ts, want);
    wv_pg_result_free(r);

    /* the same under another session time zone */
    REQUIRE_EQ(wv_pg_exec(c, "SET TIME ZONE 'Asia/Kolkata'"), 0);
    REQUIRE_EQ(wv_pg_query(c, &r,
                           "SELECT '2024-01-02 03:04:05.5+02'::timestamptz::text, "
                           "'2024-01-02 03:04:05.5+02'::timestamptz"),
               1);
    CHECK(strstr(wv_pg_value(r, 0, 0), "+05:30") != NULL);
    CHECK_EQ(wv_pg_get_timestamp(r, 0, 1, &ts), 0);
    CHECK_EQ(ts, INT64_C(1704157445500000));
    wv_pg_result_free(r);
    wv_pg_close(c);
    return 0;
}

static void test_typed_accessors_read_every_type(void **state)
{
    assert_int_equal(run_in_rt(1, typed_body, NULL), 0);
    assert_checks_passed();
}

static int mismatch_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL);
    REQUIRE(c);
    wv_pg_result *r;
    REQUIRE_EQ(wv_pg_query(c, &r, typed_sql), 1);
    int64_t i = 77;
    double f;
    bool b;
    wv_str s;
    CHECK_EQ(wv_pg_get_int(r, 0, 8, &i), -EDOM);
    CHECK(errmsg_has("column 8 (i) is text, not an integer"));
    CHECK_EQ(i, 77);
    CHECK_EQ(wv_pg_get_int(r, 0, 5, &i), -EDOM);
    CHECK(errmsg_has("(f) is double precision, not an integer"));
    CHECK_EQ(wv_pg_get_float(r, 0, 8, &f), -EDOM);
    CHECK(errmsg_has("not a number"));
    CHECK_EQ(wv_pg_get_bool(r, 0, 1, &b), -EDOM);
    CHECK(errmsg_has("(b) is integer, not a boolean"));
    CHECK_EQ(wv_pg_get_text(r, 0, 1, &s), -EDOM);
    CHECK(errmsg_has("(b) is integer, not text"));
    CHECK_EQ(wv_pg_get_bytes(r, 0, 8, &s), -EDOM);
    CHECK(errmsg_has("(i) is text, not bytea"));
    CHECK_EQ(wv_pg_get_timestamp(r, 0, 2, &i), -EDOM);
    CHECK(errmsg_has("(c) is bigint, not a timestamp"));
    CHECK_EQ(wv_pg_get_text(r, 0, 13, &s), -EDOM);
    CHECK_EQ(wv_pg_get_int(r, 1, 0, &i), -ERANGE);
    CHECK(errmsg_has("row 1 out of range"));
    CHECK_EQ(wv_pg_get_int(r, 0, 99, &i), -ERANGE);
    CHECK_EQ(wv_pg_get_int(r, -1, 0, &i), -ERANGE);
    CHECK(!wv_pg_isnull(r, 5, 0));
    CHECK(wv_pg_value(r, 0, 99) == NULL);
    /* the text form of anything */
    CHECK_STR_EQ(wv_pg_value(r, 0, 1), "2");
    CHECK_STR_EQ(wv_pg_value(r, 0, 13), "\\x00ff10");
    wv_pg_result_free(r);
    wv_pg_close(c);
    return 0;
}

static void test_typed_accessors_refuse_other_types_with_edom(void **state)
{
    assert_int_equal(run_in_rt(1, mismatch_body, NULL), 0);
    assert_checks_passed();
}

static int args_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL);
    REQUIRE(c);
    const char *evil = "it's'; DROP TABLE pg_class; --";
    const int64_t ts = INT64_C(1704164645123456);
    wv_pg_result *r;
    int n = wv_pg_query(c, &r,
                        "SELECT $1::int8, $2::float8, $3::bool, $4::text, $5::bytea, "
                        "$6::timestamptz, $7::text, $8::float8 = 'NaN', $9::float8, $10::int4, "
                        "$11::timestamp",
                        WV_PG_INT(INT64_MIN), WV_PG_FLOAT(0.1), WV_PG_BOOL(false), WV_PG_TEXT(evil),
                        WV_PG_BYTES("\0\1\2\xff", 4), WV_PG_TIMESTAMP(ts), WV_PG_TEXTN("abcdef", 3),
                        WV_PG_FLOAT(NAN), WV_PG_FLOAT(-INFINITY), WV_PG_INT(7),
                        WV_PG_TIMESTAMP(INT64_C(-62135596800000000) - INT64_C(86400000000)));
    REQUIRE_EQ(n, 1);
    int64_t i;
    double f;
    bool b = true;
    wv_str s;
    CHECK_EQ(wv_pg_get_int(r, 0, 0, &i), 0);
    CHECK(i == INT64_MIN);
    CHECK_EQ(wv_pg_get_float(r, 0, 1, &f), 0);
    CHECK(f == 0.1);
    CHECK_EQ(wv_pg_get_bool(r, 0, 2, &b), 0);
    CHECK(!b);
    CHECK_EQ(wv_pg_get_text(r, 0, 3, &s), 0);
    CHECK(wv_str_eq_cstr(s, evil));
    CHECK_EQ(wv_pg_get_bytes(r, 0, 4, &s), 0);
    CHECK(s.n == 4 && memcmp(s.p, "\0\1\2\xff", 4) == 0);
    CHECK_EQ(wv_pg_get_timestamp(r, 0, 5, &i), 0);
    CHECK_EQ(i, ts);
    CHECK_EQ(wv_pg_get_text(r, 0, 6, &s), 0);
    CHECK(wv_str_eq_cstr(s, "abc"));
    wv_str slice = {"xyz!", 3};
    CHECK_EQ(QUERY_INT(c, "SELECT length($1::text)", WV_PG_STR(slice)), 3);
    CHECK_EQ(wv_pg_get_bool(r, 0, 7, &b), 0);
    CHECK(b);
    CHECK_EQ(wv_pg_get_float(r, 0, 8, &f), 0);
    CHECK(isinf(f) && f < 0);
    CHECK_EQ(wv_pg_get_int(r, 0, 9, &i), 0);
    CHECK_EQ(i, 7);
    CHECK_STR_EQ(wv_pg_value(r, 0, 10), "0001-12-31 00:00:00 BC");
    wv_pg_result_free(r);
    /* pg_class is still there */
    CHECK(QUERY_INT(c, "SELECT count(*) FROM pg_class") > 0);
    /* arguments the client refuses */
    CHECK_EQ(wv_pg_query(c, &r, "SELECT $1::text", WV_PG_TEXTN("a\0b", 3)), -EINVAL);
    CHECK(r == NULL);
    wv_pg_arg odd = {.type = 99};
    CHECK_EQ(wv_pg_query_args(c, &r, "SELECT $1", &odd, 1), -EINVAL);
    CHECK_EQ(wv_pg_query_args(c, &r, "SELECT 1", NULL, -1), -EINVAL);
    /* many arguments (past the inline room) */
    wv_pg_arg many[40];
    char sql[1024] = "SELECT 0";
    for (int k = 0; k < 40; k++) {
        many[k] = WV_PG_INT(k + 1);
        snprintf(sql + strlen(sql), sizeof sql - strlen(sql), " + $%d::int", k + 1);
    }
    CHECK_EQ(query_int(c, sql, many, 40), 820);
    wv_pg_close(c);
    return 0;
}

static void test_arguments_travel_as_parameters_never_as_sql(void **state)
{
    assert_int_equal(run_in_rt(1, args_body, NULL), 0);
    assert_checks_passed();
}

static int exec_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL);
    REQUIRE(c);
    char t[64], q[256];
    tname(t, sizeof t, "exec");
    REQUIRE_EQ(wv_pg_exec(c, sqlf(q, sizeof q, "DROP TABLE IF EXISTS %s", t)), 0);
    REQUIRE_EQ(wv_pg_exec(c, sqlf(q, sizeof q, "CREATE TABLE %s (id int, v text)", t)), 0);
    CHECK_EQ(wv_pg_exec(
                 c,
                 sqlf(q, sizeof q, "INSERT INTO %s SELECT g, 'x' FROM generate_series(1, $1) g", t),
                 WV_PG_INT(5)),
             5);
    CHECK_EQ(wv_pg_exec(c, sqlf(q, sizeof q, "UPDATE %s SET v = $1 WHERE id > $2", t),
                        WV_PG_TEXT("y"), WV_PG_INT(3)),
             2);
    CHECK_EQ(wv_pg_exec(c, sqlf(q, sizeof q, "DELETE FROM %s WHERE v = $1", t), WV_PG_TEXT("x")),
             3);
    CHECK_EQ(wv_pg_exec(c, sqlf(q, sizeof q, "SELECT * FROM %s", t)), 2);
    CHECK_EQ(wv_pg_exec(c, sqlf(q, sizeof q, "DROP TABLE %s", t)), 0);
    wv_pg_close(c);
    return 0;
}

static void test_exec_returns_the_rows_touched(void **state)
{
    assert_int_equal(run_in_rt(1, exec_body, NULL), 0);
    assert_checks_passed();
}

static int large_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL);
    REQUIRE(c);
    wv_pg_result *r;
    int n = wv_pg_query(c, &r, "SELECT g, 'row ' || g FROM generate_series(1, $1::int) g",
                        WV_PG_INT(100000));
    REQUIRE_EQ(n, 100000);
    int64_t sum = 0;
    bool texts_ok = true;
    for (int i = 0; i < n; i++) {
        int64_t v = 0;
        if (wv_pg_get_int(r, i, 0, &v) < 0)
            break;
        sum += v;
        if (i % 9973 == 0) {
            char want[32];
            wv_str s;
            snprintf(want, sizeof want, "row %d", i + 1);
            texts_ok &= wv_pg_get_text(r, i, 1, &s) == 0 && wv_str_eq_cstr(s, want);
        }
    }
    CHECK_EQ(sum, INT64_C(5000050000));
    CHECK(texts_ok);
    wv_pg_result_free(r);
    /* and the connection goes on */
    CHECK_EQ(QUERY_INT(c, "SELECT 11"), 11);
    wv_pg_close(c);
    return 0;
}

static void test_a_large_result_of_100k_rows_arrives_whole(void **state)
{
    assert_int_equal(run_in_rt(1, large_body, NULL), 0);
    assert_checks_passed();
}

/* ---------------------------------------------------------------- errors */

static int errors_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL);
    REQUIRE(c);
    char t[64], q[256], st[6];
    tname(t, sizeof t, "errors");
    wv_pg_exec(c, sqlf(q, sizeof q, "DROP TABLE IF EXISTS %s", t));
    REQUIRE_EQ(wv_pg_exec(c, sqlf(q, sizeof q, "CREATE TABLE %s (id int PRIMARY KEY)", t)), 0);
    REQUIRE_EQ(wv_pg_exec(c, sqlf(q, sizeof q, "INSERT INTO %s VALUES ($1)", t), WV_PG_INT(1)), 1);
    CHECK_EQ(wv_pg_exec(c, sqlf(q, sizeof q, "INSERT INTO %s VALUES ($1)", t), WV_PG_INT(1)),
             -EREMOTEIO);
    CHECK(wv_pg_sqlstate(st));
    CHECK_STR_EQ(st, "23505");
    CHECK(strncmp(wv_errmsg(), "ERROR 23505 duplicate key value violates unique constraint", 58) ==
          0);
    CHECK(errmsg_has("(detail: Key (id)=(1) already exists.)"));

    CHECK_EQ(wv_pg_exec(c, "SELEC 1"), -EREMOTEIO);
    CHECK(wv_pg_sqlstate(st));
    CHECK_STR_EQ(st, "42601");
    CHECK(errmsg_has("ERROR 42601 syntax error"));

    wv_pg_result *r;
    CHECK_EQ(wv_pg_query(c, &r, "SELECT wv_no_such_function($1::int)", WV_PG_INT(1)), -EREMOTEIO);
    CHECK(r == NULL);
    CHECK(wv_pg_sqlstate(st));
    CHECK_STR_EQ(st, "42883");
    CHECK(errmsg_has("(hint: No function matches"));

    CHECK_EQ(wv_pg_exec(c, "SELECT 1/0"), -EREMOTEIO);
    CHECK(wv_pg_sqlstate(st));
    CHECK_STR_EQ(st, "22012");
    /* a client-side error has no SQLSTATE */
    int64_t v;
    wv_pg_get_int(NULL, 0, 0, &v);
    CHECK(!wv_pg_sqlstate(st));
    CHECK_STR_EQ(st, "");
    /* errors leave the connection fine */
    CHECK(wv_pg_conn_ok(c));
    CHECK_EQ(QUERY_INT(c, sqlf(q, sizeof q, "SELECT count(*) FROM %s", t)), 1);
    wv_pg_exec(c, sqlf(q, sizeof q, "DROP TABLE %s", t));
    wv_pg_close(c);
    return 0;
}

static void test_server_errors_carry_sqlstate_detail_and_hint(void **state)
{
    assert_int_equal(run_in_rt(1, errors_body, NULL), 0);
    assert_checks_passed();
}

static int lost_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL), *mon = connect_ok(NULL);
    REQUIRE(c && mon);
    int pid = wv_pg_conn_pid(c);
    CHECK_EQ(QUERY_INT(mon, "SELECT pg_terminate_backend($1)::int", WV_PG_INT(pid)), 1);
    /* the reader sees the server's goodbye without anyone asking */
    for (int i = 0; i < 200 && wv_pg_conn_ok(c); i++)
        wv_sleep_ms(5);
    CHECK(!wv_pg_conn_ok(c));
    CHECK_EQ(wv_pg_exec(c, "SELECT 1"), -ECONNRESET);
    CHECK(errmsg_has("terminating connection"));
    wv_pg_close(c);
    wv_pg_close(mon);
    return 0;
}

static void test_a_connection_killed_by_the_server_fails_with_econnreset(void **state)
{
    assert_int_equal(run_in_rt(1, lost_body, NULL), 0);
    assert_checks_passed();
}

typedef struct user {
    wv_pg_conn *c;
    int what;
    int rc;
} user;

static int user_fn(void *arg)
{
    user *u = arg;
    wv_pg_notification *n = NULL;
    switch (u->what) {
    case 0: /* a transaction with a statement running */
        u->rc = wv_pg_begin(u->c, NULL);
        if (u->rc == 0)
            u->rc = wv_pg_exec(u->c, "SELECT pg_sleep(5)");
        break;
    case 1: /* waiting for that transaction to end */
        u->rc = wv_pg_exec(u->c, "SELECT 1");
        break;
    case 2: /* waiting for a notification */
        u->rc = wv_pg_notification_recv(u->c, &n);
        wv_pg_notification_free(n);
        break;
    }
    return 0;
}

static int close_busy_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL), *mon = connect_ok(NULL);
    REQUIRE(c && mon);
    int pid = wv_pg_conn_pid(c);
    CHECK_EQ(wv_pg_listen(c, "wv_close_test"), 0);
    user u[3] = {{c, 0, 1}, {c, 1, 1}, {c, 2, 1}};
    wv_group *g = wv_group_new();
    for (int i = 0; i < 3; i++)
        wv_group_spawn(g, user_fn, &u[i], NULL);
    wv_sleep_ms(100);
    wv_pg_close(c); /* while all three are inside calls on it */
    int64_t t0 = wv_now();
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK(ms_since(t0) < 500);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(u[i].rc, -ECONNRESET);
    /* and the server process went away with it */
    int64_t n = -1;
    for (int i = 0; i < 100; i++) {
        n = QUERY_INT(mon, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", WV_PG_INT(pid));
        if (n == 0)
            break;
        wv_sleep_ms(20);
    }
    CHECK_EQ(n, 0);
    wv_pg_close(mon);
    return 0;
}

static void test_closing_a_connection_in_use_fails_its_callers_cleanly(void **state)
{
    assert_int_equal(run_in_rt(1, close_busy_body, NULL), 0);
    assert_checks_passed();
}

/* ---------------------------------------------------------- cancellation */

/* Is server process `pid` running a statement? Polls for up to ms. */
static int64_t active_after(wv_pg_conn *mon, int pid, int ms)
{
    int64_t n = -1;
    int64_t end = wv_after_ms(ms);
    do {
        n = QUERY_INT(mon,
                      "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND state = 'active'",
                      WV_PG_INT(pid));
        if (n == 0)
            break;
        wv_sleep_ms(10);
    } while (wv_now() < end);
    return n;
}

static int deadline_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL), *mon = connect_ok(NULL);
    REQUIRE(c && mon);
    int pid = wv_pg_conn_pid(c);
    int64_t t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(200));
    CHECK_EQ(wv_pg_exec(c, "SELECT pg_sleep(10)"), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_BETWEEN(ms_since(t0), 150, 1000);
    CHECK(errmsg_has("timed out"));
    /* the server stopped running it (cancelled, not left to finish) */
    CHECK_EQ(active_after(mon, pid, 2000), 0);
    CHECK(ms_since(t0) < 3000);
    /* and the connection is usable at once */
    int64_t t1 = wv_now();
    CHECK_EQ(QUERY_INT(c, "SELECT 7"), 7);
    CHECK(ms_since(t1) < 1000);
    wv_pg_conn_stats st;
    wv_pg_conn_stats_get(c, &st);
    CHECK_EQ(st.cancels, 1);
    wv_pg_close(c);
    wv_pg_close(mon);
    return 0;
}

static void test_a_deadline_cancels_the_statement_on_the_server(void **state)
{
    assert_int_equal(run_in_rt(1, deadline_body, NULL), 0);
    assert_checks_passed();
}

typedef struct sleeper {
    wv_pg_conn *c;
    int rc;
} sleeper;

static int sleeper_fn(void *arg)
{
    sleeper *s = arg;
    s->rc = wv_pg_exec(s->c, "SELECT pg_sleep(10)");
    return 0;
}

static int group_cancel_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL), *mon = connect_ok(NULL);
    REQUIRE(c && mon);
    int pid = wv_pg_conn_pid(c);
    sleeper s = {.c = c, .rc = 1};
    wv_group *g = wv_group_new();
    REQUIRE(g);
    int64_t t0 = wv_now();
    CHECK_EQ(wv_group_spawn(g, sleeper_fn, &s, NULL), 0);
    wv_sleep_ms(150);
    CHECK_EQ(active_after(mon, pid, 0), 1);
    wv_group_cancel(g);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(s.rc, -ECANCELED);
    CHECK(ms_since(t0) < 1000);
    CHECK_EQ(active_after(mon, pid, 2000), 0);
    CHECK_EQ(QUERY_INT(c, "SELECT 8"), 8);
    wv_pg_close(c);
    wv_pg_close(mon);
    return 0;
}

static void test_cancelling_the_fiber_cancels_the_statement_on_the_server(void **state)
{
    assert_int_equal(run_in_rt(1, group_cancel_body, NULL), 0);
    assert_checks_passed();
}

typedef struct adder {
    wv_pg_conn *c;
    int id, n;
    int ok;
} adder;

static int adder_fn(void *arg)
{
    adder *a = arg;
    for (int k = 0; k < a->n; k++) {
        int64_t v = (int64_t)a->id * 1000 + k;
        if (QUERY_INT(a->c, "SELECT $1::int8 + 1", WV_PG_INT(v)) == v + 1)
            a->ok++;
    }
    return 0;
}

typedef struct timed_sleeper {
    wv_pg_conn *c;
    int64_t ms;
    int rc;
} timed_sleeper;

static int timed_sleeper_fn(void *arg)
{
    timed_sleeper *s = arg;
    wv_deadline_set(wv_after_ms(s->ms));
    s->rc = wv_pg_exec(s->c, "SELECT pg_sleep(10)");
    return 0;
}

static int behind_body(void *arg)
{
    /* a slow statement times out while 8 fibers' statements wait behind it on
     * the same connection: it is cancelled, they all complete, correctly */
    wv_pg_conn *c = connect_ok(NULL);
    REQUIRE(c);
    wv_group *g = wv_group_new();
    timed_sleeper s = {.c = c, .ms = 300, .rc = 1};
    adder ad[8];
    int64_t t0 = wv_now();
    wv_group_spawn(g, timed_sleeper_fn, &s, NULL);
    for (int i = 0; i < 8; i++) {
        ad[i] = (adder){.c = c, .id = i + 1, .n = 20};
        wv_group_spawn(g, adder_fn, &ad[i], NULL);
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(s.rc, -ETIMEDOUT);
    for (int i = 0; i < 8; i++)
        CHECK_EQ(ad[i].ok, 20);
    CHECK(ms_since(t0) < 3000);
    wv_pg_close(c);
    return 0;
}

static void test_statements_behind_a_timed_out_one_complete_correctly(void **state)
{
    assert_int_equal(run_in_rt(1, behind_body, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------- pipelining */

static int pipeline_body(void *arg)
{
    bool off = arg != NULL;
    wv_pg_conn *c = connect_ok(&(wv_pg_opts){.no_pipeline = off});
    REQUIRE(c);
    enum { FIBERS = 64, EACH = 50 };
    adder *ad = calloc(FIBERS, sizeof *ad);
    REQUIRE(ad);
    wv_pg_conn_stats before, after;
    wv_pg_conn_stats_get(c, &before);
    wv_group *g = wv_group_new();
    for (int i = 0; i < FIBERS; i++) {
        ad[i] = (adder){.c = c, .id = i, .n = EACH};
        CHECK_EQ(wv_group_spawn(g, adder_fn, &ad[i], NULL), 0);
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    int ok = 0;
    for (int i = 0; i < FIBERS; i++)
        ok += ad[i].ok;
    CHECK_EQ(ok, FIBERS * EACH);
    wv_pg_conn_stats_get(c, &after);
    uint64_t stmts = after.statements - before.statements;
    uint64_t batches = after.batches - before.batches;
    CHECK_EQ(stmts, FIBERS * EACH);
    if (off) {
        CHECK_EQ(batches, stmts); /* one statement per round trip */
    } else {
        /* many statements per round trip: 64 fibers batch into few writes */
        if (!CHECK(batches * 8 <= stmts))
            fprintf(stderr, "%llu batches for %llu statements\n", (unsigned long long)batches,
                    (unsigned long long)stmts);
    }
    free(ad);
    wv_pg_close(c);
    return 0;
}

static void test_64_fibers_on_one_connection_are_batched_into_few_round_trips(void **state)
{
    assert_int_equal(run_in_rt(1, pipeline_body, NULL), 0);
    assert_checks_passed();
}

static void test_without_pipelining_each_statement_is_its_own_round_trip(void **state)
{
    assert_int_equal(run_in_rt(1, pipeline_body, (void *)1), 0);
    assert_checks_passed();
}

static int batch_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL);
    REQUIRE(c);
    char t[64], q[256], q2[256], q3[256];
    tname(t, sizeof t, "batch");
    wv_pg_exec(c, sqlf(q, sizeof q, "DROP TABLE IF EXISTS %s", t));
    REQUIRE_EQ(wv_pg_exec(c, sqlf(q, sizeof q, "CREATE TABLE %s (id int PRIMARY KEY, v text)", t)),
               0);
    wv_pg_batch *b = wv_pg_batch_new();
    REQUIRE(b);
    sqlf(q, sizeof q, "INSERT INTO %s VALUES ($1, $2)", t);
    sqlf(q2, sizeof q2, "SELECT count(*), string_agg(v, ',' ORDER BY id) FROM %s", t);
    char v1[8] = "one";
    CHECK_EQ(wv_pg_batch_add(b, q, WV_PG_INT(1), WV_PG_TEXT(v1)), 0);
    strcpy(v1, "XXX"); /* arguments were copied */
    CHECK_EQ(wv_pg_batch_add(b, q, WV_PG_INT(2), WV_PG_TEXT("two")), 0);
    CHECK_EQ(wv_pg_batch_add(b, q2), 0);
    CHECK_EQ(wv_pg_batch_len(b), 3);
    wv_pg_conn_stats before, after;
    wv_pg_conn_stats_get(c, &before);
    CHECK_EQ(wv_pg_batch_run(c, b), 0);
    wv_pg_conn_stats_get(c, &after);
    CHECK_EQ(after.batches - before.batches, 1);
    CHECK_EQ(after.statements - before.statements, 3);
    wv_pg_result *r;
    CHECK_EQ(wv_pg_batch_result(b, 0, &r), 0);
    CHECK(r != NULL);
    CHECK_EQ(wv_pg_batch_result(b, 2, &r), 1);
    int64_t n = 0;
    wv_str s;
    CHECK_EQ(wv_pg_get_int(r, 0, 0, &n), 0);
    CHECK_EQ(n, 2);
    CHECK_EQ(wv_pg_get_text(r, 0, 1, &s), 0);
    CHECK(wv_str_eq_cstr(s, "one,two"));
    CHECK_EQ(wv_pg_batch_result(b, 3, &r), -ERANGE);
    wv_pg_batch_free(b);

    /* one failure: the batch is one implicit transaction */
    b = wv_pg_batch_new();
    wv_pg_batch_add(b, q, WV_PG_INT(3), WV_PG_TEXT("three"));
    wv_pg_batch_add(b, q, WV_PG_INT(1), WV_PG_TEXT("dup"));
    wv_pg_batch_add(b, q, WV_PG_INT(4), WV_PG_TEXT("four"));
    CHECK_EQ(wv_pg_batch_run(c, b), -EREMOTEIO);
    char st[6];
    CHECK(wv_pg_sqlstate(st));
    CHECK_STR_EQ(st, "23505");
    CHECK_EQ(wv_pg_batch_result(b, 0, &r), 0);
    CHECK_EQ(wv_pg_batch_result(b, 1, &r), -EREMOTEIO);
    CHECK(r == NULL);
    CHECK_EQ(wv_pg_batch_result(b, 2, &r), -ECANCELED);
    CHECK(errmsg_has("skipped"));
    /* run again after fixing nothing: same outcome, results replaced */
    CHECK_EQ(wv_pg_batch_run(c, b), -EREMOTEIO);
    wv_pg_batch_free(b);
    CHECK_EQ(QUERY_INT(c, sqlf(q3, sizeof q3, "SELECT count(*) FROM %s", t)), 2);
    b = wv_pg_batch_new();
    CHECK_EQ(wv_pg_batch_run(c, b), 0); /* empty */
    wv_pg_batch_free(b);
    wv_pg_exec(c, sqlf(q, sizeof q, "DROP TABLE %s", t));
    wv_pg_close(c);
    return 0;
}

static void test_a_batch_sends_its_statements_in_one_round_trip(void **state)
{
    assert_int_equal(run_in_rt(1, batch_body, NULL), 0);
    assert_checks_passed();
}

/* ----------------------------------------------------------------- pool */

typedef struct traffic {
    wv_pg_pool *p;
    int id;
    volatile bool *stop;
    int64_t restart_done; /* 0 until the restart returned */
    int ok, ok_after, errors, wrong, unexpected;
    int reset, refused, eio;
    int64_t last_failure;
    int last_unexpected;
} traffic;

static int traffic_fn(void *arg)
{
    traffic *t = arg;
    for (int k = 0; !*t->stop; k++) {
        wv_pg_result *r;
        int64_t v = (int64_t)t->id * 100000 + k;
        int n = wv_pg_pool_query(t->p, &r, "SELECT $1::int8", WV_PG_INT(v));
        if (n == 1) {
            int64_t got = -1;
            wv_pg_get_int(r, 0, 0, &got);
            t->wrong += got != v;
            t->ok++;
            if (t->restart_done)
                t->ok_after++;
        } else {
            t->errors++;
            t->last_failure = wv_now();
            t->reset += n == -ECONNRESET;
            t->refused += n == -ECONNREFUSED;
            t->eio += n == -EIO;
            if (n != -ECONNRESET && n != -ECONNREFUSED && n != -EIO) {
                t->unexpected++;
                t->last_unexpected = n;
                fprintf(stderr, "traffic: unexpected %d: %s\n", n, wv_errmsg());
            }
        }
        wv_pg_result_free(r);
        if (wv_sleep_ms(2) < 0)
            break;
    }
    return 0;
}

typedef struct shell_job {
    const char *cmd;
} shell_job;

static int shell_fn(void *arg)
{
    shell_job *j = arg;
    int st = system(j->cmd);
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -EIO;
}

static int restart_body(void *arg)
{
    const char *ctl = getenv("WEAVE_TEST_PG_CTL"), *dir = getenv("WEAVE_TEST_PG_DIR");
    if (!CHECK(ctl && *ctl && dir && *dir)) {
        fprintf(stderr, "the restart test needs WEAVE_TEST_PG_CTL (scripts/pg_test_server.sh) "
                        "and WEAVE_TEST_PG_DIR\n");
        return -1;
    }
    wv_pg_pool *p;
    REQUIRE_EQ(wv_pg_pool_new(
                   url,
                   &(wv_pg_pool_opts){.max_size = 4, .backoff_min_ms = 20, .backoff_max_ms = 200},
                   &p),
               0);
    enum { N = 8 };
    volatile bool stop = false;
    traffic t[N];
    wv_group *g = wv_group_new();
    for (int i = 0; i < N; i++) {
        t[i] = (traffic){.p = p, .id = i, .stop = &stop};
        wv_group_spawn(g, traffic_fn, &t[i], NULL);
    }
    wv_sleep_ms(300);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "'%s' restart '%s' >/dev/null 2>&1", ctl, dir);
    shell_job j = {cmd};
    int rc = wv_offload(shell_fn, &j);
    CHECK_EQ(rc, 0);
    int64_t done = wv_now();
    for (int i = 0; i < N; i++)
        t[i].restart_done = done;
    /* let traffic run on the restarted server */
    int64_t end = wv_after_ms(5000);
    bool all_back = false;
    while (!all_back && wv_now() < end) {
        wv_sleep_ms(50);
        all_back = true;
        for (int i = 0; i < N; i++)
            all_back &= t[i].ok_after >= 20;
    }
    stop = true;
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    int errors = 0, reset = 0, refused = 0, eio = 0;
    for (int i = 0; i < N; i++) {
        errors += t[i].errors;
        reset += t[i].reset;
        refused += t[i].refused;
        eio += t[i].eio;
        CHECK_EQ(t[i].wrong, 0);
        CHECK_EQ(t[i].unexpected, 0);
        CHECK(t[i].ok_after >= 20);
        /* failures only around the restart, none once the server is back */
        CHECK(t[i].last_failure < done + 1500 * NS_PER_MS);
    }
    CHECK(errors > 0); /* statements in flight at the shutdown failed cleanly */
    CHECK(all_back);
    wv_pg_pool_stats st;
    wv_pg_pool_stats_get(p, &st);
    CHECK(st.discarded > 0);
    CHECK(st.idle + st.busy <= 4);
    fprintf(stderr,
            "restart: %d failed statements (%d ECONNRESET, %d ECONNREFUSED, %d EIO), %llu "
            "connects, %llu failed connects\n",
            errors, reset, refused, eio, (unsigned long long)st.connects,
            (unsigned long long)st.failures);
    wv_pg_pool_free(p);
    return 0;
}

static void test_the_pool_survives_a_server_restart_mid_traffic(void **state)
{
    assert_int_equal(run_in_rt(1, restart_body, NULL), 0);
    assert_checks_passed();
}

static int failed_tx_body(void *arg)
{
    wv_pg_pool *p;
    REQUIRE_EQ(wv_pg_pool_new(url, &(wv_pg_pool_opts){.max_size = 1}, &p), 0);
    wv_pg_conn *c;
    REQUIRE_EQ(wv_pg_pool_acquire(p, &c), 0);
    int pid = wv_pg_conn_pid(c);
    CHECK_EQ(wv_pg_exec(c, "BEGIN"), 0);
    CHECK_EQ(wv_pg_exec(c, "SELECT 1/0"), -EREMOTEIO);
    /* in a failed transaction now: give it back like that */
    wv_pg_pool_release(p, c);
    REQUIRE_EQ(wv_pg_pool_acquire(p, &c), 0);
    CHECK_EQ(wv_pg_conn_pid(c), pid); /* the same connection, reset */
    CHECK_EQ(tx_state(c), 0);         /* no open transaction */
    CHECK_EQ(QUERY_INT(c, "SELECT 5"), 5);
    /* the transaction API, left open */
    CHECK_EQ(wv_pg_begin(c, NULL), 0);
    CHECK_EQ(QUERY_INT(c, "SELECT 6"), 6);
    wv_pg_pool_release(p, c);
    REQUIRE_EQ(wv_pg_pool_acquire(p, &c), 0);
    CHECK_EQ(tx_state(c), 0);
    /* a statement abandoned by its deadline: drained before reuse */
    int64_t old = wv_deadline_set(wv_after_ms(100));
    CHECK_EQ(wv_pg_exec(c, "SELECT pg_sleep(5)"), -ETIMEDOUT);
    wv_deadline_set(old);
    wv_pg_pool_release(p, c);
    int64_t t0 = wv_now();
    REQUIRE_EQ(wv_pg_pool_acquire(p, &c), 0);
    CHECK_EQ(QUERY_INT(c, "SELECT 10"), 10);
    CHECK(ms_since(t0) < 2000);
    /* a lost connection is closed, not handed out */
    wv_pg_conn *mon;
    REQUIRE_EQ(wv_pg_connect(url, NULL, &mon), 0);
    pid = wv_pg_conn_pid(c);
    wv_pg_pool_release(p, c);
    CHECK_EQ(QUERY_INT(mon, "SELECT pg_terminate_backend($1)::int", WV_PG_INT(pid)), 1);
    wv_sleep_ms(50);
    REQUIRE_EQ(wv_pg_pool_acquire(p, &c), 0);
    CHECK(wv_pg_conn_pid(c) != pid);
    CHECK_EQ(QUERY_INT(c, "SELECT 12"), 12);
    wv_pg_pool_stats st;
    wv_pg_pool_stats_get(p, &st);
    CHECK_EQ(st.discarded, 1);
    CHECK_EQ(st.busy, 1);
    wv_pg_pool_release(p, c);
    wv_pg_close(mon);
    wv_pg_pool_free(p);
    return 0;
}

static void test_the_pool_never_hands_out_a_connection_in_a_bad_state(void **state)
{
    assert_int_equal(run_in_rt(1, failed_tx_body, NULL), 0);
    assert_checks_passed();
}

typedef struct doubler {
    wv_pg_pool *p;
    int i;
    atomic_int *ok;
} doubler;

static int doubler_fn(void *arg)
{
    doubler *d = arg;
    wv_pg_result *r;
    if (wv_pg_pool_query(d->p, &r, "SELECT $1::int * 2", WV_PG_INT(d->i)) == 1) {
        int64_t v;
        if (wv_pg_get_int(r, 0, 0, &v) == 0 && v == 2 * d->i)
            atomic_fetch_add(d->ok, 1);
        wv_pg_result_free(r);
    } else {
        fprintf(stderr, "doubler %d: %s\n", d->i, wv_errmsg());
    }
    return 0;
}

static int thousand_body(void *arg)
{
    wv_pg_pool *p;
    REQUIRE_EQ(wv_pg_pool_new(url, &(wv_pg_pool_opts){.max_size = 10}, &p), 0);
    enum { N = 1000 };
    doubler *d = calloc(N, sizeof *d);
    atomic_int ok = 0;
    wv_group *g = wv_group_new();
    for (int i = 0; i < N; i++) {
        d[i] = (doubler){.p = p, .i = i, .ok = &ok};
        CHECK_EQ(wv_group_spawn(g, doubler_fn, &d[i], &(wv_spawn_opts){.stack_size = 64 * 1024}),
                 0);
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(atomic_load(&ok), N);
    wv_pg_pool_stats st;
    wv_pg_pool_stats_get(p, &st);
    CHECK(st.connects <= 10);
    CHECK_EQ(st.busy, 0);
    CHECK(st.idle <= 10);
    free(d);
    wv_pg_pool_free(p);
    return 0;
}

static void test_1000_fibers_on_a_pool_of_10_all_complete(void **state)
{
    assert_int_equal(run_in_rt(1, thousand_body, NULL), 0);
    assert_checks_passed();
}

typedef struct holder {
    wv_pg_pool *p;
    int rc;
    int64_t ms;
} holder;

static int acquirer_fn(void *arg)
{
    holder *h = arg;
    wv_deadline_set(wv_after_ms(h->ms));
    wv_pg_conn *c;
    h->rc = wv_pg_pool_acquire(h->p, &c);
    if (h->rc == 0)
        wv_pg_pool_release(h->p, c);
    return 0;
}

static int pool_limits_body(void *arg)
{
    wv_pg_pool *p;
    REQUIRE_EQ(wv_pg_pool_new(url, &(wv_pg_pool_opts){.max_size = 1}, &p), 0);
    wv_pg_conn *c;
    REQUIRE_EQ(wv_pg_pool_acquire(p, &c), 0);
    /* all busy: acquire waits, within its deadline */
    holder h = {.p = p, .ms = 100};
    wv_group *g = wv_group_new();
    int64_t t0 = wv_now();
    wv_group_spawn(g, acquirer_fn, &h, NULL);
    wv_group_join(g);
    CHECK_EQ(h.rc, -ETIMEDOUT);
    CHECK_BETWEEN(ms_since(t0), 80, 1000);
    /* and gets the connection when it comes back */
    h = (holder){.p = p, .ms = 2000};
    wv_group_spawn(g, acquirer_fn, &h, NULL);
    wv_sleep_ms(20);
    wv_pg_pool_stats st;
    wv_pg_pool_stats_get(p, &st);
    CHECK_EQ(st.waiting, 1);
    wv_pg_pool_release(p, c);
    wv_group_join(g);
    CHECK_EQ(h.rc, 0);
    wv_group_free(g);
    CHECK_EQ(wv_pg_pool_exec(p, "SELECT 1"), 1);
    wv_pg_pool_free(p);

    /* a server that cannot be reached: an error at once, then backoff */
    char u[200];
    snprintf(u, sizeof u, "postgres://app:app@127.0.0.1:%u/appdb", (unsigned)free_port());
    REQUIRE_EQ(wv_pg_pool_new(u, &(wv_pg_pool_opts){.backoff_min_ms = 500}, &p), 0);
    CHECK_EQ(wv_pg_pool_acquire(p, &c), -ECONNREFUSED);
    t0 = wv_now();
    CHECK_EQ(wv_pg_pool_exec(p, "SELECT 1"), -ECONNREFUSED);
    CHECK(errmsg_has("next attempt in"));
    CHECK(ms_since(t0) < 50);
    wv_pg_pool_stats_get(p, &st);
    CHECK_EQ(st.failures, 1);
    wv_pg_pool_free(p);
    return 0;
}

static void test_pool_acquire_waits_within_its_deadline_and_backs_off(void **state)
{
    assert_int_equal(run_in_rt(1, pool_limits_body, NULL), 0);
    assert_checks_passed();
}

/* ----------------------------------------------------------- transactions */

static int tx_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL), *other = connect_ok(NULL);
    REQUIRE(c && other);
    char t[64], q[256], cnt[256], ins[256];
    tname(t, sizeof t, "tx");
    wv_pg_exec(c, sqlf(q, sizeof q, "DROP TABLE IF EXISTS %s", t));
    REQUIRE_EQ(wv_pg_exec(c, sqlf(q, sizeof q, "CREATE TABLE %s (id int)", t)), 0);
    sqlf(cnt, sizeof cnt, "SELECT count(*) FROM %s", t);
    sqlf(ins, sizeof ins, "INSERT INTO %s VALUES ($1)", t);

    /* commit: visible to others only after */
    CHECK_EQ(wv_pg_begin(c, NULL), 0);
    CHECK_EQ(wv_pg_begin(c, NULL), -EINVAL); /* no nesting */
    CHECK_EQ(wv_pg_exec(c, ins, WV_PG_INT(1)), 1);
    CHECK_EQ(QUERY_INT(other, cnt), 0);
    CHECK_EQ(wv_pg_commit(c), 0);
    CHECK_EQ(QUERY_INT(other, cnt), 1);
    CHECK_EQ(wv_pg_commit(c), -EINVAL); /* nothing open */

    /* rollback */
    CHECK_EQ(wv_pg_begin(c, NULL), 0);
    CHECK_EQ(wv_pg_exec(c, ins, WV_PG_INT(2)), 1);
    CHECK_EQ(QUERY_INT(c, cnt), 2);
    CHECK_EQ(wv_pg_rollback(c), 0);
    CHECK_EQ(QUERY_INT(c, cnt), 1);

    /* commit of a failed transaction is an error, and rolls back */
    CHECK_EQ(wv_pg_begin(c, NULL), 0);
    CHECK_EQ(wv_pg_exec(c, ins, WV_PG_INT(3)), 1);
    CHECK_EQ(wv_pg_exec(c, "SELECT 1/0"), -EREMOTEIO);
    CHECK_EQ(wv_pg_exec(c, "SELECT 1"), -EREMOTEIO); /* 25P02 in a failed transaction */
    CHECK_EQ(wv_pg_commit(c), -EREMOTEIO);
    CHECK(errmsg_has("rolled back"));
    CHECK_EQ(QUERY_INT(c, cnt), 1);

    /* repeatable read: one snapshot for the whole transaction */
    CHECK_EQ(wv_pg_begin(c, &(wv_pg_tx_opts){.isolation = WV_PG_REPEATABLE_READ}), 0);
    CHECK_EQ(QUERY_INT(c, cnt), 1);
    CHECK_EQ(wv_pg_exec(other, ins, WV_PG_INT(4)), 1);
    CHECK_EQ(QUERY_INT(c, cnt), 1);
    CHECK_EQ(wv_pg_commit(c), 0);
    CHECK_EQ(QUERY_INT(c, cnt), 2);
    wv_pg_result *r;
    CHECK_EQ(wv_pg_begin(c, &(wv_pg_tx_opts){.isolation = WV_PG_REPEATABLE_READ}), 0);
    REQUIRE_EQ(wv_pg_query(c, &r, "SHOW transaction_isolation"), 1);
    CHECK_STR_EQ(wv_pg_value(r, 0, 0), "repeatable read");
    wv_pg_result_free(r);
    CHECK_EQ(wv_pg_commit(c), 0);

    /* read committed (the default) sees others' commits at once */
    CHECK_EQ(wv_pg_begin(c, NULL), 0);
    CHECK_EQ(QUERY_INT(c, cnt), 2);
    CHECK_EQ(wv_pg_exec(other, ins, WV_PG_INT(5)), 1);
    CHECK_EQ(QUERY_INT(c, cnt), 3);
    CHECK_EQ(wv_pg_commit(c), 0);

    /* read only refuses writes; serializable read only deferrable works */
    CHECK_EQ(wv_pg_begin(c, &(wv_pg_tx_opts){.read_only = true}), 0);
    CHECK_EQ(wv_pg_exec(c, ins, WV_PG_INT(6)), -EREMOTEIO);
    char st[6];
    CHECK(wv_pg_sqlstate(st));
    CHECK_STR_EQ(st, "25006");
    CHECK_EQ(wv_pg_rollback(c), 0);
    CHECK_EQ(wv_pg_begin(c, &(wv_pg_tx_opts){.isolation = WV_PG_SERIALIZABLE,
                                             .read_only = true,
                                             .deferrable = true}),
             0);
    REQUIRE_EQ(wv_pg_query(c, &r,
                           "SELECT current_setting('transaction_isolation'), "
                           "current_setting('transaction_read_only'), "
                           "current_setting('transaction_deferrable')"),
               1);
    CHECK_STR_EQ(wv_pg_value(r, 0, 0), "serializable");
    CHECK_STR_EQ(wv_pg_value(r, 0, 1), "on");
    CHECK_STR_EQ(wv_pg_value(r, 0, 2), "on");
    wv_pg_result_free(r);
    CHECK_EQ(wv_pg_commit(c), 0);
    CHECK_EQ(wv_pg_begin(c, &(wv_pg_tx_opts){.isolation = (wv_pg_isolation)7}), -EINVAL);

    wv_pg_exec(c, sqlf(q, sizeof q, "DROP TABLE %s", t));
    wv_pg_close(c);
    wv_pg_close(other);
    return 0;
}

static void test_transactions_commit_roll_back_and_isolate(void **state)
{
    assert_int_equal(run_in_rt(1, tx_body, NULL), 0);
    assert_checks_passed();
}

typedef struct outsider {
    wv_pg_conn *c;
    int64_t in_tx; /* tx_state() when its statements ran */
    int64_t at;
} outsider;

static int outsider_fn(void *arg)
{
    outsider *o = arg;
    o->in_tx = tx_state(o->c);
    o->at = wv_now();
    return 0;
}

static int tx_owner_body(void *arg)
{
    /* while a fiber's transaction is open on a shared connection, other
     * fibers' statements wait for its end instead of running inside it */
    wv_pg_conn *c = connect_ok(NULL);
    REQUIRE(c);
    REQUIRE_EQ(wv_pg_begin(c, NULL), 0);
    outsider o = {.c = c, .in_tx = -1};
    wv_group *g = wv_group_new();
    wv_group_spawn(g, outsider_fn, &o, NULL);
    wv_sleep_ms(20);
    CHECK_EQ(tx_state(c), 1);
    wv_sleep_ms(100);
    CHECK_EQ(o.at, 0); /* still waiting */
    int64_t commit_at = wv_now();
    CHECK_EQ(wv_pg_commit(c), 0);
    wv_group_join(g);
    wv_group_free(g);
    CHECK_EQ(o.in_tx, 0); /* not inside the other fiber's transaction */
    CHECK(o.at >= commit_at);
    wv_pg_close(c);
    return 0;
}

static void test_a_transaction_keeps_other_fibers_statements_out(void **state)
{
    assert_int_equal(run_in_rt(1, tx_owner_body, NULL), 0);
    assert_checks_passed();
}

typedef struct skew {
    const char *table;
    int mine;
    int attempts;
    int *read_count;
    wv_event *both_read;
} skew;

static int skew_tx(wv_pg_conn *c, void *arg)
{
    skew *s = arg;
    s->attempts++;
    char q[256];
    int64_t sum = QUERY_INT(c, sqlf(q, sizeof q, "SELECT sum(v) FROM %s", s->table));
    if (sum == INT64_MIN) {
        char st[6];
        return wv_pg_sqlstate(st) && strcmp(st, "40001") == 0 ? -EAGAIN : -EIO;
    }
    if (s->attempts == 1) {
        /* both transactions read before either writes: write skew */
        if (++*s->read_count == 2)
            wv_event_set(s->both_read);
        int64_t old = wv_deadline_set(wv_after_ms(2000));
        wv_event_wait(s->both_read);
        wv_deadline_set(old);
    }
    int rc = wv_pg_exec(c, sqlf(q, sizeof q, "UPDATE %s SET v = v - 10 WHERE id = $1", s->table),
                        WV_PG_INT(s->mine));
    return rc < 0 ? rc : 0;
}

typedef struct skew_runner {
    wv_pg_pool *p;
    skew *s;
    int rc;
} skew_runner;

static int skew_fn(void *arg)
{
    skew_runner *r = arg;
    r->rc =
        wv_pg_pool_transact(r->p, &(wv_pg_tx_opts){.isolation = WV_PG_SERIALIZABLE}, skew_tx, r->s);
    return 0;
}

static int serialization_body(void *arg)
{
    wv_pg_pool *p;
    REQUIRE_EQ(wv_pg_pool_new(url, &(wv_pg_pool_opts){.max_size = 2}, &p), 0);
    char t[64], q[256];
    tname(t, sizeof t, "skew");
    wv_pg_pool_exec(p, sqlf(q, sizeof q, "DROP TABLE IF EXISTS %s", t));
    REQUIRE_EQ(
        wv_pg_pool_exec(p, sqlf(q, sizeof q, "CREATE TABLE %s (id int PRIMARY KEY, v int)", t)), 0);
    REQUIRE_EQ(wv_pg_pool_exec(p, sqlf(q, sizeof q, "INSERT INTO %s VALUES (1, 100), (2, 100)", t)),
               2);
    int read_count = 0;
    wv_event both = {0};
    skew s[2] = {{t, 1, 0, &read_count, &both}, {t, 2, 0, &read_count, &both}};
    skew_runner r[2] = {{p, &s[0], 1}, {p, &s[1], 1}};
    wv_group *g = wv_group_new();
    wv_group_spawn(g, skew_fn, &r[0], NULL);
    wv_group_spawn(g, skew_fn, &r[1], NULL);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(r[0].rc, 0);
    CHECK_EQ(r[1].rc, 0);
    /* one of them hit 40001 and ran again */
    CHECK_EQ(s[0].attempts + s[1].attempts, 3);
    wv_pg_result *res;
    REQUIRE_EQ(wv_pg_pool_query(p, &res, sqlf(q, sizeof q, "SELECT sum(v) FROM %s", t)), 1);
    int64_t sum = 0;
    wv_pg_get_int(res, 0, 0, &sum);
    CHECK_EQ(sum, 180);
    wv_pg_result_free(res);

    /* retries are bounded; a callback error that is not a conflict is not retried */
    wv_pg_conn *c;
    REQUIRE_EQ(wv_pg_pool_acquire(p, &c), 0);
    s[0].attempts = 1; /* past the first attempt: no waiting for a partner */
    CHECK_EQ(wv_pg_transact(c, &(wv_pg_tx_opts){.max_retries = -1}, skew_tx, &s[0]), 0);
    CHECK_EQ(s[0].attempts, 2);
    wv_pg_pool_release(p, c);
    wv_pg_pool_exec(p, sqlf(q, sizeof q, "DROP TABLE %s", t));
    wv_pg_pool_free(p);
    return 0;
}

static void test_transact_retries_a_serialization_failure(void **state)
{
    assert_int_equal(run_in_rt(1, serialization_body, NULL), 0);
    assert_checks_passed();
}

static int fails_tx(wv_pg_conn *c, void *arg)
{
    int *n = arg;
    ++*n;
    return wv_pg_exec(c, "SELECT 1/0");
}

static int transact_error_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL);
    REQUIRE(c);
    int n = 0;
    CHECK_EQ(wv_pg_transact(c, NULL, fails_tx, &n), -EREMOTEIO);
    CHECK(errmsg_has("22012"));
    CHECK_EQ(n, 1);
    CHECK_EQ(tx_state(c), 0);
    wv_pg_close(c);
    return 0;
}

static void test_transact_rolls_back_and_returns_other_errors(void **state)
{
    assert_int_equal(run_in_rt(1, transact_error_body, NULL), 0);
    assert_checks_passed();
}

/* ----------------------------------------------------- statement cache */

static int64_t prepared_count(wv_pg_conn *c, const char *sql)
{
    return QUERY_INT(c, "SELECT count(*) FROM pg_prepared_statements WHERE statement = $1",
                     WV_PG_TEXT(sql));
}

static int cache_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL);
    REQUIRE(c);
    const char *sql = "SELECT $1::int + 100";
    wv_pg_conn_stats a, b;
    wv_pg_conn_stats_get(c, &a);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(QUERY_INT(c, sql, WV_PG_INT(i)), 100 + i);
    wv_pg_conn_stats_get(c, &b);
    CHECK_EQ(b.prepares - a.prepares, 1);
    CHECK_EQ(prepared_count(c, sql), 1);

    /* a stale plan (the table changed shape) is prepared again, transparently */
    char t[64], q[256], sel[256];
    tname(t, sizeof t, "cache");
    wv_pg_exec(c, sqlf(q, sizeof q, "DROP TABLE IF EXISTS %s", t));
    REQUIRE_EQ(wv_pg_exec(c, sqlf(q, sizeof q, "CREATE TABLE %s (a int)", t)), 0);
    REQUIRE_EQ(wv_pg_exec(c, sqlf(q, sizeof q, "INSERT INTO %s VALUES (1)", t)), 1);
    sqlf(sel, sizeof sel, "SELECT * FROM %s", t);
    wv_pg_result *r;
    CHECK_EQ(wv_pg_query(c, &r, sel), 1);
    CHECK_EQ(wv_pg_ncols(r), 1);
    wv_pg_result_free(r);
    CHECK_EQ(wv_pg_exec(c, sqlf(q, sizeof q, "ALTER TABLE %s ADD COLUMN b int DEFAULT 2", t)), 0);
    wv_pg_conn_stats_get(c, &a);
    CHECK_EQ(wv_pg_query(c, &r, sel), 1);
    CHECK_EQ(wv_pg_ncols(r), 2);
    wv_pg_result_free(r);
    wv_pg_conn_stats_get(c, &b);
    CHECK_EQ(b.retries - a.retries, 1);
    wv_pg_exec(c, sqlf(q, sizeof q, "DROP TABLE %s", t));
    wv_pg_close(c);

    /* a small cache keeps the most recent statements only */
    c = connect_ok(&(wv_pg_opts){.statement_cache = 3});
    REQUIRE(c);
    for (int i = 0; i < 10; i++) {
        char s[64];
        snprintf(s, sizeof s, "SELECT $1::int + %d", i);
        CHECK_EQ(QUERY_INT(c, s, WV_PG_INT(1)), 1 + i);
        CHECK_EQ(QUERY_INT(c, s, WV_PG_INT(2)), 2 + i);
    }
    CHECK(QUERY_INT(c, "SELECT count(*) FROM pg_prepared_statements") <= 3);
    CHECK_EQ(prepared_count(c, "SELECT $1::int + 9"), 1);
    CHECK_EQ(prepared_count(c, "SELECT $1::int + 0"), 0);
    wv_pg_close(c);

    /* and none at all */
    c = connect_ok(&(wv_pg_opts){.statement_cache = -1});
    REQUIRE(c);
    CHECK_EQ(QUERY_INT(c, sql, WV_PG_INT(1)), 101);
    CHECK_EQ(QUERY_INT(c, "SELECT count(*) FROM pg_prepared_statements"), 0);
    wv_pg_conn_stats_get(c, &b);
    CHECK_EQ(b.prepares, 0);
    wv_pg_close(c);
    return 0;
}

static void test_statements_are_prepared_once_per_connection(void **state)
{
    assert_int_equal(run_in_rt(1, cache_body, NULL), 0);
    assert_checks_passed();
}

/* --------------------------------------------------------- LISTEN/NOTIFY */

static int notify_body(void *arg)
{
    wv_pg_conn *l = connect_ok(NULL), *n = connect_ok(NULL);
    REQUIRE(l && n);
    char chan[64];
    snprintf(chan, sizeof chan, "wv chan \"%d\"", (int)getpid()); /* needs quoting */
    CHECK_EQ(wv_pg_listen(l, chan), 0);
    CHECK_EQ(wv_pg_notify(n, chan, "hello"), 0);
    CHECK_EQ(wv_pg_notify(n, chan, "world"), 0);
    CHECK_EQ(wv_pg_notify(n, "some other channel", "nope"), 0);
    wv_pg_notification *m = NULL;
    int64_t old = wv_deadline_set(wv_after_ms(2000));
    CHECK_EQ(wv_pg_notification_recv(l, &m), 0);
    if (m) {
        CHECK_STR_EQ(m->channel, chan);
        CHECK_STR_EQ(m->payload, "hello");
        CHECK_EQ(m->pid, wv_pg_conn_pid(n));
        wv_pg_notification_free(m);
    }
    CHECK_EQ(wv_pg_notification_recv(l, &m), 0);
    if (m) {
        CHECK_STR_EQ(m->payload, "world");
        wv_pg_notification_free(m);
    }
    wv_deadline_set(old);
    /* nothing more: the wait ends at the deadline */
    old = wv_deadline_set(wv_after_ms(100));
    CHECK_EQ(wv_pg_notification_recv(l, &m), -ETIMEDOUT);
    wv_deadline_set(old);
    /* the listening connection runs statements meanwhile */
    CHECK_EQ(QUERY_INT(l, "SELECT 4"), 4);
    /* after UNLISTEN nothing arrives */
    CHECK_EQ(wv_pg_unlisten(l, chan), 0);
    CHECK_EQ(wv_pg_notify(n, chan, "late"), 0);
    CHECK_EQ(QUERY_INT(l, "SELECT 5"), 5);
    old = wv_deadline_set(wv_after_ms(100));
    CHECK_EQ(wv_pg_notification_recv(l, &m), -ETIMEDOUT);
    wv_deadline_set(old);
    /* the same notifications as a channel, waited on with another one */
    CHECK_EQ(wv_pg_listen(l, chan), 0);
    wv_chan *notes = wv_pg_notifications(l);
    wv_chan *other = wv_chan_new(sizeof(int), 1);
    REQUIRE(notes != NULL && other != NULL);
    CHECK_EQ(wv_pg_notify(n, chan, "via select"), 0);
    wv_pg_notification *got = NULL;
    int nothing;
    wv_select_case cases[] = {{other, WV_RECV, &nothing, 0}, {notes, WV_RECV, &got, 0}};
    CHECK_EQ(wv_chan_select(cases, 2, wv_after_ms(5000)), 1);
    CHECK(got != NULL && strcmp(got->channel, chan) == 0 &&
          strcmp(got->payload, "via select") == 0);
    wv_pg_notification_free(got);
    wv_chan_free(other);
    CHECK(wv_pg_notifications(NULL) == NULL);
    CHECK_EQ(wv_pg_unlisten(l, NULL), 0);
    CHECK_EQ(wv_pg_listen(l, ""), -EINVAL);
    wv_pg_close(n);
    wv_pg_close(l);
    return 0;
}

static void test_listen_delivers_notifications_in_order_by_recv_or_as_a_channel(void **state)
{
    assert_int_equal(run_in_rt(1, notify_body, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------------ COPY */

typedef struct copy_rows {
    int n;
    int stop_after; /* > 0: fail after this many rows */
} copy_rows;

static void row_name(int i, char *out, size_t n)
{
    snprintf(out, n, "name\t%d\nwith \\ and \"quotes\"", i);
}

static int write_rows(wv_pg_copy *cp, void *arg)
{
    copy_rows *cr = arg;
    for (int i = 1; i <= cr->n; i++) {
        if (cr->stop_after && i > cr->stop_after)
            return wv_fail(-ECANCELED, "test: stopped at row %d", i);
        char name[64];
        row_name(i, name, sizeof name);
        unsigned char bin[4] = {0, (unsigned char)i, '\t', 0xff};
        int rc = wv_pg_copy_row(cp, WV_PG_INT(i), WV_PG_TEXT(name), WV_PG_BYTES(bin, 4),
                                i % 10 == 0 ? WV_PG_NULL : WV_PG_FLOAT(i / 4.0));
        if (rc < 0)
            return rc;
    }
    return 0;
}

typedef struct copy_seen {
    int rows;
    bool first_ok;
    size_t bytes;
} copy_seen;

static int read_row(const char *data, size_t n, void *arg)
{
    copy_seen *s = arg;
    if (s->rows == 0)
        s->first_ok = n == strlen("1\t0.25\n") && memcmp(data, "1\t0.25\n", n) == 0;
    s->rows++;
    s->bytes += n;
    return 0;
}

static int stop_reading(const char *data, size_t n, void *arg)
{
    int *rows = arg;
    return ++*rows == 10 ? wv_fail(-EINTR, "test: enough") : 0;
}

static int write_csv(wv_pg_copy *cp, void *arg)
{
    const char *csv = "100001,\"a, b\"\n100002,plain\n";
    return wv_pg_copy_write(cp, csv, strlen(csv));
}

typedef struct copy_neighbour {
    wv_pg_conn *c;
    int64_t v;
} copy_neighbour;

static int copy_neighbour_fn(void *arg)
{
    copy_neighbour *n = arg;
    n->v = QUERY_INT(n->c, "SELECT 42");
    return 0;
}

static int copy_body(void *arg)
{
    wv_pg_conn *c = connect_ok(NULL);
    REQUIRE(c);
    char t[64], q[256], q2[256];
    tname(t, sizeof t, "copy");
    wv_pg_exec(c, sqlf(q, sizeof q, "DROP TABLE IF EXISTS %s", t));
    REQUIRE_EQ(wv_pg_exec(c, sqlf(q, sizeof q,
                                  "CREATE TABLE %s (id int, name text, data bytea, f float8)", t)),
               0);
    /* another fiber's statement waits for the COPY, then runs */
    copy_neighbour nb = {.c = c, .v = 0};
    wv_group *g = wv_group_new();
    wv_group_spawn(g, copy_neighbour_fn, &nb, NULL);
    copy_rows cr = {.n = 10000};
    CHECK_EQ(wv_pg_copy_in(c, sqlf(q, sizeof q, "COPY %s (id, name, data, f) FROM STDIN", t),
                           write_rows, &cr),
             10000);
    wv_group_join(g);
    wv_group_free(g);
    CHECK_EQ(nb.v, 42);
    CHECK_EQ(QUERY_INT(c, sqlf(q, sizeof q, "SELECT count(*) FROM %s", t)), 10000);
    CHECK_EQ(QUERY_INT(c, sqlf(q, sizeof q, "SELECT count(*) FROM %s WHERE f IS NULL", t)), 1000);
    wv_pg_result *r;
    REQUIRE_EQ(wv_pg_query(c, &r, sqlf(q, sizeof q, "SELECT name, data FROM %s WHERE id = $1", t),
                           WV_PG_INT(77)),
               1);
    char want[64];
    row_name(77, want, sizeof want);
    wv_str s;
    CHECK_EQ(wv_pg_get_text(r, 0, 0, &s), 0);
    CHECK(wv_str_eq_cstr(s, want));
    CHECK_EQ(wv_pg_get_bytes(r, 0, 1, &s), 0);
    CHECK(s.n == 4 && memcmp(s.p, "\0M\t\xff", 4) == 0);
    wv_pg_result_free(r);

    /* a COPY the application aborts keeps nothing */
    cr = (copy_rows){.n = 100, .stop_after = 5};
    CHECK_EQ(wv_pg_copy_in(c, sqlf(q, sizeof q, "COPY %s (id, name, data, f) FROM STDIN", t),
                           write_rows, &cr),
             -ECANCELED);
    CHECK(errmsg_has("stopped at row 6"));
    CHECK_EQ(QUERY_INT(c, sqlf(q, sizeof q, "SELECT count(*) FROM %s", t)), 10000);

    /* raw CSV */
    CHECK_EQ(wv_pg_copy_in(c, sqlf(q, sizeof q, "COPY %s (id, name) FROM STDIN (FORMAT csv)", t),
                           write_csv, NULL),
             2);
    CHECK_EQ(QUERY_INT(c, sqlf(q, sizeof q, "SELECT count(*) FROM %s WHERE name = $1", t),
                       WV_PG_TEXT("a, b")),
             1);

    /* COPY out */
    copy_seen seen = {0};
    CHECK_EQ(wv_pg_copy_out(c,
                            sqlf(q, sizeof q,
                                 "COPY (SELECT id, f FROM %s WHERE id <= 10000 "
                                 "ORDER BY id) TO STDOUT",
                                 t),
                            read_row, &seen),
             10000);
    CHECK_EQ(seen.rows, 10000);
    CHECK(seen.first_ok);
    int rows = 0;
    CHECK_EQ(wv_pg_copy_out(c, sqlf(q, sizeof q, "COPY %s TO STDOUT", t), stop_reading, &rows),
             -EINTR);
    CHECK(errmsg_has("enough"));
    CHECK_EQ(rows, 10);

    /* not a COPY, or a bad one: errors, and the connection goes on */
    CHECK_EQ(wv_pg_copy_out(c, "SELECT 1", read_row, &seen), -EINVAL);
    CHECK_EQ(wv_pg_copy_in(c, "COPY wv_no_such_table FROM STDIN", write_csv, NULL), -EREMOTEIO);
    CHECK_EQ(QUERY_INT(c, "SELECT 43"), 43);

    /* COPY as a plain statement is refused (and the stream cannot go on) */
    CHECK_EQ(wv_pg_exec(c, sqlf(q2, sizeof q2, "COPY %s TO STDOUT", t)), -EPROTO);
    CHECK(!wv_pg_conn_ok(c));
    wv_pg_close(c);
    c = connect_ok(NULL);
    REQUIRE(c);
    wv_pg_exec(c, sqlf(q, sizeof q, "DROP TABLE %s", t));
    wv_pg_close(c);
    return 0;
}

static void test_copy_in_and_out_move_bulk_data(void **state)
{
    assert_int_equal(run_in_rt(1, copy_body, NULL), 0);
    assert_checks_passed();
}

/* --------------------------------------------------------------- metrics */

/* The value of one sample line in the default registry's exposition. */
static double sample(const char *line_start)
{
    wv_buf out = {0};
    double v = -1;
    if (wv_metrics_render(NULL, WV_METRICS_PROMETHEUS, &out) == 0 &&
        wv_buf_append(&out, "", 1) == 0) {
        const char *p = strstr(out.p, line_start);
        if (p)
            v = strtod(p + strlen(line_start), NULL);
    }
    wv_buf_free(&out);
    return v;
}

static int metrics_body(void *arg)
{
    wv_pg_pool *p;
    REQUIRE_EQ(wv_pg_pool_new(url, &(wv_pg_pool_opts){.conn.name = "metrics_test"}, &p), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wv_pg_pool_exec(p, "SELECT 1"), 1);
    CHECK_EQ(wv_pg_pool_exec(p, "SELECT 1/0"), -EREMOTEIO);
    wv_pg_conn *c;
    REQUIRE_EQ(wv_pg_pool_acquire(p, &c), 0);
    int64_t old = wv_deadline_set(wv_after_ms(50));
    CHECK_EQ(wv_pg_exec(c, "SELECT pg_sleep(2)"), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK(sample("weave_pg_pool_connections{db=\"metrics_test\",state=\"busy\"} ") == 1);
    wv_pg_pool_release(p, c);
    CHECK(sample("weave_pg_queries_total{db=\"metrics_test\",status=\"ok\"} ") == 3);
    CHECK(sample("weave_pg_queries_total{db=\"metrics_test\",status=\"error\"} ") == 1);
    CHECK(sample("weave_pg_queries_total{db=\"metrics_test\",status=\"timeout\"} ") == 1);
    CHECK(sample("weave_pg_query_duration_seconds_count{db=\"metrics_test\"} ") == 4);
    CHECK(sample("weave_pg_batches_total{db=\"metrics_test\"} ") >= 4);
    CHECK(sample("weave_pg_connects_total{db=\"metrics_test\",status=\"ok\"} ") == 1);
    /* the reset finishes, then the connection is idle again */
    for (int i = 0; i < 100; i++) {
        wv_pg_pool_stats st;
        wv_pg_pool_stats_get(p, &st);
        if (st.idle == 1)
            break;
        wv_sleep_ms(20);
    }
    CHECK(sample("weave_pg_pool_connections{db=\"metrics_test\",state=\"idle\"} ") == 1);
    CHECK(sample("weave_pg_pool_connections{db=\"metrics_test\",state=\"busy\"} ") == 0);
    CHECK(sample("weave_pg_cancels_total{db=\"metrics_test\"} ") == 1);
    wv_pg_pool_free(p);
    return 0;
}

static void test_metrics_count_statements_and_connections(void **state)
{
    assert_int_equal(run_in_rt(1, metrics_body, NULL), 0);
    assert_checks_passed();
}

/* A pool of 2 with 5 fibers after it: the size, the fibers waiting, and a
 * wait cut off by its deadline. */
static int pool_exhaustion_body(void *arg)
{
    (void)arg;
    const char *max = "weave_pg_pool_max_connections{db=\"exhaust_test\"} ";
    const char *waiters = "weave_pg_pool_waiters{db=\"exhaust_test\"} ";
    const char *timeouts = "weave_pg_pool_acquire_timeouts_total{db=\"exhaust_test\"} ";
    wv_pg_pool *p;
    REQUIRE_EQ(
        wv_pg_pool_new(url, &(wv_pg_pool_opts){.max_size = 2, .conn.name = "exhaust_test"}, &p), 0);
    CHECK(sample(max) == 2);
    CHECK(sample(waiters) == 0);
    CHECK(sample(timeouts) == 0);
    wv_pg_conn *a, *b;
    REQUIRE_EQ(wv_pg_pool_acquire(p, &a), 0);
    REQUIRE_EQ(wv_pg_pool_acquire(p, &b), 0);
    holder h[3];
    wv_group *g = wv_group_new();
    for (int i = 0; i < 3; i++) {
        h[i] = (holder){.p = p, .ms = 5000};
        wv_group_spawn(g, acquirer_fn, &h[i], NULL);
    }
    wv_sleep_ms(50);
    CHECK(sample(waiters) == 3);
    CHECK(sample("weave_pg_pool_connections{db=\"exhaust_test\",state=\"busy\"} ") == 2);
    /* one more with a short deadline: it times out, the others wait on */
    holder late = {.p = p, .ms = 50};
    wv_group *lg = wv_group_new();
    wv_group_spawn(lg, acquirer_fn, &late, NULL);
    wv_group_join(lg);
    wv_group_free(lg);
    CHECK_EQ(late.rc, -ETIMEDOUT);
    CHECK(sample(timeouts) == 1);
    CHECK(sample(waiters) == 3);
    /* the connections come back: every waiter gets one, none times out */
    wv_pg_pool_release(p, a);
    wv_pg_pool_release(p, b);
    wv_group_join(g);
    wv_group_free(g);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(h[i].rc, 0);
    CHECK(sample(waiters) == 0);
    CHECK(sample(timeouts) == 1);
    wv_pg_pool_free(p);
    /* a pool gone no longer counts in the size */
    CHECK(sample(max) == 0);
    return 0;
}

static void test_metrics_show_pool_exhaustion(void **state)
{
    assert_int_equal(run_in_rt(1, pool_exhaustion_body, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    url = getenv("WEAVE_TEST_PG_URL");
    if (!url || !*url) {
        const char *skip = getenv("WEAVE_TEST_PG_SKIP");
        if (skip && strcmp(skip, "1") == 0) {
            printf("test_pg: skipped (WEAVE_TEST_PG_SKIP=1, no WEAVE_TEST_PG_URL)\n");
            return 0;
        }
        fprintf(stderr, "test_pg: WEAVE_TEST_PG_URL is not set. Start a server with\n"
                        "  scripts/pg_test_server.sh start /tmp/pg 15440\n"
                        "and export WEAVE_TEST_PG_URL=<the URL it prints> (plus "
                        "WEAVE_TEST_PG_CTL and WEAVE_TEST_PG_DIR for the restart test),\n"
                        "or set WEAVE_TEST_PG_SKIP=1 to skip these tests.\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connect_succeeds_and_reports_the_backend_pid),
        cmocka_unit_test(test_connect_with_a_wrong_password_is_eacces),
        cmocka_unit_test(test_connect_to_a_closed_port_is_econnrefused),
        cmocka_unit_test(test_connect_resolves_host_names_off_the_loop),
        cmocka_unit_test(test_connect_honours_timeouts_and_rejects_bad_urls),
        cmocka_unit_test(test_nulls_read_as_nulls_and_typed_reads_say_enodata),
        cmocka_unit_test(test_typed_accessors_read_every_type),
        cmocka_unit_test(test_typed_accessors_refuse_other_types_with_edom),
        cmocka_unit_test(test_arguments_travel_as_parameters_never_as_sql),
        cmocka_unit_test(test_exec_returns_the_rows_touched),
        cmocka_unit_test(test_a_large_result_of_100k_rows_arrives_whole),
        cmocka_unit_test(test_server_errors_carry_sqlstate_detail_and_hint),
        cmocka_unit_test(test_a_connection_killed_by_the_server_fails_with_econnreset),
        cmocka_unit_test(test_closing_a_connection_in_use_fails_its_callers_cleanly),
        cmocka_unit_test(test_a_deadline_cancels_the_statement_on_the_server),
        cmocka_unit_test(test_cancelling_the_fiber_cancels_the_statement_on_the_server),
        cmocka_unit_test(test_statements_behind_a_timed_out_one_complete_correctly),
        cmocka_unit_test(test_64_fibers_on_one_connection_are_batched_into_few_round_trips),
        cmocka_unit_test(test_without_pipelining_each_statement_is_its_own_round_trip),
        cmocka_unit_test(test_a_batch_sends_its_statements_in_one_round_trip),
        cmocka_unit_test(test_the_pool_survives_a_server_restart_mid_traffic),
        cmocka_unit_test(test_the_pool_never_hands_out_a_connection_in_a_bad_state),
        cmocka_unit_test(test_1000_fibers_on_a_pool_of_10_all_complete),
        cmocka_unit_test(test_pool_acquire_waits_within_its_deadline_and_backs_off),
        cmocka_unit_test(test_transactions_commit_roll_back_and_isolate),
        cmocka_unit_test(test_a_transaction_keeps_other_fibers_statements_out),
        cmocka_unit_test(test_transact_retries_a_serialization_failure),
        cmocka_unit_test(test_transact_rolls_back_and_returns_other_errors),
        cmocka_unit_test(test_statements_are_prepared_once_per_connection),
        cmocka_unit_test(test_listen_delivers_notifications_in_order_by_recv_or_as_a_channel),
        cmocka_unit_test(test_copy_in_and_out_move_bulk_data),
        cmocka_unit_test(test_metrics_count_statements_and_connections),
        cmocka_unit_test(test_metrics_show_pool_exhaustion),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
