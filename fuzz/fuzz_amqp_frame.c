/*
 * libFuzzer target for the AMQP frame reader and table scanner
 * (src/amqp/frame.c) and what the reader hands them to: librabbitmq's
 * method and property decoders. `make fuzz` runs it; its seeds are in
 * fuzz/corpus/fuzz_amqp_frame/.
 *
 * Input: one control byte, then a byte stream as a broker could send it.
 * Bits 0-1 of the control byte pick frame_max (4096, 131072, 8, none),
 * bits 2-7 seed the sizes of the reads in the split pass.
 *
 * The stream is read frame by frame three ways that must agree on every
 * result (length, type, channel, size, errno): whole; in pieces of
 * pseudo-random sizes, as a connection reads it; and, for short inputs,
 * one byte at a time. Every frame read must lie inside the input, and end
 * with 0xCE. Each method frame the client would accept is then decoded as
 * the connection does it (connection.start's table checked first), each
 * content header's headers table is scanned and walked field by field,
 * and the input itself is walked as a table; none may crash, read out of
 * bounds or recurse past the nesting limit. A violation aborts.
 */
#include <errno.h>
#include <stdio.h>

#include "amqp/amqp_internal.h"
#include "fuzz_util.h"

enum { MAX_FRAMES = 128, BYTEWISE_MAX = 600 };

typedef struct result {
    ssize_t len;
    uint8_t type;
    uint16_t channel;
    uint32_t size;
} result;

static bool same(const result *a, const result *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (a[i].len != b[i].len || a[i].type != b[i].type || a[i].channel != b[i].channel ||
            a[i].size != b[i].size)
            return false;
    return true;
}

static size_t read_all(const uint8_t *p, size_t n, uint32_t frame_max, result *out)
{
    size_t count = 0, at = 0;
    while (count < MAX_FRAMES) {
        amqp_frame f;
        char why[AMQP_WHY];
        ssize_t len = amqp_frame_read(p + at, n - at, frame_max, &f, why);
        result r = {.len = len};
        if (len > 0) {
            CHECK(f.payload == p + at + 7 && (size_t)len == f.size + 8u);
            CHECK((size_t)len <= n - at && p[at + (size_t)len - 1] == 0xCE);
            r.type = f.type;
            r.channel = f.channel;
            r.size = f.size;
        } else if (len < 0) {
            CHECK(len == -EPROTO || len == -EMSGSIZE);
            CHECK(why[0]);
        }
        out[count++] = r;
        if (len <= 0)
            break;
        at += (size_t)len;
    }
    return count;
}

/* As a connection reads: pieces of pseudo-random sizes appended to a
 * buffer, frames taken from its front. */
static size_t read_split(const uint8_t *p, size_t n, uint32_t frame_max, unsigned seed, result *out)
{
    uint8_t *buf = malloc(n ? n : 1);
    CHECK(buf);
    size_t have = 0, fed = 0, count = 0;
    unsigned x = seed * 2654435761u + 1;
    for (;;) {
        bool stop = false;
        while (count < MAX_FRAMES) {
            amqp_frame f;
            char why[AMQP_WHY];
            ssize_t len = amqp_frame_read(buf, have, frame_max, &f, why);
            if (len == 0 && fed < n)
                break;
            result r = {.len = len};
            if (len > 0) {
                r.type = f.type;
                r.channel = f.channel;
                r.size = f.size;
            }
            out[count++] = r;
            if (len <= 0) {
                stop = true;
                break;
            }
            memmove(buf, buf + len, have - (size_t)len);
            have -= (size_t)len;
        }
        if (stop || count == MAX_FRAMES)
            break;
        x = x * 1103515245u + 12345u;
        size_t step = 1 + (x >> 16) % 97;
        if (step > n - fed)
            step = n - fed;
        memcpy(buf + have, p + fed, step);
        have += step;
        fed += step;
    }
    free(buf);
    return count;
}

/* One byte at a time into a growing buffer: every prefix of a frame says
 * "need more", then the whole frame comes out. */
static size_t read_bytewise(const uint8_t *p, size_t n, uint32_t frame_max, result *out)
{
    size_t count = 0, start = 0;
    for (size_t end = 0; end <= n && count < MAX_FRAMES; end++) {
        amqp_frame f;
        char why[AMQP_WHY];
        uint8_t *piece = copy_exact(p + start, end - start);
        ssize_t len = amqp_frame_read(piece, end - start, frame_max, &f, why);
        free(piece);
        if (len == 0 && end < n)
            continue;
        result r = {.len = len};
        if (len > 0) {
            CHECK((size_t)len == end - start);
            r.type = f.type;
            r.channel = f.channel;
            r.size = f.size;
        }
        out[count++] = r;
        if (len <= 0)
            break;
        start = end--; /* read the empty rest at this same end next */
    }
    return count;
}

static void walk_table(wv_str t)
{
    size_t pos = 0;
    wv_amqp_field f;
    int rc;
    while ((rc = wv_amqp_table_next(t, &pos, &f)) == 1) {
        CHECK(pos <= t.n);
        if (f.type == WV_AMQP_FIELD_TABLE)
            walk_table(f.s);
        CHECK(!f.s.n || (f.s.p >= t.p && f.s.p + f.s.n <= t.p + t.n));
    }
    CHECK(rc == 0 || rc == -EPROTO);
}

static void decode_frames(const uint8_t *p, size_t n, uint32_t frame_max)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    size_t at = 0;
    for (int i = 0; i < MAX_FRAMES; i++) {
        amqp_frame f;
        char why[AMQP_WHY];
        ssize_t len = amqp_frame_read(p + at, n - at, frame_max, &f, why);
        if (len <= 0)
            break;
        at += (size_t)len;
        if (f.type == AMQP_FRAME_METHOD_TYPE) {
            uint32_t id = amqp_frame_method_id(&f);
            if (!amqp_server_method(id))
                continue;
            if (id == AMQP_CONNECTION_START_METHOD &&
                (f.size <= 6 || amqp_table_check(f.payload + 6, f.size - 6, why) < 0))
                continue;
            void *m;
            amqp_decode_method(id, &pool, (amqp_bytes_t){f.size - 4, (void *)(f.payload + 4)}, &m);
        } else if (f.type == AMQP_FRAME_HEADER_TYPE) {
            wv_str headers;
            if (amqp_props_headers(f.payload + 12, f.size - 12, &headers, why) < 0)
                continue;
            CHECK(!headers.n || ((const uint8_t *)headers.p >= f.payload &&
                                 (const uint8_t *)headers.p + headers.n <= f.payload + f.size));
            walk_table(headers);
            void *props;
            amqp_decode_properties(AMQP_BASIC_CLASS, &pool,
                                   (amqp_bytes_t){f.size - 12, (void *)(f.payload + 12)}, &props);
        }
        recycle_amqp_pool(&pool);
    }
    empty_amqp_pool(&pool);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const uint32_t maxes[4] = {4096, 131072, 8, 0};
    uint32_t frame_max = maxes[data[0] & 3];
    unsigned seed = data[0] >> 2;
    const uint8_t *p = copy_exact(data + 1, size - 1);
    size_t n = size - 1;

    static result whole[MAX_FRAMES], split[MAX_FRAMES], bytewise[MAX_FRAMES];
    size_t nw = read_all(p, n, frame_max, whole);
    size_t ns = read_split(p, n, frame_max, seed, split);
    CHECK(nw == ns && same(whole, split, nw));
    if (n <= BYTEWISE_MAX) {
        size_t nb = read_bytewise(p, n, frame_max, bytewise);
        CHECK(nw == nb && same(whole, bytewise, nw));
    }
    decode_frames(p, n, frame_max);

    char why[AMQP_WHY];
    ssize_t len = amqp_table_check(p, n, why);
    CHECK(len == -EPROTO || (len >= 4 && (size_t)len <= n));
    walk_table((wv_str){(const char *)p, n});
    free((void *)p);
    return 0;
}
