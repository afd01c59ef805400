/*
 * bench/bench_ws.c: the WebSocket load client of bench/run_ws.sh (`make
 * bench-ws`), on weave's own client (wv_ws_connect), in wv_main with
 * one shard, so that the process can be pinned to one CPU with taskset.
 *
 *   bench_ws check URL                        one connection, one message echoed
 *   bench_ws echo URL CONNS INFLIGHT SECONDS  ws.echo: messages/s
 *   bench_ws broadcast URL N PUBLISHES        ws.broadcast: ms (median)
 *   bench_ws idle URL N                       ws.conn_rss's client
 *   bench_ws listen URL N                     ws.conn_rss_listen's client
 *
 * echo: CONNS connections to an echo server, INFLIGHT messages of 64 bytes of
 * text in flight on each (send INFLIGHT, then one more per reply); after a
 * 0.5 s warm-up, the replies of SECONDS seconds are counted. Every reply must
 * be the message sent, in order.
 *
 * broadcast: N subscribers join the room at URL (connected ~200 at a time,
 * one reader fiber each), then one more connection, the publisher, joins too;
 * once the room is quiet (no message for 0.3 s: weave's room announces every
 * join), the publisher sends one text PUBLISHES times, and each time the time
 * from the send until the last of the N subscribers has it is taken. The
 * relay must be {"from":"<peer>","text":"<the text>"} (weave's /ws/chat and
 * bench/ws/ws_server.js's /chat); {"event":...} messages are skipped.
 *
 * idle: N connections, each with one message echoed, then "ready N" on
 * stdout; they stay open, idle, until SIGTERM (run_ws.sh reads the server's
 * RSS meanwhile).
 *
 * listen: the same without the message: N connections that never send
 * anything after the handshake (a subscriber that only listens), then
 * "ready N", idle until SIGTERM. Neither mode pings, offers compression or
 * sends anything the server must answer.
 *
 * Each mode prints `value=<number>` on stdout when it succeeds (idle: none);
 * details go to stderr. A wrong reply, a failed connection or a timeout
 * prints why and exits 1.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <weave/rt.h>
#include <weave/ws.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>

#define MSG_LEN    64
#define CONNECTORS 200

static const char *mode;
static const char *url;
static double result;
static bool have_result;

static int fail(int err, const char *fmt, ...) WV_PRINTF(2, 3);
static int fail(int err, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench_ws %s: ", mode);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    return err < 0 ? err : -EPROTO;
}

static const wv_ws_connect_opts client_opts = {.ping_interval_ms = -1};

/* ------------------------------------------------ connecting many at once */

typedef struct pool {
    wv_ws **ws;
    long n, next, done;
    int (*on_connected)(long i); /* after each connection, in its connector */
    int err;
} pool;

static pool P;

static int connector(void *arg)
{
    (void)arg;
    while (P.err == 0 && P.next < P.n) {
        long i = P.next++;
        int64_t old = wv_deadline_set(wv_after_ms(20000));
        int rc = wv_ws_connect(url, &client_opts, &P.ws[i]);
        wv_deadline_set(old);
        if (rc < 0) {
            if (P.err == 0)
                P.err = fail(rc, "connection %ld of %ld to %s: %s (%s)", i + 1, P.n, url,
                             wv_strerror(rc), wv_errmsg());
            return 0;
        }
        if (P.on_connected && (rc = P.on_connected(i)) < 0) {
            if (P.err == 0)
                P.err = rc;
            return 0;
        }
        P.done++;
    }
    return 0;
}

/* Connect n clients to url into ws[], CONNECTORS at a time. */
static void nodelay_all(void);

static int connect_all(wv_ws **ws, long n, int (*on_connected)(long))
{
    P = (pool){.ws = ws, .n = n, .on_connected = on_connected};
    wv_group *g = wv_group_new();
    if (!g)
        return fail(-ENOMEM, "no group");
    int64_t t0 = wv_now();
    for (long k = 0; k < CONNECTORS && k < n; k++) {
        int rc = wv_group_spawn(g, connector, NULL, &(wv_spawn_opts){.name = "connector"});
        if (rc < 0) {
            P.err = fail(rc, "spawn: %s", wv_strerror(rc));
            break;
        }
    }
    wv_group_join(g);
    wv_group_free(g);
    if (!getenv("BENCH_WS_NAGLE"))
        nodelay_all();
    if (P.err == 0)
        fprintf(stderr, "bench_ws %s: %ld connections to %s in %.2f s\n", mode, n, url,
                (double)(wv_now() - t0) / 1e9);
    return P.err;
}

/*
 * wv_ws_connect leaves Nagle's algorithm on (no TCP_NODELAY on the client's
 * socket, and wv_ws has no accessor for its descriptor): a load generator
 * with many small messages in flight must not wait for ACKs, so set it on
 * every TCP socket of this process (they are all client connections).
 */
static void nodelay_all(void)
{
    struct rlimit rl;
    int one = 1, max = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (int)rl.rlim_cur : 1024;
    for (int fd = 3; fd < max; fd++)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void free_all(wv_ws **ws, long n)
{
    for (long i = 0; i < n; i++)
        wv_ws_free(ws[i]);
}

/* --------------------------------------------------------------- messages */

/* Message number seq of connection c: 64 bytes of text, unique. */
static void make_msg(char *out, long c, uint64_t seq)
{
    int k = snprintf(out, MSG_LEN + 1, "weave-bench c%06ld m%014" PRIu64 " ", c, seq);
    memset(out + k, 'x', MSG_LEN - (size_t)k);
}

/* Send one message and expect it back. */
static int echo_once(wv_ws *ws, long c)
{
    char m[MSG_LEN + 1];
    wv_str r;
    make_msg(m, c, 0);
    int64_t old = wv_deadline_set(wv_after_ms(20000));
    int rc = wv_ws_send(ws, WV_WS_TEXT, m, MSG_LEN);
    if (rc >= 0)
        rc = wv_ws_recv(ws, &r);
    wv_deadline_set(old);
    if (rc < 0)
        return fail(rc, "connection %ld: no echo: %s (%s)", c, wv_strerror(rc), wv_errmsg());
    if (rc != WV_WS_TEXT || r.n != MSG_LEN || memcmp(r.p, m, MSG_LEN) != 0)
        return fail(-EPROTO,
                    "connection %ld: the echo (type %d, %zu bytes) differs from the message", c, rc,
                    r.n);
    return 0;
}

/* ---------------------------------------------------------------- check */

static int run_check(void)
{
    wv_ws *ws = NULL;
    int64_t old = wv_deadline_set(wv_after_ms(5000));
    int rc = wv_ws_connect(url, &client_opts, &ws);
    wv_deadline_set(old);
    if (rc < 0)
        return fail(rc, "%s: %s (%s)", url, wv_strerror(rc), wv_errmsg());
    rc = echo_once(ws, 0);
    if (rc == 0) {
        wv_ws_close(ws, WV_WS_NORMAL, NULL);
        result = 1;
        have_result = true;
    }
    wv_ws_free(ws);
    return rc;
}

/* ----------------------------------------------------------------- echo */

typedef struct echo_conn {
    wv_ws *ws;
    long idx;
    uint64_t sent, recvd;
} echo_conn;

static long inflight;
static bool echo_stop;
static uint64_t echo_total;

static int echo_fiber(void *arg)
{
    echo_conn *c = arg;
    char m[MSG_LEN + 1];
    wv_str r;
    int rc;
    for (long k = 0; k < inflight; k++) {
        make_msg(m, c->idx, c->sent++);
        if ((rc = wv_ws_send(c->ws, WV_WS_TEXT, m, MSG_LEN)) < 0)
            return fail(rc, "connection %ld: send: %s", c->idx, wv_strerror(rc));
    }
    while (c->recvd < c->sent) {
        rc = wv_ws_recv(c->ws, &r);
        if (rc < 0)
            return fail(rc, "connection %ld: recv after %" PRIu64 " replies: %s (%s)", c->idx,
                        c->recvd, wv_strerror(rc), wv_errmsg());
        make_msg(m, c->idx, c->recvd);
        if (rc != WV_WS_TEXT || r.n != MSG_LEN || memcmp(r.p, m, MSG_LEN) != 0)
            return fail(-EPROTO,
                        "connection %ld: reply %" PRIu64
                        " (type %d, %zu bytes) is not the message sent: '%.*s'",
                        c->idx, c->recvd, rc, r.n, (int)(r.n < 80 ? r.n : 80), r.p);
        c->recvd++;
        echo_total++;
        if (!echo_stop) {
            make_msg(m, c->idx, c->sent++);
            if ((rc = wv_ws_send(c->ws, WV_WS_TEXT, m, MSG_LEN)) < 0)
                return fail(rc, "connection %ld: send: %s", c->idx, wv_strerror(rc));
        }
    }
    wv_ws_close(c->ws, WV_WS_NORMAL, NULL);
    return 0;
}

static int run_echo(long conns, long seconds)
{
    wv_ws **ws = calloc((size_t)conns, sizeof *ws);
    echo_conn *c = calloc((size_t)conns, sizeof *c);
    int rc = ws && c ? connect_all(ws, conns, NULL) : -ENOMEM;
    wv_group *g = rc == 0 ? wv_group_new() : NULL;
    if (rc == 0 && !g)
        rc = -ENOMEM;
    for (long i = 0; rc == 0 && i < conns; i++) {
        c[i] = (echo_conn){.ws = ws[i], .idx = i};
        rc = wv_group_spawn(g, echo_fiber, &c[i], NULL);
    }
    if (rc == 0) {
        wv_sleep_ms(500); /* warm-up */
        uint64_t n0 = echo_total;
        int64_t t0 = wv_now();
        wv_sleep_ms(seconds * 1000);
        uint64_t n1 = echo_total;
        int64_t t1 = wv_now();
        echo_stop = true;
        int64_t old = wv_deadline_set(wv_after_ms(10000));
        rc = wv_group_join(g);
        wv_deadline_set(old);
        if (rc == -ETIMEDOUT)
            rc = fail(rc, "the connections did not drain within 10 s");
        if (rc == 0) {
            if (n1 == n0)
                rc = fail(-EPROTO, "no reply at all");
            result = (double)(n1 - n0) / ((double)(t1 - t0) / 1e9);
            have_result = true;
            fprintf(stderr,
                    "bench_ws echo: %ld connections x %ld in flight, %" PRIu64
                    " replies in %.2f s, every one checked\n",
                    conns, inflight, n1 - n0, (double)(t1 - t0) / 1e9);
        }
    }
    if (g)
        wv_group_free(g);
    if (ws)
        free_all(ws, conns);
    free(ws);
    free(c);
    return rc;
}

/* ------------------------------------------------------------ broadcast */

static wv_ws **bsubs; /* N subscribers, then the publisher */
static long bn;
static wv_group *breaders;
static uint64_t bmessages; /* every message any reader received */
static char bexpect[64];   /* the text being published ("" between rounds) */
static long bgot;          /* subscribers that have it */
static int64_t blast;      /* when the last one got it */
static wv_chan *bdone;     /* signalled when bgot reaches bn */
static bool bstopping;
static int bfailed; /* a reader's error */

static int reader_failed(int rc)
{
    int one = 1;
    if (bfailed == 0)
        bfailed = rc;
    wv_chan_try_send(bdone, &one);
    return rc;
}

/* {"from":"<no quote>","text":"<bexpect>"}, or with ,"id":"<digits>" after
 * "from" (weave's /ws/chat names the member's id too) */
static bool is_relay(wv_str m)
{
    static const char pre[] = "{\"from\":\"", id[] = ",\"id\":\"", text[] = ",\"text\":\"";
    size_t np = sizeof pre - 1, ni = sizeof id - 1, nt = sizeof text - 1, ne = strlen(bexpect);
    const char *p = m.p, *end = m.p + m.n;
    if (m.n < np + nt + ne + 3 || memcmp(p, pre, np) != 0)
        return false;
    p += np;
    while (p < end && *p != '"')
        p++;
    if (p == end)
        return false;
    p++;
    if ((size_t)(end - p) > ni && memcmp(p, id, ni) == 0) {
        p += ni;
        const char *digits = p;
        while (p < end && *p >= '0' && *p <= '9')
            p++;
        if (p == digits || p == end || *p != '"')
            return false;
        p++;
    }
    return (size_t)(end - p) == nt + ne + 2 && memcmp(p, text, nt) == 0 &&
           memcmp(p + nt, bexpect, ne) == 0 && memcmp(end - 2, "\"}", 2) == 0;
}

static int reader(void *arg)
{
    long i = (long)(intptr_t)arg;
    wv_str m;
    for (;;) {
        int rc = wv_ws_recv(bsubs[i], &m);
        if (rc < 0) {
            if (bstopping || rc == -ECANCELED)
                return 0;
            return reader_failed(
                fail(rc, "subscriber %ld: recv: %s (%s)", i, wv_strerror(rc), wv_errmsg()));
        }
        bmessages++;
        if (rc == WV_WS_TEXT && m.n >= 9 && memcmp(m.p, "{\"event\":", 9) == 0)
            continue; /* weave's join/leave announcements */
        if (rc != WV_WS_TEXT || !bexpect[0] || !is_relay(m))
            return reader_failed(
                fail(-EPROTO, "subscriber %ld: unexpected message (type %d, %zu bytes): '%.*s'", i,
                     rc, m.n, (int)(m.n < 120 ? m.n : 120), m.p));
        if (i == bn)
            continue; /* the publisher gets its own message too */
        if (++bgot == bn) {
            blast = wv_now();
            int one = 1;
            wv_chan_try_send(bdone, &one);
        }
    }
}

static int spawn_reader(long i)
{
    int rc = wv_group_spawn(breaders, reader, (void *)(intptr_t)i,
                            &(wv_spawn_opts){.stack_size = 64 * 1024, .name = "reader"});
    return rc < 0 ? fail(rc, "spawn: %s", wv_strerror(rc)) : 0;
}

/* Wait until no reader has received anything for 0.3 s (at most 120 s). */
static int wait_quiet(void)
{
    int64_t until = wv_after_ms(120000);
    uint64_t before;
    do {
        before = bmessages;
        if (wv_sleep_ms(300) < 0)
            return -ECANCELED;
        if (bfailed)
            return bfailed;
        if (wv_now() > until)
            return fail(-ETIMEDOUT, "the room is still busy after 120 s");
    } while (bmessages != before);
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int run_broadcast(long n, long publishes)
{
    int rc = 0;
    double *ms = calloc((size_t)publishes, sizeof *ms);
    srandom((unsigned)wv_now());
    bn = n;
    bsubs = calloc((size_t)n + 1, sizeof *bsubs);
    breaders = wv_group_new();
    bdone = wv_chan_new(sizeof(int), 1);
    if (!ms || !bsubs || !breaders || !bdone)
        rc = fail(-ENOMEM, "out of memory");
    if (rc == 0)
        rc = connect_all(bsubs, n, spawn_reader);
    if (rc == 0) { /* the publisher, last */
        int64_t old = wv_deadline_set(wv_after_ms(20000));
        rc = wv_ws_connect(url, &client_opts, &bsubs[n]);
        wv_deadline_set(old);
        if (rc < 0)
            rc = fail(rc, "the publisher: %s (%s)", wv_strerror(rc), wv_errmsg());
        else
            rc = spawn_reader(n);
        if (!getenv("BENCH_WS_NAGLE"))
            nodelay_all();
    }
    int64_t t_quiet = wv_now();
    if (rc == 0)
        rc = wait_quiet();
    if (rc == 0)
        fprintf(stderr,
                "bench_ws broadcast: room quiet after %.2f s (%" PRIu64 " messages so far)\n",
                (double)(wv_now() - t_quiet) / 1e9, bmessages);
    for (long p = 0; rc == 0 && p < publishes; p++) {
        int one;
        while (wv_chan_try_recv(bdone, &one) == 0) {
        }
        snprintf(bexpect, sizeof bexpect, "bench-broadcast-%ld-%08lx", p, (unsigned long)random());
        bgot = 0;
        int64_t t0 = wv_now();
        rc = wv_ws_send_text(bsubs[n], bexpect);
        if (rc < 0) {
            rc = fail(rc, "publish: %s", wv_strerror(rc));
            break;
        }
        rc = wv_chan_recv_until(bdone, &one, wv_after_ms(30000));
        if (bfailed) {
            rc = bfailed;
            break;
        }
        if (rc < 0) {
            rc =
                fail(rc, "publish %ld: only %ld of %ld subscribers got it within 30 s", p, bgot, n);
            break;
        }
        ms[p] = (double)(blast - t0) / 1e6;
        /* let the publisher's own copy and any straggler arrive before the next text */
        if ((rc = wait_quiet()) < 0)
            break;
        bexpect[0] = 0;
    }
    if (rc == 0) {
        fprintf(stderr, "bench_ws broadcast: %ld subscribers, each publish (ms):", n);
        for (long p = 0; p < publishes; p++)
            fprintf(stderr, " %.2f", ms[p]);
        fprintf(stderr, "; every subscriber got every text, checked\n");
        qsort(ms, (size_t)publishes, sizeof *ms, cmp_double);
        result =
            publishes % 2 ? ms[publishes / 2] : (ms[publishes / 2 - 1] + ms[publishes / 2]) / 2;
        have_result = true;
    }
    bstopping = true;
    if (breaders) {
        wv_group_cancel(breaders);
        wv_group_join(breaders);
        wv_group_free(breaders);
    }
    if (bsubs)
        free_all(bsubs, n + 1);
    if (bdone)
        wv_chan_free(bdone);
    free(bsubs);
    free(ms);
    return rc;
}

/* ----------------------------------------------------------------- idle */

static wv_ws **iws;

static int idle_check(long i)
{
    return echo_once(iws[i], i);
}

static int run_idle(long n, bool echo_first)
{
    iws = calloc((size_t)n, sizeof *iws);
    int rc = iws ? connect_all(iws, n, echo_first ? idle_check : NULL) : -ENOMEM;
    if (rc == 0) {
        printf("ready %ld\n", n);
        fflush(stdout);
        wv_stop_wait(); /* SIGTERM */
    }
    if (iws)
        free_all(iws, n);
    free(iws);
    return rc;
}

/* ----------------------------------------------------------------- main */

static long nargs[3];

static int body(void *arg)
{
    (void)arg;
    if (strcmp(mode, "check") == 0)
        return run_check();
    if (strcmp(mode, "echo") == 0)
        return run_echo(nargs[0], nargs[2]);
    if (strcmp(mode, "broadcast") == 0)
        return run_broadcast(nargs[0], nargs[1]);
    return run_idle(nargs[0], strcmp(mode, "idle") == 0);
}

static long parse_pos(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return *s && !*end && v > 0 ? v : -1;
}

int main(int argc, char **argv)
{
    static const struct {
        const char *name;
        int nargs;
    } modes[] = {{"check", 0}, {"echo", 3}, {"broadcast", 2}, {"idle", 1}, {"listen", 1}};
    int m = -1;
    for (int k = 0; argc >= 3 && k < (int)(sizeof modes / sizeof modes[0]); k++)
        if (strcmp(argv[1], modes[k].name) == 0 && argc == 3 + modes[k].nargs)
            m = k;
    for (int k = 0; m >= 0 && k < modes[m].nargs; k++)
        if ((nargs[k] = parse_pos(argv[3 + k])) < 0)
            m = -1;
    if (m < 0) {
        fprintf(stderr, "usage: bench_ws check URL\n"
                        "       bench_ws echo URL CONNS INFLIGHT SECONDS\n"
                        "       bench_ws broadcast URL SUBSCRIBERS PUBLISHES\n"
                        "       bench_ws idle URL CONNS\n"
                        "       bench_ws listen URL CONNS\n");
        return 2;
    }
    mode = argv[1];
    url = argv[2];
    inflight = nargs[1];

    /* one descriptor per connection: take the hard limit */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int rc = wv_main(&(wv_main_opts){.shards = 1}, body, NULL);
    bool idle = strcmp(mode, "idle") == 0 || strcmp(mode, "listen") == 0;
    if (rc < 0 || (!idle && !have_result)) {
        fprintf(stderr, "bench_ws %s: failed (%s)\n", mode, wv_strerror(rc < 0 ? rc : -EPROTO));
        return 1;
    }
    if (have_result)
        printf("value=%.3f\n", result);
    return 0;
}
