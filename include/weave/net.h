/*
 * weave's net layer: TLS over the runtime's non-blocking sockets (OpenSSL 3).
 *
 * A wv_tls wraps a connected socket; its handshake, reads and writes
 * suspend only the calling fiber (OpenSSL's WANT_READ / WANT_WRITE become
 * waits on the socket), and honour the fiber's deadline and cancellation
 * like every weave call:
 *
 *     wv_tls_ctx *ctx;
 *     wv_tls_ctx_client(NULL, &ctx);                 // the system's CAs
 *     int fd = ...;                                  // connected (wv_connect)
 *     wv_tls *t;
 *     if (wv_tls_connect(ctx, fd, "example.com", &t) == 0) {
 *         wv_tls_write(t, "GET / HTTP/1.1\r\n...", n);
 *         ssize_t got = wv_tls_read(t, buf, sizeof buf);
 *         wv_tls_close(t);                           // close_notify, then free
 *     }
 *     wv_close(fd);
 *
 * A client verifies the server's certificate chain and that it names the
 * host (and sends it as SNI) unless told not to. Errors are negative errno
 * values: -EPROTO for a TLS failure (wv_errmsg() has OpenSSL's reason, such
 * as "certificate verify failed"), -ECONNRESET when the peer went away
 * without a close_notify, -ETIMEDOUT / -ECANCELED.
 *
 * A wv_tls belongs to the shard that made it. Two fibers may use one at the
 * same time, one reading and one writing (a WebSocket's reader and its
 * writer); writes from several fibers must be serialized by the caller.
 */
#ifndef WEAVE_NET_H
#define WEAVE_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "weave/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_tls_ctx wv_tls_ctx;
typedef struct wv_tls wv_tls;

typedef struct wv_tls_opts {
    /* client: the CAs to trust (a PEM file); NULL = the system's store */
    const char *ca_file;
    /* client: skip verifying the server (never in production) */
    bool insecure;
    /* server: the certificate chain and its private key (PEM files) */
    const char *cert_file, *key_file;
} wv_tls_opts;

/* A context for client connections; opts may be NULL. -EPROTO (a CA file
 * that cannot be loaded: wv_errmsg says why), -ENOMEM. Shareable by every
 * shard; free it after the last connection made with it. */
int wv_tls_ctx_client(const wv_tls_opts *opts, wv_tls_ctx **out);

/* A context for server connections: cert_file and key_file are required.
 * -EINVAL without them, -EPROTO when they do not load or do not match. */
int wv_tls_ctx_server(const wv_tls_opts *opts, wv_tls_ctx **out);

void wv_tls_ctx_free(wv_tls_ctx *ctx);

/* Handshake as a client on connected socket fd, for `host` (SNI and the
 * name checked in the certificate; an IP address is checked as one). The
 * fd stays the caller's: close it after wv_tls_close. */
int wv_tls_connect(wv_tls_ctx *ctx, int fd, const char *host, wv_tls **out);

/* Handshake as a server on an accepted socket fd. */
int wv_tls_accept(wv_tls_ctx *ctx, int fd, wv_tls **out);

/* Read up to n bytes: > 0, 0 once the peer has closed cleanly
 * (close_notify), or an error. Suspends until some data is there. */
ssize_t wv_tls_read(wv_tls *t, void *buf, size_t n);

/* Write all n bytes (suspending as needed): n, or an error. */
ssize_t wv_tls_write(wv_tls *t, const void *buf, size_t n);

/* Write every iovec in full: the total, or an error. */
ssize_t wv_tls_writev(wv_tls *t, const struct iovec *iov, int iovcnt);

/* Decrypted bytes buffered inside, readable without waiting. */
size_t wv_tls_pending(const wv_tls *t);

/* Send close_notify (best effort, within 1 s) and free. NULL is ignored. */
void wv_tls_close(wv_tls *t);

#ifdef __cplusplus
}
#endif

#endif
