/*
 * The client's metrics in the default registry, named per metrics.h's
 * convention and labelled by db (wv_pg_opts.name). Families are
 * registered at the first connection or pool; each db name gets its series
 * resolved once and kept for the life of the process, so updates are the
 * registry's inline per-thread adds.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool registered;
static wv_metric *queries, *duration, *connections, *batches, *cancels, *connects;
static wv_metric *max_conns, *waiters, *timeouts;

typedef struct named {
    struct named *next;
    char name[64];
    pg_metrics m;
} named;

static named *all;
static pg_metrics none; /* when out of memory: every update does nothing */

static void register_families(void)
{
    wv_metric_register(NULL,
                       &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                                         .name = "weave_pg_queries_total",
                                         .help = "PostgreSQL statements, by outcome.",
                                         .labels = "db,status"},
                       &queries);
    wv_metric_register(NULL,
                       &(wv_metric_opts){.type = WV_METRIC_HISTOGRAM,
                                         .name = "weave_pg_query_duration_seconds",
                                         .help = "PostgreSQL statement time, queue to result.",
                                         .labels = "db",
                                         .unit = "seconds"},
                       &duration);
    wv_metric_register(NULL,
                       &(wv_metric_opts){.type = WV_METRIC_GAUGE,
                                         .name = "weave_pg_pool_connections",
                                         .help = "PostgreSQL pool connections, by state.",
                                         .labels = "db,state"},
                       &connections);
    wv_metric_register(NULL,
                       &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                                         .name = "weave_pg_batches_total",
                                         .help = "Writes of pipelined statements (round trips).",
                                         .labels = "db"},
                       &batches);
    wv_metric_register(NULL,
                       &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                                         .name = "weave_pg_cancels_total",
                                         .help = "Cancel requests sent for abandoned statements.",
                                         .labels = "db"},
                       &cancels);
    wv_metric_register(NULL,
                       &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                                         .name = "weave_pg_connects_total",
                                         .help = "PostgreSQL connection attempts, by outcome.",
                                         .labels = "db,status"},
                       &connects);
    wv_metric_register(NULL,
                       &(wv_metric_opts){.type = WV_METRIC_GAUGE,
                                         .name = "weave_pg_pool_max_connections",
                                         .help = "PostgreSQL pools' configured size (max_size), "
                                                 "summed over the shards' pools.",
                                         .labels = "db"},
                       &max_conns);
    wv_metric_register(NULL,
                       &(wv_metric_opts){.type = WV_METRIC_GAUGE,
                                         .name = "weave_pg_pool_waiters",
                                         .help = "Fibers waiting for a PostgreSQL pool connection.",
                                         .labels = "db"},
                       &waiters);
    wv_metric_register(NULL,
                       &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                                         .name = "weave_pg_pool_acquire_timeouts_total",
                                         .help = "Waits for a PostgreSQL pool connection that "
                                                 "ended at the fiber's deadline.",
                                         .labels = "db"},
                       &timeouts);
}

static wv_series *series(wv_metric *f, const char *a, const char *b)
{
    wv_series *s = NULL;
    if (f)
        wv_metric_series(f, (const char *[]){a, b}, &s);
    return s;
}

pg_metrics *pg_metrics_for(const char *name)
{
    pthread_mutex_lock(&lock);
    if (!registered) {
        register_families();
        registered = true;
    }
    named *n = all;
    while (n && strcmp(n->name, name) != 0)
        n = n->next;
    if (!n && (n = calloc(1, sizeof *n))) {
        snprintf(n->name, sizeof n->name, "%s", name);
        pg_metrics *m = &n->m;
        m->ok = series(queries, n->name, "ok");
        m->error = series(queries, n->name, "error");
        m->timeout = series(queries, n->name, "timeout");
        m->canceled = series(queries, n->name, "canceled");
        m->duration = series(duration, n->name, NULL);
        m->idle = series(connections, n->name, "idle");
        m->busy = series(connections, n->name, "busy");
        m->batches = series(batches, n->name, NULL);
        m->cancels = series(cancels, n->name, NULL);
        m->connect_ok = series(connects, n->name, "ok");
        m->connect_error = series(connects, n->name, "error");
        m->max = series(max_conns, n->name, NULL);
        m->waiters = series(waiters, n->name, NULL);
        m->acquire_timeouts = series(timeouts, n->name, NULL);
        n->next = all;
        all = n;
    }
    pthread_mutex_unlock(&lock);
    return n ? &n->m : &none;
}
