/*
 * weave's memcached client: keys spread over several servers by
 * libmemcached's consistent hashing, every server reached over one shared,
 * auto-pipelined connection per shard, the meta protocol where the server
 * has it, and a dead server's keys failing fast instead of missing.
 *
 *     wv_memcache *mc;
 *     int rc = wv_memcache_open("10.0.0.1:11211,10.0.0.2:11211", NULL, &mc);
 *     rc = wv_memcache_set(mc, WV_STR("greeting"), WV_STR("hello"),
 *                          &(wv_memcache_set_opts){.ttl_s = 60});    // 1: stored
 *     wv_buf v = {0};
 *     rc = wv_memcache_get(mc, WV_STR("greeting"), &v, NULL, NULL); // 1: hit, v holds "hello"
 *     wv_buf_free(&v);
 *     wv_memcache_close(mc);
 *
 * The model.
 *
 *  - A client (wv_memcache) belongs to the shard that opened it; open one
 *    per shard, as wv_redis. Any number of its fibers may use it at once.
 *    Each server gets one connection, dialed on first use; the requests the
 *    shard's fibers make during one pass of its loop leave in one write per
 *    server (auto-pipelining), and the replies come back in order, each to
 *    the fiber that asked. Every request is one command with exactly one
 *    reply (no quiet mode, no noreply), so a reply can never go astray.
 *  - A key lives on one server, chosen as libmemcached chooses it (see
 *    wv_memcache_distribution): pylibmc, php-memcached and weave agree on
 *    where every key is, so they can share a cache.
 *  - Every call honours the fiber's deadline and cancellation. A request
 *    cut short is abandoned: it may still run on the server; its reply is
 *    read and dropped.
 *  - A timeout or a dead server is an error, never a miss. A server is
 *    marked dead after failure_limit failures in a row (a dial refused or
 *    timed out, a connection broken, no reply within response_timeout_ms,
 *    bytes that are not memcached's); from then its keys fail at once with
 *    -EHOSTDOWN until dead_retry_ms have passed, when the next request for
 *    it dials again (one dial, which the others wait for). Its keys do not
 *    move to other servers (a get there would miss, a set there would be
 *    stale once it returns) unless opts.eject_dead asks for it. The other
 *    servers' keys work throughout. A reply of any kind to a request
 *    resets the count (the `mn` probe's does not: a server that answers
 *    it and then nothing still counts up to dead).
 *  - Requests in flight on a connection that breaks fail with its reason
 *    (-ECONNRESET, -ETIMEDOUT, -EPROTO; they may or may not have run, and
 *    are never retried for you); the next request dials again.
 *  - The protocol: on every new connection the client sends `mn`; a server
 *    that answers MN (memcached 1.6 and later) is spoken to with the meta
 *    commands (mg, ms, md, ma), one that answers ERROR with the classic
 *    ones (get, set, add, replace, append, prepend, cas, delete, incr,
 *    decr, touch). Both give the same results through this API.
 *    opts.classic skips the probe (a proxy that closes the connection on a
 *    command it does not know).
 *  - A memcached connection has no state to set up, so it has no pool:
 *    nothing here blocks a connection for one fiber.
 *
 * Servers: "host:port,host:port:weight,...": a name or an IPv4 address, an
 * IPv6 address in brackets ("[::1]:11211"), a port (11211 when left out),
 * an optional weight (a positive integer; see the distributions), or
 * "/path/to/memcached.sock" for a Unix socket (its placement may differ
 * from libmemcached's). A leading "memcached://" is accepted. Whitespace
 * around entries is ignored. The order matters, as in libmemcached: it
 * breaks ties in the continuum and gives each server its index.
 *
 * Keys are 1..250 bytes with no control byte, space or DEL (UTF-8 is
 * fine): memcached's own rule, checked before anything is sent.
 *
 * Errors are negative errno values with the detail in wv_errmsg(), which
 * names the server:
 *
 *   -EINVAL       a key memcached would refuse (empty, over 250 bytes, a
 *                 space or control byte), bad options or a bad server
 *                 list; or the server's CLIENT_ERROR, with its words
 *                 ("CLIENT_ERROR cannot increment or decrement non-numeric
 *                 value")
 *   -EIO          the server's SERVER_ERROR or ERROR, with its words
 *                 ("SERVER_ERROR object too large for cache")
 *   -EMSGSIZE     a value over opts.max_value, refused before sending; or
 *                 a reply carrying one (the connection is dropped)
 *   -EHOSTDOWN    the key's server is marked dead: wv_errmsg says after
 *                 how many failures, the last one's reason, and in how
 *                 long it is tried again
 *   -ECONNREFUSED, -EHOSTUNREACH, ...  dialing the key's server failed
 *   -ECONNRESET   the connection broke with the request in flight
 *   -ETIMEDOUT    the fiber's deadline passed, or no reply came within
 *                 opts.response_timeout_ms (the connection is dropped), or
 *                 the dial took longer than opts.connect_timeout_ms
 *   -EPROTO       bytes that are not memcached's protocol (the connection
 *                 is dropped)
 *   -ECANCELED    the fiber was cancelled
 *   -ENOMEM       out of memory, or the caller's wv_buf limit
 *   -ESHUTDOWN    the client was closed
 *   -EXDEV        a client used from another shard than its own
 *   -EPERM        wv_memcache_open outside a fiber
 *
 * Ownership: the client owns its connections and copies the server list;
 * keys and values are only read during a call; values come back appended
 * to the caller's wv_buf, which the caller frees.
 */
#ifndef WEAVE_MEMCACHE_H
#define WEAVE_MEMCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/buf.h"
#include "weave/rt.h"
#include "weave/str.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_memcache wv_memcache;

/*
 * Which server a key lives on: ketama consistent hashing as libmemcached
 * 1.x computes it, so adding or removing a server moves about 1/n of the
 * keys. Not pymemcache's HashClient: it uses rendezvous hashing (murmur3),
 * which matches none of these.
 */
typedef enum wv_memcache_distribution {
    /* libmemcached's MEMCACHED_BEHAVIOR_KETAMA, which is pylibmc's
     * behaviors={"ketama": True} and libmemcached's "consistent ketama"
     * distribution: 100 points per server, the key hashed with
     * libmemcached's default hash (one-at-a-time); with a weight above 1
     * on any server, the weighted continuum of the next one. */
    WV_MEMCACHE_KETAMA = 0,
    /* MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, pylibmc's {"ketama_weighted":
     * True}: the classic ketama of last.fm's libketama, 160 points per
     * server (scaled by weight) and MD5 keys. */
    WV_MEMCACHE_KETAMA_WEIGHTED_MD5,
    /* MEMCACHED_BEHAVIOR_KETAMA with MEMCACHED_BEHAVIOR_HASH = MD5,
     * pylibmc's {"ketama": True, "hash": "md5"}. */
    WV_MEMCACHE_KETAMA_MD5,
} wv_memcache_distribution;

typedef struct wv_memcache_opts {
    int64_t connect_timeout_ms; /* a dial and its `mn` probe; 0 = 2000 */
    /* a connection whose oldest request has had no reply this long is
     * dropped (its requests fail with -ETIMEDOUT); 0 = 5000, < 0 = never */
    int64_t response_timeout_ms;
    size_t max_value;                      /* bytes of one value, sent or received; 0 = 1 MiB */
    bool no_autopipeline;                  /* write each request at once, not once per pass */
    int failure_limit;                     /* failures in a row that mark a server dead; 0 = 2 */
    int64_t dead_retry_ms;                 /* a dead server is tried again after this; 0 = 5000 */
    wv_memcache_distribution distribution; /* 0 = WV_MEMCACHE_KETAMA */
    /* move a dead server's keys to the live servers (libmemcached's
     * MEMCACHED_BEHAVIOR_REMOVE_FAILED_SERVERS, pylibmc's "remove_failed"),
     * and back once it is retried; off: they fail with -EHOSTDOWN */
    bool eject_dead;
    bool classic; /* speak only the classic commands: no `mn` probe */
} wv_memcache_opts;

/* A client on the calling shard for `servers` (see above). It dials
 * nothing yet: a server that is down fails only its own keys, later
 * (wv_memcache_ping checks them all). opts may be NULL. -EINVAL with
 * wv_errmsg naming the bad entry, -EPERM outside a fiber, -ENOMEM. */
int wv_memcache_open(const char *servers, const wv_memcache_opts *opts, wv_memcache **out);

/* Close the client: requests in flight fail with -ESHUTDOWN. From its
 * shard. NULL is ignored. */
void wv_memcache_close(wv_memcache *m);

/* ============================================================== commands */

/* Get one key: 1 on a hit, with the value appended to *value and its
 * client flags and CAS (for wv_memcache_set's compare_cas) stored; 0 on a
 * miss (nothing touched). value, flags and cas may each be NULL. A value
 * the buffer cannot take (its limit) is -ENOMEM; the connection is fine. */
int wv_memcache_get(wv_memcache *m, wv_str key, wv_buf *value, uint32_t *flags, uint64_t *cas);

/* One key of a multi-get: the caller fills key and zeroes the rest. */
typedef struct wv_memcache_item {
    wv_str key;     /* in: read during the call */
    int rc;         /* out: 1 hit, 0 miss, or this key's error */
    wv_buf value;   /* out: a hit's value appended; the caller frees it */
    uint32_t flags; /* out: a hit's client flags */
    uint64_t cas;   /* out: a hit's CAS */
} wv_memcache_item;

/* Get n keys at once: the keys of each server leave together, every
 * server is asked in parallel, and the call returns once all have
 * answered. Returns the number of hits, or, if any key failed, the first
 * key's error (wv_errmsg is its); every item's rc says how its key fared,
 * so the hits of the live servers are there either way. An invalid key
 * fails the whole call with -EINVAL before anything is sent. */
int wv_memcache_get_multi(wv_memcache *m, wv_memcache_item *items, size_t n);

typedef enum wv_memcache_mode {
    WV_MEMCACHE_SET = 0, /* store */
    WV_MEMCACHE_ADD,     /* only if the key is absent */
    WV_MEMCACHE_REPLACE, /* only if the key is present */
    WV_MEMCACHE_APPEND,  /* add to the end of a present value (keeps its flags and TTL) */
    WV_MEMCACHE_PREPEND, /* add to the start of a present value (likewise) */
} wv_memcache_mode;

typedef struct wv_memcache_set_opts {
    int64_t ttl_s;  /* expire after this many seconds (over 30 days: a Unix
                     * time; negative: at once); 0 = never */
    uint32_t flags; /* client flags stored with the value (pymemcache and
                     * pylibmc keep their serialisation type here) */
    wv_memcache_mode mode;
    /* store only if the item's CAS is still this one (from a get): with
     * WV_MEMCACHE_SET or WV_MEMCACHE_REPLACE only; 0 = no check */
    uint64_t compare_cas;
} wv_memcache_set_opts;

/* Store a value: 1 when stored, 0 when not (add of a present key,
 * replace/append/prepend of an absent one, compare_cas of an item changed
 * or gone since). -EMSGSIZE for a value over max_value (nothing sent).
 * opts may be NULL. */
int wv_memcache_set(wv_memcache *m, wv_str key, wv_str value, const wv_memcache_set_opts *opts);

/* Delete: 1 when the key was there, 0 when not. */
int wv_memcache_delete(wv_memcache *m, wv_str key);

/* Add delta to the decimal number stored at key (a negative delta
 * subtracts, stopping at 0; adding wraps at 2^64): 1 with the new value in
 * *value (may be NULL), 0 when the key does not exist (it is not
 * created). -EINVAL (CLIENT_ERROR) when the value is not a number. When
 * the number gets shorter memcached may pad the stored text with spaces
 * ("0 " after 10 - 10): read counters back through this call. */
int wv_memcache_incr(wv_memcache *m, wv_str key, int64_t delta, uint64_t *value);

/* Set a key's TTL without fetching it (ttl_s as in wv_memcache_set_opts):
 * 1 when the key exists, 0 when not. */
int wv_memcache_touch(wv_memcache *m, wv_str key, int64_t ttl_s);

/* Ask every server for a reply (`mn`, or `version` on classic ones), all
 * at once: 0 when each answered, else the first failure (a dead server:
 * -EHOSTDOWN). For readiness checks. */
int wv_memcache_ping(wv_memcache *m);

/* ================================================================ servers */

/* How many servers the list named. */
int wv_memcache_servers(const wv_memcache *m);

/* The index of the server `key` lives on now (with eject_dead, a dead
 * server's keys are elsewhere), or -EINVAL for an invalid key. */
int wv_memcache_server_of(wv_memcache *m, wv_str key);

/* Server i's name as the list gave it, "host:port" or "/path" (the port
 * always shown); NULL when i is out of range. Owned by the client. */
const char *wv_memcache_server_name(const wv_memcache *m, int i);

typedef struct wv_memcache_server_stats {
    bool dead;           /* marked dead now: its keys fail at once */
    bool meta;           /* its connection speaks the meta protocol */
    bool connected;      /* a working connection is open */
    int failures;        /* failures in a row now (0 after a request's reply) */
    int64_t retry_in_ms; /* dead: how long until it is tried again */
    uint64_t requests;   /* requests sent to it (each dial's `mn` probe too) */
    uint64_t writes;     /* sends that carried them (auto-pipelining: far fewer) */
    uint64_t dials;      /* connections dialed (the first included) */
    uint64_t deaths;     /* times it was marked dead */
    int64_t inflight;    /* requests waiting for its replies now */
} wv_memcache_server_stats;

/* Server i's state and counters since the client opened: 0, or -EINVAL
 * when i is out of range. */
int wv_memcache_server_stats_get(const wv_memcache *m, int i, wv_memcache_server_stats *st);

/* The sums over every server. */
typedef struct wv_memcache_stats {
    uint64_t requests, writes, dials, deaths;
    int64_t inflight;
    int servers, dead; /* servers in the list, marked dead now */
} wv_memcache_stats;

void wv_memcache_stats_get(const wv_memcache *m, wv_memcache_stats *st);

#ifdef __cplusplus
}
#endif

#endif
