/*
 * src/base64/base64.c: standard base64 both ways (base64.h).
 */
#include "base64/base64.h"

#include <stdint.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t wv__b64_encoded_len(size_t n, bool pad)
{
    return pad ? (n + 2) / 3 * 4 : n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t wv__b64_encode(const void *in, size_t n, bool pad, char *out)
{
    const unsigned char *p = in;
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (i < n) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0);
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = alphabet[v >> 6 & 63];
        else if (pad)
            out[o++] = '=';
        if (pad)
            out[o++] = '=';
    }
    return o;
}

static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

long wv__b64_decode(const char *in, size_t n, bool pad_optional, void *out, size_t cap)
{
    /* padding only as the end of the last quantum: "xx==" or "xxx=" */
    if (n % 4 == 0 && n >= 4) {
        if (in[n - 1] == '=')
            n--;
        if (in[n - 1] == '=')
            n--;
    } else if (n % 4 && !pad_optional) {
        return -1;
    }
    if (n % 4 == 1 || n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0) > cap)
        return -1;
    unsigned char *o = out;
    size_t len = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        int s = sextet(in[i]);
        if (s < 0)
            return -1;
        acc = acc << 6 | (uint32_t)s;
        if (i % 4 == 3) {
            o[len++] = (unsigned char)(acc >> 16);
            o[len++] = (unsigned char)(acc >> 8);
            o[len++] = (unsigned char)acc;
            acc = 0;
        }
    }
    if (n % 4 == 2) {
        o[len++] = (unsigned char)(acc >> 4);
    } else if (n % 4 == 3) {
        o[len++] = (unsigned char)(acc >> 10);
        o[len++] = (unsigned char)(acc >> 2);
    }
    return (long)len;
}
