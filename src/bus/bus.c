/*
 * The message bus (include/weave/bus.h): the calls every backend shares.
 * Names, sizes and the URL's scheme are checked here, once; the rest goes
 * to the handle's backend (memory.c, amqp.c, kafka.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus_backend.h"
#include "weave/rt.h"

enum { NAME_MAX_LEN = 249 };

bool wv_bus_name_valid(wv_str name)
{
    if (name.n == 0 || name.n > NAME_MAX_LEN)
        return false;
    for (size_t i = 0; i < name.n; i++) {
        char c = name.p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

static int check_name(const char *what, const char *name)
{
    if (!name || !wv_bus_name_valid((wv_str){name, strlen(name)}))
        return wv_fail(-EINVAL, "bad %s name \"%.60s\": 1 to 249 letters, digits, '.', '_' or '-'",
                       what, name ? name : "(null)");
    return 0;
}

static bool has_scheme(const char *url, const char *scheme)
{
    return strncmp(url, scheme, strlen(scheme)) == 0;
}

int wv_bus_open(const char *url, const wv_bus_opts *opts, wv_bus **out)
{
    *out = NULL;
    if (wv_shard_id() < 0)
        return wv_fail(-EPERM, "wv_bus_open outside the runtime");
    if (!url)
        return wv_fail(-EINVAL, "no bus URL");
    int rc;
    if (has_scheme(url, "memory://"))
        rc = bus_memory_open(url, opts, out);
    else if (has_scheme(url, "amqp://") || has_scheme(url, "amqps://"))
        rc = bus_amqp_open(url, opts, out);
    else if (has_scheme(url, "kafka://"))
        rc = bus_kafka_open(url, opts, out);
    else
        return wv_fail(-EINVAL, "bus URL \"%.80s\": not memory://, amqp://, amqps:// or kafka://",
                       url);
    if (rc == 0 && !(*out)->max_message)
        (*out)->max_message = opts && opts->max_message ? opts->max_message : BUS_MAX_MESSAGE;
    return rc;
}

void wv_bus_close(wv_bus *bus)
{
    if (bus)
        bus->ops->close(bus);
}

const char *wv_bus_backend(const wv_bus *bus)
{
    return bus->ops->name;
}

int wv_bus_publish(wv_bus *bus, const char *topic, wv_str body)
{
    int rc = check_name("topic", topic);
    if (rc < 0)
        return rc;
    if (body.n > bus->max_message)
        return wv_fail(-EMSGSIZE, "a message of %zu bytes is over the bus's %zu", body.n,
                       bus->max_message);
    return bus->ops->publish(bus, topic, body);
}

int wv_bus_subscribe(wv_bus *bus, const char *topic, const char *group, wv_bus_sub **out)
{
    *out = NULL;
    int rc = check_name("topic", topic);
    if (rc == 0)
        rc = check_name("group", group);
    if (rc < 0)
        return rc;
    return bus->ops->subscribe(bus, topic, group, out);
}

int wv_bus_recv(wv_bus_sub *sub, wv_bus_msg *m, int64_t at)
{
    memset(m, 0, sizeof *m);
    return sub->ops->recv(sub, m, at);
}

int wv_bus_ack(wv_bus_sub *sub, wv_bus_msg *m)
{
    return sub->ops->ack(sub, m);
}

int wv_bus_nack(wv_bus_sub *sub, wv_bus_msg *m, bool requeue)
{
    return sub->ops->nack(sub, m, requeue);
}

int64_t wv_bus_backlog(wv_bus *bus, const char *topic, const char *group)
{
    int rc = check_name("topic", topic);
    if (rc == 0)
        rc = check_name("group", group);
    if (rc < 0)
        return rc;
    return bus->ops->backlog(bus, topic, group);
}

int wv_bus_ping(wv_bus *bus)
{
    return bus->ops->ping(bus);
}

void wv_bus_sub_stop(wv_bus_sub *sub)
{
    sub->ops->sub_stop(sub);
}

void wv_bus_unsubscribe(wv_bus_sub *sub)
{
    if (sub)
        sub->ops->unsubscribe(sub);
}

bus_held *bus_held_push(bus_held **list, void *m)
{
    bus_held *h = malloc(sizeof *h);
    if (!h)
        return NULL;
    *h = (bus_held){.m = m, .next = *list};
    if (*list)
        (*list)->prev = h;
    *list = h;
    return h;
}

bus_held *bus_held_take(bus_held **list, wv_bus_msg *m)
{
    for (bus_held *h = *list; h; h = h->next)
        if (h == m->token_) {
            if (h->prev)
                h->prev->next = h->next;
            else
                *list = h->next;
            if (h->next)
                h->next->prev = h->prev;
            m->token_ = NULL;
            m->body = (wv_str){"", 0};
            return h;
        }
    return NULL;
}

void bus_held_drain(bus_held **list, void (*free_msg)(void *m))
{
    while (*list) {
        bus_held *h = *list;
        *list = h->next;
        free_msg(h->m);
        free(h);
    }
}

int bus_recv_or_stop(wv_chan *stop, wv_chan *msgs, void *elem, int64_t at)
{
    char none;
    wv_select_case cases[] = {
        {.chan = stop, .op = WV_RECV, .elem = &none},
        {.chan = msgs, .op = WV_RECV, .elem = elem},
    };
    int i = wv_chan_select(cases, 2, at);
    if (i < 0)
        return i;
    if (i == 0)
        return wv_fail(-EPIPE, "the subscription was stopped");
    return cases[1].result < 0 ? 1 : 0;
}

int64_t bus_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t bus_wall_ms_to_now(int64_t wall_ms)
{
    int64_t ago_ms = bus_wall_ms() - wall_ms; /* another host's clock may be ahead */
    return wv_now() - (ago_ms > 0 ? ago_ms : 0) * 1000000;
}
