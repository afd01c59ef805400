/*
 * The WebSocket server and client together in one runtime, under the
 * sanitizers of `make test`: an echo route served by wv_http_serve, with
 * wv_ws_connect and raw sockets as clients. These are the paths an idle
 * connection takes (docs/decisions.md: its receive buffer is freed while it
 * waits and taken again when input comes), which the integration tests only
 * see from outside:
 *   - a receive that timed out while idle leaves the connection usable, on
 *     the client and on the server;
 *   - a peer whose last message and FIN arrive together is noticed at once,
 *     not after the keepalive gives up on it;
 *   - the client takes exactly the subprotocol the server chose, and fails
 *     the handshake when it chose one the client never offered.
 */
#include "harness.h"

#include <string.h>
#include <sys/socket.h>

#include <weave/http.h>
#include <weave/ws.h>

#include "ws/frame.h"

/* ------------------------------------------------------------ the server */

static int echo(wv_req *req, wv_res *res)
{
    wv_ws *ws;
    int rc = wv_ws_accept(req, res, NULL, &ws);
    if (rc < 0)
        return rc;
    for (;;) {
        wv_str m;
        /* wait idle in short slices: each one that times out frees nothing
         * twice and leaves the connection as it was */
        int64_t old = wv_deadline_set(wv_after_ms(20));
        int t = wv_ws_recv(ws, &m);
        wv_deadline_set(old);
        if (t == -ETIMEDOUT)
            continue;
        if (t < 0)
            return 0;
        if (wv_ws_send(ws, t, m.p, m.n) < 0)
            return 0;
    }
}

typedef struct server {
    wv_event ready;
    int port;
    int rc;
} server;

static int serve(void *arg)
{
    server *s = arg;
    wv_router *r = wv_router_new();
    if (!r)
        return s->rc = -ENOMEM;
    wv_get(r, "/echo", echo);
    s->rc = wv_http_serve(r, &(wv_http_opts){.host = "127.0.0.1",
                                             .bound_port = &s->port,
                                             .ready = &s->ready,
                                             .drain_timeout_ms = 2000});
    wv_router_free(r);
    return s->rc;
}

/* Start the server, run body(port), stop the server. */
static int with_server(int (*body)(int port))
{
    server s = {.rc = 0};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    REQUIRE_EQ(wv_group_spawn(g, serve, &s, NULL), 0);
    CHECK_EQ(wv_event_wait(&s.ready), 0);
    int rc = s.port > 0 ? body(s.port) : -EIO;
    wv_stop();
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(s.rc, 0);
    return rc;
}

/* ------------------------------------------------------- the client side */

static int echo_once(wv_ws *ws, const char *text)
{
    CHECK_EQ(wv_ws_send_text(ws, text), 0);
    wv_str m = {0};
    int64_t old = wv_deadline_set(wv_after_ms(3000));
    int t = wv_ws_recv(ws, &m);
    wv_deadline_set(old);
    CHECK_EQ(t, WV_WS_TEXT);
    CHECK(t == WV_WS_TEXT && m.n == strlen(text) && memcmp(m.p, text, m.n) == 0);
    return t == WV_WS_TEXT ? 0 : -EIO;
}

static int timed_out_receives(int port)
{
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/echo", port);
    wv_ws *ws = NULL;
    REQUIRE_EQ(wv_ws_connect(url, NULL, &ws), 0);
    CHECK_EQ(echo_once(ws, "first"), 0);
    for (int i = 0; i < 3; i++) { /* nothing comes: the client waits idle and gives up */
        wv_str m;
        int64_t old = wv_deadline_set(wv_after_ms(30));
        CHECK_EQ(wv_ws_recv(ws, &m), -ETIMEDOUT);
        wv_deadline_set(old);
    }
    CHECK_EQ(echo_once(ws, "after the timeouts"), 0);
    /* a message bigger than the 2 KiB an idle connection takes back */
    char big[10000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    CHECK_EQ(echo_once(ws, big), 0);
    CHECK_EQ(echo_once(ws, "small again"), 0);
    /* a receive that timed out, then the close (it reads the peer's reply) */
    wv_str m;
    int64_t old = wv_deadline_set(wv_after_ms(30));
    CHECK_EQ(wv_ws_recv(ws, &m), -ETIMEDOUT);
    wv_deadline_set(old);
    old = wv_deadline_set(wv_after_ms(3000));
    CHECK_EQ(wv_ws_close(ws, WV_WS_NORMAL, "done"), 0);
    wv_deadline_set(old);
    wv_ws_free(ws);
    return 0;
}

/* The main fiber of a test: the server, body(port), the server stopped. */
typedef struct scenario {
    int (*body)(int port);
} scenario;

static int scenario_main(void *arg)
{
    return with_server(((const scenario *)arg)->body);
}

static void run_scenario(int (*body)(int port))
{
    scenario sc = {body};
    assert_int_equal(run_in_rt(1, scenario_main, &sc), 0);
    assert_checks_passed();
}

static void test_receives_that_timed_out_while_idle_leave_the_connection_usable(void **state)
{
    (void)state;
    run_scenario(timed_out_receives);
}

/* A raw client: handshake, one masked text frame and the FIN in the same
 * pass of the shard, so the server reads both in one go. The echo must come
 * back and the server must close at once (its handler's recv sees the end),
 * long before the 30 s keepalive would. */
static int last_message_with_fin(int port)
{
    int fd = wv_socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(fd >= 0);
    struct sockaddr_in a = loopback_addr((uint16_t)port);
    REQUIRE_EQ(wv_connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    static const char hs[] =
        "GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n";
    CHECK_EQ(wv_write(fd, hs, sizeof hs - 1), (ssize_t)(sizeof hs - 1));
    int64_t old = wv_deadline_set(wv_after_ms(3000));
    char head[512];
    size_t n = 0;
    while (n < sizeof head - 1 && !memmem(head, n, "\r\n\r\n", 4)) {
        ssize_t r = wv_read(fd, head + n, 1); /* one byte at a time: no frame bytes taken */
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    head[n] = '\0';
    CHECK(strncmp(head, "HTTP/1.1 101", 12) == 0);
    /* "bye", masked with 1 2 3 4 */
    const uint8_t frame[] = {0x81, 0x83, 1, 2, 3, 4, 'b' ^ 1, 'y' ^ 2, 'e' ^ 3};
    CHECK_EQ(wv_write(fd, frame, sizeof frame), (ssize_t)sizeof frame);
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    int64_t t0 = wv_now();
    uint8_t got[64];
    size_t k = 0;
    ssize_t r;
    while ((r = wv_read(fd, got + k, sizeof got - k)) > 0)
        k += (size_t)r;
    CHECK_EQ(r, 0); /* the server closed: not -ETIMEDOUT */
    CHECK(ms_since(t0) < 2000);
    CHECK(k >= 5 && got[0] == 0x81 && got[1] == 3 && memcmp(got + 2, "bye", 3) == 0);
    wv_deadline_set(old);
    wv_close(fd);
    return 0;
}

static void test_a_last_message_arriving_with_the_fin_is_echoed_and_closed_at_once(void **state)
{
    (void)state;
    run_scenario(last_message_with_fin);
}

/* ---------------------------------------------------------- subprotocols */

typedef struct fake_server {
    int lfd;
    const char *chosen; /* the Sec-WebSocket-Protocol it answers */
} fake_server;

/* Answer one handshake with a correct 101 naming `chosen`, then hold. */
static int answer_handshake(void *arg)
{
    fake_server *f = arg;
    int fd = wv_accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return fd;
    char head[2048];
    size_t n = 0;
    while (n < sizeof head - 1 && !memmem(head, n, "\r\n\r\n", 4)) {
        ssize_t r = wv_read(fd, head + n, sizeof head - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    head[n] = '\0';
    const char *key = strcasestr(head, "\r\nSec-WebSocket-Key: ");
    char accept[29] = "";
    if (key)
        ws_accept_key(key + 21, 24, accept);
    char reply[512];
    int k = snprintf(reply, sizeof reply,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n"
                     "Sec-WebSocket-Protocol: %s\r\n\r\n",
                     accept, f->chosen);
    wv_write(fd, reply, (size_t)k);
    wv_sleep_ms(200);
    return wv_close(fd);
}

typedef struct proto_case {
    const char *const *offered;
    const char *chosen; /* by the server */
    const char *want;   /* wv_ws_subprotocol, or NULL when the handshake must fail */
} proto_case;

static int subprotocol_case(void *arg)
{
    const proto_case *c = arg;
    uint16_t port = 0;
    fake_server f = {listen_loopback(&port), c->chosen};
    REQUIRE(f.lfd >= 0);
    wv_group *g = wv_group_new();
    REQUIRE_EQ(wv_group_spawn(g, answer_handshake, &f, NULL), 0);
    char url[64], want_msg[160];
    snprintf(url, sizeof url, "ws://127.0.0.1:%u/", port);
    wv_ws *ws = NULL;
    int rc = wv_ws_connect(url, &(wv_ws_connect_opts){.subprotocols = c->offered}, &ws);
    if (c->want) {
        CHECK_EQ(rc, 0);
        CHECK_STR_EQ(rc == 0 && wv_ws_subprotocol(ws) ? wv_ws_subprotocol(ws) : "", c->want);
    } else {
        CHECK_EQ(rc, -EPROTO);
        snprintf(want_msg, sizeof want_msg,
                 "%s: the server chose the subprotocol \"%s\", which we did not offer", url,
                 c->chosen);
        CHECK_STR_EQ(wv_errmsg(), want_msg);
        CHECK(ws == NULL);
    }
    if (ws)
        wv_ws_free(ws);
    wv_group_join(g);
    wv_group_free(g);
    wv_close(f.lfd);
    return 0;
}

static void test_client_takes_exactly_the_subprotocol_the_server_chose(void **state)
{
    static const char *const both[] = {"superchat", "chat", NULL};
    static const char *const chat[] = {"chat", NULL};
    const proto_case cases[] = {
        {both, "superchat", "superchat"},
        {both, "chat", "chat"},
        {chat, "superchat", NULL}, /* never offered: the handshake fails */
        {chat, "cha", NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        assert_int_equal(run_in_rt(1, subprotocol_case, (void *)&cases[i]), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_receives_that_timed_out_while_idle_leave_the_connection_usable),
        cmocka_unit_test(test_a_last_message_arriving_with_the_fin_is_echoed_and_closed_at_once),
        cmocka_unit_test(test_client_takes_exactly_the_subprotocol_the_server_chose),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
