/*
 * Reading JSON (include/weave/json.h): wv_json_parse and the typed getters.
 *
 * bench/json_libs.md says why it is built this way: the tree libraries
 * (cJSON, jansson, json-c, yajl) spend most of their time in one malloc per
 * value, while jsmn's token array needs one allocation per document and
 * reads 3-9x faster. jsmn is a lax tokenizer, though ("[1 2]", "tru",
 * invalid UTF-8 and any depth pass), so a document goes through three steps:
 *
 *  1. validate(): a strict RFC 8259 recognizer of our own. It checks
 *     grammar, numbers, escapes, UTF-8 and depth, explains the first error
 *     with its line and column, and counts the tokens jsmn will make.
 *  2. jsmn_parse() fills an array of exactly that many tokens, inside one
 *     allocation that also holds a copy of the text and an index.
 *  3. index_tokens(): one pass that unescapes every string in place (the
 *     text is our copy; unescaping only shrinks) and NUL-terminates it,
 *     and lists each container's children (array elements, object keys)
 *     in `children`, so element i and member i are O(1).
 *
 * After step 3 the document is never written again, so readers need no
 * locks. jsmn's `parent` field then holds the token's own index: a value
 * handle is a token pointer, and that index leads from it back to the
 * token array and its document without a pointer in every call.
 */
#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "json/json_internal.h"

#define MAX_DEPTH_LIMIT 1024
#define MAX_BYTES_LIMIT ((size_t)1 << 30)

struct wv_json_doc {
    char *text;    /* our copy: strings unescaped in place, NUL-terminated */
    int *children; /* a container's children: children[tok.start .. + tok.size) */
    int count;
    jsmntok_t tokens[];
};

/* ------------------------------------------------------------ validate */

typedef struct scanner {
    const unsigned char *start, *p, *end;
    int depth, max_depth;
    uint64_t is_object[MAX_DEPTH_LIMIT / 64]; /* bit d-1: container at depth d */
    size_t tokens;
    bool escapes;      /* some string holds a backslash */
    const char *error; /* what went wrong, at p */
} scanner;

static bool fail_at(scanner *s, const unsigned char *at, const char *what)
{
    s->p = at;
    s->error = what;
    return false;
}

static inline void skip_space(scanner *s)
{
    /* Every byte that can follow whitespace is above ' ': one compare for
     * compact documents. */
    while (s->p < s->end && *s->p <= ' ' &&
           (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t'))
        s->p++;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* The code unit of the four hex digits at p, or -1. */
static long hex4(const unsigned char *p, const unsigned char *end)
{
    if (end - p < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* One escape at p ('\\'); advances past it. */
static bool scan_escape(scanner *s)
{
    const unsigned char *at = s->p;
    if (s->end - at < 2)
        return fail_at(s, at, "unterminated string");
    switch (at[1]) {
    case '"':
    case '\\':
    case '/':
    case 'b':
    case 'f':
    case 'n':
    case 'r':
    case 't':
        s->p += 2;
        return true;
    case 'u':
        break;
    default:
        return fail_at(s, at, "invalid escape in a string");
    }
    long unit = hex4(at + 2, s->end);
    if (unit < 0)
        return fail_at(s, at, "\\u must be followed by four hex digits");
    if (unit == 0)
        return fail_at(s, at, "\\u0000 is not allowed in a string");
    if (unit >= 0xdc00 && unit <= 0xdfff)
        return fail_at(s, at, "unpaired surrogate escape in a string");
    if (unit >= 0xd800 && unit <= 0xdbff) {
        long low = s->end - at >= 12 && at[6] == '\\' && at[7] == 'u' ? hex4(at + 8, s->end) : -1;
        if (low < 0xdc00 || low > 0xdfff)
            return fail_at(s, at, "unpaired surrogate escape in a string");
        s->p += 12;
        return true;
    }
    s->p += 6;
    return true;
}

/* A string starting at p ('"'); advances past its closing quote. */
static bool scan_string(scanner *s)
{
    const unsigned char *open = s->p;
    s->p++;
    for (;;) {
        s->p = json_skip_plain(s->p, s->end);
        if (s->p == s->end)
            return fail_at(s, open, "unterminated string");
        unsigned char c = *s->p;
        if (c == '"') {
            s->p++;
            return true;
        }
        if (c == '\\') {
            s->escapes = true;
            if (!scan_escape(s))
                return false;
        } else if (c < 0x20) {
            return fail_at(s, s->p, "control character in a string (it must be escaped)");
        } else {
            int len = json_utf8_sequence(s->p, s->end);
            if (len < 0)
                return fail_at(s, s->p, "invalid UTF-8 in a string");
            s->p += len;
        }
    }
}

static inline bool is_digit(const scanner *s)
{
    return s->p < s->end && *s->p >= '0' && *s->p <= '9';
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at p. */
static bool scan_number(scanner *s)
{
    const unsigned char *at = s->p;
    if (*s->p == '-')
        s->p++;
    if (!is_digit(s))
        return fail_at(s, at, "invalid number");
    if (*s->p++ == '0') {
        if (is_digit(s))
            return fail_at(s, at, "invalid number (leading zero)");
    } else {
        while (is_digit(s))
            s->p++;
    }
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (!is_digit(s))
            return fail_at(s, at, "invalid number (no digit after '.')");
        while (is_digit(s))
            s->p++;
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (!is_digit(s))
            return fail_at(s, at, "invalid number (no digit in the exponent)");
        while (is_digit(s))
            s->p++;
    }
    return true;
}

static bool scan_literal(scanner *s, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return fail_at(s, s->p, "invalid literal (expected true, false or null)");
    s->p += n;
    return true;
}

static inline uint64_t depth_bit(int depth)
{
    return UINT64_C(1) << ((depth - 1) % 64);
}

static inline bool in_object(const scanner *s)
{
    return s->is_object[(s->depth - 1) / 64] & depth_bit(s->depth);
}

static bool push(scanner *s, bool object)
{
    if (s->depth >= s->max_depth)
        return fail_at(s, s->p, "nested too deeply");
    s->depth++;
    uint64_t *word = &s->is_object[(s->depth - 1) / 64];
    if (object)
        *word |= depth_bit(s->depth);
    else
        *word &= ~depth_bit(s->depth);
    s->p++;
    s->tokens++;
    return true;
}

/* The whole text: one value and whitespace around it. */
static bool validate(scanner *s)
{
    enum { VALUE, KEY, AFTER_VALUE } want = VALUE;
    if (s->end - s->p >= 3 && memcmp(s->p, "\xef\xbb\xbf", 3) == 0)
        return fail_at(s, s->p, "byte order mark before the value");
    for (;;) {
        skip_space(s);
        switch (want) {
        case VALUE:
            if (s->p == s->end)
                return fail_at(s, s->p, "unexpected end of input (expected a value)");
            switch (*s->p) {
            case '{':
            case '[': {
                bool object = *s->p == '{';
                if (!push(s, object))
                    return false;
                skip_space(s);
                if (s->p < s->end && *s->p == (object ? '}' : ']')) {
                    s->p++;
                    s->depth--;
                    want = AFTER_VALUE;
                } else {
                    want = object ? KEY : VALUE;
                }
                continue;
            }
            case '"':
                if (!scan_string(s))
                    return false;
                break;
            case 't':
                if (!scan_literal(s, "true"))
                    return false;
                break;
            case 'f':
                if (!scan_literal(s, "false"))
                    return false;
                break;
            case 'n':
                if (!scan_literal(s, "null"))
                    return false;
                break;
            default:
                if (*s->p != '-' && (*s->p < '0' || *s->p > '9'))
                    return fail_at(s, s->p, "unexpected character (expected a value)");
                if (!scan_number(s))
                    return false;
            }
            s->tokens++;
            want = AFTER_VALUE;
            continue;
        case KEY:
            if (s->p == s->end || *s->p != '"')
                return fail_at(s, s->p, "expected a string as object key");
            if (!scan_string(s))
                return false;
            s->tokens++;
            skip_space(s);
            if (s->p == s->end || *s->p != ':')
                return fail_at(s, s->p, "expected ':' after an object key");
            s->p++;
            want = VALUE;
            continue;
        case AFTER_VALUE:
            if (s->depth == 0) {
                if (s->p != s->end)
                    return fail_at(s, s->p, "unexpected data after the value");
                return true;
            }
            if (s->p == s->end)
                return fail_at(s, s->p, "unexpected end of input (unclosed object or array)");
            bool object = in_object(s);
            if (*s->p == ',') {
                s->p++;
                want = object ? KEY : VALUE;
            } else if (*s->p == (object ? '}' : ']')) {
                s->p++;
                s->depth--;
            } else {
                return fail_at(s, s->p,
                               object ? "expected ',' or '}' after an object member"
                                      : "expected ',' or ']' after an array element");
            }
            continue;
        }
    }
}

static int report(const scanner *s)
{
    int line = 1;
    const unsigned char *line_start = s->start;
    for (const unsigned char *q = s->start; q < s->p; q++) {
        if (*q == '\n') {
            line++;
            line_start = q + 1;
        }
    }
    return wv_fail(-EINVAL, "line %d, column %td (byte %td): %s", line, s->p - line_start + 1,
                   s->p - s->start, s->error);
}

/* ---------------------------------------------------------------- index */

static size_t put_utf8(char *out, unsigned long c)
{
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xc0 | c >> 6);
        out[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xe0 | c >> 12);
        out[1] = (char)(0x80 | (c >> 6 & 0x3f));
        out[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | c >> 18);
    out[1] = (char)(0x80 | (c >> 12 & 0x3f));
    out[2] = (char)(0x80 | (c >> 6 & 0x3f));
    out[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* Unescape s[0..n) in place (validate() has checked every escape); the new
 * length. */
static size_t unescape_in_place(char *s, size_t n)
{
    const unsigned char *r = (const unsigned char *)s, *end = r + n;
    char *w = s;
    while (r < end) {
        const unsigned char *bs = memchr(r, '\\', (size_t)(end - r));
        size_t plain = (size_t)((bs ? bs : end) - r);
        memmove(w, r, plain);
        w += plain;
        r += plain;
        if (!bs)
            break;
        switch (r[1]) {
        case 'b':
            *w++ = '\b';
            break;
        case 'f':
            *w++ = '\f';
            break;
        case 'n':
            *w++ = '\n';
            break;
        case 'r':
            *w++ = '\r';
            break;
        case 't':
            *w++ = '\t';
            break;
        case 'u': {
            unsigned long c = (unsigned long)hex4(r + 2, end);
            if (c >= 0xd800 && c <= 0xdbff) {
                unsigned long low = (unsigned long)hex4(r + 8, end);
                c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
                r += 6;
            }
            w += put_utf8(w, c);
            r += 6;
            continue;
        }
        default: /* '"' '\\' '/' */
            *w++ = (char)r[1];
            break;
        }
        r += 2;
    }
    return (size_t)(w - s);
}

static void index_tokens(wv_json_doc *doc, bool escapes)
{
    int next_child = 0;
    for (int i = 0; i < doc->count; i++) {
        jsmntok_t *t = &doc->tokens[i];
        if (t->parent >= 0) {
            /* An array's elements and an object's keys (whose parent is
             * the object; a value's parent is its key). */
            jsmntok_t *up = &doc->tokens[t->parent];
            if (up->type == JSMN_ARRAY || up->type == JSMN_OBJECT)
                doc->children[up->end++] = i;
        }
        if (t->type == JSMN_ARRAY || t->type == JSMN_OBJECT) {
            /* start: where its children are listed; end: the next free
             * slot while they are being listed. */
            t->start = t->end = next_child;
            next_child += t->size;
        } else if (t->type == JSMN_STRING) {
            char *s = doc->text + t->start;
            size_t n = (size_t)(t->end - t->start);
            if (escapes && memchr(s, '\\', n)) {
                n = unescape_in_place(s, n);
                t->end = t->start + (int)n;
            }
            s[n] = '\0'; /* over the closing quote, or inside the old escapes */
        }
        t->parent = i; /* from here on: the token's own index */
    }
}

/* ---------------------------------------------------------------- parse */

int wv_json_parse_with(const char *text, size_t n, const wv_json_parse_opts *opts,
                       wv_json_doc **out)
{
    *out = NULL;
    int max_depth = opts && opts->max_depth > 0 ? opts->max_depth : WV_JSON_MAX_DEPTH;
    size_t max_bytes = opts && opts->max_bytes ? opts->max_bytes : WV_JSON_MAX_BYTES;
    if (max_depth > MAX_DEPTH_LIMIT)
        max_depth = MAX_DEPTH_LIMIT;
    if (max_bytes > MAX_BYTES_LIMIT)
        max_bytes = MAX_BYTES_LIMIT;
    if (!text)
        return wv_fail(-EINVAL, "no JSON text");
    if (n > max_bytes)
        return wv_fail(-EMSGSIZE, "JSON text of %zu bytes is over the limit of %zu", n, max_bytes);

    scanner s = {
        .start = (const unsigned char *)text,
        .p = (const unsigned char *)text,
        .end = (const unsigned char *)text + n,
        .max_depth = max_depth,
    };
    if (!validate(&s))
        return report(&s);

    /* One block: header and tokens, the children index, the text copy
     * (plus a space, so jsmn's strict mode sees a number at the very end
     * as finished, and a NUL). Every count is below n <= 1 GiB. */
    size_t count = s.tokens;
    size_t tokens_size = offsetof(wv_json_doc, tokens) + count * sizeof(jsmntok_t);
    size_t children_size = count * sizeof(int);
    wv_json_doc *doc = malloc(tokens_size + children_size + n + 2);
    if (!doc)
        return wv_fail(-ENOMEM, "no memory for a JSON document of %zu bytes", n);
    doc->count = (int)count;
    doc->children = (int *)((char *)doc + tokens_size);
    doc->text = (char *)doc + tokens_size + children_size;
    memcpy(doc->text, text, n);
    doc->text[n] = ' ';
    doc->text[n + 1] = '\0';

    jsmn_parser parser;
    jsmn_init(&parser);
    int r = jsmn_parse(&parser, doc->text, n + 1, doc->tokens, (unsigned)count);
    if (r != (int)count) {
        /* validate() and jsmn disagree: a bug, never the input's fault. */
        free(doc);
        return wv_fail(-EINVAL, "JSON tokenizer error %d on valid input", r);
    }
    index_tokens(doc, s.escapes);
    *out = doc;
    return 0;
}

int wv_json_parse(const char *text, size_t n, wv_json_doc **out)
{
    return wv_json_parse_with(text, n, NULL, out);
}

void wv_json_doc_free(wv_json_doc *doc)
{
    free(doc);
}

const wv_json_val *wv_json_doc_root(const wv_json_doc *doc)
{
    return doc ? (const wv_json_val *)&doc->tokens[0] : NULL;
}

/* -------------------------------------------------------------- getters */

static inline const jsmntok_t *token(const wv_json_val *v)
{
    return (const jsmntok_t *)v;
}

static inline const wv_json_val *value(const jsmntok_t *t)
{
    return (const wv_json_val *)t;
}

/* The document a token belongs to (its parent field holds its index). */
static inline const wv_json_doc *doc_of(const jsmntok_t *t)
{
    const jsmntok_t *first = t - t->parent;
    return (const wv_json_doc *)((const char *)first - offsetof(wv_json_doc, tokens));
}

static inline const char *text_of(const jsmntok_t *t)
{
    return doc_of(t)->text + t->start;
}

wv_json_type wv_json_type_of(const wv_json_val *v)
{
    const jsmntok_t *t = token(v);
    if (!t)
        return WV_JSON_MISSING;
    switch (t->type) {
    case JSMN_OBJECT:
        return WV_JSON_OBJECT;
    case JSMN_ARRAY:
        return WV_JSON_ARRAY;
    case JSMN_STRING:
        return WV_JSON_STRING;
    default:
        switch (text_of(t)[0]) {
        case 'n':
            return WV_JSON_NULL;
        case 't':
        case 'f':
            return WV_JSON_BOOL;
        default:
            return WV_JSON_NUMBER;
        }
    }
}

const wv_json_val *wv_json_getn(const wv_json_val *obj, const char *key, size_t n)
{
    const jsmntok_t *t = token(obj);
    if (!t || t->type != JSMN_OBJECT || !key)
        return NULL;
    const wv_json_doc *doc = doc_of(t);
    const int *child = doc->children + t->start;
    const jsmntok_t *found = NULL;
    for (int i = 0; i < t->size; i++) {
        const jsmntok_t *k = &doc->tokens[child[i]];
        if ((size_t)(k->end - k->start) == n && memcmp(doc->text + k->start, key, n) == 0)
            found = k + 1; /* keep going: the last occurrence wins */
    }
    return value(found);
}

const wv_json_val *wv_json_get(const wv_json_val *obj, const char *key)
{
    return key ? wv_json_getn(obj, key, strlen(key)) : NULL;
}

int wv_json_as_string(const wv_json_val *v, const char **s, size_t *len)
{
    const jsmntok_t *t = token(v);
    if (!t || t->type != JSMN_STRING)
        return -EINVAL;
    *s = text_of(t);
    if (len)
        *len = (size_t)(t->end - t->start);
    return 0;
}

static bool is_number(const jsmntok_t *t)
{
    if (!t || t->type != JSMN_PRIMITIVE)
        return false;
    char c = text_of(t)[0];
    return c == '-' || (c >= '0' && c <= '9');
}

int wv_json_as_number_text(const wv_json_val *v, const char **text, size_t *len)
{
    const jsmntok_t *t = token(v);
    if (!is_number(t) || !text || !len)
        return -EINVAL;
    *text = text_of(t);
    *len = (size_t)(t->end - t->start);
    return 0;
}

int wv_json_as_i64(const wv_json_val *v, int64_t *out)
{
    const jsmntok_t *t = token(v);
    if (!is_number(t))
        return -EINVAL;
    const char *p = text_of(t), *end = p + (t->end - t->start);
    bool negative = *p == '-';
    p += negative;
    /* Accumulate as a negative number: INT64_MIN has no positive twin. */
    int64_t acc = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return -EINVAL; /* '.', 'e' or 'E': not an integer */
        int digit = *p - '0';
        if (acc < (INT64_MIN + digit) / 10)
            return -EINVAL;
        acc = acc * 10 - digit;
    }
    if (!negative) {
        if (acc == INT64_MIN)
            return -EINVAL;
        acc = -acc;
    }
    *out = acc;
    return 0;
}

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void make_c_locale(void)
{
    c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

locale_t json_c_locale(void)
{
    pthread_once(&c_locale_once, make_c_locale);
    return c_locale;
}

/* strtod in the "C" locale whatever the program set (a service may call
 * setlocale, which would make strtod expect a decimal comma). */
static double strtod_c(const char *p)
{
    locale_t c = json_c_locale();
    return c ? strtod_l(p, NULL, c) : strtod(p, NULL);
}

/* Clinger's fast path: when the digits fit in 53 bits and the power of ten
 * is exact (10^0..10^22), one IEEE multiplication or division is correctly
 * rounded. Covers prices, coordinates, scores; the rest goes to strtod. */
static bool fast_double(const char *p, const char *end, double *out)
{
    static const double powers[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                    1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                    1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    bool negative = *p == '-';
    p += negative;
    uint64_t mantissa = 0;
    int digits = 0, exponent = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (mantissa || *p != '0')
            digits++;
        mantissa = mantissa * 10 + (uint64_t)(*p - '0');
        if (digits > 15)
            return false;
    }
    if (p < end && *p == '.') {
        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            if (mantissa || *p != '0')
                digits++;
            mantissa = mantissa * 10 + (uint64_t)(*p - '0');
            exponent--;
            if (digits > 15)
                return false;
        }
    }
    if (p < end) { /* 'e' or 'E' */
        p++;
        bool minus = *p == '-';
        p += *p == '-' || *p == '+';
        int e = 0;
        for (; p < end; p++) {
            e = e * 10 + (*p - '0');
            if (e > 400)
                return false;
        }
        exponent += minus ? -e : e;
    }
    if (exponent < -22 || exponent > 22)
        return false;
    double d = (double)mantissa; /* exact: at most 15 digits */
    d = exponent < 0 ? d / powers[-exponent] : d * powers[exponent];
    *out = negative ? -d : d;
    return true;
}

int wv_json_as_double(const wv_json_val *v, double *out)
{
    const jsmntok_t *t = token(v);
    if (!is_number(t))
        return -EINVAL;
    const char *p = text_of(t);
    double d;
    /* The text after a number is a delimiter, where strtod stops too. */
    if (!fast_double(p, p + (t->end - t->start), &d))
        d = strtod_c(p);
    if (d == HUGE_VAL || d == -HUGE_VAL)
        return -EINVAL;
    *out = d;
    return 0;
}

int wv_json_as_bool(const wv_json_val *v, bool *out)
{
    const jsmntok_t *t = token(v);
    if (!t || t->type != JSMN_PRIMITIVE)
        return -EINVAL;
    char c = text_of(t)[0];
    if (c != 't' && c != 'f')
        return -EINVAL;
    *out = c == 't';
    return 0;
}

bool wv_json_is_null(const wv_json_val *v)
{
    const jsmntok_t *t = token(v);
    return t && t->type == JSMN_PRIMITIVE && text_of(t)[0] == 'n';
}

long wv_json_array_len(const wv_json_val *v)
{
    const jsmntok_t *t = token(v);
    return t && t->type == JSMN_ARRAY ? t->size : -EINVAL;
}

const wv_json_val *wv_json_array_at(const wv_json_val *v, size_t i)
{
    const jsmntok_t *t = token(v);
    if (!t || t->type != JSMN_ARRAY || i >= (size_t)t->size)
        return NULL;
    const wv_json_doc *doc = doc_of(t);
    return value(&doc->tokens[doc->children[t->start + (int)i]]);
}

long wv_json_object_len(const wv_json_val *v)
{
    const jsmntok_t *t = token(v);
    return t && t->type == JSMN_OBJECT ? t->size : -EINVAL;
}

const wv_json_val *wv_json_object_at(const wv_json_val *v, size_t i, const char **key,
                                     size_t *key_len)
{
    const jsmntok_t *t = token(v);
    if (!t || t->type != JSMN_OBJECT || i >= (size_t)t->size)
        return NULL;
    const wv_json_doc *doc = doc_of(t);
    const jsmntok_t *k = &doc->tokens[doc->children[t->start + (int)i]];
    if (key)
        *key = doc->text + k->start;
    if (key_len)
        *key_len = (size_t)(k->end - k->start);
    return value(k + 1);
}

/* ------------------------------------------------------- field getters */

/* Why obj.key could not be read as `expected`; -EINVAL. */
static int field_error(const wv_json_val *v, const char *key, const char *expected)
{
    if (!key)
        key = "(null)";
    if (!v)
        return wv_fail(-EINVAL, "%.64s: missing", key);
    return wv_fail(-EINVAL, "%.64s: expected %s", key, expected);
}

int wv_json_get_string(const wv_json_val *obj, const char *key, const char **s, size_t *len)
{
    const wv_json_val *v = wv_json_get(obj, key);
    return wv_json_as_string(v, s, len) == 0 ? 0 : field_error(v, key, "a string");
}

int wv_json_get_i64(const wv_json_val *obj, const char *key, int64_t *out)
{
    const wv_json_val *v = wv_json_get(obj, key);
    if (wv_json_as_i64(v, out) == 0)
        return 0;
    return field_error(v, key, is_number(token(v)) ? "an integer in int64 range" : "an integer");
}

int wv_json_get_double(const wv_json_val *obj, const char *key, double *out)
{
    const wv_json_val *v = wv_json_get(obj, key);
    return wv_json_as_double(v, out) == 0 ? 0 : field_error(v, key, "a number");
}

int wv_json_get_bool(const wv_json_val *obj, const char *key, bool *out)
{
    const wv_json_val *v = wv_json_get(obj, key);
    return wv_json_as_bool(v, out) == 0 ? 0 : field_error(v, key, "true or false");
}
