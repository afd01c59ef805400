/*
 * bench/bench_metrics.c: the metrics micro-benchmarks (`make bench-metrics`).
 *
 *   bench_metrics                 everything below, with the default sizes
 *   bench_metrics counter [n]     metrics.counter and metrics.resolve_counter
 *   bench_metrics scrape [n]      metrics.scrape_weave (n label sets, 10000)
 *
 * metrics.counter (ns): wv_main with 2 shards, each pinned to its own CPU
 * (the i-th CPU of the process's affinity set). On both shards at once a
 * fiber increments one counter series, resolved beforehand (the same series
 * on both shards: the common case of a hot route), n times. Anchor
 * `plain_add`: the same loop shape doing `*counter += 1` on a volatile
 * per-shard counter on its own cache line. A and B alternate, 3 rounds each
 * (7 with BENCH_LONG=1); the figure is the median ns per increment (the mean
 * of the two shards' loops) and ratio = plain_add / weave (> 1 would mean
 * weave is faster; the target is >= 0.33, i.e. at most 3x a plain add). The
 * final count is checked.
 *
 * metrics.resolve_counter (ns, no anchor): the same, but every iteration
 * first resolves the label values ("GET", route, "200", one of 16 routes in
 * turn, all seen before) to the series with wv_metric_series.
 *
 * metrics.scrape_weave (ms, anchor none here; bench/run_metrics.sh compares
 * it with Python prometheus_client): the time of one wv_metrics_render of a
 * registry holding one counter family
 *     http_requests_total{method="GET",route="/items/<i>",status="200"}
 * with n label sets (i = 0..n-1, series i counted (i % 100) + 1 times,
 * spread over 2 shards), in text format 0.0.4, into a fresh wv_buf each
 * time. Median of every render (3 rounds of 10); the output is checked
 * (line count, total). Its last line is `value=<ms>` for bench/lib.sh.
 *
 * Every other line starts with '#'.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <weave/metrics.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { SHARDS = 2, ROUTES = 16, MAX_ROUNDS = 15, SCRAPE_REPS = 10 };

static int rounds = 3;
static cpu_set_t allowed_cpus;
static int pinned_cpu[SHARDS];

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* As bench/lib.sh's bench_fmt: no exponent, 3-4 significant digits. */
static const char *fmt(char *out, size_t size, double x)
{
    double a = x < 0 ? -x : x;
    int decimals = a >= 1000 ? 0 : a >= 10 ? 1 : a >= 0.1 ? 2 : a == 0 ? 0 : 4;
    snprintf(out, size, "%.*f", decimals, x);
    return out;
}

static void bench_line(const char *name, double value, const char *unit, const char *anchor,
                       double anchor_value)
{
    char v[32], av[32], r[32];
    double ratio = anchor_value > 0 && value > 0 ? anchor_value / value : 0;
    printf("BENCH %s value=%s unit=%s anchor=%s anchor_value=%s ratio=%s\n", name,
           fmt(v, sizeof v, value), unit, anchor, fmt(av, sizeof av, anchor_value),
           fmt(r, sizeof r, ratio));
}

static void samples_line(const char *what, const double *v, int n, const char *unit)
{
    printf("# %s samples (%s):", what, unit);
    for (int i = 0; i < n; i++) {
        char s[32];
        printf(" %s", fmt(s, sizeof s, v[i]));
    }
    printf("\n");
}

/* Pin the calling shard's thread to the shard-th allowed CPU. */
static int pin_shard(void *arg)
{
    int id = wv_shard_id(), want = id % CPU_COUNT(&allowed_cpus), cpu = -1;
    for (int c = 0; c < CPU_SETSIZE && want >= 0; c++)
        if (CPU_ISSET(c, &allowed_cpus) && want-- == 0)
            cpu = c;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof one, &one);
    if (rc)
        return -rc;
    pinned_cpu[id] = cpu;
    return 0;
}

/* ------------------------------------------------------------ counter */

typedef struct counter_bench {
    long n;
    wv_metric *family;
    wv_series *series;
    const char *const *routes[ROUTES];
    int64_t ns[SHARDS];
    int err;
} counter_bench;

static struct {
    volatile uint64_t v;
    char pad[56];
} __attribute__((aligned(64))) plain[SHARDS];

static int weave_loop(void *arg)
{
    counter_bench *b = arg;
    wv_series *s = b->series;
    long n = b->n;
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++)
        wv_counter_inc(s);
    b->ns[wv_shard_id()] = now_ns() - t0;
    return 0;
}

static int plain_loop(void *arg)
{
    counter_bench *b = arg;
    volatile uint64_t *c = &plain[wv_shard_id()].v;
    long n = b->n;
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++)
        *c += 1;
    b->ns[wv_shard_id()] = now_ns() - t0;
    return 0;
}

static int resolve_loop(void *arg)
{
    counter_bench *b = arg;
    wv_metric *m = b->family;
    long n = b->n;
    int64_t t0 = now_ns();
    for (long i = 0; i < n; i++) {
        wv_series *s;
        if (wv_metric_series(m, b->routes[i & (ROUTES - 1)], &s) < 0) {
            b->err = -EIO;
            break;
        }
        wv_counter_inc(s);
    }
    b->ns[wv_shard_id()] = now_ns() - t0;
    return 0;
}

/* Run loop on both shards at once; ns per iteration (the shards' mean). */
static double run_both(counter_bench *b, wv_fn *loop, long n)
{
    b->n = n;
    int rc = wv_shard_each(loop, b);
    if (rc < 0 || b->err) {
        fprintf(stderr, "bench_metrics: a shard loop failed: %s\n", wv_strerror(rc ? rc : b->err));
        return -1;
    }
    return ((double)b->ns[0] + (double)b->ns[1]) / 2 / (double)n;
}

static long counter_n = 20000000;

static int counter_main(void *arg)
{
    int rc = wv_shard_each(pin_shard, NULL);
    if (rc < 0) {
        fprintf(stderr, "bench_metrics: pinning failed: %s\n", wv_strerror(rc));
        return rc;
    }
    wv_metrics *r = wv_metrics_new();
    counter_bench b = {0};
    if (!r || wv_metric_register(r,
                                 &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                                                   .name = "http_requests_total",
                                                   .help = "HTTP requests.",
                                                   .labels = "method,route,status"},
                                 &b.family) < 0) {
        fprintf(stderr, "bench_metrics: registration failed: %s\n", wv_errmsg());
        return -EIO;
    }
    static char route_text[ROUTES][32];
    static const char *route_values[ROUTES][3];
    for (int i = 0; i < ROUTES; i++) {
        snprintf(route_text[i], sizeof route_text[i], "/api/v1/things%d/{id}", i);
        route_values[i][0] = "GET";
        route_values[i][1] = route_text[i];
        route_values[i][2] = "200";
        b.routes[i] = route_values[i];
        wv_series *s;
        if (wv_metric_series(b.family, b.routes[i], &s) < 0)
            return -EIO;
        if (i == 0)
            b.series = s;
    }

    long n = counter_n, warm = n / 10 > 0 ? n / 10 : 1;
    if (run_both(&b, weave_loop, warm) < 0 || run_both(&b, plain_loop, warm) < 0 ||
        run_both(&b, resolve_loop, warm) < 0)
        return -EIO;
    double weave[MAX_ROUNDS], anchor[MAX_ROUNDS], resolve[MAX_ROUNDS];
    for (int i = 0; i < rounds; i++) {
        if ((weave[i] = run_both(&b, weave_loop, n)) < 0 ||
            (anchor[i] = run_both(&b, plain_loop, n)) < 0 ||
            (resolve[i] = run_both(&b, resolve_loop, n / 4)) < 0)
            return -EIO;
    }

    /* every increment counted: the hot series got the weave loops and its
     * share of the resolve loops (route 0 is every 16th iteration) */
    long resolve_n = n / 4;
    double want = (double)SHARDS *
                  ((double)warm + (double)n * rounds + (double)((warm + ROUTES - 1) / ROUTES) +
                   (double)((resolve_n + ROUTES - 1) / ROUTES) * rounds);
    double got = wv_series_value(b.series);
    if (got != want) {
        fprintf(stderr, "bench_metrics: WRONG RESULT: the counter reads %.0f, want %.0f\n", got,
                want);
        return -EPROTO;
    }

    printf("# metrics.counter: 2 shards on CPUs %d,%d; %ld increments per shard per round, "
           "%d rounds, weave and plain_add alternating\n",
           pinned_cpu[0], pinned_cpu[1], n, rounds);
    samples_line("metrics.counter weave", weave, rounds, "ns");
    samples_line("metrics.counter plain_add", anchor, rounds, "ns");
    samples_line("metrics.resolve_counter", resolve, rounds, "ns");
    double w = median(weave, rounds), a = median(anchor, rounds);
    bench_line("metrics.counter", w, "ns", "plain_add", a);
    bench_line("metrics.resolve_counter", median(resolve, rounds), "ns", "none", 0);
    printf("# metrics.counter is %.2fx a plain add (target: at most 3x)\n", w / a);
    wv_metrics_free(r);
    return 0;
}

/* ------------------------------------------------------------ scrape */

typedef struct scrape_bench {
    wv_metrics *r;
    wv_metric *family;
    long n;
    int err;
} scrape_bench;

/* Make every label set on both shards; series i counted (i % 100) + 1
 * times on shard i % 2. */
static int fill_shard(void *arg)
{
    scrape_bench *b = arg;
    char route[32];
    for (long i = 0; i < b->n; i++) {
        snprintf(route, sizeof route, "/items/%ld", i);
        wv_series *s;
        if (wv_metric_series(b->family, (const char *const[]){"GET", route, "200"}, &s) < 0) {
            b->err = -EIO;
            return 0;
        }
        if (i % SHARDS == wv_shard_id())
            for (long k = 0; k <= i % 100; k++)
                wv_counter_inc(s);
    }
    return 0;
}

static long scrape_n = 10000;
static double scrape_result = -1;

static int scrape_main(void *arg)
{
    scrape_bench b = {.r = wv_metrics_new(), .n = scrape_n};
    if (!b.r || wv_metric_register(b.r,
                                   &(wv_metric_opts){.type = WV_METRIC_COUNTER,
                                                     .name = "http_requests_total",
                                                     .help = "HTTP requests.",
                                                     .labels = "method,route,status",
                                                     .max_series = (size_t)scrape_n},
                                   &b.family) < 0) {
        fprintf(stderr, "bench_metrics: registration failed: %s\n", wv_errmsg());
        return -EIO;
    }
    int rc = wv_shard_each(fill_shard, &b);
    if (rc < 0 || b.err) {
        fprintf(stderr, "bench_metrics: filling the registry failed: %s\n", wv_errmsg());
        return -EIO;
    }

    /* check one render: a line per series plus HELP and TYPE, and the total */
    wv_buf out = {0};
    if (wv_metrics_render(b.r, WV_METRICS_PROMETHEUS, &out) < 0 || wv_buf_append(&out, "", 1) < 0)
        return -ENOMEM;
    long lines = 0;
    double total = 0, want = 0;
    for (const char *p = out.p; *p;) {
        const char *nl = strchr(p, '\n'), *end = nl ? nl : p + strlen(p);
        const char *space = memrchr(p, ' ', (size_t)(end - p));
        if (*p != '#' && space)
            total += strtod(space + 1, NULL);
        lines++;
        p = nl ? nl + 1 : end;
    }
    for (long i = 0; i < b.n; i++)
        want += (double)(i % 100 + 1);
    size_t bytes = out.n - 1;
    wv_buf_free(&out);
    if (lines != b.n + 2 || total != want) {
        fprintf(stderr,
                "bench_metrics: WRONG RESULT: %ld lines (want %ld), total %.0f (want %.0f)\n",
                lines, b.n + 2, total, want);
        return -EPROTO;
    }

    double ms[MAX_ROUNDS * SCRAPE_REPS], om_ms[MAX_ROUNDS];
    int samples = 0;
    for (int round = 0; round < rounds; round++) {
        for (int rep = 0; rep < SCRAPE_REPS; rep++) {
            wv_buf fresh = {0};
            int64_t t0 = now_ns();
            rc = wv_metrics_render(b.r, WV_METRICS_PROMETHEUS, &fresh);
            int64_t t1 = now_ns();
            wv_buf_free(&fresh);
            if (rc < 0)
                return rc;
            ms[samples++] = (double)(t1 - t0) / 1e6;
        }
        wv_buf fresh = {0};
        int64_t t0 = now_ns();
        rc = wv_metrics_render(b.r, WV_METRICS_OPENMETRICS, &fresh);
        om_ms[round] = (double)(now_ns() - t0) / 1e6;
        wv_buf_free(&fresh);
        if (rc < 0)
            return rc;
    }
    scrape_result = median(ms, samples);
    printf("# metrics.scrape_weave: %ld series (%zu bytes of text 0.0.4), %d renders into a "
           "fresh buffer; OpenMetrics median %.3f ms\n",
           b.n, bytes, samples, median(om_ms, rounds));
    bench_line("metrics.scrape_weave", scrape_result, "ms", "none", 0);
    wv_metrics_free(b.r);
    return 0;
}

/* ------------------------------------------------------------ main */

static int usage(void)
{
    fprintf(stderr, "usage: bench_metrics [counter [n] | scrape [n]]\n"
                    "  no argument: every figure with the default sizes\n");
    return 2;
}

static bool parse_n(const char *s, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v <= 0)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    bool counter = argc == 1, scrape = argc == 1;
    if (argc > 3)
        return usage();
    if (argc >= 2) {
        if (strcmp(argv[1], "counter") == 0)
            counter = true;
        else if (strcmp(argv[1], "scrape") == 0)
            scrape = true;
        else
            return usage();
        if (argc == 3 && !parse_n(argv[2], counter ? &counter_n : &scrape_n))
            return usage();
    }
    const char *env = getenv("BENCH_ROUNDS");
    if (env && atoi(env) > 0)
        rounds = atoi(env) < MAX_ROUNDS ? atoi(env) : MAX_ROUNDS;
    else if (getenv("BENCH_LONG") && strcmp(getenv("BENCH_LONG"), "1") == 0)
        rounds = 7;
    if (sched_getaffinity(0, sizeof allowed_cpus, &allowed_cpus) < 0) {
        CPU_ZERO(&allowed_cpus);
        CPU_SET(0, &allowed_cpus);
    }
    wv_main_opts opts = {.shards = SHARDS, .offload_threads = 1, .no_signal_handling = true};
    if (counter) {
        int rc = wv_main(&opts, counter_main, NULL);
        if (rc < 0) {
            fprintf(stderr, "bench_metrics counter: FAILED (%s)\n", wv_strerror(rc));
            return 1;
        }
    }
    if (scrape) {
        int rc = wv_main(&opts, scrape_main, NULL);
        if (rc < 0) {
            fprintf(stderr, "bench_metrics scrape: FAILED (%s)\n", wv_strerror(rc));
            return 1;
        }
        if (argc >= 2)
            printf("value=%.3f\n", scrape_result);
    }
    return 0;
}
