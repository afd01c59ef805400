/*
 * bench/messaging/librabbitmq_publish.c: the anchor of
 * amqp.publish_confirm_perftest (bench/run_messaging.sh), built as
 * build/release/librabbitmq_publish: what `bench_amqp publish` does, as a
 * plain C loop on librabbitmq's blocking API (RabbitMQ's C client, which
 * weave uses only as its method codec): no runtime, no event loop, no
 * fibers, the way a C publisher in the spirit of RabbitMQ's PerfTest
 * would be written.
 *
 *     librabbitmq_publish URL QUEUE WARM N [WINDOW]
 *
 * One connection (amqp_tcp_socket, librabbitmq's defaults: TCP_NODELAY,
 * frame_max 131072), channel 1 in confirm mode (confirm.select), the queue
 * declared durable, then WARM + N persistent messages (delivery mode 2) of
 * 100 bytes (sequence number in 12 digits, then filler) to it through the
 * default exchange with amqp_basic_publish, mandatory off, at most WINDOW
 * (100) unconfirmed: it publishes while the oldest unconfirmed delivery
 * tag is fewer than WINDOW behind the next, else blocks in
 * amqp_simple_wait_frame for the broker's next frame. A basic.ack settles
 * its delivery tag, or with `multiple` every tag up to it (RabbitMQ sends
 * those when confirms pile up); a basic.nack, a channel.close or any other
 * frame fails the run, and so does an ack of a tag not in flight. The
 * first WARM are the warm-up; once every one of them is confirmed the
 * clock starts, and it stops when the last of the N is.
 *
 * Prints '#' lines on stderr, then server_cpu=, client_cpu=, server_us=,
 * client_us= (the broker's pid in MSG_SERVER_PID) and value=<messages per
 * second>, as bench_amqp does.
 */
#include <amqp.h>
#include <amqp_framing.h>
#include <amqp_tcp_socket.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include "bench_util.h"

enum { SIZE = 100, WINDOW = 100, MAX_WINDOW = 65535 };

static amqp_connection_state_t conn;
static const char *queue;
static int window = WINDOW;

/* tags 1, 2, ... in publish order; done[tag % window] for acks that came
 * before an older tag's */
static uint64_t next_tag = 1, low = 1, confirmed;
static bool *done;

static int fail(const char *what, amqp_rpc_reply_t r)
{
    if (r.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION)
        fprintf(stderr, "# %s: %s\n", what, amqp_error_string2(r.library_error));
    else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
             r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
        amqp_channel_close_t *m = r.reply.decoded;
        fprintf(stderr, "# %s: channel closed: %u %.*s\n", what, m->reply_code,
                (int)m->reply_text.len, (char *)m->reply_text.bytes);
    } else if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION &&
               r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
        amqp_connection_close_t *m = r.reply.decoded;
        fprintf(stderr, "# %s: connection closed: %u %.*s\n", what, m->reply_code,
                (int)m->reply_text.len, (char *)m->reply_text.bytes);
    } else {
        fprintf(stderr, "# %s: failed (reply type %d)\n", what, (int)r.reply_type);
    }
    return -1;
}

static int check(const char *what)
{
    amqp_rpc_reply_t r = amqp_get_rpc_reply(conn);
    return r.reply_type == AMQP_RESPONSE_NORMAL ? 0 : fail(what, r);
}

/* Settle one tag, or (multiple) every tag up to it. */
static int settle(uint64_t tag, bool multiple)
{
    if (tag < low || tag >= next_tag || (!multiple && done[tag % (uint64_t)window])) {
        fprintf(stderr, "# an ack of delivery tag %" PRIu64 ", not in flight\n", tag);
        return -1;
    }
    if (multiple) {
        for (; low <= tag; low++) {
            if (!done[low % (uint64_t)window])
                confirmed++;
            done[low % (uint64_t)window] = false;
        }
    } else {
        done[tag % (uint64_t)window] = true;
        confirmed++;
    }
    while (low < next_tag && done[low % (uint64_t)window])
        done[low++ % (uint64_t)window] = false;
    return 0;
}

/* Wait for the broker's next frame: an ack to settle; anything else fails. */
static int read_confirm(void)
{
    amqp_frame_t f;
    amqp_maybe_release_buffers(conn);
    int rc = amqp_simple_wait_frame(conn, &f);
    if (rc != AMQP_STATUS_OK) {
        fprintf(stderr, "# waiting for confirms: %s\n", amqp_error_string2(rc));
        return -1;
    }
    if (f.frame_type != AMQP_FRAME_METHOD) {
        fprintf(stderr, "# an unexpected frame of type %d\n", f.frame_type);
        return -1;
    }
    switch (f.payload.method.id) {
    case AMQP_BASIC_ACK_METHOD: {
        amqp_basic_ack_t *a = f.payload.method.decoded;
        return settle(a->delivery_tag, a->multiple);
    }
    case AMQP_BASIC_NACK_METHOD: {
        amqp_basic_nack_t *a = f.payload.method.decoded;
        fprintf(stderr, "# the broker nacked delivery tag %" PRIu64 "\n", a->delivery_tag);
        return -1;
    }
    case AMQP_CHANNEL_CLOSE_METHOD: {
        amqp_channel_close_t *m = f.payload.method.decoded;
        fprintf(stderr, "# channel closed: %u %.*s\n", m->reply_code, (int)m->reply_text.len,
                (char *)m->reply_text.bytes);
        return -1;
    }
    default:
        fprintf(stderr, "# an unexpected method 0x%08x\n", (unsigned)f.payload.method.id);
        return -1;
    }
}

/* Publish messages first .. first+n-1 and wait until all are confirmed. */
static int publish_window(long long first, long long n)
{
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG,
                                     .delivery_mode = AMQP_DELIVERY_PERSISTENT};
    char body[SIZE], digits[24];
    memset(body, 'x', sizeof body);
    amqp_bytes_t rk = amqp_cstring_bytes(queue);
    long long seq = first, end = first + n;
    while (seq < end || low < next_tag) {
        if (seq < end && next_tag - low < (uint64_t)window) {
            snprintf(digits, sizeof digits, "%012lld", seq);
            memcpy(body, digits, 12);
            int rc = amqp_basic_publish(conn, 1, amqp_empty_bytes, rk, 0, 0, &props,
                                        (amqp_bytes_t){SIZE, body});
            if (rc != AMQP_STATUS_OK) {
                fprintf(stderr, "# publish %lld: %s\n", seq, amqp_error_string2(rc));
                return -1;
            }
            next_tag++;
            seq++;
            continue;
        }
        if (read_confirm() < 0)
            return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5 || argc > 6) {
        fprintf(stderr, "usage: %s URL QUEUE WARM N [WINDOW]\n", argv[0]);
        return 2;
    }
    char *url = strdup(argv[1]);
    queue = argv[2];
    long long warm = atoll(argv[3]), n = atoll(argv[4]);
    if (argc > 5)
        window = atoi(argv[5]);
    if (!url || warm < 0 || n < 1 || window < 1 || window > MAX_WINDOW) {
        fprintf(stderr, "librabbitmq_publish: WARM >= 0, N >= 1, WINDOW 1 to %d\n", MAX_WINDOW);
        return 2;
    }
    const char *pid = getenv("MSG_SERVER_PID");
    pid_t server_pid = pid ? (pid_t)atoi(pid) : 0;
    done = calloc((size_t)window, sizeof *done);
    struct amqp_connection_info ci;
    amqp_default_connection_info(&ci);
    if (!done || amqp_parse_url(url, &ci) != AMQP_STATUS_OK) {
        fprintf(stderr, "librabbitmq_publish: bad URL\n");
        return 2;
    }
    if (!*ci.vhost) /* amqp://host/ names "/" as weave and aio-pika read it, not "" */
        ci.vhost = "/";
    conn = amqp_new_connection();
    amqp_socket_t *sock = amqp_tcp_socket_new(conn);
    int rc = sock ? amqp_socket_open(sock, ci.host, ci.port) : AMQP_STATUS_NO_MEMORY;
    if (rc != AMQP_STATUS_OK) {
        fprintf(stderr, "# connect %s:%d: %s\n", ci.host, ci.port, amqp_error_string2(rc));
        return 1;
    }
    amqp_rpc_reply_t r =
        amqp_login(conn, ci.vhost, 0, AMQP_DEFAULT_FRAME_SIZE, AMQP_DEFAULT_HEARTBEAT,
                   AMQP_SASL_METHOD_PLAIN, ci.user, ci.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL)
        return fail("login", r), 1;
    amqp_channel_open(conn, 1);
    if (check("channel.open") < 0)
        return 1;
    amqp_confirm_select(conn, 1);
    if (check("confirm.select") < 0)
        return 1;
    amqp_queue_declare(conn, 1, amqp_cstring_bytes(queue), 0, 1, 0, 0, amqp_empty_table);
    if (check("queue.declare") < 0)
        return 1;
    if (warm > 0 && publish_window(0, warm) < 0)
        return 1;
    cpu_mark a = cpu_mark_now(server_pid);
    if (publish_window(warm, n) < 0)
        return 1;
    cpu_mark b = cpu_mark_now(server_pid);
    if (confirmed != (uint64_t)(warm + n)) {
        fprintf(stderr, "# %" PRIu64 " confirmed of %lld sent\n", confirmed, warm + n);
        return 1;
    }
    double secs = (double)(b.at - a.at) / 1e9, rate = (double)n / secs;
    fprintf(stderr,
            "# librabbitmq %s: %lld messages of %d bytes in %.3f s after %lld of warm-up, window "
            "%d, %" PRIu64 " confirmed\n",
            amqp_version(), n, SIZE, secs, warm, window, confirmed);
    print_cpu_lines(a, b, rate);
    printf("value=%.0f\n", rate);
    amqp_channel_close(conn, 1, AMQP_REPLY_SUCCESS);
    amqp_connection_close(conn, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(conn);
    free(done);
    free(url);
    return 0;
}
