/*
 * The server tests/integration/test_auth.py drives: weave's auth
 * middleware on real routes, configured from the environment with the key
 * files the test made (PORT, 0 = any; "listening on PORT" is printed once
 * serving):
 *
 *   HMAC_KEY_FILE, RSA_PUB_FILE, JWKS_FILE   verification keys
 *   ISSUER, AUDIENCE                          checked on /jwt
 *   API_KEYS_FILE                             keys of /key
 *   SIGN_HS_KEY_FILE, SIGN_RSA_KEY_FILE, SIGN_EC_KEY_FILE   for POST /token/{alg}
 *
 * Routes:
 *   GET  /public           no auth
 *   GET  /jwt/me           any key, iss and aud checked, sub required; echoes
 *                          the subject and the claims the handler saw
 *   GET  /scoped/items     HMAC key, scopes items:read and items:write
 *   GET  /rsa/me           the RSA public key alone, HS256 and RS256 allowed
 *                          (the algorithm-confusion target)
 *   GET  /small/me         HMAC key, max_token 512
 *   GET  /key/whoami       API key in X-API-Key or ?api_key=; echoes its name
 *   POST /token/{alg}      the body's claims signed with wv_jwt_sign
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weave/auth.h"
#include "weave/http.h"
#include "weave/rt.h"

static char *read_all(const char *path, size_t *n)
{
    *n = 0;
    if (!path)
        return NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 16);
    *n = buf ? fread(buf, 1, (1 << 16) - 1, f) : 0;
    fclose(f);
    if (buf)
        buf[*n] = '\0';
    return buf;
}

static char *sign_hs, *sign_rsa, *sign_ec;
static size_t sign_hs_n, sign_rsa_n, sign_ec_n;

static int public_route(wv_req *req, wv_res *res)
{
    (void)req;
    return wv_res_json(res, 200, "{\"public\":true}");
}

/* a claims value copied into the response */
static void copy(wv_json *w, const wv_json_val *v)
{
    const char *s;
    size_t n;
    switch (wv_json_type_of(v)) {
    case WV_JSON_OBJECT:
        wv_json_object_begin(w);
        for (size_t i = 0;; i++) {
            const wv_json_val *m = wv_json_object_at(v, i, &s, &n);
            if (!m)
                break;
            wv_json_keyn(w, s, n);
            copy(w, m);
        }
        wv_json_object_end(w);
        break;
    case WV_JSON_ARRAY:
        wv_json_array_begin(w);
        for (long i = 0; i < wv_json_array_len(v); i++)
            copy(w, wv_json_array_at(v, (size_t)i));
        wv_json_array_end(w);
        break;
    case WV_JSON_STRING:
        wv_json_as_string(v, &s, &n);
        wv_json_stringn(w, s, n);
        break;
    case WV_JSON_NUMBER:
        wv_json_as_number_text(v, &s, &n);
        wv_json_raw(w, s, n);
        break;
    case WV_JSON_BOOL: {
        bool b = false;
        wv_json_as_bool(v, &b);
        wv_json_bool(w, b);
        break;
    }
    default:
        wv_json_null(w);
    }
}

static int me(wv_req *req, wv_res *res)
{
    wv_str sub = wv_auth_subject(req);
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "sub");
    if (sub.p)
        wv_json_stringn(j, sub.p, sub.n);
    else
        wv_json_null(j);
    wv_json_key(j, "claims");
    if (wv_auth_claims(req))
        copy(j, wv_auth_claims(req));
    else
        wv_json_null(j);
    wv_json_object_end(j);
    return wv_res_json_send(res, 200);
}

static int whoami(wv_req *req, wv_res *res)
{
    wv_str name = wv_auth_key_name(req);
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "key");
    wv_json_stringn(j, name.p, name.n);
    wv_json_key(j, "claims");
    wv_json_bool(j, wv_auth_claims(req) != NULL);
    wv_json_object_end(j);
    return wv_res_json_send(res, 200);
}

static int token(wv_req *req, wv_res *res)
{
    wv_str alg_name, body;
    int rc = wv_req_param(req, "alg", &alg_name);
    if (rc < 0)
        return rc;
    wv_jwt_alg alg = wv_jwt_alg_from_name(alg_name.p, alg_name.n);
    if (!alg)
        return wv_fail(-EINVAL, "unknown alg");
    if ((rc = wv_req_body(req, &body)) < 0)
        return rc;
    const char *key = alg & WV_JWT_HS_ALL ? sign_hs : alg & WV_JWT_RS_ALL ? sign_rsa : sign_ec;
    size_t kn = alg & WV_JWT_HS_ALL ? sign_hs_n : alg & WV_JWT_RS_ALL ? sign_rsa_n : sign_ec_n;
    if (!key)
        return wv_fail(-ENOENT, "no signing key for that alg");
    wv_str kid;
    char kidbuf[64] = "";
    if (wv_req_query_param(req, "kid", &kid) == 0)
        snprintf(kidbuf, sizeof kidbuf, "%.*s", (int)kid.n, kid.p);
    wv_buf out = {0};
    rc = wv_jwt_sign(alg, key, kn, kidbuf[0] ? kidbuf : NULL, body.p, body.n, &out);
    if (rc < 0) {
        wv_buf_free(&out);
        return rc;
    }
    rc = wv_res_send(res, 200, "application/jwt", out.p, out.n);
    wv_buf_free(&out);
    return rc;
}

typedef struct announce {
    wv_event *ready;
    int *port;
} announce;

static int announce_port(void *arg)
{
    announce *a = arg;
    if (wv_event_wait(a->ready) == 0)
        printf("listening on %d\n", *a->port);
    return 0;
}

#define TRY(expr)                                                                                  \
    do {                                                                                           \
        if ((expr) < 0) {                                                                          \
            fprintf(stderr, "auth_test_server: %s: %s\n", #expr, wv_errmsg());                     \
            wv_router_free(r);                                                                     \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

static int serve(void *arg)
{
    (void)arg;
    wv_router *r = wv_router_new();
    wv_get(r, "/public", public_route);
    wv_post(r, "/token/{alg}", token);

    wv_router *jwt = wv_router_group(r, "/jwt");
    TRY(wv_auth_jwt(jwt, &(wv_jwt_opts){.hmac_key_file = getenv("HMAC_KEY_FILE"),
                                        .pem_file = getenv("RSA_PUB_FILE"),
                                        .jwks_file = getenv("JWKS_FILE"),
                                        .issuer = getenv("ISSUER"),
                                        .audience = getenv("AUDIENCE"),
                                        .required_claims = (const char *const[]){"sub", NULL},
                                        .leeway_s = 5}));
    wv_get(jwt, "/me", me);

    wv_router *scoped = wv_router_group(r, "/scoped");
    TRY(wv_auth_jwt(scoped, &(wv_jwt_opts){.hmac_key_file = getenv("HMAC_KEY_FILE"),
                                           .scopes = (const char *const[]){"items:read",
                                                                           "items:write", NULL}}));
    wv_get(scoped, "/items", me);

    wv_router *rsa = wv_router_group(r, "/rsa");
    TRY(wv_auth_jwt(rsa, &(wv_jwt_opts){.pem_file = getenv("RSA_PUB_FILE"),
                                        .algs = WV_JWT_HS256 | WV_JWT_RS256}));
    wv_get(rsa, "/me", me);

    wv_router *small = wv_router_group(r, "/small");
    TRY(wv_auth_jwt(small,
                    &(wv_jwt_opts){.hmac_key_file = getenv("HMAC_KEY_FILE"), .max_token = 512}));
    wv_get(small, "/me", me);

    wv_router *key = wv_router_group(r, "/key");
    TRY(wv_auth_api_key(
        key, &(wv_api_key_opts){.query = "api_key",
                                .keys = (wv_api_key[]){{"inline", "inline-key-0123456789"}},
                                .nkeys = 1,
                                .keys_file = getenv("API_KEYS_FILE")}));
    wv_get(key, "/whoami", whoami);

    sign_hs = read_all(getenv("SIGN_HS_KEY_FILE"), &sign_hs_n);
    sign_rsa = read_all(getenv("SIGN_RSA_KEY_FILE"), &sign_rsa_n);
    sign_ec = read_all(getenv("SIGN_EC_KEY_FILE"), &sign_ec_n);

    int port = 0;
    const char *p = getenv("PORT");
    wv_event ready = {0};
    wv_http_opts o = {.port = p ? atoi(p) : 0, .bound_port = &port, .ready = &ready};
    announce a = {&ready, &port};
    wv_spawn(announce_port, &a, NULL);
    int rc = wv_http_serve(r, &o);
    if (rc < 0)
        fprintf(stderr, "auth_test_server: %s\n", wv_errmsg());
    wv_router_free(r);
    free(sign_hs);
    free(sign_rsa);
    free(sign_ec);
    return rc < 0 ? 1 : 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    return wv_main(NULL, serve, NULL);
}
