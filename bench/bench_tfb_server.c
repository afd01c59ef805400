/*
 * The weave side of the db.tfb_* figures (bench/run_db.sh): TechEmpower's
 * database tests on weave's HTTP server and PostgreSQL client.
 *
 *   /db                  one random World row: {"id": n, "randomNumber": n}
 *   /queries?queries=N   N random rows (1..500; a bad or missing N is 1): N
 *                        statements, each its own wv_pg_query from its own
 *                        fiber (a group: N - 1 children and the request's
 *                        fiber), all on the request's connection, so they
 *                        are auto-pipelined with one Sync per statement,
 *                        each its own implicit transaction (TechEmpower's
 *                        rule; never one batch with one Sync)
 *   /fortunes            every Fortune plus one added at request time, sorted
 *                        by message, as an escaped HTML table
 *
 * Each shard keeps TFB_CONNS connections (default 2) that its requests share
 * in turn: statements on each are auto-pipelined (include/weave/pg.h), and
 * several connections let several server processes work at once.
 * DATABASE_URL (required), PORT (default 8080) and WEAVE_SHARDS set where
 * and how wide it runs. The tables are bench/db/setup.sql's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/http.h>
#include <weave/pg.h>

enum { MAX_QUERIES = 500, MAX_FORTUNES = 64, WORLD_ROWS = 10000, MAX_CONNS = 16 };

static const char *url;
static int nconns = 2;
static wv_pg_conn *conns[1024][MAX_CONNS]; /* per shard */
static _Thread_local unsigned next_conn;

static const char WORLD_SQL[] = "SELECT id, randomnumber FROM world WHERE id = $1";

/* xorshift per shard */
static _Thread_local uint64_t rng = 0x9E3779B97F4A7C15u;

static int64_t random_id(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (int64_t)(rng % WORLD_ROWS) + 1;
}

static wv_pg_conn *conn(void)
{
    return conns[wv_shard_id()][next_conn++ % (unsigned)nconns];
}

static int world_row(wv_pg_result *r, wv_json *j)
{
    int64_t id, n;
    if (wv_pg_get_int(r, 0, 0, &id) < 0 || wv_pg_get_int(r, 0, 1, &n) < 0)
        return -EPROTO;
    wv_json_object_begin(j);
    wv_json_key(j, "id");
    wv_json_int(j, id);
    wv_json_key(j, "randomNumber");
    wv_json_int(j, n);
    wv_json_object_end(j);
    return 0;
}

static int db(wv_req *req, wv_res *res)
{
    wv_pg_result *r;
    int rc = wv_pg_query(conn(), &r, WORLD_SQL, WV_PG_INT(random_id()));
    if (rc != 1) {
        wv_pg_result_free(r);
        return rc < 0 ? rc : -EPROTO;
    }
    wv_json *j = wv_res_json_writer(res);
    rc = world_row(r, j);
    wv_pg_result_free(r);
    return rc < 0 ? rc : wv_res_json_send(res, 200);
}

static int queries_param(wv_req *req)
{
    wv_str q = wv_req_query(req);
    for (size_t i = 0; i + 8 <= q.n; i++) {
        if ((i == 0 || q.p[i - 1] == '&') && memcmp(q.p + i, "queries=", 8) == 0) {
            long n = 0;
            size_t k = i + 8;
            bool digits = false;
            while (k < q.n && q.p[k] >= '0' && q.p[k] <= '9' && n <= MAX_QUERIES) {
                n = n * 10 + (q.p[k++] - '0');
                digits = true;
            }
            if (!digits || (k < q.n && q.p[k] != '&' && n <= MAX_QUERIES))
                return 1;
            return n < 1 ? 1 : n > MAX_QUERIES ? MAX_QUERIES : (int)n;
        }
    }
    return 1;
}

/* One statement of /queries, run by its own fiber. */
typedef struct world_query {
    wv_pg_conn *c;
    int64_t id, number;
} world_query;

static int world_query_run(void *arg)
{
    world_query *q = arg;
    wv_pg_result *r;
    int rc = wv_pg_query(q->c, &r, WORLD_SQL, WV_PG_INT(q->id));
    if (rc == 1) {
        int64_t id;
        bool ok = wv_pg_get_int(r, 0, 0, &id) == 0 && id == q->id &&
                  wv_pg_get_int(r, 0, 1, &q->number) == 0;
        rc = ok ? 0 : -EPROTO;
    } else if (rc >= 0) {
        rc = -EPROTO;
    }
    wv_pg_result_free(r);
    return rc;
}

static int queries(wv_req *req, wv_res *res)
{
    int n = queries_param(req);
    world_query one, *q = n == 1 ? &one : malloc((size_t)n * sizeof *q);
    if (!q)
        return -ENOMEM;
    wv_pg_conn *c = conn();
    for (int i = 0; i < n; i++)
        q[i] = (world_query){.c = c, .id = random_id()};
    /* N - 1 children queue their statements as they start; this fiber runs
     * the last one itself, then waits for the others */
    wv_group *g = n > 1 ? wv_group_new() : NULL;
    int rc = n > 1 && !g ? -ENOMEM : 0;
    for (int i = 1; i < n && rc == 0; i++)
        rc = wv_group_spawn(g, world_query_run, &q[i], NULL);
    int mine = rc == 0 ? world_query_run(&q[0]) : rc;
    if (g) {
        int joined = wv_group_join(g);
        rc = rc < 0 ? rc : joined;
        wv_group_free(g);
    }
    rc = rc < 0 ? rc : mine;
    if (rc == 0) {
        wv_json *j = wv_res_json_writer(res);
        wv_json_array_begin(j);
        for (int i = 0; i < n; i++) {
            wv_json_object_begin(j);
            wv_json_key(j, "id");
            wv_json_int(j, q[i].id);
            wv_json_key(j, "randomNumber");
            wv_json_int(j, q[i].number);
            wv_json_object_end(j);
        }
        wv_json_array_end(j);
        rc = wv_res_json_send(res, 200);
    }
    if (q != &one)
        free(q);
    return rc;
}

typedef struct fortune {
    int64_t id;
    wv_str message;
} fortune;

static int by_message(const void *a, const void *b)
{
    const wv_str *x = &((const fortune *)a)->message, *y = &((const fortune *)b)->message;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->p, y->p, n);
    return c ? c : (x->n > y->n) - (x->n < y->n);
}

static int fortunes(wv_req *req, wv_res *res)
{
    wv_pg_result *r;
    int n = wv_pg_query(conn(), &r, "SELECT id, message FROM fortune");
    if (n < 0)
        return n;
    fortune f[MAX_FORTUNES + 1];
    int k = 0;
    for (int i = 0; i < n && k < MAX_FORTUNES; i++, k++) {
        if (wv_pg_get_int(r, i, 0, &f[k].id) < 0 || wv_pg_get_text(r, i, 1, &f[k].message) < 0) {
            wv_pg_result_free(r);
            return -EPROTO;
        }
    }
    static const char extra[] = "Additional fortune added at request time.";
    f[k++] = (fortune){0, {extra, sizeof extra - 1}};
    qsort(f, (size_t)k, sizeof *f, by_message);
    wv_buf out = {0};
    wv_buf_reserve(&out, 2048);
    wv_buf_puts(&out, "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
                      "<tr><th>id</th><th>message</th></tr>");
    for (int i = 0; i < k; i++) {
        wv_buf_puts(&out, "<tr><td>");
        wv_buf_i64(&out, f[i].id);
        wv_buf_puts(&out, "</td><td>");
        wv_buf_html(&out, f[i].message.p, f[i].message.n);
        wv_buf_puts(&out, "</td></tr>");
    }
    wv_buf_puts(&out, "</table></body></html>");
    wv_pg_result_free(r);
    int rc = wv_res_send(res, 200, "text/html; charset=utf-8", out.p, out.n);
    wv_buf_free(&out);
    return rc;
}

static int connect_shard(void *arg)
{
    rng ^= (uint64_t)(wv_shard_id() + 1) * 0x2545F4914F6CDD1Du;
    for (int i = 0; i < nconns; i++) {
        int rc = wv_pg_connect(url, NULL, &conns[wv_shard_id()][i]);
        if (rc < 0) {
            fprintf(stderr, "bench_tfb_server: %s: %s\n", url, wv_errmsg());
            return rc;
        }
    }
    return 0;
}

static int close_shard(void *arg)
{
    for (int i = 0; i < nconns; i++)
        wv_pg_close(conns[wv_shard_id()][i]);
    return 0;
}

static int serve(void *arg)
{
    const char *p = getenv("PORT");
    if (wv_shard_count() > 1024 || wv_shard_each(connect_shard, NULL) < 0)
        return 1;
    wv_router *r = wv_router_new();
    wv_get(r, "/db", db);
    wv_get(r, "/queries", queries);
    wv_get(r, "/fortunes", fortunes);
    int rc =
        wv_http_serve(r, &(wv_http_opts){.port = p ? atoi(p) : 8080, .max_connections = 20000});
    if (rc < 0)
        fprintf(stderr, "bench_tfb_server: %s\n", wv_errmsg());
    wv_shard_each(close_shard, NULL);
    wv_router_free(r);
    return rc < 0 ? 1 : 0;
}

int main(void)
{
    url = getenv("DATABASE_URL");
    const char *n = getenv("TFB_CONNS");
    if (n)
        nconns = atoi(n) < 1 ? 1 : atoi(n) > MAX_CONNS ? MAX_CONNS : atoi(n);
    if (!url) {
        fprintf(stderr, "bench_tfb_server: set DATABASE_URL\n");
        return 2;
    }
    return wv_main(NULL, serve, NULL);
}
