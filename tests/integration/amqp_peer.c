/*
 * weave's side of tests/integration/test_amqp_peers.py and
 * test_amqp_aiopika.py: a small program on the public AMQP API that pika,
 * amqplib and aio-pika exchange messages with.
 *
 *   amqp_peer publish URL QUEUE COUNT FROM
 *       declare QUEUE (durable) and publish COUNT messages "FROM-i" with
 *       confirms: content type text/plain, message id "FROM-i", correlation
 *       id "corr-i", priority 3, headers {from: FROM, n: i, ok: true,
 *       nested: {k: "v"}}; prints "published COUNT"
 *   amqp_peer consume URL QUEUE COUNT
 *       consume COUNT messages with manual acks and print one line each:
 *       body, content type, message id, correlation id, reply-to,
 *       priority, delivery mode, and the headers as name=value pairs
 *       (nested tables as {name=value ...}, arrays as [value,...], a void
 *       value as void), tab-separated
 *   amqp_peer serve URL QUEUE COUNT
 *       answer COUNT requests from QUEUE: each reply goes to its reply-to
 *       through the default exchange with its correlation id, the body
 *       "reply to BODY"
 *   amqp_peer tasks URL QUEUE COUNT FROM [INTERVAL_MS]
 *       the chapter's producer (§13.4.1): COUNT messages "FROM-i" (COUNT 0:
 *       until SIGTERM) then "exit" through the default exchange, plain
 *       text, persistent, one every INTERVAL_MS (0 by default), each
 *       waiting for its confirm; one the connection lost first
 *       (-ECONNRESET) is sent again once the connection is back. Prints
 *       "confirmed BODY" as each is confirmed, then "sent S confirmed C
 *       lost L reconnects R" (S - L = C: every message confirmed once)
 *   amqp_peer worker URL QUEUE MAX
 *       the chapter's consumer: receive with manual acks, print each body
 *       on a line and ack it, until the message "exit" (acked too, not
 *       printed); more than MAX messages before it is an error. Prints
 *       "worked N", N the messages before "exit"
 *
 * Exit status 0 on success; errors on stderr with wv_errmsg().
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weave/amqp.h"

typedef struct args {
    int argc;
    char **argv;
} args;

static int fail(const char *what, int rc)
{
    fprintf(stderr, "amqp_peer: %s: %s (%s)\n", what, wv_strerror(rc), wv_errmsg());
    return 1;
}

static void print_table(wv_str t);
static void print_array(wv_str a);

static void print_value(const wv_amqp_field *f)
{
    switch (f->type) {
    case WV_AMQP_FIELD_INT:
    case WV_AMQP_FIELD_TIMESTAMP:
        printf("%lld", (long long)f->i);
        break;
    case WV_AMQP_FIELD_BOOL:
        printf("%s", f->b ? "true" : "false");
        break;
    case WV_AMQP_FIELD_DOUBLE:
        printf("%g", f->d);
        break;
    case WV_AMQP_FIELD_STRING:
    case WV_AMQP_FIELD_BYTES:
        printf("%.*s", (int)f->s.n, f->s.p);
        break;
    case WV_AMQP_FIELD_TABLE:
        printf("{");
        print_table(f->s);
        printf("}");
        break;
    case WV_AMQP_FIELD_ARRAY:
        printf("[");
        print_array(f->s);
        printf("]");
        break;
    case WV_AMQP_FIELD_VOID:
        printf("void");
        break;
    default:
        printf("?");
    }
}

static void print_table(wv_str t)
{
    size_t pos = 0;
    wv_amqp_field f;
    bool first = true;
    while (wv_amqp_table_next(t, &pos, &f) == 1) {
        printf("%s%.*s=", first ? "" : " ", (int)f.name.n, f.name.p);
        first = false;
        print_value(&f);
    }
}

static void print_array(wv_str a)
{
    size_t pos = 0;
    wv_amqp_field f;
    bool first = true;
    while (wv_amqp_array_next(a, &pos, &f) == 1) {
        printf("%s", first ? "" : ",");
        first = false;
        print_value(&f);
    }
}

static int publish(wv_amqp_channel *ch, const char *queue, int count, const char *from)
{
    for (int i = 0; i < count; i++) {
        char body[128], id[128], corr[32];
        snprintf(body, sizeof body, "%s-%d", from, i);
        snprintf(id, sizeof id, "%s-%d", from, i);
        snprintf(corr, sizeof corr, "corr-%d", i);
        wv_amqp_field nested[] = {WV_AMQP_STR("k", "v")};
        wv_amqp_field headers[] = {WV_AMQP_STR("from", from), WV_AMQP_INT("n", i),
                                   WV_AMQP_BOOL("ok", true), WV_AMQP_TABLE("nested", nested, 1)};
        int rc = wv_amqp_publish(ch, "", queue, (wv_str){body, strlen(body)},
                                 &(wv_amqp_publish_opts){.content_type = "text/plain",
                                                         .message_id = id,
                                                         .correlation_id = corr,
                                                         .priority = 3,
                                                         .headers = headers,
                                                         .nheaders = 4});
        if (rc < 0)
            return fail("publish", rc);
    }
    printf("published %d\n", count);
    return 0;
}

/* The chapter's producer: every message confirmed once, those the
 * connection lost sent again. count 0: until a graceful stop (SIGTERM). */
static int tasks(wv_amqp *c, wv_amqp_channel *ch, const char *queue, int count, const char *from,
                 int interval_ms)
{
    int sent = 0, confirmed = 0, lost = 0;
    for (int i = 0;; i++) {
        bool last = count ? i == count : wv_stopping();
        char body[128];
        if (!last)
            snprintf(body, sizeof body, "%s-%d", from, i);
        else
            snprintf(body, sizeof body, "exit");
        int64_t old = wv_deadline_set(wv_after_ms(60000));
        int rc;
        do {
            sent++;
            rc = wv_amqp_publish(ch, "", queue, (wv_str){body, strlen(body)},
                                 &(wv_amqp_publish_opts){.content_type = "text/plain"});
            if (rc == -ECONNRESET)
                lost++;
        } while (rc == -ECONNRESET);
        wv_deadline_set(old);
        if (rc < 0)
            return fail("publish", rc);
        printf("confirmed %s\n", body);
        confirmed++;
        if (last)
            break;
        if (interval_ms > 0)
            wv_sleep_ms(interval_ms);
    }
    wv_amqp_stats st;
    wv_amqp_stats_get(c, &st);
    printf("sent %d confirmed %d lost %d reconnects %llu\n", sent, confirmed, lost,
           (unsigned long long)st.reconnects);
    return 0;
}

/* The chapter's consumer: manual acks, until "exit". */
static int worker(wv_amqp_channel *ch, const char *queue, int max)
{
    wv_amqp_consumer *co;
    int rc = wv_amqp_consume(ch, queue, NULL, &co);
    if (rc < 0)
        return fail("consume", rc);
    int n = 0;
    for (;;) {
        wv_amqp_msg *m;
        rc = wv_amqp_consumer_recv(co, &m, wv_after_ms(20000));
        if (rc < 0)
            return fail("receive", rc);
        bool done = wv_str_eq_cstr(m->body, "exit");
        if (!done) {
            printf("%.*s\n", (int)m->body.n, m->body.p);
            n++;
        }
        if ((rc = wv_amqp_ack(m)) < 0)
            return fail("ack", rc);
        wv_amqp_msg_free(m);
        if (done)
            break;
        if (n > max) {
            fprintf(stderr, "amqp_peer: %d messages and no \"exit\"\n", n);
            return 1;
        }
    }
    printf("worked %d\n", n);
    wv_amqp_consumer_free(co);
    return 0;
}

static int consume(wv_amqp_channel *ch, const char *queue, int count, bool serve)
{
    wv_amqp_consumer *co;
    int rc = wv_amqp_consume(ch, queue, NULL, &co);
    if (rc < 0)
        return fail("consume", rc);
    for (int i = 0; i < count; i++) {
        wv_amqp_msg *m;
        rc = wv_amqp_consumer_recv(co, &m, wv_after_ms(20000));
        if (rc < 0)
            return fail("receive", rc);
        if (serve) {
            char reply[512];
            int n = snprintf(reply, sizeof reply, "reply to %.*s", (int)m->body.n, m->body.p);
            rc = wv_amqp_publish(
                ch, "", m->reply_to.p, (wv_str){reply, (size_t)n},
                &(wv_amqp_publish_opts){.correlation_id = m->correlation_id.p, .transient = true});
            if (rc < 0)
                return fail("reply", rc);
        } else {
            printf("%.*s\t%s\t%s\t%s\t%s\t%d\t%d\t", (int)m->body.n, m->body.p, m->content_type.p,
                   m->message_id.p, m->correlation_id.p, m->reply_to.p, m->priority,
                   m->delivery_mode);
            print_table(m->headers);
            printf("\n");
        }
        if ((rc = wv_amqp_ack(m)) < 0)
            return fail("ack", rc);
        wv_amqp_msg_free(m);
    }
    if (serve)
        printf("served %d\n", count);
    wv_amqp_consumer_free(co);
    return 0;
}

static int peer_main(void *arg)
{
    args *a = arg;
    const char *mode = a->argv[1], *url = a->argv[2], *queue = a->argv[3];
    int count = atoi(a->argv[4]);
    wv_amqp *c;
    int rc = wv_amqp_open(url, NULL, &c);
    if (rc < 0)
        return fail("open", rc);
    wv_amqp_channel *ch;
    rc = wv_amqp_channel_open(c, &ch);
    if (rc < 0)
        return fail("channel", rc);
    rc = wv_amqp_queue_declare(ch, queue, &(wv_amqp_queue_opts){.durable = true}, NULL);
    if (rc < 0)
        return fail("declare", rc);
    if (strcmp(mode, "publish") == 0 && a->argc == 6)
        rc = publish(ch, queue, count, a->argv[5]);
    else if (strcmp(mode, "consume") == 0)
        rc = consume(ch, queue, count, false);
    else if (strcmp(mode, "serve") == 0)
        rc = consume(ch, queue, count, true);
    else if (strcmp(mode, "tasks") == 0 && (a->argc == 6 || a->argc == 7))
        rc = tasks(c, ch, queue, count, a->argv[5], a->argc == 7 ? atoi(a->argv[6]) : 0);
    else if (strcmp(mode, "worker") == 0)
        rc = worker(ch, queue, count);
    else
        rc = 2;
    wv_amqp_close(c);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: amqp_peer publish|consume|serve|tasks|worker URL QUEUE COUNT "
                        "[FROM [INTERVAL_MS]]\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    args a = {argc, argv};
    int rc = wv_main(&(wv_main_opts){.shards = 1}, peer_main, &a);
    return rc == 0 ? 0 : rc > 0 ? rc : 1;
}
