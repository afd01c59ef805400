/*
 * The gRPC client: calls as HTTP/2 streams on nghttp2's client session.
 *
 * The pieces, per shard (thread-local, made by the shard's first call):
 *
 *  - gshard: the shard's client state, a "sub" per channel used on it, the
 *    group of connection fibers, and a keeper fiber whose cancellation at
 *    the runtime's stop is the teardown hook (as httpc's timer fiber).
 *  - gsub: one channel on one shard: its current connection (connecting or
 *    ready), and the backoff after failed attempts.
 *  - gconn: one HTTP/2 connection. Its fiber dials, then reads and feeds
 *    nghttp2_session_mem_recv; a writer fiber drains mem_send, woken by
 *    `kick`. Callbacks never suspend: they record what came in the call and
 *    wake its fiber. When the connection ends, every call still on it is
 *    detached and fails UNAVAILABLE (-EAGAIN) with the reason.
 *  - gcall: a call, one stream: the shared wv_grpc_call first (call.c does
 *    the messages; this file moves their bytes), then the stream's buffers.
 *    What is sent goes through a bounded buffer drained by the stream's
 *    data provider (deferred while empty, resumed on a write); what comes
 *    in is kept until the caller reads it, and the window is reopened
 *    (nghttp2_session_consume) only for bytes read.
 *
 * A call holds its connection only while its stream is open on it
 * (gcall.conn); anything that ends the stream or the connection detaches
 * it, so a call never reaches a freed connection and a connection never a
 * freed call (stream user data is cleared first). Everything runs on the
 * shard's thread: no locks.
 */
#include <nghttp2/nghttp2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/grpc_internal.h"
#include "weave/buf.h"
#include "weave/grpc.h"
#include "grpc/call.h"
#include "h2io/h2io.h"

#include "weave/net.h"
#include "weave/rt.h"

enum {
    READ_BUF = 16384,
    OUT_CAP = 64 * 1024,            /* a stream's send buffer */
    STREAM_WINDOW = 1024 * 1024,    /* a stream's receive window */
    CONN_WINDOW = 16 * 1024 * 1024, /* the connection's */
    MSG_MAX = 256,                  /* error details kept */
    DEFAULT_CONNECT_MS = 10000,
    DEFAULT_BACKOFF_BASE_MS = 100,
    DEFAULT_BACKOFF_MAX_MS = 10000,
};

#define NS_PER_MS INT64_C(1000000)

struct wv_grpc_channel {
    char *host; /* without brackets */
    int port;
    bool tls;
    char *authority;   /* host:port as :authority ([v6]:port), or the opts' */
    char *server_name; /* TLS: the name checked, or NULL for the host */
    wv_tls_ctx *tls_ctx;
    int64_t connect_timeout_ms, backoff_base_ms, backoff_max_ms;
    size_t max_recv, max_send;
    bool compress;
};

typedef struct gshard gshard;
typedef struct gsub gsub;
typedef struct gconn gconn;
typedef struct gcall gcall;

struct gshard {
    gsub *subs;
    wv_group *conns; /* the connections' fibers */
    bool closing;
    int users;     /* fibers inside conn_get (they hold a gsub) */
    wv_event idle; /* users reached 0 while closing */
};

struct gsub {
    gsub *next;
    wv_grpc_channel *ch;
    gconn *conn;      /* the connection new calls go on, or NULL */
    int64_t retry_at; /* after a failed attempt: none before this */
    int failures;     /* attempts failed in a row */
    int err;
    char msg[MSG_MAX];
    wv_event changed; /* pulsed when conn changes state */
};

typedef enum { C_CONNECTING, C_READY, C_DEAD } conn_state;

struct gconn {
    gsub *sub;
    wv_grpc_channel *ch;
    wv_stream *s;
    nghttp2_session *session;
    conn_state state;
    wv_group *fibers; /* the writer */
    wv_event kick;
    bool write_failed;
    bool goaway;
    gcall *calls; /* the streams open on it */
    int ncalls;
};

struct gcall {
    wv_grpc_call base; /* first: call.c's calls take it */
    wv_grpc_channel *ch;
    bool wait_for_ready;
    int64_t deadline;
    gconn *conn; /* while its stream is open there */
    int32_t id;
    gcall *prev, *next;
    /* the request head, kept for a transparent retry */
    nghttp2_nv *nv;
    size_t nnv;
    int timeout_nv; /* index of grpc-timeout in nv, -1 if none */
    char timeout[GRPC_TIMEOUT_MAX];
    bool retried, retry_pending;
    bool replayable; /* nothing sent has been dropped from out, no response seen */
    /* sending */
    wv_buf out;
    size_t out_off;
    bool out_end, deferred;
    wv_event out_room;
    /* receiving */
    wv_buf in;
    size_t in_off;
    bool in_credited; /* the connection's window was given back for what is in `in` */
    bool in_end;      /* END_STREAM came */
    bool closed;      /* nghttp2 closed the stream */
    uint32_t rst_code;
    wv_event in_ready;
    int http_status;
    bool got_head, bad_type;
    int status; /* grpc-status, -1 until it comes */
    char *status_msg;
    /* the end */
    int err; /* a local failure (connection lost, deadline, cancel), with errtext */
    char errtext[MSG_MAX];
    bool final_set;
    int final_code, final_rc;
    char *final_msg;
};

static _Thread_local gshard *here;

static void kick(gconn *c)
{
    wv_event_set(&c->kick);
}

static void pulse(wv_event *e)
{
    wv_event_set(e);
    wv_event_clear(e);
}

static const char *call_name(const gcall *g)
{
    return g->base.path + 1;
}

static void call_wake(gcall *g)
{
    wv_event_set(&g->in_ready);
    wv_event_set(&g->out_room);
}

/* Take g off its connection (its stream is over or abandoned there). */
static void call_detach(gcall *g)
{
    gconn *c = g->conn;
    if (!c)
        return;
    if (c->session && g->id > 0)
        nghttp2_session_set_stream_user_data(c->session, g->id, NULL);
    if (g->prev)
        g->prev->next = g->next;
    else
        c->calls = g->next;
    if (g->next)
        g->next->prev = g->prev;
    g->prev = g->next = NULL;
    g->conn = NULL;
    c->ncalls--;
    if (c->goaway && c->ncalls == 0 && c->s)
        wv_stream_interrupt(c->s); /* drained: its reader ends it */
    call_wake(g);
}

/* A local failure: the first one is kept. */
static void call_error(gcall *g, int err, const char *fmt, ...) WV_PRINTF(3, 4);
static void call_error(gcall *g, int err, const char *fmt, ...)
{
    if (g->err)
        return;
    g->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->errtext, sizeof g->errtext, fmt, ap);
    va_end(ap);
    call_wake(g);
}

/* Reset g's stream (RST_STREAM CANCEL) and take it off the connection. */
static void call_reset(gcall *g)
{
    gconn *c = g->conn;
    if (!c)
        return;
    if (c->session && !g->closed && g->id > 0) {
        nghttp2_submit_rst_stream(c->session, NGHTTP2_FLAG_NONE, g->id, NGHTTP2_CANCEL);
        /* the connection's window, for bytes nobody will read */
        size_t unread = g->in.n - g->in_off;
        if (unread && !g->in_credited)
            nghttp2_session_consume_connection(c->session, unread);
        g->in_credited = true;
        kick(c);
    }
    call_detach(g);
}

/* ------------------------------------------------------------ status */

static int rst_code_status(uint32_t code)
{
    switch (code) {
    case NGHTTP2_REFUSED_STREAM:
        return WV_GRPC_UNAVAILABLE;
    case NGHTTP2_CANCEL:
        return WV_GRPC_CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM:
        return WV_GRPC_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY:
        return WV_GRPC_PERMISSION_DENIED;
    default:
        return WV_GRPC_INTERNAL;
    }
}

static void call_set_final(gcall *g, int code, const char *fmt, ...) WV_PRINTF(3, 4);
static void call_set_final(gcall *g, int code, const char *fmt, ...)
{
    if (g->final_set)
        return;
    g->final_set = true;
    g->final_code = code;
    g->final_rc = grpc_code_to_errno(code);
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&g->final_msg, fmt, ap) < 0)
        g->final_msg = NULL;
    va_end(ap);
}

/* The call's status, once its stream is over (or it failed here). */
static void call_finish(gcall *g)
{
    if (g->final_set)
        return;
    if (g->err)
        call_set_final(g, grpc_code_from_errno(g->err), "%s", g->errtext);
    else if (g->http_status && g->http_status != 200)
        call_set_final(g, grpc_code_from_http_status(g->http_status), "HTTP status %d%s%s",
                       g->http_status, g->status_msg ? ": " : "",
                       g->status_msg ? g->status_msg : "");
    else if (g->bad_type)
        call_set_final(g, WV_GRPC_UNKNOWN, "the response's content-type is not application/grpc");
    else if (g->status >= 0)
        call_set_final(g, g->status, "%s", g->status_msg ? g->status_msg : "");
    else if (g->rst_code)
        call_set_final(g, rst_code_status(g->rst_code), "the server reset the stream (%s)",
                       nghttp2_http2_strerror(g->rst_code));
    else
        call_set_final(g, grpc_code_from_http_status(g->http_status ? g->http_status : 200),
                       "the server ended the call without a grpc-status");
}

/* The status as a return value, with wv_errmsg. */
static int call_result(gcall *g)
{
    call_finish(g);
    if (g->final_code == WV_GRPC_OK)
        return 0;
    return wv_fail(g->final_rc, "%s: %s: %s", call_name(g), grpc_code_name(g->final_code),
                   g->final_msg ? g->final_msg : "");
}

/* A wait of the call's fiber ended with err (-ETIMEDOUT, -ECANCELED): the
 * call is over, its stream reset. */
static int call_wait_failed(gcall *g, int err)
{
    if (err == -ETIMEDOUT)
        call_error(g, -ETIMEDOUT, "deadline exceeded: the deadline passed waiting for grpc %s",
                   g->ch->authority);
    else if (err == -ECANCELED)
        call_error(g, -ECANCELED, "the call's fiber was cancelled");
    else
        call_error(g, err, "%s", wv_strerror(err));
    call_reset(g);
    return call_result(g);
}

/* Wait on e within the call's deadline: 0 or the call's result. */
static int call_wait(gcall *g, wv_event *e)
{
    int64_t d = wv_deadline();
    int64_t old = wv_deadline_set(g->deadline < d ? g->deadline : d);
    int rc = wv_event_wait(e);
    wv_deadline_set(old);
    return rc < 0 ? call_wait_failed(g, rc) : 0;
}

static int check_call(const wv_grpc_call *c)
{
    if (!wv_fiber_id())
        return wv_fail(-EPERM, "grpc: calls are made from a fiber");
    if (c->shard != wv_shard_id())
        return wv_fail(-EXDEV, "%s: a call used from another shard than its own", c->path + 1);
    return 0;
}

/* ------------------------------------------------------- callbacks */

static gcall *stream_call(nghttp2_session *session, int32_t id)
{
    return nghttp2_session_get_stream_user_data(session, id);
}

static bool is_grpc_type(const uint8_t *v, size_t n)
{
    static const char t[] = "application/grpc";
    size_t k = sizeof t - 1;
    return n >= k && memcmp(v, t, k) == 0 && (n == k || v[k] == '+' || v[k] == ';');
}

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                     void *user)
{
    (void)flags, (void)user;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    gcall *g = stream_call(session, frame->hd.stream_id);
    if (!g)
        return 0;
    const char *n = (const char *)name, *v = (const char *)value;
    if (namelen == 7 && memcmp(n, ":status", 7) == 0) {
        int st = 0;
        for (size_t i = 0; i < valuelen && i < 3; i++)
            st = st * 10 + (v[i] - '0');
        g->http_status = st;
        return 0;
    }
    if (namelen > 0 && n[0] == ':')
        return 0;
    /* a second block is the trailers; a first that ends the stream is
     * Trailers-Only: its fields are the trailers too */
    if (g->base.md_trailers_from < 0 &&
        (frame->headers.cat == NGHTTP2_HCAT_HEADERS || (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)))
        g->base.md_trailers_from = g->base.nmd;
    if (grpc_call_md_add(&g->base, n, namelen, v, valuelen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (namelen == 12 && memcmp(n, "content-type", 12) == 0) {
        if (!is_grpc_type(value, valuelen))
            g->bad_type = true;
    } else if (namelen == 13 && memcmp(n, "grpc-encoding", 13) == 0) {
        int enc = grpc_encoding_parse(v, valuelen);
        if (enc < 0)
            call_error(g, -EPROTO, "the server's grpc-encoding %.*s is not one we accept",
                       (int)(valuelen > 40 ? 40 : valuelen), v);
        else
            g->base.recv_enc = (grpc_encoding)enc;
    } else if (namelen == 11 && memcmp(n, "grpc-status", 11) == 0) {
        int code = grpc_status_parse(v, valuelen);
        g->status = code < 0 ? WV_GRPC_UNKNOWN : code;
    } else if (namelen == 12 && memcmp(n, "grpc-message", 12) == 0) {
        free(g->status_msg);
        g->status_msg = malloc(valuelen + 1);
        if (g->status_msg) {
            size_t k = grpc_percent_decode(v, valuelen, (uint8_t *)g->status_msg);
            g->status_msg[k] = 0;
        }
    }
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user)
{
    gconn *c = user;
    if (frame->hd.type == NGHTTP2_GOAWAY) {
        c->goaway = true;
        if (c->sub && c->sub->conn == c) {
            c->sub->conn = NULL; /* new calls go on a new connection */
            pulse(&c->sub->changed);
        }
        /* streams above last_stream_id are closed by nghttp2 as refused
         * (on_stream_close): the server never saw them */
        if (c->ncalls == 0 && c->s)
            wv_stream_interrupt(c->s);
        return 0;
    }
    if (frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA)
        return 0;
    gcall *g = stream_call(session, frame->hd.stream_id);
    if (!g)
        return 0;
    bool end = frame->hd.flags & NGHTTP2_FLAG_END_STREAM;
    if (frame->hd.type == NGHTTP2_HEADERS && !g->got_head) {
        if (g->http_status >= 100 && g->http_status < 200)
            return 0; /* interim */
        g->got_head = true;
        g->replayable = false;
        if ((g->http_status != 200 || g->bad_type) && !end) {
            /* not a gRPC response: its status now, its body unread */
            call_finish(g);
            call_reset(g);
            return 0;
        }
    }
    if (end) {
        g->in_end = true;
        call_wake(g);
    }
    return 0;
}

static int on_data_chunk(nghttp2_session *session, uint8_t flags, int32_t stream_id,
                         const uint8_t *data, size_t len, void *user)
{
    (void)flags, (void)user;
    gcall *g = stream_call(session, stream_id);
    if (!g) {
        nghttp2_session_consume(session, stream_id, len); /* nobody reads it */
        return 0;
    }
    /* bounded by the stream's window, which only reads reopen */
    if (wv_buf_append(&g->in, data, len) < 0) {
        nghttp2_session_consume(session, stream_id, len);
        call_error(g, -ENOMEM, "out of memory for a response");
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    wv_event_set(&g->in_ready);
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t stream_id, uint32_t error_code,
                           void *user)
{
    (void)user;
    gcall *g = stream_call(session, stream_id);
    if (!g)
        return 0;
    g->closed = true;
    if (error_code == NGHTTP2_REFUSED_STREAM && g->replayable && !g->retried && !g->got_head) {
        /* refused (RST_STREAM REFUSED_STREAM, or above a GOAWAY's last
         * stream): the server never saw it; once more, on the channel's
         * connection (a new one after a GOAWAY) */
        g->retry_pending = true;
        g->closed = false;
        call_detach(g);
        return 0;
    }
    if (error_code != NGHTTP2_NO_ERROR || !g->in_end)
        g->rst_code = error_code ? error_code : NGHTTP2_INTERNAL_ERROR;
    size_t unread = g->in.n - g->in_off;
    if (unread && !g->in_credited) /* the connection's window; the call keeps the bytes */
        nghttp2_session_consume_connection(session, unread);
    g->in_credited = true;
    call_detach(g);
    return 0;
}

static ssize_t data_source(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                           uint32_t *flags, nghttp2_data_source *source, void *user)
{
    (void)source, (void)user;
    gcall *g = stream_call(session, stream_id);
    if (!g)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* abandoned: reset */
    size_t have = g->out.n - g->out_off;
    if (have == 0 && !g->out_end) {
        g->deferred = true;
        return NGHTTP2_ERR_DEFERRED;
    }
    size_t k = have < length ? have : length;
    if (k)
        memcpy(buf, g->out.p + g->out_off, k);
    g->out_off += k;
    if (g->out_end && g->out_off == g->out.n)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    wv_event_set(&g->out_room);
    return (ssize_t)k;
}

/* ------------------------------------------------------ the connection */

static int64_t backoff_ms(const wv_grpc_channel *ch, int failures)
{
    int64_t d = ch->backoff_base_ms;
    for (int i = 1; i < failures && d < ch->backoff_max_ms; i++)
        d *= 2;
    if (d > ch->backoff_max_ms)
        d = ch->backoff_max_ms;
    /* jittered: between half and all of it */
    return d / 2 + (d > 1 ? (int64_t)((uint64_t)random() % (uint64_t)(d - d / 2 + 1)) : 0);
}

/* The connection is over: every call on it fails UNAVAILABLE (or retries,
 * when it was never seen), and its sub forgets it. */
static void conn_die(gconn *c, int err, const char *why)
{
    if (c->state == C_DEAD)
        return;
    bool was_ready = c->state == C_READY;
    c->state = C_DEAD;
    while (c->calls) {
        gcall *g = c->calls;
        call_error(g, -EAGAIN, "connection to %s lost: %s", c->ch->authority, why);
        call_detach(g);
    }
    gsub *sub = c->sub;
    if (sub && c->goaway) {
        /* a connection being drained: the sub has moved on */
        pulse(&sub->changed);
    } else if (sub) {
        if (sub->conn == c)
            sub->conn = NULL;
        if (was_ready) {
            sub->failures = 0;
            sub->retry_at = 0;
        } else {
            sub->failures++;
            sub->retry_at = wv_now() + backoff_ms(c->ch, sub->failures) * NS_PER_MS;
        }
        sub->err = err;
        snprintf(sub->msg, sizeof sub->msg, "%s", why);
        pulse(&sub->changed);
    }
}

static int writer_main(void *arg)
{
    gconn *c = arg;
    wv_buf batch = {0};
    while (c->state != C_DEAD) {
        wv_event_clear(&c->kick);
        if (h2_flush(c->session, c->s, &batch) < 0) {
            c->write_failed = true;
            break;
        }
        if (wv_event_wait(&c->kick) < 0)
            break;
    }
    wv_buf_free(&batch);
    if (c->write_failed)
        wv_stream_interrupt(c->s); /* wake the reader */
    return 0;
}

static int session_new(gconn *c)
{
    nghttp2_session_callbacks *cb;
    if (nghttp2_session_callbacks_new(&cb) != 0)
        return -ENOMEM;
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_stream_close);
    nghttp2_option *opt;
    if (nghttp2_option_new(&opt) != 0) {
        nghttp2_session_callbacks_del(cb);
        return -ENOMEM;
    }
    nghttp2_option_set_no_auto_window_update(opt, 1);
    int rv = nghttp2_session_client_new2(&c->session, cb, c, opt);
    nghttp2_option_del(opt);
    nghttp2_session_callbacks_del(cb);
    if (rv != 0)
        return -ENOMEM;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
    };
    rv = nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof *iv);
    if (rv == 0)
        rv = nghttp2_session_set_local_window_size(c->session, NGHTTP2_FLAG_NONE, 0, CONN_WINDOW);
    return rv == 0 ? 0 : -ENOMEM;
}

static int conn_main(void *arg)
{
    gconn *c = arg;
    wv_grpc_channel *ch = c->ch;
    char why[MSG_MAX];
    int64_t old = wv_deadline_set(wv_after_ms(ch->connect_timeout_ms));
    wv_dial_opts d = {.tls = ch->tls ? ch->tls_ctx : NULL,
                      .server_name = ch->server_name,
                      .connect_timeout_ms = ch->connect_timeout_ms};
    int rc = wv_dial_host(ch->host, ch->port, &d, &c->s);
    wv_deadline_set(old);
    if (rc < 0) {
        snprintf(why, sizeof why, "%s",
                 rc == -ETIMEDOUT ? "connect timed out"
                 : wv_errmsg()[0] ? wv_errmsg()
                                  : wv_strerror(rc));
        if (rc == -ECANCELED)
            snprintf(why, sizeof why, "the runtime is stopping");
        conn_die(c, rc, why);
        goto out;
    }
    if (ch->tls) {
        const char *alpn = wv_stream_alpn(c->s);
        if (!alpn || strcmp(alpn, "h2") != 0) {
            conn_die(c, -EPROTO, "the server did not choose h2 by ALPN");
            goto out;
        }
    }
    c->fibers = wv_group_new();
    rc = c->fibers ? session_new(c) : -ENOMEM;
    if (rc == 0)
        rc = wv_group_spawn(c->fibers, writer_main, c, &(wv_spawn_opts){.name = "grpc-writer"});
    if (rc < 0) {
        conn_die(c, rc, "cannot start the connection");
        goto out;
    }
    c->state = C_READY;
    if (c->sub) {
        c->sub->failures = 0;
        c->sub->err = 0;
        pulse(&c->sub->changed);
    }
    char *buf = malloc(READ_BUF);
    snprintf(why, sizeof why, "the server closed the connection");
    rc = -ECONNRESET;
    while (buf && c->state == C_READY) {
        if (c->goaway && c->ncalls == 0) {
            snprintf(why, sizeof why, "the server sent GOAWAY");
            break;
        }
        ssize_t got = wv_stream_read(c->s, buf, READ_BUF);
        if (got == 0)
            break;
        if (got < 0) {
            rc = (int)got;
            if (c->goaway && c->ncalls == 0)
                snprintf(why, sizeof why, "the server sent GOAWAY");
            else if (c->write_failed)
                snprintf(why, sizeof why, "writing to it failed");
            else if (got == -ECANCELED)
                snprintf(why, sizeof why, "the runtime is stopping");
            else
                snprintf(why, sizeof why, "%s", wv_strerror(rc));
            break;
        }
        ssize_t rv = nghttp2_session_mem_recv(c->session, (const uint8_t *)buf, (size_t)got);
        if (rv < 0) {
            rc = -EPROTO;
            snprintf(why, sizeof why, "HTTP/2: %s", nghttp2_strerror((int)rv));
            nghttp2_session_terminate_session(c->session, NGHTTP2_PROTOCOL_ERROR);
            kick(c);
            break;
        }
        kick(c);
        if (!nghttp2_session_want_read(c->session) && !nghttp2_session_want_write(c->session))
            break;
    }
    free(buf);
    conn_die(c, rc, why);
out:
    if (c->fibers) {
        wv_group_cancel(c->fibers);
        kick(c);
        wv_group_free(c->fibers);
    }
    if (c->session)
        nghttp2_session_del(c->session);
    wv_stream_close(c->s);
    free(c);
    return 0;
}

/* A new connection for sub, connecting in its own fiber. */
static int conn_start(gshard *sh, gsub *sub)
{
    gconn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->sub = sub;
    c->ch = sub->ch;
    c->state = C_CONNECTING;
    int rc = wv_group_spawn(sh->conns, conn_main, c, &(wv_spawn_opts){.name = "grpc-conn"});
    if (rc < 0) {
        free(c);
        return rc;
    }
    sub->conn = c;
    return 0;
}

/* ------------------------------------------------------------ shards */

static void shard_close(gshard *sh)
{
    sh->closing = true;
    for (gsub *s = sh->subs; s; s = s->next)
        pulse(&s->changed);
    wv_group_free(sh->conns); /* every connection fails its calls and ends */
    sh->conns = NULL;
    while (sh->users > 0) {
        wv_event_clear(&sh->idle);
        wv_event_wait_shielded(&sh->idle);
    }
    while (sh->subs) {
        gsub *s = sh->subs;
        sh->subs = s->next;
        free(s);
    }
    if (here == sh)
        here = NULL;
    free(sh);
}

/* Lives until the runtime cancels it at its stop: then the shard's client
 * goes. */
static int keeper_main(void *arg)
{
    gshard *sh = arg;
    wv_event never = {0};
    while (wv_event_wait(&never) != -ECANCELED)
        ;
    shard_close(sh);
    return 0;
}

static gshard *shard_get(int *err)
{
    if (here) {
        if (!here->closing)
            return here;
        *err = wv_fail(-ESHUTDOWN, "grpc: the runtime is stopping");
        return NULL;
    }
    gshard *sh = calloc(1, sizeof *sh);
    if (!sh || !(sh->conns = wv_group_new())) {
        free(sh);
        *err = wv_fail(-ENOMEM, "grpc: out of memory");
        return NULL;
    }
    int rc = wv_spawn(keeper_main, sh, &(wv_spawn_opts){.name = "grpc-client"});
    if (rc < 0) {
        wv_group_free(sh->conns);
        free(sh);
        *err = wv_fail(rc, "grpc: cannot start the client: %s", wv_strerror(rc));
        return NULL;
    }
    here = sh;
    return sh;
}

static gsub *sub_get(gshard *sh, wv_grpc_channel *ch)
{
    for (gsub *s = sh->subs; s; s = s->next)
        if (s->ch == ch)
            return s;
    gsub *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->ch = ch;
    s->next = sh->subs;
    sh->subs = s;
    return s;
}

/* A ready connection for g: the channel's one on this shard, connecting it
 * when there is none (and no backoff holds). */
static int conn_get(gcall *g, gconn **out)
{
    int rc = 0;
    gshard *sh = shard_get(&rc);
    if (!sh)
        return rc;
    gsub *sub = sub_get(sh, g->ch);
    if (!sub)
        return wv_fail(-ENOMEM, "grpc: out of memory");
    sh->users++;
    for (;;) {
        if (sh->closing) {
            rc = wv_fail(-ESHUTDOWN, "grpc: the runtime is stopping");
            break;
        }
        gconn *c = sub->conn;
        if (c && c->state == C_READY && !c->goaway) {
            *out = c;
            rc = 0;
            break;
        }
        if (c) { /* connecting */
            int64_t d = wv_deadline();
            int64_t old = wv_deadline_set(g->deadline < d ? g->deadline : d);
            rc = wv_event_wait(&sub->changed);
            wv_deadline_set(old);
            if (rc < 0)
                break;
            if (!sub->conn && !g->wait_for_ready && sub->err) {
                rc = -EAGAIN; /* this attempt failed */
                call_error(g, -EAGAIN, "%s", sub->msg);
                break;
            }
            continue;
        }
        int64_t now = wv_now();
        if (now < sub->retry_at) {
            if (!g->wait_for_ready) {
                rc = -EAGAIN;
                call_error(g, -EAGAIN, "%s (reconnecting in %lld ms)", sub->msg,
                           (long long)((sub->retry_at - now) / NS_PER_MS));
                break;
            }
            int64_t d = wv_deadline();
            int64_t old = wv_deadline_set(g->deadline < d ? g->deadline : d);
            rc = wv_sleep_until(sub->retry_at);
            wv_deadline_set(old);
            if (rc < 0)
                break;
            continue;
        }
        sub->err = 0;
        if ((rc = conn_start(sh, sub)) < 0) {
            call_error(g, -EAGAIN, "cannot start a connection: %s", wv_strerror(rc));
            rc = -EAGAIN;
            break;
        }
    }
    if (--sh->users == 0 && sh->closing)
        wv_event_set(&sh->idle);
    return rc;
}

/* ----------------------------------------------------------- the calls */

static ssize_t op_read(wv_grpc_call *c, void *buf, size_t n);
static int op_write(wv_grpc_call *c, const void *p, size_t n);
static const grpc_call_ops client_ops = {.read = op_read, .write = op_write};

/* Open g's stream on a connection (again, for a retry). 0 or the call's
 * result. */
static int call_submit(gcall *g)
{
    gconn *c = NULL;
    int rc = conn_get(g, &c);
    if (rc < 0) {
        if (rc == -ETIMEDOUT || rc == -ECANCELED)
            return call_wait_failed(g, rc);
        if (!g->err)
            call_error(g, rc, "%s", wv_errmsg()[0] ? wv_errmsg() : wv_strerror(rc));
        return call_result(g);
    }
    if (g->timeout_nv >= 0) {
        int n = grpc_timeout_format_deadline(g->deadline, wv_now(), g->timeout);
        if (n < 0)
            return call_wait_failed(g, -ETIMEDOUT);
        g->nv[g->timeout_nv].valuelen = (size_t)n;
    }
    nghttp2_data_provider prd = {.source.ptr = g, .read_callback = data_source};
    int32_t id = nghttp2_submit_request(c->session, NULL, g->nv, g->nnv, &prd, g);
    if (id < 0) {
        call_error(g, -EAGAIN, "HTTP/2: %s", nghttp2_strerror(id));
        return call_result(g);
    }
    g->id = id;
    g->conn = c;
    g->closed = false;
    g->deferred = false;
    g->out_off = 0;
    g->next = c->calls;
    if (c->calls)
        c->calls->prev = g;
    c->calls = g;
    c->ncalls++;
    kick(c);
    return 0;
}

/* A pending transparent retry, done now. */
static int call_retry_if(gcall *g)
{
    if (!g->retry_pending)
        return 0;
    g->retry_pending = false;
    g->retried = true;
    return call_submit(g);
}

static ssize_t op_read(wv_grpc_call *c, void *buf, size_t n)
{
    gcall *g = (gcall *)c;
    int rc = check_call(c);
    if (rc < 0)
        return rc;
    for (;;) {
        if ((rc = call_retry_if(g)) < 0)
            return rc;
        size_t have = g->in.n - g->in_off;
        if (have > 0 && !g->err) {
            size_t k = have < n ? have : n;
            memcpy(buf, g->in.p + g->in_off, k);
            g->in_off += k;
            if (g->in_off == g->in.n)
                g->in.n = g->in_off = 0;
            if (g->conn && !g->in_credited) {
                nghttp2_session_consume(g->conn->session, g->id, k); /* reopen the window */
                kick(g->conn);
            }
            return (ssize_t)k;
        }
        if (g->final_set || g->err || !g->conn || g->in_end) {
            if (g->retry_pending)
                continue;
            return call_result(g);
        }
        wv_event_clear(&g->in_ready);
        if ((rc = call_wait(g, &g->in_ready)) < 0)
            return rc;
    }
}

static void resume(gcall *g)
{
    if (g->conn && g->deferred && !g->closed) {
        g->deferred = false;
        nghttp2_session_resume_data(g->conn->session, g->id);
    }
    if (g->conn)
        kick(g->conn);
}

static int op_write(wv_grpc_call *c, const void *data, size_t n)
{
    gcall *g = (gcall *)c;
    int rc = check_call(c);
    if (rc < 0)
        return rc;
    const char *p = data;
    while (n > 0) {
        if ((rc = call_retry_if(g)) < 0)
            return rc;
        if (g->err || g->final_set || (!g->conn && !g->retry_pending) || g->in_end) {
            call_finish(g);
            if (g->final_code != WV_GRPC_OK)
                return call_result(g);
            return wv_fail(-EPIPE, "%s: the server has ended the call", call_name(g));
        }
        size_t held = g->out.n - g->out_off;
        if (held >= OUT_CAP) {
            /* the peer's window holds the buffer full: wait */
            wv_event_clear(&g->out_room);
            if ((rc = call_wait(g, &g->out_room)) < 0)
                return rc;
            continue;
        }
        if (g->out_off > 0 && g->out.n + n > OUT_CAP) {
            g->replayable = false; /* what was sent is dropped */
            memmove(g->out.p, g->out.p + g->out_off, held);
            g->out.n = held;
            g->out_off = 0;
        }
        size_t k = OUT_CAP - held < n ? OUT_CAP - held : n;
        if (wv_buf_append(&g->out, p, k) < 0)
            return wv_fail(-ENOMEM, "%s: out of memory", call_name(g));
        p += k;
        n -= k;
        resume(g);
    }
    return 0;
}

/* The request head: pseudo-headers, gRPC's, the caller's metadata. One
 * allocation holds the array and the text it points to. */
static int build_head(gcall *g, const wv_grpc_call_opts *opts)
{
    wv_grpc_channel *ch = g->ch;
    char ua[64];
    snprintf(ua, sizeof ua, "weave-grpc/%s", wv_version());
    int rc = grpc_timeout_format_deadline(g->deadline, wv_now(), g->timeout);
    if (rc < 0)
        return rc;
    struct {
        const char *n, *v;
        size_t vn;
    } fixed[] = {
        {":method", "POST", 4},
        {":scheme", ch->tls ? "https" : "http", ch->tls ? 5 : 4},
        {":path", g->base.path, strlen(g->base.path)},
        {":authority", ch->authority, strlen(ch->authority)},
        {"content-type", "application/grpc", 16},
        {"te", "trailers", 8},
        {"user-agent", ua, strlen(ua)},
        {"grpc-accept-encoding", GRPC_ACCEPT_ENCODING, strlen(GRPC_ACCEPT_ENCODING)},
        {"grpc-encoding", "gzip", 4},
        {"grpc-timeout", g->timeout, (size_t)rc},
    };
    size_t nfixed = sizeof fixed / sizeof *fixed;
    size_t nmd = opts ? opts->nmetadata : 0;
    size_t bytes = (nfixed + nmd) * sizeof(nghttp2_nv);
    for (size_t i = 0; i < nfixed; i++)
        bytes += strlen(fixed[i].n) + fixed[i].vn;
    for (size_t i = 0; i < nmd; i++) {
        const wv_grpc_md *m = &opts->metadata[i];
        if (!m->name || !m->value)
            return wv_fail(-EINVAL, "%s: metadata %zu has no name or value", call_name(g), i);
        size_t nn = strlen(m->name);
        size_t vn = m->value_len ? m->value_len : strlen(m->value);
        if (grpc_metadata_check_name(m->name, nn) < 0)
            return wv_fail(-EINVAL, "%s: metadata name \"%s\" is not allowed", call_name(g),
                           m->name);
        bool bin = grpc_metadata_is_binary(m->name, nn);
        if (!bin && grpc_metadata_check_value(m->value, vn) < 0)
            return wv_fail(-EINVAL,
                           "%s: metadata %s: a value of printable ASCII only (or a -bin name)",
                           call_name(g), m->name);
        bytes += nn + (bin ? grpc_base64_encoded_len(vn) : vn);
    }
    nghttp2_nv *nv = malloc(bytes);
    if (!nv)
        return -ENOMEM;
    uint8_t *text = (uint8_t *)(nv + nfixed + nmd);
    size_t k = 0;
    g->timeout_nv = -1;
    for (size_t i = 0; i < nfixed; i++) {
        if (i == 8 && !ch->compress)
            continue;
        if (i == 9) {
            if (rc == 0)
                continue;
            /* pointing at g->timeout: rewritten at each submit */
            g->timeout_nv = (int)k;
            nv[k++] = (nghttp2_nv){(uint8_t *)"grpc-timeout", (uint8_t *)g->timeout, 12, (size_t)rc,
                                   NGHTTP2_NV_FLAG_NONE};
            continue;
        }
        size_t nn = strlen(fixed[i].n);
        nv[k] = (nghttp2_nv){text, text + nn, nn, fixed[i].vn, NGHTTP2_NV_FLAG_NONE};
        memcpy(text, fixed[i].n, nn);
        memcpy(text + nn, fixed[i].v, fixed[i].vn);
        text += nn + fixed[i].vn;
        k++;
    }
    for (size_t i = 0; i < nmd; i++) {
        const wv_grpc_md *m = &opts->metadata[i];
        size_t nn = strlen(m->name);
        size_t vn = m->value_len ? m->value_len : strlen(m->value);
        bool bin = grpc_metadata_is_binary(m->name, nn);
        memcpy(text, m->name, nn);
        size_t wn = bin ? grpc_base64_encode(m->value, vn, (char *)text + nn) : vn;
        if (!bin)
            memcpy(text + nn, m->value, vn);
        nv[k++] = (nghttp2_nv){text, text + nn, nn, wn, NGHTTP2_NV_FLAG_NONE};
        text += nn + wn;
    }
    g->nv = nv;
    g->nnv = k;
    return 0;
}

static void call_free(gcall *g)
{
    call_reset(g);
    grpc_call_release(&g->base);
    wv_buf_free(&g->out);
    wv_buf_free(&g->in);
    free(g->nv);
    free(g->status_msg);
    free(g->final_msg);
    free(g);
}

int wv_grpc_call_start(wv_grpc_channel *ch, const ProtobufCServiceDescriptor *svc,
                       const char *method, const wv_grpc_call_opts *opts, wv_grpc_call **out)
{
    *out = NULL;
    if (!wv_fiber_id() || wv_shard_id() < 0)
        return wv_fail(-EPERM, "grpc: calls are made from a fiber");
    if (!ch)
        return wv_fail(-EINVAL, "grpc: no channel");
    if (wv_cancelled())
        return wv_fail(-ECANCELED, "grpc: the calling fiber is cancelled");
    const ProtobufCMethodDescriptor *m = grpc_method_find(svc, method);
    if (!m)
        return -EINVAL;
    gcall *g = calloc(1, sizeof *g);
    if (!g)
        return wv_fail(-ENOMEM, "grpc: out of memory");
    int rc = grpc_call_init(&g->base, svc, m, false, ch->max_recv, ch->max_send);
    if (rc < 0) {
        free(g);
        return wv_fail(rc, "grpc: out of memory");
    }
    g->base.ops = &client_ops;
    g->base.shard = wv_shard_id();
    g->base.send_gzip = ch->compress;
    g->ch = ch;
    g->status = -1;
    g->replayable = true;
    g->wait_for_ready = opts && opts->wait_for_ready;
    g->deadline = wv_deadline();
    if (opts && opts->timeout_ms > 0) {
        int64_t t = wv_after_ms(opts->timeout_ms);
        if (t < g->deadline)
            g->deadline = t;
    }
    rc = build_head(g, opts);
    if (rc == -ETIMEDOUT) {
        call_error(g, -ETIMEDOUT,
                   "deadline exceeded: the deadline had passed before the call to grpc %s began",
                   ch->authority);
        rc = call_result(g);
    }
    if (rc == 0)
        rc = call_submit(g);
    if (rc < 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", wv_errmsg());
        call_free(g);
        return wv_fail(rc, "%s", msg);
    }
    *out = &g->base;
    return 0;
}

int wv_grpc_close_send(wv_grpc_call *c)
{
    int rc = check_call(c);
    if (rc < 0)
        return rc;
    gcall *g = (gcall *)c;
    if (c->send_closed)
        return 0;
    c->send_closed = true;
    g->out_end = true;
    resume(g);
    return 0;
}

void wv_grpc_cancel(wv_grpc_call *c)
{
    if (!c || check_call(c) < 0)
        return;
    gcall *g = (gcall *)c;
    if (g->final_set)
        return;
    call_error(g, -ECANCELED, "cancelled by the client");
    g->retry_pending = false;
    call_reset(g);
    call_finish(g);
}

int wv_grpc_call_end(wv_grpc_call *c, int *code, char **message)
{
    if (code)
        *code = WV_GRPC_UNKNOWN;
    if (message)
        *message = NULL;
    if (!c)
        return wv_fail(-EINVAL, "grpc: no call");
    int rc = check_call(c);
    if (rc < 0)
        return rc;
    gcall *g = (gcall *)c;
    wv_grpc_close_send(c);
    for (;;) {
        if (g->final_set || g->err)
            break;
        if ((rc = call_retry_if(g)) < 0)
            break;
        if (c->recv_done && c->recv_err < 0) {
            /* a response that could not be read (too large, broken) */
            call_error(g, c->recv_err, "a response message could not be read (%s)",
                       wv_strerror(c->recv_err));
            call_reset(g);
            break;
        }
        bool unread = g->in.n > g->in_off || (c->rbuf_off < c->rbuf_n) || c->reader.prefix_n;
        if (unread) {
            /* messages still arriving unread: cancel */
            call_error(g, -ECANCELED, "ended by the client with messages unread");
            call_reset(g);
            break;
        }
        if (g->in_end || !g->conn)
            break;
        wv_event_clear(&g->in_ready);
        if (call_wait(g, &g->in_ready) < 0)
            break;
    }
    rc = call_result(g);
    if (code)
        *code = g->final_code;
    if (message && g->final_msg)
        *message = strdup(g->final_msg);
    char msg[512];
    snprintf(msg, sizeof msg, "%s", wv_errmsg());
    call_free(g);
    if (rc < 0)
        wv_fail(rc, "%s", msg);
    return rc;
}

int wv_grpc_unary(wv_grpc_channel *ch, const ProtobufCServiceDescriptor *svc, const char *method,
                  const ProtobufCMessage *req, ProtobufCMessage **resp,
                  const wv_grpc_call_opts *opts)
{
    *resp = NULL;
    wv_grpc_call *c;
    int rc = wv_grpc_call_start(ch, svc, method, opts, &c);
    if (rc < 0)
        return rc;
    ProtobufCMessage *m = NULL, *extra = NULL;
    rc = wv_grpc_send(c, req);
    if (rc == -EINVAL && !((gcall *)c)->err &&
        !((gcall *)c)->final_set) { /* the wrong type: ours, not the server's */
        char msg[512];
        snprintf(msg, sizeof msg, "%s", wv_errmsg());
        wv_grpc_cancel(c);
        wv_grpc_call_end(c, NULL, NULL);
        return wv_fail(-EINVAL, "%s", msg);
    }
    if (rc == 0)
        rc = wv_grpc_close_send(c);
    int got = 0;
    if (rc == 0 && (got = wv_grpc_recv(c, &m)) == 1) {
        c->last = NULL; /* ours now: the caller frees it */
        if (wv_grpc_recv(c, &extra) == 1)
            got = 2;
    }
    gcall *g = (gcall *)c;
    if (got == 2) {
        call_error(g, -EPROTO, "more than one response message to a unary call");
        call_reset(g);
    }
    rc = wv_grpc_call_end(c, NULL, NULL);
    if (rc == 0 && got != 1)
        rc = wv_fail(-EPROTO, "%s/%s: INTERNAL: no response message to a unary call", svc->name,
                     method);
    if (rc < 0) {
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        return rc;
    }
    *resp = m;
    return 0;
}

void wv_grpc_free(ProtobufCMessage *msg)
{
    if (msg)
        protobuf_c_message_free_unpacked(msg, NULL);
}

/* ------------------------------------------------------------ channels */

wv_grpc_channel *wv_grpc_channel_new(const char *target, const wv_grpc_channel_opts *opts)
{
    wv_grpc_channel_opts o = opts ? *opts : (wv_grpc_channel_opts){0};
    if (!target || !*target) {
        wv_fail(-EINVAL, "grpc: no target");
        return NULL;
    }
    char *text = NULL;
    if (strstr(target, "://"))
        text = strdup(target);
    else if (asprintf(&text, "http://%s", target) < 0)
        text = NULL;
    if (!text) {
        wv_fail(-ENOMEM, "grpc: out of memory");
        return NULL;
    }
    wv_url u;
    int rc = wv_url_parse(text, &u);
    free(text);
    if (rc < 0)
        return NULL;
    bool tls = strcmp(u.scheme, "https") == 0;
    const char *bad = NULL;
    if (!tls && strcmp(u.scheme, "http") != 0)
        bad = "its scheme is neither http nor https";
    else if (!u.host || !*u.host)
        bad = "it names no host";
    else if (u.user || u.password)
        bad = "it has user information";
    else if ((u.path && *u.path && strcmp(u.path, "/") != 0) || u.query || u.fragment)
        bad = "it has a path, a query or a fragment";
    else if (u.port <= 0 || u.port > 65535)
        bad = "its port is not 1-65535";
    if (bad) {
        char red[256];
        wv_url_redact(target, red, sizeof red);
        wv_fail(-EINVAL, "grpc: bad target \"%s\": %s", red, bad);
        wv_url_free(&u);
        return NULL;
    }
    wv_grpc_channel *ch = calloc(1, sizeof *ch);
    if (!ch) {
        wv_url_free(&u);
        wv_fail(-ENOMEM, "grpc: out of memory");
        return NULL;
    }
    ch->host = strdup(u.host);
    ch->port = u.port;
    ch->tls = tls;
    bool v6 = strchr(u.host, ':') != NULL;
    if (o.authority ? !(ch->authority = strdup(o.authority))
                    : asprintf(&ch->authority, v6 ? "[%s]:%d" : "%s:%d", u.host, u.port) < 0)
        ch->authority = NULL;
    wv_url_free(&u);
    if (o.server_name && !(ch->server_name = strdup(o.server_name))) {
        wv_grpc_channel_free(ch);
        wv_fail(-ENOMEM, "grpc: out of memory");
        return NULL;
    }
    ch->connect_timeout_ms = o.connect_timeout_ms > 0 ? o.connect_timeout_ms : DEFAULT_CONNECT_MS;
    ch->backoff_base_ms = o.backoff_base_ms > 0 ? o.backoff_base_ms : DEFAULT_BACKOFF_BASE_MS;
    ch->backoff_max_ms = o.backoff_max_ms > 0 ? o.backoff_max_ms : DEFAULT_BACKOFF_MAX_MS;
    if (ch->backoff_max_ms < ch->backoff_base_ms)
        ch->backoff_max_ms = ch->backoff_base_ms;
    ch->max_recv = o.max_recv ? o.max_recv : GRPC_DEFAULT_MAX_MESSAGE;
    ch->max_send = o.max_send ? o.max_send : (size_t)UINT32_MAX - GRPC_PREFIX_LEN;
    ch->compress = o.compress;
    if (!ch->host || !ch->authority) {
        wv_grpc_channel_free(ch);
        wv_fail(-ENOMEM, "grpc: out of memory");
        return NULL;
    }
    if (tls) {
        wv_tls_opts t = {.ca_file = o.ca_file, .insecure = o.insecure, .alpn = "h2"};
        if ((rc = wv_tls_ctx_client(&t, &ch->tls_ctx)) < 0) {
            char msg[300];
            snprintf(msg, sizeof msg, "%s", wv_errmsg());
            wv_grpc_channel_free(ch);
            wv_fail(rc, "grpc: %s", msg);
            return NULL;
        }
    }
    return ch;
}

void wv_grpc_channel_free(wv_grpc_channel *ch)
{
    if (!ch)
        return;
    if (ch->tls_ctx)
        wv_tls_ctx_free(ch->tls_ctx);
    free(ch->host);
    free(ch->authority);
    free(ch->server_name);
    free(ch);
}
