/*
 * The redis:// backend: GET, SET with PX, DEL and PING through the shard's
 * Redis client (include/weave/redis.h), so the cache's commands share its
 * auto-pipelined connection.
 */
#include "cache/cache_internal.h"
#include "weave/redis.h"

static int redis_open(const char *url, const wv_cache_opts *o, void **handle)
{
    (void)o;
    return wv_redis_open(url, NULL, (wv_redis **)handle);
}

static void redis_close(void *h)
{
    wv_redis_close(h);
}

static int redis_get(void *h, wv_str key, wv_buf *value)
{
    return wv_redis_get(h, key, value);
}

static int redis_set(void *h, wv_str key, wv_str value, int64_t ttl_ms)
{
    int rc = wv_redis_set(h, key, value, &(wv_redis_set_opts){.ttl_ms = ttl_ms});
    return rc < 0 ? rc : 0;
}

static int redis_del(void *h, wv_str key)
{
    int64_t n = wv_redis_del(h, 1, &key);
    return n < 0 ? (int)n : n > 0;
}

static int redis_ping(void *h)
{
    return wv_redis_ping(h);
}

const cache_backend cache_redis_backend = {
    .name = "redis",
    .open = redis_open,
    .close = redis_close,
    .get = redis_get,
    .set = redis_set,
    .del = redis_del,
    .ping = redis_ping,
};
