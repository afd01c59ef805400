/*
 * The S3 client's signing and settings, offline: SigV4 against the worked
 * examples in AWS's S3 documentation (header signing and a presigned
 * URL), and against botocore for a table of requests as weave would put
 * them on the wire (keys with spaces, unicode and reserved characters,
 * query strings, empty and non-empty bodies, signed and unsigned
 * payloads, session tokens, path and virtual-host addressing, GCS) and of
 * presigned GET/PUT/HEAD/DELETE URLs, all at fixed dates; the encoding
 * rules on their own; names refused before anything is sent; options and
 * the environment (credentials, region, endpoint, provider defaults);
 * s3:// and gs:// locations; the dates S3 writes.
 *
 * botocore runs as /usr/bin/python3 tests/unit/sigv4_botocore_oracle.py
 * (python3-boto3, scripts/deps.sh test); WEAVE_TEST_S3_SKIP_BOTOCORE=1
 * skips that one test where it is not installed.
 */
#include "harness.h"
#include "sigv4_oracle.h"

#include <weave/s3.h>

#include "s3/s3_internal.h"

#define AWS_EXAMPLE_KEY    "AKIAIOSFODNN7EXAMPLE"
#define AWS_EXAMPLE_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define EMPTY_SHA256       "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define T_20130524         INT64_C(1369353600)

static const char *signature_of(const char *authorization)
{
    const char *s = strstr(authorization, "Signature=");
    return s ? s + 10 : "";
}

static void sign_example(const char *method, const char *uri, const char *query,
                         aws_header *headers, size_t n, const char *payload, const char *want)
{
    wv_buf authz = {0};
    aws_sign_req r = {
        .method = method,
        .path = uri,
        .query = query,
        .headers = headers,
        .nheaders = n,
        .payload_hash = payload,
        .access_key = AWS_EXAMPLE_KEY,
        .secret_key = AWS_EXAMPLE_SECRET,
        .region = "us-east-1",
        .service = "s3",
        .unix_time = T_20130524,
    };
    assert_int_equal(aws_sign(&r, &authz, NULL, NULL), 0);
    assert_string_equal(signature_of(authz.p), want);
    assert_non_null(strstr(authz.p, "Credential=" AWS_EXAMPLE_KEY "/20130524/us-east-1/s3/"
                                    "aws4_request, SignedHeaders="));
    wv_buf_free(&authz);
}

static void test_s3_sign_reproduces_the_examples_in_aws_s3_documentation(void **state)
{
    /* GET Object with a Range */
    aws_header get[] = {{"x-amz-date", "20130524T000000Z"},
                        {"range", "bytes=0-9"},
                        {"host", "examplebucket.s3.amazonaws.com"},
                        {"x-amz-content-sha256", EMPTY_SHA256}};
    sign_example("GET", "/test.txt", "", get, ARRAY_LEN(get), EMPTY_SHA256,
                 "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
    /* PUT Object, with a Date header and a storage class */
    const char *put_hash = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
    aws_header put[] = {{"date", "Fri, 24 May 2013 00:00:00 GMT"},
                        {"host", "examplebucket.s3.amazonaws.com"},
                        {"x-amz-content-sha256", put_hash},
                        {"x-amz-date", "20130524T000000Z"},
                        {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
    char body_hash[AWS_SHA256_HEX];
    aws_sha256_hex("Welcome to Amazon S3.", 21, body_hash);
    assert_string_equal(body_hash, put_hash);
    sign_example("PUT", "/test%24file.text", "", put, ARRAY_LEN(put), put_hash,
                 "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
    /* GET Bucket Lifecycle: a bare query parameter */
    aws_header lifecycle[] = {{"host", "examplebucket.s3.amazonaws.com"},
                              {"x-amz-content-sha256", EMPTY_SHA256},
                              {"x-amz-date", "20130524T000000Z"}};
    sign_example("GET", "/", "lifecycle=", lifecycle, ARRAY_LEN(lifecycle), EMPTY_SHA256,
                 "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");
    /* GET Bucket (list objects) */
    aws_header list[] = {{"host", "examplebucket.s3.amazonaws.com"},
                         {"x-amz-content-sha256", EMPTY_SHA256},
                         {"x-amz-date", "20130524T000000Z"}};
    sign_example("GET", "/", "max-keys=2&prefix=J", list, ARRAY_LEN(list), EMPTY_SHA256,
                 "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");

    /* the presigned GET example, through the client */
    wv_s3 *s3;
    assert_int_equal(wv_s3_new(&(wv_s3_opts){.endpoint = "https://s3.amazonaws.com",
                                             .region = "us-east-1",
                                             .access_key = AWS_EXAMPLE_KEY,
                                             .secret_key = AWS_EXAMPLE_SECRET,
                                             .addressing = WV_S3_ADDRESSING_VIRTUAL_HOST},
                               &s3),
                     0);
    char *url;
    assert_int_equal(s3_presign_at(s3, "GET", "examplebucket", "test.txt", 86400, T_20130524, &url),
                     0);
    assert_string_equal(
        url, "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
             "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
             "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    free(url);
    wv_s3_free(s3);
}

/* ------------------------------------------------------------ botocore */

typedef struct client_case {
    wv_s3_opts opts;
    const char *style; /* for botocore: "path" or "virtual" */
    const char *endpoint;
} client_case;

/* Write one header-signing case for r as client s3 prepares and signs it
 * at time t. */
static void header_case(FILE *f, wv_s3 *s3, const wv_s3_opts *o, const s3_request *r, int64_t t)
{
    s3_prepared p;
    assert_int_equal(s3_prepare(s3, r, &p), 0);
    assert_int_equal(s3_prepared_sign(s3, r, &p, t), 0);
    fprintf(f, "H\t%s\t%s\t%s\t%s\t%lld\t%s\t%s\t", o->access_key, o->secret_key,
            o->session_token ? o->session_token : "-", s3->aws.region, (long long)t, r->method,
            p.url.p);
    sigv4_put_hex(f, r->body, r->body ? r->body_len : 0);
    fprintf(f, "\t%d\t%s", strcmp(p.payload_hash, "UNSIGNED-PAYLOAD") != 0, p.authorization.p);
    for (size_t i = 0; i < p.n; i++)
        if (strcmp(p.headers[i].name, "authorization") != 0)
            fprintf(f, "\t%s\t%s", p.headers[i].name, p.headers[i].value);
    fputc('\n', f);
    s3_prepared_free(&p);
}

static void presign_case(FILE *f, wv_s3 *s3, const client_case *c, const char *method,
                         const char *bucket, const char *key, int64_t expires, int64_t t)
{
    char *url;
    assert_int_equal(s3_presign_at(s3, method, bucket, key, expires, t, &url), 0);
    fprintf(f, "P\t%s\t%s\t%s\t%s\t%lld\t%s\t%s\t%s\t%s\t", c->opts.access_key, c->opts.secret_key,
            c->opts.session_token ? c->opts.session_token : "-", s3->aws.region, (long long)t,
            method, c->endpoint, c->style, bucket);
    sigv4_put_hex(f, key, strlen(key));
    fprintf(f, "\t%lld\t%s\n", (long long)expires, url);
    free(url);
}

static const char *const keys[] = {
    "plain.txt",
    "my folder/a b  c.txt",
    "caf\xC3\xA9/\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E.txt",
    "a+b=c&d?e#f%g:h@i!j$k'l(m)n*o,p;q[r]s~t_u-v.w",
    "trailing/slash/",
    "/leading-slash",
    "tab\there\001ctl",
    "emoji \xF0\x9F\x98\x80 and %20 literal",
};

static void write_cases(FILE *f)
{
    static const char body[] = "Welcome to weave's S3 client.\n";
    const client_case clients[] = {
        {{.endpoint = "http://127.0.0.1:9000",
          .region = "us-east-1",
          .access_key = "AKIDEXAMPLE",
          .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
         "path",
         "http://127.0.0.1:9000"},
        {{.region = "eu-west-1",
          .access_key = "ASIAEXAMPLETEMP",
          .secret_key = "secret/with+chars=",
          .session_token = "FwoGZXIvYXdzEBYaDH+token/with=chars"},
         "virtual",
         "https://s3.eu-west-1.amazonaws.com"},
        {{.provider = WV_S3_GCS, .access_key = "GOOG1EHMACKEYID", .secret_key = "gcs-hmac-secret"},
         "path",
         "https://storage.googleapis.com"},
        {{.endpoint = "https://[::1]:8443",
          .region = "ap-southeast-2",
          .access_key = "AKIDV6",
          .secret_key = "v6secret"},
         "path",
         "https://[::1]:8443"},
    };
    const int64_t times[] = {T_20130524, INT64_C(1796083200) /* 2026-12-01 */};
    for (size_t ci = 0; ci < ARRAY_LEN(clients); ci++) {
        const client_case *c = &clients[ci];
        wv_s3 *s3;
        assert_int_equal(wv_s3_new(&c->opts, &s3), 0);
        const char *bucket = ci == 1 ? "my-bucket" : "test-bucket";
        int64_t t = times[ci % 2];
        for (size_t k = 0; k < ARRAY_LEN(keys); k++) {
            /* GET, HEAD, DELETE, a PUT with a body and its headers, an
             * empty PUT, one with an unsigned payload */
            header_case(f, s3, &c->opts,
                        &(s3_request){.method = "GET", .bucket = bucket, .key = keys[k]}, t);
            header_case(f, s3, &c->opts,
                        &(s3_request){.method = "HEAD", .bucket = bucket, .key = keys[k]}, t);
            header_case(f, s3, &c->opts,
                        &(s3_request){.method = "DELETE", .bucket = bucket, .key = keys[k]}, t);
            wv_httpc_header h[] = {{"Content-Type", "text/plain; charset=utf-8"},
                                   {"Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="},
                                   {"x-amz-meta-Owner", "  spaced   out  value "},
                                   {"Range", "bytes=0-9"}};
            header_case(f, s3, &c->opts,
                        &(s3_request){.method = "PUT",
                                      .bucket = bucket,
                                      .key = keys[k],
                                      .headers = h,
                                      .nheaders = 3,
                                      .body = body,
                                      .body_len = sizeof body - 1},
                        t);
            header_case(
                f, s3, &c->opts,
                &(s3_request){.method = "PUT", .bucket = bucket, .key = keys[k], .body = ""}, t);
            header_case(f, s3, &c->opts,
                        &(s3_request){.method = "PUT",
                                      .bucket = bucket,
                                      .key = keys[k],
                                      .headers = h + 1,
                                      .nheaders = 1,
                                      .body = body,
                                      .body_len = sizeof body - 1,
                                      .payload_hash = "UNSIGNED-PAYLOAD"},
                        t);
            header_case(f, s3, &c->opts,
                        &(s3_request){.method = "GET",
                                      .bucket = bucket,
                                      .key = keys[k],
                                      .headers = h + 3,
                                      .nheaders = 1},
                        t);
            /* multipart: the upload's query strings */
            aws_param create[] = {{"uploads", ""}};
            header_case(f, s3, &c->opts,
                        &(s3_request){.method = "POST",
                                      .bucket = bucket,
                                      .key = keys[k],
                                      .params = create,
                                      .nparams = 1,
                                      .body = ""},
                        t);
            aws_param part[] = {{"uploadId", "VXBsb2FkIElE/+=x y"}, {"partNumber", "3"}};
            header_case(f, s3, &c->opts,
                        &(s3_request){.method = "PUT",
                                      .bucket = bucket,
                                      .key = keys[k],
                                      .params = part,
                                      .nparams = 2,
                                      .body = body,
                                      .body_len = 5},
                        t);
            /* a copy: the source as a header */
            wv_buf src = {0};
            wv_buf_puts(&src, "/test-bucket/");
            aws_uri_encode(&src, keys[k], strlen(keys[k]), true);
            wv_httpc_header copy[] = {{"x-amz-copy-source", src.p},
                                      {"x-amz-metadata-directive", "COPY"}};
            header_case(f, s3, &c->opts,
                        &(s3_request){.method = "PUT",
                                      .bucket = bucket,
                                      .key = "copy of it",
                                      .headers = copy,
                                      .nheaders = 2,
                                      .body = ""},
                        t);
            wv_buf_free(&src);
            for (size_t m = 0; m < 4; m++)
                presign_case(f, s3, c, (const char *[]){"GET", "PUT", "HEAD", "DELETE"}[m], bucket,
                             keys[k], m == 0 ? 604800 : 3600 + (int64_t)k, t);
        }
        /* listings: prefixes with spaces and slashes, a delimiter, a
         * continuation token with '/', '+' and '=' */
        aws_param list[] = {{"list-type", "2"},
                            {"prefix", "photos/2024 summer/\xC3\xA9t\xC3\xA9"},
                            {"delimiter", "/"},
                            {"max-keys", "7"},
                            {"encoding-type", "url"},
                            {"continuation-token", "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM="},
                            {"start-after", "a~b*c"}};
        for (size_t np = 0; np <= ARRAY_LEN(list); np++)
            header_case(
                f, s3, &c->opts,
                &(s3_request){.method = "GET", .bucket = bucket, .params = list, .nparams = np}, t);
        wv_s3_free(s3);
    }
}

static void
test_s3_sign_agrees_with_botocore_for_a_table_of_requests_and_presigned_urls(void **state)
{
    sigv4_oracle o;
    sigv4_oracle_open(&o);
    write_cases(o.in);
    /* and one wrong signature, which the oracle must catch */
    fprintf(o.in,
            "H\tAKID\tsecret\t-\tus-east-1\t%lld\tGET\thttp://127.0.0.1:9000/b/k\t-\t1\t"
            "AWS4-HMAC-SHA256 Credential=AKID/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host, Signature=%064d\thost\t127.0.0.1:9000\n",
            (long long)T_20130524, 0);
    char last[8192] = "";
    int bad;
    int ok = sigv4_oracle_run(&o, "WEAVE_TEST_S3_SKIP_BOTOCORE", &bad, last);
    assert_int_equal(bad, 1); /* the wrong one, and only it */
    assert_int_equal(strncmp(last, "DIFF ours=", 10), 0);
    /* 4 clients x 8 keys x (10 requests + 4 presigned) + 4 x 8 listings */
    assert_int_equal(ok, 4 * 8 * 14 + 4 * 8);
}

/* ------------------------------------------------------------ encoding */

static void test_s3_uri_encoding_keeps_unreserved_bytes_and_slashes_only_in_paths(void **state)
{
    wv_buf b = {0};
    const char in[] = "AZaz09-_.~ /+=&?#%\xC3\xA9";
    assert_int_equal(aws_uri_encode(&b, in, sizeof in - 1, true), 0);
    assert_string_equal(b.p, "AZaz09-_.~%20/%2B%3D%26%3F%23%25%C3%A9");
    b.n = 0;
    assert_int_equal(aws_uri_encode(&b, in, sizeof in - 1, false), 0);
    assert_string_equal(b.p, "AZaz09-_.~%20%2F%2B%3D%26%3F%23%25%C3%A9");
    b.n = 0;
    aws_param params[] = {{"b", "2"}, {"a", "z z"}, {"a", "y"}, {"uploads", ""}, {"A", "/"}};
    assert_int_equal(aws_canonical_query(&b, params, ARRAY_LEN(params)), 0);
    assert_string_equal(b.p, "A=%2F&a=y&a=z%20z&b=2&uploads=");
    wv_buf_free(&b);
}

static void test_s3_hashes_of_a_body_are_hex_sha256_and_base64_md5(void **state)
{
    s3_body_hashes h;
    assert_int_equal(s3_hash_body("", 0, true, true, &h), 0);
    assert_string_equal(h.sha256_hex, EMPTY_SHA256);
    assert_string_equal(h.md5_b64, "1B2M2Y8AsgTpgAmY7PhCfg==");
    assert_string_equal(h.sha256_b64, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
    assert_int_equal(s3_hash_body("hello", 5, true, false, &h), 0);
    assert_string_equal(h.md5_b64, "XUFAKrxLKna5cZ2REBfFkg==");
    assert_string_equal(h.sha256_b64, "");
}

/* ------------------------------------------------------------ names, options */

static void test_s3_bad_names_are_einval_before_anything_is_sent(void **state)
{
    char what[S3_WHAT_MAX];
    char long_key[S3_MAX_KEY + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    static const struct {
        const char *bucket, *key;
        const char *why;
    } bad[] = {
        {"", "k", "bucket name"},
        {"has space", "k", "bucket name"},
        {"slash/bucket", "k", "bucket name"},
        {"b", "", "1 to 1024 bytes"},
        {"b", ".", "segment"},
        {"b", "..", "segment"},
        {"b", "a/../b", "segment"},
        {"b", "a/./b", "segment"},
        {"b", "a/..", "segment"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        assert_int_equal(s3_check_names("GET", bad[i].bucket, bad[i].key, what, sizeof what),
                         -EINVAL);
        assert_non_null(strstr(wv_errmsg(), bad[i].why));
    }
    assert_int_equal(s3_check_names("GET", "b", long_key, what, sizeof what), -EINVAL);
    long_key[S3_MAX_KEY] = '\0';
    assert_int_equal(s3_check_names("GET", "b", long_key, what, sizeof what), 0);
    static const char *const fine[] = {"...", ".hidden", "a..b", "a/.../b", "a//b", "x."};
    for (size_t i = 0; i < ARRAY_LEN(fine); i++)
        assert_int_equal(s3_check_names("GET", "My_Bucket.v2", fine[i], what, sizeof what), 0);
    assert_string_equal(what, "S3 GET My_Bucket.v2/x.");

    wv_s3 *s3;
    assert_int_equal(
        wv_s3_new(
            &(wv_s3_opts){.endpoint = "http://127.0.0.1:1", .access_key = "a", .secret_key = "b"},
            &s3),
        0);
    /* outside a fiber, a bad name is still -EINVAL, not -EPERM: nothing is tried */
    wv_s3_object o;
    assert_int_equal(wv_s3_get(s3, "b", "a/../x", &o), -EINVAL);
    assert_int_equal(wv_s3_put(s3, "b b", "k", "x", 1, NULL), -EINVAL);
    assert_int_equal(wv_s3_put(s3, "b", "k", NULL, 1, NULL), -EINVAL);
    assert_int_equal(wv_s3_put(s3, "b", "k", "x", 1,
                               &(wv_s3_put_opts){.metadata = (wv_httpc_header[]){{"bad name", "v"}},
                                                 .nmetadata = 1}),
                     -EINVAL);
    assert_non_null(strstr(wv_errmsg(), "metadata name"));
    assert_int_equal(wv_s3_put(s3, "b", "k", "x", 1,
                               &(wv_s3_put_opts){.metadata = (wv_httpc_header[]){{"n", "a\r\nb"}},
                                                 .nmetadata = 1}),
                     -EINVAL);
    assert_int_equal(
        wv_s3_put(s3, "b", "k", "x", 1, &(wv_s3_put_opts){.content_type = "text/plain\r\nX: y"}),
        -EINVAL);
    wv_s3_list_page page = {0};
    assert_int_equal(wv_s3_list(s3, "b", &(wv_s3_list_opts){.max_keys = -1}, &page), -EINVAL);
    wv_s3_free(s3);
}

static void clear_env(void)
{
    static const char *const vars[] = {"AWS_ACCESS_KEY_ID",  "AWS_SECRET_ACCESS_KEY",
                                       "AWS_SESSION_TOKEN",  "AWS_REGION",
                                       "AWS_DEFAULT_REGION", "S3_ENDPOINT"};
    for (size_t i = 0; i < ARRAY_LEN(vars); i++)
        unsetenv(vars[i]);
}

static void test_s3_new_reads_options_then_the_environment(void **state)
{
    clear_env();
    wv_s3 *s3 = (wv_s3 *)1;
    assert_int_equal(wv_s3_new(NULL, &s3), -EINVAL);
    assert_null(s3);
    assert_non_null(strstr(wv_errmsg(), "AWS_ACCESS_KEY_ID"));

    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    setenv("AWS_SESSION_TOKEN", "envtoken", 1);
    setenv("AWS_DEFAULT_REGION", "eu-central-1", 1);
    assert_int_equal(wv_s3_new(NULL, &s3), 0);
    assert_string_equal(s3->aws.access_key, "AKIDENV");
    assert_string_equal(s3->aws.secret_key, "envsecret");
    assert_string_equal(s3->aws.session_token, "envtoken");
    assert_string_equal(s3->aws.region, "eu-central-1");
    assert_string_equal(s3->aws.scheme, "https");
    assert_string_equal(s3->aws.host, "s3.eu-central-1.amazonaws.com");
    assert_true(s3->aws_endpoint);
    wv_s3_free(s3);

    setenv("AWS_REGION", "us-west-2", 1); /* wins over AWS_DEFAULT_REGION */
    setenv("S3_ENDPOINT", "http://127.0.0.1:14568", 1);
    assert_int_equal(wv_s3_new(NULL, &s3), 0);
    assert_string_equal(s3->aws.region, "us-west-2");
    assert_string_equal(s3->aws.scheme, "http");
    assert_string_equal(s3->aws.host, "127.0.0.1:14568");
    assert_false(s3->aws_endpoint);
    wv_s3_free(s3);

    /* options win over the environment, and credentials come as a set */
    assert_int_equal(wv_s3_new(&(wv_s3_opts){.endpoint = "https://minio.internal",
                                             .region = "local",
                                             .access_key = "opt",
                                             .secret_key = "optsecret"},
                               &s3),
                     0);
    assert_string_equal(s3->aws.access_key, "opt");
    assert_null(s3->aws.session_token);
    assert_string_equal(s3->aws.host, "minio.internal");
    assert_string_equal(s3->aws.region, "local");
    wv_s3_free(s3);

    /* GCS: its endpoint and region "auto"; S3_ENDPOINT is AWS's */
    assert_int_equal(wv_s3_new(&(wv_s3_opts){.provider = WV_S3_GCS}, &s3), 0);
    assert_string_equal(s3->aws.host, "storage.googleapis.com");
    assert_string_equal(s3->aws.region, "auto");
    assert_false(s3->aws_endpoint);
    wv_s3_free(s3);
    clear_env();

    static const struct {
        wv_s3_opts o;
        const char *why;
    } bad[] = {
        {{.access_key = "a"}, "no credentials"},
        {{.anonymous = true, .endpoint = "ftp://x"}, "not http"},
        {{.anonymous = true, .endpoint = "http://x/prefix"}, "path"},
        {{.anonymous = true, .endpoint = "http://u:p@x"}, "credentials"},
        {{.anonymous = true, .endpoint = "not a url"}, "not a URL"},
        {{.anonymous = true, .part_size = 1 << 20}, "part_size"},
        {{.anonymous = true, .parts_in_flight = 65}, "parts_in_flight"},
        {{.anonymous = true, .region = "us east"}, "region"},
        {{.anonymous = true, .provider = WV_S3_GCS, .checksum = WV_S3_CHECKSUM_SHA256}, "GCS"},
        {{.access_key = "has space", .secret_key = "s"}, "access key"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        assert_int_equal(wv_s3_new(&bad[i].o, &s3), -EINVAL);
        if (!strstr(wv_errmsg(), bad[i].why))
            print_error("case %zu: \"%s\" lacks \"%s\"\n", i, wv_errmsg(), bad[i].why);
        assert_non_null(strstr(wv_errmsg(), bad[i].why));
    }
    /* the password of a bad endpoint is not shown */
    assert_int_equal(
        wv_s3_new(&(wv_s3_opts){.anonymous = true, .endpoint = "http://u:hunter2@x"}, &s3),
        -EINVAL);
    assert_null(strstr(wv_errmsg(), "hunter2"));
    wv_s3_free(NULL);
}

static void test_s3_addressing_puts_the_bucket_in_the_host_only_where_it_can_go(void **state)
{
    static const struct {
        wv_s3_opts o;
        const char *bucket;
        const char *url;
    } cases[] = {
        {{.region = "eu-west-1"},
         "my-bucket",
         "https://my-bucket.s3.eu-west-1.amazonaws.com/k%20k"},
        {{.region = "eu-west-1"},
         "dotted.bucket",
         "https://s3.eu-west-1.amazonaws.com/dotted.bucket/k%20k"},
        {{.region = "eu-west-1"}, "Upper", "https://s3.eu-west-1.amazonaws.com/Upper/k%20k"},
        {{.region = "eu-west-1", .addressing = WV_S3_ADDRESSING_PATH},
         "my-bucket",
         "https://s3.eu-west-1.amazonaws.com/my-bucket/k%20k"},
        {{.endpoint = "http://127.0.0.1:9000"},
         "my-bucket",
         "http://127.0.0.1:9000/my-bucket/k%20k"},
        {{.endpoint = "http://127.0.0.1:80"}, "b", "http://127.0.0.1/b/k%20k"},
        {{.endpoint = "http://[::1]:9000"}, "b", "http://[::1]:9000/b/k%20k"},
        {{.endpoint = "http://minio:9000", .addressing = WV_S3_ADDRESSING_VIRTUAL_HOST},
         "b",
         "http://b.minio:9000/k%20k"},
        {{.provider = WV_S3_GCS}, "my-bucket", "https://storage.googleapis.com/my-bucket/k%20k"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        wv_s3_opts o = cases[i].o;
        o.access_key = "a";
        o.secret_key = "b";
        wv_s3 *s3;
        assert_int_equal(wv_s3_new(&o, &s3), 0);
        s3_prepared p;
        s3_request r = {.method = "GET", .bucket = cases[i].bucket, .key = "k k", .what = "t"};
        assert_int_equal(s3_prepare(s3, &r, &p), 0);
        assert_string_equal(p.url.p, cases[i].url);
        /* the Host header is the URL's host */
        const char *host = strstr(cases[i].url, "//") + 2;
        assert_int_equal(strncmp(p.headers[0].value, host, strlen(p.headers[0].value)), 0);
        assert_int_equal(host[strlen(p.headers[0].value)], '/');
        s3_prepared_free(&p);
        wv_s3_free(s3);
    }
}

static void test_s3_presign_refuses_what_it_cannot_sign(void **state)
{
    wv_s3 *s3, *anon;
    assert_int_equal(wv_s3_new(&(wv_s3_opts){.endpoint = "http://127.0.0.1:9000",
                                             .access_key = "a",
                                             .secret_key = "b"},
                               &s3),
                     0);
    assert_int_equal(
        wv_s3_new(&(wv_s3_opts){.endpoint = "http://127.0.0.1:9000", .anonymous = true}, &anon), 0);
    char *url = (char *)1;
    assert_int_equal(wv_s3_presign(s3, "POST", "b", "k", 60, &url), -EINVAL);
    assert_null(url);
    assert_int_equal(wv_s3_presign(s3, "GET", "b", "k", 0, &url), -EINVAL);
    assert_int_equal(wv_s3_presign(s3, "GET", "b", "k", 604801, &url), -EINVAL);
    assert_int_equal(wv_s3_presign(s3, "GET", "b", "..", 60, &url), -EINVAL);
    assert_int_equal(wv_s3_presign(anon, "GET", "b", "k", 60, &url), -EINVAL);
    assert_int_equal(wv_s3_presign(s3, "GET", "b", "k", 604800, &url), 0);
    assert_non_null(strstr(url, "X-Amz-Expires=604800&"));
    free(url);
    wv_s3_free(s3);
    wv_s3_free(anon);
}

static void test_s3_locations_name_provider_bucket_and_key(void **state)
{
    wv_s3_location loc;
    assert_int_equal(wv_s3_location_parse("s3://bucket/dir/a b.txt", &loc), 0);
    assert_int_equal(loc.provider, WV_S3_AWS);
    assert_string_equal(loc.bucket, "bucket");
    assert_string_equal(loc.key, "dir/a b.txt");
    wv_s3_location_free(&loc);
    assert_int_equal(wv_s3_location_parse("gs://my-gcs-bucket", &loc), 0);
    assert_int_equal(loc.provider, WV_S3_GCS);
    assert_string_equal(loc.bucket, "my-gcs-bucket");
    assert_string_equal(loc.key, "");
    wv_s3_location_free(&loc);
    assert_int_equal(wv_s3_location_parse("https://bucket/key", &loc), -EINVAL);
    assert_int_equal(wv_s3_location_parse("s3:///key", &loc), -EINVAL);
    assert_int_equal(wv_s3_location_parse(NULL, &loc), -EINVAL);
    wv_s3_location_free(&loc);
    wv_s3_location_free(NULL);
}

static void test_s3_dates_in_iso_8601_and_http_form_become_unix_seconds(void **state)
{
    assert_int_equal(s3_parse_iso8601("2009-10-12T17:50:30.000Z"), INT64_C(1255369830));
    assert_int_equal(s3_parse_iso8601("2009-10-12T17:50:30Z"), INT64_C(1255369830));
    assert_int_equal(s3_parse_iso8601("1970-01-01T00:00:00.000Z"), 0);
    assert_int_equal(s3_parse_iso8601("2009-13-12T17:50:30.000Z"), 0);
    assert_int_equal(s3_parse_iso8601("2009-10-12 17:50:30Z"), 0);
    assert_int_equal(s3_parse_iso8601("2009-10-12T17:50:30.000+01:00"), 0);
    assert_int_equal(s3_parse_iso8601(NULL), 0);
    assert_int_equal(s3_parse_http_date("Mon, 12 Oct 2009 17:50:30 GMT"), INT64_C(1255369830));
    assert_int_equal(s3_parse_http_date("garbage"), 0);
    char date[17];
    aws_amz_date(T_20130524, date);
    assert_string_equal(date, "20130524T000000Z");
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s3_sign_reproduces_the_examples_in_aws_s3_documentation),
        cmocka_unit_test(
            test_s3_sign_agrees_with_botocore_for_a_table_of_requests_and_presigned_urls),
        cmocka_unit_test(test_s3_uri_encoding_keeps_unreserved_bytes_and_slashes_only_in_paths),
        cmocka_unit_test(test_s3_hashes_of_a_body_are_hex_sha256_and_base64_md5),
        cmocka_unit_test(test_s3_bad_names_are_einval_before_anything_is_sent),
        cmocka_unit_test(test_s3_new_reads_options_then_the_environment),
        cmocka_unit_test(test_s3_addressing_puts_the_bucket_in_the_host_only_where_it_can_go),
        cmocka_unit_test(test_s3_presign_refuses_what_it_cannot_sign),
        cmocka_unit_test(test_s3_locations_name_provider_bucket_and_key),
        cmocka_unit_test(test_s3_dates_in_iso_8601_and_http_form_become_unix_seconds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
