/*
 * Callback timers (wv_timer): they fire in deadline order (two timers due
 * within the same 1.024 us tick may fire in either order), never before
 * their deadline, exactly once; stop prevents firing, re-arming moves a
 * timer, the pending flag follows its state, and a callback may arm or stop
 * timers and wake fibers.
 */
#include "harness.h"

#include <stddef.h>

/* Two timers whose deadlines are this close may fire in either order. */
#define TICK_NS 1024

typedef struct probe {
    wv_timer t; /* first member: the callback casts back to the probe */
    int64_t at;
    int index;
    int fired;
    int64_t fired_at;
    int shard;
} probe;

typedef struct fire_log {
    int *order;
    int n;
    int early;
} fire_log;

static fire_log flog;

static probe *probe_of(wv_timer *t)
{
    return (probe *)((char *)t - offsetof(probe, t));
}

static void record_fire(wv_timer *t)
{
    probe *p = probe_of(t);
    p->fired++;
    p->fired_at = wv_now();
    p->shard = wv_shard_id();
    if (p->fired_at < p->at)
        flog.early++;
    if (flog.order != NULL)
        flog.order[flog.n] = p->index;
    flog.n++;
}

static void log_reset(int *order)
{
    flog.order = order;
    flog.n = 0;
    flog.early = 0;
}

/* Sleep in small steps until `n` callbacks have run (at most 5 s). */
static void wait_for_fires(int n)
{
    int64_t end = wv_after_ms(5000);
    while (flog.n < n && wv_now() < end)
        if (wv_sleep_ms(2) != 0)
            break;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint64_t rng_next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* ------------------------------------------------------------ order */

static int fire_in_order(void *arg)
{
    enum { N = 10000 };
    probe *p = calloc(N, sizeof(*p));
    int *order = calloc(N, sizeof(*order));
    REQUIRE(p != NULL && order != NULL);
    log_reset(order);
    int64_t base = wv_now();
    for (int i = 0; i < N; i++) {
        p[i].index = i;
        p[i].at = base + (int64_t)(rng_next() % (20 * NS_PER_MS));
        CHECK_EQ(wv_timer_start(&p[i].t, p[i].at, record_fire), 0);
    }
    wait_for_fires(N);
    CHECK_EQ(flog.n, N);
    CHECK_EQ(flog.early, 0);
    for (int i = 0; i < N; i++)
        if (!CHECK_EQ(p[i].fired, 1))
            break;
    for (int i = 1; i < flog.n && i < N; i++) {
        int64_t prev = p[order[i - 1]].at, cur = p[order[i]].at;
        if (!CHECK(cur > prev - TICK_NS)) {
            fprintf(stderr, "fire #%d: at %+" PRId64 " ns after fire #%d\n", i, cur - prev, i - 1);
            break;
        }
    }
    log_reset(NULL);
    free(order);
    free(p);
    return 0;
}

static void test_10k_random_timers_fire_once_each_in_deadline_order(void **state)
{
    assert_int_equal(run_in_rt(1, fire_in_order, NULL), 0);
    assert_checks_passed();
}

static int hundred_k_pending(void *arg)
{
    enum { N = 100000 };
    probe *p = calloc(N, sizeof(*p));
    REQUIRE(p != NULL);
    log_reset(NULL);
    int64_t base = wv_now();
    for (int i = 0; i < N; i++) {
        p[i].at = base + 10 * NS_PER_MS + (int64_t)(rng_next() % (40 * NS_PER_MS));
        CHECK_EQ(wv_timer_start(&p[i].t, p[i].at, record_fire), 0);
    }
    /* Stop a tenth of them while all are pending. */
    for (int i = 0; i < N; i += 10)
        wv_timer_stop(&p[i].t);
    wait_for_fires(N - N / 10);
    CHECK_EQ(wv_sleep_ms(5), 0);
    CHECK_EQ(flog.n, N - N / 10);
    CHECK_EQ(flog.early, 0);
    for (int i = 0; i < N; i++)
        if (!CHECK_EQ(p[i].fired, i % 10 == 0 ? 0 : 1))
            break;
    free(p);
    return 0;
}

static void test_100k_pending_timers_all_fire_and_stopped_ones_do_not(void **state)
{
    int64_t t0 = wv_now();
    assert_int_equal(run_in_rt(1, hundred_k_pending, NULL), 0);
    assert_checks_passed();
    assert_true(ms_since(t0) < 10000);
}

static int equal_deadlines(void *arg)
{
    enum { N = 1000 };
    probe *p = calloc(N, sizeof(*p));
    REQUIRE(p != NULL);
    log_reset(NULL);
    int64_t at = wv_after_ms(5);
    for (int i = 0; i < N; i++) {
        p[i].at = at;
        CHECK_EQ(wv_timer_start(&p[i].t, at, record_fire), 0);
    }
    wait_for_fires(N);
    CHECK_EQ(flog.n, N);
    CHECK_EQ(flog.early, 0);
    for (int i = 0; i < N; i++)
        if (!CHECK_EQ(p[i].fired, 1))
            break;
    free(p);
    return 0;
}

static void test_timers_with_equal_deadlines_all_fire(void **state)
{
    assert_int_equal(run_in_rt(1, equal_deadlines, NULL), 0);
    assert_checks_passed();
}

static int never_early(void *arg)
{
    probe p[3];
    memset(p, 0, sizeof(p));
    log_reset(NULL);
    int64_t now = wv_now();
    p[0].at = now + 3 * NS_PER_MS;
    p[1].at = now + 7 * NS_PER_MS + 12345;
    p[2].at = now - 5 * NS_PER_MS; /* already due: fires on the next loop turn */
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wv_timer_start(&p[i].t, p[i].at, record_fire), 0);
    CHECK_EQ(p[2].fired, 0); /* not from inside wv_timer_start */
    wait_for_fires(3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(p[i].fired, 1);
        CHECK(p[i].fired_at >= p[i].at);
        CHECK(p[i].fired_at - p[i].at < 2000 * NS_PER_MS);
    }
    return 0;
}

static void test_timer_never_fires_before_its_deadline(void **state)
{
    assert_int_equal(run_in_rt(1, never_early, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ stop, re-arm, pending */

static int stop_prevents(void *arg)
{
    probe p;
    memset(&p, 0, sizeof(p));
    log_reset(NULL);
    CHECK_EQ(wv_timer_start(&p.t, wv_after_ms(5), record_fire), 0);
    CHECK(wv_timer_pending(&p.t));
    wv_timer_stop(&p.t);
    CHECK(!wv_timer_pending(&p.t));
    CHECK_EQ(wv_sleep_ms(30), 0);
    CHECK_EQ(p.fired, 0);
    wv_timer_stop(&p.t); /* again: harmless */
    probe never_started;
    memset(&never_started, 0, sizeof(never_started));
    wv_timer_stop(&never_started.t);
    CHECK(!wv_timer_pending(&never_started.t));
    return 0;
}

static void test_stopped_timer_does_not_fire(void **state)
{
    assert_int_equal(run_in_rt(1, stop_prevents, NULL), 0);
    assert_checks_passed();
}

static int stop_some(void *arg)
{
    enum { N = 200 };
    probe *p = calloc(N, sizeof(*p));
    REQUIRE(p != NULL);
    log_reset(NULL);
    int64_t base = wv_now();
    for (int i = 0; i < N; i++) {
        p[i].at = base + (int64_t)(rng_next() % (10 * NS_PER_MS));
        CHECK_EQ(wv_timer_start(&p[i].t, p[i].at, record_fire), 0);
    }
    for (int i = 1; i < N; i += 2)
        wv_timer_stop(&p[i].t);
    wait_for_fires(N / 2);
    CHECK_EQ(wv_sleep_ms(15), 0);
    CHECK_EQ(flog.n, N / 2);
    for (int i = 0; i < N; i++)
        if (!CHECK_EQ(p[i].fired, i % 2 == 0 ? 1 : 0))
            break;
    free(p);
    return 0;
}

static void test_stopping_some_timers_leaves_the_others_to_fire(void **state)
{
    assert_int_equal(run_in_rt(1, stop_some, NULL), 0);
    assert_checks_passed();
}

static int rearm_earlier(void *arg)
{
    probe p;
    memset(&p, 0, sizeof(p));
    log_reset(NULL);
    CHECK_EQ(wv_timer_start(&p.t, wv_after_ms(10000), record_fire), 0);
    p.at = wv_after_ms(5);
    CHECK_EQ(wv_timer_start(&p.t, p.at, record_fire), 0);
    CHECK(wv_timer_pending(&p.t));
    wait_for_fires(1);
    CHECK_EQ(wv_sleep_ms(20), 0);
    CHECK_EQ(p.fired, 1); /* once, at the new time */
    CHECK(p.fired_at >= p.at);
    CHECK(p.fired_at - p.at < 2000 * NS_PER_MS);
    CHECK(!wv_timer_pending(&p.t));
    return 0;
}

static void test_rearming_a_pending_timer_moves_it_earlier(void **state)
{
    assert_int_equal(run_in_rt(1, rearm_earlier, NULL), 0);
    assert_checks_passed();
}

static int rearm_later(void *arg)
{
    probe p, due;
    memset(&p, 0, sizeof(p));
    memset(&due, 0, sizeof(due));
    log_reset(NULL);
    CHECK_EQ(wv_timer_start(&p.t, wv_after_ms(5), record_fire), 0);
    p.at = wv_after_ms(60);
    CHECK_EQ(wv_timer_start(&p.t, p.at, record_fire), 0);
    /* One that was already due when it was moved. */
    CHECK_EQ(wv_timer_start(&due.t, wv_now() - 1, record_fire), 0);
    due.at = wv_after_ms(50);
    CHECK_EQ(wv_timer_start(&due.t, due.at, record_fire), 0);
    CHECK_EQ(wv_sleep_ms(30), 0);
    CHECK_EQ(p.fired, 0); /* not at the old time */
    CHECK_EQ(due.fired, 0);
    CHECK(wv_timer_pending(&p.t));
    CHECK(wv_timer_pending(&due.t));
    wait_for_fires(2);
    CHECK_EQ(wv_sleep_ms(5), 0);
    CHECK_EQ(p.fired, 1);
    CHECK_EQ(due.fired, 1);
    CHECK(p.fired_at >= p.at);
    CHECK(due.fired_at >= due.at);
    return 0;
}

static void test_rearming_a_pending_timer_moves_it_later(void **state)
{
    assert_int_equal(run_in_rt(1, rearm_later, NULL), 0);
    assert_checks_passed();
}

static int pending_flag(void *arg)
{
    probe p;
    memset(&p, 0, sizeof(p));
    log_reset(NULL);
    CHECK(!wv_timer_pending(&p.t));
    CHECK_EQ(wv_timer_start(&p.t, wv_after_ms(3), record_fire), 0);
    CHECK(wv_timer_pending(&p.t));
    wait_for_fires(1);
    CHECK_EQ(p.fired, 1);
    CHECK(!wv_timer_pending(&p.t));
    return 0;
}

static void test_timer_is_pending_from_start_until_it_fires(void **state)
{
    assert_int_equal(run_in_rt(1, pending_flag, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ callbacks */

typedef struct periodic {
    wv_timer t;
    int count;
} periodic;

static void rearm_until_three(wv_timer *t)
{
    periodic *p = (periodic *)t;
    p->count++;
    flog.n++;
    if (p->count < 3)
        wv_timer_start(t, wv_now() + 2 * NS_PER_MS, rearm_until_three);
}

static int callback_rearms(void *arg)
{
    periodic p;
    memset(&p, 0, sizeof(p));
    log_reset(NULL);
    CHECK_EQ(wv_timer_start(&p.t, wv_after_ms(2), rearm_until_three), 0);
    wait_for_fires(3);
    CHECK_EQ(wv_sleep_ms(10), 0);
    CHECK_EQ(p.count, 3);
    CHECK(!wv_timer_pending(&p.t));
    return 0;
}

static void test_callback_can_rearm_its_own_timer(void **state)
{
    assert_int_equal(run_in_rt(1, callback_rearms, NULL), 0);
    assert_checks_passed();
}

typedef struct pair {
    wv_timer first;
    probe second;
} pair;

static void stop_the_second(wv_timer *t)
{
    pair *p = (pair *)t;
    wv_timer_stop(&p->second.t);
    flog.n++;
}

static int callback_stops_other(void *arg)
{
    pair p;
    memset(&p, 0, sizeof(p));
    log_reset(NULL);
    int64_t at = wv_after_ms(3);
    CHECK_EQ(wv_timer_start(&p.first, at, stop_the_second), 0);
    CHECK_EQ(wv_timer_start(&p.second.t, at + 5 * TICK_NS, record_fire), 0);
    CHECK_EQ(wv_sleep_ms(30), 0);
    CHECK_EQ(flog.n, 1);
    CHECK_EQ(p.second.fired, 0);
    CHECK(!wv_timer_pending(&p.second.t));
    return 0;
}

static void test_callback_can_stop_a_timer_due_right_after_it(void **state)
{
    assert_int_equal(run_in_rt(1, callback_stops_other, NULL), 0);
    assert_checks_passed();
}

typedef struct waker {
    wv_timer t;
    wv_event e;
} waker;

static void set_event(wv_timer *t)
{
    wv_event_set(&((waker *)t)->e);
}

static int callback_wakes_fiber(void *arg)
{
    waker w;
    memset(&w, 0, sizeof(w));
    int64_t at = wv_after_ms(5);
    CHECK_EQ(wv_timer_start(&w.t, at, set_event), 0);
    int64_t old = wv_deadline_set(wv_after_ms(5000));
    CHECK_EQ(wv_event_wait(&w.e), 0);
    wv_deadline_set(old);
    CHECK(wv_now() >= at);
    return 0;
}

static void test_callback_can_wake_a_fiber_through_an_event(void **state)
{
    assert_int_equal(run_in_rt(1, callback_wakes_fiber, NULL), 0);
    assert_checks_passed();
}

static probe remote_probe;

static int start_here_and_wait(void *arg)
{
    memset(&remote_probe, 0, sizeof(remote_probe));
    remote_probe.shard = -2;
    remote_probe.at = wv_after_ms(3);
    int r = wv_timer_start(&remote_probe.t, remote_probe.at, record_fire);
    if (r != 0)
        return r;
    int64_t end = wv_after_ms(5000);
    while (remote_probe.fired == 0 && wv_now() < end)
        if (wv_sleep_ms(1) != 0)
            break;
    return remote_probe.fired;
}

static int timer_on_shard_1(void *arg)
{
    log_reset(NULL);
    CHECK_EQ(wv_shard_call(1, start_here_and_wait, NULL), 1);
    CHECK_EQ(remote_probe.shard, 1);
    return 0;
}

static void test_callback_runs_on_the_shard_that_armed_the_timer(void **state)
{
    assert_int_equal(run_in_rt(2, timer_on_shard_1, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_10k_random_timers_fire_once_each_in_deadline_order),
        cmocka_unit_test(test_100k_pending_timers_all_fire_and_stopped_ones_do_not),
        cmocka_unit_test(test_timers_with_equal_deadlines_all_fire),
        cmocka_unit_test(test_timer_never_fires_before_its_deadline),
        cmocka_unit_test(test_stopped_timer_does_not_fire),
        cmocka_unit_test(test_stopping_some_timers_leaves_the_others_to_fire),
        cmocka_unit_test(test_rearming_a_pending_timer_moves_it_earlier),
        cmocka_unit_test(test_rearming_a_pending_timer_moves_it_later),
        cmocka_unit_test(test_timer_is_pending_from_start_until_it_fires),
        cmocka_unit_test(test_callback_can_rearm_its_own_timer),
        cmocka_unit_test(test_callback_can_stop_a_timer_due_right_after_it),
        cmocka_unit_test(test_callback_can_wake_a_fiber_through_an_event),
        cmocka_unit_test(test_callback_runs_on_the_shard_that_armed_the_timer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
