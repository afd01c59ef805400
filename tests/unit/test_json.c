/*
 * JSON: the streaming writer (nesting, commas, escaping, UTF-8 repair,
 * numbers, misuse and out-of-memory errors), the reader (strict parsing,
 * error positions, limits, every getter and its type checks) and the two
 * together (what is written reads back the same).
 *
 * Nothing here needs the runtime: wv_errmsg() outside a fiber is
 * thread-local.
 */
#include "harness.h"

#include <locale.h>
#include <math.h>

#include "weave/json.h"

/* ------------------------------------------------------------ helpers */

/* The buffer's bytes as a C string (owned by the buffer). */
static const char *text_of(wv_buf *b)
{
    assert_int_equal(wv_buf_append(b, "", 1), 0);
    b->n--;
    return b->p;
}

/* The document that one string value makes, e.g. "\"a\\n\"". */
static const char *write_string(wv_buf *b, const char *s, size_t n)
{
    wv_json j;
    wv_buf_reset(b);
    wv_json_init(&j, b);
    wv_json_stringn(&j, s, n);
    assert_int_equal(wv_json_finish(&j), 0);
    return text_of(b);
}

static const char *write_double(wv_buf *b, double v)
{
    wv_json j;
    wv_buf_reset(b);
    wv_json_init(&j, b);
    wv_json_double(&j, v);
    assert_int_equal(wv_json_finish(&j), 0);
    return text_of(b);
}

static wv_json_doc *parse_ok(const char *text)
{
    wv_json_doc *doc = NULL;
    int rc = wv_json_parse(text, strlen(text), &doc);
    if (rc != 0)
        fail_msg("parsing %s failed: %d %s", text, rc, wv_errmsg());
    assert_non_null(doc);
    return doc;
}

/* Parse text, which must be rejected with -EINVAL and a message. */
static void parse_rejected(const char *text, size_t n)
{
    wv_json_doc *doc = (wv_json_doc *)&doc; /* must come back NULL */
    wv_fail(0, "%s", "");
    int rc = wv_json_parse(text, n, &doc);
    if (rc != -EINVAL)
        fail_msg("%.*s: got %d, want -EINVAL", (int)n, text, rc);
    assert_null(doc);
    assert_true(strlen(wv_errmsg()) > 0);
}

/* Deterministic pseudo-random numbers (xorshift64*). */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

/* ---------------------------------------------------- writer: structure */

static void test_writer_nests_objects_and_arrays_with_commas_between_members(void **state)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_object_begin(&j);
    wv_json_key(&j, "a");
    wv_json_array_begin(&j);
    wv_json_int(&j, 1);
    wv_json_object_begin(&j);
    wv_json_key(&j, "b");
    wv_json_array_begin(&j);
    wv_json_array_end(&j);
    wv_json_object_end(&j);
    wv_json_object_begin(&j);
    wv_json_object_end(&j);
    wv_json_array_end(&j);
    wv_json_key(&j, "c");
    wv_json_object_begin(&j);
    wv_json_key(&j, "d");
    wv_json_null(&j);
    wv_json_key(&j, "e");
    wv_json_bool(&j, true);
    wv_json_object_end(&j);
    wv_json_object_end(&j);
    assert_int_equal(wv_json_finish(&j), 0);
    assert_string_equal(text_of(&b), "{\"a\":[1,{\"b\":[]},{}],\"c\":{\"d\":null,\"e\":true}}");
    wv_buf_free(&b);
}

static void test_writer_puts_commas_between_array_elements_only(void **state)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_array_begin(&j);
    wv_json_array_begin(&j);
    wv_json_int(&j, 1);
    wv_json_array_end(&j);
    wv_json_string(&j, "x");
    wv_json_bool(&j, false);
    wv_json_uint(&j, 7);
    wv_json_raw(&j, "{\"r\":1}", 7);
    wv_json_array_end(&j);
    assert_int_equal(wv_json_finish(&j), 0);
    assert_string_equal(text_of(&b), "[[1],\"x\",false,7,{\"r\":1}]");
    wv_buf_free(&b);
}

static void test_writer_appends_after_what_the_buffer_holds(void **state)
{
    wv_buf b = {0};
    wv_buf_puts(&b, "data: ");
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_int(&j, -5);
    assert_int_equal(wv_json_finish(&j), 0);
    assert_string_equal(text_of(&b), "data: -5");
    wv_buf_free(&b);
}

static void test_writer_null_string_writes_null(void **state)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_array_begin(&j);
    wv_json_string(&j, NULL);
    wv_json_stringn(&j, NULL, 3);
    wv_json_array_end(&j);
    assert_int_equal(wv_json_finish(&j), 0);
    assert_string_equal(text_of(&b), "[null,null]");
    wv_buf_free(&b);
}

/* ----------------------------------------------------- writer: escaping */

static void test_writer_escapes_quote_backslash_and_short_form_controls(void **state)
{
    wv_buf b = {0};
    assert_string_equal(write_string(&b, "\"\\\n\r\t\b\f/", 8), "\"\\\"\\\\\\n\\r\\t\\b\\f/\"");
    wv_buf_free(&b);
}

static void test_writer_escapes_other_control_bytes_as_u00xx(void **state)
{
    wv_buf b = {0};
    assert_string_equal(write_string(&b, "\x00\x01\x1f\x7f", 4), "\"\\u0000\\u0001\\u001f\x7f\"");
    assert_string_equal(write_string(&b, "a\x0b!", 3), "\"a\\u000b!\"");
    wv_buf_free(&b);
}

static void test_writer_escapes_u2028_and_u2029(void **state)
{
    wv_buf b = {0};
    assert_string_equal(write_string(&b, "a\xe2\x80\xa8z\xe2\x80\xa9", 8), "\"a\\u2028z\\u2029\"");
    /* Their neighbours U+2027 and U+202A stay as they are. */
    assert_string_equal(write_string(&b, "\xe2\x80\xa7\xe2\x80\xaa", 6),
                        "\"\xe2\x80\xa7\xe2\x80\xaa\"");
    wv_buf_free(&b);
}

static void test_writer_copies_valid_multibyte_utf8_unchanged(void **state)
{
    wv_buf b = {0};
    const char *s = "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80 \xf4\x8f\xbf\xbf";
    char want[64];
    snprintf(want, sizeof want, "\"%s\"", s);
    assert_string_equal(write_string(&b, s, strlen(s)), want);
    wv_buf_free(&b);
}

static void test_writer_replaces_invalid_utf8_with_one_u_fffd_per_maximal_subpart(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"a\xff!", "a\xef\xbf\xbd!"},                             /* never valid */
        {"\x80", "\xef\xbf\xbd"},                                 /* stray continuation */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
        {"\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong, 3 bytes */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* UTF-16 surrogate */
        {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* > U+10FFFF */
        {"\xe2\x82", "\xef\xbf\xbd"},                             /* truncated at the end */
        {"\xe2\x82z", "\xef\xbf\xbdz"},                           /* truncated before ASCII */
        {"\xf0\x9f\x98", "\xef\xbf\xbd"},                         /* 3 of 4 bytes */
        {"\xc3\xa9\xff\xc3\xa9", "\xc3\xa9\xef\xbf\xbd\xc3\xa9"}, /* between valid ones */
    };
    wv_buf b = {0};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char want[64];
        snprintf(want, sizeof want, "\"%s\"", cases[i].out);
        assert_string_equal(write_string(&b, cases[i].in, strlen(cases[i].in)), want);
    }
    wv_buf_free(&b);
}

static void test_writer_escapes_keys_like_strings(void **state)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_object_begin(&j);
    wv_json_keyn(&j, "k\"\n\xff", 4);
    wv_json_int(&j, 1);
    wv_json_object_end(&j);
    assert_int_equal(wv_json_finish(&j), 0);
    assert_string_equal(text_of(&b), "{\"k\\\"\\n\xef\xbf\xbd\":1}");
    wv_buf_free(&b);
}

/* The simplest possible escaper for ASCII input, to check the 8-bytes-at-a-
 * time path against. */
static void reference_escape(const unsigned char *s, size_t n, wv_buf *out)
{
    wv_buf_puts(out, "\"");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"' || c == '\\')
            wv_buf_printf(out, "\\%c", c);
        else if (c == '\n')
            wv_buf_puts(out, "\\n");
        else if (c == '\r')
            wv_buf_puts(out, "\\r");
        else if (c == '\t')
            wv_buf_puts(out, "\\t");
        else if (c == '\b')
            wv_buf_puts(out, "\\b");
        else if (c == '\f')
            wv_buf_puts(out, "\\f");
        else if (c < 0x20)
            wv_buf_printf(out, "\\u%04x", c);
        else
            wv_buf_append(out, &c, 1);
    }
    wv_buf_puts(out, "\"");
}

static void test_writer_escapes_random_ascii_like_a_byte_by_byte_escaper(void **state)
{
    wv_buf b = {0}, want = {0};
    unsigned char s[200];
    for (int round = 0; round < 2000; round++) {
        size_t n = rng() % sizeof s;
        /* Mostly plain text with a special byte now and then, at every
         * offset within an 8-byte word. */
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rng();
            s[i] =
                r % 16 == 0 ? "\"\\\n\x01\x1f\t"[r / 16 % 6] : (unsigned char)(0x20 + r / 16 % 95);
        }
        wv_buf_reset(&want);
        reference_escape(s, n, &want);
        write_string(&b, (const char *)s, n);
        assert_int_equal(b.n, want.n);
        assert_memory_equal(b.p, want.p, want.n);
    }
    wv_buf_free(&b);
    wv_buf_free(&want);
}

/* ------------------------------------------------------ writer: numbers */

static void test_writer_doubles_are_the_shortest_text_that_round_trips(void **state)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {1e300, "1e+300"},
        {-0.0, "-0.0"},
        {0.0, "0.0"},
        {1.0 / 3, "0.3333333333333333"},
        {2.0 / 3, "0.6666666666666666"},
        {1.5, "1.5"},
        {100.0, "100.0"},
        {-42.0, "-42.0"},
        {5e-324, "4.94065645841247e-324"},
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {123456789012345680.0, "1.2345678901234568e+17"},
        {0.30000000000000004, "0.30000000000000004"},
    };
    wv_buf b = {0};
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const char *text = write_double(&b, cases[i].v);
        assert_string_equal(text, cases[i].text);
        double back = strtod(text, NULL);
        assert_memory_equal(&back, &cases[i].v, sizeof back); /* bit for bit, sign of zero too */
    }
    wv_buf_free(&b);
}

static void test_writer_random_doubles_read_back_bit_for_bit(void **state)
{
    wv_buf b = {0};
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = rng();
        double v;
        memcpy(&v, &bits, sizeof v);
        if (!isfinite(v))
            continue;
        double back = strtod(write_double(&b, v), NULL);
        assert_memory_equal(&back, &v, sizeof v);
    }
    wv_buf_free(&b);
}

/* What wv_json_double promises, the slow way: the shortest of %.15g,
 * %.16g, %.17g that strtod reads back, with ".0" if it looks integral. */
static void reference_double(double v, char *out, size_t size)
{
    int len = 0;
    for (int precision = 15; precision <= 17; precision++) {
        len = snprintf(out, size, "%.*g", precision, v);
        if (strtod(out, NULL) == v)
            break;
    }
    if (!strpbrk(out, ".e"))
        snprintf(out + len, size - (size_t)len, ".0");
}

static void test_writer_doubles_print_what_the_printf_reference_prints(void **state)
{
    /* Random bit patterns (mostly the printf path) and short decimals
     * m / 10^k (the fast path), positive and negative. */
    static const double powers[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
    wv_buf b = {0};
    char want[64];
    for (int i = 0; i < 40000; i++) {
        uint64_t r = rng();
        double v;
        if (i % 2) {
            memcpy(&v, &r, sizeof v);
            if (!isfinite(v))
                continue;
        } else {
            v = (double)(r % 1000000000000u) / powers[(r >> 40) % 10] * (r >> 63 ? -1 : 1);
        }
        reference_double(v, want, sizeof want);
        const char *got = write_double(&b, v);
        if (strcmp(got, want) != 0)
            fail_msg("%.17g: wrote %s, want %s", v, got, want);
    }
    wv_buf_free(&b);
}

static void test_writer_nan_and_infinity_are_einval(void **state)
{
    double bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        wv_buf b = {0};
        wv_json j;
        wv_json_init(&j, &b);
        wv_json_double(&j, bad[i]);
        assert_int_equal(wv_json_finish(&j), -EINVAL);
        assert_int_equal(b.n, 0);
        wv_buf_free(&b);
    }
}

/* Switch LC_NUMERIC to a locale with a decimal comma, built on the fly
 * with localedef in dir (none is installed); false if that cannot be done. */
static bool use_decimal_comma_locale(char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "printf 'LC_NUMERIC\\ndecimal_point \",\"\\nthousands_sep \".\"\\ngrouping 3\\n"
             "END LC_NUMERIC\\n' > %s/comma.src && "
             "localedef -c -i %s/comma.src -f UTF-8 %s/comma >/dev/null 2>&1; "
             "test -f %s/comma/LC_NUMERIC",
             dir, dir, dir, dir);
    if (system(cmd) != 0)
        return false;
    setenv("LOCPATH", dir, 1);
    char probe[16];
    if (!setlocale(LC_NUMERIC, "comma"))
        return false;
    snprintf(probe, sizeof probe, "%.1f", 0.5);
    return strcmp(probe, "0,5") == 0;
}

static void test_numbers_use_a_dot_whatever_the_locale(void **state)
{
    char dir[] = "/tmp/weave-json-locale-XXXXXX";
    assert_non_null(mkdtemp(dir));
    bool comma = use_decimal_comma_locale(dir);
    char cmd[600];
    if (comma) {
        wv_buf b = {0};
        assert_string_equal(write_double(&b, 0.5), "0.5");                    /* fast path */
        assert_string_equal(write_double(&b, 1.0 / 3), "0.3333333333333333"); /* printf */
        assert_string_equal(write_double(&b, 1e-7), "1e-07");
        wv_json_doc *doc = parse_ok("[0.25, 1.0000000000000002, 2.5e-30]");
        double d;
        assert_int_equal(wv_json_as_double(wv_json_array_at(wv_json_doc_root(doc), 0), &d), 0);
        assert_true(d == 0.25);
        assert_int_equal(wv_json_as_double(wv_json_array_at(wv_json_doc_root(doc), 1), &d), 0);
        assert_true(d == 1.0000000000000002);
        assert_int_equal(wv_json_as_double(wv_json_array_at(wv_json_doc_root(doc), 2), &d), 0);
        assert_true(d == 2.5e-30);
        wv_json_doc_free(doc);
        wv_buf_free(&b);
    }
    setlocale(LC_NUMERIC, "C");
    unsetenv("LOCPATH");
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
    if (!comma)
        skip(); /* no localedef here */
}

static void test_writer_int64_and_uint64_extremes(void **state)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_array_begin(&j);
    wv_json_int(&j, INT64_MIN);
    wv_json_int(&j, INT64_MAX);
    wv_json_int(&j, 0);
    wv_json_uint(&j, UINT64_MAX);
    wv_json_array_end(&j);
    assert_int_equal(wv_json_finish(&j), 0);
    assert_string_equal(text_of(&b),
                        "[-9223372036854775808,9223372036854775807,0,18446744073709551615]");
    wv_buf_free(&b);
}

/* ------------------------------------------------------- writer: misuse */

static void test_writer_value_without_key_in_object_is_einval(void **state)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_object_begin(&j);
    wv_json_int(&j, 1);
    assert_int_equal(j.err, -EINVAL);
    assert_int_equal(wv_json_finish(&j), -EINVAL);
    wv_buf_free(&b);
}

static void test_writer_key_in_array_is_einval(void **state)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_array_begin(&j);
    wv_json_key(&j, "a");
    assert_int_equal(wv_json_finish(&j), -EINVAL);
    wv_buf_free(&b);
}

static void test_writer_key_at_top_level_or_twice_in_a_row_is_einval(void **state)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_key(&j, "a");
    assert_int_equal(wv_json_finish(&j), -EINVAL);

    wv_json_init(&j, &b);
    wv_json_object_begin(&j);
    wv_json_key(&j, "a");
    wv_json_key(&j, "b");
    assert_int_equal(wv_json_finish(&j), -EINVAL);

    wv_json_init(&j, &b);
    wv_json_object_begin(&j);
    wv_json_key(&j, NULL);
    assert_int_equal(wv_json_finish(&j), -EINVAL);
    wv_buf_free(&b);
}

static void test_writer_unbalanced_end_is_einval(void **state)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_object_end(&j); /* nothing open */
    assert_int_equal(wv_json_finish(&j), -EINVAL);

    wv_json_init(&j, &b);
    wv_json_array_begin(&j);
    wv_json_object_end(&j); /* the other kind */
    assert_int_equal(wv_json_finish(&j), -EINVAL);

    wv_json_init(&j, &b);
    wv_json_object_begin(&j);
    wv_json_key(&j, "a");
    wv_json_object_end(&j); /* the key's value is missing */
    assert_int_equal(wv_json_finish(&j), -EINVAL);
    wv_buf_free(&b);
}

static void test_writer_second_top_level_value_is_einval(void **state)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_array_begin(&j);
    wv_json_array_end(&j);
    wv_json_int(&j, 1);
    assert_int_equal(wv_json_finish(&j), -EINVAL);
    wv_buf_free(&b);
}

static void test_writer_finish_rejects_an_unfinished_document(void **state)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    assert_int_equal(wv_json_finish(&j), -EINVAL); /* nothing written */
    wv_json_array_begin(&j);
    wv_json_int(&j, 1);
    assert_int_equal(wv_json_finish(&j), -EINVAL); /* still open */
    assert_int_equal(j.err, 0);                    /* finish does not poison it */
    wv_json_array_end(&j);
    assert_int_equal(wv_json_finish(&j), 0);
    wv_buf_free(&b);
}

static void test_writer_error_is_sticky_and_later_calls_write_nothing(void **state)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_array_begin(&j);
    wv_json_key(&j, "x"); /* misuse */
    size_t n = b.n;
    wv_json_int(&j, 1);
    wv_json_string(&j, "more");
    wv_json_array_end(&j);
    assert_int_equal(b.n, n);
    assert_int_equal(j.err, -EINVAL);
    assert_int_equal(wv_json_finish(&j), -EINVAL);
    wv_buf_free(&b);
}

static void test_writer_allows_64_levels_and_rejects_the_65th(void **state)
{
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    for (int i = 0; i < WV_JSON_MAX_DEPTH; i++)
        wv_json_array_begin(&j);
    assert_int_equal(j.err, 0);
    size_t n = b.n;
    wv_json_object_begin(&j);
    assert_int_equal(j.err, -EINVAL);
    assert_int_equal(b.n, n);
    wv_buf_free(&b);
}

static void test_writer_64_levels_balanced_is_a_complete_document(void **state)
{
    /* Objects and arrays alternating, so both kinds of bookkeeping bits
     * are used up to the last level. */
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    for (int i = 0; i < WV_JSON_MAX_DEPTH; i++) {
        if (i % 2) {
            wv_json_array_begin(&j);
        } else {
            wv_json_object_begin(&j);
            wv_json_key(&j, "k");
        }
    }
    wv_json_int(&j, 0);
    for (int i = WV_JSON_MAX_DEPTH - 1; i >= 0; i--) {
        if (i % 2)
            wv_json_array_end(&j);
        else
            wv_json_object_end(&j);
    }
    assert_int_equal(wv_json_finish(&j), 0);
    wv_json_doc *doc;
    assert_int_equal(wv_json_parse(b.p, b.n, &doc), 0);
    wv_json_doc_free(doc);
    wv_buf_free(&b);
}

static void test_writer_buffer_limit_gives_sticky_enomem(void **state)
{
    wv_buf b = {.limit = 16};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_array_begin(&j);
    wv_json_string(&j, "0123456789abcdefghij");
    assert_int_equal(j.err, -ENOMEM);
    size_t n = b.n;
    wv_json_int(&j, 1);
    wv_json_array_end(&j);
    assert_int_equal(b.n, n);
    assert_true(b.n <= 16);
    assert_int_equal(wv_json_finish(&j), -ENOMEM);
    wv_buf_free(&b);
}

static void test_writer_limit_hit_by_escapes_gives_enomem(void **state)
{
    /* Every byte becomes six: the limit is hit in the escape path. */
    wv_buf b = {.limit = 64};
    wv_json j;
    wv_json_init(&j, &b);
    char controls[20];
    memset(controls, 1, sizeof controls);
    wv_json_stringn(&j, controls, sizeof controls);
    assert_int_equal(wv_json_finish(&j), -ENOMEM);
    wv_buf_free(&b);
}

/* ------------------------------------------------------- reader: basics */

static void test_parse_reads_a_small_request_body(void **state)
{
    wv_json_doc *doc = parse_ok("{\"name\":\"Alice\",\"email\":\"alice@example.com\",\"age\":30}");
    const wv_json_val *root = wv_json_doc_root(doc);
    const char *s;
    size_t n;
    int64_t age;
    assert_int_equal(wv_json_as_string(wv_json_get(root, "name"), &s, &n), 0);
    assert_string_equal(s, "Alice");
    assert_int_equal(n, 5);
    assert_int_equal(wv_json_as_string(wv_json_get(root, "email"), &s, &n), 0);
    assert_string_equal(s, "alice@example.com");
    assert_int_equal(wv_json_as_i64(wv_json_get(root, "age"), &age), 0);
    assert_int_equal(age, 30);
    wv_json_doc_free(doc);
}

static void test_parse_accepts_any_value_at_the_top_with_whitespace_around(void **state)
{
    static const struct {
        const char *text;
        wv_json_type type;
    } cases[] = {
        {"42", WV_JSON_NUMBER},      {" -1.5e3 ", WV_JSON_NUMBER},
        {"\"s\"", WV_JSON_STRING},   {"true", WV_JSON_BOOL},
        {"\tfalse\n", WV_JSON_BOOL}, {"null", WV_JSON_NULL},
        {" [ ] ", WV_JSON_ARRAY},    {"{}", WV_JSON_OBJECT},
        {"0", WV_JSON_NUMBER},       {"\r\n{ \"a\" : 1 }\r\n", WV_JSON_OBJECT},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        wv_json_doc *doc = parse_ok(cases[i].text);
        assert_int_equal(wv_json_type_of(wv_json_doc_root(doc)), cases[i].type);
        wv_json_doc_free(doc);
    }
}

static void test_parse_number_at_the_very_end_of_unterminated_input(void **state)
{
    /* The text is a slice: no NUL after it, and a digit right after. */
    const char buf[] = "1234567";
    wv_json_doc *doc;
    assert_int_equal(wv_json_parse(buf, 3, &doc), 0);
    int64_t v;
    assert_int_equal(wv_json_as_i64(wv_json_doc_root(doc), &v), 0);
    assert_int_equal(v, 123);
    double d;
    assert_int_equal(wv_json_as_double(wv_json_doc_root(doc), &d), 0);
    assert_true(d == 123.0);
    wv_json_doc_free(doc);
}

static void test_parse_copies_the_text_so_the_input_may_change(void **state)
{
    char text[] = "{\"k\":\"value\"}";
    wv_json_doc *doc = parse_ok(text);
    memset(text, 'x', sizeof text - 1);
    const char *s;
    assert_int_equal(wv_json_get_string(wv_json_doc_root(doc), "k", &s, NULL), 0);
    assert_string_equal(s, "value");
    wv_json_doc_free(doc);
}

static void test_parse_unescapes_every_escape(void **state)
{
    wv_json_doc *doc =
        parse_ok("[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\", \"\\u0041\\u00e9\\u65e5\\uD83D\\uDE00\", "
                 "\"plain\", \"a\\u2028!\"]");
    const wv_json_val *root = wv_json_doc_root(doc);
    const char *s;
    size_t n;
    assert_int_equal(wv_json_as_string(wv_json_array_at(root, 0), &s, &n), 0);
    assert_int_equal(n, 8);
    assert_string_equal(s, "\"\\/\b\f\n\r\t");
    assert_int_equal(wv_json_as_string(wv_json_array_at(root, 1), &s, &n), 0);
    assert_string_equal(s, "A\xc3\xa9\xe6\x97\xa5\xf0\x9f\x98\x80");
    assert_int_equal(n, 10);
    assert_int_equal(wv_json_as_string(wv_json_array_at(root, 2), &s, &n), 0);
    assert_string_equal(s, "plain");
    assert_int_equal(wv_json_as_string(wv_json_array_at(root, 3), &s, &n), 0);
    assert_string_equal(s, "a\xe2\x80\xa8!");
    wv_json_doc_free(doc);
}

static void test_parse_keeps_valid_utf8_in_strings(void **state)
{
    const char *text = "{\"k\\u00e9y\":\"Zo\xc3\xab \xe6\x97\xa5 \xf0\x9f\x98\x80\"}";
    wv_json_doc *doc = parse_ok(text);
    const char *s;
    assert_int_equal(wv_json_get_string(wv_json_doc_root(doc), "k\xc3\xa9y", &s, NULL), 0);
    assert_string_equal(s, "Zo\xc3\xab \xe6\x97\xa5 \xf0\x9f\x98\x80");
    wv_json_doc_free(doc);
}

/* ---------------------------------------------------- reader: lookups */

static void test_get_returns_null_for_a_missing_member_or_a_non_object(void **state)
{
    wv_json_doc *doc = parse_ok("{\"a\":[1],\"b\":{\"c\":2}}");
    const wv_json_val *root = wv_json_doc_root(doc);
    assert_null(wv_json_get(root, "z"));
    assert_null(wv_json_get(root, "c")); /* not searched in nested objects */
    assert_null(wv_json_get(wv_json_get(root, "a"), "a"));
    assert_null(wv_json_get(NULL, "a"));
    assert_null(wv_json_get(root, NULL));
    assert_non_null(wv_json_get(wv_json_get(root, "b"), "c"));
    wv_json_doc_free(doc);
}

static void test_get_last_of_duplicate_members_wins(void **state)
{
    wv_json_doc *doc = parse_ok("{\"role\":\"user\",\"x\":0,\"role\":\"admin\"}");
    const char *s;
    assert_int_equal(wv_json_get_string(wv_json_doc_root(doc), "role", &s, NULL), 0);
    assert_string_equal(s, "admin");
    wv_json_doc_free(doc);
}

static void test_get_matches_keys_after_unescaping_them(void **state)
{
    wv_json_doc *doc = parse_ok("{\"a\\u0062\":1,\"q\\\"\":2,\"\":3}");
    const wv_json_val *root = wv_json_doc_root(doc);
    int64_t v;
    assert_int_equal(wv_json_get_i64(root, "ab", &v), 0);
    assert_int_equal(v, 1);
    assert_int_equal(wv_json_get_i64(root, "q\"", &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(wv_json_get_i64(root, "", &v), 0);
    assert_int_equal(v, 3);
    assert_null(wv_json_getn(root, "ab", 1)); /* "a" is not a member */
    wv_json_doc_free(doc);
}

static void test_array_len_and_at_read_elements_in_order(void **state)
{
    wv_json_doc *doc = parse_ok("[10, [20, 21], {\"k\": 30}, 40]");
    const wv_json_val *root = wv_json_doc_root(doc);
    assert_int_equal(wv_json_array_len(root), 4);
    int64_t v;
    assert_int_equal(wv_json_as_i64(wv_json_array_at(root, 0), &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(wv_json_as_i64(wv_json_array_at(wv_json_array_at(root, 1), 1), &v), 0);
    assert_int_equal(v, 21);
    assert_int_equal(wv_json_get_i64(wv_json_array_at(root, 2), "k", &v), 0);
    assert_int_equal(v, 30);
    assert_int_equal(wv_json_as_i64(wv_json_array_at(root, 3), &v), 0);
    assert_int_equal(v, 40);
    assert_null(wv_json_array_at(root, 4));
    assert_null(wv_json_array_at(root, SIZE_MAX));
    assert_int_equal(wv_json_array_len(wv_json_array_at(root, 2)), -EINVAL);
    assert_null(wv_json_array_at(wv_json_array_at(root, 2), 0));
    assert_int_equal(wv_json_array_len(NULL), -EINVAL);
    wv_json_doc_free(doc);
}

static void test_object_len_and_at_walk_members_in_document_order(void **state)
{
    wv_json_doc *doc = parse_ok("{\"b\":1,\"a\":[2],\"c\\n\":{}}");
    const wv_json_val *root = wv_json_doc_root(doc);
    assert_int_equal(wv_json_object_len(root), 3);
    const char *key;
    size_t len;
    const wv_json_val *v = wv_json_object_at(root, 0, &key, &len);
    assert_string_equal(key, "b");
    assert_int_equal(wv_json_type_of(v), WV_JSON_NUMBER);
    v = wv_json_object_at(root, 1, &key, &len);
    assert_string_equal(key, "a");
    assert_int_equal(wv_json_array_len(v), 1);
    v = wv_json_object_at(root, 2, &key, &len);
    assert_string_equal(key, "c\n");
    assert_int_equal(len, 2);
    assert_int_equal(wv_json_object_len(v), 0);
    assert_null(wv_json_object_at(root, 3, &key, &len));
    assert_int_equal(wv_json_object_len(wv_json_object_at(root, 1, NULL, NULL)), -EINVAL);
    wv_json_doc_free(doc);
}

static void test_type_of_names_each_kind_of_value(void **state)
{
    wv_json_doc *doc = parse_ok("[null,true,false,-0,\"\",[],{}]");
    const wv_json_val *root = wv_json_doc_root(doc);
    wv_json_type want[] = {WV_JSON_NULL,   WV_JSON_BOOL,  WV_JSON_BOOL,  WV_JSON_NUMBER,
                           WV_JSON_STRING, WV_JSON_ARRAY, WV_JSON_OBJECT};
    for (size_t i = 0; i < ARRAY_LEN(want); i++)
        assert_int_equal(wv_json_type_of(wv_json_array_at(root, i)), want[i]);
    assert_int_equal(wv_json_type_of(NULL), WV_JSON_MISSING);
    wv_json_doc_free(doc);
}

/* ----------------------------------------------- reader: type checks */

/* One value of each type: null, bool, integer, real, string, array,
 * object. */
static const char *all_types = "[null,true,7,7.5,\"7\",[7],{\"7\":7}]";
enum { T_NULL, T_BOOL, T_INT, T_REAL, T_STRING, T_ARRAY, T_OBJECT, T_COUNT };

static void test_as_string_fails_on_every_other_type(void **state)
{
    wv_json_doc *doc = parse_ok(all_types);
    const wv_json_val *root = wv_json_doc_root(doc);
    for (size_t i = 0; i < T_COUNT; i++) {
        const char *s = "untouched";
        size_t n = 99;
        int rc = wv_json_as_string(wv_json_array_at(root, i), &s, &n);
        if (i == T_STRING) {
            assert_int_equal(rc, 0);
            assert_string_equal(s, "7");
        } else {
            assert_int_equal(rc, -EINVAL);
            assert_string_equal(s, "untouched");
            assert_int_equal(n, 99);
        }
    }
    wv_json_doc_free(doc);
}

static void test_as_i64_fails_on_every_other_type_and_on_reals(void **state)
{
    wv_json_doc *doc = parse_ok(all_types);
    const wv_json_val *root = wv_json_doc_root(doc);
    for (size_t i = 0; i < T_COUNT; i++) {
        int64_t v = -1;
        int rc = wv_json_as_i64(wv_json_array_at(root, i), &v);
        assert_int_equal(rc, i == T_INT ? 0 : -EINVAL);
        assert_int_equal(v, i == T_INT ? 7 : -1);
    }
    wv_json_doc_free(doc);
}

static void test_as_i64_rejects_numbers_with_fraction_or_exponent(void **state)
{
    wv_json_doc *doc = parse_ok("[3.0, 1e3, 1E0, -0.5, 2.5e-1]");
    const wv_json_val *root = wv_json_doc_root(doc);
    for (size_t i = 0; i < 5; i++) {
        int64_t v;
        assert_int_equal(wv_json_as_i64(wv_json_array_at(root, i), &v), -EINVAL);
    }
    wv_json_doc_free(doc);
}

static void test_as_i64_reads_int64_extremes_exactly_and_rejects_beyond(void **state)
{
    wv_json_doc *doc = parse_ok("[-9223372036854775808, 9223372036854775807, "
                                "9223372036854775808, -9223372036854775809, "
                                "100000000000000000000, -0, 9007199254740993]");
    const wv_json_val *root = wv_json_doc_root(doc);
    int64_t v;
    assert_int_equal(wv_json_as_i64(wv_json_array_at(root, 0), &v), 0);
    assert_true(v == INT64_MIN);
    assert_int_equal(wv_json_as_i64(wv_json_array_at(root, 1), &v), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(wv_json_as_i64(wv_json_array_at(root, 2), &v), -EINVAL);
    assert_int_equal(wv_json_as_i64(wv_json_array_at(root, 3), &v), -EINVAL);
    assert_int_equal(wv_json_as_i64(wv_json_array_at(root, 4), &v), -EINVAL);
    assert_int_equal(wv_json_as_i64(wv_json_array_at(root, 5), &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(wv_json_as_i64(wv_json_array_at(root, 6), &v), 0);
    assert_true(v == INT64_C(9007199254740993)); /* 2^53 + 1: no double on the way */
    wv_json_doc_free(doc);
}

static void test_as_double_fails_on_every_other_type(void **state)
{
    wv_json_doc *doc = parse_ok(all_types);
    const wv_json_val *root = wv_json_doc_root(doc);
    for (size_t i = 0; i < T_COUNT; i++) {
        double v = -1;
        int rc = wv_json_as_double(wv_json_array_at(root, i), &v);
        bool number = i == T_INT || i == T_REAL;
        assert_int_equal(rc, number ? 0 : -EINVAL);
        assert_true(v == (i == T_INT ? 7.0 : i == T_REAL ? 7.5 : -1.0));
    }
    wv_json_doc_free(doc);
}

static void test_as_double_reads_numbers_correctly_rounded(void **state)
{
    static const char *texts[] = {
        "0.1",
        "1e300",
        "-0.0",
        "0.3333333333333333",
        "1.5",
        "100",
        "-42",
        "5e-324",
        "1.7976931348623157e308",
        "2.5e-3",
        "123456.789",
        "1E22",
        "1e23",
        "0.000001234",
        "9007199254740993",
        "123456789012345678901234567890",
        "3.14159265358979323846264338327950288",
        "1e-400",
        "-1.0E+2",
    };
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_array_begin(&j);
    for (size_t i = 0; i < ARRAY_LEN(texts); i++)
        wv_json_raw(&j, texts[i], strlen(texts[i]));
    wv_json_array_end(&j);
    assert_int_equal(wv_json_finish(&j), 0);
    wv_json_doc *doc = parse_ok(text_of(&b));
    for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
        double got, want = strtod(texts[i], NULL);
        assert_int_equal(wv_json_as_double(wv_json_array_at(wv_json_doc_root(doc), i), &got), 0);
        if (memcmp(&got, &want, sizeof got) != 0)
            fail_msg("%s: got %.17g, want %.17g", texts[i], got, want);
    }
    wv_json_doc_free(doc);
    wv_buf_free(&b);
}

static void test_as_double_matches_strtod_on_random_short_decimals(void **state)
{
    /* The fast path (<= 15 digits, exponent within 22) against strtod. */
    char text[64];
    for (int i = 0; i < 20000; i++) {
        uint64_t r = rng();
        long long mantissa = (long long)(r % 1000000000000000ull);
        int point = (int)(r >> 50) % 16, exponent = (int)(r >> 40) % 50 - 25;
        int len = snprintf(text, sizeof text, "%s%lld", r >> 63 ? "-" : "", mantissa);
        if (point && point < len && text[len - point - 1] != '-') {
            memmove(text + len - point + 1, text + len - point, (size_t)point + 1);
            text[len - point] = '.';
            len++;
        }
        snprintf(text + len, sizeof text - (size_t)len, "e%d", exponent);
        wv_json_doc *doc = parse_ok(text);
        double got, want = strtod(text, NULL);
        assert_int_equal(wv_json_as_double(wv_json_doc_root(doc), &got), 0);
        if (memcmp(&got, &want, sizeof got) != 0)
            fail_msg("%s: got %.17g, want %.17g", text, got, want);
        wv_json_doc_free(doc);
    }
}

static void test_as_double_rejects_numbers_beyond_double_range(void **state)
{
    wv_json_doc *doc = parse_ok("[1e400, -1e400]");
    double v = 5;
    assert_int_equal(wv_json_as_double(wv_json_array_at(wv_json_doc_root(doc), 0), &v), -EINVAL);
    assert_int_equal(wv_json_as_double(wv_json_array_at(wv_json_doc_root(doc), 1), &v), -EINVAL);
    assert_true(v == 5);
    wv_json_doc_free(doc);
}

static void test_as_bool_fails_on_every_other_type(void **state)
{
    wv_json_doc *doc = parse_ok(all_types);
    const wv_json_val *root = wv_json_doc_root(doc);
    for (size_t i = 0; i < T_COUNT; i++) {
        bool v = false;
        int rc = wv_json_as_bool(wv_json_array_at(root, i), &v);
        assert_int_equal(rc, i == T_BOOL ? 0 : -EINVAL);
        assert_int_equal(v, i == T_BOOL);
    }
    wv_json_doc_free(doc);
}

static void test_is_null_only_for_json_null_not_for_missing(void **state)
{
    wv_json_doc *doc = parse_ok(all_types);
    const wv_json_val *root = wv_json_doc_root(doc);
    for (size_t i = 0; i < T_COUNT; i++)
        assert_int_equal(wv_json_is_null(wv_json_array_at(root, i)), i == T_NULL);
    assert_false(wv_json_is_null(NULL));
    wv_json_doc_free(doc);
}

static void test_getters_fail_on_null_values(void **state)
{
    const char *s;
    int64_t i;
    double d;
    bool b;
    assert_int_equal(wv_json_as_string(NULL, &s, NULL), -EINVAL);
    assert_int_equal(wv_json_as_i64(NULL, &i), -EINVAL);
    assert_int_equal(wv_json_as_double(NULL, &d), -EINVAL);
    assert_int_equal(wv_json_as_bool(NULL, &b), -EINVAL);
    assert_null(wv_json_doc_root(NULL));
    assert_null(wv_json_object_at(NULL, 0, NULL, NULL));
    assert_int_equal(wv_json_object_len(NULL), -EINVAL);
    wv_json_doc_free(NULL);
}

static void test_field_getters_name_the_member_in_errmsg(void **state)
{
    wv_json_doc *doc = parse_ok("{\"age\":\"thirty\",\"big\":1e99,\"n\":2.5,\"ok\":1}");
    const wv_json_val *root = wv_json_doc_root(doc);
    int64_t v;
    double d;
    bool b;
    const char *s;
    assert_int_equal(wv_json_get_i64(root, "age", &v), -EINVAL);
    assert_string_equal(wv_errmsg(), "age: expected an integer");
    assert_int_equal(wv_json_get_i64(root, "height", &v), -EINVAL);
    assert_string_equal(wv_errmsg(), "height: missing");
    assert_int_equal(wv_json_get_i64(root, "n", &v), -EINVAL);
    assert_string_equal(wv_errmsg(), "n: expected an integer in int64 range");
    assert_int_equal(wv_json_get_string(root, "ok", &s, NULL), -EINVAL);
    assert_string_equal(wv_errmsg(), "ok: expected a string");
    assert_int_equal(wv_json_get_bool(root, "ok", &b), -EINVAL);
    assert_string_equal(wv_errmsg(), "ok: expected true or false");
    assert_int_equal(wv_json_get_double(root, "age", &d), -EINVAL);
    assert_string_equal(wv_errmsg(), "age: expected a number");
    assert_int_equal(wv_json_get_double(root, "big", &d), 0);
    assert_true(d == 1e99);
    wv_json_doc_free(doc);
}

/* ------------------------------------------------ reader: bad input */

static void test_parse_rejects_malformed_json_with_a_message(void **state)
{
    static const char *bad[] = {
        "",
        " ",
        "[1,]",
        "[,1]",
        "[1 2]",
        "{\"a\" 1}",
        "{\"a\":}",
        "{,}",
        "{\"a\":1,}",
        "{1:2}",
        "{a:1}",
        "[01]",
        "[-]",
        "[1.]",
        "[.5]",
        "[1e]",
        "[1e+]",
        "[+1]",
        "[0x10]",
        "[NaN]",
        "[Infinity]",
        "[tru]",
        "[nul]",
        "[True]",
        "[1] x",
        "[1][2]",
        "1 2",
        "[1 /* c */]",
        "// c\n1",
        "[\"a\tb\"]",
        "[\"\\x\"]",
        "[\"\\u12\"]",
        "[\"\\uZZZZ\"]",
        "[\"\\ud800\"]",
        "[\"\\udc00\"]",
        "[\"\\ud800\\u0041\"]",
        "[\"\\u0000\"]",
        "['a']",
        "[\"abc]",
        "\"\\",
        "{\"a\":1}}",
        "[]]",
        "]",
        "}",
        "{]",
        "[}",
        "\xef\xbb\xbf{}",
        "[\"\xff\"]",
        "[\"\xc0\xaf\"]",
        "[\"\xed\xa0\x80\"]",
        "[\"\xf4\x90\x80\x80\"]",
        "[\"\xe2\x82\"]",
        "[\xc3\xa9]",
        "-",
        "--1",
        "1.5.5",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        parse_rejected(bad[i], strlen(bad[i]));
}

static void test_parse_rejects_nul_bytes_anywhere(void **state)
{
    parse_rejected("[1]\0", 4);
    parse_rejected("[\"a\0b\"]", 7);
    parse_rejected("\0", 1);
}

static void test_parse_rejects_every_truncation_of_a_document(void **state)
{
    const char *text = "{\"a\":[1,-2.5e3,true,false,null,\"s\\u00e9\\n\"],\"b\":{\"c\":{}}}";
    size_t n = strlen(text);
    for (size_t cut = 0; cut < n; cut++)
        parse_rejected(text, cut);
    wv_json_doc_free(parse_ok(text));
}

static void test_parse_error_names_line_column_and_byte(void **state)
{
    const char *text = "{\n  \"a\": 1,\n  \"b\" 2\n}";
    wv_json_doc *doc;
    assert_int_equal(wv_json_parse(text, strlen(text), &doc), -EINVAL);
    assert_string_equal(wv_errmsg(),
                        "line 3, column 7 (byte 18): expected ':' after an object key");
}

static void test_parse_rejects_1000_levels_of_nesting_cleanly(void **state)
{
    char text[2001];
    memset(text, '[', 1000);
    memset(text + 1000, ']', 1000);
    wv_json_doc *doc;
    assert_int_equal(wv_json_parse(text, 2000, &doc), -EINVAL);
    assert_null(doc);
    assert_non_null(strstr(wv_errmsg(), "nested too deeply"));
    assert_non_null(strstr(wv_errmsg(), "byte 64"));
}

static void test_parse_accepts_64_levels_and_rejects_65(void **state)
{
    char text[512];
    for (int depth = 64; depth <= 65; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++)
            n += (size_t)snprintf(text + n, sizeof text - n, i % 2 ? "[" : "{\"\":");
        text[n++] = '1';
        for (int i = depth - 1; i >= 0; i--)
            text[n++] = i % 2 ? ']' : '}';
        wv_json_doc *doc = NULL;
        int rc = wv_json_parse(text, n, &doc);
        assert_int_equal(rc, depth == 64 ? 0 : -EINVAL);
        wv_json_doc_free(doc);
    }
}

static void test_parse_max_depth_option_changes_the_limit(void **state)
{
    enum { DEPTH = 1000 };
    char *text = malloc(2 * DEPTH);
    assert_non_null(text);
    memset(text, '[', DEPTH);
    memset(text + DEPTH, ']', DEPTH);
    wv_json_doc *doc;
    assert_int_equal(
        wv_json_parse_with(text, 2 * DEPTH, &(wv_json_parse_opts){.max_depth = DEPTH}, &doc), 0);
    const wv_json_val *v = wv_json_doc_root(doc);
    for (int i = 1; i < DEPTH; i++)
        v = wv_json_array_at(v, 0);
    assert_int_equal(wv_json_array_len(v), 0);
    wv_json_doc_free(doc);
    assert_int_equal(
        wv_json_parse_with(text, 2 * DEPTH, &(wv_json_parse_opts){.max_depth = 10}, &doc), -EINVAL);
    free(text);
}

static void test_parse_rejects_text_over_max_bytes_with_emsgsize(void **state)
{
    const char *text = "[1,2,3,4,5]";
    wv_json_doc *doc;
    assert_int_equal(
        wv_json_parse_with(text, strlen(text), &(wv_json_parse_opts){.max_bytes = 10}, &doc),
        -EMSGSIZE);
    assert_null(doc);
    assert_non_null(strstr(wv_errmsg(), "over the limit"));
    assert_int_equal(
        wv_json_parse_with(text, strlen(text), &(wv_json_parse_opts){.max_bytes = 11}, &doc), 0);
    wv_json_doc_free(doc);
}

static void test_parse_null_text_is_einval(void **state)
{
    wv_json_doc *doc;
    assert_int_equal(wv_json_parse(NULL, 0, &doc), -EINVAL);
    assert_null(doc);
}

#ifndef WEAVE_SANITIZE
/* malloc that fails for sizes above this (0: never), to reach the parser's
 * out-of-memory path. Not under ASan, which owns malloc. */
static size_t malloc_fails_above;
void *__libc_malloc(size_t n);

void *malloc(size_t n)
{
    if (malloc_fails_above && n > malloc_fails_above)
        return NULL;
    return __libc_malloc(n);
}
#endif

static void test_parse_fails_with_enomem_when_the_document_cannot_be_allocated(void **state)
{
#ifdef WEAVE_SANITIZE
    skip();
#else
    enum { N = 100000 };
    char *text = malloc(2 * N + 1);
    assert_non_null(text);
    text[0] = '[';
    for (int i = 0; i < N - 1; i++)
        memcpy(text + 1 + 2 * i, "0,", 2);
    memcpy(text + 2 * N - 1, "0]", 2);
    wv_json_doc *doc;
    malloc_fails_above = 1 << 20;
    int rc = wv_json_parse(text, 2 * N + 1, &doc);
    malloc_fails_above = 0;
    assert_int_equal(rc, -ENOMEM);
    assert_null(doc);
    assert_non_null(strstr(wv_errmsg(), "no memory"));
    assert_int_equal(wv_json_parse(text, 2 * N + 1, &doc), 0); /* and it was only that */
    assert_int_equal(wv_json_array_len(wv_json_doc_root(doc)), N);
    wv_json_doc_free(doc);
    free(text);
#endif
}

static void test_parse_survives_random_mutations_of_a_valid_document(void **state)
{
    const char *seed = "{\"id\":12,\"name\":\"Zo\xc3\xab\",\"tags\":[\"a\\n\",true,null,-1.5e3],"
                       "\"nested\":{\"x\":[[]],\"y\":\"\\ud83d\\ude00\"}}";
    size_t n = strlen(seed);
    char text[256];
    for (int round = 0; round < 20000; round++) {
        memcpy(text, seed, n);
        size_t len = n;
        for (int m = (int)(rng() % 4); m >= 0 && len > 0; m--) {
            uint64_t r = rng();
            size_t at = (size_t)(r % len);
            switch (r >> 32 & 3) {
            case 0: /* replace a byte */
                text[at] = (char)(r >> 40);
                break;
            case 1: /* delete a byte */
                memmove(text + at, text + at + 1, len - at - 1);
                len--;
                break;
            case 2: /* insert a structural byte */
                if (len < sizeof text) {
                    memmove(text + at + 1, text + at, len - at);
                    text[at] = "{}[]\",:\\"[r >> 40 & 7];
                    len++;
                }
                break;
            default: /* cut */
                len = at;
            }
        }
        wv_json_doc *doc = NULL;
        int rc = wv_json_parse(text, len, &doc);
        assert_true(rc == 0 || rc == -EINVAL);
        if (rc == 0) { /* whatever parsed can be walked */
            const wv_json_val *root = wv_json_doc_root(doc);
            for (long i = 0; i < wv_json_object_len(root); i++) {
                const char *s;
                const wv_json_val *v = wv_json_object_at(root, (size_t)i, &s, NULL);
                assert_non_null(v);
                (void)wv_json_as_string(v, &s, NULL);
            }
        }
        wv_json_doc_free(doc);
    }
}

/* ------------------------------------------------------ round trips */

static void test_round_trip_written_document_reads_back_equal(void **state)
{
    const char *tricky = "q\"b\\s/\n\t\x01\xe2\x80\xa8 caf\xc3\xa9 \xf0\x9f\x98\x80";
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_object_begin(&j);
    wv_json_key(&j, "min");
    wv_json_int(&j, INT64_MIN);
    wv_json_key(&j, "max");
    wv_json_int(&j, INT64_MAX);
    wv_json_key(&j, "third");
    wv_json_double(&j, 1.0 / 3);
    wv_json_key(&j, "negzero");
    wv_json_double(&j, -0.0);
    wv_json_key(&j, "big");
    wv_json_double(&j, 1e300);
    wv_json_key(&j, tricky);
    wv_json_string(&j, tricky);
    wv_json_key(&j, "list");
    wv_json_array_begin(&j);
    wv_json_bool(&j, true);
    wv_json_null(&j);
    wv_json_stringn(&j, "", 0);
    wv_json_array_end(&j);
    wv_json_object_end(&j);
    assert_int_equal(wv_json_finish(&j), 0);

    wv_json_doc *doc = parse_ok(text_of(&b));
    const wv_json_val *root = wv_json_doc_root(doc);
    int64_t i;
    double d;
    const char *s;
    size_t n;
    bool flag;
    assert_int_equal(wv_json_get_i64(root, "min", &i), 0);
    assert_true(i == INT64_MIN);
    assert_int_equal(wv_json_get_i64(root, "max", &i), 0);
    assert_true(i == INT64_MAX);
    assert_int_equal(wv_json_get_double(root, "third", &d), 0);
    assert_true(d == 1.0 / 3);
    assert_int_equal(wv_json_get_double(root, "negzero", &d), 0);
    assert_true(d == 0 && signbit(d));
    assert_int_equal(wv_json_get_double(root, "big", &d), 0);
    assert_true(d == 1e300);
    assert_int_equal(wv_json_get_string(root, tricky, &s, &n), 0);
    assert_int_equal(n, strlen(tricky));
    assert_string_equal(s, tricky);
    const wv_json_val *list = wv_json_get(root, "list");
    assert_int_equal(wv_json_array_len(list), 3);
    assert_int_equal(wv_json_as_bool(wv_json_array_at(list, 0), &flag), 0);
    assert_true(flag);
    assert_true(wv_json_is_null(wv_json_array_at(list, 1)));
    assert_int_equal(wv_json_as_string(wv_json_array_at(list, 2), &s, &n), 0);
    assert_int_equal(n, 0);
    wv_json_doc_free(doc);
    wv_buf_free(&b);
}

/* A random code point's UTF-8 (no surrogates, no U+0000), in every length. */
static size_t random_utf8(char *out)
{
    static const uint32_t limits[] = {0x80, 0x800, 0x10000, 0x110000};
    uint32_t c;
    for (;;) {
        uint64_t r = rng();
        c = (uint32_t)(r >> 8) % limits[r % 4];
        if (c != 0 && (c < 0xd800 || c > 0xdfff))
            break;
    }
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xc0 | c >> 6);
        out[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xe0 | c >> 12);
        out[1] = (char)(0x80 | (c >> 6 & 0x3f));
        out[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | c >> 18);
    out[1] = (char)(0x80 | (c >> 12 & 0x3f));
    out[2] = (char)(0x80 | (c >> 6 & 0x3f));
    out[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

static void test_round_trip_random_utf8_strings_read_back_identical(void **state)
{
    wv_buf b = {0};
    char s[400];
    for (int round = 0; round < 3000; round++) {
        size_t n = 0;
        for (int k = (int)(rng() % 80); k > 0; k--)
            n += random_utf8(s + n);
        write_string(&b, s, n);
        wv_json_doc *doc = parse_ok(text_of(&b));
        const char *got;
        size_t len;
        assert_int_equal(wv_json_as_string(wv_json_doc_root(doc), &got, &len), 0);
        assert_int_equal(len, n);
        assert_memory_equal(got, s, n);
        wv_json_doc_free(doc);
    }
    wv_buf_free(&b);
}

static void test_round_trip_invalid_utf8_comes_back_as_valid_json(void **state)
{
    wv_buf b = {0};
    unsigned char s[64];
    for (int round = 0; round < 3000; round++) {
        size_t n = rng() % sizeof s;
        for (size_t i = 0; i < n; i++)
            s[i] = (unsigned char)(rng() % 255 + 1); /* the reader refuses \u0000 */
        write_string(&b, (const char *)s, n);
        wv_json_doc_free(parse_ok(text_of(&b))); /* the strict reader accepts it */
    }
    wv_buf_free(&b);
}

static void test_parse_reads_a_1mb_document_of_10k_objects(void **state)
{
    enum { USERS = 10000 };
    wv_buf b = {0};
    wv_json j;
    wv_json_init(&j, &b);
    wv_json_array_begin(&j);
    for (int i = 0; i < USERS; i++) {
        char name[64];
        snprintf(name, sizeof name, "User \"%d\" \xe2\x9c\x93 with a longer description text", i);
        wv_json_object_begin(&j);
        wv_json_key(&j, "id");
        wv_json_int(&j, i);
        wv_json_key(&j, "name");
        wv_json_string(&j, name);
        wv_json_key(&j, "score");
        wv_json_double(&j, i / 8.0);
        wv_json_key(&j, "active");
        wv_json_bool(&j, i % 2);
        wv_json_key(&j, "tags");
        wv_json_array_begin(&j);
        for (int t = 0; t < i % 4; t++)
            wv_json_int(&j, t);
        wv_json_array_end(&j);
        wv_json_object_end(&j);
    }
    wv_json_array_end(&j);
    assert_int_equal(wv_json_finish(&j), 0);
    assert_true(b.n > 1000000);

    wv_json_doc *doc;
    assert_int_equal(wv_json_parse(b.p, b.n, &doc), 0);
    const wv_json_val *root = wv_json_doc_root(doc);
    assert_int_equal(wv_json_array_len(root), USERS);
    for (int i = 0; i < USERS; i++) {
        const wv_json_val *u = wv_json_array_at(root, (size_t)i);
        int64_t id;
        double score;
        bool active;
        const char *name;
        char want[64];
        snprintf(want, sizeof want, "User \"%d\" \xe2\x9c\x93 with a longer description text", i);
        assert_int_equal(wv_json_get_i64(u, "id", &id), 0);
        assert_int_equal(id, i);
        assert_int_equal(wv_json_get_string(u, "name", &name, NULL), 0);
        assert_string_equal(name, want);
        assert_int_equal(wv_json_get_double(u, "score", &score), 0);
        assert_true(score == i / 8.0);
        assert_int_equal(wv_json_get_bool(u, "active", &active), 0);
        assert_int_equal(active, i % 2);
        assert_int_equal(wv_json_array_len(wv_json_get(u, "tags")), i % 4);
    }
    wv_json_doc_free(doc);
    wv_buf_free(&b);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        /* writer: structure */
        cmocka_unit_test(test_writer_nests_objects_and_arrays_with_commas_between_members),
        cmocka_unit_test(test_writer_puts_commas_between_array_elements_only),
        cmocka_unit_test(test_writer_appends_after_what_the_buffer_holds),
        cmocka_unit_test(test_writer_null_string_writes_null),
        /* writer: escaping */
        cmocka_unit_test(test_writer_escapes_quote_backslash_and_short_form_controls),
        cmocka_unit_test(test_writer_escapes_other_control_bytes_as_u00xx),
        cmocka_unit_test(test_writer_escapes_u2028_and_u2029),
        cmocka_unit_test(test_writer_copies_valid_multibyte_utf8_unchanged),
        cmocka_unit_test(test_writer_replaces_invalid_utf8_with_one_u_fffd_per_maximal_subpart),
        cmocka_unit_test(test_writer_escapes_keys_like_strings),
        cmocka_unit_test(test_writer_escapes_random_ascii_like_a_byte_by_byte_escaper),
        /* writer: numbers */
        cmocka_unit_test(test_writer_doubles_are_the_shortest_text_that_round_trips),
        cmocka_unit_test(test_writer_random_doubles_read_back_bit_for_bit),
        cmocka_unit_test(test_writer_doubles_print_what_the_printf_reference_prints),
        cmocka_unit_test(test_writer_nan_and_infinity_are_einval),
        cmocka_unit_test(test_writer_int64_and_uint64_extremes),
        cmocka_unit_test(test_numbers_use_a_dot_whatever_the_locale),
        /* writer: misuse and limits */
        cmocka_unit_test(test_writer_value_without_key_in_object_is_einval),
        cmocka_unit_test(test_writer_key_in_array_is_einval),
        cmocka_unit_test(test_writer_key_at_top_level_or_twice_in_a_row_is_einval),
        cmocka_unit_test(test_writer_unbalanced_end_is_einval),
        cmocka_unit_test(test_writer_second_top_level_value_is_einval),
        cmocka_unit_test(test_writer_finish_rejects_an_unfinished_document),
        cmocka_unit_test(test_writer_error_is_sticky_and_later_calls_write_nothing),
        cmocka_unit_test(test_writer_allows_64_levels_and_rejects_the_65th),
        cmocka_unit_test(test_writer_64_levels_balanced_is_a_complete_document),
        cmocka_unit_test(test_writer_buffer_limit_gives_sticky_enomem),
        cmocka_unit_test(test_writer_limit_hit_by_escapes_gives_enomem),
        /* reader: basics */
        cmocka_unit_test(test_parse_reads_a_small_request_body),
        cmocka_unit_test(test_parse_accepts_any_value_at_the_top_with_whitespace_around),
        cmocka_unit_test(test_parse_number_at_the_very_end_of_unterminated_input),
        cmocka_unit_test(test_parse_copies_the_text_so_the_input_may_change),
        cmocka_unit_test(test_parse_unescapes_every_escape),
        cmocka_unit_test(test_parse_keeps_valid_utf8_in_strings),
        /* reader: lookups */
        cmocka_unit_test(test_get_returns_null_for_a_missing_member_or_a_non_object),
        cmocka_unit_test(test_get_last_of_duplicate_members_wins),
        cmocka_unit_test(test_get_matches_keys_after_unescaping_them),
        cmocka_unit_test(test_array_len_and_at_read_elements_in_order),
        cmocka_unit_test(test_object_len_and_at_walk_members_in_document_order),
        cmocka_unit_test(test_type_of_names_each_kind_of_value),
        /* reader: type checks */
        cmocka_unit_test(test_as_string_fails_on_every_other_type),
        cmocka_unit_test(test_as_i64_fails_on_every_other_type_and_on_reals),
        cmocka_unit_test(test_as_i64_rejects_numbers_with_fraction_or_exponent),
        cmocka_unit_test(test_as_i64_reads_int64_extremes_exactly_and_rejects_beyond),
        cmocka_unit_test(test_as_double_fails_on_every_other_type),
        cmocka_unit_test(test_as_double_reads_numbers_correctly_rounded),
        cmocka_unit_test(test_as_double_matches_strtod_on_random_short_decimals),
        cmocka_unit_test(test_as_double_rejects_numbers_beyond_double_range),
        cmocka_unit_test(test_as_bool_fails_on_every_other_type),
        cmocka_unit_test(test_is_null_only_for_json_null_not_for_missing),
        cmocka_unit_test(test_getters_fail_on_null_values),
        cmocka_unit_test(test_field_getters_name_the_member_in_errmsg),
        /* reader: bad input and limits */
        cmocka_unit_test(test_parse_rejects_malformed_json_with_a_message),
        cmocka_unit_test(test_parse_rejects_nul_bytes_anywhere),
        cmocka_unit_test(test_parse_rejects_every_truncation_of_a_document),
        cmocka_unit_test(test_parse_error_names_line_column_and_byte),
        cmocka_unit_test(test_parse_rejects_1000_levels_of_nesting_cleanly),
        cmocka_unit_test(test_parse_accepts_64_levels_and_rejects_65),
        cmocka_unit_test(test_parse_max_depth_option_changes_the_limit),
        cmocka_unit_test(test_parse_rejects_text_over_max_bytes_with_emsgsize),
        cmocka_unit_test(test_parse_null_text_is_einval),
        cmocka_unit_test(test_parse_fails_with_enomem_when_the_document_cannot_be_allocated),
        cmocka_unit_test(test_parse_survives_random_mutations_of_a_valid_document),
        /* round trips */
        cmocka_unit_test(test_round_trip_written_document_reads_back_equal),
        cmocka_unit_test(test_round_trip_random_utf8_strings_read_back_identical),
        cmocka_unit_test(test_round_trip_invalid_utf8_comes_back_as_valid_json),
        cmocka_unit_test(test_parse_reads_a_1mb_document_of_10k_objects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
