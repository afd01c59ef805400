/*
 * wv_stream (include/weave/net.h): one connection, over a plain socket or
 * TLS, with the same calls for both, so no client or protocol ever asks
 * which it holds.
 *
 * A plain stream is the runtime's socket helpers (wv_read, wv_writev,
 * wv_sendfile) plus nothing: the HTTP server's hot path costs one branch.
 *
 * On TLS, OpenSSL reads and writes the non-blocking socket through a BIO
 * of ours (sock_bio below: read and write on the fd, no memory BIOs, no
 * copies), with read-ahead on so one read takes a whole record, header and
 * body, and usually the next ones. The BIO remembers a short read: the
 * socket is empty then, so the next read OpenSSL asks for is answered
 * "try again" without a system call, and the fiber waits for readiness
 * (as wv_read does for plain sockets). OpenSSL's WANT_READ / WANT_WRITE
 * become those waits (WV_FRESH after a real EAGAIN: older readiness is
 * stale then) and the call is made again with the same arguments. The
 * shard is one thread, so an SSL object is never entered twice at once; a
 * reader and a writer fiber may share a stream (a WebSocket's reader and
 * its hub writer).
 *
 * wv_stream_try_writev never suspends. On TLS, a record OpenSSL could not
 * send whole must be offered again with the same bytes, so it is copied
 * into the stream (`owed`) and counted as taken: the next write, or
 * wv_stream_flush, sends it first. wv_stream_unsent says whether anything
 * is owed, so a caller that wrote its last bytes with try_writev knows it
 * must flush.
 */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "net/net_internal.h"

enum { CLOSE_WAIT_MS = 1000, RECORD = 16384 };

struct wv_stream {
    int fd;
    SSL *ssl;         /* NULL: plain */
    bool interrupted; /* wv_stream_interrupt: reads and waits give -EBADF */
    bool broken;      /* TLS failed fatally: no close_notify at the end */
    bool shut;        /* our close_notify (or FIN) went */
    bool maybe_more;  /* the last read filled its buffer: the socket may hold more */
    bool not_socket;  /* a pipe (tests): read and write, not recv and send */
    bool drained;     /* TLS: the BIO's last read came back short: the socket is empty */
    bool stale;       /* TLS: a real EAGAIN was seen: older readiness is stale */
    char alpn[32];
    char *owed; /* TLS: a record to offer again before anything else */
    size_t owed_n;
};

int wv_stream_open(int fd, wv_stream **out)
{
    *out = NULL;
    if (fd < 0)
        return -EBADF;
    wv_stream *s = calloc(1, sizeof *s);
    if (!s) {
        wv_close(fd);
        return -ENOMEM;
    }
    s->fd = fd;
    *out = s;
    return 0;
}

int wv_stream_fd(const wv_stream *s)
{
    return s->fd;
}

bool wv_stream_is_tls(const wv_stream *s)
{
    return s->ssl != NULL;
}

const char *wv_stream_alpn(const wv_stream *s)
{
    return s->alpn[0] ? s->alpn : NULL;
}

const char *wv_stream_tls_version(const wv_stream *s)
{
    return s->ssl ? SSL_get_version(s->ssl) : NULL;
}

/* ------------------------------------------------------------ TLS waits */

/*
 * After an SSL call returned r <= 0: wait as OpenSSL asks and return 0 to
 * call again, 1 for the peer's close_notify, or an error.
 */
static int tls_wait(wv_stream *s, int r, const char *what)
{
    int err = SSL_get_error(s->ssl, r);
    int events;
    switch (err) {
    case SSL_ERROR_WANT_READ:
        events = WV_IN;
        break;
    case SSL_ERROR_WANT_WRITE:
        events = WV_OUT;
        break;
    case SSL_ERROR_ZERO_RETURN:
        return 1;
    case SSL_ERROR_SYSCALL: {
        int e = errno;
        ERR_clear_error();
        s->broken = true;
        return e && e != EAGAIN ? wv_fail(-e, "%s: %s", what, wv_strerror(-e))
                                : wv_fail(-ECONNRESET, "%s: the peer went away", what);
    }
    default: {
        s->broken = true;
        unsigned long e = ERR_peek_error();
        if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            return wv_fail(-ECONNRESET, "%s: the peer closed without close_notify", what);
        }
        return tls_fail(what);
    }
    }
    if (s->interrupted && events == WV_IN)
        return -EBADF;
    /* after our own "try again" for a drained socket, readiness that came
     * since the short read counts; after a real EAGAIN it is stale */
    int fresh = events == WV_OUT || s->stale ? WV_FRESH : 0;
    s->stale = false;
    for (;;) {
        int rc = wv_fd_wait(s->fd, events | fresh, WV_NEVER);
        if (rc != -EBUSY)
            return rc < 0 ? rc : 0;
        /* the other direction's fiber waits on it already (a read that
         * must write, during a write): let it finish first */
        rc = wv_sleep_ms(1);
        if (rc < 0)
            return rc;
    }
}

/* ------------------------------------------------------------ handshakes */

static int handshake(wv_stream *s, const char *what)
{
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(s->ssl);
        if (r == 1) {
            const unsigned char *p;
            unsigned n;
            SSL_get0_alpn_selected(s->ssl, &p, &n);
            if (n && n < sizeof s->alpn) {
                memcpy(s->alpn, p, n);
                s->alpn[n] = '\0';
            }
            return 0;
        }
        int rc = tls_wait(s, r, what);
        if (rc == 1)
            rc = wv_fail(-ECONNRESET, "%s: the peer closed during the handshake", what);
        if (rc < 0) {
            long v = SSL_get_verify_result(s->ssl);
            if (rc == -EPROTO && v != X509_V_OK)
                rc = wv_fail(-EPROTO, "%s: certificate verify failed: %s", what,
                             X509_verify_cert_error_string(v));
            return rc;
        }
    }
}

/* ------------------------------------------------------------- the BIO */

static int sock_bio_read(BIO *b, char *buf, size_t n, size_t *got)
{
    wv_stream *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    *got = 0;
    if (s->drained) { /* the last read emptied the socket: wait, do not ask */
        s->drained = false;
        BIO_set_retry_read(b);
        return 0;
    }
    for (;;) {
        ssize_t r = read(s->fd, buf, n);
        if (r > 0) {
            *got = (size_t)r;
            s->drained = (size_t)r < n;
            s->maybe_more = !s->drained;
            return 1;
        }
        if (r == 0)
            return 0; /* the end: no retry flag */
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN) {
            s->stale = true;
            s->maybe_more = false;
            BIO_set_retry_read(b);
        }
        return 0;
    }
}

static int sock_bio_write(BIO *b, const char *buf, size_t n, size_t *put)
{
    wv_stream *s = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    *put = 0;
    for (;;) {
        ssize_t w = send(s->fd, buf, n, MSG_NOSIGNAL);
        if (w >= 0) {
            *put = (size_t)w;
            return 1;
        }
        if (errno == EINTR)
            continue;
        if (errno == ENOTSOCK) { /* a pipe in a test */
            w = write(s->fd, buf, n);
            if (w >= 0) {
                *put = (size_t)w;
                return 1;
            }
        }
        if (errno == EAGAIN)
            BIO_set_retry_write(b);
        return 0;
    }
}

static long sock_bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)b;
    (void)num;
    (void)ptr;
    return cmd == BIO_CTRL_FLUSH ? 1 : 0; /* writes are not buffered here */
}

static BIO_METHOD *sock_method;
static pthread_once_t sock_method_once = PTHREAD_ONCE_INIT;

static void make_sock_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weave socket");
    if (m && BIO_meth_set_read_ex(m, sock_bio_read) && BIO_meth_set_write_ex(m, sock_bio_write) &&
        BIO_meth_set_ctrl(m, sock_bio_ctrl))
        sock_method = m;
}

static BIO *sock_bio_new(wv_stream *s)
{
    pthread_once(&sock_method_once, make_sock_method);
    BIO *b = sock_method ? BIO_new(sock_method) : NULL;
    if (b) {
        BIO_set_data(b, s);
        BIO_set_init(b, 1);
    }
    return b;
}

static int tls_begin(wv_stream *s, wv_tls_ctx *ctx)
{
    if (s->ssl)
        return wv_fail(-EALREADY, "TLS is already running on this stream");
    if (wv_shard_id() < 0)
        return -EPERM;
    SSL *ssl = tls_ctx_new_ssl(ctx);
    BIO *bio = ssl ? sock_bio_new(s) : NULL;
    if (!bio) {
        int rc = tls_fail("SSL_new");
        SSL_free(ssl);
        return rc;
    }
    SSL_set_bio(ssl, bio, bio); /* the SSL owns it now */
    s->drained = s->stale = s->maybe_more = false;
    s->ssl = ssl;
    s->broken = s->shut = false;
    return 0;
}

static int tls_end_failed(wv_stream *s, int rc)
{
    SSL_free(s->ssl);
    s->ssl = NULL;
    s->broken = true;
    return rc;
}

int wv_stream_start_tls(wv_stream *s, wv_tls_ctx *ctx, const char *server_name)
{
    if (!ctx && !(ctx = wv_tls_ctx_default()))
        return -EPROTO;
    if (tls_ctx_is_server(ctx))
        return wv_fail(-EINVAL, "a server's TLS context cannot start a client handshake");
    int rc = tls_begin(s, ctx);
    if (rc < 0)
        return rc;
    SSL_set_connect_state(s->ssl);
    if (server_name && *server_name) {
        unsigned char addr[16];
        bool is_ip = inet_pton(AF_INET, server_name, addr) == 1 ||
                     inet_pton(AF_INET6, server_name, addr) == 1;
        X509_VERIFY_PARAM *param = SSL_get0_param(s->ssl);
        if (is_ip) {
            X509_VERIFY_PARAM_set1_ip_asc(param, server_name);
        } else {
            SSL_set_tlsext_host_name(s->ssl, server_name); /* SNI: names only */
            X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            X509_VERIFY_PARAM_set1_host(param, server_name, 0);
        }
    }
    rc = handshake(s, "TLS handshake");
    return rc < 0 ? tls_end_failed(s, rc) : 0;
}

int wv_stream_accept_tls(wv_stream *s, wv_tls_ctx *ctx)
{
    if (!ctx || !tls_ctx_is_server(ctx))
        return wv_fail(-EINVAL, "accepting TLS needs a server context");
    int rc = tls_begin(s, ctx);
    if (rc < 0)
        return rc;
    SSL_set_accept_state(s->ssl);
    rc = handshake(s, "TLS handshake");
    return rc < 0 ? tls_end_failed(s, rc) : 0;
}

/* ---------------------------------------------------------------- reads */

ssize_t wv_stream_read(wv_stream *s, void *buf, size_t n)
{
    if (s->interrupted)
        return -EBADF;
    if (!s->ssl) {
        ssize_t r = s->not_socket ? wv_read(s->fd, buf, n) : wv_recv(s->fd, buf, n, 0);
        if (r == -ENOTSOCK) {
            s->not_socket = true;
            r = wv_read(s->fd, buf, n);
        }
        s->maybe_more = r > 0 && (size_t)r == n; /* a short read emptied the socket */
        return r;
    }
    if (s->broken)
        return -EPIPE;
    for (;;) {
        size_t got = 0;
        ERR_clear_error();
        int r = SSL_read_ex(s->ssl, buf, n, &got);
        if (r == 1)
            return (ssize_t)got;
        int rc = tls_wait(s, r, "TLS read");
        if (rc == 1)
            return 0;
        if (rc < 0)
            return rc;
    }
}

size_t wv_stream_pending(const wv_stream *s)
{
    if (!s->ssl)
        return 0;
    int n = SSL_pending(s->ssl); /* decrypted; read-ahead bytes not yet decrypted are not counted */
    return n > 0 ? (size_t)n : 0;
}

/*
 * Readiness is edge-triggered: after a read that did not empty the socket
 * no new edge may come, so input that may still be there is reported at
 * once (the read that follows finds it, or waits properly). Both kinds of
 * stream know: a read that filled its buffer may have left bytes behind,
 * a short one emptied the socket; and TLS bytes may wait inside OpenSSL.
 */
int wv_stream_wait(wv_stream *s, int events, int64_t at)
{
    if (s->interrupted)
        return -EBADF;
    if (events & WV_IN) {
        if (s->maybe_more || (s->ssl && SSL_has_pending(s->ssl)))
            return WV_IN;
        if (s->ssl)
            s->drained = false; /* the wait below is the one the short read owed */
    }
    return wv_fd_wait(s->fd, events & (WV_IN | WV_OUT), at);
}

/* --------------------------------------------------------------- writes */

/* One SSL_write of up to a record, suspending until it is sent: 0 or an
 * error. */
static int tls_write_all(wv_stream *s, const char *p, size_t n)
{
    while (n) {
        size_t put = 0;
        ERR_clear_error();
        int r = SSL_write_ex(s->ssl, p, n, &put);
        if (r == 1) {
            p += put;
            n -= put;
            continue;
        }
        int rc = tls_wait(s, r, "TLS write");
        if (rc == 1)
            return -EPIPE;
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Offer the owed record again. wait: suspend until it is sent. 0 when
 * nothing is owed any more, 1 when it is still owed (not waiting), or an
 * error. */
static int pay_owed(wv_stream *s, bool wait)
{
    if (!s->owed_n)
        return 0;
    if (wait) {
        int rc = tls_write_all(s, s->owed, s->owed_n);
        if (rc < 0)
            return rc;
    } else {
        for (size_t off = 0; off < s->owed_n;) {
            size_t put = 0;
            ERR_clear_error();
            int r = SSL_write_ex(s->ssl, s->owed + off, s->owed_n - off, &put);
            if (r == 1) {
                off += put;
                continue;
            }
            int err = SSL_get_error(s->ssl, r);
            if (err == SSL_ERROR_WANT_WRITE || err == SSL_ERROR_WANT_READ) {
                memmove(s->owed, s->owed + off, s->owed_n - off);
                s->owed_n -= off;
                return 1;
            }
            return tls_wait(s, r, "TLS write"); /* an error: it does not wait */
        }
    }
    free(s->owed);
    s->owed = NULL;
    s->owed_n = 0;
    return 0;
}

ssize_t wv_stream_write(wv_stream *s, const void *buf, size_t n)
{
    if (!s->ssl && !s->not_socket) { /* send(2): no VFS layer on the way */
        ssize_t w = wv_send(s->fd, buf, n, 0);
        if (w != -ENOTSOCK)
            return w;
        s->not_socket = true;
    }
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
    return wv_stream_writev(s, &iov, 1);
}

/* TLS's writev, apart: its 16 KiB gathering buffer would otherwise sit in
 * the plain path's frame and push every callee of a plain write 16 KiB
 * deeper, costing each connection's fiber stack pages it never needs. */
static __attribute__((noinline)) ssize_t tls_writev(wv_stream *s, const struct iovec *iov,
                                                    int iovcnt)
{
    if (s->broken || s->shut)
        return -EPIPE;
    if (iovcnt < 0)
        return -EINVAL;
    int rc = pay_owed(s, true);
    if (rc < 0)
        return rc;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (iovcnt > 1 && total <= RECORD) {
        /* small frames gathered into one record; the buffer stays put
         * while OpenSSL may ask for the same bytes again */
        char tmp[RECORD];
        size_t at = 0;
        for (int i = 0; i < iovcnt; i++) {
            if (iov[i].iov_len)
                memcpy(tmp + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
        rc = tls_write_all(s, tmp, total);
        return rc < 0 ? rc : (ssize_t)total;
    }
    for (int i = 0; i < iovcnt; i++) {
        rc = tls_write_all(s, iov[i].iov_base, iov[i].iov_len);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)total;
}

ssize_t wv_stream_writev(wv_stream *s, const struct iovec *iov, int iovcnt)
{
    if (!s->ssl)
        return wv_writev(s->fd, iov, iovcnt);
    return tls_writev(s, iov, iovcnt);
}

ssize_t wv_stream_write_more(wv_stream *s, const void *buf, size_t n)
{
    if (s->ssl)
        return wv_stream_write(s, buf, n);
    size_t off = 0;
    while (off < n) {
        ssize_t w = send(s->fd, (const char *)buf + off, n - off, MSG_MORE | MSG_NOSIGNAL);
        if (w > 0) {
            off += (size_t)w;
        } else if (w < 0 && errno == EAGAIN) {
            int rc = wv_fd_wait(s->fd, WV_OUT | WV_FRESH, WV_NEVER);
            if (rc < 0)
                return rc;
        } else if (w < 0 && errno != EINTR) {
            if (errno != ENOTSOCK)
                return -errno;
            ssize_t r = wv_write(s->fd, (const char *)buf + off, n - off);
            return r < 0 ? r : (ssize_t)n;
        }
    }
    return (ssize_t)n;
}

static ssize_t plain_try_writev(wv_stream *s, const struct iovec *iov, int iovcnt)
{
    for (;;) {
        ssize_t w = writev(s->fd, iov, iovcnt);
        if (w >= 0)
            return w;
        if (errno == EINTR)
            continue;
        return errno == EAGAIN ? 0 : -errno;
    }
}

ssize_t wv_stream_try_writev(wv_stream *s, const struct iovec *iov, int iovcnt)
{
    if (iovcnt < 0)
        return -EINVAL;
    if (!s->ssl)
        return plain_try_writev(s, iov, iovcnt);
    if (s->broken || s->shut)
        return -EPIPE;
    int rc = pay_owed(s, false);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    /* records of up to 16 KiB gathered from the iovecs; no fiber runs
     * while this does, so one buffer serves the thread */
    static _Thread_local char gather[RECORD];
    size_t taken = 0;
    int i = 0;
    size_t off = 0; /* into iov[i] */
    while (i < iovcnt) {
        size_t n = 0;
        while (i < iovcnt && n < RECORD) {
            size_t take = iov[i].iov_len - off;
            if (take > RECORD - n)
                take = RECORD - n;
            memcpy(gather + n, (const char *)iov[i].iov_base + off, take);
            n += take;
            off += take;
            if (off == iov[i].iov_len) {
                i++;
                off = 0;
            }
        }
        if (n == 0)
            break;
        size_t put = 0;
        ERR_clear_error();
        int r = SSL_write_ex(s->ssl, gather, n, &put);
        if (r == 1 && put == n) {
            taken += n;
            continue;
        }
        if (r == 1) { /* part of it went: keep the rest as owed */
            taken += put;
            n -= put;
            memmove(gather, gather + put, n);
        } else {
            int err = SSL_get_error(s->ssl, r);
            if (err != SSL_ERROR_WANT_WRITE && err != SSL_ERROR_WANT_READ)
                return taken ? (ssize_t)taken : tls_wait(s, r, "TLS write");
        }
        /* OpenSSL holds (part of) this record: it must be offered again */
        s->owed = malloc(n);
        if (!s->owed) {
            s->broken = true;
            return -ENOMEM;
        }
        memcpy(s->owed, gather, n);
        s->owed_n = n;
        return (ssize_t)(taken + n);
    }
    return (ssize_t)taken;
}

ssize_t wv_stream_try_write(wv_stream *s, const void *buf, size_t n)
{
    if (!s->ssl && !s->not_socket) {
        for (;;) {
            ssize_t w = send(s->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w >= 0)
                return w;
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN)
                return 0;
            if (errno != ENOTSOCK)
                return -errno;
            s->not_socket = true;
            break;
        }
    }
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
    return wv_stream_try_writev(s, &iov, 1);
}

size_t wv_stream_unsent(const wv_stream *s)
{
    return s->owed_n;
}

int wv_stream_flush(wv_stream *s)
{
    if (!s->ssl || !s->owed_n)
        return 0;
    return pay_owed(s, true);
}

/* sendfile through TLS: read and written (noinline for the same reason
 * as tls_writev). */
static __attribute__((noinline)) ssize_t tls_sendfile(wv_stream *s, int file_fd, off_t *offset,
                                                      size_t count)
{
    char buf[RECORD];
    size_t sent = 0;
    while (sent < count) {
        size_t want = count - sent < sizeof buf ? count - sent : sizeof buf;
        ssize_t r = pread(file_fd, buf, want, *offset);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break; /* end of file */
        ssize_t w = wv_stream_write(s, buf, (size_t)r);
        if (w < 0)
            return w;
        *offset += r;
        sent += (size_t)r;
    }
    return (ssize_t)sent;
}

ssize_t wv_stream_sendfile(wv_stream *s, int file_fd, off_t *offset, size_t count)
{
    if (!s->ssl)
        return wv_sendfile(s->fd, file_fd, offset, count);
    return tls_sendfile(s, file_fd, offset, count);
}

/* ------------------------------------------------------------- closing */

/* Our close_notify, within CLOSE_WAIT_MS; the peer's is not waited for
 * (RFC 8446 6.1 lets the closer go once its own is sent). */
static void close_notify(wv_stream *s)
{
    if (!s->ssl || s->broken || s->shut || wv_shard_id() < 0)
        return;
    s->shut = true;
    int64_t old = wv_deadline_set(wv_after_ms(CLOSE_WAIT_MS));
    if (pay_owed(s, true) == 0) {
        for (int i = 0; i < 8; i++) {
            ERR_clear_error();
            int r = SSL_shutdown(s->ssl);
            if (r >= 0)
                break;
            if (tls_wait(s, r, "TLS close") != 0)
                break;
        }
    }
    ERR_clear_error();
    wv_deadline_set(old);
}

int wv_stream_shutdown(wv_stream *s, int how)
{
    if (how == SHUT_RDWR) {
        /* given up: no goodbye; a reader wakes to the end, writes fail */
        s->broken = true;
        return shutdown(s->fd, SHUT_RDWR) < 0 ? -errno : 0;
    }
    if (how != SHUT_WR)
        return -EINVAL;
    close_notify(s);
    s->shut = true;
    return shutdown(s->fd, SHUT_WR) < 0 ? -errno : 0;
}

void wv_stream_interrupt(wv_stream *s)
{
    s->interrupted = true;
    wv_fd_forget(s->fd);
}

int wv_stream_close(wv_stream *s)
{
    if (!s)
        return 0;
    close_notify(s);
    int rc = wv_close(s->fd);
    SSL_free(s->ssl);
    free(s->owed);
    free(s);
    return rc;
}

/* ------------------------------------------------------------ addresses */

int wv_stream_peer_addr(const wv_stream *s, struct sockaddr_storage *addr, socklen_t *len)
{
    *len = sizeof *addr;
    return getpeername(s->fd, (struct sockaddr *)addr, len) < 0 ? -errno : 0;
}

int wv_stream_local_addr(const wv_stream *s, struct sockaddr_storage *addr, socklen_t *len)
{
    *len = sizeof *addr;
    return getsockname(s->fd, (struct sockaddr *)addr, len) < 0 ? -errno : 0;
}

size_t wv_addr_format(const struct sockaddr *addr, socklen_t len, char *out, size_t cap)
{
    char host[INET6_ADDRSTRLEN] = "?";
    int n;
    if (cap == 0)
        return 0;
    if (addr->sa_family == AF_INET && len >= (socklen_t)sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        n = snprintf(out, cap, "%s:%u", host, ntohs(a->sin_port));
    } else if (addr->sa_family == AF_INET6 && len >= (socklen_t)sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        n = snprintf(out, cap, "[%s]:%u", host, ntohs(a->sin6_port));
    } else if (addr->sa_family == AF_UNIX) {
        const struct sockaddr_un *a = (const struct sockaddr_un *)addr;
        size_t pathlen = len > offsetof(struct sockaddr_un, sun_path)
                             ? (size_t)len - offsetof(struct sockaddr_un, sun_path)
                             : 0;
        if (pathlen && a->sun_path[0])
            n = snprintf(out, cap, "unix:%.*s", (int)strnlen(a->sun_path, pathlen), a->sun_path);
        else
            n = snprintf(out, cap, "unix");
    } else {
        n = snprintf(out, cap, "?");
    }
    if (n < 0)
        return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}
