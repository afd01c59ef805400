/*
 * Fiber-aware I/O: accept / connect / read / write / writev / sendfile over
 * loopback TCP and socket pairs, EOF and peer errors, wv_fd_wait rules
 * (-EBUSY for a second waiter, -EBADF on wv_close, forget), and the fault
 * injection counters that make each system call fail on purpose.
 */
#include "harness.h"

/* ------------------------------------------------------------ helpers */

static unsigned char pattern_byte(size_t i)
{
    return (unsigned char)((i * 131u) ^ (i >> 11));
}

static void fill_pattern(unsigned char *buf, size_t n, size_t from)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = pattern_byte(from + i);
}

static void small_buffers(int fd)
{
    int sz = 64 << 10;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

/* A connected loopback TCP pair (made inside one fiber: connect completes
 * against the listener's backlog before the accept). */
static int tcp_pair(int *client, int *server, bool small)
{
    uint16_t port = 0;
    int lfd = listen_loopback(&port);
    if (lfd < 0)
        return lfd;
    if (small)
        small_buffers(lfd);
    int c = wv_socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0) {
        wv_close(lfd);
        return c;
    }
    if (small)
        small_buffers(c);
    struct sockaddr_in a = loopback_addr(port);
    int r = wv_connect(c, (struct sockaddr *)&a, sizeof(a));
    int s = r == 0 ? wv_accept(lfd, NULL, NULL) : r;
    wv_close(lfd);
    if (s < 0) {
        wv_close(c);
        return s;
    }
    *client = c;
    *server = s;
    return 0;
}

/* Reads until EOF, checking the bytes against the pattern from `from`. */
typedef struct verifier {
    int fd;
    size_t from;
    int delay_ms; /* before the first read, so the writer fills the buffers */
    size_t got;
    size_t mismatches;
    int error;
} verifier;

static int read_and_verify(void *arg)
{
    verifier *v = arg;
    if (v->delay_ms > 0 && wv_sleep_ms(v->delay_ms) != 0)
        return -EIO;
    unsigned char *buf = malloc(65536);
    if (buf == NULL)
        return -ENOMEM;
    for (;;) {
        ssize_t n = wv_read(v->fd, buf, 65536);
        if (n < 0) {
            v->error = (int)n;
            break;
        }
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            if (buf[i] != pattern_byte(v->from + v->got + (size_t)i))
                v->mismatches++;
        v->got += (size_t)n;
    }
    free(buf);
    return 0;
}

/* ------------------------------------------------------------ TCP basics */

typedef struct echo_server {
    int lfd;
    struct sockaddr_in peer;
    socklen_t peer_len;
    int accepted;
} echo_server;

static int serve_one(void *arg)
{
    echo_server *s = arg;
    s->peer_len = sizeof(s->peer);
    int fd = wv_accept(s->lfd, (struct sockaddr *)&s->peer, &s->peer_len);
    s->accepted = fd;
    if (fd < 0)
        return fd;
    char req[5];
    size_t got = 0;
    while (got < sizeof(req)) {
        ssize_t n = wv_read(fd, req + got, sizeof(req) - got);
        if (n <= 0) {
            wv_close(fd);
            return n < 0 ? (int)n : -EPROTO;
        }
        got += (size_t)n;
    }
    int r = memcmp(req, "hello", 5) == 0 ? 0 : -EPROTO;
    if (r == 0 && wv_write(fd, "world", 5) != 5)
        r = -EIO;
    wv_close(fd);
    return r;
}

static int tcp_echo(void *arg)
{
    echo_server s;
    memset(&s, 0, sizeof(s));
    uint16_t port = 0;
    s.lfd = listen_loopback(&port);
    REQUIRE(s.lfd >= 0);
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, serve_one, &s, NULL), 0);

    int c = wv_socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(c >= 0);
    struct sockaddr_in a = loopback_addr(port);
    CHECK_EQ(wv_connect(c, (struct sockaddr *)&a, sizeof(a)), 0);
    CHECK_EQ(wv_write(c, "hello", 5), 5);
    char resp[8] = {0};
    size_t got = 0;
    while (got < 5) {
        ssize_t n = wv_read(c, resp + got, sizeof(resp) - 1 - got);
        if (!CHECK(n > 0))
            break;
        got += (size_t)n;
    }
    CHECK_STR_EQ(resp, "world");
    CHECK_EQ(wv_read(c, resp, sizeof(resp)), 0); /* the server closed */
    CHECK_EQ(wv_group_join(g), 0);

    CHECK(s.accepted >= 0);
    CHECK_EQ(s.peer_len, sizeof(struct sockaddr_in));
    CHECK_EQ(s.peer.sin_family, AF_INET);
    CHECK_EQ(ntohl(s.peer.sin_addr.s_addr), INADDR_LOOPBACK);
    wv_group_free(g);
    wv_close(c);
    wv_close(s.lfd);
    return 0;
}

static void test_accept_connect_read_write_between_two_fibers_over_loopback(void **state)
{
    assert_int_equal(run_in_rt(1, tcp_echo, NULL), 0);
    assert_checks_passed();
}

static bool nonblocking_cloexec(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    int fdfl = fcntl(fd, F_GETFD);
    return fl >= 0 && (fl & O_NONBLOCK) && fdfl >= 0 && (fdfl & FD_CLOEXEC);
}

static int fd_flags(void *arg)
{
    int c, s;
    REQUIRE_EQ(tcp_pair(&c, &s, false), 0);
    CHECK(nonblocking_cloexec(c)); /* from wv_socket */
    CHECK(nonblocking_cloexec(s)); /* from wv_accept */
    wv_close(c);
    wv_close(s);
    return 0;
}

static void test_socket_and_accept_return_nonblocking_cloexec_fds(void **state)
{
    assert_int_equal(run_in_rt(1, fd_flags, NULL), 0);
    assert_checks_passed();
}

typedef struct big_writer {
    int fd;
    const unsigned char *buf;
    size_t n;
    ssize_t result;
    int returned;
} big_writer;

static int write_all_then_close(void *arg)
{
    big_writer *w = arg;
    w->result = wv_write(w->fd, w->buf, w->n);
    w->returned = 1;
    shutdown(w->fd, SHUT_WR);
    return 0;
}

static int large_write(void *arg)
{
    const size_t n = 8u << 20;
    unsigned char *buf = malloc(n);
    REQUIRE(buf != NULL);
    fill_pattern(buf, n, 0);
    int c, s;
    REQUIRE_EQ(tcp_pair(&c, &s, true), 0);
    big_writer w = {.fd = c, .buf = buf, .n = n};
    verifier v = {.fd = s};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, write_all_then_close, &w, NULL), 0);
    CHECK_EQ(wv_sleep_ms(10), 0);
    CHECK_EQ(w.returned, 0); /* it is suspended on a full socket */
    CHECK_EQ(wv_group_spawn(g, read_and_verify, &v, NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(w.result, (ssize_t)n);
    CHECK_EQ(v.error, 0);
    CHECK_EQ(v.got, n);
    CHECK_EQ(v.mismatches, 0);
    wv_group_free(g);
    wv_close(c);
    wv_close(s);
    free(buf);
    return 0;
}

static void test_8mib_write_suspends_on_a_full_socket_and_arrives_intact(void **state)
{
    assert_int_equal(run_in_rt(1, large_write, NULL), 0);
    assert_checks_passed();
}

typedef struct vec_writer {
    int fd;
    const struct iovec *iov;
    int iovcnt;
    ssize_t result;
} vec_writer;

static int writev_then_close(void *arg)
{
    vec_writer *w = arg;
    w->result = wv_writev(w->fd, w->iov, w->iovcnt);
    shutdown(w->fd, SHUT_WR);
    return 0;
}

static int many_iovecs(void *arg)
{
    enum { N = 1000 };
    struct iovec *iov = calloc(N, sizeof(*iov));
    struct iovec *copy = calloc(N, sizeof(*copy));
    REQUIRE(iov != NULL && copy != NULL);
    size_t total = 0;
    for (int i = 0; i < N; i++)
        total += (size_t)(i * 37 % 4000) + 1;
    unsigned char *data = malloc(total);
    REQUIRE(data != NULL);
    fill_pattern(data, total, 0);
    size_t at = 0;
    for (int i = 0; i < N; i++) {
        size_t len = (size_t)(i * 37 % 4000) + 1;
        iov[i] = (struct iovec){data + at, len};
        at += len;
    }
    memcpy(copy, iov, N * sizeof(*iov));

    int c, s;
    REQUIRE_EQ(tcp_pair(&c, &s, true), 0);
    vec_writer w = {c, iov, N, 0};
    verifier v = {.fd = s, .delay_ms = 5};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, writev_then_close, &w, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, read_and_verify, &v, NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(w.result, (ssize_t)total);
    CHECK_EQ(v.got, total);
    CHECK_EQ(v.mismatches, 0);
    CHECK(memcmp(copy, iov, N * sizeof(*iov)) == 0); /* the array is not modified */
    wv_group_free(g);
    wv_close(c);
    wv_close(s);
    free(data);
    free(iov);
    free(copy);
    return 0;
}

static void test_writev_with_1000_iovecs_writes_every_byte_in_order(void **state)
{
    assert_int_equal(run_in_rt(1, many_iovecs, NULL), 0);
    assert_checks_passed();
}

/* A temporary file holding `n` pattern bytes; unlinked at once. */
static int pattern_file(size_t n)
{
    char path[] = "/tmp/weave-test-sendfile-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return -errno;
    unlink(path);
    unsigned char *buf = malloc(n);
    if (buf == NULL) {
        close(fd);
        return -ENOMEM;
    }
    fill_pattern(buf, n, 0);
    size_t done = 0;
    while (done < n) {
        ssize_t w = write(fd, buf + done, n - done);
        if (w <= 0) {
            free(buf);
            close(fd);
            return -EIO;
        }
        done += (size_t)w;
    }
    free(buf);
    return fd;
}

typedef struct file_sender {
    int out, in;
    off_t offset;
    size_t count;
    ssize_t result;
} file_sender;

static int sendfile_then_close(void *arg)
{
    file_sender *f = arg;
    f->result = wv_sendfile(f->out, f->in, &f->offset, f->count);
    shutdown(f->out, SHUT_WR);
    return 0;
}

static int send_a_file(void *arg)
{
    size_t count_extra = *(size_t *)arg; /* ask for this much past the end */
    const size_t size = (1u << 20) + 123;
    int fd = pattern_file(size);
    REQUIRE(fd >= 0);
    int c, s;
    REQUIRE_EQ(tcp_pair(&c, &s, true), 0);
    file_sender f = {c, fd, 100, size - 100 + count_extra, 0};
    verifier v = {.fd = s, .from = 100};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, sendfile_then_close, &f, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, read_and_verify, &v, NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(f.result, (ssize_t)(size - 100));
    CHECK_EQ(f.offset, (off_t)size);
    CHECK_EQ(v.got, size - 100);
    CHECK_EQ(v.mismatches, 0);
    wv_group_free(g);
    wv_close(c);
    wv_close(s);
    close(fd);
    return 0;
}

static void test_sendfile_sends_a_file_from_an_offset_and_advances_it(void **state)
{
    size_t extra = 0;
    assert_int_equal(run_in_rt(1, send_a_file, &extra), 0);
    assert_checks_passed();
}

static void test_sendfile_stops_at_the_end_of_the_file(void **state)
{
    size_t extra = 5000;
    assert_int_equal(run_in_rt(1, send_a_file, &extra), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ EOF, errors */

static int read_eof(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    CHECK_EQ(write(sv[1], "ab", 2), 2);
    close(sv[1]);
    char buf[8];
    CHECK_EQ(wv_read(sv[0], buf, sizeof(buf)), 2);
    CHECK_EQ(wv_read(sv[0], buf, sizeof(buf)), 0);
    CHECK_EQ(wv_read(sv[0], buf, sizeof(buf)), 0);
    wv_close(sv[0]);
    return 0;
}

static void test_read_returns_zero_at_eof(void **state)
{
    assert_int_equal(run_in_rt(1, read_eof, NULL), 0);
    assert_checks_passed();
}

typedef struct late_writer {
    int fd;
    int ms;
} late_writer;

static int write_later(void *arg)
{
    late_writer *l = arg;
    if (wv_sleep_ms(l->ms) != 0)
        return -EIO;
    return wv_write(l->fd, "late", 4) == 4 ? 0 : -EIO;
}

static int read_waits(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    late_writer l = {sv[1], 5};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, write_later, &l, NULL), 0);
    char buf[8] = {0};
    int64_t t0 = wv_now();
    CHECK_EQ(wv_read(sv[0], buf, sizeof(buf) - 1), 4);
    CHECK(ms_since(t0) >= 4);
    CHECK_STR_EQ(buf, "late");
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_read_suspends_until_bytes_arrive(void **state)
{
    assert_int_equal(run_in_rt(1, read_waits, NULL), 0);
    assert_checks_passed();
}

/* A short read marks the socket drained (the next wv_read waits for a new
 * edge first). A wv_fd_wait that sees input arrive must clear that mark, or
 * the wv_read after it waits for an edge that has already come. */
static int wait_then_read(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    char buf[16] = {0};
    late_writer l = {sv[1], 5};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    /* the first read waits (so the fd is registered) and comes back short */
    CHECK_EQ(wv_group_spawn(g, write_later, &l, NULL), 0);
    CHECK_EQ(wv_read(sv[0], buf, sizeof buf), 4);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(wv_group_spawn(g, write_later, &l, NULL), 0);
    int ready = wv_fd_wait(sv[0], WV_IN, wv_after_ms(5000));
    CHECK(ready > 0 && (ready & WV_IN));
    int64_t old = wv_deadline_set(wv_after_ms(1000));
    int64_t t0 = wv_now();
    memset(buf, 0, sizeof buf);
    CHECK_EQ(wv_read(sv[0], buf, sizeof buf), 4);
    CHECK(ms_since(t0) < 500);
    CHECK_STR_EQ(buf, "late");
    wv_deadline_set(old);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_read_after_fd_wait_saw_input_does_not_wait_again(void **state)
{
    assert_int_equal(run_in_rt(1, wait_then_read, NULL), 0);
    assert_checks_passed();
}

static int write_and_shut(void *arg)
{
    int fd = *(int *)arg;
    /* both in one pass of the shard: the reader sees one event, IN and RDHUP */
    if (wv_write(fd, "last", 4) != 4)
        return -EIO;
    return shutdown(fd, SHUT_WR) == 0 ? 0 : -errno;
}

/* The peer's last bytes and its FIN arrive together; the read takes the
 * bytes (a short read). No further edge will ever come, so a wv_fd_wait
 * for input must return at once, and the read after it says EOF. */
static int fin_with_the_last_bytes(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, write_and_shut, &sv[1], NULL), 0);
    char buf[16] = {0};
    CHECK_EQ(wv_read(sv[0], buf, sizeof buf), 4); /* waited, then short */
    CHECK_STR_EQ(buf, "last");
    int64_t t0 = wv_now();
    CHECK_EQ(wv_fd_wait(sv[0], WV_IN, wv_after_ms(2000)), WV_IN);
    CHECK(ms_since(t0) < 500);
    CHECK_EQ(wv_read(sv[0], buf, sizeof buf), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_fd_wait_for_input_after_the_peers_fin_returns_at_once(void **state)
{
    assert_int_equal(run_in_rt(1, fin_with_the_last_bytes, NULL), 0);
    assert_checks_passed();
}

static int connect_refused(void *arg)
{
    /* A port that was just free: bound, never listened on, closed. */
    int probe = socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(probe >= 0);
    struct sockaddr_in a = loopback_addr(0);
    socklen_t len = sizeof(a);
    REQUIRE_EQ(bind(probe, (struct sockaddr *)&a, sizeof(a)), 0);
    REQUIRE_EQ(getsockname(probe, (struct sockaddr *)&a, &len), 0);
    close(probe);
    int c = wv_socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(c >= 0);
    CHECK_EQ(wv_connect(c, (struct sockaddr *)&a, sizeof(a)), -ECONNREFUSED);
    wv_close(c);
    return 0;
}

static void test_connect_to_a_closed_port_returns_econnrefused(void **state)
{
    assert_int_equal(run_in_rt(1, connect_refused, NULL), 0);
    assert_checks_passed();
}

static int write_to_gone_peer(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    close(sv[1]);
    CHECK_EQ(wv_write(sv[0], "x", 1), -EPIPE);
    wv_close(sv[0]);
    int p[2];
    REQUIRE_EQ(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    close(p[0]);
    CHECK_EQ(wv_write(p[1], "x", 1), -EPIPE);
    wv_close(p[1]);
    return 0;
}

static int child_write_to_gone_peer(void *arg)
{
    int r = run_in_rt(1, write_to_gone_peer, NULL);
    return r == 0 && atomic_load(&checks_failed) == 0 ? 0 : 1;
}

static void test_write_to_a_gone_peer_returns_epipe_and_sigpipe_is_ignored(void **state)
{
    child_result *r = malloc(sizeof(*r));
    assert_non_null(r);
    assert_int_equal(run_in_child(child_write_to_gone_peer, NULL, r), 0);
    if (!child_exited_zero(r))
        print_error("child status 0x%x (a signal %d?); stderr:\n%s\n", r->status,
                    WIFSIGNALED(r->status) ? WTERMSIG(r->status) : 0, r->err);
    assert_true(child_exited_zero(r));
    free(r);
}

typedef struct duplex_end {
    int fd;
    const unsigned char *out;
    size_t n;
    ssize_t wrote;
    verifier in;
} duplex_end;

static int duplex_write(void *arg)
{
    duplex_end *e = arg;
    e->wrote = wv_write(e->fd, e->out, e->n);
    shutdown(e->fd, SHUT_WR);
    return 0;
}

static int full_duplex(void *arg)
{
    const size_t n = 4u << 20;
    unsigned char *buf = malloc(n);
    REQUIRE(buf != NULL);
    fill_pattern(buf, n, 0);
    int c, s;
    REQUIRE_EQ(tcp_pair(&c, &s, true), 0);
    duplex_end ends[2] = {{.fd = c, .out = buf, .n = n, .in = {.fd = c}},
                          {.fd = s, .out = buf, .n = n, .in = {.fd = s}}};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    for (int i = 0; i < 2; i++) {
        /* A writer and a reader fiber on the same fd, one per direction. */
        CHECK_EQ(wv_group_spawn(g, duplex_write, &ends[i], NULL), 0);
        CHECK_EQ(wv_group_spawn(g, read_and_verify, &ends[i].in, NULL), 0);
    }
    CHECK_EQ(wv_group_join(g), 0);
    for (int i = 0; i < 2; i++) {
        CHECK_EQ(ends[i].wrote, (ssize_t)n);
        CHECK_EQ(ends[i].in.error, 0);
        CHECK_EQ(ends[i].in.got, n);
        CHECK_EQ(ends[i].in.mismatches, 0);
    }
    wv_group_free(g);
    wv_close(c);
    wv_close(s);
    free(buf);
    return 0;
}

static void test_full_duplex_transfer_with_a_reader_and_a_writer_fiber_per_socket(void **state)
{
    assert_int_equal(run_in_rt(1, full_duplex, NULL), 0);
    assert_checks_passed();
}

static int writer_loses_peer(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    const size_t n = 8u << 20;
    unsigned char *buf = calloc(1, n);
    REQUIRE(buf != NULL);
    big_writer w = {.fd = sv[0], .buf = buf, .n = n};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, write_all_then_close, &w, NULL), 0);
    CHECK_EQ(wv_sleep_ms(5), 0);
    CHECK_EQ(w.returned, 0);
    close(sv[1]); /* the peer goes away while the writer waits */
    CHECK_EQ(wv_group_join(g), 0);
    CHECK_EQ(w.result, -EPIPE);
    wv_group_free(g);
    wv_close(sv[0]);
    free(buf);
    return 0;
}

static int child_writer_loses_peer(void *arg)
{
    int r = run_in_rt(1, writer_loses_peer, NULL);
    return r == 0 && atomic_load(&checks_failed) == 0 ? 0 : 1;
}

static void test_writer_blocked_on_a_full_socket_gets_epipe_when_the_peer_closes(void **state)
{
    child_result *r = malloc(sizeof(*r));
    assert_non_null(r);
    assert_int_equal(run_in_child(child_writer_loses_peer, NULL, r), 0);
    if (!child_exited_zero(r))
        print_error("child status 0x%x (signal %d?); stderr:\n%s\n", r->status,
                    WIFSIGNALED(r->status) ? WTERMSIG(r->status) : 0, r->err);
    assert_true(child_exited_zero(r));
    free(r);
}

/* ------------------------------------------------------------ wv_fd_wait rules */

typedef struct fd_waiter {
    int fd;
    int events;
    int result;
    int returned;
} fd_waiter;

static int wait_on_fd(void *arg)
{
    fd_waiter *w = arg;
    w->result = wv_fd_wait(w->fd, w->events, wv_after_ms(5000));
    w->returned = 1;
    return 0;
}

static int read_on_fd(void *arg)
{
    fd_waiter *w = arg;
    char buf[8];
    w->result = (int)wv_read(w->fd, buf, sizeof(buf));
    w->returned = 1;
    return 0;
}

static int second_waiter_busy(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    fd_waiter w = {sv[0], WV_IN, 0, 0};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, wait_on_fd, &w, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    int64_t t0 = wv_now();
    CHECK_EQ(wv_fd_wait(sv[0], WV_IN, wv_after_ms(1000)), -EBUSY);
    CHECK(ms_since(t0) < 500);
    /* The other direction of the same fd is free. */
    int r = wv_fd_wait(sv[0], WV_OUT, wv_after_ms(1000));
    CHECK(r > 0 && (r & WV_OUT));
    CHECK_EQ(w.returned, 0);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK(w.result > 0 && (w.result & WV_IN));
    wv_group_free(g);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_fd_wait_by_a_second_fiber_in_the_same_direction_returns_ebusy(void **state)
{
    assert_int_equal(run_in_rt(1, second_waiter_busy, NULL), 0);
    assert_checks_passed();
}

static int accept_on_fd(void *arg)
{
    fd_waiter *w = arg;
    w->result = wv_accept(w->fd, NULL, NULL);
    w->returned = 1;
    return 0;
}

typedef enum closed_while { WHILE_FD_WAIT, WHILE_READ, WHILE_ACCEPT } closed_while;

static int close_wakes(void *arg)
{
    closed_while mode = *(closed_while *)arg;
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    if (mode == WHILE_ACCEPT) {
        uint16_t port = 0;
        wv_close(sv[0]);
        sv[0] = listen_loopback(&port);
        REQUIRE(sv[0] >= 0);
    }
    fd_waiter w = {sv[0], WV_IN, 0, 0};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    static wv_fn *const bodies[] = {wait_on_fd, read_on_fd, accept_on_fd};
    CHECK_EQ(wv_group_spawn(g, bodies[mode], &w, NULL), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(w.returned, 0);
    int64_t t0 = wv_now();
    CHECK_EQ(wv_close(sv[0]), 0);
    CHECK_EQ(wv_group_join(g), 0);
    CHECK(ms_since(t0) < 1000);
    CHECK_EQ(w.result, -EBADF);
    wv_group_free(g);
    wv_close(sv[1]);
    return 0;
}

static void test_close_wakes_an_fd_waiter_with_ebadf(void **state)
{
    closed_while mode = WHILE_FD_WAIT;
    assert_int_equal(run_in_rt(1, close_wakes, &mode), 0);
    assert_checks_passed();
}

static void test_close_wakes_a_blocked_reader_with_ebadf(void **state)
{
    closed_while mode = WHILE_READ;
    assert_int_equal(run_in_rt(1, close_wakes, &mode), 0);
    assert_checks_passed();
}

static void test_close_wakes_a_blocked_accept_with_ebadf(void **state)
{
    closed_while mode = WHILE_ACCEPT;
    assert_int_equal(run_in_rt(1, close_wakes, &mode), 0);
    assert_checks_passed();
}

static int ready_events(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    CHECK_EQ(wv_fd_wait(sv[0], WV_OUT, wv_after_ms(1000)), WV_OUT);
    CHECK_EQ(write(sv[1], "x", 1), 1);
    CHECK_EQ(wv_fd_wait(sv[0], WV_IN, wv_after_ms(1000)) & WV_IN, WV_IN);
    int both = wv_fd_wait(sv[0], WV_IN | WV_OUT, wv_after_ms(1000));
    CHECK(both > 0 && (both & ~(WV_IN | WV_OUT)) == 0);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_fd_wait_returns_the_ready_events(void **state)
{
    assert_int_equal(run_in_rt(1, ready_events, NULL), 0);
    assert_checks_passed();
}

static int forget_and_reuse(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    CHECK_EQ(wv_fd_wait(sv[0], WV_IN, wv_after_ms(5)), -ETIMEDOUT); /* registered now */
    wv_fd_forget(sv[0]);
    wv_fd_forget(sv[1]);
    close(sv[0]);
    close(sv[1]);
    int nv[2];
    REQUIRE_EQ(nb_socketpair(nv), 0); /* most likely the same numbers */
    CHECK_EQ(write(nv[1], "y", 1), 1);
    int r = wv_fd_wait(nv[0], WV_IN, wv_after_ms(2000));
    CHECK(r > 0 && (r & WV_IN));
    char ch = 0;
    CHECK_EQ(wv_read(nv[0], &ch, 1), 1);
    CHECK_EQ(ch, 'y');
    /* And it still gets woken for bytes that arrive later. */
    late_writer l = {nv[1], 5};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, write_later, &l, NULL), 0);
    char buf[8];
    CHECK_EQ(wv_read(nv[0], buf, sizeof(buf)), 4);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_close(nv[0]);
    wv_close(nv[1]);
    return 0;
}

static void test_fd_forget_lets_the_fd_be_closed_and_its_number_reused(void **state)
{
    assert_int_equal(run_in_rt(1, forget_and_reuse, NULL), 0);
    assert_checks_passed();
}

static int make_nonblocking(void *arg)
{
    int p[2];
    REQUIRE_EQ(pipe(p), 0);
    CHECK_EQ(wv_fd_nonblock(p[0]), 0);
    CHECK(fcntl(p[0], F_GETFL) & O_NONBLOCK);
    /* A read now suspends the fiber instead of blocking the shard. */
    int64_t at = wv_after_ms(10);
    char ch;
    CHECK_EQ(wv_fd_wait(p[0], WV_IN, at), -ETIMEDOUT);
    int64_t old = wv_deadline_set(at);
    CHECK_EQ(wv_read(p[0], &ch, 1), -ETIMEDOUT);
    wv_deadline_set(old);
    wv_close(p[0]);
    close(p[1]);
    return 0;
}

static void test_fd_nonblock_sets_o_nonblock(void **state)
{
    assert_int_equal(run_in_rt(1, make_nonblocking, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------ fault injection */

static int fault_accept(void *arg)
{
    int nth = *(int *)arg;
    uint16_t port = 0;
    int lfd = listen_loopback(&port);
    REQUIRE(lfd >= 0);
    int c[3];
    struct sockaddr_in a = loopback_addr(port);
    for (int i = 0; i < 3; i++) {
        c[i] = wv_socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(c[i] >= 0);
        CHECK_EQ(wv_connect(c[i], (struct sockaddr *)&a, sizeof(a)), 0);
    }
    CHECK_EQ(wv_sleep_ms(2), 0); /* every connection is in the backlog */
    wv_fault_inject(WV_FAULT_ACCEPT, nth, EMFILE);
    for (int i = 1; i <= nth + 1; i++) {
        int fd = wv_accept(lfd, NULL, NULL);
        if (i == nth) {
            CHECK_EQ(fd, -EMFILE);
        } else {
            CHECK(fd >= 0);
            if (fd >= 0)
                wv_close(fd);
        }
    }
    wv_fault_clear();
    for (int i = 0; i < 3; i++)
        wv_close(c[i]);
    wv_close(lfd);
    return 0;
}

static void
test_injected_accept_fault_fails_the_next_accept_and_the_one_after_succeeds(void **state)
{
    int nth = 1;
    wv_fault_clear();
    assert_int_equal(run_in_rt(1, fault_accept, &nth), 0);
    wv_fault_clear();
    assert_checks_passed();
}

static void test_injected_fault_hits_exactly_the_nth_call(void **state)
{
    int nth = 2;
    wv_fault_clear();
    assert_int_equal(run_in_rt(1, fault_accept, &nth), 0);
    wv_fault_clear();
    assert_checks_passed();
}

static int fault_read(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    CHECK_EQ(write(sv[1], "abc", 3), 3);
    wv_fault_inject(WV_FAULT_READ, 1, EIO);
    char buf[8] = {0};
    CHECK_EQ(wv_read(sv[0], buf, sizeof(buf)), -EIO);
    CHECK_EQ(wv_read(sv[0], buf, sizeof(buf) - 1), 3);
    CHECK_STR_EQ(buf, "abc");
    wv_fault_clear();
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_injected_read_fault_returns_eio_and_the_data_is_still_there(void **state)
{
    wv_fault_clear();
    assert_int_equal(run_in_rt(1, fault_read, NULL), 0);
    wv_fault_clear();
    assert_checks_passed();
}

static int fault_write(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    wv_fault_inject(WV_FAULT_WRITE, 1, ENOSPC);
    CHECK_EQ(wv_write(sv[0], "first", 5), -ENOSPC);
    CHECK_EQ(wv_write(sv[0], "second", 6), 6);
    wv_fault_inject(WV_FAULT_WRITE, 1, EPIPE);
    struct iovec iov[2] = {{"thi", 3}, {"rd", 2}};
    CHECK_EQ(wv_writev(sv[0], iov, 2), -EPIPE);
    CHECK_EQ(wv_writev(sv[0], iov, 2), 5);
    char buf[32] = {0};
    CHECK_EQ(read(sv[1], buf, sizeof(buf) - 1), 11);
    CHECK_STR_EQ(buf, "secondthird"); /* the failed calls wrote nothing */
    wv_fault_clear();
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_injected_write_fault_fails_write_and_writev_once(void **state)
{
    wv_fault_clear();
    assert_int_equal(run_in_rt(1, fault_write, NULL), 0);
    wv_fault_clear();
    assert_checks_passed();
}

static int fault_connect(void *arg)
{
    uint16_t port = 0;
    int lfd = listen_loopback(&port);
    REQUIRE(lfd >= 0);
    struct sockaddr_in a = loopback_addr(port);
    int c1 = wv_socket(AF_INET, SOCK_STREAM, 0);
    int c2 = wv_socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(c1 >= 0 && c2 >= 0);
    wv_fault_inject(WV_FAULT_CONNECT, 1, ECONNREFUSED);
    CHECK_EQ(wv_connect(c1, (struct sockaddr *)&a, sizeof(a)), -ECONNREFUSED);
    CHECK_EQ(wv_connect(c2, (struct sockaddr *)&a, sizeof(a)), 0);
    wv_fault_clear();
    wv_close(c1);
    wv_close(c2);
    wv_close(lfd);
    return 0;
}

static void test_injected_connect_fault_fails_the_next_connect_only(void **state)
{
    wv_fault_clear();
    assert_int_equal(run_in_rt(1, fault_connect, NULL), 0);
    wv_fault_clear();
    assert_checks_passed();
}

static int fault_socket(void *arg)
{
    wv_fault_inject(WV_FAULT_SOCKET, 1, EMFILE);
    CHECK_EQ(wv_socket(AF_INET, SOCK_STREAM, 0), -EMFILE);
    int fd = wv_socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    wv_fault_clear();
    if (fd >= 0)
        wv_close(fd);
    return 0;
}

static void test_injected_socket_fault_fails_the_next_socket_only(void **state)
{
    wv_fault_clear();
    assert_int_equal(run_in_rt(1, fault_socket, NULL), 0);
    wv_fault_clear();
    assert_checks_passed();
}

static int fault_sendfile(void *arg)
{
    int fd = pattern_file(1000);
    REQUIRE(fd >= 0);
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    off_t off = 0;
    wv_fault_inject(WV_FAULT_SENDFILE, 1, EIO);
    CHECK_EQ(wv_sendfile(sv[0], fd, &off, 1000), -EIO);
    CHECK_EQ(off, 0);
    CHECK_EQ(wv_sendfile(sv[0], fd, &off, 1000), 1000);
    CHECK_EQ(off, 1000);
    wv_fault_clear();
    wv_close(sv[0]);
    wv_close(sv[1]);
    close(fd);
    return 0;
}

static void test_injected_sendfile_fault_fails_the_next_sendfile_only(void **state)
{
    wv_fault_clear();
    assert_int_equal(run_in_rt(1, fault_sendfile, NULL), 0);
    wv_fault_clear();
    assert_checks_passed();
}

static int set_flag(void *arg)
{
    *(int *)arg = 1;
    return 0;
}

static int fault_mmap(void *arg)
{
    /* An unusual size, so no pooled stack can be reused. */
    wv_spawn_opts opts = {.stack_size = (3u << 20) + 7 * 4096};
    int ran = 0;
    wv_fault_inject(WV_FAULT_MMAP, 1, ENOMEM);
    CHECK_EQ(wv_spawn(set_flag, &ran, &opts), -ENOMEM);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(ran, 0);
    /* The runtime keeps working. */
    CHECK_EQ(wv_spawn(set_flag, &ran, &opts), 0);
    CHECK_EQ(wv_yield(), 0);
    CHECK_EQ(ran, 1);

    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    opts.stack_size = (5u << 20) + 3 * 4096;
    wv_fault_inject(WV_FAULT_MMAP, 1, ENOMEM);
    CHECK_EQ(wv_group_spawn(g, set_flag, &ran, &opts), -ENOMEM);
    CHECK_EQ(wv_group_count(g), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    wv_fault_clear();
    return 0;
}

static void
test_injected_mmap_fault_fails_a_spawn_with_enomem_and_the_runtime_recovers(void **state)
{
    wv_fault_clear();
    assert_int_equal(run_in_rt(1, fault_mmap, NULL), 0);
    wv_fault_clear();
    assert_checks_passed();
}

static int fault_disarm(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    char buf[8];
    wv_fault_inject(WV_FAULT_READ, 1, EIO);
    wv_fault_inject(WV_FAULT_READ, 0, EIO); /* nth 0 disarms */
    CHECK_EQ(write(sv[1], "a", 1), 1);
    CHECK_EQ(wv_read(sv[0], buf, sizeof(buf)), 1);

    wv_fault_inject(WV_FAULT_READ, 1, EIO);
    wv_fault_inject(WV_FAULT_WRITE, 1, EIO);
    wv_fault_inject(WV_FAULT_SOCKET, 1, EIO);
    wv_fault_clear();
    CHECK_EQ(wv_write(sv[1], "b", 1), 1);
    CHECK_EQ(wv_read(sv[0], buf, sizeof(buf)), 1);
    int fd = wv_socket(AF_INET, SOCK_STREAM, 0);
    CHECK(fd >= 0);
    if (fd >= 0)
        wv_close(fd);
    wv_close(sv[0]);
    wv_close(sv[1]);
    return 0;
}

static void test_nth_zero_and_fault_clear_disarm_injected_faults(void **state)
{
    wv_fault_clear();
    assert_int_equal(run_in_rt(1, fault_disarm, NULL), 0);
    wv_fault_clear();
    assert_checks_passed();
}

/* ------------------------------------------------------------ recv, send */

typedef struct pair_io {
    int fd;
    size_t n;
    ssize_t got;
} pair_io;

static int recv_all(void *arg)
{
    pair_io *p = arg;
    char *buf = malloc(p->n);
    size_t have = 0;
    ssize_t r = 1;
    while (have < p->n && (r = wv_recv(p->fd, buf + have, p->n - have, 0)) > 0)
        have += (size_t)r;
    p->got = r < 0 ? r : (ssize_t)have;
    bool same = true;
    for (size_t i = 0; i < have && same; i++)
        same = buf[i] == (char)(i % 251);
    free(buf);
    return same ? 0 : -EPROTO;
}

static int recv_send(void *arg)
{
    int sv[2];
    REQUIRE_EQ(nb_socketpair(sv), 0);
    /* 4 MiB: the sender must wait for the receiver */
    pair_io p = {.fd = sv[1], .n = 4 << 20};
    wv_group *g = wv_group_new();
    REQUIRE_EQ(wv_group_spawn(g, recv_all, &p, NULL), 0);
    char *data = malloc(p.n);
    for (size_t i = 0; i < p.n; i++)
        data[i] = (char)(i % 251);
    CHECK_EQ(wv_send(sv[0], data, p.n, 0), (ssize_t)p.n);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_EQ(p.got, (ssize_t)p.n);
    free(data);
    /* the peer gone: -EPIPE, and no SIGPIPE even where it is not ignored
     * (the runtime ignores it; a library user's process may not) */
    wv_close(sv[1]);
    struct sigaction old, dfl = {.sa_handler = SIG_DFL};
    sigaction(SIGPIPE, &dfl, &old);
    CHECK_EQ(wv_send(sv[0], "x", 1, 0), -EPIPE);
    sigaction(SIGPIPE, &old, NULL);
    wv_close(sv[0]);
    /* not a socket */
    int pf[2];
    REQUIRE_EQ(pipe2(pf, O_NONBLOCK), 0);
    char c;
    CHECK_EQ(wv_send(pf[1], "x", 1, 0), -ENOTSOCK);
    CHECK_EQ(wv_recv(pf[0], &c, 1, 0), -ENOTSOCK);
    wv_close(pf[0]);
    wv_close(pf[1]);
    return 0;
}

static void test_recv_and_send_move_4mib_and_report_epipe_and_enotsock(void **state)
{
    assert_int_equal(run_in_rt(1, recv_send, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_connect_read_write_between_two_fibers_over_loopback),
        cmocka_unit_test(test_socket_and_accept_return_nonblocking_cloexec_fds),
        cmocka_unit_test(test_8mib_write_suspends_on_a_full_socket_and_arrives_intact),
        cmocka_unit_test(test_writev_with_1000_iovecs_writes_every_byte_in_order),
        cmocka_unit_test(test_sendfile_sends_a_file_from_an_offset_and_advances_it),
        cmocka_unit_test(test_sendfile_stops_at_the_end_of_the_file),
        cmocka_unit_test(test_read_returns_zero_at_eof),
        cmocka_unit_test(test_read_suspends_until_bytes_arrive),
        cmocka_unit_test(test_read_after_fd_wait_saw_input_does_not_wait_again),
        cmocka_unit_test(test_fd_wait_for_input_after_the_peers_fin_returns_at_once),
        cmocka_unit_test(test_connect_to_a_closed_port_returns_econnrefused),
        cmocka_unit_test(test_write_to_a_gone_peer_returns_epipe_and_sigpipe_is_ignored),
        cmocka_unit_test(test_full_duplex_transfer_with_a_reader_and_a_writer_fiber_per_socket),
        cmocka_unit_test(test_writer_blocked_on_a_full_socket_gets_epipe_when_the_peer_closes),
        cmocka_unit_test(test_fd_wait_by_a_second_fiber_in_the_same_direction_returns_ebusy),
        cmocka_unit_test(test_close_wakes_an_fd_waiter_with_ebadf),
        cmocka_unit_test(test_close_wakes_a_blocked_reader_with_ebadf),
        cmocka_unit_test(test_close_wakes_a_blocked_accept_with_ebadf),
        cmocka_unit_test(test_fd_wait_returns_the_ready_events),
        cmocka_unit_test(test_fd_forget_lets_the_fd_be_closed_and_its_number_reused),
        cmocka_unit_test(test_fd_nonblock_sets_o_nonblock),
        cmocka_unit_test(
            test_injected_accept_fault_fails_the_next_accept_and_the_one_after_succeeds),
        cmocka_unit_test(test_injected_fault_hits_exactly_the_nth_call),
        cmocka_unit_test(test_injected_read_fault_returns_eio_and_the_data_is_still_there),
        cmocka_unit_test(test_injected_write_fault_fails_write_and_writev_once),
        cmocka_unit_test(test_injected_connect_fault_fails_the_next_connect_only),
        cmocka_unit_test(test_injected_socket_fault_fails_the_next_socket_only),
        cmocka_unit_test(test_injected_sendfile_fault_fails_the_next_sendfile_only),
        cmocka_unit_test(
            test_injected_mmap_fault_fails_a_spawn_with_enomem_and_the_runtime_recovers),
        cmocka_unit_test(test_nth_zero_and_fault_clear_disarm_injected_faults),
        cmocka_unit_test(test_recv_and_send_move_4mib_and_report_epipe_and_enotsock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
