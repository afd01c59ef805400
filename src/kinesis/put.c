/*
 * Writing: PutRecord, and PutRecords for any number of records.
 *
 * wv_kinesis_put_records checks every record first (nothing is sent if
 * one is bad), then cuts the records, in order, into requests the
 * service accepts (max_batch_records and max_batch_bytes, partition keys
 * counted) and sends them one after the other. A request is a round of
 * wv_retry: kinesis_send carries it (and retries it whole when it fails
 * whole), reply.c reads which records failed, and those whose error may
 * pass are the next round's request, after a backoff, until none is
 * left or a record has been tried max_attempts times. A request that
 * fails whole after its own retries ends the call: its records and every
 * later one get its error, so each record's result says what became of
 * it.
 */
#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis/kinesis_internal.h"
#include "weave/net.h"

/* The Data member's value: the bytes as a base64 JSON string, made in
 * scratch and inserted as it is (base64 needs no escaping). */
static void write_data(wv_json *j, const void *p, size_t n, wv_buf *scratch)
{
    scratch->n = 0;
    if (n > INT_MAX / 2 || wv_buf_reserve(scratch, 4 * ((n + 2) / 3) + 3) < 0) {
        if (!j->err)
            j->err = -ENOMEM;
        return;
    }
    scratch->p[0] = '"';
    int len = EVP_EncodeBlock((unsigned char *)scratch->p + 1, n ? p : (const void *)"", (int)n);
    scratch->p[len + 1] = '"';
    wv_json_raw(j, scratch->p, (size_t)len + 2);
}

/* A record's members, inside an open object. */
static void write_entry(wv_json *j, const wv_kinesis_entry *e, wv_buf *scratch)
{
    wv_json_key(j, "Data");
    write_data(j, e->data, e->len, scratch);
    wv_json_key(j, "PartitionKey");
    wv_json_string(j, e->partition_key);
    if (e->explicit_hash_key) {
        wv_json_key(j, "ExplicitHashKey");
        wv_json_string(j, e->explicit_hash_key);
    }
}

int wv_kinesis_put(wv_kinesis *k, const char *stream, const wv_kinesis_entry *e,
                   wv_kinesis_put_result *out)
{
    char what[KINESIS_WHAT_MAX];
    wv_kinesis_put_result mine;
    wv_kinesis_put_result *r = out ? out : &mine;
    memset(r, 0, sizeof *r);
    int rc = kinesis_begin(k, "PutRecord", stream, what, sizeof what);
    if (rc == 0)
        rc = kinesis_check_entry(k, e, -1, what);
    if (rc < 0)
        return r->err = rc;
    wv_buf b = {0}, scratch = {0};
    wv_json j;
    kinesis_body_begin(&j, &b, stream);
    write_entry(&j, e, &scratch);
    wv_json_object_end(&j);
    wv_buf_free(&scratch);
    wv_json_doc *doc = NULL;
    if (wv_json_finish(&j) < 0)
        rc = wv_fail(-ENOMEM, "%s: out of memory", what);
    else
        rc = kinesis_send(k, &(kinesis_call){.op = "PutRecord", .what = what, .body = &b}, &doc);
    wv_buf_free(&b);
    if (rc == 0)
        rc = kinesis_read_put(doc, r, what);
    wv_json_doc_free(doc);
    return r->err = rc;
}

/* ------------------------------------------------------------ PutRecords */

typedef struct put_job {
    wv_kinesis *k;
    const char *stream;
    const char *what;
    const wv_kinesis_entry *records;
    wv_kinesis_put_result *results;
    size_t *pending; /* the records of this round, indices into records */
    size_t npending;
    size_t *again; /* the next round's, filled from the reply */
    wv_buf body, scratch;
    bool partial;    /* the last round stored some records and left others to retry */
    char first[400]; /* the first failure's words, for the call's message */
} put_job;

static int round_body(put_job *p)
{
    wv_json j;
    p->body.n = 0;
    kinesis_body_begin(&j, &p->body, p->stream);
    wv_json_key(&j, "Records");
    wv_json_array_begin(&j);
    for (size_t i = 0; i < p->npending; i++) {
        wv_json_object_begin(&j);
        write_entry(&j, &p->records[p->pending[i]], &p->scratch);
        wv_json_object_end(&j);
    }
    wv_json_array_end(&j);
    wv_json_object_end(&j);
    return wv_json_finish(&j) < 0 ? wv_fail(-ENOMEM, "%s: out of memory", p->what) : 0;
}

/* One round: the pending records sent, the reply read. 0 when nothing is
 * left to retry; -EAGAIN (retryable) when some records may pass on the
 * next round, which are then the pending ones. */
static int put_round(void *arg, wv_retry_attempt *a)
{
    put_job *p = arg;
    p->partial = false;
    int rc = round_body(p);
    wv_json_doc *doc = NULL;
    if (rc == 0)
        rc = kinesis_send(
            p->k, &(kinesis_call){.op = "PutRecords", .what = p->what, .body = &p->body}, &doc);
    size_t nagain = 0;
    char first[320];
    if (rc == 0)
        rc = kinesis_read_put_records(doc, p->pending, p->npending, p->results, p->again, &nagain,
                                      first, sizeof first, p->what);
    wv_json_doc_free(doc);
    if (rc < 0)
        return rc;
    if (rc > 0 && !p->first[0])
        snprintf(p->first, sizeof p->first, "%s", first);
    size_t sent = p->npending;
    memcpy(p->pending, p->again, nagain * sizeof *p->pending);
    p->npending = nagain;
    if (nagain == 0)
        return 0; /* every record stored, or refused for good */
    p->partial = true;
    return wv_fail(p->results[p->pending[0]].err, "%s: %zu of %zu records not stored: %s", p->what,
                   nagain, sent, first);
}

static bool round_retryable(int rc, void *arg)
{
    return ((put_job *)arg)->partial;
}

/* Send records [from, to) until they are stored or their tries run out;
 * 0, or the error that ends the call (a request that failed whole). */
static int put_batch(put_job *p, size_t from, size_t to)
{
    p->npending = to - from;
    for (size_t i = 0; i < p->npending; i++)
        p->pending[i] = from + i;
    int rc = wv_retry(&(wv_retry_opts){.max_attempts = p->k->max_attempts,
                                       .base_ms = p->k->retry_base_ms,
                                       .max_ms = p->k->retry_max_ms,
                                       .retryable = round_retryable},
                      put_round, p);
    if (rc == 0 || p->partial)
        return 0; /* what is left holds the service's per-record errors */
    if (!p->first[0])
        snprintf(p->first, sizeof p->first, "%s", wv_errmsg());
    for (size_t i = 0; i < p->npending; i++) {
        wv_kinesis_put_result *r = &p->results[p->pending[i]];
        r->err = rc;
        r->error_code[0] = r->shard_id[0] = r->sequence_number[0] = '\0';
    }
    return rc;
}

int wv_kinesis_put_records(wv_kinesis *k, const char *stream, const wv_kinesis_entry *records,
                           size_t n, wv_kinesis_put_result *results)
{
    char what[KINESIS_WHAT_MAX];
    int rc = kinesis_begin(k, "PutRecords", stream, what, sizeof what);
    if (rc == 0 && (!records || !results || n == 0))
        rc = wv_fail(-EINVAL, "%s: no records or results, or no record", what);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = kinesis_check_entry(k, &records[i], (long)i, what);
    if (rc == 0)
        memset(results, 0, n * sizeof *results);
    if (rc < 0) {
        for (size_t i = 0; results && i < n; i++)
            results[i] = (wv_kinesis_put_result){.err = rc};
        return rc;
    }
    size_t cap = (size_t)k->max_batch_records;
    put_job p = {.k = k, .stream = stream, .what = what, .records = records, .results = results};
    p.pending = calloc(cap, sizeof *p.pending);
    p.again = calloc(cap, sizeof *p.again);
    if (!p.pending || !p.again)
        rc = wv_fail(-ENOMEM, "%s: out of memory", what);
    /* requests of at most cap records and max_batch_bytes, in order */
    size_t from = 0;
    while (rc == 0 && from < n) {
        size_t to = from, bytes = 0;
        while (to < n && to - from < cap) {
            size_t size = records[to].len + strlen(records[to].partition_key);
            if (to > from && bytes + size > k->max_batch_bytes)
                break;
            bytes += size;
            to++;
        }
        rc = put_batch(&p, from, to);
        from = to;
    }
    /* a request that failed whole: its records have its error; the ones
     * after it were never sent */
    for (size_t i = from; i < n; i++)
        results[i] = (wv_kinesis_put_result){.err = rc ? rc : -ECANCELED};
    wv_buf_free(&p.body);
    wv_buf_free(&p.scratch);
    free(p.pending);
    free(p.again);
    size_t failed = 0, first = n;
    for (size_t i = 0; i < n; i++)
        if (results[i].err) {
            failed++;
            first = first < i ? first : i;
        }
    if (!failed)
        return 0;
    if (!p.first[0]) /* copied: wv_fail writes where wv_errmsg reads */
        snprintf(p.first, sizeof p.first, "%s", wv_errmsg());
    if (rc < 0) /* p.first is the whole request's message, the call's name in it */
        return wv_fail(results[first].err,
                       "%s; %zu of %zu records not stored (the first: record %zu)", p.first, failed,
                       n, first);
    return wv_fail(results[first].err,
                   "%s: %zu of %zu records not stored (the first: record %zu): %s", what, failed, n,
                   first, p.first);
}
