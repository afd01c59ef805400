/*
 * What the Kafka tests share (header-only, included once per test
 * executable after harness.h): librdkafka's mock cluster, started in this
 * process with three brokers on loopback, and plain librdkafka clients
 * that check what weave wrote and committed independently of weave's own
 * consumer. The plain clients block, so inside the runtime they run on the
 * offload pool (mock_read_on_pool, mock_committed_on_pool).
 *
 * The mock's group coordinator has no setting for its waits: a new group
 * waits 3 s for more members, later rebalances wait session.timeout.ms
 * - 1 s, and a member whose session runs out while it waits is dropped (so
 * a session shorter than 3 s never gets through the first join). The
 * tests use 4 s (TEST_CONSUMER_CONFIG): a first join takes 3 s, a
 * rebalance 3 s, a dead member is noticed after 4 s.
 */
#ifndef WEAVE_TESTS_UNIT_TEST_KAFKA_HARNESS_H
#define WEAVE_TESTS_UNIT_TEST_KAFKA_HARNESS_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "weave/kafka.h"

/* Kafka protocol request types, for rd_kafka_mock_push_request_errors */
enum { KAFKA_API_PRODUCE = 0, KAFKA_API_FETCH = 1, KAFKA_API_OFFSET_COMMIT = 8 };

static rd_kafka_t *mock_owner;
static rd_kafka_mock_cluster_t *mock;
static char mock_bootstraps[512];

/* Start a fresh cluster of `brokers` brokers (one per test: no state
 * leaks from one test into the next). */
static inline void mock_start(int brokers)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    mock_owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null(mock_owner);
    mock = rd_kafka_mock_cluster_new(mock_owner, brokers);
    assert_non_null(mock);
    snprintf(mock_bootstraps, sizeof mock_bootstraps, "%s", rd_kafka_mock_cluster_bootstraps(mock));
}

static inline void mock_stop(void)
{
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(mock_owner);
    mock = NULL;
    mock_owner = NULL;
}

static inline void mock_topic(const char *name, int partitions)
{
    assert_int_equal(rd_kafka_mock_topic_create(mock, name, partitions, 3), 0);
}

/* Producer settings for the tests: quick retries against the mock. */
#define TEST_PRODUCER_CONFIG "linger.ms", "5", "retry.backoff.ms", "50"

/* Consumer settings: read from the start, the shortest session the mock
 * lets through a first join, fetch with little waiting. */
#define TEST_CONSUMER_CONFIG                                                                       \
    "auto.offset.reset", "earliest", "session.timeout.ms", "4000", "heartbeat.interval.ms", "300", \
        "fetch.wait.max.ms", "50", "topic.metadata.refresh.interval.ms", "1000"

/* ------------------------------------------------ plain librdkafka checks */

typedef struct raw_msg {
    int64_t offset;
    char key[64];
    int key_len; /* -1: no key */
    char value[256];
    int value_len; /* -1: null value */
    int64_t timestamp_ms;
    char headers[256]; /* "name=value;" per header, "name;" for a null value */
} raw_msg;

/* Read partition `partition` of `topic` from offset `from` to the current
 * end (at most `max` messages) with a plain consumer, no group. Returns
 * how many, or -1. Blocks. */
static inline int raw_read(const char *topic, int32_t partition, int64_t from, raw_msg *out,
                           int max)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", mock_bootstraps, err, sizeof err);
    rd_kafka_conf_set(conf, "enable.partition.eof", "true", err, sizeof err);
    /* a group only because librdkafka's consumer API wants one: the
     * partition is assigned by hand and nothing is committed */
    rd_kafka_conf_set(conf, "group.id", "weave-test-reader", err, sizeof err);
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk)
        return -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = from;
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    int n = 0;
    int64_t end = wv_now() + 10000 * NS_PER_MS;
    while (wv_now() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            break;
        }
        if (m->err)
            fprintf(stderr, "raw_read: %s\n", rd_kafka_message_errstr(m));
        if (!m->err && n < max) {
            raw_msg *r = &out[n++];
            memset(r, 0, sizeof *r);
            r->offset = m->offset;
            r->key_len = m->key ? (int)m->key_len : -1;
            if (m->key)
                memcpy(r->key, m->key, m->key_len < sizeof r->key ? m->key_len : sizeof r->key);
            r->value_len = m->payload ? (int)m->len : -1;
            if (m->payload)
                memcpy(r->value, m->payload, m->len < sizeof r->value ? m->len : sizeof r->value);
            rd_kafka_timestamp_type_t t;
            r->timestamp_ms = rd_kafka_message_timestamp(m, &t);
            rd_kafka_headers_t *h;
            if (rd_kafka_message_headers(m, &h) == 0) {
                const char *name;
                const void *v;
                size_t vn;
                for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &v, &vn) == 0; i++) {
                    size_t used = strlen(r->headers);
                    snprintf(r->headers + used, sizeof r->headers - used, v ? "%s=%.*s;" : "%s;",
                             name, (int)vn, v ? (const char *)v : "");
                }
            }
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return n;
}

/* The group's committed offsets of partitions 0..n-1 of topic into out
 * (-1001, RD_KAFKA_OFFSET_INVALID, when none). 0 or -1. Blocks. */
static inline int raw_committed(const char *group, const char *topic, int n, int64_t *out)
{
    char err[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", mock_bootstraps, err, sizeof err);
    rd_kafka_conf_set(conf, "group.id", group, err, sizeof err);
    rd_kafka_conf_set(conf, "log_level", "0", err, sizeof err);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk)
        return -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, topic, i);
    int rc = rd_kafka_committed(rk, l, 10000) == 0 ? 0 : -1;
    for (int i = 0; i < n && rc == 0; i++)
        out[i] = l->elems[i].err ? -1 : l->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return rc;
}

typedef struct raw_read_job {
    const char *topic;
    int32_t partition;
    int64_t from;
    raw_msg *out;
    int max;
} raw_read_job;

static inline int raw_read_run(void *arg)
{
    raw_read_job *j = arg;
    return raw_read(j->topic, j->partition, j->from, j->out, j->max);
}

/* raw_read from a fiber. */
static inline int mock_read_on_pool(const char *topic, int32_t partition, int64_t from,
                                    raw_msg *out, int max)
{
    raw_read_job j = {topic, partition, from, out, max};
    return wv_offload(raw_read_run, &j);
}

typedef struct raw_committed_job {
    const char *group, *topic;
    int n;
    int64_t *out;
} raw_committed_job;

static inline int raw_committed_run(void *arg)
{
    raw_committed_job *j = arg;
    return raw_committed(j->group, j->topic, j->n, j->out);
}

/* raw_committed from a fiber. */
static inline int mock_committed_on_pool(const char *group, const char *topic, int n, int64_t *out)
{
    raw_committed_job j = {group, topic, n, out};
    return wv_offload(raw_committed_run, &j);
}

static inline int broker_job(void *arg)
{
    int cmd = (int)(intptr_t)arg; /* broker id, negative: down */
    return cmd < 0 ? rd_kafka_mock_broker_set_down(mock, -cmd)
                   : rd_kafka_mock_broker_set_up(mock, cmd);
}

/* Take broker `id` down or bring it up, from a fiber (the mock's calls
 * wait for its thread). */
static inline int mock_broker_on_pool(int id, bool up)
{
    return wv_offload(broker_job, (void *)(intptr_t)(up ? id : -id));
}

/* Run fn(arg) in a fiber of its own, cancel it after `ms` and wait for it
 * (fn checks that its call ended in -ECANCELED). */
static inline int run_then_cancel(wv_fn *fn, void *arg, int64_t ms)
{
    wv_group *g = wv_group_new();
    int rc = wv_group_spawn(g, fn, arg, NULL);
    if (rc == 0) {
        wv_sleep_ms(ms);
        wv_group_cancel(g);
        rc = wv_group_join(g);
    }
    wv_group_free(g);
    return rc;
}

/* ------------------------------------------------ weave's clients, briefly */

static const char *const consumer_config[] = {TEST_CONSUMER_CONFIG, NULL};

static inline int open_consumer(const char *group, const char *topic, wv_kafka_consumer **c)
{
    const char *topics[] = {topic, NULL};
    int rc = wv_kafka_consumer_open(&(wv_kafka_consumer_opts){.brokers = mock_bootstraps,
                                                              .group_id = group,
                                                              .topics = topics,
                                                              .config = consumer_config},
                                    c);
    if (rc < 0)
        fprintf(stderr, "consumer open: %s\n", wv_errmsg());
    return rc;
}

/* Produce n messages "<prefix><i>" (key "k<i>") to topic, to `partition`
 * or (-1) by key; 0 or the first error. */
static inline int produce_n(const char *topic, int n, int32_t partition, const char *prefix)
{
    static const char *const config[] = {TEST_PRODUCER_CONFIG, NULL};
    wv_kafka *k;
    int rc = wv_kafka_open(&(wv_kafka_opts){.brokers = mock_bootstraps, .config = config}, &k);
    if (rc < 0)
        return rc;
    for (int i = 0; i < n && rc == 0; i++) {
        char key[16], value[64];
        int kn = snprintf(key, sizeof key, "k%d", i);
        int vn = snprintf(value, sizeof value, "%s%d", prefix, i);
        rc = wv_kafka_produce_start(k,
                                    &(wv_kafka_record){.topic = topic,
                                                       .key = {key, (size_t)kn},
                                                       .value = {value, (size_t)vn},
                                                       .partition = partition,
                                                       .has_partition = partition >= 0},
                                    NULL);
    }
    if (rc == 0)
        rc = wv_kafka_flush(k);
    wv_kafka_close(k);
    return rc;
}

/* Receive n messages into out (waiting up to 15 s in all): how many came. */
static inline int recv_n(wv_kafka_consumer *c, wv_kafka_msg **out, int n)
{
    int64_t until = wv_after_ms(15000);
    int got = 0;
    while (got < n) {
        int rc = wv_kafka_recv(c, &out[got], until);
        if (rc < 0) {
            fprintf(stderr, "recv after %d: %s\n", got, wv_errmsg());
            break;
        }
        got++;
    }
    return got;
}

static inline void run(wv_fn *fn, void *arg)
{
    assert_int_equal(run_in_rt(1, fn, arg), 0);
    mock_stop();
    assert_checks_passed();
}

static inline int committed_of(const char *group, const char *topic)
{
    int64_t off[1] = {-1};
    if (mock_committed_on_pool(group, topic, 1, off) < 0)
        return -2;
    return (int)off[0];
}

/* Produce n messages "<prefix><i>" to partition 0 of topic, open a
 * consumer of group on it and receive them into m: 0, or -1 (said). */
static inline int consume_fresh(const char *topic, const char *group, int n, const char *prefix,
                                wv_kafka_consumer **c, wv_kafka_msg **m)
{
    if (!CHECK_EQ(produce_n(topic, n, 0, prefix), 0) ||
        !CHECK_EQ(open_consumer(group, topic, c), 0))
        return -1;
    return CHECK_EQ(recv_n(*c, m, n), n) ? 0 : -1;
}

/* A fresh cluster with one topic, fn(arg) in a one-shard runtime. */
static inline void run_on_topic(const char *topic, int partitions, wv_fn *fn, void *arg)
{
    mock_start(3);
    if (topic)
        mock_topic(topic, partitions);
    run(fn, arg);
}

#endif
