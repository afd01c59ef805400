/*
 * weave rate limiting: a middleware that lets each client make `rate`
 * requests per second with bursts of up to `burst`, and answers the rest
 * 429 Too Many Requests (docs/ratelimit.md).
 *
 *     wv_router *api = wv_router_group(r, "/api");
 *     wv_ratelimit(api, &(wv_ratelimit_opts){.name = "api", .rate = 10, .burst = 20});
 *     wv_get(api, "/items", list_items);       // limited; routes outside /api are not
 *
 * The algorithm is a token bucket: a client's bucket holds at most `burst`
 * tokens, gains `rate` tokens per second, and each request takes one; a
 * request that finds the bucket empty is refused and takes nothing. Each
 * bucket is kept as one timestamp (GCRA's "theoretical arrival time"), so
 * fractional rates (0.5 per second, 1 per minute) are exact, and a clock
 * that steps back never hands out tokens: the bucket is only ever as full
 * as the later of the two readings allows.
 *
 * Which client: the key of a request is, by `key`:
 *
 *   WV_RATELIMIT_KEY_PEER    the peer's address, without its port
 *                            (wv_req_peer; the default). With
 *                            forwarded_hops > 0, the address that many
 *                            entries from the right of X-Forwarded-For,
 *                            the one the outermost trusted proxy saw;
 *                            see forwarded_hops for the spoofing risk.
 *   WV_RATELIMIT_KEY_HEADER  the value of a request header (an API key in
 *                            "X-API-Key"). A request without the header
 *                            is limited by its address instead.
 *   WV_RATELIMIT_KEY_FN      whatever key_fn returns; an empty key exempts
 *                            the request (health checks, internal calls).
 *
 * Where the buckets live:
 *
 *  - In the process (the default): one table of `capacity` buckets that
 *    every shard shares, so a client's limit is the same however
 *    SO_REUSEPORT spreads its connections over the shards. The table is
 *    striped into cache-line sets with a spinlock each, held for a few
 *    dozen instructions (never across a suspension); memory is fixed at
 *    creation (128 bytes per 7 keys, about 1.2 MiB for the default
 *    65,536), a request allocates nothing and costs O(1). When a set is
 *    full, a key whose bucket has refilled is forgotten first (that loses
 *    nothing: a full bucket is what a new key gets), else the one closest
 *    to full (it gets its burst back early; counted in
 *    weave_ratelimit_evictions_total{limiter}: raise capacity if it grows).
 *  - In Redis, when `redis` or `redis_url` is given: every process that
 *    names the same Redis, limiter name and key shares one bucket. One Lua
 *    script (EVALSHA) reads and updates it atomically on Redis's own clock
 *    (TIME), so the servers' clocks need not agree; each bucket is a key
 *    "<redis_prefix><name>:<key>" holding one integer, which expires once
 *    its bucket would be full again. A key from a header or key_fn goes
 *    there hashed (SHA-256), never as the secret it may be.
 *
 * When Redis fails (down, slow past redis_timeout_ms, an error reply) the
 * request is let through by default (fail open), counted as
 * result="error" and logged at most once per 10 seconds per limiter; with
 * fail_closed it is answered 503 with Retry-After: 1 instead.
 *
 * Answers. A request over its limit gets 429 with
 *     Retry-After: <seconds until a token is back, rounded up, >= 1>
 *     RateLimit-Policy: "<name>";q=<burst>;w=<seconds to refill a whole bucket>
 *     RateLimit: "<name>";r=0;t=<the same seconds as Retry-After>
 *     {"detail":"Too Many Requests"}
 * and the handler does not run. An allowed request goes on, its response
 * carrying RateLimit-Policy and RateLimit with r = the tokens left and t =
 * the seconds until the next one is added (rounded up): within t seconds
 * the client can use no more than r. These are the fields of
 * draft-ietf-httpapi-ratelimit-headers-11; `headers` chooses the older
 * RateLimit-Limit / -Remaining / -Reset triple instead, both, or none
 * (Retry-After is always sent on a 429).
 *
 * Metrics (the default registry): weave_ratelimit_requests_total{limiter,
 * result="allowed|limited|error"}.
 *
 * Threading: wv_ratelimit is called while the router is being built (before
 * serving), from any thread. The middleware runs on every shard; the
 * shared table and the Redis clients are safe for that.
 */
#ifndef WEAVE_RATELIMIT_H
#define WEAVE_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/http.h"
#include "weave/redis.h"
#include "weave/str.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum wv_ratelimit_key {
    WV_RATELIMIT_KEY_PEER = 0,
    WV_RATELIMIT_KEY_HEADER,
    WV_RATELIMIT_KEY_FN,
} wv_ratelimit_key;

typedef enum wv_ratelimit_headers {
    WV_RATELIMIT_HEADERS_DRAFT = 0, /* RateLimit-Policy and RateLimit (the current draft) */
    WV_RATELIMIT_HEADERS_LEGACY,    /* RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset */
    WV_RATELIMIT_HEADERS_BOTH,
    WV_RATELIMIT_HEADERS_NONE, /* only Retry-After on a 429 */
} wv_ratelimit_headers;

typedef struct wv_ratelimit_opts {
    /* The limiter's name: the policy in the headers, the metric's
     * "limiter" label and part of the Redis key. 1 to 64 of [A-Za-z0-9_.-];
     * NULL = "default". Two limiters sharing a Redis need different names. */
    const char *name;
    double rate;   /* tokens added per second, > 0 (0.5: one every 2 s) */
    int64_t burst; /* the bucket's size, 1 to 1,000,000; 0 = rate rounded up */

    wv_ratelimit_key key;
    const char *header; /* WV_RATELIMIT_KEY_HEADER: its name ("X-API-Key") */
    /* WV_RATELIMIT_KEY_FN: the key of a request, valid until it returns to
     * the middleware (a slice of the request, or memory from
     * wv_req_alloc); .n == 0 exempts the request. Runs on the request's
     * fiber; it must not suspend. */
    wv_str (*key_fn)(wv_req *req, void *arg);
    void *key_arg;
    /*
     * WV_RATELIMIT_KEY_PEER behind reverse proxies: the number of proxies
     * in front of the server that append the address they saw to
     * X-Forwarded-For (0, the default: the header is ignored). With 1,
     * the key is the header's last address, the one the proxy saw; with
     * 2, the one before it, and so on. A request whose header has fewer
     * addresses, or one that is not an IPv4 or IPv6 address, is keyed by
     * its peer. The risk: anybody who can reach the server without going
     * through those proxies writes the header themselves and picks their
     * key at will (a fresh bucket per request, or a victim's address), so
     * set this only when the server accepts connections from the proxies
     * alone, and never higher than the number of proxies: the entries to
     * the left of theirs are whatever the client sent.
     */
    int forwarded_hops;

    /* In the process: keys tracked at most; 0 = 65,536 (rounded up to a
     * multiple of 7, the keys of one set); at most 2^28. */
    size_t capacity;

    /* In Redis: the calling shard's client for a request (a wv_redis
     * belongs to one shard: wv_req_client(req, "redis") of a wv_app
     * client, say), or NULL for this request's error path. */
    wv_redis *(*redis)(wv_req *req, void *arg);
    void *redis_arg;
    /* ...or a URL: the limiter opens a client per shard at that shard's
     * first request (a failed open is tried again a second later, the
     * requests in between taking the error path) and closes it when the
     * runtime ends. Not both. */
    const char *redis_url;
    const char *redis_prefix; /* NULL = "ratelimit:" */
    int64_t redis_timeout_ms; /* per request; 0 = 250 */
    bool fail_closed;         /* Redis failing: 503, not let through */

    wv_ratelimit_headers headers;
} wv_ratelimit_opts;

/*
 * Install a limiter on r (a router or a group: it covers that group's
 * routes and its subgroups'). opts is copied. 0, or -EINVAL (wv_errmsg
 * says which option: no or a bad rate, a burst out of range, a bad name,
 * no header or key_fn for its key kind, both redis and redis_url, a
 * redis_url that is not redis:// or rediss://), -ENOMEM.
 */
int wv_ratelimit(wv_router *r, const wv_ratelimit_opts *opts);

#ifdef __cplusplus
}
#endif

#endif
