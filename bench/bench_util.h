/*
 * Helpers the C benchmarks share (header-only: each bench_*.c is its own
 * program): clocks, the median of a round's samples, and the closing load
 * line bench/README.md describes (how much CPU other processes took while
 * the benchmark ran, so a reader knows how far to trust absolute figures).
 */
#ifndef WEAVE_BENCH_UTIL_H
#define WEAVE_BENCH_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

static inline int64_t bench_clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t now_ns(void)
{
    return bench_clock_ns(CLOCK_MONOTONIC);
}

static inline int bench_compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The median of v[0..n) (v is left as it was); 0 for n = 0. */
static inline double median(const double *v, int n)
{
    if (n <= 0)
        return 0;
    double *tmp = malloc(sizeof *tmp * (size_t)n);
    if (!tmp)
        return v[0];
    memcpy(tmp, v, sizeof *tmp * (size_t)n);
    qsort(tmp, (size_t)n, sizeof *tmp, bench_compare_doubles);
    double m = n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
    free(tmp);
    return m;
}

/* CPU seconds the whole machine spent busy (from /proc/stat), and ours. */
static inline double machine_busy_seconds(void)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return 0;
    int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                     &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (got != 8)
        return 0;
    /* user nice system [idle iowait] irq softirq steal */
    return (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / (double)sysconf(_SC_CLK_TCK);
}

static inline double own_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* CPU seconds (user + system, all threads) process pid has used; -1 when
 * it cannot be read. */
static inline double proc_cpu_seconds(pid_t pid)
{
    char path[64], line[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *p = strrchr(line, ')'); /* the command name may hold spaces */
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* A client benchmark's CPU, and its server's (a process it does not own),
 * at one moment. */
typedef struct cpu_mark {
    int64_t at;
    double self, server;
} cpu_mark;

/* server_pid <= 0: no server to read (its lines print -1) */
static inline cpu_mark cpu_mark_now(pid_t server_pid)
{
    return (cpu_mark){.at = now_ns(),
                      .self = own_cpu_seconds(),
                      .server = server_pid > 0 ? proc_cpu_seconds(server_pid) : -1};
}

/* The CPU lines between two marks, for a suite's '#' lines: server_cpu=
 * and client_cpu= in % of one core, server_us= and client_us= in CPU µs per
 * operation at `rate` operations per second. */
static inline void print_cpu_lines(cpu_mark a, cpu_mark b, double rate)
{
    double wall = (double)(b.at - a.at) / 1e9;
    if (wall <= 0 || rate <= 0)
        return;
    double server = a.server >= 0 && b.server >= 0 ? b.server - a.server : -1;
    double self = b.self - a.self;
    printf("server_cpu=%.0f\nclient_cpu=%.0f\n", server >= 0 ? 100 * server / wall : -1,
           100 * self / wall);
    printf("server_us=%.3f\nclient_us=%.3f\n", server >= 0 ? server * 1e6 / (rate * wall) : -1,
           self * 1e6 / (rate * wall));
}

/* The closing line of bench/README.md: what others took meanwhile, since
 * t0 (now_ns), busy0 (machine_busy_seconds) and own0 (own_cpu_seconds). */
static inline void print_load(int64_t t0, double busy0, double own0)
{
    double wall = (double)(now_ns() - t0) / 1e9;
    double ours = own_cpu_seconds() - own0;
    double others = machine_busy_seconds() - busy0 - ours;
    if (others < 0)
        others = 0;
    printf("# load: %.0f s wall; this run used %.1f CPU-s, other processes %.1f CPU-s (%.0f%% of "
           "a core)\n",
           wall, ours, others, 100 * others / wall);
    if (others / wall >= 0.2)
        printf("# warning: the machine was busy during this run: trust the ratios, not the "
               "absolute figures\n");
}

#endif
