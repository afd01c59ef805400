/*
 * weave's task queue in a database table (src/tasks/db.c), on SQLite (a
 * file in a temp dir) and on PostgreSQL ($WEAVE_TEST_PG_URL, in a schema of
 * its own; without it the PostgreSQL cases fail unless WEAVE_TEST_PG_SKIP=1,
 * as in test_db): an enqueue in a transaction that rolls back leaves
 * nothing and one that commits runs; results (SUCCESS, FAILURE) in the
 * task's row, which an ack keeps with a backend and deletes without one; an
 * ETA is not run before it; a worker that died holding a lease has its task
 * taken again once the lease expires, while a live worker renews the lease
 * of a task longer than the visibility timeout; a message sent again under the same
 * id (Celery's retry) is not acked by the stale delivery, and
 * wv_task_retry reuses the row (RETRY, then SUCCESS); rows that do not
 * decode are rejected and kept, and the worker goes on; done rows are
 * purged after result_expires, rejected ones kept; results kept in another
 * database than the queue's; broadcasts over NOTIFY on PostgreSQL
 * (topic and fanout) and wv_tasks_revoke on them; two clients
 * sharing a queue run each of 300 tasks once; on PostgreSQL, a LISTEN
 * connection killed on the server is made again.
 */
#include "harness.h"
#include "pg_harness.h"

#include <dirent.h>

#include "tasks/transport.h"
#include "weave/db.h"
#include "weave/metrics.h"
#include "weave/tasks.h"

static char tmpdir[64];
static char url[512];

static int make_tmpdir(void **state)
{
    (void)state;
    strcpy(tmpdir, "/tmp/weave_test_tasks_db_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmpdir(void **state)
{
    (void)state;
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

/* ------------------------------------------------------------ the tasks */

#define MAX_RUNS 1024

/* What the tasks saw: every id run, and when. */
typedef struct runs {
    int n;
    char ids[MAX_RUNS][37];
    int64_t at_us[MAX_RUNS];
} runs;

static runs seen;

static void record(wv_task *task)
{
    if (seen.n < MAX_RUNS) {
        snprintf(seen.ids[seen.n], 37, "%s", wv_task_id(task));
        seen.at_us[seen.n] = tasks_real_ns() / 1000;
        seen.n++;
    }
}

static int times_run(const char *id)
{
    int k = 0;
    for (int i = 0; i < seen.n; i++)
        k += strcmp(seen.ids[i], id) == 0;
    return k;
}

static int64_t ran_at(const char *id)
{
    for (int i = 0; i < seen.n; i++)
        if (strcmp(seen.ids[i], id) == 0)
            return seen.at_us[i];
    return -1;
}

static int add(wv_task *task)
{
    record(task);
    int64_t x, y;
    const wv_json_val *a = wv_task_args(task);
    if (wv_json_as_i64(wv_json_array_at(a, 0), &x) < 0 ||
        wv_json_as_i64(wv_json_array_at(a, 1), &y) < 0)
        return wv_task_fail(task, "TypeError", "add takes two integers");
    wv_json_int(wv_task_result(task), x + y);
    return 0;
}

static int fail_task(wv_task *task)
{
    record(task);
    return wv_task_fail(task, "ValueError", "no good");
}

/* Sleeps its first argument (ms), returns it. */
static int sleep_task(wv_task *task)
{
    record(task);
    int64_t ms = 0;
    wv_json_as_i64(wv_json_array_at(wv_task_args(task), 0), &ms);
    int rc = wv_sleep_ms(ms);
    if (rc < 0)
        return rc;
    wv_json_int(wv_task_result(task), ms);
    return 0;
}

/* Retries once (200 ms later), then returns its retry count. */
static int flaky(wv_task *task)
{
    record(task);
    if (wv_task_retries(task) == 0)
        return wv_task_retry(task, &(wv_task_retry_opts){.countdown_ms = 200,
                                                         .exc_type = "ConnectionError",
                                                         .exc_message = "not yet"});
    wv_json_int(wv_task_result(task), wv_task_retries(task));
    return 0;
}

/* ------------------------------------------------------------ the runner */

typedef int case_fn(void);

static int run_case(void *arg)
{
    return ((case_fn *)arg)();
}

static void on_sqlite(case_fn *fn)
{
    snprintf(url, sizeof url, "sqlite://%s/tasks.db", tmpdir);
    memset(&seen, 0, sizeof seen);
    int rc = run_in_rt(1, run_case, (void *)fn);
    assert_checks_passed();
    assert_int_equal(rc, 0);
}

static void on_postgres(case_fn *fn)
{
    const char *pg = pg_test_url();
    if (!pg)
        return;
    pg_test_reset_schema(pg, "weave_test_tasks");
    /* every connection (the pool's and the LISTEN one) in the test's schema */
    snprintf(url, sizeof url, "%s%soptions=-csearch_path%%3Dweave_test_tasks", pg,
             strchr(pg, '?') ? "&" : "?");
    memset(&seen, 0, sizeof seen);
    int rc = run_in_rt(1, run_case, (void *)fn);
    assert_checks_passed();
    assert_int_equal(rc, 0);
}

#define BOTH(name)                                                                                 \
    static void test_sqlite_##name(void **state)                                                   \
    {                                                                                              \
        (void)state;                                                                               \
        on_sqlite(name);                                                                           \
    }                                                                                              \
    static void test_postgres_##name(void **state)                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        on_postgres(name);                                                                         \
    }

/* A client working in a fiber of its own until stopped. */
typedef struct worker {
    wv_tasks *t;
    wv_group *g;
} worker;

static int work(void *arg)
{
    int rc = wv_tasks_work(arg);
    return rc == -ECANCELED ? 0 : rc;
}

static int worker_start(worker *w, const wv_tasks_opts *opts)
{
    *w = (worker){0};
    int rc = wv_tasks_open(url, opts, &w->t);
    if (rc < 0) {
        fprintf(stderr, "wv_tasks_open: %s (%s)\n", wv_strerror(rc), wv_errmsg());
        return rc;
    }
    wv_tasks_register(w->t, "t.add", add, NULL);
    wv_tasks_register(w->t, "t.fail", fail_task, NULL);
    wv_tasks_register(w->t, "t.sleep", sleep_task, NULL);
    wv_tasks_register(w->t, "t.flaky", flaky, NULL);
    w->g = wv_group_new();
    return wv_group_spawn(w->g, work, w->t, NULL);
}

static void worker_stop(worker *w)
{
    if (w->g) {
        wv_group_cancel(w->g);
        CHECK_EQ(wv_group_join(w->g), 0);
        wv_group_free(w->g);
    }
    wv_tasks_close(w->t);
    *w = (worker){0};
}

/* The results are the queue's rows. */
static wv_tasks_opts with_results(void)
{
    return (wv_tasks_opts){.backend = url, .concurrency = 4};
}

/* Wait (10 s at most) for id's result: the wv_tasks_result code. */
static int result(wv_tasks *t, const char *id, wv_buf *out)
{
    wv_buf_reset(out);
    int64_t old = wv_deadline_set(wv_after_ms(10000));
    int rc = wv_tasks_result(t, id, out);
    wv_deadline_set(old);
    return rc;
}

static int64_t count_rows(wv_db *db, const char *where)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM weave_tasks WHERE %s", where);
    int64_t n = -1;
    int rc = wv_db_query_int_argv(db, &n, sql, NULL, 0);
    if (rc < 0)
        fprintf(stderr, "%s: %s\n", sql, wv_errmsg());
    return n;
}

/* A text column of task id's row, in buf ("" for NULL, "?" without a row). */
static const char *column(wv_db *db, const char *col, const char *id, char *buf, size_t n)
{
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT %s FROM weave_tasks WHERE id = $1", col);
    wv_db_rows *r = NULL;
    const char *v = NULL;
    snprintf(buf, n, "?");
    if (wv_db_query_row_argv(db, &r, sql, (wv_db_value[]){wv_db_text(id)}, 1) == 0) {
        if (wv_db_is_null(r, 0, 0))
            snprintf(buf, n, "%s", "");
        else if (wv_db_get_text(r, 0, 0, &v, NULL) == 0)
            snprintf(buf, n, "%s", v);
        else {
            int64_t i = 0;
            wv_db_get_int(r, 0, 0, &i);
            snprintf(buf, n, "%lld", (long long)i);
        }
    }
    wv_db_rows_free(r);
    return buf;
}

/* ------------------------------------------------------------ the cases */

typedef struct enq {
    const char *name, *args;
    wv_task_send_opts opts;
    char id[37];
    bool fail_after; /* roll back */
} enq;

/* The application's work and its task, in one transaction. */
static int order_and_task(wv_db *tx, void *arg)
{
    enq *e = arg;
    int rc = wv_db_exec(tx, "INSERT INTO orders (note) VALUES ($1)", wv_db_text(e->args));
    if (rc < 0)
        return rc;
    rc = wv_task_enqueue(tx, e->name, e->args, &e->opts, e->id);
    if (rc < 0)
        return rc;
    return e->fail_after ? -ECANCELED : 0;
}

static int enqueue_commits_or_rolls_back(void)
{
    worker w;
    wv_tasks_opts o = with_results();
    REQUIRE_EQ(worker_start(&w, &o), 0); /* creates the table */
    wv_db *db;
    REQUIRE_EQ(wv_db_open(url, NULL, &db), 0);
    CHECK(wv_db_exec(db, "CREATE TABLE orders (note TEXT)") >= 0);

    enq gone = {.name = "t.add", .args = "[1, 1]", .fail_after = true};
    CHECK_EQ(wv_db_transaction(db, order_and_task, &gone), -ECANCELED);
    CHECK_EQ(strlen(gone.id), 36);
    enq kept = {.name = "t.add", .args = "[2, 3]"};
    CHECK_EQ(wv_db_transaction(db, order_and_task, &kept), 0);
    /* begin/commit by hand too */
    wv_db *tx;
    enq manual = {.name = "t.add", .args = "[20, 22]"};
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    CHECK_EQ(order_and_task(tx, &manual), 0);
    CHECK_EQ(wv_db_commit(tx), 0);

    wv_buf out = {0};
    CHECK_EQ(result(w.t, kept.id, &out), 0);
    CHECK(out.n == 1 && memcmp(out.p, "5", 1) == 0);
    CHECK_EQ(result(w.t, manual.id, &out), 0);
    CHECK(out.n == 2 && memcmp(out.p, "42", 2) == 0);
    /* the rolled-back one: neither the order nor the task exists, and it
     * never ran */
    char v[64];
    CHECK_STR_EQ(column(db, "state", gone.id, v, sizeof v), "?");
    CHECK_EQ(count_rows(db, "1 = 1"), 2);
    int64_t orders = -1;
    CHECK_EQ(wv_db_query_int(db, &orders, "SELECT count(*) FROM orders"), 0);
    CHECK_EQ(orders, 2);
    CHECK_EQ(times_run(gone.id), 0);
    CHECK_EQ(times_run(kept.id), 1);
    CHECK_EQ(times_run(manual.id), 1);
    wv_buf_free(&out);
    wv_db_close(db);
    worker_stop(&w);
    return 0;
}
BOTH(enqueue_commits_or_rolls_back)

static int results_live_in_the_row(void)
{
    worker w;
    wv_tasks_opts o = with_results();
    REQUIRE_EQ(worker_start(&w, &o), 0);
    wv_db *db;
    REQUIRE_EQ(wv_db_open(url, NULL, &db), 0);
    char ok[37], bad[37], v[512];
    CHECK_EQ(wv_tasks_send(w.t, "t.add", "[40, 2]", NULL, ok), 0);
    CHECK_EQ(wv_tasks_send(w.t, "t.fail", "[]", NULL, bad), 0);
    wv_buf out = {0};
    CHECK_EQ(result(w.t, ok, &out), 0);
    CHECK(out.n == 2 && memcmp(out.p, "42", 2) == 0);
    CHECK_EQ(result(w.t, bad, &out), -EREMOTEIO);
    CHECK_STR_EQ(wv_errmsg(), "ValueError: no good");
    /* the rows: final state, Celery's meta, no delivery pending */
    CHECK_STR_EQ(column(db, "state", ok, v, sizeof v), "SUCCESS");
    CHECK(strstr(column(db, "result", ok, v, sizeof v), "\"result\": 42") != NULL);
    CHECK_STR_EQ(column(db, "state", bad, v, sizeof v), "FAILURE");
    CHECK(strstr(column(db, "result", bad, v, sizeof v), "\"exc_type\": \"ValueError\"") != NULL);
    CHECK_STR_EQ(column(db, "run_at", ok, v, sizeof v), "");
    CHECK_STR_EQ(column(db, "lock_token", ok, v, sizeof v), "");
    CHECK_STR_EQ(column(db, "attempts", ok, v, sizeof v), "1");
    CHECK_STR_EQ(column(db, "queue", ok, v, sizeof v), "celery");
    CHECK_STR_EQ(column(db, "name", ok, v, sizeof v), "t.add");
    worker_stop(&w);

    /* without a result backend an ack deletes the row */
    o = (wv_tasks_opts){0};
    REQUIRE_EQ(worker_start(&w, &o), 0);
    char gone[37];
    CHECK_EQ(wv_tasks_send(w.t, "t.add", "[1, 2]", NULL, gone), 0);
    for (int i = 0; i < 1000 && times_run(gone) == 0; i++)
        wv_sleep_ms(10);
    CHECK_EQ(times_run(gone), 1);
    for (int i = 0; i < 1000 && strcmp(column(db, "state", gone, v, sizeof v), "?") != 0; i++)
        wv_sleep_ms(10);
    CHECK_STR_EQ(column(db, "state", gone, v, sizeof v), "?");
    worker_stop(&w);
    wv_buf_free(&out);
    wv_db_close(db);
    return 0;
}
BOTH(results_live_in_the_row)

static int eta_is_not_run_before(void)
{
    worker w;
    wv_tasks_opts o = with_results();
    REQUIRE_EQ(worker_start(&w, &o), 0);
    wv_db *db;
    REQUIRE_EQ(wv_db_open(url, NULL, &db), 0);
    char later[37], now[37];
    int64_t sent_us = tasks_real_ns() / 1000;
    wv_db *tx;
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    CHECK_EQ(
        wv_task_enqueue(tx, "t.add", "[1, 2]", &(wv_task_send_opts){.countdown_ms = 700}, later),
        0);
    CHECK_EQ(wv_task_enqueue(tx, "t.add", "[3, 4]", NULL, now), 0);
    CHECK_EQ(wv_db_commit(tx), 0);
    wv_buf out = {0};
    CHECK_EQ(result(w.t, later, &out), 0);
    CHECK(out.n == 1 && memcmp(out.p, "3", 1) == 0);
    CHECK_EQ(result(w.t, now, &out), 0);
    CHECK(out.n == 1 && memcmp(out.p, "7", 1) == 0);
    /* the countdown held it: it ran after its ETA, whatever the order */
    CHECK(ran_at(later) >= sent_us + 700000);
    CHECK_EQ(times_run(later), 1);
    wv_buf_free(&out);
    wv_db_close(db);
    worker_stop(&w);
    return 0;
}
BOTH(eta_is_not_run_before)

/* A transport as a worker's, to take messages by hand. */
static tasks_transport *raw_transport(int64_t vt_ms)
{
    tasks_cfg cfg = {
        .queue = "celery", .concurrency = 1, .vt_ms = vt_ms, .result_expires_ms = 86400000};
    tasks_transport *tr = NULL;
    int rc = tasks_db_open(url, &cfg, &tr);
    if (rc < 0)
        fprintf(stderr, "tasks_db_open: %s (%s)\n", wv_strerror(rc), wv_errmsg());
    return tr;
}

static int dead_worker_lease_expires(void)
{
    wv_db *db;
    REQUIRE_EQ(wv_db_open(url, NULL, &db), 0);
    /* a worker takes the task and dies: its lease of 600 ms is left */
    tasks_transport *dying = raw_transport(600);
    REQUIRE(dying != NULL);
    char id[37], v[64];
    CHECK_EQ(wv_task_enqueue(db, "t.add", "[5, 6]", NULL, id), 0);
    tasks_msg m = {0};
    CHECK_EQ(dying->ops->take(dying, "celery", 5000, &m), 1);
    CHECK_STR_EQ(m.msg.id.p, id);
    int64_t lease_end_us = 0;
    wv_db_rows *r = NULL;
    CHECK_EQ(wv_db_query_row(db, &r, "SELECT locked_until FROM weave_tasks WHERE id = $1",
                             wv_db_text(id)),
             0);
    CHECK_EQ(wv_db_get_time(r, 0, 0, &lease_end_us), 0);
    wv_db_rows_free(r);
    CHECK_STR_EQ(column(db, "attempts", id, v, sizeof v), "1");
    celery_task_free(&m.msg);
    dying->ops->close(dying); /* no ack, no requeue */

    worker w;
    wv_tasks_opts o = with_results();
    o.acks_late = true;
    REQUIRE_EQ(worker_start(&w, &o), 0);
    wv_buf out = {0};
    CHECK_EQ(result(w.t, id, &out), 0);
    CHECK(out.n == 2 && memcmp(out.p, "11", 2) == 0);
    CHECK_EQ(times_run(id), 1);
    CHECK(ran_at(id) >= lease_end_us); /* not before the lease expired */
    CHECK_STR_EQ(column(db, "attempts", id, v, sizeof v), "2");
    /* acks_late: acked once it ran (after the result was stored) */
    for (int i = 0; i < 500 && strcmp(column(db, "run_at", id, v, sizeof v), "") != 0; i++)
        wv_sleep_ms(10);
    CHECK_STR_EQ(column(db, "run_at", id, v, sizeof v), "");
    worker_stop(&w);
    wv_buf_free(&out);
    wv_db_close(db);
    return 0;
}
BOTH(dead_worker_lease_expires)

/* A task longer than the visibility timeout: its worker renews the lease
 * while it runs, so nobody (not even that worker) takes it again. */
static int long_task_keeps_its_lease(void)
{
    worker w;
    wv_tasks_opts o = with_results();
    o.acks_late = true;
    o.visibility_timeout_ms = 300;
    REQUIRE_EQ(worker_start(&w, &o), 0);
    wv_db *db;
    REQUIRE_EQ(wv_db_open(url, NULL, &db), 0);
    char id[37], v[64];
    CHECK_EQ(wv_task_enqueue(db, "t.sleep", "[1500]", NULL, id), 0);
    wv_buf out = {0};
    CHECK_EQ(result(w.t, id, &out), 0);
    CHECK(out.n == 4 && memcmp(out.p, "1500", 4) == 0);
    CHECK_EQ(times_run(id), 1);
    CHECK_STR_EQ(column(db, "attempts", id, v, sizeof v), "1");
    wv_buf_free(&out);
    wv_db_close(db);
    worker_stop(&w);
    return 0;
}
BOTH(long_task_keeps_its_lease)

/* Celery's retry sends the same id again while the first delivery is
 * still held: the stale delivery's ack must not consume the new one. */
static int resend_same_id_survives_stale_ack(void)
{
    tasks_transport *tr = raw_transport(60000);
    REQUIRE(tr != NULL);
    celery_task_msg cm;
    celery_task_msg_init(&cm);
    cm.task = "t.add";
    cm.id = "00000000-0000-4000-8000-000000000001";
    cm.args = "[1, 2]";
    cm.args_len = 6;
    cm.routing_key = "celery";
    CHECK_EQ(tr->ops->send(tr, &cm, "celery"), 0);
    tasks_msg first = {0}, second = {0}, none = {0};
    CHECK_EQ(tr->ops->take(tr, "celery", 5000, &first), 1);
    CHECK_EQ(first.msg.retries, 0);
    cm.retries = 1;
    cm.args = "[3, 4]";
    CHECK_EQ(tr->ops->send(tr, &cm, "celery"), 0);
    CHECK_EQ(tr->ops->ack(tr, &first), 0); /* stale: no effect */
    CHECK_EQ(tr->ops->take(tr, "celery", 5000, &second), 1);
    CHECK_STR_EQ(second.msg.id.p, cm.id);
    CHECK_EQ(second.msg.retries, 1);
    CHECK(second.msg.args.n == 6 && memcmp(second.msg.args.p, "[3, 4]", 6) == 0);
    /* requeue gives it back at once; ack ends it */
    CHECK_EQ(tr->ops->requeue(tr, &second), 0);
    celery_task_free(&second.msg);
    second = (tasks_msg){0};
    CHECK_EQ(tr->ops->take(tr, "celery", 5000, &second), 1);
    CHECK_EQ(tr->ops->ack(tr, &second), 0);
    CHECK_EQ(tr->ops->take(tr, "celery", 300, &none), 0);
    celery_task_free(&first.msg);
    celery_task_free(&second.msg);
    tr->ops->close(tr);
    return 0;
}
BOTH(resend_same_id_survives_stale_ack)

/* wv_task_retry on a database queue: the same row, sent again with its
 * countdown; RETRY in between, then SUCCESS; with acks_late the first
 * delivery's ack does not consume the retried message. */
static int retry_reuses_the_row(void)
{
    for (int late = 0; late < 2; late++) {
        memset(&seen, 0, sizeof seen);
        worker w;
        wv_tasks_opts o = with_results();
        o.acks_late = late;
        REQUIRE_EQ(worker_start(&w, &o), 0);
        wv_db *db;
        REQUIRE_EQ(wv_db_open(url, NULL, &db), 0);
        char id[37], v[512];
        CHECK_EQ(wv_task_enqueue(db, "t.flaky", "[]", NULL, id), 0);
        /* RETRY is stored between the two runs */
        wv_task_state st = WV_TASK_PENDING;
        wv_buf out = {0};
        for (int i = 0; i < 500 && st == WV_TASK_PENDING; i++) {
            wv_buf_reset(&out);
            CHECK_EQ(wv_tasks_state(w.t, id, &st, &out), 0);
            if (st == WV_TASK_PENDING)
                wv_sleep_ms(5);
        }
        CHECK(st == WV_TASK_RETRY || st == WV_TASK_SUCCESS);
        if (st == WV_TASK_RETRY)
            CHECK(out.n >= 16 && memcmp(out.p, "ConnectionError:", 16) == 0);
        CHECK_EQ(result(w.t, id, &out), 0);
        CHECK(out.n == 1 && memcmp(out.p, "1", 1) == 0);
        CHECK_EQ(times_run(id), 2);
        CHECK(seen.n == 2 && seen.at_us[1] - seen.at_us[0] >= 200000);
        CHECK_EQ(wv_tasks_state(w.t, id, &st, &out), 0);
        CHECK_EQ(st, WV_TASK_SUCCESS);
        CHECK_EQ(count_rows(db, "1 = 1"), 1);
        CHECK_STR_EQ(column(db, "attempts", id, v, sizeof v), "2");
        CHECK(strstr(column(db, "headers", id, v, sizeof v), "\"retries\": 1") != NULL);
        for (int i = 0; i < 500 && strcmp(column(db, "run_at", id, v, sizeof v), "") != 0; i++)
            wv_sleep_ms(10);
        CHECK_STR_EQ(column(db, "run_at", id, v, sizeof v), "");
        wv_buf_free(&out);
        CHECK(wv_db_exec(db, "DELETE FROM weave_tasks") >= 0);
        wv_db_close(db);
        worker_stop(&w);
    }
    return 0;
}
BOTH(retry_reuses_the_row)

/* The value of the sample whose line starts with the printf-made text in
 * the default registry's exposition; -1 when there is none. */
static double sample(const char *fmt, ...) WV_PRINTF(1, 2);
static double sample(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    strcat(line, " ");
    wv_buf out = {0};
    double v = -1;
    if (wv_metrics_render(NULL, WV_METRICS_PROMETHEUS, &out) == 0 &&
        wv_buf_append(&out, "", 1) == 0) {
        const char *p = strstr(out.p, line);
        if (p && (p == out.p || p[-1] == '\n'))
            v = strtod(p + strlen(line), NULL);
    }
    wv_buf_free(&out);
    return v;
}

/* Poll (5 s at most) until the sample reads want: what it read last. */
#define SAMPLE_BECOMES(want, ...)                                                                  \
    ({                                                                                             \
        double v_ = -1;                                                                            \
        for (int i_ = 0; i_ < 500 && (v_ = sample(__VA_ARGS__)) != (want); i_++)                   \
            wv_sleep_ms(10);                                                                       \
        v_;                                                                                        \
    })

/* The metrics a worker and a producer export (docs/tasks.md, Metrics):
 * with its one slot taken by a long task, the queue's depth is what was
 * sent; then every task's outcome is counted exactly once by state (one
 * expired, one unregistered, two failing, one retried), with its
 * received, sent (the retry too) and runtime. */
static int metrics_count_every_outcome(void)
{
    const char *k = strncmp(url, "sqlite", 6) == 0 ? "sqlite" : "pg";
    char q[32], ok[32], fail[32], flk[32], slp[32];
    snprintf(q, sizeof q, "metrics_%s", k);
    snprintf(ok, sizeof ok, "%s.ok", k);
    snprintf(fail, sizeof fail, "%s.fail", k);
    snprintf(flk, sizeof flk, "%s.flaky", k);
    snprintf(slp, sizeof slp, "%s.sleep", k);
    double rejected0 =
        sample("weave_tasks_finished_total{task=\"(unregistered)\",state=\"REJECTED\"}");
    rejected0 = rejected0 < 0 ? 0 : rejected0;

    worker w = {0};
    REQUIRE_EQ(
        wv_tasks_open(
            url,
            &(wv_tasks_opts){.backend = url, .queue = q, .concurrency = 1, .depth_interval_ms = 50},
            &w.t),
        0);
    wv_tasks_register(w.t, ok, add, NULL);
    wv_tasks_register(w.t, fail, fail_task, NULL);
    wv_tasks_register(w.t, flk, flaky, NULL);
    wv_tasks_register(w.t, slp, sleep_task, NULL);
    /* registered: at 0 before any work */
    CHECK(sample("weave_tasks_finished_total{task=\"%s\",state=\"SUCCESS\"}", ok) == 0);
    CHECK(sample("weave_tasks_received_total{task=\"%s\",queue=\"%s\"}", ok, q) == 0);
    w.g = wv_group_new();
    REQUIRE_EQ(wv_group_spawn(w.g, work, w.t, NULL), 0);
    wv_tasks *p;
    REQUIRE_EQ(wv_tasks_open(url, &(wv_tasks_opts){.backend = url, .queue = q}, &p), 0);

    char ids[11][37];
    CHECK_EQ(wv_tasks_send(p, slp, "[1500]", NULL, ids[0]), 0);
    CHECK_EQ(SAMPLE_BECOMES(1, "weave_tasks_running{queue=\"%s\"}", q), 1);
    for (int i = 1; i <= 5; i++)
        CHECK_EQ(wv_tasks_send(p, ok, "[1, 2]", NULL, ids[i]), 0);
    CHECK_EQ(wv_tasks_send(p, fail, "[]", NULL, ids[6]), 0);
    CHECK_EQ(wv_tasks_send(p, fail, "[]", NULL, ids[7]), 0);
    CHECK_EQ(wv_tasks_send(p, flk, "[]", NULL, ids[8]), 0);
    CHECK_EQ(wv_tasks_send(p, "m.nobody", "[]", NULL, ids[9]), 0);
    CHECK_EQ(wv_tasks_send(p, ok, "[1, 2]", &(wv_task_send_opts){.expires_ms = 1}, ids[10]), 0);
    /* the slot is busy for 1.5 s: all ten wait in the table */
    CHECK_EQ(SAMPLE_BECOMES(10, "weave_tasks_queue_depth{queue=\"%s\"}", q), 10);
    CHECK(sample("weave_tasks_sent_total{task=\"%s\",queue=\"%s\"}", ok, q) == 6);
    CHECK(sample("weave_tasks_received_total{task=\"%s\",queue=\"%s\"}", ok, q) == 0);

    wv_buf out = {0};
    CHECK_EQ(result(w.t, ids[0], &out), 0);
    for (int i = 1; i <= 5; i++)
        CHECK_EQ(result(w.t, ids[i], &out), 0);
    CHECK_EQ(result(w.t, ids[6], &out), -EREMOTEIO);
    CHECK_EQ(result(w.t, ids[7], &out), -EREMOTEIO);
    CHECK_EQ(result(w.t, ids[8], &out), 0);
    CHECK_EQ(result(w.t, ids[9], &out), -EREMOTEIO);
    CHECK_EQ(result(w.t, ids[10], &out), -EREMOTEIO);
    wv_buf_free(&out);

    CHECK_EQ(SAMPLE_BECOMES(1, "weave_tasks_finished_total{task=\"%s\",state=\"SUCCESS\"}", flk),
             1);
    CHECK(sample("weave_tasks_finished_total{task=\"%s\",state=\"SUCCESS\"}", ok) == 5);
    CHECK(sample("weave_tasks_finished_total{task=\"%s\",state=\"REVOKED\"}", ok) == 1);
    CHECK(sample("weave_tasks_finished_total{task=\"%s\",state=\"FAILURE\"}", ok) == 0);
    CHECK(sample("weave_tasks_finished_total{task=\"%s\",state=\"FAILURE\"}", fail) == 2);
    CHECK(sample("weave_tasks_finished_total{task=\"%s\",state=\"SUCCESS\"}", fail) == 0);
    CHECK(sample("weave_tasks_finished_total{task=\"%s\",state=\"RETRY\"}", flk) == 1);
    CHECK(sample("weave_tasks_finished_total{task=\"%s\",state=\"SUCCESS\"}", slp) == 1);
    CHECK(sample("weave_tasks_finished_total{task=\"(unregistered)\",state=\"REJECTED\"}") ==
          rejected0 + 1);
    CHECK(sample("weave_tasks_received_total{task=\"%s\",queue=\"%s\"}", ok, q) == 6);
    CHECK(sample("weave_tasks_received_total{task=\"%s\",queue=\"%s\"}", flk, q) == 2);
    CHECK(sample("weave_tasks_received_total{task=\"(unregistered)\",queue=\"%s\"}", q) == 1);
    /* the retry is a message the worker sent */
    CHECK(sample("weave_tasks_sent_total{task=\"%s\",queue=\"%s\"}", flk, q) == 2);
    /* runtimes: every body that ran (not the expired one) */
    CHECK(sample("weave_tasks_duration_seconds_count{task=\"%s\"}", ok) == 5);
    CHECK(sample("weave_tasks_duration_seconds_count{task=\"%s\"}", flk) == 2);
    double slept = sample("weave_tasks_duration_seconds_sum{task=\"%s\"}", slp);
    CHECK(slept >= 1.5 && slept < 3);
    CHECK(sample("weave_tasks_duration_seconds_bucket{task=\"%s\",le=\"1\"}", slp) == 0);
    CHECK(sample("weave_tasks_duration_seconds_bucket{task=\"%s\",le=\"2.5\"}", slp) == 1);
    CHECK(sample("weave_tasks_running{queue=\"%s\"}", q) == 0);
    CHECK_EQ(SAMPLE_BECOMES(0, "weave_tasks_queue_depth{queue=\"%s\"}", q), 0);
    wv_tasks_close(p);
    worker_stop(&w);
    return 0;
}
BOTH(metrics_count_every_outcome)

static int bad_rows_rejected_worker_goes_on(void)
{
    worker w;
    wv_tasks_opts o = with_results();
    REQUIRE_EQ(worker_start(&w, &o), 0);
    wv_db *db;
    REQUIRE_EQ(wv_db_open(url, NULL, &db), 0);
    static const struct {
        const char *id, *body, *headers;
    } bad[] = {
        {"bad-body", "[[1, 2], {}, {", "{\"id\": \"bad-body\", \"task\": \"t.add\"}"},
        {"bad-headers", "[[1, 2], {}, {}]", "{\"id\": \"bad-headers\", \"task\": "},
        {"no-task", "[[1, 2], {}, {}]", "{\"id\": \"no-task\"}"},
        {"not-its-id", "[[1, 2], {}, {}]", "{\"id\": \"another\", \"task\": \"t.add\"}"},
        {"body-shape", "5", "{\"id\": \"body-shape\", \"task\": \"t.add\"}"},
    };
    const char *undecodable = "weave_tasks_finished_total{task=\"(undecodable)\","
                              "state=\"REJECTED\"}";
    double undecodable0 = sample("%s", undecodable);
    undecodable0 = undecodable0 < 0 ? 0 : undecodable0;
    wv_db *tx;
    REQUIRE_EQ(wv_db_begin(db, &tx), 0);
    int64_t now = tasks_real_ns() / 1000;
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        CHECK_EQ(wv_db_exec(tx,
                            "INSERT INTO weave_tasks (id, queue, name, state, body, headers, "
                            "attempts, run_at, created_at, updated_at) VALUES ($1, 'celery', "
                            "'t.add', 'PENDING', $2, $3, 0, $4, $4, $4)",
                            wv_db_text(bad[i].id), wv_db_text(bad[i].body),
                            wv_db_text(bad[i].headers), wv_db_time(now - 1000)),
                 1);
    CHECK_EQ(wv_db_commit(tx), 0);
    char good[37], v[512];
    CHECK_EQ(wv_task_enqueue(db, "t.add", "[2, 2]", NULL, good), 0);
    wv_buf out = {0};
    CHECK_EQ(result(w.t, good, &out), 0);
    CHECK(out.n == 1 && memcmp(out.p, "4", 1) == 0);
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        /* a wait for it ends: FAILURE DecodeError */
        CHECK_EQ(result(w.t, bad[i].id, &out), -EREMOTEIO);
        CHECK(strncmp(wv_errmsg(), "DecodeError: ", 13) == 0);
        CHECK_STR_EQ(column(db, "state", bad[i].id, v, sizeof v), "FAILURE");
        CHECK(strncmp(column(db, "rejected", bad[i].id, v, sizeof v), "does not decode: ", 17) ==
              0);
        CHECK_STR_EQ(column(db, "run_at", bad[i].id, v, sizeof v), "");
        CHECK_EQ(times_run(bad[i].id), 0);
    }
    CHECK_EQ(count_rows(db, "rejected IS NOT NULL"), ARRAY_LEN(bad));
    CHECK(sample("%s", undecodable) == undecodable0 + ARRAY_LEN(bad));
    CHECK(sample("weave_tasks_received_total{task=\"(undecodable)\",queue=\"celery\"}") >=
          ARRAY_LEN(bad));
    /* a task nobody registered: FAILURE NotRegistered, rejected, kept */
    char unknown[37];
    CHECK_EQ(wv_task_enqueue(db, "t.nobody", "[]", NULL, unknown), 0);
    CHECK_EQ(result(w.t, unknown, &out), -EREMOTEIO);
    CHECK_STR_EQ(wv_errmsg(), "NotRegistered: t.nobody");
    for (int i = 0; i < 500 && strcmp(column(db, "rejected", unknown, v, sizeof v), "") == 0; i++)
        wv_sleep_ms(10);
    CHECK_STR_EQ(column(db, "rejected", unknown, v, sizeof v), "rejected by the worker");
    wv_buf_free(&out);
    wv_db_close(db);
    worker_stop(&w);
    return 0;
}
BOTH(bad_rows_rejected_worker_goes_on)

/* Done rows go once result_expires has passed; rejected ones stay. */
static int old_rows_purged_rejected_kept(void)
{
    worker w;
    wv_tasks_opts o = with_results();
    o.result_expires_ms = 1000;
    REQUIRE_EQ(worker_start(&w, &o), 0);
    wv_db *db;
    REQUIRE_EQ(wv_db_open(url, NULL, &db), 0);
    char done[37], refused[37], v[64];
    CHECK_EQ(wv_task_enqueue(db, "t.add", "[1, 2]", NULL, done), 0);
    CHECK_EQ(wv_task_enqueue(db, "t.nobody", "[]", NULL, refused), 0);
    wv_buf out = {0};
    CHECK_EQ(result(w.t, done, &out), 0);
    CHECK_EQ(result(w.t, refused, &out), -EREMOTEIO);
    CHECK_STR_EQ(column(db, "state", done, v, sizeof v), "SUCCESS");
    for (int i = 0; i < 1000 && strcmp(column(db, "state", done, v, sizeof v), "?") != 0; i++)
        wv_sleep_ms(10);
    CHECK_STR_EQ(column(db, "state", done, v, sizeof v), "?");
    CHECK_STR_EQ(column(db, "state", refused, v, sizeof v), "FAILURE");
    CHECK_STR_EQ(column(db, "rejected", refused, v, sizeof v), "rejected by the worker");
    wv_buf_free(&out);
    wv_db_close(db);
    worker_stop(&w);
    return 0;
}
BOTH(old_rows_purged_rejected_kept)

/* Two clients on one queue (each with 4 tasks at once): 300 tasks, each
 * run once. */
static int two_clients_each_task_once(void)
{
    worker a, b;
    wv_tasks_opts o = with_results();
    REQUIRE_EQ(worker_start(&a, &o), 0);
    REQUIRE_EQ(worker_start(&b, &o), 0);
    wv_db *db;
    REQUIRE_EQ(wv_db_open(url, NULL, &db), 0);
    static char ids[300][37];
    for (int i = 0; i < 300; i += 30) {
        wv_db *tx;
        REQUIRE_EQ(wv_db_begin(db, &tx), 0);
        for (int j = i; j < i + 30; j++)
            CHECK_EQ(wv_task_enqueue(tx, "t.add", "[1, 1]", NULL, ids[j]), 0);
        CHECK_EQ(wv_db_commit(tx), 0);
    }
    for (int i = 0; i < 1500 && count_rows(db, "state = 'SUCCESS' AND run_at IS NULL") < 300; i++)
        wv_sleep_ms(10);
    CHECK_EQ(count_rows(db, "state = 'SUCCESS' AND run_at IS NULL"), 300);
    CHECK_EQ(seen.n, 300);
    int once = 0;
    for (int i = 0; i < 300; i++)
        once += times_run(ids[i]) == 1;
    CHECK_EQ(once, 300);
    CHECK_EQ(count_rows(db, "attempts <> 1"), 0);
    wv_db_close(db);
    worker_stop(&a);
    worker_stop(&b);
    return 0;
}
BOTH(two_clients_each_task_once)

/* PostgreSQL: the LISTEN connection killed on the server; the client makes
 * it again and tasks still run. */
static int listen_connection_comes_back(void)
{
    worker w;
    wv_tasks_opts o = with_results();
    REQUIRE_EQ(worker_start(&w, &o), 0);
    wv_db *db;
    REQUIRE_EQ(wv_db_open(url, NULL, &db), 0);
    static const char listeners[] = "SELECT count(*) FROM pg_stat_activity WHERE pid <> "
                                    "pg_backend_pid() AND query LIKE 'LISTEN %weave_tasks%'";
    int64_t n = 0;
    CHECK_EQ(wv_db_query_int_argv(db, &n, listeners, NULL, 0), 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(wv_db_query_int(db, &n,
                             "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                             "WHERE pid <> pg_backend_pid() AND query LIKE 'LISTEN %'"),
             0);
    CHECK_EQ(n, 1);
    char id[37];
    CHECK_EQ(wv_task_enqueue(db, "t.add", "[7, 8]", NULL, id), 0);
    wv_buf out = {0};
    CHECK_EQ(result(w.t, id, &out), 0);
    CHECK(out.n == 2 && memcmp(out.p, "15", 2) == 0);
    for (int i = 0; i < 500 && (wv_db_query_int_argv(db, &n, listeners, NULL, 0) < 0 || n < 1); i++)
        wv_sleep_ms(10);
    CHECK_EQ(n, 1); /* listening again */
    CHECK_EQ(wv_task_enqueue(db, "t.add", "[1, 1]", NULL, id), 0);
    CHECK_EQ(result(w.t, id, &out), 0);
    CHECK(out.n == 1 && memcmp(out.p, "2", 1) == 0);
    wv_buf_free(&out);
    wv_db_close(db);
    worker_stop(&w);
    return 0;
}

static void test_postgres_listen_connection_comes_back(void **state)
{
    (void)state;
    on_postgres(listen_connection_comes_back);
}

/* The backend on another database than the queue: a row per result there
 * (queue ''), and the queue's row deleted at the ack. */
static int results_in_another_database(void)
{
    char results_url[600];
    snprintf(results_url, sizeof results_url, "sqlite://%s/results.db", tmpdir);
    worker w;
    wv_tasks_opts o = {.backend = results_url};
    REQUIRE_EQ(worker_start(&w, &o), 0);
    char id[37], v[512];
    CHECK_EQ(wv_tasks_send(w.t, "t.add", "[4, 5]", NULL, id), 0);
    wv_buf out = {0};
    CHECK_EQ(result(w.t, id, &out), 0);
    CHECK(out.n == 1 && memcmp(out.p, "9", 1) == 0);
    wv_db *queue_db, *results_db;
    REQUIRE_EQ(wv_db_open(url, NULL, &queue_db), 0);
    REQUIRE_EQ(wv_db_open(results_url, NULL, &results_db), 0);
    for (int i = 0; i < 500 && strcmp(column(queue_db, "state", id, v, sizeof v), "?") != 0; i++)
        wv_sleep_ms(10);
    CHECK_STR_EQ(column(queue_db, "state", id, v, sizeof v), "?");
    CHECK_STR_EQ(column(results_db, "state", id, v, sizeof v), "SUCCESS");
    CHECK_STR_EQ(column(results_db, "queue", id, v, sizeof v), "");
    CHECK_STR_EQ(column(results_db, "name", id, v, sizeof v), "t.add");
    wv_buf_free(&out);
    wv_db_close(queue_db);
    wv_db_close(results_db);
    worker_stop(&w);
    return 0;
}

static void test_sqlite_results_in_another_database(void **state)
{
    (void)state;
    on_sqlite(results_in_another_database);
}

/* PostgreSQL carries broadcasts (NOTIFY): a topic listener gets the
 * routing keys its binding matches, a fanout one everything. */
typedef struct heard {
    tasks_transport *tr;
    const char *exchange, *type, *key;
    wv_chan *stopping;
    char got[8][64];
    int n;
} heard;

static int hear(const char *body, size_t n, void *arg)
{
    heard *h = arg;
    if (h->n < 8)
        snprintf(h->got[h->n++], 64, "%.*s", (int)n, body);
    return 0;
}

static int listen_fiber(void *arg)
{
    heard *h = arg;
    return h->tr->ops->listen(h->tr, h->exchange, h->type, h->key, h->stopping, hear, h);
}

static int broadcasts_over_notify(void)
{
    tasks_transport *a = raw_transport(60000), *b = raw_transport(60000);
    REQUIRE(a != NULL && b != NULL);
    REQUIRE(a->ops->publish != NULL && a->ops->listen != NULL);
    wv_chan *stopping = wv_chan_new(sizeof(int), 0);
    heard topic = {b, "celeryev", "topic", "task.#", stopping, {{0}}, 0};
    heard fan = {b, "celery.pidbox", "fanout", "", stopping, {{0}}, 0};
    wv_group *g = wv_group_new();
    CHECK_EQ(wv_group_spawn(g, listen_fiber, &topic, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, listen_fiber, &fan, NULL), 0);
    wv_sleep_ms(50); /* both listening */
    static const struct {
        const char *ex, *type, *rk, *body;
    } sent[] = {
        {"celeryev", "topic", "task.started", "{\"n\": 1}"},
        {"celeryev", "topic", "worker.heartbeat", "{\"n\": 2}"},
        {"celeryev", "topic", "task", "{\"n\": 3}"},
        {"celery.pidbox", "fanout", "", "{\"method\": \"revoke\"}"},
        {"celeryev", "topic", "task.a.b", "{\"n\": 4}"},
    };
    for (size_t i = 0; i < ARRAY_LEN(sent); i++)
        CHECK_EQ(a->ops->publish(a, sent[i].ex, sent[i].type, sent[i].rk, sent[i].body,
                                 strlen(sent[i].body), NULL),
                 0);
    for (int i = 0; i < 500 && (topic.n < 3 || fan.n < 1); i++)
        wv_sleep_ms(10);
    wv_sleep_ms(50); /* nothing more comes */
    CHECK_EQ(topic.n, 3);
    CHECK_STR_EQ(topic.got[0], "{\"n\": 1}");
    CHECK_STR_EQ(topic.got[1], "{\"n\": 3}");
    CHECK_STR_EQ(topic.got[2], "{\"n\": 4}");
    CHECK_EQ(fan.n, 1);
    CHECK_STR_EQ(fan.got[0], "{\"method\": \"revoke\"}");
    /* NOTIFY's payload limit */
    static char big[9000];
    memset(big, 'x', sizeof big);
    CHECK_EQ(a->ops->publish(a, "celeryev", "topic", "task.x", big, sizeof big, NULL), -EMSGSIZE);
    wv_chan_close(stopping);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_chan_free(stopping);
    a->ops->close(a);
    b->ops->close(b);
    return 0;
}

static void test_postgres_broadcasts_over_notify(void **state)
{
    (void)state;
    on_postgres(broadcasts_over_notify);
}

/* wv_tasks_revoke on PostgreSQL: a task waiting for its ETA is REVOKED
 * instead of run, a running one is terminated. On SQLite: -ENOTSUP. */
static int revoke_by_id(void)
{
    worker w;
    wv_tasks_opts o = with_results();
    REQUIRE_EQ(worker_start(&w, &o), 0);
    wv_db *db;
    REQUIRE_EQ(wv_db_open(url, NULL, &db), 0);
    char later[37], running[37];
    CHECK_EQ(
        wv_task_enqueue(db, "t.add", "[1, 2]", &(wv_task_send_opts){.countdown_ms = 500}, later),
        0);
    if (strncmp(url, "sqlite", 6) == 0) {
        CHECK_EQ(wv_tasks_revoke(w.t, later, false), -ENOTSUP);
        wv_db_close(db);
        worker_stop(&w);
        return 0;
    }
    CHECK_EQ(wv_tasks_revoke(w.t, later, false), 0);
    CHECK_EQ(wv_task_enqueue(db, "t.sleep", "[20000]", NULL, running), 0);
    for (int i = 0; i < 500 && times_run(running) == 0; i++)
        wv_sleep_ms(10);
    CHECK_EQ(times_run(running), 1);
    CHECK_EQ(wv_tasks_revoke(w.t, running, true), 0);
    wv_buf out = {0};
    CHECK_EQ(result(w.t, running, &out), -EREMOTEIO);
    CHECK_STR_EQ(wv_errmsg(), "TaskRevokedError: terminated");
    CHECK_EQ(result(w.t, later, &out), -EREMOTEIO);
    CHECK_STR_EQ(wv_errmsg(), "TaskRevokedError: revoked");
    CHECK_EQ(times_run(later), 0);
    wv_buf_free(&out);
    wv_db_close(db);
    worker_stop(&w);
    return 0;
}
BOTH(revoke_by_id)

static int open_refuses(void)
{
    wv_tasks *t = (wv_tasks *)1;
    CHECK_EQ(wv_tasks_open("sqlite:///nonexistent-dir-weave/x/y.db", NULL, &t), -ENOENT);
    CHECK(t == NULL);
    CHECK_EQ(wv_tasks_open("postgresql://app:x@127.0.0.1:1/appdb", NULL, &t), -ECONNREFUSED);
    wv_db *db;
    REQUIRE_EQ(wv_db_open("sqlite::memory:", NULL, &db), 0);
    char id[37];
    CHECK_EQ(wv_task_enqueue(NULL, "t.add", "[]", NULL, id), -EINVAL);
    CHECK_EQ(wv_task_enqueue(db, "", "[]", NULL, id), -EINVAL);
    CHECK_EQ(wv_task_enqueue(db, "t.add", "{}", NULL, id), -EINVAL); /* args not an array */
    /* no table yet: no client opened the database */
    CHECK_EQ(wv_task_enqueue(db, "t.add", "[]", NULL, id), -EINVAL);
    wv_db_close(db);
    return 0;
}

static void test_open_and_enqueue_refuse(void **state)
{
    (void)state;
    assert_int_equal(run_in_rt(1, run_case, (void *)open_refuses), 0);
    assert_checks_passed();
}

#define BOTH_TESTS(name)                                                                           \
    cmocka_unit_test_setup_teardown(test_sqlite_##name, make_tmpdir, remove_tmpdir),               \
        cmocka_unit_test(test_postgres_##name)

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_and_enqueue_refuse),
        BOTH_TESTS(enqueue_commits_or_rolls_back),
        BOTH_TESTS(results_live_in_the_row),
        BOTH_TESTS(eta_is_not_run_before),
        BOTH_TESTS(dead_worker_lease_expires),
        BOTH_TESTS(long_task_keeps_its_lease),
        BOTH_TESTS(resend_same_id_survives_stale_ack),
        BOTH_TESTS(retry_reuses_the_row),
        BOTH_TESTS(bad_rows_rejected_worker_goes_on),
        BOTH_TESTS(old_rows_purged_rejected_kept),
        BOTH_TESTS(two_clients_each_task_once),
        cmocka_unit_test(test_postgres_listen_connection_comes_back),
        cmocka_unit_test(test_postgres_broadcasts_over_notify),
        BOTH_TESTS(revoke_by_id),
        BOTH_TESTS(metrics_count_every_outcome),
        cmocka_unit_test_setup_teardown(test_sqlite_results_in_another_database, make_tmpdir,
                                        remove_tmpdir),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
