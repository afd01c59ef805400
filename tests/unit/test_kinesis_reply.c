/*
 * The Kinesis client offline: the replies it reads (src/kinesis/reply.c)
 * fed to it as bytes, the checks it makes before sending
 * (src/kinesis/check.c), and its settings. The replies include what
 * kinesis-local never sends: PutRecords answers that fail some records
 * (throttled, internal failure, refused), namespaced error types,
 * records whose data came JSON-escaped, malformed answers. The retry of
 * failed records end to end (a fault proxy in front of kinesis-local) is
 * in test_kinesis.c.
 */
#include "harness.h"

#include <openssl/evp.h>

#include <weave/kinesis.h>

#include "kinesis/kinesis_internal.h"

#define WHAT "Kinesis Test s"

static wv_json_doc *doc_of(const char *json)
{
    wv_json_doc *doc = NULL;
    int rc = kinesis_parse(json, strlen(json), 1 << 20, WHAT, &doc);
    if (rc < 0)
        print_error("%s\n", wv_errmsg());
    assert_int_equal(rc, 0);
    return doc;
}

#define assert_msg_has(needle)                                                                     \
    do {                                                                                           \
        if (!strstr(wv_errmsg(), (needle)))                                                        \
            print_error("wv_errmsg: %s\nwanted: %s\n", wv_errmsg(), (needle));                     \
        assert_non_null(strstr(wv_errmsg(), (needle)));                                            \
    } while (0)

/* ------------------------------------------------------------ errors */

static void test_kinesis_error_types_map_to_errnos_and_say_whether_to_retry(void **state)
{
    static const struct {
        const char *type;
        int status;
        bool create;
        int err;
        bool retry;
    } cases[] = {
        {"ResourceNotFoundException", 400, false, -ENOENT, false},
        {"ResourceInUseException", 400, false, -EBUSY, false},
        {"ResourceInUseException", 400, true, -EEXIST, false},
        {"ProvisionedThroughputExceededException", 400, false, -EAGAIN, true},
        {"LimitExceededException", 400, false, -EAGAIN, true},
        {"ThrottlingException", 400, false, -EAGAIN, true},
        {"KMSThrottlingException", 400, false, -EAGAIN, true},
        {"InternalFailure", 500, false, -EIO, true},
        {"ServiceUnavailable", 503, false, -EAGAIN, true},
        {"ExpiredIteratorException", 400, false, -ESTALE, false},
        {"ExpiredNextTokenException", 400, false, -ESTALE, false},
        {"AccessDeniedException", 400, false, -EACCES, false},
        {"UnrecognizedClientException", 400, false, -EACCES, false},
        {"InvalidSignatureException", 400, false, -EACCES, false},
        {"MissingAuthenticationTokenException", 400, false, -EACCES, false},
        {"KMSAccessDeniedException", 400, false, -EACCES, false},
        {"InvalidArgumentException", 400, false, -EINVAL, false},
        {"ValidationException", 400, false, -EINVAL, false},
        {"SerializationException", 400, false, -EINVAL, false},
        {"KMSDisabledException", 400, false, -EIO, false},
        /* a namespace before '#', a header's URL after ':' */
        {"com.amazonaws.kinesis.v20131202#ResourceNotFoundException", 400, false, -ENOENT, false},
        {"ProvisionedThroughputExceededException:http://internal.amazon.com/coral/", 400, false,
         -EAGAIN, true},
        /* no type, or one not known: the status decides */
        {NULL, 403, false, -EACCES, false},
        {NULL, 413, false, -EMSGSIZE, false},
        {NULL, 429, false, -EAGAIN, true},
        {NULL, 500, false, -EIO, true},
        {NULL, 502, false, -EIO, true},
        {NULL, 503, false, -EAGAIN, true},
        {"SomethingNew", 400, false, -EIO, false},
        {NULL, 404, false, -EIO, false},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        bool retry = !cases[i].retry;
        int err = kinesis_errno_for(cases[i].type, cases[i].status, cases[i].create, &retry);
        if (err != cases[i].err || retry != cases[i].retry)
            print_error("case %zu (%s, %d): %d %d\n", i, cases[i].type ? cases[i].type : "-",
                        cases[i].status, err, retry);
        assert_int_equal(err, cases[i].err);
        assert_int_equal(retry, cases[i].retry);
    }
}

static void test_kinesis_refusal_says_the_call_the_type_the_message_the_status_and_id(void **state)
{
    static const char body[] = "{\"__type\":\"com.amazonaws.kinesis.v20131202#"
                               "ResourceNotFoundException\",\"message\":\"Stream s under account "
                               "123456789012 not found.\"}";
    bool retry;
    assert_int_equal(
        kinesis_refusal(400, body, sizeof body - 1, NULL, "req-9", WHAT, false, &retry), -ENOENT);
    assert_string_equal(wv_errmsg(), WHAT ": ResourceNotFoundException: Stream s under account "
                                          "123456789012 not found. (HTTP 400, request id req-9)");
    /* "Message" spelled so, and the type in the header only */
    static const char other[] = "{\"Message\":\"Rate exceeded\"}";
    assert_int_equal(kinesis_refusal(400, other, sizeof other - 1,
                                     "LimitExceededException:http://internal.amazon.com/", NULL,
                                     WHAT, false, &retry),
                     -EAGAIN);
    assert_true(retry);
    assert_string_equal(wv_errmsg(), WHAT ": LimitExceededException: Rate exceeded (HTTP 400)");
    /* a body that is not JSON (kinesis-local's 500s are empty) */
    assert_int_equal(kinesis_refusal(500, "<html>oops</html>", 17, NULL, NULL, WHAT, false, &retry),
                     -EIO);
    assert_true(retry);
    assert_string_equal(wv_errmsg(), WHAT ": HTTP error (HTTP 500)");
    assert_int_equal(kinesis_refusal(500, NULL, 0, NULL, NULL, WHAT, false, &retry), -EIO);
}

static void test_kinesis_replies_that_are_not_json_objects_are_eproto(void **state)
{
    static const char *const bad[] = {"", "not json", "[1,2]", "\"s\"", "{\"a\":1", "{} {}"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        wv_json_doc *doc = (wv_json_doc *)1;
        assert_int_equal(kinesis_parse(bad[i], strlen(bad[i]), 1 << 20, WHAT, &doc), -EPROTO);
        assert_null(doc);
        assert_msg_has(WHAT ": the reply");
    }
    wv_json_doc *doc;
    assert_int_equal(kinesis_parse("{\"a\":\"0123456789\"}", 18, 10, WHAT, &doc), -EMSGSIZE);
}

/* ------------------------------------------------------------ PutRecord(s) */

static void test_kinesis_put_reply_gives_the_shard_and_sequence_number(void **state)
{
    wv_json_doc *doc = doc_of("{\"EncryptionType\":\"NONE\",\"SequenceNumber\":\"4968092756\","
                              "\"ShardId\":\"shardId-000000000001\"}");
    wv_kinesis_put_result r;
    assert_int_equal(kinesis_read_put(doc, &r, WHAT), 0);
    assert_string_equal(r.shard_id, "shardId-000000000001");
    assert_string_equal(r.sequence_number, "4968092756");
    assert_int_equal(r.err, 0);
    wv_json_doc_free(doc);
    /* a sequence number longer than 129 digits does not fit: refused */
    char big[400];
    snprintf(big, sizeof big, "{\"SequenceNumber\":\"%0150d\",\"ShardId\":\"s\"}", 1);
    doc = doc_of(big);
    assert_int_equal(kinesis_read_put(doc, &r, WHAT), -EPROTO);
    wv_json_doc_free(doc);
    doc = doc_of("{\"ShardId\":\"s\"}");
    assert_int_equal(kinesis_read_put(doc, &r, WHAT), -EPROTO);
    assert_msg_has("no SequenceNumber");
    wv_json_doc_free(doc);
}

static void test_kinesis_put_records_reply_marks_each_record_and_picks_those_to_retry(void **state)
{
    /* five records sent, in this order, from a larger set */
    const size_t sent[] = {7, 3, 9, 4, 0};
    wv_json_doc *doc = doc_of(
        "{\"FailedRecordCount\":4,\"Records\":["
        "{\"SequenceNumber\":\"111\",\"ShardId\":\"shardId-000000000000\",\"ErrorCode\":null},"
        "{\"ErrorCode\":\"ProvisionedThroughputExceededException\",\"ErrorMessage\":\"Rate "
        "exceeded for shard shardId-000000000001 in stream s under account 111122223333.\"},"
        "{\"ErrorCode\":\"InternalFailure\",\"ErrorMessage\":\"Internal service failure.\"},"
        "{\"ErrorCode\":\"InvalidArgumentException\",\"ErrorMessage\":\"bad key\"},"
        "{\"ErrorCode\":\"KMSThrottlingException\"}]}");
    wv_kinesis_put_result results[10];
    memset(results, 0, sizeof results);
    strcpy(results[3].shard_id, "stale"); /* from an earlier round */
    size_t again[5], nagain = 99;
    char first[200];
    assert_int_equal(
        kinesis_read_put_records(doc, sent, 5, results, again, &nagain, first, sizeof first, WHAT),
        4);
    assert_int_equal(results[7].err, 0);
    assert_string_equal(results[7].shard_id, "shardId-000000000000");
    assert_string_equal(results[7].sequence_number, "111");
    assert_int_equal(results[3].err, -EAGAIN);
    assert_string_equal(results[3].error_code, "ProvisionedThroughputExceededException");
    assert_string_equal(results[3].shard_id, "");
    assert_int_equal(results[9].err, -EIO);
    assert_string_equal(results[9].error_code, "InternalFailure");
    assert_int_equal(results[4].err, -EINVAL);
    assert_string_equal(results[4].error_code, "InvalidArgumentException");
    assert_int_equal(results[0].err, -EAGAIN);
    /* throttled and internal failures go again, the refused one does not */
    assert_int_equal(nagain, 3);
    assert_int_equal(again[0], 3);
    assert_int_equal(again[1], 9);
    assert_int_equal(again[2], 0);
    assert_string_equal(first, "ProvisionedThroughputExceededException: Rate exceeded for shard "
                               "shardId-000000000001 in stream s under account 111122223333.");
    wv_json_doc_free(doc);
}

static void
test_kinesis_put_records_reply_that_does_not_match_the_request_touches_nothing(void **state)
{
    static const char *const bad[] = {
        "{\"Records\":[{\"SequenceNumber\":\"1\",\"ShardId\":\"a\"}]}", /* one for two */
        "{\"FailedRecordCount\":0}",                                    /* none at all */
        "{\"Records\":[{\"SequenceNumber\":\"1\",\"ShardId\":\"a\"},{\"ShardId\":\"b\"}]}",
        "{\"Records\":[{\"SequenceNumber\":\"1\",\"ShardId\":\"a\"},7]}",
    };
    const size_t sent[] = {0, 1};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        wv_json_doc *doc = doc_of(bad[i]);
        wv_kinesis_put_result results[2];
        memset(results, 0x5a, sizeof results);
        size_t again[2], nagain;
        char first[64];
        assert_int_equal(kinesis_read_put_records(doc, sent, 2, results, again, &nagain, first,
                                                  sizeof first, WHAT),
                         -EPROTO);
        assert_int_equal(results[0].err, 0x5a5a5a5a);
        assert_int_equal(results[1].err, 0x5a5a5a5a);
        wv_json_doc_free(doc);
    }
}

/* ------------------------------------------------------------ GetRecords */

static void test_kinesis_batch_decodes_every_record_and_keeps_the_next_iterator(void **state)
{
    /* every byte value once, base64; "\/" as some JSON writers escape '/' */
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    char b64[400];
    EVP_EncodeBlock((unsigned char *)b64, all, 256);
    wv_buf json = {0};
    wv_buf_printf(
        &json,
        "{\"MillisBehindLatest\":1500,\"NextShardIterator\":\"AAAA\\/next==\","
        "\"ChildShards\":null,\"Records\":["
        "{\"ApproximateArrivalTimestamp\":1796661534.713,\"Data\":\"%s\","
        "\"EncryptionType\":\"NONE\",\"PartitionKey\":\"caf\\u00e9\","
        "\"SequenceNumber\":\"49680927564595394167001774301866983199537274433285652482\"},"
        "{\"Data\":\"\",\"PartitionKey\":\"e\",\"SequenceNumber\":\"2\"},"
        "{\"Data\":\"AP8Q\\/w==\",\"PartitionKey\":\"s\",\"SequenceNumber\":\"3\","
        "\"ApproximateArrivalTimestamp\":1796661535}]}",
        b64);
    wv_json_doc *doc;
    assert_int_equal(kinesis_parse(json.p, json.n, 1 << 20, WHAT, &doc), 0);
    wv_buf_free(&json);
    wv_kinesis_batch b;
    assert_int_equal(kinesis_read_batch(doc, &b, WHAT), 0);
    assert_int_equal(b.n, 3);
    assert_string_equal(b.next_iterator, "AAAA/next==");
    assert_int_equal(b.millis_behind_latest, 1500);
    assert_int_equal(b.records[0].len, 256);
    assert_memory_equal(b.records[0].data, all, 256);
    assert_string_equal(b.records[0].partition_key, "caf\xC3\xA9");
    assert_string_equal(b.records[0].sequence_number,
                        "49680927564595394167001774301866983199537274433285652482");
    assert_int_equal(b.records[0].arrival_ms, INT64_C(1796661534713));
    assert_int_equal(b.records[1].len, 0);
    assert_non_null(b.records[1].data);
    assert_int_equal(b.records[1].arrival_ms, 0);
    assert_int_equal(b.records[2].len, 4);
    assert_memory_equal(b.records[2].data, "\x00\xff\x10\xff", 4);
    assert_int_equal(b.records[2].arrival_ms, INT64_C(1796661535000));
    wv_kinesis_batch_free(&b);
    assert_null(b.records);
    wv_kinesis_batch_free(&b); /* twice: harmless */
}

static void test_kinesis_batch_of_a_closed_shard_has_no_next_iterator(void **state)
{
    wv_kinesis_batch b;
    assert_int_equal(
        kinesis_read_batch(doc_of("{\"NextShardIterator\":null,\"Records\":[]}"), &b, WHAT), 0);
    assert_int_equal(b.n, 0);
    assert_string_equal(b.next_iterator, "");
    assert_int_equal(b.millis_behind_latest, -1); /* not said */
    wv_kinesis_batch_free(&b);
}

static void test_kinesis_batch_with_a_bad_record_is_eproto_and_empty(void **state)
{
    static const char *const bad[] = {
        "{\"Records\":[{\"Data\":\"aGVsbG8\",\"PartitionKey\":\"k\",\"SequenceNumber\":\"1\"}]}",
        "{\"Records\":[{\"Data\":\"aGVs bG8=\",\"PartitionKey\":\"k\",\"SequenceNumber\":\"1\"}]}",
        "{\"Records\":[{\"Data\":\"aG=sbG8=\",\"PartitionKey\":\"k\",\"SequenceNumber\":\"1\"}]}",
        "{\"Records\":[{\"Data\":7,\"PartitionKey\":\"k\",\"SequenceNumber\":\"1\"}]}",
        "{\"Records\":[{\"Data\":\"\",\"SequenceNumber\":\"1\"}]}",
        "{\"Records\":[{\"Data\":\"\",\"PartitionKey\":\"k\"}]}",
        ("{\"Records\":[{\"Data\":\"\",\"PartitionKey\":\"k\",\"SequenceNumber\":\"1\","
         "\"ApproximateArrivalTimestamp\":\"yesterday\"}]}"),
        "{\"Records\":{}}",
        "{\"NextShardIterator\":5,\"Records\":[]}",
        "{\"MillisBehindLatest\":1.5,\"Records\":[]}",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        wv_kinesis_batch b;
        memset(&b, 0x5a, sizeof b);
        if (kinesis_read_batch(doc_of(bad[i]), &b, WHAT) != -EPROTO)
            print_error("case %zu was not refused\n", i);
        assert_int_equal(b.n, 0);
        assert_null(b.records);
        assert_null(b.mem_);
        assert_string_equal(b.next_iterator, "");
    }
}

static void test_kinesis_base64_decodes_rfc4648s_vectors_and_refuses_the_rest(void **state)
{
    static const struct {
        const char *in, *out;
    } good[] = {{"", ""},
                {"Zg==", "f"},
                {"Zm8=", "fo"},
                {"Zm9v", "foo"},
                {"Zm9vYg==", "foob"},
                {"Zm9vYmE=", "fooba"},
                {"Zm9vYmFy", "foobar"}};
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        char buf[16];
        snprintf(buf, sizeof buf, "%s", good[i].in);
        long n = kinesis_base64_decode(buf, strlen(buf), (unsigned char *)buf); /* in place */
        assert_int_equal(n, strlen(good[i].out));
        assert_memory_equal(buf, good[i].out, (size_t)n);
    }
    static const char *const bad[] = {"Zg=",  "Zg",   "Z===",     "=Zg=",     "Zm9v\n",
                                      "Zm-v", "Zm_v", "Zg==Zg==", "Zm9v Zm9v"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        unsigned char out[16];
        assert_int_equal(kinesis_base64_decode(bad[i], strlen(bad[i]), out), -1);
    }
}

/* ------------------------------------------------------------ shards, streams */

static void test_kinesis_shard_pages_add_up_and_nulls_are_absent(void **state)
{
    wv_kinesis_shard_list l = {0};
    const char *next;
    assert_int_equal(
        kinesis_read_shards(
            doc_of("{\"NextToken\":\"s::shardId-000000000000\",\"Shards\":[{\"ShardId\":"
                   "\"shardId-000000000000\",\"ParentShardId\":null,\"AdjacentParentShardId\":null,"
                   "\"HashKeyRange\":{\"StartingHashKey\":\"0\",\"EndingHashKey\":\"17\"},"
                   "\"SequenceNumberRange\":{\"StartingSequenceNumber\":\"100\","
                   "\"EndingSequenceNumber\":null}}]}"),
            &l, &next, WHAT),
        0);
    assert_string_equal(next, "s::shardId-000000000000");
    assert_int_equal(
        kinesis_read_shards(
            doc_of("{\"Shards\":[{\"ShardId\":\"shardId-000000000002\",\"ParentShardId\":"
                   "\"shardId-000000000000\",\"HashKeyRange\":{\"StartingHashKey\":\"18\","
                   "\"EndingHashKey\":\"99\"},\"SequenceNumberRange\":{\"StartingSequenceNumber\":"
                   "\"200\",\"EndingSequenceNumber\":\"300\"}}]}"),
            &l, &next, WHAT),
        0);
    assert_null(next);
    assert_int_equal(l.n, 2);
    assert_string_equal(l.shards[0].shard_id, "shardId-000000000000");
    assert_null(l.shards[0].parent_shard_id);
    assert_null(l.shards[0].ending_sequence_number);
    assert_string_equal(l.shards[0].ending_hash_key, "17");
    assert_string_equal(l.shards[1].parent_shard_id, "shardId-000000000000");
    assert_string_equal(l.shards[1].ending_sequence_number, "300");
    assert_string_equal(l.shards[1].starting_hash_key, "18");
    wv_kinesis_shard_list_free(&l);
    assert_int_equal(l.n, 0);
    /* a shard without its hash key range */
    assert_int_equal(
        kinesis_read_shards(doc_of("{\"Shards\":[{\"ShardId\":\"a\"}]}"), &l, &next, WHAT),
        -EPROTO);
    wv_kinesis_shard_list_free(&l);
}

static void test_kinesis_summary_reads_status_counts_mode_and_creation_time(void **state)
{
    wv_json_doc *doc = doc_of(
        "{\"StreamDescriptionSummary\":{\"ConsumerCount\":2,\"OpenShardCount\":4,"
        "\"RetentionPeriodHours\":48,\"StreamARN\":\"arn:aws:kinesis:eu-west-1:1:stream/s\","
        "\"StreamCreationTimestamp\":1796661533.584,\"StreamModeDetails\":{\"StreamMode\":"
        "\"ON_DEMAND\"},\"StreamName\":\"s\",\"StreamStatus\":\"UPDATING\",\"KeyId\":null}}");
    wv_kinesis_stream_info info;
    assert_int_equal(kinesis_read_summary(doc, &info, WHAT), 0);
    assert_int_equal(info.status, WV_KINESIS_UPDATING);
    assert_int_equal(info.open_shards, 4);
    assert_int_equal(info.retention_hours, 48);
    assert_int_equal(info.consumers, 2);
    assert_true(info.on_demand);
    assert_int_equal(info.created_ms, INT64_C(1796661533584));
    assert_string_equal(info.arn, "arn:aws:kinesis:eu-west-1:1:stream/s");
    wv_json_doc_free(doc);
    doc = doc_of("{\"StreamDescriptionSummary\":{\"StreamStatus\":\"RESHARDING\"}}");
    assert_int_equal(kinesis_read_summary(doc, &info, WHAT), 0);
    assert_int_equal(info.status, WV_KINESIS_STATUS_OTHER);
    wv_json_doc_free(doc);
    doc = doc_of("{\"StreamDescription\":{}}");
    assert_int_equal(kinesis_read_summary(doc, &info, WHAT), -EPROTO);
    wv_json_doc_free(doc);
}

/* ------------------------------------------------------------ checks */

static wv_kinesis *local_client(void)
{
    wv_kinesis *k = NULL;
    assert_int_equal(wv_kinesis_new(&(wv_kinesis_opts){.endpoint = "http://127.0.0.1:1",
                                                       .access_key = "a",
                                                       .secret_key = "b"},
                                    &k),
                     0);
    return k;
}

static void test_kinesis_names_and_keys_are_checked_by_the_services_rules(void **state)
{
    char name[KINESIS_MAX_NAME + 2];
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    assert_int_equal(kinesis_check_stream(name, WHAT), -EINVAL);
    name[KINESIS_MAX_NAME] = '\0';
    assert_int_equal(kinesis_check_stream(name, WHAT), 0);
    static const char *const bad_streams[] = {"", "a b", "a/b", "caf\xC3\xA9", "a:b"};
    for (size_t i = 0; i < ARRAY_LEN(bad_streams); i++)
        assert_int_equal(kinesis_check_stream(bad_streams[i], WHAT), -EINVAL);
    assert_int_equal(kinesis_check_stream(NULL, WHAT), -EINVAL);
    assert_int_equal(kinesis_check_stream("My_Stream.v2-x", WHAT), 0);
    assert_int_equal(kinesis_check_sequence("0", WHAT), 0);
    assert_int_equal(
        kinesis_check_sequence("49680927564595394167001774301866983199537274433", WHAT), 0);
    assert_int_equal(kinesis_check_sequence("012", WHAT), -EINVAL);
    assert_int_equal(kinesis_check_sequence("12a", WHAT), -EINVAL);
    assert_int_equal(kinesis_check_sequence("", WHAT), -EINVAL);

    wv_kinesis *k = local_client();
    /* partition keys: 1 to 256 characters of valid UTF-8, however many bytes */
    char key[4 * 257 + 1];
    key[0] = '\0';
    for (int i = 0; i < 256; i++)
        strcat(key, "\xF0\x9F\x98\x80"); /* U+1F600, four bytes */
    wv_kinesis_entry e = {.partition_key = key, .data = "x", .len = 1};
    assert_int_equal(kinesis_check_entry(k, &e, -1, WHAT), 0);
    strcat(key, "a");
    assert_int_equal(kinesis_check_entry(k, &e, 3, WHAT), -EINVAL);
    assert_msg_has(WHAT ": record 3: a partition key is 1 to 256 characters");
    static const char *const bad_keys[] = {
        "", "\xC3", "\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "a\xFF"};
    for (size_t i = 0; i < ARRAY_LEN(bad_keys); i++) {
        e.partition_key = bad_keys[i];
        if (kinesis_check_entry(k, &e, -1, WHAT) != -EINVAL)
            print_error("key %zu was taken\n", i);
        assert_int_equal(kinesis_check_entry(k, &e, -1, WHAT), -EINVAL);
    }
    e.partition_key = NULL;
    assert_int_equal(kinesis_check_entry(k, &e, -1, WHAT), -EINVAL);
    /* explicit hash keys: 0 to 2^128 - 1 */
    e.partition_key = "k";
    static const char *const good_hash[] = {"0", "7", "340282366920938463463374607431768211455",
                                            "99999999999999999999999999999999999999"};
    for (size_t i = 0; i < ARRAY_LEN(good_hash); i++) {
        e.explicit_hash_key = good_hash[i];
        assert_int_equal(kinesis_check_entry(k, &e, -1, WHAT), 0);
    }
    static const char *const bad_hash[] = {
        "340282366920938463463374607431768211456", "-1", "01", "", "1e3",
        "1000000000000000000000000000000000000000"};
    for (size_t i = 0; i < ARRAY_LEN(bad_hash); i++) {
        e.explicit_hash_key = bad_hash[i];
        assert_int_equal(kinesis_check_entry(k, &e, -1, WHAT), -EINVAL);
    }
    /* sizes: data and key together at most max_record; no data for len */
    e.explicit_hash_key = NULL;
    e.partition_key = "key";
    e.len = KINESIS_MIB - 3;
    assert_int_equal(kinesis_check_entry(k, &e, -1, WHAT), 0);
    e.len++;
    assert_int_equal(kinesis_check_entry(k, &e, -1, WHAT), -EINVAL);
    assert_msg_has("pass the record limit of 1048576");
    e.len = (size_t)-1; /* no wrap-around */
    assert_int_equal(kinesis_check_entry(k, &e, -1, WHAT), -EINVAL);
    e.data = NULL;
    e.len = 1;
    assert_int_equal(kinesis_check_entry(k, &e, -1, WHAT), -EINVAL);
    e.len = 0;
    assert_int_equal(kinesis_check_entry(k, &e, -1, WHAT), 0); /* an empty record is fine */
    wv_kinesis_free(k);
}

static void test_kinesis_bad_input_is_einval_before_anything_is_sent(void **state)
{
    /* outside a fiber: -EINVAL, not -EPERM, so nothing was tried */
    wv_kinesis *k = local_client();
    wv_kinesis_entry good = {.partition_key = "k", .data = "x", .len = 1};
    wv_kinesis_entry recs[3] = {good, good, {.partition_key = "", .data = "x", .len = 1}};
    wv_kinesis_put_result res[3];
    memset(res, 0, sizeof res);
    assert_int_equal(wv_kinesis_put_records(k, "s", recs, 3, res), -EINVAL);
    assert_msg_has("Kinesis PutRecords s: record 2: a partition key");
    for (int i = 0; i < 3; i++)
        assert_int_equal(res[i].err, -EINVAL);
    assert_int_equal(wv_kinesis_put_records(k, "s", recs, 0, res), -EINVAL);
    assert_int_equal(wv_kinesis_put_records(k, "bad name", recs, 2, res), -EINVAL);
    assert_int_equal(wv_kinesis_put(k, "s", &recs[2], NULL), -EINVAL);
    assert_int_equal(wv_kinesis_put(k, "", &good, NULL), -EINVAL);
    assert_int_equal(wv_kinesis_create_stream(k, "s!", 1), -EINVAL);
    assert_int_equal(wv_kinesis_create_stream(k, "s", -1), -EINVAL);
    assert_int_equal(wv_kinesis_delete_stream(k, NULL), -EINVAL);
    wv_kinesis_stream_info info;
    assert_int_equal(wv_kinesis_describe_stream(k, "a b", &info), -EINVAL);
    char it[WV_KINESIS_ITERATOR_SIZE];
    assert_int_equal(wv_kinesis_get_shard_iterator(k, "s", "shard 0", NULL, it), -EINVAL);
    assert_int_equal(wv_kinesis_get_shard_iterator(
                         k, "s", "shardId-000000000000",
                         &(wv_kinesis_position){.from = WV_KINESIS_AT_SEQUENCE_NUMBER}, it),
                     -EINVAL);
    assert_int_equal(wv_kinesis_get_shard_iterator(
                         k, "s", "shardId-000000000000",
                         &(wv_kinesis_position){.from = WV_KINESIS_AFTER_SEQUENCE_NUMBER,
                                                .sequence_number = "12x"},
                         it),
                     -EINVAL);
    assert_int_equal(
        wv_kinesis_get_shard_iterator(
            k, "s", "shardId-000000000000",
            &(wv_kinesis_position){.from = WV_KINESIS_AT_TIMESTAMP, .timestamp_ms = -1}, it),
        -EINVAL);
    assert_int_equal(wv_kinesis_get_shard_iterator(k, "s", "shardId-000000000000",
                                                   &(wv_kinesis_position){.from = 9}, it),
                     -EINVAL);
    wv_kinesis_batch b = {0};
    assert_int_equal(wv_kinesis_get_records(k, "", 0, &b), -EINVAL);
    assert_int_equal(wv_kinesis_get_records(k, "AAAA", 10001, &b), -EINVAL);
    char long_it[WV_KINESIS_ITERATOR_SIZE + 1];
    memset(long_it, 'A', sizeof long_it - 1);
    long_it[sizeof long_it - 1] = '\0';
    assert_int_equal(wv_kinesis_get_records(k, long_it, 0, &b), -EINVAL);
    wv_kinesis_shard_list l;
    assert_int_equal(wv_kinesis_list_shards(k, "s", 10001, &l), -EINVAL);
    wv_kinesis_reader *r;
    assert_int_equal(wv_kinesis_reader_open(k, "s", "", NULL, &r), -EINVAL);
    assert_int_equal(
        wv_kinesis_reader_open(k, "s", "shardId-1", &(wv_kinesis_reader_opts){.limit = -1}, &r),
        -EINVAL);
    wv_kinesis_free(k);
}

/* ------------------------------------------------------------ settings */

static void clear_env(void)
{
    static const char *const vars[] = {"AWS_ACCESS_KEY_ID",  "AWS_SECRET_ACCESS_KEY",
                                       "AWS_SESSION_TOKEN",  "AWS_REGION",
                                       "AWS_DEFAULT_REGION", "KINESIS_ENDPOINT"};
    for (size_t i = 0; i < ARRAY_LEN(vars); i++)
        unsetenv(vars[i]);
}

static void test_kinesis_new_reads_options_then_the_environment(void **state)
{
    clear_env();
    wv_kinesis *k = (wv_kinesis *)1;
    assert_int_equal(wv_kinesis_new(NULL, &k), -EINVAL);
    assert_null(k);
    assert_msg_has("Kinesis: no credentials: set AWS_ACCESS_KEY_ID");

    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    setenv("AWS_SESSION_TOKEN", "envtoken", 1);
    setenv("AWS_DEFAULT_REGION", "eu-central-1", 1);
    assert_int_equal(wv_kinesis_new(NULL, &k), 0);
    assert_string_equal(k->aws.access_key, "AKIDENV");
    assert_string_equal(k->aws.session_token, "envtoken");
    assert_string_equal(k->aws.region, "eu-central-1");
    assert_string_equal(k->url, "https://kinesis.eu-central-1.amazonaws.com/");
    assert_int_equal(k->max_attempts, 5);
    assert_int_equal(k->max_batch_records, 500);
    assert_int_equal(k->max_batch_bytes, 5 * KINESIS_MIB);
    assert_int_equal(k->max_record, KINESIS_MIB);
    wv_kinesis_free(k);

    setenv("AWS_REGION", "us-west-2", 1);
    setenv("KINESIS_ENDPOINT", "http://127.0.0.1:4567", 1);
    assert_int_equal(wv_kinesis_new(NULL, &k), 0);
    assert_string_equal(k->aws.region, "us-west-2");
    assert_string_equal(k->url, "http://127.0.0.1:4567/");
    assert_string_equal(k->aws.host, "127.0.0.1:4567");
    wv_kinesis_free(k);

    assert_int_equal(wv_kinesis_new(&(wv_kinesis_opts){.endpoint = "https://[::1]:8443",
                                                       .region = "local",
                                                       .access_key = "opt",
                                                       .secret_key = "optsecret",
                                                       .max_batch_records = 7},
                                    &k),
                     0);
    assert_string_equal(k->aws.access_key, "opt");
    assert_null(k->aws.session_token); /* the three come from one place */
    assert_string_equal(k->aws.host, "[::1]:8443");
    assert_int_equal(k->max_batch_records, 7);
    wv_kinesis_free(k);
    clear_env();

    static const struct {
        wv_kinesis_opts o;
        const char *why;
    } bad[] = {
        {{.access_key = "a"}, "no credentials"},
        {{.access_key = "a", .secret_key = "b", .endpoint = "ftp://x"}, "not http"},
        {{.access_key = "a", .secret_key = "b", .endpoint = "http://x/path"}, "path"},
        {{.access_key = "a", .secret_key = "b", .region = "us east"}, "region"},
        {{.access_key = "a", .secret_key = "b", .max_batch_records = 501}, "max_batch_records"},
        {{.access_key = "a", .secret_key = "b", .max_record = 6 << 20}, "max_record"},
        {{.access_key = "a", .secret_key = "b", .max_attempts = -1}, "negative"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        assert_int_equal(wv_kinesis_new(&bad[i].o, &k), -EINVAL);
        assert_msg_has(bad[i].why);
    }
    wv_kinesis_free(NULL);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinesis_error_types_map_to_errnos_and_say_whether_to_retry),
        cmocka_unit_test(test_kinesis_refusal_says_the_call_the_type_the_message_the_status_and_id),
        cmocka_unit_test(test_kinesis_replies_that_are_not_json_objects_are_eproto),
        cmocka_unit_test(test_kinesis_put_reply_gives_the_shard_and_sequence_number),
        cmocka_unit_test(test_kinesis_put_records_reply_marks_each_record_and_picks_those_to_retry),
        cmocka_unit_test(
            test_kinesis_put_records_reply_that_does_not_match_the_request_touches_nothing),
        cmocka_unit_test(test_kinesis_batch_decodes_every_record_and_keeps_the_next_iterator),
        cmocka_unit_test(test_kinesis_batch_of_a_closed_shard_has_no_next_iterator),
        cmocka_unit_test(test_kinesis_batch_with_a_bad_record_is_eproto_and_empty),
        cmocka_unit_test(test_kinesis_base64_decodes_rfc4648s_vectors_and_refuses_the_rest),
        cmocka_unit_test(test_kinesis_shard_pages_add_up_and_nulls_are_absent),
        cmocka_unit_test(test_kinesis_summary_reads_status_counts_mode_and_creation_time),
        cmocka_unit_test(test_kinesis_names_and_keys_are_checked_by_the_services_rules),
        cmocka_unit_test(test_kinesis_bad_input_is_einval_before_anything_is_sent),
        cmocka_unit_test(test_kinesis_new_reads_options_then_the_environment),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
