/*
 * src/cache/store.h: the embedded cache (CACHE_URL=memory://), private to
 * the library; the cache API drives it.
 *
 * One store per process, shared by every shard: a value set or deleted by
 * a request on one shard is what a request on another shard sees next, so
 * invalidation on write works whichever shard serves the read. Every call
 * is safe from any thread at once. The keys are spread by their hash over
 * `segments` stripes, each with its own lock, table, byte budget and
 * eviction clock; a lock is held for a lookup and a few pointer writes,
 * never across an allocation, a free, a system call or a fiber switch, and
 * never while user code (the allocator hooks) runs.
 *
 * Keys and values are byte strings with lengths (NULs allowed, empty
 * allowed). Time is not read here: every call that can meet an expiry
 * takes `now`, a monotonic clock in milliseconds (the shard's coarse clock,
 * wv_now_coarse() / 1000000), so tests move time by hand.
 *
 * Bytes: the store never holds more than max_bytes of charged bytes, where
 * an item is charged cache_store_entry_size(key, value): its header, key
 * and value as malloc lays them out (glibc's chunk: 8 bytes of its own,
 * rounded up to 16) plus two bucket slots (a table has one to two per
 * item; the one it outgrew is freed a few sets after). The budget is split evenly between the
 * segments; a set that would overfill its segment evicts from that segment first.
 *
 * Eviction is CLOCK, an approximation of LRU: each segment keeps its items
 * on a ring in insertion order, a read marks the item, and the hand that
 * looks for a victim clears a mark and moves on instead of evicting, so an
 * item read since the hand last passed survives the next wave and an item
 * nobody read goes first. An expired item the hand meets is removed as an
 * expiration, not an eviction.
 *
 * Expiry is lazy (an expired item is a miss and is freed by the call that
 * finds it) plus a sweep: each set looks at the next two items of its
 * segment's ring and removes those that expired, and cache_store_sweep()
 * lets the owner do more from a timer, so a store full of dead items does
 * not hold their memory forever.
 *
 * Errors are negative errno values:
 *   -EMSGSIZE  key + value longer than max_item (wv_errmsg says by how much)
 *   -ENOMEM    an allocation failed; the store is as it was before the call
 *   -EEXIST    cache_store_add: the key holds a live value
 *   -EINVAL    bad options, a negative TTL, a NULL pointer with a length
 */
#ifndef WEAVE_CACHE_STORE_H
#define WEAVE_CACHE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/buf.h"

#pragma GCC visibility push(hidden)

#define CACHE_STORE_DEFAULT_MAX_BYTES ((size_t)64 << 20) /* 64 MiB */
#define CACHE_STORE_DEFAULT_MAX_ITEM  ((size_t)1 << 20)  /* 1 MiB */
#define CACHE_STORE_MAX_SEGMENTS      1024

/*
 * The lock that guards a segment, chosen by measurement
 * (`bench_cache_store locks` and get/set with each kind; CPU time per call,
 * 10,000 items, on a 2-core VM that other jobs kept busy):
 *
 *                           spin     mutex    adaptive mutex
 *   get hit, 1 thread       22.5     26.9     28.8 ns
 *   set, 1 thread           55.1     58.6     57.3 ns
 *   2 threads, 8 segments   56-66    51-56    60-61 ns  (9 gets : 1 set; two runs)
 *   2 threads, 1 segment    82-88    49-66    55-57 ns  (every call contends)
 *
 * The spinlock takes one atomic exchange and releases with a plain store,
 * where a mutex takes two atomics and a call; with one shard per core and
 * holds of tens of nanoseconds spread over the segments, the uncontended
 * path is the one that counts. Under contention on an oversubscribed
 * machine the mutexes did better (a spinner cannot tell that the holder
 * was preempted), which is why the spinlock yields the CPU after a short
 * spin, and why the mutexes stay selectable.
 */
typedef enum cache_store_lock {
    CACHE_STORE_LOCK_SPIN = 0,   /* test-and-test-and-set; yields the CPU after a short spin */
    CACHE_STORE_LOCK_MUTEX,      /* pthread_mutex_t, default attributes */
    CACHE_STORE_LOCK_MUTEX_SPIN, /* pthread_mutex_t, PTHREAD_MUTEX_ADAPTIVE_NP */
} cache_store_lock;

typedef struct cache_store_opts {
    /* charged bytes the store may hold, split evenly between the segments;
     * 0 = CACHE_STORE_DEFAULT_MAX_BYTES */
    size_t max_bytes;
    /* the longest key + value accepted; 0 = 1 MiB, or max_bytes / 4 when
     * that is smaller. Each segment must hold at least one such item. */
    size_t max_item;
    /* lock stripes, rounded down to a power of two (at most
     * CACHE_STORE_MAX_SEGMENTS); 0 = the most, up to 64, that leave every
     * segment room for four items of max_item */
    unsigned segments;
    cache_store_lock lock;
    /* where items and tables come from (tests make it fail); both or
     * neither, NULL = malloc and free. Called without any lock held. */
    void *(*alloc_fn)(size_t size);
    void (*free_fn)(void *p);
} cache_store_opts;

typedef struct cache_store_stats {
    uint64_t hits;        /* gets that found a live item */
    uint64_t misses;      /* gets that did not (expired items included) */
    uint64_t evictions;   /* live items removed to make room */
    uint64_t expirations; /* expired items removed (by any call or a sweep) */
    uint64_t bytes;       /* charged bytes held: the sum of cache_store_entry_size */
    uint64_t items;
    uint64_t max_bytes; /* the budget: segments x the segment's share (<= opts.max_bytes) */
    uint64_t max_item;
    unsigned segments;
} cache_store_stats;

typedef struct cache_store cache_store;

/* A new, empty store in *out. opts may be NULL (all defaults).
 * -EINVAL when max_bytes cannot hold one item of max_item per segment,
 * -ENOMEM. */
int cache_store_new(const cache_store_opts *opts, cache_store **out);

/* Free the store and every item. No other call may be running on it.
 * NULL is ignored. */
void cache_store_free(cache_store *s);

/* Look key up. A hit appends the value to *out (the caller owns out and
 * resets it when it wants only the value) and returns 1; a miss returns 0
 * and leaves out alone; an expired item is a miss and is freed. -ENOMEM
 * when out cannot grow to take the value (its memory or its limit): out
 * is unchanged and the lookup counts as neither hit nor miss. */
int cache_store_get(cache_store *s, const void *key, size_t klen, int64_t now, wv_buf *out);

/* Store a copy of value under key, replacing any old value. ttl_ms > 0:
 * the item expires ttl_ms after now; 0: never. 0, or -EMSGSIZE, -ENOMEM,
 * -EINVAL (negative ttl_ms). */
int cache_store_set(cache_store *s, const void *key, size_t klen, const void *value, size_t vlen,
                    int64_t ttl_ms, int64_t now);

/* cache_store_set only when key holds no live value (an expired one is
 * replaced): memcached's add, and the claim of a single-flight fill.
 * 0 stored, -EEXIST, or set's errors. */
int cache_store_add(cache_store *s, const void *key, size_t klen, const void *value, size_t vlen,
                    int64_t ttl_ms, int64_t now);

/* Remove key. 1 if a live item was removed, 0 if there was none (an
 * expired one is removed and counted as an expiration). */
int cache_store_delete(cache_store *s, const void *key, size_t klen, int64_t now);

/* Give a live item a new TTL (0 = never expire) counted from now, and mark
 * it read. 1 if the item was live, 0 if not (an expired one is removed),
 * -EINVAL for a negative ttl_ms. */
int cache_store_touch(cache_store *s, const void *key, size_t klen, int64_t ttl_ms, int64_t now);

/* Look at up to `budget` items, spread over the segments, and remove
 * those expired at now. Returns how many were removed. For a timer of the
 * owner; each segment's lock is held only for its share. */
size_t cache_store_sweep(cache_store *s, int64_t now, size_t budget);

/* The counters, summed over the segments (each read under its lock; the
 * sum is not one atomic snapshot while other threads write). */
void cache_store_stats_get(cache_store *s, cache_store_stats *out);

/* What an item of these lengths is charged against the budget. */
size_t cache_store_entry_size(size_t klen, size_t vlen);

/* The store's 64-bit key hash with a given seed (the store draws its seed
 * at random): exposed for the benchmark and tests. */
uint64_t cache_store_hash(const void *key, size_t n, uint64_t seed);

/* Walk every segment and check what must always hold: the table, the
 * ring and the counters agree, bytes is the sum of the items' charges and
 * within the budget, each key is there once and in the segment its hash
 * names. 0, or -EUCLEAN with what was wrong in wv_errmsg(). For tests. */
int cache_store_check(cache_store *s);

#pragma GCC visibility pop

#endif
