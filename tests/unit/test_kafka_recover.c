/*
 * The Kafka group consumer when things go wrong, against librdkafka's mock
 * cluster (a fresh one per test): a subscribed topic that does not exist,
 * fetch errors injected by the brokers, the partition's leader going down
 * and back, every broker down (the stream says so; a commit and close end
 * at their deadline), a consumer closed with messages unacked, and one killed
 * (SIGKILL) before it acked: the group's next member reads again from the
 * committed offset. Committed offsets are read back with a plain
 * librdkafka client.
 */
#include "harness.h"

#include <signal.h>

#include "test_kafka_harness.h"

/* ---------------------------------------------------------------- errors */

static int missing_topic_main(void *arg)
{
    rd_kafka_mock_topic_set_error(mock, "absent", RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART);
    wv_kafka_consumer *c;
    REQUIRE_EQ(open_consumer("g-missing", "absent", &c), 0);
    wv_kafka_msg *m;
    int rc = wv_kafka_recv(c, &m, wv_after_ms(10000));
    CHECK_EQ(rc, -ENOENT);
    CHECK(strstr(wv_errmsg(), "absent") != NULL);
    CHECK_EQ(wv_kafka_consumer_close(c), 0);
    return 0;
}

static void test_kafka_subscribing_to_a_missing_topic_says_enoent_in_the_stream(void **state)
{
    mock_start(3);
    run(missing_topic_main, NULL);
}

typedef struct faults {
    bool leader_down; /* else fetch errors */
} faults;

static int faults_main(void *arg)
{
    faults *f = arg;
    REQUIRE_EQ(produce_n("faulty", 100, 0, "f"), 0);
    wv_kafka_consumer *c;
    REQUIRE_EQ(open_consumer("g-faults", "faulty", &c), 0);
    static int seen[200];
    memset(seen, 0, sizeof seen);
    int distinct = 0;
    wv_kafka_msg *m;
    for (int i = 0; i < 20; i++) {
        REQUIRE_EQ(wv_kafka_recv(c, &m, wv_after_ms(15000)), 0);
        if (m->offset >= 0 && m->offset < 200 && !seen[m->offset]++)
            distinct++;
        CHECK_EQ(wv_kafka_ack(m), 0);
    }
    if (f->leader_down) {
        CHECK_EQ(mock_broker_on_pool(1, false), 0);
        wv_sleep_ms(500);
        CHECK_EQ(mock_broker_on_pool(1, true), 0);
    } else {
        rd_kafka_mock_push_request_errors(
            mock, KAFKA_API_FETCH, 4, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            RD_KAFKA_RESP_ERR__TRANSPORT, RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RD_KAFKA_RESP_ERR_UNKNOWN_LEADER_EPOCH);
    }
    REQUIRE_EQ(produce_n("faulty", 100, 0, "g"), 0);
    while (distinct < 200) {
        int rc = wv_kafka_recv(c, &m, wv_after_ms(15000));
        if (!CHECK_EQ(rc, 0)) {
            fprintf(stderr, "after %d: %s\n", distinct, wv_errmsg());
            break;
        }
        if (m->offset >= 0 && m->offset < 200 && !seen[m->offset]++)
            distinct++;
        CHECK_EQ(wv_kafka_ack(m), 0);
    }
    CHECK_EQ(distinct, 200);
    CHECK_EQ(wv_kafka_commit(c), 0);
    CHECK_EQ(committed_of("g-faults", "faulty"), 200);
    CHECK_EQ(wv_kafka_consumer_close(c), 0);
    return 0;
}

static void test_kafka_consumer_rides_out_injected_fetch_errors(void **state)
{
    mock_start(3);
    mock_topic("faulty", 1);
    faults f = {.leader_down = false};
    run(faults_main, &f);
}

static void test_kafka_consumer_goes_on_when_its_leader_is_down_and_back(void **state)
{
    mock_start(3);
    mock_topic("faulty", 1);
    assert_int_equal(rd_kafka_mock_partition_set_leader(mock, "faulty", 0, 1), 0);
    faults f = {.leader_down = true};
    run(faults_main, &f);
}

/* ------------------------------------------------- close, and a kill -9 */

static int close_main(void *arg)
{
    wv_kafka_consumer *c;
    wv_kafka_msg *m[10];
    REQUIRE_EQ(consume_fresh("closing", "g-close", 10, "c", &c, m), 0);
    for (int i = 0; i < 6; i++)
        CHECK_EQ(wv_kafka_ack(m[i]), 0);
    /* close commits what was acked; m[6..9] are still held */
    CHECK_EQ(wv_kafka_consumer_close(c), 0);
    CHECK_EQ(committed_of("g-close", "closing"), 6);
    CHECK_EQ(wv_kafka_ack(m[6]), -ESHUTDOWN);
    for (int i = 7; i < 10; i++)
        wv_kafka_msg_free(m[i]);
    /* the next member of the group starts after what was acked */
    REQUIRE_EQ(open_consumer("g-close", "closing", &c), 0);
    REQUIRE_EQ(recv_n(c, m, 4), 4);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(m[i]->offset, 6 + i);
        CHECK_EQ(wv_kafka_ack(m[i]), 0);
    }
    CHECK_EQ(wv_kafka_consumer_close(c), 0);
    CHECK_EQ(committed_of("g-close", "closing"), 10);
    return 0;
}

static void test_kafka_close_commits_the_acked_and_the_next_member_reads_the_rest(void **state)
{
    run_on_topic("closing", 1, close_main, NULL);
}

static int all_down_main(void *arg)
{
    wv_kafka_consumer *c;
    wv_kafka_msg *m[5];
    REQUIRE_EQ(consume_fresh("cut", "g-cut", 5, "d", &c, m), 0);
    for (int i = 0; i < 5; i++)
        CHECK_EQ(wv_kafka_ack(m[i]), 0);
    for (int b = 1; b <= 3; b++)
        CHECK_EQ(mock_broker_on_pool(b, false), 0);
    /* the stream says so */
    wv_kafka_msg *extra;
    CHECK_EQ(wv_kafka_recv(c, &extra, wv_after_ms(10000)), -ECONNREFUSED);
    CHECK(strstr(wv_errmsg(), "brokers are down") != NULL);
    /* the commit and the goodbye end at the caller's deadline */
    int64_t old = wv_deadline_set(wv_after_ms(500));
    int64_t t0 = wv_now();
    CHECK_EQ(wv_kafka_commit(c), -ETIMEDOUT);
    CHECK_BETWEEN(ms_since(t0), 450, 3000);
    wv_deadline_set(wv_after_ms(500));
    t0 = wv_now();
    CHECK_EQ(wv_kafka_consumer_close(c), -ETIMEDOUT);
    CHECK(ms_since(t0) < 3000);
    wv_deadline_set(old);
    return 0;
}

static void
test_kafka_every_broker_down_shows_in_the_stream_and_commit_and_close_end_at_the_deadline(
    void **state)
{
    run_on_topic("cut", 1, all_down_main, NULL);
}

/* In the child: consume everything, ack the first 5 of 10, commit, then
 * die without a word to anyone. */
static int killed_consumer_main(void *arg)
{
    wv_kafka_consumer *c;
    if (open_consumer("g-killed", "killed", &c) < 0)
        _exit(10);
    wv_kafka_msg *m[10];
    if (recv_n(c, m, 10) != 10)
        _exit(11);
    for (int i = 0; i < 5; i++)
        wv_kafka_ack(m[i]);
    if (wv_kafka_commit(c) < 0)
        _exit(12);
    kill(getpid(), SIGKILL);
    return 0;
}

/* The child runs this executable afresh (no threads of the parent's
 * mock cluster inherited half-way), which calls killed_consumer_main. */
static int killed_child(void *arg)
{
    char *argv[] = {"test_kafka_recover", "--killed-consumer", mock_bootstraps, NULL};
    execv("/proc/self/exe", argv);
    return 20;
}

static int reread_main(void *arg)
{
    CHECK_EQ(committed_of("g-killed", "killed"), 5);
    wv_kafka_consumer *c;
    REQUIRE_EQ(open_consumer("g-killed", "killed", &c), 0);
    wv_kafka_msg *m[5];
    REQUIRE_EQ(recv_n(c, m, 5), 5); /* after the dead member's session ran out */
    for (int i = 0; i < 5; i++) {
        CHECK_EQ(m[i]->offset, 5 + i);
        CHECK_EQ(wv_kafka_ack(m[i]), 0);
    }
    wv_kafka_msg *extra;
    CHECK_EQ(wv_kafka_recv(c, &extra, wv_after_ms(300)), -ETIMEDOUT);
    CHECK_EQ(wv_kafka_consumer_close(c), 0);
    return 0;
}

static int seed_main(void *arg)
{
    return produce_n("killed", 10, 0, "x");
}

static void test_kafka_a_consumer_killed_before_acking_is_read_again_from_the_commit(void **state)
{
    mock_start(3);
    mock_topic("killed", 1);
    assert_int_equal(run_in_rt(1, seed_main, NULL), 0);
    child_result r;
    assert_int_equal(run_in_child(killed_child, NULL, &r), 0);
    if (!(WIFSIGNALED(r.status) && WTERMSIG(r.status) == SIGKILL))
        fail_msg("the child did not die by SIGKILL (status %d): %s", r.status, r.err);
    run(reread_main, NULL);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--killed-consumer") == 0) {
        snprintf(mock_bootstraps, sizeof mock_bootstraps, "%s", argv[2]);
        wv_main_opts opts = {.shards = 1, .no_signal_handling = true};
        return wv_main(&opts, killed_consumer_main, NULL);
    }
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kafka_subscribing_to_a_missing_topic_says_enoent_in_the_stream),
        cmocka_unit_test(test_kafka_consumer_rides_out_injected_fetch_errors),
        cmocka_unit_test(test_kafka_consumer_goes_on_when_its_leader_is_down_and_back),
        cmocka_unit_test(test_kafka_close_commits_the_acked_and_the_next_member_reads_the_rest),
        cmocka_unit_test(
            test_kafka_every_broker_down_shows_in_the_stream_and_commit_and_close_end_at_the_deadline),
        cmocka_unit_test(test_kafka_a_consumer_killed_before_acking_is_read_again_from_the_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
