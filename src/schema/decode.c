/*
 * Decoding and validation: a JSON value (or a parameter's text) into the
 * caller's struct, every error collected with its location, in pydantic
 * v2's words (pydantic-core's error types and Python-mode messages, which
 * FastAPI answers with), and the 422 body.
 *
 * Recursion follows the model's nesting, at most WV_SCHEMA_MAX_NESTING
 * deep (schema_check_model); the JSON's own depth is bounded by the
 * reader. Nothing is allocated but the errors (and the document in
 * wv_schema_decode).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base64/base64.h"
#include "schema/schema_internal.h"

enum {
    MAX_PATH = 2 * WV_SCHEMA_MAX_NESTING + 4,
    INPUT_MAX = 4096, /* bytes of JSON kept as an error's input */
    MAX_ERRORS_CAP = 1000,
};

typedef struct seg {
    const char *key; /* NULL: an array index */
    size_t len;
    size_t index;
} seg;

typedef struct dec {
    wv_schema_errors *e;
    const char *root; /* NULL: none */
    seg path[MAX_PATH];
    int np;
    bool stop;
    int oom;
} dec;

/* An error's input: a JSON value, a parameter's text, or nothing. */
typedef struct input {
    const wv_json_val *v;
    const char *s;
    size_t n;
    bool is_null; /* JSON null (missing body or parameter) */
} input;

static input in_val(const wv_json_val *v)
{
    return (input){.v = v, .is_null = v == NULL};
}

/* ------------------------------------------------------------- errors */

static size_t max_errors(const wv_schema_errors *e)
{
    size_t m = e->max_errors ? e->max_errors : WV_SCHEMA_MAX_ERRORS;
    return m > MAX_ERRORS_CAP ? MAX_ERRORS_CAP : m;
}

/* Copy v to j, giving up (false) once the output passes limit bytes. */
static bool copy_val(wv_json *j, const wv_buf *out, size_t limit, const wv_json_val *v)
{
    if (out->n > limit)
        return false;
    switch (wv_json_type_of(v)) {
    case WV_JSON_OBJECT:
        wv_json_object_begin(j);
        for (size_t i = 0;; i++) {
            const char *k;
            size_t kn;
            const wv_json_val *m = wv_json_object_at(v, i, &k, &kn);
            if (!m)
                break;
            wv_json_keyn(j, k, kn);
            if (!copy_val(j, out, limit, m))
                return false;
        }
        wv_json_object_end(j);
        return true;
    case WV_JSON_ARRAY:
        wv_json_array_begin(j);
        for (long i = 0; i < wv_json_array_len(v); i++)
            if (!copy_val(j, out, limit, wv_json_array_at(v, (size_t)i)))
                return false;
        wv_json_array_end(j);
        return true;
    case WV_JSON_STRING: {
        const char *s;
        size_t n;
        wv_json_as_string(v, &s, &n);
        wv_json_stringn(j, s, n);
        return true;
    }
    case WV_JSON_NUMBER: {
        const char *s;
        size_t n;
        wv_json_as_number_text(v, &s, &n);
        wv_json_raw(j, s, n);
        return true;
    }
    case WV_JSON_BOOL: {
        bool b = false;
        wv_json_as_bool(v, &b);
        wv_json_bool(j, b);
        return true;
    }
    default:
        wv_json_null(j);
        return true;
    }
}

/* Append text + NUL to e->text: its offset, or SCHEMA_NONE (out of memory). */
static size_t put_text(dec *d, const char *s)
{
    size_t off = d->e->text.n;
    if (wv_buf_append(&d->e->text, s, strlen(s) + 1) < 0) {
        d->oom = -ENOMEM;
        return SCHEMA_NONE;
    }
    return off;
}

static size_t put_loc(dec *d)
{
    wv_buf *b = &d->e->text;
    size_t off = b->n;
    wv_json j;
    wv_json_init(&j, b);
    wv_json_array_begin(&j);
    if (d->root)
        wv_json_string(&j, d->root);
    for (int i = 0; i < d->np; i++) {
        if (d->path[i].key)
            wv_json_stringn(&j, d->path[i].key, d->path[i].len);
        else
            wv_json_uint(&j, d->path[i].index);
    }
    wv_json_array_end(&j);
    if (wv_json_finish(&j) < 0 || wv_buf_append(b, "", 1) < 0) {
        d->oom = -ENOMEM;
        return SCHEMA_NONE;
    }
    return off;
}

static size_t put_input(dec *d, const input *in)
{
    wv_buf *b = &d->e->text;
    size_t off = b->n;
    wv_json j;
    wv_json_init(&j, b);
    if (in->s)
        wv_json_stringn(&j, in->s, in->n);
    else if (in->is_null)
        wv_json_null(&j);
    else if (!copy_val(&j, b, off + INPUT_MAX, in->v)) {
        b->n = off; /* too big to repeat: no input */
        return SCHEMA_NONE;
    }
    if (b->n - off > INPUT_MAX) {
        b->n = off;
        return SCHEMA_NONE;
    }
    if (wv_json_finish(&j) < 0 || wv_buf_append(b, "", 1) < 0) {
        b->n = off;
        d->oom = j.err == -ENOMEM || d->oom ? -ENOMEM : d->oom;
        return SCHEMA_NONE;
    }
    return off;
}

static void add_item(dec *d, const char *type, const char *msg, const input *in, const char *ctx)
{
    wv_schema_errors *e = d->e;
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 8;
        wv_schema_error_item *items = realloc(e->items, cap * sizeof *items);
        if (!items) {
            d->oom = -ENOMEM;
            d->stop = true;
            return;
        }
        e->items = items;
        e->cap = cap;
    }
    wv_schema_error_item it = {.type = type};
    it.msg = put_text(d, msg);
    it.loc = put_loc(d);
    it.input = in ? put_input(d, in) : SCHEMA_NONE;
    it.ctx = ctx ? put_text(d, ctx) : SCHEMA_NONE;
    if (d->oom) {
        d->stop = true;
        return;
    }
    e->items[e->n++] = it;
}

/* Record an error at the current path. ctx: a JSON object's text or NULL. */
static void report(dec *d, const char *type, const char *msg, const input *in, const char *ctx)
{
    if (d->stop)
        return;
    wv_schema_errors *e = d->e;
    if (e->n >= max_errors(e)) {
        if (!e->truncated) {
            char note[96];
            snprintf(note, sizeof note, "Too many errors: stopped after %zu", max_errors(e));
            int np = d->np;
            d->np = 0;
            add_item(d, "too_many_errors", note, NULL, NULL);
            d->np = np;
            e->truncated = true;
        }
        d->stop = true;
        return;
    }
    add_item(d, type, msg, in, ctx);
}

static void push_key(dec *d, const char *key, size_t len)
{
    d->path[d->np++] = (seg){.key = key, .len = len};
}

static void push_index(dec *d, size_t i)
{
    d->path[d->np++] = (seg){.index = i};
}

/* A JSON object text {"<name>": <number>} */
static void ctx_num(char *out, size_t cap, const char *name, double x)
{
    char t[40];
    schema_num_text(x, t);
    snprintf(out, cap, "{\"%s\":%s}", name, t);
}

/* ----------------------------------------------------------- scalars */

/* Python's str.strip() of ASCII whitespace */
static void trim(const char **s, size_t *n)
{
    while (*n && strchr(" \t\n\r\f\v", (*s)[0]))
        (*s)++, (*n)--;
    while (*n && strchr(" \t\n\r\f\v", (*s)[*n - 1]))
        (*n)--;
}

/* "5", "+5", "-5", "5.0", "5.00": 0, -EINVAL (not an integer), -ERANGE */
static int int_from_text(const char *s, size_t n, int64_t *out)
{
    trim(&s, &n);
    size_t i = 0;
    bool neg = false;
    if (i < n && (s[i] == '+' || s[i] == '-'))
        neg = s[i++] == '-';
    size_t start = i;
    uint64_t v = 0;
    bool over = false;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        unsigned dgt = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - dgt) / 10)
            over = true;
        else
            v = v * 10 + dgt;
    }
    if (i == start)
        return -EINVAL;
    if (i < n && s[i] == '.') {
        for (i++; i < n && s[i] == '0'; i++)
            ;
    }
    if (i != n)
        return -EINVAL;
    if (over || v > (uint64_t)INT64_MAX + neg)
        return -ERANGE;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

/* v compared with bound b: <0, 0, >0, exactly (b finite). */
static int cmp_i64(int64_t v, double b)
{
    if (b >= 9223372036854775808.0)
        return -1;
    if (b < -9223372036854775808.0)
        return 1;
    double t = trunc(b);
    int64_t bi = (int64_t)t;
    if (v != bi)
        return v < bi ? -1 : 1;
    return b > t ? -1 : b < t ? 1 : 0;
}

/* The numeric bounds of f, on an INT (is_int) or FLOAT value. */
static bool check_bounds(dec *d, const wv_db_field *f, bool is_int, int64_t iv, double fv,
                         const input *in)
{
    char msg[128], ctx[96], t[40];
    if (f->has_min) {
        int c = is_int ? cmp_i64(iv, f->min) : (fv < f->min ? -1 : fv > f->min ? 1 : 0);
        if (c < 0 || (c == 0 && f->min_exclusive)) {
            schema_num_text(f->min, t);
            bool gt = f->min_exclusive;
            snprintf(msg, sizeof msg, "Input should be greater than %s%s", gt ? "" : "or equal to ",
                     t);
            ctx_num(ctx, sizeof ctx, gt ? "gt" : "ge", f->min);
            report(d, gt ? "greater_than" : "greater_than_equal", msg, in, ctx);
            return false;
        }
    }
    if (f->has_max) {
        int c = is_int ? cmp_i64(iv, f->max) : (fv < f->max ? -1 : fv > f->max ? 1 : 0);
        if (c > 0 || (c == 0 && f->max_exclusive)) {
            schema_num_text(f->max, t);
            bool lt = f->max_exclusive;
            snprintf(msg, sizeof msg, "Input should be less than %s%s", lt ? "" : "or equal to ",
                     t);
            ctx_num(ctx, sizeof ctx, lt ? "lt" : "le", f->max);
            report(d, lt ? "less_than" : "less_than_equal", msg, in, ctx);
            return false;
        }
    }
    return true;
}

static void int_range_error(dec *d, bool neg, const input *in)
{
    if (neg)
        report(d, "greater_than_equal",
               "Input should be greater than or equal to -9223372036854775808", in,
               "{\"ge\":-9223372036854775808}");
    else
        report(d, "less_than_equal", "Input should be less than or equal to 9223372036854775807",
               in, "{\"le\":9223372036854775807}");
}

static bool dec_int_text(dec *d, const char *s, size_t n, int64_t *out, const input *in)
{
    int rc = int_from_text(s, n, out);
    if (rc == -ERANGE) {
        trim(&s, &n);
        int_range_error(d, n && s[0] == '-', in);
    } else if (rc < 0) {
        report(d, "int_parsing",
               "Input should be a valid integer, unable to parse string as an "
               "integer",
               in, NULL);
    }
    return rc == 0;
}

static bool dec_int(dec *d, const wv_json_val *v, int64_t *out, const input *in)
{
    switch (wv_json_type_of(v)) {
    case WV_JSON_NUMBER: {
        if (wv_json_as_i64(v, out) == 0)
            return true;
        const char *t;
        size_t n;
        wv_json_as_number_text(v, &t, &n);
        bool neg = n && t[0] == '-';
        if (!memchr(t, '.', n) && !memchr(t, 'e', n) && !memchr(t, 'E', n)) {
            int_range_error(d, neg, in); /* an integer past int64 */
            return false;
        }
        double x;
        if (wv_json_as_double(v, &x) < 0 || !isfinite(x)) {
            report(d, "finite_number", "Input should be a finite number", in, NULL);
            return false;
        }
        if (x != trunc(x)) {
            report(d, "int_from_float",
                   "Input should be a valid integer, got a number with a fractional part", in,
                   NULL);
            return false;
        }
        if (x >= 9223372036854775808.0 || x < -9223372036854775808.0) {
            int_range_error(d, neg, in);
            return false;
        }
        *out = (int64_t)x;
        return true;
    }
    case WV_JSON_BOOL: {
        bool b = false;
        wv_json_as_bool(v, &b);
        *out = b;
        return true;
    }
    case WV_JSON_STRING: {
        const char *s;
        size_t n;
        wv_json_as_string(v, &s, &n);
        return dec_int_text(d, s, n, out, in);
    }
    default:
        report(d, "int_type", "Input should be a valid integer", in, NULL);
        return false;
    }
}

static bool dec_float_text(dec *d, const char *s, size_t n, double *out, const input *in)
{
    trim(&s, &n);
    char buf[64];
    bool ok = n > 0 && n < sizeof buf;
    if (ok) {
        memcpy(buf, s, n);
        buf[n] = '\0';
        /* digits, sign, '.', exponent only: strtod would also take hex,
         * "inf" and "nan" */
        for (size_t i = 0; i < n && ok; i++)
            ok = strchr("0123456789+-.eE", buf[i]) != NULL;
    }
    if (ok) {
        char *end;
        *out = strtod(buf, &end);
        ok = end == buf + n;
    }
    if (!ok && n && n < 10) {
        /* Python's float() takes these; no JSON form: not finite */
        static const char *const inf[] = {"nan",       "inf",       "+inf", "-inf", "infinity",
                                          "+infinity", "-infinity", "+nan", "-nan"};
        for (size_t i = 0; i < sizeof inf / sizeof inf[0]; i++)
            if (strlen(inf[i]) == n && strncasecmp(inf[i], s, n) == 0) {
                report(d, "finite_number", "Input should be a finite number", in, NULL);
                return false;
            }
    }
    if (!ok) {
        report(d, "float_parsing",
               "Input should be a valid number, unable to parse string as a "
               "number",
               in, NULL);
        return false;
    }
    if (!isfinite(*out)) {
        report(d, "finite_number", "Input should be a finite number", in, NULL);
        return false;
    }
    return true;
}

static bool dec_float(dec *d, const wv_json_val *v, double *out, const input *in)
{
    switch (wv_json_type_of(v)) {
    case WV_JSON_NUMBER:
        if (wv_json_as_double(v, out) < 0 || !isfinite(*out)) {
            report(d, "finite_number", "Input should be a finite number", in, NULL);
            return false;
        }
        return true;
    case WV_JSON_BOOL: {
        bool b = false;
        wv_json_as_bool(v, &b);
        *out = b;
        return true;
    }
    case WV_JSON_STRING: {
        const char *s;
        size_t n;
        wv_json_as_string(v, &s, &n);
        return dec_float_text(d, s, n, out, in);
    }
    default:
        report(d, "float_type", "Input should be a valid number", in, NULL);
        return false;
    }
}

static bool dec_bool_text(dec *d, const char *s, size_t n, bool *out, const input *in)
{
    static const char *const yes[] = {"1", "on", "t", "true", "y", "yes"};
    static const char *const no[] = {"0", "off", "f", "false", "n", "no"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strlen(yes[i]) == n && strncasecmp(yes[i], s, n) == 0) {
            *out = true;
            return true;
        }
        if (strlen(no[i]) == n && strncasecmp(no[i], s, n) == 0) {
            *out = false;
            return true;
        }
    }
    report(d, "bool_parsing", "Input should be a valid boolean, unable to interpret input", in,
           NULL);
    return false;
}

static bool dec_bool(dec *d, const wv_json_val *v, bool *out, const input *in)
{
    switch (wv_json_type_of(v)) {
    case WV_JSON_BOOL:
        wv_json_as_bool(v, out);
        return true;
    case WV_JSON_NUMBER: {
        double x;
        if (wv_json_as_double(v, &x) == 0 && (x == 0 || x == 1)) {
            *out = x == 1;
            return true;
        }
        report(d, "bool_parsing", "Input should be a valid boolean, unable to interpret input", in,
               NULL);
        return false;
    }
    case WV_JSON_STRING: {
        const char *s;
        size_t n;
        wv_json_as_string(v, &s, &n);
        return dec_bool_text(d, s, n, out, in);
    }
    default:
        report(d, "bool_type", "Input should be a valid boolean", in, NULL);
        return false;
    }
}

/* An error whose message is pre + value + post and whose ctx is
 * {"<key>": value}. */
static void report_ctx_str(dec *d, const char *type, const char *pre, const char *value,
                           const char *post, const input *in, const char *key)
{
    wv_buf msg = {0}, ctx = {0};
    int rc = wv_buf_printf(&msg, "%s%s%s", pre, value, post);
    if (rc == 0)
        rc = wv_buf_append(&msg, "", 1);
    wv_json j;
    wv_json_init(&j, &ctx);
    wv_json_object_begin(&j);
    wv_json_key(&j, key);
    wv_json_string(&j, value);
    wv_json_object_end(&j);
    if (rc == 0)
        rc = wv_json_finish(&j);
    if (rc == 0)
        rc = wv_buf_append(&ctx, "", 1);
    if (rc < 0)
        d->oom = -ENOMEM, d->stop = true;
    else
        report(d, type, msg.p, in, ctx.p);
    wv_buf_free(&msg);
    wv_buf_free(&ctx);
}

/* 'a', 'b' or 'c' */
static void enum_expected(const char *const *vals, wv_buf *b)
{
    size_t n = 0;
    while (vals[n])
        n++;
    for (size_t i = 0; i < n; i++) {
        if (i)
            wv_buf_puts(b, i == n - 1 ? " or " : ", ");
        wv_buf_printf(b, "'%s'", vals[i]);
    }
}

/* A text s[0..n) (valid UTF-8) against f's constraints, stored at p. */
static bool dec_text_value(dec *d, const wv_db_field *f, const char *s, size_t n, char *p,
                           const input *in)
{
    char msg[160], ctx[96];
    size_t chars = schema_utf8_chars(s, n);
    if (f->min_chars && chars < f->min_chars) {
        snprintf(msg, sizeof msg, "String should have at least %zu character%s", f->min_chars,
                 f->min_chars == 1 ? "" : "s");
        snprintf(ctx, sizeof ctx, "{\"min_length\":%zu}", f->min_chars);
        report(d, "string_too_short", msg, in, ctx);
        return false;
    }
    size_t room = schema_text_room(f);
    size_t maxc = f->max_chars;
    if ((maxc && chars > maxc) || n > room) {
        /* without max_chars, the storage's bytes bound it (counted as
         * characters: exact for ASCII) */
        size_t lim = maxc ? maxc : room;
        snprintf(msg, sizeof msg, "String should have at most %zu character%s", lim,
                 lim == 1 ? "" : "s");
        snprintf(ctx, sizeof ctx, "{\"max_length\":%zu}", lim);
        report(d, "string_too_long", msg, in, ctx);
        return false;
    }
    if (f->pattern) {
        /* s is NUL-terminated (a JSON string, or the caller's copy) */
        if (schema_regex_match(f->pattern, s) <= 0) {
            report_ctx_str(d, "string_pattern_mismatch", "String should match pattern '",
                           f->pattern, "'", in, "pattern");
            return false;
        }
    }
    if (f->enum_values) {
        bool found = false;
        for (size_t i = 0; f->enum_values[i] && !found; i++)
            found = strlen(f->enum_values[i]) == n && memcmp(f->enum_values[i], s, n) == 0;
        if (!found) {
            wv_buf ex = {0};
            enum_expected(f->enum_values, &ex);
            if (wv_buf_append(&ex, "", 1) < 0)
                d->oom = -ENOMEM, d->stop = true;
            else
                report_ctx_str(d, "enum", "Input should be ", ex.p, "", in, "expected");
            wv_buf_free(&ex);
            return false;
        }
    }
    memcpy(p, s, n);
    p[n] = '\0';
    return true;
}

static bool dec_text(dec *d, const wv_db_field *f, const wv_json_val *v, char *p, const input *in)
{
    const char *s;
    size_t n;
    if (wv_json_as_string(v, &s, &n) < 0) {
        report(d, "string_type", "Input should be a valid string", in, NULL);
        return false;
    }
    return dec_text_value(d, f, s, n, p, in);
}

static bool dec_time_text(dec *d, const char *s, size_t n, int64_t *out, const input *in)
{
    if (schema_time_parse(s, n, out) < 0) {
        report(d, "datetime_from_date_parsing",
               "Input should be a valid datetime or date, input is not an ISO 8601 date and time",
               in, "{\"error\":\"input is not an ISO 8601 date and time\"}");
        return false;
    }
    return true;
}

static bool dec_time(dec *d, const wv_json_val *v, int64_t *out, const input *in)
{
    switch (wv_json_type_of(v)) {
    case WV_JSON_STRING: {
        const char *s;
        size_t n;
        wv_json_as_string(v, &s, &n);
        return dec_time_text(d, s, n, out, in);
    }
    case WV_JSON_NUMBER: {
        /* Unix time: seconds, or milliseconds when past 2e10 (speedate's
         * rule), years 0 to 9999 */
        double x;
        if (wv_json_as_double(v, &x) == 0 && isfinite(x)) {
            double us = fabs(x) > 2e10 ? x * 1e3 : x * 1e6;
            if (us >= -62167219200e6 && us < 253402300800e6) {
                *out = (int64_t)floor(us);
                return true;
            }
        }
        report(d, "datetime_parsing",
               "Input should be a valid datetime, dates after 9999 are not "
               "supported as unix timestamps",
               in, "{\"error\":\"dates after 9999 are not supported as unix timestamps\"}");
        return false;
    }
    default:
        report(d, "datetime_type", "Input should be a valid datetime", in, NULL);
        return false;
    }
}

static bool dec_blob(dec *d, const wv_db_field *f, const wv_json_val *v, char *p, char *base,
                     const input *in)
{
    const char *s;
    size_t n;
    if (wv_json_as_string(v, &s, &n) < 0) {
        report(d, "bytes_type", "Input should be a valid bytes", in, NULL);
        return false;
    }
    size_t room = f->max_len ? f->max_len : f->size;
    /* the decoded length is known before decoding: refuse too long first */
    size_t unpadded = n;
    while (unpadded && s[unpadded - 1] == '=')
        unpadded--;
    if (unpadded / 4 * 3 + (unpadded % 4 ? unpadded % 4 - 1 : 0) > room) {
        char msg[96], ctx[64];
        snprintf(msg, sizeof msg, "Data should have at most %zu byte%s", room,
                 room == 1 ? "" : "s");
        snprintf(ctx, sizeof ctx, "{\"max_length\":%zu}", room);
        report(d, "bytes_too_long", msg, in, ctx);
        return false;
    }
    long len = wv__b64_decode(s, n, true, p, room);
    if (len < 0) {
        report(d, "bytes_invalid_encoding", "Data should be valid base64", in, NULL);
        return false;
    }
    size_t l = (size_t)len;
    memcpy(base + f->len_offset, &l, sizeof l);
    return true;
}

static bool dec_model(dec *d, const wv_db_model *m, const wv_json_val *v, char *out);

static bool dec_array(dec *d, const wv_db_field *f, const wv_json_val *v, char *p, char *base,
                      const input *in);

/* The value v (not null) of field f into its member at p (base: the
 * struct, for BLOB lengths and ARRAY counts). */
static bool dec_value(dec *d, const wv_db_field *f, const wv_json_val *v, char *p, char *base)
{
    input in = in_val(v);
    switch (f->type) {
    case WV_DB_INT: {
        int64_t x;
        if (!dec_int(d, v, &x, &in) || !check_bounds(d, f, true, x, 0, &in))
            return false;
        memcpy(p, &x, sizeof x);
        return true;
    }
    case WV_DB_FLOAT: {
        double x;
        if (!dec_float(d, v, &x, &in) || !check_bounds(d, f, false, 0, x, &in))
            return false;
        memcpy(p, &x, sizeof x);
        return true;
    }
    case WV_DB_BOOL: {
        bool b;
        if (!dec_bool(d, v, &b, &in))
            return false;
        memcpy(p, &b, sizeof b);
        return true;
    }
    case WV_DB_TEXT:
        return dec_text(d, f, v, p, &in);
    case WV_DB_TIME: {
        int64_t t;
        if (!dec_time(d, v, &t, &in))
            return false;
        memcpy(p, &t, sizeof t);
        return true;
    }
    case WV_DB_BLOB:
        return dec_blob(d, f, v, p, base, &in);
    case WV_DB_OBJECT:
        return dec_model(d, f->object, v, p);
    case WV_DB_ARRAY:
        return dec_array(d, f, v, p, base, &in);
    default:
        return false;
    }
}

static bool dec_array(dec *d, const wv_db_field *f, const wv_json_val *v, char *p, char *base,
                      const input *in)
{
    long len = wv_json_array_len(v);
    if (len < 0) {
        report(d, "list_type", "Input should be a valid list", in, NULL);
        return false;
    }
    size_t n = (size_t)len, max = schema_array_max(f);
    char msg[160], ctx[128];
    if (n > max) {
        snprintf(msg, sizeof msg, "List should have at most %zu item%s after validation, not %zu",
                 max, max == 1 ? "" : "s", n);
        snprintf(ctx, sizeof ctx,
                 "{\"field_type\":\"List\",\"max_length\":%zu,\"actual_length\":%zu}", max, n);
        report(d, "too_long", msg, in, ctx);
        return false;
    }
    const wv_db_field *it = f->items;
    bool ok = true;
    for (size_t i = 0; i < n && !d->stop; i++) {
        const wv_json_val *ev = wv_json_array_at(v, i);
        push_index(d, i);
        char *slot = p + i * it->size;
        if (wv_json_is_null(ev) && (it->flags & WV_DB_NULLABLE))
            memset(slot, 0, it->size);
        else
            ok &= dec_value(d, it, ev, slot, NULL);
        d->np--;
    }
    memcpy(base + f->len_offset, &n, sizeof n);
    if (ok && n < f->min_items) {
        snprintf(msg, sizeof msg, "List should have at least %zu item%s after validation, not %zu",
                 f->min_items, f->min_items == 1 ? "" : "s", n);
        snprintf(ctx, sizeof ctx,
                 "{\"field_type\":\"List\",\"min_length\":%zu,\"actual_length\":%zu}", f->min_items,
                 n);
        report(d, "too_short", msg, in, ctx);
        return false;
    }
    return ok;
}

static void set_present(const wv_db_field *f, char *base, bool given)
{
    if (f->present_offset)
        memcpy(base + f->present_offset - 1, &given, sizeof given);
}

/* Field f of the object v (an object) into the struct at out. */
static bool dec_field(dec *d, const wv_db_field *f, const wv_json_val *obj, char *out)
{
    char *p = out + f->offset;
    const wv_json_val *v = wv_json_get(obj, f->name);
    bool ok = true;
    push_key(d, f->name, strlen(f->name));
    if (!v && f->default_json) {
        void *tmp;
        const wv_json_val *dv = schema_default(f->default_json, &tmp);
        if (!dv) {
            report(d, "default_invalid", "The field's default is not JSON", NULL, NULL);
            ok = false;
        } else if (!wv_json_is_null(dv)) {
            ok = dec_value(d, f, dv, p, out);
        }
        schema_default_release(tmp);
        set_present(f, out, false);
    } else if (!v) {
        input in = in_val(obj);
        report(d, "missing", "Field required", &in, NULL);
        ok = false;
    } else if (wv_json_is_null(v) && (f->flags & WV_DB_NULLABLE)) {
        set_present(f, out, false);
    } else {
        ok = dec_value(d, f, v, p, out);
        set_present(f, out, ok);
    }
    d->np--;
    return ok;
}

static bool is_field(const wv_db_model *m, const char *k, size_t kn)
{
    for (size_t i = 0; i < m->nfields; i++)
        if (strlen(m->fields[i].name) == kn && memcmp(m->fields[i].name, k, kn) == 0)
            return true;
    return false;
}

static bool dec_model(dec *d, const wv_db_model *m, const wv_json_val *v, char *out)
{
    if (wv_json_type_of(v) != WV_JSON_OBJECT) {
        input in = in_val(v);
        report(d, "model_attributes_type",
               "Input should be a valid dictionary or object to extract fields from", &in, NULL);
        return false;
    }
    bool ok = true;
    for (size_t i = 0; i < m->nfields && !d->stop; i++)
        ok &= dec_field(d, &m->fields[i], v, out);
    if (m->forbid_extra) {
        for (size_t i = 0; !d->stop; i++) {
            const char *k;
            size_t kn;
            const wv_json_val *mv = wv_json_object_at(v, i, &k, &kn);
            if (!mv)
                break;
            if (is_field(m, k, kn))
                continue;
            push_key(d, k, kn);
            input in = in_val(mv);
            report(d, "extra_forbidden", "Extra inputs are not permitted", &in, NULL);
            d->np--;
            ok = false;
        }
    }
    return ok;
}

/* ------------------------------------------------------------ the calls */

static void dec_init(dec *d, wv_schema_errors *e, const char *root)
{
    memset(d, 0, sizeof *d);
    d->e = e;
    d->root = root && *root ? root : NULL;
}

static const char *body_root(const wv_schema_errors *e)
{
    return e->root ? e->root : "body";
}

int wv_schema_decode_val(const wv_db_model *m, const wv_json_val *v, void *out,
                         wv_schema_errors *errs)
{
    if (!errs || !out)
        return wv_fail(-ENOTSUP, "wv_schema_decode: out or errs is NULL");
    int rc = schema_check_model(m, 0);
    if (rc < 0)
        return -ENOTSUP;
    dec d;
    dec_init(&d, errs, body_root(errs));
    memset(out, 0, m->size);
    size_t before = errs->n;
    if (!v) {
        input in = {.is_null = true};
        report(&d, "missing", "Field required", &in, NULL);
    } else {
        dec_model(&d, m, v, out);
    }
    if (d.oom)
        return wv_fail(-ENOMEM, "wv_schema_decode: out of memory");
    return errs->n > before || d.stop ? -EINVAL : 0;
}

int wv_schema_decode(const wv_db_model *m, const char *json, size_t n, void *out,
                     wv_schema_errors *errs)
{
    if (!errs || !out || !json)
        return wv_fail(-ENOTSUP, "wv_schema_decode: json, out or errs is NULL");
    if (schema_check_model(m, 0) < 0)
        return -ENOTSUP;
    int depth = errs->max_depth > 0 ? errs->max_depth : WV_SCHEMA_MAX_DEPTH;
    if (depth > WV_JSON_MAX_DEPTH)
        depth = WV_JSON_MAX_DEPTH;
    size_t max = errs->max_bytes ? errs->max_bytes : WV_SCHEMA_MAX_BYTES;
    wv_json_parse_opts o = {.max_depth = depth, .max_bytes = max};
    wv_json_doc *doc = NULL;
    int rc = n > max
                 ? wv_fail(-EMSGSIZE, "the body has %zu bytes, more than the %zu allowed", n, max)
                 : wv_json_parse_with(json, n, &o, &doc);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0) {
        /* FastAPI: {"type": "json_invalid", "loc": ["body", <byte>], "msg":
         * "JSON decode error", "input": {}, "ctx": {"error": ...}} */
        char why[512];
        snprintf(why, sizeof why, "%s", wv_errmsg());
        dec d;
        dec_init(&d, errs, body_root(errs));
        const char *at = strstr(why, "(byte ");
        if (at)
            push_index(&d, strtoull(at + 6, NULL, 10));
        else if (rc == -EMSGSIZE)
            push_index(&d, max);
        wv_buf ctx = {0};
        wv_json j;
        wv_json_init(&j, &ctx);
        wv_json_object_begin(&j);
        wv_json_key(&j, "error");
        wv_json_string(&j, why);
        wv_json_object_end(&j);
        if (wv_json_finish(&j) == 0 && wv_buf_append(&ctx, "", 1) == 0)
            report(&d, "json_invalid", "JSON decode error", NULL, ctx.p);
        else
            d.oom = -ENOMEM;
        wv_buf_free(&ctx);
        if (d.oom)
            return -ENOMEM;
        return wv_fail(-EBADMSG, "%s", why);
    }
    rc = wv_schema_decode_val(m, wv_json_doc_root(doc), out, errs);
    wv_json_doc_free(doc);
    return rc;
}

int wv_schema_decode_body(wv_req *req, const wv_db_model *m, void *out, wv_schema_errors *errs)
{
    wv_str body;
    int rc = wv_req_body(req, &body);
    if (rc < 0)
        return rc;
    if (!body.n)
        return wv_schema_decode_val(m, NULL, out, errs);
    return wv_schema_decode(m, body.p, body.n, out, errs);
}

int wv_schema_param(const wv_db_field *f, const char *where, const char *s, size_t n, void *out,
                    wv_schema_errors *errs)
{
    if (!errs || !out || !where)
        return wv_fail(-ENOTSUP, "wv_schema_param: where, out or errs is NULL");
    if (schema_check_param(f) < 0)
        return -ENOTSUP;
    dec d;
    dec_init(&d, errs, where);
    push_key(&d, f->name, strlen(f->name));
    size_t before = errs->n;
    char *p = out;
    memset(p, 0, f->size);
    if (!s) {
        if (f->default_json) {
            void *tmp;
            const wv_json_val *dv = schema_default(f->default_json, &tmp);
            if (!dv)
                report(&d, "default_invalid", "The field's default is not JSON", NULL, NULL);
            else if (!wv_json_is_null(dv))
                dec_value(&d, f, dv, p, NULL);
            schema_default_release(tmp);
        } else {
            input in = {.is_null = true};
            report(&d, "missing", "Field required", &in, NULL);
        }
    } else {
        input in = {.s = s, .n = n};
        if (!schema_utf8_valid(s, n)) {
            in.s = NULL;
            in.is_null = true;
            report(&d, "string_unicode",
                   "Input should be a valid string, unable to parse raw data as a unicode string",
                   &in, NULL);
        } else {
            switch (f->type) {
            case WV_DB_INT: {
                int64_t x;
                if (dec_int_text(&d, s, n, &x, &in) && check_bounds(&d, f, true, x, 0, &in))
                    memcpy(p, &x, sizeof x);
                break;
            }
            case WV_DB_FLOAT: {
                double x;
                if (dec_float_text(&d, s, n, &x, &in) && check_bounds(&d, f, false, 0, x, &in))
                    memcpy(p, &x, sizeof x);
                break;
            }
            case WV_DB_BOOL: {
                bool b;
                if (dec_bool_text(&d, s, n, &b, &in))
                    memcpy(p, &b, sizeof b);
                break;
            }
            case WV_DB_TIME: {
                int64_t t;
                if (dec_time_text(&d, s, n, &t, &in))
                    memcpy(p, &t, sizeof t);
                break;
            }
            default: {
                /* TEXT: regexec needs a NUL-terminated copy */
                char *c = malloc(n + 1);
                if (!c)
                    return -ENOMEM;
                memcpy(c, s, n);
                c[n] = '\0';
                dec_text_value(&d, f, c, n, p, &in);
                free(c);
                break;
            }
            }
        }
    }
    if (d.oom)
        return wv_fail(-ENOMEM, "wv_schema_param: out of memory");
    return errs->n > before || d.stop ? -EINVAL : 0;
}

/* --------------------------------------------------------- the errors */

void wv_schema_errors_free(wv_schema_errors *e)
{
    if (!e)
        return;
    free(e->items);
    wv_buf_free(&e->text);
    e->items = NULL;
    e->n = e->cap = 0;
    e->truncated = false;
}

size_t wv_schema_errors_count(const wv_schema_errors *e)
{
    return e ? e->n : 0;
}

static const char *text_at(const wv_schema_errors *e, size_t off)
{
    return off == SCHEMA_NONE ? NULL : e->text.p + off;
}

const char *wv_schema_error_type(const wv_schema_errors *e, size_t i)
{
    return e && i < e->n ? e->items[i].type : NULL;
}

const char *wv_schema_error_msg(const wv_schema_errors *e, size_t i)
{
    return e && i < e->n ? text_at(e, e->items[i].msg) : NULL;
}

const char *wv_schema_error_loc(const wv_schema_errors *e, size_t i)
{
    return e && i < e->n ? text_at(e, e->items[i].loc) : NULL;
}

const char *wv_schema_error_input(const wv_schema_errors *e, size_t i)
{
    return e && i < e->n ? text_at(e, e->items[i].input) : NULL;
}

const char *wv_schema_error_ctx(const wv_schema_errors *e, size_t i)
{
    return e && i < e->n ? text_at(e, e->items[i].ctx) : NULL;
}

int wv_schema_errors_json(const wv_schema_errors *e, wv_json *j)
{
    if (!e || !j)
        return -EINVAL;
    wv_json_object_begin(j);
    wv_json_key(j, "detail");
    wv_json_array_begin(j);
    for (size_t i = 0; i < e->n; i++) {
        const wv_schema_error_item *it = &e->items[i];
        wv_json_object_begin(j);
        wv_json_key(j, "type");
        wv_json_string(j, it->type);
        wv_json_key(j, "loc");
        const char *loc = text_at(e, it->loc);
        wv_json_raw(j, loc, strlen(loc));
        wv_json_key(j, "msg");
        wv_json_string(j, text_at(e, it->msg));
        if (it->input != SCHEMA_NONE) {
            wv_json_key(j, "input");
            wv_json_raw(j, text_at(e, it->input), strlen(text_at(e, it->input)));
        }
        if (it->ctx != SCHEMA_NONE) {
            wv_json_key(j, "ctx");
            wv_json_raw(j, text_at(e, it->ctx), strlen(text_at(e, it->ctx)));
        }
        wv_json_object_end(j);
    }
    wv_json_array_end(j);
    wv_json_object_end(j);
    return 0;
}

int wv_res_unprocessable(wv_res *res, const wv_schema_errors *e)
{
    wv_json *j = wv_res_json_writer(res);
    int rc = wv_schema_errors_json(e, j);
    if (rc < 0)
        return rc;
    return wv_res_json_send(res, 422);
}
