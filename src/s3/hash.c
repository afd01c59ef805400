/*
 * The hashes that go with a body: the hex SHA-256 that is signed
 * (x-amz-content-sha256), and the base64 MD5 (Content-MD5) or SHA-256
 * (x-amz-checksum-sha256) that S3 checks besides.
 *
 * Hashing a body is CPU work proportional to its size (an 8 MiB part
 * costs milliseconds): above 256 KiB it runs on the offload pool so the
 * shard's other fibers are not held up.
 */
#include <errno.h>
#include <openssl/evp.h>

#include "s3/s3_internal.h"

enum { OFFLOAD_HASH_FROM = 256 << 10 };

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
    aws_sha256(j->p, j->n, d);
    aws_hex(d, 32, j->out->sha256_hex);
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
