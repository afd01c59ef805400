/*
 * weave's net layer: the one way a client or server reaches the network.
 *
 *     wv_stream *s;
 *     int rc = wv_dial("rediss://cache.internal:6380", NULL, &s);  // resolve, race, TLS
 *     if (rc < 0)
 *         return rc;                          // wv_errmsg(): "cannot connect to ...: ..."
 *     wv_stream_write(s, "PING\r\n", 6);
 *     ssize_t n = wv_stream_read(s, buf, sizeof buf);
 *     wv_stream_close(s);
 *
 * What lives here:
 *
 *  - wv_stream: one connection, over a plain socket or TLS, with the same
 *    calls for both (read, write, writev, a write that never waits,
 *    sendfile, wait, shutdown, close, addresses). A client never asks
 *    which one it holds.
 *  - wv_url: one parser for every client's URL, and wv_url_redact, the one
 *    way a URL reaches a log line, an error message or a banner (its
 *    password never does).
 *  - wv_resolve / wv_dial: names resolved off the loop, IPv6 and IPv4 raced
 *    as RFC 8305 describes, Unix sockets, TCP options, TLS with SNI and
 *    verification on by default.
 *  - wv_pool: a per-shard pool of connections any client can use;
 *    wv_mux: one connection many fibers share, requests pipelined and
 *    replies handed back in order (Redis, memcached); and wv_retry:
 *    exponential backoff with full jitter for what the caller says is
 *    safe to retry.
 *  - wv_tls_ctx: TLS configuration (OpenSSL 3), for clients and servers,
 *    with ALPN and certificate reload.
 *
 * Conventions (those of include/weave/rt.h): errors are negative errno
 * values with the detail in wv_errmsg(); every suspending call honours the
 * fiber's deadline and cancellation (-ETIMEDOUT, -ECANCELED); objects belong
 * to the shard that made them, except wv_tls_ctx, which every shard may
 * share. Errors you will meet:
 *
 *   -EINVAL        a malformed URL or address, bad options
 *   -EHOSTUNREACH  a name that does not resolve (wv_errmsg: the resolver's words)
 *   -ECONNREFUSED  nothing listens there (every address tried)
 *   -ETIMEDOUT     the deadline passed (the fiber's, or a connect timeout)
 *   -EPROTO        TLS failed: wv_errmsg has OpenSSL's reason, e.g.
 *                  "certificate verify failed: certificate has expired"
 *   -ECONNRESET    the peer went away (TLS: without close_notify)
 *   -EPIPE         writing to a connection that is closed or broken
 *   -EBADF         the stream was interrupted (wv_stream_interrupt)
 */
#ifndef WEAVE_NET_H
#define WEAVE_NET_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "weave/buf.h"
#include "weave/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==================================================================== URLs */

/*
 * scheme://user:password@host:port/path?query#fragment, as RFC 3986 reads
 * it. The scheme is lower-cased; user, password and host are
 * percent-decoded (a host in brackets is an IPv6 literal, kept without
 * them); path, query and fragment stay as written (decode them with
 * wv_url_decode where a client wants text: a database name). Absent parts
 * are NULL, an empty path is "". A host that decodes to an absolute path
 * ("redis://%2Frun%2Fredis.sock") names a Unix socket, and so does
 * "unix:///run/x.sock" (host "", path "/run/x.sock").
 */
typedef struct wv_url_param {
    char *name, *value; /* percent-decoded ('+' stays '+') */
} wv_url_param;

typedef struct wv_url {
    char *scheme;   /* "postgres", "rediss", "https"; never NULL after a parse */
    char *user;     /* NULL when absent */
    char *password; /* NULL when absent; "" for "user:@host" */
    char *host;     /* "" when absent (unix:///path) */
    int port;       /* as written, else the scheme's default (wv_url_default_port), else 0 */
    bool port_given;
    char *path;           /* "" when absent; raw */
    char *query;          /* without the '?'; NULL when absent; raw */
    char *fragment;       /* without the '#'; NULL when absent; raw */
    wv_url_param *params; /* the query split at '&' and the first '=', decoded */
    size_t nparams;
    void *mem_; /* private: one allocation holds every string above */
} wv_url;

/* Parse `text` into *u (zeroed first). -EINVAL with wv_errmsg() naming the
 * problem and showing the URL redacted (no scheme, a bad port, a bad
 * percent-escape, a control character, an unclosed '['); -ENOMEM. Free a
 * parsed URL with wv_url_free. */
int wv_url_parse(const char *text, wv_url *u);

/* Free what wv_url_parse allocated and zero *u. NULL or a zeroed u is
 * harmless. */
void wv_url_free(wv_url *u);

/* The query parameter `name`'s decoded value (the first one), "" for a
 * bare "name", NULL when absent. */
const char *wv_url_param_get(const wv_url *u, const char *name);

/* The port a scheme uses when the URL names none: http/ws 80, https/wss
 * 443, postgres/postgresql 5432, redis/rediss 6379, memcached 11211,
 * amqp 5672, amqps 5671, kafka 9092, grpc 50051, mysql 3306, nats 4222,
 * mqtt 1883; 0 for a scheme we do not know. Case-insensitive. */
int wv_url_default_port(const char *scheme);

/* Whether a scheme means TLS: https, wss, rediss, amqps, grpcs, mqtts,
 * memcacheds. Case-insensitive. */
bool wv_url_scheme_is_tls(const char *scheme);

/* Percent-decode n bytes of `in` into out (cap bytes, NUL-terminated):
 * the decoded length, or -EINVAL for a bad escape or an encoded NUL,
 * -ENOSPC when it does not fit. */
ssize_t wv_url_decode(const char *in, size_t n, char *out, size_t cap);

/*
 * Copy `text` into out (cap bytes, always NUL-terminated, cut at cap - 1)
 * with every secret replaced by "***": the password of a URL's userinfo
 * ("postgres://app:***@db/x"), and the value of a query parameter or a
 * key=value word (libpq's conninfo) whose name contains "pass", "secret",
 * "token" or "key" ("sslpassword", "api_key"). Works on text that is not
 * a valid URL too, so an error message about a bad URL redacts it. This
 * is the only way weave prints a URL: banners, /readyz, logs, errors.
 * Returns the length written.
 */
size_t wv_url_redact(const char *text, char *out, size_t cap);

/* ============================================================ TLS config */

typedef struct wv_tls_ctx wv_tls_ctx;

typedef struct wv_tls_opts {
    /* client: the CAs to trust (a PEM file); NULL = the system's store.
     * server: CAs whose client certificates are accepted (with verify_peer) */
    const char *ca_file;
    /* client: skip verifying the server (never in production) */
    bool insecure;
    /* server: the certificate chain and its private key (PEM files);
     * client: a certificate to present (mutual TLS), optional */
    const char *cert_file, *key_file;
    /* ALPN protocols, comma-separated, most preferred first ("h2,http/1.1").
     * A client offers them; a server picks the first of its own list that
     * the client offers (none in common: the handshake goes on without
     * ALPN). NULL = no ALPN. */
    const char *alpn;
    /* server: ask for and verify a client certificate against ca_file */
    bool verify_peer;
    /* server: no session resumption (no tickets, no session cache), so
     * every handshake is a full one; resumption is on by default */
    bool no_resumption;
} wv_tls_opts;

/* A context for client connections; opts may be NULL. TLS 1.2 and 1.3
 * only. -EPROTO (a CA file that cannot be loaded: wv_errmsg says why),
 * -ENOMEM. Shareable by every shard; free it after the last connection
 * made with it. */
int wv_tls_ctx_client(const wv_tls_opts *opts, wv_tls_ctx **out);

/* The process's default client context (the system's CAs, verification
 * on), made on first use and never freed: what wv_dial uses for a TLS
 * scheme when wv_dial_opts.tls is NULL. NULL if it cannot be made
 * (wv_errmsg says why). */
wv_tls_ctx *wv_tls_ctx_default(void);

/* A context for server connections: cert_file and key_file are required.
 * TLS 1.2 and 1.3 only, session resumption on (tickets, shared by every
 * shard). -EINVAL without them, -EPROTO when they do not load or do not
 * match. */
int wv_tls_ctx_server(const wv_tls_opts *opts, wv_tls_ctx **out);

/* Read the certificate and key files again: handshakes that start after
 * it returns use them; connections already open keep theirs. On any
 * error (-EPROTO, wv_errmsg says which file and why) the context keeps
 * its old certificate. Safe from any shard while others handshake. */
int wv_tls_ctx_reload(wv_tls_ctx *ctx);

void wv_tls_ctx_free(wv_tls_ctx *ctx);

/* ================================================================ streams */

typedef struct wv_stream wv_stream;

/* Wrap a connected (or accepted) non-blocking socket (wv_socket and
 * wv_accept make them so). The stream owns fd from here on, even on
 * failure (-ENOMEM closes it). */
int wv_stream_open(int fd, wv_stream **out);

/* Start TLS as a client on a plain stream: SNI and the name checked in the
 * certificate are `server_name` (an IP address is checked as one; NULL:
 * no name is checked, only with an insecure context). ctx NULL = the
 * default context. On failure the stream is still plain and open, its
 * byte stream no longer usable: close it. */
int wv_stream_start_tls(wv_stream *s, wv_tls_ctx *ctx, const char *server_name);

/* Answer a TLS handshake as a server on a plain stream (see
 * wv_stream_start_tls for failures). */
int wv_stream_accept_tls(wv_stream *s, wv_tls_ctx *ctx);

/* Read up to n bytes: > 0, 0 once the peer has closed (TLS: close_notify),
 * or an error. Suspends until some data is there. */
ssize_t wv_stream_read(wv_stream *s, void *buf, size_t n);

/* Write all n bytes (suspending as needed): n, or an error (bytes may have
 * gone out before it). */
ssize_t wv_stream_write(wv_stream *s, const void *buf, size_t n);

/* Write every iovec in full (the array is not modified): the total, or an
 * error. */
ssize_t wv_stream_writev(wv_stream *s, const struct iovec *iov, int iovcnt);

/* wv_stream_write, telling the kernel that more follows at once
 * (MSG_MORE): a response head sent before wv_stream_sendfile leaves in one
 * packet with the file's first bytes. On TLS, wv_stream_write. */
ssize_t wv_stream_write_more(wv_stream *s, const void *buf, size_t n);

/* Write what can go without waiting, never suspending: the bytes taken
 * (0 when none could be), or an error. Bytes taken are the stream's to
 * deliver: on TLS a record the socket did not take whole is kept and sent
 * first by the next write or by wv_stream_flush. */
ssize_t wv_stream_try_writev(wv_stream *s, const struct iovec *iov, int iovcnt);

/* wv_stream_try_writev of one buffer (on a plain socket, one send(2)). */
ssize_t wv_stream_try_write(wv_stream *s, const void *buf, size_t n);

/* Bytes wv_stream_try_writev took that have not reached the socket yet
 * (a TLS record it kept; always 0 on a plain stream). Whoever wrote last
 * with try_writev and sees this > 0 must call wv_stream_flush. */
size_t wv_stream_unsent(const wv_stream *s);

/* Send what wv_stream_try_writev kept (suspending): 0 or an error.
 * Nothing to do on a plain stream. */
int wv_stream_flush(wv_stream *s);

/* Send count bytes of a file from *offset (advanced), or up to its end:
 * the bytes sent. sendfile(2) on a plain stream; read and written through
 * TLS otherwise. */
ssize_t wv_stream_sendfile(wv_stream *s, int file_fd, off_t *offset, size_t count);

/* Wait until the stream is readable (WV_IN: data, buffered TLS bytes
 * included, or the peer's close) and/or writable (WV_OUT), or `at`: the
 * ready events, -ETIMEDOUT, -ECANCELED, -EBUSY (another fiber already
 * waits on that direction), -EBADF (interrupted). Lets a fiber wait for
 * input without holding a buffer. */
int wv_stream_wait(wv_stream *s, int events, int64_t at);

/* Bytes readable at once without a system call (decrypted TLS bytes). */
size_t wv_stream_pending(const wv_stream *s);

/* SHUT_WR: stop sending (TLS sends close_notify, then the socket's write
 * side is shut: FIN); reading goes on. SHUT_RDWR: give the connection up
 * at once, no goodbye: a fiber reading it wakes to the end, writes fail
 * with -EPIPE (a member cut off for being too slow). 0 or an error. */
int wv_stream_shutdown(wv_stream *s, int how);

/* Wake every fiber waiting on the stream with -EBADF, and make every later
 * read and wait return -EBADF at once; writes still work, so the owner can
 * say goodbye (a server's shutdown wakes idle connections this way). */
void wv_stream_interrupt(wv_stream *s);

/* Close and free: TLS sends close_notify first (best effort, at most 1 s,
 * skipped after a failure). NULL is ignored. 0, or the close's error. */
int wv_stream_close(wv_stream *s);

/* The socket (for options and polling only: reading or writing it behind
 * the stream's back breaks TLS). */
int wv_stream_fd(const wv_stream *s);

/* Is TLS running on it? */
bool wv_stream_is_tls(const wv_stream *s);

/* The ALPN protocol the handshake chose ("h2", "http/1.1"), or NULL. */
const char *wv_stream_alpn(const wv_stream *s);

/* The TLS version in use ("TLSv1.3"), or NULL on a plain stream. */
const char *wv_stream_tls_version(const wv_stream *s);

/* The peer's / our address: 0 or -errno. */
int wv_stream_peer_addr(const wv_stream *s, struct sockaddr_storage *addr, socklen_t *len);
int wv_stream_local_addr(const wv_stream *s, struct sockaddr_storage *addr, socklen_t *len);

/* "192.0.2.1:5000", "[2001:db8::1]:443", "unix:/run/x.sock" or "unix"
 * for an address: writes at most cap bytes, NUL-terminated; the length. */
size_t wv_addr_format(const struct sockaddr *addr, socklen_t len, char *out, size_t cap);

/* ================================================================ dialing */

/* Resolve `host` for `port` without blocking the loop (getaddrinfo on the
 * offload pool): up to max addresses into out, in the order RFC 8305
 * tries them (IPv6 first, then the families alternating). A numeric
 * address is taken as is with no system call. family: AF_UNSPEC, AF_INET
 * or AF_INET6. The count (> 0), or -EHOSTUNREACH (the name is unknown:
 * wv_errmsg has the resolver's words), -EINVAL, -EAGAIN (the resolver
 * failed for now), -ETIMEDOUT, -ECANCELED. */
int wv_resolve(const char *host, int port, int family, struct sockaddr_storage *out, int max);

typedef struct wv_dial_opts {
    /* TLS with this context. NULL: TLS only when the URL's scheme means it
     * (wv_url_scheme_is_tls), with wv_tls_ctx_default() */
    wv_tls_ctx *tls;
    /* the name for SNI and certificate checks; NULL = the host dialed */
    const char *server_name;
    /* leave Nagle's algorithm on (TCP_NODELAY is set by default) */
    bool nagle;
    /* TCP keepalive: probe after this many idle seconds (then every 10 s,
     * 3 times); 0 = off */
    int keepalive_s;
    /* each connection attempt gives up after this long (the fiber's
     * deadline applies as well); 0 = only the deadline */
    int64_t connect_timeout_ms;
    /* RFC 8305's connection attempt delay: start the next address after
     * this long without an answer; 0 = 250 ms */
    int64_t attempt_delay_ms;
    /* AF_UNSPEC (0, both), AF_INET or AF_INET6 */
    int family;
} wv_dial_opts;

/*
 * Connect to `address` and return a stream: "host:port", "[v6]:port",
 * "/path/to.sock" or "unix:/path" (a Unix socket), or a URL
 * ("redis://h:6379/0": its host and port, or the scheme's default port;
 * TLS when the scheme means it). Every address of the name is tried, the
 * next one starting after attempt_delay_ms or at once when one fails;
 * the first to connect wins and the others are abandoned. Errors as
 * wv_resolve, then the last connect error with wv_errmsg "cannot connect
 * to HOST:PORT: why" (the address redacted if it was a URL); TLS errors
 * as wv_stream_start_tls. opts may be NULL.
 */
int wv_dial(const char *address, const wv_dial_opts *opts, wv_stream **out);

/* wv_dial for a host and port given apart (a name, an IPv4 or IPv6
 * literal without brackets, or an absolute Unix socket path with port
 * 0); TLS only when opts->tls is set. */
int wv_dial_host(const char *host, int port, const wv_dial_opts *opts, wv_stream **out);

/* ================================================================== pools */

/*
 * A pool of connections for one shard, for any client: it keeps opened
 * connections and hands each to one fiber at a time. The pool knows
 * nothing of the protocol: it calls the client's open, close and check.
 * Fibers waiting for a connection are served in the order they came; a
 * waiter's deadline applies. A connection is checked before it goes out
 * again when it sat idle, and closed instead of reused once older than
 * max_lifetime_ms or idle longer than idle_timeout_ms.
 */
typedef struct wv_pool wv_pool;

typedef struct wv_pool_opts {
    /* open one connection (may suspend): 0 with *conn set, or an error */
    int (*open)(void *ctx, void **conn);
    /* close one (may suspend briefly); required */
    void (*close)(void *ctx, void *conn);
    /* is an idle connection still good? 0 = yes; else it is closed and
     * another is taken or opened. NULL: no check. */
    int (*check)(void *ctx, void *conn);
    void *ctx;
    int max_size;            /* open connections at most, idle and in use; 0 = 10 */
    int max_idle;            /* idle ones kept; 0 = max_size */
    int64_t max_lifetime_ms; /* close instead of reusing after this long; 0 = never */
    int64_t idle_timeout_ms; /* close one idle this long; 0 = never */
    int64_t check_idle_ms;   /* check only one idle at least this long; 0 = always */
} wv_pool_opts;

typedef struct wv_pool_stats {
    int idle, in_use, opening, waiting;                                    /* now */
    uint64_t opened, closed, reused, failed_checks, open_errors, timeouts; /* since made */
} wv_pool_stats;

/* A pool on the calling shard (-EPERM outside the runtime); opens nothing
 * yet. -EINVAL without open and close. */
int wv_pool_new(const wv_pool_opts *opts, wv_pool **out);

/* A connection for the calling fiber: an idle one (checked), a new one
 * while under max_size, or the next one released. -ETIMEDOUT /
 * -ECANCELED while waiting; open's error when opening failed (and no
 * other connection came back meanwhile); -ESHUTDOWN once the pool is
 * being freed; -EXDEV from another shard. */
int wv_pool_acquire(wv_pool *p, void **conn);

/* Give a connection back for reuse (the next waiter gets it at once). */
void wv_pool_release(wv_pool *p, void *conn);

/* Give back a connection that must not be reused (broken, or its protocol
 * state unknown): it is closed and its place freed for a new one. */
void wv_pool_discard(wv_pool *p, void *conn);

void wv_pool_stats_get(const wv_pool *p, wv_pool_stats *st);

/* Close the idle connections, fail the waiters with -ESHUTDOWN, and free
 * the pool once every connection in use has come back (they are closed
 * then). From the pool's shard. NULL is ignored. */
void wv_pool_free(wv_pool *p);

/* ===================================================== shared connections */

/*
 * wv_mux: one connection that many fibers of a shard send requests on, for
 * protocols that answer in order and carry no request ids (Redis,
 * memcached). A fiber encodes its request straight into the connection's
 * output (wv_mux_out), pushes a request record (wv_mux_push) and waits for
 * its replies (wv_mux_wait). What the shard's fibers push during one pass
 * of its loop leaves in one send at the end of the pass (auto-pipelining;
 * no_autopipeline sends each at once); a reader fiber cuts what comes back
 * into replies with the protocol's frame function and hands each to the
 * request at the head of the queue, in order.
 *
 * A request whose fiber stops waiting (deadline, cancellation) is
 * abandoned: its replies are still read, in order, and dropped, so no
 * reply ever reaches the wrong fiber. A reply nobody asked for, bytes the
 * frame function refuses, a reply larger than max_reply, no reply within
 * response_timeout_ms, or a broken socket break the connection: every
 * request in it fails with the reason (-EPROTO, -EMSGSIZE, -ETIMEDOUT,
 * -ECONNRESET) and later pushes fail at once. Every request completes
 * exactly once. A broken mux stays broken: make a new one.
 *
 * A new mux is dedicated: no reader or writer fiber, and the one fiber
 * using it writes and reads itself in wv_mux_wait (for a greeting, or a
 * connection one fiber holds: a wait cut short then breaks it, since its
 * state is unknown). wv_mux_share starts the fibers that let many share it.
 */
typedef struct wv_mux wv_mux;

enum { WV_MUX_MSG = 256 };

typedef struct wv_mux_req wv_mux_req;
struct wv_mux_req {
    /* Set before wv_mux_push. deliver gets each reply p[0..len) (the
     * mux's bytes, writable until it returns), on the reading fiber: it
     * must not suspend, and reports a failure with wv_mux_req_fail (or,
     * for a reply that shows the connection out of step, breaks it with
     * wv_mux_fail: this request fails with the rest). */
    void (*deliver)(wv_mux_req *r, char *p, size_t len);
    int replies; /* replies it takes, in order; 0 means 1 */
    /* results */
    int got; /* replies delivered so far */
    int rc;  /* 0, or the first error */
    char msg[WV_MUX_MSG];
    /* private */
    uint64_t seq_;
    bool done_;
    wv_event done_ev_;
};

typedef struct wv_mux_opts {
    /* the length of the whole reply at p[0..n) (> 0), 0 while more bytes
     * are needed, or a negative errno with a reason in why[0..size) */
    ssize_t (*frame)(void *ctx, const char *p, size_t n, char *why, size_t why_size);
    /* called with each reply before it is matched: true when it answers
     * no request (a push message) and the callback took it; NULL: none do */
    bool (*unsolicited)(void *ctx, char *p, size_t len);
    void *ctx;
    const char *name;            /* for messages: "redis redis://host:6379" */
    bool no_autopipeline;        /* shared: send each request at once */
    int64_t response_timeout_ms; /* shared: 0 = no limit */
    size_t max_reply;            /* bytes in one reply at most; 0 = 512 MiB */
    uint64_t *writes;            /* counters to add to (may be NULL): sends, */
    uint64_t *queued;            /* and replies asked for */
} wv_mux_opts;

/* A dedicated mux over s (taken, even on failure). -EINVAL without frame. */
int wv_mux_new(wv_stream *s, const wv_mux_opts *opts, wv_mux **out);

/* Start the reader and writer fibers: from now on any fiber of the shard
 * may push and wait. */
int wv_mux_share(wv_mux *m);

/* Where a request's bytes go: append them (all or nothing), then push. */
wv_buf *wv_mux_out(wv_mux *m);

/* Queue r for the bytes appended to wv_mux_out since the last push. On a
 * broken mux the bytes are dropped and its error returned. */
int wv_mux_push(wv_mux *m, wv_mux_req *r);

/* Append n bytes and push r. */
int wv_mux_send(wv_mux *m, wv_mux_req *r, const void *p, size_t n);

/* Wait until r has its replies: r->rc, with wv_errmsg from r->msg. */
int wv_mux_wait(wv_mux *m, wv_mux_req *r);

/* Set r's error once (the first one wins); for deliver functions. */
void wv_mux_req_fail(wv_mux_req *r, int rc, const char *fmt, ...) WV_PRINTF(3, 4);

/* Dedicated, without requests (a subscriber): write what was pushed... */
int wv_mux_flush(wv_mux *m);
/* ...and take the next whole reply (valid until the next call). */
int wv_mux_read(wv_mux *m, char **p, size_t *len);

/* Break it on purpose (a protocol rule the frame function cannot see). */
void wv_mux_fail(wv_mux *m, int rc, const char *fmt, ...) WV_PRINTF(3, 4);
bool wv_mux_broken(const wv_mux *m);
/* Its error as a return value (wv_errmsg set), or 0 while it works. */
int wv_mux_error(const wv_mux *m);

/* Requests waiting for replies; the stream underneath. */
size_t wv_mux_pending(const wv_mux *m);
wv_stream *wv_mux_stream(const wv_mux *m);

/* Fail what waits with -ESHUTDOWN, close, free once no fiber is inside. */
void wv_mux_close(wv_mux *m);

/* ================================================================ retries */

/* What an attempt knows and may tell the next one. */
typedef struct wv_retry_attempt {
    int number;             /* 1 for the first attempt */
    int64_t retry_after_ms; /* set by the attempt: wait at least this long
                             * before the next (a server's Retry-After) */
} wv_retry_attempt;

typedef struct wv_retry_opts {
    int max_attempts; /* attempts in all, the first included; 0 = 3 */
    int64_t base_ms;  /* the first backoff's ceiling; 0 = 100 */
    int64_t max_ms;   /* no backoff longer than this; 0 = 10000 */
    /* may this failure be retried? NULL: only failures to connect, which
     * sent nothing (-ECONNREFUSED, -EHOSTUNREACH, -ENETUNREACH,
     * -ECONNABORTED, -EAGAIN) */
    bool (*retryable)(int rc, void *arg);
} wv_retry_opts;

/*
 * Run fn(arg, attempt) until it returns >= 0, fails with an error that is
 * not retryable, or max_attempts have run. Between attempts it sleeps a
 * random time between 0 and min(max_ms, base_ms * 2^(n-1)) ("full
 * jitter"), or retry_after_ms if that is longer. It never sleeps past the
 * fiber's deadline: when the next attempt could not start before it, the
 * last error is returned at once. Returns fn's result, or its last error
 * (wv_errmsg is the last attempt's), or -ECANCELED / -ETIMEDOUT from the
 * sleep. -ETIMEDOUT and -ECANCELED from fn are never retried.
 */
typedef int wv_retry_fn(void *arg, wv_retry_attempt *attempt);
int wv_retry(const wv_retry_opts *opts, wv_retry_fn *fn, void *arg);

#ifdef __cplusplus
}
#endif

#endif
