/*
 * The service's replies, read without I/O: bytes in, results out.
 *
 * A refusal (HTTP 300 and up) carries {"__type": "...", "message": "..."}
 * (the type sometimes prefixed with a namespace and '#', or given only in
 * the x-amzn-ErrorType header); its type picks the errno and says whether
 * another try may go better. An answer is a JSON object read with weave's
 * strict JSON reader under the client's size limit, and each operation's
 * fields are checked as they are read: a missing or mistyped field, a
 * string longer than the public struct holds, or data that is not base64
 * is -EPROTO, never a guess. A JSON null counts as absent (kinesis-local
 * writes "ParentShardId": null where Kinesis leaves the field out).
 *
 * GetRecords' data is decoded from base64 in place, inside the parsed
 * document (the decoded bytes are shorter than their text), and the
 * batch keeps the document: the records' bytes and strings point into
 * it, so a 10 MiB batch is not copied again. The document is the
 * client's own, made by this call and read by no one else.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis/kinesis_internal.h"

enum { ERROR_REPLY_MAX = 64 << 10 };

/* ------------------------------------------------------------ errors */

typedef struct kinesis_type {
    const char *type;
    int err;
    bool retry;
} kinesis_type;

static const kinesis_type types[] = {
    {"ResourceNotFoundException", -ENOENT, false},
    {"ResourceInUseException", -EBUSY, false},
    {"ProvisionedThroughputExceededException", -EAGAIN, true},
    {"LimitExceededException", -EAGAIN, true},
    {"ThrottlingException", -EAGAIN, true},
    {"Throttling", -EAGAIN, true},
    {"KMSThrottlingException", -EAGAIN, true},
    {"ServiceUnavailable", -EAGAIN, true},
    {"ServiceUnavailableException", -EAGAIN, true},
    {"InternalFailure", -EIO, true},
    {"InternalFailureException", -EIO, true},
    {"InternalServerError", -EIO, true},
    {"ExpiredIteratorException", -ESTALE, false},
    {"ExpiredNextTokenException", -ESTALE, false},
    {"AccessDeniedException", -EACCES, false},
    {"UnrecognizedClientException", -EACCES, false},
    {"InvalidSignatureException", -EACCES, false},
    {"IncompleteSignature", -EACCES, false},
    {"IncompleteSignatureException", -EACCES, false},
    {"MissingAuthenticationToken", -EACCES, false},
    {"MissingAuthenticationTokenException", -EACCES, false},
    {"InvalidClientTokenId", -EACCES, false},
    {"SignatureDoesNotMatch", -EACCES, false},
    {"ExpiredTokenException", -EACCES, false},
    {"RequestExpired", -EACCES, false},
    {"KMSAccessDeniedException", -EACCES, false},
    {"KMSOptInRequired", -EACCES, false},
    {"InvalidArgumentException", -EINVAL, false},
    {"ValidationException", -EINVAL, false},
    {"SerializationException", -EINVAL, false},
    {"InvalidParameterValue", -EINVAL, false},
    {"MissingParameter", -EINVAL, false},
};

/* The type's name: after a namespace's '#', before a header's ':'. */
static void type_name(const char *raw, char *out, size_t cap)
{
    const char *hash = strrchr(raw, '#');
    const char *s = hash ? hash + 1 : raw;
    snprintf(out, cap, "%.*s", (int)strcspn(s, ":"), s);
}

int kinesis_errno_for(const char *type, int status, bool create, bool *retry)
{
    char name[96] = "";
    if (type)
        type_name(type, name, sizeof name);
    for (size_t i = 0; name[0] && i < sizeof types / sizeof types[0]; i++)
        if (strcmp(name, types[i].type) == 0) {
            *retry = types[i].retry;
            return create && types[i].err == -EBUSY ? -EEXIST : types[i].err;
        }
    *retry = status >= 500 || status == 429;
    switch (status) {
    case 403:
        return -EACCES;
    case 413:
        return -EMSGSIZE;
    case 429:
    case 503:
        return -EAGAIN;
    default:
        return -EIO;
    }
}

/* A string member, NULL when absent, null or not a string. */
static const char *str_of(const wv_json_val *obj, const char *key)
{
    const char *s = NULL;
    return wv_json_as_string(wv_json_get(obj, key), &s, NULL) == 0 ? s : NULL;
}

int kinesis_refusal(int status, const char *body, size_t n, const char *type_header,
                    const char *request_id, const char *what, bool create, bool *retry)
{
    wv_json_doc *doc = NULL;
    const char *type = NULL, *message = NULL;
    if (n && n <= ERROR_REPLY_MAX && wv_json_parse(body, n, &doc) == 0) {
        const wv_json_val *root = wv_json_doc_root(doc);
        type = str_of(root, "__type");
        message = str_of(root, "message");
        if (!message)
            message = str_of(root, "Message");
    }
    if (!type || !*type)
        type = type_header;
    char name[96] = "";
    if (type)
        type_name(type, name, sizeof name);
    int rc = kinesis_errno_for(type, status, create, retry);
    rc = wv_fail(rc, "%s: %s%s%.300s (HTTP %d%s%.80s)", what, name[0] ? name : "HTTP error",
                 message && *message ? ": " : "", message ? message : "", status,
                 request_id ? ", request id " : "", request_id ? request_id : "");
    wv_json_doc_free(doc);
    return rc;
}

/* ------------------------------------------------------------ answers */

int kinesis_parse(const char *body, size_t n, size_t max, const char *what, wv_json_doc **doc)
{
    *doc = NULL;
    if (n == 0)
        return wv_fail(-EPROTO, "%s: the reply is empty", what);
    int rc = wv_json_parse_with(body, n, &(wv_json_parse_opts){.max_bytes = max}, doc);
    if (rc == -ENOMEM || rc == -EMSGSIZE)
        return wv_fail(rc, "%s: the reply of %zu bytes cannot be read: %s", what, n,
                       wv_strerror(rc));
    if (rc < 0) {
        char why[200];
        snprintf(why, sizeof why, "%s", wv_errmsg());
        return wv_fail(-EPROTO, "%s: the reply is not JSON (%s)", what, why);
    }
    if (wv_json_type_of(wv_json_doc_root(*doc)) != WV_JSON_OBJECT) {
        wv_json_doc_free(*doc);
        *doc = NULL;
        return wv_fail(-EPROTO, "%s: the reply is not a JSON object", what);
    }
    return 0;
}

/* Copy string member key of obj into out (cap bytes, the NUL included).
 * Absent or null: "" and 0 unless required. -EPROTO when it is another
 * type, too long, or required and missing or empty. */
static int copy_str(const wv_json_val *obj, const char *key, char *out, size_t cap, bool required,
                    const char *what)
{
    const wv_json_val *v = wv_json_get(obj, key);
    out[0] = '\0';
    if (!v || wv_json_is_null(v)) {
        if (required)
            return wv_fail(-EPROTO, "%s: the reply has no %s", what, key);
        return 0;
    }
    const char *s;
    size_t len;
    if (wv_json_as_string(v, &s, &len) < 0)
        return wv_fail(-EPROTO, "%s: the reply's %s is not a string", what, key);
    if (len >= cap || (required && len == 0))
        return wv_fail(-EPROTO, "%s: the reply's %s is %zu bytes (1 to %zu expected)", what, key,
                       len, cap - 1);
    memcpy(out, s, len + 1);
    return 0;
}

/* A string member that must be there (not empty), pointing into the
 * document; or NULL with -EPROTO in *rc. */
static const char *need_str(const wv_json_val *obj, const char *key, int *rc, const char *what)
{
    const char *s = NULL;
    size_t len = 0;
    if (*rc == 0 && (wv_json_as_string(wv_json_get(obj, key), &s, &len) < 0 || len == 0))
        *rc = wv_fail(-EPROTO, "%s: the reply has no %s string", what, key);
    return *rc == 0 ? s : NULL;
}

/* An optional string member: NULL when absent or null; -EPROTO in *rc
 * when it is there and no string. */
static const char *opt_str(const wv_json_val *obj, const char *key, int *rc, const char *what)
{
    const wv_json_val *v = wv_json_get(obj, key);
    if (*rc < 0 || !v || wv_json_is_null(v))
        return NULL;
    const char *s = NULL;
    if (wv_json_as_string(v, &s, NULL) < 0)
        *rc = wv_fail(-EPROTO, "%s: the reply's %s is not a string", what, key);
    return s;
}

/* An optional integer member into *out (left alone when absent or null). */
static int opt_i64(const wv_json_val *obj, const char *key, int64_t *out, const char *what)
{
    const wv_json_val *v = wv_json_get(obj, key);
    if (!v || wv_json_is_null(v))
        return 0;
    if (wv_json_as_i64(v, out) < 0)
        return wv_fail(-EPROTO, "%s: the reply's %s is not an integer", what, key);
    return 0;
}

/* A timestamp member (seconds since 1970, with a fraction) as Unix
 * milliseconds into *out (left alone when absent or null). */
static int opt_time_ms(const wv_json_val *obj, const char *key, int64_t *out, const char *what)
{
    const wv_json_val *v = wv_json_get(obj, key);
    double s;
    if (!v || wv_json_is_null(v))
        return 0;
    if (wv_json_as_double(v, &s) < 0 || !(s >= 0 && s < 1e14))
        return wv_fail(-EPROTO, "%s: the reply's %s is not a time", what, key);
    *out = llround(s * 1000.0);
    return 0;
}

int kinesis_read_put(const wv_json_doc *doc, wv_kinesis_put_result *r, const char *what)
{
    const wv_json_val *root = wv_json_doc_root(doc);
    int rc = copy_str(root, "ShardId", r->shard_id, sizeof r->shard_id, true, what);
    if (rc == 0)
        rc = copy_str(root, "SequenceNumber", r->sequence_number, sizeof r->sequence_number, true,
                      what);
    r->err = rc;
    r->error_code[0] = '\0';
    return rc;
}

/* Is entry a failure (a non-empty ErrorCode)? Its code into *code. */
static bool failed_entry(const wv_json_val *entry, const char **code)
{
    *code = str_of(entry, "ErrorCode");
    return *code && **code;
}

int kinesis_read_put_records(const wv_json_doc *doc, const size_t *sent, size_t nsent,
                             wv_kinesis_put_result *results, size_t *again, size_t *nagain,
                             char *first, size_t first_cap, const char *what)
{
    const wv_json_val *records = wv_json_get(wv_json_doc_root(doc), "Records");
    long n = wv_json_array_len(records);
    *nagain = 0;
    first[0] = '\0';
    if (n < 0 || (size_t)n != nsent)
        return wv_fail(-EPROTO, "%s: the reply has %ld records for the %zu sent", what, n, nsent);
    /* every entry checked before any result is touched */
    wv_kinesis_put_result scratch;
    for (size_t i = 0; i < nsent; i++) {
        const wv_json_val *e = wv_json_array_at(records, i);
        const char *code;
        if (wv_json_type_of(e) != WV_JSON_OBJECT)
            return wv_fail(-EPROTO, "%s: the reply's record %zu is not an object", what, i);
        if (failed_entry(e, &code))
            continue;
        int rc = copy_str(e, "ShardId", scratch.shard_id, sizeof scratch.shard_id, true, what);
        if (rc == 0)
            rc = copy_str(e, "SequenceNumber", scratch.sequence_number,
                          sizeof scratch.sequence_number, true, what);
        if (rc < 0)
            return rc;
    }
    int failed = 0;
    for (size_t i = 0; i < nsent; i++) {
        const wv_json_val *e = wv_json_array_at(records, i);
        wv_kinesis_put_result *r = &results[sent[i]];
        const char *code;
        if (!failed_entry(e, &code)) {
            copy_str(e, "ShardId", r->shard_id, sizeof r->shard_id, true, what);
            copy_str(e, "SequenceNumber", r->sequence_number, sizeof r->sequence_number, true,
                     what);
            r->err = 0;
            r->error_code[0] = '\0';
            continue;
        }
        bool retry;
        r->err = kinesis_errno_for(code, 400, false, &retry);
        snprintf(r->error_code, sizeof r->error_code, "%s", code);
        r->shard_id[0] = r->sequence_number[0] = '\0';
        if (retry)
            again[(*nagain)++] = sent[i];
        if (failed++ == 0) {
            const char *message = str_of(e, "ErrorMessage");
            snprintf(first, first_cap, "%.100s%s%.200s", code, message ? ": " : "",
                     message ? message : "");
        }
    }
    return failed;
}

int kinesis_read_iterator(const wv_json_doc *doc, char iterator[WV_KINESIS_ITERATOR_SIZE],
                          const char *what)
{
    return copy_str(wv_json_doc_root(doc), "ShardIterator", iterator, WV_KINESIS_ITERATOR_SIZE,
                    true, what);
}

/* ------------------------------------------------------------ records */

static signed char b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return (signed char)(c - 'A');
    if (c >= 'a' && c <= 'z')
        return (signed char)(c - 'a' + 26);
    if (c >= '0' && c <= '9')
        return (signed char)(c - '0' + 52);
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long kinesis_base64_decode(const char *s, size_t n, unsigned char *out)
{
    if (n % 4)
        return -1;
    size_t pad = n >= 1 && s[n - 1] == '=' ? (n >= 2 && s[n - 2] == '=' ? 2 : 1) : 0;
    size_t o = 0;
    /* in place, each group of four is read before its three are written */
    for (size_t i = 0; i < n; i += 4) {
        unsigned v = 0;
        size_t real = i + 4 == n ? 4 - pad : 4;
        for (size_t j = 0; j < 4; j++) {
            signed char d = j < real ? b64_value((unsigned char)s[i + j]) : 0;
            if (d < 0)
                return -1;
            v = v << 6 | (unsigned)d;
        }
        out[o++] = (unsigned char)(v >> 16);
        if (real > 2)
            out[o++] = (unsigned char)(v >> 8);
        if (real > 3)
            out[o++] = (unsigned char)v;
    }
    return (long)o;
}

/* One record of GetRecords' reply into r; its Data decoded in place. */
static int read_record(const wv_json_val *e, wv_kinesis_record *r, size_t i, const char *what)
{
    int rc = 0;
    if (wv_json_type_of(e) != WV_JSON_OBJECT)
        return wv_fail(-EPROTO, "%s: the reply's record %zu is not an object", what, i);
    r->partition_key = need_str(e, "PartitionKey", &rc, what);
    r->sequence_number = need_str(e, "SequenceNumber", &rc, what);
    if (rc == 0 && strlen(r->sequence_number) >= WV_KINESIS_SEQUENCE_SIZE)
        rc = wv_fail(-EPROTO, "%s: the SequenceNumber of record %zu is too long", what, i);
    const char *data;
    size_t len;
    if (rc == 0 && wv_json_as_string(wv_json_get(e, "Data"), &data, &len) < 0)
        rc = wv_fail(-EPROTO, "%s: the reply's record %zu has no Data string", what, i);
    r->arrival_ms = 0;
    if (rc == 0)
        rc = opt_time_ms(e, "ApproximateArrivalTimestamp", &r->arrival_ms, what);
    if (rc < 0)
        return rc;
    /* the document is this call's own: its text may be rewritten */
    long got = kinesis_base64_decode(data, len, (unsigned char *)(uintptr_t)data);
    if (got < 0)
        return wv_fail(-EPROTO, "%s: the Data of record %zu is not base64", what, i);
    r->data = data;
    r->len = (size_t)got;
    return 0;
}

int kinesis_read_batch(wv_json_doc *doc, wv_kinesis_batch *out, const char *what)
{
    memset(out, 0, sizeof *out);
    const wv_json_val *root = wv_json_doc_root(doc);
    const wv_json_val *records = wv_json_get(root, "Records");
    long n = wv_json_array_len(records);
    int rc = 0;
    if (n < 0)
        rc = wv_fail(-EPROTO, "%s: the reply has no Records array", what);
    if (rc == 0)
        rc = copy_str(root, "NextShardIterator", out->next_iterator, sizeof out->next_iterator,
                      false, what);
    out->millis_behind_latest = -1;
    if (rc == 0)
        rc = opt_i64(root, "MillisBehindLatest", &out->millis_behind_latest, what);
    if (rc == 0 && n > 0 && !(out->records = calloc((size_t)n, sizeof *out->records)))
        rc = wv_fail(-ENOMEM, "%s: out of memory", what);
    for (long i = 0; rc == 0 && i < n; i++)
        rc = read_record(wv_json_array_at(records, (size_t)i), &out->records[i], (size_t)i, what);
    if (rc < 0) {
        free(out->records);
        wv_json_doc_free(doc);
        memset(out, 0, sizeof *out);
        return rc;
    }
    out->n = (size_t)n;
    out->mem_ = doc;
    return 0;
}

void wv_kinesis_batch_free(wv_kinesis_batch *b)
{
    if (!b)
        return;
    free(b->records);
    wv_json_doc_free(b->mem_);
    memset(b, 0, sizeof *b);
}

/* ------------------------------------------------------------ shards */

/* A shard list's memory: the pages' documents its strings point into. */
typedef struct shard_pages {
    wv_json_doc **docs;
    size_t n;
} shard_pages;

static int read_shard(const wv_json_val *e, wv_kinesis_shard *s, const char *what)
{
    int rc = 0;
    if (wv_json_type_of(e) != WV_JSON_OBJECT)
        return wv_fail(-EPROTO, "%s: a shard in the reply is not an object", what);
    const wv_json_val *hash = wv_json_get(e, "HashKeyRange");
    const wv_json_val *seq = wv_json_get(e, "SequenceNumberRange");
    s->shard_id = need_str(e, "ShardId", &rc, what);
    s->parent_shard_id = opt_str(e, "ParentShardId", &rc, what);
    s->adjacent_parent_shard_id = opt_str(e, "AdjacentParentShardId", &rc, what);
    s->starting_hash_key = need_str(hash, "StartingHashKey", &rc, what);
    s->ending_hash_key = need_str(hash, "EndingHashKey", &rc, what);
    s->starting_sequence_number = need_str(seq, "StartingSequenceNumber", &rc, what);
    s->ending_sequence_number = opt_str(seq, "EndingSequenceNumber", &rc, what);
    return rc;
}

int kinesis_read_shards(wv_json_doc *doc, wv_kinesis_shard_list *l, const char **next,
                        const char *what)
{
    *next = NULL;
    shard_pages *pages = l->mem_;
    if (!pages && !(pages = l->mem_ = calloc(1, sizeof *pages))) {
        wv_json_doc_free(doc);
        return wv_fail(-ENOMEM, "%s: out of memory", what);
    }
    wv_json_doc **docs = realloc(pages->docs, (pages->n + 1) * sizeof *docs);
    if (!docs) {
        wv_json_doc_free(doc);
        return wv_fail(-ENOMEM, "%s: out of memory", what);
    }
    pages->docs = docs;
    docs[pages->n++] = doc; /* the list holds it from here on */
    const wv_json_val *root = wv_json_doc_root(doc);
    const wv_json_val *shards = wv_json_get(root, "Shards");
    long n = wv_json_array_len(shards);
    if (n < 0)
        return wv_fail(-EPROTO, "%s: the reply has no Shards array", what);
    int rc = 0;
    *next = opt_str(root, "NextToken", &rc, what);
    if (rc < 0)
        return rc;
    if (*next && !**next)
        *next = NULL;
    if (n == 0)
        return 0;
    wv_kinesis_shard *all = realloc(l->shards, (l->n + (size_t)n) * sizeof *all);
    if (!all)
        return wv_fail(-ENOMEM, "%s: out of memory", what);
    l->shards = all;
    for (long i = 0; i < n; i++)
        if ((rc = read_shard(wv_json_array_at(shards, (size_t)i), &all[l->n + (size_t)i], what)) <
            0)
            return rc;
    l->n += (size_t)n;
    return 0;
}

void wv_kinesis_shard_list_free(wv_kinesis_shard_list *l)
{
    if (!l)
        return;
    shard_pages *pages = l->mem_;
    for (size_t i = 0; pages && i < pages->n; i++)
        wv_json_doc_free(pages->docs[i]);
    if (pages)
        free(pages->docs);
    free(pages);
    free(l->shards);
    memset(l, 0, sizeof *l);
}

/* ------------------------------------------------------------ summary */

static wv_kinesis_status status_of(const char *s)
{
    static const char *const names[] = {"CREATING", "DELETING", "ACTIVE", "UPDATING"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i]) == 0)
            return (wv_kinesis_status)i;
    return WV_KINESIS_STATUS_OTHER;
}

int kinesis_read_summary(const wv_json_doc *doc, wv_kinesis_stream_info *out, const char *what)
{
    memset(out, 0, sizeof *out);
    const wv_json_val *sum = wv_json_get(wv_json_doc_root(doc), "StreamDescriptionSummary");
    if (wv_json_type_of(sum) != WV_JSON_OBJECT)
        return wv_fail(-EPROTO, "%s: the reply has no StreamDescriptionSummary", what);
    int rc = 0;
    const char *status = need_str(sum, "StreamStatus", &rc, what);
    if (rc < 0)
        return rc;
    out->status = status_of(status);
    int64_t shards = 0, hours = 0, consumers = 0, created = 0;
    rc = opt_i64(sum, "OpenShardCount", &shards, what);
    if (rc == 0)
        rc = opt_i64(sum, "RetentionPeriodHours", &hours, what);
    if (rc == 0)
        rc = opt_i64(sum, "ConsumerCount", &consumers, what);
    if (rc == 0)
        rc = opt_time_ms(sum, "StreamCreationTimestamp", &created, what);
    if (rc == 0)
        rc = copy_str(sum, "StreamARN", out->arn, sizeof out->arn, false, what);
    if (rc < 0)
        return rc;
    if (shards < 0 || shards > INT32_MAX || hours < 0 || hours > INT32_MAX || consumers < 0 ||
        consumers > INT32_MAX)
        return wv_fail(-EPROTO, "%s: the reply's counts are out of range", what);
    out->open_shards = (int)shards;
    out->retention_hours = (int)hours;
    out->consumers = (int)consumers;
    out->created_ms = created;
    const char *mode = str_of(wv_json_get(sum, "StreamModeDetails"), "StreamMode");
    out->on_demand = mode && strcmp(mode, "ON_DEMAND") == 0;
    return 0;
}
