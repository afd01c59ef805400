/*
 * grpc.health.v1.Health (weave/grpc.h: wv_grpc_health): Check answers a
 * service's status, Watch streams it and every change after.
 *
 * The statuses are the process's: a small table behind a mutex, set from
 * any thread. Watchers are fibers of the shards, each on its shard's list
 * (thread-local); a change posts a wake-up to every shard, which sets the
 * events of that shard's watchers, and each sends the new status if it
 * differs from what it sent last.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "call.h"
#include "health.pb-c.h"

typedef struct status_entry {
    char *service;
    int status;
    bool explicit_; /* set by wv_grpc_health_set, which a registration never overrides */
} status_entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static status_entry *table;
static size_t ntable, captable;

typedef struct watcher {
    wv_event changed;
    struct watcher *prev, *next;
} watcher;

static __thread watcher *watchers; /* this shard's */

/* The status of service, under the lock: WV_GRPC_SERVICE_UNKNOWN when it
 * has none ("" is SERVING unless set). */
static int lookup(const char *service)
{
    for (size_t i = 0; i < ntable; i++)
        if (!strcmp(table[i].service, service))
            return table[i].status;
    return *service ? WV_GRPC_SERVICE_UNKNOWN : WV_GRPC_SERVING;
}

static int status_of(const char *service)
{
    pthread_mutex_lock(&lock);
    int st = lookup(service);
    pthread_mutex_unlock(&lock);
    return st;
}

static int wake_shard(void *arg)
{
    (void)arg;
    for (watcher *w = watchers; w; w = w->next)
        wv_event_set(&w->changed);
    return 0;
}

static int store(const char *service, int status, bool explicit_)
{
    pthread_mutex_lock(&lock);
    size_t i = 0;
    while (i < ntable && strcmp(table[i].service, service))
        i++;
    if (i == ntable) {
        char *copy = strdup(service);
        if (!copy ||
            (ntable == captable &&
             !(table = realloc(table, (captable = captable ? captable * 2 : 8) * sizeof *table)))) {
            free(copy);
            pthread_mutex_unlock(&lock);
            return -ENOMEM;
        }
        table[ntable++] = (status_entry){copy, status, explicit_};
    } else if (explicit_ || !table[i].explicit_) {
        table[i].status = status;
        table[i].explicit_ |= explicit_;
    }
    pthread_mutex_unlock(&lock);
    /* outside the runtime there is nobody to wake */
    for (int s = 0; s < wv_shard_count(); s++)
        wv_shard_post(s, wake_shard, NULL);
    return 0;
}

int wv_grpc_health_set(const char *service, int status)
{
    if (!service || status < WV_GRPC_SERVING_STATUS_UNKNOWN || status > WV_GRPC_NOT_SERVING)
        return wv_fail(-EINVAL, "wv_grpc_health_set: a service name and UNKNOWN, SERVING or "
                                "NOT_SERVING");
    return store(service, status, true);
}

int grpc_health_registered(const char *service)
{
    return store(service, WV_GRPC_SERVING, false);
}

static const char *service_of(const ProtobufCMessage *in)
{
    const Grpc__Health__V1__HealthCheckRequest *req =
        (const Grpc__Health__V1__HealthCheckRequest *)in;
    return req->service ? req->service : "";
}

static int check(wv_grpc_call *call, const ProtobufCMessage *in, ProtobufCMessage *out)
{
    int st = status_of(service_of(in));
    if (st == WV_GRPC_SERVICE_UNKNOWN)
        return wv_grpc_fail(call, WV_GRPC_NOT_FOUND, "unknown service %s", service_of(in));
    ((Grpc__Health__V1__HealthCheckResponse *)out)->status =
        (Grpc__Health__V1__HealthCheckResponse__ServingStatus)st;
    return 0;
}

/* A watcher's companion: wakes it when the runtime begins to stop. */
static int stop_waiter(void *arg)
{
    watcher *w = arg;
    if (wv_stop_wait() == 0)
        wv_event_set(&w->changed);
    return 0;
}

static int watch(wv_grpc_call *call)
{
    ProtobufCMessage *in;
    int rc = wv_grpc_recv(call, &in);
    if (rc <= 0)
        return rc < 0 ? rc : wv_grpc_fail(call, WV_GRPC_INTERNAL, "no request");
    char *service = wv_grpc_printf(call, "%s", service_of(in));
    if (!service)
        return -ENOMEM;
    watcher w = {.next = watchers};
    if (watchers)
        watchers->prev = &w;
    watchers = &w;
    wv_group *g = wv_group_new();
    rc = g ? wv_group_spawn(g, stop_waiter, &w, NULL) : -ENOMEM;
    int sent = -1;
    while (rc == 0) {
        wv_event_clear(&w.changed);
        /* a stopping server is no longer serving: say so, and end the
         * stream so that the client looks elsewhere */
        bool stopping = wv_stopping();
        int st = stopping ? WV_GRPC_NOT_SERVING : status_of(service);
        if (st != sent) {
            Grpc__Health__V1__HealthCheckResponse resp =
                GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
            resp.status = (Grpc__Health__V1__HealthCheckResponse__ServingStatus)st;
            if ((rc = wv_grpc_send(call, &resp.base)) < 0)
                break;
            sent = st;
        }
        if (stopping)
            break;
        /* until the client goes (its reset cancels this fiber) */
        rc = wv_event_wait(&w.changed);
    }
    wv_group_free(g); /* cancels the stop waiter */
    if (w.prev)
        w.prev->next = w.next;
    else
        watchers = w.next;
    if (w.next)
        w.next->prev = w.prev;
    return rc;
}

static const wv_grpc_method health_methods[] = {
    {"Check", .unary = check},
    {"Watch", .stream = watch},
};

int wv_grpc_health(wv_router *r)
{
    return wv_grpc_service(r, &grpc__health__v1__health__descriptor, health_methods,
                           sizeof health_methods / sizeof *health_methods, NULL);
}
