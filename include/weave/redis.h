/*
 * weave's Redis client: commands from many fibers auto-pipelined on one
 * connection per shard, typed helpers for the common commands, pipelines
 * and transactions, pub/sub, blocking commands, Lua scripts, TLS, ACL
 * users, reconnects, and Redis Cluster.
 *
 *     wv_redis *r;
 *     int rc = wv_redis_open("redis://127.0.0.1:6379/0", NULL, &r);
 *     rc = wv_redis_set(r, WV_STR("greeting"), WV_STR("hello"), NULL);
 *     wv_buf v = {0};
 *     rc = wv_redis_get(r, WV_STR("greeting"), &v);   // 1: found, v holds "hello"
 *     wv_redis_reply *rep;
 *     rc = wv_redis_cmd(r, &rep, "HINCRBY", "visits", "home", "1");
 *     if (rc == 0)
 *         printf("%lld\n", rep->integer);
 *     wv_redis_reply_free(rep);
 *     wv_buf_free(&v);
 *     wv_redis_close(r);
 *
 * The model.
 *
 *  - A client (wv_redis) belongs to the shard that opened it; open one per
 *    shard (wv_app_redis does). Any number of its fibers may use it at
 *    once: their commands share one connection (opts.connections), and
 *    what the fibers of a shard issue during one pass of its loop leaves in
 *    one write (auto-pipelining, as ioredis does it); the replies are
 *    handed back in order, each to the fiber that asked. 1,000 fibers cost
 *    a handful of system calls, not 1,000 round trips.
 *  - What cannot share a connection gets its own from a pool (pool_size):
 *    blocking commands (BLPOP, BRPOP, BLMOVE, BZPOPMIN, XREAD ... BLOCK,
 *    WAIT ...: recognised by name, also through wv_redis_cmd), WATCH
 *    transactions, pub/sub, and what you take with wv_redis_acquire.
 *  - Every call honours the fiber's deadline and cancellation. A command
 *    cut short on the shared connection is abandoned: it may still run on
 *    the server, its reply is read and dropped. On a dedicated connection
 *    the connection is closed instead (its state is unknown).
 *  - When the server goes away, every command in flight fails with
 *    -ECONNRESET (it may or may not have run: never retried for you), and
 *    the next command dials again; while dialing fails, commands fail at
 *    once with the dial's error and a new dial is tried after a backoff
 *    (50 ms doubling to 2 s).
 *  - The connection speaks RESP3 (HELLO 3) when the server does, RESP2
 *    otherwise (?protocol=2 or 3 in the URL forces one). Replies map to
 *    the same wv_redis_reply types either way, except that RESP3 answers
 *    some commands with a map, a set, a double or a boolean where RESP2
 *    has an array, an integer or a string (HGETALL, SMEMBERS, ZSCORE): the
 *    typed helpers accept both.
 *
 * URLs: redis://[[user]:password@]host[:port][/db][?options],
 * rediss://... for TLS, and a Unix socket as unix:///path?db=N or
 * redis://%2Fpath%2Fto.sock/N. The password (and an ACL user) go to HELLO
 * AUTH (AUTH on RESP2), db to SELECT. Query options: protocol=2|3,
 * client_name=NAME. The URL's password is never printed.
 *
 * Errors are negative errno values with the detail in wv_errmsg():
 *
 *   -EIO          the server answered with an error; wv_errmsg() holds its
 *                 words ("WRONGTYPE Operation against a key holding the
 *                 wrong kind of value")
 *   -EPROTO       a reply of the wrong type for a typed helper ("GET: the
 *                 server answered an integer, not a bulk string"), or
 *                 bytes that are not RESP (the connection is dropped)
 *   -EMSGSIZE     a reply larger than opts.max_reply (the connection is dropped)
 *   -ECONNRESET   the connection broke with the command in flight
 *   -ECONNREFUSED, -EHOSTUNREACH, -EACCES (AUTH refused)  while connecting
 *   -ETIMEDOUT    the fiber's deadline passed, or no reply came for
 *                 opts.response_timeout_ms (the connection is dropped)
 *   -ECANCELED    the fiber was cancelled
 *   -EINVAL       bad arguments, or a command this API routes elsewhere
 *                 (SUBSCRIBE, MONITOR on the shared connection)
 *   -ENOMEM       out of memory, or a wv_buf's limit
 *   -EXDEV        a client used from another shard than its own
 */
#ifndef WEAVE_REDIS_H
#define WEAVE_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/buf.h"
#include "weave/net.h"
#include "weave/rt.h"
#include "weave/str.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ================================================================= replies */

/*
 * A reply is a tree of wv_redis_reply nodes that lives in one allocation
 * with the reply's bytes: every string points into it, NUL-terminated and
 * binary-safe with its len. Both RESP2 and RESP3 replies map onto it;
 * RESP3 attributes (`|`) are read and dropped, as redis-py does.
 */
typedef enum wv_redis_type {
    WV_REDIS_NIL = 0,  /* RESP2 null bulk ($-1) or null array (*-1); RESP3 null (_) */
    WV_REDIS_STATUS,   /* simple string (+OK): str, len */
    WV_REDIS_ERROR,    /* simple (-ERR ...) or blob (!) error: str, len */
    WV_REDIS_INT,      /* integer (:): integer */
    WV_REDIS_STRING,   /* bulk string ($): str, len */
    WV_REDIS_ARRAY,    /* array (*): elem[0..len) */
    WV_REDIS_MAP,      /* map (%): elem[0..len), keys and values alternate (len = 2 x pairs) */
    WV_REDIS_SET,      /* set (~): elem[0..len) */
    WV_REDIS_DOUBLE,   /* double (,): dbl, and its text in str, len (inf, -inf, nan too) */
    WV_REDIS_BOOL,     /* boolean (#t, #f): integer is 1 or 0 */
    WV_REDIS_BIGNUM,   /* big number ((): its decimal text in str, len */
    WV_REDIS_VERBATIM, /* verbatim string (=): str, len after the "txt:" prefix; format in vfmt */
    WV_REDIS_PUSH,     /* push (>): elem[0..len); pub/sub messages and invalidations */
} wv_redis_type;

typedef struct wv_redis_reply {
    wv_redis_type type;
    char vfmt[4];                /* WV_REDIS_VERBATIM: the format ("txt", "mkd"), NUL-terminated */
    size_t len;                  /* bytes of str, or elements of elem */
    const char *str;             /* text types: NUL-terminated, may hold NUL bytes */
    long long integer;           /* WV_REDIS_INT, WV_REDIS_BOOL */
    double dbl;                  /* WV_REDIS_DOUBLE */
    struct wv_redis_reply *elem; /* aggregate types */
} wv_redis_reply;

/* Free a reply tree (the root a call gave you). NULL is ignored. */
void wv_redis_reply_free(wv_redis_reply *reply);

/* ================================================================= clients */

typedef struct wv_redis wv_redis;

typedef struct wv_redis_opts {
    int connections;            /* shared connections per client; 0 = 1 */
    int pool_size;              /* dedicated connections at most; 0 = 16 */
    bool no_autopipeline;       /* write each command at once, not once per pass */
    int64_t connect_timeout_ms; /* per dial, with the greeting; 0 = 5000 */
    /* a shared connection whose oldest command has had no reply this long
     * is dropped (its commands fail with -ETIMEDOUT); 0 = 30000, < 0 = never */
    int64_t response_timeout_ms;
    size_t max_reply;        /* bytes in one reply at most; 0 = 512 MiB (Redis's own limit) */
    wv_tls_ctx *tls;         /* rediss://: NULL = wv_tls_ctx_default() */
    const char *client_name; /* CLIENT SETNAME on every connection; NULL = none */
    bool cluster;            /* a Redis Cluster (also ?cluster=true in the URL) */
} wv_redis_opts;

/* A client on the calling shard for `url` (see above). It dials at once
 * and fails if the server cannot be reached or refuses the greeting
 * (-ECONNREFUSED, -EACCES, ...). opts may be NULL. */
int wv_redis_open(const char *url, const wv_redis_opts *opts, wv_redis **out);

/* Close the client: commands in flight fail with -ESHUTDOWN, dedicated
 * connections close as they come back. From its shard. NULL is ignored. */
void wv_redis_close(wv_redis *r);

/* What a client has done, since it was opened. */
typedef struct wv_redis_stats {
    uint64_t commands;   /* commands queued on its connections (a pipeline's each) */
    uint64_t writes;     /* sends that carried them (auto-pipelining: far fewer) */
    uint64_t reconnects; /* shared connections dialed again after one broke */
    uint64_t redirects;  /* Redis Cluster: MOVED and ASK replies followed */
    int64_t inflight;    /* commands on the shared connections waiting for a reply now */
} wv_redis_stats;

void wv_redis_stats_get(const wv_redis *r, wv_redis_stats *st);

/*
 * A handle on a dedicated connection from the client's pool, for commands
 * that change a connection's state (WATCH, MULTI/EXEC by hand, SELECT,
 * CLIENT TRACKING) or a run of commands that must not interleave with
 * other fibers'. Every call below takes it in place of the client. Give it
 * back with wv_redis_release: a pending WATCH or MULTI is undone first, a
 * connection whose state was changed (SELECT, ...) or that broke is
 * closed instead of reused. Waits for a free connection (pool_size) within
 * the fiber's deadline.
 */
int wv_redis_acquire(wv_redis *r, wv_redis **handle);
void wv_redis_release(wv_redis *handle);

/* ================================================================ commands */

/*
 * Send one command, argv[0..argc) (binary-safe), and wait for its reply.
 * 0 with *reply set (free it with wv_redis_reply_free; reply may be NULL
 * to drop it), or an error: -EIO for an error reply, with the server's
 * words in wv_errmsg() (no *reply then).
 */
int wv_redis_cmdv(wv_redis *r, wv_redis_reply **reply, int argc, const wv_str *argv);

/* The same with NUL-terminated strings: wv_redis_cmd(r, &rep, "SET", "k", "v"). */
int wv_redis_cmd_(wv_redis *r, wv_redis_reply **reply, const char *arg, ...);
#define wv_redis_cmd(r, reply, ...) wv_redis_cmd_((r), (reply), __VA_ARGS__, (const char *)NULL)

/* PING: 0 when the server answers. */
int wv_redis_ping(wv_redis *r);

/* ================================================================ helpers */

/* GET: 1 with the value appended to *value, 0 when the key does not
 * exist (value untouched). */
int wv_redis_get(wv_redis *r, wv_str key, wv_buf *value);

typedef struct wv_redis_set_opts {
    int64_t ttl_ms; /* PX: expire after this long; 0 = no expiry */
    bool nx;        /* only if the key does not exist */
    bool xx;        /* only if it exists */
    bool keep_ttl;  /* KEEPTTL: keep the key's current expiry */
} wv_redis_set_opts;

/* SET: 1 when the value was set, 0 when nx or xx stopped it. opts may be
 * NULL. */
int wv_redis_set(wv_redis *r, wv_str key, wv_str value, const wv_redis_set_opts *opts);

/* MGET: an array reply of n elements, each a WV_REDIS_STRING or
 * WV_REDIS_NIL. */
int wv_redis_mget(wv_redis *r, int n, const wv_str *keys, wv_redis_reply **reply);

/* DEL: the number of keys removed (>= 0), or an error. */
int64_t wv_redis_del(wv_redis *r, int n, const wv_str *keys);

/* PEXPIRE: 1 when the timeout was set, 0 when the key does not exist. */
int wv_redis_expire(wv_redis *r, wv_str key, int64_t ttl_ms);

/* INCRBY: the new value in *value. */
int wv_redis_incrby(wv_redis *r, wv_str key, int64_t delta, int64_t *value);

/* HSET of one field: 1 when the field is new, 0 when it was updated. */
int wv_redis_hset(wv_redis *r, wv_str key, wv_str field, wv_str value);

/* HGET: as wv_redis_get. */
int wv_redis_hget(wv_redis *r, wv_str key, wv_str field, wv_buf *value);

/* LPUSH of n values: the list's length after, in *length (may be NULL). */
int wv_redis_lpush(wv_redis *r, wv_str key, int n, const wv_str *values, int64_t *length);

/* BRPOP on the first non-empty list of keys, waiting up to timeout_ms
 * (0 = as long as the fiber's deadline allows), on a dedicated
 * connection: 1 with the list's name appended to *key_out (may be NULL)
 * and the value to *value, 0 when the timeout passed. */
int wv_redis_brpop(wv_redis *r, int n, const wv_str *keys, int64_t timeout_ms, wv_buf *key_out,
                   wv_buf *value);

/* ZADD of one member: 1 when it is new, 0 when its score was updated. */
int wv_redis_zadd(wv_redis *r, wv_str key, double score, wv_str member);

/* ZRANGE key start stop [WITHSCORES]: an array reply of members. With
 * scores, RESP3 gives an array of [member, score] pairs (the score a
 * double), RESP2 one flat array: member, score, member, score, ... (the
 * score a string). */
int wv_redis_zrange(wv_redis *r, wv_str key, int64_t start, int64_t stop, bool with_scores,
                    wv_redis_reply **reply);

/*
 * One step of SCAN: start with *cursor = 0, call until it is 0 again.
 * Each call gives an array reply of keys (possibly empty) in *keys.
 * match (a glob, NULL = all) and count (a hint, 0 = the server's) as
 * SCAN's MATCH and COUNT.
 */
int wv_redis_scan(wv_redis *r, uint64_t *cursor, const char *match, int count,
                  wv_redis_reply **keys);

/* ============================================ pipelines and transactions */

/*
 * Several commands sent in one piece, their replies read in order: fewer
 * round trips for one fiber (auto-pipelining already batches many fibers'
 * commands). With transaction = true they run as MULTI ... EXEC, atomically;
 * WATCH keys first on a handle (wv_redis_acquire) for optimistic locking:
 *
 *     wv_redis *h;
 *     wv_redis_acquire(r, &h);
 *     wv_redis_cmd(h, NULL, "WATCH", "balance");
 *     ... read balance with wv_redis_get(h, ...) ...
 *     wv_redis_pipe *tx;
 *     wv_redis_pipe_new(h, true, &tx);
 *     wv_redis_pipe_add(tx, "SET", "balance", "90");
 *     rc = wv_redis_pipe_exec(tx);    // -EAGAIN: balance changed, try again
 *     wv_redis_pipe_free(tx);
 *     wv_redis_release(h);
 *
 * A pipeline on the shared connection takes no blocking or state-changing
 * command (-EINVAL); on a handle it takes any.
 */
typedef struct wv_redis_pipe wv_redis_pipe;

/* A pipeline (or transaction) for client or handle r, used from r's shard. */
int wv_redis_pipe_new(wv_redis *r, bool transaction, wv_redis_pipe **out);

/* Add a command (binary-safe; copied). -EINVAL for a command the pipe cannot take. */
int wv_redis_pipe_addv(wv_redis_pipe *p, int argc, const wv_str *argv);
int wv_redis_pipe_add_(wv_redis_pipe *p, const char *arg, ...);
#define wv_redis_pipe_add(p, ...) wv_redis_pipe_add_((p), __VA_ARGS__, (const char *)NULL)

/*
 * Send every command and read every reply. 0 when none failed; -EIO when
 * one or more got an error reply (wv_errmsg: "command 2 (INCR): ERR value
 * is not an integer or out of range"), the replies still readable;
 * connection errors as any command. A transaction also gives -EAGAIN when
 * a WATCHed key changed (nothing ran) and -EIO when a command was refused
 * before EXEC (nothing ran). The pipe keeps its commands: exec may run
 * them again.
 */
int wv_redis_pipe_exec(wv_redis_pipe *p);

/* Commands added, and the reply of command i (0-based) after exec: owned
 * by the pipe, valid until the next add, exec, reset or free; NULL before
 * exec or out of range. Error replies are WV_REDIS_ERROR nodes. */
int wv_redis_pipe_count(const wv_redis_pipe *p);
const wv_redis_reply *wv_redis_pipe_reply(const wv_redis_pipe *p, int i);

/* Forget the commands and replies (keep the memory); free it all. */
void wv_redis_pipe_reset(wv_redis_pipe *p);
void wv_redis_pipe_free(wv_redis_pipe *p);

/* ================================================================ pub/sub */

/*
 * A subscriber: a connection of its own that receives what is published
 * to its channels and patterns. Messages queue in a channel (1,024 deep)
 * that any fiber of the shard receives from, with a deadline or in
 * wv_chan_select:
 *
 *     wv_redis_sub *sub;
 *     wv_redis_subscribe(r, &sub);
 *     wv_redis_sub_subscribe(sub, 1, (wv_str[]){WV_STR("news")});
 *     wv_redis_msg *m;
 *     while (wv_redis_sub_recv(sub, &m, wv_after_ms(5000)) == 0) {
 *         printf("%.*s: %.*s\n", (int)m->channel.n, m->channel.p,
 *                (int)m->payload.n, m->payload.p);
 *         wv_redis_msg_free(m);
 *     }
 *     wv_redis_sub_close(sub);
 *
 * When the connection breaks, the subscriber dials again (with a backoff)
 * and subscribes to everything it had; what was published in between is
 * lost, as pub/sub always loses it. A receiver that falls behind fills the
 * queue, which stops reading, so the server buffers until its pub/sub
 * output limit drops the connection (then: a reconnect).
 */
typedef struct wv_redis_sub wv_redis_sub;

typedef struct wv_redis_msg {
    wv_str channel; /* where it was published */
    wv_str pattern; /* the pattern it matched (PSUBSCRIBE), else empty */
    wv_str payload;
    bool sharded; /* from SSUBSCRIBE (Redis Cluster's sharded pub/sub) */
    void *mem_;   /* private */
} wv_redis_msg;

/* A subscriber for client r (it dials a connection now). Close it before
 * the client. */
int wv_redis_subscribe(wv_redis *r, wv_redis_sub **out);

/* Subscribe to n channels (or patterns), returning once the server has
 * confirmed; messages may arrive from then on. */
int wv_redis_sub_subscribe(wv_redis_sub *s, int n, const wv_str *channels);
int wv_redis_sub_psubscribe(wv_redis_sub *s, int n, const wv_str *patterns);

/* Unsubscribe from n channels (patterns); n = 0: from all of them. */
int wv_redis_sub_unsubscribe(wv_redis_sub *s, int n, const wv_str *channels);
int wv_redis_sub_punsubscribe(wv_redis_sub *s, int n, const wv_str *patterns);

/* The next message (free it with wv_redis_msg_free), waiting until `at`
 * (WV_NEVER: the fiber's deadline alone). -ETIMEDOUT, -ECANCELED, -EPIPE
 * once the subscriber is closed. */
int wv_redis_sub_recv(wv_redis_sub *s, wv_redis_msg **msg, int64_t at);
void wv_redis_msg_free(wv_redis_msg *m);

/* The queue itself, for wv_chan_select: its elements are wv_redis_msg *. */
wv_chan *wv_redis_sub_chan(wv_redis_sub *s);

/* How many times the subscriber reconnected. */
uint64_t wv_redis_sub_reconnects(const wv_redis_sub *s);

/* Unsubscribe, close the connection, free the messages still queued. */
void wv_redis_sub_close(wv_redis_sub *s);

/* ================================================================ scripts */

/*
 * A Lua script, run by its SHA1 (EVALSHA) so its text crosses the network
 * once per server; a server that does not have it (NOSCRIPT: restarted,
 * SCRIPT FLUSH) gets the text by EVAL, which also loads it. A script is
 * immutable: make it once and use it from every shard.
 */
typedef struct wv_redis_script wv_redis_script;

int wv_redis_script_new(const char *lua, wv_redis_script **out);
void wv_redis_script_free(wv_redis_script *s);

/* The script's SHA1 in hex (40 characters). */
const char *wv_redis_script_sha(const wv_redis_script *s);

/* Run it with KEYS[1..nkeys] and ARGV[1..nargs]: as wv_redis_cmdv (-EIO
 * with the script's error). */
int wv_redis_eval(wv_redis *r, const wv_redis_script *s, int nkeys, const wv_str *keys, int nargs,
                  const wv_str *args, wv_redis_reply **reply);

#ifdef __cplusplus
}
#endif

#endif
