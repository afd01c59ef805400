/*
 * bench/messaging/librdkafka_floor.c: the floor of kafka.produce and
 * kafka.consume (bench/run_messaging.sh), built as
 * build/release/librdkafka_floor: what `bench_kafka produce` and
 * `bench_kafka consume` do, as a plain C loop on librdkafka's own API: no
 * runtime, no event loop, no fibers, no language binding. weave's client
 * and confluent_kafka both sit on this same librdkafka, whose own threads
 * (one per broker, the main thread) do most of the work and run on the
 * client's core too, so no client on librdkafka gets past what this loop
 * does on the same core.
 *
 *   librdkafka_floor produce BROKERS TOPIC WARM N [WINDOW]
 *       one producer with the properties of weave's (enable.idempotence=true,
 *       acks=all; the rest librdkafka's defaults), WARM + N keyless
 *       messages of SIZE bytes to TOPIC (a new, empty topic), each made
 *       just before its rd_kafka_producev (RD_KAFKA_MSG_F_COPY), at most
 *       WINDOW (10,000) without a delivery report: it produces while fewer
 *       than WINDOW are without one, else calls rd_kafka_poll(1000), which
 *       serves every report waiting to one delivery-report callback
 *       (rd_kafka_conf_set_dr_msg_cb) that counts it and notes its
 *       partition's highest offset. The first WARM are the warm-up; once
 *       every one of them has its report (rd_kafka_poll until then) the
 *       clock starts, and it stops when the last of the N has. Then
 *       (untimed) rd_kafka_flush, which must leave nothing queued. Every
 *       report must say written, and the highest offset reported in each
 *       partition, plus one, summed, must be WARM + N (nothing written
 *       twice).
 *   librdkafka_floor consume BROKERS TOPIC GROUP WARM N
 *       one consumer in the new group GROUP subscribed to TOPIC, which
 *       holds exactly WARM + N messages (`bench_kafka fill`), with the
 *       properties of weave's consumer (auto.offset.reset=earliest,
 *       enable.auto.offset.store=false, enable.auto.commit=true,
 *       queued.min.messages=10000000, queued.max.messages.kbytes=1048576:
 *       see bench_kafka.c's QUEUED_MIN_MESSAGES); the consumer queue
 *       serves everything (rd_kafka_poll_set_consumer). One message per
 *       rd_kafka_consumer_poll(1000) call: checked, its offset + 1 stored
 *       with rd_kafka_offsets_store (one partition list of one element
 *       made once, its partition and offset set per message), destroyed.
 *       The clock starts once the WARM-th is handled (so the group join is
 *       left out) and stops when the last of the N more is. In each
 *       partition the offsets must come 0, 1, 2, ... and each value must
 *       be SIZE bytes starting with 12 digits; a message carrying an error
 *       fails the run. Then (untimed) the stored offsets are committed
 *       (rd_kafka_commit) and the consumer closed.
 *
 * A message is SIZE (100) bytes: its sequence number in 12 digits, then
 * filler; no key, no headers. A run that has not finished after 10 minutes
 * fails (as bench_kafka's deadline). Prints '#' lines on stderr, then
 * server_cpu=, client_cpu=, server_us=, client_us= (the mock cluster's pid
 * in MSG_SERVER_PID; this process's CPU counts every thread, librdkafka's
 * included) and value=<messages per second>, as bench_kafka does; exits 1
 * when a check fails.
 */
#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "bench_util.h"

enum {
    SIZE = 100,
    WINDOW = 10000,
    MAX_WINDOW = 1000000,
    MAX_PARTITIONS = 256,
    POLL_MS = 1000,
};

#define QUEUED_MIN_MESSAGES "10000000" /* as bench_kafka.c's */
#define QUEUED_MAX_KBYTES   "1048576"
#define GIVE_UP_NS          (600 * 1000000000LL) /* bench_kafka's deadline: never hang the suite */

static const char *topic;
static long long warm, count;
static int window = WINDOW;
static pid_t server_pid; /* MSG_SERVER_PID */
static int64_t started;  /* now_ns() at the start */

/* produce: the highest offset reported per partition; consume: the next
 * offset expected per partition */
static int64_t offsets[MAX_PARTITIONS];

/* produce: reports so far, and the first failure */
static long long delivered, failed;
static char failure[512];

static void make_body(char *b, long long seq)
{
    char d[24];
    snprintf(d, sizeof d, "%012lld", seq);
    memcpy(b, d, 12);
    memset(b + 12, 'x', SIZE - 12);
}

static bool too_long(void)
{
    if (now_ns() - started < GIVE_UP_NS)
        return false;
    fprintf(stderr, "# gave up after %lld s\n", GIVE_UP_NS / 1000000000LL);
    return true;
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value)
{
    char err[512];
    if (rd_kafka_conf_set(conf, name, value, err, sizeof err) != RD_KAFKA_CONF_OK) {
        fprintf(stderr, "# %s=%s: %s\n", name, value, err);
        return -1;
    }
    return 0;
}

/* name, value, ..., NULL */
static rd_kafka_conf_t *conf_of(const char *const *pairs)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (int i = 0; pairs[i]; i += 2) {
        if (conf_set(conf, pairs[i], pairs[i + 1]) < 0) {
            rd_kafka_conf_destroy(conf);
            return NULL;
        }
    }
    return conf;
}

static void print_result(const char *what, cpu_mark a, cpu_mark b, long long n)
{
    double secs = (double)(b.at - a.at) / 1e9;
    double rate = (double)n / secs;
    fprintf(stderr,
            "# librdkafka %s %s: %lld messages of %d bytes in %.3f s after %lld of warm-up\n",
            rd_kafka_version_str(), what, n, SIZE, secs, warm);
    print_cpu_lines(a, b, rate);
    printf("value=%.0f\n", rate);
}

/* ------------------------------------------------------------ producing */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    (void)opaque;
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (failed++ == 0)
            snprintf(failure, sizeof failure, "delivery to partition %d failed: %s",
                     (int)m->partition, rd_kafka_err2str(m->err));
        return;
    }
    if (m->partition < 0 || m->partition >= MAX_PARTITIONS) {
        if (failed++ == 0)
            snprintf(failure, sizeof failure, "a report for partition %d", (int)m->partition);
        return;
    }
    delivered++;
    if (m->offset > offsets[m->partition])
        offsets[m->partition] = m->offset;
}

/*
 * Produce messages first .. first+n-1, at most window without a report:
 * produce while there is room, else poll; then poll until every one has
 * its report. 0 once every one was written.
 */
static int produce_range(rd_kafka_t *rk, long long first, long long n)
{
    char body[SIZE];
    long long produced = first; /* every message before first has its report */
    for (long long seq = first; seq < first + n; seq++) {
        while (produced - (delivered + failed) >= window && !failed) {
            rd_kafka_poll(rk, POLL_MS);
            if (too_long())
                return -1;
        }
        if (failed)
            break;
        make_body(body, seq);
        rd_kafka_resp_err_t err =
            rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_VALUE(body, SIZE), RD_KAFKA_V_END);
        if (err) {
            fprintf(stderr, "# produce %lld: %s\n", seq, rd_kafka_err2str(err));
            return -1;
        }
        produced++;
    }
    while (delivered + failed < produced && !failed) {
        rd_kafka_poll(rk, POLL_MS);
        if (too_long())
            return -1;
    }
    if (failed) {
        fprintf(stderr, "# %s\n", failure);
        return -1;
    }
    return 0;
}

/* The messages the reports say the topic holds: the highest offset per
 * partition, plus one, summed. */
static long long reported_total(void)
{
    long long t = 0;
    for (int i = 0; i < MAX_PARTITIONS; i++)
        t += offsets[i] + 1;
    return t;
}

static int produce_run(const char *brokers)
{
    for (int i = 0; i < MAX_PARTITIONS; i++)
        offsets[i] = -1;
    rd_kafka_conf_t *conf = conf_of((const char *[]){
        "bootstrap.servers", brokers, "enable.idempotence", "true", "acks", "all", NULL});
    if (!conf)
        return -1;
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "# cannot create the producer: %s\n", err);
        return -1;
    }
    int rc = warm > 0 ? produce_range(rk, 0, warm) : 0;
    cpu_mark a = cpu_mark_now(server_pid);
    if (rc == 0)
        rc = produce_range(rk, warm, count);
    cpu_mark b = cpu_mark_now(server_pid);
    long long total = warm + count;
    if (rc == 0) {
        rd_kafka_resp_err_t ferr = rd_kafka_flush(rk, 30000);
        int left = rd_kafka_outq_len(rk);
        if (ferr || left > 0) {
            fprintf(stderr, "# flush: %s, %d left\n", rd_kafka_err2str(ferr), left);
            rc = -1;
        }
    }
    if (rc == 0) {
        fprintf(stderr, "# produced %lld, delivered %lld, failed %lld; window %d\n", total,
                delivered, failed, window);
        if (delivered != total || failed != 0) {
            fprintf(stderr, "# %lld delivered of %lld produced\n", delivered, total);
            rc = -1;
        } else if (reported_total() != total) {
            fprintf(stderr, "# the reports' offsets add up to %lld messages, not %lld\n",
                    reported_total(), total);
            rc = -1;
        }
    }
    rd_kafka_destroy(rk);
    if (rc == 0)
        print_result("produce", a, b, count);
    return rc;
}

/* ------------------------------------------------------------ consuming */

/* Receive, check and store the offset of n messages. */
static int consume_some(rd_kafka_t *rk, rd_kafka_topic_partition_list_t *store, long long n)
{
    rd_kafka_topic_partition_t *tp = &store->elems[0];
    for (long long i = 0; i < n;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, POLL_MS);
        if (!m) {
            if (too_long())
                return -1;
            continue;
        }
        if (m->err) {
            fprintf(stderr, "# receive: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            return -1;
        }
        int32_t p = m->partition;
        const char *v = m->payload;
        if (p < 0 || p >= MAX_PARTITIONS || m->offset != offsets[p] || m->len != SIZE ||
            memcmp(v + 12, "xxxx", 4) != 0 || v[0] < '0' || v[0] > '9') {
            fprintf(stderr,
                    "# partition %d offset %lld (%lld expected): %zu bytes, not a message "
                    "of fill's\n",
                    (int)p, (long long)m->offset,
                    p >= 0 && p < MAX_PARTITIONS ? (long long)offsets[p] : -1LL, m->len);
            rd_kafka_message_destroy(m);
            return -1;
        }
        offsets[p]++;
        tp->partition = p;
        tp->offset = m->offset + 1; /* the next to read, as a commit names it */
        rd_kafka_message_destroy(m);
        rd_kafka_resp_err_t err = rd_kafka_offsets_store(rk, store);
        if (err || tp->err) {
            fprintf(stderr, "# storing the offset of partition %d: %s\n", (int)p,
                    rd_kafka_err2str(err ? err : tp->err));
            return -1;
        }
        i++;
    }
    return 0;
}

static int consume_run(const char *brokers, const char *group)
{
    rd_kafka_conf_t *conf = conf_of((const char *[]){
        "bootstrap.servers", brokers, "group.id", group, "auto.offset.reset", "earliest",
        "enable.auto.offset.store", "false", "enable.auto.commit", "true", "queued.min.messages",
        QUEUED_MIN_MESSAGES, "queued.max.messages.kbytes", QUEUED_MAX_KBYTES, NULL});
    if (!conf)
        return -1;
    char err[512];
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof err);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        fprintf(stderr, "# cannot create the consumer: %s\n", err);
        return -1;
    }
    rd_kafka_poll_set_consumer(rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t serr = rd_kafka_subscribe(rk, topics);
    rd_kafka_topic_partition_list_destroy(topics);
    if (serr) {
        fprintf(stderr, "# subscribe: %s\n", rd_kafka_err2str(serr));
        rd_kafka_destroy(rk);
        return -1;
    }
    rd_kafka_topic_partition_list_t *store = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(store, topic, 0);
    int rc = consume_some(rk, store, warm);
    cpu_mark a = cpu_mark_now(server_pid);
    if (rc == 0)
        rc = consume_some(rk, store, count);
    cpu_mark b = cpu_mark_now(server_pid);
    rd_kafka_topic_partition_list_destroy(store);
    long long received = 0;
    int parts = 0;
    for (int i = 0; i < MAX_PARTITIONS; i++) {
        received += offsets[i];
        parts += offsets[i] > 0;
    }
    if (rc == 0) {
        /* _NO_OFFSET: the auto-commit already committed everything stored */
        rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);
        if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET) {
            fprintf(stderr, "# commit: %s\n", rd_kafka_err2str(cerr));
            rc = -1;
        }
    }
    rd_kafka_resp_err_t xerr = rd_kafka_consumer_close(rk);
    if (rc == 0 && xerr) {
        fprintf(stderr, "# close: %s\n", rd_kafka_err2str(xerr));
        rc = -1;
    }
    rd_kafka_destroy(rk);
    if (rc == 0) {
        fprintf(stderr, "# received and stored %lld in %d partitions\n", received, parts);
        if (received != warm + count) {
            fprintf(stderr, "# %lld received of %lld\n", received, warm + count);
            rc = -1;
        } else {
            print_result("consume", a, b, count);
        }
    }
    return rc;
}

int main(int argc, char **argv)
{
    bool produce = argc >= 2 && strcmp(argv[1], "produce") == 0 && (argc == 6 || argc == 7);
    bool consume = argc == 7 && strcmp(argv[1], "consume") == 0;
    if (produce) {
        warm = atoll(argv[4]);
        count = atoll(argv[5]);
        window = argc > 6 ? atoi(argv[6]) : WINDOW;
    } else if (consume) {
        warm = atoll(argv[5]);
        count = atoll(argv[6]);
    }
    if ((!produce && !consume) || warm < 0 || count < 1 || window < 1 || window > MAX_WINDOW) {
        fprintf(stderr,
                "usage: %s produce BROKERS TOPIC WARM N [WINDOW]\n"
                "       %s consume BROKERS TOPIC GROUP WARM N\n",
                argv[0], argv[0]);
        return 2;
    }
    topic = argv[3];
    const char *pid = getenv("MSG_SERVER_PID");
    server_pid = pid ? (pid_t)atoi(pid) : 0;
    started = now_ns();
    int rc = produce ? produce_run(argv[2]) : consume_run(argv[2], argv[4]);
    return rc == 0 ? 0 : 1;
}
