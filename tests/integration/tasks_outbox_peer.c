/*
 * The database task queue (src/tasks/db.c) as a command, for
 * tests/integration/test_tasks_outbox.py. The database is $TASKS_BROKER
 * (postgres://... or sqlite:...); results are stored in the queue's rows.
 * The test creates the tables outbox_orders (note TEXT) and outbox_runs
 * (task_id TEXT, pid INTEGER, started_us BIGINT, latency_us BIGINT) first.
 *
 *   tasks_outbox_peer worker VISIBILITY_MS
 *       one shard's worker (acks_late: a task whose worker dies runs again)
 *       with outbox.work [i, sleep_ms, sent_us]: says "running <id>" on
 *       stdout, sleeps sleep_ms, then records its run in outbox_runs (with
 *       its start, wall-clock us, and the time from sent_us to it) and returns i. "ready" once it
 *       consumes; SIGTERM: warm shutdown, exit 0
 *   tasks_outbox_peer enqueue N [SLEEP_MS]
 *       N transactions, each inserting an order and enqueueing outbox.work
 *       for it; the odd ones roll back. Prints "commit <id>" or
 *       "rollback <id>" for each
 *
 * Exit 0 on success; else 1 with wv_errmsg() on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <weave/db.h>
#include <weave/tasks.h>

static int argc_;
static char **argv_;

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static const char *database(void)
{
    const char *b = getenv("TASKS_BROKER");
    return b ? b : "sqlite://outbox.db";
}

static int work(wv_task *task)
{
    int64_t started = wall_us();
    wv_db *db = wv_task_data(task);
    const wv_json_val *a = wv_task_args(task);
    int64_t i = 0, sleep_ms = 0, sent_us = 0;
    if (wv_json_as_i64(wv_json_array_at(a, 0), &i) < 0 ||
        wv_json_as_i64(wv_json_array_at(a, 1), &sleep_ms) < 0 ||
        wv_json_as_i64(wv_json_array_at(a, 2), &sent_us) < 0)
        return wv_task_fail(task, "TypeError", "outbox.work takes [i, sleep_ms, sent_us]");
    printf("running %s\n", wv_task_id(task));
    fflush(stdout);
    int rc = sleep_ms > 0 ? wv_sleep_ms(sleep_ms) : 0;
    if (rc == 0)
        rc = wv_db_exec(db,
                        "INSERT INTO outbox_runs (task_id, pid, started_us, latency_us) "
                        "VALUES ($1, $2, $3, $4)",
                        wv_db_text(wv_task_id(task)), wv_db_int(getpid()), wv_db_int(started),
                        wv_db_int(started - sent_us));
    if (rc < 0)
        return rc;
    wv_json_int(wv_task_result(task), i);
    return 0;
}

static int worker(void)
{
    if (argc_ < 3)
        return -EINVAL;
    wv_db *db;
    int rc = wv_db_open(database(), NULL, &db);
    if (rc < 0)
        return rc;
    wv_tasks *t;
    rc = wv_tasks_open(database(),
                       &(wv_tasks_opts){.backend = database(),
                                        .acks_late = true,
                                        .visibility_timeout_ms = atoll(argv_[2])},
                       &t);
    if (rc == 0) {
        wv_tasks_register(t, "outbox.work", work, db);
        printf("ready\n");
        fflush(stdout);
        rc = wv_tasks_work(t);
        wv_tasks_close(t);
    }
    wv_db_close(db);
    return rc;
}

static int enqueue(void)
{
    if (argc_ < 3)
        return -EINVAL;
    int n = atoi(argv_[2]);
    int64_t sleep_ms = argc_ > 3 ? atoll(argv_[3]) : 0;
    wv_db *db;
    int rc = wv_db_open(database(), NULL, &db);
    for (int i = 0; rc == 0 && i < n; i++) {
        wv_db *tx;
        if ((rc = wv_db_begin(db, &tx)) < 0)
            break;
        char note[32], args[96], id[37];
        snprintf(note, sizeof note, "order %d", i);
        rc = wv_db_exec(tx, "INSERT INTO outbox_orders (note) VALUES ($1)", wv_db_text(note));
        snprintf(args, sizeof args, "[%d, %lld, %lld]", i, (long long)sleep_ms,
                 (long long)wall_us());
        if (rc >= 0)
            rc = wv_task_enqueue(tx, "outbox.work", args, NULL, id);
        if (rc < 0) {
            wv_db_rollback(tx);
            break;
        }
        bool keep = i % 2 == 0;
        rc = keep ? wv_db_commit(tx) : wv_db_rollback(tx);
        if (rc == 0)
            printf("%s %s\n", keep ? "commit" : "rollback", id);
    }
    fflush(stdout);
    wv_db_close(db);
    return rc;
}

static int run(void *arg)
{
    (void)arg;
    int rc = -EINVAL;
    if (argc_ >= 2 && strcmp(argv_[1], "worker") == 0)
        rc = worker();
    else if (argc_ >= 2 && strcmp(argv_[1], "enqueue") == 0)
        rc = enqueue();
    else
        fprintf(stderr, "usage: tasks_outbox_peer worker VISIBILITY_MS | enqueue N [SLEEP_MS]\n");
    if (rc < 0) {
        fprintf(stderr, "tasks_outbox_peer: %s (%s)\n", wv_strerror(rc), wv_errmsg());
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    argc_ = argc;
    argv_ = argv;
    int rc = wv_main(&(wv_main_opts){.shards = 1}, run, NULL);
    return rc < 0 ? 1 : rc;
}
