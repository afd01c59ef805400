/*
 * src/grpc/status.c: gRPC status codes: their names, grpc-status values,
 * weave's errno values to codes and back, the HTTP status of a response
 * that carried no grpc-status, and grpc-message's percent-encoding. See
 * grpc_internal.h for the tables and why they are what they are.
 */
#include "grpc/grpc_internal.h"

#include <errno.h>
#include <string.h>

static const char *const code_names[GRPC_CODE_COUNT] = {
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

const char *grpc_code_name(int code)
{
    return code >= 0 && code < GRPC_CODE_COUNT ? code_names[code] : NULL;
}

int grpc_code_from_name(const char *s, size_t n)
{
    for (int c = 0; c < GRPC_CODE_COUNT; c++)
        if (strlen(code_names[c]) == n && memcmp(code_names[c], s, n) == 0)
            return c;
    return -EINVAL;
}

int grpc_status_parse(const char *s, size_t n)
{
    if (n < 1 || n > 3)
        return -EINVAL;
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -EINVAL;
        v = v * 10 + (s[i] - '0');
    }
    return v < GRPC_CODE_COUNT ? v : WV_GRPC_UNKNOWN;
}

/* Each code's errnos; the first is what grpc_code_to_errno returns. */
static const struct {
    int code;
    int errnos[12];
} errno_table[] = {
    {WV_GRPC_CANCELLED, {ECANCELED}},
    {WV_GRPC_UNKNOWN, {EREMOTEIO, EIO}},
    {WV_GRPC_INVALID_ARGUMENT, {EINVAL, EDOM, EILSEQ}},
    {WV_GRPC_DEADLINE_EXCEEDED, {ETIMEDOUT}},
    {WV_GRPC_NOT_FOUND, {ENOENT, ESRCH}},
    {WV_GRPC_ALREADY_EXISTS, {EEXIST}},
    {WV_GRPC_PERMISSION_DENIED, {EACCES, EPERM}},
    {WV_GRPC_RESOURCE_EXHAUSTED,
     {ENOSPC, ENOMEM, EMSGSIZE, E2BIG, ENOBUFS, EMFILE, ENFILE, EDQUOT}},
    {WV_GRPC_FAILED_PRECONDITION, {EBUSY, ENOTEMPTY, EISDIR, ENOTDIR, EALREADY}},
    {WV_GRPC_ABORTED, {EDEADLK}},
    {WV_GRPC_OUT_OF_RANGE, {ERANGE, EOVERFLOW}},
    {WV_GRPC_UNIMPLEMENTED, {ENOSYS, ENOTSUP, EPROTONOSUPPORT}},
    {WV_GRPC_INTERNAL, {EPROTO, EBADMSG, EFAULT}},
    {WV_GRPC_UNAVAILABLE,
     {EAGAIN, ECONNREFUSED, ECONNRESET, ECONNABORTED, EPIPE, ENOTCONN, ESHUTDOWN, EHOSTUNREACH,
      EHOSTDOWN, ENETUNREACH, ENETDOWN, ENETRESET}},
    {WV_GRPC_DATA_LOSS, {EUCLEAN}},
    {WV_GRPC_UNAUTHENTICATED, {EKEYREJECTED, EKEYEXPIRED}},
};

#define ERRNO_TABLE_LEN (sizeof errno_table / sizeof errno_table[0])

int grpc_code_from_errno(int err)
{
    if (err == 0)
        return WV_GRPC_OK;
    if (err > 0)
        return WV_GRPC_UNKNOWN;
    for (size_t i = 0; i < ERRNO_TABLE_LEN; i++)
        for (size_t j = 0; j < 12 && errno_table[i].errnos[j]; j++)
            if (-errno_table[i].errnos[j] == err)
                return errno_table[i].code;
    return WV_GRPC_UNKNOWN;
}

int grpc_code_to_errno(int code)
{
    if (code == WV_GRPC_OK)
        return 0;
    for (size_t i = 0; i < ERRNO_TABLE_LEN; i++)
        if (errno_table[i].code == code)
            return -errno_table[i].errnos[0];
    return -EREMOTEIO;
}

int grpc_code_from_http_status(int http_status)
{
    switch (http_status) {
    case 400:
        return WV_GRPC_INTERNAL;
    case 401:
        return WV_GRPC_UNAUTHENTICATED;
    case 403:
        return WV_GRPC_PERMISSION_DENIED;
    case 404:
        return WV_GRPC_UNIMPLEMENTED;
    case 429:
    case 502:
    case 503:
    case 504:
        return WV_GRPC_UNAVAILABLE;
    default:
        return WV_GRPC_UNKNOWN;
    }
}

/* ------------------------------------------------------------ grpc-message */

static bool stands_for_itself(uint8_t c)
{
    return c >= 0x20 && c <= 0x7E && c != '%';
}

size_t grpc_percent_encoded_len(const uint8_t *s, size_t n)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += stands_for_itself(s[i]) ? 1 : 3;
    return len;
}

size_t grpc_percent_encode(const uint8_t *s, size_t n, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (stands_for_itself(s[i])) {
            out[o++] = (char)s[i];
        } else {
            out[o++] = '%';
            out[o++] = hex[s[i] >> 4];
            out[o++] = hex[s[i] & 15];
        }
    }
    return o;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t grpc_percent_decode(const char *s, size_t n, uint8_t *out)
{
    /* o <= i always, so decoding in place reads each byte before it is
     * overwritten */
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int hi, lo;
        if (s[i] == '%' && n - i >= 3 && (hi = hex_value(s[i + 1])) >= 0 &&
            (lo = hex_value(s[i + 2])) >= 0) {
            out[o++] = (uint8_t)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = (uint8_t)s[i];
        }
    }
    return o;
}
