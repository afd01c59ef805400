/*
 * AWS Signature Version 4 (src/aws/sigv4.h says what it covers and the
 * one rule that differs between services). The same code makes the
 * Authorization header and the signature of a presigned URL; only what
 * the caller puts in the query and the headers differs.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/sigv4.h"

static const char hex_digits[] = "0123456789abcdef";

void aws_hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[p[i] >> 4];
        out[2 * i + 1] = hex_digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void aws_sha256(const void *p, size_t n, unsigned char out[32])
{
    unsigned int len = 0;
    if (EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) != 1 || len != 32) {
        /* only an OpenSSL without SHA-256 gets here */
        fprintf(stderr, "weave: OpenSSL cannot compute SHA-256\n");
        abort();
    }
}

void aws_sha256_hex(const void *p, size_t n, char out[AWS_SHA256_HEX])
{
    unsigned char d[32];
    aws_sha256(p, n, d);
    aws_hex(d, 32, out);
}

/* --------------------------------------------------------- encoding */

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

int aws_uri_encode(wv_buf *b, const char *s, size_t n, bool keep_slash)
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

int aws_canonical_query(wv_buf *b, aws_param *params, size_t n)
{
    if (n == 0)
        return aws_cstr(b);
    encoded_param small[16];
    encoded_param *e = n <= 16 ? small : calloc(n, sizeof *e);
    wv_buf scratch = {0};
    int rc = e ? 0 : -ENOMEM;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        e[i].name_at = scratch.n;
        rc = aws_uri_encode(&scratch, params[i].name, strlen(params[i].name), false);
        e[i].name_len = scratch.n - e[i].name_at;
        e[i].value_at = scratch.n;
        if (rc == 0)
            rc = aws_uri_encode(&scratch, params[i].value, strlen(params[i].value), false);
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
        rc = aws_cstr(b);
    wv_buf_free(&scratch);
    if (e != small)
        free(e);
    return rc;
}

/* ------------------------------------------------------------- signing */

void aws_amz_date(int64_t unix_time, char out[17])
{
    time_t t = (time_t)unix_time;
    struct tm tm;
    gmtime_r(&t, &tm);
    if (strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
        memcpy(out, "19700101T000000Z", 17); /* a year past 9999 */
}

static int cmp_header(const void *a, const void *b)
{
    return strcmp(((const aws_header *)a)->name, ((const aws_header *)b)->name);
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

/* The path as the service signs it (src/aws/sigv4.h): S3's as sent;
 * every other service's normalised, then encoded again. */
static int canonical_path(wv_buf *out, const char *service, const char *path)
{
    if (!*path)
        path = "/";
    if (strcmp(service, "s3") == 0)
        return wv_buf_puts(out, path) < 0 ? -ENOMEM : 0;
    /* the segments that remain, each at most once as far as ".." allows:
     * kept as offsets into path, which ".." pops */
    size_t n = strlen(path);
    wv_buf kept = {0}; /* kept segments joined with '/' */
    size_t starts[64], depth = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0;) {
        size_t e = i;
        while (e < n && path[e] != '/')
            e++;
        size_t len = e - i;
        if (len == 2 && path[i] == '.' && path[i + 1] == '.') {
            if (depth > 0)
                kept.n = starts[--depth];
        } else if (len > 0 && !(len == 1 && path[i] == '.')) {
            if (depth == sizeof starts / sizeof starts[0]) {
                rc = -ENOSPC;
                break;
            }
            starts[depth++] = kept.n;
            rc |= wv_buf_append(&kept, "/", 1);
            rc |= wv_buf_append(&kept, path + i, len);
        }
        i = e + 1;
    }
    if (rc == 0 && depth > 0 && path[n - 1] == '/')
        rc = wv_buf_append(&kept, "/", 1);
    if (rc == 0 && kept.n == 0)
        rc = wv_buf_append(&kept, "/", 1);
    /* a relative path keeps no leading '/' */
    size_t skip = path[0] == '/' ? 0 : 1;
    if (rc == 0)
        rc = aws_uri_encode(out, kept.p + skip, kept.n - skip, true);
    wv_buf_free(&kept);
    return rc < 0 ? rc : 0;
}

/* The canonical request, the string to sign and the signature of r. */
static int sign_core(aws_sign_req *r, char signature[65], wv_buf *signed_names, wv_buf *canonical,
                     char date[17])
{
    qsort(r->headers, r->nheaders, sizeof *r->headers, cmp_header);
    aws_amz_date(r->unix_time, date);
    int rc = 0;
    rc |= wv_buf_printf(canonical, "%s\n", r->method);
    if (rc == 0 && (rc = canonical_path(canonical, r->service, r->path)) < 0)
        return rc;
    rc |= wv_buf_printf(canonical, "\n%s\n", r->query);
    for (size_t i = 0; rc == 0 && i < r->nheaders; i++) {
        rc |= wv_buf_printf(canonical, "%s:", r->headers[i].name);
        rc |= append_value(canonical, r->headers[i].value);
        rc |= wv_buf_append(canonical, "\n", 1);
        rc |= wv_buf_printf(signed_names, "%s%s", i ? ";" : "", r->headers[i].name);
    }
    rc |= aws_cstr(signed_names);
    rc |= wv_buf_printf(canonical, "\n%s\n%s", signed_names->p, r->payload_hash);
    if (rc)
        return -ENOMEM;

    char hashed[AWS_SHA256_HEX];
    aws_sha256_hex(canonical->p, canonical->n, hashed);
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
    aws_hex(sig, 32, signature);
    return 0;
}

int aws_sign(aws_sign_req *r, wv_buf *authorization, wv_buf *dbg_canonical, wv_buf *dbg_sts)
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
        rc = aws_cstr(authorization);
    if (rc == 0 && dbg_canonical)
        rc = wv_buf_append(dbg_canonical, canonical.p, canonical.n);
    if (rc == 0 && dbg_sts) {
        char hashed[AWS_SHA256_HEX];
        aws_sha256_hex(canonical.p, canonical.n, hashed);
        rc = wv_buf_printf(dbg_sts, "AWS4-HMAC-SHA256\n%s\n%.8s/%s/%s/aws4_request\n%s", date, date,
                           r->region, r->service, hashed);
        rc = rc ? rc : aws_cstr(dbg_sts);
    }
    wv_buf_free(&names);
    wv_buf_free(&canonical);
    return rc < 0 ? rc : 0;
}

int aws_signature(aws_sign_req *r, char out[65], wv_buf *dbg_canonical)
{
    wv_buf names = {0}, canonical = {0};
    char date[17];
    int rc = sign_core(r, out, &names, &canonical, date);
    if (rc == 0 && dbg_canonical)
        rc = wv_buf_append(dbg_canonical, canonical.p, canonical.n);
    if (rc == 0 && dbg_canonical)
        rc = aws_cstr(dbg_canonical);
    wv_buf_free(&names);
    wv_buf_free(&canonical);
    return rc < 0 ? rc : 0;
}
