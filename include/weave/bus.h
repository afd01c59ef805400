/*
 * weave's message bus: publish to a topic, consume in a named group,
 * acknowledge what was handled. One API over three backends, chosen by the
 * URL:
 *
 *   memory://[?max_pending=N]   an in-process bus (the embedded default):
 *                               one per process, shared by every shard
 *   amqp://user:pass@host:port/vhost, amqps://...
 *                               RabbitMQ (the URL is weave's AMQP client's,
 *                               include/weave/amqp.h)
 *   kafka://host:port[,host:port...][?property=value&...]
 *                               Kafka (kafka:// alone: $KAFKA_BROKERS); the
 *                               properties are librdkafka's, by name, for
 *                               the producer and the consumers alike, or
 *                               one side with "producer." / "consumer."
 *                               before the name (consumer.session.timeout.ms)
 *
 *     wv_bus *bus;
 *     wv_bus_open("memory://", NULL, &bus);
 *     wv_bus_sub *sub;
 *     wv_bus_subscribe(bus, "orders", "billing", &sub);        // topic, group
 *     wv_bus_publish(bus, "orders", WV_STR("{\"id\":7}"));
 *     wv_bus_msg m;
 *     if (wv_bus_recv(sub, &m, WV_NEVER) == 0) {                // waits
 *         handle(m.body);
 *         wv_bus_ack(sub, &m);          // handled: never delivered again
 *     }
 *
 * The model, which every backend keeps:
 *
 *  - A topic is a name messages are published to. A group is a named set
 *    of subscribers that share a topic's messages: each message goes to
 *    every group of its topic, and within a group to one subscriber. Two
 *    services subscribing with different group names each get everything;
 *    two replicas of one service, with the same group name, split the work
 *    (RabbitMQ's queue per consumer group, Kafka's consumer group).
 *  - A message is delivered again until it is acknowledged: one received
 *    and neither acked nor nacked when its subscriber is closed (or its
 *    process dies, with a broker) goes back to its group and reaches
 *    another subscriber (or the same one later). So a handler that crashes
 *    midway loses nothing, and a handler must cope with seeing a message
 *    twice (at-least-once).
 *  - A group keeps its messages while it has no subscriber.
 *  - A bus handle belongs to the shard that opened it; open one per shard
 *    (wv_app_client does). Every memory:// handle of the process is the
 *    same bus, so a message published on one shard reaches subscribers on
 *    any shard; a broker's handles are its connections.
 *
 * What each backend promises, and where they differ:
 *
 *  - memory: what publish accepted is delivered at least once to every
 *    group it counted, as long as the process lives (nothing survives a
 *    restart). A group exists from its first subscription on; a message
 *    published to a topic no group has subscribed to reaches nobody, and
 *    publish returns 0. Within a group, messages come in the order they
 *    were published, except those delivered again. id rises per topic.
 *  - amqp: publish returns once RabbitMQ confirmed the message: 1 when at
 *    least one group's queue took it (the broker does not say how many), 0
 *    when none did (no group yet: the broker returned it). Messages are
 *    persistent and the queues durable: what was confirmed survives a
 *    broker restart, and reaches each group at least once. The mapping,
 *    for other AMQP clients: topic T is a durable fanout exchange named T,
 *    group G a durable queue "T.G" bound to it (so T and G together are
 *    at most 254 bytes). A publish in flight when the connection drops is
 *    sent again once it is back. deliveries is 2 for a message delivered
 *    again (RabbitMQ says only that it was; quorum queues count), id the
 *    delivery tag on the subscriber's channel.
 *  - kafka: publish returns 1 once every in-sync replica has the message
 *    (idempotent producer, acks=all). Kafka keeps a topic's messages for
 *    every group, so a group made later reads them too, from the oldest
 *    one kept (?auto.offset.reset=latest: from its first join on). A
 *    group's offset moves only past acked messages, in order: a
 *    subscriber that dies leaves what it had not acked to be read again.
 *    A nack with requeue rewinds the message's partition to it (the later
 *    messages of the partition come again too, and the older ones the
 *    subscriber still holds); without requeue it is an ack. Order holds
 *    per partition. id is the message's offset. Unsubscribing commits
 *    what was acked and leaves the group, within 5 s, even from a
 *    cancelled fiber.
 *    wv_bus_backlog is -ENOTSUP (the group's lag is the brokers' to tell).
 *    A group's first subscriber waits a few seconds for the group to form
 *    before messages come.
 *
 * Errors are negative errno values with wv_errmsg() saying why: -EINVAL (a
 * bad topic, group or URL), -ENOBUFS (memory: a group already holds
 * max_pending messages, and the publish stored nothing; amqp: the broker
 * refused the message, e.g. a queue at its length limit), -EMSGSIZE (over
 * max_message), -ETIMEDOUT and -ECANCELED (the fiber's deadline,
 * cancellation: a publish may then still be delivered), -EPIPE (the
 * subscription or bus was closed), -ESTALE (a broker's ack of a message
 * whose connection or partition was lost since: it is delivered again),
 * -EPERM (outside a fiber), -ENOMEM; and the brokers' connection errors
 * (-ECONNREFUSED, -EACCES, ... as their clients give them).
 */
#ifndef WEAVE_BUS_H
#define WEAVE_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/rt.h"
#include "weave/str.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_bus wv_bus;
typedef struct wv_bus_sub wv_bus_sub;

typedef struct wv_bus_opts {
    /* memory: messages a group may hold, delivered or not, before publish
     * refuses (-ENOBUFS); 0 = the URL's ?max_pending=, else 100000 (a
     * broker's limits are its own: RabbitMQ's max-length policies) */
    size_t max_pending;
    size_t max_message; /* bytes; 0 = 1 MiB */
} wv_bus_opts;

/* A bus handle on the calling shard for `url`. opts may be NULL. The
 * settings of the process's first memory:// handle hold for the bus. */
int wv_bus_open(const char *url, const wv_bus_opts *opts, wv_bus **out);

/* Close the handle; its subscriptions must be closed first (their
 * unacknowledged messages go back to their groups). NULL is ignored. */
void wv_bus_close(wv_bus *bus);

/* "memory", "amqp" or "kafka". */
const char *wv_bus_backend(const wv_bus *bus);

/* Is the backend reachable? 0, or why not (a broker's connection down,
 * RabbitMQ blocking publishers, no Kafka broker answering). For /readyz. */
int wv_bus_ping(wv_bus *bus);

/* Names: topics and groups are 1 to 249 bytes of letters, digits, '.',
 * '_' and '-' (what RabbitMQ queue names and Kafka topics both take). */
bool wv_bus_name_valid(wv_str name);

/*
 * Publish body to topic. Returns, once the bus has it, the number of
 * groups it will reach (0: nobody subscribes to the topic yet), or an
 * error, in which case no group has it.
 */
int wv_bus_publish(wv_bus *bus, const char *topic, wv_str body);

/* Subscribe to topic in group (the group is made on first use). */
int wv_bus_subscribe(wv_bus *bus, const char *topic, const char *group, wv_bus_sub **out);

/* A message received. body stays valid until the message is acked or
 * nacked (or its subscription closed). */
typedef struct wv_bus_msg {
    wv_str body;
    uint64_t id;       /* the bus's number for it, rising per topic */
    int deliveries;    /* 1 the first time, more when delivered again */
    int64_t published; /* when it was published (wv_now()'s clock) */
    void *token_;      /* private */
} wv_bus_msg;

/* The next message of the subscription's group: waits until one comes,
 * until `at` (or the fiber's deadline: the earlier) for -ETIMEDOUT, or
 * until the subscription is closed (-EPIPE). at = WV_NEVER waits as long
 * as the fiber's deadline allows. */
int wv_bus_recv(wv_bus_sub *sub, wv_bus_msg *m, int64_t at);

/* Handled: the message is never delivered again. */
int wv_bus_ack(wv_bus_sub *sub, wv_bus_msg *m);

/* Not handled: requeue puts it back at the front of its group (delivered
 * again, deliveries + 1; on kafka, see above); without requeue it is
 * dropped (or dead-lettered, on a RabbitMQ queue with a policy for it). */
int wv_bus_nack(wv_bus_sub *sub, wv_bus_msg *m, bool requeue);

/* How many messages of topic's group wait to be delivered (its backlog,
 * for monitoring): >= 0, -ENOENT when the group does not exist, -EINVAL
 * for a bad name; -ENOTSUP on kafka. */
int64_t wv_bus_backlog(wv_bus *bus, const char *topic, const char *group);

/* Wake a fiber waiting in wv_bus_recv on this subscription with -EPIPE and
 * make every later recv return -EPIPE; from the subscription's shard.
 * Unacknowledged messages stay with the subscription until it is freed. */
void wv_bus_sub_stop(wv_bus_sub *sub);

/* Close the subscription: what it received and did not ack goes back to
 * its group, first in line. No fiber may be waiting in wv_bus_recv on it
 * (stop it first). NULL is ignored. */
void wv_bus_unsubscribe(wv_bus_sub *sub);

#ifdef __cplusplus
}
#endif

#endif
