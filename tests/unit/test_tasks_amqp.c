/*
 * The AMQP task transport's pieces (src/tasks/amqp.c): message headers
 * between JSON and AMQP field tables, both ways, without a broker; and,
 * when $WEAVE_TEST_AMQP_URL names a RabbitMQ node (scripts/test.sh starts
 * one), the transport's broadcasts: publish and listen on Celery's
 * remote-control (fanout) and events (topic) exchanges, declared as kombu
 * declares them; and a send to a queue deleted since it was declared. Celery itself on RabbitMQ is
 * tests/integration/test_tasks_amqp.py.
 */
#include "harness.h"

#include "tasks/transport.h"
#include "weave/amqp.h"

/* A table's bytes, written by hand as AMQP 0-9-1 encodes them. */
static size_t put_name(uint8_t *p, const char *name)
{
    size_t n = strlen(name);
    p[0] = (uint8_t)n;
    memcpy(p + 1, name, n);
    return n + 1;
}

static size_t put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return 4;
}

static size_t put_long_string(uint8_t *p, const char *s)
{
    size_t n = strlen(s);
    p[0] = 'S';
    put_u32(p + 1, (uint32_t)n);
    memcpy(p + 5, s, n);
    return n + 5;
}

static void test_headers_table_reads_as_a_json_object(void **state)
{
    (void)state;
    uint8_t inner[64], arr[64], t[512];
    size_t ni = put_name(inner, "k");
    ni += put_long_string(inner + ni, "v");
    size_t na = 0;
    arr[na++] = 'I';
    na += put_u32(arr + na, 1);
    na += put_long_string(arr + na, "x");
    arr[na++] = 'V';
    size_t n = put_name(t, "task");
    n += put_long_string(t + n, "tasks.add");
    n += put_name(t + n, "retries");
    t[n++] = 'I';
    n += put_u32(t + n, (uint32_t)-5);
    n += put_name(t + n, "ok");
    t[n++] = 't';
    t[n++] = 1;
    n += put_name(t + n, "eta");
    t[n++] = 'V';
    n += put_name(t + n, "big");
    t[n++] = 'l';
    n += put_u32(t + n, 0x00000002);
    n += put_u32(t + n, 0x540BE400); /* 10,000,000,000 */
    n += put_name(t + n, "half");
    t[n++] = 'd';
    n += put_u32(t + n, 0x3FE00000); /* 0.5 */
    n += put_u32(t + n, 0);
    n += put_name(t + n, "nested");
    t[n++] = 'F';
    n += put_u32(t + n, (uint32_t)ni);
    memcpy(t + n, inner, ni);
    n += ni;
    n += put_name(t + n, "timelimit");
    t[n++] = 'A';
    n += put_u32(t + n, (uint32_t)na);
    memcpy(t + n, arr, na);
    n += na;
    wv_buf out = {0};
    assert_int_equal(tasks_amqp_table_json((wv_str){(const char *)t, n}, &out), 0);
    assert_int_equal(out.n,
                     strlen("{\"task\":\"tasks.add\",\"retries\":-5,\"ok\":true,\"eta\":null,"
                            "\"big\":10000000000,\"half\":0.5,\"nested\":{\"k\":\"v\"},"
                            "\"timelimit\":[1,\"x\",null]}"));
    assert_memory_equal(out.p,
                        "{\"task\":\"tasks.add\",\"retries\":-5,\"ok\":true,\"eta\":null,"
                        "\"big\":10000000000,\"half\":0.5,\"nested\":{\"k\":\"v\"},"
                        "\"timelimit\":[1,\"x\",null]}",
                        out.n);
    /* cut short inside a value: not a table */
    wv_buf_reset(&out);
    assert_int_equal(tasks_amqp_table_json((wv_str){(const char *)t, 9}, &out), -EBADMSG);
    /* the empty table */
    wv_buf_reset(&out);
    assert_int_equal(tasks_amqp_table_json((wv_str){"", 0}, &out), 0);
    assert_memory_equal(out.p, "{}", 2);
    wv_buf_free(&out);
}

static void test_json_headers_become_typed_fields(void **state)
{
    (void)state;
    const char *text = "{\"lang\": \"py\", \"eta\": null, \"retries\": 0, \"big\": 10000000000, "
                       "\"soft\": 2.5, \"ignore_result\": false, "
                       "\"timelimit\": [null, 30], \"stamps\": {\"a\": \"b\"}}";
    wv_json_doc *doc;
    assert_int_equal(wv_json_parse(text, strlen(text), &doc), 0);
    void *mem = NULL;
    wv_amqp_field *f = NULL;
    int n = 0;
    assert_int_equal(tasks_amqp_json_fields(wv_json_doc_root(doc), &mem, &f, &n), 0);
    assert_int_equal(n, 8);
    assert_true(wv_str_eq(f[0].name, WV_STR("lang")));
    assert_int_equal(f[0].type, WV_AMQP_FIELD_STRING);
    assert_true(wv_str_eq(f[0].s, WV_STR("py")));
    assert_int_equal(f[1].type, WV_AMQP_FIELD_VOID);
    assert_int_equal(f[2].type, WV_AMQP_FIELD_INT);
    assert_int_equal(f[2].i, 0);
    assert_int_equal(f[3].type, WV_AMQP_FIELD_INT);
    assert_true(f[3].i == INT64_C(10000000000));
    assert_int_equal(f[4].type, WV_AMQP_FIELD_DOUBLE);
    assert_true(f[4].d == 2.5);
    assert_int_equal(f[5].type, WV_AMQP_FIELD_BOOL);
    assert_false(f[5].b);
    assert_int_equal(f[6].type, WV_AMQP_FIELD_ARRAY);
    assert_int_equal(f[6].nfields, 2);
    assert_int_equal(f[6].fields[0].type, WV_AMQP_FIELD_VOID);
    assert_int_equal(f[6].fields[1].type, WV_AMQP_FIELD_INT);
    assert_int_equal(f[6].fields[1].i, 30);
    assert_int_equal(f[7].type, WV_AMQP_FIELD_TABLE);
    assert_int_equal(f[7].nfields, 1);
    assert_true(wv_str_eq(f[7].fields[0].name, WV_STR("a")));
    assert_true(wv_str_eq(f[7].fields[0].s, WV_STR("b")));
    tasks_amqp_fields_free(mem);
    wv_json_doc_free(doc);
    /* only an object is a headers table */
    assert_int_equal(wv_json_parse("[1]", 3, &doc), 0);
    assert_int_equal(tasks_amqp_json_fields(wv_json_doc_root(doc), &mem, &f, &n), -EINVAL);
    wv_json_doc_free(doc);
}

/* ------------------------------------------------------------ broker */

static const char *amqp_url;

typedef struct heard {
    char body[64][64];
    int n;
} heard;

static int got(const char *body, size_t n, void *arg)
{
    heard *h = arg;
    if (h->n < 64)
        snprintf(h->body[h->n++], sizeof h->body[0], "%.*s", (int)n, body);
    return 0;
}

typedef struct listener {
    tasks_transport *tr;
    const char *exchange, *type, *key;
    wv_chan *stopping;
    heard h;
    int rc;
} listener;

static int listen_fiber(void *arg)
{
    listener *l = arg;
    l->rc = l->tr->ops->listen(l->tr, l->exchange, l->type, l->key, l->stopping, got, &l->h);
    return 0;
}

static int broadcasts(void *arg)
{
    (void)arg;
    tasks_cfg cfg = {.queue = "celery", .concurrency = 4, .result_expires_ms = 60000};
    tasks_transport *tr;
    REQUIRE_EQ(tasks_amqp_open(amqp_url, &cfg, &tr), 0);
    wv_chan *stopping = wv_chan_new(sizeof(int), 0);
    listener pidbox = {.tr = tr,
                       .exchange = "celery.pidbox",
                       .type = "fanout",
                       .key = "",
                       .stopping = stopping,
                       .rc = 1};
    listener events = {.tr = tr,
                       .exchange = "celeryev",
                       .type = "topic",
                       .key = "task.#",
                       .stopping = stopping,
                       .rc = 1};
    wv_group *g = wv_group_new();
    CHECK_EQ(wv_group_spawn(g, listen_fiber, &pidbox, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, listen_fiber, &events, NULL), 0);
    wv_sleep_ms(300); /* both bound */
    const char *revoke = "{\"method\": \"revoke\", \"arguments\": {\"task_id\": \"x\"}}";
    CHECK_EQ(tr->ops->publish(tr, "celery.pidbox", "fanout", "", revoke, strlen(revoke), NULL), 0);
    CHECK_EQ(tr->ops->publish(tr, "celeryev", "topic", "task.started", "{\"n\": 1}", 8,
                              "{\"hostname\": \"w@h\"}"),
             0);
    CHECK_EQ(tr->ops->publish(tr, "celeryev", "topic", "worker.heartbeat", "{\"n\": 2}", 8, NULL),
             0);
    CHECK_EQ(tr->ops->publish(tr, "celeryev", "topic", "task.succeeded", "{\"n\": 3}", 8, NULL), 0);
    for (int i = 0; i < 100 && (pidbox.h.n < 1 || events.h.n < 2); i++)
        wv_sleep_ms(20);
    wv_chan_close(stopping);
    wv_group_join(g);
    wv_group_free(g);
    CHECK_EQ(pidbox.rc, 0);
    CHECK_EQ(events.rc, 0);
    CHECK_EQ(pidbox.h.n, 1);
    CHECK_STR_EQ(pidbox.h.body[0], revoke);
    CHECK_EQ(events.h.n, 2); /* worker.heartbeat does not match task.# */
    CHECK_STR_EQ(events.h.body[0], "{\"n\": 1}");
    CHECK_STR_EQ(events.h.body[1], "{\"n\": 3}");
    /* the exchanges as kombu declares them: a declare with kombu's flags
     * is accepted, one with others refused (406) */
    wv_amqp *c;
    wv_amqp_channel *ch;
    REQUIRE_EQ(wv_amqp_open(amqp_url, NULL, &c), 0);
    REQUIRE_EQ(wv_amqp_channel_open(c, &ch), 0);
    CHECK_EQ(wv_amqp_exchange_declare(ch, "celery.pidbox", "fanout", NULL), 0);
    CHECK_EQ(wv_amqp_exchange_declare(ch, "celeryev", "topic",
                                      &(wv_amqp_exchange_opts){.durable = true}),
             0);
    CHECK_EQ(wv_amqp_exchange_declare(ch, "celeryev", "topic", NULL), -EINVAL);
    wv_amqp_close(c);
    wv_chan_free(stopping);
    tr->ops->close(tr);
    return 0;
}

/* A producer whose queue was deleted since it declared it declares it
 * again (its publishes are mandatory) rather than lose the message. */
static int send_after_delete(void *arg)
{
    (void)arg;
    const char *q = "wvtasks.unit.deleted";
    tasks_cfg cfg = {.queue = q, .concurrency = 4, .result_expires_ms = 60000};
    tasks_transport *tr;
    REQUIRE_EQ(tasks_amqp_open(amqp_url, &cfg, &tr), 0);
    wv_amqp *c;
    wv_amqp_channel *ch;
    REQUIRE_EQ(wv_amqp_open(amqp_url, NULL, &c), 0);
    REQUIRE_EQ(wv_amqp_channel_open(c, &ch), 0);
    celery_task_msg m;
    celery_task_msg_init(&m);
    m.task = "tasks.add";
    m.args = "[1, 2]";
    m.args_len = 6;
    CHECK_EQ(tr->ops->send(tr, &m, q), 0);
    uint32_t n = 0;
    CHECK_EQ(wv_amqp_queue_delete(ch, q, false, false, &n), 0);
    CHECK_EQ(n, 1);
    CHECK_EQ(tr->ops->send(tr, &m, q), 0);
    wv_amqp_msg *got = NULL;
    CHECK_EQ(wv_amqp_get(ch, q, true, &got), 1);
    if (got)
        CHECK(wv_str_eq(got->body, WV_STR("[[1, 2], {}, {\"callbacks\": null, \"errbacks\": null, "
                                          "\"chain\": null, \"chord\": null}]")));
    wv_amqp_msg_free(got);
    wv_amqp_queue_delete(ch, q, false, false, NULL);
    wv_amqp_exchange_delete(ch, q, false);
    wv_amqp_close(c);
    tr->ops->close(tr);
    return 0;
}

static void test_send_declares_a_deleted_queue_again(void **state)
{
    (void)state;
    if (!amqp_url)
        skip();
    assert_int_equal(run_in_rt(1, send_after_delete, NULL), 0);
    assert_checks_passed();
}

static void test_broadcasts_reach_listeners_on_celery_exchanges(void **state)
{
    (void)state;
    if (!amqp_url)
        skip();
    assert_int_equal(run_in_rt(1, broadcasts, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    amqp_url = getenv("WEAVE_TEST_AMQP_URL");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_table_reads_as_a_json_object),
        cmocka_unit_test(test_json_headers_become_typed_fields),
        cmocka_unit_test(test_broadcasts_reach_listeners_on_celery_exchanges),
        cmocka_unit_test(test_send_declares_a_deleted_queue_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
