/*
 * Response compression negotiated by Accept-Encoding: brotli, zstd or gzip
 * (in that order of preference, among those the client accepts with q > 0).
 * Only bodies worth it are compressed: at least COMPRESS_MIN bytes, of a
 * compressible type (text, JSON, JavaScript, XML, SVG), not already
 * encoded, and kept only when the result is smaller.
 */
#include <brotli/encode.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

#include "http/http_internal.h"

enum { COMPRESS_MIN = 1024, GZIP_LEVEL = 5, BROTLI_QUALITY = 5, ZSTD_LEVEL = 3 };

bool compress_type_ok(const char *ctype)
{
    if (!ctype)
        return false;
    return strncasecmp(ctype, "text/", 5) == 0 || strstr(ctype, "json") ||
           strstr(ctype, "javascript") || strstr(ctype, "xml") || strstr(ctype, "svg");
}

/* q-value of a coding in an Accept-Encoding value: -1 when absent. */
static double coding_q(wv_str ae, const char *coding)
{
    size_t cl = strlen(coding);
    const char *p = ae.p, *end = ae.p + ae.n;
    double star = -1;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == ','))
            p++;
        const char *tok = p;
        while (p < end && *p != ',' && *p != ';' && *p != ' ')
            p++;
        size_t tl = (size_t)(p - tok);
        double q = 1.0;
        while (p < end && *p != ',') {
            if (*p == 'q' && p + 1 < end && p[1] == '=') {
                q = 0;
                const char *d = p + 2;
                int seen_dot = 0;
                double scale = 1;
                for (; d < end && ((*d >= '0' && *d <= '9') || *d == '.'); d++) {
                    if (*d == '.') {
                        seen_dot = 1;
                    } else if (seen_dot) {
                        scale /= 10;
                        q += (*d - '0') * scale;
                    } else {
                        q = q * 10 + (*d - '0');
                    }
                }
                p = d;
                continue;
            }
            p++;
        }
        if (tl == cl && strncasecmp(tok, coding, cl) == 0)
            return q;
        if (tl == 1 && *tok == '*')
            star = q;
    }
    return star;
}

int compress_pick(wv_str accept_encoding)
{
    if (!accept_encoding.p || !accept_encoding.n)
        return ENC_NONE;
    if (coding_q(accept_encoding, "br") > 0)
        return ENC_BR;
    if (coding_q(accept_encoding, "zstd") > 0)
        return ENC_ZSTD;
    if (coding_q(accept_encoding, "gzip") > 0)
        return ENC_GZIP;
    return ENC_NONE;
}

const char *compress_name(int enc)
{
    return enc == ENC_BR ? "br" : enc == ENC_ZSTD ? "zstd" : enc == ENC_GZIP ? "gzip" : NULL;
}

static int gzip(const void *in, size_t n, char *out, size_t *outlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, GZIP_LEVEL, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return -ENOMEM;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)n;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)*outlen;
    int rc = deflate(&z, Z_FINISH);
    *outlen = z.total_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -ENOSPC;
}

/* Compress into the request arena; 0 with *out set, or <0 (send plain). */
int compress_body(wv_req *req, int enc, const void *in, size_t n, const char **out, size_t *outlen)
{
    if (n < COMPRESS_MIN || n > 64 * 1024 * 1024 || enc == ENC_NONE)
        return -EINVAL;
    size_t cap = n; /* only worth it when smaller */
    char *buf = wv_req_alloc(req, cap);
    if (!buf)
        return -ENOMEM;
    size_t got = cap;
    int rc = 0;
    if (enc == ENC_GZIP) {
        rc = gzip(in, n, buf, &got);
    } else if (enc == ENC_BR) {
        if (!BrotliEncoderCompress(BROTLI_QUALITY, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, n, in,
                                   &got, (uint8_t *)buf))
            rc = -ENOSPC;
    } else {
        size_t z = ZSTD_compress(buf, cap, in, n, ZSTD_LEVEL);
        if (ZSTD_isError(z))
            rc = -ENOSPC;
        else
            got = z;
    }
    if (rc < 0 || got >= n)
        return -ENOSPC;
    *out = buf;
    *outlen = got;
    return 0;
}
