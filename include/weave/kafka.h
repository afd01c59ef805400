/*
 * weave's Kafka client, on librdkafka: a producer whose calls return when
 * the brokers have acknowledged the message, and a group consumer whose
 * messages are committed only once a handler says it is done with them.
 *
 *     wv_kafka *k;
 *     int rc = wv_kafka_open(NULL, &k);              // $KAFKA_BROKERS
 *     wv_kafka_report rep;
 *     rc = wv_kafka_produce(k, &(wv_kafka_record){.topic = "orders",
 *                              .key = WV_STR("42"), .value = WV_STR("{...}")}, &rep);
 *     // 0: written to orders [rep.partition] at rep.offset, on every in-sync replica
 *
 *     wv_kafka_consumer *c;
 *     rc = wv_kafka_consumer_open(&(wv_kafka_consumer_opts){.group_id = "billing",
 *                                    .topics = (const char *[]){"orders", NULL}}, &c);
 *     wv_kafka_msg *m;
 *     while (wv_kafka_recv(c, &m, WV_NEVER) == 0) {
 *         handle(m->key, m->value);
 *         wv_kafka_ack(m);                           // now its offset may be committed
 *     }
 *     wv_kafka_consumer_close(c);
 *     wv_kafka_close(k);
 *
 * The model.
 *
 *  - A producer (wv_kafka) or a consumer belongs to the shard that opened
 *    it: open one per shard (each is a librdkafka handle with its own
 *    broker connections and threads). Any number of that shard's fibers may
 *    use it at once; from another shard a call is -EXDEV.
 *  - librdkafka does the protocol on its own threads. What it hands back
 *    (delivery reports, messages, rebalances, errors, its log lines) waits
 *    in a librdkafka queue that writes to an eventfd when it stops being
 *    empty; the shard's loop watches that fd and one fiber per client
 *    drains the queue and wakes the fibers concerned. No thread of the
 *    shard ever blocks inside librdkafka: the few librdkafka calls that
 *    wait for its threads (opening, subscribing, assigning partitions,
 *    closing) run on the offload pool.
 *  - The producer is idempotent with acks=all by default: a message is
 *    acknowledged once every in-sync replica has it, and librdkafka's
 *    retries neither duplicate nor reorder messages of a partition.
 *    Batching and compression are librdkafka's (linger.ms, batch.size,
 *    compression.type), set by name through `config`.
 *  - The consumer receives in a consumer group (subscribe; partitions
 *    assigned and revoked as members come and go; eager or, with
 *    partition.assignment.strategy=cooperative-sticky, incremental
 *    rebalancing). Delivery is at least once: a message's offset is stored
 *    for commit only when wv_kafka_ack says its handler finished, and only
 *    once every earlier message of its partition was acked too (handlers
 *    may finish out of order). Stored offsets are committed in the
 *    background (auto.commit.interval.ms, 5 s), when partitions are
 *    revoked, by wv_kafka_commit, and by wv_kafka_consumer_close. A
 *    consumer that dies before acking leaves its messages to be read again
 *    from the last committed offset by whoever gets the partition.
 *  - Every call honours the fiber's deadline and cancellation. A produce
 *    given up that way (-ETIMEDOUT, -ECANCELED) has still been handed to
 *    librdkafka, which goes on trying to deliver it (message.timeout.ms).
 *
 * Configuration. `brokers` (else $KAFKA_BROKERS, else localhost:9092) and
 * any librdkafka property by name in `config`, a NULL-terminated list of
 * name, value pairs:
 *
 *     .config = (const char *[]){"linger.ms", "20", "compression.type", "zstd", NULL}
 *
 * They are applied after weave's defaults, so they override them. The
 * producer's defaults: enable.idempotence=true, acks=all. The consumer's:
 * enable.auto.offset.store=false (acks store offsets),
 * enable.auto.commit=true; the rest is librdkafka's (auto.offset.reset
 * latest: a new group starts at the end; set "earliest" to read from the
 * beginning). A property librdkafka does not know, or a bad value, is
 * -EINVAL with librdkafka's words.
 *
 * Errors are negative errno values with the detail in wv_errmsg() (the
 * call, the topic and partition, librdkafka's words):
 *
 *   -ETIMEDOUT   the fiber's deadline passed, or librdkafka gave up on a
 *                message (message.timeout.ms, 300 s, e.g. while every
 *                broker was down: wv_errmsg says what the client last saw)
 *   -ECANCELED   the fiber was cancelled
 *   -EMSGSIZE    a message larger than message.max.bytes, or than the
 *                broker or topic accepts (MESSAGE_TOO_LARGE)
 *   -ENOENT      the topic or partition does not exist
 *   -ENOTRECOVERABLE  the idempotent producer hit a fatal error (its
 *                sequence or epoch was lost, it was fenced): every later
 *                produce fails the same way; close it and open another
 *   -ECONNREFUSED every broker is down (a consumer's stream says so once)
 *   -EACCES      authorization or authentication refused
 *   -ESTALE      an ack or a commit for a partition revoked (or sought)
 *                since the message was fetched: another member reads it again
 *   -ESHUTDOWN   the client is closing or closed
 *   -EINVAL      a bad option, property or argument
 *   -EXDEV       a client used from another shard than its own
 *   -EPERM       outside a fiber
 *   -EIO         any other refusal, with the broker's words
 *   -ENOMEM
 */
#ifndef WEAVE_KAFKA_H
#define WEAVE_KAFKA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/rt.h"
#include "weave/str.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================ producer */

typedef struct wv_kafka wv_kafka;

typedef struct wv_kafka_opts {
    const char *brokers;       /* "host:port,..."; NULL = $KAFKA_BROKERS, else "localhost:9092" */
    const char *client_id;     /* NULL = "weave" */
    const char *const *config; /* librdkafka properties: name, value, ..., NULL; may be NULL */
} wv_kafka_opts;

/*
 * A producer on the calling shard. It does not wait for a broker: the
 * first produce does (so a service starts while Kafka is still coming up).
 * -EINVAL for a bad property (wv_errmsg names it), -EPERM outside a fiber,
 * -ENOMEM. opts may be NULL.
 */
int wv_kafka_open(const wv_kafka_opts *opts, wv_kafka **out);

/*
 * Wait (within the fiber's deadline) until every message produced so far
 * has its delivery report, then close. Messages still without one when the
 * deadline passes are purged: their producers get -ESHUTDOWN. Returns 0
 * when nothing had to be purged, else -ETIMEDOUT or -ECANCELED; the
 * producer is freed either way. Without a deadline the wait ends when
 * librdkafka gives up on the last message (message.timeout.ms). From its
 * shard. NULL is ignored (0).
 */
int wv_kafka_close(wv_kafka *k);

typedef struct wv_kafka_header {
    const char *name; /* NUL-terminated */
    wv_str value;     /* .p NULL: a header with a null value */
} wv_kafka_header;

/* A message to produce. The call copies what it needs: nothing here must
 * outlive it. */
typedef struct wv_kafka_record {
    const char *topic;
    wv_str key;   /* .p NULL: no key */
    wv_str value; /* .p NULL: a null value (a tombstone on a compacted topic) */
    /* with has_partition, exactly this partition; else the partitioner's
     * choice: by the key's hash (the same key, the same partition), keyless
     * messages spread */
    int32_t partition;
    bool has_partition;
    const wv_kafka_header *headers; /* nheaders of them, in order; names may repeat */
    size_t nheaders;
    int64_t timestamp_ms; /* 0 = now */
} wv_kafka_record;

/* Where a message was written. */
typedef struct wv_kafka_report {
    int32_t partition;
    int64_t offset;
    int64_t timestamp_ms; /* the message's timestamp; -1 when not known */
} wv_kafka_report;

/*
 * Produce one message and wait for its delivery report: 0 once the
 * brokers acknowledged it (acks=all: every in-sync replica has it), with
 * where it went in *rep (may be NULL), or why it failed. While librdkafka's
 * queue is full (queue.buffering.max.messages / .kbytes) the call waits
 * for room. -ETIMEDOUT / -ECANCELED: see the model above.
 */
int wv_kafka_produce(wv_kafka *k, const wv_kafka_record *rec, wv_kafka_report *rep);

/*
 * The same without waiting for the report, for many messages in flight:
 * returns once librdkafka has the message (waiting only while its queue is
 * full), with a completion in *out to wait for later. Every completion is
 * freed with wv_kafka_pending_free, waited for or not. out may be NULL:
 * fire and forget (wv_kafka_flush still waits for the report, and
 * wv_kafka_stats counts it).
 */
typedef struct wv_kafka_pending wv_kafka_pending;

int wv_kafka_produce_start(wv_kafka *k, const wv_kafka_record *rec, wv_kafka_pending **out);

/* Wait for the report until `at` (WV_NEVER: the fiber's deadline alone):
 * wv_kafka_produce's result. -ETIMEDOUT or -ECANCELED leave the completion
 * pending: wait again, or free it. From the producer's shard. */
int wv_kafka_pending_wait(wv_kafka_pending *p, int64_t at, wv_kafka_report *rep);

/* Has the report come? */
bool wv_kafka_pending_done(const wv_kafka_pending *p);

/* Free; when the report has not come yet, it is dropped when it comes.
 * NULL is ignored. */
void wv_kafka_pending_free(wv_kafka_pending *p);

/* Wait until every message produced so far has its report (0), within the
 * fiber's deadline. */
int wv_kafka_flush(wv_kafka *k);

/*
 * Ask the brokers for the cluster's metadata (any broker answers), within
 * the fiber's deadline and 5 s at most: the number of brokers the cluster
 * has (> 0), or why none answered (-ETIMEDOUT, -ECONNREFUSED, ...). For a
 * readiness check.
 */
int wv_kafka_ping(wv_kafka *k);

typedef struct wv_kafka_stats {
    uint64_t produced;  /* messages handed to librdkafka */
    uint64_t delivered; /* reports that said written */
    uint64_t failed;    /* reports that said failed */
    int64_t inflight;   /* messages without a report now */
} wv_kafka_stats;

void wv_kafka_stats_get(const wv_kafka *k, wv_kafka_stats *st);

/* ================================================================ consumer */

typedef struct wv_kafka_consumer wv_kafka_consumer;

typedef struct wv_kafka_consumer_opts {
    const char *brokers;       /* as wv_kafka_opts */
    const char *client_id;     /* as wv_kafka_opts */
    const char *group_id;      /* the consumer group; required */
    const char *const *topics; /* subscribe at open: NULL-terminated; NULL = later */
    const char *const *config; /* librdkafka properties: name, value, ..., NULL */
    /* messages fetched and waiting for a receiver at most; while full,
     * librdkafka keeps what it prefetched (queued.max.messages.kbytes) and
     * stops fetching. 0 = 1024 */
    size_t queue_depth;
    /* when partitions are revoked, how long to wait for the messages of
     * theirs that handlers hold to be acked, so their offsets are
     * committed before another member takes over. 0 = 5000, < 0 = no wait */
    int64_t revoke_wait_ms;
} wv_kafka_consumer_opts;

/*
 * A group consumer on the calling shard, subscribed to opts->topics if
 * given. It joins the group in the background: messages come once the
 * group assigned it partitions (a first join takes a few seconds: the
 * broker waits group.initial.rebalance.delay.ms for more members).
 * -EINVAL without group_id or for a bad property, -EPERM outside a fiber.
 */
int wv_kafka_consumer_open(const wv_kafka_consumer_opts *opts, wv_kafka_consumer **out);

/* Subscribe to these topics (NULL-terminated, at least one), replacing
 * the subscription. A topic that does not exist shows up in the stream as
 * -ENOENT (the group keeps the others). */
int wv_kafka_subscribe(wv_kafka_consumer *c, const char *const *topics);

/*
 * A received message. It and every byte it points to live until
 * wv_kafka_ack or wv_kafka_msg_free; it belongs to the consumer's shard.
 */
typedef struct wv_kafka_msg {
    /* 0 for a message. Negative: not a message but the stream saying what
     * went wrong (-ENOENT: a subscribed topic does not exist,
     * -ECONNREFUSED: every broker is down, -ENOTRECOVERABLE, ...), with the
     * topic and partition concerned when there is one (else NULL / -1).
     * The stream goes on after one. */
    int err;
    const char *topic;
    int32_t partition;
    int64_t offset;
    wv_str key;           /* .p NULL: no key */
    wv_str value;         /* .p NULL: a null value */
    int64_t timestamp_ms; /* -1 when the message has none */
} wv_kafka_msg;

/*
 * The next message, waiting until `at` (WV_NEVER: the fiber's deadline
 * alone). 0 with *msg set; the stream's errors (see wv_kafka_msg.err) as
 * this call's result with wv_errmsg(); -ETIMEDOUT, -ECANCELED; -EPIPE once
 * the consumer is closed. Messages of partitions revoked (or sought) since
 * they were fetched are dropped here, not handed out.
 */
int wv_kafka_recv(wv_kafka_consumer *c, wv_kafka_msg **msg, int64_t at);

/* The stream itself, for wv_chan_select: its elements are wv_kafka_msg *.
 * Check what it gives with wv_kafka_msg_check. A select waiting on it when
 * the consumer closes gets that case with -EPIPE; the channel goes with
 * the consumer, so no fiber may use it after wv_kafka_consumer_close. */
wv_chan *wv_kafka_consumer_chan(wv_kafka_consumer *c);

/* For a message taken from the channel: 0 when it is one to handle; its
 * err (with wv_errmsg) when it is an error; -ESTALE when its partition
 * was revoked or sought since it was fetched. Free it when not 0. */
int wv_kafka_msg_check(wv_kafka_msg *m);

/* The value of the last header called `name` in *value: 1, or 0 when the
 * message has none (value untouched). */
int wv_kafka_msg_header(const wv_kafka_msg *m, const char *name, wv_str *value);

/* The message's headers in order: how many, and the i-th (0-based):
 * 1 with *name and *value set, 0 when i is out of range. */
size_t wv_kafka_msg_header_count(const wv_kafka_msg *m);
int wv_kafka_msg_header_at(const wv_kafka_msg *m, size_t i, const char **name, wv_str *value);

/*
 * The handler finished with m: its offset is stored for commit once every
 * earlier message of its partition is acked too. Frees m. 0, or -ESTALE
 * when its partition was revoked or sought since it was fetched (nothing
 * stored: the partition's new reader gets it again), or -ESHUTDOWN after
 * the consumer was closed. From the consumer's shard; never suspends.
 */
int wv_kafka_ack(wv_kafka_msg *m);

/* Let go of m without acking it: its offset, and every later one of its
 * partition, stays uncommitted, so it is read again after a restart or
 * a rebalance. For error messages and stale ones. From the consumer's
 * shard; never suspends. NULL is ignored. */
void wv_kafka_msg_free(wv_kafka_msg *m);

/* Commit the acked offsets of every assigned partition now and wait for
 * the group coordinator's answer (30 s at most when the fiber has no
 * earlier deadline). 0 also when there was nothing new. */
int wv_kafka_commit(wv_kafka_consumer *c);

/* Offsets for wv_kafka_seek besides a plain one. */
#define WV_KAFKA_OFFSET_BEGINNING INT64_C(-2)
#define WV_KAFKA_OFFSET_END       INT64_C(-1)

/*
 * Stop fetching from a partition (partition -1: every assigned partition
 * of topic; topic NULL: every assigned partition) until resumed or
 * revoked. Messages already fetched are still handed out. -ENOENT when
 * nothing assigned matches.
 */
int wv_kafka_pause(wv_kafka_consumer *c, const char *topic, int32_t partition);
int wv_kafka_resume(wv_kafka_consumer *c, const char *topic, int32_t partition);

/*
 * Go on reading an assigned partition from `offset` (or
 * WV_KAFKA_OFFSET_BEGINNING / _END). Messages of it fetched before are
 * dropped, and acks of them are -ESTALE; the committed offset moves when
 * messages read from the new place are acked. -ENOENT when the partition
 * is not assigned to this consumer.
 */
int wv_kafka_seek(wv_kafka_consumer *c, const char *topic, int32_t partition, int64_t offset);

typedef struct wv_kafka_consumer_stats {
    uint64_t received;   /* messages handed out */
    uint64_t acked;      /* acks that stored an offset (or will) */
    uint64_t stale;      /* messages dropped and acks refused as stale */
    uint64_t rebalances; /* assignments and revocations */
    int assigned;        /* partitions assigned now */
} wv_kafka_consumer_stats;

void wv_kafka_consumer_stats_get(const wv_kafka_consumer *c, wv_kafka_consumer_stats *st);

/*
 * Close: stop the stream (waiting receivers get -EPIPE; messages not yet
 * received are dropped, unacked), commit what was acked, leave the group
 * (its partitions go to the other members at once), and free the
 * consumer. Messages handlers still hold stay valid; acking them after
 * this gives -ESHUTDOWN (they are read again by the next owner). 0, or
 * the commit's or the leave's error; -ETIMEDOUT / -ECANCELED cut the
 * goodbye short (the group then notices after session.timeout.ms). The
 * goodbye takes 30 s at most when the fiber has no earlier deadline. Once,
 * from its shard. NULL is ignored (0).
 */
int wv_kafka_consumer_close(wv_kafka_consumer *c);

#ifdef __cplusplus
}
#endif

#endif
