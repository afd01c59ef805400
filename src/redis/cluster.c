/*
 * Redis Cluster: the map from hash slot to node, read with CLUSTER SLOTS,
 * one client per node (its own shared connections and pool, made on first
 * use), and the routing of each command to the node of its key.
 *
 * The map follows the cluster as Redis asks clients to: a MOVED reply
 * ("MOVED 3999 127.0.0.1:7002") says the slot lives elsewhere for good:
 * the slot is pointed there at once, the command sent again there, and
 * the whole map read again in the background (a MOVED usually means more
 * slots moved). An ASK reply says one slot is migrating: the command goes
 * once to the named node, preceded by ASKING on the same connection (both
 * are queued together, so nothing comes between them), and the map stays.
 * A command answered MOVED or ASK did not run, so sending it again is
 * safe; a connection error is not retried (the command may have run), but
 * it also has the map read again.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis/redis_internal.h"

#define NS_PER_MS INT64_C(1000000)

enum {
    SLOTS = 16384,
    MAX_REDIRECTS = 5,
    REFRESH_MIN_MS = 100, /* read the map at most this often */
};

typedef struct cluster_node {
    char *host;
    int port;
    wv_redis *client; /* made on first use */
} cluster_node;

struct redis_cluster {
    cluster_node *nodes;
    int nnodes, cap;
    uint16_t slot_node[SLOTS]; /* node index + 1; 0: not known */
    int64_t refreshed_at;
    bool refreshing;
};

/* ------------------------------------------------------------ hashing */

/* CRC16-CCITT (XMODEM): polynomial 0x1021, initial 0, what Redis Cluster
 * uses for key slots. */
static uint16_t crc16(const char *p, size_t n)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)((unsigned char)p[i] << 8);
        for (int b = 0; b < 8; b++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

/* The slot of one key: only the part inside the first {...} counts when
 * that part is not empty (a hash tag keeps related keys together). */
static int slot_of(wv_str key)
{
    const char *open = memchr(key.p, '{', key.n);
    if (open) {
        size_t from = (size_t)(open - key.p) + 1;
        const char *close = memchr(key.p + from, '}', key.n - from);
        if (close && close > key.p + from)
            return crc16(key.p + from, (size_t)(close - (key.p + from))) & (SLOTS - 1);
    }
    return crc16(key.p, key.n) & (SLOTS - 1);
}

/* Where a command's first key is in argv, or -1 when it has none. */
static int key_index(int argc, const wv_str *argv)
{
    static const char *const keyless[] = {
        "PING",    "ECHO",         "INFO",     "TIME",      "DBSIZE",   "FLUSHALL",
        "FLUSHDB", "SCRIPT",       "CLUSTER",  "CLIENT",    "CONFIG",   "COMMAND",
        "PUBLISH", "RANDOMKEY",    "SCAN",     "KEYS",      "LASTSAVE", "ACL",
        "DEBUG",   "SLOWLOG",      "FUNCTION", "LATENCY",   "MODULE",   "SAVE",
        "BGSAVE",  "BGREWRITEAOF", "READONLY", "READWRITE", "ROLE",     "SPUBLISH"};
    if (argc < 2)
        return -1;
    wv_str name = argv[0];
    for (size_t i = 0; i < sizeof keyless / sizeof *keyless; i++)
        if (redis_name_is(name, keyless[i]))
            return redis_name_is(name, "SPUBLISH") ? 1 : -1;
    if (redis_name_is(name, "EVAL") || redis_name_is(name, "EVALSHA") ||
        redis_name_is(name, "EVAL_RO") || redis_name_is(name, "EVALSHA_RO") ||
        redis_name_is(name, "FCALL") || redis_name_is(name, "FCALL_RO")) {
        /* EVAL script numkeys key... */
        if (argc < 4 || argv[2].n == 0 || argv[2].n > 9)
            return -1;
        for (size_t i = 0; i < argv[2].n; i++)
            if (argv[2].p[i] < '0' || argv[2].p[i] > '9')
                return -1;
        return argv[2].p[0] == '0' && argv[2].n == 1 ? -1 : 3;
    }
    if (redis_name_is(name, "XREAD") || redis_name_is(name, "XREADGROUP")) {
        for (int i = 1; i + 1 < argc; i++)
            if (redis_name_is(argv[i], "STREAMS"))
                return i + 1;
        return -1;
    }
    if (redis_name_is(name, "OBJECT") || redis_name_is(name, "MEMORY") ||
        redis_name_is(name, "XINFO"))
        return argc > 2 ? 2 : -1;
    return 1;
}

int redis_key_slot(int argc, const wv_str *argv)
{
    int i = key_index(argc, argv);
    return i < 0 || i >= argc ? -1 : slot_of(argv[i]);
}

/* ------------------------------------------------------------- nodes */

static int node_index(struct redis_cluster *cl, const char *host, size_t hlen, int port)
{
    for (int i = 0; i < cl->nnodes; i++)
        if (cl->nodes[i].port == port && strlen(cl->nodes[i].host) == hlen &&
            memcmp(cl->nodes[i].host, host, hlen) == 0)
            return i;
    if (cl->nnodes == cl->cap) {
        int cap = cl->cap ? cl->cap * 2 : 8;
        cluster_node *nodes = realloc(cl->nodes, sizeof *nodes * (size_t)cap);
        if (!nodes)
            return -ENOMEM;
        cl->nodes = nodes;
        cl->cap = cap;
    }
    char *copy = strndup(host, hlen);
    if (!copy)
        return -ENOMEM;
    cl->nodes[cl->nnodes] = (cluster_node){.host = copy, .port = port};
    return cl->nnodes++;
}

/* The client of node i (made now if need be). */
static int node_client(wv_redis *r, int i, wv_redis **out)
{
    if (i < 0 || i >= r->cluster->nnodes)
        return wv_fail(-EHOSTUNREACH, "redis cluster %s: no node known", r->cfg->redacted);
    cluster_node *n = &r->cluster->nodes[i];
    if (!n->client) {
        redis_config *cfg;
        int rc = redis_config_for_node(r->cfg, n->host, n->port, &cfg);
        if (rc < 0)
            return rc;
        rc = redis_client_new(cfg, false, &n->client);
        redis_config_unref(cfg);
        if (rc < 0)
            return rc;
    }
    *out = n->client;
    return 0;
}

/* ------------------------------------------------------------- the map */

/* Read CLUSTER SLOTS from `via` (a plain client, not r itself once it
 * routes by the map) and rebuild cl's map. */
static int read_map(wv_redis *r, struct redis_cluster *cl, wv_redis *via, const char *via_host)
{
    wv_redis_reply *rep;
    int rc = wv_redis_cmd(via, &rep, "CLUSTER", "SLOTS");
    if (rc < 0)
        return rc;
    if (rep->type != WV_REDIS_ARRAY || rep->len == 0) {
        wv_redis_reply_free(rep);
        return wv_fail(-EPROTO, "redis %s: CLUSTER SLOTS gave no slots (is it a cluster?)",
                       r->cfg->redacted);
    }
    uint16_t *map = calloc(SLOTS, sizeof *map);
    if (!map) {
        wv_redis_reply_free(rep);
        return -ENOMEM;
    }
    for (size_t i = 0; i < rep->len; i++) {
        const wv_redis_reply *range = &rep->elem[i];
        /* [start, end, [host, port, id, ...], replicas...] */
        if (range->type != WV_REDIS_ARRAY || range->len < 3 ||
            range->elem[0].type != WV_REDIS_INT || range->elem[1].type != WV_REDIS_INT ||
            range->elem[2].type != WV_REDIS_ARRAY || range->elem[2].len < 2 ||
            range->elem[2].elem[1].type != WV_REDIS_INT) {
            rc = wv_fail(-EPROTO, "redis %s: CLUSTER SLOTS: an entry of an unknown shape",
                         r->cfg->redacted);
            break;
        }
        long long from = range->elem[0].integer, to = range->elem[1].integer;
        const wv_redis_reply *master = &range->elem[2];
        const char *host = master->elem[0].type == WV_REDIS_STRING ? master->elem[0].str : "";
        size_t hlen = master->elem[0].type == WV_REDIS_STRING ? master->elem[0].len : 0;
        if (hlen == 0 || (hlen == 1 && host[0] == '?')) { /* "the node you asked" */
            host = via_host;
            hlen = strlen(via_host);
        }
        long long port = master->elem[1].integer;
        if (from < 0 || to >= SLOTS || from > to || port <= 0 || port > 65535) {
            rc = wv_fail(-EPROTO, "redis %s: CLUSTER SLOTS: a bad range %lld-%lld or port %lld",
                         r->cfg->redacted, from, to, port);
            break;
        }
        int n = node_index(cl, host, hlen, (int)port);
        if (n < 0) {
            rc = n;
            break;
        }
        for (long long s = from; s <= to; s++)
            map[s] = (uint16_t)(n + 1);
    }
    if (rc == 0)
        memcpy(cl->slot_node, map, sizeof cl->slot_node);
    free(map);
    wv_redis_reply_free(rep);
    cl->refreshed_at = wv_now();
    return rc;
}

/* Read the map from the first node that answers. */
static int refresh(wv_redis *r)
{
    struct redis_cluster *cl = r->cluster;
    int rc = -EHOSTUNREACH;
    for (int i = 0; rc < 0 && i < cl->nnodes && !r->closed; i++) {
        wv_redis *node;
        if (node_client(r, i, &node) == 0)
            rc = read_map(r, cl, node, cl->nodes[i].host);
    }
    return rc;
}

static int refresh_fiber(void *arg)
{
    wv_redis *r = arg;
    if (!r->closed && refresh(r) < 0)
        wv_warn("redis cluster %s: reading the slot map: %s", r->cfg->redacted, wv_errmsg());
    r->cluster->refreshing = false;
    redis_client_leave(r);
    return 0;
}

/* Read the map again in the background, at most every REFRESH_MIN_MS. */
static void refresh_soon(wv_redis *r)
{
    struct redis_cluster *cl = r->cluster;
    if (cl->refreshing || r->closed || wv_now() - cl->refreshed_at < REFRESH_MIN_MS * NS_PER_MS)
        return;
    cl->refreshing = true;
    r->inside++;
    wv_spawn_opts so = {.name = "redis-cluster-map"};
    if (wv_spawn(refresh_fiber, r, &so) < 0) {
        cl->refreshing = false;
        r->inside--;
    }
}

int redis_cluster_open(wv_redis *r)
{
    struct redis_cluster *cl = calloc(1, sizeof *cl);
    if (!cl)
        return -ENOMEM;
    /* from the seed's own connection: r does not route by a map yet */
    int rc = read_map(r, cl, r, r->cfg->host);
    r->cluster = cl; /* freed with r, even after a failure */
    return rc;
}

void redis_cluster_close(wv_redis *r)
{
    struct redis_cluster *cl = r->cluster;
    if (!cl)
        return;
    for (int i = 0; i < cl->nnodes; i++) {
        wv_redis_close(cl->nodes[i].client);
        free(cl->nodes[i].host);
    }
    free(cl->nodes);
    free(cl);
    r->cluster = NULL;
}

void redis_cluster_stats_add(const wv_redis *r, wv_redis_stats *st)
{
    for (int i = 0; i < r->cluster->nnodes; i++) {
        wv_redis_stats n;
        if (!r->cluster->nodes[i].client)
            continue;
        wv_redis_stats_get(r->cluster->nodes[i].client, &n);
        st->commands += n.commands;
        st->writes += n.writes;
        st->reconnects += n.reconnects;
        st->inflight += n.inflight;
        st->redirects += n.redirects;
    }
}

int redis_cluster_node_for_slot(wv_redis *r, int slot, wv_redis **node)
{
    struct redis_cluster *cl = r->cluster;
    int i = slot >= 0 && slot < SLOTS && cl->slot_node[slot] ? cl->slot_node[slot] - 1 : 0;
    if (cl->nnodes == 0)
        return wv_fail(-EHOSTUNREACH, "redis cluster %s: no node known", r->cfg->redacted);
    return node_client(r, i, node);
}

/* ---------------------------------------------------------- redirects */

/* "MOVED 3999 127.0.0.1:6381" / "ASK 3999 [::1]:6381": the slot and the
 * node's index (added to the known nodes). */
static bool parse_redirect(wv_redis *r, const char *msg, bool *ask, int *slot, int *node)
{
    const char *p;
    if (strncmp(msg, "MOVED ", 6) == 0) {
        *ask = false;
        p = msg + 6;
    } else if (strncmp(msg, "ASK ", 4) == 0) {
        *ask = true;
        p = msg + 4;
    } else {
        return false;
    }
    char *end;
    long s = strtol(p, &end, 10);
    if (end == p || *end != ' ' || s < 0 || s >= SLOTS)
        return false;
    const char *addr = end + 1;
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr)
        return false;
    long port = strtol(colon + 1, &end, 10);
    if (port <= 0 || port > 65535 || (*end && *end != ' '))
        return false;
    const char *host = addr;
    size_t hlen = (size_t)(colon - addr);
    if (hlen >= 2 && host[0] == '[' && host[hlen - 1] == ']') {
        host++;
        hlen -= 2;
    }
    if (hlen == 0) { /* "MOVED 3999 :6381": the host we reached */
        host = r->cfg->host;
        hlen = strlen(host);
    }
    int n = node_index(r->cluster, host, hlen, (int)port);
    if (n < 0)
        return false;
    *slot = (int)s;
    *node = n;
    return true;
}

/* ASKING and the command, queued together on one connection of node. */
typedef struct ask_op {
    redis_op op; /* first: the connection sees this one */
    redis_op *inner;
} ask_op;

static void deliver_ask(redis_op *o, char *p, size_t len, const resp_scanner *sc)
{
    ask_op *a = (ask_op *)o;
    if (o->req.got == 0) { /* ASKING's +OK */
        redis_deliver_status(o, p, len, sc);
        return;
    }
    a->inner->deliver(a->inner, p, len, sc);
    a->inner->req.got++;
}

static int call_asking(wv_redis *node, redis_op *op, int argc, const wv_str *argv)
{
    wv_buf b = {0};
    wv_str asking = WV_STR("ASKING");
    if (resp_append_command(&b, 1, &asking) < 0 || resp_append_command(&b, argc, argv) < 0) {
        wv_buf_free(&b);
        return -ENOMEM;
    }
    ask_op a = {.op = {.req.replies = 2, .deliver = deliver_ask}, .inner = op};
    int rc = redis_run_raw(node, &a.op, b.p, b.n, -1);
    wv_buf_free(&b);
    if (op->req.rc < 0)
        return wv_fail(op->req.rc, "%s", op->req.msg);
    if (rc < 0)
        redis_op_fail(op, rc, "%s", a.op.req.msg);
    return rc;
}

static void op_reset(redis_op *op)
{
    /* a fresh request: the mux's fields, the deliverer's target kept */
    op->req = (wv_mux_req){.replies = op->req.replies};
}

int redis_cluster_call(wv_redis *r, redis_op *op, int argc, const wv_str *argv)
{
    struct redis_cluster *cl = r->cluster;
    int slot = redis_key_slot(argc, argv);
    int i = slot >= 0 && cl->slot_node[slot] ? cl->slot_node[slot] - 1 : 0;
    bool ask = false;
    r->inside++;
    int rc = -EHOSTUNREACH;
    for (int attempt = 0; attempt <= MAX_REDIRECTS && !r->closed; attempt++) {
        wv_redis *node;
        if ((rc = node_client(r, i, &node)) < 0)
            break;
        op_reset(op);
        rc = ask ? call_asking(node, op, argc, argv) : redis_call(node, op, argc, argv);
        int to_slot, to_node;
        if (rc == -EIO && parse_redirect(r, op->req.msg, &ask, &to_slot, &to_node)) {
            r->cfg->stats.redirects++;
            if (!ask) {
                cl->slot_node[to_slot] = (uint16_t)(to_node + 1);
                refresh_soon(r);
            }
            i = to_node;
            continue;
        }
        if (rc == -ECONNRESET || rc == -ECONNREFUSED || rc == -EPIPE || rc == -EHOSTUNREACH)
            refresh_soon(r);
        break;
    }
    if (r->closed && rc >= 0)
        rc = wv_fail(-ESHUTDOWN, "redis %s: the client is closed", r->cfg->redacted);
    redis_client_leave(r);
    return rc;
}
