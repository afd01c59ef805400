/*
 * src/rt/cpus.c: how many CPUs this process may use, for the default number
 * of shards: the CPUs its affinity mask allows, capped by the CPU quota of
 * its cgroup (a container's CPU limit: Kubernetes' resources.limits.cpu,
 * docker run --cpus), rounded up. A pod limited to 2 CPUs on a 64-CPU node
 * runs 2 shards, not 64.
 *
 * cgroup v2: cpu.max ("max 100000", or "<quota> <period>") in the
 * process's cgroup and each of its ancestors (the tightest wins); cgroup
 * v1: cpu.cfs_quota_us (-1: none) and cpu.cfs_period_us in the cpu
 * controller's hierarchy, likewise. What cannot be read means no limit.
 */
#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rt/rt_internal.h"

/* The first line of path, NUL-terminated, into buf: 0 or -errno. */
static int read_line(const char *path, char *buf, size_t n)
{
    FILE *f = fopen(path, "re");
    if (!f)
        return -errno;
    int rc = fgets(buf, (int)n, f) ? 0 : -EIO;
    fclose(f);
    buf[strcspn(buf, "\n")] = 0;
    return rc;
}

/* CPUs allowed by quota/period, rounded up; 0 for none. */
static int from_quota(long long quota, long long period)
{
    if (quota <= 0 || period <= 0)
        return 0;
    long long n = (quota + period - 1) / period;
    return n > INT_MAX ? INT_MAX : (int)n;
}

static int v2_limit(const char *dir)
{
    char path[PATH_MAX], line[128], q[64];
    long long period;
    if (snprintf(path, sizeof path, "%s/cpu.max", dir) >= (int)sizeof path ||
        read_line(path, line, sizeof line) < 0 || sscanf(line, "%63s %lld", q, &period) != 2 ||
        strcmp(q, "max") == 0)
        return 0;
    return from_quota(atoll(q), period);
}

static int v1_limit(const char *dir)
{
    char path[PATH_MAX], line[64];
    if (snprintf(path, sizeof path, "%s/cpu.cfs_quota_us", dir) >= (int)sizeof path ||
        read_line(path, line, sizeof line) < 0)
        return 0;
    long long quota = atoll(line);
    if (snprintf(path, sizeof path, "%s/cpu.cfs_period_us", dir) >= (int)sizeof path ||
        read_line(path, line, sizeof line) < 0)
        return 0;
    return from_quota(quota, atoll(line));
}

/* The tightest limit of dir = base + cg and its ancestors up to base. */
static int walk(const char *base, const char *cg, int (*limit)(const char *dir))
{
    char dir[PATH_MAX];
    if (snprintf(dir, sizeof dir, "%s%s", base, strcmp(cg, "/") == 0 ? "" : cg) >= (int)sizeof dir)
        return 0;
    size_t stop = strlen(base);
    int best = 0;
    for (;;) {
        int n = limit(dir);
        if (n > 0 && (best == 0 || n < best))
            best = n;
        char *slash = strrchr(dir, '/');
        if (!slash || (size_t)(slash - dir) < stop)
            break;
        *slash = 0;
    }
    return best;
}

int wv__cgroup_cpu_limit(const char *sysfs, const char *proc_cgroup)
{
    FILE *f = fopen(proc_cgroup, "re");
    if (!f)
        return 0;
    char line[PATH_MAX + 64], base[PATH_MAX];
    int best = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        /* hierarchy-id:controllers:path */
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = 0;
        const char *controllers = c1 + 1, *path = c2 + 1;
        int n = 0;
        if (strncmp(line, "0:", 2) == 0 && !*controllers) {
            n = walk(sysfs, path, v2_limit); /* the unified hierarchy */
        } else {
            /* v1: "cpu", "cpu,cpuacct", ... mounted under a directory named like the list */
            char list[128];
            snprintf(list, sizeof list, ",%s,", controllers);
            if (!strstr(list, ",cpu,"))
                continue;
            if (snprintf(base, sizeof base, "%s/%s", sysfs, controllers) >= (int)sizeof base)
                continue;
            n = walk(base, path, v1_limit);
            if (n == 0 && snprintf(base, sizeof base, "%s/cpu", sysfs) < (int)sizeof base)
                n = walk(base, path, v1_limit);
        }
        if (n > 0 && (best == 0 || n < best))
            best = n;
    }
    fclose(f);
    return best;
}

int wv__cpu_count(void)
{
    int n = 0;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0)
        n = CPU_COUNT(&set);
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    int limit = wv__cgroup_cpu_limit("/sys/fs/cgroup", "/proc/self/cgroup");
    return limit > 0 && limit < n ? limit : n;
}
