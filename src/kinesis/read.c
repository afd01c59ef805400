/*
 * Reading: GetShardIterator, GetRecords, and the reader that carries a
 * shard's iterator from batch to batch.
 *
 * The reader keeps the sequence number of the last record it handed out.
 * Its first read gets an iterator at the start position; every read after
 * that uses the NextShardIterator of the one before. When an iterator
 * expires (an idle reader: iterators last five minutes) the reader asks
 * for a new one just after that sequence number, so it neither skips nor
 * repeats a record. It paces itself: reads at least min(poll_ms, 200 ms)
 * apart, and poll_ms after a read that found the shard's tip.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis/kinesis_internal.h"

#define NS_PER_MS  INT64_C(1000000)
#define MIN_GAP_MS 200

static const char *const iterator_types[] = {
    [WV_KINESIS_TRIM_HORIZON] = "TRIM_HORIZON",
    [WV_KINESIS_LATEST] = "LATEST",
    [WV_KINESIS_AT_SEQUENCE_NUMBER] = "AT_SEQUENCE_NUMBER",
    [WV_KINESIS_AFTER_SEQUENCE_NUMBER] = "AFTER_SEQUENCE_NUMBER",
    [WV_KINESIS_AT_TIMESTAMP] = "AT_TIMESTAMP",
};

static int check_position(const wv_kinesis_position *at, const char *what)
{
    if (at->from < WV_KINESIS_TRIM_HORIZON || at->from > WV_KINESIS_AT_TIMESTAMP)
        return wv_fail(-EINVAL, "%s: unknown iterator position %d", what, (int)at->from);
    if (at->from == WV_KINESIS_AT_SEQUENCE_NUMBER || at->from == WV_KINESIS_AFTER_SEQUENCE_NUMBER)
        return kinesis_check_sequence(at->sequence_number, what);
    if (at->from == WV_KINESIS_AT_TIMESTAMP && at->timestamp_ms < 0)
        return wv_fail(-EINVAL, "%s: a timestamp before 1970", what);
    return 0;
}

int wv_kinesis_get_shard_iterator(wv_kinesis *k, const char *stream, const char *shard_id,
                                  const wv_kinesis_position *at,
                                  char iterator[WV_KINESIS_ITERATOR_SIZE])
{
    char what[KINESIS_WHAT_MAX];
    if (iterator)
        iterator[0] = '\0';
    wv_kinesis_position start = at ? *at : (wv_kinesis_position){0};
    int rc = kinesis_begin(k, "GetShardIterator", stream, what, sizeof what);
    if (rc == 0)
        rc = kinesis_check_shard_id(shard_id, what);
    if (rc == 0)
        rc = check_position(&start, what);
    if (rc == 0 && !iterator)
        rc = wv_fail(-EINVAL, "%s: no place for the iterator", what);
    if (rc < 0)
        return rc;
    wv_buf b = {0};
    wv_json j;
    kinesis_body_begin(&j, &b, stream);
    wv_json_key(&j, "ShardId");
    wv_json_string(&j, shard_id);
    wv_json_key(&j, "ShardIteratorType");
    wv_json_string(&j, iterator_types[start.from]);
    if (start.from == WV_KINESIS_AT_SEQUENCE_NUMBER ||
        start.from == WV_KINESIS_AFTER_SEQUENCE_NUMBER) {
        wv_json_key(&j, "StartingSequenceNumber");
        wv_json_string(&j, start.sequence_number);
    } else if (start.from == WV_KINESIS_AT_TIMESTAMP) {
        wv_json_key(&j, "Timestamp"); /* seconds, as the JSON API writes times */
        wv_json_double(&j, (double)start.timestamp_ms / 1000.0);
    }
    wv_json_object_end(&j);
    wv_json_doc *doc = NULL;
    if (wv_json_finish(&j) < 0)
        rc = wv_fail(-ENOMEM, "%s: out of memory", what);
    else
        rc = kinesis_send(k, &(kinesis_call){.op = "GetShardIterator", .what = what, .body = &b},
                          &doc);
    wv_buf_free(&b);
    if (rc == 0)
        rc = kinesis_read_iterator(doc, iterator, what);
    wv_json_doc_free(doc);
    return rc;
}

int wv_kinesis_get_records(wv_kinesis *k, const char *iterator, int limit, wv_kinesis_batch *out)
{
    const char *what = "Kinesis GetRecords";
    /* iterator may point into *out, which is freed below */
    char it[WV_KINESIS_ITERATOR_SIZE];
    size_t len = iterator ? strnlen(iterator, sizeof it) : 0;
    if (len)
        memcpy(it, iterator, len);
    it[len < sizeof it ? len : 0] = '\0';
    wv_kinesis_batch_free(out);
    if (!k || !out)
        return wv_fail(-EINVAL, "%s: no client or no batch", what);
    if (len == 0 || len >= sizeof it)
        return wv_fail(-EINVAL, "%s: an iterator is 1 to %d bytes", what,
                       WV_KINESIS_ITERATOR_SIZE - 1);
    if (limit < 0 || limit > KINESIS_MAX_LIMIT)
        return wv_fail(-EINVAL, "%s: limit %d is outside 1 to %d", what, limit, KINESIS_MAX_LIMIT);
    wv_buf b = {0};
    wv_json j;
    kinesis_body_begin(&j, &b, NULL);
    wv_json_key(&j, "ShardIterator");
    wv_json_string(&j, it);
    if (limit) {
        wv_json_key(&j, "Limit");
        wv_json_int(&j, limit);
    }
    wv_json_object_end(&j);
    wv_json_doc *doc = NULL;
    int rc;
    if (wv_json_finish(&j) < 0)
        rc = wv_fail(-ENOMEM, "%s: out of memory", what);
    else
        rc = kinesis_send(k, &(kinesis_call){.op = "GetRecords", .what = what, .body = &b}, &doc);
    wv_buf_free(&b);
    if (rc == 0)
        rc = kinesis_read_batch(doc, out, what); /* takes doc */
    return rc;
}

/* ------------------------------------------------------------ reader */

struct wv_kinesis_reader {
    wv_kinesis *k;
    char stream[KINESIS_MAX_NAME + 1];
    char shard[KINESIS_MAX_NAME + 1];
    wv_kinesis_position start;
    char start_seq[WV_KINESIS_SEQUENCE_SIZE];
    int limit;
    int64_t poll_ms;
    char iterator[WV_KINESIS_ITERATOR_SIZE]; /* "" until the first read */
    bool ended;
    char last_seq[WV_KINESIS_SEQUENCE_SIZE]; /* the last record handed out */
    int64_t last_read;                       /* wv_now() of the last GetRecords */
};

int wv_kinesis_reader_open(wv_kinesis *k, const char *stream, const char *shard_id,
                           const wv_kinesis_reader_opts *o, wv_kinesis_reader **out)
{
    char what[KINESIS_WHAT_MAX];
    if (out)
        *out = NULL;
    wv_kinesis_reader_opts none = {0};
    if (!o)
        o = &none;
    int rc = kinesis_begin(k, "reader", stream, what, sizeof what);
    if (rc == 0)
        rc = kinesis_check_shard_id(shard_id, what);
    if (rc == 0)
        rc = check_position(&o->start, what);
    if (rc == 0 && (!out || o->limit < 0 || o->limit > KINESIS_MAX_LIMIT || o->poll_ms < 0))
        rc = wv_fail(-EINVAL, "%s: no place for the reader, or a limit or poll_ms out of range",
                     what);
    if (rc < 0)
        return rc;
    wv_kinesis_reader *r = calloc(1, sizeof *r);
    if (!r)
        return wv_fail(-ENOMEM, "%s: out of memory", what);
    r->k = k;
    snprintf(r->stream, sizeof r->stream, "%s", stream);
    snprintf(r->shard, sizeof r->shard, "%s", shard_id);
    r->start = o->start;
    if (o->start.sequence_number) {
        snprintf(r->start_seq, sizeof r->start_seq, "%s", o->start.sequence_number);
        r->start.sequence_number = r->start_seq;
    }
    r->limit = o->limit ? o->limit : 1000;
    r->poll_ms = o->poll_ms ? o->poll_ms : 1000;
    *out = r;
    return 0;
}

/* An iterator where the reader stands: just after the last record it
 * handed out, or at its start before any. */
static int fresh_iterator(wv_kinesis_reader *r)
{
    wv_kinesis_position at = r->start;
    if (r->last_seq[0])
        at = (wv_kinesis_position){.from = WV_KINESIS_AFTER_SEQUENCE_NUMBER,
                                   .sequence_number = r->last_seq};
    return wv_kinesis_get_shard_iterator(r->k, r->stream, r->shard, &at, r->iterator);
}

/* Sleep until ms after the last read. */
static int pause_after_read(wv_kinesis_reader *r, int64_t ms)
{
    if (!r->last_read)
        return 0;
    return wv_sleep_until(r->last_read + ms * NS_PER_MS);
}

int wv_kinesis_reader_next(wv_kinesis_reader *r, wv_kinesis_batch *batch)
{
    if (!r || !batch)
        return wv_fail(-EINVAL, "Kinesis reader: no reader or no batch");
    wv_kinesis_batch_free(batch);
    int64_t gap = r->poll_ms < MIN_GAP_MS ? r->poll_ms : MIN_GAP_MS;
    bool renewed = false;
    while (!r->ended) {
        int rc = 0;
        if (!r->iterator[0]) {
            rc = fresh_iterator(r);
            renewed = true;
        }
        if (rc == 0)
            rc = pause_after_read(r, gap);
        if (rc == 0) {
            rc = wv_kinesis_get_records(r->k, r->iterator, r->limit, batch);
            r->last_read = wv_now();
        }
        if (rc == -ESTALE && !renewed) {
            r->iterator[0] = '\0'; /* expired while idle: a new one where we stand */
            continue;
        }
        if (rc < 0)
            return rc;
        renewed = false;
        snprintf(r->iterator, sizeof r->iterator, "%s", batch->next_iterator);
        r->ended = !batch->next_iterator[0];
        if (batch->n) {
            snprintf(r->last_seq, sizeof r->last_seq, "%s",
                     batch->records[batch->n - 1].sequence_number);
            return (int)batch->n;
        }
        /* nothing new: at the tip, wait poll_ms; behind it (a gap in the
         * shard), read on at the pace allowed */
        if (!r->ended && batch->millis_behind_latest <= 0 &&
            (rc = pause_after_read(r, r->poll_ms)) < 0)
            return rc;
        wv_kinesis_batch_free(batch);
    }
    return 0;
}

const char *wv_kinesis_reader_position(const wv_kinesis_reader *r)
{
    return r ? r->last_seq : "";
}

void wv_kinesis_reader_free(wv_kinesis_reader *r)
{
    free(r);
}
