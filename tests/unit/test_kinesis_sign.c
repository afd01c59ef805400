/*
 * SigV4 outside S3 (src/aws/sigv4.c), offline: the worked example in
 * AWS's Signature Version 4 documentation (IAM's ListUsers), the path
 * rule of every service but S3 (normalised, then encoded a second time),
 * a table of requests checked against botocore's SigV4Auth (the signer
 * every botocore service but S3 uses) at fixed dates, and the Kinesis
 * client's own requests, as it puts them on the wire, checked the same
 * way (kinesis-local does not check signatures).
 *
 * botocore runs as /usr/bin/python3 tests/unit/sigv4_botocore_oracle.py
 * (python3-boto3, scripts/deps.sh test); WEAVE_TEST_KINESIS_SKIP_BOTOCORE=1
 * skips the tests that need it where it is not installed.
 */
#include "harness.h"
#include "sigv4_oracle.h"

#include <weave/kinesis.h>

#include "aws/sigv4.h"
#include "kinesis/kinesis_internal.h"

#define EXAMPLE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define EMPTY_SHA256   "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define T_20150830     INT64_C(1440938160) /* 2015-08-30T12:36:00Z */
#define T_20261201     INT64_C(1796083200)

/* ------------------------------------------------------------ the oracle */

/* One case: the request as sent (url, headers as given to the HTTP
 * client, body) and the Authorization weave made for it. */
static void oracle_case(sigv4_oracle *o, const aws_sign_req *r, const char *token, const char *url,
                        const aws_header *sent, size_t nsent, const void *body, size_t body_len,
                        const char *authorization)
{
    fprintf(o->in, "V\t%s\t%s\t%s\t%s\t%s\t%lld\t%s\t%s\t", r->access_key, r->secret_key,
            token ? token : "-", r->region, r->service, (long long)r->unix_time, r->method, url);
    sigv4_put_hex(o->in, body, body_len);
    fprintf(o->in, "\t%s", authorization);
    for (size_t i = 0; i < nsent; i++)
        fprintf(o->in, "\t%s\t%s", sent[i].name, sent[i].value);
    fputc('\n', o->in);
    o->cases++;
}

/* ------------------------------------------------------------ the signer */

static void test_aws_sign_reproduces_the_iam_example_of_the_sigv4_documentation(void **state)
{
    aws_header h[] = {{"content-type", "application/x-www-form-urlencoded; charset=utf-8"},
                      {"host", "iam.amazonaws.com"},
                      {"x-amz-date", "20150830T123600Z"}};
    aws_sign_req r = {
        .method = "GET",
        .path = "/",
        .query = "Action=ListUsers&Version=2010-05-08",
        .headers = h,
        .nheaders = ARRAY_LEN(h),
        .payload_hash = EMPTY_SHA256,
        .access_key = "AKIDEXAMPLE",
        .secret_key = EXAMPLE_SECRET,
        .region = "us-east-1",
        .service = "iam",
        .unix_time = T_20150830,
    };
    wv_buf authz = {0}, canonical = {0}, sts = {0};
    assert_int_equal(aws_sign(&r, &authz, &canonical, &sts), 0);
    assert_int_equal(aws_cstr(&canonical), 0);
    assert_string_equal(canonical.p, "GET\n/\nAction=ListUsers&Version=2010-05-08\n"
                                     "content-type:application/x-www-form-urlencoded; "
                                     "charset=utf-8\nhost:iam.amazonaws.com\n"
                                     "x-amz-date:20150830T123600Z\n\n"
                                     "content-type;host;x-amz-date\n" EMPTY_SHA256);
    assert_string_equal(sts.p, "AWS4-HMAC-SHA256\n20150830T123600Z\n"
                               "20150830/us-east-1/iam/aws4_request\n"
                               "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59");
    assert_string_equal(authz.p, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/"
                                 "aws4_request, SignedHeaders=content-type;host;x-amz-date, "
                                 "Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b59"
                                 "24a6f2b5d7");
    wv_buf_free(&authz);
    wv_buf_free(&canonical);
    wv_buf_free(&sts);
}

/* The path line of the canonical request r makes for `path`. */
static void canonical_path_of(const char *service, const char *path, char *out, size_t cap)
{
    aws_header h[] = {{"host", "example.com"}};
    aws_sign_req r = {.method = "GET",
                      .path = path,
                      .query = "",
                      .headers = h,
                      .nheaders = 1,
                      .payload_hash = EMPTY_SHA256,
                      .access_key = "AKID",
                      .secret_key = "secret",
                      .region = "us-east-1",
                      .service = service,
                      .unix_time = T_20261201};
    wv_buf authz = {0}, canonical = {0};
    assert_int_equal(aws_sign(&r, &authz, &canonical, NULL), 0);
    assert_int_equal(aws_cstr(&canonical), 0);
    const char *start = strchr(canonical.p, '\n') + 1;
    snprintf(out, cap, "%.*s", (int)strcspn(start, "\n"), start);
    wv_buf_free(&authz);
    wv_buf_free(&canonical);
}

static void test_aws_sign_paths_outside_s3_are_normalised_and_encoded_twice(void **state)
{
    static const struct {
        const char *service, *sent, *signed_as;
    } cases[] = {
        {"kinesis", "/", "/"},
        {"kinesis", "", "/"},
        {"kinesis", "/a%20b/c", "/a%2520b/c"},
        {"kinesis", "/a/./b/../c//d/", "/a/c/d/"},
        {"kinesis", "/a/..", "/"},
        {"kinesis", "/../../x", "/x"},
        {"kinesis", "/~user/%2F/x+y", "/~user/%252F/x%2By"},
        {"execute-api", "/stage/r%C3%A9sum%C3%A9", "/stage/r%25C3%25A9sum%25C3%25A9"},
        {"s3", "/bucket/a%20b/./c", "/bucket/a%20b/./c"},
        {"s3", "/bucket//k", "/bucket//k"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char got[256];
        canonical_path_of(cases[i].service, cases[i].sent, got, sizeof got);
        if (strcmp(got, cases[i].signed_as) != 0)
            print_error("%s %s: signed as %s, want %s\n", cases[i].service, cases[i].sent, got,
                        cases[i].signed_as);
        assert_string_equal(got, cases[i].signed_as);
    }
}

/* Sign a request to service at url's path with these headers (names
 * lower-case) and add it to the oracle's cases. */
static void signed_case(sigv4_oracle *o, const char *service, const char *method, const char *path,
                        const char *query, const char *token, const char *body, int64_t t)
{
    char date[17], url[512], hash[AWS_SHA256_HEX];
    aws_amz_date(t, date);
    snprintf(url, sizeof url, "https://%s.eu-west-1.amazonaws.com%s%s%s", service, path,
             *query ? "?" : "", query);
    char host[128];
    snprintf(host, sizeof host, "%s.eu-west-1.amazonaws.com", service);
    aws_header sent[6] = {{"host", host},
                          {"x-amz-date", date},
                          {"content-type", "application/x-amz-json-1.1"},
                          {"x-amz-target", "Kinesis_20131202.ListShards"}};
    size_t n = 4;
    if (token)
        sent[n++] = (aws_header){"x-amz-security-token", token};
    aws_header sorted[6];
    memcpy(sorted, sent, sizeof sent);
    aws_sha256_hex(body, strlen(body), hash);
    aws_sign_req r = {.method = method,
                      .path = path,
                      .query = query,
                      .headers = sorted,
                      .nheaders = n,
                      .payload_hash = hash,
                      .access_key = "AKIDEXAMPLE",
                      .secret_key = EXAMPLE_SECRET,
                      .region = "eu-west-1",
                      .service = service,
                      .unix_time = t};
    wv_buf authz = {0};
    assert_int_equal(aws_sign(&r, &authz, NULL, NULL), 0);
    oracle_case(o, &r, token, url, sent, n, body, strlen(body), authz.p);
    wv_buf_free(&authz);
}

static void test_aws_sign_agrees_with_botocore_outside_s3(void **state)
{
    static const char *const services[] = {"kinesis", "execute-api", "dynamodb"};
    static const char *const paths[] = {
        "/", "/a%20b/c", "/a/./b/../c//d/", "/~user/%2F/x+y", "/stage/r%C3%A9sum%C3%A9", "/x/..",
    };
    static const char *const queries[] = {"", "a=1&b=z%20z", "Action=ListUsers&Version=2010-05-08"};
    static const char *const bodies[] = {"", "{\"StreamName\":\"s\"}"};
    sigv4_oracle o;
    sigv4_oracle_open(&o);
    for (size_t s = 0; s < ARRAY_LEN(services); s++)
        for (size_t p = 0; p < ARRAY_LEN(paths); p++)
            for (size_t q = 0; q < ARRAY_LEN(queries); q++)
                for (size_t b = 0; b < ARRAY_LEN(bodies); b++)
                    signed_case(&o, services[s], b ? "POST" : "GET", paths[p], queries[q],
                                (p + q) % 2 ? "FwoGZXIvYXdzEBYaDH+token/with=chars" : NULL,
                                bodies[b], (p % 2) ? T_20150830 : T_20261201);
    int cases = o.cases;
    /* and one wrong signature, which the oracle must catch */
    fprintf(o.in,
            "V\tAKID\tsecret\t-\tus-east-1\tkinesis\t%lld\tPOST\thttp://127.0.0.1:1/\t-\t"
            "AWS4-HMAC-SHA256 Credential=AKID/20261201/us-east-1/kinesis/aws4_request, "
            "SignedHeaders=host, Signature=%064d\thost\t127.0.0.1:1\n",
            (long long)T_20261201, 0);
    int bad;
    int ok = sigv4_oracle_run(&o, "WEAVE_TEST_KINESIS_SKIP_BOTOCORE", &bad, NULL);
    assert_int_equal(bad, 1);
    assert_int_equal(ok, cases);
    assert_int_equal(cases, 3 * 6 * 3 * 2);
}

/* ------------------------------------------------------------ the client's */

static void test_kinesis_requests_are_signed_as_botocore_signs_them(void **state)
{
    static const wv_kinesis_opts clients[] = {
        {.region = "us-east-1", .access_key = "AKIDEXAMPLE", .secret_key = EXAMPLE_SECRET},
        {.endpoint = "http://127.0.0.1:4567",
         .region = "eu-west-1",
         .access_key = "ASIAEXAMPLETEMP",
         .secret_key = "secret/with+chars=",
         .session_token = "FwoGZXIvYXdzEBYaDH+token/with=chars"},
        {.endpoint = "https://[::1]:8443",
         .region = "ap-southeast-2",
         .access_key = "AKIDV6",
         .secret_key = "v6secret"},
    };
    static const struct {
        const char *op, *body;
    } calls[] = {
        {"PutRecord",
         "{\"StreamName\":\"orders\",\"Data\":\"aGVsbG8=\",\"PartitionKey\":\"caf\u00e9\"}"},
        {"PutRecords",
         "{\"StreamName\":\"s\",\"Records\":[{\"Data\":\"\",\"PartitionKey\":\"k\"}]}"},
        {"ListShards", "{\"NextToken\":\"s::shardId-000000000000\",\"MaxResults\":1}"},
        {"DescribeStreamSummary", "{}"},
    };
    const int64_t times[] = {T_20150830, T_20261201};
    sigv4_oracle o;
    sigv4_oracle_open(&o);
    for (size_t c = 0; c < ARRAY_LEN(clients); c++) {
        wv_kinesis *k;
        assert_int_equal(wv_kinesis_new(&clients[c], &k), 0);
        for (size_t i = 0; i < ARRAY_LEN(calls); i++)
            for (size_t t = 0; t < ARRAY_LEN(times); t++) {
                wv_buf body = {0};
                wv_buf_puts(&body, calls[i].body);
                kinesis_signed sg;
                assert_int_equal(kinesis_sign(k, calls[i].op, &body, times[t], &sg), 0);
                /* the headers as sent, Authorization (the last) aside */
                assert_string_equal(sg.headers[sg.n - 1].name, "Authorization");
                aws_header sent[6];
                for (size_t h = 0; h + 1 < sg.n; h++)
                    sent[h] = (aws_header){sg.headers[h].name, sg.headers[h].value};
                aws_sign_req r = {.method = "POST",
                                  .access_key = k->aws.access_key,
                                  .secret_key = k->aws.secret_key,
                                  .region = k->aws.region,
                                  .service = "kinesis",
                                  .unix_time = times[t]};
                oracle_case(&o, &r, k->aws.session_token, k->url, sent, sg.n - 1, body.p, body.n,
                            sg.authorization.p);
                kinesis_signed_free(&sg);
                wv_buf_free(&body);
            }
        wv_kinesis_free(k);
    }
    int cases = o.cases, bad;
    int ok = sigv4_oracle_run(&o, "WEAVE_TEST_KINESIS_SKIP_BOTOCORE", &bad, NULL);
    assert_int_equal(bad, 0);
    assert_int_equal(ok, cases);
    assert_int_equal(cases, 3 * 4 * 2);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aws_sign_reproduces_the_iam_example_of_the_sigv4_documentation),
        cmocka_unit_test(test_aws_sign_paths_outside_s3_are_normalised_and_encoded_twice),
        cmocka_unit_test(test_aws_sign_agrees_with_botocore_outside_s3),
        cmocka_unit_test(test_kinesis_requests_are_signed_as_botocore_signs_them),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
