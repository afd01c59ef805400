/*
 * Response compression (src/http/compress.c): Accept-Encoding negotiation
 * with q-values, which types are compressed, and that every encoding
 * round-trips through its reference decoder (zlib, brotli, zstd).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <brotli/decode.h>
#include <zlib.h>
#include <zstd.h>

#include "http/http_internal.h"

static wv_str S(const char *s)
{
    return (wv_str){s, strlen(s)};
}

static void test_pick_prefers_br_then_zstd_then_gzip(void **state)
{
    (void)state;
    assert_int_equal(compress_pick(S("gzip, deflate, br, zstd")), ENC_BR);
    assert_int_equal(compress_pick(S("gzip, zstd")), ENC_ZSTD);
    assert_int_equal(compress_pick(S("gzip")), ENC_GZIP);
    assert_int_equal(compress_pick(S("GZIP")), ENC_GZIP);
}

static void test_pick_honours_q_zero_and_star(void **state)
{
    (void)state;
    assert_int_equal(compress_pick(S("br;q=0, gzip;q=0.5")), ENC_GZIP);
    assert_int_equal(compress_pick(S("br;q=0.0, zstd;q=0, gzip;q=0")), ENC_NONE);
    assert_int_equal(compress_pick(S("*")), ENC_BR);
    assert_int_equal(compress_pick(S("*;q=0")), ENC_NONE);
    assert_int_equal(compress_pick(S("identity")), ENC_NONE);
    assert_int_equal(compress_pick(S("")), ENC_NONE);
    assert_int_equal(compress_pick((wv_str){NULL, 0}), ENC_NONE);
}

static void test_only_text_like_types_are_compressed(void **state)
{
    (void)state;
    assert_true(compress_type_ok("text/html; charset=utf-8"));
    assert_true(compress_type_ok("application/json"));
    assert_true(compress_type_ok("text/javascript"));
    assert_true(compress_type_ok("image/svg+xml"));
    assert_false(compress_type_ok("image/png"));
    assert_false(compress_type_ok("application/octet-stream"));
    assert_false(compress_type_ok(NULL));
}

static char text[20000];

static void fill_text(void)
{
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = "weave serves text that compresses well, again and again. "[i % 57];
}

static void roundtrip(int enc)
{
    fill_text();
    wv_req req;
    req_init(&req, NULL);
    const char *z;
    size_t zn;
    assert_int_equal(compress_body(&req, enc, text, sizeof text, &z, &zn), 0);
    assert_true(zn < sizeof text / 4);
    static char back[sizeof text + 16];
    size_t bn = sizeof back;
    if (enc == ENC_GZIP) {
        z_stream s;
        memset(&s, 0, sizeof s);
        assert_int_equal(inflateInit2(&s, 15 + 16), Z_OK);
        s.next_in = (Bytef *)z;
        s.avail_in = (uInt)zn;
        s.next_out = (Bytef *)back;
        s.avail_out = (uInt)bn;
        assert_int_equal(inflate(&s, Z_FINISH), Z_STREAM_END);
        bn = s.total_out;
        inflateEnd(&s);
    } else if (enc == ENC_BR) {
        assert_int_equal(BrotliDecoderDecompress(zn, (const uint8_t *)z, &bn, (uint8_t *)back),
                         BROTLI_DECODER_RESULT_SUCCESS);
    } else {
        bn = ZSTD_decompress(back, bn, z, zn);
        assert_false(ZSTD_isError(bn));
    }
    assert_int_equal(bn, sizeof text);
    assert_memory_equal(back, text, sizeof text);
    req_finish(&req);
}

static void test_gzip_round_trips(void **state)
{
    (void)state;
    roundtrip(ENC_GZIP);
}

static void test_brotli_round_trips(void **state)
{
    (void)state;
    roundtrip(ENC_BR);
}

static void test_zstd_round_trips(void **state)
{
    (void)state;
    roundtrip(ENC_ZSTD);
}

static void test_small_and_incompressible_bodies_are_left_alone(void **state)
{
    (void)state;
    wv_req req;
    req_init(&req, NULL);
    const char *z;
    size_t zn;
    assert_true(compress_body(&req, ENC_GZIP, "tiny", 4, &z, &zn) < 0);
    static unsigned char noise[8192];
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < sizeof noise; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise[i] = (unsigned char)x;
    }
    assert_true(compress_body(&req, ENC_GZIP, noise, sizeof noise, &z, &zn) < 0);
    assert_true(compress_body(&req, ENC_ZSTD, noise, sizeof noise, &z, &zn) < 0);
    req_finish(&req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_prefers_br_then_zstd_then_gzip),
        cmocka_unit_test(test_pick_honours_q_zero_and_star),
        cmocka_unit_test(test_only_text_like_types_are_compressed),
        cmocka_unit_test(test_gzip_round_trips),
        cmocka_unit_test(test_brotli_round_trips),
        cmocka_unit_test(test_zstd_round_trips),
        cmocka_unit_test(test_small_and_incompressible_bodies_are_left_alone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
