/*
 * Groups (structured concurrency): join waits for every child; the first
 * failure is returned and cancels the siblings; cancelling a group wakes each
 * child from whatever it is blocked in with -ECANCELED; a joiner that is
 * cancelled or whose deadline passes cancels and waits for its children;
 * cancellation is sticky.
 */
#include "harness.h"

/* ------------------------------------------------------------ small children */

static int sleep_10s_record(void *arg)
{
    int *result = arg;
    *result = wv_sleep_ms(10000);
    return *result;
}

static int fail_eio_after_5ms(void *arg)
{
    int r = wv_sleep_ms(5);
    return r != 0 ? r : -EIO;
}

static int return_int(void *arg)
{
    return (int)(intptr_t)arg;
}

typedef struct counted {
    int ms;
    int *count;
} counted;

static int sleep_then_count(void *arg)
{
    counted *c = arg;
    int r = wv_sleep_ms(c->ms);
    if (r == 0)
        (*c->count)++;
    return r;
}

/* ------------------------------------------------------------ join */

static int join_all(void *arg)
{
    int count = 0;
    counted c[10];
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 10; i++) {
        c[i] = (counted){.ms = 1 + i, .count = &count};
        CHECK_EQ(wv_group_spawn(g, sleep_then_count, &c[i], NULL), 0);
    }
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(count, 10);
    CHECK_EQ(wv_group_count(g), 0);
    wv_group_free(g);
    return 0;
}

static void test_join_waits_for_every_child_and_returns_zero(void **state)
{
    assert_int_equal(run_in_rt(1, join_all, NULL), 0);
    assert_checks_passed();
}

static int join_empty(void *arg)
{
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    int64_t t0 = wv_now();
    CHECK_EQ(wv_group_count(g), 0);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK(ms_since(t0) < 1000);
    wv_group_free(g);
    return 0;
}

static void test_join_of_an_empty_group_returns_zero_at_once(void **state)
{
    assert_int_equal(run_in_rt(1, join_empty, NULL), 0);
    assert_checks_passed();
}

static int wait_event(void *arg)
{
    return wv_event_wait(arg);
}

static int count_running(void *arg)
{
    wv_event e[3];
    memset(e, 0, sizeof(e));
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wv_group_spawn(g, wait_event, &e[i], NULL), 0);
    CHECK_EQ(wv_group_count(g), 3);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(wv_group_count(g), 3);
    wv_event_set(&e[1]);
    CHECK_EQ(wv_sleep_ms(1), 0);
    CHECK_EQ(wv_group_count(g), 2);
    wv_event_set(&e[0]);
    wv_event_set(&e[2]);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(wv_group_count(g), 0);
    wv_group_free(g);
    return 0;
}

static void test_group_count_is_the_number_of_children_still_running(void **state)
{
    assert_int_equal(run_in_rt(1, count_running, NULL), 0);
    assert_checks_passed();
}

static int positive_and_ecanceled_results(void *arg)
{
    int count = 0;
    counted c = {.ms = 20, .count = &count};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, return_int, (void *)(intptr_t)7, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, return_int, (void *)(intptr_t)-ECANCELED, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, sleep_then_count, &c, NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(count, 1); /* the sibling was not cancelled */
    wv_group_free(g);
    return 0;
}

static void test_positive_or_ecanceled_child_results_are_not_failures(void **state)
{
    assert_int_equal(run_in_rt(1, positive_and_ecanceled_results, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ failure */

static int first_failure_cancels(void *arg)
{
    int b = 1, c = 1;
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    int64_t t0 = wv_now();
    CHECK_EQ(wv_group_spawn(g, sleep_10s_record, &b, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, fail_eio_after_5ms, NULL, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, sleep_10s_record, &c, NULL), 0);
    CHECK_EQ(wv_group_join(g), -EIO);
    CHECK(ms_since(t0) < 2000);
    CHECK_EQ(b, -ECANCELED);
    CHECK_EQ(c, -ECANCELED);
    CHECK_EQ(wv_group_count(g), 0);
    wv_group_free(g);
    return 0;
}

static void test_first_failure_is_returned_and_siblings_see_ecanceled(void **state)
{
    assert_int_equal(run_in_rt(1, first_failure_cancels, NULL), 0);
    assert_checks_passed();
}

static int two_failures(void *arg)
{
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, return_int, (void *)(intptr_t)-EIO, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, return_int, (void *)(intptr_t)-ENOENT, NULL), 0);
    CHECK_EQ(wv_group_join(g), -EIO);
    wv_group_free(g);
    return 0;
}

static void test_join_returns_the_earliest_of_several_failures(void **state)
{
    assert_int_equal(run_in_rt(1, two_failures, NULL), 0);
    assert_checks_passed();
}

static int failure_before_join(void *arg)
{
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, return_int, (void *)(intptr_t)-EPROTO, NULL), 0);
    CHECK_EQ(wv_sleep_ms(2), 0);
    CHECK_EQ(wv_group_count(g), 0);
    CHECK_EQ(wv_group_join(g), -EPROTO);
    wv_group_free(g);
    return 0;
}

static void test_join_returns_a_failure_that_happened_before_it_was_called(void **state)
{
    assert_int_equal(run_in_rt(1, failure_before_join, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ cancelling blocked children */

typedef enum block_kind {
    BLOCK_SLEEP,
    BLOCK_CHAN_RECV,
    BLOCK_CHAN_SEND,
    BLOCK_SELECT,
    BLOCK_SOCKET_READ,
    BLOCK_ACCEPT,
    BLOCK_FD_WAIT,
    BLOCK_MUTEX_LOCK,
    BLOCK_COND_WAIT,
    BLOCK_EVENT_WAIT,
    BLOCK_WAITGROUP_WAIT,
    BLOCK_GROUP_JOIN,
    BLOCK_STOP_WAIT,
} block_kind;

typedef struct blocked {
    block_kind kind;
    wv_chan *empty, *full;
    int sv[2];
    int listener;
    wv_mutex m; /* held by the test while the child waits for it */
    wv_mutex cm;
    wv_cond cond;
    wv_event ev;
    wv_waitgroup wg;
    int entered, returned, result;
    int held_after;        /* BLOCK_COND_WAIT: trylock right after the wait */
    int grandchild_result; /* BLOCK_GROUP_JOIN */
    int inner_count;       /* BLOCK_GROUP_JOIN: inner group count after join */
} blocked;

static int block_in(blocked *b)
{
    int v = 0;
    char buf[8];
    switch (b->kind) {
    case BLOCK_SLEEP:
        return wv_sleep_ms(10000);
    case BLOCK_CHAN_RECV:
        return wv_chan_recv(b->empty, &v);
    case BLOCK_CHAN_SEND:
        return wv_chan_send(b->full, &v);
    case BLOCK_SELECT: {
        wv_select_case cases[] = {{b->empty, WV_RECV, &v, 0}, {b->full, WV_SEND, &v, 0}};
        return wv_chan_select(cases, 2, WV_NEVER);
    }
    case BLOCK_SOCKET_READ:
        return (int)wv_read(b->sv[0], buf, sizeof(buf));
    case BLOCK_ACCEPT:
        return wv_accept(b->listener, NULL, NULL);
    case BLOCK_FD_WAIT:
        return wv_fd_wait(b->sv[0], WV_IN, WV_NEVER);
    case BLOCK_MUTEX_LOCK:
        return wv_mutex_lock(&b->m);
    case BLOCK_COND_WAIT: {
        if (wv_mutex_lock(&b->cm) != 0)
            return -1000;
        int r = wv_cond_wait(&b->cond, &b->cm);
        b->held_after = wv_mutex_trylock(&b->cm);
        wv_mutex_unlock(&b->cm);
        return r;
    }
    case BLOCK_EVENT_WAIT:
        return wv_event_wait(&b->ev);
    case BLOCK_WAITGROUP_WAIT:
        return wv_waitgroup_wait(&b->wg);
    case BLOCK_GROUP_JOIN: {
        wv_group *inner = wv_group_new();
        if (inner == NULL)
            return -1000;
        b->grandchild_result = 1;
        wv_group_spawn(inner, sleep_10s_record, &b->grandchild_result, NULL);
        int r = wv_group_join(inner);
        b->inner_count = wv_group_count(inner);
        wv_group_free(inner);
        return r;
    }
    case BLOCK_STOP_WAIT:
        return wv_stop_wait();
    }
    return -1000;
}

static int blocked_child(void *arg)
{
    blocked *b = arg;
    b->entered = 1;
    b->result = block_in(b);
    b->returned = 1;
    return b->result;
}

static int cancel_blocked_body(void *arg)
{
    blocked b;
    memset(&b, 0, sizeof(b));
    b.kind = *(block_kind *)arg;
    b.sv[0] = b.sv[1] = b.listener = -1;
    b.empty = wv_chan_new(sizeof(int), 1);
    b.full = wv_chan_new(sizeof(int), 1);
    REQUIRE(b.empty != NULL && b.full != NULL);
    int one = 1;
    CHECK_EQ(wv_chan_send(b.full, &one), 0);
    REQUIRE_EQ(nb_socketpair(b.sv), 0);
    uint16_t port = 0;
    b.listener = listen_loopback(&port);
    REQUIRE(b.listener >= 0);
    CHECK_EQ(wv_mutex_lock(&b.m), 0);
    wv_waitgroup_add(&b.wg, 1);

    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, blocked_child, &b, NULL), 0);
    CHECK_EQ(wv_sleep_ms(5), 0);
    CHECK_EQ(b.entered, 1);
    CHECK_EQ(b.returned, 0); /* it really is blocked */

    int64_t t0 = wv_now();
    wv_group_cancel(g);
    CHECK_EQ(b.returned, 0); /* cancel does not wait */
    CHECK_EQ(wv_group_join(g), 0);
    CHECK(ms_since(t0) < 1000);
    CHECK_EQ(b.returned, 1);
    CHECK_EQ(b.result, -ECANCELED);
    CHECK_EQ(wv_group_count(g), 0);
    wv_group_free(g);

    switch (b.kind) {
    case BLOCK_MUTEX_LOCK:
        /* The cancelled waiter did not end up owning the mutex. */
        wv_mutex_unlock(&b.m);
        CHECK_EQ(wv_mutex_trylock(&b.m), 0);
        break;
    case BLOCK_COND_WAIT:
        CHECK_EQ(b.held_after, -EBUSY);
        break;
    case BLOCK_GROUP_JOIN:
        CHECK_EQ(b.grandchild_result, -ECANCELED);
        CHECK_EQ(b.inner_count, 0);
        break;
    case BLOCK_CHAN_SEND:
        CHECK_EQ(wv_chan_len(b.full), 1); /* nothing was sent */
        break;
    default:
        break;
    }
    wv_mutex_unlock(&b.m);
    wv_waitgroup_done(&b.wg);
    wv_chan_free(b.empty);
    wv_chan_free(b.full);
    wv_close(b.sv[0]);
    wv_close(b.sv[1]);
    wv_close(b.listener);
    return 0;
}

static void cancel_blocked(block_kind kind)
{
    assert_int_equal(run_in_rt(1, cancel_blocked_body, &kind), 0);
    assert_checks_passed();
}

static void test_cancel_wakes_child_blocked_in_sleep(void **state)
{
    cancel_blocked(BLOCK_SLEEP);
}

static void test_cancel_wakes_child_blocked_in_chan_recv(void **state)
{
    cancel_blocked(BLOCK_CHAN_RECV);
}

static void test_cancel_wakes_child_blocked_in_chan_send(void **state)
{
    cancel_blocked(BLOCK_CHAN_SEND);
}

static void test_cancel_wakes_child_blocked_in_select(void **state)
{
    cancel_blocked(BLOCK_SELECT);
}

static void test_cancel_wakes_child_blocked_in_socket_read(void **state)
{
    cancel_blocked(BLOCK_SOCKET_READ);
}

static void test_cancel_wakes_child_blocked_in_accept(void **state)
{
    cancel_blocked(BLOCK_ACCEPT);
}

static void test_cancel_wakes_child_blocked_in_fd_wait(void **state)
{
    cancel_blocked(BLOCK_FD_WAIT);
}

static void test_cancel_wakes_child_blocked_in_mutex_lock_without_giving_it_the_lock(void **state)
{
    cancel_blocked(BLOCK_MUTEX_LOCK);
}

static void test_cancel_wakes_child_blocked_in_cond_wait_with_mutex_held(void **state)
{
    cancel_blocked(BLOCK_COND_WAIT);
}

static void test_cancel_wakes_child_blocked_in_event_wait(void **state)
{
    cancel_blocked(BLOCK_EVENT_WAIT);
}

static void test_cancel_wakes_child_blocked_in_waitgroup_wait(void **state)
{
    cancel_blocked(BLOCK_WAITGROUP_WAIT);
}

static void test_cancel_wakes_child_blocked_in_stop_wait(void **state)
{
    cancel_blocked(BLOCK_STOP_WAIT);
}

static void test_join_by_a_cancelled_joiner_cancels_its_children_and_returns_ecanceled(void **state)
{
    cancel_blocked(BLOCK_GROUP_JOIN);
}

/* ------------------------------------------------------------ join deadline */

static int join_past_deadline(void *arg)
{
    int r[3] = {1, 1, 1};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wv_group_spawn(g, sleep_10s_record, &r[i], NULL), 0);
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_EQ(wv_group_join(g), -ETIMEDOUT);
    int64_t now = wv_now();
    wv_deadline_set(old);
    CHECK_BETWEEN(now - at, 0, 2000 * NS_PER_MS);
    CHECK_EQ(wv_group_count(g), 0); /* no child left running */
    for (int i = 0; i < 3; i++)
        CHECK_EQ(r[i], -ECANCELED);
    wv_group_free(g);
    return 0;
}

static void test_join_past_its_deadline_returns_etimedout_and_leaves_no_child_running(void **state)
{
    assert_int_equal(run_in_rt(1, join_past_deadline, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ cancelled groups */

static int spawn_into_cancelled(void *arg)
{
    int ran = 0;
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    wv_group_cancel(g);
    CHECK_EQ(wv_group_spawn(g, sleep_10s_record, &ran, NULL), -ECANCELED);
    CHECK_EQ(wv_yield(), 0); /* the caller itself is not cancelled */
    CHECK_EQ(ran, 0);
    CHECK_EQ(wv_group_count(g), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    return 0;
}

static void test_spawn_into_a_cancelled_group_returns_ecanceled_and_does_not_run(void **state)
{
    assert_int_equal(run_in_rt(1, spawn_into_cancelled, NULL), 0);
    assert_checks_passed();
}

typedef struct maybe_ran {
    int ran;
    int result;
} maybe_ran;

static int record_if_run(void *arg)
{
    maybe_ran *m = arg;
    m->ran = 1;
    m->result = wv_sleep_ms(10000);
    return m->result;
}

static int cancel_before_first_run(void *arg)
{
    maybe_ran m = {0, 1};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, record_if_run, &m, NULL), 0);
    wv_group_cancel(g); /* before the child ever ran */
    int64_t t0 = wv_now();
    CHECK_EQ(wv_group_join(g), 0);
    CHECK(ms_since(t0) < 1000);
    if (m.ran)
        CHECK_EQ(m.result, -ECANCELED);
    wv_group_free(g);
    return 0;
}

static void test_child_cancelled_before_it_first_runs_never_blocks(void **state)
{
    assert_int_equal(run_in_rt(1, cancel_before_first_run, NULL), 0);
    assert_checks_passed();
}

static int free_with_children(void *arg)
{
    int a = 1, b = 1;
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, sleep_10s_record, &a, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, sleep_10s_record, &b, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    int64_t t0 = wv_now();
    wv_group_free(g);
    CHECK(ms_since(t0) < 1000);
    /* free waited for them: both have returned, cancelled. */
    CHECK_EQ(a, -ECANCELED);
    CHECK_EQ(b, -ECANCELED);
    wv_group_free(NULL);
    return 0;
}

static void test_group_free_cancels_and_waits_for_remaining_children(void **state)
{
    assert_int_equal(run_in_rt(1, free_with_children, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ stickiness */

typedef struct sticky {
    bool cancelled_before;
    int first_sleep, second_sleep, yield, check;
    bool cancelled_after;
    int64_t second_sleep_ms;
} sticky;

static int sticky_child(void *arg)
{
    sticky *s = arg;
    s->cancelled_before = wv_cancelled();
    s->first_sleep = wv_sleep_ms(10000);
    int64_t t0 = wv_now();
    s->second_sleep = wv_sleep_ms(1000);
    s->second_sleep_ms = ms_since(t0);
    s->yield = wv_yield();
    s->check = wv_check();
    s->cancelled_after = wv_cancelled();
    return 0;
}

static int cancellation_sticks(void *arg)
{
    sticky s;
    memset(&s, 0, sizeof(s));
    s.first_sleep = s.second_sleep = s.yield = s.check = 1;
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, sticky_child, &s, NULL), 0);
    CHECK_EQ(wv_sleep_ms(5), 0);
    wv_group_cancel(g);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK(!s.cancelled_before);
    CHECK_EQ(s.first_sleep, -ECANCELED);
    CHECK_EQ(s.second_sleep, -ECANCELED);
    CHECK(s.second_sleep_ms < 500);
    CHECK_EQ(s.yield, -ECANCELED);
    CHECK_EQ(s.check, -ECANCELED);
    CHECK(s.cancelled_after);
    return 0;
}

static void test_cancellation_is_sticky_for_every_later_suspending_call(void **state)
{
    assert_int_equal(run_in_rt(1, cancellation_sticks, NULL), 0);
    assert_checks_passed();
}

static int sibling_groups_independent(void *arg)
{
    int a = 1, b = 0;
    wv_group *g1 = wv_group_new();
    wv_group *g2 = wv_group_new();
    REQUIRE(g1 != NULL && g2 != NULL);
    counted c = {.ms = 10, .count = &b};
    CHECK_EQ(wv_group_spawn(g1, sleep_10s_record, &a, NULL), 0);
    CHECK_EQ(wv_group_spawn(g2, sleep_then_count, &c, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    wv_group_cancel(g1);
    CHECK_EQ(wv_group_join(g1), 0);
    CHECK_EQ(wv_group_join(g2), 0);
    CHECK_EQ(a, -ECANCELED);
    CHECK_EQ(b, 1); /* the other group's child slept its full time */
    wv_group_free(g1);
    wv_group_free(g2);
    return 0;
}

static void test_cancelling_one_group_leaves_another_alone(void **state)
{
    assert_int_equal(run_in_rt(1, sibling_groups_independent, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_join_waits_for_every_child_and_returns_zero),
        cmocka_unit_test(test_join_of_an_empty_group_returns_zero_at_once),
        cmocka_unit_test(test_group_count_is_the_number_of_children_still_running),
        cmocka_unit_test(test_positive_or_ecanceled_child_results_are_not_failures),
        cmocka_unit_test(test_first_failure_is_returned_and_siblings_see_ecanceled),
        cmocka_unit_test(test_join_returns_the_earliest_of_several_failures),
        cmocka_unit_test(test_join_returns_a_failure_that_happened_before_it_was_called),
        cmocka_unit_test(test_cancel_wakes_child_blocked_in_sleep),
        cmocka_unit_test(test_cancel_wakes_child_blocked_in_chan_recv),
        cmocka_unit_test(test_cancel_wakes_child_blocked_in_chan_send),
        cmocka_unit_test(test_cancel_wakes_child_blocked_in_select),
        cmocka_unit_test(test_cancel_wakes_child_blocked_in_socket_read),
        cmocka_unit_test(test_cancel_wakes_child_blocked_in_accept),
        cmocka_unit_test(test_cancel_wakes_child_blocked_in_fd_wait),
        cmocka_unit_test(test_cancel_wakes_child_blocked_in_mutex_lock_without_giving_it_the_lock),
        cmocka_unit_test(test_cancel_wakes_child_blocked_in_cond_wait_with_mutex_held),
        cmocka_unit_test(test_cancel_wakes_child_blocked_in_event_wait),
        cmocka_unit_test(test_cancel_wakes_child_blocked_in_waitgroup_wait),
        cmocka_unit_test(test_cancel_wakes_child_blocked_in_stop_wait),
        cmocka_unit_test(
            test_join_by_a_cancelled_joiner_cancels_its_children_and_returns_ecanceled),
        cmocka_unit_test(test_join_past_its_deadline_returns_etimedout_and_leaves_no_child_running),
        cmocka_unit_test(test_spawn_into_a_cancelled_group_returns_ecanceled_and_does_not_run),
        cmocka_unit_test(test_child_cancelled_before_it_first_runs_never_blocks),
        cmocka_unit_test(test_group_free_cancels_and_waits_for_remaining_children),
        cmocka_unit_test(test_cancellation_is_sticky_for_every_later_suspending_call),
        cmocka_unit_test(test_cancelling_one_group_leaves_another_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
