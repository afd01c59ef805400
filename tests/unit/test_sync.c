/*
 * Fiber synchronisation on one shard: mutex (mutual exclusion, FIFO
 * hand-off, trylock, timeouts, -EDEADLK), condition variable (signal,
 * broadcast, re-taking the mutex even when cancelled), event and wait group.
 */
#include "harness.h"

/* ------------------------------------------------------------ mutex */

typedef struct shared_counter {
    wv_mutex m;
    int value;
    int inside, max_inside;
} shared_counter;

static int increment_100_times(void *arg)
{
    shared_counter *s = arg;
    for (int i = 0; i < 100; i++) {
        if (wv_mutex_lock(&s->m) != 0)
            return -EIO;
        s->inside++;
        if (s->inside > s->max_inside)
            s->max_inside = s->inside;
        int v = s->value;
        CHECK_EQ(wv_yield(), 0); /* others run while we hold the lock */
        s->value = v + 1;
        s->inside--;
        wv_mutex_unlock(&s->m);
        if (i % 7 == 0)
            CHECK_EQ(wv_yield(), 0);
    }
    return 0;
}

static int mutual_exclusion(void *arg)
{
    shared_counter s;
    memset(&s, 0, sizeof(s));
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(wv_group_spawn(g, increment_100_times, &s, NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(s.value, 1000);
    CHECK_EQ(s.max_inside, 1);
    wv_group_free(g);
    return 0;
}

static void test_mutex_excludes_fibers_that_yield_while_holding_it(void **state)
{
    assert_int_equal(run_in_rt(1, mutual_exclusion, NULL), 0);
    assert_checks_passed();
}

typedef struct queue_entry {
    wv_mutex *m;
    char *order;
    int *n;
    char tag;
} queue_entry;

static int lock_and_log(void *arg)
{
    queue_entry *q = arg;
    if (wv_mutex_lock(q->m) != 0)
        return -EIO;
    q->order[(*q->n)++] = q->tag;
    CHECK_EQ(wv_yield(), 0);
    wv_mutex_unlock(q->m);
    return 0;
}

static int fifo_handoff(void *arg)
{
    wv_mutex m = {0};
    char order[8] = {0};
    int n = 0;
    queue_entry q[5];
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_mutex_lock(&m), 0);
    for (int i = 0; i < 5; i++) {
        q[i] = (queue_entry){&m, order, &n, (char)('a' + i)};
        CHECK_EQ(wv_group_spawn(g, lock_and_log, &q[i], NULL), 0);
    }
    CHECK_EQ(wv_yield(), 0); /* all five queue up, in spawn order */
    wv_mutex_unlock(&m);
    /* Hand-off: the lock now belongs to the first waiter, so no barging. */
    CHECK_EQ(wv_mutex_trylock(&m), -EBUSY);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_STR_EQ(order, "abcde");
    CHECK_EQ(wv_mutex_trylock(&m), 0);
    wv_mutex_unlock(&m);
    wv_group_free(g);
    return 0;
}

static void test_mutex_is_handed_to_waiters_in_fifo_order(void **state)
{
    assert_int_equal(run_in_rt(1, fifo_handoff, NULL), 0);
    assert_checks_passed();
}

typedef struct holder {
    wv_mutex *m;
    wv_event *release;
} holder;

static int hold_until_released(void *arg)
{
    holder *h = arg;
    if (wv_mutex_lock(h->m) != 0)
        return -EIO;
    int r = wv_event_wait(h->release);
    wv_mutex_unlock(h->m);
    return r;
}

static int trylock_busy(void *arg)
{
    wv_mutex m = {0};
    wv_event release = {0};
    holder h = {&m, &release};
    CHECK_EQ(wv_mutex_trylock(&m), 0);
    wv_mutex_unlock(&m);
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, hold_until_released, &h, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(wv_mutex_trylock(&m), -EBUSY);
    wv_event_set(&release);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(wv_mutex_trylock(&m), 0);
    wv_mutex_unlock(&m);
    wv_group_free(g);
    return 0;
}

static void test_mutex_trylock_returns_ebusy_while_another_fiber_holds_it(void **state)
{
    assert_int_equal(run_in_rt(1, trylock_busy, NULL), 0);
    assert_checks_passed();
}

typedef struct second_waiter {
    wv_mutex *m;
    int result;
} second_waiter;

static int lock_record_unlock(void *arg)
{
    second_waiter *w = arg;
    w->result = wv_mutex_lock(w->m);
    if (w->result == 0)
        wv_mutex_unlock(w->m);
    return 0;
}

static int lock_timeout(void *arg)
{
    wv_mutex m = {0};
    wv_event release = {0};
    holder h = {&m, &release};
    second_waiter w = {&m, 1};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, hold_until_released, &h, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    int64_t at = wv_after_ms(20);
    int64_t old = wv_deadline_set(at);
    CHECK_EQ(wv_mutex_lock(&m), -ETIMEDOUT);
    CHECK(wv_now() >= at);
    wv_deadline_set(old);
    /* A waiter queued behind the one that timed out still gets the lock. */
    CHECK_EQ(wv_group_spawn(g, lock_record_unlock, &w, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    wv_event_set(&release);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(w.result, 0);
    /* And the mutex is free again: the timed-out fiber does not own it. */
    CHECK_EQ(wv_mutex_trylock(&m), 0);
    wv_mutex_unlock(&m);
    CHECK_EQ(wv_mutex_lock(&m), 0);
    wv_mutex_unlock(&m);
    wv_group_free(g);
    return 0;
}

static void test_mutex_lock_timeout_returns_etimedout_and_leaves_the_mutex_usable(void **state)
{
    assert_int_equal(run_in_rt(1, lock_timeout, NULL), 0);
    assert_checks_passed();
}

static int relock(void *arg)
{
    wv_mutex m = {0};
    CHECK_EQ(wv_mutex_lock(&m), 0);
    CHECK_EQ(wv_mutex_lock(&m), -EDEADLK);
    wv_mutex_unlock(&m);
    CHECK_EQ(wv_mutex_trylock(&m), 0);
    wv_mutex_unlock(&m);
    return 0;
}

static void test_mutex_lock_by_its_owner_returns_edeadlk(void **state)
{
    assert_int_equal(run_in_rt(1, relock, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ cond */

typedef struct cond_state {
    wv_mutex m;
    wv_cond c;
    int ready; /* the predicate */
    int woken;
    int results[8];
    int held_after[8];
} cond_state;

typedef struct cond_waiter {
    cond_state *s;
    int index;
} cond_waiter;

static int wait_for_ready(void *arg)
{
    cond_waiter *w = arg;
    cond_state *s = w->s;
    if (wv_mutex_lock(&s->m) != 0)
        return -EIO;
    int r = 0;
    while (!s->ready && r == 0)
        r = wv_cond_wait(&s->c, &s->m);
    s->results[w->index] = r;
    s->held_after[w->index] = wv_mutex_trylock(&s->m); /* -EBUSY: we hold it */
    s->woken++;
    if (s->ready > 0)
        s->ready--; /* consume one */
    wv_mutex_unlock(&s->m);
    return 0;
}

static int signal_wakes_one(void *arg)
{
    cond_state s;
    memset(&s, 0, sizeof(s));
    cond_waiter w[3];
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 3; i++) {
        w[i] = (cond_waiter){&s, i};
        CHECK_EQ(wv_group_spawn(g, wait_for_ready, &w[i], NULL), 0);
    }
    CHECK_EQ(wv_sleep_ms(2), 0);
    CHECK_EQ(s.woken, 0);
    for (int k = 1; k <= 3; k++) {
        CHECK_EQ(wv_mutex_lock(&s.m), 0);
        s.ready++;
        wv_cond_signal(&s.c);
        wv_mutex_unlock(&s.m);
        CHECK_EQ(wv_sleep_ms(2), 0);
        CHECK_EQ(s.woken, k); /* exactly one more */
    }
    CHECK_EQ(wv_group_join(g), 0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(s.results[i], 0);
        CHECK_EQ(s.held_after[i], -EBUSY);
    }
    wv_group_free(g);
    return 0;
}

static void test_cond_signal_wakes_exactly_one_waiter_with_the_mutex_held(void **state)
{
    assert_int_equal(run_in_rt(1, signal_wakes_one, NULL), 0);
    assert_checks_passed();
}

static int broadcast_wakes_all(void *arg)
{
    cond_state s;
    memset(&s, 0, sizeof(s));
    cond_waiter w[5];
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 5; i++) {
        w[i] = (cond_waiter){&s, i};
        CHECK_EQ(wv_group_spawn(g, wait_for_ready, &w[i], NULL), 0);
    }
    CHECK_EQ(wv_sleep_ms(2), 0);
    CHECK_EQ(s.woken, 0);
    CHECK_EQ(wv_mutex_lock(&s.m), 0);
    s.ready = 5;
    wv_cond_broadcast(&s.c);
    wv_mutex_unlock(&s.m);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(s.woken, 5);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(s.results[i], 0);
        CHECK_EQ(s.held_after[i], -EBUSY);
    }
    wv_group_free(g);
    return 0;
}

static void test_cond_broadcast_wakes_every_waiter(void **state)
{
    assert_int_equal(run_in_rt(1, broadcast_wakes_all, NULL), 0);
    assert_checks_passed();
}

static int signal_not_remembered(void *arg)
{
    wv_mutex m = {0};
    wv_cond c = {0};
    wv_cond_signal(&c);
    wv_cond_broadcast(&c);
    CHECK_EQ(wv_mutex_lock(&m), 0);
    int64_t old = wv_deadline_set(wv_after_ms(10));
    CHECK_EQ(wv_cond_wait(&c, &m), -ETIMEDOUT);
    wv_deadline_set(old);
    wv_mutex_unlock(&m);
    return 0;
}

static void test_cond_signal_without_waiters_is_not_remembered(void **state)
{
    assert_int_equal(run_in_rt(1, signal_not_remembered, NULL), 0);
    assert_checks_passed();
}

typedef struct cancelled_cond {
    wv_mutex m;
    wv_cond c;
    int waiting, result, returned, held_after;
} cancelled_cond;

static int cond_wait_until_cancelled(void *arg)
{
    cancelled_cond *s = arg;
    if (wv_mutex_lock(&s->m) != 0)
        return -EIO;
    s->waiting = 1;
    s->result = wv_cond_wait(&s->c, &s->m);
    s->returned = 1;
    s->held_after = wv_mutex_trylock(&s->m);
    wv_mutex_unlock(&s->m);
    return 0;
}

static int cond_cancel_retakes_mutex(void *arg)
{
    cancelled_cond s;
    memset(&s, 0, sizeof(s));
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, cond_wait_until_cancelled, &s, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(s.waiting, 1);
    /* Take the mutex the waiter released, then cancel it: it must not
     * return until it has the mutex back. */
    CHECK_EQ(wv_mutex_lock(&s.m), 0);
    wv_group_cancel(g);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(wv_sleep_ms(2), 0);
    CHECK_EQ(s.returned, 0);
    wv_mutex_unlock(&s.m);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(s.returned, 1);
    CHECK_EQ(s.result, -ECANCELED);
    CHECK_EQ(s.held_after, -EBUSY);
    CHECK_EQ(wv_mutex_trylock(&s.m), 0);
    wv_mutex_unlock(&s.m);
    wv_group_free(g);
    return 0;
}

static void test_cond_wait_returns_with_the_mutex_held_even_when_cancelled(void **state)
{
    assert_int_equal(run_in_rt(1, cond_cancel_retakes_mutex, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ event */

typedef struct event_waiter {
    wv_event *e;
    int result;
    int done;
} event_waiter;

static int wait_event_record(void *arg)
{
    event_waiter *w = arg;
    w->result = wv_event_wait(w->e);
    w->done = 1;
    return 0;
}

static int set_wakes_all(void *arg)
{
    wv_event e = {0};
    event_waiter w[6];
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 6; i++) {
        w[i] = (event_waiter){&e, 1, 0};
        CHECK_EQ(wv_group_spawn(g, wait_event_record, &w[i], NULL), 0);
    }
    CHECK_EQ(wv_sleep_ms(2), 0);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(w[i].done, 0);
    CHECK(!wv_event_is_set(&e));
    wv_event_set(&e);
    CHECK(wv_event_is_set(&e));
    CHECK_EQ(wv_group_join(g), 0);
    for (int i = 0; i < 6; i++) {
        CHECK_EQ(w[i].done, 1);
        CHECK_EQ(w[i].result, 0);
    }
    wv_group_free(g);
    return 0;
}

static void test_event_set_wakes_every_waiter(void **state)
{
    assert_int_equal(run_in_rt(1, set_wakes_all, NULL), 0);
    assert_checks_passed();
}

static int set_flag(void *arg)
{
    *(int *)arg = 1;
    return 0;
}

static int wait_on_set_event(void *arg)
{
    wv_event e = {0};
    wv_event_set(&e);
    int other_ran = 0;
    CHECK_EQ(wv_spawn(set_flag, &other_ran, NULL), 0);
    CHECK_EQ(wv_event_wait(&e), 0);
    CHECK_EQ(other_ran, 0); /* returned without suspending */
    CHECK_EQ(wv_event_wait(&e), 0);
    CHECK(wv_event_is_set(&e)); /* waiting does not consume it */
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(other_ran, 1);
    return 0;
}

static void test_event_wait_on_a_set_event_returns_at_once(void **state)
{
    assert_int_equal(run_in_rt(1, wait_on_set_event, NULL), 0);
    assert_checks_passed();
}

static int clear_event(void *arg)
{
    wv_event e = {0};
    wv_event_set(&e);
    wv_event_clear(&e);
    CHECK(!wv_event_is_set(&e));
    int64_t old = wv_deadline_set(wv_after_ms(10));
    CHECK_EQ(wv_event_wait(&e), -ETIMEDOUT);
    wv_deadline_set(old);
    wv_event_set(&e);
    CHECK_EQ(wv_event_wait(&e), 0);
    return 0;
}

static void test_event_clear_makes_waiters_wait_again(void **state)
{
    assert_int_equal(run_in_rt(1, clear_event, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ waitgroup */

typedef struct wg_worker {
    wv_waitgroup *wg;
    int ms;
    int *finished;
} wg_worker;

static int work_then_done(void *arg)
{
    wg_worker *w = arg;
    int r = wv_sleep_ms(w->ms);
    (*w->finished)++;
    wv_waitgroup_done(w->wg);
    return r;
}

static int waitgroup_waits(void *arg)
{
    wv_waitgroup wg = {0};
    int finished = 0;
    wg_worker w[5];
    wv_waitgroup_add(&wg, 5);
    for (int i = 0; i < 5; i++) {
        w[i] = (wg_worker){&wg, 1 + 2 * i, &finished};
        CHECK_EQ(wv_spawn(work_then_done, &w[i], NULL), 0);
    }
    CHECK_EQ(wv_waitgroup_wait(&wg), 0);
    CHECK_EQ(finished, 5);
    return 0;
}

static void test_waitgroup_wait_returns_once_every_worker_is_done(void **state)
{
    assert_int_equal(run_in_rt(1, waitgroup_waits, NULL), 0);
    assert_checks_passed();
}

static int waitgroup_zero(void *arg)
{
    wv_waitgroup wg = {0};
    int other_ran = 0;
    CHECK_EQ(wv_spawn(set_flag, &other_ran, NULL), 0);
    CHECK_EQ(wv_waitgroup_wait(&wg), 0);
    CHECK_EQ(other_ran, 0);
    wv_waitgroup_add(&wg, 2);
    wv_waitgroup_done(&wg);
    wv_waitgroup_done(&wg);
    CHECK_EQ(wv_waitgroup_wait(&wg), 0);
    CHECK_EQ(other_ran, 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(other_ran, 1);
    return 0;
}

static void test_waitgroup_wait_at_zero_returns_at_once(void **state)
{
    assert_int_equal(run_in_rt(1, waitgroup_zero, NULL), 0);
    assert_checks_passed();
}

typedef struct wg_waiter {
    wv_waitgroup *wg;
    int result;
    int done;
} wg_waiter;

static int wait_wg_record(void *arg)
{
    wg_waiter *w = arg;
    w->result = wv_waitgroup_wait(w->wg);
    w->done = 1;
    return 0;
}

static int waitgroup_many_waiters(void *arg)
{
    wv_waitgroup wg = {0};
    wv_waitgroup_add(&wg, 2);
    wg_waiter w[4];
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 4; i++) {
        w[i] = (wg_waiter){&wg, 1, 0};
        CHECK_EQ(wv_group_spawn(g, wait_wg_record, &w[i], NULL), 0);
    }
    CHECK_EQ(wv_yield(), 0);
    wv_waitgroup_done(&wg);
    CHECK_EQ(wv_sleep_ms(2), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(w[i].done, 0); /* still one to go */
    wv_waitgroup_done(&wg);
    CHECK_EQ(wv_group_join(g), 0);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(w[i].result, 0);
    wv_group_free(g);
    return 0;
}

static void test_waitgroup_reaching_zero_wakes_every_waiter(void **state)
{
    assert_int_equal(run_in_rt(1, waitgroup_many_waiters, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mutex_excludes_fibers_that_yield_while_holding_it),
        cmocka_unit_test(test_mutex_is_handed_to_waiters_in_fifo_order),
        cmocka_unit_test(test_mutex_trylock_returns_ebusy_while_another_fiber_holds_it),
        cmocka_unit_test(test_mutex_lock_timeout_returns_etimedout_and_leaves_the_mutex_usable),
        cmocka_unit_test(test_mutex_lock_by_its_owner_returns_edeadlk),
        cmocka_unit_test(test_cond_signal_wakes_exactly_one_waiter_with_the_mutex_held),
        cmocka_unit_test(test_cond_broadcast_wakes_every_waiter),
        cmocka_unit_test(test_cond_signal_without_waiters_is_not_remembered),
        cmocka_unit_test(test_cond_wait_returns_with_the_mutex_held_even_when_cancelled),
        cmocka_unit_test(test_event_set_wakes_every_waiter),
        cmocka_unit_test(test_event_wait_on_a_set_event_returns_at_once),
        cmocka_unit_test(test_event_clear_makes_waiters_wait_again),
        cmocka_unit_test(test_waitgroup_wait_returns_once_every_worker_is_done),
        cmocka_unit_test(test_waitgroup_wait_at_zero_returns_at_once),
        cmocka_unit_test(test_waitgroup_reaching_zero_wakes_every_waiter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
