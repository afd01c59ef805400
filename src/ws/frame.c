/*
 * src/ws/frame.c: the WebSocket frame codec (RFC 6455 sections 5 and 7):
 * frame headers in and out, payload masking, UTF-8 validation of text and
 * close reasons, close payloads, and the handshake's accept key. See frame.h
 * for the contract; this comment says how it is built.
 *
 * Header parsing checks each rule as soon as the byte that carries it is
 * there, in byte order (first byte: RSV, opcode, FIN of control frames;
 * second: MASK, 7-bit length of control frames; then the extended length),
 * so a header split anywhere gives 0 until the decisive byte, then the same
 * answer as the whole.
 *
 * Masking XORs a 4-byte key repeated; the key is rotated by the payload
 * offset once, widened to 8 or 16 bytes, and applied a register at a time.
 *
 * UTF-8 validation needs, between bytes, only how many continuation bytes
 * the current character still needs and the range its next byte must fall
 * in. The lead byte sets that range (narrower than 80..BF after E0, ED, F0
 * and F4, which is what rules out overlong forms, surrogates and code points
 * above U+10FFFF), so an invalid sequence fails on its first wrong byte.
 * Those two numbers pack into the caller's uint32_t when a piece ends inside
 * a character. While at least 4 bytes remain, whole characters are checked
 * in one step each, and ASCII runs, the bulk of most text, are skipped 32 or
 * 16 (SSE2) or 8 bytes at a time; the byte-at-a-time state machine only
 * handles the ends of pieces.
 *
 * SHA-1 for the accept key is a small implementation of FIPS 180-4 here: the
 * library links no crypto library, and the handshake hashes 60 bytes once
 * per connection.
 */
#include "ws/frame.h"

#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ------------------------------------------------------------ frame headers */

static bool opcode_known(unsigned op)
{
    return op <= WS_OP_BINARY || (op >= WS_OP_CLOSE && op <= WS_OP_PONG);
}

static uint64_t load_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

int ws_parse_header(const uint8_t *p, size_t n, bool expect_masked, uint8_t allowed_rsv,
                    uint64_t max_len, ws_header *h)
{
    if (n < 1)
        return 0;
    bool fin = p[0] & 0x80;
    uint8_t rsv = (uint8_t)((p[0] >> 4) & 7), opcode = p[0] & 0x0F;
    bool control = opcode & 0x08;
    if ((rsv & ~allowed_rsv) || !opcode_known(opcode) || (control && !fin))
        return WS_E_PROTOCOL;

    if (n < 2)
        return 0;
    bool masked = p[1] & 0x80;
    uint64_t len = p[1] & 0x7F;
    if (masked != expect_masked || (control && len > WS_CONTROL_MAX))
        return WS_E_PROTOCOL;

    size_t size = 2;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        if (len < 126)
            return WS_E_PROTOCOL;
        size = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = load_be64(p + 2);
        if (len >> 63 || len <= 0xFFFF)
            return WS_E_PROTOCOL;
        size = 10;
    }
    if (max_len && len > max_len)
        return WS_E_TOO_BIG;

    if (masked && n < size + 4)
        return 0;
    h->fin = fin;
    h->rsv = rsv;
    h->opcode = opcode;
    h->masked = masked;
    if (masked)
        memcpy(h->mask, p + size, 4);
    else
        memset(h->mask, 0, 4);
    h->len = len;
    h->size = size + (masked ? 4 : 0);
    return (int)h->size;
}

size_t ws_write_header(uint8_t out[WS_HEADER_MAX], bool fin, uint8_t rsv, uint8_t opcode,
                       uint64_t len, const uint8_t *mask)
{
    uint8_t mask_bit = mask ? 0x80 : 0;
    size_t size;
    out[0] = (uint8_t)((fin ? 0x80 : 0) | (rsv & 7) << 4 | (opcode & 0x0F));
    if (len < 126) {
        out[1] = (uint8_t)(mask_bit | len);
        size = 2;
    } else if (len <= 0xFFFF) {
        out[1] = mask_bit | 126;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
        size = 4;
    } else {
        out[1] = mask_bit | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (uint8_t)(len >> (56 - 8 * i));
        size = 10;
    }
    if (mask) {
        memcpy(out + size, mask, 4);
        size += 4;
    }
    return size;
}

/* ------------------------------------------------------------ masking */

void ws_unmask(uint8_t *data, size_t n, const uint8_t mask[4], uint64_t offset)
{
    /* key[j] applies to data[i] whenever i % 4 == j % 4 */
    uint8_t key[8];
    for (int j = 0; j < 8; j++)
        key[j] = mask[(offset + (uint64_t)j) & 3];
    uint64_t key64;
    memcpy(&key64, key, 8);

    size_t i = 0;
#ifdef __SSE2__
    const __m128i key128 = _mm_set1_epi64x((long long)key64);
    for (; i + 64 <= n; i += 64) {
        __m128i *q = (__m128i *)(data + i);
        __m128i a = _mm_loadu_si128(q), b = _mm_loadu_si128(q + 1);
        __m128i c = _mm_loadu_si128(q + 2), d = _mm_loadu_si128(q + 3);
        _mm_storeu_si128(q, _mm_xor_si128(a, key128));
        _mm_storeu_si128(q + 1, _mm_xor_si128(b, key128));
        _mm_storeu_si128(q + 2, _mm_xor_si128(c, key128));
        _mm_storeu_si128(q + 3, _mm_xor_si128(d, key128));
    }
    for (; i + 16 <= n; i += 16) {
        __m128i *q = (__m128i *)(data + i);
        _mm_storeu_si128(q, _mm_xor_si128(_mm_loadu_si128(q), key128));
    }
#endif
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, data + i, 8);
        v ^= key64;
        memcpy(data + i, &v, 8);
    }
    for (; i < n; i++) /* i is a multiple of 8 on entry, so key[i & 3] lines up */
        data[i] ^= key[i & 3];
}

/* ------------------------------------------------------------ UTF-8 */

/* A bad state: unreachable by packing (need <= 3), and sticky. */
#define UTF8_STATE_BAD UINT32_MAX

/* The index of the first byte >= 0x80 in p[i..n), or n. */
static size_t skip_ascii(const uint8_t *p, size_t i, size_t n)
{
#ifdef __SSE2__
    for (; i + 32 <= n; i += 32) {
        __m128i a = _mm_loadu_si128((const __m128i *)(p + i));
        __m128i b = _mm_loadu_si128((const __m128i *)(p + i + 16));
        if (_mm_movemask_epi8(_mm_or_si128(a, b)))
            break;
    }
    for (; i + 16 <= n; i += 16) {
        int high = _mm_movemask_epi8(_mm_loadu_si128((const __m128i *)(p + i)));
        if (high)
            return i + (size_t)__builtin_ctz((unsigned)high);
    }
#endif
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, p + i, 8);
        v &= 0x8080808080808080u;
        if (v) {
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
            return i + (size_t)__builtin_ctzll(v) / 8;
#else
            return i + (size_t)__builtin_clzll(v) / 8;
#endif
        }
    }
    while (i < n && p[i] < 0x80)
        i++;
    return i;
}

/*
 * The range of the byte after lead byte c: [lo, hi] packed as lo << 8 | hi,
 * and how many continuation bytes follow, or 0 when c cannot lead (ASCII is
 * not asked). Only E0, ED, F0 and F4 narrow the range: that is where
 * overlong forms, surrogates and code points above U+10FFFF would start.
 */
static unsigned lead_byte(unsigned c, unsigned *range)
{
    *range = 0x80BF;
    if (c < 0xC2) /* a continuation byte, or C0/C1 (always overlong) */
        return 0;
    if (c < 0xE0)
        return 1;
    if (c < 0xF0) {
        if (c == 0xE0)
            *range = 0xA0BF; /* below U+0800: overlong */
        else if (c == 0xED)
            *range = 0x809F; /* U+D800-U+DFFF: surrogates */
        return 2;
    }
    if (c < 0xF5) {
        if (c == 0xF0)
            *range = 0x90BF; /* below U+10000: overlong */
        else if (c == 0xF4)
            *range = 0x808F; /* above U+10FFFF */
        return 3;
    }
    return 0;
}

static bool continuation(unsigned c)
{
    return (c & 0xC0) == 0x80;
}

int ws_utf8_feed(uint32_t *state, const uint8_t *p, size_t n)
{
    uint32_t s = *state;
    if (s == UTF8_STATE_BAD)
        return WS_UTF8_BAD;
    /* need: continuation bytes still to come; range: lo << 8 | hi of the next one */
    unsigned need = s >> 16, range = s & 0xFFFF;
    size_t i = 0;
    for (;;) {
        for (; need; need--, range = 0x80BF) {
            if (i == n) {
                *state = (uint32_t)(need << 16 | range);
                return WS_UTF8_PARTIAL;
            }
            unsigned c = p[i++];
            if (c < range >> 8 || c > (range & 0xFF))
                goto bad;
        }
        /* Whole characters while one always fits: no state to carry. */
        while (i + 4 <= n) {
            unsigned c = p[i];
            if (c < 0x80) {
                i = skip_ascii(p, i + 1, n);
                continue;
            }
            unsigned more = lead_byte(c, &range), c1 = p[i + 1];
            if (!more || c1 < range >> 8 || c1 > (range & 0xFF))
                goto bad;
            if (more >= 2 && !continuation(p[i + 2]))
                goto bad;
            if (more == 3 && !continuation(p[i + 3]))
                goto bad;
            i += 1 + more;
        }
        if (i < n && p[i] < 0x80)
            i = skip_ascii(p, i, n);
        if (i == n) {
            *state = 0;
            return WS_UTF8_OK;
        }
        need = lead_byte(p[i++], &range);
        if (!need)
            goto bad;
    }
bad:
    *state = UTF8_STATE_BAD;
    return WS_UTF8_BAD;
}

/* ------------------------------------------------------------ close payloads */

/* Codes a peer may send (RFC 6455 7.4, and the IANA registry's 1012-1014). */
static bool close_code_receivable(int code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

int ws_parse_close(const uint8_t *p, size_t n, int *code, const char **reason, size_t *reason_len)
{
    if (n == 0) {
        *code = 1005;
        *reason = "";
        *reason_len = 0;
        return 0;
    }
    if (n == 1)
        return WS_E_PROTOCOL;
    int c = p[0] << 8 | p[1];
    if (!close_code_receivable(c))
        return WS_E_PROTOCOL;
    uint32_t state = 0;
    if (ws_utf8_feed(&state, p + 2, n - 2) != WS_UTF8_OK)
        return WS_E_INVALID_DATA;
    *code = c;
    *reason = (const char *)p + 2;
    *reason_len = n - 2;
    return 0;
}

/* ------------------------------------------------------------ SHA-1 */

static uint32_t rotl32(uint32_t x, int k)
{
    return x << k | x >> (32 - k);
}

static void sha1_block(uint32_t state[5], const uint8_t block[64])
{
    uint32_t w[80];
    for (int t = 0; t < 16; t++)
        w[t] = (uint32_t)block[4 * t] << 24 | (uint32_t)block[4 * t + 1] << 16 |
               (uint32_t)block[4 * t + 2] << 8 | block[4 * t + 3];
    for (int t = 16; t < 80; t++)
        w[t] = rotl32(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);

    uint32_t a = state[0], b = state[1], c = state[2], d = state[3], e = state[4];
    for (int t = 0; t < 80; t++) {
        uint32_t f, k;
        if (t < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (t < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (t < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        uint32_t next = rotl32(a, 5) + f + e + k + w[t];
        e = d;
        d = c;
        c = rotl32(b, 30);
        b = a;
        a = next;
    }
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
    state[4] += e;
}

static void sha1(const uint8_t *msg, size_t n, uint8_t digest[20])
{
    uint32_t state[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        sha1_block(state, msg + i);

    /* the rest, a 1 bit, zeros, and the bit length: one or two more blocks */
    uint8_t tail[128] = {0};
    size_t rest = n - i, tail_len = rest + 9 <= 64 ? 64 : 128;
    memcpy(tail, msg + i, rest);
    tail[rest] = 0x80;
    uint64_t bits = (uint64_t)n * 8;
    for (int k = 0; k < 8; k++)
        tail[tail_len - 1 - (size_t)k] = (uint8_t)(bits >> (8 * k));
    for (size_t off = 0; off < tail_len; off += 64)
        sha1_block(state, tail + off);

    for (int k = 0; k < 5; k++)
        for (int j = 0; j < 4; j++)
            digest[4 * k + j] = (uint8_t)(state[k] >> (24 - 8 * j));
}

/* ------------------------------------------------------------ accept key */

static const char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static bool base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* Encode in[0..n) with padding; writes 4 * ceil(n / 3) characters and a NUL. */
void ws_base64(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = base64_alphabet[v >> 18 & 63];
        out[o++] = base64_alphabet[v >> 12 & 63];
        out[o++] = i + 1 < n ? base64_alphabet[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? base64_alphabet[v & 63] : '=';
    }
    out[o] = '\0';
}

int ws_accept_key(const char *key, size_t key_len, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    enum { KEY_LEN = 24, GUID_LEN = sizeof guid - 1 };

    /* 16 bytes are 22 characters and "==". The 4 unused bits of the 22nd
     * character are not required to be zero (RFC 4648 3.5 lets a decoder
     * accept them, as common peers do); the key is hashed as sent anyway. */
    if (key_len != KEY_LEN || key[22] != '=' || key[23] != '=')
        return -1;
    for (int i = 0; i < 22; i++)
        if (!base64_char(key[i]))
            return -1;

    uint8_t msg[KEY_LEN + GUID_LEN], digest[20];
    memcpy(msg, key, KEY_LEN);
    memcpy(msg + KEY_LEN, guid, GUID_LEN);
    sha1(msg, sizeof msg, digest);
    ws_base64(digest, sizeof digest, out);
    return 0;
}
