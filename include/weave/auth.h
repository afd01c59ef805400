/*
 * weave authentication: bearer JWTs (RFC 7519, signed as JWS compact
 * RFC 7515, algorithms of RFC 7518) and API keys, as middleware on a
 * router or a group (docs/auth.md):
 *
 *     wv_router *api = wv_router_group(r, "/api");
 *     wv_auth_jwt(api, &(wv_jwt_opts){
 *         .jwks_file = "/etc/svc/jwks.json",        // or .pem_file, .hmac_key
 *         .issuer = "https://auth.example", .audience = "svc",
 *         .scopes = (const char *const[]){"items:read", NULL}});
 *
 *     static int me(wv_req *req, wv_res *res)
 *     {
 *         wv_str sub = wv_auth_subject(req);     // the verified "sub"
 *         const wv_json_val *claims = wv_auth_claims(req);
 *         ...
 *     }
 *
 * A request without "Authorization: Bearer <token>" is answered 401 with
 * "WWW-Authenticate: Bearer" and {"detail":"Not authenticated"}; a token
 * that fails any check 401 with WWW-Authenticate: Bearer
 * error="invalid_token", error_description="..." (RFC 6750) and the same
 * reason as {"detail":"..."}; a valid token without a required scope 403
 * with error="insufficient_scope" and {"detail":"Not enough permissions"}.
 * The handler never runs for any of them.
 *
 * What is checked, in order: the token's size (before anything is parsed),
 * three base64url parts in canonical unpadded form, the header as strict
 * JSON with "alg" among those allowed ("none" never is) and no "crit", a
 * key of the algorithm's own type (an HMAC secret is never used for an
 * RS/PS/ES token, nor a public key for an HS one: algorithm confusion),
 * chosen by "kid" in a JWKS, the signature; then the payload as a strict
 * JSON object, exp and nbf (and iat when present) against the clock with
 * the leeway, iss and aud when configured (a token with an aud is refused
 * when no audience is configured, RFC 7519 4.1.3), the required claims,
 * and the scopes. Keys embedded in the token (jwk, jku, x5u, x5c) are
 * never used.
 *
 * Threading: the install functions and wv_jwt_verifier_new run before the
 * server starts; a verifier is read-only afterwards and may be used by
 * every shard at once.
 */
#ifndef WEAVE_AUTH_H
#define WEAVE_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/buf.h"
#include "weave/http.h"
#include "weave/json.h"
#include "weave/str.h"

#ifdef __cplusplus
extern "C" {
#endif

/* -------------------------------------------------------------- algorithms */

/* The JWS algorithms (RFC 7518 3.1), as bits for wv_jwt_opts.algs. */
typedef enum wv_jwt_alg {
    WV_JWT_HS256 = 1u << 0, /* HMAC with SHA-2 */
    WV_JWT_HS384 = 1u << 1,
    WV_JWT_HS512 = 1u << 2,
    WV_JWT_RS256 = 1u << 3, /* RSASSA-PKCS1-v1_5 */
    WV_JWT_RS384 = 1u << 4,
    WV_JWT_RS512 = 1u << 5,
    WV_JWT_PS256 = 1u << 6, /* RSASSA-PSS, MGF1 and salt of the hash's size */
    WV_JWT_PS384 = 1u << 7,
    WV_JWT_PS512 = 1u << 8,
    WV_JWT_ES256 = 1u << 9, /* ECDSA on P-256, P-384, P-521 */
    WV_JWT_ES384 = 1u << 10,
    WV_JWT_ES512 = 1u << 11,
} wv_jwt_alg;

#define WV_JWT_HS_ALL (WV_JWT_HS256 | WV_JWT_HS384 | WV_JWT_HS512)
#define WV_JWT_RS_ALL                                                                              \
    (WV_JWT_RS256 | WV_JWT_RS384 | WV_JWT_RS512 | WV_JWT_PS256 | WV_JWT_PS384 | WV_JWT_PS512)
#define WV_JWT_ES_ALL (WV_JWT_ES256 | WV_JWT_ES384 | WV_JWT_ES512)

/* "HS256" for WV_JWT_HS256 (one bit), NULL for anything else. */
const char *wv_jwt_alg_name(wv_jwt_alg alg);

/* The algorithm named so ("RS256"), or 0 ("none", unknown, n not exact). */
wv_jwt_alg wv_jwt_alg_from_name(const char *name, size_t n);

/* ---------------------------------------------------------------- verifier */

#define WV_JWT_MAX_TOKEN 8192 /* the default of wv_jwt_opts.max_token */

typedef struct wv_jwt_opts {
    /* Keys: any of the three, together. A token is checked with the keys
     * of its algorithm's type only; if it names a "kid", with the keys of
     * that kid and those that have none (the HMAC and PEM keys, JWKS keys
     * without a kid), else with all of them. */
    const void *hmac_key;      /* HS* secret, at least 32 bytes (RFC 7518 3.2) */
    size_t hmac_key_len;       /* 0 with hmac_key set: strlen(hmac_key) */
    const char *hmac_key_file; /* or the secret from a file (one trailing newline dropped) */
    const char *pem_file;      /* an RSA (>= 2048 bits) or EC public key, or a
                                * certificate, in PEM */
    const char *jwks_file;     /* an RFC 7517 JWK Set: kty RSA (n, e), EC (crv, x, y),
                                * oct (k); keys of another kty are skipped (RFC 7517 5),
                                * a set with no usable key is an error */
    /* the algorithms accepted; 0 = every one the configured keys can
     * verify (HS* with an HMAC key, RS* and PS* with RSA, ES* by curve) */
    unsigned algs;
    const char *issuer;                 /* iss must equal it; NULL = not checked */
    const char *audience;               /* aud (a string or an array) must hold it; NULL = a token
                                         * with an aud is refused */
    const char *const *required_claims; /* NULL-terminated: claims that must be present */
    const char *const *scopes;          /* NULL-terminated: each must be in the token's
                                         * "scope" (space-separated) or "scp" (array or
                                         * string); missing: 403 */
    int64_t leeway_s;                   /* clock skew allowed on exp, nbf and iat; 0 = none */
    size_t max_token;                   /* longer tokens are refused unread; 0 = WV_JWT_MAX_TOKEN */
} wv_jwt_opts;

typedef struct wv_jwt_verifier wv_jwt_verifier;

/*
 * A verifier for opts (copied; keys read and checked now). 0, or -EINVAL
 * (no key, a key too short or of the wrong kind, a JWKS that is not one,
 * algs naming none the keys can verify; wv_errmsg says which), -ENOENT /
 * -EACCES (a key file), -ENOMEM.
 */
int wv_jwt_verifier_new(const wv_jwt_opts *opts, wv_jwt_verifier **out);
void wv_jwt_verifier_free(wv_jwt_verifier *v);

/*
 * Verify token[0..n) now: 0 with *claims the payload (free it with
 * wv_json_doc_free), or -EACCES with wv_errmsg() the reason ("the token
 * has expired"), which never contains '"' or '\' and may be sent to the
 * client; *claims is then NULL. Scopes are not checked here (see
 * wv_jwt_has_scopes). Any thread; it does not suspend.
 */
int wv_jwt_verify(const wv_jwt_verifier *v, const char *token, size_t n, wv_json_doc **claims);

/* Whether claims grant every scope of the verifier's opts.scopes. */
bool wv_jwt_has_scopes(const wv_jwt_verifier *v, const wv_json_val *claims);

/* ------------------------------------------------------------------ signing */

/*
 * Sign claims_json[0..n) (a JSON object, checked strictly) as a compact
 * JWS with header {"alg":...,"typ":"JWT"} (and "kid" when given),
 * appended to out. key: the HMAC secret for HS* (at least 32 bytes), or
 * a private key in PEM (RSA of at least 2048 bits for RS* and PS*, EC on the
 * algorithm's curve for ES*). 0, -EINVAL (bad claims, wrong key for alg;
 * wv_errmsg says), -ENOMEM. Does not add iat or exp: put them in claims.
 */
int wv_jwt_sign(wv_jwt_alg alg, const void *key, size_t key_len, const char *kid,
                const char *claims_json, size_t n, wv_buf *out);

/* --------------------------------------------------------------- middleware */

/* Install a JWT verifier on r (see the top of this file). 0, or
 * wv_jwt_verifier_new's errors. opts is copied. */
int wv_auth_jwt(wv_router *r, const wv_jwt_opts *opts);

/* In a handler behind wv_auth_jwt: the verified claims (an object), valid
 * until the request is done; NULL when no token was verified. */
const wv_json_val *wv_auth_claims(const wv_req *req);

/* The verified "sub" claim, or an empty wv_str (.p NULL) when there is
 * none, or it is not a string. Same lifetime. */
wv_str wv_auth_subject(const wv_req *req);

/* ----------------------------------------------------------------- API keys */

typedef struct wv_api_key {
    const char *name; /* what handlers and logs see (wv_auth_key_name) */
    const char *key;  /* the secret */
} wv_api_key;

typedef struct wv_api_key_opts {
    const char *header;     /* NULL = "X-API-Key" (set query alone: "" = no header) */
    const char *query;      /* a query parameter also read, e.g. "api_key"; NULL = none */
    const wv_api_key *keys; /* nkeys of them */
    size_t nkeys;
    const char *keys_file; /* and/or a file: one key a line, "name key" or just
                            * "key" (named "line N"); '#' starts a comment */
} wv_api_key_opts;

/*
 * Install an API key check on r: the key from the header (else the query
 * parameter) must be one of the keys. Keys are kept as SHA-256 digests and
 * a presented key's digest is compared with every one of them with
 * CRYPTO_memcmp, so the time taken says nothing of which key or how much
 * of it matched. Missing: 401 {"detail":"Not authenticated"}; unknown:
 * 401 {"detail":"Invalid API key"}; both with WWW-Authenticate: APIKey
 * header="X-API-Key" (docs/auth.md says why 401 and not FastAPI's 403).
 * 0, -EINVAL (no keys, an empty key, a duplicate), -ENOENT / -EACCES (the
 * file), -ENOMEM. opts and the keys are copied.
 */
int wv_auth_api_key(wv_router *r, const wv_api_key_opts *opts);

/* In a handler behind wv_auth_api_key: the matched key's name, or an
 * empty wv_str (.p NULL). Valid while the router lives. */
wv_str wv_auth_key_name(const wv_req *req);

/* ------------------------------------------------------ what routes require */

/*
 * What an auth middleware requires, for an OpenAPI generator's
 * securitySchemes: type "http" with scheme "bearer" and bearer_format
 * "JWT", or type "apiKey" with in ("header" or "query") and name.
 */
typedef struct wv_auth_scheme {
    const char *type;          /* "http" or "apiKey" */
    const char *scheme;        /* "bearer" (http), else NULL */
    const char *bearer_format; /* "JWT" (http), else NULL */
    const char *in;            /* "header" or "query" (apiKey), else NULL */
    const char *name;          /* the header or parameter (apiKey), else NULL */
    const char *query_name;    /* apiKey read from a query parameter too, else NULL */
    const char *const *scopes; /* NULL-terminated required scopes (may be empty) */
} wv_auth_scheme;

/* The scheme of a middleware installed by wv_auth_jwt or wv_auth_api_key
 * (recognised by its `before`), else NULL. Valid while its router lives. */
const wv_auth_scheme *wv_auth_scheme_of(const wv_middleware *mw);

#ifdef __cplusplus
}
#endif

#endif /* WEAVE_AUTH_H */
