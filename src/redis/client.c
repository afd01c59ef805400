/*
 * A Redis client on one shard: its shared connections (dialed again on
 * demand after one breaks, with a backoff while dialing fails), its pool
 * of dedicated connections, the handles wv_redis_acquire gives out, and
 * the routing of each command: the shared connection, a dedicated one for
 * blocking commands, or a refusal for commands that would change the
 * shared connection's state under other fibers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis_internal.h"

#define NS_PER_MS INT64_C(1000000)

/* ------------------------------------------------------ command classes */

bool redis_name_is(wv_str name, const char *upper)
{
    size_t n = strlen(upper);
    if (name.n != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = name.p[i];
        if (ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        if (ch != upper[i])
            return false;
    }
    return true;
}

cmd_class redis_classify(int argc, const wv_str *argv)
{
    static const char *const blocking[] = {"BLPOP",  "BRPOP",    "BRPOPLPUSH", "BLMOVE",
                                           "BLMPOP", "BZPOPMIN", "BZPOPMAX",   "BZMPOP",
                                           "WAIT",   "WAITAOF"};
    static const char *const stateful[] = {"MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH", "SELECT",
                                           "HELLO", "AUTH", "RESET",   "QUIT",  "SWAPDB"};
    static const char *const subscribe[] = {"SUBSCRIBE",   "PSUBSCRIBE",   "SSUBSCRIBE",
                                            "UNSUBSCRIBE", "PUNSUBSCRIBE", "SUNSUBSCRIBE",
                                            "MONITOR"};
    wv_str name = argv[0];
    if (name.n < 4 || name.n > 12)
        return CMD_PLAIN;
    for (size_t i = 0; i < sizeof blocking / sizeof *blocking; i++)
        if (redis_name_is(name, blocking[i]))
            return CMD_BLOCKING;
    if (redis_name_is(name, "XREAD") || redis_name_is(name, "XREADGROUP")) {
        for (int i = 1; i < argc; i++)
            if (redis_name_is(argv[i], "BLOCK"))
                return CMD_BLOCKING;
        return CMD_PLAIN;
    }
    if (redis_name_is(name, "CLIENT") && argc > 1 &&
        (redis_name_is(argv[1], "TRACKING") || redis_name_is(argv[1], "REPLY") ||
         redis_name_is(argv[1], "SETNAME")))
        return CMD_STATEFUL;
    for (size_t i = 0; i < sizeof stateful / sizeof *stateful; i++)
        if (redis_name_is(name, stateful[i]))
            return CMD_STATEFUL;
    for (size_t i = 0; i < sizeof subscribe / sizeof *subscribe; i++)
        if (redis_name_is(name, subscribe[i]))
            return CMD_SUBSCRIBE;
    return CMD_PLAIN;
}

/* ---------------------------------------------------------- the client */

static void client_free(wv_redis *r)
{
    redis_cluster_close(r);
    for (int i = 0; i < r->nslots; i++)
        redis_conn_close(r->slots[i].c);
    free(r->slots);
    redis_config_unref(r->cfg);
    free(r);
}

void redis_client_leave(wv_redis *r)
{
    if (--r->inside == 0 && r->closed)
        client_free(r);
}

static int pool_open(void *ctx, void **conn)
{
    wv_redis *r = ctx;
    redis_conn *c;
    int rc = redis_conn_open(r->cfg, true, &c);
    *conn = rc < 0 ? NULL : c;
    return rc;
}

static void pool_close_conn(void *ctx, void *conn)
{
    (void)ctx;
    redis_conn_close(conn);
}

static int pool_check(void *ctx, void *conn)
{
    (void)ctx;
    redis_conn *c = conn;
    if (!redis_conn_ok(c))
        return -EPIPE;
    redis_op op = {.deliver = redis_deliver_status};
    wv_str ping = WV_STR("PING");
    return redis_conn_call(c, &op, 1, &ping);
}

int redis_client_new(redis_config *cfg, bool dial, wv_redis **out)
{
    *out = NULL;
    wv_redis *r = calloc(1, sizeof *r);
    if (!r || !(r->slots = calloc((size_t)cfg->connections, sizeof *r->slots))) {
        free(r);
        return -ENOMEM;
    }
    redis_config_ref(cfg);
    r->cfg = cfg;
    r->shard = wv_shard_id();
    r->nslots = cfg->connections;
    for (int i = 0; i < r->nslots; i++)
        r->slots[i].backoff_ms = REDIS_BACKOFF_MIN_MS;
    wv_pool_opts po = {
        .open = pool_open,
        .close = pool_close_conn,
        .check = pool_check,
        .ctx = r,
        .max_size = cfg->pool_size,
        .check_idle_ms = 5000,
    };
    int rc = wv_pool_new(&po, &r->pool);
    if (rc < 0) {
        client_free(r);
        return rc;
    }
    if (dial) {
        /* the first shared connection now: a wrong URL or password shows at open */
        redis_conn *c;
        if ((rc = redis_conn_open(cfg, false, &c)) < 0) {
            wv_pool_free(r->pool);
            client_free(r);
            return rc;
        }
        r->slots[0].c = c;
    }
    *out = r;
    return 0;
}

int wv_redis_open(const char *url, const wv_redis_opts *opts, wv_redis **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (wv_shard_id() < 0)
        return wv_fail(-EPERM, "redis: open it from a fiber");
    redis_config *cfg;
    int rc = redis_config_parse(url, opts, &cfg);
    if (rc < 0)
        return rc;
    wv_redis *r;
    rc = redis_client_new(cfg, true, &r);
    redis_config_unref(cfg);
    if (rc < 0)
        return rc;
    if (cfg->cluster && (rc = redis_cluster_open(r)) < 0) {
        wv_redis_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

void wv_redis_close(wv_redis *r)
{
    if (!r || r->closed)
        return;
    if (r->parent) { /* a handle: closing it is releasing it */
        wv_redis_release(r);
        return;
    }
    r->closed = true;
    for (int i = 0; i < r->nslots; i++) {
        redis_conn_close(r->slots[i].c);
        r->slots[i].c = NULL;
        wv_event_set(&r->slots[i].dialed);
    }
    wv_pool_free(r->pool);
    r->pool = NULL;
    if (r->inside == 0)
        client_free(r);
}

int redis_check_shard(const wv_redis *r)
{
    if (r->shard != wv_shard_id())
        return wv_fail(-EXDEV, "redis %s: used from shard %d, it belongs to shard %d",
                       r->cfg->redacted, wv_shard_id(), r->shard);
    return 0;
}

/* A ready shared connection: the slot's, or a new one dialed now. */
static int get_shared(wv_redis *r, redis_conn **out)
{
    shared_slot *sl = &r->slots[r->nslots > 1 ? r->next++ % (unsigned)r->nslots : 0];
    for (;;) {
        if (r->closed)
            return wv_fail(-ESHUTDOWN, "redis %s: the client is closed", r->cfg->redacted);
        if (sl->c && redis_conn_ok(sl->c)) {
            *out = sl->c;
            return 0;
        }
        if (sl->dialing) {
            int rc = wv_event_wait(&sl->dialed);
            if (rc < 0)
                return wv_fail(rc, "redis %s: %s waiting for the connection", r->cfg->redacted,
                               rc == -ETIMEDOUT ? "the deadline passed" : "cancelled");
            continue;
        }
        if (sl->c) {
            redis_conn_close(sl->c);
            sl->c = NULL;
            r->cfg->stats.reconnects++;
        }
        int64_t now = wv_now();
        if (now < sl->retry_at)
            return wv_fail(sl->rc, "%s (next try in %lld ms)", sl->msg,
                           (long long)((sl->retry_at - now) / NS_PER_MS + 1));
        sl->dialing = true;
        wv_event_clear(&sl->dialed);
        redis_conn *c = NULL;
        int rc = redis_conn_open(r->cfg, false, &c);
        sl->dialing = false;
        wv_event_set(&sl->dialed);
        if (rc < 0) {
            /* a dial cut short by this fiber's own deadline says nothing
             * about the server: no backoff for the others */
            if (rc != -ECANCELED && !(rc == -ETIMEDOUT && wv_deadline() <= wv_now())) {
                sl->rc = rc;
                snprintf(sl->msg, sizeof sl->msg, "%s", wv_errmsg());
                sl->retry_at = wv_now() + sl->backoff_ms * NS_PER_MS;
                sl->backoff_ms *= 2;
                if (sl->backoff_ms > REDIS_BACKOFF_MAX_MS)
                    sl->backoff_ms = REDIS_BACKOFF_MAX_MS;
            }
            return rc;
        }
        if (r->closed) {
            redis_conn_close(c);
            continue;
        }
        sl->c = c;
        sl->backoff_ms = REDIS_BACKOFF_MIN_MS;
        sl->retry_at = 0;
    }
}

void wv_redis_stats_get(const wv_redis *r, wv_redis_stats *st)
{
    if (!st)
        return;
    *st = r ? r->cfg->stats : (wv_redis_stats){0};
    st->inflight = 0;
    for (int i = 0; r && !r->parent && i < r->nslots; i++)
        if (r->slots[i].c)
            st->inflight += (int64_t)redis_conn_inflight(r->slots[i].c);
    if (r && r->cluster)
        redis_cluster_stats_add(r, st);
}

/* ------------------------------------------------------ dedicated ones */

int wv_redis_acquire(wv_redis *r, wv_redis **handle)
{
    if (!r || !handle)
        return -EINVAL;
    *handle = NULL;
    if (r->parent)
        return wv_fail(-EINVAL, "redis: wv_redis_acquire on a handle, not a client");
    int rc = redis_check_shard(r);
    if (rc < 0)
        return rc;
    if (r->closed)
        return wv_fail(-ESHUTDOWN, "redis %s: the client is closed", r->cfg->redacted);
    wv_redis *h = calloc(1, sizeof *h);
    if (!h)
        return -ENOMEM;
    r->inside++;
    void *conn;
    rc = wv_pool_acquire(r->pool, &conn);
    if (rc < 0) {
        free(h);
        redis_client_leave(r);
        return rc;
    }
    h->cfg = r->cfg;
    h->shard = r->shard;
    h->parent = r;
    h->own = conn;
    *handle = h;
    return 0;
}

/* Put a handle's connection back as it was lent: no WATCH, no MULTI. */
static void tidy_for_reuse(wv_redis *h)
{
    redis_conn *c = h->own;
    if (!h->own_watch || !redis_conn_ok(c))
        return;
    /* DISCARD fails harmlessly outside MULTI; UNWATCH always works */
    wv_str discard = WV_STR("DISCARD"), unwatch = WV_STR("UNWATCH");
    redis_op a = {.deliver = redis_deliver_ignore};
    redis_op b = {.deliver = redis_deliver_ignore};
    int64_t old = wv_deadline_set(wv_after_ms(1000));
    if (redis_conn_queue(c, &a, 1, &discard) == 0 && redis_conn_queue(c, &b, 1, &unwatch) == 0)
        redis_conn_wait(c, &b);
    wv_deadline_set(old);
    if (redis_conn_ok(c) && b.req.rc < 0)
        redis_conn_fail(c, -EPIPE, "redis: could not reset a connection");
}

void wv_redis_release(wv_redis *h)
{
    if (!h || !h->parent)
        return;
    wv_redis *r = h->parent;
    redis_conn *c = h->own;
    if (redis_conn_ok(c) && !h->own_dirty)
        tidy_for_reuse(h);
    if (r->pool && redis_conn_ok(c) && !h->own_dirty)
        wv_pool_release(r->pool, c);
    else if (r->pool)
        wv_pool_discard(r->pool, c);
    else
        redis_conn_close(c);
    free(h);
    redis_client_leave(r);
}

/* ------------------------------------------------------------- calling */

/* Run op (one command) where it belongs. */
int redis_call(wv_redis *r, redis_op *op, int argc, const wv_str *argv)
{
    if (argc < 1 || !argv)
        return wv_fail(-EINVAL, "redis: no command");
    int rc = redis_check_shard(r);
    if (rc < 0)
        return rc;
    cmd_class k = redis_classify(argc, argv);
    if (k == CMD_SUBSCRIBE)
        return wv_fail(-EINVAL, "redis %.*s: use wv_redis_subscribe for pub/sub", (int)argv[0].n,
                       argv[0].p);
    if (r->own) {
        if (k == CMD_STATEFUL) {
            if (redis_name_is(argv[0], "WATCH") || redis_name_is(argv[0], "MULTI"))
                r->own_watch = true;
            else if (!redis_name_is(argv[0], "EXEC") && !redis_name_is(argv[0], "DISCARD") &&
                     !redis_name_is(argv[0], "UNWATCH"))
                r->own_dirty = true;
        }
        return redis_conn_call(r->own, op, argc, argv);
    }
    if (r->cluster && k != CMD_STATEFUL)
        return redis_cluster_call(r, op, argc, argv);
    if (k == CMD_STATEFUL)
        return wv_fail(-EINVAL,
                       "redis %.*s: it would change the connection other fibers share: "
                       "run it on a handle from wv_redis_acquire",
                       (int)argv[0].n, argv[0].p);
    if (r->closed)
        return wv_fail(-ESHUTDOWN, "redis %s: the client is closed", r->cfg->redacted);
    r->inside++;
    if (k == CMD_BLOCKING) {
        wv_redis *h;
        if ((rc = wv_redis_acquire(r, &h)) == 0) {
            rc = redis_conn_call(h->own, op, argc, argv);
            wv_redis_release(h);
        }
    } else {
        redis_conn *c;
        if ((rc = get_shared(r, &c)) == 0)
            rc = redis_conn_call(c, op, argc, argv);
    }
    redis_client_leave(r);
    return rc;
}

int redis_run_raw(wv_redis *r, redis_op *op, const char *p, size_t n, int slot)
{
    int rc = redis_check_shard(r);
    if (rc < 0)
        return rc;
    if (r->cluster && !r->own) {
        wv_redis *node;
        if ((rc = redis_cluster_node_for_slot(r, slot, &node)) < 0)
            return rc;
        return redis_run_raw(node, op, p, n, -1);
    }
    if (r->own) {
        rc = redis_conn_queue_raw(r->own, op, p, n);
        return rc < 0 ? rc : redis_conn_wait(r->own, op);
    }
    if (r->closed)
        return wv_fail(-ESHUTDOWN, "redis %s: the client is closed", r->cfg->redacted);
    r->inside++;
    redis_conn *c;
    if ((rc = get_shared(r, &c)) == 0 && (rc = redis_conn_queue_raw(c, op, p, n)) == 0)
        rc = redis_conn_wait(c, op);
    redis_client_leave(r);
    return rc;
}

/* A command the deadline (or a cancellation) cut short: the message names
 * the command, the server and the time it took ("redis GET
 * redis://host:6379: the deadline passed waiting for the reply (after
 * 250 ms)"), what a 504 tells the caller. */
static int name_cut_short(int rc, wv_str cmd, int64_t t0)
{
    if (rc != -ETIMEDOUT && rc != -ECANCELED)
        return rc;
    char msg[400];
    snprintf(msg, sizeof msg, "%s", wv_errmsg());
    const char *rest = strncmp(msg, "redis ", 6) == 0 ? msg + 6 : msg;
    return wv_fail(rc, "redis %.*s %s (after %lld ms)", (int)(cmd.n < 32 ? cmd.n : 32), cmd.p, rest,
                   (long long)((wv_now() - t0) / NS_PER_MS));
}

/* call, with a typed helper's name before a type mismatch's message. */
static int call_named(wv_redis *r, redis_op *op, int argc, const wv_str *argv)
{
    int64_t t0 = wv_now();
    int rc = redis_call(r, op, argc, argv);
    if (argc > 0 && argv)
        rc = name_cut_short(rc, argv[0], t0);
    if (rc == -EPROTO && op->req.rc == -EPROTO && strncmp(op->req.msg, "the server", 10) == 0)
        return wv_fail(rc, "redis %.*s: %s", (int)argv[0].n, argv[0].p, op->req.msg);
    return rc;
}

int wv_redis_cmdv(wv_redis *r, wv_redis_reply **reply, int argc, const wv_str *argv)
{
    if (reply)
        *reply = NULL;
    if (!r)
        return -EINVAL;
    wv_redis_reply *tree = NULL;
    redis_op op = {.deliver = redis_deliver_tree, .out = &tree};
    int64_t t0 = wv_now();
    int rc = redis_call(r, &op, argc, argv);
    if (rc < 0) {
        if (argc > 0 && argv)
            rc = name_cut_short(rc, argv[0], t0);
        wv_redis_reply_free(tree);
        return rc;
    }
    if (reply)
        *reply = tree;
    else
        wv_redis_reply_free(tree);
    return 0;
}

int wv_redis_cmd_(wv_redis *r, wv_redis_reply **reply, const char *arg, ...)
{
    enum { INLINE = 16 };
    wv_str small[INLINE], *argv = small;
    int argc = 0, cap = INLINE;
    va_list ap;
    va_start(ap, arg);
    for (const char *a = arg; a; a = va_arg(ap, const char *)) {
        if (argc == cap) {
            wv_str *bigger = malloc(sizeof *bigger * (size_t)cap * 2);
            if (!bigger) {
                va_end(ap);
                if (argv != small)
                    free(argv);
                return -ENOMEM;
            }
            memcpy(bigger, argv, sizeof *argv * (size_t)argc);
            if (argv != small)
                free(argv);
            argv = bigger;
            cap *= 2;
        }
        argv[argc++] = (wv_str){a, strlen(a)};
    }
    va_end(ap);
    int rc = wv_redis_cmdv(r, reply, argc, argv);
    if (argv != small)
        free(argv);
    return rc;
}

/* ------------------------------------------------------------- helpers */

static int int_call(wv_redis *r, int argc, const wv_str *argv, long long *out)
{
    redis_op op = {.deliver = redis_deliver_int};
    int rc = call_named(r, &op, argc, argv);
    if (rc == 0 && out)
        *out = op.integer;
    return rc;
}

int wv_redis_ping(wv_redis *r)
{
    wv_str argv[1] = {WV_STR("PING")};
    redis_op op = {.deliver = redis_deliver_status};
    return r ? call_named(r, &op, 1, argv) : -EINVAL;
}

int wv_redis_get(wv_redis *r, wv_str key, wv_buf *value)
{
    wv_str argv[2] = {WV_STR("GET"), key};
    redis_op op = {.deliver = redis_deliver_bulk, .out = value};
    int rc = r ? call_named(r, &op, 2, argv) : -EINVAL;
    return rc < 0 ? rc : (int)op.integer;
}

/* Decimal text of v into buf (at least 24 bytes). */
static wv_str number(char *buf, long long v)
{
    int n = snprintf(buf, 24, "%lld", v);
    return (wv_str){buf, (size_t)n};
}

int wv_redis_set(wv_redis *r, wv_str key, wv_str value, const wv_redis_set_opts *o)
{
    wv_redis_set_opts opts = o ? *o : (wv_redis_set_opts){0};
    if (opts.nx && opts.xx)
        return wv_fail(-EINVAL, "redis SET: nx and xx together");
    if (opts.ttl_ms < 0 || (opts.ttl_ms && opts.keep_ttl))
        return wv_fail(-EINVAL, "redis SET: a negative ttl, or ttl with keep_ttl");
    wv_str argv[6] = {WV_STR("SET"), key, value};
    int argc = 3;
    char ttl[24];
    if (opts.ttl_ms) {
        argv[argc++] = WV_STR("PX");
        argv[argc++] = number(ttl, opts.ttl_ms);
    }
    if (opts.keep_ttl)
        argv[argc++] = WV_STR("KEEPTTL");
    if (opts.nx)
        argv[argc++] = WV_STR("NX");
    if (opts.xx)
        argv[argc++] = WV_STR("XX");
    redis_op op = {.deliver = redis_deliver_status};
    int rc = r ? call_named(r, &op, argc, argv) : -EINVAL;
    return rc < 0 ? rc : (int)op.integer;
}

/* argv = {cmd, [key], items[0..n), [tail]}: a vector on the stack when
 * small. */
typedef struct argvec {
    wv_str small[17];
    wv_str *v;
    int n;
} argvec;

static int argvec_make(argvec *a, wv_str cmd, const wv_str *key, int n, const wv_str *items,
                       const wv_str *tail)
{
    int total = 1 + (key ? 1 : 0) + n + (tail ? 1 : 0);
    a->v = total <= 17 ? a->small : malloc(sizeof(wv_str) * (size_t)total);
    if (!a->v)
        return -ENOMEM;
    a->n = 0;
    a->v[a->n++] = cmd;
    if (key)
        a->v[a->n++] = *key;
    for (int i = 0; i < n; i++)
        a->v[a->n++] = items[i];
    if (tail)
        a->v[a->n++] = *tail;
    return 0;
}

static void argvec_free(argvec *a)
{
    if (a->v != a->small)
        free(a->v);
}

int wv_redis_mget(wv_redis *r, int n, const wv_str *keys, wv_redis_reply **reply)
{
    if (reply)
        *reply = NULL;
    if (!r || n < 1 || !keys || !reply)
        return wv_fail(-EINVAL, "redis MGET: no keys");
    argvec a;
    if (argvec_make(&a, WV_STR("MGET"), NULL, n, keys, NULL) < 0)
        return -ENOMEM;
    int rc = wv_redis_cmdv(r, reply, a.n, a.v);
    argvec_free(&a);
    if (rc == 0 && (*reply)->type != WV_REDIS_ARRAY) {
        wv_redis_type t = (*reply)->type;
        wv_redis_reply_free(*reply);
        *reply = NULL;
        return wv_fail(-EPROTO, "redis MGET: the server answered %s, not an array",
                       redis_type_name(t));
    }
    return rc;
}

int64_t wv_redis_del(wv_redis *r, int n, const wv_str *keys)
{
    if (!r || n < 1 || !keys)
        return wv_fail(-EINVAL, "redis DEL: no keys");
    argvec a;
    if (argvec_make(&a, WV_STR("DEL"), NULL, n, keys, NULL) < 0)
        return -ENOMEM;
    long long v = 0;
    int rc = int_call(r, a.n, a.v, &v);
    argvec_free(&a);
    return rc < 0 ? rc : v;
}

int wv_redis_expire(wv_redis *r, wv_str key, int64_t ttl_ms)
{
    char ttl[24];
    wv_str argv[3] = {WV_STR("PEXPIRE"), key, number(ttl, ttl_ms)};
    long long v = 0;
    int rc = r ? int_call(r, 3, argv, &v) : -EINVAL;
    return rc < 0 ? rc : (int)v;
}

int wv_redis_incrby(wv_redis *r, wv_str key, int64_t delta, int64_t *value)
{
    char d[24];
    wv_str argv[3] = {WV_STR("INCRBY"), key, number(d, delta)};
    long long v = 0;
    int rc = r ? int_call(r, 3, argv, &v) : -EINVAL;
    if (rc == 0 && value)
        *value = v;
    return rc;
}

int wv_redis_hset(wv_redis *r, wv_str key, wv_str field, wv_str value)
{
    wv_str argv[4] = {WV_STR("HSET"), key, field, value};
    long long v = 0;
    int rc = r ? int_call(r, 4, argv, &v) : -EINVAL;
    return rc < 0 ? rc : (int)v;
}

int wv_redis_hget(wv_redis *r, wv_str key, wv_str field, wv_buf *value)
{
    wv_str argv[3] = {WV_STR("HGET"), key, field};
    redis_op op = {.deliver = redis_deliver_bulk, .out = value};
    int rc = r ? call_named(r, &op, 3, argv) : -EINVAL;
    return rc < 0 ? rc : (int)op.integer;
}

int wv_redis_lpush(wv_redis *r, wv_str key, int n, const wv_str *values, int64_t *length)
{
    if (!r || n < 1 || !values)
        return wv_fail(-EINVAL, "redis LPUSH: no values");
    argvec a;
    if (argvec_make(&a, WV_STR("LPUSH"), &key, n, values, NULL) < 0)
        return -ENOMEM;
    long long v = 0;
    int rc = int_call(r, a.n, a.v, &v);
    argvec_free(&a);
    if (rc == 0 && length)
        *length = v;
    return rc;
}

int wv_redis_brpop(wv_redis *r, int n, const wv_str *keys, int64_t timeout_ms, wv_buf *key_out,
                   wv_buf *value)
{
    if (!r || n < 1 || !keys || timeout_ms < 0)
        return wv_fail(-EINVAL, "redis BRPOP: no keys, or a negative timeout");
    /* the server's timeout is in seconds (with decimals since 6.0) */
    char secs[32];
    int len = snprintf(secs, sizeof secs, "%lld.%03lld", (long long)(timeout_ms / 1000),
                       (long long)(timeout_ms % 1000));
    wv_str t = {secs, (size_t)len};
    argvec a;
    if (argvec_make(&a, WV_STR("BRPOP"), NULL, n, keys, &t) < 0)
        return -ENOMEM;
    wv_redis_reply *rep = NULL;
    int rc = wv_redis_cmdv(r, &rep, a.n, a.v);
    argvec_free(&a);
    if (rc < 0)
        return rc;
    if (rep->type == WV_REDIS_NIL) {
        wv_redis_reply_free(rep);
        return 0;
    }
    if (rep->type != WV_REDIS_ARRAY || rep->len != 2 || rep->elem[0].type != WV_REDIS_STRING ||
        rep->elem[1].type != WV_REDIS_STRING) {
        rc = wv_fail(-EPROTO, "redis BRPOP: the server answered %s, not [key, value]",
                     redis_type_name(rep->type));
    } else if ((key_out && wv_buf_append(key_out, rep->elem[0].str, rep->elem[0].len) < 0) ||
               (value && wv_buf_append(value, rep->elem[1].str, rep->elem[1].len) < 0)) {
        rc = wv_fail(-ENOMEM, "redis BRPOP: the value does not fit the buffer");
    } else {
        rc = 1;
    }
    wv_redis_reply_free(rep);
    return rc;
}

int wv_redis_zadd(wv_redis *r, wv_str key, double score, wv_str member)
{
    char s[40];
    int len = snprintf(s, sizeof s, "%.17g", score);
    wv_str argv[4] = {WV_STR("ZADD"), key, {s, (size_t)len}, member};
    long long v = 0;
    int rc = r ? int_call(r, 4, argv, &v) : -EINVAL;
    return rc < 0 ? rc : (int)v;
}

int wv_redis_zrange(wv_redis *r, wv_str key, int64_t start, int64_t stop, bool with_scores,
                    wv_redis_reply **reply)
{
    if (reply)
        *reply = NULL;
    if (!r || !reply)
        return -EINVAL;
    char a[24], b[24];
    wv_str argv[5] = {WV_STR("ZRANGE"), key, number(a, start), number(b, stop),
                      WV_STR("WITHSCORES")};
    int rc = wv_redis_cmdv(r, reply, with_scores ? 5 : 4, argv);
    if (rc == 0 && (*reply)->type != WV_REDIS_ARRAY) {
        wv_redis_type t = (*reply)->type;
        wv_redis_reply_free(*reply);
        *reply = NULL;
        return wv_fail(-EPROTO, "redis ZRANGE: the server answered %s, not an array",
                       redis_type_name(t));
    }
    return rc;
}

int wv_redis_scan(wv_redis *r, uint64_t *cursor, const char *match, int count,
                  wv_redis_reply **keys)
{
    if (keys)
        *keys = NULL;
    if (!r || !cursor || !keys || count < 0)
        return -EINVAL;
    char cur[24], cnt[24];
    int n = snprintf(cur, sizeof cur, "%llu", (unsigned long long)*cursor);
    wv_str argv[6] = {WV_STR("SCAN"), {cur, (size_t)n}};
    int argc = 2;
    if (match) {
        argv[argc++] = WV_STR("MATCH");
        argv[argc++] = (wv_str){match, strlen(match)};
    }
    if (count) {
        argv[argc++] = WV_STR("COUNT");
        argv[argc++] = number(cnt, count);
    }
    wv_redis_reply *rep = NULL;
    int rc = wv_redis_cmdv(r, &rep, argc, argv);
    if (rc < 0)
        return rc;
    /* [cursor, [keys...]]; the cursor is a bulk string of digits */
    if (rep->type != WV_REDIS_ARRAY || rep->len != 2 || rep->elem[0].type != WV_REDIS_STRING ||
        (rep->elem[1].type != WV_REDIS_ARRAY && rep->elem[1].type != WV_REDIS_SET)) {
        wv_redis_type t = rep->type;
        wv_redis_reply_free(rep);
        return wv_fail(-EPROTO, "redis SCAN: the server answered %s, not [cursor, keys]",
                       redis_type_name(t));
    }
    char *end;
    errno = 0;
    unsigned long long next = strtoull(rep->elem[0].str, &end, 10);
    if (errno || *end || end == rep->elem[0].str) {
        wv_redis_reply_free(rep);
        return wv_fail(-EPROTO, "redis SCAN: the cursor is not a number");
    }
    *cursor = next;
    /* the keys become the root: its node heads the allocation, so the
     * caller frees them as any reply */
    *rep = rep->elem[1];
    rep->type = WV_REDIS_ARRAY;
    *keys = rep;
    return 0;
}
