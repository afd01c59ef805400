/*
 * The message bus (include/weave/bus.h) and its in-process backend.
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

#include "weave/bus.h"
#include "weave/rt.h"

enum { NAME_MAX_LEN = 249, DEFAULT_MAX_MESSAGE = 1 << 20 };
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

struct wv_bus_sub {
    wv_bus *bus;
    group *g;
    int shard;
    bool stopped;  /* wv_bus_sub_stop: recv answers -EPIPE */
    bool closed;   /* unsubscribed: a wake on its way finds nobody */
    bool waiting;  /* in g->waiters */
    wv_event ev;   /* a wake-up, on the subscription's shard */
    elist unacked; /* delivered, not yet acked or nacked */
    atomic_int refs;
    wv_bus_sub *wprev, *wnext; /* in g->waiters */
};

struct group {
    char *name;
    elist queue;
    size_t held; /* queued + unacknowledged */
    int nsubs;
    wv_bus_sub *waiters, *waiters_tail;
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

struct wv_bus {
    mem_bus *mb;
    int shard;
};

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

static void waiter_remove(group *g, wv_bus_sub *s)
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

static void waiter_add(group *g, wv_bus_sub *s)
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

static void sub_unref(wv_bus_sub *s)
{
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        free(s);
}

/* Up to WAKE_BATCH subscribers to wake once the lock is released. */
enum { WAKE_BATCH = 16 };
typedef struct wakes {
    wv_bus_sub *s[WAKE_BATCH];
    int n;
} wakes;

/* Take g's first waiter off the list, to be woken (under the lock). When
 * the batch is full the waiter stays: it is woken by a later publish, or
 * finds the message when its wait ends; nothing is lost either way. */
static void take_waiter(group *g, wakes *w)
{
    wv_bus_sub *s = g->waiters;
    if (!s || w->n == WAKE_BATCH)
        return;
    waiter_remove(g, s);
    atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    w->s[w->n++] = s;
}

static int wake_here(void *arg)
{
    wv_bus_sub *s = arg;
    if (!s->closed)
        wv_event_set(&s->ev);
    sub_unref(s);
    return 0;
}

static void wake_all(wakes *w)
{
    int here = wv_shard_id();
    for (int i = 0; i < w->n; i++) {
        wv_bus_sub *s = w->s[i];
        if (s->shard == here || wv_shard_post(s->shard, wake_here, s) < 0)
            wake_here(s); /* same shard; or shutting down, where nobody waits */
    }
    w->n = 0;
}

/* ------------------------------------------------------------- names */

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
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0)
        return wv_fail(-EINVAL, "bus URL \"%.80s\": this build has the memory:// bus only",
                       url ? url : "(null)");
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

int wv_bus_open(const char *url, const wv_bus_opts *opts, wv_bus **out)
{
    *out = NULL;
    if (wv_shard_id() < 0)
        return wv_fail(-EPERM, "wv_bus_open outside the runtime");
    size_t max_pending = opts && opts->max_pending ? opts->max_pending : 0;
    size_t url_pending = 0;
    int rc = parse_url(url, &url_pending);
    if (rc < 0)
        return rc;
    if (!max_pending)
        max_pending = url_pending ? url_pending : DEFAULT_MAX_PENDING;
    wv_bus *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
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
        the_bus->max_message = opts && opts->max_message ? opts->max_message : DEFAULT_MAX_MESSAGE;
    }
    the_bus->handles++;
    b->mb = the_bus;
    pthread_mutex_unlock(&open_mu);
    b->shard = wv_shard_id();
    *out = b;
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

void wv_bus_close(wv_bus *bus)
{
    if (!bus)
        return;
    pthread_mutex_lock(&open_mu);
    if (--bus->mb->handles == 0) {
        free_bus(bus->mb);
        the_bus = NULL;
    }
    pthread_mutex_unlock(&open_mu);
    free(bus);
}

const char *wv_bus_backend(const wv_bus *bus)
{
    (void)bus;
    return "memory";
}

int wv_bus_publish(wv_bus *bus, const char *topic_name, wv_str body)
{
    mem_bus *mb = bus->mb;
    int rc = check_name("topic", topic_name);
    if (rc < 0)
        return rc;
    if (body.n > mb->max_message)
        return wv_fail(-EMSGSIZE, "a message of %zu bytes is over the bus's %zu", body.n,
                       mb->max_message);
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

int wv_bus_subscribe(wv_bus *bus, const char *topic_name, const char *group_name, wv_bus_sub **out)
{
    *out = NULL;
    int rc = check_name("topic", topic_name);
    if (rc == 0)
        rc = check_name("group", group_name);
    if (rc < 0)
        return rc;
    wv_bus_sub *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    atomic_init(&s->refs, 1);
    s->bus = bus;
    s->shard = wv_shard_id();
    mem_bus *mb = bus->mb;
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
    *out = s;
    return 0;
}

int wv_bus_recv(wv_bus_sub *s, wv_bus_msg *m, int64_t at)
{
    memset(m, 0, sizeof *m);
    mem_bus *mb = s->bus->mb;
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
static entry *unacked_entry(wv_bus_sub *s, wv_bus_msg *m)
{
    for (entry *e = s->unacked.head; e; e = e->next)
        if (e == m->token_)
            return e;
    return NULL;
}

int wv_bus_ack(wv_bus_sub *s, wv_bus_msg *m)
{
    mem_bus *mb = s->bus->mb;
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

int wv_bus_nack(wv_bus_sub *s, wv_bus_msg *m, bool requeue)
{
    mem_bus *mb = s->bus->mb;
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

int64_t wv_bus_backlog(wv_bus *bus, const char *topic_name, const char *group_name)
{
    int rc = check_name("topic", topic_name);
    if (rc == 0)
        rc = check_name("group", group_name);
    if (rc < 0)
        return rc;
    mem_bus *mb = bus->mb;
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

void wv_bus_sub_stop(wv_bus_sub *s)
{
    pthread_mutex_lock(&s->bus->mb->mu);
    s->stopped = true;
    pthread_mutex_unlock(&s->bus->mb->mu);
    wv_event_set(&s->ev);
}

void wv_bus_unsubscribe(wv_bus_sub *s)
{
    if (!s)
        return;
    mem_bus *mb = s->bus->mb;
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
