/*
 * The memcached client against three real memcached 1.6 servers:
 * $WEAVE_TEST_MEMCACHED_SERVERS ("127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3",
 * as scripts/test.sh starts them with scripts/memcached_test_server.sh).
 * The kill test stops and restarts the second one through
 * $WEAVE_TEST_MEMCACHED_CTL (the script) and $WEAVE_TEST_MEMCACHED_DIRS
 * (the servers' directories, comma-separated, in the same order). Without
 * the servers the test fails and says so, unless WEAVE_TEST_MEMCACHED_SKIP=1.
 *
 * Every key starts with "wvt:<pid>:" so two builds can share the servers.
 * The fault tests use servers of their own made here: a socket that listens
 * and never answers, one that answers with bytes that are not memcached's,
 * one that does not know the meta commands, one that answers late.
 * The peers: pymemcache (reads and writes values and flags with weave) and
 * pylibmc (finds every key where weave placed it, for each distribution).
 */
#include "harness.h"

#include "weave/buf.h"
#include "weave/memcache.h"

static const char *servers, *srv_ctl, *srv_dirs;
static char server[3][64]; /* each server's "host:port" */
static char prefix[32];

/* A key of this process: "wvt:<pid>:<name>". */
static wv_str key_of(char *buf, size_t cap, const char *name)
{
    int n = snprintf(buf, cap, "%s%s", prefix, name);
    return (wv_str){buf, (size_t)n};
}
#define KEY(name) key_of((char[300]){0}, 300, (name))

static bool buf_is(const wv_buf *b, const void *s, size_t n)
{
    return b->n == n && memcmp(b->p, s, n) == 0;
}

/* Run body(m, arg) with a client on `list` (opts may be NULL) inside one
 * shard; closes the client after. */
typedef int client_body(wv_memcache *m, void *arg);
typedef struct client_run {
    const char *list;
    const wv_memcache_opts *opts;
    client_body *body;
    void *arg;
} client_run;

static int client_main(void *arg)
{
    client_run *cr = arg;
    wv_memcache *m;
    int rc = wv_memcache_open(cr->list, cr->opts, &m);
    if (!CHECK_EQ(rc, 0)) {
        fprintf(stderr, "open %s: %s\n", cr->list, wv_errmsg());
        return -1;
    }
    rc = cr->body(m, cr->arg);
    wv_memcache_close(m);
    return rc;
}

static void run_client(const char *list, const wv_memcache_opts *opts, client_body *body, void *arg)
{
    client_run cr = {list, opts, body, arg};
    assert_int_equal(run_in_rt(1, client_main, &cr), 0);
    assert_checks_passed();
}

static const wv_memcache_opts classic_opts = {.classic = true};

/* ------------------------------------------------------------ commands */

static int set_get_body(wv_memcache *m, void *arg)
{
    (void)arg;
    static const char value[] = "caf\xc3\xa9\0\r\nEND\r\n\xff";
    wv_str k = KEY("set-get");
    CHECK_EQ(wv_memcache_set(m, k, (wv_str){value, sizeof value - 1},
                             &(wv_memcache_set_opts){.flags = 0xdeadbeef}),
             1);
    wv_buf v = {0};
    uint32_t flags = 0;
    uint64_t cas = 0;
    CHECK_EQ(wv_memcache_get(m, k, &v, &flags, &cas), 1);
    CHECK(buf_is(&v, value, sizeof value - 1));
    CHECK_EQ(flags, 0xdeadbeef);
    CHECK(cas != 0);
    /* an empty value is a value */
    CHECK_EQ(wv_memcache_set(m, k, WV_STR(""), NULL), 1);
    v.n = 0;
    CHECK_EQ(wv_memcache_get(m, k, &v, &flags, NULL), 1);
    CHECK_EQ(v.n, 0);
    CHECK_EQ(flags, 0);
    /* the out parameters may all be NULL */
    CHECK_EQ(wv_memcache_get(m, k, NULL, NULL, NULL), 1);
    CHECK_EQ(wv_memcache_delete(m, k), 1);
    wv_buf_free(&v);
    return 0;
}

static void test_memcache_set_then_get_returns_the_binary_value_and_its_flags(void **state)
{
    run_client(servers, NULL, set_get_body, NULL);
}

static void test_memcache_classic_commands_set_and_get_the_same(void **state)
{
    run_client(servers, &classic_opts, set_get_body, NULL);
}

static int miss_body(wv_memcache *m, void *arg)
{
    (void)arg;
    wv_buf v = {0};
    wv_buf_append(&v, "kept", 4);
    uint32_t flags = 7;
    uint64_t cas = 9;
    CHECK_EQ(wv_memcache_get(m, KEY("never-set"), &v, &flags, &cas), 0);
    CHECK(buf_is(&v, "kept", 4));
    CHECK_EQ(flags, 7);
    CHECK_EQ(cas, 9);
    wv_buf_free(&v);
    return 0;
}

static void test_memcache_get_of_a_missing_key_returns_0_and_touches_nothing(void **state)
{
    run_client(servers, NULL, miss_body, NULL);
}

static void test_memcache_classic_get_of_a_missing_key_returns_0(void **state)
{
    run_client(servers, &classic_opts, miss_body, NULL);
}

static bool value_is(wv_memcache *m, wv_str k, const char *want)
{
    wv_buf v = {0};
    bool ok = wv_memcache_get(m, k, &v, NULL, NULL) == 1 && buf_is(&v, want, strlen(want));
    wv_buf_free(&v);
    return ok;
}

static int modes_body(wv_memcache *m, void *arg)
{
    (void)arg;
    wv_str k = KEY("modes");
    wv_memcache_delete(m, k);
#define MODE(md) (&(wv_memcache_set_opts){.mode = (md), .flags = 5})
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("b"), MODE(WV_MEMCACHE_REPLACE)), 0);
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("b"), MODE(WV_MEMCACHE_APPEND)), 0);
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("b"), MODE(WV_MEMCACHE_PREPEND)), 0);
    CHECK_EQ(wv_memcache_get(m, k, NULL, NULL, NULL), 0);
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("b"), MODE(WV_MEMCACHE_ADD)), 1);
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("x"), MODE(WV_MEMCACHE_ADD)), 0);
    CHECK(value_is(m, k, "b"));
    CHECK_EQ(
        wv_memcache_set(m, k, WV_STR("c"), &(wv_memcache_set_opts){.mode = WV_MEMCACHE_APPEND}), 1);
    CHECK_EQ(
        wv_memcache_set(m, k, WV_STR("a"), &(wv_memcache_set_opts){.mode = WV_MEMCACHE_PREPEND}),
        1);
    CHECK(value_is(m, k, "abc"));
    /* append and prepend keep the item's flags */
    uint32_t flags = 0;
    CHECK_EQ(wv_memcache_get(m, k, NULL, &flags, NULL), 1);
    CHECK_EQ(flags, 5);
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("r"), MODE(WV_MEMCACHE_REPLACE)), 1);
    CHECK(value_is(m, k, "r"));
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("r"), MODE((wv_memcache_mode)9)), -EINVAL);
#undef MODE
    wv_memcache_delete(m, k);
    return 0;
}

static void test_memcache_add_replace_append_prepend_store_only_when_they_should(void **state)
{
    run_client(servers, NULL, modes_body, NULL);
    run_client(servers, &classic_opts, modes_body, NULL);
}

static int cas_body(wv_memcache *m, void *arg)
{
    (void)arg;
    wv_str k = KEY("cas");
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("1"), NULL), 1);
    uint64_t cas = 0, cas2 = 0;
    CHECK_EQ(wv_memcache_get(m, k, NULL, NULL, &cas), 1);
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("2"), &(wv_memcache_set_opts){.compare_cas = cas}), 1);
    CHECK(value_is(m, k, "2"));
    /* a second writer with the same (now old) CAS loses */
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("3"), &(wv_memcache_set_opts){.compare_cas = cas}), 0);
    CHECK(value_is(m, k, "2"));
    CHECK_EQ(wv_memcache_get(m, k, NULL, NULL, &cas2), 1);
    CHECK(cas2 != cas);
    CHECK_EQ(
        wv_memcache_set(m, k, WV_STR("4"),
                        &(wv_memcache_set_opts){.compare_cas = cas2, .mode = WV_MEMCACHE_REPLACE}),
        1);
    /* gone since: 0 as well */
    CHECK_EQ(wv_memcache_delete(m, k), 1);
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("5"), &(wv_memcache_set_opts){.compare_cas = cas2}), 0);
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("5"),
                             &(wv_memcache_set_opts){.compare_cas = 1, .mode = WV_MEMCACHE_ADD}),
             -EINVAL);
    return 0;
}

static void test_memcache_compare_cas_stores_once_and_a_conflict_returns_0(void **state)
{
    run_client(servers, NULL, cas_body, NULL);
    run_client(servers, &classic_opts, cas_body, NULL);
}

static int delete_body(wv_memcache *m, void *arg)
{
    (void)arg;
    wv_str k = KEY("delete");
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("x"), NULL), 1);
    CHECK_EQ(wv_memcache_delete(m, k), 1);
    CHECK_EQ(wv_memcache_get(m, k, NULL, NULL, NULL), 0);
    CHECK_EQ(wv_memcache_delete(m, k), 0);
    return 0;
}

static void test_memcache_delete_returns_1_then_0(void **state)
{
    run_client(servers, NULL, delete_body, NULL);
    run_client(servers, &classic_opts, delete_body, NULL);
}

static int incr_body(wv_memcache *m, void *arg)
{
    (void)arg;
    wv_str k = KEY("counter");
    uint64_t v = 0;
    wv_memcache_delete(m, k);
    CHECK_EQ(wv_memcache_incr(m, k, 1, &v), 0); /* not created */
    CHECK_EQ(wv_memcache_get(m, k, NULL, NULL, NULL), 0);
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("10"), NULL), 1);
    CHECK_EQ(wv_memcache_incr(m, k, 5, &v), 1);
    CHECK_EQ(v, 15);
    CHECK_EQ(wv_memcache_incr(m, k, -3, &v), 1);
    CHECK_EQ(v, 12);
    CHECK_EQ(wv_memcache_incr(m, k, INT64_MIN, &v), 1); /* stops at 0 */
    CHECK_EQ(v, 0);
    CHECK_EQ(wv_memcache_incr(m, k, 1, NULL), 1);
    CHECK_EQ(wv_memcache_incr(m, k, 0, &v), 1);
    CHECK_EQ(v, 1);
    /* adding wraps at 2^64 */
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("18446744073709551615"), NULL), 1);
    CHECK_EQ(wv_memcache_incr(m, k, 1, &v), 1);
    CHECK_EQ(v, 0);
    /* not a number: the server's CLIENT_ERROR */
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("ten"), NULL), 1);
    CHECK_EQ(wv_memcache_incr(m, k, 1, &v), -EINVAL);
    CHECK(strstr(wv_errmsg(), "CLIENT_ERROR cannot increment or decrement non-numeric value"));
    CHECK(strstr(wv_errmsg(), "memcached 127.0.0.1:"));
    /* and the connection is still in step */
    CHECK(value_is(m, k, "ten"));
    wv_memcache_delete(m, k);
    return 0;
}

static void test_memcache_incr_adds_a_signed_delta_and_a_missing_key_returns_0(void **state)
{
    run_client(servers, NULL, incr_body, NULL);
    run_client(servers, &classic_opts, incr_body, NULL);
}

static int ttl_body(wv_memcache *m, void *arg)
{
    (void)arg;
    wv_str short_k = KEY("ttl-short"), touched = KEY("ttl-touched");
    const wv_memcache_set_opts one_s = {.ttl_s = 1};
    CHECK_EQ(wv_memcache_set(m, short_k, WV_STR("x"), &one_s), 1);
    CHECK_EQ(wv_memcache_set(m, touched, WV_STR("y"), &one_s), 1);
    CHECK_EQ(wv_memcache_touch(m, touched, 100), 1);
    CHECK_EQ(wv_memcache_touch(m, KEY("ttl-never-set"), 100), 0);
    CHECK(value_is(m, short_k, "x"));
    /* memcached's clock ticks once a second: 1 s lasts up to 2 */
    wv_sleep_ms(2500);
    CHECK_EQ(wv_memcache_get(m, short_k, NULL, NULL, NULL), 0);
    CHECK(value_is(m, touched, "y"));
    /* a negative TTL expires at once */
    CHECK_EQ(wv_memcache_touch(m, touched, -1), 1);
    CHECK_EQ(wv_memcache_get(m, touched, NULL, NULL, NULL), 0);
    return 0;
}

static void test_memcache_a_ttl_expires_the_key_and_touch_extends_it(void **state)
{
    run_client(servers, NULL, ttl_body, NULL);
    run_client(servers, &classic_opts, ttl_body, NULL);
}

/* ------------------------------------------------------- refused locally */

static int invalid_keys_body(wv_memcache *m, void *arg)
{
    (void)arg;
    char long_key[252];
    memset(long_key, 'k', sizeof long_key);
    const wv_str bad[] = {
        WV_STR("a b"),      WV_STR("a\x01z"),  {long_key, 251},     WV_STR(""),
        WV_STR("tab\tbed"), WV_STR("del\x7f"), WV_STR("new\nline"),
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        wv_str k = bad[i];
        wv_buf v = {0};
        CHECK_EQ(wv_memcache_get(m, k, &v, NULL, NULL), -EINVAL);
        CHECK_EQ(wv_memcache_set(m, k, WV_STR("v"), NULL), -EINVAL);
        CHECK_EQ(wv_memcache_delete(m, k), -EINVAL);
        CHECK_EQ(wv_memcache_incr(m, k, 1, NULL), -EINVAL);
        CHECK_EQ(wv_memcache_touch(m, k, 1), -EINVAL);
        CHECK_EQ(wv_memcache_server_of(m, k), -EINVAL);
        wv_memcache_item items[2] = {{.key = WV_STR("fine")}, {.key = k}};
        CHECK_EQ(wv_memcache_get_multi(m, items, 2), -EINVAL);
        CHECK(strstr(wv_errmsg(), "memcached: ") != NULL);
    }
    CHECK(strstr(wv_errmsg(), "byte 0x0a at 3") != NULL);
    wv_memcache_stats st;
    wv_memcache_stats_get(m, &st);
    CHECK_EQ(st.requests, 0); /* nothing was sent, */
    CHECK_EQ(st.dials, 0);    /* nothing even dialed */
    /* 250 bytes is the limit, and bytes above 0x7f are fine */
    memset(long_key, 'k', 250);
    memcpy(long_key, prefix, strlen(prefix));
    memcpy(long_key + 240, "\xc3\xa9", 2);
    wv_str k = {long_key, 250};
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("long"), NULL), 1);
    CHECK(value_is(m, k, "long"));
    CHECK_EQ(wv_memcache_delete(m, k), 1);
    return 0;
}

static void test_memcache_invalid_keys_are_refused_with_einval_before_any_request(void **state)
{
    run_client(servers, NULL, invalid_keys_body, NULL);
}

static int max_value_body(wv_memcache *m, void *arg)
{
    (void)arg;
    char big[1001];
    memset(big, 'v', sizeof big);
    CHECK_EQ(wv_memcache_set(m, KEY("too-big"), (wv_str){big, sizeof big}, NULL), -EMSGSIZE);
    CHECK(strstr(wv_errmsg(), "1001 bytes is over max_value (1000)") != NULL);
    wv_memcache_stats st;
    wv_memcache_stats_get(m, &st);
    CHECK_EQ(st.requests, 0);
    CHECK_EQ(wv_memcache_set(m, KEY("just-fits"), (wv_str){big, 1000}, NULL), 1);
    wv_memcache_delete(m, KEY("just-fits"));
    return 0;
}

static void test_memcache_a_value_over_max_value_is_emsgsize_before_sending(void **state)
{
    run_client(servers, &(wv_memcache_opts){.max_value = 1000}, max_value_body, NULL);
}

static int reply_too_big_main(void *arg)
{
    (void)arg;
    wv_memcache *big, *small;
    REQUIRE_EQ(wv_memcache_open(server[0], NULL, &big), 0);
    REQUIRE_EQ(wv_memcache_open(server[0], &(wv_memcache_opts){.max_value = 1000}, &small), 0);
    char value[2000];
    memset(value, 'v', sizeof value);
    wv_str k = KEY("reply-too-big");
    CHECK_EQ(wv_memcache_set(big, k, (wv_str){value, sizeof value}, NULL), 1);
    CHECK_EQ(wv_memcache_set(small, KEY("small"), WV_STR("ok"), NULL), 1);
    wv_buf v = {0};
    CHECK_EQ(wv_memcache_get(small, k, &v, NULL, NULL), -EMSGSIZE);
    CHECK(strstr(wv_errmsg(), "value of 2000 bytes is over the limit of 1000") != NULL);
    /* the connection was dropped; the next request gets a new one */
    CHECK(value_is(small, KEY("small"), "ok"));
    wv_memcache_server_stats st;
    wv_memcache_server_stats_get(small, 0, &st);
    CHECK_EQ(st.dials, 2);
    CHECK_EQ(st.failures, 0); /* the limit is ours: no fault of the server */
    wv_memcache_delete(big, k);
    wv_memcache_delete(big, KEY("small"));
    wv_buf_free(&v);
    wv_memcache_close(big);
    wv_memcache_close(small);
    return 0;
}

static void test_memcache_a_reply_over_max_value_drops_the_connection_emsgsize(void **state)
{
    assert_int_equal(run_in_rt(1, reply_too_big_main, NULL), 0);
    assert_checks_passed();
}

static int server_error_body(wv_memcache *m, void *arg)
{
    (void)arg;
    /* 1 MiB is within max_value, but memcached's item limit (-I 1m)
     * counts the item's header too */
    size_t n = (size_t)1 << 20;
    char *big = malloc(n);
    REQUIRE(big != NULL);
    memset(big, 'x', n);
    wv_str k = KEY("server-error");
    CHECK_EQ(wv_memcache_set(m, k, (wv_str){big, n}, NULL), -EIO);
    CHECK(strstr(wv_errmsg(), "SERVER_ERROR object too large for cache") != NULL);
    CHECK(strstr(wv_errmsg(), "memcached 127.0.0.1:") != NULL);
    /* the server read the value and dropped it: the connection is in step */
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("small"), NULL), 1);
    CHECK(value_is(m, k, "small"));
    wv_memcache_server_stats st;
    wv_memcache_server_stats_get(m, wv_memcache_server_of(m, k), &st);
    CHECK_EQ(st.dials, 1);
    wv_memcache_delete(m, k);
    free(big);
    return 0;
}

static void test_memcache_server_error_is_eio_with_the_servers_words(void **state)
{
    run_client(servers, NULL, server_error_body, NULL);
    run_client(servers, &classic_opts, server_error_body, NULL);
}

static int small_buffer_body(wv_memcache *m, void *arg)
{
    (void)arg;
    wv_str k = KEY("small-buffer");
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("0123456789abcdef"), NULL), 1);
    wv_buf v = {.limit = 10};
    CHECK_EQ(wv_memcache_get(m, k, &v, NULL, NULL), -ENOMEM);
    CHECK(strstr(wv_errmsg(), "does not fit the buffer") != NULL);
    CHECK(value_is(m, k, "0123456789abcdef"));
    wv_memcache_delete(m, k);
    wv_buf_free(&v);
    return 0;
}

static void test_memcache_a_value_over_the_buffers_limit_is_enomem_in_step(void **state)
{
    run_client(servers, NULL, small_buffer_body, NULL);
}

/* ------------------------------------------------------ several servers */

static int multi_body(wv_memcache *m, void *arg)
{
    (void)arg;
    enum { SET = 30, ALL = 40 };
    wv_memcache_item items[ALL];
    char names[ALL][300];
    int on[3] = {0};
    for (int i = 0; i < ALL; i++) {
        char name[32];
        snprintf(name, sizeof name, "multi:%d", i);
        items[i] = (wv_memcache_item){.key = key_of(names[i], sizeof names[i], name)};
        if (i < SET) {
            char val[16];
            int n = snprintf(val, sizeof val, "value-%d", i);
            CHECK_EQ(wv_memcache_set(m, items[i].key, (wv_str){val, (size_t)n},
                                     &(wv_memcache_set_opts){.flags = (uint32_t)i}),
                     1);
            on[wv_memcache_server_of(m, items[i].key)]++;
        }
    }
    CHECK(on[0] > 0 && on[1] > 0 && on[2] > 0); /* every server holds some */
    CHECK_EQ(wv_memcache_get_multi(m, items, ALL), SET);
    for (int i = 0; i < ALL; i++) {
        char val[16];
        int n = snprintf(val, sizeof val, "value-%d", i);
        if (i < SET) {
            CHECK_EQ(items[i].rc, 1);
            CHECK(buf_is(&items[i].value, val, (size_t)n));
            CHECK_EQ(items[i].flags, i);
            CHECK(items[i].cas != 0);
        } else {
            CHECK_EQ(items[i].rc, 0);
            CHECK_EQ(items[i].value.n, 0);
        }
        wv_memcache_delete(m, items[i].key);
        wv_buf_free(&items[i].value);
    }
    return 0;
}

static void test_memcache_get_multi_gathers_hits_and_misses_from_every_server(void **state)
{
    run_client(servers, NULL, multi_body, NULL);
    run_client(servers, &classic_opts, multi_body, NULL);
}

/* Each server alone, through a client of its own. */
static int open_each(wv_memcache *one[3])
{
    for (int i = 0; i < 3; i++)
        if (wv_memcache_open(server[i], NULL, &one[i]) < 0)
            return -1;
    return 0;
}

static void close_each(wv_memcache *one[3])
{
    for (int i = 0; i < 3; i++)
        wv_memcache_close(one[i]);
}

static int spread_body(wv_memcache *m, void *arg)
{
    (void)arg;
    enum { KEYS = 300 };
    wv_memcache *one[3];
    REQUIRE_EQ(open_each(one), 0);
    for (int i = 0; i < 3; i++)
        CHECK_STR_EQ(wv_memcache_server_name(m, i), server[i]);
    CHECK(wv_memcache_server_name(m, 3) == NULL);
    int on[3] = {0}, wrong = 0;
    for (int i = 0; i < KEYS; i++) {
        char name[32];
        snprintf(name, sizeof name, "spread:%d", i);
        wv_str k = KEY(name);
        CHECK_EQ(wv_memcache_set(m, k, WV_STR("here"), NULL), 1);
        int home = wv_memcache_server_of(m, k);
        REQUIRE(home >= 0 && home < 3);
        on[home]++;
        /* on its server, and on no other */
        for (int s = 0; s < 3; s++)
            if ((wv_memcache_get(one[s], k, NULL, NULL, NULL) == 1) != (s == home))
                wrong++;
        wv_memcache_delete(m, k);
    }
    CHECK_EQ(wrong, 0);
    for (int s = 0; s < 3; s++)
        CHECK(on[s] > KEYS / 6); /* roughly even */
    printf("    %d keys: %d, %d, %d per server\n", KEYS, on[0], on[1], on[2]);
    close_each(one);
    return 0;
}

static void test_memcache_keys_are_spread_over_the_servers_as_ketama_places_them(void **state)
{
    run_client(servers, NULL, spread_body, NULL);
}

static int ping_main(void *arg)
{
    (void)arg;
    wv_memcache *m;
    REQUIRE_EQ(wv_memcache_open(servers, NULL, &m), 0);
    CHECK_EQ(wv_memcache_ping(m), 0);
    for (int i = 0; i < 3; i++) {
        wv_memcache_server_stats st;
        CHECK_EQ(wv_memcache_server_stats_get(m, i, &st), 0);
        CHECK(st.meta && st.connected && !st.dead);
    }
    CHECK_EQ(wv_memcache_server_stats_get(m, 3, &(wv_memcache_server_stats){0}), -EINVAL);
    wv_memcache_close(m);

    /* a server that refuses: the ping names it */
    uint16_t port = 0;
    int fd = listen_loopback(&port);
    REQUIRE(fd >= 0);
    wv_close(fd); /* nothing listens there now */
    char list[256];
    snprintf(list, sizeof list, "%s,127.0.0.1:%u", servers, port);
    REQUIRE_EQ(wv_memcache_open(list, NULL, &m), 0);
    CHECK_EQ(wv_memcache_ping(m), -ECONNREFUSED);
    char name[64];
    snprintf(name, sizeof name, "memcached 127.0.0.1:%u: ", port);
    CHECK(strncmp(wv_errmsg(), name, strlen(name)) == 0);
    wv_memcache_close(m);
    return 0;
}

static void
test_memcache_ping_answers_when_every_server_does_and_names_one_that_does_not(void **state)
{
    assert_int_equal(run_in_rt(1, ping_main, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------ auto-pipelining */

typedef struct many {
    wv_memcache *m;
    int i;
    int *ok;
} many;

static int many_fiber(void *arg)
{
    many *f = arg;
    char name[32];
    snprintf(name, sizeof name, "many:%d", f->i);
    wv_str k = KEY(name);
    char val[32];
    int n = snprintf(val, sizeof val, "value-%d", f->i);
    if (wv_memcache_set(f->m, k, (wv_str){val, (size_t)n},
                        &(wv_memcache_set_opts){.flags = (uint32_t)f->i}) == 1) {
        wv_buf v = {0};
        uint32_t flags = 0;
        if (wv_memcache_get(f->m, k, &v, &flags, NULL) == 1 && buf_is(&v, val, (size_t)n) &&
            flags == (uint32_t)f->i && wv_memcache_delete(f->m, k) == 1)
            (*f->ok)++;
        wv_buf_free(&v);
    }
    free(f);
    return 0;
}

static int autopipe_body(wv_memcache *m, void *arg)
{
    enum { FIBERS = 1000 };
    int ok = 0;
    CHECK_EQ(wv_memcache_ping(m), 0); /* connections open before counting */
    wv_memcache_stats before, after;
    wv_memcache_stats_get(m, &before);
    wv_group *g = wv_group_new();
    for (int i = 0; i < FIBERS; i++) {
        many *f = malloc(sizeof *f);
        *f = (many){m, i, &ok};
        REQUIRE_EQ(wv_group_spawn(g, many_fiber, f, NULL), 0);
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_memcache_stats_get(m, &after);
    CHECK_EQ(ok, FIBERS);
    uint64_t requests = after.requests - before.requests, writes = after.writes - before.writes;
    CHECK_EQ(requests, 3 * FIBERS);
    if (arg)
        CHECK(writes * 20 < requests);
    else
        CHECK_EQ(writes, requests);
    CHECK_EQ(after.inflight, 0);
    CHECK_EQ(after.dials, 3);
    printf("    %llu requests in %llu writes\n", (unsigned long long)requests,
           (unsigned long long)writes);
    return 0;
}

static void test_memcache_1000_fibers_share_a_connection_per_server_in_few_writes(void **state)
{
    run_client(servers, NULL, autopipe_body, (void *)1);
}

static void test_memcache_without_autopipelining_each_request_is_its_own_write(void **state)
{
    run_client(servers, &(wv_memcache_opts){.no_autopipeline = true}, autopipe_body, NULL);
}

/* ------------------------------------------------------- the server list */

static int list_main(void *arg)
{
    (void)arg;
    wv_memcache *m;
    REQUIRE_EQ(wv_memcache_open(" memcached://h1:11211, h2:11212:3 ,[::1]:11213,/tmp/mc.sock,"
                                "h3,memcached://h4",
                                NULL, &m),
               0);
    CHECK_EQ(wv_memcache_servers(m), 6);
    static const char *const names[] = {"h1:11211",     "h2:11212", "[::1]:11213",
                                        "/tmp/mc.sock", "h3:11211", "h4:11211"};
    for (int i = 0; i < 6; i++)
        CHECK_STR_EQ(wv_memcache_server_name(m, i), names[i]);
    wv_memcache_stats st;
    wv_memcache_stats_get(m, &st);
    CHECK_EQ(st.dials, 0); /* open dials nothing */
    wv_memcache_close(m);

    static const char *const bad[] = {
        "",           "h1:",          "h1:0",         "h1:70000", "h1:11211:0",
        "h1:11211:x", "::1:11211",    "[::1",         "h1,,h2",   "h 1:11211",
        "[::1]x",     "memcached://", "h1:11211:2:3", "h1:-5",    "h1:11211,",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        m = (wv_memcache *)1;
        if (!CHECK_EQ(wv_memcache_open(bad[i], NULL, &m), -EINVAL))
            fprintf(stderr, "    accepted \"%s\"\n", bad[i]);
        CHECK(m == NULL);
        CHECK(strncmp(wv_errmsg(), "memcached: ", 11) == 0);
    }
    CHECK_EQ(wv_memcache_open("h1", &(wv_memcache_opts){.failure_limit = -1}, &m), -EINVAL);
    CHECK_EQ(wv_memcache_open("h1", &(wv_memcache_opts){.distribution = 7}, &m), -EINVAL);
    return 0;
}

static void test_memcache_server_list_takes_ports_weights_ipv6_and_sockets(void **state)
{
    assert_int_equal(run_in_rt(1, list_main, NULL), 0);
    assert_checks_passed();
}

static int open_outside(void)
{
    wv_memcache *m;
    return wv_memcache_open("h1", NULL, &m);
}

static void test_memcache_open_outside_a_fiber_is_eperm(void **state)
{
    assert_int_equal(open_outside(), -EPERM);
}

/* ------------------------------------------------------ fake servers */

/*
 * A server of this test's own. It answers the first line of a connection
 * with `probe` (NULL: nothing at all, ever), then each later read with
 * `reply` after delay_ms (NULL: silence), `step` bytes at a time when step
 * is set, or, with echo, each "mg <key>" line with the key itself as the
 * value (and mn with MN). What it reads after the probe is kept in `seen`.
 */
typedef struct fake {
    int lfd;
    const char *probe;
    const char *reply;
    size_t step;
    bool echo;
    int delay_ms;
    int conns;
    char seen[1024];
    size_t seen_n;
} fake;

static void fake_answer(fake *f, int fd, const char *buf, size_t n)
{
    size_t room = sizeof f->seen - 1 - f->seen_n;
    size_t k = n < room ? n : room;
    memcpy(f->seen + f->seen_n, buf, k);
    f->seen_n += k;
    f->seen[f->seen_n] = '\0';
    if (f->delay_ms)
        wv_sleep_ms(f->delay_ms);
    if (f->echo) {
        /* "mg <key> v f\r\n" -> "VA <len> f0\r\n<key>\r\n" */
        for (const char *p = buf; p < buf + n;) {
            const char *eol = memchr(p, '\n', (size_t)(buf + n - p));
            if (!eol)
                break;
            if (strncmp(p, "mn\r\n", 4) == 0) {
                wv_write(fd, "MN\r\n", 4);
                p = eol + 1;
                continue;
            }
            if (strncmp(p, "mg ", 3) != 0)
                break;
            const char *key = p + 3, *sp = memchr(key, ' ', (size_t)(eol - key));
            size_t kn = sp ? (size_t)(sp - key) : (size_t)(eol - 1 - key);
            char out[400];
            int len = snprintf(out, sizeof out, "VA %zu f0\r\n%.*s\r\n", kn, (int)kn, key);
            wv_write(fd, out, (size_t)len);
            p = eol + 1;
        }
        return;
    }
    if (!f->reply)
        return;
    size_t len = strlen(f->reply), step = f->step ? f->step : len;
    for (size_t at = 0; at < len; at += step) {
        wv_write(fd, f->reply + at, len - at < step ? len - at : step);
        if (f->step)
            wv_sleep_ms(1);
    }
}

static int fake_conn(void *arg)
{
    fake *f = arg;
    int fd = wv_accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return 0;
    f->conns++;
    wv_spawn(fake_conn, f, NULL); /* the next one */
    char buf[1024];
    ssize_t n;
    bool probed = f->probe == NULL;
    while ((n = wv_read(fd, buf, sizeof buf)) > 0) {
        if (!probed) {
            probed = true;
            wv_write(fd, f->probe, strlen(f->probe));
            continue;
        }
        fake_answer(f, fd, buf, (size_t)n);
    }
    wv_close(fd);
    return 0;
}

/* Start f; its address goes to addr. */
static int fake_start(fake *f, char *addr, size_t cap)
{
    uint16_t port = 0;
    f->lfd = listen_loopback(&port);
    if (f->lfd < 0)
        return f->lfd;
    snprintf(addr, cap, "127.0.0.1:%u", port);
    return wv_spawn(fake_conn, f, NULL);
}

static int classic_fake_main(void *arg)
{
    (void)arg;
    fake f = {.probe = "ERROR\r\n", .reply = "VALUE k 3 2\r\nhi\r\nEND\r\n", .step = 1};
    char addr[64];
    REQUIRE_EQ(fake_start(&f, addr, sizeof addr), 0);
    wv_memcache *m;
    REQUIRE_EQ(wv_memcache_open(addr, NULL, &m), 0);
    wv_buf v = {0};
    uint32_t flags = 0;
    CHECK_EQ(wv_memcache_get(m, WV_STR("k"), &v, &flags, NULL), 1);
    CHECK(buf_is(&v, "hi", 2));
    CHECK_EQ(flags, 3);
    CHECK_STR_EQ(f.seen, "get k\r\n");
    wv_memcache_server_stats st;
    wv_memcache_server_stats_get(m, 0, &st);
    CHECK(!st.meta);
    /* (the VALUE line, its data and END came a byte at a time: one reply) */
    f.reply = "END\r\n";
    f.seen_n = 0;
    CHECK_EQ(wv_memcache_get(m, WV_STR("gone"), &v, NULL, NULL), 0);
    CHECK_STR_EQ(f.seen, "get gone\r\n");
    f.reply = "STORED\r\n";
    f.seen_n = 0;
    CHECK_EQ(wv_memcache_set(m, WV_STR("k"), WV_STR("hi"), &(wv_memcache_set_opts){.ttl_s = 9}), 1);
    CHECK_STR_EQ(f.seen, "set k 0 9 2\r\nhi\r\n");
    wv_memcache_close(m);
    wv_close(f.lfd);
    wv_buf_free(&v);
    return 0;
}

static void test_memcache_a_server_that_answers_mn_with_error_gets_classic_commands(void **state)
{
    assert_int_equal(run_in_rt(1, classic_fake_main, NULL), 0);
    assert_checks_passed();
}

static int garbage_main(void *arg)
{
    (void)arg;
    fake f = {.probe = "MN\r\n", .reply = "HELLO THERE\r\n"};
    char addr[64];
    REQUIRE_EQ(fake_start(&f, addr, sizeof addr), 0);
    wv_memcache *m;
    REQUIRE_EQ(wv_memcache_open(addr, &(wv_memcache_opts){.failure_limit = 5}, &m), 0);
    CHECK_EQ(wv_memcache_get(m, WV_STR("k"), NULL, NULL, NULL), -EPROTO);
    CHECK(strstr(wv_errmsg(), "unknown reply \"HELLO\"") != NULL);
    CHECK(strstr(wv_errmsg(), addr) != NULL);
    /* a reply of the wrong kind for the request breaks it too */
    f.reply = "STORED\r\n";
    CHECK_EQ(wv_memcache_get(m, WV_STR("k"), NULL, NULL, NULL), -EPROTO);
    CHECK(strstr(wv_errmsg(), "STORED answered a get") != NULL);
    /* the broken connection is replaced by a fresh one */
    f.reply = "EN\r\n";
    CHECK_EQ(wv_memcache_get(m, WV_STR("k"), NULL, NULL, NULL), 0);
    CHECK_EQ(f.conns, 3);
    wv_memcache_server_stats st;
    wv_memcache_server_stats_get(m, 0, &st);
    CHECK_EQ(st.dials, 3);
    CHECK_EQ(st.failures, 0); /* a reply came after */
    wv_memcache_close(m);
    wv_close(f.lfd);
    return 0;
}

static void
test_memcache_bytes_that_are_not_the_protocol_are_eproto_then_a_fresh_connection(void **state)
{
    assert_int_equal(run_in_rt(1, garbage_main, NULL), 0);
    assert_checks_passed();
}

static int silent_main(void *arg)
{
    (void)arg;
    /* a socket that listens and never accepts: the kernel completes the
     * handshake, nobody ever answers */
    uint16_t port = 0;
    int lfd = listen_loopback(&port);
    REQUIRE(lfd >= 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    wv_memcache *m;
    REQUIRE_EQ(
        wv_memcache_open(
            addr,
            &(wv_memcache_opts){.classic = true, .response_timeout_ms = 300, .failure_limit = 2},
            &m),
        0);
    /* the fiber's deadline ends its wait */
    int64_t t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(100));
    CHECK_EQ(wv_memcache_get(m, WV_STR("k"), NULL, NULL, NULL), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_BETWEEN(ms_since(t0), 90, 1500);
    CHECK(strstr(wv_errmsg(), "the deadline passed") != NULL);
    /* without one, response_timeout_ms drops the connection */
    t0 = wv_now();
    CHECK_EQ(wv_memcache_get(m, WV_STR("k"), NULL, NULL, NULL), -ETIMEDOUT);
    CHECK(strstr(wv_errmsg(), "no reply for 300 ms") != NULL);
    CHECK_BETWEEN(ms_since(t0), 150, 3000);
    /* twice: the server is dead, and its keys fail at once */
    CHECK_EQ(wv_memcache_get(m, WV_STR("k"), NULL, NULL, NULL), -ETIMEDOUT);
    t0 = wv_now();
    CHECK_EQ(wv_memcache_get(m, WV_STR("k"), NULL, NULL, NULL), -EHOSTDOWN);
    CHECK(ms_since(t0) < 100);
    CHECK(strstr(wv_errmsg(), "no reply for 300 ms") != NULL);
    wv_memcache_close(m);

    /* the meta probe gives up at connect_timeout_ms */
    REQUIRE_EQ(wv_memcache_open(addr, &(wv_memcache_opts){.connect_timeout_ms = 200}, &m), 0);
    t0 = wv_now();
    CHECK_EQ(wv_memcache_get(m, WV_STR("k"), NULL, NULL, NULL), -ETIMEDOUT);
    CHECK_BETWEEN(ms_since(t0), 150, 3000);
    wv_memcache_close(m);
    wv_close(lfd);
    return 0;
}

static void test_memcache_a_server_that_never_answers_ends_in_etimedout_never_a_miss(void **state)
{
    assert_int_equal(run_in_rt(1, silent_main, NULL), 0);
    assert_checks_passed();
}

typedef struct late_get {
    wv_memcache *m;
    const char *key;
    int64_t deadline_ms; /* 0: none */
    int rc;
    wv_buf v;
} late_get;

static int late_fiber(void *arg)
{
    late_get *g = arg;
    if (g->deadline_ms)
        wv_deadline_set(wv_after_ms(g->deadline_ms));
    g->rc = wv_memcache_get(g->m, (wv_str){g->key, strlen(g->key)}, &g->v, NULL, NULL);
    return 0;
}

static int abandon_main(void *arg)
{
    (void)arg;
    fake f = {.probe = "MN\r\n", .echo = true, .delay_ms = 200};
    char addr[64];
    REQUIRE_EQ(fake_start(&f, addr, sizeof addr), 0);
    wv_memcache *m;
    REQUIRE_EQ(wv_memcache_open(addr, NULL, &m), 0);
    CHECK_EQ(wv_memcache_ping(m), 0); /* connected */
    /* "first" gives up before its reply; "second", sent behind it, must
     * get its own reply, not the late one */
    late_get first = {.m = m, .key = "first", .deadline_ms = 50};
    late_get second = {.m = m, .key = "second"};
    wv_group *g = wv_group_new();
    wv_group_spawn(g, late_fiber, &first, NULL);
    wv_group_spawn(g, late_fiber, &second, NULL);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(first.rc, -ETIMEDOUT);
    CHECK_EQ(second.rc, 1);
    CHECK(buf_is(&second.v, "second", 6));
    CHECK_EQ(first.v.n, 0);
    wv_memcache_close(m);
    wv_close(f.lfd);
    wv_buf_free(&first.v);
    wv_buf_free(&second.v);
    return 0;
}

static void test_memcache_a_request_past_its_deadline_is_abandoned_not_misrouted(void **state)
{
    assert_int_equal(run_in_rt(1, abandon_main, NULL), 0);
    assert_checks_passed();
}

/* --------------------------------------------------- dead servers */

static int refused_port(uint16_t *port)
{
    int fd = listen_loopback(port);
    if (fd < 0)
        return fd;
    wv_close(fd);
    return 0;
}

/* A key of this process that lives on server `want` of m. */
static wv_str key_on(wv_memcache *m, int want, const char *what, char *buf, size_t cap)
{
    for (int i = 0;; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s:%d", what, i);
        wv_str k = key_of(buf, cap, name);
        if (wv_memcache_server_of(m, k) == want)
            return k;
    }
}

static int refused_main(void *arg)
{
    (void)arg;
    uint16_t port = 0;
    REQUIRE_EQ(refused_port(&port), 0);
    char list[256];
    snprintf(list, sizeof list, "%s,127.0.0.1:%u", servers, port);
    wv_memcache *m;
    REQUIRE_EQ(wv_memcache_open(list, &(wv_memcache_opts){.dead_retry_ms = 300}, &m), 0);
    char b1[300], b2[300];
    wv_str down = key_on(m, 3, "refused", b1, sizeof b1);
    wv_str up = key_on(m, 0, "refused-up", b2, sizeof b2);
    /* two refusals (failure_limit), then -EHOSTDOWN at once */
    CHECK_EQ(wv_memcache_set(m, down, WV_STR("x"), NULL), -ECONNREFUSED);
    CHECK_EQ(wv_memcache_get(m, down, NULL, NULL, NULL), -ECONNREFUSED);
    int64_t t0 = wv_now();
    CHECK_EQ(wv_memcache_get(m, down, NULL, NULL, NULL), -EHOSTDOWN);
    CHECK(ms_since(t0) < 100);
    char want[128];
    snprintf(want, sizeof want, "memcached 127.0.0.1:%u: marked dead after 2 failures in a row",
             port);
    CHECK(strncmp(wv_errmsg(), want, strlen(want)) == 0);
    CHECK(strstr(wv_errmsg(), "Connection refused") != NULL);
    CHECK(strstr(wv_errmsg(), "retried in") != NULL);
    /* the other servers' keys are not moved and keep working */
    CHECK_EQ(wv_memcache_server_of(m, down), 3);
    CHECK_EQ(wv_memcache_set(m, up, WV_STR("y"), NULL), 1);
    CHECK(value_is(m, up, "y"));
    wv_memcache_stats st;
    wv_memcache_stats_get(m, &st);
    CHECK_EQ(st.dead, 1);
    CHECK_EQ(st.deaths, 1);
    /* after dead_retry_ms it is tried again (and refuses again: dead at once) */
    wv_sleep_ms(350);
    CHECK_EQ(wv_memcache_get(m, down, NULL, NULL, NULL), -ECONNREFUSED);
    CHECK_EQ(wv_memcache_get(m, down, NULL, NULL, NULL), -EHOSTDOWN);
    wv_memcache_stats_get(m, &st);
    CHECK_EQ(st.deaths, 2);
    wv_memcache_delete(m, up);
    wv_memcache_close(m);
    return 0;
}

static void test_memcache_a_refusing_server_is_dead_after_failure_limit_and_fails_fast(void **state)
{
    assert_int_equal(run_in_rt(1, refused_main, NULL), 0);
    assert_checks_passed();
}

static int eject_main(void *arg)
{
    (void)arg;
    uint16_t port = 0;
    REQUIRE_EQ(refused_port(&port), 0);
    char list[256];
    snprintf(list, sizeof list, "%s,127.0.0.1:%u", servers, port);
    wv_memcache *m;
    REQUIRE_EQ(
        wv_memcache_open(list, &(wv_memcache_opts){.eject_dead = true, .failure_limit = 1}, &m), 0);
    char b1[300];
    wv_str k = key_on(m, 3, "eject", b1, sizeof b1);
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("x"), NULL), -ECONNREFUSED);
    /* dead now: its keys live on the others, as libmemcached's remove_failed does */
    int home = wv_memcache_server_of(m, k);
    CHECK(home >= 0 && home < 3);
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("moved"), NULL), 1);
    CHECK(value_is(m, k, "moved"));
    wv_memcache_delete(m, k);
    wv_memcache_close(m);
    return 0;
}

static void test_memcache_eject_dead_moves_a_dead_servers_keys_to_the_others(void **state)
{
    assert_int_equal(run_in_rt(1, eject_main, NULL), 0);
    assert_checks_passed();
}

/* Server 1's keys and the others', read by fibers in a loop while it is
 * killed. */
typedef struct loader {
    wv_memcache *m;
    wv_str *keys;
    int *home;
    int n;
    bool stop;
    int hits_killed, errors_killed, misses_killed; /* keys of server 1 */
    int hits_others, failures_others;              /* keys of 0 and 2 */
} loader;

static int loader_fiber(void *arg)
{
    loader *l = arg;
    while (!l->stop) {
        for (int i = 0; i < l->n && !l->stop; i++) {
            int64_t old = wv_deadline_set(wv_after_ms(2000));
            int rc = wv_memcache_get(l->m, l->keys[i], NULL, NULL, NULL);
            wv_deadline_set(old);
            if (l->home[i] == 1)
                rc == 1 ? l->hits_killed++ : rc == 0 ? l->misses_killed++ : l->errors_killed++;
            else
                rc == 1 ? l->hits_others++ : l->failures_others++;
        }
        wv_sleep_ms(2);
    }
    return 0;
}

static int run_ctl(void *arg)
{
    /* "kill DIR" or "restart DIR" */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s %s >/dev/null 2>&1", srv_ctl, (const char *)arg);
    return system(cmd) == 0 ? 0 : -EIO;
}

static int killed_main(void *arg)
{
    enum { KEYS = 120, LOADERS = 8 };
    char dir[512], ctl[600];
    const char *comma = strchr(srv_dirs, ',');
    REQUIRE(comma != NULL);
    const char *second = comma + 1, *end = strchr(second, ',');
    snprintf(dir, sizeof dir, "%.*s", (int)(end ? end - second : (ptrdiff_t)strlen(second)),
             second);
    wv_memcache *m;
    REQUIRE_EQ(wv_memcache_open(servers,
                                &(wv_memcache_opts){.failure_limit = 2, .dead_retry_ms = 1000}, &m),
               0);
    static char names[KEYS][300];
    wv_str keys[KEYS];
    int home[KEYS], on_killed = 0;
    for (int i = 0; i < KEYS; i++) {
        char name[32];
        snprintf(name, sizeof name, "killed:%d", i);
        keys[i] = key_of(names[i], sizeof names[i], name);
        home[i] = wv_memcache_server_of(m, keys[i]);
        on_killed += home[i] == 1;
        CHECK_EQ(wv_memcache_set(m, keys[i], WV_STR("kept"), NULL), 1);
    }
    REQUIRE(on_killed > 0);

    loader l[LOADERS];
    wv_group *g = wv_group_new();
    for (int i = 0; i < LOADERS; i++) {
        l[i] = (loader){.m = m, .keys = keys, .home = home, .n = KEYS};
        wv_group_spawn(g, loader_fiber, &l[i], NULL);
    }
    wv_sleep_ms(200);
    snprintf(ctl, sizeof ctl, "kill %s", dir);
    int64_t t0 = wv_now();
    CHECK_EQ(wv_offload(run_ctl, ctl), 0);
    wv_sleep_ms(600);
    for (int i = 0; i < LOADERS; i++)
        l[i].stop = true;
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    printf("    the loaders stopped %lld ms after the kill\n", (long long)ms_since(t0));
    int hits_killed = 0, errors_killed = 0, misses_killed = 0, hits_others = 0, failures_others = 0;
    for (int i = 0; i < LOADERS; i++) {
        hits_killed += l[i].hits_killed;
        errors_killed += l[i].errors_killed;
        misses_killed += l[i].misses_killed;
        hits_others += l[i].hits_others;
        failures_others += l[i].failures_others;
    }
    printf("    killed server: %d hits before, %d errors after, %d misses; others: %d hits, %d "
           "failures\n",
           hits_killed, errors_killed, misses_killed, hits_others, failures_others);
    CHECK_EQ(misses_killed, 0); /* never a silent miss */
    CHECK(errors_killed > 0);
    CHECK(hits_others > 0);
    CHECK_EQ(failures_others, 0); /* the other two kept serving */

    /* dead after failure_limit failures: its keys fail at once */
    wv_memcache_server_stats st;
    wv_memcache_server_stats_get(m, 1, &st);
    CHECK(st.dead);
    CHECK(st.deaths >= 1); /* more if the loaders outlived dead_retry_ms */
    CHECK(st.failures >= 2);
    int i1 = 0;
    while (home[i1] != 1)
        i1++;
    t0 = wv_now();
    CHECK_EQ(wv_memcache_get(m, keys[i1], NULL, NULL, NULL), -EHOSTDOWN);
    CHECK(ms_since(t0) < 100);
    CHECK(strstr(wv_errmsg(), server[1]) != NULL);
    /* a multi-get fails the dead server's keys and answers the others' */
    wv_memcache_item items[KEYS];
    for (int i = 0; i < KEYS; i++)
        items[i] = (wv_memcache_item){.key = keys[i]};
    CHECK_EQ(wv_memcache_get_multi(m, items, KEYS), -EHOSTDOWN);
    CHECK(strstr(wv_errmsg(), "marked dead") != NULL);
    for (int i = 0; i < KEYS; i++) {
        CHECK_EQ(items[i].rc, home[i] == 1 ? -EHOSTDOWN : 1);
        wv_buf_free(&items[i].value);
    }

    /* restarted: after dead_retry_ms its keys work again (empty: a restart
     * loses what it held) */
    snprintf(ctl, sizeof ctl, "restart %s", dir);
    CHECK_EQ(wv_offload(run_ctl, ctl), 0);
    wv_memcache_server_stats_get(m, 1, &st);
    wv_sleep_ms(st.retry_in_ms + 20);
    CHECK_EQ(wv_memcache_get(m, keys[i1], NULL, NULL, NULL), 0);
    CHECK_EQ(wv_memcache_set(m, keys[i1], WV_STR("again"), NULL), 1);
    CHECK(value_is(m, keys[i1], "again"));
    wv_memcache_server_stats_get(m, 1, &st);
    CHECK(!st.dead);
    CHECK_EQ(st.failures, 0);
    for (int i = 0; i < KEYS; i++) {
        if (home[i] != 1)
            CHECK(value_is(m, keys[i], "kept"));
        wv_memcache_delete(m, keys[i]);
    }
    wv_memcache_close(m);
    return 0;
}

static void
test_memcache_a_killed_server_fails_its_keys_while_the_others_serve_then_returns(void **state)
{
    if (!srv_ctl || !srv_dirs) {
        fail_msg("WEAVE_TEST_MEMCACHED_CTL and WEAVE_TEST_MEMCACHED_DIRS are not set");
        return;
    }
    assert_int_equal(run_in_rt(1, killed_main, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ peers */

typedef struct shell {
    const char *cmd;
    char out[4096];
    int status;
} shell;

static int shell_run(void *arg)
{
    shell *sh = arg;
    FILE *f = popen(sh->cmd, "r");
    if (!f)
        return -errno;
    size_t n = fread(sh->out, 1, sizeof sh->out - 1, f);
    sh->out[n] = '\0';
    sh->status = pclose(f);
    return 0;
}

static int pymemcache_body(wv_memcache *m, void *arg)
{
    (void)arg;
    static const char value[] = "caf\xc3\xa9 \x00\x01\r\n end";
    char b1[300], b2[300];
    wv_str k = KEY("peer:from-weave");
    int home = wv_memcache_server_of(m, k);
    /* what pymemcache writes goes to that server: a key weave places there */
    wv_str pk = key_on(m, home, "peer:from-pymemcache", b1, sizeof b1);
    wv_str ck = key_on(m, home, "peer:counter", b2, sizeof b2);
    CHECK_EQ(wv_memcache_set(m, k, (wv_str){value, sizeof value - 1},
                             &(wv_memcache_set_opts){.flags = 7, .ttl_s = 60}),
             1);
    CHECK_EQ(wv_memcache_set(m, ck, WV_STR("41"), NULL), 1);
    const char *hp = wv_memcache_server_name(m, home), *colon = strrchr(hp, ':');
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"\n"
             "from pymemcache.client.base import Client\n"
             "class Raw:\n"
             "    def serialize(self, key, value): return value, 42\n"
             "    def deserialize(self, key, value, flags): return (value, flags)\n"
             "c = Client(('%.*s', %s), serde=Raw())\n"
             "got = c.get('%s')\n"
             "assert got == (b'caf\\\\xc3\\\\xa9 \\\\x00\\\\x01\\\\r\\\\n end', 7), got\n"
             "assert c.set('%s', b'from\\\\x00pymemcache', expire=60, noreply=False)\n"
             "assert c.incr('%s', 1, noreply=False) == 42\n"
             "print('ok')\n\" 2>&1",
             (int)(colon - hp), hp, colon + 1, k.p, pk.p, ck.p);
    shell sh = {.cmd = cmd};
    REQUIRE_EQ(wv_offload(shell_run, &sh), 0);
    CHECK_STR_EQ(sh.out, "ok\n");
    wv_buf v = {0};
    uint32_t flags = 0;
    CHECK_EQ(wv_memcache_get(m, pk, &v, &flags, NULL), 1);
    CHECK(buf_is(&v, "from\0pymemcache", 15));
    CHECK_EQ(flags, 42);
    CHECK(value_is(m, ck, "42"));
    wv_memcache_delete(m, k);
    wv_memcache_delete(m, pk);
    wv_memcache_delete(m, ck);
    wv_buf_free(&v);
    return 0;
}

static void test_memcache_pymemcache_reads_values_and_flags_weave_wrote_and_back(void **state)
{
    run_client(servers, NULL, pymemcache_body, NULL);
}

static int memccat_body(wv_memcache *m, void *arg)
{
    (void)arg;
    wv_str k = KEY("peer:memccat");
    int home = wv_memcache_server_of(m, k);
    CHECK_EQ(wv_memcache_set(m, k, WV_STR("read by libmemcached"),
                             &(wv_memcache_set_opts){.flags = 1234, .ttl_s = 60}),
             1);
    /* libmemcached's memccat, asked on the server weave placed the key on,
     * prints its value and (-F) its flags */
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "memccat -F -s '%s' '%s' 2>&1", wv_memcache_server_name(m, home),
             k.p);
    shell sh = {.cmd = cmd};
    REQUIRE_EQ(wv_offload(shell_run, &sh), 0);
    CHECK(strstr(sh.out, "read by libmemcached") != NULL);
    CHECK(strstr(sh.out, "1234") != NULL);
    if (!strstr(sh.out, "1234"))
        fprintf(stderr, "memccat said: %s\n", sh.out);
    wv_memcache_delete(m, k);
    return 0;
}

static void test_memcache_libmemcached_tools_read_the_value_and_flags_weave_wrote(void **state)
{
    run_client(servers, NULL, memccat_body, NULL);
}

typedef struct placement {
    wv_memcache_distribution distribution;
    const char *behaviors; /* pylibmc's for it */
} placement;

static int pylibmc_body(wv_memcache *m, void *arg)
{
    enum { KEYS = 400 };
    const placement *pl = arg;
    char pre[64];
    snprintf(pre, sizeof pre, "%splace:%d:", prefix, (int)pl->distribution);
    int on[3] = {0};
    for (int i = 0; i < KEYS; i++) {
        char key[128], val[32];
        int kn = snprintf(key, sizeof key, "%s%d", pre, i);
        int vn = snprintf(val, sizeof val, "v%d", i);
        wv_str k = {key, (size_t)kn};
        CHECK_EQ(
            wv_memcache_set(m, k, (wv_str){val, (size_t)vn}, &(wv_memcache_set_opts){.ttl_s = 120}),
            1);
        on[wv_memcache_server_of(m, k)]++;
    }
    CHECK(on[0] > 0 && on[1] > 0 && on[2] > 0);
    /* pylibmc asks the one server libmemcached places each key on: it
     * finds the key only if that is where weave put it */
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"\n"
             "import pylibmc\n"
             "c = pylibmc.Client('%s'.split(','), behaviors=%s)\n"
             "keys = ['%s%%d' %% i for i in range(%d)]\n"
             "got = c.get_multi(keys)\n"
             "right = sum(1 for i, k in enumerate(keys) if got.get(k) == b'v%%d' %% i)\n"
             "print(right)\n\" 2>&1",
             servers, pl->behaviors, pre, KEYS);
    shell sh = {.cmd = cmd};
    REQUIRE_EQ(wv_offload(shell_run, &sh), 0);
    char want[16];
    snprintf(want, sizeof want, "%d\n", KEYS);
    if (!CHECK_STR_EQ(sh.out, want))
        fprintf(stderr, "    pylibmc %s\n", pl->behaviors);
    for (int i = 0; i < KEYS; i++) {
        char key[128];
        int kn = snprintf(key, sizeof key, "%s%d", pre, i);
        wv_memcache_delete(m, (wv_str){key, (size_t)kn});
    }
    return 0;
}

static void test_memcache_pylibmc_finds_every_key_where_weave_placed_it(void **state)
{
    static const placement pl[] = {
        {WV_MEMCACHE_KETAMA, "{'ketama': True}"},
        {WV_MEMCACHE_KETAMA_WEIGHTED_MD5, "{'ketama_weighted': True}"},
        {WV_MEMCACHE_KETAMA_MD5, "{'ketama': True, 'hash': 'md5'}"},
    };
    for (size_t i = 0; i < ARRAY_LEN(pl); i++)
        run_client(servers, &(wv_memcache_opts){.distribution = pl[i].distribution}, pylibmc_body,
                   (void *)&pl[i]);
}

/* ------------------------------------------------------------ main */

int main(void)
{
    harness_init();
    servers = getenv("WEAVE_TEST_MEMCACHED_SERVERS");
    srv_ctl = getenv("WEAVE_TEST_MEMCACHED_CTL");
    srv_dirs = getenv("WEAVE_TEST_MEMCACHED_DIRS");
    if (!servers || !*servers) {
        const char *skip = getenv("WEAVE_TEST_MEMCACHED_SKIP");
        if (skip && strcmp(skip, "1") == 0) {
            printf("test_memcache: skipped (WEAVE_TEST_MEMCACHED_SKIP=1, no "
                   "WEAVE_TEST_MEMCACHED_SERVERS)\n");
            return 0;
        }
        fprintf(stderr, "test_memcache: WEAVE_TEST_MEMCACHED_SERVERS is not set. Start three "
                        "servers with\n"
                        "  scripts/memcached_test_server.sh start /tmp/mc1 21211   (and 21212, "
                        "21213)\n"
                        "and export WEAVE_TEST_MEMCACHED_SERVERS=127.0.0.1:21211,127.0.0.1:21212,"
                        "127.0.0.1:21213\n"
                        "(WEAVE_TEST_MEMCACHED_CTL=scripts/memcached_test_server.sh and "
                        "WEAVE_TEST_MEMCACHED_DIRS=/tmp/mc1,/tmp/mc2,/tmp/mc3 for the kill test),\n"
                        "or set WEAVE_TEST_MEMCACHED_SKIP=1 to skip these tests.\n");
        return 1;
    }
    /* the three servers, each alone */
    const char *p = servers;
    for (int i = 0; i < 3; i++) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n == 0 || n >= sizeof server[i] || (i < 2 && !end)) {
            fprintf(stderr,
                    "test_memcache: WEAVE_TEST_MEMCACHED_SERVERS must name three servers\n");
            return 1;
        }
        memcpy(server[i], p, n);
        p = end ? end + 1 : p + n;
    }
    snprintf(prefix, sizeof prefix, "wvt:%d:", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memcache_set_then_get_returns_the_binary_value_and_its_flags),
        cmocka_unit_test(test_memcache_classic_commands_set_and_get_the_same),
        cmocka_unit_test(test_memcache_get_of_a_missing_key_returns_0_and_touches_nothing),
        cmocka_unit_test(test_memcache_classic_get_of_a_missing_key_returns_0),
        cmocka_unit_test(test_memcache_add_replace_append_prepend_store_only_when_they_should),
        cmocka_unit_test(test_memcache_compare_cas_stores_once_and_a_conflict_returns_0),
        cmocka_unit_test(test_memcache_delete_returns_1_then_0),
        cmocka_unit_test(test_memcache_incr_adds_a_signed_delta_and_a_missing_key_returns_0),
        cmocka_unit_test(test_memcache_a_ttl_expires_the_key_and_touch_extends_it),
        cmocka_unit_test(test_memcache_invalid_keys_are_refused_with_einval_before_any_request),
        cmocka_unit_test(test_memcache_a_value_over_max_value_is_emsgsize_before_sending),
        cmocka_unit_test(test_memcache_a_reply_over_max_value_drops_the_connection_emsgsize),
        cmocka_unit_test(test_memcache_server_error_is_eio_with_the_servers_words),
        cmocka_unit_test(test_memcache_a_value_over_the_buffers_limit_is_enomem_in_step),
        cmocka_unit_test(test_memcache_get_multi_gathers_hits_and_misses_from_every_server),
        cmocka_unit_test(test_memcache_keys_are_spread_over_the_servers_as_ketama_places_them),
        cmocka_unit_test(
            test_memcache_ping_answers_when_every_server_does_and_names_one_that_does_not),
        cmocka_unit_test(test_memcache_1000_fibers_share_a_connection_per_server_in_few_writes),
        cmocka_unit_test(test_memcache_without_autopipelining_each_request_is_its_own_write),
        cmocka_unit_test(test_memcache_server_list_takes_ports_weights_ipv6_and_sockets),
        cmocka_unit_test(test_memcache_open_outside_a_fiber_is_eperm),
        cmocka_unit_test(test_memcache_a_server_that_answers_mn_with_error_gets_classic_commands),
        cmocka_unit_test(
            test_memcache_bytes_that_are_not_the_protocol_are_eproto_then_a_fresh_connection),
        cmocka_unit_test(test_memcache_a_server_that_never_answers_ends_in_etimedout_never_a_miss),
        cmocka_unit_test(test_memcache_a_request_past_its_deadline_is_abandoned_not_misrouted),
        cmocka_unit_test(
            test_memcache_a_refusing_server_is_dead_after_failure_limit_and_fails_fast),
        cmocka_unit_test(test_memcache_eject_dead_moves_a_dead_servers_keys_to_the_others),
        cmocka_unit_test(
            test_memcache_a_killed_server_fails_its_keys_while_the_others_serve_then_returns),
        cmocka_unit_test(test_memcache_pymemcache_reads_values_and_flags_weave_wrote_and_back),
        cmocka_unit_test(test_memcache_libmemcached_tools_read_the_value_and_flags_weave_wrote),
        cmocka_unit_test(test_memcache_pylibmc_finds_every_key_where_weave_placed_it),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
