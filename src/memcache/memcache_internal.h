/*
 * Private structures of the memcached client, shared by src/memcache/conn.c
 * (one connection: dialing, the protocol probe, framing replies) and
 * src/memcache/client.c (the servers, placement, health, the commands).
 *
 * The picture. A wv_memcache client lives on one shard and holds its
 * servers, in the order the list named them. Each server has at most one
 * connection, a wv_mux (the net layer's shared connection) framed by the
 * codec's reply parser: a fiber encodes its request straight into the
 * mux's output, pushes an op and suspends; the shard's requests of one pass
 * leave in one send per server, and the mux's reader hands each reply, in
 * order, to its op's deliver function here, which turns it into the op's
 * result and wakes the fiber. Every request is one command with one reply
 * (no quiet mode, no noreply), so the mux's count of replies is exact.
 *
 * Classic `get` answers with several lines (VALUE ... then END): the frame
 * function returns them together as one reply, so a get is one request
 * with one reply in both dialects. A multi-get sends one get per key
 * (each a single reply, bounded by max_value), in one op whose reply
 * count is the number of keys.
 *
 * Health lives in the server, not the connection: a failed dial, or a
 * connection found broken for the server's sake, counts one failure; any
 * reply resets the count; failure_limit in a row mark the server dead
 * until dead_retry_ms have passed.
 *
 * Memory: an op lives on its fiber's stack. A connection belongs to its
 * server; closing it fails what waits in it first, so no reply is
 * delivered into a freed connection, and a fiber never touches its
 * connection after its wait returns (only the server, which lives as long
 * as the client).
 */
#ifndef WEAVE_MEMCACHE_INTERNAL_H
#define WEAVE_MEMCACHE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "memcache/ketama.h"
#include "memcache/proto.h"
#include "weave/memcache.h"
#include "weave/net.h"

#pragma GCC visibility push(hidden)

enum {
    MEMCACHE_MSG = WV_MUX_MSG,
    MEMCACHE_DEFAULT_CONNECT_MS = 2000,
    MEMCACHE_DEFAULT_RESPONSE_MS = 5000,
    MEMCACHE_DEFAULT_MAX_VALUE = 1 << 20,
    MEMCACHE_DEFAULT_FAILURE_LIMIT = 2,
    MEMCACHE_DEFAULT_DEAD_RETRY_MS = 5000,
};

typedef struct mc_server mc_server;
typedef struct mc_conn mc_conn;
typedef struct mc_op mc_op;

/* What a request asks: the client fills one, the encoder reads it. */
typedef enum mc_cmd_kind {
    MC_CMD_GET,
    MC_CMD_SET,
    MC_CMD_DELETE,
    MC_CMD_INCR,
    MC_CMD_TOUCH,
    MC_CMD_PING,
} mc_cmd_kind;

typedef struct mc_cmd {
    mc_cmd_kind kind;
    wv_str key;
    wv_str value;                    /* MC_CMD_SET */
    const wv_memcache_set_opts *set; /* MC_CMD_SET, never NULL */
    int64_t delta;                   /* MC_CMD_INCR */
    int64_t ttl;                     /* MC_CMD_TOUCH */
    bool want_cas;                   /* MC_CMD_GET */
} mc_cmd;

/* One request on a connection (a multi-get's keys for one server: one op
 * of several replies). The wv_mux request first. */
struct mc_op {
    wv_mux_req req;
    mc_cmd_kind kind;
    mc_conn *conn; /* set when queued: whose parsed reply deliver reads */
    /* results */
    int result;      /* 1 or 0 */
    wv_buf *value;   /* MC_CMD_GET: where a hit's value goes (may be NULL) */
    uint32_t flags;  /* MC_CMD_GET */
    uint64_t cas;    /* MC_CMD_GET */
    uint64_t number; /* MC_CMD_INCR */
    bool meta_reply; /* the probe: the server answered MN (else ERROR) */
    /* a multi-get: the item of each reply, in order; an error reply of one
     * key goes in its item and here (the first), not in req */
    wv_memcache_item **items;
    int item_rc;
    char item_msg[MEMCACHE_MSG];
};

struct mc_conn {
    wv_mux *mux;
    mc_server *server;
    bool meta;        /* speaks meta commands (the server answered mn) */
    bool out_of_step; /* a reply did not fit its request: broken before reuse */
    size_t max_value;
    mc_reply reply; /* the reply the frame function just cut (a get's first line) */
};

struct mc_server {
    char *host; /* as listed: a name, an address, or a Unix socket's path */
    int port;   /* 0 for a Unix socket */
    uint32_t weight;
    char *name;  /* "host:port", "[v6]:port" or "/path" */
    char *label; /* "memcached " + name: what every message starts with */

    mc_conn *conn; /* NULL, or possibly broken: replaced on demand */
    bool dialing;
    wv_event dialed;
    uint64_t dial_seq; /* dials finished */
    int dial_rc;       /* the last dial's failure for its waiters, 0 when none */
    char dial_msg[MEMCACHE_MSG];

    int failures;       /* in a row */
    int64_t dead_until; /* wv_now() clock; 0 when it is not dead */
    char last_failure[MEMCACHE_MSG];

    uint64_t requests, writes, dials, deaths; /* counters (the mux adds to the first two) */
};

struct wv_memcache {
    int shard;
    mc_server *servers;
    int n;
    ketama_server *kservers; /* the servers as ketama reads them */
    ketama ring;
    ketama_mode mode;
    bool *live;         /* which servers the ring was built with (eject_dead) */
    int64_t ring_check; /* eject_dead: look at the dead again from this time */
    bool ring_dirty;

    int64_t connect_timeout_ms;
    int64_t response_timeout_ms; /* 0: never */
    size_t max_value;
    bool autopipeline;
    int failure_limit;
    int64_t dead_retry_ms;
    bool eject_dead;
    bool classic;

    bool closed;
    int inside; /* fibers inside a call; the memory goes when 0 after close */
};

/* ------------------------------------------------------------ conn.c */

/* Dial server s of m and find its dialect (mn, unless m->classic), within
 * connect_timeout_ms and the fiber's deadline: 0 with *out (shared, its
 * reader running), or an error with wv_errmsg naming the server. */
int mc_conn_open(wv_memcache *m, mc_server *s, mc_conn **out);

/* Encode cmd into c's output and queue op for its reply, never suspending:
 * 0, or an error (the bytes are taken back). */
int mc_conn_queue(mc_conn *c, mc_op *op, const mc_cmd *cmd);

/* Queue op for one reply to each of the n keys' gets (items[i]->key). */
int mc_conn_queue_gets(mc_conn *c, mc_op *op, wv_memcache_item **items, int n);

/* Close and free (what waits in it fails with -ESHUTDOWN). NULL is ignored. */
void mc_conn_close(mc_conn *c);

static inline bool mc_conn_ok(const mc_conn *c)
{
    return !wv_mux_broken(c->mux);
}

/* Is c fit for another request? One out of step is broken now (the mux
 * cannot be broken from inside its delivery, where that was found). */
bool mc_conn_usable(mc_conn *c);

#pragma GCC visibility pop

#endif
