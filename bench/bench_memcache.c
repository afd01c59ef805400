/*
 * bench/bench_memcache.c: weave's memcached client (include/weave/memcache.h)
 * against a real memcached, gets as fast as the client allows, every value
 * checked. bench/run_cache.sh runs it against a throwaway memcached
 * (memcached on CPU 0, this program on CPU 1, one shard) beside its anchors.
 *
 *   bench_memcache preload SERVER
 *       set the key set of bench_keyset.h (KEYSET_KEYS keys key:<n> with
 *       12 digits, key:000000001234, each to its own 3-byte value), then
 *       read every one back.
 *   bench_memcache MODE SERVER SECONDS [FIBERS]
 *       one run; the last line is value=<gets per second>:
 *
 *   get     FIBERS (50) fibers, each with a client of its own, so each on
 *           its own connection with one get in flight: memcaslap's shape
 *           (one thread, FIBERS connections, one request each)
 *   shared  FIBERS fibers on ONE client with its defaults: its one
 *           connection to the server, auto-pipelined (what the fibers issue
 *           during one pass of the loop leaves in one write)
 *
 * Keys are drawn at random (xorshift, a seed per fiber) from the key set.
 * The connections are dialed before the clock starts; every fiber then runs
 * WARM_MS of warm-up, and what completes in the SECONDS after it counts. A
 * get that fails, misses or returns another value than the key's fails the
 * run (exit status 1).
 *
 * Lines starting with '#' (on stderr) describe the run. Before value= come
 * what bench/cache/note.sh collects for the suite's CPU lines (server_cpu=,
 * client_cpu=, server_us=, client_us=: the server's pid is CACHE_SERVER_PID;
 * bench_util.h's print_cpu_lines) and per_write=, the client's requests per
 * write.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_keyset.h"
#include "bench_util.h"
#include "weave/memcache.h"
#include "weave/rt.h"

enum { FIBERS = 50, WARM_MS = 500, MAX_FIBERS = 10000 };

typedef enum mode { GET, SHARED, PRELOAD } mode;

static const char *servers, *mode_name;
static mode run_mode;
static double seconds;
static int nfibers = FIBERS;
static pid_t server_pid; /* CACHE_SERVER_PID */

typedef struct worker {
    keyset_fiber k; /* first */
    wv_memcache *m; /* this fiber's client (get) or the shared one */
} worker;

static int worker_fn(void *arg)
{
    worker *w = arg;
    wv_deadline_set(w->k.end_at + INT64_C(30000000000)); /* never hang the bench */
    wv_buf v = {0};
    for (;;) {
        int n = keyset_random(&w->k.seed);
        wv_buf_reset(&v);
        int rc = wv_memcache_get(w->m, keyset_key(n), &v, NULL, NULL);
        bool ok = rc == 1 && keyset_value_ok(n, v.p, v.n);
        if (!ok && w->k.failed++ < 3)
            fprintf(stderr, "# get of key %d: %s\n", n,
                    rc < 0    ? wv_errmsg()
                    : rc == 0 ? "a miss"
                              : "WRONG VALUE");
        int64_t now = wv_now();
        if (now >= w->k.end_at || w->k.failed)
            break;
        if (now >= w->k.warm_end)
            w->k.done++;
    }
    wv_buf_free(&v);
    return 0;
}

static int run(void)
{
    worker *w = calloc((size_t)nfibers, sizeof *w);
    if (!w)
        return -ENOMEM;
    int nclients = run_mode == GET ? nfibers : 1, rc = 0;
    wv_memcache **clients = calloc((size_t)nclients, sizeof *clients);
    if (!clients) {
        free(w);
        return -ENOMEM;
    }
    /* every connection dialed and used once before the clock starts */
    for (int i = 0; i < nclients && rc == 0; i++) {
        if ((rc = wv_memcache_open(servers, NULL, &clients[i])) < 0)
            fprintf(stderr, "# open %s: %s\n", servers, wv_errmsg());
        else if ((rc = wv_memcache_ping(clients[i])) < 0)
            fprintf(stderr, "# ping: %s\n", wv_errmsg());
    }
    for (int i = 0; i < nfibers; i++)
        w[i].m = clients[run_mode == GET ? i : 0];
    keyset_result res = {0};
    if (rc == 0)
        rc = keyset_run(w, nfibers, sizeof *w, worker_fn, WARM_MS, seconds, server_pid, &res);
    long long done = res.done, failed = res.failed;
    uint64_t requests = 0, writes = 0;
    for (int i = 0; i < nclients; i++) {
        if (!clients[i])
            continue;
        wv_memcache_stats st;
        wv_memcache_stats_get(clients[i], &st);
        requests += st.requests;
        writes += st.writes;
        wv_memcache_close(clients[i]);
    }
    if (rc == 0) {
        double window = res.window;
        double per = writes ? (double)requests / (double)writes : 0;
        fprintf(stderr,
                "# mode=%s fibers=%d clients=%d seconds=%.2f (after %d ms of warm-up) gets=%lld "
                "failed=%lld; %llu requests in %llu writes (%.1f per write)\n",
                mode_name, nfibers, nclients, window, WARM_MS, done, failed,
                (unsigned long long)requests, (unsigned long long)writes, per);
        print_cpu_lines(res.a, res.b, (double)done / window);
        printf("per_write=%.1f\n", per);
        if (failed == 0)
            printf("value=%.0f\n", (double)done / window);
    }
    free(clients);
    free(w);
    return rc < 0 ? rc : failed > 0 ? -EIO : 0;
}

/* The key set, set then read back. */
static int preload(void)
{
    wv_memcache *m;
    int rc = wv_memcache_open(servers, NULL, &m);
    if (rc < 0) {
        fprintf(stderr, "# open %s: %s\n", servers, wv_errmsg());
        return rc;
    }
    char v[KEYSET_VALUE_LEN];
    for (int n = 0; n < KEYSET_KEYS && rc >= 0; n++) {
        keyset_value(n, v);
        rc = wv_memcache_set(m, keyset_key(n), (wv_str){v, KEYSET_VALUE_LEN}, NULL);
    }
    wv_buf b = {0};
    for (int n = 0; n < KEYSET_KEYS && rc >= 0; n++) {
        wv_buf_reset(&b);
        rc = wv_memcache_get(m, keyset_key(n), &b, NULL, NULL);
        rc = rc == 1 && keyset_value_ok(n, b.p, b.n) ? 0 : rc < 0 ? rc : -EIO;
    }
    wv_buf_free(&b);
    if (rc < 0)
        fprintf(stderr, "# preload: %s\n", rc == -EIO ? "a key reads back wrong" : wv_errmsg());
    else
        printf("# preloaded %d keys key:%012d .. key:%012d, %d-byte values\n", KEYSET_KEYS, 0,
               KEYSET_KEYS - 1, KEYSET_VALUE_LEN);
    wv_memcache_close(m);
    return rc < 0 ? rc : 0;
}

static int bench_main(void *arg)
{
    (void)arg;
    return run_mode == PRELOAD ? preload() : run();
}

int main(int argc, char **argv)
{
    bool known = argc >= 3;
    if (known && strcmp(argv[1], "get") == 0)
        run_mode = GET;
    else if (known && strcmp(argv[1], "shared") == 0)
        run_mode = SHARED;
    else if (known && strcmp(argv[1], "preload") == 0)
        run_mode = PRELOAD;
    else
        known = false;
    if (!known || (run_mode != PRELOAD && argc < 4) || argc > 5) {
        fprintf(stderr,
                "usage: %s preload SERVER\n"
                "       %s get|shared SERVER SECONDS [FIBERS]\n",
                argv[0], argv[0]);
        return 2;
    }
    mode_name = argv[1];
    servers = argv[2];
    if (run_mode != PRELOAD) {
        seconds = atof(argv[3]);
        if (argc > 4)
            nfibers = atoi(argv[4]);
        if (seconds <= 0 || nfibers < 1 || nfibers > MAX_FIBERS) {
            fprintf(stderr, "bench_memcache: SECONDS must be > 0, FIBERS 1 to %d\n", MAX_FIBERS);
            return 2;
        }
    }
    keyset_init();
    const char *pid = getenv("CACHE_SERVER_PID");
    server_pid = pid ? (pid_t)atoi(pid) : 0;
    wv_main_opts opts = {.shards = 1}; /* the clients, on one shard */
    return wv_main(&opts, bench_main, NULL) == 0 ? 0 : 1;
}
