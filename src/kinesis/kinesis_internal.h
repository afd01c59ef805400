/*
 * Private parts of the Kinesis client, shared by the files of
 * src/kinesis/.
 *
 * The picture. client.c is wv_kinesis itself (settings, the environment:
 * src/aws/settings.c) and the one request path every call takes: the JSON
 * body POSTed with its X-Amz-Target, signed (src/aws/sigv4.c, service
 * "kinesis"), its tries run by src/aws/send.c (wv_retry). reply.c is
 * sans-I/O: it reads the service's replies (a refusal's __type and
 * message into an errno, and each operation's answer into the public
 * structs), bytes in, results out, so that it can be fuzzed
 * (fuzz/fuzz_kinesis_reply.c) and tested on replies the local server
 * never sends. check.c holds the checks of names, keys and sizes made
 * before anything is sent. stream.c holds the calls on streams and
 * shards; put.c PutRecord and PutRecords (batching, per-record retries);
 * read.c the iterators, GetRecords and the reader.
 */
#ifndef WEAVE_KINESIS_INTERNAL_H
#define WEAVE_KINESIS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aws/settings.h"
#include "weave/buf.h"
#include "weave/httpc.h"
#include "weave/json.h"
#include "weave/kinesis.h"

#pragma GCC visibility push(hidden)

#define KINESIS_MIB              ((size_t)1 << 20)
#define KINESIS_DEFAULT_RECORD   KINESIS_MIB
#define KINESIS_DEFAULT_BATCH    (5 * KINESIS_MIB)
#define KINESIS_DEFAULT_RESPONSE (32 * KINESIS_MIB)
#define KINESIS_TARGET_PREFIX    "Kinesis_20131202."
#define KINESIS_CONTENT_TYPE     "application/x-amz-json-1.1"

enum {
    KINESIS_MAX_BATCH_RECORDS = 500, /* the service's PutRecords limit */
    KINESIS_DEFAULT_ATTEMPTS = 5,
    KINESIS_MAX_NAME = 128,      /* stream names, shard ids */
    KINESIS_MAX_KEY_CHARS = 256, /* a partition key's characters */
    KINESIS_MAX_LIMIT = 10000,   /* GetRecords' Limit */
    KINESIS_MAX_PAGE = 10000,    /* ListShards' MaxResults */
    KINESIS_MAX_PAGES = 10000,   /* ListShards' pages in one listing: a server that never ends */
    KINESIS_WHAT_MAX = 200,      /* "Kinesis PutRecords stream" in messages */
};

struct wv_kinesis {
    aws_settings aws; /* endpoint, region, credentials, TLS */
    char *url;        /* scheme://host/ */
    int max_attempts;
    int64_t retry_base_ms, retry_max_ms;
    size_t max_record, max_batch_bytes, max_response;
    int max_batch_records;
};

/* ------------------------------------------------------------ check.c */

/* Each: 0, or -EINVAL with wv_errmsg "<what>: why". */
int kinesis_check_stream(const char *stream, const char *what);
int kinesis_check_shard_id(const char *shard_id, const char *what);
int kinesis_check_sequence(const char *seq, const char *what);
/* A record to put: its key, hash key, data and size (data + key at most
 * max_record). `index` names it in the message (-1: a single record). */
int kinesis_check_entry(const wv_kinesis *k, const wv_kinesis_entry *e, long index,
                        const char *what);

/* A call's start: "Kinesis Op stream" written into what (cap bytes), the
 * stream's name checked, a client there. 0 or -EINVAL. */
int kinesis_begin(const wv_kinesis *k, const char *op, const char *stream, char *what, size_t cap);

/* ------------------------------------------------------------ client.c */

/* One call to the service. */
typedef struct kinesis_call {
    const char *op;     /* "PutRecords": X-Amz-Target's operation */
    const char *what;   /* the message's start */
    const wv_buf *body; /* the JSON request */
    bool create;        /* CreateStream: ResourceInUseException means -EEXIST */
} kinesis_call;

/* Send c, retried as the top of include/weave/kinesis.h says. 0 with
 * *doc (when doc is not NULL) holding the reply, a JSON object (free it
 * with wv_json_doc_free); or the errno with wv_errmsg set. */
int kinesis_send(wv_kinesis *k, const kinesis_call *c, wv_json_doc **doc);

/* A request's headers as they go out (to k->url, with the body),
 * signed: Host, Content-Type, X-Amz-Target, X-Amz-Date, the session
 * token if any, and Authorization last. */
typedef struct kinesis_signed {
    wv_httpc_header headers[6];
    size_t n;
    char target[64];
    char date[17];
    wv_buf authorization;
} kinesis_signed;

/* Sign op's request with this body as of unix_time (each try anew).
 * 0, -EINVAL (an operation name too long), -ENOMEM; free with
 * kinesis_signed_free either way. */
int kinesis_sign(const wv_kinesis *k, const char *op, const wv_buf *body, int64_t unix_time,
                 kinesis_signed *out);
void kinesis_signed_free(kinesis_signed *s);

/* Start a request body: {"StreamName":stream (when not NULL). */
void kinesis_body_begin(wv_json *j, wv_buf *b, const char *stream);

/* ------------------------------------------------------------ reply.c */

/* The errno a refusal's __type means (the part after a '#', if any) and
 * whether another try may go better; status decides when type is NULL
 * or unknown. create: ResourceInUseException is -EEXIST. */
int kinesis_errno_for(const char *type, int status, bool create, bool *retry);

/* A reply of 300 or more as an errno, with wv_errmsg "WHAT: Type:
 * message (HTTP n, request id r)". type_header is x-amzn-ErrorType
 * (may be NULL), read when the body names no __type. */
int kinesis_refusal(int status, const char *body, size_t n, const char *type_header,
                    const char *request_id, const char *what, bool create, bool *retry);

/* Parse a 2xx reply: a JSON object of at most max bytes. 0 with *doc, or
 * -EPROTO / -EMSGSIZE / -ENOMEM (wv_errmsg says why). */
int kinesis_parse(const char *body, size_t n, size_t max, const char *what, wv_json_doc **doc);

/* PutRecord's reply: the shard and sequence number into r. */
int kinesis_read_put(const wv_json_doc *doc, wv_kinesis_put_result *r, const char *what);

/*
 * PutRecords' reply to the records sent[0..nsent) (indices into
 * results): each stored record's result filled in; each failed one's err
 * and error_code set, and its index appended to again[] when its error
 * may pass. *nagain is how many; first gets the first failure's "Code:
 * message" ("" when none failed). The count of failed records, or -EPROTO
 * when the reply does not match the request (then no result is touched).
 */
int kinesis_read_put_records(const wv_json_doc *doc, const size_t *sent, size_t nsent,
                             wv_kinesis_put_result *results, size_t *again, size_t *nagain,
                             char *first, size_t first_cap, const char *what);

/* GetShardIterator's reply, into iterator. */
int kinesis_read_iterator(const wv_json_doc *doc, char iterator[WV_KINESIS_ITERATOR_SIZE],
                          const char *what);

/* GetRecords' reply into *out, which takes the document (its data
 * decoded from base64 in place, strings pointing into it): on success the
 * batch owns doc, on error doc is freed. */
int kinesis_read_batch(wv_json_doc *doc, wv_kinesis_batch *out, const char *what);

/* One ListShards page appended to *l (which takes the document either
 * way); *next points at NextToken inside it, NULL on the last page. */
int kinesis_read_shards(wv_json_doc *doc, wv_kinesis_shard_list *l, const char **next,
                        const char *what);

/* DescribeStreamSummary's reply into *out. */
int kinesis_read_summary(const wv_json_doc *doc, wv_kinesis_stream_info *out, const char *what);

/* Decode base64 s[0..n) (standard alphabet, padded, no whitespace) into
 * out, which may be s itself: the decoded length, or -1 when it is not
 * base64. */
long kinesis_base64_decode(const char *s, size_t n, unsigned char *out);

#pragma GCC visibility pop

#endif
