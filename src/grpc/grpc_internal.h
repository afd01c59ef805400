/*
 * src/grpc/grpc_internal.h: the transport-independent half of gRPC over
 * HTTP/2, private to the library until the gRPC API is complete (the calls
 * themselves need src/h2). What is here is sans-I/O: bytes and header
 * values in, messages, codes and deadlines out; nothing touches a socket.
 *
 *   - Length-Prefixed-Message framing (frame.c): an incremental reader that
 *     takes a stream's DATA bytes in pieces of any size and yields whole
 *     messages, the prefix writer, and per-message gzip (grpc-encoding),
 *     with explicit size limits on the wire and after decompression.
 *   - grpc-timeout (timeout.c): parsing into nanoseconds or a deadline on
 *     wv_now()'s clock, and formatting what remains of a deadline.
 *   - Status (status.c): the 17 codes and their names, weave's negative
 *     errno values to codes and back, the HTTP status of a response without
 *     grpc-status, and grpc-message's percent-encoding.
 *   - Custom metadata (metadata.c): header names checked (reserved ones
 *     refused), "-bin" values in base64.
 *
 * Errors are negative errno values, as everywhere in weave; each function
 * says which, and grpc_code_from_errno gives the status a server answers
 * with: -EMSGSIZE is RESOURCE_EXHAUSTED, -EPROTO and -EBADMSG INTERNAL,
 * -ENOTSUP UNIMPLEMENTED, -EINVAL INVALID_ARGUMENT.
 *
 * Strings carry their length and need no NUL, as header values do in
 * HTTP/2; outputs are written into buffers the caller sizes with the
 * *_len / *_MAX helpers below.
 */
#ifndef WEAVE_GRPC_INTERNAL_H
#define WEAVE_GRPC_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/grpc.h"

#pragma GCC visibility push(hidden)

/* ------------------------------------------------------------ status codes */

/* The codes are weave/grpc.h's wv_grpc_code (WV_GRPC_OK ... WV_GRPC_UNAUTHENTICATED). */
typedef wv_grpc_code grpc_code;

#define GRPC_CODE_COUNT 17

/* The canonical name of a code ("OK", "CANCELLED", ..., "UNAUTHENTICATED"),
 * or NULL for a number that is not one of the 17. */
const char *grpc_code_name(int code);

/* The code named s[0..n) (exact, upper case), or -EINVAL. */
int grpc_code_from_name(const char *s, size_t n);

/*
 * A grpc-status header value: 1 to 3 ASCII digits, no sign or spaces. A
 * number that is not one of the 17 codes is WV_GRPC_UNKNOWN (the spec's rule
 * for codes a client does not know). -EINVAL when s is not such a number.
 */
int grpc_status_parse(const char *s, size_t n);

/*
 * The code a server answers with when a handler returns err (0 or a
 * negative errno value, as weave's calls return them):
 *
 *   0                                             OK
 *   -ECANCELED                                    CANCELLED
 *   -EREMOTEIO, -EIO, anything else               UNKNOWN
 *   -EINVAL, -EDOM, -EILSEQ                       INVALID_ARGUMENT
 *   -ETIMEDOUT                                    DEADLINE_EXCEEDED
 *   -ENOENT, -ESRCH                               NOT_FOUND
 *   -EEXIST                                       ALREADY_EXISTS
 *   -EACCES, -EPERM                               PERMISSION_DENIED
 *   -ENOSPC, -ENOMEM, -EMSGSIZE, -E2BIG,
 *   -ENOBUFS, -EMFILE, -ENFILE, -EDQUOT           RESOURCE_EXHAUSTED
 *   -EBUSY, -ENOTEMPTY, -EISDIR, -ENOTDIR,
 *   -EALREADY                                     FAILED_PRECONDITION
 *   -EDEADLK                                      ABORTED
 *   -ERANGE, -EOVERFLOW                           OUT_OF_RANGE
 *   -ENOSYS, -ENOTSUP (= -EOPNOTSUPP),
 *   -EPROTONOSUPPORT                              UNIMPLEMENTED
 *   -EPROTO, -EBADMSG, -EFAULT                    INTERNAL
 *   -EAGAIN, -ECONNREFUSED, -ECONNRESET,
 *   -ECONNABORTED, -EPIPE, -ENOTCONN, -ESHUTDOWN,
 *   -EHOSTUNREACH, -EHOSTDOWN, -ENETUNREACH,
 *   -ENETDOWN, -ENETRESET                         UNAVAILABLE
 *   -EUCLEAN                                      DATA_LOSS
 *   -EKEYREJECTED, -EKEYEXPIRED                   UNAUTHENTICATED
 *
 * -EIO is UNKNOWN, not DATA_LOSS: weave returns it for failures that lose
 * nothing (a peer ending a body short), and DATA_LOSS promises corruption;
 * -EUCLEAN ("structure needs cleaning", what Linux file systems return for
 * corruption they found) is the errno that says that. -EBUSY is
 * FAILED_PRECONDITION, not UNAVAILABLE: the resource is in a state the call
 * cannot run in, and a blind retry is not the cure. Positive values are
 * UNKNOWN (no weave call returns them as errors).
 */
int grpc_code_from_errno(int err);

/*
 * The negative errno a client call returns for a status it received: the
 * first errno of the code's line above (OK 0, CANCELLED -ECANCELED, UNKNOWN
 * -EREMOTEIO, ..., RESOURCE_EXHAUSTED -ENOSPC, UNAVAILABLE -EAGAIN,
 * DATA_LOSS -EUCLEAN, UNAUTHENTICATED -EKEYREJECTED), so
 * grpc_code_from_errno(grpc_code_to_errno(c)) == c for all 17 codes.
 * Numbers outside 0..16 are -EREMOTEIO (UNKNOWN).
 */
int grpc_code_to_errno(int code);

/*
 * The code for a response that carried no grpc-status, from its HTTP
 * status (the spec's table for responses from intermediaries): 400
 * INTERNAL, 401 UNAUTHENTICATED, 403 PERMISSION_DENIED, 404 UNIMPLEMENTED,
 * 429, 502, 503 and 504 UNAVAILABLE, everything else UNKNOWN, 200 included
 * (a real OK always carries grpc-status). 1xx responses are skipped by the
 * HTTP/2 layer and never reach this.
 */
int grpc_code_from_http_status(int http_status);

/* ------------------------------------------------------------ grpc-message */

/*
 * grpc-message is percent-encoded UTF-8: bytes 0x20-0x7E other than '%'
 * stand for themselves, every other byte is "%XX" (upper-case hex).
 * grpc_percent_encoded_len gives the exact encoded length (at most 3 n);
 * grpc_percent_encode writes that many chars into out and returns the count.
 */
size_t grpc_percent_encoded_len(const uint8_t *s, size_t n);
size_t grpc_percent_encode(const uint8_t *s, size_t n, char *out);

/*
 * Decode s[0..n) into out (at least n bytes; out may be s itself) and
 * return the decoded length. "%XX" with two hex digits of either case is
 * one byte; a '%' not followed by two hex digits is kept as it is, with the
 * bytes after it: the spec lets a receiver pass a bad encoding through but
 * never drop or fail the message. The result need not be valid UTF-8.
 */
size_t grpc_percent_decode(const char *s, size_t n, uint8_t *out);

/* ------------------------------------------------------------ grpc-timeout */

/* "99999999S": 8 digits, a unit, and a NUL. */
#define GRPC_TIMEOUT_MAX 10

/*
 * Parse a grpc-timeout value: 1 to 8 ASCII digits followed by one unit,
 * H (hours), M (minutes), S (seconds), m (milliseconds), u (microseconds)
 * or n (nanoseconds); nothing else, no sign, no spaces. Writes the timeout
 * in nanoseconds (saturating at INT64_MAX, which 99999999H exceeds; INT64_MAX
 * ns is 292 years) and returns 0, or -EINVAL. Zero ("0S") is accepted: the
 * spec says positive, but a zero timeout has one sensible meaning, a
 * deadline already passed, and peers send it.
 */
int grpc_timeout_parse(const char *s, size_t n, int64_t *ns);

/*
 * The deadline a parsed timeout gives, on wv_now()'s clock: now + ns,
 * saturating at WV_NEVER (INT64_MAX).
 */
int64_t grpc_timeout_deadline(int64_t now, int64_t ns);

/*
 * Format a timeout of ns > 0 nanoseconds into out (NUL-terminated) and
 * return its length. The value is exact whenever some unit represents it in
 * at most 8 digits, and then in the coarsest such unit (the fewest digits:
 * 1000000000 ns is "1S"); otherwise it is rounded up in the finest unit
 * whose value fits in 8 digits (1234567891 ns is "1234568u"), so the peer
 * never sees a deadline earlier than ours. -ETIMEDOUT when ns <= 0: the
 * deadline has passed and the call should fail with DEADLINE_EXCEEDED
 * without being sent.
 */
int grpc_timeout_format(int64_t ns, char out[GRPC_TIMEOUT_MAX]);

/*
 * The grpc-timeout for a deadline: formats deadline - now as above.
 * Returns 0 (and writes "") when deadline is WV_NEVER (send no header),
 * -ETIMEDOUT when it is not after now.
 */
int grpc_timeout_format_deadline(int64_t deadline, int64_t now, char out[GRPC_TIMEOUT_MAX]);

/* ------------------------------------------------------------ messages */

/* The 5-byte prefix: compressed flag (0 or 1), then the length, big-endian. */
#define GRPC_PREFIX_LEN 5

/* The receive limit gRPC implementations default to. */
#define GRPC_DEFAULT_MAX_MESSAGE (4u * 1024 * 1024)

typedef enum grpc_encoding {
    GRPC_ENCODING_IDENTITY = 0,
    GRPC_ENCODING_GZIP = 1,
} grpc_encoding;

/* What weave sends as grpc-accept-encoding. */
#define GRPC_ACCEPT_ENCODING "identity,gzip"

/*
 * The encoding a grpc-encoding value names: "identity" or "gzip" (ASCII
 * case ignored), else -ENOTSUP (a server answers UNIMPLEMENTED and lists
 * what it accepts in grpc-accept-encoding).
 */
int grpc_encoding_parse(const char *s, size_t n);

/* The grpc-encoding name of enc ("identity", "gzip"). */
const char *grpc_encoding_name(grpc_encoding enc);

/*
 * Whether a grpc-accept-encoding value (a comma-separated list, spaces and
 * tabs around the items allowed, ASCII case ignored) lists enc. Identity is
 * always acceptable, listed or not.
 */
bool grpc_accept_encoding_has(const char *s, size_t n, grpc_encoding enc);

/* Write the prefix of a message of len bytes. */
void grpc_prefix_write(uint8_t out[GRPC_PREFIX_LEN], bool compressed, uint32_t len);

/* One message as it came off the wire. */
typedef struct grpc_message {
    const uint8_t *data; /* never NULL, also for an empty message */
    size_t len;
    bool compressed; /* the flag: data is in the stream's grpc-encoding */
} grpc_message;

/*
 * The incremental reader of one stream's messages. Zeroed or
 * grpc_reader_init'ed; grpc_reader_free releases what it buffered.
 */
typedef struct grpc_reader {
    uint32_t max_len; /* the largest message accepted, on the wire */
    int err;          /* the error that ended the stream (sticky), or 0 */
    uint8_t prefix[GRPC_PREFIX_LEN];
    uint8_t prefix_n; /* prefix bytes held, 0..5 */
    uint32_t len;     /* the current message's length (once prefix_n == 5) */
    uint8_t *buf;     /* a message that arrives in pieces, gathered */
    size_t buf_n, buf_cap;
} grpc_reader;

/* max_len 0 means GRPC_DEFAULT_MAX_MESSAGE. */
void grpc_reader_init(grpc_reader *r, uint32_t max_len);
void grpc_reader_free(grpc_reader *r);

/*
 * Read from p[0..n), which continues the bytes fed before. Returns
 *   1   a message is complete: *msg is set and *used says how many bytes of
 *       p were read; call again with p + *used for the rest;
 *   0   all n bytes were read (*used = n) and no message is complete yet;
 *  <0   the stream is broken; every later call returns the same error:
 *       -EPROTO     a compressed flag other than 0 or 1 (INTERNAL), as soon
 *                   as that first byte arrives;
 *       -EMSGSIZE   a length over max_len (RESOURCE_EXHAUSTED), as soon as
 *                   the prefix is complete, before any of the payload;
 *       -ENOMEM     (the reader buffers a split message in memory that grows
 *                   with the bytes that arrive, not with the length claimed).
 * A message that arrives whole inside p is returned in place (msg->data
 * points into p); one that arrived in pieces is in the reader's buffer.
 * Either way msg->data is valid until the next call on r, and p only as
 * long as the caller keeps it.
 */
int grpc_reader_feed(grpc_reader *r, const uint8_t *p, size_t n, size_t *used, grpc_message *msg);

/*
 * Whether the reader stands between messages: at the end of the stream
 * (END_STREAM), anything else means the peer cut a message short (INTERNAL).
 */
bool grpc_reader_idle(const grpc_reader *r);

/*
 * One message framed for the wire, in a new malloc'ed buffer *out of
 * *out_len bytes (prefix + payload). With GRPC_ENCODING_GZIP the payload is
 * gzip-compressed and flagged, unless compressing does not make it smaller:
 * then it goes uncompressed with flag 0, which the spec allows message by
 * message. -EMSGSIZE for a payload of 2^32 bytes or more, -ENOMEM.
 */
int grpc_message_encode(const uint8_t *msg, size_t n, grpc_encoding enc, uint8_t **out,
                        size_t *out_len);

/* A received message's payload, ready for the protobuf decoder. */
typedef struct grpc_payload {
    const uint8_t *data;
    size_t len;
    uint8_t *owned; /* the decompressed bytes (data), or NULL: grpc_payload_free */
} grpc_payload;

/*
 * The payload of a message read from a stream whose grpc-encoding is enc:
 * an uncompressed message as it is (no copy, owned NULL), a compressed one
 * decompressed into a new buffer. Errors:
 *   -EPROTO     the flag is set on a stream without an encoding (identity):
 *               the spec makes that INTERNAL;
 *   -EMSGSIZE   it decompresses to more than max_len bytes (0: the default
 *               4 MiB); found without allocating more than max_len + 1;
 *   -EBADMSG    not valid gzip, truncated, or bytes after its end;
 *   -ENOMEM.
 */
int grpc_message_decode(const grpc_message *m, grpc_encoding enc, size_t max_len,
                        grpc_payload *out);
void grpc_payload_free(grpc_payload *p);

/*
 * gzip (RFC 1952, one member) of in[0..n) into a new malloc'ed buffer.
 * 0, -ENOMEM.
 */
int grpc_gzip_compress(const uint8_t *in, size_t n, uint8_t **out, size_t *out_len);

/*
 * Inflate the gzip member in[0..n) into a new malloc'ed buffer of at most
 * max_len bytes. The buffer grows with the output and is never larger than
 * max_len + 1, so a small input that inflates to gigabytes (a zip bomb) is
 * refused after max_len + 1 bytes of work and memory. 0, -EMSGSIZE,
 * -EBADMSG (not gzip, corrupt, truncated, or trailing bytes), -ENOMEM.
 */
int grpc_gzip_decompress(const uint8_t *in, size_t n, size_t max_len, uint8_t **out,
                         size_t *out_len);

/* ------------------------------------------------------------ metadata */

/*
 * Whether a custom metadata name may be sent or accepted: 1 or more of
 * 0-9 a-z _ - . (lower case, as HTTP/2 requires), and not reserved:
 * names beginning with "grpc-" (the protocol's own), pseudo-headers
 * (":path", ...; they fail the character rule) and the headers the
 * transport owns: content-type, te, user-agent, and HTTP/2's forbidden
 * connection headers (connection, keep-alive, proxy-connection,
 * transfer-encoding, upgrade) and host. 0 or -EINVAL.
 */
int grpc_metadata_check_name(const char *name, size_t n);

/* Whether name[0..n) ends with "-bin" (a binary header, base64 on the wire). */
bool grpc_metadata_is_binary(const char *name, size_t n);

/*
 * Whether an ASCII (non -bin) value may be sent: bytes 0x20-0x7E only.
 * 0 or -EINVAL.
 */
int grpc_metadata_check_value(const char *v, size_t n);

/* The length of n bytes in unpadded base64, which is what gRPC sends. */
size_t grpc_base64_encoded_len(size_t n);

/* Unpadded standard base64 of in[0..n) into out; returns the length. */
size_t grpc_base64_encode(const uint8_t *in, size_t n, char *out);

/* The most bytes a base64 text of n chars decodes to (a bound for out). */
size_t grpc_base64_decoded_max(size_t n);

/*
 * Decode a -bin value: standard base64, padded or not (the spec says to
 * accept both). Writes *out_len bytes into out (grpc_base64_decoded_max(n)
 * is enough) and returns 0, or -EINVAL: a char outside the alphabet, a
 * length that no encoding has (4k + 1), padding anywhere but at the end or
 * not completing a quantum. Bits left over in the last char are ignored,
 * as most decoders do.
 */
int grpc_base64_decode(const char *in, size_t n, uint8_t *out, size_t *out_len);

#pragma GCC visibility pop

#endif /* WEAVE_GRPC_INTERNAL_H */
