/*
 * bench/bench_amqp.c: weave's RabbitMQ client (include/weave/amqp.h)
 * against a real RabbitMQ, every message counted and checked.
 * bench/run_messaging.sh runs it against a throwaway node (RabbitMQ on CPU
 * 0, this program on CPU 1, one shard) beside its anchors.
 *
 *   bench_amqp publish URL QUEUE WARM N [WINDOW]
 *       declare QUEUE durable, then publish WARM + N persistent messages
 *       of SIZE bytes to it through the default exchange on one channel
 *       of one connection, at most WINDOW (100) unconfirmed: one fiber
 *       calls wv_amqp_publish_start while fewer than WINDOW are in flight,
 *       else waits for the oldest confirm (wv_amqp_confirm_wait). The
 *       first WARM are the warm-up; once every one of them is confirmed
 *       the clock starts, and it stops when the last of the N is. Every
 *       confirm must be an ack. value=<messages per second>
 *   bench_amqp consume URL QUEUE WARM N [PREFETCH]
 *       declare QUEUE durable, basic.qos PREFETCH (100), consume it with
 *       manual acks: receive, check, ack (one basic.ack per message) and
 *       free each message. The clock starts once the WARM-th is acked and
 *       stops when the last of the N more is. Message i must carry
 *       sequence number i (the queue holds what `fill` wrote, in order).
 *       value=<messages per second>
 *   bench_amqp fill URL QUEUE COUNT
 *       declare QUEUE durable and publish COUNT persistent messages
 *       (sequence 0 .. COUNT-1), confirmed, 1,000 in flight
 *   bench_amqp expect URL QUEUE COUNT
 *       the queue (a passive declare) holds exactly COUNT ready messages;
 *       exit status 1 if not
 *   bench_amqp delete URL QUEUE
 *       delete the queue (no error when there is none)
 *
 * A message is SIZE (100) bytes: its sequence number in 12 digits, then
 * filler. The connection and the channel are opened before the clock
 * starts. Lines starting with '#' (on stderr) describe the run. Before
 * value= come, one a line, what bench/cache/note.sh collects for the
 * suite's CPU lines: server_cpu= and client_cpu=, the CPU the broker (its
 * beam.smp pid in MSG_SERVER_PID; -1 without it) and this process used over
 * the timed window in % of one core; server_us= and client_us=, the same in
 * CPU µs per message.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "bench_util.h"
#include "weave/amqp.h"
#include "weave/rt.h"

enum { SIZE = 100, WINDOW = 100, PREFETCH = 100, FILL_WINDOW = 1000, MAX_WINDOW = 65535 };

typedef enum mode { PUBLISH, CONSUME, FILL, EXPECT, DELETE } mode;

static const struct {
    const char *name;
    mode m;
    int nargs; /* after the mode: the required ones */
} modes[] = {
    {"publish", PUBLISH, 4}, {"consume", CONSUME, 4}, {"fill", FILL, 3},
    {"expect", EXPECT, 3},   {"delete", DELETE, 2},
};

static mode run_mode;
static const char *url, *queue;
static long long warm, count; /* count: N, or COUNT */
static int window = WINDOW;   /* publish: WINDOW; consume: PREFETCH */
static pid_t server_pid;      /* MSG_SERVER_PID */

/* The body of message seq: 12 digits, then filler up to SIZE bytes. */
static void make_body(char *b, long long seq)
{
    char d[24];
    snprintf(d, sizeof d, "%012lld", seq);
    memcpy(b, d, 12);
    memset(b + 12, 'x', SIZE - 12);
}

static bool body_ok(wv_str body, long long seq)
{
    char want[SIZE];
    make_body(want, seq);
    return body.n == SIZE && memcmp(body.p, want, SIZE) == 0;
}

static int open_channel(wv_amqp **mq, wv_amqp_channel **ch)
{
    int rc = wv_amqp_open(url, &(wv_amqp_opts){.connection_name = "bench_amqp"}, mq);
    if (rc < 0) {
        fprintf(stderr, "# open: %s\n", wv_errmsg());
        return rc;
    }
    if ((rc = wv_amqp_channel_open(*mq, ch)) < 0) {
        fprintf(stderr, "# channel: %s\n", wv_errmsg());
        wv_amqp_close(*mq);
    }
    return rc;
}

static int declare(wv_amqp_channel *ch)
{
    int rc = wv_amqp_queue_declare(ch, queue, &(wv_amqp_queue_opts){.durable = true}, NULL);
    if (rc < 0)
        fprintf(stderr, "# declare %s: %s\n", queue, wv_errmsg());
    return rc;
}

/*
 * Publish messages first .. first+n-1, at most win unconfirmed: publish
 * while there is room, else wait for the oldest confirm. 0 once every one
 * was acked.
 */
static int publish_window(wv_amqp_channel *ch, long long first, long long n, int win)
{
    wv_amqp_confirm **ring = calloc((size_t)win, sizeof *ring);
    if (!ring)
        return -ENOMEM;
    char body[SIZE];
    long long next = first, end = first + n;
    int head = 0, inflight = 0, rc = 0;
    while (rc == 0 && (next < end || inflight > 0)) {
        if (next < end && inflight < win) {
            make_body(body, next);
            rc = wv_amqp_publish_start(ch, "", queue, (wv_str){body, SIZE}, NULL,
                                       &ring[(head + inflight) % win]);
            if (rc < 0) {
                fprintf(stderr, "# publish %lld: %s\n", next, wv_errmsg());
                break;
            }
            inflight++;
            next++;
            continue;
        }
        wv_amqp_confirm *cf = ring[head];
        ring[head] = NULL;
        head = (head + 1) % win;
        inflight--;
        rc = wv_amqp_confirm_wait(cf, WV_NEVER);
        if (rc < 0)
            fprintf(stderr, "# confirm of publish %" PRIu64 ": %s\n", wv_amqp_confirm_seq(cf),
                    wv_errmsg());
        wv_amqp_confirm_free(cf);
    }
    for (int i = 0; i < win; i++)
        wv_amqp_confirm_free(ring[i]); /* only after a failure */
    free(ring);
    return rc;
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

static int publish_run(void)
{
    wv_amqp *mq;
    wv_amqp_channel *ch;
    int rc = open_channel(&mq, &ch);
    if (rc < 0)
        return rc;
    if ((rc = declare(ch)) == 0 && warm > 0)
        rc = publish_window(ch, 0, warm, window);
    if (rc == 0) {
        cpu_mark a = cpu_mark_now(server_pid);
        rc = publish_window(ch, warm, count, window);
        cpu_mark b = cpu_mark_now(server_pid);
        if (rc == 0) {
            wv_amqp_stats st;
            wv_amqp_stats_get(mq, &st);
            fprintf(stderr,
                    "# published %llu, acked %llu, nacked %llu, failed %llu, reconnects %llu; "
                    "window %d\n",
                    (unsigned long long)st.published, (unsigned long long)st.acked,
                    (unsigned long long)st.nacked, (unsigned long long)st.failed,
                    (unsigned long long)st.reconnects, window);
            if (st.acked != (uint64_t)(warm + count) || st.published != st.acked) {
                fprintf(stderr, "# %llu acked of %lld sent\n", (unsigned long long)st.acked,
                        warm + count);
                rc = -EIO;
            } else {
                print_result("publish_confirm", a, b, count);
            }
        }
    }
    wv_amqp_close(mq);
    return rc;
}

/* Receive, check and ack messages first .. first+n-1. */
static int consume_some(wv_amqp_consumer *co, long long first, long long n)
{
    for (long long seq = first; seq < first + n; seq++) {
        wv_amqp_msg *m;
        int rc = wv_amqp_consumer_recv(co, &m, WV_NEVER);
        if (rc < 0) {
            fprintf(stderr, "# receive %lld: %s\n", seq, wv_errmsg());
            return rc;
        }
        bool ok = body_ok(m->body, seq);
        if (!ok)
            fprintf(stderr, "# message %lld: %zu bytes '%.12s', not the one expected\n", seq,
                    m->body.n, m->body.p ? m->body.p : "");
        else if ((rc = wv_amqp_ack(m)) < 0)
            fprintf(stderr, "# ack %lld: %s\n", seq, wv_errmsg());
        wv_amqp_msg_free(m);
        if (!ok || rc < 0)
            return ok ? rc : -EIO;
    }
    return 0;
}

static int consume_run(void)
{
    wv_amqp *mq;
    wv_amqp_channel *ch;
    int rc = open_channel(&mq, &ch);
    if (rc < 0)
        return rc;
    wv_amqp_consumer *co = NULL;
    if ((rc = declare(ch)) == 0 && (rc = wv_amqp_qos(ch, (uint16_t)window)) < 0)
        fprintf(stderr, "# qos: %s\n", wv_errmsg());
    if (rc == 0 && (rc = wv_amqp_consume(ch, queue, NULL, &co)) < 0)
        fprintf(stderr, "# consume: %s\n", wv_errmsg());
    if (rc == 0)
        rc = consume_some(co, 0, warm);
    if (rc == 0) {
        cpu_mark a = cpu_mark_now(server_pid);
        rc = consume_some(co, warm, count);
        cpu_mark b = cpu_mark_now(server_pid);
        if (rc == 0) {
            wv_amqp_stats st;
            wv_amqp_stats_get(mq, &st);
            fprintf(stderr, "# delivered %llu, reconnects %llu; prefetch %d\n",
                    (unsigned long long)st.delivered, (unsigned long long)st.reconnects, window);
            if (st.reconnects != 0) {
                rc = -EIO;
            } else {
                print_result("consume_ack", a, b, count);
            }
        }
    }
    wv_amqp_consumer_free(co);
    wv_amqp_close(mq); /* the acks go out before connection.close */
    return rc;
}

static int fill_run(void)
{
    wv_amqp *mq;
    wv_amqp_channel *ch;
    int rc = open_channel(&mq, &ch);
    if (rc < 0)
        return rc;
    if ((rc = declare(ch)) == 0)
        rc = publish_window(ch, 0, count, FILL_WINDOW);
    if (rc == 0)
        fprintf(stderr, "# filled %s with %lld messages\n", queue, count);
    wv_amqp_close(mq);
    return rc;
}

static int expect_run(void)
{
    wv_amqp *mq;
    wv_amqp_channel *ch;
    int rc = open_channel(&mq, &ch);
    if (rc < 0)
        return rc;
    wv_amqp_queue_info info;
    rc = wv_amqp_queue_declare(ch, queue, &(wv_amqp_queue_opts){.passive = true}, &info);
    if (rc < 0) {
        fprintf(stderr, "# queue %s: %s\n", queue, wv_errmsg());
    } else if ((long long)info.messages != count) {
        fprintf(stderr, "# queue %s holds %u messages, not %lld\n", queue, info.messages, count);
        rc = -EIO;
    }
    wv_amqp_close(mq);
    return rc;
}

static int delete_run(void)
{
    wv_amqp *mq;
    wv_amqp_channel *ch;
    int rc = open_channel(&mq, &ch);
    if (rc < 0)
        return rc;
    uint32_t n = 0;
    rc = wv_amqp_queue_delete(ch, queue, false, false, &n);
    if (rc == -ENOENT)
        rc = 0;
    else if (rc < 0)
        fprintf(stderr, "# delete %s: %s\n", queue, wv_errmsg());
    wv_amqp_close(mq);
    return rc;
}

static int bench_main(void *arg)
{
    (void)arg;
    wv_deadline_set(wv_after_ms(600000)); /* never hang the suite */
    switch (run_mode) {
    case PUBLISH:
        return publish_run();
    case CONSUME:
        return consume_run();
    case FILL:
        return fill_run();
    case EXPECT:
        return expect_run();
    case DELETE:
        return delete_run();
    }
    return -EINVAL;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s publish URL QUEUE WARM N [WINDOW]\n"
            "       %s consume URL QUEUE WARM N [PREFETCH]\n"
            "       %s fill URL QUEUE COUNT\n"
            "       %s expect URL QUEUE COUNT\n"
            "       %s delete URL QUEUE\n",
            argv0, argv0, argv0, argv0, argv0);
}

int main(int argc, char **argv)
{
    int known = -1;
    for (size_t i = 0; argc >= 2 && i < sizeof modes / sizeof modes[0]; i++)
        if (strcmp(argv[1], modes[i].name) == 0)
            known = (int)i;
    if (known < 0 || argc < 2 + modes[known].nargs || argc > 3 + modes[known].nargs) {
        usage(argv[0]);
        return 2;
    }
    run_mode = modes[known].m;
    url = argv[2];
    queue = argv[3];
    if (run_mode == PUBLISH || run_mode == CONSUME) {
        warm = atoll(argv[4]);
        count = atoll(argv[5]);
        if (argc > 6)
            window = atoi(argv[6]);
        if (warm < 0 || count < 1 || window < 1 || window > MAX_WINDOW) {
            fprintf(stderr, "bench_amqp: WARM >= 0, N >= 1, WINDOW or PREFETCH 1 to %d\n",
                    MAX_WINDOW);
            return 2;
        }
    } else if (run_mode != DELETE) {
        count = atoll(argv[4]);
        if (count < 0 || (run_mode == FILL && count < 1)) {
            fprintf(stderr, "bench_amqp: bad COUNT\n");
            return 2;
        }
    }
    const char *pid = getenv("MSG_SERVER_PID");
    server_pid = pid ? (pid_t)atoi(pid) : 0;
    wv_main_opts opts = {.shards = 1}; /* one client, on one shard */
    int rc = wv_main(&opts, bench_main, NULL);
    return rc == 0 ? 0 : 1;
}
