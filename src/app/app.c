/*
 * The app layer: options from flags and environment, health endpoints,
 * the startup banner, and the run that ties the runtime and the HTTP
 * server together (include/weave/app.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "weave/app.h"
#include "weave/metrics.h"

typedef struct option {
    char *name, *env, *def, *help;
    wv_opt_type type;
    const char *value;  /* after parsing: from argv, env or def (not owned) */
    const char *source; /* "--flag", "ENV", "default" */
    char *flag_label;   /* owned "--name" when a flag set it */
    int64_t ival;
    struct option *next;
} option;

typedef struct check {
    char *name;
    wv_ready_fn *fn;
    void *arg;
    struct check *next;
} check;

typedef struct hook {
    wv_fn *fn;
    void *arg;
    struct hook *next;
} hook;

typedef struct backend {
    char *what, *which;
    struct backend *next;
} backend;

struct wv_app {
    int argc;
    char **argv;
    const char *prog;
    option *opts, **opts_tail;
    bool parsed;
    wv_router *router;
    check *checks, **checks_tail;
    hook *hooks, **hooks_tail;
    hook *stop_hooks; /* newest first: they run in reverse order */
    backend *backends, **backends_tail;
};

static void *xcalloc(size_t n)
{
    void *p = calloc(1, n);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

static char *xstrdup(const char *s)
{
    if (!s)
        return NULL;
    char *p = strdup(s);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    return p;
}

wv_app *wv_app_new(int argc, char **argv)
{
    wv_app *app = xcalloc(sizeof *app);
    app->argc = argc;
    app->argv = argv;
    const char *slash = argc > 0 ? strrchr(argv[0], '/') : NULL;
    app->prog = argc > 0 ? (slash ? slash + 1 : argv[0]) : "weave";
    app->opts_tail = &app->opts;
    app->checks_tail = &app->checks;
    app->hooks_tail = &app->hooks;
    app->backends_tail = &app->backends;
    app->router = wv_router_new();
    if (!app->router) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    wv_app_option(app, "port", "PORT", WV_OPT_INT, "8000",
                  "TCP port to listen on (0: any free port)");
    wv_app_option(app, "host", "HOST", WV_OPT_STRING, "0.0.0.0", "address to listen on");
    wv_app_option(app, "shards", "SHARDS", WV_OPT_INT, "0",
                  "event loops, one thread each (0: one per CPU)");
    wv_app_option(app, "log-level", "LOG_LEVEL", WV_OPT_STRING, "info",
                  "debug, info, warn, error or off");
    wv_app_option(app, "access-log", "ACCESS_LOG", WV_OPT_STRING, "off",
                  "one line per request: off, common or json");
    wv_app_option(app, "drain-timeout-ms", "DRAIN_TIMEOUT_MS", WV_OPT_INT, "10000",
                  "on SIGTERM, how long requests in flight may finish");
    wv_app_option(app, "max-connections", "MAX_CONNECTIONS", WV_OPT_INT, "10000",
                  "open connections per shard; past it new ones wait in the listen backlog");
    wv_app_option(app, "metrics", "METRICS", WV_OPT_BOOL, "true",
                  "count requests and serve Prometheus metrics at /metrics");
    wv_app_option(app, "metrics-port", "METRICS_PORT", WV_OPT_INT, "0",
                  "serve /metrics on this admin port instead of the main one (0: the main port)");
    return app;
}

static option *find(wv_app *app, const char *name)
{
    for (option *o = app->opts; o; o = o->next)
        if (strcmp(o->name, name) == 0)
            return o;
    return NULL;
}

int wv_app_option(wv_app *app, const char *name, const char *env, wv_opt_type type, const char *def,
                  const char *help)
{
    if (app->parsed)
        return -EBUSY;
    if (!name || find(app, name))
        return -EEXIST;
    option *o = xcalloc(sizeof *o);
    o->name = xstrdup(name);
    o->env = xstrdup(env);
    o->def = xstrdup(def);
    o->help = xstrdup(help ? help : "");
    o->type = type;
    *app->opts_tail = o;
    app->opts_tail = &o->next;
    return 0;
}

static void usage(wv_app *app, FILE *out)
{
    fprintf(out, "usage: %s [options]\n\nOptions (flag, environment variable, default):\n",
            app->prog);
    for (option *o = app->opts; o; o = o->next) {
        char flag[96];
        snprintf(flag, sizeof flag, "--%s%s", o->name,
                 o->type == WV_OPT_INT    ? " N"
                 : o->type == WV_OPT_BOOL ? ""
                                          : " TEXT");
        fprintf(out, "  %-28s %s\n  %-28s [%s%s%s]\n", flag, o->help, "", o->env ? o->env : "",
                o->env ? ", " : "", o->def ? o->def : "unset");
    }
    fprintf(out, "  %-28s %s\n", "--help", "show this and exit");
}

/* A bad value, named as the user gave it: "--port=abc", "PORT=abc", or the
 * default a program declared. */
static void bad(wv_app *app, const option *o, const char *value, const char *why)
{
    if (strcmp(o->source, "default") == 0)
        fprintf(stderr, "%s: the default of --%s, '%s': %s\n", app->prog, o->name, value, why);
    else
        fprintf(stderr, "%s: %s=%s: %s (see --help)\n", app->prog, o->source, value, why);
    exit(2);
}

static void check_value(wv_app *app, option *o)
{
    if (!o->value)
        return;
    if (o->type == WV_OPT_INT) {
        char *end;
        errno = 0;
        long long v = strtoll(o->value, &end, 10);
        if (*o->value == '\0' || *end || errno)
            bad(app, o, o->value, "not a whole number");
        o->ival = v;
        if (strcmp(o->name, "port") == 0 && (v < 0 || v > 65535))
            bad(app, o, o->value, "a port is 0-65535");
        if (strcmp(o->name, "shards") == 0 && (v < 0 || v > 1024))
            bad(app, o, o->value, "shards are 0 (one per CPU) to 1024");
        if (v < 0 && strstr(o->name, "-ms"))
            bad(app, o, o->value, "a duration cannot be negative");
    } else if (o->type == WV_OPT_BOOL) {
        const char *v = o->value;
        if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
            !strcasecmp(v, "on"))
            o->ival = 1;
        else if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
                 !strcasecmp(v, "off"))
            o->ival = 0;
        else
            bad(app, o, v, "expected true or false");
    }
}

static void parse(wv_app *app)
{
    if (app->parsed)
        return;
    app->parsed = true;
    for (option *o = app->opts; o; o = o->next) {
        o->value = o->def;
        o->source = "default";
        const char *e = o->env ? getenv(o->env) : NULL;
        if (e && *e) {
            o->value = e;
            o->source = o->env;
        }
    }
    for (int i = 1; i < app->argc; i++) {
        const char *a = app->argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(app, stdout);
            exit(0);
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", app->prog, a);
            exit(2);
        }
        const char *eq = strchr(a + 2, '=');
        size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        option *o = NULL;
        for (option *p = app->opts; p; p = p->next)
            if (strlen(p->name) == n && strncmp(p->name, a + 2, n) == 0)
                o = p;
        if (!o) {
            fprintf(stderr, "%s: unknown option '%.*s' (see --help)\n", app->prog, (int)n + 2, a);
            exit(2);
        }
        if (eq) {
            o->value = eq + 1;
        } else if (o->type == WV_OPT_BOOL) {
            o->value = "true";
        } else if (i + 1 < app->argc) {
            o->value = app->argv[++i];
        } else {
            fprintf(stderr, "%s: --%s needs a value (see --help)\n", app->prog, o->name);
            exit(2);
        }
        if (!o->flag_label) {
            o->flag_label = xcalloc(strlen(o->name) + 3);
            sprintf(o->flag_label, "--%s", o->name); /* for messages */
        }
        o->source = o->flag_label;
    }
    for (option *o = app->opts; o; o = o->next)
        check_value(app, o);
    const char *lvl = wv_app_str(app, "log-level");
    static const char *levels[] = {"debug", "info", "warn", "error", "off"};
    bool ok = false;
    for (int i = 0; i < 5; i++)
        ok |= strcasecmp(lvl, levels[i]) == 0;
    if (!ok)
        bad(app, find(app, "log-level"), lvl, "expected debug, info, warn, error or off");
    const char *al = wv_app_str(app, "access-log");
    if (strcasecmp(al, "off") && strcasecmp(al, "common") && strcasecmp(al, "json"))
        bad(app, find(app, "access-log"), al, "expected off, common or json");
}

static option *need(wv_app *app, const char *name)
{
    parse(app);
    option *o = find(app, name);
    if (!o) {
        fprintf(stderr, "%s: the program reads an undeclared option '%s'\n", app->prog, name);
        abort();
    }
    return o;
}

const char *wv_app_str(wv_app *app, const char *name)
{
    return need(app, name)->value;
}

int64_t wv_app_int(wv_app *app, const char *name)
{
    return need(app, name)->ival;
}

bool wv_app_bool(wv_app *app, const char *name)
{
    return need(app, name)->ival != 0;
}

wv_router *wv_app_router(wv_app *app)
{
    return app->router;
}

int wv_app_ready_check(wv_app *app, const char *name, wv_ready_fn *fn, void *arg)
{
    check *c = xcalloc(sizeof *c);
    c->name = xstrdup(name);
    c->fn = fn;
    c->arg = arg;
    *app->checks_tail = c;
    app->checks_tail = &c->next;
    return 0;
}

int wv_app_backend(wv_app *app, const char *what, const char *which)
{
    backend *b = xcalloc(sizeof *b);
    b->what = xstrdup(what);
    b->which = xstrdup(which);
    *app->backends_tail = b;
    app->backends_tail = &b->next;
    return 0;
}

int wv_app_on_start(wv_app *app, wv_fn *fn, void *arg)
{
    hook *h = xcalloc(sizeof *h);
    h->fn = fn;
    h->arg = arg;
    *app->hooks_tail = h;
    app->hooks_tail = &h->next;
    return 0;
}

int wv_app_on_stop(wv_app *app, wv_fn *fn, void *arg)
{
    hook *h = xcalloc(sizeof *h);
    h->fn = fn;
    h->arg = arg;
    h->next = app->stop_hooks;
    app->stop_hooks = h;
    return 0;
}

/* ------------------------------------------------------------ health */

static int healthz(wv_req *req, wv_res *res)
{
    (void)req;
    return wv_res_json(res, 200, "{\"status\":\"ok\"}");
}

static int readyz(wv_req *req, wv_res *res)
{
    wv_app *app = wv_req_data(req);
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "checks");
    wv_json_object_begin(j);
    const char *failing = NULL;
    for (check *c = app->checks; c; c = c->next) {
        wv_fail(0, "%s", "");
        int rc = c->fn(c->arg);
        wv_json_key(j, c->name);
        if (rc == 0) {
            wv_json_string(j, "ok");
        } else {
            wv_json_string(j, *wv_errmsg() ? wv_errmsg() : wv_strerror(rc));
            if (!failing)
                failing = c->name;
        }
    }
    wv_json_object_end(j);
    wv_json_key(j, "backends");
    wv_json_object_begin(j);
    for (backend *b = app->backends; b; b = b->next) {
        wv_json_key(j, b->what);
        wv_json_string(j, b->which);
    }
    wv_json_object_end(j);
    wv_json_key(j, "status");
    wv_json_string(j, failing ? "not ready" : "ready");
    if (failing) {
        wv_json_key(j, "failing");
        wv_json_string(j, failing);
    }
    wv_json_object_end(j);
    return wv_res_json_send(res, failing ? 503 : 200);
}

/* ------------------------------------------------------------ running */

typedef struct run_ctx {
    wv_app *app;
    int port;
    wv_event ready;
    /* the admin server (--metrics-port) */
    wv_router *admin;
    int admin_port, admin_rc;
    wv_event admin_ready;
} run_ctx;

static int banner(void *arg)
{
    run_ctx *r = arg;
    wv_app *app = r->app;
    if (wv_event_wait(&r->ready) < 0)
        return 0;
    const char *host = wv_app_str(app, "host");
    const char *shown =
        strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ? "localhost" : host;
    printf("weave %s · %s · %d shard%s\n", wv_version(), app->prog, wv_shard_count(),
           wv_shard_count() == 1 ? "" : "s");
    printf("  open      http://%s:%d/\n", shown, r->port);
    printf("  health    http://%s:%d/healthz  http://%s:%d/readyz\n", shown, r->port, shown,
           r->port);
    if (!app->backends)
        printf("  backends  none\n");
    for (backend *b = app->backends; b; b = b->next)
        printf("  %-9s %s\n", b->what, b->which);
    if (wv_app_bool(app, "metrics"))
        printf("  metrics   http://%s:%d/metrics\n", shown, r->admin ? r->admin_port : r->port);
    printf("listening on http://127.0.0.1:%d\n", r->port);
    fflush(stdout);
    return 0;
}

/* The admin port's server: /metrics only. */
static int serve_admin(void *arg)
{
    run_ctx *r = arg;
    wv_http_opts o = {
        .host = wv_app_str(r->app, "host"),
        .port = (int)wv_app_int(r->app, "metrics-port"),
        .bound_port = &r->admin_port,
        .ready = &r->admin_ready,
    };
    int rc = wv_http_serve(r->admin, &o);
    if (rc < 0) {
        r->admin_rc = rc;
        wv_event_set(&r->admin_ready);
    }
    return 0;
}

static int serve_app(run_ctx *r);

static int app_main(void *arg)
{
    run_ctx *r = arg;
    wv_app *app = r->app;
    int status = serve_app(r);
    for (hook *h = app->stop_hooks; h; h = h->next)
        h->fn(h->arg);
    return status;
}

static int serve_app(run_ctx *r)
{
    wv_app *app = r->app;
    for (hook *h = app->hooks; h; h = h->next) {
        int rc = h->fn(h->arg);
        if (rc < 0) {
            wv_error("startup failed: %s", *wv_errmsg() ? wv_errmsg() : wv_strerror(rc));
            return 1;
        }
    }
    const char *al = wv_app_str(app, "access-log");
    wv_http_opts o = {
        .host = wv_app_str(app, "host"),
        .port = (int)wv_app_int(app, "port"),
        .drain_timeout_ms = wv_app_int(app, "drain-timeout-ms"),
        .max_connections = (int)wv_app_int(app, "max-connections"),
        .access_log = !strcasecmp(al, "json")     ? WV_ACCESS_LOG_JSON
                      : !strcasecmp(al, "common") ? WV_ACCESS_LOG_COMMON
                                                  : WV_ACCESS_LOG_OFF,
        .bound_port = &r->port,
        .ready = &r->ready,
    };
    int rc = 0;
    if (wv_app_bool(app, "metrics"))
        rc = wv_metrics_runtime(NULL);
    wv_group *admin = NULL;
    if (rc == 0 && r->admin) {
        admin = wv_group_new();
        rc = admin ? wv_group_spawn(admin, serve_admin, r, &(wv_spawn_opts){.name = "admin"})
                   : -ENOMEM;
        if (rc == 0 && (rc = wv_event_wait(&r->admin_ready)) == 0)
            rc = r->admin_rc;
    }
    if (rc == 0) {
        wv_spawn(banner, r, &(wv_spawn_opts){.name = "banner"});
        rc = wv_http_serve(app->router, &o);
    }
    if (rc < 0) {
        wv_error("%s", *wv_errmsg() ? wv_errmsg() : wv_strerror(rc));
        wv_stop(); /* the admin server too */
    }
    if (admin) {
        wv_group_join(admin); /* it drains on the same stop */
        wv_group_free(admin);
    }
    if (rc < 0)
        return 1;
    wv_info("stopped");
    return 0;
}

static void app_free(wv_app *app)
{
    while (app->opts) {
        option *o = app->opts;
        app->opts = o->next;
        free(o->name);
        free(o->env);
        free(o->def);
        free(o->help);
        free(o->flag_label);
        free(o);
    }
    while (app->checks) {
        check *c = app->checks;
        app->checks = c->next;
        free(c->name);
        free(c);
    }
    while (app->stop_hooks) {
        hook *h = app->stop_hooks;
        app->stop_hooks = h->next;
        free(h);
    }
    while (app->hooks) {
        hook *h = app->hooks;
        app->hooks = h->next;
        free(h);
    }
    while (app->backends) {
        backend *b = app->backends;
        app->backends = b->next;
        free(b->what);
        free(b->which);
        free(b);
    }
    wv_router_free(app->router);
    free(app);
}

int wv_app_run(wv_app *app)
{
    parse(app);
    option *mc = find(app, "max-connections");
    if (wv_app_int(app, "max-connections") < 1 || wv_app_int(app, "max-connections") > 1 << 24)
        bad(app, mc, mc->value, "expected 1 to 16777216");
    const char *lvl = wv_app_str(app, "log-level");
    static const char *levels[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(lvl, levels[i]) == 0)
            wv_log_level_set((wv_log_level)i);
    wv_route_with(app->router, "GET", "/healthz", healthz, app);
    wv_route_with(app->router, "GET", "/readyz", readyz, app);
    run_ctx r = {.app = app};
    if (wv_app_bool(app, "metrics")) {
        option *mp = find(app, "metrics-port");
        int64_t port = wv_app_int(app, "metrics-port");
        if (port < 0 || port > 65535)
            bad(app, mp, mp->value, "expected a port, 1 to 65535 (0: the main port)");
        wv_router *on = app->router;
        if (port > 0) {
            r.admin = wv_router_new();
            if (!r.admin) {
                fprintf(stderr, "out of memory\n");
                exit(1);
            }
            on = r.admin;
        }
        if (wv_metrics_http(app->router, NULL) < 0 ||
            wv_route_with(on, "GET", "/metrics", wv_metrics_handler, NULL) < 0) {
            fprintf(stderr, "%s: cannot set up metrics: %s\n", app->prog, wv_errmsg());
            exit(1);
        }
    }
    int rc = wv_main(&(wv_main_opts){.shards = (int)wv_app_int(app, "shards")}, app_main, &r);
    if (rc < 0) {
        fprintf(stderr, "%s: %s\n", app->prog, wv_strerror(rc));
        rc = 1;
    }
    wv_router_free(r.admin);
    app_free(app);
    return rc;
}
