/*
 * The bus's in-process backend, memory:// (include/weave/bus.h).
 *
 * One bus per process, behind one mutex: shards are threads, and a publish
 * on one shard must reach a subscriber waiting on another. The critical
 * sections are short (list operations; no allocation of message bytes, no
 * wake-up), so a plain pthread mutex is the right lock.
 *
 * A message's bytes are allocated once and shared by the groups that hold
 * it (a count of holders). Each group keeps a queue of entries, one per
 * message not yet delivered; a delivered entry moves to its subscriber's
 * list of unacknowledged ones, and back to the front of the queue when that
 * subscriber nacks it or goes away. A group counts what it holds (queued
 * and unacknowledged) against max_pending.
 *
 * Waking. A subscriber with nothing to take registers as a waiter of its
 * group and sleeps on an event of its own shard. A publish takes one
 * waiter per group off the list and wakes it after the unlock: directly on
 * the same shard, through wv_shard_post on another. The wake is a hint:
 * the woken subscriber takes what it finds under the lock, like anyone, so
 * a wake that comes late or finds the queue empty loses nothing. A
 * subscription is counted (refs) while a wake is on its way to it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus_backend.h"
#include "weave/rt.h"

#define DEFAULT_MAX_PENDING 100000

typedef struct bmsg {
    int holders; /* groups holding it (under the bus lock) */
    uint64_t id;
    int64_t published;
    size_t n;
    char data[];
} bmsg;

typedef struct entry {
    bmsg *m;
    int deliveries;
    struct entry *prev, *next;
} entry;

typedef struct elist {
    entry *head, *tail;
    size_t n;
} elist;

typedef struct group group;
typedef struct topic topic;

typedef struct mem_sub mem_sub;

struct mem_sub {
    struct wv_bus_sub base;
    struct mem_handle *h;
    group *g;
    int shard;
    bool stopped;  /* wv_bus_sub_stop: recv answers -EPIPE */
    bool closed;   /* unsubscribed: a wake on its way finds nobody */
    bool waiting;  /* in g->waiters */
    wv_event ev;   /* a wake-up, on the subscription's shard */
    elist unacked; /* delivered, not yet acked or nacked */
    atomic_int refs;
    mem_sub *wprev, *wnext; /* in g->waiters */
};

struct group {
    char *name;
    elist queue;
    size_t held; /* queued + unacknowledged */
    int nsubs;
    mem_sub *waiters, *waiters_tail;
    group *next;
};

struct topic {
    char *name;
    uint64_t next_id;
    group *groups;
    topic *next;
};

typedef struct mem_bus {
    pthread_mutex_t mu;
    topic *topics;
    size_t max_pending, max_message;
    int handles;
} mem_bus;

typedef struct mem_handle {
    struct wv_bus base;
    mem_bus *mb;
} mem_handle;

static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static mem_bus *the_bus; /* under open_mu */

/* ------------------------------------------------------------- lists */

static void elist_push_back(elist *l, entry *e)
{
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail)
        l->tail->next = e;
    else
        l->head = e;
    l->tail = e;
    l->n++;
}

static void elist_push_front(elist *l, entry *e)
{
    e->prev = NULL;
    e->next = l->head;
    if (l->head)
        l->head->prev = e;
    else
        l->tail = e;
    l->head = e;
    l->n++;
}

static void elist_remove(elist *l, entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        l->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        l->tail = e->prev;
    l->n--;
}

static void release_msg(bmsg *m)
{
    if (--m->holders == 0)
        free(m);
}

static void waiter_remove(group *g, mem_sub *s)
{
    if (!s->waiting)
        return;
    if (s->wprev)
        s->wprev->wnext = s->wnext;
    else
        g->waiters = s->wnext;
    if (s->wnext)
        s->wnext->wprev = s->wprev;
    else
        g->waiters_tail = s->wprev;
    s->wprev = s->wnext = NULL;
    s->waiting = false;
}

static void waiter_add(group *g, mem_sub *s)
{
    if (s->waiting)
        return;
    s->wnext = NULL;
    s->wprev = g->waiters_tail;
    if (g->waiters_tail)
        g->waiters_tail->wnext = s;
    else
        g->waiters = s;
    g->waiters_tail = s;
    s->waiting = true;
}

/* ------------------------------------------------------------- waking */

static void sub_unref(mem_sub *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        free(s);
}

/* Up to WAKE_BATCH subscribers to wake once the lock is released. */
enum { WAKE_BATCH = 16 };
typedef struct wakes {
    mem_sub *s[WAKE_BATCH];
    int n;
} wakes;

/* Take g's first waiter off the list, to be woken (under the lock). When
 * the batch is full the waiter stays: it is woken by a later publish, or
 * finds the message when its wait ends; nothing is lost either way. */
static void take_waiter(group *g, wakes *w)
{
    mem_sub *s = g->waiters;
    if (!s || w->n == WAKE_BATCH)
        return;
    waiter_remove(g, s);
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    w->s[w->n++] = s;
}

static int wake_here(void *arg)
{
    mem_sub *s = arg;
    if (!s->closed)
        wv_event_set(&s->ev);
    sub_unref(s);
    return 0;
}

static void wake_all(wakes *w)
{
    int here = wv_shard_id();
    for (int i = 0; i < w->n; i++) {
        mem_sub *s = w->s[i];
        if (s->shard == here || wv_shard_post(s->shard, wake_here, s) < 0)
            wake_here(s); /* same shard; or shutting down, where nobody waits */
    }
    w->n = 0;
}

/* ------------------------------------------------------------- topics */

static topic *find_topic(mem_bus *mb, const char *name)
{
    for (topic *t = mb->topics; t; t = t->next)
        if (!strcmp(t->name, name))
            return t;
    return NULL;
}

/* ----------------------------------------------------------- the bus */

static int parse_url(const char *url, size_t *max_pending)
{
    static const char scheme[] = "memory://";
    const char *rest = url + sizeof scheme - 1;
    if (!*rest)
        return 0;
    static const char opt[] = "?max_pending=";
    if (strncmp(rest, opt, sizeof opt - 1) == 0) {
        char *end;
        unsigned long long v = strtoull(rest + sizeof opt - 1, &end, 10);
        if (*end == '\0' && v > 0 && end != rest + sizeof opt - 1) {
            *max_pending = (size_t)v;
            return 0;
        }
    }
    return wv_fail(-EINVAL, "bus URL \"%.80s\": memory:// takes only ?max_pending=N (N > 0)", url);
}

static const bus_ops memory_ops;

int bus_memory_open(const char *url, const wv_bus_opts *opts, wv_bus **out)
{
    size_t max_pending = opts && opts->max_pending ? opts->max_pending : 0;
    size_t url_pending = 0;
    int rc = parse_url(url, &url_pending);
    if (rc < 0)
        return rc;
    if (!max_pending)
        max_pending = url_pending ? url_pending : DEFAULT_MAX_PENDING;
    mem_handle *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->base.ops = &memory_ops;
    pthread_mutex_lock(&open_mu);
    if (!the_bus) {
        the_bus = calloc(1, sizeof *the_bus);
        if (!the_bus) {
            pthread_mutex_unlock(&open_mu);
            free(b);
            return -ENOMEM;
        }
        pthread_mutex_init(&the_bus->mu, NULL);
        the_bus->max_pending = max_pending;
        the_bus->max_message = opts && opts->max_message ? opts->max_message : BUS_MAX_MESSAGE;
    }
    the_bus->handles++;
    b->mb = the_bus;
    b->base.max_message = the_bus->max_message; /* the first handle's */
    pthread_mutex_unlock(&open_mu);
    *out = &b->base;
    return 0;
}

static void free_bus(mem_bus *mb)
{
    while (mb->topics) {
        topic *t = mb->topics;
        mb->topics = t->next;
        while (t->groups) {
            group *g = t->groups;
            t->groups = g->next;
            entry *e;
            while ((e = g->queue.head) != NULL) {
                elist_remove(&g->queue, e);
                release_msg(e->m);
                free(e);
            }
            free(g->name);
            free(g);
        }
        free(t->name);
        free(t);
    }
    pthread_mutex_destroy(&mb->mu);
    free(mb);
}

static void mem_close(wv_bus *bus_)
{
    mem_handle *bus = (mem_handle *)bus_;
    pthread_mutex_lock(&open_mu);
    if (--bus->mb->handles == 0) {
        free_bus(bus->mb);
        the_bus = NULL;
    }
    pthread_mutex_unlock(&open_mu);
    free(bus);
}

static int mem_publish(wv_bus *bus, const char *topic_name, wv_str body)
{
    mem_bus *mb = ((mem_handle *)bus)->mb;
    int rc = 0;
    bmsg *m = malloc(sizeof *m + (body.n ? body.n : 1));
    if (!m)
        return -ENOMEM;
    if (body.n)
        memcpy(m->data, body.p, body.n);
    m->n = body.n;
    m->published = wv_now();
    m->holders = 0;
    wakes w = {.n = 0};
    pthread_mutex_lock(&mb->mu);
    topic *t = find_topic(mb, topic_name);
    int ngroups = 0;
    for (group *g = t ? t->groups : NULL; g; g = g->next, ngroups++) {
        if (g->held >= mb->max_pending) {
            rc = wv_fail(-ENOBUFS, "group \"%s\" of topic \"%s\" holds %zu messages, its most",
                         g->name, topic_name, g->held);
            break;
        }
    }
    entry **es = NULL;
    if (rc == 0 && ngroups > 0) {
        es = calloc((size_t)ngroups, sizeof *es);
        for (int i = 0; es && i < ngroups; i++)
            if (!(es[i] = malloc(sizeof *es[i])))
                rc = -ENOMEM;
        if (!es)
            rc = -ENOMEM;
    }
    if (rc == 0 && ngroups > 0) {
        m->id = t->next_id++;
        int i = 0;
        for (group *g = t->groups; g; g = g->next, i++) {
            es[i]->m = m;
            es[i]->deliveries = 0;
            m->holders++;
            elist_push_back(&g->queue, es[i]);
            g->held++;
            take_waiter(g, &w);
        }
    }
    pthread_mutex_unlock(&mb->mu);
    if (rc < 0 || ngroups == 0) {
        for (int i = 0; es && i < ngroups; i++)
            free(es[i]);
        free(m);
    }
    free(es);
    wake_all(&w);
    return rc < 0 ? rc : ngroups;
}

static int mem_subscribe(wv_bus *bus, const char *topic_name, const char *group_name,
                         wv_bus_sub **out)
{
    mem_sub *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    atomic_init(&s->refs, 1);
    s->base = (struct wv_bus_sub){.ops = &memory_ops, .bus = bus};
    s->h = (mem_handle *)bus;
    s->shard = wv_shard_id();
    mem_bus *mb = s->h->mb;
    pthread_mutex_lock(&mb->mu);
    topic *t = find_topic(mb, topic_name);
    if (!t && (t = calloc(1, sizeof *t)) != NULL) {
        if ((t->name = strdup(topic_name)) != NULL) {
            t->next = mb->topics;
            mb->topics = t;
        } else {
            free(t);
            t = NULL;
        }
    }
    group *g = NULL;
    for (group *x = t ? t->groups : NULL; x; x = x->next)
        if (!strcmp(x->name, group_name))
            g = x;
    if (t && !g && (g = calloc(1, sizeof *g)) != NULL) {
        if ((g->name = strdup(group_name)) != NULL) {
            g->next = t->groups;
            t->groups = g;
        } else {
            free(g);
            g = NULL;
        }
    }
    if (g)
        g->nsubs++;
    s->g = g;
    pthread_mutex_unlock(&mb->mu);
    if (!g) {
        free(s);
        return -ENOMEM;
    }
    *out = &s->base;
    return 0;
}

static int mem_recv(wv_bus_sub *s_, wv_bus_msg *m, int64_t at)
{
    mem_sub *s = (mem_sub *)s_;
    mem_bus *mb = s->h->mb;
    group *g = s->g;
    int64_t old = wv_deadline();
    if (at < old)
        wv_deadline_set(at);
    int rc;
    pthread_mutex_lock(&mb->mu);
    for (;;) {
        if (s->stopped) {
            rc = wv_fail(-EPIPE, "the subscription was stopped");
            break;
        }
        entry *e = g->queue.head;
        if (e) {
            elist_remove(&g->queue, e);
            e->deliveries++;
            elist_push_back(&s->unacked, e);
            *m = (wv_bus_msg){.body = {e->m->data, e->m->n},
                              .id = e->m->id,
                              .deliveries = e->deliveries,
                              .published = e->m->published,
                              .token_ = e};
            rc = 0;
            break;
        }
        waiter_add(g, s);
        wv_event_clear(&s->ev);
        pthread_mutex_unlock(&mb->mu);
        rc = wv_event_wait(&s->ev);
        pthread_mutex_lock(&mb->mu);
        if (rc < 0) {
            waiter_remove(g, s);
            break;
        }
    }
    pthread_mutex_unlock(&mb->mu);
    wv_deadline_set(old);
    return rc;
}

/* m's entry, if it is one of s's unacknowledged messages. */
static entry *unacked_entry(mem_sub *s, wv_bus_msg *m)
{
    for (entry *e = s->unacked.head; e; e = e->next)
        if (e == m->token_)
            return e;
    return NULL;
}

static int mem_ack(wv_bus_sub *s_, wv_bus_msg *m)
{
    mem_sub *s = (mem_sub *)s_;
    mem_bus *mb = s->h->mb;
    pthread_mutex_lock(&mb->mu);
    entry *e = unacked_entry(s, m);
    if (e) {
        elist_remove(&s->unacked, e);
        s->g->held--;
        release_msg(e->m);
    }
    pthread_mutex_unlock(&mb->mu);
    if (!e)
        return wv_fail(-EINVAL, "not a message of this subscription awaiting its ack");
    free(e);
    m->token_ = NULL;
    m->body = (wv_str){"", 0};
    return 0;
}

static int mem_nack(wv_bus_sub *s_, wv_bus_msg *m, bool requeue)
{
    mem_sub *s = (mem_sub *)s_;
    mem_bus *mb = s->h->mb;
    wakes w = {.n = 0};
    pthread_mutex_lock(&mb->mu);
    entry *e = unacked_entry(s, m);
    if (e) {
        elist_remove(&s->unacked, e);
        if (requeue) {
            elist_push_front(&s->g->queue, e);
            take_waiter(s->g, &w);
        } else {
            s->g->held--;
            release_msg(e->m);
        }
    }
    pthread_mutex_unlock(&mb->mu);
    if (!e)
        return wv_fail(-EINVAL, "not a message of this subscription awaiting its ack");
    if (!requeue)
        free(e);
    wake_all(&w);
    m->token_ = NULL;
    m->body = (wv_str){"", 0};
    return 0;
}

static int64_t mem_backlog(wv_bus *bus, const char *topic_name, const char *group_name)
{
    mem_bus *mb = ((mem_handle *)bus)->mb;
    int64_t n = wv_fail(-ENOENT, "no group \"%s\" of topic \"%s\"", group_name, topic_name);
    pthread_mutex_lock(&mb->mu);
    topic *t = find_topic(mb, topic_name);
    for (group *g = t ? t->groups : NULL; g; g = g->next)
        if (!strcmp(g->name, group_name))
            n = (int64_t)g->queue.n;
    pthread_mutex_unlock(&mb->mu);
    if (n >= 0)
        wv_errmsg_clear();
    return n;
}

static void mem_sub_stop(wv_bus_sub *s_)
{
    mem_sub *s = (mem_sub *)s_;
    pthread_mutex_lock(&s->h->mb->mu);
    s->stopped = true;
    pthread_mutex_unlock(&s->h->mb->mu);
    wv_event_set(&s->ev);
}

static void mem_unsubscribe(wv_bus_sub *s_)
{
    mem_sub *s = (mem_sub *)s_;
    mem_bus *mb = s->h->mb;
    group *g = s->g;
    wakes w = {.n = 0};
    pthread_mutex_lock(&mb->mu);
    waiter_remove(g, s);
    /* back to the front of the group, in the order they were delivered */
    entry *e;
    while ((e = s->unacked.tail) != NULL) {
        elist_remove(&s->unacked, e);
        elist_push_front(&g->queue, e);
        take_waiter(g, &w);
    }
    g->nsubs--;
    s->closed = true;
    pthread_mutex_unlock(&mb->mu);
    wake_all(&w);
    sub_unref(s);
}

static int mem_ping(wv_bus *bus)
{
    (void)bus;
    return 0;
}

static const bus_ops memory_ops = {
    .name = "memory",
    .publish = mem_publish,
    .subscribe = mem_subscribe,
    .recv = mem_recv,
    .ack = mem_ack,
    .nack = mem_nack,
    .backlog = mem_backlog,
    .ping = mem_ping,
    .sub_stop = mem_sub_stop,
    .unsubscribe = mem_unsubscribe,
    .close = mem_close,
};
