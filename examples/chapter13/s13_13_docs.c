/*
 * §13.13 Best practices, the API described: FastAPI serves every app's
 * description at /openapi.json and Swagger UI at /docs; weave's
 * wv_openapi_serve does the same from the routes' wv_route_info
 * (docs/openapi.md). The page's files are built by scripts/build_web.sh
 * into --web-dir's docs/ (swagger-ui-dist from npm, no CDN); without them
 * only /openapi.json is served. Called last, once every route is added.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <weave/openapi.h>

#include "chapter13.h"

void s13_13_docs(wv_app *app)
{
    wv_router *r = wv_app_router(app);
    /* the page's static files (s13_5_2_frontend.c) are not operations */
    static const wv_route_info hidden = {.hidden = true};
    wv_route_doc(r, "GET", "/{path...}", &hidden);

    char dir[4096];
    snprintf(dir, sizeof dir, "%s/docs", wv_app_str(app, "web-dir"));
    wv_openapi_opts o = {
        .info = {.title = "weave chapter 13",
                 .version = "0.1.0",
                 .description = "The book chapter's FastAPI service, ported to C with weave."},
        .docs_dir = dir,
    };
    int rc = wv_openapi_serve(r, &o);
    if (rc == -ENOENT) {
        fprintf(stderr, "chapter13: %s; serving /openapi.json without /docs\n", wv_errmsg());
        o.docs_dir = NULL;
        rc = wv_openapi_serve(r, &o);
    }
    if (rc < 0) {
        fprintf(stderr, "chapter13: /openapi.json: %s\n", wv_errmsg());
        exit(2);
    }
}
