/*
 * Private structures of the Redis client, shared by the files of
 * src/redis/.
 *
 * The picture. A wv_redis client lives on one shard. It holds one shared
 * connection (or a few, opts.connections) that every fiber of the shard
 * sends its commands on, and a wv_pool of dedicated connections for what
 * cannot share one: blocking commands, WATCH transactions, pub/sub, and
 * whatever the user takes with wv_redis_acquire.
 *
 * A command is an op on a connection, and a connection is a wv_mux (the
 * net layer's shared connection) framed by the RESP scanner: the calling
 * fiber encodes its arguments straight into the mux's output, pushes the
 * op and suspends. The commands the shard's fibers issue during one pass
 * leave in one send (auto-pipelining), and the mux's reader hands each
 * reply, in order, to its op's deliver function here (a tree, a bulk
 * string into the caller's buffer, an integer, a status), then wakes its
 * fiber. An op whose fiber stops waiting is abandoned (its reply is read
 * and dropped); bytes that are not RESP, or a reply nobody asked for,
 * break the connection and fail every op in it, and the next command
 * dials a new one (after a backoff while dialing fails). So every command
 * completes exactly once, with its reply or an error, and no reply ever
 * reaches another fiber.
 *
 * A dedicated connection's mux is not shared: the fiber holding it writes
 * and reads itself, and a wait cut short closes it (its state is unknown).
 *
 * Memory: an op lives on its fiber's stack. A connection belongs to its
 * client's slot or pool; closing it fails what waits in it first, so no
 * reply is delivered into a freed connection.
 */
#ifndef WEAVE_REDIS_INTERNAL_H
#define WEAVE_REDIS_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "redis/resp.h"
#include "weave/buf.h"
#include "weave/net.h"
#include "weave/redis.h"

#pragma GCC visibility push(hidden)

enum {
    REDIS_MSG = WV_MUX_MSG, /* error details kept with an op or a connection */
    REDIS_DEFAULT_CONNECT_MS = 5000,
    REDIS_DEFAULT_RESPONSE_MS = 30000,
    REDIS_DEFAULT_POOL = 16,
    REDIS_BACKOFF_MIN_MS = 50,
    REDIS_BACKOFF_MAX_MS = 2000,
};

typedef struct redis_conn redis_conn;
typedef struct redis_op redis_op;
typedef struct redis_config redis_config;

/* Hand one complete reply p[0..len) (the connection's bytes; the
 * deliverer may write into them) to op, whose op->req.got replies came
 * before it, with the scanner's facts about it. Runs on the reading fiber
 * and never suspends; a failure goes in op->req through redis_op_fail
 * (the first one wins). */
typedef void redis_deliver_fn(redis_op *op, char *p, size_t len, const resp_scanner *sc);

/* One command (or a pipeline's several) on a connection: the wv_mux
 * request first (replies, got, rc, msg live there), then what the
 * deliverer needs. */
struct redis_op {
    wv_mux_req req;
    redis_deliver_fn *deliver;
    void *out;         /* the deliverer's target (wv_buf *, wv_redis_reply **, ...) */
    long long integer; /* deliver_int / deliver_status / deliver_bulk results */
    bool keep_errors;  /* deliver_tree: error replies are replies, not a failure */
    redis_conn *conn;  /* set when queued: whose scanner describes the reply */
};

struct redis_conn {
    const redis_config *cfg;
    wv_mux *mux;
    int proto; /* 2 or 3: what HELLO gave */
    resp_scanner scan;
};

/* The settings of one client, from its URL and options: made at open,
 * shared (read-only) by the client, its connections and its views. */
struct redis_config {
    int refs;
    wv_redis_stats stats; /* the client's counters (the one mutable part) */
    char *host;           /* a name, an address, or a Unix socket's path */
    int port;             /* 0 for a Unix socket */
    char *user, *password;
    int db;
    int protocol; /* 0 (3, else 2), 2 or 3 */
    bool tls;
    wv_tls_ctx *tls_ctx; /* NULL: the default context when tls */
    char *client_name;
    char redacted[256]; /* the URL without its password, for every message */
    int connections;
    int pool_size;
    bool autopipeline;
    bool cluster; /* opts.cluster or ?cluster=true */
    int64_t connect_timeout_ms;
    int64_t response_timeout_ms; /* < 0: never */
    size_t max_reply;
};

/* ------------------------------------------------------------ conn.c */

/* Dial and greet (HELLO, AUTH, SELECT, CLIENT SETNAME): 0 with *out, or an
 * error with wv_errmsg. A shared connection gets its reader fiber. */
int redis_conn_open(const redis_config *cfg, bool dedicated, redis_conn **out);

/* Queue op with one command (argv[0..argc)) on c without suspending:
 * -ENOMEM, or c's error when it is broken. */
int redis_conn_queue(redis_conn *c, redis_op *op, int argc, const wv_str *argv);

/* The same for bytes already encoded holding op->req.replies commands. */
int redis_conn_queue_raw(redis_conn *c, redis_op *op, const char *p, size_t n);

/* Wait for op's replies: op->req.rc, with wv_errmsg from its message. */
int redis_conn_wait(redis_conn *c, redis_op *op);

/* Queue and wait: one command, one op. */
int redis_conn_call(redis_conn *c, redis_op *op, int argc, const wv_str *argv);

/* A dedicated connection read without requests (pub/sub): the next whole
 * reply at *p (valid until the next call; c->scan has its facts). */
int redis_conn_read_reply(redis_conn *c, char **p, size_t *len);

/* Break the connection: every op in it fails with rc and the message. */
void redis_conn_fail(redis_conn *c, int rc, const char *fmt, ...) WV_PRINTF(3, 4);

/* Close and free (what waits in it fails with -ESHUTDOWN). NULL is ignored. */
void redis_conn_close(redis_conn *c);

static inline bool redis_conn_ok(const redis_conn *c)
{
    return !wv_mux_broken(c->mux);
}

static inline size_t redis_conn_inflight(const redis_conn *c)
{
    return wv_mux_pending(c->mux);
}

/* ------------------------------------------------------------ client.c */

typedef enum cmd_class {
    CMD_PLAIN,     /* any connection */
    CMD_BLOCKING,  /* may wait on the server: a dedicated connection */
    CMD_STATEFUL,  /* changes its connection's state: dedicated handles only */
    CMD_SUBSCRIBE, /* pub/sub: wv_redis_subscribe */
} cmd_class;

/* Which connection a command may run on (argv[0] compared without case). */
cmd_class redis_classify(int argc, const wv_str *argv);
bool redis_name_is(wv_str name, const char *upper);

typedef struct shared_slot {
    redis_conn *c; /* NULL, or possibly broken: dialed again on demand */
    bool dialing;
    wv_event dialed;
    int64_t retry_at; /* no dial before this (wv_now) after a failed one */
    int64_t backoff_ms;
    int rc;
    char msg[REDIS_MSG];
} shared_slot;

struct wv_redis {
    redis_config *cfg;
    int shard;
    /* a handle from wv_redis_acquire: its client and connection */
    wv_redis *parent;
    redis_conn *own;
    bool own_dirty; /* its state changed (SELECT, ...): not reusable */
    bool own_watch; /* WATCH or MULTI pending: UNWATCH/DISCARD before reuse */
    /* the client itself */
    shared_slot *slots;
    int nslots;
    unsigned next;
    wv_pool *pool;
    bool closed;
    int inside;                    /* fibers inside a call; the memory goes when 0 after close */
    struct redis_cluster *cluster; /* Redis Cluster: the slot map and the nodes' clients */
};

/* A client for cfg (a reference is taken); dial: its first shared
 * connection now (else on first use). */
int redis_client_new(redis_config *cfg, bool dial, wv_redis **out);

/* A fiber leaves a call on r (it entered with r->inside++): the last one
 * out of a closed client frees it. */
void redis_client_leave(wv_redis *r);

/* Run op (one command) where it belongs: r's own connection (a handle),
 * a dedicated one (blocking), the cluster node of its key, or a shared one. */
int redis_call(wv_redis *r, redis_op *op, int argc, const wv_str *argv);

/* Queue op with bytes already encoded (op->req.replies commands) on r's own
 * connection (a handle) or a shared one (in a cluster: of the node that
 * serves `slot`, -1 for any), and wait for its replies. */
int redis_run_raw(wv_redis *r, redis_op *op, const char *p, size_t n, int slot);

/* ------------------------------------------------------------ cluster.c */

/* The hash slot of the command's key (CRC16 of the key or its {hash
 * tag}, mod 16384), or -1 for a command without keys. */
int redis_key_slot(int argc, const wv_str *argv);

/* Read the slot map from r's first connection and route by it from now on. */
int redis_cluster_open(wv_redis *r);
/* Free the map and close the nodes' clients (from the client's last exit). */
void redis_cluster_close(wv_redis *r);

/* Run a one-command op on the node serving its key, following MOVED and
 * ASK redirections. */
int redis_cluster_call(wv_redis *r, redis_op *op, int argc, const wv_str *argv);

/* Add the nodes' counters to st. */
void redis_cluster_stats_add(const wv_redis *r, wv_redis_stats *st);

/* The client of the node serving slot (-1: the first node). */
int redis_cluster_node_for_slot(wv_redis *r, int slot, wv_redis **node);

/* -EXDEV when r is used from another shard than its own. */
int redis_check_shard(const wv_redis *r);

/* ------------------------------------------------------------ deliver.c */

/* A tree (wv_redis_reply, one allocation) per reply into
 * ((wv_redis_reply **)op->out)[op->req.got]; an error reply is -EIO with the
 * server's words, unless op->keep_errors. */
redis_deliver_fn redis_deliver_tree;
/* A bulk string appended to (wv_buf *)op->out, op->integer = 1; a nil:
 * op->integer = 0. */
redis_deliver_fn redis_deliver_bulk;
/* An integer into op->integer. */
redis_deliver_fn redis_deliver_int;
/* A status (+OK) gives op->integer = 1, a nil 0. */
redis_deliver_fn redis_deliver_status;
/* Reads and drops the reply (errors still count). */
redis_deliver_fn redis_deliver_ignore;

/* Set op's error once (the first one wins). */
void redis_op_fail(redis_op *op, int rc, const char *fmt, ...) WV_PRINTF(3, 4);

/* The name of a reply's type for messages ("an integer"). */
const char *redis_type_name(wv_redis_type t);

/* ------------------------------------------------------------ config.c */

int redis_config_parse(const char *url, const wv_redis_opts *opts, redis_config **out);

/* A copy of base for another server (a cluster node). */
int redis_config_for_node(const redis_config *base, const char *host, int port, redis_config **out);
void redis_config_ref(redis_config *cfg);
void redis_config_unref(redis_config *cfg);

#pragma GCC visibility pop

#endif
