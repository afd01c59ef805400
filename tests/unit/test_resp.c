/*
 * The RESP codec (src/redis/resp.c) as a specification: every RESP2 and
 * RESP3 type with its fields, nested aggregates, attributes dropped at
 * every level, every reply fed split at every byte and as growing prefixes
 * to one scanner, replies back to back, the buffer moving between reads,
 * every error with its errno and message (and every prefix of it giving 0
 * or the same error), the limits (depth, max_bulk, element counts, 64-bit
 * integers), the fast-path description of the top level, the cost of a
 * reply arriving in small pieces, and the command encoder.
 *
 * Inputs are scanned from exactly sized heap copies, and trees are built
 * into exactly sized node arrays, so under ASan a read or write one past
 * the end is caught.
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
#include <time.h>

#include "redis/resp.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define STR(s)       s, sizeof(s) - 1

/* ------------------------------------------------------------ helpers */

static char *copy_exact(const char *p, size_t n)
{
    char *b = malloc(n ? n : 1);
    assert_non_null(b);
    if (n)
        memcpy(b, p, n);
    return b;
}

/* resp_scan on an exact copy of p[0..n) */
static ssize_t scan(resp_scanner *s, const char *p, size_t n)
{
    char *b = copy_exact(p, n);
    ssize_t rc = resp_scan(s, b, n);
    free(b);
    return rc;
}

/* A fresh scanner (max_bulk 0: the default) on an exact copy. */
static ssize_t scan_fresh(resp_scanner *s, const char *p, size_t n, size_t max_bulk)
{
    resp_scanner_init(s, max_bulk);
    return scan(s, p, n);
}

/* What the client does with a complete reply p[0..len): one allocation of
 * [nodes][bytes], the bytes copied, the tree built. The root is the
 * returned pointer; free() it. */
static wv_redis_reply *build(const char *p, size_t len, size_t nodes)
{
    wv_redis_reply *r = malloc(nodes * sizeof *r + len);
    assert_non_null(r);
    char *bytes = (char *)(r + nodes);
    memcpy(bytes, p, len);
    assert_int_equal(resp_build(bytes, len, r, nodes), 0);
    return r;
}

/* Text appended to a fixed buffer. */
typedef struct text {
    char s[8192];
    size_t n;
} text;

static void put(text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(t->s + t->n, sizeof t->s - t->n, fmt, ap);
    va_end(ap);
    assert_true(k >= 0 && (size_t)k < sizeof t->s - t->n);
    t->n += (size_t)k;
}

static void put_escaped(text *t, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\')
            put(t, "\\%c", c);
        else if (c < 0x20 || c >= 0x7f)
            put(t, "\\x%02x", c);
        else
            put(t, "%c", c);
    }
}

static bool text_type(wv_redis_type type)
{
    return type == WV_REDIS_STATUS || type == WV_REDIS_ERROR || type == WV_REDIS_STRING ||
           type == WV_REDIS_DOUBLE || type == WV_REDIS_BIGNUM || type == WV_REDIS_VERBATIM;
}

/*
 * A tree as text, checking what every node promises on the way: text is
 * NUL-terminated at len, aggregates have their elements, a map an even
 * count. nil, +status, -error, :int, "string", ,double=value, #t, (bignum,
 * =fmt:"text", [array], {map k v}, ~[set], >[push].
 */
static void dump(text *t, const wv_redis_reply *r, size_t *nodes)
{
    (*nodes)++;
    if (text_type(r->type)) {
        assert_non_null(r->str);
        assert_int_equal(r->str[r->len], '\0');
    }
    switch (r->type) {
    case WV_REDIS_NIL:
        put(t, "nil");
        return;
    case WV_REDIS_STATUS:
        put(t, "+");
        put_escaped(t, r->str, r->len);
        return;
    case WV_REDIS_ERROR:
        put(t, "-");
        put_escaped(t, r->str, r->len);
        return;
    case WV_REDIS_INT:
        put(t, ":%lld", r->integer);
        return;
    case WV_REDIS_STRING:
        put(t, "\"");
        put_escaped(t, r->str, r->len);
        put(t, "\"");
        return;
    case WV_REDIS_DOUBLE:
        put(t, ",");
        put_escaped(t, r->str, r->len);
        put(t, "=%g", r->dbl);
        return;
    case WV_REDIS_BOOL:
        assert_true(r->integer == 0 || r->integer == 1);
        put(t, r->integer ? "#t" : "#f");
        return;
    case WV_REDIS_BIGNUM:
        put(t, "(");
        put_escaped(t, r->str, r->len);
        return;
    case WV_REDIS_VERBATIM:
        assert_int_equal(strlen(r->vfmt), 3);
        put(t, "=%s:\"", r->vfmt);
        put_escaped(t, r->str, r->len);
        put(t, "\"");
        return;
    case WV_REDIS_ARRAY:
    case WV_REDIS_MAP:
    case WV_REDIS_SET:
    case WV_REDIS_PUSH:
        break;
    }
    static const char *open[] = {[WV_REDIS_ARRAY] = "[",
                                 [WV_REDIS_MAP] = "{",
                                 [WV_REDIS_SET] = "~[",
                                 [WV_REDIS_PUSH] = ">["};
    put(t, "%s", open[r->type]);
    if (r->type == WV_REDIS_MAP)
        assert_int_equal(r->len % 2, 0);
    if (r->len)
        assert_non_null(r->elem);
    for (size_t i = 0; i < r->len; i++) {
        if (i)
            put(t, " ");
        dump(t, &r->elem[i], nodes);
    }
    put(t, r->type == WV_REDIS_MAP ? "}" : "]");
}

/* The tree of p[0..len) as text, checking that it has exactly `nodes`. */
static void dump_reply(text *t, const char *p, size_t len, size_t nodes)
{
    wv_redis_reply *r = build(p, len, nodes);
    size_t seen = 0;
    t->n = 0;
    t->s[0] = '\0';
    dump(t, r, &seen);
    assert_int_equal(seen, nodes);
    free(r);
}

/* p[0..n) is exactly one reply whose tree reads `expected`. */
static void assert_reply(const char *p, size_t n, const char *expected)
{
    resp_scanner s;
    ssize_t rc = scan_fresh(&s, p, n, 0);
    if (rc < 0)
        fail_msg("%s", s.err);
    assert_int_equal(rc, n);
    assert_true(s.nodes >= 1 && s.nodes <= n / 3);
    text t;
    dump_reply(&t, p, n, s.nodes);
    assert_string_equal(t.s, expected);
}

/* p[0..n) fails with rc and exactly the message msg. */
static void assert_scan_error(const char *p, size_t n, size_t max_bulk, int rc, const char *msg)
{
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, p, n, max_bulk), rc);
    assert_string_equal(s.err, msg);
}

/* Every reply the tests know, each complete. */
static const struct {
    const char *bytes;
    size_t n;
    const char *tree;
} replies[] = {
    {STR("+OK\r\n"), "+OK"},
    {STR("+\r\n"), "+"},
    {STR("-ERR unknown command 'FOO'\r\n"), "-ERR unknown command 'FOO'"},
    {STR(":0\r\n"), ":0"},
    {STR(":-42\r\n"), ":-42"},
    {STR(":9223372036854775807\r\n"), ":9223372036854775807"},
    {STR(":-9223372036854775808\r\n"), ":-9223372036854775808"},
    {STR("$5\r\nhello\r\n"), "\"hello\""},
    {STR("$0\r\n\r\n"), "\"\""},
    {STR("$4\r\na\r\nb\r\n"), "\"a\\x0d\\x0ab\""},
    {STR("$3\r\na\0b\r\n"), "\"a\\x00b\""},
    {STR("$-1\r\n"), "nil"},
    {STR("*-1\r\n"), "nil"},
    {STR("*0\r\n"), "[]"},
    {STR("*3\r\n:1\r\n$3\r\nfoo\r\n$-1\r\n"), "[:1 \"foo\" nil]"},
    {STR("*2\r\n*2\r\n:1\r\n:2\r\n*1\r\n+x\r\n"), "[[:1 :2] [+x]]"},
    {STR("_\r\n"), "nil"},
    {STR(",1.5\r\n"), ",1.5=1.5"},
    {STR(",-0.25\r\n"), ",-0.25=-0.25"},
    {STR(",3\r\n"), ",3=3"},
    {STR(",1e+300\r\n"), ",1e+300=1e+300"},
    {STR(",2.5E-3\r\n"), ",2.5E-3=0.0025"},
    {STR(",inf\r\n"), ",inf=inf"},
    {STR(",-inf\r\n"), ",-inf=-inf"},
    {STR(",nan\r\n"), ",nan=nan"},
    {STR("#t\r\n"), "#t"},
    {STR("#f\r\n"), "#f"},
    {STR("!22\r\nSYNTAX invalid\r\nsyntax\r\n"), "-SYNTAX invalid\\x0d\\x0asyntax"},
    {STR("=15\r\ntxt:Some string\r\n"), "=txt:\"Some string\""},
    {STR("=4\r\nmkd:\r\n"), "=mkd:\"\""},
    {STR("(3492890328409238509324850943850943825024385\r\n"),
     "(3492890328409238509324850943850943825024385"},
    {STR("(-12\r\n"), "(-12"},
    {STR("%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n"), "{+first :1 +second :2}"},
    {STR("%0\r\n"), "{}"},
    {STR("~3\r\n+a\r\n+b\r\n+c\r\n"), "~[+a +b +c]"},
    {STR(">3\r\n+message\r\n+chan\r\n$5\r\nhello\r\n"), ">[+message +chan \"hello\"]"},
    {STR("%2\r\n+a\r\n*2\r\n:1\r\n:2\r\n+b\r\n*0\r\n"), "{+a [:1 :2] +b []}"},
    {STR("|1\r\n+ttl\r\n:3600\r\n$3\r\nfoo\r\n"), "\"foo\""},
    {STR("*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n"), "[:1 :2]"},
    {STR("|2\r\n+a\r\n*2\r\n:1\r\n|1\r\n+x\r\n+y\r\n:2\r\n+b\r\n%1\r\n+k\r\n+v\r\n+OK\r\n"), "+OK"},
    {STR("|0\r\n:7\r\n"), ":7"},
    {STR("*1\r\n|1\r\n+a\r\n+b\r\n|1\r\n+c\r\n+d\r\n*0\r\n"), "[[]]"},
};

/* ------------------------------------------------------------ RESP2 types */

static void test_resp_simple_string_is_a_status(void **state)
{
    (void)state;
    assert_reply(STR("+OK\r\n"), "+OK");
    assert_reply(STR("+\r\n"), "+");
}

static void test_resp_simple_error_is_an_error(void **state)
{
    (void)state;
    assert_reply(STR("-WRONGTYPE Operation against a key\r\n"),
                 "-WRONGTYPE Operation against a key");
}

static void test_resp_integer_is_an_int(void **state)
{
    (void)state;
    assert_reply(STR(":1000\r\n"), ":1000");
    assert_reply(STR(":-1\r\n"), ":-1");
    assert_reply(STR(":0\r\n"), ":0");
}

static void test_resp_bulk_string_is_a_string_with_its_length(void **state)
{
    (void)state;
    const char in[] = "$5\r\nhello\r\n";
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR(in), 0), sizeof in - 1);
    wv_redis_reply *r = build(STR(in), s.nodes);
    assert_int_equal(r->type, WV_REDIS_STRING);
    assert_int_equal(r->len, 5);
    assert_memory_equal(r->str, "hello", 6);
    assert_null(r->elem);
    free(r);
}

static void test_resp_empty_bulk_string_is_an_empty_string_not_nil(void **state)
{
    (void)state;
    assert_reply(STR("$0\r\n\r\n"), "\"\"");
}

static void test_resp_null_bulk_and_null_array_are_nil(void **state)
{
    (void)state;
    assert_reply(STR("$-1\r\n"), "nil");
    assert_reply(STR("*-1\r\n"), "nil");
    assert_reply(STR("*2\r\n$-1\r\n*-1\r\n"), "[nil nil]");
}

static void test_resp_bulk_string_keeps_nul_bytes_and_crlf_inside(void **state)
{
    (void)state;
    const char in[] = "$7\r\n\0a\r\n\0b\0\r\n";
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, in, sizeof in - 1, 0), sizeof in - 1);
    wv_redis_reply *r = build(in, sizeof in - 1, s.nodes);
    assert_int_equal(r->type, WV_REDIS_STRING);
    assert_int_equal(r->len, 7);
    assert_memory_equal(r->str, "\0a\r\n\0b\0\0", 8);
    free(r);
}

static void test_resp_array_keeps_its_elements_in_order(void **state)
{
    (void)state;
    assert_reply(STR("*4\r\n:1\r\n$3\r\nfoo\r\n+bar\r\n-baz\r\n"), "[:1 \"foo\" +bar -baz]");
}

/* ------------------------------------------------------------ RESP3 types */

static void test_resp3_null_is_nil(void **state)
{
    (void)state;
    assert_reply(STR("_\r\n"), "nil");
}

static void test_resp3_double_has_its_value_and_its_text(void **state)
{
    (void)state;
    const char in[] = ",1.23\r\n";
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR(in), 0), sizeof in - 1);
    wv_redis_reply *r = build(STR(in), 1);
    assert_int_equal(r->type, WV_REDIS_DOUBLE);
    assert_true(r->dbl == 1.23);
    assert_string_equal(r->str, "1.23");
    assert_int_equal(r->len, 4);
    free(r);
    assert_reply(STR(",10\r\n"), ",10=10");
    assert_reply(STR(",-1.5e3\r\n"), ",-1.5e3=-1500");
    assert_reply(STR(",+2.0E+2\r\n"), ",+2.0E+2=200");
}

static void test_resp3_double_accepts_inf_minus_inf_and_nan(void **state)
{
    (void)state;
    assert_reply(STR(",inf\r\n"), ",inf=inf");
    assert_reply(STR(",-inf\r\n"), ",-inf=-inf");
    const char in[] = ",nan\r\n";
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR(in), 0), sizeof in - 1);
    wv_redis_reply *r = build(STR(in), 1);
    assert_true(r->dbl != r->dbl);
    free(r);
}

static void test_resp3_malformed_doubles_are_protocol_errors(void **state)
{
    (void)state;
    static const char *bad[] = {",\r\n",         ",1.\r\n",  ",.5\r\n",  ",1e\r\n",
                                ",1.5.2\r\n",    ",1x\r\n",  ",--1\r\n", ",INF\r\n",
                                ",infinity\r\n", ",1e+\r\n", ", 1\r\n",  ",0x10\r\n"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_scan_error(bad[i], strlen(bad[i]), 0, -EPROTO,
                          "protocol error: malformed double at offset 0");
}

static void test_resp3_booleans_are_1_and_0(void **state)
{
    (void)state;
    const char in[] = "*2\r\n#t\r\n#f\r\n";
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR(in), 0), sizeof in - 1);
    wv_redis_reply *r = build(STR(in), 3);
    assert_int_equal(r->elem[0].type, WV_REDIS_BOOL);
    assert_int_equal(r->elem[0].integer, 1);
    assert_int_equal(r->elem[1].type, WV_REDIS_BOOL);
    assert_int_equal(r->elem[1].integer, 0);
    free(r);
}

static void test_resp3_boolean_other_than_t_or_f_is_a_protocol_error(void **state)
{
    (void)state;
    assert_scan_error(STR("#x\r\n"), 0, -EPROTO,
                      "protocol error: a boolean is #t or #f, got byte 0x78 at offset 1");
    assert_scan_error(STR("#tt\r\n"), 0, -EPROTO,
                      "protocol error: expected CRLF, got byte 0x74 at offset 2");
}

static void test_resp3_blob_error_is_a_binary_safe_error(void **state)
{
    (void)state;
    assert_reply(STR("!22\r\nSYNTAX invalid\r\nsyntax\r\n"), "-SYNTAX invalid\\x0d\\x0asyntax");
    assert_reply(STR("!0\r\n\r\n"), "-");
}

static void test_resp3_verbatim_string_splits_its_format_from_its_text(void **state)
{
    (void)state;
    const char in[] = "=15\r\ntxt:Some string\r\n";
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR(in), 0), sizeof in - 1);
    wv_redis_reply *r = build(STR(in), 1);
    assert_int_equal(r->type, WV_REDIS_VERBATIM);
    assert_string_equal(r->vfmt, "txt");
    assert_int_equal(r->len, 11);
    assert_string_equal(r->str, "Some string");
    free(r);
}

static void test_resp3_verbatim_string_without_its_format_is_a_protocol_error(void **state)
{
    (void)state;
    assert_scan_error(
        STR("=3\r\ntxt\r\n"), 0, -EPROTO,
        "protocol error: verbatim string of 3 bytes has no room for its format at offset 0");
    assert_scan_error(STR("=5\r\ntxt;x\r\n"), 0, -EPROTO,
                      "protocol error: expected ':' after a verbatim string's format, got byte "
                      "0x3b at offset 7");
}

static void test_resp3_big_number_keeps_its_digits(void **state)
{
    (void)state;
    assert_reply(STR("(3492890328409238509324850943850943825024385\r\n"),
                 "(3492890328409238509324850943850943825024385");
    assert_reply(STR("(-3492890328409238509324850943850943825024385\r\n"),
                 "(-3492890328409238509324850943850943825024385");
}

static void test_resp3_malformed_big_numbers_are_protocol_errors(void **state)
{
    (void)state;
    static const char *bad[] = {"(\r\n", "(-\r\n", "(12a\r\n", "(+1\r\n", "(1.5\r\n"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_scan_error(bad[i], strlen(bad[i]), 0, -EPROTO,
                          "protocol error: malformed big number at offset 0");
}

static void test_resp3_map_alternates_keys_and_values(void **state)
{
    (void)state;
    const char in[] = "%2\r\n+first\r\n:1\r\n+second\r\n:2\r\n";
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR(in), 0), sizeof in - 1);
    assert_int_equal(s.nodes, 5);
    wv_redis_reply *r = build(STR(in), 5);
    assert_int_equal(r->type, WV_REDIS_MAP);
    assert_int_equal(r->len, 4);
    assert_string_equal(r->elem[0].str, "first");
    assert_int_equal(r->elem[1].integer, 1);
    assert_string_equal(r->elem[2].str, "second");
    assert_int_equal(r->elem[3].integer, 2);
    free(r);
}

static void test_resp3_set_and_push_are_their_own_types(void **state)
{
    (void)state;
    assert_reply(STR("~2\r\n+a\r\n:1\r\n"), "~[+a :1]");
    assert_reply(STR(">2\r\n+invalidate\r\n*1\r\n$3\r\nkey\r\n"), ">[+invalidate [\"key\"]]");
}

/* ------------------------------------------------------------ nesting */

static void test_resp_map_of_arrays_lays_out_each_aggregate_contiguously(void **state)
{
    (void)state;
    const char in[] = "%2\r\n+a\r\n*2\r\n:1\r\n:2\r\n+b\r\n*3\r\n:3\r\n:4\r\n:5\r\n";
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR(in), 0), sizeof in - 1);
    assert_int_equal(s.nodes, 10);
    wv_redis_reply *r = build(STR(in), 10);
    assert_ptr_equal(r->elem, r + 1); /* the map's 4 elements right after the root */
    assert_ptr_equal(r->elem[1].elem, r + 5);
    assert_ptr_equal(r->elem[3].elem, r + 7);
    assert_int_equal(r->elem[3].elem[2].integer, 5);
    free(r);
}

static void test_resp_empty_aggregates_have_no_elements(void **state)
{
    (void)state;
    static const char *in[] = {"*0\r\n", "%0\r\n", "~0\r\n", ">0\r\n"};
    static const wv_redis_type types[] = {WV_REDIS_ARRAY, WV_REDIS_MAP, WV_REDIS_SET,
                                          WV_REDIS_PUSH};
    for (size_t i = 0; i < ARRAY_LEN(in); i++) {
        resp_scanner s;
        assert_int_equal(scan_fresh(&s, in[i], 4, 0), 4);
        assert_int_equal(s.nodes, 1);
        wv_redis_reply *r = build(in[i], 4, 1);
        assert_int_equal(r->type, types[i]);
        assert_int_equal(r->len, 0);
        assert_null(r->elem);
        free(r);
    }
    assert_reply(STR("*3\r\n*0\r\n%0\r\n*1\r\n~0\r\n"), "[[] {} [~[]]]");
}

static void test_resp_nesting_64_deep_parses_and_65_is_a_protocol_error(void **state)
{
    (void)state;
    char in[65 * 4 + 5];
    size_t n = 0;
    for (int d = 0; d < 64; d++, n += 4)
        memcpy(in + n, "*1\r\n", 4);
    memcpy(in + n, ":1\r\n", 4);
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, in, n + 4, 0), n + 4);
    assert_int_equal(s.nodes, 65);
    wv_redis_reply *r = build(in, n + 4, 65);
    const wv_redis_reply *leaf = r;
    for (int d = 0; d < 64; d++)
        leaf = leaf->elem;
    assert_int_equal(leaf->type, WV_REDIS_INT);
    free(r);

    memcpy(in + n, "*1\r\n:1\r\n", 8);
    assert_scan_error(in, n + 8, 0, -EPROTO,
                      "protocol error: aggregates nested deeper than 64 at offset 256");
    /* attributes count as nesting too */
    memcpy(in + n, "|1\r\n", 4);
    assert_scan_error(in, n + 4, 0, -EPROTO,
                      "protocol error: aggregates nested deeper than 64 at offset 256");
}

/* ------------------------------------------------------------ attributes */

static void test_resp3_attribute_before_the_reply_is_dropped(void **state)
{
    (void)state;
    const char in[] = "|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n"
                      "*2\r\n:2039123\r\n:9543892\r\n";
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR(in), 0), sizeof in - 1);
    assert_int_equal(s.nodes, 3);
    assert_int_equal(s.type, WV_REDIS_ARRAY);
    assert_reply(STR(in), "[:2039123 :9543892]");
}

static void test_resp3_attribute_inside_an_array_is_not_an_element(void **state)
{
    (void)state;
    assert_reply(STR("*2\r\n:1\r\n|1\r\n+ttl\r\n:3600\r\n:2\r\n"), "[:1 :2]");
    assert_reply(STR("*1\r\n|1\r\n+a\r\n+b\r\n|1\r\n+c\r\n+d\r\n*0\r\n"), "[[]]");
}

static void test_resp3_attribute_with_aggregates_and_attributes_inside_is_dropped(void **state)
{
    (void)state;
    const char in[] =
        "|2\r\n+a\r\n*2\r\n:1\r\n|1\r\n+x\r\n+y\r\n:2\r\n+b\r\n%1\r\n+k\r\n*-1\r\n+OK\r\n";
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR(in), 0), sizeof in - 1);
    assert_int_equal(s.nodes, 1);
    assert_int_equal(s.type, WV_REDIS_STATUS);
    assert_reply(STR(in), "+OK");
}

static void test_resp3_attribute_alone_waits_for_the_reply_it_annotates(void **state)
{
    (void)state;
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR("|1\r\n+a\r\n+b\r\n"), 0), 0);
    assert_int_equal(scan_fresh(&s, STR("*1\r\n|1\r\n+a\r\n+b\r\n"), 0), 0);
    assert_int_equal(scan_fresh(&s, STR("|0\r\n"), 0), 0);
}

/* ------------------------------------------------------------ splitting */

/* p[0..n) as growing prefixes to one scanner: 0 until the last byte, then
 * the whole reply with the same tree; and cut in two at every byte. */
static void check_every_split(const char *p, size_t n, const char *tree)
{
    resp_scanner s;
    resp_scanner_init(&s, 0);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(scan(&s, p, k), 0);
    assert_int_equal(scan(&s, p, n), n);
    text t;
    dump_reply(&t, p, n, s.nodes);
    assert_string_equal(t.s, tree);

    for (size_t k = 0; k < n; k++) {
        resp_scanner_init(&s, 0);
        assert_int_equal(scan(&s, p, k), 0);
        assert_int_equal(scan(&s, p, n), n);
        dump_reply(&t, p, n, s.nodes);
        assert_string_equal(t.s, tree);
    }
}

static void test_resp_every_reply_split_at_every_byte_gives_the_same_tree(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(replies); i++)
        check_every_split(replies[i].bytes, replies[i].n, replies[i].tree);
}

static void test_resp_bulk_split_at_every_byte_gives_the_same_reply(void **state)
{
    (void)state;
    const char in[] = "$26\r\nabcdefghijklmnopqrstuvwxyz\r\n";
    resp_scanner s;
    for (size_t k = 0; k < sizeof in - 1; k++) {
        resp_scanner_init(&s, 0);
        assert_int_equal(scan(&s, in, k), 0);
        assert_int_equal(scan(&s, STR(in)), sizeof in - 1);
        assert_int_equal(s.type, WV_REDIS_STRING);
        assert_int_equal(s.str_off, 5);
        assert_int_equal(s.str_len, 26);
    }
}

static void test_resp_every_reply_is_the_same_with_bytes_after_it(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(replies); i++) {
        size_t n = replies[i].n;
        char *p = malloc(n + 6);
        assert_non_null(p);
        memcpy(p, replies[i].bytes, n);
        memcpy(p + n, "?junk?", 6);
        resp_scanner s;
        assert_int_equal(scan_fresh(&s, p, n + 6, 0), n);
        free(p);
    }
}

static void test_resp_replies_back_to_back_come_out_one_at_a_time(void **state)
{
    (void)state;
    /* every known reply, concatenated, scanned as a connection would */
    char all[4096];
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_LEN(replies); i++) {
        memcpy(all + n, replies[i].bytes, replies[i].n);
        n += replies[i].n;
    }
    resp_scanner s;
    resp_scanner_init(&s, 0);
    size_t at = 0;
    for (size_t i = 0; i < ARRAY_LEN(replies); i++) {
        ssize_t rc = scan(&s, all + at, n - at);
        assert_int_equal(rc, replies[i].n);
        text t;
        dump_reply(&t, all + at, (size_t)rc, s.nodes);
        assert_string_equal(t.s, replies[i].tree);
        at += (size_t)rc;
    }
    assert_int_equal(at, n);
    assert_int_equal(scan(&s, all + at, 0), 0);
}

static void test_resp_stream_read_in_pieces_of_every_size_gives_the_same_replies(void **state)
{
    (void)state;
    char all[4096];
    size_t n = 0;
    for (size_t i = 0; i < ARRAY_LEN(replies); i++) {
        memcpy(all + n, replies[i].bytes, replies[i].n);
        n += replies[i].n;
    }
    for (size_t piece = 1; piece <= 64; piece++) {
        /* in[start..end): unconsumed bytes; reads add `piece` bytes */
        resp_scanner s;
        resp_scanner_init(&s, 0);
        size_t start = 0, end = 0, got = 0;
        while (got < ARRAY_LEN(replies)) {
            ssize_t rc = scan(&s, all + start, end - start);
            assert_true(rc >= 0);
            if (rc == 0) {
                assert_true(end < n);
                end = end + piece < n ? end + piece : n;
                continue;
            }
            assert_int_equal(rc, replies[got].n);
            text t;
            dump_reply(&t, all + start, (size_t)rc, s.nodes);
            assert_string_equal(t.s, replies[got].tree);
            start += (size_t)rc;
            got++;
        }
        assert_int_equal(start, n);
    }
}

static void test_resp_scan_continues_after_the_buffer_moves(void **state)
{
    (void)state;
    const char in[] = "*3\r\n$5\r\nhello\r\n+a long status line\r\n:12345\r\n";
    size_t n = sizeof in - 1;
    for (size_t k1 = 1; k1 < n; k1++) {
        for (size_t k2 = k1; k2 < n; k2 += 3) {
            resp_scanner s;
            resp_scanner_init(&s, 0);
            /* a buffer that is moved (malloc + copy + free) between reads,
             * so a pointer kept from an earlier call would be caught by ASan */
            char *buf = copy_exact(in, k1);
            assert_int_equal(resp_scan(&s, buf, k1), 0);
            char *moved = malloc(k2);
            assert_non_null(moved);
            memcpy(moved, in, k2);
            free(buf);
            assert_int_equal(resp_scan(&s, moved, k2), 0);
            buf = copy_exact(in, n);
            free(moved);
            assert_int_equal(resp_scan(&s, buf, n), n);
            free(buf);
            assert_int_equal(s.nodes, 4);
        }
    }
}

/* ------------------------------------------------------------ linear cost */

static double cpu_seconds(void)
{
    return (double)clock() / CLOCKS_PER_SEC;
}

/* Feed in[0..n) to one scanner `piece` bytes at a time, from one buffer
 * that grows (no copies: the test must not be quadratic itself). */
static void feed_in_pieces(const char *in, size_t n, size_t piece, size_t nodes)
{
    resp_scanner s;
    resp_scanner_init(&s, 0);
    size_t k = 0;
    ssize_t rc = 0;
    while (rc == 0 && k < n) {
        k = k + piece < n ? k + piece : n;
        rc = resp_scan(&s, in, k);
    }
    assert_int_equal(rc, n);
    assert_int_equal(k, n);
    assert_int_equal(s.nodes, nodes);
}

static void test_resp_1mb_bulk_in_small_pieces_costs_linear_time(void **state)
{
    (void)state;
    size_t len = 1 << 20, n = len + 13;
    char *in = malloc(n);
    assert_non_null(in);
    int h = snprintf(in, 16, "$%zu\r\n", len);
    memset(in + h, 'x', len);
    memcpy(in + h + len, "\r\n", 2);
    n = (size_t)h + len + 2;
    double t = cpu_seconds();
    feed_in_pieces(in, n, 4096, 1);
    feed_in_pieces(in, n, 1, 1); /* a million calls */
    assert_true(cpu_seconds() - t < 2.0);
    free(in);
}

static void test_resp_1mb_status_line_in_small_pieces_costs_linear_time(void **state)
{
    (void)state;
    size_t len = 1 << 20, n = len + 3;
    char *in = malloc(n);
    assert_non_null(in);
    in[0] = '+';
    memset(in + 1, 's', len);
    memcpy(in + 1 + len, "\r\n", 2);
    double t = cpu_seconds();
    feed_in_pieces(in, n, 1, 1); /* rescanning would read 512 GB */
    assert_true(cpu_seconds() - t < 2.0);
    free(in);
}

static void test_resp_100k_element_array_in_small_pieces_costs_linear_time(void **state)
{
    (void)state;
    size_t count = 100000, n = 16 + count * 9;
    char *in = malloc(n);
    assert_non_null(in);
    size_t k = (size_t)snprintf(in, 16, "*%zu\r\n", count);
    for (size_t i = 0; i < count; i++) {
        memcpy(in + k, i % 2 ? "$3\r\nabc\r\n" : ":12345\r\n", i % 2 ? 9 : 8);
        k += i % 2 ? 9 : 8;
    }
    double t = cpu_seconds();
    feed_in_pieces(in, k, 4096, count + 1);
    feed_in_pieces(in, k, 3, count + 1);
    assert_true(cpu_seconds() - t < 2.0);
    free(in);
}

/* ------------------------------------------------------------ errors */

static const struct {
    const char *bytes;
    size_t n;
    size_t max_bulk;
    int rc;
    const char *msg;
} errors[] = {
    {STR("?"), 0, -EPROTO, "protocol error: unknown reply type byte 0x3f at offset 0"},
    {STR("*2\r\n:1\r\n\x80"), 0, -EPROTO,
     "protocol error: unknown reply type byte 0x80 at offset 8"},
    {STR("+OK\rX"), 0, -EPROTO, "protocol error: expected LF after CR, got byte 0x58 at offset 4"},
    {STR("$3\r\nfooX\r\n"), 0, -EPROTO,
     "protocol error: expected CRLF after a string's bytes, got byte 0x58 at offset 7"},
    {STR("$3\r\nfoo\rX"), 0, -EPROTO,
     "protocol error: expected LF after CR, got byte 0x58 at offset 8"},
    {STR("$3\rX"), 0, -EPROTO, "protocol error: expected LF after CR, got byte 0x58 at offset 3"},
    {STR("$x\r\n"), 0, -EPROTO, "protocol error: expected a digit, got byte 0x78 at offset 1"},
    {STR("*1x\r\n"), 0, -EPROTO,
     "protocol error: expected a digit or CRLF, got byte 0x78 at offset 2"},
    {STR(":\r\n"), 0, -EPROTO, "protocol error: expected a digit, got byte 0x0d at offset 1"},
    {STR(":-\r\n"), 0, -EPROTO, "protocol error: expected a digit, got byte 0x0d at offset 2"},
    {STR(":+1\r\n"), 0, -EPROTO, "protocol error: expected a digit, got byte 0x2b at offset 1"},
    {STR(": 1\r\n"), 0, -EPROTO, "protocol error: expected a digit, got byte 0x20 at offset 1"},
    {STR(":1\n"), 0, -EPROTO,
     "protocol error: expected a digit or CRLF, got byte 0x0a at offset 2"},
    {STR("$-2\r\n"), 0, -EPROTO, "protocol error: negative length at offset 0"},
    {STR("*-10\r\n"), 0, -EPROTO, "protocol error: negative length at offset 0"},
    {STR("$-x\r\n"), 0, -EPROTO, "protocol error: expected a digit, got byte 0x78 at offset 2"},
    {STR("$-1x\r\n"), 0, -EPROTO, "protocol error: expected CRLF, got byte 0x78 at offset 3"},
    {STR("%-1\r\n"), 0, -EPROTO, "protocol error: negative length at offset 0"},
    {STR("~-1\r\n"), 0, -EPROTO, "protocol error: negative length at offset 0"},
    {STR(">-1\r\n"), 0, -EPROTO, "protocol error: negative length at offset 0"},
    {STR("!-1\r\n"), 0, -EPROTO, "protocol error: negative length at offset 0"},
    {STR("=-1\r\n"), 0, -EPROTO, "protocol error: negative length at offset 0"},
    {STR("|-1\r\n"), 0, -EPROTO, "protocol error: negative length at offset 0"},
    {STR("$?\r\n;3\r\nabc\r\n;0\r\n"), 0, -EPROTO,
     "protocol error: streamed replies are not supported ($? at offset 0)"},
    {STR("*1\r\n*?\r\n:1\r\n.\r\n"), 0, -EPROTO,
     "protocol error: streamed replies are not supported (*? at offset 4)"},
    {STR("%?\r\n"), 0, -EPROTO,
     "protocol error: streamed replies are not supported (%? at offset 0)"},
    {STR(";3\r\nabc\r\n"), 0, -EPROTO,
     "protocol error: streamed replies are not supported (; at offset 0)"},
    {STR(".\r\n"), 0, -EPROTO,
     "protocol error: streamed replies are not supported (. at offset 0)"},
    {STR(":9223372036854775808\r\n"), 0, -EPROTO,
     "protocol error: integer out of the 64-bit range at offset 0"},
    {STR(":-9223372036854775809\r\n"), 0, -EPROTO,
     "protocol error: integer out of the 64-bit range at offset 0"},
    {STR(":99999999999999999999999\r\n"), 0, -EPROTO,
     "protocol error: integer out of the 64-bit range at offset 0"},
    {STR(":000000000000000000001\r\n"), 0, -EPROTO,
     "protocol error: number with more than 20 digits at offset 0"},
    {STR("#x\r\n"), 0, -EPROTO, "protocol error: a boolean is #t or #f, got byte 0x78 at offset 1"},
    {STR("_x\r\n"), 0, -EPROTO, "protocol error: expected CRLF, got byte 0x78 at offset 1"},
    {STR(",1.5.2\r\n"), 0, -EPROTO, "protocol error: malformed double at offset 0"},
    {STR("(12a\r\n"), 0, -EPROTO, "protocol error: malformed big number at offset 0"},
    {STR("=3\r\ntxt\r\n"), 0, -EPROTO,
     "protocol error: verbatim string of 3 bytes has no room for its format at offset 0"},
    {STR("=5\r\ntxt;x\r\n"), 0, -EPROTO,
     "protocol error: expected ':' after a verbatim string's format, got byte 0x3b at offset 7"},
    {STR("$11\r\nhello world\r\n"), 10, -EMSGSIZE,
     "reply too large: a string longer than 10 bytes at offset 0"},
    {STR("*1\r\n!100\r\n"), 10, -EMSGSIZE,
     "reply too large: a string longer than 10 bytes at offset 4"},
    {STR("=11\r\ntxt:1234567\r\n"), 10, -EMSGSIZE,
     "reply too large: a string longer than 10 bytes at offset 0"},
    {STR("+hello world\r\n"), 10, -EMSGSIZE,
     "reply too large: a line longer than 10 bytes at offset 0"},
    {STR("-hello world\r\n"), 10, -EMSGSIZE,
     "reply too large: a line longer than 10 bytes at offset 0"},
    {STR("$99999999999999999999\r\n"), 0, -EMSGSIZE,
     "reply too large: a string longer than 536870912 bytes at offset 0"},
    {STR("*2147483648\r\n"), 0, -EMSGSIZE,
     "reply too large: an aggregate of more than 2147483647 elements at offset 0"},
    {STR("%99999999999\r\n"), 0, -EMSGSIZE,
     "reply too large: an aggregate of more than 2147483647 elements at offset 0"},
};

static void test_resp_every_error_has_its_errno_and_message(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(errors); i++)
        assert_scan_error(errors[i].bytes, errors[i].n, errors[i].max_bulk, errors[i].rc,
                          errors[i].msg);
}

static void test_resp_every_error_split_at_every_byte_gives_0_or_the_same_error(void **state)
{
    (void)state;
    for (size_t i = 0; i < ARRAY_LEN(errors); i++) {
        const char *p = errors[i].bytes;
        size_t n = errors[i].n;
        /* growing prefixes to one scanner */
        resp_scanner s;
        resp_scanner_init(&s, errors[i].max_bulk);
        ssize_t rc = 0;
        for (size_t k = 0; k <= n && rc == 0; k++)
            rc = scan(&s, p, k);
        assert_int_equal(rc, errors[i].rc);
        assert_string_equal(s.err, errors[i].msg);
        /* every prefix alone */
        for (size_t k = 0; k < n; k++) {
            rc = scan_fresh(&s, p, k, errors[i].max_bulk);
            if (rc != 0) {
                assert_int_equal(rc, errors[i].rc);
                assert_string_equal(s.err, errors[i].msg);
            }
        }
    }
}

static void test_resp_errors_are_reported_before_the_line_ends(void **state)
{
    (void)state;
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR("*1x"), 0), -EPROTO);
    assert_int_equal(scan_fresh(&s, STR(":92233720368547758070"), 0), -EPROTO);
    assert_int_equal(scan_fresh(&s, STR("$600000000"), 0), -EMSGSIZE);
    assert_int_equal(scan_fresh(&s, STR("+hello world"), 10), -EMSGSIZE);
    assert_int_equal(scan_fresh(&s, STR("$?"), 0), -EPROTO);
}

static void test_resp_error_is_sticky_until_init(void **state)
{
    (void)state;
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR("?"), 0), -EPROTO);
    assert_int_equal(scan(&s, STR("+OK\r\n")), -EPROTO);
    assert_string_equal(s.err, "protocol error: unknown reply type byte 0x3f at offset 0");
    resp_scanner_init(&s, 0);
    assert_string_equal(s.err, "");
    assert_int_equal(scan(&s, STR("+OK\r\n")), 5);
}

/* ------------------------------------------------------------ limits */

static void test_resp_integers_at_the_64_bit_limits_parse(void **state)
{
    (void)state;
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR(":9223372036854775807\r\n"), 0), 22);
    assert_true(s.integer == INT64_MAX);
    wv_redis_reply *r = build(STR(":9223372036854775807\r\n"), 1);
    assert_true(r->integer == INT64_MAX);
    free(r);
    assert_int_equal(scan_fresh(&s, STR(":-9223372036854775808\r\n"), 0), 23);
    assert_true(s.integer == INT64_MIN);
    r = build(STR(":-9223372036854775808\r\n"), 1);
    assert_true(r->integer == INT64_MIN);
    free(r);
    assert_int_equal(scan_fresh(&s, STR(":-0\r\n"), 0), 5);
    assert_true(s.integer == 0);
}

static void test_resp_integers_one_past_the_64_bit_limits_are_protocol_errors(void **state)
{
    (void)state;
    assert_scan_error(STR(":9223372036854775808\r\n"), 0, -EPROTO,
                      "protocol error: integer out of the 64-bit range at offset 0");
    assert_scan_error(STR(":-9223372036854775809\r\n"), 0, -EPROTO,
                      "protocol error: integer out of the 64-bit range at offset 0");
}

static void test_resp_max_bulk_allows_exactly_its_length(void **state)
{
    (void)state;
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR("$10\r\n0123456789\r\n"), 10), 17);
    assert_int_equal(scan_fresh(&s, STR("$11\r\n0123456789a\r\n"), 10), -EMSGSIZE);
    assert_int_equal(scan_fresh(&s, STR("+0123456789\r\n"), 10), 13);
    assert_int_equal(scan_fresh(&s, STR("+0123456789a\r\n"), 10), -EMSGSIZE);
    /* a limit below 10: a one-digit length over it */
    assert_int_equal(scan_fresh(&s, STR("$8\r\n12345678\r\n"), 8), 14);
    assert_int_equal(scan_fresh(&s, STR("$9\r\n123456789\r\n"), 8), -EMSGSIZE);
    assert_int_equal(scan_fresh(&s, STR("$1\r\nx\r\n"), 1), 7);
    assert_int_equal(scan_fresh(&s, STR("$2\r\nxy\r\n"), 1), -EMSGSIZE);
}

static void test_resp_max_bulk_0_means_512_mib(void **state)
{
    (void)state;
    resp_scanner s;
    resp_scanner_init(&s, 0);
    assert_int_equal(s.max_bulk, (size_t)512 << 20);
    assert_int_equal(scan(&s, STR("$536870912\r\n")), 0);
    assert_int_equal(scan_fresh(&s, STR("$536870913\r\n"), 0), -EMSGSIZE);
}

static void test_resp_huge_declared_array_counts_only_what_arrived(void **state)
{
    (void)state;
    const char in[] = "*1000000000\r\n:1\r\n$3\r\nfoo\r\n*2000000000\r\n:2\r\n";
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR(in), 0), 0);
    /* five elements in: five nodes, whatever the headers declared */
    assert_int_equal(s.at.nodes, 5);
    assert_true(s.at.nodes <= (sizeof in - 1) / 3);
    assert_int_equal(s.at.depth, 2);
    assert_int_equal(scan_fresh(&s, STR("*2147483647\r\n"), 0), 0);
    assert_int_equal(s.at.nodes, 1);
}

/* ------------------------------------------------------------ fast paths */

static void test_resp_top_level_bulk_is_described_without_a_tree(void **state)
{
    (void)state;
    const char in[] = "$11\r\nhello world\r\n";
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR(in), 0), sizeof in - 1);
    assert_int_equal(s.type, WV_REDIS_STRING);
    assert_int_equal(s.nodes, 1);
    assert_memory_equal(in + s.str_off, "hello world", s.str_len);
    assert_int_equal(s.str_len, 11);
    wv_str value = resp_scan_text(&s, in);
    assert_ptr_equal(value.p, in + 5);
    assert_int_equal(value.n, 11);
    assert_int_equal(scan_fresh(&s, STR("$-1\r\n"), 0), 5);
    assert_int_equal(s.type, WV_REDIS_NIL);
}

static void test_resp_top_level_status_integer_and_error_are_described(void **state)
{
    (void)state;
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR("+OK\r\n"), 0), 5);
    assert_int_equal(s.type, WV_REDIS_STATUS);
    assert_int_equal(s.str_off, 1);
    assert_int_equal(s.str_len, 2);
    assert_int_equal(scan_fresh(&s, STR(":-12345\r\n"), 0), 9);
    assert_int_equal(s.type, WV_REDIS_INT);
    assert_int_equal(s.integer, -12345);
    assert_int_equal(scan_fresh(&s, STR("-ERR no\r\n"), 0), 9);
    assert_int_equal(s.type, WV_REDIS_ERROR);
    assert_int_equal(s.str_off, 1);
    assert_int_equal(s.str_len, 6);
    assert_int_equal(scan_fresh(&s, STR("#t\r\n"), 0), 4);
    assert_int_equal(s.type, WV_REDIS_BOOL);
    assert_int_equal(s.integer, 1);
    assert_int_equal(scan_fresh(&s, STR("=7\r\ntxt:abc\r\n"), 0), 13);
    assert_int_equal(s.type, WV_REDIS_VERBATIM);
    assert_int_equal(s.str_off, 8);
    assert_int_equal(s.str_len, 3);
}

static void test_resp_top_level_after_an_attribute_describes_the_reply(void **state)
{
    (void)state;
    const char in[] = "|1\r\n+ttl\r\n:3600\r\n$3\r\nfoo\r\n";
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR(in), 0), sizeof in - 1);
    assert_int_equal(s.type, WV_REDIS_STRING);
    assert_int_equal(s.nodes, 1);
    assert_memory_equal(in + s.str_off, "foo", 3);
}

static void test_resp_top_level_push_and_aggregates_report_their_type_and_nodes(void **state)
{
    (void)state;
    const char push[] = ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n";
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, STR(push), 0), sizeof push - 1);
    assert_int_equal(s.type, WV_REDIS_PUSH);
    assert_true(s.push);
    assert_int_equal(s.nodes, 4);
    assert_int_equal(scan_fresh(&s, STR("*2\r\n:1\r\n*1\r\n:2\r\n"), 0), 16);
    assert_int_equal(s.type, WV_REDIS_ARRAY);
    assert_false(s.push);
    assert_int_equal(s.nodes, 4);
}

/* ------------------------------------------------------------ build */

static void test_resp_build_terminates_strings_in_place_inside_the_bytes(void **state)
{
    (void)state;
    const char in[] = "*3\r\n+OK\r\n$3\r\nfoo\r\n,1.5\r\n";
    size_t n = sizeof in - 1;
    wv_redis_reply nodes[4];
    char *bytes = copy_exact(in, n);
    assert_int_equal(resp_build(bytes, n, nodes, 4), 0);
    assert_ptr_equal(nodes[1].str, bytes + 5);
    assert_ptr_equal(nodes[2].str, bytes + 13);
    assert_ptr_equal(nodes[3].str, bytes + 19);
    assert_int_equal(bytes[7], '\0');
    assert_int_equal(bytes[16], '\0');
    assert_int_equal(bytes[22], '\0');
    assert_null(nodes[0].str);
    free(bytes);
}

static void test_resp_build_refuses_too_few_nodes_without_writing_past_them(void **state)
{
    (void)state;
    const char in[] = "*2\r\n*2\r\n:1\r\n:2\r\n:3\r\n";
    size_t n = sizeof in - 1;
    for (size_t count = 0; count < 5; count++) {
        wv_redis_reply *nodes = malloc((count ? count : 1) * sizeof *nodes);
        char *bytes = copy_exact(in, n);
        assert_int_equal(resp_build(bytes, n, nodes, count), -EINVAL);
        free(bytes);
        free(nodes);
    }
}

/* ------------------------------------------------------------ commands */

static void encode(wv_buf *b, const char *const *argv, const size_t *lens, int argc)
{
    size_t before = b->n;
    assert_int_equal(resp_write_command(b, argv, lens, argc), 0);
    assert_int_equal(b->n - before, resp_command_size(lens, argc));
}

static void test_resp_command_is_an_array_of_bulk_strings(void **state)
{
    (void)state;
    const char *argv[] = {"SET", "key", "value"};
    const size_t lens[] = {3, 3, 5};
    wv_buf b = {0};
    encode(&b, argv, lens, 3);
    const char expected[] = "*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
    assert_int_equal(b.n, sizeof expected - 1);
    assert_memory_equal(b.p, expected, b.n);
    wv_buf_free(&b);
}

static void test_resp_command_encodes_empty_and_binary_arguments(void **state)
{
    (void)state;
    const char *argv[] = {"SET", "", "a\0\r\nb", NULL};
    const size_t lens[] = {3, 0, 5, 0};
    wv_buf b = {0};
    encode(&b, argv, lens, 4);
    const char expected[] = "*4\r\n$3\r\nSET\r\n$0\r\n\r\n$5\r\na\0\r\nb\r\n$0\r\n\r\n";
    assert_int_equal(b.n, sizeof expected - 1);
    assert_memory_equal(b.p, expected, b.n);
    wv_buf_free(&b);
}

static void test_resp_command_of_no_arguments_is_an_empty_array(void **state)
{
    (void)state;
    wv_buf b = {0};
    encode(&b, NULL, NULL, 0);
    assert_int_equal(b.n, 4);
    assert_memory_equal(b.p, "*0\r\n", 4);
    wv_buf_free(&b);
    assert_int_equal(resp_write_command(&b, NULL, NULL, -1), -EINVAL);
    assert_int_equal(resp_command_size(NULL, -1), 0);
}

static void test_resp_command_lengths_are_decimal_at_every_digit_count(void **state)
{
    (void)state;
    static const size_t lens[] = {1,    9,     10,    99,     100,    999,    1000,
                                  9999, 10000, 99999, 100000, 123456, 1048576};
    char *arg = calloc(1, 1048576);
    assert_non_null(arg);
    for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
        const char *argv[] = {arg};
        wv_buf b = {0};
        encode(&b, argv, &lens[i], 1);
        char header[32];
        int h = snprintf(header, sizeof header, "*1\r\n$%zu\r\n", lens[i]);
        assert_int_equal(b.n, (size_t)h + lens[i] + 2);
        assert_memory_equal(b.p, header, (size_t)h);
        wv_buf_free(&b);
    }
    free(arg);
    size_t big[] = {12345678901234};
    assert_int_equal(resp_command_size(big, 1), 4 + 1 + 14 + 2 + 12345678901234 + 2);
    size_t huge[] = {SIZE_MAX - 8};
    assert_int_equal(resp_command_size(huge, 1), 0);
}

static void test_resp_command_over_the_buffer_limit_is_enomem_leaving_it_unchanged(void **state)
{
    (void)state;
    const char *argv[] = {"GET", "some:key"};
    const size_t lens[] = {3, 8};
    size_t size = resp_command_size(lens, 2);
    wv_buf b = {.limit = 3 + size - 1};
    assert_int_equal(wv_buf_append(&b, "abc", 3), 0);
    assert_int_equal(resp_write_command(&b, argv, lens, 2), -ENOMEM);
    assert_int_equal(b.n, 3);
    assert_memory_equal(b.p, "abc", 3);
    b.limit = 3 + size;
    assert_int_equal(resp_write_command(&b, argv, lens, 2), 0);
    assert_int_equal(b.n, 3 + size);
    size_t huge[] = {SIZE_MAX - 8, 1};
    assert_int_equal(resp_write_command(&b, argv, huge, 2), -ENOMEM);
    assert_int_equal(b.n, 3 + size);
    wv_buf_free(&b);
}

static void test_resp_command_from_wv_str_is_the_same_bytes(void **state)
{
    (void)state;
    const char *argv[] = {"MSET", "k", "", "a\0b"};
    const size_t lens[] = {4, 1, 0, 3};
    const wv_str strs[] = {{"MSET", 4}, {"k", 1}, {NULL, 0}, {"a\0b", 3}};
    wv_buf a = {0}, b = {0};
    encode(&a, argv, lens, 4);
    assert_int_equal(resp_append_command(&b, 4, strs), 0);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.p, b.p, a.n);
    wv_buf small = {.limit = a.n - 1};
    assert_int_equal(resp_append_command(&small, 4, strs), -ENOMEM);
    assert_int_equal(small.n, 0);
    assert_int_equal(resp_append_command(&b, -1, strs), -EINVAL);
    assert_int_equal(b.n, a.n);
    wv_buf_free(&a);
    wv_buf_free(&b);
    wv_buf_free(&small);
}

static void test_resp_command_scans_back_to_its_arguments(void **state)
{
    (void)state;
    char binary[256];
    for (int i = 0; i < 256; i++)
        binary[i] = (char)i;
    const char *argv[] = {"HSET", "h", "", binary, "\r\n", "$-1\r\n"};
    const size_t lens[] = {4, 1, 0, 256, 2, 5};
    wv_buf b = {0};
    encode(&b, argv, lens, 6);
    resp_scanner s;
    assert_int_equal(scan_fresh(&s, b.p, b.n, 0), b.n);
    assert_int_equal(s.nodes, 7);
    wv_redis_reply *r = build(b.p, b.n, 7);
    assert_int_equal(r->type, WV_REDIS_ARRAY);
    assert_int_equal(r->len, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(r->elem[i].type, WV_REDIS_STRING);
        assert_int_equal(r->elem[i].len, lens[i]);
        assert_memory_equal(r->elem[i].str, argv[i], lens[i]);
    }
    free(r);
    wv_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resp_simple_string_is_a_status),
        cmocka_unit_test(test_resp_simple_error_is_an_error),
        cmocka_unit_test(test_resp_integer_is_an_int),
        cmocka_unit_test(test_resp_bulk_string_is_a_string_with_its_length),
        cmocka_unit_test(test_resp_empty_bulk_string_is_an_empty_string_not_nil),
        cmocka_unit_test(test_resp_null_bulk_and_null_array_are_nil),
        cmocka_unit_test(test_resp_bulk_string_keeps_nul_bytes_and_crlf_inside),
        cmocka_unit_test(test_resp_array_keeps_its_elements_in_order),
        cmocka_unit_test(test_resp3_null_is_nil),
        cmocka_unit_test(test_resp3_double_has_its_value_and_its_text),
        cmocka_unit_test(test_resp3_double_accepts_inf_minus_inf_and_nan),
        cmocka_unit_test(test_resp3_malformed_doubles_are_protocol_errors),
        cmocka_unit_test(test_resp3_booleans_are_1_and_0),
        cmocka_unit_test(test_resp3_boolean_other_than_t_or_f_is_a_protocol_error),
        cmocka_unit_test(test_resp3_blob_error_is_a_binary_safe_error),
        cmocka_unit_test(test_resp3_verbatim_string_splits_its_format_from_its_text),
        cmocka_unit_test(test_resp3_verbatim_string_without_its_format_is_a_protocol_error),
        cmocka_unit_test(test_resp3_big_number_keeps_its_digits),
        cmocka_unit_test(test_resp3_malformed_big_numbers_are_protocol_errors),
        cmocka_unit_test(test_resp3_map_alternates_keys_and_values),
        cmocka_unit_test(test_resp3_set_and_push_are_their_own_types),
        cmocka_unit_test(test_resp_map_of_arrays_lays_out_each_aggregate_contiguously),
        cmocka_unit_test(test_resp_empty_aggregates_have_no_elements),
        cmocka_unit_test(test_resp_nesting_64_deep_parses_and_65_is_a_protocol_error),
        cmocka_unit_test(test_resp3_attribute_before_the_reply_is_dropped),
        cmocka_unit_test(test_resp3_attribute_inside_an_array_is_not_an_element),
        cmocka_unit_test(test_resp3_attribute_with_aggregates_and_attributes_inside_is_dropped),
        cmocka_unit_test(test_resp3_attribute_alone_waits_for_the_reply_it_annotates),
        cmocka_unit_test(test_resp_every_reply_split_at_every_byte_gives_the_same_tree),
        cmocka_unit_test(test_resp_bulk_split_at_every_byte_gives_the_same_reply),
        cmocka_unit_test(test_resp_every_reply_is_the_same_with_bytes_after_it),
        cmocka_unit_test(test_resp_replies_back_to_back_come_out_one_at_a_time),
        cmocka_unit_test(test_resp_stream_read_in_pieces_of_every_size_gives_the_same_replies),
        cmocka_unit_test(test_resp_scan_continues_after_the_buffer_moves),
        cmocka_unit_test(test_resp_1mb_bulk_in_small_pieces_costs_linear_time),
        cmocka_unit_test(test_resp_1mb_status_line_in_small_pieces_costs_linear_time),
        cmocka_unit_test(test_resp_100k_element_array_in_small_pieces_costs_linear_time),
        cmocka_unit_test(test_resp_every_error_has_its_errno_and_message),
        cmocka_unit_test(test_resp_every_error_split_at_every_byte_gives_0_or_the_same_error),
        cmocka_unit_test(test_resp_errors_are_reported_before_the_line_ends),
        cmocka_unit_test(test_resp_error_is_sticky_until_init),
        cmocka_unit_test(test_resp_integers_at_the_64_bit_limits_parse),
        cmocka_unit_test(test_resp_integers_one_past_the_64_bit_limits_are_protocol_errors),
        cmocka_unit_test(test_resp_max_bulk_allows_exactly_its_length),
        cmocka_unit_test(test_resp_max_bulk_0_means_512_mib),
        cmocka_unit_test(test_resp_huge_declared_array_counts_only_what_arrived),
        cmocka_unit_test(test_resp_top_level_bulk_is_described_without_a_tree),
        cmocka_unit_test(test_resp_top_level_status_integer_and_error_are_described),
        cmocka_unit_test(test_resp_top_level_after_an_attribute_describes_the_reply),
        cmocka_unit_test(test_resp_top_level_push_and_aggregates_report_their_type_and_nodes),
        cmocka_unit_test(test_resp_build_terminates_strings_in_place_inside_the_bytes),
        cmocka_unit_test(test_resp_build_refuses_too_few_nodes_without_writing_past_them),
        cmocka_unit_test(test_resp_command_is_an_array_of_bulk_strings),
        cmocka_unit_test(test_resp_command_encodes_empty_and_binary_arguments),
        cmocka_unit_test(test_resp_command_of_no_arguments_is_an_empty_array),
        cmocka_unit_test(test_resp_command_lengths_are_decimal_at_every_digit_count),
        cmocka_unit_test(test_resp_command_over_the_buffer_limit_is_enomem_leaving_it_unchanged),
        cmocka_unit_test(test_resp_command_from_wv_str_is_the_same_bytes),
        cmocka_unit_test(test_resp_command_scans_back_to_its_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
