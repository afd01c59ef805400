/*
 * The test client (weave/testclient.h): the exchange seam's third user,
 * after HTTP/2 (src/h2) and nothing else. A request becomes a
 * wv_http_exchange whose ops read the test's body from memory and collect
 * the response head, body pieces and trailers into a wv_test_res; it runs
 * through wv_http_exchange_run on a server of the client's own (the
 * http_server a listener would have, with no listener and no connections
 * list), in a fiber per request, which the caller joins. A request's
 * connection lives on that fiber's stack and has no stream: nothing
 * reaches a socket.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/http_internal.h"
#include "weave/testclient.h"

struct wv_test_client {
    http_server srv;
    int shard; /* -1 until the first request */
    int version;
    char peer[sizeof(((conn *)0)->peer)];
    char *host;
    int inflight;
};

/* A header or trailer field, as offsets into the response's text (which
 * may move while it grows). */
typedef struct field {
    size_t name, name_len, value, value_len;
} field;

typedef struct field_list {
    field *v;
    int n, cap;
} field_list;

struct wv_test_res {
    int status;
    bool head_seen;
    bool ended;   /* end or trailers came */
    bool aborted; /* the stream was cut */
    bool stopped; /* on_chunk said stop */
    wv_buf text;  /* field names (lower-cased) and values */
    field_list headers, trailers;
    wv_buf body;
    size_t *chunk_ends; /* where each piece ends in body */
    int nchunks, chunks_cap;
    wv_json_doc *json;
};

/* One request in flight: the exchange's x. */
typedef struct exchange_ctx {
    wv_test_client *c;
    const wv_test_req *req;
    wv_test_res *res;
    size_t body_off;
    int pieces; /* body pieces delivered */
    int err;    /* set while building the exchange */
} exchange_ctx;

/* ------------------------------------------------------------ fields */

static int fields_add(wv_test_res *res, field_list *l, wv_str name, wv_str value)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        field *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        l->v = v;
        l->cap = cap;
    }
    field f = {.name = res->text.n, .name_len = name.n};
    if (wv_buf_reserve(&res->text, name.n + value.n + 2) < 0)
        return -ENOMEM;
    for (size_t i = 0; i < name.n; i++) {
        char ch = name.p[i];
        res->text.p[res->text.n++] = ch >= 'A' && ch <= 'Z' ? (char)(ch + 32) : ch;
    }
    res->text.p[res->text.n++] = '\0';
    f.value = res->text.n;
    f.value_len = value.n;
    if (value.n)
        memcpy(res->text.p + res->text.n, value.p, value.n);
    res->text.n += value.n;
    res->text.p[res->text.n++] = '\0';
    l->v[l->n++] = f;
    return 0;
}

static wv_str fields_get(const wv_test_res *res, const field_list *l, const char *name)
{
    wv_str want = {name, strlen(name)};
    for (int i = 0; i < l->n; i++) {
        wv_str n = {res->text.p + l->v[i].name, l->v[i].name_len};
        if (wv_str_ieq(n, want))
            return (wv_str){res->text.p + l->v[i].value, l->v[i].value_len};
    }
    return (wv_str){NULL, 0};
}

/* ------------------------------------------------------- the exchange's ops */

static ssize_t op_read(void *x, void *buf, size_t n)
{
    exchange_ctx *e = x;
    const wv_test_req *q = e->req;
    size_t left = q->body_len - e->body_off;
    if (left == 0)
        return q->cut ? wv_fail(-ECONNRESET, "the test client cut the request body") : 0;
    if (e->pieces > 0 && q->chunk_delay_ms > 0) {
        int rc = wv_sleep_ms(q->chunk_delay_ms);
        if (rc < 0)
            return rc;
    } else if (e->pieces > 0 && q->chunk_size > 0) {
        int rc = wv_yield(); /* pieces arrive apart: other fibers run between */
        if (rc < 0)
            return rc;
    }
    size_t k = left < n ? left : n;
    if (q->chunk_size > 0 && k > q->chunk_size)
        k = q->chunk_size;
    memcpy(buf, (const char *)q->body + e->body_off, k);
    e->body_off += k;
    e->pieces++;
    return (ssize_t)k;
}

static int op_head(void *x, int status, const wv_http_field *fields, int nfields, bool end)
{
    exchange_ctx *e = x;
    wv_test_res *res = e->res;
    if (res->head_seen)
        return wv_fail(-EPROTO, "a second response head");
    res->status = status;
    res->head_seen = true;
    for (int i = 0; i < nfields; i++)
        if (fields_add(res, &res->headers, fields[i].name, fields[i].value) < 0)
            return -ENOMEM;
    if (end)
        res->ended = true;
    return 0;
}

static int op_write(void *x, const void *data, size_t n)
{
    exchange_ctx *e = x;
    wv_test_res *res = e->res;
    if (res->stopped)
        return wv_fail(-ECONNRESET, "the test client stopped reading the response");
    if (!res->head_seen || res->ended)
        return wv_fail(-EPROTO, "response body bytes outside a response body");
    if (res->nchunks == res->chunks_cap) {
        int cap = res->chunks_cap ? res->chunks_cap * 2 : 8;
        size_t *v = realloc(res->chunk_ends, (size_t)cap * sizeof *v);
        if (!v)
            return -ENOMEM;
        res->chunk_ends = v;
        res->chunks_cap = cap;
    }
    if (wv_buf_append(&res->body, data, n) < 0)
        return -ENOMEM;
    res->chunk_ends[res->nchunks++] = res->body.n;
    if (e->req->on_chunk && e->req->on_chunk(e->req->on_chunk_arg, data, n) != 0) {
        res->stopped = true;
        return wv_fail(-ECONNRESET, "the test client stopped reading the response");
    }
    return 0;
}

static int op_end(void *x)
{
    exchange_ctx *e = x;
    if (e->res->stopped)
        return wv_fail(-ECONNRESET, "the test client stopped reading the response");
    e->res->ended = true;
    return 0;
}

static void op_abort(void *x)
{
    exchange_ctx *e = x;
    e->res->aborted = true;
}

static int op_trailers(void *x, const wv_http_field *fields, int nfields)
{
    exchange_ctx *e = x;
    wv_test_res *res = e->res;
    if (res->stopped)
        return wv_fail(-ECONNRESET, "the test client stopped reading the response");
    for (int i = 0; i < nfields; i++)
        if (fields_add(res, &res->trailers, fields[i].name, fields[i].value) < 0)
            return -ENOMEM;
    res->ended = true;
    return 0;
}

static wv_str op_trailer(void *x, const char *name)
{
    exchange_ctx *e = x;
    const char *const *t = e->req->trailers;
    for (int i = 0; t && t[i] && t[i + 1]; i += 2)
        if (strcasecmp(t[i], name) == 0)
            return (wv_str){t[i + 1], strlen(t[i + 1])};
    return (wv_str){NULL, 0};
}

static const wv_http_exchange_ops test_ops = {.read = op_read,
                                              .head = op_head,
                                              .write = op_write,
                                              .end = op_end,
                                              .abort = op_abort,
                                              .trailers = op_trailers,
                                              .trailer = op_trailer};

/* ------------------------------------------------------------ checks */

static bool is_tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return false;
    return true;
}

static bool value_ok(const char *s)
{
    return !strpbrk(s, "\r\n");
}

/* A request an HTTP client could send, in words for wv_errmsg. */
static int check_request(const wv_test_req *q, const char **method)
{
    *method = q->method ? q->method : "GET";
    if (!is_token(*method))
        return wv_fail(-EINVAL, "the method \"%.40s\" is not a token", *method);
    const char *t = q->target;
    if (!t || !(t[0] == '/' || strcmp(t, "*") == 0))
        return wv_fail(-EINVAL, "the target \"%.40s\" does not start with '/'", t ? t : "(null)");
    for (const char *p = t; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return wv_fail(-EINVAL, "the target \"%.40s\" holds a space or a control byte", t);
    if (!q->body && q->body_len)
        return wv_fail(-EINVAL, "a body length without a body");
    const char *const *lists[2] = {q->headers, q->trailers};
    for (int l = 0; l < 2; l++) {
        const char *const *h = lists[l];
        for (int i = 0; h && h[i]; i += 2) {
            if (!h[i + 1])
                return wv_fail(-EINVAL, "the field \"%.40s\" has no value", h[i]);
            if (!is_token(h[i]))
                return wv_fail(-EINVAL, "the field name \"%.40s\" is not a token", h[i]);
            if (!value_ok(h[i + 1]))
                return wv_fail(-EINVAL, "the field \"%.40s\" holds CR or LF", h[i]);
            if (l == 0 && (strcasecmp(h[i], "content-length") == 0 ||
                           strcasecmp(h[i], "transfer-encoding") == 0))
                return wv_fail(-EINVAL, "%s comes from the body: the test client sets it", h[i]);
        }
    }
    return 0;
}

/* ------------------------------------------------------------ requests */

typedef struct run_args {
    exchange_ctx *e;
    wv_http_exchange *ex;
    const char *peer;
} run_args;

/* The request's fiber: a connection of its own (on this stack, no stream),
 * and the exchange through it, as an HTTP/2 stream's fiber runs one. */
static int run_exchange(void *arg)
{
    run_args *a = arg;
    conn c;
    memset(&c, 0, sizeof c);
    c.srv = &a->e->c->srv;
    snprintf(c.peer, sizeof c.peer, "%s", a->peer);
    wv_http_exchange_run((wv_http_conn *)&c, a->ex);
    wv_buf_free(&c.out);
    return 0;
}

static int add_field(wv_http_field *f, int *n, const char *name, const char *value)
{
    f[*n] = (wv_http_field){{name, strlen(name)}, {value, strlen(value)}};
    ++*n;
    return 0;
}

int wv_test_request(wv_test_client *c, const wv_test_req *q, wv_test_res **out)
{
    *out = NULL;
    if (!c || !q)
        return -EINVAL;
    int shard = wv_shard_id();
    if (shard < 0 || !wv_fiber_id())
        return -EPERM;
    if (c->shard >= 0 && c->shard != shard)
        return wv_fail(-EXDEV, "the test client belongs to shard %d", c->shard);
    c->shard = shard;
    const char *method;
    int rc = check_request(q, &method);
    if (rc < 0)
        return rc;

    int nh = 0;
    for (const char *const *h = q->headers; h && h[0]; h += 2)
        nh++;
    wv_http_field *fields = malloc((size_t)(nh + 2) * sizeof *fields);
    wv_test_res *res = calloc(1, sizeof *res);
    if (!fields || !res) {
        free(fields);
        free(res);
        return -ENOMEM;
    }
    int n = 0;
    const char *host = c->host;
    for (int i = 0; i < nh; i++) {
        const char *name = q->headers[2 * i], *value = q->headers[2 * i + 1];
        if (strcasecmp(name, "host") == 0) {
            /* the exchange's own name for it (it adds one from the
             * authority to a request without) */
            name = "host";
            host = value;
        }
        add_field(fields, &n, name, value);
    }
    char len[24];
    bool has_body = q->body_len > 0 || q->chunked;
    if (has_body && !q->chunked) {
        snprintf(len, sizeof len, "%zu", q->body_len);
        add_field(fields, &n, "content-length", len);
    } else if (q->chunked && c->version == 11) {
        add_field(fields, &n, "transfer-encoding", "chunked");
    }
    exchange_ctx e = {.c = c, .req = q, .res = res};
    wv_http_exchange ex = {
        .method = {method, strlen(method)},
        .target = {q->target, strlen(q->target)},
        .authority = {host, strlen(host)},
        .headers = fields,
        .nheaders = n,
        .content_length = has_body && !q->chunked ? (int64_t)q->body_len : -1,
        .no_body = !has_body,
        .version = c->version,
        .ops = &test_ops,
        .x = &e,
    };
    run_args a = {.e = &e, .ex = &ex, .peer = q->peer ? q->peer : c->peer};
    wv_group *g = wv_group_new();
    if (!g) {
        free(fields);
        wv_test_res_free(res);
        return -ENOMEM;
    }
    c->inflight++;
    rc = wv_group_spawn(g, run_exchange, &a, &(wv_spawn_opts){.name = "test-request"});
    if (rc == 0)
        rc = wv_group_join(g); /* the caller's cancellation or deadline cancels it */
    wv_group_free(g);
    c->inflight--;
    free(fields);
    if (rc == 0 && !res->head_seen)
        rc = wv_fail(-ECONNRESET, "the server reset the request without a response");
    if (rc < 0) {
        wv_test_res_free(res);
        return rc;
    }
    if (wv_buf_append(&res->body, "", 1) < 0) { /* the NUL after the body */
        wv_test_res_free(res);
        return -ENOMEM;
    }
    res->body.n--;
    *out = res;
    return 0;
}

int wv_test_get(wv_test_client *c, const char *target, wv_test_res **out)
{
    return wv_test_request(c, &(wv_test_req){.method = "GET", .target = target}, out);
}

int wv_test_post_json(wv_test_client *c, const char *target, const char *json, wv_test_res **out)
{
    const char *headers[] = {"Content-Type", "application/json", NULL};
    return wv_test_request(c,
                           &(wv_test_req){.method = "POST",
                                          .target = target,
                                          .headers = headers,
                                          .body = json,
                                          .body_len = json ? strlen(json) : 0},
                           out);
}

/* ------------------------------------------------------------ clients */

wv_test_client *wv_test_client_new(wv_router *r, const wv_test_client_opts *opts)
{
    wv_test_client_opts o = opts ? *opts : (wv_test_client_opts){0};
    if (!r || (o.version && o.version != 10 && o.version != 11 && o.version != 20))
        return NULL;
    wv_test_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->host = strdup(o.host ? o.host : "testserver");
    if (!c->host) {
        free(c);
        return NULL;
    }
    c->srv.root = r->root;
    c->srv.o = http_opts_with_defaults(o.http);
    c->srv.server_name_len = strlen(c->srv.o.server_name);
    c->srv.limits =
        (http_limits){c->srv.o.max_request_line, c->srv.o.max_head, c->srv.o.max_headers};
    c->srv.lfd = -1;
    c->shard = -1;
    c->version = o.version ? o.version : 11;
    snprintf(c->peer, sizeof c->peer, "%s", o.peer ? o.peer : "127.0.0.1:50000");
    return c;
}

void wv_test_client_free(wv_test_client *c)
{
    if (!c)
        return;
    if (c->inflight)
        wv_warn("wv_test_client_free: %d request(s) still in flight", c->inflight);
    wv_buf_free(&c->srv.json_spare);
    free(c->host);
    free(c);
}

/* ------------------------------------------------------------ responses */

int wv_test_res_status(const wv_test_res *res)
{
    return res->status;
}

wv_str wv_test_res_header(const wv_test_res *res, const char *name)
{
    return fields_get(res, &res->headers, name);
}

int wv_test_res_header_count(const wv_test_res *res)
{
    return res->headers.n;
}

void wv_test_res_header_at(const wv_test_res *res, int i, wv_str *name, wv_str *value)
{
    if (i < 0 || i >= res->headers.n) {
        *name = *value = (wv_str){NULL, 0};
        return;
    }
    const field *f = &res->headers.v[i];
    *name = (wv_str){res->text.p + f->name, f->name_len};
    *value = (wv_str){res->text.p + f->value, f->value_len};
}

wv_str wv_test_res_trailer(const wv_test_res *res, const char *name)
{
    return fields_get(res, &res->trailers, name);
}

wv_str wv_test_res_body(const wv_test_res *res)
{
    return (wv_str){res->body.p ? res->body.p : "", res->body.n};
}

int wv_test_res_chunk_count(const wv_test_res *res)
{
    return res->nchunks;
}

wv_str wv_test_res_chunk(const wv_test_res *res, int i)
{
    if (i < 0 || i >= res->nchunks)
        return (wv_str){NULL, 0};
    size_t from = i ? res->chunk_ends[i - 1] : 0;
    return (wv_str){res->body.p + from, res->chunk_ends[i] - from};
}

bool wv_test_res_complete(const wv_test_res *res)
{
    return res->ended && !res->aborted && !res->stopped;
}

const wv_json_val *wv_test_res_json(wv_test_res *res)
{
    if (!res->json) {
        wv_str b = wv_test_res_body(res);
        if (wv_json_parse(b.p, b.n, &res->json) < 0)
            return NULL;
    }
    return wv_json_doc_root(res->json);
}

void wv_test_res_free(wv_test_res *res)
{
    if (!res)
        return;
    wv_buf_free(&res->text);
    free(res->headers.v);
    free(res->trailers.v);
    wv_buf_free(&res->body);
    free(res->chunk_ends);
    wv_json_doc_free(res->json);
    free(res);
}
