/*
 * The memcached client on one shard: its server list, where each key lives
 * (ketama, as libmemcached places it), each server's connection (dialed on
 * demand, again after one breaks) and health (failures in a row, dead
 * until a retry time), and the commands, one key each or a multi-get that
 * asks every server at once.
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "memcache/memcache_internal.h"

#define NS_PER_MS INT64_C(1000000)

/* ------------------------------------------------------- the server list */

/* At most 80 bytes of an entry for a message, control bytes as '?'. */
static const char *shown(const char *p, size_t n, char out[84])
{
    size_t k = n < 80 ? n : 80;
    for (size_t i = 0; i < k; i++)
        out[i] = (unsigned char)p[i] < 0x20 || p[i] == 0x7f ? '?' : p[i];
    out[k] = '\0';
    return out;
}

/* A decimal number in 1..max. */
static bool parse_positive(const char *p, size_t n, unsigned long max, unsigned long *out)
{
    if (n == 0 || n > 10)
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v < 1 || v > max)
        return false;
    *out = v;
    return true;
}

static char *copy(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* One entry, p[0..n) without surrounding blanks: "host[:port[:weight]]",
 * "[v6][:port[:weight]]" or "/path". */
static int parse_entry(const char *p, size_t n, mc_server *s)
{
    char show[84];
    static const char scheme[] = "memcached://";
    if (n >= sizeof scheme - 1 && strncasecmp(p, scheme, sizeof scheme - 1) == 0) {
        p += sizeof scheme - 1;
        n -= sizeof scheme - 1;
    }
    if (n == 0)
        return wv_fail(-EINVAL, "memcached: an empty entry in the server list");
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] <= 0x20 || p[i] == 0x7f)
            return wv_fail(-EINVAL, "memcached: server \"%s\": a blank or control byte in it",
                           shown(p, n, show));
    const char *host = p, *rest;
    size_t host_n;
    bool v6 = false;
    if (p[0] == '/') {
        if (n >= 108) /* sun_path */
            return wv_fail(-EINVAL, "memcached: server \"%s\": a Unix socket path that long",
                           shown(p, n, show));
        s->host = copy(p, n);
        s->name = copy(p, n);
        s->port = 0;
        s->weight = 1;
        return s->host && s->name ? 0 : -ENOMEM;
    }
    if (p[0] == '[') {
        const char *close = memchr(p, ']', n);
        if (!close)
            return wv_fail(-EINVAL, "memcached: server \"%s\": no ']' after the IPv6 address",
                           shown(p, n, show));
        host = p + 1;
        host_n = (size_t)(close - host);
        rest = close + 1;
        v6 = true;
    } else {
        const char *colon = memchr(p, ':', n);
        host_n = colon ? (size_t)(colon - p) : n;
        rest = p + host_n;
    }
    size_t rest_n = (size_t)(p + n - rest);
    unsigned long port = 11211, weight = 1;
    if (rest_n > 0) {
        if (rest[0] != ':')
            return wv_fail(-EINVAL, "memcached: server \"%s\": expected ':' after the address",
                           shown(p, n, show));
        const char *port_p = rest + 1;
        const char *colon = memchr(port_p, ':', rest_n - 1);
        size_t port_n = colon ? (size_t)(colon - port_p) : rest_n - 1;
        if (!parse_positive(port_p, port_n, 65535, &port))
            return wv_fail(-EINVAL,
                           "memcached: server \"%s\": a bad port (an IPv6 address goes in "
                           "brackets)",
                           shown(p, n, show));
        if (colon && !parse_positive(colon + 1, (size_t)(p + n - colon - 1), UINT32_MAX, &weight))
            return wv_fail(-EINVAL, "memcached: server \"%s\": a bad weight (a positive integer)",
                           shown(p, n, show));
    }
    if (host_n == 0 || host_n > KETAMA_HOST_MAX)
        return wv_fail(-EINVAL, "memcached: server \"%s\": no host", shown(p, n, show));
    s->host = copy(host, host_n);
    s->port = (int)port;
    s->weight = (uint32_t)weight;
    size_t cap = host_n + 16;
    if ((s->name = malloc(cap)))
        snprintf(s->name, cap, v6 ? "[%s]:%d" : "%s:%d", s->host ? s->host : "", s->port);
    return s->host && s->name ? 0 : -ENOMEM;
}

static int parse_servers(const char *list, wv_memcache *m)
{
    int count = 1;
    for (const char *c = list; *c; c++)
        count += *c == ',';
    m->servers = calloc((size_t)count, sizeof *m->servers);
    if (!m->servers)
        return -ENOMEM;
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        if (!end)
            end = p + strlen(p);
        const char *a = p, *b = end;
        while (a < b && isspace((unsigned char)*a))
            a++;
        while (b > a && isspace((unsigned char)b[-1]))
            b--;
        mc_server *s = &m->servers[m->n++];
        int rc = parse_entry(a, (size_t)(b - a), s);
        if (rc < 0)
            return rc == -ENOMEM ? wv_fail(rc, "memcached: no memory for the server list") : rc;
        size_t cap = strlen(s->name) + 16;
        if (!(s->label = malloc(cap)))
            return -ENOMEM;
        snprintf(s->label, cap, "memcached %s", s->name);
        if (!*end)
            return 0;
        p = end + 1;
    }
}

/* ------------------------------------------------------------- placement */

/* eject_dead: build the ring again when a server died or its retry time
 * came, over the servers not dead now. */
static void refresh_ring(wv_memcache *m)
{
    int64_t now = wv_now_coarse();
    if (!m->ring_dirty && now < m->ring_check)
        return;
    m->ring_dirty = false;
    m->ring_check = WV_NEVER;
    bool *live = m->live + m->n; /* the second half: scratch */
    bool changed = false, any = false;
    for (int i = 0; i < m->n; i++) {
        int64_t until = m->servers[i].dead_until;
        live[i] = until <= now;
        if (until > now && until < m->ring_check)
            m->ring_check = until;
        changed = changed || live[i] != m->live[i];
        any = any || live[i];
    }
    /* every server dead: keep the ring (each key fails at its server) */
    if (!changed || !any)
        return;
    if (ketama_build(&m->ring, m->kservers, (size_t)m->n, live, m->mode) < 0) {
        m->ring_dirty = true; /* no memory: try again next time */
        return;
    }
    memcpy(m->live, live, (size_t)m->n * sizeof *live);
}

static int place(wv_memcache *m, wv_str key)
{
    if (m->n == 1)
        return 0;
    if (m->eject_dead)
        refresh_ring(m);
    return (int)ketama_lookup(&m->ring, key.p, key.n);
}

/* ---------------------------------------------------------------- health */

/* A message without the server's label at its start (it is said again). */
static const char *unlabelled(const mc_server *s, const char *msg)
{
    size_t n = strlen(s->label);
    if (strncmp(msg, s->label, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
        return msg + n + 2;
    return msg;
}

/* Does a failure say something about the server (not about the caller,
 * the client or its limits)? */
static bool against_server(int rc)
{
    return rc != -ECANCELED && rc != -ESHUTDOWN && rc != -EMSGSIZE && rc != -ENOMEM;
}

static void server_failed(wv_memcache *m, mc_server *s, const char *msg)
{
    s->failures++;
    snprintf(s->last_failure, sizeof s->last_failure, "%s", unlabelled(s, msg));
    int64_t now = wv_now();
    if (s->failures < m->failure_limit || s->dead_until > now)
        return;
    s->dead_until = now + m->dead_retry_ms * NS_PER_MS;
    s->deaths++;
    m->ring_dirty = true;
    wv_warn("%s: marked dead after %d failures in a row (the last: %s); retried in %lld ms",
            s->label, s->failures, s->last_failure, (long long)m->dead_retry_ms);
}

/* A reply came: the server works. */
static void server_answered(wv_memcache *m, mc_server *s)
{
    if (s->dead_until) {
        wv_info("%s: answering again", s->label);
        m->ring_dirty = true;
    }
    s->failures = 0;
    s->dead_until = 0;
}

static int dead_error(const mc_server *s, int64_t now)
{
    return wv_fail(
        -EHOSTDOWN, "%s: marked dead after %d failures in a row (the last: %s); retried in %lld ms",
        s->label, s->failures, s->last_failure, (long long)((s->dead_until - now) / NS_PER_MS + 1));
}

/* The connection of server s, ready: the open one, or one dialed now (or
 * by the fiber already dialing). A broken one counts against the server
 * (once) and is replaced; a dead server fails at once. */
static int server_conn(wv_memcache *m, mc_server *s, mc_conn **out)
{
    for (;;) {
        if (m->closed)
            return wv_fail(-ESHUTDOWN, "%s: the client is closed", s->label);
        mc_conn *c = s->conn;
        if (c && mc_conn_usable(c)) {
            *out = c;
            return 0;
        }
        if (s->dialing) {
            uint64_t seq = s->dial_seq;
            int rc = wv_event_wait(&s->dialed);
            if (rc < 0)
                return wv_fail(rc, "%s: %s waiting for the connection", s->label,
                               rc == -ETIMEDOUT ? "the deadline passed" : "cancelled");
            if (s->dial_seq != seq && s->dial_rc < 0)
                return wv_fail(s->dial_rc, "%s", s->dial_msg);
            continue;
        }
        if (c) {
            int rc = wv_mux_error(c->mux);
            if (against_server(rc))
                server_failed(m, s, wv_errmsg());
            mc_conn_close(c);
            s->conn = NULL;
            continue;
        }
        int64_t now = wv_now();
        if (s->dead_until > now)
            return dead_error(s, now);
        s->dialing = true;
        wv_event_clear(&s->dialed);
        s->dials++;
        int rc = mc_conn_open(m, s, &c);
        s->dialing = false;
        s->dial_seq++;
        s->dial_rc = 0;
        /* a dial cut short by this fiber's own deadline says nothing about
         * the server: the fibers waiting for it dial again themselves */
        bool own = rc == -ECANCELED || (rc == -ETIMEDOUT && wv_deadline() <= wv_now());
        if (rc < 0 && !own && against_server(rc)) {
            s->dial_rc = rc;
            snprintf(s->dial_msg, sizeof s->dial_msg, "%s", wv_errmsg());
            server_failed(m, s, s->dial_msg);
            wv_fail(rc, "%s", s->dial_msg);
        }
        wv_event_set(&s->dialed);
        if (rc < 0)
            return rc;
        if (m->closed) {
            mc_conn_close(c);
            continue;
        }
        /* the probe's answer does not clear the failures: a server that
         * answers it and nothing after still counts up to dead */
        s->conn = c;
    }
}

/* --------------------------------------------------------------- calling */

static void client_free(wv_memcache *m)
{
    for (int i = 0; i < m->n; i++) {
        mc_server *s = &m->servers[i];
        mc_conn_close(s->conn);
        free(s->host);
        free(s->name);
        free(s->label);
    }
    ketama_free(&m->ring);
    free(m->servers);
    free(m->kservers);
    free(m->live);
    free(m);
}

static int enter(wv_memcache *m)
{
    if (!m)
        return wv_fail(-EINVAL, "memcached: no client");
    if (m->shard != wv_shard_id())
        return wv_fail(-EXDEV, "memcached: used from shard %d, it belongs to shard %d",
                       wv_shard_id(), m->shard);
    if (m->closed)
        return wv_fail(-ESHUTDOWN, "memcached: the client is closed");
    m->inside++;
    return 0;
}

static void leave(wv_memcache *m)
{
    if (--m->inside == 0 && m->closed)
        client_free(m);
}

static int check_key(wv_str key)
{
    if (key.n > 0 && !key.p)
        return wv_fail(-EINVAL, "memcached: a key without bytes");
    if (mc_key_valid(key.p, key.n))
        return 0;
    if (key.n == 0)
        return wv_fail(-EINVAL, "memcached: an empty key");
    if (key.n > MC_KEY_MAX)
        return wv_fail(-EINVAL, "memcached: a key of %zu bytes (%d at most)", key.n, MC_KEY_MAX);
    size_t i = 0;
    while ((unsigned char)key.p[i] > 0x20 && key.p[i] != 0x7f)
        i++;
    return wv_fail(-EINVAL, "memcached: a key with byte 0x%02x at %zu (no spaces or control bytes)",
                   (unsigned char)key.p[i], i);
}

/* Wait for op, queued on mux of server s: its rc; a reply of any kind
 * shows the server works. The connection may be gone after: only s is
 * touched. */
static int wait_op(wv_memcache *m, mc_server *s, wv_mux *mux, mc_op *op)
{
    int rc = wv_mux_wait(mux, &op->req);
    if (op->req.got > 0)
        server_answered(m, s);
    return rc;
}

/* Run one command on its key's server: op->result (1 or 0) or an error. */
static int run(wv_memcache *m, const mc_cmd *cmd, mc_op *op)
{
    int rc = enter(m);
    if (rc < 0)
        return rc;
    mc_server *s = &m->servers[place(m, cmd->key)];
    mc_conn *c;
    if ((rc = server_conn(m, s, &c)) == 0) {
        wv_mux *mux = c->mux;
        if ((rc = mc_conn_queue(c, op, cmd)) == 0)
            rc = wait_op(m, s, mux, op);
    }
    leave(m);
    return rc < 0 ? rc : op->result;
}

/* ------------------------------------------------------------ open/close */

int wv_memcache_open(const char *servers, const wv_memcache_opts *opts, wv_memcache **out)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!servers)
        return wv_fail(-EINVAL, "memcached: no server list");
    if (wv_shard_id() < 0)
        return wv_fail(-EPERM, "memcached: open it from a fiber");
    wv_memcache_opts o = opts ? *opts : (wv_memcache_opts){0};
    if (o.connect_timeout_ms < 0 || o.failure_limit < 0 || o.dead_retry_ms < 0 ||
        (unsigned)o.distribution > WV_MEMCACHE_KETAMA_MD5 || o.max_value > (size_t)1 << 40)
        return wv_fail(-EINVAL, "memcached: bad options (a negative time or limit, an unknown "
                                "distribution, or max_value over 1 TiB)");
    wv_memcache *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    m->shard = wv_shard_id();
    m->connect_timeout_ms =
        o.connect_timeout_ms ? o.connect_timeout_ms : MEMCACHE_DEFAULT_CONNECT_MS;
    m->response_timeout_ms = o.response_timeout_ms < 0    ? 0
                             : o.response_timeout_ms == 0 ? MEMCACHE_DEFAULT_RESPONSE_MS
                                                          : o.response_timeout_ms;
    m->max_value = o.max_value ? o.max_value : MEMCACHE_DEFAULT_MAX_VALUE;
    m->autopipeline = !o.no_autopipeline;
    m->failure_limit = o.failure_limit ? o.failure_limit : MEMCACHE_DEFAULT_FAILURE_LIMIT;
    m->dead_retry_ms = o.dead_retry_ms ? o.dead_retry_ms : MEMCACHE_DEFAULT_DEAD_RETRY_MS;
    m->eject_dead = o.eject_dead;
    m->classic = o.classic;
    static const ketama_mode modes[] = {
        [WV_MEMCACHE_KETAMA] = KETAMA_DEFAULT_HASH,
        [WV_MEMCACHE_KETAMA_WEIGHTED_MD5] = KETAMA_WEIGHTED_MD5,
        [WV_MEMCACHE_KETAMA_MD5] = KETAMA_MD5_HASH,
    };
    m->mode = modes[o.distribution];
    m->ring_check = WV_NEVER;

    int rc = parse_servers(servers, m);
    if (rc == 0) {
        m->kservers = calloc((size_t)m->n, sizeof *m->kservers);
        m->live = calloc((size_t)m->n * 2, sizeof *m->live);
        rc = m->kservers && m->live ? 0 : -ENOMEM;
    }
    for (int i = 0; rc == 0 && i < m->n; i++) {
        mc_server *s = &m->servers[i];
        m->kservers[i] =
            (ketama_server){.host = s->host, .port = (uint16_t)s->port, .weight = s->weight};
        m->live[i] = true;
    }
    if (rc == 0 && (rc = ketama_build(&m->ring, m->kservers, (size_t)m->n, NULL, m->mode)) < 0)
        rc = wv_fail(rc, "memcached: cannot place keys on these servers: %s", wv_strerror(rc));
    if (rc < 0) {
        if (rc == -ENOMEM)
            wv_fail(rc, "memcached: no memory for a client");
        client_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

void wv_memcache_close(wv_memcache *m)
{
    if (!m || m->closed)
        return;
    m->closed = true;
    for (int i = 0; i < m->n; i++) {
        mc_conn_close(m->servers[i].conn); /* its waiters fail with -ESHUTDOWN */
        m->servers[i].conn = NULL;
        wv_event_set(&m->servers[i].dialed);
    }
    if (m->inside == 0)
        client_free(m);
}

/* -------------------------------------------------------------- commands */

int wv_memcache_get(wv_memcache *m, wv_str key, wv_buf *value, uint32_t *flags, uint64_t *cas)
{
    int rc = check_key(key);
    if (rc < 0)
        return rc;
    mc_cmd cmd = {.kind = MC_CMD_GET, .key = key, .want_cas = cas != NULL};
    mc_op op = {.value = value};
    rc = run(m, &cmd, &op);
    if (rc == 1) {
        if (flags)
            *flags = op.flags;
        if (cas)
            *cas = op.cas;
    }
    return rc;
}

int wv_memcache_set(wv_memcache *m, wv_str key, wv_str value, const wv_memcache_set_opts *opts)
{
    wv_memcache_set_opts o = opts ? *opts : (wv_memcache_set_opts){0};
    int rc = check_key(key);
    if (rc < 0)
        return rc;
    if ((unsigned)o.mode > WV_MEMCACHE_PREPEND)
        return wv_fail(-EINVAL, "memcached: an unknown set mode %d", (int)o.mode);
    if (o.compare_cas && o.mode != WV_MEMCACHE_SET && o.mode != WV_MEMCACHE_REPLACE)
        return wv_fail(-EINVAL, "memcached: compare_cas goes with set or replace only");
    if (value.n > 0 && !value.p)
        return wv_fail(-EINVAL, "memcached: a value without bytes");
    if (m && value.n > m->max_value)
        return wv_fail(-EMSGSIZE, "memcached: a value of %zu bytes is over max_value (%zu)",
                       value.n, m->max_value);
    mc_cmd cmd = {.kind = MC_CMD_SET, .key = key, .value = value, .set = &o};
    mc_op op = {0};
    return run(m, &cmd, &op);
}

int wv_memcache_delete(wv_memcache *m, wv_str key)
{
    int rc = check_key(key);
    if (rc < 0)
        return rc;
    mc_cmd cmd = {.kind = MC_CMD_DELETE, .key = key};
    mc_op op = {0};
    return run(m, &cmd, &op);
}

int wv_memcache_incr(wv_memcache *m, wv_str key, int64_t delta, uint64_t *value)
{
    int rc = check_key(key);
    if (rc < 0)
        return rc;
    mc_cmd cmd = {.kind = MC_CMD_INCR, .key = key, .delta = delta};
    mc_op op = {0};
    rc = run(m, &cmd, &op);
    if (rc == 1 && value)
        *value = op.number;
    return rc;
}

int wv_memcache_touch(wv_memcache *m, wv_str key, int64_t ttl_s)
{
    int rc = check_key(key);
    if (rc < 0)
        return rc;
    mc_cmd cmd = {.kind = MC_CMD_TOUCH, .key = key, .ttl = ttl_s};
    mc_op op = {0};
    return run(m, &cmd, &op);
}

/* ------------------------------------------------- several servers at once */

/* One server's part of a call that asks several. */
typedef struct part {
    mc_op op;
    wv_mux *mux; /* NULL when nothing was queued (op.req.rc says why) */
    int start, count;
} part;

/* Queue cmd (or, with items, the gets of items[start..start+count)) on
 * server i for part p; a failure goes in p->op.req. */
static void part_queue(wv_memcache *m, int i, part *p, const mc_cmd *cmd, wv_memcache_item **items)
{
    mc_server *s = &m->servers[i];
    mc_conn *c;
    int rc = server_conn(m, s, &c);
    if (rc == 0)
        rc = items ? mc_conn_queue_gets(c, &p->op, items + p->start, p->count)
                   : mc_conn_queue(c, &p->op, cmd);
    if (rc == 0) {
        p->mux = c->mux;
        return;
    }
    p->op.req.rc = rc;
    snprintf(p->op.req.msg, sizeof p->op.req.msg, "%s", wv_errmsg());
}

static void part_wait(wv_memcache *m, int i, part *p)
{
    if (p->mux)
        wait_op(m, &m->servers[i], p->mux, &p->op);
}

int wv_memcache_get_multi(wv_memcache *m, wv_memcache_item *items, size_t n)
{
    if (n == 0)
        return 0;
    if (!items || n > INT_MAX)
        return wv_fail(-EINVAL, "memcached: no items, or too many");
    for (size_t i = 0; i < n; i++) {
        int rc = check_key(items[i].key);
        if (rc < 0)
            return rc;
        items[i].rc = 0;
    }
    int rc = enter(m);
    if (rc < 0)
        return rc;
    int ns = m->n;
    part *parts = calloc((size_t)ns, sizeof *parts);
    int *where = malloc(n * sizeof *where);
    wv_memcache_item **order = malloc(n * sizeof *order);
    if (!parts || !where || !order) {
        free(parts);
        free(where);
        free(order);
        leave(m);
        return wv_fail(-ENOMEM, "memcached: no memory for a multi-get of %zu keys", n);
    }
    /* the items grouped by server, in their order within each */
    for (size_t i = 0; i < n; i++) {
        where[i] = place(m, items[i].key);
        parts[where[i]].count++;
    }
    for (int s = 1; s < ns; s++)
        parts[s].start = parts[s - 1].start + parts[s - 1].count;
    int *fill = calloc((size_t)ns, sizeof *fill);
    if (!fill) {
        free(parts);
        free(where);
        free(order);
        leave(m);
        return wv_fail(-ENOMEM, "memcached: no memory for a multi-get of %zu keys", n);
    }
    for (size_t i = 0; i < n; i++)
        order[parts[where[i]].start + fill[where[i]]++] = &items[i];
    free(fill);

    for (int s = 0; s < ns; s++)
        if (parts[s].count)
            part_queue(m, s, &parts[s], NULL, order);
    for (int s = 0; s < ns; s++)
        part_wait(m, s, &parts[s]);

    /* a key without a reply takes its server's failure */
    for (int s = 0; s < ns; s++) {
        part *p = &parts[s];
        int failed = p->op.req.rc < 0 ? p->op.req.rc : -EPROTO;
        for (int k = p->op.req.got; k < p->count; k++)
            order[p->start + k]->rc = failed;
    }
    int hits = 0, first = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].rc == 1)
            hits++;
        if (items[i].rc < 0 && first == 0) {
            part *p = &parts[where[i]];
            first = wv_fail(items[i].rc, "%s",
                            p->op.item_rc == items[i].rc ? p->op.item_msg : p->op.req.msg);
        }
    }
    free(parts);
    free(where);
    free(order);
    leave(m);
    return first < 0 ? first : hits;
}

int wv_memcache_ping(wv_memcache *m)
{
    int rc = enter(m);
    if (rc < 0)
        return rc;
    part *parts = calloc((size_t)m->n, sizeof *parts);
    if (!parts) {
        leave(m);
        return wv_fail(-ENOMEM, "memcached: no memory for a ping");
    }
    mc_cmd cmd = {.kind = MC_CMD_PING};
    for (int s = 0; s < m->n; s++)
        part_queue(m, s, &parts[s], &cmd, NULL);
    for (int s = 0; s < m->n; s++)
        part_wait(m, s, &parts[s]);
    for (int s = 0; s < m->n && rc == 0; s++) {
        mc_op *op = &parts[s].op;
        if (op->req.rc < 0)
            rc = wv_fail(op->req.rc, "%s", op->req.msg);
        else if (op->result != 1)
            rc = wv_fail(-EIO, "%s: the ping was answered with ERROR", m->servers[s].label);
    }
    free(parts);
    leave(m);
    return rc;
}

/* --------------------------------------------------------------- servers */

int wv_memcache_servers(const wv_memcache *m)
{
    return m ? m->n : 0;
}

int wv_memcache_server_of(wv_memcache *m, wv_str key)
{
    int rc = check_key(key);
    if (rc < 0)
        return rc;
    return m ? place(m, key) : -EINVAL;
}

const char *wv_memcache_server_name(const wv_memcache *m, int i)
{
    return m && i >= 0 && i < m->n ? m->servers[i].name : NULL;
}

int wv_memcache_server_stats_get(const wv_memcache *m, int i, wv_memcache_server_stats *st)
{
    if (!m || !st || i < 0 || i >= m->n)
        return -EINVAL;
    const mc_server *s = &m->servers[i];
    int64_t now = wv_now();
    *st = (wv_memcache_server_stats){
        .dead = s->dead_until > now,
        .meta = s->conn && s->conn->meta,
        .connected = s->conn && mc_conn_ok(s->conn),
        .failures = s->failures,
        .retry_in_ms = s->dead_until > now ? (s->dead_until - now) / NS_PER_MS + 1 : 0,
        .requests = s->requests,
        .writes = s->writes,
        .dials = s->dials,
        .deaths = s->deaths,
        .inflight = s->conn ? (int64_t)wv_mux_pending(s->conn->mux) : 0,
    };
    return 0;
}

void wv_memcache_stats_get(const wv_memcache *m, wv_memcache_stats *st)
{
    if (!st)
        return;
    *st = (wv_memcache_stats){0};
    for (int i = 0; m && i < m->n; i++) {
        wv_memcache_server_stats s;
        wv_memcache_server_stats_get(m, i, &s);
        st->requests += s.requests;
        st->writes += s.writes;
        st->dials += s.dials;
        st->deaths += s.deaths;
        st->inflight += s.inflight;
        st->dead += s.dead;
    }
    st->servers = m ? m->n : 0;
}
