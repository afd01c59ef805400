/*
 * bench/bench_kafka.c: weave's Kafka client (include/weave/kafka.h) against
 * librdkafka's mock cluster (tests/integration/kafka_mock_cluster.c, in a
 * process of its own), every message counted and checked.
 * bench/run_messaging.sh runs it with the cluster on CPU 0 and this
 * program (its librdkafka threads included) on CPU 1, one shard, beside
 * its anchors.
 *
 *   bench_kafka produce BROKERS TOPIC WARM N [WINDOW]
 *       one producer with weave's defaults (enable.idempotence=true,
 *       acks=all; the rest librdkafka's), WARM + N keyless messages of SIZE
 *       bytes to TOPIC (a new, empty topic), at most WINDOW (10,000)
 *       without a delivery report: one fiber calls wv_kafka_produce_start
 *       while fewer than WINDOW are pending, else waits for the oldest
 *       report (wv_kafka_pending_wait). The first WARM are the warm-up;
 *       once every one of them has its report the clock starts, and it
 *       stops when the last of the N has. Every report must say written;
 *       the highest offset reported in each partition, plus one, summed
 *       over the partitions, must be WARM + N (nothing written twice).
 *       value=<messages per second>
 *   bench_kafka consume BROKERS TOPIC GROUP WARM N
 *       one consumer in the new group GROUP subscribed to TOPIC, which
 *       holds exactly WARM + N messages (`fill`), auto.offset.reset=earliest
 *       (and weave's defaults: enable.auto.offset.store=false, acks store
 *       offsets, enable.auto.commit=true), queued.min.messages=10000000
 *       and queued.max.messages.kbytes=1048576 (see QUEUED_MIN_MESSAGES):
 *       receive, check and ack
 *       (wv_kafka_ack) every message. The clock starts once the WARM-th is
 *       acked (so the group join is left out) and stops when the last of
 *       the N more is. In each partition the offsets must come 0, 1, 2,
 *       ... and each value must be SIZE bytes starting with 12 digits.
 *       Then (untimed) the acked offsets are committed and the consumer
 *       closed. value=<messages per second>
 *   bench_kafka fill BROKERS TOPIC COUNT PARTITIONS
 *       produce COUNT messages to TOPIC (sequence 0 .. COUNT-1), message i
 *       to partition i % PARTITIONS (the mock cluster keeps only the last
 *       5 MiB of each partition, so the messages are spread evenly), every
 *       report checked
 *
 * A message is SIZE (100) bytes: its sequence number in 12 digits, then
 * filler; no key, no headers. Lines starting with '#' (on stderr) describe
 * the run. Before value= come, one a line, what bench/cache/note.sh
 * collects for the suite's CPU lines: server_cpu= and client_cpu=, the CPU
 * the mock cluster (its pid in MSG_SERVER_PID; -1 without it) and this
 * process (every thread, librdkafka's included) used over the timed window
 * in % of one core; server_us= and client_us=, the same in CPU µs per
 * message.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "bench_util.h"
#include "weave/kafka.h"
#include "weave/rt.h"

enum {
    SIZE = 100,
    WINDOW = 10000,
    MAX_WINDOW = 1000000,
    MAX_PARTITIONS = 256,
};

typedef enum mode { PRODUCE, CONSUME, FILL } mode;

/*
 * consume: the prefetch limits, raised on both sides. librdkafka 2.0
 * stops fetching once queued.min.messages (100,000) wait in the consumer's
 * queue and looks again only about a second later (2.1 made that
 * fetch.queue.backoff.ms), so with the defaults a consumer slower than the
 * fetcher sits idle for most of each second and the figure would measure
 * that pause, not the client. With these the whole topic fits.
 */
#define QUEUED_MIN_MESSAGES "10000000"
#define QUEUED_MAX_KBYTES   "1048576"

static mode run_mode;
static const char *brokers, *topic, *group;
static long long warm, count;
static int window = WINDOW;
static pid_t server_pid; /* MSG_SERVER_PID */

/* produce: the highest offset reported per partition; consume: the next
 * offset expected per partition */
static int64_t offsets[MAX_PARTITIONS];
static int fill_partitions; /* fill: PARTITIONS */

static void make_body(char *b, long long seq)
{
    char d[24];
    snprintf(d, sizeof d, "%012lld", seq);
    memcpy(b, d, 12);
    memset(b + 12, 'x', SIZE - 12);
}

static void print_result(const char *what, cpu_mark a, cpu_mark b, long long n)
{
    double secs = (double)(b.at - a.at) / 1e9;
    double rate = (double)n / secs;
    fprintf(stderr, "# %s: %lld messages of %d bytes in %.3f s after %lld of warm-up\n", what, n,
            SIZE, secs, warm);
    print_cpu_lines(a, b, rate);
    printf("value=%.0f\n", rate);
}

/* ------------------------------------------------------------ producing */

static int note_report(const wv_kafka_report *rep)
{
    if (rep->partition < 0 || rep->partition >= MAX_PARTITIONS) {
        fprintf(stderr, "# a report for partition %d\n", (int)rep->partition);
        return -EIO;
    }
    if (rep->offset > offsets[rep->partition])
        offsets[rep->partition] = rep->offset;
    return 0;
}

/*
 * Produce messages first .. first+n-1, at most win without a report:
 * produce while there is room, else wait for the oldest report. 0 once
 * every one was written.
 */
static int produce_window(wv_kafka *k, long long first, long long n, int win)
{
    wv_kafka_pending **ring = calloc((size_t)win, sizeof *ring);
    if (!ring)
        return -ENOMEM;
    char body[SIZE];
    long long next = first, end = first + n;
    int head = 0, inflight = 0, rc = 0;
    while (rc == 0 && (next < end || inflight > 0)) {
        if (next < end && inflight < win) {
            make_body(body, next);
            wv_kafka_record rec = {.topic = topic, .value = {body, SIZE}};
            if (run_mode == FILL) { /* spread evenly: the mock keeps 5 MiB a partition */
                rec.partition = (int32_t)(next % fill_partitions);
                rec.has_partition = true;
            }
            rc = wv_kafka_produce_start(k, &rec, &ring[(head + inflight) % win]);
            if (rc < 0) {
                fprintf(stderr, "# produce %lld: %s\n", next, wv_errmsg());
                break;
            }
            inflight++;
            next++;
            continue;
        }
        wv_kafka_pending *p = ring[head];
        ring[head] = NULL;
        head = (head + 1) % win;
        inflight--;
        wv_kafka_report rep;
        rc = wv_kafka_pending_wait(p, WV_NEVER, &rep);
        if (rc < 0)
            fprintf(stderr, "# delivery report: %s\n", wv_errmsg());
        else
            rc = note_report(&rep);
        wv_kafka_pending_free(p);
    }
    for (int i = 0; i < win; i++)
        wv_kafka_pending_free(ring[i]); /* only after a failure */
    free(ring);
    return rc;
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

static int produce_run(void)
{
    for (int i = 0; i < MAX_PARTITIONS; i++)
        offsets[i] = -1;
    wv_kafka *k;
    int rc = wv_kafka_open(&(wv_kafka_opts){.brokers = brokers}, &k);
    if (rc < 0) {
        fprintf(stderr, "# open: %s\n", wv_errmsg());
        return rc;
    }
    long long first = 0, n = count;
    if (run_mode == PRODUCE && warm > 0)
        rc = produce_window(k, 0, warm, window);
    if (run_mode == PRODUCE)
        first = warm;
    cpu_mark a = cpu_mark_now(server_pid);
    if (rc == 0)
        rc = produce_window(k, first, n, run_mode == FILL ? WINDOW : window);
    cpu_mark b = cpu_mark_now(server_pid);
    wv_kafka_stats st;
    wv_kafka_stats_get(k, &st);
    long long total = first + n;
    if (rc == 0) {
        fprintf(stderr, "# produced %llu, delivered %llu, failed %llu; window %d\n",
                (unsigned long long)st.produced, (unsigned long long)st.delivered,
                (unsigned long long)st.failed, window);
        if (st.delivered != (uint64_t)total || st.failed != 0) {
            fprintf(stderr, "# %llu delivered of %lld produced\n", (unsigned long long)st.delivered,
                    total);
            rc = -EIO;
        } else if (reported_total() != total) {
            fprintf(stderr, "# the reports' offsets add up to %lld messages, not %lld\n",
                    reported_total(), total);
            rc = -EIO;
        }
    }
    int crc = wv_kafka_close(k);
    if (rc == 0 && crc < 0) {
        fprintf(stderr, "# close: %s\n", wv_errmsg());
        rc = crc;
    }
    if (rc == 0 && run_mode == PRODUCE)
        print_result("produce", a, b, count);
    else if (rc == 0)
        fprintf(stderr, "# filled %s with %lld messages\n", topic, total);
    return rc;
}

/* ------------------------------------------------------------ consuming */

/* Receive, check and ack n messages. */
static int consume_some(wv_kafka_consumer *c, long long n)
{
    for (long long i = 0; i < n; i++) {
        wv_kafka_msg *m;
        int rc = wv_kafka_recv(c, &m, WV_NEVER);
        if (rc < 0) {
            fprintf(stderr, "# receive: %s\n", wv_errmsg());
            return rc;
        }
        int32_t p = m->partition;
        if (p < 0 || p >= MAX_PARTITIONS || m->offset != offsets[p] || m->value.n != SIZE ||
            memcmp(m->value.p + 12, "xxxx", 4) != 0 || m->value.p[0] < '0' || m->value.p[0] > '9') {
            fprintf(stderr,
                    "# partition %d offset %lld (%lld expected): %zu bytes, not a message "
                    "of fill's\n",
                    (int)p, (long long)m->offset,
                    p >= 0 && p < MAX_PARTITIONS ? (long long)offsets[p] : -1LL, m->value.n);
            wv_kafka_msg_free(m);
            return -EIO;
        }
        offsets[p]++;
        if ((rc = wv_kafka_ack(m)) < 0) {
            fprintf(stderr, "# ack: %s\n", wv_errmsg());
            return rc;
        }
    }
    return 0;
}

static int consume_run(void)
{
    wv_kafka_consumer *c;
    wv_kafka_consumer_opts o = {
        .brokers = brokers,
        .group_id = group,
        .topics = (const char *[]){topic, NULL},
        .config = (const char *[]){"auto.offset.reset", "earliest", "queued.min.messages",
                                   QUEUED_MIN_MESSAGES, "queued.max.messages.kbytes",
                                   QUEUED_MAX_KBYTES, NULL},
    };
    int rc = wv_kafka_consumer_open(&o, &c);
    if (rc < 0) {
        fprintf(stderr, "# open: %s\n", wv_errmsg());
        return rc;
    }
    rc = consume_some(c, warm);
    cpu_mark a = cpu_mark_now(server_pid);
    if (rc == 0)
        rc = consume_some(c, count);
    cpu_mark b = cpu_mark_now(server_pid);
    wv_kafka_consumer_stats st;
    wv_kafka_consumer_stats_get(c, &st);
    if (rc == 0 && (rc = wv_kafka_commit(c)) < 0)
        fprintf(stderr, "# commit: %s\n", wv_errmsg());
    int crc = wv_kafka_consumer_close(c);
    if (rc == 0 && crc < 0) {
        fprintf(stderr, "# close: %s\n", wv_errmsg());
        rc = crc;
    }
    if (rc == 0) {
        fprintf(stderr, "# received %llu, acked %llu, stale %llu, rebalances %llu, %d partitions\n",
                (unsigned long long)st.received, (unsigned long long)st.acked,
                (unsigned long long)st.stale, (unsigned long long)st.rebalances, st.assigned);
        if (st.acked != (uint64_t)(warm + count) || st.stale != 0)
            rc = -EIO;
        else
            print_result("consume", a, b, count);
    }
    return rc;
}

static int bench_main(void *arg)
{
    (void)arg;
    wv_deadline_set(wv_after_ms(600000)); /* never hang the suite */
    return run_mode == CONSUME ? consume_run() : produce_run();
}

int main(int argc, char **argv)
{
    bool ok = false;
    if (argc >= 2 && strcmp(argv[1], "produce") == 0 && (argc == 6 || argc == 7)) {
        run_mode = PRODUCE;
        warm = atoll(argv[4]);
        count = atoll(argv[5]);
        window = argc > 6 ? atoi(argv[6]) : WINDOW;
        ok = true;
    } else if (argc == 7 && strcmp(argv[1], "consume") == 0) {
        run_mode = CONSUME;
        group = argv[4];
        warm = atoll(argv[5]);
        count = atoll(argv[6]);
        ok = true;
    } else if (argc == 6 && strcmp(argv[1], "fill") == 0) {
        run_mode = FILL;
        count = atoll(argv[4]);
        fill_partitions = atoi(argv[5]);
        ok = fill_partitions >= 1 && fill_partitions <= MAX_PARTITIONS;
    }
    if (!ok || warm < 0 || count < 1 || window < 1 || window > MAX_WINDOW) {
        fprintf(stderr,
                "usage: %s produce BROKERS TOPIC WARM N [WINDOW]\n"
                "       %s consume BROKERS TOPIC GROUP WARM N\n"
                "       %s fill BROKERS TOPIC COUNT PARTITIONS\n",
                argv[0], argv[0], argv[0]);
        return 2;
    }
    brokers = argv[2];
    topic = argv[3];
    const char *pid = getenv("MSG_SERVER_PID");
    server_pid = pid ? (pid_t)atoi(pid) : 0;
    wv_main_opts opts = {.shards = 1}; /* one client, on one shard */
    int rc = wv_main(&opts, bench_main, NULL);
    return rc == 0 ? 0 : 1;
}
