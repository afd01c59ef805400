/*
 * One link of a chain of weave services, for
 * tests/integration/test_deadline_chain.py: A -> B -> C, each this program.
 *
 *   GET /hop?sleep_ms=N   notes the X-Request-Timeout-Ms it was sent (the
 *                         budget its caller gave it), then: with
 *                         --downstream-url, calls that URL's /hop with the
 *                         same query under this request's deadline (what
 *                         is left is passed on) and answers with what came
 *                         back, or 504 / 502 naming the downstream when the
 *                         call itself failed; without, it is the end of the
 *                         chain and runs SELECT pg_sleep(N / 1000) on
 *                         --database-url (or sleeps N ms when there is no
 *                         database). N defaults to 5000.
 *   GET /seen             the budgets /hop was sent, oldest first, as a
 *                         JSON array of integers (-1: no header).
 *   GET /slow?ms=N        sleeps N ms (default 1000) and answers 200: what
 *                         the load-shedding flood sends.
 *
 * Every route honours X-Request-Timeout-Ms (wv_deadline_header), and the
 * wv_app options apply (--max-in-flight, --max-loop-lag-ms, metrics).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/app.h>
#include <weave/httpc.h>

enum { MAX_SEEN = 1024 };

static struct {
    pthread_mutex_t lock; /* shards share the list */
    int64_t budgets[MAX_SEEN];
    int n;
} seen = {.lock = PTHREAD_MUTEX_INITIALIZER};

static const char *downstream;

static void note_budget(wv_req *req)
{
    wv_str v = wv_req_header(req, WV_DEADLINE_HEADER);
    int64_t ms = -1;
    if (v.p) {
        char buf[24];
        snprintf(buf, sizeof buf, "%.*s", (int)(v.n < 23 ? v.n : 23), v.p);
        ms = strtoll(buf, NULL, 10);
    }
    pthread_mutex_lock(&seen.lock);
    if (seen.n < MAX_SEEN)
        seen.budgets[seen.n++] = ms;
    pthread_mutex_unlock(&seen.lock);
}

static int call_downstream(wv_req *req, wv_res *res)
{
    wv_str q = wv_req_query(req);
    char url[1024];
    snprintf(url, sizeof url, "%s%s%.*s", downstream, q.n ? "?" : "", (int)q.n, q.p);
    wv_httpc_response up;
    int rc = wv_httpc_request(&(wv_httpc_req){.url = url, .from = req}, &up);
    if (rc == -ETIMEDOUT || rc == -ECANCELED)
        return rc; /* 504 / 503, wv_errmsg naming the call */
    if (rc < 0) {
        char why[512];
        snprintf(why, sizeof why, "%s", wv_errmsg());
        return wv_fail(-ECONNREFUSED, "%s", why); /* 502 */
    }
    const char *type = wv_httpc_header_get(&up, "Content-Type");
    rc = wv_res_send(res, up.status, type ? type : "application/json", up.body.p, up.body.n);
    wv_httpc_response_free(&up);
    return rc;
}

static int hop(wv_req *req, wv_res *res)
{
    note_budget(req);
    if (downstream)
        return call_downstream(req, res);
    int64_t ms;
    int rc = wv_req_query_i64(req, "sleep_ms", 5000, &ms);
    if (rc < 0)
        return rc;
    if (ms < 0 || ms > 600000)
        return wv_fail(-EINVAL, "sleep_ms must be 0 to 600000");
    wv_db *db = wv_req_db(req);
    if (db) {
        char sql[64];
        snprintf(sql, sizeof sql, "SELECT 1 FROM pg_sleep(%lld.%03lld)", (long long)(ms / 1000),
                 (long long)(ms % 1000));
        int64_t one;
        rc = wv_db_query_int(db, &one, sql);
    } else {
        rc = wv_sleep_ms(ms);
    }
    if (rc < 0)
        return rc;
    return wv_res_json(res, 200, "{\"hop\":\"end\"}");
}

static int seen_list(wv_req *req, wv_res *res)
{
    (void)req;
    wv_json *j = wv_res_json_writer(res);
    wv_json_array_begin(j);
    pthread_mutex_lock(&seen.lock);
    for (int i = 0; i < seen.n; i++)
        wv_json_int(j, seen.budgets[i]);
    pthread_mutex_unlock(&seen.lock);
    wv_json_array_end(j);
    return wv_res_json_send(res, 200);
}

static int slow(wv_req *req, wv_res *res)
{
    int64_t ms;
    int rc = wv_req_query_i64(req, "ms", 1000, &ms);
    if (rc == 0 && (ms < 0 || ms > 600000))
        rc = wv_fail(-EINVAL, "ms must be 0 to 600000");
    if (rc == 0)
        rc = wv_sleep_ms(ms);
    return rc < 0 ? rc : wv_res_json(res, 200, "{\"slept\":true}");
}

int main(int argc, char **argv)
{
    wv_app *app = wv_app_new(argc, argv);
    wv_app_option(app, "downstream-url", "DOWNSTREAM_URL", WV_OPT_STRING, NULL,
                  "the next service's /hop; unset: this is the end of the chain");
    wv_app_option(app, "database-url", "DATABASE_URL", WV_OPT_STRING, NULL,
                  "postgres://... the end of the chain sleeps on; unset: it sleeps itself");
    downstream = wv_app_str(app, "downstream-url");
    if (downstream && !*downstream)
        downstream = NULL;
    const char *db = wv_app_str(app, "database-url");
    if (db && *db && wv_app_database(app, db) < 0) {
        fprintf(stderr, "%s\n", wv_errmsg());
        return 2;
    }
    wv_get(app, "/hop", hop);
    wv_get(app, "/seen", seen_list);
    wv_get(app, "/slow", slow);
    wv_deadline_header(wv_app_router(app), &(wv_deadline_opts){.max_ms = 60000});
    return wv_app_run(app);
}
