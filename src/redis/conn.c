/*
 * One Redis connection: a wv_mux (the shared-connection machinery of the
 * net layer: the ordered queue of requests, auto-pipelined sends, the
 * reader that hands each reply to its request, breaking so every request
 * completes exactly once) with RESP as its framing, plus dialing and the
 * greeting (HELLO 3 with AUTH and SETNAME, or AUTH on RESP2; SELECT).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis_internal.h"

/* ------------------------------------------------------------ framing */

static ssize_t frame(void *ctx, const char *p, size_t n, char *why, size_t why_size)
{
    redis_conn *c = ctx;
    ssize_t len = resp_scan(&c->scan, p, n);
    if (len < 0)
        snprintf(why, why_size, "%s", c->scan.err);
    return len;
}

/* RESP3 push messages answer no command: they go to the connection's push
 * handler (none on a shared connection: dropped). */
static bool unsolicited(void *ctx, char *p, size_t len)
{
    redis_conn *c = ctx;
    return c->proto == 3 && c->scan.push;
}

static void deliver(wv_mux_req *r, char *p, size_t len)
{
    redis_op *op = (redis_op *)r;
    op->deliver(op, p, len, &op->conn->scan);
}

/* ------------------------------------------------------------- failing */

void redis_op_fail(redis_op *op, int rc, const char *fmt, ...)
{
    if (op->req.rc < 0)
        return;
    char msg[WV_MUX_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    wv_mux_req_fail(&op->req, rc, "%s", msg);
}

void redis_conn_fail(redis_conn *c, int rc, const char *fmt, ...)
{
    char msg[WV_MUX_MSG];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    wv_mux_fail(c->mux, rc, "%s", msg);
}

/* ------------------------------------------------------------- requests */

int redis_conn_queue(redis_conn *c, redis_op *op, int argc, const wv_str *argv)
{
    if (wv_mux_broken(c->mux))
        return wv_mux_error(c->mux);
    int rc = resp_append_command(wv_mux_out(c->mux), argc, argv);
    if (rc < 0)
        return wv_fail(rc, "redis: no memory for a command");
    op->conn = c;
    op->req.deliver = deliver;
    return wv_mux_push(c->mux, &op->req);
}

int redis_conn_queue_raw(redis_conn *c, redis_op *op, const char *p, size_t n)
{
    op->conn = c;
    op->req.deliver = deliver;
    return wv_mux_send(c->mux, &op->req, p, n);
}

int redis_conn_wait(redis_conn *c, redis_op *op)
{
    return wv_mux_wait(c->mux, &op->req);
}

int redis_conn_call(redis_conn *c, redis_op *op, int argc, const wv_str *argv)
{
    int rc = redis_conn_queue(c, op, argc, argv);
    return rc < 0 ? rc : redis_conn_wait(c, op);
}

int redis_conn_read_reply(redis_conn *c, char **p, size_t *len)
{
    return wv_mux_read(c->mux, p, len);
}

void redis_conn_close(redis_conn *c)
{
    if (!c)
        return;
    wv_mux_close(c->mux); /* fails what waits first: nothing reads c after */
    redis_config_unref((redis_config *)c->cfg);
    free(c);
}

/* ------------------------------------------------------------- greeting */

static bool msg_starts(const redis_op *op, const char *prefix)
{
    return strncmp(op->req.msg, prefix, strlen(prefix)) == 0;
}

/* RESP2: AUTH, CLIENT SETNAME. */
static int greet_resp2(redis_conn *c)
{
    const redis_config *cfg = c->cfg;
    redis_op op = {.deliver = redis_deliver_status};
    int rc = 0;
    if (cfg->password) {
        wv_str auth[3] = {WV_STR("AUTH")};
        int n = 1;
        if (cfg->user)
            auth[n++] = (wv_str){cfg->user, strlen(cfg->user)};
        auth[n++] = (wv_str){cfg->password, strlen(cfg->password)};
        rc = redis_conn_call(c, &op, n, auth);
        if (rc == -EIO)
            return wv_fail(-EACCES, "redis %s: authentication failed: %s", cfg->redacted,
                           op.req.msg);
        if (rc < 0)
            return rc;
    }
    if (cfg->client_name) {
        op = (redis_op){.deliver = redis_deliver_status};
        wv_str setname[3] = {
            WV_STR("CLIENT"), WV_STR("SETNAME"), {cfg->client_name, strlen(cfg->client_name)}};
        rc = redis_conn_call(c, &op, 3, setname);
    }
    return rc;
}

static int greet(redis_conn *c)
{
    const redis_config *cfg = c->cfg;
    int rc;
    c->proto = 2;
    if (cfg->protocol != 2) {
        wv_str hello[7] = {WV_STR("HELLO"), WV_STR("3")};
        int n = 2;
        if (cfg->password) {
            hello[n++] = WV_STR("AUTH");
            hello[n++] = cfg->user ? (wv_str){cfg->user, strlen(cfg->user)} : WV_STR("default");
            hello[n++] = (wv_str){cfg->password, strlen(cfg->password)};
        }
        if (cfg->client_name) {
            hello[n++] = WV_STR("SETNAME");
            hello[n++] = (wv_str){cfg->client_name, strlen(cfg->client_name)};
        }
        redis_op op = {.deliver = redis_deliver_ignore};
        rc = redis_conn_call(c, &op, n, hello);
        if (rc == 0) {
            c->proto = 3;
        } else if (rc == -EIO && (msg_starts(&op, "WRONGPASS") || msg_starts(&op, "NOAUTH") ||
                                  msg_starts(&op, "NOPERM"))) {
            return wv_fail(-EACCES, "redis %s: authentication failed: %s", cfg->redacted,
                           op.req.msg);
        } else if (rc == -EIO && cfg->protocol == 0) {
            /* an old server without HELLO (or without RESP3) */
            if ((rc = greet_resp2(c)) < 0)
                return rc;
        } else if (rc == -EIO) {
            return wv_fail(-EPROTO, "redis %s: the server does not speak RESP3: %s", cfg->redacted,
                           op.req.msg);
        } else {
            return rc;
        }
    } else if ((rc = greet_resp2(c)) < 0) {
        return rc;
    }
    if (cfg->db) {
        char num[16];
        int len = snprintf(num, sizeof num, "%d", cfg->db);
        wv_str select[2] = {WV_STR("SELECT"), {num, (size_t)len}};
        redis_op op = {.deliver = redis_deliver_status};
        if ((rc = redis_conn_call(c, &op, 2, select)) < 0)
            return rc == -EIO ? wv_fail(-EINVAL, "redis %s: SELECT %d: %s", cfg->redacted, cfg->db,
                                        op.req.msg)
                              : rc;
    }
    return 0;
}

int redis_conn_open(const redis_config *cfg, bool dedicated, redis_conn **out)
{
    *out = NULL;
    redis_conn *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    redis_config_ref((redis_config *)cfg);
    c->cfg = cfg;
    resp_scanner_init(&c->scan, cfg->max_reply);

    int64_t old = wv_deadline();
    int64_t at = wv_after_ms(cfg->connect_timeout_ms);
    wv_deadline_set(old < at ? old : at);
    wv_dial_opts d = {
        .tls = cfg->tls ? (cfg->tls_ctx ? cfg->tls_ctx : wv_tls_ctx_default()) : NULL,
        .connect_timeout_ms = cfg->connect_timeout_ms,
    };
    wv_stream *s;
    int rc = wv_dial_host(cfg->host, cfg->port, &d, &s);
    if (rc >= 0) {
        char name[300];
        snprintf(name, sizeof name, "redis %s", cfg->redacted);
        redis_config *counters = (redis_config *)cfg;
        wv_mux_opts mo = {
            .frame = frame,
            .unsolicited = unsolicited,
            .ctx = c,
            .name = name,
            .no_autopipeline = !cfg->autopipeline,
            .response_timeout_ms = cfg->response_timeout_ms > 0 ? cfg->response_timeout_ms : 0,
            .max_reply = cfg->max_reply,
            .writes = &counters->stats.writes,
            .queued = &counters->stats.commands,
        };
        if ((rc = wv_mux_new(s, &mo, &c->mux)) >= 0)
            rc = greet(c);
    }
    wv_deadline_set(old);
    if (rc >= 0 && !dedicated)
        rc = wv_mux_share(c->mux);
    if (rc < 0) {
        /* every message names the server: the dial's does not yet */
        if (!strstr(wv_errmsg(), cfg->redacted)) {
            char why[WV_MUX_MSG];
            snprintf(why, sizeof why, "%s", wv_errmsg());
            wv_fail(rc, "redis %s: %s", cfg->redacted, why[0] ? why : wv_strerror(rc));
        }
        if (c->mux) {
            redis_conn_close(c);
        } else {
            redis_config_unref((redis_config *)cfg);
            free(c);
        }
        return rc;
    }
    *out = c;
    return 0;
}
