/*
 * wv_mux, the shared connection of include/weave/net.h, with a line
 * protocol of this test's own: a request is a line, its reply the line
 * back, and the peer is a fiber on the other end of a socket pair that can
 * delay, push unsolicited lines, send garbage or hang up.
 */
#include "harness.h"

#include "weave/net.h"

/* ------------------------------------------------------------ the peer */

typedef struct peer {
    int fd;
    int delay_ms;        /* before each answer */
    bool silent;         /* read, never answer */
    const char *push;    /* sent (once) before the first answer */
    const char *garbage; /* sent instead of the first answer */
    bool hang_up;        /* close after the first request is read */
    int reads;           /* read() calls that returned bytes */
} peer;

static int peer_main(void *arg)
{
    peer *p = arg;
    char buf[65536];
    size_t have = 0;
    for (;;) {
        ssize_t n = wv_read(p->fd, buf + have, sizeof buf - have);
        if (n <= 0)
            break;
        p->reads++;
        have += (size_t)n;
        if (p->hang_up)
            break;
        char *nl;
        while ((nl = memchr(buf, '\n', have))) {
            size_t len = (size_t)(nl - buf) + 1;
            if (!p->silent) {
                if (p->delay_ms)
                    wv_sleep_ms(p->delay_ms);
                if (p->push) {
                    wv_write(p->fd, p->push, strlen(p->push));
                    p->push = NULL;
                }
                if (p->garbage) {
                    wv_write(p->fd, p->garbage, strlen(p->garbage));
                    p->garbage = NULL;
                } else {
                    wv_write(p->fd, buf, len);
                }
            }
            memmove(buf, buf + len, have - len);
            have -= len;
        }
    }
    wv_close(p->fd);
    return 0;
}

/* ------------------------------------------------------------ framing */

typedef struct proto {
    int pushes; /* unsolicited lines seen */
    char last_push[64];
} proto;

static ssize_t line_frame(void *ctx, const char *p, size_t n, char *why, size_t why_size)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n')
            return (ssize_t)i + 1;
        if (p[i] == '!') {
            snprintf(why, why_size, "a '!' at byte %zu", i);
            return -EPROTO;
        }
    }
    return 0;
}

/* Lines that start with '>' answer no request. */
static bool line_push(void *ctx, char *p, size_t len)
{
    proto *pr = ctx;
    if (p[0] != '>')
        return false;
    pr->pushes++;
    snprintf(pr->last_push, sizeof pr->last_push, "%.*s", (int)(len - 1), p);
    return true;
}

/* A request: one line, its reply copied out. */
typedef struct line_req {
    wv_mux_req req; /* first */
    char reply[64];
} line_req;

static void line_deliver(wv_mux_req *r, char *p, size_t len)
{
    line_req *lr = (line_req *)r;
    if (r->got == 0)
        snprintf(lr->reply, sizeof lr->reply, "%.*s", (int)(len - 1), p);
    else
        snprintf(lr->reply + strlen(lr->reply), sizeof lr->reply - strlen(lr->reply), "|%.*s",
                 (int)(len - 1), p);
}

static int send_line(wv_mux *m, line_req *lr, const char *text)
{
    *lr = (line_req){.req.deliver = line_deliver};
    wv_buf *out = wv_mux_out(m);
    int rc = wv_buf_printf(out, "%s\n", text);
    return rc < 0 ? rc : wv_mux_push(m, &lr->req);
}

/* A mux on one end of a socket pair, the peer fiber on the other. */
typedef struct setup {
    wv_mux *m;
    peer p;
    proto pr;
    uint64_t writes, queued;
} setup;

static int setup_make(setup *s, const wv_mux_opts *extra, bool shared)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    s->p.fd = sv[1];
    REQUIRE_EQ(wv_spawn(peer_main, &s->p, NULL), 0);
    wv_stream *st;
    REQUIRE_EQ(wv_stream_open(sv[0], &st), 0);
    wv_mux_opts o = extra ? *extra : (wv_mux_opts){0};
    o.frame = line_frame;
    o.unsolicited = line_push;
    o.ctx = &s->pr;
    o.name = "test peer";
    o.writes = &s->writes;
    o.queued = &s->queued;
    REQUIRE_EQ(wv_mux_new(st, &o, &s->m), 0);
    if (shared)
        REQUIRE_EQ(wv_mux_share(s->m), 0);
    return 0;
}

/* ------------------------------------------------------------ tests */

typedef struct many {
    wv_mux *m;
    int i;
    int *ok;
} many;

static int many_fiber(void *arg)
{
    many *mf = arg;
    char text[32];
    snprintf(text, sizeof text, "req-%d", mf->i);
    line_req lr;
    if (send_line(mf->m, &lr, text) == 0 && wv_mux_wait(mf->m, &lr.req) == 0 &&
        strcmp(lr.reply, text) == 0)
        (*mf->ok)++;
    return 0;
}

static int order_main(void *arg)
{
    setup s = {0};
    REQUIRE_EQ(setup_make(&s, NULL, true), 0);
    int ok = 0;
    many m[500];
    wv_group *g = wv_group_new();
    for (int i = 0; i < 500; i++) {
        m[i] = (many){s.m, i, &ok};
        wv_group_spawn(g, many_fiber, &m[i], NULL);
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(ok, 500);
    CHECK_EQ(s.queued, 500);
    CHECK(s.writes < 10); /* one pass's requests leave together */
    CHECK_EQ(wv_mux_pending(s.m), 0);
    wv_mux_close(s.m);
    return 0;
}

static void test_mux_500_fibers_get_their_own_replies_in_a_few_writes(void **state)
{
    assert_int_equal(run_in_rt(1, order_main, NULL), 0);
    assert_checks_passed();
}

static int multi_reply_main(void *arg)
{
    setup s = {0};
    REQUIRE_EQ(setup_make(&s, NULL, true), 0);
    line_req lr = {.req = {.deliver = line_deliver, .replies = 3}};
    CHECK_EQ(wv_buf_puts(wv_mux_out(s.m), "a\nb\nc\n"), 0);
    CHECK_EQ(wv_mux_push(s.m, &lr.req), 0);
    CHECK_EQ(wv_mux_wait(s.m, &lr.req), 0);
    CHECK_EQ(lr.req.got, 3);
    CHECK_STR_EQ(lr.reply, "a|b|c");
    wv_mux_close(s.m);
    return 0;
}

static void test_mux_a_request_may_take_several_replies_in_order(void **state)
{
    assert_int_equal(run_in_rt(1, multi_reply_main, NULL), 0);
    assert_checks_passed();
}

static int abandon_main(void *arg)
{
    setup s = {.p.delay_ms = 100};
    REQUIRE_EQ(setup_make(&s, NULL, true), 0);
    line_req slow, next;
    CHECK_EQ(send_line(s.m, &slow, "slow"), 0);
    int64_t old = wv_deadline_set(wv_after_ms(20));
    CHECK_EQ(wv_mux_wait(s.m, &slow.req), -ETIMEDOUT);
    wv_deadline_set(old);
    /* the late reply to "slow" is dropped, not handed to the next request */
    CHECK_EQ(send_line(s.m, &next, "next"), 0);
    CHECK_EQ(wv_mux_wait(s.m, &next.req), 0);
    CHECK_STR_EQ(next.reply, "next");
    CHECK(!wv_mux_broken(s.m));
    wv_mux_close(s.m);
    return 0;
}

static void test_mux_a_request_past_its_deadline_is_abandoned_and_its_reply_dropped(void **state)
{
    assert_int_equal(run_in_rt(1, abandon_main, NULL), 0);
    assert_checks_passed();
}

static int push_main(void *arg)
{
    setup s = {.p.push = ">news\n"};
    REQUIRE_EQ(setup_make(&s, NULL, true), 0);
    line_req lr;
    CHECK_EQ(send_line(s.m, &lr, "hello"), 0);
    CHECK_EQ(wv_mux_wait(s.m, &lr.req), 0);
    CHECK_STR_EQ(lr.reply, "hello");
    CHECK_EQ(s.pr.pushes, 1);
    CHECK_STR_EQ(s.pr.last_push, ">news");
    wv_mux_close(s.m);
    return 0;
}

static void test_mux_unsolicited_replies_go_to_their_callback_not_a_request(void **state)
{
    assert_int_equal(run_in_rt(1, push_main, NULL), 0);
    assert_checks_passed();
}

static int garbage_main(void *arg)
{
    setup s = {.p.garbage = "oops!\n"};
    REQUIRE_EQ(setup_make(&s, NULL, true), 0);
    line_req a, b;
    CHECK_EQ(send_line(s.m, &a, "a"), 0);
    CHECK_EQ(send_line(s.m, &b, "b"), 0);
    CHECK_EQ(wv_mux_wait(s.m, &a.req), -EPROTO);
    CHECK(strstr(wv_errmsg(), "test peer: a '!' at byte 4") != NULL);
    CHECK_EQ(wv_mux_wait(s.m, &b.req), -EPROTO); /* every request in it fails */
    CHECK(wv_mux_broken(s.m));
    line_req c;
    CHECK_EQ(send_line(s.m, &c, "c"), -EPROTO); /* and later ones at once */
    wv_mux_close(s.m);
    return 0;
}

static void test_mux_bytes_the_frame_refuses_fail_every_request_in_it(void **state)
{
    assert_int_equal(run_in_rt(1, garbage_main, NULL), 0);
    assert_checks_passed();
}

static int hang_up_main(void *arg)
{
    setup s = {.p.hang_up = true};
    REQUIRE_EQ(setup_make(&s, NULL, true), 0);
    line_req a;
    CHECK_EQ(send_line(s.m, &a, "a"), 0);
    CHECK_EQ(wv_mux_wait(s.m, &a.req), -ECONNRESET);
    CHECK(strstr(wv_errmsg(), "closed the connection") != NULL);
    wv_mux_close(s.m);
    return 0;
}

static void test_mux_a_peer_that_hangs_up_fails_what_waits_with_econnreset(void **state)
{
    assert_int_equal(run_in_rt(1, hang_up_main, NULL), 0);
    assert_checks_passed();
}

static int unasked_main(void *arg)
{
    setup s = {.p.push = "unasked\n"};
    REQUIRE_EQ(setup_make(&s, NULL, true), 0);
    line_req a;
    CHECK_EQ(send_line(s.m, &a, "a"), 0);
    /* "unasked" arrives first, matches request a: the reply to a then
     * matches nothing and breaks the connection */
    wv_mux_wait(s.m, &a.req);
    wv_sleep_ms(50);
    CHECK(wv_mux_broken(s.m));
    CHECK_EQ(wv_mux_error(s.m), -EPROTO);
    CHECK(strstr(wv_errmsg(), "no request asked for") != NULL);
    wv_mux_close(s.m);
    return 0;
}

static void test_mux_a_reply_nobody_asked_for_breaks_the_connection(void **state)
{
    assert_int_equal(run_in_rt(1, unasked_main, NULL), 0);
    assert_checks_passed();
}

static int timeout_main(void *arg)
{
    setup s = {.p.silent = true};
    REQUIRE_EQ(setup_make(&s, &(wv_mux_opts){.response_timeout_ms = 100}, true), 0);
    line_req a;
    int64_t t0 = wv_now();
    CHECK_EQ(send_line(s.m, &a, "a"), 0);
    CHECK_EQ(wv_mux_wait(s.m, &a.req), -ETIMEDOUT);
    CHECK(strstr(wv_errmsg(), "no reply for 100 ms") != NULL);
    CHECK_BETWEEN(ms_since(t0), 80, 1000);
    wv_mux_close(s.m);
    return 0;
}

static void test_mux_no_reply_within_response_timeout_breaks_it_with_etimedout(void **state)
{
    assert_int_equal(run_in_rt(1, timeout_main, NULL), 0);
    assert_checks_passed();
}

static int too_big_main(void *arg)
{
    setup s = {0};
    REQUIRE_EQ(setup_make(&s, &(wv_mux_opts){.max_reply = 1000}, true), 0);
    char big[30000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    line_req a;
    CHECK_EQ(send_line(s.m, &a, big), 0);
    CHECK_EQ(wv_mux_wait(s.m, &a.req), -EMSGSIZE);
    wv_mux_close(s.m);
    return 0;
}

static void test_mux_a_reply_larger_than_max_reply_is_emsgsize(void **state)
{
    assert_int_equal(run_in_rt(1, too_big_main, NULL), 0);
    assert_checks_passed();
}

static int dedicated_main(void *arg)
{
    setup s = {0};
    REQUIRE_EQ(setup_make(&s, NULL, false), 0);
    for (int i = 0; i < 3; i++) {
        line_req a;
        char text[16];
        snprintf(text, sizeof text, "d%d", i);
        CHECK_EQ(send_line(s.m, &a, text), 0);
        CHECK_EQ(wv_mux_wait(s.m, &a.req), 0);
        CHECK_STR_EQ(a.reply, text);
    }
    /* without requests: write, then read the replies one by one */
    CHECK_EQ(wv_buf_puts(wv_mux_out(s.m), "x\ny\n"), 0);
    CHECK_EQ(wv_mux_flush(s.m), 0);
    char *p;
    size_t len;
    CHECK_EQ(wv_mux_read(s.m, &p, &len), 0);
    CHECK(len == 2 && memcmp(p, "x\n", 2) == 0);
    CHECK_EQ(wv_mux_read(s.m, &p, &len), 0);
    CHECK(len == 2 && memcmp(p, "y\n", 2) == 0);
    /* a dedicated wait cut short leaves the state unknown: it breaks */
    s.p.delay_ms = 200;
    line_req slow;
    CHECK_EQ(send_line(s.m, &slow, "slow"), 0);
    int64_t old = wv_deadline_set(wv_after_ms(20));
    CHECK_EQ(wv_mux_wait(s.m, &slow.req), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK(wv_mux_broken(s.m));
    wv_mux_close(s.m);
    return 0;
}

static void test_mux_dedicated_the_holder_reads_itself_and_a_cut_wait_breaks_it(void **state)
{
    assert_int_equal(run_in_rt(1, dedicated_main, NULL), 0);
    assert_checks_passed();
}

static int immediate_main(void *arg)
{
    setup s = {0};
    REQUIRE_EQ(setup_make(&s, &(wv_mux_opts){.no_autopipeline = true}, true), 0);
    int ok = 0;
    many m[50];
    wv_group *g = wv_group_new();
    for (int i = 0; i < 50; i++) {
        m[i] = (many){s.m, i, &ok};
        wv_group_spawn(g, many_fiber, &m[i], NULL);
    }
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(ok, 50);
    CHECK_EQ(s.writes, 50); /* one send per request */
    wv_mux_close(s.m);
    return 0;
}

static void test_mux_without_autopipelining_each_request_is_its_own_send(void **state)
{
    assert_int_equal(run_in_rt(1, immediate_main, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mux_500_fibers_get_their_own_replies_in_a_few_writes),
        cmocka_unit_test(test_mux_a_request_may_take_several_replies_in_order),
        cmocka_unit_test(test_mux_a_request_past_its_deadline_is_abandoned_and_its_reply_dropped),
        cmocka_unit_test(test_mux_unsolicited_replies_go_to_their_callback_not_a_request),
        cmocka_unit_test(test_mux_bytes_the_frame_refuses_fail_every_request_in_it),
        cmocka_unit_test(test_mux_a_peer_that_hangs_up_fails_what_waits_with_econnreset),
        cmocka_unit_test(test_mux_a_reply_nobody_asked_for_breaks_the_connection),
        cmocka_unit_test(test_mux_no_reply_within_response_timeout_breaks_it_with_etimedout),
        cmocka_unit_test(test_mux_a_reply_larger_than_max_reply_is_emsgsize),
        cmocka_unit_test(test_mux_dedicated_the_holder_reads_itself_and_a_cut_wait_breaks_it),
        cmocka_unit_test(test_mux_without_autopipelining_each_request_is_its_own_send),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
