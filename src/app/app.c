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
#include "weave/cache.h"
#include "weave/metrics.h"
#include "weave/net.h"

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

/* Another port the app serves, with its own router (wv_app_listen). */
typedef struct listener {
    char *name;
    int port, bound, rc;
    wv_router *router;
    wv_event ready;
    struct listener *next;
} listener;

/* A client the app owns: one handle per shard. */
typedef struct client {
    char *name, *url;
    wv_client_type type;
    void **handles; /* [shard], while running */
    struct client *next;
} client;

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
    client *clients, **clients_tail;
    client *database; /* the wv_app_database client, for wv_req_db */
    client *cache;    /* the wv_app_cache client, for wv_req_cache */
    bool must_stop;   /* parse(): --help or a bad value: the program stops... */
    int stop_status;  /* ...with this exit status (0 after --help, 2) */
    wv_tls_ctx *tls;  /* HTTPS, from --tls-cert and --tls-key */
    listener *listeners, **listeners_tail;
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
    app->listeners_tail = &app->listeners;
    app->hooks_tail = &app->hooks;
    app->backends_tail = &app->backends;
    app->clients_tail = &app->clients;
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
    wv_app_option(app, "tls-cert", "TLS_CERT", WV_OPT_STRING, NULL,
                  "serve HTTPS with this certificate chain (PEM); SIGHUP reloads it");
    wv_app_option(app, "tls-key", "TLS_KEY", WV_OPT_STRING, NULL,
                  "the private key of --tls-cert (PEM)");
    wv_app_option(app, "http-redirect-port", "HTTP_REDIRECT_PORT", WV_OPT_INT, "0",
                  "with HTTPS, also listen for plain HTTP here and redirect it to https (0: off)");
    wv_app_option(app, "max-in-flight", "MAX_IN_FLIGHT", WV_OPT_INT, "0",
                  "per shard: past this many requests in flight, answer 503 with Retry-After "
                  "at once (0: off)");
    wv_app_option(app, "max-loop-lag-ms", "MAX_LOOP_LAG_MS", WV_OPT_INT, "0",
                  "per shard: while the event loop runs later than this, answer 503 with "
                  "Retry-After at once (0: off)");
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
static int bad(wv_app *app, const option *o, const char *value, const char *why)
{
    if (strcmp(o->source, "default") == 0)
        fprintf(stderr, "%s: the default of --%s, '%s': %s\n", app->prog, o->name, value, why);
    else
        fprintf(stderr, "%s: %s=%s: %s (see --help)\n", app->prog, o->source, value, why);
    return 2;
}

/* 0, or 2 after saying what is wrong with the value. */
static int check_value(wv_app *app, option *o)
{
    if (!o->value)
        return 0;
    if (o->type == WV_OPT_INT) {
        char *end;
        errno = 0;
        long long v = strtoll(o->value, &end, 10);
        if (*o->value == '\0' || *end || errno)
            return bad(app, o, o->value, "not a whole number");
        o->ival = v;
        if ((strcmp(o->name, "port") == 0 || strstr(o->name, "-port")) && (v < 0 || v > 65535))
            return bad(app, o, o->value, "a port is 0-65535");
        if (strcmp(o->name, "shards") == 0 && (v < 0 || v > 1024))
            return bad(app, o, o->value, "shards are 0 (one per CPU) to 1024");
        if (strcmp(o->name, "max-connections") == 0 && (v < 1 || v > 1 << 24))
            return bad(app, o, o->value, "expected 1 to 16777216");
        if (v < 0 && strcmp(o->name, "max-in-flight") == 0)
            return bad(app, o, o->value, "a count cannot be negative");
        if (v < 0 && strstr(o->name, "-ms"))
            return bad(app, o, o->value, "a duration cannot be negative");
    } else if (o->type == WV_OPT_BOOL) {
        const char *v = o->value;
        if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes") ||
            !strcasecmp(v, "on"))
            o->ival = 1;
        else if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no") ||
                 !strcasecmp(v, "off"))
            o->ival = 0;
        else
            return bad(app, o, v, "expected true or false");
    }
    return 0;
}

static bool one_of(const char *v, const char *const *allowed)
{
    for (; *allowed; allowed++)
        if (strcasecmp(v, *allowed) == 0)
            return true;
    return false;
}

/* Read every option once: 0, or the process's exit status when it must
 * stop instead (0 after --help, 2 for a bad argument or value), which is
 * also kept in app->stop_status. */
static int parse_options(wv_app *app)
{
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
            return -1; /* stop, successfully */
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", app->prog, a);
            return 2;
        }
        const char *eq = strchr(a + 2, '=');
        size_t n = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        option *o = NULL;
        for (option *p = app->opts; p; p = p->next)
            if (strlen(p->name) == n && strncmp(p->name, a + 2, n) == 0)
                o = p;
        if (!o) {
            fprintf(stderr, "%s: unknown option '%.*s' (see --help)\n", app->prog, (int)n + 2, a);
            return 2;
        }
        if (eq) {
            o->value = eq + 1;
        } else if (o->type == WV_OPT_BOOL) {
            o->value = "true";
        } else if (i + 1 < app->argc) {
            o->value = app->argv[++i];
        } else {
            fprintf(stderr, "%s: --%s needs a value (see --help)\n", app->prog, o->name);
            return 2;
        }
        if (!o->flag_label) {
            o->flag_label = xcalloc(strlen(o->name) + 3);
            sprintf(o->flag_label, "--%s", o->name); /* for messages */
        }
        o->source = o->flag_label;
    }
    for (option *o = app->opts; o; o = o->next)
        if (check_value(app, o) != 0)
            return 2;
    static const char *const levels[] = {"debug", "info", "warn", "error", "off", NULL};
    static const char *const logs[] = {"off", "common", "json", NULL};
    option *lvl = find(app, "log-level"), *al = find(app, "access-log");
    if (!one_of(lvl->value, levels))
        return bad(app, lvl, lvl->value, "expected debug, info, warn, error or off");
    if (!one_of(al->value, logs))
        return bad(app, al, al->value, "expected off, common or json");
    option *cert = find(app, "tls-cert"), *key = find(app, "tls-key");
    if (!cert->value != !key->value)
        return bad(app, cert->value ? key : cert, "(unset)",
                   "HTTPS needs both --tls-cert and --tls-key");
    option *redirect = find(app, "http-redirect-port");
    if (redirect->ival && !cert->value)
        return bad(app, redirect, redirect->value, "a redirect to HTTPS needs --tls-cert");
    return 0;
}

static int parse(wv_app *app)
{
    if (!app->parsed) {
        app->parsed = true;
        int st = parse_options(app);
        app->stop_status = st < 0 ? 0 : st;
        app->must_stop = st != 0;
    }
    return app->must_stop;
}

static option *need(wv_app *app, const char *name)
{
    if (parse(app)) /* read before wv_app_run: the documented way out */
        exit(app->stop_status);
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

wv_router *wv_app_listen(wv_app *app, const char *name, int port)
{
    if (!name || !*name || port < 0 || port > 65535) {
        wv_fail(-EINVAL, "wv_app_listen: a name and a port in 0..65535");
        return NULL;
    }
    listener *l = xcalloc(sizeof *l);
    l->name = xstrdup(name);
    l->port = port;
    l->router = wv_router_new();
    if (!l->router) {
        free(l->name);
        free(l);
        return NULL;
    }
    *app->listeners_tail = l;
    app->listeners_tail = &l->next;
    return l->router;
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

/* ------------------------------------------------------------ clients */

static client *find_client(const wv_app *app, const char *name)
{
    for (client *c = app->clients; c; c = c->next)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* This shard's handle (NULL outside the runtime or before it opened). */
static void *handle_here(const client *c)
{
    int shard = wv_shard_id();
    return c && c->handles && shard >= 0 ? c->handles[shard] : NULL;
}

static int client_ping(void *arg)
{
    client *c = arg;
    void *h = handle_here(c);
    if (!h)
        return wv_fail(-ENOTCONN, "not open on this shard");
    return c->type.ping(h);
}

int wv_app_client(wv_app *app, const char *name, const char *url, const wv_client_type *type)
{
    if (!name || !*name || !url || !type || !type->open || !type->close)
        return wv_fail(-EINVAL, "a client needs a name, a URL, and open and close");
    if (find_client(app, name))
        return wv_fail(-EEXIST, "there is already a client named \"%s\"", name);
    client *c = xcalloc(sizeof *c);
    c->name = xstrdup(name);
    c->url = xstrdup(url);
    c->type = *type;
    *app->clients_tail = c;
    app->clients_tail = &c->next;
    char shown[512];
    wv_url_redact(url, shown, sizeof shown);
    wv_app_backend(app, name, shown);
    if (type->ping)
        wv_app_ready_check(app, name, client_ping, c);
    return 0;
}

void *wv_app_client_get(wv_app *app, const char *name)
{
    return handle_here(find_client(app, name));
}

void *wv_req_client(wv_req *req, const char *name)
{
    wv_app *app = wv_req_context(req);
    return app ? handle_here(find_client(app, name)) : NULL;
}

static int db_open(const char *url, void **handle)
{
    return wv_db_open(url, NULL, (wv_db **)handle);
}

static void db_close(void *handle)
{
    wv_db_close(handle);
}

static int db_ping(void *handle)
{
    int64_t one;
    return wv_db_query_int(handle, &one, "SELECT 1");
}

int wv_app_database(wv_app *app, const char *url)
{
    static const wv_client_type database = {
        .kind = "database", .open = db_open, .close = db_close, .ping = db_ping};
    int rc = wv_app_client(app, "database", url, &database);
    if (rc == 0)
        app->database = find_client(app, "database");
    return rc;
}

wv_db *wv_app_db(wv_app *app)
{
    return handle_here(app->database);
}

wv_db *wv_req_db(wv_req *req)
{
    wv_app *app = wv_req_context(req);
    return app ? handle_here(app->database) : NULL;
}

static int cache_open(const char *url, void **handle)
{
    return wv_cache_open(url, NULL, (wv_cache **)handle);
}

static void cache_close(void *handle)
{
    wv_cache_close(handle);
}

static int cache_ping(void *handle)
{
    return wv_cache_ping(handle);
}

int wv_app_cache(wv_app *app, const char *url)
{
    static const wv_client_type cache = {
        .kind = "cache", .open = cache_open, .close = cache_close, .ping = cache_ping};
    int rc = wv_app_client(app, "cache", url, &cache);
    if (rc == 0)
        app->cache = find_client(app, "cache");
    return rc;
}

wv_cache *wv_app_cache_get(wv_app *app)
{
    return handle_here(app->cache);
}

wv_cache *wv_req_cache(wv_req *req)
{
    wv_app *app = wv_req_context(req);
    return app ? handle_here(app->cache) : NULL;
}

/* Open c on the calling shard; the failure's message names the client and
 * its URL (redacted). */
static int open_here(void *arg)
{
    client *c = arg;
    int shard = wv_shard_id();
    if (c->handles[shard])
        return 0; /* the first shard's, opened already */
    int rc = c->type.open(c->url, &c->handles[shard]);
    if (rc < 0) {
        char shown[512], why[512];
        wv_url_redact(c->url, shown, sizeof shown);
        snprintf(why, sizeof why, "%s", *wv_errmsg() ? wv_errmsg() : wv_strerror(rc));
        c->handles[shard] = NULL;
        return wv_fail(rc, "%s %s: %s", c->name, shown, why);
    }
    return 0;
}

static int close_here(void *arg)
{
    client *c = arg;
    int shard = wv_shard_id();
    if (c->handles[shard])
        c->type.close(c->handles[shard]);
    c->handles[shard] = NULL;
    return 0;
}

/* Every client on every shard: the calling (first) shard alone first, so a
 * client that creates a file or a schema does it once, then the others at
 * once. The first failure stops the start, with its message. */
static int open_clients(wv_app *app)
{
    for (client *c = app->clients; c; c = c->next) {
        c->handles = calloc((size_t)wv_shard_count(), sizeof *c->handles);
        if (!c->handles)
            return wv_fail(-ENOMEM, "out of memory");
        int rc = open_here(c);
        if (rc == 0)
            rc = wv_shard_each(open_here, c);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static void close_clients(wv_app *app)
{
    for (client *c = app->clients; c; c = c->next) {
        if (!c->handles)
            continue;
        wv_shard_each(close_here, c);
        free(c->handles);
        c->handles = NULL;
    }
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
        wv_errmsg_clear();
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
    /* the plain-HTTP server that redirects to HTTPS (--http-redirect-port) */
    wv_router *redirect;
    int redirect_port, redirect_rc;
    wv_event redirect_ready;
} run_ctx;

static int banner(void *arg)
{
    run_ctx *r = arg;
    wv_app *app = r->app;
    if (wv_event_wait(&r->ready) < 0 || r->port == 0) /* 0: the server did not start */
        return 0;
    const char *host = wv_app_str(app, "host");
    const char *shown =
        strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0 ? "localhost" : host;
    const char *scheme = app->tls ? "https" : "http";
    printf("weave %s · %s · %d shard%s\n", wv_version(), app->prog, wv_shard_count(),
           wv_shard_count() == 1 ? "" : "s");
    printf("  open      %s://%s:%d/\n", scheme, shown, r->port);
    printf("  health    %s://%s:%d/healthz  %s://%s:%d/readyz\n", scheme, shown, r->port, scheme,
           shown, r->port);
    if (r->redirect)
        printf("  redirect  http://%s:%d/ -> https\n", shown, r->redirect_port);
    for (listener *l = app->listeners; l; l = l->next)
        printf("  %-9s %s://%s:%d/\n", l->name, scheme, shown, l->bound);
    if (!app->backends)
        printf("  backends  none\n");
    for (backend *b = app->backends; b; b = b->next)
        printf("  %-9s %s\n", b->what, b->which);
    if (wv_app_bool(app, "metrics"))
        printf("  metrics   %s://%s:%d/metrics\n", r->admin ? "http" : scheme, shown,
               r->admin ? r->admin_port : r->port);
    printf("listening on %s://127.0.0.1:%d\n", scheme, r->port);
    fflush(stdout);
    return 0;
}

/* A side server (the admin port, the redirect port): serve `router` on
 * `port` until the stop, telling `ready` once it listens or failed. */
typedef struct side {
    run_ctx *r;
    wv_router *router;
    int port;
    int *bound, *rc;
    wv_event *ready;
    const wv_http_opts *like; /* the main server's options (wv_app_listen), or NULL */
} side;

static int serve_side(void *arg)
{
    side *sd = arg;
    wv_http_opts o = {.host = wv_app_str(sd->r->app, "host")};
    if (sd->like)
        o = *sd->like;
    o.port = sd->port;
    o.bound_port = sd->bound;
    o.ready = sd->ready;
    int rc = wv_http_serve(sd->router, &o);
    if (rc < 0) {
        *sd->rc = rc;
        wv_event_set(sd->ready);
    }
    return 0;
}

static int start_side(wv_group *g, side *sd, const char *name)
{
    int rc = wv_group_spawn(g, serve_side, sd, &(wv_spawn_opts){.name = name});
    if (rc == 0 && (rc = wv_event_wait(sd->ready)) == 0)
        rc = *sd->rc;
    return rc;
}

/* The redirect server, once the main one listens: its Location names the
 * main server's port (which may have been 0, any free port). A redirect
 * port that cannot be bound stops the app. */
static int serve_redirect(void *arg)
{
    side *sd = arg;
    if (wv_event_wait(&sd->r->ready) < 0 || wv_stopping() || sd->r->port == 0)
        return 0;
    serve_side(sd);
    if (*sd->rc < 0) {
        wv_error("%s", wv_errmsg());
        wv_stop();
    }
    return 0;
}

/* Plain HTTP to the same path over HTTPS: 308, so a POST stays a POST. */
static int to_https(wv_req *req, wv_res *res)
{
    run_ctx *r = wv_req_data(req);
    wv_str host = wv_req_header(req, "Host");
    const char *fallback = wv_app_str(r->app, "host");
    if (!host.p || host.n == 0 || host.n > 255)
        host = (wv_str){strcmp(fallback, "0.0.0.0") == 0 ? "localhost" : fallback, 0};
    if (!host.n)
        host.n = strlen(host.p);
    size_t name_len = host.n; /* without the port: "[::1]:80" -> "[::1]" */
    for (size_t i = host.n; i > 0; i--) {
        if (host.p[i - 1] == ']')
            break;
        if (host.p[i - 1] == ':') {
            name_len = i - 1;
            break;
        }
    }
    wv_str target = wv_req_target(req);
    wv_buf loc = {0};
    wv_buf_printf(&loc, "https://%.*s", (int)name_len, host.p);
    if (r->port != 443)
        wv_buf_printf(&loc, ":%d", r->port);
    wv_buf_append(&loc, target.p, target.n);
    int rc = loc.p ? wv_buf_append(&loc, "", 1) : -ENOMEM;
    if (rc == 0)
        rc = wv_res_redirect(res, 308, loc.p);
    wv_buf_free(&loc);
    return rc;
}

/* SIGHUP reloads the certificate: new connections get the new one, open
 * ones keep theirs. A failed reload keeps the old certificate. */
static int reload_tls(void *arg)
{
    wv_app *app = arg;
    while (wv_reload_wait() == 0) {
        if (wv_tls_ctx_reload(app->tls) == 0)
            wv_info("TLS certificate reloaded from %s", wv_app_str(app, "tls-cert"));
        else
            wv_error("TLS certificate not reloaded (the old one stays): %s", wv_errmsg());
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
    close_clients(app);
    return status;
}

static int serve_app(run_ctx *r)
{
    wv_app *app = r->app;
    int rc = open_clients(app);
    for (hook *h = app->hooks; h && rc == 0; h = h->next)
        rc = h->fn(h->arg);
    if (rc < 0) {
        wv_error("startup failed: %s", *wv_errmsg() ? wv_errmsg() : wv_strerror(rc));
        return 1;
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
        .tls = app->tls,
        .context = app,
        .bound_port = &r->port,
        .ready = &r->ready,
    };
    if (wv_app_bool(app, "metrics"))
        rc = wv_metrics_runtime(NULL);
    wv_group *sides = wv_group_new();
    side admin = {r,
                  r->admin,
                  (int)wv_app_int(app, "metrics-port"),
                  &r->admin_port,
                  &r->admin_rc,
                  &r->admin_ready,
                  NULL};
    side redirect = {r,
                     r->redirect,
                     (int)wv_app_int(app, "http-redirect-port"),
                     &r->redirect_port,
                     &r->redirect_rc,
                     &r->redirect_ready,
                     NULL};
    if (rc == 0 && !sides)
        rc = -ENOMEM;
    if (rc == 0 && r->admin)
        rc = start_side(sides, &admin, "admin");
    int nl = 0;
    for (listener *l = app->listeners; l; l = l->next)
        nl++;
    side *ls = nl ? calloc((size_t)nl, sizeof *ls) : NULL;
    if (rc == 0 && nl && !ls)
        rc = -ENOMEM;
    int li = 0;
    for (listener *l = app->listeners; l && rc == 0; l = l->next, li++) {
        ls[li] = (side){r, l->router, l->port, &l->bound, &l->rc, &l->ready, &o};
        rc = start_side(sides, &ls[li], l->name);
    }
    wv_group *reloader = app->tls ? wv_group_new() : NULL;
    if (rc == 0 && app->tls)
        rc = reloader
                 ? wv_group_spawn(reloader, reload_tls, app, &(wv_spawn_opts){.name = "tls-reload"})
                 : -ENOMEM;
    if (rc == 0 && r->redirect)
        rc = wv_group_spawn(sides, serve_redirect, &redirect, &(wv_spawn_opts){.name = "redirect"});
    if (rc == 0) {
        wv_spawn(banner, r, &(wv_spawn_opts){.name = "banner"});
        rc = wv_http_serve(app->router, &o);
    }
    if (rc < 0) {
        wv_error("%s", *wv_errmsg() ? wv_errmsg() : wv_strerror(rc));
        wv_stop(); /* the side servers too */
    }
    wv_group_free(reloader); /* cancels the reload waiter */
    if (sides) {
        wv_event_set(&r->ready); /* a redirect server still waiting gives up */
        wv_group_join(sides);    /* they drain on the same stop */
        wv_group_free(sides);
    }
    free(ls);
    if (rc < 0 || r->redirect_rc < 0)
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
    while (app->clients) {
        client *c = app->clients;
        app->clients = c->next;
        free(c->name);
        free(c->url);
        free(c->handles);
        free(c);
    }
    wv_tls_ctx_free(app->tls);
    wv_router_free(app->router);
    while (app->listeners) {
        listener *l = app->listeners;
        app->listeners = l->next;
        wv_router_free(l->router);
        free(l->name);
        free(l);
    }
    free(app);
}

/* Load shedding, when asked for: installed last with wv_router_use_first,
 * so it is outermost and a refused request costs no other middleware (the
 * metrics' included: weave_http_shed_total counts refusals). -1 to go on,
 * else the exit status to stop with. */
static int install_shed(wv_app *app)
{
    int64_t in_flight = wv_app_int(app, "max-in-flight");
    int64_t lag_ms = wv_app_int(app, "max-loop-lag-ms");
    if (in_flight == 0 && lag_ms == 0)
        return -1;
    if (wv_shed(app->router,
                &(wv_shed_opts){.max_in_flight = in_flight, .max_loop_lag_ms = lag_ms}) < 0) {
        fprintf(stderr, "%s: cannot set up load shedding: %s\n", app->prog, wv_errmsg());
        return 1;
    }
    return -1;
}

/* Everything wv_main needs, made before it: -1 to go on, else the exit
 * status to stop with. */
static int prepare(wv_app *app, run_ctx *r)
{
    if (parse(app))
        return app->stop_status;
    static const char *const levels[] = {"debug", "info", "warn", "error", "off"};
    for (int i = 0; i < 5; i++)
        if (strcasecmp(wv_app_str(app, "log-level"), levels[i]) == 0)
            wv_log_level_set((wv_log_level)i);
    wv_route_with(app->router, "GET", "/healthz", healthz, app);
    wv_route_with(app->router, "GET", "/readyz", readyz, app);
    const char *cert = wv_app_str(app, "tls-cert");
    if (cert && wv_tls_ctx_server(&(wv_tls_opts){.cert_file = cert,
                                                 .key_file = wv_app_str(app, "tls-key"),
                                                 .alpn = "h2,http/1.1"},
                                  &app->tls) < 0) {
        fprintf(stderr, "%s: cannot serve HTTPS: %s\n", app->prog, wv_errmsg());
        return 1;
    }
    if (wv_app_int(app, "http-redirect-port") > 0) {
        r->redirect = wv_router_new();
        if (!r->redirect || wv_route_with(r->redirect, "*", "/{path...}", to_https, r) < 0) {
            fprintf(stderr, "%s: out of memory\n", app->prog);
            return 1;
        }
    }
    if (!wv_app_bool(app, "metrics"))
        return install_shed(app);
    wv_router *on = app->router;
    if (wv_app_int(app, "metrics-port") > 0) {
        r->admin = wv_router_new();
        if (!r->admin) {
            fprintf(stderr, "%s: out of memory\n", app->prog);
            return 1;
        }
        on = r->admin;
    }
    if (wv_metrics_http(app->router, NULL) < 0 ||
        wv_route_with(on, "GET", "/metrics", wv_metrics_handler, NULL) < 0) {
        fprintf(stderr, "%s: cannot set up metrics: %s\n", app->prog, wv_errmsg());
        return 1;
    }
    return install_shed(app);
}

int wv_app_run(wv_app *app)
{
    run_ctx r = {.app = app};
    int rc = prepare(app, &r);
    if (rc < 0) {
        rc = wv_main(&(wv_main_opts){.shards = (int)wv_app_int(app, "shards")}, app_main, &r);
        if (rc < 0) {
            fprintf(stderr, "%s: %s\n", app->prog, wv_strerror(rc));
            rc = 1;
        }
    }
    wv_router_free(r.admin);
    wv_router_free(r.redirect);
    app_free(app);
    return rc;
}
