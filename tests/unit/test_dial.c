/*
 * Dialing (include/weave/net.h): "host:port", "[v6]:port", names from
 * /etc/hosts only (nothing leaves loopback), URLs with their scheme's
 * port and TLS, Unix sockets in every spelling, refusals and deadlines (a
 * listener whose backlog is full never completes the connect), RFC 8305's
 * race (a refusing address skipped at once, a silent one overtaken after
 * the attempt delay), the address order, TCP options, and bad addresses.
 */
#include "harness.h"

#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/net_internal.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/weave-dial-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    const char *src = getenv("WEAVE_SOURCE_DIR");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "bash %s/tests/make_certs.sh %s", src ? src : ".", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------ listeners */

/* A listener on family's loopback (port 0: any), or a Unix socket. */
static int listen_on(int family, uint16_t *port, int backlog)
{
    int fd = wv_socket(family, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_storage ss = {0};
    socklen_t len;
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons(*port);
        len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        *a = loopback_addr(*port);
        len = sizeof *a;
    }
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, backlog) < 0) {
        int e = -errno;
        wv_close(fd);
        return e;
    }
    len = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &len);
    *port = ntohs(family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                     : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static int listen_unix(const char *path)
{
    int fd = wv_socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof a.sun_path)
        return -1;
    memcpy(a.sun_path, path, strlen(path) + 1);
    unlink(path);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 16) < 0)
        return -1;
    return fd;
}

/* A listener that completes no more connections: its backlog of 1 is
 * taken by a connection nobody accepts, so later SYNs go unanswered. */
static int listen_full(uint16_t *port, int *filler)
{
    int fd = listen_on(AF_INET, port, 0);
    if (fd < 0)
        return fd;
    *filler = wv_socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback_addr(*port);
    int64_t old = wv_deadline_set(wv_after_ms(1000));
    int rc = wv_connect(*filler, (struct sockaddr *)&a, sizeof a);
    wv_deadline_set(old);
    return rc == 0 ? fd : -1;
}

/* Accept one connection, answer "hi" and close. */
static int greet_one(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    int fd = wv_accept(lfd, NULL, NULL);
    if (fd < 0)
        return fd;
    wv_write(fd, "hi", 2);
    wv_sleep_ms(50);
    return wv_close(fd);
}

/* Dial address, expect the greeting. */
static void dial_and_read(const char *address, int lfd)
{
    wv_group *g = wv_group_new();
    CHECK_EQ(wv_group_spawn(g, greet_one, (void *)(intptr_t)lfd, NULL), 0);
    wv_stream *s = NULL;
    int rc = wv_dial(address, NULL, &s);
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        char buf[4] = {0};
        CHECK_EQ(wv_stream_read(s, buf, sizeof buf), 2);
        CHECK_STR_EQ(buf, "hi");
        wv_stream_close(s);
    } else {
        check_failed(__FILE__, __LINE__, "dial %s: %s", address, wv_errmsg());
        wv_group_cancel(g);
    }
    wv_group_join(g);
    wv_group_free(g);
}

/* ------------------------------------------------------------- the tests */

static int dial_forms(void *arg)
{
    uint16_t p4 = 0, p6 = 0;
    int l4 = listen_on(AF_INET, &p4, 16), l6 = listen_on(AF_INET6, &p6, 16);
    REQUIRE(l4 >= 0 && l6 >= 0);
    char a[256];
    snprintf(a, sizeof a, "127.0.0.1:%u", p4);
    dial_and_read(a, l4);
    snprintf(a, sizeof a, "[::1]:%u", p6);
    dial_and_read(a, l6);
    snprintf(a, sizeof a, "localhost:%u", p4); /* /etc/hosts */
    dial_and_read(a, l4);
    snprintf(a, sizeof a, "http://127.0.0.1:%u/some/path?q=1", p4);
    dial_and_read(a, l4);
    snprintf(a, sizeof a, "redis://user:pw@[::1]:%u/0", p6);
    dial_and_read(a, l6);
    wv_close(l4);
    wv_close(l6);

    char path[128], url[256];
    snprintf(path, sizeof path, "%s/s.sock", dir);
    int lu = listen_unix(path);
    REQUIRE(lu >= 0);
    dial_and_read(path, lu);
    snprintf(a, sizeof a, "unix:%s", path);
    dial_and_read(a, lu);
    snprintf(url, sizeof url, "unix://%s", path);
    dial_and_read(url, lu);
    /* a host that decodes to a path is a Unix socket too */
    snprintf(url, sizeof url, "redis://");
    for (const char *c = path; *c; c++)
        snprintf(url + strlen(url), sizeof url - strlen(url), *c == '/' ? "%%2F" : "%c", *c);
    dial_and_read(url, lu);
    wv_close(lu);
    unlink(path);
    return 0;
}

static void test_dial_host_port_v6_names_urls_and_unix_sockets(void **state)
{
    assert_int_equal(run_in_rt(1, dial_forms, NULL), 0);
    assert_checks_passed();
}

static int refused(void *arg)
{
    uint16_t port = 0;
    int l = listen_on(AF_INET, &port, 16);
    REQUIRE(l >= 0);
    wv_close(l); /* nobody listens there now */
    char a[64], want[128];
    snprintf(a, sizeof a, "127.0.0.1:%u", port);
    wv_stream *s = (wv_stream *)1;
    CHECK_EQ(wv_dial(a, NULL, &s), -ECONNREFUSED);
    CHECK(s == NULL);
    snprintf(want, sizeof want, "cannot connect to 127.0.0.1:%u: Connection refused", port);
    CHECK_STR_EQ(wv_errmsg(), want);
    /* the URL's password never reaches the message */
    snprintf(a, sizeof a, "postgres://app:hunter2@127.0.0.1:%u/db", port);
    CHECK_EQ(wv_dial(a, NULL, &s), -ECONNREFUSED);
    CHECK_STR_EQ(wv_errmsg(), want);
    CHECK_EQ(wv_dial("/nonexistent/weave.sock", NULL, &s), -ENOENT);
    CHECK_STR_EQ(wv_errmsg(),
                 "cannot connect to unix:/nonexistent/weave.sock: No such file or directory");
    return 0;
}

static void test_dial_refused_names_the_address_without_the_password(void **state)
{
    assert_int_equal(run_in_rt(1, refused, NULL), 0);
    assert_checks_passed();
}

static int deadlines(void *arg)
{
    uint16_t port = 0;
    int filler = -1;
    int l = listen_full(&port, &filler);
    REQUIRE(l >= 0);
    char a[64];
    snprintf(a, sizeof a, "127.0.0.1:%u", port);
    wv_stream *s;
    /* the fiber's deadline */
    int64_t t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(200));
    CHECK_EQ(wv_dial(a, NULL, &s), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_BETWEEN(ms_since(t0), 190, 1500);
    /* the dial's own connect timeout */
    t0 = wv_now();
    CHECK_EQ(wv_dial(a, &(wv_dial_opts){.connect_timeout_ms = 150}, &s), -ETIMEDOUT);
    CHECK_BETWEEN(ms_since(t0), 140, 1500);
    char want[128];
    snprintf(want, sizeof want, "cannot connect to 127.0.0.1:%u: connect timed out", port);
    CHECK_STR_EQ(wv_errmsg(), want);
    wv_close(filler);
    wv_close(l);
    return 0;
}

static void test_dial_honours_the_deadline_when_the_backlog_is_full(void **state)
{
    assert_int_equal(run_in_rt(1, deadlines, NULL), 0);
    assert_checks_passed();
}

static struct sockaddr_storage addr(int family, uint16_t port)
{
    struct sockaddr_storage ss = {0};
    if (family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        a->sin6_port = htons(port);
    } else {
        *(struct sockaddr_in *)&ss = loopback_addr(port);
    }
    return ss;
}

static uint16_t peer_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    getpeername(fd, (struct sockaddr *)&ss, &len);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int race(void *arg)
{
    uint16_t good = 0, gone = 0, silent = 0;
    int lg = listen_on(AF_INET, &good, 16);
    int l6 = listen_on(AF_INET6, &gone, 16);
    REQUIRE(lg >= 0 && l6 >= 0);
    wv_close(l6); /* [::1]:gone refuses */
    int filler = -1;
    int ls = listen_full(&silent, &filler);
    REQUIRE(ls >= 0);

    /* a refusing first address: the next one starts at once */
    struct sockaddr_storage two[2] = {addr(AF_INET6, gone), addr(AF_INET, good)};
    int64_t t0 = wv_now();
    int fd = net_race(two, 2, &(wv_dial_opts){.attempt_delay_ms = 2000});
    CHECK(fd >= 0);
    CHECK(ms_since(t0) < 1000);
    if (fd >= 0) {
        CHECK_EQ(peer_port(fd), good);
        wv_close(fd);
    }
    int a = wv_accept(lg, NULL, NULL);
    wv_close(a);

    /* a silent first address: overtaken after the attempt delay */
    struct sockaddr_storage slow[2] = {addr(AF_INET, silent), addr(AF_INET, good)};
    t0 = wv_now();
    fd = net_race(slow, 2, &(wv_dial_opts){.attempt_delay_ms = 150});
    CHECK(fd >= 0);
    CHECK_BETWEEN(ms_since(t0), 140, 1500);
    if (fd >= 0) {
        CHECK_EQ(peer_port(fd), good);
        wv_close(fd);
    }
    a = wv_accept(lg, NULL, NULL);
    wv_close(a);

    /* every address refuses: the last error, with its message */
    wv_close(lg);
    struct sockaddr_storage none[2] = {addr(AF_INET6, gone), addr(AF_INET, good)};
    CHECK_EQ(net_race(none, 2, &(wv_dial_opts){0}), -ECONNREFUSED);
    CHECK_STR_EQ(wv_errmsg(), "Connection refused");

    /* the fiber's deadline ends the race */
    struct sockaddr_storage hang[1] = {addr(AF_INET, silent)};
    struct sockaddr_storage hang2[2] = {hang[0], hang[0]};
    t0 = wv_now();
    int64_t old = wv_deadline_set(wv_after_ms(200));
    CHECK_EQ(net_race(hang2, 2, &(wv_dial_opts){.attempt_delay_ms = 50}), -ETIMEDOUT);
    wv_deadline_set(old);
    CHECK_BETWEEN(ms_since(t0), 190, 1500);
    wv_close(filler);
    wv_close(ls);
    return 0;
}

static void test_dial_race_skips_a_refusing_address_and_overtakes_a_silent_one(void **state)
{
    assert_int_equal(run_in_rt(1, race, NULL), 0);
    assert_checks_passed();
}

static void test_dial_order_alternates_families_from_the_first_and_drops_duplicates(void **state)
{
    struct sockaddr_in6 v6[2] = {{.sin6_family = AF_INET6}, {.sin6_family = AF_INET6}};
    struct sockaddr_in v4[3] = {
        {.sin_family = AF_INET}, {.sin_family = AF_INET}, {.sin_family = AF_INET}};
    v6[0].sin6_addr.s6_addr[15] = 1;
    v6[1].sin6_addr.s6_addr[15] = 2;
    v4[0].sin_addr.s_addr = htonl(0x7f000001);
    v4[1].sin_addr.s_addr = htonl(0x7f000002);
    v4[2].sin_addr.s_addr = htonl(0x7f000001); /* a duplicate */
    struct addrinfo ai[5] = {
        {.ai_family = AF_INET6, .ai_addr = (struct sockaddr *)&v6[0], .ai_addrlen = sizeof v6[0]},
        {.ai_family = AF_INET6, .ai_addr = (struct sockaddr *)&v6[1], .ai_addrlen = sizeof v6[1]},
        {.ai_family = AF_INET, .ai_addr = (struct sockaddr *)&v4[0], .ai_addrlen = sizeof v4[0]},
        {.ai_family = AF_INET, .ai_addr = (struct sockaddr *)&v4[1], .ai_addrlen = sizeof v4[1]},
        {.ai_family = AF_INET, .ai_addr = (struct sockaddr *)&v4[2], .ai_addrlen = sizeof v4[2]},
    };
    for (int i = 0; i < 4; i++)
        ai[i].ai_next = &ai[i + 1];
    struct sockaddr_storage out[8];
    int n = net_interleave(ai, 5432, out, 8);
    assert_int_equal(n, 4);
    char s[64];
    const char *want[] = {"[::1]:5432", "127.0.0.1:5432", "[::2]:5432", "127.0.0.2:5432"};
    for (int i = 0; i < n; i++) {
        wv_addr_format((struct sockaddr *)&out[i], sizeof out[i], s, sizeof s);
        assert_string_equal(s, want[i]);
    }
    /* IPv4 first when the resolver put it first */
    n = net_interleave(&ai[2], 80, out, 8);
    assert_int_equal(n, 2);
    assert_int_equal(net_interleave(ai, 80, out, 1), 1);
}

static int resolving(void *arg)
{
    struct sockaddr_storage out[4];
    CHECK_EQ(wv_resolve("localhost", 80, AF_UNSPEC, out, 4) > 0, 1);
    char s[64];
    wv_addr_format((struct sockaddr *)&out[0], sizeof out[0], s, sizeof s);
    CHECK(strcmp(s, "127.0.0.1:80") == 0 || strcmp(s, "[::1]:80") == 0);
    CHECK_EQ(wv_resolve("::1", 443, AF_UNSPEC, out, 4), 1); /* numeric: no lookup */
    wv_addr_format((struct sockaddr *)&out[0], sizeof out[0], s, sizeof s);
    CHECK_STR_EQ(s, "[::1]:443");
    CHECK_EQ(wv_resolve("127.0.0.1", 1, AF_INET6, out, 4), -EHOSTUNREACH);
    CHECK_EQ(wv_resolve("", 80, AF_UNSPEC, out, 4), -EINVAL);
    CHECK_EQ(wv_resolve("localhost", 70000, AF_UNSPEC, out, 4), -EINVAL);
    return 0;
}

typedef struct resolver {
    int family;
    int rc;
    struct sockaddr_storage addr;
} resolver;

static int resolve_one(void *arg)
{
    resolver *r = arg;
    r->rc = wv_resolve("localhost", 8080, r->family, &r->addr, 1);
    return 0;
}

static int shared_lookups(void *arg)
{
    enum { N = 32 };
    resolver rs[N];
    for (int round = 0; round < 2; round++) {
        unsigned long before = atomic_load(&net_lookups);
        wv_group *g = wv_group_new();
        for (int i = 0; i < N; i++) {
            rs[i] = (resolver){.family = i % 2 ? AF_UNSPEC : AF_INET};
            REQUIRE_EQ(wv_group_spawn(g, resolve_one, &rs[i], NULL), 0);
        }
        CHECK_EQ(wv_group_join(g), 0);
        wv_group_free(g);
        /* one lookup per name and family in flight, not one per fiber */
        CHECK_EQ(atomic_load(&net_lookups) - before, 2);
        for (int i = 0; i < N; i++) {
            CHECK_EQ(rs[i].rc, 1);
            char s[64];
            wv_addr_format((struct sockaddr *)&rs[i].addr, sizeof rs[i].addr, s, sizeof s);
            CHECK(strcmp(s, "127.0.0.1:8080") == 0 || strcmp(s, "[::1]:8080") == 0);
        }
    }
    return 0;
}

static void test_resolve_shares_one_lookup_among_fibers_asking_at_once(void **state)
{
    /* one offload thread: lookups are capped at one at a time, and both
     * lookups still resolve */
    wv_main_opts opts = {.shards = 1, .offload_threads = 1, .no_signal_handling = true};
    assert_int_equal(run_in_rt_opts(&opts, shared_lookups, NULL), 0);
    assert_checks_passed();
}

static void test_resolve_names_from_etc_hosts_and_numeric_addresses(void **state)
{
    assert_int_equal(run_in_rt(1, resolving, NULL), 0);
    assert_checks_passed();
}

typedef struct bad_case {
    const char *address, *msg;
} bad_case;

static int bad_addresses(void *arg)
{
    static const bad_case cases[] = {
        {"", "dial: no address"},
        {"nohost", "dial: bad address \"nohost\" (expected host:port)"},
        {"h:", "dial: bad address \"h:\" (expected host:port)"},
        {":80", "dial: bad address \":80\" (expected host:port)"},
        {"h:99999", "dial: bad address \"h:99999\" (expected host:port)"},
        {"h:8x", "dial: bad address \"h:8x\" (expected host:port)"},
        {"::1:80", "dial: bad address \"::1:80\" (expected host:port)"},
        {"[::1]80", "dial: bad address \"[::1]80\" (expected [v6]:port)"},
        {"nosuchscheme://h/", "dial: the URL names no port and nosuchscheme has no default"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        wv_stream *s = (wv_stream *)1;
        CHECK_EQ(wv_dial(cases[i].address, NULL, &s), -EINVAL);
        CHECK(s == NULL);
        CHECK_STR_EQ(wv_errmsg(), cases[i].msg);
    }
    return 0;
}

static void test_dial_bad_addresses_are_einval_with_the_reason(void **state)
{
    assert_int_equal(run_in_rt(1, bad_addresses, NULL), 0);
    assert_checks_passed();
}

static int accept_quietly(void *arg)
{
    int fd = wv_accept((int)(intptr_t)arg, NULL, NULL);
    wv_sleep_ms(100);
    return fd >= 0 ? wv_close(fd) : fd;
}

static int options(void *arg)
{
    uint16_t port = 0;
    int l = listen_on(AF_INET, &port, 16);
    REQUIRE(l >= 0);
    char a[64];
    snprintf(a, sizeof a, "127.0.0.1:%u", port);
    for (int k = 0; k < 2; k++) {
        wv_group *g = wv_group_new();
        wv_group_spawn(g, accept_quietly, (void *)(intptr_t)l, NULL);
        wv_stream *s;
        wv_dial_opts o =
            k == 0 ? (wv_dial_opts){0} : (wv_dial_opts){.nagle = true, .keepalive_s = 7};
        REQUIRE_EQ(wv_dial(a, &o, &s), 0);
        int v = -1;
        socklen_t len = sizeof v;
        getsockopt(wv_stream_fd(s), IPPROTO_TCP, TCP_NODELAY, &v, &len);
        CHECK_EQ(v != 0, k == 0);
        getsockopt(wv_stream_fd(s), SOL_SOCKET, SO_KEEPALIVE, &v, &len);
        CHECK_EQ(v != 0, k == 1);
        if (k == 1) {
            getsockopt(wv_stream_fd(s), IPPROTO_TCP, TCP_KEEPIDLE, &v, &len);
            CHECK_EQ(v, 7);
        }
        wv_stream_close(s);
        wv_group_join(g);
        wv_group_free(g);
    }
    wv_close(l);
    return 0;
}

static void test_dial_sets_nodelay_by_default_and_keepalive_when_asked(void **state)
{
    assert_int_equal(run_in_rt(1, options, NULL), 0);
    assert_checks_passed();
}

/* ------------------------------------------------------------------ TLS */

typedef struct tls_server {
    int lfd;
    wv_tls_ctx *ctx;
} tls_server;

static int serve_tls_once(void *arg)
{
    tls_server *t = arg;
    int fd = wv_accept(t->lfd, NULL, NULL);
    wv_stream *s;
    if (fd < 0 || wv_stream_open(fd, &s) < 0)
        return -1;
    if (wv_stream_accept_tls(s, t->ctx) == 0)
        wv_stream_write(s, "tls", 3);
    wv_sleep_ms(50);
    return wv_stream_close(s);
}

static int dial_tls(void *arg)
{
    char c[128], k[128], ca[128];
    snprintf(c, sizeof c, "%s/server.pem", dir);
    snprintf(k, sizeof k, "%s/server.key", dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    tls_server t;
    uint16_t port = 0;
    t.lfd = listen_on(AF_INET, &port, 16);
    REQUIRE_EQ(wv_tls_ctx_server(&(wv_tls_opts){.cert_file = c, .key_file = k}, &t.ctx), 0);
    wv_tls_ctx *trust;
    REQUIRE_EQ(wv_tls_ctx_client(&(wv_tls_opts){.ca_file = ca}, &trust), 0);
    char a[64];
    for (int i = 0; i < 3; i++) {
        wv_group *g = wv_group_new();
        wv_group_spawn(g, serve_tls_once, &t, NULL);
        wv_stream *s = NULL;
        int rc;
        if (i == 0) { /* a TLS scheme, the name from the URL */
            snprintf(a, sizeof a, "https://localhost:%u/", port);
            rc = wv_dial(a, &(wv_dial_opts){.tls = trust}, &s);
            CHECK_EQ(rc, 0);
        } else if (i == 1) { /* host and port, TLS because a context is given */
            rc = wv_dial_host("127.0.0.1", port, &(wv_dial_opts){.tls = trust}, &s);
            CHECK_EQ(rc, 0);
        } else { /* a name the certificate does not have */
            snprintf(a, sizeof a, "127.0.0.1:%u", port);
            rc = wv_dial(a, &(wv_dial_opts){.tls = trust, .server_name = "example.com"}, &s);
            CHECK_EQ(rc, -EPROTO);
            CHECK_STR_EQ(wv_errmsg(),
                         "TLS handshake: certificate verify failed: hostname mismatch");
            CHECK(s == NULL);
        }
        if (rc == 0) {
            CHECK(wv_stream_is_tls(s));
            char buf[4] = {0};
            CHECK_EQ(wv_stream_read(s, buf, 3), 3);
            CHECK_STR_EQ(buf, "tls");
            wv_stream_close(s);
        }
        wv_group_join(g);
        wv_group_free(g);
    }
    wv_close(t.lfd);
    wv_tls_ctx_free(t.ctx);
    wv_tls_ctx_free(trust);
    return 0;
}

static void test_dial_speaks_tls_for_tls_schemes_and_verifies_the_name(void **state)
{
    assert_int_equal(run_in_rt(1, dial_tls, NULL), 0);
    assert_checks_passed();
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dial_host_port_v6_names_urls_and_unix_sockets),
        cmocka_unit_test(test_dial_refused_names_the_address_without_the_password),
        cmocka_unit_test(test_dial_honours_the_deadline_when_the_backlog_is_full),
        cmocka_unit_test(test_dial_race_skips_a_refusing_address_and_overtakes_a_silent_one),
        cmocka_unit_test(test_dial_order_alternates_families_from_the_first_and_drops_duplicates),
        cmocka_unit_test(test_resolve_names_from_etc_hosts_and_numeric_addresses),
        cmocka_unit_test(test_resolve_shares_one_lookup_among_fibers_asking_at_once),
        cmocka_unit_test(test_dial_bad_addresses_are_einval_with_the_reason),
        cmocka_unit_test(test_dial_sets_nodelay_by_default_and_keepalive_when_asked),
        cmocka_unit_test(test_dial_speaks_tls_for_tls_schemes_and_verifies_the_name),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
