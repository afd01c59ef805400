/*
 * The pickle codec (src/tasks/pickle.c) against what Python itself wrote:
 * tests/unit/pickle_fixtures/ holds JSON values and CPython 3.11's
 * pickle.dumps(json.loads(text), protocol=5) of each, RQ 1.13's job data
 * for a few calls, plain values pickled otherwise (older protocols,
 * tuples, memo GETs), and values that are not plain (capture.py there
 * regenerates them). Writing gives Python's bytes exactly (memo, frames,
 * batches); reading gives back the JSON; what is not plain is -ENOTSUP and
 * what is not a pickle -EBADMSG, truncated anywhere; depth, self-reference
 * and shared-memo blow-ups are bounded.
 */
#include "harness.h"

#include <errno.h>
#include <math.h>

#include "tasks/pickle.h"

static char *fixture(const char *name, size_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "tests/unit/pickle_fixtures/%s", name);
    return read_source_file(path, n);
}

static char *fixture_named(const char *fmt, const char *name, size_t *n)
{
    char file[256];
    snprintf(file, sizeof file, fmt, name);
    return fixture(file, n);
}

static wv_json_doc *parse(const char *text, size_t n)
{
    wv_json_doc *doc = NULL;
    if (wv_json_parse(text, n, &doc) < 0)
        fail_msg("not JSON (%s): %.*s", wv_errmsg(), (int)(n > 200 ? 200 : n), text);
    return doc;
}

static void assert_bytes(const wv_buf *got, const char *want, size_t n, const char *what)
{
    if (got->n != n || memcmp(got->p, want, n) != 0) {
        size_t i = 0;
        while (i < n && i < got->n && got->p[i] == want[i])
            i++;
        fail_msg("%s: %zu bytes, expected %zu; first difference at byte %zu", what, got->n, n, i);
    }
}

/* Whether two JSON values are equal (numbers by value, members in order). */
static bool json_equal(const wv_json_val *a, const wv_json_val *b)
{
    wv_json_type t = wv_json_type_of(a);
    if (t != wv_json_type_of(b))
        return false;
    int64_t i, j;
    double x, y;
    bool p, q;
    const char *s1, *s2;
    size_t n1, n2;
    switch (t) {
    case WV_JSON_NULL:
        return true;
    case WV_JSON_BOOL:
        wv_json_as_bool(a, &p);
        wv_json_as_bool(b, &q);
        return p == q;
    case WV_JSON_NUMBER:
        if (wv_json_as_i64(a, &i) == 0 || wv_json_as_i64(b, &j) == 0)
            return wv_json_as_i64(a, &i) == 0 && wv_json_as_i64(b, &j) == 0 && i == j;
        wv_json_as_double(a, &x);
        wv_json_as_double(b, &y);
        return x == y && signbit(x) == signbit(y);
    case WV_JSON_STRING:
        wv_json_as_string(a, &s1, &n1);
        wv_json_as_string(b, &s2, &n2);
        return n1 == n2 && memcmp(s1, s2, n1) == 0;
    case WV_JSON_ARRAY:
        if (wv_json_array_len(a) != wv_json_array_len(b))
            return false;
        for (size_t k = 0; k < (size_t)wv_json_array_len(a); k++)
            if (!json_equal(wv_json_array_at(a, k), wv_json_array_at(b, k)))
                return false;
        return true;
    case WV_JSON_OBJECT:
        if (wv_json_object_len(a) != wv_json_object_len(b))
            return false;
        for (size_t k = 0; k < (size_t)wv_json_object_len(a); k++) {
            const wv_json_val *va = wv_json_object_at(a, k, &s1, &n1);
            const wv_json_val *vb = wv_json_object_at(b, k, &s2, &n2);
            if (n1 != n2 || memcmp(s1, s2, n1) != 0 || !json_equal(va, vb))
                return false;
        }
        return true;
    default:
        return false;
    }
}

static void assert_json_equal(const char *got, size_t got_n, const char *want, size_t want_n)
{
    wv_json_doc *g = parse(got, got_n), *w = parse(want, want_n);
    if (!json_equal(wv_json_doc_root(g), wv_json_doc_root(w)))
        fail_msg("got %.*s\nexpected %.*s", (int)(got_n > 300 ? 300 : got_n), got,
                 (int)(want_n > 300 ? 300 : want_n), want);
    wv_json_doc_free(g);
    wv_json_doc_free(w);
}

static const char *const values[] = {
    "none",       "true",        "false",     "ints",    "floats",   "strings",
    "singletons", "keys_shared", "dup_keys",  "nested",  "one_each", "list_1001",
    "list_2000",  "dict_1000",   "dict_1001", "str_256", "memo_256",
};

static void test_pickle_dumps_is_byte_for_byte_what_python_writes(void **state)
{
    for (size_t i = 0; i < ARRAY_LEN(values); i++) {
        size_t jn, pn;
        char *json = fixture_named("v_%s.json", values[i], &jn);
        char *pkl = fixture_named("v_%s.pkl", values[i], &pn);
        wv_json_doc *doc = parse(json, jn);
        wv_buf out = {0};
        assert_int_equal(pickle_dumps(wv_json_doc_root(doc), &out), 0);
        assert_bytes(&out, pkl, pn, values[i]);
        wv_buf_free(&out);
        wv_json_doc_free(doc);
        free(json);
        free(pkl);
    }
}

static void test_pickle_loads_python_bytes_and_writes_them_again(void **state)
{
    for (size_t i = 0; i < ARRAY_LEN(values); i++) {
        size_t jn, pn;
        char *json = fixture_named("v_%s.json", values[i], &jn);
        char *pkl = fixture_named("v_%s.pkl", values[i], &pn);
        wv_buf text = {0}, again = {0};
        if (pickle_loads_json(pkl, pn, &text) != 0)
            fail_msg("%s: %s", values[i], wv_errmsg());
        /* the same value (json.loads of the fixture keeps a duplicate
         * key's last value, as the pickle does) ... */
        wv_json_doc *doc = parse(text.p, text.n);
        if (strcmp(values[i], "dup_keys") != 0)
            assert_json_equal(text.p, text.n, json, jn);
        /* ... and pickled again, Python's bytes */
        assert_int_equal(pickle_dumps(wv_json_doc_root(doc), &again), 0);
        assert_bytes(&again, pkl, pn, values[i]);
        wv_json_doc_free(doc);
        wv_buf_free(&text);
        wv_buf_free(&again);
        free(json);
        free(pkl);
    }
}

static void test_pickle_duplicate_keys_keep_the_first_place_and_the_last_value(void **state)
{
    size_t pn;
    char *pkl = fixture("v_dup_keys.pkl", &pn);
    wv_buf text = {0};
    assert_int_equal(pickle_loads_json(pkl, pn, &text), 0);
    static const char want[] = "{\"a\":3,\"b\":2,\"c\":{\"x\":[2]}}";
    assert_bytes(&text, want, sizeof want - 1, "dup_keys");
    wv_buf_free(&text);
    free(pkl);
}

static void test_pickle_job_tuple_is_rq_job_data(void **state)
{
    static const char *const calls[] = {"add", "none", "one", "three", "kwargs", "nested"};
    for (size_t i = 0; i < ARRAY_LEN(calls); i++) {
        size_t jn, pn;
        char *json = fixture_named("c_%s.json", calls[i], &jn);
        char *pkl = fixture_named("c_%s.pkl", calls[i], &pn);
        wv_json_doc *doc = parse(json, jn);
        const wv_json_val *call = wv_json_doc_root(doc);
        const char *func;
        assert_int_equal(wv_json_as_string(wv_json_array_at(call, 0), &func, NULL), 0);
        wv_buf out = {0};
        assert_int_equal(
            pickle_dumps_call(func, wv_json_array_at(call, 1), wv_json_array_at(call, 2), &out), 0);
        assert_bytes(&out, pkl, pn, calls[i]);
        /* and it reads back as [func, null, args, kwargs] */
        wv_buf text = {0};
        assert_int_equal(pickle_loads_json(pkl, pn, &text), 0);
        wv_json_doc *back = parse(text.p, text.n);
        const wv_json_val *t = wv_json_doc_root(back);
        assert_int_equal(wv_json_array_len(t), 4);
        assert_true(wv_json_is_null(wv_json_array_at(t, 1)));
        assert_true(json_equal(wv_json_array_at(t, 2), wv_json_array_at(call, 1)));
        assert_true(json_equal(wv_json_array_at(t, 3), wv_json_array_at(call, 2)));
        wv_json_doc_free(back);
        wv_buf_free(&text);
        wv_buf_free(&out);
        wv_json_doc_free(doc);
        free(json);
        free(pkl);
    }
    /* no args and no kwargs: () and {} */
    size_t pn;
    char *pkl = fixture("c_none.pkl", &pn);
    wv_buf out = {0};
    assert_int_equal(pickle_dumps_call("tasks.run", NULL, NULL, &out), 0);
    assert_bytes(&out, pkl, pn, "NULL args and kwargs");
    wv_buf_free(&out);
    free(pkl);
}

static void test_pickle_past_64_kib_cuts_frames_as_python(void **state)
{
    /* capture.py's BIG: ["x" * 65536, [256, ..., 22255], "end"] */
    wv_buf json = {0};
    wv_buf_puts(&json, "[\"");
    for (int i = 0; i < 65536; i++)
        wv_buf_append(&json, "x", 1);
    wv_buf_puts(&json, "\", [");
    for (int i = 256; i < 22256; i++)
        wv_buf_printf(&json, "%s%d", i > 256 ? "," : "", i);
    wv_buf_puts(&json, "], \"end\"]");
    size_t pn;
    char *pkl = fixture("big.pkl", &pn);
    wv_json_doc *doc = parse(json.p, json.n);
    wv_buf out = {0}, text = {0};
    assert_int_equal(pickle_dumps(wv_json_doc_root(doc), &out), 0);
    assert_bytes(&out, pkl, pn, "big");
    assert_int_equal(pickle_loads_json(pkl, pn, &text), 0);
    assert_json_equal(text.p, text.n, json.p, json.n);
    wv_buf_free(&out);
    wv_buf_free(&text);
    wv_buf_free(&json);
    wv_json_doc_free(doc);
    free(pkl);
}

static void test_pickle_reads_older_protocols_tuples_and_memo_gets(void **state)
{
    static const char *const reads[] = {"proto2", "proto3", "proto4",
                                        "tuple",  "shared", "mark_list_dict",
                                        "binput", "long4",  "long1_padded"};
    for (size_t i = 0; i < ARRAY_LEN(reads); i++) {
        size_t jn, pn;
        char *json = fixture_named("r_%s.json", reads[i], &jn);
        char *pkl = fixture_named("r_%s.pkl", reads[i], &pn);
        wv_buf text = {0};
        if (pickle_loads_json(pkl, pn, &text) != 0)
            fail_msg("%s: %s", reads[i], wv_errmsg());
        assert_json_equal(text.p, text.n, json, jn);
        wv_buf_free(&text);
        free(json);
        free(pkl);
    }
}

static void test_pickle_values_that_are_not_plain_are_enotsup(void **state)
{
    static const struct {
        const char *name, *says;
    } cases[] = {
        {"datetime", "datetime.datetime is not a plain type"},
        {"decimal", "decimal.Decimal is not a plain type"},
        {"bytes", "bytes are not a plain type"},
        {"bytearray", "a bytearray or buffer is not a plain type"},
        {"set", "a set is not a plain type"},
        {"frozenset", "a set is not a plain type"},
        {"bigint", "an int beyond int64"},
        {"nan", "a float that is not finite"},
        {"int_key", "a dict key that is not a str"},
        {"surrogate", "lone surrogate"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        size_t pn;
        char *pkl = fixture_named("n_%s.pkl", cases[i].name, &pn);
        wv_buf text = {0};
        int rc = pickle_loads_json(pkl, pn, &text);
        if (rc != -ENOTSUP || !strstr(wv_errmsg(), cases[i].says))
            fail_msg("%s: %d %s", cases[i].name, rc, wv_errmsg());
        wv_buf_free(&text);
        free(pkl);
    }
}

#define P(s)                                                                                       \
    {                                                                                              \
        s, sizeof s - 1                                                                            \
    }

static void test_pickle_malformed_input_is_ebadmsg(void **state)
{
    static const struct {
        const char *p;
        size_t n;
    } bad[] = {
        P(""),
        P("\x80\x05"),   /* no STOP */
        P("N"),          /* no STOP */
        P("."),          /* STOP on an empty stack */
        P("NN."),        /* two values */
        P("(N."),        /* a mark left */
        P("N.N"),        /* bytes after STOP */
        P("\x80\x06N."), /* protocol 6 */
        P("\xff."),      /* unknown opcode */
        P("K"),          /* truncated BININT1 */
        P("J\x01\x02."), /* truncated BININT */
        P("G\x00\x00."), /* truncated BINFLOAT */
        P("\x8c\x05"
          "ab."),                                   /* string longer than the data */
        P("X\xff\xff\xff\xff."),                    /* BINUNICODE past the end */
        P("\x8d\xff\xff\xff\xff\xff\xff\xff\xff."), /* BINUNICODE8 past the end */
        P("\x8a\x09\x01."),                         /* truncated LONG1 */
        P("\x8b\xff\xff\xff\xff."),                 /* negative LONG4 length */
        P("h\x00."),                                /* GET of nothing */
        P("j\x05\x00\x00\x00."),                    /* LONG_BINGET of nothing */
        P("\x94."),                                 /* MEMOIZE on an empty stack */
        P("Nr\xff\xff\xff\x7f."),                   /* a memo index far out */
        P("K\x01K\x02"
          "a."),            /* APPEND to an int */
        P("}K\x01s."),      /* SETITEM with no value */
        P("}(\x8c\x01ku."), /* SETITEMS with a key alone */
        P("](K\x01"
          "a."),                                     /* APPEND across a MARK */
        P("e."),                                     /* APPENDS without a MARK */
        P("t."),                                     /* TUPLE without a MARK */
        P("\x86."),                                  /* TUPLE2 of nothing */
        P("0."),                                     /* POP of nothing */
        P("1."),                                     /* POP_MARK without a MARK */
        P("2."),                                     /* DUP of nothing */
        P("\x95\xff\x00\x00\x00\x00\x00\x00\x00N."), /* FRAME past the end */
        P("\x8c\x02\xc3(."),                         /* not UTF-8 */
        P("\x8c\x02\xc0\x80."),                      /* overlong */
        P("\x8c\x04\xf4\x90\x80\x80."),              /* past U+10FFFF */
        P("c\x00."),                                 /* GLOBAL with no names */
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        wv_buf text = {0};
        int rc = pickle_loads_json(bad[i].p, bad[i].n, &text);
        if (rc != -EBADMSG)
            fail_msg("case %zu (%zu bytes) gave %d: %s", i, bad[i].n, rc, wv_errmsg());
        wv_buf_free(&text);
    }
    /* every strict prefix of a real pickle */
    static const char *const whole[] = {"v_nested.pkl", "c_kwargs.pkl", "v_ints.pkl"};
    for (size_t f = 0; f < ARRAY_LEN(whole); f++) {
        size_t pn;
        char *pkl = fixture(whole[f], &pn);
        for (size_t cut = 0; cut < pn; cut++) {
            wv_buf text = {0};
            int rc = pickle_loads_json(pkl, cut, &text);
            if (rc != -EBADMSG)
                fail_msg("%s cut at %zu gave %d: %s", whole[f], cut, rc, wv_errmsg());
            wv_buf_free(&text);
        }
        free(pkl);
    }
}

static void test_pickle_depth_self_reference_and_sharing_are_bounded(void **state)
{
    wv_buf p = {0}, text = {0};
    /* 100 nested lists */
    for (int i = 0; i < 100; i++)
        wv_buf_puts(&p, "]");
    for (int i = 0; i < 99; i++)
        wv_buf_puts(&p, "a");
    wv_buf_puts(&p, ".");
    assert_int_equal(pickle_loads_json(p.p, p.n, &text), -ENOTSUP);
    assert_non_null(strstr(wv_errmsg(), "nested deeper"));
    /* l = []; l.append(l) */
    wv_buf_reset(&p);
    wv_buf_reset(&text);
    wv_buf_append(&p,
                  "]\x94h\x00"
                  "a.",
                  6);
    assert_int_equal(pickle_loads_json(p.p, p.n, &text), -ENOTSUP);
    /* 40 levels of [m, m] sharing one memo entry: 2^40 leaves */
    wv_buf_reset(&p);
    wv_buf_reset(&text);
    wv_buf_append(&p, "K\x01\x94", 3);
    for (int i = 0; i < 40; i++) {
        unsigned char op[] = {'0', '(', 'h', (unsigned char)i, 'h', (unsigned char)i, 'l', 0x94};
        wv_buf_append(&p, op, sizeof op); /* POP the level below, then [m, m] */
    }
    wv_buf_puts(&p, ".");
    assert_int_equal(pickle_loads_json(p.p, p.n, &text), -EMSGSIZE);
    /* input over the limit: refused before it is read */
    wv_buf_reset(&text);
    assert_int_equal(pickle_loads_json("N.", (size_t)PICKLE_MAX_BYTES + 1, &text), -EMSGSIZE);
    wv_buf_free(&p);
    wv_buf_free(&text);
}

static int dumps_text(const char *json, wv_buf *out)
{
    wv_json_doc *doc = parse(json, strlen(json));
    int rc = pickle_dumps(wv_json_doc_root(doc), out);
    wv_json_doc_free(doc);
    return rc;
}

static void test_pickle_dumps_refuses_what_python_would_read_otherwise(void **state)
{
    wv_buf out = {0};
    assert_int_equal(dumps_text("9223372036854775808", &out), -ERANGE);
    assert_non_null(strstr(wv_errmsg(), "an integer beyond int64"));
    wv_buf_reset(&out);
    assert_int_equal(dumps_text("[-9223372036854775809]", &out), -ERANGE);
    wv_buf_reset(&out);
    assert_int_equal(dumps_text("[1e400]", &out), -ERANGE);
    wv_buf_reset(&out);
    /* 1e19 and 9.3e18 are floats to Python: pickled as such */
    assert_int_equal(dumps_text("[1e19, 9.3e18, 1E2]", &out), 0);
    wv_buf_reset(&out);
    wv_buf deep = {0};
    for (int i = 0; i < PICKLE_MAX_DEPTH + 1; i++)
        wv_buf_puts(&deep, "[");
    for (int i = 0; i < PICKLE_MAX_DEPTH + 1; i++)
        wv_buf_puts(&deep, "]");
    wv_json_doc *doc = NULL;
    wv_json_parse_opts o = {.max_depth = 1024};
    assert_int_equal(wv_json_parse_with(deep.p, deep.n, &o, &doc), 0);
    assert_int_equal(pickle_dumps(wv_json_doc_root(doc), &out), -EINVAL);
    wv_json_doc_free(doc);
    /* as deep as the JSON reader allows: pickled, and read back */
    wv_buf_reset(&out);
    wv_buf back = {0};
    assert_int_equal(wv_json_parse(deep.p + 1, deep.n - 2, &doc), 0);
    assert_int_equal(pickle_dumps(wv_json_doc_root(doc), &out), 0);
    assert_int_equal(pickle_loads_json(out.p, out.n, &back), 0);
    assert_bytes(&back, deep.p + 1, deep.n - 2, "64 levels");
    wv_json_doc_free(doc);
    wv_buf_free(&back);
    wv_buf_free(&deep);
    /* the job tuple's args must be an array, kwargs an object */
    doc = parse("{\"a\": 1}", 8);
    wv_buf_reset(&out);
    assert_int_equal(pickle_dumps_call("f", wv_json_doc_root(doc), NULL, &out), -EINVAL);
    wv_buf_reset(&out);
    assert_int_equal(pickle_dumps_call("f", NULL, wv_json_doc_root(doc), &out), 0);
    wv_json_doc_free(doc);
    wv_buf_free(&out);
}

static void test_pickle_round_trips_plain_values(void **state)
{
    static const char *const texts[] = {
        "null",
        "[true,false]",
        ("[0,-1,255,256,65535,65536,-2147483648,2147483647,2147483648,9223372036854775807,"
         "-9223372036854775808]"),
        "[0.5,-0.0,1e-300,1.7976931348623157e308,5e-324,123456.789]",
        "\"h\\u00e9llo \\u65e5\\u672c \\ud83d\\ude00 \\t\\\"q\\\"\"",
        "{\"\":{\"\":[[],{}]},\"k\":\"k\",\"n\":null}",
        "[[[[[[[[[[1]]]]]]]]]]",
    };
    for (size_t i = 0; i < ARRAY_LEN(texts); i++) {
        wv_buf pk = {0}, back = {0};
        assert_int_equal(dumps_text(texts[i], &pk), 0);
        assert_int_equal(pickle_loads_json(pk.p, pk.n, &back), 0);
        assert_json_equal(back.p, back.n, texts[i], strlen(texts[i]));
        wv_buf_free(&pk);
        wv_buf_free(&back);
    }
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pickle_dumps_is_byte_for_byte_what_python_writes),
        cmocka_unit_test(test_pickle_loads_python_bytes_and_writes_them_again),
        cmocka_unit_test(test_pickle_duplicate_keys_keep_the_first_place_and_the_last_value),
        cmocka_unit_test(test_pickle_job_tuple_is_rq_job_data),
        cmocka_unit_test(test_pickle_past_64_kib_cuts_frames_as_python),
        cmocka_unit_test(test_pickle_reads_older_protocols_tuples_and_memo_gets),
        cmocka_unit_test(test_pickle_values_that_are_not_plain_are_enotsup),
        cmocka_unit_test(test_pickle_malformed_input_is_ebadmsg),
        cmocka_unit_test(test_pickle_depth_self_reference_and_sharing_are_bounded),
        cmocka_unit_test(test_pickle_dumps_refuses_what_python_would_read_otherwise),
        cmocka_unit_test(test_pickle_round_trips_plain_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
