/*
 * The public routing API (wv_router, groups, middleware) over the radix tree
 * of router.c, and the dispatch of one request: match, run the middleware
 * chain from the root inwards, run the handler, run the `after` hooks.
 *
 * A group shares its root's tree; it only adds a prefix and a middleware
 * list, so matching costs the same however routes are grouped. Unmatched
 * requests (404, 405, automatic OPTIONS) go through the root's middleware,
 * so CORS can answer preflights and logging sees every request.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"

wv_router *wv_router_new(void)
{
    wv_router *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->tree = router_new();
    r->prefix = strdup("");
    if (!r->tree || !r->prefix) {
        router_free(r->tree);
        free(r->prefix);
        free(r);
        return NULL;
    }
    r->root = r;
    r->routes_tail = &r->routes;
    return r;
}

static void group_free(wv_router *g)
{
    while (g->groups) {
        wv_router *c = g->groups;
        g->groups = c->next_sibling;
        group_free(c);
    }
    while (g->mws) {
        mw_entry *m = g->mws;
        g->mws = m->next;
        free(m);
    }
    free(g->prefix);
    if (g->root == g) {
        while (g->routes) {
            route *rt = g->routes;
            g->routes = rt->next_owned;
            free(rt->method);
            free(rt->pattern);
            free(rt);
        }
        router_free(g->tree);
        while (g->kept) {
            struct kept *k = g->kept;
            g->kept = k->next;
            k->free_fn(k->p);
            free(k);
        }
    }
    free(g);
}

void wv_router_free(wv_router *r)
{
    if (r && r->root == r)
        group_free(r);
}

wv_router *wv_router_group(wv_router *parent, const char *prefix)
{
    if (!parent || !prefix || (prefix[0] && prefix[0] != '/'))
        return NULL;
    wv_router *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    size_t n = strlen(parent->prefix) + strlen(prefix) + 1;
    g->prefix = malloc(n);
    if (!g->prefix) {
        free(g);
        return NULL;
    }
    snprintf(g->prefix, n, "%s%s", parent->prefix, prefix);
    size_t len = strlen(g->prefix);
    if (len > 0 && g->prefix[len - 1] == '/')
        g->prefix[len - 1] = '\0'; /* "/api/" + "/x" must not make "//x" */
    g->tree = parent->tree;
    g->root = parent->root;
    g->parent = parent;
    g->next_sibling = parent->groups;
    parent->groups = g;
    return g;
}

int router_keep(wv_router *root, void *p, void (*free_fn)(void *p))
{
    struct kept *k = malloc(sizeof *k);
    if (!k) {
        free_fn(p);
        return -ENOMEM;
    }
    k->p = p;
    k->free_fn = free_fn;
    k->next = root->kept;
    root->kept = k;
    return 0;
}

/* The middleware's arg, freed with the router when it asks to be. */
static int keep_arg(wv_router *r, const wv_middleware *mw)
{
    return mw->free ? router_keep(r->root, mw->arg, mw->free) : 0;
}

int wv_router_use(wv_router *r, const wv_middleware *mw)
{
    mw_entry *e = calloc(1, sizeof *e);
    if (!e) {
        if (mw->free)
            mw->free(mw->arg);
        return -ENOMEM;
    }
    if (keep_arg(r, mw) < 0) {
        free(e);
        return -ENOMEM;
    }
    e->mw = *mw;
    mw_entry **tail = &r->mws;
    while (*tail)
        tail = &(*tail)->next;
    *tail = e;
    return 0;
}

int wv_router_use_first(wv_router *r, const wv_middleware *mw)
{
    mw_entry *e = calloc(1, sizeof *e);
    if (!e) {
        if (mw->free)
            mw->free(mw->arg);
        return -ENOMEM;
    }
    if (keep_arg(r, mw) < 0) {
        free(e);
        return -ENOMEM;
    }
    e->mw = *mw;
    e->next = r->mws;
    r->mws = e;
    return 0;
}

int wv_route(wv_router *r, const char *method, const char *pattern, wv_handler *h)
{
    return wv_route_with(r, method, pattern, h, NULL);
}

int wv_route_with(wv_router *r, const char *method, const char *pattern, wv_handler *h, void *data)
{
    if (!r || !method || !pattern || !h)
        return -EINVAL;
    size_t n = strlen(r->prefix) + strlen(pattern) + 1;
    char *full = malloc(n);
    char *m = strdup(method);
    route *rt = calloc(1, sizeof *rt);
    if (!full || !m || !rt) {
        free(full);
        free(m);
        free(rt);
        return -ENOMEM;
    }
    snprintf(full, n, "%s%s", r->prefix, pattern);
    rt->handler = h;
    rt->data = data;
    rt->group = r;
    rt->method = m;
    rt->pattern = full;
    const char *why = "";
    int rc = router_add(r->tree, method, full, rt, &why);
    if (rc < 0) {
        if (rc == -EEXIST)
            wv_fail(rc, "route %s %s is already registered", method, full);
        else
            wv_fail(rc, "route %s %s: %s", method, full, why);
        free(full);
        free(m);
        free(rt);
        return rc;
    }
    *r->root->routes_tail = rt;
    r->root->routes_tail = &rt->next_owned;
    return 0;
}

/* ----------------------------------------------------- descriptions */

int wv_route_doc(wv_router *r, const char *method, const char *pattern, const wv_route_info *info)
{
    if (!r || !method || !pattern)
        return -EINVAL;
    size_t np = strlen(r->prefix);
    for (route *rt = r->root->routes; rt; rt = rt->next_owned)
        if (strcmp(rt->method, method) == 0 && strncmp(rt->pattern, r->prefix, np) == 0 &&
            strcmp(rt->pattern + np, pattern) == 0) {
            rt->info = info;
            return 0;
        }
    return wv_fail(-ENOENT, "route %s %s%s is not registered", method, r->prefix, pattern);
}

int wv_route_with_info(wv_router *r, const char *method, const char *pattern, wv_handler *h,
                       void *data, const wv_route_info *info)
{
    int rc = wv_route_with(r, method, pattern, h, data);
    if (rc < 0)
        return rc;
    return wv_route_doc(r, method, pattern, info);
}

int wv_router_each_route(const wv_router *r, int (*fn)(const wv_route_entry *e, void *arg),
                         void *arg)
{
    if (!r || !fn)
        return -EINVAL;
    for (const route *rt = r->root->routes; rt; rt = rt->next_owned) {
        wv_route_entry e = {
            .method = rt->method, .pattern = rt->pattern, .info = rt->info, .group = rt->group};
        int rc = fn(&e, arg);
        if (rc)
            return rc;
    }
    return 0;
}

size_t wv_router_chain(const wv_router *g, const wv_middleware **out, size_t max)
{
    const wv_router *levels[32];
    int nl = 0;
    for (; g && nl < 32; g = g->parent)
        levels[nl++] = g;
    size_t n = 0;
    for (int l = nl - 1; l >= 0; l--)
        for (const mw_entry *e = levels[l]->mws; e; e = e->next, n++)
            if (n < max)
                out[n] = &e->mw;
    return n;
}

/* --------------------------------------------------------------- dispatch */

static int answer_not_found(wv_req *req, wv_res *res)
{
    (void)req;
    return wv_res_error(res, wv_fail(-ENOENT, "Not Found"));
}

static int answer_not_allowed(wv_req *req, wv_res *res)
{
    wv_res_header(res, "Allow", req->m.allow);
    return wv_res_error(res, wv_fail(-EOPNOTSUPP, "Method Not Allowed"));
}

static int answer_options(wv_req *req, wv_res *res)
{
    wv_res_header(res, "Allow", req->m.allow);
    return wv_res_send(res, 204, NULL, NULL, 0);
}

static int answer_options_server(wv_req *req, wv_res *res)
{
    (void)req;
    wv_res_header(res, "Allow", "DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT");
    return wv_res_send(res, 204, NULL, NULL, 0);
}

/* The route for req: its handler in req->rt, or one of the automatic
 * answers. *kind is the router's verdict. */
route *routes_dispatch_target(wv_router *root, wv_req *req, int *kind)
{
    *kind = router_match(root->tree, req->h.method, req->h.path, &req->m);
    if (*kind == ROUTE_FOUND) {
        req->rt = req->m.handler;
        req->route_pattern = (wv_str){req->m.pattern, strlen(req->m.pattern)};
        return req->rt;
    }
    req->rt = NULL;
    req->route_pattern = (wv_str){"", 0};
    return NULL;
}

/* Run the middleware chain of `chain_of` (root first) around the handler. */
int run_route(wv_req *req, wv_res *res, route *rt, wv_router *chain_of)
{
    wv_handler *h;
    if (rt) {
        h = rt->handler;
    } else if (req->m.allow[0] && wv_str_eq_cstr(req->h.method, "OPTIONS")) {
        h = answer_options;
    } else if (wv_str_eq_cstr(req->h.method, "OPTIONS") && wv_str_eq_cstr(req->h.path, "*")) {
        h = answer_options_server; /* RFC 9110 9.3.7: about the server as a whole */
    } else if (req->m.allow[0]) {
        h = answer_not_allowed;
    } else {
        h = answer_not_found;
    }

    /* the chain, outermost first: walk up from the group, then reverse */
    enum { MAX_CHAIN = 64 };
    const wv_middleware *chain[MAX_CHAIN];
    int n = 0;
    wv_router *levels[32];
    int nl = 0;
    for (wv_router *g = chain_of; g && nl < 32; g = g->parent)
        levels[nl++] = g;
    for (int l = nl - 1; l >= 0; l--)
        for (mw_entry *e = levels[l]->mws; e && n < MAX_CHAIN; e = e->next)
            chain[n++] = &e->mw;

    int rc = WV_NEXT, ran = 0;
    for (; ran < n; ran++) {
        if (!chain[ran]->before)
            continue;
        rc = chain[ran]->before(req, res, chain[ran]->arg);
        if (rc != WV_NEXT) {
            ran++;
            break;
        }
    }
    if (rc == WV_NEXT)
        rc = h(req, res);
    if (rc < 0 && !res->started)
        wv_res_error(res, rc);
    for (int i = (ran < n ? ran : n) - 1; i >= 0; i--)
        if (chain[i]->after)
            chain[i]->after(req, res, chain[i]->arg);
    return rc < 0 ? rc : 0;
}

void *wv_req_data(const wv_req *req)
{
    return req->rt ? req->rt->data : NULL;
}
