/*
 * bench/bench_tasks.c: weave's Celery-compatible task queue
 * (include/weave/tasks.h) end to end on a real Redis: the producer that
 * fills the queue for every side of bench/run_tasks.sh, weave's worker, and
 * the waiter that releases the queue, times it and checks every result in
 * the backend. The suite runs one worker at a time (weave's or a Celery
 * worker on the same Redis) between a `produce` and a `wait`
 * (bench/tasks/one_run.sh).
 *
 *   bench_tasks produce URL TASK WARM N IDS [FIBERS]
 *       into an empty database (no worker running): send WARM messages of
 *       TASK (below) to the queue "celery" with wv_tasks_send from FIBERS
 *       (64) fibers of one shard, check that the queue holds exactly them
 *       and RENAME it to bench.warm; then the same with N more messages,
 *       renamed to bench.hold: both out of every worker's sight. Writes
 *       "<id> <expected result>" per task to the file IDS, in the order
 *       sent.
 *   bench_tasks worker URL CONCURRENCY [acks_late]
 *       one shard's worker (wv_tasks_work, results to URL too) with
 *       tasks.noop and tasks.async_add, at most CONCURRENCY tasks at once;
 *       says "ready" on stdout once it consumes; SIGTERM: warm shutdown
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
 *
 * TASK is noop (tasks.noop, no arguments, result null) or async_add
 * (tasks.async_add, arguments [i, 1] for the i-th message: sleeps 1 s in
 * its fiber, returns i + 1). Before value=, `wait` prints what
 * bench/cache/note.sh collects for the suite's CPU lines: worker_cpu=,
 * redis_cpu= and waiter_cpu=, the CPU the worker (every thread of the
 * process in TASKS_WORKER_PID), redis-server (TASKS_REDIS_PID) and the
 * waiter itself used between the release and the N-th result, in % of one
 * core (-1 when unknown), and worker_us=, redis_us= and waiter_us=, the
 * same in CPU µs per task. Lines starting with '#' (on stderr) describe
 * the run. Exit status 1 when anything did not happen as it should.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "bench_util.h"
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

static int worker(const char *url, int concurrency, bool acks_late)
{
    wv_tasks *t;
    int rc = wv_tasks_open(
        url, &(wv_tasks_opts){.backend = url, .concurrency = concurrency, .acks_late = acks_late},
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

typedef struct producer {
    wv_tasks *t;
    batch *b;
    const char *task;
    long from, to; /* the messages [from, to) */
    int rc;
} producer;

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

/* Messages [from, to) of b from `fibers` fibers, then the queue (which must
 * hold just them) renamed to `hold`. */
static int send_held(wv_tasks *t, wv_redis *r, batch *b, const char *name, long from, long to,
                     int fibers, const char *hold)
{
    producer *p = calloc((size_t)fibers, sizeof *p);
    wv_group *g = p ? wv_group_new() : NULL;
    int rc = g ? 0 : -ENOMEM;
    long n = to - from;
    for (int i = 0; rc == 0 && i < fibers; i++) {
        p[i] = (producer){t, b, name, from + n * i / fibers, from + n * (i + 1) / fibers, 0};
        rc = wv_group_spawn(g, produce_fiber, &p[i], NULL);
    }
    if (g) {
        int jr = wv_group_join(g);
        rc = rc ? rc : jr;
        wv_group_free(g);
    }
    for (int i = 0; rc == 0 && i < fibers; i++)
        rc = p[i].rc;
    free(p);
    long long queued = rc < 0 ? rc : int_cmd(r, "LLEN", QUEUE);
    if (rc == 0 && queued != n)
        rc = wv_fail(-EPROTO, "after sending %ld the queue holds %lld", n, queued);
    return rc < 0 ? rc : rename_key(r, QUEUE, hold);
}

static int produce(const char *url, const char *task_kind, long warm, long n, const char *ids,
                   int fibers)
{
    bool add = strcmp(task_kind, "async_add") == 0;
    if (!add && strcmp(task_kind, "noop") != 0)
        return wv_fail(-EINVAL, "TASK is noop or async_add, not %s", task_kind);
    const char *name = add ? "tasks.async_add" : "tasks.noop";
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

/* ------------------------------------------------------------ wait */

static double cpu_of(const char *env)
{
    const char *s = getenv(env);
    return s && atoi(s) > 0 ? proc_cpu_seconds((pid_t)atoi(s)) : -1;
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

/* RENAME hold back to the queue, then count the results published until
 * `count` have come (0 with *got == count), a FAILURE, or the deadline. */
static int release(wv_redis *r, wv_redis_sub *sub, const char *hold, long count, int64_t until,
                   long *got)
{
    long long held = int_cmd(r, "LLEN", hold), queued = int_cmd(r, "LLEN", QUEUE);
    if (held != count || queued != 0)
        return wv_fail(-EPROTO,
                       "before the release %s holds %lld and the queue %lld, not %ld and 0", hold,
                       held, queued, count);
    int rc = rename_key(r, hold, QUEUE);
    *got = 0;
    while (rc == 0 && *got < count) {
        wv_redis_msg *m;
        if ((rc = wv_redis_sub_recv(sub, &m, until)) < 0)
            return wv_fail(rc, "%ld of the %ld results of %s in time: %s", *got, count, hold,
                           wv_strerror(rc));
        if (!memmem(m->payload.p, m->payload.n, "\"SUCCESS\"", 9))
            rc = wv_fail(-EPROTO, "a result that is not SUCCESS: %.*s", (int)m->payload.n,
                         m->payload.p);
        ++*got;
        wv_redis_msg_free(m);
    }
    return rc;
}

static int wait_results(const char *url, long warm, long n, const char *ids, bool seconds,
                        int timeout_s)
{
    batch b = {0};
    int rc = read_ids(&b, ids, warm + n);
    wv_redis *r = NULL;
    wv_redis_sub *sub = NULL;
    if (rc == 0)
        rc = wv_redis_open(url, NULL, &r);
    if (rc == 0)
        rc = wv_redis_subscribe(r, &sub);
    if (rc == 0)
        rc = wv_redis_sub_psubscribe(sub, 1, (wv_str[]){WV_STR("celery-task-meta-*")});
    int64_t until = wv_after_ms((int64_t)timeout_s * 1000);
    long got = 0;
    if (rc == 0 && warm > 0)
        rc = release(r, sub, WARM_KEY, warm, until, &got);
    double w0 = cpu_of("TASKS_WORKER_PID"), r0 = cpu_of("TASKS_REDIS_PID"), s0 = own_cpu_seconds();
    int64_t t0 = now_ns();
    if (rc == 0)
        rc = release(r, sub, HOLD_KEY, n, until, &got);
    int64_t t1 = now_ns();
    double w1 = cpu_of("TASKS_WORKER_PID"), r1 = cpu_of("TASKS_REDIS_PID"), s1 = own_cpu_seconds();
    wv_redis_sub_close(sub);
    if (rc == 0)
        rc = verify(r, &b);
    long long queued = rc < 0 ? rc : int_cmd(r, "LLEN", QUEUE);
    if (rc == 0 && queued != 0)
        rc = wv_fail(-EPROTO, "%lld messages left in the queue after every result", queued);
    double wall = (double)(t1 - t0) / 1e9;
    if (rc == 0) {
        fprintf(stderr,
                "# %ld tasks after %ld of warm-up, every result checked in the backend, in "
                "%.3f s: %.0f/s\n",
                n, warm, wall, (double)n / wall);
        print_cpu("worker", w0, w1, wall, n);
        print_cpu("redis", r0, r1, wall, n);
        print_cpu("waiter", s0, s1, wall, n);
        printf("value=%.4f\n", seconds ? wall : (double)n / wall);
    }
    wv_redis_close(r);
    free(b.id);
    return rc;
}

/* ------------------------------------------------------------ main */

static bool usage_shown;

static int usage(void)
{
    usage_shown = true;
    fprintf(stderr, "usage: bench_tasks produce URL noop|async_add WARM N IDS [FIBERS]\n"
                    "       bench_tasks worker URL CONCURRENCY [acks_late]\n"
                    "       bench_tasks wait URL WARM N IDS rate|seconds [TIMEOUT_S]\n");
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
    } else if (strcmp(mode, "worker") == 0 && argc_ >= 4) {
        int c = atoi(argv_[3]);
        rc = c > 0 ? worker(argv_[2], c, argc_ > 4 && strcmp(argv_[4], "acks_late") == 0) : usage();
    } else if (strcmp(mode, "wait") == 0 && argc_ >= 7) {
        long warm = atol(argv_[3]), n = atol(argv_[4]);
        int timeout_s = argc_ > 7 ? atoi(argv_[7]) : TIMEOUT_S;
        bool secs = strcmp(argv_[6], "seconds") == 0;
        rc = warm >= 0 && n > 0 && timeout_s > 0 && (secs || strcmp(argv_[6], "rate") == 0)
                 ? wait_results(argv_[2], warm, n, argv_[5], secs, timeout_s)
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
