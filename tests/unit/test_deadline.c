/*
 * Deadlines: a fiber's deadline (wv_deadline_set) applies to every
 * suspending call inside it; explicit deadlines (wv_fd_wait, recv_until,
 * select) combine with it as "the earlier wins"; a deadline fires at (never
 * before) its time; a past deadline fails at once; and a call that timed out
 * leaves its object usable.
 */
#include "harness.h"

/* r must be -ETIMEDOUT, returned no earlier than `at` and not much later. */
#define CHECK_TIMED_OUT(expr, at)                                                                  \
    do {                                                                                           \
        int64_t result_ = (int64_t)(expr);                                                         \
        int64_t now_ = wv_now();                                                                   \
        CHECK_EQ(result_, -ETIMEDOUT);                                                             \
        CHECK_BETWEEN(now_ - (at), 0, 2000 * NS_PER_MS);                                           \
    } while (0)

/* ------------------------------------------------------------ helpers */

typedef struct holder {
    wv_mutex *m;
    wv_event *release;
} holder;

/* Take the mutex and keep it until the event is set. */
static int hold_until_released(void *arg)
{
    holder *h = arg;
    CHECK_EQ(wv_mutex_lock(h->m), 0);
    CHECK_EQ(wv_event_wait(h->release), 0);
    wv_mutex_unlock(h->m);
    return 0;
}

/* ------------------------------------------------------------ sockets */

static int read_silent_socket(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    char buf[16];
    int64_t at = wv_after_ms(50);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_read(sv[0], buf, sizeof(buf)), at);
    wv_deadline_set(old);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_deadline_fires_while_reading_a_silent_socket(void **state)
{
    assert_int_equal(run_in_rt(1, read_silent_socket, NULL), 0);
    assert_checks_passed();
}

static int fd_wait_own_deadline(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    int64_t at = wv_after_ms(30);
    CHECK_TIMED_OUT(wv_fd_wait(sv[0], WV_IN, at), at);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_fd_wait_returns_etimedout_at_its_deadline(void **state)
{
    assert_int_equal(run_in_rt(1, fd_wait_own_deadline, NULL), 0);
    assert_checks_passed();
}

static int fd_wait_fiber_deadline(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_fd_wait(sv[0], WV_IN, WV_NEVER), at);
    wv_deadline_set(old);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_fiber_deadline_applies_to_fd_wait_without_deadline(void **state)
{
    assert_int_equal(run_in_rt(1, fd_wait_fiber_deadline, NULL), 0);
    assert_checks_passed();
}

static int write_to_full_socket(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    size_t n = 8u << 20;
    char *buf = calloc(1, n);
    REQUIRE(buf != NULL);
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_write(sv[0], buf, n), at);
    wv_deadline_set(old);
    free(buf);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_fiber_deadline_applies_to_write_on_a_full_socket(void **state)
{
    assert_int_equal(run_in_rt(1, write_to_full_socket, NULL), 0);
    assert_checks_passed();
}

static int accept_without_clients(void *arg)
{
    uint16_t port = 0;
    int lfd = listen_loopback(&port);
    REQUIRE(lfd >= 0);
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_accept(lfd, NULL, NULL), at);
    wv_deadline_set(old);
    wv_close(lfd);
    return 0;
}

static void test_fiber_deadline_applies_to_accept(void **state)
{
    assert_int_equal(run_in_rt(1, accept_without_clients, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ every kind of wait */

static int sleep_past_deadline(void *arg)
{
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_sleep_ms(10000), at);
    CHECK_TIMED_OUT(wv_sleep_until(WV_NEVER), at);
    wv_deadline_set(old);
    return 0;
}

static void test_fiber_deadline_applies_to_sleep(void **state)
{
    assert_int_equal(run_in_rt(1, sleep_past_deadline, NULL), 0);
    assert_checks_passed();
}

/* A wait the fiber's deadline ended says so in wv_errmsg(), over whatever
 * older detail the fiber had (a 504 shows it); one that ended at the
 * waiter's own time (a sleep's end, a read's own timeout) leaves it. */
static int deadline_says_so(void *arg)
{
    (void)arg;
    wv_fail(-EIO, "an older, unrelated failure");
    int64_t old = wv_deadline_set(wv_after_ms(20));
    CHECK_EQ(wv_sleep_ms(5), 0);
    CHECK_STR_EQ(wv_errmsg(), "an older, unrelated failure");
    CHECK_EQ(wv_sleep_ms(1000), -ETIMEDOUT);
    CHECK_STR_EQ(wv_errmsg(), "the deadline passed");
    wv_fail(-EIO, "an older, unrelated failure");
    CHECK_EQ(wv_sleep_ms(1), -ETIMEDOUT); /* already past: no wait at all */
    CHECK_STR_EQ(wv_errmsg(), "the deadline passed");
    wv_fail(-EIO, "an older, unrelated failure");
    CHECK_EQ(wv_check(), -ETIMEDOUT);
    CHECK_STR_EQ(wv_errmsg(), "the deadline passed");
    wv_deadline_set(old);
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    wv_fail(-EIO, "an older, unrelated failure");
    CHECK_EQ(wv_fd_wait(sv[0], WV_IN, wv_after_ms(10)), -ETIMEDOUT);
    CHECK_STR_EQ(wv_errmsg(), "an older, unrelated failure");
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_a_wait_ended_by_the_fiber_deadline_says_so(void **state)
{
    assert_int_equal(run_in_rt(1, deadline_says_so, NULL), 0);
    assert_checks_passed();
}

static int recv_empty_chan(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 4);
    REQUIRE(c != NULL);
    int v = 0;
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_chan_recv(c, &v), at);
    wv_deadline_set(old);
    wv_chan_free(c);
    return 0;
}

static void test_fiber_deadline_applies_to_chan_recv(void **state)
{
    assert_int_equal(run_in_rt(1, recv_empty_chan, NULL), 0);
    assert_checks_passed();
}

static int send_full_chan(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 1);
    REQUIRE(c != NULL);
    int v = 1;
    CHECK_EQ(wv_chan_send(c, &v), 0);
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_chan_send(c, &v), at);
    wv_deadline_set(old);
    CHECK_EQ(wv_chan_len(c), 1);
    wv_chan_free(c);
    return 0;
}

static void test_fiber_deadline_applies_to_chan_send_on_a_full_channel(void **state)
{
    assert_int_equal(run_in_rt(1, send_full_chan, NULL), 0);
    assert_checks_passed();
}

static int select_nothing_ready(void *arg)
{
    wv_chan *a = wv_chan_new(sizeof(int), 1);
    wv_chan *b = wv_chan_new(sizeof(int), 1);
    REQUIRE(a != NULL && b != NULL);
    int va = 0, vb = 0;
    wv_select_case cases[] = {{a, WV_RECV, &va, 99}, {b, WV_RECV, &vb, 99}};
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_chan_select(cases, 2, WV_NEVER), at);
    wv_deadline_set(old);
    wv_chan_free(a);
    wv_chan_free(b);
    return 0;
}

static void test_fiber_deadline_applies_to_select(void **state)
{
    assert_int_equal(run_in_rt(1, select_nothing_ready, NULL), 0);
    assert_checks_passed();
}

static int lock_held_mutex(void *arg)
{
    wv_mutex m = {0};
    wv_event release = {0};
    holder h = {&m, &release};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, hold_until_released, &h, NULL), 0);
    CHECK_EQ(wv_yield(), 0); /* the holder takes the mutex */
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_mutex_lock(&m), at);
    wv_deadline_set(old);
    wv_event_set(&release);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    return 0;
}

static void test_fiber_deadline_applies_to_mutex_lock(void **state)
{
    assert_int_equal(run_in_rt(1, lock_held_mutex, NULL), 0);
    assert_checks_passed();
}

static int cond_wait_unsignalled(void *arg)
{
    wv_mutex m = {0};
    wv_cond c = {0};
    CHECK_EQ(wv_mutex_lock(&m), 0);
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_cond_wait(&c, &m), at);
    wv_deadline_set(old);
    CHECK_EQ(wv_mutex_trylock(&m), -EBUSY); /* held again after the timeout */
    wv_mutex_unlock(&m);
    CHECK_EQ(wv_mutex_trylock(&m), 0);
    wv_mutex_unlock(&m);
    return 0;
}

static void test_fiber_deadline_applies_to_cond_wait(void **state)
{
    assert_int_equal(run_in_rt(1, cond_wait_unsignalled, NULL), 0);
    assert_checks_passed();
}

static int event_wait_unset(void *arg)
{
    wv_event e = {0};
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_event_wait(&e), at);
    wv_deadline_set(old);
    return 0;
}

static void test_fiber_deadline_applies_to_event_wait(void **state)
{
    assert_int_equal(run_in_rt(1, event_wait_unset, NULL), 0);
    assert_checks_passed();
}

static int waitgroup_wait_pending(void *arg)
{
    wv_waitgroup wg = {0};
    wv_waitgroup_add(&wg, 1);
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_waitgroup_wait(&wg), at);
    wv_deadline_set(old);
    wv_waitgroup_done(&wg);
    CHECK_EQ(wv_waitgroup_wait(&wg), 0);
    return 0;
}

static void test_fiber_deadline_applies_to_waitgroup_wait(void **state)
{
    assert_int_equal(run_in_rt(1, waitgroup_wait_pending, NULL), 0);
    assert_checks_passed();
}

static int stop_wait_without_stop(void *arg)
{
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_stop_wait(), at);
    wv_deadline_set(old);
    return 0;
}

static void test_fiber_deadline_applies_to_stop_wait(void **state)
{
    assert_int_equal(run_in_rt(1, stop_wait_without_stop, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ get / set */

static int child_reports_deadline(void *arg)
{
    *(int64_t *)arg = wv_deadline();
    return 0;
}

static int deadline_set_returns_previous(void *arg)
{
    CHECK_EQ(wv_deadline(), WV_NEVER);
    int64_t a = wv_after_ms(20);
    CHECK_EQ(wv_deadline_set(a), WV_NEVER);
    CHECK_EQ(wv_deadline(), a);
    int64_t b = wv_after_ms(5000);
    CHECK_EQ(wv_deadline_set(b), a);
    CHECK_EQ(wv_deadline_set(a), b);
    CHECK_EQ(wv_deadline_set(WV_NEVER), a);
    CHECK_EQ(wv_deadline(), WV_NEVER);
    /* Restored: a sleep past where `a` was is not cut short. */
    CHECK_EQ(wv_sleep_ms(40), 0);
    return 0;
}

static void test_deadline_set_returns_previous_and_restoring_it_works(void **state)
{
    assert_int_equal(run_in_rt(1, deadline_set_returns_previous, NULL), 0);
    assert_checks_passed();
}

static int new_fiber_has_no_deadline(void *arg)
{
    int64_t seen = 0;
    CHECK_EQ(wv_spawn(child_reports_deadline, &seen, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(seen, WV_NEVER);
    return 0;
}

static void test_new_fiber_starts_without_a_deadline(void **state)
{
    assert_int_equal(run_in_rt(1, new_fiber_has_no_deadline, NULL), 0);
    assert_checks_passed();
}

static int timeout_not_sticky(void *arg)
{
    int64_t old = wv_deadline_set(wv_after_ms(10));
    CHECK_EQ(wv_sleep_ms(1000), -ETIMEDOUT);
    CHECK(!wv_cancelled());
    wv_deadline_set(old);
    CHECK_EQ(wv_sleep_ms(1), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(wv_check(), 0);
    return 0;
}

static void test_timeout_does_not_cancel_the_fiber(void **state)
{
    assert_int_equal(run_in_rt(1, timeout_not_sticky, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ the earlier wins */

static int fd_wait_explicit_earlier(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    int64_t fiber_at = wv_after_ms(10000);
    int64_t old = wv_deadline_set(fiber_at);
    int64_t at = wv_after_ms(30);
    CHECK_TIMED_OUT(wv_fd_wait(sv[0], WV_IN, at), at);
    CHECK_EQ(wv_deadline(), fiber_at); /* the fiber's own is untouched */
    wv_deadline_set(old);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_fd_wait_deadline_earlier_than_the_fiber_deadline_wins(void **state)
{
    assert_int_equal(run_in_rt(1, fd_wait_explicit_earlier, NULL), 0);
    assert_checks_passed();
}

static int fd_wait_fiber_earlier(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_fd_wait(sv[0], WV_IN, wv_after_ms(10000)), at);
    wv_deadline_set(old);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_fiber_deadline_earlier_than_the_fd_wait_deadline_wins(void **state)
{
    assert_int_equal(run_in_rt(1, fd_wait_fiber_earlier, NULL), 0);
    assert_checks_passed();
}

static int recv_until_explicit_earlier(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 1);
    REQUIRE(c != NULL);
    int v = 0;
    int64_t old = wv_deadline_set(wv_after_ms(10000));
    int64_t at = wv_after_ms(30);
    CHECK_TIMED_OUT(wv_chan_recv_until(c, &v, at), at);
    wv_deadline_set(old);
    wv_chan_free(c);
    return 0;
}

static void test_chan_recv_until_deadline_earlier_than_the_fiber_deadline_wins(void **state)
{
    assert_int_equal(run_in_rt(1, recv_until_explicit_earlier, NULL), 0);
    assert_checks_passed();
}

static int recv_until_fiber_earlier(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 1);
    REQUIRE(c != NULL);
    int v = 0;
    int64_t at = wv_after_ms(30);
    int64_t old = wv_deadline_set(at);
    CHECK_TIMED_OUT(wv_chan_recv_until(c, &v, wv_after_ms(10000)), at);
    wv_deadline_set(old);
    wv_chan_free(c);
    return 0;
}

static void test_fiber_deadline_earlier_than_the_recv_until_deadline_wins(void **state)
{
    assert_int_equal(run_in_rt(1, recv_until_fiber_earlier, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ wv_check, the past */

static int check_before_and_after(void *arg)
{
    CHECK_EQ(wv_check(), 0);
    int64_t at = wv_after_ms(5);
    int64_t old = wv_deadline_set(at);
    CHECK_EQ(wv_check(), 0);
    while (wv_now() <= at) {
        /* a long computation that never suspends */
    }
    CHECK_EQ(wv_check(), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_EQ(wv_check(), 0);
    return 0;
}

static void test_check_returns_etimedout_only_once_the_deadline_passed(void **state)
{
    assert_int_equal(run_in_rt(1, check_before_and_after, NULL), 0);
    assert_checks_passed();
}

static int calls_with_past_deadline(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    wv_chan *c = wv_chan_new(sizeof(int), 1);
    REQUIRE(c != NULL);
    wv_mutex m = {0};
    wv_event release = {0};
    holder h = {&m, &release};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, hold_until_released, &h, NULL), 0);
    CHECK_EQ(wv_yield(), 0);

    int64_t t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(-1));
    int v;
    char buf[8];
    CHECK_EQ(wv_sleep_ms(10000), -ETIMEDOUT);
    CHECK_EQ(wv_chan_recv(c, &v), -ETIMEDOUT);
    CHECK_EQ(wv_fd_wait(sv[0], WV_IN, WV_NEVER), -ETIMEDOUT);
    CHECK_EQ(wv_read(sv[0], buf, sizeof(buf)), -ETIMEDOUT);
    CHECK_EQ(wv_mutex_lock(&m), -ETIMEDOUT);
    CHECK_EQ(wv_event_wait(&release), -ETIMEDOUT);
    CHECK_EQ(wv_check(), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK(ms_since(t0) < 1000);

    wv_event_set(&release);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_chan_free(c);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_past_deadline_fails_suspending_calls_without_waiting(void **state)
{
    assert_int_equal(run_in_rt(1, calls_with_past_deadline, NULL), 0);
    assert_checks_passed();
}

static int fd_wait_explicit_past(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    int64_t t0 = wv_now();
    CHECK_EQ(wv_fd_wait(sv[0], WV_IN, wv_now() - 1000 * NS_PER_MS), -ETIMEDOUT);
    CHECK(ms_since(t0) < 1000);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_fd_wait_with_a_past_deadline_returns_etimedout_at_once(void **state)
{
    assert_int_equal(run_in_rt(1, fd_wait_explicit_past, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ usable afterwards */

static int fd_wait_again_after_timeout(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    CHECK_EQ(wv_fd_wait(sv[0], WV_IN, wv_after_ms(10)), -ETIMEDOUT);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    int r = wv_fd_wait(sv[0], WV_IN, wv_after_ms(2000));
    CHECK(r > 0 && (r & WV_IN));
    char ch = 0;
    CHECK_EQ(wv_read(sv[0], &ch, 1), 1);
    CHECK_EQ(ch, 'x');
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_fd_wait_after_a_timeout_can_wait_again(void **state)
{
    assert_int_equal(run_in_rt(1, fd_wait_again_after_timeout, NULL), 0);
    assert_checks_passed();
}

static int send_7(void *arg)
{
    int v = 7;
    return wv_chan_send(arg, &v);
}

static int recv_after_timeout(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 0); /* rendezvous */
    REQUIRE(c != NULL);
    int v = 0;
    CHECK_EQ(wv_chan_recv_until(c, &v, wv_after_ms(10)), -ETIMEDOUT);
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, send_7, c, NULL), 0);
    /* The sender must hand off to this receiver, not to the one that left. */
    CHECK_EQ(wv_chan_recv_until(c, &v, wv_after_ms(2000)), 0);
    CHECK_EQ(v, 7);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_chan_free(c);
    return 0;
}

static void test_chan_recv_after_a_timeout_still_gets_the_next_element(void **state)
{
    assert_int_equal(run_in_rt(1, recv_after_timeout, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------ a wait that ended early */

typedef struct later_send {
    wv_chan *c;
    int64_t delay_ms;
    int v;
} later_send;

static int send_after(void *arg)
{
    later_send *ls = arg;
    wv_sleep_ms(ls->delay_ms);
    return wv_chan_send(ls->c, &ls->v);
}

/* A wait with a deadline ends early (its timer is left armed, to be re-armed
 * in place by the next wait); the next wait has no deadline: the old
 * deadline passing must not end it. */
static int early_then_untimed(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 0);
    REQUIRE(c != NULL);
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    later_send first = {c, 5, 1}, second = {c, 150, 2};
    CHECK_EQ(wv_group_spawn(g, send_after, &first, NULL), 0);
    int v = 0;
    CHECK_EQ(wv_chan_recv_until(c, &v, wv_after_ms(40)), 0);
    CHECK_EQ(v, 1);
    CHECK_EQ(wv_group_spawn(g, send_after, &second, NULL), 0);
    int64_t t0 = wv_now();
    CHECK_EQ(wv_chan_recv(c, &v), 0); /* no deadline: past the 40 ms one */
    CHECK_EQ(v, 2);
    CHECK_BETWEEN(wv_now() - t0, 100 * NS_PER_MS, 2000 * NS_PER_MS);
    /* and a later wait with a deadline still times out at its own */
    int64_t at = wv_after_ms(30);
    CHECK_TIMED_OUT(wv_chan_recv_until(c, &v, at), at);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_chan_free(c);
    return 0;
}

static void test_deadline_of_a_wait_that_ended_early_does_not_end_a_later_untimed_wait(void **state)
{
    assert_int_equal(run_in_rt(1, early_then_untimed, NULL), 0);
    assert_checks_passed();
}

/* The same deadline over many waits (a request head arriving in pieces):
 * each piece ends a wait early, the deadline still ends the last one. */
static int same_deadline_many_waits(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    int64_t at = wv_after_ms(60);
    int64_t old = wv_deadline_set(at);
    char b;
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(write(sv[1], "x", 1), 1);
        CHECK_EQ(wv_read(sv[0], &b, 1), 1);
    }
    CHECK_TIMED_OUT(wv_read(sv[0], &b, 1), at);
    wv_deadline_set(old);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_one_deadline_over_many_early_waits_still_ends_the_last(void **state)
{
    assert_int_equal(run_in_rt(1, same_deadline_many_waits, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ the clock */

static void test_after_ms_saturates_at_never_and_goes_back_for_negative(void **state)
{
    assert_true(wv_after_ms(INT64_MAX) == WV_NEVER);
    assert_true(wv_after_ms(INT64_MAX / 1000) == WV_NEVER);
    int64_t before = wv_now();
    assert_true(wv_after_ms(-10) < before);
    int64_t at = wv_after_ms(100);
    int64_t after = wv_now();
    assert_true(at >= before + 100 * NS_PER_MS);
    assert_true(at <= after + 100 * NS_PER_MS);
}

static void test_now_is_monotonic(void **state)
{
    int64_t prev = wv_now();
    assert_true(prev > 0);
    for (int i = 0; i < 10000; i++) {
        int64_t t = wv_now();
        assert_true(t >= prev);
        prev = t;
    }
}

/* wv_now_coarse: the pass's clock, never ahead of the real one, moving
 * on once the loop polls again. */
static int coarse_clock(void *arg)
{
    int64_t c0 = wv_now_coarse();
    CHECK(c0 <= wv_now());
    int64_t spin = wv_now() + 5 * NS_PER_MS; /* no poll while this runs */
    while (wv_now() < spin) {
    }
    CHECK_EQ(wv_now_coarse(), c0);
    CHECK_EQ(wv_sleep_ms(2), 0);
    int64_t c1 = wv_now_coarse();
    CHECK(c1 >= c0 + 5 * NS_PER_MS);
    CHECK(c1 <= wv_now());
    /* a deadline the pass's clock has not seen pass still ends the wait */
    int64_t old = wv_deadline_set(wv_now() + NS_PER_MS);
    spin = wv_now() + 3 * NS_PER_MS;
    while (wv_now() < spin) {
    }
    int64_t t0 = wv_now();
    CHECK_EQ(wv_sleep_ms(1000), -ETIMEDOUT);
    CHECK(ms_since(t0) < 100);
    wv_deadline_set(old);
    return 0;
}

static void test_coarse_clock_is_the_passs_and_deadlines_still_end_waits(void **state)
{
    assert_int_equal(run_in_rt(1, coarse_clock, NULL), 0);
    int64_t a = wv_now(), c = wv_now_coarse(), b = wv_now();
    assert_true(a <= c && c <= b); /* outside the runtime: wv_now() */
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadline_fires_while_reading_a_silent_socket),
        cmocka_unit_test(test_a_wait_ended_by_the_fiber_deadline_says_so),
        cmocka_unit_test(test_fd_wait_returns_etimedout_at_its_deadline),
        cmocka_unit_test(test_fiber_deadline_applies_to_fd_wait_without_deadline),
        cmocka_unit_test(test_fiber_deadline_applies_to_write_on_a_full_socket),
        cmocka_unit_test(test_fiber_deadline_applies_to_accept),
        cmocka_unit_test(test_fiber_deadline_applies_to_sleep),
        cmocka_unit_test(test_fiber_deadline_applies_to_chan_recv),
        cmocka_unit_test(test_fiber_deadline_applies_to_chan_send_on_a_full_channel),
        cmocka_unit_test(test_fiber_deadline_applies_to_select),
        cmocka_unit_test(test_fiber_deadline_applies_to_mutex_lock),
        cmocka_unit_test(test_fiber_deadline_applies_to_cond_wait),
        cmocka_unit_test(test_fiber_deadline_applies_to_event_wait),
        cmocka_unit_test(test_fiber_deadline_applies_to_waitgroup_wait),
        cmocka_unit_test(test_fiber_deadline_applies_to_stop_wait),
        cmocka_unit_test(test_deadline_set_returns_previous_and_restoring_it_works),
        cmocka_unit_test(test_new_fiber_starts_without_a_deadline),
        cmocka_unit_test(test_timeout_does_not_cancel_the_fiber),
        cmocka_unit_test(test_fd_wait_deadline_earlier_than_the_fiber_deadline_wins),
        cmocka_unit_test(test_fiber_deadline_earlier_than_the_fd_wait_deadline_wins),
        cmocka_unit_test(test_chan_recv_until_deadline_earlier_than_the_fiber_deadline_wins),
        cmocka_unit_test(test_fiber_deadline_earlier_than_the_recv_until_deadline_wins),
        cmocka_unit_test(test_check_returns_etimedout_only_once_the_deadline_passed),
        cmocka_unit_test(test_past_deadline_fails_suspending_calls_without_waiting),
        cmocka_unit_test(test_fd_wait_with_a_past_deadline_returns_etimedout_at_once),
        cmocka_unit_test(test_fd_wait_after_a_timeout_can_wait_again),
        cmocka_unit_test(test_chan_recv_after_a_timeout_still_gets_the_next_element),
        cmocka_unit_test(
            test_deadline_of_a_wait_that_ended_early_does_not_end_a_later_untimed_wait),
        cmocka_unit_test(test_one_deadline_over_many_early_waits_still_ends_the_last),
        cmocka_unit_test(test_after_ms_saturates_at_never_and_goes_back_for_negative),
        cmocka_unit_test(test_now_is_monotonic),
        cmocka_unit_test(test_coarse_clock_is_the_passs_and_deadlines_still_end_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
