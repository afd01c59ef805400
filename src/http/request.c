/*
 * Requests: accessors, path and query parameters (decoded on demand into
 * the request arena), the body (whole or streamed, Content-Length or
 * chunked, with Expect: 100-continue answered on first read), request ids,
 * and the per-request arena.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/http_internal.h"

enum { ARENA_BLOCK = 4096 };

void req_init(wv_req *req, conn *c)
{
    /* not the whole struct: the route match's parameter arrays are most of
     * its kilobyte and are only read up to the count a match wrote */
    memset(req, 0, offsetof(wv_req, id_buf));
    req->c = c;
    req->m.handler = NULL;
    req->m.pattern = NULL;
    req->m.nparams = 0;
    req->m.allow[0] = '\0';
}

void req_finish(wv_req *req)
{
    for (req_state *st = req->arena ? req->arena->state : NULL; st; st = st->next)
        if (st->free_fn)
            st->free_fn(st->value);
    while (req->arena) {
        arena_block *b = req->arena;
        req->arena = b->next;
        free(b);
    }
    wv_buf_free(&req->body);
    wv_buf_free(&req->trailer_lines);
}

void *wv_req_alloc(wv_req *req, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    arena_block *b = req->arena;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > ARENA_BLOCK ? n : ARENA_BLOCK;
        b = malloc(sizeof *b + cap);
        if (!b)
            return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = req->arena;
        b->state = req->arena ? req->arena->state : NULL;
        req->arena = b;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

int wv_req_state_set(wv_req *req, const void *key, void *value, void (*free_fn)(void *value))
{
    for (req_state *st = req->arena ? req->arena->state : NULL; st; st = st->next) {
        if (st->key == key) {
            if (st->free_fn && st->value != value)
                st->free_fn(st->value);
            st->value = value;
            st->free_fn = free_fn;
            return 0;
        }
    }
    req_state *st = wv_req_alloc(req, sizeof *st);
    if (!st) {
        if (free_fn)
            free_fn(value);
        return -ENOMEM;
    }
    /* the allocation made req->arena non-NULL (and may have begun a block,
     * which took the list's head over) */
    *st = (req_state){.key = key, .value = value, .free_fn = free_fn, .next = req->arena->state};
    req->arena->state = st;
    return 0;
}

void *wv_req_state(const wv_req *req, const void *key)
{
    for (const req_state *st = req->arena ? req->arena->state : NULL; st; st = st->next)
        if (st->key == key)
            return st->value;
    return NULL;
}

wv_str wv_req_method(const wv_req *req)
{
    return req->h.method;
}

wv_str wv_req_target(const wv_req *req)
{
    return req->h.target;
}

wv_str wv_req_path(const wv_req *req)
{
    return req->h.path;
}

wv_str wv_req_query(const wv_req *req)
{
    return req->h.query;
}

int wv_req_version(const wv_req *req)
{
    return req->x ? req->x->version : 10 + req->h.minor;
}

wv_str wv_req_route(const wv_req *req)
{
    return req->route_pattern;
}

const char *wv_req_peer(const wv_req *req)
{
    return req->c->peer;
}

int wv_req_local_port(const wv_req *req)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (!req->c->s) /* no socket: the test client's (testclient.c) */
        return wv_fail(-ENOTCONN, "the request came through no socket");
    int rc = wv_stream_local_addr(req->c->s, &ss, &len);
    if (rc < 0)
        return rc;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return -EAFNOSUPPORT;
}

void *wv_req_context(const wv_req *req)
{
    return req->c->srv->o.context;
}

int64_t wv_req_start(const wv_req *req)
{
    return req->start_ns;
}

bool wv_req_is_tls(const wv_req *req)
{
    return req->c->s && wv_stream_is_tls(req->c->s);
}

wv_str wv_req_trailer(const wv_req *req, const char *name)
{
    if (!req->body_done)
        return (wv_str){NULL, 0};
    if (req->x)
        return req->x->ops->trailer ? req->x->ops->trailer(req->x->x, name) : (wv_str){NULL, 0};
    /* "Name: value\r\n" lines the chunked decoder checked */
    wv_str want = {name, strlen(name)};
    if (!req->trailer_lines.n)
        return (wv_str){NULL, 0};
    const char *p = req->trailer_lines.p, *end = p + req->trailer_lines.n;
    while (p < end) {
        const char *eol = memchr(p, '\r', (size_t)(end - p));
        const char *colon = memchr(p, ':', (size_t)(end - p));
        if (!eol || !colon || colon > eol)
            break;
        if (wv_str_ieq((wv_str){p, (size_t)(colon - p)}, want)) {
            const char *v = colon + 1, *ve = eol;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            return (wv_str){v, (size_t)(ve - v)};
        }
        p = eol + 2;
    }
    return (wv_str){NULL, 0};
}

wv_str wv_req_header(const wv_req *req, const char *name)
{
    size_t n = strlen(name);
    wv_str want = {name, n};
    for (int i = 0; i < req->h.nheaders; i++)
        if (wv_str_ieq(req->h.headers[i].name, want))
            return req->h.headers[i].value;
    return (wv_str){NULL, 0};
}

int wv_req_header_count(const wv_req *req)
{
    return req->h.nheaders;
}

void wv_req_header_at(const wv_req *req, int i, wv_str *name, wv_str *value)
{
    if (i < 0 || i >= req->h.nheaders) {
        *name = *value = (wv_str){NULL, 0};
        return;
    }
    *name = req->h.headers[i].name;
    *value = req->h.headers[i].value;
}

/* ------------------------------------------------------------- params */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decode into the arena ('+' too, for queries). -EINVAL for a bad
 * escape. */
static int decode(wv_req *req, wv_str in, bool plus, wv_str *out)
{
    if (!memchr(in.p ? in.p : "", '%', in.n) && !(plus && memchr(in.p ? in.p : "", '+', in.n))) {
        *out = in;
        return 0;
    }
    char *d = wv_req_alloc(req, in.n + 1);
    if (!d)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < in.n; i++) {
        char ch = in.p[i];
        if (ch == '%') {
            int hi = i + 2 < in.n ? hexval(in.p[i + 1]) : -1;
            int lo = i + 2 < in.n ? hexval(in.p[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return -EINVAL;
            d[k++] = (char)(hi * 16 + lo);
            i += 2;
        } else if (plus && ch == '+') {
            d[k++] = ' ';
        } else {
            d[k++] = ch;
        }
    }
    d[k] = '\0';
    *out = (wv_str){d, k};
    return 0;
}

int wv_req_param(wv_req *req, const char *name, wv_str *out)
{
    for (int i = 0; i < req->m.nparams; i++) {
        if (wv_str_eq_cstr(req->m.names[i], name)) {
            int rc = decode(req, req->m.values[i], false, out);
            if (rc == -EINVAL)
                return wv_fail(-EINVAL, "path parameter '%s' has a bad %%-escape", name);
            return rc;
        }
    }
    return -ENOENT;
}

static int parse_i64(wv_str s, int64_t *out)
{
    if (s.n == 0 || s.n > 20)
        return -EINVAL;
    size_t i = 0;
    bool neg = false;
    if (s.p[0] == '-' || s.p[0] == '+') {
        neg = s.p[0] == '-';
        i = 1;
        if (s.n == 1)
            return -EINVAL;
    }
    uint64_t v = 0;
    for (; i < s.n; i++) {
        unsigned d = (unsigned)(s.p[i] - '0');
        if (d > 9)
            return -EINVAL;
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    if (neg ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        return -EINVAL;
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int wv_req_param_i64(wv_req *req, const char *name, int64_t *out)
{
    wv_str v;
    int rc = wv_req_param(req, name, &v);
    if (rc < 0)
        return rc;
    if (parse_i64(v, out) < 0)
        return wv_fail(-EINVAL, "path parameter '%s' must be an integer, got '%.*s'", name,
                       (int)(v.n > 64 ? 64 : v.n), v.p);
    return 0;
}

int wv_req_query_param(wv_req *req, const char *name, wv_str *out)
{
    size_t nlen = strlen(name);
    if (!req->h.query.p)
        return -ENOENT;
    const char *p = req->h.query.p, *end = p + req->h.query.n;
    while (p && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        wv_str key = {p, (size_t)((eq ? eq : stop) - p)};
        wv_str dkey;
        if (decode(req, key, true, &dkey) == 0 && dkey.n == nlen &&
            memcmp(dkey.p, name, nlen) == 0) {
            wv_str raw = eq ? (wv_str){eq + 1, (size_t)(stop - eq - 1)} : (wv_str){"", 0};
            int rc = decode(req, raw, true, out);
            if (rc == -EINVAL)
                return wv_fail(-EINVAL, "query parameter '%s' has a bad %%-escape", name);
            return rc;
        }
        p = amp ? amp + 1 : end;
    }
    return -ENOENT;
}

int wv_req_query_i64(wv_req *req, const char *name, int64_t def, int64_t *out)
{
    wv_str v;
    int rc = wv_req_query_param(req, name, &v);
    if (rc == -ENOENT) {
        *out = def;
        return 0;
    }
    if (rc < 0)
        return rc;
    if (parse_i64(v, out) < 0)
        return wv_fail(-EINVAL, "query parameter '%s' must be an integer, got '%.*s'", name,
                       (int)(v.n > 64 ? 64 : v.n), v.p);
    return 0;
}

/* --------------------------------------------------------------- ids */

static bool sane_id(wv_str v)
{
    if (v.n == 0 || v.n > 36)
        return false;
    for (size_t i = 0; i < v.n; i++) {
        char ch = v.p[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
              ch == '-' || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

static _Thread_local uint64_t id_counter;

wv_str wv_req_id(const wv_req *creq)
{
    wv_req *req = (wv_req *)creq;
    if (req->id.n)
        return req->id;
    wv_str v = wv_req_header(req, "X-Request-Id");
    if (v.p && sane_id(v)) {
        req->id = v;
        req->id_from_client = true;
        return v;
    }
    static _Atomic uint64_t boot;
    if (!boot)
        boot = (uint64_t)wv_now() ^ ((uint64_t)getpid() << 32);
    int n = snprintf(req->id_buf, sizeof req->id_buf, "%08llx-%x-%llx",
                     (unsigned long long)(boot & 0xffffffffu), (unsigned)wv_shard_id(),
                     (unsigned long long)++id_counter);
    req->id = (wv_str){req->id_buf, (size_t)n};
    return req->id;
}

/* --------------------------------------------------------------- body */

/*
 * While a handler runs, the connection buffer never moves (its slices are
 * the handler's strings): body bytes are read into its free tail, and
 * consumed body bytes are cut out from behind the head. A Content-Length
 * body that does not fit is read into a buffer of its own.
 */

static int send_continue(wv_req *req)
{
    if (!req->continue_pending)
        return 0;
    req->continue_pending = false;
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    ssize_t w = wv_stream_write(req->c->s, msg, sizeof msg - 1);
    return w < 0 ? (int)w : 0;
}

/* Unconsumed bytes buffered after the head (and after any body bytes
 * already accounted into head_len). */
static size_t after_head(wv_req *req, const char **p)
{
    conn *c = req->c;
    size_t at = c->rstart + req->head_len;
    *p = c->rbuf + at;
    return c->rlen > at ? c->rlen - at : 0;
}

/* Cut n consumed bytes out from right after the head. */
static void consume_after_head(wv_req *req, size_t n)
{
    conn *c = req->c;
    size_t at = c->rstart + req->head_len;
    memmove(c->rbuf + at, c->rbuf + at + n, c->rlen - at - n);
    c->rlen -= n;
}

/* Read into the buffer's free tail; >0, 0 at EOF, <0. */
static ssize_t fill_tail(conn *c)
{
    if (c->rlen == c->rcap)
        return -ENOBUFS;
    ssize_t n = wv_stream_read(c->s, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (n > 0)
        c->rlen += (size_t)n;
    return n;
}

/* The body has body_timeout_ms in all, from its first read: a client that
 * trickles a byte at a time does not get a fresh timeout per read. */
static int64_t body_phase_begin(wv_req *req, int *rc)
{
    int64_t old = wv_deadline();
    if (!req->body_deadline)
        req->body_deadline = wv_after_ms(req->c->srv->o.body_timeout_ms);
    if (req->body_deadline < old)
        wv_deadline_set(req->body_deadline);
    *rc = send_continue(req);
    return old;
}

int wv_req_body_timeout(wv_req *req, int64_t ms)
{
    if (ms <= 0)
        return wv_fail(-EINVAL, "a body timeout must be positive, not %lld ms", (long long)ms);
    req->body_deadline = wv_after_ms(ms);
    return 0;
}

/* A timeout of the body's own deadline is the client's fault: 408. */
static void note_timeout(wv_req *req)
{
    if (wv_now() >= req->body_deadline) {
        req->body_timed_out = true;
        wv_fail(-ETIMEDOUT, "request body not received in time");
    }
}

static int eof_mid_body(void)
{
    return wv_fail(-ECONNRESET, "the client closed the connection mid-body");
}

/* Content-Length body, whole. */
static int body_fixed(wv_req *req, wv_str *out)
{
    conn *c = req->c;
    size_t len = (size_t)req->h.content_length;
    const char *p;
    size_t have = after_head(req, &p);
    if (c->rstart + req->head_len + len <= c->rcap) {
        while (have < len) {
            ssize_t n = fill_tail(c);
            if (n <= 0)
                return n == 0 ? eof_mid_body() : (int)n;
            have = after_head(req, &p);
        }
        *out = (wv_str){p, len};
        req->head_len += len; /* the next request starts after it */
    } else {
        /* too big for the connection buffer: a buffer of its own */
        int rc = wv_buf_reserve(&req->body, len);
        if (rc < 0)
            return rc;
        wv_buf_append(&req->body, p, have);
        consume_after_head(req, have);
        while (req->body.n < len) {
            ssize_t n = wv_stream_read(c->s, req->body.p + req->body.n, len - req->body.n);
            if (n <= 0)
                return n == 0 ? eof_mid_body() : (int)n;
            req->body.n += (size_t)n;
        }
        *out = (wv_str){req->body.p, len};
    }
    req->body_left = 0;
    req->body_done = true;
    return 0;
}

/* Another protocol's body (HTTP/2), whole: read through the exchange,
 * refused past max_body (at once when its declared length says so). */
static int body_exchange(wv_req *req, wv_str *out)
{
    size_t max = req->c->srv->o.max_body;
    if (req->h.content_length > 0 && (uint64_t)req->h.content_length > max)
        return wv_fail(-EMSGSIZE, "request body of %lld bytes exceeds the %zu byte limit",
                       (long long)req->h.content_length, max);
    if (req->h.content_length > 0 && wv_buf_reserve(&req->body, (size_t)req->h.content_length) < 0)
        return -ENOMEM;
    for (;;) {
        if (wv_buf_reserve(&req->body, 16384) < 0)
            return -ENOMEM;
        size_t room = req->body.cap - req->body.n;
        ssize_t n = wv_req_read(req, req->body.p + req->body.n, room);
        if (n < 0)
            return (int)n;
        if (n == 0)
            break;
        req->body.n += (size_t)n;
        if (req->body.n > max) {
            req->body_refused = true;
            return wv_fail(-EMSGSIZE, "the request body exceeds the %zu byte limit", max);
        }
    }
    *out = (wv_str){req->body.p ? req->body.p : "", req->body.n};
    return 0;
}

int wv_req_body(wv_req *req, wv_str *out)
{
    http_server *s = req->c->srv;
    if (req->body_whole) {
        *out = req->body_view;
        return 0;
    }
    if (req->x) {
        if (req->body_started || req->body_done)
            return wv_fail(-EALREADY, "the body is being read with wv_req_read");
        int rc = body_exchange(req, out);
        if (rc == 0) {
            req->body_view = *out;
            req->body_whole = true;
        }
        return rc;
    }
    if (!req->h.chunked && req->h.content_length <= 0) {
        req->body_done = req->body_whole = true;
        *out = req->body_view = (wv_str){"", 0};
        return 0;
    }
    if (req->body_done || req->body_started || req->pending || req->body.n)
        return wv_fail(-EALREADY, "the body is being read with wv_req_read");
    if (req->h.content_length > 0 && (uint64_t)req->h.content_length > s->o.max_body)
        /* refused before a byte of it is read (and before 100 Continue) */
        return wv_fail(-EMSGSIZE, "request body of %lld bytes exceeds the %zu byte limit",
                       (long long)req->h.content_length, s->o.max_body);
    int rc;
    int64_t old = body_phase_begin(req, &rc);
    if (rc == 0 && !req->h.chunked) {
        rc = body_fixed(req, out);
    } else if (rc == 0) {
        req->body.limit = s->o.max_body;
        req->chunk_limit = s->o.max_body;
        char tmp[16384];
        ssize_t n;
        while ((n = wv_req_read(req, tmp, sizeof tmp)) > 0) {
            if (wv_buf_append(&req->body, tmp, (size_t)n) < 0) {
                n = wv_fail(-EMSGSIZE, "the request body exceeds the %zu byte limit",
                            s->o.max_body);
                break;
            }
        }
        rc = n < 0 ? (int)n : 0;
        if (rc == 0)
            *out = (wv_str){req->body.p ? req->body.p : "", req->body.n};
    }
    wv_deadline_set(old);
    if (rc == 0) {
        req->body_view = *out;
        req->body_whole = true;
    }
    if (rc == -ETIMEDOUT)
        note_timeout(req);
    return rc;
}

/* Next decoded bytes of a chunked body. */
static ssize_t read_chunked(wv_req *req, void *buf, size_t n)
{
    conn *c = req->c;
    for (;;) {
        const char *p;
        size_t have = after_head(req, &p);
        if (req->pending > 0 && have > 0) {
            size_t k = req->pending < n ? req->pending : n;
            if (k > have)
                k = have;
            memcpy(buf, p, k);
            consume_after_head(req, k);
            req->pending -= k;
            req->chunk_total += k;
            if (req->pending == 0 && req->pending_skip) {
                consume_after_head(req, req->pending_skip);
                req->pending_skip = 0;
            }
            return (ssize_t)k;
        }
        if (have > 0 && req->pending == 0) {
            size_t used = 0, dlen = 0;
            const char *data = NULL;
            req->chunk.keep_trailers = true;
            int r = http_chunked_feed(&req->chunk, p, have, &used, &data, &dlen);
            if (r == HTTP_CHUNK_TRAILER) {
                /* kept for wv_req_trailer, within the head's limit */
                req->trailer_lines.limit = c->srv->o.max_head;
                if (wv_buf_append(&req->trailer_lines, data, dlen) < 0) {
                    req->body_refused = true;
                    return wv_fail(-EMSGSIZE, "the request's trailers exceed %zu bytes",
                                   c->srv->o.max_head);
                }
                consume_after_head(req, used);
                continue;
            }
            if (r == HTTP_CHUNK_DATA && req->chunk_limit &&
                req->chunk.remaining + dlen > req->chunk_limit - req->chunk_total) {
                /* the chunk's declared size alone is past the limit:
                 * refuse now rather than read up to the limit first */
                req->body_refused = true;
                return wv_fail(-EMSGSIZE, "the request body exceeds the %zu byte limit",
                               req->chunk_limit);
            }
            if (r == HTTP_CHUNK_DATA) {
                size_t framing = (size_t)(data - p);
                req->pending = dlen;
                req->pending_skip = used - framing - dlen;
                consume_after_head(req, framing);
                continue;
            }
            if (r < 0)
                return wv_fail(-EPROTO, "malformed chunked request body");
            consume_after_head(req, used);
            if (r == HTTP_CHUNK_DONE) {
                req->body_done = true;
                return 0;
            }
            if (used < have)
                continue;
        }
        ssize_t got = fill_tail(c);
        if (got == 0)
            return eof_mid_body();
        if (got < 0)
            return got;
    }
}

ssize_t wv_req_read(wv_req *req, void *buf, size_t n)
{
    if (req->body_done || n == 0)
        return 0;
    if (req->x) {
        int rc;
        int64_t old = body_phase_begin(req, &rc);
        req->body_started = true;
        ssize_t got = req->x->ops->read(req->x->x, buf, n);
        wv_deadline_set(old);
        if (got == 0)
            req->body_done = true;
        if (got == -ETIMEDOUT)
            note_timeout(req);
        return got;
    }
    if (!req->h.chunked && req->h.content_length <= 0) {
        req->body_done = true;
        return 0;
    }
    int rc;
    int64_t old = body_phase_begin(req, &rc);
    ssize_t result = rc;
    if (rc == 0 && req->h.chunked) {
        result = read_chunked(req, buf, n);
    } else if (rc == 0) {
        if (!req->body_started) {
            req->body_started = true;
            req->body_left = req->h.content_length;
        }
        const char *p;
        size_t have = after_head(req, &p);
        size_t want = (uint64_t)req->body_left < n ? (size_t)req->body_left : n;
        if (have > 0) {
            size_t k = have < want ? have : want;
            memcpy(buf, p, k);
            consume_after_head(req, k);
            result = (ssize_t)k;
        } else {
            result = wv_stream_read(req->c->s, buf, want);
            if (result == 0)
                result = eof_mid_body();
        }
        if (result > 0) {
            req->body_left -= result;
            if (req->body_left == 0)
                req->body_done = true;
        }
    }
    wv_deadline_set(old);
    if (result == -ETIMEDOUT)
        note_timeout(req);
    return result;
}

/* After the handler: drop an unread body (up to max bytes) so the next
 * request parses from the right place. <0 when the connection must close
 * instead. */
int req_discard_body(wv_req *req, size_t max)
{
    if (req->x)
        return 0; /* the protocol drops what its stream still brings */
    if (req->body_done || (!req->h.chunked && req->h.content_length <= 0))
        return 0;
    if (req->body_timed_out)
        return -ETIMEDOUT;
    if (req->body_refused)
        return -EMSGSIZE;
    if (req->continue_pending)
        return -EAGAIN; /* the client is waiting for a 100 and sends nothing */
    if (!req->h.chunked) {
        int64_t left = req->body_started ? req->body_left : req->h.content_length;
        if (left > (int64_t)max)
            return -EMSGSIZE;
    }
    char tmp[16384];
    size_t total = 0;
    ssize_t n;
    while ((n = wv_req_read(req, tmp, sizeof tmp)) > 0) {
        total += (size_t)n;
        if (total > max)
            return -EMSGSIZE;
    }
    return n < 0 ? (int)n : 0;
}
