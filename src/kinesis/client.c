/*
 * wv_kinesis itself and the one request path every call takes.
 *
 * A wv_kinesis is settings read once (options first, then the
 * environment) and never written again, so any fiber of any shard may use
 * it at once; the connections are the HTTP client's, per shard.
 *
 * A request (kinesis_send): the operation's JSON body POSTed to the
 * endpoint's "/" with Content-Type application/x-amz-json-1.1 and
 * X-Amz-Target Kinesis_20131202.<Op>, the Host header given explicitly
 * so that what goes out is what was signed. Each try is signed anew (its
 * X-Amz-Date is its own) and sent through wv_httpc_request with redirects
 * off; aws_send (src/aws/send.c, on wv_retry) runs the tries; a reply of
 * 300 or more is read by reply.c into an errno, the service's __type and
 * message, and whether another try may go better.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/send.h"
#include "aws/sigv4.h"
#include "kinesis/kinesis_internal.h"

/* ------------------------------------------------------------ settings */

static void settings_free(wv_kinesis *k)
{
    aws_settings_free(&k->aws);
    free(k->url);
    free(k);
}

/* The limits, checked and defaulted. */
static int set_limits(wv_kinesis *k, const wv_kinesis_opts *o)
{
    if (o->max_attempts < 0 || o->retry_base_ms < 0 || o->retry_max_ms < 0)
        return wv_fail(-EINVAL, "Kinesis: a negative max_attempts, retry_base_ms or retry_max_ms");
    if (o->max_batch_records < 0 || o->max_batch_records > KINESIS_MAX_BATCH_RECORDS)
        return wv_fail(-EINVAL, "Kinesis: max_batch_records %d is outside 1 to %d",
                       o->max_batch_records, KINESIS_MAX_BATCH_RECORDS);
    k->max_attempts = o->max_attempts ? o->max_attempts : KINESIS_DEFAULT_ATTEMPTS;
    k->retry_base_ms = o->retry_base_ms ? o->retry_base_ms : 100;
    k->retry_max_ms = o->retry_max_ms ? o->retry_max_ms : 5000;
    k->max_record = o->max_record ? o->max_record : KINESIS_DEFAULT_RECORD;
    k->max_batch_records = o->max_batch_records ? o->max_batch_records : KINESIS_MAX_BATCH_RECORDS;
    k->max_batch_bytes = o->max_batch_bytes ? o->max_batch_bytes : KINESIS_DEFAULT_BATCH;
    k->max_response = o->max_response ? o->max_response : KINESIS_DEFAULT_RESPONSE;
    if (k->max_record > k->max_batch_bytes)
        return wv_fail(-EINVAL, "Kinesis: max_record %zu is larger than max_batch_bytes %zu",
                       k->max_record, k->max_batch_bytes);
    if (k->max_response > ((size_t)1 << 30) || k->max_batch_bytes > ((size_t)256 << 20))
        return wv_fail(-EINVAL,
                       "Kinesis: max_response over 1 GiB, or max_batch_bytes over 256 MiB");
    return 0;
}

int wv_kinesis_new(const wv_kinesis_opts *opts, wv_kinesis **out)
{
    if (!out)
        return wv_fail(-EINVAL, "Kinesis: no place for the client");
    *out = NULL;
    wv_kinesis_opts none = {0};
    const wv_kinesis_opts *o = opts ? opts : &none;
    wv_kinesis *k = calloc(1, sizeof *k);
    if (!k)
        return wv_fail(-ENOMEM, "Kinesis: out of memory");
    int rc = set_limits(k, o);
    if (rc == 0)
        rc = aws_region(&k->aws, o->region, "Kinesis");
    const char *endpoint = o->endpoint ? o->endpoint : aws_env("KINESIS_ENDPOINT");
    char own[128];
    if (rc == 0 && !endpoint) {
        snprintf(own, sizeof own, "https://kinesis.%s.amazonaws.com", k->aws.region);
        endpoint = own;
    }
    if (rc == 0)
        rc = aws_endpoint(&k->aws, endpoint, "Kinesis");
    if (rc == 0)
        rc =
            aws_credentials(&k->aws, o->access_key, o->secret_key, o->session_token, "Kinesis", "");
    if (rc == 0)
        rc = aws_tls(&k->aws, o->ca_file, o->insecure, "Kinesis");
    if (rc == 0) {
        size_t n = strlen(k->aws.scheme) + strlen(k->aws.host) + 5;
        if (!(k->url = malloc(n)))
            rc = wv_fail(-ENOMEM, "Kinesis: out of memory");
        else
            snprintf(k->url, n, "%s://%s/", k->aws.scheme, k->aws.host);
    }
    if (rc < 0) {
        settings_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

void wv_kinesis_free(wv_kinesis *k)
{
    if (k)
        settings_free(k);
}

/* ------------------------------------------------------------ signing */

int kinesis_sign(const wv_kinesis *k, const char *op, const wv_buf *body, int64_t unix_time,
                 kinesis_signed *out)
{
    memset(out, 0, sizeof *out);
    int len = snprintf(out->target, sizeof out->target, KINESIS_TARGET_PREFIX "%s", op);
    if (len < 0 || (size_t)len >= sizeof out->target)
        return -EINVAL;
    aws_amz_date(unix_time, out->date);
    /* what goes out, and the same lower-cased for the signature */
    aws_header signing[5] = {{"host", k->aws.host},
                             {"content-type", KINESIS_CONTENT_TYPE},
                             {"x-amz-target", out->target},
                             {"x-amz-date", out->date}};
    out->headers[0] = (wv_httpc_header){"Host", k->aws.host};
    out->headers[1] = (wv_httpc_header){"Content-Type", KINESIS_CONTENT_TYPE};
    out->headers[2] = (wv_httpc_header){"X-Amz-Target", out->target};
    out->headers[3] = (wv_httpc_header){"X-Amz-Date", out->date};
    size_t n = 4;
    if (k->aws.session_token) {
        signing[n] = (aws_header){"x-amz-security-token", k->aws.session_token};
        out->headers[n++] = (wv_httpc_header){"X-Amz-Security-Token", k->aws.session_token};
    }
    char payload[AWS_SHA256_HEX];
    aws_sha256_hex(body->n ? body->p : "", body->n, payload);
    aws_sign_req r = {
        .method = "POST",
        .path = "/",
        .query = "",
        .headers = signing,
        .nheaders = n,
        .payload_hash = payload,
        .access_key = k->aws.access_key,
        .secret_key = k->aws.secret_key,
        .region = k->aws.region,
        .service = "kinesis",
        .unix_time = unix_time,
    };
    if (aws_sign(&r, &out->authorization, NULL, NULL) < 0)
        return -ENOMEM;
    out->headers[n++] = (wv_httpc_header){"Authorization", out->authorization.p};
    out->n = n;
    return 0;
}

void kinesis_signed_free(kinesis_signed *s)
{
    wv_buf_free(&s->authorization);
}

void kinesis_body_begin(wv_json *j, wv_buf *b, const char *stream)
{
    wv_json_init(j, b);
    wv_json_object_begin(j);
    if (stream) {
        wv_json_key(j, "StreamName");
        wv_json_string(j, stream);
    }
}

/* ------------------------------------------------------------ sending */

static int64_t unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

/* One try's request (aws_send's sign and refusal callbacks). */
typedef struct kinesis_try {
    wv_kinesis *k;
    const kinesis_call *c;
    kinesis_signed s;
} kinesis_try;

static int sign_try(void *arg, wv_httpc_req *req)
{
    kinesis_try *t = arg;
    kinesis_signed_free(&t->s);
    if (kinesis_sign(t->k, t->c->op, t->c->body, unix_now(), &t->s) < 0) /* each try anew */
        return wv_fail(-ENOMEM, "%s: cannot sign the request", t->c->what);
    *req = (wv_httpc_req){
        .method = "POST",
        .url = t->k->url,
        .headers = t->s.headers,
        .nheaders = t->s.n,
        .body = t->c->body->n ? t->c->body->p : "",
        .body_len = t->c->body->n,
        .max_response = t->k->max_response,
        .max_redirects = -1,
        .ca_file = t->k->aws.ca_file,
        .insecure = t->k->aws.insecure,
    };
    return 0;
}

static int refused(void *arg, const wv_httpc_response *resp, bool *retry)
{
    const kinesis_call *c = ((kinesis_try *)arg)->c;
    return kinesis_refusal(
        resp->status, resp->body.p, resp->body.n, wv_httpc_header_get(resp, "x-amzn-ErrorType"),
        wv_httpc_header_get(resp, "x-amzn-RequestId"), c->what, c->create, retry);
}

int kinesis_send(wv_kinesis *k, const kinesis_call *c, wv_json_doc **doc)
{
    if (doc)
        *doc = NULL;
    kinesis_try t = {.k = k, .c = c};
    wv_httpc_response resp;
    int rc = aws_send(&(aws_call){.what = c->what,
                                  .sign = sign_try,
                                  .refusal = refused,
                                  .arg = &t,
                                  .max_attempts = k->max_attempts,
                                  .base_ms = k->retry_base_ms,
                                  .max_ms = k->retry_max_ms},
                      &resp);
    kinesis_signed_free(&t.s);
    if (rc == 0 && doc)
        rc = kinesis_parse(resp.body.p, resp.body.n, k->max_response, c->what, doc);
    wv_httpc_response_free(&resp);
    return rc;
}
