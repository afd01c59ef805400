/*
 * The gRPC client (src/grpc/client.c) where no gRPC server is needed: bad
 * targets, bad metadata, calls outside a fiber, from another shard, a
 * refused connection (UNAVAILABLE, then the backoff), and deadlines while
 * connecting to a listener that never completes a connection and while
 * waiting on one that never answers. The calls against a real server are
 * in tests/integration/test_grpc_client.py.
 */
#include "harness.h"

#include "service.pb-c.h"
#include "weave/grpc.h"

static const ProtobufCServiceDescriptor *svc = &my_service__descriptor;

static char *target_of(int port)
{
    static char buf[64];
    snprintf(buf, sizeof buf, "http://127.0.0.1:%d", port);
    return buf;
}

static void test_bad_targets(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "ftp://127.0.0.1:50051",
        "http://",
        "http://127.0.0.1:50051/some/path",
        "http://user:pw@127.0.0.1:50051",
        "http://127.0.0.1:99999",
        "http://127.0.0.1:50051?x=1",
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        wv_grpc_channel *ch = wv_grpc_channel_new(bad[i], NULL);
        if (ch)
            fail_msg("accepted %s", bad[i]);
    }
    assert_null(wv_grpc_channel_new(NULL, NULL));
    const char *good[] = {"127.0.0.1:50051", "http://localhost:1", "https://example.com",
                          "http://[::1]:5", "https://[::1]:443/"};
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        wv_grpc_channel *ch = wv_grpc_channel_new(good[i], NULL);
        if (!ch)
            fail_msg("refused %s: %s", good[i], wv_errmsg());
        wv_grpc_channel_free(ch);
    }
    wv_grpc_channel_free(NULL);
}

static void test_outside_a_fiber(void **state)
{
    (void)state;
    wv_grpc_channel *ch = wv_grpc_channel_new("127.0.0.1:1", NULL);
    assert_non_null(ch);
    HelloRequest req = HELLO_REQUEST__INIT;
    ProtobufCMessage *resp = (ProtobufCMessage *)&req;
    assert_int_equal(wv_grpc_unary(ch, svc, "SayHello", &req.base, &resp, NULL), -EPERM);
    assert_null(resp);
    wv_grpc_call *c = (wv_grpc_call *)&req;
    assert_int_equal(wv_grpc_call_start(ch, svc, "SayHello", NULL, &c), -EPERM);
    assert_null(c);
    wv_grpc_channel_free(ch);
}

typedef struct env {
    wv_grpc_channel *ch;
    int port;
} env;

static int bad_calls(void *arg)
{
    env *e = arg;
    HelloRequest req = HELLO_REQUEST__INIT;
    req.name = "x";
    ProtobufCMessage *resp;
    wv_grpc_call *c;
    /* a method the service does not have */
    CHECK_EQ(wv_grpc_unary(e->ch, svc, "SayBye", &req.base, &resp, NULL), -EINVAL);
    CHECK(strstr(wv_errmsg(), "SayBye") != NULL);
    CHECK_EQ(wv_grpc_call_start(e->ch, svc, "SayBye", NULL, &c), -EINVAL);
    /* metadata: bad names, reserved ones, bad values */
    const wv_grpc_md bad[][1] = {
        {{"Upper", "v", 0}},     {{"grpc-foo", "v", 0}},         {{"content-type", "v", 0}},
        {{"te", "trailers", 0}}, {{":path", "/x", 0}},           {{"x-nl", "a\nb", 0}},
        {{"", "v", 0}},          {{"x-8bit", "caf\xc3\xa9", 0}},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        wv_grpc_call_opts o = {.metadata = bad[i], .nmetadata = 1};
        int rc = wv_grpc_unary(e->ch, svc, "SayHello", &req.base, &resp, &o);
        if (rc != -EINVAL)
            CHECK_EQ(rc, -EINVAL);
    }
    /* binary values are fine in a -bin field: the call goes on, and fails
     * for want of a server (UNAVAILABLE), not for its metadata */
    wv_grpc_md bin = {"x-raw-bin", "\x00\xff\n", 3};
    wv_grpc_call_opts o = {.metadata = &bin, .nmetadata = 1};
    CHECK_EQ(wv_grpc_unary(e->ch, svc, "SayHello", &req.base, &resp, &o), -EAGAIN);
    return 0;
}

static void test_bad_metadata(void **state)
{
    (void)state;
    env e = {.port = loopback_free_port()};
    e.ch = wv_grpc_channel_new(target_of(e.port), NULL);
    assert_non_null(e.ch);
    assert_int_equal(run_in_rt(1, bad_calls, &e), 0);
    assert_checks_passed();
    wv_grpc_channel_free(e.ch);
}

static int refused(void *arg)
{
    env *e = arg;
    HelloRequest req = HELLO_REQUEST__INIT;
    ProtobufCMessage *resp = NULL;
    int rc = wv_grpc_unary(e->ch, svc, "SayHello", &req.base, &resp, NULL);
    CHECK_EQ(rc, -EAGAIN);
    CHECK_EQ(wv_grpc_code_from_errno(rc), WV_GRPC_UNAVAILABLE);
    CHECK(strstr(wv_errmsg(), "MyService/SayHello: UNAVAILABLE: ") == wv_errmsg());
    CHECK(strstr(wv_errmsg(), "refused") != NULL);
    CHECK(resp == NULL);
    /* in the backoff: fails at once, saying so */
    int64_t t0 = wv_now();
    rc = wv_grpc_unary(e->ch, svc, "SayHello", &req.base, &resp, NULL);
    CHECK_EQ(rc, -EAGAIN);
    CHECK(ms_since(t0) < 100);
    CHECK(strstr(wv_errmsg(), "reconnecting") != NULL);
    /* wait_for_ready: keeps trying until the deadline */
    t0 = wv_now();
    rc = wv_grpc_unary(e->ch, svc, "SayHello", &req.base, &resp,
                       &(wv_grpc_call_opts){.timeout_ms = 400, .wait_for_ready = true});
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_BETWEEN(ms_since(t0), 350, 1500);
    CHECK(strstr(wv_errmsg(), "DEADLINE_EXCEEDED") != NULL);
    return 0;
}

static void test_connection_refused_is_unavailable(void **state)
{
    (void)state;
    env e = {.port = loopback_free_port()};
    e.ch = wv_grpc_channel_new(
        target_of(e.port), &(wv_grpc_channel_opts){.backoff_base_ms = 300, .backoff_max_ms = 300});
    assert_non_null(e.ch);
    assert_int_equal(run_in_rt(1, refused, &e), 0);
    assert_checks_passed();
    wv_grpc_channel_free(e.ch);
}

/* A listener that completes no more connections: its backlog is taken by a
 * connection nobody accepts, so later SYNs go unanswered. */
static int black_hole(void *arg)
{
    env *e = arg;
    int fd = wv_socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback_addr(0);
    socklen_t len = sizeof a;
    REQUIRE(bind(fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(fd, 0) == 0 &&
            getsockname(fd, (struct sockaddr *)&a, &len) == 0);
    int filler = wv_socket(AF_INET, SOCK_STREAM, 0);
    int64_t old = wv_deadline_set(wv_after_ms(1000));
    REQUIRE_EQ(wv_connect(filler, (struct sockaddr *)&a, sizeof a), 0);
    wv_deadline_set(old);
    wv_grpc_channel *ch = wv_grpc_channel_new(target_of(ntohs(a.sin_port)), NULL);
    REQUIRE(ch != NULL);
    HelloRequest req = HELLO_REQUEST__INIT;
    ProtobufCMessage *resp;
    int64_t t0 = wv_now();
    int rc = wv_grpc_unary(ch, svc, "SayHello", &req.base, &resp,
                           &(wv_grpc_call_opts){.timeout_ms = 300});
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_EQ(wv_grpc_code_from_errno(rc), WV_GRPC_DEADLINE_EXCEEDED);
    CHECK_BETWEEN(ms_since(t0), 250, 1500);
    CHECK(strstr(wv_errmsg(), "DEADLINE_EXCEEDED") != NULL);
    /* the fiber's deadline, the same */
    old = wv_deadline_set(wv_after_ms(200));
    rc = wv_grpc_unary(ch, svc, "SayHello", &req.base, &resp, NULL);
    wv_deadline_set(old);
    CHECK_EQ(rc, -ETIMEDOUT);
    (void)e;
    wv_close(filler);
    wv_close(fd);
    e->ch = ch; /* freed after the runtime */
    return 0;
}

static void test_deadline_while_connecting(void **state)
{
    (void)state;
    env e = {0};
    assert_int_equal(run_in_rt(1, black_hole, &e), 0);
    assert_checks_passed();
    wv_grpc_channel_free(e.ch);
}

/* a server that accepts the connection and never says a word */
static wv_grpc_call *shared_call;

static int other_shard(void *arg)
{
    (void)arg;
    CHECK_EQ(wv_grpc_close_send(shared_call), -EXDEV);
    ProtobufCMessage *m;
    CHECK_EQ(wv_grpc_recv(shared_call, &m), -EXDEV);
    CHECK_EQ(wv_grpc_call_end(shared_call, NULL, NULL), -EXDEV);
    return 0;
}

static int silent(void *arg)
{
    env *e = arg;
    uint16_t port = 0;
    int fd = listen_loopback(&port);
    REQUIRE(fd >= 0);
    e->ch = wv_grpc_channel_new(target_of(port), NULL);
    REQUIRE(e->ch != NULL);
    wv_grpc_call *c;
    REQUIRE_EQ(
        wv_grpc_call_start(e->ch, svc, "SayHello", &(wv_grpc_call_opts){.timeout_ms = 5000}, &c),
        0);
    shared_call = c;
    CHECK_EQ(wv_shard_call(1, other_shard, NULL), 0);
    /* waiting for an answer that never comes: the call's deadline */
    int64_t old = wv_deadline_set(wv_after_ms(200));
    ProtobufCMessage *m;
    int rc = wv_grpc_recv(c, &m);
    wv_deadline_set(old);
    CHECK_EQ(rc, -ETIMEDOUT);
    CHECK_EQ(wv_grpc_call_end(c, NULL, NULL), -ETIMEDOUT);
    wv_close(fd);
    return 0;
}

static void test_another_shard_and_a_silent_server(void **state)
{
    (void)state;
    env e = {0};
    assert_int_equal(run_in_rt(2, silent, &e), 0);
    assert_checks_passed();
    wv_grpc_channel_free(e.ch);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_targets),
        cmocka_unit_test(test_outside_a_fiber),
        cmocka_unit_test(test_bad_metadata),
        cmocka_unit_test(test_connection_refused_is_unavailable),
        cmocka_unit_test(test_deadline_while_connecting),
        cmocka_unit_test(test_another_shard_and_a_silent_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
