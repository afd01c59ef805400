/*
 * Requests another protocol carries (HTTP/2, src/h2): the seam's side in
 * HTTP. A request arrives as a wv_http_exchange (its parts and the calls
 * that move its bodies); it becomes a wv_req and a wv_res whose reads and
 * writes go through the exchange's ops instead of the connection's buffers,
 * and runs through the same routing, middleware, handler and access log as
 * an HTTP/1.1 request (server.c's http_handle). Several run at once on one
 * connection, each in its own fiber: nothing here writes to the connection.
 */
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"

/* The request head from the exchange's parts: the target split into path
 * and query, the header fields copied into http_header slots (the same
 * slices), and a Host field from :authority when the peer sent none. */
static int fill_head(wv_req *req, const wv_http_exchange *ex)
{
    http_request *h = &req->h;
    h->method = ex->method;
    h->target = ex->target;
    const char *q = memchr(ex->target.p ? ex->target.p : "", '?', ex->target.n);
    if (q) {
        h->path = (wv_str){ex->target.p, (size_t)(q - ex->target.p)};
        h->query = (wv_str){q + 1, ex->target.n - (size_t)(q - ex->target.p) - 1};
    } else {
        h->path = ex->target;
        h->query = (wv_str){"", 0};
    }
    h->minor = 1;
    h->host = ex->authority;
    h->content_length = ex->no_body ? 0 : ex->content_length;
    h->keep_alive = true;
    bool has_host = false;
    for (int i = 0; i < ex->nheaders && !has_host; i++)
        has_host = wv_str_eq_cstr(ex->headers[i].name, "host");
    int n = ex->nheaders + (!has_host && ex->authority.n ? 1 : 0);
    h->headers = wv_req_alloc(req, (size_t)(n ? n : 1) * sizeof *h->headers);
    if (!h->headers)
        return -ENOMEM;
    for (int i = 0; i < ex->nheaders; i++)
        h->headers[i] = (http_header){ex->headers[i].name, ex->headers[i].value};
    if (n > ex->nheaders)
        h->headers[ex->nheaders] = (http_header){WV_STR("host"), ex->authority};
    h->nheaders = n;
    return 0;
}

void wv_http_exchange_run(wv_http_conn *hc, const wv_http_exchange *ex)
{
    conn *c = (conn *)hc;
    wv_req req;
    req_init(&req, c);
    req.x = ex;
    req.start_ns = wv_now();
    if (fill_head(&req, ex) < 0) {
        ex->ops->abort(ex->x);
        req_finish(&req);
        return;
    }
    if (ex->no_body)
        req.body_done = true;
    wv_res res;
    res_init(&res, c, &req);
    http_handle(&req, &res);
    res_finish(&res);
    req_finish(&req);
}
