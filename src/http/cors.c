/*
 * CORS middleware (the Fetch standard's CORS protocol), in the manner of
 * Starlette's CORSMiddleware: simple requests get the allow headers when
 * their Origin is allowed; preflights are answered here and never reach a
 * handler.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"

typedef struct cors {
    char **origins;
    int norigins;
    bool any;
    char *methods, *headers, *expose;
    bool credentials;
    char max_age[16];
} cors;

static bool origin_allowed(const cors *c, wv_str origin)
{
    if (c->any)
        return true;
    for (int i = 0; i < c->norigins; i++)
        if (wv_str_eq_cstr(origin, c->origins[i]))
            return true;
    return false;
}

static int cors_before(wv_req *req, wv_res *res, void *arg)
{
    const cors *c = arg;
    wv_str origin = wv_req_header(req, "Origin");
    if (!origin.p)
        return WV_NEXT;
    bool preflight = wv_str_eq_cstr(wv_req_method(req), "OPTIONS") &&
                     wv_req_header(req, "Access-Control-Request-Method").p;
    if (!origin_allowed(c, origin)) {
        if (preflight)
            return wv_res_json(res, 403, "{\"detail\":\"Disallowed CORS origin\"}");
        return WV_NEXT;
    }
    char *o = wv_req_alloc(req, origin.n + 1);
    if (!o)
        return -ENOMEM;
    memcpy(o, origin.p, origin.n);
    o[origin.n] = '\0';
    if (wv_res_header(res, "Access-Control-Allow-Origin", c->any && !c->credentials ? "*" : o) < 0)
        return WV_NEXT; /* an origin with control bytes: no CORS for it */
    if (!c->any || c->credentials)
        wv_res_header(res, "Vary", "Origin");
    if (c->credentials)
        wv_res_header(res, "Access-Control-Allow-Credentials", "true");
    if (!preflight) {
        if (c->expose)
            wv_res_header(res, "Access-Control-Expose-Headers", c->expose);
        return WV_NEXT;
    }
    wv_res_header(res, "Access-Control-Allow-Methods", c->methods);
    if (c->headers) {
        wv_res_header(res, "Access-Control-Allow-Headers", c->headers);
    } else {
        wv_str asked = wv_req_header(req, "Access-Control-Request-Headers");
        if (asked.p && asked.n) {
            char *h = wv_req_alloc(req, asked.n + 1);
            if (h) {
                memcpy(h, asked.p, asked.n);
                h[asked.n] = '\0';
                wv_res_header(res, "Access-Control-Allow-Headers", h);
            }
        }
    }
    wv_res_header(res, "Access-Control-Max-Age", c->max_age);
    return wv_res_send(res, 204, NULL, NULL, 0);
}

static void cors_free(void *p)
{
    cors *c = p;
    for (int i = 0; c->origins && i < c->norigins; i++)
        free(c->origins[i]);
    free(c->origins);
    free(c->methods);
    free(c->headers);
    free(c->expose);
    free(c);
}

int wv_cors(wv_router *r, const wv_cors_opts *o)
{
    if (!r || !o || !o->origins || !o->origins[0])
        return -EINVAL;
    cors *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    int n = 0;
    while (o->origins[n])
        n++;
    c->origins = calloc((size_t)n, sizeof *c->origins);
    for (int i = 0; c->origins && i < n; i++) {
        if (strcmp(o->origins[i], "*") == 0)
            c->any = true;
        c->origins[i] = strdup(o->origins[i]);
    }
    c->norigins = n;
    c->methods = strdup(o->methods ? o->methods : "GET, POST, PUT, PATCH, DELETE, OPTIONS");
    c->headers = o->headers ? strdup(o->headers) : NULL;
    c->expose = o->expose ? strdup(o->expose) : NULL;
    c->credentials = o->credentials;
    snprintf(c->max_age, sizeof c->max_age, "%d", o->max_age > 0 ? o->max_age : 600);
    if (c->any && c->credentials) {
        /* browsers refuse "*" with credentials; echoing every origin would
         * hand any site the user's cookies */
        cors_free(c);
        return wv_fail(-EINVAL, "CORS: allow_origins \"*\" cannot be combined with credentials");
    }
    if (!c->origins || !c->methods) {
        cors_free(c);
        return -ENOMEM;
    }
    int rc = router_keep(r->root, c, cors_free);
    if (rc == 0)
        rc = wv_router_use(r, &(wv_middleware){.name = "cors", .before = cors_before, .arg = c});
    return rc;
}
