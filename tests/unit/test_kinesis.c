/*
 * The Kinesis client (include/weave/kinesis.h) against kinesis-local, a
 * real Kinesis-compatible server on loopback (npm kinesis-local, started
 * by scripts/kinesis_test_server.sh on free ports): streams created,
 * described, listed page by page and deleted; records put one by one and
 * by the thousand and read back byte for byte with their keys, shards,
 * sequence numbers and arrival times; every iterator position; the
 * iterator carried from batch to batch; the reader; the service's
 * refusals with their types; TLS; one client on every shard.
 *
 * What kinesis-local cannot be made to do goes through a fault proxy:
 * weave's own HTTP server in the same runtime, forwarding every request
 * to kinesis-local and changing some as the test asks, while it counts
 * what it saw. kinesis-local never throttles and never fails a record of
 * a PutRecords for a reason that may pass, so the proxy fails records of
 * chosen keys (ProvisionedThroughputExceededException, as Kinesis does
 * per record), forwarding only the others and merging the two into one
 * reply; it answers whole calls with a throttle or an internal failure;
 * it expires a reader's iterator. It also counts the records and bytes
 * of each PutRecords, which shows where the client split them
 * (kinesis-local accepts requests over the service's limits). The proxy
 * forwards requests as they came, signature included: kinesis-local does
 * not check signatures (test_kinesis_sign checks ours against botocore).
 *
 * An expired and an invalid iterator are kinesis-local's own refusals:
 * its iterators are AES-256-CBC under a key published in its source, so
 * the test remakes a real iterator dated six minutes ago, or with a
 * broken layout, and sends it.
 *
 * A server that never answers is a socket that accepts and says nothing.
 *
 * Needs node and the pinned npm packages (the script runs `npm ci` in
 * tests/integration/node when they are missing);
 * WEAVE_TEST_KINESIS_SKIP=1 skips the whole file where there is no node.
 */
#include "harness.h"
#include "peer_server.h"

#include <openssl/evp.h>

#include <weave/http.h>
#include <weave/httpc.h>
#include <weave/json.h>
#include <weave/kinesis.h>

#define MIB ((size_t)1 << 20)

static char dir[64];       /* the server's log and pid */
static char endpoint[128]; /* kinesis-local, plain HTTP */
static int tls_port;       /* kinesis-local, HTTPS (its own self-signed certificate) */
static char srv_dir[160];
static const char *source_dir;
static int streams_made;

/* ------------------------------------------------------------ helpers */

#define SCRIPT "kinesis_test_server.sh"

/* kinesis-local in sdir on two free ports; its endpoint into out, its
 * HTTPS port into *tls. */
static int server_start(const char *sdir, char *out, size_t cap, int *tls)
{
    int port2;
    int rc = peer_server_start(source_dir, SCRIPT, sdir, NULL, &port2, out, cap);
    if (rc == 0 && tls)
        *tls = port2;
    return rc;
}

static wv_kinesis *client_for(const char *ep, const wv_kinesis_opts *extra)
{
    wv_kinesis_opts o = extra ? *extra : (wv_kinesis_opts){0};
    if (!o.endpoint)
        o.endpoint = ep;
    o.access_key = "weave";
    o.secret_key = "weave-secret";
    o.region = "us-east-1";
    if (!o.retry_base_ms)
        o.retry_base_ms = 5;
    if (!o.retry_max_ms)
        o.retry_max_ms = 40;
    wv_kinesis *k = NULL;
    if (wv_kinesis_new(&o, &k) < 0)
        fprintf(stderr, "wv_kinesis_new: %s\n", wv_errmsg());
    return k;
}

static wv_kinesis *client(const wv_kinesis_opts *extra)
{
    return client_for(endpoint, extra);
}

/* A fresh stream of `shards` shards, ACTIVE, its name into name. */
static int new_stream(wv_kinesis *k, int shards, char name[64])
{
    snprintf(name, 64, "weave-test-%d-%d", (int)getpid(), ++streams_made);
    REQUIRE_EQ(wv_kinesis_create_stream(k, name, shards), 0);
    REQUIRE_EQ(wv_kinesis_wait_active(k, name, 20000), 0);
    return 0;
}

static unsigned char pattern(size_t i, size_t seed)
{
    return (unsigned char)((i * 131u + seed * 7u + (i >> 11)) & 0xff);
}

static void *pattern_block(size_t n, size_t seed)
{
    unsigned char *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = pattern(i, seed);
    return p;
}

/* ------------------------------------------------------------ reading everything back */

typedef struct seen {
    char key[1100];
    unsigned char *data;
    size_t len;
    char seq[WV_KINESIS_SEQUENCE_SIZE];
    char shard[WV_KINESIS_SHARD_ID_SIZE];
    int64_t arrival_ms;
} seen;

typedef struct seen_all {
    seen *r;
    size_t n, cap;
} seen_all;

static void seen_free(seen_all *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->r[i].data);
    free(s->r);
    memset(s, 0, sizeof *s);
}

/* Every record of every shard of stream, read from TRIM_HORIZON with
 * GetRecords until a read comes back empty, into *s (in shard order,
 * each shard in sequence order). 0 or -1. */
static int read_all(wv_kinesis *k, const char *stream, seen_all *s)
{
    wv_kinesis_shard_list l = {0};
    REQUIRE_EQ(wv_kinesis_list_shards(k, stream, 0, &l), 0);
    for (size_t i = 0; i < l.n; i++) {
        wv_kinesis_batch b = {0};
        if (!CHECK_EQ(wv_kinesis_get_shard_iterator(k, stream, l.shards[i].shard_id, NULL,
                                                    b.next_iterator),
                      0))
            break;
        do {
            if (!CHECK_EQ(wv_kinesis_get_records(k, b.next_iterator, 0, &b), 0))
                break;
            for (size_t j = 0; j < b.n; j++) {
                if (s->n == s->cap) {
                    s->cap = s->cap ? 2 * s->cap : 256;
                    s->r = realloc(s->r, s->cap * sizeof *s->r);
                }
                seen *x = &s->r[s->n++];
                const wv_kinesis_record *rec = &b.records[j];
                snprintf(x->key, sizeof x->key, "%s", rec->partition_key);
                x->data = malloc(rec->len + 1); /* a NUL after, for sscanf */
                memcpy(x->data, rec->data, rec->len);
                x->data[rec->len] = '\0';
                x->len = rec->len;
                snprintf(x->seq, sizeof x->seq, "%s", rec->sequence_number);
                snprintf(x->shard, sizeof x->shard, "%s", l.shards[i].shard_id);
                x->arrival_ms = rec->arrival_ms;
            }
        } while (b.n > 0 && b.next_iterator[0]);
        wv_kinesis_batch_free(&b);
    }
    wv_kinesis_shard_list_free(&l);
    return 0;
}

static const seen *find_seq(const seen_all *s, const char *seq)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->r[i].seq, seq) == 0)
            return &s->r[i];
    return NULL;
}

/* ------------------------------------------------------------ the fault proxy */

enum { KEY_SLOTS = 4096 };

typedef struct proxy {
    peer_proxy base;
    /* whole calls: answer fail_op with fail_status and fail_type fail_times
     * times (-1: always) */
    const char *fail_op;
    const char *fail_type;
    int fail_status;
    int fail_times;
    int expire_get_records_at; /* the Nth GetRecords answered ExpiredIteratorException */
    /* records: "flaky-N" fails its first flaky_failures tries, "hot-N" always */
    int flaky_failures;
    /* what it saw */
    int requests, faults, put_records_calls, get_records_calls, iterator_calls;
    int batch_records[256];
    size_t batch_bytes[256];
    int nbatches;
    int flaky_tries[KEY_SLOTS], hot_tries[KEY_SLOTS], ok_tries[KEY_SLOTS];
} proxy;

static proxy *px;

static int reply_json(wv_res *res, int status, const char *json)
{
    return wv_res_send(res, status, "application/x-amz-json-1.1", json, strlen(json));
}

/* Forward body to kinesis-local with req's headers; the reply into *up. */
static int upstream(wv_req *req, const void *body, size_t n, wv_httpc_response *up)
{
    wv_httpc_header h[64];
    size_t nh = peer_forward_headers(req, h, 64);
    char url[160];
    snprintf(url, sizeof url, "%s/", endpoint);
    return wv_httpc_request(&(wv_httpc_req){.method = "POST",
                                            .url = url,
                                            .headers = h,
                                            .nheaders = nh,
                                            .body = n ? body : "",
                                            .body_len = n,
                                            .max_response = 64 << 20,
                                            .max_redirects = -1,
                                            .version = WV_HTTPC_HTTP1},
                            up);
}

static int forward(wv_req *req, wv_res *res, wv_str body)
{
    wv_httpc_response up;
    if (upstream(req, body.p, body.n, &up) < 0)
        return wv_res_send(res, 502, "text/plain", wv_errmsg(), strlen(wv_errmsg()));
    int rc =
        wv_res_send(res, up.status, wv_httpc_header_get(&up, "Content-Type"), up.body.p, up.body.n);
    wv_httpc_response_free(&up);
    return rc;
}

/* Does the record with this key fail this time? Counts its tries. */
static bool record_fails(const char *key)
{
    int n = -1;
    if (sscanf(key, "flaky-%d", &n) == 1 && n >= 0 && n < KEY_SLOTS)
        return ++px->flaky_tries[n] <= px->flaky_failures;
    if (sscanf(key, "hot-%d", &n) == 1 && n >= 0 && n < KEY_SLOTS) {
        px->hot_tries[n]++;
        return true;
    }
    if (sscanf(key, "ok-%d", &n) == 1 && n >= 0 && n < KEY_SLOTS)
        px->ok_tries[n]++;
    return false;
}

static size_t b64_len(const char *s, size_t n)
{
    size_t pad = n && s[n - 1] == '=' ? (n > 1 && s[n - 2] == '=' ? 2 : 1) : 0;
    return n / 4 * 3 - pad;
}

/* PutRecords: count it, fail the records the test asks for, forward the
 * others, and answer both in one reply, in the request's order. */
static int put_records_through(wv_req *req, wv_res *res, wv_str body)
{
    wv_json_doc *doc;
    if (wv_json_parse_with(body.p, body.n, &(wv_json_parse_opts){.max_bytes = 64 << 20}, &doc) < 0)
        return reply_json(res, 400, "{\"__type\":\"SerializationException\"}");
    const wv_json_val *root = wv_json_doc_root(doc);
    const wv_json_val *recs = wv_json_get(root, "Records");
    const char *stream = "";
    wv_json_get_string(root, "StreamName", &stream, NULL);
    size_t n = (size_t)wv_json_array_len(recs), bytes = 0;
    bool *fails = calloc(n ? n : 1, sizeof *fails);
    wv_buf fwd = {0}, out = {0};
    wv_json j;
    wv_json_init(&j, &fwd);
    wv_json_object_begin(&j);
    wv_json_key(&j, "StreamName");
    wv_json_string(&j, stream);
    wv_json_key(&j, "Records");
    wv_json_array_begin(&j);
    size_t forwarded = 0;
    for (size_t i = 0; i < n; i++) {
        const wv_json_val *r = wv_json_array_at(recs, i);
        const char *key = "", *data = "", *hash = NULL;
        size_t key_len = 0, data_len = 0;
        wv_json_get_string(r, "PartitionKey", &key, &key_len);
        wv_json_get_string(r, "Data", &data, &data_len);
        wv_json_as_string(wv_json_get(r, "ExplicitHashKey"), &hash, NULL);
        bytes += b64_len(data, data_len) + key_len;
        if ((fails[i] = record_fails(key)))
            continue;
        forwarded++;
        wv_json_object_begin(&j);
        wv_json_key(&j, "Data");
        wv_json_string(&j, data);
        wv_json_key(&j, "PartitionKey");
        wv_json_string(&j, key);
        if (hash) {
            wv_json_key(&j, "ExplicitHashKey");
            wv_json_string(&j, hash);
        }
        wv_json_object_end(&j);
    }
    wv_json_array_end(&j);
    wv_json_object_end(&j);
    wv_json_finish(&j);
    if (px->nbatches < (int)ARRAY_LEN(px->batch_records)) {
        px->batch_records[px->nbatches] = (int)n;
        px->batch_bytes[px->nbatches++] = bytes;
    }
    wv_httpc_response up = {0};
    wv_json_doc *updoc = NULL;
    const wv_json_val *uprecs = NULL;
    if (forwarded) {
        if (upstream(req, fwd.p, fwd.n, &up) < 0 || up.status != 200 ||
            wv_json_parse_with(up.body.p, up.body.n, NULL, &updoc) < 0) {
            int rc = wv_res_send(res, up.status ? up.status : 502, "application/x-amz-json-1.1",
                                 up.body.p, up.body.n);
            wv_httpc_response_free(&up);
            wv_buf_free(&fwd);
            free(fails);
            wv_json_doc_free(doc);
            return rc;
        }
        uprecs = wv_json_get(wv_json_doc_root(updoc), "Records");
    }
    /* the merged reply */
    size_t failed = 0, next = 0;
    for (size_t i = 0; i < n; i++)
        failed += fails[i];
    wv_json_init(&j, &out);
    wv_json_object_begin(&j);
    wv_json_key(&j, "FailedRecordCount");
    wv_json_int(&j, (long long)failed);
    wv_json_key(&j, "Records");
    wv_json_array_begin(&j);
    for (size_t i = 0; i < n; i++) {
        wv_json_object_begin(&j);
        if (fails[i]) {
            wv_json_key(&j, "ErrorCode");
            wv_json_string(&j, "ProvisionedThroughputExceededException");
            wv_json_key(&j, "ErrorMessage");
            wv_json_string(&j, "Rate exceeded for shard shardId-000000000000 (the test's proxy)");
        } else {
            /* kinesis-local's own answer for the record, as it gave it */
            const wv_json_val *u = wv_json_array_at(uprecs, next++);
            static const char *const fields[] = {"ErrorCode", "ErrorMessage", "SequenceNumber",
                                                 "ShardId"};
            for (size_t f = 0; f < ARRAY_LEN(fields); f++) {
                const char *v;
                if (wv_json_as_string(wv_json_get(u, fields[f]), &v, NULL) == 0) {
                    wv_json_key(&j, fields[f]);
                    wv_json_string(&j, v);
                }
            }
        }
        wv_json_object_end(&j);
    }
    wv_json_array_end(&j);
    wv_json_object_end(&j);
    wv_json_finish(&j);
    int rc = wv_res_send(res, 200, "application/x-amz-json-1.1", out.p, out.n);
    wv_httpc_response_free(&up);
    wv_json_doc_free(updoc);
    wv_buf_free(&fwd);
    wv_buf_free(&out);
    free(fails);
    wv_json_doc_free(doc);
    return rc;
}

static int proxy_handler(wv_req *req, wv_res *res)
{
    px->requests++;
    wv_str target = wv_req_header(req, "X-Amz-Target");
    const char *dot = target.p ? memchr(target.p, '.', target.n) : NULL;
    char op[64] = "";
    if (dot)
        snprintf(op, sizeof op, "%.*s", (int)(target.n - (size_t)(dot + 1 - target.p)), dot + 1);
    wv_str body = {0};
    int rc = wv_req_body(req, &body);
    if (rc < 0)
        return rc;
    if (px->fail_op && strcmp(op, px->fail_op) == 0 && px->fail_times != 0) {
        if (px->fail_times > 0)
            px->fail_times--;
        px->faults++;
        char json[256];
        snprintf(json, sizeof json,
                 "{\"__type\":\"%s\",\"message\":\"Injected by the test's proxy\"}", px->fail_type);
        wv_res_header(res, "x-amzn-RequestId", "proxy-fault");
        return reply_json(res, px->fail_status, json);
    }
    if (strcmp(op, "GetRecords") == 0 && ++px->get_records_calls == px->expire_get_records_at)
        return reply_json(res, 400,
                          "{\"__type\":\"ExpiredIteratorException\",\"message\":\"Iterator "
                          "expired (the test's proxy)\"}");
    if (strcmp(op, "GetShardIterator") == 0)
        px->iterator_calls++;
    if (strcmp(op, "PutRecords") == 0) {
        px->put_records_calls++;
        return put_records_through(req, res, body);
    }
    return forward(req, res, body);
}

static int proxy_start(void)
{
    px = calloc(1, sizeof *px);
    REQUIRE(px != NULL);
    return peer_proxy_start(&px->base, proxy_handler);
}

static void proxy_stop(void)
{
    peer_proxy_stop(&px->base);
    free(px);
    px = NULL;
}

static wv_kinesis *proxied_client(const wv_kinesis_opts *extra)
{
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", px->base.port);
    return client_for(ep, extra);
}

/* ------------------------------------------------------------ running */

static void run(int (*body)(void))
{
    peer_run(body, NULL, NULL);
}

static void run_proxied(int (*body)(void))
{
    peer_run(body, proxy_start, proxy_stop);
}

/* ------------------------------------------------------------ streams */

static int streams_body(void)
{
    wv_kinesis *k = client(NULL);
    REQUIRE(k != NULL);
    char name[64];
    snprintf(name, sizeof name, "weave-test-%d-lifecycle", (int)getpid());
    CHECK_EQ(wv_kinesis_create_stream(k, name, 3), 0);
    wv_kinesis_stream_info info;
    CHECK_EQ(wv_kinesis_describe_stream(k, name, &info), 0);
    CHECK(info.status == WV_KINESIS_CREATING || info.status == WV_KINESIS_ACTIVE);
    CHECK_EQ(wv_kinesis_wait_active(k, name, 20000), 0);
    CHECK_EQ(wv_kinesis_describe_stream(k, name, &info), 0);
    CHECK_EQ(info.status, WV_KINESIS_ACTIVE);
    CHECK_EQ(info.open_shards, 3);
    CHECK_EQ(info.retention_hours, 24);
    CHECK(!info.on_demand);
    CHECK(strstr(info.arn, name) != NULL && strncmp(info.arn, "arn:aws:kinesis:", 16) == 0);
    int64_t now_ms = (int64_t)time(NULL) * 1000;
    CHECK_BETWEEN(info.created_ms, now_ms - 60000, now_ms + 5000);

    /* three shards, one a page: three ListShards requests, the second and
     * third naming the token */
    wv_httpc_stats before, after;
    wv_httpc_stats_get(&before);
    wv_kinesis_shard_list l;
    CHECK_EQ(wv_kinesis_list_shards(k, name, 1, &l), 0);
    wv_httpc_stats_get(&after);
    CHECK_EQ(after.requests - before.requests, 3);
    CHECK_EQ(l.n, 3);
    /* the hash key space split between them, without gap or overlap */
    CHECK_STR_EQ(l.shards[0].starting_hash_key, "0");
    CHECK_STR_EQ(l.shards[2].ending_hash_key, "340282366920938463463374607431768211455");
    for (size_t i = 0; i < l.n; i++) {
        char want[64];
        snprintf(want, sizeof want, "shardId-%012zu", i);
        CHECK_STR_EQ(l.shards[i].shard_id, want);
        CHECK(l.shards[i].parent_shard_id == NULL);
        CHECK(l.shards[i].ending_sequence_number == NULL); /* open */
        CHECK(l.shards[i].starting_sequence_number[0] != '\0');
    }
    wv_kinesis_shard_list_free(&l);
    wv_kinesis_shard_list_free(&l); /* twice: harmless */
    /* all on one page */
    CHECK_EQ(wv_kinesis_list_shards(k, name, 0, &l), 0);
    CHECK_EQ(l.n, 3);
    wv_kinesis_shard_list_free(&l);

    /* it exists: -EEXIST with the service's words */
    CHECK_EQ(wv_kinesis_create_stream(k, name, 1), -EEXIST);
    CHECK_MSG_HAS("ResourceInUseException");
    CHECK_EQ(wv_kinesis_delete_stream(k, name), 0);
    /* DELETING (kinesis-local says ACTIVE for a moment first), then gone */
    int rc = 0;
    for (int i = 0; i < 100 && (rc = wv_kinesis_describe_stream(k, name, &info)) == 0; i++) {
        CHECK(info.status == WV_KINESIS_DELETING || info.status == WV_KINESIS_ACTIVE);
        wv_sleep_ms(50);
    }
    CHECK_EQ(rc, -ENOENT);
    CHECK_EQ(wv_kinesis_wait_active(k, name, 1000), -ENOENT);
    CHECK_EQ(wv_kinesis_delete_stream(k, name), -ENOENT);

    /* on demand */
    char od[64];
    snprintf(od, sizeof od, "weave-test-%d-on-demand", (int)getpid());
    CHECK_EQ(wv_kinesis_create_stream(k, od, 0), 0);
    CHECK_EQ(wv_kinesis_wait_active(k, od, 20000), 0);
    CHECK_EQ(wv_kinesis_describe_stream(k, od, &info), 0);
    CHECK(info.on_demand);
    CHECK(info.open_shards >= 1);
    CHECK_EQ(wv_kinesis_delete_stream(k, od), 0);
    wv_kinesis_free(k);
    return 0;
}

static void test_kinesis_streams_are_created_described_listed_page_by_page_and_deleted(void **state)
{
    run(streams_body);
}

/* ------------------------------------------------------------ one record at a time */

static int put_one_body(void)
{
    wv_kinesis *k = client(NULL);
    REQUIRE(k != NULL);
    char stream[64];
    REQUIRE_EQ(new_stream(k, 2, stream), 0);
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    void *big = pattern_block(MIB - 16, 3); /* with its 16-byte key: the limit exactly */
    const char *key_big = "0123456789abcdef";
    struct {
        wv_kinesis_entry e;
        wv_kinesis_put_result r;
    } puts[] = {
        {.e = {.partition_key = "every byte", .data = all, .len = 256}},
        {.e = {.partition_key = "empty", .data = NULL, .len = 0}},
        {.e = {.partition_key = "caf\xC3\xA9 \xF0\x9F\x98\x80", .data = "unicode key", .len = 11}},
        /* the second shard starts at 2^127: this hash key sends it there */
        {.e = {.partition_key = "any",
               .data = "by hash",
               .len = 7,
               .explicit_hash_key = "170141183460469231731687303715884105728"}},
        {.e = {.partition_key = key_big, .data = big, .len = MIB - 16}},
    };
    int64_t before = (int64_t)time(NULL) * 1000;
    for (size_t i = 0; i < ARRAY_LEN(puts); i++) {
        if (!CHECK_EQ(wv_kinesis_put(k, stream, &puts[i].e, &puts[i].r), 0))
            fprintf(stderr, "  put %zu: %s\n", i, wv_errmsg());
        CHECK_EQ(puts[i].r.err, 0);
        CHECK(strncmp(puts[i].r.shard_id, "shardId-", 8) == 0);
        CHECK(strlen(puts[i].r.sequence_number) > 20);
    }
    int64_t after = (int64_t)time(NULL) * 1000 + 999;
    CHECK_STR_EQ(puts[3].r.shard_id, "shardId-000000000001");
    /* one byte more is refused before sending */
    wv_kinesis_entry over = {.partition_key = key_big, .data = big, .len = MIB - 15};
    CHECK_EQ(wv_kinesis_put(k, stream, &over, NULL), -EINVAL);

    seen_all s = {0};
    REQUIRE_EQ(read_all(k, stream, &s), 0);
    CHECK_EQ(s.n, ARRAY_LEN(puts));
    for (size_t i = 0; i < ARRAY_LEN(puts); i++) {
        const seen *x = find_seq(&s, puts[i].r.sequence_number);
        if (!CHECK(x != NULL))
            continue;
        CHECK_STR_EQ(x->key, puts[i].e.partition_key);
        CHECK_STR_EQ(x->shard, puts[i].r.shard_id);
        CHECK_EQ(x->len, puts[i].e.len);
        CHECK(x->len == puts[i].e.len &&
              (x->len == 0 || memcmp(x->data, puts[i].e.data, x->len) == 0));
        CHECK_BETWEEN(x->arrival_ms, before - 2000, after + 2000);
    }
    seen_free(&s);
    free(big);
    wv_kinesis_free(k);
    return 0;
}

static void test_kinesis_put_records_read_back_byte_for_byte_with_key_shard_and_time(void **state)
{
    run(put_one_body);
}

/* ------------------------------------------------------------ many records */

static int put_many_body(void)
{
    wv_kinesis *k = proxied_client(NULL);
    REQUIRE(k != NULL);
    char stream[64];
    REQUIRE_EQ(new_stream(k, 4, stream), 0);
    enum { N = 1234 };
    wv_kinesis_entry *e = calloc(N, sizeof *e);
    wv_kinesis_put_result *r = calloc(N, sizeof *r);
    char(*keys)[16] = calloc(N, 16);
    unsigned char(*data)[40] = calloc(N, 40);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], 16, "ok-%d", i % 97); /* several records per key */
        int len = snprintf((char *)data[i], 40, "record %d of %d", i, N);
        e[i] = (wv_kinesis_entry){.partition_key = keys[i], .data = data[i], .len = (size_t)len};
    }
    CHECK_EQ(wv_kinesis_put_records(k, stream, e, N, r), 0);
    /* 500 a request, in order */
    CHECK_EQ(px->put_records_calls, 3);
    CHECK_EQ(px->batch_records[0], 500);
    CHECK_EQ(px->batch_records[1], 500);
    CHECK_EQ(px->batch_records[2], 234);
    for (int i = 0; i < N; i++)
        CHECK_EQ(r[i].err, 0);

    seen_all s = {0};
    REQUIRE_EQ(read_all(k, stream, &s), 0);
    CHECK_EQ(s.n, N);
    int shards_used[4] = {0};
    for (int i = 0; i < N; i++) {
        const seen *x = find_seq(&s, r[i].sequence_number);
        if (!CHECK(x != NULL))
            continue;
        CHECK_STR_EQ(x->key, keys[i]);
        CHECK_STR_EQ(x->shard, r[i].shard_id);
        CHECK(x->len == e[i].len && memcmp(x->data, data[i], x->len) == 0);
        shards_used[x->shard[strlen(x->shard) - 1] - '0']++;
    }
    for (int i = 0; i < 4; i++)
        CHECK(shards_used[i] > 0); /* the keys spread over every shard */
    /* records of one key come back in the order they were put */
    for (size_t i = 1; i < s.n; i++)
        for (size_t j = 0; j < i; j++)
            if (strcmp(s.r[i].key, s.r[j].key) == 0 && strcmp(s.r[i].shard, s.r[j].shard) == 0) {
                int a, b;
                sscanf((char *)s.r[j].data, "record %d", &a);
                sscanf((char *)s.r[i].data, "record %d", &b);
                CHECK(a < b);
                break;
            }
    seen_free(&s);
    free(e);
    free(r);
    free(keys);
    free(data);
    wv_kinesis_free(k);
    return 0;
}

static void
test_kinesis_put_records_of_any_number_go_500_a_request_and_each_is_reported(void **state)
{
    run_proxied(put_many_body);
}

static int put_big_body(void)
{
    wv_kinesis *k = proxied_client(NULL);
    REQUIRE(k != NULL);
    char stream[64];
    REQUIRE_EQ(new_stream(k, 1, stream), 0);
    /* six records of 1 MiB, key included: five fit in 5 MiB */
    enum { N = 6 };
    wv_kinesis_entry e[N];
    wv_kinesis_put_result r[N];
    char keys[N][16];
    void *blocks[N];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], "ok-%05d", i); /* 8 bytes */
        blocks[i] = pattern_block(MIB - 8, (size_t)i);
        e[i] = (wv_kinesis_entry){.partition_key = keys[i], .data = blocks[i], .len = MIB - 8};
    }
    CHECK_EQ(wv_kinesis_put_records(k, stream, e, N, r), 0);
    CHECK_EQ(px->nbatches, 2);
    CHECK_EQ(px->batch_records[0], 5);
    CHECK_EQ(px->batch_records[1], 1);
    CHECK_EQ(px->batch_bytes[0], 5 * MIB);
    CHECK_EQ(px->batch_bytes[1], MIB);
    /* what was stored is what was sent */
    seen_all s = {0};
    REQUIRE_EQ(read_all(k, stream, &s), 0);
    CHECK_EQ(s.n, N);
    for (size_t i = 0; i < N && i < s.n; i++) {
        CHECK_EQ(s.r[i].len, MIB - 8);
        CHECK(s.r[i].len == MIB - 8 && memcmp(s.r[i].data, blocks[i], MIB - 8) == 0);
        CHECK_STR_EQ(s.r[i].seq, r[i].sequence_number);
    }
    seen_free(&s);
    /* a record one byte over 1 MiB is refused before anything is sent */
    px->nbatches = 0;
    e[0].len = MIB - 7;
    CHECK_EQ(wv_kinesis_put_records(k, stream, e, N, r), -EINVAL);
    CHECK_EQ(px->nbatches, 0);
    for (int i = 0; i < N; i++)
        free(blocks[i]);
    wv_kinesis_free(k);

    /* the same rule at a smaller scale (limits of the client's own): a
     * request takes records while their data and keys fit max_batch_bytes,
     * and at most max_batch_records of them */
    k = proxied_client(
        &(wv_kinesis_opts){.max_batch_bytes = 100, .max_record = 40, .max_batch_records = 4});
    static const size_t sizes[] = {38, 30, 30, 5, 4, 40, 40, 10, 10, 10, 10, 10, 9};
    enum { M = ARRAY_LEN(sizes) };
    wv_kinesis_entry small[M];
    for (size_t i = 0; i < M; i++) /* key "ok-N" (4 bytes) + data */
        small[i] = (wv_kinesis_entry){.partition_key = "ok-1",
                                      .data = "0123456789012345678901234567890123456789",
                                      .len = sizes[i] - 4};
    px->nbatches = 0;
    wv_kinesis_put_result rs[M];
    CHECK_EQ(wv_kinesis_put_records(k, stream, small, M, rs), 0);
    /* 38+30+30 (5 more would pass 100) | 5+4+40+40 (four) | 10 x 4 | 10+9 */
    static const int want_records[] = {3, 4, 4, 2};
    static const size_t want_bytes[] = {98, 89, 40, 19};
    CHECK_EQ(px->nbatches, 4);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(px->batch_records[i], want_records[i]);
        CHECK_EQ(px->batch_bytes[i], want_bytes[i]);
    }
    wv_kinesis_free(k);
    return 0;
}

static void test_kinesis_put_records_splits_at_5_mib_with_partition_keys_counted(void **state)
{
    run_proxied(put_big_body);
}

/* ------------------------------------------------------------ failed records */

static int flaky_body(void)
{
    wv_kinesis *k = proxied_client(NULL);
    REQUIRE(k != NULL);
    char stream[64];
    REQUIRE_EQ(new_stream(k, 2, stream), 0);
    /* every third record is throttled twice, then goes through */
    px->flaky_failures = 2;
    enum { N = 600 };
    wv_kinesis_entry *e = calloc(N, sizeof *e);
    wv_kinesis_put_result *r = calloc(N, sizeof *r);
    char(*keys)[16] = calloc(N, 16);
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], 16, i % 3 == 0 ? "flaky-%d" : "ok-%d", i);
        e[i] =
            (wv_kinesis_entry){.partition_key = keys[i], .data = keys[i], .len = strlen(keys[i])};
    }
    CHECK_EQ(wv_kinesis_put_records(k, stream, e, N, r), 0);
    for (int i = 0; i < N; i++) {
        CHECK_EQ(r[i].err, 0);
        CHECK_STR_EQ(r[i].error_code, "");
        if (i % 3 == 0)
            CHECK_EQ(px->flaky_tries[i], 3);
        else
            CHECK_EQ(px->ok_tries[i], 1); /* a stored record is not sent again */
    }
    /* 500, then twice its 167 failed ones; 100, then twice its 33 */
    CHECK_EQ(px->nbatches, 6);
    CHECK_EQ(px->batch_records[0], 500);
    CHECK_EQ(px->batch_records[1], 167);
    CHECK_EQ(px->batch_records[2], 167);
    CHECK_EQ(px->batch_records[3], 100);
    CHECK_EQ(px->batch_records[4], 33);
    CHECK_EQ(px->batch_records[5], 33);
    /* each stored once */
    seen_all s = {0};
    REQUIRE_EQ(read_all(k, stream, &s), 0);
    CHECK_EQ(s.n, N);
    for (int i = 0; i < N; i++) {
        const seen *x = find_seq(&s, r[i].sequence_number);
        CHECK(x != NULL && strcmp(x->key, keys[i]) == 0);
    }
    seen_free(&s);
    free(e);
    free(r);
    free(keys);
    wv_kinesis_free(k);
    return 0;
}

static void test_kinesis_failed_records_are_sent_again_alone_until_stored(void **state)
{
    run_proxied(flaky_body);
}

static int hot_body(void)
{
    wv_kinesis *k = proxied_client(&(wv_kinesis_opts){.max_attempts = 4});
    REQUIRE(k != NULL);
    char stream[64];
    REQUIRE_EQ(new_stream(k, 1, stream), 0);
    enum { N = 10 };
    wv_kinesis_entry e[N];
    wv_kinesis_put_result r[N];
    char keys[N][16];
    for (int i = 0; i < N; i++) {
        snprintf(keys[i], sizeof keys[i], i == 3 || i == 7 ? "hot-%d" : "ok-%d", i);
        e[i] = (wv_kinesis_entry){.partition_key = keys[i], .data = "x", .len = 1};
    }
    CHECK_EQ(wv_kinesis_put_records(k, stream, e, N, r), -EAGAIN);
    CHECK_MSG_HAS("2 of 10 records not stored (the first: record 3)");
    CHECK_MSG_HAS("ProvisionedThroughputExceededException");
    for (int i = 0; i < N; i++) {
        if (i == 3 || i == 7) {
            CHECK_EQ(r[i].err, -EAGAIN);
            CHECK_STR_EQ(r[i].error_code, "ProvisionedThroughputExceededException");
            CHECK_STR_EQ(r[i].sequence_number, "");
            CHECK_EQ(px->hot_tries[i], 4); /* max_attempts */
        } else {
            CHECK_EQ(r[i].err, 0);
            CHECK(r[i].sequence_number[0] != '\0');
            CHECK_EQ(px->ok_tries[i], 1);
        }
    }
    /* a record the service refuses for good (kinesis-local itself: data
     * over the stream's 1 MiB, which a client allowed 2 MiB sends) is not
     * sent again, and the others are stored */
    wv_kinesis *big = proxied_client(&(wv_kinesis_opts){.max_record = 2 * MIB});
    void *block = pattern_block(MIB + 100, 1);
    wv_kinesis_entry two[] = {{.partition_key = "ok-100", .data = "fine", .len = 4},
                              {.partition_key = "ok-101", .data = block, .len = MIB + 100}};
    px->nbatches = 0;
    CHECK_EQ(wv_kinesis_put_records(big, stream, two, 2, r), -EINVAL);
    CHECK_MSG_HAS("InvalidArgumentException");
    CHECK_EQ(r[0].err, 0);
    CHECK_EQ(r[1].err, -EINVAL);
    CHECK_STR_EQ(r[1].error_code, "InvalidArgumentException");
    CHECK_EQ(px->nbatches, 1);
    CHECK_EQ(px->ok_tries[101], 1);
    free(block);
    wv_kinesis_free(big);
    wv_kinesis_free(k);
    return 0;
}

static void
test_kinesis_records_that_keep_failing_end_with_their_error_and_the_rest_are_stored(void **state)
{
    run_proxied(hot_body);
}

/* ------------------------------------------------------------ whole calls refused */

static int throttled_body(void)
{
    wv_kinesis *k = proxied_client(&(wv_kinesis_opts){.max_attempts = 3});
    REQUIRE(k != NULL);
    char stream[64];
    REQUIRE_EQ(new_stream(k, 1, stream), 0);
    wv_kinesis_entry e = {.partition_key = "ok-1", .data = "payload", .len = 7};
    wv_kinesis_put_result r;
    static const struct {
        const char *op, *type;
        int status, times, want;
        const char *say;
    } cases[] = {
        /* throttled twice, then stored */
        {"PutRecord", "ProvisionedThroughputExceededException", 400, 2, 0, NULL},
        {"PutRecord", "ProvisionedThroughputExceededException", 400, -1, -EAGAIN,
         "ProvisionedThroughputExceededException: Injected by the test's proxy (HTTP 400, "
         "request id proxy-fault) (after 3 tries)"},
        {"PutRecord", "com.amazonaws.kinesis.v20131202#InternalFailure", 500, -1, -EIO,
         "InternalFailure"},
        {"PutRecord", "ServiceUnavailable", 503, 1, 0, NULL},
        /* not retried */
        {"PutRecord", "AccessDeniedException", 400, -1, -EACCES, "(HTTP 400, request id"},
        {"PutRecord", "UnrecognizedClientException", 400, -1, -EACCES, "UnrecognizedClient"},
        {"PutRecord", "KMSDisabledException", 400, -1, -EIO, "KMSDisabledException"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        px->fail_op = cases[i].op;
        px->fail_type = cases[i].type;
        px->fail_status = cases[i].status;
        px->fail_times = cases[i].times;
        px->faults = 0;
        int rc = wv_kinesis_put(k, stream, &e, &r);
        if (!CHECK_EQ(rc, cases[i].want))
            fprintf(stderr, "  case %zu: %s\n", i, wv_errmsg());
        if (cases[i].say)
            CHECK_MSG_HAS(cases[i].say);
        int retried = cases[i].want == 0 || cases[i].want == -EAGAIN || cases[i].want == -EIO;
        bool for_good = strcmp(cases[i].type, "KMSDisabledException") == 0;
        if (cases[i].times > 0)
            CHECK_EQ(px->faults, cases[i].times);
        else
            CHECK_EQ(px->faults, retried && !for_good ? 3 : 1);
    }
    /* a control call: LimitExceededException is retried too */
    px->fail_op = "DescribeStreamSummary";
    px->fail_type = "LimitExceededException";
    px->fail_times = 2;
    wv_kinesis_stream_info info;
    CHECK_EQ(wv_kinesis_describe_stream(k, stream, &info), 0);
    /* a PutRecords refused whole: every record gets the error */
    px->fail_op = "PutRecords";
    px->fail_type = "ResourceNotFoundException";
    px->fail_times = -1;
    wv_kinesis_entry many[3] = {e, e, e};
    wv_kinesis_put_result rs[3];
    CHECK_EQ(wv_kinesis_put_records(k, stream, many, 3, rs), -ENOENT);
    CHECK_MSG_HAS("3 of 3 records not stored");
    for (int i = 0; i < 3; i++)
        CHECK_EQ(rs[i].err, -ENOENT);
    px->fail_op = NULL;
    wv_kinesis_free(k);
    return 0;
}

static void
test_kinesis_throttles_and_failures_are_retried_with_backoff_others_are_not(void **state)
{
    run_proxied(throttled_body);
}

/* ------------------------------------------------------------ reading */

static int put_n(wv_kinesis *k, const char *stream, int from, int n,
                 char seqs[][WV_KINESIS_SEQUENCE_SIZE])
{
    wv_kinesis_entry *e = calloc((size_t)n, sizeof *e);
    wv_kinesis_put_result *r = calloc((size_t)n, sizeof *r);
    char(*bodies)[24] = calloc((size_t)n, 24);
    for (int i = 0; i < n; i++) {
        int len = snprintf(bodies[i], 24, "r%d", from + i);
        e[i] =
            (wv_kinesis_entry){.partition_key = "same key", .data = bodies[i], .len = (size_t)len};
    }
    int rc = wv_kinesis_put_records(k, stream, e, (size_t)n, r);
    for (int i = 0; seqs && i < n; i++)
        snprintf(seqs[from + i], WV_KINESIS_SEQUENCE_SIZE, "%s", r[i].sequence_number);
    free(e);
    free(r);
    free(bodies);
    return rc;
}

static bool batch_is(const wv_kinesis_batch *b, int from, int n)
{
    if (b->n != (size_t)n)
        return false;
    for (int i = 0; i < n; i++) {
        char want[24];
        int len = snprintf(want, sizeof want, "r%d", from + i);
        if (b->records[i].len != (size_t)len || memcmp(b->records[i].data, want, (size_t)len) != 0)
            return false;
    }
    return true;
}

static int iterator_body(void)
{
    wv_kinesis *k = client(NULL);
    REQUIRE(k != NULL);
    char stream[64];
    REQUIRE_EQ(new_stream(k, 1, stream), 0);
    const char *shard = "shardId-000000000000";
    char seqs[20][WV_KINESIS_SEQUENCE_SIZE];
    REQUIRE_EQ(put_n(k, stream, 0, 10, seqs), 0);

    /* three at a time, the iterator carried forward */
    wv_kinesis_batch b = {0};
    CHECK_EQ(wv_kinesis_get_shard_iterator(k, stream, shard, NULL, b.next_iterator), 0);
    static const int sizes[] = {3, 3, 3, 1, 0};
    int at = 0;
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
        CHECK_EQ(wv_kinesis_get_records(k, b.next_iterator, 3, &b), 0);
        CHECK(batch_is(&b, at, sizes[i]));
        CHECK(b.next_iterator[0] != '\0');
        CHECK_EQ(b.millis_behind_latest, 0);
        at += sizes[i];
    }
    /* what comes later is found with the same carried iterator */
    REQUIRE_EQ(put_n(k, stream, 10, 2, seqs), 0);
    CHECK_EQ(wv_kinesis_get_records(k, b.next_iterator, 0, &b), 0);
    CHECK(batch_is(&b, 10, 2));

    /* the positions */
    struct {
        wv_kinesis_position at;
        int from, n;
    } cases[] = {
        {{.from = WV_KINESIS_TRIM_HORIZON}, 0, 12},
        {{.from = WV_KINESIS_AT_SEQUENCE_NUMBER, .sequence_number = seqs[4]}, 4, 8},
        {{.from = WV_KINESIS_AFTER_SEQUENCE_NUMBER, .sequence_number = seqs[4]}, 5, 7},
        {{.from = WV_KINESIS_LATEST}, 12, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char it[WV_KINESIS_ITERATOR_SIZE];
        CHECK_EQ(wv_kinesis_get_shard_iterator(k, stream, shard, &cases[i].at, it), 0);
        CHECK_EQ(wv_kinesis_get_records(k, it, 0, &b), 0);
        if (!CHECK(batch_is(&b, cases[i].from, cases[i].n)))
            fprintf(stderr, "  position case %zu: %zu records\n", i, b.n);
    }
    /* LATEST sees only what comes after it */
    char latest[WV_KINESIS_ITERATOR_SIZE];
    CHECK_EQ(wv_kinesis_get_shard_iterator(
                 k, stream, shard, &(wv_kinesis_position){.from = WV_KINESIS_LATEST}, latest),
             0);
    REQUIRE_EQ(put_n(k, stream, 12, 3, seqs), 0);
    CHECK_EQ(wv_kinesis_get_records(k, latest, 0, &b), 0);
    CHECK(batch_is(&b, 12, 3));
    /* AT_TIMESTAMP: the first record that arrived at or after it */
    wv_sleep_ms(1100);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t t_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    wv_sleep_ms(50);
    REQUIRE_EQ(put_n(k, stream, 15, 2, seqs), 0);
    char it[WV_KINESIS_ITERATOR_SIZE];
    CHECK_EQ(wv_kinesis_get_shard_iterator(
                 k, stream, shard,
                 &(wv_kinesis_position){.from = WV_KINESIS_AT_TIMESTAMP, .timestamp_ms = t_ms}, it),
             0);
    CHECK_EQ(wv_kinesis_get_records(k, it, 0, &b), 0);
    if (!CHECK(batch_is(&b, 15, 2)))
        fprintf(stderr, "  AT_TIMESTAMP: %zu records\n", b.n);
    wv_kinesis_batch_free(&b);

    /* a shard or stream that is not there */
    CHECK_EQ(wv_kinesis_get_shard_iterator(k, stream, "shardId-000000000009", NULL, it), -ENOENT);
    CHECK_MSG_HAS("ResourceNotFoundException");
    CHECK_STR_EQ(it, "");
    wv_kinesis_free(k);
    return 0;
}

static void
test_kinesis_iterator_is_carried_forward_and_every_position_starts_where_it_says(void **state)
{
    run(iterator_body);
}

/* kinesis-local's iterators: 8 bytes (0 0 0 0 0 0 0 1), then AES-256-CBC
 * of "MILLIS/stream/shard/sequence/0...0" under the key and IV in its
 * source (kinesis.mock.models.ShardIterator). */
static const unsigned char mock_key[32] = {
    0x11, 0x33, 0xa5, 0xa8, 0x33, 0x66, 0x6b, 0x49, 0xab, 0xf2, 0x8c, 0x8b, 0xa3, 0x02, 0x93, 0x0f,
    0x0b, 0x2f, 0xb2, 0x40, 0xdc, 0xcd, 0x43, 0xcf, 0x4d, 0xfb, 0xc0, 0xca, 0x91, 0xf1, 0x77, 0x51};
static const unsigned char mock_iv[16] = {0x7b, 0xf1, 0x39, 0xdb, 0xab, 0xbe, 0xa2, 0xd9,
                                          0x99, 0x5d, 0x6f, 0xca, 0xe1, 0xdf, 0xf7, 0xda};

/* AES-256-CBC with kinesis-local's key one way or the other; the length. */
static int mock_cipher(const unsigned char *in, int n, unsigned char *out, int encrypt)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0;
    int ok = c && EVP_CipherInit_ex(c, EVP_aes_256_cbc(), NULL, mock_key, mock_iv, encrypt) == 1 &&
             EVP_CipherUpdate(c, out, &len, in, n) == 1 &&
             EVP_CipherFinal_ex(c, out + len, &fin) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? len + fin : -1;
}

/* Remake a real iterator with `plain` as its text ("" keeps it and
 * changes its time to at_ms). */
static int remake_iterator(const char *real, const char *plain, int64_t at_ms, char *out)
{
    unsigned char raw[600], text[600];
    size_t len_real = strlen(real);
    int n = EVP_DecodeBlock(raw, (const unsigned char *)real, (int)len_real);
    REQUIRE(n > 8);
    n -= (real[len_real - 1] == '=') + (real[len_real - 2] == '='); /* counted by DecodeBlock */
    int len = mock_cipher(raw + 8, n - 8, text, 0);
    REQUIRE(len > 14);
    text[len] = '\0';
    char fresh[700];
    if (*plain)
        snprintf(fresh, sizeof fresh, "%s", plain);
    else
        snprintf(fresh, sizeof fresh, "%014lld%s", (long long)at_ms, (char *)text + 14);
    len = mock_cipher((const unsigned char *)fresh, (int)strlen(fresh), raw + 8, 1);
    REQUIRE(len > 0);
    EVP_EncodeBlock((unsigned char *)out, raw, len + 8);
    return 0;
}

static int expired_body(void)
{
    wv_kinesis *k = client(NULL);
    REQUIRE(k != NULL);
    char stream[64];
    REQUIRE_EQ(new_stream(k, 1, stream), 0);
    REQUIRE_EQ(put_n(k, stream, 0, 3, NULL), 0);
    char real[WV_KINESIS_ITERATOR_SIZE], forged[WV_KINESIS_ITERATOR_SIZE];
    CHECK_EQ(wv_kinesis_get_shard_iterator(k, stream, "shardId-000000000000", NULL, real), 0);
    /* the real one, remade with its own time, still works: the scheme is right */
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t now_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    REQUIRE_EQ(remake_iterator(real, "", now_ms - 1000, forged), 0);
    wv_kinesis_batch b = {0};
    CHECK_EQ(wv_kinesis_get_records(k, forged, 0, &b), 0);
    CHECK(batch_is(&b, 0, 3));
    /* six minutes old: expired */
    REQUIRE_EQ(remake_iterator(real, "", now_ms - 6 * 60 * 1000, forged), 0);
    CHECK_EQ(wv_kinesis_get_records(k, forged, 0, &b), -ESTALE);
    CHECK_MSG_HAS("Kinesis GetRecords: ExpiredIteratorException: The shard iterator has expired");
    CHECK_EQ(b.n, 0);
    CHECK_STR_EQ(b.next_iterator, "");
    /* not an iterator's layout: refused, not retried */
    REQUIRE_EQ(remake_iterator(real, "x/y/z", 0, forged), 0);
    wv_httpc_stats before, after;
    wv_httpc_stats_get(&before);
    CHECK_EQ(wv_kinesis_get_records(k, forged, 0, &b), -EINVAL);
    wv_httpc_stats_get(&after);
    CHECK_EQ(after.requests - before.requests, 1);
    CHECK_MSG_HAS("InvalidArgumentException: Invalid shard iterator");
    wv_kinesis_batch_free(&b);
    wv_kinesis_free(k);
    return 0;
}

static void test_kinesis_expired_iterator_is_estale_and_an_invalid_one_einval(void **state)
{
    run(expired_body);
}

static int unknown_body(void)
{
    wv_kinesis *k = client(NULL);
    REQUIRE(k != NULL);
    const char *missing = "weave-test-no-such-stream";
    wv_kinesis_entry e = {.partition_key = "k", .data = "x", .len = 1};
    wv_kinesis_put_result r;
    CHECK_EQ(wv_kinesis_put(k, missing, &e, &r), -ENOENT);
    CHECK_EQ(r.err, -ENOENT);
    CHECK_MSG_HAS("Kinesis PutRecord weave-test-no-such-stream: ResourceNotFoundException:");
    CHECK_MSG_HAS("(HTTP 400, request id ");
    CHECK_EQ(wv_kinesis_put_records(k, missing, &e, 1, &r), -ENOENT);
    wv_kinesis_stream_info info;
    CHECK_EQ(wv_kinesis_describe_stream(k, missing, &info), -ENOENT);
    wv_kinesis_shard_list l;
    CHECK_EQ(wv_kinesis_list_shards(k, missing, 0, &l), -ENOENT);
    CHECK_EQ(l.n, 0);
    char it[WV_KINESIS_ITERATOR_SIZE];
    CHECK_EQ(wv_kinesis_get_shard_iterator(k, missing, "shardId-000000000000", NULL, it), -ENOENT);
    CHECK_EQ(wv_kinesis_delete_stream(k, missing), -ENOENT);
    wv_kinesis_free(k);
    return 0;
}

static void test_kinesis_unknown_stream_is_enoent_with_the_services_words(void **state)
{
    run(unknown_body);
}

/* ------------------------------------------------------------ the reader */

typedef struct counter {
    wv_kinesis *k;
    const char *stream;
    const char *shard;
    atomic_int *count;
    int rc;
    int64_t ended;
    char last[WV_KINESIS_SEQUENCE_SIZE];
    bool dup; /* a record seen twice */
} counter;

static int count_records(void *arg)
{
    counter *c = arg;
    wv_kinesis_reader *r;
    c->rc = wv_kinesis_reader_open(c->k, c->stream, c->shard,
                                   &(wv_kinesis_reader_opts){.poll_ms = 20, .limit = 100}, &r);
    if (c->rc < 0)
        return 0;
    wv_kinesis_batch b = {0};
    int got;
    char seen_bodies[4096] = "";
    while ((got = wv_kinesis_reader_next(r, &b)) > 0) {
        for (size_t i = 0; i < b.n; i++) {
            char tag[32];
            snprintf(tag, sizeof tag, "|%.*s|", (int)b.records[i].len,
                     (const char *)b.records[i].data);
            if (strstr(seen_bodies, tag))
                c->dup = true;
            else if (strlen(seen_bodies) + strlen(tag) < sizeof seen_bodies)
                strcat(seen_bodies, tag);
        }
        atomic_fetch_add(c->count, got);
    }
    c->rc = got;
    c->ended = wv_now();
    snprintf(c->last, sizeof c->last, "%s", wv_kinesis_reader_position(r));
    wv_kinesis_batch_free(&b);
    wv_kinesis_reader_free(r);
    return 0;
}

static int reader_body(void)
{
    wv_kinesis *k = proxied_client(NULL);
    REQUIRE(k != NULL);
    char stream[64];
    REQUIRE_EQ(new_stream(k, 2, stream), 0);
    /* a background fiber per shard counts what arrives, as the chapter's
     * service does */
    atomic_int count = 0;
    counter c[2] = {{.k = k, .stream = stream, .shard = "shardId-000000000000", .count = &count},
                    {.k = k, .stream = stream, .shard = "shardId-000000000001", .count = &count}};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 2; i++)
        REQUIRE_EQ(wv_group_spawn(g, count_records, &c[i], NULL), 0);
    wv_sleep_ms(100); /* they find nothing at first, and wait */
    CHECK_EQ(atomic_load(&count), 0);
    /* the third GetRecords comes back expired: that reader gets a fresh
     * iterator after what it handed out, and misses nothing */
    px->expire_get_records_at = px->get_records_calls + 3;
    int total = 0;
    for (int round = 0; round < 5; round++) {
        wv_kinesis_entry e[60];
        wv_kinesis_put_result r[60];
        char keys[60][16], bodies[60][16];
        for (int i = 0; i < 60; i++) {
            snprintf(keys[i], sizeof keys[i], "ok-%d", i);
            int len = snprintf(bodies[i], sizeof bodies[i], "b%d", total + i);
            e[i] =
                (wv_kinesis_entry){.partition_key = keys[i], .data = bodies[i], .len = (size_t)len};
        }
        CHECK_EQ(wv_kinesis_put_records(k, stream, e, 60, r), 0);
        total += 60;
        wv_sleep_ms(30);
    }
    CHECK(wait_for_atomic(&count, total, 10000));
    wv_sleep_ms(200); /* and no more than that */
    CHECK_EQ(atomic_load(&count), total);
    CHECK(px->iterator_calls >= 3); /* one a reader, and one more after the expiry */
    /* cancelled while waiting for more: they return at once */
    int64_t t0 = wv_now();
    wv_group_cancel(g);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(c[i].rc, -ECANCELED);
        CHECK_BETWEEN((c[i].ended - t0) / NS_PER_MS, 0, 500);
        CHECK(!c[i].dup);
        CHECK(c[i].last[0] != '\0');
    }
    wv_kinesis_free(k);
    return 0;
}

static void
test_kinesis_reader_fibers_count_every_record_and_survive_an_expired_iterator(void **state)
{
    run_proxied(reader_body);
}

/* ------------------------------------------------------------ deadlines, cancellation */

typedef struct silent {
    int fd;
    int conns[16];
    int n;
} silent;

/* Accept and say nothing, until cancelled. */
static int silent_server(void *arg)
{
    silent *s = arg;
    for (;;) {
        int c = wv_accept(s->fd, NULL, NULL);
        if (c < 0)
            return 0;
        if (s->n < 16)
            s->conns[s->n++] = c;
        else
            close(c);
    }
}

typedef struct blocked {
    wv_kinesis *k;
    int which;
    int rc;
    int64_t ended;
} blocked;

static int blocked_call(void *arg)
{
    blocked *b = arg;
    wv_kinesis_entry e = {.partition_key = "k", .data = "x", .len = 1};
    wv_kinesis_put_result r;
    wv_kinesis_batch batch = {0};
    wv_kinesis_reader *reader = NULL;
    switch (b->which) {
    case 0:
        b->rc = wv_kinesis_put(b->k, "s", &e, NULL);
        break;
    case 1:
        b->rc = wv_kinesis_put_records(b->k, "s", &e, 1, &r);
        break;
    case 2:
        b->rc = wv_kinesis_get_records(b->k, "AAAAAAAA", 0, &batch);
        break;
    default:
        wv_kinesis_reader_open(b->k, "s", "shardId-000000000000", NULL, &reader);
        b->rc = wv_kinesis_reader_next(reader, &batch);
        wv_kinesis_reader_free(reader);
    }
    wv_kinesis_batch_free(&batch);
    b->ended = wv_now();
    return 0;
}

static int silent_body(void)
{
    uint16_t port = 0;
    silent s = {.fd = listen_loopback(&port)};
    REQUIRE(s.fd >= 0);
    wv_group *server = wv_group_new();
    REQUIRE_EQ(wv_group_spawn(server, silent_server, &s, NULL), 0);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%u", port);
    wv_kinesis *k = client_for(ep, NULL);
    REQUIRE(k != NULL);

    /* the deadline: every call ends on time */
    for (int which = 0; which < 4; which++) {
        blocked b = {.k = k, .which = which};
        int64_t t0 = wv_now();
        int64_t old = wv_deadline_set(wv_after_ms(300));
        blocked_call(&b);
        wv_deadline_set(old);
        if (!CHECK_EQ(b.rc, -ETIMEDOUT))
            fprintf(stderr, "  call %d: %s\n", which, wv_errmsg());
        CHECK_BETWEEN(ms_since(t0), 290, 1000);
    }
    /* cancellation: fibers inside calls return at once */
    blocked b[4];
    wv_group *g = wv_group_new();
    for (int i = 0; i < 4; i++) {
        b[i] = (blocked){.k = k, .which = i, .rc = 1};
        CHECK_EQ(wv_group_spawn(g, blocked_call, &b[i], NULL), 0);
    }
    wv_sleep_ms(200);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(b[i].rc, 1); /* all still waiting */
    int64_t t0 = wv_now();
    wv_group_cancel(g);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ(b[i].rc, -ECANCELED);
        CHECK_BETWEEN((b[i].ended - t0) / NS_PER_MS, 0, 200);
    }
    wv_kinesis_free(k);
    wv_group_cancel(server);
    wv_group_join(server);
    wv_group_free(server);
    for (int i = 0; i < s.n; i++)
        close(s.conns[i]);
    close(s.fd);
    return 0;
}

static void
test_kinesis_calls_to_a_server_that_never_answers_end_at_the_deadline_or_on_cancel(void **state)
{
    run(silent_body);
}

/* ------------------------------------------------------------ shards, TLS, limits */

static wv_kinesis *shared;
static char shared_stream[64];

static int per_shard(void *arg)
{
    char key[32], body[64];
    snprintf(key, sizeof key, "shard-%d", wv_shard_id());
    for (int i = 0; i < 20; i++) {
        int n = snprintf(body, sizeof body, "shard %d, round %d", wv_shard_id(), i);
        wv_kinesis_entry e = {.partition_key = key, .data = body, .len = (size_t)n};
        REQUIRE_EQ(wv_kinesis_put(shared, shared_stream, &e, NULL), 0);
    }
    return 0;
}

static int shards_main(void *arg)
{
    shared = client(NULL);
    REQUIRE(shared != NULL);
    REQUIRE_EQ(new_stream(shared, 1, shared_stream), 0);
    CHECK_EQ(wv_shard_count(), 2);
    CHECK_EQ(wv_shard_each(per_shard, NULL), 0);
    seen_all s = {0};
    REQUIRE_EQ(read_all(shared, shared_stream, &s), 0);
    CHECK_EQ(s.n, 40);
    seen_free(&s);
    wv_kinesis_free(shared);
    return 0;
}

static void test_kinesis_one_client_serves_every_shard_at_once(void **state)
{
    assert_int_equal(run_in_rt(2, shards_main, NULL), 0);
    assert_checks_passed();
}

static int tls_body(void)
{
    char ep[64];
    snprintf(ep, sizeof ep, "https://127.0.0.1:%d", tls_port);
    /* kinesis-local's certificate is its own, self-signed: not trusted */
    wv_kinesis *k = client_for(ep, NULL);
    REQUIRE(k != NULL);
    wv_kinesis_stream_info info;
    CHECK_EQ(wv_kinesis_describe_stream(k, "weave-test-tls", &info), -EPROTO);
    CHECK_MSG_HAS("certificate");
    wv_kinesis_free(k);
    /* unless told not to check (tests only): then the same calls work */
    k = client_for(ep, &(wv_kinesis_opts){.insecure = true});
    REQUIRE(k != NULL);
    char stream[64];
    REQUIRE_EQ(new_stream(k, 1, stream), 0);
    wv_kinesis_put_result r;
    CHECK_EQ(wv_kinesis_put(k, stream,
                            &(wv_kinesis_entry){.partition_key = "t", .data = "over TLS", .len = 8},
                            &r),
             0);
    seen_all s = {0};
    REQUIRE_EQ(read_all(k, stream, &s), 0);
    CHECK(s.n == 1 && s.r[0].len == 8 && memcmp(s.r[0].data, "over TLS", 8) == 0);
    seen_free(&s);
    wv_kinesis_free(k);
    return 0;
}

static void test_kinesis_over_tls_the_servers_certificate_is_verified(void **state)
{
    run(tls_body);
}

static int limit_body(void)
{
    wv_kinesis *k = client(NULL);
    REQUIRE(k != NULL);
    char stream[64];
    REQUIRE_EQ(new_stream(k, 1, stream), 0);
    void *block = pattern_block(20000, 2);
    wv_kinesis_entry e = {.partition_key = "k", .data = block, .len = 20000};
    CHECK_EQ(wv_kinesis_put(k, stream, &e, NULL), 0);
    /* its reply, 20000 bytes in base64, passes a limit of 16 KiB */
    wv_kinesis *tight = client(&(wv_kinesis_opts){.max_response = 16 << 10});
    wv_kinesis_batch b = {0};
    CHECK_EQ(
        wv_kinesis_get_shard_iterator(tight, stream, "shardId-000000000000", NULL, b.next_iterator),
        0);
    CHECK_EQ(wv_kinesis_get_records(tight, b.next_iterator, 0, &b), -EMSGSIZE);
    CHECK_EQ(b.n, 0);
    wv_kinesis_free(tight);
    free(block);
    wv_kinesis_free(k);
    return 0;
}

static void test_kinesis_reply_over_max_response_is_emsgsize(void **state)
{
    run(limit_body);
}

/* ------------------------------------------------------------ the server killed */

static char doomed_endpoint[128], doomed_dir[160];

static int killed_body(void)
{
    wv_kinesis *k = client_for(doomed_endpoint, NULL);
    REQUIRE(k != NULL);
    char stream[64];
    REQUIRE_EQ(new_stream(k, 1, stream), 0);
    pid_t pid = peer_server_pid(doomed_dir);
    REQUIRE(pid > 0);
    REQUIRE_EQ(kill(pid, SIGSTOP), 0);
    blocked b[4];
    wv_group *g = wv_group_new();
    for (int i = 0; i < 4; i++) {
        b[i] = (blocked){.k = k, .which = i, .rc = 1};
        CHECK_EQ(wv_group_spawn(g, blocked_call, &b[i], NULL), 0);
    }
    wv_sleep_ms(300);
    for (int i = 0; i < 4; i++)
        CHECK_EQ(b[i].rc, 1);
    int64_t killed = wv_now();
    kill(pid, SIGKILL);
    kill(pid, SIGCONT);
    int64_t old = wv_deadline_set(wv_after_ms(10000));
    CHECK_EQ(wv_group_join(g), 0);
    wv_deadline_set(old);
    wv_group_free(g);
    for (int i = 0; i < 4; i++) {
        if (!CHECK(b[i].rc == -ECONNRESET || b[i].rc == -ECONNREFUSED))
            fprintf(stderr, "  call %d: %d %s\n", i, b[i].rc, wv_strerror(b[i].rc));
        CHECK_BETWEEN((b[i].ended - killed) / NS_PER_MS, 0, 3000);
    }
    wv_kinesis_free(k);
    return 0;
}

static int doomed_up(void **state)
{
    snprintf(doomed_dir, sizeof doomed_dir, "%s/doomed", dir);
    return server_start(doomed_dir, doomed_endpoint, sizeof doomed_endpoint, NULL);
}

static int doomed_down(void **state)
{
    peer_server_kill(source_dir, SCRIPT, doomed_dir);
    return 0;
}

static void test_kinesis_server_killed_mid_request_fails_every_fiber_without_a_hang(void **state)
{
    run(killed_body);
}

/* ------------------------------------------------------------ main */

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/weave-kinesis-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(srv_dir, sizeof srv_dir, "%s/server", dir);
    if (server_start(srv_dir, endpoint, sizeof endpoint, &tls_port) < 0) {
        fprintf(stderr, "test_kinesis: kinesis-local did not start (see %s/log)\n", srv_dir);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    peer_server_stop(source_dir, SCRIPT, srv_dir);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    harness_init();
    source_dir = getenv("WEAVE_SOURCE_DIR");
    if (!source_dir)
        source_dir = ".";
    int rc = peer_need_node("test_kinesis", "WEAVE_TEST_KINESIS_SKIP");
    if (rc >= 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(
            test_kinesis_streams_are_created_described_listed_page_by_page_and_deleted),
        cmocka_unit_test(test_kinesis_put_records_read_back_byte_for_byte_with_key_shard_and_time),
        cmocka_unit_test(
            test_kinesis_put_records_of_any_number_go_500_a_request_and_each_is_reported),
        cmocka_unit_test(test_kinesis_put_records_splits_at_5_mib_with_partition_keys_counted),
        cmocka_unit_test(test_kinesis_failed_records_are_sent_again_alone_until_stored),
        cmocka_unit_test(
            test_kinesis_records_that_keep_failing_end_with_their_error_and_the_rest_are_stored),
        cmocka_unit_test(
            test_kinesis_throttles_and_failures_are_retried_with_backoff_others_are_not),
        cmocka_unit_test(
            test_kinesis_iterator_is_carried_forward_and_every_position_starts_where_it_says),
        cmocka_unit_test(test_kinesis_expired_iterator_is_estale_and_an_invalid_one_einval),
        cmocka_unit_test(test_kinesis_unknown_stream_is_enoent_with_the_services_words),
        cmocka_unit_test(
            test_kinesis_reader_fibers_count_every_record_and_survive_an_expired_iterator),
        cmocka_unit_test(
            test_kinesis_calls_to_a_server_that_never_answers_end_at_the_deadline_or_on_cancel),
        cmocka_unit_test(test_kinesis_one_client_serves_every_shard_at_once),
        cmocka_unit_test(test_kinesis_over_tls_the_servers_certificate_is_verified),
        cmocka_unit_test(test_kinesis_reply_over_max_response_is_emsgsize),
        cmocka_unit_test_setup_teardown(
            test_kinesis_server_killed_mid_request_fails_every_fiber_without_a_hang, doomed_up,
            doomed_down),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
