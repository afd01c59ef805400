/*
 * The message bus (include/weave/bus.h), memory:// backend: every group of
 * a topic gets each message, one subscriber of a group gets it; what is not
 * acked comes back (nack with requeue, a subscriber closed); recv waits,
 * times out and is stopped; publishers and subscribers on different shards;
 * the limits (max_pending refuses without storing anything, max_message),
 * names and URLs refused.
 */
#include "harness.h"

#include "weave/bus.h"

static wv_bus *open_bus(const char *url)
{
    wv_bus *b = NULL;
    CHECK_EQ(wv_bus_open(url, NULL, &b), 0);
    return b;
}

static int recv_body(wv_bus_sub *s, char *out, size_t cap, wv_bus_msg *m)
{
    int rc = wv_bus_recv(s, m, wv_after_ms(2000));
    if (rc == 0)
        snprintf(out, cap, "%.*s", (int)m->body.n, m->body.p);
    return rc;
}

/* ------------------------------------------------------------ groups */

static int groups_and_members(void *arg)
{
    wv_bus *b = open_bus("memory://");
    REQUIRE(b != NULL);
    CHECK_STR_EQ(wv_bus_backend(b), "memory");
    CHECK_EQ(wv_bus_publish(b, "orders", WV_STR("before anyone")), 0); /* no group yet */
    wv_bus_sub *billing1, *billing2, *audit;
    REQUIRE_EQ(wv_bus_subscribe(b, "orders", "billing", &billing1), 0);
    REQUIRE_EQ(wv_bus_subscribe(b, "orders", "billing", &billing2), 0);
    REQUIRE_EQ(wv_bus_subscribe(b, "orders", "audit", &audit), 0);
    for (int i = 0; i < 4; i++) {
        char body[16];
        snprintf(body, sizeof body, "order %d", i);
        CHECK_EQ(wv_bus_publish(b, "orders", (wv_str){body, strlen(body)}), 2);
    }
    CHECK_EQ(wv_bus_backlog(b, "orders", "billing"), 4);
    CHECK_EQ(wv_bus_backlog(b, "orders", "nobody"), -ENOENT);
    CHECK_EQ(wv_bus_backlog(b, "no such topic", "billing"), -EINVAL);
    /* audit gets all four, in order */
    char got[32];
    wv_bus_msg m;
    uint64_t first_id = 0;
    for (int i = 0; i < 4; i++) {
        REQUIRE_EQ(recv_body(audit, got, sizeof got, &m), 0);
        char want[16];
        snprintf(want, sizeof want, "order %d", i);
        CHECK_STR_EQ(got, want);
        CHECK_EQ(m.deliveries, 1);
        if (i == 0)
            first_id = m.id;
        CHECK_EQ(m.id, first_id + (uint64_t)i);
        CHECK_EQ(wv_bus_ack(audit, &m), 0);
    }
    /* the billing members split them: each message to one of the two */
    int seen[4] = {0};
    for (int i = 0; i < 4; i++) {
        wv_bus_sub *s = i % 2 ? billing2 : billing1;
        REQUIRE_EQ(recv_body(s, got, sizeof got, &m), 0);
        seen[got[6] - '0']++;
        CHECK_EQ(wv_bus_ack(s, &m), 0);
    }
    for (int i = 0; i < 4; i++)
        CHECK_EQ(seen[i], 1);
    CHECK_EQ(wv_bus_backlog(b, "orders", "billing"), 0);
    /* an ack twice, or of another's message, is refused */
    CHECK_EQ(wv_bus_ack(billing1, &m), -EINVAL);
    wv_bus_unsubscribe(billing1);
    wv_bus_unsubscribe(billing2);
    wv_bus_unsubscribe(audit);
    wv_bus_close(b);
    return 0;
}

static void test_bus_every_group_gets_each_message_and_one_member_of_a_group_does(void **state)
{
    assert_int_equal(run_in_rt(1, groups_and_members, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------- delivered again */

static int redelivery(void *arg)
{
    wv_bus *b = open_bus("memory://");
    REQUIRE(b != NULL);
    wv_bus_sub *a, *c;
    REQUIRE_EQ(wv_bus_subscribe(b, "jobs", "workers", &a), 0);
    REQUIRE_EQ(wv_bus_subscribe(b, "jobs", "workers", &c), 0);
    CHECK_EQ(wv_bus_publish(b, "jobs", WV_STR("one")), 1);
    CHECK_EQ(wv_bus_publish(b, "jobs", WV_STR("two")), 1);
    CHECK_EQ(wv_bus_publish(b, "jobs", WV_STR("three")), 1);
    char got[16];
    wv_bus_msg m1, m2, m3;
    REQUIRE_EQ(recv_body(a, got, sizeof got, &m1), 0);
    CHECK_STR_EQ(got, "one");
    REQUIRE_EQ(recv_body(a, got, sizeof got, &m2), 0);
    CHECK_STR_EQ(got, "two");
    /* a's handler "crashes": closed with both unacked; they come back to
     * the group first, in their order, delivered a second time */
    wv_bus_unsubscribe(a);
    REQUIRE_EQ(recv_body(c, got, sizeof got, &m1), 0);
    CHECK_STR_EQ(got, "one");
    CHECK_EQ(m1.deliveries, 2);
    REQUIRE_EQ(recv_body(c, got, sizeof got, &m2), 0);
    CHECK_STR_EQ(got, "two");
    /* nack with requeue: first in line again */
    CHECK_EQ(wv_bus_nack(c, &m2, true), 0);
    REQUIRE_EQ(recv_body(c, got, sizeof got, &m2), 0);
    CHECK_STR_EQ(got, "two");
    CHECK_EQ(m2.deliveries, 3);
    REQUIRE_EQ(recv_body(c, got, sizeof got, &m3), 0);
    CHECK_STR_EQ(got, "three");
    /* nack without requeue: dropped */
    CHECK_EQ(wv_bus_nack(c, &m3, false), 0);
    CHECK_EQ(wv_bus_ack(c, &m1), 0);
    CHECK_EQ(wv_bus_ack(c, &m2), 0);
    CHECK_EQ(wv_bus_backlog(b, "jobs", "workers"), 0);
    wv_bus_msg none;
    CHECK_EQ(wv_bus_recv(c, &none, wv_after_ms(20)), -ETIMEDOUT);
    wv_bus_unsubscribe(c);
    wv_bus_close(b);
    return 0;
}

static void test_bus_unacked_messages_come_back_when_nacked_or_their_subscriber_closes(void **state)
{
    assert_int_equal(run_in_rt(1, redelivery, NULL), 0);
    assert_checks_passed();
}

/* A group keeps its messages while it has no subscriber. */
static int group_outlives_members(void *arg)
{
    wv_bus *b = open_bus("memory://");
    REQUIRE(b != NULL);
    wv_bus_sub *s;
    REQUIRE_EQ(wv_bus_subscribe(b, "t", "g", &s), 0);
    wv_bus_unsubscribe(s);
    CHECK_EQ(wv_bus_publish(b, "t", WV_STR("kept")), 1);
    REQUIRE_EQ(wv_bus_subscribe(b, "t", "g", &s), 0);
    char got[8];
    wv_bus_msg m;
    REQUIRE_EQ(recv_body(s, got, sizeof got, &m), 0);
    CHECK_STR_EQ(got, "kept");
    CHECK_EQ(wv_bus_ack(s, &m), 0);
    wv_bus_unsubscribe(s);
    wv_bus_close(b);
    return 0;
}

static void test_bus_group_keeps_messages_while_it_has_no_subscriber(void **state)
{
    assert_int_equal(run_in_rt(1, group_outlives_members, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------- waiting */

typedef struct later {
    wv_bus *b;
    int64_t ms;
    const char *body;
} later;

static int publish_later(void *arg)
{
    later *l = arg;
    wv_sleep_ms(l->ms);
    return wv_bus_publish(l->b, "t", (wv_str){l->body, strlen(l->body)}) == 1 ? 0 : -EIO;
}

static int stop_later(void *arg)
{
    wv_sleep_ms(30);
    wv_bus_sub_stop(arg);
    return 0;
}

static int waiting(void *arg)
{
    wv_bus *b = open_bus("memory://");
    REQUIRE(b != NULL);
    wv_bus_sub *s;
    REQUIRE_EQ(wv_bus_subscribe(b, "t", "g", &s), 0);
    wv_group *grp = wv_group_new();
    later l = {b, 40, "late"};
    CHECK_EQ(wv_group_spawn(grp, publish_later, &l, NULL), 0);
    int64_t t0 = wv_now();
    char got[8];
    wv_bus_msg m;
    REQUIRE_EQ(recv_body(s, got, sizeof got, &m), 0); /* woken by the publish */
    CHECK_STR_EQ(got, "late");
    CHECK_BETWEEN(wv_now() - t0, 30 * NS_PER_MS, 1500 * NS_PER_MS);
    CHECK_EQ(wv_bus_ack(s, &m), 0);
    /* its own deadline, and the fiber's */
    int64_t at = wv_after_ms(30);
    CHECK_EQ(wv_bus_recv(s, &m, at), -ETIMEDOUT);
    CHECK(wv_now() >= at);
    int64_t old = wv_deadline_set(wv_after_ms(20));
    CHECK_EQ(wv_bus_recv(s, &m, WV_NEVER), -ETIMEDOUT);
    wv_deadline_set(old);
    /* stopped: -EPIPE now and after */
    CHECK_EQ(wv_group_spawn(grp, stop_later, s, NULL), 0);
    CHECK_EQ(wv_bus_recv(s, &m, WV_NEVER), -EPIPE);
    CHECK_EQ(wv_bus_recv(s, &m, WV_NEVER), -EPIPE);
    CHECK_EQ(wv_group_join(grp), 0);
    wv_group_free(grp);
    wv_bus_unsubscribe(s);
    wv_bus_close(b);
    return 0;
}

static void test_bus_recv_waits_for_a_publish_times_out_and_is_stopped(void **state)
{
    assert_int_equal(run_in_rt(1, waiting, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------- shards */

enum { PER_SHARD = 2000 };

typedef struct tally {
    atomic_int seen[2 * PER_SHARD];
    atomic_int total;
} tally;

typedef struct shard_job {
    tally *t;
} shard_job;

/* On every shard: a subscriber in group "all" and a publisher; each
 * takes messages until the total is in, acking each. */
static int on_each_shard(void *arg)
{
    tally *t = arg;
    wv_bus *b = open_bus("memory://");
    REQUIRE(b != NULL);
    wv_bus_sub *s;
    REQUIRE_EQ(wv_bus_subscribe(b, "events", "all", &s), 0);
    wv_sleep_ms(20); /* both shards subscribed before anyone publishes */
    int me = wv_shard_id();
    for (int i = 0; i < PER_SHARD; i++) {
        int n = me * PER_SHARD + i;
        CHECK_EQ(wv_bus_publish(b, "events", (wv_str){(const char *)&n, sizeof n}), 1);
        if (i % 100 == 0)
            wv_yield();
    }
    for (;;) {
        wv_bus_msg m;
        int rc = wv_bus_recv(s, &m, wv_after_ms(300));
        if (rc == -ETIMEDOUT && atomic_load(&t->total) == 2 * PER_SHARD)
            break;
        if (rc == -ETIMEDOUT)
            continue; /* the other shard is still at it (the watchdog bounds this) */
        REQUIRE_EQ(rc, 0);
        int n;
        REQUIRE_EQ(m.body.n, sizeof n);
        memcpy(&n, m.body.p, sizeof n);
        REQUIRE(n >= 0 && n < 2 * PER_SHARD);
        atomic_fetch_add(&t->seen[n], 1);
        atomic_fetch_add(&t->total, 1);
        CHECK_EQ(wv_bus_ack(s, &m), 0);
    }
    wv_bus_unsubscribe(s);
    wv_bus_close(b);
    return 0;
}

static int two_shards(void *arg)
{
    return wv_shard_each(on_each_shard, arg);
}

static void test_bus_messages_cross_shards_each_delivered_once_to_the_group(void **state)
{
    static tally t;
    assert_int_equal(run_in_rt(2, two_shards, &t), 0);
    assert_checks_passed();
    assert_int_equal(atomic_load(&t.total), 2 * PER_SHARD);
    for (int i = 0; i < 2 * PER_SHARD; i++)
        assert_int_equal(atomic_load(&t.seen[i]), 1);
}

/* ------------------------------------------------------- limits */

static int limits(void *arg)
{
    wv_bus *b = NULL;
    CHECK_EQ(wv_bus_open("memory://?max_pending=3", &(wv_bus_opts){.max_message = 16}, &b), 0);
    REQUIRE(b != NULL);
    wv_bus_sub *fast, *slow;
    REQUIRE_EQ(wv_bus_subscribe(b, "t", "fast", &fast), 0);
    REQUIRE_EQ(wv_bus_subscribe(b, "t", "slow", &slow), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wv_bus_publish(b, "t", WV_STR("x")), 2);
    wv_bus_msg m;
    for (int i = 0; i < 3; i++) {
        REQUIRE_EQ(wv_bus_recv(fast, &m, wv_after_ms(100)), 0);
        CHECK_EQ(wv_bus_ack(fast, &m), 0);
    }
    /* slow's group is full: refused for both groups, fast gets nothing */
    CHECK_EQ(wv_bus_publish(b, "t", WV_STR("y")), -ENOBUFS);
    CHECK(strstr(wv_errmsg(), "group \"slow\"") != NULL);
    CHECK_EQ(wv_bus_backlog(b, "t", "fast"), 0);
    /* an unacknowledged message still counts */
    REQUIRE_EQ(wv_bus_recv(slow, &m, wv_after_ms(100)), 0);
    CHECK_EQ(wv_bus_publish(b, "t", WV_STR("y")), -ENOBUFS);
    CHECK_EQ(wv_bus_ack(slow, &m), 0);
    CHECK_EQ(wv_bus_publish(b, "t", WV_STR("y")), 2);
    for (wv_bus_sub *s = fast;; s = slow) { /* empty both groups */
        while (wv_bus_recv(s, &m, wv_after_ms(10)) == 0)
            CHECK_EQ(wv_bus_ack(s, &m), 0);
        if (s == slow)
            break;
    }
    CHECK_EQ(wv_bus_publish(b, "t", WV_STR("0123456789abcdefg")), -EMSGSIZE);
    CHECK_EQ(wv_bus_publish(b, "t", WV_STR("0123456789abcdef")), 2);
    CHECK_EQ(wv_bus_publish(b, "has space", WV_STR("x")), -EINVAL);
    CHECK_EQ(wv_bus_publish(b, "", WV_STR("x")), -EINVAL);
    wv_bus_sub *bad = NULL;
    CHECK_EQ(wv_bus_subscribe(b, "t", "g/1", &bad), -EINVAL);
    CHECK(bad == NULL);
    CHECK(wv_bus_name_valid(WV_STR("orders.v2_x-1")));
    wv_bus_unsubscribe(fast);
    wv_bus_unsubscribe(slow);
    wv_bus_close(b);
    wv_bus *other = NULL;
    CHECK_EQ(wv_bus_open("nats://localhost", NULL, &other), -EINVAL);
    CHECK_EQ(wv_bus_open("kafka://localhost:9092/path", NULL, &other), -EINVAL);
    CHECK_EQ(wv_bus_open("kafka://localhost:9092?linger.ms", NULL, &other), -EINVAL);
    CHECK_EQ(wv_bus_open("kafka://localhost:9092?no.such.property=1", NULL, &other), -EINVAL);
    CHECK_EQ(wv_bus_open("memory://?max_pending=0", NULL, &other), -EINVAL);
    CHECK_EQ(wv_bus_open("memory://?size=1", NULL, &other), -EINVAL);
    CHECK(other == NULL);
    return 0;
}

static void test_bus_limits_names_and_urls_are_refused_with_nothing_stored(void **state)
{
    assert_int_equal(run_in_rt(1, limits, NULL), 0);
    assert_checks_passed();
}

static void test_bus_open_outside_the_runtime_is_eperm(void **state)
{
    wv_bus *b = NULL;
    assert_int_equal(wv_bus_open("memory://", NULL, &b), -EPERM);
    assert_null(b);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bus_every_group_gets_each_message_and_one_member_of_a_group_does),
        cmocka_unit_test(
            test_bus_unacked_messages_come_back_when_nacked_or_their_subscriber_closes),
        cmocka_unit_test(test_bus_group_keeps_messages_while_it_has_no_subscriber),
        cmocka_unit_test(test_bus_recv_waits_for_a_publish_times_out_and_is_stopped),
        cmocka_unit_test(test_bus_messages_cross_shards_each_delivered_once_to_the_group),
        cmocka_unit_test(test_bus_limits_names_and_urls_are_refused_with_nothing_stored),
        cmocka_unit_test(test_bus_open_outside_the_runtime_is_eperm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
