/*
 * weave's RabbitMQ client: AMQP 0-9-1 over the net layer's wv_stream, with
 * channels, topology, publisher confirms, consumers and a connection that
 * recovers by itself (aio-pika's connect_robust).
 *
 *     wv_amqp *mq;
 *     int rc = wv_amqp_open("amqp://guest:guest@127.0.0.1:5672/", NULL, &mq);
 *     wv_amqp_channel *ch;
 *     rc = wv_amqp_channel_open(mq, &ch);
 *     rc = wv_amqp_queue_declare(ch, "tasks", &(wv_amqp_queue_opts){.durable = true}, NULL);
 *     rc = wv_amqp_publish(ch, "", "tasks", WV_STR("hello"), NULL); // 0 once the broker confirmed
 *     wv_amqp_consumer *c;
 *     rc = wv_amqp_consume(ch, "tasks", NULL, &c);
 *     wv_amqp_msg *m;
 *     while (wv_amqp_consumer_recv(c, &m, WV_NEVER) == 0) {
 *         printf("%.*s\n", (int)m->body.n, m->body.p);
 *         wv_amqp_ack(m);
 *         wv_amqp_msg_free(m);
 *     }
 *
 * The model.
 *
 *  - A connection (wv_amqp) belongs to the shard that opened it; any of
 *    that shard's fibers may use it and its channels at once. One reader
 *    fiber per connection cuts the broker's bytes into frames and hands
 *    each to its channel; what the fibers write during a pass of the loop
 *    leaves in one send.
 *  - Channels (wv_amqp_channel) are AMQP's: many on one connection, each
 *    with its own publisher-confirm sequence, prefetch and consumers.
 *    Calls on one channel from many fibers are fine: a channel's
 *    synchronous methods are answered in order and each answer goes to the
 *    fiber that asked. Every channel runs in confirm mode.
 *  - A publish is confirmed: wv_amqp_publish returns once the broker has
 *    taken responsibility for the message (acked), refused it (nacked),
 *    returned it (mandatory and unroutable) or the connection died first.
 *    wv_amqp_publish_start keeps many in flight and hands back a
 *    wv_amqp_confirm to wait for each.
 *  - Consumers deliver into a channel of messages (wv_chan) any fiber of the
 *    shard receives from, with a deadline or in wv_chan_select. Acks are
 *    manual unless opts.no_ack.
 *  - When the connection drops (broker restarted, network cut, missed
 *    heartbeats, connection.close from the broker) it is dialed again with
 *    a backoff, and everything this client declared is declared again:
 *    exchanges, queues (a server-named queue gets a new name, which its
 *    bindings and consumers follow), bindings, prefetch, consumers (same
 *    tags). Publishes the broker had not confirmed fail with -ECONNRESET,
 *    or are sent again when opts.republish is set: none is dropped
 *    silently. Messages delivered over the lost connection can no longer
 *    be acked (-ESTALE): the broker delivers them again. Calls made while
 *    the connection is down wait for it, within the fiber's deadline.
 *    opts.no_reconnect turns all this off: the first drop is final.
 *  - A channel the broker closes (a missing exchange, a double ack) fails
 *    what was waiting on it with the broker's reply code and text, and is
 *    opened again by the next call on it (at once when it has consumers).
 *  - connection.blocked (the broker short of memory or disk) makes
 *    publishers wait until connection.unblocked; other calls go on.
 *  - Heartbeats both ways: a frame is sent when nothing else went out for
 *    half the interval, and a broker silent for two intervals is taken as
 *    gone: the connection is dropped ("the broker missed its heartbeats").
 *
 * URLs: amqp://user:password@host:port/vhost, amqps://... for TLS (port
 * 5672 and 5671 by default). The vhost is the path without its leading
 * slash, percent-decoded ("/" when there is no path, so amqp://h/%2F and
 * amqp://h both name "/"; amqp://h/weave%2Ftest names "weave/test").
 * user and password default to guest / guest. Query options:
 * heartbeat=SECONDS, frame_max=BYTES, channel_max=N,
 * connection_timeout=MS, connection_name=TEXT. The password is never
 * printed.
 *
 * Errors are negative errno values with the detail in wv_errmsg(); the
 * broker's reply code and text are kept word for word ("AMQP channel
 * closed: 404 NOT_FOUND - no exchange 'x' in vhost '/'"):
 *
 *   -ENOENT        404 NOT_FOUND: no such exchange or queue
 *   -EACCES        403 ACCESS_REFUSED, 530 NOT_ALLOWED (login refused,
 *                  no access to the vhost or the resource)
 *   -EBUSY         405 RESOURCE_LOCKED: an exclusive queue of another
 *                  connection
 *   -EINVAL        406 PRECONDITION_FAILED (a declare whose arguments
 *                  differ from the existing ones, an unknown delivery tag);
 *                  also bad arguments caught before anything is sent
 *   -EIO           another error from the broker; a publish it nacked
 *   -EHOSTUNREACH  a mandatory publish the broker returned (312 NO_ROUTE);
 *                  while connecting, a name that does not resolve
 *   -ECONNRESET    the connection dropped with the call in flight (a
 *                  publish: it may or may not have reached a queue).
 *                  wv_errmsg says why: the broker's connection.close
 *                  ("AMQP connection lost: AMQP connection closed: 320
 *                  CONNECTION_FORCED - ..."), missed heartbeats ("the
 *                  broker missed its heartbeats"), bytes that are not AMQP
 *                  0-9-1, a frame over frame_max or a message over
 *                  opts.max_message (all of which drop the connection)
 *   -ETIMEDOUT     the fiber's deadline passed
 *   -ECANCELED     the fiber was cancelled
 *   -ESTALE        ack/nack/reject of a message whose connection or channel
 *                  has since broken (the broker delivers it again)
 *   -EPIPE         a channel or consumer that was closed; a connection
 *                  closed for good (opts.no_reconnect: wv_errmsg has the
 *                  reason it dropped)
 *   -ESHUTDOWN     the connection was closed with the call waiting
 *   -ECONNREFUSED, -EHOSTUNREACH, -EPROTO (TLS, or not AMQP 0-9-1),
 *   -ETIMEDOUT (connect_timeout_ms)  from wv_amqp_open
 *   -ENOMEM, -EXDEV (a connection used from another shard)
 */
#ifndef WEAVE_AMQP_H
#define WEAVE_AMQP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weave/net.h"
#include "weave/rt.h"
#include "weave/str.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ============================================================ field tables */

/*
 * A field of an AMQP table (queue arguments, message headers) or an
 * element of an array. To send one, fill name, type and the value member
 * (the macros below do); a table or array is fields[0..nfields). When
 * read from a message (wv_amqp_table_next) every slice points into the
 * message, and a nested table or array comes as its encoded bytes in s,
 * to read with wv_amqp_table_next / wv_amqp_array_next in turn.
 */
typedef enum wv_amqp_type {
    WV_AMQP_FIELD_VOID,      /* no value */
    WV_AMQP_FIELD_BOOL,      /* b */
    WV_AMQP_FIELD_INT,       /* i: every integer kind (sent as 32 bits when it fits, else 64) */
    WV_AMQP_FIELD_DOUBLE,    /* d: float, double and decimal kinds */
    WV_AMQP_FIELD_STRING,    /* s: a long string (text) */
    WV_AMQP_FIELD_BYTES,     /* s: a byte array */
    WV_AMQP_FIELD_TIMESTAMP, /* i: seconds since the epoch */
    WV_AMQP_FIELD_TABLE,     /* fields[0..nfields) to send; s (encoded) when read */
    WV_AMQP_FIELD_ARRAY,     /* fields[0..nfields) to send (names ignored); s when read */
} wv_amqp_type;

typedef struct wv_amqp_field {
    wv_str name;
    wv_amqp_type type;
    bool b;
    int64_t i;
    double d;
    wv_str s;
    const struct wv_amqp_field *fields;
    int nfields;
} wv_amqp_field;

#define WV_AMQP_NAME_(n) ((wv_str){(n), strlen(n)})
#define WV_AMQP_INT(n, v)                                                                          \
    ((wv_amqp_field){.name = WV_AMQP_NAME_(n), .type = WV_AMQP_FIELD_INT, .i = (v)})
#define WV_AMQP_BOOL(n, v)                                                                         \
    ((wv_amqp_field){.name = WV_AMQP_NAME_(n), .type = WV_AMQP_FIELD_BOOL, .b = (v)})
#define WV_AMQP_DOUBLE(n, v)                                                                       \
    ((wv_amqp_field){.name = WV_AMQP_NAME_(n), .type = WV_AMQP_FIELD_DOUBLE, .d = (v)})
#define WV_AMQP_STR(n, v)                                                                          \
    ((wv_amqp_field){.name = WV_AMQP_NAME_(n), .type = WV_AMQP_FIELD_STRING, .s = WV_AMQP_NAME_(v)})
#define WV_AMQP_TABLE(n, f, count)                                                                 \
    ((wv_amqp_field){                                                                              \
        .name = WV_AMQP_NAME_(n), .type = WV_AMQP_FIELD_TABLE, .fields = (f), .nfields = (count)})

/*
 * Read the field at *pos (start at 0) of an encoded table (a message's
 * headers) and move *pos past it: 1 with *f set, 0 at the end, -EPROTO for
 * bytes that are not a table (wv_errmsg says where).
 */
int wv_amqp_table_next(wv_str table, size_t *pos, wv_amqp_field *f);

/* The same for the elements of an encoded array (f->name is empty). */
int wv_amqp_array_next(wv_str array, size_t *pos, wv_amqp_field *f);

/* The field called name: 1 with *f set, 0 when there is none, -EPROTO. */
int wv_amqp_table_get(wv_str table, const char *name, wv_amqp_field *f);

/* ============================================================= connections */

typedef struct wv_amqp wv_amqp;
typedef struct wv_amqp_channel wv_amqp_channel;
typedef struct wv_amqp_consumer wv_amqp_consumer;
typedef struct wv_amqp_confirm wv_amqp_confirm;

/* heartbeat_s: no heartbeats at all */
#define WV_AMQP_NO_HEARTBEAT (-1)

typedef struct wv_amqp_opts {
    wv_tls_ctx *tls;            /* amqps://: NULL = wv_tls_ctx_default() */
    int64_t connect_timeout_ms; /* one dial with its handshake; 0 = 10000 */
    /* the heartbeat interval asked for; the broker's is taken when it is
     * shorter; 0 = 60, WV_AMQP_NO_HEARTBEAT = none (the broker's words
     * notwithstanding) */
    int heartbeat_s;
    uint32_t frame_max;          /* bytes in one frame at most; 0 = 131072 */
    uint16_t channel_max;        /* channels at most; 0 = 2047 */
    size_t max_message;          /* bytes in one received message body at most; 0 = 128 MiB */
    uint16_t prefetch;           /* basic.qos every channel opens with; 0 = 256 */
    uint32_t max_unconfirmed;    /* publishes in flight per channel; more wait; 0 = 10000 */
    const char *connection_name; /* shown by the broker (rabbitmqctl list_connections name) */
    bool no_reconnect;           /* the first drop is final */
    int64_t reconnect_min_ms;    /* backoff between dials: 0 = 100, */
    int64_t reconnect_max_ms;    /* doubling up to 0 = 5000 */
    /* after a reconnect, send again the publishes the broker had not
     * confirmed (each may then reach a queue twice) instead of failing them */
    bool republish;
} wv_amqp_opts;

/*
 * Connect to `url` (see above) on the calling shard: dial, log in (PLAIN),
 * tune, open the vhost. Fails at once when that fails (-ECONNREFUSED,
 * -EACCES with the broker's words, ...): reconnecting is only for a
 * connection that once worked. opts may be NULL.
 */
int wv_amqp_open(const char *url, const wv_amqp_opts *opts, wv_amqp **out);

/*
 * Close the connection (connection.close, waiting briefly for the broker's
 * answer) and free it with its channels and consumers. What still waits
 * fails with -ESHUTDOWN; unconfirmed publishes fail. Messages and confirms
 * the user holds stay valid until freed (acks then give -EPIPE). From the
 * connection's shard. NULL is ignored.
 */
void wv_amqp_close(wv_amqp *c);

/* Is the connection up now (not dialing again)? */
bool wv_amqp_connected(const wv_amqp *c);

/* Has the broker blocked publishers (connection.blocked)? */
bool wv_amqp_blocked(const wv_amqp *c);

typedef struct wv_amqp_stats {
    uint64_t reconnects;  /* connections made again after a drop */
    uint64_t published;   /* publishes sent (republished ones again) */
    uint64_t acked;       /* ... confirmed by the broker */
    uint64_t nacked;      /* ... refused */
    uint64_t returned;    /* ... returned as unroutable */
    uint64_t failed;      /* ... lost with their connection or channel */
    uint64_t republished; /* ... sent again after a reconnect (opts.republish) */
    uint64_t delivered;   /* messages received (consumers and gets) */
    uint32_t frame_max;   /* negotiated with the broker */
    int heartbeat_s;      /* the interval in use (0: none) */
} wv_amqp_stats;

void wv_amqp_stats_get(const wv_amqp *c, wv_amqp_stats *st);

/* ================================================================ channels */

/*
 * Open a channel on c: confirm mode, and the connection's default
 * prefetch. Waits for the connection when it is down.
 */
int wv_amqp_channel_open(wv_amqp *c, wv_amqp_channel **out);

/*
 * Close the channel (channel.close): its consumers end, the messages it
 * delivered and nobody acked go back to their queues, its unconfirmed
 * publishes fail. Messages and consumers still held stay valid to free.
 * NULL is ignored.
 */
void wv_amqp_channel_close(wv_amqp_channel *ch);

/* basic.qos: at most `prefetch` unacked messages per consumer of the
 * channel (0 = no limit). Kept across reconnects. RabbitMQ applies it to
 * the consumers started after it only. */
int wv_amqp_qos(wv_amqp_channel *ch, uint16_t prefetch);

/* basic.qos with global set, as RabbitMQ reads it: at most `prefetch`
 * unacked messages on the whole channel, its consumers together (0 = no
 * limit), changed at once for the consumers already there (Celery's
 * worker raises its prefetch this way while it holds ETA messages). Both
 * limits hold when both are set. Kept across reconnects. */
int wv_amqp_qos_channel(wv_amqp_channel *ch, uint16_t prefetch);

/* ================================================================ topology */

typedef struct wv_amqp_exchange_opts {
    bool durable, auto_delete, internal;
    bool passive; /* only check that it exists (-ENOENT if not) */
    const wv_amqp_field *args;
    int nargs;
} wv_amqp_exchange_opts;

/* exchange.declare of `type` ("direct", "fanout", "topic", "headers").
 * opts may be NULL. Declared again after a reconnect. */
int wv_amqp_exchange_declare(wv_amqp_channel *ch, const char *name, const char *type,
                             const wv_amqp_exchange_opts *opts);

/* exchange.delete; if_unused: only if it has no bindings (-EINVAL else). */
int wv_amqp_exchange_delete(wv_amqp_channel *ch, const char *name, bool if_unused);

/* exchange.bind / unbind: messages of `source` matching routing_key (or
 * args, for a headers exchange) go to `destination` too. */
int wv_amqp_exchange_bind(wv_amqp_channel *ch, const char *destination, const char *source,
                          const char *routing_key, const wv_amqp_field *args, int nargs);
int wv_amqp_exchange_unbind(wv_amqp_channel *ch, const char *destination, const char *source,
                            const char *routing_key, const wv_amqp_field *args, int nargs);

typedef struct wv_amqp_queue_opts {
    bool durable, exclusive, auto_delete;
    bool passive; /* only check that it exists (-ENOENT if not) */
    /* x-message-ttl, x-dead-letter-exchange, x-queue-type ("quorum"),
     * x-max-priority, ...: WV_AMQP_INT("x-message-ttl", 60000) */
    const wv_amqp_field *args;
    int nargs;
} wv_amqp_queue_opts;

typedef struct wv_amqp_queue_info {
    char name[256]; /* the queue's name (the broker's choice for "") */
    uint32_t messages;
    uint32_t consumers;
} wv_amqp_queue_info;

/* queue.declare; name "" lets the broker choose one (in info->name). info
 * and opts may be NULL. Declared again after a reconnect. */
int wv_amqp_queue_declare(wv_amqp_channel *ch, const char *name, const wv_amqp_queue_opts *opts,
                          wv_amqp_queue_info *info);

/* queue.delete: the number of messages it held in *messages (may be NULL). */
int wv_amqp_queue_delete(wv_amqp_channel *ch, const char *name, bool if_unused, bool if_empty,
                         uint32_t *messages);

/* queue.purge: drop its ready messages; how many in *messages (may be NULL). */
int wv_amqp_queue_purge(wv_amqp_channel *ch, const char *name, uint32_t *messages);

/* queue.bind / unbind. args may be NULL with nargs 0. */
int wv_amqp_queue_bind(wv_amqp_channel *ch, const char *queue, const char *exchange,
                       const char *routing_key, const wv_amqp_field *args, int nargs);
int wv_amqp_queue_unbind(wv_amqp_channel *ch, const char *queue, const char *exchange,
                         const char *routing_key, const wv_amqp_field *args, int nargs);

/* ============================================================== publishing */

typedef struct wv_amqp_publish_opts {
    bool mandatory;    /* return it (-EHOSTUNREACH) when no queue takes it */
    bool transient;    /* delivery mode 1; by default messages are persistent (2) */
    uint8_t priority;  /* 0 = not sent */
    int64_t timestamp; /* seconds since the epoch; 0 = not sent */
    const char *content_type, *content_encoding;
    const char *correlation_id, *reply_to, *message_id, *type, *user_id, *app_id;
    const char *expiration; /* per-message TTL in milliseconds, as text ("60000") */
    const wv_amqp_field *headers;
    int nheaders;
} wv_amqp_publish_opts;

/*
 * Publish body to exchange ("" is the default exchange, which routes to
 * the queue named routing_key) and wait for the broker's confirm: 0 when
 * acked, -EIO nacked, -EHOSTUNREACH returned (mandatory), -ECONNRESET the
 * connection dropped first (and opts.republish is off), or the channel's
 * error (-ENOENT: no such exchange). While the broker blocks publishers,
 * or max_unconfirmed are in flight, it waits first. On -ETIMEDOUT or
 * -ECANCELED the message may still be published. opts may be NULL.
 */
int wv_amqp_publish(wv_amqp_channel *ch, const char *exchange, const char *routing_key, wv_str body,
                    const wv_amqp_publish_opts *opts);

/*
 * Publish without waiting for the confirm: returns once the message is
 * queued for sending, with *out to wait on (free it with
 * wv_amqp_confirm_free, also unwaited). Errors before the message is
 * queued (-ETIMEDOUT, ...) leave *out NULL.
 */
int wv_amqp_publish_start(wv_amqp_channel *ch, const char *exchange, const char *routing_key,
                          wv_str body, const wv_amqp_publish_opts *opts, wv_amqp_confirm **out);

/* Wait for a confirm until `at` (WV_NEVER: the fiber's deadline alone):
 * its outcome as wv_amqp_publish gives it, or -ETIMEDOUT / -ECANCELED
 * (it stays pending: wait again). */
int wv_amqp_confirm_wait(wv_amqp_confirm *cf, int64_t at);

/* Its outcome without waiting: -EINPROGRESS while the broker has not
 * answered. */
int wv_amqp_confirm_result(const wv_amqp_confirm *cf);

/* The publish's delivery tag on its channel (1, 2, ...). */
uint64_t wv_amqp_confirm_seq(const wv_amqp_confirm *cf);

void wv_amqp_confirm_free(wv_amqp_confirm *cf);

/* =============================================================== consuming */

/* A received message: every string is NUL-terminated and empty when the
 * property was absent; the memory is the message's, until
 * wv_amqp_msg_free. */
typedef struct wv_amqp_msg {
    wv_str body;
    wv_str exchange, routing_key;
    uint64_t delivery_tag;
    bool redelivered;
    uint32_t message_count; /* wv_amqp_get: messages left in the queue */
    wv_str content_type, content_encoding, correlation_id, reply_to, expiration, message_id, type,
        user_id, app_id;
    wv_str headers;    /* the encoded table: wv_amqp_table_get / _next */
    int delivery_mode; /* 1 transient, 2 persistent, 0 absent */
    int priority;      /* -1 absent */
    int64_t timestamp; /* 0 absent */
    void *priv_;
} wv_amqp_msg;

typedef struct wv_amqp_consume_opts {
    bool no_ack;               /* the broker counts messages acked when sent */
    bool exclusive;            /* the only consumer of the queue */
    const char *tag;           /* the consumer tag; NULL = one of ours ("wv-N") */
    const wv_amqp_field *args; /* x-priority, ... */
    int nargs;
} wv_amqp_consume_opts;

/*
 * Start consuming `queue` on ch (basic.consume); messages queue up in the
 * consumer (as many as the channel's prefetch lets the broker send).
 * Resumed after a reconnect. opts may be NULL.
 */
int wv_amqp_consume(wv_amqp_channel *ch, const char *queue, const wv_amqp_consume_opts *opts,
                    wv_amqp_consumer **out);

/*
 * The next message (free it with wv_amqp_msg_free), waiting until `at`
 * (WV_NEVER: the fiber's deadline alone). -ETIMEDOUT, -ECANCELED, and
 * -EPIPE once the consumer has ended and its messages are all taken:
 * cancelled by wv_amqp_consumer_cancel, by the broker (its queue was
 * deleted: wv_errmsg says so), or its channel closed.
 */
int wv_amqp_consumer_recv(wv_amqp_consumer *c, wv_amqp_msg **m, int64_t at);

/* The consumer's queue of messages for wv_chan_select: its elements are
 * wv_amqp_msg *, and it is closed when the consumer ends. */
wv_chan *wv_amqp_consumer_chan(wv_amqp_consumer *c);

/* The consumer's tag. */
const char *wv_amqp_consumer_tag(const wv_amqp_consumer *c);

/* Did the broker cancel it (basic.cancel: its queue was deleted)? */
bool wv_amqp_consumer_cancelled(const wv_amqp_consumer *c);

/* basic.cancel: no more deliveries (messages already queued can still be
 * received, then -EPIPE). */
int wv_amqp_consumer_cancel(wv_amqp_consumer *c);

/* Cancel if needed, give the messages still queued back to the broker
 * (basic.reject with requeue) and free. NULL is ignored. */
void wv_amqp_consumer_free(wv_amqp_consumer *c);

/*
 * basic.get: 1 with *out set (free it), 0 when the queue is empty. With
 * no_ack the broker counts it acked at once.
 */
int wv_amqp_get(wv_amqp_channel *ch, const char *queue, bool no_ack, wv_amqp_msg **out);

/* Acknowledge m: done with, the broker forgets it. 0, -ESTALE (its
 * channel or connection broke since: it will be delivered again), -EPIPE
 * (its channel was closed), -EINVAL (no_ack, or already settled). */
int wv_amqp_ack(wv_amqp_msg *m);

/* Refuse m: back to its queue when requeue, else dropped or dead-lettered
 * (x-dead-letter-exchange). Errors as wv_amqp_ack. */
int wv_amqp_nack(wv_amqp_msg *m, bool requeue);

/* basic.reject: as wv_amqp_nack (the AMQP 0-9-1 method without RabbitMQ's
 * extension). */
int wv_amqp_reject(wv_amqp_msg *m, bool requeue);

/* Free a message. One received with manual acks and not yet settled is
 * given back first (basic.reject with requeue), so no prefetch slot is lost to a
 * message nobody holds. NULL is ignored. */
void wv_amqp_msg_free(wv_amqp_msg *m);

#ifdef __cplusplus
}
#endif

#endif
