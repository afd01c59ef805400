/*
 * Private to src/cache/: what a cache backend is. cache.c owns the API
 * (keys, prefixes, value limits, single-flight, stats) and calls a backend
 * with keys it has already checked and prefixed; memory.c, redis.c and
 * memcached.c are the backends.
 */
#ifndef WEAVE_CACHE_INTERNAL_H
#define WEAVE_CACHE_INTERNAL_H

#include "weave/cache.h"

#pragma GCC visibility push(hidden)

typedef struct cache_backend {
    const char *name;
    /* open a handle for the calling shard from url */
    int (*open)(const char *url, const wv_cache_opts *opts, void **handle);
    void (*close)(void *handle);
    /* as wv_cache_get, wv_cache_set, wv_cache_delete, wv_cache_ping */
    int (*get)(void *handle, wv_str key, wv_buf *value);
    int (*set)(void *handle, wv_str key, wv_str value, int64_t ttl_ms);
    int (*del)(void *handle, wv_str key);
    int (*ping)(void *handle);
} cache_backend;

extern const cache_backend cache_memory_backend;
extern const cache_backend cache_redis_backend;
extern const cache_backend cache_memcached_backend;

#pragma GCC visibility pop

#endif
