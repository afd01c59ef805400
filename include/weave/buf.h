/*
 * wv_buf: a growable byte buffer (responses, JSON, protocol encoders).
 *
 * Zero-initialise (`wv_buf b = {0};`) and append; the bytes are b.p[0..b.n).
 * Appending fails with -ENOMEM (never aborts) when memory runs out or the
 * buffer would pass `limit` (0 = no limit), so a size set by input cannot
 * take the process down.
 */
#ifndef WEAVE_BUF_H
#define WEAVE_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "weave/rt.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wv_buf {
    char *p;
    size_t n;     /* bytes used */
    size_t cap;   /* bytes allocated */
    size_t limit; /* 0 = none; else appends past it fail with -ENOMEM */
} wv_buf;

/* Make room for `extra` more bytes. 0 or -ENOMEM. */
int wv_buf_reserve(wv_buf *b, size_t extra);

/* Append n bytes. 0 or -ENOMEM. */
int wv_buf_append(wv_buf *b, const void *data, size_t n);

/* Append a NUL-terminated string (without the NUL). */
int wv_buf_puts(wv_buf *b, const char *s);

/* Append printf-style. 0 or -ENOMEM. */
int wv_buf_printf(wv_buf *b, const char *fmt, ...) WV_PRINTF(2, 3);
int wv_buf_vprintf(wv_buf *b, const char *fmt, va_list ap);

/* Append a decimal integer. */
int wv_buf_i64(wv_buf *b, long long v);

/* Append n bytes of text escaped for HTML element content and quoted
 * attribute values: & < > " ' become &amp; &lt; &gt; &quot; &#x27; (as
 * Python's html.escape writes them; Jinja2 writes &#34; and &#39;, the same
 * to a browser). Other bytes pass through unchanged. 0 or -ENOMEM; on
 * -ENOMEM nothing is appended. */
int wv_buf_html(wv_buf *b, const char *s, size_t n);

/* Forget the contents, keep the memory. */
static inline void wv_buf_reset(wv_buf *b)
{
    b->n = 0;
}

/* Free the memory; the buffer is empty and reusable after. */
void wv_buf_free(wv_buf *b);

#ifdef __cplusplus
}
#endif

#endif
