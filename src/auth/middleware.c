/*
 * The bearer JWT middleware (wv_auth_jwt): Authorization: Bearer <token>
 * (RFC 6750 2.1), verified by a wv_jwt_verifier, the claims left on the
 * request (wv_req_state_set) for wv_auth_claims and wv_auth_subject, and
 * the RFC 6750 3 challenges for every refusal.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth_internal.h"
#include "weave/rt.h"

/* the key of the claims in the request's state */
static const char claims_key;

typedef struct jwt_mw {
    wv_auth_scheme scheme; /* first: what wv_auth_scheme_of returns */
    wv_jwt_verifier *v;
    char *insufficient; /* the 403's WWW-Authenticate value */
} jwt_mw;

int wv__auth_refuse(wv_res *res, int status, const char *challenge, const char *detail)
{
    wv_res_header(res, "WWW-Authenticate", challenge);
    wv_json *j = wv_res_json_writer(res);
    wv_json_object_begin(j);
    wv_json_key(j, "detail");
    wv_json_string(j, detail);
    wv_json_object_end(j);
    return wv_res_json_send(res, status);
}

/* 401 invalid_token with reason as error_description (RFC 6750 3: no '"'
 * or '\', printable ASCII; the verifier's reasons are, and anything else is
 * replaced to be sure). */
static int invalid_token(wv_res *res, const char *reason)
{
    char desc[200];
    size_t i = 0;
    for (; reason[i] && i < sizeof desc - 1; i++) {
        unsigned char c = (unsigned char)reason[i];
        desc[i] = c < 0x20 || c > 0x7e || c == '"' || c == '\\' ? '?' : (char)c;
    }
    desc[i] = '\0';
    char challenge[260];
    snprintf(challenge, sizeof challenge,
             "Bearer error=\"invalid_token\", error_description=\"%s\"", desc);
    return wv__auth_refuse(res, 401, challenge, reason);
}

/* The token of an Authorization header in the Bearer scheme (any case,
 * RFC 9110 11.1), or .p NULL. */
static wv_str bearer_token(wv_str h)
{
    wv_str none = {0};
    if (h.n < 7 || !wv_str_ieq((wv_str){h.p, 6}, WV_STR("Bearer")) || h.p[6] != ' ')
        return none;
    size_t i = 7;
    while (i < h.n && h.p[i] == ' ')
        i++;
    size_t end = h.n;
    while (end > i && (h.p[end - 1] == ' ' || h.p[end - 1] == '\t'))
        end--;
    return (wv_str){h.p + i, end - i};
}

static int jwt_before(wv_req *req, wv_res *res, void *arg)
{
    const jwt_mw *m = arg;
    wv_str token = bearer_token(wv_req_header(req, "Authorization"));
    if (!token.p)
        return wv__auth_refuse(res, 401, "Bearer", "Not authenticated");
    if (token.n == 0)
        return invalid_token(res, "the bearer token is empty");
    wv_json_doc *doc;
    int rc = wv_jwt_verify(m->v, token.p, token.n, &doc);
    if (rc == -ENOMEM)
        return rc;
    if (rc < 0)
        return invalid_token(res, wv_errmsg());
    const wv_json_val *claims = wv_json_doc_root(doc);
    if (!wv_jwt_has_scopes(m->v, claims)) {
        wv_json_doc_free(doc);
        return wv__auth_refuse(res, 403, m->insufficient, "Not enough permissions");
    }
    rc = wv_req_state_set(req, &claims_key, doc, (void (*)(void *))wv_json_doc_free);
    return rc < 0 ? rc : WV_NEXT;
}

static void jwt_free(void *arg)
{
    jwt_mw *m = arg;
    wv_jwt_verifier_free(m->v);
    free(m->insufficient);
    free(m);
}

int wv_auth_jwt(wv_router *r, const wv_jwt_opts *opts)
{
    if (!r)
        return -EINVAL;
    jwt_mw *m = calloc(1, sizeof *m);
    if (!m)
        return -ENOMEM;
    int rc = wv_jwt_verifier_new(opts, &m->v);
    if (rc < 0) {
        free(m);
        return rc;
    }
    wv_buf b = {0};
    wv_buf_puts(&b, "Bearer error=\"insufficient_scope\", scope=\"");
    for (size_t i = 0; m->v->scopes && m->v->scopes[i]; i++)
        wv_buf_printf(&b, "%s%s", i ? " " : "", m->v->scopes[i]);
    if (wv_buf_append(&b, "\"", 2) < 0) {
        wv_buf_free(&b);
        jwt_free(m);
        return -ENOMEM;
    }
    m->insufficient = b.p;
    static const char *const no_scopes[] = {NULL};
    m->scheme = (wv_auth_scheme){
        .type = "http",
        .scheme = "bearer",
        .bearer_format = "JWT",
        .scopes = m->v->scopes ? (const char *const *)m->v->scopes : no_scopes,
    };
    return wv_router_use(
        r, &(wv_middleware){.name = "auth_jwt", .before = jwt_before, .arg = m, .free = jwt_free});
}

const wv_json_val *wv_auth_claims(const wv_req *req)
{
    return wv_json_doc_root(wv_req_state(req, &claims_key));
}

wv_str wv_auth_subject(const wv_req *req)
{
    wv_str s = {0};
    if (wv_json_as_string(wv_json_get(wv_auth_claims(req), "sub"), &s.p, &s.n) < 0)
        return (wv_str){0};
    return s;
}

const wv_auth_scheme *wv_auth_scheme_of(const wv_middleware *mw)
{
    if (!mw || !mw->arg)
        return NULL;
    if (mw->before == jwt_before || mw->before == wv__auth_api_key_before)
        return mw->arg; /* both keep the scheme first */
    return NULL;
}
