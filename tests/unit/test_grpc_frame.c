/*
 * gRPC message framing (src/grpc/frame.c) as a specification: the
 * Length-Prefixed-Message prefix, the incremental reader fed whole, split at
 * every byte, at every pair of points and byte by byte, several messages in
 * one buffer, the size limit and the flag rule, and per-message gzip: round
 * trips, the choice to send a message plain, corrupt input, the limit after
 * decompression, and a 1 GiB zip bomb refused at the limit.
 *
 * Streams are fed from exactly sized heap copies, so under ASan a read one
 * byte past the end is caught.
 */
#include "harness.h"

#include <errno.h>
#include <sys/resource.h>
#include <zlib.h>

#include "grpc/grpc_internal.h"

/* ------------------------------------------------------------ helpers */

static uint8_t *copy_exact(const uint8_t *p, size_t n)
{
    uint8_t *b = malloc(n ? n : 1);
    assert_non_null(b);
    if (n)
        memcpy(b, p, n);
    return b;
}

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint8_t rng_byte(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint8_t)rng_state;
}

/* A stream under construction and the messages it holds. */
typedef struct stream {
    uint8_t *bytes;
    size_t n;
    size_t count;
    size_t starts[16], lens[16];
    bool flags[16];
} stream;

static void stream_add(stream *s, bool compressed, const uint8_t *payload, size_t len)
{
    assert_true(s->count < 16);
    s->bytes = realloc(s->bytes, s->n + GRPC_PREFIX_LEN + len);
    assert_non_null(s->bytes);
    grpc_prefix_write(s->bytes + s->n, compressed, (uint32_t)len);
    if (len)
        memcpy(s->bytes + s->n + GRPC_PREFIX_LEN, payload, len);
    s->starts[s->count] = s->n + GRPC_PREFIX_LEN;
    s->lens[s->count] = len;
    s->flags[s->count] = compressed;
    s->count++;
    s->n += GRPC_PREFIX_LEN + len;
}

static void stream_add_random(stream *s, bool compressed, size_t len)
{
    uint8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = rng_byte();
    stream_add(s, compressed, p, len);
    free(p);
}

/* Feed one piece (an exact copy) and check every message it completes
 * against the stream's next expected one. */
static void feed_piece(grpc_reader *r, const stream *s, const uint8_t *p, size_t n, size_t *next)
{
    uint8_t *b = copy_exact(p, n);
    size_t off = 0;
    for (;;) {
        size_t used = 0;
        grpc_message m;
        int rc = grpc_reader_feed(r, b + off, n - off, &used, &m);
        assert_true(rc == 0 || rc == 1);
        assert_true(used <= n - off);
        off += used;
        if (rc == 0) {
            assert_int_equal(off, n);
            break;
        }
        assert_true(*next < s->count);
        assert_int_equal(m.len, s->lens[*next]);
        assert_int_equal(m.compressed, s->flags[*next]);
        assert_non_null(m.data);
        if (m.len)
            assert_memory_equal(m.data, s->bytes + s->starts[*next], m.len);
        (*next)++;
    }
    free(b);
}

/* Feed the stream cut at the given points (ascending) and check that
 * exactly its messages come out, in order, and the reader ends idle. */
static void feed_cut(const stream *s, const size_t *cuts, size_t ncuts)
{
    grpc_reader r;
    grpc_reader_init(&r, 0);
    size_t next = 0, from = 0;
    for (size_t c = 0; c <= ncuts; c++) {
        size_t to = c < ncuts ? cuts[c] : s->n;
        feed_piece(&r, s, s->bytes + from, to - from, &next);
        from = to;
    }
    assert_int_equal(next, s->count);
    assert_true(grpc_reader_idle(&r));
    grpc_reader_free(&r);
}

static void small_stream(stream *s)
{
    memset(s, 0, sizeof *s);
    stream_add(s, false, (const uint8_t *)"", 0);
    stream_add(s, false, (const uint8_t *)"\x0a\x05world", 7);
    stream_add_random(s, true, 40);
    stream_add(s, false, (const uint8_t *)"", 0);
    stream_add_random(s, false, 300);
    stream_add_random(s, false, 1);
}

/* ------------------------------------------------------------ prefix */

static void test_prefix_is_the_flag_then_the_length_big_endian(void **state)
{
    uint8_t p[GRPC_PREFIX_LEN];
    grpc_prefix_write(p, false, 0x01020304);
    assert_memory_equal(p, "\x00\x01\x02\x03\x04", 5);
    grpc_prefix_write(p, true, 7);
    assert_memory_equal(p, "\x01\x00\x00\x00\x07", 5);
    grpc_prefix_write(p, false, UINT32_MAX);
    assert_memory_equal(p, "\x00\xff\xff\xff\xff", 5);
}

/* ------------------------------------------------------------ the reader */

static void test_reader_returns_a_whole_message_in_place(void **state)
{
    uint8_t *b = copy_exact((const uint8_t *)"\x00\x00\x00\x00\x03"
                                             "abc",
                            8);
    grpc_reader r;
    grpc_reader_init(&r, 0);
    size_t used;
    grpc_message m;
    assert_int_equal(grpc_reader_feed(&r, b, 8, &used, &m), 1);
    assert_int_equal(used, 8);
    assert_ptr_equal(m.data, b + 5);
    assert_int_equal(m.len, 3);
    assert_false(m.compressed);
    assert_null(r.buf); /* nothing was copied */
    assert_int_equal(grpc_reader_feed(&r, b + used, 0, &used, &m), 0);
    assert_int_equal(used, 0);
    assert_true(grpc_reader_idle(&r));
    grpc_reader_free(&r);
    free(b);
}

static void test_reader_yields_several_messages_from_one_buffer(void **state)
{
    stream s;
    small_stream(&s);
    feed_cut(&s, NULL, 0);
    free(s.bytes);
}

static void test_reader_split_at_every_byte_gives_the_same_messages(void **state)
{
    stream s;
    small_stream(&s);
    for (size_t k = 0; k <= s.n; k++)
        feed_cut(&s, &k, 1);
    free(s.bytes);
}

static void test_reader_split_at_every_pair_of_points_gives_the_same_messages(void **state)
{
    stream s;
    memset(&s, 0, sizeof s);
    stream_add(&s, false, (const uint8_t *)"", 0);
    stream_add_random(&s, true, 9);
    stream_add_random(&s, false, 13);
    stream_add(&s, false, (const uint8_t *)"", 0);
    stream_add_random(&s, false, 2);
    for (size_t i = 0; i <= s.n; i++)
        for (size_t j = i; j <= s.n; j++) {
            size_t cuts[2] = {i, j};
            feed_cut(&s, cuts, 2);
        }
    free(s.bytes);
}

static void test_reader_fed_byte_by_byte_gives_the_same_messages(void **state)
{
    stream s;
    memset(&s, 0, sizeof s);
    stream_add_random(&s, false, 70000); /* larger than the first buffer */
    stream_add_random(&s, true, 5000);
    stream_add(&s, false, (const uint8_t *)"", 0);
    size_t *cuts = malloc(s.n * sizeof *cuts);
    assert_non_null(cuts);
    for (size_t i = 0; i < s.n; i++)
        cuts[i] = i + 1;
    feed_cut(&s, cuts, s.n - 1);
    free(cuts);
    free(s.bytes);
}

static void test_reader_returns_an_empty_message(void **state)
{
    grpc_reader r;
    grpc_reader_init(&r, 0);
    size_t used;
    grpc_message m;
    uint8_t *b = copy_exact((const uint8_t *)"\x01\x00\x00\x00\x00", 5);
    assert_int_equal(grpc_reader_feed(&r, b, 5, &used, &m), 1);
    assert_int_equal(used, 5);
    assert_non_null(m.data);
    assert_int_equal(m.len, 0);
    assert_true(m.compressed);
    free(b);
    grpc_reader_free(&r);
}

static void test_reader_accepts_a_message_of_exactly_max_len(void **state)
{
    stream s;
    memset(&s, 0, sizeof s);
    stream_add_random(&s, false, 100);
    grpc_reader r;
    grpc_reader_init(&r, 100);
    size_t used;
    grpc_message m;
    assert_int_equal(grpc_reader_feed(&r, s.bytes, s.n, &used, &m), 1);
    assert_int_equal(m.len, 100);
    grpc_reader_free(&r);
    free(s.bytes);
}

static void test_reader_refuses_a_message_over_max_len_once_the_prefix_is_complete(void **state)
{
    stream s;
    memset(&s, 0, sizeof s);
    stream_add_random(&s, false, 101);
    for (size_t cut = 1; cut <= s.n; cut++) {
        grpc_reader r;
        grpc_reader_init(&r, 100);
        size_t used;
        grpc_message m;
        int rc = grpc_reader_feed(&r, s.bytes, cut, &used, &m);
        /* the 5th byte decides, before any of the payload */
        assert_int_equal(rc, cut < GRPC_PREFIX_LEN ? 0 : -EMSGSIZE);
        if (rc == 0) {
            rc = grpc_reader_feed(&r, s.bytes + cut, s.n - cut, &used, &m);
            assert_int_equal(rc, -EMSGSIZE);
        }
        assert_null(r.buf); /* nothing of the payload was buffered */
        /* the error is sticky */
        assert_int_equal(grpc_reader_feed(&r, s.bytes, 5, &used, &m), -EMSGSIZE);
        assert_false(grpc_reader_idle(&r));
        grpc_reader_free(&r);
    }
    free(s.bytes);
}

static void test_reader_default_limit_is_4_mib(void **state)
{
    grpc_reader r;
    memset(&r, 0, sizeof r); /* a zeroed reader works too */
    size_t used;
    grpc_message m;
    uint8_t ok[5], over[5];
    grpc_prefix_write(ok, false, 4u << 20);
    grpc_prefix_write(over, false, (4u << 20) + 1);
    assert_int_equal(grpc_reader_feed(&r, ok, 5, &used, &m), 0);
    grpc_reader_free(&r);
    grpc_reader_init(&r, 0);
    assert_int_equal(grpc_reader_feed(&r, over, 5, &used, &m), -EMSGSIZE);
    grpc_reader_free(&r);
}

static void test_reader_refuses_a_flag_other_than_0_or_1_at_its_first_byte(void **state)
{
    static const uint8_t flags[] = {2, 3, 0x80, 0xff};
    for (size_t i = 0; i < ARRAY_LEN(flags); i++) {
        grpc_reader r;
        grpc_reader_init(&r, 0);
        size_t used;
        grpc_message m;
        uint8_t *b = copy_exact(&flags[i], 1);
        assert_int_equal(grpc_reader_feed(&r, b, 1, &used, &m), -EPROTO);
        assert_int_equal(grpc_reader_feed(&r, (const uint8_t *)"\0\0\0\0\0", 5, &used, &m),
                         -EPROTO);
        free(b);
        grpc_reader_free(&r);
    }
}

static void test_reader_is_idle_only_between_messages(void **state)
{
    stream s;
    memset(&s, 0, sizeof s);
    stream_add_random(&s, false, 10);
    grpc_reader r;
    grpc_reader_init(&r, 0);
    assert_true(grpc_reader_idle(&r));
    size_t used;
    grpc_message m;
    for (size_t k = 1; k < s.n; k++) {
        grpc_reader_init(&r, 0);
        assert_int_equal(grpc_reader_feed(&r, s.bytes, k, &used, &m), 0);
        assert_false(grpc_reader_idle(&r)); /* END_STREAM here cuts a message short */
        grpc_reader_free(&r);
    }
    grpc_reader_init(&r, 0);
    assert_int_equal(grpc_reader_feed(&r, s.bytes, s.n, &used, &m), 1);
    assert_true(grpc_reader_idle(&r));
    grpc_reader_free(&r);
    free(s.bytes);
}

static void test_reader_buffers_what_arrived_not_the_length_claimed(void **state)
{
    grpc_reader r;
    grpc_reader_init(&r, 0);
    uint8_t b[5 + 10] = {0};
    grpc_prefix_write(b, false, 4u << 20);
    size_t used;
    grpc_message m;
    assert_int_equal(grpc_reader_feed(&r, b, sizeof b, &used, &m), 0);
    assert_int_equal(r.buf_n, 10);
    assert_true(r.buf_cap <= 4096);
    grpc_reader_free(&r);
}

/* ------------------------------------------------------------ encodings */

static void test_encoding_names_parse_ignoring_case(void **state)
{
    assert_int_equal(grpc_encoding_parse("gzip", 4), GRPC_ENCODING_GZIP);
    assert_int_equal(grpc_encoding_parse("GZip", 4), GRPC_ENCODING_GZIP);
    assert_int_equal(grpc_encoding_parse("identity", 8), GRPC_ENCODING_IDENTITY);
    assert_int_equal(grpc_encoding_parse("deflate", 7), -ENOTSUP);
    assert_int_equal(grpc_encoding_parse("snappy", 6), -ENOTSUP);
    assert_int_equal(grpc_encoding_parse("gzip ", 5), -ENOTSUP);
    assert_int_equal(grpc_encoding_parse("", 0), -ENOTSUP);
    assert_string_equal(grpc_encoding_name(GRPC_ENCODING_GZIP), "gzip");
    assert_string_equal(grpc_encoding_name(GRPC_ENCODING_IDENTITY), "identity");
}

static void test_accept_encoding_lists_are_searched_item_by_item(void **state)
{
#define HAS(s) grpc_accept_encoding_has(s, strlen(s), GRPC_ENCODING_GZIP)
    assert_true(HAS("gzip"));
    assert_true(HAS("identity,deflate,gzip"));
    assert_true(HAS("identity, deflate,\tgzip "));
    assert_true(HAS(GRPC_ACCEPT_ENCODING));
    assert_false(HAS("identity,deflate"));
    assert_false(HAS("gzipx,xgzip"));
    assert_false(HAS(""));
#undef HAS
    assert_true(grpc_accept_encoding_has("", 0, GRPC_ENCODING_IDENTITY));
}

/* ------------------------------------------------------------ gzip */

static void gzip_round_trip(const uint8_t *p, size_t n)
{
    uint8_t *z, *back;
    size_t zlen, blen;
    assert_int_equal(grpc_gzip_compress(p, n, &z, &zlen), 0);
    assert_true(zlen >= 18); /* 10-byte header, 8-byte trailer */
    assert_memory_equal(z, "\x1f\x8b\x08", 3);
    /* zlib's own one-shot inflate agrees, through its gzip wrapper */
    uint8_t *ref = malloc(n ? n : 1);
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = z;
    zs.avail_in = (uInt)zlen;
    zs.next_out = ref;
    zs.avail_out = (uInt)n;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.total_out, n);
    inflateEnd(&zs);
    uint8_t *zc = copy_exact(z, zlen);
    assert_int_equal(grpc_gzip_decompress(zc, zlen, n, &back, &blen), 0);
    assert_int_equal(blen, n);
    if (n) {
        assert_memory_equal(back, p, n);
        assert_memory_equal(ref, p, n);
    }
    free(zc);
    free(ref);
    free(z);
    free(back);
}

static void test_gzip_round_trips_every_kind_of_input(void **state)
{
    gzip_round_trip((const uint8_t *)"", 0);
    gzip_round_trip((const uint8_t *)"x", 1);
    size_t n = 1 << 20;
    uint8_t *p = malloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = rng_byte();
    gzip_round_trip(p, n); /* incompressible */
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t) "hello grpc "[i % 11];
    gzip_round_trip(p, n); /* very compressible: the output buffer grows */
    for (size_t len = 2; len < 300; len += 37)
        gzip_round_trip(p + 5, len);
    free(p);
}

static void test_gzip_output_of_exactly_max_len_is_accepted_and_one_more_refused(void **state)
{
    uint8_t p[5000];
    memset(p, 'a', sizeof p);
    uint8_t *z, *out;
    size_t zlen, olen;
    assert_int_equal(grpc_gzip_compress(p, sizeof p, &z, &zlen), 0);
    assert_int_equal(grpc_gzip_decompress(z, zlen, 5000, &out, &olen), 0);
    assert_int_equal(olen, 5000);
    free(out);
    out = NULL;
    assert_int_equal(grpc_gzip_decompress(z, zlen, 4999, &out, &olen), -EMSGSIZE);
    assert_null(out);
    free(z);
}

static void test_gzip_refuses_corrupt_truncated_and_trailing_input(void **state)
{
    const uint8_t text[] = "a message that compresses, a message that compresses";
    uint8_t *z, *out = NULL;
    size_t zlen, olen;
    assert_int_equal(grpc_gzip_compress(text, sizeof text, &z, &zlen), 0);
    /* every truncation */
    for (size_t k = 0; k < zlen; k++) {
        uint8_t *c = copy_exact(z, k);
        assert_int_equal(grpc_gzip_decompress(c, k, 1000, &out, &olen), -EBADMSG);
        free(c);
    }
    /* a flipped byte in the body or the CRC */
    for (size_t k = 10; k < zlen; k++) {
        uint8_t *c = copy_exact(z, zlen);
        c[k] ^= 0x55;
        int rc = grpc_gzip_decompress(c, zlen, 1000, &out, &olen);
        if (rc == 0) /* a change that still inflates must not go unnoticed */
            fail_msg("byte %zu flipped was accepted", k);
        assert_true(rc == -EBADMSG || rc == -EMSGSIZE);
        free(c);
    }
    /* bytes after the member */
    uint8_t *c = malloc(zlen + 1);
    memcpy(c, z, zlen);
    c[zlen] = 0;
    assert_int_equal(grpc_gzip_decompress(c, zlen + 1, 1000, &out, &olen), -EBADMSG);
    /* not gzip at all (a zlib stream) */
    assert_int_equal(grpc_gzip_decompress((const uint8_t *)"\x78\x9c\x03\x00\x00\x00\x00\x01", 8,
                                          1000, &out, &olen),
                     -EBADMSG);
    assert_null(out);
    free(c);
    free(z);
}

/* A genuine gzip member that inflates to `chunks` MiB of zeros, built
 * without compressing that much: after a full flush, deflate emits the same
 * bytes for each identical chunk, so one chunk's output is repeated, and
 * the trailer's CRC-32 is combined arithmetically. */
static uint8_t *zip_bomb(size_t chunks, size_t *len)
{
    const size_t chunk = 1 << 20;
    uint8_t *zeros = calloc(1, chunk);
    size_t cap = 1 << 16;
    uint8_t *outs[3];
    size_t lens[3];
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY), Z_OK);
    for (int i = 0; i < 3; i++) {
        outs[i] = malloc(cap);
        z.next_in = zeros;
        z.avail_in = (uInt)chunk;
        z.next_out = outs[i];
        z.avail_out = (uInt)cap;
        assert_int_equal(deflate(&z, i < 2 ? Z_FULL_FLUSH : Z_FINISH), i < 2 ? Z_OK : Z_STREAM_END);
        assert_int_equal(z.avail_in, 0);
        lens[i] = cap - z.avail_out;
    }
    deflateEnd(&z);
    /* outs[0]: header + chunk, outs[1]: chunk (repeatable), outs[2]: last
     * chunk + final block + trailer */
    size_t n = lens[0] + (chunks - 2) * lens[1] + lens[2];
    uint8_t *b = malloc(n);
    size_t o = 0;
    memcpy(b, outs[0], lens[0]);
    o += lens[0];
    for (size_t i = 0; i < chunks - 2; i++, o += lens[1])
        memcpy(b + o, outs[1], lens[1]);
    memcpy(b + o, outs[2], lens[2]);
    o += lens[2];
    uLong crc1 = crc32(0, zeros, (uInt)chunk), crc = crc1;
    for (size_t i = 1; i < chunks; i++)
        crc = crc32_combine(crc, crc1, (z_off_t)chunk);
    uint32_t isize = (uint32_t)(chunks * chunk);
    for (int i = 0; i < 4; i++) {
        b[o - 8 + i] = (uint8_t)(crc >> (8 * i));
        b[o - 4 + i] = (uint8_t)(isize >> (8 * i));
    }
    for (int i = 0; i < 3; i++)
        free(outs[i]);
    free(zeros);
    *len = n;
    return b;
}

/* Stream-inflate without keeping the output: the total and whether it ends. */
static size_t inflated_size(const uint8_t *p, size_t n)
{
    static uint8_t sink[1 << 16];
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(inflateInit2(&z, 15 + 16), Z_OK);
    z.next_in = (Bytef *)(uintptr_t)p;
    z.avail_in = (uInt)n;
    int rc;
    size_t total = 0;
    do {
        z.next_out = sink;
        z.avail_out = sizeof sink;
        rc = inflate(&z, Z_NO_FLUSH);
        total += sizeof sink - z.avail_out;
    } while (rc == Z_OK);
    assert_int_equal(rc, Z_STREAM_END);
    inflateEnd(&z);
    return total;
}

static long max_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void test_zip_bomb_is_refused_without_allocating_its_size(void **state)
{
    size_t n;
    uint8_t *bomb = zip_bomb(1024, &n); /* 1 GiB of zeros in about 1 MiB */
    assert_true(n < (2u << 20));
    assert_int_equal(inflated_size(bomb, n), (size_t)1 << 30); /* it is genuine */

    /* The process's peak RSS (a high-water mark, a few MiB from the tests so
     * far) would climb by a GiB if the output were allocated and written. */
    long before = max_rss_kib();
    uint8_t *out = NULL;
    size_t olen;
    assert_int_equal(grpc_gzip_decompress(bomb, n, GRPC_DEFAULT_MAX_MESSAGE, &out, &olen),
                     -EMSGSIZE);
    assert_null(out);
    long grew = max_rss_kib() - before;
    assert_true(grew < 64 * 1024);

    /* and through a message on a gzip stream */
    grpc_message m = {.data = bomb, .len = n, .compressed = true};
    grpc_payload pl;
    assert_int_equal(grpc_message_decode(&m, GRPC_ENCODING_GZIP, 0, &pl), -EMSGSIZE);
    free(bomb);
}

/* ------------------------------------------------------------ messages */

static void test_message_encode_gzip_round_trips_through_the_reader(void **state)
{
    size_t n = 20000;
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t) "abcabcabd"[i % 9];
    uint8_t *wire;
    size_t wlen;
    assert_int_equal(grpc_message_encode(p, n, GRPC_ENCODING_GZIP, &wire, &wlen), 0);
    assert_int_equal(wire[0], 1);
    assert_true(wlen < n / 4);
    grpc_reader r;
    grpc_reader_init(&r, 0);
    size_t used;
    grpc_message m;
    assert_int_equal(grpc_reader_feed(&r, wire, wlen, &used, &m), 1);
    assert_int_equal(used, wlen);
    assert_true(m.compressed);
    grpc_payload pl;
    assert_int_equal(grpc_message_decode(&m, GRPC_ENCODING_GZIP, 0, &pl), 0);
    assert_non_null(pl.owned);
    assert_int_equal(pl.len, n);
    assert_memory_equal(pl.data, p, n);
    grpc_payload_free(&pl);
    grpc_reader_free(&r);
    free(wire);
    free(p);
}

static void test_message_encode_sends_plain_what_gzip_does_not_shrink(void **state)
{
    uint8_t p[64];
    for (size_t i = 0; i < sizeof p; i++)
        p[i] = rng_byte();
    uint8_t *wire;
    size_t wlen;
    assert_int_equal(grpc_message_encode(p, sizeof p, GRPC_ENCODING_GZIP, &wire, &wlen), 0);
    assert_int_equal(wlen, 5 + sizeof p);
    assert_memory_equal(wire, "\x00\x00\x00\x00\x40", 5);
    assert_memory_equal(wire + 5, p, sizeof p);
    free(wire);
    assert_int_equal(grpc_message_encode(p, sizeof p, GRPC_ENCODING_IDENTITY, &wire, &wlen), 0);
    assert_int_equal(wire[0], 0);
    free(wire);
}

static void test_message_decode_of_a_plain_message_is_no_copy(void **state)
{
    grpc_message m = {.data = (const uint8_t *)"abc", .len = 3, .compressed = false};
    grpc_payload pl;
    assert_int_equal(grpc_message_decode(&m, GRPC_ENCODING_GZIP, 0, &pl), 0);
    assert_ptr_equal(pl.data, m.data);
    assert_null(pl.owned);
    assert_int_equal(grpc_message_decode(&m, GRPC_ENCODING_IDENTITY, 2, &pl), -EMSGSIZE);
}

static void test_compressed_flag_on_an_identity_stream_is_a_protocol_error(void **state)
{
    grpc_message m = {.data = (const uint8_t *)"abc", .len = 3, .compressed = true};
    grpc_payload pl;
    assert_int_equal(grpc_message_decode(&m, GRPC_ENCODING_IDENTITY, 0, &pl), -EPROTO);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prefix_is_the_flag_then_the_length_big_endian),
        cmocka_unit_test(test_reader_returns_a_whole_message_in_place),
        cmocka_unit_test(test_reader_yields_several_messages_from_one_buffer),
        cmocka_unit_test(test_reader_split_at_every_byte_gives_the_same_messages),
        cmocka_unit_test(test_reader_split_at_every_pair_of_points_gives_the_same_messages),
        cmocka_unit_test(test_reader_fed_byte_by_byte_gives_the_same_messages),
        cmocka_unit_test(test_reader_returns_an_empty_message),
        cmocka_unit_test(test_reader_accepts_a_message_of_exactly_max_len),
        cmocka_unit_test(test_reader_refuses_a_message_over_max_len_once_the_prefix_is_complete),
        cmocka_unit_test(test_reader_default_limit_is_4_mib),
        cmocka_unit_test(test_reader_refuses_a_flag_other_than_0_or_1_at_its_first_byte),
        cmocka_unit_test(test_reader_is_idle_only_between_messages),
        cmocka_unit_test(test_reader_buffers_what_arrived_not_the_length_claimed),
        cmocka_unit_test(test_encoding_names_parse_ignoring_case),
        cmocka_unit_test(test_accept_encoding_lists_are_searched_item_by_item),
        cmocka_unit_test(test_gzip_round_trips_every_kind_of_input),
        cmocka_unit_test(test_gzip_output_of_exactly_max_len_is_accepted_and_one_more_refused),
        cmocka_unit_test(test_gzip_refuses_corrupt_truncated_and_trailing_input),
        cmocka_unit_test(test_zip_bomb_is_refused_without_allocating_its_size),
        cmocka_unit_test(test_message_encode_gzip_round_trips_through_the_reader),
        cmocka_unit_test(test_message_encode_sends_plain_what_gzip_does_not_shrink),
        cmocka_unit_test(test_message_decode_of_a_plain_message_is_no_copy),
        cmocka_unit_test(test_compressed_flag_on_an_identity_stream_is_a_protocol_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
