/*
 * weave's Kinesis Data Streams client, on weave's HTTP client
 * (include/weave/httpc.h): Amazon Kinesis and servers that speak its API
 * (kinesis-local, LocalStack).
 *
 *     wv_kinesis *k;
 *     int rc = wv_kinesis_new(NULL, &k);   // AWS_* and KINESIS_ENDPOINT from the environment
 *     wv_kinesis_put_result where;
 *     rc = wv_kinesis_put(k, "orders", &(wv_kinesis_entry){.partition_key = "user-42",
 *                                                          .data = json, .len = json_len},
 *                         &where);          // where.shard_id, where.sequence_number
 *     if (rc == -ENOENT)
 *         ...                               // wv_errmsg(): "Kinesis PutRecord orders:
 *                                           //   ResourceNotFoundException: ..."
 *
 * The model.
 *
 *  - A wv_kinesis is configuration only (endpoint, region, credentials,
 *    limits, retries): made once, never changed, and used by any fiber of
 *    any shard at once. Connections are the HTTP client's, per shard.
 *  - Every call is one or more POSTs of Kinesis's JSON API
 *    (application/x-amz-json-1.1, X-Amz-Target: Kinesis_20131202.<Op>),
 *    signed with AWS Signature Version 4 for the service "kinesis", each
 *    try signed afresh. Data is sent and received as base64, as the API
 *    wants it; callers see bytes.
 *  - Requests that failed for a reason that may pass (throttling:
 *    ProvisionedThroughputExceededException, LimitExceededException,
 *    ThrottlingException; the service's internal failures and HTTP 5xx; a
 *    refused or broken connection) are sent again with exponential
 *    backoff and full jitter (wv_retry), up to max_attempts tries and
 *    never past the fiber's deadline. A PutRecords whose reply fails some
 *    records sends those records again, the same way (see
 *    wv_kinesis_put_records).
 *  - Every call honours the fiber's deadline and cancellation.
 *  - Input is checked before anything is sent: stream names, partition
 *    keys, hash keys, sizes. A bad one is -EINVAL and no request leaves.
 *
 * Names and limits (the service's; kinesis-local is laxer on some):
 *  - a stream name is 1 to 128 of A-Z a-z 0-9 _ . -; a shard id 1 to 128
 *    of the same
 *  - a partition key is 1 to 256 Unicode characters of valid UTF-8; an
 *    explicit hash key a decimal from 0 to 2^128 - 1
 *  - a record is at most max_record bytes, its data and its partition key
 *    together (1 MiB); a PutRecords request at most 500 records and 5 MiB
 *    (partition keys included): wv_kinesis_put_records splits larger sets
 *  - a reply is at most max_response bytes (32 MiB: GetRecords's 10 MiB
 *    of data, in base64, with room to spare)
 *
 * Errors are negative errno values with the detail in wv_errmsg(): the
 * call and the stream, and the service's __type and message ("Kinesis
 * GetRecords orders: ExpiredIteratorException: Iterator expired ... (HTTP
 * 400, request id 9b2e...)"):
 *
 *   -ENOENT     ResourceNotFoundException (no such stream, shard or consumer)
 *   -EEXIST     ResourceInUseException from wv_kinesis_create_stream: the
 *               stream exists already
 *   -EBUSY      ResourceInUseException elsewhere: the stream is being
 *               created, updated or deleted
 *   -EAGAIN     ProvisionedThroughputExceededException, LimitExceededException,
 *               ThrottlingException, KMSThrottlingException, ServiceUnavailable,
 *               still after max_attempts tries
 *   -ESTALE     ExpiredIteratorException (read again from a fresh iterator:
 *               wv_kinesis_reader does it by itself), ExpiredNextTokenException
 *   -EACCES     AccessDeniedException, UnrecognizedClientException,
 *               InvalidSignatureException, IncompleteSignatureException,
 *               MissingAuthenticationToken, ExpiredTokenException,
 *               KMSAccessDeniedException, KMSOptInRequired, ... (HTTP 403)
 *   -EINVAL     a bad name, key, size or option (nothing is sent); and the
 *               service's InvalidArgumentException, ValidationException,
 *               SerializationException
 *   -EMSGSIZE   a reply larger than max_response; HTTP 413
 *   -EPROTO     a reply that is not what Kinesis sends (not JSON, a
 *               missing field, data that is not base64)
 *   -EIO        any other refusal, with its __type (InternalFailure after
 *               max_attempts tries, KMSDisabledException, ...)
 *   and the HTTP client's: -ECONNREFUSED, -ECONNRESET, -EHOSTUNREACH,
 *   -ETIMEDOUT, -ECANCELED, -ESHUTDOWN, -ENOMEM, -EPERM (outside a fiber)
 */
#ifndef WEAVE_KINESIS_H
#define WEAVE_KINESIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_kinesis wv_kinesis;

/* Room for the strings the service hands back, their NUL included. */
#define WV_KINESIS_SHARD_ID_SIZE   129 /* "shardId-000000000000"; at most 128 */
#define WV_KINESIS_SEQUENCE_SIZE   130 /* decimal, at most 129 digits */
#define WV_KINESIS_ITERATOR_SIZE   513 /* at most 512 */
#define WV_KINESIS_ERROR_CODE_SIZE 64  /* a record's ErrorCode, cut to fit */

/* The client's settings. Zero-initialise, set what you need: 0 / NULL is
 * the default said beside each field. Strings are copied. */
typedef struct wv_kinesis_opts {
    /* scheme, host and port, no path: "http://127.0.0.1:4567". NULL:
     * $KINESIS_ENDPOINT, else https://kinesis.REGION.amazonaws.com */
    const char *endpoint;
    /* NULL: $AWS_REGION, else $AWS_DEFAULT_REGION, else "us-east-1" */
    const char *region;
    /* NULL: $AWS_ACCESS_KEY_ID, $AWS_SECRET_ACCESS_KEY and
     * $AWS_SESSION_TOKEN (the three come from the same place: options
     * when access_key is set, else the environment) */
    const char *access_key;
    const char *secret_key;
    const char *session_token;
    int max_attempts;       /* tries per request (and per record), the first included; 0 = 5 */
    int64_t retry_base_ms;  /* the first backoff's ceiling, 0 = 100 */
    int64_t retry_max_ms;   /* no backoff longer than this, 0 = 5000 */
    size_t max_record;      /* a record's data and partition key, 0 = 1 MiB */
    int max_batch_records;  /* records per PutRecords request, 0 = 500 (1 to 500) */
    size_t max_batch_bytes; /* bytes per PutRecords request, keys included, 0 = 5 MiB */
    size_t max_response;    /* bytes of a reply, 0 = 32 MiB; more: -EMSGSIZE */
    const char *ca_file;    /* CAs to trust (PEM); NULL = the system's */
    bool insecure;          /* do not verify the server's certificate (tests only) */
} wv_kinesis_opts;

/*
 * A client with these settings (opts may be NULL: every default). It
 * sends nothing yet. -EINVAL with the reason: no credentials, an endpoint
 * that is not an http:// or https:// URL without a path, a limit out of
 * range (max_batch_records over 500, max_record over max_batch_bytes).
 * -ENOMEM. Free it with wv_kinesis_free once no fiber uses it. Callable
 * from anywhere, in a fiber or not.
 */
int wv_kinesis_new(const wv_kinesis_opts *opts, wv_kinesis **out);

/* NULL is ignored. */
void wv_kinesis_free(wv_kinesis *k);

/* ------------------------------------------------------------- streams */

/* Create a stream of `shards` shards (provisioned), or on demand (the
 * service scales it) when shards is 0. It is CREATING at first:
 * wv_kinesis_wait_active waits for it. -EEXIST when it exists. */
int wv_kinesis_create_stream(wv_kinesis *k, const char *stream, int shards);

/* Delete a stream and its records (it is DELETING for a while). -EBUSY
 * while it still has registered consumers or is being created. */
int wv_kinesis_delete_stream(wv_kinesis *k, const char *stream);

typedef enum wv_kinesis_status {
    WV_KINESIS_CREATING = 0,
    WV_KINESIS_DELETING,
    WV_KINESIS_ACTIVE,
    WV_KINESIS_UPDATING,
    WV_KINESIS_STATUS_OTHER, /* a status this client does not know */
} wv_kinesis_status;

/* A stream, as DescribeStreamSummary tells it. */
typedef struct wv_kinesis_stream_info {
    wv_kinesis_status status;
    int open_shards;
    int retention_hours;
    int consumers;
    bool on_demand;     /* StreamMode ON_DEMAND, else PROVISIONED */
    int64_t created_ms; /* Unix milliseconds */
    char arn[2048];
} wv_kinesis_stream_info;

/* What the service says of the stream (DescribeStreamSummary). */
int wv_kinesis_describe_stream(wv_kinesis *k, const char *stream, wv_kinesis_stream_info *out);

/* Ask until the stream is ACTIVE (at once, then after 100 ms, and less
 * and less often, every second at most), for up to timeout_ms (0 = 5
 * minutes; the fiber's deadline applies too): 0, -ETIMEDOUT, -ENOENT when
 * there is no such stream (or it was deleted meanwhile), or the call's
 * error. */
int wv_kinesis_wait_active(wv_kinesis *k, const char *stream, int64_t timeout_ms);

/* A shard of a stream. Strings belong to the list. */
typedef struct wv_kinesis_shard {
    const char *shard_id;
    const char *parent_shard_id;          /* NULL when none */
    const char *adjacent_parent_shard_id; /* NULL when none */
    const char *starting_hash_key;        /* decimal */
    const char *ending_hash_key;
    const char *starting_sequence_number;
    const char *ending_sequence_number; /* NULL while the shard is open */
} wv_kinesis_shard;

typedef struct wv_kinesis_shard_list {
    wv_kinesis_shard *shards;
    size_t n;
    void *mem_; /* private */
} wv_kinesis_shard_list;

/*
 * Every shard of the stream, closed ones included, in the service's
 * order: ListShards, page_size shards a request (0 = 1000, at most
 * 10000), following NextToken until the last page. On error *out is
 * empty; either way free it with wv_kinesis_shard_list_free.
 */
int wv_kinesis_list_shards(wv_kinesis *k, const char *stream, int page_size,
                           wv_kinesis_shard_list *out);

/* Free a list and zero it; a zeroed list is harmless. */
void wv_kinesis_shard_list_free(wv_kinesis_shard_list *l);

/* ------------------------------------------------------------- writing */

/* A record to put. */
typedef struct wv_kinesis_entry {
    const char *partition_key; /* picks the shard by its MD5 (1 to 256 characters) */
    const void *data;          /* may be NULL when len is 0 */
    size_t len;
    const char *explicit_hash_key; /* NULL: none; else picks the shard instead of the key */
} wv_kinesis_entry;

/* Where a record went, or why it did not. */
typedef struct wv_kinesis_put_result {
    int err; /* 0: stored; else a negative errno (the table above) */
    char shard_id[WV_KINESIS_SHARD_ID_SIZE];
    char sequence_number[WV_KINESIS_SEQUENCE_SIZE];
    /* when err is the service's per-record refusal: its ErrorCode
     * ("ProvisionedThroughputExceededException", "InternalFailure",
     * "InvalidArgumentException", ...); else "" */
    char error_code[WV_KINESIS_ERROR_CODE_SIZE];
} wv_kinesis_put_result;

/* Put one record (PutRecord). out (may be NULL) gets its shard and
 * sequence number. */
int wv_kinesis_put(wv_kinesis *k, const char *stream, const wv_kinesis_entry *e,
                   wv_kinesis_put_result *out);

/*
 * Put n records, any number of them (PutRecords), and say what became of
 * each in results[i] (n of them, the caller's).
 *
 * The records are sent in their order, in requests of at most
 * max_batch_records records and max_batch_bytes bytes, one request after
 * the other. The records of a reply that failed (FailedRecordCount, an
 * ErrorCode on the entry) are sent again, alone, with backoff, when their
 * error may pass (ProvisionedThroughputExceededException,
 * InternalFailure, KMSThrottlingException), each record up to
 * max_attempts times; a record refused for another reason
 * (InvalidArgumentException, a KMS error) is not. A request that fails as
 * a whole is retried as the top of this file says, then its records all
 * get its error. Nothing is dropped: every record ends stored (err 0,
 * with its shard and sequence number) or with its error. A record sent
 * again may be stored after records that followed it, and a request whose
 * reply was lost (a broken connection) may store its records twice:
 * Kinesis is at least once.
 *
 * Returns 0 when every record was stored, else the first unstored
 * record's error (-EAGAIN: still throttled after max_attempts), and the
 * results say which. A bad record (a key, a size, no data) is -EINVAL
 * before anything is sent: every result then holds -EINVAL, and
 * wv_errmsg() names the first bad record's index. So are n == 0 and
 * results == NULL.
 */
int wv_kinesis_put_records(wv_kinesis *k, const char *stream, const wv_kinesis_entry *records,
                           size_t n, wv_kinesis_put_result *results);

/* ------------------------------------------------------------- reading */

/* Where an iterator starts in its shard. */
typedef enum wv_kinesis_from {
    WV_KINESIS_TRIM_HORIZON = 0,      /* the oldest record kept */
    WV_KINESIS_LATEST,                /* after the newest: only what comes next */
    WV_KINESIS_AT_SEQUENCE_NUMBER,    /* at sequence_number */
    WV_KINESIS_AFTER_SEQUENCE_NUMBER, /* just after sequence_number */
    WV_KINESIS_AT_TIMESTAMP,          /* the first record that arrived at or after timestamp_ms */
} wv_kinesis_from;

typedef struct wv_kinesis_position {
    wv_kinesis_from from;
    const char *sequence_number; /* AT_ / AFTER_SEQUENCE_NUMBER */
    int64_t timestamp_ms;        /* AT_TIMESTAMP: Unix milliseconds */
} wv_kinesis_position;

/* An iterator for the shard at that position (GetShardIterator), into
 * iterator. An iterator lasts five minutes unless used (-ESTALE after). */
int wv_kinesis_get_shard_iterator(wv_kinesis *k, const char *stream, const char *shard_id,
                                  const wv_kinesis_position *at,
                                  char iterator[WV_KINESIS_ITERATOR_SIZE]);

/* A record read. Strings and bytes belong to the batch. */
typedef struct wv_kinesis_record {
    const void *data; /* base64-decoded; "" (len 0) for an empty record */
    size_t len;
    const char *partition_key;
    const char *sequence_number;
    int64_t arrival_ms; /* ApproximateArrivalTimestamp, Unix milliseconds */
} wv_kinesis_record;

/* What one GetRecords brought. */
typedef struct wv_kinesis_batch {
    wv_kinesis_record *records;
    size_t n;
    /* where the next read starts ("" when the shard is closed and read to
     * its end: no more records will come) */
    char next_iterator[WV_KINESIS_ITERATOR_SIZE];
    int64_t millis_behind_latest; /* how far behind the shard's tip this read is; -1 if not said */
    void *mem_;                   /* private */
} wv_kinesis_batch;

/*
 * Up to `limit` records (1 to 10000; 0: the service's default, 10000)
 * from iterator (GetRecords), into *out. *out may hold the previous
 * batch, and iterator may be its next_iterator: the batch is freed once
 * the request is made, so a loop reads
 *
 *     wv_kinesis_batch b = {0};
 *     ... wv_kinesis_get_shard_iterator(k, "orders", shard, &at, b.next_iterator) ...
 *     while (b.next_iterator[0]) {
 *         if ((rc = wv_kinesis_get_records(k, b.next_iterator, 0, &b)) < 0)
 *             break;
 *         for (size_t i = 0; i < b.n; i++)
 *             use(b.records[i].data, b.records[i].len);
 *         if (b.n == 0 && b.millis_behind_latest == 0)
 *             wv_sleep_ms(1000);             // at the tip: wait for more
 *     }
 *     wv_kinesis_batch_free(&b);
 *
 * An empty batch is normal (nothing new yet, or a gap in the shard).
 * -ESTALE when the iterator expired; on error *out is empty (its
 * next_iterator too).
 */
int wv_kinesis_get_records(wv_kinesis *k, const char *iterator, int limit, wv_kinesis_batch *out);

/* Free a batch and zero it; a zeroed batch is harmless. */
void wv_kinesis_batch_free(wv_kinesis_batch *b);

/*
 * A reader: one shard read in order, the iterator carried from batch to
 * batch, for a fiber that loops over what arrives:
 *
 *     wv_kinesis_reader *r;
 *     rc = wv_kinesis_reader_open(k, "orders", "shardId-000000000000", NULL, &r);
 *     wv_kinesis_batch b = {0};
 *     while ((rc = wv_kinesis_reader_next(r, &b)) > 0)
 *         count += b.n;                  // rc: records in b
 *     // rc 0: the shard is closed and read to its end; < 0: the error
 *     wv_kinesis_batch_free(&b);
 *     wv_kinesis_reader_free(r);
 *
 * The reader belongs to the fiber that reads it (one at a time); it keeps
 * the stream, the shard and the last sequence number it handed out.
 */
typedef struct wv_kinesis_reader wv_kinesis_reader;

typedef struct wv_kinesis_reader_opts {
    wv_kinesis_position start; /* where to begin; default TRIM_HORIZON */
    int limit;                 /* records per GetRecords, 0 = 1000 (1 to 10000) */
    /* wait between reads that find nothing new, 0 = 1000 ms; and reads
     * are at least min(poll_ms, 200 ms) apart (a shard allows five a
     * second) */
    int64_t poll_ms;
} wv_kinesis_reader_opts;

/* A reader of stream's shard (no request yet: the first read gets the
 * iterator). o may be NULL. -EINVAL (names, options), -ENOMEM. */
int wv_kinesis_reader_open(wv_kinesis *k, const char *stream, const char *shard_id,
                           const wv_kinesis_reader_opts *o, wv_kinesis_reader **out);

/*
 * The next records, at least one: read, and when nothing is new, wait
 * poll_ms and read again, until some come, the shard ends, or the fiber's
 * deadline or cancellation. Returns the count (> 0) with the records in
 * *batch (freed first, as wv_kinesis_get_records does); 0 when the shard
 * is closed and read to its end; else the error (-ETIMEDOUT, -ECANCELED,
 * the calls'). An iterator that expired (the reader unused for five
 * minutes) is replaced by one just after the last record handed out, so
 * nothing is skipped or read twice.
 */
int wv_kinesis_reader_next(wv_kinesis_reader *r, wv_kinesis_batch *batch);

/* The sequence number of the last record handed out ("" before any). */
const char *wv_kinesis_reader_position(const wv_kinesis_reader *r);

/* NULL is ignored. */
void wv_kinesis_reader_free(wv_kinesis_reader *r);

#ifdef __cplusplus
}
#endif

#endif
