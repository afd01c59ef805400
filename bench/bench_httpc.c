/*
 * bench/bench_httpc.c: weave's HTTP client (include/weave/httpc.h) against a
 * local HTTP server, GETs as fast as the client allows, every response
 * checked. bench/run_httpc.sh runs it against bench_http_server (the
 * server on CPU 0, this program on CPU 1, one shard) beside its anchors.
 *
 *   bench_httpc URL SECONDS [FIBERS] [BODY]
 *
 * FIBERS (64) fibers of one shard, each GETting URL in a loop with
 * wv_httpc_get: they share the shard's client, so there are as many
 * keep-alive connections as requests in flight (curl opens them during
 * the warm-up and reuses them after). A response that is not a 200 with
 * exactly BODY (default "Hello, World!") fails the run (exit status 1).
 * Every fiber runs WARM_MS of warm-up; what completes in the SECONDS after
 * it counts. The last line is value=<responses per second>; before it, on
 * stdout, the server_cpu= and client_cpu= lines of bench_util.h (the
 * server's pid from HTTPC_SERVER_PID) and connections= (the client's).
 *
 *   bench_httpc floor URL SECONDS [TRANSFERS] [BODY]
 *
 * The floor of any client built on libcurl: libcurl alone, no runtime, as
 * fast as it goes. TRANSFERS (64) easy handles, each configured once and
 * added back to one multi handle as soon as its transfer ends, driven by
 * curl_multi_perform and curl_multi_poll; the same checks and counting.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <curl/curl.h>

#include "bench_keyset.h"
#include "bench_util.h"
#include "weave/httpc.h"
#include "weave/rt.h"

enum { FIBERS = 64, WARM_MS = 500, MAX_FIBERS = 10000 };

static const char *url, *body = "Hello, World!";
static double seconds;
static int nfibers = FIBERS;
static pid_t server_pid;

typedef struct worker {
    keyset_fiber k; /* first: keyset_run's timing */
} worker;

static bool one_get(worker *w)
{
    wv_httpc_response resp;
    int rc = wv_httpc_get(url, &resp);
    size_t n = strlen(body);
    bool ok =
        rc == 0 && resp.status == 200 && resp.body.n == n && memcmp(resp.body.p, body, n) == 0;
    if (!ok && w->k.failed++ < 3)
        fprintf(stderr, "# GET %s: %s\n", url,
                rc < 0               ? wv_errmsg()
                : resp.status != 200 ? "not a 200"
                                     : "WRONG BODY");
    wv_httpc_response_free(&resp);
    return ok;
}

static int worker_fn(void *arg)
{
    worker *w = arg;
    wv_deadline_set(w->k.end_at + INT64_C(30000000000)); /* never hang the bench */
    for (;;) {
        bool ok = one_get(w);
        int64_t now = wv_now();
        if (now >= w->k.end_at || w->k.failed)
            break;
        if (now >= w->k.warm_end)
            w->k.done += ok;
    }
    return 0;
}

static int run(void *arg)
{
    (void)arg;
    worker *w = calloc((size_t)nfibers, sizeof *w);
    if (!w)
        return 1;
    keyset_result res = {0};
    int rc = keyset_run(w, nfibers, sizeof *w, worker_fn, WARM_MS, seconds, server_pid, &res);
    free(w);
    if (rc < 0)
        return 1;
    wv_httpc_stats st;
    wv_httpc_stats_get(&st);
    fprintf(stderr, "# fibers=%d seconds=%.2f (after %d ms of warm-up) GETs=%lld failed=%lld\n",
            nfibers, res.window, WARM_MS, res.done, res.failed);
    print_cpu_lines(res.a, res.b, (double)res.done / res.window);
    printf("connections=%llu\n", (unsigned long long)st.connections);
    if (res.failed)
        return 1;
    printf("value=%.0f\n", (double)res.done / res.window);
    return 0;
}

/* ---------------------------------------------- the floor: libcurl alone */

typedef struct floor_xfer {
    CURL *easy;
    wv_buf got;
} floor_xfer;

static size_t floor_write(char *p, size_t size, size_t n, void *arg)
{
    floor_xfer *x = arg;
    return wv_buf_append(&x->got, p, size * n) == 0 ? size * n : 0;
}

static int floor_run(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init();
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)nfibers);
    floor_xfer *x = calloc((size_t)nfibers, sizeof *x);
    if (!multi || !x)
        return 1;
    for (int i = 0; i < nfibers; i++) {
        x[i].easy = curl_easy_init();
        curl_easy_setopt(x[i].easy, CURLOPT_URL, url);
        curl_easy_setopt(x[i].easy, CURLOPT_WRITEFUNCTION, floor_write);
        curl_easy_setopt(x[i].easy, CURLOPT_WRITEDATA, &x[i]);
        curl_easy_setopt(x[i].easy, CURLOPT_PRIVATE, (char *)&x[i]);
        curl_multi_add_handle(multi, x[i].easy);
    }
    int64_t warm_end = now_ns() + (int64_t)WARM_MS * 1000000,
            end_at = warm_end + (int64_t)(seconds * 1e9);
    long long done = 0, failed = 0;
    size_t n = strlen(body);
    cpu_mark a = {0};
    bool marked = false;
    int running = nfibers;
    while (running > 0 && !failed) {
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            floor_xfer *t;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
            long status = 0;
            curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
            bool ok = m->data.result == CURLE_OK && status == 200 && t->got.n == n &&
                      memcmp(t->got.p, body, n) == 0;
            if (!ok && failed++ < 3)
                fprintf(stderr, "# GET %s: %s\n", url,
                        m->data.result ? curl_easy_strerror(m->data.result) : "WRONG ANSWER");
            int64_t now = now_ns();
            if (now >= warm_end && now < end_at)
                done += ok;
            curl_multi_remove_handle(multi, t->easy);
            wv_buf_reset(&t->got);
            if (now < end_at) {
                curl_multi_add_handle(multi, t->easy);
                running++;
            }
        }
        if (!marked && now_ns() >= warm_end) {
            a = cpu_mark_now(server_pid);
            marked = true;
        }
        if (running > 0)
            curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    cpu_mark b = cpu_mark_now(server_pid);
    double window = (double)(end_at - warm_end) / 1e9;
    fprintf(stderr, "# libcurl alone: transfers=%d seconds=%.2f GETs=%lld failed=%lld\n", nfibers,
            window, done, failed);
    if (marked)
        print_cpu_lines(a, b, (double)done / window);
    for (int i = 0; i < nfibers; i++) {
        curl_multi_remove_handle(multi, x[i].easy);
        curl_easy_cleanup(x[i].easy);
        wv_buf_free(&x[i].got);
    }
    free(x);
    curl_multi_cleanup(multi);
    if (failed)
        return 1;
    printf("value=%.0f\n", (double)done / window);
    return 0;
}

int main(int argc, char **argv)
{
    bool floor_mode = argc > 1 && strcmp(argv[1], "floor") == 0;
    if (floor_mode) {
        argv++;
        argc--;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: bench_httpc [floor] URL SECONDS [FIBERS] [BODY]\n");
        return 2;
    }
    url = argv[1];
    seconds = atof(argv[2]);
    if (argc > 3)
        nfibers = atoi(argv[3]);
    if (argc > 4)
        body = argv[4];
    if (seconds <= 0 || nfibers < 1 || nfibers > MAX_FIBERS) {
        fprintf(stderr, "bench_httpc: SECONDS > 0 and FIBERS in 1..%d\n", MAX_FIBERS);
        return 2;
    }
    const char *sp = getenv("HTTPC_SERVER_PID");
    server_pid = sp ? (pid_t)atoi(sp) : -1;
    if (floor_mode)
        return floor_run();
    wv_main_opts opts = {.shards = 1}; /* one client, on one shard */
    return wv_main(&opts, run, NULL) == 0 ? 0 : 1;
}
