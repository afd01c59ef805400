/*
 * Metrics for the HTTP server: the request middleware, the /metrics
 * handler, and the runtime collector (fibers, event-loop lag, offload queue,
 * connections per shard).
 *
 * The middleware's hot path is one thread-local cache lookup per request:
 * (route template, method, status) -> the counter's and the histogram's
 * series, so a request resolves no label strings once its kind was seen.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics_internal.h"
#include "weave/http.h"
#include "weave/metrics.h"

/* ------------------------------------------------------------ middleware */

typedef struct http_metrics {
    uint64_t gen; /* tags this middleware's cache entries */
    wv_metric *requests, *duration;
    wv_series *in_flight;
} http_metrics;

static atomic_uint_fast64_t next_gen = 1;

/* Methods are labelled by name only when standard: a client inventing
 * methods must not invent series. */
static const char *method_label(wv_str m)
{
    static const char *const known[] = {"GET",   "HEAD",    "POST",    "PUT",  "DELETE",
                                        "PATCH", "OPTIONS", "CONNECT", "TRACE"};
    for (size_t i = 0; i < sizeof known / sizeof *known; i++)
        if (wv_str_eq_cstr(m, known[i]))
            return known[i];
    return "other";
}

enum { CACHE_SLOTS = 256 };

typedef struct cache_slot {
    uint64_t gen;       /* the middleware's; 0 = empty */
    const char *route;  /* the route's pattern (stable: the router's), or NULL */
    const char *method; /* one of method_label's strings */
    int status;
    wv_series *count, *dur;
} cache_slot;

static _Thread_local cache_slot cache[CACHE_SLOTS];

static int metrics_before(wv_req *req, wv_res *res, void *arg)
{
    http_metrics *hm = arg;
    wv_gauge_inc(hm->in_flight);
    return WV_NEXT;
}

static void metrics_after(wv_req *req, wv_res *res, void *arg)
{
    http_metrics *hm = arg;
    wv_gauge_dec(hm->in_flight);
    wv_str route = wv_req_route(req); /* the router's own string: a stable key */
    const char *pattern = route.n ? route.p : NULL;
    const char *method = method_label(wv_req_method(req));
    int status = wv_res_status(res) ? wv_res_status(res) : 500;
    uintptr_t h = (uintptr_t)pattern * 31u + (uintptr_t)method * 7u + (uintptr_t)status;
    h ^= h >> 9;
    cache_slot *c = &cache[h % CACHE_SLOTS];
    if (c->gen != hm->gen || c->route != pattern || c->method != method || c->status != status) {
        char st[8];
        snprintf(st, sizeof st, "%d", status);
        const char *rl = pattern ? pattern : "none";
        wv_series *count = NULL, *dur = NULL;
        wv_metric_series(hm->requests, (const char *const[]){method, rl, st}, &count);
        wv_metric_series(hm->duration, (const char *const[]){method, rl}, &dur);
        if (!count || !dur)
            return; /* past the cap (logged once by the registry) */
        *c = (cache_slot){hm->gen, pattern, method, status, count, dur};
    }
    wv_counter_inc(c->count);
    wv_histogram_observe(c->dur, (double)(wv_now() - wv_req_start(req)) / 1e9);
}

int wv_metrics_http(wv_router *r, wv_metrics *reg)
{
    http_metrics *hm = calloc(1, sizeof *hm);
    if (!hm)
        return -ENOMEM;
    hm->gen = atomic_fetch_add(&next_gen, 1);
    wv_metric *in_flight = NULL;
    int rc = wv_metric_register(reg,
                                &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                                                  .name = "http_requests_total",
                                                  .help = "HTTP requests answered, by method, "
                                                          "route template and status.",
                                                  .labels = "method,route,status"},
                                &hm->requests);
    if (rc == 0)
        rc = wv_metric_register(reg,
                                &(wv_metric_opts){.type = WV_METRIC_HISTOGRAM,
                                                  .name = "http_request_duration_seconds",
                                                  .help = "Time from a request's first byte to "
                                                          "its handler's return, in seconds.",
                                                  .labels = "method,route",
                                                  .unit = "seconds"},
                                &hm->duration);
    if (rc == 0)
        rc = wv_metric_register(
            reg,
            &(wv_metric_opts){.type = WV_METRIC_GAUGE,
                              .name = "http_requests_in_flight",
                              .help = "HTTP requests being handled (WebSockets while open)."},
            &in_flight);
    if (rc == 0)
        rc = wv_metric_series(in_flight, NULL, &hm->in_flight);
    if (rc < 0) {
        free(hm);
        return rc;
    }
    /* outermost, so it times everything and counts what other middleware
     * answers itself (CORS preflights, refusals); hm is freed with the router */
    return wv_router_use_first(r, &(wv_middleware){.name = "metrics",
                                                   .before = metrics_before,
                                                   .after = metrics_after,
                                                   .arg = hm,
                                                   .free = free});
}

/* ------------------------------------------------------------- /metrics */

int wv_metrics_handler(wv_req *req, wv_res *res)
{
    wv_metrics *reg = wv_req_data(req);
    const char *ctype;
    wv_metrics_format f = wv_metrics_negotiate(wv_req_header(req, "Accept"), &ctype);
    wv_buf out = {0};
    int rc = wv_metrics_render(reg, f, &out);
    if (rc == 0)
        rc = wv_res_send(res, 200, ctype, out.p, out.n);
    wv_buf_free(&out);
    return rc;
}

/* -------------------------------------------------------- the runtime */

/*
 * A sampler fiber on every shard wakes every SAMPLE_MS and records how late
 * it woke (the loop's lag: a handler hogging its shard shows here), the
 * shard's fibers and its connections, each into its own {shard="n"}
 * series, so no shard reads another's state. The offload queue is global
 * and read at scrape time. The samplers end with the runtime (cancelled
 * like every fiber).
 */
enum { SAMPLE_MS = 100 };

static const double lag_buckets[] = {0.00001, 0.00005, 0.0001, 0.00025, 0.0005, 0.001,
                                     0.0025,  0.005,   0.01,   0.025,   0.05,   0.1,
                                     0.25,    0.5,     1,      2.5};

typedef struct rt_metrics {
    wv_metric *fibers, *lag, *conns, *offload;
    wv_series *offload_queued;
} rt_metrics;

static int sampler(void *arg)
{
    rt_metrics *m = arg;
    char id[16];
    snprintf(id, sizeof id, "%d", wv_shard_id());
    const char *const label[] = {id};
    wv_series *fibers, *lag, *conns;
    if (wv_metric_series(m->fibers, label, &fibers) < 0 ||
        wv_metric_series(m->lag, label, &lag) < 0 || wv_metric_series(m->conns, label, &conns) < 0)
        return 0;
    for (;;) {
        wv_gauge_set(fibers, (double)wv_fibers_alive() - 1); /* not counting the sampler */
        wv_gauge_set(conns, (double)wv_http_connections());
        int64_t due = wv_after_ms(SAMPLE_MS);
        if (wv_sleep_until(due) < 0)
            return 0;
        wv_histogram_observe(lag, (double)(wv_now() - due) / 1e9);
    }
}

static int spawn_sampler(void *arg)
{
    return wv_spawn(sampler, arg, &(wv_spawn_opts){.name = "metrics-sampler"});
}

static void collect_offload(wv_metrics *r, void *arg)
{
    rt_metrics *m = arg;
    wv_gauge_set(m->offload_queued, (double)wv_offload_queued());
}

static int register_runtime(wv_metrics *reg, rt_metrics *m)
{
    int rc = wv_metric_register(
        reg,
        &(wv_metric_opts){.type = WV_METRIC_GAUGE,
                          .name = "weave_rt_fibers",
                          .help = "Fibers alive on the shard (sampled every 100 ms)",
                          .labels = "shard"},
        &m->fibers);
    if (rc == 0)
        rc = wv_metric_register(
            reg,
            &(wv_metric_opts){.type = WV_METRIC_HISTOGRAM,
                              .name = "weave_rt_loop_lag_seconds",
                              .help = "How late a fiber sleeping 100 ms wakes up, per shard",
                              .labels = "shard",
                              .unit = "seconds",
                              .buckets = lag_buckets,
                              .nbuckets = sizeof lag_buckets / sizeof *lag_buckets},
            &m->lag);
    if (rc == 0)
        rc = wv_metric_register(
            reg,
            &(wv_metric_opts){.type = WV_METRIC_GAUGE,
                              .name = "weave_http_connections",
                              .help = "Connections open on the shard (sampled every 100 ms)",
                              .labels = "shard"},
            &m->conns);
    if (rc == 0)
        rc = wv_metric_register(reg,
                                &(wv_metric_opts){.type = WV_METRIC_GAUGE,
                                                  .name = "weave_rt_offload_queued",
                                                  .help = "Offload jobs waiting for a thread"},
                                &m->offload);
    if (rc == 0)
        rc = wv_metric_series(m->offload, NULL, &m->offload_queued);
    return rc;
}

int wv_metrics_runtime(wv_metrics *reg)
{
    if (wv_shard_id() < 0)
        return -EPERM;
    /* once per registry: a later runtime (or call) reuses the families */
    rt_metrics *m = collector_arg(reg, collect_offload);
    if (!m) {
        m = calloc(1, sizeof *m);
        if (!m)
            return -ENOMEM;
        int rc = register_runtime(reg, m);
        if (rc == 0)
            rc = collector_add_owned(reg, collect_offload, m, free);
        if (rc < 0) {
            free(m);
            return rc;
        }
    }
    return wv_shard_each(spawn_sampler, m);
}
