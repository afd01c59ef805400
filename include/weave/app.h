/*
 * wv_app: a whole service in a few lines, 12-factor style.
 *
 *     int main(int argc, char **argv)
 *     {
 *         wv_app *app = wv_app_new(argc, argv);  // flags + env: PORT, SHARDS, ...
 *         wv_get(app, "/async-endpoint", async_endpoint);
 *         return wv_app_run(app);
 *     }
 *
 * Options come from flags (`--port 8000` or `--port=8000`), then the
 * environment (`PORT=8000`), then their defaults; `--help` lists every one
 * with its variable and default. A bad value stops the program with a
 * message naming the option (exit status 2). Built in: port (PORT, 8000),
 * host (HOST, 0.0.0.0), shards (SHARDS, one per CPU), log-level (LOG_LEVEL,
 * info), access-log (ACCESS_LOG, off|common|json), drain-timeout-ms
 * (DRAIN_TIMEOUT_MS, 10000), max-connections (MAX_CONNECTIONS, 10000 per
 * shard; past it new connections wait in the listen backlog), metrics
 * (METRICS, true), metrics-port (METRICS_PORT), and HTTPS: tls-cert and
 * tls-key (TLS_CERT, TLS_KEY: PEM files; TLS 1.2 and 1.3, ALPN http/1.1,
 * session resumption, SIGHUP reloads the certificate without dropping open
 * connections) and http-redirect-port (HTTP_REDIRECT_PORT: a plain-HTTP
 * listener answering every request with a 308 to the same URL over
 * https). Modules and programs add theirs with wv_app_option before the
 * first value is read.
 *
 * Clients (a database, later a cache, a broker) are declared once on the
 * app from a URL; the app opens one per shard at start, adds each to
 * /readyz, closes them at stop, and a handler reaches its shard's with
 * wv_req_db / wv_req_client, with no globals:
 *
 *     static int list_users(wv_req *req, wv_res *res)
 *     {
 *         wv_db_rows *rows;
 *         int rc = wv_db_query(wv_req_db(req), &rows, "SELECT id, name FROM users");
 *         ...
 *     }
 *     wv_app_database(app, wv_app_str(app, "database-url"));
 *
 * wv_app_run serves the app's router on every shard with /healthz (the
 * process is alive) and /readyz (every readiness check passes, else 503
 * naming the failing one), prints a banner (version, shards, URL, backends
 * with their URLs redacted), and on SIGTERM / SIGINT drains and returns 0.
 * A URL's password is never printed (wv_url_redact).
 */
#ifndef WEAVE_APP_H
#define WEAVE_APP_H

#include "weave/cache.h"
#include "weave/db.h"
#include "weave/http.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_app wv_app;

/* Never NULL (out of memory ends the process). argv is kept, not copied. */
wv_app *wv_app_new(int argc, char **argv);

typedef enum wv_opt_type { WV_OPT_STRING, WV_OPT_INT, WV_OPT_BOOL } wv_opt_type;

/* Declare an option: `name` is the flag without "--", `env` its variable
 * (NULL: none), `def` its default as text (NULL: unset). -EEXIST for a
 * name already declared, -EBUSY once values have been read. */
int wv_app_option(wv_app *app, const char *name, const char *env, wv_opt_type type, const char *def,
                  const char *help);

/* An option's value (parsing all of them on the first call). Unset
 * strings are NULL. Unknown names are a programming error: the process
 * ends with a message. */
const char *wv_app_str(wv_app *app, const char *name);
int64_t wv_app_int(wv_app *app, const char *name);
bool wv_app_bool(wv_app *app, const char *name);

/* The app's router: add routes, groups and middleware to it. */
wv_router *wv_app_router(wv_app *app);

/*
 * Serve another port beside the main one, with a router of its own (a
 * gRPC service on its own port, as the chapter's --grpc-port): the same
 * host, TLS certificate (with h2 by ALPN), access log, drain and client
 * handles (wv_req_db works in its handlers) as the main server, started
 * before it and stopped with it; the banner shows it as `name`. port 0
 * takes any free port. A port that cannot be bound stops the start.
 * Returns the router to add routes to (freed with the app), or NULL
 * (-EINVAL in wv_errmsg, or out of memory).
 */
wv_router *wv_app_listen(wv_app *app, const char *name, int port);

/* A readiness check for /readyz: 0 when ready, else a negative errno with
 * wv_errmsg() saying why. Runs in the request's fiber, on any shard. */
typedef int wv_ready_fn(void *arg);
int wv_app_ready_check(wv_app *app, const char *name, wv_ready_fn *fn, void *arg);

/* Say which backend serves a dependency, for the banner and /readyz
 * ("database", "sqlite (embedded)"). Strings are copied. */
int wv_app_backend(wv_app *app, const char *what, const char *which);

/* Run fn(arg) in the main fiber once the runtime is up, before serving
 * (open pools, create schemas). A negative result stops the start. */
int wv_app_on_start(wv_app *app, wv_fn *fn, void *arg);

/* Run fn(arg) in the main fiber once serving has ended (after the drain),
 * or after a start hook failed: close what the start hooks opened (each must
 * cope with what was not opened). The newest runs first. */
int wv_app_on_stop(wv_app *app, wv_fn *fn, void *arg);

/* ---------------------------------------------------------------- clients */

/* How the app opens, closes and checks one kind of client. */
typedef struct wv_client_type {
    const char *kind; /* "database", "cache": what it is, for messages */
    /* open one for the calling shard (in a fiber on it) from url: 0 with
     * *handle set, or a negative errno with wv_errmsg() saying why */
    int (*open)(const char *url, void **handle);
    /* close one, on its shard */
    void (*close)(void *handle);
    /* readiness, on the request's shard: 0 when ready; NULL: no check */
    int (*ping)(void *handle);
} wv_client_type;

/*
 * Declare a client named `name` from `url` (both copied). At start the app
 * opens it on its first shard alone (a client that creates a file or a
 * schema does so once), then on every other shard at once, before the
 * start hooks run; a failure stops the start with "NAME URL: why", the
 * URL redacted. It shows in the banner and under /readyz as `name`
 * (redacted), and is closed on every shard after the stop hooks.
 * -EINVAL (no name, URL, open or close), -EEXIST (the name is taken).
 */
int wv_app_client(wv_app *app, const char *name, const char *url, const wv_client_type *type);

/* The calling shard's handle of client `name`: from a handler
 * (wv_req_client) or any fiber of the app once it has started
 * (wv_app_client_get). NULL for an unknown name, or before it is open. */
void *wv_req_client(wv_req *req, const char *name);
void *wv_app_client_get(wv_app *app, const char *name);

/* The app's database, a wv_app_client named "database" over wv_db_open:
 * sqlite:///path (or sqlite::memory:, one per shard) or postgres://...;
 * /readyz runs SELECT 1 on it. */
int wv_app_database(wv_app *app, const char *url);

/* The calling shard's database handle (NULL before it is open). */
wv_db *wv_req_db(wv_req *req);
wv_db *wv_app_db(wv_app *app);

/* The app's cache, a wv_app_client named "cache" over wv_cache_open:
 * memory:// (the in-process store every shard shares), redis://... or
 * memcached://h1:p1,h2:p2 (include/weave/cache.h); /readyz pings it. */
int wv_app_cache(wv_app *app, const char *url);

/* The calling shard's cache handle (NULL before it is open). */
wv_cache *wv_req_cache(wv_req *req);
wv_cache *wv_app_cache_get(wv_app *app);

/* Serve until stopped; returns the process's exit status (0 after a
 * graceful stop or --help, 1 when starting or serving failed, 2 for a bad
 * argument or value); it never exits the process itself. Frees the app. */
int wv_app_run(wv_app *app);

/* With app.h included, wv_get / wv_post / ... also take a wv_app. */
static inline wv_router *wv_router_self_(wv_router *r)
{
    return r;
}
#define wv_router_of_(x) _Generic((x), wv_app * : wv_app_router, default : wv_router_self_)(x)
#undef wv_get
#undef wv_post
#undef wv_put
#undef wv_patch
#undef wv_delete
#define wv_get(x, pattern, h)    wv_route(wv_router_of_(x), "GET", (pattern), (h))
#define wv_post(x, pattern, h)   wv_route(wv_router_of_(x), "POST", (pattern), (h))
#define wv_put(x, pattern, h)    wv_route(wv_router_of_(x), "PUT", (pattern), (h))
#define wv_patch(x, pattern, h)  wv_route(wv_router_of_(x), "PATCH", (pattern), (h))
#define wv_delete(x, pattern, h) wv_route(wv_router_of_(x), "DELETE", (pattern), (h))

#ifdef __cplusplus
}
#endif

#endif
