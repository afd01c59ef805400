/*
 * The streaming JSON writer (include/weave/json.h): appends a document to a
 * wv_buf call by call, with no tree in between. Reading JSON is in parse.c.
 *
 * Bookkeeping is two bit sets indexed by depth (is this container an object,
 * has it had an element yet) plus "a key is waiting for its value", which is
 * all the state RFC 8259's grammar needs to place commas and colons and to
 * catch misuse. The first error sticks and turns later calls into no-ops, so
 * callers check once, at wv_json_finish().
 *
 * Strings are the hot path: runs of bytes that need no escaping (printable
 * ASCII other than '"' and '\\', and valid UTF-8 sequences other than
 * U+2028/U+2029) are found 8 bytes at a time and copied with one memcpy.
 */
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/json_internal.h"

/* ------------------------------------------------------------ output */

static void fail(wv_json *j, int err)
{
    if (!j->err)
        j->err = err;
}

/* Room for n more bytes at j->out->p + j->out->n, or false (err set). */
static inline bool room(wv_json *j, size_t n)
{
    wv_buf *b = j->out;
    if (b->cap - b->n >= n)
        return true;
    int rc = wv_buf_reserve(b, n);
    if (rc < 0) {
        fail(j, rc);
        return false;
    }
    return true;
}

static inline void put(wv_json *j, const void *p, size_t n)
{
    if (!room(j, n))
        return;
    memcpy(j->out->p + j->out->n, p, n);
    j->out->n += n;
}

static inline void put_char(wv_json *j, char c)
{
    if (!room(j, 1))
        return;
    j->out->p[j->out->n++] = c;
}

/* ------------------------------------------------------- bookkeeping */

static inline uint64_t level_bit(const wv_json *j)
{
    return UINT64_C(1) << (j->depth - 1);
}

/* Place the separator before a value, or record misuse. False: skip it. */
static bool value_begins(wv_json *j)
{
    if (j->err)
        return false;
    if (j->depth == 0) {
        if (j->done) {
            fail(j, -EINVAL); /* a second top-level value */
            return false;
        }
        return true;
    }
    uint64_t bit = level_bit(j);
    if (j->in_object & bit) {
        if (!j->want_value) {
            fail(j, -EINVAL); /* an object member without a key */
            return false;
        }
        j->want_value = false;
        return true;
    }
    if (!(j->first & bit))
        put_char(j, ',');
    j->first &= ~bit;
    return !j->err;
}

/* A scalar (or a container's end) completed a value. */
static inline void value_ends(wv_json *j)
{
    if (j->depth == 0)
        j->done = true;
}

void wv_json_init(wv_json *j, wv_buf *out)
{
    *j = (wv_json){.out = out};
}

static void container_begin(wv_json *j, bool object)
{
    if (j->err)
        return;
    if (j->depth >= WV_JSON_MAX_DEPTH) {
        fail(j, -EINVAL);
        return;
    }
    if (!value_begins(j))
        return;
    j->depth++;
    uint64_t bit = level_bit(j);
    j->first |= bit;
    if (object)
        j->in_object |= bit;
    else
        j->in_object &= ~bit;
    put_char(j, object ? '{' : '[');
}

static void container_end(wv_json *j, bool object)
{
    if (j->err)
        return;
    if (j->depth == 0 || ((j->in_object & level_bit(j)) != 0) != object ||
        (object && j->want_value)) {
        fail(j, -EINVAL); /* nothing open, the other kind open, or a key without value */
        return;
    }
    put_char(j, object ? '}' : ']');
    j->depth--;
    value_ends(j);
}

void wv_json_object_begin(wv_json *j)
{
    container_begin(j, true);
}

void wv_json_object_end(wv_json *j)
{
    container_end(j, true);
}

void wv_json_array_begin(wv_json *j)
{
    container_begin(j, false);
}

void wv_json_array_end(wv_json *j)
{
    container_end(j, false);
}

int wv_json_finish(wv_json *j)
{
    if (j->err)
        return j->err;
    return j->depth == 0 && j->done ? 0 : -EINVAL;
}

/* ----------------------------------------------------------- strings */

static inline bool is_line_separator(const unsigned char *p)
{
    return p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9);
}

static void put_escape(wv_json *j, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    char short_form = 0;
    switch (c) {
    case '"':
        short_form = '"';
        break;
    case '\\':
        short_form = '\\';
        break;
    case '\n':
        short_form = 'n';
        break;
    case '\r':
        short_form = 'r';
        break;
    case '\t':
        short_form = 't';
        break;
    case '\b':
        short_form = 'b';
        break;
    case '\f':
        short_form = 'f';
        break;
    }
    if (short_form) {
        char e[2] = {'\\', short_form};
        put(j, e, 2);
    } else {
        char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
        put(j, e, 6);
    }
}

static void put_string(wv_json *j, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    if (json_skip_plain(p, end) == end) {
        /* nothing to escape or check (most keys and values): one copy */
        if (!room(j, n + 2))
            return;
        char *o = j->out->p + j->out->n;
        o[0] = '"';
        memcpy(o + 1, s, n);
        o[n + 1] = '"';
        j->out->n += n + 2;
        return;
    }
    put_char(j, '"');
    while (p < end && !j->err) {
        const unsigned char *run = p;
        /* Extend the run over plain ASCII and valid, harmless UTF-8. */
        for (;;) {
            p = json_skip_plain(p, end);
            if (p == end || *p < 0x80)
                break;
            int len = json_utf8_sequence(p, end);
            if (len < 0 || (len == 3 && is_line_separator(p)))
                break;
            p += len;
        }
        if (p > run)
            put(j, run, (size_t)(p - run));
        if (p == end)
            break;
        if (*p < 0x80) {
            put_escape(j, *p++);
            continue;
        }
        int len = json_utf8_sequence(p, end);
        if (len == 3) { /* U+2028 or U+2029 */
            put(j, p[2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
            p += 3;
        } else { /* invalid: one U+FFFD for the maximal subpart */
            put(j, "\xef\xbf\xbd", 3);
            p += -len;
        }
    }
    put_char(j, '"');
}

void wv_json_keyn(wv_json *j, const char *key, size_t n)
{
    if (j->err)
        return;
    if (j->depth == 0 || !(j->in_object & level_bit(j)) || j->want_value || !key) {
        fail(j, -EINVAL);
        return;
    }
    uint64_t bit = level_bit(j);
    if (!(j->first & bit))
        put_char(j, ',');
    j->first &= ~bit;
    put_string(j, key, n);
    put_char(j, ':');
    j->want_value = true;
}

void wv_json_key(wv_json *j, const char *key)
{
    wv_json_keyn(j, key, key ? strlen(key) : 0);
}

void wv_json_stringn(wv_json *j, const char *s, size_t n)
{
    if (!s) {
        wv_json_null(j);
        return;
    }
    if (!value_begins(j))
        return;
    put_string(j, s, n);
    value_ends(j);
}

void wv_json_string(wv_json *j, const char *s)
{
    wv_json_stringn(j, s, s ? strlen(s) : 0);
}

/* ----------------------------------------------------------- scalars */

/* Decimal digits of v, written backwards ending at end; returns the start. */
static char *format_decimal(char *end, unsigned long long v)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

static void put_integer(wv_json *j, bool negative, unsigned long long magnitude)
{
    char tmp[24];
    char *end = tmp + sizeof tmp, *p = format_decimal(end, magnitude);
    if (negative)
        *--p = '-';
    put(j, p, (size_t)(end - p));
}

void wv_json_int(wv_json *j, long long v)
{
    if (!value_begins(j))
        return;
    unsigned long long magnitude = v < 0 ? 0ull - (unsigned long long)v : (unsigned long long)v;
    put_integer(j, v < 0, magnitude);
    value_ends(j);
}

void wv_json_uint(wv_json *j, unsigned long long v)
{
    if (!value_begins(j))
        return;
    put_integer(j, false, v);
    value_ends(j);
}

/* Integral and below 1e15 (where %.15g is exact and plain): its digits
 * and ".0". */
static size_t format_integral(char *out, double v)
{
    char tmp[24];
    char *end = tmp + sizeof tmp, *p = format_decimal(end, (unsigned long long)fabs(v));
    if (signbit(v))
        *--p = '-';
    size_t n = (size_t)(end - p);
    memcpy(out, p, n);
    memcpy(out + n, ".0", 2);
    return n + 2;
}

/* A short decimal (prices, scores, coordinates): the smallest k <= 8 for
 * which m / 10^k, with m below 10^15, divides back exactly to |v|. Both
 * operands are exact doubles and IEEE division rounds correctly, so that
 * text reads back as v; having at most 15 digits, it is also what %.15g
 * prints (1e-4 <= |v| < 1e15 is where %g uses plain notation). 0 if none. */
static size_t format_short_decimal(char *out, double v)
{
    static const double powers[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8};
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 1e15))
        return 0;
    for (int k = 1; k <= 8; k++) {
        double scaled = a * powers[k];
        if (scaled >= 1e15)
            return 0;
        unsigned long long m = (unsigned long long)(scaled + 0.5);
        if ((double)m / powers[k] != a)
            continue;
        unsigned long long unit = (unsigned long long)powers[k];
        char tmp[40];
        char *end = tmp + sizeof tmp, *p = end;
        unsigned long long fraction = m % unit;
        for (int i = 0; i < k; i++, fraction /= 10)
            *--p = (char)('0' + fraction % 10);
        *--p = '.';
        p = format_decimal(p, m / unit);
        if (signbit(v))
            *--p = '-';
        memcpy(out, p, (size_t)(end - p));
        return (size_t)(end - p);
    }
    return 0;
}

/* The shortest of %.15g, %.16g and %.17g that reads back as v, in the C
 * locale whatever the program set (a decimal comma is not JSON). */
static size_t format_printf(char *out, size_t size, double v)
{
    locale_t c_locale = json_c_locale(), old = c_locale ? uselocale(c_locale) : (locale_t)0;
    int len;
    for (int precision = 15;; precision++) {
        len = snprintf(out, size, "%.*g", precision, v);
        if (precision == 17 || strtod(out, NULL) == v)
            break;
    }
    if (c_locale)
        uselocale(old);
    /* Keep integral values floats: 1e16 prints as "1e+16", but %g leaves
     * some large integral doubles without '.' or 'e'. */
    if (!strpbrk(out, ".e") && (size_t)len + 2 < size) {
        out[len++] = '.';
        out[len++] = '0';
    }
    return (size_t)len;
}

void wv_json_double(wv_json *j, double v)
{
    if (j->err)
        return;
    if (!isfinite(v)) {
        fail(j, -EINVAL);
        return;
    }
    if (!value_begins(j))
        return;
    char tmp[40];
    size_t len;
    if (fabs(v) < 1e15 && v == (double)(long long)v)
        len = format_integral(tmp, v);
    else if (!(len = format_short_decimal(tmp, v)))
        len = format_printf(tmp, sizeof tmp, v);
    put(j, tmp, len);
    value_ends(j);
}

void wv_json_bool(wv_json *j, bool v)
{
    if (!value_begins(j))
        return;
    if (v)
        put(j, "true", 4);
    else
        put(j, "false", 5);
    value_ends(j);
}

void wv_json_null(wv_json *j)
{
    if (!value_begins(j))
        return;
    put(j, "null", 4);
    value_ends(j);
}

void wv_json_raw(wv_json *j, const char *json, size_t n)
{
    if (!value_begins(j))
        return;
    put(j, json, n);
    value_ends(j);
}
