/*
 * weave HTTP/2 server connections (src/h2, on nghttp2).
 *
 * There is nothing to call for a service: wv_http_serve (weave/http.h)
 * serves every route over HTTP/2 as well as HTTP/1.1, on the same port. A
 * cleartext connection that opens with HTTP/2's connection preface ("PRI *
 * HTTP/2.0\r\n\r\nSM\r\n\r\n", h2c with prior knowledge) and a TLS
 * connection that negotiated "h2" by ALPN are handed to wv_h2_serve, a
 * cleartext HTTP/1.1 request without a body that asks for "Upgrade: h2c"
 * to wv_h2_serve_upgraded;
 * wv_http_opts.no_h2 turns that off. docs/h2.md says what works, the
 * limits, and what is not there yet.
 *
 * One fiber reads the connection and feeds nghttp2, one writes what
 * nghttp2 has to send, and every request runs in a fiber of its own with
 * the server's handler (wv_http_exchange_run), so a slow handler never
 * holds the others. A response body passes through a small per-stream
 * buffer that nghttp2 drains as the peer's flow-control window allows: a
 * peer that stops reading stalls that stream's handler (its writes wait),
 * never the connection's memory or its other streams.
 */
#ifndef WEAVE_H2_H
#define WEAVE_H2_H

#include "weave/http.h"
#include "weave/net.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Serve HTTP/2 on stream s, a connection of the HTTP server `conn`, until
 * the peer closes it, a protocol error or abuse closes it (GOAWAY with the
 * reason: the RFC 9113 code, ENHANCE_YOUR_CALM for floods), it stays idle
 * past the server's idle timeout, or the server's graceful stop has
 * finished its streams (GOAWAY first). Streams that only wait on the peer
 * while no handler runs are reset once it has sent nothing for the
 * server's body timeout. `pre` holds bytes
 * already read from s (the preface the server sniffed), n of them. The
 * caller still owns s and closes it after. Returns 0 once the connection
 * is over, or -ENOMEM when the session cannot be made.
 */
int wv_h2_serve(wv_http_conn *conn, wv_stream *s, const void *pre, size_t n);

/*
 * h2c by Upgrade (RFC 7540 3.2): serve HTTP/2 on s, as wv_h2_serve does,
 * after the HTTP server has answered an HTTP/1.1 request that asked for it
 * with 101 Switching Protocols. That request, `first` (its method, target,
 * authority and header fields; ops and x are not used; it has no body), is
 * served as stream 1; its connection-specific fields (Connection, Upgrade,
 * HTTP2-Settings, Keep-Alive, Transfer-Encoding, a te other than
 * "trailers") and Host (the authority) are left out, the other names
 * lower-cased. settings: the HTTP2-Settings field's value, base64url
 * decoded (settings_len bytes; a bad one ends the connection with GOAWAY
 * PROTOCOL_ERROR). `pre`: the bytes read after the request's head, where
 * the client's preface begins.
 */
int wv_h2_serve_upgraded(wv_http_conn *conn, wv_stream *s, const wv_http_exchange *first,
                         const void *settings, size_t settings_len, const void *pre, size_t n);

/* The preface a client opens HTTP/2 with, and its length (24). */
#define WV_H2_PREFACE     "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#define WV_H2_PREFACE_LEN 24

#ifdef __cplusplus
}
#endif

#endif
