/*
 * What src/bus's backends share: each handle (wv_bus) and subscription
 * (wv_bus_sub) starts with the struct below, whose ops are its backend's.
 * bus.c checks names and sizes and dispatches; memory.c, amqp.c and
 * kafka.c each implement one backend.
 */
#ifndef WEAVE_SRC_BUS_BACKEND_H
#define WEAVE_SRC_BUS_BACKEND_H

#include "weave/bus.h"

typedef struct bus_ops {
    const char *name; /* wv_bus_backend */
    int (*publish)(wv_bus *b, const char *topic, wv_str body);
    int (*subscribe)(wv_bus *b, const char *topic, const char *group, wv_bus_sub **out);
    int (*recv)(wv_bus_sub *s, wv_bus_msg *m, int64_t at);
    int (*ack)(wv_bus_sub *s, wv_bus_msg *m);
    int (*nack)(wv_bus_sub *s, wv_bus_msg *m, bool requeue);
    int64_t (*backlog)(wv_bus *b, const char *topic, const char *group);
    int (*ping)(wv_bus *b);
    void (*sub_stop)(wv_bus_sub *s);
    void (*unsubscribe)(wv_bus_sub *s);
    void (*close)(wv_bus *b);
} bus_ops;

/* max_message when wv_bus_opts does not say */
#define BUS_MAX_MESSAGE ((size_t)1 << 20)

/* The first member of every backend's handle. */
struct wv_bus {
    const bus_ops *ops;
    size_t max_message;
};

/* The first member of every backend's subscription. */
struct wv_bus_sub {
    const bus_ops *ops;
    wv_bus *bus;
};

#pragma GCC visibility push(hidden)

/* Each backend's opening: the URL's scheme is already checked. */
int bus_memory_open(const char *url, const wv_bus_opts *opts, wv_bus **out);
int bus_amqp_open(const char *url, const wv_bus_opts *opts, wv_bus **out);
int bus_kafka_open(const char *url, const wv_bus_opts *opts, wv_bus **out);

/* The header "published-ms" the broker backends write: the publisher's
 * wall clock in milliseconds, turned into wv_now()'s clock on receipt. */
#define BUS_PUBLISHED_HEADER "published-ms"

/* The broker backends' messages handed out and not yet settled, newest
 * first: a wv_bus_msg's token_ is its entry. */
typedef struct bus_held {
    void *m; /* the client's message */
    struct bus_held *prev, *next;
} bus_held;

/* Add m to *list: its entry, or NULL when out of memory. */
bus_held *bus_held_push(bus_held **list, void *m);

/* The entry of m (a message received from this list), unlinked, with m's
 * token and body cleared; NULL when m is not one of the list's (acked
 * already, or another subscription's). The caller frees it. */
bus_held *bus_held_take(bus_held **list, wv_bus_msg *m);

/* The broker backends' receive: wait until `at` for an element of msgs
 * (a client's message pointer, into *elem) or for stop to be closed
 * (wv_bus_sub_stop). 0 with *elem set; 1 when msgs was closed (the
 * client's consumer ended: the caller says why); -EPIPE when stopped;
 * -ETIMEDOUT, -ECANCELED. */
int bus_recv_or_stop(wv_chan *stop, wv_chan *msgs, void *elem, int64_t at);

/* Free every entry of *list and its message with free_msg. */
void bus_held_drain(bus_held **list, void (*free_msg)(void *m));

/* A wall-clock time in milliseconds as a time on wv_now()'s clock. */
int64_t bus_wall_ms_to_now(int64_t wall_ms);

/* The wall clock in milliseconds. */
int64_t bus_wall_ms(void);

#pragma GCC visibility pop

#endif
