/*
 * TLS on the runtime's sockets (include/weave/net.h): a server and a client
 * in one process, over loopback, with a certificate made for the run by the
 * openssl command line (CN and SAN localhost / 127.0.0.1). Handshakes, a
 * 4 MiB exchange both ways (the writes must wait for the reader), host name
 * and IP verification, an untrusted certificate, a peer that is not TLS, a
 * clean close, a close without close_notify, deadlines, and bad contexts.
 */
#include "harness.h"

#include <sys/stat.h>

#include "weave/net.h"

static char dir[64], cert[96], key[96], other_cert[96], other_key[96];

static void make_cert(const char *c, const char *k, const char *cn)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=%s -addext subjectAltName=DNS:%s,IP:127.0.0.1 -keyout %s -out %s "
             ">/dev/null 2>&1",
             cn, cn, k, c);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_tls: cannot make a certificate (is openssl installed?)\n");
        exit(1);
    }
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/weave-tls-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(other_cert, sizeof other_cert, "%s/other.pem", dir);
    snprintf(other_key, sizeof other_key, "%s/other.key", dir);
    make_cert(cert, key, "localhost");
    make_cert(other_cert, other_key, "localhost");
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ the server */

typedef enum { SRV_ECHO, SRV_CLOSE_CLEAN, SRV_CUT, SRV_SILENT, SRV_PLAIN } srv_mode;

typedef struct server {
    int lfd;
    uint16_t port;
    srv_mode mode;
    wv_tls_ctx *ctx;
    int accept_rc; /* what wv_tls_accept returned */
    wv_event done;
} server;

static int serve_one(void *arg)
{
    server *s = arg;
    int fd = wv_accept(s->lfd, NULL, NULL);
    if (fd < 0) {
        s->accept_rc = fd;
        wv_event_set(&s->done);
        return 0;
    }
    if (s->mode == SRV_PLAIN) {
        /* not TLS at all: an HTTP answer to the ClientHello */
        char buf[512];
        (void)wv_read(fd, buf, sizeof buf);
        static const char answer[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        (void)wv_write(fd, answer, sizeof answer - 1);
        wv_close(fd);
        wv_event_set(&s->done);
        return 0;
    }
    wv_tls *t = NULL;
    s->accept_rc = wv_tls_accept(s->ctx, fd, &t);
    if (s->accept_rc == 0) {
        if (s->mode == SRV_ECHO) {
            char buf[16384];
            ssize_t n;
            while ((n = wv_tls_read(t, buf, sizeof buf)) > 0)
                if (wv_tls_write(t, buf, (size_t)n) != n)
                    break;
            wv_tls_close(t);
        } else if (s->mode == SRV_CLOSE_CLEAN) {
            wv_tls_write(t, "bye", 3);
            wv_tls_close(t);
        } else if (s->mode == SRV_CUT) {
            wv_tls_write(t, "bye", 3);
            /* no close_notify: drop the TCP connection under it */
            shutdown(fd, SHUT_RDWR);
            wv_sleep_ms(200);
            wv_tls_close(t);
        } else { /* SRV_SILENT: never answers */
            wv_sleep_ms(2000);
            wv_tls_close(t);
        }
    }
    wv_close(fd);
    wv_event_set(&s->done);
    return 0;
}

static int start_server(server *s, srv_mode mode, const char *c, const char *k)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->lfd = listen_loopback(&s->port);
    REQUIRE(s->lfd >= 0);
    if (mode != SRV_PLAIN)
        REQUIRE_EQ(wv_tls_ctx_server(&(wv_tls_opts){.cert_file = c, .key_file = k}, &s->ctx), 0);
    REQUIRE_EQ(wv_spawn(serve_one, s, NULL), 0);
    return 0;
}

static void stop_server(server *s)
{
    wv_event_wait(&s->done);
    wv_close(s->lfd);
    wv_tls_ctx_free(s->ctx);
}

static int dial(uint16_t port)
{
    int fd = wv_socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback_addr(port);
    if (fd >= 0 && wv_connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        wv_close(fd);
        return -1;
    }
    return fd;
}

/* ------------------------------------------------------------- the tests */

typedef struct exchange {
    wv_tls *t;
    size_t n;
    int rc;
} exchange;

static int write_all_of_it(void *arg)
{
    exchange *x = arg;
    char *data = malloc(x->n);
    if (!data)
        return -ENOMEM;
    for (size_t i = 0; i < x->n; i++)
        data[i] = (char)(i * 7 + i / 251);
    ssize_t w = wv_tls_write(x->t, data, x->n);
    x->rc = w == (ssize_t)x->n ? 0 : (int)w;
    free(data);
    return 0;
}

static int echo_4mib(void *arg)
{
    const char *host = arg;
    server s;
    REQUIRE_EQ(start_server(&s, SRV_ECHO, cert, key), 0);
    wv_tls_ctx *ctx;
    REQUIRE_EQ(wv_tls_ctx_client(&(wv_tls_opts){.ca_file = cert}, &ctx), 0);
    int fd = dial(s.port);
    REQUIRE(fd >= 0);
    wv_tls *t = NULL;
    int rc = wv_tls_connect(ctx, fd, host, &t);
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        /* a writer fiber and this reader at once: neither side can write
         * 4 MiB before the other reads */
        exchange x = {.t = t, .n = 4 << 20, .rc = 1};
        wv_group *g = wv_group_new();
        CHECK_EQ(wv_group_spawn(g, write_all_of_it, &x, NULL), 0);
        char *got = malloc(x.n);
        size_t have = 0;
        while (have < x.n) {
            ssize_t n = wv_tls_read(t, got + have, x.n - have);
            if (n <= 0) {
                CHECK(n > 0);
                break;
            }
            have += (size_t)n;
        }
        CHECK_EQ(wv_group_join(g), 0);
        wv_group_free(g);
        CHECK_EQ(x.rc, 0);
        CHECK_EQ(have, x.n);
        bool same = true;
        for (size_t i = 0; i < have && same; i++)
            same = got[i] == (char)(i * 7 + i / 251);
        CHECK(same);
        free(got);
        wv_tls_close(t);
    }
    wv_close(fd);
    stop_server(&s);
    CHECK_EQ(s.accept_rc, 0);
    wv_tls_ctx_free(ctx);
    return 0;
}

static void test_tls_echoes_4mib_both_ways_verified_by_host_name(void **state)
{
    assert_int_equal(run_in_rt(1, echo_4mib, "localhost"), 0);
    assert_checks_passed();
}

static void test_tls_verifies_an_ip_address_against_the_certificates_san(void **state)
{
    assert_int_equal(run_in_rt(1, echo_4mib, "127.0.0.1"), 0);
    assert_checks_passed();
}

typedef struct refused {
    const char *host;
    const char *ca;
    bool insecure;
    int want;           /* the client's result */
    const char *reason; /* in wv_errmsg() */
} refused;

static int connect_expecting(void *arg)
{
    refused *r = arg;
    server s;
    REQUIRE_EQ(start_server(&s, SRV_ECHO, cert, key), 0);
    wv_tls_ctx *ctx;
    REQUIRE_EQ(wv_tls_ctx_client(&(wv_tls_opts){.ca_file = r->ca, .insecure = r->insecure}, &ctx),
               0);
    int fd = dial(s.port);
    REQUIRE(fd >= 0);
    wv_tls *t = NULL;
    int rc = wv_tls_connect(ctx, fd, r->host, &t);
    CHECK_EQ(rc, r->want);
    if (r->reason && !strstr(wv_errmsg(), r->reason))
        CHECK_STR_EQ(wv_errmsg(), r->reason);
    if (rc == 0) {
        CHECK_EQ(wv_tls_write(t, "ping", 4), 4);
        char buf[8];
        CHECK_EQ(wv_tls_read(t, buf, sizeof buf), 4);
        wv_tls_close(t);
    }
    wv_close(fd);
    stop_server(&s);
    wv_tls_ctx_free(ctx);
    return 0;
}

static void test_tls_refuses_a_certificate_for_another_host(void **state)
{
    refused r = {"example.com", cert, false, -EPROTO, "certificate verify failed"};
    assert_int_equal(run_in_rt(1, connect_expecting, &r), 0);
    assert_checks_passed();
}

static void test_tls_refuses_a_certificate_no_trusted_ca_signed(void **state)
{
    refused r = {"localhost", other_cert, false, -EPROTO, "certificate verify failed"};
    assert_int_equal(run_in_rt(1, connect_expecting, &r), 0);
    assert_checks_passed();
}

static void test_tls_insecure_client_accepts_any_certificate(void **state)
{
    refused r = {"example.com", NULL, true, 0, NULL};
    assert_int_equal(run_in_rt(1, connect_expecting, &r), 0);
    assert_checks_passed();
}

static int peer_not_tls(void *arg)
{
    server s;
    REQUIRE_EQ(start_server(&s, SRV_PLAIN, NULL, NULL), 0);
    wv_tls_ctx *ctx;
    REQUIRE_EQ(wv_tls_ctx_client(&(wv_tls_opts){.ca_file = cert}, &ctx), 0);
    int fd = dial(s.port);
    REQUIRE(fd >= 0);
    wv_tls *t = NULL;
    int rc = wv_tls_connect(ctx, fd, "localhost", &t);
    CHECK(rc == -EPROTO || rc == -ECONNRESET);
    CHECK(t == NULL);
    CHECK(*wv_errmsg() != '\0');
    wv_close(fd);
    stop_server(&s);
    wv_tls_ctx_free(ctx);
    return 0;
}

static void test_tls_handshake_with_a_peer_that_is_not_tls_fails_cleanly(void **state)
{
    assert_int_equal(run_in_rt(1, peer_not_tls, NULL), 0);
    assert_checks_passed();
}

static int closes(void *arg)
{
    srv_mode mode = (srv_mode)(intptr_t)arg;
    server s;
    REQUIRE_EQ(start_server(&s, mode, cert, key), 0);
    wv_tls_ctx *ctx;
    REQUIRE_EQ(wv_tls_ctx_client(&(wv_tls_opts){.ca_file = cert}, &ctx), 0);
    int fd = dial(s.port);
    REQUIRE(fd >= 0);
    wv_tls *t = NULL;
    REQUIRE_EQ(wv_tls_connect(ctx, fd, "localhost", &t), 0);
    char buf[16];
    CHECK_EQ(wv_tls_read(t, buf, sizeof buf), 3);
    ssize_t end = wv_tls_read(t, buf, sizeof buf);
    if (mode == SRV_CLOSE_CLEAN)
        CHECK_EQ(end, 0);
    else
        CHECK_EQ(end, -ECONNRESET);
    wv_tls_close(t);
    wv_close(fd);
    stop_server(&s);
    wv_tls_ctx_free(ctx);
    return 0;
}

static void test_tls_read_returns_0_after_the_peers_close_notify(void **state)
{
    assert_int_equal(run_in_rt(1, closes, (void *)(intptr_t)SRV_CLOSE_CLEAN), 0);
    assert_checks_passed();
}

static void test_tls_read_returns_econnreset_when_the_peer_cuts_without_close_notify(void **state)
{
    assert_int_equal(run_in_rt(1, closes, (void *)(intptr_t)SRV_CUT), 0);
    assert_checks_passed();
}

static int read_deadline(void *arg)
{
    server s;
    REQUIRE_EQ(start_server(&s, SRV_SILENT, cert, key), 0);
    wv_tls_ctx *ctx;
    REQUIRE_EQ(wv_tls_ctx_client(&(wv_tls_opts){.ca_file = cert}, &ctx), 0);
    int fd = dial(s.port);
    REQUIRE(fd >= 0);
    wv_tls *t = NULL;
    REQUIRE_EQ(wv_tls_connect(ctx, fd, "localhost", &t), 0);
    char buf[16];
    int64_t t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(100));
    CHECK_EQ(wv_tls_read(t, buf, sizeof buf), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_BETWEEN(ms_since(t0), 90, 1000);
    wv_tls_close(t);
    wv_close(fd);
    stop_server(&s);
    wv_tls_ctx_free(ctx);
    return 0;
}

static void test_tls_read_honours_the_fibers_deadline(void **state)
{
    assert_int_equal(run_in_rt(1, read_deadline, NULL), 0);
    assert_checks_passed();
}

static int bad_contexts(void *arg)
{
    wv_tls_ctx *ctx = (wv_tls_ctx *)1;
    CHECK_EQ(wv_tls_ctx_server(NULL, &ctx), -EINVAL);
    CHECK(ctx == NULL);
    CHECK_EQ(
        wv_tls_ctx_server(
            &(wv_tls_opts){.cert_file = "/nonexistent.pem", .key_file = "/nonexistent.key"}, &ctx),
        -EPROTO);
    CHECK(strstr(wv_errmsg(), "/nonexistent.pem") != NULL);
    /* a key that is not the certificate's */
    CHECK_EQ(wv_tls_ctx_server(&(wv_tls_opts){.cert_file = cert, .key_file = other_key}, &ctx),
             -EPROTO);
    CHECK(strstr(wv_errmsg(), "mismatch") != NULL);
    CHECK_EQ(wv_tls_ctx_client(&(wv_tls_opts){.ca_file = "/nonexistent-ca.pem"}, &ctx), -EPROTO);
    CHECK(strstr(wv_errmsg(), "/nonexistent-ca.pem") != NULL);
    /* the system store loads */
    CHECK_EQ(wv_tls_ctx_client(NULL, &ctx), 0);
    wv_tls_ctx_free(ctx);
    return 0;
}

static void test_tls_contexts_report_missing_or_mismatched_files(void **state)
{
    assert_int_equal(run_in_rt(1, bad_contexts, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_echoes_4mib_both_ways_verified_by_host_name),
        cmocka_unit_test(test_tls_verifies_an_ip_address_against_the_certificates_san),
        cmocka_unit_test(test_tls_refuses_a_certificate_for_another_host),
        cmocka_unit_test(test_tls_refuses_a_certificate_no_trusted_ca_signed),
        cmocka_unit_test(test_tls_insecure_client_accepts_any_certificate),
        cmocka_unit_test(test_tls_handshake_with_a_peer_that_is_not_tls_fails_cleanly),
        cmocka_unit_test(test_tls_read_returns_0_after_the_peers_close_notify),
        cmocka_unit_test(test_tls_read_returns_econnreset_when_the_peer_cuts_without_close_notify),
        cmocka_unit_test(test_tls_read_honours_the_fibers_deadline),
        cmocka_unit_test(test_tls_contexts_report_missing_or_mismatched_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
