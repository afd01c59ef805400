/*
 * Private parts of the net layer (src/net/), shared by its files: the
 * TLS context's SSL factory (tls.c) for the stream (stream.c), and the
 * dialer's address order and race (dial.c) for its tests.
 */
#ifndef WEAVE_NET_INTERNAL_H
#define WEAVE_NET_INTERNAL_H

#include <openssl/ssl.h>

#include "weave/net.h"

#pragma GCC visibility push(hidden)

/* A new SSL object from ctx's current SSL_CTX (safe during a reload);
 * NULL when OpenSSL fails. */
SSL *tls_ctx_new_ssl(wv_tls_ctx *ctx);
bool tls_ctx_is_server(const wv_tls_ctx *ctx);

/* -EPROTO with OpenSSL's reason for the oldest queued error, as
 * "what: reason" in wv_errmsg(); clears OpenSSL's queue. */
int tls_fail(const char *what);

/* dial.c, apart for the tests: addresses in RFC 8305's order (the
 * families alternating from the first address's, duplicates dropped),
 * and the race of connection attempts over them (the connected socket, or
 * the last error with its message). */
struct addrinfo;
extern _Atomic unsigned long net_lookups; /* getaddrinfo calls made: for the tests */
int net_interleave(const struct addrinfo *res, int port, struct sockaddr_storage *out, int max);
int net_race(const struct sockaddr_storage *addrs, int n, const wv_dial_opts *o);

#pragma GCC visibility pop

#endif
