/*
 * src/http/parser.h: the HTTP/1.1 request parser and chunked-body decoder
 * (private to the library; src/http/server.c drives them).
 *
 * Both are sans-I/O and zero-copy: they read bytes the caller already has and
 * hand back wv_str slices into those bytes, never allocating and never
 * touching a socket. They are strict to RFC 9110/9112: anything the RFCs let
 * a server reject is rejected, with the HTTP status to answer and a reason.
 *
 * A request head that arrives in pieces is parsed by calling
 * http_parse_request() again on the grown buffer with the same `scanned`
 * cursor; the search for the end of the head resumes where it stopped, so a
 * head split across N reads costs O(total) scanning. The head is then parsed
 * once, when complete. A chunked body is fed to http_chunked_feed() as it
 * arrives; it returns the data as slices of what was fed.
 */
#ifndef WEAVE_HTTP_PARSER_H
#define WEAVE_HTTP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/str.h"

#pragma GCC visibility push(hidden)

typedef struct http_header {
    wv_str name;  /* a token, as sent (compare with wv_str_ieq) */
    wv_str value; /* without leading/trailing OWS; may hold obs-text (0x80-0xFF) */
} http_header;

typedef struct http_limits {
    size_t max_request_line; /* default 8192: longer -> HTTP_E_URI_TOO_LONG (414) */
    size_t max_head_bytes;   /* default 65536 (request line + headers): longer -> 431 */
    int max_headers;         /* default 100: more -> HTTP_E_HEADERS_TOO_LARGE (431) */
} http_limits;
#define HTTP_LIMITS_DEFAULT ((http_limits){8192, 65536, 100})

typedef struct http_request {
    wv_str method;        /* token, case-sensitive ("GET") */
    wv_str target;        /* the request-target as sent */
    wv_str path;          /* origin-form: target up to '?' (still percent-encoded); absolute-form:
                             the path part ("/", a static string, if empty); "*" for
                             asterisk-form; the authority for CONNECT */
    wv_str query;         /* after '?', without it; empty if none */
    int minor;            /* HTTP/1.<minor>: 0 or 1 */
    http_header *headers; /* caller-provided array of capacity max_headers */
    int nheaders;
    wv_str host;            /* the Host header value (empty if absent, HTTP/1.0 only); for an
                               absolute-form target, its authority (RFC 9112 3.2.2) */
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* HTTP/1.1 unless "Connection: close"; HTTP/1.0 only with
                               "Connection: keep-alive" (and no close) */
    bool expect_continue;   /* Expect: 100-continue (case-insensitive); HTTP/1.1 only */
    bool upgrade;           /* Connection has the "upgrade" token and an Upgrade header is present;
                               HTTP/1.1 only (RFC 9110 7.8: ignored in HTTP/1.0) */
} http_request;

enum http_error { /* negative returns of http_parse_request; the HTTP status is -value */
                  HTTP_E_BAD_REQUEST = -400,
                  HTTP_E_URI_TOO_LONG = -414,
                  HTTP_E_HEADERS_TOO_LARGE = -431,
                  HTTP_E_NOT_IMPLEMENTED = -501,
                  HTTP_E_VERSION = -505,
};

/*
 * Parse one request head at the start of buf[0..len). Returns the head's
 * length in bytes (any empty lines before the request line, through the
 * blank line that ends the head) when complete, 0 when more bytes are needed,
 * or an http_error. On success every field of *req is set and its slices
 * point into buf; req->headers must point to an array of lim->max_headers
 * entries (it is only written, never read). On 0 or an error *req is
 * unspecified.
 *
 * `scanned` (in/out) is an opaque cursor, not a byte count: set it to 0 for
 * a new request and pass back what the previous call left in it while the
 * same request is still arriving in the same (possibly moved) bytes. It lets
 * the search for the end of the head resume where it stopped.
 *
 * lim may be NULL for HTTP_LIMITS_DEFAULT; max_head_bytes is capped at
 * INT_MAX. Limits are enforced as soon as they are exceeded, before the head
 * is complete: the request line (after any leading empty lines, without its
 * CRLF) may have max_request_line bytes, the whole head max_head_bytes, and
 * there may be max_headers field lines. Errors that the bytes seen so far
 * make certain (a bare LF, a control byte, a limit) are reported as soon as
 * those bytes arrive, the first in byte order; the rest (syntax of the
 * request line and fields, framing headers) once the head is complete. So a
 * request fed in any number of pieces gives 0 and then the same result as the
 * whole. A 400 anywhere in the head wins over a 501. On error *why is a
 * human-readable reason (a static string); why may be NULL.
 */
int http_parse_request(const char *buf, size_t len, const http_limits *lim, http_request *req,
                       size_t *scanned, const char **why);

/* Chunked transfer-coding decoder (RFC 9112 7.1), sans-I/O and zero-copy.
 * Zero-initialise one (or call http_chunked_init) per body. Chunk extensions
 * are checked and ignored; trailer fields are checked and discarded, or
 * handed out as HTTP_CHUNK_TRAILER slices when keep_trailers is set. */
typedef struct http_chunked {
    int state;
    bool keep_trailers;   /* return the trailer section's bytes (HTTP_CHUNK_TRAILER) */
    uint64_t remaining;   /* data bytes left in the current chunk */
    size_t trailer_bytes; /* bytes of the trailer section seen so far */
    size_t line_bytes;    /* bytes of the current chunk-size line seen so far */
    const char *why;      /* after HTTP_E_BAD_REQUEST: the reason (static string) */
} http_chunked;

#define HTTP_CHUNK_MORE        0
#define HTTP_CHUNK_DATA        1
#define HTTP_CHUNK_DONE        2
#define HTTP_CHUNK_TRAILER     3
#define HTTP_CHUNK_LINE_MAX    4096  /* a chunk-size line (size + extensions) longer -> 400 */
#define HTTP_CHUNK_TRAILER_MAX 65536 /* a trailer section longer -> 400 */

void http_chunked_init(http_chunked *d);

/*
 * Feed bytes. Returns:
 *   HTTP_CHUNK_DATA (1): (*data, *data_len) is a slice of `in` holding body bytes (never empty);
 *   HTTP_CHUNK_MORE (0): everything in `in` was consumed, feed more;
 *   HTTP_CHUNK_DONE (2): the last chunk and the trailer section have been consumed; bytes of
 *                        `in` after *consumed belong to the next message;
 *   HTTP_CHUNK_TRAILER (3): only with keep_trailers: (*data, *data_len) is a slice of `in`
 *                        holding bytes of the trailer section's field lines ("Name: value"
 *                        lines with their CRLFs, checked; never empty; a line may span
 *                        several slices), the final CRLF excluded;
 *   HTTP_E_BAD_REQUEST: malformed (bad hex, size overflow past 2^63-1, missing CRLF, bad
 *                       chunk-ext, chunk-size line over HTTP_CHUNK_LINE_MAX, trailer section
 *                       over HTTP_CHUNK_TRAILER_MAX, bare LF); d->why says which. The decoder
 *                       stays failed.
 * *consumed = bytes of `in` used by this call (always set). data/data_len are set only for
 * HTTP_CHUNK_DATA and HTTP_CHUNK_TRAILER.
 */
int http_chunked_feed(http_chunked *d, const char *in, size_t len, size_t *consumed,
                      const char **data, size_t *data_len);

/* The RFC 9110 reason phrase of a status code ("Not Found"), also for the
 * other codes of the IANA registry in use (429, 431, ...); "" for unknown or
 * unused codes. */
const char *http_status_reason(int status);

/* True when c is a tchar (RFC 9110 5.6.2), the bytes a token is made of. */
bool http_token_char(unsigned char c);

/* For tests and the fuzzer: turn the SSE2 scanning paths off (false) or back
 * on (true, the default), so the scalar fallbacks run on this machine too.
 * Not thread-safe; never call it while another thread parses. */
void http_parser_use_simd(bool on);

#pragma GCC visibility pop

#endif /* WEAVE_HTTP_PARSER_H */
