/*
 * TLS streams (include/weave/net.h): a server and a client in one process,
 * over loopback, with certificates tests/make_certs.sh makes for the run
 * (a test CA; server, expired, wrong-host and self-signed certificates).
 * Handshakes, a 4 MiB exchange both ways (the writes must wait for the
 * reader), host name and IP verification, certificates refused with the
 * reason, a peer that is not TLS, a stalled handshake, clean and unclean
 * closes, deadlines, ALPN, certificate reload, a record kept by
 * try_writev, sendfile through TLS, and bad contexts.
 */
#include "harness.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weave/net.h"

static char dir[64];

static const char *file(const char *name)
{
    static char paths[8][128];
    static int next;
    char *p = paths[next++ % 8];
    snprintf(p, 128, "%s/%s", dir, name);
    return p;
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/weave-tls-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    const char *src = getenv("WEAVE_SOURCE_DIR");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "bash %s/tests/make_certs.sh %s", src ? src : ".", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "test_tls: cannot make the certificates (is openssl installed?)\n");
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ the server */

typedef enum { SRV_ECHO, SRV_CLOSE_CLEAN, SRV_CUT, SRV_SILENT, SRV_PLAIN, SRV_SLOW } srv_mode;

typedef struct server {
    int lfd;
    uint16_t port;
    srv_mode mode;
    wv_tls_ctx *ctx;
    int accept_rc; /* what wv_stream_accept_tls returned */
    char alpn[32]; /* what it chose */
    int conns;     /* connections to serve before done */
    wv_event done;
    wv_event go; /* SRV_SLOW: start reading */
} server;

static void serve_conn(server *s, wv_stream *st)
{
    if (s->mode == SRV_PLAIN) {
        /* not TLS at all: an HTTP answer to the ClientHello */
        char buf[512];
        (void)wv_stream_read(st, buf, sizeof buf);
        static const char answer[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
        (void)wv_stream_write(st, answer, sizeof answer - 1);
        return;
    }
    s->accept_rc = wv_stream_accept_tls(st, s->ctx);
    if (s->accept_rc < 0)
        return;
    snprintf(s->alpn, sizeof s->alpn, "%s", wv_stream_alpn(st) ? wv_stream_alpn(st) : "");
    if (s->mode == SRV_ECHO || s->mode == SRV_SLOW) {
        if (s->mode == SRV_SLOW)
            wv_event_wait(&s->go);
        char buf[16384];
        ssize_t n;
        while ((n = wv_stream_read(st, buf, sizeof buf)) > 0)
            if (wv_stream_write(st, buf, (size_t)n) != n)
                break;
    } else if (s->mode == SRV_CLOSE_CLEAN) {
        wv_stream_write(st, "bye", 3);
    } else if (s->mode == SRV_CUT) {
        wv_stream_write(st, "bye", 3);
        wv_stream_shutdown(st, SHUT_RDWR); /* no close_notify */
        wv_sleep_ms(200);
    } else { /* SRV_SILENT: never answers */
        wv_sleep_ms(2000);
    }
}

typedef struct accepted {
    server *s;
    int fd;
} accepted;

static int serve_one(void *arg)
{
    accepted *a = arg;
    server *s = a->s;
    wv_stream *st;
    if (wv_stream_open(a->fd, &st) == 0) {
        serve_conn(s, st);
        wv_stream_close(st);
    }
    free(a);
    if (--s->conns <= 0)
        wv_event_set(&s->done);
    return 0;
}

/* Accept s->conns connections, each served by a fiber of its own. */
static int serve_n(void *arg)
{
    server *s = arg;
    int n = s->conns;
    for (int i = 0; i < n; i++) {
        int fd = wv_accept(s->lfd, NULL, NULL);
        accepted *a = fd >= 0 ? malloc(sizeof *a) : NULL;
        if (a)
            *a = (accepted){s, fd};
        if (!a || wv_spawn(serve_one, a, NULL) < 0) {
            s->accept_rc = fd < 0 ? fd : -ENOMEM;
            if (fd >= 0)
                wv_close(fd);
            free(a);
            wv_event_set(&s->done);
            return 0;
        }
    }
    return 0;
}

static int start_server_opts(server *s, srv_mode mode, const wv_tls_opts *o, int conns)
{
    memset(s, 0, sizeof *s);
    s->mode = mode;
    s->conns = conns;
    s->lfd = listen_loopback(&s->port);
    REQUIRE(s->lfd >= 0);
    if (mode != SRV_PLAIN)
        REQUIRE_EQ(wv_tls_ctx_server(o, &s->ctx), 0);
    REQUIRE_EQ(wv_spawn(serve_n, s, NULL), 0);
    return 0;
}

static int start_server(server *s, srv_mode mode, const char *c, const char *k)
{
    return start_server_opts(s, mode, &(wv_tls_opts){.cert_file = c, .key_file = k}, 1);
}

static void stop_server(server *s)
{
    wv_event_wait(&s->done);
    wv_close(s->lfd);
    wv_tls_ctx_free(s->ctx);
}

/* A plain stream to the server. */
static wv_stream *dial(uint16_t port)
{
    int fd = wv_socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback_addr(port);
    if (fd >= 0 && wv_connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        wv_close(fd);
        return NULL;
    }
    wv_stream *s = NULL;
    return fd >= 0 && wv_stream_open(fd, &s) == 0 ? s : NULL;
}

static wv_tls_ctx *trusting_ca(void)
{
    wv_tls_ctx *ctx = NULL;
    wv_tls_ctx_client(&(wv_tls_opts){.ca_file = file("ca.pem")}, &ctx);
    return ctx;
}

/* ------------------------------------------------------------- the tests */

typedef struct exchange {
    wv_stream *t;
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
    ssize_t w = wv_stream_write(x->t, data, x->n);
    x->rc = w == (ssize_t)x->n ? 0 : (int)w;
    free(data);
    return 0;
}

static int echo_4mib(void *arg)
{
    const char *host = arg;
    server s;
    REQUIRE_EQ(start_server(&s, SRV_ECHO, file("server.pem"), file("server.key")), 0);
    wv_tls_ctx *ctx = trusting_ca();
    REQUIRE(ctx != NULL);
    wv_stream *t = dial(s.port);
    REQUIRE(t != NULL);
    int rc = wv_stream_start_tls(t, ctx, host);
    CHECK_EQ(rc, 0);
    CHECK(wv_stream_is_tls(t));
    CHECK_STR_EQ(wv_stream_tls_version(t), "TLSv1.3");
    if (rc == 0) {
        /* a writer fiber and this reader at once: neither side can write
         * 4 MiB before the other reads */
        exchange x = {.t = t, .n = 4 << 20, .rc = 1};
        wv_group *g = wv_group_new();
        CHECK_EQ(wv_group_spawn(g, write_all_of_it, &x, NULL), 0);
        char *got = malloc(x.n);
        size_t have = 0;
        while (have < x.n) {
            ssize_t n = wv_stream_read(t, got + have, x.n - have);
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
    }
    wv_stream_close(t);
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
    const char *cert; /* the server's, in dir */
    const char *host;
    bool insecure;
    int want;        /* the client's result */
    const char *msg; /* wv_errmsg(), whole */
} refused;

static int connect_expecting(void *arg)
{
    refused *r = arg;
    char key[64];
    snprintf(key, sizeof key, "%.*s.key", (int)(strlen(r->cert) - 4), r->cert);
    server s;
    REQUIRE_EQ(start_server(&s, SRV_ECHO, file(r->cert), file(key)), 0);
    wv_tls_ctx *ctx;
    REQUIRE_EQ(wv_tls_ctx_client(&(wv_tls_opts){.ca_file = r->insecure ? NULL : file("ca.pem"),
                                                .insecure = r->insecure},
                                 &ctx),
               0);
    wv_stream *t = dial(s.port);
    REQUIRE(t != NULL);
    int rc = wv_stream_start_tls(t, ctx, r->host);
    CHECK_EQ(rc, r->want);
    if (r->msg)
        CHECK_STR_EQ(wv_errmsg(), r->msg);
    if (rc == 0) {
        CHECK_EQ(wv_stream_write(t, "ping", 4), 4);
        char buf[8];
        CHECK_EQ(wv_stream_read(t, buf, sizeof buf), 4);
    } else {
        CHECK(!wv_stream_is_tls(t));
    }
    wv_stream_close(t);
    stop_server(&s);
    wv_tls_ctx_free(ctx);
    return 0;
}

static void test_tls_refuses_a_certificate_for_another_host(void **state)
{
    refused r = {"wronghost.pem", "localhost", false, -EPROTO,
                 "TLS handshake: certificate verify failed: hostname mismatch"};
    assert_int_equal(run_in_rt(1, connect_expecting, &r), 0);
    assert_checks_passed();
}

static void test_tls_refuses_a_certificate_no_trusted_ca_signed(void **state)
{
    refused r = {"untrusted.pem", "localhost", false, -EPROTO,
                 "TLS handshake: certificate verify failed: self-signed certificate"};
    assert_int_equal(run_in_rt(1, connect_expecting, &r), 0);
    assert_checks_passed();
}

static void test_tls_refuses_an_expired_certificate(void **state)
{
    refused r = {"expired.pem", "localhost", false, -EPROTO,
                 "TLS handshake: certificate verify failed: certificate has expired"};
    assert_int_equal(run_in_rt(1, connect_expecting, &r), 0);
    assert_checks_passed();
}

static void test_tls_insecure_client_accepts_any_certificate(void **state)
{
    refused r = {"wronghost.pem", "localhost", true, 0, NULL};
    assert_int_equal(run_in_rt(1, connect_expecting, &r), 0);
    assert_checks_passed();
}

static int peer_not_tls(void *arg)
{
    server s;
    REQUIRE_EQ(start_server(&s, SRV_PLAIN, NULL, NULL), 0);
    wv_tls_ctx *ctx = trusting_ca();
    wv_stream *t = dial(s.port);
    REQUIRE(t != NULL);
    int rc = wv_stream_start_tls(t, ctx, "localhost");
    CHECK(rc == -EPROTO || rc == -ECONNRESET);
    CHECK(!wv_stream_is_tls(t));
    CHECK(*wv_errmsg() != '\0');
    wv_stream_close(t);
    stop_server(&s);
    wv_tls_ctx_free(ctx);
    return 0;
}

static void test_tls_handshake_with_a_peer_that_is_not_tls_fails_cleanly(void **state)
{
    assert_int_equal(run_in_rt(1, peer_not_tls, NULL), 0);
    assert_checks_passed();
}

/* A client that connects and never says hello: the server's handshake
 * ends at its deadline. */
static int stalled_handshake(void *arg)
{
    uint16_t port = 0;
    int lfd = listen_loopback(&port);
    REQUIRE(lfd >= 0);
    wv_tls_ctx *sctx;
    REQUIRE_EQ(
        wv_tls_ctx_server(
            &(wv_tls_opts){.cert_file = file("server.pem"), .key_file = file("server.key")}, &sctx),
        0);
    wv_stream *client = dial(port); /* connected, silent */
    REQUIRE(client != NULL);
    int fd = wv_accept(lfd, NULL, NULL);
    REQUIRE(fd >= 0);
    wv_stream *st;
    REQUIRE_EQ(wv_stream_open(fd, &st), 0);
    int64_t t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(200));
    CHECK_EQ(wv_stream_accept_tls(st, sctx), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_BETWEEN(ms_since(t0), 190, 2000);
    wv_stream_close(st);
    wv_stream_close(client);
    wv_close(lfd);
    wv_tls_ctx_free(sctx);
    return 0;
}

static void test_tls_server_handshake_that_stalls_ends_at_the_deadline(void **state)
{
    assert_int_equal(run_in_rt(1, stalled_handshake, NULL), 0);
    assert_checks_passed();
}

static int closes(void *arg)
{
    srv_mode mode = (srv_mode)(intptr_t)arg;
    server s;
    REQUIRE_EQ(start_server(&s, mode, file("server.pem"), file("server.key")), 0);
    wv_tls_ctx *ctx = trusting_ca();
    wv_stream *t = dial(s.port);
    REQUIRE(t != NULL);
    REQUIRE_EQ(wv_stream_start_tls(t, ctx, "localhost"), 0);
    char buf[16];
    CHECK_EQ(wv_stream_read(t, buf, sizeof buf), 3);
    ssize_t end = wv_stream_read(t, buf, sizeof buf);
    if (mode == SRV_CLOSE_CLEAN)
        CHECK_EQ(end, 0);
    else
        CHECK_EQ(end, -ECONNRESET);
    wv_stream_close(t);
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
    REQUIRE_EQ(start_server(&s, SRV_SILENT, file("server.pem"), file("server.key")), 0);
    wv_tls_ctx *ctx = trusting_ca();
    wv_stream *t = dial(s.port);
    REQUIRE(t != NULL);
    REQUIRE_EQ(wv_stream_start_tls(t, ctx, "localhost"), 0);
    char buf[16];
    int64_t t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(100));
    CHECK_EQ(wv_stream_read(t, buf, sizeof buf), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_BETWEEN(ms_since(t0), 90, 1000);
    wv_stream_close(t);
    stop_server(&s);
    wv_tls_ctx_free(ctx);
    return 0;
}

static void test_tls_read_honours_the_fibers_deadline(void **state)
{
    assert_int_equal(run_in_rt(1, read_deadline, NULL), 0);
    assert_checks_passed();
}

typedef struct alpn_case {
    const char *server, *client; /* ALPN lists */
    const char *want;            /* chosen, "" for none */
} alpn_case;

static int alpn(void *arg)
{
    alpn_case *c = arg;
    server s;
    REQUIRE_EQ(start_server_opts(&s, SRV_ECHO,
                                 &(wv_tls_opts){.cert_file = file("server.pem"),
                                                .key_file = file("server.key"),
                                                .alpn = c->server},
                                 1),
               0);
    wv_tls_ctx *ctx;
    REQUIRE_EQ(
        wv_tls_ctx_client(&(wv_tls_opts){.ca_file = file("ca.pem"), .alpn = c->client}, &ctx), 0);
    wv_stream *t = dial(s.port);
    REQUIRE(t != NULL);
    CHECK_EQ(wv_stream_start_tls(t, ctx, "localhost"), 0);
    CHECK_STR_EQ(wv_stream_alpn(t) ? wv_stream_alpn(t) : "", c->want);
    wv_stream_close(t);
    stop_server(&s);
    CHECK_STR_EQ(s.alpn, c->want);
    wv_tls_ctx_free(ctx);
    return 0;
}

static void test_tls_alpn_server_picks_its_first_protocol_the_client_offers(void **state)
{
    alpn_case cases[] = {
        {"h2,http/1.1", "http/1.1", "http/1.1"},
        {"h2,http/1.1", "http/1.1,h2", "h2"},
        {"http/1.1", "h2,http/1.1", "http/1.1"},
        {"h2,http/1.1", "spdy/3", ""}, /* nothing in common: no ALPN, still connected */
        {"h2,http/1.1", NULL, ""},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        assert_int_equal(run_in_rt(1, alpn, &cases[i]), 0);
    assert_checks_passed();
}

static int copy_file(const char *from, const char *to)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "cp %s %s", from, to);
    return system(cmd) == 0 ? 0 : -1;
}

/* The server starts with the wrong host's certificate; a connection made
 * then stays up across a reload to the right one, which new connections
 * get. A reload from files that do not load keeps the old certificate. */
static int reload(void *arg)
{
    const char *c = file("live.pem"), *k = file("live.key");
    REQUIRE_EQ(copy_file(file("wronghost.pem"), c), 0);
    REQUIRE_EQ(copy_file(file("wronghost.key"), k), 0);
    server s;
    REQUIRE_EQ(start_server_opts(&s, SRV_ECHO, &(wv_tls_opts){.cert_file = c, .key_file = k}, 4),
               0);
    wv_tls_ctx *trusting = trusting_ca(), *any;
    REQUIRE_EQ(wv_tls_ctx_client(&(wv_tls_opts){.insecure = true}, &any), 0);
    wv_stream *before = dial(s.port), *untrusting = dial(s.port);
    REQUIRE(before && untrusting);
    CHECK_EQ(wv_stream_start_tls(before, any, "localhost"), 0);
    CHECK_EQ(wv_stream_start_tls(untrusting, trusting, "localhost"), -EPROTO);
    wv_stream_close(untrusting);

    REQUIRE_EQ(copy_file(file("server.pem"), c), 0);
    REQUIRE_EQ(copy_file(file("server.key"), k), 0);
    CHECK_EQ(wv_tls_ctx_reload(s.ctx), 0);
    wv_stream *after = dial(s.port);
    REQUIRE(after != NULL);
    CHECK_EQ(wv_stream_start_tls(after, trusting, "localhost"), 0);
    char buf[8];
    CHECK_EQ(wv_stream_write(before, "old", 3), 3);
    CHECK_EQ(wv_stream_read(before, buf, sizeof buf), 3); /* not dropped */
    CHECK_EQ(wv_stream_write(after, "new", 3), 3);
    CHECK_EQ(wv_stream_read(after, buf, sizeof buf), 3);

    /* a key that does not match: refused, the good certificate stays */
    REQUIRE_EQ(copy_file(file("expired.key"), k), 0);
    CHECK_EQ(wv_tls_ctx_reload(s.ctx), -EPROTO);
    wv_stream *still = dial(s.port);
    REQUIRE(still != NULL);
    CHECK_EQ(wv_stream_start_tls(still, trusting, "localhost"), 0);
    wv_stream_close(still);
    wv_stream_close(before);
    wv_stream_close(after);
    stop_server(&s);
    wv_tls_ctx_free(trusting);
    wv_tls_ctx_free(any);
    return 0;
}

static void test_tls_reload_serves_the_new_certificate_and_keeps_open_connections(void **state)
{
    assert_int_equal(run_in_rt(1, reload, NULL), 0);
    assert_checks_passed();
}

/* The peer does not read: try_writev fills the socket, keeps a record it
 * could not send, and says so; once the peer reads, flush sends it and
 * every byte arrives in order. */
static int kept_record(void *arg)
{
    server s;
    REQUIRE_EQ(start_server(&s, SRV_SLOW, file("server.pem"), file("server.key")), 0);
    wv_tls_ctx *ctx = trusting_ca();
    wv_stream *t = dial(s.port);
    REQUIRE(t != NULL);
    REQUIRE_EQ(wv_stream_start_tls(t, ctx, "localhost"), 0);
    static char chunk[10000];
    size_t sent = 0;
    for (int i = 0; i < 100000 && !wv_stream_unsent(t); i++) {
        for (size_t k = 0; k < sizeof chunk; k++)
            chunk[k] = (char)((sent + k) % 251);
        struct iovec iov = {chunk, sizeof chunk};
        ssize_t w = wv_stream_try_writev(t, &iov, 1);
        CHECK(w >= 0);
        if (w <= 0)
            break;
        sent += (size_t)w;
        /* what was taken is the stream's: the rest of this chunk waits */
        if ((size_t)w < sizeof chunk)
            break;
    }
    CHECK(wv_stream_unsent(t) > 0);
    wv_event_set(&s.go);
    size_t unsent = wv_stream_unsent(t);
    CHECK_EQ(wv_stream_flush(t), 0);
    CHECK_EQ(wv_stream_unsent(t), 0);
    CHECK(unsent > 0);
    /* the echo comes back whole and in order */
    char *buf = malloc(65536);
    size_t got = 0;
    bool same = true;
    while (got < sent) {
        ssize_t n = wv_stream_read(t, buf, 65536);
        if (n <= 0) {
            CHECK(n > 0);
            break;
        }
        for (ssize_t k = 0; k < n && same; k++)
            same = buf[k] == (char)((got + (size_t)k) % 251);
        got += (size_t)n;
    }
    CHECK(same);
    CHECK_EQ(got, sent);
    free(buf);
    wv_stream_close(t);
    stop_server(&s);
    wv_tls_ctx_free(ctx);
    return 0;
}

static void test_tls_try_writev_keeps_the_record_the_socket_refused_and_flush_sends_it(void **state)
{
    assert_int_equal(run_in_rt(1, kept_record, NULL), 0);
    assert_checks_passed();
}

static int sendfile_tls(void *arg)
{
    const char *path = file("payload.bin");
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    REQUIRE(fd >= 0);
    size_t size = 100000;
    for (size_t i = 0; i < size; i++) {
        char c = (char)(i % 253);
        REQUIRE_EQ(write(fd, &c, 1), 1);
    }
    server s;
    REQUIRE_EQ(start_server(&s, SRV_ECHO, file("server.pem"), file("server.key")), 0);
    wv_tls_ctx *ctx = trusting_ca();
    wv_stream *t = dial(s.port);
    REQUIRE(t != NULL);
    REQUIRE_EQ(wv_stream_start_tls(t, ctx, "localhost"), 0);
    off_t off = 1000;
    CHECK_EQ(wv_stream_sendfile(t, fd, &off, 50000), 50000);
    CHECK_EQ(off, 51000);
    char *buf = malloc(50000);
    size_t got = 0;
    while (got < 50000) {
        ssize_t n = wv_stream_read(t, buf + got, 50000 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    CHECK_EQ(got, 50000);
    bool same = true;
    for (size_t i = 0; i < got && same; i++)
        same = buf[i] == (char)((i + 1000) % 253);
    CHECK(same);
    free(buf);
    close(fd);
    wv_stream_close(t);
    stop_server(&s);
    wv_tls_ctx_free(ctx);
    return 0;
}

static void test_tls_sendfile_goes_through_tls(void **state)
{
    assert_int_equal(run_in_rt(1, sendfile_tls, NULL), 0);
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
    CHECK_EQ(
        wv_tls_ctx_server(
            &(wv_tls_opts){.cert_file = file("server.pem"), .key_file = file("expired.key")}, &ctx),
        -EPROTO);
    CHECK(strstr(wv_errmsg(), "mismatch") != NULL);
    CHECK_EQ(wv_tls_ctx_client(&(wv_tls_opts){.ca_file = "/nonexistent-ca.pem"}, &ctx), -EPROTO);
    CHECK(strstr(wv_errmsg(), "/nonexistent-ca.pem") != NULL);
    CHECK_EQ(wv_tls_ctx_client(&(wv_tls_opts){.alpn = "h2,,http/1.1"}, &ctx), -EINVAL);
    /* the system store loads; the default context is one and the same */
    CHECK_EQ(wv_tls_ctx_client(NULL, &ctx), 0);
    wv_tls_ctx_free(ctx);
    CHECK(wv_tls_ctx_default() != NULL);
    CHECK(wv_tls_ctx_default() == wv_tls_ctx_default());
    /* a server context cannot start a client handshake */
    uint16_t port = 0;
    int lfd = listen_loopback(&port);
    wv_stream *t = dial(port);
    REQUIRE(t != NULL);
    REQUIRE_EQ(
        wv_tls_ctx_server(
            &(wv_tls_opts){.cert_file = file("server.pem"), .key_file = file("server.key")}, &ctx),
        0);
    CHECK_EQ(wv_stream_start_tls(t, ctx, "localhost"), -EINVAL);
    wv_tls_ctx_free(ctx);
    wv_stream_close(t);
    wv_close(lfd);
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
        cmocka_unit_test(test_tls_refuses_an_expired_certificate),
        cmocka_unit_test(test_tls_insecure_client_accepts_any_certificate),
        cmocka_unit_test(test_tls_handshake_with_a_peer_that_is_not_tls_fails_cleanly),
        cmocka_unit_test(test_tls_server_handshake_that_stalls_ends_at_the_deadline),
        cmocka_unit_test(test_tls_read_returns_0_after_the_peers_close_notify),
        cmocka_unit_test(test_tls_read_returns_econnreset_when_the_peer_cuts_without_close_notify),
        cmocka_unit_test(test_tls_read_honours_the_fibers_deadline),
        cmocka_unit_test(test_tls_alpn_server_picks_its_first_protocol_the_client_offers),
        cmocka_unit_test(test_tls_reload_serves_the_new_certificate_and_keeps_open_connections),
        cmocka_unit_test(
            test_tls_try_writev_keeps_the_record_the_socket_refused_and_flush_sends_it),
        cmocka_unit_test(test_tls_sendfile_goes_through_tls),
        cmocka_unit_test(test_tls_contexts_report_missing_or_mismatched_files),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
