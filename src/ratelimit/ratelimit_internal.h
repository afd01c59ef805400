/*
 * src/ratelimit/ratelimit_internal.h: the rate limiter's pure parts,
 * private to src/ratelimit (and its unit tests and fuzzer): the token
 * bucket's arithmetic, the shared in-process table, the header values and
 * the X-Forwarded-For reader.
 *
 * The bucket is GCRA's form of a token bucket: one timestamp per key, the
 * "theoretical arrival time" (tat), the moment at which the bucket will be
 * full again if nothing else is taken. With `interval` the time one token
 * takes to come back (1 / rate) and `tau` = burst x interval (the time an
 * empty bucket takes to fill), the bucket holds (tau - (tat - now)) /
 * interval tokens at `now`. A request is allowed when taking a token
 * leaves that non-negative, i.e. when tat + interval - now <= tau, and then
 * tat moves on by one interval. A key never seen, or seen long ago (tat <=
 * now), has a full bucket; so a table may forget such a key at no cost.
 */
#ifndef WEAVE_RATELIMIT_INTERNAL_H
#define WEAVE_RATELIMIT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/str.h"

#pragma GCC visibility push(hidden)

#define RL_NS_PER_S INT64_C(1000000000)

/* A bucket's shape, in any one time unit (ns in the process, us in Redis). */
typedef struct rl_params {
    int64_t interval; /* time per token, >= 1 */
    int64_t tau;      /* burst x interval: an empty bucket's time to fill */
} rl_params;

typedef struct rl_verdict {
    bool allowed;
    int64_t remaining; /* tokens left after this request (0 when limited) */
    /* allowed: the time until the next token is added; limited: until one
     * is there to take (Retry-After). Always >= 1 unit. */
    int64_t wait;
    int64_t tat; /* the bucket's state to keep (unchanged when limited) */
} rl_verdict;

/* One request against a bucket whose state is `tat` (0 or anything <= now:
 * full) at `now`. Pure. A `tat` further ahead than now + tau can only come
 * from a clock that stepped back: it is read as an empty bucket, so such a
 * step costs a client at most one bucket's refill, never a longer lockout,
 * and never grants a token. */
void wv__rl_take(const rl_params *p, int64_t tat, int64_t now, rl_verdict *v);

/* Whole seconds for a duration in `unit_per_s` units, rounded up, at least 1. */
int64_t wv__rl_seconds_up(int64_t d, int64_t unit_per_s);

/* RateLimit-Policy's value: "<name>";q=<burst>;w=<tau in whole seconds,
 * rounded up>. RateLimit's: "<name>";r=<remaining>;t=<wait_ns in whole
 * seconds, rounded up>. Cut to cap (NUL included) like snprintf. */
void wv__rl_policy_value(char *out, size_t cap, const char *name, int64_t burst, int64_t tau_ns);
void wv__rl_limit_value(char *out, size_t cap, const char *name, int64_t remaining,
                        int64_t wait_ns);

/* ------------------------------------------------------------ the table */

typedef struct rl_table rl_table;

enum { RL_WAYS = 7 }; /* keys per set: 7 x 16 bytes and the lock in 128 */

/* A table of at least `capacity` keys (rounded up to whole sets), zeroed;
 * its memory does not change afterwards. 0, -EINVAL (0 or > 2^28), -ENOMEM. */
int wv__rl_table_new(size_t capacity, rl_table **out);
void wv__rl_table_free(rl_table *t);

/* Keys the table holds at most. */
size_t wv__rl_table_capacity(const rl_table *t);

/* The key's 64-bit hash under the table's secret seed; `kind` keeps an
 * address, a header value and a function's key apart. Never 0. */
uint64_t wv__rl_hash(const rl_table *t, char kind, const void *key, size_t n);

/* One request of key hash h at now, as wv__rl_take, the state kept in the
 * table. True when making room forgot a key whose bucket was not full
 * (an eviction that loses state). Safe from any thread. */
bool wv__rl_table_take(rl_table *t, const rl_params *p, uint64_t h, int64_t now, rl_verdict *v);

/* Keys in the table now (walks it: for tests). */
size_t wv__rl_table_count(rl_table *t);

/* ------------------------------------------------------------ requests */

/* The host part of a peer address as wv_req_peer writes it:
 * "127.0.0.1:53122" -> "127.0.0.1", "[::1]:53122" -> "::1"; anything else
 * whole. */
wv_str wv__rl_peer_host(const char *peer);

/* Maximum length of a normalised address written by wv__rl_forwarded, NUL
 * included (INET6_ADDRSTRLEN). */
#define RL_ADDR_MAX 46

/*
 * The client address from X-Forwarded-For field lines (in arrival order;
 * the list elements of every line, as one list): the element `hops` from
 * the right (1 = the last), trimmed of spaces and tabs, an IPv4 or IPv6
 * address ("[v6]" and a ":port" after either are taken off), written to
 * out (RL_ADDR_MAX bytes) in its canonical form. Its length, or -1 when
 * hops < 1, the list has fewer than `hops` non-empty elements, or that
 * element is not an address.
 */
int wv__rl_forwarded(const wv_str *lines, int nlines, int hops, char *out);

#pragma GCC visibility pop

#endif
