/*
 * One AMQP connection's life: the URL, dialing through the net layer, the
 * handshake (protocol header, Start/StartOk with PLAIN, Tune/TuneOk,
 * Open/OpenOk), the reader and writer fibers of each connection made, the
 * heartbeats, connection-level methods (close, blocked, unblocked), and the
 * supervisor that dials again after a drop and recovers the topology,
 * channels and consumers (see amqp_internal.h for the picture).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_internal.h"

static const uint8_t protocol_header[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};

/* ------------------------------------------------------------- helpers */

int amqp_conn_check_shard(const wv_amqp *c)
{
    if (wv_shard_id() != c->shard)
        return wv_fail(-EXDEV, "AMQP: a connection of shard %d used from shard %d", c->shard,
                       wv_shard_id());
    return 0;
}

int amqp_enter(wv_amqp *c)
{
    int rc = amqp_conn_check_shard(c);
    if (rc == 0)
        c->inside++;
    return rc;
}

void amqp_leave(wv_amqp *c)
{
    if (--c->inside == 0 && c->closing)
        wv_event_set(&c->idle_ev);
}

int64_t amqp_deadline_cap(int64_t at)
{
    int64_t old = wv_deadline();
    if (at < old)
        wv_deadline_set(at);
    return old;
}

bool amqp_conn_live(const wv_amqp *c)
{
    return c->state == CONN_UP && !c->broken;
}

void amqp_conn_kick(wv_amqp *c)
{
    wv_event_set(&c->out_ev);
}

int amqp_conn_break(wv_amqp *c, int rc, const char *fmt, ...)
{
    if (c->broken || c->state != CONN_UP)
        return rc;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
    va_end(ap);
    c->err = rc;
    c->broken = true;
    c->ready = false;
    wv_event_clear(&c->ready_ev);
    if (c->s)
        wv_stream_shutdown(c->s, SHUT_RDWR);
    /* no answer will come: the calls waiting for one fail now (the
     * supervisor's own, while it recovers, among them) */
    char msg[AMQP_MSG + 32];
    snprintf(msg, sizeof msg, "AMQP connection lost: %s", c->errmsg);
    for (int id = 1; id <= c->opts.channel_max; id++)
        if (c->chans[id])
            amqp_chan_fail_calls(c->chans[id], -ECONNRESET, msg);
    wv_event_set(&c->sup_ev);
    if (!c->closing)
        wv_warn("AMQP %s: connection lost: %s", c->redacted, c->errmsg);
    return rc;
}

int amqp_conn_wait_ready(wv_amqp *c)
{
    for (;;) {
        if (c->closing)
            return wv_fail(-ESHUTDOWN, "AMQP: the connection is being closed");
        if (c->state == CONN_DEAD)
            return wv_fail(-EPIPE, "AMQP connection closed for good: %s", c->errmsg);
        if (c->ready)
            return 0;
        int rc = wv_event_wait(&c->ready_ev);
        if (rc < 0)
            return wv_fail(rc, "AMQP: waiting for the connection to %s: %s", c->redacted,
                           wv_strerror(rc));
    }
}

int amqp_decode(wv_amqp *c, const amqp_frame *f, uint32_t *id, void **decoded)
{
    *id = amqp_frame_method_id(f);
    if (!amqp_server_method(*id))
        return wv_fail(-EPROTO, "AMQP: the broker sent method 0x%08x, not one a broker sends", *id);
    char why[AMQP_WHY];
    if (*id == AMQP_CONNECTION_START_METHOD && f->size > 6 &&
        amqp_table_check(f->payload + 6, f->size - 6, why) < 0)
        return wv_fail(-EPROTO, "AMQP: connection.start: %s", why);
    int rc = amqp_decode_method(*id, &c->dec_pool,
                                (amqp_bytes_t){f->size - 4, (void *)(f->payload + 4)}, decoded);
    if (rc < 0)
        return wv_fail(rc == AMQP_STATUS_NO_MEMORY ? -ENOMEM : -EPROTO,
                       "AMQP: a malformed %s from the broker", amqp_method_name(*id));
    return 0;
}

/* ---------------------------------------------------------------- URLs */

static int parse_url(wv_amqp *c, const char *url)
{
    wv_url u;
    int rc = wv_url_parse(url, &u);
    if (rc < 0)
        return rc;
    char redacted[512];
    wv_url_redact(url, redacted, sizeof redacted);
    c->redacted = strdup(redacted);
    rc = -EINVAL;
    if (strcmp(u.scheme, "amqp") != 0 && strcmp(u.scheme, "amqps") != 0) {
        wv_fail(rc, "AMQP: %s: the scheme must be amqp or amqps", redacted);
        goto out;
    }
    if (!u.host[0]) {
        wv_fail(rc, "AMQP: %s: no host", redacted);
        goto out;
    }
    c->tls = strcmp(u.scheme, "amqps") == 0;
    c->port = u.port;
    c->host = strdup(u.host);
    c->user = strdup(u.user ? u.user : "guest");
    c->password = strdup(u.password ? u.password : "guest");
    const char *path = u.path[0] == '/' ? u.path + 1 : u.path;
    if (strchr(path, '/')) {
        wv_fail(rc, "AMQP: %s: a vhost with a '/' in it is written %%2F", redacted);
        goto out;
    }
    if (!path[0]) {
        c->vhost = strdup("/");
    } else {
        char vhost[AMQP_NAME];
        if (wv_url_decode(path, strlen(path), vhost, sizeof vhost) < 0) {
            wv_fail(rc, "AMQP: %s: a bad vhost", redacted);
            goto out;
        }
        c->vhost = strdup(vhost);
    }
    const char *v;
    if (!c->opts.heartbeat_s && (v = wv_url_param_get(&u, "heartbeat")))
        c->opts.heartbeat_s = atoi(v) > 0 ? atoi(v) : WV_AMQP_NO_HEARTBEAT;
    if (!c->opts.frame_max && (v = wv_url_param_get(&u, "frame_max")))
        c->opts.frame_max = (uint32_t)strtoul(v, NULL, 10);
    if (!c->opts.channel_max && (v = wv_url_param_get(&u, "channel_max")))
        c->opts.channel_max = (uint16_t)strtoul(v, NULL, 10);
    if (!c->opts.connect_timeout_ms && (v = wv_url_param_get(&u, "connection_timeout")))
        c->opts.connect_timeout_ms = strtoll(v, NULL, 10);
    if ((v = wv_url_param_get(&u, "connection_name")) && !c->opts.connection_name)
        c->name = strdup(v);
    rc = c->host && c->user && c->password && c->vhost ? 0 : -ENOMEM;
out:
    wv_url_free(&u);
    return rc;
}

static void apply_defaults(wv_amqp_opts *o)
{
    if (!o->connect_timeout_ms)
        o->connect_timeout_ms = AMQP_DEFAULT_CONNECT_MS;
    if (!o->heartbeat_s)
        o->heartbeat_s = AMQP_DEFAULT_HEARTBEAT_S;
    if (!o->frame_max)
        o->frame_max = AMQP_DEFAULT_FRAME_MAX;
    if (o->frame_max < AMQP_FRAME_MIN_MAX)
        o->frame_max = AMQP_FRAME_MIN_MAX;
    if (!o->channel_max)
        o->channel_max = AMQP_DEFAULT_CHANNEL_MAX;
    if (!o->max_message)
        o->max_message = AMQP_DEFAULT_MAX_MESSAGE;
    if (!o->prefetch)
        o->prefetch = AMQP_DEFAULT_PREFETCH;
    if (!o->max_unconfirmed)
        o->max_unconfirmed = AMQP_DEFAULT_MAX_UNCONFIRMED;
    if (!o->reconnect_min_ms)
        o->reconnect_min_ms = AMQP_DEFAULT_BACKOFF_MIN_MS;
    if (!o->reconnect_max_ms)
        o->reconnect_max_ms = AMQP_DEFAULT_BACKOFF_MAX_MS;
}

/* ----------------------------------------------------------- handshake */

/* The next method on channel 0 during the handshake (heartbeats skipped). */
static int hs_method(wv_amqp *c, wv_stream *s, uint32_t *id, void **decoded)
{
    for (;;) {
        amqp_frame f;
        char why[AMQP_WHY];
        ssize_t len = amqp_frame_read((const uint8_t *)c->in.p + c->in_off, c->in.n - c->in_off,
                                      c->opts.frame_max, &f, why);
        if (len < 0)
            return wv_fail((int)len, "AMQP %s: %s", c->redacted, why);
        if (len > 0) {
            c->in_off += (size_t)len;
            if (f.type == AMQP_FRAME_HEARTBEAT_TYPE)
                continue;
            if (f.type != AMQP_FRAME_METHOD_TYPE || f.channel != 0)
                return wv_fail(-EPROTO, "AMQP %s: an unexpected frame during the handshake",
                               c->redacted);
            recycle_amqp_pool(&c->dec_pool);
            return amqp_decode(c, &f, id, decoded);
        }
        if (c->in_off) {
            memmove(c->in.p, c->in.p + c->in_off, c->in.n - c->in_off);
            c->in.n -= c->in_off;
            c->in_off = 0;
        }
        if (wv_buf_reserve(&c->in, 16384) < 0)
            return -ENOMEM;
        ssize_t n = wv_stream_read(s, c->in.p + c->in.n, c->in.cap - c->in.n);
        if (n == 0)
            return wv_fail(-ECONNRESET,
                           "AMQP %s: the broker closed the connection during the handshake",
                           c->redacted);
        if (n < 0)
            return wv_fail((int)n, "AMQP %s: during the handshake: %s", c->redacted,
                           wv_strerror((int)n));
        c->in.n += (size_t)n;
    }
}

static int hs_closed(wv_amqp *c, void *decoded)
{
    amqp_connection_close_t *m = decoded;
    int rc = amqp_reply_errno(m->reply_code);
    return wv_fail(rc, "AMQP %s: connection refused: %u %.*s", c->redacted, m->reply_code,
                   (int)m->reply_text.len, (const char *)m->reply_text.bytes);
}

/* The next method, which must be `want` (the broker's connection.close
 * instead: its reply code and text). */
static int hs_expect(wv_amqp *c, wv_stream *s, uint32_t want, const char *name, void **m)
{
    uint32_t id;
    int rc = hs_method(c, s, &id, m);
    if (rc < 0)
        return rc;
    if (id == AMQP_CONNECTION_CLOSE_METHOD && want != AMQP_CONNECTION_START_METHOD)
        return hs_closed(c, *m);
    if (id != want)
        return wv_fail(-EPROTO, "AMQP %s: %s where %s was due", c->redacted, amqp_method_name(id),
                       name);
    return 0;
}

static int hs_send(wv_amqp *c, wv_stream *s, uint32_t id, void *method)
{
    wv_buf b = {0};
    int rc = amqp_put_method(&b, AMQP_FRAME_MIN_MAX, 0, id, method);
    if (rc == 0 && wv_stream_write(s, b.p, b.n) < 0)
        rc = wv_fail(-ECONNRESET, "AMQP %s: writing the handshake failed", c->redacted);
    wv_buf_free(&b);
    return rc;
}

static int send_start_ok(wv_amqp *c, wv_stream *s)
{
    wv_amqp_field caps[] = {
        WV_AMQP_BOOL("publisher_confirms", true),
        WV_AMQP_BOOL("exchange_exchange_bindings", true),
        WV_AMQP_BOOL("basic.nack", true),
        WV_AMQP_BOOL("consumer_cancel_notify", true),
        WV_AMQP_BOOL("connection.blocked", true),
        WV_AMQP_BOOL("authentication_failure_close", true),
        WV_AMQP_BOOL("per_consumer_qos", true),
    };
    const char *name = c->opts.connection_name ? c->opts.connection_name : c->name;
    wv_amqp_field props[] = {
        WV_AMQP_STR("product", "weave"),
        WV_AMQP_STR("version", wv_version()),
        WV_AMQP_STR("platform", "C"),
        WV_AMQP_TABLE("capabilities", caps, (int)(sizeof caps / sizeof caps[0])),
        WV_AMQP_STR("connection_name", name ? name : ""),
    };
    int nprops = name ? 5 : 4;
    size_t ul = strlen(c->user), pl = strlen(c->password);
    char *response = malloc(ul + pl + 2);
    if (!response)
        return -ENOMEM;
    response[0] = '\0';
    memcpy(response + 1, c->user, ul);
    response[1 + ul] = '\0';
    memcpy(response + 2 + ul, c->password, pl);
    amqp_connection_start_ok_t m = {
        .mechanism = amqp_cstring_bytes("PLAIN"),
        .response = {ul + pl + 2, response},
        .locale = amqp_cstring_bytes("en_US"),
    };
    int rc = amqp_table_from_fields(&c->enc_pool, props, nprops, &m.client_properties);
    if (rc == 0)
        rc = hs_send(c, s, AMQP_CONNECTION_START_OK_METHOD, &m);
    recycle_amqp_pool(&c->enc_pool);
    memset(response, 0, ul + pl + 2);
    free(response);
    return rc;
}

static bool offers_plain(amqp_bytes_t mechanisms)
{
    const char *p = mechanisms.bytes, *end = p + mechanisms.len;
    while (p < end) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *word_end = sp ? sp : end;
        if (word_end - p == 5 && memcmp(p, "PLAIN", 5) == 0)
            return true;
        p = word_end + 1;
    }
    return false;
}

static int handshake(wv_amqp *c, wv_stream *s)
{
    c->in.n = c->in_off = 0;
    if (wv_buf_reserve(&c->in, 16384) < 0)
        return -ENOMEM;
    if (wv_stream_write(s, protocol_header, sizeof protocol_header) < 0)
        return wv_fail(-ECONNRESET, "AMQP %s: writing the protocol header failed", c->redacted);
    void *m;
    int rc = hs_expect(c, s, AMQP_CONNECTION_START_METHOD, "connection.start", &m);
    if (rc < 0)
        return rc;
    amqp_connection_start_t *start = m;
    if (start->version_major != 0 || start->version_minor != 9)
        return wv_fail(-EPROTO, "AMQP %s: the broker speaks AMQP %u-%u, not 0-9-1", c->redacted,
                       start->version_major, start->version_minor);
    if (!offers_plain(start->mechanisms))
        return wv_fail(-EACCES, "AMQP %s: the broker does not offer PLAIN authentication",
                       c->redacted);
    if ((rc = send_start_ok(c, s)) < 0)
        return rc;
    if ((rc = hs_expect(c, s, AMQP_CONNECTION_TUNE_METHOD, "connection.tune", &m)) < 0)
        return rc;
    amqp_connection_tune_t *tune = m;
    uint16_t channel_max = tune->channel_max && tune->channel_max < c->opts.channel_max
                               ? tune->channel_max
                               : c->opts.channel_max;
    uint32_t frame_max = tune->frame_max && tune->frame_max < c->opts.frame_max ? tune->frame_max
                                                                                : c->opts.frame_max;
    if (frame_max < AMQP_FRAME_MIN_MAX)
        return wv_fail(-EPROTO, "AMQP %s: the broker asks for frames of %u bytes at most",
                       c->redacted, frame_max);
    int heartbeat = 0;
    if (c->opts.heartbeat_s > 0)
        heartbeat = tune->heartbeat && tune->heartbeat < c->opts.heartbeat_s ? tune->heartbeat
                                                                             : c->opts.heartbeat_s;
    amqp_connection_tune_ok_t tune_ok = {
        .channel_max = channel_max,
        .frame_max = frame_max,
        .heartbeat = (uint16_t)heartbeat,
    };
    if ((rc = hs_send(c, s, AMQP_CONNECTION_TUNE_OK_METHOD, &tune_ok)) < 0)
        return rc;
    amqp_connection_open_t open = {.virtual_host = amqp_cstring_bytes(c->vhost)};
    if ((rc = hs_send(c, s, AMQP_CONNECTION_OPEN_METHOD, &open)) < 0)
        return rc;
    if ((rc = hs_expect(c, s, AMQP_CONNECTION_OPEN_OK_METHOD, "connection.open-ok", &m)) < 0)
        return rc;
    c->channel_max = channel_max;
    c->frame_max = frame_max;
    c->heartbeat_s = heartbeat;
    return 0;
}

/* ------------------------------------------------------ reader, writer */

static int on_connection_method(wv_amqp *c, const amqp_frame *f)
{
    uint32_t id;
    void *m;
    int rc = amqp_decode(c, f, &id, &m);
    if (rc < 0)
        return amqp_conn_break(c, rc, "%s", wv_errmsg());
    switch (id) {
    case AMQP_CONNECTION_CLOSE_METHOD: {
        amqp_connection_close_t *cl = m;
        amqp_connection_close_ok_t ok = {0};
        if (amqp_put_method(&c->out, c->frame_max, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok) == 0)
            amqp_conn_kick(c);
        return amqp_conn_break(c, -ECONNRESET, "AMQP connection closed: %u %.*s", cl->reply_code,
                               (int)cl->reply_text.len, (const char *)cl->reply_text.bytes);
    }
    case AMQP_CONNECTION_CLOSE_OK_METHOD:
        wv_event_set(&c->close_ok_ev);
        return 0;
    case AMQP_CONNECTION_BLOCKED_METHOD: {
        amqp_connection_blocked_t *b = m;
        c->blocked = true;
        wv_event_clear(&c->unblocked_ev);
        wv_info("AMQP %s: the broker blocks publishers: %.*s", c->redacted, (int)b->reason.len,
                (const char *)b->reason.bytes);
        return 0;
    }
    case AMQP_CONNECTION_UNBLOCKED_METHOD:
        c->blocked = false;
        wv_event_set(&c->unblocked_ev);
        wv_info("AMQP %s: the broker unblocked publishers", c->redacted);
        return 0;
    default:
        return amqp_conn_break(c, -EPROTO, "AMQP: %s on channel 0", amqp_method_name(id));
    }
}

static int dispatch(wv_amqp *c, const amqp_frame *f)
{
    if (f->type == AMQP_FRAME_HEARTBEAT_TYPE)
        return 0;
    if (f->channel == 0) {
        if (f->type != AMQP_FRAME_METHOD_TYPE)
            return amqp_conn_break(c, -EPROTO, "AMQP: a content frame on channel 0");
        return on_connection_method(c, f);
    }
    wv_amqp_channel *ch = f->channel <= c->channel_max ? c->chans[f->channel] : NULL;
    if (!ch)
        return 0; /* a channel we closed meanwhile: its stragglers are dropped */
    return amqp_chan_on_frame(ch, f);
}

static int reader_main(void *arg)
{
    wv_amqp *c = arg;
    wv_stream *s = c->s;
    int64_t beat = (int64_t)c->heartbeat_s * 1000000000;
    for (;;) {
        for (;;) {
            amqp_frame f;
            char why[AMQP_WHY];
            ssize_t len = amqp_frame_read((const uint8_t *)c->in.p + c->in_off, c->in.n - c->in_off,
                                          c->frame_max, &f, why);
            if (len < 0) {
                amqp_conn_break(c, (int)len, "AMQP: %s", why);
                return 0;
            }
            if (len == 0)
                break;
            int rc = dispatch(c, &f);
            recycle_amqp_pool(&c->dec_pool);
            if (rc < 0 || c->broken)
                return 0;
            c->in_off += (size_t)len;
        }
        if (c->in_off) {
            memmove(c->in.p, c->in.p + c->in_off, c->in.n - c->in_off);
            c->in.n -= c->in_off;
            c->in_off = 0;
        }
        if (c->in.cap - c->in.n < 16384 && wv_buf_reserve(&c->in, 65536) < 0) {
            amqp_conn_break(c, -ENOMEM, "AMQP: no memory for the input");
            return 0;
        }
        int64_t old = wv_deadline_set(beat ? c->last_rx + 2 * beat : WV_NEVER);
        ssize_t n = wv_stream_read(s, c->in.p + c->in.n, c->in.cap - c->in.n);
        wv_deadline_set(old);
        if (n > 0) {
            c->in.n += (size_t)n;
            c->last_rx = wv_now();
            continue;
        }
        if (n == -ECANCELED)
            return 0;
        if (n == -ETIMEDOUT)
            amqp_conn_break(c, -ETIMEDOUT,
                            "AMQP: the broker missed its heartbeats (nothing for 2 x %d s)",
                            c->heartbeat_s);
        else if (n == 0)
            amqp_conn_break(c, -ECONNRESET, "AMQP: the broker closed the connection");
        else
            amqp_conn_break(c, (int)n, "AMQP: reading from the broker: %s", wv_strerror((int)n));
        return 0;
    }
}

static int writer_main(void *arg)
{
    wv_amqp *c = arg;
    wv_stream *s = c->s;
    int64_t half = (int64_t)c->heartbeat_s * 500000000;
    for (;;) {
        while (c->out.n == 0) {
            wv_event_clear(&c->out_ev);
            int64_t old = wv_deadline_set(half ? c->last_tx + half : WV_NEVER);
            int rc = wv_event_wait(&c->out_ev);
            wv_deadline_set(old);
            if (rc == -ETIMEDOUT && c->out.n == 0)
                amqp_put_heartbeat(&c->out);
            else if (rc < 0 && rc != -ETIMEDOUT)
                return 0;
        }
        wv_buf sent = c->out;
        c->out = c->spare;
        c->spare = sent;
        ssize_t rc = wv_stream_write(s, c->spare.p, c->spare.n);
        c->spare.n = 0;
        c->last_tx = wv_now();
        if (c->out.n < AMQP_OUT_HIGH)
            wv_event_set(&c->room_ev);
        if (rc < 0) {
            if (rc != -ECANCELED)
                amqp_conn_break(c, (int)rc, "AMQP: writing to the broker: %s",
                                wv_strerror((int)rc));
            return 0;
        }
    }
}

/* ------------------------------------------------------ connecting */

static int start_io(wv_amqp *c)
{
    c->io = wv_group_new();
    if (!c->io)
        return -ENOMEM;
    c->last_rx = c->last_tx = wv_now();
    int rc = wv_group_spawn(c->io, reader_main, c, &(wv_spawn_opts){.name = "amqp-reader"});
    if (rc == 0)
        rc = wv_group_spawn(c->io, writer_main, c, &(wv_spawn_opts){.name = "amqp-writer"});
    return rc;
}

/* Dial and shake hands within connect_timeout_ms; on success the
 * connection is up (reader and writer running), not yet recovered. */
static int connect_once(wv_amqp *c)
{
    int64_t at = wv_after_ms(c->opts.connect_timeout_ms);
    int64_t old = amqp_deadline_cap(at);
    wv_dial_opts d = {.connect_timeout_ms = c->opts.connect_timeout_ms, .keepalive_s = 60};
    if (c->tls) {
        d.tls = c->opts.tls ? c->opts.tls : wv_tls_ctx_default();
        if (!d.tls) {
            wv_deadline_set(old);
            return -EPROTO;
        }
    }
    wv_stream *s;
    int rc = wv_dial_host(c->host, c->port, &d, &s);
    if (rc == 0) {
        rc = handshake(c, s);
        if (rc < 0)
            wv_stream_close(s);
    }
    bool timed_out = rc == -ETIMEDOUT && wv_now() >= at && at < old;
    wv_deadline_set(old);
    if (rc < 0)
        return timed_out ? wv_fail(-ETIMEDOUT, "AMQP %s: no connection within %lld ms", c->redacted,
                                   (long long)c->opts.connect_timeout_ms)
                         : rc;
    c->s = s;
    c->state = CONN_UP;
    c->broken = false;
    c->epoch++;
    c->out.n = c->spare.n = 0;
    c->blocked = false;
    wv_event_set(&c->unblocked_ev);
    wv_event_set(&c->room_ev);
    wv_event_clear(&c->close_ok_ev);
    rc = start_io(c);
    if (rc < 0)
        return amqp_conn_break(c, rc, "AMQP: cannot start the connection's fibers");
    return 0;
}

/* The epoch is over: stop its fibers, close its stream, fail what was in
 * flight (rc), forget every channel's state on the wire. */
static void teardown(wv_amqp *c, int rc, const char *msg)
{
    c->ready = false;
    wv_event_clear(&c->ready_ev);
    if (c->s)
        wv_stream_shutdown(c->s, SHUT_RDWR);
    wv_group_free(c->io);
    c->io = NULL;
    wv_stream_close(c->s);
    c->s = NULL;
    c->state = CONN_DOWN;
    c->broken = false;
    c->in.n = c->in_off = c->out.n = c->spare.n = 0;
    c->blocked = false;
    wv_event_set(&c->unblocked_ev);
    wv_event_set(&c->room_ev);
    for (int id = 1; id <= c->opts.channel_max; id++)
        if (c->chans[id])
            amqp_chan_lost(c->chans[id], rc, msg, true);
}

/* Declare the topology again and reopen the channels. */
static int recover(wv_amqp *c)
{
    wv_amqp_channel *rch;
    int rc = amqp_chan_new(c, true, &rch);
    if (rc < 0)
        return rc;
    rc = amqp_chan_open_wire(rch);
    if (rc == 0)
        rc = amqp_topo_replay(c, rch);
    if (rc == 0 && rch->state == CH_OPEN) {
        amqp_channel_close_t close = {.reply_code = AMQP_REPLY_SUCCESS};
        amqp_chan_rpc(rch, AMQP_CHANNEL_CLOSE_METHOD, &close, AMQP_CHANNEL_CLOSE_OK_METHOD, 0,
                      NULL);
    }
    amqp_chan_detach(rch, -EPIPE, "AMQP: the recovery channel is closed");
    for (int id = 1; rc == 0 && id <= c->opts.channel_max; id++) {
        wv_amqp_channel *ch = c->chans[id];
        if (ch && !ch->internal && ch->state == CH_CLOSED)
            rc = amqp_chan_open_wire(ch);
    }
    return rc < 0 ? rc : amqp_conn_live(c) ? 0 : -ECONNRESET;
}

static bool always_retry(int rc, void *arg)
{
    return true;
}

static int reconnect_attempt(void *arg, wv_retry_attempt *attempt)
{
    wv_amqp *c = arg;
    if (c->closing)
        return -ECANCELED;
    int rc = connect_once(c);
    if (rc == 0) {
        /* a broker that stops answering mid-way must not hold recovery */
        int64_t old = amqp_deadline_cap(wv_after_ms(3 * c->opts.connect_timeout_ms));
        rc = recover(c);
        wv_deadline_set(old);
        if (rc < 0) {
            char msg[1100];
            snprintf(msg, sizeof msg, "AMQP: recovering after a reconnect failed: %s", wv_errmsg());
            teardown(c, -ECONNRESET, msg);
        }
    }
    if (rc < 0)
        wv_debug("AMQP %s: reconnect attempt %d: %s", c->redacted, attempt->number, wv_errmsg());
    /* a dial that timed out is retried like any other failure */
    return rc == -ETIMEDOUT && !wv_cancelled() ? -EAGAIN : rc;
}

static void reopen_channels(wv_amqp *c)
{
    for (int id = 1; id <= c->opts.channel_max; id++) {
        wv_amqp_channel *ch = c->chans[id];
        if (!ch || !ch->reopen_wanted)
            continue;
        ch->reopen_wanted = false;
        if (ch->state == CH_CLOSED && amqp_chan_ready(ch) < 0)
            wv_warn("AMQP %s: reopening channel %u: %s", c->redacted, id, wv_errmsg());
    }
}

static bool reopen_wanted(const wv_amqp *c)
{
    for (int id = 1; id <= c->opts.channel_max; id++)
        if (c->chans[id] && c->chans[id]->reopen_wanted)
            return true;
    return false;
}

static int supervisor_main(void *arg)
{
    wv_amqp *c = arg;
    for (;;) {
        while (!c->broken && !c->closing && !(c->ready && reopen_wanted(c))) {
            wv_event_clear(&c->sup_ev);
            if (wv_event_wait(&c->sup_ev) == -ECANCELED)
                return 0;
        }
        if (c->closing)
            return 0;
        if (!c->broken) {
            reopen_channels(c);
            continue;
        }
        char msg[AMQP_MSG + 32];
        snprintf(msg, sizeof msg, "AMQP connection lost: %s", c->errmsg);
        teardown(c, -ECONNRESET, msg);
        if (c->opts.no_reconnect) {
            c->state = CONN_DEAD;
            wv_event_set(&c->ready_ev);
            return 0;
        }
        wv_retry_opts r = {
            .max_attempts = INT32_MAX,
            .base_ms = c->opts.reconnect_min_ms,
            .max_ms = c->opts.reconnect_max_ms,
            .retryable = always_retry,
        };
        int rc;
        do
            rc = wv_retry(&r, reconnect_attempt, c);
        while (rc < 0 && rc != -ECANCELED && !c->closing);
        if (rc < 0)
            return 0;
        c->stats.reconnects++;
        c->ready = true;
        wv_event_set(&c->ready_ev);
        wv_info("AMQP %s: reconnected (%llu so far)", c->redacted,
                (unsigned long long)c->stats.reconnects);
    }
}

/* ----------------------------------------------------------- public */

static void conn_free(wv_amqp *c)
{
    amqp_topo_free(c);
    free(c->chans);
    wv_buf_free(&c->in);
    wv_buf_free(&c->out);
    wv_buf_free(&c->spare);
    empty_amqp_pool(&c->dec_pool);
    empty_amqp_pool(&c->enc_pool);
    if (c->password)
        memset(c->password, 0, strlen(c->password));
    free(c->host);
    free(c->user);
    free(c->password);
    free(c->vhost);
    free(c->name);
    free(c->redacted);
    free(c);
}

int wv_amqp_open(const char *url, const wv_amqp_opts *opts, wv_amqp **out)
{
    *out = NULL;
    if (wv_shard_id() < 0)
        return -EPERM;
    if (!url)
        return wv_fail(-EINVAL, "AMQP: no URL");
    wv_amqp *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    if (opts)
        c->opts = *opts;
    c->shard = wv_shard_id();
    init_amqp_pool(&c->dec_pool, 4096);
    init_amqp_pool(&c->enc_pool, 4096);
    int rc = parse_url(c, url);
    if (rc < 0) {
        conn_free(c);
        return rc;
    }
    apply_defaults(&c->opts);
    c->opts.connection_name = NULL; /* copied into c->name below */
    if (opts && opts->connection_name) {
        free(c->name);
        c->name = strdup(opts->connection_name);
    }
    c->chans = calloc((size_t)c->opts.channel_max + 1, sizeof *c->chans);
    if (!c->chans) {
        conn_free(c);
        return -ENOMEM;
    }
    wv_event_set(&c->room_ev);
    wv_event_set(&c->unblocked_ev);
    rc = connect_once(c);
    if (rc == 0) {
        c->sup = wv_group_new();
        rc = c->sup ? wv_group_spawn(c->sup, supervisor_main, c,
                                     &(wv_spawn_opts){.name = "amqp-supervisor"})
                    : -ENOMEM;
        if (rc < 0)
            teardown(c, rc, "AMQP: cannot start the supervisor");
    }
    if (rc < 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", wv_errmsg());
        wv_group_free(c->sup);
        conn_free(c);
        return wv_fail(rc, "%s", msg);
    }
    c->ready = true;
    wv_event_set(&c->ready_ev);
    *out = c;
    return 0;
}

void wv_amqp_close(wv_amqp *c)
{
    if (!c || amqp_conn_check_shard(c) < 0)
        return;
    if (c->closing)
        return;
    c->closing = true;
    if (amqp_conn_live(c)) {
        amqp_connection_close_t m = {.reply_code = AMQP_REPLY_SUCCESS,
                                     .reply_text = amqp_cstring_bytes("bye")};
        if (amqp_put_method(&c->out, c->frame_max, 0, AMQP_CONNECTION_CLOSE_METHOD, &m) == 0) {
            amqp_conn_kick(c);
            int64_t old = amqp_deadline_cap(wv_after_ms(AMQP_CLOSE_WAIT_MS));
            wv_event_wait(&c->close_ok_ev);
            wv_deadline_set(old);
        }
    }
    amqp_conn_break(c, -ESHUTDOWN, "AMQP: the connection was closed");
    wv_group_free(c->sup);
    c->sup = NULL;
    teardown(c, -ESHUTDOWN, "AMQP: the connection was closed");
    c->state = CONN_DEAD;
    /* wake every fiber waiting inside a call, let them all leave, then free */
    wv_event_set(&c->ready_ev);
    wv_event_set(&c->unblocked_ev);
    wv_event_set(&c->room_ev);
    for (int id = 1; id <= c->opts.channel_max; id++) {
        wv_amqp_channel *ch = c->chans[id];
        if (!ch)
            continue;
        for (wv_amqp_consumer *co = ch->consumers; co; co = co->next)
            amqp_consumer_end(co);
        wv_event_set(&ch->room_ev);
    }
    while (c->inside > 0) {
        wv_event_clear(&c->idle_ev);
        wv_event_wait_shielded(&c->idle_ev);
    }
    for (int id = 1; id <= c->opts.channel_max; id++) {
        wv_amqp_channel *ch = c->chans[id];
        if (!ch)
            continue;
        while (ch->consumers)
            amqp_consumer_destroy(ch->consumers);
        amqp_chan_detach(ch, -ESHUTDOWN, "AMQP: the connection was closed");
    }
    conn_free(c);
}

bool wv_amqp_connected(const wv_amqp *c)
{
    return c->ready;
}

bool wv_amqp_blocked(const wv_amqp *c)
{
    return c->blocked;
}

void wv_amqp_stats_get(const wv_amqp *c, wv_amqp_stats *st)
{
    *st = c->stats;
    st->frame_max = c->frame_max;
    st->heartbeat_s = c->heartbeat_s;
}
