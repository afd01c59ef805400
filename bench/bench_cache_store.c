/*
 * bench/bench_cache_store.c: the embedded cache's store (src/cache/store.c)
 * against Python's cachetools.LRUCache, and the measurements behind the
 * store's choices (lock, hash, table growth).
 *
 *   bench_cache_store                      compare 5
 *   bench_cache_store compare [rounds] [script]
 *                                          the BENCH lines: cache.memory_get,
 *                                          cache.memory_set, cache.memory_miss,
 *                                          each against cachetools, alternating
 *                                          (weave, anchor, weave, anchor, ...),
 *                                          every run a fresh process; median of
 *                                          `rounds` (5) each. script defaults to
 *                                          bench/cache/cachetools_get.py beside
 *                                          this file, run by /usr/bin/python3
 *   bench_cache_store get|set|miss [n] [spin|mutex|adaptive] [items]
 *                                          one run: prints value=<ns per operation>
 *                                          (and cpu_ns=, the CPU time per operation);
 *                                          items (default 10000) to see the figure
 *                                          when the store fits the CPU's caches
 *   bench_cache_store locks [n] [rounds]   the lock of a segment, measured
 *   bench_cache_store hash [n]             the key hash, measured
 *   bench_cache_store growth [n]           the longest set while tables grow
 *   bench_cache_store floor [n]            the least a get can cost: the same
 *                                          items, order and copy-out through a
 *                                          bare open-addressing table (the
 *                                          store's hash, no lock, no clock
 *                                          bit, no expiry check, no eviction):
 *                                          prints value=<ns per get>, cpu_ns=
 *
 * The store of every figure: 10,000 items, each a 16-byte key
 * ("key:%012d") and a 100-byte value that names its key, in a store with
 * the default options (64 MiB, 8 segments). A pass visits every key once in
 * a scattered order (the i-th is key (i * 7919) mod 10000), so no key is
 * hot; the timed loop makes n operations in whole passes after one pass of
 * warm-up:
 *
 *   get   cache_store_get of a present key into a wv_buf reset before each
 *         call: the value is copied out, as the cache API will do
 *   set   cache_store_set of a present key with its value, no TTL: a new
 *         item replaces the old, which is freed
 *   miss  cache_store_get of a key that is not there ("miss:%011d")
 *
 * The anchor (bench/cache/cachetools_get.py) does the same with
 * LRUCache(maxsize=10000): `cache[key]`, `cache[key] = value`,
 * `cache.get(key)`. Both check their results after the timed loop. Run
 * the whole binary under `taskset -c 0`: both sides then share CPU 0.
 *
 * Beside each BENCH line, compare prints the medians of the CPU time each
 * side's loop took (cpu_ns=, CLOCK_THREAD_CPUTIME_ID and Python's
 * thread_time_ns): on a machine that other jobs keep busy, the wall clock
 * counts the time a run waited for the CPU, and the two views differ.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include "cache/store.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"

enum { ITEMS = 10000, STRIDE = 7919, KEY_LEN = 16, VALUE_LEN = 100, MAX_ROUNDS = 15 };

#define NOW_MS 1000 /* the store's clock for every call: nothing expires */

static int64_t thread_cpu_ns(void)
{
    return bench_clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/* As bench/lib.sh's bench_fmt: no exponent, 3-4 significant digits. */
static const char *fmt(char *out, size_t size, double x)
{
    double a = x < 0 ? -x : x;
    int decimals = a >= 1000 ? 0 : a >= 10 ? 1 : a >= 0.1 ? 2 : a == 0 ? 0 : 4;
    snprintf(out, size, "%.*f", decimals, x);
    return out;
}

/* ------------------------------------------------------------ the data */

static char keys[ITEMS][KEY_LEN + 1];
static char miss_keys[ITEMS][KEY_LEN + 1];
static char values[ITEMS][VALUE_LEN + 1];
static int walk[ITEMS];    /* the order of a pass */
static int nitems = ITEMS; /* get|set|miss ... ITEMS: fewer, to see what the cache holds */

static void make_data(void)
{
    for (int i = 0; i < nitems; i++) {
        snprintf(keys[i], sizeof keys[i], "key:%012d", i);
        snprintf(miss_keys[i], sizeof miss_keys[i], "miss:%011d", i);
        int n = snprintf(values[i], sizeof values[i], "value of key:%012d|", i);
        memset(values[i] + n, '.', VALUE_LEN - (size_t)n);
        walk[i] = (int)(((long)i * STRIDE) % nitems);
    }
}

static int parse_lock(const char *name, cache_store_lock *out)
{
    if (!name || strcmp(name, "spin") == 0)
        *out = CACHE_STORE_LOCK_SPIN;
    else if (strcmp(name, "mutex") == 0)
        *out = CACHE_STORE_LOCK_MUTEX;
    else if (strcmp(name, "adaptive") == 0)
        *out = CACHE_STORE_LOCK_MUTEX_SPIN;
    else
        return -EINVAL;
    return 0;
}

static const char *lock_names[] = {"spin", "mutex", "adaptive"};

static int filled_store(cache_store_opts o, cache_store **out)
{
    int rc = cache_store_new(&o, out);
    if (rc < 0) {
        fprintf(stderr, "cache_store_new: %s %s\n", strerror(-rc), wv_errmsg());
        return rc;
    }
    for (int i = 0; i < nitems; i++) {
        rc = cache_store_set(*out, keys[i], KEY_LEN, values[i], VALUE_LEN, 0, NOW_MS);
        if (rc < 0) {
            fprintf(stderr, "cache_store_set: %s\n", strerror(-rc));
            cache_store_free(*out);
            return rc;
        }
    }
    return 0;
}

/* Every key holds its own value, and nothing else is there. */
static int check_store(cache_store *s)
{
    wv_buf b = {0};
    int bad = 0;
    for (int i = 0; i < nitems && !bad; i++) {
        b.n = 0;
        bad = cache_store_get(s, keys[i], KEY_LEN, NOW_MS, &b) != 1 || b.n != VALUE_LEN ||
              memcmp(b.p, values[i], VALUE_LEN) != 0;
    }
    wv_buf_free(&b);
    cache_store_stats st;
    cache_store_stats_get(s, &st);
    if (bad || st.items != (uint64_t)nitems || st.evictions != 0 || cache_store_check(s) != 0) {
        fprintf(stderr, "WRONG RESULT: the store lost or changed an item (%" PRIu64 " items)\n",
                st.items);
        return -EIO;
    }
    return 0;
}

/* -------------------------------------------------- get / set / miss */

typedef enum { OP_GET, OP_SET, OP_MISS } op_kind;

/* n operations of one kind (whole passes): ns per operation in *ns, and
 * CPU ns per operation in *cpu (what the thread ran, not time it waited
 * for the CPU: a second view, for a machine that is not quiet). */
static int run_ops(op_kind op, long n, cache_store_lock lock, double *ns, double *cpu)
{
    cache_store *s;
    int rc = filled_store((cache_store_opts){.lock = lock}, &s);
    if (rc < 0)
        return rc;
    long passes = n / nitems > 0 ? n / nitems : 1;
    wv_buf b = {0};
    wv_buf_reserve(&b, 256);
    long found = 0, copied = 0, failed = 0;
    int64_t t0 = 0, c0 = 0;
    for (long p = -1; p < passes; p++) { /* pass -1: the warm-up */
        if (p == 0) {
            found = copied = failed = 0;
            t0 = now_ns();
            c0 = thread_cpu_ns();
        }
        switch (op) {
        case OP_GET:
            for (int j = 0; j < nitems; j++) {
                wv_buf_reset(&b);
                found += cache_store_get(s, keys[walk[j]], KEY_LEN, NOW_MS, &b);
                copied += (long)b.n;
            }
            break;
        case OP_SET:
            for (int j = 0; j < nitems; j++) {
                int w = walk[j];
                failed +=
                    cache_store_set(s, keys[w], KEY_LEN, values[w], VALUE_LEN, 0, NOW_MS) != 0;
            }
            break;
        case OP_MISS:
            for (int j = 0; j < nitems; j++) {
                wv_buf_reset(&b);
                found += cache_store_get(s, miss_keys[walk[j]], KEY_LEN, NOW_MS, &b);
            }
            break;
        }
    }
    int64_t elapsed = now_ns() - t0, cpu_elapsed = thread_cpu_ns() - c0;
    long ops = passes * nitems;
    *ns = (double)elapsed / (double)ops;
    *cpu = (double)cpu_elapsed / (double)ops;

    rc = check_store(s);
    bool ok = op == OP_GET   ? found == ops && copied == ops * VALUE_LEN
              : op == OP_SET ? failed == 0
                             : found == 0;
    if (!ok) {
        fprintf(stderr, "WRONG RESULT: %ld found, %ld bytes copied, %ld failed of %ld\n", found,
                copied, failed, ops);
        rc = -EIO;
    }
    wv_buf_free(&b);
    cache_store_free(s);
    return rc;
}

static int figure(op_kind op, int argc, char **argv)
{
    long n = argc > 2 ? atol(argv[2]) : 10000000;
    if (argc > 4 && (atoi(argv[4]) < 1 || atoi(argv[4]) > ITEMS)) {
        fprintf(stderr, "items: 1 to %d\n", ITEMS);
        return 2;
    }
    if (argc > 4) {
        nitems = atoi(argv[4]);
        make_data();
    }
    cache_store_lock lock;
    if (parse_lock(argc > 3 ? argv[3] : NULL, &lock) < 0) {
        fprintf(stderr, "lock: spin, mutex or adaptive\n");
        return 2;
    }
    double ns, cpu;
    if (run_ops(op, n, lock, &ns, &cpu) < 0)
        return 1;
    char v[32], c[32];
    fprintf(stderr, "%s: %ld operations, %s ns each, %s ns of CPU (%s lock)\n", argv[1], n,
            fmt(v, sizeof v, ns), fmt(c, sizeof c, cpu), lock_names[lock]);
    printf("cpu_ns=%.3f\nvalue=%.3f\n", cpu, ns);
    return 0;
}

/* ------------------------------------------------------------- compare */

/* The number after `name` at the start of the last line that has it. */
static bool line_value(const char *out, const char *name, double *v)
{
    bool found = false;
    size_t n = strlen(name);
    for (const char *line = out; line; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp(line, name, n) == 0) {
            *v = strtod(line + n, NULL);
            found = true;
        }
    }
    return found;
}

/* Run argv as a child (its stderr shown only with BENCH_VERBOSE=1); its
 * last `value=` line in *value, its `cpu_ns=` line in *cpu (0 if none). */
static int run_child(char *const argv[], double *value, double *cpu)
{
    int p[2];
    if (pipe(p) != 0)
        return -errno;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        return -errno;
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        const char *verbose = getenv("BENCH_VERBOSE");
        if (!verbose || strcmp(verbose, "1") != 0) {
            int null = open("/dev/null", O_WRONLY);
            if (null >= 0)
                dup2(null, 2);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    close(p[1]);
    char out[4096];
    size_t used = 0;
    ssize_t r;
    while ((r = read(p[0], out + used, sizeof out - 1 - used)) > 0)
        used += (size_t)r;
    out[used] = '\0';
    close(p[0]);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !line_value(out, "value=", value)) {
        printf("# %s %s %s: FAILED (exit status %d; BENCH_VERBOSE=1 shows its stderr)\n", argv[0],
               argv[1], argv[2], WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        return -EIO;
    }
    if (!line_value(out, "cpu_ns=", cpu))
        *cpu = 0;
    return 0;
}

static void header(int rounds, const char *script)
{
    struct utsname u;
    uname(&u);
    char when[64];
    time_t t = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", localtime(&t));
    cpu_set_t set;
    int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
    printf("# cache suite (bench_cache_store): %s %s, %s, %d rounds, alternating weave and "
           "anchor, fresh process each run, %d CPU(s) allowed (run under taskset -c 0 to pin "
           "both sides to CPU 0)\n",
           u.nodename, u.machine, when, rounds, cpus);
    printf("# store: default options (64 MiB, 8 segments, spinlocks), %d items, %d-byte keys, "
           "%d-byte values, keys visited in a scattered order (stride %d), value copied into a "
           "wv_buf\n",
           ITEMS, KEY_LEN, VALUE_LEN, STRIDE);
    printf("# anchor: /usr/bin/python3 %s (cachetools.LRUCache(maxsize=%d)): cache[key], "
           "cache[key] = value, cache.get(key)\n",
           script, ITEMS);
}

static int compare(int argc, char **argv)
{
    int rounds = argc > 2 ? atoi(argv[2]) : 5;
    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = 5;
    char script[4096];
    if (argc > 3) {
        snprintf(script, sizeof script, "%s", argv[3]);
    } else {
        /* bench/cache/ beside this source file */
        snprintf(script, sizeof script, "%s", __FILE__);
        char *slash = strrchr(script, '/');
        size_t dir = slash ? (size_t)(slash - script + 1) : 0;
        snprintf(script + dir, sizeof script - dir, "cache/cachetools_get.py");
    }
    if (access(script, R_OK) != 0) {
        fprintf(stderr, "no anchor script %s (give its path: compare ROUNDS SCRIPT)\n", script);
        return 2;
    }
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len < 0)
        return 1;
    self[len] = '\0';
    header(rounds, script);

    static const struct {
        const char *name, *arg;
        const char *weave_n, *anchor_n;
    } figures[] = {
        {"cache.memory_get", "get", "20000000", "1000000"},
        {"cache.memory_set", "set", "5000000", "500000"},
        {"cache.memory_miss", "miss", "20000000", "2000000"},
    };
    int failed = 0;
    for (size_t f = 0; f < sizeof figures / sizeof figures[0]; f++) {
        double a[MAX_ROUNDS], b[MAX_ROUNDS], ca[MAX_ROUNDS], cb[MAX_ROUNDS];
        int ok = 1;
        for (int r = 0; r < rounds && ok; r++) {
            char *weave[] = {self, (char *)figures[f].arg, (char *)figures[f].weave_n, NULL};
            char *anchor[] = {"/usr/bin/python3", script, (char *)figures[f].arg,
                              (char *)figures[f].anchor_n, NULL};
            ok = run_child(weave, &a[r], &ca[r]) == 0 && run_child(anchor, &b[r], &cb[r]) == 0;
        }
        if (!ok) {
            printf("# %s: FAILED\n", figures[f].name);
            failed = 1;
            continue;
        }
        char x[32], y[32], z[32];
        printf("# %s samples (ns): weave", figures[f].name);
        for (int r = 0; r < rounds; r++)
            printf(" %s", fmt(x, sizeof x, a[r]));
        printf(" | cachetools");
        for (int r = 0; r < rounds; r++)
            printf(" %s", fmt(x, sizeof x, b[r]));
        printf("\n");
        double ma = median(a, rounds), mb = median(b, rounds);
        double mca = median(ca, rounds), mcb = median(cb, rounds);
        printf("# %s CPU time (ns per operation, medians): weave %s, cachetools %s, ratio %s\n",
               figures[f].name, fmt(x, sizeof x, mca), fmt(y, sizeof y, mcb),
               fmt(z, sizeof z, mca > 0 ? mcb / mca : 0));
        printf("BENCH %s value=%s unit=ns anchor=cachetools anchor_value=%s ratio=%s\n",
               figures[f].name, fmt(x, sizeof x, ma), fmt(y, sizeof y, mb),
               fmt(z, sizeof z, mb / ma));
        fflush(stdout);
    }
    return failed;
}

/* --------------------------------------------------------------- locks */

typedef struct mixer {
    cache_store *s;
    int cpu;
    long ops;
    unsigned seed;
    atomic_int *ready;
    double ns, cpu_ns;
    long bad;
} mixer;

/* 9 gets to 1 set over the 10,000 keys, from a different start per thread. */
static void *mix_thread(void *arg)
{
    mixer *m = arg;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(m->cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    atomic_fetch_add(m->ready, 1);
    while (atomic_load(m->ready) < 2) {
    }
    wv_buf b = {0};
    wv_buf_reserve(&b, 256);
    int j = (int)(rand_r(&m->seed) % ITEMS);
    int64_t t0 = now_ns(), c0 = thread_cpu_ns();
    for (long i = 0; i < m->ops; i++) {
        int w = walk[j];
        if (++j == ITEMS)
            j = 0;
        if (i % 10 == 9) {
            m->bad += cache_store_set(m->s, keys[w], KEY_LEN, values[w], VALUE_LEN, 0, NOW_MS) != 0;
        } else {
            wv_buf_reset(&b);
            m->bad += cache_store_get(m->s, keys[w], KEY_LEN, NOW_MS, &b) != 1;
        }
    }
    m->ns = (double)(now_ns() - t0) / (double)m->ops;
    m->cpu_ns = (double)(thread_cpu_ns() - c0) / (double)m->ops;
    wv_buf_free(&b);
    return NULL;
}

/* Two threads on CPUs 0 and 1 at once; the mean ns per operation, of the
 * wall clock and of each thread's CPU time. */
static int run_mix(cache_store_lock lock, unsigned segments, long ops, double *ns, double *cpu)
{
    cache_store *s;
    int rc = filled_store((cache_store_opts){.lock = lock, .segments = segments}, &s);
    if (rc < 0)
        return rc;
    atomic_int ready = 0;
    mixer m[2];
    pthread_t t[2];
    for (int i = 0; i < 2; i++) {
        m[i] = (mixer){.s = s, .cpu = i, .ops = ops, .seed = 77u + (unsigned)i, .ready = &ready};
        pthread_create(&t[i], NULL, mix_thread, &m[i]);
    }
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    rc = m[0].bad + m[1].bad == 0 ? check_store(s) : -EIO;
    *ns = (m[0].ns + m[1].ns) / 2;
    *cpu = (m[0].cpu_ns + m[1].cpu_ns) / 2;
    cache_store_free(s);
    return rc;
}

static int locks(int argc, char **argv)
{
    long n = argc > 2 ? atol(argv[2]) : 5000000;
    int rounds = argc > 3 ? atoi(argv[3]) : 3;
    if (rounds < 1 || rounds > MAX_ROUNDS)
        rounds = 3;
    enum { KINDS = 3 };
    double one[KINDS][MAX_ROUNDS], two[KINDS][MAX_ROUNDS], two_cpu[KINDS][MAX_ROUNDS];
    double hot[KINDS][MAX_ROUNDS], hot_cpu[KINDS][MAX_ROUNDS];
    printf("# the lock of a segment: ns per operation, median of %d rounds, kinds alternating\n"
           "#   1 thread: get hit (as cache.memory_get), wall clock\n"
           "#   2 threads on CPUs 0 and 1 at once, 9 gets : 1 set over the same 10,000 keys,\n"
           "#   with 8 segments (the default for 64 MiB) and with 1 (every call contends):\n"
           "#   wall clock / CPU time of the thread (spinning counts, time descheduled does not)\n",
           rounds);
    for (int r = 0; r < rounds; r++) {
        for (int k = 0; k < KINDS; k++) {
            double cpu;
            if (run_ops(OP_GET, n, (cache_store_lock)k, &one[k][r], &cpu) < 0 ||
                run_mix((cache_store_lock)k, 0, n / 2, &two[k][r], &two_cpu[k][r]) < 0 ||
                run_mix((cache_store_lock)k, 1, n / 4, &hot[k][r], &hot_cpu[k][r]) < 0)
                return 1;
        }
    }
    printf("# %-9s %10s %22s %22s\n", "lock", "1 thread", "2 threads, 8 segments",
           "2 threads, 1 segment");
    for (int k = 0; k < KINDS; k++) {
        char a[32], b[32], c[32], d[32], e[32];
        printf("# %-9s %10s %11s / %-8s %11s / %-8s\n", lock_names[k],
               fmt(a, sizeof a, median(one[k], rounds)), fmt(b, sizeof b, median(two[k], rounds)),
               fmt(c, sizeof c, median(two_cpu[k], rounds)),
               fmt(d, sizeof d, median(hot[k], rounds)),
               fmt(e, sizeof e, median(hot_cpu[k], rounds)));
    }
    return 0;
}

/* ---------------------------------------------------------------- hash */

static uint64_t fnv1a(const void *key, size_t n)
{
    const unsigned char *p = key;
    uint64_t h = UINT64_C(0xcbf29ce484222325);
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= UINT64_C(0x100000001b3);
    }
    return h;
}

static uint64_t ours(const void *key, size_t n)
{
    return cache_store_hash(key, n, UINT64_C(0x9e3779b97f4a7c15));
}

/* How the hashes of n sequential keys fill 2^bits buckets, taken from the
 * low bits (the table) or bits 40.. (the segment). */
static void spread(const char *name, uint64_t (*h)(const void *, size_t), int bits, int shift)
{
    size_t nb = (size_t)1 << bits;
    unsigned *count = calloc(nb, sizeof *count);
    if (!count)
        return;
    char key[32];
    size_t n = nb; /* load factor 1 */
    for (size_t i = 0; i < n; i++) {
        int len = snprintf(key, sizeof key, "key:%012zu", i);
        count[(h(key, (size_t)len) >> shift) & (nb - 1)]++;
    }
    size_t empty = 0;
    unsigned longest = 0;
    for (size_t i = 0; i < nb; i++) {
        empty += count[i] == 0;
        longest = count[i] > longest ? count[i] : longest;
    }
    printf("#   %-8s %zu sequential keys in %zu buckets (bits %d..%d): %.1f%% empty "
           "(random: 36.8%%), longest chain %u\n",
           name, n, nb, shift, shift + bits - 1, 100.0 * (double)empty / (double)nb, longest);
    free(count);
}

static int hashes(int argc, char **argv)
{
    long n = argc > 2 ? atol(argv[2]) : 20000000;
    struct {
        const char *name;
        uint64_t (*fn)(const void *, size_t);
    } fns[] = {{"ours", ours}, {"fnv-1a", fnv1a}};
    printf("# the key hash: ns per hash, median of 5, over the 10,000 16-byte keys and 64-byte "
           "keys\n");
    static char long_keys[ITEMS][65];
    for (int i = 0; i < ITEMS; i++)
        snprintf(long_keys[i], sizeof long_keys[i], "tenant:%08d/session:%036d/x", i, i * 7);
    for (int f = 0; f < 2; f++) {
        double t16[5], t64[5];
        uint64_t sink = 0;
        for (int r = 0; r < 5; r++) {
            long passes = n / ITEMS;
            int64_t t0 = now_ns();
            for (long p = 0; p < passes; p++)
                for (int k = 0; k < ITEMS; k++)
                    sink += fns[f].fn(keys[walk[k]], KEY_LEN);
            t16[r] = (double)(now_ns() - t0) / (double)(passes * ITEMS);
            t0 = now_ns();
            for (long p = 0; p < passes / 4; p++)
                for (int k = 0; k < ITEMS; k++)
                    sink += fns[f].fn(long_keys[walk[k]], 64);
            t64[r] = (double)(now_ns() - t0) / (double)(passes / 4 * ITEMS);
        }
        char a[32], b[32];
        printf("#   %-8s 16 bytes %s ns, 64 bytes %s ns (sink %" PRIx64 ")\n", fns[f].name,
               fmt(a, sizeof a, median(t16, 5)), fmt(b, sizeof b, median(t64, 5)), sink & 0xf);
    }
    printf("# spread:\n");
    for (int f = 0; f < 2; f++) {
        spread(fns[f].name, fns[f].fn, 16, 0);
        spread(fns[f].name, fns[f].fn, 6, 40);
    }
    return 0;
}

/* -------------------------------------------------------------- growth */

static int growth(int argc, char **argv)
{
    long n = argc > 2 ? atol(argv[2]) : 2000000;
    cache_store *s;
    cache_store_opts o = {.max_bytes = (size_t)1 << 30, .segments = 1};
    if (cache_store_new(&o, &s) < 0)
        return 1;
    char key[32];
    int64_t longest = 0, total = 0;
    long longest_at = 0, over_10us = 0;
    for (long i = 0; i < n; i++) {
        int len = snprintf(key, sizeof key, "key:%012ld", i);
        int64_t t0 = thread_cpu_ns();
        if (cache_store_set(s, key, (size_t)len, values[i % ITEMS], VALUE_LEN, 0, NOW_MS) < 0)
            return 1;
        int64_t d = thread_cpu_ns() - t0;
        total += d;
        over_10us += d > 10000;
        if (d > longest) {
            longest = d;
            longest_at = i;
        }
    }
    int rc = cache_store_check(s);
    cache_store_free(s);
    printf("# growth: %ld sets into one segment, its table doubling from 16 buckets to %ld: "
           "CPU time per set (with the clock's own cost) mean %.0f ns, longest %.1f us (set %ld), "
           "%ld over 10 us; the longest are the sets that allocate and pre-fault a new table, "
           "which they do without the lock%s\n",
           n, 1L << (64 - __builtin_clzl((unsigned long)n)), (double)total / (double)n,
           (double)longest / 1000, longest_at, over_10us, rc == 0 ? "" : "; CHECK FAILED");
    return rc == 0 ? 0 : 1;
}

/* --------------------------------------------------------------- floor */

/* One item of the floor table: allocated on its own, as the store's are. */
typedef struct floor_item {
    uint64_t hash;
    char key[KEY_LEN];
    uint32_t vlen;
    char value[];
} floor_item;

/* What no store that finds an item by its key and copies the value out can
 * beat: the store's hash, one probe sequence, a key compare and the copy,
 * nothing else. */
static int floor_gets(int argc, char **argv)
{
    long n = argc > 2 ? atol(argv[2]) : 10000000;
    size_t cap = 1;
    while (cap < (size_t)nitems * 2)
        cap <<= 1;
    floor_item **table = calloc(cap, sizeof *table);
    if (!table)
        return 1;
    for (int i = 0; i < nitems; i++) {
        floor_item *it = malloc(sizeof *it + VALUE_LEN);
        if (!it)
            return 1;
        it->hash = ours(keys[i], KEY_LEN);
        memcpy(it->key, keys[i], KEY_LEN);
        it->vlen = VALUE_LEN;
        memcpy(it->value, values[i], VALUE_LEN);
        size_t j = it->hash & (cap - 1);
        while (table[j])
            j = (j + 1) & (cap - 1);
        table[j] = it;
    }
    long passes = n / nitems > 0 ? n / nitems : 1, found = 0, copied = 0;
    wv_buf b = {0};
    wv_buf_reserve(&b, 256);
    int64_t t0 = 0, c0 = 0;
    for (long p = -1; p < passes; p++) { /* pass -1: the warm-up */
        if (p == 0) {
            found = copied = 0;
            t0 = now_ns();
            c0 = thread_cpu_ns();
        }
        for (int k = 0; k < nitems; k++) {
            const char *key = keys[walk[k]];
            uint64_t h = ours(key, KEY_LEN);
            wv_buf_reset(&b);
            for (size_t j = h & (cap - 1); table[j]; j = (j + 1) & (cap - 1)) {
                const floor_item *it = table[j];
                if (it->hash == h && memcmp(it->key, key, KEY_LEN) == 0) {
                    wv_buf_append(&b, it->value, it->vlen);
                    found++;
                    break;
                }
            }
            copied += (long)b.n;
        }
    }
    int64_t elapsed = now_ns() - t0, cpu_elapsed = thread_cpu_ns() - c0;
    long ops = passes * nitems;
    wv_buf_free(&b);
    for (size_t j = 0; j < cap; j++)
        free(table[j]);
    free(table);
    if (found != ops || copied != ops * VALUE_LEN) {
        fprintf(stderr, "WRONG RESULT: %ld found, %ld bytes copied of %ld\n", found, copied, ops);
        return 1;
    }
    char v[32], c[32];
    fprintf(stderr, "floor: %ld gets, %s ns each, %s ns of CPU\n", ops,
            fmt(v, sizeof v, (double)elapsed / (double)ops),
            fmt(c, sizeof c, (double)cpu_elapsed / (double)ops));
    printf("cpu_ns=%.3f\nvalue=%.3f\n", (double)cpu_elapsed / (double)ops,
           (double)elapsed / (double)ops);
    return 0;
}

int main(int argc, char **argv)
{
    make_data();
    const char *what = argc > 1 ? argv[1] : "compare";
    if (strcmp(what, "get") == 0)
        return figure(OP_GET, argc, argv);
    if (strcmp(what, "set") == 0)
        return figure(OP_SET, argc, argv);
    if (strcmp(what, "miss") == 0)
        return figure(OP_MISS, argc, argv);
    if (strcmp(what, "compare") == 0)
        return compare(argc, argv);
    if (strcmp(what, "locks") == 0)
        return locks(argc, argv);
    if (strcmp(what, "hash") == 0)
        return hashes(argc, argv);
    if (strcmp(what, "growth") == 0)
        return growth(argc, argv);
    if (strcmp(what, "floor") == 0)
        return floor_gets(argc, argv);
    fprintf(stderr, "usage: bench_cache_store [compare [rounds] [script] | get|set|miss [n] "
                    "[spin|mutex|adaptive] | locks [n] | hash [n] | growth [n] | floor [n]]\n");
    return 2;
}
