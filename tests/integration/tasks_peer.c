/*
 * weave's task queues as a command, for tests/integration/test_tasks_celery.py,
 * and tests/integration/test_tasks_amqp.py, which run it beside Python
 * Celery on one Redis or RabbitMQ. The broker is $TASKS_BROKER, the result
 * backend $TASKS_BACKEND (the broker when unset; "none" for none), the
 * queue $TASKS_QUEUE (Celery's "celery" when unset).
 *
 *   tasks_peer worker [acks_late] [track_started] [events] [dead=LIST]
 *                     [name=NODENAME] [conc=N] [VISIBILITY_MS]
 *       one shard's worker with tasks.add (the sum of two numbers),
 *       tasks.async_add (sleeps 1 s in its fiber, then adds), tasks.fail
 *       (ValueError with its argument), tasks.echo (its first argument),
 *       tasks.sleep (sleeps its argument in seconds, says "running <id>" on
 *       stdout first, returns the argument), tasks.flaky (retries with
 *       ValueError "boom <n>" after 300 ms, at most 2 times, or kwargs
 *       {"ok_at": N}: returns the retry count once it reaches N),
 *       tasks.stubborn (says "running <id>", then sleeps 30 s ignoring
 *       its deadline: only cancellation stops it), tasks.header (its
 *       custom header "tenant"), tasks.patient (sleeps
 *       30 s unless its deadline (a soft limit) ends that first; returns
 *       the error); "ready" once it consumes; SIGTERM: warm shutdown, exit 0
 *   tasks_peer send NAME ARGS_JSON [COUNTDOWN_MS [EXPIRES_MS]] [priority=N]
 *                   [soft=MS] [hard=MS] [kwargs=JSON] [headers=JSON]
 *       prints the id
 *   tasks_peer result ID
 *       waits up to 20 s: prints the result's JSON, or "ExcType: message" on
 *       stderr and exits 2 for a failure
 *   tasks_peer state ID
 *       prints "STATE" or "STATE result-or-error" at once
 *   tasks_peer call NAME ARGS_JSON [COUNT]
 *       sends COUNT (1) tasks and waits up to 60 s for their results in
 *       the same client (as the RPC backend needs): prints each id, then
 *       each result as `result` does, in the order sent
 *   tasks_peer revoke ID [terminate]
 *
 * Exit 0 on success; else 1 with wv_errmsg() on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/tasks.h>

static int argc_;
static char **argv_;

static int num(const wv_json_val *v, double *d, int64_t *i, bool *is_int)
{
    *is_int = wv_json_as_i64(v, i) == 0;
    return wv_json_as_double(v, d);
}

static int add_now(wv_task *task)
{
    const wv_json_val *a = wv_task_args(task);
    double x, y;
    int64_t xi, yi;
    bool xint, yint;
    if (num(wv_json_array_at(a, 0), &x, &xi, &xint) < 0 ||
        num(wv_json_array_at(a, 1), &y, &yi, &yint) < 0)
        return wv_task_fail(task, "TypeError", "add takes two numbers");
    if (xint && yint)
        wv_json_int(wv_task_result(task), (long long)(xi + yi));
    else
        wv_json_double(wv_task_result(task), x + y);
    return 0;
}

static int async_add(wv_task *task)
{
    int rc = wv_sleep_ms(1000);
    return rc < 0 ? rc : add_now(task);
}

static int fail(wv_task *task)
{
    const char *s = "no message";
    wv_json_as_string(wv_json_array_at(wv_task_args(task), 0), &s, NULL);
    return wv_task_fail(task, "ValueError", "%s", s);
}

static int echo(wv_task *task)
{
    const char *s = NULL;
    size_t n = 0;
    if (wv_json_as_string(wv_json_array_at(wv_task_args(task), 0), &s, &n) == 0)
        wv_json_stringn(wv_task_result(task), s, n);
    return 0;
}

static int sleep_task(wv_task *task)
{
    double secs = 0;
    wv_json_as_double(wv_json_array_at(wv_task_args(task), 0), &secs);
    printf("running %s\n", wv_task_id(task));
    fflush(stdout);
    int rc = wv_sleep_ms((int64_t)(secs * 1000));
    if (rc < 0)
        return rc;
    wv_json_double(wv_task_result(task), secs);
    return 0;
}

static int flaky(wv_task *task)
{
    int64_t ok_at = -1;
    wv_json_get_i64(wv_task_kwargs(task), "ok_at", &ok_at);
    if (wv_task_retries(task) == ok_at) {
        wv_json_int(wv_task_result(task), wv_task_retries(task));
        return 0;
    }
    char msg[32];
    snprintf(msg, sizeof msg, "boom %d", wv_task_retries(task));
    return wv_task_retry(task, &(wv_task_retry_opts){.countdown_ms = 300,
                                                     .max_retries = ok_at >= 0 ? -1 : 2,
                                                     .exc_type = "ValueError",
                                                     .exc_message = msg});
}

static int header(wv_task *task)
{
    const char *s = NULL;
    size_t n = 0;
    if (wv_json_get_string(wv_task_headers(task), "tenant", &s, &n) == 0)
        wv_json_stringn(wv_task_result(task), s, n);
    return 0;
}

static int stubborn(wv_task *task)
{
    printf("running %s\n", wv_task_id(task));
    fflush(stdout);
    wv_deadline_set(WV_NEVER);
    return wv_sleep_ms(30000);
}

static int patient(wv_task *task)
{
    (void)task;
    return wv_sleep_ms(30000);
}

static const char *broker(void)
{
    const char *b = getenv("TASKS_BROKER");
    return b ? b : "redis://127.0.0.1:6379/0";
}

static const char *backend(void)
{
    const char *b = getenv("TASKS_BACKEND");
    if (b && strcmp(b, "none") == 0)
        return NULL;
    return b ? b : broker();
}

static wv_tasks_opts base_opts(void)
{
    return (wv_tasks_opts){.backend = backend(), .queue = getenv("TASKS_QUEUE")};
}

static int worker(void)
{
    wv_tasks_opts o = base_opts();
    for (int i = 2; i < argc_; i++) {
        if (strcmp(argv_[i], "acks_late") == 0)
            o.acks_late = true;
        else if (strcmp(argv_[i], "track_started") == 0)
            o.track_started = true;
        else if (strcmp(argv_[i], "events") == 0)
            o.events = true;
        else if (strncmp(argv_[i], "dead=", 5) == 0)
            o.dead_letter = argv_[i] + 5;
        else if (strncmp(argv_[i], "name=", 5) == 0)
            o.hostname = argv_[i] + 5;
        else if (strncmp(argv_[i], "conc=", 5) == 0)
            o.concurrency = atoi(argv_[i] + 5);
        else
            o.visibility_timeout_ms = atoll(argv_[i]);
    }
    wv_tasks *t;
    int rc = wv_tasks_open(broker(), &o, &t);
    if (rc < 0)
        return rc;
    wv_tasks_register(t, "tasks.add", add_now, NULL);
    wv_tasks_register(t, "tasks.async_add", async_add, NULL);
    wv_tasks_register(t, "tasks.fail", fail, NULL);
    wv_tasks_register(t, "tasks.echo", echo, NULL);
    wv_tasks_register(t, "tasks.sleep", sleep_task, NULL);
    wv_tasks_register(t, "tasks.flaky", flaky, NULL);
    wv_tasks_register(t, "tasks.header", header, NULL);
    wv_tasks_register(t, "tasks.stubborn", stubborn, NULL);
    wv_tasks_register(t, "tasks.patient", patient, NULL);
    printf("ready\n");
    fflush(stdout);
    rc = wv_tasks_work(t);
    wv_tasks_close(t);
    return rc;
}

static int send_cmd(void)
{
    if (argc_ < 4)
        return -EINVAL;
    wv_task_send_opts o = {0};
    int pos = 0;
    for (int i = 4; i < argc_; i++) {
        const char *a = argv_[i];
        if (strncmp(a, "priority=", 9) == 0)
            o.priority = atoi(a + 9);
        else if (strncmp(a, "soft=", 5) == 0)
            o.soft_time_limit_ms = atoll(a + 5);
        else if (strncmp(a, "hard=", 5) == 0)
            o.time_limit_ms = atoll(a + 5);
        else if (strncmp(a, "kwargs=", 7) == 0)
            o.kwargs = a + 7;
        else if (strncmp(a, "headers=", 8) == 0)
            o.headers = a + 8;
        else if (pos++ == 0)
            o.countdown_ms = atoll(a);
        else
            o.expires_ms = atoll(a);
    }
    wv_tasks *t;
    wv_tasks_opts bo = base_opts();
    int rc = wv_tasks_open(broker(), &bo, &t);
    if (rc < 0)
        return rc;
    char id[37];
    rc = wv_tasks_send(t, argv_[2], argv_[3], &o, id);
    if (rc == 0)
        printf("%s\n", id);
    wv_tasks_close(t);
    return rc;
}

/* result: wait for it; state: look it up now */
static int result_cmd(bool wait)
{
    if (argc_ < 3)
        return -EINVAL;
    wv_tasks *t;
    wv_tasks_opts bo = base_opts();
    int rc = wv_tasks_open(broker(), &bo, &t);
    if (rc < 0)
        return rc;
    wv_buf out = {0};
    wv_task_state st = WV_TASK_SUCCESS;
    int64_t old = wv_deadline_set(wv_after_ms(20000));
    rc = wait ? wv_tasks_result(t, argv_[2], &out) : wv_tasks_state(t, argv_[2], &st, &out);
    wv_deadline_set(old);
    if (rc == 0 && wait)
        printf("%.*s\n", (int)out.n, out.p);
    else if (rc == 0)
        printf("%s%s%.*s\n", wv_tasks_state_name(st), out.n ? " " : "", (int)out.n, out.p);
    wv_buf_free(&out);
    wv_tasks_close(t);
    return rc;
}

static int call_cmd(void)
{
    if (argc_ < 4)
        return -EINVAL;
    int n = argc_ > 4 ? atoi(argv_[4]) : 1;
    if (n < 1 || n > 10000)
        return -EINVAL;
    wv_tasks *t;
    wv_tasks_opts bo = base_opts();
    int rc = wv_tasks_open(broker(), &bo, &t);
    if (rc < 0)
        return rc;
    char(*ids)[37] = calloc((size_t)n, sizeof *ids);
    if (!ids)
        rc = -ENOMEM;
    for (int i = 0; rc == 0 && i < n; i++) {
        rc = wv_tasks_send(t, argv_[2], argv_[3], NULL, ids[i]);
        if (rc == 0)
            printf("%s\n", ids[i]);
    }
    fflush(stdout);
    int64_t old = wv_deadline_set(wv_after_ms(60000));
    for (int i = 0; rc == 0 && i < n; i++) {
        wv_buf out = {0};
        rc = wv_tasks_result(t, ids[i], &out);
        if (rc == 0)
            printf("%.*s\n", (int)out.n, out.p);
        wv_buf_free(&out);
    }
    wv_deadline_set(old);
    free(ids);
    wv_tasks_close(t);
    return rc;
}

static int revoke_cmd(void)
{
    if (argc_ < 3)
        return -EINVAL;
    wv_tasks *t;
    int rc = wv_tasks_open(broker(), NULL, &t);
    if (rc < 0)
        return rc;
    rc = wv_tasks_revoke(t, argv_[2], argc_ > 3 && strcmp(argv_[3], "terminate") == 0);
    wv_tasks_close(t);
    return rc;
}

static int run(void *arg)
{
    (void)arg;
    int rc = -EINVAL;
    if (argc_ >= 2 && strcmp(argv_[1], "worker") == 0)
        rc = worker();
    else if (argc_ >= 2 && strcmp(argv_[1], "send") == 0)
        rc = send_cmd();
    else if (argc_ >= 2 && strcmp(argv_[1], "result") == 0)
        rc = result_cmd(true);
    else if (argc_ >= 2 && strcmp(argv_[1], "state") == 0)
        rc = result_cmd(false);
    else if (argc_ >= 2 && strcmp(argv_[1], "call") == 0)
        rc = call_cmd();
    else if (argc_ >= 2 && strcmp(argv_[1], "revoke") == 0)
        rc = revoke_cmd();
    else
        fprintf(stderr, "usage: tasks_peer worker|send|result|state|call|revoke ...\n");
    if (rc == -EREMOTEIO) {
        fprintf(stderr, "%s\n", wv_errmsg());
        return 2;
    }
    if (rc < 0) {
        fprintf(stderr, "tasks_peer: %s (%s)\n", wv_strerror(rc), wv_errmsg());
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
