/*
 * The Kafka producer against librdkafka's mock cluster (three brokers in
 * this process, a fresh one per test): delivery reports with partition and
 * offset, keys, headers and partition choice read back by a plain
 * librdkafka consumer, many messages in flight, librdkafka's queue full,
 * errors injected by the brokers, a leader killed mid-stream, every broker
 * down, a fatal idempotence error, deadlines, cancellation and close.
 */
#include "harness.h"

#include "kafka/kafka_internal.h"
#include "test_kafka_harness.h"

typedef struct producer_run {
    const char *const *config; /* NULL: TEST_PRODUCER_CONFIG */
    int (*body)(wv_kafka *k, void *arg);
    void *arg;
} producer_run;

static int producer_main(void *arg)
{
    producer_run *pr = arg;
    static const char *const test_config[] = {TEST_PRODUCER_CONFIG, NULL};
    wv_kafka *k;
    wv_kafka_opts o = {.brokers = mock_bootstraps, .config = pr->config ? pr->config : test_config};
    int rc = wv_kafka_open(&o, &k);
    if (!CHECK_EQ(rc, 0)) {
        fprintf(stderr, "open: %s\n", wv_errmsg());
        return -1;
    }
    rc = pr->body(k, pr->arg);
    wv_kafka_close(k);
    return rc;
}

/* Run body with a producer on a fresh mock cluster with `topic` (of
 * `partitions` partitions, if given), in a one-shard runtime. */
static void run_producer(const char *topic, int partitions, const char *const *config,
                         int (*body)(wv_kafka *, void *), void *arg)
{
    mock_start(3);
    if (topic)
        mock_topic(topic, partitions);
    producer_run pr = {config, body, arg};
    assert_int_equal(run_in_rt(1, producer_main, &pr), 0);
    mock_stop();
    assert_checks_passed();
}

/* ------------------------------------------------------------ round trip */

static int round_trip_body(wv_kafka *k, void *arg)
{
    wv_kafka_header hdrs[] = {
        {"trace", WV_STR("abc")},
        {"empty", WV_STR("")},
        {"nothing", {NULL, 0}},
        {"trace", WV_STR("second")},
    };
    wv_kafka_report rep[3];
    REQUIRE_EQ(wv_kafka_produce(k,
                                &(wv_kafka_record){.topic = "rt",
                                                   .key = WV_STR("k1"),
                                                   .value = WV_STR("first"),
                                                   .partition = 1,
                                                   .has_partition = true,
                                                   .headers = hdrs,
                                                   .nheaders = 4,
                                                   .timestamp_ms = 1700000000123},
                                &rep[0]),
               0);
    REQUIRE_EQ(wv_kafka_produce(k,
                                &(wv_kafka_record){.topic = "rt",
                                                   .value = WV_STR("no key"),
                                                   .partition = 1,
                                                   .has_partition = true},
                                &rep[1]),
               0);
    REQUIRE_EQ(wv_kafka_produce(
                   k,
                   &(wv_kafka_record){
                       .topic = "rt", .key = WV_STR("k3"), .partition = 1, .has_partition = true},
                   &rep[2]),
               0);
    for (int i = 0; i < 3; i++) {
        CHECK_EQ(rep[i].partition, 1);
        CHECK_EQ(rep[i].offset, i);
    }
    /* (the report's timestamp is the broker's log-append time when it
     * sends one, and the mock sends a made-up one: not checked here) */

    raw_msg got[8];
    REQUIRE_EQ(mock_read_on_pool("rt", 1, 0, got, 8), 3);
    CHECK_EQ(got[0].key_len, 2);
    CHECK(memcmp(got[0].key, "k1", 2) == 0);
    CHECK_EQ(got[0].value_len, 5);
    CHECK(memcmp(got[0].value, "first", 5) == 0);
    CHECK_STR_EQ(got[0].headers, "trace=abc;empty=;nothing;trace=second;");
    CHECK_EQ(got[0].timestamp_ms, 1700000000123);
    CHECK_EQ(got[1].key_len, -1);
    CHECK_STR_EQ(got[1].headers, "");
    CHECK_EQ(got[2].value_len, -1); /* a null value */

    wv_kafka_stats st;
    wv_kafka_stats_get(k, &st);
    CHECK_EQ(st.produced, 3);
    CHECK_EQ(st.delivered, 3);
    CHECK_EQ(st.inflight, 0);
    return 0;
}

static void test_kafka_produce_reports_partition_and_offset_and_keeps_keys_and_headers(void **state)
{
    run_producer("rt", 2, NULL, round_trip_body, NULL);
}

/* ------------------------------------------------------ partition choice */

static int by_key_body(wv_kafka *k, void *arg)
{
    int32_t first = -1;
    for (int i = 0; i < 20; i++) {
        wv_kafka_report rep;
        REQUIRE_EQ(
            wv_kafka_produce(
                k,
                &(wv_kafka_record){.topic = "keys", .key = WV_STR("user-7"), .value = WV_STR("v")},
                &rep),
            0);
        if (first < 0)
            first = rep.partition;
        CHECK_EQ(rep.partition, first);
    }
    bool seen[4] = {false};
    for (int i = 0; i < 40; i++) {
        char key[16];
        int n = snprintf(key, sizeof key, "key-%d", i);
        wv_kafka_report rep;
        REQUIRE_EQ(
            wv_kafka_produce(k, &(wv_kafka_record){.topic = "keys", .key = {key, (size_t)n}}, &rep),
            0);
        REQUIRE(rep.partition >= 0 && rep.partition < 4);
        seen[rep.partition] = true;
    }
    CHECK(seen[0] + seen[1] + seen[2] + seen[3] >= 3); /* 40 keys hash over the partitions */
    wv_kafka_report rep;
    CHECK_EQ(
        wv_kafka_produce(
            k, &(wv_kafka_record){.topic = "keys", .partition = 4, .has_partition = true}, &rep),
        -ENOENT);
    CHECK(strstr(wv_errmsg(), "keys") != NULL);
    return 0;
}

static void
test_kafka_produce_sends_one_key_to_one_partition_and_refuses_a_missing_one(void **state)
{
    run_producer("keys", 4, NULL, by_key_body, NULL);
}

/* ------------------------------------------------------- many in flight */

enum { IN_FLIGHT = 1000 };

static int in_flight_body(wv_kafka *k, void *arg)
{
    static wv_kafka_pending *p[IN_FLIGHT];
    char value[32];
    for (int i = 0; i < IN_FLIGHT; i++) {
        int n = snprintf(value, sizeof value, "m%d", i);
        REQUIRE_EQ(wv_kafka_produce_start(
                       k, &(wv_kafka_record){.topic = "many", .value = {value, (size_t)n}}, &p[i]),
                   0);
    }
    wv_kafka_stats st;
    wv_kafka_stats_get(k, &st);
    CHECK(st.inflight > 0); /* returned before the reports */
    static bool seen[4][IN_FLIGHT];
    int per_partition[4] = {0};
    for (int i = 0; i < IN_FLIGHT; i++) {
        wv_kafka_report rep;
        CHECK_EQ(wv_kafka_pending_wait(p[i], WV_NEVER, &rep), 0);
        CHECK(wv_kafka_pending_done(p[i]));
        wv_kafka_pending_free(p[i]);
        if (!CHECK(rep.partition >= 0 && rep.partition < 4 && rep.offset >= 0 &&
                   rep.offset < IN_FLIGHT))
            continue;
        CHECK(!seen[rep.partition][rep.offset]);
        seen[rep.partition][rep.offset] = true;
        per_partition[rep.partition]++;
    }
    /* each partition's offsets are 0..n-1, every one reported once */
    for (int q = 0; q < 4; q++)
        for (int o = 0; o < per_partition[q]; o++)
            CHECK(seen[q][o]);
    CHECK_EQ(per_partition[0] + per_partition[1] + per_partition[2] + per_partition[3], IN_FLIGHT);
    wv_kafka_stats_get(k, &st);
    CHECK_EQ(st.delivered, IN_FLIGHT);
    CHECK_EQ(st.inflight, 0);
    return 0;
}

static void test_kafka_produce_start_keeps_1000_in_flight_each_reported_once(void **state)
{
    run_producer("many", 4, NULL, in_flight_body, NULL);
}

static int queue_full_body(wv_kafka *k, void *arg)
{
    /* librdkafka holds 5 messages at most: the other starts wait for room */
    wv_kafka_pending *p[200];
    for (int i = 0; i < 200; i++)
        REQUIRE_EQ(wv_kafka_produce_start(
                       k, &(wv_kafka_record){.topic = "full", .value = WV_STR("x")}, &p[i]),
                   0);
    for (int i = 0; i < 200; i++) {
        CHECK_EQ(wv_kafka_pending_wait(p[i], WV_NEVER, NULL), 0);
        wv_kafka_pending_free(p[i]);
    }
    raw_msg got[1];
    CHECK_EQ(mock_read_on_pool("full", 0, 199, got, 1), 1);
    return 0;
}

static void test_kafka_produce_waits_for_room_while_librdkafka_queue_is_full(void **state)
{
    static const char *const config[] = {TEST_PRODUCER_CONFIG, "queue.buffering.max.messages", "5",
                                         NULL};
    run_producer("full", 1, config, queue_full_body, NULL);
}

/* ----------------------------------------------------- compression */

static int compressed_body(wv_kafka *k, void *arg)
{
    char value[200];
    memset(value, 'z', sizeof value);
    for (int i = 0; i < 50; i++) {
        value[0] = (char)('A' + i % 26);
        REQUIRE_EQ(
            wv_kafka_produce_start(
                k, &(wv_kafka_record){.topic = "zipped", .value = {value, sizeof value}}, NULL),
            0);
    }
    REQUIRE_EQ(wv_kafka_flush(k), 0);
    static raw_msg got[64];
    REQUIRE_EQ(mock_read_on_pool("zipped", 0, 0, got, 64), 50);
    for (int i = 0; i < 50; i++) {
        CHECK_EQ(got[i].value_len, 200);
        CHECK_EQ(got[i].value[0], 'A' + i % 26);
        CHECK_EQ(got[i].value[199], 'z');
    }
    return 0;
}

static void test_kafka_produce_batches_and_compresses_as_librdkafka_is_told(void **state)
{
    static const char *const zstd[] = {
        TEST_PRODUCER_CONFIG, "compression.type", "zstd", "linger.ms", "50", NULL};
    static const char *const gzip[] = {
        TEST_PRODUCER_CONFIG, "compression.type", "gzip", "batch.num.messages", "7", NULL};
    run_producer("zipped", 1, zstd, compressed_body, NULL);
    run_producer("zipped", 1, gzip, compressed_body, NULL);
}

/* ---------------------------------------------------------------- errors */

static int too_large_body(wv_kafka *k, void *arg)
{
    static char big[3000];
    int rc =
        wv_kafka_produce(k, &(wv_kafka_record){.topic = "sized", .value = {big, sizeof big}}, NULL);
    CHECK_EQ(rc, -EMSGSIZE); /* refused before it leaves: message.max.bytes */
    CHECK(strstr(wv_errmsg(), "sized") != NULL);
    rd_kafka_mock_push_request_errors(mock, KAFKA_API_PRODUCE, 1,
                                      RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE);
    rc = wv_kafka_produce(k, &(wv_kafka_record){.topic = "sized", .value = WV_STR("small")}, NULL);
    CHECK_EQ(rc, -EMSGSIZE); /* refused by the broker */
    CHECK(strstr(wv_errmsg(), "too large") != NULL);
    CHECK_EQ(wv_kafka_produce(k, &(wv_kafka_record){.topic = "sized", .value = WV_STR("ok")}, NULL),
             0);
    return 0;
}

static void test_kafka_produce_of_a_message_too_large_is_emsgsize(void **state)
{
    static const char *const config[] = {TEST_PRODUCER_CONFIG, "message.max.bytes", "2000", NULL};
    run_producer("sized", 1, config, too_large_body, NULL);
}

static int missing_topic_body(wv_kafka *k, void *arg)
{
    rd_kafka_mock_topic_set_error(mock, "nosuch", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    int64_t t0 = wv_now();
    int rc = wv_kafka_produce(k, &(wv_kafka_record){.topic = "nosuch", .value = WV_STR("x")}, NULL);
    CHECK_EQ(rc, -ENOENT);
    CHECK(strstr(wv_errmsg(), "nosuch") != NULL);
    CHECK(ms_since(t0) < 5000);
    return 0;
}

static void test_kafka_produce_to_a_topic_that_does_not_exist_is_enoent(void **state)
{
    static const char *const config[] = {TEST_PRODUCER_CONFIG, "topic.metadata.propagation.max.ms",
                                         "200", NULL};
    run_producer(NULL, 0, config, missing_topic_body, NULL);
}

static int retried_body(wv_kafka *k, void *arg)
{
    /* retriable refusals and a dropped connection: the idempotent producer
     * sends again, and the log holds each message once, in order */
    rd_kafka_mock_push_request_errors(
        mock, KAFKA_API_PRODUCE, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS);
    wv_kafka_pending *p[30];
    char value[16];
    for (int i = 0; i < 30; i++) {
        int n = snprintf(value, sizeof value, "r%02d", i);
        REQUIRE_EQ(wv_kafka_produce_start(
                       k, &(wv_kafka_record){.topic = "retry", .value = {value, (size_t)n}}, &p[i]),
                   0);
        if (i % 10 == 9)
            wv_sleep_ms(20);
    }
    for (int i = 0; i < 30; i++) {
        CHECK_EQ(wv_kafka_pending_wait(p[i], WV_NEVER, NULL), 0);
        wv_kafka_pending_free(p[i]);
    }
    static raw_msg got[64];
    REQUIRE_EQ(mock_read_on_pool("retry", 0, 0, got, 64), 30);
    for (int i = 0; i < 30; i++) {
        snprintf(value, sizeof value, "r%02d", i);
        CHECK(got[i].value_len == 3 && memcmp(got[i].value, value, 3) == 0);
    }
    return 0;
}

static void test_kafka_produce_rides_out_injected_broker_errors_without_duplicates(void **state)
{
    run_producer("retry", 1, NULL, retried_body, NULL);
}

/* --------------------------------------------------- leader killed */

typedef struct ha_state {
    wv_kafka *k;
    int acked[4];
    int failed;
} ha_state;

typedef struct ha_worker {
    ha_state *st;
    int id;
} ha_worker;

static int ha_produce(void *arg)
{
    ha_worker *w = arg;
    for (int i = 0; i < 100; i++) {
        char value[32];
        int n = snprintf(value, sizeof value, "w%d-%03d", w->id, i);
        int rc = wv_kafka_produce(
            w->st->k, &(wv_kafka_record){.topic = "ha", .value = {value, (size_t)n}}, NULL);
        if (rc == 0)
            w->st->acked[w->id]++;
        else
            w->st->failed++;
        wv_sleep_ms(3);
    }
    return 0;
}

static int set_leader_job(void *arg)
{
    return rd_kafka_mock_partition_set_leader(mock, "ha", 0, (int32_t)(intptr_t)arg);
}

static int leader_killed_body(wv_kafka *k, void *arg)
{
    ha_state st = {.k = k};
    ha_worker w[4];
    wv_group *g = wv_group_new();
    for (int i = 0; i < 4; i++) {
        w[i] = (ha_worker){&st, i};
        REQUIRE_EQ(wv_group_spawn(g, ha_produce, &w[i], NULL), 0);
    }
    /* kill the leader once messages flow */
    int64_t until = wv_after_ms(10000);
    while (st.acked[0] + st.acked[1] + st.acked[2] + st.acked[3] < 20 && wv_now() < until)
        wv_sleep_ms(5);
    CHECK(st.acked[0] + st.acked[1] + st.acked[2] + st.acked[3] >= 20);
    /* the leader dies; a while later broker 2 takes over; then 1 is back */
    CHECK_EQ(mock_broker_on_pool(1, false), 0);
    wv_sleep_ms(300);
    CHECK_EQ(wv_offload(set_leader_job, (void *)(intptr_t)2), 0);
    wv_sleep_ms(300);
    CHECK_EQ(mock_broker_on_pool(1, true), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    int acked = st.acked[0] + st.acked[1] + st.acked[2] + st.acked[3];
    CHECK_EQ(acked, 400);
    CHECK_EQ(st.failed, 0);
    /* every acknowledged message is in the log, once */
    static raw_msg got[512];
    int n = mock_read_on_pool("ha", 0, 0, got, 512);
    CHECK_EQ(n, 400);
    static bool seen[4][100];
    for (int i = 0; i < n; i++) {
        int id, seq;
        if (!CHECK(sscanf(got[i].value, "w%d-%d", &id, &seq) == 2 && id >= 0 && id < 4 &&
                   seq >= 0 && seq < 100))
            continue;
        CHECK(!seen[id][seq]);
        seen[id][seq] = true;
    }
    return 0;
}

static void test_kafka_produce_loses_no_acknowledged_message_when_the_leader_dies(void **state)
{
    mock_start(3);
    mock_topic("ha", 1);
    assert_int_equal(rd_kafka_mock_partition_set_leader(mock, "ha", 0, 1), 0);
    producer_run pr = {NULL, leader_killed_body, NULL};
    assert_int_equal(run_in_rt(1, producer_main, &pr), 0);
    mock_stop();
    assert_checks_passed();
}

/* ------------------------------------------------------ every broker down */

static int all_down_body(wv_kafka *k, void *arg)
{
    for (int b = 1; b <= 3; b++)
        CHECK_EQ(mock_broker_on_pool(b, false), 0);
    /* the fiber's deadline */
    int64_t old = wv_deadline_set(wv_after_ms(400));
    int64_t t0 = wv_now();
    int rc = wv_kafka_produce(k, &(wv_kafka_record){.topic = "down", .value = WV_STR("a")}, NULL);
    wv_deadline_set(old);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_BETWEEN(ms_since(t0), 350, 3000);
    CHECK(strstr(wv_errmsg(), "deadline") != NULL);
    /* librdkafka's own limit (message.timeout.ms), with what it last saw */
    rc = wv_kafka_produce(k, &(wv_kafka_record){.topic = "down", .value = WV_STR("b")}, NULL);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK(strstr(wv_errmsg(), "timed out") != NULL);
    CHECK(strstr(wv_errmsg(), "last saw") != NULL);
    /* back up: produce again works */
    for (int b = 1; b <= 3; b++)
        CHECK_EQ(mock_broker_on_pool(b, true), 0);
    CHECK_EQ(wv_kafka_produce(k, &(wv_kafka_record){.topic = "down", .value = WV_STR("c")}, NULL),
             0);
    return 0;
}

static void test_kafka_produce_with_every_broker_down_times_out_and_says_why(void **state)
{
    static const char *const config[] = {TEST_PRODUCER_CONFIG,
                                         "message.timeout.ms",
                                         "1500",
                                         "reconnect.backoff.max.ms",
                                         "200",
                                         NULL};
    run_producer("down", 1, config, all_down_body, NULL);
}

/* ------------------------------------------------------------ fatal error */

static int fatal_body(wv_kafka *k, void *arg)
{
    REQUIRE_EQ(
        wv_kafka_produce(k, &(wv_kafka_record){.topic = "fatal", .value = WV_STR("1")}, NULL), 0);
    rd_kafka_test_fatal_error(kafka_producer_handle(k),
                              RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                              "injected by the test");
    wv_kafka_pending *p = NULL;
    int rc =
        wv_kafka_produce_start(k, &(wv_kafka_record){.topic = "fatal", .value = WV_STR("2")}, &p);
    if (rc == 0) { /* taken before the pump saw the error: its report says so */
        rc = wv_kafka_pending_wait(p, WV_NEVER, NULL);
        wv_kafka_pending_free(p);
    }
    CHECK_EQ(rc, -ENOTRECOVERABLE);
    CHECK(strstr(wv_errmsg(), "fatal") != NULL);
    wv_sleep_ms(50);
    rc = wv_kafka_produce(k, &(wv_kafka_record){.topic = "fatal", .value = WV_STR("3")}, NULL);
    CHECK_EQ(rc, -ENOTRECOVERABLE);
    CHECK(strstr(wv_errmsg(), "injected by the test") != NULL);
    return 0;
}

static void test_kafka_produce_after_a_fatal_idempotence_error_is_enotrecoverable(void **state)
{
    run_producer("fatal", 1, NULL, fatal_body, NULL);
}

/* --------------------------------------------- deadlines, cancel, close */

static int cancelled_producer(void *arg)
{
    wv_kafka *k = arg;
    int rc = wv_kafka_produce(k, &(wv_kafka_record){.topic = "gone", .value = WV_STR("c")}, NULL);
    CHECK_EQ(rc, -ECANCELED);
    return 0;
}

static int give_up_body(wv_kafka *k, void *arg)
{
    for (int b = 1; b <= 3; b++)
        CHECK_EQ(mock_broker_on_pool(b, false), 0);
    /* a completion waited for with its own time limit stays pending */
    wv_kafka_pending *p;
    REQUIRE_EQ(
        wv_kafka_produce_start(k, &(wv_kafka_record){.topic = "gone", .value = WV_STR("a")}, &p),
        0);
    CHECK_EQ(wv_kafka_pending_wait(p, wv_after_ms(100), NULL), -ETIMEDOUT);
    CHECK(!wv_kafka_pending_done(p));
    /* a cancelled produce returns at once */
    CHECK_EQ(run_then_cancel(cancelled_producer, k, 50), 0);
    /* brokers back: the abandoned message is still delivered; the pending
     * one too, and the report is there to read */
    for (int b = 1; b <= 3; b++)
        CHECK_EQ(mock_broker_on_pool(b, true), 0);
    wv_kafka_report rep;
    CHECK_EQ(wv_kafka_pending_wait(p, WV_NEVER, &rep), 0);
    wv_kafka_pending_free(p);
    CHECK_EQ(wv_kafka_flush(k), 0);
    raw_msg got[4];
    CHECK_EQ(mock_read_on_pool("gone", 0, 0, got, 4), 2);
    /* a completion freed before its report is dropped when it comes */
    REQUIRE_EQ(
        wv_kafka_produce_start(k, &(wv_kafka_record){.topic = "gone", .value = WV_STR("d")}, &p),
        0);
    wv_kafka_pending_free(p);
    CHECK_EQ(wv_kafka_flush(k), 0);
    return 0;
}

static void test_kafka_produce_given_up_by_deadline_or_cancel_is_still_delivered(void **state)
{
    run_producer("gone", 1, NULL, give_up_body, NULL);
}

static int close_main(void *arg)
{
    static const char *const config[] = {TEST_PRODUCER_CONFIG, NULL};
    wv_kafka *k;
    REQUIRE_EQ(wv_kafka_open(&(wv_kafka_opts){.brokers = mock_bootstraps, .config = config}, &k),
               0);
    REQUIRE_EQ(
        wv_kafka_produce(k, &(wv_kafka_record){.topic = "closing", .value = WV_STR("0")}, NULL), 0);
    for (int b = 1; b <= 3; b++)
        CHECK_EQ(mock_broker_on_pool(b, false), 0);
    wv_kafka_pending *p[5];
    for (int i = 0; i < 5; i++)
        REQUIRE_EQ(wv_kafka_produce_start(
                       k, &(wv_kafka_record){.topic = "closing", .value = WV_STR("x")}, &p[i]),
                   0);
    int64_t old = wv_deadline_set(wv_after_ms(300));
    int64_t t0 = wv_now();
    CHECK_EQ(wv_kafka_close(k), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK(ms_since(t0) < 3000);
    for (int i = 0; i < 5; i++) {
        CHECK(wv_kafka_pending_done(p[i]));
        CHECK_EQ(wv_kafka_pending_wait(p[i], WV_NEVER, NULL), -ESHUTDOWN);
        wv_kafka_pending_free(p[i]);
    }
    return 0;
}

static void test_kafka_close_fails_what_its_deadline_left_with_eshutdown(void **state)
{
    mock_start(3);
    mock_topic("closing", 1);
    assert_int_equal(run_in_rt(1, close_main, NULL), 0);
    mock_stop();
    assert_checks_passed();
}

/* ------------------------------------------------------------- opening */

static int open_main(void *arg)
{
    wv_kafka *k;
    static const char *const bad[] = {"no.such.property", "1", NULL};
    CHECK_EQ(wv_kafka_open(&(wv_kafka_opts){.config = bad}, &k), -EINVAL);
    CHECK(strstr(wv_errmsg(), "no.such.property") != NULL);
    static const char *const odd[] = {"linger.ms", NULL};
    CHECK_EQ(wv_kafka_open(&(wv_kafka_opts){.config = odd}, &k), -EINVAL);
    /* no options: $KAFKA_BROKERS */
    REQUIRE_EQ(wv_kafka_open(NULL, &k), 0);
    CHECK_EQ(wv_kafka_produce(k, &(wv_kafka_record){.topic = "env", .value = WV_STR("e")}, NULL),
             0);
    CHECK_EQ(wv_kafka_produce(k, &(wv_kafka_record){.value = WV_STR("e")}, NULL), -EINVAL);
    CHECK_EQ(wv_kafka_close(k), 0);
    return 0;
}

static void test_kafka_open_takes_kafka_brokers_and_refuses_bad_properties(void **state)
{
    mock_start(3);
    setenv("KAFKA_BROKERS", mock_bootstraps, 1);
    assert_int_equal(run_in_rt(1, open_main, NULL), 0);
    unsetenv("KAFKA_BROKERS");
    mock_stop();
    assert_checks_passed();
    wv_kafka *k;
    assert_int_equal(wv_kafka_open(NULL, &k), -EPERM);
}

static int other_shard(void *arg)
{
    wv_kafka *k = arg;
    CHECK_EQ(wv_kafka_produce(k, &(wv_kafka_record){.topic = "t", .value = WV_STR("x")}, NULL),
             -EXDEV);
    CHECK_EQ(wv_kafka_flush(k), -EXDEV);
    return 0;
}

static int exdev_body(wv_kafka *k, void *arg)
{
    CHECK_EQ(wv_shard_call(1, other_shard, k), 0);
    return 0;
}

static void test_kafka_producer_used_from_another_shard_is_exdev(void **state)
{
    mock_start(3);
    producer_run pr = {NULL, exdev_body, NULL};
    wv_main_opts opts = {.shards = 2, .no_signal_handling = true};
    assert_int_equal(run_in_rt_opts(&opts, producer_main, &pr), 0);
    mock_stop();
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_kafka_produce_reports_partition_and_offset_and_keeps_keys_and_headers),
        cmocka_unit_test(
            test_kafka_produce_sends_one_key_to_one_partition_and_refuses_a_missing_one),
        cmocka_unit_test(test_kafka_produce_start_keeps_1000_in_flight_each_reported_once),
        cmocka_unit_test(test_kafka_produce_waits_for_room_while_librdkafka_queue_is_full),
        cmocka_unit_test(test_kafka_produce_batches_and_compresses_as_librdkafka_is_told),
        cmocka_unit_test(test_kafka_produce_of_a_message_too_large_is_emsgsize),
        cmocka_unit_test(test_kafka_produce_to_a_topic_that_does_not_exist_is_enoent),
        cmocka_unit_test(test_kafka_produce_rides_out_injected_broker_errors_without_duplicates),
        cmocka_unit_test(test_kafka_produce_loses_no_acknowledged_message_when_the_leader_dies),
        cmocka_unit_test(test_kafka_produce_with_every_broker_down_times_out_and_says_why),
        cmocka_unit_test(test_kafka_produce_after_a_fatal_idempotence_error_is_enotrecoverable),
        cmocka_unit_test(test_kafka_produce_given_up_by_deadline_or_cancel_is_still_delivered),
        cmocka_unit_test(test_kafka_close_fails_what_its_deadline_left_with_eshutdown),
        cmocka_unit_test(test_kafka_open_takes_kafka_brokers_and_refuses_bad_properties),
        cmocka_unit_test(test_kafka_producer_used_from_another_shard_is_exdev),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
