/*
 * Load shedding's decisions (shed.c), apart from the middleware so the unit
 * tests can drive them with made-up numbers (tests/unit/test_shed.c).
 */
#ifndef WEAVE_HTTP_SHED_H
#define WEAVE_HTTP_SHED_H

#include <stdbool.h>
#include <stdint.h>

#include "weave/str.h"

#pragma GCC visibility push(hidden)

typedef enum shed_reason {
    SHED_NONE = 0,
    SHED_IN_FLIGHT, /* the shard already handles max_in_flight requests */
    SHED_LOOP_LAG,  /* the shard's loop is running late */
} shed_reason;

/* The limits, 0 meaning none. */
typedef struct shed_limits {
    int64_t max_in_flight;
    int64_t max_lag_ns;
} shed_limits;

/* Shed a new request, given the requests the shard already handles (this
 * one not counted) and its recent loop lag? The in-flight bound is checked
 * first: it is exact, the lag an estimate. */
shed_reason shed_decide(const shed_limits *l, int64_t in_flight, int64_t lag_ns);

/* The shard's recent lag after a sample: the sample when it is the larger,
 * else the last estimate halved, so one stall is remembered for a few
 * samples and then forgotten. Negative samples count as 0. */
int64_t shed_lag_fold(int64_t recent, int64_t sample);

/* The lag to judge by at `now`: the recent estimate, or how overdue the
 * sampler's next wake-up (`due`, 0 = none yet) already is when that is
 * larger (a stall still going on, before the sampler could record it). */
int64_t shed_lag_now(int64_t recent, int64_t due, int64_t now);

/* Is `path` one of the NULL-terminated `exempt` paths (exact match)? */
bool shed_exempt(const char *const *exempt, wv_str path);

/* "in_flight", "loop_lag": the metric's reason label. */
const char *shed_reason_label(shed_reason r);

#pragma GCC visibility pop

#endif
