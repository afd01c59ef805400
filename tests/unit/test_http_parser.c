/*
 * The HTTP/1.1 request parser and chunked decoder (src/http/parser.c) as a
 * specification: tables of valid requests with every field they must yield,
 * tables of invalid requests with the exact error, each rule of RFC 9112 and
 * of our strict policy in its own test, limits at their exact edges, and
 * every request fed split at every byte boundary. Each table also runs with
 * the SSE2 paths turned off, so the scalar fallbacks are tested here too.
 *
 * Every parse gets a private, exactly sized heap copy of its input, so under
 * ASan a read one byte past the end is caught.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/parser.h"

#define ARRAY_LEN(a)     (sizeof(a) / sizeof((a)[0]))
#define MAX_TEST_HEADERS 128
#define RAW(s)           .raw = (s), .len = sizeof(s) - 1

/* ------------------------------------------------------------ helpers */

typedef struct parsed {
    char *buf; /* exact-size copy of the input */
    size_t len;
    int rc;
    const char *why;
    http_request req;
    http_header headers[MAX_TEST_HEADERS];
} parsed;

static char *copy_exact(const char *raw, size_t len)
{
    char *b = malloc(len ? len : 1);
    assert_non_null(b);
    if (len)
        memcpy(b, raw, len);
    return b;
}

static void parse_with(parsed *out, const char *raw, size_t len, const http_limits *lim)
{
    memset(out, 0, sizeof *out);
    out->buf = copy_exact(raw, len);
    out->len = len;
    out->req.headers = out->headers;
    size_t scanned = 0;
    out->why = NULL;
    out->rc = http_parse_request(out->buf, len, lim, &out->req, &scanned, &out->why);
    if (out->rc < 0)
        assert_non_null(out->why);
}

static void parsed_free(parsed *p)
{
    free(p->buf);
    p->buf = NULL;
}

static int parse_rc(const char *raw, size_t len, const http_limits *lim)
{
    parsed p;
    parse_with(&p, raw, len, lim);
    int rc = p.rc;
    parsed_free(&p);
    return rc;
}

static bool slice_inside(wv_str s, const char *buf, size_t len)
{
    if (s.n == 0)
        return s.p == NULL || (s.p >= buf && s.p <= buf + len);
    return s.p >= buf && s.p + s.n <= buf + len;
}

/* The slice as text, for comparison with expectations. */
static const char *text(wv_str s)
{
    static char bufs[4][8192];
    static int next;
    char *b = bufs[next++ % 4];
    size_t n = s.n < sizeof bufs[0] - 1 ? s.n : sizeof bufs[0] - 1;
    if (n)
        memcpy(b, s.p, n);
    b[n] = '\0';
    return b;
}

/* "name=value;" for every header, in order. */
static void render_headers(const http_request *r, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (int i = 0; i < r->nheaders; i++)
        o += (size_t)snprintf(out + o, o < cap ? cap - o : 0, "%s=%s;", text(r->headers[i].name),
                              text(r->headers[i].value));
}

/* ------------------------------------------------------------ valid requests */

typedef struct valid_case {
    const char *name;
    const char *raw;
    size_t body; /* bytes after the head */
    const char *method, *target, *path, *query;
    int minor;
    const char *host;
    const char *headers; /* "name=value;" each */
    int64_t content_length;
    const char *flags; /* K keep_alive, C chunked, E expect_continue, U upgrade */
} valid_case;

#define NO_CL (-1)

static const valid_case valid_cases[] = {
    {"simple GET", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 0, "GET", "/", "/", "", 1,
     "example.com", "Host=example.com;", NO_CL, "K"},
    {"origin-form with query", "GET /search?q=a+b&x=%20 HTTP/1.1\r\nHost: a\r\n\r\n", 0, "GET",
     "/search?q=a+b&x=%20", "/search", "q=a+b&x=%20", 1, "a", "Host=a;", NO_CL, "K"},
    {"empty query", "GET /p? HTTP/1.1\r\nHost: a\r\n\r\n", 0, "GET", "/p?", "/p", "", 1, "a",
     "Host=a;", NO_CL, "K"},
    {"query holding '?'", "GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n", 0, "GET", "/a?b?c", "/a", "b?c",
     1, "a", "Host=a;", NO_CL, "K"},
    {"every visible ASCII byte in the target",
     "GET /~!$&'()*+,;=:@%-._|{}^`\"<>[]\\# HTTP/1.1\r\nHost: a\r\n\r\n", 0, "GET",
     "/~!$&'()*+,;=:@%-._|{}^`\"<>[]\\#", "/~!$&'()*+,;=:@%-._|{}^`\"<>[]\\#", "", 1, "a",
     "Host=a;", NO_CL, "K"},
    {"HTTP/1.0 without Host", "GET /x HTTP/1.0\r\n\r\n", 0, "GET", "/x", "/x", "", 0, "", "", NO_CL,
     ""},
    {"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, "GET", "/", "/",
     "", 0, "", "Connection=Keep-Alive;", NO_CL, "K"},
    {"HTTP/1.0 close wins over keep-alive",
     "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, "GET", "/", "/", "", 0, "",
     "Connection=keep-alive, close;", NO_CL, ""},
    {"HTTP/1.1 Connection: close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", 0,
     "GET", "/", "/", "", 1, "a", "Host=a;Connection=close;", NO_CL, ""},
    {"Connection tokens are case-insensitive",
     "GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n\r\n", 0, "GET", "/", "/", "", 1, "a",
     "Host=a;Connection=CLOSE;", NO_CL, ""},
    {"several Connection headers combine",
     "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo\r\nconnection: ,, bar ,close\r\n\r\n", 0, "GET",
     "/", "/", "", 1, "a", "Host=a;Connection=foo;connection=,, bar ,close;", NO_CL, ""},
    {"websocket upgrade",
     "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: "
     "websocket\r\n\r\n",
     0, "GET", "/ws", "/ws", "", 1, "a", "Host=a;Connection=keep-alive, Upgrade;Upgrade=websocket;",
     NO_CL, "KU"},
    {"Connection: upgrade without an Upgrade header",
     "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", 0, "GET", "/", "/", "", 1, "a",
     "Host=a;Connection=upgrade;", NO_CL, "K"},
    {"Upgrade header without the Connection token",
     "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n\r\n", 0, "GET", "/", "/", "", 1, "a",
     "Host=a;Upgrade=h2c;", NO_CL, "K"},
    {"Upgrade is ignored in HTTP/1.0",
     "GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", 0, "GET", "/", "/", "",
     0, "", "Connection=upgrade;Upgrade=websocket;", NO_CL, ""},
    {"POST with Content-Length and a body",
     "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello", 5, "POST", "/submit",
     "/submit", "", 1, "a", "Host=a;Content-Length=5;", 5, "K"},
    {"Content-Length 0", "POST / HTTP/1.1\r\nHost: a\r\ncontent-length: 0\r\n\r\n", 0, "POST", "/",
     "/", "", 1, "a", "Host=a;content-length=0;", 0, "K"},
    {"Content-Length with leading zeros and OWS",
     "POST / HTTP/1.1\r\nHost: a\r\nCONTENT-LENGTH:  007 \r\n\r\n", 0, "POST", "/", "/", "", 1, "a",
     "Host=a;CONTENT-LENGTH=007;", 7, "K"},
    {"Content-Length INT64_MAX",
     "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775807\r\n\r\n", 0, "POST", "/",
     "/", "", 1, "a", "Host=a;Content-Length=9223372036854775807;", INT64_MAX, "K"},
    {"chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", 0, "POST", "/",
     "/", "", 1, "a", "Host=a;Transfer-Encoding=chunked;", NO_CL, "KC"},
    {"chunked is case-insensitive, empty list elements ignored",
     "POST / HTTP/1.1\r\nHost: a\r\ntransfer-encoding: , CHUNKED ,\r\n\r\n", 0, "POST", "/", "/",
     "", 1, "a", "Host=a;transfer-encoding=, CHUNKED ,;", NO_CL, "KC"},
    {"Expect: 100-continue",
     "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-Continue\r\n\r\n", 0, "PUT",
     "/f", "/f", "", 1, "a", "Host=a;Content-Length=3;Expect=100-Continue;", 3, "KE"},
    {"100-continue in an Expect list",
     "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: foo=\"1\" , 100-continue \t, \r\n\r\n", 0, "PUT", "/f",
     "/f", "", 1, "a", "Host=a;Expect=foo=\"1\" , 100-continue \t,;", NO_CL, "KE"},
    {"names as long as framing headers are not mistaken for them",
     "GET / HTTP/1.1\r\nHost: a\r\nHost-: x\r\nHosx: b\r\nUpgradx: c\r\nReferer: d\r\n"
     "If-Modified-Since: e\r\nTransfer-Encodinx: f\r\nContent-Lengtx: g\r\n"
     "Connectiox: close\r\nExpecx: 100-continue\r\n\r\n",
     0, "GET", "/", "/", "", 1, "a",
     "Host=a;Host-=x;Hosx=b;Upgradx=c;Referer=d;If-Modified-Since=e;Transfer-Encodinx=f;"
     "Content-Lengtx=g;Connectiox=close;Expecx=100-continue;",
     NO_CL, "K"},
    {"other expectations are not 100-continue",
     "PUT /f HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 0, "PUT", "/f", "/f", "", 1, "a",
     "Host=a;Expect=200-ok;", NO_CL, "K"},
    {"Expect is ignored in HTTP/1.0", "PUT /f HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", 0, "PUT",
     "/f", "/f", "", 0, "", "Expect=100-continue;", NO_CL, ""},
    {"OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", 0, "OPTIONS", "*", "*", "", 1, "a",
     "Host=a;", NO_CL, "K"},
    {"CONNECT authority-form", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", 0,
     "CONNECT", "example.com:443", "example.com:443", "", 1, "example.com", "Host=example.com;",
     NO_CL, "K"},
    {"CONNECT to an IPv6 literal", "CONNECT [::1]:8443 HTTP/1.1\r\nHost: [::1]:8443\r\n\r\n", 0,
     "CONNECT", "[::1]:8443", "[::1]:8443", "", 1, "[::1]:8443", "Host=[::1]:8443;", NO_CL, "K"},
    {"absolute-form: host comes from the target",
     "GET http://example.com/a/b?c=d HTTP/1.1\r\nHost: other\r\n\r\n", 0, "GET",
     "http://example.com/a/b?c=d", "/a/b", "c=d", 1, "example.com", "Host=other;", NO_CL, "K"},
    {"absolute-form without a path", "GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n", 0, "GET",
     "http://example.com", "/", "", 1, "example.com", "Host=x;", NO_CL, "K"},
    {"absolute-form https, port, query, no path",
     "GET HTTPS://Example.com:8443?x HTTP/1.1\r\nHost: x\r\n\r\n", 0, "GET",
     "HTTPS://Example.com:8443?x", "/", "x", 1, "Example.com:8443", "Host=x;", NO_CL, "K"},
    {"absolute-form in HTTP/1.0 without Host", "GET http://h/p HTTP/1.0\r\n\r\n", 0, "GET",
     "http://h/p", "/p", "", 0, "h", "", NO_CL, ""},
    {"empty lines before the request line are skipped", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
     0, "GET", "/", "/", "", 1, "a", "Host=a;", NO_CL, "K"},
    {"OWS around values is trimmed, inner whitespace kept",
     "GET / HTTP/1.1\r\nHost:a\r\nX:   v  \t\r\nY:\t a \t b\t\r\nZ:\r\nW:   \r\n\r\n", 0, "GET",
     "/", "/", "", 1, "a", "Host=a;X=v;Y=a \t b;Z=;W=;", NO_CL, "K"},
    {"obs-text in a value", "GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9 \xff\x80\r\n\r\n", 0,
     "GET", "/", "/", "", 1, "a", "Host=a;X=caf\xc3\xa9 \xff\x80;", NO_CL, "K"},
    {"header names are any token", "GET / HTTP/1.1\r\nHost: a\r\nX-!#$%&'*+.^_`|~09az: v\r\n\r\n",
     0, "GET", "/", "/", "", 1, "a", "Host=a;X-!#$%&'*+.^_`|~09az=v;", NO_CL, "K"},
    {"Host with port", "GET / HTTP/1.1\r\nHost: a.example:8080\r\n\r\n", 0, "GET", "/", "/", "", 1,
     "a.example:8080", "Host=a.example:8080;", NO_CL, "K"},
    {"empty Host is valid in HTTP/1.1", "GET / HTTP/1.1\r\nHost:\r\n\r\n", 0, "GET", "/", "/", "",
     1, "", "Host=;", NO_CL, "K"},
    {"Host with IPv6, percent-encoding and sub-delims",
     "GET / HTTP/1.1\r\nhOST: [2001:db8::1]:80\r\n\r\n", 0, "GET", "/", "/", "", 1,
     "[2001:db8::1]:80", "hOST=[2001:db8::1]:80;", NO_CL, "K"},
    {"reg-name with pct-encoding and sub-delims",
     "GET / HTTP/1.1\r\nHost: a%2Db!$&'()*+,;=~_.-\r\n\r\n", 0, "GET", "/", "/", "", 1,
     "a%2Db!$&'()*+,;=~_.-", "Host=a%2Db!$&'()*+,;=~_.-;", NO_CL, "K"},
    {"any token is a method", "M-SEARCH /x HTTP/1.1\r\nHost: a\r\n\r\n", 0, "M-SEARCH", "/x", "/x",
     "", 1, "a", "Host=a;", NO_CL, "K"},
    {"methods are case-sensitive tokens", "get /x HTTP/1.1\r\nHost: a\r\n\r\n", 0, "get", "/x",
     "/x", "", 1, "a", "Host=a;", NO_CL, "K"},
    {"pipelined next request is not part of the head",
     "GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n", 28, "GET", "/1", "/1",
     "", 1, "a", "Host=a;", NO_CL, "K"},
    {"browser GET",
     "GET /index.html?lang=en HTTP/1.1\r\n"
     "Host: www.example.com\r\n"
     "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
     "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
     "Accept-Language: en-US,en;q=0.5\r\n"
     "Accept-Encoding: gzip, deflate, br\r\n"
     "Connection: keep-alive\r\n"
     "Cookie: a=1; b=2\r\n\r\n",
     0, "GET", "/index.html?lang=en", "/index.html", "lang=en", 1, "www.example.com",
     "Host=www.example.com;User-Agent=Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 "
     "Firefox/120.0;Accept=text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8;"
     "Accept-Language=en-US,en;q=0.5;Accept-Encoding=gzip, deflate, br;Connection=keep-alive;"
     "Cookie=a=1; b=2;",
     NO_CL, "K"},
    {"long target and values cross SIMD blocks",
     "GET /0123456789abcdef0123456789abcdef0123456789?q=0123456789abcdef0123456789 HTTP/1.1\r\n"
     "Host: a\r\nX-Long: 0123456789abcdef0123456789abcdef0123456789abcdef\t\r\n\r\n",
     0, "GET", "/0123456789abcdef0123456789abcdef0123456789?q=0123456789abcdef0123456789",
     "/0123456789abcdef0123456789abcdef0123456789", "q=0123456789abcdef0123456789", 1, "a",
     "Host=a;X-Long=0123456789abcdef0123456789abcdef0123456789abcdef;", NO_CL, "K"},
};

static void check_valid(const valid_case *c)
{
    parsed p;
    size_t len = strlen(c->raw);
    parse_with(&p, c->raw, len, NULL);
    const http_request *r = &p.req;
    if (p.rc != (int)(len - c->body))
        fail_msg("%s: rc %d (%s), want %zu", c->name, p.rc, p.why ? p.why : "", len - c->body);
    assert_string_equal(text(r->method), c->method);
    assert_string_equal(text(r->target), c->target);
    assert_string_equal(text(r->path), c->path);
    assert_string_equal(text(r->query), c->query);
    assert_int_equal(r->minor, c->minor);
    assert_string_equal(text(r->host), c->host);
    char hs[4096];
    render_headers(r, hs, sizeof hs);
    assert_string_equal(hs, c->headers);
    assert_true(r->headers == p.headers);
    assert_int_equal(r->content_length, c->content_length);
    assert_int_equal(r->keep_alive, strchr(c->flags, 'K') != NULL);
    assert_int_equal(r->chunked, strchr(c->flags, 'C') != NULL);
    assert_int_equal(r->expect_continue, strchr(c->flags, 'E') != NULL);
    assert_int_equal(r->upgrade, strchr(c->flags, 'U') != NULL);
    /* zero-copy: every slice points into the input (absolute-form's "/" aside) */
    assert_true(slice_inside(r->method, p.buf, len));
    assert_true(slice_inside(r->target, p.buf, len));
    assert_true(slice_inside(r->query, p.buf, len));
    assert_true(slice_inside(r->host, p.buf, len));
    if (!(r->path.n == 1 && r->path.p[0] == '/' && !slice_inside(r->path, p.buf, len)))
        assert_true(slice_inside(r->path, p.buf, len));
    for (int i = 0; i < r->nheaders; i++) {
        assert_true(slice_inside(r->headers[i].name, p.buf, len));
        assert_true(slice_inside(r->headers[i].value, p.buf, len));
    }
    parsed_free(&p);
}

static void test_valid_requests_yield_every_field(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(valid_cases); i++)
        check_valid(&valid_cases[i]);
}

static void test_valid_requests_yield_every_field_without_simd(void **state)
{
    (void)state;
    http_parser_use_simd(false);
    for (size_t i = 0; i < ARRAY_LEN(valid_cases); i++)
        check_valid(&valid_cases[i]);
    http_parser_use_simd(true);
}

/* ------------------------------------------------------------ invalid requests */

typedef struct invalid_case {
    const char *name;
    const char *raw;
    size_t len;
    int err;
} invalid_case;

#define H11 "Host: a\r\n"

static const invalid_case request_line_cases[] = {
    {"two SPs after the method", RAW("GET  / HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"two SPs before the version", RAW("GET /  HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"SP before the method", RAW(" GET / HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"SP after the version", RAW("GET / HTTP/1.1 \r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"HTAB as separator", RAW("GET\t/ HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"HTAB before the version", RAW("GET /\tHTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"method not a token", RAW("G@T / HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"method with obs-text", RAW("G\xc3\x89T / HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"SP inside the target", RAW("GET /a b HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"obs-text in the target", RAW("GET /caf\xc3\xa9 HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"DEL in the target", RAW("GET /a\x7f HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"NUL in the target", RAW("GET /a\0b HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"HTTP/0.9 request line", RAW("GET /\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"method only", RAW("GET\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"version with junk after it", RAW("GET / HTTP/1.1x\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"lowercase HTTP-name", RAW("GET / http/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"version without minor", RAW("GET / HTTP/1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"version without dot", RAW("GET / HTTP/11\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"two-digit minor", RAW("GET / HTTP/1.10\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"two-digit major", RAW("GET / HTTP/10.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"HTTPS as HTTP-name", RAW("GET / HTTPS/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"short version", RAW("GET / H\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"asterisk-form with GET", RAW("GET * HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"asterisk followed by more", RAW("OPTIONS *x HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"CONNECT with origin-form", RAW("CONNECT / HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"CONNECT without a port", RAW("CONNECT example.com HTTP/1.1\r\n" H11 "\r\n"),
     HTTP_E_BAD_REQUEST},
    {"CONNECT with an empty port", RAW("CONNECT example.com: HTTP/1.1\r\n" H11 "\r\n"),
     HTTP_E_BAD_REQUEST},
    {"CONNECT with an empty host", RAW("CONNECT :443 HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"CONNECT with absolute-form", RAW("CONNECT http://a:80 HTTP/1.1\r\n" H11 "\r\n"),
     HTTP_E_BAD_REQUEST},
    {"CONNECT with userinfo", RAW("CONNECT u@a:80 HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"authority-form with GET", RAW("GET example.com:80 HTTP/1.1\r\n" H11 "\r\n"),
     HTTP_E_BAD_REQUEST},
    {"absolute-form with another scheme", RAW("GET ftp://a/ HTTP/1.1\r\n" H11 "\r\n"),
     HTTP_E_BAD_REQUEST},
    {"absolute-form without //", RAW("GET http:/a HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"absolute-form with an empty host", RAW("GET http:///a HTTP/1.1\r\n" H11 "\r\n"),
     HTTP_E_BAD_REQUEST},
    {"absolute-form with userinfo", RAW("GET http://u:p@a/ HTTP/1.1\r\n" H11 "\r\n"),
     HTTP_E_BAD_REQUEST},
    {"absolute-form with a bad port", RAW("GET http://a:8o/ HTTP/1.1\r\n" H11 "\r\n"),
     HTTP_E_BAD_REQUEST},
    {"relative target", RAW("GET a/b HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"target starting with a digit", RAW("GET 1http://a/ HTTP/1.1\r\n" H11 "\r\n"),
     HTTP_E_BAD_REQUEST},
};

static const invalid_case version_cases[] = {
    {"HTTP/2.0", RAW("GET / HTTP/2.0\r\n" H11 "\r\n"), HTTP_E_VERSION},
    {"HTTP/1.2", RAW("GET / HTTP/1.2\r\n" H11 "\r\n"), HTTP_E_VERSION},
    {"HTTP/1.9", RAW("GET / HTTP/1.9\r\n" H11 "\r\n"), HTTP_E_VERSION},
    {"HTTP/0.9", RAW("GET / HTTP/0.9\r\n\r\n"), HTTP_E_VERSION},
    {"HTTP/3.0", RAW("GET / HTTP/3.0\r\n" H11 "\r\n"), HTTP_E_VERSION},
    {"HTTP/9.9 with bad headers after it", RAW("GET / HTTP/9.9\r\nHost : a\r\n\r\n"),
     HTTP_E_VERSION},
};

static const invalid_case line_ending_cases[] = {
    {"bare LF after the request line", RAW("GET / HTTP/1.1\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"bare LF after a header", RAW("GET / HTTP/1.1\r\nHost: a\n\r\n"), HTTP_E_BAD_REQUEST},
    {"bare LF as the blank line", RAW("GET / HTTP/1.1\r\nHost: a\r\n\n"), HTTP_E_BAD_REQUEST},
    {"bare LF inside a value", RAW("GET / HTTP/1.1\r\nX: a\nb\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"bare LF before the request line", RAW("\nGET / HTTP/1.1\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"bare CR after the request line", RAW("GET / HTTP/1.1\r" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"bare CR inside a value", RAW("GET / HTTP/1.1\r\nX: a\rb\r\n" H11 "\r\n"), HTTP_E_BAD_REQUEST},
    {"CR CR LF", RAW("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"bare CR before the request line", RAW("\r\rGET / HTTP/1.1\r\n" H11 "\r\n"),
     HTTP_E_BAD_REQUEST},
    {"blank line CR CR", RAW("GET / HTTP/1.1\r\nHost: a\r\n\r\r"), HTTP_E_BAD_REQUEST},
    {"LF CR LF", RAW("GET / HTTP/1.1\r\nHost: a\r\n\n\r\n"), HTTP_E_BAD_REQUEST},
};

static const invalid_case header_cases[] = {
    {"SP between name and colon", RAW("GET / HTTP/1.1\r\nHost : a\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"HTAB between name and colon", RAW("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"SP before the first header", RAW("GET / HTTP/1.1\r\n Host: a\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"obs-fold with SP", RAW("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n c\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"obs-fold with HTAB", RAW("GET / HTTP/1.1\r\nHost: a\r\nX: b\r\n\tc\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"header line without colon", RAW("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"empty header name", RAW("GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"non-token header name", RAW("GET / HTTP/1.1\r\nHost: a\r\nX(y): v\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"SP inside a header name", RAW("GET / HTTP/1.1\r\nHost: a\r\nX Y: v\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"obs-text in a header name", RAW("GET / HTTP/1.1\r\nHost: a\r\nX\x80: v\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"NUL in a value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"SOH in a value",
     RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\x01"
         "b\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"ESC in a value",
     RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\x1b"
         "b\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"VT in a value", RAW("GET / HTTP/1.1\r\nHost: a\r\nX: \x0b\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"DEL in a value",
     RAW("GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f"
         "b\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"control byte in a header name", RAW("GET / HTTP/1.1\r\nHost: a\r\nX\x01: v\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"HTAB in a header name", RAW("GET / HTTP/1.1\r\nHost: a\r\nX\tY: v\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"control byte in the request line", RAW("GET /\x01 HTTP/1.1\r\n" H11 "\r\n"),
     HTTP_E_BAD_REQUEST},
    {"invalid Connection option", RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: close;x\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"Connection option that is not a token",
     RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: @\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"Connection options separated by SP",
     RAW("GET / HTTP/1.1\r\nHost: a\r\nConnection: close keep-alive\r\n\r\n"), HTTP_E_BAD_REQUEST},
};

static const invalid_case content_length_cases[] = {
    {"negative", RAW("POST / HTTP/1.1\r\n" H11 "Content-Length: -1\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"plus sign", RAW("POST / HTTP/1.1\r\n" H11 "Content-Length: +1\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"space inside", RAW("POST / HTTP/1.1\r\n" H11 "Content-Length: 1 2\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"comma list", RAW("POST / HTTP/1.1\r\n" H11 "Content-Length: 1,1\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"comma list with OWS", RAW("POST / HTTP/1.1\r\n" H11 "Content-Length: 5, 5\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"empty", RAW("POST / HTTP/1.1\r\n" H11 "Content-Length: \r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"letters", RAW("POST / HTTP/1.1\r\n" H11 "Content-Length: abc\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"hex", RAW("POST / HTTP/1.1\r\n" H11 "Content-Length: 0x10\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"INT64_MAX + 1", RAW("POST / HTTP/1.1\r\n" H11 "Content-Length: 9223372036854775808\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"20 digits", RAW("POST / HTTP/1.1\r\n" H11 "Content-Length: 99999999999999999999\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"two equal headers",
     RAW("POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\ncontent-length: 5\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"two different headers",
     RAW("POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"with Transfer-Encoding after it",
     RAW("POST / HTTP/1.1\r\n" H11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"with Transfer-Encoding before it",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"with an unknown Transfer-Encoding",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip\r\nContent-Length: 5\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
};

static const invalid_case transfer_encoding_cases[] = {
    {"gzip", RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip\r\n\r\n"),
     HTTP_E_NOT_IMPLEMENTED},
    {"gzip, chunked", RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n"),
     HTTP_E_NOT_IMPLEMENTED},
    {"gzip then chunked on two lines",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
     HTTP_E_NOT_IMPLEMENTED},
    {"identity", RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: identity\r\n\r\n"),
     HTTP_E_NOT_IMPLEMENTED},
    {"coding with a quoted parameter",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: foo ; q=\"a,b\" , chunked\r\n\r\n"),
     HTTP_E_NOT_IMPLEMENTED},
    {"chunked, gzip (chunked not final)",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, gzip\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"chunked, chunked",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"chunked on two lines",
     RAW("POST / HTTP/1.1\r\n" H11
         "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"chunked with a parameter",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: chunked;x=1\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"empty", RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: \r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"only commas", RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: , ,\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"two codings without a comma",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip chunked\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"coding with a quoted-pair parameter",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: foo;q=\"a\\\"b\"\r\n\r\n"),
     HTTP_E_NOT_IMPLEMENTED},
    {"quoted-pair at the end of the value",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: foo;q=\"a\\\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"quoted-pair with a control byte",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: foo;q=\"a\\\x01\"\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"coding that is not a token", RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: @\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"parameter without a name",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip;=1\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"parameter without =", RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip;q\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"parameter without a value",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip;q=\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"unterminated quoted parameter",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip;q=\"a\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"chunked in HTTP/1.0", RAW("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"gzip in HTTP/1.0", RAW("POST / HTTP/1.0\r\nTransfer-Encoding: gzip\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"400 later in the head wins over 501",
     RAW("POST / HTTP/1.1\r\n" H11 "Transfer-Encoding: gzip\r\nX : y\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"missing Host wins over 501", RAW("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
};

static const invalid_case host_cases[] = {
    {"missing in HTTP/1.1", RAW("GET / HTTP/1.1\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"missing in HTTP/1.1 absolute-form", RAW("GET http://a/ HTTP/1.1\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"two equal Host headers", RAW("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"two Host headers in HTTP/1.0", RAW("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"),
     HTTP_E_BAD_REQUEST},
    {"SP inside", RAW("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"a path", RAW("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"userinfo", RAW("GET / HTTP/1.1\r\nHost: u@a\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"non-digit port", RAW("GET / HTTP/1.1\r\nHost: a:8o\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"two ports", RAW("GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"unclosed IP-literal", RAW("GET / HTTP/1.1\r\nHost: [::1\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"empty IP-literal", RAW("GET / HTTP/1.1\r\nHost: []\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"path in IP-literal", RAW("GET / HTTP/1.1\r\nHost: [::1/]\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"junk after IP-literal", RAW("GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"bad percent-encoding", RAW("GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"truncated percent-encoding", RAW("GET / HTTP/1.1\r\nHost: a%2\r\n\r\n"), HTTP_E_BAD_REQUEST},
    {"obs-text", RAW("GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n"), HTTP_E_BAD_REQUEST},
};

static void check_invalid_table(const invalid_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        parsed p;
        parse_with(&p, cases[i].raw, cases[i].len, NULL);
        if (p.rc != cases[i].err)
            fail_msg("%s: rc %d (%s), want %d", cases[i].name, p.rc, p.why ? p.why : "",
                     cases[i].err);
        assert_true(p.why[0] != '\0');
        parsed_free(&p);
    }
}

static void test_request_line_errors_return_400(void **state)
{
    (void)state;
    check_invalid_table(request_line_cases, ARRAY_LEN(request_line_cases));
}

static void test_unsupported_versions_return_505(void **state)
{
    (void)state;
    check_invalid_table(version_cases, ARRAY_LEN(version_cases));
}

static void test_bare_lf_and_bare_cr_return_400(void **state)
{
    (void)state;
    check_invalid_table(line_ending_cases, ARRAY_LEN(line_ending_cases));
}

static void test_header_syntax_errors_return_400(void **state)
{
    (void)state;
    check_invalid_table(header_cases, ARRAY_LEN(header_cases));
}

static void test_content_length_errors_return_400(void **state)
{
    (void)state;
    check_invalid_table(content_length_cases, ARRAY_LEN(content_length_cases));
}

static void test_transfer_encoding_other_than_chunked_returns_501_and_malformed_400(void **state)
{
    (void)state;
    check_invalid_table(transfer_encoding_cases, ARRAY_LEN(transfer_encoding_cases));
}

static void test_host_missing_duplicate_or_invalid_returns_400(void **state)
{
    (void)state;
    check_invalid_table(host_cases, ARRAY_LEN(host_cases));
}

static const struct {
    const invalid_case *cases;
    size_t n;
} invalid_tables[] = {
    {request_line_cases, ARRAY_LEN(request_line_cases)},
    {version_cases, ARRAY_LEN(version_cases)},
    {line_ending_cases, ARRAY_LEN(line_ending_cases)},
    {header_cases, ARRAY_LEN(header_cases)},
    {content_length_cases, ARRAY_LEN(content_length_cases)},
    {transfer_encoding_cases, ARRAY_LEN(transfer_encoding_cases)},
    {host_cases, ARRAY_LEN(host_cases)},
};

static void test_invalid_requests_return_the_same_errors_without_simd(void **state)
{
    (void)state;
    http_parser_use_simd(false);
    for (size_t t = 0; t < ARRAY_LEN(invalid_tables); t++)
        check_invalid_table(invalid_tables[t].cases, invalid_tables[t].n);
    http_parser_use_simd(true);
}

/* ------------------------------------------------------------ split at every byte */

static long off(wv_str s, const char *buf)
{
    return s.n ? (long)(s.p - buf) : -1;
}

/* The whole parse and a parse of the same request fed one more byte at a
 * time (cursor carried, each prefix in its own exact-size buffer) agree:
 * every incomplete prefix gives 0 or the final error, an error once seen
 * stays, and the last call gives the whole result with the same fields. */
static void check_splits(const char *name, const char *raw, size_t len, const http_limits *lim)
{
    parsed whole;
    parse_with(&whole, raw, len, lim);
    size_t scanned = 0;
    int seen_error = 0;
    for (size_t k = 0; k <= len; k++) {
        char *b = copy_exact(raw, k);
        http_header hs[MAX_TEST_HEADERS];
        http_request r = {.headers = hs};
        const char *why = NULL;
        int rc = http_parse_request(b, k, lim, &r, &scanned, &why);
        if (seen_error && rc != seen_error)
            fail_msg("%s: prefix %zu gives %d after error %d", name, k, rc, seen_error);
        if (rc < 0) {
            if (rc != whole.rc)
                fail_msg("%s: prefix %zu gives %d (%s), whole gives %d", name, k, rc, why,
                         whole.rc);
            seen_error = rc;
        } else if (rc > 0) {
            if (rc != whole.rc)
                fail_msg("%s: prefix %zu gives %d, whole gives %d", name, k, rc, whole.rc);
            const http_request *w = &whole.req;
            assert_int_equal(off(r.method, b), off(w->method, whole.buf));
            assert_int_equal(off(r.target, b), off(w->target, whole.buf));
            assert_int_equal(r.path.n, w->path.n);
            assert_int_equal(r.query.n, w->query.n);
            assert_int_equal(off(r.host, b), off(w->host, whole.buf));
            assert_int_equal(r.nheaders, w->nheaders);
            for (int i = 0; i < r.nheaders; i++) {
                assert_int_equal(off(hs[i].name, b), off(w->headers[i].name, whole.buf));
                assert_int_equal(off(hs[i].value, b), off(w->headers[i].value, whole.buf));
                assert_int_equal(hs[i].value.n, w->headers[i].value.n);
            }
            assert_int_equal(r.minor, w->minor);
            assert_int_equal(r.content_length, w->content_length);
            assert_int_equal(r.chunked, w->chunked);
            assert_int_equal(r.keep_alive, w->keep_alive);
            assert_int_equal(r.expect_continue, w->expect_continue);
            assert_int_equal(r.upgrade, w->upgrade);
        } else if (k == len && whole.rc != 0) {
            fail_msg("%s: all %zu bytes give 0 split, %d whole", name, len, whole.rc);
        }
        /* a fresh cursor on the same prefix agrees with the carried one */
        size_t fresh = 0;
        assert_int_equal(http_parse_request(b, k, lim, &r, &fresh, &why), rc);
        free(b);
    }
    parsed_free(&whole);
}

static void split_every_table(void)
{
    for (size_t i = 0; i < ARRAY_LEN(valid_cases); i++)
        check_splits(valid_cases[i].name, valid_cases[i].raw, strlen(valid_cases[i].raw), NULL);
    for (size_t t = 0; t < ARRAY_LEN(invalid_tables); t++)
        for (size_t i = 0; i < invalid_tables[t].n; i++)
            check_splits(invalid_tables[t].cases[i].name, invalid_tables[t].cases[i].raw,
                         invalid_tables[t].cases[i].len, NULL);
}

static void test_every_request_split_at_every_byte_parses_the_same(void **state)
{
    (void)state;
    split_every_table();
}

static void test_every_request_split_at_every_byte_parses_the_same_without_simd(void **state)
{
    (void)state;
    http_parser_use_simd(false);
    split_every_table();
    http_parser_use_simd(true);
}

/* Small limits make every limit reachable in a short request, so the limit
 * checks are split at every byte too. */
static void test_limits_split_at_every_byte_fail_as_soon_as_exceeded(void **state)
{
    (void)state;
    static const char req[] = "\r\nGET /abcdefgh HTTP/1.1\r\nHost: a\r\nX: 1\r\nY: 2\r\n\r\n";
    const size_t n = sizeof req - 1;
    for (size_t line = 20; line <= 26; line++)
        for (size_t head = 40; head <= n + 1; head++)
            for (int fields = 1; fields <= 4; fields++) {
                http_limits lim = {line, head, fields};
                for (int simd = 0; simd <= 1; simd++) {
                    http_parser_use_simd(simd);
                    check_splits("small limits", req, n, &lim);
                }
            }
    http_parser_use_simd(true);
}

/* ------------------------------------------------------------ limits at their edges */

/* "GET /aaa...a HTTP/1.1" of exactly line_len bytes, then CRLF and more. */
static char *request_with_line(size_t line_len, const char *rest, size_t *len)
{
    size_t rest_n = strlen(rest);
    char *b = malloc(line_len + 2 + rest_n);
    assert_non_null(b);
    memcpy(b, "GET /", 5);
    memset(b + 5, 'a', line_len - 5 - 9);
    memcpy(b + line_len - 9, " HTTP/1.1", 9);
    memcpy(b + line_len, "\r\n", 2);
    memcpy(b + line_len + 2, rest, rest_n);
    *len = line_len + 2 + rest_n;
    return b;
}

static void test_request_line_of_8192_bytes_parses_and_8193_returns_414(void **state)
{
    (void)state;
    size_t len;
    char *ok = request_with_line(8192, "Host: a\r\n\r\n", &len);
    assert_int_equal(parse_rc(ok, len, NULL), (int)len);
    free(ok);
    char *over = request_with_line(8193, "Host: a\r\n\r\n", &len);
    assert_int_equal(parse_rc(over, len, NULL), HTTP_E_URI_TOO_LONG);
    /* before its CRLF arrives: 8192 bytes may still be fine, 8193 are not */
    assert_int_equal(parse_rc(over, 8192, NULL), 0);
    assert_int_equal(parse_rc(over, 8193, NULL), HTTP_E_URI_TOO_LONG);
    free(over);
}

static void test_request_line_limit_does_not_count_leading_empty_lines(void **state)
{
    (void)state;
    size_t len;
    char *line = request_with_line(8192, "Host: a\r\n\r\n", &len);
    char *b = malloc(len + 4);
    memcpy(b, "\r\n\r\n", 4);
    memcpy(b + 4, line, len);
    assert_int_equal(parse_rc(b, len + 4, NULL), (int)len + 4);
    free(b);
    free(line);
}

static void test_request_line_limit_is_configurable(void **state)
{
    (void)state;
    static const char req[] = "GET /abc HTTP/1.1\r\nHost: a\r\n\r\n"; /* line: 17 bytes */
    http_limits lim = HTTP_LIMITS_DEFAULT;
    lim.max_request_line = 17;
    assert_int_equal(parse_rc(req, sizeof req - 1, &lim), (int)sizeof req - 1);
    lim.max_request_line = 16;
    assert_int_equal(parse_rc(req, sizeof req - 1, &lim), HTTP_E_URI_TOO_LONG);
    assert_int_equal(parse_rc(req, 17, &lim), HTTP_E_URI_TOO_LONG);
    assert_int_equal(parse_rc(req, 16, &lim), 0);
}

/* A head of exactly `total` bytes: request line, Host, one padding header. */
static char *head_of_size(size_t total)
{
    static const char start[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: ";
    size_t fixed = sizeof start - 1 + 4; /* + "\r\n\r\n" */
    assert_true(total > fixed);
    char *b = malloc(total);
    memcpy(b, start, sizeof start - 1);
    memset(b + sizeof start - 1, 'p', total - fixed);
    memcpy(b + total - 4, "\r\n\r\n", 4);
    return b;
}

static void test_head_of_65536_bytes_parses_and_65537_returns_431(void **state)
{
    (void)state;
    char *ok = head_of_size(65536);
    assert_int_equal(parse_rc(ok, 65536, NULL), 65536);
    free(ok);
    char *over = head_of_size(65537);
    assert_int_equal(parse_rc(over, 65537, NULL), HTTP_E_HEADERS_TOO_LARGE);
    assert_int_equal(parse_rc(over, 65536, NULL), 0); /* could still end within the limit */
    free(over);
}

static void test_head_limit_counts_leading_empty_lines(void **state)
{
    (void)state;
    char *h = head_of_size(65534);
    char *b = malloc(65536 + 2);
    memcpy(b, "\r\n", 2);
    memcpy(b + 2, h, 65534);
    assert_int_equal(parse_rc(b, 65536, NULL), 65536);
    free(h);
    h = head_of_size(65535);
    memcpy(b + 2, h, 65535);
    assert_int_equal(parse_rc(b, 65537, NULL), HTTP_E_HEADERS_TOO_LARGE);
    free(h);
    free(b);
}

static void test_ten_megabyte_header_line_fails_at_the_head_limit(void **state)
{
    (void)state;
    size_t len = 10u << 20;
    char *b = malloc(len);
    static const char start[] = "GET / HTTP/1.1\r\nHost: a\r\nX: ";
    memcpy(b, start, sizeof start - 1);
    memset(b + sizeof start - 1, 'x', len - (sizeof start - 1));
    assert_int_equal(parse_rc(b, len, NULL), HTTP_E_HEADERS_TOO_LARGE);
    /* fed in 4 KiB reads with the cursor, it fails at the first read past 64 KiB */
    size_t scanned = 0;
    http_header hs[100];
    http_request r = {.headers = hs};
    size_t k = 0;
    int rc = 0;
    while (rc == 0 && k < len) {
        k += 4096;
        rc = http_parse_request(b, k, NULL, &r, &scanned, NULL);
    }
    assert_int_equal(rc, HTTP_E_HEADERS_TOO_LARGE);
    assert_int_equal(k, 65536 + 4096);
    free(b);
}

static void test_ten_megabyte_request_line_fails_at_the_line_limit(void **state)
{
    (void)state;
    size_t len = 10u << 20;
    char *b = malloc(len);
    memcpy(b, "GET /", 5);
    memset(b + 5, 'a', len - 5);
    assert_int_equal(parse_rc(b, len, NULL), HTTP_E_URI_TOO_LONG);
    free(b);
}

/* A request with n headers "H<i>: v" (the first is Host). */
static char *request_with_headers(int n, size_t *len)
{
    char *b = malloc(64 + (size_t)n * 16);
    size_t o = (size_t)sprintf(b, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < n; i++)
        o += (size_t)sprintf(b + o, "H%d: v\r\n", i);
    o += (size_t)sprintf(b + o, "\r\n");
    *len = o;
    return b;
}

static void test_100_headers_parse_and_101_return_431(void **state)
{
    (void)state;
    size_t len;
    parsed p;
    char *ok = request_with_headers(100, &len);
    parse_with(&p, ok, len, NULL);
    assert_int_equal(p.rc, (int)len);
    assert_int_equal(p.req.nheaders, 100);
    assert_string_equal(text(p.req.headers[99].name), "H99");
    parsed_free(&p);
    free(ok);
    char *over = request_with_headers(101, &len);
    assert_int_equal(parse_rc(over, len, NULL), HTTP_E_HEADERS_TOO_LARGE);
    /* as soon as the 101st line begins, before the head is complete */
    size_t line101 = (size_t)(strstr(over, "H100:") - over);
    assert_int_equal(parse_rc(over, line101, NULL), 0);
    assert_int_equal(parse_rc(over, line101 + 1, NULL), HTTP_E_HEADERS_TOO_LARGE);
    free(over);
}

static void test_header_count_limit_is_configurable(void **state)
{
    (void)state;
    size_t len;
    char *b = request_with_headers(3, &len);
    http_limits lim = {8192, 65536, 3};
    assert_int_equal(parse_rc(b, len, &lim), (int)len);
    lim.max_headers = 2;
    assert_int_equal(parse_rc(b, len, &lim), HTTP_E_HEADERS_TOO_LARGE);
    lim.max_headers = 0;
    assert_int_equal(parse_rc(b, len, &lim), HTTP_E_HEADERS_TOO_LARGE);
    free(b);
    static const char bare[] = "GET / HTTP/1.0\r\n\r\n";
    assert_int_equal(parse_rc(bare, sizeof bare - 1, &lim), (int)sizeof bare - 1);
}

static void test_default_limits_are_8k_line_64k_head_100_headers(void **state)
{
    (void)state;
    http_limits lim = HTTP_LIMITS_DEFAULT;
    assert_int_equal(lim.max_request_line, 8192);
    assert_int_equal(lim.max_head_bytes, 65536);
    assert_int_equal(lim.max_headers, 100);
}

/* Pass-1 errors (limits, line endings, control bytes) are decided before
 * the head is parsed, so they win over an earlier syntax error: that is
 * what makes a split parse agree with the whole one. */
static void test_limit_error_wins_over_earlier_syntax_error(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/1.1\r\nHost : a\r\nX: 1\r\nY: 2\r\n\r\n";
    http_limits lim = {8192, 65536, 2};
    assert_int_equal(parse_rc(req, sizeof req - 1, &lim), HTTP_E_HEADERS_TOO_LARGE);
}

/* ------------------------------------------------------------ the scanned cursor */

static void test_scanned_cursor_skips_bytes_already_scanned(void **state)
{
    (void)state;
    char b[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Long: abcdefghijklmnopqrstuvwxyz\r\n\r\n";
    size_t n = sizeof b - 1, part = n - 10;
    size_t scanned = 0;
    http_header hs[8];
    http_request r = {.headers = hs};
    assert_int_equal(http_parse_request(b, part, NULL, &r, &scanned, NULL), 0);
    /* a NUL in bytes the cursor has passed is not seen again; a fresh parse sees it */
    b[40] = '\0';
    size_t fresh = 0;
    assert_int_equal(http_parse_request(b, n, NULL, &r, &fresh, NULL), HTTP_E_BAD_REQUEST);
    assert_int_equal(http_parse_request(b, n, NULL, &r, &scanned, NULL), (int)n);
}

static void test_scanned_cursor_for_other_bytes_is_ignored(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    http_header hs[8];
    http_request r = {.headers = hs};
    size_t scanned = (size_t)1 << 30; /* past the end of these bytes: start over */
    assert_int_equal(http_parse_request(req, sizeof req - 1, NULL, &r, &scanned, NULL),
                     (int)sizeof req - 1);
}

static void test_parsing_a_complete_head_again_gives_the_same_result(void **state)
{
    (void)state;
    static const char req[] = "GET /a HTTP/1.1\r\nHost: a\r\n\r\nbody";
    http_header hs[8];
    http_request r = {.headers = hs};
    size_t scanned = 0;
    int rc = http_parse_request(req, sizeof req - 1, NULL, &r, &scanned, NULL);
    assert_int_equal(rc, (int)sizeof req - 5);
    assert_int_equal(http_parse_request(req, sizeof req - 1, NULL, &r, &scanned, NULL), rc);
    assert_string_equal(text(r.path), "/a");
}

static void test_null_limits_and_cursor_mean_defaults_and_start(void **state)
{
    (void)state;
    static const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    http_header hs[100];
    http_request r = {.headers = hs};
    assert_int_equal(http_parse_request(req, sizeof req - 1, NULL, &r, NULL, NULL),
                     (int)sizeof req - 1);
    assert_int_equal(http_parse_request(req, 5, NULL, &r, NULL, NULL), 0);
    assert_int_equal(http_parse_request(req, 0, NULL, &r, NULL, NULL), 0);
}

static void test_empty_lines_alone_are_incomplete(void **state)
{
    (void)state;
    static const char req[] = "\r\n\r\n\r\n";
    assert_int_equal(parse_rc(req, sizeof req - 1, NULL), 0);
    assert_int_equal(parse_rc(req, 1, NULL), 0);
}

/* ------------------------------------------------------------ chunked decoder */

typedef struct decoded {
    int rc;           /* last return: DONE, MORE or an error */
    size_t consumed;  /* bytes used in total */
    char body[70000]; /* data, concatenated */
    size_t body_n;
} decoded;

/* Feed the pieces [0, cut[0]), [cut[0], cut[1]), ... each from its own
 * exact-size buffer, calling again while data comes out. */
static void decode_pieces(decoded *out, const char *in, size_t len, const size_t *cuts,
                          size_t ncuts)
{
    http_chunked d;
    http_chunked_init(&d);
    memset(out, 0, sizeof *out);
    out->rc = HTTP_CHUNK_MORE;
    size_t from = 0;
    for (size_t c = 0; c <= ncuts && out->rc == HTTP_CHUNK_MORE; c++) {
        size_t to = c < ncuts ? cuts[c] : len;
        char *piece = copy_exact(in + from, to - from);
        size_t at = 0;
        for (;;) {
            size_t used = (size_t)-1;
            const char *data = NULL;
            size_t data_n = 0;
            int rc = http_chunked_feed(&d, piece + at, to - from - at, &used, &data, &data_n);
            assert_true(used <= to - from - at);
            at += used;
            out->consumed += used;
            if (rc == HTTP_CHUNK_DATA) {
                assert_true(data_n > 0);
                assert_true(data >= piece && data + data_n <= piece + (to - from));
                assert_true(out->body_n + data_n <= sizeof out->body);
                memcpy(out->body + out->body_n, data, data_n);
                out->body_n += data_n;
                continue;
            }
            out->rc = rc;
            if (rc < 0)
                assert_non_null(d.why);
            break;
        }
        free(piece);
        from = to;
    }
}

static void decode(decoded *out, const char *in, size_t len)
{
    decode_pieces(out, in, len, NULL, 0);
}

typedef struct chunk_case {
    const char *name;
    const char *raw;
    size_t len;
    const char *body; /* expected data when valid */
    size_t rest;      /* bytes after the chunked body */
    int rc;
} chunk_case;

static const chunk_case chunk_cases[] = {
    {"one chunk", RAW("5\r\nhello\r\n0\r\n\r\n"), "hello", 0, HTTP_CHUNK_DONE},
    {"two chunks", RAW("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"), "hello world", 0,
     HTTP_CHUNK_DONE},
    {"uppercase hex", RAW("A\r\n0123456789\r\n0\r\n\r\n"), "0123456789", 0, HTTP_CHUNK_DONE},
    {"lowercase hex", RAW("a\r\n0123456789\r\n0\r\n\r\n"), "0123456789", 0, HTTP_CHUNK_DONE},
    {"leading zeros", RAW("0000A\r\n0123456789\r\n000\r\n\r\n"), "0123456789", 0, HTTP_CHUNK_DONE},
    {"extension without value", RAW("5;ext\r\nhello\r\n0\r\n\r\n"), "hello", 0, HTTP_CHUNK_DONE},
    {"extensions with BWS, token and quoted values",
     RAW("5 ; a = b ;c=\"q \\\"x\\\\\" ;d\t;e\r\nhello\r\n0;last=1\r\n\r\n"), "hello", 0,
     HTTP_CHUNK_DONE},
    {"extensions right after values", RAW("2;a=b;c=\"d\";e=\"f\"\r\nhi\r\n0;z=\"\"\r\n\r\n"), "hi",
     0, HTTP_CHUNK_DONE},
    {"zero-length last chunk only", RAW("0\r\n\r\n"), "", 0, HTTP_CHUNK_DONE},
    {"trailers", RAW("3\r\nabc\r\n0\r\nX-Checksum: 1\r\nY:\r\nZ: a \t b\xff\r\n\r\n"), "abc", 0,
     HTTP_CHUNK_DONE},
    {"bytes of the next request are left", RAW("3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n"), "abc",
     16, HTTP_CHUNK_DONE},
    {"largest chunk size starts", RAW("7fffffffffffffff\r\nab"), "ab", 0, HTTP_CHUNK_MORE},
    {"incomplete", RAW("5\r\nhel"), "hel", 0, HTTP_CHUNK_MORE},
    {"size overflow", RAW("ffffffffffffffffff\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"size 2^63", RAW("8000000000000000\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"missing CRLF after data", RAW("5\r\nhelloX\r\n0\r\n\r\n"), "hello", 0, HTTP_E_BAD_REQUEST},
    {"bare LF after data", RAW("5\r\nhello\n0\r\n\r\n"), "hello", 0, HTTP_E_BAD_REQUEST},
    {"CR without LF after data", RAW("5\r\nhello\r0\r\n\r\n"), "hello", 0, HTTP_E_BAD_REQUEST},
    {"empty size", RAW("\r\nhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"non-hex size", RAW("g\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"negative size", RAW("-1\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"0x prefix", RAW("0x5\r\nhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"SP before the size", RAW(" 5\r\nhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"bare LF after the size", RAW("5\nhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"CR without LF after the size", RAW("5\rhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"BWS without an extension", RAW("5 \r\nhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"semicolon without a name", RAW("5;\r\nhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"equals without a value", RAW("5;a=\r\nhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"BWS after a name at the end", RAW("5;a \r\nhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"two names", RAW("5;a b\r\nhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"unterminated quoted value", RAW("5;a=\"x\r\nhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"junk after a quoted value", RAW("5;a=\"x\"y\r\nhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"control byte in a quoted value", RAW("5;a=\"\x01\"\r\nhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"control byte in a quoted-pair", RAW("5;a=\"\\\x01\"\r\nhello\r\n"), "", 0,
     HTTP_E_BAD_REQUEST},
    {"value that is not a token", RAW("5;a=@\r\nhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"trailer line with CR but no LF", RAW("0\r\nX: 1\rY: 2\r\n\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"non-token extension name", RAW("5;a@b\r\nhello\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"bare LF in a trailer", RAW("0\r\nX: 1\n\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"obs-fold in the trailers", RAW("0\r\nX: 1\r\n folded\r\n\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"trailer without colon", RAW("0\r\nX 1\r\n\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"control byte in a trailer value", RAW("0\r\nX: \x01\r\n\r\n"), "", 0, HTTP_E_BAD_REQUEST},
    {"final CR without LF", RAW("0\r\n\r\r"), "", 0, HTTP_E_BAD_REQUEST},
    {"pipelined request where the final CRLF belongs", RAW("0\r\nGET / HTTP/1.1\r\n"), "", 0,
     HTTP_E_BAD_REQUEST},
};

static void check_chunk_case(const chunk_case *c, decoded *d)
{
    if (d->rc != c->rc)
        fail_msg("%s: rc %d, want %d", c->name, d->rc, c->rc);
    if (c->rc >= 0) {
        assert_int_equal(d->body_n, strlen(c->body));
        assert_memory_equal(d->body, c->body, d->body_n);
        assert_int_equal(d->consumed, c->len - c->rest);
    }
}

static void test_chunked_decoder_table(void **state)
{
    (void)state;
    static decoded d;
    for (size_t i = 0; i < ARRAY_LEN(chunk_cases); i++) {
        decode(&d, chunk_cases[i].raw, chunk_cases[i].len);
        check_chunk_case(&chunk_cases[i], &d);
    }
}

static void test_chunked_decoder_split_at_every_byte_decodes_the_same(void **state)
{
    (void)state;
    static decoded d;
    for (size_t i = 0; i < ARRAY_LEN(chunk_cases); i++) {
        const chunk_case *c = &chunk_cases[i];
        for (size_t k = 0; k <= c->len; k++) {
            decode_pieces(&d, c->raw, c->len, &k, 1);
            check_chunk_case(c, &d);
        }
        /* and one byte at a time */
        size_t cuts[256];
        assert_true(c->len < ARRAY_LEN(cuts));
        for (size_t k = 0; k < c->len; k++)
            cuts[k] = k + 1;
        decode_pieces(&d, c->raw, c->len, cuts, c->len ? c->len - 1 : 0);
        check_chunk_case(c, &d);
    }
}

static void test_chunked_size_overflow_returns_400(void **state)
{
    (void)state;
    static const char in[] = "ffffffffffffffffff\r\n";
    http_chunked d = {0};
    size_t used;
    const char *data;
    size_t n;
    assert_int_equal(http_chunked_feed(&d, in, sizeof in - 1, &used, &data, &n),
                     HTTP_E_BAD_REQUEST);
    assert_int_equal(used, 16); /* the 16th digit is the one that overflows */
    assert_string_equal(d.why, "chunk size overflows");
    /* it stays failed */
    assert_int_equal(http_chunked_feed(&d, "0\r\n\r\n", 5, &used, &data, &n), HTTP_E_BAD_REQUEST);
    assert_int_equal(used, 0);
}

static void test_chunked_missing_crlf_after_data_returns_400(void **state)
{
    (void)state;
    static decoded d;
    decode(&d, "3\r\nabcd\r\n", 9);
    assert_int_equal(d.rc, HTTP_E_BAD_REQUEST);
    assert_int_equal(d.body_n, 3);
}

static void test_chunked_returns_data_as_slices_of_the_input(void **state)
{
    (void)state;
    static const char in[] = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    http_chunked d = {0};
    size_t used;
    const char *data = NULL;
    size_t n = 0;
    assert_int_equal(http_chunked_feed(&d, in, sizeof in - 1, &used, &data, &n), HTTP_CHUNK_DATA);
    assert_ptr_equal(data, in + 3);
    assert_int_equal(n, 3);
    assert_int_equal(used, 6);
    size_t at = used;
    assert_int_equal(http_chunked_feed(&d, in + at, sizeof in - 1 - at, &used, &data, &n),
                     HTTP_CHUNK_DATA);
    assert_ptr_equal(data, in + 11);
    assert_int_equal(n, 2);
    at += used;
    assert_int_equal(http_chunked_feed(&d, in + at, sizeof in - 1 - at, &used, &data, &n),
                     HTTP_CHUNK_DONE);
    assert_int_equal(at + used, sizeof in - 1);
    /* done stays done and consumes nothing */
    assert_int_equal(http_chunked_feed(&d, "x", 1, &used, &data, &n), HTTP_CHUNK_DONE);
    assert_int_equal(used, 0);
}

/* keep_trailers: the field lines come back as slices, whole or byte by
 * byte, and the body still ends where it does without them. */
static void test_chunked_keeps_trailer_lines_when_asked_in_any_split(void **state)
{
    (void)state;
    static const char in[] = "2\r\nab\r\n0\r\nX-Sum: 7\r\ngrpc-status: 0\r\n\r\nNEXT";
    size_t len = sizeof in - 5; /* up to the next message */
    static const size_t steps[] = {1, 2, 3, 5, 7, sizeof in - 1};
    for (size_t k = 0; k < sizeof steps / sizeof *steps; k++) {
        size_t step = steps[k];
        http_chunked d = {.keep_trailers = true};
        char body[8] = {0}, lines[64] = {0};
        size_t nbody = 0, nlines = 0, at = 0;
        int rc = HTTP_CHUNK_MORE;
        while (rc != HTTP_CHUNK_DONE) {
            size_t to = at + step < sizeof in - 1 ? at + step : sizeof in - 1, used = 0, n = 0;
            const char *data = NULL;
            rc = http_chunked_feed(&d, in + at, to - at, &used, &data, &n);
            assert_true(rc >= 0);
            if (rc == HTTP_CHUNK_DATA) {
                memcpy(body + nbody, data, n);
                nbody += n;
            } else if (rc == HTTP_CHUNK_TRAILER) {
                assert_true(n > 0);
                memcpy(lines + nlines, data, n);
                nlines += n;
            }
            at += used;
        }
        assert_int_equal(at, len);
        assert_string_equal(body, "ab");
        assert_string_equal(lines, "X-Sum: 7\r\ngrpc-status: 0\r\n");
    }
    /* no trailers: nothing comes back but the end */
    http_chunked d = {.keep_trailers = true};
    size_t used, n;
    const char *data;
    assert_int_equal(http_chunked_feed(&d, "0\r\n\r\n", 5, &used, &data, &n), HTTP_CHUNK_DONE);
    assert_int_equal(used, 5);
}

static void test_chunked_trailer_section_over_64k_returns_400(void **state)
{
    (void)state;
    size_t pad = HTTP_CHUNK_TRAILER_MAX - 5; /* "X: " + pad + CRLF = the limit exactly */
    size_t len = 3 + 3 + pad + 2 + 2;
    char *b = malloc(len + 1);
    memcpy(b, "0\r\nX: ", 6);
    memset(b + 6, 'v', pad);
    memcpy(b + 6 + pad, "\r\n\r\n", 4);
    static decoded d;
    decode(&d, b, len);
    assert_int_equal(d.rc, HTTP_E_BAD_REQUEST); /* the final CRLF counts too */
    memcpy(b, "0\r\nX: ", 6);
    memset(b + 6, 'v', pad - 2);
    memcpy(b + 6 + pad - 2, "\r\n\r\n", 4);
    decode(&d, b, len - 2);
    assert_int_equal(d.rc, HTTP_CHUNK_DONE);
    free(b);
}

static void test_chunked_size_line_over_4k_returns_400(void **state)
{
    (void)state;
    char b[HTTP_CHUNK_LINE_MAX + 16];
    memset(b, '0', HTTP_CHUNK_LINE_MAX - 2);
    memcpy(b + HTTP_CHUNK_LINE_MAX - 2, "\r\n\r\n", 4); /* line of exactly the limit */
    static decoded d;
    decode(&d, b, HTTP_CHUNK_LINE_MAX + 2);
    assert_int_equal(d.rc, HTTP_CHUNK_DONE);
    memset(b, '0', HTTP_CHUNK_LINE_MAX - 1);
    memcpy(b + HTTP_CHUNK_LINE_MAX - 1, "\r\n\r\n", 4);
    decode(&d, b, HTTP_CHUNK_LINE_MAX + 3);
    assert_int_equal(d.rc, HTTP_E_BAD_REQUEST);
}

static void test_chunked_empty_input_consumes_nothing(void **state)
{
    (void)state;
    http_chunked d = {0};
    size_t used = 99;
    const char *data;
    size_t n;
    assert_int_equal(http_chunked_feed(&d, "", 0, &used, &data, &n), HTTP_CHUNK_MORE);
    assert_int_equal(used, 0);
}

/* ------------------------------------------------------------ small pieces */

static void test_status_reasons_follow_rfc_9110(void **state)
{
    (void)state;
    assert_string_equal(http_status_reason(200), "OK");
    assert_string_equal(http_status_reason(100), "Continue");
    assert_string_equal(http_status_reason(101), "Switching Protocols");
    assert_string_equal(http_status_reason(204), "No Content");
    assert_string_equal(http_status_reason(304), "Not Modified");
    assert_string_equal(http_status_reason(308), "Permanent Redirect");
    assert_string_equal(http_status_reason(400), "Bad Request");
    assert_string_equal(http_status_reason(404), "Not Found");
    assert_string_equal(http_status_reason(408), "Request Timeout");
    assert_string_equal(http_status_reason(413), "Content Too Large");
    assert_string_equal(http_status_reason(414), "URI Too Long");
    assert_string_equal(http_status_reason(422), "Unprocessable Content");
    assert_string_equal(http_status_reason(431), "Request Header Fields Too Large");
    assert_string_equal(http_status_reason(501), "Not Implemented");
    assert_string_equal(http_status_reason(505), "HTTP Version Not Supported");
    assert_string_equal(http_status_reason(306), "");
    assert_string_equal(http_status_reason(418), "");
    assert_string_equal(http_status_reason(0), "");
    assert_string_equal(http_status_reason(-400), "");
    assert_string_equal(http_status_reason(999), "");
    /* every code RFC 9110 defines has a phrase, and nothing out of range crashes */
    static const int rfc9110[] = {100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301,
                                  302, 303, 304, 305, 307, 308, 400, 401, 402, 403, 404,
                                  405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415,
                                  416, 417, 421, 422, 426, 500, 501, 502, 503, 504, 505};
    for (size_t i = 0; i < ARRAY_LEN(rfc9110); i++)
        assert_true(http_status_reason(rfc9110[i])[0] != '\0');
    for (int code = -1000; code < 2000; code++)
        assert_non_null(http_status_reason(code));
    assert_string_equal(http_status_reason(INT32_MIN), "");
    assert_string_equal(http_status_reason(INT32_MAX), "");
    /* every error the parser returns has a phrase */
    static const int errors[] = {HTTP_E_BAD_REQUEST, HTTP_E_URI_TOO_LONG, HTTP_E_HEADERS_TOO_LARGE,
                                 HTTP_E_NOT_IMPLEMENTED, HTTP_E_VERSION};
    for (size_t i = 0; i < ARRAY_LEN(errors); i++)
        assert_true(http_status_reason(-errors[i])[0] != '\0');
}

static void test_token_chars_are_rfc_9110_tchar(void **state)
{
    (void)state;
    static const char tchar[] = "!#$%&'*+-.^_`|~0123456789"
                                "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    for (int c = 0; c < 256; c++)
        assert_int_equal(http_token_char((unsigned char)c),
                         c != 0 && memchr(tchar, c, sizeof tchar - 1) != NULL);
}

static void test_wv_str_compares_bytes_and_ascii_case(void **state)
{
    (void)state;
    wv_str a = WV_STR("Content-Length");
    assert_int_equal(a.n, 14);
    assert_true(wv_str_eq(a, WV_STR("Content-Length")));
    assert_false(wv_str_eq(a, WV_STR("content-length")));
    assert_true(wv_str_ieq(a, WV_STR("content-LENGTH")));
    assert_false(wv_str_ieq(a, WV_STR("content-lengthx")));
    assert_false(wv_str_ieq(WV_STR("@"), WV_STR("`"))); /* only letters fold */
    assert_false(wv_str_ieq(WV_STR("\xc9"), WV_STR("\xe9")));
    assert_true(wv_str_eq_cstr(a, "Content-Length"));
    assert_false(wv_str_eq_cstr(a, "Content"));
    assert_true(wv_str_eq((wv_str){NULL, 0}, WV_STR("")));
    assert_true(wv_str_eq_cstr((wv_str){NULL, 0}, ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_requests_yield_every_field),
        cmocka_unit_test(test_valid_requests_yield_every_field_without_simd),
        cmocka_unit_test(test_request_line_errors_return_400),
        cmocka_unit_test(test_unsupported_versions_return_505),
        cmocka_unit_test(test_bare_lf_and_bare_cr_return_400),
        cmocka_unit_test(test_header_syntax_errors_return_400),
        cmocka_unit_test(test_content_length_errors_return_400),
        cmocka_unit_test(test_transfer_encoding_other_than_chunked_returns_501_and_malformed_400),
        cmocka_unit_test(test_host_missing_duplicate_or_invalid_returns_400),
        cmocka_unit_test(test_invalid_requests_return_the_same_errors_without_simd),
        cmocka_unit_test(test_every_request_split_at_every_byte_parses_the_same),
        cmocka_unit_test(test_every_request_split_at_every_byte_parses_the_same_without_simd),
        cmocka_unit_test(test_limits_split_at_every_byte_fail_as_soon_as_exceeded),
        cmocka_unit_test(test_request_line_of_8192_bytes_parses_and_8193_returns_414),
        cmocka_unit_test(test_request_line_limit_does_not_count_leading_empty_lines),
        cmocka_unit_test(test_request_line_limit_is_configurable),
        cmocka_unit_test(test_head_of_65536_bytes_parses_and_65537_returns_431),
        cmocka_unit_test(test_head_limit_counts_leading_empty_lines),
        cmocka_unit_test(test_ten_megabyte_header_line_fails_at_the_head_limit),
        cmocka_unit_test(test_ten_megabyte_request_line_fails_at_the_line_limit),
        cmocka_unit_test(test_100_headers_parse_and_101_return_431),
        cmocka_unit_test(test_header_count_limit_is_configurable),
        cmocka_unit_test(test_default_limits_are_8k_line_64k_head_100_headers),
        cmocka_unit_test(test_limit_error_wins_over_earlier_syntax_error),
        cmocka_unit_test(test_scanned_cursor_skips_bytes_already_scanned),
        cmocka_unit_test(test_scanned_cursor_for_other_bytes_is_ignored),
        cmocka_unit_test(test_parsing_a_complete_head_again_gives_the_same_result),
        cmocka_unit_test(test_null_limits_and_cursor_mean_defaults_and_start),
        cmocka_unit_test(test_empty_lines_alone_are_incomplete),
        cmocka_unit_test(test_chunked_decoder_table),
        cmocka_unit_test(test_chunked_decoder_split_at_every_byte_decodes_the_same),
        cmocka_unit_test(test_chunked_size_overflow_returns_400),
        cmocka_unit_test(test_chunked_keeps_trailer_lines_when_asked_in_any_split),
        cmocka_unit_test(test_chunked_missing_crlf_after_data_returns_400),
        cmocka_unit_test(test_chunked_returns_data_as_slices_of_the_input),
        cmocka_unit_test(test_chunked_trailer_section_over_64k_returns_400),
        cmocka_unit_test(test_chunked_size_line_over_4k_returns_400),
        cmocka_unit_test(test_chunked_empty_input_consumes_nothing),
        cmocka_unit_test(test_status_reasons_follow_rfc_9110),
        cmocka_unit_test(test_token_chars_are_rfc_9110_tchar),
        cmocka_unit_test(test_wv_str_compares_bytes_and_ascii_case),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
