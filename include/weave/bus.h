/*
 * weave's message bus: publish to a topic, consume in a named group,
 * acknowledge what was handled. One API over backends chosen by URL; this
 * build has the in-process one:
 *
 *   memory://[?max_pending=N]   an in-process bus (the embedded default):
 *                               one per process, shared by every shard
 *
 *     wv_bus *bus;
 *     wv_bus_open("memory://", NULL, &bus);
 *     wv_bus_sub *sub;
 *     wv_bus_subscribe(bus, "orders", "billing", NULL, &sub);   // topic, group
 *     wv_bus_publish(bus, "orders", WV_STR("{\"id\":7}"), NULL);
 *     wv_bus_msg m;
 *     if (wv_bus_recv(sub, &m) == 0) {                            // waits
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
 *    and neither acked nor nacked when its subscriber is closed goes back
 *    to its group and reaches another subscriber (or the same one later).
 *    So a handler that crashes midway loses nothing, and a handler must
 *    cope with seeing a message twice (at-least-once).
 *  - A group exists from its first subscription on, and keeps its messages
 *    while it has no subscriber (up to max_pending). A message published
 *    to a topic no group has subscribed to yet reaches nobody: publish says
 *    so by returning 0 groups.
 *  - A bus handle belongs to the shard that opened it; open one per shard.
 *    Every memory:// handle of the process is the same bus, so a message
 *    published on one shard reaches subscribers on any shard.
 *
 * The memory backend's promise: what publish accepted is delivered at
 * least once to every group it counted, as long as the process lives (it
 * keeps nothing across a restart). Within a group, messages are delivered
 * in the order they were published, except those delivered again.
 *
 * Errors are negative errno values with wv_errmsg() saying why: -EINVAL (a
 * bad topic, group or URL), -ENOBUFS (a group already holds max_pending
 * messages; the publish stored nothing), -EMSGSIZE (over max_message),
 * -ETIMEDOUT and -ECANCELED (the fiber's deadline, cancellation), -EPIPE
 * (the subscription or bus was closed), -EPERM (outside a fiber), -ENOMEM.
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
    /* messages a group may hold, delivered or not, before publish refuses
     * (-ENOBUFS); 0 = the URL's ?max_pending=, else 100000 */
    size_t max_pending;
    size_t max_message; /* bytes; 0 = 1 MiB */
} wv_bus_opts;

/* A bus handle on the calling shard for `url`. opts may be NULL. The
 * settings of the process's first memory:// handle hold for the bus. */
int wv_bus_open(const char *url, const wv_bus_opts *opts, wv_bus **out);

/* Close the handle; its subscriptions must be closed first (their
 * unacknowledged messages go back to their groups). NULL is ignored. */
void wv_bus_close(wv_bus *bus);

/* "memory". */
const char *wv_bus_backend(const wv_bus *bus);

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
 * again, deliveries + 1); without requeue it is dropped. */
int wv_bus_nack(wv_bus_sub *sub, wv_bus_msg *m, bool requeue);

/* How many messages of topic's group wait to be delivered (its backlog,
 * for monitoring): >= 0, -ENOENT when the group does not exist, -EINVAL
 * for a bad name. */
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
