/*
 * Exposition (include/weave/metrics.h): a registry written as Prometheus
 * text 0.0.4 or OpenMetrics 1.0.0 into a wv_buf, the numbers formatted the
 * way the Go client formats them, and the Accept-header negotiation between
 * the two formats.
 *
 * A scrape runs the collectors, loads the set of slots that have cells
 * once, then walks families and series (lock-free lists) and sums each
 * series' cells over those slots. Label sets were rendered and escaped when
 * the series was made, so a sample line is a few memcpys and a number.
 */
#include <float.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics_internal.h"

/* ------------------------------------------------------------ numbers */

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

size_t format_u64(char *out, uint64_t v)
{
    char tmp[24];
    char *end = tmp + sizeof tmp, *p = end;
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    memcpy(out, p, (size_t)(end - p));
    return (size_t)(end - p);
}

/* The shortest digits that read back as v (v finite, not 0), and the
 * decimal exponent of the first one: v = 0.d1d2... * 10^(exp+1). printf's
 * %.*e rounds correctly, so the first precision whose text reads back is the
 * shortest (for normal numbers 15 significant digits always do when any
 * fewer would, and then they end in zeros, which are dropped). */
static int shortest_digits(double v, char *digits, int *exp)
{
    pthread_once(&c_locale_once, make_c_locale);
    locale_t old = c_locale ? uselocale(c_locale) : (locale_t)0;
    char text[40];
    for (int precision = fabs(v) < DBL_MIN ? 0 : 14;; precision++) {
        snprintf(text, sizeof text, "%.*e", precision, v);
        if (precision >= 16 ||
            (c_locale ? strtod_l(text, NULL, c_locale) : strtod(text, NULL)) == v)
            break;
    }
    if (c_locale)
        uselocale(old);
    int n = 0;
    const char *p = text;
    for (; *p && *p != 'e'; p++)
        if (*p >= '0' && *p <= '9')
            digits[n++] = *p;
    *exp = *p ? atoi(p + 1) : 0;
    while (n > 1 && digits[n - 1] == '0')
        n--;
    return n;
}

/* Go's strconv.FormatFloat(v, 'g', -1, 64): shortest digits, in exponent
 * form when the exponent is below -4 or at least 6 (1e-05, 1.5e+06), else
 * positional (0.0001, 123456.7). v finite. */
static size_t format_go(char *out, double v)
{
    char *o = out;
    if (v == 0) {
        *o++ = '0';
        return 1;
    }
    if (v < 0)
        *o++ = '-';
    char d[24];
    int exp, nd = shortest_digits(fabs(v), d, &exp);
    if (exp < -4 || exp >= 6) {
        *o++ = d[0];
        if (nd > 1) {
            *o++ = '.';
            memcpy(o, d + 1, (size_t)nd - 1);
            o += nd - 1;
        }
        *o++ = 'e';
        *o++ = exp < 0 ? '-' : '+';
        int e = exp < 0 ? -exp : exp;
        if (e < 10)
            *o++ = '0';
        o += format_u64(o, (uint64_t)e);
        return (size_t)(o - out);
    }
    int point = exp + 1; /* digits before the decimal point */
    if (point <= 0) {
        *o++ = '0';
        *o++ = '.';
        for (int i = 0; i < -point; i++)
            *o++ = '0';
        memcpy(o, d, (size_t)nd);
        o += nd;
    } else {
        for (int i = 0; i < point; i++)
            *o++ = i < nd ? d[i] : '0';
        if (nd > point) {
            *o++ = '.';
            memcpy(o, d + point, (size_t)(nd - point));
            o += nd - point;
        }
    }
    return (size_t)(o - out);
}

size_t format_number(char *out, double v, number_style style)
{
    if (isnan(v)) {
        memcpy(out, "NaN", 3);
        return 3;
    }
    if (isinf(v)) {
        memcpy(out, v > 0 ? "+Inf" : "-Inf", 4);
        return 4;
    }
    if (style == NUMBER_VALUE && fabs(v) < 9007199254740992.0 && v == trunc(v)) {
        size_t n = 0;
        if (v < 0)
            out[n++] = '-';
        return n + format_u64(out + n, (uint64_t)fabs(v));
    }
    size_t n = format_go(out, v);
    if (style == NUMBER_LE_OM && !memchr(out, '.', n) && !memchr(out, 'e', n)) {
        out[n++] = '.';
        out[n++] = '0';
    }
    return n;
}

/* ------------------------------------------------------------ escaping */

static char *escape(const char *s, size_t n, bool quote)
{
    size_t len = n;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '\\' || s[i] == '\n' || (quote && s[i] == '"'))
            len++;
    char *out = malloc(len + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' || (quote && c == '"')) {
            *o++ = '\\';
            *o++ = c;
        } else if (c == '\n') {
            *o++ = '\\';
            *o++ = 'n';
        } else {
            *o++ = c;
        }
    }
    *o = '\0';
    return out;
}

char *escape_help_text(const char *s, size_t n)
{
    return escape(s, n, false);
}

char *escape_quoted(const char *s, size_t n)
{
    return escape(s, n, true);
}

/* ------------------------------------------------------------ output */

typedef struct writer {
    wv_buf *b;
    int err;
} writer;

/* Room for n more bytes, or NULL once an append has failed. */
static inline char *room(writer *w, size_t n)
{
    if (w->err)
        return NULL;
    if (w->b->cap - w->b->n < n) {
        int rc = wv_buf_reserve(w->b, n);
        if (rc < 0) {
            w->err = rc;
            return NULL;
        }
    }
    return w->b->p + w->b->n;
}

static void put(writer *w, const char *s, size_t n)
{
    char *o = room(w, n);
    if (o) {
        memcpy(o, s, n);
        w->b->n += n;
    }
}

static void puts_(writer *w, const char *s)
{
    put(w, s, strlen(s));
}

/* name+suffix{labels,le="le"} number\n */
static void sample(writer *w, const char *name, size_t name_len, const char *suffix,
                   const wv_series *s, const char *le, const char *num, size_t num_len)
{
    size_t suffix_len = suffix ? strlen(suffix) : 0, le_len = le ? strlen(le) : 0;
    size_t need = name_len + suffix_len + s->labels_len + le_len + num_len + 16;
    char *o = room(w, need), *start = o;
    if (!o)
        return;
    memcpy(o, name, name_len);
    o += name_len;
    if (suffix_len) {
        memcpy(o, suffix, suffix_len);
        o += suffix_len;
    }
    if (s->labels_len || le) {
        *o++ = '{';
        memcpy(o, s->labels, s->labels_len);
        o += s->labels_len;
        if (le) {
            if (s->labels_len)
                *o++ = ',';
            memcpy(o, "le=\"", 4);
            o += 4;
            memcpy(o, le, le_len);
            o += le_len;
            *o++ = '"';
        }
        *o++ = '}';
    }
    *o++ = ' ';
    memcpy(o, num, num_len);
    o += num_len;
    *o++ = '\n';
    w->b->n += (size_t)(o - start);
}

static const char *type_word(wv_metric_type t)
{
    return t == WV_METRIC_COUNTER ? "counter" : t == WV_METRIC_GAUGE ? "gauge" : "histogram";
}

static void metadata(writer *w, const wv_metric *m, bool om)
{
    const char *suffix = m->type == WV_METRIC_COUNTER && !om ? "_total" : "";
    if (om) {
        puts_(w, "# TYPE ");
        puts_(w, m->base);
        put(w, " ", 1);
        puts_(w, type_word(m->type));
        put(w, "\n", 1);
        if (*m->unit) {
            puts_(w, "# UNIT ");
            puts_(w, m->base);
            put(w, " ", 1);
            puts_(w, m->unit);
            put(w, "\n", 1);
        }
    }
    if (*m->help) {
        puts_(w, "# HELP ");
        puts_(w, m->base);
        puts_(w, suffix);
        put(w, " ", 1);
        puts_(w, om ? m->help_om : m->help_text);
        put(w, "\n", 1);
    }
    if (!om) {
        puts_(w, "# TYPE ");
        puts_(w, m->base);
        puts_(w, suffix);
        put(w, " ", 1);
        puts_(w, type_word(m->type));
        put(w, "\n", 1);
    }
}

static void family(writer *w, const wv_metric *m, const slot_snapshot *snap, bool om)
{
    metadata(w, m, om);
    const char *name = m->base;
    size_t name_len = strlen(name);
    char num[NUMBER_MAX];
    uint64_t counts[WV_METRIC_MAX_BUCKETS + 1];
    for (const wv_series *s = atomic_load_explicit(&m->first, memory_order_acquire); s && !w->err;
         s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        switch (m->type) {
        case WV_METRIC_COUNTER: {
            uint64_t ints;
            double floats;
            counter_read(snap, s, &ints, &floats);
            size_t n = floats == 0 ? format_u64(num, ints)
                                   : format_number(num, (double)ints + floats, NUMBER_VALUE);
            sample(w, name, name_len, "_total", s, NULL, num, n);
            break;
        }
        case WV_METRIC_GAUGE: {
            size_t n = format_number(num, gauge_read(snap, s), NUMBER_VALUE);
            sample(w, name, name_len, NULL, s, NULL, num, n);
            break;
        }
        case WV_METRIC_HISTOGRAM: {
            double sum;
            histogram_read(snap, s, counts, &sum);
            uint64_t total = 0;
            for (size_t b = 0; b <= m->nbounds; b++) {
                total += counts[b];
                size_t n = format_u64(num, total);
                sample(w, name, name_len, "_bucket", s, om ? m->le_om[b] : m->le_text[b], num, n);
            }
            /* OpenMetrics: a histogram with negative buckets has no sum,
             * and then no count */
            if (om && m->bounds[0] < 0)
                break;
            size_t n = format_number(num, sum, NUMBER_VALUE);
            sample(w, name, name_len, "_sum", s, NULL, num, n);
            n = format_u64(num, total);
            sample(w, name, name_len, "_count", s, NULL, num, n);
            break;
        }
        }
    }
}

int wv_metrics_render(wv_metrics *r, wv_metrics_format format, wv_buf *out)
{
    if (format != WV_METRICS_PROMETHEUS && format != WV_METRICS_OPENMETRICS)
        return wv_fail(-EINVAL, "wv_metrics_render: unknown format %d", (int)format);
    if (!out)
        return wv_fail(-EINVAL, "wv_metrics_render: NULL buffer");
    r = registry_or_default(r);
    for (collector *c = atomic_load_explicit(&r->collectors, memory_order_acquire); c;
         c = atomic_load_explicit(&c->next, memory_order_acquire))
        c->fn(r, c->arg);

    bool om = format == WV_METRICS_OPENMETRICS;
    slot_snapshot snap;
    slot_snapshot_take(&snap);
    writer w = {.b = out};
    for (const wv_metric *m = atomic_load_explicit(&r->first, memory_order_acquire); m && !w.err;
         m = atomic_load_explicit(&m->next, memory_order_acquire))
        family(&w, m, &snap, om);
    if (om)
        puts_(&w, "# EOF\n");
    if (w.err)
        return wv_fail(w.err, "metrics: the exposition does not fit in the buffer");
    return 0;
}

/* ------------------------------------------------------------ negotiation */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

static wv_str trim(const char *p, const char *end)
{
    while (p < end && is_space(*p))
        p++;
    while (end > p && is_space(end[-1]))
        end--;
    return (wv_str){p, (size_t)(end - p)};
}

/* The q of one media range's parameters ("; version=1.0.0; q=0.5"): 1 when
 * absent. */
static double quality(const char *p, const char *end)
{
    while (p < end) {
        const char *semi = memchr(p, ';', (size_t)(end - p));
        const char *stop = semi ? semi : end;
        wv_str param = trim(p, stop);
        if (param.n >= 2 && (param.p[0] == 'q' || param.p[0] == 'Q') && param.p[1] == '=') {
            char tmp[16];
            size_t n = param.n - 2 < sizeof tmp - 1 ? param.n - 2 : sizeof tmp - 1;
            memcpy(tmp, param.p + 2, n);
            tmp[n] = '\0';
            pthread_once(&c_locale_once, make_c_locale);
            double q = c_locale ? strtod_l(tmp, NULL, c_locale) : strtod(tmp, NULL);
            return q > 0 ? q : 0;
        }
        p = stop + 1;
    }
    return 1;
}

wv_metrics_format wv_metrics_negotiate(wv_str accept, const char **content_type)
{
    double q_om = 0, q_text = 0;
    const char *p = accept.p, *end = accept.p ? accept.p + accept.n : NULL;
    while (p && p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        const char *semi = memchr(p, ';', (size_t)(item_end - p));
        wv_str type = trim(p, semi ? semi : item_end);
        double q = semi ? quality(semi + 1, item_end) : 1;
        if (wv_str_ieq(type, WV_STR("application/openmetrics-text")))
            q_om = q > q_om ? q : q_om;
        else if (wv_str_ieq(type, WV_STR("text/plain")))
            q_text = q > q_text ? q : q_text;
        p = item_end + 1;
    }
    wv_metrics_format f =
        q_om > 0 && q_om >= q_text ? WV_METRICS_OPENMETRICS : WV_METRICS_PROMETHEUS;
    if (content_type)
        *content_type = f == WV_METRICS_OPENMETRICS ? WV_METRICS_OPENMETRICS_CONTENT_TYPE
                                                    : WV_METRICS_PROMETHEUS_CONTENT_TYPE;
    return f;
}
