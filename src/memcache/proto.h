/*
 * src/memcache/proto.h: the memcached protocol codec, private to the
 * library; the memcached client drives it.
 *
 * Sans-I/O like the WebSocket and HTTP codecs: encoders append one request
 * to a wv_buf, and the reply parser takes bytes the caller already has and
 * returns one reply per call, pointing into those bytes. Neither touches a
 * socket, allocates (beyond the wv_buf) or keeps state between calls.
 *
 * Two dialects of memcached's text protocol (the binary protocol, deprecated
 * since 1.6.0, is not spoken):
 *
 *   meta commands (mg, ms, md, ma, mn): one key per command, flags chosen
 *     per request, replies that say only what was asked. Experimental in
 *     memcached 1.5.19, a full replacement for the classic commands in 1.6.0,
 *     stable since 1.6.10, which also renamed their success code OK to HD
 *     (this codec speaks the HD form) and added base64 keys (the b flag).
 *     Quiet mode (q) drops the reply a command would usually get (EN for mg,
 *     HD for ms, md, ma); errors and other outcomes still come. Quiet
 *     commands pipelined with an opaque token each (O, echoed in the reply)
 *     and ended by mn (whose reply MN says all before it were answered) are
 *     how a client sends many commands and reads back only what matters.
 *   classic commands, for servers without meta: get/gets (many keys),
 *     set/add/replace, append/prepend and cas/gets (memcached 1.2.4), delete,
 *     incr/decr, touch (1.4.8), version; noreply on the updates. 32-bit
 *     client flags since 1.2.1.
 *
 * Encoders return 0 or a negative errno and append all of their request or
 * nothing:
 *   -EINVAL  a key that is not valid (mc_key_valid: 1..250 bytes, no control
 *            byte, space or DEL; with base64_key, 1..186 bytes of anything),
 *            an opaque that is not 1..32 bytes of key-like text, an unknown
 *            mode, data NULL with a length;
 *   -ENOMEM  the buffer's limit, or memory; the buffer is as it was.
 * TTLs (exptime) are seconds from now up to 30 days, a Unix time beyond
 * that, negative to expire at once, 0 for never. Options structs may be NULL
 * (all defaults) and are read only during the call; zero fields send nothing.
 *
 * A pipelined multi-get, then reading its replies:
 *
 *     mc_encode_mg(&out, "a", 1, &(mc_mg_opts){.value = true, .quiet = true, .opaque = "1"});
 *     mc_encode_mg(&out, "b", 1, &(mc_mg_opts){.value = true, .quiet = true, .opaque = "2"});
 *     mc_encode_mn(&out);                              (send out; read into in)
 *     while ((n = mc_parse_reply(in, len, 1 << 20, &r, why, sizeof why)) > 0) {
 *         if (r.kind == MC_MN)
 *             break;                                  (a miss sent nothing)
 *         use(in + r.opaque.off, in + r.value.off, r.value.len);   (an MC_VA)
 *         in += n, len -= n;
 *     }                                               (0: read more; < 0: close)
 *
 * Replies: mc_parse_reply returns the number of bytes one whole reply took
 * (> 0), 0 when more bytes are needed, or a negative errno:
 *   -EPROTO    the bytes are not a memcached reply (why says what is wrong);
 *   -EMSGSIZE  a value is longer than the caller's limit, reported from its
 *              header line, before the data has arrived.
 * Slices in the reply (mc_slice) are offsets into the bytes given, so the
 * buffer may move between reading and using them. Every prefix of an input
 * gives 0 or the whole's result, so bytes may be fed as they arrive.
 */
#ifndef WEAVE_MEMCACHE_PROTO_H
#define WEAVE_MEMCACHE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "weave/buf.h"
#include "weave/str.h"

#pragma GCC visibility push(hidden)

#define MC_KEY_MAX        250  /* bytes of a key (memcached's KEY_MAX_LENGTH) */
#define MC_BASE64_KEY_MAX 186  /* bytes of a binary key: its base64 must fit in MC_KEY_MAX */
#define MC_OPAQUE_MAX     32   /* bytes of an opaque token (O) */
#define MC_LINE_MAX       8192 /* bytes of a reply line before its CRLF; longer is -EPROTO */

/* The one key rule of the project: 1..250 bytes, none of them a control byte
 * (0x00-0x20, so no space either) or DEL (0x7f). Bytes 0x80-0xff are allowed
 * (UTF-8 keys), as memcached allows them. */
bool mc_key_valid(const char *key, size_t len);

/* ------------------------------------------------------------ meta requests */

/* mg <key> <flags>*: get, touch, and what is known about an item. Replies:
 * VA (with v) or HD on a hit, EN on a miss (none with quiet). */
typedef struct mc_mg_opts {
    bool value;         /* v: return the value (reply VA <size> + data) */
    bool client_flags;  /* f: return the client flags */
    bool cas;           /* c: return the CAS value */
    bool ttl;           /* t: return the remaining TTL (-1: never expires) */
    bool key;           /* k: return the key */
    bool size;          /* s: return the value's size */
    bool hit;           /* h: return whether it was fetched before (0/1) */
    bool last_access;   /* l: return seconds since the last access */
    bool no_bump;       /* u: do not bump the item in the LRU */
    bool quiet;         /* q: no EN on a miss */
    bool base64_key;    /* b: the key is binary (1..186 bytes, any bytes), sent as base64 */
    const char *opaque; /* O: NULL, or 1..32 bytes of key-like text echoed in the reply */
    bool touch;         /* T: set the TTL to touch_ttl on a hit */
    int64_t touch_ttl;
    bool vivify; /* N: on a miss, create an empty item with vivify_ttl (reply W) */
    int64_t vivify_ttl;
    bool recache; /* R: win the recache (W) when the TTL left is below recache_ttl */
    int64_t recache_ttl;
} mc_mg_opts;

int mc_encode_mg(wv_buf *b, const char *key, size_t len, const mc_mg_opts *o);

typedef enum mc_ms_mode {
    MC_MS_SET = 0,       /* no M: the server's default */
    MC_MS_ADD = 'E',     /* store only if absent (NS when present) */
    MC_MS_APPEND = 'A',  /* append to an existing value */
    MC_MS_PREPEND = 'P', /* prepend to an existing value */
    MC_MS_REPLACE = 'R', /* store only if present */
} mc_ms_mode;

/* ms <key> <datalen> <flags>* + data: store. Replies: HD (none with quiet),
 * NS not stored, EX the CAS did not match, NF no item to compare with. */
typedef struct mc_ms_opts {
    mc_ms_mode mode;       /* M */
    uint32_t client_flags; /* F, sent when nonzero (the server's default is 0) */
    int64_t ttl;           /* T, sent when nonzero (0: never expires) */
    uint64_t compare_cas;  /* C, sent when nonzero: store only if the CAS matches */
    bool invalidate;       /* I: with C, a lower CAS stores but marks the item stale */
    bool return_cas;       /* c: return the new CAS */
    bool return_key;       /* k */
    bool quiet;            /* q: no HD */
    bool base64_key;       /* b */
    const char *opaque;    /* O */
} mc_ms_opts;

int mc_encode_ms(wv_buf *b, const char *key, size_t len, const void *data, size_t n,
                 const mc_ms_opts *o);

/* md <key> <flags>*: delete, or mark stale. Replies: HD (none with quiet),
 * NF, EX (the CAS did not match). */
typedef struct mc_md_opts {
    uint64_t compare_cas; /* C, sent when nonzero */
    bool invalidate;      /* I: mark stale and bump the CAS instead of deleting */
    bool touch;           /* T: with invalidate, set the TTL to touch_ttl */
    int64_t touch_ttl;
    bool return_key; /* k */
    bool quiet;      /* q: no HD */
    bool base64_key; /* b */
    const char *opaque;
} mc_md_opts;

int mc_encode_md(wv_buf *b, const char *key, size_t len, const mc_md_opts *o);

typedef enum mc_ma_mode {
    MC_MA_INCR = 0,   /* no M: the server's default */
    MC_MA_DECR = 'D', /* stops at 0 */
} mc_ma_mode;

/* ma <key> <flags>*: add delta to (or subtract it from) a decimal value.
 * delta is sent as D unless it is 1, the server's default. Replies: HD (none
 * with quiet) or VA with the new value (with value), NF, NS (not created
 * after a miss), EX. */
typedef struct mc_ma_opts {
    mc_ma_mode mode; /* M */
    bool vivify;     /* N: on a miss, create the item with initial and vivify_ttl */
    int64_t vivify_ttl;
    uint64_t initial;     /* J, sent when nonzero: the value created on a miss */
    uint64_t compare_cas; /* C, sent when nonzero */
    bool touch;           /* T: set the TTL to touch_ttl on success */
    int64_t touch_ttl;
    bool value;      /* v: return the new value (reply VA) */
    bool ttl;        /* t: return the remaining TTL */
    bool return_cas; /* c */
    bool return_key; /* k */
    bool quiet;      /* q: no HD */
    bool base64_key; /* b */
    const char *opaque;
} mc_ma_opts;

int mc_encode_ma(wv_buf *b, const char *key, size_t len, uint64_t delta, const mc_ma_opts *o);

/* mn: the reply MN comes after the replies of every command sent before. */
int mc_encode_mn(wv_buf *b);

/* ------------------------------------------------------------ classic requests */

/* get <key>* (with_cas: gets <key>*): replies VALUE per key found, then END.
 * n >= 1, or -EINVAL. The line has no length bound here: memcached 1.6
 * reads a get line of any length (checked with 560 KB of keys). */
int mc_encode_get(wv_buf *b, const wv_str *keys, size_t n, bool with_cas);

typedef enum mc_store_cmd {
    MC_SET,     /* STORED */
    MC_ADD,     /* STORED, or NOT_STORED when present */
    MC_REPLACE, /* STORED, or NOT_STORED when absent */
    MC_APPEND,  /* flags and exptime are ignored by the server */
    MC_PREPEND, /* likewise */
    MC_CAS,     /* STORED, EXISTS (changed since gets), NOT_FOUND */
} mc_store_cmd;

typedef struct mc_store_opts {
    uint32_t flags;  /* client flags */
    int64_t exptime; /* TTL */
    uint64_t cas;    /* MC_CAS: the value gets returned */
    bool noreply;    /* no reply; a malformed line may still get an error */
} mc_store_opts;

/* <cmd> <key> <flags> <exptime> <bytes> [<cas>] [noreply] + data. */
int mc_encode_store(wv_buf *b, mc_store_cmd cmd, const char *key, size_t len, const void *data,
                    size_t n, const mc_store_opts *o);

/* delete <key> [noreply]: DELETED or NOT_FOUND. */
int mc_encode_delete(wv_buf *b, const char *key, size_t len, bool noreply);

/* incr/decr <key> <delta> [noreply]: the new value (a number line) or
 * NOT_FOUND; decr stops at 0, incr wraps at 2^64. */
int mc_encode_incr(wv_buf *b, const char *key, size_t len, uint64_t delta, bool noreply);
int mc_encode_decr(wv_buf *b, const char *key, size_t len, uint64_t delta, bool noreply);

/* touch <key> <exptime> [noreply]: TOUCHED or NOT_FOUND. */
int mc_encode_touch(wv_buf *b, const char *key, size_t len, int64_t exptime, bool noreply);

/* version: VERSION <text>. */
int mc_encode_version(wv_buf *b);

/* ------------------------------------------------------------ replies */

typedef enum mc_reply_kind {
    /* meta */
    MC_HD = 1, /* success (stored, deleted, hit without value...) */
    MC_VA,     /* value follows: value, and the flags asked for */
    MC_EN,     /* miss (mg) */
    MC_NF,     /* not found */
    MC_NS,     /* not stored */
    MC_EX,     /* exists: the CAS did not match */
    MC_MN,     /* the reply to mn */
    MC_ME,     /* meta debug: key, and the k=v pairs in text */
    /* classic */
    MC_VALUE, /* one item of get/gets: key, client_flags, value, cas with gets */
    MC_END,   /* the end of a get/gets */
    MC_STORED,
    MC_NOT_STORED,
    MC_EXISTS,
    MC_NOT_FOUND,
    MC_DELETED,
    MC_TOUCHED,
    MC_OK,      /* flush_all, verbosity */
    MC_NUMBER,  /* incr/decr: number */
    MC_VERSION, /* text: the version */
    /* errors, both dialects: text holds the message (may be empty) */
    MC_ERROR,        /* unknown command */
    MC_CLIENT_ERROR, /* the request was malformed (the connection is still usable) */
    MC_SERVER_ERROR, /* the server failed (out of memory...); it may close */
} mc_reply_kind;

/* Bytes p[off .. off + len) of the input given to mc_parse_reply. */
typedef struct mc_slice {
    size_t off, len;
} mc_slice;

typedef struct mc_reply {
    mc_reply_kind kind;
    /* Which flags the reply carried, one bit per letter (see mc_reply_has).
     * Meta replies: every returned flag, known or not. VALUE: 'f' and 'k'
     * always, 'c' when the line had a CAS (gets). */
    uint64_t flags;
    mc_slice value;        /* VA, VALUE: the data (without its CRLF) */
    mc_slice key;          /* k (base64 text when b is there too), VALUE, ME */
    mc_slice opaque;       /* O */
    mc_slice text;         /* VERSION, ME, ERROR, CLIENT_ERROR, SERVER_ERROR */
    uint32_t client_flags; /* f, VALUE */
    uint64_t cas;          /* c, VALUE of gets */
    int64_t ttl;           /* t: seconds left, -1 when it never expires */
    uint64_t size;         /* s */
    uint64_t last_access;  /* l: seconds */
    bool hit;              /* h */
    uint64_t number;       /* MC_NUMBER */
} mc_reply;

/* Whether the reply carried flag c (a letter: 'f', 'W', 'X', 'Z', 'b'...). */
static inline bool mc_reply_has(const mc_reply *r, char c)
{
    if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')))
        return false;
    return r->flags >> (c - 'A') & 1;
}

/*
 * Parse one reply at the start of p[0..n): returns its length (> 0) and
 * fills *r, 0 when more bytes are needed, or -EPROTO / -EMSGSIZE (above).
 * A line (before its CRLF) may have MC_LINE_MAX bytes and must end in CRLF
 * with no other control byte in it; a data block must be followed by CRLF
 * exactly. max_value bounds a value's length (0: no bound but what a
 * ssize_t can return). On an error a NUL-terminated reason, quoting the
 * offending bytes (escaped), is written to why[0..why_size) when why is not
 * NULL. *r is written only on success.
 */
ssize_t mc_parse_reply(const char *p, size_t n, size_t max_value, mc_reply *r, char *why,
                       size_t why_size);

/* ------------------------------------------------------------ base64 keys */

/* Standard base64 with padding of in[0..n) into out (4 * ((n + 2) / 3)
 * bytes, no NUL); returns the length written. */
size_t mc_base64_encode(const void *in, size_t n, char *out);

/* Decode a base64 key (a k token of a reply with b) into out[0..cap):
 * returns the length, or -EINVAL when in is not padded standard base64 or
 * does not fit. */
ssize_t mc_base64_decode(const char *in, size_t n, void *out, size_t cap);

#pragma GCC visibility pop

#endif /* WEAVE_MEMCACHE_PROTO_H */
