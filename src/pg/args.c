/*
 * Statement arguments: wv_pg_arg values turned into what libpq sends.
 *
 * Numbers, booleans, timestamps and text go in text format with type 0,
 * so the server infers each parameter's type from the statement, as it
 * does for a literal ("WHERE id = $1" takes an int4, "LIMIT $1" an int8).
 * Bytes go in binary format typed bytea, so they need no escaping. Nothing
 * is ever formatted into the SQL text.
 *
 * Also here: timestamps between microseconds since the epoch and
 * PostgreSQL's ISO text, both ways.
 */
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pg/pg_internal.h"
#include "weave/rt.h"

enum { INT_TEXT = 24, FLOAT_TEXT = 32, TS_TEXT = 48 };

/* Bytes of scratch an argument needs (its text, or a copy). */
static int arg_need(const wv_pg_arg *a, int i, bool copy, size_t *need)
{
    switch (a->type) {
    case WV_PG_ARG_NULL:
        return 0;
    case WV_PG_ARG_INT:
        *need += INT_TEXT;
        return 0;
    case WV_PG_ARG_FLOAT:
        *need += FLOAT_TEXT;
        return 0;
    case WV_PG_ARG_BOOL:
        *need += 2;
        return 0;
    case WV_PG_ARG_TIMESTAMP:
        *need += TS_TEXT;
        return 0;
    case WV_PG_ARG_TEXT:
        if (!a->v.s.p)
            return 0;
        if (a->v.s.n == SIZE_MAX) {
            if (copy)
                *need += strlen(a->v.s.p) + 1;
            return 0;
        }
        if (a->v.s.n > INT_MAX)
            return wv_fail(-EINVAL, "pg: argument $%d is longer than 2 GiB", i + 1);
        if (memchr(a->v.s.p, '\0', a->v.s.n))
            return wv_fail(-EINVAL, "pg: argument $%d: text cannot hold a NUL byte", i + 1);
        *need += a->v.s.n + 1;
        return 0;
    case WV_PG_ARG_BYTES:
        if (a->v.s.n > INT_MAX)
            return wv_fail(-EINVAL, "pg: argument $%d is longer than 2 GiB", i + 1);
        if (!a->v.s.p && a->v.s.n)
            return wv_fail(-EINVAL, "pg: argument $%d: NULL bytes pointer", i + 1);
        if (copy)
            *need += a->v.s.n + 1;
        return 0;
    default:
        return wv_fail(-EINVAL, "pg: argument $%d has an unknown type (%d)", i + 1, a->type);
    }
}

static void format_float(double f, char *out)
{
    if (isnan(f))
        strcpy(out, "NaN");
    else if (isinf(f))
        strcpy(out, f > 0 ? "Infinity" : "-Infinity");
    else
        snprintf(out, FLOAT_TEXT, "%.17g", f);
}

int pg_args_encode(pg_args *a, const wv_pg_arg *args, int nargs, bool copy)
{
    a->n = 0;
    a->heap = NULL;
    if (nargs < 0 || nargs > 65535)
        return wv_fail(-EINVAL, "pg: %d arguments (0 to 65535 allowed)", nargs);
    if (nargs > 0 && !args)
        return wv_fail(-EINVAL, "pg: %d arguments but no array", nargs);
    size_t need = 0;
    for (int i = 0; i < nargs; i++) {
        int rc = arg_need(&args[i], i, copy, &need);
        if (rc < 0)
            return rc;
    }
    if (nargs <= ARGS_INLINE && need <= ARGS_SCRATCH) {
        a->values = a->values_in;
        a->lengths = a->lengths_in;
        a->formats = a->formats_in;
        a->types = a->types_in;
        a->scratch = a->scratch_in;
    } else {
        size_t n = (size_t)nargs;
        char *block = malloc(n * (sizeof(char *) + 2 * sizeof(int) + sizeof(Oid)) + need + 1);
        if (!block)
            return wv_fail(-ENOMEM, "pg: out of memory for %d arguments", nargs);
        a->heap = block;
        a->values = (const char **)(void *)block;
        a->lengths = (int *)(void *)(block + n * sizeof(char *));
        a->formats = a->lengths + n;
        a->types = (Oid *)(void *)(a->formats + n);
        a->scratch = (char *)(a->types + n);
    }
    a->n = nargs;
    char *s = a->scratch;
    for (int i = 0; i < nargs; i++) {
        const wv_pg_arg *g = &args[i];
        a->formats[i] = 0;
        a->types[i] = 0;
        a->lengths[i] = 0;
        a->values[i] = NULL;
        switch (g->type) {
        case WV_PG_ARG_NULL:
            break;
        case WV_PG_ARG_INT:
            a->values[i] = s;
            s += snprintf(s, INT_TEXT, "%" PRId64, g->v.i) + 1;
            break;
        case WV_PG_ARG_FLOAT:
            a->values[i] = s;
            format_float(g->v.f, s);
            s += strlen(s) + 1;
            break;
        case WV_PG_ARG_BOOL:
            a->values[i] = s;
            *s++ = g->v.b ? 't' : 'f';
            *s++ = '\0';
            break;
        case WV_PG_ARG_TIMESTAMP:
            a->values[i] = s;
            pg_format_timestamp(g->v.i, s);
            s += strlen(s) + 1;
            break;
        case WV_PG_ARG_TEXT:
            if (!g->v.s.p)
                break;
            if (g->v.s.n == SIZE_MAX && !copy) {
                a->values[i] = g->v.s.p;
            } else {
                size_t len = g->v.s.n == SIZE_MAX ? strlen(g->v.s.p) : g->v.s.n;
                memcpy(s, g->v.s.p, len);
                s[len] = '\0';
                a->values[i] = s;
                s += len + 1;
            }
            break;
        case WV_PG_ARG_BYTES:
            a->formats[i] = 1;
            a->types[i] = BYTEAOID_;
            a->lengths[i] = (int)g->v.s.n;
            if (copy) {
                if (g->v.s.n)
                    memcpy(s, g->v.s.p, g->v.s.n);
                a->values[i] = s;
                s += g->v.s.n + 1;
            } else {
                a->values[i] = g->v.s.p ? g->v.s.p : "";
            }
            break;
        }
    }
    return 0;
}

void pg_args_free(pg_args *a)
{
    free(a->heap);
    a->heap = NULL;
}

void pg_args_stmt(const pg_args *a, const char *sql, pg_stmt *s)
{
    s->sql = sql;
    s->nparams = a->n;
    s->values = a->values;
    s->lengths = a->lengths;
    s->formats = a->formats;
    s->types = a->types;
}

/* ------------------------------------------------------------ timestamps */

/* wv_days_from_civil / wv_civil_from_days: weave/rt.h */

void pg_format_timestamp(int64_t us, char *out)
{
    if (us == INT64_MAX) {
        strcpy(out, "infinity");
        return;
    }
    if (us == INT64_MIN) {
        strcpy(out, "-infinity");
        return;
    }
    int64_t days = us / WV_US_PER_DAY, rem = us % WV_US_PER_DAY;
    if (rem < 0) {
        rem += WV_US_PER_DAY;
        days--;
    }
    int64_t y;
    int m, d;
    wv_civil_from_days(days, &y, &m, &d);
    bool bc = y <= 0;
    if (bc)
        y = 1 - y;
    int64_t secs = rem / 1000000;
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%04" PRId64 "-%02d-%02d %02d:%02d:%02d.%06d+00%s", y, m, d,
             (int)(secs / 3600), (int)(secs / 60 % 60), (int)(secs % 60), (int)(rem % 1000000),
             bc ? " BC" : "");
    snprintf(out, TS_TEXT, "%.47s", tmp);
}

/* n digits (exactly, or 1..max when n is 0) into *v. */
static const char *digits(const char *p, int n, int max, int64_t *v)
{
    int k = 0;
    *v = 0;
    while (*p >= '0' && *p <= '9' && (n ? k < n : k < max)) {
        *v = *v * 10 + (*p++ - '0');
        k++;
    }
    if (k == 0 || (n && k != n))
        return NULL;
    return p;
}

int pg_parse_timestamp(const char *s, int64_t *us)
{
    if (strcmp(s, "infinity") == 0) {
        *us = INT64_MAX;
        return 0;
    }
    if (strcmp(s, "-infinity") == 0) {
        *us = INT64_MIN;
        return 0;
    }
    int64_t y, mo, d, hh = 0, mi = 0, ss = 0, frac = 0, off = 0;
    const char *p = digits(s, 0, 9, &y);
    if (!p || *p++ != '-' || !(p = digits(p, 2, 2, &mo)) || *p++ != '-' ||
        !(p = digits(p, 2, 2, &d)))
        return -EPROTO;
    if ((*p == ' ' || *p == 'T') && p[1] >= '0' && p[1] <= '9') {
        p++;
        if (!(p = digits(p, 2, 2, &hh)) || *p++ != ':' || !(p = digits(p, 2, 2, &mi)) ||
            *p++ != ':' || !(p = digits(p, 2, 2, &ss)))
            return -EPROTO;
        if (*p == '.') {
            int64_t f;
            const char *q = digits(p + 1, 0, 6, &f);
            if (!q)
                return -EPROTO;
            for (long k = q - (p + 1); k < 6; k++)
                f *= 10;
            frac = f;
            p = q;
        }
        if (*p == '+' || *p == '-') {
            int sign = *p++ == '-' ? -1 : 1;
            int64_t oh, om = 0, os = 0;
            if (!(p = digits(p, 2, 2, &oh)))
                return -EPROTO;
            if (*p == ':' && !(p = digits(p + 1, 2, 2, &om)))
                return -EPROTO;
            if (*p == ':' && !(p = digits(p + 1, 2, 2, &os)))
                return -EPROTO;
            off = sign * (oh * 3600 + om * 60 + os);
        }
    }
    if (strcmp(p, " BC") == 0) {
        y = 1 - y;
        p += 3;
    }
    if (*p || mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 24 || mi > 59 || ss > 60)
        return -EPROTO;
    int64_t secs = wv_days_from_civil(y, (int)mo, (int)d) * 86400 + hh * 3600 + mi * 60 + ss - off;
    int64_t r;
    if (__builtin_mul_overflow(secs, INT64_C(1000000), &r) || __builtin_add_overflow(r, frac, &r))
        return -ERANGE;
    *us = r;
    return 0;
}
