/*
 * src/memcache/ketama.h: which memcached server a key lives on, by
 * consistent hashing ("ketama"), placing every key on the server that
 * libmemcached 1.x puts it on, and so pylibmc, php-memcached and every other
 * client built on libmemcached. Private to the library; the memcached client
 * picks a connection with it.
 *
 * The continuum is a sorted circle of 32-bit points, each owned by a server;
 * a key hashes to a 32-bit value and belongs to the server of the first point
 * at or after it, wrapping to the first point past the largest. What must
 * match libmemcached bit for bit, and does (tests/unit/test_memcache_ketama.c
 * compares with libmemcached's own memcached_generate_hash on 10,000 keys for
 * every server list it builds):
 *
 *   - the text hashed for a server's points: "host-i" when the port is 11211
 *     (libmemcached's default port is left out), "host:port-i" otherwise,
 *     with the host exactly as given (no resolving, no lower-casing);
 *   - the weighted continuum: 40 MD5 digests per server ("host-0" to
 *     "host-39"), 4 points from each digest (its bytes 0-3, 4-7, 8-11, 12-15
 *     read little-endian), so 160 points; with weights, a server gets
 *     floor(w / total * 40 * servers) digests, computed in single precision
 *     as libmemcached does (so equal weights can give 156 points, not 160:
 *     with 25 servers, for one);
 *   - the unweighted continuum: 100 points per server, point i being the key
 *     hash of "host-i" (one point per string, not four);
 *   - the key hash: MD5's first 4 bytes little-endian, or libmemcached's
 *     default, Bob Jenkins' one-at-a-time (bytes read as plain `char`, so
 *     bytes >= 0x80 are sign-extended where char is signed, as on x86-64:
 *     the same key may land elsewhere on aarch64, in libmemcached too);
 *   - ties between equal points go to the server listed first;
 *   - a single-server list puts every key on it.
 *
 * Which libmemcached behavior gives which placement (read in libmemcached
 * 1.1's behavior.cc and hosts.cc; checked against libmemcached 1.1.4 by the
 * test, and against pylibmc 1.6.3 on it by storing 4,000 keys through
 * pylibmc on three memcached servers and finding each where we place it):
 *
 *   KETAMA_WEIGHTED_MD5  memcached_behavior_set(MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1):
 *                        weighted continuum, MD5 key hash. The classic ketama
 *                        of last.fm's libketama (except the omitted 11211).
 *   KETAMA_DEFAULT_HASH  memcached_behavior_set(MEMCACHED_BEHAVIOR_KETAMA, 1),
 *                        which is pylibmc's behaviors={"ketama": True} and
 *                        distribution "consistent ketama": the key hash stays
 *                        libmemcached's default, one-at-a-time (pylibmc's
 *                        documentation still says "ketama" implies MD5; that
 *                        was libmemcached 0.x). Unweighted continuum, unless
 *                        a server has a weight above 1: then the weighted one
 *                        (libmemcached switches when such a server is added,
 *                        which pylibmc does after setting behaviors).
 *   KETAMA_MD5_HASH      the same with MEMCACHED_BEHAVIOR_HASH = MD5 (pylibmc
 *                        {"ketama": True, "hash": "md5"}): unweighted points
 *                        are then MD5 too.
 *
 * pymemcache's HashClient does not use ketama at all: its default is
 * rendezvous hashing (highest random weight, murmur3 of "host:port-key"), so
 * it shares no placement with any of these.
 *
 * Dead servers are the client's business. libmemcached with
 * MEMCACHED_BEHAVIOR_AUTO_EJECT_HOSTS leaves a failed server out and rebuilds
 * the continuum from the live ones, weighting among them but keeping each
 * server's index; ketama_build's `live` argument does the same, so the keys
 * of a dead server move to the others and no other key moves.
 *
 * Memory is allocated by ketama_build only; lookups never allocate, never
 * fail and may run concurrently on one continuum.
 */
#ifndef WEAVE_MEMCACHE_KETAMA_H
#define WEAVE_MEMCACHE_KETAMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#pragma GCC visibility push(hidden)

typedef enum ketama_mode {
    KETAMA_WEIGHTED_MD5 = 0, /* MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED */
    KETAMA_DEFAULT_HASH,     /* MEMCACHED_BEHAVIOR_KETAMA (pylibmc "ketama") */
    KETAMA_MD5_HASH,         /* MEMCACHED_BEHAVIOR_KETAMA + MEMCACHED_BEHAVIOR_HASH = MD5 */
} ketama_mode;

#define KETAMA_DEFAULT_PORT 11211 /* left out of the hashed text */
#define KETAMA_HOST_MAX     1024  /* bytes of a host name (libmemcached's NI_MAXHOST - 1) */

typedef struct ketama_server {
    const char *host; /* NUL-terminated, 1..KETAMA_HOST_MAX bytes, hashed as given */
    uint16_t port;    /* 0 means 11211, as in memcached_server_add */
    uint32_t weight;  /* 0 means 1 */
} ketama_server;

typedef struct ketama_point {
    uint32_t value;  /* position on the circle */
    uint32_t server; /* index into the array given to ketama_build */
} ketama_point;

/* A built continuum. Zero-initialise or build; free with ketama_free. */
typedef struct ketama {
    ketama_point *points; /* sorted by value, then by server */
    size_t n_points;
    size_t n_servers; /* the array's length, dead servers included */
    bool md5_keys;    /* key hash: MD5, or one-at-a-time */
} ketama;

/*
 * Build the continuum of servers[0..n) in `mode`. live may be NULL (all
 * live) or n flags; a server whose flag is false gets no points, and the
 * weights are shared among the live ones. Returns 0 and fills *k (replacing
 * and freeing what it held) or, leaving *k as it was:
 *   -EINVAL  n is 0 or above UINT32_MAX, a host is NULL, empty or longer than
 *            KETAMA_HOST_MAX, or mode is unknown;
 *   -ENOENT  no server is live;
 *   -ENOMEM  the points could not be allocated.
 * servers is only read during the call.
 */
int ketama_build(ketama *k, const ketama_server *servers, size_t n, const bool *live,
                 ketama_mode mode);

/* Free the points; k is empty (and may be built again) after. */
void ketama_free(ketama *k);

/* The 32-bit hash of key[0..len) that the continuum is searched with. */
uint32_t ketama_hash(const ketama *k, const char *key, size_t len);

/* The index (into the array ketama_build was given) of the server that owns
 * `hash`: the first point at or after it, or the first point of all. k must
 * have been built. */
uint32_t ketama_server_of_hash(const ketama *k, uint32_t hash);

/* The index of the server key[0..len) lives on. k must have been built. */
uint32_t ketama_lookup(const ketama *k, const char *key, size_t len);

/* MD5 (RFC 1321) of p[0..n). The key hash and the points need it per call,
 * and OpenSSL's EVP interface costs more than the hash for a short key. */
void ketama_md5(const void *p, size_t n, uint8_t digest[16]);

/* Bob Jenkins' one-at-a-time hash over plain chars: libmemcached's default. */
uint32_t ketama_one_at_a_time(const char *key, size_t len);

#pragma GCC visibility pop

#endif /* WEAVE_MEMCACHE_KETAMA_H */
