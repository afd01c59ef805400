/*
 * AWS Signature Version 4, as S3 reads it, and the hashes that go with a
 * body.
 *
 * A signature covers the canonical request (method, URI-encoded path,
 * sorted and encoded query, the signed headers lower-cased and sorted
 * with their values trimmed, the payload's SHA-256), hashed into a string
 * to sign with the date and the credential scope, and signed with a key
 * derived from the secret by four HMACs (date, region, service,
 * "aws4_request"). S3's rule differs from the other services' in one
 * point: the path is encoded once, not twice. The same code makes the
 * Authorization header and the signature of a presigned URL; only what
 * the caller puts in the query and the headers differs.
 *
 * Hashing a body is CPU work proportional to its size (an 8 MiB part
 * costs milliseconds): above 256 KiB it runs on the offload pool so the
 * shard's other fibers are not held up.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "s3/s3_internal.h"

enum { OFFLOAD_HASH_FROM = 256 << 10 };

static const char hex_digits[] = "0123456789abcdef";

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[p[i] >> 4];
        out[2 * i + 1] = hex_digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static void sha256(const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 0;
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32) {
        /* only an OpenSSL without SHA-256 gets here */
        fprintf(stderr, "weave: s3: OpenSSL cannot compute SHA-256\n");
        abort();
    }
}

void s3_sha256_hex(const void *p, size_t n, char out[S3_SHA256_HEX])
{
    unsigned char d[32];
    sha256(p, n, d);
    to_hex(d, 32, out);
}

/* --------------------------------------------------------- body hashes */

typedef struct hash_job {
    const void *p;
    size_t n;
    bool md5, sha256_b64;
    s3_body_hashes *out;
} hash_job;

static int hash_now(void *arg)
{
    hash_job *j = arg;
    unsigned char d[32], m[16];
    unsigned int len = 0;
    sha256(j->p, j->n, d);
    to_hex(d, 32, j->out->sha256_hex);
    j->out->md5_b64[0] = j->out->sha256_b64[0] = '\0';
    if (j->sha256_b64)
        EVP_EncodeBlock((unsigned char *)j->out->sha256_b64, d, 32);
    if (j->md5) {
        if (EVP_Digest(j->p, j->n, m, &len, EVP_md5(), NULL) != 1 || len != 16)
            return -ENOTSUP; /* MD5 is off in this OpenSSL (FIPS) */
        EVP_EncodeBlock((unsigned char *)j->out->md5_b64, m, 16);
    }
    return 0;
}

int s3_hash_body(const void *p, size_t n, bool md5, bool sha256_b64, s3_body_hashes *out)
{
    hash_job j = {.p = n ? p : "", .n = n, .md5 = md5, .sha256_b64 = sha256_b64, .out = out};
    int rc = n >= OFFLOAD_HASH_FROM && wv_shard_id() >= 0 ? wv_offload(hash_now, &j) : hash_now(&j);
    if (rc == -ENOTSUP)
        return wv_fail(rc, "S3: this OpenSSL offers no MD5 for Content-MD5 (use "
                           "WV_S3_CHECKSUM_SHA256 or _NONE)");
    if (rc < 0)
        return wv_fail(rc, "S3: hashing the body: %s", wv_strerror(rc));
    return 0;
}

/* --------------------------------------------------------- encoding */

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

int s3_uri_encode(wv_buf *b, const char *s, size_t n, bool keep_slash)
{
    if (wv_buf_reserve(b, n * 3 + 1) < 0)
        return -ENOMEM;
    char *o = b->p + b->n;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c) || (keep_slash && c == '/')) {
            *o++ = (char)c;
        } else {
            *o++ = '%';
            *o++ = "0123456789ABCDEF"[c >> 4];
            *o++ = "0123456789ABCDEF"[c & 15];
        }
    }
    b->n = (size_t)(o - b->p);
    b->p[b->n] = '\0';
    return 0;
}

/* ------------------------------------------------------ canonical query */

typedef struct encoded_param {
    size_t name_at, name_len, value_at, value_len; /* in the scratch buffer */
} encoded_param;

/* Order two encoded parameters: by name, then by value, bytewise. */
static int cmp_param(const char *base, const encoded_param *x, const encoded_param *y)
{
    size_t n = x->name_len < y->name_len ? x->name_len : y->name_len;
    int c = memcmp(base + x->name_at, base + y->name_at, n);
    if (c)
        return c;
    if (x->name_len != y->name_len)
        return x->name_len < y->name_len ? -1 : 1;
    n = x->value_len < y->value_len ? x->value_len : y->value_len;
    c = memcmp(base + x->value_at, base + y->value_at, n);
    if (c)
        return c;
    return x->value_len < y->value_len ? -1 : x->value_len > y->value_len;
}

int s3_canonical_query(wv_buf *b, s3_param *params, size_t n)
{
    if (n == 0)
        return s3_cstr(b);
    encoded_param small[16];
    encoded_param *e = n <= 16 ? small : calloc(n, sizeof *e);
    wv_buf scratch = {0};
    int rc = e ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        e[i].name_at = scratch.n;
        rc = s3_uri_encode(&scratch, params[i].name, strlen(params[i].name), false);
        e[i].name_len = scratch.n - e[i].name_at;
        e[i].value_at = scratch.n;
        if (rc == 0)
            rc = s3_uri_encode(&scratch, params[i].value, strlen(params[i].value), false);
        e[i].value_len = scratch.n - e[i].value_at;
    }
    /* sorted by the encoded bytes, as the service sorts them (an
     * insertion sort: a request has a handful of parameters) */
    for (size_t i = 1; rc == 0 && i < n; i++) {
        encoded_param cur = e[i];
        size_t j = i;
        for (; j > 0 && cmp_param(scratch.p, &e[j - 1], &cur) > 0; j--)
            e[j] = e[j - 1];
        e[j] = cur;
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i)
            rc = wv_buf_append(b, "&", 1);
        if (rc == 0)
            rc = wv_buf_append(b, scratch.p + e[i].name_at, e[i].name_len);
        if (rc == 0)
            rc = wv_buf_append(b, "=", 1);
        if (rc == 0)
            rc = wv_buf_append(b, scratch.p + e[i].value_at, e[i].value_len);
    }
    if (rc == 0)
        rc = s3_cstr(b);
    wv_buf_free(&scratch);
    if (e != small)
        free(e);
    return rc;
}

/* ------------------------------------------------------------- signing */

void s3_amz_date(int64_t unix_time, char out[17])
{
    time_t t = (time_t)unix_time;
    struct tm tm;
    gmtime_r(&t, &tm);
    if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        memcpy(out, "19700101T000000Z", 17); /* a year past 9999 */
}

static int cmp_header(const void *a, const void *b)
{
    return strcmp(((const s3_header *)a)->name, ((const s3_header *)b)->name);
}

/* A header value as SigV4 canonicalises it: trimmed, each run of spaces
 * and tabs one space. */
static int append_value(wv_buf *b, const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    bool space = false;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            space = true;
            continue;
        }
        if (space && wv_buf_append(b, " ", 1) < 0)
            return -ENOMEM;
        space = false;
        if (wv_buf_append(b, v, 1) < 0)
            return -ENOMEM;
    }
    return 0;
}

static int hmac(const void *key, size_t key_len, const void *msg, size_t n, unsigned char out[32])
{
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), key, (int)key_len, msg, n, out, &len) || len != 32)
        return -ENOMEM;
    return 0;
}

/* The canonical request, the string to sign and the signature of r. */
static int sign_core(s3_sign_req *r, char signature[65], wv_buf *signed_names, wv_buf *canonical,
                     char date[17])
{
    qsort(r->headers, r->nheaders, sizeof *r->headers, cmp_header);
    s3_amz_date(r->unix_time, date);
    int rc = 0;
    rc |= wv_buf_printf(canonical, "%s\n%s\n%s\n", r->method, r->uri, r->query);
    for (size_t i = 0; rc == 0 && i < r->nheaders; i++) {
        rc |= wv_buf_printf(canonical, "%s:", r->headers[i].name);
        rc |= append_value(canonical, r->headers[i].value);
        rc |= wv_buf_append(canonical, "\n", 1);
        rc |= wv_buf_printf(signed_names, "%s%s", i ? ";" : "", r->headers[i].name);
    }
    rc |= s3_cstr(signed_names);
    rc |= wv_buf_printf(canonical, "\n%s\n%s", signed_names->p, r->payload_hash);
    if (rc)
        return -ENOMEM;

    char hashed[S3_SHA256_HEX];
    s3_sha256_hex(canonical->p, canonical->n, hashed);
    char sts[512];
    int len = snprintf(sts, sizeof sts, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s", date,
                       date, r->region, r->service, hashed);
    if (len < 0 || (size_t)len >= sizeof sts)
        return -ENOSPC;

    /* the key: HMAC chain from "AWS4" + secret */
    size_t sk = strlen(r->secret_key);
    char *k0 = malloc(sk + 5);
    if (!k0)
        return -ENOMEM;
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, r->secret_key, sk + 1);
    unsigned char k1[32], k2[32], k3[32], k4[32], sig[32];
    rc = hmac(k0, sk + 4, date, 8, k1);
    free(k0);
    rc |= hmac(k1, 32, r->region, strlen(r->region), k2);
    rc |= hmac(k2, 32, r->service, strlen(r->service), k3);
    rc |= hmac(k3, 32, "aws4_request", 12, k4);
    rc |= hmac(k4, 32, sts, (size_t)len, sig);
    if (rc)
        return -ENOMEM;
    to_hex(sig, 32, signature);
    return 0;
}

int s3_sign(s3_sign_req *r, wv_buf *authorization, wv_buf *dbg_canonical, wv_buf *dbg_sts)
{
    wv_buf names = {0}, canonical = {0};
    char sig[65], date[17];
    int rc = sign_core(r, sig, &names, &canonical, date);
    if (rc == 0)
        rc = wv_buf_printf(authorization,
                           "AWS4-HMAC-SHA256 Credential=%s/%.8s/%s/%s/aws4_request, "
                           "SignedHeaders=%s, Signature=%s",
                           r->access_key, date, r->region, r->service, names.p, sig);
    if (rc == 0)
        rc = s3_cstr(authorization);
    if (rc == 0 && dbg_canonical)
        rc = wv_buf_append(dbg_canonical, canonical.p, canonical.n);
    if (rc == 0 && dbg_sts) {
        char hashed[S3_SHA256_HEX];
        s3_sha256_hex(canonical.p, canonical.n, hashed);
        rc = wv_buf_printf(dbg_sts, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s", date, date,
                           r->region, r->service, hashed);
        rc = rc ? rc : s3_cstr(dbg_sts);
    }
    wv_buf_free(&names);
    wv_buf_free(&canonical);
    return rc < 0 ? rc : 0;
}

int s3_signature(s3_sign_req *r, char out[65], wv_buf *dbg_canonical)
{
    wv_buf names = {0}, canonical = {0};
    char date[17];
    int rc = sign_core(r, out, &names, &canonical, date);
    if (rc == 0 && dbg_canonical)
        rc = wv_buf_append(dbg_canonical, canonical.p, canonical.n);
    if (rc == 0 && dbg_canonical)
        rc = s3_cstr(dbg_canonical);
    wv_buf_free(&names);
    wv_buf_free(&canonical);
    return rc < 0 ? rc : 0;
}
