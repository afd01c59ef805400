/*
 * weave's task queues: Celery-compatible workers and producers over Redis
 * or RabbitMQ. A task sent by Python's `add.delay(2, 3)` runs in a C
 * worker, a task sent from C runs in a Python Celery worker, and results go
 * both ways through Celery's Redis result backend or, with RabbitMQ, its
 * RPC backend (Celery 5.2, kombu 5.2; docs/tasks.md).
 *
 *     static int add(wv_task *task)
 *     {
 *         int64_t x, y;
 *         const wv_json_val *a = wv_task_args(task);
 *         if (wv_json_as_i64(wv_json_array_at(a, 0), &x) < 0 ||
 *             wv_json_as_i64(wv_json_array_at(a, 1), &y) < 0)
 *             return wv_task_fail(task, "TypeError", "add takes two integers");
 *         wv_json_int(wv_task_result(task), x + y);
 *         return 0;
 *     }
 *
 *     wv_tasks *t;
 *     wv_tasks_open("redis://127.0.0.1:6379/0",   // or "amqp://guest:guest@host//"
 *                   &(wv_tasks_opts){.backend = "redis://127.0.0.1:6379/0"}, &t);
 *                                             // with amqp://, also .backend = "rpc://"
 *     wv_tasks_register(t, "tasks.add", add, NULL);
 *     wv_tasks_work(t);                       // until the runtime stops
 *
 *     char id[37];                            // a producer, anywhere
 *     wv_tasks_send(t, "tasks.add", "[2, 3]", NULL, id);
 *     wv_buf out = {0};
 *     int64_t old = wv_deadline_set(wv_after_ms(10000));
 *     rc = wv_tasks_result(t, id, &out);      // 0: out holds "5"
 *     wv_deadline_set(old);
 *
 * The model.
 *
 *  - A client (wv_tasks) belongs to the shard that opened it; open one per
 *    shard, as wv_redis. wv_tasks_work runs one shard's worker: one fiber
 *    takes messages (BRPOP on the queue's list; on RabbitMQ a consumer)
 *    while fewer than opts.concurrency tasks run, and each task runs in a
 *    fiber of its own, so a task that waits (I/O, a sleep) lets the
 *    others run.
 *  - On Redis, messages are kombu's Redis transport's, as Python's Celery
 *    writes and reads them: a queue is a Redis list, producers LPUSH,
 *    workers BRPOP;
 *    a producer also adds the queue's binding to _kombu.binding.<queue> as
 *    Celery declares a queue when it publishes. Priorities other than 0
 *    (kombu's extra lists "<queue>\x06\x16<n>") are not read.
 *  - Acknowledgement as kombu's virtual transport does it on Redis: a
 *    message that must survive the worker is recorded in the hash `unacked`
 *    (delivery tag -> [envelope, exchange, routing_key]) with its time in
 *    the sorted set `unacked_index`, and the ack deletes both. By default a
 *    task is acked before it runs (Celery's default; a message with an ETA
 *    is recorded while it waits, and acked when it starts); with
 *    opts.acks_late it is recorded on receipt and acked once it has run, so
 *    a task whose worker dies runs again. Each working client puts back on
 *    their queue (RPUSH: taken next) the records older than the visibility
 *    timeout, at start and then every min(visibility_timeout / 2, 10 s),
 *    under kombu's lock `unacked_mutex` (SET NX PX 300 s).
 *  - On RabbitMQ (amqp://, amqps://) messages are kombu's py-amqp
 *    transport's: Celery's durable queue and direct exchange of the same
 *    name, published through the default exchange, headers as a field
 *    table, consumed with manual acks and a prefetch (basic.qos, global) of
 *    opts.concurrency, raised by one for each message held for its ETA, as
 *    Celery does. Acks as on Redis (before the task runs, or after it with
 *    acks_late); a worker that dies has its unacked messages redelivered by
 *    the broker at once (no visibility timeout). A connection that drops is
 *    dialed again, its queues declared and consumers started again.
 *    Celery's "amqp://host//" names the vhost "/".
 *  - A task returning 0 is SUCCESS with the value written to
 *    wv_task_result (null when none). A negative errno is FAILURE with the
 *    Python exception Python itself raises for that errno (PEP 3151:
 *    -ENOENT FileNotFoundError, -EEXIST FileExistsError, -EACCES and -EPERM
 *    PermissionError, -ETIMEDOUT TimeoutError, -ECONNREFUSED
 *    ConnectionRefusedError, -ECONNRESET ConnectionResetError,
 *    -ECONNABORTED ConnectionAbortedError, -EPIPE BrokenPipeError, -EAGAIN
 *    BlockingIOError, -EINTR InterruptedError, -EISDIR IsADirectoryError,
 *    -ENOTDIR NotADirectoryError), and besides: -EINVAL, -EDOM, -ERANGE
 *    ValueError, -ENOMEM MemoryError, -ENOSYS and -ENOTSUP
 *    NotImplementedError, any other OSError; its message is wv_errmsg() (or
 *    strerror when empty). wv_task_fail names the exception exactly. The
 *    names are builtins, which Celery rebuilds into the real exception.
 *  - The message's hard time limit (time_limit) is the task fiber's
 *    deadline; a task that fails with -ETIMEDOUT once it has passed is
 *    FAILURE TimeLimitExceeded (celery.exceptions), as in Celery. The soft
 *    limit is not enforced.
 *  - A message whose `expires` has passed is not run: REVOKED
 *    (TaskRevokedError "expired"), acked. One with an `eta` (countdown) is
 *    held unacked (recorded) until then. One for a task name nobody
 *    registered is logged and stored as FAILURE NotRegistered, as a Python
 *    worker does, and rejected: on RabbitMQ basic.reject without requeue
 *    (dead-lettered when the queue has x-dead-letter-exchange), on Redis
 *    acked. One that does not decode is logged and dropped (Redis: pushed
 *    to opts.dead_letter when set; RabbitMQ: rejected, so dead-lettered
 *    as above).
 *  - Results (opts.backend set, and the message not ignore_result) are
 *    Celery's Redis backend's: SET celery-task-meta-<id> PX
 *    result_expires, and PUBLISH on the channel of the same name. Or, with
 *    "rpc://" (an AMQP broker only), Celery's RPC backend's: the producer
 *    puts its own reply queue in every message's reply_to and the worker
 *    publishes the result there; only the client that sent a task can read
 *    its result, and a result published while the broker restarts is lost.
 *    STARTED is not stored (Celery's task_track_started is off by default).
 *  - Warm shutdown: once the runtime is asked to stop (wv_stop, SIGTERM),
 *    the worker takes no more messages (within a second: BRPOP polls with
 *    a 1 s timeout so that a message is never lost to a cut-off BRPOP;
 *    on RabbitMQ what was delivered and not taken goes back to the queue
 *    when the client closes),
 *    puts the held ETA messages back on their queue, lets the running tasks
 *    finish and ack, and wv_tasks_work returns 0. A cancelled worker fiber
 *    cancels its tasks; their acks_late records are restored by the next
 *    worker after the visibility timeout.
 *
 * Errors are negative errno values with wv_errmsg() saying why: -EINVAL,
 * -EPROTONOSUPPORT (a broker URL that is not redis://, rediss://, amqp://
 * or amqps://, a backend that is not redis://, rediss:// or rpc://, rpc://
 * with a Redis broker), -EPERM (outside a fiber), -EXDEV (from another
 * shard), the Redis or AMQP client's (-ECONNREFUSED, -EACCES, -ETIMEDOUT,
 * -ECANCELED, ...: include/weave/redis.h, include/weave/amqp.h), and
 * -EREMOTEIO for a task that failed (wv_tasks_result).
 */
#ifndef WEAVE_TASKS_H
#define WEAVE_TASKS_H

#include <stdbool.h>
#include <stdint.h>

#include "weave/buf.h"
#include "weave/json.h"
#include "weave/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_tasks wv_tasks; /* a task-queue client of one shard */
typedef struct wv_task wv_task;   /* a task a worker is running */

typedef struct wv_tasks_opts {
    const char *backend;           /* results: redis://... or rpc://; NULL = not stored */
    const char *queue;             /* NULL = "celery" */
    int concurrency;               /* worker: tasks running at once on this shard (RabbitMQ:
                                      the prefetch too); 0 = 16 */
    bool acks_late;                /* worker: ack after the task ran (see above) */
    int64_t visibility_timeout_ms; /* Redis: 0 = 3,600,000 (kombu's) */
    int64_t result_expires_ms;     /* 0 = 86,400,000 (Celery's result_expires) */
    const char *dead_letter;       /* Redis: a list that gets the messages that do not
                                      decode (NULL: they are dropped, with a log line);
                                      RabbitMQ: unused (the queue's dead-letter exchange) */
} wv_tasks_opts;

/* A client on the calling shard, for broker (redis:// or rediss://, as
 * include/weave/redis.h reads them, amqp:// or amqps:// as
 * include/weave/amqp.h does; -EPROTONOSUPPORT otherwise). It dials the
 * broker (and the backend) at once. opts may be NULL. */
int wv_tasks_open(const char *broker, const wv_tasks_opts *opts, wv_tasks **out);

/* Close the client (not while wv_tasks_work runs). NULL is ignored. */
void wv_tasks_close(wv_tasks *t);

/* ------------------------------------------------------------------ worker */

/* A task's body: 0 for SUCCESS, a negative errno for FAILURE (above). */
typedef int wv_task_fn(wv_task *task);

/* Run fn for messages naming `name` (copied); data is wv_task_data's.
 * -EEXIST for a name already registered. Before wv_tasks_work. */
int wv_tasks_register(wv_tasks *t, const char *name, wv_task_fn *fn, void *data);

/* Consume the client's queue and run tasks until the runtime stops (warm
 * shutdown, then 0) or the calling fiber is cancelled (-ECANCELED). */
int wv_tasks_work(wv_tasks *t);

/* In a task: its id, name, retries, args (a JSON array) and kwargs (a JSON
 * object), valid while the task runs. */
const char *wv_task_id(const wv_task *task);
const char *wv_task_name(const wv_task *task);
int wv_task_retries(const wv_task *task);
const wv_json_val *wv_task_args(const wv_task *task);
const wv_json_val *wv_task_kwargs(const wv_task *task);
void *wv_task_data(const wv_task *task);

/* The writer of the task's return value: write one JSON value. Nothing
 * written is null. */
wv_json *wv_task_result(wv_task *task);

/* Fail with the Python exception exc_type (a builtin's name, e.g.
 * "ValueError") and the message: returns -EREMOTEIO for the task to return. */
int wv_task_fail(wv_task *task, const char *exc_type, const char *fmt, ...) WV_PRINTF(3, 4);

/* ---------------------------------------------------------------- producer */

typedef struct wv_task_send_opts {
    const char *kwargs;   /* JSON object text; NULL = {} */
    int64_t countdown_ms; /* 0 = now */
    int64_t expires_ms;   /* 0 = never */
    const char *queue;    /* NULL = the client's */
} wv_task_send_opts;

/* Send task `name` with args_json (a JSON array text; NULL = []): 0 with
 * its id (a uuid4) in id. opts may be NULL; id may be NULL. */
int wv_tasks_send(wv_tasks *t, const char *name, const char *args_json,
                  const wv_task_send_opts *opts, char id[37]);

/*
 * Wait for task id's result (within the fiber's deadline), from the
 * backend: 0 with the return value's JSON text appended to *result on
 * SUCCESS; -EREMOTEIO with wv_errmsg() "ExcType: message" on FAILURE (and
 * REVOKED: "TaskRevokedError: expired"); -ETIMEDOUT when the deadline
 * passes first; -EINVAL without a backend.
 */
int wv_tasks_result(wv_tasks *t, const char *id, wv_buf *result);

#ifdef __cplusplus
}
#endif

#endif
