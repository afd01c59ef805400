/*
 * wv_buf: appending (bytes, strings, printf, integers), the limit that turns
 * growth into -ENOMEM with the contents kept, and wv_buf_html's escaping
 * (the five entities, runs of plain bytes, bytes that pass through, and
 * nothing appended when the limit stops it).
 */
#include "harness.h"

#include <string.h>

#include <weave/buf.h>

/* b's bytes as a NUL-terminated string (b gains the NUL, not counted) */
static const char *text_of(wv_buf *b)
{
    assert_int_equal(wv_buf_reserve(b, 1), 0);
    b->p[b->n] = '\0';
    return b->p;
}

static void test_buf_append_puts_printf_and_i64_concatenate(void **state)
{
    (void)state;
    wv_buf b = {0};
    assert_int_equal(wv_buf_append(&b, "ab", 2), 0);
    assert_int_equal(wv_buf_puts(&b, "cd"), 0);
    assert_int_equal(wv_buf_printf(&b, "<%d|%s>", 42, "x"), 0);
    assert_int_equal(wv_buf_i64(&b, -9223372036854775807LL - 1), 0);
    assert_int_equal(wv_buf_i64(&b, 0), 0);
    assert_string_equal(text_of(&b), "abcd<42|x>-92233720368547758080");
    wv_buf_reset(&b);
    assert_int_equal(b.n, 0);
    assert_int_equal(wv_buf_puts(&b, "again"), 0);
    assert_string_equal(text_of(&b), "again");
    wv_buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.n, 0);
}

static void test_buf_printf_longer_than_its_stack_buffer(void **state)
{
    (void)state;
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    wv_buf b = {0};
    assert_int_equal(wv_buf_printf(&b, "[%s]", big), 0);
    assert_int_equal(b.n, sizeof big + 1);
    assert_int_equal(b.p[0], '[');
    assert_int_equal(b.p[b.n - 1], ']');
    assert_int_equal(b.p[500], 'z');
    wv_buf_free(&b);
}

static void test_buf_limit_refuses_growth_and_keeps_the_contents(void **state)
{
    (void)state;
    wv_buf b = {.limit = 8};
    assert_int_equal(wv_buf_puts(&b, "12345"), 0);
    assert_int_equal(wv_buf_puts(&b, "6789"), -ENOMEM);
    assert_int_equal(b.n, 5);
    assert_int_equal(wv_buf_puts(&b, "678"), 0);
    assert_int_equal(b.n, 8);
    assert_memory_equal(b.p, "12345678", 8);
    assert_int_equal(wv_buf_append(&b, "", 0), 0);
    assert_int_equal(wv_buf_i64(&b, 1), -ENOMEM);
    wv_buf_free(&b);
}

static void test_buf_limit_holds_even_when_the_memory_is_already_there(void **state)
{
    wv_buf b = {0};
    assert_int_equal(wv_buf_append(&b, "0123456789", 10), 0); /* 256 bytes of capacity */
    b.limit = 12;
    assert_int_equal(wv_buf_append(&b, "ab", 2), 0);
    assert_int_equal(wv_buf_append(&b, "c", 1), -ENOMEM);
    assert_int_equal(wv_buf_reserve(&b, SIZE_MAX), -ENOMEM);
    assert_int_equal(b.n, 12);
    assert_memory_equal(b.p, "0123456789ab", 12);
    wv_buf_free(&b);
}

static void test_buf_html_escapes_the_five_characters(void **state)
{
    (void)state;
    wv_buf b = {0};
    const char *in = "<script>alert(\"x & 'y'\");</script>";
    assert_int_equal(wv_buf_html(&b, in, strlen(in)), 0);
    assert_string_equal(text_of(&b), "&lt;script&gt;alert(&quot;x &amp; &#x27;y&#x27;&quot;);"
                                     "&lt;/script&gt;");
    wv_buf_free(&b);
}

static void test_buf_html_appends_after_existing_bytes(void **state)
{
    (void)state;
    wv_buf b = {0};
    assert_int_equal(wv_buf_puts(&b, "<td>"), 0);
    assert_int_equal(wv_buf_html(&b, "a<b", 3), 0);
    assert_int_equal(wv_buf_puts(&b, "</td>"), 0);
    assert_string_equal(text_of(&b), "<td>a&lt;b</td>");
    wv_buf_free(&b);
}

static void test_buf_html_passes_other_bytes_through(void **state)
{
    (void)state;
    /* UTF-8, a NUL, controls, and what other escapers touch (= ` /) */
    const char in[] = "caf\xc3\xa9 \xe2\x80\x94 a\0b\t\r\n=`/";
    wv_buf b = {0};
    assert_int_equal(wv_buf_html(&b, in, sizeof in - 1), 0);
    assert_int_equal(b.n, sizeof in - 1);
    assert_memory_equal(b.p, in, sizeof in - 1);
    wv_buf_free(&b);
}

static void test_buf_html_of_nothing_appends_nothing(void **state)
{
    (void)state;
    wv_buf b = {0};
    assert_int_equal(wv_buf_html(&b, NULL, 0), 0);
    assert_int_equal(b.n, 0);
    assert_int_equal(wv_buf_html(&b, "&", 0), 0);
    assert_int_equal(b.n, 0);
    wv_buf_free(&b);
}

static void test_buf_html_only_entities_grows_sixfold(void **state)
{
    (void)state;
    char in[3000];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = i % 2 ? '"' : '\'';
    wv_buf b = {0};
    assert_int_equal(wv_buf_html(&b, in, sizeof in), 0);
    assert_int_equal(b.n, 6 * sizeof in);
    assert_memory_equal(b.p, "&#x27;&quot;", 12);
    assert_memory_equal(b.p + b.n - 6, "&quot;", 6);
    wv_buf_free(&b);
}

static void test_buf_html_past_the_limit_appends_nothing(void **state)
{
    (void)state;
    wv_buf b = {.limit = 16};
    assert_int_equal(wv_buf_puts(&b, "ok:"), 0);
    /* the first run and entity fit; the second entity does not */
    assert_int_equal(wv_buf_html(&b, "ab&cd&", 6), -ENOMEM);
    assert_int_equal(b.n, 3);
    assert_memory_equal(b.p, "ok:", 3);
    assert_int_equal(wv_buf_html(&b, "ab&c", 4), 0);
    assert_string_equal(text_of(&b), "ok:ab&amp;c");
    wv_buf_free(&b);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_append_puts_printf_and_i64_concatenate),
        cmocka_unit_test(test_buf_printf_longer_than_its_stack_buffer),
        cmocka_unit_test(test_buf_limit_refuses_growth_and_keeps_the_contents),
        cmocka_unit_test(test_buf_limit_holds_even_when_the_memory_is_already_there),
        cmocka_unit_test(test_buf_html_escapes_the_five_characters),
        cmocka_unit_test(test_buf_html_appends_after_existing_bytes),
        cmocka_unit_test(test_buf_html_passes_other_bytes_through),
        cmocka_unit_test(test_buf_html_of_nothing_appends_nothing),
        cmocka_unit_test(test_buf_html_only_entities_grows_sixfold),
        cmocka_unit_test(test_buf_html_past_the_limit_appends_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
