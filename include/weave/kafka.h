/*
 * weave's Kafka client, on librdkafka: a producer whose calls return when
 * the brokers have acknowledged the message.
 *
 *     wv_kafka *k;
 *     int rc = wv_kafka_open(NULL, &k);              // $KAFKA_BROKERS
 *     wv_kafka_report rep;
 *     rc = wv_kafka_produce(k, &(wv_kafka_record){.topic = "orders",
 *                              .key = WV_STR("42"), .value = WV_STR("{...}")}, &rep);
 *     // 0: written to orders [rep.partition] at rep.offset, on every in-sync replica
 *
 *     wv_kafka_close(k);
 *
 * The model.
 *
 *  - A producer (wv_kafka) belongs to the shard that opened
 *    it: open one per shard (each is a librdkafka handle with its own
 *    broker connections and threads). Any number of that shard's fibers may
 *    use it at once; from another shard a call is -EXDEV.
 *  - librdkafka does the protocol on its own threads. What it hands back
 *    (delivery reports, errors, its log lines) waits
 *    in a librdkafka queue that writes to an eventfd when it stops being
 *    empty; the shard's loop watches that fd and one fiber per client
 *    drains the queue and wakes the fibers concerned. No thread of the
 *    shard ever blocks inside librdkafka: the few librdkafka calls that
 *    wait for its threads (opening, closing) run on the offload pool.
 *  - The producer is idempotent with acks=all by default: a message is
 *    acknowledged once every in-sync replica has it, and librdkafka's
 *    retries neither duplicate nor reorder messages of a partition.
 *    Batching and compression are librdkafka's (linger.ms, batch.size,
 *    compression.type), set by name through `config`.
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
 * producer's defaults: enable.idempotence=true, acks=all; the rest is
 * librdkafka's. A property librdkafka does not know, or a bad value, is
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
 *   -EACCES      authorization or authentication refused
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
 * producer is freed either way. From its shard. NULL is ignored (0).
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

typedef struct wv_kafka_stats {
    uint64_t produced;  /* messages handed to librdkafka */
    uint64_t delivered; /* reports that said written */
    uint64_t failed;    /* reports that said failed */
    int64_t inflight;   /* messages without a report now */
} wv_kafka_stats;

void wv_kafka_stats_get(const wv_kafka *k, wv_kafka_stats *st);

#ifdef __cplusplus
}
#endif

#endif
