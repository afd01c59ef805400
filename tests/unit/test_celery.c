/*
 * Celery's wire format (src/tasks/celery.c) against what Celery itself
 * wrote: tests/unit/celery_fixtures/ holds task envelopes and result meta
 * captured from Celery 5.2.6 + kombu 5.2.4 on Redis (capture.py there
 * regenerates them). Every captured envelope decodes to the fields Celery
 * sent, and encoding those fields again gives the captured bytes exactly
 * (base64 body, json.dumps spacing and \u escapes, the argsrepr Celery's
 * saferepr computed, dates); the same for the four results. Then the
 * pieces as tables: saferepr's cuts and levels, ISO 8601 both ways, uuid4,
 * protocol 1, the AMQP form, and malformed messages refused with -EBADMSG
 * or -ENOTSUP.
 */
#include "harness.h"

#include <errno.h>

#include "tasks/celery.h"

static char *fixture(const char *name, size_t *n)
{
    char path[512];
    snprintf(path, sizeof path, "tests/unit/celery_fixtures/%s", name);
    char *buf = read_source_file(path, n);
    while (*n && buf[*n - 1] == '\n') /* capture.py ends each file with one */
        buf[--*n] = 0;
    return buf;
}

static char *cstr(wv_str s)
{
    char *c = malloc(s.n + 1);
    if (s.n)
        memcpy(c, s.p, s.n);
    c[s.n] = 0;
    return c;
}

static void assert_str(wv_str s, const char *want)
{
    if (!wv_str_eq_cstr(s, want))
        fail_msg("got \"%.*s\", expected \"%s\"", (int)s.n, s.p ? s.p : "", want);
}

static void assert_buf(const wv_buf *b, const char *want)
{
    assert_str((wv_str){b->p, b->n}, want);
}

static bool is_uuid(wv_str s)
{
    if (s.n != CELERY_UUID_LEN)
        return false;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? c != '-' : !((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static celery_task decode_fixture(const char *name)
{
    size_t n;
    char *text = fixture(name, &n);
    celery_task t;
    int rc = celery_task_decode_redis(text, n, &t);
    if (rc != 0)
        fail_msg("%s: %d %s", name, rc, wv_errmsg());
    free(text);
    return t;
}

/* ------------------------------------------------------------ fields */

static void test_celery_add_decodes_to_the_fields_celery_sent(void **state)
{
    celery_task t = decode_fixture("task_add.json");
    assert_int_equal(t.protocol, 2);
    assert_str(t.task, "capture.add");
    assert_str(t.lang, "py");
    assert_true(is_uuid(t.id));
    assert_true(wv_str_eq(t.id, t.correlation_id));
    assert_true(wv_str_eq(t.id, t.root_id));
    assert_true(is_uuid(t.delivery_tag));
    assert_true(is_uuid(t.reply_to));
    assert_int_equal(t.parent_id.n, 0);
    assert_int_equal(t.group.n, 0);
    assert_int_equal(t.group_index, -1);
    assert_str(t.args, "[2, 3]");
    assert_str(t.kwargs, "{}");
    assert_str(t.embed,
               "{\"callbacks\": null, \"errbacks\": null, \"chain\": null, \"chord\": null}");
    assert_str(t.callbacks, "null");
    assert_str(t.chain, "null");
    assert_str(t.argsrepr, "(2, 3)");
    assert_str(t.kwargsrepr, "{}");
    assert_true(t.eta_ns == CELERY_NO_TIME && t.expires_ns == CELERY_NO_TIME);
    assert_int_equal(t.retries, 0);
    assert_true(t.time_limit < 0 && t.soft_time_limit < 0);
    assert_false(t.ignore_result);
    assert_str(t.exchange, "");
    assert_str(t.routing_key, "celery");
    assert_int_equal(t.priority, 0);
    assert_int_equal(t.delivery_mode, 2);
    assert_str(t.body_encoding, "base64");
    assert_str(t.content_type, "application/json");
    assert_true(t.origin.n > 4 && memcmp(t.origin.p, "gen", 3) == 0);
    assert_str(t.body, "[[2, 3], {}, {\"callbacks\": null, \"errbacks\": null, \"chain\": null, "
                       "\"chord\": null}]");
    size_t n;
    char *text = fixture("task_add.json", &n);
    assert_int_equal(t.envelope.n, n);
    assert_memory_equal(t.envelope.p, text, n);
    free(text);
    celery_task_free(&t);
}

static void test_celery_options_dates_and_embeds_decode(void **state)
{
    celery_task t = decode_fixture("task_eta.json");
    /* eta=datetime(2026, 12, 7, 12, 0, 0, 123456, tzinfo=utc) */
    assert_true(t.eta_ns == INT64_C(1796644800) * 1000000000 + 123456000);
    celery_task_free(&t);

    t = decode_fixture("task_options.json");
    /* time_limit=30, soft_time_limit=20: the header is [hard, soft] */
    assert_true(t.time_limit == 30 && t.soft_time_limit == 20);
    assert_int_equal(t.retries, 2);
    assert_true(t.ignore_result);
    assert_str(t.shadow, "add-shadow");
    celery_task_free(&t);

    t = decode_fixture("task_countdown.json");
    assert_true(t.eta_ns != CELERY_NO_TIME && t.expires_ns == CELERY_NO_TIME);
    celery_task_free(&t);
    t = decode_fixture("task_expires.json");
    assert_true(t.eta_ns == CELERY_NO_TIME && t.expires_ns != CELERY_NO_TIME);
    assert_int_equal(t.expiration_ms, 60000); /* expires=60: the AMQP TTL too */
    celery_task_free(&t);

    t = decode_fixture("task_kwargs.json");
    assert_str(t.args, "[]");
    assert_str(t.kwargs, "{\"x\": 2, \"y\": 3}");
    assert_str(t.argsrepr, "()");
    assert_str(t.kwargsrepr, "{'x': 2, 'y': 3}");
    celery_task_free(&t);

    t = decode_fixture("task_link.json");
    assert_str(t.callbacks, "[{\"task\": \"capture.add\", \"args\": [10], \"kwargs\": {}, "
                            "\"options\": {}, \"subtask_type\": null, \"immutable\": false}]");
    assert_str(t.errbacks, "[{\"task\": \"capture.echo\", \"args\": [\"failed\"], \"kwargs\": {}, "
                           "\"options\": {}, \"subtask_type\": null, \"immutable\": true}]");
    assert_str(t.chain, "null");
    celery_task_free(&t);

    t = decode_fixture("task_chain.json");
    /* chain(add.s(2, 3), add.s(4), add.s(5)): the rest, last first */
    char *chain = cstr(t.chain);
    assert_true(chain[0] == '[');
    assert_non_null(strstr(chain, "\"args\": [5]"));
    assert_true(strstr(chain, "\"args\": [5]") < strstr(chain, "\"args\": [4]"));
    free(chain);
    celery_task_free(&t);

    t = decode_fixture("task_values.json");
    /* an int past int64 kept as written */
    assert_str(t.kwargs, "{\"n\": null, \"f\": 3.0, \"big\": 12345678901234567890}");
    assert_str(t.argsrepr, "([1, -2.5, 1e+300, 0.1, None, True, False, [], {}], "
                           "{'deep': [1, [...]], 'x': {'y': {...}}})");
    celery_task_free(&t);

    t = decode_fixture("task_unicode.json");
    assert_str(t.kwargs, "{\"cl\\u00e9\": \"\\u65e5\\u672c\"}");
    assert_str(t.kwargsrepr, "{'cl\xc3\xa9': '\xe6\x97\xa5\xe6\x9c\xac'}");
    celery_task_free(&t);
}

/* ------------------------------------------------------------ bytes */

/* Encode the decoded fields again: the captured envelope, byte for byte. */
static void reencode(const char *name, bool as_list)
{
    size_t n;
    char *want = fixture(name, &n);
    celery_task t;
    assert_int_equal(celery_task_decode_redis(want, n, &t), 0);
    char *strs[12] = {cstr(t.task),     cstr(t.id),           cstr(t.origin),
                      cstr(t.reply_to), cstr(t.delivery_tag), cstr(t.callbacks),
                      cstr(t.errbacks), cstr(t.chain),        cstr(t.chord),
                      cstr(t.shadow),   cstr(t.exchange),     cstr(t.routing_key)};
    celery_task_msg m;
    celery_task_msg_init(&m);
    m.task = strs[0];
    m.id = strs[1];
    m.origin = strs[2];
    m.reply_to = strs[3];
    m.delivery_tag = strs[4];
    m.callbacks = strcmp(strs[5], "null") ? strs[5] : NULL;
    m.errbacks = strcmp(strs[6], "null") ? strs[6] : NULL;
    m.chain = strcmp(strs[7], "null") ? strs[7] : NULL;
    m.chord = strcmp(strs[8], "null") ? strs[8] : NULL;
    m.shadow = t.shadow.n ? strs[9] : NULL;
    m.exchange = strs[10];
    m.routing_key = strs[11];
    m.args = t.args.p;
    m.args_len = t.args.n;
    m.kwargs = t.kwargs.p;
    m.kwargs_len = t.kwargs.n;
    m.args_repr_as_list = as_list;
    m.eta_ns = t.eta_ns;
    m.expires_ns = t.expires_ns;
    m.retries = t.retries;
    m.time_limit = t.time_limit;
    m.soft_time_limit = t.soft_time_limit;
    m.ignore_result = t.ignore_result;
    m.priority = t.priority;
    m.expiration_ms = t.expiration_ms;
    /* argsrepr and kwargsrepr left NULL: computed */
    wv_buf out = {0};
    int rc = celery_task_encode_redis(&m, &out);
    if (rc != 0)
        fail_msg("%s: %d %s", name, rc, wv_errmsg());
    if (out.n != n || memcmp(out.p, want, n) != 0)
        fail_msg("%s differs:\n got  %.*s\n want %s", name, (int)out.n, out.p, want);

    /* the AMQP form: the same body and headers */
    celery_amqp_msg a = {0};
    assert_int_equal(celery_task_encode_amqp(&m, &a), 0);
    assert_int_equal(a.body.n, t.body.n);
    assert_memory_equal(a.body.p, t.body.p, t.body.n);
    const char *h = strstr(want, "\"headers\": ") + 11, *h_end = strstr(want, ", \"properties\": ");
    assert_int_equal(a.headers.n, (size_t)(h_end - h));
    assert_memory_equal(a.headers.p, h, a.headers.n);
    assert_string_equal(a.correlation_id, strs[1]);
    assert_string_equal(a.reply_to, strs[3]);
    assert_int_equal(a.delivery_mode, 2);
    /* ... which decodes to the same fields */
    celery_task u;
    assert_int_equal(celery_task_decode_parts(a.body.p, a.body.n, a.headers.p, a.headers.n,
                                              "{\"correlation_id\": \"x\"}", 23, &u),
                     0);
    assert_true(wv_str_eq(u.args, t.args) && wv_str_eq(u.kwargs, t.kwargs));
    assert_true(wv_str_eq(u.argsrepr, t.argsrepr) && wv_str_eq(u.id, t.id));
    assert_true(u.eta_ns == t.eta_ns && wv_str_eq(u.chain, t.chain));
    assert_int_equal(u.envelope.n, 0);
    celery_task_free(&u);
    celery_amqp_msg_free(&a);

    wv_buf_free(&out);
    for (size_t i = 0; i < ARRAY_LEN(strs); i++)
        free(strs[i]);
    celery_task_free(&t);
    free(want);
}

static void test_celery_envelopes_encode_byte_for_byte_as_kombu(void **state)
{
    static const char *const names[] = {
        "task_add.json",    "task_countdown.json", "task_eta.json",     "task_expires.json",
        "task_kwargs.json", "task_unicode.json",   "task_values.json",  "task_long.json",
        "task_link.json",   "task_chain.json",     "task_options.json",
    };
    for (size_t i = 0; i < ARRAY_LEN(names); i++)
        reencode(names[i], false);
    reencode("task_list_args.json", true); /* apply_async([2, 3]): "[2, 3]" */
}

static void reencode_result(const char *name)
{
    size_t n;
    char *want = fixture(name, &n);
    celery_result r;
    int rc = celery_result_decode(want, n, &r);
    if (rc != 0)
        fail_msg("%s: %d %s", name, rc, wv_errmsg());
    char *task_id = cstr(r.task_id), *result = cstr(r.result), *children = cstr(r.children);
    char *exc_type = cstr(r.exc_type), *exc_module = cstr(r.exc_module);
    char *traceback = cstr(r.traceback), *hostname = cstr(r.hostname);
    char *exc_message = NULL;
    if (r.exc_message.p[0] == '[') { /* one argument: its string */
        wv_json_doc *doc;
        assert_int_equal(wv_json_parse(r.exc_message.p, r.exc_message.n, &doc), 0);
        const char *s;
        assert_int_equal(wv_json_as_string(wv_json_array_at(wv_json_doc_root(doc), 0), &s, NULL),
                         0);
        exc_message = strdup(s);
        wv_json_doc_free(doc);
    }
    celery_result_msg m = {
        .status = r.status,
        .task_id = task_id,
        .result = result,
        .result_len = strlen(result),
        .exc_type = exc_type,
        .exc_module = exc_module,
        .exc_message = exc_message,
        .traceback = traceback,
        .pid = r.pid,
        .hostname = hostname,
        .date_done_ns = r.date_done_ns,
        .children = children,
    };
    wv_buf out = {0};
    assert_int_equal(celery_result_encode(&m, &out), 0);
    if (out.n != n || memcmp(out.p, want, n) != 0)
        fail_msg("%s differs:\n got  %.*s\n want %s", name, (int)out.n, out.p, want);
    wv_buf_free(&out);
    free(task_id);
    free(result);
    free(children);
    free(exc_type);
    free(exc_module);
    free(traceback);
    free(hostname);
    free(exc_message);
    celery_result_free(&r);
    free(want);
}

static void test_celery_results_decode_and_encode_as_the_backend_stores_them(void **state)
{
    size_t n;
    char *text = fixture("result_success.json", &n);
    celery_result r;
    assert_int_equal(celery_result_decode(text, n, &r), 0);
    assert_int_equal(r.status, CELERY_SUCCESS);
    assert_str(r.result, "5");
    assert_str(r.children, "[]");
    assert_int_equal(r.traceback.n, 0);
    assert_true(r.date_done_ns != CELERY_NO_TIME);
    assert_true(is_uuid(r.task_id));
    celery_result_free(&r);
    free(text);

    text = fixture("result_failure.json", &n);
    assert_int_equal(celery_result_decode(text, n, &r), 0);
    assert_int_equal(r.status, CELERY_FAILURE);
    assert_str(r.exc_type, "ValueError");
    assert_str(r.exc_module, "builtins");
    assert_str(r.exc_message, "[\"bad 'value' \\u00e9\"]");
    assert_non_null(strstr(r.traceback.p, "ValueError: bad 'value' \xc3\xa9\n"));
    celery_result_free(&r);
    free(text);

    text = fixture("result_started.json", &n);
    assert_int_equal(celery_result_decode(text, n, &r), 0);
    assert_int_equal(r.status, CELERY_STARTED);
    assert_true(r.pid > 0);
    assert_str(r.hostname, "capture@weave");
    assert_true(r.date_done_ns == CELERY_NO_TIME);
    celery_result_free(&r);
    free(text);

    text = fixture("result_retry.json", &n);
    assert_int_equal(celery_result_decode(text, n, &r), 0);
    assert_int_equal(r.status, CELERY_RETRY);
    assert_str(r.exc_type, "KeyError");
    assert_true(r.date_done_ns == CELERY_NO_TIME);
    celery_result_free(&r);
    free(text);

    reencode_result("result_success.json");
    reencode_result("result_failure.json");
    reencode_result("result_started.json");
    reencode_result("result_retry.json");

    /* PENDING, what the backend answers for an id it does not know */
    wv_buf out = {0};
    celery_result_msg m = {.status = CELERY_PENDING, .task_id = "t1"};
    assert_int_equal(celery_result_encode(&m, &out), 0);
    assert_int_equal(out.n,
                     strlen("{\"status\": \"PENDING\", \"result\": null, \"traceback\": null, "
                            "\"children\": [], \"date_done\": null, \"task_id\": \"t1\"}"));
    wv_buf_free(&out);
    m = (celery_result_msg){
        .status = CELERY_SUCCESS, .task_id = "t1", .result = "{\"a\":[1,2.50]}"};
    m.result_len = strlen(m.result);
    m.date_done_ns = INT64_C(1796644800) * 1000000000; /* no microseconds: none written */
    assert_int_equal(celery_result_encode(&m, &out), 0);
    assert_buf(&out,
               "{\"status\": \"SUCCESS\", \"result\": {\"a\": [1, 2.5]}, \"traceback\": null, "
               "\"children\": [], \"date_done\": \"2026-12-07T12:00:00\", \"task_id\": \"t1\"}");
    wv_buf_free(&out);
    m.task_id = NULL;
    assert_int_equal(celery_result_encode(&m, &out), -EINVAL);
}

/* ------------------------------------------------------------ pieces */

static void test_celery_saferepr_table(void **state)
{
    static const struct {
        const char *json;
        bool as_list;
        size_t maxlen;
        const char *want;
    } table[] = {
        {"[2, 3]", false, 1024, "(2, 3)"},
        {"[2]", false, 1024, "(2,)"},
        {"[]", false, 1024, "()"},
        {"[2, 3]", true, 1024, "[2, 3]"},
        {"{}", false, 1024, "{}"},
        {"[null, true, false, -0, 1.0, 1e5, 1E-5, 0.1, 1e400, 123456789012345678901234]", false, 0,
         "(None, True, False, 0, 1.0, 100000.0, 1e-05, 0.1, inf, 123456789012345678901234)"},
        {"[1e16, 1e15, 0.0001, -2.5e-7, 5e-324]", false, 0,
         "(1e+16, 1000000000000000.0, 0.0001, -2.5e-07, 5e-324)"},
        /* ' escaped, nothing else: a newline stays one */
        {"[\"it's\\n\\\"x\\\"\\\\\"]", false, 0, "('it\\'s\n\"x\"\\',)"},
        {"[[[[1]]], {\"a\": {\"b\": {}}}]", false, 0, "([[[...]]], {'a': {'b': {...}}})"},
        {"{\"k\": [[1, [2]]]}", false, 0, "{'k': [[1, [...]]]}"},
        /* cuts (each checked against Celery 5.2.6's saferepr): the token that finds
         * maxlen used up becomes ", ..." and the brackets still open */
        {"[1, 2, 3]", false, 4, "(1, , ...)"},
        {"[1, 2, 3]", false, 3, "(1, , ...)"},
        {"[[1, 2], 3]", false, 5, "([1, , ...])"},
        {"[[1, 2], 3]", false, 6, "([1, 2..., ...)"}, /* "]" lost, as in Celery */
        /* a string at maxlen characters or more: cut at its last space, "..." */
        {"[\"aaa bbb ccc\"]", false, 8, "('aaa...', ..."},
        {"[\"aaabbbccc\"]", false, 5, "('aaab...', ..."},
        {"[\"ab\"]", false, 3, "('ab...', ..."},
        {"[\"\\u00e9\\u00e9\\u00e9 \\u00e9\"]", false, 7,
         "('\xc3\xa9\xc3\xa9\xc3\xa9 \xc3\xa9', ..."},
    };
    for (size_t i = 0; i < ARRAY_LEN(table); i++) {
        wv_buf out = {0};
        assert_int_equal(celery_saferepr(table[i].json, strlen(table[i].json), table[i].as_list,
                                         table[i].maxlen, &out),
                         0);
        if (out.n != strlen(table[i].want) || memcmp(out.p, table[i].want, out.n) != 0)
            fail_msg("%s (maxlen %zu): got %.*s, expected %s", table[i].json, table[i].maxlen,
                     (int)out.n, out.p, table[i].want);
        wv_buf_free(&out);
    }
    wv_buf out = {0};
    assert_int_equal(celery_saferepr("[1,", 3, false, 0, &out), -EINVAL);
    assert_int_equal(out.n, 0);
}

static void test_celery_pyjson_writes_as_json_dumps(void **state)
{
    static const struct {
        const char *in, *want;
    } table[] = {
        {"[1,2,{\"a\":null}]", "[1, 2, {\"a\": null}]"},
        {" {} ", "{}"},
        {"[\"\\/\\u0041\xc3\xa9\xf0\x9f\x98\x80\\u007f\\u001f\"]",
         "[\"/A\\u00e9\\ud83d\\ude00\\u007f\\u001f\"]"},
        {"[2.50, -0, -0.0, 1E2]", "[2.5, 0, -0.0, 100.0]"},
        /* Python would write Infinity, which is not JSON: the text stays */
        {"[1e400, -1E999]", "[1e400, -1E999]"},
    };
    for (size_t i = 0; i < ARRAY_LEN(table); i++) {
        wv_buf out = {0};
        assert_int_equal(celery_pyjson(table[i].in, strlen(table[i].in), &out), 0);
        if (out.n != strlen(table[i].want) || memcmp(out.p, table[i].want, out.n) != 0)
            fail_msg("%s: got %.*s, expected %s", table[i].in, (int)out.n, out.p, table[i].want);
        wv_buf_free(&out);
    }
}

static void test_celery_iso8601_both_ways(void **state)
{
    const int64_t noon = INT64_C(1796644800) * 1000000000; /* 2026-12-07T12:00:00Z */
    static const struct {
        const char *text;
        int64_t off_ns;
    } good[] = {
        {"2026-12-07T12:00:00", 0},
        {"2026-12-07T12:00:00+00:00", 0},
        {"2026-12-07T12:00:00Z", 0},
        {"2026-12-07 12:00:00.5", 500000000},
        {"2026-12-07T12:00:00.123456+00:00", 123456000},
        {"2026-12-07T12:00:00.123456789", 123456789},
        {"2026-12-07T13:30:00+01:30", 0},
        {"2026-12-07T10:00:00-0200", 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        int64_t ns = 0;
        if (celery_iso8601_parse(good[i].text, strlen(good[i].text), &ns) != 0 ||
            ns != noon + good[i].off_ns)
            fail_msg("%s: %lld", good[i].text, (long long)(ns - noon));
    }
    static const char *const bad[] = {
        "",
        "2026-12-07",
        "2026-13-07T12:00:00",
        "2026-02-29T12:00:00",
        "2026-12-07T24:00:00",
        "2026-12-07T12:00:00.",
        "2026-12-07T12:00:00+0",
        "2026-12-07T12:00:00 ",
        "2026-12-07X12:00:00",
        "2026-12-07T12:00:00.1234567890",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t ns;
        if (celery_iso8601_parse(bad[i], strlen(bad[i]), &ns) != -EINVAL)
            fail_msg("\"%s\" was accepted", bad[i]);
    }
    int64_t far;
    assert_int_equal(celery_iso8601_parse("0433-12-07T23:50:04", 19, &far), -ERANGE);
    assert_int_equal(celery_iso8601_parse("2263-01-01T00:00:00", 19, &far), -ERANGE);
    int64_t leap;
    assert_int_equal(celery_iso8601_parse("2024-02-29T00:00:00", 19, &leap), 0);

    wv_buf out = {0};
    assert_int_equal(celery_iso8601_format(noon + 123456789, true, &out), 0);
    assert_buf(&out, "2026-12-07T12:00:00.123456+00:00");
    wv_buf_reset(&out);
    assert_int_equal(celery_iso8601_format(noon, false, &out), 0);
    assert_buf(&out, "2026-12-07T12:00:00");
    wv_buf_reset(&out);
    assert_int_equal(celery_iso8601_format(-1000, false, &out), 0);
    assert_buf(&out, "1969-12-31T23:59:59.999999");
    wv_buf_free(&out);
}

static void test_celery_uuid4_is_random_and_well_formed(void **state)
{
    char a[CELERY_UUID_LEN + 1], b[CELERY_UUID_LEN + 1];
    assert_int_equal(celery_uuid4(a), 0);
    assert_int_equal(celery_uuid4(b), 0);
    assert_true(is_uuid((wv_str){a, strlen(a)}));
    assert_int_equal(a[14], '4');
    assert_true(strchr("89ab", a[19]) != NULL);
    assert_string_not_equal(a, b);

    /* no id, no tag: both made up */
    celery_task_msg m;
    celery_task_msg_init(&m);
    m.task = "tasks.add";
    m.args = "[2,3]";
    m.args_len = 5;
    wv_buf out = {0};
    assert_int_equal(celery_task_encode_redis(&m, &out), 0);
    celery_task t;
    assert_int_equal(celery_task_decode_redis(out.p, out.n, &t), 0);
    assert_true(is_uuid(t.id) && is_uuid(t.delivery_tag) && wv_str_eq(t.id, t.root_id));
    assert_str(t.args, "[2, 3]");
    assert_str(t.argsrepr, "(2, 3)");
    assert_int_equal(t.reply_to.n, 0);
    celery_task_free(&t);
    wv_buf_free(&out);
}

static void test_celery_protocol_1_is_decoded(void **state)
{
    /* what Celery 3 (or task_protocol = 1) sends: the body is the task */
    static const char body[] =
        "{\"task\": \"tasks.add\", \"id\": \"abc\", \"args\": [2, 3], \"kwargs\": {\"z\": 1}, "
        "\"retries\": 1, \"eta\": \"2026-12-07T12:00:00+00:00\", \"expires\": null, \"utc\": "
        "true, \"callbacks\": [{\"task\": \"b\"}], \"errbacks\": null, \"timelimit\": [10, "
        "null], \"taskset\": \"g1\", \"chord\": null}";
    wv_buf env = {0};
    assert_int_equal(wv_buf_puts(&env, "{\"body\": \""), 0);
    for (const char *p = body; *p; p++) {
        if (*p == '"')
            wv_buf_append(&env, "\\", 1);
        wv_buf_append(&env, p, 1);
    }
    wv_buf_puts(&env,
                "\", \"content-encoding\": \"utf-8\", \"content-type\": \"application/json\", "
                "\"headers\": {}, \"properties\": {\"delivery_tag\": \"d\"}}");
    celery_task t;
    int rc = celery_task_decode_redis(env.p, env.n, &t);
    if (rc)
        fail_msg("%d %s", rc, wv_errmsg());
    assert_int_equal(t.protocol, 1);
    assert_str(t.task, "tasks.add");
    assert_str(t.id, "abc");
    assert_str(t.args, "[2, 3]");
    assert_str(t.kwargs, "{\"z\": 1}");
    assert_str(t.callbacks, "[{\"task\": \"b\"}]");
    assert_str(t.group, "g1");
    assert_int_equal(t.retries, 1);
    assert_true(t.time_limit == 10 && t.soft_time_limit < 0);
    assert_true(t.eta_ns == INT64_C(1796644800) * 1000000000);
    assert_int_equal(t.body_encoding.n, 0); /* no body_encoding: the body is the text itself */
    celery_task_free(&t);
    wv_buf_free(&env);
}

static void test_celery_malformed_messages_are_refused(void **state)
{
    static const struct {
        const char *text;
        int err;
    } table[] = {
        {"", -EBADMSG},
        {"[]", -EBADMSG},
        {"{\"body\": \"W10=\"", -EBADMSG},
        {"{}", -EBADMSG},
        {"{\"body\": 5}", -EBADMSG},
        {"{\"body\": \"W1sy\", \"properties\": {\"body_encoding\": \"base64\"}}", -EBADMSG},
        {"{\"body\": \"!!!!\", \"properties\": {\"body_encoding\": \"base64\"}}", -EBADMSG},
        {"{\"body\": \"W10\", \"properties\": {\"body_encoding\": \"base64\"}}", -EBADMSG},
        /* [] : not [args, kwargs, embed] */
        {"{\"body\": \"W10=\", \"properties\": {\"body_encoding\": \"base64\"}, \"headers\": "
         "{\"task\": \"a\", \"id\": \"b\"}}",
         -EBADMSG},
        {"{\"body\": \"[[], {}, {}]\", \"headers\": {\"id\": \"b\"}}", -EBADMSG},
        {"{\"body\": \"[[], {}, {}]\", \"headers\": {\"task\": \"a\"}}", -EBADMSG},
        {"{\"body\": \"[[], {}, {}]\", \"headers\": {\"task\": 1, \"id\": \"b\"}}", -EBADMSG},
        {"{\"body\": \"[{}, {}, {}]\", \"headers\": {\"task\": \"a\", \"id\": \"b\"}}", -EBADMSG},
        {"{\"body\": \"[[], [], {}]\", \"headers\": {\"task\": \"a\", \"id\": \"b\"}}", -EBADMSG},
        {"{\"body\": \"[[], {}, {}, 1]\", \"headers\": {\"task\": \"a\", \"id\": \"b\"}}",
         -EBADMSG},
        {"{\"body\": \"[[], {}, {}]\", \"headers\": {\"task\": \"a\", \"id\": \"b\", \"eta\": "
         "\"tomorrow\"}}",
         -EBADMSG},
        {"{\"body\": \"[[], {}, {}]\", \"headers\": {\"task\": \"a\", \"id\": \"b\", "
         "\"timelimit\": [1]}}",
         -EBADMSG},
        {"{\"body\": \"[[], {}, {}]\", \"headers\": {\"task\": \"a\", \"id\": \"b\", "
         "\"retries\": \"2\"}}",
         -EBADMSG},
        {"{\"body\": \"[[], {}, {}]\", \"headers\": {\"task\": \"a\", \"id\": \"b\"}, "
         "\"properties\": {\"delivery_info\": 3}}",
         -EBADMSG},
        {"{\"body\": \"[[], {}, {}\", \"headers\": {\"task\": \"a\", \"id\": \"b\"}}", -EBADMSG},
        {"{\"body\": \"{\\\"id\\\": \\\"b\\\"}\", \"headers\": {}}", -EBADMSG},
        {"{\"body\": \"gASV\", \"content-type\": \"application/x-python-serialize\"}", -ENOTSUP},
        {"{\"body\": \"x\", \"content-type\": \"application/json\", \"content-encoding\": "
         "\"binary\"}",
         -ENOTSUP},
        {"{\"body\": \"x\", \"properties\": {\"body_encoding\": \"gzip\"}}", -ENOTSUP},
    };
    for (size_t i = 0; i < ARRAY_LEN(table); i++) {
        celery_task t;
        size_t n = strlen(table[i].text);
        char *copy = malloc(n ? n : 1); /* exact size: ASan sees a read past the end */
        memcpy(copy, table[i].text, n);
        int rc = celery_task_decode_redis(copy, n, &t);
        if (rc != table[i].err)
            fail_msg("%s: %d, expected %d", table[i].text, rc, table[i].err);
        if (strncmp(wv_errmsg(), "celery: ", 8) != 0)
            fail_msg("%s: no message: \"%s\"", table[i].text, wv_errmsg());
        celery_task_free(&t); /* harmless after a failure */
        free(copy);
    }

    /* producers: bad inputs are -EINVAL and leave the buffer as it was */
    celery_task_msg m;
    celery_task_msg_init(&m);
    wv_buf out = {0};
    wv_buf_puts(&out, "keep");
    assert_int_equal(celery_task_encode_redis(&m, &out), -EINVAL); /* no task */
    m.task = "a";
    m.args = "{}";
    m.args_len = 2;
    assert_int_equal(celery_task_encode_redis(&m, &out), -EINVAL);
    m.args = "[1,]";
    m.args_len = 4;
    assert_int_equal(celery_task_encode_redis(&m, &out), -EINVAL);
    m.args = NULL;
    m.chain = "[";
    assert_int_equal(celery_task_encode_redis(&m, &out), -EINVAL);
    assert_int_equal(out.n, 4);
    wv_buf_free(&out);
}

static void test_celery_result_refusals(void **state)
{
    static const char *const bad[] = {
        "",
        "[]",
        "{\"status\": \"DONE\", \"task_id\": \"x\"}",
        "{\"task_id\": \"x\"}",
        "{\"status\": \"SUCCESS\", \"date_done\": \"yesterday\"}",
        "{\"status\": \"FAILURE\", \"result\": {\"exc_type\": 3}}",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        celery_result r;
        if (celery_result_decode(bad[i], strlen(bad[i]), &r) != -EBADMSG)
            fail_msg("%s was accepted", bad[i]);
        celery_result_free(&r);
    }
}

/* apply_async(headers={"tenant": "acme", "n": 5}): after Celery's own, as
 * Python writes them; one of Celery's names is refused. */
static void test_celery_custom_headers_follow_celerys(void **state)
{
    (void)state;
    celery_task_msg m;
    celery_task_msg_init(&m);
    m.task = "tasks.add";
    m.id = "922e77b8-585a-472a-a676-8782ec85d29b";
    m.origin = "gen20767@vm";
    m.args = "[1,2]";
    m.args_len = 5;
    m.headers = "{\"tenant\":\"acme\",\"n\":5}";
    celery_amqp_msg a = {0};
    assert_int_equal(celery_task_encode_amqp(&m, &a), 0);
    const char want[] =
        "{\"lang\": \"py\", \"task\": \"tasks.add\", \"id\": "
        "\"922e77b8-585a-472a-a676-8782ec85d29b\", \"shadow\": null, \"eta\": null, \"expires\": "
        "null, \"group\": null, \"group_index\": null, \"retries\": 0, \"timelimit\": [null, "
        "null], \"root_id\": \"922e77b8-585a-472a-a676-8782ec85d29b\", \"parent_id\": null, "
        "\"argsrepr\": \"(1, 2)\", \"kwargsrepr\": \"{}\", \"origin\": \"gen20767@vm\", "
        "\"ignore_result\": false, \"tenant\": \"acme\", \"n\": 5}";
    assert_int_equal(a.headers.n, strlen(want));
    assert_memory_equal(a.headers.p, want, a.headers.n);
    celery_amqp_msg_free(&a);
    /* and read back by the worker's decoder */
    wv_buf env = {0};
    assert_int_equal(celery_task_encode_redis(&m, &env), 0);
    celery_task t;
    assert_int_equal(celery_task_decode_redis(env.p, env.n, &t), 0);
    const char *tenant = NULL;
    assert_int_equal(wv_json_get_string(t.headers, "tenant", &tenant, NULL), 0);
    assert_string_equal(tenant, "acme");
    celery_task_free(&t);
    wv_buf_free(&env);
    m.headers = "{\"task\":\"other\"}";
    memset(&a, 0, sizeof a);
    assert_int_equal(celery_task_encode_amqp(&m, &a), -EINVAL);
    m.headers = "[1]";
    memset(&a, 0, sizeof a);
    assert_int_equal(celery_task_encode_amqp(&m, &a), -EINVAL);
}

/* A chained task's meta names its parent (and group) before task_id, as
 * Celery's backend writes it. */
static void test_celery_result_meta_names_parent_and_group(void **state)
{
    (void)state;
    celery_result_msg m = {.status = CELERY_STARTED,
                           .task_id = "t1",
                           .pid = 7,
                           .hostname = "w@h",
                           .date_done_ns = CELERY_NO_TIME,
                           .group_id = "g1",
                           .parent_id = "p1"};
    wv_buf out = {0};
    assert_int_equal(celery_result_encode(&m, &out), 0);
    const char want[] = "{\"status\": \"STARTED\", \"result\": {\"pid\": 7, \"hostname\": "
                        "\"w@h\"}, \"traceback\": null, \"children\": [], \"date_done\": null, "
                        "\"group_id\": \"g1\", \"parent_id\": \"p1\", \"task_id\": \"t1\"}";
    assert_int_equal(out.n, strlen(want));
    assert_memory_equal(out.p, want, out.n);
    wv_buf_free(&out);
}

/* kombu's envelope around a remote-control command, as captured from
 * Python's app.control.revoke() over Redis, but for the delivery tag. */
static void test_celery_envelope_of_a_command_is_kombus(void **state)
{
    (void)state;
    const char body[] = "{\"method\": \"revoke\", \"arguments\": {\"task_id\": \"x\"}}";
    wv_buf out = {0};
    assert_int_equal(
        celery_envelope_encode(body, strlen(body), "{\"clock\":1}", 2, "celery.pidbox", "", &out),
        0);
    const char want[] =
        "{\"body\": \"eyJtZXRob2QiOiAicmV2b2tlIiwgImFyZ3VtZW50cyI6IHsidGFza19pZCI6ICJ4In19\", "
        "\"content-encoding\": \"utf-8\", \"content-type\": \"application/json\", \"headers\": "
        "{\"clock\": 1}, \"properties\": {\"delivery_mode\": 2, \"delivery_info\": "
        "{\"exchange\": \"celery.pidbox\", \"routing_key\": \"\"}, \"priority\": 0, "
        "\"body_encoding\": \"base64\", \"delivery_tag\": \"";
    assert_true(out.n > sizeof want + CELERY_UUID_LEN);
    assert_memory_equal(out.p, want, sizeof want - 1);
    assert_memory_equal(out.p + out.n - 3, "\"}}", 3);
    wv_buf back = {0};
    assert_int_equal(celery_envelope_body(out.p, out.n, &back), 0);
    assert_int_equal(back.n, strlen(body));
    assert_memory_equal(back.p, body, back.n);
    /* refusals */
    wv_buf_reset(&back);
    assert_int_equal(celery_envelope_body("nope", 4, &back), -EBADMSG);
    assert_int_equal(celery_envelope_body("{\"body\": 1}", 11, &back), -EBADMSG);
    const char pickled[] = "{\"body\": \"gAN9cQAu\", \"content-type\": "
                           "\"application/x-python-serialize\"}";
    assert_int_equal(celery_envelope_body(pickled, strlen(pickled), &back), -ENOTSUP);
    const char notb64[] = "{\"body\": \"!!!!\", \"properties\": {\"body_encoding\": \"base64\"}}";
    assert_int_equal(celery_envelope_body(notb64, strlen(notb64), &back), -EBADMSG);
    const char plain[] = "{\"body\": \"{}\"}";
    assert_int_equal(celery_envelope_body(plain, strlen(plain), &back), 0);
    assert_int_equal(back.n, 2);
    wv_buf_free(&out);
    wv_buf_free(&back);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_celery_add_decodes_to_the_fields_celery_sent),
        cmocka_unit_test(test_celery_options_dates_and_embeds_decode),
        cmocka_unit_test(test_celery_envelopes_encode_byte_for_byte_as_kombu),
        cmocka_unit_test(test_celery_results_decode_and_encode_as_the_backend_stores_them),
        cmocka_unit_test(test_celery_saferepr_table),
        cmocka_unit_test(test_celery_pyjson_writes_as_json_dumps),
        cmocka_unit_test(test_celery_iso8601_both_ways),
        cmocka_unit_test(test_celery_uuid4_is_random_and_well_formed),
        cmocka_unit_test(test_celery_protocol_1_is_decoded),
        cmocka_unit_test(test_celery_malformed_messages_are_refused),
        cmocka_unit_test(test_celery_result_refusals),
        cmocka_unit_test(test_celery_envelope_of_a_command_is_kombus),
        cmocka_unit_test(test_celery_result_meta_names_parent_and_group),
        cmocka_unit_test(test_celery_custom_headers_follow_celerys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
