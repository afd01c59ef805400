/*
 * A wv_app for tests/integration/test_app.py: a readiness check that passes
 * while the file named by --ready-file exists, a declared backend for the
 * banner, an on-start hook that fails when --fail-start is given, and two
 * on-stop hooks that print "stop hook N ran" (the newest first).
 */
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include <weave/app.h>

static const char *ready_file;

static int dependency_ready(void *arg)
{
    (void)arg;
    if (access(ready_file, F_OK) == 0)
        return 0;
    return wv_fail(-ECONNREFUSED, "%s is missing", ready_file);
}

static int on_start(void *arg)
{
    wv_app *app = arg;
    if (wv_app_bool(app, "fail-start"))
        return wv_fail(-ECONNREFUSED, "the dependency refused the connection at start");
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

int main(int argc, char **argv)
{
    wv_app *app = wv_app_new(argc, argv);
    wv_app_option(app, "ready-file", "READY_FILE", WV_OPT_STRING, "/nonexistent",
                  "readiness passes while this file exists");
    wv_app_option(app, "fail-start", "FAIL_START", WV_OPT_BOOL, "false",
                  "make the start hook fail");
    ready_file = wv_app_str(app, "ready-file");
    wv_app_ready_check(app, "dependency", dependency_ready, NULL);
    wv_app_backend(app, "dependency", "a file (test)");
    wv_app_on_start(app, on_start, app);
    wv_app_on_stop(app, on_stop, (void *)(intptr_t)1);
    wv_app_on_stop(app, on_stop, (void *)(intptr_t)2);
    wv_get(app, "/hello", hello);
    return wv_app_run(app);
}
