/*
 * src/redis/resp.c: the RESP codec (RESP2 and RESP3): where a reply ends,
 * its tree, and the encoding of a command. See resp.h for the contract;
 * this comment says how it is built.
 *
 * The scanner walks a reply element by element and keeps, between calls,
 * only offsets and counters: where the next element starts, how many
 * elements each open aggregate still expects, how many tree nodes it has
 * counted. What it cannot finish it leaves so that the next call does not
 * look at the same bytes twice: an unfinished text line keeps where its CR
 * search stopped, an unfinished bulk keeps its parsed header and waits for
 * the payload's end without reading it. Only a number's header line (at
 * most a few dozen bytes) is read again from its type byte, so a reply
 * costs O(its bytes) however the reads cut it.
 *
 * Every check runs as its byte is reached, in byte order, and a line's
 * content is checked only once the line is whole and after its length, so
 * a prefix of an input gives "need more" or the error of the whole.
 *
 * Nodes are counted when an element's header is complete, so a header
 * declaring a billion elements counts one node until its elements arrive;
 * the tree is sized by what resp_scan returned, bounded by the reply's
 * bytes. Attributes are counted as nesting (for the depth limit) but not as
 * elements or nodes.
 *
 * The builder trusts the scan: it re-reads the headers without checking
 * them, lays out each aggregate's elements contiguously as soon as its
 * header is read (so the tree needs no second pass), and only guards the
 * node array and the bytes against a caller's mistake.
 */
#include "redis/resp.h"

#include <errno.h>
#include <locale.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Steps of the scanner: negative results are errors. */
enum { MORE = 0, NEXT = 1, DONE = 2 };

/* Digits of a length, count or integer: 19 reach INT64_MAX; more means
 * leading zeros, refused so a header line stays short. */
#define NUMBER_DIGITS_MAX 20

/* ------------------------------------------------------------ scanner state */

static void reset_progress(resp_scanner *s)
{
    s->at.pos = 0;
    s->at.line_scan = 0;
    s->at.payload = 0;
    s->at.nodes = 0;
    s->at.depth = 0;
    s->at.attributes = 0;
    s->at.attribute_levels = 0;
}

void resp_scanner_init(resp_scanner *s, size_t max_bulk)
{
    memset(s, 0, sizeof *s);
    if (max_bulk == 0)
        max_bulk = RESP_MAX_BULK_DEFAULT;
    /* an end offset (start + length + CRLF) must never wrap */
    if (max_bulk > SIZE_MAX / 4)
        max_bulk = SIZE_MAX / 4;
    s->max_bulk = max_bulk;
}

static int fail(resp_scanner *s, int code, const char *fmt, ...) WV_PRINTF(3, 4);

static int fail(resp_scanner *s, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof s->err, fmt, ap);
    va_end(ap);
    s->error = code;
    return code;
}

static int fail_byte(resp_scanner *s, const char *expected, uint8_t c, size_t at)
{
    return fail(s, -EPROTO, "protocol error: expected %s, got byte 0x%02x at offset %zu", expected,
                c, at);
}

static bool is_digit(uint8_t c)
{
    return (unsigned)c - '0' <= 9;
}

/* The offset of the first CR in p[from..n), or n. Most lines are short
 * (+OK, -ERR ...): a few bytes inline cost less than calling memchr. */
static inline size_t find_cr(const char *p, size_t from, size_t n)
{
    size_t short_end = n - from > 16 ? from + 16 : n;
    for (size_t i = from; i < short_end; i++)
        if (p[i] == '\r')
            return i;
    if (short_end == n)
        return n;
    const char *cr = memchr(p + short_end, '\r', n - short_end);
    return cr ? (size_t)(cr - p) : n;
}

/*
 * One element ended at `end` (a scalar, or the last element of aggregates).
 * Counts it against the open aggregates, closing those it completes. Returns
 * DONE when that completes the reply.
 */
static inline int element_done(resp_scanner *s, size_t end)
{
    s->at.pos = end;
    while (s->at.depth > 0) {
        int d = s->at.depth - 1;
        if (--s->at.remaining[d] > 0)
            return NEXT;
        s->at.depth = d;
        if (s->at.attribute_levels >> d & 1) {
            /* not an element of its parent: what it annotates comes next */
            s->at.attribute_levels &= ~((uint64_t)1 << d);
            s->at.attributes--;
            return NEXT;
        }
    }
    return DONE;
}

static inline int scalar_done(resp_scanner *s, wv_redis_type type, size_t str_off, size_t str_len,
                              long long integer, size_t end)
{
    if (!s->at.attributes)
        s->at.nodes++;
    if (s->at.depth == 0) {
        s->at.type = type;
        s->at.str_off = str_off;
        s->at.str_len = str_len;
        s->at.integer = integer;
    }
    return element_done(s, end);
}

/* ------------------------------------------------------------ lines */

/* CRLF at p[at..]: NEXT, MORE, or an error. */
static inline int expect_crlf(resp_scanner *s, const uint8_t *p, size_t n, size_t at)
{
    if (at >= n)
        return MORE;
    if (p[at] != '\r')
        return fail_byte(s, "CRLF", p[at], at);
    if (at + 1 >= n)
        return MORE;
    if (p[at + 1] != '\n')
        return fail_byte(s, "LF after CR", p[at + 1], at + 1);
    return NEXT;
}

/* What a number over its limit means. */
typedef enum too_big { INTEGER_RANGE, BULK_LENGTH, ELEMENT_COUNT } too_big;

static int fail_too_big(resp_scanner *s, too_big what, size_t type_at)
{
    switch (what) {
    case INTEGER_RANGE:
        return fail(s, -EPROTO, "protocol error: integer out of the 64-bit range at offset %zu",
                    type_at);
    case BULK_LENGTH:
        return fail(s, -EMSGSIZE, "reply too large: a string longer than %zu bytes at offset %zu",
                    s->max_bulk, type_at);
    default:
        return fail(s, -EMSGSIZE,
                    "reply too large: an aggregate of more than %d elements at offset %zu",
                    RESP_MAX_ELEMENTS, type_at);
    }
}

/*
 * The digits of a number line from p[i], up to its CRLF: NEXT with *value
 * (at most `limit`) and *end after the CRLF, or MORE, or an error (a value
 * over the limit fails as `what` says, at the digit that passes it).
 */
static inline int scan_digits(resp_scanner *s, const uint8_t *p, size_t n, size_t i, uint64_t limit,
                              too_big what, size_t type_at, uint64_t *value, size_t *end)
{
    size_t first = i;
    uint64_t v = 0;
    for (;; i++) {
        if (i >= n)
            return MORE;
        unsigned d = (unsigned)p[i] - '0';
        if (d > 9)
            break;
        if (i - first == NUMBER_DIGITS_MAX)
            return fail(s, -EPROTO, "protocol error: number with more than %d digits at offset %zu",
                        NUMBER_DIGITS_MAX, type_at);
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, d, &v) || v > limit)
            return fail_too_big(s, what, type_at);
    }
    if (i == first)
        return fail_byte(s, "a digit", p[i], i);
    if (p[i] != '\r')
        return fail_byte(s, "a digit or CRLF", p[i], i);
    if (i + 1 >= n)
        return MORE;
    if (p[i + 1] != '\n')
        return fail_byte(s, "LF after CR", p[i + 1], i + 1);
    *value = v;
    *end = i + 2;
    return NEXT;
}

/* ':' integer */
static int scan_integer(resp_scanner *s, const uint8_t *p, size_t n, size_t i)
{
    if (i + 1 >= n)
        return MORE;
    bool negative = p[i + 1] == '-';
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    size_t end = 0;
    int rc = scan_digits(s, p, n, i + 1 + negative, limit, INTEGER_RANGE, i, &v, &end);
    if (rc != NEXT)
        return rc;
    long long value = negative && v ? -(long long)(v - 1) - 1 : (long long)v;
    return scalar_done(s, WV_REDIS_INT, 0, 0, value, end);
}

/*
 * The length of a bulk or the count of an aggregate whose type byte is at
 * p[i]: NEXT with *value (-1: nil, for $ and * only) and *end, or MORE, or
 * an error.
 */
__attribute__((always_inline)) static inline int scan_length(resp_scanner *s, const uint8_t *p,
                                                             size_t n, size_t i, uint64_t limit,
                                                             too_big what, long long *value,
                                                             size_t *end)
{
    uint8_t type = p[i];
    size_t at = i + 1;
    if (at >= n)
        return MORE;
    if (p[at] == '?')
        return fail(s, -EPROTO,
                    "protocol error: streamed replies are not supported (%c? at offset %zu)", type,
                    i);
    if (p[at] == '-') {
        if (type != '$' && type != '*')
            return fail(s, -EPROTO, "protocol error: negative length at offset %zu", i);
        if (at + 1 >= n)
            return MORE;
        if (p[at + 1] != '1')
            return is_digit(p[at + 1])
                       ? fail(s, -EPROTO, "protocol error: negative length at offset %zu", i)
                       : fail_byte(s, "a digit", p[at + 1], at + 1);
        if (at + 2 >= n)
            return MORE;
        if (is_digit(p[at + 2]))
            return fail(s, -EPROTO, "protocol error: negative length at offset %zu", i);
        int rc = expect_crlf(s, p, n, at + 2);
        if (rc != NEXT)
            return rc;
        *value = -1;
        *end = at + 4;
        return NEXT;
    }
    uint64_t v = 0;
    int rc = scan_digits(s, p, n, at, limit, what, i, &v, end);
    if (rc == NEXT)
        *value = (long long)v;
    return rc;
}

/*
 * The payload p[start .. start + len) and CRLF of a bulk of this type ('$',
 * '!', '='), whose header is read. When they have not all arrived, the
 * header is kept in the scanner so that the next call waits for the end
 * without reading the header (or the payload) again.
 */
static inline int scan_payload(resp_scanner *s, const uint8_t *p, size_t n, size_t start,
                               size_t len, uint8_t type_byte)
{
    size_t end = start + len, text = start;
    wv_redis_type type = WV_REDIS_STRING;
    if (type_byte == '=') {
        if (start + 3 >= n)
            goto more;
        if (p[start + 3] != ':')
            return fail_byte(s, "':' after a verbatim string's format", p[start + 3], start + 3);
        text = start + 4;
        type = WV_REDIS_VERBATIM;
    } else if (type_byte == '!') {
        type = WV_REDIS_ERROR;
    }
    if (end >= n)
        goto more;
    if (p[end] != '\r')
        return fail_byte(s, "CRLF after a string's bytes", p[end], end);
    if (end + 1 >= n)
        goto more;
    if (p[end + 1] != '\n')
        return fail_byte(s, "LF after CR", p[end + 1], end + 1);
    s->at.payload = 0;
    return scalar_done(s, type, text, end - text, 0, end + 2);
more:
    s->at.payload = start;
    s->at.payload_len = len;
    s->at.payload_type = type_byte;
    return MORE;
}

/* '$' bulk string, '!' blob error, '=' verbatim string: the header. */
static int scan_bulk_header(resp_scanner *s, const uint8_t *p, size_t n, size_t i)
{
    long long len = 0;
    size_t end = 0;
    int rc = scan_length(s, p, n, i, s->max_bulk, BULK_LENGTH, &len, &end);
    if (rc != NEXT)
        return rc;
    if (len < 0)
        return scalar_done(s, WV_REDIS_NIL, 0, 0, 0, end);
    if (p[i] == '=' && len < 4)
        return fail(s, -EPROTO,
                    "protocol error: verbatim string of %lld bytes has no room for its format "
                    "at offset %zu",
                    len, i);
    return scan_payload(s, p, n, end, (size_t)len, p[i]);
}

/* ',' RESP3's double: [+-]digits[.digits][(e|E)[+-]digits], or inf, -inf, nan. */
static bool double_text(const uint8_t *t, size_t n)
{
    size_t i = 0;
    if (i < n && (t[i] == '-' || t[i] == '+'))
        i++;
    if (n - i == 3 && (memcmp(t + i, "inf", 3) == 0 || memcmp(t + i, "nan", 3) == 0))
        return true;
    size_t digits = i;
    while (i < n && is_digit(t[i]))
        i++;
    if (i == digits)
        return false;
    if (i < n && t[i] == '.') {
        size_t fraction = ++i;
        while (i < n && is_digit(t[i]))
            i++;
        if (i == fraction)
            return false;
    }
    if (i < n && (t[i] == 'e' || t[i] == 'E')) {
        i++;
        if (i < n && (t[i] == '-' || t[i] == '+'))
            i++;
        size_t exponent = i;
        while (i < n && is_digit(t[i]))
            i++;
        if (i == exponent)
            return false;
    }
    return i == n;
}

/* '(' RESP3's big number: -?digits */
static bool bignum_text(const uint8_t *t, size_t n)
{
    size_t i = n && t[0] == '-';
    if (i == n)
        return false;
    for (; i < n; i++)
        if (!is_digit(t[i]))
            return false;
    return true;
}

/* '+' status, '-' error, ',' double, '(' big number: a line of text. */
static int scan_text_line(resp_scanner *s, const uint8_t *p, size_t n, size_t i)
{
    size_t text = i + 1, from = s->at.line_scan ? s->at.line_scan : text;
    size_t at = from < n ? find_cr((const char *)p, from, n) : n;
    if (at > text && at - text > s->max_bulk)
        return fail(s, -EMSGSIZE, "reply too large: a line longer than %zu bytes at offset %zu",
                    s->max_bulk, i);
    if (at + 1 >= n) {
        s->at.line_scan = at;
        return MORE;
    }
    if (p[at + 1] != '\n')
        return fail_byte(s, "LF after CR", p[at + 1], at + 1);
    s->at.line_scan = 0;
    size_t len = at - text;
    wv_redis_type type;
    switch (p[i]) {
    case '+':
        type = WV_REDIS_STATUS;
        break;
    case '-':
        type = WV_REDIS_ERROR;
        break;
    case ',':
        if (!double_text(p + text, len))
            return fail(s, -EPROTO, "protocol error: malformed double at offset %zu", i);
        type = WV_REDIS_DOUBLE;
        break;
    default:
        if (!bignum_text(p + text, len))
            return fail(s, -EPROTO, "protocol error: malformed big number at offset %zu", i);
        type = WV_REDIS_BIGNUM;
        break;
    }
    return scalar_done(s, type, text, len, 0, at + 2);
}

static wv_redis_type aggregate_type(uint8_t c)
{
    switch (c) {
    case '*':
        return WV_REDIS_ARRAY;
    case '%':
        return WV_REDIS_MAP;
    case '~':
        return WV_REDIS_SET;
    default:
        return WV_REDIS_PUSH;
    }
}

/* '*' array, '%' map, '~' set, '>' push, '|' attribute: the header. */
static int scan_aggregate_header(resp_scanner *s, const uint8_t *p, size_t n, size_t i)
{
    long long count = 0;
    size_t end = 0;
    int rc = scan_length(s, p, n, i, RESP_MAX_ELEMENTS, ELEMENT_COUNT, &count, &end);
    if (rc != NEXT)
        return rc;
    if (count < 0)
        return scalar_done(s, WV_REDIS_NIL, 0, 0, 0, end);
    if (s->at.depth == RESP_MAX_DEPTH)
        return fail(s, -EPROTO, "protocol error: aggregates nested deeper than %d at offset %zu",
                    RESP_MAX_DEPTH, i);
    bool attribute = p[i] == '|';
    uint32_t elements = (uint32_t)count * (attribute || p[i] == '%' ? 2 : 1);
    s->at.pos = end;
    if (attribute) {
        if (elements) {
            s->at.attribute_levels |= (uint64_t)1 << s->at.depth;
            s->at.attributes++;
            s->at.remaining[s->at.depth++] = elements;
        }
        return NEXT;
    }
    if (!s->at.attributes)
        s->at.nodes++;
    if (s->at.depth == 0) {
        s->at.type = aggregate_type(p[i]);
        s->at.str_off = s->at.str_len = 0;
        s->at.integer = 0;
    }
    if (!elements)
        return element_done(s, end);
    s->at.remaining[s->at.depth++] = elements;
    return NEXT;
}

/* '#t' or '#f' */
static int scan_boolean(resp_scanner *s, const uint8_t *p, size_t n, size_t i)
{
    if (i + 1 >= n)
        return MORE;
    uint8_t c = p[i + 1];
    if (c != 't' && c != 'f')
        return fail(s, -EPROTO,
                    "protocol error: a boolean is #t or #f, got byte 0x%02x at offset %zu", c,
                    i + 1);
    int rc = expect_crlf(s, p, n, i + 2);
    if (rc != NEXT)
        return rc;
    return scalar_done(s, WV_REDIS_BOOL, 0, 0, c == 't', i + 4);
}

/* '_' RESP3's null */
static int scan_null(resp_scanner *s, const uint8_t *p, size_t n, size_t i)
{
    int rc = expect_crlf(s, p, n, i + 1);
    if (rc != NEXT)
        return rc;
    return scalar_done(s, WV_REDIS_NIL, 0, 0, 0, i + 3);
}

static int scan_element(resp_scanner *s, const uint8_t *p, size_t n)
{
    size_t i = s->at.pos;
    if (i >= n)
        return MORE;
    switch (p[i]) {
    case '+':
    case '-':
    case ',':
    case '(':
        return scan_text_line(s, p, n, i);
    case ':':
        return scan_integer(s, p, n, i);
    case '$':
    case '!':
    case '=':
        return scan_bulk_header(s, p, n, i);
    case '*':
    case '%':
    case '~':
    case '>':
    case '|':
        return scan_aggregate_header(s, p, n, i);
    case '#':
        return scan_boolean(s, p, n, i);
    case '_':
        return scan_null(s, p, n, i);
    case ';':
    case '.':
        return fail(s, -EPROTO,
                    "protocol error: streamed replies are not supported (%c at offset %zu)", p[i],
                    i);
    default:
        return fail(s, -EPROTO, "protocol error: unknown reply type byte 0x%02x at offset %zu",
                    p[i], i);
    }
}

ssize_t resp_scan(resp_scanner *s, const char *buf, size_t n)
{
    const uint8_t *p = (const uint8_t *)buf;
    if (s->error)
        return s->error;
    for (;;) {
        int rc = s->at.payload
                     ? scan_payload(s, p, n, s->at.payload, s->at.payload_len, s->at.payload_type)
                     : scan_element(s, p, n);
        if (rc == NEXT)
            continue;
        if (rc != DONE)
            return rc;
        size_t len = s->at.pos;
        s->nodes = s->at.nodes;
        s->type = s->at.type;
        s->push = s->at.type == WV_REDIS_PUSH;
        s->str_off = s->at.str_off;
        s->str_len = s->at.str_len;
        s->integer = s->at.integer;
        reset_progress(s);
        return (ssize_t)len;
    }
}

/* ------------------------------------------------------------ the tree */

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

/* strtod in the "C" locale whatever the program set: RESP's decimal point
 * is '.', never a comma. */
static double strtod_c(const char *text)
{
    pthread_once(&c_locale_once, make_c_locale);
    return c_locale ? strtod_l(text, NULL, c_locale) : strtod(text, NULL);
}

/* A number resp_scan checked, at p[*i..]; *i moves past its CRLF. */
static inline long long read_number(const char *p, size_t len, size_t *i)
{
    size_t j = *i;
    bool negative = j < len && p[j] == '-';
    j += negative;
    uint64_t v = 0;
    for (; j < len && is_digit((uint8_t)p[j]); j++)
        v = v * 10 + (uint64_t)(p[j] - '0');
    *i = j + 2;
    return negative && v ? -(long long)(v - 1) - 1 : (long long)v;
}

/* The text of a line at p[*i..]: NUL-terminated over its CR. */
static bool read_line(char *p, size_t len, size_t *i, wv_redis_reply *r)
{
    if (*i >= len)
        return false;
    size_t cr = find_cr(p, *i, len);
    if (cr == len)
        return false;
    p[cr] = '\0';
    r->str = p + *i;
    r->len = cr - *i;
    *i = cr + 2;
    return true;
}

/* Skip the pairs of an attribute whose header is at p[*i..] (the '|' read),
 * and any attribute among them. */
static bool skip_attribute(const char *p, size_t len, size_t *i)
{
    uint64_t todo = 2 * (uint64_t)read_number(p, len, i);
    while (todo) {
        if (*i >= len)
            return false;
        char type = p[(*i)++];
        long long n;
        switch (type) {
        case '+':
        case '-':
        case ',':
        case '(': {
            size_t cr = *i < len ? find_cr(p, *i, len) : len;
            if (cr == len)
                return false;
            *i = cr + 2;
            break;
        }
        case ':':
            read_number(p, len, i);
            break;
        case '#':
            *i += 3;
            break;
        case '_':
            *i += 2;
            break;
        case '$':
        case '!':
        case '=':
            n = read_number(p, len, i);
            if (n > 0)
                *i += (size_t)n;
            if (n >= 0)
                *i += 2;
            break;
        case '*':
        case '~':
        case '>':
            n = read_number(p, len, i);
            if (n > 0)
                todo += (uint64_t)n;
            break;
        case '%':
        case '|':
            n = read_number(p, len, i);
            if (n > 0)
                todo += 2 * (uint64_t)n;
            if (type == '|')
                continue; /* not an element: it annotates the next one */
            break;
        default:
            return false;
        }
        todo--;
    }
    return *i <= len;
}

int resp_build(char *p, size_t len, wv_redis_reply *nodes, size_t count)
{
    struct level {
        wv_redis_reply *elem;
        size_t next, len;
    } stack[RESP_MAX_DEPTH];
    int depth = 0;
    size_t i = 0, used = 1;
    if (count == 0)
        return -EINVAL;
    wv_redis_reply *r = nodes;
    for (;;) {
        if (i >= len)
            return -EINVAL;
        char type = p[i++];
        if (type == '|') {
            if (!skip_attribute(p, len, &i))
                return -EINVAL;
            continue;
        }
        *r = (wv_redis_reply){.type = WV_REDIS_NIL};
        long long n;
        switch (type) {
        case '+':
        case '-':
        case ',':
        case '(':
            if (!read_line(p, len, &i, r))
                return -EINVAL;
            if (type == '+') {
                r->type = WV_REDIS_STATUS;
            } else if (type == '-') {
                r->type = WV_REDIS_ERROR;
            } else if (type == '(') {
                r->type = WV_REDIS_BIGNUM;
            } else {
                r->type = WV_REDIS_DOUBLE;
                r->dbl = strtod_c(r->str);
            }
            break;
        case ':':
            r->type = WV_REDIS_INT;
            r->integer = read_number(p, len, &i);
            break;
        case '#':
            if (i + 3 > len)
                return -EINVAL;
            r->type = WV_REDIS_BOOL;
            r->integer = p[i] == 't';
            i += 3;
            break;
        case '_':
            i += 2;
            break;
        case '$':
        case '!':
        case '=': {
            n = read_number(p, len, &i);
            if (n < 0)
                break;
            if (i > len || (size_t)n > len - i || len - i - (size_t)n < 2)
                return -EINVAL;
            char *text = p + i;
            p[i + (size_t)n] = '\0';
            i += (size_t)n + 2;
            r->type = type == '$' ? WV_REDIS_STRING : WV_REDIS_ERROR;
            if (type == '=') {
                if (n < 4)
                    return -EINVAL;
                r->type = WV_REDIS_VERBATIM;
                memcpy(r->vfmt, text, 3);
                r->vfmt[3] = '\0';
                text += 4;
                n -= 4;
            }
            r->str = text;
            r->len = (size_t)n;
            break;
        }
        case '*':
        case '%':
        case '~':
        case '>': {
            n = read_number(p, len, &i);
            if (n < 0)
                break;
            size_t k = (size_t)n * (type == '%' ? 2 : 1);
            r->type = aggregate_type((uint8_t)type);
            r->len = k;
            if (k == 0)
                break;
            if (k > count - used || depth == RESP_MAX_DEPTH)
                return -EINVAL;
            r->elem = nodes + used;
            used += k;
            stack[depth++] = (struct level){r->elem, 0, k};
            r = r->elem;
            continue;
        }
        default:
            return -EINVAL;
        }
        /* r is complete: on to the next slot, closing completed aggregates */
        while (depth > 0 && ++stack[depth - 1].next == stack[depth - 1].len)
            depth--;
        if (depth == 0)
            return i == len ? 0 : -EINVAL;
        r = stack[depth - 1].elem + stack[depth - 1].next;
    }
}

/* ------------------------------------------------------------ commands */

static const char digit_pairs[] = "00010203040506070809"
                                  "10111213141516171819"
                                  "20212223242526272829"
                                  "30313233343536373839"
                                  "40414243444546474849"
                                  "50515253545556575859"
                                  "60616263646566676869"
                                  "70717273747576777879"
                                  "80818283848586878889"
                                  "90919293949596979899";

static size_t decimal_len(uint64_t v)
{
    size_t n = 1;
    for (;;) {
        if (v < 10)
            return n;
        if (v < 100)
            return n + 1;
        if (v < 1000)
            return n + 2;
        if (v < 10000)
            return n + 3;
        v /= 10000;
        n += 4;
    }
}

/* Write v in decimal at w; returns the end. */
static char *put_decimal(char *w, uint64_t v)
{
    char *end = w + decimal_len(v), *q = end;
    while (v >= 100) {
        size_t k = (size_t)(v % 100) * 2;
        v /= 100;
        *--q = digit_pairs[k + 1];
        *--q = digit_pairs[k];
    }
    if (v >= 10) {
        *--q = digit_pairs[v * 2 + 1];
        *--q = digit_pairs[v * 2];
    } else {
        *--q = (char)('0' + v);
    }
    return end;
}

/* A command's arguments come as pointers and lengths or as wv_str. */
typedef struct args {
    const char *const *argv;
    const size_t *lens;
    const wv_str *strs;
} args;

static size_t arg_len(const args *a, int k)
{
    return a->strs ? a->strs[k].n : a->lens[k];
}

static const char *arg_bytes(const args *a, int k)
{
    return a->strs ? a->strs[k].p : a->argv[k];
}

/* 0 when argc < 0 or the size does not fit in a size_t */
static size_t command_size(const args *a, int argc)
{
    if (argc < 0)
        return 0;
    size_t size = 3 + decimal_len((uint64_t)argc); /* *N CRLF */
    for (int k = 0; k < argc; k++) {
        size_t len = arg_len(a, k), arg = 5 + decimal_len(len); /* $len CRLF ... CRLF */
        if (__builtin_add_overflow(arg, len, &arg) || __builtin_add_overflow(size, arg, &size))
            return 0;
    }
    return size;
}

/* The size is computed first and reserved once, so a failure appends
 * nothing, and the lengths are written without printf. */
static int write_command(wv_buf *out, const args *a, int argc)
{
    if (argc < 0)
        return -EINVAL;
    size_t size = command_size(a, argc);
    if (size == 0)
        return -ENOMEM;
    int rc = wv_buf_reserve(out, size);
    if (rc < 0)
        return rc;
    char *w = out->p + out->n;
    *w++ = '*';
    w = put_decimal(w, (uint64_t)argc);
    *w++ = '\r';
    *w++ = '\n';
    for (int k = 0; k < argc; k++) {
        size_t len = arg_len(a, k);
        *w++ = '$';
        w = put_decimal(w, len);
        *w++ = '\r';
        *w++ = '\n';
        if (len)
            memcpy(w, arg_bytes(a, k), len);
        w += len;
        *w++ = '\r';
        *w++ = '\n';
    }
    out->n += size;
    return 0;
}

size_t resp_command_size(const size_t *lens, int argc)
{
    return command_size(&(args){.lens = lens}, argc);
}

int resp_write_command(wv_buf *out, const char *const *argv, const size_t *lens, int argc)
{
    return write_command(out, &(args){.argv = argv, .lens = lens}, argc);
}

int resp_append_command(wv_buf *out, int argc, const wv_str *argv)
{
    return write_command(out, &(args){.strs = argv}, argc);
}
