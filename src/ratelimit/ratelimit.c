/*
 * src/ratelimit/ratelimit.c: the rate limiting middleware (wv_ratelimit in
 * include/weave/ratelimit.h; docs/ratelimit.md). A `before` that finds the
 * request's key, takes a token from its bucket (the shared in-process
 * table of bucket.c, or a Lua script in Redis), and either lets the request
 * go on with its quota in the response's headers or answers 429.
 *
 * Nothing here allocates per request on the in-process path: the key is
 * read in place (or into a stack buffer), the header values are formatted
 * on the stack (wv_res_header copies them), and the metric series are
 * resolved once when the limiter is made.
 */
#include <math.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit/ratelimit_internal.h"
#include "weave/metrics.h"
#include "weave/ratelimit.h"

#define NS_PER_MS       INT64_C(1000000)
#define US_PER_S        INT64_C(1000000)
#define LOG_INTERVAL_NS (10 * RL_NS_PER_S)
#define MAX_TAU_NS      (INT64_C(100000000) * RL_NS_PER_S) /* a bucket that fills in 3 years */

enum {
    NAME_MAX_LEN = 64,
    PREFIX_MAX_LEN = 64,
    RAW_KEY_MAX = 64, /* longer addresses go to Redis hashed */
    MAX_FORWARDED_LINES = 16,
    DEFAULT_CAPACITY = 65536,
    DEFAULT_TIMEOUT_MS = 250,
    REOPEN_AFTER_NS = 1000 * 1000 * 1000,
};

/* The bucket in Redis, in microseconds on Redis's clock: GCRA exactly as
 * wv__rl_take does it (the same clamp for a clock that stepped back), the
 * key expiring when its bucket is full again. Lua's numbers are doubles:
 * microseconds since 1970 (about 2^51) are exact in them, and the state is
 * written with %.0f so that no digit is lost. Replies {allowed, remaining,
 * wait_us}. */
static const char BUCKET_LUA[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000000 + tonumber(t[2])\n"
    "local interval = tonumber(ARGV[1])\n"
    "local tau = tonumber(ARGV[2])\n"
    "local tat = tonumber(redis.call('GET', KEYS[1])) or now\n"
    "if tat < now then tat = now elseif tat - now > tau then tat = now + tau end\n"
    "local after = tat + interval - now\n"
    "if after > tau then return {0, 0, after - tau} end\n"
    "redis.call('SET', KEYS[1], string.format('%.0f', tat + interval), 'PX',\n"
    "           math.ceil(after / 1000))\n"
    "local part = after % interval\n"
    "if part == 0 then part = interval end\n"
    "return {1, math.floor((tau - after) / interval), part}\n";

/* One shard's Redis client for a redis_url limiter, touched only by that
 * shard's fibers (a cache line each). */
typedef struct shard_slot {
    wv_redis *r;
    int64_t retry_at; /* after a failed open: not before */
    bool opening;     /* a fiber of the shard is dialing */
    bool closer;      /* the closing fiber is parked on stop */
    wv_event stop, done;
} __attribute__((aligned(64))) shard_slot;

typedef struct limiter {
    char name[NAME_MAX_LEN + 1];
    rl_params ns; /* the bucket in the process */
    rl_params us; /* in Redis */
    int64_t burst;
    wv_ratelimit_key key;
    char *header;
    wv_str (*key_fn)(wv_req *req, void *arg);
    void *key_arg;
    int hops;
    rl_table *table; /* in the process; NULL when in Redis */

    wv_redis *(*redis)(wv_req *req, void *arg);
    void *redis_arg;
    char *redis_url;
    char url_shown[256]; /* redacted */
    char *prefix;
    int64_t timeout_ms;
    bool fail_closed;
    wv_redis_script *script;
    char interval_arg[24], tau_arg[24];
    _Atomic(shard_slot *) slots;
    int nslots;

    wv_ratelimit_headers headers;
    char policy[NAME_MAX_LEN + 48]; /* RateLimit-Policy's value */
    char limit[24];                 /* RateLimit-Limit's */
    wv_series *allowed, *limited, *error, *evicted;
    atomic_int_least64_t logged_at; /* of the last warning about Redis */
    atomic_uint_least64_t errors;   /* since then */
} limiter;

/* --------------------------------------------------------------- metrics */

static int register_metrics(limiter *l)
{
    wv_metric *requests, *evictions;
    int rc = wv_metric_register(
        NULL,
        &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                          .name = "weave_ratelimit_requests_total",
                          .help = "Requests seen by a rate limiter, by what it decided.",
                          .labels = "limiter,result"},
        &requests);
    if (rc == 0)
        rc = wv_metric_register(
            NULL,
            &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                              .name = "weave_ratelimit_evictions_total",
                              .help = "Keys a rate limiter's table forgot before their bucket "
                                      "was full again, to make room (raise its capacity).",
                              .labels = "limiter"},
            &evictions);
    if (rc == 0)
        rc = wv_metric_series(requests, (const char *[]){l->name, "allowed"}, &l->allowed);
    if (rc == 0)
        rc = wv_metric_series(requests, (const char *[]){l->name, "limited"}, &l->limited);
    if (rc == 0)
        rc = wv_metric_series(requests, (const char *[]){l->name, "error"}, &l->error);
    if (rc == 0)
        rc = wv_metric_series(evictions, (const char *[]){l->name}, &l->evicted);
    return rc;
}

/* ---------------------------------------------------------------- headers */

/* The quota headers for a verdict (wait in ns). */
static void quota_headers(const limiter *l, wv_res *res, const rl_verdict *v, int64_t wait_ns)
{
    if (l->headers == WV_RATELIMIT_HEADERS_NONE)
        return;
    char remaining[24], reset[24];
    snprintf(remaining, sizeof remaining, "%lld", (long long)v->remaining);
    snprintf(reset, sizeof reset, "%lld", (long long)wv__rl_seconds_up(wait_ns, RL_NS_PER_S));
    if (l->headers != WV_RATELIMIT_HEADERS_LEGACY) {
        char value[NAME_MAX_LEN + 64];
        wv__rl_limit_value(value, sizeof value, l->name, v->remaining, wait_ns);
        wv_res_header(res, "RateLimit-Policy", l->policy);
        wv_res_header(res, "RateLimit", value);
    }
    if (l->headers != WV_RATELIMIT_HEADERS_DRAFT) {
        wv_res_header(res, "RateLimit-Limit", l->limit);
        wv_res_header(res, "RateLimit-Remaining", remaining);
        wv_res_header(res, "RateLimit-Reset", reset);
    }
}

/* ------------------------------------------------------------------ keys */

typedef struct req_key {
    char kind; /* 'a' an address, 'h' a header's value, 'f' key_fn's */
    wv_str key;
    char addr[RL_ADDR_MAX];
} req_key;

static void peer_key(const limiter *l, wv_req *req, req_key *k)
{
    k->kind = 'a';
    if (l->hops > 0) {
        wv_str lines[MAX_FORWARDED_LINES];
        int n = 0, count = wv_req_header_count(req);
        for (int i = 0; i < count && n < MAX_FORWARDED_LINES; i++) {
            wv_str name, value;
            wv_req_header_at(req, i, &name, &value);
            if (wv_str_ieq(name, WV_STR("X-Forwarded-For")))
                lines[n++] = value;
        }
        int len = n ? wv__rl_forwarded(lines, n, l->hops, k->addr) : -1;
        if (len > 0) {
            k->key = (wv_str){k->addr, (size_t)len};
            return;
        }
    }
    k->key = wv__rl_peer_host(wv_req_peer(req));
}

/* The request's key; false when it is exempt (key_fn's empty key). */
static bool request_key(const limiter *l, wv_req *req, req_key *k)
{
    switch (l->key) {
    case WV_RATELIMIT_KEY_HEADER:
        k->key = wv_req_header(req, l->header);
        if (k->key.p) {
            k->kind = 'h';
            return true;
        }
        break;
    case WV_RATELIMIT_KEY_FN:
        k->kind = 'f';
        k->key = l->key_fn(req, l->key_arg);
        return k->key.n > 0;
    case WV_RATELIMIT_KEY_PEER:
        break;
    }
    peer_key(l, req, k);
    return true;
}

/* ----------------------------------------------------------------- Redis */

static int closer_fiber(void *arg)
{
    shard_slot *s = arg;
    wv_deadline_set(WV_NEVER);
    wv_event_wait(&s->stop); /* set by limiter_free, or cancelled as the runtime ends */
    wv_redis_close(s->r);
    s->r = NULL;
    wv_event_set(&s->done); /* the last touch of s */
    return 0;
}

/* This shard's client of a redis_url limiter: 0 with *out, or an error. */
static int shard_client(limiter *l, wv_redis **out)
{
    int shard = wv_shard_id();
    shard_slot *slots = atomic_load_explicit(&l->slots, memory_order_acquire);
    if (!slots) {
        int n = wv_shard_count();
        shard_slot *mine = aligned_alloc(sizeof *mine, (size_t)n * sizeof *mine);
        if (!mine)
            return -ENOMEM;
        memset(mine, 0, (size_t)n * sizeof *mine);
        if (atomic_compare_exchange_strong(&l->slots, &slots, mine)) {
            l->nslots = n;
            slots = mine;
        } else {
            free(mine); /* another shard's won */
        }
    }
    if (shard < 0 || shard >= wv_shard_count())
        return wv_fail(-EXDEV, "ratelimit %s: not on a shard", l->name);
    shard_slot *s = &slots[shard];
    if (s->r) {
        *out = s->r;
        return 0;
    }
    if (s->opening)
        return wv_fail(-EAGAIN, "ratelimit %s: Redis %s: still connecting", l->name, l->url_shown);
    if (wv_now() < s->retry_at)
        return wv_fail(-ECONNREFUSED, "ratelimit %s: Redis %s: could not connect a moment ago",
                       l->name, l->url_shown);
    s->opening = true;
    wv_redis *r;
    int rc = wv_redis_open(l->redis_url, &(wv_redis_opts){.client_name = "weave-ratelimit"}, &r);
    s->opening = false;
    if (rc < 0) {
        s->retry_at = wv_now() + REOPEN_AFTER_NS;
        return rc;
    }
    s->r = r;
    if (!s->closer) {
        rc = wv_spawn(closer_fiber, s, &(wv_spawn_opts){.name = "ratelimit-redis-close"});
        if (rc < 0) { /* shutting down: do not keep a client nobody will close */
            wv_redis_close(r);
            s->r = NULL;
            return rc;
        }
        s->closer = true;
    }
    *out = r;
    return 0;
}

static size_t hex_digest(const void *p, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_Digest(p, n, md, &len, EVP_sha256(), NULL))
        return 0;
    for (unsigned i = 0; i < 16; i++) { /* 128 bits are plenty for a name */
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    return 32;
}

/* A request against the bucket in Redis. 0 with *v (wait in us), a Redis
 * error, or the request's own end (-ECANCELED, its deadline). */
static int redis_take(limiter *l, wv_req *req, const req_key *k, rl_verdict *v)
{
    char rkey[PREFIX_MAX_LEN + NAME_MAX_LEN + 2 + 2 + RAW_KEY_MAX + 1];
    int n = snprintf(rkey, sizeof rkey, "%s%s:%c:", l->prefix, l->name, k->kind);
    if (k->kind == 'a' && k->key.n <= RAW_KEY_MAX) {
        if (k->key.n)
            memcpy(rkey + n, k->key.p, k->key.n);
        n += (int)k->key.n;
    } else { /* a secret, or too long to name a key with */
        size_t h = hex_digest(k->key.p ? k->key.p : "", k->key.n, rkey + n);
        if (!h)
            return wv_fail(-ENOMEM, "ratelimit %s: SHA-256 failed", l->name);
        n += (int)h;
    }

    int64_t own = wv_deadline();
    int64_t mine = wv_after_ms(l->timeout_ms);
    wv_deadline_set(mine < own ? mine : own);
    wv_redis *r = NULL;
    int rc;
    if (l->redis) {
        r = l->redis(req, l->redis_arg);
        rc = r ? 0 : wv_fail(-ENOTCONN, "ratelimit %s: no Redis client for this request", l->name);
    } else {
        rc = shard_client(l, &r);
    }
    wv_redis_reply *rep = NULL;
    if (rc == 0)
        rc = wv_redis_eval(r, l->script, 1, (wv_str[]){{rkey, (size_t)n}}, 2,
                           (wv_str[]){{l->interval_arg, strlen(l->interval_arg)},
                                      {l->tau_arg, strlen(l->tau_arg)}},
                           &rep);
    wv_deadline_set(own);
    if (rc == 0) {
        if (rep->type != WV_REDIS_ARRAY || rep->len != 3 || rep->elem[0].type != WV_REDIS_INT ||
            rep->elem[1].type != WV_REDIS_INT || rep->elem[2].type != WV_REDIS_INT ||
            rep->elem[2].integer < 0)
            rc = wv_fail(-EPROTO, "ratelimit %s: the script answered something else", l->name);
        else
            *v = (rl_verdict){.allowed = rep->elem[0].integer == 1,
                              .remaining = rep->elem[1].integer,
                              .wait = rep->elem[2].integer};
    }
    wv_redis_reply_free(rep);
    if (rc < 0 && (wv_cancelled() || own <= wv_now()))
        return wv_cancelled() ? -ECANCELED : -ETIMEDOUT; /* the request's end, not Redis's */
    return rc;
}

/* Redis failed for this request: counted, logged now and then, let
 * through (WV_NEXT) or answered 503. */
static int redis_failed(limiter *l, wv_res *res, int err)
{
    wv_counter_inc(l->error);
    atomic_fetch_add_explicit(&l->errors, 1, memory_order_relaxed);
    int64_t now = wv_now();
    int64_t last = atomic_load_explicit(&l->logged_at, memory_order_relaxed);
    if ((last == 0 || now - last >= LOG_INTERVAL_NS) &&
        atomic_compare_exchange_strong(&l->logged_at, &last, now)) {
        uint64_t n = atomic_exchange_explicit(&l->errors, 0, memory_order_relaxed);
        wv_warn("ratelimit %s: Redis failed (%s); %llu request(s) %s since the last warning",
                l->name, wv_errmsg()[0] ? wv_errmsg() : wv_strerror(err), (unsigned long long)n,
                l->fail_closed ? "refused (503)" : "let through unlimited");
    }
    if (!l->fail_closed)
        return WV_NEXT;
    wv_res_header(res, "Retry-After", "1");
    return wv_res_json(res, 503, "{\"detail\":\"Rate limiter unavailable\"}");
}

/* ------------------------------------------------------------ middleware */

static int ratelimit_before(wv_req *req, wv_res *res, void *arg)
{
    limiter *l = arg;
    req_key k;
    if (!request_key(l, req, &k))
        return WV_NEXT;
    rl_verdict v;
    int64_t wait_ns;
    if (l->table) {
        uint64_t h = wv__rl_hash(l->table, k.kind, k.key.p, k.key.n);
        if (wv__rl_table_take(l->table, &l->ns, h, wv_now(), &v))
            wv_counter_inc(l->evicted);
        wait_ns = v.wait;
    } else {
        int rc = redis_take(l, req, &k, &v);
        if (rc == -ECANCELED || rc == -ETIMEDOUT)
            if (wv_cancelled() || wv_deadline() <= wv_now())
                return rc;
        if (rc < 0)
            return redis_failed(l, res, rc);
        wait_ns = v.wait > INT64_MAX / 1000 ? INT64_MAX : v.wait * 1000;
    }
    quota_headers(l, res, &v, wait_ns);
    if (v.allowed) {
        wv_counter_inc(l->allowed);
        return WV_NEXT;
    }
    wv_counter_inc(l->limited);
    char retry[24];
    snprintf(retry, sizeof retry, "%lld", (long long)wv__rl_seconds_up(wait_ns, RL_NS_PER_S));
    wv_res_header(res, "Retry-After", retry);
    return wv_res_json(res, 429, "{\"detail\":\"Too Many Requests\"}");
}

/* Runs on the slot's shard: wake its closing fiber and wait until it has
 * closed the client and let go of the slot. */
static int stop_slot(void *arg)
{
    shard_slot *s = arg;
    wv_event_set(&s->stop);
    wv_event_wait_shielded(&s->done);
    return 0;
}

static void limiter_free(void *arg)
{
    limiter *l = arg;
    shard_slot *slots = atomic_load(&l->slots);
    /* inside the runtime the closing fibers are still parked: stop each on
     * its shard; after it, the runtime's end has cancelled them already */
    for (int i = 0; slots && i < l->nslots; i++)
        if (slots[i].closer && !wv_event_is_set(&slots[i].done) && wv_shard_count() > i)
            wv_shard_call(i, stop_slot, &slots[i]);
    free(slots);
    wv_redis_script_free(l->script);
    wv__rl_table_free(l->table);
    free(l->header);
    free(l->redis_url);
    free(l->prefix);
    free(l);
}

/* ----------------------------------------------------------------- setup */

static bool name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > NAME_MAX_LEN)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '.' || *s == '-'))
            return false;
    return true;
}

static bool token_ok(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *s))
            return false;
    return true;
}

static bool printable_ok(const char *s, size_t max)
{
    if (strlen(s) > max)
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 0x7f)
            return false;
    return true;
}

static int check_opts(const wv_ratelimit_opts *o, const char *name, int64_t *burst)
{
    if (!name_ok(name))
        return wv_fail(-EINVAL, "ratelimit: the name must be 1 to %d of A-Z a-z 0-9 _ . -",
                       NAME_MAX_LEN);
    if (!(o->rate > 0) || !isfinite(o->rate) || o->rate > 1e9)
        return wv_fail(-EINVAL, "ratelimit %s: rate must be above 0 and at most 1e9 per second",
                       name);
    bool in_redis = o->redis || o->redis_url;
    if (in_redis && o->rate > 1e6)
        return wv_fail(-EINVAL, "ratelimit %s: in Redis the rate is at most 1e6 per second", name);
    *burst = o->burst ? o->burst : (int64_t)ceil(o->rate);
    if (*burst < 1 || *burst > 1000000)
        return wv_fail(-EINVAL, "ratelimit %s: burst must be 1 to 1000000", name);
    if ((double)*burst * (1e9 / o->rate) > (double)MAX_TAU_NS)
        return wv_fail(-EINVAL, "ratelimit %s: a bucket that takes over 3 years to fill", name);
    if (o->key == WV_RATELIMIT_KEY_HEADER && !token_ok(o->header))
        return wv_fail(-EINVAL, "ratelimit %s: KEY_HEADER needs a header name", name);
    if (o->key == WV_RATELIMIT_KEY_FN && !o->key_fn)
        return wv_fail(-EINVAL, "ratelimit %s: KEY_FN needs key_fn", name);
    if (o->key > WV_RATELIMIT_KEY_FN || o->headers > WV_RATELIMIT_HEADERS_NONE)
        return wv_fail(-EINVAL, "ratelimit %s: unknown key or headers choice", name);
    if (o->forwarded_hops < 0 || o->forwarded_hops > MAX_FORWARDED_LINES * 8)
        return wv_fail(-EINVAL, "ratelimit %s: forwarded_hops must be 0 to %d", name,
                       MAX_FORWARDED_LINES * 8);
    if (o->redis && o->redis_url)
        return wv_fail(-EINVAL, "ratelimit %s: give redis or redis_url, not both", name);
    if (o->redis_url && strncmp(o->redis_url, "redis://", 8) != 0 &&
        strncmp(o->redis_url, "rediss://", 9) != 0 && strncmp(o->redis_url, "unix://", 7) != 0)
        return wv_fail(-EINVAL, "ratelimit %s: redis_url must be redis://, rediss:// or unix://",
                       name);
    if (o->redis_prefix && !printable_ok(o->redis_prefix, PREFIX_MAX_LEN))
        return wv_fail(-EINVAL, "ratelimit %s: redis_prefix: at most %d printable characters", name,
                       PREFIX_MAX_LEN);
    if (o->redis_timeout_ms < 0)
        return wv_fail(-EINVAL, "ratelimit %s: redis_timeout_ms must be >= 0", name);
    if (o->capacity > ((size_t)1 << 28))
        return wv_fail(-EINVAL, "ratelimit %s: capacity is at most 2^28 keys", name);
    return 0;
}

int wv_ratelimit(wv_router *r, const wv_ratelimit_opts *o)
{
    if (!r || !o)
        return wv_fail(-EINVAL, "ratelimit: no router or options");
    const char *name = o->name ? o->name : "default";
    int64_t burst = 0;
    int rc = check_opts(o, name, &burst);
    if (rc < 0)
        return rc;
    limiter *l = calloc(1, sizeof *l);
    if (!l)
        return -ENOMEM;
    snprintf(l->name, sizeof l->name, "%s", name);
    double interval_ns = 1e9 / o->rate;
    l->ns.interval = (int64_t)llround(interval_ns) > 0 ? (int64_t)llround(interval_ns) : 1;
    l->ns.tau = l->ns.interval * burst;
    l->us.interval = (int64_t)llround(1e6 / o->rate) > 0 ? (int64_t)llround(1e6 / o->rate) : 1;
    l->us.tau = l->us.interval * burst;
    l->burst = burst;
    l->key = o->key;
    l->key_fn = o->key_fn;
    l->key_arg = o->key_arg;
    l->hops = o->forwarded_hops;
    l->redis = o->redis;
    l->redis_arg = o->redis_arg;
    l->timeout_ms = o->redis_timeout_ms ? o->redis_timeout_ms : DEFAULT_TIMEOUT_MS;
    l->fail_closed = o->fail_closed;
    l->headers = o->headers;
    wv__rl_policy_value(l->policy, sizeof l->policy, l->name, burst, l->ns.tau);
    snprintf(l->limit, sizeof l->limit, "%lld", (long long)burst);
    snprintf(l->interval_arg, sizeof l->interval_arg, "%lld", (long long)l->us.interval);
    snprintf(l->tau_arg, sizeof l->tau_arg, "%lld", (long long)l->us.tau);

    if (o->key == WV_RATELIMIT_KEY_HEADER && !(l->header = strdup(o->header)))
        rc = -ENOMEM;
    if (rc == 0 && (o->redis || o->redis_url)) {
        l->prefix = strdup(o->redis_prefix ? o->redis_prefix : "ratelimit:");
        if (!l->prefix)
            rc = -ENOMEM;
        if (rc == 0 && o->redis_url) {
            l->redis_url = strdup(o->redis_url);
            wv_url_redact(o->redis_url, l->url_shown, sizeof l->url_shown);
            if (!l->redis_url)
                rc = -ENOMEM;
        }
        if (rc == 0)
            rc = wv_redis_script_new(BUCKET_LUA, &l->script);
    } else if (rc == 0) {
        rc = wv__rl_table_new(o->capacity ? o->capacity : DEFAULT_CAPACITY, &l->table);
    }
    if (rc == 0)
        rc = register_metrics(l);
    if (rc < 0) {
        limiter_free(l);
        return rc;
    }
    return wv_router_use(
        r, &(wv_middleware){
               .name = "ratelimit", .before = ratelimit_before, .arg = l, .free = limiter_free});
}
