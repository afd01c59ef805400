/*
 * What the HTTP client may try again, and how long a server asks it to
 * wait. The loop itself is the net layer's wv_retry (backoff with full
 * jitter, never past the fiber's deadline); request.c runs each attempt
 * inside it and this file answers its questions:
 *
 *  - which requests: the methods RFC 9110 calls idempotent that a client
 *    sends every day (GET, HEAD, PUT, DELETE, OPTIONS), never POST or
 *    PATCH, and never a body streamed from a source, which cannot be read
 *    twice;
 *  - which failures: failing to connect (nothing was sent), and the
 *    answers that say "not now" (502, 503, 504 from a gateway or an
 *    overloaded server, 429 for a client over its rate);
 *  - Retry-After (RFC 9110 10.2.3): delta-seconds or an HTTP date, in any
 *    of the three forms a recipient must accept (IMF-fixdate, the obsolete
 *    RFC 850 form with a two-digit year, and asctime's).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "httpc/httpc_internal.h"

bool httpc_retry_allowed(const wv_httpc_req *req, const char *method)
{
    if (req->body_read)
        return false;
    static const char *const idempotent[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof idempotent / sizeof idempotent[0]; i++)
        if (strcmp(method, idempotent[i]) == 0)
            return true;
    return false;
}

bool httpc_retry_status(int status)
{
    return status == 429 || status == 502 || status == 503 || status == 504;
}

bool httpc_retry_error(int rc)
{
    return rc == -ECONNREFUSED || rc == -EHOSTUNREACH || rc == -ENETUNREACH;
}

/* ------------------------------------------------------------ Retry-After */

static bool digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        unsigned d = (unsigned)((*p)[i] - '0');
        if (d > 9)
            return false;
        v = v * 10 + (int)d;
    }
    *p += n;
    *out = v;
    return true;
}

static bool lit(const char **p, const char *s)
{
    size_t n = strlen(s);
    if (strncmp(*p, s, n) != 0)
        return false;
    *p += n;
    return true;
}

static bool month(const char **p, int *out)
{
    static const char names[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    for (int m = 0; m < 12; m++) {
        if (strncmp(*p, names + m * 3, 3) == 0) {
            *p += 3;
            *out = m + 1;
            return true;
        }
    }
    return false;
}

/* "HH:MM:SS" */
static bool clock_time(const char **p, int *h, int *m, int *s)
{
    return digits(p, 2, h) && lit(p, ":") && digits(p, 2, m) && lit(p, ":") && digits(p, 2, s) &&
           *h < 24 && *m < 60 && *s < 61;
}

static const char *skip_spaces(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* An HTTP date as seconds since 1970 (UTC); false when it is not one. */
static bool http_date(const char *p, int64_t now, int64_t *out)
{
    int y = 0, mon = 0, d = 0, h = 0, mi = 0, s = 0;
    const char *name = p;
    while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z'))
        p++;
    if (p - name < 3)
        return false;
    if (*p == ',') {
        p++;
        if (!lit(&p, " ") || !digits(&p, 2, &d))
            return false;
        if (*p == ' ') { /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
            if (!lit(&p, " ") || !month(&p, &mon) || !lit(&p, " ") || !digits(&p, 4, &y) ||
                !lit(&p, " ") || !clock_time(&p, &h, &mi, &s) || !lit(&p, " GMT"))
                return false;
        } else { /* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
            if (!lit(&p, "-") || !month(&p, &mon) || !lit(&p, "-") || !digits(&p, 2, &y) ||
                !lit(&p, " ") || !clock_time(&p, &h, &mi, &s) || !lit(&p, " GMT"))
                return false;
            /* a two-digit year more than 50 years ahead is in the past
             * century (RFC 9110 5.6.7) */
            int64_t cy;
            int cm, cd;
            wv_civil_from_days(now / 86400, &cy, &cm, &cd);
            int64_t year = cy - cy % 100 + y;
            if (year > cy + 50)
                year -= 100;
            y = (int)year;
        }
    } else { /* asctime: Sun Nov  6 08:49:37 1994 */
        if (!lit(&p, " ") || !month(&p, &mon) || !lit(&p, " "))
            return false;
        if (*p == ' ') {
            p++;
            if (!digits(&p, 1, &d))
                return false;
        } else if (!digits(&p, 2, &d)) {
            return false;
        }
        if (!lit(&p, " ") || !clock_time(&p, &h, &mi, &s) || !lit(&p, " ") || !digits(&p, 4, &y))
            return false;
    }
    if (*skip_spaces(p) != '\0' || d < 1 || d > 31)
        return false;
    *out = wv_days_from_civil(y, mon, d) * 86400 + h * 3600 + mi * 60 + s;
    return true;
}

int64_t httpc_retry_after_ms(const char *value, int64_t now)
{
    if (!value)
        return -1;
    const char *p = skip_spaces(value);
    if (*p >= '0' && *p <= '9') {
        int64_t secs = 0;
        for (; *p >= '0' && *p <= '9'; p++)
            secs = secs > INT64_MAX / 10000 ? INT64_MAX / 1000 : secs * 10 + (*p - '0');
        if (*skip_spaces(p) != '\0')
            return -1;
        return secs > INT64_MAX / 1000 ? INT64_MAX : secs * 1000;
    }
    int64_t at;
    if (!http_date(p, now, &at))
        return -1;
    return at <= now ? 0 : (at - now) * 1000;
}
