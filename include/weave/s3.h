/*
 * weave's S3 client, on weave's HTTP client (include/weave/httpc.h): Amazon
 * S3, S3-compatible servers (MinIO, s3rver, Ceph) and Google Cloud Storage
 * through its S3-compatible XML API with HMAC keys.
 *
 *     wv_s3 *s3;
 *     int rc = wv_s3_new(NULL, &s3);      // AWS_* and S3_ENDPOINT from the environment
 *     rc = wv_s3_put(s3, "bucket", "reports/2026.csv", csv, csv_len, NULL);
 *     wv_s3_object obj;
 *     rc = wv_s3_get(s3, "bucket", "reports/2026.csv", &obj);
 *     if (rc == -ENOENT)
 *         ...                              // wv_errmsg(): "S3 GET bucket/...: NoSuchKey: ..."
 *     use(obj.body.p, obj.body.n);
 *     wv_s3_object_free(&obj);
 *
 * The model.
 *
 *  - A wv_s3 is configuration only (endpoint, region, credentials,
 *    limits): it is made once, never changes, and any fiber of any shard
 *    may use it at once. Connections are the HTTP client's, per shard.
 *  - Every request is signed with AWS Signature Version 4 (header
 *    signing; presigned URLs sign the query), its body's SHA-256 signed
 *    with it, so the service refuses a body altered on the way.
 *  - Large objects go in parts: wv_s3_upload and wv_s3_put_file send a
 *    multipart upload with several parts in flight at once, reading the
 *    source part by part (memory: part_size x parts_in_flight at most);
 *    wv_s3_download and wv_s3_get_file fetch ranges in parallel and hand
 *    them over in order, under the same bound. A multipart upload that
 *    fails is aborted, so no parts are left behind (see wv_s3_upload).
 *  - Requests that failed for a reason that may pass (HTTP 500, 502, 503,
 *    504, SlowDown, InternalError, RequestTimeout, a refused or broken
 *    connection) are sent again with exponential backoff and full jitter
 *    (wv_retry), up to max_attempts, honouring Retry-After and never past
 *    the fiber's deadline. Each try is signed afresh.
 *  - Every call honours the fiber's deadline and cancellation.
 *
 * Where requests go. AWS: https://s3.REGION.amazonaws.com, the bucket in
 * the host name (virtual-host style: https://BUCKET.s3.REGION.amazonaws.com/KEY)
 * when the bucket's name allows it, else in the path. Any other endpoint
 * (S3_ENDPOINT, or opts.endpoint): the bucket in the path
 * (http://127.0.0.1:9000/BUCKET/KEY), as local servers expect. GCS:
 * https://storage.googleapis.com/BUCKET/KEY, region "auto".
 *
 * Names. A bucket is 1 to 255 bytes of letters, digits, '.', '-' and
 * '_'. A key is 1 to 1024 bytes, any bytes but NUL (UTF-8 as S3 wants it),
 * except that a key with a "." or ".." path segment ("a/../b") is refused:
 * the HTTP client would fold the segment away and address another key.
 *
 * Errors are negative errno values with the detail in wv_errmsg(): the
 * call, bucket and key, and the service's code and message ("S3 GET
 * bucket/key: NoSuchKey: The specified key does not exist. (HTTP 404,
 * request id 4442587FB7D0A2F9)"):
 *
 *   -ENOENT     NoSuchKey, NoSuchBucket, NoSuchUpload (a HEAD's 404)
 *   -EACCES     AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch,
 *               ExpiredToken, RequestTimeTooSkewed, ... (a HEAD's 403)
 *   -EAGAIN     SlowDown or HTTP 503 still, after max_attempts tries
 *   -ESTALE     the object changed while a download read it in ranges
 *               (its ETag moved; PreconditionFailed)
 *   -ERANGE     a range outside the object (InvalidRange)
 *   -EFBIG      EntityTooLarge; a source longer than 10000 parts
 *   -EMSGSIZE   an object larger than max_object for wv_s3_get, or a
 *               response larger than its limit
 *   -EIO        any other refusal, with its code (InternalError after
 *               max_attempts tries, MalformedXML, InvalidPart, ...)
 *   -EPROTO     a reply that is not what S3 sends (malformed XML, a
 *               missing field)
 *   -EINVAL     a bad bucket, key or option (nothing is sent)
 *   and the HTTP client's: -ECONNREFUSED, -ECONNRESET, -EHOSTUNREACH,
 *   -ETIMEDOUT, -ECANCELED, -ESHUTDOWN, -ENOMEM, -EPERM (outside a fiber)
 */
#ifndef WEAVE_S3_H
#define WEAVE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "weave/buf.h"
#include "weave/httpc.h"
#include "weave/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_s3 wv_s3;

/* Whose service: its default endpoint, region and addressing. */
typedef enum wv_s3_provider {
    WV_S3_AWS = 0, /* Amazon S3 and S3-compatible servers */
    WV_S3_GCS,     /* Google Cloud Storage's XML API, with HMAC keys */
} wv_s3_provider;

/* Where the bucket's name goes. */
typedef enum wv_s3_addressing {
    /* AWS's own endpoint: in the host when the name allows it (lower-case
     * letters, digits and '-', 3 to 63 of them), else in the path; any
     * other endpoint, and GCS: in the path */
    WV_S3_ADDRESSING_AUTO = 0,
    WV_S3_ADDRESSING_PATH,         /* http://host/BUCKET/KEY */
    WV_S3_ADDRESSING_VIRTUAL_HOST, /* http://BUCKET.host/KEY */
} wv_s3_addressing;

/* The checksum sent with every body, beside the signed SHA-256 payload
 * hash (x-amz-content-sha256), which the service always checks. */
typedef enum wv_s3_checksum {
    WV_S3_CHECKSUM_MD5 = 0, /* Content-MD5 (S3 and GCS check it) */
    WV_S3_CHECKSUM_SHA256,  /* x-amz-checksum-sha256 (S3 checks and keeps it; AWS only) */
    WV_S3_CHECKSUM_NONE,    /* only the signed payload hash */
} wv_s3_checksum;

/* The client's settings. Zero-initialise, set what you need: 0 / NULL is
 * the default said beside each field. Strings are copied. */
typedef struct wv_s3_opts {
    wv_s3_provider provider; /* WV_S3_AWS */
    /* scheme, host and port, no path: "http://127.0.0.1:9000". NULL:
     * $S3_ENDPOINT (AWS only), else https://s3.REGION.amazonaws.com, or
     * https://storage.googleapis.com for GCS */
    const char *endpoint;
    /* NULL: $AWS_REGION, else $AWS_DEFAULT_REGION, else "us-east-1";
     * GCS: "auto" */
    const char *region;
    /* NULL: $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY and
     * $AWS_SESSION_TOKEN (the three come from the same place: options
     * when access_key is set, else the environment). For GCS, an HMAC
     * key's id and secret. */
    const char *access_key;
    const char *secret_key;
    const char *session_token;
    bool anonymous; /* send unsigned requests (public buckets); no credentials read */
    wv_s3_addressing addressing;
    /* multipart transfers: bytes per part, 0 = 8 MiB (5 MiB to 5 GiB; a
     * file too large for 10000 parts of it gets larger parts) */
    size_t part_size;
    int parts_in_flight;   /* parts sent or fetched at once, 0 = 4 (1 to 64) */
    size_t max_object;     /* wv_s3_get's limit, 0 = 64 MiB: larger is -EMSGSIZE */
    int max_attempts;      /* tries per request, the first included, 0 = 4 */
    int64_t retry_base_ms; /* the first backoff's ceiling, 0 = 100 */
    wv_s3_checksum checksum;
    const char *ca_file; /* CAs to trust (PEM); NULL = the system's */
    bool insecure;       /* do not verify the server's certificate (tests only) */
} wv_s3_opts;

/*
 * A client with these settings (opts may be NULL: every default). It
 * sends nothing yet. -EINVAL with the reason: no credentials (and not
 * anonymous), an endpoint that is not an http:// or https:// URL without
 * a path, a part size or count out of range, SHA-256 checksums for GCS.
 * -ENOMEM. Free it with wv_s3_free once no fiber uses it. Callable from
 * anywhere, in a fiber or not.
 */
int wv_s3_new(const wv_s3_opts *opts, wv_s3 **out);

/* NULL is ignored. An abort still running in the background (see
 * wv_s3_upload) keeps what it needs until it ends. */
void wv_s3_free(wv_s3 *s3);

/* An object location written as a URL: "s3://bucket/key" (AWS) or
 * "gs://bucket/key" (GCS). The key is everything after the bucket's '/',
 * taken as written (not percent-decoded), "" when absent. */
typedef struct wv_s3_location {
    wv_s3_provider provider;
    char *bucket;
    char *key;
} wv_s3_location;

/* Parse url into *loc (zeroed first): 0, -EINVAL (another scheme, no
 * bucket), -ENOMEM. Free with wv_s3_location_free. */
int wv_s3_location_parse(const char *url, wv_s3_location *loc);
void wv_s3_location_free(wv_s3_location *loc);

/* ------------------------------------------------------------- objects */

/* What a put stores beside the bytes. Every field optional. */
typedef struct wv_s3_put_opts {
    const char *content_type; /* NULL: none sent (S3 then says binary/octet-stream) */
    /* user metadata: each name goes out as x-amz-meta-NAME (an HTTP token;
     * S3 keeps names lower-case), each value without line breaks */
    const wv_httpc_header *metadata;
    size_t nmetadata;
} wv_s3_put_opts;

/* An object fetched (wv_s3_get) or looked at (wv_s3_head). Strings
 * belong to it until wv_s3_object_free. */
typedef struct wv_s3_object {
    wv_buf body;              /* the bytes (empty after a HEAD) */
    int64_t size;             /* the object's whole size in bytes */
    const char *etag;         /* as the service sends it, quotes included; "" if none */
    const char *content_type; /* "" if none */
    int64_t last_modified;    /* Unix seconds, 0 if the service said none */
    wv_httpc_response resp_;  /* private: the strings above point into it */
} wv_s3_object;

/* Store n bytes at bucket/key, replacing what was there. o may be NULL.
 * One request of up to 5 GiB; larger: wv_s3_upload. */
int wv_s3_put(wv_s3 *s3, const char *bucket, const char *key, const void *data, size_t n,
              const wv_s3_put_opts *o);

/* Fetch the whole object into out->body (up to max_object bytes, else
 * -EMSGSIZE), with its size, ETag, type and date. On error *out is empty;
 * either way free it with wv_s3_object_free. */
int wv_s3_get(wv_s3 *s3, const char *bucket, const char *key, wv_s3_object *out);

/* Fetch `length` bytes from `offset` (out->size is the whole object's
 * size). A range running past the end is cut at it; one starting past
 * the end is -ERANGE. length 0 = to the end. */
int wv_s3_get_range(wv_s3 *s3, const char *bucket, const char *key, int64_t offset, int64_t length,
                    wv_s3_object *out);

/* The object's size, ETag, type, date and metadata, without its bytes. */
int wv_s3_head(wv_s3 *s3, const char *bucket, const char *key, wv_s3_object *out);

/* A metadata value put with the object (name without "x-amz-meta-", any
 * case), or NULL. */
const char *wv_s3_object_meta(const wv_s3_object *o, const char *name);

/* Free what o holds and zero it; a zeroed object is harmless. */
void wv_s3_object_free(wv_s3_object *o);

/* Delete bucket/key. Deleting a key that is not there succeeds, as on S3. */
int wv_s3_delete(wv_s3 *s3, const char *bucket, const char *key);

/* Copy an object inside the service (up to 5 GiB; no bytes pass through
 * here). o NULL: the copy keeps the source's type and metadata; else they
 * are replaced by o's. */
int wv_s3_copy(wv_s3 *s3, const char *src_bucket, const char *src_key, const char *dst_bucket,
               const char *dst_key, const wv_s3_put_opts *o);

/* ------------------------------------------------------------- listing */

typedef struct wv_s3_list_opts {
    const char *prefix;    /* only keys starting with it */
    const char *delimiter; /* group keys sharing a prefix up to it ("/": folders) */
    int max_keys;          /* keys and prefixes per page, 0 = 1000 (the service's most) */
    const char *start_after;
    /* where the previous page ended (its next_token), NULL for the first */
    const char *continuation_token;
} wv_s3_list_opts;

typedef struct wv_s3_entry {
    const char *key;
    int64_t size;
    const char *etag;
    int64_t last_modified;     /* Unix seconds */
    const char *storage_class; /* "" if none */
} wv_s3_entry;

/* One page of a listing. Strings belong to the page. */
typedef struct wv_s3_list_page {
    wv_s3_entry *objects;
    size_t nobjects;
    const char **prefixes; /* the common prefixes (with a delimiter), in order */
    size_t nprefixes;
    bool truncated;         /* more pages follow */
    const char *next_token; /* pass it as continuation_token; NULL on the last page */
    void *mem_;             /* private */
} wv_s3_list_page;

/*
 * One page of bucket's keys in order (ListObjectsV2). *page may hold the
 * previous page, and o->continuation_token may point into it: it is freed
 * only once the token has been used, so a loop reads
 *
 *     wv_s3_list_page page = {0};
 *     wv_s3_list_opts lo = {.prefix = "logs/"};
 *     do {
 *         if ((rc = wv_s3_list(s3, "bucket", &lo, &page)) < 0)
 *             break;
 *         for (size_t i = 0; i < page.nobjects; i++)
 *             use(page.objects[i].key);
 *         lo.continuation_token = page.next_token;
 *     } while (page.truncated);
 *     wv_s3_list_free(&page);
 *
 * On error *page is empty. o may be NULL.
 */
int wv_s3_list(wv_s3 *s3, const char *bucket, const wv_s3_list_opts *o, wv_s3_list_page *page);

/* Free a page and zero it; a zeroed page is harmless. */
void wv_s3_list_free(wv_s3_list_page *page);

/* ------------------------------------------- large objects, in parts */

/* Where an upload's bytes come from: read fills buf with up to n bytes
 * and returns how many (0 at the end), or a negative errno (set
 * wv_errmsg to say why). It is called from the uploading fiber, one call
 * at a time, and may suspend (a socket, an HTTP request's body). */
typedef struct wv_s3_source {
    ssize_t (*read)(void *arg, void *buf, size_t n);
    void *arg;
} wv_s3_source;

/* Where a download's bytes go, in order: write takes all n bytes and
 * returns 0, or a negative errno (which ends the download). Called from
 * the downloading fiber; may suspend. */
typedef struct wv_s3_sink {
    int (*write)(void *arg, const void *buf, size_t n);
    void *arg;
} wv_s3_sink;

/*
 * Store what src yields at bucket/key. A source that ends within the
 * first part goes in one PUT; a longer one as a multipart upload: the
 * source read one part at a time while up to parts_in_flight parts are
 * sent at once (memory: part_size x parts_in_flight at most), then the
 * parts joined. At most 10000 parts: a longer source is -EFBIG.
 *
 * When anything fails (a part refused after its retries, src's error, the
 * deadline, cancellation) the parts still in flight are stopped and the
 * upload aborted, so the service keeps no parts: at once, under a fresh
 * 10 s deadline when the fiber's own had passed, or in a fiber of its own
 * when this one was cancelled. An abort that fails itself is logged
 * (WARN, with the upload id); a lifecycle rule on the bucket
 * (AbortIncompleteMultipartUpload) is the backstop. The error returned is
 * the first failure's.
 */
int wv_s3_upload(wv_s3 *s3, const char *bucket, const char *key, const wv_s3_source *src,
                 const wv_s3_put_opts *o);

/* wv_s3_upload from a file (read on the offload pool, never on the
 * loop). Its size is known, so the part size grows if 10000 parts of
 * part_size would not hold it. -ENOENT / -EACCES / ... when it cannot be
 * opened. */
int wv_s3_put_file(wv_s3 *s3, const char *bucket, const char *key, const char *path,
                   const wv_s3_put_opts *o);

/*
 * Fetch bucket/key into sink, in order: up to parts_in_flight ranges of
 * part_size fetched at once (memory: part_size x parts_in_flight at most),
 * each checked to come from the same version of the object (its ETag, and
 * If-Match where the service honours it): an object replaced meanwhile is
 * -ESTALE. *size (may be NULL) gets the bytes delivered. On error the sink
 * may have had part of the object.
 */
int wv_s3_download(wv_s3 *s3, const char *bucket, const char *key, const wv_s3_sink *sink,
                   int64_t *size);

/* wv_s3_download into the file at path (written on the offload pool):
 * into a temporary file beside it, flushed to disk, then renamed over
 * path, so path holds either the whole object or what it held before. */
int wv_s3_get_file(wv_s3 *s3, const char *bucket, const char *key, const char *path);

/* --------------------------------------------------- presigned URLs */

/*
 * A URL anyone may use, without credentials, for `expires_s` seconds (1
 * to 604800, seven days) to send `method` ("GET", "PUT", "HEAD",
 * "DELETE") to bucket/key: SigV4 in the query string (X-Amz-Algorithm,
 * X-Amz-Credential, X-Amz-Date, X-Amz-Expires, X-Amz-SignedHeaders,
 * X-Amz-Security-Token with a session token, X-Amz-Signature), signed
 * for the Host header only, the payload unsigned. *url is malloc'ed: free
 * it. Sends nothing; callable outside a fiber. -EINVAL (a bad method,
 * expiry, bucket or key; an anonymous client), -ENOMEM.
 */
int wv_s3_presign(wv_s3 *s3, const char *method, const char *bucket, const char *key,
                  int64_t expires_s, char **url);

#ifdef __cplusplus
}
#endif

#endif
