/*
 * The cache API over each backend: the in-process store (no server), Redis
 * ($WEAVE_TEST_REDIS_URL, as tests/unit/test_redis.c) and memcached
 * ($WEAVE_TEST_MEMCACHED_SERVERS). Without those variables the test fails
 * and says so, unless WEAVE_TEST_CACHE_SKIP_SERVERS=1 (the memory tests
 * still run). One test starts a Redis of its own to stop it.
 */
#include "harness.h"

#include "weave/cache.h"
#include "weave/redis.h"

static const char *redis_url, *memcached_servers;
static char redis_cache_url[256], memcached_cache_url[256];
static char prefix[32];

static bool buf_is(const wv_buf *b, const char *s, size_t n)
{
    return b->n == n && memcmp(b->p, s, n) == 0;
}

/* Run body(cache, arg) in a one-shard runtime with a handle on url. */
typedef int cache_body(wv_cache *c, void *arg);
typedef struct cache_run {
    const char *url;
    const wv_cache_opts *opts;
    cache_body *body;
    void *arg;
} cache_run;

static int cache_main(void *arg)
{
    cache_run *cr = arg;
    wv_cache *c;
    int rc = wv_cache_open(cr->url, cr->opts, &c);
    if (!CHECK_EQ(rc, 0)) {
        fprintf(stderr, "open %s: %s\n", cr->url, wv_errmsg());
        return -1;
    }
    rc = cr->body(c, cr->arg);
    wv_cache_close(c);
    return rc;
}

static void run_cache(const char *url, const wv_cache_opts *opts, cache_body *body, void *arg)
{
    cache_run cr = {url, opts, body, arg};
    assert_int_equal(run_in_rt(1, cache_main, &cr), 0);
    assert_checks_passed();
}

/* Every backend the run has: memory always, Redis and memcached when set. */
static void run_each(const wv_cache_opts *opts, cache_body *body, void *arg)
{
    run_cache("memory://", opts, body, arg);
    if (redis_url)
        run_cache(redis_cache_url, opts, body, arg);
    if (memcached_servers)
        run_cache(memcached_cache_url, opts, body, arg);
}

static wv_str key_of(char *buf, size_t cap, const char *name)
{
    int n = snprintf(buf, cap, "%s%s", prefix, name);
    return (wv_str){buf, (size_t)n};
}
#define KEY(name) key_of((char[128]){0}, 128, (name))

/* ------------------------------------------------------------ basics */

static int roundtrip_body(wv_cache *c, void *arg)
{
    static const char value[] = "bin\0ary \xff value";
    wv_str k = KEY("roundtrip");
    wv_cache_delete(c, k);
    wv_buf v = {0};
    CHECK_EQ(wv_cache_get(c, k, &v), 0);
    CHECK_EQ(wv_cache_set(c, k, (wv_str){value, sizeof value - 1}, 0), 0);
    CHECK_EQ(wv_cache_get(c, k, &v), 1);
    CHECK(buf_is(&v, value, sizeof value - 1));
    CHECK_EQ(wv_cache_set(c, k, WV_STR(""), 0), 0); /* an empty value is a value */
    wv_buf_reset(&v);
    CHECK_EQ(wv_cache_get(c, k, &v), 1);
    CHECK_EQ(v.n, 0);
    CHECK_EQ(wv_cache_delete(c, k), 1);
    CHECK_EQ(wv_cache_delete(c, k), 0);
    CHECK_EQ(wv_cache_get(c, k, &v), 0);
    CHECK_EQ(wv_cache_ping(c), 0);
    wv_cache_stats st;
    wv_cache_stats_get(c, &st);
    CHECK_EQ(st.hits, 2);
    CHECK_EQ(st.misses, 2);
    wv_buf_free(&v);
    return 0;
}

static void test_cache_set_get_delete_on_every_backend(void **state)
{
    run_each(NULL, roundtrip_body, NULL);
}

static int ttl_body(wv_cache *c, void *arg)
{
    wv_str k = KEY("ttl");
    /* memcached counts whole seconds: 1 s there, 150 ms elsewhere */
    bool seconds = strcmp(wv_cache_backend(c), "memcached") == 0;
    CHECK_EQ(wv_cache_set(c, k, WV_STR("soon gone"), seconds ? 1000 : 150), 0);
    wv_buf v = {0};
    CHECK_EQ(wv_cache_get(c, k, &v), 1);
    wv_sleep_ms(seconds ? 2100 : 400);
    CHECK_EQ(wv_cache_get(c, k, &v), 0);
    CHECK_EQ(wv_cache_set(c, k, WV_STR("kept"), 0), 0);
    wv_sleep_ms(200);
    CHECK_EQ(wv_cache_get(c, k, &v), 1);
    CHECK_EQ(wv_cache_set(c, k, WV_STR("x"), -1), -EINVAL);
    wv_cache_delete(c, k);
    wv_buf_free(&v);
    return 0;
}

static void test_cache_a_value_expires_after_its_ttl_on_every_backend(void **state)
{
    run_each(NULL, ttl_body, NULL);
}

static int key_rule_body(wv_cache *c, void *arg)
{
    char long_key[252];
    memset(long_key, 'k', sizeof long_key);
    wv_str bad[] = {
        WV_STR(""),        WV_STR("has space"), WV_STR("tab\there"), WV_STR("nul\0byte"),
        WV_STR("del\x7f"), WV_STR("newline\n"), {long_key, 251},
    };
    wv_buf v = {0};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        CHECK(!wv_cache_key_valid(bad[i]));
        CHECK_EQ(wv_cache_set(c, bad[i], WV_STR("v"), 0), -EINVAL);
        CHECK_EQ(wv_cache_get(c, bad[i], &v), -EINVAL);
        CHECK_EQ(wv_cache_delete(c, bad[i]), -EINVAL);
    }
    CHECK(strstr(wv_errmsg(), "250") != NULL || strstr(wv_errmsg(), "bytes") != NULL);
    /* 250 bytes and UTF-8 are fine */
    CHECK(wv_cache_key_valid((wv_str){long_key, 250}));
    CHECK(wv_cache_key_valid(WV_STR("caf\xc3\xa9")));
    CHECK_EQ(wv_cache_set(c, (wv_str){long_key, 250}, WV_STR("v"), 0), 0);
    CHECK_EQ(wv_cache_delete(c, (wv_str){long_key, 250}), 1);
    wv_buf_free(&v);
    return 0;
}

static void test_cache_refuses_the_same_keys_on_every_backend(void **state)
{
    run_each(NULL, key_rule_body, NULL);
}

static int too_big_body(wv_cache *c, void *arg)
{
    char big[2048];
    memset(big, 'x', sizeof big);
    CHECK_EQ(wv_cache_set(c, KEY("big"), (wv_str){big, 1025}, 0), -EMSGSIZE);
    CHECK_EQ(wv_cache_set(c, KEY("big"), (wv_str){big, 1024}, 0), 0);
    wv_cache_delete(c, KEY("big"));
    return 0;
}

static void test_cache_a_value_over_max_value_is_emsgsize_on_every_backend(void **state)
{
    run_each(&(wv_cache_opts){.max_value = 1024}, too_big_body, NULL);
}

/* ------------------------------------------------------ memory store */

typedef struct two_shards {
    int rc;
} two_shards;

static int set_on_this_shard(void *arg)
{
    wv_cache *c;
    if (wv_cache_open("memory://", NULL, &c) < 0)
        return -1;
    int rc = wv_cache_set(c, WV_STR("shared:key"), WV_STR("from shard 1"), 0);
    wv_cache_close(c);
    return rc;
}

static int shards_main(void *arg)
{
    wv_cache *c;
    REQUIRE_EQ(wv_cache_open("memory://", NULL, &c), 0);
    CHECK_EQ(wv_shard_call(1, set_on_this_shard, NULL), 0);
    wv_buf v = {0};
    CHECK_EQ(wv_cache_get(c, WV_STR("shared:key"), &v), 1);
    CHECK(buf_is(&v, "from shard 1", 12));
    CHECK_EQ(wv_cache_delete(c, WV_STR("shared:key")), 1);
    wv_cache_close(c);
    wv_buf_free(&v);
    return 0;
}

static void test_cache_memory_store_is_shared_by_every_shard(void **state)
{
    assert_int_equal(run_in_rt(2, shards_main, NULL), 0);
    assert_checks_passed();
}

static int bounded_body(wv_cache *c, void *arg)
{
    /* 4,000 values of 1 KiB into a 1 MiB store: the oldest go */
    char value[1024];
    memset(value, 'v', sizeof value);
    for (int i = 0; i < 4000; i++) {
        char name[32];
        snprintf(name, sizeof name, "fill:%d", i);
        CHECK_EQ(wv_cache_set(c, KEY(name), (wv_str){value, sizeof value}, 0), 0);
    }
    wv_buf v = {0};
    CHECK_EQ(wv_cache_get(c, KEY("fill:0"), &v), 0);
    CHECK_EQ(wv_cache_get(c, KEY("fill:3999"), &v), 1);
    int kept = 0;
    for (int i = 0; i < 4000; i++) {
        char name[32];
        snprintf(name, sizeof name, "fill:%d", i);
        wv_buf_reset(&v);
        kept += wv_cache_get(c, KEY(name), &v) == 1;
    }
    CHECK(kept > 100 && kept < 1024); /* at most 1 MiB of them, a good part of it used */
    wv_buf_free(&v);
    return 0;
}

static void test_cache_memory_store_is_bounded_by_the_size_in_its_url(void **state)
{
    run_cache("memory://?size=1mb", NULL, bounded_body, NULL);
}

/* ------------------------------------------------------ single-flight */

typedef struct flight_test {
    wv_cache *c;
    atomic_int fills;
    atomic_int ok;
    atomic_int started;
    int fail_with;            /* the fill's error, 0 for none */
    int64_t fill_deadline_ms; /* > 0: the filler's own deadline cuts its fill short */
    int errors;
} flight_test;

static int slow_fill(void *arg, wv_buf *value, int64_t *ttl_ms)
{
    flight_test *t = arg;
    atomic_fetch_add(&t->fills, 1);
    int rc = wv_sleep_ms(50);
    if (rc < 0)
        return rc;
    if (t->fail_with)
        return wv_fail(t->fail_with, "the database said no");
    *ttl_ms = 60000;
    return wv_buf_puts(value, "computed");
}

static int asker(void *arg)
{
    flight_test *t = arg;
    wv_buf v = {0};
    int64_t old = wv_deadline();
    /* the first asker, which becomes the filler (the backend answers the
     * fibers' reads in order), may have a short deadline of its own */
    if (t->fill_deadline_ms > 0 && atomic_fetch_add(&t->started, 1) == 0)
        wv_deadline_set(wv_after_ms(t->fill_deadline_ms));
    int rc = wv_cache_get_or_fill(t->c, KEY("flight"), &v, 60000, slow_fill, t);
    wv_deadline_set(old);
    if (rc == 0 && buf_is(&v, "computed", 8))
        atomic_fetch_add(&t->ok, 1);
    else if (rc < 0) {
        t->errors++;
        if (t->fail_with)
            CHECK(rc == t->fail_with && strstr(wv_errmsg(), "the database said no"));
    }
    wv_buf_free(&v);
    return 0;
}

static int flight_body(wv_cache *c, void *arg)
{
    flight_test *t = arg;
    t->c = c;
    wv_cache_delete(c, KEY("flight"));
    wv_group *g = wv_group_new();
    for (int i = 0; i < 100; i++)
        wv_group_spawn(g, asker, t, NULL);
    wv_group_join(g);
    wv_group_free(g);
    wv_cache_stats st;
    wv_cache_stats_get(c, &st);
    if (t->fail_with) {
        CHECK_EQ(atomic_load(&t->fills), 1);
        CHECK_EQ(t->errors, 100);
    } else if (t->fill_deadline_ms) {
        CHECK_EQ(atomic_load(&t->fills), 2); /* the cut-short filler, then one waiter */
        CHECK_EQ(atomic_load(&t->ok), 99);
        CHECK_EQ(t->errors, 1);
    } else {
        CHECK_EQ(atomic_load(&t->fills), 1);
        CHECK_EQ(atomic_load(&t->ok), 100);
        CHECK_EQ(st.shared, 99);
        /* it was stored: the next ask is a hit and fills nothing */
        wv_buf v = {0};
        CHECK_EQ(wv_cache_get_or_fill(c, KEY("flight"), &v, 60000, slow_fill, t), 1);
        CHECK_EQ(atomic_load(&t->fills), 1);
        wv_buf_free(&v);
    }
    wv_cache_delete(c, KEY("flight"));
    t->fills = 0;
    t->ok = 0;
    t->started = 0;
    t->errors = 0;
    return 0;
}

static void test_cache_get_or_fill_runs_the_fill_once_for_100_fibers(void **state)
{
    flight_test t = {0};
    run_each(NULL, flight_body, &t);
}

static void test_cache_a_fill_error_reaches_every_waiting_fiber(void **state)
{
    flight_test t = {.fail_with = -EREMOTEIO};
    run_each(NULL, flight_body, &t);
}

static void test_cache_a_filler_cut_short_by_its_deadline_hands_over_to_a_waiter(void **state)
{
    flight_test t = {.fill_deadline_ms = 20};
    run_each(NULL, flight_body, &t);
}

/* ------------------------------------------------------- backends */

static int prefix_body(wv_cache *c, void *arg)
{
    CHECK_EQ(wv_cache_set(c, KEY("p"), WV_STR("namespaced"), 0), 0);
    wv_redis *r;
    REQUIRE_EQ(wv_redis_open(redis_url, NULL, &r), 0);
    char raw[160];
    snprintf(raw, sizeof raw, "app1:%sp", prefix);
    wv_buf v = {0};
    CHECK_EQ(wv_redis_get(r, (wv_str){raw, strlen(raw)}, &v), 1);
    CHECK(buf_is(&v, "namespaced", 10));
    CHECK_EQ(wv_cache_delete(c, KEY("p")), 1);
    wv_redis_close(r);
    wv_buf_free(&v);
    return 0;
}

static void test_cache_prefix_is_put_before_every_key(void **state)
{
    if (!redis_url) {
        fail_msg("WEAVE_TEST_REDIS_URL is not set");
        return;
    }
    run_cache(redis_cache_url, &(wv_cache_opts){.prefix = "app1:"}, prefix_body, NULL);
}

typedef struct private_redis {
    char dir[64];
    int port;
} private_redis;

static int ctl(void *arg)
{
    return system((const char *)arg) == 0 ? 0 : -EIO;
}

static int down_main(void *arg)
{
    private_redis *pr = arg;
    char cmd[512], url[64];
    snprintf(cmd, sizeof cmd, "%s/scripts/redis_test_server.sh start %s %d >/dev/null",
             getenv("WEAVE_SOURCE_DIR"), pr->dir, pr->port);
    REQUIRE_EQ(wv_offload(ctl, cmd), 0);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", pr->port);
    wv_cache *c;
    REQUIRE_EQ(wv_cache_open(url, NULL, &c), 0);
    CHECK_EQ(wv_cache_set(c, WV_STR("k"), WV_STR("v"), 0), 0);
    snprintf(cmd, sizeof cmd, "%s/scripts/redis_test_server.sh stop %s", getenv("WEAVE_SOURCE_DIR"),
             pr->dir);
    REQUIRE_EQ(wv_offload(ctl, cmd), 0);
    /* get and set fail loudly */
    wv_buf v = {0};
    CHECK(wv_cache_get(c, WV_STR("k"), &v) < 0);
    CHECK(wv_cache_set(c, WV_STR("k"), WV_STR("v"), 0) < 0);
    CHECK(wv_cache_ping(c) < 0);
    /* get_or_fill reads around it */
    flight_test t = {0};
    CHECK_EQ(wv_cache_get_or_fill(c, WV_STR("k"), &v, 0, slow_fill, &t), 0);
    CHECK(buf_is(&v, "computed", 8));
    wv_cache_stats st;
    wv_cache_stats_get(c, &st);
    CHECK(st.errors >= 1);
    wv_cache_close(c);
    wv_buf_free(&v);
    return 0;
}

static void test_cache_get_or_fill_reads_around_a_backend_that_is_down(void **state)
{
    private_redis pr;
    snprintf(pr.dir, sizeof pr.dir, "/tmp/weave-test-cache-redis.%d", (int)getpid());
    uint16_t port = 0;
    int fd = listen_loopback(&port);
    close(fd);
    pr.port = port;
    assert_int_equal(run_in_rt(1, down_main, &pr), 0);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "%s/scripts/redis_test_server.sh stop %s; rm -rf %s",
             getenv("WEAVE_SOURCE_DIR"), pr.dir, pr.dir);
    assert_int_equal(system(cmd), 0);
    assert_checks_passed();
}

static int url_errors_main(void *arg)
{
    wv_cache *c;
    CHECK_EQ(wv_cache_open("ftp://x", NULL, &c), -EINVAL);
    CHECK(strstr(wv_errmsg(), "memory://") != NULL);
    CHECK_EQ(wv_cache_open("memory://?size=lots", NULL, &c), -EINVAL);
    CHECK_EQ(wv_cache_open("memory://", &(wv_cache_opts){.prefix = "bad prefix"}, &c), -EINVAL);
    CHECK_EQ(wv_cache_open("redis://:secret@127.0.0.1:1", NULL, &c), -ECONNREFUSED);
    CHECK(strstr(wv_errmsg(), "secret") == NULL);
    REQUIRE_EQ(wv_cache_open("memory://", NULL, &c), 0);
    CHECK_STR_EQ(wv_cache_backend(c), "memory");
    wv_cache_close(c);
    return 0;
}

static void test_cache_bad_urls_are_einval_and_a_dead_server_fails_the_open(void **state)
{
    assert_int_equal(run_in_rt(1, url_errors_main, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    redis_url = getenv("WEAVE_TEST_REDIS_URL");
    memcached_servers = getenv("WEAVE_TEST_MEMCACHED_SERVERS");
    const char *skip = getenv("WEAVE_TEST_CACHE_SKIP_SERVERS");
    if ((!redis_url || !memcached_servers) && !(skip && strcmp(skip, "1") == 0)) {
        fprintf(stderr, "test_cache: WEAVE_TEST_REDIS_URL and WEAVE_TEST_MEMCACHED_SERVERS "
                        "must be set (scripts/test.sh starts the servers), or "
                        "WEAVE_TEST_CACHE_SKIP_SERVERS=1 to test the memory backend alone.\n");
        return 1;
    }
    if (redis_url && !*redis_url)
        redis_url = NULL;
    if (memcached_servers && !*memcached_servers)
        memcached_servers = NULL;
    if (redis_url)
        snprintf(redis_cache_url, sizeof redis_cache_url, "%s", redis_url);
    if (memcached_servers)
        snprintf(memcached_cache_url, sizeof memcached_cache_url, "memcached://%s",
                 memcached_servers);
    snprintf(prefix, sizeof prefix, "wvc:%d:", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_set_get_delete_on_every_backend),
        cmocka_unit_test(test_cache_a_value_expires_after_its_ttl_on_every_backend),
        cmocka_unit_test(test_cache_refuses_the_same_keys_on_every_backend),
        cmocka_unit_test(test_cache_a_value_over_max_value_is_emsgsize_on_every_backend),
        cmocka_unit_test(test_cache_memory_store_is_shared_by_every_shard),
        cmocka_unit_test(test_cache_memory_store_is_bounded_by_the_size_in_its_url),
        cmocka_unit_test(test_cache_get_or_fill_runs_the_fill_once_for_100_fibers),
        cmocka_unit_test(test_cache_a_fill_error_reaches_every_waiting_fiber),
        cmocka_unit_test(test_cache_a_filler_cut_short_by_its_deadline_hands_over_to_a_waiter),
        cmocka_unit_test(test_cache_prefix_is_put_before_every_key),
        cmocka_unit_test(test_cache_get_or_fill_reads_around_a_backend_that_is_down),
        cmocka_unit_test(test_cache_bad_urls_are_einval_and_a_dead_server_fails_the_open),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
