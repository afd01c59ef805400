/*
 * src/ratelimit/bucket.c: the token bucket's arithmetic (GCRA, see
 * ratelimit_internal.h), the in-process table every shard shares, and the
 * request-side readers (the peer's host, X-Forwarded-For).
 *
 * The table. A limiter's buckets live in one fixed array of 128-byte sets,
 * each a spinlock and 7 entries of {64-bit key hash, tat}. A key's set
 * comes from its hash; a lookup, an insertion and an update read and write
 * that one set under its lock: a handful of compares, no allocation, no
 * pointer chasing, O(1). The lock is held for that alone (never across a
 * suspension), so two shards meet on it only when their keys share a set
 * and only for tens of nanoseconds, the shape src/cache/store.c measured a
 * spinlock best for (docs/decisions.md, Caching).
 *
 * Only the hash is kept, not the key: 64 bits under a secret per-table
 * seed, so two distinct keys share a bucket with odds of about 7 in 2^64
 * per lookup, and a client cannot choose keys that crowd one set.
 *
 * Room. When a key is new and its set is full, the entry to reuse is one
 * whose bucket has refilled (tat <= now) if there is any: forgetting it
 * loses nothing, since a key that is not found starts with a full bucket.
 * Otherwise the entry closest to full (the smallest tat) goes, and its
 * client gets its burst back early; the caller counts those.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "ratelimit/ratelimit_internal.h"

/* ------------------------------------------------------------- the bucket */

void wv__rl_take(const rl_params *p, int64_t tat, int64_t now, rl_verdict *v)
{
    if (tat < now)
        tat = now; /* refilled (or never seen): full */
    else if (tat - now > p->tau)
        tat = now + p->tau;                  /* the clock stepped back: empty, not emptier */
    int64_t after = tat + p->interval - now; /* the debt once this token is taken */
    if (after > p->tau) {
        *v = (rl_verdict){.allowed = false, .remaining = 0, .wait = after - p->tau, .tat = tat};
        return;
    }
    int64_t part = after % p->interval;
    *v = (rl_verdict){.allowed = true,
                      .remaining = (p->tau - after) / p->interval,
                      .wait = part ? part : p->interval,
                      .tat = tat + p->interval};
}

int64_t wv__rl_seconds_up(int64_t d, int64_t unit_per_s)
{
    if (d <= unit_per_s)
        return 1;
    return d / unit_per_s + (d % unit_per_s != 0);
}

void wv__rl_policy_value(char *out, size_t cap, const char *name, int64_t burst, int64_t tau_ns)
{
    snprintf(out, cap, "\"%s\";q=%lld;w=%lld", name, (long long)burst,
             (long long)wv__rl_seconds_up(tau_ns, RL_NS_PER_S));
}

void wv__rl_limit_value(char *out, size_t cap, const char *name, int64_t remaining, int64_t wait_ns)
{
    snprintf(out, cap, "\"%s\";r=%lld;t=%lld", name, (long long)remaining,
             (long long)wv__rl_seconds_up(wait_ns, RL_NS_PER_S));
}

/* -------------------------------------------------------------- the table */

typedef struct rl_entry {
    uint64_t hash; /* 0: free */
    int64_t tat;
} rl_entry;

typedef struct rl_set {
    atomic_uint lock;
    uint32_t pad_;
    rl_entry e[RL_WAYS];
} __attribute__((aligned(128))) rl_set;

_Static_assert(sizeof(rl_set) == 128, "a set is two cache lines");

struct rl_table {
    rl_set *sets;
    uint64_t nsets;
    uint64_t seed;
};

enum { SPINS_BEFORE_YIELD = 128 };
#define RL_MAX_CAPACITY ((size_t)1 << 28)

static uint64_t random_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = (uint64_t)ts.tv_nsec * UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t)ts.tv_sec ^
               (uintptr_t)&ts;
    }
    return seed;
}

int wv__rl_table_new(size_t capacity, rl_table **out)
{
    *out = NULL;
    if (capacity == 0 || capacity > RL_MAX_CAPACITY)
        return -EINVAL;
    rl_table *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->nsets = (capacity + RL_WAYS - 1) / RL_WAYS;
    t->sets = aligned_alloc(sizeof(rl_set), t->nsets * sizeof(rl_set));
    if (!t->sets) {
        free(t);
        return -ENOMEM;
    }
    memset(t->sets, 0, t->nsets * sizeof(rl_set));
    t->seed = random_seed();
    *out = t;
    return 0;
}

void wv__rl_table_free(rl_table *t)
{
    if (!t)
        return;
    free(t->sets);
    free(t);
}

size_t wv__rl_table_capacity(const rl_table *t)
{
    return (size_t)t->nsets * RL_WAYS;
}

/* The 128-bit product of a and b, its halves xored: one multiplication
 * spreads every input bit over most output bits. */
static inline uint64_t mix(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t word(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    if (n)
        memcpy(&v, p, n);
    return v;
}

/* Odd constants with about half their bits set (the fractional digits of
 * the square roots of 2, 3, 5 and 7). */
#define C0 UINT64_C(0x6a09e667f3bcc909)
#define C1 UINT64_C(0xbb67ae8584caa73b)
#define C2 UINT64_C(0x3c6ef372fe94f82b)
#define C3 UINT64_C(0xa54ff53a5f1d36f1)

uint64_t wv__rl_hash(const rl_table *t, char kind, const void *key, size_t n)
{
    const unsigned char *p = key;
    uint64_t h = mix(t->seed ^ C0, ((uint64_t)n << 8 | (unsigned char)kind) ^ C1);
    while (n >= 16) {
        h = mix(word(p, 8) ^ t->seed ^ C2, word(p + 8, 8) ^ h);
        p += 16;
        n -= 16;
    }
    uint64_t a = word(p, n < 8 ? n : 8), b = n > 8 ? word(p + 8, n - 8) : 0;
    h = mix(a ^ C2 ^ t->seed, b ^ h ^ C3);
    h = mix(h ^ C1, t->seed ^ C0);
    return h ? h : 1;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void set_lock(rl_set *s)
{
    while (atomic_exchange_explicit(&s->lock, 1, memory_order_acquire)) {
        for (int i = 0; atomic_load_explicit(&s->lock, memory_order_relaxed); i++) {
            if (i < SPINS_BEFORE_YIELD) {
                cpu_relax();
            } else {
                sched_yield(); /* the holder's thread was preempted: let it run */
                i = 0;
            }
        }
    }
}

static inline void set_unlock(rl_set *s)
{
    atomic_store_explicit(&s->lock, 0, memory_order_release);
}

bool wv__rl_table_take(rl_table *t, const rl_params *p, uint64_t h, int64_t now, rl_verdict *v)
{
    /* the hash's top half picks the set (multiply-shift: no modulo), the
     * whole of it names the key within */
    rl_set *s = &t->sets[(uint64_t)(((__uint128_t)(h >> 32) * t->nsets) >> 32)];
    bool lost = false;
    set_lock(s);
    rl_entry *e = NULL, *idle = NULL, *fullest = NULL;
    for (int i = 0; i < RL_WAYS; i++) {
        rl_entry *x = &s->e[i];
        if (x->hash == h) {
            e = x;
            break;
        }
        if (!idle && (x->hash == 0 || x->tat <= now))
            idle = x;
        if (!fullest || x->tat < fullest->tat)
            fullest = x;
    }
    if (!e) {
        e = idle;
        if (!e) {
            e = fullest;
            lost = true;
        }
        e->hash = h;
        e->tat = 0;
    }
    wv__rl_take(p, e->tat, now, v);
    e->tat = v->tat;
    set_unlock(s);
    return lost;
}

size_t wv__rl_table_count(rl_table *t)
{
    size_t n = 0;
    for (uint64_t i = 0; i < t->nsets; i++) {
        rl_set *s = &t->sets[i];
        set_lock(s);
        for (int w = 0; w < RL_WAYS; w++)
            n += s->e[w].hash != 0;
        set_unlock(s);
    }
    return n;
}

/* ------------------------------------------------------------ requests */

wv_str wv__rl_peer_host(const char *peer)
{
    if (!peer)
        return (wv_str){"", 0};
    size_t n = strlen(peer);
    if (peer[0] == '[') {
        const char *close = memchr(peer, ']', n);
        if (close)
            return (wv_str){peer + 1, (size_t)(close - peer - 1)};
        return (wv_str){peer, n};
    }
    const char *colon = strchr(peer, ':');
    if (colon && !strchr(colon + 1, ':'))
        return (wv_str){peer, (size_t)(colon - peer)};
    return (wv_str){peer, n};
}

static bool all_digits(const char *p, size_t n)
{
    if (n == 0 || n > 5)
        return false;
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return true;
}

/* One list element as an address, canonical, into out: its length or -1. */
static int element_address(const char *p, size_t n, char *out)
{
    char text[RL_ADDR_MAX];
    if (n && p[0] == '[') { /* [v6] or [v6]:port */
        const char *close = memchr(p, ']', n);
        if (!close)
            return -1;
        size_t rest = n - (size_t)(close - p) - 1;
        if (rest && (close[1] != ':' || !all_digits(close + 2, rest - 1)))
            return -1;
        p++;
        n = (size_t)(close - p);
        if (!memchr(p, ':', n))
            return -1; /* brackets hold IPv6 alone */
    } else {
        const char *colon = memchr(p, ':', n);
        if (colon && !memchr(colon + 1, ':', n - (size_t)(colon - p) - 1)) { /* v4:port */
            if (!all_digits(colon + 1, n - (size_t)(colon - p) - 1))
                return -1;
            n = (size_t)(colon - p);
        }
    }
    if (n == 0 || n >= sizeof text)
        return -1;
    memcpy(text, p, n);
    text[n] = '\0';
    unsigned char bin[16];
    int family = memchr(text, ':', n) ? AF_INET6 : AF_INET;
    if (inet_pton(family, text, bin) != 1 || !inet_ntop(family, bin, out, RL_ADDR_MAX))
        return -1;
    return (int)strlen(out);
}

static bool ows(char c)
{
    return c == ' ' || c == '\t';
}

int wv__rl_forwarded(const wv_str *lines, int nlines, int hops, char *out)
{
    if (hops < 1)
        return -1;
    int seen = 0;
    for (int l = nlines - 1; l >= 0; l--) {
        const char *p = lines[l].p;
        size_t end = lines[l].n;
        while (p && end > 0) { /* elements right to left */
            size_t start = end;
            while (start > 0 && p[start - 1] != ',')
                start--;
            size_t a = start, b = end;
            while (a < b && ows(p[a]))
                a++;
            while (b > a && ows(p[b - 1]))
                b--;
            if (b > a && ++seen == hops)
                return element_address(p + a, b - a, out);
            end = start ? start - 1 : 0;
        }
    }
    return -1;
}
