/*
 * libFuzzer target for the WebSocket frame codec (src/ws/frame.c). `make
 * fuzz` runs it; its seeds and every crash input are kept in
 * fuzz/corpus/fuzz_ws_frame/.
 *
 * Input: one control byte, then a stream of frames. Bits 0-1 of the control
 * byte pick max_len (none, 125, 1000, 65536), bit 2 allows RSV1 (as with
 * permessage-deflate), bits 3-7 a split point (in 32ths of a piece).
 *
 * The stream is parsed frame by frame twice, as a server (masked frames
 * expected) and as a client. For each header: every prefix gives 0 or the
 * same result, a valid one obeys every rule and writes back to the same
 * bytes with ws_write_header, an error is -1002 or -1009. Each payload is
 * unmasked whole, in two pieces and by a bytewise reference (all equal).
 * Text messages are validated as UTF-8 frame by frame and also with each
 * frame split in two; both must agree with a reference decoder on the
 * message so far. Close payloads are checked against the rules. The whole
 * input also goes through the UTF-8 validator (whole, split, byte by byte:
 * it must fail exactly at the reference's first bad byte), the close parser
 * and the accept-key function. A violation aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws/frame.h"
#include "fuzz_util.h"

/* ------------------------------------------------------------ references */

/* Index of the first byte of p[0..n) that no valid UTF-8 can continue with,
 * or n; *complete: a valid input ends between characters. Works on code
 * point ranges, unlike frame.c's byte ranges (see tests/unit/test_ws_frame.c). */
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

static int ref_utf8(const uint8_t *p, size_t n)
{
    bool complete;
    if (ref_utf8_bad_at(p, n, &complete) < n)
        return WS_UTF8_BAD;
    return complete ? WS_UTF8_OK : WS_UTF8_PARTIAL;
}

static bool ref_close_code_ok(int code)
{
    static const int listed[] = {1000, 1001, 1002, 1003, 1007, 1008,
                                 1009, 1010, 1011, 1012, 1013, 1014};
    for (size_t i = 0; i < sizeof listed / sizeof listed[0]; i++)
        if (code == listed[i])
            return true;
    return code >= 3000 && code <= 4999;
}

static bool ref_base64_char(char c)
{
    return c && strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", c);
}

/* ------------------------------------------------------------ checks */

static void check_utf8(const uint8_t *p, size_t n, size_t split)
{
    int expect = ref_utf8(p, n);
    uint8_t *b = copy_exact(p, n);
    uint32_t st = 0;
    CHECK(ws_utf8_feed(&st, b, n) == expect);
    CHECK((st == 0) == (expect == WS_UTF8_OK));

    uint32_t st2 = 0;
    int r1 = ws_utf8_feed(&st2, b, split);
    CHECK(r1 == ref_utf8(p, split));
    int r2 = ws_utf8_feed(&st2, b + split, n - split);
    CHECK(r2 == expect);
    free(b);

    /* byte by byte: BAD on exactly the reference's first bad byte */
    bool complete;
    size_t bad_at = ref_utf8_bad_at(p, n, &complete);
    uint32_t st3 = 0;
    for (size_t i = 0; i < n; i++) {
        int r = ws_utf8_feed(&st3, p + i, 1);
        CHECK((r == WS_UTF8_BAD) == (i >= bad_at));
        if (r == WS_UTF8_BAD)
            break;
    }
}

static void check_close(const uint8_t *p, size_t n)
{
    uint8_t *b = copy_exact(p, n);
    int code = -1;
    const char *reason = NULL;
    size_t reason_len = 0;
    int rc = ws_parse_close(b, n, &code, &reason, &reason_len);
    if (n == 0) {
        CHECK(rc == 0 && code == 1005 && reason && reason_len == 0);
    } else if (n == 1 || !ref_close_code_ok(p[0] << 8 | p[1])) {
        CHECK(rc == WS_E_PROTOCOL);
    } else if (ref_utf8(p + 2, n - 2) != WS_UTF8_OK) {
        CHECK(rc == WS_E_INVALID_DATA);
    } else {
        CHECK(rc == 0 && code == (p[0] << 8 | p[1]));
        CHECK(reason == (const char *)b + 2 && reason_len == n - 2);
    }
    free(b);
}

static void check_accept_key(const uint8_t *p, size_t n)
{
    size_t key_len = n < 24 ? n : 24;
    char *key = (char *)copy_exact(p, key_len);
    bool valid = key_len == 24 && key[22] == '=' && key[23] == '=';
    for (size_t i = 0; valid && i < 22; i++)
        valid = ref_base64_char(key[i]);
    char out[29];
    memset(out, 0x55, sizeof out);
    int rc = ws_accept_key(key, key_len, out);
    CHECK(rc == (valid ? 0 : -1));
    if (rc == 0) {
        for (int i = 0; i < 27; i++)
            CHECK(ref_base64_char(out[i]));
        CHECK(out[27] == '=' && out[28] == '\0');
    } else {
        for (int i = 0; i < 29; i++)
            CHECK(out[i] == 0x55);
    }
    free(key);
}

static void check_header(const uint8_t *p, size_t n, int rc, const ws_header *h, bool expect_masked,
                         uint8_t allowed_rsv, uint64_t max_len)
{
    if (rc < 0) {
        CHECK(rc == WS_E_PROTOCOL || rc == WS_E_TOO_BIG);
        return;
    }
    if (rc == 0) {
        CHECK(n < WS_HEADER_MAX);
        return;
    }
    CHECK((size_t)rc == h->size && h->size >= 2 && h->size <= WS_HEADER_MAX && h->size <= n);
    CHECK(h->opcode <= WS_OP_BINARY || (h->opcode >= WS_OP_CLOSE && h->opcode <= WS_OP_PONG));
    CHECK((h->rsv & ~allowed_rsv) == 0 && h->rsv <= 7);
    CHECK(h->masked == expect_masked);
    if (h->opcode >= WS_OP_CLOSE)
        CHECK(h->fin && h->len <= WS_CONTROL_MAX);
    CHECK(h->len >> 63 == 0);
    CHECK(max_len == 0 || h->len <= max_len);
    /* minimal encodings only, so writing the header back gives the same bytes */
    uint8_t out[WS_HEADER_MAX];
    size_t size =
        ws_write_header(out, h->fin, h->rsv, h->opcode, h->len, h->masked ? h->mask : NULL);
    CHECK(size == h->size && memcmp(out, p, size) == 0);
    if (!h->masked)
        CHECK(memcmp(h->mask, "\0\0\0\0", 4) == 0);
}

/* Every prefix of p[0..n) parses to 0 or to the whole's result (0 when the
 * whole is a header longer than the prefix). */
static void check_prefixes(const uint8_t *p, size_t n, int whole, bool expect_masked,
                           uint8_t allowed_rsv, uint64_t max_len)
{
    size_t upto = n < WS_HEADER_MAX ? n : WS_HEADER_MAX;
    for (size_t k = 0; k < upto; k++) {
        uint8_t *b = copy_exact(p, k);
        ws_header h;
        int rc = ws_parse_header(b, k, expect_masked, allowed_rsv, max_len, &h);
        free(b);
        if (whole > 0)
            CHECK(rc == 0 || (rc == whole && k >= (size_t)whole));
        else
            CHECK(rc == 0 || rc == whole);
    }
}

static void check_unmask(const uint8_t *payload, size_t n, const uint8_t mask[4], size_t split,
                         uint8_t *out)
{
    uint8_t *whole = copy_exact(payload, n), *pieces = copy_exact(payload, n);
    ws_unmask(whole, n, mask, 0);
    ws_unmask(pieces, split, mask, 0);
    ws_unmask(pieces + split, n - split, mask, split);
    for (size_t i = 0; i < n; i++)
        CHECK(whole[i] == (payload[i] ^ mask[i % 4]));
    CHECK(n == 0 || memcmp(whole, pieces, n) == 0);
    if (n)
        memcpy(out, whole, n);
    free(whole);
    free(pieces);
}

/* ------------------------------------------------------------ the stream */

typedef struct message {
    bool open, text;
    uint8_t *bytes; /* the text message so far */
    size_t n;
    uint32_t by_frame, by_halves; /* UTF-8 states: frames whole, frames split in two */
} message;

static void text_piece(message *m, const uint8_t *p, size_t n, size_t split)
{
    memcpy(m->bytes + m->n, p, n);
    m->n += n;
    int expect = ref_utf8(m->bytes, m->n);
    uint8_t *b = copy_exact(p, n);
    CHECK(ws_utf8_feed(&m->by_frame, b, n) == expect);
    ws_utf8_feed(&m->by_halves, b, split);
    CHECK(ws_utf8_feed(&m->by_halves, b + split, n - split) == expect);
    free(b);
}

static void parse_stream(const uint8_t *in, size_t n, bool expect_masked, uint8_t allowed_rsv,
                         uint64_t max_len, unsigned split32)
{
    message m = {0};
    m.bytes = malloc(n ? n : 1);
    uint8_t *payload = malloc(n ? n : 1);
    CHECK(m.bytes && payload);
    size_t pos = 0;
    while (pos < n) {
        ws_header h;
        int rc = ws_parse_header(in + pos, n - pos, expect_masked, allowed_rsv, max_len, &h);
        check_header(in + pos, n - pos, rc, &h, expect_masked, allowed_rsv, max_len);
        check_prefixes(in + pos, n - pos, rc, expect_masked, allowed_rsv, max_len);
        if (rc <= 0)
            break;
        pos += h.size;
        size_t avail = n - pos < h.len ? n - pos : (size_t)h.len;
        size_t split = avail * split32 / 32;
        if (h.masked)
            check_unmask(in + pos, avail, h.mask, split, payload);
        else if (avail)
            memcpy(payload, in + pos, avail);
        pos += avail;
        bool whole_payload = avail == h.len;

        if (h.opcode == WS_OP_CLOSE && whole_payload)
            check_close(payload, avail);
        if (h.opcode == WS_OP_TEXT || h.opcode == WS_OP_BINARY) {
            m.open = true; /* a new message (ws.c would fail one still open) */
            m.text = h.opcode == WS_OP_TEXT;
            m.n = 0;
            m.by_frame = m.by_halves = 0;
        }
        if (h.opcode < WS_OP_CLOSE && m.open) {
            if (m.text)
                text_piece(&m, payload, avail, split);
            if (h.fin)
                m.open = false;
        }
    }
    free(m.bytes);
    free(payload);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const uint64_t limits[4] = {0, 125, 1000, 65536};
    uint64_t max_len = limits[data[0] & 3];
    uint8_t allowed_rsv = data[0] & 4 ? WS_RSV1 : 0;
    unsigned split32 = data[0] >> 3;
    const uint8_t *in = data + 1;
    size_t n = size - 1;

    parse_stream(in, n, true, allowed_rsv, max_len, split32);
    parse_stream(in, n, false, allowed_rsv, max_len, split32);

    check_utf8(in, n, n * split32 / 32);
    check_close(in, n);
    check_accept_key(in, n);
    return 0;
}
