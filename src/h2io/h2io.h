/*
 * What weave's two nghttp2 sessions share: the server's connections
 * (src/h2/server.c) and the gRPC client's (src/grpc/client.c). Internal
 * code both modules use and no public API, like src/aws/ (listed as shared
 * in scripts/check_private_headers.sh).
 */
#ifndef WEAVE_H2IO_H
#define WEAVE_H2IO_H

#include <nghttp2/nghttp2.h>

#include "weave/buf.h"
#include "weave/net.h"

#pragma GCC visibility push(hidden)

/* How much of the session's output one write carries at most. */
enum { H2_WRITE_BATCH = 64 * 1024 };

/*
 * Write everything the session has to send now, in writes of up to
 * H2_WRITE_BATCH bytes gathered in `batch` (kept between calls, empty on
 * return). 0 once nothing is left to send, -1 when the session failed or
 * a write did (the connection is then done for).
 */
int h2_flush(nghttp2_session *session, wv_stream *s, wv_buf *batch);

#pragma GCC visibility pop

#endif
