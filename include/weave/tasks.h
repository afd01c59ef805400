/*
 * weave's task queues: Celery-compatible workers and producers over Redis
 * or RabbitMQ, or over a table in PostgreSQL or SQLite (below). A task sent
 * by Python's `add.delay(2, 3)` runs in a C worker, a task sent from C runs
 * in a Python Celery worker, and results go both ways through Celery's
 * Redis result backend or, with RabbitMQ, its RPC backend (Celery 5.2,
 * kombu 5.2; docs/tasks.md).
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
 *    workers BRPOP; a producer also adds the queue's binding to
 *    _kombu.binding.<queue> as Celery declares a queue when it publishes.
 *    A priority p goes to
 *    kombu's list for the step at or below it ("<queue>\x06\x16<3|6|9>",
 *    0..2 the queue's own list) and a worker BRPOPs them in step order, so
 *    on Redis 0 is taken first, as with Celery.
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
 *    Celery's reject_on_worker_lost has no switch here: it chooses, for a
 *    pool child that dies while its parent worker lives on, between acking
 *    the message (FAILURE WorkerLostError) and giving it back. A C worker
 *    runs its tasks in its own process, so a worker lost is the whole
 *    process gone: with acks_late its messages always come back (as with
 *    reject_on_worker_lost=True), and without it they were acked already.
 *    A task that must not run twice should not use acks_late.
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
 *  - Prefetch: a shard takes a message only while fewer than concurrency
 *    tasks run on it (Celery's prefetch multiplier of 1, per shard), with up
 *    to 8 takes in flight at once on Redis.
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
 *  - Time limits (the message's timelimit: [hard, soft]). The task's
 *    function runs in a fiber whose deadline is the soft limit (or the
 *    hard one), so its waits fail with -ETIMEDOUT once it passes; a task
 *    that returns that is FAILURE SoftTimeLimitExceeded. At the hard limit
 *    the fiber is cancelled (its waits fail with -ECANCELED), even a task
 *    that ignores its deadline, and the task is FAILURE TimeLimitExceeded
 *    (celery.exceptions); the worker goes on.
 *  - Chains (chain(a.s(), b.s())), callbacks (link) and errbacks
 *    (link_error) that Python producers attach are sent on by the worker
 *    as Celery's does: the result goes first in the next step's args; an
 *    errback gets the failed task's id. Groups and chords as follow-ups
 *    are not (logged).
 *  - Retries: wv_task_retry sends the task again (same id, retries + 1,
 *    due after its countdown) and the worker stores RETRY; past
 *    max_retries the task fails instead, as Celery's self.retry().
 *  - Revocation: a worker listens on Celery's remote-control broadcast
 *    (celery.pidbox; on Redis the channel "/<db>.celery.pidbox"), so
 *    Python's app.control.revoke(id) (and wv_tasks_revoke) reaches it: a
 *    revoked task is REVOKED when it comes up instead of running, and a
 *    running one is cancelled when the revoke says terminate. The
 *    commands enable_events and disable_events are obeyed too; others are
 *    ignored, and nothing is replied (`celery inspect` and ping get no
 *    answer from a C worker).
 *  - Events (opts.events, or enable_events): task-received, task-started,
 *    task-succeeded, task-failed, task-retried, task-revoked, and
 *    worker-online, worker-heartbeat (every 2 s), worker-offline, with
 *    Celery's fields, on its event exchange celeryev (on Redis PUBLISH to
 *    "/<db>.celeryev/<type with dots>"), so `celery events`, Flower and
 *    app.events.State follow C workers. The traceback field is empty.
 *  - A message whose `expires` has passed is not run: REVOKED
 *    (TaskRevokedError "expired"), acked. One with an `eta` (countdown) is
 *    held unacked (recorded) until then. One for a task name nobody
 *    registered is logged, rejected and stored as FAILURE NotRegistered,
 *    as a Python worker does: on Redis acked (and kept in opts.dead_letter
 *    when there is one), on RabbitMQ basic.reject without requeue
 *    (dead-lettered when the queue has x-dead-letter-exchange). One that
 *    does not decode is logged and dropped (Redis: kept in
 *    opts.dead_letter; RabbitMQ: rejected, so dead-lettered as above). A
 *    protocol 1 message (Celery 3, or task_protocol = 1) is run, as
 *    Celery 5 runs it.
 *  - Results (opts.backend set, and the message not ignore_result) are
 *    Celery's Redis backend's: SET celery-task-meta-<id> PX
 *    result_expires, and PUBLISH on the channel of the same name. Or, with
 *    "rpc://" (an AMQP broker only), Celery's RPC backend's: the producer
 *    puts its own reply queue in every message's reply_to and the worker
 *    publishes the result there; only the client that sent a task can read
 *    its result, and a result published while the broker restarts is lost.
 *    STARTED ({"pid", "hostname"}) is stored only with opts.track_started,
 *    as Celery's task_track_started (off by default).
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
 *  - Metrics (default registry; docs/tasks.md, Metrics):
 *    weave_tasks_sent_total{task,queue}, weave_tasks_received_total{task,
 *    queue}, weave_tasks_finished_total{task,state="SUCCESS|FAILURE|RETRY|
 *    REVOKED|REJECTED"}, weave_tasks_duration_seconds{task} (the body's
 *    time), weave_tasks_running{queue}, and weave_tasks_queue_depth{queue}:
 *    the messages waiting in the broker, sampled by a worker every
 *    opts.depth_interval_ms (Redis: the lists' lengths; RabbitMQ: the ready
 *    messages; a database queue: the due rows).
 *
 * The database queue (a broker URL that wv_db_open takes: postgres://,
 * postgresql://, sqlite:...; docs/tasks.md has the table and the SQL).
 * The queue is the table weave_tasks (created by wv_tasks_open when
 * missing), a task is a row holding the message (body and headers, so all
 * of the above holds unchanged), and wv_task_enqueue inserts it in the
 * caller's own transaction: the task exists if and only if that
 * transaction commits (a transactional outbox). Workers take a row in one
 * short statement (PostgreSQL: FOR UPDATE SKIP LOCKED; SQLite: UPDATE ...
 * RETURNING, one writer at a time) that leases it for the visibility
 * timeout; a running worker renews its leases, a dead one's expire and its
 * rows are taken again. PostgreSQL wakes workers with LISTEN/NOTIFY (sent
 * at commit, so a rolled-back enqueue wakes nobody) with a 1 s poll
 * behind; SQLite polls every 200 ms. With opts.backend the same URL,
 * results are stored in the rows (and an ack keeps the row until
 * result_expires); without a backend an ack deletes it. A row that does
 * not decode, or a task nobody registered, is kept with the reason in its
 * `rejected` column. Delivery is at-least-once with acks_late. Events and
 * remote control (wv_tasks_revoke) travel as NOTIFY on PostgreSQL, between
 * weave clients; SQLite has neither (-ENOTSUP). Priorities are not read.
 *
 * Errors are negative errno values with wv_errmsg() saying why: -EINVAL,
 * -EPROTONOSUPPORT (a broker URL that is not redis://, rediss://, amqp://,
 * amqps://, postgres://, postgresql:// or sqlite:, a backend that is not
 * one of those or rpc://, rpc:// with a broker that is not AMQP), -EPERM
 * (outside a fiber), -EXDEV (from another shard), the Redis, AMQP or
 * database client's (-ECONNREFUSED, -EACCES, -ETIMEDOUT, -ECANCELED, ...:
 * include/weave/redis.h, include/weave/amqp.h, include/weave/db.h), and
 * -EREMOTEIO for a task that failed (wv_tasks_result).
 */
#ifndef WEAVE_TASKS_H
#define WEAVE_TASKS_H

#include <stdbool.h>
#include <stdint.h>

#include "weave/buf.h"
#include "weave/db.h"
#include "weave/json.h"
#include "weave/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_tasks wv_tasks; /* a task-queue client of one shard */
typedef struct wv_task wv_task;   /* a task a worker is running */

typedef struct wv_tasks_opts {
    const char *backend;           /* results: redis://, postgres://, sqlite:... (the broker's
                                      URL: in the queue's rows), rpc:// (an AMQP broker);
                                      NULL = results not stored */
    const char *queue;             /* NULL = "celery" */
    int concurrency;               /* worker: tasks running at once on this shard (RabbitMQ:
                                      the prefetch too); 0 = 16 */
    bool acks_late;                /* worker: ack after the task ran (see above) */
    int64_t visibility_timeout_ms; /* 0 = 3,600,000 (kombu's); a database queue's lease;
                                      unused on RabbitMQ */
    int64_t result_expires_ms;     /* 0 = 86,400,000 (Celery's result_expires) */
    const char *dead_letter;       /* Redis: a list that gets the messages that do not
                                      decode and those for unregistered tasks, as they
                                      came (NULL: dropped, with a log line); RabbitMQ:
                                      unused (the queue's dead-letter exchange) */
    bool track_started;            /* worker: store STARTED when a task starts (Celery's
                                      task_track_started) */
    bool events;                   /* worker: send task and worker events (celery -E) */
    const char *hostname;          /* worker: its node name; NULL = "celery@<host name>" */
    int64_t depth_interval_ms;     /* worker: how often it samples its queue's depth
                                      (weave_tasks_queue_depth); 0 = 5000 */
} wv_tasks_opts;

/* A client on the calling shard, for broker (redis:// or rediss://, as
 * include/weave/redis.h reads them; amqp:// or amqps://, as
 * include/weave/amqp.h does; postgres://, postgresql:// or sqlite:, as
 * wv_db_open does, with a pool of its own and, on PostgreSQL, one
 * connection for LISTEN; -EPROTONOSUPPORT otherwise). It dials the broker
 * (and the backend) at once, and creates a database queue's table when
 * missing. opts may be NULL. */
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

/* The message's headers (a JSON object: Celery's own and any custom ones a
 * producer added, as Python's task.request sees them), valid while the task
 * runs; NULL for a protocol 1 message. */
const wv_json_val *wv_task_headers(const wv_task *task);

/* The writer of the task's return value: write one JSON value. Nothing
 * written is null. */
wv_json *wv_task_result(wv_task *task);

/* Fail with the Python exception exc_type (a builtin's name, e.g.
 * "ValueError") and the message: returns -EREMOTEIO for the task to return. */
int wv_task_fail(wv_task *task, const char *exc_type, const char *fmt, ...) WV_PRINTF(3, 4);

typedef struct wv_task_retry_opts {
    int64_t countdown_ms;    /* 0 = 180,000 (Celery's default_retry_delay) */
    int max_retries;         /* 0 = 3 (Celery's default); negative: no limit */
    const char *exc_type;    /* the exception retried for (the RETRY state's, and
                                FAILURE's once retries run out); NULL: none */
    const char *exc_message; /* its message */
} wv_task_retry_opts;

/*
 * Celery's self.retry(): send the task again (same id, args and kwargs,
 * retries + 1, due after the countdown) and return -EAGAIN for the task to
 * return; the worker then stores RETRY (with exc_type and exc_message) and
 * acks this delivery. When retries would pass max_retries nothing is sent
 * and it returns -EREMOTEIO: FAILURE with exc_type and exc_message, or
 * MaxRetriesExceededError (celery.exceptions) without them. Another
 * negative errno: the retry could not be sent (the task fails with it).
 */
int wv_task_retry(wv_task *task, const wv_task_retry_opts *opts);

/* ---------------------------------------------------------------- producer */

typedef struct wv_task_send_opts {
    const char *kwargs;         /* JSON object text; NULL = {} */
    int64_t countdown_ms;       /* 0 = now */
    int64_t eta_ms;             /* wall-clock ms since the epoch (instead of a
                                   countdown); 0 = none */
    int64_t expires_ms;         /* 0 = never */
    const char *queue;          /* NULL = the client's */
    int priority;               /* 0..9; on Redis 0 is taken first, as kombu's lists */
    int64_t time_limit_ms;      /* hard: the task is cancelled; 0 = none */
    int64_t soft_time_limit_ms; /* soft: the task's deadline; 0 = none */
    bool ignore_result;         /* the worker stores no result */
    const char *headers;        /* custom headers, a JSON object text (Celery's
                                   apply_async(headers=...)); NULL = none */
} wv_task_send_opts;

/* Send task `name` with args_json (a JSON array text; NULL = []): 0 with
 * its id (a uuid4) in id. opts may be NULL; id may be NULL. */
int wv_tasks_send(wv_tasks *t, const char *name, const char *args_json,
                  const wv_task_send_opts *opts, char id[37]);

/*
 * Enqueue task `name` in the database transaction tx (from wv_db_begin or
 * wv_db_transaction, on PostgreSQL or SQLite): the task exists if and only
 * if tx commits, so it runs exactly when the work it follows up on was
 * saved (the transactional outbox). A worker consumes it from a client
 * opened on the same database's URL (wv_tasks_open("postgres://...")),
 * which also created the table: open one (a worker, or any client) before
 * the first enqueue, or the statement fails (-EINVAL, no such table) and
 * with it tx. args_json and opts as wv_tasks_send (opts->queue NULL is
 * "celery"); 0 with the id (a uuid4) in id (may be NULL). On PostgreSQL the
 * workers are woken (NOTIFY) when tx commits. A database handle instead of
 * a transaction enqueues at once. Errors: -EINVAL (bad arguments, a JSON
 * text that is not an array/object), the database's (include/weave/db.h).
 */
int wv_task_enqueue(wv_db *tx, const char *name, const char *args_json,
                    const wv_task_send_opts *opts, char id[37]);

/*
 * Wait for task id's result (within the fiber's deadline), from the
 * backend: 0 with the return value's JSON text appended to *result on
 * SUCCESS; -EREMOTEIO with wv_errmsg() "ExcType: message" on FAILURE (and
 * REVOKED: "TaskRevokedError: expired"); -ETIMEDOUT when the deadline
 * passes first; -EINVAL without a backend.
 */
int wv_tasks_result(wv_tasks *t, const char *id, wv_buf *result);

/* Task states, as Celery names them (wv_tasks_state_name). */
typedef enum wv_task_state {
    WV_TASK_PENDING, /* unknown, or not started (STARTED is stored only with track_started) */
    WV_TASK_STARTED,
    WV_TASK_RETRY,
    WV_TASK_FAILURE,
    WV_TASK_SUCCESS,
    WV_TASK_REVOKED,
} wv_task_state;

const char *wv_tasks_state_name(wv_task_state s);

/*
 * Task id's state now, without waiting: 0 with *state set and, for
 * SUCCESS, the return value's JSON text appended to *result (FAILURE,
 * RETRY, REVOKED: "ExcType: message" appended); PENDING when the backend
 * has nothing for it. -ENOTSUP for a backend that cannot look up one
 * task (rpc://: use wv_tasks_result), -EINVAL without a backend.
 */
int wv_tasks_state(wv_tasks *t, const char *id, wv_task_state *state, wv_buf *result);

/*
 * Celery's app.control.revoke(id, terminate=...): broadcast to every
 * worker (the celery.pidbox exchange) that task id is not to run. A worker
 * that has not started it drops it when it comes (REVOKED, "revoked"); one
 * running it cancels it when terminate (the task's operations fail with
 * -ECANCELED; REVOKED, "terminated"), else lets it finish. Workers
 * remember revoked ids for 3 hours (Celery's 10,800 s, at most 50,000).
 */
int wv_tasks_revoke(wv_tasks *t, const char *id, bool terminate);

#ifdef __cplusplus
}
#endif

#endif
