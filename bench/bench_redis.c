/*
 * bench/bench_redis.c: weave's Redis client (include/weave/redis.h) against
 * a real Redis, GETs as fast as the client allows, every value checked.
 * bench/run_cache.sh runs it against a throwaway Redis (Redis on CPU 0,
 * this program on CPU 1, one shard) beside its anchors.
 *
 *   bench_redis preload URL
 *       SET the key set of bench_keyset.h: KEYSET_KEYS keys key:<n>, written with
 *       12 digits as redis-benchmark -r writes them (key:000000001234), each
 *       to its own 3-byte value, then read every one back.
 *   bench_redis MODE URL SECONDS [FIBERS]
 *       one run; the last line is value=<GETs per second>:
 *
 *   get            FIBERS (50) fibers, each on its own dedicated connection
 *                  (wv_redis_acquire from a client with pool_size FIBERS: a
 *                  handle whose holder writes and reads itself), GET of a
 *                  random key in a loop, one command in flight per connection
 *   get_pipelined  the same connections, each fiber sending PIPE (16) GETs
 *                  per round trip as one wv_redis_pipe on its handle (the
 *                  pipe refilled with new random keys every round)
 *   shared         FIBERS fibers on ONE client with its defaults: its one
 *                  shared connection, auto-pipelined (what the fibers issue
 *                  during one pass of the loop leaves in one write)
 *   shared_noauto  the same with .no_autopipeline = true: every command its
 *                  own send, still many in flight on the one connection
 *   shared_one     the same fibers taking turns on ONE connection with one
 *                  command in flight at a time: a client with pool_size 1,
 *                  each GET between wv_redis_acquire and wv_redis_release
 *                  (the fibers queue for the handle)
 *
 * Keys are drawn at random (xorshift, a seed per fiber) from the key set,
 * as redis-benchmark -r draws them. The connections are dialed before
 * the clock starts; every fiber then runs WARM_MS of warm-up, and what
 * completes in the SECONDS after it counts. A GET that fails, finds no key
 * or returns another value than the key's fails the run (exit status 1).
 *
 * Lines starting with '#' (on stderr) describe the run. Before value= come,
 * one a line, what bench/cache/note.sh collects for the suite's CPU lines:
 * server_cpu= and client_cpu=, the CPU the Redis server (its pid in
 * CACHE_SERVER_PID; -1 without it) and this process (every thread) used
 * over the timed window in % of one core; server_us= and client_us=, the
 * same in CPU µs per GET; and per_write=, the client's commands per write
 * (auto-pipelining's batches; 1 on a dedicated connection, PIPE with a
 * pipe).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "bench_keyset.h"
#include "bench_util.h"
#include "weave/redis.h"
#include "weave/rt.h"

enum { FIBERS = 50, PIPE = 16, WARM_MS = 500, MAX_FIBERS = 100000 };

typedef enum mode { GET, GET_PIPELINED, SHARED, SHARED_NOAUTO, SHARED_ONE, PRELOAD } mode;

static const struct {
    const char *name;
    mode m;
} modes[] = {
    {"get", GET},
    {"get_pipelined", GET_PIPELINED},
    {"shared", SHARED},
    {"shared_noauto", SHARED_NOAUTO},
    {"shared_one", SHARED_ONE},
    {"preload", PRELOAD},
};

static const char *url, *mode_name;
static mode run_mode;
static double seconds;
static int nfibers = FIBERS;

static pid_t server_pid; /* CACHE_SERVER_PID */

/* ------------------------------------------------------------ the loops */

typedef struct worker {
    keyset_fiber k; /* first */
    wv_redis *r;    /* the client, or this fiber's handle */
    wv_redis_pipe *pipe;
} worker;

static void note_failure(worker *w, const char *what, int n, int rc)
{
    if (w->k.failed++ < 3)
        fprintf(stderr, "# %s of key %d: %s\n", what, n,
                rc < 0    ? wv_errmsg()
                : rc == 0 ? "no such key"
                          : "WRONG VALUE");
}

/* One GET on w->r (a client or a handle): true when the value was right. */
static bool one_get(worker *w, wv_buf *v)
{
    int n = keyset_random(&w->k.seed);
    wv_redis *r = w->r, *h = NULL;
    int rc = 0;
    if (run_mode == SHARED_ONE && (rc = wv_redis_acquire(w->r, &h)) == 0)
        r = h;
    if (rc == 0) {
        wv_buf_reset(v);
        rc = wv_redis_get(r, keyset_key(n), v);
    }
    bool ok = rc == 1 && keyset_value_ok(n, v->p, v->n);
    if (!ok)
        note_failure(w, "GET", n, rc < 0 ? rc : rc == 0 ? 0 : 1);
    wv_redis_release(h);
    return ok;
}

/* PIPE GETs in one wv_redis_pipe: how many came back right (PIPE, or
 * fewer with the run failed). */
static int one_pipe(worker *w)
{
    int keys[PIPE];
    wv_redis_pipe_reset(w->pipe);
    int rc = 0;
    for (int i = 0; i < PIPE && rc == 0; i++) {
        keys[i] = keyset_random(&w->k.seed);
        wv_str argv[2] = {WV_STR("GET"), keyset_key(keys[i])};
        rc = wv_redis_pipe_addv(w->pipe, 2, argv);
    }
    if (rc == 0)
        rc = wv_redis_pipe_exec(w->pipe);
    if (rc < 0) {
        note_failure(w, "pipelined GET", keys[0], rc);
        return 0;
    }
    for (int i = 0; i < PIPE; i++) {
        const wv_redis_reply *rep = wv_redis_pipe_reply(w->pipe, i);
        if (!rep || rep->type != WV_REDIS_STRING || !keyset_value_ok(keys[i], rep->str, rep->len)) {
            note_failure(w, "pipelined GET", keys[i], rep && rep->type == WV_REDIS_NIL ? 0 : 1);
            return i;
        }
    }
    return PIPE;
}

static int worker_fn(void *arg)
{
    worker *w = arg;
    wv_deadline_set(w->k.end_at + INT64_C(30000000000)); /* never hang the bench */
    wv_buf v = {0};
    for (;;) {
        int ok = run_mode == GET_PIPELINED ? one_pipe(w) : one_get(w, &v);
        int64_t now = wv_now();
        if (now >= w->k.end_at)
            break;
        if (now >= w->k.warm_end)
            w->k.done += ok;
        if (w->k.failed) /* the run has failed: no need to go on */
            break;
    }
    wv_buf_free(&v);
    return 0;
}

static void print_stats(wv_redis *r)
{
    wv_redis_stats st;
    wv_redis_stats_get(r, &st);
    double per = st.writes ? (double)st.commands / (double)st.writes : 0;
    fprintf(stderr, "# client: %llu commands in %llu writes (%.1f per write), %llu reconnects\n",
            (unsigned long long)st.commands, (unsigned long long)st.writes, per,
            (unsigned long long)st.reconnects);
    printf("per_write=%.1f\n", per);
}

static int run(void)
{
    bool dedicated = run_mode == GET || run_mode == GET_PIPELINED;
    wv_redis_opts o = {0};
    if (dedicated)
        o.pool_size = nfibers;
    else if (run_mode == SHARED_NOAUTO)
        o.no_autopipeline = true;
    else if (run_mode == SHARED_ONE)
        o.pool_size = 1;
    wv_redis *r;
    int rc = wv_redis_open(url, run_mode == SHARED ? NULL : &o, &r);
    if (rc < 0) {
        fprintf(stderr, "# open %s: %s\n", url, wv_errmsg());
        return rc;
    }
    worker *w = calloc((size_t)nfibers, sizeof *w);
    if (!w) {
        wv_redis_close(r);
        return -ENOMEM;
    }
    /* every connection dialed and used once before the clock starts */
    for (int i = 0; i < nfibers && rc == 0; i++) {
        w[i].r = r;
        if (dedicated) {
            if ((rc = wv_redis_acquire(r, &w[i].r)) < 0)
                fprintf(stderr, "# acquire %d: %s\n", i, wv_errmsg());
            else if ((rc = wv_redis_ping(w[i].r)) < 0)
                fprintf(stderr, "# ping: %s\n", wv_errmsg());
            else if (run_mode == GET_PIPELINED &&
                     (rc = wv_redis_pipe_new(w[i].r, false, &w[i].pipe)) < 0)
                fprintf(stderr, "# pipe: %s\n", wv_errmsg());
        } else if (i == 0 && (rc = wv_redis_ping(r)) < 0) {
            fprintf(stderr, "# ping: %s\n", wv_errmsg());
        }
    }
    keyset_result res = {0};
    if (rc == 0)
        rc = keyset_run(w, nfibers, sizeof *w, worker_fn, WARM_MS, seconds, server_pid, &res);
    long long done = res.done, failed = res.failed;
    if (rc == 0) {
        double window = res.window;
        fprintf(stderr,
                "# mode=%s fibers=%d seconds=%.2f (after %d ms of warm-up) GETs=%lld failed=%lld\n",
                mode_name, nfibers, window, WARM_MS, done, failed);
        print_cpu_lines(res.a, res.b, (double)done / window);
        print_stats(r);
        if (failed == 0)
            printf("value=%.0f\n", (double)done / window);
    }
    for (int i = 0; i < nfibers; i++) {
        wv_redis_pipe_free(w[i].pipe);
        if (dedicated && w[i].r && w[i].r != r)
            wv_redis_release(w[i].r);
    }
    free(w);
    wv_redis_close(r);
    return rc < 0 ? rc : failed > 0 ? -EIO : 0;
}

/* The key set: PIPE SETs per round trip, then every key read back. */
static int preload(void)
{
    wv_redis *r;
    int rc = wv_redis_open(url, NULL, &r);
    if (rc < 0) {
        fprintf(stderr, "# open %s: %s\n", url, wv_errmsg());
        return rc;
    }
    wv_redis_pipe *p;
    if ((rc = wv_redis_pipe_new(r, false, &p)) < 0) {
        wv_redis_close(r);
        return rc;
    }
    char v[KEYSET_VALUE_LEN];
    for (int n = 0; n < KEYSET_KEYS && rc == 0; n++) {
        keyset_value(n, v);
        wv_str argv[3] = {WV_STR("SET"), keyset_key(n), {v, KEYSET_VALUE_LEN}};
        rc = wv_redis_pipe_addv(p, 3, argv);
        if (rc == 0 && (n % 100 == 99 || n == KEYSET_KEYS - 1)) {
            rc = wv_redis_pipe_exec(p);
            wv_redis_pipe_reset(p);
        }
    }
    wv_redis_pipe_free(p);
    wv_buf b = {0};
    for (int n = 0; n < KEYSET_KEYS && rc == 0; n++) {
        wv_buf_reset(&b);
        rc = wv_redis_get(r, keyset_key(n), &b);
        if (rc == 1 && keyset_value_ok(n, b.p, b.n))
            rc = 0;
        else if (rc >= 0)
            rc = -EIO;
    }
    wv_buf_free(&b);
    if (rc < 0)
        fprintf(stderr, "# preload: %s\n", rc == -EIO ? "a key reads back wrong" : wv_errmsg());
    else
        printf("# preloaded %d keys key:%012d .. key:%012d, %d-byte values\n", KEYSET_KEYS, 0,
               KEYSET_KEYS - 1, KEYSET_VALUE_LEN);
    wv_redis_close(r);
    return rc;
}

static int bench_main(void *arg)
{
    (void)arg;
    return run_mode == PRELOAD ? preload() : run();
}

int main(int argc, char **argv)
{
    bool known = false;
    if (argc >= 3)
        for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
            if (strcmp(argv[1], modes[i].name) == 0) {
                known = true;
                run_mode = modes[i].m;
            }
    if (!known || (run_mode != PRELOAD && argc < 4) || argc > 5) {
        fprintf(stderr,
                "usage: %s preload URL\n"
                "       %s get|get_pipelined|shared|shared_noauto|shared_one URL SECONDS "
                "[FIBERS]\n",
                argv[0], argv[0]);
        return 2;
    }
    mode_name = argv[1];
    url = argv[2];
    if (run_mode != PRELOAD) {
        seconds = atof(argv[3]);
        if (argc > 4)
            nfibers = atoi(argv[4]);
        if (seconds <= 0 || nfibers < 1 || nfibers > MAX_FIBERS) {
            fprintf(stderr, "bench_redis: SECONDS must be > 0, FIBERS 1 to %d\n", MAX_FIBERS);
            return 2;
        }
    }
    keyset_init();
    const char *pid = getenv("CACHE_SERVER_PID");
    server_pid = pid ? (pid_t)atoi(pid) : 0;
    wv_main_opts opts = {.shards = 1}; /* one client, on one shard */
    int rc = wv_main(&opts, bench_main, NULL);
    return rc == 0 ? 0 : 1;
}
