/*
 * §13.8 task queues: Celery with an asynchronous task (13.8.1) and Celery
 * on RabbitMQ (13.8.2).
 *
 *     app = Celery('tasks', broker='redis://localhost:6379/0')        # 13.8.1
 *     async def async_add(x, y):
 *         await asyncio.sleep(1)
 *         return x + y
 *     result = run_async_task.delay(async_add(2, 3))
 *     print(result.get())  # Output: 5 after delay
 *
 *     app = Celery('tasks', broker='amqp://user:password@localhost:5672/myvhost')
 *     @app.task                                                        # 13.8.2
 *     def add(x, y):
 *         return x + y
 *
 * Here the tasks are Celery's own wire format (include/weave/tasks.h), so
 * the chapter's Python tasks.py (tasks/tasks.py beside this file) and a C
 * worker serve each other's producers. Two tasks, named as Celery names
 * the functions of a module tasks.py: tasks.async_add (the wait of
 * --async-delay-ms in the task's own fiber, then x + y: a thousand of them
 * wait together in one worker) and tasks.add (at once).
 *
 *   --tasks-url / TASKS_URL          the broker: redis://..., amqp://...,
 *                                    postgres://... or sqlite://FILE; unset:
 *                                    the embedded queue, a table in the
 *                                    service's own database (DATABASE_URL,
 *                                    the SQLite file by default), so `make
 *                                    run` needs no broker (none with
 *                                    sqlite::memory:, one database per
 *                                    shard: 503)
 *   --tasks-backend / TASKS_BACKEND  where results go: redis://...;
 *                                    default: TASKS_URL (a database queue
 *                                    keeps them in its rows), rpc:// with
 *                                    AMQP
 *   --worker / WORKER                run a worker in this process too (one
 *                                    per shard); always on with the
 *                                    embedded queue
 *   --worker-concurrency             tasks at once per shard (1000)
 *
 *   POST /tasks/add   {"x": 2, "y": 3[, "task": "async_add" | "add"]}
 *                     202 {"id", "task", "state": "PENDING"}; FastAPI's
 *                     422 for anything but two numbers and one of the
 *                     two tasks (the TaskIn model below: every error at
 *                     once, a body that is not JSON included)
 *   GET /tasks/{id}   {"id", "state"[, "result" | "error"]}: PENDING until
 *                     a worker has it, SUCCESS with the result (5), FAILURE
 *                     with "ExcType: message"; 501 with the RPC backend,
 *                     which only the producer's wait can read
 *
 * `chapter13 worker` runs only the workers, in a process of its own (no
 * HTTP), on the same options' variables: TASKS_URL (else DATABASE_URL,
 * else the service's default SQLite file), TASKS_BACKEND,
 * WORKER_CONCURRENCY, ASYNC_DELAY_MS; SIGTERM is a warm shutdown.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/json.h>
#include <weave/tasks.h>

#include "chapter13.h"

static struct {
    const char *url, *backend;
    int concurrency;
    int64_t delay_ms;
    wv_event done[256]; /* per shard: its in-process worker has returned */
    bool started[256];  /* per shard: it was started */
} cfg = {.concurrency = 1000, .delay_ms = 1000};

static int has_scheme(const char *url, const char *scheme)
{
    size_t n = strlen(scheme);
    return url && strncmp(url, scheme, n) == 0 && strncmp(url + n, "://", 3) == 0;
}

static const char *backend_for(const char *url, const char *backend)
{
    if (backend)
        return backend;
    if (has_scheme(url, "amqp") || has_scheme(url, "amqps"))
        return "rpc://";
    return url;
}

static int open_tasks(const char *url, void **handle)
{
    wv_tasks_opts o = {.backend = backend_for(url, cfg.backend),
                       .concurrency = cfg.concurrency,
                       .track_started = true,
                       .events = false};
    return wv_tasks_open(url, &o, (wv_tasks **)handle);
}

static void close_tasks(void *handle)
{
    wv_tasks_close(handle);
}

static const wv_client_type tasks_client = {
    .kind = "task queue", .open = open_tasks, .close = close_tasks};

/* ------------------------------------------------------------ the tasks */

static int two_numbers(wv_task *task, double *x, double *y, bool *ints)
{
    const wv_json_val *a = wv_task_args(task);
    int64_t xi, yi;
    *ints = wv_json_as_i64(wv_json_array_at(a, 0), &xi) == 0 &&
            wv_json_as_i64(wv_json_array_at(a, 1), &yi) == 0;
    if (wv_json_as_double(wv_json_array_at(a, 0), x) < 0 ||
        wv_json_as_double(wv_json_array_at(a, 1), y) < 0 || wv_json_array_at(a, 2))
        return wv_task_fail(task, "TypeError", "add() takes two numbers");
    return 0;
}

/* def add(x, y): return x + y */
static int add(wv_task *task)
{
    double x, y;
    bool ints;
    int rc = two_numbers(task, &x, &y, &ints);
    if (rc < 0)
        return rc;
    if (ints && x + y > -9e15 && x + y < 9e15)
        wv_json_int(wv_task_result(task), (long long)(x + y));
    else
        wv_json_double(wv_task_result(task), x + y);
    return 0;
}

/* async def async_add(x, y): await asyncio.sleep(1); return x + y */
static int async_add(wv_task *task)
{
    double x, y;
    bool ints;
    int rc = two_numbers(task, &x, &y, &ints);
    if (rc == 0)
        rc = wv_sleep_ms(cfg.delay_ms);
    return rc < 0 ? rc : add(task);
}

static int register_tasks(wv_tasks *t)
{
    int rc = wv_tasks_register(t, "tasks.add", add, NULL);
    return rc < 0 ? rc : wv_tasks_register(t, "tasks.async_add", async_add, NULL);
}

/* ------------------------------------------------------------ routes */

static wv_tasks *tasks_of(wv_req *req)
{
    wv_tasks *t = wv_req_client(req, "tasks");
    if (!t)
        wv_fail(-ECANCELED, "no task queue: set TASKS_URL (redis://..., amqp://..., "
                            "postgres://...), or a DATABASE_URL that is not sqlite::memory:");
    return t;
}

/* The body of POST /tasks/add, FastAPI's
 *     class TaskIn(BaseModel):
 *         x: float
 *         y: float
 *         task: TaskName = TaskName.async_add   # an Enum of the two names
 * (an integer stays an integer on its way to the task, as x: int | float
 * would keep it, so Python's x + y gives 5, not 5.0) */
typedef struct task_in {
    double x, y;
    char task[16];
} task_in;

static const wv_db_field task_in_fields[] = {
    WV_FIELD_FLOAT(task_in, x, .description = "The first number", .example = "2"),
    WV_FIELD_FLOAT(task_in, y, .description = "The second number", .example = "3"),
    WV_FIELD_TEXT(task_in, task, WV_ENUM("async_add", "add"), .default_json = "\"async_add\"",
                  .description = "The task: async_add waits --async-delay-ms first, add does not",
                  .example = "\"add\""),
};
static const wv_db_model task_in_model = {.size = sizeof(task_in),
                                          .fields = task_in_fields,
                                          .nfields = 3,
                                          .name = "TaskIn",
                                          .description = "Two numbers for a task to add"};

/* The answer of POST /tasks/add */
typedef struct task_sent {
    char id[37];
    char task[32];
    char state[16];
} task_sent;

static const wv_db_field task_sent_fields[] = {
    WV_FIELD_TEXT(task_sent, id, .description = "The task's id: GET /tasks/{id} reads its state",
                  .example = "\"0b1e3a1e-5d5c-4b5e-9d8a-2f0c1e4b7a90\""),
    WV_FIELD_TEXT(task_sent, task, .description = "The task's name, as Celery names it",
                  .example = "\"tasks.async_add\""),
    WV_FIELD_TEXT(task_sent, state, .description = "PENDING: queued", .example = "\"PENDING\""),
};
static const wv_db_model task_sent_model = {.size = sizeof(task_sent),
                                            .fields = task_sent_fields,
                                            .nfields = 3,
                                            .name = "TaskSent",
                                            .description = "A task queued"};

/* GET /tasks/{id}: Celery's task ids are UUIDs; any text up to 63 bytes */
static const wv_db_field task_id_param = {.name = "id",
                                          .type = WV_DB_TEXT,
                                          .size = 64,
                                          .min_chars = 1,
                                          .description = "The id POST /tasks/add answered"};

/* The body decoded as TaskIn from the document parsed here (kept, for
 * which numbers are integers): 0, -EINVAL / -EBADMSG with errs, or an
 * error. *doc is NULL for an empty body. */
static int read_task_in(wv_req *req, task_in *in, wv_json_doc **doc, wv_schema_errors *errs)
{
    wv_str body;
    int rc = wv_req_body(req, &body);
    *doc = NULL;
    if (rc < 0)
        return rc;
    if (body.n && wv_json_parse(body.p, body.n, doc) < 0)
        return wv_schema_decode(&task_in_model, body.p, body.n, in, errs); /* its json_invalid */
    return wv_schema_decode_val(&task_in_model, *doc ? wv_json_doc_root(*doc) : NULL, in, errs);
}

/* POST /tasks/add: result = async_add.delay(2, 3) */
static int post_add(wv_req *req, wv_res *res)
{
    task_in in;
    wv_json_doc *doc;
    wv_schema_errors errs = {0};
    int rc = input_end(res, read_task_in(req, &in, &doc, &errs), &errs);
    wv_tasks *t = rc == 0 ? tasks_of(req) : NULL;
    if (!t) {
        wv_json_doc_free(doc);
        return rc < 0 ? rc : rc == 1 ? 0 : -ECANCELED;
    }
    /* integers stay integers, so Python's x + y gives 5, not 5.0 */
    const wv_json_val *root = wv_json_doc_root(doc);
    wv_buf args = {0};
    wv_json j;
    wv_json_init(&j, &args);
    wv_json_array_begin(&j);
    const char *keys[] = {"x", "y"};
    for (int i = 0; i < 2; i++) {
        int64_t v;
        if (wv_json_get_i64(root, keys[i], &v) == 0)
            wv_json_int(&j, v);
        else
            wv_json_double(&j, i ? in.y : in.x);
    }
    wv_json_array_end(&j);
    rc = wv_json_finish(&j);
    wv_json_doc_free(doc);
    task_sent sent = {.state = "PENDING"};
    snprintf(sent.task, sizeof sent.task, "tasks.%s", in.task);
    if (rc == 0) {
        wv_buf_append(&args, "", 1);
        rc = wv_tasks_send(t, sent.task, args.p, NULL, sent.id);
    }
    wv_buf_free(&args);
    if (rc < 0)
        return rc;
    wv_json *w = wv_res_json_writer(res);
    rc = wv_schema_encode(&task_sent_model, &sent, w);
    return rc < 0 ? rc : wv_res_json_send(res, 202);
}

/* GET /tasks/{id}: AsyncResult(id).state, .result */
static int get_task(wv_req *req, wv_res *res)
{
    wv_tasks *t = tasks_of(req);
    if (!t)
        return -ECANCELED;
    char idz[64];
    wv_schema_errors errs = {0};
    int rc = input_end(res, input_path(req, &task_id_param, idz, &errs), &errs);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    wv_task_state st;
    wv_buf out = {0};
    rc = wv_tasks_state(t, idz, &st, &out);
    if (rc == -ENOTSUP) {
        wv_buf_free(&out);
        return detail_error(res, 501,
                            "the rpc:// result backend is read only by the producer's wait; "
                            "set TASKS_BACKEND to a Redis URL to look tasks up");
    }
    if (rc == 0) {
        wv_json *w = wv_res_json_writer(res);
        wv_json_object_begin(w);
        wv_json_key(w, "id");
        wv_json_string(w, idz);
        wv_json_key(w, "state");
        wv_json_string(w, wv_tasks_state_name(st));
        if (st == WV_TASK_SUCCESS) {
            wv_json_key(w, "result");
            wv_json_raw(w, out.p, out.n);
        } else if (out.n) {
            wv_json_key(w, "error");
            wv_json_stringn(w, out.p, out.n);
        }
        wv_json_object_end(w);
        rc = wv_res_json_send(res, 200);
    }
    wv_buf_free(&out);
    return rc;
}

/* ------------------------------------------------------------ workers */

static int worker_fiber(void *arg)
{
    wv_tasks *t = arg;
    int rc = register_tasks(t);
    if (rc == 0)
        rc = wv_tasks_work(t);
    if (rc < 0 && rc != -ECANCELED)
        wv_error("tasks: the worker of shard %d stopped: %s (%s)", wv_shard_id(), wv_strerror(rc),
                 wv_errmsg());
    wv_event_set(&cfg.done[wv_shard_id() % 256]);
    return 0;
}

static int start_worker(void *arg)
{
    wv_tasks *t = wv_app_client_get(arg, "tasks");
    if (!t)
        return wv_fail(-EINVAL, "tasks: no task queue to work on (TASKS_URL)");
    int rc = wv_spawn(worker_fiber, t, &(wv_spawn_opts){.name = "tasks-worker"});
    cfg.started[wv_shard_id() % 256] = rc == 0;
    return rc;
}

static int start_workers(void *app)
{
    return wv_shard_each(start_worker, app);
}

/* A stop hook also runs when the start failed before the workers began
 * (a database that cannot be opened): only a started worker is waited for. */
static int wait_worker(void *arg)
{
    (void)arg;
    if (cfg.started[wv_shard_id() % 256])
        wv_event_wait_shielded(&cfg.done[wv_shard_id() % 256]);
    return 0;
}

static int stop_workers(void *arg)
{
    (void)arg;
    return wv_shard_each(wait_worker, NULL);
}

void s13_8_tasks_options(wv_app *app)
{
    wv_app_option(app, "tasks-url", "TASKS_URL", WV_OPT_STRING, NULL,
                  "the task queue's broker: redis://... or amqp://... (unset: none)");
    wv_app_option(app, "tasks-backend", "TASKS_BACKEND", WV_OPT_STRING, NULL,
                  "where task results go: redis://... (default: the broker when it is Redis, "
                  "rpc:// with AMQP)");
    wv_app_option(app, "worker", "WORKER", WV_OPT_BOOL, "false",
                  "also run a task worker in this process (one per shard)");
    wv_app_option(app, "worker-concurrency", "WORKER_CONCURRENCY", WV_OPT_INT, "1000",
                  "tasks a worker runs at once, per shard");
}

void s13_8_tasks(wv_app *app)
{
    cfg.url = wv_app_str(app, "tasks-url");
    cfg.backend = wv_app_str(app, "tasks-backend");
    cfg.concurrency = (int)wv_app_int(app, "worker-concurrency");
    cfg.delay_ms = async_delay_ms;
    bool embedded = !cfg.url;
    if (embedded) {
        /* the service's own database; a private in-memory one per shard
         * cannot be a queue every shard sees */
        const char *db = wv_app_str(app, "database-url");
        if (db && strcmp(db, "sqlite::memory:") != 0 && strcmp(db, "sqlite://:memory:") != 0)
            cfg.url = db;
    }
    if (cfg.url) {
        wv_app_client(app, "tasks", cfg.url, &tasks_client);
        if (embedded || wv_app_bool(app, "worker")) {
            wv_app_on_start(app, start_workers, app);
            wv_app_on_stop(app, stop_workers, NULL);
        }
    }
    wv_post(app, "/tasks/add", post_add);
    wv_get(app, "/tasks/{id}", get_task);
}

/* ------------------------------------------------------------ chapter13 worker */

static int worker_shard(void *arg)
{
    (void)arg;
    wv_tasks *t;
    wv_tasks_opts o = {.backend = backend_for(cfg.url, cfg.backend),
                       .concurrency = cfg.concurrency,
                       .track_started = true};
    int rc = wv_tasks_open(cfg.url, &o, &t);
    if (rc < 0)
        return rc;
    rc = register_tasks(t);
    if (rc == 0) {
        if (wv_shard_id() == 0)
            wv_info("chapter13 worker: %d shard(s) on the task queue, %d tasks at once each",
                    wv_shard_count(), cfg.concurrency);
        rc = wv_tasks_work(t);
    }
    wv_tasks_close(t);
    return rc;
}

static int worker_main(void *arg)
{
    return wv_shard_each(worker_shard, arg);
}

int s13_8_worker_main(void)
{
    cfg.url = getenv("TASKS_URL");
    cfg.backend = getenv("TASKS_BACKEND");
    if (cfg.url && !*cfg.url)
        cfg.url = NULL; /* empty is unset, as the app's options read it */
    if (!cfg.url) {
        const char *db = getenv("DATABASE_URL");
        cfg.url = db && *db ? db : DEFAULT_DATABASE_URL;
    }
    if (cfg.backend && !*cfg.backend)
        cfg.backend = NULL;
    const char *c = getenv("WORKER_CONCURRENCY"), *d = getenv("ASYNC_DELAY_MS");
    if (c)
        cfg.concurrency = atoi(c);
    if (d)
        cfg.delay_ms = atoll(d);
    if (!cfg.url || cfg.concurrency <= 0 || cfg.delay_ms < 0) {
        fprintf(stderr, "chapter13 worker: WORKER_CONCURRENCY > 0, ASYNC_DELAY_MS >= 0\n");
        return 2;
    }
    int rc = wv_main(NULL, worker_main, NULL);
    if (rc < 0) {
        fprintf(stderr, "chapter13 worker: %s (%s)\n", wv_strerror(rc), wv_errmsg());
        return 1;
    }
    return 0;
}
