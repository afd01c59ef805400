/*
 * wv_s3 itself and the one request path every call takes.
 *
 * A wv_s3 is settings read once (options first, then the environment) and
 * never written again, so any fiber of any shard may use it at once; the
 * connections are the HTTP client's, per shard. It is reference-counted
 * only so that an abort sent in a fiber of its own (transfer.c) may
 * outlive wv_s3_free.
 *
 * A request (s3_send): the URL built from the endpoint, the addressing
 * style, the URI-encoded bucket and key and the sorted, encoded query, so
 * that the path and query on the wire are byte for byte the canonical
 * ones that were signed; the Host header given explicitly for the same
 * reason. Each try is signed anew (its X-Amz-Date is its own) and sent
 * through wv_httpc_request with redirects off (a redirect from S3 is an
 * error naming the right endpoint, not something to follow with a
 * signature made for another host) and no decoding (the bytes are the
 * object's). aws_send (src/aws/send.c, on wv_retry) runs the tries; a
 * reply of 300 or more is read as S3's <Error> document and becomes an
 * errno, the code and the message.
 */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/send.h"
#include "s3/s3_internal.h"
#include "weave/net.h"

/* ------------------------------------------------------------ settings */

static void settings_free(wv_s3 *s3)
{
    aws_settings_free(&s3->aws);
    free(s3);
}

int wv_s3_new(const wv_s3_opts *opts, wv_s3 **out)
{
    if (!out)
        return wv_fail(-EINVAL, "S3: no place for the client");
    *out = NULL;
    wv_s3_opts none = {0};
    const wv_s3_opts *o = opts ? opts : &none;
    if (o->provider != WV_S3_AWS && o->provider != WV_S3_GCS)
        return wv_fail(-EINVAL, "S3: unknown provider %d", (int)o->provider);
    if (o->addressing < WV_S3_ADDRESSING_AUTO || o->addressing > WV_S3_ADDRESSING_VIRTUAL_HOST)
        return wv_fail(-EINVAL, "S3: unknown addressing %d", (int)o->addressing);
    if (o->checksum < WV_S3_CHECKSUM_MD5 || o->checksum > WV_S3_CHECKSUM_NONE)
        return wv_fail(-EINVAL, "S3: unknown checksum %d", (int)o->checksum);
    if (o->provider == WV_S3_GCS && o->checksum == WV_S3_CHECKSUM_SHA256)
        return wv_fail(-EINVAL, "S3: GCS's XML API takes Content-MD5, not x-amz-checksum-sha256");
    if (o->part_size && (o->part_size < S3_MIN_PART || o->part_size > S3_MAX_PART))
        return wv_fail(-EINVAL, "S3: part_size %zu is outside 5 MiB to 5 GiB", o->part_size);
    if (o->parts_in_flight < 0 || o->parts_in_flight > S3_MAX_IN_FLIGHT)
        return wv_fail(-EINVAL, "S3: parts_in_flight %d is outside 1 to %d", o->parts_in_flight,
                       S3_MAX_IN_FLIGHT);
    if (o->max_attempts < 0 || o->retry_base_ms < 0)
        return wv_fail(-EINVAL, "S3: a negative max_attempts or retry_base_ms");

    wv_s3 *s3 = calloc(1, sizeof *s3);
    if (!s3)
        return wv_fail(-ENOMEM, "S3: out of memory");
    atomic_init(&s3->refs, 1);
    s3->provider = o->provider;
    s3->addressing = o->addressing;
    s3->checksum = o->checksum;
    s3->part_size = o->part_size ? o->part_size : S3_DEFAULT_PART;
    s3->parts_in_flight = o->parts_in_flight ? o->parts_in_flight : S3_DEFAULT_IN_FLIGHT;
    s3->max_object = o->max_object ? o->max_object : S3_DEFAULT_MAX_OBJ;
    s3->max_attempts = o->max_attempts ? o->max_attempts : S3_DEFAULT_ATTEMPTS;
    s3->retry_base_ms = o->retry_base_ms ? o->retry_base_ms : 100;

    /* GCS's region is "auto" unless given */
    const char *region = o->region;
    if (!region && o->provider == WV_S3_GCS)
        region = "auto";
    int rc = aws_region(&s3->aws, region, "S3");

    const char *endpoint = o->endpoint;
    if (!endpoint && o->provider == WV_S3_AWS)
        endpoint = aws_env("S3_ENDPOINT");
    char own[128];
    if (rc == 0 && !endpoint) {
        if (o->provider == WV_S3_GCS) {
            endpoint = "https://storage.googleapis.com";
        } else {
            snprintf(own, sizeof own, "https://s3.%s.amazonaws.com", s3->aws.region);
            endpoint = own;
            s3->aws_endpoint = true;
        }
    }
    if (rc == 0)
        rc = aws_endpoint(&s3->aws, endpoint, "S3");
    if (rc == 0 && o->anonymous)
        s3->anonymous = true;
    else if (rc == 0)
        rc = aws_credentials(&s3->aws, o->access_key, o->secret_key, o->session_token, "S3",
                             " (or anonymous for public buckets)");
    if (rc == 0)
        rc = aws_tls(&s3->aws, o->ca_file, o->insecure, "S3");
    if (rc < 0) {
        settings_free(s3);
        return rc;
    }
    *out = s3;
    return 0;
}

void s3_ref(wv_s3 *s3)
{
    atomic_fetch_add(&s3->refs, 1);
}

void wv_s3_free(wv_s3 *s3)
{
    if (s3 && atomic_fetch_sub(&s3->refs, 1) == 1)
        settings_free(s3);
}

/* ------------------------------------------------------------ locations */

int wv_s3_location_parse(const char *url, wv_s3_location *loc)
{
    if (!loc)
        return wv_fail(-EINVAL, "S3: no location to fill");
    memset(loc, 0, sizeof *loc);
    if (!url)
        return wv_fail(-EINVAL, "S3: no URL");
    const char *rest;
    if (strncmp(url, "s3://", 5) == 0) {
        loc->provider = WV_S3_AWS;
        rest = url + 5;
    } else if (strncmp(url, "gs://", 5) == 0) {
        loc->provider = WV_S3_GCS;
        rest = url + 5;
    } else {
        char shown[128];
        wv_url_redact(url, shown, sizeof shown);
        return wv_fail(-EINVAL, "S3: \"%s\" is not an s3:// or gs:// URL", shown);
    }
    const char *slash = strchr(rest, '/');
    size_t blen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (blen == 0)
        return wv_fail(-EINVAL, "S3: the URL names no bucket");
    loc->bucket = strndup(rest, blen);
    loc->key = strdup(slash ? slash + 1 : "");
    if (!loc->bucket || !loc->key) {
        wv_s3_location_free(loc);
        return wv_fail(-ENOMEM, "S3: out of memory");
    }
    return 0;
}

void wv_s3_location_free(wv_s3_location *loc)
{
    if (!loc)
        return;
    free(loc->bucket);
    free(loc->key);
    memset(loc, 0, sizeof *loc);
}

/* ------------------------------------------------------------ names */

static bool bucket_ok(const char *b)
{
    size_t n = 0;
    for (; b[n]; n++) {
        char c = b[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return n >= 1 && n <= S3_MAX_BUCKET;
}

/* Does the key have a "." or ".." segment? */
static bool dot_segment(const char *k)
{
    for (const char *s = k;;) {
        const char *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.'))
            return true;
        if (!e)
            return false;
        s = e + 1;
    }
}

int s3_check_names(const char *method, const char *bucket, const char *key, char *what, size_t cap)
{
    snprintf(what, cap, "S3 %s %.*s%s%.*s", method, 80, bucket ? bucket : "(null)", key ? "/" : "",
             200, key ? key : "");
    if (!bucket || !bucket_ok(bucket))
        return wv_fail(-EINVAL,
                       "%s: the bucket name is empty, too long or holds a character "
                       "other than letters, digits, '.', '-' and '_'",
                       what);
    if (key) {
        size_t n = strlen(key);
        if (n == 0 || n > S3_MAX_KEY)
            return wv_fail(-EINVAL, "%s: a key is 1 to %d bytes", what, S3_MAX_KEY);
        if (dot_segment(key))
            return wv_fail(-EINVAL, "%s: a key with a \".\" or \"..\" segment cannot be addressed",
                           what);
    }
    return 0;
}

/* ------------------------------------------------------------ put headers */

static bool token_ok(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c && strchr("!#$%&'*+-.^_`|~", c))))
            return false;
    }
    return true;
}

int s3_put_headers(wv_s3 *s3, const wv_s3_put_opts *o, const s3_body_hashes *hashes,
                   wv_httpc_header *h, wv_buf *mem, const char *what)
{
    size_t n = 0;
    size_t offsets[2 * 64 + 8];
    size_t nmeta = o ? o->nmetadata : 0;
    if (nmeta > 64)
        return wv_fail(-EINVAL, "%s: more than 64 metadata fields", what);
    if (nmeta && !o->metadata)
        return wv_fail(-EINVAL, "%s: nmetadata without metadata", what);
    if (o && o->content_type && strpbrk(o->content_type, "\r\n"))
        return wv_fail(-EINVAL, "%s: the content type holds a line break", what);
    int rc = 0;
    for (size_t i = 0; i < nmeta; i++) {
        const wv_httpc_header *m = &o->metadata[i];
        if (!token_ok(m->name))
            return wv_fail(-EINVAL, "%s: metadata name \"%.40s\" is not an HTTP token", what,
                           m->name ? m->name : "(null)");
        if (!m->value || strpbrk(m->value, "\r\n"))
            return wv_fail(-EINVAL, "%s: the value of metadata %.40s holds a line break", what,
                           m->name);
        offsets[2 * i] = mem->n;
        rc |= wv_buf_printf(mem, "x-amz-meta-%s", m->name);
        rc |= wv_buf_append(mem, "", 1);
        for (size_t k = offsets[2 * i]; k < mem->n; k++)
            if (mem->p[k] >= 'A' && mem->p[k] <= 'Z')
                mem->p[k] = (char)(mem->p[k] | 0x20);
    }
    if (rc)
        return wv_fail(-ENOMEM, "%s: out of memory", what);
    for (size_t i = 0; i < nmeta; i++)
        h[n++] = (wv_httpc_header){mem->p + offsets[2 * i], o->metadata[i].value};
    if (o && o->content_type)
        h[n++] = (wv_httpc_header){"content-type", o->content_type};
    if (hashes && s3->checksum == WV_S3_CHECKSUM_MD5)
        h[n++] = (wv_httpc_header){"content-md5", hashes->md5_b64};
    else if (hashes && s3->checksum == WV_S3_CHECKSUM_SHA256)
        h[n++] = (wv_httpc_header){"x-amz-checksum-sha256", hashes->sha256_b64};
    return (int)n;
}

/* ------------------------------------------------------------ dates */

int64_t s3_unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

int64_t s3_parse_iso8601(const char *s)
{
    int y, mo, d, h, mi, se;
    if (!s || strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || s[10] != 'T' || !digits(s + 11, 2, &h) ||
        s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' || !digits(s + 17, 2, &se))
        return 0;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return 0;
    const char *z = s + 19;
    if (*z == '.')
        for (z++; *z >= '0' && *z <= '9'; z++) {
        }
    if (strcmp(z, "Z") != 0)
        return 0;
    return wv_days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
}

int64_t s3_parse_http_date(const char *s)
{
    if (!s)
        return 0;
    time_t t = curl_getdate(s, NULL);
    return t > 0 ? (int64_t)t : 0;
}

/* ------------------------------------------------------------ errors */

typedef struct s3_code {
    const char *code;
    int err;
    bool retry;
} s3_code;

static const s3_code codes[] = {
    {"NoSuchKey", -ENOENT, false},
    {"NoSuchBucket", -ENOENT, false},
    {"NoSuchUpload", -ENOENT, false},
    {"NoSuchVersion", -ENOENT, false},
    {"AccessDenied", -EACCES, false},
    {"AllAccessDisabled", -EACCES, false},
    {"AccountProblem", -EACCES, false},
    {"ExpiredToken", -EACCES, false},
    {"InvalidAccessKeyId", -EACCES, false},
    {"InvalidToken", -EACCES, false},
    {"RequestTimeTooSkewed", -EACCES, false},
    {"SignatureDoesNotMatch", -EACCES, false},
    {"PreconditionFailed", -ESTALE, false},
    {"InvalidRange", -ERANGE, false},
    {"EntityTooLarge", -EFBIG, false},
    {"SlowDown", -EAGAIN, true},
    {"ServiceUnavailable", -EAGAIN, true},
    {"InternalError", -EIO, true},
    {"RequestTimeout", -EIO, true},
};

/* The errno a refusal means, and whether another try may go better. */
static int errno_for(int status, const char *code, bool *retry)
{
    for (size_t i = 0; code && i < sizeof codes / sizeof codes[0]; i++)
        if (strcmp(code, codes[i].code) == 0) {
            *retry = codes[i].retry;
            return codes[i].err;
        }
    *retry = status == 500 || status == 502 || status == 503 || status == 504;
    switch (status) {
    case 403:
        return -EACCES;
    case 404:
        return -ENOENT;
    case 412:
        return -ESTALE;
    case 416:
        return -ERANGE;
    case 503:
        return -EAGAIN;
    default:
        return -EIO;
    }
}

/* What a reply of 300 or more means: the errno, with wv_errmsg "WHAT:
 * Code: Message (HTTP n, request id r)". */
static int refusal(const wv_httpc_response *resp, const char *what, bool *retry)
{
    const char *code = NULL, *message = NULL, *request_id = NULL, *endpoint = NULL;
    s3_xml x = {.max_nodes = 256};
    char why[128];
    if (resp->body.n && s3_xml_parse(resp->body.p, resp->body.n, &x, why, sizeof why) == 0 &&
        s3_xml_is(&x, 0, "Error")) {
        code = s3_xml_child_text(&x, 0, "Code");
        message = s3_xml_child_text(&x, 0, "Message");
        request_id = s3_xml_child_text(&x, 0, "RequestId");
        endpoint = s3_xml_child_text(&x, 0, "Endpoint"); /* a PermanentRedirect's */
    }
    /* a bucket in another region: say where it is */
    const char *region = wv_httpc_header_get(resp, "x-amz-bucket-region");
    char where[200] = "";
    if (endpoint && *endpoint)
        snprintf(where, sizeof where, "; the bucket is served at %.100s", endpoint);
    else if (region && *region && resp->status >= 300 && resp->status < 400)
        snprintf(where, sizeof where, "; the bucket is in region %.60s", region);
    if (!request_id)
        request_id = wv_httpc_header_get(resp, "x-amz-request-id");
    if (!code || !*code) {
        /* a HEAD's refusal has no body: the status alone */
        switch (resp->status) {
        case 404:
            code = "NotFound";
            break;
        case 403:
            code = "Forbidden";
            break;
        case 412:
            code = "PreconditionFailed";
            break;
        default:
            code = NULL;
        }
    }
    int rc = errno_for(resp->status, code, retry);
    rc = wv_fail(rc, "%s: %s%s%.300s%s (HTTP %d%s%.80s)", what, code ? code : "HTTP error",
                 message && *message ? ": " : "", message ? message : "", where, resp->status,
                 request_id ? ", request id " : "", request_id ? request_id : "");
    s3_xml_free(&x);
    return rc;
}

int s3_parse_reply(wv_httpc_response *resp, const char *root, s3_xml *x, const char *what)
{
    char why[160];
    int rc =
        s3_xml_parse(resp->body.p ? resp->body.p : (char *)"", resp->body.n, x, why, sizeof why);
    if (rc < 0)
        return wv_fail(rc == -ENOMEM ? -ENOMEM : -EPROTO, "%s: the reply is not valid XML (%s)",
                       what, why);
    if (s3_xml_is(x, 0, "Error")) {
        /* CopyObject and CompleteMultipartUpload may fail after a 200 */
        const char *code = s3_xml_child_text(x, 0, "Code");
        const char *message = s3_xml_child_text(x, 0, "Message");
        bool retry;
        return wv_fail(errno_for(500, code, &retry), "%s: %s: %.300s (in a 200 reply)", what,
                       code ? code : "Error", message ? message : "");
    }
    if (!s3_xml_is(x, 0, root))
        return wv_fail(-EPROTO, "%s: the reply is <%.*s>, not <%s>", what,
                       (int)(x->nodes[0].name_len > 60 ? 60 : x->nodes[0].name_len),
                       x->nodes[0].name, root);
    return 0;
}

/* ------------------------------------------------------------ sending */

/* The URL's path and Host: path style puts the bucket first in the
 * path; virtual-host style in the host. */
static bool virtual_host(const wv_s3 *s3, const char *bucket)
{
    if (s3->addressing == WV_S3_ADDRESSING_VIRTUAL_HOST)
        return true;
    if (s3->addressing == WV_S3_ADDRESSING_PATH || !s3->aws_endpoint)
        return false;
    size_t n = strlen(bucket);
    if (n < 3 || n > 63 || bucket[0] == '-' || bucket[n - 1] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((bucket[i] >= 'a' && bucket[i] <= 'z') || (bucket[i] >= '0' && bucket[i] <= '9') ||
              bucket[i] == '-'))
            return false; /* dots break TLS's name check; upper case is not DNS */
    return true;
}

int s3_target(const wv_s3 *s3, const char *bucket, const char *key, wv_buf *host, wv_buf *uri)
{
    int rc = 0;
    if (virtual_host(s3, bucket)) {
        rc |= wv_buf_printf(host, "%s.%s", bucket, s3->aws.host);
        rc |= wv_buf_append(uri, "/", 1);
    } else {
        rc |= wv_buf_puts(host, s3->aws.host);
        rc |= wv_buf_append(uri, "/", 1);
        rc |= aws_uri_encode(uri, bucket, strlen(bucket), false);
        if (key)
            rc |= wv_buf_append(uri, "/", 1);
    }
    if (key)
        rc |= aws_uri_encode(uri, key, strlen(key), true);
    rc |= aws_cstr(host);
    rc |= aws_cstr(uri);
    return rc ? -ENOMEM : 0;
}

int s3_prepare(wv_s3 *s3, const s3_request *r, s3_prepared *p)
{
    memset(p, 0, sizeof *p);
    if (r->nheaders > S3_MAX_EXTRA_HEADERS)
        return wv_fail(-EINVAL, "%s: too many headers", r->what);
    int rc = s3_target(s3, r->bucket, r->key, &p->host, &p->uri);
    rc |= aws_canonical_query(&p->query, r->params, r->nparams);
    if (rc == 0)
        rc |= wv_buf_printf(&p->url, "%s://%s%s%s%s", s3->aws.scheme, p->host.p, p->uri.p,
                            p->query.n ? "?" : "", p->query.p);
    rc |= aws_cstr(&p->url);
    p->payload_hash = r->payload_hash;
    if (!p->payload_hash) {
        aws_sha256_hex(r->body ? r->body : "", r->body ? r->body_len : 0, p->payload);
        p->payload_hash = p->payload;
    }
    size_t n = 0;
    p->headers[n] = (wv_httpc_header){"Host", p->host.p};
    p->signing[n++] = (aws_header){"host", p->host.p};
    p->headers[n] = (wv_httpc_header){"x-amz-content-sha256", p->payload_hash};
    p->signing[n++] = (aws_header){"x-amz-content-sha256", p->payload_hash};
    if (s3->aws.session_token) {
        p->headers[n] = (wv_httpc_header){"x-amz-security-token", s3->aws.session_token};
        p->signing[n++] = (aws_header){"x-amz-security-token", s3->aws.session_token};
    }
    /* the extra headers' names, lower-cased for the signature (offsets
     * first: the buffer may move while it grows) */
    size_t at[S3_MAX_EXTRA_HEADERS];
    for (size_t i = 0; i < r->nheaders; i++) {
        at[i] = p->names.n;
        rc |= wv_buf_puts(&p->names, r->headers[i].name);
        rc |= wv_buf_append(&p->names, "", 1);
    }
    if (rc) {
        s3_prepared_free(p);
        return wv_fail(-ENOMEM, "%s: out of memory", r->what);
    }
    for (size_t i = 0; i < p->names.n; i++)
        if (p->names.p[i] >= 'A' && p->names.p[i] <= 'Z')
            p->names.p[i] = (char)(p->names.p[i] | 0x20);
    for (size_t i = 0; i < r->nheaders; i++) {
        p->headers[n] = r->headers[i];
        p->signing[n++] = (aws_header){p->names.p + at[i], r->headers[i].value};
    }
    p->nfixed = p->n = n;
    return 0;
}

int s3_prepared_sign(wv_s3 *s3, const s3_request *r, s3_prepared *p, int64_t unix_time)
{
    p->n = p->nfixed;
    wv_buf_free(&p->authorization);
    if (s3->anonymous)
        return 0;
    aws_amz_date(unix_time, p->date);
    p->headers[p->n] = (wv_httpc_header){"x-amz-date", p->date};
    p->signing[p->n++] = (aws_header){"x-amz-date", p->date};
    /* s3_sign sorts what it is given: a copy, so headers and signing
     * stay side by side */
    aws_header sorted[S3_MAX_EXTRA_HEADERS + 6];
    memcpy(sorted, p->signing, p->n * sizeof *sorted);
    aws_sign_req sr = {
        .method = r->method,
        .path = p->uri.p,
        .query = p->query.p,
        .headers = sorted,
        .nheaders = p->n,
        .payload_hash = p->payload_hash,
        .access_key = s3->aws.access_key,
        .secret_key = s3->aws.secret_key,
        .region = s3->aws.region,
        .service = "s3",
        .unix_time = unix_time,
    };
    if (aws_sign(&sr, &p->authorization, NULL, NULL) < 0)
        return wv_fail(-ENOMEM, "%s: out of memory", r->what);
    p->headers[p->n++] = (wv_httpc_header){"authorization", p->authorization.p};
    return 0;
}

void s3_prepared_free(s3_prepared *p)
{
    wv_buf_free(&p->url);
    wv_buf_free(&p->uri);
    wv_buf_free(&p->query);
    wv_buf_free(&p->host);
    wv_buf_free(&p->names);
    wv_buf_free(&p->authorization);
}

/* One try's request, signed now (aws_send's sign). */
typedef struct s3_try {
    wv_s3 *s3;
    const s3_request *r;
    s3_prepared *p;
} s3_try;

static int sign_try(void *arg, wv_httpc_req *req)
{
    s3_try *t = arg;
    const s3_request *r = t->r;
    int rc = s3_prepared_sign(t->s3, r, t->p, s3_unix_now()); /* each try signed anew */
    if (rc < 0)
        return rc;
    *req = (wv_httpc_req){
        .method = r->method,
        .url = t->p->url.p,
        .headers = t->p->headers,
        .nheaders = t->p->n,
        .body = r->body,
        .body_len = r->body_len,
        .max_response = r->max_response ? r->max_response : S3_MAX_XML_REPLY,
        .max_redirects = -1,
        .version = WV_HTTPC_HTTP1,
        .ca_file = t->s3->aws.ca_file,
        .insecure = t->s3->aws.insecure,
        .no_decompress = true,
    };
    return 0;
}

static int refused(void *arg, const wv_httpc_response *resp, bool *retry)
{
    return refusal(resp, ((s3_try *)arg)->r->what, retry);
}

int s3_send(wv_s3 *s3, const s3_request *r, wv_httpc_response *resp)
{
    memset(resp, 0, sizeof *resp);
    s3_prepared p;
    int rc = s3_prepare(s3, r, &p);
    if (rc < 0)
        return rc;
    s3_try t = {.s3 = s3, .r = r, .p = &p};
    rc = aws_send(&(aws_call){.what = r->what,
                              .sign = sign_try,
                              .refusal = refused,
                              .arg = &t,
                              .max_attempts = s3->max_attempts,
                              .base_ms = s3->retry_base_ms},
                  resp);
    s3_prepared_free(&p);
    return rc;
}
