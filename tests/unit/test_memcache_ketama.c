/*
 * The ketama continuum (src/memcache/ketama.c) as a specification, checked
 * against libmemcached itself: for each server list (1, 2, 3 and 10
 * servers; default and other ports; port 0; host names, IPv4 and IPv6
 * text; equal, unequal and zero weights) and each of the three modes,
 * 10,000 keys must land on the server that libmemcached's
 * memcached_generate_hash picks, with libmemcached configured the way
 * ketama.h says each mode corresponds to. No server is contacted:
 * memcached_generate_hash only searches libmemcached's continuum.
 *
 * Then the parts on their own: MD5 against OpenSSL and RFC 1321's test
 * suite, the key hashes against libmemcached's, rebuilding without a dead
 * server (only its keys move), and the errors of ketama_build.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libmemcached/memcached.h>
#include <openssl/evp.h>

#include "memcache/ketama.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define KEYS         10000

/* ------------------------------------------------------------ helpers */

static uint64_t rng_state = 0x9E3779B97F4A7C15u;

static uint32_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint32_t)(rng_state >> 16);
}

/*
 * The i-th test key into out (at least 251 bytes); returns its length. A
 * third look like application keys, the rest are random valid memcached keys
 * of 1..250 bytes from 0x21-0x7e and 0x80-0xff (bytes above 0x7f are where a
 * sign-extending hash could go wrong), mostly short.
 */
static size_t test_key(unsigned i, char *out)
{
    if (i % 3 == 0)
        return (size_t)sprintf(out, "user:%u:profile", i);
    size_t len = i % 10 == 1 ? 1 + rng() % 250 : 1 + rng() % 40;
    for (size_t j = 0; j < len; j++) {
        unsigned c;
        do
            c = 0x21 + rng() % (0x100 - 0x21);
        while (c == 0x7f);
        out[j] = (char)c;
    }
    return len;
}

/* libmemcached configured as ketama.h says `mode` corresponds to, with the
 * servers added after the behaviors (as pylibmc does). */
static memcached_st *libmemcached_for(const ketama_server *servers, size_t n, ketama_mode mode)
{
    memcached_st *memc = memcached_create(NULL);
    assert_non_null(memc);
    switch (mode) {
    case KETAMA_WEIGHTED_MD5:
        assert_int_equal(memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1),
                         MEMCACHED_SUCCESS);
        break;
    case KETAMA_DEFAULT_HASH:
        assert_int_equal(memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_KETAMA, 1),
                         MEMCACHED_SUCCESS);
        break;
    case KETAMA_MD5_HASH:
        assert_int_equal(memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_KETAMA, 1),
                         MEMCACHED_SUCCESS);
        assert_int_equal(memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_HASH, MEMCACHED_HASH_MD5),
                         MEMCACHED_SUCCESS);
        break;
    }
    for (size_t i = 0; i < n; i++)
        assert_int_equal(memcached_server_add_with_weight(memc, servers[i].host, servers[i].port,
                                                          servers[i].weight),
                         MEMCACHED_SUCCESS);
    return memc;
}

/* KEYS keys: ours and libmemcached's server index agree for every one. */
static void assert_same_placement(const ketama_server *servers, size_t n, ketama_mode mode)
{
    ketama k = {0};
    assert_int_equal(ketama_build(&k, servers, n, NULL, mode), 0);
    memcached_st *memc = libmemcached_for(servers, n, mode);
    unsigned *per_server = calloc(n, sizeof *per_server);
    assert_non_null(per_server);
    char key[256];
    for (unsigned i = 0; i < KEYS; i++) {
        size_t len = test_key(i, key);
        uint32_t ours = ketama_lookup(&k, key, len);
        uint32_t theirs = memcached_generate_hash(memc, key, len);
        if (ours != theirs)
            fail_msg("mode %d, %zu servers: key #%u (%zu bytes) on server %u, libmemcached: %u",
                     (int)mode, n, i, len, ours, theirs);
        per_server[ours]++;
    }
    /* and the keys really are spread (every server with points gets some) */
    if (n > 1)
        for (size_t s = 0; s < n; s++)
            if (servers[s].weight <= 1)
                assert_true(per_server[s] > 0);
    free(per_server);
    memcached_free(memc);
    ketama_free(&k);
}

static void assert_same_placement_in_every_mode(const ketama_server *servers, size_t n)
{
    assert_same_placement(servers, n, KETAMA_WEIGHTED_MD5);
    assert_same_placement(servers, n, KETAMA_DEFAULT_HASH);
    assert_same_placement(servers, n, KETAMA_MD5_HASH);
}

/* ------------------------------------------------------------ same server as libmemcached */

static void test_one_server_takes_every_key(void **state)
{
    static const ketama_server servers[] = {{"10.0.0.1", 11211, 1}};
    assert_same_placement_in_every_mode(servers, ARRAY_LEN(servers));
    ketama k = {0};
    assert_int_equal(ketama_build(&k, servers, 1, NULL, KETAMA_WEIGHTED_MD5), 0);
    assert_int_equal(ketama_lookup(&k, "anything", 8), 0);
    ketama_free(&k);
}

static void test_two_servers_on_the_default_port_match_libmemcached(void **state)
{
    static const ketama_server servers[] = {{"10.0.0.1", 11211, 1}, {"10.0.0.2", 11211, 1}};
    assert_same_placement_in_every_mode(servers, ARRAY_LEN(servers));
}

static void test_three_servers_on_one_host_with_different_ports_match_libmemcached(void **state)
{
    static const ketama_server servers[] = {
        {"127.0.0.1", 11311, 1}, {"127.0.0.1", 11312, 1}, {"127.0.0.1", 11313, 1}};
    assert_same_placement_in_every_mode(servers, ARRAY_LEN(servers));
}

static void test_ten_servers_with_names_and_mixed_ports_match_libmemcached(void **state)
{
    static const ketama_server servers[] = {
        {"cache-0.example.com", 11211, 1},
        {"cache-1.example.com", 11211, 1},
        {"cache-2.example.com", 11212, 1},
        {"cache-3.example.com", 11211, 1},
        {"10.1.2.4", 11211, 1},
        {"10.1.2.5", 22122, 1},
        {"localhost", 11211, 1},
        {"localhost", 11213, 1},
        {"::1", 11211, 1},
        {"memcached", 1, 1},
    };
    assert_same_placement_in_every_mode(servers, ARRAY_LEN(servers));
}

static void test_port_0_is_the_default_port_as_in_libmemcached(void **state)
{
    static const ketama_server zero[] = {
        {"10.0.0.1", 0, 1}, {"10.0.0.2", 0, 1}, {"10.0.0.3", 0, 1}};
    static const ketama_server explicit[] = {
        {"10.0.0.1", 11211, 1}, {"10.0.0.2", 11211, 1}, {"10.0.0.3", 11211, 1}};
    assert_same_placement_in_every_mode(zero, ARRAY_LEN(zero));
    ketama a = {0}, b = {0};
    assert_int_equal(ketama_build(&a, zero, 3, NULL, KETAMA_WEIGHTED_MD5), 0);
    assert_int_equal(ketama_build(&b, explicit, 3, NULL, KETAMA_WEIGHTED_MD5), 0);
    assert_int_equal(a.n_points, b.n_points);
    assert_memory_equal(a.points, b.points, a.n_points * sizeof *a.points);
    ketama_free(&a);
    ketama_free(&b);
}

static void test_unequal_weights_match_libmemcached(void **state)
{
    static const ketama_server three[] = {
        {"10.0.0.1", 11211, 1}, {"10.0.0.2", 11211, 2}, {"10.0.0.3", 11211, 3}};
    static const ketama_server two[] = {{"mc-a", 11211, 5}, {"mc-b", 11300, 1}};
    static const ketama_server skewed[] = {
        {"10.0.0.1", 11211, 100}, {"10.0.0.2", 11211, 1}, {"10.0.0.3", 11212, 1}};
    static const ketama_server five[] = {
        {"h1", 11211, 1}, {"h2", 11211, 1}, {"h3", 11211, 1}, {"h4", 11211, 1}, {"h5", 11211, 7}};
    assert_same_placement_in_every_mode(three, ARRAY_LEN(three));
    assert_same_placement_in_every_mode(two, ARRAY_LEN(two));
    assert_same_placement_in_every_mode(skewed, ARRAY_LEN(skewed));
    assert_same_placement_in_every_mode(five, ARRAY_LEN(five));
}

static void test_weight_0_counts_as_1_as_in_libmemcached(void **state)
{
    static const ketama_server servers[] = {
        {"10.0.0.1", 11211, 0}, {"10.0.0.2", 11211, 2}, {"10.0.0.3", 11211, 0}};
    assert_same_placement_in_every_mode(servers, ARRAY_LEN(servers));
}

static void test_equal_weights_of_every_list_size_up_to_40_match_libmemcached(void **state)
{
    /* equal weights: the single-precision share can round a server down to
     * 39 digests (156 points) for some list sizes, exactly as libmemcached */
    ketama_server servers[40];
    char names[40][32];
    for (size_t n = 1; n <= ARRAY_LEN(servers); n++) {
        for (size_t i = 0; i < n; i++) {
            snprintf(names[i], sizeof names[i], "192.168.7.%zu", i + 1);
            servers[i] = (ketama_server){names[i], (uint16_t)(11211 + i % 3), 1};
        }
        ketama k = {0};
        assert_int_equal(ketama_build(&k, servers, n, NULL, KETAMA_WEIGHTED_MD5), 0);
        memcached_st *memc = libmemcached_for(servers, n, KETAMA_WEIGHTED_MD5);
        char key[256];
        for (unsigned i = 0; i < 1000; i++) {
            size_t len = test_key(i, key);
            assert_int_equal(ketama_lookup(&k, key, len), memcached_generate_hash(memc, key, len));
        }
        memcached_free(memc);
        ketama_free(&k);
    }
}

static void test_weighted_md5_points_are_160_per_server_for_equal_weights(void **state)
{
    static const ketama_server servers[] = {{"a", 1, 1}, {"b", 2, 1}, {"c", 3, 1}, {"d", 4, 1}};
    ketama k = {0};
    assert_int_equal(ketama_build(&k, servers, 2, NULL, KETAMA_WEIGHTED_MD5), 0);
    assert_int_equal(k.n_points, 320);
    assert_int_equal(ketama_build(&k, servers, 4, NULL, KETAMA_WEIGHTED_MD5), 0);
    assert_int_equal(k.n_points, 640);
    assert_int_equal(ketama_build(&k, servers, 4, NULL, KETAMA_DEFAULT_HASH), 0);
    assert_int_equal(k.n_points, 400); /* unweighted: 100 each */
    for (size_t i = 1; i < k.n_points; i++)
        assert_true(k.points[i - 1].value <= k.points[i].value);
    ketama_free(&k);
}

static void test_weighted_md5_behavior_set_after_the_servers_places_the_same(void **state)
{
    static const ketama_server servers[] = {
        {"10.0.0.1", 11211, 1}, {"10.0.0.2", 11212, 3}, {"10.0.0.3", 11211, 1}};
    memcached_st *memc = memcached_create(NULL);
    for (size_t i = 0; i < ARRAY_LEN(servers); i++)
        memcached_server_add_with_weight(memc, servers[i].host, servers[i].port, servers[i].weight);
    memcached_behavior_set(memc, MEMCACHED_BEHAVIOR_KETAMA_WEIGHTED, 1);
    ketama k = {0};
    assert_int_equal(ketama_build(&k, servers, ARRAY_LEN(servers), NULL, KETAMA_WEIGHTED_MD5), 0);
    char key[256];
    for (unsigned i = 0; i < KEYS; i++) {
        size_t len = test_key(i, key);
        assert_int_equal(ketama_lookup(&k, key, len), memcached_generate_hash(memc, key, len));
    }
    memcached_free(memc);
    ketama_free(&k);
}

/* ------------------------------------------------------------ the hashes */

static void test_md5_matches_the_rfc_1321_test_suite(void **state)
{
    static const struct {
        const char *in, *hex;
    } cases[] = {
        {"", "d41d8cd98f00b204e9800998ecf8427e"},
        {"a", "0cc175b9c0f1b6a831c399e269772661"},
        {"abc", "900150983cd24fb0d6963f7d28e17f72"},
        {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
        {"abcdefghijklmnopqrstuvwxyz", "c3fcd3d76192e4007dfb496cca67e13b"},
        {"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
         "d174ab98d277d9f5a5611c2c9f419d9f"},
        {"12345678901234567890123456789012345678901234567890"
         "123456789012345678901234567890",
         "57edf4a22be3c955ac49da2e2107b67a"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint8_t digest[16];
        char hex[33];
        ketama_md5(cases[i].in, strlen(cases[i].in), digest);
        for (int j = 0; j < 16; j++)
            sprintf(hex + 2 * j, "%02x", digest[j]);
        assert_string_equal(hex, cases[i].hex);
    }
}

static void test_md5_matches_openssl_for_every_length_up_to_300(void **state)
{
    uint8_t msg[300];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)rng();
    for (size_t n = 0; n <= sizeof msg; n++) {
        uint8_t ours[16], theirs[EVP_MAX_MD_SIZE];
        unsigned theirs_len = 0;
        ketama_md5(msg, n, ours);
        assert_int_equal(EVP_Digest(msg, n, theirs, &theirs_len, EVP_md5(), NULL), 1);
        assert_int_equal(theirs_len, 16);
        assert_memory_equal(ours, theirs, 16);
    }
}

static void test_key_hashes_match_libmemcached_default_and_md5(void **state)
{
    char key[256];
    for (unsigned i = 0; i < KEYS; i++) {
        size_t len = test_key(i, key);
        assert_int_equal(ketama_one_at_a_time(key, len),
                         memcached_generate_hash_value(key, len, MEMCACHED_HASH_DEFAULT));
        uint8_t digest[16];
        ketama_md5(key, len, digest);
        uint32_t le = (uint32_t)digest[0] | (uint32_t)digest[1] << 8 | (uint32_t)digest[2] << 16 |
                      (uint32_t)digest[3] << 24;
        assert_int_equal(le, memcached_generate_hash_value(key, len, MEMCACHED_HASH_MD5));
    }
}

static void test_lookup_wraps_past_the_last_point_to_the_first(void **state)
{
    static const ketama_server servers[] = {{"10.0.0.1", 11211, 1}, {"10.0.0.2", 11211, 1}};
    ketama k = {0};
    assert_int_equal(ketama_build(&k, servers, 2, NULL, KETAMA_WEIGHTED_MD5), 0);
    uint32_t last = k.points[k.n_points - 1].value;
    assert_true(last < UINT32_MAX); /* 320 random points: the top one is not 2^32-1 */
    assert_int_equal(ketama_server_of_hash(&k, last + 1), k.points[0].server);
    assert_int_equal(ketama_server_of_hash(&k, UINT32_MAX), k.points[0].server);
    assert_int_equal(ketama_server_of_hash(&k, 0), k.points[0].server);
    assert_int_equal(ketama_server_of_hash(&k, last), k.points[k.n_points - 1].server);
    /* a hash equal to a point belongs to that point's server */
    for (size_t i = 0; i < k.n_points; i++)
        if (i == 0 || k.points[i - 1].value != k.points[i].value)
            assert_int_equal(ketama_server_of_hash(&k, k.points[i].value), k.points[i].server);
    ketama_free(&k);
}

/* ------------------------------------------------------------ dead servers */

static void test_rebuild_without_a_dead_server_moves_only_its_keys(void **state)
{
    static const ketama_server servers[] = {{"10.0.0.1", 11211, 1},
                                            {"10.0.0.2", 11211, 1},
                                            {"10.0.0.3", 11211, 1},
                                            {"10.0.0.4", 11211, 1}};
    static const bool live[] = {true, false, true, true};
    ketama all = {0}, rest = {0};
    assert_int_equal(ketama_build(&all, servers, 4, NULL, KETAMA_WEIGHTED_MD5), 0);
    assert_int_equal(ketama_build(&rest, servers, 4, live, KETAMA_WEIGHTED_MD5), 0);
    assert_int_equal(rest.n_servers, 4);
    char key[256];
    unsigned moved = 0;
    for (unsigned i = 0; i < KEYS; i++) {
        size_t len = test_key(i, key);
        uint32_t before = ketama_lookup(&all, key, len), after = ketama_lookup(&rest, key, len);
        assert_int_not_equal(after, 1);
        if (before != 1)
            assert_int_equal(after, before);
        else
            moved++;
    }
    assert_true(moved > KEYS / 8 && moved < KEYS / 2);
    ketama_free(&all);
    ketama_free(&rest);
}

static void test_rebuild_from_live_servers_matches_libmemcached_given_only_those(void **state)
{
    /* libmemcached's auto-eject rebuild weights among the live servers and
     * keeps indexes; so it places keys as a libmemcached given only the live
     * servers, with that list's indexes mapped back */
    static const ketama_server servers[] = {
        {"10.0.0.1", 11211, 2}, {"10.0.0.2", 11212, 1}, {"10.0.0.3", 11211, 3}, {"10.0.0.4", 1, 1}};
    static const bool live[] = {true, false, true, true};
    static const uint32_t live_index[] = {0, 2, 3};
    static const ketama_server live_servers[] = {
        {"10.0.0.1", 11211, 2}, {"10.0.0.3", 11211, 3}, {"10.0.0.4", 1, 1}};
    for (int mode = KETAMA_WEIGHTED_MD5; mode <= KETAMA_MD5_HASH; mode++) {
        ketama k = {0};
        assert_int_equal(ketama_build(&k, servers, 4, live, (ketama_mode)mode), 0);
        memcached_st *memc = libmemcached_for(live_servers, 3, (ketama_mode)mode);
        char key[256];
        for (unsigned i = 0; i < KEYS; i++) {
            size_t len = test_key(i, key);
            assert_int_equal(ketama_lookup(&k, key, len),
                             live_index[memcached_generate_hash(memc, key, len)]);
        }
        memcached_free(memc);
        ketama_free(&k);
    }
}

static void test_build_with_no_live_server_is_enoent_and_keeps_the_old_continuum(void **state)
{
    static const ketama_server servers[] = {{"10.0.0.1", 11211, 1}, {"10.0.0.2", 11211, 1}};
    static const bool dead[] = {false, false};
    ketama k = {0};
    assert_int_equal(ketama_build(&k, servers, 2, NULL, KETAMA_WEIGHTED_MD5), 0);
    ketama_point *before = k.points;
    assert_int_equal(ketama_build(&k, servers, 2, dead, KETAMA_WEIGHTED_MD5), -ENOENT);
    assert_ptr_equal(k.points, before);
    assert_int_equal(k.n_points, 320);
    ketama_free(&k);
    assert_null(k.points);
    assert_int_equal(k.n_points, 0);
}

/* ------------------------------------------------------------ errors */

static void test_build_refuses_bad_server_lists_with_einval(void **state)
{
    char long_host[KETAMA_HOST_MAX + 2];
    memset(long_host, 'h', sizeof long_host - 1);
    long_host[sizeof long_host - 1] = '\0';
    ketama_server bad[][1] = {{{NULL, 11211, 1}}, {{"", 11211, 1}}, {{long_host, 11211, 1}}};
    ketama k = {0};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_int_equal(ketama_build(&k, bad[i], 1, NULL, KETAMA_WEIGHTED_MD5), -EINVAL);
    static const ketama_server good[] = {{"10.0.0.1", 11211, 1}};
    assert_int_equal(ketama_build(&k, good, 0, NULL, KETAMA_WEIGHTED_MD5), -EINVAL);
    assert_int_equal(ketama_build(&k, good, 1, NULL, (ketama_mode)7), -EINVAL);
    assert_null(k.points);

    long_host[KETAMA_HOST_MAX] = '\0'; /* exactly the longest */
    ketama_server longest[] = {{long_host, 65535, 1}, {long_host, 11211, 1}};
    assert_int_equal(ketama_build(&k, longest, 2, NULL, KETAMA_WEIGHTED_MD5), 0);
    ketama_free(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_server_takes_every_key),
        cmocka_unit_test(test_two_servers_on_the_default_port_match_libmemcached),
        cmocka_unit_test(test_three_servers_on_one_host_with_different_ports_match_libmemcached),
        cmocka_unit_test(test_ten_servers_with_names_and_mixed_ports_match_libmemcached),
        cmocka_unit_test(test_port_0_is_the_default_port_as_in_libmemcached),
        cmocka_unit_test(test_unequal_weights_match_libmemcached),
        cmocka_unit_test(test_weight_0_counts_as_1_as_in_libmemcached),
        cmocka_unit_test(test_equal_weights_of_every_list_size_up_to_40_match_libmemcached),
        cmocka_unit_test(test_weighted_md5_points_are_160_per_server_for_equal_weights),
        cmocka_unit_test(test_weighted_md5_behavior_set_after_the_servers_places_the_same),
        cmocka_unit_test(test_md5_matches_the_rfc_1321_test_suite),
        cmocka_unit_test(test_md5_matches_openssl_for_every_length_up_to_300),
        cmocka_unit_test(test_key_hashes_match_libmemcached_default_and_md5),
        cmocka_unit_test(test_lookup_wraps_past_the_last_point_to_the_first),
        cmocka_unit_test(test_rebuild_without_a_dead_server_moves_only_its_keys),
        cmocka_unit_test(test_rebuild_from_live_servers_matches_libmemcached_given_only_those),
        cmocka_unit_test(test_build_with_no_live_server_is_enoent_and_keeps_the_old_continuum),
        cmocka_unit_test(test_build_refuses_bad_server_lists_with_einval),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
