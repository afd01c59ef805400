/*
 * §13.9 caching: Redis with aioredis (13.9.1) and Memcached (13.9.2).
 *
 *     redis = await aioredis.create_redis_pool('redis://localhost')    # 13.9.1
 *     await redis.set('my-key', 'value')
 *     value = await redis.get('my-key', encoding='utf-8')
 *
 *     client = Client('localhost', 11211)                              # 13.9.2
 *     await client.set('foo', 'bar')
 *     value = await client.get('foo')
 *
 * Here both are one cache API (include/weave/cache.h) over whichever
 * backend the configuration names, the app's "cache" client:
 *
 *   --cache-url / CACHE_URL               memory://, redis://..., memcached://h1:p1,h2:p2
 *   --redis-url / REDIS_URL               used when CACHE_URL is not set
 *   --memcached-servers / MEMCACHED_SERVERS  host:port,... when neither is set
 *
 * and with none of them the in-process store, so `make run` needs no
 * server. Routes:
 *
 *   PUT /cache/{key}      the body is the value; ?ttl= seconds (0 or none:
 *                         no expiry). 200 {"key", "bytes", "ttl"}.
 *   GET /cache/{key}      the value (application/octet-stream), or 404
 *   DELETE /cache/{key}   204, or 404 when it was not there
 *
 * A key memcached would refuse (spaces, control characters, over 250
 * bytes) is a 422 on every backend; a value over 1 MiB is a 413. When the
 * cache server is down these answer 502/504 with the reason: a cache
 * route is about the cache. GET /users/{id} (s13_3_databases.c) reads
 * through the same cache and keeps answering from the database instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/cache.h>
#include <weave/json.h>

#include "chapter13.h"

void s13_9_caching_options(wv_app *app)
{
    wv_app_option(
        app, "cache-url", "CACHE_URL", WV_OPT_STRING, NULL,
        "the cache: memory:// (in-process, the default), redis://[user:pass@]host:port/db "
        "or memcached://host:port,host:port");
    wv_app_option(app, "redis-url", "REDIS_URL", WV_OPT_STRING, NULL,
                  "Redis for the cache when --cache-url is not given");
    wv_app_option(app, "memcached-servers", "MEMCACHED_SERVERS", WV_OPT_STRING, NULL,
                  "memcached servers (host:port,...) for the cache when neither URL is given");
}

/* The path's key: 0 with it, 1 once a 422 was sent for a key memcached
 * would refuse (the rule is every backend's), or an error. */
static int key_of(wv_req *req, wv_res *res, wv_str *key)
{
    int rc = wv_req_param(req, "key", key);
    if (rc < 0)
        return rc;
    if (wv_cache_key_valid(*key))
        return 0;
    rc = unprocessable(res, "path", "key",
                       "a cache key is 1 to 250 bytes without spaces or control characters",
                       "value_error");
    return rc < 0 ? rc : 1;
}

/* PUT /cache/{key}?ttl=N: aioredis's redis.set('my-key', 'value') */
static int put_value(wv_req *req, wv_res *res)
{
    wv_str key, body;
    int64_t ttl_s;
    int rc;
    if ((rc = key_of(req, res, &key)) != 0)
        return rc < 0 ? rc : 0;
    if ((rc = wv_req_query_i64(req, "ttl", 0, &ttl_s)) < 0)
        return rc;
    if (ttl_s < 0 || ttl_s > 365LL * 24 * 3600)
        return wv_fail(-ERANGE, "ttl must be 0 (no expiry) to 31536000 seconds");
    if ((rc = wv_req_body(req, &body)) < 0)
        return rc;
    rc = wv_cache_set(wv_req_cache(req), key, body, ttl_s * 1000);
    if (rc < 0)
        return rc;
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "key");
    wv_json_stringn(j, key.p, key.n);
    wv_json_key(j, "bytes");
    wv_json_int(j, (int64_t)body.n);
    wv_json_key(j, "ttl");
    wv_json_int(j, ttl_s);
    wv_json_object_end(j);
    return wv_res_json_send(res, 200);
}

/* GET /cache/{key}: value = await redis.get('my-key') */
static int get_value(wv_req *req, wv_res *res)
{
    wv_str key;
    int rc;
    if ((rc = key_of(req, res, &key)) != 0)
        return rc < 0 ? rc : 0;
    wv_buf v = {0};
    rc = wv_cache_get(wv_req_cache(req), key, &v);
    if (rc == 1)
        rc = wv_res_send(res, 200, "application/octet-stream", v.p, v.n);
    else if (rc == 0)
        rc = wv_fail(-ENOENT, "no key \"%.*s\" in the cache", (int)key.n, key.p);
    wv_buf_free(&v);
    return rc;
}

/* DELETE /cache/{key} */
static int delete_value(wv_req *req, wv_res *res)
{
    wv_str key;
    int rc;
    if ((rc = key_of(req, res, &key)) != 0)
        return rc < 0 ? rc : 0;
    rc = wv_cache_delete(wv_req_cache(req), key);
    if (rc == 0)
        return wv_fail(-ENOENT, "no key \"%.*s\" in the cache", (int)key.n, key.p);
    return rc < 0 ? rc : wv_res_send(res, 204, NULL, NULL, 0);
}

void s13_9_caching(wv_app *app)
{
    static char from_servers[1024];
    const char *url = wv_app_str(app, "cache-url");
    if (!url)
        url = wv_app_str(app, "redis-url");
    if (!url && wv_app_str(app, "memcached-servers")) {
        snprintf(from_servers, sizeof from_servers, "memcached://%s",
                 wv_app_str(app, "memcached-servers"));
        url = from_servers;
    }
    wv_app_cache(app, url ? url : "memory://");
    wv_put(app, "/cache/{key}", put_value);
    wv_get(app, "/cache/{key}", get_value);
    wv_delete(app, "/cache/{key}", delete_value);
}
