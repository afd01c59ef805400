/*
 * Private parts of the S3 client, shared by the files of src/s3/.
 *
 * The picture. The shared AWS code in src/aws/ signs (sigv4.c: the
 * canonical request, the string to sign, the signing key; as a header or
 * in the query; the URI-encoding helpers), reads the endpoint, region
 * and credentials (settings.c) and runs a call's tries (send.c, through
 * wv_retry). Here: hash.c hashes bodies; xml.c is a strict, bounded XML
 * reader for the service's replies; client.c is wv_s3 itself and the one
 * request path every call takes: the URL built, each try signed, a
 * refusal turned into an errno with the service's code and message;
 * object.c holds the calls on one object or one listing; transfer.c the
 * multipart upload and the ranged download, with their part slots and
 * fibers; presign.c the presigned URLs.
 */
#ifndef WEAVE_S3_INTERNAL_H
#define WEAVE_S3_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aws/settings.h"
#include "aws/sigv4.h"
#include "weave/buf.h"
#include "weave/httpc.h"
#include "weave/s3.h"

#pragma GCC visibility push(hidden)

#define S3_MIB             ((size_t)1 << 20)
#define S3_MIN_PART        (5 * S3_MIB)
#define S3_MAX_PART        ((size_t)5 << 30)
#define S3_DEFAULT_PART    (8 * S3_MIB)
#define S3_DEFAULT_MAX_OBJ (64 * S3_MIB)
#define S3_MAX_XML_REPLY   (16 * S3_MIB)
#define S3_MAX_ERROR_REPLY ((size_t)64 << 10)
/* a HEAD's limit: it brings no body, and the HTTP client does not hold
 * the size it announces against max_response; any size passes */
#define S3_HEAD_LIMIT ((size_t)INT64_MAX)
#define S3_NS_PER_MS  INT64_C(1000000)

enum {
    S3_MAX_PARTS = 10000,
    S3_MAX_KEY = 1024,
    S3_MAX_BUCKET = 255,
    S3_DEFAULT_IN_FLIGHT = 4,
    S3_MAX_IN_FLIGHT = 64,
    S3_DEFAULT_ATTEMPTS = 4,
    S3_MAX_EXPIRES = 604800,
    S3_ABORT_MS = 10000,
    S3_WHAT_MAX = 400, /* "S3 PUT bucket/key" in messages, cut to this */
};

struct wv_s3 {
    atomic_int refs;
    wv_s3_provider provider;
    wv_s3_addressing addressing;
    bool aws_endpoint; /* the provider's own endpoint, not one given */
    bool anonymous;    /* aws's credentials are NULL */
    wv_s3_checksum checksum;
    aws_settings aws; /* endpoint, region, credentials, TLS */
    size_t part_size, max_object;
    int parts_in_flight, max_attempts;
    int64_t retry_base_ms;
};

/* ------------------------------------------------------------ hash.c */

/* Base64 of an MD5 (25 bytes with the NUL) and of a SHA-256 (45). */
enum { S3_MD5_B64 = 25, S3_SHA256_B64 = 45 };

/* The body's hashes that go with it: the hex SHA-256 always, and the
 * base64 MD5 / SHA-256 as asked. A large body is hashed on the offload
 * pool (its errors: -ECANCELED, -ETIMEDOUT). */
typedef struct s3_body_hashes {
    char sha256_hex[AWS_SHA256_HEX];
    char md5_b64[S3_MD5_B64];
    char sha256_b64[S3_SHA256_B64];
} s3_body_hashes;
int s3_hash_body(const void *p, size_t n, bool md5, bool sha256_b64, s3_body_hashes *out);

/* ------------------------------------------------------------ xml.c */

typedef struct s3_xml_node {
    const char *name; /* the local name (after a prefix's ':'), not NUL-terminated */
    uint32_t name_len;
    uint32_t text_len;
    char *text; /* decoded, NUL-terminated ("" for none) */
    int32_t parent, first_child, last_child, next_sibling;
} s3_xml_node;

typedef struct s3_xml {
    s3_xml_node *nodes; /* nodes[0] is the root element */
    int32_t n, cap;
    int32_t max_nodes; /* 0 = 100000 */
} s3_xml;

/*
 * Parse p[0..n) as one XML document, strictly: a declaration, comments
 * and processing instructions are skipped; a DOCTYPE, CDATA, mixed
 * content (text beside child elements), a bad entity, invalid UTF-8, a
 * control character, a name that is not ASCII, a mismatched or unclosed
 * tag, or anything after the root is refused. Nesting at most 32 deep,
 * at most max_nodes elements. Texts are decoded in place (p is written).
 * 0, -EPROTO (why says where and what), -EMSGSIZE (too deep, too many),
 * -ENOMEM. x is freed by s3_xml_free either way.
 */
int s3_xml_parse(char *p, size_t n, s3_xml *x, char *why, size_t why_cap);
void s3_xml_free(s3_xml *x);

/* The first child of node named `name` (local name), or -1; and the next
 * sibling after `node` with the same name, or -1. */
int32_t s3_xml_child(const s3_xml *x, int32_t node, const char *name);
int32_t s3_xml_next(const s3_xml *x, int32_t node);

/* Is node named `name`? */
bool s3_xml_is(const s3_xml *x, int32_t node, const char *name);

/* The text of node's child `name`, or NULL when there is no such child. */
const char *s3_xml_child_text(const s3_xml *x, int32_t node, const char *name);

/* ------------------------------------------------------------ client.c */

/* One request to the service. */
typedef struct s3_request {
    const char *method;
    const char *bucket; /* required */
    const char *key;    /* NULL: the bucket itself */
    aws_param *params;  /* query parameters (sorted in place) */
    size_t nparams;
    const wv_httpc_header *headers; /* extra headers, signed; names any case */
    size_t nheaders;
    const void *body;
    size_t body_len;
    /* hex SHA-256 of the body; NULL: computed here (empty body: the hash
     * of nothing) */
    const char *payload_hash;
    size_t max_response; /* 0: S3_MAX_XML_REPLY */
    const char *what;    /* "S3 PUT bucket/key": the message's start */
} s3_request;

enum { S3_MAX_EXTRA_HEADERS = 80 };

/* A request ready to sign and send: its URL (path and query exactly as
 * signed), the Host, payload hash, token and extra headers, and, once
 * signed, X-Amz-Date and Authorization. */
typedef struct s3_prepared {
    wv_buf url, uri, query, host, names, authorization;
    char payload[AWS_SHA256_HEX];
    const char *payload_hash;
    char date[17];
    wv_httpc_header headers[S3_MAX_EXTRA_HEADERS + 6]; /* what goes out */
    aws_header signing[S3_MAX_EXTRA_HEADERS + 6];      /* the same, names lower-case */
    size_t nfixed, n;
} s3_prepared;

/* Build r's URL and headers (nothing signed yet). 0, -EINVAL, -ENOMEM;
 * free with s3_prepared_free either way. */
int s3_prepare(wv_s3 *s3, const s3_request *r, s3_prepared *p);

/* Sign p as of unix_time (again: a retry replaces the last signature).
 * Nothing to do for an anonymous client. */
int s3_prepared_sign(wv_s3 *s3, const s3_request *r, s3_prepared *p, int64_t unix_time);
void s3_prepared_free(s3_prepared *p);

/* Send r, retried as the top of include/weave/s3.h says. 0 with *resp
 * holding a 2xx response (free it), or the errno with wv_errmsg set. */
int s3_send(wv_s3 *s3, const s3_request *r, wv_httpc_response *resp);

/* The Host header's value and the canonical (encoded) path of bucket/key
 * (key NULL: the bucket), as the client's addressing style puts them.
 * 0 or -ENOMEM. */
int s3_target(const wv_s3 *s3, const char *bucket, const char *key, wv_buf *host, wv_buf *uri);

/* Check a bucket name / a key, and write "S3 METHOD bucket/key" into
 * what. 0 or -EINVAL (wv_errmsg says why). */
int s3_check_names(const char *method, const char *bucket, const char *key, char *what, size_t cap);

/* The extra headers of a put (content type, metadata) and of a body's
 * checksum, into h (room for 2 + nmetadata); their memory in mem. The
 * count or -EINVAL / -ENOMEM. */
int s3_put_headers(wv_s3 *s3, const wv_s3_put_opts *o, const s3_body_hashes *hashes,
                   wv_httpc_header *h, wv_buf *mem, const char *what);

/* Parse an XML reply whose root must be `root`; -EPROTO otherwise (an
 * <Error> root becomes its errno, as CopyObject and
 * CompleteMultipartUpload may answer 200 with one). */
int s3_parse_reply(wv_httpc_response *resp, const char *root, s3_xml *x, const char *what);

/* Seconds since 1970 of "2009-10-12T17:50:30.000Z" (ISO 8601, UTC), or
 * of an HTTP date; 0 when it cannot be read. */
int64_t s3_parse_iso8601(const char *s);
int64_t s3_parse_http_date(const char *s);

/* The wall clock, in Unix seconds. */
int64_t s3_unix_now(void);

/* Keep s3 alive for a fiber that outlives the call (an abort). */
void s3_ref(wv_s3 *s3);

/* ------------------------------------------------------------ presign.c */

/* wv_s3_presign at a given time (Unix seconds): tests sign with a fixed
 * date. */
int s3_presign_at(wv_s3 *s3, const char *method, const char *bucket, const char *key,
                  int64_t expires_s, int64_t unix_time, char **url);

/* ------------------------------------------------------------ object.c */

/* GET (or HEAD) with a range and an If-Match; the object's fields filled
 * in. range_len 0: no Range header. */
int s3_get_object(wv_s3 *s3, const char *method, const char *bucket, const char *key,
                  int64_t offset, int64_t range_len, const char *if_match, size_t max,
                  wv_s3_object *out, const char *what);

#pragma GCC visibility pop

#endif
