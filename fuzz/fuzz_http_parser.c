/*
 * libFuzzer target for the HTTP/1.1 request parser and the chunked decoder
 * (src/http/parser.c). `make fuzz` runs it; its seeds and every crash input
 * are kept in fuzz/corpus/fuzz_http_parser/.
 *
 * Input: one control byte, then the request bytes. Bit 0 of the control
 * byte picks small limits (so every limit is reachable), bits 1-7 a split
 * point. Each input is parsed
 *   - whole, with the SSE2 paths on and off (results must agree);
 *   - as a prefix up to the split point and then whole, carrying the cursor
 *     (the prefix gives 0 or the same error; the end gives the same result);
 *   - when complete, again from the cursor the first parse left;
 * and when the head is complete and chunked, the bytes after it go through
 * the chunked decoder whole and split at the same point (same data, same
 * result). Every invariant of the API is checked; a violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"
#include "fuzz_util.h"

enum { MAX_HEADERS = 100 };

typedef struct result {
    int rc;
    const char *why;
    http_request req;
    http_header headers[MAX_HEADERS];
} result;

static bool inside(wv_str s, const char *buf, size_t n)
{
    if (s.n == 0)
        return s.p == NULL || (s.p >= buf && s.p <= buf + n);
    return s.p >= buf && s.p + s.n <= buf + n;
}

static long offset(wv_str s, const char *buf)
{
    return s.n ? (long)(s.p - buf) : -1;
}

static bool all_tchar(wv_str s)
{
    for (size_t i = 0; i < s.n; i++)
        if (!http_token_char((unsigned char)s.p[i]))
            return false;
    return s.n > 0;
}

static void check_result(const result *r, const char *buf, size_t len, const http_limits *lim)
{
    if (r->rc < 0) {
        CHECK(r->rc == HTTP_E_BAD_REQUEST || r->rc == HTTP_E_URI_TOO_LONG ||
              r->rc == HTTP_E_HEADERS_TOO_LARGE || r->rc == HTTP_E_NOT_IMPLEMENTED ||
              r->rc == HTTP_E_VERSION);
        CHECK(r->why && r->why[0]);
        CHECK(http_status_reason(-r->rc)[0]);
        return;
    }
    if (r->rc == 0)
        return;
    size_t head = (size_t)r->rc;
    const http_request *q = &r->req;
    CHECK(head <= len && head <= lim->max_head_bytes && head >= 4);
    CHECK(memcmp(buf + head - 4, "\r\n\r\n", 4) == 0);
    CHECK(all_tchar(q->method));
    CHECK(inside(q->method, buf, head) && inside(q->target, buf, head));
    CHECK(q->target.n > 0 && q->target.n <= lim->max_request_line);
    CHECK(q->path.n > 0);
    CHECK(inside(q->path, buf, head) || (q->path.n == 1 && q->path.p[0] == '/'));
    CHECK(inside(q->query, buf, head) && inside(q->host, buf, head));
    CHECK(q->minor == 0 || q->minor == 1);
    CHECK(q->nheaders >= 0 && q->nheaders <= lim->max_headers);
    CHECK(q->content_length >= -1);
    CHECK(!(q->chunked && q->content_length != -1));
    CHECK(!(q->chunked && q->minor == 0));
    CHECK(!(q->upgrade && q->minor == 0) && !(q->expect_continue && q->minor == 0));
    for (int i = 0; i < q->nheaders; i++) {
        wv_str n = q->headers[i].name, v = q->headers[i].value;
        CHECK(inside(n, buf, head) && inside(v, buf, head) && all_tchar(n));
        for (size_t k = 0; k < v.n; k++) {
            unsigned char c = (unsigned char)v.p[k];
            CHECK(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        if (v.n)
            CHECK(v.p[0] != ' ' && v.p[0] != '\t' && v.p[v.n - 1] != ' ' && v.p[v.n - 1] != '\t');
    }
}

static void parse(result *r, const char *buf, size_t len, const http_limits *lim, size_t *cursor)
{
    memset(r, 0, sizeof *r);
    r->req.headers = r->headers;
    r->rc = http_parse_request(buf, len, lim, &r->req, cursor, &r->why);
}

static void check_same(const result *a, const char *abuf, const result *b, const char *bbuf)
{
    CHECK(a->rc == b->rc);
    if (a->rc <= 0)
        return;
    const http_request *x = &a->req, *y = &b->req;
    CHECK(offset(x->method, abuf) == offset(y->method, bbuf) && x->method.n == y->method.n);
    CHECK(offset(x->target, abuf) == offset(y->target, bbuf) && x->target.n == y->target.n);
    CHECK(x->path.n == y->path.n && x->query.n == y->query.n);
    CHECK(offset(x->query, abuf) == offset(y->query, bbuf));
    CHECK(offset(x->host, abuf) == offset(y->host, bbuf) && x->host.n == y->host.n);
    CHECK(x->minor == y->minor && x->nheaders == y->nheaders);
    CHECK(x->content_length == y->content_length && x->chunked == y->chunked);
    CHECK(x->keep_alive == y->keep_alive && x->expect_continue == y->expect_continue);
    CHECK(x->upgrade == y->upgrade);
    for (int i = 0; i < x->nheaders; i++) {
        CHECK(offset(x->headers[i].name, abuf) == offset(y->headers[i].name, bbuf));
        CHECK(offset(x->headers[i].value, abuf) == offset(y->headers[i].value, bbuf));
        CHECK(x->headers[i].value.n == y->headers[i].value.n);
    }
}

/* Decode in[0..len) fed as [0, split) and [split, len); returns the last
 * result and fills out/out_n with the data. With trl, the decoder keeps
 * the trailer lines and they go there (trl_n bytes). */
static int decode(const char *in, size_t len, size_t split, char *out, size_t *out_n,
                  size_t *consumed, char *trl, size_t *trl_n)
{
    http_chunked d;
    http_chunked_init(&d);
    d.keep_trailers = trl != NULL;
    *out_n = *consumed = 0;
    if (trl_n)
        *trl_n = 0;
    int rc = HTTP_CHUNK_MORE;
    size_t bounds[2] = {split, len}, from = 0;
    for (int piece = 0; piece < 2 && rc == HTTP_CHUNK_MORE; piece++) {
        size_t to = bounds[piece];
        char *b = copy_exact((const uint8_t *)in + from, to - from);
        size_t at = 0, n = to - from;
        for (;;) {
            size_t used = (size_t)-1, data_n = 0;
            const char *data = NULL;
            rc = http_chunked_feed(&d, b + at, n - at, &used, &data, &data_n);
            CHECK(used <= n - at);
            at += used;
            *consumed += used;
            if (rc == HTTP_CHUNK_TRAILER) {
                CHECK(trl && data_n > 0 && data >= b && data + data_n <= b + n);
                memcpy(trl + *trl_n, data, data_n);
                *trl_n += data_n;
                continue;
            }
            if (rc != HTTP_CHUNK_DATA)
                break;
            CHECK(data_n > 0 && data >= b && data + data_n <= b + n);
            memcpy(out + *out_n, data, data_n);
            *out_n += data_n;
        }
        CHECK(rc == HTTP_CHUNK_MORE || rc == HTTP_CHUNK_DONE || rc == HTTP_E_BAD_REQUEST);
        CHECK(rc != HTTP_CHUNK_MORE || at == n);
        CHECK(rc != HTTP_E_BAD_REQUEST || (d.why && d.why[0]));
        free(b);
        from = to;
    }
    CHECK(*out_n <= *consumed);
    return rc;
}

static void fuzz_chunked(const char *body, size_t n, size_t split)
{
    char *a = malloc(n + 1), *b = malloc(n + 1), *k = malloc(n + 1);
    char *ta = malloc(n + 1), *tb = malloc(n + 1);
    CHECK(a && b && k && ta && tb);
    size_t an, bn, kn, ac, bc, kc, tan, tbn;
    int ra = decode(body, n, n, a, &an, &ac, NULL, NULL);
    int rb = decode(body, n, split < n ? split : n, b, &bn, &bc, NULL, NULL);
    CHECK(ra == rb && an == bn && memcmp(a, b, an) == 0);
    if (ra == HTTP_CHUNK_DONE)
        CHECK(ac == bc);
    /* keeping the trailers changes nothing else, and they come out the
     * same whatever the split */
    int rk = decode(body, n, n, k, &kn, &kc, ta, &tan);
    int rt = decode(body, n, split < n ? split : n, k, &kn, &kc, tb, &tbn);
    CHECK(rk == ra && rt == ra && kn == an && memcmp(k, a, an) == 0);
    if (ra == HTTP_CHUNK_DONE)
        CHECK(kc == ac && tan == tbn && memcmp(ta, tb, tan) == 0 &&
              (tan == 0 || (ta[tan - 2] == '\r' && ta[tan - 1] == '\n')));
    free(a);
    free(b);
    free(k);
    free(ta);
    free(tb);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const http_limits small = {64, 256, 4};
    const http_limits lim = data[0] & 1 ? small : HTTP_LIMITS_DEFAULT;
    size_t n = size - 1, split = (size_t)(data[0] >> 1) * (n + 1) / 128;
    char *buf = copy_exact(data + 1, n);

    static result whole, scalar, part, rest;
    size_t cursor = 0;
    http_parser_use_simd(true);
    parse(&whole, buf, n, &lim, &cursor);
    check_result(&whole, buf, n, &lim);

    http_parser_use_simd(false);
    cursor = 0;
    parse(&scalar, buf, n, &lim, &cursor);
    http_parser_use_simd(true);
    check_same(&whole, buf, &scalar, buf);

    /* split: the prefix in its own exact buffer, then the whole with the cursor */
    char *prefix = copy_exact(data + 1, split);
    cursor = 0;
    parse(&part, prefix, split, &lim, &cursor);
    check_result(&part, prefix, split, &lim);
    CHECK(part.rc == 0 || part.rc == whole.rc);
    if (part.rc > 0)
        check_same(&part, prefix, &whole, buf);
    free(prefix);
    if (part.rc == 0) {
        parse(&rest, buf, n, &lim, &cursor);
        check_same(&whole, buf, &rest, buf);
    }
    if (whole.rc > 0) { /* a complete head parses the same again from its cursor */
        cursor = 0;
        parse(&rest, buf, n, &lim, &cursor);
        parse(&rest, buf, n, &lim, &cursor);
        check_same(&whole, buf, &rest, buf);
    }

    if (whole.rc > 0 && whole.req.chunked) {
        size_t head = (size_t)whole.rc;
        fuzz_chunked(buf + head, n - head, split > head ? split - head : 0);
    }
    free(buf);
    return 0;
}
