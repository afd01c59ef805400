/*
 * Private structures of src/auth: keys (keys.c), the JWS verifier and
 * signer (jwt.c), the middleware (middleware.c, api_key.c).
 */
#ifndef WEAVE_AUTH_INTERNAL_H
#define WEAVE_AUTH_INTERNAL_H

#include <openssl/evp.h>

#include "weave/auth.h"

#pragma GCC visibility push(hidden)

typedef enum key_type { KEY_OCT, KEY_RSA, KEY_EC } key_type;

/* One verification key: an HMAC secret or a public key. */
typedef struct auth_key {
    key_type type;
    int ec_alg;            /* KEY_EC: the one ES* algorithm of its curve */
    char *kid;             /* NULL: none */
    unsigned alg;          /* the JWK's "alg" (one bit), 0 when it names none */
    unsigned char *secret; /* KEY_OCT */
    size_t secret_len;
    EVP_PKEY *pkey; /* KEY_RSA, KEY_EC */
    bool from_jwks;
} auth_key;

struct wv_jwt_verifier {
    wv_jwt_opts o; /* strings below are our copies */
    auth_key *keys;
    int nkeys;
    bool have_jwks;
    char **scopes; /* NULL-terminated copy */
    char **required;
};

/* The smallest HMAC secret accepted (RFC 7518 3.2: at least the hash's
 * size; 256 bits for HS256). */
enum { HMAC_MIN_KEY = 32, RSA_MIN_BITS = 2048 };

/* keys.c: add keys to v from opts. 0 or -errno with wv_errmsg. */
int wv__auth_keys_load(wv_jwt_verifier *v, const wv_jwt_opts *o);
void wv__auth_key_free(auth_key *k);
/* Parse a JWK Set from text[0..n) into v's keys (unusable keys skipped). */
int wv__auth_jwks_parse(wv_jwt_verifier *v, const char *text, size_t n);
/* Read a whole file (NUL-terminated; *n without the NUL). At most max
 * bytes. 0 or -errno with wv_errmsg. */
int wv__auth_read_file(const char *path, size_t max, char **out, size_t *n);

/* jwt.c: base64url without padding, canonical (the unused low bits of the
 * last character are zero): the decoded length, or -1. out holds
 * n * 3 / 4 + 1 bytes. */
long wv__b64url_decode(const char *in, size_t n, unsigned char *out);
size_t wv__b64url_encode(const void *in, size_t n, char *out);

/* wv_jwt_verify at a given time (seconds since the epoch), for tests. */
int wv__jwt_verify_at(const wv_jwt_verifier *v, const char *token, size_t n, double now,
                      wv_json_doc **claims);

/* middleware.c: answer status with WWW-Authenticate: challenge and
 * {"detail": detail}. */
int wv__auth_refuse(wv_res *res, int status, const char *challenge, const char *detail);

/* api_key.c: the API key middleware's before, for wv_auth_scheme_of. */
int wv__auth_api_key_before(wv_req *req, wv_res *res, void *arg);

/* The digest and family of one algorithm bit. */
const EVP_MD *wv__jwt_alg_md(unsigned alg);

#pragma GCC visibility pop

#endif
