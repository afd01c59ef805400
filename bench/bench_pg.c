/*
 * bench_pg URL MODE SECONDS: single-row selects by primary key against a
 * real PostgreSQL, as fast as the client allows, every result checked.
 *
 *   select_1conn  one fiber, one connection (a classic driver's loop)
 *   select_pool   64 fibers sharing a pool of 16 connections
 *   pipelined     64 fibers sharing one connection (auto-pipelined)
 *   unpipelined   the same 64 fibers on one connection, one statement on
 *                 the wire at a time (wv_pg_opts.no_pipeline)
 *   batch         one fiber on one connection sending the statements 64 at
 *                 a time as one wv_pg_batch: one Sync per 64 statements
 *                 (one implicit transaction), which is what pgbench's
 *                 \startpipeline ... \endpipeline sends; the auto-pipelined
 *                 modes send one Sync per statement
 *   libpq_pipeline  no weave: libpq alone in pipeline mode, blocking, in a
 *                 plain loop, 64 statements at a time each with its own
 *                 Sync (the auto-pipelined wire, the socket corked around
 *                 each batch as weave's writer does): the floor of
 *                 `pipelined`, what no client on this connection can beat
 *
 * The statement is "SELECT id, name FROM bench_users WHERE id = $1" on a
 * 10,000-row table (id, 'user <id>') the bench creates when missing, as
 * bench/db/setup.sql does (prepared once per connection by the statement
 * cache). Runs on 1 shard unless WEAVE_SHARDS
 * says otherwise (each shard then runs the whole mode). Lines starting
 * with '#' describe the run; the last line is value=<queries per second>.
 * Exit status 1 if any query failed or returned a wrong row.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <sys/socket.h>
#include <time.h>

#include "weave/pg.h"
#include "weave/rt.h"

enum { ROWS = 10000, FIBERS = 64, POOL = 16 };

static const char *url, *mode;
static double seconds;
static _Atomic double rate_total; /* queries per second, summed over shards */
static atomic_llong done_total, failed_total, batches_total, statements_total;

typedef struct worker {
    int64_t end_at;
    wv_pg_conn *conn;
    wv_pg_pool *pool;
    uint64_t seed;
    long long done, failed;
} worker;

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static bool one_query(worker *w)
{
    int64_t id = (int64_t)(next_rand(&w->seed) % ROWS) + 1;
    wv_pg_result *r;
    const char *sql = "SELECT id, name FROM bench_users WHERE id = $1";
    int n = w->pool ? wv_pg_pool_query(w->pool, &r, sql, WV_PG_INT(id))
                    : wv_pg_query(w->conn, &r, sql, WV_PG_INT(id));
    if (n != 1) {
        if (w->failed++ < 3)
            fprintf(stderr, "# query failed: %d %s\n", n, n < 0 ? wv_errmsg() : "(row count)");
        wv_pg_result_free(r);
        return false;
    }
    int64_t got = 0;
    wv_str name;
    char want[32];
    snprintf(want, sizeof want, "user %lld", (long long)id);
    bool ok = wv_pg_get_int(r, 0, 0, &got) == 0 && got == id &&
              wv_pg_get_text(r, 0, 1, &name) == 0 && wv_str_eq_cstr(name, want);
    wv_pg_result_free(r);
    if (!ok && w->failed++ < 3)
        fprintf(stderr, "# wrong row for id %lld\n", (long long)id);
    return ok;
}

/* batch mode: BATCH statements in one wv_pg_batch (one write, one Sync) */
static bool one_batch(worker *w)
{
    const char *sql = "SELECT id, name FROM bench_users WHERE id = $1";
    int64_t ids[FIBERS];
    wv_pg_batch *b = wv_pg_batch_new();
    int rc = b ? 0 : -ENOMEM;
    for (int i = 0; i < FIBERS && rc == 0; i++) {
        ids[i] = (int64_t)(next_rand(&w->seed) % ROWS) + 1;
        rc = wv_pg_batch_add(b, sql, WV_PG_INT(ids[i]));
    }
    if (rc == 0)
        rc = wv_pg_batch_run(w->conn, b);
    for (int i = 0; i < FIBERS && rc == 0; i++) {
        wv_pg_result *r;
        int64_t got = 0;
        wv_str name;
        char want[32];
        snprintf(want, sizeof want, "user %lld", (long long)ids[i]);
        if (wv_pg_batch_result(b, i, &r) != 1 || wv_pg_get_int(r, 0, 0, &got) < 0 ||
            got != ids[i] || wv_pg_get_text(r, 0, 1, &name) < 0 || !wv_str_eq_cstr(name, want))
            rc = -EPROTO;
    }
    wv_pg_batch_free(b);
    if (rc < 0) {
        if (w->failed++ < 3)
            fprintf(stderr, "# batch failed: %d %s\n", rc, wv_errmsg());
        return false;
    }
    w->done += FIBERS - 1; /* the caller counts one */
    return true;
}

static int worker_fn(void *arg)
{
    worker *w = arg;
    wv_deadline_set(w->end_at + INT64_C(10000000000)); /* never hang the bench */
    while (wv_now() < w->end_at) {
        if (strcmp(mode, "batch") == 0 ? one_batch(w) : one_query(w))
            w->done++;
        else if (wv_check() < 0)
            break;
    }
    return 0;
}

static int run_shard(void *arg)
{
    (void)arg;
    bool pool = strcmp(mode, "select_pool") == 0;
    bool one = strcmp(mode, "select_1conn") == 0 || strcmp(mode, "batch") == 0;
    int fibers = one ? 1 : FIBERS;
    wv_pg_conn *conn = NULL;
    wv_pg_pool *p = NULL;
    int rc;
    if (pool) {
        rc = wv_pg_pool_new(url, &(wv_pg_pool_opts){.max_size = POOL}, &p);
        /* open the connections before the clock starts */
        wv_pg_conn *warm[POOL];
        for (int i = 0; rc == 0 && i < POOL; i++)
            rc = wv_pg_pool_acquire(p, &warm[i]);
        for (int i = 0; rc == 0 && i < POOL; i++)
            wv_pg_pool_release(p, warm[i]);
    } else {
        rc = wv_pg_connect(url, &(wv_pg_opts){.no_pipeline = strcmp(mode, "unpipelined") == 0},
                           &conn);
    }
    if (rc < 0) {
        fprintf(stderr, "# connect: %s\n", wv_errmsg());
        wv_pg_pool_free(p);
        return rc;
    }
    worker *w = calloc((size_t)fibers, sizeof *w);
    wv_group *g = wv_group_new();
    /* the clock starts once this shard is connected */
    int64_t start_at = wv_now(), end_at = start_at + (int64_t)(seconds * 1e9);
    for (int i = 0; i < fibers; i++) {
        w[i] = (worker){.end_at = end_at,
                        .conn = conn,
                        .pool = p,
                        .seed = 0x9e3779b97f4a7c15ull ^ ((uint64_t)(wv_shard_id() + 1) << 32) ^
                                (uint64_t)(i + 1)};
        wv_group_spawn(g, worker_fn, &w[i], NULL);
    }
    rc = wv_group_join(g);
    wv_group_free(g);
    double elapsed = (double)(wv_now() - start_at) / 1e9;
    long long shard_done = 0;
    for (int i = 0; i < fibers; i++)
        shard_done += w[i].done;
    double rate = atomic_load(&rate_total);
    while (!atomic_compare_exchange_weak(&rate_total, &rate, rate + (double)shard_done / elapsed)) {
    }
    for (int i = 0; i < fibers; i++) {
        atomic_fetch_add(&done_total, w[i].done);
        atomic_fetch_add(&failed_total, w[i].failed);
    }
    if (conn) {
        wv_pg_conn_stats st;
        wv_pg_conn_stats_get(conn, &st);
        atomic_fetch_add(&batches_total, (long long)st.batches);
        atomic_fetch_add(&statements_total, (long long)st.statements);
    }
    free(w);
    wv_pg_close(conn);
    wv_pg_pool_free(p);
    return rc;
}

static int setup(void)
{
    wv_pg_conn *c;
    int rc = wv_pg_connect(url, NULL, &c);
    if (rc < 0) {
        fprintf(stderr, "# connect %s: %s\n", url, wv_errmsg());
        return rc;
    }
    rc = wv_pg_exec(c, "CREATE TABLE IF NOT EXISTS bench_users (id int PRIMARY KEY, name text "
                       "NOT NULL)");
    if (rc >= 0)
        rc = wv_pg_exec(c,
                        "INSERT INTO bench_users SELECT g, 'user ' || g FROM generate_series(1, "
                        "$1::int) g ON CONFLICT (id) DO NOTHING",
                        WV_PG_INT(ROWS));
    if (rc >= 0)
        rc = wv_pg_exec(c, "ANALYZE bench_users");
    if (rc < 0)
        fprintf(stderr, "# setup: %s\n", wv_errmsg());
    wv_pg_close(c);
    return rc < 0 ? rc : 0;
}

static int bench_main(void *arg)
{
    (void)arg;
    int rc = setup();
    if (rc < 0)
        return rc;
    int64_t t0 = wv_now();
    rc = wv_shard_each(run_shard, NULL);
    double elapsed = (double)(wv_now() - t0) / 1e9;
    long long done = atomic_load(&done_total), failed = atomic_load(&failed_total);
    printf("# mode=%s shards=%d seconds=%.2f queries=%lld failed=%lld\n", mode, wv_shard_count(),
           elapsed, done, failed);
    long long b = atomic_load(&batches_total), s = atomic_load(&statements_total);
    if (b > 0)
        printf("# round trips=%lld statements=%lld (%.1f statements per round trip)\n", b, s,
               (double)s / (double)b);
    printf("value=%.0f\n", atomic_load(&rate_total));
    return rc < 0 || failed > 0 ? 1 : 0;
}

/* ------------------------------------------------ libpq_pipeline (no weave) */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_libpq(void)
{
    const char *sql = "SELECT id, name FROM bench_users WHERE id = $1";
    PGconn *pg = PQconnectdb(url);
    if (PQstatus(pg) != CONNECTION_OK) {
        fprintf(stderr, "# connect: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return 1;
    }
    PGresult *res = PQprepare(pg, "sel", sql, 1, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "# prepare: %s", PQerrorMessage(pg));
        PQclear(res);
        PQfinish(pg);
        return 1;
    }
    PQclear(res);
    if (PQenterPipelineMode(pg) != 1) {
        fprintf(stderr, "# pipeline mode: %s", PQerrorMessage(pg));
        PQfinish(pg);
        return 1;
    }
    int fd = PQsocket(pg), on = 1, off = 0;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    long long done = 0, failed = 0, trips = 0;
    double t0 = mono_s(), until = t0 + seconds;
    while (mono_s() < until && failed == 0) {
        int64_t ids[FIBERS];
        setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof on);
        for (int i = 0; i < FIBERS; i++) {
            char v[24];
            ids[i] = (int64_t)(next_rand(&seed) % ROWS) + 1;
            snprintf(v, sizeof v, "%lld", (long long)ids[i]);
            const char *vals[1] = {v};
            if (!PQsendQueryPrepared(pg, "sel", 1, vals, NULL, NULL, 0) || !PQpipelineSync(pg)) {
                fprintf(stderr, "# send: %s", PQerrorMessage(pg));
                failed++;
                break;
            }
        }
        setsockopt(fd, IPPROTO_TCP, TCP_CORK, &off, sizeof off);
        if (failed || PQflush(pg) != 0)
            break;
        trips++;
        for (int i = 0; i < FIBERS; i++) {
            char want[32];
            snprintf(want, sizeof want, "user %lld", (long long)ids[i]);
            res = PQgetResult(pg);
            bool ok = PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1 &&
                      atoll(PQgetvalue(res, 0, 0)) == ids[i] &&
                      strcmp(PQgetvalue(res, 0, 1), want) == 0;
            PQclear(res);
            res = PQgetResult(pg); /* NULL: the end of this statement's results */
            PQclear(res);
            res = PQgetResult(pg); /* its Sync */
            ok = ok && PQresultStatus(res) == PGRES_PIPELINE_SYNC;
            PQclear(res);
            if (ok)
                done++;
            else if (failed++ < 3)
                fprintf(stderr, "# wrong result for id %lld: %s", (long long)ids[i],
                        PQerrorMessage(pg));
        }
    }
    double took = mono_s() - t0;
    PQfinish(pg);
    printf("# mode=libpq_pipeline seconds=%.2f queries=%lld failed=%lld\n", took, done, failed);
    printf("# round trips=%lld statements=%lld (%.1f statements per round trip)\n", trips, done,
           trips ? (double)done / (double)trips : 0);
    printf("value=%.0f\n", (double)done / took);
    return failed > 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr,
                "usage: %s URL select_1conn|select_pool|pipelined|unpipelined|batch|libpq_pipeline "
                "SECONDS\n",
                argv[0]);
        return 2;
    }
    url = argv[1];
    mode = argv[2];
    seconds = atof(argv[3]);
    if (strcmp(mode, "select_1conn") && strcmp(mode, "select_pool") && strcmp(mode, "pipelined") &&
        strcmp(mode, "unpipelined") && strcmp(mode, "batch") && strcmp(mode, "libpq_pipeline")) {
        fprintf(stderr, "bench_pg: unknown mode %s\n", mode);
        return 2;
    }
    if (seconds <= 0) {
        fprintf(stderr, "bench_pg: SECONDS must be > 0\n");
        return 2;
    }
    if (strcmp(mode, "libpq_pipeline") == 0)
        return run_libpq();
    const char *sh = getenv("WEAVE_SHARDS");
    wv_main_opts opts = {.shards = sh && atoi(sh) > 0 ? atoi(sh) : 1};
    int rc = wv_main(&opts, bench_main, NULL);
    return rc == 0 ? 0 : 1;
}
