/*
 * The bus on Kafka, kafka:// (include/weave/bus.h), over weave's Kafka
 * client (include/weave/kafka.h).
 *
 * The mapping is Kafka's own: a bus topic is a Kafka topic, a bus group a
 * consumer group. A publish is a produce that returns once every in-sync
 * replica has the message (idempotent, acks=all); each subscription is a
 * group consumer of its own, whose acks store offsets for commit (a
 * partition's offset moves only past messages acked, in order). Kafka
 * keeps a topic's messages for everyone, so a group made later reads from
 * the oldest message still kept (auto.offset.reset=earliest: nothing
 * published is skipped; ?auto.offset.reset=latest in the URL skips what
 * came before the group's first join).
 *
 * Kafka has no per-message nack: a nack with requeue seeks the message's
 * partition back to it (or to an older message of the partition the
 * subscriber still holds), so it and every later message of the partition
 * are read again (those the subscriber holds then ack as -ESTALE and come
 * again too); a nack without requeue acks it. How many
 * times a message came is remembered for those sent back by a nack (a
 * few per subscription); a message read again after a restart or a
 * rebalance counts as delivered once.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_backend.h"
#include "weave/kafka.h"
#include "weave/net.h"
#include "weave/rt.h"

enum { MAX_PROPS = 32, MEMO = 16, UNSUBSCRIBE_MS = 5000 };

typedef struct kafka_handle {
    struct wv_bus base;
    wv_kafka *k;
    char *brokers;                  /* NULL: $KAFKA_BROKERS */
    char *props[2 * MAX_PROPS + 1]; /* the URL's librdkafka properties, NULL-ended */
    const char *producer_config[2 * MAX_PROPS + 1];
    const char *consumer_config[2 * MAX_PROPS + 8];
} kafka_handle;

/* A message sent back by a nack: where it is, how many times it came. */
typedef struct memo {
    char topic[250];
    int32_t partition;
    int64_t offset;
    int deliveries;
} memo;

typedef struct kafka_sub {
    struct wv_bus_sub base;
    wv_kafka_consumer *c;
    wv_chan *stop; /* closed by wv_bus_sub_stop */
    bus_held *held;
    memo memos[MEMO];
    int next_memo;
    int last_err; /* the stream's last error, logged once until it changes */
} kafka_sub;

static const bus_ops kafka_ops;

static void free_handle(kafka_handle *h)
{
    free(h->brokers);
    for (int i = 0; h->props[i]; i++)
        free(h->props[i]);
    free(h);
}

/* kafka://host:port,host:port[/][?property=value&...] */
static int parse_url(kafka_handle *h, const char *url)
{
    const char *p = url + strlen("kafka://");
    size_t n = strcspn(p, "/?");
    if (n > 0 && !(h->brokers = strndup(p, n)))
        return -ENOMEM;
    p += n;
    if (*p == '/')
        p++;
    if (*p == '\0')
        return 0;
    if (*p != '?')
        return wv_fail(-EINVAL, "bus URL kafka://%s: a path is not allowed (brokers, then ?props)",
                       h->brokers ? h->brokers : "");
    p++;
    int np = 0;
    while (*p) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);
        if (!eq || eq == p)
            return wv_fail(-EINVAL, "bus URL: \"%.*s\" is not property=value", (int)len, p);
        if (np == 2 * MAX_PROPS)
            return wv_fail(-EINVAL, "bus URL: more than %d properties", MAX_PROPS);
        size_t kn = (size_t)(eq - p), vn = len - kn - 1;
        char *k = malloc(kn + 1), *v = malloc(vn + 1);
        if (!k || !v) {
            free(k);
            free(v);
            return -ENOMEM;
        }
        h->props[np++] = k; /* owned from here on */
        h->props[np++] = v;
        if (wv_url_decode(p, kn, k, kn + 1) < 0 || wv_url_decode(eq + 1, vn, v, vn + 1) < 0)
            return wv_fail(-EINVAL, "bus URL: a bad percent-escape in \"%.*s\"", (int)len, p);
        p += len;
        if (*p == '&')
            p++;
    }
    return 0;
}

int bus_kafka_open(const char *url, const wv_bus_opts *opts, wv_bus **out)
{
    (void)opts;
    kafka_handle *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    h->base.ops = &kafka_ops;
    int rc = parse_url(h, url);
    if (rc < 0) {
        free_handle(h);
        return rc;
    }
    /* the consumers' defaults, then the URL's properties over them: a
     * "producer." or "consumer." prefix keeps one to that side */
    int np = 0, nc = 0;
    h->consumer_config[nc++] = "auto.offset.reset";
    h->consumer_config[nc++] = "earliest";
    h->consumer_config[nc++] = "allow.auto.create.topics";
    h->consumer_config[nc++] = "true";
    for (int i = 0; h->props[i]; i += 2) {
        const char *name = h->props[i];
        bool to_producer = true, to_consumer = true;
        if (!strncmp(name, "producer.", 9)) {
            name += 9;
            to_consumer = false;
        } else if (!strncmp(name, "consumer.", 9)) {
            name += 9;
            to_producer = false;
        }
        if (to_producer) {
            h->producer_config[np++] = name;
            h->producer_config[np++] = h->props[i + 1];
        }
        if (to_consumer) {
            h->consumer_config[nc++] = name;
            h->consumer_config[nc++] = h->props[i + 1];
        }
    }
    h->producer_config[np] = NULL;
    h->consumer_config[nc] = NULL;
    rc = wv_kafka_open(&(wv_kafka_opts){.brokers = h->brokers,
                                        .client_id = "weave-bus",
                                        .config = h->producer_config},
                       &h->k);
    if (rc < 0) {
        free_handle(h);
        return rc;
    }
    *out = &h->base;
    return 0;
}

static void kafka_bus_close(wv_bus *b)
{
    kafka_handle *h = (kafka_handle *)b;
    wv_kafka_close(h->k);
    free_handle(h);
}

static int kafka_bus_publish(wv_bus *b, const char *topic, wv_str body)
{
    kafka_handle *h = (kafka_handle *)b;
    int rc = wv_kafka_produce(h->k, &(wv_kafka_record){.topic = topic, .value = body}, NULL);
    return rc < 0 ? rc : 1; /* in the topic: every group, now or later, reads it */
}

static int kafka_bus_subscribe(wv_bus *b, const char *topic, const char *group, wv_bus_sub **out)
{
    kafka_handle *h = (kafka_handle *)b;
    kafka_sub *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->base = (struct wv_bus_sub){.ops = &kafka_ops, .bus = b};
    s->stop = wv_chan_new(1, 1);
    int rc = s->stop ? 0 : -ENOMEM;
    if (rc == 0)
        rc = wv_kafka_consumer_open(
            &(wv_kafka_consumer_opts){.brokers = h->brokers,
                                      .client_id = "weave-bus",
                                      .group_id = group,
                                      .topics = (const char *[]){topic, NULL},
                                      .config = h->consumer_config},
            &s->c);
    if (rc < 0) {
        if (s->stop)
            wv_chan_free(s->stop);
        free(s);
        return rc;
    }
    *out = &s->base;
    return 0;
}

static memo *find_memo(kafka_sub *s, const wv_kafka_msg *km)
{
    for (int i = 0; i < MEMO; i++) {
        memo *me = &s->memos[i];
        if (me->deliveries && me->partition == km->partition && me->offset == km->offset &&
            !strcmp(me->topic, km->topic))
            return me;
    }
    return NULL;
}

static int kafka_bus_recv(wv_bus_sub *s_, wv_bus_msg *m, int64_t at)
{
    kafka_sub *s = (kafka_sub *)s_;
    for (;;) {
        wv_kafka_msg *km = NULL;
        int got = bus_recv_or_stop(s->stop, wv_kafka_consumer_chan(s->c), &km, at);
        if (got < 0)
            return got;
        if (got == 1)
            return wv_fail(-EPIPE, "the subscription's Kafka consumer has ended");
        int rc = wv_kafka_msg_check(km);
        if (rc < 0) {
            /* the stream's news (no broker, no topic yet) or a message of a
             * partition gone elsewhere: the consumer carries on */
            if (rc != -ESTALE && rc != s->last_err)
                wv_warn("bus kafka: %s (the subscription goes on)", wv_errmsg());
            if (rc != -ESTALE)
                s->last_err = rc;
            wv_kafka_msg_free(km);
            continue;
        }
        s->last_err = 0;
        bus_held *hd = bus_held_push(&s->held, km);
        if (!hd) {
            wv_kafka_msg_free(km); /* unacked: read again after a rebalance or restart */
            return -ENOMEM;
        }
        memo *me = find_memo(s, km);
        *m = (wv_bus_msg){.body = km->value.p ? km->value : (wv_str){"", 0},
                          .id = (uint64_t)km->offset,
                          .deliveries = me ? me->deliveries + 1 : 1,
                          .published = km->timestamp_ms > 0 ? bus_wall_ms_to_now(km->timestamp_ms)
                                                            : wv_now(),
                          .token_ = hd};
        if (me)
            me->deliveries++;
        return 0;
    }
}

static int kafka_bus_ack(wv_bus_sub *s_, wv_bus_msg *m)
{
    bus_held *hd = bus_held_take(&((kafka_sub *)s_)->held, m);
    if (!hd)
        return wv_fail(-EINVAL, "not a message of this subscription awaiting its ack");
    int rc = wv_kafka_ack(hd->m); /* frees it */
    free(hd);
    return rc;
}

static int kafka_bus_nack(wv_bus_sub *s_, wv_bus_msg *m, bool requeue)
{
    kafka_sub *s = (kafka_sub *)s_;
    int deliveries = m->deliveries;
    bus_held *hd = bus_held_take(&s->held, m);
    if (!hd)
        return wv_fail(-EINVAL, "not a message of this subscription awaiting its ack");
    wv_kafka_msg *km = hd->m;
    free(hd);
    if (!requeue)
        return wv_kafka_ack(km); /* dropped: done with, as far as the group goes */
    /* back to the oldest message of the partition a handler still holds:
     * a seek makes those stale, and they must come again too */
    int64_t from = km->offset;
    for (bus_held *o = s->held; o; o = o->next) {
        const wv_kafka_msg *om = o->m;
        if (om->partition == km->partition && om->offset < from && !strcmp(om->topic, km->topic))
            from = om->offset;
    }
    int rc = wv_kafka_seek(s->c, km->topic, km->partition, from);
    if (rc == 0) {
        memo *me = find_memo(s, km);
        if (!me) {
            me = &s->memos[s->next_memo];
            s->next_memo = (s->next_memo + 1) % MEMO;
            snprintf(me->topic, sizeof me->topic, "%s", km->topic);
            me->partition = km->partition;
            me->offset = km->offset;
        }
        me->deliveries = deliveries;
    } else if (rc == -ENOENT) {
        rc = 0; /* the partition went to another member: it reads the message again */
        wv_errmsg_clear();
    }
    wv_kafka_msg_free(km);
    return rc;
}

static int64_t kafka_bus_backlog(wv_bus *b, const char *topic, const char *group)
{
    (void)b;
    return wv_fail(-ENOTSUP,
                   "kafka: a group's backlog is its lag, which the brokers keep (kafka-consumer-"
                   "groups --describe --group %s shows it for topic %s)",
                   group, topic);
}

static int kafka_bus_ping(wv_bus *b)
{
    int rc = wv_kafka_ping(((kafka_handle *)b)->k);
    return rc < 0 ? rc : 0;
}

static void kafka_bus_sub_stop(wv_bus_sub *s)
{
    wv_chan_close(((kafka_sub *)s)->stop);
}

static void free_msg(void *m)
{
    wv_kafka_msg_free(m); /* unacked: read again by the group */
}

typedef struct goodbye {
    wv_kafka_consumer *c;
    wv_event done;
} goodbye;

static int goodbye_fiber(void *arg)
{
    goodbye *g = arg;
    wv_deadline_set(wv_after_ms(UNSUBSCRIBE_MS));
    if (wv_kafka_consumer_close(g->c) < 0)
        wv_warn("bus kafka: closing a subscription: %s (what it acked since the last commit "
                "is read again)",
                wv_errmsg());
    wv_event_set(&g->done);
    return 0;
}

static void kafka_bus_unsubscribe(wv_bus_sub *s_)
{
    kafka_sub *s = (kafka_sub *)s_;
    /* messages held and not acked stay uncommitted: the group reads them
     * again (their partitions go to the other members now) */
    bus_held_drain(&s->held, free_msg);
    /* the goodbye (commit, leave the group) in a fiber of its own, so that
     * a caller being cancelled (a stopping service) still commits what was
     * acked; within 5 s: one cut short only makes the group wait for the
     * session to time out */
    goodbye g = {.c = s->c};
    if (wv_spawn(goodbye_fiber, &g, &(wv_spawn_opts){.name = "bus-kafka-goodbye"}) == 0)
        wv_event_wait_shielded(&g.done);
    else
        goodbye_fiber(&g);
    wv_chan_free(s->stop);
    free(s);
}

static const bus_ops kafka_ops = {
    .name = "kafka",
    .publish = kafka_bus_publish,
    .subscribe = kafka_bus_subscribe,
    .recv = kafka_bus_recv,
    .ack = kafka_bus_ack,
    .nack = kafka_bus_nack,
    .backlog = kafka_bus_backlog,
    .ping = kafka_bus_ping,
    .sub_stop = kafka_bus_sub_stop,
    .unsubscribe = kafka_bus_unsubscribe,
    .close = kafka_bus_close,
};
