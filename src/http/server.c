/*
 * The HTTP/1.1 server: listeners (one per shard, SO_REUSEPORT), the
 * connection fiber loop with keep-alive, pipelining, limits and timeouts,
 * and graceful shutdown.
 *
 * Phases of a connection and their deadlines: idle (waiting for the first
 * byte of a request: idle_timeout, then closed quietly), head (the rest of
 * the head: header_timeout, then 408), body (body_timeout, then 408). A
 * malformed head gets its status (400, 414, 431, 501, 505) and the
 * connection is closed, because the byte stream can no longer be trusted.
 *
 * At shutdown each shard closes its listener, closes connections that are
 * idle between requests, lets active ones finish their request (answered
 * with Connection: close), and after drain_timeout cancels what is left.
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http/http_internal.h"
#include "weave/h2.h"

/* A read buffer grows in READ_CHUNKs when a request needs it; between
 * requests an empty one is freed, and a request's first read keeps only the
 * bytes it brought (conn_fill): 10,000 idle keep-alive connections hold no
 * read buffers, and 10,000 sleeping handlers hold their requests' bytes. */
enum { READ_CHUNK = 4096, DISCARD_MAX = 256 * 1024 };

/* ------------------------------------------------------------ reading */

/* Between requests only (no handler holds slices into the buffer): move
 * the unconsumed bytes to the front and grow to keep min_free (at least
 * READ_CHUNK) free; conn_fill then reads. */
/* connections open on this shard, every server together */
static _Thread_local int64_t shard_conns;

int64_t wv_http_connections(void)
{
    return shard_conns;
}

static int conn_make_room(conn *c, size_t min_free)
{
    size_t have = c->rlen - c->rstart;
    if (c->rstart > 0) {
        memmove(c->rbuf, c->rbuf + c->rstart, have);
        c->rlen = have;
        c->rstart = 0;
    }
    if (min_free < READ_CHUNK)
        min_free = READ_CHUNK;
    if (c->rcap - c->rlen < min_free) {
        size_t cap = c->rcap ? c->rcap : READ_CHUNK;
        while (cap - c->rlen < min_free)
            cap *= 2;
        char *p = realloc(c->rbuf, cap);
        if (!p)
            return -ENOMEM;
        c->rbuf = p;
        c->rcap = cap;
    }
    return 0;
}

/* Between requests: a small headers array and read buffer stay for the next
 * request (a malloc and a free each per request otherwise, a tenth of a
 * small request's user-space work), larger ones go, so an idle connection
 * pins at most KEEP_HDRS * 32 + KEEP_RBUF bytes. */
enum { KEEP_HDRS = 8, KEEP_RBUF = 512 };

ssize_t conn_fill(conn *c, size_t min_free)
{
    if (!c->rbuf || c->rlen == 0) {
        /* A request's first read (the buffer is empty between requests,
         * or freed when it was large) goes into the shard's buffer and only
         * what came is kept: a WebSocket pins its handshake's few hundred
         * bytes for its whole life, a handler that sleeps its request's,
         * not 4 KiB (a partial head grows the buffer as usual). No fiber
         * switch between the read and the copy, so one buffer serves every
         * connection of the shard. */
        static _Thread_local char first[READ_CHUNK];
        ssize_t n = wv_stream_read(c->s, first, sizeof first);
        if (n <= 0)
            return n;
        if ((size_t)n > c->rcap) {
            free(c->rbuf);
            c->rbuf = malloc((size_t)n);
            c->rcap = c->rbuf ? (size_t)n : 0;
            if (!c->rbuf)
                return -ENOMEM;
        }
        memcpy(c->rbuf, first, (size_t)n);
        c->rlen = (size_t)n;
        c->rstart = 0;
        return n;
    }
    int rc = conn_make_room(c, min_free);
    if (rc < 0)
        return rc;
    ssize_t n = wv_stream_read(c->s, c->rbuf + c->rlen, c->rcap - c->rlen);
    if (n > 0)
        c->rlen += (size_t)n;
    return n;
}

/* ---------------------------------------------------------- one request */

/* wv_after_ms from a time already read (saturating at WV_NEVER) */
static int64_t ms_after(int64_t now, int64_t ms)
{
    return ms > (WV_NEVER - now) / 1000000 ? WV_NEVER : now + ms * 1000000;
}

static int64_t ms_or(int64_t v, int64_t def)
{
    return v > 0 ? v : def;
}

/* Parse the next head, reading as needed. 1 = a request is in req->h,
 * 0 = the connection is over (EOF, idle timeout, shutdown), <0 = an HTTP
 * error status (negated) was answered already or the peer is gone. */
static int read_head(conn *c, wv_req *req)
{
    http_server *s = c->srv;
    size_t scanned = 0;
    bool in_head = c->rlen > c->rstart;
    int64_t old = wv_deadline();
    /* a new connection gets the head's timeout for its first byte too: one
     * that never sends anything must not hold a fiber for the idle timeout */
    bool idle_wait = !in_head && c->served;
    wv_deadline_set(
        ms_after(wv_now_coarse(), idle_wait ? s->o.idle_timeout_ms : s->o.header_timeout_ms));
    int result;
    for (;;) {
        if (c->rlen > c->rstart) {
            const char *why = "";
            int rc = http_parse_request(c->rbuf + c->rstart, c->rlen - c->rstart, &s->limits,
                                        &req->h, &scanned, &why);
            if (rc > 0 && req->h.chunked && c->rcap - c->rlen < 4096) {
                /* a chunked body is decoded in the buffer's free tail,
                 * which must exist before the handler holds slices */
                if (conn_make_room(c, 4096) < 0) {
                    result = -ENOMEM;
                    break;
                }
                scanned = 0;
                continue;
            }
            if (rc > 0 && !req->h.chunked && req->h.content_length > 0 &&
                req->h.content_length <= READ_CHUNK &&
                c->rstart + (size_t)rc + (size_t)req->h.content_length > c->rcap) {
                /* a small body is read in place behind its head: make room
                 * now, before the handler holds slices (a connection's
                 * first buffer holds only what its first read brought) */
                if (conn_make_room(c, (size_t)req->h.content_length) < 0) {
                    result = -ENOMEM;
                    break;
                }
                scanned = 0;
                continue;
            }
            if (rc > 0) {
                req->head_len = (size_t)rc;
                result = 1;
                break;
            }
            if (rc < 0) {
                res_simple_error(c, -rc, why, true);
                c->linger = true; /* the rest of the bad request may follow */
                result = rc;
                break;
            }
        }
        if (s->stopping && !in_head) {
            result = 0;
            break;
        }
        if (!in_head && c->rbuf && c->rlen == c->rstart) {
            /* between requests with nothing buffered: wait holding at most
             * KEEP_RBUF bytes of read buffer; the next read keeps only
             * what it brings (conn_fill), so an idle keep-alive connection,
             * or one whose handler waits, pins its request's bytes, not
             * 4 KiB */
            c->rlen = c->rstart = 0;
            if (c->rcap > KEEP_RBUF) {
                free(c->rbuf);
                c->rbuf = NULL;
                c->rcap = 0;
            }
        }
        c->idle = !in_head;
        ssize_t n = conn_fill(c, 0);
        c->idle = false;
        if (n > 0) {
            if (!in_head) {
                in_head = true;
                req->start_ns = wv_now_coarse(); /* the pass's clock: no clock read */
                wv_deadline_set(ms_after(req->start_ns, s->o.header_timeout_ms));
            }
            continue;
        }
        if (n == -ETIMEDOUT && in_head)
            res_simple_error(c, 408, "request head not received in time", true);
        result = n == 0 || !in_head ? 0 : (int)n;
        break;
    }
    wv_deadline_set(old);
    return result;
}

/* One line per request on stderr, whole lines in one write: the NCSA
 * common log format (plus duration and request id), or a JSON object. */
static void access_log(wv_req *req, wv_res *res)
{
    wv_access_log kind = req->c->srv->o.access_log;
    if (kind == WV_ACCESS_LOG_OFF)
        return;
    double ms = (double)(wv_now() - req->start_ns) / 1e6;
    wv_str m = req->h.method, t = req->h.target, id = wv_req_id(req);
    wv_buf b = {0};
    if (kind == WV_ACCESS_LOG_COMMON) {
        char when[40];
        time_t now = time(NULL);
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(when, sizeof when, "%d/%b/%Y:%H:%M:%S +0000", &tm);
        const char *colon = strrchr(req->c->peer, ':');
        int hostlen = colon ? (int)(colon - req->c->peer) : (int)strlen(req->c->peer);
        wv_buf_printf(&b, "%.*s - - [%s] \"", hostlen, req->c->peer, when);
        for (size_t i = 0; i < m.n + 1 + t.n; i++) {
            char ch = i < m.n ? m.p[i] : i == m.n ? ' ' : t.p[i - m.n - 1];
            if ((unsigned char)ch < 0x20 || ch == '"' || ch == 0x7f)
                wv_buf_printf(&b, "\\x%02x", (unsigned char)ch);
            else
                wv_buf_append(&b, &ch, 1);
        }
        int v = wv_req_version(req);
        wv_buf_printf(&b, " HTTP/%d.%d\" %d %lld %.3fms %.*s\n", v / 10, v % 10, res->status,
                      (long long)res->body_bytes, ms, (int)id.n, id.p);
    } else {
        wv_json j;
        wv_json_init(&j, &b);
        wv_json_object_begin(&j);
        wv_json_key(&j, "peer");
        wv_json_string(&j, req->c->peer);
        wv_json_key(&j, "method");
        wv_json_stringn(&j, m.p, m.n);
        wv_json_key(&j, "target");
        wv_json_stringn(&j, t.p, t.n); /* invalid UTF-8 becomes U+FFFD */
        wv_json_key(&j, "status");
        wv_json_int(&j, res->status);
        wv_json_key(&j, "bytes");
        wv_json_int(&j, res->body_bytes);
        wv_json_key(&j, "ms");
        wv_json_double(&j, (double)(int64_t)(ms * 1000) / 1000);
        wv_json_key(&j, "route");
        wv_json_stringn(&j, req->route_pattern.p, req->route_pattern.n);
        wv_json_key(&j, "request_id");
        wv_json_stringn(&j, id.p, id.n);
        wv_json_object_end(&j);
        wv_buf_append(&b, "\n", 1);
    }
    if (b.p) {
        ssize_t w = write(STDERR_FILENO, b.p, b.n);
        (void)w;
    }
    wv_buf_free(&b);
}

void http_handle(wv_req *req, wv_res *res)
{
    http_server *s = req->c->srv;
    wv_errmsg_clear(); /* no detail left over from an earlier request */
    int kind = ROUTE_NOT_FOUND;
    route *rt = routes_dispatch_target(s->root, req, &kind);
    /* whatever the route did to the fiber's deadline (wv_deadline_header,
     * a handler that set one and returned early) ends with the request */
    int64_t deadline = wv_deadline();
    int rc = run_route(req, res, rt, rt ? rt->group : s->root);
    wv_deadline_set(deadline);
    if (rc < 0 && !res->started)
        wv_res_error(res, rc);
    else if (!res->started)
        wv_res_error(res, wv_fail(-EFAULT, "the handler returned without a response"));
    else if (res->streaming && rc < 0)
        res_abort(res); /* a body that stopped midway must not look whole */
    else if (res->streaming)
        wv_res_end(res);
    access_log(req, res);
    if (res->on_done)
        res->on_done(res->on_done_arg);
}

/* Serve one parsed request. Returns true to keep the connection. */
static bool serve_request(conn *c, wv_req *req)
{
    http_server *s = c->srv;
    wv_res res;
    res_init(&res, c, req);
    req->continue_pending = req->h.expect_continue && req->h.minor == 1;
    if (!req->h.keep_alive || s->stopping)
        res.close = true;
    http_handle(req, &res);
    if (req->body_timed_out || req->body_refused || res.upgraded)
        res.close = true; /* an upgraded connection ends with its handler */
    if (res.upgraded)
        c->linger = true; /* let the peer read the protocol's goodbye first */
    bool keep = !res.close && !c->dead;
    if (keep && req_discard_body(req, DISCARD_MAX) < 0) {
        keep = false;
        c->linger = true; /* the rest of the body is still coming */
    }
    if (!keep && !req->body_done && (req->h.chunked || req->h.content_length > 0))
        c->linger = true;
    res_finish(&res);
    return keep;
}

/* Closing a socket with unread input makes the kernel send a reset, which
 * can destroy the response we just sent before the client reads it (a 413,
 * a 400, a WebSocket close). So, like nginx's lingering close: stop
 * sending, then read and drop what the client still sends, for at most
 * half a second and 1 MiB, before closing. */
static void lingering_close(conn *c)
{
    int64_t old = wv_deadline_set(wv_after_ms(500));
    if (wv_stream_shutdown(c->s, SHUT_WR) == 0) {
        char scratch[4096];
        size_t total = 0;
        ssize_t n;
        while (total < (1 << 20) && (n = wv_stream_read(c->s, scratch, sizeof scratch)) > 0)
            total += (size_t)n;
    }
    wv_deadline_set(old);
}

static void conn_free(conn *c)
{
    if (c->linger && !c->dead)
        lingering_close(c);
    http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    shard_conns--;
    if (s->nconns < s->o.max_connections)
        wv_event_set(&s->slot_free);
    wv_stream_close(c->s);
    free(c->rbuf);
    wv_buf_free(&c->out);
    free(c->hdrs);
    free(c);
}

/* The parsed headers, out of the server's shared slots into the request's
 * own array of exactly their number (the handler may yield, and another
 * connection's parse reuses the slots): 100 slots would be 3.2 KB held by
 * every connection whose handler waits. */
static int own_headers(conn *c, wv_req *req)
{
    int n = req->h.nheaders;
    if (n > c->hdrs_cap) {
        free(c->hdrs);
        c->hdrs = malloc((size_t)n * sizeof *c->hdrs);
        c->hdrs_cap = c->hdrs ? n : 0;
        if (!c->hdrs)
            return -ENOMEM;
    }
    if (n > 0)
        memcpy(c->hdrs, req->h.headers, (size_t)n * sizeof *c->hdrs);
    req->h.headers = c->hdrs;
    return 0;
}

static void release_headers(conn *c)
{
    if (c->hdrs_cap > KEEP_HDRS) {
        free(c->hdrs);
        c->hdrs = NULL;
        c->hdrs_cap = 0;
    }
}

/* HTTPS: the handshake, within the head's timeout (a client that stalls
 * mid-handshake is cut at it). */
static int tls_handshake(conn *c)
{
    int64_t old = wv_deadline_set(wv_after_ms(c->srv->o.header_timeout_ms));
    int rc = wv_stream_accept_tls(c->s, c->srv->o.tls);
    wv_deadline_set(old);
    if (rc < 0)
        wv_debug("TLS handshake with %s failed: %s", c->peer, wv_errmsg());
    return rc;
}

/* h2c with prior knowledge: does the connection open with HTTP/2's
 * preface? Reads (within the head's timeout) only while what came so far
 * is a beginning of it, so an HTTP/1.1 request costs no extra read. 1 yes,
 * 0 no (the bytes read stay buffered for the HTTP/1.1 parser), <0 the
 * connection ended first. */
static int sniff_h2(conn *c)
{
    int64_t old = wv_deadline_set(wv_after_ms(c->srv->o.header_timeout_ms));
    int rc = 0;
    for (;;) {
        size_t have = c->rlen - c->rstart;
        size_t cmp = have < WV_H2_PREFACE_LEN ? have : WV_H2_PREFACE_LEN;
        if (memcmp(c->rbuf ? c->rbuf + c->rstart : "", WV_H2_PREFACE, cmp) != 0)
            break;
        if (have >= WV_H2_PREFACE_LEN) {
            rc = 1;
            break;
        }
        c->idle = have == 0;
        ssize_t n = conn_fill(c, 0);
        c->idle = false;
        if (n <= 0) {
            rc = n == 0 ? -ECONNRESET : (int)n;
            break;
        }
    }
    wv_deadline_set(old);
    return rc;
}

/* The connection is HTTP/2's from here (sniffed preface, or ALPN "h2"). */
static void serve_h2(conn *c)
{
    c->h2 = true;
    size_t have = c->rlen - c->rstart;
    wv_h2_serve((wv_http_conn *)c, c->s, have ? c->rbuf + c->rstart : NULL, have);
    c->rstart = c->rlen = 0;
    c->linger = true; /* the peer reads the GOAWAY before our close */
}

/* ------------------------------------------------- h2c by Upgrade */

/* Does the comma-separated list v hold token tok (ASCII case ignored)? */
static bool list_has(wv_str v, const char *tok)
{
    size_t n = strlen(tok), i = 0;
    while (i < v.n) {
        while (i < v.n && (v.p[i] == ' ' || v.p[i] == '\t' || v.p[i] == ','))
            i++;
        size_t from = i;
        while (i < v.n && v.p[i] != ',')
            i++;
        size_t to = i;
        while (to > from && (v.p[to - 1] == ' ' || v.p[to - 1] == '\t'))
            to--;
        if (wv_str_ieq((wv_str){v.p + from, to - from}, (wv_str){tok, n}))
            return true;
    }
    return false;
}

/* base64url without padding (RFC 4648 5; RFC 7540 3.2.1) into out (cap
 * bytes): the length, or -1 when v is not that. */
static ssize_t base64url_decode(wv_str v, uint8_t *out, size_t cap)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < v.n; i++) {
        char ch = v.p[i];
        int d = ch >= 'A' && ch <= 'Z'                      ? ch - 'A'
                : ch >= 'a' && ch <= 'z'                    ? ch - 'a' + 26
                : ch >= '0' && ch <= '9'                    ? ch - '0' + 52
                : ch == '-'                                 ? 62
                : ch == '_'                                 ? 63
                : ch == '=' && i + 2 >= v.n && v.n % 4 == 0 ? -2
                                                            : -1;
        if (d == -2)
            break; /* padding, tolerated at the end */
        if (d < 0)
            return -1;
        acc = acc << 6 | (uint32_t)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n == cap)
                return -1;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return bits >= 6 ? -1 : (ssize_t)n; /* a lone 6-bit group is no byte */
}

/* RFC 7540 3.2: a cleartext HTTP/1.1 request with "Upgrade: h2c", one
 * HTTP2-Settings field, and both named in Connection becomes stream 1 of an
 * HTTP/2 connection after a 101. Only a request without a body: one with a
 * body would have to be read whole first, so it is served over HTTP/1.1,
 * the Upgrade ignored (as TLS connections and no_h2 servers ignore it).
 * True when the connection was HTTP/2's and is over now. Never inlined:
 * its buffers would deepen every request's stack, and a connection's
 * memory is the stack it touches. */
__attribute__((noinline)) static bool serve_h2c_upgrade(conn *c, wv_req *req)
{
    http_server *s = c->srv;
    if (s->o.tls || s->o.no_h2 || s->stopping || !req->h.upgrade || req->h.chunked ||
        req->h.content_length > 0 || req->h.target.n == 0 || req->h.target.p[0] != '/')
        return false; /* stopping: answered over HTTP/1.1 with Connection: close;
                       * an absolute-form target: not a :path */
    bool h2c = false, named = false;
    int nsettings = 0;
    wv_str settings = {0};
    for (int i = 0; i < req->h.nheaders; i++) {
        const http_header *f = &req->h.headers[i];
        if (wv_str_ieq(f->name, WV_STR("upgrade")))
            h2c = h2c || list_has(f->value, "h2c");
        else if (wv_str_ieq(f->name, WV_STR("connection")))
            named = named || list_has(f->value, "http2-settings");
        else if (wv_str_ieq(f->name, WV_STR("http2-settings")))
            settings = f->value, nsettings++;
    }
    uint8_t payload[1024]; /* 170 settings: more than HTTP/2 has */
    ssize_t len =
        h2c && named && nsettings == 1 ? base64url_decode(settings, payload, sizeof payload) : -1;
    if (len < 0 || len % 6 != 0)
        return false;
    wv_http_field *fields = malloc((size_t)(req->h.nheaders + 1) * sizeof *fields);
    if (!fields)
        return false;
    for (int i = 0; i < req->h.nheaders; i++)
        fields[i] = (wv_http_field){req->h.headers[i].name, req->h.headers[i].value};
    if (res_flush(c) < 0) { /* pipelined answers before it go first */
        free(fields);
        return true;
    }
    static const char switching[] = "HTTP/1.1 101 Switching Protocols\r\n"
                                    "Connection: Upgrade\r\nUpgrade: h2c\r\n\r\n";
    if (wv_stream_write(c->s, switching, sizeof switching - 1) < 0) {
        free(fields);
        c->dead = true;
        return true;
    }
    wv_http_exchange first = {.method = req->h.method,
                              .target = req->h.target,
                              .authority = req->h.host,
                              .headers = fields,
                              .nheaders = req->h.nheaders,
                              .content_length = -1,
                              .no_body = true,
                              .version = 20};
    size_t at = c->rstart + req->head_len, have = c->rlen - at;
    c->h2 = true;
    wv_h2_serve_upgraded((wv_http_conn *)c, c->s, &first, payload, (size_t)len,
                         have ? c->rbuf + at : NULL, have);
    free(fields);
    c->rstart = c->rlen = 0;
    c->linger = true; /* the peer reads the GOAWAY before our close */
    return true;
}

static int conn_serve(void *arg)
{
    conn *c = arg;
    http_server *s = c->srv;
    if (s->o.tls && tls_handshake(c) < 0) {
        c->dead = true; /* nothing to say on a stream that never was TLS */
        conn_free(c);
        return 0;
    }
    const char *alpn = s->o.tls ? wv_stream_alpn(c->s) : NULL;
    if (alpn && strcmp(alpn, "h2") == 0) {
        if (!s->o.no_h2)
            serve_h2(c);
        conn_free(c); /* no_h2 with a context that offers h2: nothing to say */
        return 0;
    }
    if (!s->o.tls && !s->o.no_h2) {
        int rc = sniff_h2(c);
        if (rc != 0) {
            if (rc > 0)
                serve_h2(c);
            conn_free(c);
            return 0;
        }
    }
    for (;;) {
        wv_req req;
        req_init(&req, c);
        req.h.headers = s->parsed;
        int rc = read_head(c, &req);
        if (rc > 0 && own_headers(c, &req) < 0) {
            res_simple_error(c, 503, "out of memory", true);
            rc = -ENOMEM;
        }
        if (rc <= 0) {
            res_flush(c);
            req_finish(&req);
            break;
        }
        if (!req.start_ns)
            req.start_ns = wv_now();
        if (req.h.upgrade && serve_h2c_upgrade(c, &req)) {
            req_finish(&req);
            break;
        }
        bool keep = serve_request(c, &req);
        c->served = true;
        c->rstart += req.head_len;
        req_finish(&req);
        release_headers(c);
        if (c->rstart == c->rlen)
            c->rstart = c->rlen = 0;
        /* pipelining: answer everything already received in one writev */
        if (!keep || c->rstart == c->rlen || c->out.n > 65536)
            if (res_flush(c) < 0)
                break;
        if (!keep || c->dead)
            break;
        (void)s;
    }
    res_flush(c);
    conn_free(c);
    return 0;
}

/* ------------------------------------------------------------ listening */

static int listen_socket(const wv_http_opts *o, int port)
{
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(o->host, portstr, &hints, &ai);
    if (rc != 0)
        return wv_fail(-EINVAL, "cannot listen on %s: %s (give a numeric address)", o->host,
                       gai_strerror(rc));
    int fd = wv_socket(ai->ai_family, SOCK_STREAM, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return wv_fail(fd, "socket: %s", wv_strerror(fd));
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, o->backlog) < 0) {
        int err = -errno;
        close(fd);
        freeaddrinfo(ai);
        return wv_fail(err, "cannot listen on %s:%d: %s", o->host, port, wv_strerror(err));
    }
    freeaddrinfo(ai);
    return fd;
}

static int bound_port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -errno;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int accept_loop(void *arg)
{
    http_server *s = arg;
    bool warned = false;
    for (;;) {
        while (s->nconns >= s->o.max_connections) {
            /* at the cap: existing clients keep being served, new ones
             * wait in the backlog */
            wv_event_clear(&s->slot_free);
            int rc = wv_event_wait(&s->slot_free);
            if (rc < 0)
                return 0;
        }
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof peer;
        int fd = wv_accept(s->lfd, (struct sockaddr *)&peer, &peer_len);
        if (fd < 0) {
            if (fd == -ECANCELED || fd == -EBADF || s->stopping)
                return 0;
            if (fd == -EMFILE || fd == -ENFILE || fd == -ENOBUFS || fd == -ENOMEM) {
                if (!warned)
                    wv_warn("accept: %s; backing off", wv_strerror(fd));
                warned = true;
                if (wv_sleep_ms(100) < 0)
                    return 0;
                continue;
            }
            continue; /* a connection that died in the backlog */
        }
        warned = false;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn *c = calloc(1, sizeof *c);
        if (!c) {
            wv_close(fd);
            continue;
        }
        if (wv_stream_open(fd, &c->s) < 0) {
            free(c);
            continue;
        }
        c->srv = s;
        wv_addr_format((struct sockaddr *)&peer, peer_len, c->peer, sizeof c->peer);
        c->next = s->conns;
        if (s->conns)
            s->conns->prev = c;
        s->conns = c;
        s->nconns++;
        shard_conns++;
        if (wv_group_spawn(s->group, conn_serve, c, NULL) < 0)
            conn_free(c);
    }
}

/* What every shard serves with: listeners are made up front by the caller,
 * one per shard, so a bind error is reported before anything runs and a
 * port 0 resolves to one port for all of them. */
typedef struct serve_ctx {
    wv_router *root;
    wv_http_opts o;
    int *lfds; /* one per shard */
} serve_ctx;

/* At shutdown: wake connections idle between requests and upgraded ones
 * (WebSockets) waiting for a frame; their reads return -EBADF, and with
 * `stopping` set they close (a WebSocket with 1001 Going Away). */
static void close_idle(http_server *s)
{
    for (conn *c = s->conns; c; c = c->next) {
        if (c->on_stop)
            c->on_stop(c->on_stop_arg); /* HTTP/2: GOAWAY, then its streams finish */
        else if (c->idle || c->upgraded)
            wv_stream_interrupt(c->s);
    }
}

void wv_http_conn_on_stop(wv_http_conn *hc, void (*fn)(void *arg), void *arg)
{
    conn *c = (conn *)hc;
    c->on_stop = fn;
    c->on_stop_arg = arg;
}

void wv_http_conn_limits_of(const wv_http_conn *hc, wv_http_conn_limits *out)
{
    const http_server *s = ((const conn *)hc)->srv;
    *out = (wv_http_conn_limits){.max_head = s->o.max_head,
                                 .max_headers = s->o.max_headers,
                                 .max_streams = s->o.h2_max_streams,
                                 .header_timeout_ms = s->o.header_timeout_ms,
                                 .idle_timeout_ms = s->o.idle_timeout_ms,
                                 .body_timeout_ms = s->o.body_timeout_ms};
}

static int shard_serve(void *arg)
{
    serve_ctx *ctx = arg;
    http_server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->root = ctx->root;
    s->o = ctx->o;
    s->server_name_len = strlen(s->o.server_name);
    s->limits = (http_limits){s->o.max_request_line, s->o.max_head, s->o.max_headers};
    s->lfd = ctx->lfds[wv_shard_id()];
    ctx->lfds[wv_shard_id()] = -1;
    s->parsed = calloc((size_t)s->o.max_headers, sizeof *s->parsed);
    if (!s->parsed) {
        wv_close(s->lfd);
        free(s);
        return -ENOMEM;
    }
    s->group = wv_group_new();
    wv_group *acceptor = wv_group_new();
    wv_group_spawn(acceptor, accept_loop, s, &(wv_spawn_opts){.name = "http-accept"});

    wv_stop_wait();
    s->stopping = true;
    wv_close(s->lfd); /* the accept loop wakes with -EBADF */
    wv_group_join(acceptor);
    wv_group_free(acceptor);
    close_idle(s);
    int64_t old = wv_deadline_set(wv_after_ms(s->o.drain_timeout_ms));
    int rc = wv_group_join(s->group); /* past the deadline: cancels the rest */
    wv_deadline_set(old);
    if (rc == -ETIMEDOUT)
        wv_warn("http: drain timeout; cancelled the requests still running");
    wv_group_free(s->group);
    wv_buf_free(&s->json_spare);
    free(s->parsed);
    free(s);
    return 0;
}

wv_http_opts http_opts_with_defaults(const wv_http_opts *in)
{
    wv_http_opts o = in ? *in : (wv_http_opts){0};
    if (!o.host)
        o.host = "0.0.0.0";
    if (!o.backlog)
        o.backlog = 4096;
    if (!o.max_request_line)
        o.max_request_line = 8 * 1024;
    if (!o.max_head)
        o.max_head = 64 * 1024;
    if (!o.max_headers)
        o.max_headers = 100;
    if (!o.max_body)
        o.max_body = 1024 * 1024;
    o.header_timeout_ms = ms_or(o.header_timeout_ms, 10000);
    o.body_timeout_ms = ms_or(o.body_timeout_ms, 30000);
    o.idle_timeout_ms = ms_or(o.idle_timeout_ms, 60000);
    o.drain_timeout_ms = ms_or(o.drain_timeout_ms, 10000);
    if (!o.max_connections)
        o.max_connections = 10000;
    if (!o.server_name)
        o.server_name = "weave";
    if (o.h2_max_streams <= 0)
        o.h2_max_streams = 100;
    return o;
}

int wv_http_serve(wv_router *r, const wv_http_opts *opts)
{
    if (!r)
        return -EINVAL;
    if (wv_shard_id() < 0)
        return -EPERM;
    serve_ctx ctx = {.root = r->root, .o = http_opts_with_defaults(opts)};
    if (ctx.o.port < 0 || ctx.o.port > 65535)
        return wv_fail(-EINVAL, "port %d is out of range", ctx.o.port);
    int n = wv_shard_count();
    ctx.lfds = calloc((size_t)n, sizeof *ctx.lfds);
    if (!ctx.lfds)
        return -ENOMEM;
    int port = ctx.o.port, rc = 0;
    for (int i = 0; i < n; i++)
        ctx.lfds[i] = -1;
    for (int i = 0; i < n && rc == 0; i++) {
        ctx.lfds[i] = listen_socket(&ctx.o, port);
        if (ctx.lfds[i] < 0)
            rc = ctx.lfds[i];
        else if (port == 0)
            port = bound_port_of(ctx.lfds[i]);
    }
    if (rc == 0) {
        if (ctx.o.bound_port)
            *ctx.o.bound_port = port;
        if (ctx.o.ready)
            wv_event_set(ctx.o.ready);
        rc = wv_shard_each(shard_serve, &ctx);
    }
    for (int i = 0; i < n; i++)
        if (ctx.lfds[i] >= 0)
            close(ctx.lfds[i]);
    free(ctx.lfds);
    return rc;
}

int http_serve_fd(wv_router *r, const wv_http_opts *opts, int fd)
{
    http_server *s = calloc(1, sizeof *s);
    conn *c = calloc(1, sizeof *c);
    if (!s || !c) {
        free(s);
        free(c);
        wv_close(fd);
        return -ENOMEM;
    }
    s->root = r->root;
    s->o = http_opts_with_defaults(opts);
    s->server_name_len = strlen(s->o.server_name);
    s->limits = (http_limits){s->o.max_request_line, s->o.max_head, s->o.max_headers};
    s->lfd = -1;
    s->parsed = calloc((size_t)s->o.max_headers, sizeof *s->parsed);
    int rc = s->parsed ? wv_stream_open(fd, &c->s) : -ENOMEM;
    if (rc < 0) {
        wv_close(fd);
        free(s->parsed);
        free(s);
        free(c);
        return rc;
    }
    c->srv = s;
    snprintf(c->peer, sizeof c->peer, "fd %d", fd);
    s->conns = c;
    s->nconns = 1;
    shard_conns++;
    conn_serve(c); /* frees c */
    wv_buf_free(&s->json_spare);
    free(s->parsed);
    free(s);
    return 0;
}
