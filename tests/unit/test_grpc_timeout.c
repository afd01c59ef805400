/*
 * grpc-timeout (src/grpc/timeout.c) as a specification: a table of values
 * parsed, a table of bad ones refused, saturation, deadlines from a
 * timeout, a table of formatted values (exact in the coarsest unit, or
 * rounded up in the finest that fits), every formatted value parsing back
 * to at least what was formatted, and the deadline forms.
 */
#include "harness.h"

#include <errno.h>

#include "grpc/grpc_internal.h"

#define NS_PER_S INT64_C(1000000000)
#define NS_PER_H (3600 * NS_PER_S)

static int parse(const char *s, int64_t *ns)
{
    size_t n = strlen(s);
    char *b = malloc(n ? n : 1); /* exact size: ASan sees a read past the end */
    memcpy(b, s, n);
    int rc = grpc_timeout_parse(b, n, ns);
    free(b);
    return rc;
}

static void test_timeout_values_parse_in_every_unit(void **state)
{
    static const struct {
        const char *text;
        int64_t ns;
    } table[] = {
        {"1S", NS_PER_S},
        {"100m", 100 * NS_PER_MS},
        {"5u", 5000},
        {"3n", 3},
        {"2M", 120 * NS_PER_S},
        {"1H", NS_PER_H},
        {"0n", 0},
        {"0H", 0},
        {"00000001S", NS_PER_S},
        {"99999999n", 99999999},
        {"99999999u", INT64_C(99999999000)},
        {"99999999m", INT64_C(99999999000000)},
        {"99999999S", INT64_C(99999999) * NS_PER_S},
        {"99999999M", INT64_C(99999999) * 60 * NS_PER_S},
        {"2562047H", INT64_C(2562047) * NS_PER_H}, /* the most hours that fit */
    };
    for (size_t i = 0; i < ARRAY_LEN(table); i++) {
        int64_t ns = -1;
        assert_int_equal(parse(table[i].text, &ns), 0);
        if (ns != table[i].ns)
            fail_msg("%s: %lld, expected %lld", table[i].text, (long long)ns,
                     (long long)table[i].ns);
    }
}

static void test_timeout_too_large_for_int64_saturates(void **state)
{
    int64_t ns;
    assert_int_equal(parse("2562048H", &ns), 0);
    assert_int_equal(ns, INT64_MAX);
    assert_int_equal(parse("99999999H", &ns), 0);
    assert_int_equal(ns, INT64_MAX);
}

static void test_timeout_bad_values_are_refused(void **state)
{
    static const char *const bad[] = {
        "",           "S",   "1",    "100", "123456789S", /* 9 digits */
        "000000000S", "1s",  "1h",   "1U",  "1N",         "1x",    "-1S",  "+1S", " 1S",
        "1S ",        "1 S", "1.5S", "1SS", "S1",         "0x10S", "1e3m", "١S", /* Arabic-Indic
                                                                                    digit one */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t ns = 12345;
        if (parse(bad[i], &ns) != -EINVAL)
            fail_msg("\"%s\" was accepted", bad[i]);
        assert_int_equal(ns, 12345); /* untouched */
    }
}

static void test_timeout_deadline_is_now_plus_the_timeout_saturating(void **state)
{
    assert_int_equal(grpc_timeout_deadline(1000, 500), 1500);
    assert_int_equal(grpc_timeout_deadline(INT64_MAX - 10, 100), WV_NEVER);
    assert_int_equal(grpc_timeout_deadline(5, INT64_MAX), WV_NEVER);
    assert_int_equal(grpc_timeout_deadline(1000, 0), 1000);
}

static void test_timeout_format_table(void **state)
{
    static const struct {
        int64_t ns;
        const char *text;
    } table[] = {
        /* exact, in the coarsest unit that holds the value in 8 digits */
        {1, "1n"},
        {999, "999n"},
        {1000, "1u"},
        {1500, "1500n"},
        {NS_PER_MS, "1m"},
        {100 * NS_PER_MS, "100m"},
        {NS_PER_S, "1S"},
        {60 * NS_PER_S, "1M"},
        {90 * NS_PER_S, "90S"},
        {NS_PER_H, "1H"},
        {2 * NS_PER_H + NS_PER_S, "7201S"},
        {99999999, "99999999n"},
        {INT64_C(2562047) * NS_PER_H, "2562047H"},
        /* no unit exact in 8 digits: rounded up in the finest unit that fits */
        {100000001, "100001u"},             /* 100000.001u */
        {INT64_C(1234567891), "1234568u"},  /* 1234567.891u */
        {INT64_C(123456789012), "123457m"}, /* 123456789.012u has 9 digits */
        {INT64_C(99999999999), "100000m"},  /* 99999999.999u rounds to 9 digits */
        {INT64_MAX, "2562048H"},            /* 153722867.3M has 9 digits */
    };
    char out[GRPC_TIMEOUT_MAX];
    for (size_t i = 0; i < ARRAY_LEN(table); i++) {
        int len = grpc_timeout_format(table[i].ns, out);
        if (len != (int)strlen(table[i].text) || strcmp(out, table[i].text) != 0)
            fail_msg("%lld: \"%s\" (%d), expected \"%s\"", (long long)table[i].ns, out, len,
                     table[i].text);
    }
}

static void test_timeout_format_never_says_less_than_the_time_left(void **state)
{
    char out[GRPC_TIMEOUT_MAX];
    int64_t ns = 1;
    for (int i = 0; i < 2000; i++) {
        int len = grpc_timeout_format(ns, out);
        assert_true(len >= 2 && len <= 9);
        assert_int_equal((size_t)len, strlen(out));
        int64_t back;
        assert_int_equal(grpc_timeout_parse(out, (size_t)len, &back), 0);
        assert_true(back >= ns);
        /* exact while 8 digits of ns hold it; after that rounding adds
         * less than one unit to a value of at least 100000 units (1e-5) */
        if (ns <= 99999999)
            assert_int_equal(back, ns);
        assert_true((double)(back - ns) <= (double)ns * 1e-5);
        if (ns > INT64_MAX / 4 * 3)
            break;
        ns = ns + ns / 3 + 7;
    }
}

static void test_timeout_format_of_zero_or_less_is_etimedout(void **state)
{
    char out[GRPC_TIMEOUT_MAX];
    assert_int_equal(grpc_timeout_format(0, out), -ETIMEDOUT);
    assert_int_equal(grpc_timeout_format(-1, out), -ETIMEDOUT);
    assert_int_equal(grpc_timeout_format(INT64_MIN, out), -ETIMEDOUT);
}

static void test_timeout_of_a_deadline(void **state)
{
    char out[GRPC_TIMEOUT_MAX];
    assert_int_equal(grpc_timeout_format_deadline(WV_NEVER, 1000, out), 0);
    assert_string_equal(out, "");
    assert_int_equal(grpc_timeout_format_deadline(1000 + 5 * NS_PER_S, 1000, out), 2);
    assert_string_equal(out, "5S");
    assert_int_equal(grpc_timeout_format_deadline(1000, 1000, out), -ETIMEDOUT);
    assert_int_equal(grpc_timeout_format_deadline(999, 1000, out), -ETIMEDOUT);
    assert_int_equal(grpc_timeout_format_deadline(INT64_MIN, INT64_MAX - 1, out), -ETIMEDOUT);
    /* a deadline parsed from a header formats back to the same header */
    int64_t ns, now = 123456789;
    assert_int_equal(grpc_timeout_parse("250m", 4, &ns), 0);
    assert_int_equal(grpc_timeout_format_deadline(grpc_timeout_deadline(now, ns), now, out), 4);
    assert_string_equal(out, "250m");
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_values_parse_in_every_unit),
        cmocka_unit_test(test_timeout_too_large_for_int64_saturates),
        cmocka_unit_test(test_timeout_bad_values_are_refused),
        cmocka_unit_test(test_timeout_deadline_is_now_plus_the_timeout_saturating),
        cmocka_unit_test(test_timeout_format_table),
        cmocka_unit_test(test_timeout_format_never_says_less_than_the_time_left),
        cmocka_unit_test(test_timeout_format_of_zero_or_less_is_etimedout),
        cmocka_unit_test(test_timeout_of_a_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
