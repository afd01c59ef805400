/*
 * The memcached:// backend: memcached://h1:p1,h2:p2 through the shard's
 * memcached client (include/weave/memcache.h), keys placed by ketama.
 * memcached counts TTLs in whole seconds: a TTL in milliseconds is rounded
 * up, so a value never leaves earlier than asked.
 */
#include <string.h>

#include "cache/cache_internal.h"
#include "weave/memcache.h"

static int mc_open(const char *url, const wv_cache_opts *o, void **handle)
{
    wv_memcache_opts mo = {.max_value = o->max_value};
    return wv_memcache_open(url, &mo, (wv_memcache **)handle);
}

static void mc_close(void *h)
{
    wv_memcache_close(h);
}

static int mc_get(void *h, wv_str key, wv_buf *value)
{
    return wv_memcache_get(h, key, value, NULL, NULL);
}

static int mc_set(void *h, wv_str key, wv_str value, int64_t ttl_ms)
{
    wv_memcache_set_opts so = {.ttl_s = ttl_ms > 0 ? (ttl_ms + 999) / 1000 : 0};
    int rc = wv_memcache_set(h, key, value, &so);
    return rc < 0 ? rc : 0;
}

static int mc_del(void *h, wv_str key)
{
    return wv_memcache_delete(h, key);
}

static int mc_ping(void *h)
{
    return wv_memcache_ping(h);
}

const cache_backend cache_memcached_backend = {
    .name = "memcached",
    .open = mc_open,
    .close = mc_close,
    .get = mc_get,
    .set = mc_set,
    .del = mc_del,
    .ping = mc_ping,
};
