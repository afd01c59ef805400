/*
 * libFuzzer target for Celery's wire format (src/tasks/celery.c). `make
 * fuzz` runs it; its seeds (the captured messages of
 * tests/unit/celery_fixtures/) are in fuzz/corpus/fuzz_celery/.
 *
 * Input: one control byte, then text. Bit 0 of the control byte says what
 * the text is: 0 a kombu Redis envelope, 1 a message body, which goes into
 * an envelope (base64, with headers naming a task and an id) first.
 *
 * A decode either fails with -EBADMSG/-ENOTSUP and a "celery: " message or
 * gives fields whose raw JSON (args, kwargs, embed, callbacks, ...) parses;
 * the fields encoded again decode to the same task, id, args and kwargs
 * (args and kwargs as Python's json.dumps rewrote them), and that encoding
 * is stable. The text also goes through the result decoder, saferepr
 * (valid UTF-8 out, within maxlen plus the ", ..." and brackets),
 * json.dumps rewriting (idempotent) and ISO 8601 parsing (a date formats
 * and parses back to itself, to the microsecond). A violation aborts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tasks/celery.h"
#include "fuzz_util.h"

static char *dup_str(wv_str s)
{
    char *c = malloc(s.n + 1);
    CHECK(c);
    if (s.n)
        memcpy(c, s.p, s.n);
    c[s.n] = 0;
    return c;
}

static void check_parses(wv_str raw)
{
    wv_json_doc *doc;
    CHECK(wv_json_parse(raw.p, raw.n, &doc) == 0);
    wv_json_doc_free(doc);
}

static bool same(wv_str a, const wv_buf *b)
{
    return a.n == b->n && (a.n == 0 || memcmp(a.p, b->p, a.n) == 0);
}

static void reencode(const celery_task *t)
{
    char *task = dup_str(t->task), *id = dup_str(t->id), *cb = dup_str(t->callbacks);
    char *chain = dup_str(t->chain);
    celery_task_msg m;
    celery_task_msg_init(&m);
    m.task = task;
    m.id = id;
    m.origin = "fuzz";
    m.delivery_tag = "tag";
    m.args = t->args.p;
    m.args_len = t->args.n;
    m.kwargs = t->kwargs.p;
    m.kwargs_len = t->kwargs.n;
    m.callbacks = cb;
    m.chain = chain;
    m.eta_ns = t->eta_ns;
    m.retries = t->retries;
    wv_buf out = {0}, again = {0}, args = {0}, kwargs = {0};
    int rc = celery_task_encode_redis(&m, &out);
    /* eta before year 1 or after 9999 has no Python form */
    if (rc == 0) {
        celery_task u;
        CHECK(celery_task_decode_redis(out.p, out.n, &u) == 0);
        CHECK(wv_str_eq(u.task, t->task) && wv_str_eq(u.id, t->id));
        CHECK(celery_pyjson(t->args.p, t->args.n, &args) == 0 && same(u.args, &args));
        CHECK(celery_pyjson(t->kwargs.p, t->kwargs.n, &kwargs) == 0 && same(u.kwargs, &kwargs));
        CHECK(u.eta_ns == CELERY_NO_TIME || u.eta_ns == t->eta_ns / 1000 * 1000 || t->eta_ns < 0);
        CHECK(celery_task_encode_redis(&m, &again) == 0 && same(u.envelope, &again));
        celery_task_free(&u);
    } else {
        CHECK(rc == -EINVAL);
    }
    wv_buf_free(&out);
    wv_buf_free(&again);
    wv_buf_free(&args);
    wv_buf_free(&kwargs);
    free(task);
    free(id);
    free(cb);
    free(chain);
}

static void valid_utf8(const wv_buf *b)
{
    wv_json_doc *doc;
    wv_buf q = {0};
    wv_json j;
    wv_json_init(&j, &q);
    wv_json_stringn(&j, b->p, b->n);
    CHECK(wv_json_finish(&j) == 0);
    /* the writer replaces invalid UTF-8 with U+FFFD: the string must read back the same */
    CHECK(wv_json_parse(q.p, q.n, &doc) == 0);
    const char *s;
    size_t n;
    CHECK(wv_json_as_string(wv_json_doc_root(doc), &s, &n) == 0);
    CHECK(n == b->n && (n == 0 || memcmp(s, b->p, n) == 0));
    wv_json_doc_free(doc);
    wv_buf_free(&q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 65536)
        return 0;
    bool body = data[0] & 1;
    char *text = copy_exact(data + 1, size - 1);
    size_t n = size - 1;

    wv_buf env = {0};
    if (body) {
        /* base64 by hand, so the fuzzer's body reaches the body decoder */
        static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        CHECK(wv_buf_puts(&env, "{\"body\": \"") == 0);
        for (size_t i = 0; i < n; i += 3) {
            uint32_t v = (uint32_t)(uint8_t)text[i] << 16;
            if (i + 1 < n)
                v |= (uint32_t)(uint8_t)text[i + 1] << 8;
            if (i + 2 < n)
                v |= (uint8_t)text[i + 2];
            char q[4] = {a[v >> 18], a[(v >> 12) & 63], i + 1 < n ? a[(v >> 6) & 63] : '=',
                         i + 2 < n ? a[v & 63] : '='};
            CHECK(wv_buf_append(&env, q, 4) == 0);
        }
        CHECK(wv_buf_puts(&env, "\", \"content-type\": \"application/json\", \"headers\": "
                                "{\"task\": \"t\", \"id\": \"i\"}, \"properties\": "
                                "{\"body_encoding\": \"base64\"}}") == 0);
    }
    const char *in = body ? env.p : text;
    size_t in_n = body ? env.n : n;

    celery_task t;
    int rc = celery_task_decode_redis(in, in_n, &t);
    if (rc == 0) {
        const wv_str *raws[] = {&t.args,     &t.kwargs, &t.embed, &t.callbacks,
                                &t.errbacks, &t.chain,  &t.chord};
        for (size_t i = 0; i < sizeof raws / sizeof *raws; i++)
            check_parses(*raws[i]);
        CHECK(t.args.p[0] == '[' && t.kwargs.p[0] == '{');
        CHECK(t.task.n > 0 && t.id.n > 0);
        CHECK(t.envelope.n == in_n && memcmp(t.envelope.p, in, in_n) == 0);
        reencode(&t);
    } else {
        CHECK(rc == -EBADMSG || rc == -ENOTSUP || rc == -EMSGSIZE);
        CHECK(strncmp(wv_errmsg(), "celery: ", 8) == 0 || rc == -EMSGSIZE);
    }
    celery_task_free(&t);

    /* the envelope of an event or command: its body, and back the same */
    wv_buf eb = {0}, ee = {0}, eb2 = {0};
    rc = celery_envelope_body(in, in_n, &eb);
    CHECK(rc == 0 || rc == -EBADMSG || rc == -ENOTSUP || rc == -EMSGSIZE || rc == -ENOMEM);
    if (rc == 0) {
        CHECK(celery_envelope_encode(eb.p, eb.n, NULL, 2, "x", "", &ee) == 0);
        CHECK(celery_envelope_body(ee.p, ee.n, &eb2) == 0);
        CHECK(eb2.n == eb.n && (eb.n == 0 || memcmp(eb.p, eb2.p, eb.n) == 0));
    }
    wv_buf_free(&eb);
    wv_buf_free(&ee);
    wv_buf_free(&eb2);

    celery_result r;
    rc = celery_result_decode(text, n, &r);
    CHECK(rc == 0 || rc == -EBADMSG || rc == -EMSGSIZE);
    if (rc == 0) {
        check_parses(r.result);
        check_parses(r.children);
        check_parses(r.exc_message);
    }
    celery_result_free(&r);

    wv_buf out = {0}, again = {0};
    size_t maxlen = size % 64;
    rc = celery_saferepr(text, n, data[0] & 2, maxlen, &out);
    CHECK(rc == 0 || rc == -EINVAL);
    if (rc == 0)
        valid_utf8(&out);
    wv_buf_reset(&out);
    rc = celery_pyjson(text, n, &out);
    if (rc == 0) {
        check_parses((wv_str){out.p, out.n});
        CHECK(celery_pyjson(out.p, out.n, &again) == 0);
        CHECK(again.n == out.n && memcmp(again.p, out.p, out.n) == 0);
    }
    wv_buf_reset(&out);
    int64_t ns;
    if (celery_iso8601_parse(text, n, &ns) == 0 && celery_iso8601_format(ns, true, &out) == 0) {
        int64_t back;
        CHECK(celery_iso8601_parse(out.p, out.n, &back) == 0);
        CHECK(back == ns - ((ns % 1000 + 1000) % 1000));
    }
    wv_buf_free(&out);
    wv_buf_free(&again);
    wv_buf_free(&env);
    free(text);
    return 0;
}
