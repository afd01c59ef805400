/*
 * JWS compact tokens (RFC 7515) carrying JWT claims (RFC 7519): the
 * verifier and the signer, with OpenSSL 3 for HMAC, RSA (PKCS#1 v1.5 and
 * PSS) and ECDSA. A JWS ECDSA signature is r||s, each left-padded to the
 * curve's size (RFC 7518 3.4); OpenSSL wants DER, so both ways convert.
 *
 * The order of the checks is the point: the size first, the header next
 * (strict JSON, an algorithm allowed, a key of that algorithm's type), the
 * signature over the bytes as received, and only then the payload is
 * decoded and parsed, so nothing unauthenticated goes past the header.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "auth/auth_internal.h"
#include "weave/rt.h"

/* ---------------------------------------------------------------- algorithms */

static const struct {
    const char *name;
    unsigned bit;
} algs[] = {
    {"HS256", WV_JWT_HS256}, {"HS384", WV_JWT_HS384}, {"HS512", WV_JWT_HS512},
    {"RS256", WV_JWT_RS256}, {"RS384", WV_JWT_RS384}, {"RS512", WV_JWT_RS512},
    {"PS256", WV_JWT_PS256}, {"PS384", WV_JWT_PS384}, {"PS512", WV_JWT_PS512},
    {"ES256", WV_JWT_ES256}, {"ES384", WV_JWT_ES384}, {"ES512", WV_JWT_ES512},
};

const char *wv_jwt_alg_name(wv_jwt_alg alg)
{
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++)
        if (algs[i].bit == (unsigned)alg)
            return algs[i].name;
    return NULL;
}

wv_jwt_alg wv_jwt_alg_from_name(const char *name, size_t n)
{
    for (size_t i = 0; name && i < sizeof algs / sizeof algs[0]; i++)
        if (n == 5 && memcmp(name, algs[i].name, 5) == 0)
            return (wv_jwt_alg)algs[i].bit;
    return (wv_jwt_alg)0;
}

const EVP_MD *wv__jwt_alg_md(unsigned alg)
{
    if (alg & (WV_JWT_HS256 | WV_JWT_RS256 | WV_JWT_PS256 | WV_JWT_ES256))
        return EVP_sha256();
    if (alg & (WV_JWT_HS384 | WV_JWT_RS384 | WV_JWT_PS384 | WV_JWT_ES384))
        return EVP_sha384();
    return EVP_sha512();
}

/* The size of r and s in an ES* signature. */
static size_t ec_coord(unsigned alg)
{
    return alg == WV_JWT_ES256 ? 32 : alg == WV_JWT_ES384 ? 48 : 66;
}

/* ----------------------------------------------------------------- base64url */

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

long wv__b64url_decode(const char *in, size_t n, unsigned char *out)
{
    if (n % 4 == 1)
        return -1; /* no base64 text has this length */
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1; /* padding, '+', '/', whitespace included */
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    /* canonical: the bits left over are zero, so one token has one text
     * (a flipped low bit of the last character changes the token) */
    if (bits && (acc & ((1u << bits) - 1)))
        return -1;
    return (long)o;
}

size_t wv__b64url_encode(const void *in, size_t n, char *out)
{
    const unsigned char *p = in;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
        out[o++] = b64url[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        out[o++] = b64url[v >> 18];
        out[o++] = b64url[(v >> 12) & 63];
        out[o++] = b64url[(v >> 6) & 63];
    }
    return o;
}

/* ------------------------------------------------------------------ verifier */

static void free_list(char **l)
{
    for (size_t i = 0; l && l[i]; i++)
        free(l[i]);
    free(l);
}

static int copy_list(const char *const *in, char ***out)
{
    *out = NULL;
    if (!in)
        return 0;
    size_t n = 0;
    while (in[n])
        n++;
    char **l = calloc(n + 1, sizeof *l);
    if (!l)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if (!(l[i] = strdup(in[i]))) {
            free_list(l);
            return -ENOMEM;
        }
    }
    *out = l;
    return 0;
}

void wv_jwt_verifier_free(wv_jwt_verifier *v)
{
    if (!v)
        return;
    for (int i = 0; i < v->nkeys; i++)
        wv__auth_key_free(&v->keys[i]);
    free(v->keys);
    free((char *)v->o.issuer);
    free((char *)v->o.audience);
    free_list(v->scopes);
    free_list(v->required);
    free(v);
}

int wv_jwt_verifier_new(const wv_jwt_opts *opts, wv_jwt_verifier **out)
{
    *out = NULL;
    if (!opts)
        return wv_fail(-EINVAL, "JWT: no options");
    if (opts->leeway_s < 0)
        return wv_fail(-EINVAL, "JWT: leeway_s must not be negative");
    if (opts->algs & ~(unsigned)(WV_JWT_HS_ALL | WV_JWT_RS_ALL | WV_JWT_ES_ALL))
        return wv_fail(-EINVAL, "JWT: algs holds bits that are no algorithm");
    wv_jwt_verifier *v = calloc(1, sizeof *v);
    if (!v)
        return -ENOMEM;
    v->o = *opts;
    v->o.hmac_key = NULL; /* copied into the keys; the caller's may go */
    v->o.hmac_key_file = v->o.pem_file = v->o.jwks_file = NULL;
    v->o.issuer = opts->issuer ? strdup(opts->issuer) : NULL;
    v->o.audience = opts->audience ? strdup(opts->audience) : NULL;
    if (!v->o.max_token)
        v->o.max_token = WV_JWT_MAX_TOKEN;
    int rc = 0;
    if ((opts->issuer && !v->o.issuer) || (opts->audience && !v->o.audience) ||
        copy_list(opts->scopes, &v->scopes) < 0 || copy_list(opts->required_claims, &v->required))
        rc = -ENOMEM;
    v->o.scopes = (const char *const *)v->scopes;
    v->o.required_claims = (const char *const *)v->required;
    for (size_t i = 0; rc == 0 && v->scopes && v->scopes[i]; i++)
        if (!v->scopes[i][0] || strpbrk(v->scopes[i], " \"\\"))
            rc = wv_fail(-EINVAL, "JWT: a scope may not be empty or hold a space, '\"' or '\\'");
    if (rc == 0)
        rc = wv__auth_keys_load(v, opts);
    if (rc == 0) {
        /* what the keys can verify */
        unsigned can = 0;
        for (int i = 0; i < v->nkeys; i++) {
            const auth_key *k = &v->keys[i];
            can |= k->type == KEY_OCT   ? WV_JWT_HS_ALL
                   : k->type == KEY_RSA ? WV_JWT_RS_ALL
                                        : (unsigned)k->ec_alg;
        }
        if (!v->o.algs)
            v->o.algs = can;
        else if (!(v->o.algs & can))
            rc = wv_fail(-EINVAL, "JWT: none of the algorithms in algs has a key");
    }
    if (rc < 0) {
        wv_jwt_verifier_free(v);
        return rc;
    }
    *out = v;
    return 0;
}

/* A token's text in a message: at most 40 characters, anything outside
 * [A-Za-z0-9._:/+-] as '?', so a reason fits in a quoted-string. */
static const char *safe(const char *s, size_t n, char buf[static 48])
{
    size_t i = 0;
    for (; i < n && i < 40; i++) {
        unsigned char c = (unsigned char)s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  strchr("._:/+-", c);
        buf[i] = ok && c ? (char)c : '?';
    }
    if (n > 40)
        memcpy(buf + i, "...", 4);
    else
        buf[i] = '\0';
    return buf;
}

static bool verify_hmac(const auth_key *k, const EVP_MD *md, const char *in, size_t n,
                        const unsigned char *sig, size_t sn)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    if (!HMAC(md, k->secret, (int)k->secret_len, (const unsigned char *)in, n, mac, &ml))
        return false;
    return sn == ml && CRYPTO_memcmp(mac, sig, ml) == 0;
}

static bool verify_pkey(const auth_key *k, unsigned alg, const EVP_MD *md, const char *in, size_t n,
                        const unsigned char *sig, size_t sn)
{
    unsigned char *der = NULL;
    int dn = 0;
    if (alg & WV_JWT_ES_ALL) {
        size_t c = ec_coord(alg);
        if (sn != 2 * c)
            return false;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, (int)c, NULL), *s = BN_bin2bn(sig + c, (int)c, NULL);
        if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
            r = s = NULL; /* es owns them */
            dn = i2d_ECDSA_SIG(es, &der);
        }
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        if (dn <= 0)
            return false;
        sig = der;
        sn = (size_t)dn;
    }
    bool ok = false;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    if (ctx && EVP_DigestVerifyInit(ctx, &pctx, md, NULL, k->pkey) == 1) {
        int pad = 1;
        if (alg & (WV_JWT_PS256 | WV_JWT_PS384 | WV_JWT_PS512))
            pad = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
                  EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
                  EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) > 0;
        else if (alg & WV_JWT_RS_ALL)
            pad = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) > 0;
        ok = pad && EVP_DigestVerify(ctx, sig, sn, (const unsigned char *)in, n) == 1;
    }
    EVP_MD_CTX_free(ctx);
    OPENSSL_free(der);
    ERR_clear_error(); /* a failed check leaves nothing for the next TLS call */
    return ok;
}

/* Does key k fit a token of algorithm alg and key id kid (.p NULL: none)? */
static bool key_fits(const auth_key *k, unsigned alg, wv_str kid)
{
    if (k->alg && k->alg != alg)
        return false;
    if (kid.p && k->kid && !wv_str_eq_cstr(kid, k->kid))
        return false;
    if (alg & WV_JWT_HS_ALL)
        return k->type == KEY_OCT;
    if (alg & WV_JWT_RS_ALL)
        return k->type == KEY_RSA;
    return k->type == KEY_EC && (unsigned)k->ec_alg == alg;
}

/* A NumericDate claim: 0 (absent: *present false), or -1 for a value that
 * is not a number. */
static int numeric_date(const wv_json_val *claims, const char *name, double *out, bool *present)
{
    const wv_json_val *c = wv_json_get(claims, name);
    *present = c != NULL;
    if (!c)
        return 0;
    return wv_json_as_double(c, out) == 0 && isfinite(*out) ? 0 : -1;
}

static int check_claims(const wv_jwt_verifier *v, const wv_json_val *claims, double now)
{
    double t, leeway = (double)v->o.leeway_s;
    bool present;
    if (numeric_date(claims, "exp", &t, &present) < 0)
        return wv_fail(-EACCES, "exp is not a number");
    if (present && t <= now - leeway)
        return wv_fail(-EACCES, "the token has expired");
    if (numeric_date(claims, "nbf", &t, &present) < 0)
        return wv_fail(-EACCES, "nbf is not a number");
    if (present && t > now + leeway)
        return wv_fail(-EACCES, "the token is not valid yet (nbf)");
    if (numeric_date(claims, "iat", &t, &present) < 0)
        return wv_fail(-EACCES, "iat is not a number");
    if (present && t > now + leeway)
        return wv_fail(-EACCES, "the token was issued in the future (iat)");

    const char *s;
    if (v->o.issuer) {
        const wv_json_val *iss = wv_json_get(claims, "iss");
        if (!iss)
            return wv_fail(-EACCES, "the token has no iss claim");
        if (wv_json_as_string(iss, &s, NULL) < 0 || strcmp(s, v->o.issuer) != 0)
            return wv_fail(-EACCES, "the token's issuer is not the expected one");
    }
    const wv_json_val *aud = wv_json_get(claims, "aud");
    if (v->o.audience) {
        bool ok = false;
        if (!aud)
            return wv_fail(-EACCES, "the token has no aud claim");
        if (wv_json_type_of(aud) == WV_JSON_ARRAY) {
            for (long i = 0; !ok && i < wv_json_array_len(aud); i++)
                ok = wv_json_as_string(wv_json_array_at(aud, (size_t)i), &s, NULL) == 0 &&
                     strcmp(s, v->o.audience) == 0;
        } else {
            ok = wv_json_as_string(aud, &s, NULL) == 0 && strcmp(s, v->o.audience) == 0;
        }
        if (!ok)
            return wv_fail(-EACCES, "the token is not meant for this audience");
    } else if (aud) {
        /* RFC 7519 4.1.3: a principal that is not in aud must refuse it */
        return wv_fail(-EACCES, "the token has an audience and this service expects none");
    }
    for (size_t i = 0; v->required && v->required[i]; i++)
        if (!wv_json_get(claims, v->required[i]))
            return wv_fail(-EACCES, "the token has no %s claim", v->required[i]);
    return 0;
}

int wv__jwt_verify_at(const wv_jwt_verifier *v, const char *token, size_t n, double now,
                      wv_json_doc **claims)
{
    *claims = NULL;
    if (n > v->o.max_token)
        return wv_fail(-EACCES, "the token is longer than %zu bytes", v->o.max_token);
    const char *d1 = token ? memchr(token, '.', n) : NULL;
    const char *d2 = d1 ? memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - token)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - token)))
        return wv_fail(-EACCES, "not a JWS compact token (three parts separated by dots)");
    size_t hn = (size_t)(d1 - token), pn = (size_t)(d2 - d1 - 1), sn = n - (size_t)(d2 + 1 - token);
    if (!hn || !pn)
        return wv_fail(-EACCES, "not a JWS compact token (an empty part)");

    /* one buffer for the decoded header, signature and payload */
    unsigned char *buf = malloc(n * 3 / 4 + 4);
    if (!buf)
        return -ENOMEM;
    int rc = 0;
    wv_json_doc *hdr = NULL, *doc = NULL;
    char tmp[48];
    long hlen = wv__b64url_decode(token, hn, buf);
    if (hlen < 0) {
        rc = wv_fail(-EACCES, "the header is not base64url");
        goto out;
    }
    if (wv_json_parse_with((const char *)buf, (size_t)hlen, &(wv_json_parse_opts){.max_depth = 8},
                           &hdr) < 0 ||
        wv_json_type_of(wv_json_doc_root(hdr)) != WV_JSON_OBJECT) {
        rc = wv_fail(-EACCES, "the header is not a JSON object");
        goto out;
    }
    const wv_json_val *h = wv_json_doc_root(hdr);
    const char *alg_name;
    size_t alg_len;
    if (wv_json_as_string(wv_json_get(h, "alg"), &alg_name, &alg_len) < 0) {
        rc = wv_fail(-EACCES, "the header has no alg");
        goto out;
    }
    unsigned alg = wv_jwt_alg_from_name(alg_name, alg_len);
    if (!alg) {
        rc = alg_len == 4 && memcmp(alg_name, "none", 4) == 0
                 ? wv_fail(-EACCES, "unsigned tokens (alg none) are not accepted")
                 : wv_fail(-EACCES, "unsupported algorithm %s", safe(alg_name, alg_len, tmp));
        goto out;
    }
    if (!(alg & v->o.algs)) {
        rc = wv_fail(-EACCES, "algorithm %s is not allowed", alg_name);
        goto out;
    }
    if (wv_json_get(h, "crit")) {
        rc = wv_fail(-EACCES, "crit header parameters are not supported");
        goto out;
    }
    wv_str kid = {0};
    const wv_json_val *kv = wv_json_get(h, "kid");
    if (kv && wv_json_as_string(kv, &kid.p, &kid.n) < 0) {
        rc = wv_fail(-EACCES, "kid is not a string");
        goto out;
    }

    long slen = wv__b64url_decode(d2 + 1, sn, buf);
    if (slen <= 0) {
        rc = wv_fail(-EACCES, sn ? "the signature is not base64url" : "the token is not signed");
        goto out;
    }
    const EVP_MD *md = wv__jwt_alg_md(alg);
    size_t in_n = (size_t)(d2 - token);
    bool tried = false, ok = false;
    for (int i = 0; i < v->nkeys && !ok; i++) {
        const auth_key *k = &v->keys[i];
        if (!key_fits(k, alg, kid))
            continue;
        tried = true;
        ok = k->type == KEY_OCT ? verify_hmac(k, md, token, in_n, buf, (size_t)slen)
                                : verify_pkey(k, alg, md, token, in_n, buf, (size_t)slen);
    }
    if (!tried) {
        rc = kid.p ? wv_fail(-EACCES, "no %s key with kid %s", alg_name, safe(kid.p, kid.n, tmp))
                   : wv_fail(-EACCES, "no key for algorithm %s", alg_name);
        goto out;
    }
    if (!ok) {
        rc = wv_fail(-EACCES, "signature verification failed");
        goto out;
    }

    long plen = wv__b64url_decode(d1 + 1, pn, buf);
    if (plen < 0) {
        rc = wv_fail(-EACCES, "the payload is not base64url");
        goto out;
    }
    if (wv_json_parse_with((const char *)buf, (size_t)plen, &(wv_json_parse_opts){.max_depth = 32},
                           &doc) < 0 ||
        wv_json_type_of(wv_json_doc_root(doc)) != WV_JSON_OBJECT) {
        rc = wv_fail(-EACCES, "the payload is not a JSON object");
        goto out;
    }
    rc = check_claims(v, wv_json_doc_root(doc), now);
out:
    free(buf);
    wv_json_doc_free(hdr);
    if (rc == 0)
        *claims = doc;
    else
        wv_json_doc_free(doc);
    return rc;
}

int wv_jwt_verify(const wv_jwt_verifier *v, const char *token, size_t n, wv_json_doc **claims)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return wv__jwt_verify_at(v, token, n, (double)ts.tv_sec + ts.tv_nsec / 1e9, claims);
}

/* Is scope (NUL-terminated) one of the space-separated words of s[0..n)? */
static bool in_words(const char *s, size_t n, const char *scope)
{
    size_t len = strlen(scope);
    for (size_t i = 0; i < n;) {
        while (i < n && s[i] == ' ')
            i++;
        size_t j = i;
        while (j < n && s[j] != ' ')
            j++;
        if (j - i == len && memcmp(s + i, scope, len) == 0)
            return true;
        i = j;
    }
    return false;
}

static bool has_scope(const wv_json_val *claims, const char *scope)
{
    static const char *const names[] = {"scope", "scp"};
    for (size_t k = 0; k < 2; k++) {
        const wv_json_val *c = wv_json_get(claims, names[k]);
        const char *s;
        size_t n;
        if (wv_json_as_string(c, &s, &n) == 0 && in_words(s, n, scope))
            return true;
        for (long i = 0; i < wv_json_array_len(c); i++)
            if (wv_json_as_string(wv_json_array_at(c, (size_t)i), &s, NULL) == 0 &&
                strcmp(s, scope) == 0)
                return true;
    }
    return false;
}

bool wv_jwt_has_scopes(const wv_jwt_verifier *v, const wv_json_val *claims)
{
    for (size_t i = 0; v->scopes && v->scopes[i]; i++)
        if (!has_scope(claims, v->scopes[i]))
            return false;
    return true;
}

/* -------------------------------------------------------------------- signer */

static EVP_PKEY *read_private(const void *pem, size_t n)
{
    BIO *b = BIO_new_mem_buf(pem, (int)n);
    EVP_PKEY *k = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
    BIO_free(b);
    return k;
}

/* The signature of in[0..n) into sig (at least 1024 bytes): its length, or
 * -errno with wv_errmsg. */
static long sign_bytes(unsigned alg, const void *key, size_t key_len, const char *in, size_t n,
                       unsigned char *sig, size_t cap)
{
    const EVP_MD *md = wv__jwt_alg_md(alg);
    if (alg & WV_JWT_HS_ALL) {
        if (key_len < HMAC_MIN_KEY)
            return wv_fail(-EINVAL, "JWT: an HMAC key must have at least %d bytes", HMAC_MIN_KEY);
        unsigned int ml = 0;
        if (!HMAC(md, key, (int)key_len, (const unsigned char *)in, n, sig, &ml))
            return wv_fail(-EINVAL, "JWT: HMAC failed");
        return ml;
    }
    EVP_PKEY *pkey = read_private(key, key_len);
    if (!pkey)
        return wv_fail(-EINVAL, "JWT: the key is not a private key in PEM");
    long rc = 0;
    if (alg & WV_JWT_RS_ALL) {
        if (!EVP_PKEY_is_a(pkey, "RSA") || EVP_PKEY_get_bits(pkey) < RSA_MIN_BITS)
            rc = wv_fail(-EINVAL, "JWT: %s needs an RSA key of at least %d bits",
                         wv_jwt_alg_name(alg), RSA_MIN_BITS);
    } else {
        char group[64];
        size_t gn;
        static const char *const groups[] = {"prime256v1", "secp384r1", "secp521r1"};
        int idx = alg == WV_JWT_ES256 ? 0 : alg == WV_JWT_ES384 ? 1 : 2;
        if (!EVP_PKEY_is_a(pkey, "EC") ||
            EVP_PKEY_get_group_name(pkey, group, sizeof group, &gn) != 1 ||
            strcmp(group, groups[idx]) != 0)
            rc = wv_fail(-EINVAL, "JWT: %s needs an EC key on %s", wv_jwt_alg_name(alg),
                         groups[idx]);
    }
    EVP_MD_CTX *ctx = rc == 0 ? EVP_MD_CTX_new() : NULL;
    EVP_PKEY_CTX *pctx = NULL;
    size_t sl = cap;
    if (rc == 0) {
        bool good = ctx && EVP_DigestSignInit(ctx, &pctx, md, NULL, pkey) == 1;
        if (good && (alg & (WV_JWT_PS256 | WV_JWT_PS384 | WV_JWT_PS512)))
            good = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
                   EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
                   EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) > 0;
        good = good && EVP_DigestSign(ctx, sig, &sl, (const unsigned char *)in, n) == 1;
        rc = good ? (long)sl : wv_fail(-EINVAL, "JWT: signing failed");
    }
    if (rc > 0 && (alg & WV_JWT_ES_ALL)) {
        /* DER to r||s */
        const unsigned char *p = sig;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, rc);
        size_t c = ec_coord(alg);
        const BIGNUM *r, *s;
        if (es) {
            ECDSA_SIG_get0(es, &r, &s);
            if (BN_bn2binpad(r, sig, (int)c) == (int)c &&
                BN_bn2binpad(s, sig + c, (int)c) == (int)c)
                rc = (long)(2 * c);
            else
                rc = wv_fail(-EINVAL, "JWT: ECDSA signature conversion failed");
        } else {
            rc = wv_fail(-EINVAL, "JWT: ECDSA signature conversion failed");
        }
        ECDSA_SIG_free(es);
    }
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    ERR_clear_error();
    return rc;
}

int wv_jwt_sign(wv_jwt_alg alg, const void *key, size_t key_len, const char *kid,
                const char *claims_json, size_t n, wv_buf *out)
{
    const char *name = wv_jwt_alg_name(alg);
    if (!name || !key || !claims_json || !out)
        return wv_fail(-EINVAL, "JWT: sign needs one algorithm, a key, claims and out");
    wv_json_doc *doc;
    if (wv_json_parse(claims_json, n, &doc) < 0)
        return wv_fail(-EINVAL, "JWT: claims: %s", wv_errmsg());
    bool object = wv_json_type_of(wv_json_doc_root(doc)) == WV_JSON_OBJECT;
    wv_json_doc_free(doc);
    if (!object)
        return wv_fail(-EINVAL, "JWT: the claims must be a JSON object");

    wv_buf hdr = {0};
    wv_json j;
    wv_json_init(&j, &hdr);
    wv_json_object_begin(&j);
    wv_json_key(&j, "alg");
    wv_json_string(&j, name);
    wv_json_key(&j, "typ");
    wv_json_string(&j, "JWT");
    if (kid) {
        wv_json_key(&j, "kid");
        wv_json_string(&j, kid);
    }
    wv_json_object_end(&j);
    int rc = wv_json_finish(&j);
    size_t start = out->n;
    size_t need = (hdr.n + n) * 4 / 3 + 8 + 1400; /* both parts, dots, a signature */
    if (rc == 0)
        rc = wv_buf_reserve(out, need);
    if (rc == 0) {
        char *p = out->p + out->n;
        size_t o = wv__b64url_encode(hdr.p, hdr.n, p);
        p[o++] = '.';
        o += wv__b64url_encode(claims_json, n, p + o);
        unsigned char sig[1024];
        long sl = sign_bytes(alg, key, key_len, p, o, sig, sizeof sig);
        if (sl < 0) {
            rc = (int)sl;
        } else {
            p[o++] = '.';
            o += wv__b64url_encode(sig, (size_t)sl, p + o);
            out->n = start + o;
        }
    }
    wv_buf_free(&hdr);
    return rc;
}
