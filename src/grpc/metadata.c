/*
 * src/grpc/metadata.c: custom metadata: which header names an application
 * may use, which ASCII values may be sent, and base64 for the binary
 * ("-bin") headers. gRPC sends base64 unpadded and must accept both forms,
 * so the decoder takes a final quantum of 2 or 3 chars with or without its
 * '=' padding.
 */
#include "grpc/grpc_internal.h"

#include <errno.h>
#include <string.h>

/* Headers the gRPC transport sets itself or HTTP/2 forbids. */
static const char *const reserved_names[] = {
    "content-type",      "te",      "user-agent", "connection", "keep-alive", "proxy-connection",
    "transfer-encoding", "upgrade", "host",
};

static bool name_char(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '_' || c == '-' || c == '.';
}

int grpc_metadata_check_name(const char *name, size_t n)
{
    if (n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!name_char(name[i]))
            return -EINVAL;
    if (n >= 5 && memcmp(name, "grpc-", 5) == 0)
        return -EINVAL;
    for (size_t i = 0; i < sizeof reserved_names / sizeof reserved_names[0]; i++)
        if (strlen(reserved_names[i]) == n && memcmp(reserved_names[i], name, n) == 0)
            return -EINVAL;
    return 0;
}

bool grpc_metadata_is_binary(const char *name, size_t n)
{
    return n >= 4 && memcmp(name + n - 4, "-bin", 4) == 0;
}

int grpc_metadata_check_value(const char *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((uint8_t)v[i] < 0x20 || (uint8_t)v[i] > 0x7E)
            return -EINVAL;
    return 0;
}

/* ------------------------------------------------------------ base64 */

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

size_t grpc_base64_encoded_len(size_t n)
{
    return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t grpc_base64_encode(const uint8_t *in, size_t n, char *out)
{
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = alphabet[v >> 18];
        out[o++] = alphabet[v >> 12 & 63];
        out[o++] = alphabet[v >> 6 & 63];
        out[o++] = alphabet[v & 63];
    }
    if (n - i == 1) {
        out[o++] = alphabet[in[i] >> 2];
        out[o++] = alphabet[(in[i] & 3) << 4];
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
        out[o++] = alphabet[v >> 10];
        out[o++] = alphabet[v >> 4 & 63];
        out[o++] = alphabet[(v & 15) << 2];
    }
    return o;
}

size_t grpc_base64_decoded_max(size_t n)
{
    return n / 4 * 3 + 2;
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

int grpc_base64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len)
{
    /* padding only as the end of a whole quantum: "xx==" or "xxx=" */
    if (n % 4 == 0 && n >= 4) {
        if (in[n - 1] == '=' && in[n - 2] == '=')
            n -= 2;
        else if (in[n - 1] == '=')
            n -= 1;
    }
    if (n % 4 == 1)
        return -EINVAL;
    size_t o = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        int s = sextet(in[i]);
        if (s < 0)
            return -EINVAL;
        acc = acc << 6 | (uint32_t)s;
        if (i % 4 == 3) {
            out[o++] = (uint8_t)(acc >> 16);
            out[o++] = (uint8_t)(acc >> 8);
            out[o++] = (uint8_t)acc;
            acc = 0;
        }
    }
    if (n % 4 == 2) {
        out[o++] = (uint8_t)(acc >> 4);
    } else if (n % 4 == 3) {
        out[o++] = (uint8_t)(acc >> 10);
        out[o++] = (uint8_t)(acc >> 2);
    }
    *out_len = o;
    return 0;
}
