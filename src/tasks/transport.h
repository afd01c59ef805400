/*
 * src/tasks/transport.h: the seam between the task-queue logic every broker
 * shares (tasks.c: the worker's slots, ETA holds, time limits, results,
 * warm shutdown, the producer) and one broker's way of moving messages
 * (redis.c: kombu's Redis transport; db.c: a table in PostgreSQL or
 * SQLite; more transports sit beside them). Private to src/tasks.
 *
 * A transport moves Celery messages (celery.h's struct, whatever the wire
 * form) between producers and workers; a backend stores and finds results.
 * Both belong to the shard that opened them, as every weave client.
 */
#ifndef WEAVE_TASKS_TRANSPORT_H
#define WEAVE_TASKS_TRANSPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "tasks/celery.h"
#include "weave/metrics.h"
#include "weave/rt.h"
#include "weave/tasks.h"

#pragma GCC visibility push(hidden)

/* What wv_tasks_open resolved from wv_tasks_opts, for the transports. */
typedef struct tasks_cfg {
    const char *queue;         /* the client's queue */
    int concurrency;           /* tasks at once on the shard (AMQP: the prefetch) */
    int64_t vt_ms;             /* visibility timeout (Redis) */
    int64_t result_expires_ms; /* backend: how long results live */
    const char *dead_letter;   /* where undecodable messages go; NULL: dropped */
} tasks_cfg;

/* One message taken from a queue: the decoded message and the transport's
 * handle on it. */
typedef struct tasks_msg {
    celery_task msg;
    uint64_t tag;  /* the transport's delivery tag when it is a number (AMQP) */
    bool held;     /* Redis: recorded in unacked */
    void *channel; /* the transport's: what the delivery came on */
} tasks_msg;

typedef struct tasks_transport tasks_transport;

typedef struct tasks_transport_ops {
    /* Send m to queue. */
    int (*send)(tasks_transport *tr, const celery_task_msg *m, const char *queue);
    /* Take the next message of queue within timeout_ms: 1 with *out filled
     * (tasks.c frees out->msg), 0 when none came, or -errno. A message
     * that does not decode is the transport's to log and dead-letter; take
     * then returns 0. */
    int (*take)(tasks_transport *tr, const char *queue, int64_t timeout_ms, tasks_msg *out);
    /* take may be called by several fibers at once (the worker then keeps
     * up to 8 takes in flight); false: one at a time. */
    bool concurrent_take;
    /* Make m survive the worker until ack (Redis: kombu's unacked record;
     * AMQP: nothing, the delivery stays unacked). NULL: nothing to do. */
    int (*hold)(tasks_transport *tr, tasks_msg *m);
    /* Done with m: it is not delivered again. */
    int (*ack)(tasks_transport *tr, tasks_msg *m);
    /* Give m back to its queue now, to be taken again. */
    int (*requeue)(tasks_transport *tr, tasks_msg *m);
    /* Refuse m: to the dead-letter path where the broker has one (AMQP:
     * basic.reject without requeue), else acked. */
    int (*reject)(tasks_transport *tr, tasks_msg *m);
    /* The transport's upkeep while a worker runs (Redis: restoring
     * unacked messages of dead workers), in a fiber of its own, until
     * `stopping` is closed. NULL: none. */
    int (*upkeep)(tasks_transport *tr, wv_chan *stopping);
    /* Broadcasts: publish body (JSON text) with headers (a JSON object
     * text, NULL for {}) to the fanout or topic exchange `exchange` under
     * routing_key, as kombu publishes Celery's events (exchange "celeryev",
     * topic, routing keys "task.started", ...) and remote-control commands
     * (exchange "celery.pidbox", fanout). NULL: the transport has none. */
    int (*publish)(tasks_transport *tr, const char *exchange, const char *type,
                   const char *routing_key, const char *body, size_t body_len, const char *headers);
    /* Receive what is published on exchange (`type` "fanout" or "topic",
     * bound with binding_key): call got(body, n, arg) for each message until
     * `stopping` is closed or got returns < 0. A worker's remote control
     * (revoke) listens on "celery.pidbox". NULL: none. */
    int (*listen)(tasks_transport *tr, const char *exchange, const char *type,
                  const char *binding_key, wv_chan *stopping,
                  int (*got)(const char *body, size_t n, void *arg), void *arg);
    /* Messages waiting in queue now (metrics.c's weave_tasks_queue_depth),
     * in *out: 0 or -errno. A worker samples it every few seconds from a
     * fiber of its own. NULL: the transport cannot count them. */
    int (*depth)(tasks_transport *tr, const char *queue, int64_t *out);
    void (*close)(tasks_transport *tr);
} tasks_transport_ops;

struct tasks_transport {
    const tasks_transport_ops *ops;
};

typedef struct tasks_backend tasks_backend;

typedef struct tasks_backend_ops {
    /* Store m for the task req (whose reply_to and correlation_id an RPC
     * backend answers to). */
    int (*store)(tasks_backend *b, const celery_result_msg *m, const celery_task *req);
    /* Wait for task id's meta: call seen(meta, n, arg) for each one found
     * (stored already, or arriving) until it returns 1 (final) or < 0; that
     * value is returned (1 or the error), -ETIMEDOUT at the fiber's deadline. */
    int (*wait)(tasks_backend *b, const char *id,
                int (*seen)(const char *meta, size_t n, void *arg), void *arg);
    /* The reply_to a producer puts in its messages (RPC), or NULL. */
    const char *(*reply_to)(tasks_backend *b);
    /* Task id's meta as stored now, appended to meta: 1, or 0 when there
     * is none. NULL: the backend cannot look one up (RPC). */
    int (*peek)(tasks_backend *b, const char *id, wv_buf *meta);
    void (*close)(tasks_backend *b);
} tasks_backend_ops;

struct tasks_backend {
    const tasks_backend_ops *ops;
};

/* The transports and backends, by URL scheme (redis.c, ...). */
int tasks_redis_open(const char *url, const tasks_cfg *cfg, tasks_transport **out);
/* A Redis result backend; on the transport's connections when tr is a
 * Redis transport for the same URL (NULL otherwise). */
int tasks_redis_backend_open(const char *url, const tasks_cfg *cfg, tasks_transport *tr,
                             tasks_backend **out);

/* kombu's py-amqp transport on RabbitMQ (amqp.c): amqp:// and amqps://. */
int tasks_amqp_open(const char *url, const tasks_cfg *cfg, tasks_transport **out);
/* Celery's RPC result backend (rpc.c: rpc://), on the connection of tr,
 * which must be an AMQP transport (-EPROTONOSUPPORT otherwise). */
int tasks_rpc_backend_open(const char *url, const tasks_cfg *cfg, tasks_transport *tr,
                           tasks_backend **out);
/* The AMQP transport's connection; NULL when tr is another transport. */
struct wv_amqp *tasks_amqp_conn(tasks_transport *tr);

/* Message headers both ways (amqp.c): a JSON object as AMQP fields (they
 * point into the document; free *mem with tasks_amqp_fields_free), and an
 * encoded table as a JSON object appended to out (-EBADMSG when it is not
 * a table). */
struct wv_json_val;
struct wv_amqp_field;
int tasks_amqp_json_fields(const struct wv_json_val *obj, void **mem, struct wv_amqp_field **out,
                           int *count);
void tasks_amqp_fields_free(void *mem);
int tasks_amqp_table_json(wv_str table, wv_buf *out);

/* A task queue and result backend in a database table (db.c): for the
 * URLs wv_db_open takes (postgres://, postgresql://, sqlite:...). The
 * backend stores results in the queue's own rows when tr is a database
 * transport on the same URL. */
bool tasks_db_url(const char *url);
int tasks_db_open(const char *url, const tasks_cfg *cfg, tasks_transport **out);
int tasks_db_backend_open(const char *url, const tasks_cfg *cfg, tasks_transport *tr,
                          tasks_backend **out);

/* A producer's message from wv_task_send_opts (NULL: defaults) for task
 * `name` on `queue`, under a fresh id written to tid: 0, or -EINVAL (an
 * option out of range), -errno (no randomness). m points into its inputs. */
int tasks_msg_from_opts(celery_task_msg *m, const char *name, const char *args_json,
                        const wv_task_send_opts *opts, const char *queue,
                        char tid[CELERY_UUID_LEN + 1]);

/* The metrics (metrics.c). A task's outcomes, as weave_tasks_finished_total
 * labels them. */
enum {
    TASKS_SUCCESS,
    TASKS_FAILURE,
    TASKS_RETRY,
    TASKS_REVOKED,
    TASKS_REJECTED, /* unregistered, or not decodable: dead-lettered or dropped */
    TASKS_NSTATES
};

/* The task label of messages for names no task was registered under, and
 * of messages that do not decode (whose name is unknown). */
#define TASKS_UNREGISTERED "(unregistered)"
#define TASKS_UNDECODABLE  "(undecodable)"

/* One task name's series on a worker's queue, resolved once. */
typedef struct tasks_task_metrics {
    wv_series *received;
    wv_series *finished[TASKS_NSTATES];
    wv_series *duration;
} tasks_task_metrics;

/* Register the families in the default registry (once). */
void tasks_metrics_init(void);
/* Resolve task's series (received on queue); NULL series when the registry
 * refuses them (updates through those do nothing). */
void tasks_metrics_task(tasks_task_metrics *m, const char *task, const char *queue);
wv_series *tasks_metrics_sent(const char *task, const char *queue);
wv_series *tasks_metrics_running(const char *queue);
wv_series *tasks_metrics_depth(const char *queue);
/* A message on queue that did not decode: received, and REJECTED. */
void tasks_metrics_undecodable(const char *queue);

/* The wall clock in ns (Celery's times are UTC wall-clock times). */
int64_t tasks_real_ns(void);

/* s[0..n) as a JSON string written as Python's json.dumps writes it. */
int tasks_py_string(const char *s, size_t n, wv_buf *out);

#pragma GCC visibility pop

#endif
