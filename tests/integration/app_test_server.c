/*
 * A wv_app for tests/integration/test_app.py and test_https.py: a readiness
 * check that passes while the file named by --ready-file exists, a declared
 * backend for the banner, an on-start hook that fails when --fail-start is
 * given, two on-stop hooks that print "stop hook N ran" (the newest first),
 * and a client the app owns (COUNTER_URL): opened on every shard, its
 * handle answered by GET /client, "counter closed on shard N" printed when
 * it closes; a URL starting "refuse:" makes its open fail. Options are read
 * only once the app runs, so a bad value is wv_app_run's to report; main
 * prints what it returned ("wv_app_run returned N").
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <weave/app.h>

static int dependency_ready(void *arg)
{
    const char *ready_file = wv_app_str(arg, "ready-file");
    if (access(ready_file, F_OK) == 0)
        return 0;
    return wv_fail(-ECONNREFUSED, "%s is missing", ready_file);
}

static int on_start(void *arg)
{
    wv_app *app = arg;
    if (wv_app_bool(app, "fail-start"))
        return wv_fail(-ECONNREFUSED, "the dependency refused the connection at start");
    if (!wv_app_client_get(app, "counter"))
        return wv_fail(-EFAULT, "the counter is not open when the start hooks run");
    return 0;
}

static int on_stop(void *arg)
{
    printf("stop hook %d ran\n", (int)(intptr_t)arg);
    fflush(stdout);
    return 0;
}

static int hello(wv_req *req, wv_res *res)
{
    (void)req;
    return wv_res_text(res, 200, "hello");
}

/* ------------------------------------------------- the client the app owns */

typedef struct counter {
    int shard;
    int64_t calls;
} counter;

static int counter_open(const char *url, void **handle)
{
    if (strncmp(url, "refuse:", 7) == 0)
        return wv_fail(-ECONNREFUSED, "the counter refused");
    counter *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    c->shard = wv_shard_id();
    *handle = c;
    return 0;
}

static void counter_close(void *handle)
{
    counter *c = handle;
    printf("counter closed on shard %d\n", c->shard);
    fflush(stdout);
    free(c);
}

static int counter_ping(void *handle)
{
    return handle ? 0 : -ENOTCONN;
}

static const wv_client_type counter_type = {
    .kind = "counter", .open = counter_open, .close = counter_close, .ping = counter_ping};

/* GET /client: this shard's counter, reached from the request */
static int client(wv_req *req, wv_res *res)
{
    counter *c = wv_req_client(req, "counter");
    if (!c)
        return wv_fail(-ENOENT, "no counter");
    char body[64];
    snprintf(body, sizeof body, "counter of shard %d on shard %d, call %lld", c->shard,
             wv_shard_id(), (long long)++c->calls);
    return wv_res_text(res, 200, body);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    wv_app *app = wv_app_new(argc, argv);
    wv_app_option(app, "ready-file", "READY_FILE", WV_OPT_STRING, "/nonexistent",
                  "readiness passes while this file exists");
    wv_app_option(app, "fail-start", "FAIL_START", WV_OPT_BOOL, "false",
                  "make the start hook fail");
    const char *url = getenv("COUNTER_URL");
    wv_app_client(app, "counter", url ? url : "counter://user:hunter2@example/1", &counter_type);
    wv_app_ready_check(app, "dependency", dependency_ready, app);
    wv_app_backend(app, "dependency", "a file (test)");
    wv_app_on_start(app, on_start, app);
    wv_app_on_stop(app, on_stop, (void *)(intptr_t)1);
    wv_app_on_stop(app, on_stop, (void *)(intptr_t)2);
    wv_get(app, "/hello", hello);
    wv_get(app, "/client", client);
    int rc = wv_app_run(app);
    printf("wv_app_run returned %d\n", rc);
    return rc;
}
