/*
 * The Kafka group consumer against librdkafka's mock cluster (a fresh
 * one per test): messages with keys and headers, acks that commit only
 * what every earlier message of a partition allows, deadlines, select and
 * cancellation on the stream, pause and resume, seek. Committed offsets
 * are read back with a plain librdkafka client. (Failures and recovery:
 * test_kafka_recover.c; rebalances: test_kafka_group.c.)
 *
 * Each test's group waits about 3 s for its first join (the mock's fixed
 * initial rebalance delay).
 */
#include "harness.h"

#include "test_kafka_harness.h"

/* ------------------------------------------------------------ round trip */

static int round_trip_main(void *arg)
{
    static const char *const config[] = {TEST_PRODUCER_CONFIG, NULL};
    wv_kafka *k;
    REQUIRE_EQ(wv_kafka_open(&(wv_kafka_opts){.brokers = mock_bootstraps, .config = config}, &k),
               0);
    wv_kafka_header h[] = {{"trace", WV_STR("t-1")}, {"null", {NULL, 0}}, {"trace", WV_STR("t-2")}};
    for (int i = 0; i < 3; i++) {
        char v[8];
        int n = snprintf(v, sizeof v, "v%d", i);
        REQUIRE_EQ(wv_kafka_produce(
                       k,
                       &(wv_kafka_record){.topic = "orders",
                                          .key = i == 1 ? (wv_str){NULL, 0} : WV_STR("order-9"),
                                          .value = {v, (size_t)n},
                                          .headers = i == 0 ? h : NULL,
                                          .nheaders = i == 0 ? 3 : 0,
                                          .partition = 2,
                                          .has_partition = true,
                                          .timestamp_ms = 1600000000000 + i},
                       NULL),
                   0);
    }
    wv_kafka_close(k);

    wv_kafka_consumer *c;
    REQUIRE_EQ(open_consumer("g-round-trip", "orders", &c), 0);
    wv_kafka_msg *m[3];
    REQUIRE_EQ(recv_n(c, m, 3), 3);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(m[i]->err, 0);
        CHECK_STR_EQ(m[i]->topic, "orders");
        CHECK_EQ(m[i]->partition, 2);
        CHECK_EQ(m[i]->offset, i);
        CHECK_EQ(m[i]->timestamp_ms, 1600000000000 + i);
        char v[8];
        snprintf(v, sizeof v, "v%d", i);
        CHECK(wv_str_eq_cstr(m[i]->value, v));
    }
    CHECK(wv_str_eq_cstr(m[0]->key, "order-9"));
    CHECK(m[1]->key.p == NULL);
    wv_str value;
    CHECK_EQ(wv_kafka_msg_header(m[0], "trace", &value), 1);
    CHECK(wv_str_eq_cstr(value, "t-2")); /* the last of that name */
    CHECK_EQ(wv_kafka_msg_header(m[0], "null", &value), 1);
    CHECK(value.p == NULL);
    CHECK_EQ(wv_kafka_msg_header(m[0], "absent", &value), 0);
    CHECK_EQ(wv_kafka_msg_header_count(m[0]), 3);
    const char *name;
    CHECK_EQ(wv_kafka_msg_header_at(m[0], 0, &name, &value), 1);
    CHECK_STR_EQ(name, "trace");
    CHECK(wv_str_eq_cstr(value, "t-1"));
    CHECK_EQ(wv_kafka_msg_header_at(m[0], 3, &name, &value), 0);
    CHECK_EQ(wv_kafka_msg_header_count(m[1]), 0);
    for (int i = 0; i < 3; i++)
        CHECK_EQ(wv_kafka_ack(m[i]), 0);
    CHECK_EQ(wv_kafka_commit(c), 0);
    wv_kafka_consumer_stats st;
    wv_kafka_consumer_stats_get(c, &st);
    CHECK_EQ(st.received, 3);
    CHECK_EQ(st.acked, 3);
    CHECK_EQ(st.assigned, 4);
    CHECK(st.rebalances >= 1);
    int64_t committed[4];
    REQUIRE_EQ(mock_committed_on_pool("g-round-trip", "orders", 4, committed), 0);
    CHECK_EQ(committed[2], 3);
    CHECK_EQ(wv_kafka_consumer_close(c), 0);
    return 0;
}

static void test_kafka_consumer_receives_keys_values_headers_and_commits_acked(void **state)
{
    run_on_topic("orders", 4, round_trip_main, NULL);
}

/* ------------------------------------------------------- acks in order */

static int ack_order_main(void *arg)
{
    wv_kafka_consumer *c;
    wv_kafka_msg *m[10];
    REQUIRE_EQ(consume_fresh("acks", "g-acks", 10, "a", &c, m), 0);
    /* handlers finish out of order: 3 and 4 are still running */
    for (int i = 0; i < 10; i++)
        if (i != 3 && i != 4)
            CHECK_EQ(wv_kafka_ack(m[i]), 0);
    CHECK_EQ(wv_kafka_commit(c), 0);
    CHECK_EQ(committed_of("g-acks", "acks"), 3); /* the next to read: 3 */
    CHECK_EQ(wv_kafka_ack(m[4]), 0);
    CHECK_EQ(wv_kafka_commit(c), 0);
    CHECK_EQ(committed_of("g-acks", "acks"), 3);
    CHECK_EQ(wv_kafka_ack(m[3]), 0);
    CHECK_EQ(wv_kafka_commit(c), 0);
    CHECK_EQ(committed_of("g-acks", "acks"), 10);
    CHECK_EQ(wv_kafka_consumer_close(c), 0);
    return 0;
}

static void test_kafka_ack_out_of_order_commits_only_up_to_the_first_unacked(void **state)
{
    run_on_topic("acks", 1, ack_order_main, NULL);
}

/* -------------------------------------------- deadline, select, cancel */

static int blocked_receiver(void *arg)
{
    wv_kafka_msg *m;
    CHECK_EQ(wv_kafka_recv(arg, &m, WV_NEVER), -ECANCELED);
    return 0;
}

static int closed_receiver(void *arg)
{
    wv_kafka_msg *m;
    CHECK_EQ(wv_kafka_recv(arg, &m, WV_NEVER), -EPIPE);
    return 0;
}

static int stream_main(void *arg)
{
    /* opened without topics and closed: nothing to leave */
    wv_kafka_consumer *idle;
    REQUIRE_EQ(wv_kafka_consumer_open(&(wv_kafka_consumer_opts){.brokers = mock_bootstraps,
                                                                .group_id = "g-idle",
                                                                .config = consumer_config},
                                      &idle),
               0);
    CHECK_EQ(wv_kafka_consumer_close(idle), 0);
    /* opened first, subscribed after */
    wv_kafka_consumer *c;
    REQUIRE_EQ(wv_kafka_consumer_open(&(wv_kafka_consumer_opts){.brokers = mock_bootstraps,
                                                                .group_id = "g-stream",
                                                                .config = consumer_config},
                                      &c),
               0);
    CHECK_EQ(wv_kafka_subscribe(c, (const char *[]){NULL}), -EINVAL);
    REQUIRE_EQ(wv_kafka_subscribe(c, (const char *[]){"stream", NULL}), 0);
    wv_kafka_msg *m;
    int64_t t0 = wv_now();
    CHECK_EQ(wv_kafka_recv(c, &m, wv_after_ms(300)), -ETIMEDOUT);
    CHECK_BETWEEN(ms_since(t0), 290, 2000);

    CHECK_EQ(run_then_cancel(blocked_receiver, c, 20), 0);

    /* the stream in a select beside a channel of our own */
    wv_chan *other = wv_chan_new(sizeof(int), 1);
    int token = 7;
    REQUIRE_EQ(wv_chan_send(other, &token), 0);
    wv_kafka_msg *got = NULL;
    int tok = 0;
    wv_select_case cases[] = {{wv_kafka_consumer_chan(c), WV_RECV, &got, 0},
                              {other, WV_RECV, &tok, 0}};
    CHECK_EQ(wv_chan_select(cases, 2, wv_after_ms(1000)), 1);
    CHECK_EQ(tok, 7);
    REQUIRE_EQ(produce_n("stream", 1, 0, "s"), 0);
    CHECK_EQ(wv_chan_select(cases, 2, wv_after_ms(15000)), 0);
    REQUIRE(got != NULL);
    CHECK_EQ(wv_kafka_msg_check(got), 0);
    CHECK(wv_str_eq_cstr(got->value, "s0"));
    CHECK_EQ(wv_kafka_ack(got), 0);
    wv_chan_free(other);
    /* a receiver waiting when the consumer closes gets -EPIPE */
    wv_group *g = wv_group_new();
    REQUIRE_EQ(wv_group_spawn(g, closed_receiver, c, NULL), 0);
    wv_sleep_ms(20);
    CHECK_EQ(wv_kafka_consumer_close(c), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    return 0;
}

static void test_kafka_recv_honours_deadlines_cancellation_and_select_after_subscribe(void **state)
{
    run_on_topic("stream", 1, stream_main, NULL);
}

/* ---------------------------------------------------- pause and resume */

static int pause_main(void *arg)
{
    wv_kafka_consumer *c;
    wv_kafka_msg *m[60];
    REQUIRE_EQ(consume_fresh("paused", "g-pause", 20, "p", &c, m), 0);
    CHECK_EQ(wv_kafka_pause(c, "paused", -1), 0);
    CHECK_EQ(wv_kafka_pause(c, "other", -1), -ENOENT);
    wv_sleep_ms(500); /* librdkafka's threads act on it */
    REQUIRE_EQ(produce_n("paused", 20, 0, "q"), 0);
    wv_kafka_msg *extra;
    CHECK_EQ(wv_kafka_recv(c, &extra, wv_after_ms(1000)), -ETIMEDOUT);
    CHECK_EQ(wv_kafka_resume(c, NULL, -1), 0);
    REQUIRE_EQ(recv_n(c, m + 20, 20), 20);
    for (int i = 0; i < 40; i++) {
        CHECK_EQ(m[i]->offset, i);
        CHECK_EQ(wv_kafka_ack(m[i]), 0);
    }
    CHECK_EQ(wv_kafka_recv(c, &extra, wv_after_ms(300)), -ETIMEDOUT);
    CHECK_EQ(wv_kafka_consumer_close(c), 0);
    return 0;
}

static void test_kafka_pause_stops_the_stream_and_resume_goes_on_without_gaps(void **state)
{
    run_on_topic("paused", 1, pause_main, NULL);
}

/* ------------------------------------------------------------------ seek */

static int seek_main(void *arg)
{
    REQUIRE_EQ(produce_n("sought", 10, 0, "s"), 0);
    wv_kafka_consumer *c;
    REQUIRE_EQ(open_consumer("g-seek", "sought", &c), 0);
    wv_kafka_msg *m[10], *again[8];
    REQUIRE_EQ(recv_n(c, m, 10), 10);
    CHECK_EQ(wv_kafka_ack(m[0]), 0);
    CHECK_EQ(wv_kafka_ack(m[1]), 0);
    CHECK_EQ(wv_kafka_seek(c, "sought", 0, 2), 0);
    CHECK_EQ(wv_kafka_seek(c, "sought", 5, 2), -ENOENT);
    /* what was fetched before the seek no longer counts */
    CHECK_EQ(wv_kafka_ack(m[2]), -ESTALE);
    for (int i = 3; i < 10; i++)
        wv_kafka_msg_free(m[i]);
    REQUIRE_EQ(recv_n(c, again, 8), 8);
    for (int i = 0; i < 8; i++) {
        CHECK_EQ(again[i]->offset, i + 2);
        CHECK_EQ(wv_kafka_ack(again[i]), 0);
    }
    CHECK_EQ(wv_kafka_commit(c), 0);
    CHECK_EQ(committed_of("g-seek", "sought"), 10);
    wv_kafka_consumer_stats st;
    wv_kafka_consumer_stats_get(c, &st);
    CHECK(st.stale >= 1);
    CHECK_EQ(wv_kafka_consumer_close(c), 0);
    return 0;
}

static void test_kafka_seek_reads_again_and_makes_earlier_acks_stale(void **state)
{
    run_on_topic("sought", 1, seek_main, NULL);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kafka_consumer_receives_keys_values_headers_and_commits_acked),
        cmocka_unit_test(test_kafka_ack_out_of_order_commits_only_up_to_the_first_unacked),
        cmocka_unit_test(test_kafka_recv_honours_deadlines_cancellation_and_select_after_subscribe),
        cmocka_unit_test(test_kafka_pause_stops_the_stream_and_resume_goes_on_without_gaps),
        cmocka_unit_test(test_kafka_seek_reads_again_and_makes_earlier_acks_stale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
