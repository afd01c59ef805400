/*
 * src/cache/store.c: the embedded cache's store (store.h says what it
 * promises); one per process, shared by every shard.
 *
 * Shape, and why (the figures are bench/bench_cache_store.c's, on a 2-core
 * AMD EPYC VM with 1 MiB of L2 per core, CPU time per call):
 *
 *  - Lock striping. The hash's bits 40..49 pick a segment; each segment is
 *    a cache line-aligned struct with its own lock, chained hash table,
 *    CLOCK ring, byte budget and counters, so two shards meet on a lock
 *    only when their keys share a segment, and no counter is a shared
 *    atomic. The lock is a spinlock by default (store.h has the figures).
 *
 *  - Nothing slow under a lock. An item is allocated and filled before the
 *    lock is taken; what a call removes is collected on a list and freed
 *    after it is released; a bigger table is allocated, and its pages
 *    touched, between two holds of the lock. A get copies a value of up to
 *    COPY_UNDER_LOCK bytes into a buffer that already has room while it
 *    holds the lock; a longer value (or one that needs the buffer to grow)
 *    is pinned, copied with the lock released, and unpinned. Values are
 *    never written after an item is made (a set makes a new item), so a
 *    pinned value is safe to read.
 *
 *  - One allocation per item: the header (the fields a lookup reads
 *    first), then the key, then the value. A get hit of a 100-byte value
 *    among 10,000 items took 22 ns: 4 to hash the key, 4 for the lock and
 *    the bucket, 9.5 for the cache miss on the item (10,000 items do not
 *    fit in L2) and 5 to copy the value out. Among 1,000 items, 11.5 ns.
 *
 *  - Chaining, measured against open addressing: a table of 8-byte slots
 *    holding the item's address and a 16-bit tag of its hash, so that a
 *    probe never reads another key's item, was no faster on hits (23 ns)
 *    and slower on misses (15.5 against 13 ns), with or without a
 *    branch-free first probe window or prefetching; the item's own cache
 *    miss is what a hit pays for. Chains stay at most one item per bucket
 *    on average (a load factor of 0.5 made misses faster, 9.6 ns, for
 *    twice the table memory, and hits no faster).
 *
 *  - Tables grow incrementally: when a segment holds more items than
 *    buckets, a table twice the size replaces it, and each later set moves
 *    MIGRATE_PER_SET buckets of the old one over (the old is freed once
 *    empty). An item lives in the old table exactly when its old bucket
 *    has not been moved yet, so a lookup reads one chain either way, and no
 *    call pays for rehashing a whole segment. Tables never shrink.
 *
 *  - CLOCK, not a linked LRU: a hit sets a flag in the item it is reading
 *    anyway instead of relinking three items, and writes nothing when the
 *    flag is set already, so readers on two cores do not bounce the line.
 */
#include "cache/store.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "weave/rt.h"

enum {
    COPY_UNDER_LOCK = 1024, /* the longest value a get copies with the lock held */
    SWEEP_PER_SET = 2,      /* ring items a set checks for expiry */
    MIGRATE_PER_SET = 8,    /* old buckets a set moves to the new table */
    FIRST_BUCKETS = 16,     /* a new segment's table */
    SPINS_BEFORE_YIELD = 128,
    AUTO_SEGMENTS_MAX = 64,
    ITEMS_PER_SEGMENT = 4, /* automatic segments leave room for this many max_item items */
};

#define NEVER INT64_MAX /* an item's expiry when it has none */

typedef struct entry entry;
struct entry {
    entry *chain; /* next in its bucket; next on a trash list once removed */
    uint64_t hash;
    uint32_t klen, vlen;
    int64_t expires;              /* ms on the caller's clock; NEVER */
    uint32_t pins;                /* gets copying the value with the lock released */
    uint8_t referenced;           /* read since the hand last passed */
    uint8_t dead;                 /* removed while pinned: the last unpin frees it */
    entry *ring_next, *ring_prev; /* the segment's CLOCK ring, oldest first from the hand */
    unsigned char data[];         /* key, then value */
};

typedef struct segment {
    atomic_uint spin;
    pthread_mutex_t mutex;
    entry **buckets; /* the current table */
    size_t mask;     /* its size - 1 */
    entry **old;     /* the table being emptied into buckets, or NULL */
    size_t old_mask;
    size_t migrated; /* old[0..migrated) are empty */
    entry *hand;     /* where eviction looks next; the newest item is just behind it */
    entry *sweep;    /* where the expiry sweep looks next (NULL: at the hand) */
    size_t items;
    size_t bytes;
    size_t budget;
    uint64_t hits, misses, evictions, expirations;
} __attribute__((aligned(64))) segment;

struct cache_store {
    segment *segs;
    unsigned nsegs;
    unsigned seg_mask;
    cache_store_lock lock;
    size_t max_item;
    uint64_t seed;
    void *(*alloc_fn)(size_t size);
    void (*free_fn)(void *p);
    void *raw; /* what segs was carved from */
    atomic_uint sweep_next;
};

/* What one call removed, freed once its lock is released. */
typedef struct trash {
    entry *entries;
    entry **table;
} trash;

/* ------------------------------------------------------------------ hash */

/*
 * Multiply-and-fold: the 128-bit product of two words, its halves xored.
 * Every input bit reaches most output bits in one multiplication, which is
 * what makes a short key cost two loads and three multiplications.
 */
static inline uint64_t fold_mul(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;
    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint64_t load32(const unsigned char *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Odd constants with about half their bits set, from the digits of pi. */
#define K0 UINT64_C(0x243f6a8885a308d3)
#define K1 UINT64_C(0x13198a2e03707345)
#define K2 UINT64_C(0xa4093822299f31d1)
#define K3 UINT64_C(0x082efa98ec4e6c89)

/*
 * Keys of up to 16 bytes are read as two (possibly overlapping) words;
 * longer keys fold 16 bytes at a time into the state, then their last 16.
 * The length goes into the first and the last step, so "a" and "a\0" differ.
 * The seed is secret (random per store), which keeps a client from
 * choosing keys that all land in one chain.
 */
static uint64_t key_hash(const unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t h = seed ^ fold_mul(seed ^ K0, (uint64_t)n ^ K1);
    uint64_t a, b;
    if (n <= 16) {
        if (n >= 8) {
            a = load64(p);
            b = load64(p + n - 8);
        } else if (n >= 4) {
            a = load32(p);
            b = load32(p + n - 4);
        } else if (n > 0) {
            a = ((uint64_t)p[0] << 16) | ((uint64_t)p[n >> 1] << 8) | p[n - 1];
            b = 0;
        } else {
            a = b = 0;
        }
    } else {
        size_t left = n;
        while (left > 16) {
            h = fold_mul(load64(p) ^ K2 ^ seed, load64(p + 8) ^ h);
            p += 16;
            left -= 16;
        }
        a = load64(p + left - 16);
        b = load64(p + left - 8);
    }
    h = fold_mul(a ^ K2 ^ seed, b ^ h ^ K3);
    return fold_mul(h ^ K1, (uint64_t)n ^ K0 ^ seed);
}

uint64_t cache_store_hash(const void *key, size_t n, uint64_t seed)
{
    return key_hash(key, n, seed);
}

/* --------------------------------------------------------------- locking */

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static void spin_wait(atomic_uint *l)
{
    for (;;) {
        for (int i = 0; atomic_load_explicit(l, memory_order_relaxed); i++) {
            if (i < SPINS_BEFORE_YIELD) {
                cpu_relax();
            } else {
                sched_yield(); /* the holder was preempted: let it run */
                i = 0;
            }
        }
        if (!atomic_exchange_explicit(l, 1, memory_order_acquire))
            return;
    }
}

static inline void seg_lock(const cache_store *s, segment *g)
{
    if (s->lock != CACHE_STORE_LOCK_SPIN)
        pthread_mutex_lock(&g->mutex);
    else if (atomic_exchange_explicit(&g->spin, 1, memory_order_acquire))
        spin_wait(&g->spin);
}

static inline void seg_unlock(const cache_store *s, segment *g)
{
    if (s->lock != CACHE_STORE_LOCK_SPIN)
        pthread_mutex_unlock(&g->mutex);
    else
        atomic_store_explicit(&g->spin, 0, memory_order_release);
}

/* ---------------------------------------------------------------- items */

static inline size_t chunk_size(size_t request)
{
    /* glibc's: 8 bytes of header, 16-byte granules, at least 32 */
    size_t n = (request + 8 + 15) & ~(size_t)15;
    return n < 32 ? 32 : n;
}

size_t cache_store_entry_size(size_t klen, size_t vlen)
{
    return chunk_size(sizeof(entry) + klen + vlen) + 2 * sizeof(entry *);
}

static inline size_t charge(const entry *e)
{
    return cache_store_entry_size(e->klen, e->vlen);
}

static inline bool expired(const entry *e, int64_t now)
{
    return now >= e->expires;
}

static inline int64_t expiry(int64_t ttl_ms, int64_t now)
{
    if (ttl_ms == 0 || ttl_ms > NEVER - now)
        return NEVER;
    return now + ttl_ms;
}

static inline segment *segment_of(const cache_store *s, uint64_t h)
{
    return &s->segs[(h >> 40) & s->seg_mask];
}

/* The chain an item with hash h lives in (see the top comment on why it is
 * the old table's while its bucket there has not been moved). */
static inline entry **chain_of(segment *g, uint64_t h)
{
    if (g->old && (h & g->old_mask) >= g->migrated)
        return &g->old[h & g->old_mask];
    return &g->buckets[h & g->mask];
}

static inline bool same_key(const unsigned char *a, const unsigned char *b, size_t n)
{
    if (n >= 8 && n <= 16)
        return ((load64(a) ^ load64(b)) | (load64(a + n - 8) ^ load64(b + n - 8))) == 0;
    return n == 0 || memcmp(a, b, n) == 0;
}

static inline entry *find(segment *g, uint64_t h, const void *key, size_t klen)
{
    for (entry *e = *chain_of(g, h); e; e = e->chain)
        if (e->hash == h && e->klen == klen && same_key(e->data, key, klen))
            return e;
    return NULL;
}

static void ring_insert(segment *g, entry *e)
{
    entry *h = g->hand;
    if (!h) {
        e->ring_next = e->ring_prev = e;
        g->hand = e;
        return;
    }
    e->ring_next = h;
    e->ring_prev = h->ring_prev;
    h->ring_prev->ring_next = e;
    h->ring_prev = e;
}

static void ring_remove(segment *g, entry *e)
{
    if (e->ring_next == e) {
        g->hand = g->sweep = NULL;
        return;
    }
    e->ring_prev->ring_next = e->ring_next;
    e->ring_next->ring_prev = e->ring_prev;
    if (g->hand == e)
        g->hand = e->ring_next;
    if (g->sweep == e)
        g->sweep = e->ring_next;
}

static void link_item(segment *g, entry *e)
{
    entry **head = chain_of(g, e->hash);
    e->chain = *head;
    *head = e;
    ring_insert(g, e);
    g->items++;
    g->bytes += charge(e);
}

/* Take e out of the segment; it is freed after the unlock, or by the last
 * get that pinned it. */
static void drop(segment *g, entry *e, trash *t)
{
    entry **pp = chain_of(g, e->hash);
    while (*pp != e)
        pp = &(*pp)->chain;
    *pp = e->chain;
    ring_remove(g, e);
    g->items--;
    g->bytes -= charge(e);
    if (e->pins) {
        e->dead = 1;
    } else {
        e->chain = t->entries;
        t->entries = e;
    }
}

static void empty_trash(const cache_store *s, trash *t)
{
    entry *e = t->entries;
    while (e) {
        entry *next = e->chain;
        s->free_fn(e);
        e = next;
    }
    if (t->table)
        s->free_fn(t->table);
}

/* Evict from the hand until `need` more bytes fit the budget. */
static void make_room(segment *g, size_t need, int64_t now, trash *t)
{
    while (g->bytes + need > g->budget && g->hand) {
        entry *e = g->hand;
        if (expired(e, now)) {
            drop(g, e, t);
            g->expirations++;
        } else if (e->referenced) {
            e->referenced = 0;
            g->hand = e->ring_next;
        } else {
            drop(g, e, t);
            g->evictions++;
        }
    }
}

/* Look at up to n items from the sweep cursor; remove the expired ones. */
static size_t sweep_segment(segment *g, int64_t now, size_t n, trash *t)
{
    size_t removed = 0;
    entry *e = g->sweep ? g->sweep : g->hand;
    for (size_t i = 0; i < n && e; i++) {
        entry *next = e->ring_next;
        if (expired(e, now)) {
            bool last = next == e;
            drop(g, e, t);
            g->expirations++;
            removed++;
            if (last) {
                next = NULL;
            }
        }
        e = next;
    }
    g->sweep = e;
    return removed;
}

static void migrate_some(segment *g, size_t n, trash *t)
{
    if (!g->old)
        return;
    for (size_t i = 0; i < n && g->migrated <= g->old_mask; i++) {
        entry *e = g->old[g->migrated];
        g->old[g->migrated++] = NULL;
        while (e) {
            entry *next = e->chain;
            entry **head = &g->buckets[e->hash & g->mask];
            e->chain = *head;
            *head = e;
            e = next;
        }
    }
    if (g->migrated > g->old_mask) {
        t->table = g->old;
        g->old = NULL;
    }
}

static void *default_alloc(size_t n)
{
    return malloc(n);
}

static void default_free(void *p)
{
    free(p);
}

/* calloc when the allocator is malloc: a big table then comes as fresh
 * zero pages instead of being cleared by hand. */
static void *alloc_zeroed(const cache_store *s, size_t n)
{
    if (s->alloc_fn == default_alloc)
        return calloc(1, n);
    void *p = s->alloc_fn(n);
    if (p)
        memset(p, 0, n);
    return p;
}

/* The size a segment's table should grow to, or 0. */
static inline size_t wanted_buckets(const segment *g)
{
    return !g->old && g->items > g->mask + 1 ? 2 * (g->mask + 1) : 0;
}

/* Allocate the bigger table without the lock, then install it unless
 * another thread did first. A failed allocation leaves the table as it is:
 * chains get longer, nothing breaks, and a later set tries again. */
static void grow(cache_store *s, segment *g, size_t n)
{
    if (n > SIZE_MAX / sizeof(entry *))
        return;
    entry **table = alloc_zeroed(s, n * sizeof(entry *));
    if (!table)
        return;
    /* touch every page now, so that moving chains into it later does not
     * take page faults with the lock held */
    for (size_t i = 0; i < n; i += 4096 / sizeof(entry *))
        ((entry *volatile *)table)[i] = NULL;
    seg_lock(s, g);
    if (wanted_buckets(g) == n) {
        g->old = g->buckets;
        g->old_mask = g->mask;
        g->migrated = 0;
        g->buckets = table;
        g->mask = n - 1;
        table = NULL;
    }
    seg_unlock(s, g);
    if (table)
        s->free_fn(table);
}

/* ------------------------------------------------------------ the store */

static uint64_t random_seed(void)
{
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, GRND_NONBLOCK) != (ssize_t)sizeof seed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = fold_mul((uint64_t)ts.tv_nsec ^ K2, (uint64_t)ts.tv_sec ^ (uintptr_t)&ts);
    }
    return seed;
}

static unsigned floor_pow2(unsigned n)
{
    unsigned p = 1;
    while (p <= n / 2)
        p *= 2;
    return p;
}

int cache_store_new(const cache_store_opts *opts, cache_store **out)
{
    cache_store_opts o = opts ? *opts : (cache_store_opts){0};
    *out = NULL;
    if (!o.alloc_fn != !o.free_fn || o.lock > CACHE_STORE_LOCK_MUTEX_SPIN)
        return -EINVAL;
    if (!o.alloc_fn) {
        o.alloc_fn = default_alloc;
        o.free_fn = default_free;
    }
    if (!o.max_bytes)
        o.max_bytes = CACHE_STORE_DEFAULT_MAX_BYTES;
    if (!o.max_item) {
        o.max_item = CACHE_STORE_DEFAULT_MAX_ITEM;
        if (o.max_item > o.max_bytes / 4)
            o.max_item = o.max_bytes / 4;
    }
    if (o.max_item > UINT32_MAX / 2)
        return wv_fail(-EINVAL, "cache: max_item of %zu bytes is over the 2 GiB limit", o.max_item);
    size_t biggest = cache_store_entry_size(o.max_item, 0);
    unsigned n;
    if (o.segments) {
        n = floor_pow2(o.segments < CACHE_STORE_MAX_SEGMENTS ? o.segments
                                                             : CACHE_STORE_MAX_SEGMENTS);
    } else {
        n = AUTO_SEGMENTS_MAX;
        while (n > 1 && o.max_bytes / n < ITEMS_PER_SEGMENT * biggest)
            n /= 2;
    }
    if (o.max_bytes / n < biggest)
        return wv_fail(-EINVAL,
                       "cache: %zu bytes over %u segments cannot hold an item of %zu bytes",
                       o.max_bytes, n, o.max_item);

    size_t size = sizeof(cache_store) + 63 + n * sizeof(segment);
    char *raw = o.alloc_fn(size);
    if (!raw)
        return -ENOMEM;
    memset(raw, 0, size);
    cache_store *s = (cache_store *)raw;
    uintptr_t at = ((uintptr_t)(s + 1) + 63) & ~(uintptr_t)63;
    s->raw = raw;
    s->segs = (segment *)at;
    s->nsegs = n;
    s->seg_mask = n - 1;
    s->lock = o.lock;
    s->max_item = o.max_item;
    s->seed = random_seed();
    s->alloc_fn = o.alloc_fn;
    s->free_fn = o.free_fn;

    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    if (o.lock == CACHE_STORE_LOCK_MUTEX_SPIN)
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    for (unsigned i = 0; i < n; i++) {
        segment *g = &s->segs[i];
        atomic_init(&g->spin, 0);
        pthread_mutex_init(&g->mutex, &attr);
        g->budget = o.max_bytes / n;
        g->mask = FIRST_BUCKETS - 1;
        g->buckets = alloc_zeroed(s, FIRST_BUCKETS * sizeof(entry *));
        if (!g->buckets) {
            pthread_mutexattr_destroy(&attr);
            s->nsegs = i + 1;
            cache_store_free(s);
            return -ENOMEM;
        }
    }
    pthread_mutexattr_destroy(&attr);
    *out = s;
    return 0;
}

void cache_store_free(cache_store *s)
{
    if (!s)
        return;
    for (unsigned i = 0; i < s->nsegs; i++) {
        segment *g = &s->segs[i];
        entry *e = g->hand;
        for (size_t k = 0; k < g->items; k++) {
            entry *next = e->ring_next;
            s->free_fn(e);
            e = next;
        }
        if (g->buckets)
            s->free_fn(g->buckets);
        if (g->old)
            s->free_fn(g->old);
        pthread_mutex_destroy(&g->mutex);
    }
    s->free_fn(s->raw);
}

/* ------------------------------------------------------------ operations */

int cache_store_get(cache_store *s, const void *key, size_t klen, int64_t now, wv_buf *out)
{
    if (!key && klen)
        return -EINVAL;
    uint64_t h = key_hash(key, klen, s->seed);
    segment *g = segment_of(s, h);
    seg_lock(s, g);
    entry *e = find(g, h, key, klen);
    if (!e) {
        g->misses++;
        seg_unlock(s, g);
        return 0;
    }
    if (expired(e, now)) {
        trash t = {0};
        drop(g, e, &t);
        g->expirations++;
        g->misses++;
        seg_unlock(s, g);
        empty_trash(s, &t);
        return 0;
    }
    if (!e->referenced)
        e->referenced = 1;
    size_t vlen = e->vlen;
    const unsigned char *value = e->data + e->klen;
    if (vlen <= COPY_UNDER_LOCK && vlen <= out->cap - out->n) {
        if (vlen)
            memcpy(out->p + out->n, value, vlen);
        out->n += vlen;
        g->hits++;
        seg_unlock(s, g);
        return 1;
    }

    /* long value, or the buffer must grow: copy without the lock */
    e->pins++;
    seg_unlock(s, g);
    int rc = wv_buf_reserve(out, vlen);
    if (rc == 0) {
        memcpy(out->p + out->n, value, vlen);
        out->n += vlen;
    }
    seg_lock(s, g);
    e->pins--;
    if (rc == 0)
        g->hits++;
    bool gone = e->dead && e->pins == 0;
    seg_unlock(s, g);
    if (gone)
        s->free_fn(e);
    return rc == 0 ? 1 : rc;
}

static int put(cache_store *s, const void *key, size_t klen, const void *value, size_t vlen,
               int64_t ttl_ms, int64_t now, bool only_if_absent)
{
    if (ttl_ms < 0 || (!key && klen) || (!value && vlen))
        return -EINVAL;
    if (klen > s->max_item || vlen > s->max_item - klen)
        return wv_fail(-EMSGSIZE, "cache: an item of %zu + %zu bytes is over the %zu byte limit",
                       klen, vlen, s->max_item);
    entry *e = s->alloc_fn(sizeof(entry) + klen + vlen);
    if (!e)
        return -ENOMEM;
    uint64_t h = key_hash(key, klen, s->seed);
    *e = (entry){
        .hash = h, .expires = expiry(ttl_ms, now), .klen = (uint32_t)klen, .vlen = (uint32_t)vlen};
    if (klen)
        memcpy(e->data, key, klen);
    if (vlen)
        memcpy(e->data + klen, value, vlen);

    segment *g = segment_of(s, h);
    trash t = {0};
    seg_lock(s, g);
    entry *old = find(g, h, key, klen);
    if (old) {
        if (!expired(old, now)) {
            if (only_if_absent) {
                seg_unlock(s, g);
                s->free_fn(e);
                return -EEXIST;
            }
        } else {
            g->expirations++;
        }
        drop(g, old, &t);
    }
    sweep_segment(g, now, SWEEP_PER_SET, &t);
    make_room(g, charge(e), now, &t);
    link_item(g, e);
    migrate_some(g, MIGRATE_PER_SET, &t);
    size_t want = wanted_buckets(g);
    seg_unlock(s, g);
    empty_trash(s, &t);
    if (want)
        grow(s, g, want);
    return 0;
}

int cache_store_set(cache_store *s, const void *key, size_t klen, const void *value, size_t vlen,
                    int64_t ttl_ms, int64_t now)
{
    return put(s, key, klen, value, vlen, ttl_ms, now, false);
}

int cache_store_add(cache_store *s, const void *key, size_t klen, const void *value, size_t vlen,
                    int64_t ttl_ms, int64_t now)
{
    return put(s, key, klen, value, vlen, ttl_ms, now, true);
}

int cache_store_delete(cache_store *s, const void *key, size_t klen, int64_t now)
{
    if (!key && klen)
        return -EINVAL;
    uint64_t h = key_hash(key, klen, s->seed);
    segment *g = segment_of(s, h);
    trash t = {0};
    int found = 0;
    seg_lock(s, g);
    entry *e = find(g, h, key, klen);
    if (e) {
        if (expired(e, now))
            g->expirations++;
        else
            found = 1;
        drop(g, e, &t);
    }
    seg_unlock(s, g);
    empty_trash(s, &t);
    return found;
}

int cache_store_touch(cache_store *s, const void *key, size_t klen, int64_t ttl_ms, int64_t now)
{
    if (ttl_ms < 0 || (!key && klen))
        return -EINVAL;
    uint64_t h = key_hash(key, klen, s->seed);
    segment *g = segment_of(s, h);
    trash t = {0};
    int found = 0;
    seg_lock(s, g);
    entry *e = find(g, h, key, klen);
    if (e && expired(e, now)) {
        drop(g, e, &t);
        g->expirations++;
    } else if (e) {
        e->expires = expiry(ttl_ms, now);
        e->referenced = 1;
        found = 1;
    }
    seg_unlock(s, g);
    empty_trash(s, &t);
    return found;
}

size_t cache_store_sweep(cache_store *s, int64_t now, size_t budget)
{
    size_t removed = 0;
    size_t each = budget / s->nsegs, extra = budget % s->nsegs;
    /* the extra items go to different segments from call to call */
    unsigned first = atomic_fetch_add_explicit(&s->sweep_next, 1, memory_order_relaxed);
    for (unsigned i = 0; i < s->nsegs; i++) {
        size_t n = each + (i < extra);
        if (!n)
            continue;
        segment *g = &s->segs[(first + i) & s->seg_mask];
        trash t = {0};
        seg_lock(s, g);
        removed += sweep_segment(g, now, n, &t);
        seg_unlock(s, g);
        empty_trash(s, &t);
    }
    return removed;
}

void cache_store_stats_get(cache_store *s, cache_store_stats *out)
{
    *out = (cache_store_stats){.max_item = s->max_item, .segments = s->nsegs};
    for (unsigned i = 0; i < s->nsegs; i++) {
        segment *g = &s->segs[i];
        seg_lock(s, g);
        out->hits += g->hits;
        out->misses += g->misses;
        out->evictions += g->evictions;
        out->expirations += g->expirations;
        out->bytes += g->bytes;
        out->items += g->items;
        out->max_bytes += g->budget;
        seg_unlock(s, g);
    }
}

/* ------------------------------------------------------------- checking */

static int check_segment(cache_store *s, unsigned index)
{
    segment *g = &s->segs[index];
    size_t in_tables = 0, bytes = 0, on_ring = 0;
    entry **tables[2] = {g->buckets, g->old};
    size_t sizes[2] = {g->mask + 1, g->old ? g->old_mask + 1 : 0};
    for (int k = 0; k < 2; k++) {
        for (size_t b = 0; b < sizes[k]; b++) {
            for (entry *e = tables[k][b]; e; e = e->chain) {
                in_tables++;
                bytes += charge(e);
                if (segment_of(s, e->hash) != g)
                    return wv_fail(-EUCLEAN, "segment %u holds an item of another", index);
                if (key_hash(e->data, e->klen, s->seed) != e->hash)
                    return wv_fail(-EUCLEAN, "segment %u: an item's hash is wrong", index);
                if (chain_of(g, e->hash) != &tables[k][b])
                    return wv_fail(-EUCLEAN, "segment %u: an item is in the wrong bucket", index);
                if (find(g, e->hash, e->data, e->klen) != e)
                    return wv_fail(-EUCLEAN, "segment %u holds a key twice", index);
                if (e->pins || e->dead)
                    return wv_fail(-EUCLEAN, "segment %u: an item is pinned at rest", index);
            }
        }
    }
    if (g->hand) {
        entry *e = g->hand;
        do {
            if (e->ring_next->ring_prev != e)
                return wv_fail(-EUCLEAN, "segment %u: the ring's links disagree", index);
            on_ring++;
            e = e->ring_next;
        } while (e != g->hand && on_ring <= in_tables);
    }
    if (in_tables != g->items || on_ring != g->items)
        return wv_fail(-EUCLEAN, "segment %u: %zu items counted, %zu in its table, %zu on its ring",
                       index, g->items, in_tables, on_ring);
    if (bytes != g->bytes)
        return wv_fail(-EUCLEAN, "segment %u: %zu bytes counted, its items make %zu", index,
                       g->bytes, bytes);
    if (g->bytes > g->budget)
        return wv_fail(-EUCLEAN, "segment %u: %zu bytes over its budget of %zu", index, g->bytes,
                       g->budget);
    return 0;
}

int cache_store_check(cache_store *s)
{
    for (unsigned i = 0; i < s->nsegs; i++) {
        segment *g = &s->segs[i];
        seg_lock(s, g);
        int rc = check_segment(s, i);
        seg_unlock(s, g);
        if (rc < 0)
            return rc;
    }
    return 0;
}
