/*
 * bench/bench_rt.c: the runtime's micro-benchmarks (`make bench-rt`).
 *
 * `bench_rt <figure> [n]` measures one figure and prints one line
 * `value=<number>` on stdout, in the figure's unit (the table below); every
 * human-readable detail goes to stderr. bench/run_rt.sh runs each figure
 * several times, alternating with its anchor, and prints the BENCH lines
 * (bench/README.md). A figure that cannot be measured, or whose result is
 * wrong (a fiber that did not run, a timer fired twice), prints why on
 * stderr and exits 1 without a value line.
 *
 * Every figure except `swapcontext`, `switch_floor` and `eventfd_floor` runs inside
 * wv_main() with one shard (two for `shard_post`), so the process can be
 * pinned with taskset.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <weave/rt.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

/* The runtime's register switch (src/rt/switch_*.S, declared in
 * src/rt/rt_internal.h, whose other names clash with this file's):
 * switch_floor calls it directly. */
void wv__switch(void **save, void *next);

typedef struct figure {
    const char *name;
    const char *unit;
    long default_n;
    int shards;         /* 0: runs outside the runtime */
    int (*run)(long n); /* 0, or a negative errno after printing why */
    const char *what;
} figure;

static const figure *current; /* the figure being measured */
static long arg_n;
static double result; /* the figure's value, in its unit */
static bool reported; /* a failure has been printed */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void note(const char *fmt, ...) WV_PRINTF(1, 2);
static void note(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench_rt %s: ", current->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* Report a failed call and pass its error on. */
static int failed(const char *what, int rc)
{
    reported = true;
    note("FAILED: %s: %s (%d)", what, strerror(rc < 0 ? -rc : rc), rc);
    return rc < 0 ? rc : -EIO;
}

/* Report a wrong result (the runtime misbehaved). */
static int wrong(const char *fmt, ...) WV_PRINTF(1, 2);
static int wrong(const char *fmt, ...)
{
    va_list ap;
    reported = true;
    fprintf(stderr, "bench_rt %s: WRONG RESULT: ", current->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -EPROTO;
}

/* ------------------------------------------------------------- switch */

/*
 * Two fibers take turns with wv_yield. Each one writes its id into `turn`
 * before yielding and expects to find the other's id when it resumes, so a
 * yield that did not switch (or switched to someone else) is counted.
 */
typedef struct pingpong {
    long yields; /* per fiber */
    int turn;
    long misses;
} pingpong;

static int yield_loop(pingpong *p, int me)
{
    for (long i = 0; i < p->yields; i++) {
        p->turn = me;
        int rc = wv_yield();
        if (rc < 0)
            return failed("wv_yield", rc);
        if (p->turn == me)
            p->misses++;
    }
    return 0;
}

static int yield_partner(void *arg)
{
    return yield_loop(arg, 2);
}

/* One ping-pong of 2 * yields switches; returns its wall time in ns. */
static int64_t yield_pingpong(pingpong *p)
{
    wv_group *g = wv_group_new();
    if (!g)
        return failed("wv_group_new", -ENOMEM);
    int rc = wv_group_spawn(g, yield_partner, p, NULL);
    if (rc < 0) {
        wv_group_free(g);
        return failed("wv_group_spawn", rc);
    }
    int64_t t0 = now_ns();
    rc = yield_loop(p, 1);
    p->turn = 1; /* the partner's last resume then finds the right id */
    int jrc = wv_group_join(g);
    int64_t t1 = now_ns();
    wv_group_free(g);
    if (rc < 0)
        return rc;
    if (jrc < 0)
        return failed("wv_group_join", jrc);
    return t1 - t0;
}

static int bench_switch(long n)
{
    pingpong warm = {.yields = 10000};
    int64_t ns = yield_pingpong(&warm);
    if (ns < 0)
        return (int)ns;
    pingpong p = {.yields = n / 2 > 0 ? n / 2 : 1};
    ns = yield_pingpong(&p);
    if (ns < 0)
        return (int)ns;
    if (warm.misses || p.misses)
        return wrong("%ld of %ld yields resumed without the other fiber having run",
                     warm.misses + p.misses, 2 * (warm.yields + p.yields));
    long switches = 2 * p.yields;
    result = (double)ns / (double)switches;
    note("%ld switches in %.1f ms: %.2f ns per switch", switches, ns / 1e6, result);
    return 0;
}

/* -------------------------------------------------------- swapcontext */

static ucontext_t uc_main, uc_partner;
static long uc_resumes;

static void uc_partner_body(void)
{
    for (;;) {
        uc_resumes++;
        swapcontext(&uc_partner, &uc_main);
    }
}

/* The anchor of `switch`: the same ping-pong between two glibc contexts. */
static int bench_swapcontext(long n)
{
    static char stack[64 * 1024];
    if (getcontext(&uc_partner) < 0)
        return failed("getcontext", -errno);
    uc_partner.uc_stack.ss_sp = stack;
    uc_partner.uc_stack.ss_size = sizeof stack;
    uc_partner.uc_link = &uc_main;
    makecontext(&uc_partner, uc_partner_body, 0);

    for (int i = 0; i < 10000; i++)
        swapcontext(&uc_main, &uc_partner);
    long rounds = n / 2 > 0 ? n / 2 : 1;
    uc_resumes = 0;
    int64_t t0 = now_ns();
    for (long i = 0; i < rounds; i++)
        swapcontext(&uc_main, &uc_partner);
    int64_t ns = now_ns() - t0;
    if (uc_resumes != rounds)
        return wrong("partner context resumed %ld times, expected %ld", uc_resumes, rounds);
    long switches = 2 * rounds;
    result = (double)ns / (double)switches;
    note("%ld switches in %.1f ms: %.2f ns per switch", switches, ns / 1e6, result);
    return 0;
}

/* -------------------------------------------------------- switch_floor */

#if defined(__x86_64__)
static void *bare_main_sp, *bare_partner_sp;
static long bare_resumes;

static void bare_partner(void)
{
    for (;;) {
        bare_resumes++;
        wv__switch(&bare_partner_sp, bare_main_sp);
    }
}

/* The floor under `switch`: the runtime's own register switch
 * (wv__switch) ping-ponging between two stacks, with no run queue, no
 * scheduler and no fiber state: what a yield costs at the least. */
static int bench_switch_floor(long n)
{
    static _Alignas(16) char stack[64 * 1024];
    void **sp = (void **)(((uintptr_t)(stack + sizeof stack)) & ~(uintptr_t)15);
    *--sp = NULL;                 /* where bare_partner would return: never */
    *--sp = (void *)bare_partner; /* popped by wv__switch's ret */
    for (int i = 0; i < 6; i++)
        *--sp = NULL; /* rbp rbx r12 r13 r14 r15 */
    bare_partner_sp = sp;
    for (int i = 0; i < 10000; i++)
        wv__switch(&bare_main_sp, bare_partner_sp);
    long rounds = n / 2 > 0 ? n / 2 : 1;
    bare_resumes = 0;
    int64_t t0 = now_ns();
    for (long i = 0; i < rounds; i++)
        wv__switch(&bare_main_sp, bare_partner_sp);
    int64_t ns = now_ns() - t0;
    if (bare_resumes != rounds)
        return wrong("the partner stack resumed %ld times, expected %ld", bare_resumes, rounds);
    long switches = 2 * rounds;
    result = (double)ns / (double)switches;
    note("%ld bare switches in %.1f ms: %.2f ns per switch", switches, ns / 1e6, result);
    return 0;
}
#else
static int bench_switch_floor(long n)
{
    (void)n;
    return wrong("switch_floor is written for x86-64 only");
}
#endif

/* -------------------------------------------------------------- spawn */

enum { SPAWN_BATCH = 1000 };

static int count_run(void *arg)
{
    (*(long *)arg)++;
    return 0;
}

/* A group spawns SPAWN_BATCH trivial children, then joins them. */
static int spawn_batch(long *ran)
{
    wv_group *g = wv_group_new();
    if (!g)
        return failed("wv_group_new", -ENOMEM);
    for (int i = 0; i < SPAWN_BATCH; i++) {
        int rc = wv_group_spawn(g, count_run, ran, NULL);
        if (rc < 0) {
            wv_group_free(g);
            return failed("wv_group_spawn", rc);
        }
    }
    int rc = wv_group_join(g);
    wv_group_free(g);
    return rc < 0 ? failed("wv_group_join", rc) : 0;
}

static int bench_spawn(long n)
{
    long ran = 0;
    int rc = spawn_batch(&ran); /* fills the stack pool */
    if (rc < 0)
        return rc;
    long batches = n / SPAWN_BATCH > 0 ? n / SPAWN_BATCH : 1;
    ran = 0;
    int64_t t0 = now_ns();
    for (long b = 0; b < batches && rc == 0; b++)
        rc = spawn_batch(&ran);
    int64_t ns = now_ns() - t0;
    if (rc < 0)
        return rc;
    long fibers = batches * SPAWN_BATCH;
    if (ran != fibers)
        return wrong("%ld of %ld spawned fibers ran before their join returned", ran, fibers);
    result = (double)ns / (double)fibers;
    note("%ld fibers (batches of %d: spawn all, then join) in %.1f ms: %.1f ns per fiber", fibers,
         SPAWN_BATCH, ns / 1e6, result);
    return 0;
}

/* ---------------------------------------------------------- fiber_rss */

static long rss_bytes(void)
{
    long size = 0, resident = -1;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &size, &resident) != 2)
            resident = -1;
        fclose(f);
    }
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

static long count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long lines = 0;
    int c;
    while ((c = getc(f)) != EOF)
        lines += c == '\n';
    fclose(f);
    return lines;
}

static long read_long(const char *path)
{
    long v = -1;
    FILE *f = fopen(path, "r");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static long parked, unparked_early;

static int sleep_long(void *arg)
{
    parked++;
    int rc = wv_sleep_ms(3600 * 1000);
    if (rc != -ECANCELED)
        unparked_early++;
    return 0;
}

static int bench_fiber_rss(long n)
{
    long rss0 = rss_bytes(), maps0 = count_lines("/proc/self/maps");
    wv_group *g = wv_group_new();
    if (!g)
        return failed("wv_group_new", -ENOMEM);
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        int rc = wv_group_spawn(g, sleep_long, NULL, NULL);
        if (rc < 0) {
            reported = true;
            note("FAILED: wv_group_spawn of fiber %ld of %ld: %s (%d); mappings now %ld "
                 "(vm.max_map_count %ld), RSS grew %ld KiB",
                 i + 1, n, strerror(-rc), rc, count_lines("/proc/self/maps"),
                 read_long("/proc/sys/vm/max_map_count"), (rss_bytes() - rss0) / 1024);
            wv_group_cancel(g);
            wv_group_free(g);
            return rc;
        }
    }
    while (parked < n) {
        int rc = wv_sleep_ms(1);
        if (rc < 0) {
            wv_group_free(g);
            return failed("wv_sleep_ms while the fibers park", rc);
        }
    }
    int64_t t1 = now_ns();
    long rss1 = rss_bytes(), maps1 = count_lines("/proc/self/maps");

    wv_group_cancel(g);
    int rc = wv_group_join(g);
    int64_t t2 = now_ns();
    wv_group_free(g);
    if (rc < 0 && rc != -ECANCELED)
        return failed("wv_group_join after cancel", rc);
    if (unparked_early)
        return wrong("%ld of %ld sleeping fibers woke without being cancelled", unparked_early, n);
    if (rss0 < 0 || rss1 < 0)
        return failed("reading /proc/self/statm", -EIO);
    result = (double)(rss1 - rss0) / (double)n;
    note("%ld fibers parked in wv_sleep_ms: RSS %ld -> %ld KiB, %.0f bytes per fiber; "
         "mappings %ld -> %ld; spawn+park %.1f ms, cancel+join %.1f ms",
         n, rss0 / 1024, rss1 / 1024, result, maps0, maps1, (t1 - t0) / 1e6, (t2 - t1) / 1e6);
    return 0;
}

/* -------------------------------------------------------------- timer */

static wv_timer *timers;
static uint32_t *timer_offset; /* deadline - base, ns */
static uint8_t *timer_hits;
static long timers_n, timers_fired, timers_early;
static int64_t timers_base, timers_done_at;

static void timer_fired(wv_timer *t)
{
    long i = (long)(t - timers);
    timer_hits[i]++;
    timers_fired++;
    /* sample the "not before its deadline" promise without a clock read each */
    if ((i & 4095) == 0 && wv_now() < timers_base + timer_offset[i])
        timers_early++;
    if (timers_fired == timers_n)
        timers_done_at = wv_now();
}

/* Arm every timer at base + its offset, wait until all have fired; ns. */
static int64_t timer_pass(long n)
{
    memset(timers, 0, (size_t)n * sizeof *timers);
    memset(timer_hits, 0, (size_t)n);
    timers_n = n;
    timers_fired = timers_early = 0;
    timers_base = wv_now();
    for (long i = 0; i < n; i++) {
        int rc = wv_timer_start(&timers[i], timers_base + timer_offset[i], timer_fired);
        if (rc < 0)
            return failed("wv_timer_start", rc);
    }
    int64_t armed = wv_now();
    while (timers_fired < n) {
        int rc = wv_sleep_ms(1);
        if (rc < 0)
            return failed("wv_sleep_ms while the timers fire", rc);
    }
    long missing = 0, twice = 0;
    for (long i = 0; i < n; i++) {
        missing += timer_hits[i] == 0;
        twice += timer_hits[i] > 1;
    }
    if (missing || twice || timers_early)
        return wrong("%ld timers never fired, %ld fired more than once, %ld (of %ld sampled) "
                     "fired before their deadline",
                     missing, twice, timers_early, (n + 4095) / 4096);
    note("pass: %ld timers armed in %.1f ms, all fired %.1f ms later", n,
         (armed - timers_base) / 1e6, (timers_done_at - armed) / 1e6);
    return timers_done_at - timers_base;
}

static int bench_timer(long n)
{
    timers = calloc((size_t)n, sizeof *timers);
    timer_offset = calloc((size_t)n, sizeof *timer_offset);
    timer_hits = calloc((size_t)n, 1);
    if (!timers || !timer_offset || !timer_hits)
        return failed("calloc", -ENOMEM);
    uint64_t x = 0x9e3779b97f4a7c15u; /* xorshift64: the same deadlines every run */
    for (long i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        timer_offset[i] = (uint32_t)(x % 1000000); /* within the next millisecond */
    }
    int64_t cold = timer_pass(n); /* sizes the shard's timer heap, faults its pages in */
    int64_t ns = cold < 0 ? cold : timer_pass(n);
    free(timers);
    free(timer_offset);
    free(timer_hits);
    if (ns < 0)
        return (int)ns;
    result = (double)ns / (double)n;
    note("%ld timers inserted and fired in %.1f ms: %.1f ns per timer (first, cold pass: "
         "%.1f ns)",
         n, ns / 1e6, result, (double)cold / (double)n);
    return 0;
}

/* --------------------------------------------------------------- chan */

/*
 * Two fibers ping-pong one integer over two channels of capacity 1, the
 * analogue of two asyncio.Queue(maxsize=1) (a send does not wait for the
 * receiver, as put() does not). One round trip = send + recv each way.
 */
typedef struct chan_pair {
    wv_chan *ping, *pong;
} chan_pair;

static int chan_echo(void *arg)
{
    chan_pair *p = arg;
    long v;
    int rc;
    while ((rc = wv_chan_recv(p->ping, &v)) == 0) {
        rc = wv_chan_send(p->pong, &v);
        if (rc < 0)
            return failed("wv_chan_send (echo)", rc);
    }
    return rc == -EPIPE ? 0 : failed("wv_chan_recv (echo)", rc);
}

static int chan_round_trips(chan_pair *p, long from, long n)
{
    for (long i = from; i < from + n; i++) {
        long v = -1;
        int rc = wv_chan_send(p->ping, &i);
        if (rc < 0)
            return failed("wv_chan_send", rc);
        rc = wv_chan_recv(p->pong, &v);
        if (rc < 0)
            return failed("wv_chan_recv", rc);
        if (v != i)
            return wrong("sent %ld, got %ld back", i, v);
    }
    return 0;
}

static int bench_chan(long n)
{
    chan_pair p = {wv_chan_new(sizeof(long), 1), wv_chan_new(sizeof(long), 1)};
    wv_group *g = wv_group_new();
    int rc = -ENOMEM;
    int64_t ns = 0;
    if (!p.ping || !p.pong || !g) {
        failed("wv_chan_new / wv_group_new", rc);
        goto out;
    }
    rc = wv_group_spawn(g, chan_echo, &p, NULL);
    if (rc < 0) {
        failed("wv_group_spawn", rc);
        goto out;
    }
    rc = chan_round_trips(&p, 0, 1000);
    if (rc == 0) {
        int64_t t0 = now_ns();
        rc = chan_round_trips(&p, 1000, n);
        ns = now_ns() - t0;
    }
    wv_chan_close(p.ping);
    int jrc = wv_group_join(g);
    if (rc == 0 && jrc < 0)
        rc = failed("wv_group_join", jrc);
out:
    wv_group_free(g);
    if (p.ping)
        wv_chan_free(p.ping);
    if (p.pong)
        wv_chan_free(p.pong);
    if (rc < 0)
        return rc;
    result = (double)ns / (double)n;
    note("%ld round trips (capacity-1 channels) in %.1f ms: %.1f ns per round trip", n, ns / 1e6,
         result);
    return 0;
}

/* --------------------------------------------------------- shard_post */

static cpu_set_t allowed_cpus; /* the process's affinity at start (taskset) */

/* Pin the calling thread to the nth CPU the process may use; the CPU, or a
 * negative errno. */
static int pin_self_to(int nth)
{
    int want = nth % CPU_COUNT(&allowed_cpus), cpu = -1;
    for (int c = 0; c < CPU_SETSIZE && want >= 0; c++)
        if (CPU_ISSET(c, &allowed_cpus) && want-- == 0)
            cpu = c;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    return rc ? failed("pthread_setaffinity_np", -rc) : cpu;
}

/* Shard i goes to the i-th CPU, so that the two shards of `shard_post` sit
 * on two different cores whatever the scheduler prefers. */
static int pin_shard(void *arg)
{
    int cpu = pin_self_to(wv_shard_id());
    if (cpu < 0)
        return cpu;
    note("shard %d pinned to CPU %d", wv_shard_id(), cpu);
    return 0;
}

static int add_one_on_shard_1(void *arg)
{
    if (wv_shard_id() != 1)
        return -EXDEV;
    return *(int *)arg + 1;
}

static int shard_calls(long from, long n)
{
    for (long i = from; i < from + n; i++) {
        int x = (int)(i & 0xffff);
        int rc = wv_shard_call(1, add_one_on_shard_1, &x);
        if (rc == -EXDEV)
            return wrong("wv_shard_call(1, ...) ran its function on shard %d", wv_shard_id());
        if (rc < 0)
            return failed("wv_shard_call", rc);
        if (rc != x + 1)
            return wrong("wv_shard_call returned %d, the function returned %d", rc, x + 1);
    }
    return 0;
}

static int bench_shard_post(long n)
{
    if (wv_shard_count() != 2)
        return wrong("asked for 2 shards, wv_shard_count() says %d", wv_shard_count());
    int rc = wv_shard_each(pin_shard, NULL);
    if (rc < 0)
        return failed("wv_shard_each(pin)", rc);
    rc = shard_calls(0, 1000);
    if (rc < 0)
        return rc;
    int64_t t0 = now_ns();
    rc = shard_calls(1000, n);
    int64_t ns = now_ns() - t0;
    if (rc < 0)
        return rc;
    result = (double)ns / (double)n / 1000.0;
    note("%ld wv_shard_call round trips shard 0 -> 1 in %.1f ms: %.2f us each", n, ns / 1e6,
         result);
    return 0;
}

/*
 * Not an anchor but the floor under `shard_post`: two plain threads, pinned
 * like the two shards, ping-pong over two eventfds with blocking reads. Each
 * round trip is two cross-core wake-ups, which is what a wv_shard_call to an
 * idle shard costs at least; on virtual machines this dominates.
 */
static int efd_ping, efd_pong;
static long efd_rounds;

static void *efd_echo(void *arg)
{
    pin_self_to(1);
    uint64_t v;
    for (long i = 0; i < efd_rounds; i++)
        if (read(efd_ping, &v, sizeof v) != sizeof v || write(efd_pong, &v, sizeof v) != sizeof v)
            break;
    return NULL;
}

static int efd_round_trips(long n)
{
    for (long i = 0; i < n; i++) {
        uint64_t v = 1;
        if (write(efd_ping, &v, sizeof v) != sizeof v || read(efd_pong, &v, sizeof v) != sizeof v)
            return failed("eventfd write/read", -errno);
    }
    return 0;
}

static int bench_eventfd_floor(long n)
{
    if (CPU_COUNT(&allowed_cpus) < 2)
        note("only one CPU allowed: both threads share it");
    efd_ping = eventfd(0, EFD_CLOEXEC);
    efd_pong = eventfd(0, EFD_CLOEXEC);
    if (efd_ping < 0 || efd_pong < 0)
        return failed("eventfd", -errno);
    efd_rounds = n + 1000;
    int cpu = pin_self_to(0);
    if (cpu < 0)
        return cpu;
    pthread_t t;
    int rc = pthread_create(&t, NULL, efd_echo, NULL);
    if (rc != 0)
        return failed("pthread_create", -rc);
    rc = efd_round_trips(1000);
    int64_t t0 = now_ns();
    if (rc == 0)
        rc = efd_round_trips(n);
    int64_t ns = now_ns() - t0;
    if (rc < 0)
        return rc; /* the echo thread may be blocked for good: the process exits */
    pthread_join(t, NULL);
    close(efd_ping);
    close(efd_pong);
    result = (double)ns / (double)n / 1000.0;
    note("%ld eventfd round trips between two threads in %.1f ms: %.2f us each", n, ns / 1e6,
         result);
    return 0;
}

/* ------------------------------------------------------------- driver */

static const figure figures[] = {
    {"switch", "ns", 10000000, 1, bench_switch, "wv_yield ping-pong of two fibers, per switch"},
    {"swapcontext", "ns", 2000000, 0, bench_swapcontext,
     "glibc swapcontext ping-pong (anchor of switch), per switch"},
    {"switch_floor", "ns", 20000000, 0, bench_switch_floor,
     "wv__switch ping-pong between two stacks, nothing else (the floor under switch)"},
    {"spawn", "ns", 1000000, 1, bench_spawn,
     "group spawn + run + join of a trivial fiber, pooled stacks, per fiber"},
    {"fiber_rss", "bytes", 100000, 1, bench_fiber_rss,
     "RSS per fiber parked in wv_sleep_ms (n fibers)"},
    {"timer", "ns", 1000000, 1, bench_timer,
     "wv_timer insert + fire, random deadlines within 1 ms, per timer"},
    {"chan", "ns", 1000000, 1, bench_chan,
     "ping-pong over two capacity-1 channels, per round trip"},
    {"shard_post", "us", 20000, 2, bench_shard_post,
     "wv_shard_call round trip shard 0 -> 1 (trivial fn)"},
    {"eventfd_floor", "us", 20000, 0, bench_eventfd_floor,
     "blocking eventfd ping-pong of two pinned threads (the floor under shard_post)"},
};

static int run_in_fiber(void *arg)
{
    return current->run(arg_n);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_rt <figure> [n]\nprints value=<number> in the figure's unit\n");
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        fprintf(stderr, "  %-13s %-5s n=%-9ld %s\n", figures[i].name, figures[i].unit,
                figures[i].default_n, figures[i].what);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        usage();
        return 2;
    }
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        if (strcmp(argv[1], figures[i].name) == 0)
            current = &figures[i];
    if (!current) {
        fprintf(stderr, "bench_rt: no figure named '%s'\n", argv[1]);
        usage();
        return 2;
    }
    arg_n = current->default_n;
    if (argc == 3) {
        char *end;
        arg_n = strtol(argv[2], &end, 10);
        if (*end || arg_n <= 0) {
            fprintf(stderr, "bench_rt: n must be a positive integer, not '%s'\n", argv[2]);
            return 2;
        }
    }
    if (sched_getaffinity(0, sizeof allowed_cpus, &allowed_cpus) < 0) {
        CPU_ZERO(&allowed_cpus);
        CPU_SET(0, &allowed_cpus);
    }

    int rc;
    if (current->shards == 0) {
        rc = current->run(arg_n);
    } else {
        wv_main_opts opts = {
            .shards = current->shards,
            .offload_threads = 1,
            .no_signal_handling = true,
        };
        rc = wv_main(&opts, run_in_fiber, NULL);
        if (rc < 0 && !reported)
            note("FAILED: wv_main returned %s (%d)", strerror(-rc), rc);
    }
    if (rc < 0)
        return 1;
    printf("value=%.3f\n", result);
    return 0;
}
