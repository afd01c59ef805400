/*
 * The calls on one object (put, get, a range, head, delete, copy) and on
 * a listing (ListObjectsV2): each checks its names, builds one s3_request
 * and reads what came back into the caller's struct. The response's own
 * memory is kept, not copied: an object's strings point into its head,
 * and a listing's strings into its XML, decoded in place.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "s3/s3_internal.h"
#include "weave/net.h"

/* ------------------------------------------------------------ put */

int wv_s3_put(wv_s3 *s3, const char *bucket, const char *key, const void *data, size_t n,
              const wv_s3_put_opts *o)
{
    char what[S3_WHAT_MAX];
    int rc = s3_check_names("PUT", bucket, key, what, sizeof what);
    if (rc < 0)
        return rc;
    if (!s3)
        return wv_fail(-EINVAL, "%s: no client", what);
    if (n && !data)
        return wv_fail(-EINVAL, "%s: n bytes without data", what);
    if (n > S3_MAX_PART)
        return wv_fail(-EFBIG, "%s: one PUT takes 5 GiB at most; use wv_s3_upload", what);
    s3_body_hashes hashes;
    rc = s3_hash_body(data, n, s3->checksum == WV_S3_CHECKSUM_MD5,
                      s3->checksum == WV_S3_CHECKSUM_SHA256, &hashes);
    if (rc < 0)
        return rc;
    size_t nmeta = o ? o->nmetadata : 0;
    wv_httpc_header h[nmeta + 3];
    wv_buf mem = {0};
    int nh = s3_put_headers(s3, o, &hashes, h, &mem, what);
    if (nh < 0) {
        wv_buf_free(&mem);
        return nh;
    }
    wv_httpc_response resp;
    rc = s3_send(s3,
                 &(s3_request){.method = "PUT",
                               .bucket = bucket,
                               .key = key,
                               .headers = h,
                               .nheaders = (size_t)nh,
                               .body = n ? data : "",
                               .body_len = n,
                               .payload_hash = hashes.sha256_hex,
                               .max_response = S3_MAX_ERROR_REPLY,
                               .what = what},
                 &resp);
    wv_buf_free(&mem);
    wv_httpc_response_free(&resp);
    return rc;
}

/* ------------------------------------------------------------ get, head */

/* "bytes 0-99/1234": the total, or -1. */
static int64_t content_range_total(const char *v)
{
    const char *slash = v ? strrchr(v, '/') : NULL;
    if (!slash || slash[1] < '0' || slash[1] > '9')
        return -1;
    char *end;
    long long total = strtoll(slash + 1, &end, 10);
    return *end == '\0' && total >= 0 ? (int64_t)total : -1;
}

static int64_t header_i64(const wv_httpc_response *resp, const char *name)
{
    const char *v = wv_httpc_header_get(resp, name);
    if (!v || *v < '0' || *v > '9')
        return -1;
    char *end;
    long long x = strtoll(v, &end, 10);
    return *end == '\0' ? (int64_t)x : -1;
}

static int fill_object(wv_s3_object *out, wv_httpc_response *resp, const char *what)
{
    memset(out, 0, sizeof *out);
    out->resp_ = *resp;
    memset(resp, 0, sizeof *resp);
    wv_httpc_response *r = &out->resp_;
    out->body = r->body;
    memset(&r->body, 0, sizeof r->body);
    const char *etag = wv_httpc_header_get(r, "ETag");
    const char *type = wv_httpc_header_get(r, "Content-Type");
    out->etag = etag ? etag : "";
    out->content_type = type ? type : "";
    out->last_modified = s3_parse_http_date(wv_httpc_header_get(r, "Last-Modified"));
    if (r->status == 206) {
        out->size = content_range_total(wv_httpc_header_get(r, "Content-Range"));
        if (out->size < 0) {
            wv_s3_object_free(out);
            return wv_fail(-EPROTO, "%s: a 206 reply without a Content-Range total", what);
        }
    } else {
        /* a HEAD says the size in Content-Length; a GET's body is the size */
        int64_t len = header_i64(r, "Content-Length");
        out->size = out->body.n || len < 0 ? (int64_t)out->body.n : len;
    }
    return 0;
}

int s3_get_object(wv_s3 *s3, const char *method, const char *bucket, const char *key,
                  int64_t offset, int64_t range_len, const char *if_match, size_t max,
                  wv_s3_object *out, const char *what)
{
    char range[64];
    wv_httpc_header h[2];
    size_t nh = 0;
    bool ranged = range_len > 0 || offset > 0;
    if (ranged) {
        if (range_len > 0)
            snprintf(range, sizeof range, "bytes=%" PRId64 "-%" PRId64, offset,
                     offset + range_len - 1);
        else
            snprintf(range, sizeof range, "bytes=%" PRId64 "-", offset);
        h[nh++] = (wv_httpc_header){"range", range};
    }
    if (if_match && *if_match)
        h[nh++] = (wv_httpc_header){"if-match", if_match};
    wv_httpc_response resp;
    int rc = s3_send(s3,
                     &(s3_request){.method = method,
                                   .bucket = bucket,
                                   .key = key,
                                   .headers = h,
                                   .nheaders = nh,
                                   .max_response = max,
                                   .what = what},
                     &resp);
    if (rc < 0)
        return rc;
    if (ranged && resp.status == 200 && (offset > 0 || resp.body.n > (size_t)range_len)) {
        /* the server ignored the range and sent the whole object */
        wv_httpc_response_free(&resp);
        return wv_fail(-EPROTO, "%s: the server ignored the Range header", what);
    }
    return fill_object(out, &resp, what);
}

/* The checks every call that fills an object starts with: *out emptied,
 * names checked into what, a client and an object to fill. */
static int object_call(wv_s3 *s3, const char *method, const char *bucket, const char *key,
                       wv_s3_object *out, char *what)
{
    if (out)
        memset(out, 0, sizeof *out);
    int rc = s3_check_names(method, bucket, key, what, S3_WHAT_MAX);
    if (rc < 0)
        return rc;
    if (!s3 || !out)
        return wv_fail(-EINVAL, "%s: no client or no object to fill", what);
    return 0;
}

int wv_s3_get(wv_s3 *s3, const char *bucket, const char *key, wv_s3_object *out)
{
    char what[S3_WHAT_MAX];
    int rc = object_call(s3, "GET", bucket, key, out, what);
    if (rc < 0)
        return rc;
    return s3_get_object(s3, "GET", bucket, key, 0, 0, NULL, s3->max_object, out, what);
}

int wv_s3_get_range(wv_s3 *s3, const char *bucket, const char *key, int64_t offset, int64_t length,
                    wv_s3_object *out)
{
    char what[S3_WHAT_MAX];
    int rc = object_call(s3, "GET", bucket, key, out, what);
    if (rc < 0)
        return rc;
    if (offset < 0 || length < 0 || (length > 0 && offset > INT64_MAX - length))
        return wv_fail(-EINVAL, "%s: a negative or overflowing range", what);
    return s3_get_object(s3, "GET", bucket, key, offset, length, NULL, s3->max_object, out, what);
}

int wv_s3_head(wv_s3 *s3, const char *bucket, const char *key, wv_s3_object *out)
{
    char what[S3_WHAT_MAX];
    int rc = object_call(s3, "HEAD", bucket, key, out, what);
    if (rc < 0)
        return rc;
    return s3_get_object(s3, "HEAD", bucket, key, 0, 0, NULL, S3_HEAD_LIMIT, out, what);
}

const char *wv_s3_object_meta(const wv_s3_object *o, const char *name)
{
    if (!o || !name)
        return NULL;
    char full[256];
    int len = snprintf(full, sizeof full, "x-amz-meta-%s", name);
    if (len < 0 || (size_t)len >= sizeof full)
        return NULL;
    return wv_httpc_header_get(&o->resp_, full);
}

void wv_s3_object_free(wv_s3_object *o)
{
    if (!o)
        return;
    wv_buf_free(&o->body);
    wv_httpc_response_free(&o->resp_);
    memset(o, 0, sizeof *o);
}

/* ------------------------------------------------------------ delete */

int wv_s3_delete(wv_s3 *s3, const char *bucket, const char *key)
{
    char what[S3_WHAT_MAX];
    int rc = s3_check_names("DELETE", bucket, key, what, sizeof what);
    if (rc < 0)
        return rc;
    if (!s3)
        return wv_fail(-EINVAL, "%s: no client", what);
    wv_httpc_response resp;
    rc = s3_send(s3,
                 &(s3_request){.method = "DELETE",
                               .bucket = bucket,
                               .key = key,
                               .max_response = S3_MAX_ERROR_REPLY,
                               .what = what},
                 &resp);
    wv_httpc_response_free(&resp);
    return rc;
}

/* ------------------------------------------------------------ copy */

int wv_s3_copy(wv_s3 *s3, const char *src_bucket, const char *src_key, const char *dst_bucket,
               const char *dst_key, const wv_s3_put_opts *o)
{
    char what[S3_WHAT_MAX], src_what[S3_WHAT_MAX];
    int rc = s3_check_names("COPY", src_bucket, src_key, src_what, sizeof src_what);
    if (rc < 0)
        return rc;
    rc = s3_check_names("COPY", dst_bucket, dst_key, what, sizeof what);
    if (rc < 0)
        return rc;
    snprintf(what, sizeof what, "S3 COPY %.80s/%.100s to %.80s/%.100s", src_bucket, src_key,
             dst_bucket, dst_key);
    if (!s3)
        return wv_fail(-EINVAL, "%s: no client", what);
    wv_buf source = {0}, mem = {0};
    rc = wv_buf_append(&source, "/", 1);
    rc |= aws_uri_encode(&source, src_bucket, strlen(src_bucket), false);
    rc |= wv_buf_append(&source, "/", 1);
    rc |= aws_uri_encode(&source, src_key, strlen(src_key), true);
    size_t nmeta = o ? o->nmetadata : 0;
    wv_httpc_header h[nmeta + 5];
    int nh = rc ? wv_fail(-ENOMEM, "%s: out of memory", what)
                : s3_put_headers(s3, o, NULL, h, &mem, what);
    if (nh >= 0) {
        h[nh++] = (wv_httpc_header){"x-amz-copy-source", source.p};
        h[nh++] = (wv_httpc_header){"x-amz-metadata-directive", o ? "REPLACE" : "COPY"};
        wv_httpc_response resp;
        rc = s3_send(s3,
                     &(s3_request){.method = "PUT",
                                   .bucket = dst_bucket,
                                   .key = dst_key,
                                   .headers = h,
                                   .nheaders = (size_t)nh,
                                   .body = "",
                                   .what = what},
                     &resp);
        if (rc == 0) {
            s3_xml x = {.max_nodes = 64};
            rc = s3_parse_reply(&resp, "CopyObjectResult", &x, what);
            s3_xml_free(&x);
        }
        wv_httpc_response_free(&resp);
    } else {
        rc = nh;
    }
    wv_buf_free(&source);
    wv_buf_free(&mem);
    return rc;
}

/* ------------------------------------------------------------ list */

typedef struct list_mem {
    wv_buf xml; /* the reply; every string points into it */
} list_mem;

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decode in place a key or prefix S3 URL-encoded (encoding-type=url:
 * '+' is a space, %XX a byte). 0, or -EPROTO for a bad escape or a NUL. */
static int url_decode_in_place(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r == '+') {
            *w++ = ' ';
        } else if (*r == '%') {
            int hi = hex_value(r[1]), lo = hi >= 0 ? hex_value(r[2]) : -1;
            if (lo < 0 || (hi == 0 && lo == 0))
                return -EPROTO;
            *w++ = (char)(hi << 4 | lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return 0;
}

int wv_s3_list(wv_s3 *s3, const char *bucket, const wv_s3_list_opts *o, wv_s3_list_page *page)
{
    char what[S3_WHAT_MAX];
    int rc = s3_check_names("LIST", bucket, NULL, what, sizeof what);
    if (rc < 0 || !page) {
        if (page)
            wv_s3_list_free(page);
        return rc < 0 ? rc : wv_fail(-EINVAL, "%s: no page to fill", what);
    }
    if (!s3) {
        wv_s3_list_free(page);
        return wv_fail(-EINVAL, "%s: no client", what);
    }
    wv_s3_list_opts none = {0};
    if (!o)
        o = &none;
    if (o->max_keys < 0) {
        wv_s3_list_free(page);
        return wv_fail(-EINVAL, "%s: a negative max_keys", what);
    }
    char max_keys[16];
    snprintf(max_keys, sizeof max_keys, "%d", o->max_keys > 0 ? o->max_keys : 1000);
    aws_param params[8];
    size_t np = 0;
    params[np++] = (aws_param){"list-type", "2"};
    params[np++] = (aws_param){"encoding-type", "url"};
    params[np++] = (aws_param){"max-keys", max_keys};
    if (o->prefix && *o->prefix)
        params[np++] = (aws_param){"prefix", o->prefix};
    if (o->delimiter && *o->delimiter)
        params[np++] = (aws_param){"delimiter", o->delimiter};
    if (o->start_after && *o->start_after)
        params[np++] = (aws_param){"start-after", o->start_after};
    if (o->continuation_token && *o->continuation_token)
        params[np++] = (aws_param){"continuation-token", o->continuation_token};

    /* the request is built (the token copied into it) before the old page
     * goes, so the token may point into that page */
    wv_httpc_response resp;
    rc = s3_send(s3,
                 &(s3_request){.method = "GET",
                               .bucket = bucket,
                               .params = params,
                               .nparams = np,
                               .max_response = S3_MAX_XML_REPLY,
                               .what = what},
                 &resp);
    wv_s3_list_free(page);
    if (rc < 0)
        return rc;

    s3_xml x = {0};
    rc = s3_parse_reply(&resp, "ListBucketResult", &x, what);
    size_t nobj = 0, npre = 0;
    for (int32_t c = rc == 0 ? s3_xml_child(&x, 0, "Contents") : -1; c >= 0; c = s3_xml_next(&x, c))
        nobj++;
    for (int32_t c = rc == 0 ? s3_xml_child(&x, 0, "CommonPrefixes") : -1; c >= 0;
         c = s3_xml_next(&x, c))
        npre++;
    list_mem *mem = NULL;
    if (rc == 0) {
        mem = calloc(1, sizeof *mem);
        page->objects = calloc(nobj ? nobj : 1, sizeof *page->objects);
        page->prefixes = calloc(npre ? npre : 1, sizeof *page->prefixes);
        if (!mem || !page->objects || !page->prefixes)
            rc = wv_fail(-ENOMEM, "%s: out of memory", what);
    }
    const char *enc = rc == 0 ? s3_xml_child_text(&x, 0, "EncodingType") : NULL;
    bool url_encoded = enc && strcmp(enc, "url") == 0;
    for (int32_t c = rc == 0 ? s3_xml_child(&x, 0, "Contents") : -1; rc == 0 && c >= 0;
         c = s3_xml_next(&x, c)) {
        wv_s3_entry *e = &page->objects[page->nobjects++];
        const char *key = s3_xml_child_text(&x, c, "Key");
        const char *size = s3_xml_child_text(&x, c, "Size");
        const char *etag = s3_xml_child_text(&x, c, "ETag");
        const char *date = s3_xml_child_text(&x, c, "LastModified");
        const char *cls = s3_xml_child_text(&x, c, "StorageClass");
        char *end = NULL;
        long long sz = size ? strtoll(size, &end, 10) : -1;
        if (!key || !*key || sz < 0 || !end || *end)
            rc = wv_fail(-EPROTO, "%s: a <Contents> without a key or a size", what);
        else if (url_encoded && url_decode_in_place((char *)key) < 0)
            rc = wv_fail(-EPROTO, "%s: a key that does not decode", what);
        e->key = key;
        e->size = (int64_t)sz;
        e->etag = etag ? etag : "";
        e->last_modified = s3_parse_iso8601(date);
        e->storage_class = cls ? cls : "";
    }
    for (int32_t c = rc == 0 ? s3_xml_child(&x, 0, "CommonPrefixes") : -1; rc == 0 && c >= 0;
         c = s3_xml_next(&x, c)) {
        const char *prefix = s3_xml_child_text(&x, c, "Prefix");
        if (!prefix)
            rc = wv_fail(-EPROTO, "%s: a <CommonPrefixes> without a prefix", what);
        else if (url_encoded && url_decode_in_place((char *)prefix) < 0)
            rc = wv_fail(-EPROTO, "%s: a prefix that does not decode", what);
        page->prefixes[page->nprefixes++] = prefix;
    }
    if (rc == 0) {
        const char *truncated = s3_xml_child_text(&x, 0, "IsTruncated");
        const char *next = s3_xml_child_text(&x, 0, "NextContinuationToken");
        page->truncated = truncated && strcmp(truncated, "true") == 0;
        page->next_token = page->truncated && next && *next ? next : NULL;
        if (page->truncated && !page->next_token)
            rc = wv_fail(-EPROTO, "%s: a truncated listing without a NextContinuationToken", what);
    }
    s3_xml_free(&x);
    if (rc < 0) {
        free(mem);
        wv_httpc_response_free(&resp);
        wv_s3_list_free(page);
        return rc;
    }
    mem->xml = resp.body;
    memset(&resp.body, 0, sizeof resp.body);
    wv_httpc_response_free(&resp);
    page->mem_ = mem;
    return 0;
}

void wv_s3_list_free(wv_s3_list_page *page)
{
    if (!page)
        return;
    list_mem *mem = page->mem_;
    if (mem) {
        wv_buf_free(&mem->xml);
        free(mem);
    }
    free(page->objects);
    free((void *)page->prefixes);
    memset(page, 0, sizeof *page);
}
