/*
 * The bus on Kafka (kafka://, include/weave/bus.h) against librdkafka's
 * mock cluster (three brokers, in this process: test_kafka_harness.h):
 * the model's scenarios (bus_contract.h), each on topics of one
 * partition, with Kafka's own promises where they differ (a topic keeps
 * its messages for groups made later, a re-read after a close is not
 * counted as a redelivery, no backlog figure), and the URL's librdkafka
 * properties.
 */
#include "harness.h"

#include "bus_contract.h"
#include "test_kafka_harness.h"

static char url_buf[1024];

static void make_topic(const char *name)
{
    mock_topic(name, 1);
}

static void test_bus_kafka_every_group_gets_each_message_and_one_member_of_a_group_does(void **s)
{
    assert_int_equal(run_in_rt(1, contract_groups, NULL), 0);
    assert_checks_passed();
}

static void
test_bus_kafka_unacked_messages_come_back_when_nacked_or_their_subscriber_closes(void **s)
{
    assert_int_equal(run_in_rt(1, contract_redelivery, NULL), 0);
    assert_checks_passed();
}

static void test_bus_kafka_group_keeps_messages_while_it_has_no_subscriber(void **s)
{
    assert_int_equal(run_in_rt(1, contract_kept, NULL), 0);
    assert_checks_passed();
}

static void test_bus_kafka_recv_times_out_and_is_stopped_and_limits_hold(void **s)
{
    assert_int_equal(run_in_rt(1, contract_waiting, NULL), 0);
    assert_checks_passed();
}

static int ping_down(void *arg)
{
    (void)arg;
    wv_bus *b = contract_open();
    REQUIRE(b != NULL);
    CHECK_STR_EQ(wv_bus_backend(b), "kafka");
    CHECK_EQ(wv_bus_ping(b), 0);
    wv_bus_close(b);
    /* no broker at all: the ping says so within its deadline */
    REQUIRE_EQ(wv_bus_open("kafka://127.0.0.1:1?socket.connection.setup.timeout.ms=1000", NULL, &b),
               0);
    int64_t old = wv_deadline_set(wv_after_ms(1500));
    int rc = wv_bus_ping(b);
    wv_deadline_set(old);
    CHECK(rc < 0);
    wv_bus_close(b);
    return 0;
}

static void test_bus_kafka_ping_asks_the_brokers_and_fails_with_none(void **s)
{
    assert_int_equal(run_in_rt(1, ping_down, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    mock_start(3);
    /* the tests' settings (test_kafka_harness.h) as the URL's properties */
    snprintf(url_buf, sizeof url_buf,
             "kafka://%s?consumer.session.timeout.ms=4000&consumer.heartbeat.interval.ms=300"
             "&consumer.fetch.wait.max.ms=50&topic.metadata.refresh.interval.ms=1000"
             "&producer.linger.ms=5&producer.retry.backoff.ms=50",
             mock_bootstraps);
    the_contract.url = url_buf;
    the_contract.make_topic = make_topic;
    snprintf(the_contract.prefix, sizeof the_contract.prefix, "wvb.%d.", (int)getpid());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_bus_kafka_every_group_gets_each_message_and_one_member_of_a_group_does),
        cmocka_unit_test(
            test_bus_kafka_unacked_messages_come_back_when_nacked_or_their_subscriber_closes),
        cmocka_unit_test(test_bus_kafka_group_keeps_messages_while_it_has_no_subscriber),
        cmocka_unit_test(test_bus_kafka_recv_times_out_and_is_stopped_and_limits_hold),
        cmocka_unit_test(test_bus_kafka_ping_asks_the_brokers_and_fails_with_none),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    mock_stop();
    return rc;
}
