/*
 * libFuzzer target for gRPC message framing (src/grpc/frame.c) and the
 * header codecs beside it. `make fuzz` runs it; its seeds and every crash
 * input are kept in fuzz/corpus/fuzz_grpc_frame/.
 *
 * Input: one control byte, then a stream of Length-Prefixed-Messages. Bits
 * 0-1 of the control byte pick the reader's max_len (16, 256, 4096, 65536),
 * bits 2-7 a split point (in 64ths of the stream).
 *
 * The stream is read by a whole-buffer reference parser and by the
 * incremental reader three ways: whole, in two pieces at the split point,
 * and byte by byte. All three must give the reference's messages (flag,
 * length, bytes) in order, then its ending: idle after the last message,
 * not idle inside one, or its error (-EPROTO for a bad flag, -EMSGSIZE for
 * a length over max_len), sticky. Each compressed message is gunzipped
 * with a 65536-byte limit (a result or -EMSGSIZE/-EBADMSG; a result
 * gzips and gunzips back to itself). The whole input also goes through
 * percent-decoding (encode of the decoded bytes decodes back to them),
 * base64 decoding (a value that decodes re-encodes and decodes the same)
 * and grpc-timeout parsing (a value that parses formats to a value that
 * parses to at least it). A violation aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/grpc_internal.h"
#include "fuzz_util.h"

typedef struct expect {
    size_t count;
    size_t starts[4096], lens[4096];
    bool flags[4096];
    int ending; /* 0 idle, 1 inside a message, or the error */
} expect;

static expect want;

static void reference(const uint8_t *p, size_t n, uint32_t max_len, expect *e)
{
    e->count = 0;
    e->ending = 0;
    size_t pos = 0;
    while (pos < n) {
        if (p[pos] > 1) {
            e->ending = -EPROTO;
            return;
        }
        if (n - pos < GRPC_PREFIX_LEN) {
            e->ending = 1;
            return;
        }
        uint32_t len = (uint32_t)p[pos + 1] << 24 | (uint32_t)p[pos + 2] << 16 |
                       (uint32_t)p[pos + 3] << 8 | p[pos + 4];
        if (len > max_len) {
            e->ending = -EMSGSIZE;
            return;
        }
        if (n - pos - GRPC_PREFIX_LEN < len) {
            e->ending = 1;
            return;
        }
        if (e->count == 4096) { /* longer streams: stop checking there */
            e->ending = 2;
            return;
        }
        e->starts[e->count] = pos + GRPC_PREFIX_LEN;
        e->lens[e->count] = len;
        e->flags[e->count] = p[pos] == 1;
        e->count++;
        pos += GRPC_PREFIX_LEN + len;
    }
}

/* Feed one piece; check each message against the reference. Returns the
 * last result (0 or an error). */
static int feed(grpc_reader *r, const uint8_t *stream, const uint8_t *p, size_t n, size_t *next)
{
    uint8_t *b = copy_exact(p, n);
    size_t off = 0;
    int rc;
    for (;;) {
        size_t used = 0;
        grpc_message m;
        rc = grpc_reader_feed(r, b + off, n - off, &used, &m);
        CHECK(used <= n - off);
        off += used;
        if (rc != 1)
            break;
        if (*next < want.count) {
            CHECK(m.len == want.lens[*next] && m.compressed == want.flags[*next]);
            CHECK(m.data != NULL);
            CHECK(m.len == 0 || memcmp(m.data, stream + want.starts[*next], m.len) == 0);
        }
        (*next)++;
    }
    if (rc == 0)
        CHECK(off == n);
    free(b);
    return rc;
}

static void check_reader(const uint8_t *p, size_t n, uint32_t max_len, size_t split, bool bytewise)
{
    grpc_reader r;
    grpc_reader_init(&r, max_len);
    size_t next = 0;
    int rc = 0;
    if (bytewise) {
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = feed(&r, p, p + i, 1, &next);
    } else {
        rc = feed(&r, p, p, split, &next);
        if (rc == 0)
            rc = feed(&r, p, p + split, n - split, &next);
    }
    if (want.ending == 2) { /* beyond what the reference keeps */
        grpc_reader_free(&r);
        return;
    }
    CHECK(next == want.count);
    if (want.ending < 0) {
        CHECK(rc == want.ending);
        size_t used;
        grpc_message m;
        CHECK(grpc_reader_feed(&r, (const uint8_t *)"\0\0\0\0\0", 5, &used, &m) == want.ending);
        CHECK(!grpc_reader_idle(&r));
    } else {
        CHECK(rc == 0);
        CHECK(grpc_reader_idle(&r) == (want.ending == 0));
    }
    grpc_reader_free(&r);
}

static void check_gzip(const uint8_t *p, size_t n)
{
    grpc_message m = {.data = p, .len = n, .compressed = true};
    grpc_payload pl;
    int rc = grpc_message_decode(&m, GRPC_ENCODING_GZIP, 65536, &pl);
    CHECK(rc == 0 || rc == -EMSGSIZE || rc == -EBADMSG);
    if (rc < 0)
        return;
    CHECK(pl.len <= 65536);
    uint8_t *z, *back;
    size_t zlen, blen;
    CHECK(grpc_gzip_compress(pl.data, pl.len, &z, &zlen) == 0);
    CHECK(grpc_gzip_decompress(z, zlen, pl.len, &back, &blen) == 0);
    CHECK(blen == pl.len && (blen == 0 || memcmp(back, pl.data, blen) == 0));
    free(z);
    free(back);
    grpc_payload_free(&pl);
}

static void check_headers(const uint8_t *p, size_t n)
{
    /* percent: decoded bytes encode to text that decodes to them again */
    uint8_t *dec = malloc(n ? n : 1);
    size_t dlen = grpc_percent_decode((const char *)p, n, dec);
    CHECK(dlen <= n);
    size_t elen = grpc_percent_encoded_len(dec, dlen);
    char *enc = malloc(elen ? elen : 1);
    CHECK(grpc_percent_encode(dec, dlen, enc) == elen);
    uint8_t *dec2 = malloc(elen ? elen : 1);
    CHECK(grpc_percent_decode(enc, elen, dec2) == dlen);
    CHECK(dlen == 0 || memcmp(dec, dec2, dlen) == 0);
    free(dec2);
    free(enc);
    free(dec);

    /* base64: what decodes re-encodes (unpadded) and decodes the same */
    uint8_t *b = malloc(grpc_base64_decoded_max(n));
    size_t blen;
    if (grpc_base64_decode((const char *)p, n, b, &blen) == 0) {
        CHECK(blen <= grpc_base64_decoded_max(n));
        char *t = malloc(grpc_base64_encoded_len(blen) + 1);
        size_t tlen = grpc_base64_encode(b, blen, t);
        CHECK(tlen == grpc_base64_encoded_len(blen) && tlen <= n);
        uint8_t *b2 = malloc(grpc_base64_decoded_max(tlen));
        size_t b2len;
        CHECK(grpc_base64_decode(t, tlen, b2, &b2len) == 0);
        CHECK(b2len == blen && (blen == 0 || memcmp(b, b2, blen) == 0));
        free(b2);
        free(t);
    }
    free(b);

    /* grpc-timeout */
    size_t tn = n < GRPC_TIMEOUT_MAX ? n : GRPC_TIMEOUT_MAX;
    char *t = copy_exact(p, tn);
    int64_t ns;
    if (grpc_timeout_parse(t, tn, &ns) == 0) {
        CHECK(ns >= 0);
        char out[GRPC_TIMEOUT_MAX];
        int len = grpc_timeout_format(ns, out);
        if (ns == 0) {
            CHECK(len == -ETIMEDOUT);
        } else {
            int64_t back;
            CHECK(len > 0 && grpc_timeout_parse(out, (size_t)len, &back) == 0 && back >= ns);
        }
    }
    free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const uint32_t limits[4] = {16, 256, 4096, 65536};
    uint32_t max_len = limits[data[0] & 3];
    const uint8_t *in = data + 1;
    size_t n = size - 1;
    size_t split = n * (data[0] >> 2) / 64;

    reference(in, n, max_len, &want);
    check_reader(in, n, max_len, n, false);
    check_reader(in, n, max_len, split, false);
    if (n <= 4096)
        check_reader(in, n, max_len, 0, true);
    for (size_t i = 0; i < want.count; i++)
        if (want.flags[i])
            check_gzip(in + want.starts[i], want.lens[i]);
    check_headers(in, n);
    return 0;
}
