/*
 * The weave side of the api suite (bench/run_api.sh): the model of
 * bench/api/model.h behind two routes, as bench/api/fastapi_app.py declares
 * them for FastAPI:
 *
 *   POST /validate      the JSON body decoded and validated into the C
 *                       struct (wv_schema_decode_body), then encoded back
 *                       (wv_schema_encode): 200 with the echo, or FastAPI's
 *                       422 {"detail": [...]} for an invalid body or one
 *                       that is not JSON
 *   POST /jwt/validate  the same behind an HS256 bearer JWT (wv_auth_jwt on
 *                       the /jwt group): 401 without a valid token
 *
 * PORT (default 8080) and WEAVE_SHARDS set where and how wide it runs;
 * JWT_KEY_FILE names the HMAC secret (at least 32 bytes; one trailing
 * newline dropped), the one PyJWT signs the suite's token with.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include <weave/auth.h>
#include <weave/http.h>
#include <weave/schema.h>

#include "api/model.h"

static int validate(wv_req *req, wv_res *res)
{
    bench_api_item item;
    wv_schema_errors errs = {0};
    int rc = wv_schema_decode_body(req, &bench_api_item_model, &item, &errs);
    if (rc == -EINVAL || rc == -EBADMSG) {
        rc = wv_res_unprocessable(res, &errs); /* FastAPI answers both with 422 */
    } else if (rc == 0) {
        wv_json *j = wv_res_json_writer(res);
        rc = wv_schema_encode(&bench_api_item_model, &item, j);
        if (rc == 0)
            rc = wv_res_json_send(res, 200);
    }
    wv_schema_errors_free(&errs);
    return rc;
}

static int serve(void *arg)
{
    (void)arg;
    const char *p = getenv("PORT");
    const char *key_file = getenv("JWT_KEY_FILE");
    if (!key_file || !*key_file) {
        fprintf(stderr, "bench_api_server: JWT_KEY_FILE (the HMAC secret's file) is not set\n");
        return 1;
    }
    if (wv_schema_check(&bench_api_item_model) < 0) {
        fprintf(stderr, "bench_api_server: %s\n", wv_errmsg());
        return 1;
    }
    wv_router *r = wv_router_new();
    wv_post(r, "/validate", validate);
    wv_router *jwt = wv_router_group(r, "/jwt");
    if (!jwt ||
        wv_auth_jwt(jwt, &(wv_jwt_opts){.hmac_key_file = key_file, .algs = WV_JWT_HS256}) < 0) {
        fprintf(stderr, "bench_api_server: jwt: %s\n", wv_errmsg());
        wv_router_free(r);
        return 1;
    }
    wv_post(jwt, "/validate", validate);
    int rc =
        wv_http_serve(r, &(wv_http_opts){.port = p ? atoi(p) : 8080, .max_connections = 20000});
    if (rc < 0)
        fprintf(stderr, "bench_api_server: %s\n", wv_errmsg());
    wv_router_free(r);
    return rc < 0 ? 1 : 0;
}

int main(void)
{
    return wv_main(NULL, serve, NULL);
}
