/*
 * The OpenAPI 3.1 generator: a router's routes, their wv_route_info and
 * their middleware chains, written as one JSON document
 * (include/weave/openapi.h says what is written).
 *
 * It runs in two passes over a list of operations collected once: the
 * first gathers the named models (nested ones too) and the security
 * schemes, checking that a name always means one thing; the second
 * writes paths, then components. Everything is ordered (paths in
 * registration order, methods in a fixed order, components by name,
 * responses by status), so one router always gives the same bytes.
 *
 * src/openapi depends on src/http (the routes) and src/auth (what an auth
 * middleware requires, wv_auth_scheme_of), never the other way round.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weave/auth.h"
#include "weave/openapi.h"
#include "weave/schema.h"

#define REF_PREFIX "#/components/schemas/"
#define MAX_CHAIN  64
#define MAX_AUTH   8

typedef struct op {
    const char *method;
    const char *pattern;
    const wv_route_info *info;
    const wv_router *group;
    size_t path_index; /* into gen.paths */
    int method_rank;
} op;

typedef struct scheme {
    char name[48];
    const wv_auth_scheme *s; /* type, scheme, bearer_format */
    const char *in;          /* "header" or "query" (apiKey) */
    const char *param;       /* the header or parameter (apiKey) */
} scheme;

typedef struct gen {
    op *ops;
    size_t nops, capops;
    char **paths; /* OpenAPI paths ("{rest...}" -> "{rest}"), first-seen order */
    size_t npaths, cappaths;
    const wv_db_model **models;
    size_t nmodels, capmodels;
    scheme *schemes;
    size_t nschemes, capschemes;
    bool need_validation, need_http_error;
    int err;
} gen;

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return 0;
    size_t c = *cap ? *cap * 2 : 16;
    void *q = realloc(*p, c * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

static const char *model_name(const wv_db_model *m)
{
    return m->name ? m->name : m->table;
}

static const char *status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Content Too Large";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Response";
    }
}

/* get, put, post, delete, patch, trace first (the Path Item's fixed
 * fields), other tokens after them by name; HEAD and OPTIONS are never
 * described. */
static int method_rank(const char *m)
{
    static const char *const order[] = {"GET", "PUT", "POST", "DELETE", "PATCH", "TRACE"};
    for (int i = 0; i < 6; i++)
        if (strcmp(m, order[i]) == 0)
            return i;
    return 6;
}

/* ---------------------------------------------------------- collecting */

static int add_model(gen *g, const wv_db_model *m, int depth)
{
    if (!m || depth > WV_SCHEMA_MAX_NESTING)
        return 0;
    const char *name = model_name(m);
    if (name) {
        for (size_t i = 0; i < g->nmodels; i++) {
            if (g->models[i] == m)
                return 0;
            if (strcmp(model_name(g->models[i]), name) == 0)
                return wv_fail(-EINVAL, "openapi: two different models are named %s", name);
        }
        if (grow((void **)&g->models, &g->capmodels, g->nmodels, sizeof *g->models) < 0)
            return -ENOMEM;
        g->models[g->nmodels++] = m;
    }
    for (size_t i = 0; i < m->nfields; i++) {
        const wv_db_field *f = &m->fields[i];
        const wv_db_model *sub =
            f->type == WV_DB_OBJECT ? f->object
            : f->type == WV_DB_ARRAY && f->items && f->items->type == WV_DB_OBJECT
                ? f->items->object
                : NULL;
        int rc = add_model(g, sub, depth + 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static bool same_str(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* The scheme's name in components.securitySchemes, added if new. */
static int scheme_for(gen *g, const wv_auth_scheme *s, bool query, const char **name)
{
    const char *in = s->in, *param = s->name;
    if (query) {
        in = "query";
        param = s->query_name;
    }
    const char *base = strcmp(s->type, "http") == 0      ? "HTTPBearer"
                       : in && strcmp(in, "query") == 0  ? "APIKeyQuery"
                       : in && strcmp(in, "cookie") == 0 ? "APIKeyCookie"
                                                         : "APIKeyHeader";
    for (size_t i = 0; i < g->nschemes; i++) {
        scheme *c = &g->schemes[i];
        if (same_str(c->s->type, s->type) && same_str(c->s->scheme, s->scheme) &&
            same_str(c->s->bearer_format, s->bearer_format) && same_str(c->in, in) &&
            same_str(c->param, param)) {
            *name = c->name;
            return 0;
        }
    }
    if (grow((void **)&g->schemes, &g->capschemes, g->nschemes, sizeof *g->schemes) < 0)
        return -ENOMEM;
    scheme *c = &g->schemes[g->nschemes];
    *c = (scheme){.s = s, .in = in, .param = param};
    /* a second scheme of the same kind (another header): APIKeyHeader2 */
    int k = 1;
    for (;;) {
        if (k == 1)
            snprintf(c->name, sizeof c->name, "%s", base);
        else
            snprintf(c->name, sizeof c->name, "%s%d", base, k);
        size_t i = 0;
        while (i < g->nschemes && strcmp(g->schemes[i].name, c->name) != 0)
            i++;
        if (i == g->nschemes)
            break;
        k++;
    }
    g->nschemes++;
    *name = c->name;
    return 0;
}

/* The path as OpenAPI writes it: "{rest...}" -> "{rest}". */
static char *openapi_path(const char *pattern)
{
    size_t n = strlen(pattern);
    char *p = malloc(n + 1);
    if (!p)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (pattern[i] == '.' && i + 4 <= n && strncmp(pattern + i, "...}", 4) == 0)
            i += 2; /* skip "..", then "." */
        else
            p[o++] = pattern[i];
    }
    p[o] = '\0';
    return p;
}

static int collect(const wv_route_entry *e, void *arg)
{
    gen *g = arg;
    if (strcmp(e->method, "HEAD") == 0 || strcmp(e->method, "OPTIONS") == 0 ||
        strcmp(e->method, "*") == 0 || (e->info && e->info->hidden))
        return 0;
    char *path = openapi_path(e->pattern);
    if (!path)
        return -ENOMEM;
    size_t pi = 0;
    while (pi < g->npaths && strcmp(g->paths[pi], path) != 0)
        pi++;
    if (pi == g->npaths) {
        if (grow((void **)&g->paths, &g->cappaths, g->npaths, sizeof *g->paths) < 0) {
            free(path);
            return -ENOMEM;
        }
        g->paths[g->npaths++] = path;
    } else {
        free(path);
    }
    if (grow((void **)&g->ops, &g->capops, g->nops, sizeof *g->ops) < 0)
        return -ENOMEM;
    g->ops[g->nops++] = (op){.method = e->method,
                             .pattern = e->pattern,
                             .info = e->info,
                             .group = e->group,
                             .path_index = pi,
                             .method_rank = method_rank(e->method)};
    const wv_route_info *in = e->info;
    if (!in)
        return 0;
    int rc = add_model(g, in->body, 0);
    for (const wv_route_response *r = in->responses; rc == 0 && r && r->status; r++)
        rc = add_model(g, r->model, 0);
    return rc;
}

static int op_cmp(const void *a, const void *b)
{
    const op *x = a, *y = b;
    if (x->path_index != y->path_index)
        return x->path_index < y->path_index ? -1 : 1;
    if (x->method_rank != y->method_rank)
        return x->method_rank - y->method_rank;
    return strcmp(x->method, y->method);
}

static int model_cmp(const void *a, const void *b)
{
    return strcmp(model_name(*(const wv_db_model *const *)a),
                  model_name(*(const wv_db_model *const *)b));
}

static int scheme_cmp(const void *a, const void *b)
{
    return strcmp(((const scheme *)a)->name, ((const scheme *)b)->name);
}

/* ------------------------------------------------------------- writing */

static void copy_val(wv_json *j, const wv_json_val *v)
{
    const char *s;
    size_t n;
    bool b;
    switch (wv_json_type_of(v)) {
    case WV_JSON_BOOL:
        wv_json_as_bool(v, &b);
        wv_json_bool(j, b);
        break;
    case WV_JSON_NUMBER:
        wv_json_as_number_text(v, &s, &n);
        wv_json_raw(j, s, n);
        break;
    case WV_JSON_STRING:
        wv_json_as_string(v, &s, &n);
        wv_json_stringn(j, s, n);
        break;
    case WV_JSON_ARRAY:
        wv_json_array_begin(j);
        for (long i = 0; i < wv_json_array_len(v); i++)
            copy_val(j, wv_json_array_at(v, (size_t)i));
        wv_json_array_end(j);
        break;
    case WV_JSON_OBJECT:
        wv_json_object_begin(j);
        for (long i = 0; i < wv_json_object_len(v); i++) {
            const wv_json_val *m = wv_json_object_at(v, (size_t)i, &s, &n);
            wv_json_keyn(j, s, n);
            copy_val(j, m);
        }
        wv_json_object_end(j);
        break;
    default:
        wv_json_null(j);
    }
}

/* A model's schema: a $ref when it is named (and so in components), else
 * written inline. */
static int write_model_ref(wv_json *j, const wv_db_model *m, bool array)
{
    if (array) {
        wv_json_object_begin(j);
        wv_json_key(j, "type");
        wv_json_string(j, "array");
        wv_json_key(j, "items");
    }
    int rc = 0;
    const char *name = model_name(m);
    if (name) {
        char ref[256];
        snprintf(ref, sizeof ref, REF_PREFIX "%s", name);
        wv_json_object_begin(j);
        wv_json_key(j, "$ref");
        wv_json_string(j, ref);
        wv_json_object_end(j);
    } else {
        rc = wv_schema_json_schema(m, j, REF_PREFIX);
    }
    if (array)
        wv_json_object_end(j);
    return rc;
}

/* A parameter's schema: the field's own JSON Schema, as the schema module
 * writes it for a property (through a one-field model, read back). */
static int write_field_schema(wv_json *j, const wv_db_field *f)
{
    wv_db_field one = *f;
    one.offset = 0;
    one.present_offset = 0;
    one.name = "p";
    wv_db_model m = {.size = one.size ? one.size : 1, .fields = &one, .nfields = 1, .name = "P"};
    wv_buf b = {0};
    wv_json tmp;
    wv_json_init(&tmp, &b);
    int rc = wv_schema_json_schema(&m, &tmp, REF_PREFIX);
    if (rc < 0) {
        char why[256];
        snprintf(why, sizeof why, "%s", wv_errmsg());
        wv_buf_free(&b);
        return wv_fail(-EINVAL, "openapi: parameter %s: %s", f->name ? f->name : "(null)", why);
    }
    rc = wv_json_finish(&tmp);
    wv_json_doc *doc = NULL;
    if (rc == 0)
        rc = wv_json_parse(b.p, b.n, &doc);
    if (rc == 0) {
        const wv_json_val *props = wv_json_get(wv_json_doc_root(doc), "properties");
        const wv_json_val *p = props ? wv_json_get(props, "p") : NULL;
        if (p)
            copy_val(j, p);
        else
            rc = -EINVAL;
    }
    wv_json_doc_free(doc);
    wv_buf_free(&b);
    return rc;
}

static void write_string_schema(wv_json *j)
{
    wv_json_object_begin(j);
    wv_json_key(j, "type");
    wv_json_string(j, "string");
    wv_json_object_end(j);
}

static int write_param(wv_json *j, const char *in, const wv_db_field *f)
{
    wv_json_object_begin(j);
    wv_json_key(j, "name");
    wv_json_string(j, f->name);
    wv_json_key(j, "in");
    wv_json_string(j, in);
    bool required = strcmp(in, "path") == 0 || !f->default_json;
    if (required) {
        wv_json_key(j, "required");
        wv_json_bool(j, true);
    }
    if (f->description) {
        wv_json_key(j, "description");
        wv_json_string(j, f->description);
    }
    wv_json_key(j, "schema");
    int rc = write_field_schema(j, f);
    wv_json_object_end(j);
    return rc;
}

/* The names of the pattern's parameters, in order, as [start, len). */
static int pattern_params(const char *pattern, const char **names, size_t *lens, int max)
{
    int n = 0;
    for (const char *p = pattern; (p = strchr(p, '{')) != NULL && n < max; p++) {
        const char *end = strchr(p, '}');
        if (!end)
            break;
        size_t len = (size_t)(end - p - 1);
        if (len > 3 && strncmp(end - 3, "...", 3) == 0)
            len -= 3;
        names[n] = p + 1;
        lens[n++] = len;
    }
    return n;
}

static int write_parameters(wv_json *j, const op *o, bool *any_declared)
{
    const wv_route_param *decl = o->info ? o->info->params : NULL;
    const char *names[32];
    size_t lens[32];
    int np = pattern_params(o->pattern, names, lens, 32);
    size_t ndecl = 0;
    for (const wv_route_param *p = decl; p && p->field; p++) {
        ndecl++;
        if (!p->in || !p->field->name ||
            (strcmp(p->in, "path") && strcmp(p->in, "query") && strcmp(p->in, "header") &&
             strcmp(p->in, "cookie")))
            return wv_fail(-EINVAL, "openapi: %s %s: a parameter with no name or a bad \"in\"",
                           o->method, o->pattern);
        if (strcmp(p->in, "path") == 0) {
            int k = 0;
            while (k < np && !(strlen(p->field->name) == lens[k] &&
                               strncmp(names[k], p->field->name, lens[k]) == 0))
                k++;
            if (k == np)
                return wv_fail(-EINVAL, "openapi: %s %s: path parameter %s is not in the pattern",
                               o->method, o->pattern, p->field->name);
        }
    }
    *any_declared = ndecl > 0;
    if (np == 0 && ndecl == 0)
        return 0;
    int rc = 0;
    wv_json_key(j, "parameters");
    wv_json_array_begin(j);
    for (int k = 0; k < np && rc == 0; k++) {
        const wv_route_param *d = NULL;
        for (const wv_route_param *p = decl; p && p->field && !d; p++)
            if (strcmp(p->in, "path") == 0 && strlen(p->field->name) == lens[k] &&
                strncmp(names[k], p->field->name, lens[k]) == 0)
                d = p;
        if (d) {
            rc = write_param(j, "path", d->field);
        } else {
            wv_json_object_begin(j);
            wv_json_key(j, "name");
            wv_json_stringn(j, names[k], lens[k]);
            wv_json_key(j, "in");
            wv_json_string(j, "path");
            wv_json_key(j, "required");
            wv_json_bool(j, true);
            if (strncmp(names[k] + lens[k], "...", 3) == 0) {
                wv_json_key(j, "description");
                wv_json_string(j, "The rest of the path, slashes included.");
            }
            wv_json_key(j, "schema");
            write_string_schema(j);
            wv_json_object_end(j);
        }
    }
    for (const wv_route_param *p = decl; p && p->field && rc == 0; p++)
        if (strcmp(p->in, "path") != 0)
            rc = write_param(j, p->in, p->field);
    wv_json_array_end(j);
    return rc;
}

static void write_ref(wv_json *j, const char *name)
{
    char ref[128];
    snprintf(ref, sizeof ref, REF_PREFIX "%s", name);
    wv_json_object_begin(j);
    wv_json_key(j, "$ref");
    wv_json_string(j, ref);
    wv_json_object_end(j);
}

/* One response object; r NULL: the default 200. */
static int write_response(wv_json *j, int status, const wv_route_response *r,
                          const char *error_schema, const char *description)
{
    char key[16];
    snprintf(key, sizeof key, "%d", status);
    wv_json_key(j, key);
    wv_json_object_begin(j);
    wv_json_key(j, "description");
    wv_json_string(j, description           ? description
                      : r && r->description ? r->description
                      : !r && status == 200 ? "Successful Response"
                                            : status_reason(status));
    int rc = 0;
    if (error_schema) {
        wv_json_key(j, "content");
        wv_json_object_begin(j);
        wv_json_key(j, "application/json");
        wv_json_object_begin(j);
        wv_json_key(j, "schema");
        write_ref(j, error_schema);
        wv_json_object_end(j);
        wv_json_object_end(j);
    } else if (!r || r->model || r->schema || r->media_type) {
        wv_json_key(j, "content");
        wv_json_object_begin(j);
        wv_json_key(j, r && r->media_type ? r->media_type : "application/json");
        wv_json_object_begin(j);
        if (!r || r->model || r->schema) {
            wv_json_key(j, "schema");
            if (!r) {
                wv_json_object_begin(j);
                wv_json_object_end(j);
            } else if (r->model) {
                rc = write_model_ref(j, r->model, r->array);
            } else {
                wv_json_raw(j, r->schema, strlen(r->schema));
            }
        }
        wv_json_object_end(j);
        wv_json_object_end(j);
    }
    wv_json_object_end(j);
    return rc;
}

typedef struct chain_facts {
    const wv_auth_scheme *auth[MAX_AUTH];
    int nauth;
    bool scopes, ratelimit, shed, deadline;
} chain_facts;

static void chain_facts_of(const wv_router *group, chain_facts *f)
{
    const wv_middleware *mws[MAX_CHAIN];
    size_t n = wv_router_chain(group, mws, MAX_CHAIN);
    if (n > MAX_CHAIN)
        n = MAX_CHAIN;
    *f = (chain_facts){0};
    for (size_t i = 0; i < n; i++) {
        const wv_auth_scheme *s = wv_auth_scheme_of(mws[i]);
        if (s && f->nauth < MAX_AUTH) {
            f->auth[f->nauth++] = s;
            if (s->scopes && s->scopes[0])
                f->scopes = true;
        }
        const char *name = mws[i]->name ? mws[i]->name : "";
        if (strcmp(name, "ratelimit") == 0)
            f->ratelimit = true;
        else if (strcmp(name, "shed") == 0)
            f->shed = true;
        else if (strcmp(name, "deadline") == 0)
            f->deadline = true;
    }
}

/* security: every auth middleware of the chain must pass, so one
 * requirement object names them all; an API key also read from a query
 * parameter is either of two schemes, hence one object per combination. */
static int write_security(gen *g, wv_json *j, const chain_facts *f)
{
    int combos = 1;
    for (int i = 0; i < f->nauth; i++)
        if (strcmp(f->auth[i]->type, "apiKey") == 0 && f->auth[i]->query_name)
            combos *= 2;
    wv_json_key(j, "security");
    wv_json_array_begin(j);
    for (int c = 0; c < combos; c++) {
        wv_json_object_begin(j);
        int bit = 0;
        for (int i = 0; i < f->nauth; i++) {
            const wv_auth_scheme *s = f->auth[i];
            bool query = false;
            if (strcmp(s->type, "apiKey") == 0 && s->query_name)
                query = (c >> bit++) & 1;
            const char *name;
            int rc = scheme_for(g, s, query, &name);
            if (rc < 0)
                return rc;
            wv_json_key(j, name);
            wv_json_array_begin(j);
            for (const char *const *sc = s->scopes; sc && *sc; sc++)
                wv_json_string(j, *sc);
            wv_json_array_end(j);
        }
        wv_json_object_end(j);
    }
    wv_json_array_end(j);
    return 0;
}

static bool documents(const wv_route_info *in, int status)
{
    for (const wv_route_response *r = in ? in->responses : NULL; r && r->status; r++)
        if (r->status == status)
            return true;
    return false;
}

static int status_cmp(const void *a, const void *b)
{
    return *(const int *)a - *(const int *)b;
}

static void operation_id(const op *o, char *out, size_t n)
{
    size_t k = 0;
    for (const char *m = o->method; *m && k + 1 < n; m++)
        out[k++] = (char)(*m >= 'A' && *m <= 'Z' ? *m + 32 : *m);
    for (const char *p = o->pattern; *p && k + 1 < n; p++) {
        char c = *p;
        bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (c == '.')
            continue;
        out[k++] = word ? c : '_';
    }
    while (k > 0 && out[k - 1] == '_')
        k--;
    out[k] = '\0';
}

static int write_operation(gen *g, wv_json *j, const op *o, size_t index)
{
    const wv_route_info *in = o->info;
    char method[32];
    size_t k = 0;
    for (; o->method[k] && k + 1 < sizeof method; k++)
        method[k] =
            (char)(o->method[k] >= 'A' && o->method[k] <= 'Z' ? o->method[k] + 32 : o->method[k]);
    method[k] = '\0';
    wv_json_key(j, method);
    wv_json_object_begin(j);
    if (in && in->tags && in->tags[0]) {
        wv_json_key(j, "tags");
        wv_json_array_begin(j);
        for (const char *const *t = in->tags; *t; t++)
            wv_json_string(j, *t);
        wv_json_array_end(j);
    }
    if (in && in->summary) {
        wv_json_key(j, "summary");
        wv_json_string(j, in->summary);
    }
    if (in && in->description) {
        wv_json_key(j, "description");
        wv_json_string(j, in->description);
    }
    wv_json_key(j, "operationId");
    if (in && in->operation_id) {
        wv_json_string(j, in->operation_id);
    } else {
        char id[256];
        operation_id(o, id, 200);
        /* a lossy mapping ("/a-b" and "/a_b") must still give unique ids */
        for (size_t i = 0; i < index; i++) {
            const op *p = &g->ops[i];
            char other[256];
            if (p->info && p->info->operation_id)
                continue;
            operation_id(p, other, 200);
            if (strcmp(other, id) == 0) {
                size_t l = strlen(id);
                snprintf(id + l, sizeof id - l, "_%u", (unsigned)(index + 1) % 100000u);
                break;
            }
        }
        wv_json_string(j, id);
    }
    bool declared = false;
    int rc = write_parameters(j, o, &declared);
    if (rc < 0)
        return rc;
    if (in && in->body) {
        wv_json_key(j, "requestBody");
        wv_json_object_begin(j);
        if (!in->body_optional) {
            wv_json_key(j, "required");
            wv_json_bool(j, true);
        }
        wv_json_key(j, "content");
        wv_json_object_begin(j);
        wv_json_key(j, in->body_media_type ? in->body_media_type : "application/json");
        wv_json_object_begin(j);
        wv_json_key(j, "schema");
        rc = write_model_ref(j, in->body, false);
        if (rc < 0)
            return rc;
        wv_json_object_end(j);
        wv_json_object_end(j);
        wv_json_object_end(j);
    }

    chain_facts f;
    chain_facts_of(o->group, &f);
    /* the statuses: declared ones, then what validation and middleware add */
    int statuses[64];
    const char *errors[64];
    const char *descr[64];
    const wv_route_response *resp[64];
    int ns = 0;
    for (const wv_route_response *r = in ? in->responses : NULL; r && r->status && ns < 32; r++) {
        statuses[ns] = r->status;
        resp[ns] = r;
        errors[ns] = NULL;
        descr[ns++] = NULL;
    }
    if (ns == 0) {
        statuses[ns] = 200;
        resp[ns] = NULL;
        errors[ns] = NULL;
        descr[ns++] = NULL;
    }
    struct {
        bool when;
        int status;
        const char *schema, *text;
    } extra[] = {
        {declared || (in && in->body), 422, "HTTPValidationError", "Validation Error"},
        {f.nauth > 0, 401, "HTTPError", "Not authenticated, or the credentials are not valid"},
        {f.scopes, 403, "HTTPError", "Not enough permissions (a required scope is missing)"},
        {f.ratelimit, 429, "HTTPError",
         "Too many requests: the client's rate limit is spent "
         "(Retry-After says when to come back)"},
        {f.shed, 503, "HTTPError", "Overloaded: the request was refused at once (Retry-After)"},
        {f.deadline, 504, "HTTPError", "The request's deadline (X-Request-Timeout-Ms) passed"},
    };
    for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++) {
        if (!extra[i].when || documents(in, extra[i].status))
            continue;
        statuses[ns] = extra[i].status;
        resp[ns] = NULL;
        errors[ns] = extra[i].schema;
        descr[ns++] = extra[i].text;
        if (extra[i].status == 422)
            g->need_validation = true;
        else
            g->need_http_error = true;
    }
    /* sort by status, carrying the rest along */
    int order[64];
    for (int i = 0; i < ns; i++)
        order[i] = statuses[i] * 64 + i;
    qsort(order, (size_t)ns, sizeof order[0], status_cmp);
    wv_json_key(j, "responses");
    wv_json_object_begin(j);
    for (int i = 0; i < ns && rc == 0; i++) {
        int s = order[i] % 64;
        rc = write_response(j, statuses[s], resp[s], errors[s], descr[s]);
    }
    wv_json_object_end(j);
    if (rc < 0)
        return rc;
    if (in && in->deprecated) {
        wv_json_key(j, "deprecated");
        wv_json_bool(j, true);
    }
    if (f.nauth > 0 && (rc = write_security(g, j, &f)) < 0)
        return rc;
    wv_json_object_end(j);
    return 0;
}

/* The generator's own schemas: FastAPI's two for a 422, as it writes them
 * for OpenAPI 3.1, and weave's {"detail": "..."} error. */
static void write_own_schema(wv_json *j, const char *name)
{
    static const char http_validation_error[] =
        "{\"properties\":{\"detail\":{\"items\":{\"$ref\":\"#/components/schemas/"
        "ValidationError\"},\"type\":\"array\",\"title\":\"Detail\"}},\"type\":\"object\","
        "\"title\":\"HTTPValidationError\"}";
    static const char validation_error[] =
        "{\"properties\":{\"loc\":{\"items\":{\"anyOf\":[{\"type\":\"string\"},{\"type\":"
        "\"integer\"}]},\"type\":\"array\",\"title\":\"Location\"},\"msg\":{\"type\":\"string\","
        "\"title\":\"Message\"},\"type\":{\"type\":\"string\",\"title\":\"Error Type\"},"
        "\"input\":{\"title\":\"Input\"},\"ctx\":{\"type\":\"object\",\"title\":\"Context\"}},"
        "\"type\":\"object\",\"required\":[\"loc\",\"msg\",\"type\"],\"title\":"
        "\"ValidationError\"}";
    static const char http_error[] =
        "{\"properties\":{\"detail\":{\"type\":\"string\",\"title\":\"Detail\"}},\"type\":"
        "\"object\",\"required\":[\"detail\"],\"title\":\"HTTPError\"}";
    const char *text = strcmp(name, "HTTPError") == 0             ? http_error
                       : strcmp(name, "HTTPValidationError") == 0 ? http_validation_error
                                                                  : validation_error;
    wv_json_key(j, name);
    wv_json_raw(j, text, strlen(text));
}

static void gen_free(gen *g)
{
    for (size_t i = 0; i < g->npaths; i++)
        free(g->paths[i]);
    free(g->paths);
    free(g->ops);
    free(g->models);
    free(g->schemes);
}

static int write_doc(gen *g, const wv_openapi_info *info, wv_json *j)
{
    wv_json_object_begin(j);
    wv_json_key(j, "openapi");
    wv_json_string(j, "3.1.0");
    wv_json_key(j, "info");
    wv_json_object_begin(j);
    wv_json_key(j, "title");
    wv_json_string(j, info && info->title ? info->title : "weave");
    if (info && info->description) {
        wv_json_key(j, "description");
        wv_json_string(j, info->description);
    }
    wv_json_key(j, "version");
    wv_json_string(j, info && info->version ? info->version : "0.1.0");
    wv_json_object_end(j);
    if (info && info->servers && info->servers[0].url) {
        wv_json_key(j, "servers");
        wv_json_array_begin(j);
        for (const wv_openapi_server *s = info->servers; s->url; s++) {
            wv_json_object_begin(j);
            wv_json_key(j, "url");
            wv_json_string(j, s->url);
            if (s->description) {
                wv_json_key(j, "description");
                wv_json_string(j, s->description);
            }
            wv_json_object_end(j);
        }
        wv_json_array_end(j);
    }
    wv_json_key(j, "paths");
    wv_json_object_begin(j);
    int rc = 0;
    for (size_t i = 0; i < g->nops && rc == 0; i++) {
        if (i == 0 || g->ops[i].path_index != g->ops[i - 1].path_index) {
            wv_json_key(j, g->paths[g->ops[i].path_index]);
            wv_json_object_begin(j);
        }
        rc = write_operation(g, j, &g->ops[i], i);
        if (rc == 0 && (i + 1 == g->nops || g->ops[i + 1].path_index != g->ops[i].path_index))
            wv_json_object_end(j);
    }
    if (rc < 0)
        return rc;
    wv_json_object_end(j);

    if (g->nmodels) /* qsort's base must not be NULL, even for 0 items */
        qsort(g->models, g->nmodels, sizeof *g->models, model_cmp);
    if (g->nschemes)
        qsort(g->schemes, g->nschemes, sizeof *g->schemes, scheme_cmp);
    for (size_t i = 0; i < g->nmodels; i++) {
        const char *n = model_name(g->models[i]);
        if (strcmp(n, "HTTPValidationError") == 0 || strcmp(n, "ValidationError") == 0 ||
            strcmp(n, "HTTPError") == 0)
            return wv_fail(-EINVAL, "openapi: the model name %s is the generator's own", n);
    }
    if (g->nmodels || g->need_validation || g->need_http_error || g->nschemes) {
        wv_json_key(j, "components");
        wv_json_object_begin(j);
        if (g->nmodels || g->need_validation || g->need_http_error) {
            wv_json_key(j, "schemas");
            wv_json_object_begin(j);
            /* by name: the models and the generator's own, merged */
            const char *own[3];
            size_t nown = 0;
            if (g->need_http_error)
                own[nown++] = "HTTPError";
            if (g->need_validation) {
                own[nown++] = "HTTPValidationError";
                own[nown++] = "ValidationError";
            }
            size_t mi = 0, oi = 0;
            while ((mi < g->nmodels || oi < nown) && rc == 0) {
                const char *mn = mi < g->nmodels ? model_name(g->models[mi]) : NULL;
                if (oi < nown && (!mn || strcmp(own[oi], mn) < 0)) {
                    write_own_schema(j, own[oi++]);
                } else {
                    wv_json_key(j, mn);
                    rc = wv_schema_json_schema(g->models[mi++], j, REF_PREFIX);
                }
            }
            wv_json_object_end(j);
        }
        if (rc < 0)
            return rc;
        if (g->nschemes) {
            wv_json_key(j, "securitySchemes");
            wv_json_object_begin(j);
            for (size_t i = 0; i < g->nschemes; i++) {
                const scheme *s = &g->schemes[i];
                wv_json_key(j, s->name);
                wv_json_object_begin(j);
                wv_json_key(j, "type");
                wv_json_string(j, s->s->type);
                if (strcmp(s->s->type, "http") == 0) {
                    wv_json_key(j, "scheme");
                    wv_json_string(j, s->s->scheme ? s->s->scheme : "bearer");
                    if (s->s->bearer_format) {
                        wv_json_key(j, "bearerFormat");
                        wv_json_string(j, s->s->bearer_format);
                    }
                } else {
                    wv_json_key(j, "in");
                    wv_json_string(j, s->in);
                    wv_json_key(j, "name");
                    wv_json_string(j, s->param);
                }
                wv_json_object_end(j);
            }
            wv_json_object_end(j);
        }
        wv_json_object_end(j);
    }
    wv_json_object_end(j);
    return 0;
}

int wv_openapi_write(const wv_router *r, const wv_openapi_info *info, wv_json *j)
{
    if (!r || !j)
        return wv_fail(-EINVAL, "wv_openapi_write: NULL router or writer");
    gen g = {0};
    int rc = wv_router_each_route(r, collect, &g);
    if (rc == 0) {
        /* stable: ops of one path in method order, registration order kept
         * among paths (qsort is not stable, but the keys are unique) */
        if (g.nops)
            qsort(g.ops, g.nops, sizeof *g.ops, op_cmp);
        for (size_t i = 0; i < g.nmodels && rc == 0; i++)
            if (wv_schema_check(g.models[i]) < 0) {
                char why[256];
                snprintf(why, sizeof why, "%s", wv_errmsg());
                rc = wv_fail(-EINVAL, "openapi: %s", why);
            }
    }
    if (rc == 0)
        rc = write_doc(&g, info, j);
    gen_free(&g);
    return rc;
}
