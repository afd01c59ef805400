/*
 * src/grpc/frame.c: gRPC's Length-Prefixed-Message framing and per-message
 * compression. A stream's DATA frames carry messages as a 1-byte
 * compressed flag, a 4-byte big-endian length and the payload; a message
 * may span DATA frames and a frame may hold many messages, so the reader
 * is incremental and sans-I/O: bytes in, whole messages out.
 *
 * The reader keeps the prefix bytes it has (up to 5) and, for a message
 * that arrives in pieces, a buffer that grows with the bytes received
 * (doubling, capped at the declared length), never with the length the
 * peer claims: a prefix saying 4 MiB followed by silence costs nothing. A
 * message that lies whole inside one piece is returned in place.
 *
 * gzip uses zlib (windowBits 15 + 16: the gzip wrapper, RFC 1952). The
 * inflater writes into a buffer capped at max_len + 1 bytes, so the first
 * byte past the limit ends the work: a zip bomb costs max_len of memory
 * and time, not its expanded size.
 */
#include "grpc/grpc_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <zlib.h>

/* ------------------------------------------------------------ encodings */

int grpc_encoding_parse(const char *s, size_t n)
{
    if (n == 8 && strncasecmp(s, "identity", 8) == 0)
        return GRPC_ENCODING_IDENTITY;
    if (n == 4 && strncasecmp(s, "gzip", 4) == 0)
        return GRPC_ENCODING_GZIP;
    return -ENOTSUP;
}

const char *grpc_encoding_name(grpc_encoding enc)
{
    return enc == GRPC_ENCODING_GZIP ? "gzip" : "identity";
}

static bool space(char c)
{
    return c == ' ' || c == '\t';
}

bool grpc_accept_encoding_has(const char *s, size_t n, grpc_encoding enc)
{
    if (enc == GRPC_ENCODING_IDENTITY)
        return true;
    size_t i = 0;
    while (i < n) {
        size_t end = i;
        while (end < n && s[end] != ',')
            end++;
        size_t a = i, b = end;
        while (a < b && space(s[a]))
            a++;
        while (b > a && space(s[b - 1]))
            b--;
        if (grpc_encoding_parse(s + a, b - a) == (int)enc)
            return true;
        i = end + 1;
    }
    return false;
}

/* ------------------------------------------------------------ the reader */

void grpc_prefix_write(uint8_t out[GRPC_PREFIX_LEN], bool compressed, uint32_t len)
{
    out[0] = compressed ? 1 : 0;
    out[1] = (uint8_t)(len >> 24);
    out[2] = (uint8_t)(len >> 16);
    out[3] = (uint8_t)(len >> 8);
    out[4] = (uint8_t)len;
}

void grpc_reader_init(grpc_reader *r, uint32_t max_len)
{
    memset(r, 0, sizeof *r);
    r->max_len = max_len ? max_len : GRPC_DEFAULT_MAX_MESSAGE;
}

void grpc_reader_free(grpc_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->buf_n = r->buf_cap = 0;
}

bool grpc_reader_idle(const grpc_reader *r)
{
    return r->err == 0 && r->prefix_n == 0;
}

/* Make room for `more` bytes in the gathering buffer, growing it by at
 * least double (capped at the message's length) so a message in many small
 * pieces is copied O(len) times in all. */
static int reserve(grpc_reader *r, size_t more)
{
    size_t need = r->buf_n + more;
    if (need <= r->buf_cap)
        return 0;
    size_t cap = r->buf_cap ? r->buf_cap * 2 : 4096;
    if (cap < need)
        cap = need;
    if (cap > r->len)
        cap = r->len;
    uint8_t *b = realloc(r->buf, cap);
    if (!b)
        return -ENOMEM;
    r->buf = b;
    r->buf_cap = cap;
    return 0;
}

static int fail(grpc_reader *r, int err)
{
    r->err = err;
    return err;
}

int grpc_reader_feed(grpc_reader *r, const uint8_t *p, size_t n, size_t *used, grpc_message *msg)
{
    if (r->max_len == 0) /* a zeroed reader */
        r->max_len = GRPC_DEFAULT_MAX_MESSAGE;
    *used = 0;
    if (r->err)
        return r->err;
    size_t i = 0;
    while (r->prefix_n < GRPC_PREFIX_LEN) {
        if (i == n) {
            *used = n;
            return 0;
        }
        if (r->prefix_n == 0 && p[i] > 1)
            return fail(r, -EPROTO);
        r->prefix[r->prefix_n++] = p[i++];
        if (r->prefix_n == GRPC_PREFIX_LEN) {
            r->len = (uint32_t)r->prefix[1] << 24 | (uint32_t)r->prefix[2] << 16 |
                     (uint32_t)r->prefix[3] << 8 | r->prefix[4];
            if (r->len > r->max_len)
                return fail(r, -EMSGSIZE);
            r->buf_n = 0;
        }
    }

    size_t avail = n - i;
    if (r->buf_n == 0 && avail >= r->len) {
        /* the whole payload is here: no copy */
        msg->data = r->len ? p + i : (const uint8_t *)"";
        i += r->len;
    } else {
        size_t take = r->len - r->buf_n;
        if (take > avail)
            take = avail;
        if (take) {
            if (reserve(r, take) < 0)
                return fail(r, -ENOMEM);
            memcpy(r->buf + r->buf_n, p + i, take);
            r->buf_n += take;
            i += take;
        }
        if (r->buf_n < r->len) {
            *used = n;
            return 0;
        }
        msg->data = r->buf;
    }
    msg->len = r->len;
    msg->compressed = r->prefix[0] == 1;
    r->prefix_n = 0;
    r->buf_n = 0;
    *used = i;
    return 1;
}

/* ------------------------------------------------------------ gzip */

int grpc_gzip_compress(const uint8_t *in, size_t n, uint8_t **out, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    size_t cap = deflateBound(&z, (uLong)n);
    uint8_t *buf = malloc(cap ? cap : 1);
    if (!buf) {
        deflateEnd(&z);
        return -ENOMEM;
    }
    /* deflateBound covers the whole input in one call; feed it in pieces
     * that fit zlib's 32-bit counters anyway */
    size_t done_in = 0;
    int rc;
    z.next_out = buf;
    z.avail_out = (uInt)(cap > UINT32_MAX ? UINT32_MAX : cap);
    do {
        size_t chunk = n - done_in > (1u << 30) ? (1u << 30) : n - done_in;
        z.next_in = (Bytef *)(uintptr_t)(in + done_in);
        z.avail_in = (uInt)chunk;
        done_in += chunk;
        rc = deflate(&z, done_in == n ? Z_FINISH : Z_NO_FLUSH);
    } while (rc == Z_OK || (rc == Z_BUF_ERROR && done_in < n));
    size_t len = (size_t)(z.next_out - buf);
    deflateEnd(&z);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -ENOMEM;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

int grpc_gzip_decompress(const uint8_t *in, size_t n, size_t max_len, uint8_t **out,
                         size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (n > UINT32_MAX)
        return -EMSGSIZE; /* more than any message's prefix can declare */
    if (inflateInit2(&z, 15 + 16) != Z_OK)
        return -ENOMEM;
    size_t limit = max_len < SIZE_MAX - 1 ? max_len + 1 : SIZE_MAX;
    size_t cap = n * 4 < 1024 ? 1024 : n * 4;
    if (cap > limit)
        cap = limit;
    uint8_t *buf = malloc(cap);
    int err = 0;
    if (!buf) {
        inflateEnd(&z);
        return -ENOMEM;
    }
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)n;
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            if (cap == limit) {
                err = -EMSGSIZE;
                break;
            }
            size_t bigger = cap * 2 < limit ? cap * 2 : limit;
            uint8_t *b = realloc(buf, bigger);
            if (!b) {
                err = -ENOMEM;
                break;
            }
            buf = b;
            cap = bigger;
        }
        size_t room = cap - len > UINT32_MAX ? UINT32_MAX : cap - len;
        z.next_out = buf + len;
        z.avail_out = (uInt)room;
        int rc = inflate(&z, Z_NO_FLUSH);
        len += room - z.avail_out;
        if (rc == Z_STREAM_END) {
            if (len > max_len)
                err = -EMSGSIZE;
            else if (z.avail_in != 0)
                err = -EBADMSG; /* bytes after the gzip member */
            break;
        }
        if (rc == Z_MEM_ERROR) {
            err = -ENOMEM;
            break;
        }
        if (rc != Z_OK && !(rc == Z_BUF_ERROR && z.avail_out == 0)) {
            err = -EBADMSG; /* corrupt, or the input ended inside the stream */
            break;
        }
        if (len > max_len) {
            err = -EMSGSIZE;
            break;
        }
    }
    inflateEnd(&z);
    if (err) {
        free(buf);
        return err;
    }
    *out = buf;
    *out_len = len;
    return 0;
}

/* ------------------------------------------------------------ messages */

int grpc_message_encode(const uint8_t *msg, size_t n, grpc_encoding enc, uint8_t **out,
                        size_t *out_len)
{
    if (n > UINT32_MAX)
        return -EMSGSIZE;
    uint8_t *z = NULL;
    size_t zlen = 0;
    if (enc == GRPC_ENCODING_GZIP) {
        int rc = grpc_gzip_compress(msg, n, &z, &zlen);
        if (rc < 0)
            return rc;
        if (zlen >= n) { /* not worth it: this message goes plain */
            free(z);
            z = NULL;
        }
    }
    const uint8_t *payload = z ? z : msg;
    size_t len = z ? zlen : n;
    uint8_t *b = malloc(GRPC_PREFIX_LEN + len);
    if (!b) {
        free(z);
        return -ENOMEM;
    }
    grpc_prefix_write(b, z != NULL, (uint32_t)len);
    if (len)
        memcpy(b + GRPC_PREFIX_LEN, payload, len);
    free(z);
    *out = b;
    *out_len = GRPC_PREFIX_LEN + len;
    return 0;
}

int grpc_message_decode(const grpc_message *m, grpc_encoding enc, size_t max_len, grpc_payload *out)
{
    if (max_len == 0)
        max_len = GRPC_DEFAULT_MAX_MESSAGE;
    if (!m->compressed) {
        if (m->len > max_len)
            return -EMSGSIZE;
        *out = (grpc_payload){.data = m->data, .len = m->len, .owned = NULL};
        return 0;
    }
    if (enc != GRPC_ENCODING_GZIP)
        return -EPROTO;
    uint8_t *b;
    size_t len;
    int rc = grpc_gzip_decompress(m->data, m->len, max_len, &b, &len);
    if (rc < 0)
        return rc;
    *out = (grpc_payload){.data = b, .len = len, .owned = b};
    return 0;
}

void grpc_payload_free(grpc_payload *p)
{
    free(p->owned);
    p->owned = NULL;
}
