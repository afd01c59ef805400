/*
 * weave OpenAPI: the API description of a router, as OpenAPI 3.1.0 JSON
 * (what FastAPI serves at /openapi.json), built from the routes' own
 * descriptions (wv_route_doc in weave/http.h) and from the middleware on
 * their way (docs/openapi.md):
 *
 *     wv_route_doc(r, "POST", "/users", &create_user_info);
 *     ...
 *     wv_openapi_serve(r, &(wv_openapi_opts){
 *         .info = {.title = "Users", .version = "1.0.0"},
 *         .docs_dir = "web/dist/docs"});        // Swagger UI's built files
 *
 * What the generator writes:
 *  - a path item per route pattern ("{rest...}" becomes "{rest}"), in the
 *    order the patterns were first added, with one operation per method
 *    (get, put, post, delete, patch, trace and other tokens in that
 *    order); HEAD, OPTIONS and "*" routes are left out, as FastAPI does,
 *    and so are routes whose info says hidden;
 *  - parameters: those the info declares (schema from their wv_db_field),
 *    then every path parameter of the pattern it does not declare, as a
 *    required string;
 *  - the request body and responses, models by "$ref" to
 *    #/components/schemas/<name>, each named model (nested ones too)
 *    written once under components.schemas (wv_schema_json_schema);
 *  - security: for each middleware of the route's chain that
 *    wv_auth_scheme_of recognises (wv_auth_jwt, wv_auth_api_key), a
 *    components.securitySchemes entry (HTTPBearer, APIKeyHeader,
 *    APIKeyQuery) and the operation's "security" with its scopes;
 *  - responses the middleware and validation answer with: 422
 *    (HTTPValidationError, FastAPI's schema) for an operation with declared
 *    parameters or a body, 401 for a secured one and 403 when it requires
 *    scopes, 429 behind a "ratelimit" middleware (wv_ratelimit), 503
 *    behind "shed" (wv_shed), 504 behind "deadline" (wv_deadline_header);
 *    each {"detail": ...} (the HTTPError schema), unless the route
 *    documents that status itself.
 * The output is deterministic: the same router gives the same bytes.
 *
 * Threading: wv_openapi_write reads the router, so call it once every
 * route is added (it never changes the router); any thread. The handlers
 * wv_openapi_serve adds run on any shard: the document is written once, by
 * the first request that asks for it, and shared read-only afterwards.
 */
#ifndef WEAVE_OPENAPI_H
#define WEAVE_OPENAPI_H

#include "weave/http.h"
#include "weave/json.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_openapi_server {
    const char *url; /* "https://api.example.com", or relative ("/") */
    const char *description;
} wv_openapi_server;

typedef struct wv_openapi_info {
    const char *title;                /* NULL = "weave" */
    const char *version;              /* the API's version; NULL = "0.1.0" */
    const char *description;          /* CommonMark; NULL = none */
    const wv_openapi_server *servers; /* ended by url NULL; NULL = none */
} wv_openapi_info;

/*
 * r's description (r's root: every route of every group) written to j as
 * one JSON object. 0, -EINVAL (a NULL r or j; two different models, or
 * two different security schemes, under one name; a model that is not well
 * formed: wv_errmsg says which), -ENOMEM. j's own errors stay in j
 * (wv_json_finish). info may be NULL.
 */
int wv_openapi_write(const wv_router *r, const wv_openapi_info *info, wv_json *j);

typedef struct wv_openapi_opts {
    wv_openapi_info info;     /* copied, strings included (servers too) */
    const char *openapi_path; /* NULL = "/openapi.json" */
    const char *docs_path;    /* NULL = "/docs" */
    const char *docs_dir;     /* the docs page's built files (swagger-ui-bundle.js,
                               * swagger-ui.css, weave-docs.js: `scripts/build_web.sh`
                               * copies them to examples/chapter13/web/dist/docs);
                               * NULL = no docs page */
} wv_openapi_opts;

/*
 * Add GET openapi_path (the description, application/json, written at its
 * first request and cached) and, with docs_dir, GET docs_path (a Swagger
 * UI page pointing at openapi_path, with no inline script) and its files
 * at docs_path/{file...}, to r's root. These routes are hidden from the
 * description. Call it before the server starts; routes added after it
 * are described too, as long as they are added before the first request
 * for the document. 0, -EINVAL (NULL r or o, a path not starting with
 * '/', a docs_dir without Swagger UI's bundle in it: wv_errmsg says),
 * -EEXIST (a route already there), -ENOMEM.
 */
int wv_openapi_serve(wv_router *r, const wv_openapi_opts *o);

#ifdef __cplusplus
}
#endif

#endif /* WEAVE_OPENAPI_H */
