/*
 * For the tests that drive a real server their script starts on loopback
 * (s3rver for test_s3.c, kinesis-local for test_kinesis.c), with a fault
 * proxy of weave's own HTTP server in front of it. Header-only, after
 * harness.h:
 *
 *  - peer_server_start / _stop / _pid / _kill (on harness.h's
 *    loopback_free_port ports) around
 *    scripts/<name>_test_server.sh (start DIR PORT ...; it prints the
 *    endpoint);
 *  - the proxy's skeleton: peer_proxy_start serves a handler on a free
 *    port of 127.0.0.1 in the running runtime, peer_proxy_stop ends it
 *    (and the runtime's serving: it calls wv_stop); peer_forward_headers
 *    copies a request's headers for the upstream call;
 *  - peer_run: a test body as the main fiber of a one-shard runtime, with
 *    set-up and tear-down fibers around it (the proxy's);
 *  - CHECK_MSG_HAS, and peer_need_node for main().
 */
#ifndef WEAVE_TESTS_UNIT_PEER_SERVER_H
#define WEAVE_TESTS_UNIT_PEER_SERVER_H

#include "harness.h"

#include <weave/http.h>
#include <weave/httpc.h>

#define CHECK_MSG_HAS(needle)                                                                      \
    do {                                                                                           \
        if (!CHECK(strstr(wv_errmsg(), (needle)) != NULL))                                         \
            fprintf(stderr, "  wv_errmsg: %s\n  wanted: %s\n", wv_errmsg(), (needle));             \
    } while (0)

/*
 * `bash SRC/scripts/SCRIPT start DIR PORT [PORT2] EXTRA` on free ports
 * (PORT2 too when port2 is not NULL: it gets it), tried five times with
 * new ports (another process may take a free port first); the endpoint
 * the script prints into out. 0 or -1.
 */
static inline int peer_server_start(const char *src, const char *script, const char *sdir,
                                    const char *extra, int *port2, char *out, size_t cap)
{
    for (int attempt = 0; attempt < 5; attempt++) {
        int port = loopback_free_port(), second = port2 ? loopback_free_port() : 0;
        if (port < 0 || second < 0 || port == second)
            continue;
        char cmd[1024], ports[32];
        snprintf(ports, sizeof ports, port2 ? "%d %d" : "%d", port, second);
        snprintf(cmd, sizeof cmd, "bash %s/scripts/%s start %s %s %s", src, script, sdir, ports,
                 extra ? extra : "");
        FILE *p = popen(cmd, "r");
        if (!p)
            return -1;
        char line[256] = "";
        bool got = fgets(line, sizeof line, p) != NULL;
        int st = pclose(p);
        if (got && st == 0) {
            line[strcspn(line, "\n")] = '\0';
            snprintf(out, cap, "%s", line);
            if (port2)
                *port2 = second;
            return 0;
        }
    }
    return -1;
}

static inline void peer_server_stop(const char *src, const char *script, const char *sdir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "bash %s/scripts/%s stop %s", src, script, sdir);
    if (system(cmd) != 0)
        fprintf(stderr, "stopping the server in %s failed\n", sdir);
}

/* The server's pid (DIR/pid), or 0. */
static inline pid_t peer_server_pid(const char *sdir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/pid", sdir);
    FILE *f = fopen(path, "r");
    int pid = 0;
    if (f) {
        if (fscanf(f, "%d", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return (pid_t)pid;
}

/* Stop a server that a test froze (SIGSTOP) or killed: woken, killed,
 * and its script's stop run for what is left. */
static inline void peer_server_kill(const char *src, const char *script, const char *sdir)
{
    pid_t pid = peer_server_pid(sdir);
    if (pid > 0) {
        kill(pid, SIGCONT);
        kill(pid, SIGKILL);
    }
    peer_server_stop(src, script, sdir);
}

/* ------------------------------------------------------------ the proxy */

/* s as a C string in the request's memory. */
static inline char *peer_cstr(wv_req *req, wv_str s)
{
    char *p = wv_req_alloc(req, s.n + 1);
    if (p) {
        memcpy(p, s.p, s.n);
        p[s.n] = '\0';
    }
    return p;
}

/* req's headers into h (at most cap) for the call upstream, without
 * those the HTTP client sets itself; the count. */
static inline size_t peer_forward_headers(wv_req *req, wv_httpc_header *h, size_t cap)
{
    size_t nh = 0;
    for (int i = 0; i < wv_req_header_count(req) && nh < cap; i++) {
        wv_str name, value;
        wv_req_header_at(req, i, &name, &value);
        if (wv_str_ieq(name, WV_STR("Host")) || wv_str_ieq(name, WV_STR("Content-Length")) ||
            wv_str_ieq(name, WV_STR("Connection")) || wv_str_ieq(name, WV_STR("Expect")) ||
            wv_str_ieq(name, WV_STR("User-Agent")) || wv_str_ieq(name, WV_STR("Accept-Encoding")))
            continue;
        h[nh++] = (wv_httpc_header){peer_cstr(req, name), peer_cstr(req, value)};
    }
    return nh;
}

typedef struct peer_proxy {
    wv_handler *handler; /* every method, every path */
    int port;            /* once started */
    wv_event ready;
    wv_group *g;
    int rc;
} peer_proxy;

static inline int peer_proxy_serve(void *arg)
{
    peer_proxy *p = arg;
    wv_router *r = wv_router_new();
    if (!r)
        return p->rc = -ENOMEM;
    wv_route(r, "*", "/{path...}", p->handler);
    p->rc = wv_http_serve(r, &(wv_http_opts){.host = "127.0.0.1",
                                             .max_body = 64 << 20,
                                             .no_compression = true,
                                             .drain_timeout_ms = 500,
                                             .bound_port = &p->port,
                                             .ready = &p->ready});
    wv_router_free(r);
    return p->rc;
}

/* Serve p->handler until peer_proxy_stop; p's other fields are zeroed
 * first. 0 or -1 (a CHECK failed). */
static inline int peer_proxy_start(peer_proxy *p, wv_handler *handler)
{
    memset(p, 0, sizeof *p);
    p->handler = handler;
    p->g = wv_group_new();
    REQUIRE(p->g != NULL);
    REQUIRE_EQ(wv_group_spawn(p->g, peer_proxy_serve, p, NULL), 0);
    REQUIRE_EQ(wv_event_wait(&p->ready), 0);
    REQUIRE(p->port > 0);
    return 0;
}

static inline void peer_proxy_stop(peer_proxy *p)
{
    wv_stop();
    CHECK_EQ(wv_group_join(p->g), 0);
    wv_group_free(p->g);
    CHECK_EQ(p->rc, 0);
}

/* ------------------------------------------------------------ running */

typedef struct peer_scenario {
    int (*body)(void);
    int (*before)(void); /* NULL: none; < 0 skips the body */
    void (*after)(void);
} peer_scenario;

static inline int peer_scenario_main(void *arg)
{
    peer_scenario *sc = arg;
    if (sc->before && sc->before() < 0)
        return -1;
    int rc = sc->body();
    if (sc->after)
        sc->after();
    return rc;
}

/* body in a one-shard runtime, before and after around it (either may be
 * NULL); the test fails if it returns non-zero or a CHECK failed. */
static inline void peer_run(int (*body)(void), int (*before)(void), void (*after)(void))
{
    peer_scenario sc = {body, before, after};
    assert_int_equal(run_in_rt(1, peer_scenario_main, &sc), 0);
    assert_checks_passed();
}

/* For main(): the proxy variables of the environment cleared (the tests'
 * requests go to loopback), and node looked for. -1: go on; else main's
 * exit code (0 when skip_var is "1", printed as skipped; 1 without node). */
static inline int peer_need_node(const char *test, const char *skip_var)
{
    static const char *const proxy_vars[] = {"http_proxy", "https_proxy", "all_proxy",
                                             "no_proxy",   "HTTPS_PROXY", "ALL_PROXY",
                                             "NO_PROXY",   "HTTP_PROXY"};
    for (size_t i = 0; i < ARRAY_LEN(proxy_vars); i++)
        unsetenv(proxy_vars[i]);
    if (system("command -v node >/dev/null 2>&1") == 0)
        return -1;
    const char *skip = getenv(skip_var);
    if (skip && strcmp(skip, "1") == 0) {
        printf("%s: skipped (%s=1, no node)\n", test, skip_var);
        return 0;
    }
    fprintf(stderr,
            "%s: node is not installed (scripts/deps.sh installs nodejs and npm); set %s=1 to "
            "skip these tests\n",
            test, skip_var);
    return 1;
}

#endif
