/*
 * weave's cache: one API over three backends, chosen by URL.
 *
 *   memory://[?size=64mb]          an in-process store (the embedded default):
 *                                  one per process, shared by every shard,
 *                                  bounded by bytes, least recently used out first
 *   redis://... , rediss://...     Redis (include/weave/redis.h's URLs)
 *   memcached://h1:p1,h2:p2        memcached servers, keys placed by ketama
 *                                  (include/weave/memcache.h)
 *
 *     wv_cache *c;
 *     wv_cache_open("memory://", NULL, &c);
 *     wv_cache_set(c, WV_STR("user:1"), WV_STR("{\"id\":1}"), 60000);   // 60 s
 *     wv_buf v = {0};
 *     if (wv_cache_get(c, WV_STR("user:1"), &v) == 1)                     // 1: a hit
 *         ...;
 *     rc = wv_cache_get_or_fill(c, WV_STR("user:2"), &v, 60000, load_user, &id);
 *
 * The model.
 *
 *  - A cache handle belongs to the shard that opened it; open one per shard
 *    (wv_app_cache does). Every memory:// handle of the process shares one
 *    store, so what one shard sets or deletes is what every shard sees.
 *  - Keys follow memcached's rule on every backend, so moving from one to
 *    another changes nothing: 1 to 250 bytes, no space, no control byte
 *    (0x00-0x20, 0x7f). Others are refused with -EINVAL before anything is
 *    sent. Values are byte strings up to max_value (-EMSGSIZE beyond).
 *  - TTLs are milliseconds, 0 = no expiry. memcached counts whole seconds:
 *    a TTL there is rounded up to the next second.
 *  - get_or_fill runs a missing key's computation once per shard however
 *    many fibers ask for it at the same time (single-flight): the first
 *    asks the fill function, the others wait for its result. A fill that
 *    fails gives its error to every waiter, except a fill cut short by its
 *    own fiber's deadline or cancellation: the waiters then try again, one
 *    of them filling.
 *  - A backend that fails (a server down, a timeout) is an error from get,
 *    set and delete, never a silent miss. get_or_fill is the exception made
 *    on purpose: a cache that fails is read around (the fill runs, its value
 *    is returned and not stored), counted in stats.errors and logged, so a
 *    service keeps answering from its database while the cache is down.
 *
 * Errors: -EINVAL (a bad key or URL), -EMSGSIZE (a value over max_value),
 * -ENOMEM, and the backend's: -ECONNREFUSED, -ETIMEDOUT, -EHOSTDOWN (a
 * memcached server marked dead), -EIO (the server refused), -ECANCELED;
 * wv_errmsg() says which server and why.
 */
#ifndef WEAVE_CACHE_H
#define WEAVE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/buf.h"
#include "weave/str.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_cache wv_cache;

typedef struct wv_cache_opts {
    /* memory://: the store's budget in bytes, keys and values and their
     * bookkeeping counted; 0 = 64 MiB, or the URL's ?size= (64mb, 512kb,
     * 1gb, or bytes). The first handle of the process sets it. */
    size_t memory_bytes;
    size_t max_value;   /* bytes; 0 = 1 MiB (memcached's default item size) */
    const char *prefix; /* put before every key (a namespace); counts towards 250 */
} wv_cache_opts;

/* A cache handle on the calling shard for `url`; a server is dialed now, so
 * a wrong address or password shows at once. opts may be NULL. */
int wv_cache_open(const char *url, const wv_cache_opts *opts, wv_cache **out);

/* Close the handle (the memory store goes with the process's last one).
 * NULL is ignored. */
void wv_cache_close(wv_cache *c);

/* "memory", "redis" or "memcached". */
const char *wv_cache_backend(const wv_cache *c);

/* Whether a key follows the rule above (without a prefix). */
bool wv_cache_key_valid(wv_str key);

/* 1 with the value appended to *value, or 0 when the key is missing or
 * expired (value untouched). */
int wv_cache_get(wv_cache *c, wv_str key, wv_buf *value);

/* Store value under key for ttl_ms (0: no expiry): 0, or an error. */
int wv_cache_set(wv_cache *c, wv_str key, wv_str value, int64_t ttl_ms);

/* 1 when the key was there, 0 when it was not. */
int wv_cache_delete(wv_cache *c, wv_str key);

/* Compute a missing key's value into *value (empty when called); may set
 * *ttl_ms (it starts as the caller's). >= 0 to store it, or an error. */
typedef int wv_cache_fill_fn(void *arg, wv_buf *value, int64_t *ttl_ms);

/*
 * The key's value appended to *value: from the cache (returns 1), or from
 * fill, run once per shard for the fibers asking at once and stored for
 * ttl_ms (returns 0). fill's error is returned to every fiber that waited
 * for it.
 */
int wv_cache_get_or_fill(wv_cache *c, wv_str key, wv_buf *value, int64_t ttl_ms,
                         wv_cache_fill_fn *fill, void *arg);

/* 0 when the backend answers (the memory store always does). */
int wv_cache_ping(wv_cache *c);

/* This handle's counts since it was opened. */
typedef struct wv_cache_stats {
    uint64_t hits, misses;
    uint64_t fills;  /* fill functions run */
    uint64_t shared; /* get_or_fill calls that waited for another fiber's fill */
    uint64_t errors; /* backend failures get_or_fill read around */
} wv_cache_stats;

void wv_cache_stats_get(const wv_cache *c, wv_cache_stats *st);

#ifdef __cplusplus
}
#endif

#endif
