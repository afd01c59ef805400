/*
 * The calls on streams and their shards: CreateStream, DeleteStream,
 * DescribeStreamSummary (and waiting for ACTIVE on it), ListShards with
 * its pages.
 */
#include <errno.h>
#include <string.h>

#include "kinesis/kinesis_internal.h"

/* Send a request body made by the caller; doc as kinesis_send's. */
static int finish_and_send(wv_kinesis *k, wv_json *j, wv_buf *b, const kinesis_call *c,
                           wv_json_doc **doc)
{
    wv_json_object_end(j);
    int rc = wv_json_finish(j);
    if (rc < 0)
        rc = wv_fail(-ENOMEM, "%s: out of memory", c->what);
    else
        rc = kinesis_send(k, c, doc);
    wv_buf_free(b);
    return rc;
}

int wv_kinesis_create_stream(wv_kinesis *k, const char *stream, int shards)
{
    char what[KINESIS_WHAT_MAX];
    int rc = kinesis_begin(k, "CreateStream", stream, what, sizeof what);
    if (rc == 0 && shards < 0)
        rc = wv_fail(-EINVAL, "%s: a negative shard count", what);
    if (rc < 0)
        return rc;
    wv_buf b = {0};
    wv_json j;
    kinesis_body_begin(&j, &b, stream);
    if (shards > 0) {
        wv_json_key(&j, "ShardCount");
        wv_json_int(&j, shards);
    } else {
        wv_json_key(&j, "StreamModeDetails");
        wv_json_object_begin(&j);
        wv_json_key(&j, "StreamMode");
        wv_json_string(&j, "ON_DEMAND");
        wv_json_object_end(&j);
    }
    return finish_and_send(
        k, &j, &b, &(kinesis_call){.op = "CreateStream", .what = what, .body = &b, .create = true},
        NULL);
}

int wv_kinesis_delete_stream(wv_kinesis *k, const char *stream)
{
    char what[KINESIS_WHAT_MAX];
    int rc = kinesis_begin(k, "DeleteStream", stream, what, sizeof what);
    if (rc < 0)
        return rc;
    wv_buf b = {0};
    wv_json j;
    kinesis_body_begin(&j, &b, stream);
    return finish_and_send(k, &j, &b,
                           &(kinesis_call){.op = "DeleteStream", .what = what, .body = &b}, NULL);
}

int wv_kinesis_describe_stream(wv_kinesis *k, const char *stream, wv_kinesis_stream_info *out)
{
    char what[KINESIS_WHAT_MAX];
    if (out)
        memset(out, 0, sizeof *out);
    int rc = kinesis_begin(k, "DescribeStreamSummary", stream, what, sizeof what);
    if (rc == 0 && !out)
        rc = wv_fail(-EINVAL, "%s: no place for the answer", what);
    if (rc < 0)
        return rc;
    wv_buf b = {0};
    wv_json j;
    kinesis_body_begin(&j, &b, stream);
    wv_json_doc *doc;
    rc = finish_and_send(
        k, &j, &b, &(kinesis_call){.op = "DescribeStreamSummary", .what = what, .body = &b}, &doc);
    if (rc == 0)
        rc = kinesis_read_summary(doc, out, what);
    wv_json_doc_free(doc);
    return rc;
}

int wv_kinesis_wait_active(wv_kinesis *k, const char *stream, int64_t timeout_ms)
{
    if (timeout_ms < 0)
        return wv_fail(-EINVAL, "Kinesis: a negative timeout_ms");
    int64_t end = wv_after_ms(timeout_ms ? timeout_ms : 5 * 60 * 1000);
    int64_t pause_ms = 100;
    for (;;) {
        wv_kinesis_stream_info info;
        int rc = wv_kinesis_describe_stream(k, stream, &info);
        if (rc < 0 || info.status == WV_KINESIS_ACTIVE)
            return rc;
        if (wv_now() + pause_ms * 1000000 > end)
            return wv_fail(-ETIMEDOUT, "Kinesis: stream %s is still not ACTIVE (status %d)", stream,
                           (int)info.status);
        if ((rc = wv_sleep_ms(pause_ms)) < 0)
            return rc;
        pause_ms = pause_ms * 2 > 1000 ? 1000 : pause_ms * 2;
    }
}

int wv_kinesis_list_shards(wv_kinesis *k, const char *stream, int page_size,
                           wv_kinesis_shard_list *out)
{
    char what[KINESIS_WHAT_MAX];
    if (out)
        memset(out, 0, sizeof *out);
    int rc = kinesis_begin(k, "ListShards", stream, what, sizeof what);
    if (rc == 0 && (!out || page_size < 0 || page_size > KINESIS_MAX_PAGE))
        rc =
            wv_fail(-EINVAL, "%s: no list, or a page size outside 1 to %d", what, KINESIS_MAX_PAGE);
    if (rc < 0)
        return rc;
    const char *next = NULL;
    int pages = 0;
    do {
        if (++pages > KINESIS_MAX_PAGES) {
            rc = wv_fail(-EPROTO, "%s: more than %d pages of shards", what, KINESIS_MAX_PAGES);
            break;
        }
        wv_buf b = {0};
        wv_json j;
        /* a page after the first names its token, not the stream */
        kinesis_body_begin(&j, &b, next ? NULL : stream);
        if (next) {
            wv_json_key(&j, "NextToken");
            wv_json_string(&j, next);
        }
        wv_json_key(&j, "MaxResults");
        wv_json_int(&j, page_size ? page_size : 1000);
        wv_json_doc *doc;
        rc = finish_and_send(k, &j, &b,
                             &(kinesis_call){.op = "ListShards", .what = what, .body = &b}, &doc);
        if (rc == 0)
            rc = kinesis_read_shards(doc, out, &next, what);
    } while (rc == 0 && next);
    if (rc < 0)
        wv_kinesis_shard_list_free(out);
    return rc;
}
