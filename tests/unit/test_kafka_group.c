/*
 * Rebalances with messages in flight, against librdkafka's mock cluster:
 * while a producer keeps writing to four partitions, member A of a group
 * handles messages with several handler fibers that finish out of order;
 * member B joins (the partitions are split), then A leaves (B takes them
 * all). Checked: every message produced is handled at least once, and at
 * no time does the group's committed offset of a partition pass a message
 * whose handler has not finished (offsets are committed every 300 ms, some
 * handlers take 500 ms while others ack later messages, and a checker
 * reads the committed offsets with a plain librdkafka client every 200 ms). Once with the eager
 * protocol, once with cooperative-sticky (incremental) rebalancing.
 */
#include "harness.h"

#include "test_kafka_harness.h"

enum { PARTITIONS = 4, MESSAGES = 400, HANDLERS = 4, MAX_OFFSET = MESSAGES };

typedef struct world {
    const char *const *config;
    int produced[PARTITIONS];            /* next offset of each partition */
    int handled[PARTITIONS][MAX_OFFSET]; /* times a handler finished it */
    int distinct;                        /* messages handled at least once */
    bool producer_done;
    bool checking;
    int checks;
    int early; /* committed offsets that passed an unfinished message */
} world;

typedef struct member {
    world *w;
    const char *name;
    wv_kafka_consumer *c;
    int handled;
} member;

static int handler(void *arg)
{
    member *mb = arg;
    world *w = mb->w;
    uint32_t seed = (uint32_t)(uintptr_t)mb ^ (uint32_t)wv_fiber_id();
    for (;;) {
        wv_kafka_msg *m;
        int rc = wv_kafka_recv(mb->c, &m, WV_NEVER);
        if (rc == -EPIPE || rc == -ECANCELED)
            return 0;
        if (!CHECK_EQ(rc, 0)) {
            fprintf(stderr, "%s: recv: %s\n", mb->name, wv_errmsg());
            return 0;
        }
        /* the work: handlers finish out of order, and now and then one
         * takes long while the others ack later messages (and offsets
         * are committed every 300 ms) */
        seed = seed * 1103515245u + 12345u;
        wv_sleep_ms(m->offset % 25 == 7 ? 500 : 1 + (seed >> 16) % 8);
        if (CHECK(m->partition >= 0 && m->partition < PARTITIONS && m->offset >= 0 &&
                  m->offset < MAX_OFFSET)) {
            if (w->handled[m->partition][m->offset]++ == 0)
                w->distinct++;
        }
        mb->handled++;
        rc = wv_kafka_ack(m);
        /* -ESTALE: revoked meanwhile; -ESHUTDOWN: this member closed */
        CHECK(rc == 0 || rc == -ESTALE || rc == -ESHUTDOWN);
    }
}

/* A member: open, run HANDLERS handler fibers until `until` is set, close. */
typedef struct member_run {
    member mb;
    wv_event *until;
    wv_event joined; /* set once it was assigned partitions */
} member_run;

static int member_main(void *arg)
{
    member_run *r = arg;
    const char *topics[] = {"work", NULL};
    int rc = wv_kafka_consumer_open(&(wv_kafka_consumer_opts){.brokers = mock_bootstraps,
                                                              .group_id = "g-rebalance",
                                                              .client_id = r->mb.name,
                                                              .topics = topics,
                                                              .config = r->mb.w->config},
                                    &r->mb.c);
    if (!CHECK_EQ(rc, 0))
        return -1;
    wv_group *g = wv_group_new();
    for (int i = 0; i < HANDLERS; i++)
        CHECK_EQ(wv_group_spawn(g, handler, &r->mb, NULL), 0);
    for (;;) {
        wv_kafka_consumer_stats st;
        wv_kafka_consumer_stats_get(r->mb.c, &st);
        if (st.assigned > 0)
            wv_event_set(&r->joined);
        if (wv_event_is_set(r->until))
            break;
        wv_sleep_ms(20);
    }
    /* closing wakes the handlers waiting in recv with -EPIPE */
    CHECK_EQ(wv_kafka_consumer_close(r->mb.c), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    return 0;
}

static int producer_main(void *arg)
{
    world *w = arg;
    static const char *const config[] = {TEST_PRODUCER_CONFIG, NULL};
    wv_kafka *k;
    REQUIRE_EQ(wv_kafka_open(&(wv_kafka_opts){.brokers = mock_bootstraps, .config = config}, &k),
               0);
    for (int i = 0; i < MESSAGES; i++) {
        char value[16];
        int n = snprintf(value, sizeof value, "m%d", i);
        wv_kafka_report rep;
        if (CHECK_EQ(wv_kafka_produce(k,
                                      &(wv_kafka_record){.topic = "work",
                                                         .value = {value, (size_t)n},
                                                         .partition = i % PARTITIONS,
                                                         .has_partition = true},
                                      &rep),
                     0))
            w->produced[rep.partition] = (int)rep.offset + 1;
        if (i % 10 == 9)
            wv_sleep_ms(375); /* 15 s in all: the stream spans both rebalances */
    }
    CHECK_EQ(wv_kafka_close(k), 0);
    w->producer_done = true;
    return 0;
}

/* Every 200 ms: no committed offset is past a message not handled yet. */
static int checker_main(void *arg)
{
    world *w = arg;
    while (w->checking) {
        int64_t committed[PARTITIONS];
        if (mock_committed_on_pool("g-rebalance", "work", PARTITIONS, committed) == 0) {
            w->checks++;
            for (int p = 0; p < PARTITIONS; p++)
                for (int64_t o = 0; o < committed[p] && o < MAX_OFFSET; o++)
                    if (w->handled[p][o] == 0) {
                        w->early++;
                        fprintf(stderr, "committed %lld for [%d] before offset %lld was handled\n",
                                (long long)committed[p], p, (long long)o);
                        break;
                    }
        }
        wv_sleep_ms(200);
    }
    return 0;
}

static bool all_handled(const world *w)
{
    return w->producer_done && w->distinct == MESSAGES;
}

static int rebalance_main(void *arg)
{
    world *w = arg;
    wv_group *g = wv_group_new();
    wv_event a_stop = {0}, b_stop = {0};
    member_run a = {.mb = {.w = w, .name = "member-a"}, .until = &a_stop};
    member_run b = {.mb = {.w = w, .name = "member-b"}, .until = &b_stop};
    w->checking = true;
    REQUIRE_EQ(wv_group_spawn(g, checker_main, w, NULL), 0);
    REQUIRE_EQ(wv_group_spawn(g, member_main, &a, NULL), 0);
    REQUIRE_EQ(wv_group_spawn(g, producer_main, w, NULL), 0);
    int64_t old = wv_deadline_set(wv_after_ms(15000));
    CHECK_EQ(wv_event_wait(&a.joined), 0);
    wv_deadline_set(old);
    wv_sleep_ms(500); /* A handles messages alone for a while */
    int by_a_alone = a.mb.handled;
    REQUIRE_EQ(wv_group_spawn(g, member_main, &b, NULL), 0);
    old = wv_deadline_set(wv_after_ms(15000));
    CHECK_EQ(wv_event_wait(&b.joined), 0);
    wv_deadline_set(old);
    wv_sleep_ms(1000); /* both handle messages */
    int by_b_shared = b.mb.handled;
    wv_event_set(&a_stop); /* A leaves mid-stream */
    int64_t until = wv_after_ms(25000);
    while (!all_handled(w) && wv_now() < until)
        wv_sleep_ms(50);
    CHECK_EQ(w->distinct, MESSAGES);
    CHECK(by_a_alone > 0);
    CHECK(by_b_shared > 0);
    /* B acks what it holds, then its commits catch up with the end */
    until = wv_after_ms(10000);
    for (;;) {
        int64_t committed[PARTITIONS];
        int at_end = 0;
        if (mock_committed_on_pool("g-rebalance", "work", PARTITIONS, committed) == 0)
            for (int p = 0; p < PARTITIONS; p++)
                at_end += committed[p] == w->produced[p];
        if (at_end == PARTITIONS || wv_now() > until) {
            CHECK_EQ(at_end, PARTITIONS);
            break;
        }
        wv_sleep_ms(200);
    }
    wv_event_set(&b_stop);
    w->checking = false;
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK(w->checks >= 10);
    CHECK_EQ(w->early, 0);
    return 0;
}

static void run_rebalance(const char *const *config)
{
    static world w;
    memset(&w, 0, sizeof w);
    w.config = config;
    mock_start(3);
    mock_topic("work", PARTITIONS);
    wv_main_opts opts = {.shards = 1, .no_signal_handling = true};
    alarm(90);
    assert_int_equal(wv_main(&opts, rebalance_main, &w), 0);
    alarm(0);
    mock_stop();
    assert_checks_passed();
}

static void test_kafka_eager_rebalance_mid_stream_handles_all_and_commits_none_early(void **state)
{
    static const char *const config[] = {TEST_CONSUMER_CONFIG, "auto.commit.interval.ms", "300",
                                         NULL};
    run_rebalance(config);
}

static void
test_kafka_cooperative_rebalance_mid_stream_handles_all_and_commits_none_early(void **state)
{
    static const char *const config[] = {TEST_CONSUMER_CONFIG,
                                         "auto.commit.interval.ms",
                                         "300",
                                         "partition.assignment.strategy",
                                         "cooperative-sticky",
                                         NULL};
    run_rebalance(config);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kafka_eager_rebalance_mid_stream_handles_all_and_commits_none_early),
        cmocka_unit_test(
            test_kafka_cooperative_rebalance_mid_stream_handles_all_and_commits_none_early),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
