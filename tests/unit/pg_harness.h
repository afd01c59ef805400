/*
 * The unit tests' PostgreSQL: the server `make test` starts
 * (scripts/pg_test_server.sh, WEAVE_TEST_PG_URL), each test in a schema of
 * its own that every case starts empty. Without the variable a test
 * fails, unless WEAVE_TEST_PG_SKIP=1 says to skip it. Include after
 * harness.h.
 */
#ifndef WEAVE_TESTS_UNIT_PG_HARNESS_H
#define WEAVE_TESTS_UNIT_PG_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weave/db.h"

/* The server's URL, or NULL when the case is to be skipped. */
static inline const char *pg_test_url(void)
{
    const char *url = getenv("WEAVE_TEST_PG_URL");
    if (!url) {
        const char *skip = getenv("WEAVE_TEST_PG_SKIP");
        if (skip && strcmp(skip, "1") == 0)
            return NULL;
        fail_msg("WEAVE_TEST_PG_URL is not set: make test starts a PostgreSQL "
                 "(scripts/pg_test_server.sh), or set WEAVE_TEST_PG_SKIP=1");
    }
    return url;
}

typedef struct pg_test_schema {
    const char *url, *schema;
} pg_test_schema;

static inline int pg_test_schema_fiber(void *arg)
{
    const pg_test_schema *s = arg;
    wv_db *db;
    int rc = wv_db_open(s->url, NULL, &db);
    if (rc < 0)
        fprintf(stderr, "open %s: %s\n", s->url, wv_errmsg());
    REQUIRE_EQ(rc, 0);
    char sql[160];
    snprintf(sql, sizeof sql, "DROP SCHEMA IF EXISTS %s CASCADE", s->schema);
    CHECK(wv_db_exec(db, sql) >= 0);
    snprintf(sql, sizeof sql, "CREATE SCHEMA %s", s->schema);
    CHECK(wv_db_exec(db, sql) >= 0);
    wv_db_close(db);
    return 0;
}

/* Drop and create `schema` (a plain identifier) on url. */
static inline void pg_test_reset_schema(const char *url, const char *schema)
{
    pg_test_schema s = {url, schema};
    assert_int_equal(run_in_rt(1, pg_test_schema_fiber, &s), 0);
    assert_checks_passed();
}

#endif
