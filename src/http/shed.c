/*
 * Load shedding (wv_shed in include/weave/http.h): a middleware that
 * answers 503 at once, with Retry-After, when its shard already handles
 * max_in_flight requests or its event loop runs later than max_loop_lag_ms,
 * so an overloaded service refuses quickly and cheaply instead of letting
 * every request wait past its caller's deadline.
 *
 * The hot path touches only the shard's own slot: a plain counter (one
 * thread writes it, no atomics), and for the lag two thread-local numbers
 * a sampler fiber on the shard keeps. The sampler (one per shard, started
 * by the first request the shard sees) sleeps LAG_SAMPLE_MS at a time and
 * records how late it woke, folded so that a stall is remembered for a few
 * samples (shed_lag_fold); a stall still going on shows before the sampler
 * wakes, as how overdue its wake-up already is (shed_lag_now). It ends with
 * the runtime, cancelled like every fiber.
 *
 * `after` runs for the middleware that answered too (routes.c), so the
 * slot notes the request it refused; nothing suspends between the refusal
 * and that `after`, so one pointer per slot is enough to tell.
 */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"
#include "http/shed.h"
#include "weave/metrics.h"

#define NS_PER_MS INT64_C(1000000)

enum {
    MAX_SHARDS = 1024,  /* wv_main's own bound */
    LAG_SAMPLE_MS = 50, /* how often the sampler wakes */
};

/* ------------------------------------------------------------ decisions */

shed_reason shed_decide(const shed_limits *l, int64_t in_flight, int64_t lag_ns)
{
    if (l->max_in_flight > 0 && in_flight >= l->max_in_flight)
        return SHED_IN_FLIGHT;
    if (l->max_lag_ns > 0 && lag_ns > l->max_lag_ns)
        return SHED_LOOP_LAG;
    return SHED_NONE;
}

int64_t shed_lag_fold(int64_t recent, int64_t sample)
{
    if (sample < 0)
        sample = 0;
    if (recent < 0)
        recent = 0;
    return sample > recent / 2 ? sample : recent / 2;
}

int64_t shed_lag_now(int64_t recent, int64_t due, int64_t now)
{
    int64_t overdue = due > 0 ? now - due : 0;
    return overdue > recent ? overdue : recent;
}

bool shed_exempt(const char *const *exempt, wv_str path)
{
    for (; exempt && *exempt; exempt++)
        if (wv_str_eq_cstr(path, *exempt))
            return true;
    return false;
}

const char *shed_reason_label(shed_reason r)
{
    return r == SHED_IN_FLIGHT ? "in_flight" : r == SHED_LOOP_LAG ? "loop_lag" : "none";
}

/* ------------------------------------------------------------ loop lag */

typedef struct lag_probe {
    bool running;   /* the shard's sampler is alive */
    int64_t recent; /* folded lag, ns */
    int64_t due;    /* the sampler's next wake-up (wv_now's clock), 0 = none */
} lag_probe;

static _Thread_local lag_probe probe;

static int lag_sampler(void *arg)
{
    (void)arg;
    for (;;) {
        probe.due = wv_after_ms(LAG_SAMPLE_MS);
        if (wv_sleep_until(probe.due) < 0)
            break; /* the runtime is ending */
        probe.recent = shed_lag_fold(probe.recent, wv_now() - probe.due);
    }
    probe = (lag_probe){0};
    return 0;
}

static void lag_start(void)
{
    if (probe.running)
        return;
    probe.running = true;
    if (wv_spawn(lag_sampler, NULL, &(wv_spawn_opts){.name = "shed-lag", .stack_size = 16384}) < 0)
        probe.running = false; /* shutting down: try again next time */
}

/* ------------------------------------------------------------ middleware */

typedef struct slot {
    alignas(64) int64_t in_flight; /* requests let through, not yet answered */
    const wv_req *refused;         /* the request just refused, until its `after` */
} slot;

typedef struct shed {
    shed_limits limits;
    char **exempt; /* NULL-terminated */
    wv_series *shed_total[3];
    slot *slots; /* [MAX_SHARDS], each written by its shard only */
} shed;

static const char overloaded[] = "{\"detail\":\"Service Unavailable: overloaded\"}";

static int shed_before(wv_req *req, wv_res *res, void *arg)
{
    shed *s = arg;
    int id = wv_shard_id();
    if (id < 0 || id >= MAX_SHARDS || shed_exempt((const char *const *)s->exempt, wv_req_path(req)))
        return WV_NEXT;
    slot *sl = &s->slots[id];
    int64_t lag = 0;
    if (s->limits.max_lag_ns > 0) {
        lag_start();
        lag = shed_lag_now(probe.recent, probe.due, wv_now_coarse());
    }
    shed_reason why = shed_decide(&s->limits, sl->in_flight, lag);
    if (why == SHED_NONE) {
        sl->in_flight++;
        return WV_NEXT;
    }
    wv_counter_inc(s->shed_total[why]);
    wv_res_header(res, "Retry-After", "1");
    wv_res_send(res, 503, "application/json", overloaded, sizeof overloaded - 1);
    /* noted after the send, and 0 whatever it returned: routes.c then runs
     * this request's `after` at once, with no suspension (an error
     * returned here would be answered first, and could suspend) */
    sl->refused = req;
    return 0;
}

static void shed_after(wv_req *req, wv_res *res, void *arg)
{
    (void)res;
    shed *s = arg;
    int id = wv_shard_id();
    if (id < 0 || id >= MAX_SHARDS)
        return;
    slot *sl = &s->slots[id];
    if (sl->refused == req) {
        sl->refused = NULL;
        return;
    }
    if (shed_exempt((const char *const *)s->exempt, wv_req_path(req)))
        return;
    sl->in_flight--;
}

static void shed_free(void *arg)
{
    shed *s = arg;
    for (char **p = s->exempt; p && *p; p++)
        free(*p);
    free(s->exempt);
    free(s->slots);
    free(s);
}

static const char *const default_exempt[] = {"/healthz", "/readyz", "/metrics", NULL};

static int copy_exempt(shed *s, const char *const *from)
{
    size_t n = 0;
    while (from[n])
        n++;
    s->exempt = calloc(n + 1, sizeof *s->exempt);
    if (!s->exempt)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        if (!(s->exempt[i] = strdup(from[i])))
            return -ENOMEM;
    return 0;
}

static int register_metric(shed *s)
{
    wv_metric *m = NULL;
    int rc = wv_metric_register(
        NULL,
        &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                          .name = "weave_http_shed_total",
                          .help = "HTTP requests refused with 503 by load shedding, by reason.",
                          .labels = "reason"},
        &m);
    for (shed_reason r = SHED_IN_FLIGHT; rc == 0 && r <= SHED_LOOP_LAG; r++)
        rc = wv_metric_series(m, (const char *const[]){shed_reason_label(r)}, &s->shed_total[r]);
    return rc;
}

int wv_shed(wv_router *r, const wv_shed_opts *opts)
{
    if (!r || !opts)
        return wv_fail(-EINVAL, "load shedding: no router or options");
    if (opts->max_in_flight < 0 || opts->max_loop_lag_ms < 0 ||
        (opts->max_in_flight == 0 && opts->max_loop_lag_ms == 0))
        return wv_fail(-EINVAL,
                       "load shedding needs max_in_flight or max_loop_lag_ms above 0 "
                       "(got %lld and %lld)",
                       (long long)opts->max_in_flight, (long long)opts->max_loop_lag_ms);
    if (opts->max_loop_lag_ms > INT64_MAX / NS_PER_MS)
        return wv_fail(-EINVAL, "load shedding: max_loop_lag_ms is too large");
    shed *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->limits = (shed_limits){opts->max_in_flight, opts->max_loop_lag_ms * NS_PER_MS};
    s->slots = aligned_alloc(alignof(slot), MAX_SHARDS * sizeof *s->slots);
    int rc = s->slots ? copy_exempt(s, opts->exempt ? opts->exempt : default_exempt) : -ENOMEM;
    if (rc == 0)
        rc = register_metric(s);
    if (rc < 0) {
        shed_free(s);
        return rc;
    }
    memset(s->slots, 0, MAX_SHARDS * sizeof *s->slots);
    return wv_router_use_first(r, &(wv_middleware){.name = "shed",
                                                   .before = shed_before,
                                                   .after = shed_after,
                                                   .arg = s,
                                                   .free = shed_free});
}
