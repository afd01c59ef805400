/*
 * The bus's model (include/weave/bus.h) as scenarios any backend must pass,
 * shared by test_bus_amqp.c (RabbitMQ) and test_bus_kafka.c (librdkafka's
 * mock cluster); header-only, included once after harness.h. Where the
 * backends' promises differ (what publish returns before any group, how
 * deliveries are counted, order across partitions) the scenario asks the
 * backend's name and checks that backend's promise.
 */
#ifndef WEAVE_TESTS_UNIT_BUS_CONTRACT_H
#define WEAVE_TESTS_UNIT_BUS_CONTRACT_H

#include "weave/bus.h"

typedef struct contract {
    const char *url;
    char prefix[32]; /* "wvb.<pid>.": every topic and group of this run */
    /* make the topic before use (kafka: the mock cluster's), or NULL */
    void (*make_topic)(const char *name);
} contract;

static contract the_contract;

static const char *cname(char *buf, size_t cap, const char *name)
{
    snprintf(buf, cap, "%s%s", the_contract.prefix, name);
    return buf;
}
#define CNAME(n) cname((char[128]){0}, 128, (n))

static bool is_kafka(wv_bus *b)
{
    return !strcmp(wv_bus_backend(b), "kafka");
}

static wv_bus *contract_open(void)
{
    wv_bus *b = NULL;
    int rc = wv_bus_open(the_contract.url, NULL, &b);
    if (rc < 0)
        fprintf(stderr, "wv_bus_open(%s): %s\n", the_contract.url, wv_errmsg());
    CHECK_EQ(rc, 0);
    return b;
}

/* Receive within `ms`: 0 with the body copied into out. */
static int contract_recv(wv_bus_sub *s, wv_bus_msg *m, char *out, size_t cap, int64_t ms)
{
    int rc = wv_bus_recv(s, m, wv_after_ms(ms));
    if (rc == 0)
        snprintf(out, cap, "%.*s", (int)m->body.n, m->body.p);
    return rc;
}

/* A kafka group's first member waits for the group to form (3 s on the
 * mock, more while it rebalances): the first message may take this long. */
enum { FIRST_WAIT_MS = 15000 };

/* ------------------------------------------- groups and their members */

static int contract_groups(void *arg)
{
    (void)arg;
    wv_bus *b = contract_open();
    REQUIRE(b != NULL);
    const char *topic = CNAME("orders");
    if (the_contract.make_topic)
        the_contract.make_topic(topic);
    /* before any group: memory and RabbitMQ say nobody got it; Kafka keeps it */
    CHECK_EQ(wv_bus_publish(b, topic, WV_STR("before anyone")), is_kafka(b) ? 1 : 0);
    wv_bus_sub *billing1, *billing2, *audit;
    REQUIRE_EQ(wv_bus_subscribe(b, topic, CNAME("billing"), &billing1), 0);
    REQUIRE_EQ(wv_bus_subscribe(b, topic, CNAME("billing"), &billing2), 0);
    REQUIRE_EQ(wv_bus_subscribe(b, topic, CNAME("audit"), &audit), 0);
    enum { N = 6 };
    for (int i = 0; i < N; i++) {
        char body[16];
        snprintf(body, sizeof body, "order %d", i);
        CHECK_EQ(wv_bus_publish(b, topic, (wv_str){body, strlen(body)}), 1);
    }
    /* audit gets every one, in order (one partition); on Kafka it reads
     * the message from before it existed first */
    char got[32];
    wv_bus_msg m;
    if (is_kafka(b)) {
        REQUIRE_EQ(contract_recv(audit, &m, got, sizeof got, FIRST_WAIT_MS), 0);
        CHECK_STR_EQ(got, "before anyone");
        CHECK_EQ(wv_bus_ack(audit, &m), 0);
    }
    for (int i = 0; i < N; i++) {
        REQUIRE_EQ(contract_recv(audit, &m, got, sizeof got, FIRST_WAIT_MS), 0);
        char want[16];
        snprintf(want, sizeof want, "order %d", i);
        CHECK_STR_EQ(got, want);
        CHECK_EQ(m.deliveries, 1);
        CHECK(m.published <= wv_now() && m.published > wv_now() - 60000 * NS_PER_MS);
        CHECK_EQ(wv_bus_ack(audit, &m), 0);
    }
    /* billing's members share them: each message reaches one of the two */
    int seen[N] = {0}, total = 0, skipped_first = 0;
    int64_t until = wv_after_ms(2 * FIRST_WAIT_MS);
    while (total < N && wv_now() < until) {
        for (int k = 0; k < 2; k++) {
            wv_bus_sub *s = k ? billing2 : billing1;
            if (contract_recv(s, &m, got, sizeof got, 100) != 0)
                continue;
            if (!strcmp(got, "before anyone"))
                skipped_first++;
            else if (!strncmp(got, "order ", 6) && got[6] >= '0' && got[6] < '0' + N) {
                seen[got[6] - '0']++;
                total++;
            }
            CHECK_EQ(wv_bus_ack(s, &m), 0);
        }
    }
    CHECK_EQ(total, N);
    for (int i = 0; i < N; i++)
        CHECK_EQ(seen[i], 1);
    CHECK_EQ(skipped_first, is_kafka(b) ? 1 : 0);
    /* an ack twice is refused */
    CHECK_EQ(wv_bus_ack(billing1, &m), -EINVAL);
    /* nothing more for anyone */
    CHECK_EQ(wv_bus_recv(audit, &m, wv_after_ms(200)), -ETIMEDOUT);
    if (!is_kafka(b)) {
        CHECK_EQ(wv_bus_backlog(b, topic, CNAME("billing")), 0);
        CHECK_EQ(wv_bus_backlog(b, topic, CNAME("nobody")), -ENOENT);
    } else {
        CHECK_EQ(wv_bus_backlog(b, topic, CNAME("billing")), -ENOTSUP);
    }
    CHECK_EQ(wv_bus_ping(b), 0);
    wv_bus_unsubscribe(billing1);
    wv_bus_unsubscribe(billing2);
    wv_bus_unsubscribe(audit);
    wv_bus_close(b);
    return 0;
}

/* ---------------------------------------------- delivered again */

static int contract_redelivery(void *arg)
{
    (void)arg;
    wv_bus *b = contract_open();
    REQUIRE(b != NULL);
    const char *topic = CNAME("jobs"), *group = CNAME("workers");
    if (the_contract.make_topic)
        the_contract.make_topic(topic);
    wv_bus_sub *a;
    REQUIRE_EQ(wv_bus_subscribe(b, topic, group, &a), 0);
    CHECK_EQ(wv_bus_publish(b, topic, WV_STR("one")), 1);
    CHECK_EQ(wv_bus_publish(b, topic, WV_STR("two")), 1);
    CHECK_EQ(wv_bus_publish(b, topic, WV_STR("three")), 1);
    char got[16];
    wv_bus_msg m1, m2, m3;
    REQUIRE_EQ(contract_recv(a, &m1, got, sizeof got, FIRST_WAIT_MS), 0);
    CHECK_STR_EQ(got, "one");
    REQUIRE_EQ(contract_recv(a, &m2, got, sizeof got, 5000), 0);
    CHECK_STR_EQ(got, "two");
    /* a's handler "crashes": closed with both unacked; the group has them
     * again, first in line */
    wv_bus_unsubscribe(a);
    wv_bus_sub *c;
    REQUIRE_EQ(wv_bus_subscribe(b, topic, group, &c), 0);
    REQUIRE_EQ(contract_recv(c, &m1, got, sizeof got, FIRST_WAIT_MS), 0);
    CHECK_STR_EQ(got, "one");
    if (!is_kafka(b))
        CHECK_EQ(m1.deliveries, 2); /* Kafka does not count a re-read after a close */
    REQUIRE_EQ(contract_recv(c, &m2, got, sizeof got, 5000), 0);
    CHECK_STR_EQ(got, "two");
    CHECK_EQ(wv_bus_ack(c, &m1), 0);
    /* nack with requeue: it comes again (Kafka: the partition is rewound
     * to it, so what follows comes again too) */
    CHECK_EQ(wv_bus_nack(c, &m2, true), 0);
    /* "two" again and "three", in either order (RabbitMQ may have sent
     * "three" to the subscriber before "two" went back to the queue) */
    wv_bus_msg x, y;
    char got2[16];
    REQUIRE_EQ(contract_recv(c, &x, got, sizeof got, 5000), 0);
    REQUIRE_EQ(contract_recv(c, &y, got2, sizeof got2, 5000), 0);
    bool two_first = !strcmp(got, "two");
    m2 = two_first ? x : y;
    m3 = two_first ? y : x;
    CHECK_STR_EQ(two_first ? got : got2, "two");
    CHECK_STR_EQ(two_first ? got2 : got, "three");
    CHECK(m2.deliveries >= 2); /* RabbitMQ's classic queues say only "again" */
    /* nack without requeue: dropped */
    CHECK_EQ(wv_bus_nack(c, &m3, false), 0);
    CHECK_EQ(wv_bus_ack(c, &m2), 0);
    wv_bus_msg none;
    CHECK_EQ(wv_bus_recv(c, &none, wv_after_ms(300)), -ETIMEDOUT);
    wv_bus_unsubscribe(c);
    /* and after all that was acked, a new member of the group gets nothing */
    REQUIRE_EQ(wv_bus_subscribe(b, topic, group, &c), 0);
    CHECK_EQ(wv_bus_recv(c, &none, wv_after_ms(is_kafka(b) ? 6000 : 300)), -ETIMEDOUT);
    wv_bus_unsubscribe(c);
    wv_bus_close(b);
    return 0;
}

/* ------------------------------------- kept while nobody listens */

static int contract_kept(void *arg)
{
    (void)arg;
    wv_bus *b = contract_open();
    REQUIRE(b != NULL);
    const char *topic = CNAME("kept"), *group = CNAME("g");
    if (the_contract.make_topic)
        the_contract.make_topic(topic);
    wv_bus_sub *s;
    REQUIRE_EQ(wv_bus_subscribe(b, topic, group, &s), 0);
    wv_bus_msg m;
    char got[16];
    /* the group exists (Kafka: it joined and read to the end) */
    CHECK_EQ(contract_recv(s, &m, got, sizeof got, is_kafka(b) ? 5000 : 100), -ETIMEDOUT);
    wv_bus_unsubscribe(s);
    CHECK_EQ(wv_bus_publish(b, topic, WV_STR("kept")), 1);
    if (!is_kafka(b))
        CHECK_EQ(wv_bus_backlog(b, topic, group), 1);
    REQUIRE_EQ(wv_bus_subscribe(b, topic, group, &s), 0);
    REQUIRE_EQ(contract_recv(s, &m, got, sizeof got, FIRST_WAIT_MS), 0);
    CHECK_STR_EQ(got, "kept");
    CHECK_EQ(wv_bus_ack(s, &m), 0);
    wv_bus_unsubscribe(s);
    wv_bus_close(b);
    return 0;
}

/* ------------------------------------------ waiting and stopping */

static int contract_stop_later(void *arg)
{
    wv_sleep_ms(50);
    wv_bus_sub_stop(arg);
    return 0;
}

static int contract_waiting(void *arg)
{
    (void)arg;
    wv_bus *b = contract_open();
    REQUIRE(b != NULL);
    const char *topic = CNAME("quiet");
    if (the_contract.make_topic)
        the_contract.make_topic(topic);
    wv_bus_sub *s;
    REQUIRE_EQ(wv_bus_subscribe(b, topic, CNAME("g"), &s), 0);
    wv_bus_msg m;
    int64_t at = wv_after_ms(100);
    CHECK_EQ(wv_bus_recv(s, &m, at), -ETIMEDOUT);
    CHECK(wv_now() >= at);
    int64_t old = wv_deadline_set(wv_after_ms(50));
    CHECK_EQ(wv_bus_recv(s, &m, WV_NEVER), -ETIMEDOUT);
    wv_deadline_set(old);
    wv_group *grp = wv_group_new();
    CHECK_EQ(wv_group_spawn(grp, contract_stop_later, s, NULL), 0);
    CHECK_EQ(wv_bus_recv(s, &m, WV_NEVER), -EPIPE);
    CHECK_EQ(wv_bus_recv(s, &m, WV_NEVER), -EPIPE);
    CHECK_EQ(wv_group_join(grp), 0);
    wv_group_free(grp);
    wv_bus_unsubscribe(s);
    /* limits hold before anything is sent */
    CHECK_EQ(wv_bus_publish(b, "has space", WV_STR("x")), -EINVAL);
    char big[64];
    memset(big, 'x', sizeof big);
    wv_bus_close(b);
    wv_bus *small = NULL;
    REQUIRE_EQ(wv_bus_open(the_contract.url, &(wv_bus_opts){.max_message = 32}, &small), 0);
    CHECK_EQ(wv_bus_publish(small, topic, (wv_str){big, sizeof big}), -EMSGSIZE);
    wv_bus_close(small);
    return 0;
}

#endif
