/*
 * JWT verification and signing (src/auth/jwt.c, keys.c) and the install
 * functions' option checks: the RFC 7515 appendix A examples (A.1 HS256,
 * which is also RFC 7519 3.1's example, A.2 RS256, A.3 ES256, A.4
 * ES512), every refusal (base64url, JSON, algorithms, none, algorithm
 * confusion, the time claims, iss, aud, required claims, a flipped bit,
 * truncation, size, kid, JWKS contents), and sign/verify round trips for
 * every algorithm with keys made here. The HTTP side (statuses, headers,
 * claims in handlers, API keys) is tests/integration/test_auth.py.
 */
#include "harness.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "auth/auth_internal.h"
#include "http/http_internal.h"
#include "weave/auth.h"

/* ----------------------------------------------------------------- helpers */

static char tmpdir[64];

static const char *tmp_path(const char *name)
{
    static char paths[8][160];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 160, "%s/%s", tmpdir, name);
    return p;
}

static const char *write_tmp(const char *name, const void *data, size_t n)
{
    const char *path = tmp_path(name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, n, f), n);
    fclose(f);
    return path;
}

static char *b64(const void *p, size_t n)
{
    char *s = malloc(n * 4 / 3 + 4);
    s[wv__b64url_encode(p, n, s)] = '\0';
    return s;
}

static const char *b64s(const char *s)
{
    static char bufs[4][4096];
    static int next;
    char *o = bufs[next++ % 4];
    o[wv__b64url_encode(s, strlen(s), o)] = '\0';
    return o;
}

/* the HMAC key of most tests */
static const char hkey[] = "0123456789abcdef0123456789abcdef-test-key";

/* header_b64 "." payload_b64 "." HS256(hkey) over them, whatever they hold */
static char *hs_token(const char *header_b64, const char *payload_b64)
{
    size_t n = strlen(header_b64) + strlen(payload_b64) + 1;
    char *in = malloc(n + 1);
    snprintf(in, n + 1, "%s.%s", header_b64, payload_b64);
    unsigned char mac[32];
    unsigned ml;
    HMAC(EVP_sha256(), hkey, (int)strlen(hkey), (unsigned char *)in, n, mac, &ml);
    char *sig = b64(mac, ml);
    char *tok = malloc(n + strlen(sig) + 2);
    sprintf(tok, "%s.%s", in, sig);
    free(in);
    free(sig);
    return tok;
}

static char *hs_claims(const char *claims_json)
{
    return hs_token(b64s("{\"alg\":\"HS256\",\"typ\":\"JWT\"}"), b64s(claims_json));
}

static wv_jwt_verifier *verifier(const wv_jwt_opts *o)
{
    wv_jwt_verifier *v = NULL;
    int rc = wv_jwt_verifier_new(o, &v);
    if (rc < 0)
        fprintf(stderr, "verifier: %d %s\n", rc, wv_errmsg());
    assert_int_equal(rc, 0);
    return v;
}

static wv_jwt_verifier *hs_verifier(void)
{
    return verifier(&(wv_jwt_opts){.hmac_key = hkey});
}

/* verify at `now`: 0, or -EACCES with the reason that must contain `why` */
static void expect_at(const wv_jwt_verifier *v, const char *tok, double now, const char *why)
{
    wv_json_doc *claims = (wv_json_doc *)1;
    int rc = wv__jwt_verify_at(v, tok, tok ? strlen(tok) : 0, now, &claims);
    if (!why) {
        if (rc != 0)
            fprintf(stderr, "refused: %s\n  %s\n", wv_errmsg(), tok);
        assert_int_equal(rc, 0);
        assert_non_null(claims);
        assert_int_equal(wv_json_type_of(wv_json_doc_root(claims)), WV_JSON_OBJECT);
        wv_json_doc_free(claims);
        return;
    }
    if (rc == 0 || !strstr(wv_errmsg(), why))
        fprintf(stderr, "want \"%s\", got rc %d \"%s\"\n  %s\n", why, rc, rc ? wv_errmsg() : "",
                tok);
    assert_int_equal(rc, -EACCES);
    assert_null(claims);
    assert_non_null(strstr(wv_errmsg(), why));
    /* the reason goes into a quoted-string as is */
    assert_null(strpbrk(wv_errmsg(), "\"\\"));
}

static double now_s(void)
{
    return (double)time(NULL);
}

static void expect(const wv_jwt_verifier *v, const char *tok, const char *why)
{
    expect_at(v, tok, now_s(), why);
}

/* keys made once for the run */
static char *rsa_pem, *rsa_pub_pem, *ec256_pem, *ec256_pub_pem, *ec384_pem, *ec521_pem,
    *rsa1024_pem;

static char *pem_of(EVP_PKEY *k, bool private)
{
    BIO *b = BIO_new(BIO_s_mem());
    if (private)
        PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
    else
        PEM_write_bio_PUBKEY(b, k);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    char *s = strndup(p, (size_t)n);
    BIO_free(b);
    return s;
}

static int setup(void **state)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/weave-auth-XXXXXX");
    assert_non_null(mkdtemp(tmpdir));
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    EVP_PKEY *ec256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
    EVP_PKEY *ec521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    assert_true(rsa && small && ec256 && ec384 && ec521);
    rsa_pem = pem_of(rsa, true);
    rsa_pub_pem = pem_of(rsa, false);
    rsa1024_pem = pem_of(small, false);
    ec256_pem = pem_of(ec256, true);
    ec256_pub_pem = pem_of(ec256, false);
    ec384_pem = pem_of(ec384, true);
    ec521_pem = pem_of(ec521, true);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(small);
    EVP_PKEY_free(ec256);
    EVP_PKEY_free(ec384);
    EVP_PKEY_free(ec521);
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    assert_int_equal(system(cmd), 0);
    free(rsa_pem);
    free(rsa_pub_pem);
    free(rsa1024_pem);
    free(ec256_pem);
    free(ec256_pub_pem);
    free(ec384_pem);
    free(ec521_pem);
    return 0;
}

/* sign claims with alg and a key; the token (malloc'ed) */
static char *sign(wv_jwt_alg alg, const char *key, const char *kid, const char *claims)
{
    wv_buf out = {0};
    size_t kn = strlen(key);
    int rc = wv_jwt_sign(alg, key, kn, kid, claims, strlen(claims), &out);
    if (rc < 0)
        fprintf(stderr, "sign: %s\n", wv_errmsg());
    assert_int_equal(rc, 0);
    assert_int_equal(wv_buf_append(&out, "", 1), 0);
    return out.p;
}

/* -------------------------------------------------------- RFC 7515 appendix A */

static const char rfc_payload[] = "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt"
                                  "cGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
static const double rfc_exp = 1300819380;

/* A.1, also RFC 7519 3.1's example JWT */
static const char a1_token[] = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9."
                               "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGx"
                               "lLmNvbS9pc19yb290Ijp0cnVlfQ."
                               "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
static const char a1_jwks[] =
    "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-"
    "1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}]}";

static void test_rfc7515_a1_hs256_verifies_and_its_claims_read_back(void **state)
{
    wv_jwt_verifier *v = verifier(&(wv_jwt_opts){
        .jwks_file = write_tmp("a1.json", a1_jwks, strlen(a1_jwks)), .issuer = "joe"});
    wv_json_doc *claims;
    assert_int_equal(wv__jwt_verify_at(v, a1_token, strlen(a1_token), rfc_exp - 60, &claims), 0);
    const wv_json_val *c = wv_json_doc_root(claims);
    const char *iss;
    bool root;
    assert_int_equal(wv_json_get_string(c, "iss", &iss, NULL), 0);
    assert_string_equal(iss, "joe");
    assert_int_equal(wv_json_get_bool(c, "http://example.com/is_root", &root), 0);
    assert_true(root);
    wv_json_doc_free(claims);
    /* its exp is 2011: refused today, and at exp itself */
    expect(v, a1_token, "expired");
    expect_at(v, a1_token, rfc_exp, "expired");
    wv_jwt_verifier_free(v);
}

static void test_leeway_moves_the_expiry_by_exactly_its_seconds(void **state)
{
    wv_jwt_verifier *v = verifier(&(wv_jwt_opts){
        .jwks_file = write_tmp("a1.json", a1_jwks, strlen(a1_jwks)), .leeway_s = 10});
    expect_at(v, a1_token, rfc_exp + 9.5, NULL);
    expect_at(v, a1_token, rfc_exp + 10, "expired");
    wv_jwt_verifier_free(v);
    wv_jwt_verifier *bad;
    assert_int_equal(wv_jwt_verifier_new(&(wv_jwt_opts){.hmac_key = hkey, .leeway_s = -1}, &bad),
                     -EINVAL);
}

static const char a2_n[] = "ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4"
                           "qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2j"
                           "Z47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7W"
                           "TBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK"
                           "-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ";
static const char a2_sig[] =
    "cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm"
    "4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--"
    "f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383Lc"
    "OLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUi"
    "pUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw";

static void test_rfc7515_a2_rs256_verifies_with_its_jwk(void **state)
{
    char jwks[1024], tok[1024];
    snprintf(jwks, sizeof jwks, "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"AQAB\"}]}", a2_n);
    snprintf(tok, sizeof tok, "eyJhbGciOiJSUzI1NiJ9.%s.%s", rfc_payload, a2_sig);
    wv_jwt_verifier *v =
        verifier(&(wv_jwt_opts){.jwks_file = write_tmp("a2.json", jwks, strlen(jwks))});
    expect_at(v, tok, rfc_exp - 1, NULL);
    /* the same signature over another payload */
    snprintf(tok, sizeof tok, "eyJhbGciOiJSUzI1NiJ9.%s.%s", b64s("{\"iss\":\"joe\"}"), a2_sig);
    expect_at(v, tok, rfc_exp - 1, "signature verification failed");
    wv_jwt_verifier_free(v);
}

static const char a3_token[] =
    "eyJhbGciOiJFUzI1NiJ9."
    "eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
    "."
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";
static const char a3_jwks[] = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a3\","
                              "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                              "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";

static void test_rfc7515_a3_es256_raw_r_s_signature_verifies(void **state)
{
    wv_jwt_verifier *v =
        verifier(&(wv_jwt_opts){.jwks_file = write_tmp("a3.json", a3_jwks, strlen(a3_jwks))});
    expect_at(v, a3_token, rfc_exp - 1, NULL);
    /* the signature in DER, as OpenSSL would have it: refused */
    unsigned char raw[64];
    const char *sig = strrchr(a3_token, '.') + 1;
    assert_int_equal(wv__b64url_decode(sig, strlen(sig), raw), 64);
    ECDSA_SIG *es = ECDSA_SIG_new();
    ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
    unsigned char *der = NULL;
    int dn = i2d_ECDSA_SIG(es, &der);
    char *dsig = b64(der, (size_t)dn);
    char tok[512];
    snprintf(tok, sizeof tok, "eyJhbGciOiJFUzI1NiJ9.%s.%s", rfc_payload, dsig);
    expect_at(v, tok, rfc_exp - 1, "signature verification failed");
    free(dsig);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    wv_jwt_verifier_free(v);
}

static void test_rfc7515_a4_es512_signature_verifies_before_the_payload_is_read(void **state)
{
    static const char jwks[] = "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-521\","
                               "\"x\":\"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_"
                               "NjFZ6OvLFV1jSfS9tsz4qUxcWceqw"
                               "QGk\",\"y\":\"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-"
                               "x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubm"
                               "f63e3kyMj2\"}]}";
    static const char sig[] =
        "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI"
        "-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO"
        "7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";
    wv_jwt_verifier *v =
        verifier(&(wv_jwt_opts){.jwks_file = write_tmp("a4.json", jwks, strlen(jwks))});
    char tok[512];
    /* A.4 signs the text "Payload": the signature holds, the payload is no JWT */
    snprintf(tok, sizeof tok, "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA.%s", sig);
    expect(v, tok, "the payload is not a JSON object");
    snprintf(tok, sizeof tok, "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZQ.%s", sig); /* "Payloae" */
    expect(v, tok, "signature verification failed");
    wv_jwt_verifier_free(v);
}

/* ----------------------------------------------------------------- refusals */

static void test_alg_none_is_refused_signed_or_not(void **state)
{
    wv_jwt_verifier *v = hs_verifier();
    const char *none = b64s("{\"alg\":\"none\"}");
    char tok[256];
    snprintf(tok, sizeof tok, "%s.%s.", none, b64s("{\"sub\":\"x\"}"));
    expect(v, tok, "alg none");
    char *signed_none = hs_token(none, b64s("{\"sub\":\"x\"}"));
    expect(v, signed_none, "alg none");
    free(signed_none);
    char *other = hs_token(b64s("{\"alg\":\"None\"}"), b64s("{}"));
    expect(v, other, "unsupported algorithm None");
    free(other);
    /* a valid HS256 token with its signature dropped */
    char *good = hs_claims("{\"sub\":\"x\"}");
    *(strrchr(good, '.') + 1) = '\0';
    expect(v, good, "not signed");
    free(good);
    wv_jwt_verifier_free(v);
}

static void test_hs256_signed_with_the_rsa_public_key_pem_is_refused(void **state)
{
    /* algorithm confusion: the verifier has an RSA public key and accepts
     * HS256 too; the attacker HMACs with the public key's PEM text */
    const char *pem = write_tmp("rsa_pub.pem", rsa_pub_pem, strlen(rsa_pub_pem));
    wv_jwt_verifier *v =
        verifier(&(wv_jwt_opts){.pem_file = pem, .algs = WV_JWT_HS256 | WV_JWT_RS256});
    char *forged = sign(WV_JWT_HS256, rsa_pub_pem, NULL, "{\"sub\":\"admin\"}");
    expect(v, forged, "no key for algorithm HS256");
    free(forged);
    /* while a real RS256 token passes */
    char *real = sign(WV_JWT_RS256, rsa_pem, NULL, "{\"sub\":\"admin\"}");
    expect(v, real, NULL);
    free(real);
    wv_jwt_verifier_free(v);

    /* the other way: an HMAC verifier gets an RS256 token */
    v = verifier(&(wv_jwt_opts){.hmac_key = hkey, .algs = WV_JWT_HS256 | WV_JWT_RS256});
    real = sign(WV_JWT_RS256, rsa_pem, NULL, "{\"sub\":\"admin\"}");
    expect(v, real, "no key for algorithm RS256");
    free(real);
    wv_jwt_verifier_free(v);

    /* and a JWKS oct key never checks an ES256 token */
    char jwks[1024];
    snprintf(jwks, sizeof jwks, "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"k\",\"k\":\"%s\"}]}",
             b64s(ec256_pub_pem));
    v = verifier(&(wv_jwt_opts){.jwks_file = write_tmp("oct.json", jwks, strlen(jwks)),
                                .algs = WV_JWT_HS_ALL | WV_JWT_ES_ALL});
    char *es = sign(WV_JWT_ES256, ec256_pem, "k", "{}");
    expect(v, es, "no ES256 key with kid k");
    free(es);
    wv_jwt_verifier_free(v);
}

static void test_an_algorithm_outside_algs_is_refused_even_with_a_good_signature(void **state)
{
    const char *pem = write_tmp("rsa_pub.pem", rsa_pub_pem, strlen(rsa_pub_pem));
    wv_jwt_verifier *v = verifier(&(wv_jwt_opts){.pem_file = pem, .algs = WV_JWT_RS256});
    char *ps = sign(WV_JWT_PS256, rsa_pem, NULL, "{}");
    expect(v, ps, "algorithm PS256 is not allowed");
    free(ps);
    char *rs = sign(WV_JWT_RS512, rsa_pem, NULL, "{}");
    expect(v, rs, "algorithm RS512 is not allowed");
    free(rs);
    wv_jwt_verifier_free(v);
    /* algs that no configured key can verify: refused at set-up */
    wv_jwt_verifier *bad;
    assert_int_equal(
        wv_jwt_verifier_new(&(wv_jwt_opts){.pem_file = pem, .algs = WV_JWT_HS256}, &bad), -EINVAL);
    assert_int_equal(wv_jwt_verifier_new(&(wv_jwt_opts){.pem_file = pem, .algs = 1u << 20}, &bad),
                     -EINVAL);
}

static void test_bad_base64url_in_each_part_is_refused(void **state)
{
    wv_jwt_verifier *v = hs_verifier();
    const char *hdr = b64s("{\"alg\":\"HS256\"}");
    const char *pay = b64s("{\"sub\":\"x\"}");
    char tok[512];
    /* the header: padding, the standard alphabet, a space, a length no
     * base64 has, and a last character with unused bits set (16 bytes:
     * the last character carries 2 bits and 4 zeros) */
    char loose[64];
    snprintf(loose, sizeof loose, "%s", b64s("{\"alg\":\"HS256\" }"));
    char *t = hs_token(loose, pay);
    expect(v, t, NULL);
    free(t);
    loose[strlen(loose) - 1]++;
    const char *const headers[] = {"eyJhbGciOiJIUzI1NiJ9=", "eyJhbGciOiJIUzI1NiJ9+",
                                   "eyJhbGciOi JIUzI1NiJ9", "eyJhbGciOiJIUzI1NiJ9a", loose};
    for (size_t i = 0; i < ARRAY_LEN(headers); i++) {
        t = hs_token(headers[i], pay);
        expect(v, t, "the header is not base64url");
        free(t);
    }
    /* the payload: signed as it is, refused once decoded */
    t = hs_token(hdr, "eyJzdWIiOiJ4In0=");
    expect(v, t, "the payload is not base64url");
    free(t);
    t = hs_token(hdr, "eyJzdWIiOiJ4In1");
    expect(v, t, "the payload is not base64url");
    free(t);
    /* the signature */
    char *good = hs_claims("{\"sub\":\"x\"}");
    snprintf(tok, sizeof tok, "%s=", good);
    expect(v, tok, "the signature is not base64url");
    snprintf(tok, sizeof tok, "%s", good);
    *strrchr(tok, '.') = '\0';
    strcat(tok, ".a/b+");
    expect(v, tok, "the signature is not base64url");
    free(good);
    wv_jwt_verifier_free(v);
}

static void test_header_and_payload_must_be_strict_json_objects(void **state)
{
    wv_jwt_verifier *v = hs_verifier();
    static const char *const headers[] = {"{'alg':'HS256'}",
                                          "{\"alg\":\"HS256\",}",
                                          "[\"HS256\"]",
                                          "\"HS256\"",
                                          "{\"alg\":\"HS256\"} x",
                                          "{\"alg\":\"HS256\"",
                                          "\xef\xbb\xbf{\"alg\":\"HS256\"}",
                                          ""};
    for (size_t i = 0; i < ARRAY_LEN(headers); i++) {
        char *t = hs_token(*headers[i] ? b64s(headers[i]) : "AA", b64s("{}"));
        expect(v, t, "the header is not a JSON object");
        free(t);
    }
    char *t = hs_token(b64s("{\"typ\":\"JWT\"}"), b64s("{}"));
    expect(v, t, "the header has no alg");
    free(t);
    t = hs_token(b64s("{\"alg\":256}"), b64s("{}"));
    expect(v, t, "the header has no alg");
    free(t);
    t = hs_token(b64s("{\"alg\":\"HS256\",\"kid\":7}"), b64s("{}"));
    expect(v, t, "kid is not a string");
    free(t);
    t = hs_token(b64s("{\"alg\":\"HS256\",\"crit\":[\"exp\"],\"exp\":1}"), b64s("{}"));
    expect(v, t, "crit header parameters are not supported");
    free(t);
    static const char *const payloads[] = {"[1,2]", "{\"a\":1,}",          "{\"a\":01}",
                                           "null",  "{\"a\":\"\\u0000\"}", "{\"a\":NaN}"};
    for (size_t i = 0; i < ARRAY_LEN(payloads); i++) {
        t = hs_claims(payloads[i]);
        expect(v, t, "the payload is not a JSON object");
        free(t);
    }
    wv_jwt_verifier_free(v);
}

static void test_structure_three_nonempty_parts(void **state)
{
    wv_jwt_verifier *v = hs_verifier();
    static const char *const toks[] = {"", "abc", "a.b", "a.b.c.d", ".b.c", "a..c", "...."};
    for (size_t i = 0; i < ARRAY_LEN(toks); i++)
        expect(v, toks[i], "not a JWS compact token");
    wv_jwt_verifier_free(v);
}

static void test_time_claims_exp_nbf_iat(void **state)
{
    wv_jwt_verifier *v = hs_verifier();
    char claims[128];
    double now = now_s();
    struct {
        const char *fmt;
        double at;
        const char *why;
    } cases[] = {
        {"{\"exp\":%.0f}", now + 60, NULL},
        {"{\"exp\":%.0f}", now - 1, "expired"},
        {"{\"exp\":%.3f}", now - 0.5, "expired"},
        {"{\"nbf\":%.0f}", now - 1, NULL},
        {"{\"nbf\":%.0f}", now + 30, "not valid yet"},
        {"{\"iat\":%.0f}", now - 5, NULL},
        {"{\"iat\":%.0f}", now + 30, "issued in the future"},
        {"{\"exp\":\"%.0f\"}", now + 60, "exp is not a number"},
        {"{\"nbf\":[%.0f]}", now, "nbf is not a number"},
        {"{\"iat\":{\"t\":%.0f}}", now, "iat is not a number"},
        {"{\"exp\":1e999,\"x\":%.0f}", now, "exp is not a number"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        snprintf(claims, sizeof claims, cases[i].fmt, cases[i].at);
        char *t = hs_claims(claims);
        expect_at(v, t, now, cases[i].why);
        free(t);
    }
    wv_jwt_verifier_free(v);
    /* leeway covers nbf and iat too */
    v = verifier(&(wv_jwt_opts){.hmac_key = hkey, .leeway_s = 60});
    snprintf(claims, sizeof claims, "{\"nbf\":%.0f,\"iat\":%.0f,\"exp\":%.0f}", now + 30, now + 30,
             now - 30);
    char *t = hs_claims(claims);
    expect_at(v, t, now, NULL);
    expect_at(v, t, now + 31, "expired");
    free(t);
    wv_jwt_verifier_free(v);
}

static void test_issuer_and_audience(void **state)
{
    wv_jwt_verifier *v =
        verifier(&(wv_jwt_opts){.hmac_key = hkey, .issuer = "https://id", .audience = "svc"});
    struct {
        const char *claims, *why;
    } cases[] = {
        {"{\"iss\":\"https://id\",\"aud\":\"svc\"}", NULL},
        {"{\"iss\":\"https://id\",\"aud\":[\"other\",\"svc\"]}", NULL},
        {"{\"iss\":\"https://id\",\"aud\":[\"other\"]}", "not meant for this audience"},
        {"{\"iss\":\"https://id\",\"aud\":\"svc2\"}", "not meant for this audience"},
        {"{\"iss\":\"https://id\",\"aud\":[]}", "not meant for this audience"},
        {"{\"iss\":\"https://id\",\"aud\":[1]}", "not meant for this audience"},
        {"{\"iss\":\"https://id\"}", "no aud claim"},
        {"{\"aud\":\"svc\"}", "no iss claim"},
        {"{\"iss\":\"https://evil\",\"aud\":\"svc\"}", "issuer is not the expected one"},
        {"{\"iss\":[\"https://id\"],\"aud\":\"svc\"}", "issuer is not the expected one"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char *t = hs_claims(cases[i].claims);
        expect(v, t, cases[i].why);
        free(t);
    }
    wv_jwt_verifier_free(v);
    /* no audience configured: a token meant for someone is refused */
    v = hs_verifier();
    char *t = hs_claims("{\"aud\":\"svc\"}");
    expect(v, t, "expects none");
    free(t);
    wv_jwt_verifier_free(v);
}

static void test_required_claims(void **state)
{
    wv_jwt_verifier *v = verifier(&(wv_jwt_opts){
        .hmac_key = hkey, .required_claims = (const char *const[]){"sub", "exp", NULL}});
    char claims[96];
    snprintf(claims, sizeof claims, "{\"sub\":\"u1\",\"exp\":%.0f}", now_s() + 60);
    char *t = hs_claims(claims);
    expect(v, t, NULL);
    free(t);
    t = hs_claims("{\"sub\":\"u1\"}");
    expect(v, t, "the token has no exp claim");
    free(t);
    snprintf(claims, sizeof claims, "{\"exp\":%.0f}", now_s() + 60);
    t = hs_claims(claims);
    expect(v, t, "the token has no sub claim");
    free(t);
    wv_jwt_verifier_free(v);
}

static void test_every_flipped_bit_of_signature_or_payload_is_refused(void **state)
{
    const char *pem = write_tmp("ec.pem", ec256_pub_pem, strlen(ec256_pub_pem));
    wv_jwt_verifier *hv = hs_verifier();
    wv_jwt_verifier *ev = verifier(&(wv_jwt_opts){.pem_file = pem});
    char *toks[] = {hs_claims("{\"sub\":\"u\",\"admin\":false}"),
                    sign(WV_JWT_ES256, ec256_pem, NULL, "{\"sub\":\"u\",\"admin\":false}")};
    wv_jwt_verifier *vs[] = {hv, ev};
    for (int k = 0; k < 2; k++) {
        expect(vs[k], toks[k], NULL);
        char *sig = strrchr(toks[k], '.') + 1;
        unsigned char raw[128];
        long n = wv__b64url_decode(sig, strlen(sig), raw);
        assert_true(n == 32 || n == 64);
        for (long bit = 0; bit < n * 8; bit++) {
            raw[bit / 8] ^= (unsigned char)(1u << (bit % 8));
            char *s = b64(raw, (size_t)n);
            char tok[512];
            snprintf(tok, sizeof tok, "%.*s%s", (int)(sig - toks[k]), toks[k], s);
            expect(vs[k], tok, "signature verification failed");
            free(s);
            raw[bit / 8] ^= (unsigned char)(1u << (bit % 8));
        }
        /* one character of the payload changed ("admin":false -> fals) */
        char *tok = strdup(toks[k]);
        char *p = strchr(tok, '.') + 3;
        *p = *p == 'A' ? 'B' : 'A';
        expect(vs[k], tok, "signature verification failed");
        free(tok);
        free(toks[k]);
    }
    wv_jwt_verifier_free(hv);
    wv_jwt_verifier_free(ev);
}

static void test_every_truncation_is_refused(void **state)
{
    wv_jwt_verifier *v = hs_verifier();
    char *t = hs_claims("{\"sub\":\"someone\",\"scope\":\"a b\"}");
    size_t n = strlen(t);
    for (size_t i = 0; i < n; i++) {
        wv_json_doc *claims;
        char *cut = strndup(t, i); /* exactly i bytes for ASan */
        assert_int_equal(wv__jwt_verify_at(v, cut, i, now_s(), &claims), -EACCES);
        assert_null(claims);
        free(cut);
    }
    free(t);
    wv_jwt_verifier_free(v);
}

static void test_a_token_over_max_token_is_refused_before_parsing(void **state)
{
    wv_jwt_verifier *v = verifier(&(wv_jwt_opts){.hmac_key = hkey, .max_token = 100});
    char *t = hs_claims("{\"sub\":\"u\"}");
    assert_true(strlen(t) < 100);
    expect(v, t, NULL);
    free(t);
    /* 101 bytes of nothing a parser would take: refused for its size */
    char big[102];
    memset(big, '!', 101);
    big[101] = '\0';
    expect(v, big, "longer than 100 bytes");
    wv_jwt_verifier_free(v);
    /* the default: 8 KiB */
    v = hs_verifier();
    char *huge = malloc(WV_JWT_MAX_TOKEN + 2);
    memset(huge, 'A', WV_JWT_MAX_TOKEN + 1);
    huge[WV_JWT_MAX_TOKEN + 1] = '\0';
    expect(v, huge, "longer than 8192 bytes");
    huge[WV_JWT_MAX_TOKEN] = '\0';
    expect(v, huge, "not a JWS compact token");
    free(huge);
    wv_jwt_verifier_free(v);
}

static void test_kid_selects_the_jwks_key_and_an_unknown_kid_is_refused(void **state)
{
    /* two oct keys by kid */
    char jwks[512];
    char *k1 = b64("first-key-first-key-first-key-32", 32);
    char *k2 = b64("other-key-other-key-other-key-32", 32);
    snprintf(jwks, sizeof jwks,
             "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"one\",\"k\":\"%s\"},"
             "{\"kty\":\"oct\",\"kid\":\"two\",\"k\":\"%s\",\"alg\":\"HS384\"}]}",
             k1, k2);
    wv_jwt_verifier *v =
        verifier(&(wv_jwt_opts){.jwks_file = write_tmp("kid.json", jwks, strlen(jwks))});
    char *t = sign(WV_JWT_HS256, "first-key-first-key-first-key-32", "one", "{}");
    expect(v, t, NULL);
    free(t);
    t = sign(WV_JWT_HS384, "other-key-other-key-other-key-32", "two", "{}");
    expect(v, t, NULL);
    free(t);
    /* the key's own alg binds it: HS256 under kid two */
    t = sign(WV_JWT_HS256, "other-key-other-key-other-key-32", "two", "{}");
    expect(v, t, "no HS256 key with kid two");
    free(t);
    /* the right secret under the wrong kid */
    t = sign(WV_JWT_HS256, "first-key-first-key-first-key-32", "two", "{}");
    expect(v, t, "no HS256 key with kid two");
    free(t);
    t = sign(WV_JWT_HS256, "first-key-first-key-first-key-32", "three", "{}");
    expect(v, t, "no HS256 key with kid three");
    free(t);
    /* a kid full of quotes is not echoed as is */
    t = sign(WV_JWT_HS256, "first-key-first-key-first-key-32", "\"><x\\", "{}");
    expect(v, t, "no HS256 key with kid ???x?");
    free(t);
    /* no kid: every key of the type is tried */
    t = sign(WV_JWT_HS256, "first-key-first-key-first-key-32", NULL, "{}");
    expect(v, t, NULL);
    free(t);
    free(k1);
    free(k2);
    wv_jwt_verifier_free(v);
}

static void test_jwks_contents(void **state)
{
    wv_jwt_verifier *v;
    /* an OKP key (Ed25519) beside an EC one: skipped, the EC one used */
    static const char jwks[] = "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"ed\","
                               "\"x\":\"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo\"},"
                               "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a3\","
                               "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
                               "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"}]}";
    assert_int_equal(
        wv_jwt_verifier_new(&(wv_jwt_opts){.jwks_file = write_tmp("okp.json", jwks, strlen(jwks))},
                            &v),
        0);
    expect_at(v, a3_token, rfc_exp - 1, NULL);
    /* a token naming the skipped key */
    char *t = hs_token(b64s("{\"alg\":\"ES256\",\"kid\":\"ed\"}"), b64s("{}"));
    expect(v, t, "no ES256 key with kid ed");
    free(t);
    t = hs_token(b64s("{\"alg\":\"EdDSA\",\"kid\":\"ed\"}"), b64s("{}"));
    expect(v, t, "unsupported algorithm EdDSA");
    free(t);
    wv_jwt_verifier_free(v);

    static const char *const unusable[] = {
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"11qYAYKxCrfVS_"
        "7TyWQHOg7hcvPapiMlrwIaaPcHURo\"}]}",
        "{\"keys\":[]}",
        "{\"keys\":{}}",
        "{\"kty\":\"oct\",\"k\":\"AAAA\"}",
        "not json",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}]}", /* 5 bytes */
        "{\"keys\":[{\"kty\":\"oct\"}]}",                   /* no k */
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}",
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"secp256k1\",\"x\":\"AA\",\"y\":\"AA\"}]}",
        /* A.3's x with y changed: not on the curve */
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\","
        "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
        "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a1\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}", /* 17 bits */
        "{\"keys\":[{\"kty\":\"oct\",\"use\":\"enc\",\"k\":"
        "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}",
        "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"RS256\",\"k\":"
        "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}",
        "{\"keys\":[{\"kty\":\"oct\",\"alg\":\"none\",\"k\":"
        "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}]}",
    };
    for (size_t i = 0; i < ARRAY_LEN(unusable); i++) {
        v = NULL;
        int rc = wv_jwt_verifier_new(
            &(wv_jwt_opts){.jwks_file = write_tmp("bad.json", unusable[i], strlen(unusable[i]))},
            &v);
        if (rc != -EINVAL)
            fprintf(stderr, "JWKS %zu accepted: %s\n", i, unusable[i]);
        assert_int_equal(rc, -EINVAL);
        assert_null(v);
    }
    /* a 1024-bit RSA key in PEM */
    assert_int_equal(
        wv_jwt_verifier_new(
            &(wv_jwt_opts){.pem_file = write_tmp("small.pem", rsa1024_pem, strlen(rsa1024_pem))},
            &v),
        -EINVAL);
    assert_non_null(strstr(wv_errmsg(), "2048"));
    assert_int_equal(wv_jwt_verifier_new(&(wv_jwt_opts){.jwks_file = tmp_path("missing.json")}, &v),
                     -ENOENT);
}

static void test_hmac_keys_shorter_than_256_bits_are_refused(void **state)
{
    wv_jwt_verifier *v;
    assert_int_equal(wv_jwt_verifier_new(&(wv_jwt_opts){.hmac_key = "secret"}, &v), -EINVAL);
    assert_int_equal(wv_jwt_verifier_new(&(wv_jwt_opts){.hmac_key = hkey, .hmac_key_len = 31}, &v),
                     -EINVAL);
    assert_int_equal(wv_jwt_verifier_new(&(wv_jwt_opts){0}, &v), -EINVAL);
    wv_buf out = {0};
    assert_int_equal(wv_jwt_sign(WV_JWT_HS256, "secret", 6, NULL, "{}", 2, &out), -EINVAL);
    /* a key file: one trailing newline is not part of the key */
    char line[64];
    snprintf(line, sizeof line, "%s\n", hkey);
    v = verifier(&(wv_jwt_opts){.hmac_key_file = write_tmp("hkey", line, strlen(line))});
    char *t = hs_claims("{}");
    expect(v, t, NULL);
    free(t);
    wv_jwt_verifier_free(v);
    wv_buf_free(&out);
}

/* ------------------------------------------------------------------ signing */

static void test_sign_and_verify_every_algorithm(void **state)
{
    const char *rsa_pub = write_tmp("rsa_pub.pem", rsa_pub_pem, strlen(rsa_pub_pem));
    struct {
        wv_jwt_alg alg;
        const char *key;
        size_t sig_len;
    } cases[] = {
        {WV_JWT_HS256, hkey, 32},      {WV_JWT_HS384, hkey, 48},
        {WV_JWT_HS512, hkey, 64},      {WV_JWT_RS256, rsa_pem, 256},
        {WV_JWT_RS384, rsa_pem, 256},  {WV_JWT_RS512, rsa_pem, 256},
        {WV_JWT_PS256, rsa_pem, 256},  {WV_JWT_PS384, rsa_pem, 256},
        {WV_JWT_PS512, rsa_pem, 256},  {WV_JWT_ES256, ec256_pem, 64},
        {WV_JWT_ES384, ec384_pem, 96}, {WV_JWT_ES512, ec521_pem, 132},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        wv_jwt_opts o = {.hmac_key = hkey, .pem_file = rsa_pub};
        const char *ecpub = NULL;
        if (cases[i].alg & WV_JWT_ES_ALL) {
            BIO *b = BIO_new_mem_buf(cases[i].key, -1);
            EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
            BIO_free(b);
            char *pub = pem_of(k, false);
            EVP_PKEY_free(k);
            ecpub = write_tmp("ecpub.pem", pub, strlen(pub));
            free(pub);
            o = (wv_jwt_opts){.pem_file = ecpub};
        }
        wv_jwt_verifier *v = verifier(&o);
        char *t = sign(cases[i].alg, cases[i].key, "kid-1", "{\"sub\":\"s\",\"n\":1}");
        /* the header we wrote */
        char want[96];
        snprintf(want, sizeof want, "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"kid-1\"}",
                 wv_jwt_alg_name(cases[i].alg));
        assert_true(strncmp(t, b64s(want), strlen(b64s(want))) == 0);
        const char *sig = strrchr(t, '.') + 1;
        unsigned char raw[600];
        assert_int_equal(wv__b64url_decode(sig, strlen(sig), raw), (long)cases[i].sig_len);
        expect(v, t, NULL);
        wv_json_doc *claims;
        assert_int_equal(wv_jwt_verify(v, t, strlen(t), &claims), 0);
        const char *sub;
        assert_int_equal(wv_json_get_string(wv_json_doc_root(claims), "sub", &sub, NULL), 0);
        assert_string_equal(sub, "s");
        wv_json_doc_free(claims);
        free(t);
        wv_jwt_verifier_free(v);
    }
}

static void test_sign_refuses_a_key_of_the_wrong_kind_and_bad_claims(void **state)
{
    wv_buf out = {0};
    assert_int_equal(wv_jwt_sign(WV_JWT_RS256, ec256_pem, strlen(ec256_pem), NULL, "{}", 2, &out),
                     -EINVAL);
    assert_int_equal(wv_jwt_sign(WV_JWT_ES256, rsa_pem, strlen(rsa_pem), NULL, "{}", 2, &out),
                     -EINVAL);
    assert_int_equal(wv_jwt_sign(WV_JWT_ES384, ec256_pem, strlen(ec256_pem), NULL, "{}", 2, &out),
                     -EINVAL);
    assert_int_equal(
        wv_jwt_sign(WV_JWT_RS256, rsa_pub_pem, strlen(rsa_pub_pem), NULL, "{}", 2, &out), -EINVAL);
    assert_int_equal(wv_jwt_sign(WV_JWT_HS256, hkey, strlen(hkey), NULL, "[1]", 3, &out), -EINVAL);
    assert_int_equal(wv_jwt_sign(WV_JWT_HS256, hkey, strlen(hkey), NULL, "{,}", 3, &out), -EINVAL);
    assert_int_equal(
        wv_jwt_sign(WV_JWT_HS256 | WV_JWT_HS384, hkey, strlen(hkey), NULL, "{}", 2, &out), -EINVAL);
    assert_int_equal(out.n, 0);
    wv_buf_free(&out);
}

static void test_alg_names_round_trip(void **state)
{
    for (unsigned bit = 1; bit <= WV_JWT_ES512; bit <<= 1) {
        const char *name = wv_jwt_alg_name((wv_jwt_alg)bit);
        assert_non_null(name);
        assert_int_equal(wv_jwt_alg_from_name(name, strlen(name)), bit);
    }
    assert_int_equal(wv_jwt_alg_from_name("none", 4), 0);
    assert_int_equal(wv_jwt_alg_from_name("HS25", 4), 0);
    assert_int_equal(wv_jwt_alg_from_name("HS2566", 6), 0);
    assert_int_equal(wv_jwt_alg_from_name("hs256", 5), 0);
    assert_null(wv_jwt_alg_name((wv_jwt_alg)0));
}

/* ------------------------------------------------------------------- scopes */

static void test_scopes_from_scope_string_or_scp_array(void **state)
{
    wv_jwt_verifier *v = verifier(&(wv_jwt_opts){
        .hmac_key = hkey, .scopes = (const char *const[]){"items:read", "items:write", NULL}});
    struct {
        const char *claims;
        bool ok;
    } cases[] = {
        {"{\"scope\":\"items:read items:write\"}", true},
        {"{\"scope\":\"  items:write   x items:read \"}", true},
        {"{\"scp\":[\"items:write\",\"items:read\"]}", true},
        {"{\"scp\":\"items:write items:read\"}", true},
        {"{\"scope\":\"items:read\",\"scp\":[\"items:write\"]}", true},
        {"{\"scope\":\"items:read\"}", false},
        {"{\"scope\":\"items:readitems:write\"}", false},
        {"{\"scope\":\"items:rea items:write\"}", false},
        {"{\"scope\":[\"items:read items:write\"]}", false},
        {"{\"scp\":[\"items:read items:write\"]}", false},
        {"{}", false},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        wv_json_doc *d;
        assert_int_equal(wv_json_parse(cases[i].claims, strlen(cases[i].claims), &d), 0);
        assert_int_equal(wv_jwt_has_scopes(v, wv_json_doc_root(d)), cases[i].ok);
        wv_json_doc_free(d);
    }
    wv_jwt_verifier_free(v);
    wv_jwt_verifier *bad;
    assert_int_equal(
        wv_jwt_verifier_new(
            &(wv_jwt_opts){.hmac_key = hkey, .scopes = (const char *const[]){"a b", NULL}}, &bad),
        -EINVAL);
}

/* -------------------------------------------------------------- install checks */

static void test_install_functions_check_their_options(void **state)
{
    wv_router *r = wv_router_new();
    assert_int_equal(wv_auth_jwt(r, &(wv_jwt_opts){.hmac_key = "short"}), -EINVAL);
    assert_int_equal(wv_auth_api_key(r, &(wv_api_key_opts){0}), -EINVAL);
    assert_int_equal(
        wv_auth_api_key(r, &(wv_api_key_opts){.keys = (wv_api_key[]){{"a", ""}}, .nkeys = 1}),
        -EINVAL);
    assert_int_equal(
        wv_auth_api_key(
            r, &(wv_api_key_opts){.keys = (wv_api_key[]){{"a", "k1"}, {"b", "k1"}}, .nkeys = 2}),
        -EINVAL);
    assert_non_null(strstr(wv_errmsg(), "b is also key a"));
    assert_int_equal(wv_auth_api_key(r, &(wv_api_key_opts){.header = "X Bad",
                                                           .keys = (wv_api_key[]){{"a", "k1"}},
                                                           .nkeys = 1}),
                     -EINVAL);
    assert_int_equal(
        wv_auth_api_key(
            r, &(wv_api_key_opts){.header = "", .keys = (wv_api_key[]){{"a", "k1"}}, .nkeys = 1}),
        -EINVAL);
    static const char three[] = "# keys\nname key extra\n";
    assert_int_equal(
        wv_auth_api_key(r, &(wv_api_key_opts){.keys_file = write_tmp("k3", three, strlen(three))}),
        -EINVAL);
    assert_non_null(strstr(wv_errmsg(), ":2:"));
    static const char dup[] = "a key1\n\n   # comment\nkey1\n";
    assert_int_equal(
        wv_auth_api_key(r, &(wv_api_key_opts){.keys_file = write_tmp("kd", dup, strlen(dup))}),
        -EINVAL);
    assert_non_null(strstr(wv_errmsg(), "line 4 is also key a"));
    assert_int_equal(wv_auth_api_key(r, &(wv_api_key_opts){.keys_file = tmp_path("nope")}),
                     -ENOENT);
    assert_null(r->mws); /* nothing installed by a failure */

    /* what the installed ones declare */
    assert_int_equal(
        wv_auth_jwt(
            r, &(wv_jwt_opts){.hmac_key = hkey, .scopes = (const char *const[]){"s1", "s2", NULL}}),
        0);
    static const char good[] = "# name key\nci  abc123\r\nlonely-key\n";
    assert_int_equal(
        wv_auth_api_key(r, &(wv_api_key_opts){.query = "api_key",
                                              .keys_file = write_tmp("kg", good, strlen(good))}),
        0);
    const wv_auth_scheme *s = wv_auth_scheme_of(&r->mws->mw);
    assert_non_null(s);
    assert_string_equal(s->type, "http");
    assert_string_equal(s->scheme, "bearer");
    assert_string_equal(s->bearer_format, "JWT");
    assert_string_equal(s->scopes[0], "s1");
    assert_string_equal(s->scopes[1], "s2");
    assert_null(s->scopes[2]);
    s = wv_auth_scheme_of(&r->mws->next->mw);
    assert_non_null(s);
    assert_string_equal(s->type, "apiKey");
    assert_string_equal(s->in, "header");
    assert_string_equal(s->name, "X-API-Key");
    assert_string_equal(s->query_name, "api_key");
    assert_null(s->scopes[0]);
    assert_null(r->mws->next->next);
    assert_int_equal(wv_cors(r, &(wv_cors_opts){.origins = (const char *const[]){"*", NULL}}), 0);
    assert_null(wv_auth_scheme_of(&r->mws->next->next->mw));
    assert_null(wv_auth_scheme_of(NULL));
    wv_router_free(r);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc7515_a1_hs256_verifies_and_its_claims_read_back),
        cmocka_unit_test(test_leeway_moves_the_expiry_by_exactly_its_seconds),
        cmocka_unit_test(test_rfc7515_a2_rs256_verifies_with_its_jwk),
        cmocka_unit_test(test_rfc7515_a3_es256_raw_r_s_signature_verifies),
        cmocka_unit_test(test_rfc7515_a4_es512_signature_verifies_before_the_payload_is_read),
        cmocka_unit_test(test_alg_none_is_refused_signed_or_not),
        cmocka_unit_test(test_hs256_signed_with_the_rsa_public_key_pem_is_refused),
        cmocka_unit_test(test_an_algorithm_outside_algs_is_refused_even_with_a_good_signature),
        cmocka_unit_test(test_bad_base64url_in_each_part_is_refused),
        cmocka_unit_test(test_header_and_payload_must_be_strict_json_objects),
        cmocka_unit_test(test_structure_three_nonempty_parts),
        cmocka_unit_test(test_time_claims_exp_nbf_iat),
        cmocka_unit_test(test_issuer_and_audience),
        cmocka_unit_test(test_required_claims),
        cmocka_unit_test(test_every_flipped_bit_of_signature_or_payload_is_refused),
        cmocka_unit_test(test_every_truncation_is_refused),
        cmocka_unit_test(test_a_token_over_max_token_is_refused_before_parsing),
        cmocka_unit_test(test_kid_selects_the_jwks_key_and_an_unknown_kid_is_refused),
        cmocka_unit_test(test_jwks_contents),
        cmocka_unit_test(test_hmac_keys_shorter_than_256_bits_are_refused),
        cmocka_unit_test(test_sign_and_verify_every_algorithm),
        cmocka_unit_test(test_sign_refuses_a_key_of_the_wrong_kind_and_bad_claims),
        cmocka_unit_test(test_alg_names_round_trip),
        cmocka_unit_test(test_scopes_from_scope_string_or_scp_array),
        cmocka_unit_test(test_install_functions_check_their_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
