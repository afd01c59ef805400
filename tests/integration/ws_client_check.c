/*
 * Drives weave's WebSocket client (wv_ws_connect) against the echo server
 * at argv[1] (tests/integration/test_ws_client.py starts Python's
 * websockets, or weave's own /ws/echo): text, binary, 1 MB, a ping, and a
 * closing handshake; then the failures: a refused port (argv[2]), an HTTP
 * endpoint that does not upgrade (argv[3]), a bad URL, a silent server
 * (argv[4]). With argv[5], a CA file, ECHO_URL is wss:// and trusted through
 * it; then the system's CAs must refuse the same server. Without it, wss://
 * to the plain server must fail its TLS handshake cleanly.
 * Prints one line per check and "N passed, M failed".
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <weave/net.h>
#include <weave/ws.h>

static int passed, failed;
static const char *urls[4];
static const char *ca_file;

#define CHECK(cond, what)                                                                          \
    do {                                                                                           \
        if (cond) {                                                                                \
            passed++;                                                                              \
            printf("ok - %s\n", what);                                                             \
        } else {                                                                                   \
            failed++;                                                                              \
            printf("FAIL - %s (%s; %s)\n", what, #cond, wv_errmsg());                              \
        }                                                                                          \
    } while (0)

static int run(void *arg)
{
    (void)arg;
    wv_ws *ws;
    wv_tls_ctx *ctx = NULL;
    if (ca_file && wv_tls_ctx_client(&(wv_tls_opts){.ca_file = ca_file}, &ctx) < 0) {
        printf("FAIL - the CA file does not load (%s)\n", wv_errmsg());
        return 1;
    }
    int rc = wv_ws_connect(urls[0], &(wv_ws_connect_opts){.tls = ctx}, &ws);
    CHECK(rc == 0, "connects and completes the handshake");
    if (rc < 0)
        return 1;
    wv_str m;
    CHECK(wv_ws_send_text(ws, "hello ✓") == 0 && wv_ws_recv(ws, &m) == WV_WS_TEXT &&
              m.n == strlen("hello ✓") && memcmp(m.p, "hello ✓", m.n) == 0,
          "text round trip");
    unsigned char bin[300];
    for (size_t i = 0; i < sizeof bin; i++)
        bin[i] = (unsigned char)(i * 7);
    CHECK(wv_ws_send(ws, WV_WS_BINARY, bin, sizeof bin) == 0 &&
              wv_ws_recv(ws, &m) == WV_WS_BINARY && m.n == sizeof bin &&
              memcmp(m.p, bin, sizeof bin) == 0,
          "binary round trip");
    size_t big = 1000 * 1000;
    char *p = malloc(big);
    for (size_t i = 0; i < big; i++)
        p[i] = (char)('a' + i % 26);
    CHECK(wv_ws_send(ws, WV_WS_TEXT, p, big) == 0 && wv_ws_recv(ws, &m) == WV_WS_TEXT &&
              m.n == big && memcmp(m.p, p, big) == 0,
          "1 MB text round trip (masked by the client, checked by the server)");
    free(p);
    CHECK(wv_ws_ping(ws, "hi", 2) == 0 && wv_ws_send_text(ws, "after ping") == 0 &&
              wv_ws_recv(ws, &m) == WV_WS_TEXT && m.n == 10,
          "a ping's pong is absorbed by recv");
    CHECK(wv_ws_close(ws, WV_WS_NORMAL, "bye") == 0 && wv_ws_close_code(ws) == WV_WS_NORMAL,
          "closing handshake: the server answers 1000");
    wv_ws_free(ws);

    CHECK(wv_ws_connect(urls[1], NULL, &ws) == -ECONNREFUSED, "a closed port: -ECONNREFUSED");
    CHECK(wv_ws_connect(urls[2], NULL, &ws) == -EPROTO && strstr(wv_errmsg(), "answered"),
          "an HTTP endpoint that does not upgrade: -EPROTO naming its answer");
    if (ca_file) {
        CHECK(wv_ws_connect(urls[0], NULL, &ws) == -EPROTO &&
                  strstr(wv_errmsg(), "certificate verify failed"),
              "wss:// with the system's CAs refuses the test's certificate");
    } else if (strncmp(urls[0], "ws://", 5) == 0) {
        char wss[256];
        snprintf(wss, sizeof wss, "wss://%s", urls[0] + 5);
        rc = wv_ws_connect(wss, NULL, &ws);
        CHECK(rc == -EPROTO || rc == -ECONNRESET,
              "wss:// to a plain server: the TLS handshake fails");
    }
    wv_tls_ctx_free(ctx);
    CHECK(wv_ws_connect("http://x/", NULL, &ws) == -EINVAL, "not a ws:// URL: -EINVAL");
    int64_t old = wv_deadline_set(wv_after_ms(300));
    rc = wv_ws_connect(urls[3], NULL, &ws);
    wv_deadline_set(old);
    CHECK(rc == -ETIMEDOUT, "a server that never answers: the fiber's deadline applies");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr,
                "usage: ws_client_check ECHO_URL REFUSED_URL NOT_WS_URL SILENT_URL [CA_FILE]\n");
        return 2;
    }
    for (int i = 0; i < 4; i++)
        urls[i] = argv[i + 1];
    ca_file = argc > 5 ? argv[5] : NULL;
    int rc = wv_main(&(wv_main_opts){.shards = 1, .no_signal_handling = true}, run, NULL);
    printf("%d passed, %d failed\n", passed, failed);
    return rc || failed ? 1 : 0;
}
