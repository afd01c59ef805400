/*
 * Logging (one line per call, one write(2), so lines from several shards
 * never interleave), the fiber-local error detail behind wv_errmsg(), and
 * the version string.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "rt/rt_internal.h"

#define WEAVE_VERSION_STRING "0.1.0"

enum { ERRMSG_SIZE = 1024 }; /* a server's words plus the context callers add */

static _Atomic int log_level = WV_LOG_INFO;
static _Atomic bool log_env_read;

const char *wv_version(void)
{
    return WEAVE_VERSION_STRING;
}

void log_init_from_env(void)
{
    if (atomic_exchange(&log_env_read, true))
        return;
    const char *e = getenv("WEAVE_LOG");
    if (!e || !*e)
        return;
    static const char *names[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i <= WV_LOG_OFF; i++) {
        if (strcasecmp(e, names[i]) == 0) {
            atomic_store(&log_level, i);
            return;
        }
    }
    if (strcasecmp(e, "warning") == 0)
        atomic_store(&log_level, WV_LOG_WARN);
    else
        fprintf(stderr, "weave: WEAVE_LOG=%s not understood (debug, info, warn, error, off)\n", e);
}

wv_log_level wv_log_level_get(void)
{
    log_init_from_env();
    return (wv_log_level)atomic_load(&log_level);
}

void wv_log_level_set(wv_log_level level)
{
    atomic_store(&log_env_read, true);
    atomic_store(&log_level, (int)level);
}

static void vlog(wv_log_level level, const char *fmt, va_list ap)
{
    static const char *tags[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, tags[level]);
    int id = wv_shard_id();
    if (id >= 0)
        n += snprintf(line + n, sizeof line - (size_t)n, "[shard %d] ", id);
    else
        n += snprintf(line + n, sizeof line - (size_t)n, "[main] ");
    int m = vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    size_t len = (size_t)n + (m > 0 ? (size_t)m : 0);
    if (len > sizeof line - 2)
        len = sizeof line - 2; /* truncated */
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void wv_log(wv_log_level level, const char *fmt, ...)
{
    if (level < wv_log_level_get() || level >= WV_LOG_OFF)
        return;
    va_list ap;
    va_start(ap, fmt);
    vlog(level, fmt, ap);
    va_end(ap);
}

void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(WV_LOG_ERROR, fmt, ap);
    va_end(ap);
    abort();
}

/* ------------------------------------------------------------- errmsg */

static _Thread_local char thread_errmsg[ERRMSG_SIZE];

static char *errbuf(void)
{
    wv_fiber *f = current();
    if (!f)
        return thread_errmsg;
    if (!f->errmsg) {
        f->errmsg = calloc(1, ERRMSG_SIZE);
        if (!f->errmsg)
            return thread_errmsg;
    }
    return f->errmsg;
}

const char *wv_errmsg(void)
{
    wv_fiber *f = current();
    if (f)
        return f->errmsg ? f->errmsg : "";
    return thread_errmsg;
}

void wv_errmsg_clear(void)
{
    wv_fiber *f = current();
    if (!f)
        thread_errmsg[0] = '\0';
    else if (f->errmsg)
        f->errmsg[0] = '\0';
}

/* Formatted apart, then copied: the arguments may be wv_errmsg() itself
 * ("...: %s", wv_errmsg()), which vsnprintf into the same buffer would
 * overwrite while reading it. */
int wv_fail(int err, const char *fmt, ...)
{
    char text[ERRMSG_SIZE];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    memcpy(errbuf(), text, strlen(text) + 1);
    return err;
}

const char *wv_strerror(int err)
{
    return strerror(err < 0 ? -err : err);
}
