/*
 * The memcached codec (src/memcache/proto.c) as a specification: the key
 * rule, the exact bytes of every encoder (meta and classic), their refusals
 * and their all-or-nothing appends; then every kind of reply parsed to its
 * fields, every reply fed split at every byte, replies back to back, the
 * value limit reported before the data, and each malformed input refused
 * with -EPROTO, a reason, and the same answer for every prefix.
 *
 * Inputs are parsed from exactly sized heap copies, so under ASan a read one
 * byte past the end is caught. No server is needed (the encoders' output was
 * checked by hand against memcached 1.6.18).
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

#include "memcache/proto.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define S(lit)       (lit), sizeof(lit) - 1

/* ------------------------------------------------------------ helpers */

static char *copy_exact(const char *p, size_t n)
{
    char *b = malloc(n ? n : 1);
    assert_non_null(b);
    if (n)
        memcpy(b, p, n);
    return b;
}

/* mc_parse_reply on an exact copy of p[0..n). Slices stay valid: they are offsets. */
static ssize_t parse(const char *p, size_t n, size_t max_value, mc_reply *r, char *why,
                     size_t why_size)
{
    char *b = copy_exact(p, n);
    ssize_t rc = mc_parse_reply(b, n, max_value, r, why, why_size);
    free(b);
    return rc;
}

static ssize_t parse_whole(const char *p, size_t n, mc_reply *r)
{
    char why[256] = "";
    ssize_t rc = parse(p, n, 0, r, why, sizeof why);
    if (rc < 0)
        fail_msg("parse of %.*s failed: %zd (%s)", (int)n, p, rc, why);
    return rc;
}

static bool slice_is(const char *p, mc_slice s, const char *want)
{
    return s.len == strlen(want) && memcmp(p + s.off, want, s.len) == 0;
}

static void assert_slice(const char *p, mc_slice s, const char *want)
{
    if (!slice_is(p, s, want))
        fail_msg("slice is \"%.*s\", expected \"%s\"", (int)s.len, p + s.off, want);
}

static void assert_same_reply(const mc_reply *a, const mc_reply *b)
{
    assert_int_equal(a->kind, b->kind);
    assert_true(a->flags == b->flags);
    assert_memory_equal(&a->value, &b->value, sizeof a->value);
    assert_memory_equal(&a->key, &b->key, sizeof a->key);
    assert_memory_equal(&a->opaque, &b->opaque, sizeof a->opaque);
    assert_memory_equal(&a->text, &b->text, sizeof a->text);
    assert_int_equal(a->client_flags, b->client_flags);
    assert_true(a->cas == b->cas);
    assert_true(a->ttl == b->ttl);
    assert_true(a->size == b->size);
    assert_true(a->last_access == b->last_access);
    assert_int_equal(a->hit, b->hit);
    assert_true(a->number == b->number);
}

/* What an encoder appended to an empty buffer, as a string to compare. */
#define assert_encoded(b, lit)                                                                     \
    do {                                                                                           \
        assert_int_equal((b).n, sizeof(lit) - 1);                                                  \
        assert_memory_equal((b).p, (lit), sizeof(lit) - 1);                                        \
    } while (0)

/* 250 'k's (filled by main) */
static char key250[251];

/* ------------------------------------------------------------ keys */

static void test_key_of_1_to_250_printable_bytes_is_valid(void **state)
{
    assert_int_equal(strlen(key250), 250);
    for (size_t n = 1; n <= 250; n++)
        assert_true(mc_key_valid(key250, n));
    assert_true(mc_key_valid(S("user:42/profile?v=1&x=~!@#$%^*()_+{}|[]\\'\";,.<>")));
}

static void test_key_with_bytes_above_0x7f_is_valid(void **state)
{
    assert_true(mc_key_valid(S("caf\xc3\xa9")));
    assert_true(mc_key_valid(S("\x80\xff")));
}

static void test_empty_key_and_key_of_251_bytes_are_invalid(void **state)
{
    char k[251];
    memset(k, 'k', sizeof k);
    assert_false(mc_key_valid(k, 0));
    assert_false(mc_key_valid(k, 251));
}

static void test_key_with_a_space_control_byte_or_del_is_invalid(void **state)
{
    for (unsigned c = 0; c < 256; c++) {
        char k[3] = {'a', (char)c, 'b'};
        bool want = c > 0x20 && c != 0x7f;
        assert_int_equal(mc_key_valid(k, 3), want);
    }
}

static void test_every_encoder_refuses_an_invalid_key_and_appends_nothing(void **state)
{
    static const struct {
        const char *p;
        size_t n;
    } bad[] = {{"", 0}, {"a b", 3}, {"a\r\nb", 4}, {"a\tb", 3}, {"\x7f", 1}, {key250, 0}};
    char k251[251];
    memset(k251, 'k', sizeof k251);
    wv_buf b = {0};
    for (size_t i = 0; i <= ARRAY_LEN(bad); i++) {
        const char *k = i < ARRAY_LEN(bad) ? bad[i].p : k251;
        size_t n = i < ARRAY_LEN(bad) ? bad[i].n : sizeof k251;
        wv_str keys[] = {{"ok", 2}, {k, n}};
        assert_int_equal(mc_encode_mg(&b, k, n, NULL), -EINVAL);
        assert_int_equal(mc_encode_ms(&b, k, n, "v", 1, NULL), -EINVAL);
        assert_int_equal(mc_encode_md(&b, k, n, NULL), -EINVAL);
        assert_int_equal(mc_encode_ma(&b, k, n, 1, NULL), -EINVAL);
        assert_int_equal(mc_encode_get(&b, keys, 2, false), -EINVAL);
        assert_int_equal(mc_encode_store(&b, MC_SET, k, n, "v", 1, NULL), -EINVAL);
        assert_int_equal(mc_encode_delete(&b, k, n, false), -EINVAL);
        assert_int_equal(mc_encode_incr(&b, k, n, 1, false), -EINVAL);
        assert_int_equal(mc_encode_decr(&b, k, n, 1, false), -EINVAL);
        assert_int_equal(mc_encode_touch(&b, k, n, 10, false), -EINVAL);
        assert_int_equal(b.n, 0);
    }
    wv_buf_free(&b);
}

/* ------------------------------------------------------------ meta encoders */

static void test_mg_without_flags_is_the_key_alone(void **state)
{
    wv_buf b = {0};
    assert_int_equal(mc_encode_mg(&b, S("foo"), NULL), 0);
    assert_encoded(b, "mg foo\r\n");
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_mg(&b, S("foo"), &(mc_mg_opts){0}), 0);
    assert_encoded(b, "mg foo\r\n");
    wv_buf_free(&b);
}

static void test_mg_writes_every_flag_in_a_fixed_order(void **state)
{
    wv_buf b = {0};
    mc_mg_opts o = {
        .value = true,
        .client_flags = true,
        .cas = true,
        .ttl = true,
        .key = true,
        .size = true,
        .hit = true,
        .last_access = true,
        .no_bump = true,
        .quiet = true,
        .opaque = "req-17",
        .touch = true,
        .touch_ttl = 300,
        .vivify = true,
        .vivify_ttl = 30,
        .recache = true,
        .recache_ttl = 10,
    };
    assert_int_equal(mc_encode_mg(&b, S("user:1"), &o), 0);
    assert_encoded(b, "mg user:1 v f c t k s h l u T300 N30 R10 q Oreq-17\r\n");
    wv_buf_free(&b);
}

static void test_mg_touch_ttl_of_0_and_negative_ttls_are_sent(void **state)
{
    wv_buf b = {0};
    assert_int_equal(mc_encode_mg(&b, S("k"), &(mc_mg_opts){.touch = true, .touch_ttl = 0}), 0);
    assert_encoded(b, "mg k T0\r\n");
    wv_buf_reset(&b);
    assert_int_equal(
        mc_encode_mg(&b, S("k"), &(mc_mg_opts){.value = true, .touch = true, .touch_ttl = -1}), 0);
    assert_encoded(b, "mg k v T-1\r\n");
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_mg(&b, S("k"), &(mc_mg_opts){.touch = true, .touch_ttl = INT64_MIN}),
                     0);
    assert_encoded(b, "mg k T-9223372036854775808\r\n");
    wv_buf_free(&b);
}

static void test_ms_writes_the_length_flags_and_data_block(void **state)
{
    wv_buf b = {0};
    assert_int_equal(mc_encode_ms(&b, S("foo"), S("hi"), NULL), 0);
    assert_encoded(b, "ms foo 2\r\nhi\r\n");
    wv_buf_reset(&b);
    mc_ms_opts o = {
        .client_flags = 5,
        .ttl = 90,
        .compare_cas = 8283,
        .invalidate = true,
        .return_cas = true,
        .return_key = true,
        .quiet = true,
        .opaque = "9",
    };
    assert_int_equal(mc_encode_ms(&b, S("foo"), S("a\r\nb"), &o), 0);
    assert_encoded(b, "ms foo 4 F5 T90 C8283 I c k q O9\r\na\r\nb\r\n");
    wv_buf_free(&b);
}

static void test_ms_with_an_empty_value_sends_an_empty_data_block(void **state)
{
    wv_buf b = {0};
    assert_int_equal(mc_encode_ms(&b, S("foo"), NULL, 0, NULL), 0);
    assert_encoded(b, "ms foo 0\r\n\r\n");
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_ms(&b, S("foo"), NULL, 3, NULL), -EINVAL); /* data missing */
    assert_int_equal(b.n, 0);
    wv_buf_free(&b);
}

static void test_ms_modes_are_sent_as_m_and_a_letter_and_set_as_nothing(void **state)
{
    static const struct {
        mc_ms_mode mode;
        const char *want;
    } cases[] = {
        {MC_MS_SET, "ms k 1\r\nv\r\n"},        {MC_MS_ADD, "ms k 1 ME\r\nv\r\n"},
        {MC_MS_APPEND, "ms k 1 MA\r\nv\r\n"},  {MC_MS_PREPEND, "ms k 1 MP\r\nv\r\n"},
        {MC_MS_REPLACE, "ms k 1 MR\r\nv\r\n"},
    };
    wv_buf b = {0};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        wv_buf_reset(&b);
        assert_int_equal(mc_encode_ms(&b, S("k"), S("v"), &(mc_ms_opts){.mode = cases[i].mode}), 0);
        assert_int_equal(b.n, strlen(cases[i].want));
        assert_memory_equal(b.p, cases[i].want, b.n);
    }
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_ms(&b, S("k"), S("v"), &(mc_ms_opts){.mode = (mc_ms_mode)'S'}),
                     -EINVAL);
    assert_int_equal(b.n, 0);
    wv_buf_free(&b);
}

static void test_ms_negative_ttl_and_largest_numbers_are_sent_in_decimal(void **state)
{
    wv_buf b = {0};
    mc_ms_opts o = {.client_flags = UINT32_MAX, .ttl = -1, .compare_cas = UINT64_MAX};
    assert_int_equal(mc_encode_ms(&b, S("k"), S("v"), &o), 0);
    assert_encoded(b, "ms k 1 F4294967295 T-1 C18446744073709551615\r\nv\r\n");
    wv_buf_free(&b);
}

static void test_md_writes_its_flags(void **state)
{
    wv_buf b = {0};
    assert_int_equal(mc_encode_md(&b, S("foo"), NULL), 0);
    assert_encoded(b, "md foo\r\n");
    wv_buf_reset(&b);
    mc_md_opts o = {.compare_cas = 12,
                    .invalidate = true,
                    .touch = true,
                    .touch_ttl = 30,
                    .return_key = true,
                    .quiet = true,
                    .opaque = "x1"};
    assert_int_equal(mc_encode_md(&b, S("foo"), &o), 0);
    assert_encoded(b, "md foo C12 I T30 k q Ox1\r\n");
    wv_buf_free(&b);
}

static void test_ma_sends_no_delta_for_1_and_d_for_any_other(void **state)
{
    wv_buf b = {0};
    assert_int_equal(mc_encode_ma(&b, S("n"), 1, NULL), 0);
    assert_encoded(b, "ma n\r\n");
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_ma(&b, S("n"), 0, NULL), 0);
    assert_encoded(b, "ma n D0\r\n");
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_ma(&b, S("n"), UINT64_MAX, NULL), 0);
    assert_encoded(b, "ma n D18446744073709551615\r\n");
    wv_buf_free(&b);
}

static void test_ma_writes_decrement_vivify_initial_and_returned_flags(void **state)
{
    wv_buf b = {0};
    mc_ma_opts o = {.mode = MC_MA_DECR,
                    .vivify = true,
                    .vivify_ttl = 0,
                    .initial = 10,
                    .compare_cas = 77,
                    .touch = true,
                    .touch_ttl = 60,
                    .value = true,
                    .ttl = true,
                    .return_cas = true,
                    .return_key = true,
                    .quiet = true,
                    .opaque = "op"};
    assert_int_equal(mc_encode_ma(&b, S("cnt"), 3, &o), 0);
    assert_encoded(b, "ma cnt MD D3 N0 J10 C77 T60 v t c k q Oop\r\n");
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_ma(&b, S("cnt"), 1, &(mc_ma_opts){.mode = (mc_ma_mode)'+'}),
                     -EINVAL);
    assert_int_equal(b.n, 0);
    wv_buf_free(&b);
}

static void test_mn_and_version_are_fixed_lines(void **state)
{
    wv_buf b = {0};
    assert_int_equal(mc_encode_mn(&b), 0);
    assert_encoded(b, "mn\r\n");
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_version(&b), 0);
    assert_encoded(b, "version\r\n");
    wv_buf_free(&b);
}

static void test_binary_key_is_sent_as_base64_with_the_b_flag(void **state)
{
    wv_buf b = {0};
    assert_int_equal(
        mc_encode_mg(&b, S("binary"), &(mc_mg_opts){.base64_key = true, .value = true}), 0);
    assert_encoded(b, "mg YmluYXJ5 b v\r\n");
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_ms(&b, S("a \x00\xff"), S("v"), &(mc_ms_opts){.base64_key = true}),
                     0);
    assert_encoded(b, "ms YSAA/w== 1 b\r\nv\r\n");
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_md(&b, S("\r\n"), &(mc_md_opts){.base64_key = true}), 0);
    assert_encoded(b, "md DQo= b\r\n");
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_ma(&b, S("x"), 2, &(mc_ma_opts){.base64_key = true}), 0);
    assert_encoded(b, "ma eA== b D2\r\n");
    wv_buf_free(&b);
}

static void test_binary_key_of_186_bytes_fits_and_187_is_refused(void **state)
{
    char key[187];
    memset(key, 0xff, sizeof key);
    wv_buf b = {0};
    assert_int_equal(mc_encode_mg(&b, key, 186, &(mc_mg_opts){.base64_key = true}), 0);
    assert_int_equal(b.n, strlen("mg ") + 248 + strlen(" b\r\n"));
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_mg(&b, key, 187, &(mc_mg_opts){.base64_key = true}), -EINVAL);
    assert_int_equal(mc_encode_mg(&b, key, 0, &(mc_mg_opts){.base64_key = true}), -EINVAL);
    assert_int_equal(b.n, 0);
    wv_buf_free(&b);
}

static void test_opaque_over_32_bytes_or_not_key_like_is_refused(void **state)
{
    wv_buf b = {0};
    assert_int_equal(
        mc_encode_mg(&b, S("k"), &(mc_mg_opts){.opaque = "0123456789abcdef0123456789abcdef"}), 0);
    wv_buf_reset(&b);
    static const char *const bad[] = {"0123456789abcdef0123456789abcdefX", "", "a b", "a\nb"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        assert_int_equal(mc_encode_mg(&b, S("k"), &(mc_mg_opts){.opaque = bad[i]}), -EINVAL);
        assert_int_equal(mc_encode_ms(&b, S("k"), S("v"), &(mc_ms_opts){.opaque = bad[i]}),
                         -EINVAL);
        assert_int_equal(mc_encode_md(&b, S("k"), &(mc_md_opts){.opaque = bad[i]}), -EINVAL);
        assert_int_equal(mc_encode_ma(&b, S("k"), 1, &(mc_ma_opts){.opaque = bad[i]}), -EINVAL);
    }
    assert_int_equal(b.n, 0);
    wv_buf_free(&b);
}

static void test_longest_meta_lines_are_encoded_whole(void **state)
{
    mc_ma_opts o = {.mode = MC_MA_DECR,
                    .vivify = true,
                    .vivify_ttl = INT64_MIN,
                    .initial = UINT64_MAX,
                    .compare_cas = UINT64_MAX,
                    .touch = true,
                    .touch_ttl = INT64_MIN,
                    .value = true,
                    .ttl = true,
                    .return_cas = true,
                    .return_key = true,
                    .quiet = true,
                    .opaque = "0123456789abcdef0123456789abcdef"};
    wv_buf b = {0};
    assert_int_equal(mc_encode_ma(&b, key250, 250, UINT64_MAX, &o), 0);
    assert_true(b.n > 250 + 5 * 20);
    static const char tail[] = " q O0123456789abcdef0123456789abcdef\r\n";
    assert_memory_equal(b.p + b.n - (sizeof tail - 1), tail, sizeof tail - 1);
    wv_buf_free(&b);
}

/* ------------------------------------------------------------ classic encoders */

static void test_get_and_gets_write_every_key(void **state)
{
    wv_str keys[] = {WV_STR("a"), WV_STR("user:2"), WV_STR("caf\xc3\xa9")};
    wv_buf b = {0};
    assert_int_equal(mc_encode_get(&b, keys, 1, false), 0);
    assert_encoded(b, "get a\r\n");
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_get(&b, keys, 3, true), 0);
    assert_encoded(b, "gets a user:2 caf\xc3\xa9\r\n");
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_get(&b, keys, 0, false), -EINVAL);
    assert_int_equal(b.n, 0);
    wv_buf_free(&b);
}

static void test_store_commands_write_flags_exptime_bytes_and_data(void **state)
{
    static const struct {
        mc_store_cmd cmd;
        mc_store_opts o;
        const char *want;
    } cases[] = {
        {MC_SET, {0}, "set k 0 0 2\r\nhi\r\n"},
        {MC_SET, {.flags = 7, .exptime = 60}, "set k 7 60 2\r\nhi\r\n"},
        {MC_ADD, {.exptime = -1}, "add k 0 -1 2\r\nhi\r\n"},
        {MC_REPLACE, {.flags = UINT32_MAX}, "replace k 4294967295 0 2\r\nhi\r\n"},
        {MC_APPEND, {.noreply = true}, "append k 0 0 2 noreply\r\nhi\r\n"},
        {MC_PREPEND, {0}, "prepend k 0 0 2\r\nhi\r\n"},
        {MC_CAS, {.cas = 8283, .flags = 1, .exptime = 2}, "cas k 1 2 2 8283\r\nhi\r\n"},
        {MC_CAS, {.cas = 0, .noreply = true}, "cas k 0 0 2 0 noreply\r\nhi\r\n"},
    };
    wv_buf b = {0};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        wv_buf_reset(&b);
        assert_int_equal(mc_encode_store(&b, cases[i].cmd, S("k"), S("hi"), &cases[i].o), 0);
        assert_int_equal(b.n, strlen(cases[i].want));
        assert_memory_equal(b.p, cases[i].want, b.n);
    }
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_store(&b, MC_SET, S("k"), NULL, 0, NULL), 0);
    assert_encoded(b, "set k 0 0 0\r\n\r\n");
    wv_buf_reset(&b);
    assert_int_equal(mc_encode_store(&b, (mc_store_cmd)99, S("k"), S("hi"), NULL), -EINVAL);
    assert_int_equal(b.n, 0);
    wv_buf_free(&b);
}

static void test_delete_incr_decr_touch_write_their_lines(void **state)
{
    wv_buf b = {0};
    assert_int_equal(mc_encode_delete(&b, S("k"), false), 0);
    assert_int_equal(mc_encode_delete(&b, S("k"), true), 0);
    assert_int_equal(mc_encode_incr(&b, S("n"), 5, false), 0);
    assert_int_equal(mc_encode_decr(&b, S("n"), UINT64_MAX, true), 0);
    assert_int_equal(mc_encode_touch(&b, S("k"), 3600, false), 0);
    assert_int_equal(mc_encode_touch(&b, S("k"), -1, true), 0);
    assert_encoded(b, "delete k\r\n"
                      "delete k noreply\r\n"
                      "incr n 5\r\n"
                      "decr n 18446744073709551615 noreply\r\n"
                      "touch k 3600\r\n"
                      "touch k -1 noreply\r\n");
    wv_buf_free(&b);
}

static void test_encoders_append_after_what_the_buffer_holds(void **state)
{
    wv_buf b = {0};
    assert_int_equal(mc_encode_mg(&b, S("a"), &(mc_mg_opts){.quiet = true, .opaque = "1"}), 0);
    assert_int_equal(mc_encode_mg(&b, S("b"), &(mc_mg_opts){.quiet = true, .opaque = "2"}), 0);
    assert_int_equal(mc_encode_mn(&b), 0);
    assert_encoded(b, "mg a q O1\r\nmg b q O2\r\nmn\r\n");
    wv_buf_free(&b);
}

static void test_encoder_past_the_buffer_limit_is_enomem_and_appends_nothing(void **state)
{
    char value[100];
    memset(value, 'v', sizeof value);
    wv_str keys[] = {WV_STR("aaaa"), WV_STR("bbbb")};
    for (size_t limit = 1; limit < 140; limit++) {
        wv_buf b = {.limit = limit};
        int rcs[] = {
            mc_encode_ms(&b, S("key"), value, sizeof value, NULL),
            mc_encode_store(&b, MC_SET, S("key"), value, sizeof value, NULL),
            mc_encode_mg(&b, S("key"), &(mc_mg_opts){.value = true}),
            mc_encode_get(&b, keys, 2, false),
            mc_encode_mn(&b),
        };
        /* each either fitted whole (and is counted) or appended nothing */
        size_t expect = 0;
        size_t sizes[] = {strlen("ms key 100\r\n") + 102, strlen("set key 0 0 100\r\n") + 102,
                          strlen("mg key v\r\n"), strlen("get aaaa bbbb\r\n"), 4};
        for (size_t i = 0; i < ARRAY_LEN(rcs); i++) {
            assert_true(rcs[i] == 0 || rcs[i] == -ENOMEM);
            if (rcs[i] == 0)
                expect += sizes[i];
        }
        assert_int_equal(b.n, expect);
        assert_true(b.n <= limit);
        wv_buf_free(&b);
    }
}

/* ------------------------------------------------------------ meta replies */

static void test_each_meta_code_parses_to_its_kind(void **state)
{
    static const struct {
        const char *raw;
        mc_reply_kind kind;
    } cases[] = {{"HD\r\n", MC_HD}, {"EN\r\n", MC_EN}, {"NF\r\n", MC_NF},
                 {"NS\r\n", MC_NS}, {"EX\r\n", MC_EX}, {"MN\r\n", MC_MN}};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        mc_reply r;
        assert_int_equal(parse_whole(cases[i].raw, strlen(cases[i].raw), &r), 4);
        assert_int_equal(r.kind, cases[i].kind);
        assert_true(r.flags == 0);
    }
}

static void test_returned_flags_fill_their_fields(void **state)
{
    const char raw[] = "HD f5 c8283 t90 kfoo O9 s2 h1 l17 b W X Z\r\n";
    mc_reply r;
    assert_int_equal(parse_whole(S(raw), &r), sizeof raw - 1);
    assert_int_equal(r.kind, MC_HD);
    assert_int_equal(r.client_flags, 5);
    assert_true(r.cas == 8283);
    assert_true(r.ttl == 90);
    assert_slice(raw, r.key, "foo");
    assert_slice(raw, r.opaque, "9");
    assert_true(r.size == 2);
    assert_true(r.hit);
    assert_true(r.last_access == 17);
    const char *has = "fctkOshlbWXZ";
    for (const char *c = has; *c; c++)
        assert_true(mc_reply_has(&r, *c));
    assert_false(mc_reply_has(&r, 'v'));
    assert_false(mc_reply_has(&r, 'q'));
    assert_false(mc_reply_has(&r, '1'));
}

static void test_va_gives_the_value_as_a_slice_of_the_input(void **state)
{
    const char raw[] = "VA 2 f5 t90 c8283 kfoo s2 O7 h0 l0\r\nhi\r\n";
    mc_reply r;
    assert_int_equal(parse_whole(S(raw), &r), sizeof raw - 1);
    assert_int_equal(r.kind, MC_VA);
    assert_int_equal(r.value.off, strlen("VA 2 f5 t90 c8283 kfoo s2 O7 h0 l0\r\n"));
    assert_slice(raw, r.value, "hi");
    assert_int_equal(r.client_flags, 5);
    assert_slice(raw, r.key, "foo");
    assert_slice(raw, r.opaque, "7");
    assert_false(r.hit);
    assert_true(mc_reply_has(&r, 'h'));
}

static void test_va_value_may_be_empty_or_hold_crlf(void **state)
{
    mc_reply r;
    assert_int_equal(parse_whole(S("VA 0\r\n\r\n"), &r), 8);
    assert_int_equal(r.kind, MC_VA);
    assert_int_equal(r.value.len, 0);
    assert_int_equal(r.value.off, 6);
    const char raw[] = "VA 6\r\n\r\nEN\r\n\r\n";
    assert_int_equal(parse_whole(S(raw), &r), sizeof raw - 1);
    assert_slice(raw, r.value, "\r\nEN\r\n");
}

static void test_ttl_of_minus_1_means_never_expires(void **state)
{
    const char raw[] = "VA 2 t-1 c8284\r\n10\r\n";
    mc_reply r;
    assert_int_equal(parse_whole(S(raw), &r), sizeof raw - 1);
    assert_true(r.ttl == -1);
    assert_slice(raw, r.value, "10");
}

static void test_miss_with_opaque_and_key_carries_them(void **state)
{
    const char raw[] = "EN O123 knokey\r\n";
    mc_reply r;
    assert_int_equal(parse_whole(S(raw), &r), sizeof raw - 1);
    assert_int_equal(r.kind, MC_EN);
    assert_slice(raw, r.opaque, "123");
    assert_slice(raw, r.key, "nokey");
}

static void test_unknown_returned_flag_is_recorded_and_its_token_ignored(void **state)
{
    const char raw[] = "HD Qwhatever f1 P\r\n";
    mc_reply r;
    assert_int_equal(parse_whole(S(raw), &r), sizeof raw - 1);
    assert_true(mc_reply_has(&r, 'Q'));
    assert_true(mc_reply_has(&r, 'P'));
    assert_int_equal(r.client_flags, 1);
}

static void test_base64_key_comes_back_as_base64_with_b(void **state)
{
    const char raw[] = "VA 2 kYmluYXJ5 b f0\r\nyo\r\n";
    mc_reply r;
    assert_int_equal(parse_whole(S(raw), &r), sizeof raw - 1);
    assert_true(mc_reply_has(&r, 'b'));
    char key[16];
    assert_int_equal(mc_base64_decode(raw + r.key.off, r.key.len, key, sizeof key), 6);
    assert_memory_equal(key, "binary", 6);
}

static void test_me_reply_gives_the_key_and_its_pairs(void **state)
{
    const char raw[] = "ME cnt exp=-1 la=0 cas=8286 fetch=no cls=1 size=64\r\n";
    mc_reply r;
    assert_int_equal(parse_whole(S(raw), &r), sizeof raw - 1);
    assert_int_equal(r.kind, MC_ME);
    assert_slice(raw, r.key, "cnt");
    assert_slice(raw, r.text, "exp=-1 la=0 cas=8286 fetch=no cls=1 size=64");
}

/* ------------------------------------------------------------ classic replies */

static void test_value_items_then_end_parse_one_per_call(void **state)
{
    const char raw[] = "VALUE a 0 1\r\nx\r\nVALUE user:2 42 3 99\r\nabc\r\nEND\r\n";
    mc_reply r;
    size_t at = 0;
    ssize_t rc = parse_whole(raw, sizeof raw - 1, &r);
    assert_int_equal(rc, strlen("VALUE a 0 1\r\nx\r\n"));
    assert_int_equal(r.kind, MC_VALUE);
    assert_slice(raw, r.key, "a");
    assert_slice(raw, r.value, "x");
    assert_int_equal(r.client_flags, 0);
    assert_false(mc_reply_has(&r, 'c'));
    assert_true(mc_reply_has(&r, 'f') && mc_reply_has(&r, 'k'));
    at += (size_t)rc;

    rc = parse_whole(raw + at, sizeof raw - 1 - at, &r);
    assert_int_equal(rc, strlen("VALUE user:2 42 3 99\r\nabc\r\n"));
    assert_slice(raw + at, r.key, "user:2");
    assert_slice(raw + at, r.value, "abc");
    assert_int_equal(r.client_flags, 42);
    assert_true(mc_reply_has(&r, 'c'));
    assert_true(r.cas == 99);
    at += (size_t)rc;

    assert_int_equal(parse_whole(raw + at, sizeof raw - 1 - at, &r), 5);
    assert_int_equal(r.kind, MC_END);
}

static void test_each_classic_word_parses_to_its_kind(void **state)
{
    static const struct {
        const char *raw;
        mc_reply_kind kind;
    } cases[] = {
        {"END\r\n", MC_END},
        {"STORED\r\n", MC_STORED},
        {"NOT_STORED\r\n", MC_NOT_STORED},
        {"EXISTS\r\n", MC_EXISTS},
        {"NOT_FOUND\r\n", MC_NOT_FOUND},
        {"DELETED\r\n", MC_DELETED},
        {"TOUCHED\r\n", MC_TOUCHED},
        {"OK\r\n", MC_OK},
        {"ERROR\r\n", MC_ERROR},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        mc_reply r;
        size_t n = strlen(cases[i].raw);
        assert_int_equal(parse_whole(cases[i].raw, n, &r), n);
        assert_int_equal(r.kind, cases[i].kind);
    }
}

static void test_number_reply_of_incr_parses_with_trailing_spaces(void **state)
{
    mc_reply r;
    assert_int_equal(parse_whole(S("13\r\n"), &r), 4);
    assert_int_equal(r.kind, MC_NUMBER);
    assert_true(r.number == 13);
    assert_int_equal(parse_whole(S("7   \r\n"), &r), 6);
    assert_true(r.number == 7);
    assert_int_equal(parse_whole(S("18446744073709551615\r\n"), &r), 22);
    assert_true(r.number == UINT64_MAX);
    assert_int_equal(parse_whole(S("0\r\n"), &r), 3);
    assert_true(r.number == 0);
}

static void test_version_gives_its_text(void **state)
{
    const char raw[] = "VERSION 1.6.18\r\n";
    mc_reply r;
    assert_int_equal(parse_whole(S(raw), &r), sizeof raw - 1);
    assert_int_equal(r.kind, MC_VERSION);
    assert_slice(raw, r.text, "1.6.18");
}

static void test_error_lines_surface_their_message(void **state)
{
    static const struct {
        const char *raw, *text;
        mc_reply_kind kind;
    } cases[] = {
        {"ERROR\r\n", "", MC_ERROR},
        {"ERROR unknown command\r\n", "unknown command", MC_ERROR},
        {"CLIENT_ERROR bad data chunk\r\n", "bad data chunk", MC_CLIENT_ERROR},
        {"CLIENT_ERROR\r\n", "", MC_CLIENT_ERROR},
        {"SERVER_ERROR out of memory storing object\r\n", "out of memory storing object",
         MC_SERVER_ERROR},
        {"SERVER_ERROR a b c d e f g h i j k l m n o p q r s t u v w x y z 1 2 3\r\n",
         "a b c d e f g h i j k l m n o p q r s t u v w x y z 1 2 3", MC_SERVER_ERROR},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        mc_reply r;
        size_t n = strlen(cases[i].raw);
        assert_int_equal(parse_whole(cases[i].raw, n, &r), n);
        assert_int_equal(r.kind, cases[i].kind);
        assert_slice(cases[i].raw, r.text, cases[i].text);
    }
}

/* ------------------------------------------------------------ streaming */

static const char *const valid_replies[] = {
    "HD\r\n",
    "HD c8283 kfoo O9\r\n",
    "EN O123 knokey\r\n",
    "NF O3\r\n",
    "NS\r\n",
    "EX c1\r\n",
    "MN\r\n",
    "VA 2 f5 t90 c8283 kfoo s2 O7 h0 l0\r\nhi\r\n",
    "VA 0\r\n\r\n",
    "VA 4 t-1\r\n\r\n\r\n\r\n",
    "ME cnt exp=-1 la=0 cas=8286 fetch=no cls=1 size=64\r\n",
    "VALUE a 0 1\r\nx\r\n",
    "VALUE user:2 42 3 99\r\nabc\r\n",
    "END\r\n",
    "STORED\r\n",
    "NOT_STORED\r\n",
    "EXISTS\r\n",
    "NOT_FOUND\r\n",
    "DELETED\r\n",
    "TOUCHED\r\n",
    "OK\r\n",
    "13\r\n",
    "VERSION 1.6.18\r\n",
    "ERROR\r\n",
    "CLIENT_ERROR bad command line format\r\n",
    "SERVER_ERROR out of memory\r\n",
};

static void test_every_reply_split_at_every_byte_needs_more_then_gives_the_same_result(void **state)
{
    for (size_t i = 0; i < ARRAY_LEN(valid_replies); i++) {
        const char *raw = valid_replies[i];
        size_t n = strlen(raw);
        mc_reply whole;
        assert_int_equal(parse_whole(raw, n, &whole), n);
        for (size_t k = 0; k < n; k++) {
            mc_reply r;
            memset(&r, 0x5a, sizeof r);
            assert_int_equal(parse(raw, k, 0, &r, NULL, 0), 0);
            for (size_t j = 0; j < sizeof r; j++) /* untouched while more is needed */
                assert_int_equal(((unsigned char *)&r)[j], 0x5a);
        }
        /* with bytes of the next reply behind it */
        char *more = malloc(n + 6);
        memcpy(more, raw, n);
        memcpy(more + n, "HD\r\nEN", 6);
        mc_reply r;
        assert_int_equal(parse_whole(more, n + 6, &r), n);
        assert_same_reply(&r, &whole);
        free(more);
    }
}

static void test_back_to_back_replies_in_one_buffer_parse_in_order(void **state)
{
    char all[2048];
    size_t n = 0, ends[ARRAY_LEN(valid_replies)];
    for (size_t i = 0; i < ARRAY_LEN(valid_replies); i++) {
        size_t len = strlen(valid_replies[i]);
        memcpy(all + n, valid_replies[i], len);
        n += len;
        ends[i] = n;
    }
    char *b = copy_exact(all, n);
    size_t at = 0;
    for (size_t i = 0; i < ARRAY_LEN(valid_replies); i++) {
        mc_reply r, alone;
        ssize_t rc = mc_parse_reply(b + at, n - at, 0, &r, NULL, 0);
        assert_int_equal(rc, ends[i] - at);
        assert_int_equal(parse_whole(valid_replies[i], strlen(valid_replies[i]), &alone), rc);
        assert_same_reply(&r, &alone);
        at += (size_t)rc;
    }
    assert_int_equal(at, n);
    assert_int_equal(mc_parse_reply(b + at, 0, 0, &(mc_reply){0}, NULL, 0), 0);
    free(b);
}

/* ------------------------------------------------------------ limits */

static void test_value_over_the_limit_is_emsgsize_before_the_data_arrives(void **state)
{
    char why[128];
    mc_reply r;
    assert_int_equal(parse(S("VA 1048577 f0\r\n"), 1048576, &r, why, sizeof why), -EMSGSIZE);
    assert_string_equal(why, "value of 1048577 bytes is over the limit of 1048576");
    assert_int_equal(parse(S("VALUE k 0 11\r\n"), 10, &r, why, sizeof why), -EMSGSIZE);
    /* and every prefix of the line still needs more */
    const char line[] = "VA 1048577 f0\r\n";
    for (size_t k = 0; k < sizeof line - 1; k++)
        assert_int_equal(parse(line, k, 1048576, &r, NULL, 0), 0);
}

static void test_value_at_the_limit_parses(void **state)
{
    mc_reply r;
    assert_int_equal(parse(S("VA 3\r\nabc\r\n"), 3, &r, NULL, 0), 11);
    assert_int_equal(parse(S("VALUE k 0 3\r\nabc\r\n"), 3, &r, NULL, 0), 18);
}

static void test_line_of_8192_bytes_parses_and_one_longer_is_eproto(void **state)
{
    size_t n = MC_LINE_MAX + 2;
    char *line = malloc(n + 1);
    memcpy(line, "CLIENT_ERROR ", 13);
    memset(line + 13, 'x', MC_LINE_MAX - 13);
    memcpy(line + MC_LINE_MAX, "\r\n", 2);
    mc_reply r;
    assert_int_equal(parse(line, n, 0, &r, NULL, 0), (ssize_t)n);
    assert_int_equal(r.text.len, MC_LINE_MAX - 13);

    /* one byte more: an error as soon as the bound passes without a CRLF */
    memset(line + 13, 'x', MC_LINE_MAX + 1 - 13);
    memcpy(line + MC_LINE_MAX + 1, "\r\n", 2);
    char why[128];
    assert_int_equal(parse(line, n + 1, 0, &r, why, sizeof why), -EPROTO);
    assert_non_null(strstr(why, "longer than 8192"));
    for (size_t k = 0; k <= n + 1; k++) {
        ssize_t rc = parse(line, k, 0, &r, NULL, 0);
        assert_true(rc == 0 || rc == -EPROTO);
        assert_int_equal(rc == -EPROTO, k >= MC_LINE_MAX + 2);
    }
    free(line);
}

/* ------------------------------------------------------------ malformed input */

static const struct {
    const char *raw;
    size_t n;
    int rc;
    const char *why; /* a part of the reason */
} malformed[] = {
#define BAD(lit, rc, why)                                                                          \
    {                                                                                              \
        lit, sizeof(lit) - 1, rc, why                                                              \
    }
    BAD("\r\n", -EPROTO, "empty reply line"),
    BAD("   \r\n", -EPROTO, "empty reply line"),
    BAD("HD\n", -EPROTO, "bare LF"),
    BAD("\n", -EPROTO, "bare LF"),
    BAD("HD\x01\r\n", -EPROTO, "control byte"),
    BAD("HD f1\x00\r\n", -EPROTO, "control byte"),
    BAD("HD \x7f\r\n", -EPROTO, "control byte"),
    BAD("HD\rx\r\n", -EPROTO, "control byte"),
    BAD("FOO bar\r\n", -EPROTO, "unknown reply \"FOO\""),
    BAD("hd\r\n", -EPROTO, "unknown reply"),
    BAD("HDX\r\n", -EPROTO, "unknown reply"),
    BAD("ENDX\r\n", -EPROTO, "unknown reply"),
    BAD("END x\r\n", -EPROTO, "END with more after it"),
    BAD("STORED 1\r\n", -EPROTO, "STORED with more after it"),
    BAD("HD 1\r\n", -EPROTO, "does not start with a letter"),
    BAD("HD f\r\n", -EPROTO, "bad flag token \"f\""),
    BAD("HD f12x\r\n", -EPROTO, "bad flag token \"f12x\""),
    BAD("HD f4294967296\r\n", -EPROTO, "bad flag token"),
    BAD("HD c18446744073709551616\r\n", -EPROTO, "bad flag token"),
    BAD("HD t-\r\n", -EPROTO, "bad flag token"),
    BAD("HD t--1\r\n", -EPROTO, "bad flag token"),
    BAD("HD h2\r\n", -EPROTO, "bad flag token"),
    BAD("HD k\r\n", -EPROTO, "bad flag token"),
    BAD("HD Wx\r\n", -EPROTO, "bad flag token"),
    BAD("VA\r\n", -EPROTO, "VA reply without a size"),
    BAD("VA x\r\n", -EPROTO, "VA reply without a size"),
    BAD("VA -1\r\n", -EPROTO, "VA reply without a size"),
    BAD("VA 2 f1 s\xff\r\nhi\r\n", -EPROTO, "bad flag token \"s\\xff\""),
    BAD("VALUE k 1\r\n", -EPROTO, "VALUE line needs"),
    BAD("VALUE k 1 2 3 4\r\n", -EPROTO, "VALUE line needs"),
    BAD("VALUE k x 1\r\nx\r\n", -EPROTO, "bad client flags \"x\""),
    BAD("VALUE k 4294967296 1\r\nx\r\n", -EPROTO, "bad client flags"),
    BAD("VALUE k 0 1x\r\nx\r\n", -EPROTO, "bad length"),
    BAD("VALUE k 0 1 c\r\nx\r\n", -EPROTO, "bad CAS"),
    BAD("12a\r\n", -EPROTO, "bad number reply"),
    BAD("1 2\r\n", -EPROTO, "bad number reply"),
    BAD("18446744073709551616\r\n", -EPROTO, "bad number reply"),
    BAD("ME\r\n", -EPROTO, "ME reply without a key"),
    BAD("HD a b c d e f g h i j k l m n o p q r s t u v w x y\r\n", -EPROTO, "over 24 tokens"),
    BAD("VA 2\r\nhiX\r\n", -EPROTO, "not followed by CRLF but \"X\\x0d\""),
    BAD("VA 2\r\nhi\n\r\n", -EPROTO, "not followed by CRLF"),
    BAD("VA 2\r\nhi\rX", -EPROTO, "not followed by CRLF but \"\\x0dX\""),
    BAD("VALUE k 0 2\r\nabc\r\n", -EPROTO, "not followed by CRLF"),
    BAD("VA 1\r\nx\r\r\n", -EPROTO, "not followed by CRLF"),
#undef BAD
};

static void test_malformed_replies_are_eproto_with_a_reason(void **state)
{
    for (size_t i = 0; i < ARRAY_LEN(malformed); i++) {
        char why[256] = "";
        mc_reply r;
        memset(&r, 0x5a, sizeof r);
        ssize_t rc = parse(malformed[i].raw, malformed[i].n, 0, &r, why, sizeof why);
        if (rc != malformed[i].rc || !strstr(why, malformed[i].why))
            fail_msg("case %zu: rc %zd (want %d), why \"%s\" (want \"%s\")", i, rc, malformed[i].rc,
                     why, malformed[i].why);
        for (size_t j = 0; j < sizeof r; j++) /* untouched on error */
            assert_int_equal(((unsigned char *)&r)[j], 0x5a);
    }
}

static void test_every_prefix_of_a_malformed_reply_gives_0_or_the_same_error(void **state)
{
    for (size_t i = 0; i < ARRAY_LEN(malformed); i++) {
        for (size_t k = 0; k <= malformed[i].n; k++) {
            mc_reply r;
            ssize_t rc = parse(malformed[i].raw, k, 0, &r, NULL, 0);
            if (rc != 0 && rc != malformed[i].rc)
                fail_msg("case %zu, prefix of %zu bytes: %zd", i, k, rc);
        }
    }
}

static void test_data_block_error_is_seen_as_soon_as_its_first_byte_is_wrong(void **state)
{
    mc_reply r;
    assert_int_equal(parse(S("VA 2\r\nhiX"), 0, &r, NULL, 0), -EPROTO);
    assert_int_equal(parse(S("VA 2\r\nhi\r"), 0, &r, NULL, 0), 0);
    assert_int_equal(parse(S("VA 2\r\nhi"), 0, &r, NULL, 0), 0);
}

static void test_reason_escapes_bytes_and_cuts_long_quotes(void **state)
{
    char why[256];
    mc_reply r;
    assert_int_equal(parse(S("\xff\"\\ \r\n"), 0, &r, why, sizeof why), -EPROTO);
    assert_string_equal(why, "unknown reply \"\\xff\\x22\\x5c\"");
    char line[100];
    memset(line, 'Z', 60);
    memcpy(line + 60, "\r\n", 2);
    assert_int_equal(parse(line, 62, 0, &r, why, sizeof why), -EPROTO);
    assert_non_null(strstr(why, "ZZZ...\""));
    /* a small buffer is cut and terminated; NULL is fine */
    char small[8];
    assert_int_equal(parse(S("FOO\r\n"), 0, &r, small, sizeof small), -EPROTO);
    assert_int_equal(strlen(small), 7);
    assert_int_equal(parse(S("FOO\r\n"), 0, &r, NULL, 0), -EPROTO);
}

/* ------------------------------------------------------------ base64 */

static void test_base64_round_trips_every_length_and_refuses_bad_text(void **state)
{
    unsigned char in[64], back[64];
    char text[100];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof in; n++) {
        size_t len = mc_base64_encode(in, n, text);
        assert_int_equal(len, 4 * ((n + 2) / 3));
        assert_int_equal(mc_base64_decode(text, len, back, sizeof back), n);
        assert_memory_equal(back, in, n);
        if (n)
            assert_int_equal(mc_base64_decode(text, len, back, n - 1), -EINVAL);
    }
    static const char *const bad[] = {"Y", "YW", "YWJ", "Y*==", "=AAA", "YQ=a", "YQ==YQ=="};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_int_equal(mc_base64_decode(bad[i], strlen(bad[i]), back, sizeof back), -EINVAL);
}

int main(void)
{
    memset(key250, 'k', 250);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_of_1_to_250_printable_bytes_is_valid),
        cmocka_unit_test(test_key_with_bytes_above_0x7f_is_valid),
        cmocka_unit_test(test_empty_key_and_key_of_251_bytes_are_invalid),
        cmocka_unit_test(test_key_with_a_space_control_byte_or_del_is_invalid),
        cmocka_unit_test(test_every_encoder_refuses_an_invalid_key_and_appends_nothing),
        cmocka_unit_test(test_mg_without_flags_is_the_key_alone),
        cmocka_unit_test(test_mg_writes_every_flag_in_a_fixed_order),
        cmocka_unit_test(test_mg_touch_ttl_of_0_and_negative_ttls_are_sent),
        cmocka_unit_test(test_ms_writes_the_length_flags_and_data_block),
        cmocka_unit_test(test_ms_with_an_empty_value_sends_an_empty_data_block),
        cmocka_unit_test(test_ms_modes_are_sent_as_m_and_a_letter_and_set_as_nothing),
        cmocka_unit_test(test_ms_negative_ttl_and_largest_numbers_are_sent_in_decimal),
        cmocka_unit_test(test_md_writes_its_flags),
        cmocka_unit_test(test_ma_sends_no_delta_for_1_and_d_for_any_other),
        cmocka_unit_test(test_ma_writes_decrement_vivify_initial_and_returned_flags),
        cmocka_unit_test(test_mn_and_version_are_fixed_lines),
        cmocka_unit_test(test_binary_key_is_sent_as_base64_with_the_b_flag),
        cmocka_unit_test(test_binary_key_of_186_bytes_fits_and_187_is_refused),
        cmocka_unit_test(test_opaque_over_32_bytes_or_not_key_like_is_refused),
        cmocka_unit_test(test_longest_meta_lines_are_encoded_whole),
        cmocka_unit_test(test_get_and_gets_write_every_key),
        cmocka_unit_test(test_store_commands_write_flags_exptime_bytes_and_data),
        cmocka_unit_test(test_delete_incr_decr_touch_write_their_lines),
        cmocka_unit_test(test_encoders_append_after_what_the_buffer_holds),
        cmocka_unit_test(test_encoder_past_the_buffer_limit_is_enomem_and_appends_nothing),
        cmocka_unit_test(test_each_meta_code_parses_to_its_kind),
        cmocka_unit_test(test_returned_flags_fill_their_fields),
        cmocka_unit_test(test_va_gives_the_value_as_a_slice_of_the_input),
        cmocka_unit_test(test_va_value_may_be_empty_or_hold_crlf),
        cmocka_unit_test(test_ttl_of_minus_1_means_never_expires),
        cmocka_unit_test(test_miss_with_opaque_and_key_carries_them),
        cmocka_unit_test(test_unknown_returned_flag_is_recorded_and_its_token_ignored),
        cmocka_unit_test(test_base64_key_comes_back_as_base64_with_b),
        cmocka_unit_test(test_me_reply_gives_the_key_and_its_pairs),
        cmocka_unit_test(test_value_items_then_end_parse_one_per_call),
        cmocka_unit_test(test_each_classic_word_parses_to_its_kind),
        cmocka_unit_test(test_number_reply_of_incr_parses_with_trailing_spaces),
        cmocka_unit_test(test_version_gives_its_text),
        cmocka_unit_test(test_error_lines_surface_their_message),
        cmocka_unit_test(
            test_every_reply_split_at_every_byte_needs_more_then_gives_the_same_result),
        cmocka_unit_test(test_back_to_back_replies_in_one_buffer_parse_in_order),
        cmocka_unit_test(test_value_over_the_limit_is_emsgsize_before_the_data_arrives),
        cmocka_unit_test(test_value_at_the_limit_parses),
        cmocka_unit_test(test_line_of_8192_bytes_parses_and_one_longer_is_eproto),
        cmocka_unit_test(test_malformed_replies_are_eproto_with_a_reason),
        cmocka_unit_test(test_every_prefix_of_a_malformed_reply_gives_0_or_the_same_error),
        cmocka_unit_test(test_data_block_error_is_seen_as_soon_as_its_first_byte_is_wrong),
        cmocka_unit_test(test_reason_escapes_bytes_and_cuts_long_quotes),
        cmocka_unit_test(test_base64_round_trips_every_length_and_refuses_bad_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
