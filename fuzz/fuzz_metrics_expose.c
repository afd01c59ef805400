/*
 * libFuzzer target for the metrics exposition (src/metrics/expose.c and the
 * label rendering in src/metrics/metrics.c).
 *
 * Input: the whole input is an Accept header for wv_metrics_negotiate (any
 * bytes: the answer must be one of the two formats, with its content type).
 * Then it is split at 0xff bytes into label values, taken in pairs: each
 * pair (a, b) is a series of the counter fz_total{a,b}, incremented once;
 * every 8 bytes of the input are also a double for format_number in each
 * style, which must read back (strtod) as the same value (NaN as NaN).
 *
 * Both formats are rendered and parsed back: the sample lines must be the
 * series in creation order, one each, with label values that unescape to
 * the original bytes and the count they were given; OpenMetrics must end in
 * "# EOF\n". A violation aborts.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics_internal.h"
#include "fuzz_util.h"

enum { MAX_VALUES = 64 };

/* Unescape a quoted label value starting at p (after the opening quote,
 * end the end of its line); it must equal want; returns the position after
 * the closing quote. Values may hold any byte, NUL included. */
static const char *expect_value(const char *p, const char *end, wv_str want)
{
    size_t i = 0;
    for (;;) {
        CHECK(p < end);
        char c = *p++;
        if (c == '"')
            break;
        if (c == '\\') {
            CHECK(p < end);
            char e = *p++;
            CHECK(e == '\\' || e == '"' || e == 'n');
            c = e == 'n' ? '\n' : e;
        }
        CHECK(i < want.n && want.p[i] == c);
        i++;
    }
    CHECK(i == want.n);
    return p;
}

static bool starts(const char *p, const char *end, const char *s)
{
    size_t n = strlen(s);
    return (size_t)(end - p) >= n && memcmp(p, s, n) == 0;
}

static void check_render(wv_metrics *r, wv_metrics_format f, const wv_str *values, size_t nseries,
                         const int *counts)
{
    wv_buf b = {0};
    CHECK(wv_metrics_render(r, f, &b) == 0);
    const char *p = b.p, *end = b.p + b.n;
    size_t seen = 0;
    bool eof = false;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        CHECK(nl && !eof);
        if (*p == '#') {
            if (starts(p, end, "# EOF\n")) {
                CHECK(f == WV_METRICS_OPENMETRICS && nl + 1 == end);
                eof = true;
            }
            p = nl + 1;
            continue;
        }
        CHECK(seen < nseries);
        CHECK(starts(p, nl, "fz_total{a=\""));
        p = expect_value(p + 12, nl, values[2 * seen]);
        CHECK(starts(p, nl, ",b=\""));
        p = expect_value(p + 4, nl, values[2 * seen + 1]);
        CHECK(starts(p, nl, "} "));
        long v = 0;
        for (p += 2; p < nl; p++) {
            CHECK(*p >= '0' && *p <= '9');
            v = v * 10 + (*p - '0');
        }
        CHECK(v == counts[seen]);
        seen++;
        p = nl + 1;
    }
    CHECK(seen == nseries);
    CHECK(eof == (f == WV_METRICS_OPENMETRICS));
    wv_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *ct = NULL;
    wv_metrics_format f = wv_metrics_negotiate((wv_str){(const char *)data, size}, &ct);
    CHECK(f == WV_METRICS_PROMETHEUS || f == WV_METRICS_OPENMETRICS);
    CHECK(strcmp(ct, f == WV_METRICS_OPENMETRICS ? WV_METRICS_OPENMETRICS_CONTENT_TYPE
                                                 : WV_METRICS_PROMETHEUS_CONTENT_TYPE) == 0);

    for (size_t i = 0; i + 8 <= size; i += 8) {
        double v;
        memcpy(&v, data + i, 8);
        for (int style = NUMBER_VALUE; style <= NUMBER_LE_OM; style++) {
            char out[NUMBER_MAX + 1];
            size_t n = format_number(out, v, (number_style)style);
            CHECK(n > 0 && n <= NUMBER_MAX);
            out[n] = '\0';
            double back = strtod(out, NULL);
            CHECK(isnan(v) ? isnan(back) : back == v);
        }
    }

    /* label values: pieces between 0xff bytes, in pairs */
    wv_str pieces[MAX_VALUES];
    size_t npieces = 0;
    const char *start = (const char *)data;
    for (size_t i = 0; i <= size && npieces < MAX_VALUES; i++) {
        if (i == size || data[i] == 0xff) {
            pieces[npieces++] = (wv_str){start, (size_t)((const char *)data + i - start)};
            start = (const char *)data + i + 1;
        }
    }
    wv_metrics *r = wv_metrics_new();
    CHECK(r);
    wv_metric *m;
    CHECK(wv_metric_register(
              r, &(wv_metric_opts){.type = WV_METRIC_COUNTER, .name = "fz_total", .labels = "a,b"},
              &m) == 0);
    wv_str unique[MAX_VALUES];
    wv_series *made[MAX_VALUES / 2];
    int counts[MAX_VALUES / 2] = {0};
    size_t nseries = 0;
    for (size_t i = 0; i + 1 < npieces; i += 2) {
        wv_series *s;
        CHECK(wv_metric_series_str(m, &pieces[i], &s) == 0 && s);
        size_t k = 0;
        while (k < nseries && made[k] != s)
            k++;
        if (k == nseries) {
            made[nseries] = s;
            unique[2 * nseries] = pieces[i];
            unique[2 * nseries + 1] = pieces[i + 1];
            nseries++;
        }
        wv_counter_inc(s);
        counts[k]++;
    }
    check_render(r, WV_METRICS_PROMETHEUS, unique, nseries, counts);
    check_render(r, WV_METRICS_OPENMETRICS, unique, nseries, counts);
    wv_metrics_free(r);
    return 0;
}
