/*
 * The AMQP frame reader and table scanner (src/amqp/frame.c) and the frame
 * writers (src/amqp/codec.c), without a broker: frames written by our
 * encoder are read back whole, fed one byte at a time, and cut short;
 * oversized, malformed and deeply nested input is refused with -EMSGSIZE /
 * -EPROTO and a reason, never a crash.
 */
#include "harness.h"

#include "amqp/amqp_internal.h"

enum { FRAME_MAX = 4096 };

/* A stream of frames as the broker could send them: a method, a message
 * (method, header, body frames) and a heartbeat. */
static void sample_stream(wv_buf *b, amqp_pool_t *pool, size_t body_len)
{
    amqp_queue_declare_ok_t ok = {.queue = amqp_cstring_bytes("q1"), .message_count = 7};
    assert_int_equal(amqp_put_method(b, FRAME_MAX, 3, AMQP_QUEUE_DECLARE_OK_METHOD, &ok), 0);
    char *body = malloc(body_len);
    for (size_t i = 0; i < body_len; i++)
        body[i] = (char)(i * 7);
    wv_amqp_field headers[] = {WV_AMQP_STR("trace", "abc"), WV_AMQP_INT("n", 42)};
    wv_amqp_publish_opts o = {.content_type = "text/plain",
                              .headers = headers,
                              .nheaders = 2,
                              .message_id = "m-1",
                              .priority = 5};
    assert_int_equal(
        amqp_put_publish(b, pool, FRAME_MAX, 5, "ex", "rk", (wv_str){body, body_len}, &o), 0);
    assert_int_equal(amqp_put_heartbeat(b), 0);
    free(body);
}

typedef struct seen {
    int n;
    uint8_t type[16];
    uint16_t channel[16];
    uint32_t size[16];
} seen;

/* Read every frame of p[0..n) as if it came in pieces of `step` bytes:
 * frames must come out whole and in order, the rest say "need more". */
static void read_in_steps(const char *p, size_t n, size_t step, seen *out)
{
    memset(out, 0, sizeof *out);
    char *buf = malloc(n);
    size_t have = 0, at = 0;
    while (at < n || have) {
        size_t take = n - at < step ? n - at : step;
        memcpy(buf + have, p + at, take);
        have += take;
        at += take;
        for (;;) {
            amqp_frame f;
            char why[AMQP_WHY];
            ssize_t len = amqp_frame_read((uint8_t *)buf, have, FRAME_MAX, &f, why);
            assert_true(len >= 0);
            if (len == 0)
                break;
            assert_true(out->n < 16);
            out->type[out->n] = f.type;
            out->channel[out->n] = f.channel;
            out->size[out->n] = f.size;
            out->n++;
            memmove(buf, buf + len, have - (size_t)len);
            have -= (size_t)len;
        }
        if (at == n)
            break;
    }
    assert_int_equal(have, 0);
    free(buf);
}

static void test_amqp_frames_fed_one_byte_at_a_time_come_out_whole_and_in_order(void **state)
{
    wv_buf b = {0};
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    sample_stream(&b, &pool, 10000); /* the body takes three frames of 4088 bytes at most */
    seen whole, bytewise, odd;
    read_in_steps(b.p, b.n, b.n, &whole);
    read_in_steps(b.p, b.n, 1, &bytewise);
    read_in_steps(b.p, b.n, 7, &odd);
    assert_int_equal(whole.n, 7);
    uint8_t want_type[] = {1, 1, 2, 3, 3, 3, 8};
    uint16_t want_channel[] = {3, 5, 5, 5, 5, 5, 0};
    for (int i = 0; i < 7; i++) {
        assert_int_equal(whole.type[i], want_type[i]);
        assert_int_equal(whole.channel[i], want_channel[i]);
    }
    assert_int_equal(whole.size[3] + whole.size[4] + whole.size[5], 10000);
    assert_int_equal(whole.size[3], FRAME_MAX - AMQP_FRAME_OVERHEAD);
    assert_memory_equal(&whole, &bytewise, sizeof whole);
    assert_memory_equal(&whole, &odd, sizeof whole);
    wv_buf_free(&b);
    empty_amqp_pool(&pool);
}

static void test_amqp_every_prefix_of_a_frame_needs_more(void **state)
{
    wv_buf b = {0};
    amqp_basic_deliver_t d = {.consumer_tag = amqp_cstring_bytes("wv-1"),
                              .delivery_tag = 9,
                              .exchange = amqp_cstring_bytes("e"),
                              .routing_key = amqp_cstring_bytes("k")};
    assert_int_equal(amqp_put_method(&b, FRAME_MAX, 1, AMQP_BASIC_DELIVER_METHOD, &d), 0);
    amqp_frame f;
    char why[AMQP_WHY];
    for (size_t n = 0; n < b.n; n++)
        assert_int_equal(amqp_frame_read((uint8_t *)b.p, n, FRAME_MAX, &f, why), 0);
    assert_int_equal(amqp_frame_read((uint8_t *)b.p, b.n, FRAME_MAX, &f, why), (ssize_t)b.n);
    assert_int_equal(amqp_frame_method_id(&f), AMQP_BASIC_DELIVER_METHOD);
    /* and the generated decoder reads back what the generated encoder wrote */
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    amqp_basic_deliver_t *back;
    assert_int_equal(amqp_decode_method(AMQP_BASIC_DELIVER_METHOD, &pool,
                                        (amqp_bytes_t){f.size - 4, (void *)(f.payload + 4)},
                                        (void **)&back),
                     0);
    assert_int_equal(back->delivery_tag, 9);
    assert_int_equal(back->consumer_tag.len, 4);
    empty_amqp_pool(&pool);
    wv_buf_free(&b);
}

static void test_amqp_a_frame_over_frame_max_is_emsgsize_as_soon_as_its_size_is_read(void **state)
{
    /* a body frame announcing 1 MiB on a connection tuned to 4096 bytes */
    uint8_t p[16] = {AMQP_FRAME_BODY_TYPE, 0, 1, 0, 0x10, 0, 0};
    amqp_frame f;
    char why[AMQP_WHY];
    for (size_t n = 0; n < 7; n++)
        assert_int_equal(amqp_frame_read(p, n, FRAME_MAX, &f, why), 0);
    for (size_t n = 7; n <= sizeof p; n++)
        assert_int_equal(amqp_frame_read(p, n, FRAME_MAX, &f, why), -EMSGSIZE);
    assert_non_null(strstr(why, "over the frame_max of 4096"));
    /* the largest allowed payload is frame_max - 8 */
    uint8_t edge[7] = {AMQP_FRAME_BODY_TYPE, 0, 1, 0, 0, 0x0f, 0xf9}; /* 4089 */
    assert_int_equal(amqp_frame_read(edge, 7, FRAME_MAX, &f, why), -EMSGSIZE);
    edge[6] = 0xf8; /* 4088 */
    assert_int_equal(amqp_frame_read(edge, 7, FRAME_MAX, &f, why), 0);
}

static void test_amqp_malformed_frames_are_eproto_with_a_reason(void **state)
{
    amqp_frame f;
    char why[AMQP_WHY];
    uint8_t bad_end[] = {AMQP_FRAME_BODY_TYPE, 0, 1, 0, 0, 0, 1, 'x', 0xCD};
    assert_int_equal(amqp_frame_read(bad_end, sizeof bad_end, FRAME_MAX, &f, why), -EPROTO);
    assert_non_null(strstr(why, "end byte"));
    uint8_t bad_type[] = {7, 0, 0, 0, 0, 0, 0, 0xCE};
    assert_int_equal(amqp_frame_read(bad_type, 1, FRAME_MAX, &f, why), -EPROTO);
    uint8_t header[] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};
    assert_int_equal(amqp_frame_read(header, sizeof header, FRAME_MAX, &f, why), -EPROTO);
    assert_non_null(strstr(why, "protocol header"));
    uint8_t beat_off_zero[] = {AMQP_FRAME_HEARTBEAT_TYPE, 0, 2, 0, 0, 0, 0, 0xCE};
    assert_int_equal(amqp_frame_read(beat_off_zero, sizeof beat_off_zero, FRAME_MAX, &f, why),
                     -EPROTO);
    uint8_t beat_payload[] = {AMQP_FRAME_HEARTBEAT_TYPE, 0, 0, 0, 0, 0, 1, 0, 0xCE};
    assert_int_equal(amqp_frame_read(beat_payload, sizeof beat_payload, FRAME_MAX, &f, why),
                     -EPROTO);
    uint8_t short_method[] = {AMQP_FRAME_METHOD_TYPE, 0, 1, 0, 0, 0, 2, 0, 10, 0xCE};
    assert_int_equal(amqp_frame_read(short_method, sizeof short_method, FRAME_MAX, &f, why),
                     -EPROTO);
}

static void test_amqp_tables_round_trip_through_amqp_encode_table(void **state)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    wv_amqp_field inner[] = {WV_AMQP_STR("exchange", "dlx"), WV_AMQP_INT("count", 3)};
    wv_amqp_field list[] = {WV_AMQP_INT("", 1), WV_AMQP_STR("", "two")};
    wv_amqp_field fields[] = {
        WV_AMQP_INT("x-message-ttl", 60000),
        WV_AMQP_INT("big", INT64_C(1) << 40),
        WV_AMQP_INT("negative", -5),
        WV_AMQP_STR("x-queue-type", "quorum"),
        WV_AMQP_BOOL("flag", true),
        WV_AMQP_DOUBLE("ratio", 0.25),
        WV_AMQP_TABLE("death", inner, 2),
        {.name = WV_STR("list"), .type = WV_AMQP_FIELD_ARRAY, .fields = list, .nfields = 2},
        {.name = WV_STR("at"), .type = WV_AMQP_FIELD_TIMESTAMP, .i = 1700000000},
        {.name = WV_STR("nothing"), .type = WV_AMQP_FIELD_VOID},
    };
    wv_buf b = {0};
    assert_int_equal(amqp_table_encode(&b, &pool, fields, (int)ARRAY_LEN(fields)), 0);
    char why[AMQP_WHY];
    assert_int_equal(amqp_table_check((uint8_t *)b.p, b.n, why), (ssize_t)b.n);
    wv_str t = {b.p + 4, b.n - 4};
    wv_amqp_field f;
    size_t pos = 0;
    for (size_t i = 0; i < ARRAY_LEN(fields); i++) {
        assert_int_equal(wv_amqp_table_next(t, &pos, &f), 1);
        assert_true(wv_str_eq(f.name, fields[i].name));
        assert_int_equal(f.type, fields[i].type);
    }
    assert_int_equal(wv_amqp_table_next(t, &pos, &f), 0);
    assert_int_equal(wv_amqp_table_get(t, "x-message-ttl", &f), 1);
    assert_int_equal(f.i, 60000);
    assert_int_equal(wv_amqp_table_get(t, "big", &f), 1);
    assert_int_equal(f.i, INT64_C(1) << 40);
    assert_int_equal(wv_amqp_table_get(t, "negative", &f), 1);
    assert_int_equal(f.i, -5);
    assert_int_equal(wv_amqp_table_get(t, "x-queue-type", &f), 1);
    assert_true(wv_str_eq(f.s, WV_STR("quorum")));
    assert_int_equal(wv_amqp_table_get(t, "flag", &f), 1);
    assert_true(f.b);
    assert_int_equal(wv_amqp_table_get(t, "ratio", &f), 1);
    assert_true(f.d == 0.25);
    assert_int_equal(wv_amqp_table_get(t, "at", &f), 1);
    assert_int_equal(f.i, 1700000000);
    assert_int_equal(wv_amqp_table_get(t, "death", &f), 1);
    wv_amqp_field g;
    assert_int_equal(wv_amqp_table_get(f.s, "exchange", &g), 1);
    assert_true(wv_str_eq(g.s, WV_STR("dlx")));
    assert_int_equal(wv_amqp_table_get(t, "list", &f), 1);
    pos = 0;
    assert_int_equal(wv_amqp_array_next(f.s, &pos, &g), 1);
    assert_int_equal(g.i, 1);
    assert_int_equal(wv_amqp_array_next(f.s, &pos, &g), 1);
    assert_true(wv_str_eq(g.s, WV_STR("two")));
    assert_int_equal(wv_amqp_array_next(f.s, &pos, &g), 0);
    assert_int_equal(wv_amqp_table_get(t, "absent", &f), 0);
    /* every cut of the table is refused, never read past */
    for (size_t n = 4; n < b.n; n++) {
        uint8_t *copy = malloc(n);
        memcpy(copy, b.p, n);
        assert_int_equal(amqp_table_check(copy, n, why), -EPROTO);
        pos = 0;
        int rc;
        while ((rc = wv_amqp_table_next((wv_str){(char *)copy + 4, n - 4}, &pos, &f)) == 1)
            ;
        assert_true(rc <= 0);
        free(copy);
    }
    wv_buf_free(&b);
    empty_amqp_pool(&pool);
}

/* A table nested `depth` deep: F-fields inside each other. */
static size_t nested(uint8_t *p, int depth)
{
    /* inside out: the innermost table is empty */
    size_t len = 4;
    memset(p, 0, 4);
    for (int i = 0; i < depth; i++) {
        /* entry: name "a", kind F, then the table so far */
        memmove(p + 4 + 3, p, len);
        uint32_t body = (uint32_t)(3 + len);
        p[0] = (uint8_t)(body >> 24);
        p[1] = (uint8_t)(body >> 16);
        p[2] = (uint8_t)(body >> 8);
        p[3] = (uint8_t)body;
        p[4] = 1;
        p[5] = 'a';
        p[6] = 'F';
        len = 4 + body;
    }
    return len;
}

static void test_amqp_tables_nested_too_deep_are_refused_not_recursed_into(void **state)
{
    uint8_t *p = calloc(1, 200000);
    char why[AMQP_WHY];
    size_t len = nested(p, AMQP_TABLE_MAX_DEPTH);
    assert_int_equal(amqp_table_check(p, len, why), (ssize_t)len);
    len = nested(p, AMQP_TABLE_MAX_DEPTH + 1);
    assert_int_equal(amqp_table_check(p, len, why), -EPROTO);
    len = nested(p, 20000); /* would run librabbitmq's decoder off a fiber's stack */
    assert_int_equal(amqp_table_check(p, len, why), -EPROTO);
    free(p);
}

static void test_amqp_content_header_gives_its_headers_table(void **state)
{
    wv_buf b = {0};
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    sample_stream(&b, &pool, 10);
    amqp_frame f;
    char why[AMQP_WHY];
    size_t at = 0;
    for (int i = 0; i < 3; i++) {
        ssize_t len = amqp_frame_read((uint8_t *)b.p + at, b.n - at, FRAME_MAX, &f, why);
        assert_true(len > 0);
        at += (size_t)len;
    }
    assert_int_equal(f.type, AMQP_FRAME_HEADER_TYPE);
    wv_str headers;
    assert_int_equal(amqp_props_headers(f.payload + 12, f.size - 12, &headers, why), 0);
    wv_amqp_field v;
    assert_int_equal(wv_amqp_table_get(headers, "trace", &v), 1);
    assert_true(wv_str_eq(v.s, WV_STR("abc")));
    amqp_basic_properties_t *props;
    assert_int_equal(amqp_decode_properties(AMQP_BASIC_CLASS, &pool,
                                            (amqp_bytes_t){f.size - 12, (void *)(f.payload + 12)},
                                            (void **)&props),
                     0);
    assert_int_equal(props->delivery_mode, 2); /* persistent unless asked otherwise */
    assert_int_equal(props->priority, 5);
    assert_int_equal(props->headers.num_entries, 2);
    /* cut the properties short: refused */
    for (uint32_t n = 2; n < f.size - 12; n++) {
        int rc = amqp_props_headers(f.payload + 12, n, &headers, why);
        assert_true(rc < 0 || headers.p + headers.n <= (const char *)f.payload + 12 + n);
    }
    wv_buf_free(&b);
    empty_amqp_pool(&pool);
}

static void test_amqp_bad_fields_are_einval_before_anything_is_encoded(void **state)
{
    amqp_pool_t pool;
    init_amqp_pool(&pool, 4096);
    wv_buf b = {0};
    char long_name[300];
    memset(long_name, 'n', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    wv_amqp_field too_long[] = {WV_AMQP_INT(long_name, 1)};
    assert_int_equal(amqp_table_encode(&b, &pool, too_long, 1), -EINVAL);
    wv_amqp_field bad_type[] = {{.name = WV_STR("x"), .type = (wv_amqp_type)99}};
    assert_int_equal(amqp_table_encode(&b, &pool, bad_type, 1), -EINVAL);
    /* a method too large for its frame is -EMSGSIZE, nothing appended */
    char big[255];
    memset(big, 'q', sizeof big);
    wv_amqp_field many[40];
    for (int i = 0; i < 40; i++)
        many[i] = (wv_amqp_field){
            .name = WV_STR("k"), .type = WV_AMQP_FIELD_STRING, .s = {big, sizeof big}};
    amqp_queue_declare_t q = {.queue = amqp_cstring_bytes("q")};
    assert_int_equal(amqp_table_from_fields(&pool, many, 40, &q.arguments), 0);
    size_t before = b.n;
    assert_int_equal(amqp_put_method(&b, FRAME_MAX, 1, AMQP_QUEUE_DECLARE_METHOD, &q), -EMSGSIZE);
    assert_int_equal(b.n, before);
    wv_buf_free(&b);
    empty_amqp_pool(&pool);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_amqp_frames_fed_one_byte_at_a_time_come_out_whole_and_in_order),
        cmocka_unit_test(test_amqp_every_prefix_of_a_frame_needs_more),
        cmocka_unit_test(test_amqp_a_frame_over_frame_max_is_emsgsize_as_soon_as_its_size_is_read),
        cmocka_unit_test(test_amqp_malformed_frames_are_eproto_with_a_reason),
        cmocka_unit_test(test_amqp_tables_round_trip_through_amqp_encode_table),
        cmocka_unit_test(test_amqp_tables_nested_too_deep_are_refused_not_recursed_into),
        cmocka_unit_test(test_amqp_content_header_gives_its_headers_table),
        cmocka_unit_test(test_amqp_bad_fields_are_einval_before_anything_is_encoded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
