/*
 * libFuzzer target for the Kinesis client's reply readers
 * (src/kinesis/reply.c): what the service sends back, read without I/O.
 * `make fuzz` runs it; its seeds and every crash input are kept in
 * fuzz/corpus/fuzz_kinesis_reply/.
 *
 * Input: one control byte, then the reply's bytes (an exact-size heap
 * copy, so ASan catches a read past its end). The control byte's low
 * three bits pick the reader: 0 a refusal (the next bits pick the HTTP
 * status), 1 PutRecord, 2 PutRecords (bits 3-7: records sent, 0 to 31),
 * 3 GetRecords, 4 ListShards, 5 DescribeStreamSummary, 6
 * GetShardIterator, 7 base64 alone. Every reader must return 0 or an
 * errno it is allowed to, and what it fills in must hold: strings
 * NUL-terminated within their room, every record's bytes readable,
 * PutRecords' results each stored (a shard and a sequence number) or
 * failed (an ErrorCode), retries only of failed records, decoded base64
 * exactly three quarters of its text less the padding.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "kinesis/kinesis_internal.h"

static const char *const what = "Kinesis Fuzz s";

static void check_str(const char *s, size_t room)
{
    CHECK(s && strnlen(s, room) < room);
}

static void refusal(const char *p, size_t n, unsigned bits)
{
    static const int statuses[] = {400, 403, 404, 413, 429, 500, 503, 302};
    bool retry;
    int rc = kinesis_refusal(statuses[bits & 7], p, n, bits & 8 ? "ThrottlingException:x" : NULL,
                             bits & 16 ? "req-1" : NULL, what, bits & 32, &retry);
    CHECK(rc == -ENOENT || rc == -EBUSY || rc == -EEXIST || rc == -EAGAIN || rc == -EIO ||
          rc == -ESTALE || rc == -EACCES || rc == -EINVAL || rc == -EMSGSIZE);
    CHECK(strncmp(wv_errmsg(), what, strlen(what)) == 0);
}

static void put_records(const wv_json_doc *doc, size_t nsent)
{
    size_t sent[32], again[32], nagain = 99;
    wv_kinesis_put_result results[32];
    memset(results, 0x5a, sizeof results);
    for (size_t i = 0; i < nsent; i++)
        sent[i] = nsent - 1 - i; /* any order */
    char first[80];
    int failed = kinesis_read_put_records(doc, sent, nsent, results, again, &nagain, first,
                                          sizeof first, what);
    if (failed < 0) {
        CHECK(failed == -EPROTO);
        for (size_t i = 0; i < nsent; i++)
            CHECK(results[i].err == 0x5a5a5a5a); /* untouched */
        return;
    }
    CHECK((size_t)failed <= nsent && nagain <= (size_t)failed);
    CHECK(failed == 0 || first[0]);
    check_str(first, sizeof first);
    int seen = 0;
    for (size_t i = 0; i < nsent; i++) {
        wv_kinesis_put_result *r = &results[i];
        check_str(r->shard_id, sizeof r->shard_id);
        check_str(r->sequence_number, sizeof r->sequence_number);
        check_str(r->error_code, sizeof r->error_code);
        if (r->err == 0) {
            CHECK(r->shard_id[0] && r->sequence_number[0] && !r->error_code[0]);
        } else {
            CHECK(r->err < 0 && r->error_code[0] && !r->shard_id[0]);
            seen++;
        }
    }
    CHECK(seen == failed);
    for (size_t i = 0; i < nagain; i++)
        CHECK(again[i] < nsent && results[again[i]].err < 0);
}

static void batch(wv_json_doc *doc)
{
    wv_kinesis_batch b;
    int rc = kinesis_read_batch(doc, &b, what); /* takes doc */
    if (rc < 0) {
        CHECK(rc == -EPROTO || rc == -ENOMEM);
        CHECK(b.n == 0 && !b.records && !b.mem_);
        return;
    }
    check_str(b.next_iterator, sizeof b.next_iterator);
    unsigned sum = 0;
    for (size_t i = 0; i < b.n; i++) {
        const wv_kinesis_record *r = &b.records[i];
        CHECK(r->data && r->partition_key && r->partition_key[0]);
        check_str(r->sequence_number, WV_KINESIS_SEQUENCE_SIZE);
        for (size_t j = 0; j < r->len; j++)
            sum += ((const unsigned char *)r->data)[j]; /* every byte readable */
    }
    CHECK(sum <= 255u * 2 * (1u << 20)); /* and no more of them than the reply held */
    wv_kinesis_batch_free(&b);
    CHECK(b.n == 0 && !b.mem_);
}

static void shards(wv_json_doc *doc)
{
    wv_kinesis_shard_list l = {0};
    const char *next;
    int rc = kinesis_read_shards(doc, &l, &next, what); /* takes doc */
    CHECK(rc == 0 || rc == -EPROTO || rc == -ENOMEM);
    if (rc == 0) {
        CHECK(!next || next[0]);
        for (size_t i = 0; i < l.n; i++) {
            const wv_kinesis_shard *s = &l.shards[i];
            CHECK(s->shard_id && s->starting_hash_key && s->ending_hash_key &&
                  s->starting_sequence_number);
            CHECK(s->shard_id[0] && s->starting_hash_key[0]);
        }
    }
    wv_kinesis_shard_list_free(&l);
}

static void base64(const char *p, size_t n)
{
    unsigned char *out = malloc(n ? n : 1);
    CHECK(out);
    long got = kinesis_base64_decode(p, n, out);
    if (got >= 0) {
        size_t pad = n && p[n - 1] == '=' ? (n > 1 && p[n - 2] == '=' ? 2 : 1) : 0;
        CHECK(n % 4 == 0 && (size_t)got == n / 4 * 3 - pad);
        /* encoding it again gives the same length, and the same text up
         * to the last character's unused bits */
        char *text = malloc(n + 1);
        CHECK(text);
        CHECK((size_t)EVP_EncodeBlock((unsigned char *)text, out, (int)got) == n);
        CHECK(n < 4 || memcmp(text, p, n - 4) == 0);
        free(text);
        /* and in place, the same bytes */
        char *copy = copy_exact(p, n);
        CHECK(kinesis_base64_decode(copy, n, (unsigned char *)copy) == got);
        CHECK(memcmp(copy, out, (size_t)got) == 0);
        free(copy);
    }
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned ctl = data[0];
    size_t n = size - 1;
    char *p = copy_exact(data + 1, n);
    unsigned kind = ctl & 7;
    if (kind == 0) {
        refusal(p, n, ctl >> 3);
    } else if (kind == 7) {
        base64(p, n);
    } else {
        wv_json_doc *doc = NULL;
        int rc = kinesis_parse(p, n, 1 << 20, what, &doc);
        CHECK(rc == 0 || rc == -EPROTO || rc == -EMSGSIZE || rc == -ENOMEM);
        CHECK((rc == 0) == (doc != NULL));
        if (rc == 0) {
            wv_kinesis_put_result r;
            wv_kinesis_stream_info info;
            char it[WV_KINESIS_ITERATOR_SIZE];
            switch (kind) {
            case 1:
                rc = kinesis_read_put(doc, &r, what);
                CHECK(rc == 0 || rc == -EPROTO);
                if (rc == 0)
                    CHECK(r.shard_id[0] && r.sequence_number[0] && r.err == 0);
                break;
            case 2:
                put_records(doc, ctl >> 3);
                break;
            case 3:
                batch(doc);
                doc = NULL;
                break;
            case 4:
                shards(doc);
                doc = NULL;
                break;
            case 5:
                rc = kinesis_read_summary(doc, &info, what);
                CHECK(rc == 0 || rc == -EPROTO);
                if (rc == 0)
                    CHECK(info.open_shards >= 0 && info.retention_hours >= 0 &&
                          info.consumers >= 0 &&
                          strnlen(info.arn, sizeof info.arn) < sizeof info.arn);
                break;
            case 6:
                rc = kinesis_read_iterator(doc, it, what);
                CHECK(rc == 0 || rc == -EPROTO);
                CHECK(rc < 0 || (it[0] && strnlen(it, sizeof it) < sizeof it));
                break;
            }
        }
        wv_json_doc_free(doc);
    }
    free(p);
    return 0;
}
