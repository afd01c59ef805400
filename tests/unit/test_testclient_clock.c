/*
 * The virtual clock (wv_main_opts.virtual_clock): a runtime whose fibers
 * wait only on timers jumps to the next one, so sleeps cost no real time
 * while wv_now() shows them whole; it never jumps while a fiber waits on
 * a file descriptor or an offload job (unless the threshold says so), nor
 * while another shard is busy or has mail; the order of timers and
 * deadlines is kept; and without the option nothing jumps.
 */
#include <time.h>

#include "harness.h"

/* Real time, whatever the virtual clock did. */
static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int run_virtual(int shards, int64_t threshold_ms, wv_fn *fn, void *arg)
{
    wv_main_opts o = {.shards = shards,
                      .no_signal_handling = true,
                      .virtual_clock = true,
                      .virtual_clock_threshold_ms = threshold_ms};
    return run_in_rt_opts(&o, fn, arg);
}

/* ------------------------------------------------------------ sleeping */

static int sleep_one_second(void *arg)
{
    int64_t r0 = real_ns(), v0 = wv_now();
    CHECK_EQ(wv_sleep_ms(1000), 0);
    int64_t real = real_ns() - r0, virt = wv_now() - v0;
    CHECK_BETWEEN(virt, 1000 * NS_PER_MS, 1020 * NS_PER_MS);
    CHECK(real < 50 * NS_PER_MS);
    /* an hour, just as cheaply */
    v0 = wv_now();
    CHECK_EQ(wv_sleep_ms(3600 * 1000), 0);
    CHECK_BETWEEN(wv_now() - v0, 3600000 * NS_PER_MS, 3600020 * NS_PER_MS);
    CHECK(real_ns() - r0 < 100 * NS_PER_MS);
    return 0;
}

static void test_sleep_jumps_and_shows_the_whole_second(void **state)
{
    assert_int_equal(run_virtual(1, 0, sleep_one_second, NULL), 0);
    assert_checks_passed();
}

static int sleep_real(void *arg)
{
    int64_t r0 = real_ns();
    CHECK_EQ(wv_sleep_ms(60), 0);
    CHECK(real_ns() - r0 >= 60 * NS_PER_MS);
    return 0;
}

static void test_without_the_option_time_is_real(void **state)
{
    assert_int_equal(run_in_rt(1, sleep_real, NULL), 0);
    assert_checks_passed();
}

static void test_bad_threshold_is_refused(void **state)
{
    wv_main_opts o = {.shards = 1, .virtual_clock = true, .virtual_clock_threshold_ms = -1};
    assert_int_equal(wv_main(&o, sleep_real, NULL), -EINVAL);
}

/* ------------------------------------------------------------ ordering */

typedef struct order {
    int seq[8];
    int n;
    int64_t at[8];
    int64_t t0;
} order;

typedef struct sleeper {
    order *o;
    int id;
    int64_t ms;
} sleeper;

static int sleep_and_note(void *arg)
{
    sleeper *s = arg;
    int rc = wv_sleep_ms(s->ms);
    if (rc < 0) { /* the 700 ms one: the join gave up first */
        CHECK_EQ(rc, -ECANCELED);
        CHECK_EQ(s->ms, 700);
        return 0;
    }
    s->o->at[s->o->n] = wv_now() - s->o->t0;
    s->o->seq[s->o->n++] = s->id;
    return 0;
}

static int timers_keep_their_order(void *arg)
{
    order o = {.t0 = wv_now()};
    sleeper s[4] = {{&o, 0, 700}, {&o, 1, 100}, {&o, 2, 300}, {&o, 3, 301}};
    wv_group *g = wv_group_new();
    for (int i = 0; i < 4; i++)
        wv_group_spawn(g, sleep_and_note, &s[i], NULL);
    /* a deadline between them: the join gives up at 500 ms, after three */
    int64_t old = wv_deadline_set(wv_after_ms(500));
    int rc = wv_group_join(g);
    int64_t gave_up = wv_now() - o.t0;
    wv_deadline_set(old);
    wv_group_free(g);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_BETWEEN(gave_up, 500 * NS_PER_MS, 520 * NS_PER_MS);
    CHECK_EQ(o.n, 3);
    CHECK_EQ(o.seq[0], 1);
    CHECK_EQ(o.seq[1], 2);
    CHECK_EQ(o.seq[2], 3);
    CHECK_BETWEEN(o.at[0], 100 * NS_PER_MS, 120 * NS_PER_MS);
    CHECK_BETWEEN(o.at[1], 300 * NS_PER_MS, 320 * NS_PER_MS);
    CHECK_BETWEEN(o.at[2], 301 * NS_PER_MS, 321 * NS_PER_MS);
    return 0;
}

static void test_timers_and_deadlines_keep_their_order(void **state)
{
    assert_int_equal(run_virtual(1, 0, timers_keep_their_order, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------- waits outside the shard */

static int read_silent(void *arg)
{
    int fd = *(int *)arg;
    char b;
    wv_read(fd, &b, 1); /* until cancelled */
    return 0;
}

/* A fiber waits on a socket: a sleep takes its real time (the socket could
 * answer meanwhile); with a threshold, the clock jumps once the runtime has
 * been idle that long. */
static int fd_wait_blocks_jumps(void *arg)
{
    int64_t threshold = *(int64_t *)arg;
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    wv_group *g = wv_group_new();
    wv_group_spawn(g, read_silent, &sv[0], NULL);
    wv_yield(); /* let it wait */
    int64_t r0 = real_ns(), v0 = wv_now();
    CHECK_EQ(wv_sleep_ms(300), 0);
    int64_t real = real_ns() - r0;
    CHECK(wv_now() - v0 >= 300 * NS_PER_MS);
    if (threshold == 0) {
        CHECK(real >= 300 * NS_PER_MS);
    } else {
        CHECK(real >= threshold * NS_PER_MS);
        CHECK(real < 200 * NS_PER_MS);
    }
    wv_group_free(g); /* cancels the reader */
    /* nobody waits on it now: jumps again */
    r0 = real_ns();
    CHECK_EQ(wv_sleep_ms(300), 0);
    CHECK(real_ns() - r0 < 50 * NS_PER_MS);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_a_fiber_waiting_on_a_socket_keeps_real_time(void **state)
{
    int64_t threshold = 0;
    assert_int_equal(run_virtual(1, 0, fd_wait_blocks_jumps, &threshold), 0);
    assert_checks_passed();
}

static void test_the_threshold_jumps_over_a_socket_wait(void **state)
{
    int64_t threshold = 20;
    assert_int_equal(run_virtual(1, threshold, fd_wait_blocks_jumps, &threshold), 0);
    assert_checks_passed();
}

static int slow_job(void *arg)
{
    struct timespec ts = {0, 80 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return 7;
}

/* An offload job takes 80 ms of real time while its fiber has a 1 s
 * deadline: without counting the job as a wait, the clock would jump to
 * the deadline and the job would "time out". */
static int offload_not_jumped_over(void *arg)
{
    int64_t old = wv_deadline_set(wv_after_ms(1000));
    int64_t v0 = wv_now();
    CHECK_EQ(wv_offload(slow_job, NULL), 7);
    CHECK(wv_now() - v0 < 1000 * NS_PER_MS);
    wv_deadline_set(old);
    return 0;
}

static void test_an_offload_job_is_not_jumped_over(void **state)
{
    assert_int_equal(run_virtual(1, 0, offload_not_jumped_over, NULL), 0);
    assert_checks_passed();
}

static int lane_not_jumped_over(void *arg)
{
    wv_lane *l;
    REQUIRE_EQ(wv_lane_new(NULL, &l), 0);
    int64_t old = wv_deadline_set(wv_after_ms(1000));
    CHECK_EQ(wv_lane_run(l, slow_job, NULL), 7);
    wv_deadline_set(old);
    wv_lane_free(l);
    return 0;
}

static void test_a_lane_job_is_not_jumped_over(void **state)
{
    assert_int_equal(run_virtual(1, 0, lane_not_jumped_over, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ shards */

typedef struct remote_sleep {
    int64_t ms;
    int64_t woke; /* wv_now() when it woke */
} remote_sleep;

static int sleep_remote(void *arg)
{
    remote_sleep *s = arg;
    int rc = wv_sleep_ms(s->ms);
    s->woke = wv_now();
    return rc;
}

static int call_sleep(void *arg)
{
    remote_sleep *s = arg;
    return wv_shard_call(1, sleep_remote, s);
}

/* Shard 1 sleeps 100 ms (asked by shard 0), shard 0 sleeps 500 ms itself:
 * the clock jumps only when both are quiet, to the earlier timer first. */
static int two_shards(void *arg)
{
    int64_t r0 = real_ns(), v0 = wv_now();
    remote_sleep s = {.ms = 100};
    wv_group *g = wv_group_new();
    wv_group_spawn(g, call_sleep, &s, NULL);
    CHECK_EQ(wv_sleep_ms(500), 0);
    int64_t mine = wv_now();
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_BETWEEN(s.woke - v0, 100 * NS_PER_MS, 120 * NS_PER_MS);
    CHECK_BETWEEN(mine - v0, 500 * NS_PER_MS, 520 * NS_PER_MS);
    /* the other way round: the remote sleep is the longer one */
    s = (remote_sleep){.ms = 2000};
    v0 = wv_now();
    CHECK_EQ(wv_shard_call(1, sleep_remote, &s), 0);
    CHECK_BETWEEN(s.woke - v0, 2000 * NS_PER_MS, 2020 * NS_PER_MS);
    CHECK(real_ns() - r0 < 100 * NS_PER_MS);
    return 0;
}

static void test_shards_jump_together(void **state)
{
    assert_int_equal(run_virtual(2, 0, two_shards, NULL), 0);
    assert_checks_passed();
}

/* A shard that waits on a socket holds every shard's clock. */
static int hold_remote(void *arg)
{
    int *sv = arg;
    char b;
    return wv_read(sv[0], &b, 1) == 1 ? 0 : -1;
}

static int post_hold(void *arg)
{
    return wv_shard_call(1, hold_remote, arg);
}

static int other_shard_fd_blocks(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    wv_group *g = wv_group_new();
    wv_group_spawn(g, post_hold, sv, NULL);
    CHECK_EQ(wv_sleep_ms(20), 0); /* lets it start waiting: real time from then */
    int64_t r0 = real_ns();
    CHECK_EQ(wv_sleep_ms(150), 0);
    CHECK(real_ns() - r0 >= 150 * NS_PER_MS);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    close(sv[0]);
    close(sv[1]);
    return 0;
}

static void test_a_socket_wait_on_another_shard_keeps_real_time(void **state)
{
    assert_int_equal(run_virtual(2, 0, other_shard_fd_blocks, NULL), 0);
    assert_checks_passed();
}

/* wv_now() never goes back, also after the runtime and in one without
 * the virtual clock: the jumps stay. */
static int note_now_after_sleep(void *arg)
{
    *(int64_t *)arg = wv_now();
    return wv_sleep_ms(10000);
}

static int note_now(void *arg)
{
    *(int64_t *)arg = wv_now();
    return 0;
}

static void test_the_clock_stays_monotonic_after_the_runtime(void **state)
{
    int64_t inside = 0;
    assert_int_equal(run_virtual(1, 0, note_now_after_sleep, &inside), 0);
    int64_t after = wv_now();
    assert_true(after - inside >= 10000 * NS_PER_MS);
    int64_t again = 0;
    assert_int_equal(run_in_rt(1, note_now, &again), 0);
    assert_true(again >= after);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sleep_jumps_and_shows_the_whole_second),
        cmocka_unit_test(test_without_the_option_time_is_real),
        cmocka_unit_test(test_bad_threshold_is_refused),
        cmocka_unit_test(test_timers_and_deadlines_keep_their_order),
        cmocka_unit_test(test_a_fiber_waiting_on_a_socket_keeps_real_time),
        cmocka_unit_test(test_the_threshold_jumps_over_a_socket_wait),
        cmocka_unit_test(test_an_offload_job_is_not_jumped_over),
        cmocka_unit_test(test_a_lane_job_is_not_jumped_over),
        cmocka_unit_test(test_shards_jump_together),
        cmocka_unit_test(test_a_socket_wait_on_another_shard_keeps_real_time),
        cmocka_unit_test(test_the_clock_stays_monotonic_after_the_runtime),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
