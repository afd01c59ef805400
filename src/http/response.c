/*
 * Responses: the head (status line, Server, Date, length or chunking,
 * request id, the handler's headers, Connection), bodies from memory,
 * streamed chunked bodies and Server-Sent Events, redirects, cookies, error
 * pages, and the flush of a connection's pipelined batch in one writev.
 *
 * Small responses are appended to the connection's output buffer and leave
 * with the batch; a body over INLINE_MAX goes out with its head at once in
 * one writev, uncopied.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>

#include "http/http_internal.h"

enum { INLINE_MAX = 64 * 1024 };

/* ------------------------------------------------------------- Date */

static _Thread_local time_t date_sec = -1;
static _Thread_local char date_buf[40];

const char *http_date_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec != date_sec) {
        struct tm tm;
        gmtime_r(&ts.tv_sec, &tm);
        strftime(date_buf, sizeof date_buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        date_sec = ts.tv_sec;
    }
    return date_buf;
}

/* ------------------------------------------------------------ basics */

void res_init(wv_res *res, conn *c, wv_req *req)
{
    memset(res, 0, sizeof *res);
    res->c = c;
    res->req = req;
    res->length = -1;
    res->head_only = req && wv_str_eq_cstr(req->h.method, "HEAD");
    res->x = req ? req->x : NULL;
}

/* A JSON body's buffer comes from the server's spare one when it has it,
 * and a small one goes back there: a malloc, a realloc and a free per
 * JSON response otherwise (a twentieth of /json's user-space work). A
 * handler that waits keeps its buffer; the next response makes its own. */
enum { JSON_SPARE_MAX = 16 * 1024 };

void res_finish(wv_res *res)
{
    wv_buf_free(&res->headers);
    wv_buf_free(&res->trailers);
    http_server *s = res->c ? res->c->srv : NULL;
    if (s && res->json_buf.p && !s->json_spare.p && res->json_buf.cap <= JSON_SPARE_MAX) {
        s->json_spare = res->json_buf;
        res->json_buf = (wv_buf){0};
    }
    wv_buf_free(&res->json_buf);
}

wv_json *wv_res_json_writer(wv_res *res)
{
    http_server *s = res->c ? res->c->srv : NULL;
    if (s && !res->json_buf.p && s->json_spare.p) {
        res->json_buf = s->json_spare;
        s->json_spare = (wv_buf){0};
    }
    wv_buf_reset(&res->json_buf);
    wv_json_init(&res->json, &res->json_buf);
    return &res->json;
}

int wv_res_json_send(wv_res *res, int status)
{
    int rc = wv_json_finish(&res->json);
    if (rc < 0) {
        wv_fail(-EINVAL, "the handler wrote an incomplete or invalid JSON document (%s)",
                wv_strerror(rc));
        wv_res_error(res, -EFAULT);
        return -EINVAL;
    }
    return wv_res_send(res, status, "application/json", res->json_buf.p, res->json_buf.n);
}

bool wv_res_started(const wv_res *res)
{
    return res->started;
}

void wv_res_on_done(wv_res *res, void (*fn)(void *arg), void *arg)
{
    res->on_done = fn;
    res->on_done_arg = arg;
}

int wv_res_upgrade(wv_res *res, wv_stream **stream, wv_buf *rest)
{
    *stream = NULL;
    if (res->started)
        return -EALREADY;
    if (res->x)
        return wv_fail(-EPROTONOSUPPORT, "HTTP/%d has no protocol upgrade", res->x->version / 10);
    conn *c = res->c;
    wv_req *req = res->req;
    res->upgraded = true;
    c->upgraded = true;
    int rc = wv_res_send(res, 101, NULL, NULL, 0);
    if (rc == 0)
        rc = res_flush(c);
    if (rc < 0)
        return rc;
    /* bytes that came right behind the head are the new protocol's */
    size_t at = c->rstart + req->head_len;
    if (c->rlen > at) {
        if (wv_buf_append(rest, c->rbuf + at, c->rlen - at) < 0)
            return -ENOMEM;
        c->rlen = at;
    }
    /* the connection is the other protocol's until it closes: give back
     * what only HTTP needed, so an idle upgraded connection pins less (the
     * request's bytes and headers stay: the handler holds slices) */
    wv_buf_free(&c->out);
    wv_buf_free(&res->headers);
    *stream = c->s;
    return 0;
}

int wv_res_status(const wv_res *res)
{
    return res->status;
}

int res_flush(conn *c)
{
    if (c->out.n == 0 || c->dead) {
        c->out.n = 0;
        return c->dead ? -EPIPE : 0;
    }
    ssize_t w = wv_stream_write(c->s, c->out.p, c->out.n);
    c->out.n = 0;
    if (w < 0) {
        c->dead = true;
        return (int)w;
    }
    if (c->out.cap > 1024 * 1024)
        wv_buf_free(&c->out); /* do not keep a huge batch buffer around */
    return 0;
}

static bool token_char(unsigned char ch)
{
    return http_token_char(ch);
}

static bool header_value_ok(const char *v)
{
    for (; *v; v++) {
        unsigned char ch = (unsigned char)*v;
        if (ch < 0x20 && ch != '\t')
            return false;
        if (ch == 0x7f)
            return false;
    }
    return true;
}

int wv_res_header(wv_res *res, const char *name, const char *value)
{
    if (res->started)
        return -EALREADY;
    if (!name || !*name || !value)
        return -EINVAL;
    for (const char *p = name; *p; p++)
        if (!token_char((unsigned char)*p))
            return wv_fail(-EINVAL, "bad header name '%s'", name);
    if (strcasecmp(name, "Content-Encoding") == 0)
        res->encoded = true; /* the handler encoded it: leave it alone */
    if (!header_value_ok(value))
        return wv_fail(-EINVAL, "header %s: control characters in its value", name);
    wv_buf *b = &res->headers;
    if (wv_buf_puts(b, name) < 0 || wv_buf_append(b, ": ", 2) < 0 || wv_buf_puts(b, value) < 0 ||
        wv_buf_append(b, "\r\n", 2) < 0)
        return -ENOMEM;
    return 0;
}

/* Copy n bytes to p; the position after them. */
static inline char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* Fields HTTP/2 forbids (RFC 9113 8.2.2): the connection's own. */
static bool connection_specific(const char *name, size_t n)
{
    static const char *const names[] = {"connection", "keep-alive", "proxy-connection",
                                        "transfer-encoding", "upgrade"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strlen(names[i]) == n && strncasecmp(names[i], name, n) == 0)
            return true;
    return false;
}

/* "Name: value\r\n" lines (validated by wv_res_header or wv_res_trailer)
 * as fields with lower-case names, written to `lower` (lines->n bytes);
 * connection-specific ones are left out. The number of fields. */
static int lines_to_fields(const wv_buf *lines, char *lower, wv_http_field *f)
{
    int n = 0;
    const char *p = lines->p, *stop = p ? p + lines->n : p;
    char *lp = lower;
    while (p && p < stop) {
        const char *colon = memchr(p, ':', (size_t)(stop - p));
        const char *eol = memchr(p, '\r', (size_t)(stop - p));
        if (!colon || !eol || colon > eol)
            break;
        size_t nn = (size_t)(colon - p);
        const char *v = colon + 2;
        if (!connection_specific(p, nn)) {
            for (size_t i = 0; i < nn; i++)
                lp[i] = (char)tolower((unsigned char)p[i]);
            f[n++] = (wv_http_field){{lp, nn}, {v, (size_t)(eol - v)}};
            lp += nn;
        }
        p = eol + 2;
    }
    return n;
}

/* The trailers through the exchange (HTTP/2: HEADERS with END_STREAM),
 * ending the body; a plain end when there are none or the protocol takes
 * none. */
static int end_exchange(wv_res *res)
{
    const wv_http_exchange_ops *ops = res->x->ops;
    if (!res->trailers.n || !ops->trailers)
        return ops->end(res->x->x);
    int lines = 0;
    for (size_t i = 0; i < res->trailers.n; i++)
        lines += res->trailers.p[i] == '\n';
    wv_http_field *f = wv_req_alloc(res->req, (size_t)(lines ? lines : 1) * sizeof *f);
    char *lower = wv_req_alloc(res->req, res->trailers.n + 1);
    if (!f || !lower)
        return -ENOMEM;
    int n = lines_to_fields(&res->trailers, lower, f);
    return ops->trailers(res->x->x, f, n);
}

/* A response whose head ended its HTTP/2 stream: HEAD, 1xx, 204, 304. */
static bool exchange_no_body(const wv_res *res)
{
    return res->head_only || res->status < 200 || res->status == 204 || res->status == 304;
}

/* The head through the exchange (HTTP/2): the same fields put_head
 * writes, as name-value pairs with lower-case names. end: no body. */
/* u in decimal, written to end at `end`; returns where it starts (no
 * printf: a head is built per response). */
static char *decimal(uint64_t u, char *end)
{
    do {
        *--end = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    return end;
}

static int put_head_exchange(wv_res *res, int status, const char *ctype, int64_t body_len, bool end)
{
    http_server *s = res->c->srv;
    wv_req *req = res->req;
    bool no_body = status < 200 || status == 204 || status == 304;
    if (!req->id.n && wv_req_header(req, "X-Request-Id").p)
        wv_req_id(req); /* echo a sane X-Request-Id the client sent */
    int lines = 0;
    for (size_t i = 0; i < res->headers.n; i++)
        lines += res->headers.p[i] == '\n';
    wv_http_field *f = wv_req_alloc(req, (size_t)(lines + 5) * sizeof *f);
    char *lower = wv_req_alloc(req, res->headers.n + 1);
    char *len = wv_req_alloc(req, 24);
    if (!f || !lower || !len)
        return -ENOMEM;
    int n = 0;
    f[n++] = (wv_http_field){WV_STR("server"), {s->o.server_name, s->server_name_len}};
    const char *date = http_date_now();
    char *date_copy = wv_req_alloc(req, 30);
    if (!date_copy)
        return -ENOMEM;
    memcpy(date_copy, date, 30);
    f[n++] = (wv_http_field){WV_STR("date"), {date_copy, 29}};
    if (ctype)
        f[n++] = (wv_http_field){WV_STR("content-type"), {ctype, strlen(ctype)}};
    if (body_len >= 0 && !no_body) {
        char *d = decimal((uint64_t)body_len, len + 24);
        f[n++] = (wv_http_field){WV_STR("content-length"), {d, (size_t)(len + 24 - d)}};
    }
    if (req->id.n)
        f[n++] = (wv_http_field){WV_STR("x-request-id"), req->id};
    n += lines_to_fields(&res->headers, lower, f + n);
    res->status = status;
    res->started = true;
    return res->x->ops->head(res->x->x, status, f, n, end || no_body || res->head_only);
}

/* Append the head. body_len < 0: streamed (chunked on 1.1). Every length is
 * known before the first byte, so the head is written by hand into one
 * reservation: a buffer call per line was a sixth of a small response's
 * user-space instructions. */
static int put_head(wv_res *res, int status, const char *ctype, int64_t body_len)
{
    conn *c = res->c;
    http_server *s = c->srv;
    wv_req *req = res->req;
    wv_buf *b = &c->out;
    const char *reason = http_status_reason(status);
    int minor = req ? req->h.minor : 1;
    if (s->stopping || (req && (req->body_refused || req->body_timed_out)))
        res->close = true; /* the body's rest is still on the wire: no next request */
    bool no_body = status < 200 || status == 204 || status == 304;
    if (body_len < 0) {
        if (minor >= 1)
            res->chunked = true;
        else
            res->close = true; /* HTTP/1.0: the body ends with the connection */
    }
    if (req && !req->id.n) {
        /* echo a sane X-Request-Id the client sent */
        wv_str v = wv_req_header(req, "X-Request-Id");
        if (v.p)
            wv_req_id(req);
    }
    size_t rl = strlen(reason), sl = s->server_name_len, cl = ctype ? strlen(ctype) : 0;
    size_t idn = req ? req->id.n : 0;
    const char *conn_line = res->upgraded ? NULL
                            : res->close  ? "Connection: close\r\n"
                            : minor == 0  ? "Connection: keep-alive\r\n"
                                          : NULL;
    size_t connl = conn_line ? strlen(conn_line) : 0;
    /* status line 13 + reason + 2, Server 8 + name + 2, Date 6 + 29 + 2,
     * Content-Type 14 + 2, Content-Length 16 + 20 + 2 or chunked 28, the id
     * 14 + 2, the blank line 2 */
    int rc = wv_buf_reserve(b, 160 + rl + sl + cl + idn + res->headers.n + connl);
    if (rc < 0)
        return rc;
    const char *date = http_date_now();
    char *p = b->p + b->n;
    p = put(p, "HTTP/1.1 ", 9);
    *p++ = (char)('0' + status / 100 % 10);
    *p++ = (char)('0' + status / 10 % 10);
    *p++ = (char)('0' + status % 10);
    *p++ = ' ';
    p = put(p, reason, rl);
    p = put(p, "\r\nServer: ", 10);
    p = put(p, s->o.server_name, sl);
    p = put(p, "\r\nDate: ", 8);
    p = put(p, date, 29);
    p = put(p, "\r\n", 2);
    if (ctype) {
        p = put(p, "Content-Type: ", 14);
        p = put(p, ctype, cl);
        p = put(p, "\r\n", 2);
    }
    if (body_len >= 0 && !no_body) {
        char digits[20], *d = decimal((uint64_t)body_len, digits + sizeof digits);
        p = put(p, "Content-Length: ", 16);
        p = put(p, d, (size_t)(digits + sizeof digits - d));
        p = put(p, "\r\n", 2);
    } else if (res->chunked) {
        p = put(p, "Transfer-Encoding: chunked\r\n", 28);
    }
    if (idn) {
        p = put(p, "X-Request-Id: ", 14);
        p = put(p, req->id.p, idn);
        p = put(p, "\r\n", 2);
    }
    if (res->headers.n)
        p = put(p, res->headers.p, res->headers.n);
    if (conn_line) /* an upgrade's Connection: Upgrade is among the handler's headers */
        p = put(p, conn_line, connl);
    p = put(p, "\r\n", 2);
    b->n = (size_t)(p - b->p);
    res->status = status;
    res->started = true;
    return 0;
}

int wv_res_send(wv_res *res, int status, const char *content_type, const void *body, size_t n)
{
    if (res->started)
        return -EALREADY;
    if (status < 100 || status > 999)
        return -EINVAL;
    conn *c = res->c;
    if (n >= 1024 && res->req && !c->srv->o.no_compression && compress_type_ok(content_type) &&
        !res->encoded) {
        /* negotiated compression; Vary either way, caches must know */
        wv_res_header(res, "Vary", "Accept-Encoding");
        int enc = compress_pick(wv_req_header(res->req, "Accept-Encoding"));
        const char *z;
        size_t zn;
        if (enc != ENC_NONE && compress_body(res->req, enc, body, n, &z, &zn) == 0) {
            wv_res_header(res, "Content-Encoding", compress_name(enc));
            body = z;
            n = zn;
        }
    }
    bool no_body = res->head_only || status < 200 || status == 204 || status == 304;
    if (res->x) {
        /* trailers keep the stream open past an empty body */
        bool ends = no_body || (n == 0 && !(res->trailers.n && res->x->ops->trailers));
        int rc = put_head_exchange(res, status, content_type, (int64_t)n, ends);
        if (rc < 0 || ends)
            return rc;
        res->body_bytes = (int64_t)n;
        rc = n ? res->x->ops->write(res->x->x, body, n) : 0;
        if (rc == 0)
            rc = end_exchange(res);
        return rc;
    }
    int rc = put_head(res, status, content_type, (int64_t)n);
    if (rc < 0)
        return rc;
    if (no_body || n == 0)
        return 0;
    res->body_bytes = (int64_t)n;
    if (n <= INLINE_MAX)
        return wv_buf_append(&c->out, body, n);
    /* big: head and body in one writev, the body uncopied */
    struct iovec iov[2] = {{c->out.p, c->out.n}, {(void *)body, n}};
    ssize_t w = wv_stream_writev(c->s, iov, 2);
    c->out.n = 0;
    if (w < 0) {
        c->dead = true;
        return (int)w;
    }
    return 0;
}

/* The head of a file response, sent now with MSG_MORE so the kernel packs
 * it with the first bytes sendfile sends (nginx's tcp_nopush). */
int res_send_file_head(wv_res *res, int status, const char *content_type, int64_t len)
{
    int rc = put_head(res, status, content_type, len);
    if (rc < 0)
        return rc;
    conn *c = res->c;
    ssize_t w = wv_stream_write_more(c->s, c->out.p, c->out.n);
    if (w < 0)
        rc = (int)w;
    c->out.n = 0;
    if (rc < 0)
        c->dead = true;
    return rc < 0 ? rc : 0;
}

int wv_res_text(wv_res *res, int status, const char *text)
{
    return wv_res_send(res, status, "text/plain; charset=utf-8", text, strlen(text));
}

int wv_res_json(wv_res *res, int status, const char *json)
{
    return wv_res_send(res, status, "application/json", json, strlen(json));
}

int wv_res_redirect(wv_res *res, int status, const char *location)
{
    if (status != 301 && status != 302 && status != 303 && status != 307 && status != 308)
        return -EINVAL;
    int rc = wv_res_header(res, "Location", location);
    if (rc < 0)
        return rc;
    return wv_res_send(res, status, NULL, NULL, 0);
}

/* ----------------------------------------------------------- errors */

int wv_http_status_for(int err)
{
    switch (err) {
    case -EINVAL:
    case -EPROTO:
    case -EILSEQ:
        return 400;
    case -EACCES:
    case -EPERM:
        return 403;
    case -ENOENT:
        return 404;
    case -EOPNOTSUPP:
        return 405;
    case -EEXIST:
        return 409;
    case -EMSGSIZE:
    case -E2BIG:
        return 413;
    case -ERANGE:
        return 422;
    case -EAGAIN:
        return 429;
    case -ETIMEDOUT:
        return 504;
    case -ECANCELED:
    case -ESHUTDOWN:
        return 503;
    case -ECONNREFUSED:
    case -EHOSTUNREACH:
    case -ECONNRESET:
        return 502;
    default:
        return 500;
    }
}

static int send_error(wv_res *res, int status, const char *detail)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_object_begin(&j);
    wv_json_key(&j, "detail");
    wv_json_string(&j, detail && *detail ? detail : http_status_reason(status));
    wv_json_object_end(&j);
    int rc = wv_json_finish(&j);
    if (rc == 0)
        rc = wv_res_send(res, status, "application/json", b.p, b.n);
    else
        rc = wv_res_send(res, status, "application/json", "{}", 2); /* out of memory */
    wv_buf_free(&b);
    return rc;
}

int wv_res_error(wv_res *res, int err)
{
    if (res->started)
        return -EALREADY;
    int status = wv_http_status_for(err);
    if (err == -ETIMEDOUT && res->req && res->req->body_timed_out) {
        status = 408; /* the client was too slow, not an upstream */
        res->close = true;
    }
    const char *detail = wv_errmsg();
    if (status >= 500 && status != 503 && status != 504)
        wv_warn("%.*s %.*s: %d %s", res->req ? (int)res->req->h.method.n : 0,
                res->req ? res->req->h.method.p : "", res->req ? (int)res->req->h.target.n : 0,
                res->req ? res->req->h.target.p : "", status, *detail ? detail : wv_strerror(err));
    if (status >= 500 && status != 503 && status != 504 && status != 502)
        detail = NULL; /* do not leak internals to the client */
    return send_error(res, status, detail);
}

/* A response before (or without) a parsed request: parse errors, 408. */
int res_simple_error(conn *c, int status, const char *detail, bool close)
{
    wv_res res;
    res_init(&res, c, NULL);
    res.close = close;
    int rc = send_error(&res, status, detail);
    res_finish(&res);
    if (close)
        res_flush(c);
    return rc;
}

/* ---------------------------------------------------------- cookies */

static bool cookie_octet(unsigned char ch)
{
    return ch == 0x21 || (ch >= 0x23 && ch <= 0x2b) || (ch >= 0x2d && ch <= 0x3a) ||
           (ch >= 0x3c && ch <= 0x5b) || (ch >= 0x5d && ch <= 0x7e);
}

int wv_res_cookie(wv_res *res, const char *name, const char *value, const wv_cookie *o)
{
    if (!name || !*name || !value)
        return -EINVAL;
    for (const char *p = name; *p; p++)
        if (!token_char((unsigned char)*p))
            return wv_fail(-EINVAL, "bad cookie name '%s'", name);
    for (const char *p = value; *p; p++)
        if (!cookie_octet((unsigned char)*p))
            return wv_fail(-EINVAL,
                           "cookie %s: value needs encoding (no spaces, quotes, "
                           "commas, semicolons or backslashes)",
                           name);
    wv_buf b = {0};
    wv_buf_printf(&b, "%s=%s", name, value);
    if (o) {
        if (o->path && header_value_ok(o->path) && !strchr(o->path, ';'))
            wv_buf_printf(&b, "; Path=%s", o->path);
        if (o->domain && header_value_ok(o->domain) && !strchr(o->domain, ';'))
            wv_buf_printf(&b, "; Domain=%s", o->domain);
        if (o->max_age > 0)
            wv_buf_printf(&b, "; Max-Age=%lld", (long long)o->max_age);
        else if (o->max_age < 0)
            wv_buf_puts(&b, "; Max-Age=0");
        if (o->secure)
            wv_buf_puts(&b, "; Secure");
        if (o->http_only)
            wv_buf_puts(&b, "; HttpOnly");
        if (o->same_site && (!strcmp(o->same_site, "Strict") || !strcmp(o->same_site, "Lax") ||
                             !strcmp(o->same_site, "None")))
            wv_buf_printf(&b, "; SameSite=%s", o->same_site);
    }
    int rc = -ENOMEM;
    if (wv_buf_append(&b, "", 1) == 0)
        rc = wv_res_header(res, "Set-Cookie", b.p);
    wv_buf_free(&b);
    return rc;
}

/* -------------------------------------------------------- trailers */

/* Did the request say it takes trailers ("TE: trailers", RFC 9110 10.1.4)? */
static bool te_trailers(const wv_req *req)
{
    wv_str te = req ? wv_req_header(req, "TE") : (wv_str){0};
    for (size_t i = 0; te.p && i < te.n;) {
        while (i < te.n && (te.p[i] == ' ' || te.p[i] == '\t' || te.p[i] == ','))
            i++;
        size_t from = i;
        while (i < te.n && te.p[i] != ',' && te.p[i] != ';' && te.p[i] != ' ' && te.p[i] != '\t')
            i++;
        if (i - from == 8 && strncasecmp(te.p + from, "trailers", 8) == 0)
            return true;
        while (i < te.n && te.p[i] != ',')
            i++;
    }
    return false;
}

/* Fields a trailer must not carry (RFC 9110 6.5.1): framing, routing,
 * the connection's own, and what the head already settled. */
static bool trailer_forbidden(const char *name)
{
    static const char *const names[] = {"content-length",
                                        "content-type",
                                        "content-encoding",
                                        "content-range",
                                        "host",
                                        "te",
                                        "trailer",
                                        "transfer-encoding",
                                        "connection",
                                        "keep-alive",
                                        "proxy-connection",
                                        "upgrade",
                                        "set-cookie",
                                        "cache-control",
                                        "expect"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (strcasecmp(names[i], name) == 0)
            return true;
    return false;
}

int wv_res_trailer(wv_res *res, const char *name, const char *value)
{
    if (res->x && res->started && !res->streaming && exchange_no_body(res))
        return 0; /* HEAD over HTTP/2: the head ended the stream, nothing follows */
    if (res->started && !res->streaming)
        return -EALREADY;
    if (!name || !*name || !value)
        return -EINVAL;
    for (const char *p = name; *p; p++)
        if (!token_char((unsigned char)*p))
            return wv_fail(-EINVAL, "bad trailer name '%s'", name);
    if (trailer_forbidden(name))
        return wv_fail(-EINVAL, "%s cannot be a trailer", name);
    if (!header_value_ok(value))
        return wv_fail(-EINVAL, "trailer %s: control characters in its value", name);
    wv_buf *b = &res->trailers;
    if (wv_buf_puts(b, name) < 0 || wv_buf_append(b, ": ", 2) < 0 || wv_buf_puts(b, value) < 0 ||
        wv_buf_append(b, "\r\n", 2) < 0)
        return -ENOMEM;
    return 0;
}

/* -------------------------------------------------------- streaming */

int wv_res_begin(wv_res *res, int status, const char *content_type)
{
    return wv_res_begin_length(res, status, content_type, -1);
}

int wv_res_begin_length(wv_res *res, int status, const char *content_type, int64_t length)
{
    if (res->started)
        return -EALREADY;
    if (res->x) {
        int rc = put_head_exchange(res, status, content_type, length < 0 ? -1 : length, false);
        if (rc < 0)
            return rc;
        res->streaming = !exchange_no_body(res); /* else the head ended the stream */
        res->length = length < 0 ? -1 : length;
        return 0;
    }
    int rc = put_head(res, status, content_type, length < 0 ? -1 : length);
    if (rc < 0)
        return rc;
    res->streaming = true;
    res->length = length < 0 ? -1 : length;
    return res_flush(res->c);
}

void res_abort(wv_res *res)
{
    if (res->x) {
        res->streaming = false;
        res->x->ops->abort(res->x->x); /* this stream only: the connection goes on */
        return;
    }
    res->streaming = false;
    res->close = true;
    res->c->dead = true; /* no more bytes: the peer must see the body cut */
}

int wv_res_write(wv_res *res, const void *data, size_t n)
{
    if (res->x && res->started && !res->streaming && exchange_no_body(res))
        return 0; /* HEAD over HTTP/2: the head went with END_STREAM */
    if (!res->streaming)
        return -EINVAL;
    if (res->x) {
        if (n == 0)
            return 0;
        if (res->length >= 0 && (uint64_t)n > (uint64_t)(res->length - res->body_bytes))
            return wv_fail(-EMSGSIZE,
                           "%zu more bytes would pass the promised Content-Length of %lld", n,
                           (long long)res->length);
        res->body_bytes += (int64_t)n;
        return res->x->ops->write(res->x->x, data, n);
    }
    if (res->c->dead)
        return -EPIPE;
    if (n == 0 || res->head_only)
        return 0;
    if (res->length >= 0 && (uint64_t)n > (uint64_t)(res->length - res->body_bytes))
        return wv_fail(-EMSGSIZE, "%zu more bytes would pass the promised Content-Length of %lld",
                       n, (long long)res->length);
    res->body_bytes += (int64_t)n;
    ssize_t w;
    if (res->chunked) {
        char size[24];
        int k = snprintf(size, sizeof size, "%zx\r\n", n);
        struct iovec iov[3] = {{size, (size_t)k}, {(void *)data, n}, {"\r\n", 2}};
        w = wv_stream_writev(res->c->s, iov, 3);
    } else {
        w = wv_stream_write(res->c->s, data, n);
    }
    if (w < 0) {
        res->c->dead = true;
        return (int)w;
    }
    return 0;
}

int wv_res_end(wv_res *res)
{
    if (res->x && res->started && !res->streaming && exchange_no_body(res))
        return 0;
    if (!res->streaming)
        return -EINVAL;
    res->streaming = false;
    if (res->x) {
        if (res->length >= 0 && res->body_bytes < res->length) {
            res->x->ops->abort(res->x->x);
            return wv_fail(-EIO, "the response ended after %lld of its %lld bytes",
                           (long long)res->body_bytes, (long long)res->length);
        }
        return end_exchange(res);
    }
    if (res->c->dead)
        return -EPIPE;
    if (res->length >= 0 && res->body_bytes < res->length && !res->head_only) {
        res_abort(res);
        return wv_fail(-EIO, "the response ended after %lld of its %lld bytes",
                       (long long)res->body_bytes, (long long)res->length);
    }
    if (res->chunked && !res->head_only && res->trailers.n && te_trailers(res->req)) {
        /* the last chunk, then the trailer section (RFC 9112 7.1.2) */
        struct iovec iov[3] = {{"0\r\n", 3}, {res->trailers.p, res->trailers.n}, {"\r\n", 2}};
        ssize_t w = wv_stream_writev(res->c->s, iov, 3);
        if (w < 0) {
            res->c->dead = true;
            return (int)w;
        }
    } else if (res->chunked && !res->head_only) {
        ssize_t w = wv_stream_write(res->c->s, "0\r\n\r\n", 5);
        if (w < 0) {
            res->c->dead = true;
            return (int)w;
        }
    }
    return 0;
}

int wv_res_sse_begin(wv_res *res)
{
    int rc = wv_res_header(res, "Cache-Control", "no-cache");
    if (rc < 0)
        return rc;
    return wv_res_begin(res, 200, "text/event-stream");
}

int wv_res_sse_send(wv_res *res, const char *event, const char *data)
{
    wv_buf b = {0};
    if (event) {
        if (strpbrk(event, "\r\n"))
            return -EINVAL;
        wv_buf_printf(&b, "event: %s\n", event);
    }
    const char *p = data ? data : "";
    for (;;) {
        size_t line = strcspn(p, "\r\n");
        wv_buf_puts(&b, "data: ");
        wv_buf_append(&b, p, line);
        wv_buf_append(&b, "\n", 1);
        p += line;
        if (*p == '\r' && p[1] == '\n')
            p += 2;
        else if (*p)
            p++;
        else
            break;
    }
    int rc = wv_buf_append(&b, "\n", 1);
    if (rc == 0)
        rc = wv_res_write(res, b.p, b.n);
    wv_buf_free(&b);
    return rc;
}
