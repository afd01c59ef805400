/*
 * The shared base64 (src/base64/base64.h): RFC 4648's test vectors both
 * ways, padded and not; what strict decoding refuses and what decoding with
 * optional padding takes; the output bound.
 */
#include "harness.h"

#include <string.h>

#include "base64/base64.h"

static const char *const plain[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
static const char *const padded[] = {"",         "Zg==",     "Zm8=",    "Zm9v",
                                     "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
static const char *const bare[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};

static void test_base64_rfc4648_vectors_both_ways(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof plain / sizeof *plain; i++) {
        char enc[16], dec[16];
        size_t n = strlen(plain[i]);
        assert_int_equal(wv__b64_encoded_len(n, true), strlen(padded[i]));
        assert_int_equal(wv__b64_encode(plain[i], n, true, enc), strlen(padded[i]));
        assert_memory_equal(enc, padded[i], strlen(padded[i]));
        assert_int_equal(wv__b64_encoded_len(n, false), strlen(bare[i]));
        assert_int_equal(wv__b64_encode(plain[i], n, false, enc), strlen(bare[i]));
        assert_memory_equal(enc, bare[i], strlen(bare[i]));
        assert_int_equal(wv__b64_decode(padded[i], strlen(padded[i]), false, dec, sizeof dec), n);
        assert_memory_equal(dec, plain[i], n);
        assert_int_equal(wv__b64_decode(padded[i], strlen(padded[i]), true, dec, sizeof dec), n);
        assert_int_equal(wv__b64_decode(bare[i], strlen(bare[i]), true, dec, sizeof dec), n);
        assert_memory_equal(dec, plain[i], n);
    }
    /* every byte value */
    unsigned char all[256], back[256];
    char enc[400];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    size_t n = wv__b64_encode(all, sizeof all, true, enc);
    assert_int_equal(wv__b64_decode(enc, n, false, back, sizeof back), 256);
    assert_memory_equal(back, all, 256);
}

static void test_base64_refusals(void **state)
{
    (void)state;
    char out[16];
    /* strict: padding required, only at the end */
    const char *strict_bad[] = {
        "Zg", "Zm8", "Z", "Zg=", "Z===", "Zg=A", "Zg==Zg==", "Zm9v!A==", "=Zm9"};
    for (size_t i = 0; i < sizeof strict_bad / sizeof *strict_bad; i++)
        assert_int_equal(
            wv__b64_decode(strict_bad[i], strlen(strict_bad[i]), false, out, sizeof out), -1);
    /* optional padding still refuses what no base64 is */
    const char *loose_bad[] = {"Z", "Zm9vY", "Z===", "Zg=A", "Zg==Zg", "a b="};
    for (size_t i = 0; i < sizeof loose_bad / sizeof *loose_bad; i++)
        assert_int_equal(wv__b64_decode(loose_bad[i], strlen(loose_bad[i]), true, out, sizeof out),
                         -1);
    /* the bound: 6 bytes do not fit in 5 */
    assert_int_equal(wv__b64_decode("Zm9vYmFy", 8, false, out, 5), -1);
    assert_int_equal(wv__b64_decode("Zm9vYmFy", 8, false, out, 6), 6);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_base64_rfc4648_vectors_both_ways),
        cmocka_unit_test(test_base64_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
