/*
 * Shards: ids and counts, wv_shard_call / wv_shard_post / wv_shard_each,
 * cross-shard posts under load, cancellation across shards, graceful stop
 * (wv_stop, SIGTERM/SIGINT) and what wv_main does with fibers still alive
 * when the main fiber returns.
 */
#include "harness.h"

#include <pthread.h>
#include <time.h>

static int return_shard_id(void *arg)
{
    return wv_shard_id();
}

/* ------------------------------------------------------------ ids, counts */

static int ids_with_n_shards(void *arg)
{
    int n = *(int *)arg;
    CHECK_EQ(wv_shard_count(), n);
    CHECK_EQ(wv_shard_id(), 0);
    for (int i = 0; i < n; i++)
        CHECK_EQ(wv_shard_call(i, return_shard_id, NULL), i);
    return 0;
}

static void test_shard_count_and_ids_with_2_shards(void **state)
{
    int n = 2;
    assert_int_equal(run_in_rt(n, ids_with_n_shards, &n), 0);
    assert_checks_passed();
}

static void test_shard_count_and_ids_with_4_shards(void **state)
{
    int n = 4;
    assert_int_equal(run_in_rt(n, ids_with_n_shards, &n), 0);
    assert_checks_passed();
}

static int report_count(void *arg)
{
    return wv_shard_count();
}

static void test_zero_shards_option_takes_the_count_from_weave_shards(void **state)
{
    setenv("WEAVE_SHARDS", "3", 1);
    int r = run_in_rt(0, report_count, NULL);
    unsetenv("WEAVE_SHARDS");
    assert_int_equal(r, 3);
}

/* ------------------------------------------------------------ call, post */

typedef struct call_args {
    int input;
    int seen_shard;
    pthread_t thread;
} call_args;

static int remote_add(void *arg)
{
    call_args *a = arg; /* lives on the caller's stack, on another shard */
    a->seen_shard = wv_shard_id();
    a->thread = pthread_self();
    return 1000 + a->input;
}

static int return_eio(void *arg)
{
    return -EIO;
}

static int call_remote(void *arg)
{
    CHECK_EQ(wv_shard_call(1, return_eio, NULL), -EIO);
    call_args a = {.input = 23, .seen_shard = -1};
    CHECK_EQ(wv_shard_call(2, remote_add, &a), 1023);
    CHECK_EQ(a.seen_shard, 2);
    CHECK(!pthread_equal(a.thread, pthread_self()));
    CHECK_EQ(wv_shard_id(), 0); /* the caller resumed on its own shard */
    return 0;
}

static void test_shard_call_runs_on_the_target_and_returns_its_result(void **state)
{
    assert_int_equal(run_in_rt(3, call_remote, NULL), 0);
    assert_checks_passed();
}

static int call_self(void *arg)
{
    call_args a = {.input = 1, .seen_shard = -1};
    CHECK_EQ(wv_shard_call(0, remote_add, &a), 1001);
    CHECK_EQ(a.seen_shard, 0);
    return 0;
}

static void test_shard_call_to_its_own_shard_works(void **state)
{
    assert_int_equal(run_in_rt(2, call_self, NULL), 0);
    assert_checks_passed();
}

static atomic_int post_seen_shard;
static atomic_int post_runs;

static int record_post(void *arg)
{
    atomic_store(&post_seen_shard, wv_shard_id() + 100 * (int)(intptr_t)arg);
    atomic_fetch_add(&post_runs, 1);
    return 0;
}

static int post_to(void *arg)
{
    int target = *(int *)arg;
    atomic_store(&post_seen_shard, -1);
    atomic_store(&post_runs, 0);
    CHECK_EQ(wv_shard_post(target, record_post, (void *)(intptr_t)7), 0);
    CHECK(wait_for_atomic(&post_runs, 1, 5000));
    CHECK_EQ(atomic_load(&post_seen_shard), 700 + target);
    CHECK_EQ(wv_sleep_ms(5), 0);
    CHECK_EQ(atomic_load(&post_runs), 1); /* exactly once */
    return 0;
}

static void test_shard_post_runs_the_function_on_the_target_shard(void **state)
{
    int target = 2;
    assert_int_equal(run_in_rt(3, post_to, &target), 0);
    assert_checks_passed();
}

static void test_shard_post_to_its_own_shard_works(void **state)
{
    int target = 0;
    assert_int_equal(run_in_rt(2, post_to, &target), 0);
    assert_checks_passed();
}

static int never_runs(void *arg)
{
    atomic_fetch_add(&post_runs, 1000);
    return 0;
}

static int post_bad_shard(void *arg)
{
    atomic_store(&post_runs, 0);
    CHECK_EQ(wv_shard_post(-1, never_runs, NULL), -EINVAL);
    CHECK_EQ(wv_shard_post(2, never_runs, NULL), -EINVAL);
    CHECK_EQ(wv_shard_call(2, never_runs, NULL), -EINVAL);
    CHECK_EQ(wv_sleep_ms(2), 0);
    CHECK_EQ(atomic_load(&post_runs), 0);
    return 0;
}

static void test_shard_post_and_call_reject_a_bad_shard_with_einval(void **state)
{
    assert_int_equal(run_in_rt(2, post_bad_shard, NULL), 0);
    assert_checks_passed();
}

static atomic_int spin_flag;
static atomic_int spin_started;
static atomic_int spin_finished;

static int spin_until_flag(void *arg)
{
    int64_t end = wv_after_ms(3000);
    atomic_store(&spin_started, 1);
    while (!atomic_load(&spin_flag) && wv_now() < end)
        if (wv_yield() != 0)
            break;
    atomic_store(&spin_finished, 1);
    return 0;
}

static int raise_flag(void *arg)
{
    atomic_store(&spin_flag, 1);
    return 0;
}

static int post_to_busy_shard(void *arg)
{
    atomic_store(&spin_flag, 0);
    atomic_store(&spin_started, 0);
    atomic_store(&spin_finished, 0);
    CHECK_EQ(wv_shard_post(1, spin_until_flag, NULL), 0);
    CHECK(wait_for_atomic(&spin_started, 1, 2000));
    CHECK_EQ(wv_shard_post(1, raise_flag, NULL), 0);
    CHECK(wait_for_atomic(&spin_finished, 1, 5000));
    CHECK_EQ(atomic_load(&spin_flag), 1); /* the post ran while the shard was busy */
    return 0;
}

static void test_shard_post_runs_even_while_the_target_keeps_yielding(void **state)
{
    int64_t t0 = wv_now();
    assert_int_equal(run_in_rt(2, post_to_busy_shard, NULL), 0);
    assert_checks_passed();
    assert_true(ms_since(t0) < 2500);
}

/* ------------------------------------------------------------ posts under load */

enum { LOAD_SHARDS = 4, LOAD_PER_SHARD = 20000 };

static atomic_uchar load_seen[LOAD_SHARDS][LOAD_PER_SHARD];
static atomic_int load_received[LOAD_SHARDS];
static atomic_int load_misdelivered;
static atomic_int load_total;

static int load_target(int src, int seq)
{
    return (src + 1 + seq % (LOAD_SHARDS - 1)) % LOAD_SHARDS;
}

static int receive_message(void *arg)
{
    uintptr_t m = (uintptr_t)arg - 1;
    int src = (int)(m / LOAD_PER_SHARD), seq = (int)(m % LOAD_PER_SHARD);
    int me = wv_shard_id();
    if (src < 0 || src >= LOAD_SHARDS || me != load_target(src, seq))
        atomic_fetch_add(&load_misdelivered, 1);
    else
        atomic_fetch_add(&load_seen[src][seq], 1);
    if (me >= 0 && me < LOAD_SHARDS)
        atomic_fetch_add(&load_received[me], 1);
    atomic_fetch_add(&load_total, 1);
    return 0;
}

static int post_20k(void *arg)
{
    int src = wv_shard_id();
    for (int seq = 0; seq < LOAD_PER_SHARD; seq++) {
        uintptr_t m = (uintptr_t)src * LOAD_PER_SHARD + (uintptr_t)seq + 1;
        int r = wv_shard_post(load_target(src, seq), receive_message, (void *)m);
        if (r != 0)
            return r;
        if (seq % 1000 == 999 && wv_yield() != 0)
            return -EIO;
    }
    return 0;
}

static int posts_under_load(void *arg)
{
    memset(load_seen, 0, sizeof(load_seen));
    for (int i = 0; i < LOAD_SHARDS; i++)
        atomic_store(&load_received[i], 0);
    atomic_store(&load_misdelivered, 0);
    atomic_store(&load_total, 0);

    CHECK_EQ(wv_shard_each(post_20k, NULL), 0);
    CHECK(wait_for_atomic(&load_total, LOAD_SHARDS * LOAD_PER_SHARD, 60000));
    CHECK_EQ(wv_sleep_ms(5), 0);
    CHECK_EQ(atomic_load(&load_total), LOAD_SHARDS * LOAD_PER_SHARD);
    CHECK_EQ(atomic_load(&load_misdelivered), 0);
    for (int s = 0; s < LOAD_SHARDS; s++) {
        CHECK_EQ(atomic_load(&load_received[s]), LOAD_PER_SHARD);
        for (int q = 0; q < LOAD_PER_SHARD; q++)
            if (!CHECK_EQ(atomic_load(&load_seen[s][q]), 1))
                break;
    }
    return 0;
}

static void test_cross_shard_posts_under_load_each_arrive_exactly_once(void **state)
{
    assert_int_equal(run_in_rt(LOAD_SHARDS, posts_under_load, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ each */

static atomic_int each_runs[8];

static int count_run_here(void *arg)
{
    int me = wv_shard_id();
    if (me < 0 || me >= 8)
        return -EINVAL;
    /* Finish at different times: each must wait for all. */
    int r = wv_sleep_ms(2 * me);
    atomic_fetch_add(&each_runs[me], 1);
    if (arg != NULL && me == *(int *)arg)
        return -EIO;
    return r;
}

static int each_once(void *arg)
{
    for (int i = 0; i < 8; i++)
        atomic_store(&each_runs[i], 0);
    CHECK_EQ(wv_shard_each(count_run_here, NULL), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(atomic_load(&each_runs[i]), 1);
    for (int i = 4; i < 8; i++)
        CHECK_EQ(atomic_load(&each_runs[i]), 0);
    return 0;
}

static void test_shard_each_runs_once_on_every_shard_and_waits_for_all(void **state)
{
    assert_int_equal(run_in_rt(4, each_once, NULL), 0);
    assert_checks_passed();
}

static int each_failure(void *arg)
{
    for (int i = 0; i < 8; i++)
        atomic_store(&each_runs[i], 0);
    int failing = 2;
    CHECK_EQ(wv_shard_each(count_run_here, &failing), -EIO);
    CHECK_EQ(atomic_load(&each_runs[2]), 1);
    return 0;
}

static void test_shard_each_returns_the_failure_of_a_shard(void **state)
{
    assert_int_equal(run_in_rt(4, each_failure, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ cancellation across shards */

static atomic_int remote_result;
static atomic_int remote_started;

static int remote_sleep_10s(void *arg)
{
    atomic_store(&remote_started, 1);
    int r = wv_sleep_ms(10000);
    atomic_store(&remote_result, r);
    return r;
}

static int call_past_deadline(void *arg)
{
    atomic_store(&remote_result, 1);
    atomic_store(&remote_started, 0);
    int64_t t0 = wv_now();
    int64_t at = wv_after_ms(50);
    int64_t old = wv_deadline_set(at);
    CHECK_EQ(wv_shard_call(1, remote_sleep_10s, NULL), -ETIMEDOUT);
    int64_t now = wv_now();
    wv_deadline_set(old);
    CHECK(now >= at);
    CHECK((now - t0) / NS_PER_MS < 1000);
    CHECK_EQ(atomic_load(&remote_started), 1);
    /* The call waited for the remote fiber, which saw the cancellation. */
    CHECK_EQ(atomic_load(&remote_result), -ECANCELED);
    return 0;
}

static void test_shard_call_past_its_deadline_cancels_the_remote_fiber(void **state)
{
    assert_int_equal(run_in_rt(2, call_past_deadline, NULL), 0);
    assert_checks_passed();
}

typedef struct caller_state {
    int result;
} caller_state;

static int call_remote_sleeper(void *arg)
{
    ((caller_state *)arg)->result = wv_shard_call(1, remote_sleep_10s, NULL);
    return 0;
}

static int cancelled_caller(void *arg)
{
    atomic_store(&remote_result, 1);
    atomic_store(&remote_started, 0);
    caller_state c = {1};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, call_remote_sleeper, &c, NULL), 0);
    CHECK(wait_for_atomic(&remote_started, 1, 2000));
    int64_t t0 = wv_now();
    wv_group_cancel(g);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK(ms_since(t0) < 1000);
    CHECK_EQ(c.result, -ECANCELED);
    CHECK_EQ(atomic_load(&remote_result), -ECANCELED);
    wv_group_free(g);
    return 0;
}

static void test_shard_call_by_a_cancelled_caller_cancels_the_remote_fiber(void **state)
{
    assert_int_equal(run_in_rt(2, cancelled_caller, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ graceful stop */

static atomic_int stop_results[4];

static int wait_for_stop(void *arg)
{
    int me = wv_shard_id();
    if (me == 1) {
        if (wv_sleep_ms(10) != 0)
            return -EIO;
        wv_stop();
    }
    int64_t old = wv_deadline_set(wv_after_ms(5000));
    int r = wv_stop_wait();
    wv_deadline_set(old);
    atomic_store(&stop_results[me], r);
    return r;
}

static int stop_every_shard(void *arg)
{
    for (int i = 0; i < 4; i++)
        atomic_store(&stop_results[i], 1);
    CHECK(!wv_stopping());
    CHECK_EQ(wv_shard_each(wait_for_stop, NULL), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(atomic_load(&stop_results[i]), 0);
    CHECK(wv_stopping());
    int64_t t0 = wv_now();
    CHECK_EQ(wv_stop_wait(), 0); /* already stopping: at once */
    CHECK(ms_since(t0) < 1000);
    return 0;
}

static void test_stop_from_a_fiber_makes_stop_wait_return_zero_on_every_shard(void **state)
{
    assert_int_equal(run_in_rt(4, stop_every_shard, NULL), 0);
    assert_checks_passed();
}

static void *stop_after_10ms(void *arg)
{
    struct timespec ts = {0, 10 * 1000 * 1000};
    nanosleep(&ts, NULL);
    wv_stop();
    return NULL;
}

static int stop_from_thread(void *arg)
{
    pthread_t th;
    REQUIRE_EQ(pthread_create(&th, NULL, stop_after_10ms, NULL), 0);
    int64_t old = wv_deadline_set(wv_after_ms(5000));
    CHECK_EQ(wv_stop_wait(), 0);
    wv_deadline_set(old);
    CHECK(wv_stopping());
    pthread_join(th, NULL);
    return 0;
}

static void test_stop_from_a_plain_thread_wakes_stop_wait(void **state)
{
    assert_int_equal(run_in_rt(2, stop_from_thread, NULL), 0);
    assert_checks_passed();
}

static int stop_then_return(void *arg)
{
    wv_stop();
    return 0;
}

static int report_stopping(void *arg)
{
    return wv_stopping() ? 1 : 0;
}

static void test_stop_request_does_not_carry_over_to_the_next_runtime(void **state)
{
    assert_int_equal(run_in_rt(1, stop_then_return, NULL), 0);
    assert_int_equal(run_in_rt(1, report_stopping, NULL), 0);
}

/* Signals are tested in a child process, where the default actions cannot
 * take the test runner down with them. */
static int raise_and_wait(void *arg)
{
    int sig = *(int *)arg;
    if (wv_stopping())
        return 20;
    kill(getpid(), sig);
    int64_t old = wv_deadline_set(wv_after_ms(5000));
    int r = wv_stop_wait();
    wv_deadline_set(old);
    if (r != 0)
        return 21;
    return wv_stopping() ? 0 : 22;
}

static int child_signal_stop(void *arg)
{
    wv_main_opts opts = {.shards = 2};
    int r = wv_main(&opts, raise_and_wait, arg);
    return r < 0 ? 30 : r;
}

static void expect_graceful_stop_on(int sig)
{
    child_result *r = malloc(sizeof(*r));
    assert_non_null(r);
    assert_int_equal(run_in_child(child_signal_stop, &sig, r), 0);
    if (!child_exited_zero(r))
        print_error("child status 0x%x; stderr:\n%s\n", r->status, r->err);
    assert_true(child_exited_zero(r));
    free(r);
}

static void test_sigterm_requests_a_graceful_stop(void **state)
{
    expect_graceful_stop_on(SIGTERM);
}

static void test_sigint_requests_a_graceful_stop(void **state)
{
    expect_graceful_stop_on(SIGINT);
}

static int raise_twice(void *arg)
{
    kill(getpid(), SIGTERM);
    int64_t old = wv_deadline_set(wv_after_ms(5000));
    int r = wv_stop_wait();
    wv_deadline_set(old);
    if (r != 0)
        return 21;
    kill(getpid(), SIGTERM);
    wv_sleep_ms(3000); /* the process should be gone long before this ends */
    return 0;
}

static int child_double_signal(void *arg)
{
    wv_main_opts opts = {.shards = 2};
    int r = wv_main(&opts, raise_twice, NULL);
    return r < 0 ? 30 : r;
}

static void test_second_sigterm_ends_the_process_at_once(void **state)
{
    child_result *r = malloc(sizeof(*r));
    assert_non_null(r);
    int64_t t0 = wv_now();
    assert_int_equal(run_in_child(child_double_signal, NULL, r), 0);
    int64_t took = ms_since(t0);
    if (child_exited_zero(r) || took >= 2500)
        print_error("child status 0x%x after %" PRId64 " ms; stderr:\n%s\n", r->status, took,
                    r->err);
    assert_false(child_exited_zero(r));
    assert_true(took < 2500);
    free(r);
}

/* ------------------------------------------------------------ shutdown */

static atomic_int leftover_result[2];
static atomic_int leftover_spawn_result[2];
static atomic_int leftover_post_result[2];
static atomic_int leftover_started;

static int noop(void *arg)
{
    return 0;
}

static int sleep_forever(void *arg)
{
    int i = (int)(intptr_t)arg;
    atomic_fetch_add(&leftover_started, 1);
    int r = wv_sleep_until(WV_NEVER);
    atomic_store(&leftover_result[i], r);
    /* Now the runtime is shutting down: nothing new may start. */
    atomic_store(&leftover_spawn_result[i], wv_spawn(noop, NULL, NULL));
    atomic_store(&leftover_post_result[i], wv_shard_post(0, noop, NULL));
    return r;
}

static int leave_fibers_behind(void *arg)
{
    atomic_store(&leftover_started, 0);
    for (int i = 0; i < 2; i++) {
        atomic_store(&leftover_result[i], 1);
        atomic_store(&leftover_spawn_result[i], 1);
        atomic_store(&leftover_post_result[i], 1);
    }
    CHECK_EQ(wv_spawn(sleep_forever, (void *)(intptr_t)0, NULL), 0);
    CHECK_EQ(wv_shard_post(1, sleep_forever, (void *)(intptr_t)1), 0);
    CHECK(wait_for_atomic(&leftover_started, 2, 2000));
    return 9;
}

static void test_wv_main_cancels_leftover_fibers_on_every_shard_and_returns_promptly(void **state)
{
    int64_t t0 = wv_now();
    assert_int_equal(run_in_rt(2, leave_fibers_behind, NULL), 9);
    assert_true(ms_since(t0) < 2000);
    assert_checks_passed();
    for (int i = 0; i < 2; i++)
        assert_int_equal(atomic_load(&leftover_result[i]), -ECANCELED);
}

static void test_spawn_and_post_while_shutting_down_return_eshutdown(void **state)
{
    assert_int_equal(run_in_rt(2, leave_fibers_behind, NULL), 9);
    assert_checks_passed();
    for (int i = 0; i < 2; i++) {
        assert_int_equal(atomic_load(&leftover_spawn_result[i]), -ESHUTDOWN);
        assert_int_equal(atomic_load(&leftover_post_result[i]), -ESHUTDOWN);
    }
}

static atomic_int blocked_results[2];
static atomic_int blocked_started;

static int leftover_reader(void *arg)
{
    int sv[2];
    if (nb_socketpair(sv) != 0)
        return -EIO;
    atomic_fetch_add(&blocked_started, 1);
    char buf[4];
    int r = (int)wv_read(sv[0], buf, sizeof(buf));
    atomic_store(&blocked_results[0], r);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return r;
}

static int leftover_receiver(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 1);
    if (c == NULL)
        return -ENOMEM;
    atomic_fetch_add(&blocked_started, 1);
    int v;
    int r = wv_chan_recv(c, &v);
    atomic_store(&blocked_results[1], r);
    wv_chan_free(c);
    return r;
}

static int leave_blocked_fibers(void *arg)
{
    atomic_store(&blocked_started, 0);
    atomic_store(&blocked_results[0], 1);
    atomic_store(&blocked_results[1], 1);
    CHECK_EQ(wv_shard_post(1, leftover_reader, NULL), 0);
    CHECK_EQ(wv_spawn(leftover_receiver, NULL, NULL), 0);
    CHECK(wait_for_atomic(&blocked_started, 2, 2000));
    return 0;
}

static void test_wv_main_cancels_leftover_fibers_blocked_in_a_read_or_a_recv(void **state)
{
    int64_t t0 = wv_now();
    assert_int_equal(run_in_rt(2, leave_blocked_fibers, NULL), 0);
    assert_true(ms_since(t0) < 2000);
    assert_checks_passed();
    assert_int_equal(atomic_load(&blocked_results[0]), -ECANCELED);
    assert_int_equal(atomic_load(&blocked_results[1]), -ECANCELED);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard_count_and_ids_with_2_shards),
        cmocka_unit_test(test_shard_count_and_ids_with_4_shards),
        cmocka_unit_test(test_zero_shards_option_takes_the_count_from_weave_shards),
        cmocka_unit_test(test_shard_call_runs_on_the_target_and_returns_its_result),
        cmocka_unit_test(test_shard_call_to_its_own_shard_works),
        cmocka_unit_test(test_shard_post_runs_the_function_on_the_target_shard),
        cmocka_unit_test(test_shard_post_to_its_own_shard_works),
        cmocka_unit_test(test_shard_post_and_call_reject_a_bad_shard_with_einval),
        cmocka_unit_test(test_shard_post_runs_even_while_the_target_keeps_yielding),
        cmocka_unit_test(test_cross_shard_posts_under_load_each_arrive_exactly_once),
        cmocka_unit_test(test_shard_each_runs_once_on_every_shard_and_waits_for_all),
        cmocka_unit_test(test_shard_each_returns_the_failure_of_a_shard),
        cmocka_unit_test(test_shard_call_past_its_deadline_cancels_the_remote_fiber),
        cmocka_unit_test(test_shard_call_by_a_cancelled_caller_cancels_the_remote_fiber),
        cmocka_unit_test(test_stop_from_a_fiber_makes_stop_wait_return_zero_on_every_shard),
        cmocka_unit_test(test_stop_from_a_plain_thread_wakes_stop_wait),
        cmocka_unit_test(test_stop_request_does_not_carry_over_to_the_next_runtime),
        cmocka_unit_test(test_sigterm_requests_a_graceful_stop),
        cmocka_unit_test(test_sigint_requests_a_graceful_stop),
        cmocka_unit_test(test_second_sigterm_ends_the_process_at_once),
        cmocka_unit_test(test_wv_main_cancels_leftover_fibers_on_every_shard_and_returns_promptly),
        cmocka_unit_test(test_spawn_and_post_while_shutting_down_return_eshutdown),
        cmocka_unit_test(test_wv_main_cancels_leftover_fibers_blocked_in_a_read_or_a_recv),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
