/*
 * gRPC custom metadata (src/grpc/metadata.c) as a specification: which
 * header names are allowed and which are reserved, ASCII values, "-bin"
 * names, and base64 for binary values: the RFC 4648 test vectors unpadded
 * (what gRPC sends), decoding padded and unpadded forms of every length,
 * and malformed values refused.
 */
#include "harness.h"

#include <errno.h>

#include "grpc/grpc_internal.h"

static int check_name(const char *s)
{
    size_t n = strlen(s);
    char *b = malloc(n ? n : 1);
    memcpy(b, s, n);
    int rc = grpc_metadata_check_name(b, n);
    free(b);
    return rc;
}

static void test_custom_metadata_names_are_allowed(void **state)
{
    static const char *const ok[] = {
        "x-request-id", "authorization", "trace.id",      "a_b", "0", "x-bin", "custom-bin", "grpc",
        "grpcx-foo",    "x-grpc-foo",    "content-typex", "tee",
    };
    for (size_t i = 0; i < ARRAY_LEN(ok); i++)
        if (check_name(ok[i]) != 0)
            fail_msg("\"%s\" was refused", ok[i]);
}

static void test_reserved_metadata_names_are_refused(void **state)
{
    static const char *const reserved[] = {
        "grpc-status",       "grpc-message", "grpc-timeout", "grpc-encoding",
        "grpc-foo-bin",      "grpc-",        "content-type", "te",
        "user-agent",        "connection",   "keep-alive",   "proxy-connection",
        "transfer-encoding", "upgrade",      "host",         ":path",
        ":authority",        ":status",
    };
    for (size_t i = 0; i < ARRAY_LEN(reserved); i++)
        if (check_name(reserved[i]) != -EINVAL)
            fail_msg("\"%s\" was accepted", reserved[i]);
}

static void test_malformed_metadata_names_are_refused(void **state)
{
    static const char *const bad[] = {
        "", "X-Request-Id", "has space", "colon:inside", "tab\t", "quote\"", "slash/", "\xc3\xa9",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        if (check_name(bad[i]) != -EINVAL)
            fail_msg("\"%s\" was accepted", bad[i]);
}

static void test_binary_headers_are_the_names_ending_in_bin(void **state)
{
    assert_true(grpc_metadata_is_binary("trace-bin", 9));
    assert_true(grpc_metadata_is_binary("-bin", 4));
    assert_false(grpc_metadata_is_binary("bin", 3));
    assert_false(grpc_metadata_is_binary("trace-binx", 10));
    assert_false(grpc_metadata_is_binary("trace_bin", 9));
    assert_false(grpc_metadata_is_binary("", 0));
}

static void test_ascii_values_are_printable_ascii_only(void **state)
{
    assert_int_equal(grpc_metadata_check_value("Bearer abc.def ~!", 17), 0);
    assert_int_equal(grpc_metadata_check_value("", 0), 0);
    for (int c = 0; c < 256; c++) {
        char v[3] = {'a', (char)c, 'b'};
        int want = c >= 0x20 && c <= 0x7E ? 0 : -EINVAL;
        assert_int_equal(grpc_metadata_check_value(v, 3), want);
    }
}

/* ------------------------------------------------------------ base64 */

static void test_base64_encodes_the_rfc_4648_vectors_unpadded(void **state)
{
    static const struct {
        const char *in, *out;
    } table[] = {
        {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
        {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"},
    };
    for (size_t i = 0; i < ARRAY_LEN(table); i++) {
        size_t n = strlen(table[i].in);
        char out[16];
        assert_int_equal(grpc_base64_encoded_len(n), strlen(table[i].out));
        assert_int_equal(grpc_base64_encode((const uint8_t *)table[i].in, n, out),
                         strlen(table[i].out));
        assert_memory_equal(out, table[i].out, strlen(table[i].out));
    }
    /* the upper alphabet */
    char out[8];
    assert_int_equal(grpc_base64_encode((const uint8_t *)"\xfb\xff\xbf", 3, out), 4);
    assert_memory_equal(out, "+/+/", 4);
}

static int decode(const char *s, uint8_t *out, size_t *len)
{
    size_t n = strlen(s);
    char *b = malloc(n ? n : 1);
    memcpy(b, s, n);
    assert_true(grpc_base64_decoded_max(n) <= 64);
    int rc = grpc_base64_decode(b, n, out, len);
    free(b);
    return rc;
}

static void test_base64_decodes_padded_and_unpadded_values(void **state)
{
    static const struct {
        const char *in, *out;
    } table[] = {
        {"", ""},
        {"Zg", "f"},
        {"Zg==", "f"},
        {"Zm8", "fo"},
        {"Zm8=", "fo"},
        {"Zm9v", "foo"},
        {"Zm9vYg", "foob"},
        {"Zm9vYg==", "foob"},
        {"Zm9vYmE", "fooba"},
        {"Zm9vYmE=", "fooba"},
        {"Zm9vYmFy", "foobar"},
        {"+/+/", "\xfb\xff\xbf"},
    };
    for (size_t i = 0; i < ARRAY_LEN(table); i++) {
        uint8_t out[64];
        size_t len = 99;
        assert_int_equal(decode(table[i].in, out, &len), 0);
        assert_int_equal(len, strlen(table[i].out));
        assert_memory_equal(out, table[i].out, len);
    }
}

static void test_base64_round_trips_every_length(void **state)
{
    uint8_t in[200], back[200];
    char text[300];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof in; n++) {
        size_t len = grpc_base64_encode(in, n, text);
        assert_int_equal(len, grpc_base64_encoded_len(n));
        assert_true(grpc_base64_decoded_max(len) >= n);
        size_t blen;
        assert_int_equal(grpc_base64_decode(text, len, back, &blen), 0);
        assert_int_equal(blen, n);
        if (n)
            assert_memory_equal(back, in, n);
        /* the padded form decodes the same */
        while (len % 4)
            text[len++] = '=';
        assert_int_equal(grpc_base64_decode(text, len, back, &blen), 0);
        assert_int_equal(blen, n);
        if (n)
            assert_memory_equal(back, in, n);
    }
}

static void test_base64_malformed_values_are_refused(void **state)
{
    static const char *const bad[] = {
        "Z",                                         /* 4k + 1 chars */
        "Zm9vY",   "Zg=",                            /* padding that does not complete a quantum */
        "Z===",    "====",       "Zg=a", "Zg==Zg==", /* padding inside */
        "Zm9v Yg", "Zm9v\n",     "Zm-_",             /* URL-safe alphabet is not gRPC's */
        "Zm9v*",   "\xc3\xa9Zm",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        uint8_t out[64];
        size_t len = 12345;
        if (decode(bad[i], out, &len) != -EINVAL)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_int_equal(len, 12345); /* untouched */
    }
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_custom_metadata_names_are_allowed),
        cmocka_unit_test(test_reserved_metadata_names_are_refused),
        cmocka_unit_test(test_malformed_metadata_names_are_refused),
        cmocka_unit_test(test_binary_headers_are_the_names_ending_in_bin),
        cmocka_unit_test(test_ascii_values_are_printable_ascii_only),
        cmocka_unit_test(test_base64_encodes_the_rfc_4648_vectors_unpadded),
        cmocka_unit_test(test_base64_decodes_padded_and_unpadded_values),
        cmocka_unit_test(test_base64_round_trips_every_length),
        cmocka_unit_test(test_base64_malformed_values_are_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
