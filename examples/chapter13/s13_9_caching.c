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
 *   PUT /cache/{key}      the body is the value, raw bytes (FastAPI's port
 *                         reads await request.body(): no JSON); ?ttl=
 *                         seconds, 0 to 31536000 (0 or none: no expiry).
 *                         200 {"key", "bytes", "ttl"} (CacheSet).
 *   GET /cache/{key}      the value (application/octet-stream), or 404
 *   DELETE /cache/{key}   204, or 404 when it was not there
 *
 * The key and the ttl are declared (key_param, ttl_param): a key
 * memcached would refuse (spaces, control characters, over 250 bytes) and
 * a ttl that is not such an integer are FastAPI's 422, both at once, on
 * every backend; a value over 1 MiB is a 413. When the
 * cache server is down these answer 502/504 with the reason: a cache
 * route is about the cache. GET /users/{id} (s13_3_databases.c) reads
 * through the same cache and keeps answering from the database instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/cache.h>
#include <weave/json.h>
#include <weave/schema.h>

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

enum { KEY_MAX = 250, TTL_MAX = 365 * 24 * 3600 };

/* {key}: what every backend takes, memcached's rule: 1 to 250 bytes, no
 * space or control character. The pattern is the same text in POSIX and
 * ECMA-262 (the control characters are in it as themselves). */
static const wv_db_field key_param = {
    .name = "key",
    .type = WV_DB_TEXT,
    .size = KEY_MAX + 1,
    .max_len = KEY_MAX,
    .min_chars = 1,
    .pattern = "^[^\x01-\x20\x7f]+$",
    .description = "The cache key: 1 to 250 bytes without spaces or control characters",
    .example = "\"my-key\""};

/* ?ttl=: FastAPI's ttl: int = Query(0, ge=0, le=31536000) */
static const wv_db_field ttl_param = {.name = "ttl",
                                      .type = WV_DB_INT,
                                      .size = sizeof(int64_t),
                                      .default_json = "0",
                                      WV_GE(0),
                                      WV_LE(TTL_MAX),
                                      .description =
                                          "Seconds until the value expires: 0 (the default) never",
                                      .example = "60"};

/* The answer of PUT /cache/{key} */
typedef struct cache_set {
    char key[KEY_MAX + 1];
    int64_t bytes, ttl;
} cache_set;

static const wv_db_field cache_set_fields[] = {
    WV_FIELD_TEXT(cache_set, key, .description = "The key set", .example = "\"my-key\""),
    WV_FIELD_INT(cache_set, bytes, .description = "The value's length in bytes", .example = "5"),
    WV_FIELD_INT(cache_set, ttl, .description = "Its time to live in seconds (0: none)",
                 .example = "60"),
};
static const wv_db_model cache_set_model = {.size = sizeof(cache_set),
                                            .fields = cache_set_fields,
                                            .nfields = 3,
                                            .name = "CacheSet",
                                            .description = "A value stored in the cache"};

/* The path's key into key[] (0), 1 once the 422 was sent, or an error. */
static int key_of(wv_req *req, wv_res *res, char key[KEY_MAX + 1])
{
    wv_schema_errors errs = {0};
    return input_end(res, input_path(req, &key_param, key, &errs), &errs);
}

static wv_str str_of(const char *s)
{
    return (wv_str){s, strlen(s)};
}

/* PUT /cache/{key}?ttl=N: aioredis's redis.set('my-key', 'value') */
static int put_value(wv_req *req, wv_res *res)
{
    cache_set out;
    wv_str body;
    wv_schema_errors errs = {0};
    int rc = input_path(req, &key_param, out.key, &errs);
    rc = input_fold(rc, input_query(req, &ttl_param, &out.ttl, &errs));
    if ((rc = input_end(res, rc, &errs)) != 0)
        return rc < 0 ? rc : 0;
    if ((rc = wv_req_body(req, &body)) < 0)
        return rc;
    rc = wv_cache_set(wv_req_cache(req), str_of(out.key), body, out.ttl * 1000);
    if (rc < 0)
        return rc;
    out.bytes = (int64_t)body.n;
    wv_json *j = wv_res_json_writer(res);
    rc = wv_schema_encode(&cache_set_model, &out, j);
    return rc < 0 ? rc : wv_res_json_send(res, 200);
}

/* GET /cache/{key}: value = await redis.get('my-key') */
static int get_value(wv_req *req, wv_res *res)
{
    char k[KEY_MAX + 1];
    int rc;
    if ((rc = key_of(req, res, k)) != 0)
        return rc < 0 ? rc : 0;
    wv_str key = str_of(k);
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
    char k[KEY_MAX + 1];
    int rc;
    if ((rc = key_of(req, res, k)) != 0)
        return rc < 0 ? rc : 0;
    wv_str key = str_of(k);
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
