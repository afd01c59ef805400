/*
 * What a failed transfer means: curl's result code, the system's errno
 * behind it and curl's own words become one negative errno (the table at
 * the top of include/weave/httpc.h) and a reason a person can act on.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "httpc/httpc_internal.h"

static const char *words(const httpc_failure *f)
{
    return f->detail && f->detail[0] ? f->detail : curl_easy_strerror(f->code);
}

static bool is_tls(CURLcode code)
{
    switch (code) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
        return true;
    default:
        return false;
    }
}

int httpc_error(const httpc_failure *f, char *why, size_t cap)
{
    const char *w = words(f);
    switch (f->code) {
    case CURLE_URL_MALFORMAT:
        snprintf(why, cap, "malformed URL (%s)", w);
        return -EINVAL;
    case CURLE_UNSUPPORTED_PROTOCOL:
        /* the request's own URL was checked before curl saw it: what curl
         * refused is where a redirect led */
        if (f->refused)
            snprintf(why, cap,
                     "refused to follow a redirect to %s (from https:// only https:// is "
                     "followed)",
                     f->refused);
        else
            snprintf(why, cap, "refused to follow a redirect (%s)", w);
        return -EPROTO;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(why, cap, "cannot resolve the host name (%s)", w);
        return -EHOSTUNREACH;
    case CURLE_COULDNT_RESOLVE_PROXY:
        snprintf(why, cap, "cannot resolve the proxy's host name (%s)", w);
        return -EHOSTUNREACH;
    case CURLE_COULDNT_CONNECT: {
        if (f->socket_errno > 0) {
            snprintf(why, cap, "cannot make a socket: %s", strerror(f->socket_errno));
            return -f->socket_errno;
        }
        int e = f->os_errno > 0 ? f->os_errno : ECONNREFUSED;
        snprintf(why, cap, "cannot connect: %s (%s)", strerror(e), w);
        return -e;
    }
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(why, cap, "timed out (%s)", w);
        return -ETIMEDOUT;
    case CURLE_PEER_FAILED_VERIFICATION:
        snprintf(why, cap, "TLS: the server's certificate did not verify (%s)", w);
        return -EPROTO;
    case CURLE_FILESIZE_EXCEEDED:
        snprintf(why, cap, "the response body is larger than the limit of %zu bytes",
                 f->max_response);
        return -EMSGSIZE;
    case CURLE_TOO_MANY_REDIRECTS:
        snprintf(why, cap, "more than %d redirects (a redirect loop?)", f->max_redirects);
        return -ELOOP;
    case CURLE_OUT_OF_MEMORY:
        snprintf(why, cap, "out of memory");
        return -ENOMEM;
    case CURLE_GOT_NOTHING:
        snprintf(why, cap, "the server closed the connection without answering");
        return -ECONNRESET;
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        snprintf(why, cap, "the connection broke before the response was complete (%s)", w);
        return -ECONNRESET;
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_RANGE_ERROR:
        snprintf(why, cap, "the server broke HTTP (%s)", w);
        return -EPROTO;
    case CURLE_SEND_FAIL_REWIND:
        snprintf(why, cap,
                 "the request body was streamed and cannot be sent again (a redirect or a "
                 "connection found dead asked for it: %s)",
                 w);
        return -EIO;
    case CURLE_ABORTED_BY_CALLBACK:
        snprintf(why, cap, "cancelled");
        return -ECANCELED;
    default:
        if (is_tls(f->code)) {
            snprintf(why, cap, "TLS: %s", w);
            return -EPROTO;
        }
        snprintf(why, cap, "%s (curl error %d)", w, (int)f->code);
        return -EIO;
    }
}
