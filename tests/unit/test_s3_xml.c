/*
 * The S3 client's XML reader (src/s3/xml.c) on its own: the replies S3
 * sends become trees with decoded, NUL-terminated texts; everything the
 * reader does not accept (DOCTYPE, CDATA, mixed content, bad entities,
 * invalid UTF-8, control bytes, unbalanced tags, a second root) is
 * -EPROTO with where and what; depth and element count are bounded; and
 * every cut of a valid reply is refused without reading past its end
 * (each input is an exact-size heap copy, so AddressSanitizer sees a
 * read one byte beyond).
 */
#include "harness.h"

#include "s3/s3_internal.h"

/* Parse a heap copy of exactly text's bytes; the copy stays alive in
 * *keep (texts point into it). */
static int parse(const char *text, size_t n, s3_xml *x, char **keep, char *why, size_t cap)
{
    *keep = malloc(n ? n : 1);
    assert_non_null(*keep);
    memcpy(*keep, text, n);
    return s3_xml_parse(*keep, n, x, why, cap);
}

static const char list_reply[] =
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
    "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
    "<Name>bucket</Name><Prefix></Prefix><KeyCount>2</KeyCount>"
    "<MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
    "<Contents><Key>a &amp; b &lt;c&gt; &quot;d&quot; &apos;e&apos;</Key>"
    "<LastModified>2009-10-12T17:50:30.000Z</LastModified>"
    "<ETag>&quot;fba9dede5f27731c9771645a39863328&quot;</ETag><Size>434234</Size>"
    "<StorageClass>STANDARD</StorageClass></Contents>\n  "
    "<Contents><Key>caf\xC3\xA9 &#x1F600; &#233;</Key><Size>0</Size><Owner/></Contents>"
    "</ListBucketResult>\n";

static void test_s3_xml_list_reply_becomes_a_tree_with_decoded_texts(void **state)
{
    s3_xml x = {0};
    char *buf, why[128];
    assert_int_equal(parse(list_reply, sizeof list_reply - 1, &x, &buf, why, sizeof why), 0);
    assert_true(s3_xml_is(&x, 0, "ListBucketResult"));
    assert_string_equal(s3_xml_child_text(&x, 0, "Name"), "bucket");
    assert_string_equal(s3_xml_child_text(&x, 0, "Prefix"), ""); /* present and empty */
    assert_null(s3_xml_child_text(&x, 0, "Delimiter"));          /* absent */
    assert_string_equal(s3_xml_child_text(&x, 0, "IsTruncated"), "false");

    int32_t c = s3_xml_child(&x, 0, "Contents");
    assert_true(c > 0);
    assert_string_equal(s3_xml_child_text(&x, c, "Key"), "a & b <c> \"d\" 'e'");
    assert_string_equal(s3_xml_child_text(&x, c, "ETag"), "\"fba9dede5f27731c9771645a39863328\"");
    assert_string_equal(s3_xml_child_text(&x, c, "Size"), "434234");
    int32_t c2 = s3_xml_next(&x, c);
    assert_true(c2 > c);
    assert_string_equal(s3_xml_child_text(&x, c2, "Key"),
                        "caf\xC3\xA9 \xF0\x9F\x98\x80 \xC3\xA9"); /* UTF-8, both kinds of refs */
    assert_string_equal(s3_xml_child_text(&x, c2, "Owner"), "");  /* <Owner/> */
    assert_int_equal(s3_xml_next(&x, c2), -1);
    /* the parent links agree with the child links */
    for (int32_t k = 1; k < x.n; k++) {
        int32_t parent = x.nodes[k].parent;
        assert_true(parent >= 0 && parent < k);
        bool found = false;
        for (int32_t ch = x.nodes[parent].first_child; ch >= 0; ch = x.nodes[ch].next_sibling)
            found = found || ch == k;
        assert_true(found);
    }
    s3_xml_free(&x);
    free(buf);
}

static void test_s3_xml_error_document_gives_code_and_message(void **state)
{
    static const char doc[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n"
                              "<Error><Code>NoSuchKey</Code><Message>The resource you requested "
                              "does not exist</Message>\r\n<Resource>/mybucket/myfoto.jpg"
                              "</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>";
    s3_xml x = {0};
    char *buf, why[128];
    assert_int_equal(parse(doc, sizeof doc - 1, &x, &buf, why, sizeof why), 0);
    assert_true(s3_xml_is(&x, 0, "Error"));
    assert_string_equal(s3_xml_child_text(&x, 0, "Code"), "NoSuchKey");
    assert_string_equal(s3_xml_child_text(&x, 0, "Message"),
                        "The resource you requested does not exist");
    assert_string_equal(s3_xml_child_text(&x, 0, "RequestId"), "4442587FB7D0A2F9");
    s3_xml_free(&x);
    free(buf);
}

static void test_s3_xml_prefixes_attributes_comments_and_line_ends(void **state)
{
    static const char doc[] = "\xEF\xBB\xBF<!-- before --><?pi x?>\n"
                              "<s3:Root xmlns:s3='urn:x' a=\"1\"  b = 'two &amp; &#60;' >"
                              "<s3:Key>line1\r\nline2\rline3</s3:Key><Empty  /></s3:Root>"
                              "<!-- after -->\n";
    s3_xml x = {0};
    char *buf, why[128];
    assert_int_equal(parse(doc, sizeof doc - 1, &x, &buf, why, sizeof why), 0);
    assert_true(s3_xml_is(&x, 0, "Root")); /* the local name */
    assert_string_equal(s3_xml_child_text(&x, 0, "Key"), "line1\nline2\nline3");
    assert_true(s3_xml_child(&x, 0, "Empty") > 0);
    s3_xml_free(&x);
    free(buf);
}

typedef struct bad_case {
    const char *doc;
    const char *why; /* a piece of the reason */
} bad_case;

static void test_s3_xml_what_it_does_not_accept_is_eproto_with_the_reason(void **state)
{
    static const bad_case cases[] = {
        {"", "no root"},
        {"   \n", "no root"},
        {"<!DOCTYPE x [<!ENTITY a \"b\">]><x>&a;</x>", "DOCTYPE"},
        {"<x><![CDATA[raw]]></x>", "CDATA"},
        {"<x>text<y/></x>", "mixed content"},
        {"<x><y/>text</x>", "mixed content"},
        {"<x></y>", "does not match"},
        {"<x><y></x></y>", "does not match"},
        {"<x>", "ends inside"},
        {"<x><y>", "ends inside"},
        {"<x a=\"1></x>", "'<'"},
        {"<x/><y/>", "second root"},
        {"text<x/>", "outside the root"},
        {"<x/>text", "outside the root"},
        {"</x>", "end tag without"},
        {"<x>&foo;</x>", "entity"},
        {"<x>&amp</x>", "entity"},
        {"<x>&#0;</x>", "entity"},
        {"<x>&#xD800;</x>", "entity"},
        {"<x>&#x110000;</x>", "entity"},
        {"<x>&#1;</x>", "entity"},
        {"<x>&#;</x>", "entity"},
        {"<x>&#123456789;</x>", "entity"},
        {"<x>a & b</x>", "entity"},
        {"<x>\xC0\x80</x>", "UTF-8"},
        {"<x>\xED\xA0\x80</x>", "UTF-8"},
        {"<x>\xF5\x80\x80\x80</x>", "UTF-8"},
        {"<x>\xE2\x82</x>", "UTF-8"},
        {"<x>\x01</x>", "control"},
        {"<x><!-- c --></x>", "comment"},
        {"<x><?pi?></x>", "processing instruction"},
        {"<x a=1/>", "without quotes"},
        {"<x a=\"<\"/>", "'<'"},
        {"<x a/>", "without '='"},
        {"<x a=\"1\"b=\"2\"/>", "no space"},
        {"<1x/>", "element name"},
        {"<x\xC3\xA9/>", "no space"},
        {"<\xC3\xA9/>", "element name"},
        {"<!-- unterminated <x/>", "unterminated"},
        {"<x></x  junk>", "malformed end tag"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        s3_xml x = {0};
        char *buf, why[128];
        int rc = parse(cases[i].doc, strlen(cases[i].doc), &x, &buf, why, sizeof why);
        if (rc != -EPROTO || !strstr(why, cases[i].why))
            print_error("case %zu \"%s\": rc %d, why \"%s\" (want -EPROTO and \"%s\")\n", i,
                        cases[i].doc, rc, why, cases[i].why);
        assert_int_equal(rc, -EPROTO);
        assert_non_null(strstr(why, cases[i].why));
        assert_non_null(strstr(why, "at byte"));
        s3_xml_free(&x);
        free(buf);
    }
}

static void test_s3_xml_depth_and_element_count_are_bounded(void **state)
{
    char deep[33 * 3 + 33 * 4 + 1];
    size_t n = 0;
    for (int i = 0; i < 33; i++)
        n += (size_t)sprintf(deep + n, "<a>");
    for (int i = 0; i < 33; i++)
        n += (size_t)sprintf(deep + n, "</a>");
    s3_xml x = {0};
    char *buf, why[128];
    assert_int_equal(parse(deep, n, &x, &buf, why, sizeof why), -EMSGSIZE);
    assert_non_null(strstr(why, "too deep"));
    s3_xml_free(&x);
    free(buf);
    /* 32 deep is fine */
    n = 0;
    for (int i = 0; i < 32; i++)
        n += (size_t)sprintf(deep + n, "<a>");
    for (int i = 0; i < 32; i++)
        n += (size_t)sprintf(deep + n, "</a>");
    assert_int_equal(parse(deep, n, &x, &buf, why, sizeof why), 0);
    assert_int_equal(x.n, 32);
    s3_xml_free(&x);
    free(buf);

    static const char many[] = "<r><a/><a/><a/><a/><a/></r>";
    x = (s3_xml){.max_nodes = 5};
    assert_int_equal(parse(many, sizeof many - 1, &x, &buf, why, sizeof why), -EMSGSIZE);
    assert_non_null(strstr(why, "too many"));
    s3_xml_free(&x);
    free(buf);
    x = (s3_xml){.max_nodes = 6};
    assert_int_equal(parse(many, sizeof many - 1, &x, &buf, why, sizeof why), 0);
    s3_xml_free(&x);
    free(buf);
}

static void test_s3_xml_every_cut_of_a_reply_is_refused_without_overreading(void **state)
{
    size_t n = sizeof list_reply - 1;
    /* the reply ends in "</ListBucketResult>\n": cuts before its '>' are
     * incomplete; from there on only whitespace is missing */
    size_t complete = (size_t)(strstr(list_reply, "</ListBucketResult>") - list_reply) +
                      strlen("</ListBucketResult>");
    for (size_t cut = 0; cut < n; cut++) {
        s3_xml x = {0};
        char *buf, why[128];
        int rc = parse(list_reply, cut, &x, &buf, why, sizeof why);
        if (cut < complete)
            assert_int_equal(rc, -EPROTO);
        else
            assert_int_equal(rc, 0);
        s3_xml_free(&x);
        free(buf);
    }
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_s3_xml_list_reply_becomes_a_tree_with_decoded_texts),
        cmocka_unit_test(test_s3_xml_error_document_gives_code_and_message),
        cmocka_unit_test(test_s3_xml_prefixes_attributes_comments_and_line_ends),
        cmocka_unit_test(test_s3_xml_what_it_does_not_accept_is_eproto_with_the_reason),
        cmocka_unit_test(test_s3_xml_depth_and_element_count_are_bounded),
        cmocka_unit_test(test_s3_xml_every_cut_of_a_reply_is_refused_without_overreading),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
