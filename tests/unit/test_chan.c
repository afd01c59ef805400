/*
 * Channels: FIFO order, blocking when full / empty, rendezvous hand-off,
 * unbounded growth, close semantics (waking every waiter, draining the
 * buffer first), the non-blocking forms, receive with deadline, select, and
 * elements of odd sizes.
 */
#include "harness.h"

/* ------------------------------------------------------------ helpers */

typedef struct sender {
    wv_chan *c;
    int first, n; /* sends first, first+1, ... first+n-1 */
    int sent;     /* how many sends returned 0 */
    int result;   /* of the last send */
} sender;

static int send_values(void *arg)
{
    sender *s = arg;
    for (int i = 0; i < s->n; i++) {
        int v = s->first + i;
        s->result = wv_chan_send(s->c, &v);
        if (s->result != 0)
            return 0; /* recorded; -EPIPE is expected in some tests */
        s->sent++;
    }
    return 0;
}

static int set_flag_fiber(void *arg)
{
    *(int *)arg = 1;
    return 0;
}

typedef struct receiver {
    wv_chan *c;
    int value;
    int result;
    int done;
} receiver;

static int recv_one(void *arg)
{
    receiver *r = arg;
    r->result = wv_chan_recv(r->c, &r->value);
    r->done = 1;
    return 0; /* -EPIPE is expected in some tests; not a group failure */
}

typedef struct delayed {
    wv_chan *c;
    int ms;
    int value;
} delayed;

static int send_after(void *arg)
{
    delayed *d = arg;
    if (wv_sleep_ms(d->ms) != 0)
        return -EIO;
    return wv_chan_send(d->c, &d->value);
}

static int recv_after(void *arg)
{
    delayed *d = arg;
    if (wv_sleep_ms(d->ms) != 0)
        return -EIO;
    return wv_chan_recv(d->c, &d->value);
}

static int close_after(void *arg)
{
    delayed *d = arg;
    if (wv_sleep_ms(d->ms) != 0)
        return -EIO;
    wv_chan_close(d->c);
    return 0;
}

/* ------------------------------------------------------------ order, blocking */

static int bounded_fifo(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 4);
    REQUIRE(c != NULL);
    int next_send = 0, next_recv = 0;
    /* Fill and drain in uneven steps so the buffer wraps around. */
    for (int round = 0; round < 50; round++) {
        int k = 1 + round % 4;
        for (int i = 0; i < k; i++, next_send++)
            CHECK_EQ(wv_chan_send(c, &next_send), 0);
        CHECK_EQ(wv_chan_len(c), (size_t)k);
        for (int i = 0; i < k; i++, next_recv++) {
            int v = -1;
            CHECK_EQ(wv_chan_recv(c, &v), 0);
            CHECK_EQ(v, next_recv);
        }
        CHECK_EQ(wv_chan_len(c), 0);
    }
    wv_chan_free(c);
    return 0;
}

static void test_bounded_chan_delivers_elements_in_fifo_order(void **state)
{
    assert_int_equal(run_in_rt(1, bounded_fifo, NULL), 0);
    assert_checks_passed();
}

static int send_blocks_when_full(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 2);
    REQUIRE(c != NULL);
    sender s = {.c = c, .first = 100, .n = 5};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, send_values, &s, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(s.sent, 2); /* the third send waits */
    CHECK_EQ(wv_chan_len(c), 2);
    for (int i = 0; i < 5; i++) {
        int v = -1;
        CHECK_EQ(wv_chan_recv(c, &v), 0);
        CHECK_EQ(v, 100 + i);
        CHECK_EQ(wv_yield(), 0);
        CHECK_EQ(s.sent, i + 3 < 5 ? i + 3 : 5);
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_chan_free(c);
    return 0;
}

static void test_send_on_a_full_chan_waits_until_a_recv_makes_room(void **state)
{
    assert_int_equal(run_in_rt(1, send_blocks_when_full, NULL), 0);
    assert_checks_passed();
}

static int try_recv_wakes_sender(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 1);
    REQUIRE(c != NULL);
    sender s = {.c = c, .first = 1, .n = 2};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, send_values, &s, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(s.sent, 1);
    int v = 0;
    CHECK_EQ(wv_chan_try_recv(c, &v), 0);
    CHECK_EQ(v, 1);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(s.sent, 2);
    CHECK_EQ(wv_chan_try_recv(c, &v), 0);
    CHECK_EQ(v, 2);
    wv_group_free(g);
    wv_chan_free(c);
    return 0;
}

static void test_try_recv_on_a_full_chan_lets_a_waiting_sender_in(void **state)
{
    assert_int_equal(run_in_rt(1, try_recv_wakes_sender, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ rendezvous */

static int rendezvous_send_waits(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 0);
    REQUIRE(c != NULL);
    sender s = {.c = c, .first = 42, .n = 1};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, send_values, &s, NULL), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(s.sent, 0); /* no receiver yet */
    CHECK_EQ(wv_chan_len(c), 0);
    int v = 0;
    CHECK_EQ(wv_chan_recv(c, &v), 0);
    CHECK_EQ(v, 42);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(s.sent, 1);
    wv_group_free(g);
    wv_chan_free(c);
    return 0;
}

static void test_rendezvous_send_waits_for_a_receiver(void **state)
{
    assert_int_equal(run_in_rt(1, rendezvous_send_waits, NULL), 0);
    assert_checks_passed();
}

static int rendezvous_recv_waits(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 0);
    REQUIRE(c != NULL);
    delayed d = {.c = c, .ms = 5, .value = 77};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, send_after, &d, NULL), 0);
    int v = 0;
    int64_t t0 = wv_now();
    CHECK_EQ(wv_chan_recv(c, &v), 0);
    CHECK(ms_since(t0) >= 4);
    CHECK_EQ(v, 77);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_chan_free(c);
    return 0;
}

static void test_rendezvous_recv_waits_for_a_sender(void **state)
{
    assert_int_equal(run_in_rt(1, rendezvous_recv_waits, NULL), 0);
    assert_checks_passed();
}

static int rendezvous_try_ops(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 0);
    REQUIRE(c != NULL);
    int v = 5;
    CHECK_EQ(wv_chan_try_send(c, &v), -EAGAIN); /* nobody receives */
    CHECK_EQ(wv_chan_try_recv(c, &v), -EAGAIN); /* nobody sends */

    receiver r = {.c = c, .value = -1};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, recv_one, &r, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    v = 6;
    CHECK_EQ(wv_chan_try_send(c, &v), 0); /* hands off to the waiting receiver */
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(r.result, 0);
    CHECK_EQ(r.value, 6);

    sender s = {.c = c, .first = 9, .n = 1};
    CHECK_EQ(wv_group_spawn(g, send_values, &s, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    v = 0;
    CHECK_EQ(wv_chan_try_recv(c, &v), 0); /* takes from the waiting sender */
    CHECK_EQ(v, 9);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(s.sent, 1);
    wv_group_free(g);
    wv_chan_free(c);
    return 0;
}

static void test_rendezvous_try_ops_succeed_only_with_a_waiting_peer(void **state)
{
    assert_int_equal(run_in_rt(1, rendezvous_try_ops, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ unbounded */

static int unbounded_100k(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), WV_CHAN_UNBOUNDED);
    REQUIRE(c != NULL);
    int other_ran = 0;
    CHECK_EQ(wv_spawn(set_flag_fiber, &other_ran, NULL), 0);
    for (int i = 0; i < 100000; i++)
        if (!CHECK_EQ(wv_chan_send(c, &i), 0))
            break;
    CHECK_EQ(other_ran, 0); /* no send suspended */
    CHECK_EQ(wv_chan_len(c), 100000);
    CHECK_EQ(wv_chan_try_send(c, &(int){100000}), 0);
    for (int i = 0; i <= 100000; i++) {
        int v = -1;
        if (!CHECK_EQ(wv_chan_recv(c, &v), 0) || !CHECK_EQ(v, i))
            break;
    }
    CHECK_EQ(wv_chan_len(c), 0);
    wv_chan_free(c);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(other_ran, 1);
    return 0;
}

static void test_unbounded_chan_grows_to_100k_elements_without_blocking(void **state)
{
    assert_int_equal(run_in_rt(1, unbounded_100k, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ close */

static int close_wakes_receivers(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 4);
    REQUIRE(c != NULL);
    receiver r[10];
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 10; i++) {
        r[i] = (receiver){.c = c, .value = -1, .result = 1};
        CHECK_EQ(wv_group_spawn(g, recv_one, &r[i], NULL), 0);
    }
    CHECK_EQ(wv_yield(), 0);
    for (int i = 0; i < 10; i++)
        CHECK_EQ(r[i].done, 0);
    wv_chan_close(c);
    CHECK_EQ(wv_group_join(g), 0);
    for (int i = 0; i < 10; i++) {
        CHECK_EQ(r[i].done, 1);
        CHECK_EQ(r[i].result, -EPIPE);
    }
    wv_group_free(g);
    wv_chan_free(c);
    return 0;
}

static void test_close_wakes_every_waiting_receiver_with_epipe(void **state)
{
    assert_int_equal(run_in_rt(1, close_wakes_receivers, NULL), 0);
    assert_checks_passed();
}

static int close_wakes_senders(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 1);
    REQUIRE(c != NULL);
    CHECK_EQ(wv_chan_send(c, &(int){7}), 0);
    sender s[5];
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 5; i++) {
        s[i] = (sender){.c = c, .first = 10 * i, .n = 1, .result = 1};
        CHECK_EQ(wv_group_spawn(g, send_values, &s[i], NULL), 0);
    }
    CHECK_EQ(wv_yield(), 0);
    wv_chan_close(c);
    CHECK_EQ(wv_group_join(g), 0);
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(s[i].sent, 0);
        CHECK_EQ(s[i].result, -EPIPE);
    }
    CHECK_EQ(wv_chan_len(c), 1);
    int v = 0;
    CHECK_EQ(wv_chan_recv(c, &v), 0);
    CHECK_EQ(v, 7);
    CHECK_EQ(wv_chan_recv(c, &v), -EPIPE);
    wv_group_free(g);
    wv_chan_free(c);
    return 0;
}

static void test_close_wakes_every_waiting_sender_with_epipe(void **state)
{
    assert_int_equal(run_in_rt(1, close_wakes_senders, NULL), 0);
    assert_checks_passed();
}

static int drain_after_close(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 4);
    REQUIRE(c != NULL);
    for (int i = 1; i <= 3; i++)
        CHECK_EQ(wv_chan_send(c, &i), 0);
    wv_chan_close(c);
    for (int i = 1; i <= 3; i++) {
        int v = -1;
        CHECK_EQ(wv_chan_recv(c, &v), 0);
        CHECK_EQ(v, i);
    }
    int v = -1;
    CHECK_EQ(wv_chan_recv(c, &v), -EPIPE);
    CHECK_EQ(wv_chan_try_recv(c, &v), -EPIPE);
    CHECK_EQ(wv_chan_recv_until(c, &v, wv_after_ms(1000)), -EPIPE);
    CHECK_EQ(v, -1);
    wv_chan_free(c);
    return 0;
}

static void test_closed_chan_delivers_its_buffered_elements_then_epipe(void **state)
{
    assert_int_equal(run_in_rt(1, drain_after_close, NULL), 0);
    assert_checks_passed();
}

static int send_after_close(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 4);
    REQUIRE(c != NULL);
    wv_chan_close(c);
    wv_chan_close(c); /* twice is harmless */
    CHECK_EQ(wv_chan_send(c, &(int){1}), -EPIPE);
    CHECK_EQ(wv_chan_try_send(c, &(int){1}), -EPIPE);
    CHECK_EQ(wv_chan_len(c), 0);
    wv_chan_free(c);
    return 0;
}

static void test_send_on_a_closed_chan_returns_epipe_and_closing_twice_is_harmless(void **state)
{
    assert_int_equal(run_in_rt(1, send_after_close, NULL), 0);
    assert_checks_passed();
}

static int free_wakes_waiter(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 1);
    REQUIRE(c != NULL);
    receiver r = {.c = c, .value = -1, .result = 1};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, recv_one, &r, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    wv_chan_free(c);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(r.result, -EPIPE);
    wv_group_free(g);
    return 0;
}

static void test_chan_free_wakes_a_waiter_with_epipe(void **state)
{
    assert_int_equal(run_in_rt(1, free_wakes_waiter, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ non-blocking, deadline */

static int try_ops_eagain(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 2);
    REQUIRE(c != NULL);
    int v = -1;
    CHECK_EQ(wv_chan_try_recv(c, &v), -EAGAIN);
    CHECK_EQ(v, -1);
    CHECK_EQ(wv_chan_try_send(c, &(int){1}), 0);
    CHECK_EQ(wv_chan_try_send(c, &(int){2}), 0);
    CHECK_EQ(wv_chan_try_send(c, &(int){3}), -EAGAIN);
    CHECK_EQ(wv_chan_len(c), 2);
    CHECK_EQ(wv_chan_try_recv(c, &v), 0);
    CHECK_EQ(v, 1);
    CHECK_EQ(wv_chan_try_recv(c, &v), 0);
    CHECK_EQ(v, 2);
    CHECK_EQ(wv_chan_try_recv(c, &v), -EAGAIN);
    wv_chan_free(c);
    return 0;
}

static void test_try_send_on_full_and_try_recv_on_empty_return_eagain(void **state)
{
    assert_int_equal(run_in_rt(1, try_ops_eagain, NULL), 0);
    assert_checks_passed();
}

static int recv_until_times_out(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 2);
    REQUIRE(c != NULL);
    int v = -1;
    int64_t at = wv_after_ms(20);
    CHECK_EQ(wv_chan_recv_until(c, &v, at), -ETIMEDOUT);
    CHECK_BETWEEN(wv_now() - at, 0, 2000 * NS_PER_MS);
    CHECK_EQ(v, -1);
    wv_chan_free(c);
    return 0;
}

static void test_recv_until_returns_etimedout_at_its_deadline(void **state)
{
    assert_int_equal(run_in_rt(1, recv_until_times_out, NULL), 0);
    assert_checks_passed();
}

static int recv_until_in_time(void *arg)
{
    wv_chan *c = wv_chan_new(sizeof(int), 2);
    REQUIRE(c != NULL);
    delayed d = {.c = c, .ms = 5, .value = 31};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, send_after, &d, NULL), 0);
    int v = -1;
    CHECK_EQ(wv_chan_recv_until(c, &v, wv_after_ms(2000)), 0);
    CHECK_EQ(v, 31);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_chan_free(c);
    return 0;
}

static void test_recv_until_returns_an_element_sent_before_the_deadline(void **state)
{
    assert_int_equal(run_in_rt(1, recv_until_in_time, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ select */

static int select_ready_recv(void *arg)
{
    wv_chan *a = wv_chan_new(sizeof(int), 1);
    wv_chan *b = wv_chan_new(sizeof(int), 1);
    REQUIRE(a != NULL && b != NULL);
    CHECK_EQ(wv_chan_send(b, &(int){12}), 0);
    int va = -1, vb = -1;
    wv_select_case cases[] = {{a, WV_RECV, &va, 99}, {b, WV_RECV, &vb, 99}};
    CHECK_EQ(wv_chan_select(cases, 2, WV_NEVER), 1);
    CHECK_EQ(cases[1].result, 0);
    CHECK_EQ(vb, 12);
    CHECK_EQ(va, -1);
    CHECK_EQ(wv_chan_len(b), 0);
    wv_chan_free(a);
    wv_chan_free(b);
    return 0;
}

static void test_select_picks_the_ready_recv_case(void **state)
{
    assert_int_equal(run_in_rt(1, select_ready_recv, NULL), 0);
    assert_checks_passed();
}

static int select_ready_send(void *arg)
{
    wv_chan *in = wv_chan_new(sizeof(int), 1);
    wv_chan *out = wv_chan_new(sizeof(int), 1);
    REQUIRE(in != NULL && out != NULL);
    int vin = -1, vout = 55;
    wv_select_case cases[] = {{in, WV_RECV, &vin, 99}, {out, WV_SEND, &vout, 99}};
    CHECK_EQ(wv_chan_select(cases, 2, WV_NEVER), 1);
    CHECK_EQ(cases[1].result, 0);
    CHECK_EQ(wv_chan_len(out), 1);
    int got = -1;
    CHECK_EQ(wv_chan_try_recv(out, &got), 0);
    CHECK_EQ(got, 55);
    CHECK_EQ(vin, -1);
    wv_chan_free(in);
    wv_chan_free(out);
    return 0;
}

static void test_select_performs_a_ready_send_case(void **state)
{
    assert_int_equal(run_in_rt(1, select_ready_send, NULL), 0);
    assert_checks_passed();
}

static int select_waits_for_recv(void *arg)
{
    wv_chan *a = wv_chan_new(sizeof(int), 1);
    wv_chan *b = wv_chan_new(sizeof(int), 1);
    REQUIRE(a != NULL && b != NULL);
    delayed d = {.c = b, .ms = 5, .value = 88};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, send_after, &d, NULL), 0);
    int va = -1, vb = -1;
    wv_select_case cases[] = {{a, WV_RECV, &va, 99}, {b, WV_RECV, &vb, 99}};
    CHECK_EQ(wv_chan_select(cases, 2, wv_after_ms(2000)), 1);
    CHECK_EQ(cases[1].result, 0);
    CHECK_EQ(vb, 88);
    CHECK_EQ(va, -1);
    CHECK_EQ(wv_group_join(g), 0);
    /* Nothing is left registered on `a`: a later send stays buffered. */
    CHECK_EQ(wv_chan_try_send(a, &(int){1}), 0);
    CHECK_EQ(wv_chan_len(a), 1);
    wv_group_free(g);
    wv_chan_free(a);
    wv_chan_free(b);
    return 0;
}

static void test_select_waits_until_a_recv_case_becomes_ready(void **state)
{
    assert_int_equal(run_in_rt(1, select_waits_for_recv, NULL), 0);
    assert_checks_passed();
}

static int select_waits_for_room(void *arg)
{
    wv_chan *empty = wv_chan_new(sizeof(int), 1);
    wv_chan *full = wv_chan_new(sizeof(int), 1);
    REQUIRE(empty != NULL && full != NULL);
    CHECK_EQ(wv_chan_send(full, &(int){1}), 0);
    delayed d = {.c = full, .ms = 5, .value = -1};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, recv_after, &d, NULL), 0);
    int vin = -1, vout = 2;
    wv_select_case cases[] = {{full, WV_SEND, &vout, 99}, {empty, WV_RECV, &vin, 99}};
    CHECK_EQ(wv_chan_select(cases, 2, wv_after_ms(2000)), 0);
    CHECK_EQ(cases[0].result, 0);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(d.value, 1);
    int v = -1;
    CHECK_EQ(wv_chan_try_recv(full, &v), 0);
    CHECK_EQ(v, 2);
    wv_group_free(g);
    wv_chan_free(empty);
    wv_chan_free(full);
    return 0;
}

static void test_select_waits_until_a_send_case_has_room(void **state)
{
    assert_int_equal(run_in_rt(1, select_waits_for_room, NULL), 0);
    assert_checks_passed();
}

static int select_timeout(void *arg)
{
    wv_chan *a = wv_chan_new(sizeof(int), 1);
    REQUIRE(a != NULL);
    int v = -1;
    wv_select_case cases[] = {{a, WV_RECV, &v, 99}};
    int64_t at = wv_after_ms(20);
    CHECK_EQ(wv_chan_select(cases, 1, at), -ETIMEDOUT);
    CHECK_BETWEEN(wv_now() - at, 0, 2000 * NS_PER_MS);
    CHECK_EQ(v, -1);
    /* The timed-out select left no waiter behind. */
    CHECK_EQ(wv_chan_try_send(a, &(int){4}), 0);
    CHECK_EQ(wv_chan_len(a), 1);
    wv_chan_free(a);
    return 0;
}

static void test_select_returns_etimedout_at_its_deadline(void **state)
{
    assert_int_equal(run_in_rt(1, select_timeout, NULL), 0);
    assert_checks_passed();
}

static int select_closed(void *arg)
{
    wv_chan *a = wv_chan_new(sizeof(int), 1);
    wv_chan *b = wv_chan_new(sizeof(int), 1);
    REQUIRE(a != NULL && b != NULL);
    wv_chan_close(b);
    int va = -1, vb = -1;
    wv_select_case cases[] = {{a, WV_RECV, &va, 99}, {b, WV_RECV, &vb, 99}};
    CHECK_EQ(wv_chan_select(cases, 2, wv_after_ms(2000)), 1);
    CHECK_EQ(cases[1].result, -EPIPE);
    wv_chan_free(a);
    wv_chan_free(b);
    return 0;
}

static void test_select_on_a_closed_chan_returns_its_index_with_epipe(void **state)
{
    assert_int_equal(run_in_rt(1, select_closed, NULL), 0);
    assert_checks_passed();
}

static int select_closed_while_waiting(void *arg)
{
    wv_chan *a = wv_chan_new(sizeof(int), 1);
    wv_chan *b = wv_chan_new(sizeof(int), 1);
    REQUIRE(a != NULL && b != NULL);
    delayed d = {.c = a, .ms = 5};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, close_after, &d, NULL), 0);
    int va = -1, vb = -1;
    wv_select_case cases[] = {{b, WV_RECV, &vb, 99}, {a, WV_RECV, &va, 99}};
    CHECK_EQ(wv_chan_select(cases, 2, wv_after_ms(2000)), 1);
    CHECK_EQ(cases[1].result, -EPIPE);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_chan_free(a);
    wv_chan_free(b);
    return 0;
}

static void test_select_waiting_on_a_chan_that_gets_closed_returns_epipe(void **state)
{
    assert_int_equal(run_in_rt(1, select_closed_while_waiting, NULL), 0);
    assert_checks_passed();
}

static int select_first_of_several(void *arg)
{
    wv_chan *a = wv_chan_new(sizeof(int), 1);
    wv_chan *b = wv_chan_new(sizeof(int), 1);
    wv_chan *out = wv_chan_new(sizeof(int), 1);
    REQUIRE(a != NULL && b != NULL && out != NULL);
    CHECK_EQ(wv_chan_send(a, &(int){1}), 0);
    CHECK_EQ(wv_chan_send(b, &(int){2}), 0);
    int va = -1, vb = -1, vout = 3;
    wv_select_case cases[] = {
        {out, WV_SEND, &vout, 99}, {a, WV_RECV, &va, 99}, {b, WV_RECV, &vb, 99}};
    CHECK_EQ(wv_chan_select(cases, 3, WV_NEVER), 0);
    CHECK_EQ(cases[0].result, 0);
    CHECK_EQ(wv_chan_len(out), 1); /* only the first case was performed */
    CHECK_EQ(wv_chan_len(a), 1);
    CHECK_EQ(wv_chan_len(b), 1);
    CHECK_EQ(va, -1);
    CHECK_EQ(vb, -1);
    /* Without the send case, the first recv case wins. */
    CHECK_EQ(wv_chan_select(cases + 1, 2, WV_NEVER), 0);
    CHECK_EQ(va, 1);
    CHECK_EQ(vb, -1);
    wv_chan_free(a);
    wv_chan_free(b);
    wv_chan_free(out);
    return 0;
}

static void test_select_of_several_ready_cases_picks_the_first(void **state)
{
    assert_int_equal(run_in_rt(1, select_first_of_several, NULL), 0);
    assert_checks_passed();
}

static int select_bad_cases(void *arg)
{
    wv_chan *a = wv_chan_new(sizeof(int), 1);
    REQUIRE(a != NULL);
    int v = 0;
    wv_select_case bad_op[] = {{a, 3, &v, 0}};
    CHECK_EQ(wv_chan_select(bad_op, 1, wv_after_ms(100)), -EINVAL);
    wv_select_case no_chan[] = {{a, WV_RECV, &v, 0}, {NULL, WV_RECV, &v, 0}};
    CHECK_EQ(wv_chan_select(no_chan, 2, wv_after_ms(100)), -EINVAL);
    wv_chan_free(a);
    return 0;
}

static void test_select_rejects_a_bad_case_with_einval(void **state)
{
    assert_int_equal(run_in_rt(1, select_bad_cases, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ contention */

enum { PRODUCERS = 4, CONSUMERS = 4, ITEMS = 1000 };

typedef struct mpmc {
    wv_chan *c;
    wv_waitgroup producers_left;
    int seen[PRODUCERS][ITEMS];
    int out_of_order;
    int received[CONSUMERS];
} mpmc;

typedef struct mpmc_role {
    mpmc *m;
    int id;
} mpmc_role;

static int produce(void *arg)
{
    mpmc_role *r = arg;
    for (int seq = 0; seq < ITEMS; seq++) {
        int v = r->id * ITEMS + seq;
        int e = wv_chan_send(r->m->c, &v);
        if (e != 0)
            return e;
        if (seq % 7 == r->id && wv_yield() != 0)
            return -EIO;
    }
    wv_waitgroup_done(&r->m->producers_left);
    return 0;
}

static int consume(void *arg)
{
    mpmc_role *r = arg;
    int last[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++)
        last[p] = -1;
    for (int n = 0;; n++) {
        int v;
        int e = wv_chan_recv(r->m->c, &v);
        if (e == -EPIPE)
            return 0;
        if (e != 0)
            return e;
        int p = v / ITEMS, seq = v % ITEMS;
        if (p < 0 || p >= PRODUCERS)
            return -ERANGE;
        if (seq <= last[p])
            r->m->out_of_order++;
        last[p] = seq;
        r->m->seen[p][seq]++;
        r->m->received[r->id]++;
        if (n % 5 == r->id && wv_yield() != 0)
            return -EIO;
    }
}

static int close_when_produced(void *arg)
{
    mpmc *m = arg;
    int e = wv_waitgroup_wait(&m->producers_left);
    wv_chan_close(m->c);
    return e;
}

static int many_to_many(void *arg)
{
    mpmc *m = calloc(1, sizeof(*m));
    REQUIRE(m != NULL);
    m->c = wv_chan_new(sizeof(int), 8);
    REQUIRE(m->c != NULL);
    wv_waitgroup_add(&m->producers_left, PRODUCERS);
    mpmc_role roles[PRODUCERS + CONSUMERS];
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < CONSUMERS; i++) {
        roles[i] = (mpmc_role){m, i};
        CHECK_EQ(wv_group_spawn(g, consume, &roles[i], NULL), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        roles[CONSUMERS + i] = (mpmc_role){m, i};
        CHECK_EQ(wv_group_spawn(g, produce, &roles[CONSUMERS + i], NULL), 0);
    }
    CHECK_EQ(wv_group_spawn(g, close_when_produced, m, NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(m->out_of_order, 0);
    int total = 0;
    for (int i = 0; i < CONSUMERS; i++) {
        CHECK(m->received[i] > 0); /* every consumer got a share */
        total += m->received[i];
    }
    CHECK_EQ(total, PRODUCERS * ITEMS);
    for (int p = 0; p < PRODUCERS; p++)
        for (int q = 0; q < ITEMS; q++)
            if (!CHECK_EQ(m->seen[p][q], 1))
                goto out;
out:
    wv_group_free(g);
    wv_chan_free(m->c);
    free(m);
    return 0;
}

static void test_many_senders_and_receivers_get_every_element_once_in_send_order(void **state)
{
    assert_int_equal(run_in_rt(1, many_to_many, NULL), 0);
    assert_checks_passed();
}

typedef struct feeder {
    wv_chan *c;
    int base, n;
} feeder;

static int feed_then_close(void *arg)
{
    feeder *f = arg;
    for (int i = 0; i < f->n; i++) {
        int v = f->base + i;
        int e = wv_chan_send(f->c, &v);
        if (e != 0)
            return e;
    }
    wv_chan_close(f->c);
    return 0;
}

static int select_drain(void *arg)
{
    wv_chan *a = wv_chan_new(sizeof(int), 2);
    wv_chan *b = wv_chan_new(sizeof(int), 0);
    REQUIRE(a != NULL && b != NULL);
    feeder fa = {a, 0, 500}, fb = {b, 100000, 300};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, feed_then_close, &fa, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, feed_then_close, &fb, NULL), 0);
    int va = -1, vb = -1;
    wv_select_case cases[2] = {{a, WV_RECV, &va, 99}, {b, WV_RECV, &vb, 99}};
    int n = 2, got_a = 0, got_b = 0, last_a = -1, last_b = 99999, disorder = 0;
    while (n > 0) {
        int i = wv_chan_select(cases, n, wv_after_ms(5000));
        if (!CHECK(i >= 0 && i < n))
            break;
        if (cases[i].result == -EPIPE) {
            cases[i] = cases[n - 1]; /* that channel is done */
            n--;
            continue;
        }
        CHECK_EQ(cases[i].result, 0);
        int v = *(int *)cases[i].elem;
        if (v < 100000) {
            disorder += v != last_a + 1;
            last_a = v;
            got_a++;
        } else {
            disorder += v != last_b + 1;
            last_b = v;
            got_b++;
        }
    }
    CHECK_EQ(got_a, 500);
    CHECK_EQ(got_b, 300);
    CHECK_EQ(disorder, 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_chan_free(a);
    wv_chan_free(b);
    return 0;
}

static void test_select_loop_drains_two_channels_until_both_close(void **state)
{
    assert_int_equal(run_in_rt(1, select_drain, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ element sizes */

typedef struct odd13 {
    unsigned char b[13];
} odd13;

static odd13 pattern13(int i)
{
    odd13 e;
    for (int k = 0; k < 13; k++)
        e.b[k] = (unsigned char)(i * 13 + k * 7 + 1);
    return e;
}

static int send_odd13_values(void *arg)
{
    for (int i = 0; i < 10; i++) {
        odd13 e = pattern13(i);
        int r = wv_chan_send(arg, &e);
        if (r != 0)
            return r;
    }
    return 0;
}

/* Receive into a buffer with guard bytes around the element and check both
 * the element and that nothing beyond its 13 bytes was written. */
static bool recv13_matches(wv_chan *c, int i)
{
    unsigned char buf[8 + 13 + 8];
    memset(buf, 0xEE, sizeof(buf));
    if (!CHECK_EQ(wv_chan_recv(c, buf + 8), 0))
        return false;
    odd13 want = pattern13(i);
    bool ok = CHECK(memcmp(buf + 8, want.b, 13) == 0);
    for (size_t k = 0; k < 8; k++)
        ok = CHECK_EQ(buf[k], 0xEE) && CHECK_EQ(buf[8 + 13 + k], 0xEE) && ok;
    return ok;
}

static int odd_sizes(void *arg)
{
    static const size_t capacities[] = {3, WV_CHAN_UNBOUNDED};
    for (size_t ci = 0; ci < ARRAY_LEN(capacities); ci++) {
        wv_chan *c = wv_chan_new(sizeof(odd13), capacities[ci]);
        REQUIRE(c != NULL);
        int next_send = 0, next_recv = 0;
        for (int round = 0; round < 40; round++) {
            int k = 1 + round % 3;
            for (int i = 0; i < k; i++, next_send++) {
                odd13 e = pattern13(next_send);
                CHECK_EQ(wv_chan_send(c, &e), 0);
            }
            for (int i = 0; i < k; i++, next_recv++)
                if (!recv13_matches(c, next_recv))
                    break;
        }
        wv_chan_free(c);
    }

    /* And through a rendezvous hand-off. */
    wv_chan *r = wv_chan_new(sizeof(odd13), 0);
    REQUIRE(r != NULL);
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, send_odd13_values, r, NULL), 0);
    for (int i = 0; i < 10; i++)
        recv13_matches(r, i);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_chan_free(r);
    return 0;
}

static void test_odd_sized_elements_are_copied_exactly(void **state)
{
    assert_int_equal(run_in_rt(1, odd_sizes, NULL), 0);
    assert_checks_passed();
}

static int bad_new(void *arg)
{
    CHECK(wv_chan_new(0, 4) == NULL);
    return 0;
}

static void test_chan_new_with_zero_element_size_returns_null(void **state)
{
    assert_int_equal(run_in_rt(1, bad_new, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bounded_chan_delivers_elements_in_fifo_order),
        cmocka_unit_test(test_send_on_a_full_chan_waits_until_a_recv_makes_room),
        cmocka_unit_test(test_try_recv_on_a_full_chan_lets_a_waiting_sender_in),
        cmocka_unit_test(test_rendezvous_send_waits_for_a_receiver),
        cmocka_unit_test(test_rendezvous_recv_waits_for_a_sender),
        cmocka_unit_test(test_rendezvous_try_ops_succeed_only_with_a_waiting_peer),
        cmocka_unit_test(test_unbounded_chan_grows_to_100k_elements_without_blocking),
        cmocka_unit_test(test_close_wakes_every_waiting_receiver_with_epipe),
        cmocka_unit_test(test_close_wakes_every_waiting_sender_with_epipe),
        cmocka_unit_test(test_closed_chan_delivers_its_buffered_elements_then_epipe),
        cmocka_unit_test(test_send_on_a_closed_chan_returns_epipe_and_closing_twice_is_harmless),
        cmocka_unit_test(test_chan_free_wakes_a_waiter_with_epipe),
        cmocka_unit_test(test_try_send_on_full_and_try_recv_on_empty_return_eagain),
        cmocka_unit_test(test_recv_until_returns_etimedout_at_its_deadline),
        cmocka_unit_test(test_recv_until_returns_an_element_sent_before_the_deadline),
        cmocka_unit_test(test_select_picks_the_ready_recv_case),
        cmocka_unit_test(test_select_performs_a_ready_send_case),
        cmocka_unit_test(test_select_waits_until_a_recv_case_becomes_ready),
        cmocka_unit_test(test_select_waits_until_a_send_case_has_room),
        cmocka_unit_test(test_select_returns_etimedout_at_its_deadline),
        cmocka_unit_test(test_select_on_a_closed_chan_returns_its_index_with_epipe),
        cmocka_unit_test(test_select_waiting_on_a_chan_that_gets_closed_returns_epipe),
        cmocka_unit_test(test_select_of_several_ready_cases_picks_the_first),
        cmocka_unit_test(test_select_rejects_a_bad_case_with_einval),
        cmocka_unit_test(test_many_senders_and_receivers_get_every_element_once_in_send_order),
        cmocka_unit_test(test_select_loop_drains_two_channels_until_both_close),
        cmocka_unit_test(test_odd_sized_elements_are_copied_exactly),
        cmocka_unit_test(test_chan_new_with_zero_element_size_returns_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
