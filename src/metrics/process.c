/*
 * The process collector (wv_metrics_add_process_collector): CPU time,
 * memory, file descriptors and start time of this process, under the names
 * and with the meaning of Python prometheus_client's ProcessCollector, read
 * from /proc at every scrape. The reads are of procfs, which never waits on
 * a disk, so a scrape on a shard's thread stays short.
 */
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "metrics/metrics_internal.h"

struct process_collector {
    wv_series *cpu, *resident, *virtual, *open_fds, *max_fds, *start_time;
    double ticks;   /* clock ticks per second */
    double page;    /* bytes per page */
    double started; /* seconds since the epoch; < 0 when unknown */
};

void process_collector_free(struct process_collector *p)
{
    free(p);
}

/* Read a whole (small) file into a new NUL-terminated buffer; NULL when it
 * cannot be read. */
static char *slurp(const char *path, size_t limit)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (cap - n < 2) {
            char *bigger = cap < limit ? realloc(buf, cap * 2) : NULL;
            if (!bigger) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = bigger;
            cap *= 2;
        }
        ssize_t got = read(fd, buf + n, cap - n - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            free(buf);
            buf = NULL;
            break;
        }
        if (got == 0)
            break;
        n += (size_t)got;
    }
    close(fd);
    if (buf)
        buf[n] = '\0';
    return buf;
}

/* The fields of /proc/self/stat we use, by their number in proc(5). */
typedef struct proc_stat {
    unsigned long long utime, stime; /* 14, 15: ticks */
    unsigned long long starttime;    /* 22: ticks after boot */
    unsigned long long vsize;        /* 23: bytes */
    long long rss;                   /* 24: pages */
} proc_stat;

static bool read_proc_stat(proc_stat *st)
{
    char *text = slurp("/proc/self/stat", 1 << 16);
    if (!text)
        return false;
    /* the command name (field 2) may hold spaces and parentheses: fields
     * after it start past the last ')' */
    char *p = strrchr(text, ')');
    bool ok = p != NULL;
    if (ok) {
        p++;
        unsigned long long v[22] = {0};
        int field = 3;
        for (; field <= 24 && ok; field++) {
            while (*p == ' ')
                p++;
            if (!*p) {
                ok = false;
                break;
            }
            char *end;
            if (field >= 14)
                v[field - 3] = strtoull(p, &end, 10);
            else
                end = strchr(p, ' ');
            if (!end) {
                ok = false;
                break;
            }
            p = end;
        }
        st->utime = v[14 - 3];
        st->stime = v[15 - 3];
        st->starttime = v[22 - 3];
        st->vsize = v[23 - 3];
        st->rss = (long long)v[24 - 3];
    }
    free(text);
    return ok;
}

/* The boot time from /proc/stat, in seconds since the epoch; -1 if none. */
static double boot_time(void)
{
    char *text = slurp("/proc/stat", 1 << 22);
    if (!text)
        return -1;
    double btime = -1;
    char *line = strstr(text, "\nbtime ");
    if (line)
        btime = (double)strtoull(line + 7, NULL, 10);
    free(text);
    return btime;
}

/* Entries in /proc/self/fd (the directory's own descriptor included, as
 * Python's os.listdir counts it); -1 when it cannot be listed. */
static double count_open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return -1;
    double n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void collect(wv_metrics *r, void *arg)
{
    struct process_collector *p = arg;
    proc_stat st;
    if (read_proc_stat(&st)) {
        wv_counter_set(p->cpu, (double)(st.utime + st.stime) / p->ticks);
        wv_gauge_set(p->virtual, (double)st.vsize);
        wv_gauge_set(p->resident, (double)st.rss * p->page);
    }
    double fds = count_open_fds();
    if (fds >= 0)
        wv_gauge_set(p->open_fds, fds);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        wv_gauge_set(p->max_fds, rl.rlim_cur == RLIM_INFINITY ? INFINITY : (double)rl.rlim_cur);
    if (p->started >= 0)
        wv_gauge_set(p->start_time, p->started);
}

static int add_one(wv_metrics *r, wv_metric_type type, const char *name, const char *help,
                   const char *unit, wv_series **out)
{
    wv_metric *m;
    int rc = wv_metric_register(
        r, &(wv_metric_opts){.type = type, .name = name, .help = help, .unit = unit}, &m);
    if (rc < 0)
        return rc;
    return wv_metric_series(m, NULL, out);
}

int wv_metrics_add_process_collector(wv_metrics *r)
{
    r = registry_or_default(r);
    pthread_mutex_lock(&r->mu);
    bool done = r->process != NULL;
    pthread_mutex_unlock(&r->mu);
    if (done)
        return 0;

    struct process_collector *p = calloc(1, sizeof *p);
    if (!p)
        return -ENOMEM;
    int rc;
    if ((rc = add_one(r, WV_METRIC_COUNTER, "process_cpu_seconds_total",
                      "Total user and system CPU time spent in seconds.", "seconds", &p->cpu)) <
            0 ||
        (rc = add_one(r, WV_METRIC_GAUGE, "process_virtual_memory_bytes",
                      "Virtual memory size in bytes.", "bytes", &p->virtual)) < 0 ||
        (rc = add_one(r, WV_METRIC_GAUGE, "process_resident_memory_bytes",
                      "Resident memory size in bytes.", "bytes", &p->resident)) < 0 ||
        (rc = add_one(r, WV_METRIC_GAUGE, "process_start_time_seconds",
                      "Start time of the process since unix epoch in seconds.", "seconds",
                      &p->start_time)) < 0 ||
        (rc = add_one(r, WV_METRIC_GAUGE, "process_open_fds", "Number of open file descriptors.",
                      NULL, &p->open_fds)) < 0 ||
        (rc = add_one(r, WV_METRIC_GAUGE, "process_max_fds",
                      "Maximum number of open file descriptors.", NULL, &p->max_fds)) < 0) {
        free(p);
        return rc;
    }
    long ticks = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);
    p->ticks = ticks > 0 ? (double)ticks : 100;
    p->page = page > 0 ? (double)page : 4096;
    proc_stat st;
    double boot = boot_time();
    p->started = boot >= 0 && read_proc_stat(&st) ? boot + (double)st.starttime / p->ticks : -1;

    pthread_mutex_lock(&r->mu);
    if (!r->process) {
        r->process = p;
        rc = collector_add_locked(r, collect, p);
        if (rc < 0)
            r->process = NULL;
        else
            p = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    free(p);
    return rc;
}
