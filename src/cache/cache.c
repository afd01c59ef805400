/*
 * The cache API (include/weave/cache.h): choosing the backend by URL, the
 * key rule and the prefix, the value limit, single-flight for
 * get_or_fill, and the counts. The backends (memory.c, redis.c,
 * memcached.c) only see keys that passed the rule, prefix included.
 *
 * Single-flight: each handle (one per shard) keeps the keys being filled
 * in a small hash table of flights. The first fiber to miss a key makes
 * its flight and runs the fill; those that miss it meanwhile find the
 * flight and wait on its event, then copy its value. A flight is
 * reference counted (its filler and each waiter), so a waiter whose
 * deadline passes simply lets go; the last one out frees it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache_internal.h"
#include "weave/net.h"

#define WARN_EVERY_NS INT64_C(10000000000) /* 10 s */

enum {
    KEY_MAX = 250,
    DEFAULT_MAX_VALUE = 1 << 20,
    FLIGHT_BUCKETS = 64,
};

typedef struct flight {
    struct flight *next;
    uint64_t hash;
    size_t klen;
    char key[KEY_MAX];
    wv_event done;
    bool finished;
    int rc;        /* the fill's result */
    wv_buf value;  /* its value, for the waiters */
    char msg[256]; /* the fill's error message */
    int refs;
} flight;

struct wv_cache {
    const cache_backend *b;
    void *h;
    int shard;
    size_t max_value;
    char prefix[KEY_MAX + 1];
    size_t prefix_len;
    flight *flights[FLIGHT_BUCKETS];
    wv_cache_stats stats;
    int64_t warned_at; /* the last read-around warning */
};

/* ------------------------------------------------------------- keys */

bool wv_cache_key_valid(wv_str key)
{
    if (key.n == 0 || key.n > KEY_MAX || !key.p)
        return false;
    for (size_t i = 0; i < key.n; i++) {
        unsigned char ch = (unsigned char)key.p[i];
        if (ch <= 0x20 || ch == 0x7f)
            return false;
    }
    return true;
}

/* The key as the backend sees it (prefix + key) in buf, or -EINVAL. */
static int full_key(const wv_cache *c, wv_str key, char buf[KEY_MAX], wv_str *out)
{
    if (!wv_cache_key_valid(key) || key.n > KEY_MAX - c->prefix_len) {
        size_t show = key.n > 40 ? 40 : key.n;
        char shown[41 * 4];
        size_t j = 0;
        for (size_t i = 0; i < show && key.p; i++) {
            unsigned char ch = (unsigned char)key.p[i];
            j += (size_t)snprintf(shown + j, sizeof shown - j,
                                  ch <= 0x20 || ch >= 0x7f ? "\\x%02x" : "%c", ch);
        }
        shown[j] = '\0';
        return wv_fail(-EINVAL,
                       "cache: the key \"%s%s\" (%zu bytes) is not 1 to %zu bytes without spaces "
                       "or control characters",
                       shown, key.n > show ? "..." : "", key.n, (size_t)KEY_MAX - c->prefix_len);
    }
    if (c->prefix_len == 0) {
        *out = key;
        return 0;
    }
    memcpy(buf, c->prefix, c->prefix_len);
    memcpy(buf + c->prefix_len, key.p, key.n);
    *out = (wv_str){buf, c->prefix_len + key.n};
    return 0;
}

static int check_shard(const wv_cache *c)
{
    if (c->shard != wv_shard_id())
        return wv_fail(-EXDEV, "cache: a handle of shard %d used from shard %d", c->shard,
                       wv_shard_id());
    return 0;
}

/* ------------------------------------------------------------- open */

static const cache_backend *backend_for(const char *url)
{
    if (strncmp(url, "memory:", 7) == 0)
        return &cache_memory_backend;
    if (strncmp(url, "redis://", 8) == 0 || strncmp(url, "rediss://", 9) == 0 ||
        strncmp(url, "unix://", 7) == 0)
        return &cache_redis_backend;
    if (strncmp(url, "memcached://", 12) == 0)
        return &cache_memcached_backend;
    return NULL;
}

int wv_cache_open(const char *url, const wv_cache_opts *opts, wv_cache **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!url || !*url)
        return wv_fail(-EINVAL, "cache: no URL");
    if (wv_shard_id() < 0)
        return wv_fail(-EPERM, "cache: open it from a fiber");
    wv_cache_opts o = opts ? *opts : (wv_cache_opts){0};
    if (!o.max_value)
        o.max_value = DEFAULT_MAX_VALUE;
    const cache_backend *b = backend_for(url);
    if (!b) {
        char shown[256];
        wv_url_redact(url, shown, sizeof shown);
        return wv_fail(-EINVAL,
                       "cache: %s: the URL must start with memory://, redis://, rediss:// or "
                       "memcached://",
                       shown);
    }
    size_t plen = o.prefix ? strlen(o.prefix) : 0;
    if (plen >= KEY_MAX || (plen && !wv_cache_key_valid((wv_str){o.prefix, plen})))
        return wv_fail(-EINVAL, "cache: the prefix \"%s\" breaks the key rule", o.prefix);
    wv_cache *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->b = b;
    c->shard = wv_shard_id();
    c->max_value = o.max_value;
    memcpy(c->prefix, o.prefix ? o.prefix : "", plen);
    c->prefix_len = plen;
    int rc = b->open(url, &o, &c->h);
    if (rc < 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void wv_cache_close(wv_cache *c)
{
    if (!c)
        return;
    c->b->close(c->h);
    free(c);
}

const char *wv_cache_backend(const wv_cache *c)
{
    return c ? c->b->name : NULL;
}

/* ------------------------------------------------------------- calls */

int wv_cache_get(wv_cache *c, wv_str key, wv_buf *value)
{
    char buf[KEY_MAX];
    wv_str k;
    int rc;
    if (!c || !value)
        return -EINVAL;
    if ((rc = check_shard(c)) < 0 || (rc = full_key(c, key, buf, &k)) < 0)
        return rc;
    rc = c->b->get(c->h, k, value);
    if (rc == 1)
        c->stats.hits++;
    else if (rc == 0)
        c->stats.misses++;
    return rc;
}

int wv_cache_set(wv_cache *c, wv_str key, wv_str value, int64_t ttl_ms)
{
    char buf[KEY_MAX];
    wv_str k;
    int rc;
    if (!c || (value.n && !value.p))
        return -EINVAL;
    if (ttl_ms < 0)
        return wv_fail(-EINVAL, "cache: a negative ttl");
    if ((rc = check_shard(c)) < 0 || (rc = full_key(c, key, buf, &k)) < 0)
        return rc;
    if (value.n > c->max_value)
        return wv_fail(-EMSGSIZE, "cache: a value of %zu bytes is over the limit of %zu", value.n,
                       c->max_value);
    return c->b->set(c->h, k, value, ttl_ms);
}

int wv_cache_delete(wv_cache *c, wv_str key)
{
    char buf[KEY_MAX];
    wv_str k;
    int rc;
    if (!c)
        return -EINVAL;
    if ((rc = check_shard(c)) < 0 || (rc = full_key(c, key, buf, &k)) < 0)
        return rc;
    return c->b->del(c->h, k);
}

int wv_cache_ping(wv_cache *c)
{
    return c ? c->b->ping(c->h) : -EINVAL;
}

void wv_cache_stats_get(const wv_cache *c, wv_cache_stats *st)
{
    if (st)
        *st = c ? c->stats : (wv_cache_stats){0};
}

/* ------------------------------------------------------- single-flight */

static uint64_t hash_key(wv_str k)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: flights are few, keys short */
    for (size_t i = 0; i < k.n; i++)
        h = (h ^ (unsigned char)k.p[i]) * 1099511628211ULL;
    return h;
}

static flight *flight_find(wv_cache *c, wv_str k, uint64_t h)
{
    for (flight *f = c->flights[h % FLIGHT_BUCKETS]; f; f = f->next)
        if (f->hash == h && f->klen == k.n && memcmp(f->key, k.p, k.n) == 0)
            return f;
    return NULL;
}

static void flight_remove(wv_cache *c, flight *f)
{
    for (flight **p = &c->flights[f->hash % FLIGHT_BUCKETS]; *p; p = &(*p)->next) {
        if (*p == f) {
            *p = f->next;
            return;
        }
    }
}

static void flight_unref(flight *f)
{
    if (--f->refs == 0) {
        wv_buf_free(&f->value);
        free(f);
    }
}

/* A backend failure that get_or_fill reads around: counted, and logged at
 * most every ten seconds per handle. */
static void read_around(wv_cache *c, const char *what)
{
    c->stats.errors++;
    int64_t now = wv_now_coarse();
    if (c->warned_at == 0 || now - c->warned_at >= WARN_EVERY_NS) {
        c->warned_at = now;
        wv_warn("cache (%s): %s failed, serving without the cache: %s", c->b->name, what,
                wv_errmsg());
    }
}

/* Be the filler of a new flight for k. */
static int fill_as_leader(wv_cache *c, wv_str k, wv_buf *value, int64_t ttl_ms,
                          wv_cache_fill_fn *fill, void *arg, uint64_t h)
{
    flight *f = calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    f->hash = h;
    f->klen = k.n;
    memcpy(f->key, k.p, k.n);
    f->refs = 1;
    f->next = c->flights[h % FLIGHT_BUCKETS];
    c->flights[h % FLIGHT_BUCKETS] = f;

    c->stats.fills++;
    int64_t ttl = ttl_ms;
    int rc = fill(arg, &f->value, &ttl);
    if (rc >= 0 && f->value.n > c->max_value)
        rc = wv_fail(-EMSGSIZE, "cache: the filled value of %zu bytes is over the limit of %zu",
                     f->value.n, c->max_value);
    if (rc >= 0) {
        rc = 0;
        if (c->b->set(c->h, k, (wv_str){f->value.p, f->value.n}, ttl < 0 ? 0 : ttl) < 0)
            read_around(c, "storing a filled value");
        if (wv_buf_append(value, f->value.p, f->value.n) < 0)
            rc = wv_fail(-ENOMEM, "cache: the value does not fit the buffer");
    }
    f->rc = rc;
    if (rc < 0)
        snprintf(f->msg, sizeof f->msg, "%s", wv_errmsg());
    f->finished = true;
    flight_remove(c, f);
    wv_event_set(&f->done);
    flight_unref(f);
    return rc;
}

int wv_cache_get_or_fill(wv_cache *c, wv_str key, wv_buf *value, int64_t ttl_ms,
                         wv_cache_fill_fn *fill, void *arg)
{
    char buf[KEY_MAX];
    wv_str k;
    int rc;
    if (!c || !value || !fill || ttl_ms < 0)
        return -EINVAL;
    if ((rc = check_shard(c)) < 0 || (rc = full_key(c, key, buf, &k)) < 0)
        return rc;
    uint64_t h = hash_key(k);
    for (;;) {
        flight *f = flight_find(c, k, h);
        if (!f) {
            rc = c->b->get(c->h, k, value);
            if (rc == 1) {
                c->stats.hits++;
                return 1;
            }
            if (rc < 0) {
                if (rc == -ETIMEDOUT || rc == -ECANCELED)
                    return rc; /* this fiber's own deadline: not the cache's fault */
                read_around(c, "reading");
            } else {
                c->stats.misses++;
            }
            /* another fiber may have started while the backend was asked */
            if (!(f = flight_find(c, k, h)))
                return fill_as_leader(c, k, value, ttl_ms, fill, arg, h);
        }
        /* wait for the filler */
        c->stats.shared++;
        f->refs++;
        rc = wv_event_wait(&f->done);
        if (rc < 0) {
            flight_unref(f);
            return wv_fail(rc, "cache: %s waiting for another fiber's fill",
                           rc == -ETIMEDOUT ? "the deadline passed" : "cancelled");
        }
        rc = f->rc;
        if (rc < 0)
            wv_fail(rc, "%s", f->msg);
        else if (wv_buf_append(value, f->value.p, f->value.n) < 0)
            rc = wv_fail(-ENOMEM, "cache: the value does not fit the buffer");
        flight_unref(f);
        /* the filler's own deadline or cancellation cut it short: try again */
        if (rc == -ETIMEDOUT || rc == -ECANCELED)
            continue;
        return rc;
    }
}
