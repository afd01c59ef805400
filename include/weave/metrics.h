/*
 * weave metrics: Prometheus counters, gauges and histograms, updated from
 * every shard without locks or shared atomic read-modify-writes, and exposed
 * in the Prometheus text format 0.0.4 or OpenMetrics 1.0.0.
 *
 * The model. A registry (wv_metrics) holds metric families (wv_metric): a
 * name, a help text, a type and a list of label names. A family has one
 * series (wv_series) per set of label values, made the first time that set
 * is asked for and kept for the life of the registry. Updates take a series:
 *
 *     static wv_metric *requests;          // at startup, or lazily: the same
 *     wv_metric_register(NULL, &(wv_metric_opts){  // definition registered
 *         .type = WV_METRIC_COUNTER,               // again returns the same
 *         .name = "http_requests_total",           // family
 *         .help = "HTTP requests handled.",
 *         .labels = "method,route,status",
 *     }, &requests);
 *
 *     wv_series *s;                         // per request
 *     wv_metric_series(requests, (const char *[]){"GET", "/users/{id}", "200"}, &s);
 *     wv_counter_inc(s);
 *
 * Resolving label values is a lock-free hash lookup; only the first sight of
 * a label set takes the registry's mutex. Keep the series pointer where the
 * label values are fixed (a pool's gauge, a route's counter): an update
 * through it is inline code, a handful of instructions and no call.
 *
 * Why updates are cheap. Every thread that updates metrics (each shard is
 * one thread) owns a copy of every cell, found through one thread-local
 * pointer and written only by that thread, with relaxed atomic loads and
 * stores: plain instructions, no lock, no shared read-modify-write, no cache
 * line bouncing between cores, and no data race with the scraper, which adds
 * the threads' copies up. A thread takes its cells at its first update and
 * hands them on when it exits (the next thread continues from those values).
 * Past WV_METRICS_MAX_THREADS threads at once, the extra threads share one
 * copy updated with atomic read-modify-writes: correct, just slower.
 *
 * Gauges: inc/dec/add are summed over threads like counters; set(v) makes the
 * gauge read v from then on. Histograms: an observation lands in the first
 * bucket whose upper bound is >= the value (bounds are inclusive) and in the
 * sum; the exposition makes buckets cumulative, so +Inf equals _count.
 *
 * Limits. A family keeps at most max_series label sets (default 10,000, see
 * wv_metric_opts and wv_metric_set_max_series): past it, wv_metric_series
 * fails with -E2BIG ("metric http_requests_total: more than 10000 label
 * sets", also logged once per family as a warning) and hands back a NULL
 * series; every update accepts NULL and does nothing, so a label explosion
 * is counted nowhere rather than taking the process down.
 *
 * Exposition: wv_metrics_render() appends a registry to a wv_buf; families
 * appear in registration order, series in creation order.
 * wv_metrics_negotiate() picks the format from an HTTP Accept header.
 * Collectors (wv_metrics_add_collector) run on the scraping thread at the
 * start of every render and set gauges or counters they resolved before, so
 * values kept elsewhere (the runtime's fibers, /proc) are read only when
 * scraped. Numbers are written as the Go client writes them (strconv 'g',
 * shortest round trip: 0.005, 2.5, 1e-05, 1.5e+06, +Inf, -Inf, NaN), except
 * that integers below 2^53 are written in full ("1234567", never
 * "1.234567e+06" or "1234567.0"); OpenMetrics "le" values are canonical
 * (1.0, 0.005, 1e+06). No _created samples are written (OpenMetrics makes
 * them optional; the Go client's text output has none either).
 *
 * ---------------------------------------------------------------- naming
 *
 * Every weave client uses one naming scheme, so dashboards carry over:
 *
 *  - weave_<client>_<thing>_<unit>: the client (db, redis, memcache, amqp,
 *    kafka, httpc, s3, tasks, ws), what is measured, and its base unit:
 *    seconds (never ms), bytes (never KiB); no unit for plain counts. Set
 *    .unit to the same unit (the OpenMetrics UNIT line).
 *  - Counters end in _total: weave_db_queries_total{db,status},
 *    weave_redis_commands_total{command,status}.
 *  - Durations are histograms in seconds with the default buckets:
 *    weave_db_query_duration_seconds{db}, weave_httpc_request_duration_seconds.
 *  - Current levels are gauges, split by state in a label:
 *    weave_db_pool_connections{db,state="idle|busy"}.
 *  - Labels are bounded sets: an operation, a status, a configured name.
 *    Never a raw URL path, a key, a query text or an id.
 *  - The HTTP server middleware keeps the names every dashboard knows:
 *    http_requests_total{method,route,status},
 *    http_request_duration_seconds{method,route}, http_requests_in_flight;
 *    route is the route template ("/users/{id}"), never the raw path.
 *  - The process collector's names are the Python and Go clients' own:
 *    process_cpu_seconds_total, process_resident_memory_bytes,
 *    process_virtual_memory_bytes, process_open_fds, process_max_fds,
 *    process_start_time_seconds.
 *
 * Conventions: errors are negative errno values with the detail in
 * wv_errmsg(); a NULL registry means the default one (wv_metrics_default()).
 * Everything here is safe from any thread, inside the runtime or not.
 */
#ifndef WEAVE_METRICS_H
#define WEAVE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "weave/buf.h"
#include "weave/rt.h"
#include "weave/str.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Threads with cells of their own at once; more share one atomic copy. */
#define WV_METRICS_MAX_THREADS 256
/* Label names per family. */
#define WV_METRIC_MAX_LABELS 16
/* Finite histogram bounds per family (+Inf is always added). */
#define WV_METRIC_MAX_BUCKETS 128
/* Label sets per family unless set otherwise. */
#define WV_METRIC_DEFAULT_MAX_SERIES 10000

/* The registry. */
typedef struct wv_metrics wv_metrics;
/* A metric family: name, help, type, label names. */
typedef struct wv_metric wv_metric;
/* One label set of a family: what updates take. */
typedef struct wv_series wv_series;

typedef enum wv_metric_type {
    WV_METRIC_COUNTER = 1,
    WV_METRIC_GAUGE,
    WV_METRIC_HISTOGRAM,
} wv_metric_type;

/* The Prometheus clients' default buckets, in seconds:
 * .005 .01 .025 .05 .075 .1 .25 .5 .75 1 2.5 5 7.5 10 (and +Inf). */
extern const double wv_metric_default_buckets[14];

typedef struct wv_metric_opts {
    wv_metric_type type;
    /* [a-zA-Z_:][a-zA-Z0-9_:]*. A counter's samples are always <base>_total:
     * "http_requests_total" and "http_requests" name the same counter. */
    const char *name;
    /* One line of text (escaped on output); NULL or "" writes no HELP. */
    const char *help;
    /* Comma-separated label names, "method,route,status" (spaces around
     * names are ignored); NULL or "" for none. Each [a-zA-Z_][a-zA-Z0-9_]*,
     * not starting with "__", no duplicates, no "le" on a histogram, at most
     * WV_METRIC_MAX_LABELS. */
    const char *labels;
    /* OpenMetrics UNIT ("seconds", "bytes"); the family name must then end
     * in "_<unit>". NULL for none. */
    const char *unit;
    /* Histogram upper bounds, strictly increasing and finite (a last +Inf is
     * allowed and dropped); NULL = wv_metric_default_buckets. */
    const double *buckets;
    size_t nbuckets;
    /* Label sets kept; 0 = WV_METRIC_DEFAULT_MAX_SERIES. */
    size_t max_series;
} wv_metric_opts;

/* ---------------------------------------------------------------- registries */

/* The process-wide registry: made on first use, with the process collector
 * (wv_metrics_add_process_collector) already in it, never freed. */
wv_metrics *wv_metrics_default(void);

/* A new, empty registry (tests, a second endpoint); NULL when out of memory. */
wv_metrics *wv_metrics_new(void);

/* Free a registry made by wv_metrics_new, with its families and series. No
 * thread may use it, or any series of it, any more. NULL and the default
 * registry are ignored. */
void wv_metrics_free(wv_metrics *r);

/* ---------------------------------------------------------------- families */

/*
 * Register a family and store it in *out. Registering again with the same
 * definition (type, name, help, labels, unit, buckets) returns the existing
 * family, so lazy registration at first use is fine (it takes the registry's
 * mutex: keep the pointer). A label-less family gets its one series at once,
 * so it is exposed (as 0) before its first update.
 * Errors: -EINVAL for a bad name, label, unit or bucket list (wv_errmsg()
 * says which); -EEXIST when the name, or a sample name it would write
 * (x_total, x_bucket, x_sum, x_count, x_created), belongs to a different
 * family; -ENOSPC when the process's cells run out (4M cells in all);
 * -ENOMEM. *out is NULL on error.
 */
int wv_metric_register(wv_metrics *r, const wv_metric_opts *opts, wv_metric **out);

/* Change how many label sets the family keeps (0 = the default). Lowering
 * it below the current count keeps the series already made. */
void wv_metric_set_max_series(wv_metric *m, size_t max_series);

/*
 * The series of family m for the given label values (one per label name, in
 * order; NULL when the family has no labels), made on first sight, in *out.
 * Lock-free when the set was seen before. Values are copied and written as
 * given, with \\, " and newline escaped: pass UTF-8.
 * Errors: -E2BIG past the family's max_series; -EINVAL for a NULL value or
 * family; -ENOSPC when the process's cells run out; -ENOMEM. *out is NULL
 * on error, and updates through a NULL series do nothing.
 */
int wv_metric_series(wv_metric *m, const char *const *values, wv_series **out);

/* The same with length-carrying values (slices of a request, say). */
int wv_metric_series_str(wv_metric *m, const wv_str *values, wv_series **out);

/* ------------------------------------------------------------------ updates */

/* Counters. inc adds 1 (inline). add adds v >= 0: -EINVAL for a negative or
 * NaN v, or a series that is not a counter's. set makes the counter read v
 * (v >= 0, not NaN): for collectors mirroring a count kept elsewhere (CPU
 * time from /proc); it must never go down. A NULL series: nothing, 0. */
static inline void wv_counter_inc(wv_series *s);
int wv_counter_add(wv_series *s, double v);
int wv_counter_set(wv_series *s, double v);

/* Gauges; add/inc/dec are inline. NULL or another type's series: nothing. */
void wv_gauge_set(wv_series *s, double v);
static inline void wv_gauge_add(wv_series *s, double v); /* v may be negative */
static inline void wv_gauge_inc(wv_series *s);
static inline void wv_gauge_dec(wv_series *s);

/* Histograms: count v in its bucket and add it to the sum. NaN counts in the
 * +Inf bucket and makes the sum NaN, as in the other clients. NULL or
 * another type's series: nothing. */
void wv_histogram_observe(wv_series *s, double v);

/* The current value summed over every thread: a counter's or gauge's value, a
 * histogram's count of observations. 0 for NULL. */
double wv_series_value(const wv_series *s);

/* --------------------------------------------------------------- collectors */

/* Runs on the scraping thread before every exposition of r; sets values of
 * series it resolved beforehand (wv_gauge_set, wv_counter_set). It must not
 * render r. */
typedef void wv_metrics_collect_fn(wv_metrics *r, void *arg);

/* Add a collector; they run in the order added. `arg` stays the caller's.
 * 0, -EINVAL for a NULL fn, -ENOMEM. */
int wv_metrics_add_collector(wv_metrics *r, wv_metrics_collect_fn *fn, void *arg);

/*
 * Register the process metrics of Python's prometheus_client, read at every
 * scrape from /proc/self/stat, /proc/self/fd, getrlimit(RLIMIT_NOFILE) and
 * /proc/stat's btime: process_cpu_seconds_total (user + system),
 * process_virtual_memory_bytes, process_resident_memory_bytes,
 * process_start_time_seconds (since the epoch), process_open_fds,
 * process_max_fds (the soft limit). A second call does nothing.
 * Errors as wv_metric_register (a name already taken: -EEXIST).
 */
int wv_metrics_add_process_collector(wv_metrics *r);

/* --------------------------------------------------------------- exposition */

typedef enum wv_metrics_format {
    WV_METRICS_PROMETHEUS,  /* text format 0.0.4 */
    WV_METRICS_OPENMETRICS, /* OpenMetrics 1.0.0 text */
} wv_metrics_format;

#define WV_METRICS_PROMETHEUS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define WV_METRICS_OPENMETRICS_CONTENT_TYPE                                                        \
    "application/openmetrics-text; version=1.0.0; charset=utf-8"

/* The format to answer a request with, given its Accept header value (empty
 * when absent): OpenMetrics when a media range of it is
 * application/openmetrics-text with a q above 0 and not below text/plain's,
 * else text 0.0.4. The Content-Type to send goes to *content_type (when not
 * NULL). */
wv_metrics_format wv_metrics_negotiate(wv_str accept, const char **content_type);

/* Run r's collectors, then append every family of r to out in the format.
 * 0, -EINVAL for an unknown format or a NULL out, or -ENOMEM (out's limit
 * reached: what was appended is incomplete). Safe from any thread, alongside
 * updates, registration and other renders. */
int wv_metrics_render(wv_metrics *r, wv_metrics_format format, wv_buf *out);

/* ------------------------------------------------- private: inline updates */

/* The start of every wv_series (the rest is private to the library). */
struct wv__series_head {
    uint32_t cell_; /* its first cell */
    uint32_t type_; /* wv_metric_type */
};

#define WV__CHUNK_SHIFT 10

/* The out-of-line paths: a thread's first update, NULL, a wrong type. */
void wv__counter_inc_slow(wv_series *s);
void wv__gauge_add_slow(wv_series *s, double v);

#if defined(__GNUC__)
/* The calling thread's cell chunks (NULL before its first update). */
extern __thread uint64_t **wv__metrics_chunks __attribute__((tls_model("initial-exec")));

/* This thread's copy of the n-th cell of s, or NULL (then take the slow
 * path). */
static inline uint64_t *wv__my_cell(wv_series *s, uint32_t type, uint32_t n)
{
    uint64_t **chunks = wv__metrics_chunks;
    const struct wv__series_head *h = (const struct wv__series_head *)(const void *)s;
    if (__builtin_expect(chunks == NULL || s == NULL, 0) || h->type_ != type)
        return NULL;
    uint64_t *c = __atomic_load_n(&chunks[h->cell_ >> WV__CHUNK_SHIFT], __ATOMIC_RELAXED);
    return c ? c + (h->cell_ & ((1u << WV__CHUNK_SHIFT) - 1)) + n : NULL;
}

static inline void wv_counter_inc(wv_series *s)
{
    uint64_t *c = wv__my_cell(s, WV_METRIC_COUNTER, 0);
    if (__builtin_expect(c != NULL, 1))
        __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
    else
        wv__counter_inc_slow(s);
}

static inline void wv_gauge_add(wv_series *s, double v)
{
    uint64_t *c = wv__my_cell(s, WV_METRIC_GAUGE, 0);
    if (__builtin_expect(c != NULL, 1)) {
        uint64_t bits = __atomic_load_n(c, __ATOMIC_RELAXED);
        double d;
        memcpy(&d, &bits, sizeof d);
        d += v;
        memcpy(&bits, &d, sizeof bits);
        __atomic_store_n(c, bits, __ATOMIC_RELAXED);
    } else {
        wv__gauge_add_slow(s, v);
    }
}
#else
static inline void wv_counter_inc(wv_series *s)
{
    wv__counter_inc_slow(s);
}

static inline void wv_gauge_add(wv_series *s, double v)
{
    wv__gauge_add_slow(s, v);
}
#endif

static inline void wv_gauge_inc(wv_series *s)
{
    wv_gauge_add(s, 1);
}

static inline void wv_gauge_dec(wv_series *s)
{
    wv_gauge_add(s, -1);
}

/* ------------------------------------------------ the HTTP server and runtime */

typedef struct wv_router wv_router;
typedef struct wv_req wv_req;
typedef struct wv_res wv_res;

/*
 * Count and time every request of router r (and its groups) into registry
 * reg (NULL: the default): http_requests_total{method,route,status},
 * http_request_duration_seconds{method,route} (the default buckets; from the
 * request's first byte to its handler's return) and http_requests_in_flight.
 * route is the matched route's template ("/users/{id}"), "none" when no
 * route matched; a method outside the standard nine is labelled "other", so
 * neither a path nor a client's inventions make new series. Installed as the
 * outermost middleware, so what other middleware answers (a CORS preflight)
 * is counted too. A request costs one thread-local cache lookup once its
 * kind (route, method, status) has been seen. 0, or an error of
 * wv_metric_register / -ENOMEM.
 */
int wv_metrics_http(wv_router *r, wv_metrics *reg);

/*
 * A handler that answers with the registry given as the route's data
 * (NULL: the default), in the format the Accept header asks for:
 *     wv_route_with(router, "GET", "/metrics", wv_metrics_handler, NULL);
 * Mount it on the main router or on an admin server's (wv_app does either:
 * --metrics-port).
 */
int wv_metrics_handler(wv_req *req, wv_res *res);

/*
 * Runtime metrics into reg (NULL: the default), from a fiber once the
 * runtime runs: weave_rt_fibers{shard}, weave_http_connections{shard},
 * weave_rt_loop_lag_seconds{shard} (a histogram of how late a fiber that
 * sleeps 100 ms wakes: a handler hogging its shard shows here) and
 * weave_rt_offload_queued. A sampler fiber on every shard records its own
 * shard's figures every 100 ms; it ends with the runtime. 0, -EPERM outside
 * the runtime, or a registration error.
 */
int wv_metrics_runtime(wv_metrics *reg);

#ifdef __cplusplus
}
#endif

#endif
