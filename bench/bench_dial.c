/*
 * bench/bench_dial.c: the weave side of net.dial and net.dial_tls
 * (bench/run_tls.sh, `make bench-tls`): one fiber, on one shard, dials a
 * local server back to back with wv_dial_host and closes each stream at
 * once.
 *
 *   bench_dial plain HOST PORTS N                        net.dial: dials/s
 *   bench_dial tls HOST PORTS N CA_FILE SERVER_NAME      net.dial_tls: dials/s
 *   bench_dial floor HOST PORTS N                        the kernel's floor
 *   bench_dial floor_tls HOST PORTS N CA_FILE SERVER_NAME  OpenSSL's floor
 *
 * PORTS is a port, or a range FIRST-LAST dialed in turn (dial i goes to
 * FIRST + i mod the count): the client closes first, so each dial leaves a
 * TIME_WAIT socket holding its 4-tuple, and at tens of thousands of dials a
 * second to one port the kernel's search for a free ephemeral port
 * (__inet_hash_connect) would become most of what is measured.
 *
 * plain: wv_dial_host(HOST, port) (a numeric HOST: no resolver), then
 * wv_stream_close: socket, non-blocking connect, TCP_NODELAY, close.
 * tls: the same with wv_dial_opts.tls, a client context trusting CA_FILE
 * alone (wv_tls_ctx_client), and SERVER_NAME as SNI and the name the
 * certificate is checked against: a full TLS handshake with the server's
 * certificate verified; then wv_stream_close (our close_notify, and the
 * socket closed). Every connection must have come up (TLS: as TLSv1.3).
 *
 * floor and floor_tls measure what is left without weave: a plain C loop,
 * no runtime, blocking sockets. floor: socket, TCP_NODELAY, connect, close;
 * floor_tls: the same with OpenSSL driven directly (a context made as
 * wv_tls_ctx_client makes one: TLS 1.2-1.3, the CA file, the host name
 * checked), SSL_connect, SSL_shutdown (our close_notify), close. What any
 * client on this machine pays at least: the kernel's TCP work (on loopback
 * both ends of the handshake run on the client's CPU) and OpenSSL's.
 *
 * N/20 dials (at least 50) warm up first; the N that follow are timed with
 * CLOCK_MONOTONIC. Prints `value=<dials/s>` and a line
 * `dials=N secs=S cpu_s=C` (the process's user + system CPU time during the
 * timed dials) on stdout; any failed dial prints why on stderr and exits 1.
 * bench/net/asyncio_dial.py is the anchor, with the same arguments and
 * output.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <weave/net.h>
#include <weave/rt.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *host, *ca_file, *server_name;
static int port_first, port_count;
static long n_dials;
static bool tls;
static double secs, cpu_s;
static bool done;

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* count dials, each closed at once: 0 or the first failure. */
static int dial_loop(long count, const wv_dial_opts *opts)
{
    for (long i = 0; i < count; i++) {
        wv_stream *s;
        int rc = wv_dial_host(host, port_first + (int)(i % port_count), opts, &s);
        if (rc < 0) {
            fprintf(stderr, "bench_dial: dial %ld of %ld: %s\n", i + 1, count,
                    *wv_errmsg() ? wv_errmsg() : wv_strerror(rc));
            return rc;
        }
        if (tls) {
            const char *v = wv_stream_tls_version(s);
            if (!v || strcmp(v, "TLSv1.3") != 0) {
                fprintf(stderr, "bench_dial: dial %ld: TLS version %s, not TLSv1.3\n", i + 1,
                        v ? v : "(none)");
                wv_stream_close(s);
                return -EPROTO;
            }
        }
        rc = wv_stream_close(s);
        if (rc < 0) {
            fprintf(stderr, "bench_dial: close %ld: %s\n", i + 1, wv_strerror(rc));
            return rc;
        }
    }
    return 0;
}

static int body(void *arg)
{
    (void)arg;
    wv_tls_ctx *ctx = NULL;
    if (tls) {
        int rc = wv_tls_ctx_client(&(wv_tls_opts){.ca_file = ca_file}, &ctx);
        if (rc < 0) {
            fprintf(stderr, "bench_dial: %s\n", wv_errmsg());
            return rc;
        }
    }
    wv_dial_opts opts = {.tls = ctx, .server_name = server_name};
    long warm = n_dials / 20 > 50 ? n_dials / 20 : 50;
    int rc = dial_loop(warm, &opts);
    if (rc == 0) {
        double c0 = cpu_now();
        int64_t t0 = wv_now();
        rc = dial_loop(n_dials, &opts);
        secs = (double)(wv_now() - t0) / 1e9;
        cpu_s = cpu_now() - c0;
        done = rc == 0;
    }
    wv_tls_ctx_free(ctx);
    return rc;
}

/* ---------------------------------------------------- floors: no weave */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int floor_fail(long i, const char *what)
{
    int err = errno;
    unsigned long e = ERR_get_error();
    char why[256];
    if (e)
        ERR_error_string_n(e, why, sizeof why);
    else
        snprintf(why, sizeof why, "%s", strerror(err));
    fprintf(stderr, "bench_dial: dial %ld: %s: %s\n", i + 1, what, why);
    return -1;
}

/* count dials with blocking sockets (and OpenSSL when ctx): 0 or -1. */
static int floor_loop(long count, SSL_CTX *ctx)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (inet_pton(AF_INET, host, &a.sin_addr) != 1) {
        fprintf(stderr, "bench_dial: floor modes take an IPv4 address, not %s\n", host);
        return -1;
    }
    int one = 1;
    for (long i = 0; i < count; i++) {
        a.sin_port = htons((uint16_t)(port_first + (int)(i % port_count)));
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return floor_fail(i, "socket");
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
            floor_fail(i, "connect");
            close(fd);
            return -1;
        }
        if (ctx) {
            SSL *ssl = SSL_new(ctx);
            if (!ssl || !SSL_set_fd(ssl, fd)) {
                SSL_free(ssl);
                close(fd);
                return floor_fail(i, "SSL_new");
            }
            SSL_set_tlsext_host_name(ssl, server_name);
            X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
            X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            X509_VERIFY_PARAM_set1_host(param, server_name, 0);
            if (SSL_connect(ssl) != 1 || SSL_version(ssl) != TLS1_3_VERSION) {
                floor_fail(i, "SSL_connect (or not TLSv1.3)");
                SSL_free(ssl);
                close(fd);
                return -1;
            }
            SSL_shutdown(ssl);
            SSL_free(ssl);
        }
        close(fd);
    }
    return 0;
}

static int run_floor(bool with_tls)
{
    SSL_CTX *ctx = NULL;
    if (with_tls) {
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) ||
            SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
            SSL_CTX_free(ctx);
            return floor_fail(-1, ca_file);
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    long warm = n_dials / 20 > 50 ? n_dials / 20 : 50;
    int rc = floor_loop(warm, ctx);
    if (rc == 0) {
        double c0 = cpu_now();
        int64_t t0 = mono_ns();
        rc = floor_loop(n_dials, ctx);
        secs = (double)(mono_ns() - t0) / 1e9;
        cpu_s = cpu_now() - c0;
        done = rc == 0;
    }
    SSL_CTX_free(ctx);
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_dial plain|floor HOST PORT[-LAST] N\n"
                    "       bench_dial tls|floor_tls HOST PORT[-LAST] N CA_FILE SERVER_NAME\n"
                    "prints value=<dials per second>\n");
}

int main(int argc, char **argv)
{
    bool is_floor = strncmp(argv[argc > 1 ? 1 : 0], "floor", 5) == 0;
    if (argc == 5 && (strcmp(argv[1], "plain") == 0 || strcmp(argv[1], "floor") == 0)) {
        tls = false;
    } else if (argc == 7 && (strcmp(argv[1], "tls") == 0 || strcmp(argv[1], "floor_tls") == 0)) {
        tls = true;
        ca_file = argv[5];
        server_name = argv[6];
    } else {
        usage();
        return 2;
    }
    host = argv[2];
    char *end;
    long first = strtol(argv[3], &end, 10), last = first;
    if (*end == '-')
        last = strtol(end + 1, &end, 10);
    port_first = (int)first;
    port_count = (int)(last - first + 1);
    n_dials = atol(argv[4]);
    if (*end || first <= 0 || last > 65535 || last < first || n_dials <= 0) {
        usage();
        return 2;
    }
    int rc = is_floor ? run_floor(tls) : wv_main(&(wv_main_opts){.shards = 1}, body, NULL);
    if (rc < 0 || !done || secs <= 0) {
        fprintf(stderr, "bench_dial %s: failed (%s)\n", argv[1],
                is_floor ? "see above" : wv_strerror(rc < 0 ? rc : -EPROTO));
        return 1;
    }
    printf("value=%.1f\n", (double)n_dials / secs);
    printf("dials=%ld secs=%.4f cpu_s=%.4f\n", n_dials, secs, cpu_s);
    return 0;
}
