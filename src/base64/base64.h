/*
 * src/base64/base64.h: standard base64 (RFC 4648's alphabet with + and /),
 * shared internal code (like src/aws): gRPC's -bin metadata (unpadded, and
 * both forms read), memcached's meta protocol keys and Celery's envelopes
 * (padded, as Python's base64 writes and reads them). Private: not part of
 * the public API.
 */
#ifndef WEAVE_BASE64_H
#define WEAVE_BASE64_H

#include <stdbool.h>
#include <stddef.h>

#pragma GCC visibility push(hidden)

/* The length of n bytes in base64: with padding (a multiple of 4) or
 * without. */
size_t wv__b64_encoded_len(size_t n, bool pad);

/* in[0..n) as base64 into out (wv__b64_encoded_len(n, pad) bytes, no NUL);
 * returns the length. */
size_t wv__b64_encode(const void *in, size_t n, bool pad, char *out);

/* Decode in[0..n) into out, at most cap bytes: the length, or -1 for a
 * character outside the alphabet, misplaced or missing padding, a length
 * no base64 has, or more than cap bytes. Padding ("xx==", "xxx=") is
 * required unless pad_optional, which also takes text without it. */
long wv__b64_decode(const char *in, size_t n, bool pad_optional, void *out, size_t cap);

#pragma GCC visibility pop

#endif
