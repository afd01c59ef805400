/*
 * One memcached connection: a wv_mux (the net layer's shared connection:
 * the ordered queue of requests, auto-pipelined sends, the reader that
 * hands each reply to its request) framed by the codec's reply parser;
 * dialing and the probe that picks the dialect (`mn`: MN means meta, ERROR
 * classic); the encoding of each command in either dialect, and the
 * delivery of each reply as a result.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memcache/memcache_internal.h"

/* ------------------------------------------------------------- framing */

/*
 * One reply, or a classic get's VALUE lines and their END together: the
 * only memcached answer of several lines, and the request asked for all of
 * it. The first reply's facts stay in c->reply for the deliver function,
 * which the mux calls with this same reply before it frames the next.
 */
static ssize_t frame(void *ctx, const char *p, size_t n, char *why, size_t why_size)
{
    mc_conn *c = ctx;
    if (c->out_of_step) {
        snprintf(why, why_size,
                 "a reply did not answer its request (the connection is out of step)");
        return -EPROTO;
    }
    ssize_t len = mc_parse_reply(p, n, c->max_value, &c->reply, why, why_size);
    if (len <= 0 || c->reply.kind != MC_VALUE)
        return len;
    size_t at = (size_t)len;
    for (;;) {
        mc_reply next;
        ssize_t k = mc_parse_reply(p + at, n - at, c->max_value, &next, why, why_size);
        if (k <= 0)
            return k;
        at += (size_t)k;
        if (next.kind == MC_END)
            return (ssize_t)at;
        if (next.kind != MC_VALUE) {
            snprintf(why, why_size, "a get's VALUE is followed by another reply, not END");
            return -EPROTO;
        }
    }
}

/* ------------------------------------------------------------- delivery */

/* The server's words of an error reply, for messages. */
static const char *error_word(mc_reply_kind k)
{
    return k == MC_CLIENT_ERROR ? "CLIENT_ERROR" : k == MC_SERVER_ERROR ? "SERVER_ERROR" : "ERROR";
}

/* An error reply as an errno: CLIENT_ERROR is the request's fault, the
 * others the server's. */
static int error_rc(mc_reply_kind k)
{
    return k == MC_CLIENT_ERROR ? -EINVAL : -EIO;
}

static bool is_error(mc_reply_kind k)
{
    return k == MC_ERROR || k == MC_CLIENT_ERROR || k == MC_SERVER_ERROR;
}

static const char *kind_name(mc_reply_kind k)
{
    static const char *const names[] = {
        [MC_HD] = "HD",           [MC_VA] = "VA",
        [MC_EN] = "EN",           [MC_NF] = "NF",
        [MC_NS] = "NS",           [MC_EX] = "EX",
        [MC_MN] = "MN",           [MC_ME] = "ME",
        [MC_VALUE] = "VALUE",     [MC_END] = "END",
        [MC_STORED] = "STORED",   [MC_NOT_STORED] = "NOT_STORED",
        [MC_EXISTS] = "EXISTS",   [MC_NOT_FOUND] = "NOT_FOUND",
        [MC_DELETED] = "DELETED", [MC_TOUCHED] = "TOUCHED",
        [MC_OK] = "OK",           [MC_NUMBER] = "a number",
        [MC_VERSION] = "VERSION",
    };
    return (size_t)k < sizeof names / sizeof *names && names[k] ? names[k] : "an error";
}

/* A reply that cannot answer the request: the connection is out of step.
 * The next reply framed breaks it, and so does the next request
 * (mc_conn_usable). */
static void out_of_step(mc_op *op, const mc_reply *r)
{
    static const char *const commands[] = {
        [MC_CMD_GET] = "get",   [MC_CMD_SET] = "set",     [MC_CMD_DELETE] = "delete",
        [MC_CMD_INCR] = "incr", [MC_CMD_TOUCH] = "touch", [MC_CMD_PING] = "ping",
    };
    op->conn->out_of_step = true;
    wv_mux_req_fail(&op->req, -EPROTO, "%s: %s answered a %s", op->conn->server->label,
                    kind_name(r->kind), commands[op->kind]);
}

/* The decimal number of a meta ma's VA value. */
static bool parse_number(const char *p, size_t n, uint64_t *out)
{
    if (n == 0 || n > 20)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* One key of a multi-get: its reply into its item. */
static void deliver_item(mc_op *op, const mc_reply *r, const char *p)
{
    wv_memcache_item *it = op->items[op->req.got];
    const char *label = op->conn->server->label;
    if (r->kind == MC_VA || r->kind == MC_VALUE) {
        if (wv_buf_append(&it->value, p + r->value.off, r->value.len) < 0) {
            it->rc = -ENOMEM;
            if (op->item_rc == 0) {
                op->item_rc = -ENOMEM;
                snprintf(op->item_msg, sizeof op->item_msg,
                         "%s: a value of %zu bytes does not fit the buffer", label, r->value.len);
            }
            return;
        }
        it->flags = r->client_flags;
        it->cas = r->cas;
        it->rc = 1;
    } else if (r->kind == MC_EN || r->kind == MC_END) {
        it->rc = 0;
    } else if (is_error(r->kind)) {
        it->rc = error_rc(r->kind);
        if (op->item_rc == 0) {
            op->item_rc = it->rc;
            snprintf(op->item_msg, sizeof op->item_msg, "%s: %s %.*s", label, error_word(r->kind),
                     (int)r->text.len, p + r->text.off);
        }
    } else {
        it->rc = -EPROTO;
        out_of_step(op, r);
    }
}

/* The reply's meaning for op's command: 1, 0, or a failure in op->req. */
static void deliver(wv_mux_req *req, char *p, size_t len)
{
    (void)len;
    mc_op *op = (mc_op *)req;
    const mc_reply *r = &op->conn->reply;
    if (op->items) {
        deliver_item(op, r, p);
        return;
    }
    if (is_error(r->kind) && !(op->kind == MC_CMD_PING && r->kind == MC_ERROR)) {
        wv_mux_req_fail(&op->req, error_rc(r->kind), "%s: %s %.*s", op->conn->server->label,
                        error_word(r->kind), (int)r->text.len, p + r->text.off);
        return;
    }
    switch (op->kind) {
    case MC_CMD_GET:
        if (r->kind == MC_VA || r->kind == MC_VALUE || r->kind == MC_HD) {
            if (op->value && wv_buf_append(op->value, p + r->value.off, r->value.len) < 0) {
                wv_mux_req_fail(&op->req, -ENOMEM,
                                "%s: a value of %zu bytes does not fit the buffer",
                                op->conn->server->label, r->value.len);
                return;
            }
            op->flags = r->client_flags;
            op->cas = r->cas;
            op->result = 1;
            return;
        }
        if (r->kind == MC_EN || r->kind == MC_END) {
            op->result = 0;
            return;
        }
        break;
    case MC_CMD_SET:
        if (r->kind == MC_HD || r->kind == MC_STORED) {
            op->result = 1;
            return;
        }
        if (r->kind == MC_NS || r->kind == MC_EX || r->kind == MC_NF || r->kind == MC_NOT_STORED ||
            r->kind == MC_EXISTS || r->kind == MC_NOT_FOUND) {
            op->result = 0;
            return;
        }
        break;
    case MC_CMD_DELETE:
    case MC_CMD_TOUCH:
        if (r->kind == MC_HD || r->kind == MC_DELETED || r->kind == MC_TOUCHED) {
            op->result = 1;
            return;
        }
        if (r->kind == MC_NF || r->kind == MC_EN || r->kind == MC_NOT_FOUND) {
            op->result = 0;
            return;
        }
        break;
    case MC_CMD_INCR:
        if (r->kind == MC_NUMBER) {
            op->number = r->number;
            op->result = 1;
            return;
        }
        if (r->kind == MC_VA) {
            if (!parse_number(p + r->value.off, r->value.len, &op->number))
                break;
            op->result = 1;
            return;
        }
        if (r->kind == MC_NF || r->kind == MC_NOT_FOUND) {
            op->result = 0;
            return;
        }
        break;
    case MC_CMD_PING:
        if (r->kind == MC_MN || r->kind == MC_VERSION || r->kind == MC_ERROR) {
            op->meta_reply = r->kind == MC_MN;
            op->result = r->kind != MC_ERROR;
            return;
        }
        break;
    }
    out_of_step(op, r);
}

/* ------------------------------------------------------------- encoding */

static int encode_set(wv_buf *b, bool meta, const mc_cmd *cmd)
{
    const wv_memcache_set_opts *o = cmd->set;
    bool append = o->mode == WV_MEMCACHE_APPEND || o->mode == WV_MEMCACHE_PREPEND;
    if (meta) {
        static const mc_ms_mode modes[] = {
            [WV_MEMCACHE_SET] = MC_MS_SET,         [WV_MEMCACHE_ADD] = MC_MS_ADD,
            [WV_MEMCACHE_REPLACE] = MC_MS_REPLACE, [WV_MEMCACHE_APPEND] = MC_MS_APPEND,
            [WV_MEMCACHE_PREPEND] = MC_MS_PREPEND,
        };
        /* append and prepend keep the item's flags and TTL, as the classic
         * commands do (they send them, and the server ignores them) */
        mc_ms_opts mo = {
            .mode = modes[o->mode],
            .client_flags = append ? 0 : o->flags,
            .ttl = append ? 0 : o->ttl_s,
            .compare_cas = o->compare_cas,
        };
        return mc_encode_ms(b, cmd->key.p, cmd->key.n, cmd->value.p, cmd->value.n, &mo);
    }
    static const mc_store_cmd cmds[] = {
        [WV_MEMCACHE_SET] = MC_SET,         [WV_MEMCACHE_ADD] = MC_ADD,
        [WV_MEMCACHE_REPLACE] = MC_REPLACE, [WV_MEMCACHE_APPEND] = MC_APPEND,
        [WV_MEMCACHE_PREPEND] = MC_PREPEND,
    };
    mc_store_opts so = {.flags = o->flags, .exptime = o->ttl_s, .cas = o->compare_cas};
    return mc_encode_store(b, o->compare_cas ? MC_CAS : cmds[o->mode], cmd->key.p, cmd->key.n,
                           cmd->value.p, cmd->value.n, &so);
}

static int encode(wv_buf *b, bool meta, const mc_cmd *cmd)
{
    const char *k = cmd->key.p;
    size_t n = cmd->key.n;
    switch (cmd->kind) {
    case MC_CMD_GET:
        if (meta)
            return mc_encode_mg(
                b, k, n, &(mc_mg_opts){.value = true, .client_flags = true, .cas = cmd->want_cas});
        return mc_encode_get(b, &cmd->key, 1, cmd->want_cas);
    case MC_CMD_SET:
        return encode_set(b, meta, cmd);
    case MC_CMD_DELETE:
        return meta ? mc_encode_md(b, k, n, NULL) : mc_encode_delete(b, k, n, false);
    case MC_CMD_INCR: {
        /* the magnitude of a negative delta, INT64_MIN included */
        uint64_t d = cmd->delta < 0 ? (uint64_t)0 - (uint64_t)cmd->delta : (uint64_t)cmd->delta;
        if (meta)
            return mc_encode_ma(
                b, k, n, d,
                &(mc_ma_opts){.mode = cmd->delta < 0 ? MC_MA_DECR : MC_MA_INCR, .value = true});
        return cmd->delta < 0 ? mc_encode_decr(b, k, n, d, false)
                              : mc_encode_incr(b, k, n, d, false);
    }
    case MC_CMD_TOUCH:
        if (meta)
            return mc_encode_mg(b, k, n, &(mc_mg_opts){.touch = true, .touch_ttl = cmd->ttl});
        return mc_encode_touch(b, k, n, cmd->ttl, false);
    case MC_CMD_PING:
        return meta ? mc_encode_mn(b) : mc_encode_version(b);
    }
    return -EINVAL;
}

int mc_conn_queue(mc_conn *c, mc_op *op, const mc_cmd *cmd)
{
    if (wv_mux_broken(c->mux))
        return wv_mux_error(c->mux);
    wv_buf *out = wv_mux_out(c->mux);
    size_t mark = out->n;
    int rc = encode(out, c->meta, cmd);
    if (rc < 0) {
        out->n = mark;
        return wv_fail(rc, "%s: %s", c->server->label,
                       rc == -ENOMEM ? "no memory for a request" : "cannot encode the request");
    }
    op->kind = cmd->kind;
    op->conn = c;
    op->req.deliver = deliver;
    return wv_mux_push(c->mux, &op->req);
}

int mc_conn_queue_gets(mc_conn *c, mc_op *op, wv_memcache_item **items, int n)
{
    if (wv_mux_broken(c->mux))
        return wv_mux_error(c->mux);
    wv_buf *out = wv_mux_out(c->mux);
    size_t mark = out->n;
    for (int i = 0; i < n; i++) {
        mc_cmd cmd = {.kind = MC_CMD_GET, .key = items[i]->key, .want_cas = true};
        int rc = encode(out, c->meta, &cmd);
        if (rc < 0) {
            out->n = mark;
            return wv_fail(rc, "%s: no memory for a request", c->server->label);
        }
    }
    op->kind = MC_CMD_GET;
    op->items = items;
    op->conn = c;
    op->req.deliver = deliver;
    op->req.replies = n;
    return wv_mux_push(c->mux, &op->req);
}

bool mc_conn_usable(mc_conn *c)
{
    if (c->out_of_step && !wv_mux_broken(c->mux))
        wv_mux_fail(c->mux, -EPROTO, "%s: a reply did not answer its request", c->server->label);
    return !wv_mux_broken(c->mux);
}

void mc_conn_close(mc_conn *c)
{
    if (!c)
        return;
    wv_mux_close(c->mux); /* fails what waits first: nothing reads c after */
    free(c);
}

/* ------------------------------------------------------------- opening */

/* Which dialect: mn answered with MN (meta) or ERROR (classic). */
static int probe(mc_conn *c)
{
    mc_op op = {0};
    mc_cmd cmd = {.kind = MC_CMD_PING};
    c->meta = true; /* encode mn */
    int rc = mc_conn_queue(c, &op, &cmd);
    if (rc == 0)
        rc = wv_mux_wait(c->mux, &op.req);
    if (rc < 0)
        return rc;
    c->meta = op.meta_reply;
    return 0;
}

int mc_conn_open(wv_memcache *m, mc_server *s, mc_conn **out)
{
    *out = NULL;
    mc_conn *c = calloc(1, sizeof *c);
    if (!c)
        return wv_fail(-ENOMEM, "%s: no memory for a connection", s->label);
    c->server = s;
    c->max_value = m->max_value;

    int64_t old = wv_deadline();
    int64_t at = wv_after_ms(m->connect_timeout_ms);
    wv_deadline_set(old < at ? old : at);
    wv_dial_opts d = {.connect_timeout_ms = m->connect_timeout_ms};
    wv_stream *st;
    int rc = wv_dial_host(s->host, s->port, &d, &st);
    if (rc >= 0) {
        wv_mux_opts mo = {
            .frame = frame,
            .ctx = c,
            .name = s->label,
            .no_autopipeline = !m->autopipeline,
            .response_timeout_ms = m->response_timeout_ms,
            /* one value with its VALUE and END lines: the largest reply */
            .max_reply = m->max_value + 2 * (MC_LINE_MAX + 2),
            .writes = &s->writes,
            .queued = &s->requests,
        };
        if ((rc = wv_mux_new(st, &mo, &c->mux)) >= 0 && !m->classic)
            rc = probe(c);
    }
    wv_deadline_set(old);
    if (rc >= 0)
        rc = wv_mux_share(c->mux);
    if (rc < 0) {
        /* every message names the server: the dial's does not yet */
        if (strncmp(wv_errmsg(), s->label, strlen(s->label)) != 0) {
            char why[MEMCACHE_MSG];
            snprintf(why, sizeof why, "%s", wv_errmsg());
            wv_fail(rc, "%s: %s", s->label, why[0] ? why : wv_strerror(rc));
        }
        if (c->mux)
            mc_conn_close(c);
        else
            free(c);
        return rc;
    }
    *out = c;
    return 0;
}
