/*
 * src/grpc/metadata.c: custom metadata: which header names an application
 * may use, which ASCII values may be sent, and base64 for the binary
 * ("-bin") headers. gRPC sends base64 unpadded and must accept both forms,
 * so the decoder takes a final quantum of 2 or 3 chars with or without its
 * '=' padding.
 */
#include "base64/base64.h"
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

size_t grpc_base64_encoded_len(size_t n)
{
    return wv__b64_encoded_len(n, false);
}

size_t grpc_base64_encode(const uint8_t *in, size_t n, char *out)
{
    return wv__b64_encode(in, n, false, out);
}

size_t grpc_base64_decoded_max(size_t n)
{
    return n / 4 * 3 + 2;
}

int grpc_base64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len)
{
    long got = wv__b64_decode(in, n, true, out, grpc_base64_decoded_max(n));
    if (got < 0)
        return -EINVAL;
    *out_len = (size_t)got;
    return 0;
}
