/*
 * src/memcache/ketama.c: the ketama continuum, libmemcached's placement of
 * keys on memcached servers, and the two hashes it needs (MD5 and Bob
 * Jenkins' one-at-a-time). See ketama.h for what must match libmemcached and
 * which of its behaviors each mode reproduces; this comment says how.
 *
 * Building counts each live server's points first (100, or 4 per digest in
 * the weighted continuum), allocates them once, hashes "host[:port]-i" for
 * each, and sorts by value with ties to the lower server index (the order
 * libmemcached's qsort comparator gives). A lookup is a lower-bound binary
 * search over the sorted values, wrapping past the end to the first point.
 *
 * MD5 is written here (RFC 1321) rather than taken from OpenSSL: a lookup
 * hashes one short key, a single 64-byte block, and EVP_Digest's per-call
 * setup (fetching the algorithm, a context) costs several times that.
 */
#include "memcache/ketama.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum {
    POINTS_UNWEIGHTED = 100, /* libmemcached's MEMCACHED_POINTS_PER_SERVER */
    POINTS_WEIGHTED = 160,   /* MEMCACHED_POINTS_PER_SERVER_KETAMA */
    POINTS_PER_DIGEST = 4,
};

/* ------------------------------------------------------------ MD5 */

static const uint32_t md5_sines[64] = {
    /* floor(|sin(i + 1)| * 2^32), RFC 1321 3.4 */
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

static const uint8_t md5_shifts[4][4] = {
    {7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};

static uint32_t rotl32(uint32_t x, unsigned k)
{
    return x << k | x >> (32 - k);
}

static uint32_t load_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* One step of round r: a = b + ((a + f + sine + word) <<< shift), then rotate the roles. */
#define MD5_STEP(f, i, word)                                                                       \
    do {                                                                                           \
        uint32_t next = b + rotl32(a + (f) + md5_sines[i] + m[word], md5_shifts[(i) / 16][(i)&3]); \
        a = d;                                                                                     \
        d = c;                                                                                     \
        c = b;                                                                                     \
        b = next;                                                                                  \
    } while (0)

static void md5_block(uint32_t state[4], const uint8_t block[64])
{
    uint32_t m[16];
    for (int i = 0; i < 16; i++)
        m[i] = load_le32(block + 4 * i);

    /* four rounds of 16 steps, each unrolled (a third faster than the loop) */
    uint32_t a = state[0], b = state[1], c = state[2], d = state[3];
#pragma GCC unroll 16
    for (unsigned i = 0; i < 16; i++)
        MD5_STEP((b & c) | (~b & d), i, i);
#pragma GCC unroll 16
    for (unsigned i = 16; i < 32; i++)
        MD5_STEP((b & d) | (c & ~d), i, (5 * i + 1) & 15);
#pragma GCC unroll 16
    for (unsigned i = 32; i < 48; i++)
        MD5_STEP(b ^ c ^ d, i, (3 * i + 5) & 15);
#pragma GCC unroll 16
    for (unsigned i = 48; i < 64; i++)
        MD5_STEP(c ^ (b | ~d), i, (7 * i) & 15);
    state[0] += a;
    state[1] += b;
    state[2] += c;
    state[3] += d;
}

void ketama_md5(const void *p, size_t n, uint8_t digest[16])
{
    const uint8_t *msg = p;
    uint32_t state[4] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476};
    size_t i = 0;
    for (; i + 64 <= n; i += 64)
        md5_block(state, msg + i);

    /* the rest, a 1 bit, zeros, and the bit length (little-endian): one or two blocks */
    uint8_t tail[128] = {0};
    size_t rest = n - i, tail_len = rest + 9 <= 64 ? 64 : 128;
    if (rest)
        memcpy(tail, msg + i, rest);
    tail[rest] = 0x80;
    uint64_t bits = (uint64_t)n * 8;
    for (int k = 0; k < 8; k++)
        tail[tail_len - 8 + (size_t)k] = (uint8_t)(bits >> (8 * k));
    for (size_t off = 0; off < tail_len; off += 64)
        md5_block(state, tail + off);

    for (int k = 0; k < 4; k++)
        for (int j = 0; j < 4; j++)
            digest[4 * k + j] = (uint8_t)(state[k] >> (8 * j));
}

/* ------------------------------------------------------------ key hashes */

uint32_t ketama_one_at_a_time(const char *key, size_t len)
{
    uint32_t h = 0;
    for (size_t i = 0; i < len; i++) {
        /* plain char, as libmemcached reads it: sign-extended where char is signed */
        h += (uint32_t)key[i];
        h += h << 10;
        h ^= h >> 6;
    }
    h += h << 3;
    h ^= h >> 11;
    h += h << 15;
    return h;
}

static uint32_t md5_hash(const char *key, size_t len)
{
    uint8_t digest[16];
    ketama_md5(key, len, digest);
    return load_le32(digest);
}

static uint32_t key_hash(bool md5, const char *key, size_t len)
{
    return md5 ? md5_hash(key, len) : ketama_one_at_a_time(key, len);
}

uint32_t ketama_hash(const ketama *k, const char *key, size_t len)
{
    return key_hash(k->md5_keys, key, len);
}

/* ------------------------------------------------------------ the continuum */

static int point_cmp(const void *x, const void *y)
{
    const ketama_point *a = x, *b = y;
    if (a->value != b->value)
        return a->value < b->value ? -1 : 1;
    return (a->server > b->server) - (a->server < b->server);
}

/*
 * Digests (weighted) of a server with weight w out of total among live
 * servers, in single precision step by step as libmemcached computes it
 * (hosts.cc), so that the rounding, and with it the count, is the same.
 */
static uint32_t weighted_digests(uint32_t w, uint64_t total, size_t live)
{
    float pct = (float)w / (float)total;
    float x = pct * (float)POINTS_WEIGHTED;
    x = x / (float)POINTS_PER_DIGEST;
    x = x * (float)live;
    x = x + 0.0000000001F;
    return (uint32_t)x; /* x >= 0: truncation is floor */
}

/* "host-" or "host:port-" into out; returns its length. */
static size_t point_prefix(char *out, const ketama_server *s)
{
    uint16_t port = s->port ? s->port : KETAMA_DEFAULT_PORT;
    size_t n = strlen(s->host);
    memcpy(out, s->host, n);
    if (port != KETAMA_DEFAULT_PORT)
        n += (size_t)sprintf(out + n, ":%u", (unsigned)port);
    out[n++] = '-';
    return n;
}

static bool server_valid(const ketama_server *s)
{
    return s->host && s->host[0] && strnlen(s->host, KETAMA_HOST_MAX + 1) <= KETAMA_HOST_MAX;
}

int ketama_build(ketama *k, const ketama_server *servers, size_t n, const bool *live,
                 ketama_mode mode)
{
    if (n == 0 || n > UINT32_MAX || mode > KETAMA_MD5_HASH)
        return -EINVAL;
    bool weighted = mode == KETAMA_WEIGHTED_MD5;
    size_t n_live = 0;
    uint64_t total_weight = 0;
    for (size_t i = 0; i < n; i++) {
        if (!server_valid(&servers[i]))
            return -EINVAL;
        uint32_t w = servers[i].weight ? servers[i].weight : 1;
        if (w > 1)
            weighted = true; /* libmemcached turns weighting on when such a server is added */
        if (!live || live[i]) {
            n_live++;
            total_weight += w;
        }
    }
    if (n_live == 0)
        return -ENOENT;

    size_t n_points = 0;
    for (size_t i = 0; i < n; i++) {
        if (live && !live[i])
            continue;
        uint32_t w = servers[i].weight ? servers[i].weight : 1;
        n_points += weighted ? (size_t)weighted_digests(w, total_weight, n_live) * POINTS_PER_DIGEST
                             : POINTS_UNWEIGHTED;
    }
    ketama_point *points = malloc((n_points ? n_points : 1) * sizeof *points);
    if (!points)
        return -ENOMEM;

    bool md5_keys = mode != KETAMA_DEFAULT_HASH;
    size_t at = 0;
    char text[KETAMA_HOST_MAX + sizeof ":65535-4294967295"];
    for (size_t i = 0; i < n; i++) {
        if (live && !live[i])
            continue;
        size_t prefix = point_prefix(text, &servers[i]);
        uint32_t w = servers[i].weight ? servers[i].weight : 1;
        uint32_t strings = weighted ? weighted_digests(w, total_weight, n_live) : POINTS_UNWEIGHTED;
        for (uint32_t j = 0; j < strings; j++) {
            size_t len = prefix + (size_t)sprintf(text + prefix, "%u", (unsigned)j);
            if (weighted) {
                uint8_t digest[16];
                ketama_md5(text, len, digest);
                for (int d = 0; d < POINTS_PER_DIGEST; d++)
                    points[at++] = (ketama_point){load_le32(digest + 4 * d), (uint32_t)i};
            } else {
                points[at++] = (ketama_point){key_hash(md5_keys, text, len), (uint32_t)i};
            }
        }
    }
    qsort(points, n_points, sizeof *points, point_cmp);

    free(k->points);
    *k = (ketama){.points = points, .n_points = n_points, .n_servers = n, .md5_keys = md5_keys};
    return 0;
}

void ketama_free(ketama *k)
{
    free(k->points);
    *k = (ketama){0};
}

uint32_t ketama_server_of_hash(const ketama *k, uint32_t hash)
{
    size_t lo = 0, hi = k->n_points;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (k->points[mid].value < hash)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == k->n_points)
        lo = 0;
    return k->points[lo].server;
}

uint32_t ketama_lookup(const ketama *k, const char *key, size_t len)
{
    return ketama_server_of_hash(k, ketama_hash(k, key, len));
}
