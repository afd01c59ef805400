/*
 * wv_retry: run an operation again after failures the caller says are safe
 * to retry, with exponential backoff and "full jitter" (include/weave/net.h,
 * "retries"). This file owns the backoff policy and its random numbers.
 *
 * How it works: attempt n that fails with a retryable error is followed by
 * a sleep drawn uniformly from [0, min(max_ms, base_ms * 2^(n-1))] (drawn
 * in nanoseconds), or the attempt's retry_after_ms when that is longer
 * (a server's Retry-After is honoured as given, even above max_ms). The
 * sleep is wv_sleep_until, so the fiber's deadline and cancellation cut it
 * short (-ETIMEDOUT / -ECANCELED); and when the next attempt could not
 * start before the deadline (now + delay >= wv_deadline()), the last error
 * is returned at once instead of sleeping into a timeout. -ETIMEDOUT and
 * -ECANCELED from fn are never retried, whatever `retryable` says.
 *
 * wv_errmsg(): whatever is returned carries the last attempt's message.
 * It is copied right after the attempt fails and put back (only if
 * something changed it: the retryable callback, the sleep) before
 * returning or running the next attempt.
 *
 * Random numbers: a splitmix64 generator per thread (each shard is one),
 * seeded on first use from both clocks, the thread id and the address of
 * its own state; no lock, no rand().
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "weave/net.h"

enum {
    DEFAULT_MAX_ATTEMPTS = 3,
    DEFAULT_BASE_MS = 100,
    DEFAULT_MAX_MS = 10000,
    MSG_CAP = 1024,
};

#define NS_PER_MS INT64_C(1000000)

/* ------------------------------------------------------------ random */

static _Thread_local uint64_t rng_state;
static _Thread_local bool rng_seeded;

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint64_t rng_next(void)
{
    if (!rng_seeded) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t seed = (uint64_t)ts.tv_sec * UINT64_C(1000000000) + (uint64_t)ts.tv_nsec;
        seed ^= (uint64_t)wv_now() * UINT64_C(0x9e3779b97f4a7c15);
        seed ^= (uint64_t)gettid() << 32;
        seed ^= (uint64_t)(uintptr_t)&rng_state;
        rng_state = seed;
        rng_seeded = true;
    }
    return splitmix64(&rng_state);
}

/* Uniform in [0, n] (the modulo bias is below 2^-20 for any n we draw). */
static uint64_t rng_upto(uint64_t n)
{
    uint64_t r = rng_next();
    return n == UINT64_MAX ? r : r % (n + 1);
}

/* ------------------------------------------------------------ policy */

static bool default_retryable(int rc, void *arg)
{
    (void)arg;
    switch (rc) {
    case -ECONNREFUSED:
    case -EHOSTUNREACH:
    case -ENETUNREACH:
    case -ECONNABORTED:
    case -EAGAIN:
        return true;
    default:
        return false;
    }
}

/* The full-jitter ceiling after attempt n (1-based), in ms. */
static int64_t ceiling_ms(int64_t base_ms, int64_t max_ms, int n)
{
    int64_t c = base_ms;
    for (int i = 1; i < n && c < max_ms; i++)
        c = c > max_ms / 2 ? max_ms : c * 2;
    return c < max_ms ? c : max_ms;
}

static int64_t ms_to_ns(int64_t ms)
{
    if (ms <= 0)
        return 0;
    return ms > INT64_MAX / NS_PER_MS ? INT64_MAX : ms * NS_PER_MS;
}

/* Put the saved message back if something since changed it. */
static int restore(int rc, const char *msg)
{
    if (strcmp(wv_errmsg(), msg) != 0)
        wv_fail(rc, "%s", msg);
    return rc;
}

int wv_retry(const wv_retry_opts *opts, wv_retry_fn *fn, void *arg)
{
    if (!fn)
        return wv_fail(-EINVAL, "retry: no function to run");
    wv_retry_opts o = {0};
    if (opts)
        o = *opts;
    if (o.max_attempts <= 0)
        o.max_attempts = DEFAULT_MAX_ATTEMPTS;
    if (o.base_ms <= 0)
        o.base_ms = DEFAULT_BASE_MS;
    if (o.max_ms <= 0)
        o.max_ms = DEFAULT_MAX_MS;
    if (!o.retryable)
        o.retryable = default_retryable;

    char msg[MSG_CAP];
    for (int n = 1;; n++) {
        wv_retry_attempt a = {.number = n, .retry_after_ms = 0};
        int rc = fn(arg, &a);
        if (rc >= 0)
            return rc;
        snprintf(msg, sizeof msg, "%s", wv_errmsg());
        if (rc == -ETIMEDOUT || rc == -ECANCELED || n >= o.max_attempts || !o.retryable(rc, arg))
            return restore(rc, msg);

        int64_t delay = (int64_t)rng_upto((uint64_t)ms_to_ns(ceiling_ms(o.base_ms, o.max_ms, n)));
        int64_t after = ms_to_ns(a.retry_after_ms);
        if (after > delay)
            delay = after;
        int64_t now = wv_now();
        int64_t at = delay > WV_NEVER - now ? WV_NEVER : now + delay;
        if (at >= wv_deadline())
            return restore(rc, msg); /* the next attempt could not start in time */
        int s = wv_sleep_until(at);
        if (s < 0)
            return restore(s, msg);
        restore(rc, msg);
    }
}
