/*
 * wv_stream (include/weave/net.h), the same calls over a plain socket and
 * over TLS: a message written in two pieces split at every byte boundary
 * reads back whole on both, waits for input without a buffer (TLS bytes
 * buffered inside OpenSSL included), try_writev never suspends,
 * interrupt wakes a waiting reader with -EBADF while writes still work,
 * shutdown(SHUT_WR) lets the peer read the end, SHUT_RDWR wakes a reader,
 * sendfile, and addresses formatted for logs.
 */
#include "harness.h"

#include <fcntl.h>
#include <sys/un.h>
#include <unistd.h>

#include "weave/net.h"

static char dir[64];
static wv_tls_ctx *server_ctx, *client_ctx;

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/weave-stream-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    const char *src = getenv("WEAVE_SOURCE_DIR");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "bash %s/tests/make_certs.sh %s", src ? src : ".", dir);
    if (system(cmd) != 0)
        return -1;
    char c[128], k[128], ca[128];
    snprintf(c, sizeof c, "%s/server.pem", dir);
    snprintf(k, sizeof k, "%s/server.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    if (wv_tls_ctx_server(&(wv_tls_opts){.cert_file = c, .key_file = k}, &server_ctx) < 0 ||
        wv_tls_ctx_client(&(wv_tls_opts){.ca_file = ca}, &client_ctx) < 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    wv_tls_ctx_free(server_ctx);
    wv_tls_ctx_free(client_ctx);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------- a connected pair */

typedef struct pair {
    wv_stream *a, *b; /* a: the client (connected), b: the server (accepted) */
    bool tls;
    int rc;
} pair;

typedef struct handshake_job {
    wv_stream *s;
    int rc;
} handshake_job;

static int server_handshake(void *arg)
{
    handshake_job *j = arg;
    j->rc = wv_stream_accept_tls(j->s, server_ctx);
    return 0;
}

/* Two streams joined over loopback TCP, TLS on both when tls. */
static int make_pair(pair *p, bool tls)
{
    memset(p, 0, sizeof *p);
    p->tls = tls;
    uint16_t port = 0;
    int lfd = listen_loopback(&port);
    REQUIRE(lfd >= 0);
    int cfd = wv_socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback_addr(port);
    REQUIRE_EQ(wv_connect(cfd, (struct sockaddr *)&a, sizeof a), 0);
    int sfd = wv_accept(lfd, NULL, NULL);
    REQUIRE(sfd >= 0);
    wv_close(lfd);
    REQUIRE_EQ(wv_stream_open(cfd, &p->a), 0);
    REQUIRE_EQ(wv_stream_open(sfd, &p->b), 0);
    if (tls) {
        handshake_job j = {.s = p->b};
        wv_group *g = wv_group_new();
        REQUIRE_EQ(wv_group_spawn(g, server_handshake, &j, NULL), 0);
        REQUIRE_EQ(wv_stream_start_tls(p->a, client_ctx, "localhost"), 0);
        REQUIRE_EQ(wv_group_join(g), 0);
        wv_group_free(g);
        REQUIRE_EQ(j.rc, 0);
    }
    return 0;
}

static void close_pair(pair *p)
{
    wv_stream_close(p->a);
    wv_stream_close(p->b);
}

/* --------------------------------------------- split at every byte boundary */

static const char message[] = "GET /split HTTP/1.1\r\nHost: weave\r\nX-Long: "
                              "0123456789abcdefghijklmnopqrstuvwxyz\r\n\r\n";

typedef struct writer_job {
    wv_stream *s;
    size_t cut;
} writer_job;

static int write_in_two(void *arg)
{
    writer_job *j = arg;
    size_t n = sizeof message - 1;
    if (j->cut && wv_stream_write(j->s, message, j->cut) != (ssize_t)j->cut)
        return -EIO;
    wv_sleep_ms(1); /* the reader sees the first piece alone */
    if (wv_stream_write(j->s, message + j->cut, n - j->cut) != (ssize_t)(n - j->cut))
        return -EIO;
    return 0;
}

static int split_everywhere(void *arg)
{
    bool tls = arg != NULL;
    pair p;
    REQUIRE_EQ(make_pair(&p, tls), 0);
    size_t n = sizeof message - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        writer_job j = {p.a, cut};
        wv_group *g = wv_group_new();
        REQUIRE_EQ(wv_group_spawn(g, write_in_two, &j, NULL), 0);
        char got[256];
        size_t have = 0;
        while (have < n) {
            ssize_t r = wv_stream_read(p.b, got + have, sizeof got - have);
            if (r <= 0) {
                CHECK(r > 0);
                break;
            }
            have += (size_t)r;
        }
        CHECK_EQ(wv_group_join(g), 0);
        wv_group_free(g);
        CHECK_EQ(have, n);
        CHECK(memcmp(got, message, n) == 0);
    }
    close_pair(&p);
    return 0;
}

static void test_stream_plain_reads_a_message_split_at_every_byte_boundary(void **state)
{
    assert_int_equal(run_in_rt(1, split_everywhere, NULL), 0);
    assert_checks_passed();
}

static void test_stream_tls_reads_a_message_split_at_every_byte_boundary(void **state)
{
    assert_int_equal(run_in_rt(1, split_everywhere, (void *)1), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------------ waits */

/* Two records arrive at once; reading one byte leaves the rest inside
 * OpenSSL (TLS) or the socket (plain): the wait must not block on it. */
static int wait_sees_buffered(void *arg)
{
    bool tls = arg != NULL;
    pair p;
    REQUIRE_EQ(make_pair(&p, tls), 0);
    struct iovec iov[2] = {{"first record ", 13}, {"second", 6}};
    CHECK_EQ(wv_stream_writev(p.a, iov, 2), 19);
    CHECK_EQ(wv_stream_write(p.a, "third", 5), 5);
    CHECK_EQ(wv_stream_wait(p.b, WV_IN, wv_after_ms(2000)), WV_IN);
    char c;
    CHECK_EQ(wv_stream_read(p.b, &c, 1), 1);
    int64_t t0 = wv_now();
    CHECK_EQ(wv_stream_wait(p.b, WV_IN, wv_after_ms(2000)), WV_IN);
    CHECK(ms_since(t0) < 500);
    if (tls)
        CHECK(wv_stream_pending(p.b) > 0);
    else
        CHECK_EQ(wv_stream_pending(p.b), 0);
    /* nothing more is coming: the wait ends at its deadline */
    char buf[64];
    size_t have = 1;
    while (have < 24) {
        ssize_t r = wv_stream_read(p.b, buf, sizeof buf);
        if (r <= 0)
            break;
        have += (size_t)r;
    }
    CHECK_EQ(have, 24);
    CHECK_EQ(wv_stream_wait(p.b, WV_IN, wv_after_ms(50)), -ETIMEDOUT);
    close_pair(&p);
    return 0;
}

static void test_stream_wait_returns_at_once_for_bytes_already_buffered(void **state)
{
    assert_int_equal(run_in_rt(1, wait_sees_buffered, NULL), 0);
    assert_int_equal(run_in_rt(1, wait_sees_buffered, (void *)1), 0);
    assert_checks_passed();
}

typedef struct reader_job {
    wv_stream *s;
    ssize_t got;
    wv_event started;
} reader_job;

static int blocked_reader(void *arg)
{
    reader_job *j = arg;
    char buf[16];
    wv_event_set(&j->started);
    j->got = wv_stream_read(j->s, buf, sizeof buf);
    return 0;
}

static int interrupt(void *arg)
{
    bool tls = arg != NULL;
    pair p;
    REQUIRE_EQ(make_pair(&p, tls), 0);
    reader_job j = {.s = p.b};
    wv_group *g = wv_group_new();
    REQUIRE_EQ(wv_group_spawn(g, blocked_reader, &j, NULL), 0);
    wv_event_wait(&j.started);
    wv_sleep_ms(20);
    wv_stream_interrupt(p.b);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(j.got, -EBADF);
    char buf[8];
    CHECK_EQ(wv_stream_read(p.b, buf, sizeof buf), -EBADF);
    CHECK_EQ(wv_stream_wait(p.b, WV_IN, wv_after_ms(100)), -EBADF);
    /* writes still work: the owner says goodbye */
    CHECK_EQ(wv_stream_write(p.b, "bye", 3), 3);
    CHECK_EQ(wv_stream_read(p.a, buf, sizeof buf), 3);
    close_pair(&p);
    return 0;
}

static void test_stream_interrupt_wakes_a_reader_with_ebadf_and_writes_still_work(void **state)
{
    assert_int_equal(run_in_rt(1, interrupt, NULL), 0);
    assert_int_equal(run_in_rt(1, interrupt, (void *)1), 0);
    assert_checks_passed();
}

static int shutdowns(void *arg)
{
    bool tls = arg != NULL;
    pair p;
    REQUIRE_EQ(make_pair(&p, tls), 0);
    /* SHUT_WR: the peer reads what came, then the end; we can still read */
    CHECK_EQ(wv_stream_write(p.a, "last", 4), 4);
    CHECK_EQ(wv_stream_shutdown(p.a, SHUT_WR), 0);
    char buf[16];
    CHECK_EQ(wv_stream_read(p.b, buf, sizeof buf), 4);
    CHECK_EQ(wv_stream_read(p.b, buf, sizeof buf), 0);
    CHECK_EQ(wv_stream_write(p.b, "reply", 5), 5);
    CHECK_EQ(wv_stream_read(p.a, buf, sizeof buf), 5);
    CHECK_EQ(wv_stream_write(p.a, "more", 4), tls ? -EPIPE : -EPIPE);
    /* SHUT_RDWR wakes a reader blocked on the other stream's side */
    reader_job j = {.s = p.b};
    wv_group *g = wv_group_new();
    REQUIRE_EQ(wv_group_spawn(g, blocked_reader, &j, NULL), 0);
    wv_event_wait(&j.started);
    wv_sleep_ms(10);
    CHECK_EQ(wv_stream_shutdown(p.b, SHUT_RDWR), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK(j.got == 0 || j.got == -EPIPE);
    CHECK_EQ(wv_stream_shutdown(p.b, 42), -EINVAL);
    close_pair(&p);
    return 0;
}

static void test_stream_shutdown_ends_the_write_side_or_both(void **state)
{
    assert_int_equal(run_in_rt(1, shutdowns, NULL), 0);
    assert_int_equal(run_in_rt(1, shutdowns, (void *)1), 0);
    assert_checks_passed();
}

/* ----------------------------------------------------------------- writes */

static int try_writes(void *arg)
{
    pair p;
    REQUIRE_EQ(make_pair(&p, false), 0);
    /* a peer that does not read: try_writev fills the socket and then
     * takes nothing, never waiting; try_write does the same */
    CHECK_EQ(wv_stream_try_write(p.a, "first", 5), 5);
    static char chunk[65536];
    memset(chunk, 'x', sizeof chunk);
    size_t total = 0;
    int64_t t0 = wv_now();
    for (int i = 0; i < 10000; i++) {
        struct iovec iov = {chunk, sizeof chunk};
        ssize_t w = wv_stream_try_writev(p.a, &iov, 1);
        CHECK(w >= 0);
        if (w <= 0)
            break;
        total += (size_t)w;
    }
    CHECK(ms_since(t0) < 2000);
    CHECK(total > 0);
    CHECK_EQ(wv_stream_try_write(p.a, "z", 1), 0); /* full: one buffer, the same */
    CHECK_EQ(wv_stream_unsent(p.a), 0);            /* plain: nothing kept */
    CHECK_EQ(wv_stream_flush(p.a), 0);
    struct iovec iov = {"y", 1};
    CHECK_EQ(wv_stream_try_writev(p.a, &iov, 1), 0);
    /* the peer drains what was taken, byte for byte */
    total += 5;
    size_t got = 0;
    char buf[65536];
    while (got < total) {
        ssize_t r = wv_stream_read(p.b, buf, sizeof buf);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    CHECK_EQ(got, total);
    close_pair(&p);
    return 0;
}

static void test_stream_try_writev_takes_what_fits_and_never_suspends(void **state)
{
    assert_int_equal(run_in_rt(1, try_writes, NULL), 0);
    assert_checks_passed();
}

static int sendfile_plain(void *arg)
{
    char path[128];
    snprintf(path, sizeof path, "%s/file.bin", dir);
    int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
    REQUIRE(fd >= 0);
    for (int i = 0; i < 5000; i++) {
        char c = (char)(i % 251);
        REQUIRE_EQ(write(fd, &c, 1), 1);
    }
    pair p;
    REQUIRE_EQ(make_pair(&p, false), 0);
    off_t off = 100;
    CHECK_EQ(wv_stream_sendfile(p.a, fd, &off, 1000000), 4900); /* up to the end */
    CHECK_EQ(off, 5000);
    char buf[5000];
    size_t got = 0;
    while (got < 4900) {
        ssize_t r = wv_stream_read(p.b, buf + got, sizeof buf - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    CHECK_EQ(got, 4900);
    bool same = true;
    for (size_t i = 0; i < got && same; i++)
        same = buf[i] == (char)((i + 100) % 251);
    CHECK(same);
    close(fd);
    close_pair(&p);
    return 0;
}

static void test_stream_sendfile_sends_up_to_the_end_of_the_file(void **state)
{
    assert_int_equal(run_in_rt(1, sendfile_plain, NULL), 0);
    assert_checks_passed();
}

static int plain_facts(void *arg)
{
    pair p;
    REQUIRE_EQ(make_pair(&p, false), 0);
    CHECK(!wv_stream_is_tls(p.a));
    CHECK(wv_stream_alpn(p.a) == NULL);
    CHECK(wv_stream_tls_version(p.a) == NULL);
    CHECK(wv_stream_fd(p.a) >= 0);
    struct sockaddr_storage ss;
    socklen_t len;
    CHECK_EQ(wv_stream_peer_addr(p.b, &ss, &len), 0);
    char name[64];
    wv_addr_format((struct sockaddr *)&ss, len, name, sizeof name);
    CHECK(strncmp(name, "127.0.0.1:", 10) == 0);
    CHECK_EQ(wv_stream_local_addr(p.a, &ss, &len), 0);
    CHECK_EQ(ss.ss_family, AF_INET);
    close_pair(&p);
    return 0;
}

static void test_stream_plain_reports_no_tls_and_its_addresses(void **state)
{
    assert_int_equal(run_in_rt(1, plain_facts, NULL), 0);
    assert_checks_passed();
}

static void test_addr_format_writes_v4_v6_and_unix_within_cap(void **state)
{
    char out[64];
    struct sockaddr_in v4 = loopback_addr(8080);
    assert_int_equal(wv_addr_format((struct sockaddr *)&v4, sizeof v4, out, sizeof out), 14);
    assert_string_equal(out, "127.0.0.1:8080");
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
    v6.sin6_addr.s6_addr[15] = 1;
    wv_addr_format((struct sockaddr *)&v6, sizeof v6, out, sizeof out);
    assert_string_equal(out, "[::1]:443");
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    strcpy(un.sun_path, "/run/x.sock");
    wv_addr_format((struct sockaddr *)&un, sizeof un, out, sizeof out);
    assert_string_equal(out, "unix:/run/x.sock");
    wv_addr_format((struct sockaddr *)&un, sizeof(sa_family_t), out, sizeof out);
    assert_string_equal(out, "unix");
    char small[6] = "zzzzz";
    assert_int_equal(wv_addr_format((struct sockaddr *)&v4, sizeof v4, small, 5), 4);
    assert_string_equal(small, "127.");
    assert_int_equal(small[5], '\0');
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_plain_reads_a_message_split_at_every_byte_boundary),
        cmocka_unit_test(test_stream_tls_reads_a_message_split_at_every_byte_boundary),
        cmocka_unit_test(test_stream_wait_returns_at_once_for_bytes_already_buffered),
        cmocka_unit_test(test_stream_interrupt_wakes_a_reader_with_ebadf_and_writes_still_work),
        cmocka_unit_test(test_stream_shutdown_ends_the_write_side_or_both),
        cmocka_unit_test(test_stream_try_writev_takes_what_fits_and_never_suspends),
        cmocka_unit_test(test_stream_sendfile_sends_up_to_the_end_of_the_file),
        cmocka_unit_test(test_stream_plain_reports_no_tls_and_its_addresses),
        cmocka_unit_test(test_addr_format_writes_v4_v6_and_unix_within_cap),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
