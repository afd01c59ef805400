/*
 * Verification keys: an HMAC secret (bytes or a file), a public key or
 * certificate in PEM, and JWK Sets (RFC 7517) with RSA, EC and oct keys.
 * Every key gets its type here, once, and the verifier only ever pairs an
 * algorithm with a key of its own type: that is what stops algorithm
 * confusion (an RSA public key's PEM bytes used as an HMAC secret).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "auth/auth_internal.h"
#include "weave/rt.h"

enum { KEY_FILE_MAX = 1 << 20 };

int wv__auth_read_file(const char *path, size_t max, char **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return wv_fail(-errno, "%s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        close(fd);
        return wv_fail(-EINVAL, "%s: not a regular file of at most %zu bytes", path, max);
    }
    size_t cap = (size_t)st.st_size;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    size_t got = 0;
    while (got < cap) {
        ssize_t r = read(fd, buf + got, cap - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    buf[got] = '\0';
    *out = buf;
    *n = got;
    return 0;
}

void wv__auth_key_free(auth_key *k)
{
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    free(k->kid);
    EVP_PKEY_free(k->pkey);
    memset(k, 0, sizeof *k);
}

static int add_key(wv_jwt_verifier *v, const auth_key *k)
{
    auth_key *keys = realloc(v->keys, (size_t)(v->nkeys + 1) * sizeof *keys);
    if (!keys)
        return -ENOMEM;
    v->keys = keys;
    v->keys[v->nkeys++] = *k;
    return 0;
}

static int add_secret(wv_jwt_verifier *v, const void *p, size_t n, const char *kid, unsigned alg,
                      const char *what)
{
    if (n < HMAC_MIN_KEY)
        return wv_fail(-EINVAL, "%s: an HMAC key must have at least %d bytes, this has %zu", what,
                       HMAC_MIN_KEY, n);
    auth_key k = {.type = KEY_OCT, .alg = alg, .secret_len = n};
    k.secret = malloc(n);
    k.kid = kid ? strdup(kid) : NULL;
    if (!k.secret || (kid && !k.kid)) {
        free(k.secret);
        free(k.kid);
        return -ENOMEM;
    }
    memcpy(k.secret, p, n);
    int rc = add_key(v, &k);
    if (rc < 0)
        wv__auth_key_free(&k);
    return rc;
}

/* Type a public key: RSA of RSA_MIN_BITS or more, or EC on P-256/384/521.
 * Takes pkey (freed on failure). */
static int add_pkey(wv_jwt_verifier *v, EVP_PKEY *pkey, const char *kid, unsigned alg,
                    bool from_jwks, const char *what)
{
    auth_key k = {.pkey = pkey, .alg = alg, .from_jwks = from_jwks};
    int rc = 0;
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        k.type = KEY_RSA;
        if (EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS)
            rc = wv_fail(-EINVAL, "%s: an RSA key must have at least %d bits, this has %d", what,
                         RSA_MIN_BITS, EVP_PKEY_get_bits(pkey));
        else if (alg && !(alg & WV_JWT_RS_ALL))
            rc = wv_fail(-EINVAL, "%s: an RSA key for %s", what, wv_jwt_alg_name(alg));
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        k.type = KEY_EC;
        char group[64];
        size_t gn = 0;
        if (EVP_PKEY_get_group_name(pkey, group, sizeof group, &gn) != 1)
            group[0] = '\0';
        if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
            k.ec_alg = WV_JWT_ES256;
        else if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
            k.ec_alg = WV_JWT_ES384;
        else if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0)
            k.ec_alg = WV_JWT_ES512;
        else
            rc = wv_fail(-EINVAL, "%s: EC curve %s is not one of P-256, P-384, P-521", what,
                         group[0] ? group : "(unnamed)");
        if (rc == 0 && alg && alg != (unsigned)k.ec_alg)
            rc = wv_fail(-EINVAL, "%s: alg %s does not match the key's curve", what,
                         wv_jwt_alg_name(alg));
    } else {
        rc = wv_fail(-EINVAL, "%s: neither an RSA nor an EC key", what);
    }
    if (rc == 0 && kid && !(k.kid = strdup(kid)))
        rc = -ENOMEM;
    if (rc == 0)
        rc = add_key(v, &k);
    if (rc < 0)
        wv__auth_key_free(&k);
    ERR_clear_error();
    return rc;
}

static int load_pem(wv_jwt_verifier *v, const char *path)
{
    char *text;
    size_t n;
    int rc = wv__auth_read_file(path, KEY_FILE_MAX, &text, &n);
    if (rc < 0)
        return rc;
    BIO *b = BIO_new_mem_buf(text, (int)n);
    EVP_PKEY *pkey = b ? PEM_read_bio_PUBKEY(b, NULL, NULL, NULL) : NULL;
    if (b && !pkey) {
        BIO_free(b);
        b = BIO_new_mem_buf(text, (int)n);
        X509 *cert = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        if (cert) {
            pkey = X509_get_pubkey(cert);
            X509_free(cert);
        }
    }
    BIO_free(b);
    free(text);
    ERR_clear_error();
    if (!pkey)
        return wv_fail(-EINVAL, "%s: no PUBLIC KEY or CERTIFICATE in PEM", path);
    return add_pkey(v, pkey, NULL, 0, false, path);
}

/* --------------------------------------------------------------------- JWKS */

/* A base64url member of a JWK into a malloc'ed buffer; -1 when missing or
 * not canonical base64url. */
static long jwk_bytes(const wv_json_val *jwk, const char *name, unsigned char **out)
{
    const char *s;
    size_t n;
    *out = NULL;
    if (wv_json_as_string(wv_json_get(jwk, name), &s, &n) < 0 || n == 0)
        return -1;
    unsigned char *b = malloc(n * 3 / 4 + 1);
    if (!b)
        return -1;
    long len = wv__b64url_decode(s, n, b);
    if (len <= 0) {
        free(b);
        return -1;
    }
    *out = b;
    return len;
}

static EVP_PKEY *jwk_rsa(const wv_json_val *jwk, const char **why)
{
    unsigned char *n = NULL, *e = NULL;
    long nn = jwk_bytes(jwk, "n", &n), en = jwk_bytes(jwk, "e", &e);
    EVP_PKEY *pkey = NULL;
    *why = "n and e must be base64url";
    if (nn > 0 && en > 0 && en <= 8) {
        BIGNUM *bn = BN_bin2bn(n, (int)nn, NULL), *be = BN_bin2bn(e, (int)en, NULL);
        OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
        OSSL_PARAM *params = NULL;
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
        if (bn && be && bld && ctx && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) &&
            (params = OSSL_PARAM_BLD_to_param(bld)) && EVP_PKEY_fromdata_init(ctx) == 1 &&
            EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1)
            *why = NULL;
        else
            *why = "not a valid RSA public key";
        OSSL_PARAM_free(params);
        OSSL_PARAM_BLD_free(bld);
        EVP_PKEY_CTX_free(ctx);
        BN_free(bn);
        BN_free(be);
    }
    free(n);
    free(e);
    return pkey;
}

static EVP_PKEY *jwk_ec(const wv_json_val *jwk, const char **why)
{
    const char *crv;
    size_t size;
    const char *group;
    *why = "crv must be P-256, P-384 or P-521";
    if (wv_json_as_string(wv_json_get(jwk, "crv"), &crv, NULL) < 0)
        return NULL;
    if (strcmp(crv, "P-256") == 0)
        size = 32, group = "prime256v1";
    else if (strcmp(crv, "P-384") == 0)
        size = 48, group = "secp384r1";
    else if (strcmp(crv, "P-521") == 0)
        size = 66, group = "secp521r1";
    else
        return NULL;
    unsigned char *x = NULL, *y = NULL;
    long xn = jwk_bytes(jwk, "x", &x), yn = jwk_bytes(jwk, "y", &y);
    EVP_PKEY *pkey = NULL;
    *why = "x and y must be base64url of the curve's size";
    if (xn == (long)size && yn == (long)size) {
        unsigned char point[1 + 2 * 66];
        point[0] = 0x04; /* uncompressed */
        memcpy(point + 1, x, size);
        memcpy(point + 1 + size, y, size);
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0),
            OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * size),
            OSSL_PARAM_construct_end(),
        };
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
        if (ctx && EVP_PKEY_fromdata_init(ctx) == 1 &&
            EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) == 1) {
            /* the point must be on the curve */
            EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
            if (!check || EVP_PKEY_public_check(check) != 1) {
                EVP_PKEY_free(pkey);
                pkey = NULL;
            }
            EVP_PKEY_CTX_free(check);
        }
        EVP_PKEY_CTX_free(ctx);
        *why = pkey ? NULL : "not a point of the curve";
    }
    free(x);
    free(y);
    return pkey;
}

int wv__auth_jwks_parse(wv_jwt_verifier *v, const char *text, size_t n)
{
    wv_json_doc *doc;
    int rc = wv_json_parse_with(text, n, &(wv_json_parse_opts){.max_depth = 8}, &doc);
    if (rc < 0)
        return wv_fail(rc, "JWKS: %s", wv_errmsg());
    const wv_json_val *keys = wv_json_get(wv_json_doc_root(doc), "keys");
    long count = wv_json_array_len(keys);
    if (count < 0) {
        wv_json_doc_free(doc);
        return wv_fail(-EINVAL, "JWKS: no \"keys\" array");
    }
    int usable = 0;
    for (long i = 0; i < count && rc == 0; i++) {
        const wv_json_val *jwk = wv_json_array_at(keys, (size_t)i);
        const char *kty = NULL, *kid = NULL, *use = NULL, *alg_name = NULL;
        size_t alg_len = 0;
        const char *why = NULL;
        if (wv_json_type_of(jwk) != WV_JSON_OBJECT ||
            wv_json_as_string(wv_json_get(jwk, "kty"), &kty, NULL) < 0) {
            why = "not an object with a kty";
        } else if (wv_json_get(jwk, "kid") &&
                   wv_json_as_string(wv_json_get(jwk, "kid"), &kid, NULL) < 0) {
            why = "kid is not a string";
        } else if (wv_json_get(jwk, "use") &&
                   (wv_json_as_string(wv_json_get(jwk, "use"), &use, NULL) < 0 ||
                    strcmp(use, "sig") != 0)) {
            why = "use is not \"sig\"";
        }
        unsigned alg = 0;
        if (!why && wv_json_get(jwk, "alg")) {
            if (wv_json_as_string(wv_json_get(jwk, "alg"), &alg_name, &alg_len) < 0 ||
                !(alg = wv_jwt_alg_from_name(alg_name, alg_len)))
                why = "alg is not a JWS algorithm weave knows";
        }
        if (!why && strcmp(kty, "oct") == 0) {
            unsigned char *k;
            long kn = jwk_bytes(jwk, "k", &k);
            if (kn <= 0) {
                why = "k must be base64url";
            } else if (alg && !(alg & WV_JWT_HS_ALL)) {
                why = "an oct key for another algorithm than HS*";
            } else {
                rc = add_secret(v, k, (size_t)kn, kid, alg, "oct");
                if (rc == -EINVAL) {
                    why = wv_errmsg();
                    rc = 0;
                } else if (rc == 0) {
                    usable++;
                    v->keys[v->nkeys - 1].from_jwks = true;
                }
            }
            if (k)
                OPENSSL_cleanse(k, (size_t)kn);
            free(k);
        } else if (!why && (strcmp(kty, "RSA") == 0 || strcmp(kty, "EC") == 0)) {
            EVP_PKEY *pkey = kty[0] == 'R' ? jwk_rsa(jwk, &why) : jwk_ec(jwk, &why);
            ERR_clear_error();
            if (pkey) {
                rc = add_pkey(v, pkey, kid, alg, true, kty);
                if (rc == -EINVAL) {
                    why = wv_errmsg();
                    rc = 0;
                } else if (rc == 0) {
                    usable++;
                }
            }
        } else if (!why) {
            why = "kty is not RSA, EC or oct"; /* OKP and others: skipped, RFC 7517 5 */
        }
        if (why && rc == 0)
            wv_warn("JWKS: key %ld%s%s%s skipped: %s", i, kid ? " (kid " : "", kid ? kid : "",
                    kid ? ")" : "", why);
    }
    wv_json_doc_free(doc);
    if (rc < 0)
        return rc;
    if (usable == 0)
        return wv_fail(-EINVAL, "JWKS: no usable key (RSA, EC P-256/384/521, oct)");
    v->have_jwks = true;
    return 0;
}

int wv__auth_keys_load(wv_jwt_verifier *v, const wv_jwt_opts *o)
{
    int rc = 0;
    if (o->hmac_key) {
        size_t n = o->hmac_key_len ? o->hmac_key_len : strlen(o->hmac_key);
        rc = add_secret(v, o->hmac_key, n, NULL, 0, "hmac_key");
    }
    if (rc == 0 && o->hmac_key_file) {
        char *text;
        size_t n;
        rc = wv__auth_read_file(o->hmac_key_file, KEY_FILE_MAX, &text, &n);
        if (rc == 0) {
            if (n && text[n - 1] == '\n')
                n--;
            if (n && text[n - 1] == '\r')
                n--;
            rc = add_secret(v, text, n, NULL, 0, o->hmac_key_file);
            OPENSSL_cleanse(text, n);
            free(text);
        }
    }
    if (rc == 0 && o->pem_file)
        rc = load_pem(v, o->pem_file);
    if (rc == 0 && o->jwks_file) {
        char *text;
        size_t n;
        rc = wv__auth_read_file(o->jwks_file, KEY_FILE_MAX, &text, &n);
        if (rc == 0) {
            rc = wv__auth_jwks_parse(v, text, n);
            if (rc < 0)
                rc = wv_fail(rc, "%s: %s", o->jwks_file, wv_errmsg());
            free(text);
        }
    }
    if (rc == 0 && v->nkeys == 0)
        rc = wv_fail(-EINVAL, "JWT: no key (hmac_key, hmac_key_file, pem_file or jwks_file)");
    return rc;
}
