/*
 * The key set the cache benchmarks GET from (bench_redis.c, bench_memcache.c;
 * bench/cache/keyset.py is the same for the Python anchors): KEYSET_KEYS keys
 * key:<n>, n = 0 .. KEYSET_KEYS - 1, written with 12 digits as
 * redis-benchmark -r writes them (key:000000001234, 16 bytes), each holding
 * a 3-byte value that names it, the xorshift that draws keys at random, and
 * keyset_run, which times the benchmark's fibers.
 */
#ifndef WEAVE_BENCH_KEYSET_H
#define WEAVE_BENCH_KEYSET_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bench_util.h"
#include "weave/rt.h"
#include "weave/str.h"

enum { KEYSET_KEYS = 10000, KEYSET_VALUE_LEN = 3, KEYSET_KEY_LEN = 16 };

static const char keyset_alphabet[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/* Key n's value: three characters that name it. */
static inline void keyset_value(int n, char out[KEYSET_VALUE_LEN])
{
    out[0] = keyset_alphabet[(n / (62 * 62)) % 62];
    out[1] = keyset_alphabet[(n / 62) % 62];
    out[2] = keyset_alphabet[n % 62];
}

/* The keys, written once by keyset_init (as redis-benchmark rewrites its
 * digits in place, and the Python anchors keep a list): no formatting in
 * the timed loops. */
static char keyset_names[KEYSET_KEYS][20];

static inline void keyset_init(void)
{
    for (int n = 0; n < KEYSET_KEYS; n++)
        snprintf(keyset_names[n], sizeof keyset_names[n], "key:%012d", n);
}

static inline wv_str keyset_key(int n)
{
    return (wv_str){keyset_names[n], KEYSET_KEY_LEN};
}

static inline bool keyset_value_ok(int n, const char *p, size_t len)
{
    char want[KEYSET_VALUE_LEN];
    keyset_value(n, want);
    return len == KEYSET_VALUE_LEN && memcmp(p, want, KEYSET_VALUE_LEN) == 0;
}

/* A random key: xorshift64 on the caller's state (a seed per fiber). */
static inline int keyset_random(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (int)(*s % KEYSET_KEYS);
}

/* What each timed fiber keeps (the first member of a benchmark's worker):
 * its window, its key draw and its counts. */
typedef struct keyset_fiber {
    int64_t warm_end, end_at; /* count from warm_end, stop at end_at */
    uint64_t seed;            /* for keyset_random */
    long long done, failed;
} keyset_fiber;

typedef struct keyset_result {
    double window; /* seconds counted */
    cpu_mark a, b; /* at the window's start and end */
    long long done, failed;
} keyset_result;

/* Runs fn on each of the n workers (`size` bytes apart from `workers`, each
 * starting with a keyset_fiber) in a group: warm_ms of warm-up, then
 * `seconds` counted, the CPU marked at both ends (server_pid's too). 0, or
 * the first error of spawning or of a worker. */
static inline int keyset_run(void *workers, int n, size_t size, int (*fn)(void *), int warm_ms,
                             double seconds, pid_t server_pid, keyset_result *out)
{
    int64_t warm_end = wv_now() + (int64_t)warm_ms * 1000000,
            end_at = warm_end + (int64_t)(seconds * 1e9);
    *out = (keyset_result){.window = (double)(end_at - warm_end) / 1e9};
    wv_group *g = wv_group_new();
    int rc = g ? 0 : -ENOMEM;
    for (int i = 0; i < n && rc == 0; i++) {
        keyset_fiber *f = (keyset_fiber *)((char *)workers + (size_t)i * size);
        f->warm_end = warm_end;
        f->end_at = end_at;
        f->seed = 0x9e3779b97f4a7c15ull ^ ((uint64_t)(i + 1) << 20);
        if ((rc = wv_group_spawn(g, fn, f, NULL)) < 0)
            fprintf(stderr, "# spawn: %s\n", wv_errmsg());
    }
    if (rc == 0) {
        wv_sleep_until(warm_end);
        out->a = cpu_mark_now(server_pid);
        wv_sleep_until(end_at);
        out->b = cpu_mark_now(server_pid);
    } else if (g) {
        wv_group_cancel(g);
    }
    if (g) {
        int jrc = wv_group_join(g);
        rc = rc < 0 ? rc : jrc;
        wv_group_free(g);
    }
    for (int i = 0; i < n; i++) {
        keyset_fiber *f = (keyset_fiber *)((char *)workers + (size_t)i * size);
        out->done += f->done;
        out->failed += f->failed;
    }
    return rc;
}

#endif
