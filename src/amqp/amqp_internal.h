/*
 * Private structures of the AMQP client, shared by the files of src/amqp/.
 *
 * The picture. A connection (struct wv_amqp) lives on one shard. While it
 * is up it has a stream, a reader fiber and a writer fiber (a group per
 * connection made, an "epoch"). The reader cuts the input into frames
 * (frame.c), decodes methods with librabbitmq's codec and hands each to
 * its channel (channel.c), which completes the fiber waiting for that
 * answer, settles publisher confirms (publish.c), assembles deliveries and
 * queues them on consumers (consume.c). Every fiber that sends appends
 * whole frames to the connection's output buffer (codec.c) and wakes the
 * writer, so what a pass of the loop produces leaves in one write, and the
 * frames of one message are never split by another's.
 *
 * A supervisor fiber owns the connection's life (conn.c): when the
 * connection breaks (a read or write error, missed heartbeats, bytes that
 * are not AMQP, the broker's connection.close) it tears the epoch down,
 * fails or keeps what was in flight, dials again with a backoff and
 * replays the topology this client declared (topology.c), then reopens the
 * channels with their prefetch and consumers. User calls wait on `ready`
 * meanwhile.
 *
 * Memory. The connection owns its channels (the table by id) and the
 * consumers; wv_amqp_close frees them. A channel is reference-counted:
 * its own life (until closed) and every message delivered on it, so a
 * message can be acked (or refused: -EPIPE) after its channel or
 * connection is gone. A confirm is reference-counted by the user and by
 * its channel while unsettled. An RPC record is the waiting fiber's until
 * it gives up (deadline), then its channel's, which frees it when the
 * answer comes or the channel fails.
 */
#ifndef WEAVE_AMQP_INTERNAL_H
#define WEAVE_AMQP_INTERNAL_H

#include <amqp.h>
#include <amqp_framing.h>
#include <stdbool.h>
#include <stdint.h>

#include "amqp/frame.h"
#include "weave/amqp.h"
#include "weave/buf.h"
#include "weave/net.h"

#pragma GCC visibility push(hidden)

enum {
    AMQP_MSG = 512, /* error details kept with a connection, channel or call */
    AMQP_NAME = 256,
    AMQP_DEFAULT_CONNECT_MS = 10000,
    AMQP_DEFAULT_HEARTBEAT_S = 60,
    AMQP_DEFAULT_FRAME_MAX = 131072,
    AMQP_DEFAULT_CHANNEL_MAX = 2047,
    AMQP_DEFAULT_PREFETCH = 256,
    AMQP_DEFAULT_MAX_UNCONFIRMED = 10000,
    AMQP_DEFAULT_BACKOFF_MIN_MS = 100,
    AMQP_DEFAULT_BACKOFF_MAX_MS = 5000,
    AMQP_CLOSE_WAIT_MS = 2000,       /* connection.close / channel.close answers */
    AMQP_OUT_HIGH = 8 * 1024 * 1024, /* output bytes before publishers wait */
};
#define AMQP_DEFAULT_MAX_MESSAGE ((size_t)128 * 1024 * 1024)

typedef struct amqp_rpc amqp_rpc;
typedef struct amqp_topo amqp_topo;

/* What a synchronous method's answer carried, copied out for the caller. */
typedef struct amqp_reply {
    uint32_t method;      /* which answer came */
    char name[AMQP_NAME]; /* queue name, consumer tag */
    uint32_t count1;      /* message count */
    uint32_t count2;      /* consumer count */
    wv_amqp_msg *msg;     /* basic.get-ok */
} amqp_reply;

struct amqp_rpc {
    amqp_rpc *next;
    uint32_t want[2]; /* the answers that complete it */
    bool done, abandoned;
    bool get_no_ack; /* a basic.get with no_ack: an abandoned answer needs no reject */
    int rc;
    char msg[AMQP_MSG];
    amqp_reply reply;
    wv_event ev;
};

/* A channel's content being assembled: a method with content, its header,
 * then body frames. */
enum { ASM_NONE, ASM_DELIVER, ASM_GET, ASM_RETURN };
typedef struct amqp_assembly {
    int kind;
    char tag[AMQP_NAME]; /* ASM_DELIVER: the consumer's */
    uint64_t delivery_tag;
    bool redelivered;
    uint32_t message_count;
    uint16_t reply_code;
    char reply_text[AMQP_NAME];
    char exchange[AMQP_NAME], routing_key[AMQP_NAME];
    wv_amqp_msg *msg;
    uint64_t body_size, body_got;
    bool have_header;
} amqp_assembly;

enum { CH_CLOSED, CH_OPEN };

struct wv_amqp_channel {
    wv_amqp *conn; /* NULL once closed */
    uint16_t id;
    int state;
    bool internal; /* the recovery channel */
    uint64_t gen;  /* +1 every time it is opened on the wire */
    int refs;
    wv_mutex open_mu;
    amqp_rpc *rpc_head, *rpc_tail;
    /* publisher confirms: unsettled publishes by sequence number */
    uint64_t next_seq;
    wv_amqp_confirm **pend;
    size_t pend_head, pend_n, pend_cap, inflight;
    wv_event room_ev; /* set while inflight < max_unconfirmed */
    /* consumers */
    wv_amqp_consumer *consumers;
    uint16_t prefetch;
    uint16_t prefetch_channel; /* basic.qos global: the channel's own limit */
    bool has_prefetch_channel;
    bool reopen_wanted; /* closed by the broker with consumers: reopen soon */
    /* a channel.open whose caller left before the answer (its deadline):
     * the broker opens the channel all the same, so nobody may send
     * another (RabbitMQ would close the connection: 504 "second
     * 'channel.open'"); the next opening waits for that answer and takes
     * the channel as open */
    bool open_pending;  /* sent, abandoned, not answered yet */
    bool open_orphaned; /* answered open-ok; the rest of the opening not done */
    wv_event open_answered;
    amqp_assembly as;
};

struct wv_amqp_consumer {
    wv_amqp_channel *ch; /* holds a reference */
    wv_amqp_consumer *prev, *next;
    char tag[AMQP_NAME];
    char queue[AMQP_NAME];
    bool no_ack, exclusive;
    wv_buf args;   /* the encoded arguments table (length first) */
    wv_chan *chan; /* of wv_amqp_msg * */
    bool active;   /* registered on the channel's current opening */
    bool ended;    /* chan closed: no more deliveries */
    bool broker_cancelled;
};

/* What a message carries besides the public fields. */
typedef struct amqp_msg_priv {
    wv_amqp_channel *ch; /* holds a reference */
    uint64_t gen;        /* the channel opening it came on */
    bool no_ack, settled;
} amqp_msg_priv;

struct wv_amqp_confirm {
    int refs; /* the user's, and its channel's while unsettled */
    uint64_t seq;
    int rc; /* -EINPROGRESS while unsettled */
    char msg[AMQP_MSG];
    bool mandatory, returned;
    uint64_t match; /* exchange, routing key and body hashed: a return finds it */
    wv_buf frames;  /* opts.republish: the message's frames, to send again */
    wv_event done;
};

enum { TOPO_EXCHANGE, TOPO_QUEUE, TOPO_QUEUE_BIND, TOPO_EXCHANGE_BIND };

struct amqp_topo {
    amqp_topo *prev, *next;
    int kind;
    char *a; /* exchange or queue name; a binding's destination */
    char *b; /* exchange type; a binding's source */
    char *c; /* a binding's routing key */
    bool durable, auto_delete, internal, exclusive, server_named;
    wv_buf args; /* encoded table, length first */
};

enum { CONN_DOWN, CONN_UP, CONN_DEAD };

struct wv_amqp {
    /* configuration */
    wv_amqp_opts opts;
    char *host, *user, *password, *vhost, *name, *redacted;
    int port;
    bool tls;
    int shard;
    /* the connection now */
    int state;
    bool broken;  /* the current epoch broke; the supervisor takes over */
    bool ready;   /* up and recovered: user calls go on */
    bool closing; /* wv_amqp_close has begun */
    uint64_t epoch;
    wv_stream *s;
    int err;
    char errmsg[AMQP_MSG];
    wv_event ready_ev; /* set while ready or dead */
    wv_event sup_ev;   /* the supervisor has work */
    wv_event close_ok_ev;
    /* I/O */
    wv_buf in, out, spare;
    size_t in_off;
    wv_event out_ev;  /* the writer has bytes to send */
    wv_event room_ev; /* set while the output is under AMQP_OUT_HIGH */
    int64_t last_rx, last_tx;
    uint32_t frame_max;
    uint16_t channel_max;
    int heartbeat_s;
    bool blocked;
    wv_event unblocked_ev;
    amqp_pool_t dec_pool, enc_pool;
    /* channels by id (1..channel_max) */
    wv_amqp_channel **chans;
    amqp_topo *topo_head, *topo_tail;
    uint64_t next_tag;
    wv_group *sup; /* the supervisor */
    wv_group *io;  /* the reader and writer of the current epoch */
    int inside;    /* fibers inside a public call */
    wv_event idle_ev;
    wv_amqp_stats stats;
};

/* ------------------------------------------------------------ codec.c */

/* Reply code to errno: 404 -ENOENT, 403/530 -EACCES, 405 -EBUSY, 406
 * -EINVAL, others -EIO. */
int amqp_reply_errno(uint16_t code);

/* Append a method frame on `channel`: 0, -EMSGSIZE when it does not fit
 * in frame_max, -ENOMEM. */
int amqp_put_method(wv_buf *b, uint32_t frame_max, uint16_t channel, uint32_t id, void *method);

/* Append a heartbeat frame. */
int amqp_put_heartbeat(wv_buf *b);

/* Append a whole message: basic.publish, its content header, its body in
 * frames of at most frame_max. pool holds the headers table meanwhile. */
int amqp_put_publish(wv_buf *b, amqp_pool_t *pool, uint32_t frame_max, uint16_t channel,
                     const char *exchange, const char *routing_key, wv_str body,
                     const wv_amqp_publish_opts *opts);

/* Build fields[0..n) as an amqp_table_t in pool (-EINVAL: a field of
 * unknown type, nesting too deep, a name over 255 bytes). */
int amqp_table_from_fields(amqp_pool_t *pool, const wv_amqp_field *fields, int n,
                           amqp_table_t *out);

/* Encode fields[0..n) as a table (length first) into b. */
int amqp_table_encode(wv_buf *b, amqp_pool_t *pool, const wv_amqp_field *fields, int n);

/* Decode an encoded table (length first, as amqp_table_encode wrote it). */
int amqp_table_decode(amqp_pool_t *pool, const wv_buf *b, amqp_table_t *out);

/* amqp_bytes_t of a C string (NULL: empty). */
amqp_bytes_t amqp_str(const char *s);

/* Is `id` a method a broker may send a client? */
bool amqp_server_method(uint32_t id);

/* FNV-1a over exchange, routing key and body: how a return finds its publish. */
uint64_t amqp_publish_hash(const char *exchange, size_t elen, const char *rk, size_t rlen,
                           wv_str body);

/* ------------------------------------------------------------- conn.c */

/* Fail the current connection: the first reason wins, the reader and
 * writer wake, the supervisor takes over. Returns rc. */
int amqp_conn_break(wv_amqp *c, int rc, const char *fmt, ...) WV_PRINTF(3, 4);

/* Wait until the connection is ready for user calls: 0, the connection's
 * error when it is closed for good, -ETIMEDOUT, -ECANCELED. */
int amqp_conn_wait_ready(wv_amqp *c);

/* Is the current epoch up (not broken)? */
bool amqp_conn_live(const wv_amqp *c);

/* Wake the writer after frames were appended to c->out. */
void amqp_conn_kick(wv_amqp *c);

/* Make the fiber's deadline the earlier of itself and `at`; returns the
 * deadline to put back with wv_deadline_set. */
int64_t amqp_deadline_cap(int64_t at);

/* Check the calling shard: 0 or -EXDEV. */
int amqp_conn_check_shard(const wv_amqp *c);

/* A public call begins / ends on c: wv_amqp_close waits until no fiber is
 * inside one before it frees the connection. enter also checks the
 * shard. */
int amqp_enter(wv_amqp *c);
void amqp_leave(wv_amqp *c);

/* Decode a method frame from the broker (refusing methods a broker does
 * not send) into c->dec_pool. */
int amqp_decode(wv_amqp *c, const amqp_frame *f, uint32_t *id, void **decoded);

/* --------------------------------------------------------- channel.c */

/* A new channel on the lowest free id (not opened on the wire yet). */
int amqp_chan_new(wv_amqp *c, bool internal, wv_amqp_channel **out);

/* Open on the wire: channel.open, confirm.select, basic.qos, and its
 * consumers again. */
int amqp_chan_open_wire(wv_amqp_channel *ch);

/* Make sure the channel is open (waiting for the connection, reopening a
 * channel the broker closed): 0 or an error. */
int amqp_chan_ready(wv_amqp_channel *ch);

/* Send `method` on ch and wait for one of the answers want0 / want1 (0:
 * none). 0 with *reply filled (may be NULL), or an error. Does not wait
 * for readiness: the caller did. */
int amqp_chan_rpc(wv_amqp_channel *ch, uint32_t id, void *method, uint32_t want0, uint32_t want1,
                  amqp_reply *reply);

/* A basic.get's answer is whole: hand it to the fiber that asked. */
void amqp_chan_get_done(wv_amqp_channel *ch, wv_amqp_msg *m);

/* Send a method with no answer (ack, nack, reject, cancel-ok...). */
int amqp_chan_send(wv_amqp_channel *ch, uint32_t id, void *method);

/* A frame for channel ch from the reader: 0, or an error that breaks the
 * connection. */
int amqp_chan_on_frame(wv_amqp_channel *ch, const amqp_frame *f);

/* Fail the synchronous calls waiting on ch (the connection broke: no
 * answer will come). */
void amqp_chan_fail_calls(wv_amqp_channel *ch, int rc, const char *msg);

/* The channel is no longer open on the wire (the broker closed it, or the
 * connection was lost: connection_lost): fail what waits on it with rc and
 * msg (unconfirmed publishes are kept to send again when the connection
 * was lost and opts.republish is set), end the current opening. */
void amqp_chan_lost(wv_amqp_channel *ch, int rc, const char *msg, bool connection_lost);

/* Drop a reference; the last one frees. */
void amqp_chan_unref(wv_amqp_channel *ch);

/* Detach from the connection for good (closed or the connection freed). */
void amqp_chan_detach(wv_amqp_channel *ch, int rc, const char *msg);

/* --------------------------------------------------------- publish.c */

/* basic.ack / basic.nack from the broker. */
void amqp_confirm_settle(wv_amqp_channel *ch, uint64_t tag, bool multiple, bool ack);

/* A returned message: mark the publish it belongs to. */
void amqp_confirm_returned(wv_amqp_channel *ch, const amqp_assembly *as);

/* Fail (or, keep_for_republish, keep) every unsettled publish of ch. */
void amqp_confirm_fail_all(wv_amqp_channel *ch, int rc, const char *msg, bool keep_for_republish);

/* Send again what was kept: after the channel reopened. */
int amqp_confirm_republish(wv_amqp_channel *ch);

void amqp_confirm_unref(wv_amqp_confirm *cf);

/* --------------------------------------------------------- consume.c */

/* Allocate a message for the assembly's header (properties decoded). */
int amqp_msg_alloc(wv_amqp_channel *ch, amqp_assembly *as, const amqp_frame *f);

/* The message is whole: hand it on. */
void amqp_msg_complete(wv_amqp_channel *ch, amqp_assembly *as);

/* A consumer by tag on ch, or NULL. */
wv_amqp_consumer *amqp_consumer_find(wv_amqp_channel *ch, const char *tag, size_t len);

/* basic.consume again (the channel reopened). */
int amqp_consumer_resume(wv_amqp_consumer *co);

/* The consumer ends (chan closed): by the broker, its channel, or the user. */
void amqp_consumer_end(wv_amqp_consumer *co);

/* Free a consumer without a word to the broker (its connection is
 * closing). */
void amqp_consumer_destroy(wv_amqp_consumer *co);

/* The connection dropped: stale messages of manual-ack consumers are
 * dropped from their queues (the broker sends them again). */
void amqp_consumer_drop_stale(wv_amqp_consumer *co);

/* Settle a message on the wire. */
int amqp_msg_settle(wv_amqp_msg *m, uint32_t id, bool requeue);

/* --------------------------------------------------------- topology.c */

/* Declare again all that was recorded, on ch (a channel of its own). */
int amqp_topo_replay(wv_amqp *c, wv_amqp_channel *ch);

void amqp_topo_free(wv_amqp *c);

#pragma GCC visibility pop

#endif
