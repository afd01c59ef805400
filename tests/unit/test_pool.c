/*
 * wv_pool, the net layer's generic connection pool: reuse (newest first),
 * FIFO waiters without barging, waiter deadlines and cancellation (a
 * connection handed to a waiter that leaves is passed on), checks, max
 * lifetime, idle timeout, max_idle, max_size (opening counts), open errors,
 * discard, unknown pointers, wv_pool_free and shard ownership.
 *
 * The connections are small heap structs made and freed by the fake
 * client's open/close callbacks, which count them: these test the pool's
 * logic, not a protocol.
 */
#include "harness.h"

#include "weave/net.h"

/* ------------------------------------------------------------ fake client */

typedef struct fconn {
    int id;
    bool bad; /* the check fails */
} fconn;

typedef struct fake {
    int opens;  /* open calls */
    int closes; /* close calls */
    int live;   /* connections made and not yet closed */
    int next_id;
    int checks;
    int fail_opens;        /* this many next opens fail ... */
    int fail_err;          /* ... with this error */
    int64_t open_delay_ms; /* open sleeps this long first */
    int closed_ids[64];
    int nclosed;
} fake;

static int fake_open(void *ctx, void **conn)
{
    fake *f = ctx;
    f->opens++;
    int n = f->opens;
    if (f->open_delay_ms > 0) {
        int rc = wv_sleep_ms(f->open_delay_ms);
        if (rc < 0)
            return rc;
    }
    if (f->fail_opens > 0) {
        f->fail_opens--;
        return wv_fail(f->fail_err, "fake: open %d refused", n);
    }
    fconn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->id = ++f->next_id;
    f->live++;
    *conn = c;
    return 0;
}

static void fake_close(void *ctx, void *conn)
{
    fake *f = ctx;
    fconn *c = conn;
    if (f->nclosed < (int)ARRAY_LEN(f->closed_ids))
        f->closed_ids[f->nclosed++] = c->id;
    f->closes++;
    f->live--;
    free(c);
}

static int fake_check(void *ctx, void *conn)
{
    fake *f = ctx;
    fconn *c = conn;
    f->checks++;
    return c->bad ? wv_fail(-ECONNRESET, "fake: connection %d is gone", c->id) : 0;
}

static wv_pool_opts fake_opts(fake *f, int max_size)
{
    wv_pool_opts o;
    memset(&o, 0, sizeof o);
    o.open = fake_open;
    o.close = fake_close;
    o.check = fake_check;
    o.ctx = f;
    o.max_size = max_size;
    return o;
}

static int conn_id(void *c)
{
    return c ? ((fconn *)c)->id : 0;
}

static wv_pool_stats stats(wv_pool *p)
{
    wv_pool_stats st;
    wv_pool_stats_get(p, &st);
    return st;
}

/* A fiber that acquires (with its own deadline if deadline_ms > 0), notes
 * its tag and the connection, holds it hold_ms (0: one yield), releases. */
typedef struct user {
    wv_pool *p;
    char tag;
    int64_t deadline_ms;
    int64_t hold_ms;
    char *order; /* tags appended in the order acquire returned 0 */
    int *norder;
    int rc;
    int id;
    bool done;
} user;

static int user_fiber(void *arg)
{
    user *u = arg;
    int64_t old = wv_deadline();
    if (u->deadline_ms > 0)
        wv_deadline_set(wv_after_ms(u->deadline_ms));
    void *c = NULL;
    u->rc = wv_pool_acquire(u->p, &c);
    wv_deadline_set(old);
    if (u->rc == 0) {
        u->id = conn_id(c);
        if (u->order)
            u->order[(*u->norder)++] = u->tag;
        if (u->hold_ms > 0)
            wv_sleep_ms(u->hold_ms);
        else
            wv_yield();
        wv_pool_release(u->p, c);
    }
    u->done = true;
    return 0; /* errors are recorded, not group failures */
}

#define RT_TEST(name, body, shards)                                                                \
    static void name(void **state)                                                                 \
    {                                                                                              \
        (void)state;                                                                               \
        assert_int_equal(run_in_rt((shards), (body), NULL), 0);                                    \
        assert_checks_passed();                                                                    \
    }

/* ------------------------------------------------------------ creation */

static void test_pool_new_outside_runtime_is_eperm(void **state)
{
    (void)state;
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 1);
    wv_pool *p = (wv_pool *)&f;
    assert_int_equal(wv_pool_new(&o, &p), -EPERM);
    assert_null(p);
}

static int new_requires_callbacks(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool *p = NULL;
    wv_pool_opts o = fake_opts(&f, 1);
    o.close = NULL;
    CHECK_EQ(wv_pool_new(&o, &p), -EINVAL);
    CHECK(p == NULL);
    o = fake_opts(&f, 1);
    o.open = NULL;
    CHECK_EQ(wv_pool_new(&o, &p), -EINVAL);
    CHECK(p == NULL);
    o = fake_opts(&f, 1);
    CHECK_EQ(wv_pool_new(&o, &p), 0);
    CHECK(p != NULL);
    CHECK_EQ(f.opens, 0); /* opens nothing yet */
    wv_pool_free(p);
    return 0;
}
RT_TEST(test_pool_new_requires_open_and_close, new_requires_callbacks, 1)

/* ------------------------------------------------------------ reuse */

static int reuse(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 4);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *a, *b;
    REQUIRE_EQ(wv_pool_acquire(p, &a), 0);
    CHECK_EQ(stats(p).in_use, 1);
    wv_pool_release(p, a);
    CHECK_EQ(stats(p).idle, 1);
    CHECK_EQ(stats(p).in_use, 0);
    REQUIRE_EQ(wv_pool_acquire(p, &b), 0);
    CHECK_EQ(conn_id(b), conn_id(a));
    wv_pool_stats st = stats(p);
    CHECK_EQ(st.opened, 1);
    CHECK_EQ(st.reused, 1);
    CHECK_EQ(st.idle, 0);
    CHECK_EQ(st.in_use, 1);
    CHECK_EQ(f.opens, 1);
    wv_pool_release(p, b);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_reuses_released_connection, reuse, 1)

static int newest_first(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 4);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *a, *b, *c;
    REQUIRE_EQ(wv_pool_acquire(p, &a), 0);
    REQUIRE_EQ(wv_pool_acquire(p, &b), 0);
    int bid = conn_id(b);
    wv_pool_release(p, a);
    wv_pool_release(p, b); /* b is the warmest */
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    CHECK_EQ(conn_id(c), bid);
    wv_pool_release(p, c);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_idle_connections_are_reused_newest_first, newest_first, 1)

/* ------------------------------------------------------------ waiters */

static int fifo(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 1);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *c;
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    char order[8] = {0};
    int n = 0;
    user u[4];
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 4; i++) {
        u[i] = (user){.p = p, .tag = (char)('1' + i), .order = order, .norder = &n};
        CHECK_EQ(wv_group_spawn(g, user_fiber, &u[i], NULL), 0);
    }
    CHECK_EQ(wv_yield(), 0); /* all four queue, in spawn order */
    CHECK_EQ(stats(p).waiting, 4);
    /* Released, then at once acquired again by a latecomer: the latecomer
     * must not take it ahead of the four who came first. */
    wv_pool_release(p, c);
    void *again;
    CHECK_EQ(wv_pool_acquire(p, &again), 0);
    order[n++] = 'M';
    CHECK_STR_EQ(order, "1234M");
    wv_pool_release(p, again);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(u[i].rc, 0);
    CHECK_EQ(stats(p).opened, 1);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_waiters_are_served_in_arrival_order, fifo, 1)

static int times_out(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 1);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *c, *c2 = NULL;
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    int64_t t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(60));
    CHECK_EQ(wv_pool_acquire(p, &c2), -ETIMEDOUT);
    wv_deadline_set(old);
    int64_t ms = ms_since(t0);
    CHECK(c2 == NULL);
    CHECK_BETWEEN(ms, 59, 2000);
    wv_pool_stats st = stats(p);
    CHECK_EQ(st.timeouts, 1);
    CHECK_EQ(st.waiting, 0);
    CHECK_EQ(st.opened, 1);
    wv_pool_release(p, c);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_acquire_times_out_at_deadline, times_out, 1)

static int timed_out_leaves_queue(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 1);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *c;
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    user a = {.p = p, .tag = 'A', .deadline_ms = 30};
    user b = {.p = p, .tag = 'B'};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, user_fiber, &a, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, user_fiber, &b, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(stats(p).waiting, 2);
    CHECK_EQ(wv_sleep_ms(80), 0); /* A gives up */
    CHECK(a.done);
    CHECK_EQ(a.rc, -ETIMEDOUT);
    CHECK_EQ(stats(p).waiting, 1);
    wv_pool_release(p, c);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(b.rc, 0);
    CHECK_EQ(b.id, 1);
    wv_pool_stats st = stats(p);
    CHECK_EQ(st.opened, 1);
    CHECK_EQ(st.timeouts, 1);
    CHECK_EQ(st.idle, 1);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_timed_out_waiter_leaves_the_queue, timed_out_leaves_queue, 1)

/* A is handed the connection after its deadline passed but before its
 * timer could run (this fiber never yields in between): A must return
 * -ETIMEDOUT and the connection must go on to B, not vanish. */
static int handed_then_timed_out(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 1);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *c;
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    user a = {.p = p, .tag = 'A', .deadline_ms = 30};
    user b = {.p = p, .tag = 'B'};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, user_fiber, &a, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, user_fiber, &b, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(stats(p).waiting, 2);
    int64_t until = wv_after_ms(45);
    while (wv_now() < until) {
        /* spin: A's deadline passes while A is still queued */
    }
    wv_pool_release(p, c);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(a.rc, -ETIMEDOUT);
    CHECK_EQ(b.rc, 0);
    CHECK_EQ(b.id, 1);
    wv_pool_stats st = stats(p);
    CHECK_EQ(st.opened, 1);
    CHECK_EQ(st.idle, 1);
    CHECK_EQ(st.in_use, 0);
    CHECK_EQ(st.timeouts, 1);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_waiter_timeout_does_not_lose_connection, handed_then_timed_out, 1)

static int handed_then_cancelled(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 1);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *c;
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    user a = {.p = p, .tag = 'A'};
    user b = {.p = p, .tag = 'B'};
    wv_group *ga = wv_group_new(), *gb = wv_group_new();
    REQUIRE(ga != NULL && gb != NULL);
    CHECK_EQ(wv_group_spawn(ga, user_fiber, &a, NULL), 0);
    CHECK_EQ(wv_group_spawn(gb, user_fiber, &b, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(stats(p).waiting, 2);
    wv_pool_release(p, c); /* handed to A ... */
    wv_group_cancel(ga);   /* ... who is cancelled before it runs */
    CHECK_EQ(wv_group_join(ga), 0);
    CHECK_EQ(wv_group_join(gb), 0);
    wv_group_free(ga);
    wv_group_free(gb);
    CHECK_EQ(a.rc, -ECANCELED);
    CHECK_EQ(b.rc, 0);
    CHECK_EQ(b.id, 1);
    CHECK_EQ(stats(p).opened, 1);
    CHECK_EQ(stats(p).idle, 1);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_cancelled_waiter_passes_connection_on, handed_then_cancelled, 1)

/* ------------------------------------------------------------ checks */

static int check_failure(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 2);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *a, *b;
    REQUIRE_EQ(wv_pool_acquire(p, &a), 0);
    ((fconn *)a)->bad = true; /* the server went away while it sat idle */
    wv_pool_release(p, a);
    REQUIRE_EQ(wv_pool_acquire(p, &b), 0);
    CHECK_EQ(conn_id(b), 2);
    CHECK_EQ(f.checks, 1);
    CHECK_EQ(f.closes, 1);
    CHECK_EQ(f.closed_ids[0], 1);
    wv_pool_stats st = stats(p);
    CHECK_EQ(st.failed_checks, 1);
    CHECK_EQ(st.opened, 2);
    CHECK_EQ(st.closed, 1);
    CHECK_EQ(st.reused, 0);
    CHECK_EQ(st.in_use, 1);
    CHECK_EQ(st.idle, 0);
    wv_pool_release(p, b);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_check_failure_closes_and_opens_new, check_failure, 1)

static int check_idle_ms(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 2);
    o.check_idle_ms = 40;
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *c;
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    wv_pool_release(p, c);
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0); /* idle for no time: not checked */
    CHECK_EQ(f.checks, 0);
    wv_pool_release(p, c);
    CHECK_EQ(wv_sleep_ms(60), 0);
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0); /* idle 60 ms >= 40: checked */
    CHECK_EQ(f.checks, 1);
    CHECK_EQ(conn_id(c), 1);
    wv_pool_release(p, c);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_checks_only_connections_idle_at_least_check_idle_ms, check_idle_ms, 1)

/* ------------------------------------------------------------ lifetimes */

static int lifetime_reuse(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 2);
    o.max_lifetime_ms = 60;
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *c;
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    wv_pool_release(p, c);
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0); /* young: reused */
    CHECK_EQ(conn_id(c), 1);
    wv_pool_release(p, c);
    CHECK_EQ(f.closes, 0);
    CHECK_EQ(wv_sleep_ms(80), 0);
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0); /* too old: closed, a new one */
    CHECK_EQ(conn_id(c), 2);
    CHECK_EQ(f.closes, 1);
    CHECK_EQ(f.closed_ids[0], 1);
    CHECK_EQ(stats(p).opened, 2);
    CHECK_EQ(stats(p).reused, 1);
    wv_pool_release(p, c);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_max_lifetime_closes_instead_of_reuse, lifetime_reuse, 1)

static int lifetime_release(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 2);
    o.max_lifetime_ms = 40;
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *c;
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    CHECK_EQ(wv_sleep_ms(60), 0);
    wv_pool_release(p, c); /* past its lifetime: closed, not kept */
    CHECK_EQ(f.closes, 1);
    wv_pool_stats st = stats(p);
    CHECK_EQ(st.idle, 0);
    CHECK_EQ(st.in_use, 0);
    CHECK_EQ(st.closed, 1);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_release_past_max_lifetime_closes_connection, lifetime_release, 1)

static int idle_timeout(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 4);
    o.idle_timeout_ms = 40;
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *a, *b, *c;
    REQUIRE_EQ(wv_pool_acquire(p, &a), 0);
    REQUIRE_EQ(wv_pool_acquire(p, &b), 0);
    wv_pool_release(p, a);
    wv_pool_release(p, b);
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0); /* idle briefly: reused */
    CHECK_EQ(conn_id(c), 2);
    wv_pool_release(p, c);
    CHECK_EQ(f.closes, 0);
    CHECK_EQ(wv_sleep_ms(70), 0);
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0); /* both idle too long: closed */
    CHECK_EQ(conn_id(c), 3);
    CHECK_EQ(f.closes, 2);
    wv_pool_stats st = stats(p);
    CHECK_EQ(st.idle, 0);
    CHECK_EQ(st.in_use, 1);
    CHECK_EQ(st.closed, 2);
    wv_pool_release(p, c);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_idle_timeout, idle_timeout, 1)

static int swept_on_release(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 4);
    o.idle_timeout_ms = 40;
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *a, *b;
    REQUIRE_EQ(wv_pool_acquire(p, &a), 0);
    REQUIRE_EQ(wv_pool_acquire(p, &b), 0);
    wv_pool_release(p, a);
    CHECK_EQ(wv_sleep_ms(70), 0);
    CHECK_EQ(f.closes, 0);
    wv_pool_release(p, b); /* a has been idle too long: swept now */
    CHECK_EQ(f.closes, 1);
    CHECK_EQ(f.closed_ids[0], 1);
    CHECK_EQ(stats(p).idle, 1);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_expired_idle_connections_are_swept_on_release, swept_on_release, 1)

static int max_idle(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 4);
    o.max_idle = 2;
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *c[4];
    for (int i = 0; i < 4; i++)
        REQUIRE_EQ(wv_pool_acquire(p, &c[i]), 0);
    for (int i = 0; i < 4; i++)
        wv_pool_release(p, c[i]);
    wv_pool_stats st = stats(p);
    CHECK_EQ(st.idle, 2);
    CHECK_EQ(st.closed, 2);
    CHECK_EQ(f.closes, 2);
    CHECK_EQ(f.closed_ids[0], 3); /* the extra ones released last */
    CHECK_EQ(f.closed_ids[1], 4);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_max_idle_closes_extra, max_idle, 1)

/* ------------------------------------------------------------ max_size */

typedef struct peak {
    wv_pool *p;
    fake *f;
    int peak_live;
} peak;

typedef struct peak_user {
    peak *k;
    int rc;
} peak_user;

static int hold_and_note(void *arg)
{
    peak_user *u = arg;
    peak *k = u->k;
    void *c;
    u->rc = wv_pool_acquire(k->p, &c);
    if (u->rc != 0)
        return 0;
    if (k->f->live > k->peak_live)
        k->peak_live = k->f->live;
    wv_sleep_ms(10);
    wv_pool_release(k->p, c);
    return 0;
}

static int max_size(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 3);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    peak k = {.p = p, .f = &f};
    peak_user u[10];
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 10; i++) {
        u[i] = (peak_user){.k = &k, .rc = 1};
        CHECK_EQ(wv_group_spawn(g, hold_and_note, &u[i], NULL), 0);
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(u[i].rc, 0);
    CHECK_EQ(k.peak_live, 3);
    CHECK_EQ(f.opens, 3);
    CHECK_EQ(stats(p).reused, 7);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_max_size_bounds_open_connections, max_size, 1)

static int opening_counts(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    f.open_delay_ms = 40;
    wv_pool_opts o = fake_opts(&f, 1);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    user a = {.p = p, .tag = 'A'}, b = {.p = p, .tag = 'B'};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, user_fiber, &a, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, user_fiber, &b, NULL), 0);
    CHECK_EQ(wv_sleep_ms(10), 0); /* A is opening, B must wait */
    wv_pool_stats st = stats(p);
    CHECK_EQ(st.opening, 1);
    CHECK_EQ(st.waiting, 1);
    CHECK_EQ(f.opens, 1);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(a.rc, 0);
    CHECK_EQ(b.rc, 0);
    CHECK_EQ(b.id, a.id);
    CHECK_EQ(f.opens, 1);
    CHECK_EQ(stats(p).opening, 0);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_opening_counts_toward_max_size, opening_counts, 1)

/* ------------------------------------------------------------ open errors */

static int open_error(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    f.fail_opens = 1;
    f.fail_err = -ECONNREFUSED;
    wv_pool_opts o = fake_opts(&f, 1);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *c = NULL;
    CHECK_EQ(wv_pool_acquire(p, &c), -ECONNREFUSED);
    CHECK(c == NULL);
    CHECK_STR_EQ(wv_errmsg(), "fake: open 1 refused");
    wv_pool_stats st = stats(p);
    CHECK_EQ(st.open_errors, 1);
    CHECK_EQ(st.opening, 0);
    CHECK_EQ(st.opened, 0);
    /* its place was given back: the next acquire opens */
    CHECK_EQ(wv_pool_acquire(p, &c), 0);
    CHECK_EQ(conn_id(c), 1);
    wv_pool_release(p, c);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_open_error_returned_to_caller, open_error, 1)

static int open_error_next_waiter(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    f.open_delay_ms = 30;
    f.fail_opens = 1;
    f.fail_err = -ECONNREFUSED;
    wv_pool_opts o = fake_opts(&f, 1);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    user a = {.p = p, .tag = 'A'}, b = {.p = p, .tag = 'B'};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, user_fiber, &a, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, user_fiber, &b, NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(a.rc, -ECONNREFUSED); /* A's open failed: A hears of it */
    CHECK_EQ(b.rc, 0);             /* B, waiting, got the place and opened */
    CHECK_EQ(b.id, 1);
    CHECK_EQ(f.opens, 2);
    wv_pool_stats st = stats(p);
    CHECK_EQ(st.open_errors, 1);
    CHECK_EQ(st.opened, 1);
    CHECK_EQ(st.waiting, 0);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_open_failure_hands_the_place_to_the_next_waiter, open_error_next_waiter, 1)

static int open_error_fallback(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 2);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *c;
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    f.open_delay_ms = 40;
    f.fail_opens = 1;
    f.fail_err = -ECONNREFUSED;
    user b = {.p = p, .tag = 'B'};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, user_fiber, &b, NULL), 0);
    CHECK_EQ(wv_sleep_ms(10), 0); /* B is opening */
    wv_pool_release(p, c);        /* ... and this one comes back meanwhile */
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(b.rc, 0);
    CHECK_EQ(b.id, 1);
    CHECK_EQ(stats(p).open_errors, 1);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_open_failure_takes_connection_released_meanwhile, open_error_fallback, 1)

/* ------------------------------------------------------------ discard */

static int discard(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 1);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *c;
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    user w = {.p = p, .tag = 'W'};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, user_fiber, &w, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(stats(p).waiting, 1);
    wv_pool_discard(p, c); /* closed; the waiter opens a new one */
    CHECK_EQ(f.closes, 1);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(w.rc, 0);
    CHECK_EQ(w.id, 2);
    wv_pool_stats st = stats(p);
    CHECK_EQ(st.opened, 2);
    CHECK_EQ(st.closed, 1);
    CHECK_EQ(st.idle, 1);
    CHECK_EQ(st.reused, 0);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_discard_frees_slot_for_new_open, discard, 1)

static int unknown_pointer(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 2);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *c;
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    wv_pool_release(p, c);
    wv_log_level old = wv_log_level_get();
    wv_log_level_set(WV_LOG_ERROR); /* the warnings are expected */
    fconn stranger = {.id = 99};
    wv_pool_release(p, &stranger);
    wv_pool_discard(p, &stranger);
    wv_pool_release(p, c); /* twice: it is idle now */
    wv_pool_discard(p, c);
    wv_pool_release(p, NULL);
    wv_log_level_set(old);
    wv_pool_stats st = stats(p);
    CHECK_EQ(st.idle, 1);
    CHECK_EQ(st.in_use, 0);
    CHECK_EQ(st.closed, 0);
    CHECK_EQ(f.closes, 0);
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    CHECK_EQ(conn_id(c), 1);
    wv_pool_release(p, c);
    wv_pool_free(p);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_release_of_unknown_connection_is_ignored, unknown_pointer, 1)

/* ------------------------------------------------------------ free */

static int free_waiters(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 1);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *c;
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    user a = {.p = p, .tag = 'A'}, b = {.p = p, .tag = 'B'};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, user_fiber, &a, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, user_fiber, &b, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(stats(p).waiting, 2);
    wv_pool_free(p); /* c is still out: the pool lives until it is back */
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(a.rc, -ESHUTDOWN);
    CHECK_EQ(b.rc, -ESHUTDOWN);
    void *d = NULL;
    CHECK_EQ(wv_pool_acquire(p, &d), -ESHUTDOWN);
    CHECK_EQ(f.closes, 0);
    wv_pool_release(p, c); /* closed, and the pool freed */
    CHECK_EQ(f.closes, 1);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_free_fails_waiters_with_eshutdown, free_waiters, 1)

static int free_closes(void *arg)
{
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 3);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    void *a, *b, *c;
    REQUIRE_EQ(wv_pool_acquire(p, &a), 0);
    REQUIRE_EQ(wv_pool_acquire(p, &b), 0);
    REQUIRE_EQ(wv_pool_acquire(p, &c), 0);
    wv_pool_release(p, a);
    wv_pool_release(p, b);
    wv_pool_free(p); /* the idle ones now */
    CHECK_EQ(f.closes, 2);
    CHECK_EQ(f.live, 1);
    wv_pool_discard(p, c); /* the last one out: closed, the pool freed */
    CHECK_EQ(f.closes, 3);
    CHECK_EQ(f.live, 0);
    return 0;
}
RT_TEST(test_pool_free_closes_idle_at_once_and_in_use_on_return, free_closes, 1)

/* ------------------------------------------------------------ shards */

typedef struct remote {
    wv_pool *p;
    int rc;
    void *conn;
} remote;

static int acquire_remote(void *arg)
{
    remote *r = arg;
    r->rc = wv_pool_acquire(r->p, &r->conn);
    return 0;
}

static int other_shard(void *arg)
{
    REQUIRE(wv_shard_count() >= 2);
    fake f;
    memset(&f, 0, sizeof f);
    wv_pool_opts o = fake_opts(&f, 1);
    wv_pool *p;
    REQUIRE_EQ(wv_pool_new(&o, &p), 0);
    remote r = {.p = p, .rc = 1, .conn = &r};
    CHECK_EQ(wv_shard_call(1, acquire_remote, &r), 0);
    CHECK_EQ(r.rc, -EXDEV);
    CHECK(r.conn == NULL);
    CHECK_EQ(f.opens, 0);
    wv_pool_free(p);
    return 0;
}
RT_TEST(test_pool_acquire_from_other_shard_is_exdev, other_shard, 2)

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_new_outside_runtime_is_eperm),
        cmocka_unit_test(test_pool_new_requires_open_and_close),
        cmocka_unit_test(test_pool_reuses_released_connection),
        cmocka_unit_test(test_pool_idle_connections_are_reused_newest_first),
        cmocka_unit_test(test_pool_waiters_are_served_in_arrival_order),
        cmocka_unit_test(test_pool_acquire_times_out_at_deadline),
        cmocka_unit_test(test_pool_timed_out_waiter_leaves_the_queue),
        cmocka_unit_test(test_pool_waiter_timeout_does_not_lose_connection),
        cmocka_unit_test(test_pool_cancelled_waiter_passes_connection_on),
        cmocka_unit_test(test_pool_check_failure_closes_and_opens_new),
        cmocka_unit_test(test_pool_checks_only_connections_idle_at_least_check_idle_ms),
        cmocka_unit_test(test_pool_max_lifetime_closes_instead_of_reuse),
        cmocka_unit_test(test_pool_release_past_max_lifetime_closes_connection),
        cmocka_unit_test(test_pool_idle_timeout),
        cmocka_unit_test(test_pool_expired_idle_connections_are_swept_on_release),
        cmocka_unit_test(test_pool_max_idle_closes_extra),
        cmocka_unit_test(test_pool_max_size_bounds_open_connections),
        cmocka_unit_test(test_pool_opening_counts_toward_max_size),
        cmocka_unit_test(test_pool_open_error_returned_to_caller),
        cmocka_unit_test(test_pool_open_failure_hands_the_place_to_the_next_waiter),
        cmocka_unit_test(test_pool_open_failure_takes_connection_released_meanwhile),
        cmocka_unit_test(test_pool_discard_frees_slot_for_new_open),
        cmocka_unit_test(test_pool_release_of_unknown_connection_is_ignored),
        cmocka_unit_test(test_pool_free_fails_waiters_with_eshutdown),
        cmocka_unit_test(test_pool_free_closes_idle_at_once_and_in_use_on_return),
        cmocka_unit_test(test_pool_acquire_from_other_shard_is_exdev),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
