/*
 * src/tasks/celery.c: Celery's task messages and result meta (celery.h).
 *
 * Reading. weave's JSON reader checks a document strictly and hands out
 * typed values, but it keeps no text of a value: strings are unescaped in
 * place and numbers are only read as int64 or double. A task's args,
 * kwargs and embedded signatures must reach the worker as the producer
 * wrote them (an int past int64, 12345678901234567890, is fine in Python),
 * so after wv_json_parse has accepted the body a small scanner walks the
 * same text for the spans of its elements and members. The scanner trusts
 * its input, which is why it only ever runs on text the parser accepted.
 *
 * Writing. Python's json.dumps, which kombu uses for the body and for the
 * Redis envelope, puts ", " and ": " between items and writes every
 * character outside printable ASCII as \uXXXX (ensure_ascii); weave's JSON
 * writer is compact and writes UTF-8. So this file has its own small
 * writer in Python's style (py_*), and rewrites JSON handed to it by
 * walking the checked text: numbers as Python would print them after
 * json.loads (3 stays 3, 2.50 becomes 2.5, -0 becomes 0), strings
 * re-escaped.
 *
 * argsrepr and kwargsrepr are not repr_state(): Celery writes them with its
 * saferepr (celery/utils/saferepr.py), which quotes strings in ' with only
 * ' escaped (a newline stays a newline), stops at 3 levels of containers
 * ("[...]") and cuts the text at 1024 characters with ", ..." and the
 * closing brackets. saferepr() below follows that stream token by token.
 */
#include "tasks/celery.h"

#include "base64/base64.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "weave/rt.h"

static const wv_str null_text = {"null", 4};

/* ------------------------------------------------------------ base64 */

/* in[0..n) as padded base64 (Python's base64.b64encode) appended to b. */
static int b64_append(wv_buf *b, const unsigned char *in, size_t n)
{
    if (wv_buf_reserve(b, wv__b64_encoded_len(n, true)) < 0)
        return -ENOMEM;
    b->n += wv__b64_encode(in, n, true, b->p + b->n);
    return 0;
}

/* ------------------------------------------------------------ scanning checked JSON */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* The end of the value at p (text wv_json_parse accepted). */
static const char *skip_value(const char *p, const char *end)
{
    if (*p == '"') {
        for (p++; *p != '"'; p++)
            if (*p == '\\')
                p++;
        return p + 1;
    }
    if (*p == '[' || *p == '{') {
        int depth = 0;
        for (; p < end; p++) {
            if (*p == '"') {
                p = skip_value(p, end) - 1;
            } else if (*p == '[' || *p == '{') {
                depth++;
            } else if (*p == ']' || *p == '}') {
                if (--depth == 0)
                    return p + 1;
            }
        }
        return end;
    }
    while (p < end && *p != ',' && *p != ']' && *p != '}' && *p != ' ' && *p != '\t' &&
           *p != '\n' && *p != '\r')
        p++;
    return p;
}

/* Iterate a container: *p just after '[' or '{' (or after an item). For an
 * object, key gets the raw key (between the quotes). false at the end. */
static bool next_item(const char **p, const char *end, wv_str *key, wv_str *val)
{
    const char *q = skip_ws(*p, end);
    if (*q == ',')
        q = skip_ws(q + 1, end);
    if (*q == ']' || *q == '}')
        return false;
    if (key) {
        const char *k = skip_value(q, end);
        *key = (wv_str){q + 1, (size_t)(k - q - 2)};
        q = skip_ws(skip_ws(k, end) + 1, end); /* past ':' */
    }
    const char *e = skip_value(q, end);
    *val = (wv_str){q, (size_t)(e - q)};
    *p = e;
    return true;
}

static wv_str trim(const char *p, size_t n)
{
    const char *end = p + n;
    p = skip_ws(p, end);
    while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        end--;
    return (wv_str){p, (size_t)(end - p)};
}

/* Element i of the array text a, or an empty wv_str. */
static wv_str element(wv_str a, size_t i)
{
    const char *p = a.p + 1, *end = a.p + a.n;
    wv_str v = {0};
    for (size_t k = 0; next_item(&p, end, NULL, &v); k++)
        if (k == i)
            return v;
    return (wv_str){0};
}

/* Member `name` of the object text o (the last one, as the reader does), or
 * an empty wv_str. Keys are compared as written: Celery's are plain ASCII. */
static wv_str member(wv_str o, const char *name)
{
    if (o.n == 0 || o.p[0] != '{')
        return (wv_str){0};
    const char *p = o.p + 1, *end = o.p + o.n;
    wv_str k, v, found = {0};
    while (next_item(&p, end, &k, &v))
        if (wv_str_eq_cstr(k, name))
            found = v;
    return found;
}

static uint32_t hex4(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v = v << 4 | (uint32_t)(p[i] <= '9' ? p[i] - '0' : (p[i] | 0x20) - 'a' + 10);
    return v;
}

/* The code point at *p in a JSON string's raw text (escapes decoded, pairs
 * of surrogates joined), moving *p past it. */
static uint32_t next_cp(const char **pp)
{
    const unsigned char *p = (const unsigned char *)*pp;
    uint32_t c;
    if (*p == '\\') {
        switch (p[1]) {
        case 'b':
            c = '\b';
            break;
        case 'f':
            c = '\f';
            break;
        case 'n':
            c = '\n';
            break;
        case 'r':
            c = '\r';
            break;
        case 't':
            c = '\t';
            break;
        case 'u': {
            c = hex4(p + 2);
            p += 6;
            if (c >= 0xd800 && c < 0xdc00 && p[0] == '\\' && p[1] == 'u') {
                c = 0x10000 + ((c - 0xd800) << 10) + (hex4(p + 2) - 0xdc00);
                p += 6;
            }
            *pp = (const char *)p;
            return c;
        }
        default:
            c = p[1];
            break; /* " \ / */
        }
        *pp = (const char *)p + 2;
        return c;
    }
    if (*p < 0x80) {
        *pp = (const char *)p + 1;
        return *p;
    }
    int len = *p >= 0xf0 ? 4 : *p >= 0xe0 ? 3 : 2;
    c = *p & (0x3f >> (len - 1));
    for (int i = 1; i < len; i++)
        c = c << 6 | (p[i] & 0x3f);
    *pp = (const char *)p + len;
    return c;
}

static int put_utf8(wv_buf *b, uint32_t c)
{
    char u[4];
    size_t n;
    if (c < 0x80) {
        u[0] = (char)c;
        n = 1;
    } else if (c < 0x800) {
        u[0] = (char)(0xc0 | c >> 6);
        u[1] = (char)(0x80 | (c & 0x3f));
        n = 2;
    } else if (c < 0x10000) {
        u[0] = (char)(0xe0 | c >> 12);
        u[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        u[2] = (char)(0x80 | (c & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | c >> 18);
        u[1] = (char)(0x80 | ((c >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((c >> 6) & 0x3f));
        u[3] = (char)(0x80 | (c & 0x3f));
        n = 4;
    }
    return wv_buf_append(b, u, n);
}

/* ------------------------------------------------------------ Python's json.dumps */

/* Number text uses '.', whatever LC_NUMERIC the program set. */
static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

static double strtod_c(const char *s)
{
    pthread_once(&c_locale_once, make_c_locale);
    return c_locale ? strtod_l(s, NULL, c_locale) : strtod(s, NULL);
}

/* The length of the valid UTF-8 sequence at p (p[0] >= 0x80), or -1. */
static int utf8_sequence(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0], lo = 0x80, hi = 0xbf;
    int need;
    if (c >= 0xc2 && c <= 0xdf) {
        need = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        need = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80; /* overlong */
        hi = c == 0xed ? 0x9f : 0xbf; /* surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        need = 4;
        lo = c == 0xf0 ? 0x90 : 0x80; /* overlong */
        hi = c == 0xf4 ? 0x8f : 0xbf; /* past U+10FFFF */
    } else {
        return -1;
    }
    for (int i = 1; i < need; i++) {
        if (p + i >= end || p[i] < lo || p[i] > hi)
            return -1;
        lo = 0x80;
        hi = 0xbf;
    }
    return need;
}

static int py_cp(wv_buf *b, uint32_t c)
{
    switch (c) {
    case '"':
        return wv_buf_append(b, "\\\"", 2);
    case '\\':
        return wv_buf_append(b, "\\\\", 2);
    case '\n':
        return wv_buf_append(b, "\\n", 2);
    case '\r':
        return wv_buf_append(b, "\\r", 2);
    case '\t':
        return wv_buf_append(b, "\\t", 2);
    case '\b':
        return wv_buf_append(b, "\\b", 2);
    case '\f':
        return wv_buf_append(b, "\\f", 2);
    }
    if (c >= 0x20 && c < 0x7f) {
        char ch = (char)c;
        return wv_buf_append(b, &ch, 1);
    }
    if (c >= 0x10000) {
        c -= 0x10000;
        return wv_buf_printf(b, "\\u%04x\\u%04x", 0xd800 + (c >> 10), 0xdc00 + (c & 0x3ff));
    }
    return wv_buf_printf(b, "\\u%04x", c);
}

/* A UTF-8 string as json.dumps writes a str. Invalid UTF-8: -EINVAL. */
static int py_string(wv_buf *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    int rc = wv_buf_append(b, "\"", 1);
    while (rc == 0 && p < end) {
        if (*p >= 0x80) {
            int len = utf8_sequence(p, end);
            if (len < 0)
                return wv_fail(-EINVAL, "celery: a string is not valid UTF-8");
            const char *q = (const char *)p;
            rc = py_cp(b, next_cp(&q));
            p += len;
        } else {
            rc = py_cp(b, *p++);
        }
    }
    return rc ? rc : wv_buf_append(b, "\"", 1);
}

static int py_cstring(wv_buf *b, const char *s)
{
    return s ? py_string(b, s, strlen(s)) : wv_buf_puts(b, "null");
}

int celery_py_float(wv_buf *b, double x)
{
    if (isnan(x))
        return wv_buf_puts(b, "NaN");
    if (isinf(x))
        return wv_buf_puts(b, x < 0 ? "-Infinity" : "Infinity");
    char digits[32], tmp[48];
    int exp10 = 0, nd = 0;
    for (int prec = 1; prec <= 17; prec++) {
        char e[40];
        snprintf(e, sizeof e, "%.*e", prec - 1, fabs(x));
        nd = 0;
        const char *q = e;
        for (; *q && *q != 'e'; q++)
            if (*q >= '0' && *q <= '9')
                digits[nd++] = *q;
        exp10 = atoi(q + 1);
        snprintf(tmp, sizeof tmp, "%c.%.*se%d", digits[0], nd - 1, digits + 1, exp10);
        if (strtod_c(tmp) == fabs(x))
            break;
    }
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (signbit(x) && wv_buf_append(b, "-", 1) < 0)
        return -ENOMEM;
    if (exp10 < -4 || exp10 >= 16) {
        int rc = wv_buf_append(b, digits, 1);
        if (nd > 1)
            rc = rc ? rc : wv_buf_printf(b, ".%.*s", nd - 1, digits + 1);
        return rc ? rc : wv_buf_printf(b, "e%c%02d", exp10 < 0 ? '-' : '+', abs(exp10));
    }
    if (exp10 < 0) {
        int rc = wv_buf_append(b, "0.", 2);
        for (int i = 0; rc == 0 && i < -exp10 - 1; i++)
            rc = wv_buf_append(b, "0", 1);
        return rc ? rc : wv_buf_append(b, digits, (size_t)nd);
    }
    int rc = 0;
    for (int i = 0; rc == 0 && i <= exp10; i++)
        rc = wv_buf_append(b, i < nd ? &digits[i] : "0", 1);
    if (rc == 0 && nd > exp10 + 1)
        return wv_buf_printf(b, ".%.*s", nd - exp10 - 1, digits + exp10 + 1);
    return rc ? rc : wv_buf_append(b, ".0", 2);
}

static bool is_float_text(wv_str num)
{
    return memchr(num.p, '.', num.n) || memchr(num.p, 'e', num.n) || memchr(num.p, 'E', num.n);
}

/* Whether a float's text is past double's range (Python reads inf). */
static bool float_overflows(wv_str num)
{
    char tmp[512];
    if (!is_float_text(num) || num.n >= sizeof tmp)
        return false;
    memcpy(tmp, num.p, num.n);
    tmp[num.n] = 0;
    return isinf(strtod_c(tmp));
}

/* A JSON number as Python prints it after json.loads: an int (any size)
 * as written but for "-0", a float through float's repr_state. */
static int py_number(wv_buf *b, wv_str num)
{
    if (!is_float_text(num)) {
        if (num.n == 2 && num.p[0] == '-' && num.p[1] == '0')
            return wv_buf_append(b, "0", 1);
        return wv_buf_append(b, num.p, num.n);
    }
    char tmp[512];
    if (num.n >= sizeof tmp) /* no float needs that many digits; Python reads them anyway */
        return wv_buf_append(b, num.p, num.n);
    memcpy(tmp, num.p, num.n);
    tmp[num.n] = 0;
    double x = strtod_c(tmp);
    /* past double's range: Python reads inf and json.dumps writes Infinity,
     * which is not JSON (weave's reader refuses it); the text stays, and
     * Python reads it as the same inf */
    return isinf(x) ? wv_buf_append(b, num.p, num.n) : celery_py_float(b, x);
}

/* Seconds as a Python producer passes them: integral values as ints. */
static int py_seconds(wv_buf *b, double s)
{
    if (s < 0 || isnan(s))
        return wv_buf_puts(b, "null");
    if (s == floor(s) && s < 1e15)
        return wv_buf_printf(b, "%lld", (long long)s);
    return celery_py_float(b, s);
}

/* The checked JSON value v rewritten as json.dumps writes it. */
static int py_value(wv_buf *b, wv_str v)
{
    char c = v.p[0];
    if (c == '"') {
        const char *p = v.p + 1, *end = v.p + v.n - 1;
        int rc = wv_buf_append(b, "\"", 1);
        while (rc == 0 && p < end)
            rc = py_cp(b, next_cp(&p));
        return rc ? rc : wv_buf_append(b, "\"", 1);
    }
    if (c == '[' || c == '{') {
        bool obj = c == '{';
        const char *p = v.p + 1, *end = v.p + v.n;
        wv_str key, val;
        int rc = wv_buf_append(b, &c, 1);
        for (bool first = true; rc == 0 && next_item(&p, end, obj ? &key : NULL, &val);
             first = false) {
            if (!first)
                rc = wv_buf_append(b, ", ", 2);
            if (obj && rc == 0) {
                rc = py_value(b, (wv_str){key.p - 1, key.n + 2});
                rc = rc ? rc : wv_buf_append(b, ": ", 2);
            }
            rc = rc ? rc : py_value(b, val);
        }
        return rc ? rc : wv_buf_append(b, obj ? "}" : "]", 1);
    }
    if (c == '-' || (c >= '0' && c <= '9'))
        return py_number(b, v);
    return wv_buf_append(b, v.p, v.n); /* true false null */
}

/* Check json[0..n) (strict, of type want unless WV_JSON_MISSING) and
 * rewrite it into b. what names it in errors. */
static int py_checked(wv_buf *b, const char *json, size_t n, wv_json_type want, const char *what)
{
    wv_json_doc *doc;
    int rc = wv_json_parse(json, n, &doc);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0)
        return wv_fail(-EINVAL, "celery: %s: %s", what, wv_errmsg());
    wv_json_type type = wv_json_type_of(wv_json_doc_root(doc));
    wv_json_doc_free(doc);
    if (want != WV_JSON_MISSING && type != want)
        return wv_fail(-EINVAL, "celery: %s: expected a JSON %s", what,
                       want == WV_JSON_ARRAY ? "array" : "object");
    return py_value(b, trim(json, n));
}

int celery_pyjson(const char *json, size_t n, wv_buf *out)
{
    if (!json)
        return -EINVAL;
    return py_checked(out, json, n, WV_JSON_MISSING, "json");
}

/* ------------------------------------------------------------ saferepr */

/* celery.utils.saferepr's token stream: every token (bracket, separator,
 * scalar) is counted against maxlen in characters; the first token that
 * finds maxlen used up is replaced by ", ..." and the closing brackets of
 * the containers still open, and the text ends. A container's opening
 * bracket counts as open before its check, its closing one as closed. */
typedef struct repr_state {
    wv_buf *out;
    bool limited, stopped;
    long left; /* characters */
    int level, open;
    const char *closers[8];
    int err;
} repr_state;

#define REPR_MAXLEVELS 3

static size_t count_cps(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

/* Whether the next token may go out; else end the text. */
static bool repr_go(repr_state *r)
{
    if (r->stopped || r->err)
        return false;
    if (r->limited && r->left <= 0) {
        r->stopped = true;
        r->err = wv_buf_puts(r->out, ", ...");
        for (int i = r->open - 1; r->err == 0 && i >= 0; i--)
            r->err = wv_buf_puts(r->out, r->closers[i]);
        return false;
    }
    return true;
}

static void repr_put(repr_state *r, const char *s, size_t n)
{
    if (r->err == 0)
        r->err = wv_buf_append(r->out, s, n);
    r->left -= (long)count_cps(s, n);
}

static void repr_token(repr_state *r, const char *s)
{
    if (repr_go(r))
        repr_put(r, s, strlen(s));
}

/* truncate(s, maxlen): at maxlen characters or more, the first maxlen up
 * to their last space, and "...". Returns the bytes kept; *dots set. */
static size_t repr_cut(const repr_state *r, const char *s, size_t n, bool *dots)
{
    *dots = false;
    if (!r->limited || r->left <= 0 || count_cps(s, n) < (size_t)r->left)
        return n;
    size_t i = 0;
    for (long k = 0; k < r->left; k++) /* to the end of maxlen characters */
        do
            i++;
        while (i < n && ((unsigned char)s[i] & 0xc0) == 0x80);
    size_t cut = i;
    while (cut > 0 && s[cut - 1] != ' ')
        cut--;
    *dots = true;
    return cut ? cut - 1 : i;
}

/* A scalar that is not a string: its text, cut like any token. */
static void repr_scalar(repr_state *r, const char *s, size_t n)
{
    if (!repr_go(r))
        return;
    bool dots;
    size_t keep = repr_cut(r, s, n, &dots);
    wv_buf t = {0};
    int rc = wv_buf_append(&t, s, keep);
    if (rc == 0 && dots)
        rc = wv_buf_append(&t, "...", 3);
    if (rc)
        r->err = rc;
    else
        repr_put(r, t.p, t.n);
    wv_buf_free(&t);
}

/* A string: '...' with ' escaped, after the cut (_format_chars). */
static void repr_string(repr_state *r, wv_str raw)
{
    if (!repr_go(r))
        return;
    wv_buf s = {0}, t = {0};
    const char *p = raw.p + 1, *end = raw.p + raw.n - 1;
    int rc = 0;
    while (rc == 0 && p < end)
        rc = put_utf8(&s, next_cp(&p));
    bool dots = false;
    size_t keep = rc ? 0 : repr_cut(r, s.p ? s.p : "", s.n, &dots);
    rc = rc ? rc : wv_buf_append(&t, "'", 1);
    for (size_t i = 0; rc == 0 && i < keep; i++)
        rc = s.p[i] == '\'' ? wv_buf_append(&t, "\\'", 2) : wv_buf_append(&t, &s.p[i], 1);
    if (rc == 0 && dots)
        rc = wv_buf_append(&t, "...", 3);
    rc = rc ? rc : wv_buf_append(&t, "'", 1);
    if (rc)
        r->err = rc;
    else
        repr_put(r, t.p, t.n);
    wv_buf_free(&s);
    wv_buf_free(&t);
}

static void repr_value(repr_state *r, wv_str v, bool top, bool as_list);

static void repr_container(repr_state *r, wv_str v, const char *opener, const char *closer)
{
    bool obj = v.p[0] == '{';
    if (r->level >= REPR_MAXLEVELS) {
        char t[8];
        snprintf(t, sizeof t, "%s...%s", opener, closer);
        repr_scalar(r, t, strlen(t));
        return;
    }
    size_t count = 0;
    const char *p = v.p + 1, *end = v.p + v.n;
    wv_str key, val;
    while (next_item(&p, end, obj ? &key : NULL, &val))
        count++;
    if (!obj && strcmp(closer, ")") == 0 && count == 1)
        closer = ",)";
    r->closers[r->open++] = closer;
    r->level++;
    repr_token(r, opener);
    p = v.p + 1;
    for (size_t i = 0; next_item(&p, end, obj ? &key : NULL, &val); i++) {
        if (obj) {
            repr_string(r, (wv_str){key.p - 1, key.n + 2});
            repr_token(r, ": ");
        }
        repr_value(r, val, false, false);
        if (i + 1 < count)
            repr_token(r, ", ");
    }
    r->open--;
    r->level--;
    repr_token(r, closer);
}

static void repr_value(repr_state *r, wv_str v, bool top, bool as_list)
{
    switch (v.p[0]) {
    case '"':
        repr_string(r, v);
        return;
    case '[':
        repr_container(r, v, top && !as_list ? "(" : "[", top && !as_list ? ")" : "]");
        return;
    case '{':
        repr_container(r, v, "{", "}");
        return;
    case 't':
        repr_scalar(r, "True", 4);
        return;
    case 'f':
        repr_scalar(r, "False", 5);
        return;
    case 'n':
        repr_scalar(r, "None", 4);
        return;
    }
    wv_buf num = {0};
    int rc = py_number(&num, v);
    if (rc)
        r->err = rc;
    else if (float_overflows(v)) /* str(float("1e400")) */
        repr_scalar(r, v.p[0] == '-' ? "-inf" : "inf", v.p[0] == '-' ? 4 : 3);
    else
        repr_scalar(r, num.p, num.n);
    wv_buf_free(&num);
}

int celery_saferepr(const char *json, size_t n, bool as_list, size_t maxlen, wv_buf *out)
{
    wv_json_doc *doc;
    int rc = json ? wv_json_parse(json, n, &doc) : -EINVAL;
    if (rc < 0)
        return rc == -ENOMEM ? rc : wv_fail(-EINVAL, "celery: saferepr: %s", wv_errmsg());
    wv_json_doc_free(doc);
    size_t start = out->n;
    repr_state r = {
        .out = out, .limited = maxlen > 0, .left = maxlen > LONG_MAX ? LONG_MAX : (long)maxlen};
    repr_value(&r, trim(json, n), true, as_list);
    if (r.err)
        out->n = start;
    return r.err;
}

/* ------------------------------------------------------------ dates */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
 * days_from_civil). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t yy = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yy + (*m <= 2));
}

static bool digits(const char *s, size_t n, size_t at, int count, int *out)
{
    if (at + (size_t)count > n)
        return false;
    int v = 0;
    for (int i = 0; i < count; i++) {
        char c = s[at + (size_t)i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *out = v;
    return true;
}

int celery_iso8601_parse(const char *s, size_t n, int64_t *ns)
{
    int y, mo, d, h, mi, sec;
    if (!s || !digits(s, n, 0, 4, &y) || n < 19 || s[4] != '-' || !digits(s, n, 5, 2, &mo) ||
        s[7] != '-' || !digits(s, n, 8, 2, &d) || (s[10] != 'T' && s[10] != ' ') ||
        !digits(s, n, 11, 2, &h) || s[13] != ':' || !digits(s, n, 14, 2, &mi) || s[16] != ':' ||
        !digits(s, n, 17, 2, &sec))
        return -EINVAL;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || sec > 59)
        return -EINVAL;
    size_t i = 19;
    int64_t frac = 0;
    if (i < n && (s[i] == '.' || s[i] == ',')) {
        int nd = 0;
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++, nd++)
            if (nd < 9)
                frac = frac * 10 + (s[i] - '0');
        if (nd == 0 || nd > 9)
            return -EINVAL;
        for (; nd < 9; nd++)
            frac *= 10;
    }
    int64_t offset = 0;
    if (i < n && s[i] == 'Z') {
        i++;
    } else if (i < n && (s[i] == '+' || s[i] == '-')) {
        int oh, om = 0;
        if (!digits(s, n, i + 1, 2, &oh))
            return -EINVAL;
        size_t j = i + 3;
        if (j < n && s[j] == ':')
            j++;
        if (j < n && !digits(s, n, j, 2, &om))
            return -EINVAL;
        if (j < n)
            j += 2;
        if (oh > 23 || om > 59)
            return -EINVAL;
        offset = (s[i] == '-' ? -1 : 1) * ((int64_t)oh * 3600 + om * 60);
        i = j;
    }
    if (i != n)
        return -EINVAL;
    int64_t secs =
        days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + sec - offset;
    if (secs <= INT64_MIN / 1000000000 || secs >= INT64_MAX / 1000000000)
        return -ERANGE; /* before 1677 or after 2262 */
    *ns = secs * 1000000000 + frac;
    return 0;
}

int celery_iso8601_format(int64_t ns, bool utc_offset, wv_buf *out)
{
    int64_t us = ns >= 0 ? ns / 1000 : -((-ns + 999) / 1000);
    int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
    int64_t frac = us - secs * 1000000;
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t sod = secs - days * 86400;
    int y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 1 || y > 9999)
        return -EINVAL;
    int rc = wv_buf_printf(out, "%04d-%02u-%02uT%02d:%02d:%02d", y, m, d, (int)(sod / 3600),
                           (int)(sod / 60 % 60), (int)(sod % 60));
    if (rc == 0 && frac)
        rc = wv_buf_printf(out, ".%06lld", (long long)frac);
    if (rc == 0 && utc_offset)
        rc = wv_buf_puts(out, "+00:00");
    return rc;
}

/* ------------------------------------------------------------ uuid4 */

int celery_uuid4(char out[CELERY_UUID_LEN + 1])
{
    uint8_t r[16];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t k = getrandom(r + got, sizeof r - got, 0);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        got += (size_t)k;
    }
    r[6] = (uint8_t)((r[6] & 0x0f) | 0x40);
    r[8] = (uint8_t)((r[8] & 0x3f) | 0x80);
    static const char hex[] = "0123456789abcdef";
    char *o = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *o++ = '-';
        *o++ = hex[r[i] >> 4];
        *o++ = hex[r[i] & 15];
    }
    *o = 0;
    return 0;
}

/* ------------------------------------------------------------ decoding tasks */

static int bad(const char *fmt, const char *what)
{
    return wv_fail(-EBADMSG, fmt, what);
}

/* A string member (null or missing: empty). */
static int get_str(const wv_json_val *obj, const char *where, const char *key, wv_str *out)
{
    const wv_json_val *v = wv_json_get(obj, key);
    if (!v || wv_json_is_null(v))
        return 0;
    const char *s;
    size_t n;
    if (wv_json_as_string(v, &s, &n) < 0)
        return wv_fail(-EBADMSG, "celery: %s.%s: expected a string", where, key);
    *out = (wv_str){s, n};
    return 0;
}

static int get_int(const wv_json_val *obj, const char *where, const char *key, int64_t *out)
{
    const wv_json_val *v = wv_json_get(obj, key);
    if (!v || wv_json_is_null(v))
        return 0;
    if (wv_json_as_i64(v, out) < 0)
        return wv_fail(-EBADMSG, "celery: %s.%s: expected an integer", where, key);
    return 0;
}

static int get_time(const wv_json_val *obj, const char *where, const char *key, int64_t *out)
{
    wv_str s = {0};
    int rc = get_str(obj, where, key, &s);
    if (rc < 0 || s.n == 0)
        return rc;
    if (celery_iso8601_parse(s.p, s.n, out) < 0)
        return wv_fail(-EBADMSG, "celery: %s.%s: not an ISO 8601 date: %s", where, key, s.p);
    return 0;
}

/* timelimit: [hard, soft], either null; or null. */
static int get_timelimit(const wv_json_val *obj, const char *where, celery_task *t)
{
    const wv_json_val *v = wv_json_get(obj, "timelimit");
    if (!v || wv_json_is_null(v))
        return 0;
    if (wv_json_array_len(v) != 2)
        return wv_fail(-EBADMSG, "celery: %s.timelimit: expected [hard, soft]", where);
    double *out[2] = {&t->time_limit, &t->soft_time_limit};
    for (size_t i = 0; i < 2; i++) {
        const wv_json_val *e = wv_json_array_at(v, i);
        if (!wv_json_is_null(e) && (wv_json_as_double(e, out[i]) < 0 || *out[i] < 0))
            return wv_fail(-EBADMSG, "celery: %s.timelimit: expected [hard, soft] in seconds",
                           where);
    }
    return 0;
}

/* A raw span of the body, or "null" when missing. */
static wv_str raw_or_null(wv_str v)
{
    return v.n ? v : null_text;
}

static int decode_v2(celery_task *t, const wv_json_val *h, wv_str root)
{
    wv_str args = element(root, 0), kwargs = element(root, 1), embed = element(root, 2);
    if (!args.n || args.p[0] != '[' || !kwargs.n || kwargs.p[0] != '{' || !embed.n ||
        (embed.p[0] != '{' && embed.p[0] != 'n') || element(root, 3).n)
        return bad("celery: body: %s", "expected [args, kwargs, embed]");
    t->args = args;
    t->kwargs = kwargs;
    t->embed = embed;
    t->callbacks = raw_or_null(member(embed, "callbacks"));
    t->errbacks = raw_or_null(member(embed, "errbacks"));
    t->chain = raw_or_null(member(embed, "chain"));
    t->chord = raw_or_null(member(embed, "chord"));
    if (!h)
        return bad("celery: %s: protocol 2 body without headers", "message");
    t->headers = h;
    int rc;
    if ((rc = get_str(h, "headers", "task", &t->task)) < 0 ||
        (rc = get_str(h, "headers", "id", &t->id)) < 0 ||
        (rc = get_str(h, "headers", "lang", &t->lang)) < 0 ||
        (rc = get_str(h, "headers", "shadow", &t->shadow)) < 0 ||
        (rc = get_time(h, "headers", "eta", &t->eta_ns)) < 0 ||
        (rc = get_time(h, "headers", "expires", &t->expires_ns)) < 0 ||
        (rc = get_str(h, "headers", "group", &t->group)) < 0 ||
        (rc = get_int(h, "headers", "group_index", &t->group_index)) < 0 ||
        (rc = get_int(h, "headers", "retries", &t->retries)) < 0 ||
        (rc = get_timelimit(h, "headers", t)) < 0 ||
        (rc = get_str(h, "headers", "root_id", &t->root_id)) < 0 ||
        (rc = get_str(h, "headers", "parent_id", &t->parent_id)) < 0 ||
        (rc = get_str(h, "headers", "argsrepr", &t->argsrepr)) < 0 ||
        (rc = get_str(h, "headers", "kwargsrepr", &t->kwargsrepr)) < 0 ||
        (rc = get_str(h, "headers", "origin", &t->origin)) < 0)
        return rc;
    const wv_json_val *ir = wv_json_get(h, "ignore_result");
    if (ir && !wv_json_is_null(ir) && wv_json_as_bool(ir, &t->ignore_result) < 0)
        return bad("celery: headers.%s: expected true or false", "ignore_result");
    if (!t->task.n)
        return bad("celery: headers.%s: missing", "task");
    if (!t->id.n)
        return bad("celery: headers.%s: missing", "id");
    t->protocol = 2;
    return 0;
}

/* Protocol 1: {"task", "id", "args", "kwargs", "retries", "eta", "expires",
 * "utc", "callbacks", "errbacks", "timelimit", "taskset", "chord"}. */
static int decode_v1(celery_task *t, const wv_json_val *b, wv_str root)
{
    int rc;
    if ((rc = get_str(b, "body", "task", &t->task)) < 0 ||
        (rc = get_str(b, "body", "id", &t->id)) < 0 ||
        (rc = get_time(b, "body", "eta", &t->eta_ns)) < 0 ||
        (rc = get_time(b, "body", "expires", &t->expires_ns)) < 0 ||
        (rc = get_int(b, "body", "retries", &t->retries)) < 0 ||
        (rc = get_timelimit(b, "body", t)) < 0 ||
        (rc = get_str(b, "body", "taskset", &t->group)) < 0)
        return rc;
    if (!t->task.n)
        return bad("celery: body.%s: missing", "task");
    if (!t->id.n)
        return bad("celery: body.%s: missing", "id");
    wv_str args = member(root, "args"), kwargs = member(root, "kwargs");
    if ((args.n && args.p[0] != '[') || (kwargs.n && kwargs.p[0] != '{'))
        return bad("celery: body: %s", "protocol 1 args/kwargs: expected an array and an object");
    t->args = args.n ? args : (wv_str){"[]", 2};
    t->kwargs = kwargs.n ? kwargs : (wv_str){"{}", 2};
    t->embed = null_text;
    t->callbacks = raw_or_null(member(root, "callbacks"));
    t->errbacks = raw_or_null(member(root, "errbacks"));
    t->chain = null_text;
    t->chord = raw_or_null(member(root, "chord"));
    t->root_id = t->id;
    t->protocol = 1;
    return 0;
}

static void task_defaults(celery_task *t)
{
    memset(t, 0, sizeof *t);
    t->eta_ns = t->expires_ns = CELERY_NO_TIME;
    t->time_limit = t->soft_time_limit = -1;
    t->group_index = -1;
    t->expiration_ms = -1;
    t->args = t->kwargs = t->embed = null_text;
    t->callbacks = t->errbacks = t->chain = t->chord = null_text;
}

/* root: an object with "headers" and "properties" (either may be missing
 * or null); the body's text is at t->body (in t->mem). */
static int decode_common(celery_task *t, const wv_json_val *root)
{
    const wv_json_val *h = wv_json_get(root, "headers"), *p = wv_json_get(root, "properties");
    if (h && wv_json_is_null(h))
        h = NULL;
    if (p && wv_json_is_null(p))
        p = NULL;
    if ((h && wv_json_type_of(h) != WV_JSON_OBJECT) || (p && wv_json_type_of(p) != WV_JSON_OBJECT))
        return bad("celery: %s: headers and properties must be objects", "message");
    int rc;
    if (p) {
        const wv_json_val *di = wv_json_get(p, "delivery_info");
        if ((rc = get_str(p, "properties", "correlation_id", &t->correlation_id)) < 0 ||
            (rc = get_str(p, "properties", "reply_to", &t->reply_to)) < 0 ||
            (rc = get_str(p, "properties", "delivery_tag", &t->delivery_tag)) < 0 ||
            (rc = get_int(p, "properties", "priority", &t->priority)) < 0 ||
            (rc = get_int(p, "properties", "delivery_mode", &t->delivery_mode)) < 0 ||
            (rc = get_str(di, "properties.delivery_info", "exchange", &t->exchange)) < 0 ||
            (rc = get_str(di, "properties.delivery_info", "routing_key", &t->routing_key)) < 0)
            return rc;
        wv_str exp = {0};
        if ((rc = get_str(p, "properties", "expiration", &exp)) < 0)
            return rc;
        if (exp.n) {
            char *end;
            errno = 0;
            long long ms = strtoll(exp.p, &end, 10);
            if (exp.p[0] < '0' || exp.p[0] > '9' || *end || errno || ms < 0)
                return bad("celery: properties.expiration: not a number of ms: %s", exp.p);
            t->expiration_ms = ms;
        }
        if (di && !wv_json_is_null(di) && wv_json_type_of(di) != WV_JSON_OBJECT)
            return bad("celery: properties.%s: expected an object", "delivery_info");
    }
    rc = wv_json_parse(t->body.p, t->body.n, &t->body_doc);
    if (rc == -ENOMEM || rc == -EMSGSIZE)
        return rc;
    if (rc < 0)
        return bad("celery: body: %s", wv_errmsg());
    wv_str text = trim(t->body.p, t->body.n);
    const wv_json_val *b = wv_json_doc_root(t->body_doc);
    if (wv_json_type_of(b) == WV_JSON_ARRAY)
        return decode_v2(t, h, text);
    if (wv_json_type_of(b) == WV_JSON_OBJECT && wv_json_get(b, "task"))
        return decode_v1(t, b, text);
    return bad("celery: body: %s",
               "expected [args, kwargs, embed] (protocol 2) or a task dict (protocol 1)");
}

static int check_content(celery_task *t)
{
    if (t->content_type.n && !wv_str_eq_cstr(t->content_type, "application/json"))
        return wv_fail(-ENOTSUP, "celery: content-type %s: only application/json is read",
                       t->content_type.p);
    if (t->content_encoding.n && !wv_str_eq_cstr(t->content_encoding, "utf-8"))
        return wv_fail(-ENOTSUP, "celery: content-encoding %s: only utf-8 is read",
                       t->content_encoding.p);
    return 0;
}

int celery_task_decode_redis(const char *text, size_t n, celery_task *t)
{
    task_defaults(t);
    if (!text)
        return -EINVAL;
    int rc = wv_json_parse(text, n, &t->env_doc);
    if (rc == -ENOMEM || rc == -EMSGSIZE)
        return rc;
    if (rc < 0)
        return bad("celery: envelope: %s", wv_errmsg());
    const wv_json_val *root = wv_json_doc_root(t->env_doc), *p;
    wv_str body = {0};
    if (wv_json_type_of(root) != WV_JSON_OBJECT) {
        rc = bad("celery: envelope: %s", "expected an object");
        goto fail;
    }
    if (!wv_json_get(root, "body")) {
        rc = bad("celery: envelope.%s: missing", "body");
        goto fail;
    }
    p = wv_json_get(root, "properties");
    if ((rc = get_str(root, "envelope", "body", &body)) < 0 ||
        (rc = get_str(root, "envelope", "content-type", &t->content_type)) < 0 ||
        (rc = get_str(root, "envelope", "content-encoding", &t->content_encoding)) < 0 ||
        (rc = get_str(wv_json_type_of(p) == WV_JSON_OBJECT ? p : NULL, "properties",
                      "body_encoding", &t->body_encoding)) < 0 ||
        (rc = check_content(t)) < 0)
        goto fail;
    bool b64 = wv_str_eq_cstr(t->body_encoding, "base64");
    if (t->body_encoding.n && !b64) {
        rc = wv_fail(-ENOTSUP, "celery: body_encoding %s: only base64 or none is read",
                     t->body_encoding.p);
        goto fail;
    }
    t->mem = malloc(n + 1 + body.n + 1);
    if (!t->mem) {
        rc = -ENOMEM;
        goto fail;
    }
    memcpy(t->mem, text, n);
    t->mem[n] = 0;
    t->envelope = (wv_str){t->mem, n};
    char *bp = t->mem + n + 1;
    if (b64) {
        long len = wv__b64_decode(body.p, body.n, false, bp, body.n / 4 * 3);
        if (len < 0) {
            rc = bad("celery: envelope.%s: not base64", "body");
            goto fail;
        }
        t->body = (wv_str){bp, (size_t)len};
    } else {
        if (body.n)
            memcpy(bp, body.p, body.n);
        t->body = (wv_str){bp, body.n};
    }
    bp[t->body.n] = 0;
    if ((rc = decode_common(t, root)) < 0)
        goto fail;
    return 0;
fail:
    celery_task_free(t);
    task_defaults(t);
    return rc;
}

int celery_task_decode_parts(const char *body, size_t body_len, const char *headers,
                             size_t headers_len, const char *properties, size_t properties_len,
                             celery_task *t)
{
    task_defaults(t);
    if (!body)
        return -EINVAL;
    /* headers and properties parsed as one document {"headers": H, "properties": P},
     * each checked alone first so that errors name the part */
    wv_buf env = {0};
    int rc = 0;
    const char *parts[2] = {headers, properties};
    size_t lens[2] = {headers_len, properties_len};
    const char *names[2] = {"headers", "properties"};
    rc = wv_buf_puts(&env, "{");
    for (int i = 0; rc == 0 && i < 2; i++) {
        if (!parts[i] || trim(parts[i], lens[i]).n == 0)
            continue;
        wv_json_doc *d;
        rc = wv_json_parse(parts[i], lens[i], &d);
        if (rc < 0 && rc != -ENOMEM && rc != -EMSGSIZE)
            rc = wv_fail(-EBADMSG, "celery: %s: %s", names[i], wv_errmsg());
        wv_json_doc_free(d);
        if (rc == 0)
            rc = wv_buf_printf(&env, "%s\"%s\":", env.n > 1 ? "," : "", names[i]);
        rc = rc ? rc : wv_buf_append(&env, parts[i], lens[i]);
    }
    rc = rc ? rc : wv_buf_puts(&env, "}");
    if (rc == 0)
        rc = wv_json_parse(env.p, env.n, &t->env_doc);
    wv_buf_free(&env);
    if (rc < 0)
        goto fail;
    rc = -ENOMEM;
    if (!(t->mem = malloc(body_len + 1)))
        goto fail;
    if (body_len)
        memcpy(t->mem, body, body_len);
    t->mem[body_len] = 0;
    t->body = (wv_str){t->mem, body_len};
    if ((rc = decode_common(t, wv_json_doc_root(t->env_doc))) < 0)
        goto fail;
    return 0;
fail:
    celery_task_free(t);
    task_defaults(t);
    return rc;
}

void celery_task_free(celery_task *t)
{
    if (!t)
        return;
    wv_json_doc_free(t->env_doc);
    wv_json_doc_free(t->body_doc);
    free(t->mem);
    t->env_doc = t->body_doc = NULL;
    t->mem = NULL;
}

/* ------------------------------------------------------------ encoding tasks */

void celery_task_msg_init(celery_task_msg *m)
{
    memset(m, 0, sizeof *m);
    m->eta_ns = m->expires_ns = CELERY_NO_TIME;
    m->time_limit = m->soft_time_limit = -1;
    m->group_index = -1;
    m->expiration_ms = -1;
}

/* A date as Celery writes it: eta and expires with "+00:00", date_done naive. */
static int py_time(wv_buf *b, int64_t ns, bool utc_offset)
{
    if (ns == CELERY_NO_TIME)
        return wv_buf_puts(b, "null");
    int rc = wv_buf_append(b, "\"", 1);
    rc = rc ? rc : celery_iso8601_format(ns, utc_offset, b);
    return rc ? rc : wv_buf_append(b, "\"", 1);
}

static int py_embed_field(wv_buf *b, const char *name, const char *json, bool last)
{
    int rc = wv_buf_printf(b, "\"%s\": ", name);
    if (rc == 0)
        rc = json ? py_checked(b, json, strlen(json), WV_JSON_MISSING, name)
                  : wv_buf_puts(b, "null");
    return rc ? rc : wv_buf_puts(b, last ? "}" : ", ");
}

static int encode_body(const celery_task_msg *m, wv_buf *b)
{
    int rc = wv_buf_puts(b, "[");
    if (rc == 0)
        rc = m->args ? py_checked(b, m->args, m->args_len, WV_JSON_ARRAY, "args")
                     : wv_buf_puts(b, "[]");
    rc = rc ? rc : wv_buf_puts(b, ", ");
    if (rc == 0)
        rc = m->kwargs ? py_checked(b, m->kwargs, m->kwargs_len, WV_JSON_OBJECT, "kwargs")
                       : wv_buf_puts(b, "{}");
    rc = rc ? rc : wv_buf_puts(b, ", {");
    rc = rc ? rc : py_embed_field(b, "callbacks", m->callbacks, false);
    rc = rc ? rc : py_embed_field(b, "errbacks", m->errbacks, false);
    rc = rc ? rc : py_embed_field(b, "chain", m->chain, false);
    rc = rc ? rc : py_embed_field(b, "chord", m->chord, true);
    return rc ? rc : wv_buf_puts(b, "]");
}

/* The headers object; id is the task's id. */
/* The members of the JSON object text h, each after ", ", as json.dumps
 * writes them; none may be one of Celery's own headers. */
static int custom_headers(const char *h, wv_buf *b)
{
    static const char *const own[] = {"lang",     "task",       "id",      "shadow",
                                      "eta",      "expires",    "group",   "group_index",
                                      "retries",  "timelimit",  "root_id", "parent_id",
                                      "argsrepr", "kwargsrepr", "origin",  "ignore_result"};
    wv_json_doc *doc = NULL;
    int rc = wv_json_parse(h, strlen(h), &doc);
    const wv_json_val *root = wv_json_doc_root(doc);
    if (rc < 0 || wv_json_type_of(root) != WV_JSON_OBJECT) {
        wv_json_doc_free(doc);
        return rc == -ENOMEM ? rc : wv_fail(-EINVAL, "celery: headers: not a JSON object");
    }
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if (wv_json_get(root, own[i])) {
            wv_json_doc_free(doc);
            return wv_fail(-EINVAL, "celery: headers: \"%s\" is Celery's own", own[i]);
        }
    wv_json_doc_free(doc);
    wv_buf py = {0};
    rc = celery_pyjson(h, strlen(h), &py);
    /* "{}" adds nothing; else "{a, b}" becomes ", a, b" */
    if (rc == 0 && py.n > 2) {
        rc = wv_buf_puts(b, ", ");
        rc = rc ? rc : wv_buf_append(b, py.p + 1, py.n - 2);
    }
    wv_buf_free(&py);
    return rc;
}

static int encode_headers(const celery_task_msg *m, const char *id, wv_buf *b)
{
    wv_buf shown = {0};
    char origin[300];
    if (!m->origin) {
        char host[256] = "";
        gethostname(host, sizeof host - 1);
        snprintf(origin, sizeof origin, "gen%d@%s", (int)getpid(), host);
    }
    int rc = wv_buf_puts(b, "{\"lang\": \"py\", \"task\": ");
    rc = rc ? rc : py_cstring(b, m->task);
    rc = rc ? rc : wv_buf_puts(b, ", \"id\": ");
    rc = rc ? rc : py_cstring(b, id);
    rc = rc ? rc : wv_buf_puts(b, ", \"shadow\": ");
    rc = rc ? rc : py_cstring(b, m->shadow);
    rc = rc ? rc : wv_buf_puts(b, ", \"eta\": ");
    rc = rc ? rc : py_time(b, m->eta_ns, true);
    rc = rc ? rc : wv_buf_puts(b, ", \"expires\": ");
    rc = rc ? rc : py_time(b, m->expires_ns, true);
    rc = rc ? rc : wv_buf_puts(b, ", \"group\": ");
    rc = rc ? rc : py_cstring(b, m->group);
    rc = rc ? rc : wv_buf_puts(b, ", \"group_index\": ");
    if (rc == 0)
        rc = m->group_index < 0 ? wv_buf_puts(b, "null") : wv_buf_i64(b, m->group_index);
    rc = rc ? rc : wv_buf_puts(b, ", \"retries\": ");
    rc = rc ? rc : wv_buf_i64(b, m->retries);
    rc = rc ? rc : wv_buf_puts(b, ", \"timelimit\": [");
    rc = rc ? rc : py_seconds(b, m->time_limit);
    rc = rc ? rc : wv_buf_puts(b, ", ");
    rc = rc ? rc : py_seconds(b, m->soft_time_limit);
    rc = rc ? rc : wv_buf_puts(b, "], \"root_id\": ");
    rc = rc ? rc : py_cstring(b, m->root_id ? m->root_id : id);
    rc = rc ? rc : wv_buf_puts(b, ", \"parent_id\": ");
    rc = rc ? rc : py_cstring(b, m->parent_id);
    rc = rc ? rc : wv_buf_puts(b, ", \"argsrepr\": ");
    if (rc == 0 && m->argsrepr) {
        rc = py_cstring(b, m->argsrepr);
    } else if (rc == 0) {
        rc = m->args ? celery_saferepr(m->args, m->args_len, m->args_repr_as_list,
                                       CELERY_REPR_MAXSIZE, &shown)
                     : wv_buf_puts(&shown, m->args_repr_as_list ? "[]" : "()");
        rc = rc ? rc : py_string(b, shown.p, shown.n);
    }
    rc = rc ? rc : wv_buf_puts(b, ", \"kwargsrepr\": ");
    if (rc == 0 && m->kwargsrepr) {
        rc = py_cstring(b, m->kwargsrepr);
    } else if (rc == 0) {
        wv_buf_reset(&shown);
        rc = m->kwargs
                 ? celery_saferepr(m->kwargs, m->kwargs_len, false, CELERY_REPR_MAXSIZE, &shown)
                 : wv_buf_puts(&shown, "{}");
        rc = rc ? rc : py_string(b, shown.p, shown.n);
    }
    wv_buf_free(&shown);
    rc = rc ? rc : wv_buf_puts(b, ", \"origin\": ");
    rc = rc ? rc : py_cstring(b, m->origin ? m->origin : origin);
    rc = rc ? rc : wv_buf_puts(b, ", \"ignore_result\": ");
    rc = rc ? rc : wv_buf_puts(b, m->ignore_result ? "true" : "false");
    if (rc == 0 && m->headers)
        rc = custom_headers(m->headers, b);
    rc = rc ? rc : wv_buf_puts(b, "}");
    return rc;
}

static int check_msg(const celery_task_msg *m, char id[CELERY_UUID_LEN + 1])
{
    if (!m || !m->task || !*m->task)
        return wv_fail(-EINVAL, "celery: a task message needs a task name");
    return m->id ? 0 : celery_uuid4(id);
}

int celery_task_encode_redis(const celery_task_msg *m, wv_buf *out)
{
    char id[CELERY_UUID_LEN + 1], tag[CELERY_UUID_LEN + 1];
    int rc = check_msg(m, id);
    if (rc == 0 && !m->delivery_tag)
        rc = celery_uuid4(tag);
    if (rc < 0)
        return rc;
    const char *task_id = m->id ? m->id : id;
    size_t start = out->n;
    wv_buf body = {0};
    rc = encode_body(m, &body);
    rc = rc ? rc : wv_buf_puts(out, "{\"body\": \"");
    rc = rc ? rc : b64_append(out, (const unsigned char *)body.p, body.n);
    wv_buf_free(&body);
    rc = rc ? rc
            : wv_buf_puts(out, "\", \"content-encoding\": \"utf-8\", \"content-type\": "
                               "\"application/json\", \"headers\": ");
    rc = rc ? rc : encode_headers(m, task_id, out);
    rc = rc ? rc : wv_buf_puts(out, ", \"properties\": {\"correlation_id\": ");
    rc = rc ? rc : py_cstring(out, task_id);
    rc = rc ? rc : wv_buf_puts(out, ", \"reply_to\": ");
    rc = rc ? rc : py_cstring(out, m->reply_to);
    rc = rc ? rc : wv_buf_puts(out, ", \"delivery_mode\": 2");
    if (rc == 0 && m->expiration_ms >= 0)
        rc = wv_buf_printf(out, ", \"expiration\": \"%lld\"", (long long)m->expiration_ms);
    rc = rc ? rc : wv_buf_puts(out, ", \"delivery_info\": {\"exchange\": ");
    rc = rc ? rc : py_cstring(out, m->exchange ? m->exchange : "");
    rc = rc ? rc : wv_buf_puts(out, ", \"routing_key\": ");
    rc = rc ? rc : py_cstring(out, m->routing_key ? m->routing_key : "celery");
    rc = rc ? rc : wv_buf_puts(out, "}, \"priority\": ");
    rc = rc ? rc : wv_buf_i64(out, m->priority);
    rc = rc ? rc : wv_buf_puts(out, ", \"body_encoding\": \"base64\", \"delivery_tag\": ");
    rc = rc ? rc : py_cstring(out, m->delivery_tag ? m->delivery_tag : tag);
    rc = rc ? rc : wv_buf_puts(out, "}}");
    if (rc < 0)
        out->n = start;
    return rc;
}

int celery_task_encode_amqp(const celery_task_msg *m, celery_amqp_msg *out)
{
    char id[CELERY_UUID_LEN + 1];
    int rc = check_msg(m, id);
    if (rc < 0)
        return rc;
    const char *task_id = m->id ? m->id : id;
    if (strlen(task_id) >= sizeof out->correlation_id ||
        (m->reply_to && strlen(m->reply_to) >= sizeof out->reply_to))
        return wv_fail(-EINVAL, "celery: an id or reply_to of 256 bytes or more");
    out->content_type = "application/json";
    out->content_encoding = "utf-8";
    strcpy(out->correlation_id, task_id);
    strcpy(out->reply_to, m->reply_to ? m->reply_to : "");
    out->delivery_mode = 2;
    out->expiration[0] = 0;
    if (m->expiration_ms >= 0)
        snprintf(out->expiration, sizeof out->expiration, "%lld", (long long)m->expiration_ms);
    out->priority = m->priority;
    rc = encode_body(m, &out->body);
    rc = rc ? rc : encode_headers(m, task_id, &out->headers);
    if (rc < 0)
        celery_amqp_msg_free(out);
    return rc;
}

void celery_amqp_msg_free(celery_amqp_msg *out)
{
    wv_buf_free(&out->body);
    wv_buf_free(&out->headers);
}

/* ------------------------------------------------------------ results */

static const char *const state_names[] = {
    [CELERY_PENDING] = "PENDING", [CELERY_STARTED] = "STARTED", [CELERY_RETRY] = "RETRY",
    [CELERY_FAILURE] = "FAILURE", [CELERY_SUCCESS] = "SUCCESS", [CELERY_REVOKED] = "REVOKED",
};

const char *celery_state_name(celery_state s)
{
    return (unsigned)s < sizeof state_names / sizeof *state_names ? state_names[s] : NULL;
}

int celery_state_from_name(const char *s, size_t n)
{
    for (size_t i = 0; s && i < sizeof state_names / sizeof *state_names; i++)
        if (strlen(state_names[i]) == n && memcmp(state_names[i], s, n) == 0)
            return (int)i;
    return -EINVAL;
}

int celery_result_decode(const char *text, size_t n, celery_result *r)
{
    memset(r, 0, sizeof *r);
    r->date_done_ns = CELERY_NO_TIME;
    r->pid = -1;
    r->result = r->children = r->exc_message = null_text;
    if (!text)
        return -EINVAL;
    int rc = wv_json_parse(text, n, &r->doc);
    if (rc == -ENOMEM || rc == -EMSGSIZE)
        return rc;
    if (rc < 0)
        return bad("celery: result: %s", wv_errmsg());
    const wv_json_val *root = wv_json_doc_root(r->doc), *res;
    wv_str status = {0};
    rc = -ENOMEM;
    if (!(r->mem = malloc(n + 1)))
        goto fail;
    memcpy(r->mem, text, n);
    r->mem[n] = 0;
    wv_str top = trim(r->mem, n);
    if (wv_json_type_of(root) != WV_JSON_OBJECT) {
        rc = bad("celery: result: %s", "expected an object");
        goto fail;
    }
    if ((rc = get_str(root, "result", "status", &status)) < 0 ||
        (rc = get_str(root, "result", "task_id", &r->task_id)) < 0 ||
        (rc = get_str(root, "result", "traceback", &r->traceback)) < 0 ||
        (rc = get_time(root, "result", "date_done", &r->date_done_ns)) < 0)
        goto fail;
    rc = celery_state_from_name(status.p, status.n);
    if (rc < 0) {
        rc = bad("celery: result.status: not a Celery state: %s", status.n ? status.p : "(none)");
        goto fail;
    }
    r->status = (celery_state)rc;
    r->result = raw_or_null(member(top, "result"));
    r->children = raw_or_null(member(top, "children"));
    res = wv_json_get(root, "result");
    rc = 0;
    if (wv_json_type_of(res) == WV_JSON_OBJECT && r->status != CELERY_SUCCESS) {
        r->exc_message = raw_or_null(member(r->result, "exc_message"));
        if ((rc = get_str(res, "result.result", "exc_type", &r->exc_type)) < 0 ||
            (rc = get_str(res, "result.result", "exc_module", &r->exc_module)) < 0 ||
            (rc = get_int(res, "result.result", "pid", &r->pid)) < 0 ||
            (rc = get_str(res, "result.result", "hostname", &r->hostname)) < 0)
            goto fail;
    }
    return 0;
fail:
    celery_result_free(r);
    return rc;
}

void celery_result_free(celery_result *r)
{
    if (!r)
        return;
    wv_json_doc_free(r->doc);
    free(r->mem);
    r->doc = NULL;
    r->mem = NULL;
}

int celery_result_encode(const celery_result_msg *m, wv_buf *out)
{
    const char *name = m ? celery_state_name(m->status) : NULL;
    if (!name || !m->task_id)
        return wv_fail(-EINVAL, "celery: a result needs a state and a task id");
    size_t start = out->n;
    bool exc =
        m->status == CELERY_FAILURE || m->status == CELERY_RETRY || m->status == CELERY_REVOKED;
    bool done =
        m->status == CELERY_SUCCESS || m->status == CELERY_FAILURE || m->status == CELERY_REVOKED;
    int rc = wv_buf_printf(out, "{\"status\": \"%s\", \"result\": ", name);
    if (rc == 0 && exc) {
        rc = wv_buf_puts(out, "{\"exc_type\": ");
        rc = rc ? rc : py_cstring(out, m->exc_type ? m->exc_type : "Exception");
        rc = rc ? rc : wv_buf_puts(out, ", \"exc_message\": [");
        if (rc == 0 && m->exc_message)
            rc = py_cstring(out, m->exc_message);
        rc = rc ? rc : wv_buf_puts(out, "], \"exc_module\": ");
        rc = rc ? rc : py_cstring(out, m->exc_module ? m->exc_module : "builtins");
        rc = rc ? rc : wv_buf_puts(out, "}");
    } else if (rc == 0 && m->status == CELERY_STARTED) {
        rc = wv_buf_printf(out, "{\"pid\": %lld, \"hostname\": ", (long long)m->pid);
        rc = rc ? rc : py_cstring(out, m->hostname ? m->hostname : "");
        rc = rc ? rc : wv_buf_puts(out, "}");
    } else if (rc == 0 && m->status == CELERY_SUCCESS && m->result) {
        rc = py_checked(out, m->result, m->result_len, WV_JSON_MISSING, "result");
    } else if (rc == 0) {
        rc = wv_buf_puts(out, "null");
    }
    rc = rc ? rc : wv_buf_puts(out, ", \"traceback\": ");
    rc = rc ? rc : py_cstring(out, exc ? m->traceback : NULL);
    rc = rc ? rc : wv_buf_puts(out, ", \"children\": ");
    if (rc == 0)
        rc = m->children
                 ? py_checked(out, m->children, strlen(m->children), WV_JSON_ARRAY, "children")
                 : wv_buf_puts(out, "[]");
    rc = rc ? rc : wv_buf_puts(out, ", \"date_done\": ");
    rc = rc ? rc : py_time(out, done ? m->date_done_ns : CELERY_NO_TIME, false);
    if (rc == 0 && m->group_id && *m->group_id) {
        rc = wv_buf_puts(out, ", \"group_id\": ");
        rc = rc ? rc : py_cstring(out, m->group_id);
    }
    if (rc == 0 && m->parent_id && *m->parent_id) {
        rc = wv_buf_puts(out, ", \"parent_id\": ");
        rc = rc ? rc : py_cstring(out, m->parent_id);
    }
    rc = rc ? rc : wv_buf_puts(out, ", \"task_id\": ");
    rc = rc ? rc : py_cstring(out, m->task_id);
    rc = rc ? rc : wv_buf_puts(out, "}");
    if (rc < 0)
        out->n = start;
    return rc;
}

/* ------------------------------------------------------------ other envelopes */

int celery_envelope_encode(const char *body, size_t body_len, const char *headers,
                           int delivery_mode, const char *exchange, const char *routing_key,
                           wv_buf *out)
{
    char tag[CELERY_UUID_LEN + 1];
    int rc = celery_uuid4(tag);
    if (rc < 0)
        return rc;
    size_t start = out->n;
    rc = wv_buf_puts(out, "{\"body\": \"");
    rc = rc ? rc : b64_append(out, (const unsigned char *)body, body_len);
    rc = rc ? rc
            : wv_buf_puts(out, "\", \"content-encoding\": \"utf-8\", \"content-type\": "
                               "\"application/json\", \"headers\": ");
    rc =
        rc ? rc : (headers ? celery_pyjson(headers, strlen(headers), out) : wv_buf_puts(out, "{}"));
    rc = rc ? rc : wv_buf_printf(out, ", \"properties\": {\"delivery_mode\": %d", delivery_mode);
    rc = rc ? rc : wv_buf_puts(out, ", \"delivery_info\": {\"exchange\": ");
    rc = rc ? rc : py_cstring(out, exchange);
    rc = rc ? rc : wv_buf_puts(out, ", \"routing_key\": ");
    rc = rc ? rc : py_cstring(out, routing_key);
    rc = rc ? rc
            : wv_buf_puts(out, "}, \"priority\": 0, \"body_encoding\": \"base64\", "
                               "\"delivery_tag\": ");
    rc = rc ? rc : py_cstring(out, tag);
    rc = rc ? rc : wv_buf_puts(out, "}}");
    if (rc < 0)
        out->n = start;
    return rc;
}

int celery_envelope_body(const char *text, size_t n, wv_buf *body)
{
    wv_json_doc *doc = NULL;
    int rc = wv_json_parse(text, n, &doc);
    if (rc < 0)
        return rc == -ENOMEM ? rc : wv_fail(-EBADMSG, "celery: an envelope that is not JSON");
    const wv_json_val *root = wv_json_doc_root(doc);
    const char *b = NULL, *ct = "application/json", *enc = "";
    size_t bn = 0;
    const wv_json_val *ctv = wv_json_get(root, "content-type");
    const wv_json_val *encv = wv_json_get(wv_json_get(root, "properties"), "body_encoding");
    if (wv_json_as_string(wv_json_get(root, "body"), &b, &bn) < 0 ||
        (ctv && wv_json_as_string(ctv, &ct, NULL) < 0) ||
        (encv && wv_json_as_string(encv, &enc, NULL) < 0)) {
        rc = wv_fail(-EBADMSG, "celery: an envelope without a string body");
    } else if (strcmp(ct, "application/json") != 0) {
        rc = wv_fail(-ENOTSUP, "celery: content-type %.64s: only application/json", ct);
    } else if (strcmp(enc, "base64") == 0) {
        rc = wv_buf_reserve(body, bn / 4 * 3 + 1);
        long got = rc < 0 ? -1 : wv__b64_decode(b, bn, false, body->p + body->n, bn / 4 * 3);
        if (rc == 0 && got < 0)
            rc = wv_fail(-EBADMSG, "celery: envelope.body: not base64");
        else if (rc == 0)
            body->n += (size_t)got;
    } else if (*enc) {
        rc = wv_fail(-ENOTSUP, "celery: body_encoding %.32s: only base64 or none", enc);
    } else {
        rc = wv_buf_append(body, b, bn);
    }
    wv_json_doc_free(doc);
    return rc;
}

/* ------------------------------------------------------------ follow-ups */

static bool json_null(wv_str v)
{
    return v.n == 0 || wv_str_eq_cstr(v, "null");
}

/* One signature (raw JSON text of {"task", "args", "kwargs", "options",
 * "subtask_type", "immutable"}) applied with `first` put before its args
 * (unless it is immutable; NULL: nothing), and `chain` (JSON text or NULL)
 * as the new message's chain. */
static int apply_sig(const celery_task *t, wv_str sig, const char *first, size_t first_n,
                     const char *chain, celery_emit_fn *emit, void *arg)
{
    wv_json_doc *doc = NULL;
    int rc = wv_json_parse(sig.p, sig.n, &doc);
    if (rc < 0)
        return rc == -ENOMEM ? rc : wv_fail(-EBADMSG, "celery: a signature that is not JSON");
    const wv_json_val *root = wv_json_doc_root(doc), *opts = wv_json_get(root, "options");
    const char *name = NULL, *id = NULL, *reply_to = NULL, *queue = NULL;
    bool immutable = false;
    const wv_json_val *type = wv_json_get(root, "subtask_type");
    wv_str args = member(sig, "args"), kwargs = member(sig, "kwargs");
    if (wv_json_type_of(root) != WV_JSON_OBJECT ||
        wv_json_get_string(root, "task", &name, NULL) < 0 || !*name) {
        rc = wv_fail(-EBADMSG, "celery: a signature without a task name");
    } else if (type && !wv_json_is_null(type)) {
        const char *ts = "?";
        wv_json_as_string(type, &ts, NULL);
        rc = wv_fail(-ENOTSUP, "celery: a %.16s signature as a follow-up (only plain tasks)", ts);
    } else if ((!json_null(args) && args.p[0] != '[') ||
               (!json_null(kwargs) && kwargs.p[0] != '{')) {
        rc = wv_fail(-EBADMSG, "celery: a signature's args or kwargs of the wrong type");
    }
    if (rc == 0) {
        wv_json_get_bool(root, "immutable", &immutable);
        wv_json_as_string(wv_json_get(opts, "task_id"), &id, NULL);
        wv_json_as_string(wv_json_get(opts, "reply_to"), &reply_to, NULL);
        wv_json_as_string(wv_json_get(opts, "queue"), &queue, NULL);
    }
    wv_buf a = {0};
    rc = rc ? rc : wv_buf_puts(&a, "[");
    bool any = false;
    if (rc == 0 && first && !immutable) {
        rc = wv_buf_append(&a, first, first_n);
        any = true;
    }
    if (rc == 0 && !json_null(args)) {
        const char *p = args.p + 1, *end = args.p + args.n;
        wv_str v;
        while (rc == 0 && next_item(&p, end, NULL, &v)) {
            rc = any ? wv_buf_puts(&a, ", ") : 0;
            rc = rc ? rc : wv_buf_append(&a, v.p, v.n);
            any = true;
        }
    }
    rc = rc ? rc : wv_buf_puts(&a, "]");
    if (rc == 0) {
        celery_task_msg m;
        celery_task_msg_init(&m);
        m.task = name;
        m.id = id && *id ? id : NULL;
        m.args = a.p;
        m.args_len = a.n;
        if (!json_null(kwargs)) {
            m.kwargs = kwargs.p;
            m.kwargs_len = kwargs.n;
        }
        m.chain = chain;
        m.parent_id = t->id.p;
        m.root_id = t->root_id.n ? t->root_id.p : t->id.p;
        m.priority = t->priority;
        m.reply_to = reply_to && *reply_to ? reply_to : NULL;
        rc = emit(&m, queue && *queue ? queue : NULL, arg);
    }
    wv_buf_free(&a);
    wv_json_doc_free(doc);
    return rc;
}

int celery_follow_ups(const celery_task *t, bool success, const char *value, size_t n,
                      celery_emit_fn *emit, void *arg)
{
    int rc = 0, first_rc = 0;
    if (success && !json_null(t->chain) && t->chain.p[0] == '[') {
        /* embed.chain is the rest of the chain reversed: its last is next */
        const char *p = t->chain.p + 1, *end = t->chain.p + t->chain.n;
        wv_str v, last = {0};
        size_t count = 0;
        while (next_item(&p, end, NULL, &v)) {
            last = v;
            count++;
        }
        wv_buf rest = {0};
        if (count > 1) {
            /* everything before the last element, as written */
            rc = wv_buf_append(&rest, t->chain.p, (size_t)(last.p - t->chain.p));
            while (rc == 0 && rest.n && (rest.p[rest.n - 1] == ' ' || rest.p[rest.n - 1] == ','))
                rest.n--;
            rc = rc ? rc : wv_buf_puts(&rest, "]");
            rc = rc ? rc : wv_buf_append(&rest, "", 1);
        }
        if (rc == 0 && count)
            rc = apply_sig(t, last, value, n, count > 1 ? rest.p : NULL, emit, arg);
        wv_buf_free(&rest);
        first_rc = rc;
    }
    wv_str list = success ? t->callbacks : t->errbacks;
    if (!json_null(list) && list.p[0] == '[') {
        const char *p = list.p + 1, *end = list.p + list.n;
        wv_str sig;
        while (next_item(&p, end, NULL, &sig)) {
            rc = apply_sig(t, sig, value, n, NULL, emit, arg);
            first_rc = first_rc ? first_rc : rc;
        }
    }
    return first_rc;
}
