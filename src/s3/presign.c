/*
 * Presigned URLs: SigV4 carried in the query string instead of a header,
 * so that anyone holding the URL (a browser, curl, another service) may
 * send that one request until it expires, without credentials.
 *
 * The query holds X-Amz-Algorithm, X-Amz-Credential (key id and scope),
 * X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders ("host": the only header
 * a holder is bound to) and, with temporary credentials,
 * X-Amz-Security-Token; these are part of the canonical query that is
 * signed, and X-Amz-Signature is appended last. The payload is
 * UNSIGNED-PAYLOAD: the holder's body is not known when signing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3/s3_internal.h"

int s3_presign_at(wv_s3 *s3, const char *method, const char *bucket, const char *key,
                  int64_t expires_s, int64_t unix_time, char **url)
{
    if (url)
        *url = NULL;
    char what[S3_WHAT_MAX];
    const char *m = method ? method : "(null)";
    int rc = s3_check_names("PRESIGN", bucket, key, what, sizeof what);
    if (rc < 0)
        return rc;
    if (!s3 || !url)
        return wv_fail(-EINVAL, "%s: no client or no place for the URL", what);
    if (strcmp(m, "GET") != 0 && strcmp(m, "PUT") != 0 && strcmp(m, "HEAD") != 0 &&
        strcmp(m, "DELETE") != 0)
        return wv_fail(-EINVAL, "%s: presigned URLs are for GET, PUT, HEAD and DELETE, not %.16s",
                       what, m);
    if (expires_s < 1 || expires_s > S3_MAX_EXPIRES)
        return wv_fail(-EINVAL, "%s: expires_s %" PRId64 " is outside 1 to %d (seven days)", what,
                       expires_s, S3_MAX_EXPIRES);
    if (s3->anonymous)
        return wv_fail(-EINVAL, "%s: an anonymous client has no key to sign with", what);

    char date[17], credential[256], expires[24];
    aws_amz_date(unix_time, date);
    int len = snprintf(credential, sizeof credential, "%s/%.8s/%s/s3/aws4_request",
                       s3->aws.access_key, date, s3->aws.region);
    if (len < 0 || (size_t)len >= sizeof credential)
        return wv_fail(-EINVAL, "%s: the access key id is too long", what);
    snprintf(expires, sizeof expires, "%" PRId64, expires_s);
    aws_param params[6] = {
        {"X-Amz-Algorithm", "AWS4-HMAC-SHA256"},
        {"X-Amz-Credential", credential},
        {"X-Amz-Date", date},
        {"X-Amz-Expires", expires},
        {"X-Amz-SignedHeaders", "host"},
    };
    size_t np = 5;
    if (s3->aws.session_token)
        params[np++] = (aws_param){"X-Amz-Security-Token", s3->aws.session_token};

    wv_buf host = {0}, uri = {0}, query = {0}, out = {0};
    rc = s3_target(s3, bucket, key, &host, &uri);
    if (rc == 0)
        rc = aws_canonical_query(&query, params, np);
    char signature[65];
    if (rc == 0) {
        aws_header headers[] = {{"host", host.p}};
        aws_sign_req sr = {
            .method = m,
            .path = uri.p,
            .query = query.p,
            .headers = headers,
            .nheaders = 1,
            .payload_hash = "UNSIGNED-PAYLOAD",
            .access_key = s3->aws.access_key,
            .secret_key = s3->aws.secret_key,
            .region = s3->aws.region,
            .service = "s3",
            .unix_time = unix_time,
        };
        rc = aws_signature(&sr, signature, NULL);
    }
    if (rc == 0)
        rc = wv_buf_printf(&out, "%s://%s%s?%s&X-Amz-Signature=%s", s3->aws.scheme, host.p, uri.p,
                           query.p, signature);
    if (rc == 0)
        rc = aws_cstr(&out);
    wv_buf_free(&host);
    wv_buf_free(&uri);
    wv_buf_free(&query);
    if (rc < 0) {
        wv_buf_free(&out);
        return wv_fail(-ENOMEM, "%s: out of memory", what);
    }
    *url = out.p;
    return 0;
}

int wv_s3_presign(wv_s3 *s3, const char *method, const char *bucket, const char *key,
                  int64_t expires_s, char **url)
{
    return s3_presign_at(s3, method, bucket, key, expires_s, s3_unix_now(), url);
}
