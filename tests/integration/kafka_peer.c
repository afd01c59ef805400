/*
 * weave's Kafka client as a command, for tests/integration/test_kafka.py,
 * which runs it beside kcat, confluent_kafka and kafkajs on one mock
 * cluster (kafka_mock_cluster.c). The brokers come from KAFKA_BROKERS
 * only, as a service's would.
 *
 *   kafka_peer produce TOPIC COUNT
 *       COUNT messages: key "wk<i>", value "weave-<i>", headers origin=weave
 *       and seq=<i>; one line "<partition> <offset>" each as it is reported
 *   kafka_peer consume GROUP TOPIC MAX IDLE_MS
 *       receive in group GROUP (from the earliest offset) until MAX
 *       messages came or none for IDLE_MS; one line per message,
 *       "<partition>\t<offset>\t<key>\t<value>\t<name=value;...>" (key "-"
 *       for none), each acked after it is printed; the consumer closes
 *       (committing) at the end
 *
 * Exit 0 on success; else 1 with wv_errmsg() on stderr.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/kafka.h>

static int argc_;
static char **argv_;

static int produce(void)
{
    int count = atoi(argv_[3]);
    wv_kafka *k;
    int rc = wv_kafka_open(NULL, &k);
    if (rc < 0)
        return rc;
    for (int i = 0; i < count && rc == 0; i++) {
        char key[32], value[32], seq[16];
        int kn = snprintf(key, sizeof key, "wk%d", i);
        int vn = snprintf(value, sizeof value, "weave-%d", i);
        int sn = snprintf(seq, sizeof seq, "%d", i);
        wv_kafka_header h[] = {{"origin", WV_STR("weave")}, {"seq", {seq, (size_t)sn}}};
        wv_kafka_report rep;
        rc = wv_kafka_produce(k,
                              &(wv_kafka_record){.topic = argv_[2],
                                                 .key = {key, (size_t)kn},
                                                 .value = {value, (size_t)vn},
                                                 .headers = h,
                                                 .nheaders = 2},
                              &rep);
        if (rc == 0)
            printf("%d %lld\n", (int)rep.partition, (long long)rep.offset);
    }
    int closed = wv_kafka_close(k);
    return rc < 0 ? rc : closed;
}

static void print_message(const wv_kafka_msg *m)
{
    printf("%d\t%lld\t", (int)m->partition, (long long)m->offset);
    if (m->key.p)
        printf("%.*s\t", (int)m->key.n, m->key.p);
    else
        printf("-\t");
    printf("%.*s\t", (int)m->value.n, m->value.p ? m->value.p : "");
    for (size_t i = 0; i < wv_kafka_msg_header_count(m); i++) {
        const char *name;
        wv_str v;
        wv_kafka_msg_header_at(m, i, &name, &v);
        printf("%s=%.*s;", name, (int)v.n, v.p ? v.p : "");
    }
    printf("\n");
    fflush(stdout);
}

static int consume(void)
{
    int max = atoi(argv_[4]);
    int64_t idle_ms = atoll(argv_[5]);
    const char *topics[] = {argv_[3], NULL};
    static const char *const config[] = {"auto.offset.reset",
                                         "earliest",
                                         "session.timeout.ms",
                                         "4000",
                                         "heartbeat.interval.ms",
                                         "300",
                                         NULL};
    wv_kafka_consumer *c;
    int rc = wv_kafka_consumer_open(
        &(wv_kafka_consumer_opts){.group_id = argv_[2], .topics = topics, .config = config}, &c);
    if (rc < 0)
        return rc;
    /* the first message may wait for the group's first join */
    int64_t at = wv_after_ms(idle_ms > 15000 ? idle_ms : 15000);
    int got = 0;
    while (got < max) {
        wv_kafka_msg *m;
        rc = wv_kafka_recv(c, &m, at);
        if (rc == -ETIMEDOUT) {
            rc = 0;
            break;
        }
        if (rc < 0)
            break;
        print_message(m);
        got++;
        if ((rc = wv_kafka_ack(m)) < 0)
            break;
        at = wv_after_ms(idle_ms);
    }
    int closed = wv_kafka_consumer_close(c);
    return rc < 0 ? rc : closed;
}

static int run(void *arg)
{
    int rc;
    if (argc_ == 4 && strcmp(argv_[1], "produce") == 0)
        rc = produce();
    else if (argc_ == 6 && strcmp(argv_[1], "consume") == 0)
        rc = consume();
    else
        rc = wv_fail(-EINVAL, "usage: kafka_peer produce TOPIC COUNT | "
                              "consume GROUP TOPIC MAX IDLE_MS");
    /* wv_errmsg belongs to this fiber: said here, not after wv_main */
    if (rc < 0)
        fprintf(stderr, "kafka_peer: %s (%s)\n", wv_errmsg(), wv_strerror(rc));
    return rc;
}

int main(int argc, char **argv)
{
    argc_ = argc;
    argv_ = argv;
    return wv_main(&(wv_main_opts){.shards = 1}, run, NULL) < 0 ? 1 : 0;
}
