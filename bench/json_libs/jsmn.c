/*
 * jsmn 1.1.0 (libjsmn-dev, header only) plus typed getters of our own,
 * behind bench/json_libs/json_libs.h: what "a tokenizer and our own
 * reading code" would cost.
 *
 * jsmn only finds token boundaries (strict mode, parent links): strings are
 * left escaped, numbers and literals unchecked ("tru", "1.2.3" and "[1 2]"
 * pass). The getters below therefore validate a number or literal when it
 * is read and unescape strings on demand into a scratch area of the
 * document. After parsing, one pass records where each token's subtree
 * ends, so skipping a member is O(1); a small cache of cursors (one per
 * recently walked array) makes in-order array walks O(1) per element.
 */
#define JSMN_STATIC
#define JSMN_STRICT
#define JSMN_PARENT_LINKS
#include <jsmn.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_libs.h"

typedef struct doc {
    const char *text;
    jsmntok_t *tokens;
    int *after; /* after[i]: index of the first token past i's subtree */
    int count;
    char *scratch; /* unescaped strings, NUL-terminated, one after another */
    size_t scratch_used, scratch_size;
    struct {
        int array, index, token;
    } cursors[8]; /* most recently used first */
} doc;

static void free_doc(void *p)
{
    doc *d = p;
    if (!d)
        return;
    free(d->tokens);
    free(d->after);
    free(d->scratch);
    free(d);
}

static void *parse(const char *text, size_t n, char *err, size_t err_size)
{
    doc *d = calloc(1, sizeof *d);
    if (!d)
        goto nomem;
    d->text = text;
    unsigned cap = (unsigned)(n / 8 + 16);
    jsmn_parser parser;
    jsmn_init(&parser);
    int r;
    for (;;) {
        jsmntok_t *t = realloc(d->tokens, cap * sizeof *t);
        if (!t)
            goto nomem;
        d->tokens = t;
        r = jsmn_parse(&parser, text, n, d->tokens, cap);
        if (r != JSMN_ERROR_NOMEM)
            break;
        cap *= 2;
    }
    if (r < 0) {
        snprintf(err, err_size, "%s at byte %u",
                 r == JSMN_ERROR_PART ? "truncated input" : "invalid character", parser.pos);
        free_doc(d);
        return NULL;
    }
    d->count = r;
    /* Exactly one top-level value, and every container closed. */
    bool one_value = r > 0;
    for (int i = 0; i < r && one_value; i++)
        one_value = (i == 0 || d->tokens[i].parent != -1) && d->tokens[i].end >= 0;
    if (!one_value) {
        snprintf(err, err_size, r ? "not exactly one complete value" : "empty input");
        free_doc(d);
        return NULL;
    }
    d->after = malloc((size_t)r * sizeof *d->after);
    if (!d->after)
        goto nomem;
    for (int i = 0; i < r; i++)
        d->after[i] = i + 1;
    /* Children come after their parent: a backwards pass extends each
     * parent's subtree to cover its children's. */
    for (int i = r - 1; i > 0; i--) {
        int parent = d->tokens[i].parent;
        if (d->after[i] > d->after[parent])
            d->after[parent] = d->after[i];
    }
    for (int i = 0; i < 8; i++)
        d->cursors[i].array = -1;
    return d;
nomem:
    free_doc(d);
    snprintf(err, err_size, "out of memory");
    return NULL;
}

static int index_of(const doc *d, const void *v)
{
    return v ? (int)((const jsmntok_t *)v - d->tokens) : -1;
}

static const void *root(void *p)
{
    return ((doc *)p)->tokens;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static long hex4(const char *p, const char *end)
{
    if (end - p < 4)
        return -1;
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hex_digit(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

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

/* Unescape p[0..n) into out (at most n bytes); the length, or -1. */
static long unescape(const char *p, size_t n, char *out)
{
    const char *end = p + n;
    char *o = out;
    while (p < end) {
        const char *bs = memchr(p, '\\', (size_t)(end - p));
        size_t plain = (size_t)((bs ? bs : end) - p);
        memcpy(o, p, plain);
        o += plain;
        p += plain;
        if (!bs)
            break;
        p++;
        char c = *p++;
        switch (c) {
        case '"':
        case '\\':
        case '/':
            *o++ = c;
            break;
        case 'b':
            *o++ = '\b';
            break;
        case 'f':
            *o++ = '\f';
            break;
        case 'n':
            *o++ = '\n';
            break;
        case 'r':
            *o++ = '\r';
            break;
        case 't':
            *o++ = '\t';
            break;
        case 'u': {
            long cp = hex4(p, end);
            if (cp < 0)
                return -1;
            p += 4;
            if (cp >= 0xd800 && cp <= 0xdbff) {
                long lo = end - p >= 6 && p[0] == '\\' && p[1] == 'u' ? hex4(p + 2, end) : -1;
                if (lo < 0xdc00 || lo > 0xdfff)
                    return -1;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                p += 6;
            } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                return -1;
            }
            o += put_utf8(o, (unsigned long)cp);
            break;
        }
        default:
            return -1;
        }
    }
    return o - out;
}

static const void *get(void *p, const void *obj, const char *key)
{
    doc *d = p;
    int o = index_of(d, obj);
    if (o < 0 || d->tokens[o].type != JSMN_OBJECT)
        return NULL;
    size_t key_len = strlen(key);
    int k = o + 1;
    for (int i = 0; i < d->tokens[o].size; i++) {
        const jsmntok_t *t = &d->tokens[k];
        const char *raw = d->text + t->start;
        size_t raw_len = (size_t)(t->end - t->start);
        if (raw_len == key_len && memcmp(raw, key, key_len) == 0)
            return &d->tokens[k + 1];
        if (raw_len > key_len && memchr(raw, '\\', raw_len)) {
            char tmp[256];
            long len = raw_len <= sizeof tmp ? unescape(raw, raw_len, tmp) : -1;
            if (len == (long)key_len && memcmp(tmp, key, key_len) == 0)
                return &d->tokens[k + 1];
        }
        k = d->after[k + 1];
    }
    return NULL;
}

static int as_string(void *p, const void *v, const char **s, size_t *n)
{
    doc *d = p;
    int i = index_of(d, v);
    if (i < 0 || d->tokens[i].type != JSMN_STRING)
        return -1;
    const char *raw = d->text + d->tokens[i].start;
    size_t raw_len = (size_t)(d->tokens[i].end - d->tokens[i].start);
    if (!memchr(raw, '\\', raw_len)) {
        *s = raw; /* not NUL-terminated: the length is the truth */
        *n = raw_len;
        return 0;
    }
    if (d->scratch_size - d->scratch_used < raw_len + 1) {
        size_t size = d->scratch_size ? d->scratch_size * 2 : 4096;
        while (size - d->scratch_used < raw_len + 1)
            size *= 2;
        char *grown = realloc(d->scratch, size);
        if (!grown)
            return -1;
        d->scratch = grown;
        d->scratch_size = size;
    }
    char *out = d->scratch + d->scratch_used;
    long len = unescape(raw, raw_len, out);
    if (len < 0)
        return -1;
    out[len] = '\0';
    d->scratch_used += (size_t)len + 1;
    *s = out;
    *n = (size_t)len;
    return 0;
}

/* 1 for an integer, 2 for a number with fraction or exponent, 0 if p[0..n)
 * is not a JSON number. */
static int number_kind(const char *p, size_t n)
{
    size_t i = 0;
    int kind = 1;
    if (i < n && p[i] == '-')
        i++;
    if (i < n && p[i] == '0')
        i++;
    else if (i < n && p[i] >= '1' && p[i] <= '9')
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    else
        return 0;
    if (i < n && p[i] == '.') {
        kind = 2;
        if (++i >= n || p[i] < '0' || p[i] > '9')
            return 0;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    if (i < n && (p[i] == 'e' || p[i] == 'E')) {
        kind = 2;
        i++;
        if (i < n && (p[i] == '+' || p[i] == '-'))
            i++;
        if (i >= n || p[i] < '0' || p[i] > '9')
            return 0;
        while (i < n && p[i] >= '0' && p[i] <= '9')
            i++;
    }
    return i == n ? kind : 0;
}

static int as_i64(void *p, const void *v, int64_t *out)
{
    doc *d = p;
    int i = index_of(d, v);
    if (i < 0 || d->tokens[i].type != JSMN_PRIMITIVE)
        return -1;
    const char *raw = d->text + d->tokens[i].start;
    size_t n = (size_t)(d->tokens[i].end - d->tokens[i].start);
    if (number_kind(raw, n) != 1)
        return -1;
    /* Accumulate negatively so INT64_MIN fits. */
    bool negative = raw[0] == '-';
    int64_t acc = 0;
    for (size_t k = negative; k < n; k++) {
        int digit = raw[k] - '0';
        if (acc < (INT64_MIN + digit) / 10)
            return -1;
        acc = acc * 10 - digit;
    }
    if (!negative) {
        if (acc == INT64_MIN)
            return -1;
        acc = -acc;
    }
    *out = acc;
    return 0;
}

static int as_double(void *p, const void *v, double *out)
{
    doc *d = p;
    int i = index_of(d, v);
    if (i < 0 || d->tokens[i].type != JSMN_PRIMITIVE)
        return -1;
    const char *raw = d->text + d->tokens[i].start;
    size_t n = (size_t)(d->tokens[i].end - d->tokens[i].start);
    if (!number_kind(raw, n))
        return -1;
    /* The token ends at a delimiter, where strtod stops too. */
    *out = strtod(raw, NULL);
    return 0;
}

static bool literal_is(const doc *d, int i, const char *word)
{
    size_t n = strlen(word);
    return i >= 0 && d->tokens[i].type == JSMN_PRIMITIVE &&
           (size_t)(d->tokens[i].end - d->tokens[i].start) == n &&
           memcmp(d->text + d->tokens[i].start, word, n) == 0;
}

static int as_bool(void *p, const void *v, bool *out)
{
    doc *d = p;
    int i = index_of(d, v);
    if (literal_is(d, i, "true"))
        *out = true;
    else if (literal_is(d, i, "false"))
        *out = false;
    else
        return -1;
    return 0;
}

static bool is_null(void *p, const void *v)
{
    doc *d = p;
    return literal_is(d, index_of(d, v), "null");
}

static long array_len(void *p, const void *v)
{
    doc *d = p;
    int i = index_of(d, v);
    return i >= 0 && d->tokens[i].type == JSMN_ARRAY ? d->tokens[i].size : -1;
}

static const void *array_at(void *p, const void *v, size_t at)
{
    doc *d = p;
    int a = index_of(d, v);
    if (a < 0 || d->tokens[a].type != JSMN_ARRAY || at >= (size_t)d->tokens[a].size)
        return NULL;
    int k = a + 1, index = 0, slot = 0;
    while (slot < 7 && d->cursors[slot].array != a)
        slot++;
    if (d->cursors[slot].array == a && (size_t)d->cursors[slot].index <= at) {
        k = d->cursors[slot].token;
        index = d->cursors[slot].index;
    }
    for (; (size_t)index < at; index++)
        k = d->after[k];
    memmove(&d->cursors[1], &d->cursors[0], (size_t)slot * sizeof d->cursors[0]);
    d->cursors[0].array = a;
    d->cursors[0].index = index;
    d->cursors[0].token = k;
    return &d->tokens[k];
}

const json_lib json_lib_jsmn = {
    .name = "jsmn 1.1.0 + ours",
    .setup = "JSMN_STRICT, JSMN_PARENT_LINKS; our getters validate and unescape on read",
    .parse = parse,
    .free_doc = free_doc,
    .root = root,
    .get = get,
    .as_string = as_string,
    .as_i64 = as_i64,
    .as_double = as_double,
    .as_bool = as_bool,
    .is_null = is_null,
    .array_len = array_len,
    .array_at = array_at,
};
