/*
 * The WebSocket frame codec (src/ws/frame.c) as a specification: every
 * header rule of RFC 6455 section 5 in its own test, each length encoding at
 * its edges, headers fed split at every byte, masking against a byte-by-byte
 * reference for every length, offset and alignment, UTF-8 validation against
 * tables (including the Autobahn suite's cases) and exhaustively against a
 * reference decoder, close payloads for every code, and the handshake's
 * accept key.
 *
 * Inputs are parsed from exactly sized heap copies, so under ASan a read one
 * byte past the end is caught.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "ws/frame.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define BYTES(s)     (const uint8_t *)(s), sizeof(s) - 1

static const uint8_t test_mask[4] = {0x37, 0xfa, 0x21, 0x3d}; /* RFC 6455 5.7 */

/* ------------------------------------------------------------ helpers */

static uint8_t *copy_exact(const uint8_t *p, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    assert_non_null(b);
    if (n)
        memcpy(b, p, n);
    return b;
}

/* ws_parse_header on an exact copy of p[0..n) */
static int parse(const uint8_t *p, size_t n, bool expect_masked, uint8_t allowed_rsv,
                 uint64_t max_len, ws_header *h)
{
    uint8_t *b = copy_exact(p, n);
    int rc = ws_parse_header(b, n, expect_masked, allowed_rsv, max_len, h);
    free(b);
    return rc;
}

/* server side, no extensions, no limit */
static int parse_server(const uint8_t *p, size_t n)
{
    ws_header h;
    return parse(p, n, true, 0, 0, &h);
}

/* client side, no extensions, no limit */
static int parse_client(const uint8_t *p, size_t n)
{
    ws_header h;
    return parse(p, n, false, 0, 0, &h);
}

/* A header with a given first byte and length, unmasked or masked. */
static size_t header(uint8_t out[WS_HEADER_MAX], uint8_t byte0, uint64_t len, bool masked)
{
    size_t n = ws_write_header(out, true, 0, 0, len, masked ? test_mask : NULL);
    out[0] = byte0;
    return n;
}

static int utf8_whole(const uint8_t *p, size_t n)
{
    uint8_t *b = copy_exact(p, n);
    uint32_t state = 0;
    int rc = ws_utf8_feed(&state, b, n);
    free(b);
    return rc;
}

/* Feeds p[0..n) one byte at a time; returns the index of the byte that made
 * it BAD, or n when none did (then *last is the last result). */
static size_t utf8_bad_at_bytewise(const uint8_t *p, size_t n, int *last)
{
    uint32_t state = 0;
    *last = WS_UTF8_OK;
    for (size_t i = 0; i < n; i++) {
        uint8_t *b = copy_exact(p + i, 1);
        *last = ws_utf8_feed(&state, b, 1);
        free(b);
        if (*last == WS_UTF8_BAD)
            return i;
    }
    return n;
}

/*
 * Reference UTF-8 check by a different method than frame.c's: for each
 * character, after each of its bytes, the range of code points the bytes
 * so far can still complete to must meet the valid ones for that length
 * (above the overlong limit, at most U+10FFFF, not all surrogates).
 * Returns the index of the first byte that breaks that, or n; *complete
 * says whether a valid input ends between characters.
 */
static size_t ref_utf8_bad_at(const uint8_t *p, size_t n, bool *complete)
{
    static const uint32_t lowest[5] = {0, 0, 0x80, 0x800, 0x10000};
    size_t j = 0;
    *complete = true;
    while (j < n) {
        uint8_t c = p[j];
        size_t len = c < 0x80 ? 1 : c < 0xC0 ? 0 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF8 ? 4 : 0;
        if (len == 0)
            return j;
        for (size_t m = 1; m <= len; m++) {
            if (j + m > n) {
                *complete = false;
                return n;
            }
            if (m > 1 && (p[j + m - 1] & 0xC0) != 0x80)
                return j + m - 1;
            uint32_t first = len == 1 ? c : (uint32_t)(c & (0x7F >> len));
            uint32_t min = first, max = first;
            for (size_t k = 1; k < len; k++) {
                uint32_t bits = k < m ? (uint32_t)(p[j + k] & 0x3F) : 0;
                min = min << 6 | bits;
                max = max << 6 | (k < m ? bits : 0x3F);
            }
            if (min < lowest[len])
                min = lowest[len];
            if (max > 0x10FFFF)
                max = 0x10FFFF;
            if (min > max || (min >= 0xD800 && max <= 0xDFFF))
                return j + m - 1;
        }
        j += len;
    }
    return n;
}

static size_t encode_utf8(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* ------------------------------------------------------------ valid headers */

static void test_unmasked_text_frame_with_7bit_length_parses(void **state)
{
    ws_header h;
    assert_int_equal(parse(BYTES("\x81\x05Hello"), false, 0, 0, &h), 2);
    assert_true(h.fin);
    assert_int_equal(h.rsv, 0);
    assert_int_equal(h.opcode, WS_OP_TEXT);
    assert_false(h.masked);
    assert_memory_equal(h.mask, "\0\0\0\0", 4);
    assert_int_equal(h.len, 5);
    assert_int_equal(h.size, 2);
}

static void test_rfc_masked_hello_parses_and_unmasks(void **state)
{
    /* RFC 6455 5.7: a single-frame masked text message containing "Hello" */
    uint8_t frame[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58};
    ws_header h;
    assert_int_equal(parse(frame, sizeof frame, true, 0, 0, &h), 6);
    assert_true(h.fin && h.masked);
    assert_int_equal(h.opcode, WS_OP_TEXT);
    assert_memory_equal(h.mask, test_mask, 4);
    assert_int_equal(h.len, 5);
    assert_int_equal(h.size, 6);
    ws_unmask(frame + h.size, h.len, h.mask, 0);
    assert_memory_equal(frame + h.size, "Hello", 5);
}

static void test_rfc_fragmented_text_parses_as_text_then_continuation(void **state)
{
    ws_header h;
    assert_int_equal(parse(BYTES("\x01\x03Hel"), false, 0, 0, &h), 2);
    assert_false(h.fin);
    assert_int_equal(h.opcode, WS_OP_TEXT);
    assert_int_equal(h.len, 3);
    assert_int_equal(parse(BYTES("\x80\x02lo"), false, 0, 0, &h), 2);
    assert_true(h.fin);
    assert_int_equal(h.opcode, WS_OP_CONT);
    assert_int_equal(h.len, 2);
}

static void test_16bit_length_parses(void **state)
{
    /* RFC 6455 5.7: 256 bytes binary message in a single unmasked frame */
    ws_header h;
    assert_int_equal(parse(BYTES("\x82\x7E\x01\x00"), false, 0, 0, &h), 4);
    assert_int_equal(h.opcode, WS_OP_BINARY);
    assert_int_equal(h.len, 256);
    assert_int_equal(h.size, 4);
    assert_int_equal(parse(BYTES("\x82\x7E\xFF\xFF"), false, 0, 0, &h), 4);
    assert_int_equal(h.len, 65535);
}

static void test_64bit_length_parses(void **state)
{
    /* RFC 6455 5.7: 64KiB binary message in a single unmasked frame */
    ws_header h;
    assert_int_equal(parse(BYTES("\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00"), false, 0, 0, &h), 10);
    assert_int_equal(h.len, 65536);
    assert_int_equal(h.size, 10);
    assert_int_equal(parse(BYTES("\x82\x7F\x01\x02\x03\x04\x05\x06\x07\x08"), false, 0, 0, &h), 10);
    assert_true(h.len == 0x0102030405060708u);
}

static void test_largest_64bit_length_parses_without_a_limit(void **state)
{
    ws_header h;
    assert_int_equal(parse(BYTES("\x82\x7F\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF"), false, 0, 0, &h), 10);
    assert_true(h.len == INT64_MAX);
}

static void test_masked_headers_of_every_length_encoding_carry_the_mask(void **state)
{
    static const struct {
        uint64_t len;
        size_t size;
    } cases[] = {{0, 6}, {125, 6}, {126, 8}, {65535, 8}, {65536, 14}, {1u << 31, 14}};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint8_t b[WS_HEADER_MAX];
        size_t n = ws_write_header(b, true, 0, WS_OP_BINARY, cases[i].len, test_mask);
        assert_int_equal(n, cases[i].size);
        ws_header h;
        assert_int_equal(parse(b, n, true, 0, 0, &h), (int)cases[i].size);
        assert_true(h.masked);
        assert_memory_equal(h.mask, test_mask, 4);
        assert_true(h.len == cases[i].len);
        assert_int_equal(h.size, cases[i].size);
    }
}

static void test_bytes_after_the_header_are_ignored(void **state)
{
    ws_header h;
    assert_int_equal(parse(BYTES("\x89\x00\x81\x05Hello"), false, 0, 0, &h), 2);
    assert_int_equal(h.opcode, WS_OP_PING);
    assert_int_equal(h.len, 0);
    /* and a frame's payload may be shorter than its length: only the header counts */
    assert_int_equal(parse(BYTES("\x82\x7E\x01\x00xyz"), false, 0, 0, &h), 4);
    assert_int_equal(h.len, 256);
}

static void test_known_opcodes_parse(void **state)
{
    static const uint8_t ops[] = {WS_OP_CONT,  WS_OP_TEXT, WS_OP_BINARY,
                                  WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    for (size_t i = 0; i < ARRAY_LEN(ops); i++) {
        uint8_t b[2] = {(uint8_t)(0x80 | ops[i]), 0x00};
        ws_header h;
        assert_int_equal(parse(b, 2, false, 0, 0, &h), 2);
        assert_int_equal(h.opcode, ops[i]);
    }
}

/* ------------------------------------------------------------ split at every byte */

static void test_every_valid_header_split_at_every_byte_needs_more_until_complete(void **state)
{
    static const uint64_t lens[] = {0, 1, 125, 126, 127, 65535, 65536, (uint64_t)INT64_MAX};
    for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
        for (int masked = 0; masked <= 1; masked++) {
            for (int fin = 0; fin <= 1; fin++) {
                uint8_t b[WS_HEADER_MAX + 3] = {0};
                size_t n =
                    ws_write_header(b, fin, 0, WS_OP_BINARY, lens[i], masked ? test_mask : NULL);
                ws_header h;
                for (size_t k = 0; k < n; k++)
                    assert_int_equal(parse(b, k, masked, 0, 0, &h), 0);
                for (size_t k = n; k <= n + 3; k++) { /* complete, with payload bytes behind */
                    assert_int_equal(parse(b, k, masked, 0, 0, &h), (int)n);
                    assert_true(h.len == lens[i]);
                    assert_int_equal(h.fin, fin);
                }
            }
        }
    }
}

static void test_every_invalid_header_split_at_every_byte_gives_0_or_its_error(void **state)
{
    static const struct {
        const char *raw;
        size_t n;
        bool expect_masked;
        uint64_t max_len;
        int rc;
    } cases[] = {
        {"\x83\x00", 2, false, 0, WS_E_PROTOCOL},                        /* reserved opcode */
        {"\xC1\x00", 2, false, 0, WS_E_PROTOCOL},                        /* RSV1 */
        {"\x08\x00", 2, false, 0, WS_E_PROTOCOL},                        /* fragmented close */
        {"\x89\x7E\x00\x7E", 4, false, 0, WS_E_PROTOCOL},                /* ping of 126 */
        {"\x81\x85\x01\x02\x03\x04", 6, false, 0, WS_E_PROTOCOL},        /* masked to a client */
        {"\x81\x05", 2, true, 0, WS_E_PROTOCOL},                         /* unmasked to a server */
        {"\x82\xFE\x00\x7D\x01\x02\x03\x04", 8, true, 0, WS_E_PROTOCOL}, /* 16-bit 125 */
        {"\x82\x7F\x00\x00\x00\x00\x00\x00\xFF\xFF", 10, false, 0, WS_E_PROTOCOL},
        {"\x82\x7F\x80\x00\x00\x00\x00\x00\x00\x00", 10, false, 0, WS_E_PROTOCOL},
        {"\x82\xFE\x01\x00\x01\x02\x03\x04", 8, true, 255, WS_E_TOO_BIG},
        {"\x82\xFF\x00\x00\x00\x01\x00\x00\x00\x00\x01\x02\x03\x04", 14, true, 1 << 20,
         WS_E_TOO_BIG},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const uint8_t *raw = (const uint8_t *)cases[i].raw;
        ws_header h;
        assert_int_equal(parse(raw, cases[i].n, cases[i].expect_masked, 0, cases[i].max_len, &h),
                         cases[i].rc);
        for (size_t k = 0; k < cases[i].n; k++) {
            int rc = parse(raw, k, cases[i].expect_masked, 0, cases[i].max_len, &h);
            assert_true(rc == 0 || rc == cases[i].rc);
        }
    }
}

static void test_errors_of_the_first_byte_are_reported_before_the_second_arrives(void **state)
{
    assert_int_equal(parse_client(BYTES("\x83")), WS_E_PROTOCOL); /* reserved opcode */
    assert_int_equal(parse_client(BYTES("\x91")), WS_E_PROTOCOL); /* RSV3 */
    assert_int_equal(parse_client(BYTES("\x0A")), WS_E_PROTOCOL); /* fragmented pong */
    assert_int_equal(parse_client(BYTES("\x81")), 0);
    assert_int_equal(parse_client(BYTES("")), 0);
}

static void test_errors_of_the_second_byte_are_reported_before_the_length_arrives(void **state)
{
    assert_int_equal(parse_server(BYTES("\x82\x7E")), WS_E_PROTOCOL); /* unmasked to a server */
    assert_int_equal(parse_client(BYTES("\x82\xFF")), WS_E_PROTOCOL); /* masked to a client */
    assert_int_equal(parse_client(BYTES("\x88\x7F")), WS_E_PROTOCOL); /* 64-bit close */
    assert_int_equal(parse_client(BYTES("\x82\x7E")), 0);
}

/* ------------------------------------------------------------ header rules */

static void test_reserved_opcodes_are_protocol_errors(void **state)
{
    for (uint8_t op = 0; op < 16; op++) {
        if (op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG))
            continue;
        uint8_t b[2] = {(uint8_t)(0x80 | op), 0x00};
        assert_int_equal(parse_client(b, 2), WS_E_PROTOCOL);
        uint8_t masked[6] = {b[0], 0x80, 1, 2, 3, 4};
        assert_int_equal(parse_server(masked, 6), WS_E_PROTOCOL);
    }
}

static void test_rsv_bits_are_protocol_errors_without_an_extension(void **state)
{
    for (uint8_t rsv = 1; rsv < 8; rsv++) {
        uint8_t b[2] = {(uint8_t)(0x80 | rsv << 4 | WS_OP_TEXT), 0x00};
        assert_int_equal(parse_client(b, 2), WS_E_PROTOCOL);
    }
}

static void test_rsv1_is_allowed_with_permessage_deflate_and_rsv2_rsv3_are_not(void **state)
{
    for (uint8_t rsv = 0; rsv < 8; rsv++) {
        uint8_t b[2] = {(uint8_t)(0x80 | rsv << 4 | WS_OP_TEXT), 0x00};
        ws_header h;
        int rc = parse(b, 2, false, WS_RSV1, 0, &h);
        if (rsv == 0 || rsv == WS_RSV1) {
            assert_int_equal(rc, 2);
            assert_int_equal(h.rsv, rsv);
        } else {
            assert_int_equal(rc, WS_E_PROTOCOL);
        }
    }
}

static void test_rsv_bits_are_reported_as_0_to_7_with_rsv1_as_4(void **state)
{
    ws_header h;
    assert_int_equal(parse(BYTES("\xC1\x00"), false, 7, 0, &h), 2);
    assert_int_equal(h.rsv, 4);
    assert_int_equal(parse(BYTES("\xA1\x00"), false, 7, 0, &h), 2);
    assert_int_equal(h.rsv, 2);
    assert_int_equal(parse(BYTES("\x91\x00"), false, 7, 0, &h), 2);
    assert_int_equal(h.rsv, 1);
    assert_int_equal(parse(BYTES("\xF1\x00"), false, 7, 0, &h), 2);
    assert_int_equal(h.rsv, 7);
}

static void test_fragmented_control_frames_are_protocol_errors(void **state)
{
    assert_int_equal(parse_client(BYTES("\x08\x00")), WS_E_PROTOCOL);
    assert_int_equal(parse_client(BYTES("\x09\x00")), WS_E_PROTOCOL);
    assert_int_equal(parse_client(BYTES("\x0A\x00")), WS_E_PROTOCOL);
    assert_int_equal(parse_client(BYTES("\x88\x00")), 2);
    /* data frames may be fragmented */
    assert_int_equal(parse_client(BYTES("\x01\x00")), 2);
    assert_int_equal(parse_client(BYTES("\x02\x00")), 2);
    assert_int_equal(parse_client(BYTES("\x00\x00")), 2);
}

static void test_control_frames_over_125_bytes_are_protocol_errors(void **state)
{
    static const uint8_t ops[] = {WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    for (size_t i = 0; i < ARRAY_LEN(ops); i++) {
        uint8_t b[WS_HEADER_MAX];
        uint8_t byte0 = (uint8_t)(0x80 | ops[i]);
        size_t n = header(b, byte0, 125, false);
        assert_int_equal(parse_client(b, n), 2);
        n = header(b, byte0, 126, false);
        assert_int_equal(parse_client(b, n), WS_E_PROTOCOL);
        n = header(b, byte0, 65536, false);
        assert_int_equal(parse_client(b, n), WS_E_PROTOCOL);
        n = header(b, byte0, 126, true);
        assert_int_equal(parse_server(b, n), WS_E_PROTOCOL);
    }
}

static void test_16bit_length_below_126_is_a_protocol_error(void **state)
{
    assert_int_equal(parse_client(BYTES("\x82\x7E\x00\x00")), WS_E_PROTOCOL);
    assert_int_equal(parse_client(BYTES("\x82\x7E\x00\x7D")), WS_E_PROTOCOL);
    assert_int_equal(parse_client(BYTES("\x82\x7E\x00\x7E")), 4);
}

static void test_64bit_length_below_65536_is_a_protocol_error(void **state)
{
    assert_int_equal(parse_client(BYTES("\x82\x7F\x00\x00\x00\x00\x00\x00\x00\x00")),
                     WS_E_PROTOCOL);
    assert_int_equal(parse_client(BYTES("\x82\x7F\x00\x00\x00\x00\x00\x00\x00\x7D")),
                     WS_E_PROTOCOL);
    assert_int_equal(parse_client(BYTES("\x82\x7F\x00\x00\x00\x00\x00\x00\xFF\xFF")),
                     WS_E_PROTOCOL);
    assert_int_equal(parse_client(BYTES("\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00")), 10);
}

static void test_64bit_length_with_the_top_bit_set_is_a_protocol_error(void **state)
{
    assert_int_equal(parse_client(BYTES("\x82\x7F\x80\x00\x00\x00\x00\x00\x00\x00")),
                     WS_E_PROTOCOL);
    assert_int_equal(parse_client(BYTES("\x82\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF\xFF")),
                     WS_E_PROTOCOL);
    assert_int_equal(parse_client(BYTES("\x82\x7F\x80\x00\x00\x00\x00\x01\x00\x00")),
                     WS_E_PROTOCOL);
}

static void test_server_rejects_unmasked_frames(void **state)
{
    assert_int_equal(parse_server(BYTES("\x81\x05Hello")), WS_E_PROTOCOL);
    assert_int_equal(parse_server(BYTES("\x88\x00")), WS_E_PROTOCOL);
    assert_int_equal(parse_server(BYTES("\x81\x85\x37\xfa\x21\x3d")), 6);
}

static void test_client_rejects_masked_frames(void **state)
{
    assert_int_equal(parse_client(BYTES("\x81\x85\x37\xfa\x21\x3d")), WS_E_PROTOCOL);
    assert_int_equal(parse_client(BYTES("\x8A\x80\x00\x00\x00\x00")), WS_E_PROTOCOL);
    assert_int_equal(parse_client(BYTES("\x81\x05Hello")), 2);
}

static void test_payload_over_max_len_is_message_too_big(void **state)
{
    static const uint64_t limits[] = {1, 125, 126, 65535, 65536, 1u << 20};
    for (size_t i = 0; i < ARRAY_LEN(limits); i++) {
        for (int masked = 0; masked <= 1; masked++) {
            uint8_t b[WS_HEADER_MAX];
            ws_header h;
            size_t n = header(b, 0x82, limits[i], masked);
            assert_int_equal(parse(b, n, masked, 0, limits[i], &h), (int)n);
            n = header(b, 0x82, limits[i] + 1, masked);
            assert_int_equal(parse(b, n, masked, 0, limits[i], &h), WS_E_TOO_BIG);
        }
    }
}

static void test_message_too_big_is_reported_before_the_mask_arrives(void **state)
{
    ws_header h;
    assert_int_equal(parse(BYTES("\x82\xFE\x10\x00"), true, 0, 4095, &h), WS_E_TOO_BIG);
    assert_int_equal(parse(BYTES("\x82\xFE\x10\x00"), true, 0, 4096, &h), 0);
}

static void test_max_len_0_means_no_limit(void **state)
{
    ws_header h;
    assert_int_equal(parse(BYTES("\x82\x7F\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF"), false, 0, 0, &h), 10);
    assert_int_equal(
        parse(BYTES("\x82\x7F\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF"), false, 0, UINT64_MAX, &h), 10);
}

static void test_control_frames_are_subject_to_max_len(void **state)
{
    ws_header h;
    assert_int_equal(parse(BYTES("\x89\x0A"), false, 0, 9, &h), WS_E_TOO_BIG);
    assert_int_equal(parse(BYTES("\x89\x0A"), false, 0, 10, &h), 2);
}

static void test_protocol_errors_win_over_message_too_big(void **state)
{
    ws_header h;
    /* non-minimal, top bit, oversized control, wrong masking: all also over the limit */
    assert_int_equal(parse(BYTES("\x82\x7E\x00\x64"), false, 0, 10, &h), WS_E_PROTOCOL);
    assert_int_equal(parse(BYTES("\x82\x7F\x80\x00\x00\x00\x00\x00\x00\x00"), false, 0, 10, &h),
                     WS_E_PROTOCOL);
    assert_int_equal(parse(BYTES("\x89\x7E\x00\xC8"), false, 0, 10, &h), WS_E_PROTOCOL);
    assert_int_equal(parse(BYTES("\x82\x7E\x00\xC8"), true, 0, 10, &h), WS_E_PROTOCOL);
    assert_int_equal(parse(BYTES("\xC2\x7E\x00\xC8"), false, 0, 10, &h), WS_E_PROTOCOL);
}

static void test_header_is_written_only_on_success(void **state)
{
    ws_header h, untouched;
    memset(&h, 0xAB, sizeof h);
    memcpy(&untouched, &h, sizeof h);
    assert_int_equal(parse(BYTES("\x81\x85\x37\xfa"), true, 0, 0, &h), 0);
    assert_memory_equal(&h, &untouched, sizeof h);
    assert_int_equal(parse(BYTES("\x83\x00"), false, 0, 0, &h), WS_E_PROTOCOL);
    assert_memory_equal(&h, &untouched, sizeof h);
    assert_int_equal(parse(BYTES("\x82\x7E\x01\x00"), false, 0, 1, &h), WS_E_TOO_BIG);
    assert_memory_equal(&h, &untouched, sizeof h);
}

/* ------------------------------------------------------------ writing headers */

static void test_write_header_uses_the_shortest_length_encoding(void **state)
{
    static const struct {
        uint64_t len;
        size_t size;
    } cases[] = {{0, 2},
                 {125, 2},
                 {126, 4},
                 {65535, 4},
                 {65536, 10},
                 {1u << 31, 10},
                 {(uint64_t)INT64_MAX, 10}};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint8_t b[WS_HEADER_MAX];
        assert_int_equal(ws_write_header(b, true, 0, WS_OP_BINARY, cases[i].len, NULL),
                         cases[i].size);
        assert_int_equal(ws_write_header(b, true, 0, WS_OP_BINARY, cases[i].len, test_mask),
                         cases[i].size + 4);
    }
}

static void test_write_header_produces_the_rfc_example_bytes(void **state)
{
    uint8_t b[WS_HEADER_MAX];
    assert_int_equal(ws_write_header(b, true, 0, WS_OP_TEXT, 5, NULL), 2);
    assert_memory_equal(b, "\x81\x05", 2);
    assert_int_equal(ws_write_header(b, true, 0, WS_OP_TEXT, 5, test_mask), 6);
    assert_memory_equal(b, "\x81\x85\x37\xfa\x21\x3d", 6);
    assert_int_equal(ws_write_header(b, false, 0, WS_OP_TEXT, 3, NULL), 2);
    assert_memory_equal(b, "\x01\x03", 2);
    assert_int_equal(ws_write_header(b, true, 0, WS_OP_CONT, 2, NULL), 2);
    assert_memory_equal(b, "\x80\x02", 2);
    assert_int_equal(ws_write_header(b, true, 0, WS_OP_PING, 5, NULL), 2);
    assert_memory_equal(b, "\x89\x05", 2);
    assert_int_equal(ws_write_header(b, true, 0, WS_OP_BINARY, 256, NULL), 4);
    assert_memory_equal(b, "\x82\x7E\x01\x00", 4);
    assert_int_equal(ws_write_header(b, true, 0, WS_OP_BINARY, 65536, NULL), 10);
    assert_memory_equal(b, "\x82\x7F\x00\x00\x00\x00\x00\x01\x00\x00", 10);
    assert_int_equal(ws_write_header(b, true, WS_RSV1, WS_OP_TEXT, 7, NULL), 2);
    assert_memory_equal(b, "\xC1\x07", 2);
}

static void test_write_header_round_trips_through_parse_header(void **state)
{
    static const uint8_t ops[] = {WS_OP_CONT,  WS_OP_TEXT, WS_OP_BINARY,
                                  WS_OP_CLOSE, WS_OP_PING, WS_OP_PONG};
    static const uint64_t lens[] = {
        0, 1, 125, 126, 127, 65535, 65536, 0x12345678, (uint64_t)INT64_MAX};
    for (size_t o = 0; o < ARRAY_LEN(ops); o++)
        for (size_t l = 0; l < ARRAY_LEN(lens); l++)
            for (uint8_t rsv = 0; rsv < 8; rsv++)
                for (int fin = 0; fin <= 1; fin++)
                    for (int masked = 0; masked <= 1; masked++) {
                        bool control = ops[o] >= WS_OP_CLOSE;
                        if (control && (!fin || lens[l] > WS_CONTROL_MAX))
                            continue;
                        uint8_t b[WS_HEADER_MAX];
                        size_t n = ws_write_header(b, fin, rsv, ops[o], lens[l],
                                                   masked ? test_mask : NULL);
                        ws_header h;
                        assert_int_equal(parse(b, n, masked, 7, 0, &h), (int)n);
                        assert_int_equal(h.fin, fin);
                        assert_int_equal(h.rsv, rsv);
                        assert_int_equal(h.opcode, ops[o]);
                        assert_int_equal(h.masked, masked);
                        assert_true(h.len == lens[l]);
                        assert_int_equal(h.size, n);
                        if (masked)
                            assert_memory_equal(h.mask, test_mask, 4);
                    }
}

/* ------------------------------------------------------------ masking */

static void reference_unmask(uint8_t *p, size_t n, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < n; i++)
        p[i] ^= mask[(offset + i) % 4];
}

static void
test_unmask_matches_a_bytewise_reference_for_every_length_offset_and_alignment(void **state)
{
    enum { MAX = 300, ALIGN = 16 };
    static const uint64_t offsets[] = {0, 1, 2, 3, 4, 5, 6, 7, 0x100000003u, UINT64_MAX};
    uint8_t src[MAX + ALIGN], ref[MAX];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (uint8_t)(i * 131 + 7);
    for (size_t n = 0; n <= MAX; n += n < 70 ? 1 : 23)
        for (size_t a = 0; a < ALIGN; a++)
            for (size_t o = 0; o < ARRAY_LEN(offsets); o++) {
                uint8_t *buf = copy_exact(src + a, n);
                memcpy(ref, src + a, n);
                reference_unmask(ref, n, test_mask, offsets[o]);
                ws_unmask(buf, n, test_mask, offsets[o]);
                if (n)
                    assert_memory_equal(buf, ref, n);
                free(buf);
            }
}

static void test_unmask_in_pieces_equals_unmasking_whole(void **state)
{
    enum { N = 203 };
    uint8_t src[N], whole[N];
    for (size_t i = 0; i < N; i++)
        src[i] = (uint8_t)(i ^ 0x5A);
    memcpy(whole, src, N);
    ws_unmask(whole, N, test_mask, 0);
    for (size_t a = 0; a <= N; a++)
        for (size_t b = a; b <= N; b += 17) {
            uint8_t *buf = copy_exact(src, N);
            ws_unmask(buf, a, test_mask, 0);
            ws_unmask(buf + a, b - a, test_mask, a);
            ws_unmask(buf + b, N - b, test_mask, b);
            assert_memory_equal(buf, whole, N);
            free(buf);
        }
}

static void test_unmask_twice_restores_the_data(void **state)
{
    uint8_t data[1000], orig[1000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = orig[i] = (uint8_t)(i * 7);
    ws_unmask(data, sizeof data, test_mask, 5);
    assert_memory_not_equal(data, orig, sizeof data);
    ws_unmask(data, sizeof data, test_mask, 5);
    assert_memory_equal(data, orig, sizeof data);
}

static void test_unmask_of_nothing_touches_nothing(void **state)
{
    uint8_t *b = copy_exact(BYTES("x"));
    ws_unmask(b, 0, test_mask, 3);
    assert_int_equal(b[0], 'x');
    free(b);
}

/* ------------------------------------------------------------ UTF-8 tables */

typedef struct utf8_case {
    const char *raw;
    size_t n;
    int whole;     /* result of feeding it whole */
    size_t bad_at; /* for BAD: the index of the byte that makes it invalid */
} utf8_case;

#define VALID(s)                                                                                   \
    {                                                                                              \
        (s), sizeof(s) - 1, WS_UTF8_OK, 0                                                          \
    }
#define PARTIAL(s)                                                                                 \
    {                                                                                              \
        (s), sizeof(s) - 1, WS_UTF8_PARTIAL, 0                                                     \
    }
#define INVALID(s, index)                                                                          \
    {                                                                                              \
        (s), sizeof(s) - 1, WS_UTF8_BAD, (index)                                                   \
    }

static const utf8_case utf8_cases[] = {
    VALID(""),
    VALID("Hello-\xC2\xB5@\xC3\x9F\xC3\xB6\xC3\xA4\xC3\xBC\xC3\xA0\xC3\xA1-UTF-8!!"),
    VALID("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"), /* κόσμε (Autobahn 6.2) */
    /* first and last of each length */
    VALID("\x00"),
    VALID("\x7F"),
    VALID("\xC2\x80"),
    VALID("\xDF\xBF"),
    VALID("\xE0\xA0\x80"),
    VALID("\xEF\xBF\xBF"),
    VALID("\xF0\x90\x80\x80"),
    VALID("\xF4\x8F\xBF\xBF"),
    /* around the surrogates, and noncharacters (valid in UTF-8) */
    VALID("\xED\x9F\xBF"),
    VALID("\xEE\x80\x80"),
    VALID("\xEF\xBF\xBE"),
    VALID("\xEF\xB7\x90"),
    VALID("\xF3\xBF\xBF\xBF"),
    /* long ASCII runs around multi-byte characters (the fast paths) */
    VALID("0123456789abcdef0123456789abcdef0123456789abcdef\xE2\x82\xAC"
          "0123456789abcdef0123456789abcdef\xF0\x9F\x98\x80xyz"),
    /* truncated at the end: valid so far */
    PARTIAL("\xC2"),
    PARTIAL("\xE2\x82"),
    PARTIAL("\xF0\x9F\x98"),
    PARTIAL("abc\xF4"),
    PARTIAL("\xce\xba\xe1\xbd"),
    /* lone and unexpected continuation bytes */
    INVALID("\x80", 0),
    INVALID("\xBF", 0),
    INVALID("a\x80", 1),
    INVALID("\xC2\x80\x80", 2),
    INVALID("\xE2\x82\xAC\xAC", 3),
    /* a lead byte followed by a non-continuation */
    INVALID("\xC2\x41", 1),
    INVALID("\xE2\x82\x41", 2),
    INVALID("\xF0\x9F\x98\x41", 3),
    INVALID("\xC2\xC2\x80", 1),
    INVALID("\xE0\xA0 ", 2),
    /* bytes that never appear */
    INVALID("\xC0", 0),
    INVALID("\xC1", 0),
    INVALID("\xF5", 0),
    INVALID("\xF8\x88\x80\x80\x80", 0),
    INVALID("\xFC\x84\x80\x80\x80\x80", 0),
    INVALID("\xFE", 0),
    INVALID("\xFF", 0),
    /* overlong forms, failing on the byte that proves it */
    INVALID("\xC0\xAF", 0),
    INVALID("\xC1\xBF", 0),
    INVALID("\xE0\x80\xAF", 1),
    INVALID("\xE0\x9F\xBF", 1),
    INVALID("\xF0\x80\x80\xAF", 1),
    INVALID("\xF0\x8F\xBF\xBF", 1),
    /* surrogates, alone and paired */
    INVALID("\xed\xa0\x80", 1),
    INVALID("\xED\xAD\xBF", 1),
    INVALID("\xED\xAE\x80", 1),
    INVALID("\xED\xBF\xBF", 1),
    INVALID("\xED\xA0\x80\xED\xB0\x80", 1),
    INVALID("\xED\xAF\xBF\xED\xBF\xBF", 1),
    /* above U+10FFFF */
    INVALID("\xF4\x90\x80\x80", 1),
    INVALID("\xF7\xBF\xBF\xBF", 0),
    /* Autobahn 6.4.x: valid text, then a byte that breaks it, then more */
    INVALID("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90\x80\x80\x65\x64\x69\x74\x65"
            "\x64",
            12),
    INVALID("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64", 12),
    INVALID("\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\x80\x65\x64\x69\x74\x65\x64", 11),
    /* an invalid byte deep inside ASCII runs (the fast paths must stop on it) */
    INVALID("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\xFF", 64),
    INVALID("0123456789abcdef0123456789abcdef01234567\x80"
            "9abcdef",
            40),
};

static void test_utf8_table_whole(void **state)
{
    for (size_t i = 0; i < ARRAY_LEN(utf8_cases); i++) {
        const utf8_case *c = &utf8_cases[i];
        if (utf8_whole((const uint8_t *)c->raw, c->n) != c->whole)
            fail_msg("case %zu: expected %d", i, c->whole);
    }
}

static void test_utf8_table_agrees_with_the_reference(void **state)
{
    for (size_t i = 0; i < ARRAY_LEN(utf8_cases); i++) {
        const utf8_case *c = &utf8_cases[i];
        bool complete;
        size_t bad = ref_utf8_bad_at((const uint8_t *)c->raw, c->n, &complete);
        int expect = bad < c->n ? WS_UTF8_BAD : complete ? WS_UTF8_OK : WS_UTF8_PARTIAL;
        if (expect != c->whole || (c->whole == WS_UTF8_BAD && bad != c->bad_at))
            fail_msg("case %zu: the table is wrong (reference: %d at %zu)", i, expect, bad);
    }
}

static void test_utf8_fails_on_the_first_byte_that_makes_it_invalid(void **state)
{
    for (size_t i = 0; i < ARRAY_LEN(utf8_cases); i++) {
        const utf8_case *c = &utf8_cases[i];
        int last;
        size_t bad = utf8_bad_at_bytewise((const uint8_t *)c->raw, c->n, &last);
        if (c->whole == WS_UTF8_BAD) {
            if (bad != c->bad_at)
                fail_msg("case %zu: BAD at byte %zu, expected %zu", i, bad, c->bad_at);
        } else if (bad != c->n || (c->n && last != c->whole)) {
            fail_msg("case %zu: bytewise gave %d", i, last);
        }
    }
}

static void test_utf8_split_at_every_pair_of_points_gives_the_whole_result(void **state)
{
    for (size_t i = 0; i < ARRAY_LEN(utf8_cases); i++) {
        const utf8_case *c = &utf8_cases[i];
        const uint8_t *raw = (const uint8_t *)c->raw;
        for (size_t a = 0; a <= c->n; a++)
            for (size_t b = a; b <= c->n; b++) {
                size_t cuts[4] = {0, a, b, c->n};
                uint32_t st = 0;
                int rc = WS_UTF8_OK;
                for (int k = 0; k < 3; k++) {
                    uint8_t *piece = copy_exact(raw + cuts[k], cuts[k + 1] - cuts[k]);
                    int r = ws_utf8_feed(&st, piece, cuts[k + 1] - cuts[k]);
                    free(piece);
                    if (r == WS_UTF8_BAD) /* BAD only once the bad byte has been fed */
                        assert_true(c->whole == WS_UTF8_BAD && c->bad_at < cuts[k + 1]);
                    else if (c->whole == WS_UTF8_BAD)
                        assert_true(c->bad_at >= cuts[k + 1]);
                    rc = r;
                }
                if (rc != c->whole)
                    fail_msg("case %zu split at %zu,%zu: %d, expected %d", i, a, b, rc, c->whole);
            }
    }
}

static void test_utf8_table_inside_ascii_text_agrees_with_the_reference(void **state)
{
    /* With text around it, each case is checked by the whole-character path too. */
    static const char text[] = "0123456789abcdef0123456789abcdef0123";
    for (size_t i = 0; i < ARRAY_LEN(utf8_cases); i++) {
        const utf8_case *c = &utf8_cases[i];
        for (size_t before = 0; before <= 17; before++)
            for (size_t after = 0; after <= 20; after += 4) {
                uint8_t buf[128];
                size_t n = 0;
                memcpy(buf, text, before);
                n += before;
                memcpy(buf + n, c->raw, c->n);
                n += c->n;
                memcpy(buf + n, text, after);
                n += after;
                bool complete;
                size_t bad = ref_utf8_bad_at(buf, n, &complete);
                int expect = bad < n ? WS_UTF8_BAD : complete ? WS_UTF8_OK : WS_UTF8_PARTIAL;
                int rc = utf8_whole(buf, n);
                if (rc != expect)
                    fail_msg("case %zu with %zu before, %zu after: %d, reference %d", i, before,
                             after, rc, expect);
                if (c->whole == WS_UTF8_BAD)
                    assert_int_equal(bad, before + c->bad_at);
            }
    }
}

static void test_utf8_partial_then_end_of_message_is_not_ok(void **state)
{
    uint32_t st = 0;
    assert_int_equal(ws_utf8_feed(&st, BYTES("ab\xE2\x82")), WS_UTF8_PARTIAL);
    assert_int_not_equal(st, 0); /* the message must not end here */
    assert_int_equal(ws_utf8_feed(&st, BYTES("")), WS_UTF8_PARTIAL);
    assert_int_equal(ws_utf8_feed(&st, BYTES("\xAC")), WS_UTF8_OK);
    assert_int_equal(st, 0);
}

static void test_utf8_bad_state_is_sticky(void **state)
{
    uint32_t st = 0;
    assert_int_equal(ws_utf8_feed(&st, BYTES("\xFF")), WS_UTF8_BAD);
    assert_int_equal(ws_utf8_feed(&st, BYTES("abc")), WS_UTF8_BAD);
    assert_int_equal(ws_utf8_feed(&st, BYTES("")), WS_UTF8_BAD);
    assert_int_not_equal(st, 0);
}

static void test_utf8_accepts_every_scalar_value_and_rejects_every_surrogate(void **state)
{
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t b[4];
        size_t n = encode_utf8(cp, b);
        uint32_t st = 0;
        int rc = ws_utf8_feed(&st, b, n);
        bool surrogate = cp >= 0xD800 && cp <= 0xDFFF;
        if (rc != (surrogate ? WS_UTF8_BAD : WS_UTF8_OK))
            fail_msg("U+%04X: %d", (unsigned)cp, rc);
    }
}

static void test_utf8_agrees_with_the_reference_on_every_two_and_three_byte_input(void **state)
{
    /* Each input alone (the end-of-piece path) and followed by "ab" (the
     * whole-character path, which needs 4 bytes in hand). */
    for (uint32_t v = 0; v < 1u << 24; v++) {
        uint8_t b[5] = {(uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v, 'a', 'b'};
        size_t n = v < 1u << 16 ? 2 : 3;
        uint8_t *p = n == 2 ? b + 1 : b;
        if (n == 3 && b[0] < 0x80 && (v & 0xFFFF) % 61 != 0)
            continue; /* an ASCII first byte adds nothing new beyond a sample */
        for (size_t len = n; len <= n + 2; len += 2) {
            bool complete;
            size_t bad = ref_utf8_bad_at(p, len, &complete);
            int expect = bad < len ? WS_UTF8_BAD : complete ? WS_UTF8_OK : WS_UTF8_PARTIAL;
            uint32_t st = 0;
            int rc = ws_utf8_feed(&st, p, len);
            if (rc != expect)
                fail_msg("%02X %02X %02X (+%zu): %d, reference %d", b[0], b[1], b[2], len - n, rc,
                         expect);
        }
    }
}

static void test_utf8_ascii_with_one_byte_changed_at_every_position(void **state)
{
    enum { N = 100 };
    uint8_t buf[N];
    for (size_t k = 0; k < N; k++) {
        memset(buf, 'a', N);
        buf[k] = 0x80;
        assert_int_equal(utf8_whole(buf, N), WS_UTF8_BAD);
        int last;
        assert_int_equal(utf8_bad_at_bytewise(buf, N, &last), k);
        if (k + 1 < N) {
            buf[k] = 0xC3; /* é */
            buf[k + 1] = 0xA9;
            assert_int_equal(utf8_whole(buf, N), WS_UTF8_OK);
            /* the truncated character at the end of a long run */
            assert_int_equal(utf8_whole(buf, k + 1), WS_UTF8_PARTIAL);
        }
    }
}

/* ------------------------------------------------------------ close payloads */

static int parse_close(const uint8_t *p, size_t n, int *code, const char **reason,
                       size_t *reason_len)
{
    uint8_t *b = copy_exact(p, n);
    int rc = ws_parse_close(b, n, code, reason, reason_len);
    if (rc == 0 && *reason_len)
        assert_true(*reason == (const char *)b + 2);
    free(b);
    return rc;
}

static void test_close_with_an_empty_payload_means_1005(void **state)
{
    int code = 0;
    const char *reason = NULL;
    size_t reason_len = 99;
    assert_int_equal(parse_close(BYTES(""), &code, &reason, &reason_len), 0);
    assert_int_equal(code, 1005);
    assert_non_null(reason);
    assert_int_equal(reason_len, 0);
}

static void test_close_with_a_one_byte_payload_is_a_protocol_error(void **state)
{
    int code;
    const char *reason;
    size_t reason_len;
    assert_int_equal(parse_close(BYTES("\x03"), &code, &reason, &reason_len), WS_E_PROTOCOL);
}

static void test_close_code_and_reason_are_returned(void **state)
{
    int code;
    const char *reason;
    size_t reason_len;
    assert_int_equal(parse_close(BYTES("\x03\xE8"), &code, &reason, &reason_len), 0);
    assert_int_equal(code, 1000);
    assert_int_equal(reason_len, 0);
    uint8_t *b = copy_exact(BYTES("\x0F\xA0going \xce\xba"));
    assert_int_equal(ws_parse_close(b, 10, &code, &reason, &reason_len), 0);
    assert_int_equal(code, 4000);
    assert_ptr_equal(reason, (const char *)b + 2);
    assert_int_equal(reason_len, 8);
    assert_memory_equal(reason, "going \xce\xba", 8);
    free(b);
}

static bool close_code_expected_valid(int code)
{
    static const int accepted[] = {1000, 1001, 1002, 1003, 1007, 1008,
                                   1009, 1010, 1011, 1012, 1013, 1014};
    for (size_t i = 0; i < ARRAY_LEN(accepted); i++)
        if (code == accepted[i])
            return true;
    return code >= 3000 && code <= 4999;
}

static void test_close_codes_are_checked_for_every_value(void **state)
{
    for (int code = 0; code <= 0xFFFF; code++) {
        uint8_t b[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        int got = -1;
        const char *reason;
        size_t reason_len;
        int rc = ws_parse_close(b, 2, &got, &reason, &reason_len);
        if (close_code_expected_valid(code)) {
            if (rc != 0 || got != code)
                fail_msg("code %d rejected (%d)", code, rc);
        } else if (rc != WS_E_PROTOCOL) {
            fail_msg("code %d accepted (%d)", code, rc);
        }
    }
}

static void test_close_codes_of_every_class(void **state)
{
    static const struct {
        int code;
        int rc;
    } cases[] = {
        {0, WS_E_PROTOCOL},
        {999, WS_E_PROTOCOL},
        {1000, 0},
        {1001, 0},
        {1002, 0},
        {1003, 0},
        {1004, WS_E_PROTOCOL},
        {1005, WS_E_PROTOCOL},
        {1006, WS_E_PROTOCOL},
        {1007, 0},
        {1011, 0},
        {1012, 0},
        {1014, 0},
        {1015, WS_E_PROTOCOL},
        {1016, WS_E_PROTOCOL},
        {1999, WS_E_PROTOCOL},
        {2000, WS_E_PROTOCOL},
        {2999, WS_E_PROTOCOL},
        {3000, 0},
        {3999, 0},
        {4000, 0},
        {4999, 0},
        {5000, WS_E_PROTOCOL},
        {65535, WS_E_PROTOCOL},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint8_t b[4] = {(uint8_t)(cases[i].code >> 8), (uint8_t)cases[i].code, 'o', 'k'};
        int code;
        const char *reason;
        size_t reason_len;
        assert_int_equal(parse_close(b, 4, &code, &reason, &reason_len), cases[i].rc);
    }
}

static void test_close_reason_that_is_not_utf8_is_invalid_data(void **state)
{
    int code;
    const char *reason;
    size_t reason_len;
    assert_int_equal(parse_close(BYTES("\x03\xE8\xFF"), &code, &reason, &reason_len),
                     WS_E_INVALID_DATA);
    assert_int_equal(parse_close(BYTES("\x03\xE8ok\xed\xa0\x80"), &code, &reason, &reason_len),
                     WS_E_INVALID_DATA);
    /* a character cut off by the end of the payload */
    assert_int_equal(parse_close(BYTES("\x03\xE8ok\xce"), &code, &reason, &reason_len),
                     WS_E_INVALID_DATA);
}

static void test_close_bad_code_wins_over_bad_reason(void **state)
{
    int code;
    const char *reason;
    size_t reason_len;
    assert_int_equal(parse_close(BYTES("\x03\xED\xFF"), &code, &reason, &reason_len),
                     WS_E_PROTOCOL);
}

static void test_close_outputs_are_untouched_on_error(void **state)
{
    int code = 7;
    const char *reason = "x";
    size_t reason_len = 1;
    assert_int_equal(parse_close(BYTES("\x03\xED"), &code, &reason, &reason_len), WS_E_PROTOCOL);
    assert_int_equal(parse_close(BYTES("\x03\xE8\x80"), &code, &reason, &reason_len),
                     WS_E_INVALID_DATA);
    assert_int_equal(code, 7);
    assert_string_equal(reason, "x");
    assert_int_equal(reason_len, 1);
}

/* ------------------------------------------------------------ accept key */

static int accept_key(const char *key, char out[29])
{
    size_t n = strlen(key);
    char *b = (char *)copy_exact((const uint8_t *)key, n);
    int rc = ws_accept_key(b, n, out);
    free(b);
    return rc;
}

static void test_accept_key_of_the_rfc_example(void **state)
{
    char out[29];
    memset(out, 'z', sizeof out);
    assert_int_equal(accept_key("dGhlIHNhbXBsZSBub25jZQ==", out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); /* RFC 6455 1.3 */
}

static void test_accept_key_matches_independently_computed_values(void **state)
{
    /* base64(SHA-1(key + GUID)) computed with Python's hashlib */
    static const char *const cases[][2] = {
        {"AAAAAAAAAAAAAAAAAAAAAA==", "ICX+Yqv66kxgM0FcWaLWlFLwTAI="},
        {"/////////////////////w==", "XXpj4jYzLM2yUE0C7TIgMwTQh2g="},
        {"AAECAwQFBgcICQoLDA0ODw==", "Bz3qJYTGdOe8gUSpLosEdiLKDrk="},
        {"x3JJHMbDL1EzLkh9GBhXDw==", "HSmrc0sMlYUkAGmm5OPpG2HaGWk="},
        {"+/+/+/+/+/+/+/+/+/+/+w==", "M0DUs3om0SqzerhOhYSMM7WQuBQ="},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char out[29];
        assert_int_equal(accept_key(cases[i][0], out), 0);
        assert_string_equal(out, cases[i][1]);
    }
}

static void test_accept_key_rejects_keys_that_are_not_16_bytes_of_base64(void **state)
{
    static const char *const bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",        /* 23 */
        "dGhlIHNhbXBsZSBub25jZQ===",      /* 25 */
        "dGhlIHNhbXBsZSBub25jZQ== ",      /* trailing space */
        " dGhlIHNhbXBsZSBub25jZQ==",      /* leading space */
        "dGhlIHNhbXBsZSBub25jZQAA",       /* no padding: 18 bytes */
        "dGhlIHNhbXBsZSBub25jZ===",       /* padding too early */
        "dGhlIHNhbXBsZSBub25jZQ=A",       /* bad padding */
        "dGhlIHNhbXBsZSBub2-jZQ==",       /* base64url */
        "dGhlIHNhbXBsZSBub2_jZQ==",       /* base64url */
        "dGhlIHNhbX.sZSBub25jZQ==",       /* not base64 */
        "dGhlIHNhbXBsZSBub25j\xC3\xA9==", /* not ASCII */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char out[29];
        memset(out, 'z', sizeof out);
        if (accept_key(bad[i], out) != -1)
            fail_msg("key %zu accepted", i);
        for (size_t k = 0; k < sizeof out; k++) /* untouched */
            assert_int_equal(out[k], 'z');
    }
    char out[29];
    assert_int_equal(ws_accept_key("dGhlIHNhbXBsZSBub25jZQ==\0", 25, out), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unmasked_text_frame_with_7bit_length_parses),
        cmocka_unit_test(test_rfc_masked_hello_parses_and_unmasks),
        cmocka_unit_test(test_rfc_fragmented_text_parses_as_text_then_continuation),
        cmocka_unit_test(test_16bit_length_parses),
        cmocka_unit_test(test_64bit_length_parses),
        cmocka_unit_test(test_largest_64bit_length_parses_without_a_limit),
        cmocka_unit_test(test_masked_headers_of_every_length_encoding_carry_the_mask),
        cmocka_unit_test(test_bytes_after_the_header_are_ignored),
        cmocka_unit_test(test_known_opcodes_parse),
        cmocka_unit_test(test_every_valid_header_split_at_every_byte_needs_more_until_complete),
        cmocka_unit_test(test_every_invalid_header_split_at_every_byte_gives_0_or_its_error),
        cmocka_unit_test(test_errors_of_the_first_byte_are_reported_before_the_second_arrives),
        cmocka_unit_test(test_errors_of_the_second_byte_are_reported_before_the_length_arrives),
        cmocka_unit_test(test_reserved_opcodes_are_protocol_errors),
        cmocka_unit_test(test_rsv_bits_are_protocol_errors_without_an_extension),
        cmocka_unit_test(test_rsv1_is_allowed_with_permessage_deflate_and_rsv2_rsv3_are_not),
        cmocka_unit_test(test_rsv_bits_are_reported_as_0_to_7_with_rsv1_as_4),
        cmocka_unit_test(test_fragmented_control_frames_are_protocol_errors),
        cmocka_unit_test(test_control_frames_over_125_bytes_are_protocol_errors),
        cmocka_unit_test(test_16bit_length_below_126_is_a_protocol_error),
        cmocka_unit_test(test_64bit_length_below_65536_is_a_protocol_error),
        cmocka_unit_test(test_64bit_length_with_the_top_bit_set_is_a_protocol_error),
        cmocka_unit_test(test_server_rejects_unmasked_frames),
        cmocka_unit_test(test_client_rejects_masked_frames),
        cmocka_unit_test(test_payload_over_max_len_is_message_too_big),
        cmocka_unit_test(test_message_too_big_is_reported_before_the_mask_arrives),
        cmocka_unit_test(test_max_len_0_means_no_limit),
        cmocka_unit_test(test_control_frames_are_subject_to_max_len),
        cmocka_unit_test(test_protocol_errors_win_over_message_too_big),
        cmocka_unit_test(test_header_is_written_only_on_success),
        cmocka_unit_test(test_write_header_uses_the_shortest_length_encoding),
        cmocka_unit_test(test_write_header_produces_the_rfc_example_bytes),
        cmocka_unit_test(test_write_header_round_trips_through_parse_header),
        cmocka_unit_test(
            test_unmask_matches_a_bytewise_reference_for_every_length_offset_and_alignment),
        cmocka_unit_test(test_unmask_in_pieces_equals_unmasking_whole),
        cmocka_unit_test(test_unmask_twice_restores_the_data),
        cmocka_unit_test(test_unmask_of_nothing_touches_nothing),
        cmocka_unit_test(test_utf8_table_whole),
        cmocka_unit_test(test_utf8_table_agrees_with_the_reference),
        cmocka_unit_test(test_utf8_fails_on_the_first_byte_that_makes_it_invalid),
        cmocka_unit_test(test_utf8_split_at_every_pair_of_points_gives_the_whole_result),
        cmocka_unit_test(test_utf8_table_inside_ascii_text_agrees_with_the_reference),
        cmocka_unit_test(test_utf8_partial_then_end_of_message_is_not_ok),
        cmocka_unit_test(test_utf8_bad_state_is_sticky),
        cmocka_unit_test(test_utf8_accepts_every_scalar_value_and_rejects_every_surrogate),
        cmocka_unit_test(test_utf8_agrees_with_the_reference_on_every_two_and_three_byte_input),
        cmocka_unit_test(test_utf8_ascii_with_one_byte_changed_at_every_position),
        cmocka_unit_test(test_close_with_an_empty_payload_means_1005),
        cmocka_unit_test(test_close_with_a_one_byte_payload_is_a_protocol_error),
        cmocka_unit_test(test_close_code_and_reason_are_returned),
        cmocka_unit_test(test_close_codes_are_checked_for_every_value),
        cmocka_unit_test(test_close_codes_of_every_class),
        cmocka_unit_test(test_close_reason_that_is_not_utf8_is_invalid_data),
        cmocka_unit_test(test_close_bad_code_wins_over_bad_reason),
        cmocka_unit_test(test_close_outputs_are_untouched_on_error),
        cmocka_unit_test(test_accept_key_of_the_rfc_example),
        cmocka_unit_test(test_accept_key_matches_independently_computed_values),
        cmocka_unit_test(test_accept_key_rejects_keys_that_are_not_16_bytes_of_base64),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
