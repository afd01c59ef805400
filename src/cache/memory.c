/*
 * The memory:// backend: the process's one cache_store (store.c), made by
 * the first handle opened and freed with the last one closed, so every
 * shard reads what any shard wrote. Its clock is the shard's pass clock in
 * milliseconds.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cache/cache_internal.h"
#include "cache/store.h"
#include "weave/net.h"

enum { DEFAULT_BYTES = 64 << 20 };

static pthread_mutex_t registry = PTHREAD_MUTEX_INITIALIZER;
static cache_store *shared_store;
static int shared_refs;

static int64_t now_ms(void)
{
    return wv_now_coarse() / 1000000;
}

/* "64mb", "512kb", "1gb", "1048576": bytes, or 0 when it is none of those. */
static size_t parse_size(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return 0;
    unsigned long long unit = 1;
    if (strcasecmp(end, "kb") == 0 || strcasecmp(end, "k") == 0)
        unit = 1ULL << 10;
    else if (strcasecmp(end, "mb") == 0 || strcasecmp(end, "m") == 0)
        unit = 1ULL << 20;
    else if (strcasecmp(end, "gb") == 0 || strcasecmp(end, "g") == 0)
        unit = 1ULL << 30;
    else if (*end && strcasecmp(end, "b") != 0)
        return 0;
    if (v > SIZE_MAX / unit)
        return 0;
    return (size_t)(v * unit);
}

static int mem_open(const char *url, const wv_cache_opts *o, void **handle)
{
    size_t bytes = o->memory_bytes;
    const char *q = strchr(url, '?');
    if (q && !bytes) {
        wv_url u;
        int rc = wv_url_parse(url, &u);
        if (rc < 0)
            return rc;
        const char *size = wv_url_param_get(&u, "size");
        if (size && !(bytes = parse_size(size))) {
            wv_url_free(&u);
            return wv_fail(-EINVAL, "cache %s: size must be bytes or a number with kb, mb or gb",
                           url);
        }
        wv_url_free(&u);
    }
    pthread_mutex_lock(&registry);
    int rc = 0;
    if (!shared_store) {
        /* an item is a value and its key; no item may take more than a
         * quarter of the budget */
        size_t budget = bytes ? bytes : DEFAULT_BYTES;
        size_t item = o->max_value + 256;
        cache_store_opts so = {
            .max_bytes = budget,
            .max_item = item < budget / 4 ? item : budget / 4,
        };
        rc = cache_store_new(&so, &shared_store);
    }
    if (rc == 0)
        shared_refs++;
    pthread_mutex_unlock(&registry);
    if (rc < 0)
        return wv_fail(rc, "cache %s: cannot make the store (%zu bytes)", url,
                       bytes ? bytes : (size_t)DEFAULT_BYTES);
    *handle = shared_store;
    return 0;
}

static void mem_close(void *handle)
{
    (void)handle;
    pthread_mutex_lock(&registry);
    if (--shared_refs == 0) {
        cache_store_free(shared_store);
        shared_store = NULL;
    }
    pthread_mutex_unlock(&registry);
}

static int mem_get(void *h, wv_str key, wv_buf *value)
{
    int rc = cache_store_get(h, key.p, key.n, now_ms(), value);
    return rc == -ENOMEM ? wv_fail(rc, "cache: the value does not fit the buffer") : rc;
}

static int mem_set(void *h, wv_str key, wv_str value, int64_t ttl_ms)
{
    int rc = cache_store_set(h, key.p, key.n, value.p, value.n, ttl_ms, now_ms());
    if (rc == -EMSGSIZE)
        return wv_fail(rc, "cache: a value of %zu bytes is larger than the store takes", value.n);
    return rc < 0 ? wv_fail(rc, "cache: storing a value: %s", wv_strerror(rc)) : 0;
}

static int mem_del(void *h, wv_str key)
{
    return cache_store_delete(h, key.p, key.n, now_ms());
}

static int mem_ping(void *h)
{
    (void)h;
    return 0;
}

const cache_backend cache_memory_backend = {
    .name = "memory",
    .open = mem_open,
    .close = mem_close,
    .get = mem_get,
    .set = mem_set,
    .del = mem_del,
    .ping = mem_ping,
};
