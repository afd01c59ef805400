/*
 * bench/bench_tasks.c: weave's Celery-compatible task queue
 * (include/weave/tasks.h) end to end on a real Redis, RabbitMQ or
 * PostgreSQL: the producers that fill the queue for every side of
 * bench/run_tasks.sh, weave's worker, and the waiters that release the
 * queue or watch it, time it and check every result in the backend. The
 * suite runs one worker at a time (weave's or a Celery worker on the same
 * broker) beside them (bench/tasks/redis_run.sh, amqp_run.sh,
 * outbox_run.sh).
 *
 *   bench_tasks produce URL TASK WARM N IDS [FIBERS]
 *       into an empty Redis database (no worker running): send WARM
 *       messages of TASK (below) to the queue "celery" with wv_tasks_send
 *       from FIBERS (64) fibers of one shard, check that the queue holds
 *       exactly them and RENAME it to bench.warm; then the same with N more
 *       messages, renamed to bench.hold: both out of every worker's sight.
 *       Writes "<id> <expected result>" per task to the file IDS, in the
 *       order sent.
 *   bench_tasks fill BROKER BACKEND TASK WARM N IDS [FIBERS]
 *       the same sends on any broker (RabbitMQ: each confirmed), results
 *       named to BACKEND, WARM then N into the queue as they are, no
 *       check (amqp_run.sh counts the queue); IDS as produce.
 *   bench_tasks worker URL CONCURRENCY [acks_late] [backend=URL]
 *       one shard's worker (wv_tasks_work, results to URL too unless
 *       backend= names another) with tasks.noop and tasks.async_add, at
 *       most CONCURRENCY tasks at once; says "ready" on stdout once it
 *       consumes; SIGTERM: warm shutdown
 *   bench_tasks wait URL WARM N IDS rate|seconds [TIMEOUT_S]
 *       PSUBSCRIBE celery-task-meta-* (the result backend publishes every
 *       result it stores there, Celery's and weave's alike); RENAME
 *       bench.warm back to "celery" (one atomic command: the idle worker's
 *       BRPOP wakes with all of them there) and wait for their WARM
 *       results; then start the clock, release bench.hold the same way,
 *       count the results published until N more have come (a FAILURE ends
 *       the run) and stop the clock. Afterwards GET the celery-task-meta
 *       key of every one of the WARM + N ids: each must be SUCCESS with the
 *       expected result, and the queue must be empty. value=<tasks per
 *       second> (rate) or value=<seconds> (seconds) from the release of
 *       bench.hold to its N-th result stored. Everything within TIMEOUT_S
 *       (600).
 *   bench_tasks count URL WARM N IDS rate|seconds TIMEOUT_S READY_FILE
 *       wait's subscription and checks without a release: creates
 *       READY_FILE once subscribed, counts WARM results, creates
 *       $TASKS_WARM_DONE_FILE (when set), then times N more: from the
 *       WARM-th result, or from the CLOCK_MONOTONIC reading (ns) a
 *       producer wrote to $TASKS_T0_FILE, to the (WARM + N)-th. IDS may
 *       appear only then (a producer renames it into place). The queue is
 *       the run script's to check.
 *   bench_tasks outbox-reset PG_URL
 *       the task table (a client opened on PG_URL makes it) and
 *       bench_orders made when missing, both emptied
 *   bench_tasks outbox PG_URL WARM N FIBERS [TIMEOUT_S]
 *       WARM, then N transactions from FIBERS fibers on a pool of as many
 *       connections, each an INSERT into bench_orders and wv_task_enqueue
 *       of tasks.noop, committed, while a LISTEN on weave_tasks_done (the
 *       database backend notifies each result it stores) counts the
 *       results; the clock runs from the first of the N transactions to
 *       the N-th result after the warm-up's. Then bench_orders and
 *       weave_tasks must hold WARM + N rows, every task SUCCESS (null) and
 *       done. value=<tasks per second>.
 *
 * TASK is noop (tasks.noop, no arguments, result null) or async_add
 * (tasks.async_add, arguments [i, 1] for the i-th message: sleeps 1 s in
 * its fiber, returns i + 1). Before value=, wait, count and outbox print
 * what bench/cache/note.sh collects for the suite's CPU lines: worker_cpu=
 * (every thread of the process in TASKS_WORKER_PID, or in the file
 * TASKS_WORKER_PID_FILE names), redis_cpu= (TASKS_REDIS_PID), broker_cpu=
 * (RabbitMQ: TASKS_BROKER_PID), pg_cpu= (the PostgreSQL postmaster in
 * TASKS_PG_PID and every backend it forked), producer_cpu= (the pid in
 * TASKS_PRODUCER_PID_FILE) and waiter_cpu= (the waiter itself; outbox's
 * producer_cpu=, as it produces too), each present when its variable is
 * set: the CPU used in the timed window, in % of one core (-1 when
 * unknown), and worker_us= ... the same in CPU µs per task. Lines starting
 * with '#' (on stderr) describe the run. Exit status 1 when anything did
 * not happen as it should.
 */
#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "bench_util.h"
#include "weave/db.h"
#include "weave/pg.h"
#include "weave/redis.h"
#include "weave/rt.h"
#include "weave/tasks.h"

enum { FIBERS = 64, VERIFY_BATCH = 500, ID_LEN = 36, TIMEOUT_S = 600 };

static const char QUEUE[] = "celery"; /* Celery's default queue, weave's too */
static const char WARM_KEY[] = "bench.warm", HOLD_KEY[] = "bench.hold"; /* held lists */

static int argc_;
static char **argv_;

/* ------------------------------------------------------------ the tasks */

static int noop(wv_task *task)
{
    (void)task;
    return 0;
}

static int async_add(wv_task *task)
{
    int64_t x, y;
    const wv_json_val *a = wv_task_args(task);
    if (wv_json_as_i64(wv_json_array_at(a, 0), &x) < 0 ||
        wv_json_as_i64(wv_json_array_at(a, 1), &y) < 0)
        return wv_task_fail(task, "TypeError", "async_add takes two integers");
    int rc = wv_sleep_ms(1000);
    if (rc < 0)
        return rc;
    wv_json_int(wv_task_result(task), (long long)(x + y));
    return 0;
}

static int worker(const char *url, const char *backend, int concurrency, bool acks_late)
{
    wv_tasks *t;
    int rc = wv_tasks_open(
        url,
        &(wv_tasks_opts){.backend = backend, .concurrency = concurrency, .acks_late = acks_late},
        &t);
    if (rc < 0)
        return rc;
    if ((rc = wv_tasks_register(t, "tasks.noop", noop, NULL)) == 0)
        rc = wv_tasks_register(t, "tasks.async_add", async_add, NULL);
    if (rc == 0) {
        printf("ready\n");
        fflush(stdout);
        rc = wv_tasks_work(t);
    }
    wv_tasks_close(t);
    return rc;
}

/* ------------------------------------------------------------ the ids */

/* What a run's N tasks are: their ids and the results they must have. */
typedef struct batch {
    long n;
    bool add; /* async_add: task i returns i + 1; else noop: null */
    char (*id)[ID_LEN + 1];
} batch;

static int batch_alloc(batch *b, long n, bool add)
{
    b->n = n;
    b->add = add;
    b->id = calloc((size_t)n, sizeof *b->id);
    return b->id ? 0 : -ENOMEM;
}

static int write_ids(const batch *b, const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return wv_fail(-errno, "%s: %s", path, strerror(errno));
    for (long i = 0; i < b->n; i++) {
        if (b->add)
            fprintf(f, "%s %ld\n", b->id[i], i + 1);
        else
            fprintf(f, "%s null\n", b->id[i]);
    }
    return fclose(f) == 0 ? 0 : wv_fail(-EIO, "%s: write failed", path);
}

/* The IDS file of `produce`: n lines, all of one task's kind. */
static int read_ids(batch *b, const char *path, long n)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return wv_fail(-errno, "%s: %s", path, strerror(errno));
    int rc = 0;
    char id[64], want[32];
    for (long i = 0; i < n && rc == 0; i++) {
        if (fscanf(f, "%63s %31s", id, want) != 2 || strlen(id) != ID_LEN) {
            rc = wv_fail(-EBADMSG, "%s: line %ld is not '<id> <result>'", path, i + 1);
            break;
        }
        if (i == 0 && (rc = batch_alloc(b, n, strcmp(want, "null") != 0)) < 0)
            break;
        memcpy(b->id[i], id, ID_LEN + 1);
    }
    if (rc == 0 && fscanf(f, "%63s", id) == 1)
        rc = wv_fail(-EBADMSG, "%s: more than %ld lines", path, n);
    fclose(f);
    return rc;
}

/* ------------------------------------------------------------ produce */

/* A producing fiber: messages sent (t, b, task) or transactions run (db:
 * tasks.outbox), [from, to). */
typedef struct producer {
    wv_tasks *t;
    batch *b;
    const char *task;
    wv_db *db;
    long from, to;
    int rc;
} producer;

/* fibers fibers in *g (new), each running fn on a copy of proto with its
 * share of [from, to); the array in *out, to pass to producers_join. */
static int producers_start(wv_group **g, producer **out, int fibers, wv_fn *fn,
                           const producer *proto, long from, long to)
{
    producer *p = calloc((size_t)fibers, sizeof *p);
    *out = p;
    *g = p ? wv_group_new() : NULL;
    int rc = *g ? 0 : -ENOMEM;
    long n = to - from;
    for (int i = 0; rc == 0 && i < fibers; i++) {
        p[i] = *proto;
        p[i].from = from + n * i / fibers;
        p[i].to = from + n * (i + 1) / fibers;
        rc = wv_group_spawn(*g, fn, &p[i], NULL);
    }
    return rc;
}

/* Join the fibers of producers_start (cancelled first when rc < 0) and
 * free them: rc, else the join's error, else the first fiber's. */
static int producers_join(wv_group *g, producer *p, int fibers, int rc)
{
    if (g) {
        if (rc < 0)
            wv_group_cancel(g);
        int jr = wv_group_join(g);
        rc = rc ? rc : jr;
        wv_group_free(g);
    }
    for (int i = 0; rc == 0 && p && i < fibers; i++)
        rc = p[i].rc;
    free(p);
    return rc;
}

static int produce_fiber(void *arg)
{
    producer *p = arg;
    char args[64];
    for (long i = p->from; i < p->to && p->rc == 0; i++) {
        if (p->b->add)
            snprintf(args, sizeof args, "[%ld, 1]", i);
        else
            snprintf(args, sizeof args, "[]");
        p->rc = wv_tasks_send(p->t, p->task, args, NULL, p->b->id[i]);
    }
    if (p->rc < 0)
        fprintf(stderr, "# send: %s (%s)\n", wv_strerror(p->rc), wv_errmsg());
    return 0;
}

/* The integer reply of a command (with one key, or none), or a negative
 * errno. */
static long long int_cmd(wv_redis *r, const char *cmd, const char *key)
{
    wv_redis_reply *rep = NULL;
    int rc = key ? wv_redis_cmd(r, &rep, cmd, key) : wv_redis_cmd(r, &rep, cmd);
    long long v = rc < 0 ? rc : rep && rep->type == WV_REDIS_INT ? rep->integer : -EPROTO;
    wv_redis_reply_free(rep);
    return v;
}

static int rename_key(wv_redis *r, const char *from, const char *to)
{
    return wv_redis_cmd(r, NULL, "RENAME", from, to);
}

/* Messages [from, to) of b from `fibers` fibers, each send done (on
 * RabbitMQ: confirmed by the broker) when this returns 0. */
static int send_batch(wv_tasks *t, batch *b, const char *name, long from, long to, int fibers)
{
    wv_group *g;
    producer *p;
    int rc = producers_start(&g, &p, fibers, produce_fiber,
                             &(producer){.t = t, .b = b, .task = name}, from, to);
    return producers_join(g, p, fibers, rc);
}

/* send_batch, then the queue (which must hold just them) renamed to
 * `hold`. */
static int send_held(wv_tasks *t, wv_redis *r, batch *b, const char *name, long from, long to,
                     int fibers, const char *hold)
{
    int rc = send_batch(t, b, name, from, to, fibers);
    long long queued = rc < 0 ? rc : int_cmd(r, "LLEN", QUEUE);
    if (rc == 0 && queued != to - from)
        rc = wv_fail(-EPROTO, "after sending %ld the queue holds %lld", to - from, queued);
    return rc < 0 ? rc : rename_key(r, QUEUE, hold);
}

/* The task's name for TASK (noop or async_add), or NULL. */
static const char *task_name(const char *task_kind)
{
    return strcmp(task_kind, "async_add") == 0 ? "tasks.async_add"
           : strcmp(task_kind, "noop") == 0    ? "tasks.noop"
                                               : NULL;
}

static int produce(const char *url, const char *task_kind, long warm, long n, const char *ids,
                   int fibers)
{
    const char *name = task_name(task_kind);
    if (!name)
        return wv_fail(-EINVAL, "TASK is noop or async_add, not %s", task_kind);
    bool add = strcmp(task_kind, "async_add") == 0;
    wv_redis *r = NULL;
    wv_tasks *t = NULL;
    batch b = {0};
    int rc = batch_alloc(&b, warm + n, add);
    if (rc == 0)
        rc = wv_redis_open(url, NULL, &r);
    if (rc == 0)
        rc = wv_tasks_open(url, &(wv_tasks_opts){.backend = url}, &t);
    long long keys = rc < 0 ? rc : int_cmd(r, "DBSIZE", NULL);
    if (rc == 0 && keys != 0)
        rc = wv_fail(-EEXIST, "the database holds %lld keys: produce into an empty one", keys);
    int64_t t0 = now_ns();
    if (rc == 0 && warm > 0)
        rc = send_held(t, r, &b, name, 0, warm, fibers, WARM_KEY);
    if (rc == 0)
        rc = send_held(t, r, &b, name, warm, warm + n, fibers, HOLD_KEY);
    double secs = (double)(now_ns() - t0) / 1e9;
    if (rc == 0)
        rc = write_ids(&b, ids);
    if (rc == 0)
        fprintf(stderr,
                "# produced %ld + %ld %s messages in %.2f s (%d fibers, %.0f/s), held in %s and "
                "%s\n",
                warm, n, name, secs, fibers, (double)(warm + n) / secs, WARM_KEY, HOLD_KEY);
    wv_tasks_close(t);
    wv_redis_close(r);
    free(b.id);
    return rc;
}

/* `fill`: WARM then N messages into the broker's queue (any broker
 * wv_tasks_open takes), results to BACKEND; the queue is checked by the
 * caller (bench/tasks/amqp_run.sh). */
static int fill(const char *broker, const char *backend, const char *task_kind, long warm, long n,
                const char *ids, int fibers)
{
    const char *name = task_name(task_kind);
    if (!name)
        return wv_fail(-EINVAL, "TASK is noop or async_add, not %s", task_kind);
    wv_tasks *t = NULL;
    batch b = {0};
    int rc = batch_alloc(&b, warm + n, strcmp(task_kind, "async_add") == 0);
    if (rc == 0)
        rc = wv_tasks_open(broker, &(wv_tasks_opts){.backend = backend}, &t);
    int64_t t0 = now_ns();
    if (rc == 0 && warm > 0)
        rc = send_batch(t, &b, name, 0, warm, fibers);
    if (rc == 0)
        rc = send_batch(t, &b, name, warm, warm + n, fibers);
    double secs = (double)(now_ns() - t0) / 1e9;
    if (rc == 0)
        rc = write_ids(&b, ids);
    if (rc == 0)
        fprintf(stderr, "# sent %ld + %ld %s messages in %.2f s (%d fibers, %.0f/s)\n", warm, n,
                name, secs, fibers, (double)(warm + n) / secs);
    wv_tasks_close(t);
    free(b.id);
    return rc;
}

/* ------------------------------------------------------------ wait */

static double cpu_of(const char *env)
{
    const char *s = getenv(env);
    return s && atoi(s) > 0 ? proc_cpu_seconds((pid_t)atoi(s)) : -1;
}

/* The CPU seconds process pid's main thread has run, from the scheduler's
 * ns count (/proc/<pid>/schedstat; a PostgreSQL backend has one thread):
 * exact, where /proc/<pid>/stat's 10 ms ticks would lose up to a tick in
 * each of many short-lived backends. -1 when it cannot be read. */
static double sched_cpu_seconds(pid_t pid)
{
    char path[64];
    unsigned long long ns;
    snprintf(path, sizeof path, "/proc/%d/schedstat", (int)pid);
    FILE *f = fopen(path, "r");
    int got = f ? fscanf(f, "%llu", &ns) : 0;
    if (f)
        fclose(f);
    return got == 1 ? (double)ns / 1e9 : -1;
}

/* The CPU seconds of the process in $env and of its children (PostgreSQL's
 * postmaster and its backends); -1 when unknown. */
static double tree_cpu_of(const char *env)
{
    const char *s = getenv(env);
    pid_t top = s ? (pid_t)atoi(s) : 0;
    double sum = top > 0 ? sched_cpu_seconds(top) : -1;
    DIR *d = sum >= 0 ? opendir("/proc") : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        pid_t pid = (pid_t)atoi(e->d_name);
        char path[64], line[512];
        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        FILE *f = pid > 0 ? fopen(path, "r") : NULL;
        size_t n = f ? fread(line, 1, sizeof line - 1, f) : 0;
        if (f)
            fclose(f);
        line[n] = '\0';
        const char *p = strrchr(line, ')');
        int ppid = 0;
        double cpu;
        if (p && sscanf(p + 2, "%*c %d", &ppid) == 1 && ppid == top &&
            (cpu = sched_cpu_seconds(pid)) >= 0)
            sum += cpu;
    }
    if (d)
        closedir(d);
    return sum;
}

/* Is meta (a celery-task-meta value) SUCCESS with task i's result? */
static bool result_ok(const batch *b, long i, const char *meta, size_t n)
{
    wv_json_doc *doc;
    if (wv_json_parse(meta, n, &doc) < 0)
        return false;
    const wv_json_val *root = wv_json_doc_root(doc);
    const wv_json_val *res = wv_json_get(root, "result");
    const char *status = NULL, *id = NULL;
    int64_t v = 0;
    bool ok = wv_json_get_string(root, "status", &status, NULL) == 0 &&
              strcmp(status, "SUCCESS") == 0 &&
              wv_json_get_string(root, "task_id", &id, NULL) == 0 && strcmp(id, b->id[i]) == 0 &&
              res && (b->add ? wv_json_as_i64(res, &v) == 0 && v == i + 1 : wv_json_is_null(res));
    wv_json_doc_free(doc);
    return ok;
}

/* Every id's result read back from the backend, VERIFY_BATCH GETs a round
 * trip: 0, or -EPROTO after the first few that are missing or wrong. */
static int verify(wv_redis *r, const batch *b)
{
    long bad = 0;
    char key[64];
    for (long from = 0; from < b->n; from += VERIFY_BATCH) {
        long to = from + VERIFY_BATCH < b->n ? from + VERIFY_BATCH : b->n;
        wv_redis_pipe *p;
        int rc = wv_redis_pipe_new(r, false, &p);
        for (long i = from; rc == 0 && i < to; i++) {
            snprintf(key, sizeof key, "celery-task-meta-%s", b->id[i]);
            rc = wv_redis_pipe_add(p, "GET", key);
        }
        if (rc == 0)
            rc = wv_redis_pipe_exec(p);
        for (long i = from; rc == 0 && i < to; i++) {
            const wv_redis_reply *rep = wv_redis_pipe_reply(p, (int)(i - from));
            if (rep && rep->type == WV_REDIS_STRING && result_ok(b, i, rep->str, rep->len))
                continue;
            if (bad++ < 3)
                fprintf(stderr, "# task %ld (%s): %s %.*s\n", i, b->id[i],
                        rep && rep->type == WV_REDIS_STRING ? "wrong result" : "no result",
                        rep && rep->type == WV_REDIS_STRING ? (int)rep->len : 0,
                        rep && rep->type == WV_REDIS_STRING ? rep->str : "");
        }
        wv_redis_pipe_free(p);
        if (rc < 0)
            return rc;
    }
    return bad ? wv_fail(-EPROTO, "%ld of %ld results missing or wrong in the backend", bad, b->n)
               : 0;
}

static void print_cpu(const char *name, double a, double b, double wall, long n)
{
    double used = a >= 0 && b >= 0 ? b - a : -1;
    printf("%s_cpu=%.0f\n", name, used >= 0 ? 100 * used / wall : -1);
    printf("%s_us=%.1f\n", name, used >= 0 ? used * 1e6 / (double)n : -1);
}

/* Count the results published on sub until `count` have come (0 with
 * *got == count), a FAILURE, or the deadline. */
static int count_results(wv_redis_sub *sub, const char *what, long count, int64_t until, long *got)
{
    int rc = 0;
    *got = 0;
    while (rc == 0 && *got < count) {
        wv_redis_msg *m;
        if ((rc = wv_redis_sub_recv(sub, &m, until)) < 0)
            return wv_fail(rc, "%ld of the %ld results of %s in time: %s", *got, count, what,
                           wv_strerror(rc));
        if (!memmem(m->payload.p, m->payload.n, "\"SUCCESS\"", 9))
            rc = wv_fail(-EPROTO, "a result that is not SUCCESS: %.*s", (int)m->payload.n,
                         m->payload.p);
        ++*got;
        wv_redis_msg_free(m);
    }
    return rc;
}

/* RENAME hold back to the queue, then count the results published until
 * `count` have come (count_results). */
static int release(wv_redis *r, wv_redis_sub *sub, const char *hold, long count, int64_t until,
                   long *got)
{
    long long held = int_cmd(r, "LLEN", hold), queued = int_cmd(r, "LLEN", QUEUE);
    if (held != count || queued != 0)
        return wv_fail(-EPROTO,
                       "before the release %s holds %lld and the queue %lld, not %ld and 0", hold,
                       held, queued, count);
    int rc = rename_key(r, hold, QUEUE);
    return rc < 0 ? rc : count_results(sub, hold, count, until, got);
}

/* The pid in $env, or else in the file named by $env_FILE (written by a
 * run script once the worker started); -1 when neither. */
static double cpu_of_pid(const char *env)
{
    char name[64], line[32] = "";
    snprintf(name, sizeof name, "%s_FILE", env);
    const char *path = getenv(name);
    if (getenv(env) || !path)
        return cpu_of(env);
    FILE *f = fopen(path, "r");
    if (f) {
        if (!fgets(line, sizeof line, f))
            line[0] = 0;
        fclose(f);
    }
    return atoi(line) > 0 ? proc_cpu_seconds((pid_t)atoi(line)) : -1;
}

/* The first number in file path (a clock reading, ns), or -1. */
static int64_t read_ns(const char *path)
{
    long long v = -1;
    FILE *f = path ? fopen(path, "r") : NULL;
    if (f) {
        if (fscanf(f, "%lld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return (int64_t)v;
}

static int touch(const char *path)
{
    FILE *f = fopen(path, "w");
    return f && fclose(f) == 0 ? 0 : wv_fail(-errno, "%s: %s", path, strerror(errno));
}

/* What the CPU lines report, read at both ends of the timed window. */
typedef struct cpu_snap {
    double worker, redis, broker, pg, producer, own;
} cpu_snap;

static cpu_snap cpu_snap_now(void)
{
    return (cpu_snap){cpu_of_pid("TASKS_WORKER_PID"),   cpu_of("TASKS_REDIS_PID"),
                      cpu_of("TASKS_BROKER_PID"),       tree_cpu_of("TASKS_PG_PID"),
                      cpu_of_pid("TASKS_PRODUCER_PID"), own_cpu_seconds()};
}

/* worker_cpu=, redis_cpu=, broker_cpu= (RabbitMQ), pg_cpu= (PostgreSQL,
 * every backend), producer_cpu= (a producer running in the window, its pid
 * in $TASKS_PRODUCER_PID_FILE) and waiter_cpu= (this process, named
 * `waiter`), each with its _us= per task, for the processes the
 * environment names. */
static void print_cpus(const cpu_snap *a, const cpu_snap *b, double wall, long n,
                       const char *waiter)
{
    print_cpu("worker", a->worker, b->worker, wall, n);
    if (getenv("TASKS_REDIS_PID"))
        print_cpu("redis", a->redis, b->redis, wall, n);
    if (getenv("TASKS_BROKER_PID"))
        print_cpu("broker", a->broker, b->broker, wall, n);
    if (getenv("TASKS_PG_PID"))
        print_cpu("pg", a->pg, b->pg, wall, n);
    if (getenv("TASKS_PRODUCER_PID_FILE"))
        print_cpu("producer", a->producer, b->producer, wall, n);
    print_cpu(waiter, a->own, b->own, wall, n);
}

/* `wait` (ready == NULL: release the held batches with RENAME) and `count`
 * (ready: the file to create once subscribed; the worker takes messages
 * that are sent to its queue beforehand or meanwhile). count's clock
 * starts at the WARM-th result, or, with $TASKS_T0_FILE, at the
 * CLOCK_MONOTONIC reading (ns) a producer writes there; it creates
 * $TASKS_WARM_DONE_FILE (when set) once the warm-up's results are in. The
 * IDS are read once every result has come (a producer may write them
 * meanwhile). */
static int wait_results(const char *url, long warm, long n, const char *ids, bool seconds,
                        int timeout_s, const char *ready)
{
    batch b = {0};
    wv_redis *r = NULL;
    wv_redis_sub *sub = NULL;
    int rc = wv_redis_open(url, NULL, &r);
    if (rc == 0)
        rc = wv_redis_subscribe(r, &sub);
    if (rc == 0)
        rc = wv_redis_sub_psubscribe(sub, 1, (wv_str[]){WV_STR("celery-task-meta-*")});
    if (rc == 0 && ready)
        rc = touch(ready);
    int64_t until = wv_after_ms((int64_t)timeout_s * 1000);
    long got = 0;
    if (rc == 0 && warm > 0)
        rc = ready ? count_results(sub, "the warm-up", warm, until, &got)
                   : release(r, sub, WARM_KEY, warm, until, &got);
    const char *warm_done = ready ? getenv("TASKS_WARM_DONE_FILE") : NULL;
    if (rc == 0 && warm_done)
        rc = touch(warm_done);
    cpu_snap c0 = cpu_snap_now();
    int64_t t0 = now_ns();
    if (rc == 0)
        rc = ready ? count_results(sub, "the timed batch", n, until, &got)
                   : release(r, sub, HOLD_KEY, n, until, &got);
    int64_t t1 = now_ns();
    cpu_snap c1 = cpu_snap_now();
    double cpu_wall = (double)(t1 - t0) / 1e9;
    const char *t0_file = ready ? getenv("TASKS_T0_FILE") : NULL;
    if (rc == 0 && t0_file) {
        int64_t at = read_ns(t0_file);
        rc = at > 0 && at <= t1 ? 0 : wv_fail(-EPROTO, "%s holds no clock reading", t0_file);
        t0 = at;
    }
    wv_redis_sub_close(sub);
    /* a producer running meanwhile puts the file there whole (a rename)
     * once it has sent everything, which may be after the last result */
    for (int i = 0; rc == 0 && ready && access(ids, F_OK) != 0 && i < 10000; i++)
        rc = wv_sleep_ms(1);
    if (rc == 0)
        rc = read_ids(&b, ids, warm + n);
    if (rc == 0)
        rc = verify(r, &b);
    long long queued = rc < 0 || ready ? rc : int_cmd(r, "LLEN", QUEUE);
    if (rc == 0 && queued != 0)
        rc = wv_fail(-EPROTO, "%lld messages left in the queue after every result", queued);
    double wall = (double)(t1 - t0) / 1e9;
    if (rc == 0) {
        fprintf(stderr,
                "# %ld tasks after %ld of warm-up, every result checked in the backend, in "
                "%.3f s: %.0f/s\n",
                n, warm, wall, (double)n / wall);
        print_cpus(&c0, &c1, cpu_wall, n, "waiter");
        printf("value=%.4f\n", seconds ? wall : (double)n / wall);
    }
    wv_redis_close(r);
    free(b.id);
    return rc;
}

/* ------------------------------------------------------------ outbox */

/* The business table of tasks.outbox: a row per transaction. */
#define ORDERS_DDL                                                                                 \
    "CREATE TABLE IF NOT EXISTS bench_orders (id BIGSERIAL PRIMARY KEY, note TEXT NOT NULL, "      \
    "created_at TIMESTAMPTZ NOT NULL DEFAULT now())"

/* `outbox-reset`: the task table (made by a client's wv_tasks_open) and
 * bench_orders, both emptied. */
static int outbox_reset(const char *url)
{
    wv_tasks *t = NULL;
    wv_db *db = NULL;
    int rc = wv_tasks_open(url, &(wv_tasks_opts){.backend = url}, &t);
    if (rc == 0)
        rc = wv_db_open(url, NULL, &db);
    if (rc == 0)
        rc = wv_db_exec(db, ORDERS_DDL);
    if (rc >= 0)
        rc = wv_db_exec(db, "TRUNCATE bench_orders, weave_tasks");
    wv_db_close(db);
    wv_tasks_close(t);
    return rc < 0 ? rc : 0;
}

/* One transaction: the business row and the task, committed together. */
static int outbox_tx(wv_db *tx, void *arg)
{
    const long *i = arg;
    char note[32];
    snprintf(note, sizeof note, "order %ld", *i);
    int rc = wv_db_exec(tx, "INSERT INTO bench_orders (note) VALUES ($1)", wv_db_text(note));
    if (rc >= 0)
        rc = wv_task_enqueue(tx, "tasks.noop", "[]", NULL, NULL);
    return rc < 0 ? rc : 0;
}

static int outbox_fiber(void *arg)
{
    producer *p = arg;
    for (long i = p->from; i < p->to && p->rc == 0; i++)
        p->rc = wv_db_transaction(p->db, outbox_tx, &i);
    if (p->rc < 0)
        fprintf(stderr, "# transaction: %s (%s)\n", wv_strerror(p->rc), wv_errmsg());
    return 0;
}

/* Transactions [from, to) from `fibers` fibers while this fiber counts
 * `to - from` notifications on the LISTEN connection: 0 once both are
 * done; *t_last: when the last notification came. */
static int outbox_batch(wv_db *db, wv_pg_conn *listen, long from, long to, int fibers,
                        int64_t until, int64_t *t_last)
{
    wv_group *g;
    producer *p;
    int rc = producers_start(&g, &p, fibers, outbox_fiber, &(producer){.db = db}, from, to);
    int64_t old = wv_deadline_set(until);
    long got = 0;
    while (rc == 0 && got < to - from) {
        wv_pg_notification *m;
        if ((rc = wv_pg_notification_recv(listen, &m)) < 0) {
            wv_fail(rc, "%ld of the %ld results in time: %s", got, to - from, wv_strerror(rc));
            break;
        }
        wv_pg_notification_free(m);
        got++;
    }
    *t_last = now_ns();
    wv_deadline_set(old);
    return producers_join(g, p, fibers, rc);
}

/* The count(*) a query returns must be `want`. */
static int expect_count(wv_db *db, const char *what, const char *sql, long want)
{
    int64_t got = -1;
    int rc = wv_db_query_int(db, &got, sql);
    if (rc == 0 && got != want)
        rc = wv_fail(-EPROTO, "%s: %lld, not %ld", what, (long long)got, want);
    return rc;
}

/* `outbox`: WARM transactions (each a bench_orders row and a tasks.noop
 * enqueued with wv_task_enqueue, committed) from FIBERS fibers on a pool
 * of as many connections, while a LISTEN on weave_tasks_done (the
 * database backend notifies as it stores each result) counts their
 * results; then the clock starts, N more the same way, and it stops at
 * the N-th result. Then the database must hold WARM + N orders and as
 * many tasks, every one SUCCESS and done. */
static int outbox(const char *url, long warm, long n, int fibers, int timeout_s)
{
    wv_db *db = NULL;
    wv_pg_conn *listen = NULL;
    int rc = wv_db_open(url, &(wv_db_opts){.connections = fibers}, &db);
    if (rc == 0)
        rc = wv_pg_connect(url, NULL, &listen);
    if (rc == 0)
        rc = wv_pg_listen(listen, "weave_tasks_done");
    int64_t until = wv_after_ms((int64_t)timeout_s * 1000), t1 = 0;
    if (rc == 0 && warm > 0)
        rc = outbox_batch(db, listen, 0, warm, fibers, until, &t1);
    cpu_snap c0 = cpu_snap_now();
    int64_t t0 = now_ns();
    if (rc == 0)
        rc = outbox_batch(db, listen, warm, warm + n, fibers, until, &t1);
    cpu_snap c1 = cpu_snap_now();
    long all = warm + n;
    if (rc == 0)
        rc = expect_count(db, "orders", "SELECT count(*) FROM bench_orders", all);
    if (rc == 0)
        rc = expect_count(db, "tasks", "SELECT count(*) FROM weave_tasks", all);
    if (rc == 0)
        rc = expect_count(db, "tasks done and SUCCESS",
                          "SELECT count(*) FROM weave_tasks WHERE state = 'SUCCESS' AND run_at "
                          "IS NULL AND name = 'tasks.noop' AND result LIKE '%\"result\": null%'",
                          all);
    double wall = (double)(t1 - t0) / 1e9;
    if (rc == 0) {
        fprintf(stderr,
                "# %ld transactions after %ld of warm-up (%d fibers), every task done and "
                "SUCCESS in the database, in %.3f s: %.0f/s\n",
                n, warm, fibers, wall, (double)n / wall);
        print_cpus(&c0, &c1, (double)(now_ns() - t0) / 1e9, n, "producer");
        printf("value=%.4f\n", (double)n / wall);
    }
    wv_pg_close(listen);
    wv_db_close(db);
    return rc;
}

/* ------------------------------------------------------------ main */

static bool usage_shown;

static int usage(void)
{
    usage_shown = true;
    fprintf(stderr, "usage: bench_tasks produce URL noop|async_add WARM N IDS [FIBERS]\n"
                    "       bench_tasks fill BROKER BACKEND noop|async_add WARM N IDS [FIBERS]\n"
                    "       bench_tasks worker URL CONCURRENCY [acks_late] [backend=URL]\n"
                    "       bench_tasks wait URL WARM N IDS rate|seconds [TIMEOUT_S]\n"
                    "       bench_tasks count URL WARM N IDS rate|seconds TIMEOUT_S READY_FILE\n"
                    "       bench_tasks outbox-reset PG_URL\n"
                    "       bench_tasks outbox PG_URL WARM N FIBERS [TIMEOUT_S]\n");
    return -EINVAL;
}

static int run(void *arg)
{
    (void)arg;
    const char *mode = argc_ > 1 ? argv_[1] : "";
    int rc;
    if (strcmp(mode, "produce") == 0 && argc_ >= 7) {
        long warm = atol(argv_[4]), n = atol(argv_[5]);
        int fibers = argc_ > 7 ? atoi(argv_[7]) : FIBERS;
        rc = warm >= 0 && n > 0 && fibers > 0
                 ? produce(argv_[2], argv_[3], warm, n, argv_[6], fibers)
                 : usage();
    } else if (strcmp(mode, "fill") == 0 && argc_ >= 8) {
        long warm = atol(argv_[5]), n = atol(argv_[6]);
        int fibers = argc_ > 8 ? atoi(argv_[8]) : FIBERS;
        rc = warm >= 0 && n > 0 && fibers > 0
                 ? fill(argv_[2], argv_[3], argv_[4], warm, n, argv_[7], fibers)
                 : usage();
    } else if (strcmp(mode, "worker") == 0 && argc_ >= 4) {
        int c = atoi(argv_[3]);
        bool acks_late = false;
        const char *backend = argv_[2];
        for (int i = 4; i < argc_; i++) {
            if (strcmp(argv_[i], "acks_late") == 0)
                acks_late = true;
            else if (strncmp(argv_[i], "backend=", 8) == 0)
                backend = argv_[i] + 8;
            else
                c = 0; /* an unknown word: usage */
        }
        rc = c > 0 ? worker(argv_[2], backend, c, acks_late) : usage();
    } else if ((strcmp(mode, "wait") == 0 && argc_ >= 7) ||
               (strcmp(mode, "count") == 0 && argc_ >= 9)) {
        long warm = atol(argv_[3]), n = atol(argv_[4]);
        int timeout_s = argc_ > 7 ? atoi(argv_[7]) : TIMEOUT_S;
        bool secs = strcmp(argv_[6], "seconds") == 0;
        const char *ready = strcmp(mode, "count") == 0 ? argv_[8] : NULL;
        rc = warm >= 0 && n > 0 && timeout_s > 0 && (secs || strcmp(argv_[6], "rate") == 0)
                 ? wait_results(argv_[2], warm, n, argv_[5], secs, timeout_s, ready)
                 : usage();
    } else if (strcmp(mode, "outbox-reset") == 0 && argc_ >= 3) {
        rc = outbox_reset(argv_[2]);
    } else if (strcmp(mode, "outbox") == 0 && argc_ >= 6) {
        long warm = atol(argv_[3]), n = atol(argv_[4]);
        int fibers = atoi(argv_[5]);
        int timeout_s = argc_ > 6 ? atoi(argv_[6]) : TIMEOUT_S;
        rc = warm >= 0 && n > 0 && fibers > 0 && timeout_s > 0
                 ? outbox(argv_[2], warm, n, fibers, timeout_s)
                 : usage();
    } else {
        rc = usage();
    }
    if (rc < 0 && !usage_shown)
        fprintf(stderr, "bench_tasks %s: %s (%s)\n", mode, wv_strerror(rc), wv_errmsg());
    return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    argc_ = argc;
    argv_ = argv;
    int rc = wv_main(&(wv_main_opts){.shards = 1}, run, NULL);
    return rc != 0 ? 1 : 0;
}
