/*
 * The rate limiter's test server (tests/integration/test_ratelimit.py):
 * GET /api/ping is behind a wv_ratelimit installed on the /api group,
 * GET /free/ping beside it is not, GET /metrics exposes the counters.
 * Prints "listening on PORT" once every shard listens.
 *
 * Environment: PORT (0 = any), WEAVE_SHARDS, and the limiter's options:
 *   RL_RATE, RL_BURST, RL_NAME, RL_CAPACITY
 *   RL_KEY          peer (default) | header (RL_HEADER names it) | fn (the
 *                   "user" query parameter; none: exempt)
 *   RL_HOPS         forwarded_hops
 *   RL_HEADERS      draft (default) | legacy | both | none
 *   RL_REDIS_URL    keep the buckets in that Redis...
 *   RL_REDIS_MODE   url (default: the limiter opens its clients) | fn (this
 *                   server opens one per shard and hands it over)
 *   RL_REDIS_TIMEOUT_MS, RL_FAIL_CLOSED=1
 *   RL_FREE_AFTER=1 free the router after wv_main has returned, as wv_app
 *                   does, instead of inside the runtime
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/http.h>
#include <weave/metrics.h>
#include <weave/ratelimit.h>
#include <weave/redis.h>

enum { MAX_SHARDS = 256 };

static wv_redis *clients[MAX_SHARDS];
static const char *redis_url;
static wv_router *keep; /* RL_FREE_AFTER: freed by main */

static const char *env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return v && *v ? v : def;
}

static int ping(wv_req *req, wv_res *res)
{
    return wv_res_json(res, 200, "{\"ok\":true}");
}

static wv_str user_key(wv_req *req, void *arg)
{
    wv_str v;
    if (wv_req_query_param(req, "user", &v) < 0)
        return (wv_str){0};
    return v;
}

static wv_redis *shard_redis(wv_req *req, void *arg)
{
    int s = wv_shard_id();
    return s >= 0 && s < MAX_SHARDS ? clients[s] : NULL;
}

static int open_client(void *arg)
{
    int s = wv_shard_id();
    if (wv_redis_open(redis_url, NULL, &clients[s]) < 0) {
        fprintf(stderr, "ratelimit_test_server: shard %d: %s\n", s, wv_errmsg());
        return -1;
    }
    return 0;
}

static int close_client(void *arg)
{
    int s = wv_shard_id();
    wv_redis_close(clients[s]);
    clients[s] = NULL;
    return 0;
}

typedef struct announce {
    wv_event *ready;
    int *port;
} announce;

static int announce_port(void *arg)
{
    announce *a = arg;
    if (wv_event_wait(a->ready) == 0)
        printf("listening on %d\n", *a->port);
    return 0;
}

static int serve(void *arg)
{
    const char *key = env("RL_KEY", "peer"), *hdrs = env("RL_HEADERS", "draft");
    redis_url = getenv("RL_REDIS_URL");
    bool by_fn = redis_url && !strcmp(env("RL_REDIS_MODE", "url"), "fn");
    wv_ratelimit_opts o = {
        .name = getenv("RL_NAME"),
        .rate = atof(env("RL_RATE", "1")),
        .burst = atoll(env("RL_BURST", "0")),
        .key = !strcmp(key, "header") ? WV_RATELIMIT_KEY_HEADER
               : !strcmp(key, "fn")   ? WV_RATELIMIT_KEY_FN
                                      : WV_RATELIMIT_KEY_PEER,
        .header = getenv("RL_HEADER"),
        .key_fn = user_key,
        .forwarded_hops = atoi(env("RL_HOPS", "0")),
        .capacity = (size_t)atoll(env("RL_CAPACITY", "0")),
        .redis = by_fn ? shard_redis : NULL,
        .redis_url = by_fn ? NULL : redis_url,
        .redis_timeout_ms = atoll(env("RL_REDIS_TIMEOUT_MS", "0")),
        .fail_closed = !strcmp(env("RL_FAIL_CLOSED", "0"), "1"),
        .headers = !strcmp(hdrs, "legacy") ? WV_RATELIMIT_HEADERS_LEGACY
                   : !strcmp(hdrs, "both") ? WV_RATELIMIT_HEADERS_BOTH
                   : !strcmp(hdrs, "none") ? WV_RATELIMIT_HEADERS_NONE
                                           : WV_RATELIMIT_HEADERS_DRAFT,
    };
    if (by_fn && (wv_shard_count() > MAX_SHARDS || wv_shard_each(open_client, NULL) < 0))
        return 1;
    wv_router *r = wv_router_new();
    wv_router *api = wv_router_group(r, "/api");
    if (!api || wv_ratelimit(api, &o) < 0) {
        fprintf(stderr, "ratelimit_test_server: %s\n", wv_errmsg());
        wv_router_free(r);
        if (by_fn)
            wv_shard_each(close_client, NULL);
        return 2;
    }
    wv_get(api, "/ping", ping);
    wv_get(r, "/free/ping", ping);
    wv_get(r, "/metrics", wv_metrics_handler);

    int port = 0;
    wv_event ready = {0};
    announce a = {&ready, &port};
    wv_spawn(announce_port, &a, NULL);
    int rc = wv_http_serve(r, &(wv_http_opts){.port = atoi(env("PORT", "0")),
                                              .host = "127.0.0.1",
                                              .bound_port = &port,
                                              .ready = &ready});
    if (rc < 0)
        fprintf(stderr, "ratelimit_test_server: %s\n", wv_errmsg());
    if (!strcmp(env("RL_FREE_AFTER", "0"), "1"))
        keep = r; /* the runtime's end closes the limiter's clients */
    else
        wv_router_free(r); /* inside the runtime: the limiter closes them on their shards */
    if (by_fn)
        wv_shard_each(close_client, NULL);
    return rc < 0 ? 1 : 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    int rc = wv_main(NULL, serve, NULL);
    wv_router_free(keep);
    return rc;
}
