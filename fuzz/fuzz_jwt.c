/*
 * libFuzzer target for the JWT verifier and the JWK Set reader
 * (src/auth/jwt.c, keys.c). `make fuzz` runs it; its seeds are in
 * fuzz/corpus/fuzz_jwt/.
 *
 * The first byte picks what the rest is:
 *   0  a token, verified against a fixed HMAC key and a JWKS (the RFC 7515
 *      A.2 RSA and A.3 EC keys and an oct key, by kid);
 *   1  "header.payload" text, signed here with the HMAC key before it is
 *      verified, so the payload's decoding and the claim checks are
 *      reached, which a forged signature never would;
 *   2  a JWK Set.
 * Whatever the input: no crash or leak; a verified token's claims are an
 * object; a refusal is -EACCES (or -ENOMEM), leaves no claims, and its
 * reason has no '"', '\' or control byte (it goes into WWW-Authenticate).
 * A violation aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/hmac.h>

#include "auth/auth_internal.h"
#include "weave/rt.h"
#include "fuzz_util.h"

static const char hkey[] = "fuzz-hmac-key-0123456789abcdef-0123456789";

static const char jwks[] =
    "{\"keys\":["
    "{\"kty\":\"RSA\",\"kid\":\"a2\",\"e\":\"AQAB\",\"n\":"
    "\"ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4"
    "qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2j"
    "Z47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7W"
    "TBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK"
    "-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ\"},"
    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a3\","
    "\"x\":\"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU\","
    "\"y\":\"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0\"},"
    "{\"kty\":\"oct\",\"kid\":\"o1\",\"alg\":\"HS384\","
    "\"k\":\"AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-"
    "1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow\"}"
    "]}";

static wv_jwt_verifier *v;

static void check_result(int rc, wv_json_doc *claims)
{
    if (rc == 0) {
        CHECK(claims && wv_json_type_of(wv_json_doc_root(claims)) == WV_JSON_OBJECT);
        (void)wv_jwt_has_scopes(v, wv_json_doc_root(claims));
        wv_json_doc_free(claims);
        return;
    }
    CHECK(rc == -EACCES || rc == -ENOMEM);
    CHECK(claims == NULL);
    for (const char *m = wv_errmsg(); *m; m++)
        CHECK(*m != '"' && *m != '\\' && (unsigned char)*m >= 0x20);
}

static void setup(void)
{
    wv_log_level_set(WV_LOG_OFF);
    char path[] = "/tmp/fuzz_jwt_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, jwks, sizeof jwks - 1) == (ssize_t)(sizeof jwks - 1));
    close(fd);
    int rc =
        wv_jwt_verifier_new(&(wv_jwt_opts){.hmac_key = hkey,
                                           .jwks_file = path,
                                           .issuer = "joe",
                                           .audience = "svc",
                                           .required_claims = (const char *const[]){"sub", NULL},
                                           .scopes = (const char *const[]){"a", "b", NULL},
                                           .leeway_s = 30,
                                           .max_token = 4096},
                            &v);
    unlink(path);
    CHECK(rc == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!v)
        setup();
    if (size < 1)
        return 0;
    int mode = data[0] % 3;
    data++;
    size--;
    wv_json_doc *claims = (wv_json_doc *)1;
    if (mode == 0) {
        char *tok = copy_exact(data, size);
        check_result(wv_jwt_verify(v, tok, size, &claims), claims);
        free(tok);
    } else if (mode == 1) {
        if (size > 3000)
            return 0;
        unsigned char mac[32];
        unsigned ml;
        CHECK(HMAC(EVP_sha256(), hkey, (int)strlen(hkey), data, size, mac, &ml));
        size_t n = size + 1 + 43;
        char *tok = malloc(n);
        CHECK(tok);
        memcpy(tok, data, size);
        tok[size] = '.';
        CHECK(wv__b64url_encode(mac, ml, tok + size + 1) == 43);
        check_result(wv_jwt_verify(v, tok, n, &claims), claims);
        free(tok);
    } else {
        wv_jwt_verifier *jv = calloc(1, sizeof *jv);
        CHECK(jv);
        char *text = copy_exact(data, size);
        int rc = wv__auth_jwks_parse(jv, text, size);
        CHECK(rc == 0 ? jv->nkeys > 0 : rc == -EINVAL || rc == -EMSGSIZE || rc == -ENOMEM);
        for (int i = 0; i < jv->nkeys; i++)
            CHECK(jv->keys[i].type == KEY_OCT ? jv->keys[i].secret_len >= HMAC_MIN_KEY
                                              : jv->keys[i].pkey != NULL);
        free(text);
        wv_jwt_verifier_free(jv);
    }
    return 0;
}
