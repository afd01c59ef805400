/*
 * The Redis client against a real Redis 7: $WEAVE_TEST_REDIS_URL
 * (scripts/redis_test_server.sh start prints one; its ACL user app /
 * app-secret is used by the auth tests). TLS tests use
 * $WEAVE_TEST_REDIS_TLS_URL and the CA in $WEAVE_TEST_REDIS_CA; the crash
 * test kills and restarts the server through $WEAVE_TEST_REDIS_CTL and
 * $WEAVE_TEST_REDIS_DIR. Without the URL the test fails and says so,
 * unless WEAVE_TEST_REDIS_SKIP=1.
 *
 * Every key starts with "wvt:<pid>:" so two builds can share a server.
 * The fault tests use servers of their own made here: one that accepts and
 * never answers, one that answers one byte at a time.
 */
#include "harness.h"

#include <pthread.h>

#include "redis/redis_internal.h"
#include "weave/redis.h"

static const char *url, *tls_url, *ca_file, *srv_dir, *srv_ctl, *cluster_url;
static char prefix[32];

/* A key of this process: "wvt:<pid>:<name>". */
static wv_str key_of(char *buf, size_t cap, const char *name)
{
    int n = snprintf(buf, cap, "%s%s", prefix, name);
    return (wv_str){buf, (size_t)n};
}
#define KEY(name) key_of((char[128]){0}, 128, (name))

static bool buf_is(const wv_buf *b, const char *s, size_t n)
{
    return b->n == n && memcmp(b->p, s, n) == 0;
}

/* Run body(r, arg) with a client on url (opts may be NULL), inside one
 * shard; closes the client after. */
typedef int client_body(wv_redis *r, void *arg);
typedef struct client_run {
    const char *url;
    const wv_redis_opts *opts;
    client_body *body;
    void *arg;
} client_run;

static int client_main(void *arg)
{
    client_run *cr = arg;
    wv_redis *r;
    int rc = wv_redis_open(cr->url, cr->opts, &r);
    if (!CHECK_EQ(rc, 0)) {
        fprintf(stderr, "open %s: %s\n", cr->url, wv_errmsg());
        return -1;
    }
    rc = cr->body(r, cr->arg);
    wv_redis_close(r);
    return rc;
}

static void run_client(const char *u, const wv_redis_opts *opts, client_body *body, void *arg)
{
    client_run cr = {u, opts, body, arg};
    assert_int_equal(run_in_rt(1, client_main, &cr), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ basics */

static int set_get_body(wv_redis *r, void *arg)
{
    static const char value[] = "bin\0ary\r\nvalue";
    wv_str k = KEY("setget");
    REQUIRE_EQ(wv_redis_set(r, k, (wv_str){value, sizeof value - 1}, NULL), 1);
    wv_buf v = {0};
    CHECK_EQ(wv_redis_get(r, k, &v), 1);
    CHECK(buf_is(&v, value, sizeof value - 1));
    wv_buf_free(&v);
    CHECK_EQ(wv_redis_del(r, 1, &k), 1);
    return 0;
}

static void test_redis_set_then_get_returns_the_binary_value(void **state)
{
    run_client(url, NULL, set_get_body, NULL);
}

static int get_missing_body(wv_redis *r, void *arg)
{
    wv_buf v = {0};
    CHECK_EQ(wv_redis_get(r, KEY("never-set"), &v), 0);
    CHECK_EQ(v.n, 0);
    wv_buf_free(&v);
    return 0;
}

static void test_redis_get_of_a_missing_key_returns_0(void **state)
{
    run_client(url, NULL, get_missing_body, NULL);
}

static int set_options_body(wv_redis *r, void *arg)
{
    wv_str k = KEY("setopts");
    wv_redis_del(r, 1, &k);
    CHECK_EQ(wv_redis_set(r, k, WV_STR("a"), &(wv_redis_set_opts){.xx = true}), 0);
    CHECK_EQ(wv_redis_set(r, k, WV_STR("b"), &(wv_redis_set_opts){.nx = true, .ttl_ms = 60000}), 1);
    CHECK_EQ(wv_redis_set(r, k, WV_STR("c"), &(wv_redis_set_opts){.nx = true}), 0);
    wv_redis_reply *ttl;
    REQUIRE_EQ(wv_redis_cmd(r, &ttl, "PTTL", k.p), 0);
    CHECK_EQ(ttl->type, WV_REDIS_INT);
    CHECK_BETWEEN(ttl->integer, 50000, 60000);
    wv_redis_reply_free(ttl);
    CHECK_EQ(wv_redis_set(r, k, WV_STR("d"), &(wv_redis_set_opts){.xx = true, .keep_ttl = true}),
             1);
    CHECK_EQ(wv_redis_expire(r, k, 1), 1);
    wv_sleep_ms(20);
    wv_buf v = {0};
    CHECK_EQ(wv_redis_get(r, k, &v), 0);
    CHECK_EQ(wv_redis_expire(r, k, 1000), 0);
    CHECK_EQ(wv_redis_set(r, k, WV_STR("x"), &(wv_redis_set_opts){.nx = true, .xx = true}),
             -EINVAL);
    wv_buf_free(&v);
    return 0;
}

static void test_redis_set_honours_nx_xx_ttl_and_expire(void **state)
{
    run_client(url, NULL, set_options_body, NULL);
}

static int typed_helpers_body(wv_redis *r, void *arg)
{
    wv_str h = KEY("hash"), l = KEY("list"), z = KEY("zset"), n = KEY("counter");
    wv_str all[4] = {h, l, z, n};
    wv_redis_del(r, 4, all);

    CHECK_EQ(wv_redis_hset(r, h, WV_STR("f"), WV_STR("1")), 1);
    CHECK_EQ(wv_redis_hset(r, h, WV_STR("f"), WV_STR("2")), 0);
    wv_buf v = {0};
    CHECK_EQ(wv_redis_hget(r, h, WV_STR("f"), &v), 1);
    CHECK(buf_is(&v, "2", 1));
    CHECK_EQ(wv_redis_hget(r, h, WV_STR("nope"), &v), 0);

    int64_t len = 0;
    wv_str items[3] = {WV_STR("a"), WV_STR("b"), WV_STR("c")};
    CHECK_EQ(wv_redis_lpush(r, l, 3, items, &len), 0);
    CHECK_EQ(len, 3);

    int64_t count = 0;
    CHECK_EQ(wv_redis_incrby(r, n, 5, &count), 0);
    CHECK_EQ(count, 5);
    CHECK_EQ(wv_redis_incrby(r, n, -7, &count), 0);
    CHECK_EQ(count, -2);

    CHECK_EQ(wv_redis_zadd(r, z, 2.5, WV_STR("two")), 1);
    CHECK_EQ(wv_redis_zadd(r, z, 1, WV_STR("one")), 1);
    CHECK_EQ(wv_redis_zadd(r, z, 1.5, WV_STR("one")), 0);
    wv_redis_reply *zr;
    REQUIRE_EQ(wv_redis_zrange(r, z, 0, -1, false, &zr), 0);
    CHECK_EQ(zr->len, 2);
    if (zr->len == 2) {
        CHECK_STR_EQ(zr->elem[0].str, "one");
        CHECK_STR_EQ(zr->elem[1].str, "two");
    }
    wv_redis_reply_free(zr);
    /* with scores: [member, score] pairs in RESP3, a flat array in RESP2 */
    REQUIRE_EQ(wv_redis_zrange(r, z, 0, 0, true, &zr), 0);
    CHECK_EQ(zr->len, 1);
    if (zr->len == 1 && zr->elem[0].len == 2) {
        CHECK_STR_EQ(zr->elem[0].elem[0].str, "one");
        CHECK_EQ(zr->elem[0].elem[1].type, WV_REDIS_DOUBLE);
        CHECK(zr->elem[0].elem[1].dbl == 1.5);
    }
    wv_redis_reply_free(zr);

    wv_redis_reply *mg;
    wv_str keys[2] = {n, KEY("missing")};
    REQUIRE_EQ(wv_redis_mget(r, 2, keys, &mg), 0);
    CHECK_EQ(mg->len, 2);
    if (mg->len == 2) {
        CHECK_EQ(mg->elem[0].type, WV_REDIS_STRING);
        CHECK_STR_EQ(mg->elem[0].str, "-2");
        CHECK_EQ(mg->elem[1].type, WV_REDIS_NIL);
    }
    wv_redis_reply_free(mg);
    CHECK_EQ(wv_redis_del(r, 4, all), 4);
    CHECK_EQ(wv_redis_ping(r), 0);
    wv_buf_free(&v);
    return 0;
}

static void test_redis_typed_helpers_give_typed_results(void **state)
{
    run_client(url, NULL, typed_helpers_body, NULL);
}

static int resp3_types_body(wv_redis *r, void *arg)
{
    bool resp3 = arg != NULL;
    wv_str h = KEY("types-h"), s = KEY("types-s"), z = KEY("types-z");
    wv_str all[3] = {h, s, z};
    wv_redis_del(r, 3, all);
    wv_redis_hset(r, h, WV_STR("k"), WV_STR("v"));
    wv_redis_cmd(r, NULL, "SADD", s.p, "m");
    wv_redis_zadd(r, z, 1.25, WV_STR("m"));

    wv_redis_reply *rep;
    REQUIRE_EQ(wv_redis_cmd(r, &rep, "HGETALL", h.p), 0);
    CHECK_EQ(rep->type, resp3 ? WV_REDIS_MAP : WV_REDIS_ARRAY);
    CHECK_EQ(rep->len, 2);
    if (rep->len == 2) {
        CHECK_STR_EQ(rep->elem[0].str, "k");
        CHECK_STR_EQ(rep->elem[1].str, "v");
    }
    wv_redis_reply_free(rep);
    REQUIRE_EQ(wv_redis_cmd(r, &rep, "SMEMBERS", s.p), 0);
    CHECK_EQ(rep->type, resp3 ? WV_REDIS_SET : WV_REDIS_ARRAY);
    wv_redis_reply_free(rep);
    REQUIRE_EQ(wv_redis_cmd(r, &rep, "ZSCORE", z.p, "m"), 0);
    CHECK_EQ(rep->type, resp3 ? WV_REDIS_DOUBLE : WV_REDIS_STRING);
    if (resp3)
        CHECK(rep->dbl == 1.25);
    else
        CHECK_STR_EQ(rep->str, "1.25");
    wv_redis_reply_free(rep);
    REQUIRE_EQ(wv_redis_cmd(r, &rep, "GET", KEY("types-none").p), 0);
    CHECK_EQ(rep->type, WV_REDIS_NIL);
    wv_redis_reply_free(rep);
    REQUIRE_EQ(wv_redis_cmd(r, &rep, "SET", KEY("types-ok").p, "1"), 0);
    CHECK_EQ(rep->type, WV_REDIS_STATUS);
    CHECK_STR_EQ(rep->str, "OK");
    wv_redis_reply_free(rep);
    wv_redis_cmd(r, NULL, "DEL", KEY("types-ok").p);
    wv_redis_del(r, 3, all);
    return 0;
}

static void test_redis_speaks_resp3_by_default_with_maps_sets_and_doubles(void **state)
{
    run_client(url, NULL, resp3_types_body, (void *)1);
}

static void test_redis_protocol_2_in_the_url_gives_resp2_replies(void **state)
{
    char u[256];
    snprintf(u, sizeof u, "%s/0?protocol=2", url);
    run_client(u, NULL, resp3_types_body, NULL);
}

/* ------------------------------------------------------------ errors */

static int error_reply_body(wv_redis *r, void *arg)
{
    wv_str k = KEY("wrongtype");
    wv_redis_del(r, 1, &k);
    wv_str one = WV_STR("x");
    wv_redis_lpush(r, k, 1, &one, NULL);
    wv_redis_reply *rep = (wv_redis_reply *)1;
    CHECK_EQ(wv_redis_cmd(r, &rep, "INCR", k.p), -EIO);
    CHECK(rep == NULL);
    CHECK(strncmp(wv_errmsg(), "WRONGTYPE", 9) == 0);
    CHECK_EQ(wv_redis_cmd(r, NULL, "NOSUCHCOMMAND"), -EIO);
    CHECK(strstr(wv_errmsg(), "unknown command") != NULL);
    /* a helper meeting the wrong type of value is -EIO too (the server's
     * refusal), but one meeting the wrong type of reply is -EPROTO */
    wv_buf v = {0};
    CHECK_EQ(wv_redis_get(r, k, &v), -EIO);
    wv_redis_del(r, 1, &k);
    return 0;
}

static void test_redis_error_reply_is_eio_with_the_servers_words(void **state)
{
    run_client(url, NULL, error_reply_body, NULL);
}

static int eval_body(wv_redis *r, void *arg)
{
    wv_redis_script *s;
    REQUIRE_EQ(wv_redis_script_new("return {KEYS[1], ARGV[1], 42}", &s), 0);
    CHECK_EQ(strlen(wv_redis_script_sha(s)), 40);
    /* the server forgets every script: EVALSHA answers NOSCRIPT, EVAL runs it */
    REQUIRE_EQ(wv_redis_cmd(r, NULL, "SCRIPT", "FLUSH"), 0);
    wv_redis_reply *rep;
    wv_str k = WV_STR("k1"), a = WV_STR("a1");
    for (int round = 0; round < 2; round++) { /* then it is loaded: EVALSHA alone */
        REQUIRE_EQ(wv_redis_eval(r, s, 1, &k, 1, &a, &rep), 0);
        CHECK_EQ(rep->type, WV_REDIS_ARRAY);
        CHECK_EQ(rep->len, 3);
        if (rep->len == 3) {
            CHECK_STR_EQ(rep->elem[0].str, "k1");
            CHECK_STR_EQ(rep->elem[1].str, "a1");
            CHECK_EQ(rep->elem[2].integer, 42);
        }
        wv_redis_reply_free(rep);
    }
    wv_redis_reply *exists;
    REQUIRE_EQ(wv_redis_cmd(r, &exists, "SCRIPT", "EXISTS", wv_redis_script_sha(s)), 0);
    CHECK_EQ(exists->len, 1);
    if (exists->len == 1)
        CHECK_EQ(exists->elem[0].integer, 1);
    wv_redis_reply_free(exists);
    wv_redis_script_free(s);

    REQUIRE_EQ(wv_redis_script_new("return redis.call('INCR', 'x', 'y')", &s), 0);
    CHECK_EQ(wv_redis_eval(r, s, 0, NULL, 0, NULL, &rep), -EIO);
    CHECK(strstr(wv_errmsg(), "Wrong number of args") != NULL);
    wv_redis_script_free(s);
    return 0;
}

static void test_redis_eval_runs_by_sha_and_loads_the_script_on_noscript(void **state)
{
    run_client(url, NULL, eval_body, NULL);
}

static int stateful_on_shared_body(wv_redis *r, void *arg)
{
    CHECK_EQ(wv_redis_cmd(r, NULL, "SELECT", "1"), -EINVAL);
    CHECK(strstr(wv_errmsg(), "wv_redis_acquire") != NULL);
    CHECK_EQ(wv_redis_cmd(r, NULL, "MULTI"), -EINVAL);
    CHECK_EQ(wv_redis_cmd(r, NULL, "SUBSCRIBE", "x"), -EINVAL);
    wv_redis *h;
    REQUIRE_EQ(wv_redis_acquire(r, &h), 0);
    CHECK_EQ(wv_redis_cmd(h, NULL, "SELECT", "1"), 0);
    wv_redis_release(h);
    /* the shared connection is still on db 0 */
    wv_str k = KEY("db0");
    CHECK_EQ(wv_redis_set(r, k, WV_STR("zero"), NULL), 1);
    REQUIRE_EQ(wv_redis_acquire(r, &h), 0);
    wv_buf v = {0};
    CHECK_EQ(wv_redis_get(h, k, &v), 1); /* a handle after SELECT was not reused */
    wv_redis_release(h);
    wv_redis_del(r, 1, &k);
    wv_buf_free(&v);
    return 0;
}

static void test_redis_state_changing_commands_need_a_handle(void **state)
{
    run_client(url, NULL, stateful_on_shared_body, NULL);
}

/* ------------------------------------------------------ auto-pipelining */

typedef struct many {
    wv_redis *r;
    int i;
    atomic_int *ok;
} many;

static int many_fiber(void *arg)
{
    many *m = arg;
    char name[32];
    snprintf(name, sizeof name, "many:%d", m->i);
    wv_str k = KEY(name);
    char val[32];
    int n = snprintf(val, sizeof val, "value-%d", m->i);
    if (wv_redis_set(m->r, k, (wv_str){val, (size_t)n}, NULL) == 1) {
        wv_buf v = {0};
        if (wv_redis_get(m->r, k, &v) == 1 && buf_is(&v, val, (size_t)n))
            atomic_fetch_add(m->ok, 1);
        wv_buf_free(&v);
    }
    wv_redis_del(m->r, 1, &k);
    free(m);
    return 0;
}

static int autopipe_body(wv_redis *r, void *arg)
{
    enum { FIBERS = 1000 };
    atomic_int ok = 0;
    wv_redis_stats before, after;
    wv_redis_stats_get(r, &before);
    wv_group *g = wv_group_new();
    for (int i = 0; i < FIBERS; i++) {
        many *m = malloc(sizeof *m);
        *m = (many){r, i, &ok};
        REQUIRE_EQ(wv_group_spawn(g, many_fiber, m, NULL), 0);
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_redis_stats_get(r, &after);
    CHECK_EQ(atomic_load(&ok), FIBERS);
    CHECK_EQ(after.commands - before.commands, 3 * FIBERS);
    bool autopipe = arg != NULL;
    if (autopipe)
        CHECK((after.writes - before.writes) * 20 < after.commands - before.commands);
    else
        CHECK_EQ(after.writes - before.writes, after.commands - before.commands);
    CHECK_EQ(after.inflight, 0);
    return 0;
}

static void test_redis_1000_fibers_share_one_connection_in_few_writes(void **state)
{
    run_client(url, NULL, autopipe_body, (void *)1);
}

static void test_redis_without_autopipelining_each_command_is_its_own_write(void **state)
{
    wv_redis_opts o = {.no_autopipeline = true};
    run_client(url, &o, autopipe_body, NULL);
}

/* ------------------------------------------------ pipelines, transactions */

static int pipeline_body(wv_redis *r, void *arg)
{
    wv_str k = KEY("pipe"), l = KEY("pipe-list");
    wv_redis_pipe *p;
    REQUIRE_EQ(wv_redis_pipe_new(r, false, &p), 0);
    wv_redis_pipe_add(p, "SET", k.p, "10");
    wv_redis_pipe_add(p, "INCR", k.p);
    wv_redis_pipe_add(p, "LPUSH", l.p, "x");
    wv_redis_pipe_add(p, "INCR", l.p); /* an error reply, in its place */
    wv_redis_pipe_add(p, "GET", k.p);
    CHECK_EQ(wv_redis_pipe_count(p), 5);
    CHECK(wv_redis_pipe_reply(p, 0) == NULL);
    CHECK_EQ(wv_redis_pipe_exec(p), -EIO);
    CHECK(strstr(wv_errmsg(), "command 4 (INCR): WRONGTYPE") != NULL);
    const wv_redis_reply *x = wv_redis_pipe_reply(p, 1);
    CHECK(x && x->type == WV_REDIS_INT && x->integer == 11);
    x = wv_redis_pipe_reply(p, 3);
    CHECK(x && x->type == WV_REDIS_ERROR);
    x = wv_redis_pipe_reply(p, 4);
    CHECK(x && x->type == WV_REDIS_STRING && strcmp(x->str, "11") == 0);
    CHECK(wv_redis_pipe_reply(p, 5) == NULL);
    /* a pipe runs again */
    wv_redis_pipe_reset(p);
    wv_redis_pipe_add(p, "INCR", k.p);
    CHECK_EQ(wv_redis_pipe_exec(p), 0);
    CHECK_EQ(wv_redis_pipe_exec(p), 0);
    x = wv_redis_pipe_reply(p, 0);
    CHECK(x && x->integer == 13);
    /* a blocking command cannot go in a pipeline on the shared connection */
    CHECK_EQ(wv_redis_pipe_add(p, "BLPOP", l.p, "1"), -EINVAL);
    wv_redis_pipe_free(p);
    wv_str both[2] = {k, l};
    wv_redis_del(r, 2, both);
    return 0;
}

static void test_redis_pipeline_returns_every_reply_in_order_errors_in_place(void **state)
{
    run_client(url, NULL, pipeline_body, NULL);
}

static int transaction_body(wv_redis *r, void *arg)
{
    wv_str k = KEY("tx"), l = KEY("tx-list");
    wv_redis_del(r, 1, &k);
    wv_redis_pipe *tx;
    REQUIRE_EQ(wv_redis_pipe_new(r, true, &tx), 0);
    wv_redis_pipe_add(tx, "INCR", k.p);
    wv_redis_pipe_add(tx, "INCR", k.p);
    CHECK_EQ(wv_redis_pipe_exec(tx), 0);
    const wv_redis_reply *x = wv_redis_pipe_reply(tx, 1);
    CHECK(x && x->type == WV_REDIS_INT && x->integer == 2);
    wv_redis_pipe_free(tx);

    /* a command refused while queued aborts the whole transaction */
    REQUIRE_EQ(wv_redis_pipe_new(r, true, &tx), 0);
    wv_redis_pipe_add(tx, "INCR", k.p);
    wv_redis_pipe_add(tx, "NOSUCHCOMMAND");
    CHECK_EQ(wv_redis_pipe_exec(tx), -EIO);
    CHECK(strstr(wv_errmsg(), "command 2 (NOSUCHCOMMAND)") != NULL);
    wv_redis_pipe_free(tx);
    wv_buf v = {0};
    CHECK_EQ(wv_redis_get(r, k, &v), 1);
    CHECK(buf_is(&v, "2", 1));

    /* WATCH on a handle; another client changes the key: -EAGAIN, nothing ran */
    wv_redis *h;
    REQUIRE_EQ(wv_redis_acquire(r, &h), 0);
    CHECK_EQ(wv_redis_cmd(h, NULL, "WATCH", k.p), 0);
    CHECK_EQ(wv_redis_set(r, k, WV_STR("changed"), NULL), 1);
    REQUIRE_EQ(wv_redis_pipe_new(h, true, &tx), 0);
    wv_redis_pipe_add(tx, "SET", k.p, "mine");
    wv_redis_pipe_add(tx, "LPUSH", l.p, "ran");
    CHECK_EQ(wv_redis_pipe_exec(tx), -EAGAIN);
    wv_buf_reset(&v);
    CHECK_EQ(wv_redis_get(r, k, &v), 1);
    CHECK(buf_is(&v, "changed", 7));
    CHECK_EQ(wv_redis_del(r, 1, &l), 0);
    /* watched again and untouched: it runs */
    CHECK_EQ(wv_redis_cmd(h, NULL, "WATCH", k.p), 0);
    CHECK_EQ(wv_redis_pipe_exec(tx), 0);
    wv_buf_reset(&v);
    CHECK_EQ(wv_redis_get(r, k, &v), 1);
    CHECK(buf_is(&v, "mine", 4));
    wv_redis_pipe_free(tx);
    wv_redis_release(h);
    wv_str both[2] = {k, l};
    wv_redis_del(r, 2, both);
    wv_buf_free(&v);
    return 0;
}

static void test_redis_transaction_is_atomic_and_watch_conflict_is_eagain(void **state)
{
    run_client(url, NULL, transaction_body, NULL);
}

/* ------------------------------------------------------------ pub/sub */

typedef struct pub_arg {
    wv_redis *r;
    int n;
} pub_arg;

static int publisher(void *arg)
{
    pub_arg *p = arg;
    for (int i = 0; i < p->n; i++) {
        char msg[32];
        snprintf(msg, sizeof msg, "m%d", i);
        wv_redis_cmd(p->r, NULL, "PUBLISH", KEY("news").p, msg);
        wv_redis_cmd(p->r, NULL, "PUBLISH", KEY("other.topic").p, msg);
    }
    return 0;
}

static int pubsub_body(wv_redis *r, void *arg)
{
    wv_redis_sub *sub;
    REQUIRE_EQ(wv_redis_subscribe(r, &sub), 0);
    wv_str ch = KEY("news"), pat = KEY("other.*");
    REQUIRE_EQ(wv_redis_sub_subscribe(sub, 1, &ch), 0);
    REQUIRE_EQ(wv_redis_sub_psubscribe(sub, 1, &pat), 0);
    wv_redis_msg *m;
    CHECK_EQ(wv_redis_sub_recv(sub, &m, wv_after_ms(50)), -ETIMEDOUT);
    pub_arg pa = {r, 20};
    wv_group *g = wv_group_new();
    wv_group_spawn(g, publisher, &pa, NULL);
    int plain = 0, pattern = 0;
    for (int i = 0; i < 40; i++) {
        if (!CHECK_EQ(wv_redis_sub_recv(sub, &m, wv_after_ms(2000)), 0))
            break;
        char want[32];
        int n = snprintf(want, sizeof want, "m%d", m->pattern.n ? pattern : plain);
        CHECK(m->payload.n == (size_t)n && memcmp(m->payload.p, want, (size_t)n) == 0);
        if (m->pattern.n) {
            CHECK(wv_str_eq(m->pattern, pat));
            CHECK(wv_str_eq(m->channel, KEY("other.topic")));
            pattern++;
        } else {
            CHECK(wv_str_eq(m->channel, ch));
            plain++;
        }
        wv_redis_msg_free(m);
    }
    CHECK_EQ(plain, 20);
    CHECK_EQ(pattern, 20);
    wv_group_join(g);
    wv_group_free(g);

    /* the queue works in wv_chan_select */
    CHECK_EQ(wv_redis_cmd(r, NULL, "PUBLISH", ch.p, "selected"), 0);
    wv_redis_msg *got = NULL;
    wv_select_case c = {.chan = wv_redis_sub_chan(sub), .op = WV_RECV, .elem = &got};
    CHECK_EQ(wv_chan_select(&c, 1, wv_after_ms(2000)), 0);
    CHECK(got && wv_str_eq(got->payload, WV_STR("selected")));
    wv_redis_msg_free(got);

    /* after unsubscribing, nothing more comes */
    CHECK_EQ(wv_redis_sub_unsubscribe(sub, 0, NULL), 0);
    CHECK_EQ(wv_redis_sub_punsubscribe(sub, 0, NULL), 0);
    CHECK_EQ(wv_redis_cmd(r, NULL, "PUBLISH", ch.p, "late"), 0);
    CHECK_EQ(wv_redis_sub_recv(sub, &m, wv_after_ms(100)), -ETIMEDOUT);
    wv_redis_sub_close(sub);
    return 0;
}

static void test_redis_subscriber_receives_channel_and_pattern_messages_in_order(void **state)
{
    run_client(url, NULL, pubsub_body, NULL);
}

static void test_redis_subscriber_works_on_resp2(void **state)
{
    char u[256];
    snprintf(u, sizeof u, "%s?protocol=2", url);
    run_client(u, NULL, pubsub_body, NULL);
}

/* ---------------------------------------------------- blocking commands */

typedef struct brpop_arg {
    wv_redis *r;
    int rc;
    wv_buf key, value;
} brpop_arg;

static int brpop_fiber(void *arg)
{
    brpop_arg *b = arg;
    wv_str keys[2] = {KEY("q1"), KEY("q2")};
    b->rc = wv_redis_brpop(b->r, 2, keys, 5000, &b->key, &b->value);
    return 0;
}

static int blocking_body(wv_redis *r, void *arg)
{
    wv_str keys[2] = {KEY("q1"), KEY("q2")};
    wv_redis_del(r, 2, keys);
    brpop_arg b = {.r = r, .rc = -1};
    wv_group *g = wv_group_new();
    wv_group_spawn(g, brpop_fiber, &b, NULL);
    wv_sleep_ms(50);
    /* the shared connection keeps serving while BRPOP waits */
    int64_t t0 = wv_now();
    for (int i = 0; i < 10; i++)
        CHECK_EQ(wv_redis_ping(r), 0);
    CHECK(ms_since(t0) < 1000);
    wv_str v = WV_STR("job-1");
    CHECK_EQ(wv_redis_lpush(r, keys[1], 1, &v, NULL), 0);
    wv_group_join(g);
    wv_group_free(g);
    CHECK_EQ(b.rc, 1);
    CHECK(buf_is(&b.key, keys[1].p, keys[1].n));
    CHECK(buf_is(&b.value, "job-1", 5));
    /* the timeout passes: 0 */
    wv_buf_reset(&b.value);
    CHECK_EQ(wv_redis_brpop(r, 2, keys, 100, NULL, &b.value), 0);
    /* the generic call routes BLPOP the same way */
    wv_redis_reply *rep;
    CHECK_EQ(wv_redis_cmd(r, &rep, "BLPOP", keys[0].p, "0.05"), 0);
    CHECK_EQ(rep->type, WV_REDIS_NIL);
    wv_redis_reply_free(rep);
    wv_buf_free(&b.key);
    wv_buf_free(&b.value);
    return 0;
}

static void test_redis_blocking_commands_wait_on_their_own_connection(void **state)
{
    run_client(url, NULL, blocking_body, NULL);
}

/* ------------------------------------------------------- deadlines */

static int abandon_body(wv_redis *r, void *arg)
{
    wv_str k = KEY("abandon");
    CHECK_EQ(wv_redis_set(r, k, WV_STR("right"), NULL), 1);
    /* a command cut short by its deadline: its reply comes later and is
     * dropped, never handed to the next command */
    int64_t old = wv_deadline_set(wv_after_ms(30));
    CHECK_EQ(wv_redis_cmd(r, NULL, "DEBUG", "SLEEP", "0.2"), -ETIMEDOUT);
    wv_deadline_set(old);
    wv_buf v = {0};
    CHECK_EQ(wv_redis_get(r, k, &v), 1);
    CHECK(buf_is(&v, "right", 5));
    wv_redis_stats st;
    wv_redis_stats_get(r, &st);
    CHECK_EQ(st.reconnects, 0);
    wv_redis_del(r, 1, &k);
    wv_buf_free(&v);
    return 0;
}

static void test_redis_a_command_past_its_deadline_is_abandoned_not_misrouted(void **state)
{
    run_client(url, NULL, abandon_body, NULL);
}

static int scan_body(wv_redis *r, void *arg)
{
    enum { N = 250 };
    wv_redis_pipe *p;
    REQUIRE_EQ(wv_redis_pipe_new(r, false, &p), 0);
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "scan:%d", i);
        wv_redis_pipe_add(p, "SET", KEY(name).p, "1");
    }
    CHECK_EQ(wv_redis_pipe_exec(p), 0);
    wv_redis_pipe_free(p);
    char match[64];
    snprintf(match, sizeof match, "%sscan:*", prefix);
    uint64_t cursor = 0;
    int found = 0, rounds = 0;
    do {
        wv_redis_reply *keys;
        if (!CHECK_EQ(wv_redis_scan(r, &cursor, match, 100, &keys), 0))
            break;
        CHECK_EQ(keys->type, WV_REDIS_ARRAY);
        for (size_t i = 0; i < keys->len; i++) {
            found++;
            wv_redis_del(r, 1, &(wv_str){keys->elem[i].str, keys->elem[i].len});
        }
        wv_redis_reply_free(keys);
        rounds++;
    } while (cursor != 0 && rounds < 10000);
    CHECK_EQ(found, N);
    return 0;
}

static void test_redis_scan_visits_every_key(void **state)
{
    run_client(url, NULL, scan_body, NULL);
}

/* -------------------------------------------------- connecting, auth, TLS */

static int open_fails(const char *u, const wv_redis_opts *o, int want, const char *msg_part)
{
    wv_redis *r = NULL;
    int rc = wv_redis_open(u, o, &r);
    CHECK_EQ(rc, want);
    CHECK(r == NULL);
    if (msg_part && !CHECK(strstr(wv_errmsg(), msg_part) != NULL))
        fprintf(stderr, "message: %s\n", wv_errmsg());
    CHECK(strstr(wv_errmsg(), "app-secret") == NULL && strstr(wv_errmsg(), "wrong-pw") == NULL);
    if (r)
        wv_redis_close(r);
    return 0;
}

static const char *with_userinfo(char *out, size_t cap, const char *userinfo, const char *tail)
{
    /* url is redis://127.0.0.1:PORT */
    snprintf(out, cap, "redis://%s@%s%s", userinfo, url + strlen("redis://"), tail);
    return out;
}

static int auth_main(void *arg)
{
    char u[256];
    /* the ACL user from the URL */
    wv_redis *r;
    REQUIRE_EQ(wv_redis_open(with_userinfo(u, sizeof u, "app:app-secret", ""), NULL, &r), 0);
    wv_redis_reply *who;
    REQUIRE_EQ(wv_redis_cmd(r, &who, "ACL", "WHOAMI"), 0);
    CHECK_STR_EQ(who->str, "app");
    wv_redis_reply_free(who);
    wv_redis_close(r);
    /* the same on RESP2 (AUTH user password) */
    REQUIRE_EQ(wv_redis_open(with_userinfo(u, sizeof u, "app:app-secret", "?protocol=2"), NULL, &r),
               0);
    REQUIRE_EQ(wv_redis_cmd(r, &who, "ACL", "WHOAMI"), 0);
    CHECK_STR_EQ(who->str, "app");
    wv_redis_reply_free(who);
    wv_redis_close(r);
    /* a wrong password: -EACCES, the URL redacted in the message */
    open_fails(with_userinfo(u, sizeof u, "app:wrong-pw", ""), NULL, -EACCES, "WRONGPASS");
    open_fails(with_userinfo(u, sizeof u, "app:wrong-pw", "?protocol=2"), NULL, -EACCES,
               "WRONGPASS");
    /* nothing listens: -ECONNREFUSED */
    uint16_t port = 0;
    int fd = listen_loopback(&port);
    close(fd);
    snprintf(u, sizeof u, "redis://127.0.0.1:%u", port);
    open_fails(u, NULL, -ECONNREFUSED, "127.0.0.1");
    open_fails("http://127.0.0.1:1", NULL, -EINVAL, "scheme");
    open_fails("redis://127.0.0.1:1/notanumber", NULL, -EINVAL, "database");
    return 0;
}

static void test_redis_acl_user_from_the_url_and_wrong_password_is_eacces(void **state)
{
    assert_int_equal(run_in_rt(1, auth_main, NULL), 0);
    assert_checks_passed();
}

static int select_body(wv_redis *r, void *arg)
{
    wv_str k = KEY("in-db-3");
    CHECK_EQ(wv_redis_set(r, k, WV_STR("three"), NULL), 1);
    /* reconnects keep the database */
    wv_redis_reply *rep;
    REQUIRE_EQ(wv_redis_cmd(r, &rep, "CLIENT", "INFO"), 0);
    CHECK(strstr(rep->str, " db=3 ") != NULL);
    wv_redis_reply_free(rep);
    wv_redis *h;
    REQUIRE_EQ(wv_redis_acquire(r, &h), 0);
    REQUIRE_EQ(wv_redis_cmd(h, &rep, "CLIENT", "INFO"), 0);
    CHECK(strstr(rep->str, " db=3 ") != NULL);
    wv_redis_reply_free(rep);
    wv_redis_release(h);
    return 0;
}

static int select_check_main(void *arg)
{
    wv_redis *r;
    REQUIRE_EQ(wv_redis_open(url, NULL, &r), 0);
    wv_buf v = {0};
    CHECK_EQ(wv_redis_get(r, KEY("in-db-3"), &v), 0); /* not in db 0 */
    wv_redis *h;
    REQUIRE_EQ(wv_redis_acquire(r, &h), 0);
    CHECK_EQ(wv_redis_cmd(h, NULL, "SELECT", "3"), 0);
    CHECK_EQ(wv_redis_get(h, KEY("in-db-3"), &v), 1);
    CHECK(buf_is(&v, "three", 5));
    wv_redis_del(h, 1, &(wv_str){KEY("in-db-3").p, KEY("in-db-3").n});
    wv_redis_release(h);
    wv_redis_close(r);
    wv_buf_free(&v);
    return 0;
}

static void test_redis_database_from_the_url_is_selected_on_every_connection(void **state)
{
    char u[256];
    snprintf(u, sizeof u, "%s/3?client_name=weave-test", url);
    run_client(u, NULL, select_body, NULL);
    assert_int_equal(run_in_rt(1, select_check_main, NULL), 0);
    assert_checks_passed();
}

static int tls_main(void *arg)
{
    wv_tls_ctx *ctx;
    REQUIRE_EQ(wv_tls_ctx_client(&(wv_tls_opts){.ca_file = ca_file}, &ctx), 0);
    wv_redis *r;
    int rc = wv_redis_open(tls_url, &(wv_redis_opts){.tls = ctx}, &r);
    if (!CHECK_EQ(rc, 0)) {
        fprintf(stderr, "%s\n", wv_errmsg());
        wv_tls_ctx_free(ctx);
        return -1;
    }
    wv_str k = KEY("over-tls");
    CHECK_EQ(wv_redis_set(r, k, WV_STR("secret"), NULL), 1);
    wv_buf v = {0};
    CHECK_EQ(wv_redis_get(r, k, &v), 1);
    CHECK(buf_is(&v, "secret", 6));
    wv_redis_reply *rep;
    REQUIRE_EQ(wv_redis_cmd(r, &rep, "CLIENT", "INFO"), 0);
    wv_redis_reply_free(rep);
    wv_redis_del(r, 1, &k);
    wv_redis_close(r);
    wv_buf_free(&v);
    /* without trusting the test CA the handshake fails */
    CHECK_EQ(wv_redis_open(tls_url, NULL, &r), -EPROTO);
    CHECK(strstr(wv_errmsg(), "certificate") != NULL);
    wv_tls_ctx_free(ctx);
    return 0;
}

static void test_redis_rediss_url_talks_tls_and_verifies_the_certificate(void **state)
{
    if (!tls_url || !ca_file) {
        fail_msg("WEAVE_TEST_REDIS_TLS_URL and WEAVE_TEST_REDIS_CA are not set");
        return;
    }
    assert_int_equal(run_in_rt(1, tls_main, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------ fake servers */

/* A server of this test's own: answers HELLO with an error (so the client
 * falls back to RESP2 and sends nothing more while greeting), then answers
 * every later read with `reply`, `step` bytes per write (0: never). */
typedef struct fake {
    int lfd;
    const char *reply;
    size_t step;
    bool mute; /* not even HELLO is answered */
    int conns;
} fake;

static int fake_conn(void *arg)
{
    fake *f = arg;
    int fd = wv_accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return 0;
    f->conns++;
    wv_spawn(fake_conn, f, NULL); /* the next one */
    char buf[4096];
    ssize_t n = f->mute ? 0 : wv_read(fd, buf, sizeof buf);
    if (n > 0) {
        static const char hello_err[] = "-ERR unknown command 'HELLO'\r\n";
        wv_write(fd, hello_err, sizeof hello_err - 1);
    }
    while ((n = wv_read(fd, buf, sizeof buf)) > 0) {
        if (f->step == 0)
            continue;
        size_t len = strlen(f->reply);
        for (size_t at = 0; at < len; at += f->step) {
            size_t k = len - at < f->step ? len - at : f->step;
            wv_write(fd, f->reply + at, k);
            wv_sleep_ms(1);
        }
    }
    wv_close(fd);
    return 0;
}

static int fake_start(fake *f, char *u, size_t cap)
{
    uint16_t port = 0;
    f->lfd = listen_loopback(&port);
    if (f->lfd < 0)
        return f->lfd;
    snprintf(u, cap, "redis://127.0.0.1:%u", port);
    return wv_spawn(fake_conn, f, NULL);
}

static int split_main(void *arg)
{
    fake f = {.reply = "*3\r\n$5\r\nhello\r\n:42\r\n%1\r\n+k\r\n$-1\r\n", .step = 1};
    char u[64];
    REQUIRE_EQ(fake_start(&f, u, sizeof u), 0);
    wv_redis *r;
    REQUIRE_EQ(wv_redis_open(u, NULL, &r), 0);
    wv_redis_reply *rep;
    REQUIRE_EQ(wv_redis_cmd(r, &rep, "ANYTHING"), 0);
    CHECK_EQ(rep->type, WV_REDIS_ARRAY);
    CHECK_EQ(rep->len, 3);
    if (rep->len == 3) {
        CHECK_STR_EQ(rep->elem[0].str, "hello");
        CHECK_EQ(rep->elem[1].integer, 42);
        CHECK_EQ(rep->elem[2].type, WV_REDIS_MAP);
    }
    wv_redis_reply_free(rep);
    wv_redis_close(r);
    wv_close(f.lfd);
    return 0;
}

static void test_redis_a_reply_arriving_one_byte_at_a_time_is_read_whole(void **state)
{
    assert_int_equal(run_in_rt(1, split_main, NULL), 0);
    assert_checks_passed();
}

static int wrong_type_main(void *arg)
{
    fake f = {.reply = ":42\r\n", .step = 64};
    char u[64];
    REQUIRE_EQ(fake_start(&f, u, sizeof u), 0);
    wv_redis *r;
    REQUIRE_EQ(wv_redis_open(u, NULL, &r), 0);
    wv_buf v = {0};
    CHECK_EQ(wv_redis_get(r, WV_STR("k"), &v), -EPROTO);
    CHECK_STR_EQ(wv_errmsg(), "redis GET: the server answered an integer, not a bulk string");
    /* the connection is still in step: the next reply is matched */
    int64_t n = 0;
    CHECK_EQ(wv_redis_incrby(r, WV_STR("k"), 1, &n), 0);
    CHECK_EQ(n, 42);
    wv_redis_close(r);
    wv_close(f.lfd);
    wv_buf_free(&v);
    return 0;
}

static void test_redis_a_reply_of_the_wrong_type_for_a_helper_is_eproto(void **state)
{
    assert_int_equal(run_in_rt(1, wrong_type_main, NULL), 0);
    assert_checks_passed();
}

static int garbage_main(void *arg)
{
    fake f = {.reply = "?what\r\n", .step = 64};
    char u[64];
    REQUIRE_EQ(fake_start(&f, u, sizeof u), 0);
    wv_redis *r;
    REQUIRE_EQ(wv_redis_open(u, NULL, &r), 0);
    CHECK_EQ(wv_redis_cmd(r, NULL, "PING"), -EPROTO);
    CHECK(strstr(wv_errmsg(), "protocol error") != NULL);
    /* the broken connection is replaced by a new one */
    f.reply = "+PONG\r\n";
    CHECK_EQ(wv_redis_ping(r), 0);
    wv_redis_stats st;
    wv_redis_stats_get(r, &st);
    CHECK_EQ(st.reconnects, 1);
    CHECK_EQ(f.conns, 2);
    wv_redis_close(r);
    wv_close(f.lfd);
    return 0;
}

static void test_redis_bytes_that_are_not_resp_drop_the_connection_eproto(void **state)
{
    assert_int_equal(run_in_rt(1, garbage_main, NULL), 0);
    assert_checks_passed();
}

static int silent_main(void *arg)
{
    fake f = {.step = 0};
    char u[64];
    REQUIRE_EQ(fake_start(&f, u, sizeof u), 0);
    wv_redis *r;
    REQUIRE_EQ(wv_redis_open(u, &(wv_redis_opts){.response_timeout_ms = 300}, &r), 0);
    /* the fiber's deadline ends its wait */
    int64_t t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(100));
    CHECK_EQ(wv_redis_ping(r), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_BETWEEN(ms_since(t0), 90, 250);
    /* with no deadline, response_timeout_ms drops the connection */
    t0 = wv_now();
    CHECK_EQ(wv_redis_ping(r), -ETIMEDOUT);
    CHECK(strstr(wv_errmsg(), "no reply for 300 ms") != NULL);
    CHECK_BETWEEN(ms_since(t0), 150, 1000);
    wv_redis_close(r);
    /* a server that accepts and never greets: open gives up at connect_timeout_ms */
    f.mute = true;
    t0 = wv_now();
    CHECK_EQ(wv_redis_open(u, &(wv_redis_opts){.connect_timeout_ms = 200}, &r), -ETIMEDOUT);
    CHECK_BETWEEN(ms_since(t0), 150, 1000);
    wv_close(f.lfd);
    return 0;
}

static void test_redis_a_server_that_never_answers_ends_in_etimedout(void **state)
{
    assert_int_equal(run_in_rt(1, silent_main, NULL), 0);
    assert_checks_passed();
}

static int too_big_body(wv_redis *r, void *arg)
{
    wv_str k = KEY("big");
    size_t n = 100000;
    char *big = malloc(n);
    memset(big, 'x', n);
    CHECK_EQ(wv_redis_set(r, k, (wv_str){big, n}, NULL), 1);
    wv_buf v = {0};
    CHECK_EQ(wv_redis_get(r, k, &v), -EMSGSIZE);
    CHECK(strstr(wv_errmsg(), "reply too large") != NULL);
    CHECK_EQ(wv_redis_set(r, KEY("small"), WV_STR("ok"), NULL), 1);
    CHECK_EQ(wv_redis_get(r, KEY("small"), &v), 1);
    CHECK(buf_is(&v, "ok", 2));
    /* a value larger than the caller's buffer limit: -ENOMEM, the
     * connection stays in step */
    wv_buf small = {.limit = 10};
    CHECK_EQ(wv_redis_set(r, KEY("small"), WV_STR("0123456789abc"), NULL), 1);
    CHECK_EQ(wv_redis_get(r, KEY("small"), &small), -ENOMEM);
    CHECK_EQ(wv_redis_ping(r), 0);
    wv_str both[2] = {k, KEY("small")};
    wv_redis_del(r, 2, both);
    wv_buf_free(&v);
    wv_buf_free(&small);
    free(big);
    return 0;
}

static void test_redis_a_reply_over_max_reply_is_emsgsize(void **state)
{
    run_client(url, &(wv_redis_opts){.max_reply = 50000}, too_big_body, NULL);
}

/* --------------------------------------------------- the server killed */

typedef struct chaos {
    wv_redis *r;
    int id;
    bool stop;
    int ok, failed, wrong;
    bool last_ok_after_fail; /* a success came after its first failure */
} chaos;

static int chaos_fiber(void *arg)
{
    chaos *c = arg;
    char name[32];
    snprintf(name, sizeof name, "chaos:%d", c->id);
    wv_str k = KEY(name);
    for (int i = 0; !c->stop; i++) {
        char val[48];
        int n = snprintf(val, sizeof val, "%d-%d", c->id, i);
        int64_t old = wv_deadline_set(wv_after_ms(1000));
        int rc = wv_redis_set(c->r, k, (wv_str){val, (size_t)n}, NULL);
        wv_buf v = {0};
        if (rc == 1)
            rc = wv_redis_get(c->r, k, &v);
        wv_deadline_set(old);
        if (rc == 1 && buf_is(&v, val, (size_t)n)) {
            c->ok++;
            c->last_ok_after_fail = c->failed > 0;
        } else if (rc == 1)
            c->wrong++; /* another fiber's reply, or a lost write: never */
        else if (rc < 0)
            c->failed++;
        else
            c->wrong++;
        wv_buf_free(&v);
        if (rc < 0)
            wv_sleep_ms(5);
    }
    return 0;
}

static int run_ctl(void *arg)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "%s %s %s >/dev/null 2>&1", srv_ctl, (const char *)arg, srv_dir);
    return system(cmd) == 0 ? 0 : -EIO;
}

static int killed_main(void *arg)
{
    enum { FIBERS = 64 };
    wv_redis *r;
    REQUIRE_EQ(wv_redis_open(url, NULL, &r), 0);
    chaos c[FIBERS];
    wv_group *g = wv_group_new();
    for (int i = 0; i < FIBERS; i++) {
        c[i] = (chaos){.r = r, .id = i};
        wv_group_spawn(g, chaos_fiber, &c[i], NULL);
    }
    wv_sleep_ms(300);
    CHECK_EQ(wv_offload(run_ctl, "kill"), 0);
    wv_sleep_ms(300);
    CHECK_EQ(wv_offload(run_ctl, "restart"), 0);
    int ok_at_restart = 0;
    for (int i = 0; i < FIBERS; i++)
        ok_at_restart += c[i].ok;
    /* every fiber gets going again (the backoff is 2 s at most) */
    int64_t until = wv_after_ms(10000);
    for (bool all = false; !all && wv_now() < until;) {
        wv_sleep_ms(50);
        all = true;
        for (int i = 0; i < FIBERS; i++)
            all = all && c[i].ok > 0 && c[i].failed > 0 && c[i].last_ok_after_fail;
    }
    for (int i = 0; i < FIBERS; i++)
        c[i].stop = true;
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    int ok = 0, failed = 0, wrong = 0;
    for (int i = 0; i < FIBERS; i++) {
        ok += c[i].ok;
        failed += c[i].failed;
        wrong += c[i].wrong;
    }
    CHECK_EQ(wrong, 0);
    CHECK(failed > 0); /* the crash was seen */
    for (int i = 0; i < FIBERS; i++)
        CHECK(c[i].last_ok_after_fail); /* and every fiber got going again */
    wv_redis_stats st;
    wv_redis_stats_get(r, &st);
    CHECK(st.reconnects >= 1);
    CHECK_EQ(st.inflight, 0);
    printf("    %d ok (%d before the restart), %d failed, %llu reconnects\n", ok, ok_at_restart,
           failed, (unsigned long long)st.reconnects);
    wv_redis_close(r);
    return 0;
}

static void test_redis_server_killed_under_64_fibers_every_command_answered_or_failed(void **state)
{
    if (!srv_ctl || !srv_dir) {
        fail_msg("WEAVE_TEST_REDIS_CTL and WEAVE_TEST_REDIS_DIR are not set");
        return;
    }
    assert_int_equal(run_in_rt(1, killed_main, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ cluster */

static int keyslot_main(void *arg)
{
    wv_redis *r;
    REQUIRE_EQ(wv_redis_open(cluster_url, NULL, &r), 0);
    /* the examples of the cluster specification */
    wv_str foo[2] = {WV_STR("GET"), WV_STR("foo")};
    CHECK_EQ(redis_key_slot(2, foo), 12182);
    wv_str a[2] = {WV_STR("GET"), WV_STR("{user1000}.following")};
    wv_str b[2] = {WV_STR("GET"), WV_STR("{user1000}.followers")};
    CHECK_EQ(redis_key_slot(2, a), redis_key_slot(2, b));
    wv_str empty_tag[2] = {WV_STR("GET"), WV_STR("foo{}{bar}")};
    wv_str whole[2] = {WV_STR("GET"), WV_STR("foo{}{bar}")};
    CHECK_EQ(redis_key_slot(2, empty_tag), redis_key_slot(2, whole));
    wv_str ping[1] = {WV_STR("PING")};
    CHECK_EQ(redis_key_slot(1, ping), -1);
    wv_str eval[5] = {WV_STR("EVAL"), WV_STR("return 1"), WV_STR("1"), WV_STR("foo"), WV_STR("x")};
    CHECK_EQ(redis_key_slot(5, eval), 12182);
    /* the server agrees on 500 keys of every shape */
    for (int i = 0; i < 500; i++) {
        char key[64];
        int n = snprintf(key, sizeof key, i % 3 ? "key:%d" : "{tag%d}:x", i * 7919);
        wv_str argv[2] = {WV_STR("GET"), {key, (size_t)n}};
        wv_redis_reply *rep;
        if (!CHECK_EQ(wv_redis_cmd(r, &rep, "CLUSTER", "KEYSLOT", key), 0))
            break;
        CHECK_EQ(rep->integer, redis_key_slot(2, argv));
        wv_redis_reply_free(rep);
    }
    wv_redis_close(r);
    return 0;
}

static void test_redis_cluster_key_slots_match_the_servers(void **state)
{
    if (!cluster_url) {
        fail_msg("WEAVE_TEST_REDIS_CLUSTER_URL is not set");
        return;
    }
    assert_int_equal(run_in_rt(1, keyslot_main, NULL), 0);
    assert_checks_passed();
}

static int cluster_spread_body(wv_redis *r, void *arg)
{
    enum { N = 300 };
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "spread:%d", i);
        CHECK_EQ(wv_redis_set(r, KEY(name), KEY(name), NULL), 1);
    }
    for (int i = 0; i < N; i++) {
        char name[32];
        snprintf(name, sizeof name, "spread:%d", i);
        wv_buf v = {0};
        wv_str k = KEY(name);
        CHECK_EQ(wv_redis_get(r, k, &v), 1);
        CHECK(buf_is(&v, k.p, k.n));
        wv_buf_free(&v);
        CHECK_EQ(wv_redis_del(r, 1, &k), 1);
    }
    /* a pipeline and a transaction on keys of one slot */
    wv_str x = KEY("{same}.a"), y = KEY("{same}.b");
    wv_redis_pipe *tx;
    REQUIRE_EQ(wv_redis_pipe_new(r, true, &tx), 0);
    wv_redis_pipe_add(tx, "SET", x.p, "1");
    wv_redis_pipe_add(tx, "SET", y.p, "2");
    wv_redis_pipe_add(tx, "MGET", x.p, y.p);
    CHECK_EQ(wv_redis_pipe_exec(tx), 0);
    const wv_redis_reply *mg = wv_redis_pipe_reply(tx, 2);
    CHECK(mg && mg->type == WV_REDIS_ARRAY && mg->len == 2);
    wv_redis_pipe_free(tx);
    wv_str both[2] = {x, y};
    CHECK_EQ(wv_redis_del(r, 2, both), 2);
    wv_redis_stats st;
    wv_redis_stats_get(r, &st);
    CHECK_EQ(st.redirects, 0); /* the map was right from the start */
    return 0;
}

static void test_redis_cluster_routes_each_key_to_its_node(void **state)
{
    if (!cluster_url) {
        fail_msg("WEAVE_TEST_REDIS_CLUSTER_URL is not set");
        return;
    }
    char u[256];
    snprintf(u, sizeof u, "%s?cluster=true", cluster_url);
    run_client(u, NULL, cluster_spread_body, NULL);
}

/* The nodes of the test cluster, each through a plain client. */
typedef struct node {
    wv_redis *r;
    char id[64];
    int port;
} node;

static int open_nodes(node n[3])
{
    int base = atoi(strrchr(cluster_url, ':') + 1);
    for (int i = 0; i < 3; i++) {
        char u[64];
        n[i].port = base + i;
        snprintf(u, sizeof u, "redis://127.0.0.1:%d", n[i].port);
        REQUIRE_EQ(wv_redis_open(u, NULL, &n[i].r), 0);
        wv_redis_reply *id;
        REQUIRE_EQ(wv_redis_cmd(n[i].r, &id, "CLUSTER", "MYID"), 0);
        snprintf(n[i].id, sizeof n[i].id, "%s", id->str);
        wv_redis_reply_free(id);
    }
    return 0;
}

/* Move slot from node `from` to node `to`, with the keys in it, as
 * redis-cli --cluster reshard does. With stop_half_way the slot is left
 * migrating (from answers ASK for keys it does not have). */
static int move_slot(node n[3], int slot, int from, int to, bool stop_half_way)
{
    char s[16];
    snprintf(s, sizeof s, "%d", slot);
    REQUIRE_EQ(wv_redis_cmd(n[to].r, NULL, "CLUSTER", "SETSLOT", s, "IMPORTING", n[from].id), 0);
    REQUIRE_EQ(wv_redis_cmd(n[from].r, NULL, "CLUSTER", "SETSLOT", s, "MIGRATING", n[to].id), 0);
    if (stop_half_way)
        return 0;
    for (;;) {
        wv_redis_reply *keys;
        REQUIRE_EQ(wv_redis_cmd(n[from].r, &keys, "CLUSTER", "GETKEYSINSLOT", s, "100"), 0);
        size_t nk = keys->len;
        for (size_t i = 0; i < nk; i++) {
            char port[16];
            snprintf(port, sizeof port, "%d", n[to].port);
            CHECK_EQ(wv_redis_cmd(n[from].r, NULL, "MIGRATE", "127.0.0.1", port, keys->elem[i].str,
                                  "0", "5000"),
                     0);
        }
        wv_redis_reply_free(keys);
        if (nk == 0)
            break;
    }
    for (int i = 0; i < 3; i++)
        REQUIRE_EQ(wv_redis_cmd(n[i].r, NULL, "CLUSTER", "SETSLOT", s, "NODE", n[to].id), 0);
    return 0;
}

static int moved_main(void *arg)
{
    node n[3];
    REQUIRE_EQ(open_nodes(n), 0);
    /* a key whose slot lives on the first node (slots 0-5460) */
    char name[64];
    wv_str k = {0};
    int slot = -1;
    for (int t = 0; slot < 0 || slot > 5460; t++) {
        snprintf(name, sizeof name, "{moved%d}.k", t);
        k = KEY(name);
        wv_str argv[2] = {WV_STR("GET"), k};
        slot = redis_key_slot(2, argv);
    }
    char kbuf[128];
    snprintf(kbuf, sizeof kbuf, "%.*s", (int)k.n, k.p);
    k.p = kbuf;
    /* whatever an earlier, interrupted run left of a migration */
    char s[16];
    snprintf(s, sizeof s, "%d", slot);
    for (int i = 0; i < 3; i++)
        wv_redis_cmd(n[i].r, NULL, "CLUSTER", "SETSLOT", s, "STABLE");
    char u[256];
    snprintf(u, sizeof u, "%s?cluster=true", cluster_url);
    wv_redis *r;
    REQUIRE_EQ(wv_redis_open(u, NULL, &r), 0);
    CHECK_EQ(wv_redis_set(r, k, WV_STR("before"), NULL), 1);

    /* the slot moves to the second node behind the client's back: MOVED */
    REQUIRE_EQ(move_slot(n, slot, 0, 1, false), 0);
    wv_buf v = {0};
    CHECK_EQ(wv_redis_get(r, k, &v), 1);
    CHECK(buf_is(&v, "before", 6));
    wv_redis_stats st;
    wv_redis_stats_get(r, &st);
    CHECK_EQ(st.redirects, 1);
    wv_sleep_ms(300); /* the map is read again in the background */
    CHECK_EQ(wv_redis_set(r, k, WV_STR("after"), NULL), 1);
    wv_redis_stats_get(r, &st);
    CHECK_EQ(st.redirects, 1);

    /* half way back: the first node imports, the second answers ASK for a
     * key it no longer has */
    REQUIRE_EQ(move_slot(n, slot, 1, 0, true), 0);
    char port[16];
    snprintf(port, sizeof port, "%d", n[0].port);
    REQUIRE_EQ(wv_redis_cmd(n[1].r, NULL, "MIGRATE", "127.0.0.1", port, k.p, "0", "5000"), 0);
    wv_buf_reset(&v);
    CHECK_EQ(wv_redis_get(r, k, &v), 1); /* ASK, then ASKING + GET on the first node */
    CHECK(buf_is(&v, "after", 5));
    wv_redis_stats_get(r, &st);
    CHECK_EQ(st.redirects, 2);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wv_redis_cmd(n[i].r, NULL, "CLUSTER", "SETSLOT", s, "NODE", n[0].id), 0);
    CHECK_EQ(wv_redis_del(r, 1, &k), 1);
    wv_redis_close(r);
    for (int i = 0; i < 3; i++)
        wv_redis_close(n[i].r);
    wv_buf_free(&v);
    return 0;
}

static void test_redis_cluster_follows_moved_and_ask_when_a_slot_migrates(void **state)
{
    if (!cluster_url) {
        fail_msg("WEAVE_TEST_REDIS_CLUSTER_URL is not set");
        return;
    }
    assert_int_equal(run_in_rt(1, moved_main, NULL), 0);
    assert_checks_passed();
}

/* --------------------------------------------------------------- peers */

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

static int peers_body(wv_redis *r, void *arg)
{
    wv_str k = KEY("peer:from-weave"), h = KEY("peer:hash"), pk = KEY("peer:from-python");
    static const char value[] = "caf\xc3\xa9 \x01\x02 end";
    CHECK_EQ(wv_redis_set(r, k, (wv_str){value, sizeof value - 1}, NULL), 1);
    CHECK_EQ(wv_redis_hset(r, h, WV_STR("field"), WV_STR("42")), 1);

    /* redis-cli reads it: --no-raw prints bytes escaped, so compare that */
    char cmd[1024];
    shell sh = {.cmd = cmd};
    snprintf(cmd, sizeof cmd, "redis-cli -u '%s' --raw GET '%s' | od -An -c | tr -s ' '", url, k.p);
    REQUIRE_EQ(wv_offload(shell_run, &sh), 0);
    CHECK(strstr(sh.out, "c a f 303 251 001 002 e n d") != NULL);
    snprintf(cmd, sizeof cmd, "redis-cli -u '%s' --raw HGET '%s' field", url, h.p);
    REQUIRE_EQ(wv_offload(shell_run, &sh), 0);
    CHECK_STR_EQ(sh.out, "42\n");

    /* Python's redis reads what weave wrote and writes what weave reads */
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import redis; r = redis.Redis.from_url('%s'); "
             "assert r.get('%s') == b'caf\\\\xc3\\\\xa9 \\\\x01\\\\x02 end'; "
             "assert r.hget('%s', 'field') == b'42'; "
             "r.set('%s', b'from\\\\x00python', px=60000); "
             "r.rpush('%s:list', 'a', 'b'); print('ok')\" 2>&1",
             url, k.p, h.p, pk.p, pk.p);
    REQUIRE_EQ(wv_offload(shell_run, &sh), 0);
    CHECK_STR_EQ(sh.out, "ok\n");
    wv_buf v = {0};
    CHECK_EQ(wv_redis_get(r, pk, &v), 1);
    CHECK(buf_is(&v, "from\0python", 11));
    char list[160];
    snprintf(list, sizeof list, "%s:list", pk.p);
    wv_redis_reply *rep;
    REQUIRE_EQ(wv_redis_cmd(r, &rep, "LRANGE", list, "0", "-1"), 0);
    CHECK(rep->len == 2 && strcmp(rep->elem[0].str, "a") == 0 &&
          strcmp(rep->elem[1].str, "b") == 0);
    wv_redis_reply_free(rep);
    wv_str all[4] = {k, h, pk, {list, strlen(list)}};
    CHECK_EQ(wv_redis_del(r, 4, all), 4);
    wv_buf_free(&v);
    return 0;
}

static void test_redis_cli_and_python_redis_read_what_weave_wrote_and_back(void **state)
{
    run_client(url, NULL, peers_body, NULL);
}

/* ------------------------------------------------------------ main */

int main(void)
{
    harness_init();
    url = getenv("WEAVE_TEST_REDIS_URL");
    tls_url = getenv("WEAVE_TEST_REDIS_TLS_URL");
    ca_file = getenv("WEAVE_TEST_REDIS_CA");
    srv_dir = getenv("WEAVE_TEST_REDIS_DIR");
    srv_ctl = getenv("WEAVE_TEST_REDIS_CTL");
    cluster_url = getenv("WEAVE_TEST_REDIS_CLUSTER_URL");
    if (!url || !*url) {
        const char *skip = getenv("WEAVE_TEST_REDIS_SKIP");
        if (skip && strcmp(skip, "1") == 0) {
            printf("test_redis: skipped (WEAVE_TEST_REDIS_SKIP=1, no WEAVE_TEST_REDIS_URL)\n");
            return 0;
        }
        fprintf(stderr, "test_redis: WEAVE_TEST_REDIS_URL is not set. Start a server with\n"
                        "  scripts/redis_test_server.sh start /tmp/redis 16379\n"
                        "and export WEAVE_TEST_REDIS_URL=<the URL it prints>,\n"
                        "or set WEAVE_TEST_REDIS_SKIP=1 to skip these tests.\n");
        return 1;
    }
    snprintf(prefix, sizeof prefix, "wvt:%d:", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_set_then_get_returns_the_binary_value),
        cmocka_unit_test(test_redis_get_of_a_missing_key_returns_0),
        cmocka_unit_test(test_redis_set_honours_nx_xx_ttl_and_expire),
        cmocka_unit_test(test_redis_typed_helpers_give_typed_results),
        cmocka_unit_test(test_redis_speaks_resp3_by_default_with_maps_sets_and_doubles),
        cmocka_unit_test(test_redis_protocol_2_in_the_url_gives_resp2_replies),
        cmocka_unit_test(test_redis_error_reply_is_eio_with_the_servers_words),
        cmocka_unit_test(test_redis_eval_runs_by_sha_and_loads_the_script_on_noscript),
        cmocka_unit_test(test_redis_state_changing_commands_need_a_handle),
        cmocka_unit_test(test_redis_1000_fibers_share_one_connection_in_few_writes),
        cmocka_unit_test(test_redis_without_autopipelining_each_command_is_its_own_write),
        cmocka_unit_test(test_redis_pipeline_returns_every_reply_in_order_errors_in_place),
        cmocka_unit_test(test_redis_transaction_is_atomic_and_watch_conflict_is_eagain),
        cmocka_unit_test(test_redis_subscriber_receives_channel_and_pattern_messages_in_order),
        cmocka_unit_test(test_redis_subscriber_works_on_resp2),
        cmocka_unit_test(test_redis_blocking_commands_wait_on_their_own_connection),
        cmocka_unit_test(test_redis_a_command_past_its_deadline_is_abandoned_not_misrouted),
        cmocka_unit_test(test_redis_scan_visits_every_key),
        cmocka_unit_test(test_redis_acl_user_from_the_url_and_wrong_password_is_eacces),
        cmocka_unit_test(test_redis_database_from_the_url_is_selected_on_every_connection),
        cmocka_unit_test(test_redis_rediss_url_talks_tls_and_verifies_the_certificate),
        cmocka_unit_test(test_redis_a_reply_arriving_one_byte_at_a_time_is_read_whole),
        cmocka_unit_test(test_redis_a_reply_of_the_wrong_type_for_a_helper_is_eproto),
        cmocka_unit_test(test_redis_bytes_that_are_not_resp_drop_the_connection_eproto),
        cmocka_unit_test(test_redis_a_server_that_never_answers_ends_in_etimedout),
        cmocka_unit_test(test_redis_a_reply_over_max_reply_is_emsgsize),
        cmocka_unit_test(test_redis_server_killed_under_64_fibers_every_command_answered_or_failed),
        cmocka_unit_test(test_redis_cli_and_python_redis_read_what_weave_wrote_and_back),
        cmocka_unit_test(test_redis_cluster_key_slots_match_the_servers),
        cmocka_unit_test(test_redis_cluster_routes_each_key_to_its_node),
        cmocka_unit_test(test_redis_cluster_follows_moved_and_ask_when_a_slot_migrates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
