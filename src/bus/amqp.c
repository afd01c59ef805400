/*
 * The bus on RabbitMQ, amqp:// and amqps:// (include/weave/bus.h), over
 * weave's AMQP client (include/weave/amqp.h).
 *
 * The mapping, the one Spring Cloud Stream's RabbitMQ binder made familiar:
 *
 *   topic T            a durable fanout exchange named T
 *   group G of T       a durable queue named "T.G", bound to T
 *   publish            basic.publish to T, persistent, mandatory, confirmed
 *   a subscriber       a channel of its own consuming "T.G" with manual acks
 *
 * So every group's queue gets a copy, the consumers of one queue split it,
 * RabbitMQ keeps a group's messages while nobody consumes them, and what a
 * subscriber received and did not ack goes back to its queue when its
 * channel closes (or its connection drops). A publish that no queue takes
 * is returned by the broker (mandatory): wv_bus_publish reports 0 groups.
 * Any AMQP client takes part: publish to exchange T, or consume "T.G".
 *
 * A handle is one connection of the shard, with one channel for publishes
 * and one for the passive declares of wv_bus_backlog (a 404 there closes
 * that channel alone, never the publishers'). The connection recovers by
 * itself (the client's connect_robust): exchanges, queues, bindings and
 * consumers are declared again; a publish in flight when it dropped is
 * sent again (opts.republish), so wv_bus_publish's 1 always means "the
 * broker confirmed it".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_backend.h"
#include "weave/amqp.h"
#include "weave/rt.h"

enum { QUEUE_NAME_MAX = 255, PREFETCH = 100 };

typedef struct declared {
    char *name;
    struct declared *next;
} declared;

typedef struct amqp_handle {
    struct wv_bus base;
    wv_amqp *c;
    wv_amqp_channel *pub;   /* publishes */
    wv_amqp_channel *admin; /* wv_bus_backlog's passive declares */
    declared *exchanges;    /* topics this handle declared */
} amqp_handle;

typedef struct amqp_sub {
    struct wv_bus_sub base;
    wv_amqp_channel *ch;
    wv_amqp_consumer *co;
    wv_chan *stop; /* closed by wv_bus_sub_stop */
    bus_held *held;
} amqp_sub;

static const bus_ops amqp_ops;

static int queue_name(const char *topic, const char *group, char *out, size_t cap)
{
    int n = snprintf(out, cap, "%s.%s", topic, group);
    if (n < 0 || (size_t)n >= cap || n > QUEUE_NAME_MAX)
        return wv_fail(-EINVAL,
                       "topic \"%.40s...\" and group \"%.40s...\": their queue name \"T.G\" is "
                       "over RabbitMQ's 255 bytes",
                       topic, group);
    return 0;
}

/* exchange.declare of the topic, once per handle (RabbitMQ's answer to a
 * second declare of the same exchange would be the same). */
static int declare_topic(amqp_handle *h, wv_amqp_channel *ch, const char *topic)
{
    for (declared *d = h->exchanges; d; d = d->next)
        if (!strcmp(d->name, topic))
            return 0;
    int rc =
        wv_amqp_exchange_declare(ch, topic, "fanout", &(wv_amqp_exchange_opts){.durable = true});
    if (rc < 0)
        return rc;
    for (declared *d = h->exchanges; d; d = d->next) /* another fiber was quicker */
        if (!strcmp(d->name, topic))
            return 0;
    declared *d = malloc(sizeof *d);
    if (!d || !(d->name = strdup(topic))) {
        free(d);
        return 0; /* declared; only the memo of it is lost */
    }
    d->next = h->exchanges;
    h->exchanges = d;
    return 0;
}

int bus_amqp_open(const char *url, const wv_bus_opts *opts, wv_bus **out)
{
    (void)opts;
    amqp_handle *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->base.ops = &amqp_ops;
    int rc = wv_amqp_open(
        url,
        &(wv_amqp_opts){.connection_name = "weave bus", .republish = true, .prefetch = PREFETCH},
        &h->c);
    if (rc == 0)
        rc = wv_amqp_channel_open(h->c, &h->pub);
    if (rc == 0)
        rc = wv_amqp_channel_open(h->c, &h->admin);
    if (rc < 0) {
        wv_amqp_close(h->c); /* NULL ignored; frees its channels */
        free(h);
        return rc;
    }
    *out = &h->base;
    return 0;
}

static void amqp_bus_close(wv_bus *b)
{
    amqp_handle *h = (amqp_handle *)b;
    wv_amqp_close(h->c);
    while (h->exchanges) {
        declared *d = h->exchanges;
        h->exchanges = d->next;
        free(d->name);
        free(d);
    }
    free(h);
}

static int amqp_bus_publish(wv_bus *b, const char *topic, wv_str body)
{
    amqp_handle *h = (amqp_handle *)b;
    int rc = declare_topic(h, h->pub, topic);
    if (rc < 0)
        return rc;
    const wv_amqp_field headers[] = {WV_AMQP_INT(BUS_PUBLISHED_HEADER, bus_wall_ms())};
    rc = wv_amqp_publish(h->pub, topic, "", body,
                         &(wv_amqp_publish_opts){.mandatory = true,
                                                 .timestamp = bus_wall_ms() / 1000,
                                                 .headers = headers,
                                                 .nheaders = 1});
    if (rc == 0)
        return 1; /* at least one group's queue has it; the broker does not say how many */
    if (rc == -EHOSTUNREACH) {
        wv_errmsg_clear();
        return 0; /* returned: no group of this topic yet */
    }
    if (rc == -EIO)
        return wv_fail(-ENOBUFS, "RabbitMQ refused the message (%s)", wv_errmsg());
    return rc;
}

static int amqp_bus_subscribe(wv_bus *b, const char *topic, const char *group, wv_bus_sub **out)
{
    amqp_handle *h = (amqp_handle *)b;
    char q[QUEUE_NAME_MAX + 2];
    int rc = queue_name(topic, group, q, sizeof q);
    if (rc < 0)
        return rc;
    amqp_sub *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->base = (struct wv_bus_sub){.ops = &amqp_ops, .bus = b};
    s->stop = wv_chan_new(1, 1);
    rc = s->stop ? wv_amqp_channel_open(h->c, &s->ch) : -ENOMEM;
    if (rc == 0)
        rc = declare_topic(h, s->ch, topic);
    if (rc == 0)
        rc = wv_amqp_queue_declare(s->ch, q, &(wv_amqp_queue_opts){.durable = true}, NULL);
    if (rc == 0)
        rc = wv_amqp_queue_bind(s->ch, q, topic, "", NULL, 0);
    if (rc == 0)
        rc = wv_amqp_consume(s->ch, q, NULL, &s->co);
    if (rc < 0) {
        wv_amqp_channel_close(s->ch);
        if (s->stop)
            wv_chan_free(s->stop);
        free(s);
        return rc;
    }
    *out = &s->base;
    return 0;
}

static int64_t published_at(const wv_amqp_msg *am)
{
    wv_amqp_field f;
    if (wv_amqp_table_get(am->headers, BUS_PUBLISHED_HEADER, &f) == 1 &&
        f.type == WV_AMQP_FIELD_INT)
        return bus_wall_ms_to_now(f.i);
    if (am->timestamp > 0)
        return bus_wall_ms_to_now(am->timestamp * 1000);
    return wv_now(); /* a publisher that said nothing: now is the best guess */
}

static int deliveries_of(const wv_amqp_msg *am)
{
    wv_amqp_field f;
    /* quorum queues count deliveries; classic ones only say "again" */
    if (wv_amqp_table_get(am->headers, "x-delivery-count", &f) == 1 &&
        f.type == WV_AMQP_FIELD_INT && f.i >= 0 && f.i < 1000000)
        return (int)f.i + 1;
    return am->redelivered ? 2 : 1;
}

static int amqp_bus_recv(wv_bus_sub *s_, wv_bus_msg *m, int64_t at)
{
    amqp_sub *s = (amqp_sub *)s_;
    wv_amqp_msg *am = NULL;
    int rc = bus_recv_or_stop(s->stop, wv_amqp_consumer_chan(s->co), &am, at);
    if (rc < 0)
        return rc;
    if (rc == 1)
        return wv_fail(-EPIPE, "%s",
                       wv_amqp_consumer_cancelled(s->co)
                           ? "RabbitMQ cancelled the subscription (its queue was deleted?)"
                           : "the subscription's consumer has ended");
    bus_held *hd = bus_held_push(&s->held, am);
    if (!hd) {
        wv_amqp_msg_free(am); /* given back: delivered again */
        return -ENOMEM;
    }
    *m = (wv_bus_msg){.body = am->body,
                      .id = am->delivery_tag,
                      .deliveries = deliveries_of(am),
                      .published = published_at(am),
                      .token_ = hd};
    return 0;
}

static int settle(wv_bus_sub *s_, wv_bus_msg *m, bool ack, bool requeue)
{
    bus_held *hd = bus_held_take(&((amqp_sub *)s_)->held, m);
    if (!hd)
        return wv_fail(-EINVAL, "not a message of this subscription awaiting its ack");
    int rc = ack ? wv_amqp_ack(hd->m) : wv_amqp_nack(hd->m, requeue);
    wv_amqp_msg_free(hd->m);
    free(hd);
    return rc;
}

static int amqp_bus_ack(wv_bus_sub *s, wv_bus_msg *m)
{
    return settle(s, m, true, false);
}

static int amqp_bus_nack(wv_bus_sub *s, wv_bus_msg *m, bool requeue)
{
    return settle(s, m, false, requeue);
}

static int64_t amqp_bus_backlog(wv_bus *b, const char *topic, const char *group)
{
    amqp_handle *h = (amqp_handle *)b;
    char q[QUEUE_NAME_MAX + 2];
    int rc = queue_name(topic, group, q, sizeof q);
    if (rc < 0)
        return rc;
    wv_amqp_queue_info info;
    rc = wv_amqp_queue_declare(h->admin, q, &(wv_amqp_queue_opts){.passive = true}, &info);
    if (rc == -ENOENT)
        return wv_fail(-ENOENT, "no group \"%s\" of topic \"%s\" (no queue \"%s\")", group, topic,
                       q);
    return rc < 0 ? rc : (int64_t)info.messages;
}

static int amqp_bus_ping(wv_bus *b)
{
    amqp_handle *h = (amqp_handle *)b;
    if (!wv_amqp_connected(h->c))
        return wv_fail(-ENOTCONN, "RabbitMQ: not connected (dialing again)");
    if (wv_amqp_blocked(h->c))
        return wv_fail(-EBUSY, "RabbitMQ blocks publishers (short of memory or disk)");
    return 0;
}

static void amqp_bus_sub_stop(wv_bus_sub *s)
{
    wv_chan_close(((amqp_sub *)s)->stop);
}

static void free_msg(void *m)
{
    wv_amqp_msg_free(m);
}

static void amqp_bus_unsubscribe(wv_bus_sub *s_)
{
    amqp_sub *s = (amqp_sub *)s_;
    /* closing the channel gives back, in one go, what it delivered and
     * nobody acked; the messages held here are then only freed */
    wv_amqp_channel_close(s->ch);
    wv_amqp_consumer_free(s->co);
    bus_held_drain(&s->held, free_msg);
    wv_chan_free(s->stop);
    free(s);
}

static const bus_ops amqp_ops = {
    .name = "amqp",
    .publish = amqp_bus_publish,
    .subscribe = amqp_bus_subscribe,
    .recv = amqp_bus_recv,
    .ack = amqp_bus_ack,
    .nack = amqp_bus_nack,
    .backlog = amqp_bus_backlog,
    .ping = amqp_bus_ping,
    .sub_stop = amqp_bus_sub_stop,
    .unsubscribe = amqp_bus_unsubscribe,
    .close = amqp_bus_close,
};
