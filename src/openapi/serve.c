/*
 * wv_openapi_serve: GET /openapi.json (the document, written by the first
 * request that asks for it and then shared by every shard) and GET /docs
 * (Swagger UI from files built by the project's npm build, no CDN and no
 * inline script, so a strict Content-Security-Policy can serve it).
 *
 * The routes live in a group with an empty prefix that carries one
 * middleware with no before/after, only a free: the state is freed with
 * the router, and no other route pays for it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weave/openapi.h"

typedef struct served {
    const wv_router *root;
    wv_openapi_info info;
    wv_openapi_server *servers;
    size_t nservers;
    char *page; /* the docs page's HTML, or NULL */
    size_t page_len;
    pthread_mutex_t mu;
    atomic_bool ready;
    char *doc; /* the document once ready (or the error that stopped it) */
    size_t doc_len;
    int doc_rc;
} served;

static const wv_route_info hidden = {.hidden = true};

static void served_free(void *p)
{
    served *s = p;
    free((char *)s->info.title);
    free((char *)s->info.version);
    free((char *)s->info.description);
    for (size_t i = 0; i < s->nservers; i++) {
        free((char *)s->servers[i].url);
        free((char *)s->servers[i].description);
    }
    free(s->servers);
    free(s->page);
    free(s->doc);
    pthread_mutex_destroy(&s->mu);
    free(s);
}

static char *dup_or_null(const char *p, bool *oom)
{
    if (!p)
        return NULL;
    char *q = strdup(p);
    if (!q)
        *oom = true;
    return q;
}

/* Write the document once; later calls see it ready. */
static void make_doc(served *s)
{
    if (atomic_load_explicit(&s->ready, memory_order_acquire))
        return;
    pthread_mutex_lock(&s->mu);
    if (!atomic_load_explicit(&s->ready, memory_order_relaxed)) {
        wv_buf b = {0};
        wv_json j;
        wv_json_init(&j, &b);
        int rc = wv_openapi_write(s->root, &s->info, &j);
        if (rc == 0)
            rc = wv_json_finish(&j);
        if (rc < 0) {
            char why[256];
            snprintf(why, sizeof why, "%s", *wv_errmsg() ? wv_errmsg() : "out of memory");
            wv_buf_reset(&b);
            wv_buf_puts(&b, why);
            wv_log(WV_LOG_ERROR, "openapi: the description cannot be written: %s", why);
        }
        s->doc_rc = rc;
        s->doc_len = b.n;
        s->doc = b.n ? strndup(b.p, b.n) : strdup("");
        wv_buf_free(&b);
        if (!s->doc) {
            s->doc_rc = -ENOMEM;
            s->doc_len = 0;
        }
        atomic_store_explicit(&s->ready, s->doc != NULL, memory_order_release);
    }
    pthread_mutex_unlock(&s->mu);
}

static int openapi_json(wv_req *req, wv_res *res)
{
    served *s = wv_req_data(req);
    make_doc(s);
    if (!atomic_load_explicit(&s->ready, memory_order_acquire))
        return -ENOMEM;
    if (s->doc_rc < 0)
        return wv_res_error(res,
                            wv_fail(-EIO, "the API description cannot be written: %s", s->doc));
    return wv_res_send(res, 200, "application/json", s->doc, s->doc_len);
}

static int docs_page(wv_req *req, wv_res *res)
{
    served *s = wv_req_data(req);
    wv_res_header(res, "Cache-Control", "no-cache");
    return wv_res_send(res, 200, "text/html; charset=utf-8", s->page, s->page_len);
}

static bool has_file(const char *dir, const char *name);

static int make_page(served *s, const char *openapi_path, const char *docs_path, const char *dir)
{
    wv_buf b = {0};
    size_t dl = strlen(docs_path);
    if (dl && docs_path[dl - 1] == '/')
        dl--;
    const char *title = s->info.title ? s->info.title : "weave";
    wv_buf_puts(&b, "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                    "<title>");
    wv_buf_html(&b, title, strlen(title));
    wv_buf_puts(&b, " - Swagger UI</title>\n<link rel=\"stylesheet\" href=\"");
    wv_buf_html(&b, docs_path, dl);
    wv_buf_puts(&b, "/swagger-ui.css\">\n");
    if (has_file(dir, "favicon-32x32.png")) { /* else the browser asks for /favicon.ico */
        wv_buf_puts(&b, "<link rel=\"icon\" type=\"image/png\" href=\"");
        wv_buf_html(&b, docs_path, dl);
        wv_buf_puts(&b, "/favicon-32x32.png\">\n");
    }
    wv_buf_puts(&b, "</head>\n<body>\n<div id=\"swagger-ui\" "
                    "data-openapi-url=\"");
    wv_buf_html(&b, openapi_path, strlen(openapi_path));
    wv_buf_puts(&b, "\"></div>\n<script src=\"");
    wv_buf_html(&b, docs_path, dl);
    wv_buf_puts(&b, "/swagger-ui-bundle.js\"></script>\n<script src=\"");
    wv_buf_html(&b, docs_path, dl);
    int rc = wv_buf_puts(&b, "/weave-docs.js\"></script>\n</body>\n</html>\n");
    if (rc < 0 || !b.p) {
        wv_buf_free(&b);
        return -ENOMEM;
    }
    s->page = strndup(b.p, b.n);
    s->page_len = b.n;
    wv_buf_free(&b);
    return s->page ? 0 : -ENOMEM;
}

static bool has_file(const char *dir, const char *name)
{
    char path[4096];
    if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return false;
    return access(path, R_OK) == 0;
}

int wv_openapi_serve(wv_router *r, const wv_openapi_opts *o)
{
    if (!r || !o)
        return wv_fail(-EINVAL, "wv_openapi_serve: NULL router or options");
    const char *openapi_path = o->openapi_path ? o->openapi_path : "/openapi.json";
    const char *docs_path = o->docs_path ? o->docs_path : "/docs";
    if (openapi_path[0] != '/' || docs_path[0] != '/' || strcmp(docs_path, "/") == 0)
        return wv_fail(-EINVAL, "wv_openapi_serve: the paths must start with '/' (docs not at /)");
    if (o->docs_dir) {
        static const char *const need[] = {"swagger-ui-bundle.js", "swagger-ui.css",
                                           "weave-docs.js"};
        for (size_t i = 0; i < 3; i++)
            if (!has_file(o->docs_dir, need[i]))
                return wv_fail(-ENOENT,
                               "wv_openapi_serve: %s has no %s (build the docs page: "
                               "scripts/build_web.sh)",
                               o->docs_dir, need[i]);
    }
    served *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    bool oom = false;
    s->root = r;
    pthread_mutex_init(&s->mu, NULL);
    s->info.title = dup_or_null(o->info.title, &oom);
    s->info.version = dup_or_null(o->info.version, &oom);
    s->info.description = dup_or_null(o->info.description, &oom);
    for (const wv_openapi_server *sv = o->info.servers; sv && sv->url; sv++)
        s->nservers++;
    if (s->nservers) {
        s->servers = calloc(s->nservers + 1, sizeof *s->servers);
        if (!s->servers) {
            s->nservers = 0;
            oom = true;
        }
        for (size_t i = 0; s->servers && i < s->nservers; i++) {
            s->servers[i].url = dup_or_null(o->info.servers[i].url, &oom);
            s->servers[i].description = dup_or_null(o->info.servers[i].description, &oom);
        }
        s->info.servers = s->servers;
    }
    if (oom || (o->docs_dir && make_page(s, openapi_path, docs_path, o->docs_dir) < 0)) {
        served_free(s);
        return -ENOMEM;
    }
    wv_router *g = wv_router_group(r, "");
    if (!g) {
        served_free(s);
        return -ENOMEM;
    }
    int rc = wv_router_use(g, &(wv_middleware){.name = "openapi", .arg = s, .free = served_free});
    if (rc < 0)
        return rc;
    rc = wv_route_with_info(g, "GET", openapi_path, openapi_json, s, &hidden);
    if (rc == 0 && o->docs_dir) {
        rc = wv_route_with_info(g, "GET", docs_path, docs_page, s, &hidden);
        if (rc == 0) {
            /* the files at docs_path/{file...}; its bare docs_path is ours */
            rc = wv_static(g, docs_path, o->docs_dir);
            char pattern[512];
            size_t dl = strlen(docs_path);
            snprintf(pattern, sizeof pattern, "%s%s{path...}", docs_path,
                     docs_path[dl - 1] == '/' ? "" : "/");
            if (rc == 0)
                rc = wv_route_doc(g, "GET", pattern, &hidden);
        }
    }
    return rc;
}
