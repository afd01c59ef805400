/*
 * AWS Signature Version 4, shared by the clients of AWS services (src/s3,
 * src/kinesis). Internal: not part of the public API, and the one private
 * header other modules may include (scripts/check_private_headers.sh lists
 * it), because every AWS client signs its requests the same way.
 *
 * A signature covers the canonical request (method, canonical path,
 * sorted and encoded query, the signed headers lower-cased and sorted with
 * their values trimmed, the payload's SHA-256), hashed into a string to
 * sign with the date and the credential scope, and signed with a key
 * derived from the secret by four HMACs (date, region, service,
 * "aws4_request").
 *
 * The canonical path depends on the service. S3 signs the path as it is
 * sent (encoded once). Every other service signs it normalised (empty and
 * "." segments dropped, ".." resolved) and then URI-encoded a second time,
 * so "/a%20b" is signed as "/a%2520b". The signer does this itself from
 * the service's name; callers pass the path exactly as it goes out.
 */
#ifndef WEAVE_AWS_SIGV4_H
#define WEAVE_AWS_SIGV4_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/buf.h"

#pragma GCC visibility push(hidden)

/* Lower-case hex of a SHA-256: 64 bytes and a NUL. */
enum { AWS_SHA256_HEX = 65 };

/* Make b's bytes a C string (a NUL after them, not counted): wv_buf's
 * appends do not write one. 0 or -ENOMEM. */
static inline int aws_cstr(wv_buf *b)
{
    if (wv_buf_reserve(b, 1) < 0)
        return -ENOMEM;
    b->p[b->n] = '\0';
    return 0;
}

/* The SHA-256 of p[0..n), raw and as lower-case hex. */
void aws_sha256(const void *p, size_t n, unsigned char out[32]);
void aws_sha256_hex(const void *p, size_t n, char out[AWS_SHA256_HEX]);

/* p[0..n) as lower-case hex into out (2n bytes and a NUL). */
void aws_hex(const unsigned char *p, size_t n, char *out);

/* Append s[0..n) URI-encoded as SigV4 wants it: every byte but
 * A-Z a-z 0-9 - _ . ~ as %XX (upper-case hex), '/' too unless keep_slash.
 * 0 or -ENOMEM. */
int aws_uri_encode(wv_buf *b, const char *s, size_t n, bool keep_slash);

/* A header to sign: name lower-case, value as sent. */
typedef struct aws_header {
    const char *name;
    const char *value;
} aws_header;

/* A query parameter, before encoding. */
typedef struct aws_param {
    const char *name;
    const char *value; /* "" for a bare name */
} aws_param;

/* What a signature covers. */
typedef struct aws_sign_req {
    const char *method;
    const char *path;    /* as sent, encoded once: "/bucket/a%20key"; "" is "/" */
    const char *query;   /* the canonical query (sorted, encoded), "" for none */
    aws_header *headers; /* sorted here by name; names must be lower-case */
    size_t nheaders;
    const char *payload_hash; /* hex SHA-256 or "UNSIGNED-PAYLOAD" */
    const char *access_key, *secret_key, *region;
    const char *service; /* "s3", "kinesis": the credential scope's, and the path rule */
    int64_t unix_time;
} aws_sign_req;

/* "20130524T000000Z" (16 bytes and a NUL) for a Unix time. */
void aws_amz_date(int64_t unix_time, char out[17]);

/* The canonical query of params: each name and value encoded, sorted by
 * name then value, joined with '&', "name=" for an empty value. 0 or
 * -ENOMEM. params is sorted in place. */
int aws_canonical_query(wv_buf *b, aws_param *params, size_t n);

/* Sign r (its headers sorted in place) and write the Authorization
 * header's value into authorization (NUL-terminated); the canonical
 * request and the string to sign go to dbg_canonical / dbg_sts when not
 * NULL (tests). 0, -ENOMEM, -ENOSPC. */
int aws_sign(aws_sign_req *r, wv_buf *authorization, wv_buf *dbg_canonical, wv_buf *dbg_sts);

/* The signature alone (64 hex bytes and a NUL) of r: for presigned URLs,
 * whose query carries the credential. 0 or -ENOMEM. */
int aws_signature(aws_sign_req *r, char out[65], wv_buf *dbg_canonical);

#pragma GCC visibility pop

#endif
