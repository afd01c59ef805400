/* Draining an nghttp2 session into its stream (h2io.h). */
#include "h2io.h"

int h2_flush(nghttp2_session *session, wv_stream *s, wv_buf *batch)
{
    for (;;) {
        const uint8_t *data;
        ssize_t n = 0;
        while (batch->n < H2_WRITE_BATCH && (n = nghttp2_session_mem_send(session, &data)) > 0)
            if (wv_buf_append(batch, data, (size_t)n) < 0)
                n = -1;
        if (n < 0) {
            batch->n = 0;
            return -1;
        }
        if (batch->n == 0)
            return 0;
        ssize_t w = wv_stream_write(s, batch->p, batch->n);
        batch->n = 0;
        if (w < 0)
            return -1;
    }
}
