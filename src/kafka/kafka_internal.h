/*
 * Private structures of the Kafka client, shared by the files of
 * src/kafka/.
 *
 * The picture. librdkafka runs the Kafka protocol on threads of its own
 * and hands results back through queues. Each client here (a producer or
 * a consumer) owns one librdkafka handle and one queue it reads: the
 * handle's main queue for a producer (delivery reports, errors, log
 * lines), the consumer-group queue for a consumer (messages, rebalances,
 * errors, log lines; the main queue is forwarded into it). librdkafka
 * writes to an eventfd when that queue stops being empty
 * (rd_kafka_queue_io_event_enable); the eventfd is registered with the
 * shard's loop, and the client's pump fiber waits for it, drains the queue
 * with non-blocking polls and wakes the fibers concerned. So no thread of
 * the shard blocks in librdkafka, and nothing polls on a timer.
 *
 * librdkafka calls that wait for librdkafka's own threads (rd_kafka_new,
 * subscribe, assign, destroy) go through kafka_blocking, which runs them
 * on the offload pool. Calls that only take a lock (producev, a queue
 * poll, an offset store, pause, an asynchronous seek) run in place.
 */
#ifndef WEAVE_KAFKA_INTERNAL_H
#define WEAVE_KAFKA_INTERNAL_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>

#include "weave/kafka.h"

#pragma GCC visibility push(hidden)

enum {
    KAFKA_PUMP_BATCH = 256,           /* events a pump handles between yields */
    KAFKA_DEFAULT_QUEUE_DEPTH = 1024, /* consumer messages waiting for a receiver */
    KAFKA_DEFAULT_REVOKE_WAIT_MS = 5000,
    KAFKA_REVOKE_COMMIT_MS = 5000, /* the commit of revoked partitions' acked offsets */
    /* a commit, and close's commit and leave, when the caller sets no
     * earlier deadline: librdkafka would wait for a coordinator forever */
    KAFKA_COMMIT_MS = 30000,
};

#define KAFKA_NS_PER_MS INT64_C(1000000)

/* ------------------------------------------------------------- queues */

/* A librdkafka queue whose wake-ups arrive on an eventfd the loop watches. */
typedef struct kafka_queue {
    rd_kafka_queue_t *q;
    int efd;
} kafka_queue;

/* Take q (a queue handle, destroyed by kafka_queue_unwatch) and make
 * librdkafka signal its eventfd. -errno when no eventfd can be made (q is
 * destroyed then). */
int kafka_queue_watch(kafka_queue *kq, rd_kafka_queue_t *q);

/* Wait until the queue may hold events, or `at` (and the fiber's
 * deadline): 0, -ETIMEDOUT, -ECANCELED. Call it only after a poll found
 * the queue empty. */
int kafka_queue_wait(kafka_queue *kq, int64_t at);

/* Stop the signalling, destroy the queue handle, close the eventfd. */
void kafka_queue_unwatch(kafka_queue *kq);

/* Watch q (as kafka_queue_watch) and start pump(arg), named `name`, as
 * the only fiber of a new group in *pump. */
int kafka_pump_start(kafka_queue *kq, rd_kafka_queue_t *q, wv_fn *pump, void *arg, const char *name,
                     wv_group **group);

/* ------------------------------------------------------ configuration */

typedef struct kafka_settings {
    bool consumer;
    const char *brokers;
    const char *client_id;
    const char *group_id;
    const char *const *config;
    int events; /* RD_KAFKA_EVENT_* the handle hands out as events */
} kafka_settings;

/* A librdkafka configuration: weave's defaults, then s->config. -EINVAL
 * with librdkafka's words for a bad property, -ENOMEM. */
int kafka_conf_new(const kafka_settings *s, rd_kafka_conf_t **out);

/* rd_kafka_new on the offload pool; takes conf (freed on failure too).
 * Its log lines go to the main queue, read by the pump. */
int kafka_handle_new(bool consumer, rd_kafka_conf_t *conf, rd_kafka_t **out);

/* rd_kafka_destroy_flags on the offload pool. */
void kafka_handle_destroy(rd_kafka_t *rk, int flags);

/* The same on a detached thread of its own, not waited for: for a handle
 * whose goodbye was cut short, which librdkafka 2.0 may take forever to
 * destroy while every broker is down (its main thread never ends); a
 * stopping process must not wait for it. */
void kafka_handle_destroy_detached(rd_kafka_t *rk, int flags);

/* ------------------------------------------------------------- helpers */

/* Run fn(arg) on the offload pool and return its result; when the pool
 * cannot take it (the fiber is cancelled, or outside a fiber) run it here:
 * what goes through this must happen either way. */
int kafka_blocking(wv_fn *fn, void *arg);

/* librdkafka's error as a negative errno (see include/weave/kafka.h). */
int kafka_errno(rd_kafka_resp_err_t err);

/* wv_fail(kafka_errno(err), "kafka: <what>: <librdkafka's words>"). */
int kafka_fail(rd_kafka_resp_err_t err, const char *fmt, ...) WV_PRINTF(2, 3);

/* The same for an error object, which it destroys. */
int kafka_fail_error(rd_kafka_error_t *error, const char *what);

/* -EXDEV unless on `shard`, -EPERM outside the runtime. */
int kafka_on_shard(int shard, const char *what);

/* Log a librdkafka log event through wv_log, as "kafka <who>: ...". */
void kafka_log_event(const char *who, rd_kafka_event_t *ev);

/* The producer's librdkafka handle (for tests that inject librdkafka's
 * own faults). */
rd_kafka_t *kafka_producer_handle(wv_kafka *k);

/* ------------------------------------------------------------ consumer */

/* A message handed out and not yet retired, in fetch order. */
typedef struct kafka_slot {
    int64_t offset;
    bool acked;
} kafka_slot;

/*
 * A partition this consumer has been assigned at some time (kept until the
 * consumer is freed, so a message can always reach its partition). The
 * slots hold the offsets handed out since the partition was last assigned
 * or sought, oldest first: an ack marks its slot, and the acked run at the
 * front is retired and its last offset stored for commit. The epoch
 * changes whenever what was handed out before no longer counts (assigned,
 * revoked, sought, read again from an earlier offset): a message carries
 * the epoch it was fetched in, and one from an older epoch is stale.
 */
typedef struct kafka_part {
    char *topic;
    int32_t partition;
    rd_kafka_topic_t *rkt; /* for rd_kafka_offset_store */
    uint32_t epoch;
    bool assigned;
    kafka_slot *slots;
    size_t start, end, cap; /* slots[start..end) are live */
    uint64_t first_seq;     /* the sequence number of slots[start] */
    int64_t last_fetched;   /* offset of the newest slot this epoch; -1 */
    int64_t stored;         /* the next offset to read, as last stored; -1 */
    int64_t committed;      /* what our last commit of it wrote; -1 */
} kafka_part;

/* A wv_kafka_msg and what it needs: the librdkafka event that owns the
 * bytes, and its place in its partition's slots. */
typedef struct kafka_msg {
    wv_kafka_msg pub;
    wv_kafka_consumer *c;
    rd_kafka_event_t *ev; /* NULL for the stream's errors */
    const rd_kafka_message_t *rkm;
    kafka_part *part; /* NULL for the stream's errors */
    uint32_t epoch;
    uint64_t seq;
    char *errmsg; /* the stream's errors: the reason */
    char *topic;  /* the stream's errors: pub.topic's copy */
} kafka_msg;

struct wv_kafka_consumer {
    rd_kafka_t *rk;
    kafka_queue q; /* the consumer group's queue (the main queue forwards to it) */
    int shard;
    char *name;
    wv_group *pump;
    wv_chan *msgs; /* kafka_msg * (as wv_kafka_msg *) */
    kafka_part **parts;
    int nparts, cap_parts, last_part;
    int64_t revoke_wait_ms;
    int64_t keepalive_ms; /* half of max.poll.interval.ms */
    bool closing;         /* no more messages; acks store nothing */
    int64_t refs;         /* 1 until closed, + each message not yet freed */
    wv_event acked;       /* set by every ack (a revocation waits on it) */
    int receivers;        /* fibers inside wv_kafka_recv */
    wv_event idle;        /* set when closing and the last receiver left */
    char last_error[512];
    wv_kafka_consumer_stats stats;
};

/* The partition's record; NULL when unknown and !create. */
kafka_part *kafka_part_find(wv_kafka_consumer *c, const char *topic, int32_t partition,
                            bool create);

/* Forget what was handed out: a new epoch. */
void kafka_part_reset(kafka_part *p);

/* Note a message handed out; its sequence number. */
uint64_t kafka_part_push(kafka_part *p, int64_t offset);

/* Messages handed out and not acked yet? */
bool kafka_part_busy(const kafka_part *p);

/* A message of the stream: its error, or it is stale (-ESTALE), or 0. */
int kafka_msg_check(kafka_msg *m);

/* Free m and drop its reference on the consumer. */
void kafka_msg_release(kafka_msg *m);

/* An error message for the stream (takes a reference). */
kafka_msg *kafka_msg_error(wv_kafka_consumer *c, int err, const char *topic, int32_t partition,
                           const char *reason);

/* Drop a reference; the last one frees the consumer and its handle. */
void kafka_consumer_unref(wv_kafka_consumer *c);

/* Copy of s (NULL stays NULL); ends the process when out of memory. */
char *kafka_strdup(const char *s);

/* calloc that ends the process when out of memory (small fixed sizes only). */
void *kafka_calloc(size_t n, size_t size);

#pragma GCC visibility pop

#endif
