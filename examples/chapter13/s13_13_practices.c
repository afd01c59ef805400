/*
 * §13.13, the chapter's best practices: "Ensure Security: use secure
 * authentication and authorization methods when integrating with external
 * systems", with what a service behind a gateway also needs.
 *
 *     GET /me             behind a bearer JWT (FastAPI's HTTPBearer + a
 *                         PyJWT dependency): the verified subject, scope
 *                         and expiry. Keys: JWT_SECRET (HS256, at least 32
 *                         bytes), JWT_PUBLIC_KEY_FILE (RS/PS/ES, PEM) or
 *                         JWT_JWKS_FILE; JWT_ISSUER and JWT_AUDIENCE are
 *                         checked when set.
 *     GET /admin/config   behind an API key (X-API-Key, or ?api_key=),
 *                         from API_KEYS ("name:key,name:key") or
 *                         API_KEYS_FILE: what this instance is connected to,
 *                         passwords redacted.
 *
 * Unconfigured, both routes answer 503 saying what to set: a protected
 * route is never served open. RATE_LIMIT (requests per second per client
 * address; RATE_BURST) limits every route but the probes and /metrics, in
 * Redis when the cache is a Redis (every replica then shares a client's
 * limit), else in the process. Load shedding (MAX_IN_FLIGHT,
 * MAX_LOOP_LAG_MS) is wv_app's own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/auth.h>
#include <weave/json.h>
#include <weave/net.h>
#include <weave/ratelimit.h>

#include "chapter13.h"

enum { MAX_API_KEYS = 32 };

void s13_13_practices_options(wv_app *app)
{
    wv_app_option(app, "jwt-secret", "JWT_SECRET", WV_OPT_STRING, NULL,
                  "GET /me: the HS256 secret of its bearer tokens (at least 32 bytes)");
    wv_app_option(app, "jwt-public-key-file", "JWT_PUBLIC_KEY_FILE", WV_OPT_STRING, NULL,
                  "GET /me: a PEM public key (RSA or EC) its bearer tokens are signed for");
    wv_app_option(app, "jwt-jwks-file", "JWT_JWKS_FILE", WV_OPT_STRING, NULL,
                  "GET /me: a JWK Set file of the keys its bearer tokens may be signed with");
    wv_app_option(app, "jwt-issuer", "JWT_ISSUER", WV_OPT_STRING, NULL,
                  "the iss a bearer token must carry (unset: not checked)");
    wv_app_option(app, "jwt-audience", "JWT_AUDIENCE", WV_OPT_STRING, NULL,
                  "the aud a bearer token must name (unset: tokens with an aud are refused)");
    wv_app_option(app, "api-keys", "API_KEYS", WV_OPT_STRING, NULL,
                  "GET /admin/config: its API keys, name:key[,name:key...]");
    wv_app_option(app, "api-keys-file", "API_KEYS_FILE", WV_OPT_STRING, NULL,
                  "GET /admin/config: a file of API keys, one \"name key\" a line");
    wv_app_option(app, "rate-limit", "RATE_LIMIT", WV_OPT_INT, "0",
                  "requests per second per client address, probes and /metrics aside (0: off)");
    wv_app_option(app, "rate-burst", "RATE_BURST", WV_OPT_INT, "0",
                  "the requests a client may make at once (0: twice --rate-limit)");
}

/* ------------------------------------------------------------- the routes */

static int me(wv_req *req, wv_res *res)
{
    const wv_json_val *claims = wv_auth_claims(req);
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "sub");
    wv_str sub = wv_auth_subject(req);
    if (sub.p)
        wv_json_stringn(j, sub.p, sub.n);
    else
        wv_json_null(j);
    const char *s;
    size_t n;
    int64_t v;
    wv_json_key(j, "scope");
    if (wv_json_as_string(wv_json_get(claims, "scope"), &s, &n) == 0)
        wv_json_stringn(j, s, n);
    else
        wv_json_null(j);
    wv_json_key(j, "exp");
    if (wv_json_as_i64(wv_json_get(claims, "exp"), &v) == 0)
        wv_json_int(j, v);
    else
        wv_json_null(j);
    wv_json_object_end(j);
    return wv_res_json_send(res, 200);
}

/* The instance's connections, as /readyz would name them: a URL's
 * password never leaves the process. */
static void redacted(wv_json *j, wv_app *app, const char *key, const char *option)
{
    const char *url = wv_app_str(app, option);
    wv_json_key(j, key);
    if (!url) {
        wv_json_null(j);
        return;
    }
    char out[512];
    size_t n = wv_url_redact(url, out, sizeof out);
    wv_json_stringn(j, out, n < sizeof out ? n : sizeof out - 1);
}

static int admin_config(wv_req *req, wv_res *res)
{
    wv_app *app = wv_req_data(req);
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "api_key");
    wv_str name = wv_auth_key_name(req);
    wv_json_stringn(j, name.p ? name.p : "", name.p ? name.n : 0);
    wv_json_key(j, "shards");
    wv_json_int(j, wv_shard_count());
    redacted(j, app, "database", "database-url");
    redacted(j, app, "cache", "cache-url");
    redacted(j, app, "tasks", "tasks-url");
    redacted(j, app, "bus", "bus-url");
    redacted(j, app, "downstream", "downstream-url");
    wv_json_key(j, "rate_limit");
    wv_json_int(j, wv_app_int(app, "rate-limit"));
    wv_json_object_end(j);
    return wv_res_json_send(res, 200);
}

static int not_configured(wv_req *req, wv_res *res)
{
    return detail_error(res, 503, wv_req_data(req));
}

/* ------------------------------------------------------------ the wiring */

/* API_KEYS="name:key,name:key" into keys[]; the strings are the option's,
 * kept by the app. The count, or -EINVAL naming the bad entry. */
static int parse_keys(const char *list, wv_api_key *keys, size_t cap)
{
    static char copy[4096];
    if (strlen(list) >= sizeof copy)
        return wv_fail(-EINVAL, "API_KEYS is longer than %zu bytes", sizeof copy - 1);
    strcpy(copy, list);
    size_t n = 0;
    for (char *save = NULL, *e = strtok_r(copy, ",", &save); e; e = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(e, ':');
        if (!colon || colon == e || !colon[1])
            return wv_fail(-EINVAL, "API_KEYS: an entry is not name:key");
        if (n == cap)
            return wv_fail(-EINVAL, "API_KEYS: more than %zu keys", cap);
        *colon = '\0';
        keys[n++] = (wv_api_key){.name = e, .key = colon + 1};
    }
    return (int)n;
}

static void protect_me(wv_app *app, wv_router *root)
{
    wv_jwt_opts o = {
        .pem_file = wv_app_str(app, "jwt-public-key-file"),
        .jwks_file = wv_app_str(app, "jwt-jwks-file"),
        .issuer = wv_app_str(app, "jwt-issuer"),
        .audience = wv_app_str(app, "jwt-audience"),
        .leeway_s = 30,
    };
    const char *secret = wv_app_str(app, "jwt-secret");
    if (secret)
        o.hmac_key = secret;
    wv_router *g = wv_router_group(root, "");
    if (!secret && !o.pem_file && !o.jwks_file) {
        wv_route_with(g, "GET", "/me", not_configured,
                      "bearer authentication is not configured: set JWT_SECRET, "
                      "JWT_PUBLIC_KEY_FILE or JWT_JWKS_FILE");
        return;
    }
    int rc = wv_auth_jwt(g, &o);
    if (rc < 0) {
        fprintf(stderr, "chapter13: GET /me: %s\n", wv_errmsg());
        exit(2);
    }
    wv_get(g, "/me", me);
}

static void protect_admin(wv_app *app, wv_router *root)
{
    static wv_api_key keys[MAX_API_KEYS];
    wv_api_key_opts o = {
        .query = "api_key", .keys = keys, .keys_file = wv_app_str(app, "api-keys-file")};
    const char *list = wv_app_str(app, "api-keys");
    if (list) {
        int n = parse_keys(list, keys, MAX_API_KEYS);
        if (n < 0) {
            fprintf(stderr, "chapter13: %s\n", wv_errmsg());
            exit(2);
        }
        o.nkeys = (size_t)n;
    }
    wv_router *g = wv_router_group(root, "/admin");
    if (!o.nkeys && !o.keys_file) {
        wv_route_with(g, "GET", "/config", not_configured,
                      "API keys are not configured: set API_KEYS or API_KEYS_FILE");
        return;
    }
    int rc = wv_auth_api_key(g, &o);
    if (rc < 0) {
        fprintf(stderr, "chapter13: GET /admin/config: %s\n", wv_errmsg());
        exit(2);
    }
    wv_route_with(g, "GET", "/config", admin_config, app);
}

/* Probes and scrapes are never limited: an empty key exempts them. */
static wv_str client_key(wv_req *req, void *arg)
{
    (void)arg;
    wv_str path = wv_req_path(req);
    if (wv_str_eq_cstr(path, "/healthz") || wv_str_eq_cstr(path, "/readyz") ||
        wv_str_eq_cstr(path, "/metrics"))
        return (wv_str){"", 0};
    const char *peer = wv_req_peer(req);
    const char *colon = strrchr(peer, ':'); /* "127.0.0.1:5000", "[::1]:5000" */
    return (wv_str){peer, colon ? (size_t)(colon - peer) : strlen(peer)};
}

static void limit_rate(wv_app *app, wv_router *root)
{
    int64_t rate = wv_app_int(app, "rate-limit"), burst = wv_app_int(app, "rate-burst");
    if (rate <= 0)
        return;
    const char *cache = wv_app_str(app, "cache-url");
    if (!cache)
        cache = wv_app_str(app, "redis-url");
    bool redis = cache && (!strncmp(cache, "redis://", 8) || !strncmp(cache, "rediss://", 9));
    int rc = wv_ratelimit(root, &(wv_ratelimit_opts){.name = "chapter13",
                                                     .rate = (double)rate,
                                                     .burst = burst > 0 ? burst : 2 * rate,
                                                     .key = WV_RATELIMIT_KEY_FN,
                                                     .key_fn = client_key,
                                                     .redis_url = redis ? cache : NULL});
    if (rc < 0) {
        fprintf(stderr, "chapter13: --rate-limit: %s\n", wv_errmsg());
        exit(2);
    }
    wv_app_backend(app, "rate limit", redis ? "redis (shared)" : "in-process");
}

void s13_13_practices(wv_app *app)
{
    wv_router *root = wv_app_router(app);
    limit_rate(app, root);
    protect_me(app, root);
    protect_admin(app, root);
}
