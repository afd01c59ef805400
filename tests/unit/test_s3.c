/*
 * The S3 client (include/weave/s3.h) against s3rver, a real S3-compatible
 * server on loopback (npm s3rver, started by scripts/s3_test_server.sh on
 * a free port, over HTTP and over TLS with tests/make_certs.sh's
 * certificates): puts and gets with their metadata, keys with spaces,
 * unicode and reserved characters, ranges, heads, deletes, copies,
 * listings page by page, multipart uploads from a source and from a
 * file, ranged downloads into a sink and into a file, presigned URLs used
 * without credentials, the GCS provider, TLS verification, and the
 * service's refusals with their codes.
 *
 * Faults go through a fault proxy: weave's own HTTP server in the same
 * runtime, forwarding every request to s3rver and answering some itself
 * as the test asks (503 SlowDown, 500 InternalError for one part, a
 * delay per part), while it counts what it saw (tries, parts in flight,
 * completes, aborts). s3rver does not implement AbortMultipartUpload
 * (it answers 405), so the proxy answers that one call the way S3 does
 * (204) and records the upload id. The server's death mid-request is
 * s3rver itself frozen (SIGSTOP) while requests are in flight, then
 * killed (SIGKILL).
 *
 * Needs node and the pinned npm packages (the script runs `npm ci` in
 * tests/integration/node when they are missing);
 * WEAVE_TEST_S3_SKIP=1 skips the whole file where there is no node.
 */
#include "harness.h"
#include "peer_server.h"

#include <openssl/evp.h>
#include <sys/stat.h>

#include <weave/http.h>
#include <weave/httpc.h>
#include <weave/s3.h>

#define BUCKET   "test-bucket"
#define PART     ((size_t)5 << 20)
#define MIB      ((size_t)1 << 20)
#define S3_AKID  "S3RVER"
#define S3_TOKEN "S3RVER"

static char dir[64];       /* certificates, the servers' data */
static char ca_file[128];  /* the test CA */
static char endpoint[128]; /* the plain s3rver */
static char srv_dir[160];
static const char *source_dir;

/* ------------------------------------------------------------ helpers */

static unsigned char pattern(size_t i)
{
    return (unsigned char)((i * 131u + (i >> 13) * 7u) & 0xff);
}

static void *pattern_block(size_t n, size_t seed)
{
    unsigned char *p = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        p[i] = pattern(i + seed);
    return p;
}

static void md5_hex(const void *p, size_t n, char out[33])
{
    unsigned char d[16];
    unsigned int len = 0;
    EVP_Digest(p, n, d, &len, EVP_md5(), NULL);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static wv_s3 *client_for(const char *ep, const wv_s3_opts *extra)
{
    wv_s3_opts o = extra ? *extra : (wv_s3_opts){0};
    if (!o.endpoint)
        o.endpoint = ep;
    if (!o.access_key) {
        o.access_key = S3_AKID;
        o.secret_key = S3_TOKEN;
    }
    if (!o.part_size)
        o.part_size = PART;
    if (!o.parts_in_flight)
        o.parts_in_flight = 3;
    if (!o.retry_base_ms)
        o.retry_base_ms = 5;
    wv_s3 *s3 = NULL;
    if (wv_s3_new(&o, &s3) < 0)
        fprintf(stderr, "wv_s3_new: %s\n", wv_errmsg());
    return s3;
}

static wv_s3 *client(const wv_s3_opts *extra)
{
    return client_for(endpoint, extra);
}

/* s3rver in sdir (its data, log and pid) on a free port; its endpoint
 * into out. 0 or -1. */
static int s3rver_start(const char *sdir, bool tls, char *out, size_t cap)
{
    char extra[512];
    if (tls)
        snprintf(extra, sizeof extra, "--tls %s/server.pem %s/server.key " BUCKET " other-bucket",
                 dir, dir);
    else
        snprintf(extra, sizeof extra, BUCKET " other-bucket");
    return peer_server_start(source_dir, "s3_test_server.sh", sdir, extra, NULL, out, cap);
}

static void s3rver_stop(const char *sdir)
{
    peer_server_stop(source_dir, "s3_test_server.sh", sdir);
}

/* ------------------------------------------------------------ the fault proxy */

typedef struct proxy {
    peer_proxy base;
    const char *upstream;
    /* faults, set by the test */
    int fail_status;       /* answer this status... */
    const char *fail_code; /* ...with this S3 code */
    int fail_times;        /* to this many requests (-1: all of them) */
    int fail_part;         /* only to UploadPart of this number (0: any request) */
    const char *retry_after;
    const char *fail_extra; /* more of the <Error> document, and a Location header */
    int64_t part_delay_ms;  /* hold each UploadPart this long before forwarding */
    /* what it saw */
    int requests, faults, parts, parts_in_flight, max_parts_in_flight, completes, aborts;
    /* bodies whose checksum headers it verified, by kind, and mismatches */
    int sha256_hex_ok, md5_ok, sha256_b64_ok, checksum_bad;
    int64_t source_read_at_first_part; /* *source_read when the first part was answered */
    const int64_t *source_read;
    char created_id[128], aborted_id[128];
} proxy;

static proxy px;

static bool str_has(wv_str s, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = 0; i + k <= s.n; i++)
        if (memcmp(s.p + i, needle, k) == 0)
            return true;
    return false;
}

/* the value of query parameter name in q (raw), into out */
static void query_value(wv_str q, const char *name, char *out, size_t cap)
{
    out[0] = '\0';
    size_t k = strlen(name);
    for (size_t i = 0; i + k < q.n; i++)
        if ((i == 0 || q.p[i - 1] == '&') && memcmp(q.p + i, name, k) == 0 && q.p[i + k] == '=') {
            size_t j = i + k + 1, e = j;
            while (e < q.n && q.p[e] != '&')
                e++;
            snprintf(out, cap, "%.*s", (int)(e - j), q.p + j);
            return;
        }
}

static void digest_b64(const void *p, size_t n, const EVP_MD *md, char *out)
{
    unsigned char d[32];
    unsigned int len = 0;
    EVP_Digest(p, n, d, &len, md, NULL);
    EVP_EncodeBlock((unsigned char *)out, d, (int)len);
}

/* What s3rver does not do: check a body against the checksums sent with
 * it (x-amz-content-sha256 hex, Content-MD5, x-amz-checksum-sha256). */
static void verify_checksums(wv_req *req, wv_str body)
{
    const void *p = body.p ? body.p : "";
    wv_str hex = wv_req_header(req, "x-amz-content-sha256");
    if (hex.p && hex.n == 64) {
        unsigned char d[32];
        unsigned int len = 0;
        char want[65];
        EVP_Digest(p, body.n, d, &len, EVP_sha256(), NULL);
        for (int i = 0; i < 32; i++)
            snprintf(want + 2 * i, 3, "%02x", d[i]);
        if (memcmp(hex.p, want, 64) == 0)
            px.sha256_hex_ok++;
        else
            px.checksum_bad++;
    }
    wv_str md5 = wv_req_header(req, "Content-MD5");
    if (md5.p) {
        char want[32];
        digest_b64(p, body.n, EVP_md5(), want);
        if (wv_str_eq_cstr(md5, want))
            px.md5_ok++;
        else
            px.checksum_bad++;
    }
    wv_str sha = wv_req_header(req, "x-amz-checksum-sha256");
    if (sha.p) {
        char want[48];
        digest_b64(p, body.n, EVP_sha256(), want);
        if (wv_str_eq_cstr(sha, want))
            px.sha256_b64_ok++;
        else
            px.checksum_bad++;
    }
}

static int forward(wv_req *req, wv_res *res)
{
    wv_httpc_header h[64];
    size_t nh = peer_forward_headers(req, h, 64);
    wv_str body = {0};
    int rc = wv_req_body(req, &body);
    if (rc < 0)
        return rc;
    verify_checksums(req, body);
    char url[512];
    snprintf(url, sizeof url, "%s%.*s", px.upstream, (int)wv_req_target(req).n,
             wv_req_target(req).p);
    char *method = peer_cstr(req, wv_req_method(req));
    bool has_body = strcmp(method, "PUT") == 0 || strcmp(method, "POST") == 0;
    wv_httpc_response up;
    rc = wv_httpc_request(&(wv_httpc_req){.method = method,
                                          .url = url,
                                          .headers = h,
                                          .nheaders = nh,
                                          .body = has_body ? (body.p ? body.p : "") : NULL,
                                          .body_len = has_body ? body.n : 0,
                                          .max_response = 64 << 20,
                                          .max_redirects = -1,
                                          .version = WV_HTTPC_HTTP1,
                                          .no_decompress = true},
                          &up);
    if (rc < 0)
        return wv_res_text(res, 502, wv_errmsg());
    for (size_t i = 0; i < up.nheaders; i++) {
        const char *n = up.headers[i].name;
        if (strcasecmp(n, "ETag") == 0 || strcasecmp(n, "Content-Range") == 0 ||
            strcasecmp(n, "Last-Modified") == 0 || strncasecmp(n, "x-amz-", 6) == 0)
            wv_res_header(res, n, up.headers[i].value);
    }
    if (strcmp(method, "POST") == 0 && up.body.n) {
        const char *id = memmem(up.body.p, up.body.n, "<UploadId>", 10);
        if (id)
            snprintf(px.created_id, sizeof px.created_id, "%.*s", (int)strcspn(id + 10, "<"),
                     id + 10);
    }
    rc =
        wv_res_send(res, up.status, wv_httpc_header_get(&up, "Content-Type"), up.body.p, up.body.n);
    wv_httpc_response_free(&up);
    return rc;
}

static int proxy_handler(wv_req *req, wv_res *res)
{
    px.requests++;
    wv_str method = wv_req_method(req), query = wv_req_query(req);
    bool is_part = wv_str_eq_cstr(method, "PUT") && str_has(query, "partNumber=");
    if (wv_str_eq_cstr(method, "DELETE") && str_has(query, "uploadId=")) {
        /* AbortMultipartUpload, which s3rver lacks: answered as S3 does */
        px.aborts++;
        query_value(query, "uploadId", px.aborted_id, sizeof px.aborted_id);
        return wv_res_send(res, 204, NULL, NULL, 0);
    }
    if (wv_str_eq_cstr(method, "POST") && str_has(query, "uploadId="))
        px.completes++;
    bool target = px.fail_part == 0;
    if (is_part && px.fail_part) {
        char number[16];
        query_value(query, "partNumber", number, sizeof number);
        target = atoi(number) == px.fail_part;
    }
    if (px.fail_times != 0 && target) {
        if (px.fail_times > 0)
            px.fail_times--;
        px.faults++;
        if (px.retry_after)
            wv_res_header(res, "Retry-After", px.retry_after);
        wv_res_header(res, "x-amz-request-id", "PROXYFAULT");
        if (px.fail_extra)
            wv_res_header(res, "Location", "http://127.0.0.1:1/elsewhere");
        char xml[512];
        snprintf(xml, sizeof xml,
                 "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>%s</Code><Message>"
                 "Injected by the test's proxy</Message>%s</Error>",
                 px.fail_code, px.fail_extra ? px.fail_extra : "");
        return wv_res_send(res, px.fail_status, "application/xml", xml, strlen(xml));
    }
    if (!is_part)
        return forward(req, res);
    px.parts++;
    px.parts_in_flight++;
    if (px.parts_in_flight > px.max_parts_in_flight)
        px.max_parts_in_flight = px.parts_in_flight;
    if (px.part_delay_ms)
        wv_sleep_ms(px.part_delay_ms);
    int rc = forward(req, res);
    px.parts_in_flight--;
    if (px.source_read && px.source_read_at_first_part < 0)
        px.source_read_at_first_part = *px.source_read;
    return rc;
}

static int proxy_start(void)
{
    memset(&px, 0, sizeof px);
    px.upstream = endpoint;
    px.source_read_at_first_part = -1;
    return peer_proxy_start(&px.base, proxy_handler);
}

static void proxy_stop(void)
{
    peer_proxy_stop(&px.base);
}

static wv_s3 *proxied_client(const wv_s3_opts *extra)
{
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d", px.base.port);
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

/* ------------------------------------------------------------ objects */

static int put_get_body(void)
{
    wv_s3 *s3 = client(NULL);
    REQUIRE(s3 != NULL);
    size_t n = 100000;
    void *data = pattern_block(n, 1);
    wv_httpc_header meta[] = {{"Owner", "weave tests"}, {"run", "42"}};
    int64_t before = (int64_t)time(NULL);
    CHECK_EQ(wv_s3_put(s3, BUCKET, "objects/first.bin", data, n,
                       &(wv_s3_put_opts){.content_type = "application/x-weave-test",
                                         .metadata = meta,
                                         .nmetadata = 2}),
             0);
    wv_s3_object o;
    CHECK_EQ(wv_s3_get(s3, BUCKET, "objects/first.bin", &o), 0);
    CHECK_EQ(o.body.n, n);
    CHECK(o.body.n == n && memcmp(o.body.p, data, n) == 0);
    CHECK_EQ(o.size, (int64_t)n);
    char md5[33], etag[40];
    md5_hex(data, n, md5);
    snprintf(etag, sizeof etag, "\"%s\"", md5);
    CHECK_STR_EQ(o.etag, etag); /* a single PUT's ETag is its MD5 */
    CHECK_STR_EQ(o.content_type, "application/x-weave-test");
    CHECK_STR_EQ(wv_s3_object_meta(&o, "owner"), "weave tests");
    CHECK_STR_EQ(wv_s3_object_meta(&o, "RUN"), "42");
    CHECK(wv_s3_object_meta(&o, "absent") == NULL);
    CHECK_BETWEEN(o.last_modified, before - 2, before + 60);
    wv_s3_object_free(&o);

    wv_s3_object h;
    CHECK_EQ(wv_s3_head(s3, BUCKET, "objects/first.bin", &h), 0);
    CHECK_EQ(h.body.n, 0);
    CHECK_EQ(h.size, (int64_t)n);
    CHECK_STR_EQ(h.etag, etag);
    CHECK_STR_EQ(wv_s3_object_meta(&h, "owner"), "weave tests");
    wv_s3_object_free(&h);
    wv_s3_object_free(&h); /* twice: harmless */
    free(data);
    wv_s3_free(s3);
    return 0;
}

static void test_s3_put_then_get_returns_bytes_etag_type_date_and_metadata(void **state)
{
    run(put_get_body);
}

static const char *const odd_keys[] = {
    "spaces/a b  c.txt",
    "unicode/caf\xC3\xA9/\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E \xF0\x9F\x98\x80.txt",
    "reserved/a+b=c&d?e#f%g:h@i!j$k'l(m)n*o,p;q[r]s~t_u-v.w",
    "percent/%20 is not a space",
    "dots/...hidden/.x/y..",
    "trailing/slash/",
};

static int odd_keys_body(void)
{
    wv_s3 *s3 = client(NULL);
    REQUIRE(s3 != NULL);
    for (size_t i = 0; i < ARRAY_LEN(odd_keys); i++) {
        const char *k = odd_keys[i];
        CHECK_EQ(wv_s3_put(s3, BUCKET, k, k, strlen(k), NULL), 0);
        wv_s3_object o;
        if (!CHECK_EQ(wv_s3_get(s3, BUCKET, k, &o), 0)) {
            fprintf(stderr, "  key %s: %s\n", k, wv_errmsg());
            continue;
        }
        CHECK(o.body.n == strlen(k) && memcmp(o.body.p, k, o.body.n) == 0);
        wv_s3_object_free(&o);
        /* listed back under its own name */
        wv_s3_list_page page = {0};
        CHECK_EQ(wv_s3_list(s3, BUCKET, &(wv_s3_list_opts){.prefix = k}, &page), 0);
        CHECK_EQ(page.nobjects, 1);
        if (page.nobjects == 1)
            CHECK_STR_EQ(page.objects[0].key, k);
        wv_s3_list_free(&page);
    }
    wv_s3_free(s3);
    return 0;
}

static void test_s3_keys_with_spaces_unicode_and_reserved_characters_round_trip(void **state)
{
    run(odd_keys_body);
}

static int empty_body(void)
{
    wv_s3 *s3 = client(NULL);
    REQUIRE(s3 != NULL);
    CHECK_EQ(wv_s3_put(s3, BUCKET, "empty", NULL, 0, NULL), 0);
    wv_s3_object o;
    CHECK_EQ(wv_s3_get(s3, BUCKET, "empty", &o), 0);
    CHECK_EQ(o.body.n, 0);
    CHECK_EQ(o.size, 0);
    CHECK_STR_EQ(o.etag, "\"d41d8cd98f00b204e9800998ecf8427e\"");
    wv_s3_object_free(&o);
    CHECK_EQ(wv_s3_head(s3, BUCKET, "empty", &o), 0);
    CHECK_EQ(o.size, 0);
    wv_s3_object_free(&o);
    wv_s3_free(s3);
    return 0;
}

static void test_s3_empty_object_round_trips(void **state)
{
    run(empty_body);
}

static int range_body(void)
{
    wv_s3 *s3 = client(NULL);
    REQUIRE(s3 != NULL);
    size_t n = 10000;
    unsigned char *data = pattern_block(n, 7);
    CHECK_EQ(wv_s3_put(s3, BUCKET, "ranged", data, n, NULL), 0);
    wv_s3_object o;
    CHECK_EQ(wv_s3_get_range(s3, BUCKET, "ranged", 1000, 100, &o), 0);
    CHECK(o.body.n == 100 && memcmp(o.body.p, data + 1000, 100) == 0);
    CHECK_EQ(o.size, (int64_t)n); /* the whole object's */
    wv_s3_object_free(&o);
    CHECK_EQ(wv_s3_get_range(s3, BUCKET, "ranged", 9990, 100, &o), 0); /* cut at the end */
    CHECK(o.body.n == 10 && memcmp(o.body.p, data + 9990, 10) == 0);
    wv_s3_object_free(&o);
    CHECK_EQ(wv_s3_get_range(s3, BUCKET, "ranged", 9000, 0, &o), 0); /* to the end */
    CHECK(o.body.n == 1000 && memcmp(o.body.p, data + 9000, 1000) == 0);
    wv_s3_object_free(&o);
    CHECK_EQ(wv_s3_get_range(s3, BUCKET, "ranged", 20000, 10, &o), -ERANGE);
    CHECK_MSG_HAS("InvalidRange");
    CHECK_EQ(wv_s3_get_range(s3, BUCKET, "ranged", -1, 10, &o), -EINVAL);
    free(data);
    wv_s3_free(s3);
    return 0;
}

static void test_s3_get_range_returns_the_slice_and_the_objects_size(void **state)
{
    run(range_body);
}

static int missing_body(void)
{
    wv_s3 *s3 = client(NULL);
    REQUIRE(s3 != NULL);
    wv_s3_object o;
    CHECK_EQ(wv_s3_get(s3, BUCKET, "no/such/key", &o), -ENOENT);
    CHECK_MSG_HAS("S3 GET " BUCKET "/no/such/key: NoSuchKey: The specified key does not exist.");
    CHECK_MSG_HAS("HTTP 404");
    CHECK(o.body.n == 0 && o.etag == NULL); /* empty */
    CHECK_EQ(wv_s3_head(s3, BUCKET, "no/such/key", &o), -ENOENT);
    CHECK_MSG_HAS("HTTP 404");
    CHECK_EQ(wv_s3_get(s3, "no-such-bucket", "k", &o), -ENOENT);
    CHECK_MSG_HAS("NoSuchBucket");
    wv_s3_list_page page = {0};
    CHECK_EQ(wv_s3_list(s3, "no-such-bucket", NULL, &page), -ENOENT);
    CHECK_EQ(page.nobjects, 0);
    wv_s3_free(s3);

    /* an access key the server does not know */
    wv_s3 *stranger = client(&(wv_s3_opts){.access_key = "AKIDUNKNOWN", .secret_key = "whatever"});
    REQUIRE(stranger != NULL);
    CHECK_EQ(wv_s3_put(stranger, BUCKET, "k", "x", 1, NULL), -EACCES);
    CHECK_MSG_HAS("InvalidAccessKeyId");
    CHECK_EQ(wv_s3_head(stranger, BUCKET, "objects/first.bin", &o), -EACCES);
    wv_s3_free(stranger);
    return 0;
}

static void test_s3_refusals_are_errnos_with_the_services_code_and_message(void **state)
{
    run(missing_body);
}

static int delete_body(void)
{
    wv_s3 *s3 = client(NULL);
    REQUIRE(s3 != NULL);
    CHECK_EQ(wv_s3_put(s3, BUCKET, "doomed", "bye", 3, NULL), 0);
    CHECK_EQ(wv_s3_delete(s3, BUCKET, "doomed"), 0);
    wv_s3_object o;
    CHECK_EQ(wv_s3_get(s3, BUCKET, "doomed", &o), -ENOENT);
    CHECK_EQ(wv_s3_delete(s3, BUCKET, "doomed"), 0); /* again: as S3, no error */
    wv_s3_free(s3);
    return 0;
}

static void test_s3_delete_removes_the_object_and_deleting_again_succeeds(void **state)
{
    run(delete_body);
}

static int copy_body(void)
{
    wv_s3 *s3 = client(NULL);
    REQUIRE(s3 != NULL);
    wv_httpc_header meta[] = {{"colour", "blue"}};
    CHECK_EQ(wv_s3_put(
                 s3, BUCKET, "copy/source file", "original", 8,
                 &(wv_s3_put_opts){.content_type = "text/plain", .metadata = meta, .nmetadata = 1}),
             0);
    /* kept: the source's type and metadata */
    CHECK_EQ(wv_s3_copy(s3, BUCKET, "copy/source file", "other-bucket", "copied/kept", NULL), 0);
    wv_s3_object o;
    CHECK_EQ(wv_s3_get(s3, "other-bucket", "copied/kept", &o), 0);
    CHECK(o.body.n == 8 && memcmp(o.body.p, "original", 8) == 0);
    CHECK_STR_EQ(o.content_type, "text/plain");
    CHECK_STR_EQ(wv_s3_object_meta(&o, "colour"), "blue");
    wv_s3_object_free(&o);
    /* replaced: o's */
    wv_httpc_header meta2[] = {{"shape", "round"}};
    CHECK_EQ(wv_s3_copy(s3, BUCKET, "copy/source file", BUCKET, "copy/replaced",
                        &(wv_s3_put_opts){.content_type = "application/x-other",
                                          .metadata = meta2,
                                          .nmetadata = 1}),
             0);
    CHECK_EQ(wv_s3_head(s3, BUCKET, "copy/replaced", &o), 0);
    CHECK_STR_EQ(o.content_type, "application/x-other");
    CHECK_STR_EQ(wv_s3_object_meta(&o, "shape"), "round");
    CHECK(wv_s3_object_meta(&o, "colour") == NULL);
    wv_s3_object_free(&o);
    CHECK_EQ(wv_s3_copy(s3, BUCKET, "copy/not there", BUCKET, "copy/x", NULL), -ENOENT);
    CHECK_MSG_HAS("NoSuchKey");
    wv_s3_free(s3);
    return 0;
}

static void test_s3_copy_keeps_or_replaces_type_and_metadata(void **state)
{
    run(copy_body);
}

/* ------------------------------------------------------------ listing */

static int list_body(void)
{
    wv_s3 *s3 = client(NULL);
    REQUIRE(s3 != NULL);
    /* 23 keys: 20 in three "folders" and 3 at the top of the prefix */
    char key[64];
    int made = 0;
    for (int d = 0; d < 3; d++)
        for (int i = 0; i < (d == 2 ? 6 : 7); i++, made++) {
            snprintf(key, sizeof key, "list/dir%d/key %02d", d, i);
            CHECK_EQ(wv_s3_put(s3, BUCKET, key, key, strlen(key), NULL), 0);
        }
    for (int i = 0; i < 3; i++, made++) {
        snprintf(key, sizeof key, "list/top-%d", i);
        CHECK_EQ(wv_s3_put(s3, BUCKET, key, "t", 1, NULL), 0);
    }
    CHECK_EQ(made, 23);

    /* pages of 10: 10, 10, 3, every key once and in order */
    wv_s3_list_page page = {0};
    wv_s3_list_opts lo = {.prefix = "list/", .max_keys = 10};
    int pages = 0, seen = 0;
    char last[64] = "";
    do {
        if (!CHECK_EQ(wv_s3_list(s3, BUCKET, &lo, &page), 0)) {
            fprintf(stderr, "  %s\n", wv_errmsg());
            break;
        }
        pages++;
        CHECK_EQ(page.nobjects, pages < 3 ? 10 : 3);
        for (size_t i = 0; i < page.nobjects; i++) {
            CHECK(strcmp(page.objects[i].key, last) > 0);
            snprintf(last, sizeof last, "%s", page.objects[i].key);
            CHECK_EQ(page.objects[i].size,
                     strncmp(last, "list/top", 8) == 0 ? 1 : (int64_t)strlen(last));
            CHECK(page.objects[i].etag[0] == '"');
            CHECK(page.objects[i].last_modified > 1700000000);
            seen++;
        }
        CHECK_EQ(page.truncated, pages < 3);
        CHECK_EQ(page.next_token != NULL, pages < 3);
        lo.continuation_token = page.next_token; /* points into page: used before it goes */
    } while (page.truncated && pages < 10);
    CHECK_EQ(pages, 3);
    CHECK_EQ(seen, 23);
    CHECK_STR_EQ(last, "list/top-2");

    /* a delimiter: the folders as common prefixes, the top keys as keys */
    CHECK_EQ(wv_s3_list(s3, BUCKET, &(wv_s3_list_opts){.prefix = "list/", .delimiter = "/"}, &page),
             0);
    CHECK_EQ(page.nprefixes, 3);
    if (page.nprefixes == 3) {
        CHECK_STR_EQ(page.prefixes[0], "list/dir0/");
        CHECK_STR_EQ(page.prefixes[2], "list/dir2/");
    }
    CHECK_EQ(page.nobjects, 3);
    CHECK_EQ(page.truncated, false);
    /* start-after */
    CHECK_EQ(wv_s3_list(s3, BUCKET,
                        &(wv_s3_list_opts){.prefix = "list/", .start_after = "list/dir2/key 05"},
                        &page),
             0);
    CHECK_EQ(page.nobjects, 3);
    if (page.nobjects)
        CHECK_STR_EQ(page.objects[0].key, "list/top-0");
    /* a prefix nothing has */
    CHECK_EQ(wv_s3_list(s3, BUCKET, &(wv_s3_list_opts){.prefix = "list/none/"}, &page), 0);
    CHECK_EQ(page.nobjects, 0);
    CHECK_EQ(page.nprefixes, 0);
    wv_s3_list_free(&page);
    wv_s3_list_free(&page);
    wv_s3_free(s3);
    return 0;
}

static void test_s3_list_pages_with_tokens_prefixes_delimiter_and_start_after(void **state)
{
    run(list_body);
}

/* ------------------------------------------------------------ parts */

typedef struct gen_source {
    size_t total, at, chunk; /* chunk: the most one read gives (odd sizes) */
    size_t fail_at;          /* fail with -EIO once this much was given (0: never) */
    int64_t read;            /* bytes given so far */
} gen_source;

static ssize_t gen_read(void *arg, void *buf, size_t n)
{
    gen_source *g = arg;
    if (g->fail_at && g->at >= g->fail_at)
        return wv_fail(-EIO, "the test's source broke at byte %zu", g->at);
    size_t left = g->total - g->at;
    if (n > left)
        n = left;
    if (g->chunk && n > g->chunk)
        n = g->chunk;
    unsigned char *p = buf;
    for (size_t i = 0; i < n; i++)
        p[i] = pattern(g->at + i);
    g->at += n;
    g->read = (int64_t)g->at;
    wv_yield(); /* a source may suspend */
    return (ssize_t)n;
}

/* The object at key equals the pattern of total bytes. */
static bool object_is_pattern(wv_s3 *s3, const char *key, size_t total)
{
    wv_s3_object o;
    if (!CHECK_EQ(wv_s3_get(s3, BUCKET, key, &o), 0))
        return false;
    bool same = o.body.n == total;
    for (size_t i = 0; same && i < total; i++)
        same = (unsigned char)o.body.p[i] == pattern(i);
    wv_s3_object_free(&o);
    return CHECK(same);
}

static int upload_body(void)
{
    wv_s3 *s3 = client(&(wv_s3_opts){.max_object = 64 << 20});
    REQUIRE(s3 != NULL);
    /* 17 MiB + 3 in reads of odd sizes: four parts, the last short */
    size_t total = 17 * MIB + 3;
    gen_source g = {.total = total, .chunk = 1000003};
    CHECK_EQ(wv_s3_upload(s3, BUCKET, "parts/seventeen", &(wv_s3_source){gen_read, &g}, NULL), 0);
    CHECK_EQ(g.at, total);
    object_is_pattern(s3, "parts/seventeen", total);
    wv_s3_object h;
    CHECK_EQ(wv_s3_head(s3, BUCKET, "parts/seventeen", &h), 0);
    CHECK_EQ(h.size, (int64_t)total);
    wv_s3_object_free(&h);
    /* a source that ends within the first part: one PUT */
    gen_source small = {.total = 1234};
    CHECK_EQ(wv_s3_upload(s3, BUCKET, "parts/small", &(wv_s3_source){gen_read, &small}, NULL), 0);
    object_is_pattern(s3, "parts/small", 1234);
    gen_source none = {.total = 0};
    CHECK_EQ(wv_s3_upload(s3, BUCKET, "parts/none", &(wv_s3_source){gen_read, &none}, NULL), 0);
    object_is_pattern(s3, "parts/none", 0);
    /* exactly one part's worth */
    gen_source one = {.total = PART};
    CHECK_EQ(wv_s3_upload(s3, BUCKET, "parts/one", &(wv_s3_source){gen_read, &one}, NULL), 0);
    object_is_pattern(s3, "parts/one", PART);
    wv_s3_free(s3);
    return 0;
}

static void test_s3_upload_in_parts_reassembles_the_source_whatever_its_reads(void **state)
{
    run(upload_body);
}

static int checksum_body(void)
{
    /* each setting sends its checksums (the proxy checks each against the
     * body, which s3rver does not), and stores the same bytes */
    const wv_s3_checksum kinds[] = {WV_S3_CHECKSUM_MD5, WV_S3_CHECKSUM_SHA256, WV_S3_CHECKSUM_NONE};
    for (size_t i = 0; i < ARRAY_LEN(kinds); i++) {
        px.sha256_hex_ok = px.md5_ok = px.sha256_b64_ok = px.checksum_bad = 0;
        wv_s3 *s3 = proxied_client(&(wv_s3_opts){.checksum = kinds[i], .max_object = 64 << 20});
        REQUIRE(s3 != NULL);
        gen_source g = {.total = 11 * MIB};
        CHECK_EQ(wv_s3_upload(s3, BUCKET, "checksums/multi", &(wv_s3_source){gen_read, &g}, NULL),
                 0);
        void *data = pattern_block(5000, 0);
        CHECK_EQ(wv_s3_put(s3, BUCKET, "checksums/single", data, 5000, NULL), 0);
        free(data);
        /* 3 parts and a PUT carry a body checksum; every request with a
         * body (and the create and complete) a signed SHA-256 */
        CHECK_EQ(px.checksum_bad, 0);
        CHECK_EQ(px.sha256_hex_ok, 6);
        CHECK_EQ(px.md5_ok, kinds[i] == WV_S3_CHECKSUM_MD5 ? 4 : 0);
        CHECK_EQ(px.sha256_b64_ok, kinds[i] == WV_S3_CHECKSUM_SHA256 ? 4 : 0);
        object_is_pattern(s3, "checksums/multi", 11 * MIB);
        object_is_pattern(s3, "checksums/single", 5000);
        wv_s3_free(s3);
    }
    return 0;
}

static void test_s3_every_checksum_setting_sends_checksums_that_match_the_bodies(void **state)
{
    run_proxied(checksum_body);
}

static char tmp_path[256];

static int files_body(void)
{
    wv_s3 *s3 = client(NULL);
    REQUIRE(s3 != NULL);
    char src[256], dst[256];
    snprintf(src, sizeof src, "%s/upload.bin", dir);
    snprintf(dst, sizeof dst, "%s/download.bin", dir);
    size_t total = 13 * MIB + 777;
    void *data = pattern_block(total, 0);
    FILE *f = fopen(src, "wb");
    REQUIRE(f != NULL);
    CHECK_EQ(fwrite(data, 1, total, f), total);
    fclose(f);
    CHECK_EQ(wv_s3_put_file(s3, BUCKET, "files/thirteen", src, NULL), 0);
    CHECK_EQ(wv_s3_get_file(s3, BUCKET, "files/thirteen", dst), 0);
    f = fopen(dst, "rb");
    REQUIRE(f != NULL);
    void *back = malloc(total + 1);
    CHECK_EQ(fread(back, 1, total + 1, f), total);
    fclose(f);
    CHECK(memcmp(back, data, total) == 0);
    free(back);

    /* a failed download leaves the file as it was, and no temporary file */
    f = fopen(dst, "wb");
    fputs("precious", f);
    fclose(f);
    CHECK_EQ(wv_s3_get_file(s3, BUCKET, "files/missing", dst), -ENOENT);
    f = fopen(dst, "rb");
    char old[16] = "";
    CHECK(fgets(old, sizeof old, f) != NULL);
    fclose(f);
    CHECK_STR_EQ(old, "precious");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "ls -a %s | grep -c weave- > %s/count.txt", dir, dir);
    CHECK(system(cmd) >= 0);
    snprintf(tmp_path, sizeof tmp_path, "%s/count.txt", dir);
    f = fopen(tmp_path, "r");
    int leftovers = -1;
    CHECK(f && fscanf(f, "%d", &leftovers) == 1);
    if (f)
        fclose(f);
    CHECK_EQ(leftovers, 0);

    CHECK_EQ(wv_s3_put_file(s3, BUCKET, "files/x", "/nonexistent/file", NULL), -ENOENT);
    CHECK_MSG_HAS("/nonexistent/file");
    CHECK_EQ(wv_s3_put_file(s3, BUCKET, "files/x", dir, NULL), -EINVAL); /* a directory */
    free(data);
    wv_s3_free(s3);
    return 0;
}

static void test_s3_put_file_and_get_file_round_trip_and_a_failed_get_leaves_the_file(void **state)
{
    run(files_body);
}

typedef struct sink_log {
    wv_buf bytes;
    size_t writes[16];
    int nwrites;
    int fail_on; /* fail the n-th write (1-based), 0: never */
} sink_log;

static int sink_write(void *arg, const void *buf, size_t n)
{
    sink_log *s = arg;
    if (s->nwrites < 16)
        s->writes[s->nwrites] = n;
    s->nwrites++;
    if (s->fail_on && s->nwrites == s->fail_on)
        return wv_fail(-ENOSPC, "the test's sink is full");
    return wv_buf_append(&s->bytes, buf, n);
}

static int download_body(void)
{
    wv_s3 *s3 = client(NULL);
    REQUIRE(s3 != NULL);
    size_t total = 12 * MIB + 5;
    gen_source g = {.total = total};
    CHECK_EQ(wv_s3_upload(s3, BUCKET, "download/twelve", &(wv_s3_source){gen_read, &g}, NULL), 0);
    sink_log s = {0};
    int64_t size = -1;
    CHECK_EQ(wv_s3_download(s3, BUCKET, "download/twelve", &(wv_s3_sink){sink_write, &s}, &size),
             0);
    CHECK_EQ(size, (int64_t)total);
    CHECK_EQ(s.nwrites, 3); /* 5 MiB, 5 MiB, 2 MiB + 5, in order */
    CHECK_EQ(s.writes[0], PART);
    CHECK_EQ(s.writes[1], PART);
    CHECK_EQ(s.writes[2], total - 2 * PART);
    bool same = s.bytes.n == total;
    for (size_t i = 0; same && i < total; i++)
        same = (unsigned char)s.bytes.p[i] == pattern(i);
    CHECK(same);
    wv_buf_free(&s.bytes);

    /* the sink's error ends the download */
    sink_log full = {.fail_on = 2};
    CHECK_EQ(wv_s3_download(s3, BUCKET, "download/twelve", &(wv_s3_sink){sink_write, &full}, &size),
             -ENOSPC);
    CHECK_MSG_HAS("the test's sink is full");
    CHECK_EQ(full.nwrites, 2);
    CHECK_EQ(size, 0);
    wv_buf_free(&full.bytes);
    /* an empty object: no write */
    CHECK_EQ(wv_s3_put(s3, BUCKET, "download/empty", "", 0, NULL), 0);
    sink_log e = {0};
    CHECK_EQ(wv_s3_download(s3, BUCKET, "download/empty", &(wv_s3_sink){sink_write, &e}, &size), 0);
    CHECK_EQ(e.nwrites, 0);
    CHECK_EQ(size, 0);
    sink_log m = {0};
    CHECK_EQ(wv_s3_download(s3, BUCKET, "download/missing", &(wv_s3_sink){sink_write, &m}, NULL),
             -ENOENT);
    wv_s3_free(s3);
    return 0;
}

static void test_s3_download_hands_ranges_to_the_sink_in_order(void **state)
{
    run(download_body);
}

static int too_big_body(void)
{
    wv_s3 *s3 = client(&(wv_s3_opts){.max_object = 1000});
    REQUIRE(s3 != NULL);
    void *data = pattern_block(2000, 0);
    CHECK_EQ(wv_s3_put(s3, BUCKET, "big/two-thousand", data, 2000, NULL), 0);
    wv_s3_object o;
    CHECK_EQ(wv_s3_get(s3, BUCKET, "big/two-thousand", &o), -EMSGSIZE);
    CHECK_MSG_HAS("larger than the limit of 1000 bytes");
    CHECK_EQ(o.body.n, 0);
    /* a range within the limit is fine */
    CHECK_EQ(wv_s3_get_range(s3, BUCKET, "big/two-thousand", 500, 1000, &o), 0);
    CHECK_EQ(o.body.n, 1000);
    wv_s3_object_free(&o);
    free(data);
    wv_s3_free(s3);
    return 0;
}

static void test_s3_object_over_max_object_is_emsgsize(void **state)
{
    run(too_big_body);
}

static wv_s3 *shared;

static int per_shard(void *arg)
{
    char key[64], body[64];
    for (int i = 0; i < 20; i++) {
        /* a key per round: s3rver can answer a GET of an object it is still
         * overwriting with an empty body, which is not what this tests */
        snprintf(key, sizeof key, "shards/%d/%d", wv_shard_id(), i);
        int n = snprintf(body, sizeof body, "shard %d, round %d", wv_shard_id(), i);
        REQUIRE_EQ(wv_s3_put(shared, BUCKET, key, body, (size_t)n, NULL), 0);
        wv_s3_object o;
        REQUIRE_EQ(wv_s3_get(shared, BUCKET, key, &o), 0);
        CHECK(o.body.n == (size_t)n && memcmp(o.body.p, body, (size_t)n) == 0);
        wv_s3_object_free(&o);
    }
    return 0;
}

static int shards_main(void *arg)
{
    shared = client(NULL);
    REQUIRE(shared != NULL);
    CHECK_EQ(wv_shard_count(), 2);
    CHECK_EQ(wv_shard_each(per_shard, NULL), 0);
    wv_s3_free(shared);
    return 0;
}

static void test_s3_one_client_serves_every_shard_at_once(void **state)
{
    assert_int_equal(run_in_rt(2, shards_main, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ presigned, GCS, TLS */

static int presign_body(void)
{
    wv_s3 *s3 = client(NULL);
    REQUIRE(s3 != NULL);
    char *put_url, *get_url, *head_url;
    CHECK_EQ(wv_s3_presign(s3, "PUT", BUCKET, "presigned/a b+c.txt", 300, &put_url), 0);
    CHECK_EQ(wv_s3_presign(s3, "GET", BUCKET, "presigned/a b+c.txt", 300, &get_url), 0);
    CHECK_EQ(wv_s3_presign(s3, "HEAD", BUCKET, "presigned/a b+c.txt", 300, &head_url), 0);
    /* used by a plain HTTP client, no credentials, no other headers */
    wv_httpc_response r;
    CHECK_EQ(wv_httpc_request(&(wv_httpc_req){.method = "PUT",
                                              .url = put_url,
                                              .body = "through a presigned URL",
                                              .body_len = 23},
                              &r),
             0);
    CHECK_EQ(r.status, 200);
    wv_httpc_response_free(&r);
    CHECK_EQ(wv_httpc_get(get_url, &r), 0);
    CHECK_EQ(r.status, 200);
    CHECK(r.body.n == 23 && memcmp(r.body.p, "through a presigned URL", 23) == 0);
    wv_httpc_response_free(&r);
    CHECK_EQ(wv_httpc_request(&(wv_httpc_req){.method = "HEAD", .url = head_url}, &r), 0);
    CHECK_EQ(r.status, 200);
    wv_httpc_response_free(&r);
    /* and what was put is the object */
    wv_s3_object o;
    CHECK_EQ(wv_s3_get(s3, BUCKET, "presigned/a b+c.txt", &o), 0);
    CHECK_EQ(o.body.n, 23);
    wv_s3_object_free(&o);
    free(put_url);
    free(get_url);
    free(head_url);
    wv_s3_free(s3);
    return 0;
}

static void test_s3_presigned_put_get_and_head_urls_work_without_credentials(void **state)
{
    run(presign_body);
}

static int gcs_body(void)
{
    wv_s3_location loc;
    REQUIRE_EQ(wv_s3_location_parse("gs://" BUCKET "/gcs/object.txt", &loc), 0);
    CHECK_EQ(loc.provider, WV_S3_GCS);
    /* GCS's settings (region "auto", path style, Content-MD5) against the
     * local server standing in for storage.googleapis.com */
    wv_s3 *gcs = client(
        &(wv_s3_opts){.provider = loc.provider, .access_key = S3_AKID, .secret_key = S3_TOKEN});
    REQUIRE(gcs != NULL);
    CHECK_EQ(wv_s3_put(gcs, loc.bucket, loc.key, "hello gcs", 9, NULL), 0);
    wv_s3_object o;
    CHECK_EQ(wv_s3_get(gcs, loc.bucket, loc.key, &o), 0);
    CHECK(o.body.n == 9 && memcmp(o.body.p, "hello gcs", 9) == 0);
    wv_s3_object_free(&o);
    wv_s3_list_page page = {0};
    CHECK_EQ(wv_s3_list(gcs, loc.bucket, &(wv_s3_list_opts){.prefix = "gcs/"}, &page), 0);
    CHECK_EQ(page.nobjects, 1);
    wv_s3_list_free(&page);
    gen_source g = {.total = 6 * MIB};
    CHECK_EQ(wv_s3_upload(gcs, loc.bucket, "gcs/parts", &(wv_s3_source){gen_read, &g}, NULL), 0);
    sink_log s = {0};
    CHECK_EQ(wv_s3_download(gcs, loc.bucket, "gcs/parts", &(wv_s3_sink){sink_write, &s}, NULL), 0);
    CHECK_EQ(s.bytes.n, 6 * MIB);
    wv_buf_free(&s.bytes);
    wv_s3_location_free(&loc);
    wv_s3_free(gcs);
    return 0;
}

static void test_s3_gcs_provider_and_gs_urls_make_the_same_calls(void **state)
{
    run(gcs_body);
}

static char tls_endpoint[128], tls_dir[160];

static int tls_body(void)
{
    wv_s3 *s3 = client_for(tls_endpoint, &(wv_s3_opts){.ca_file = ca_file});
    REQUIRE(s3 != NULL);
    CHECK_EQ(wv_s3_put(s3, BUCKET, "tls/object", "over TLS", 8, NULL), 0);
    wv_s3_object o;
    CHECK_EQ(wv_s3_get(s3, BUCKET, "tls/object", &o), 0);
    CHECK(o.body.n == 8 && memcmp(o.body.p, "over TLS", 8) == 0);
    wv_s3_object_free(&o);
    wv_s3_free(s3);
    /* without the test CA, the certificate does not verify */
    wv_s3 *strict = client_for(tls_endpoint, NULL);
    REQUIRE(strict != NULL);
    CHECK_EQ(wv_s3_get(strict, BUCKET, "tls/object", &o), -EPROTO);
    CHECK_MSG_HAS("certificate");
    wv_s3_free(strict);
    return 0;
}

static void test_s3_over_tls_the_servers_certificate_is_verified(void **state)
{
    run(tls_body);
}

static int tls_up(void **state)
{
    snprintf(tls_dir, sizeof tls_dir, "%s/tls-server", dir);
    return s3rver_start(tls_dir, true, tls_endpoint, sizeof tls_endpoint);
}

static int tls_down(void **state)
{
    s3rver_stop(tls_dir);
    return 0;
}

/* ------------------------------------------------------------ faults */

static int slowdown_body(void)
{
    /* two SlowDowns, then through: the third try stores it */
    px.fail_status = 503;
    px.fail_code = "SlowDown";
    px.fail_times = 2;
    wv_s3 *s3 = proxied_client(NULL);
    REQUIRE(s3 != NULL);
    int64_t t0 = wv_now();
    CHECK_EQ(wv_s3_put(s3, BUCKET, "faults/slow", "patience", 8, NULL), 0);
    CHECK_EQ(px.faults, 2);
    CHECK_EQ(px.requests, 3);
    wv_s3_object o;
    CHECK_EQ(wv_s3_get(s3, BUCKET, "faults/slow", &o), 0);
    CHECK_EQ(o.body.n, 8);
    wv_s3_object_free(&o);
    /* a Retry-After is waited for */
    px.fail_times = 1;
    px.retry_after = "1";
    px.requests = px.faults = 0;
    t0 = wv_now();
    CHECK_EQ(wv_s3_put(s3, BUCKET, "faults/slow", "patience", 8, NULL), 0);
    CHECK_BETWEEN(ms_since(t0), 1000, 5000);
    CHECK_EQ(px.requests, 2);
    px.retry_after = NULL;
    /* SlowDown every time: -EAGAIN after max_attempts (4) */
    px.fail_times = -1;
    px.requests = px.faults = 0;
    CHECK_EQ(wv_s3_put(s3, BUCKET, "faults/slow", "patience", 8, NULL), -EAGAIN);
    CHECK_MSG_HAS("SlowDown: Injected by the test's proxy (HTTP 503, request id PROXYFAULT)");
    CHECK_MSG_HAS("(after 4 tries)");
    CHECK_EQ(px.requests, 4);
    /* 500 InternalError every time: -EIO, also after 4 tries */
    px.fail_status = 500;
    px.fail_code = "InternalError";
    px.requests = 0;
    CHECK_EQ(wv_s3_put(s3, BUCKET, "faults/slow", "patience", 8, NULL), -EIO);
    CHECK_MSG_HAS("InternalError");
    CHECK_EQ(px.requests, 4);
    /* a refusal that will not change is not tried again */
    px.fail_status = 400;
    px.fail_code = "InvalidArgument";
    px.requests = 0;
    CHECK_EQ(wv_s3_put(s3, BUCKET, "faults/slow", "patience", 8, NULL), -EIO);
    CHECK_MSG_HAS("InvalidArgument");
    CHECK_EQ(px.requests, 1);
    /* a bucket in another region: not followed, and the error says where */
    px.fail_status = 301;
    px.fail_code = "PermanentRedirect";
    px.fail_extra = "<Endpoint>test-bucket.s3.eu-west-1.amazonaws.com</Endpoint>";
    px.requests = 0;
    CHECK_EQ(wv_s3_put(s3, BUCKET, "faults/slow", "patience", 8, NULL), -EIO);
    CHECK_MSG_HAS("PermanentRedirect: Injected by the test's proxy; the bucket is served at "
                  "test-bucket.s3.eu-west-1.amazonaws.com (HTTP 301");
    CHECK_EQ(px.requests, 1);
    px.fail_extra = NULL;
    px.fail_times = 0;
    wv_s3_free(s3);
    return 0;
}

static void
test_s3_slowdown_and_5xx_are_retried_with_backoff_others_and_redirects_are_not(void **state)
{
    run_proxied(slowdown_body);
}

static int failed_part_body(void)
{
    /* part 2 refused every time: the upload fails and is aborted */
    px.fail_status = 500;
    px.fail_code = "InternalError";
    px.fail_times = -1;
    px.fail_part = 2;
    wv_s3 *s3 = proxied_client(NULL);
    REQUIRE(s3 != NULL);
    gen_source g = {.total = 16 * MIB};
    CHECK_EQ(wv_s3_upload(s3, BUCKET, "faults/failed-part", &(wv_s3_source){gen_read, &g}, NULL),
             -EIO);
    CHECK_MSG_HAS("S3 UPLOAD " BUCKET "/faults/failed-part (part 2): InternalError");
    CHECK_EQ(px.faults, 4); /* part 2's four tries */
    CHECK_EQ(px.completes, 0);
    CHECK_EQ(px.aborts, 1);
    CHECK(px.created_id[0] != '\0');
    CHECK_STR_EQ(px.aborted_id, px.created_id);
    px.fail_times = 0;
    wv_s3_object o;
    CHECK_EQ(wv_s3_head(s3, BUCKET, "faults/failed-part", &o), -ENOENT); /* nothing stored */
    wv_s3_free(s3);
    return 0;
}

static void test_s3_upload_whose_part_keeps_failing_is_aborted(void **state)
{
    run_proxied(failed_part_body);
}

static int source_error_body(void)
{
    wv_s3 *s3 = proxied_client(NULL);
    REQUIRE(s3 != NULL);
    gen_source g = {.total = 20 * MIB, .fail_at = PART + PART / 2};
    CHECK_EQ(wv_s3_upload(s3, BUCKET, "faults/source", &(wv_s3_source){gen_read, &g}, NULL), -EIO);
    CHECK_MSG_HAS("reading the source: the test's source broke at byte");
    CHECK_EQ(px.completes, 0);
    CHECK_EQ(px.aborts, 1);
    CHECK_STR_EQ(px.aborted_id, px.created_id);
    wv_s3_free(s3);
    return 0;
}

static void test_s3_upload_whose_source_fails_is_aborted_with_the_sources_error(void **state)
{
    run_proxied(source_error_body);
}

static int in_flight_body(void)
{
    /* each part held 150 ms, so the next ones go meanwhile: as many as
     * parts_in_flight, never more */
    px.part_delay_ms = 150;
    gen_source g = {.total = 7 * PART};
    px.source_read = &g.read;
    wv_s3 *s3 = proxied_client(&(wv_s3_opts){.parts_in_flight = 3, .max_object = 64 << 20});
    REQUIRE(s3 != NULL);
    CHECK_EQ(wv_s3_upload(s3, BUCKET, "faults/in-flight", &(wv_s3_source){gen_read, &g}, NULL), 0);
    CHECK_EQ(px.parts, 7);
    CHECK_EQ(px.max_parts_in_flight, 3); /* three at once, never more */
    /* memory: when the first part was answered, at most 3 parts had been read */
    CHECK_BETWEEN(px.source_read_at_first_part, (int64_t)PART, 3 * (int64_t)PART);
    CHECK_EQ(px.completes, 1);
    CHECK_EQ(px.aborts, 0);
    px.source_read = NULL;
    object_is_pattern(s3, "faults/in-flight", 7 * PART);
    wv_s3_free(s3);

    /* one in flight: one at a time */
    px.max_parts_in_flight = px.parts = 0;
    s3 = proxied_client(&(wv_s3_opts){.parts_in_flight = 1});
    REQUIRE(s3 != NULL);
    gen_source g1 = {.total = 3 * PART};
    CHECK_EQ(wv_s3_upload(s3, BUCKET, "faults/one-at-a-time", &(wv_s3_source){gen_read, &g1}, NULL),
             0);
    CHECK_EQ(px.parts, 3);
    CHECK_EQ(px.max_parts_in_flight, 1);
    wv_s3_free(s3);
    return 0;
}

static void test_s3_parts_travel_several_at_once_within_the_memory_bound(void **state)
{
    run_proxied(in_flight_body);
}

typedef struct cancel_job {
    wv_s3 *s3;
    gen_source g;
    int rc;
} cancel_job;

static int cancel_upload(void *arg)
{
    cancel_job *j = arg;
    j->rc = wv_s3_upload(j->s3, BUCKET, "faults/cancelled", &(wv_s3_source){gen_read, &j->g}, NULL);
    return 0;
}

static int cancel_body(void)
{
    px.part_delay_ms = 300;
    wv_s3 *s3 = proxied_client(NULL);
    REQUIRE(s3 != NULL);
    cancel_job j = {.s3 = s3, .g = {.total = 20 * MIB}, .rc = 1};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, cancel_upload, &j, NULL), 0);
    /* cancel once the first parts are on their way */
    for (int i = 0; i < 200 && px.parts == 0; i++)
        wv_sleep_ms(5);
    CHECK(px.parts > 0);
    int64_t t0 = wv_now();
    wv_group_cancel(g);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK(ms_since(t0) < 200); /* at once, not after the parts */
    CHECK_EQ(j.rc, -ECANCELED);
    /* the abort goes from a fiber of its own */
    for (int i = 0; i < 400 && px.aborts == 0; i++)
        wv_sleep_ms(5);
    CHECK_EQ(px.aborts, 1);
    CHECK_STR_EQ(px.aborted_id, px.created_id);
    CHECK_EQ(px.completes, 0);
    wv_s3_free(s3); /* the abort's fiber may still hold it: freed after */
    return 0;
}

static void test_s3_cancelled_upload_returns_at_once_and_is_aborted_in_the_background(void **state)
{
    run_proxied(cancel_body);
}

static int deadline_body(void)
{
    px.part_delay_ms = 400;
    wv_s3 *s3 = proxied_client(NULL);
    REQUIRE(s3 != NULL);
    gen_source g = {.total = 12 * MIB};
    int64_t t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(200));
    CHECK_EQ(wv_s3_upload(s3, BUCKET, "faults/deadline", &(wv_s3_source){gen_read, &g}, NULL),
             -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_BETWEEN(ms_since(t0), 190, 600);
    for (int i = 0; i < 400 && px.aborts == 0; i++)
        wv_sleep_ms(5);
    CHECK_EQ(px.aborts, 1);
    CHECK_STR_EQ(px.aborted_id, px.created_id);
    wv_s3_free(s3);
    return 0;
}

static void test_s3_upload_past_its_deadline_is_etimedout_on_time_and_still_aborted(void **state)
{
    run_proxied(deadline_body);
}

/* s3rver of its own, to freeze and kill */
static char doomed_endpoint[128], doomed_dir[160];

typedef struct doomed_job {
    wv_s3 *s3;
    int which;
    int rc;
    int64_t ended;
} doomed_job;

static int doomed_fiber(void *arg)
{
    doomed_job *j = arg;
    if (j->which % 2 == 0) {
        wv_s3_object o;
        j->rc = wv_s3_get(j->s3, BUCKET, "doomed/big", &o);
        wv_s3_object_free(&o);
    } else {
        gen_source g = {.total = 12 * MIB};
        j->rc = wv_s3_upload(j->s3, BUCKET, "doomed/upload", &(wv_s3_source){gen_read, &g}, NULL);
    }
    j->ended = wv_now();
    return 0;
}

static int killed_body(void)
{
    wv_s3 *s3 = client_for(doomed_endpoint, &(wv_s3_opts){.max_object = 64 << 20});
    REQUIRE(s3 != NULL);
    void *data = pattern_block(8 * MIB, 0);
    CHECK_EQ(wv_s3_put(s3, BUCKET, "doomed/big", data, 8 * MIB, NULL), 0);
    free(data);
    pid_t pid = peer_server_pid(doomed_dir);
    REQUIRE(pid > 0);
    /* freeze the server, start requests that will hang in it */
    REQUIRE_EQ(kill(pid, SIGSTOP), 0);
    doomed_job jobs[6];
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 6; i++) {
        jobs[i] = (doomed_job){.s3 = s3, .which = i, .rc = 1};
        CHECK_EQ(wv_group_spawn(g, doomed_fiber, &jobs[i], NULL), 0);
    }
    wv_sleep_ms(300);
    wv_httpc_stats st;
    wv_httpc_stats_get(&st);
    CHECK(st.in_flight >= 6); /* all of them inside a request */
    for (int i = 0; i < 6; i++)
        CHECK_EQ(jobs[i].rc, 1); /* none returned */
    int64_t killed = wv_now();
    kill(pid, SIGKILL);
    kill(pid, SIGCONT);
    int64_t old = wv_deadline_set(wv_after_ms(10000));
    CHECK_EQ(wv_group_join(g), 0);
    wv_deadline_set(old);
    wv_group_free(g);
    for (int i = 0; i < 6; i++) {
        if (!CHECK(jobs[i].rc == -ECONNRESET || jobs[i].rc == -ECONNREFUSED))
            fprintf(stderr, "  job %d: %d %s\n", i, jobs[i].rc, wv_strerror(jobs[i].rc));
        CHECK_BETWEEN((jobs[i].ended - killed) / NS_PER_MS, 0, 3000);
    }
    wv_s3_free(s3);
    return 0;
}

static int doomed_up(void **state)
{
    snprintf(doomed_dir, sizeof doomed_dir, "%s/doomed-server", dir);
    return s3rver_start(doomed_dir, false, doomed_endpoint, sizeof doomed_endpoint);
}

static int doomed_down(void **state)
{
    peer_server_kill(source_dir, "s3_test_server.sh", doomed_dir);
    return 0;
}

static void test_s3_server_killed_mid_request_fails_every_fiber_without_a_hang(void **state)
{
    run(killed_body);
}

static int frozen_body(void)
{
    wv_s3 *s3 = client_for(doomed_endpoint, NULL);
    REQUIRE(s3 != NULL);
    CHECK_EQ(wv_s3_put(s3, BUCKET, "frozen", "x", 1, NULL), 0);
    pid_t pid = peer_server_pid(doomed_dir);
    REQUIRE(pid > 0);
    REQUIRE_EQ(kill(pid, SIGSTOP), 0);
    int64_t t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(300));
    wv_s3_object o;
    CHECK_EQ(wv_s3_get(s3, BUCKET, "frozen", &o), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_BETWEEN(ms_since(t0), 290, 1000);
    kill(pid, SIGCONT);
    CHECK_EQ(wv_s3_get(s3, BUCKET, "frozen", &o), 0); /* and it works again */
    wv_s3_object_free(&o);
    wv_s3_free(s3);
    return 0;
}

static void test_s3_call_to_a_frozen_server_ends_at_the_deadline(void **state)
{
    run(frozen_body);
}

/* ------------------------------------------------------------ main */

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/weave-s3-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "bash %s/tests/make_certs.sh %s >/dev/null", source_dir, dir);
    if (system(cmd) != 0)
        return -1;
    snprintf(ca_file, sizeof ca_file, "%s/ca.pem", dir);
    snprintf(srv_dir, sizeof srv_dir, "%s/server", dir);
    if (s3rver_start(srv_dir, false, endpoint, sizeof endpoint) < 0) {
        fprintf(stderr, "test_s3: s3rver did not start (see %s/log)\n", srv_dir);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    s3rver_stop(srv_dir);
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
    int rc = peer_need_node("test_s3", "WEAVE_TEST_S3_SKIP");
    if (rc >= 0)
        return rc;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s3_put_then_get_returns_bytes_etag_type_date_and_metadata),
        cmocka_unit_test(test_s3_keys_with_spaces_unicode_and_reserved_characters_round_trip),
        cmocka_unit_test(test_s3_empty_object_round_trips),
        cmocka_unit_test(test_s3_get_range_returns_the_slice_and_the_objects_size),
        cmocka_unit_test(test_s3_refusals_are_errnos_with_the_services_code_and_message),
        cmocka_unit_test(test_s3_delete_removes_the_object_and_deleting_again_succeeds),
        cmocka_unit_test(test_s3_copy_keeps_or_replaces_type_and_metadata),
        cmocka_unit_test(test_s3_list_pages_with_tokens_prefixes_delimiter_and_start_after),
        cmocka_unit_test(test_s3_upload_in_parts_reassembles_the_source_whatever_its_reads),
        cmocka_unit_test(test_s3_every_checksum_setting_sends_checksums_that_match_the_bodies),
        cmocka_unit_test(test_s3_put_file_and_get_file_round_trip_and_a_failed_get_leaves_the_file),
        cmocka_unit_test(test_s3_download_hands_ranges_to_the_sink_in_order),
        cmocka_unit_test(test_s3_object_over_max_object_is_emsgsize),
        cmocka_unit_test(test_s3_one_client_serves_every_shard_at_once),
        cmocka_unit_test(test_s3_presigned_put_get_and_head_urls_work_without_credentials),
        cmocka_unit_test(test_s3_gcs_provider_and_gs_urls_make_the_same_calls),
        cmocka_unit_test_setup_teardown(test_s3_over_tls_the_servers_certificate_is_verified,
                                        tls_up, tls_down),
        cmocka_unit_test(
            test_s3_slowdown_and_5xx_are_retried_with_backoff_others_and_redirects_are_not),
        cmocka_unit_test(test_s3_upload_whose_part_keeps_failing_is_aborted),
        cmocka_unit_test(test_s3_upload_whose_source_fails_is_aborted_with_the_sources_error),
        cmocka_unit_test(test_s3_parts_travel_several_at_once_within_the_memory_bound),
        cmocka_unit_test(test_s3_cancelled_upload_returns_at_once_and_is_aborted_in_the_background),
        cmocka_unit_test(test_s3_upload_past_its_deadline_is_etimedout_on_time_and_still_aborted),
        cmocka_unit_test_setup_teardown(
            test_s3_server_killed_mid_request_fails_every_fiber_without_a_hang, doomed_up,
            doomed_down),
        cmocka_unit_test_setup_teardown(test_s3_call_to_a_frozen_server_ends_at_the_deadline,
                                        doomed_up, doomed_down),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
