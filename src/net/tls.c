/*
 * TLS on the runtime's sockets (include/weave/net.h), with OpenSSL 3.
 *
 * OpenSSL reads and writes the non-blocking socket itself; when it says
 * WANT_READ or WANT_WRITE the fiber waits for a new edge on the socket
 * (fd_wait_again: the EAGAIN OpenSSL just saw makes older readiness
 * stale) and calls again with the same arguments. Nothing else is needed:
 * the shard is one thread, so an SSL object is never entered twice at once.
 */
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rt/rt_internal.h"
#include "weave/net.h"

enum { CLOSE_WAIT_MS = 1000 };

struct wv_tls_ctx {
    SSL_CTX *ssl;
};

struct wv_tls {
    SSL *ssl;
    int fd;
    bool broken; /* a fatal error: no close_notify at the end */
};

/* -EPROTO with OpenSSL's reason (the oldest queued error) as the message. */
static int ssl_fail(const char *what)
{
    unsigned long e = ERR_peek_error();
    char why[256] = "unknown error";
    if (e)
        ERR_error_string_n(e, why, sizeof why);
    ERR_clear_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    return wv_fail(-EPROTO, "%s: %s", what, reason ? reason : why);
}

static int ctx_new(SSL_CTX **out, const SSL_METHOD *method)
{
    SSL_CTX *c = SSL_CTX_new(method);
    if (!c)
        return ssl_fail("SSL_CTX_new");
    SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
    /* a retried write may come from a moved buffer (a WebSocket frame
     * assembled again), and partial writes are ours to finish */
    SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
    *out = c;
    return 0;
}

int wv_tls_ctx_client(const wv_tls_opts *o, wv_tls_ctx **out)
{
    wv_tls_opts opts = o ? *o : (wv_tls_opts){0};
    *out = NULL;
    wv_tls_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return -ENOMEM;
    int rc = ctx_new(&ctx->ssl, TLS_client_method());
    if (rc == 0) {
        if (opts.insecure) {
            SSL_CTX_set_verify(ctx->ssl, SSL_VERIFY_NONE, NULL);
        } else {
            SSL_CTX_set_verify(ctx->ssl, SSL_VERIFY_PEER, NULL);
            int ok = opts.ca_file ? SSL_CTX_load_verify_locations(ctx->ssl, opts.ca_file, NULL)
                                  : SSL_CTX_set_default_verify_paths(ctx->ssl);
            if (!ok)
                rc = ssl_fail(opts.ca_file ? opts.ca_file : "the system's CA store");
        }
    }
    if (rc < 0) {
        wv_tls_ctx_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

int wv_tls_ctx_server(const wv_tls_opts *o, wv_tls_ctx **out)
{
    *out = NULL;
    if (!o || !o->cert_file || !o->key_file)
        return wv_fail(-EINVAL, "a TLS server needs cert_file and key_file");
    wv_tls_ctx *ctx = calloc(1, sizeof *ctx);
    if (!ctx)
        return -ENOMEM;
    int rc = ctx_new(&ctx->ssl, TLS_server_method());
    if (rc == 0 && SSL_CTX_use_certificate_chain_file(ctx->ssl, o->cert_file) != 1)
        rc = ssl_fail(o->cert_file);
    if (rc == 0 && SSL_CTX_use_PrivateKey_file(ctx->ssl, o->key_file, SSL_FILETYPE_PEM) != 1)
        rc = ssl_fail(o->key_file);
    if (rc == 0 && SSL_CTX_check_private_key(ctx->ssl) != 1)
        rc = ssl_fail("the key does not match the certificate");
    if (rc < 0) {
        wv_tls_ctx_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

void wv_tls_ctx_free(wv_tls_ctx *ctx)
{
    if (!ctx)
        return;
    SSL_CTX_free(ctx->ssl);
    free(ctx);
}

/*
 * After an SSL call returned r <= 0: wait as OpenSSL asks and return 0 to
 * retry, 1 for a clean close (close_notify), or an error.
 */
static int io_wait(wv_tls *t, int r, const char *what)
{
    int err = SSL_get_error(t->ssl, r);
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
        t->broken = true;
        return e && e != EAGAIN ? -e : wv_fail(-ECONNRESET, "%s: the peer went away", what);
    }
    default: {
        t->broken = true;
        unsigned long e = ERR_peek_error();
        if (ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
            ERR_clear_error();
            return wv_fail(-ECONNRESET, "%s: the peer closed without close_notify", what);
        }
        return ssl_fail(what);
    }
    }
    for (;;) {
        int rc = fd_wait_again(t->fd, events);
        if (rc != -EBUSY)
            return rc < 0 ? rc : 0;
        /* the other direction's fiber waits on it already (a read that
         * must write, during a write): let it finish first */
        rc = wv_sleep_ms(1);
        if (rc < 0)
            return rc;
    }
}

static int tls_new(wv_tls_ctx *ctx, int fd, wv_tls **out)
{
    *out = NULL;
    if (!ctx || fd < 0)
        return -EINVAL;
    if (wv_shard_id() < 0)
        return -EPERM;
    wv_tls *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->fd = fd;
    t->ssl = SSL_new(ctx->ssl);
    if (!t->ssl || !SSL_set_fd(t->ssl, fd)) {
        int rc = ssl_fail("SSL_new");
        SSL_free(t->ssl);
        free(t);
        return rc;
    }
    *out = t;
    return 0;
}

static int handshake(wv_tls *t, const char *what)
{
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        if (r == 1)
            return 0;
        int rc = io_wait(t, r, what);
        if (rc == 1)
            rc = wv_fail(-ECONNRESET, "%s: the peer closed during the handshake", what);
        if (rc < 0) {
            long v = SSL_get_verify_result(t->ssl);
            if (rc == -EPROTO && v != X509_V_OK)
                rc = wv_fail(-EPROTO, "%s: certificate verify failed: %s", what,
                             X509_verify_cert_error_string(v));
            return rc;
        }
    }
}

int wv_tls_connect(wv_tls_ctx *ctx, int fd, const char *host, wv_tls **out)
{
    wv_tls *t;
    int rc = tls_new(ctx, fd, &t);
    if (rc < 0)
        return rc;
    SSL_set_connect_state(t->ssl);
    if (host && *host) {
        unsigned char addr[16];
        bool is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
        X509_VERIFY_PARAM *param = SSL_get0_param(t->ssl);
        if (is_ip) {
            X509_VERIFY_PARAM_set1_ip_asc(param, host);
        } else {
            SSL_set_tlsext_host_name(t->ssl, host); /* SNI: names only */
            X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            X509_VERIFY_PARAM_set1_host(param, host, 0);
        }
    }
    rc = handshake(t, "TLS handshake");
    if (rc < 0) {
        t->broken = true;
        wv_tls_close(t);
        return rc;
    }
    *out = t;
    return 0;
}

int wv_tls_accept(wv_tls_ctx *ctx, int fd, wv_tls **out)
{
    wv_tls *t;
    int rc = tls_new(ctx, fd, &t);
    if (rc < 0)
        return rc;
    SSL_set_accept_state(t->ssl);
    rc = handshake(t, "TLS handshake");
    if (rc < 0) {
        t->broken = true;
        wv_tls_close(t);
        return rc;
    }
    *out = t;
    return 0;
}

ssize_t wv_tls_read(wv_tls *t, void *buf, size_t n)
{
    if (t->broken)
        return -EPIPE;
    for (;;) {
        size_t got = 0;
        ERR_clear_error();
        int r = SSL_read_ex(t->ssl, buf, n, &got);
        if (r == 1)
            return (ssize_t)got;
        int rc = io_wait(t, r, "TLS read");
        if (rc == 1)
            return 0;
        if (rc < 0)
            return rc;
    }
}

ssize_t wv_tls_write(wv_tls *t, const void *buf, size_t n)
{
    const char *p = buf;
    size_t left = n;
    if (t->broken)
        return -EPIPE;
    while (left) {
        size_t put = 0;
        ERR_clear_error();
        int r = SSL_write_ex(t->ssl, p, left, &put);
        if (r == 1) {
            p += put;
            left -= put;
            continue;
        }
        int rc = io_wait(t, r, "TLS write");
        if (rc == 1)
            return -EPIPE;
        if (rc < 0)
            return rc;
    }
    return (ssize_t)n;
}

ssize_t wv_tls_writev(wv_tls *t, const struct iovec *iov, int iovcnt)
{
    /* one record for small frames: gather them when they fit 16 KiB */
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    if (iovcnt > 1 && total <= 16384) {
        char tmp[16384];
        size_t at = 0;
        for (int i = 0; i < iovcnt; i++) {
            if (iov[i].iov_len)
                memcpy(tmp + at, iov[i].iov_base, iov[i].iov_len);
            at += iov[i].iov_len;
        }
        return wv_tls_write(t, tmp, total);
    }
    for (int i = 0; i < iovcnt; i++) {
        ssize_t w = wv_tls_write(t, iov[i].iov_base, iov[i].iov_len);
        if (w < 0)
            return w;
    }
    return (ssize_t)total;
}

size_t wv_tls_pending(const wv_tls *t)
{
    int n = SSL_pending(t->ssl);
    return n > 0 ? (size_t)n : 0;
}

void wv_tls_close(wv_tls *t)
{
    if (!t)
        return;
    if (!t->broken && wv_shard_id() >= 0) {
        /* our close_notify; the peer's is not waited for (RFC 8446 6.1
         * lets the closer go once its own is sent) */
        int64_t old = wv_deadline_set(wv_after_ms(CLOSE_WAIT_MS));
        for (int i = 0; i < 8; i++) {
            ERR_clear_error();
            int r = SSL_shutdown(t->ssl);
            if (r >= 0)
                break;
            if (io_wait(t, r, "TLS close") != 0)
                break;
        }
        wv_deadline_set(old);
    }
    ERR_clear_error();
    SSL_free(t->ssl);
    free(t);
}
