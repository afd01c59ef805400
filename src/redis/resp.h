/*
 * src/redis/resp.h: the RESP codec (RESP2 and RESP3), private to the
 * library; the Redis client (src/redis/) drives it.
 *
 * Sans-I/O like the WebSocket frame codec: it reads bytes the caller already
 * has and writes into memory the caller owns. It never allocates and never
 * touches a socket.
 *
 * It owns the wire format: where a reply ends, whether its bytes are RESP,
 * how many nodes its tree needs, the tree itself (wv_redis_reply, in
 * include/weave/redis.h), and the encoding of a command. Which reply answers
 * which command, push routing and the connection's buffer belong to the
 * client.
 *
 * Reading takes two passes, so that memory is sized by bytes that arrived,
 * never by a length a peer declared:
 *
 *   resp_scanner sc;
 *   resp_scanner_init(&sc, max_reply);
 *   ...after every read, on the unconsumed bytes in[0..n):
 *   ssize_t len = resp_scan(&sc, in, n);
 *   if (len > 0) {                        the reply is in[0..len)
 *       wv_redis_reply *r = malloc(sc.nodes * sizeof *r + len);
 *       char *bytes = (char *)(r + sc.nodes);
 *       memcpy(bytes, in, len);
 *       resp_build(bytes, len, r, sc.nodes);   r[0] is the root
 *       ...consume len bytes; call resp_scan again for the next reply
 *   } else if (len == 0) { read more } else { fail with sc.err }
 *
 * Fast paths. After a complete reply the scanner also describes its top
 * level (after any attributes): sc.type, sc.push, the text of a top-level
 * string, status, error, double, big number or verbatim string as
 * sc.str_off and sc.str_len into the reply's bytes (resp_scan_text), the
 * value of a top-level integer or boolean in sc.integer. So a GET, a +OK
 * or an INCR is answered without a tree and without an allocation;
 * sc.nodes == 1 says there is nothing below the top.
 *
 * Errors (negative errno, with a message in sc.err):
 *   -EPROTO    the bytes are not RESP: an unknown type byte, a length or
 *              integer that is not a decimal number (or is out of range), a
 *              negative length other than -1 ($-1 and *-1 only), a missing
 *              CRLF, a boolean other than #t or #f, a malformed double or
 *              big number, a verbatim string without its "fmt:" prefix,
 *              aggregates nested deeper than RESP_MAX_DEPTH, or a streamed
 *              RESP3 reply ($?, *?, ;, .), which Redis never sends.
 *   -EMSGSIZE  a string (bulk, blob error, verbatim, or a simple line) longer
 *              than max_bulk, or an aggregate declaring more than
 *              RESP_MAX_ELEMENTS elements (pairs for maps and attributes).
 * Each is reported from the bytes that have arrived, as soon as they make
 * it certain (the content of a double or big number once its line is
 * whole), and the checks run in byte order, so every prefix of an input
 * gives 0 or the same error (with the same message) as the whole. An error
 * is sticky: later calls return it again until resp_scanner_init.
 *
 * A simple string or error runs to its first CR, which must be followed by
 * LF; a bare LF inside it is kept as text (Redis never sends one).
 */
#ifndef WEAVE_REDIS_RESP_H
#define WEAVE_REDIS_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "weave/buf.h"
#include "weave/redis.h"
#include "weave/str.h"

#pragma GCC visibility push(hidden)

#define RESP_MAX_DEPTH        64                  /* aggregates inside one another */
#define RESP_MAX_BULK_DEFAULT ((size_t)512 << 20) /* Redis's own proto-max-bulk-len */
#define RESP_MAX_ELEMENTS     INT32_MAX           /* declared elements of one aggregate */
#define RESP_ERR_MAX          128                 /* resp_scanner.err, NUL included */

/*
 * The state of one connection's reader between reads. The first fields
 * describe the reply resp_scan returned last; they change only when it
 * returns another. Everything in `at` is an offset from the start of the
 * reply being scanned, never a pointer, so the caller's buffer may move
 * (realloc, memmove) between calls.
 */
typedef struct resp_scanner {
    /* the reply resp_scan returned last, its top level after any attributes */
    size_t nodes;       /* wv_redis_reply nodes resp_build needs: >= 1, <= bytes / 3 */
    wv_redis_type type; /* the top-level type */
    bool push;          /* type == WV_REDIS_PUSH: a push message, not an answer */
    size_t str_off;     /* text types at the top: the text is p[str_off .. str_off + str_len) */
    size_t str_len;     /* (a verbatim string's "fmt:" is the 4 bytes before str_off) */
    long long integer;  /* WV_REDIS_INT and WV_REDIS_BOOL at the top: the value */

    size_t max_bulk;        /* set by resp_scanner_init */
    int error;              /* 0, or the sticky -EPROTO / -EMSGSIZE */
    char err[RESP_ERR_MAX]; /* the message of the error, "" while none */

    /* progress through the reply being scanned: the scanner's own */
    struct resp_progress {
        size_t pos;           /* the next element, or the unfinished one, starts here */
        size_t line_scan;     /* an unfinished text line: the CR search resumes here (0: none) */
        size_t payload;       /* an unfinished bulk: its payload starts here (0: none) */
        size_t payload_len;   /* ... and is this long */
        uint8_t payload_type; /* ... '$', '!' or '=' */
        int depth;            /* aggregates open */
        int attributes;       /* ... of which attributes, whose elements are not nodes */
        size_t nodes;         /* nodes counted so far */
        wv_redis_type type;   /* the top level so far (the fields above, once complete) */
        size_t str_off, str_len;
        long long integer;
        uint64_t attribute_levels;          /* bit d: level d is an attribute */
        uint32_t remaining[RESP_MAX_DEPTH]; /* elements level d still expects */
    } at;
} resp_scanner;

/* Start (or restart, after an error) with nothing scanned. max_bulk limits
 * every string of a reply; 0 means RESP_MAX_BULK_DEFAULT (512 MiB). */
void resp_scanner_init(resp_scanner *s, size_t max_bulk);

/*
 * Scan the caller's unconsumed bytes p[0..n), which start at a reply. Call
 * it again after each read with the same bytes (at any address) and those
 * that came since; it resumes where it stopped, so a reply costs O(its
 * bytes) however it is cut. Returns:
 *   > 0  the length of one complete reply at p[0..len), described by
 *        the scanner's first fields; it is reset: pass the bytes after it next;
 *   0    more bytes are needed;
 *   < 0  -EPROTO or -EMSGSIZE (see the top of this file), the message in
 *        s->err.
 * Bytes after the reply are not looked at.
 */
ssize_t resp_scan(resp_scanner *s, const char *p, size_t n);

/*
 * Build the tree of the reply p[0..len) that resp_scan just accepted, into
 * nodes[0..count) with count = s->nodes; nodes[0] is the root, and
 * every aggregate's elements are contiguous. The bytes are the caller's own
 * copy: strings point into them and are NUL-terminated in place (over the
 * CR that ends each one), so the bytes must live as long as the tree, and
 * p is no longer RESP after this. Attributes are skipped. Returns 0, or
 * -EINVAL when the bytes and count do not fit together (a caller's mistake:
 * bytes resp_scan did not accept, or too few nodes); nothing is written
 * past nodes[count) or p[len).
 */
int resp_build(char *p, size_t len, wv_redis_reply *nodes, size_t count);

/* The fields of the last reply, for code that reads better with calls. */
static inline wv_redis_type resp_scan_type(const resp_scanner *s)
{
    return s->type;
}

static inline size_t resp_scan_nodes(const resp_scanner *s)
{
    return s->nodes;
}

static inline long long resp_scan_integer(const resp_scanner *s)
{
    return s->integer;
}

/* The text of a top-level string, status, error, double, big number or
 * verbatim string, in the reply's bytes p (those resp_scan was given, or a
 * copy); empty for other types. Not NUL-terminated: the CRLF follows. */
static inline wv_str resp_scan_text(const resp_scanner *s, const char *p)
{
    return (wv_str){p + s->str_off, s->str_len};
}

/*
 * The exact size of a command argv[0..argc) encoded by
 * resp_write_command, or 0 when argc < 0 or it would not fit in a size_t.
 */
size_t resp_command_size(const size_t *lens, int argc);

/*
 * Append the command argv[0..argc) (argv[i] has lens[i] bytes, any bytes)
 * to out as RESP: *argc CRLF, then $len CRLF arg CRLF for each. Returns 0,
 * -EINVAL when argc < 0, or -ENOMEM (out's limit, or memory), and then out
 * is unchanged.
 */
int resp_write_command(wv_buf *out, const char *const *argv, const size_t *lens, int argc);

/* The same for arguments held as wv_str (what the client's calls take). */
int resp_append_command(wv_buf *out, int argc, const wv_str *argv);

#pragma GCC visibility pop

#endif /* WEAVE_REDIS_RESP_H */
