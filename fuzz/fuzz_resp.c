/*
 * libFuzzer target for the RESP codec (src/redis/resp.c). `make fuzz` runs
 * it; its seeds and every crash input are kept in fuzz/corpus/fuzz_resp/.
 *
 * Input: one control byte, then a stream of replies. Bits 0-1 of the
 * control byte pick max_bulk (the default 512 MiB, 8, 100, 4096), bits 2-7
 * seed the sizes of the reads in the split pass.
 *
 * The stream is scanned reply by reply three ways, which must agree on
 * every result (length, nodes, top-level description, errno and message):
 * whole; as a connection reads it, in pieces of pseudo-random sizes, into a
 * buffer that moves after every read; and, for short inputs, byte by byte
 * (growing prefixes to one scanner). Each result must also agree with a
 * reference parser written differently (recursive descent over the whole
 * buffer, number limits checked by comparing digit strings): the same
 * length and node count, or "need more", or the same errno.
 *
 * Every accepted reply is built into exactly the reported number of nodes
 * and an exact copy of its bytes (ASan catches a write past either), its
 * tree is checked (node count, NUL after every string, strings inside the
 * bytes, elements inside the nodes, maps even, the top level as the scan
 * described it), building with one node too few must fail cleanly, and the
 * tree is encoded back to RESP by a small encoder here and scanned again to
 * an equal tree. Finally the input, cut into arguments, is encoded as a
 * command both ways (pointers and lengths, wv_str) and must scan back to
 * the same arguments. A violation aborts.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/resp.h"
#include "fuzz_util.h"

enum { MAX_REPLIES = 256, BYTEWISE_MAX = 512 };

/* ------------------------------------------------------------ results */

typedef struct result {
    ssize_t rc;
    size_t nodes, str_off, str_len;
    wv_redis_type type;
    bool push;
    long long integer;
    char err[RESP_ERR_MAX];
} result;

static void take(result *r, const resp_scanner *s, ssize_t rc)
{
    memset(r, 0, sizeof *r);
    r->rc = rc;
    if (rc > 0) {
        r->nodes = s->nodes;
        r->type = s->type;
        r->push = s->push;
        r->str_off = s->str_off;
        r->str_len = s->str_len;
        r->integer = s->integer;
    } else if (rc < 0) {
        CHECK(rc == -EPROTO || rc == -EMSGSIZE);
        CHECK(s->error == rc && s->err[0]);
        memcpy(r->err, s->err, sizeof r->err);
    }
}

static bool same_result(const result *a, const result *b)
{
    return a->rc == b->rc && a->nodes == b->nodes && a->type == b->type && a->push == b->push &&
           a->str_off == b->str_off && a->str_len == b->str_len && a->integer == b->integer &&
           strcmp(a->err, b->err) == 0;
}

/* ------------------------------------------------------------ reference */

/* A parser written differently from resp.c: recursion over the whole
 * buffer. Returns 1 (one element read, *at moved past it), 0 (more bytes
 * needed) or a negative errno. */
typedef struct ref {
    const uint8_t *p;
    size_t n, max_bulk, nodes;
    int attributes;
} ref;

static bool ref_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

/* Is the decimal p[from..to) greater than the decimal text lim? */
static bool ref_greater(const uint8_t *p, size_t from, size_t to, const char *lim)
{
    while (from < to && p[from] == '0')
        from++;
    size_t len = to - from, lim_len = strlen(lim);
    if (len != lim_len)
        return len > lim_len;
    return memcmp(p + from, lim, len) > 0;
}

static int ref_crlf(const ref *r, size_t at)
{
    if (at >= r->n)
        return 0;
    if (r->p[at] != '\r')
        return -EPROTO;
    if (at + 1 >= r->n)
        return 0;
    return r->p[at + 1] == '\n' ? 1 : -EPROTO;
}

/* Digits from p[i] up to CRLF, at most 20, their value at most limit
 * (else too_big). */
static int ref_digits(const ref *r, size_t i, uint64_t limit, int too_big, uint64_t *value,
                      size_t *end)
{
    char lim[24];
    snprintf(lim, sizeof lim, "%llu", (unsigned long long)limit);
    size_t j = i;
    for (; j < r->n && ref_digit(r->p[j]); j++) {
        if (j - i >= 20)
            return -EPROTO;
        if (ref_greater(r->p, i, j + 1, lim))
            return too_big;
    }
    if (j >= r->n)
        return 0;
    if (j == i)
        return -EPROTO;
    int rc = ref_crlf(r, j);
    if (rc <= 0)
        return rc;
    uint64_t v = 0;
    for (size_t k = i; k < j; k++)
        v = v * 10 + (uint64_t)(r->p[k] - '0');
    *value = v;
    *end = j + 2;
    return 1;
}

/* The length or count after the type byte at p[i]; -1 for $-1 and *-1. */
static int ref_length(const ref *r, size_t i, uint64_t limit, int too_big, long long *value,
                      size_t *end)
{
    uint8_t type = r->p[i];
    if (i + 1 >= r->n)
        return 0;
    uint8_t c = r->p[i + 1];
    if (c == '?')
        return -EPROTO;
    if (c == '-') {
        if (type != '$' && type != '*')
            return -EPROTO;
        if (i + 2 >= r->n)
            return 0;
        if (r->p[i + 2] != '1')
            return -EPROTO;
        if (i + 3 >= r->n)
            return 0;
        if (ref_digit(r->p[i + 3]))
            return -EPROTO;
        int rc = ref_crlf(r, i + 3);
        if (rc <= 0)
            return rc;
        *value = -1;
        *end = i + 5;
        return 1;
    }
    uint64_t v;
    int rc = ref_digits(r, i + 1, limit, too_big, &v, end);
    if (rc == 1)
        *value = (long long)v;
    return rc;
}

/* The RESP3 double grammar as a state machine over character classes. */
static bool ref_double(const uint8_t *t, size_t n)
{
    if (n == 3 || n == 4) {
        const char *words[] = {"inf", "-inf", "+inf", "nan", "-nan", "+nan"};
        for (int k = 0; k < 6; k++)
            if (strlen(words[k]) == n && memcmp(t, words[k], n) == 0)
                return true;
    }
    /* states: 0 start, 1 sign, 2 int digits, 3 dot, 4 frac digits, 5 e, 6 e sign, 7 exp digits */
    int st = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = t[i];
        bool d = ref_digit(c), sign = c == '+' || c == '-', e = c == 'e' || c == 'E';
        switch (st) {
        case 0:
            st = sign ? 1 : d ? 2 : -1;
            break;
        case 1:
            st = d ? 2 : -1;
            break;
        case 2:
            st = d ? 2 : c == '.' ? 3 : e ? 5 : -1;
            break;
        case 3:
            st = d ? 4 : -1;
            break;
        case 4:
            st = d ? 4 : e ? 5 : -1;
            break;
        case 5:
            st = sign ? 6 : d ? 7 : -1;
            break;
        case 6:
        case 7:
            st = d ? 7 : -1;
            break;
        }
        if (st < 0)
            return false;
    }
    return st == 2 || st == 4 || st == 7;
}

static bool ref_bignum(const uint8_t *t, size_t n)
{
    size_t digits = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 && t[i] == '-')
            continue;
        if (!ref_digit(t[i]))
            return false;
        digits++;
    }
    return digits > 0;
}

static void ref_node(ref *r)
{
    if (!r->attributes)
        r->nodes++;
}

static int ref_element(ref *r, size_t *at, int depth)
{
    const uint8_t *p = r->p;
    for (;;) {
        size_t i = *at;
        if (i >= r->n)
            return 0;
        uint8_t t = p[i];
        long long len;
        size_t end;
        int rc;
        switch (t) {
        case '+':
        case '-':
        case ',':
        case '(': {
            size_t j = i + 1;
            while (j < r->n && p[j] != '\r')
                j++;
            if (j - (i + 1) > r->max_bulk)
                return -EMSGSIZE;
            if (j + 1 >= r->n)
                return 0;
            if (p[j + 1] != '\n')
                return -EPROTO;
            if (t == ',' && !ref_double(p + i + 1, j - i - 1))
                return -EPROTO;
            if (t == '(' && !ref_bignum(p + i + 1, j - i - 1))
                return -EPROTO;
            ref_node(r);
            *at = j + 2;
            return 1;
        }
        case ':': {
            if (i + 1 >= r->n)
                return 0;
            bool neg = p[i + 1] == '-';
            uint64_t v;
            rc = ref_digits(r, i + 1 + neg, neg ? (uint64_t)INT64_MAX + 1 : INT64_MAX, -EPROTO, &v,
                            &end);
            if (rc <= 0)
                return rc;
            ref_node(r);
            *at = end;
            return 1;
        }
        case '#':
            if (i + 1 >= r->n)
                return 0;
            if (p[i + 1] != 't' && p[i + 1] != 'f')
                return -EPROTO;
            if ((rc = ref_crlf(r, i + 2)) <= 0)
                return rc;
            ref_node(r);
            *at = i + 4;
            return 1;
        case '_':
            if ((rc = ref_crlf(r, i + 1)) <= 0)
                return rc;
            ref_node(r);
            *at = i + 3;
            return 1;
        case '$':
        case '!':
        case '=': {
            rc = ref_length(r, i, r->max_bulk, -EMSGSIZE, &len, &end);
            if (rc <= 0)
                return rc;
            if (len >= 0) {
                if (t == '=' && len < 4)
                    return -EPROTO;
                if (t == '=') {
                    if (end + 3 >= r->n)
                        return 0;
                    if (p[end + 3] != ':')
                        return -EPROTO;
                }
                if ((rc = ref_crlf(r, end + (size_t)len)) <= 0)
                    return rc;
                end += (size_t)len + 2;
            }
            ref_node(r);
            *at = end;
            return 1;
        }
        case '*':
        case '%':
        case '~':
        case '>':
        case '|': {
            rc = ref_length(r, i, INT32_MAX, -EMSGSIZE, &len, &end);
            if (rc <= 0)
                return rc;
            if (len < 0) {
                ref_node(r);
                *at = end;
                return 1;
            }
            if (depth == RESP_MAX_DEPTH)
                return -EPROTO;
            long long elements = len * (t == '%' || t == '|' ? 2 : 1);
            if (t == '|')
                r->attributes++;
            else
                ref_node(r);
            for (long long k = 0; k < elements; k++)
                if ((rc = ref_element(r, &end, depth + 1)) <= 0)
                    return rc;
            *at = end;
            if (t == '|') {
                r->attributes--;
                continue; /* the element it annotates */
            }
            return 1;
        }
        default:
            return -EPROTO;
        }
    }
}

static void check_reference(const uint8_t *p, size_t n, size_t max_bulk, const result *got)
{
    ref r = {.p = p, .n = n, .max_bulk = max_bulk ? max_bulk : RESP_MAX_BULK_DEFAULT};
    size_t at = 0;
    int rc = ref_element(&r, &at, 0);
    if (got->rc > 0)
        CHECK(rc == 1 && at == (size_t)got->rc && r.nodes == got->nodes);
    else
        CHECK(rc == got->rc);
}

/* ------------------------------------------------------------ trees */

static bool text_type(wv_redis_type t)
{
    return t == WV_REDIS_STATUS || t == WV_REDIS_ERROR || t == WV_REDIS_STRING ||
           t == WV_REDIS_DOUBLE || t == WV_REDIS_BIGNUM || t == WV_REDIS_VERBATIM;
}

static bool aggregate_type(wv_redis_type t)
{
    return t == WV_REDIS_ARRAY || t == WV_REDIS_MAP || t == WV_REDIS_SET || t == WV_REDIS_PUSH;
}

/* Every promise of one node and those below it; counts the nodes. */
static void check_node(const wv_redis_reply *r, const wv_redis_reply *nodes, size_t count,
                       const char *bytes, size_t len, size_t *seen)
{
    (*seen)++;
    CHECK(r->type >= WV_REDIS_NIL && r->type <= WV_REDIS_PUSH);
    if (text_type(r->type)) {
        CHECK(r->str >= bytes && r->str + r->len < bytes + len);
        CHECK(r->str[r->len] == '\0');
    } else {
        CHECK(r->str == NULL);
    }
    if (r->type == WV_REDIS_BOOL)
        CHECK(r->integer == 0 || r->integer == 1);
    if (r->type == WV_REDIS_VERBATIM)
        CHECK(r->vfmt[3] == '\0');
    if (!aggregate_type(r->type)) {
        CHECK(r->elem == NULL);
        return;
    }
    if (r->type == WV_REDIS_MAP)
        CHECK(r->len % 2 == 0);
    if (r->len == 0) {
        CHECK(r->elem == NULL);
        return;
    }
    CHECK(r->elem > nodes && r->elem + r->len <= nodes + count);
    for (size_t i = 0; i < r->len; i++)
        check_node(&r->elem[i], nodes, count, bytes, len, seen);
}

static bool same_tree(const wv_redis_reply *a, const wv_redis_reply *b)
{
    if (a->type != b->type || a->len != b->len)
        return false;
    if (text_type(a->type) && memcmp(a->str, b->str, a->len) != 0)
        return false;
    if ((a->type == WV_REDIS_INT || a->type == WV_REDIS_BOOL) && a->integer != b->integer)
        return false;
    if (a->type == WV_REDIS_DOUBLE && !(a->dbl == b->dbl || (isnan(a->dbl) && isnan(b->dbl))))
        return false;
    if (a->type == WV_REDIS_VERBATIM && memcmp(a->vfmt, b->vfmt, 4) != 0)
        return false;
    if (aggregate_type(a->type))
        for (size_t i = 0; i < a->len; i++)
            if (!same_tree(&a->elem[i], &b->elem[i]))
                return false;
    return true;
}

/* A test-only encoder: the tree back to RESP3 (attributes are gone, a
 * RESP2 nil becomes _, an error with a CR in it a blob error). */
static void encode(wv_buf *b, const wv_redis_reply *r)
{
    int rc = 0;
    switch (r->type) {
    case WV_REDIS_NIL:
        rc = wv_buf_puts(b, "_\r\n");
        break;
    case WV_REDIS_STATUS:
    case WV_REDIS_DOUBLE:
    case WV_REDIS_BIGNUM:
        rc = wv_buf_printf(b, "%c",
                           r->type == WV_REDIS_STATUS   ? '+'
                           : r->type == WV_REDIS_DOUBLE ? ','
                                                        : '(');
        rc |= wv_buf_append(b, r->str, r->len);
        rc |= wv_buf_puts(b, "\r\n");
        break;
    case WV_REDIS_ERROR:
        if (memchr(r->str, '\r', r->len)) {
            rc = wv_buf_printf(b, "!%zu\r\n", r->len);
        } else {
            rc = wv_buf_puts(b, "-");
        }
        rc |= wv_buf_append(b, r->str, r->len);
        rc |= wv_buf_puts(b, "\r\n");
        break;
    case WV_REDIS_STRING:
        rc = wv_buf_printf(b, "$%zu\r\n", r->len);
        rc |= wv_buf_append(b, r->str, r->len);
        rc |= wv_buf_puts(b, "\r\n");
        break;
    case WV_REDIS_VERBATIM:
        rc = wv_buf_printf(b, "=%zu\r\n", r->len + 4);
        rc |= wv_buf_append(b, r->vfmt, 3);
        rc |= wv_buf_puts(b, ":");
        rc |= wv_buf_append(b, r->str, r->len);
        rc |= wv_buf_puts(b, "\r\n");
        break;
    case WV_REDIS_INT:
        rc = wv_buf_printf(b, ":%lld\r\n", r->integer);
        break;
    case WV_REDIS_BOOL:
        rc = wv_buf_puts(b, r->integer ? "#t\r\n" : "#f\r\n");
        break;
    case WV_REDIS_ARRAY:
    case WV_REDIS_MAP:
    case WV_REDIS_SET:
    case WV_REDIS_PUSH: {
        char type = r->type == WV_REDIS_ARRAY ? '*'
                    : r->type == WV_REDIS_MAP ? '%'
                    : r->type == WV_REDIS_SET ? '~'
                                              : '>';
        rc = wv_buf_printf(b, "%c%zu\r\n", type, r->type == WV_REDIS_MAP ? r->len / 2 : r->len);
        for (size_t i = 0; i < r->len; i++)
            encode(b, &r->elem[i]);
        break;
    }
    }
    CHECK(rc == 0);
}

/* Build p[0..len) as the client would and check everything about it. */
static void check_reply(const uint8_t *p, size_t len, const result *got, size_t max_bulk)
{
    size_t count = got->nodes;
    CHECK(count >= 1 && count <= len / 3);
    wv_redis_reply *nodes = malloc(count * sizeof *nodes);
    char *bytes = copy_exact(p, len);
    CHECK(nodes);
    CHECK(resp_build(bytes, len, nodes, count) == 0);

    size_t seen = 0;
    check_node(nodes, nodes, count, bytes, len, &seen);
    CHECK(seen == count);
    const wv_redis_reply *root = nodes;
    CHECK(root->type == got->type && got->push == (got->type == WV_REDIS_PUSH));
    if (text_type(root->type))
        CHECK(root->str == bytes + got->str_off && root->len == got->str_len);
    else
        CHECK(got->str_off == 0 && got->str_len == 0);
    if (root->type == WV_REDIS_INT || root->type == WV_REDIS_BOOL)
        CHECK(root->integer == got->integer);
    if (count == 1)
        CHECK(!aggregate_type(root->type) || root->len == 0);

    /* one node too few: refused, nothing written past them */
    if (count > 1) {
        wv_redis_reply *fewer = malloc((count - 1) * sizeof *fewer);
        char *again = copy_exact(p, len);
        CHECK(fewer);
        CHECK(resp_build(again, len, fewer, count - 1) == -EINVAL);
        free(fewer);
        free(again);
    }

    /* encoded back and scanned again: the same tree */
    wv_buf enc = {0};
    encode(&enc, root);
    resp_scanner s;
    resp_scanner_init(&s, max_bulk);
    char *enc_copy = copy_exact(enc.p, enc.n);
    ssize_t rc = resp_scan(&s, enc_copy, enc.n);
    CHECK(rc == (ssize_t)enc.n && s.nodes == count);
    wv_redis_reply *nodes2 = malloc(count * sizeof *nodes2);
    CHECK(nodes2);
    CHECK(resp_build(enc_copy, enc.n, nodes2, count) == 0);
    CHECK(same_tree(root, nodes2));
    free(nodes2);
    free(enc_copy);
    wv_buf_free(&enc);

    free(bytes);
    free(nodes);
}

/* ------------------------------------------------------------ passes */

/* Whole: reply after reply from exact copies of what is left. */
static size_t scan_whole(const uint8_t *in, size_t n, size_t max_bulk, result *results,
                         size_t *offsets)
{
    resp_scanner s;
    resp_scanner_init(&s, max_bulk);
    size_t count = 0, off = 0;
    while (count < MAX_REPLIES) {
        char *b = copy_exact(in + off, n - off);
        ssize_t rc = resp_scan(&s, b, n - off);
        free(b);
        offsets[count] = off;
        take(&results[count], &s, rc);
        check_reference(in + off, n - off, max_bulk, &results[count]);
        count++;
        if (rc <= 0)
            break;
        CHECK((size_t)rc <= n - off);
        check_reply(in + off, (size_t)rc, &results[count - 1], max_bulk);
        off += (size_t)rc;
    }
    return count;
}

static uint32_t next_random(uint32_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 17;
    *x ^= *x << 5;
    return *x;
}

/* As a connection: reads of random sizes (at most max_piece) appended to
 * a buffer that moves after every read; complete replies consumed. */
static void scan_in_pieces(const uint8_t *in, size_t n, size_t max_bulk, const result *results,
                           size_t count, uint32_t seed, size_t max_piece)
{
    resp_scanner s;
    resp_scanner_init(&s, max_bulk);
    char *buf = copy_exact(in, 0);
    size_t start = 0, end = 0, got = 0; /* buf holds in[start..end) */
    uint32_t x = seed * 2654435761u + 1;
    while (got < count) {
        result r;
        ssize_t rc = resp_scan(&s, buf, end - start);
        take(&r, &s, rc);
        if (rc == 0 && end < n) {
            size_t piece = 1 + next_random(&x) % max_piece;
            size_t new_end = end + piece < n ? end + piece : n;
            char *moved = copy_exact(in + start, new_end - start);
            free(buf);
            buf = moved;
            end = new_end;
            continue;
        }
        CHECK(same_result(&r, &results[got]));
        got++;
        if (rc <= 0)
            break;
        start += (size_t)rc;
        char *moved = copy_exact(in + start, end - start);
        free(buf);
        buf = moved;
    }
    CHECK(got == count || count == MAX_REPLIES);
    free(buf);
}

/* The command encoder on arguments cut from the input. */
static void check_command(const uint8_t *in, size_t n, uint32_t seed)
{
    enum { MAX_ARGS = 8 };
    const char *argv[MAX_ARGS];
    size_t lens[MAX_ARGS];
    wv_str strs[MAX_ARGS];
    uint32_t x = seed * 2246822519u + 7;
    int argc = (int)(next_random(&x) % (MAX_ARGS + 1));
    size_t off = 0;
    for (int k = 0; k < argc; k++) {
        size_t len = n - off ? next_random(&x) % (n - off + 1) : 0;
        argv[k] = len ? (const char *)in + off : NULL;
        lens[k] = len;
        strs[k] = (wv_str){argv[k], len};
        off += len;
    }
    wv_buf a = {0}, b = {0};
    CHECK(resp_write_command(&a, argv, lens, argc) == 0);
    CHECK(resp_append_command(&b, argc, strs) == 0);
    CHECK(a.n == resp_command_size(lens, argc) && a.n == b.n && memcmp(a.p, b.p, a.n) == 0);

    resp_scanner s;
    resp_scanner_init(&s, 0);
    char *copy = copy_exact(a.p, a.n);
    CHECK(resp_scan(&s, copy, a.n) == (ssize_t)a.n);
    CHECK(s.type == WV_REDIS_ARRAY && s.nodes == (size_t)argc + 1);
    wv_redis_reply *r = malloc(s.nodes * sizeof *r);
    CHECK(r);
    CHECK(resp_build(copy, a.n, r, s.nodes) == 0);
    CHECK(r->len == (size_t)argc);
    for (int k = 0; k < argc; k++)
        CHECK(r->elem[k].type == WV_REDIS_STRING && r->elem[k].len == lens[k] &&
              (lens[k] == 0 || memcmp(r->elem[k].str, argv[k], lens[k]) == 0));
    free(r);
    free(copy);

    /* a limit one byte short: -ENOMEM and nothing appended */
    wv_buf small = {.limit = a.n - 1};
    CHECK(resp_write_command(&small, argv, lens, argc) == -ENOMEM && small.n == 0);
    wv_buf_free(&small);
    wv_buf_free(&a);
    wv_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const size_t limits[4] = {0, 8, 100, 4096};
    size_t max_bulk = limits[data[0] & 3];
    uint32_t seed = data[0] >> 2;
    const uint8_t *in = data + 1;
    size_t n = size - 1;

    static result results[MAX_REPLIES];
    static size_t offsets[MAX_REPLIES];
    size_t count = scan_whole(in, n, max_bulk, results, offsets);

    scan_in_pieces(in, n, max_bulk, results, count, seed, 1 + seed % 64);
    scan_in_pieces(in, n, max_bulk, results, count, seed + 1, 4096);
    if (n <= BYTEWISE_MAX)
        scan_in_pieces(in, n, max_bulk, results, count, seed, 1);

    check_command(in, n, seed);
    return 0;
}
