/*
 * gRPC status (src/grpc/status.c) as a specification: the 17 codes and
 * their canonical names, grpc-status values, weave's errno values to codes
 * and back, the HTTP status table for responses without grpc-status, and
 * grpc-message percent-encoding: the encoding rule byte by byte, round
 * trips (UTF-8 included), and bad escapes passed through on decoding.
 */
#include "harness.h"

#include <errno.h>

#include "grpc/grpc_internal.h"

/* ------------------------------------------------------------ codes */

static void test_the_17_codes_have_their_canonical_names_and_numbers(void **state)
{
    static const char *const names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };
    assert_int_equal(ARRAY_LEN(names), GRPC_CODE_COUNT);
    for (int c = 0; c < GRPC_CODE_COUNT; c++) {
        assert_string_equal(grpc_code_name(c), names[c]);
        assert_int_equal(grpc_code_from_name(names[c], strlen(names[c])), c);
    }
    assert_int_equal(WV_GRPC_DEADLINE_EXCEEDED, 4);
    assert_int_equal(WV_GRPC_RESOURCE_EXHAUSTED, 8);
    assert_int_equal(WV_GRPC_UNIMPLEMENTED, 12);
    assert_int_equal(WV_GRPC_UNAVAILABLE, 14);
    assert_int_equal(WV_GRPC_UNAUTHENTICATED, 16);
}

static void test_numbers_and_names_outside_the_17_are_refused(void **state)
{
    assert_null(grpc_code_name(-1));
    assert_null(grpc_code_name(17));
    assert_int_equal(grpc_code_from_name("ok", 2), -EINVAL);
    assert_int_equal(grpc_code_from_name("OK ", 3), -EINVAL);
    assert_int_equal(grpc_code_from_name("", 0), -EINVAL);
    assert_int_equal(grpc_code_from_name("CANCELED", 8), -EINVAL); /* the US spelling */
}

static void test_grpc_status_values_parse_and_unknown_numbers_are_unknown(void **state)
{
    assert_int_equal(grpc_status_parse("0", 1), WV_GRPC_OK);
    assert_int_equal(grpc_status_parse("4", 1), WV_GRPC_DEADLINE_EXCEEDED);
    assert_int_equal(grpc_status_parse("16", 2), WV_GRPC_UNAUTHENTICATED);
    assert_int_equal(grpc_status_parse("17", 2), WV_GRPC_UNKNOWN);
    assert_int_equal(grpc_status_parse("999", 3), WV_GRPC_UNKNOWN);
    static const char *const bad[] = {"", "-1", "+1", " 1", "1 ", "1000", "x", "1x", "0x1"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_int_equal(grpc_status_parse(bad[i], strlen(bad[i])), -EINVAL);
}

static void test_errno_values_map_to_codes(void **state)
{
    static const struct {
        int err, code;
    } table[] = {
        {0, WV_GRPC_OK},
        {-ETIMEDOUT, WV_GRPC_DEADLINE_EXCEEDED},
        {-ECANCELED, WV_GRPC_CANCELLED},
        {-ENOENT, WV_GRPC_NOT_FOUND},
        {-EEXIST, WV_GRPC_ALREADY_EXISTS},
        {-EINVAL, WV_GRPC_INVALID_ARGUMENT},
        {-EACCES, WV_GRPC_PERMISSION_DENIED},
        {-EPERM, WV_GRPC_PERMISSION_DENIED},
        {-ECONNREFUSED, WV_GRPC_UNAVAILABLE},
        {-ECONNRESET, WV_GRPC_UNAVAILABLE},
        {-EHOSTUNREACH, WV_GRPC_UNAVAILABLE},
        {-EPIPE, WV_GRPC_UNAVAILABLE},
        {-EAGAIN, WV_GRPC_UNAVAILABLE},
        {-ENOMEM, WV_GRPC_RESOURCE_EXHAUSTED},
        {-EMSGSIZE, WV_GRPC_RESOURCE_EXHAUSTED},
        {-ENOSPC, WV_GRPC_RESOURCE_EXHAUSTED},
        {-EBUSY, WV_GRPC_FAILED_PRECONDITION},
        {-ENOTEMPTY, WV_GRPC_FAILED_PRECONDITION},
        {-EDEADLK, WV_GRPC_ABORTED},
        {-ERANGE, WV_GRPC_OUT_OF_RANGE},
        {-ENOSYS, WV_GRPC_UNIMPLEMENTED},
        {-ENOTSUP, WV_GRPC_UNIMPLEMENTED},
        {-EOPNOTSUPP, WV_GRPC_UNIMPLEMENTED},
        {-EPROTO, WV_GRPC_INTERNAL},
        {-EBADMSG, WV_GRPC_INTERNAL},
        {-EUCLEAN, WV_GRPC_DATA_LOSS},
        {-EKEYREJECTED, WV_GRPC_UNAUTHENTICATED},
        {-EIO, WV_GRPC_UNKNOWN},
        {-EREMOTEIO, WV_GRPC_UNKNOWN},
        {-EXDEV, WV_GRPC_UNKNOWN},  /* not in the table */
        {-100000, WV_GRPC_UNKNOWN}, /* not an errno at all */
        {1, WV_GRPC_UNKNOWN},       /* positive: never an error weave returns */
        {INT32_MIN, WV_GRPC_UNKNOWN},
    };
    for (size_t i = 0; i < ARRAY_LEN(table); i++)
        if (grpc_code_from_errno(table[i].err) != table[i].code)
            fail_msg("errno %d: %s, expected %s", table[i].err,
                     grpc_code_name(grpc_code_from_errno(table[i].err)),
                     grpc_code_name(table[i].code));
}

static void test_every_code_maps_to_an_errno_that_maps_back(void **state)
{
    for (int c = 0; c < GRPC_CODE_COUNT; c++) {
        int err = grpc_code_to_errno(c);
        assert_true(c == WV_GRPC_OK ? err == 0 : err < 0);
        if (grpc_code_from_errno(err) != c)
            fail_msg("%s -> %d -> %s", grpc_code_name(c), err,
                     grpc_code_name(grpc_code_from_errno(err)));
    }
    assert_int_equal(grpc_code_to_errno(WV_GRPC_DEADLINE_EXCEEDED), -ETIMEDOUT);
    assert_int_equal(grpc_code_to_errno(WV_GRPC_CANCELLED), -ECANCELED);
    assert_int_equal(grpc_code_to_errno(WV_GRPC_NOT_FOUND), -ENOENT);
    assert_int_equal(grpc_code_to_errno(WV_GRPC_UNAVAILABLE), -EAGAIN);
    assert_int_equal(grpc_code_to_errno(17), -EREMOTEIO);
    assert_int_equal(grpc_code_to_errno(-1), -EREMOTEIO);
}

static void test_http_status_without_grpc_status_maps_by_the_spec_table(void **state)
{
    static const struct {
        int http, code;
    } table[] = {
        {400, WV_GRPC_INTERNAL},
        {401, WV_GRPC_UNAUTHENTICATED},
        {403, WV_GRPC_PERMISSION_DENIED},
        {404, WV_GRPC_UNIMPLEMENTED},
        {429, WV_GRPC_UNAVAILABLE},
        {502, WV_GRPC_UNAVAILABLE},
        {503, WV_GRPC_UNAVAILABLE},
        {504, WV_GRPC_UNAVAILABLE},
        {200, WV_GRPC_UNKNOWN},
        {500, WV_GRPC_UNKNOWN},
        {501, WV_GRPC_UNKNOWN},
        {405, WV_GRPC_UNKNOWN},
        {408, WV_GRPC_UNKNOWN},
        {302, WV_GRPC_UNKNOWN},
        {0, WV_GRPC_UNKNOWN},
    };
    for (size_t i = 0; i < ARRAY_LEN(table); i++)
        if (grpc_code_from_http_status(table[i].http) != table[i].code)
            fail_msg("HTTP %d: %s", table[i].http,
                     grpc_code_name(grpc_code_from_http_status(table[i].http)));
    /* and nothing else in 100..599 is mapped to a code other than UNKNOWN */
    int mapped = 0;
    for (int s = 100; s < 600; s++)
        mapped += grpc_code_from_http_status(s) != WV_GRPC_UNKNOWN;
    assert_int_equal(mapped, 8);
}

/* ------------------------------------------------------------ grpc-message */

static char *encode(const char *s, size_t n, size_t *len)
{
    *len = grpc_percent_encoded_len((const uint8_t *)s, n);
    char *out = malloc(*len ? *len : 1);
    assert_int_equal(grpc_percent_encode((const uint8_t *)s, n, out), *len);
    return out;
}

static void
test_percent_encoding_escapes_exactly_the_bytes_outside_printable_ascii_and_percent(void **state)
{
    for (int c = 0; c < 256; c++) {
        uint8_t b = (uint8_t)c;
        char out[3];
        size_t len = grpc_percent_encode(&b, 1, out);
        assert_int_equal(len, grpc_percent_encoded_len(&b, 1));
        if (c >= 0x20 && c <= 0x7E && c != '%') {
            assert_int_equal(len, 1);
            assert_int_equal(out[0], c);
        } else {
            char want[4];
            snprintf(want, sizeof want, "%%%02X", c);
            assert_int_equal(len, 3);
            assert_memory_equal(out, want, 3);
        }
    }
}

static void test_percent_encoding_of_a_message_with_utf8(void **state)
{
    /* "déjà vu 100% ✓\n" */
    const char msg[] = "d\xc3\xa9j\xc3\xa0 vu 100% \xe2\x9c\x93\n";
    size_t len;
    char *out = encode(msg, sizeof msg - 1, &len);
    const char want[] = "d%C3%A9j%C3%A0 vu 100%25 %E2%9C%93%0A";
    assert_int_equal(len, sizeof want - 1);
    assert_memory_equal(out, want, len);
    free(out);
}

static void test_percent_encoding_round_trips(void **state)
{
    static const char *const msgs[] = {
        "",
        "plain text stays as it is",
        "%",
        "%%41",
        "\xf0\x9f\x98\x80 emoji and \xe4\xb8\xad\xe6\x96\x87",
        "tab\there, nul follows",
        "\x7f\x80\xff\x01",
    };
    for (size_t i = 0; i < ARRAY_LEN(msgs); i++) {
        size_t n = strlen(msgs[i]) + (i == 5); /* row 5 carries its NUL */
        size_t len;
        char *enc = encode(msgs[i], n, &len);
        for (size_t k = 0; k < len; k++)
            assert_true(enc[k] >= 0x20 && enc[k] <= 0x7E);
        uint8_t *dec = malloc(len ? len : 1);
        assert_int_equal(grpc_percent_decode(enc, len, dec), n);
        assert_memory_equal(dec, msgs[i], n);
        free(dec);
        free(enc);
    }
    /* every byte value, in one message */
    uint8_t all[256];
    for (int c = 0; c < 256; c++)
        all[c] = (uint8_t)c;
    size_t len;
    char *enc = encode((const char *)all, sizeof all, &len);
    uint8_t dec[256];
    assert_int_equal(grpc_percent_decode(enc, len, dec), 256);
    assert_memory_equal(dec, all, 256);
    free(enc);
}

static void test_percent_decoding_accepts_lower_case_hex(void **state)
{
    uint8_t out[8];
    assert_int_equal(grpc_percent_decode("%c3%a9%0a", 9, out), 3);
    assert_memory_equal(out, "\xc3\xa9\n", 3);
}

static void test_percent_decoding_passes_bad_escapes_through(void **state)
{
    static const struct {
        const char *in, *out;
    } table[] = {
        {"100%", "100%"},   {"100% sure", "100% sure"},
        {"%4", "%4"},       {"%zz", "%zz"},
        {"%4g", "%4g"},     {"%%41", "%A"},
        {"%g1%41", "%g1A"}, {"a%", "a%"},
        {"%%", "%%"},       {"% 41", "% 41"},
        {"%-1", "%-1"},     {"%41%", "A%"},
    };
    for (size_t i = 0; i < ARRAY_LEN(table); i++) {
        size_t n = strlen(table[i].in);
        char *in = malloc(n); /* exact size: a read past the end is caught */
        memcpy(in, table[i].in, n);
        uint8_t out[16];
        size_t len = grpc_percent_decode(in, n, out);
        if (len != strlen(table[i].out) || memcmp(out, table[i].out, len) != 0)
            fail_msg("\"%s\" -> \"%.*s\", expected \"%s\"", table[i].in, (int)len, out,
                     table[i].out);
        free(in);
    }
}

static void test_percent_decoding_works_in_place(void **state)
{
    char buf[] = "a%20b%zz%41";
    size_t len = grpc_percent_decode(buf, strlen(buf), (uint8_t *)buf);
    assert_int_equal(len, 7);
    assert_memory_equal(buf, "a b%zzA", 7);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_17_codes_have_their_canonical_names_and_numbers),
        cmocka_unit_test(test_numbers_and_names_outside_the_17_are_refused),
        cmocka_unit_test(test_grpc_status_values_parse_and_unknown_numbers_are_unknown),
        cmocka_unit_test(test_errno_values_map_to_codes),
        cmocka_unit_test(test_every_code_maps_to_an_errno_that_maps_back),
        cmocka_unit_test(test_http_status_without_grpc_status_maps_by_the_spec_table),
        cmocka_unit_test(
            test_percent_encoding_escapes_exactly_the_bytes_outside_printable_ascii_and_percent),
        cmocka_unit_test(test_percent_encoding_of_a_message_with_utf8),
        cmocka_unit_test(test_percent_encoding_round_trips),
        cmocka_unit_test(test_percent_decoding_accepts_lower_case_hex),
        cmocka_unit_test(test_percent_decoding_passes_bad_escapes_through),
        cmocka_unit_test(test_percent_decoding_works_in_place),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
