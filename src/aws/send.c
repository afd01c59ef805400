/*
 * One call to an AWS service through wv_retry (src/aws/send.h): each try
 * signed afresh by the client, sent with wv_httpc_request, and its
 * failure sorted into what may pass (a connection refused, reset or
 * broken; a refusal the client's reader says is throttling or an
 * internal failure) and what will not.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/send.h"
#include "weave/net.h"

typedef struct attempt {
    const aws_call *c;
    wv_httpc_response *resp;
    bool retry;
    int tries;
} attempt;

static int try_once(void *arg, wv_retry_attempt *a)
{
    attempt *t = arg;
    const aws_call *c = t->c;
    t->tries = a->number;
    t->retry = false;
    wv_httpc_response_free(t->resp);
    wv_httpc_req req;
    int rc = c->sign(c->arg, &req);
    if (rc < 0)
        return rc;
    rc = wv_httpc_request(&req, t->resp);
    if (rc < 0) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s", wv_errmsg());
        t->retry = rc == -ECONNRESET || rc == -ECONNREFUSED || rc == -EPIPE ||
                   rc == -ECONNABORTED || rc == -EAGAIN || rc == -ENETUNREACH;
        return wv_fail(rc, "%s: %s", c->what, msg);
    }
    if (t->resp->status >= 200 && t->resp->status < 300)
        return 0;
    rc = c->refusal(c->arg, t->resp, &t->retry);
    const char *retry_after = wv_httpc_header_get(t->resp, "Retry-After");
    if (t->retry && retry_after && *retry_after >= '0' && *retry_after <= '9')
        a->retry_after_ms = (int64_t)atoi(retry_after) * 1000;
    wv_httpc_response_free(t->resp);
    return rc;
}

static bool retryable(int rc, void *arg)
{
    return ((attempt *)arg)->retry;
}

int aws_send(const aws_call *c, wv_httpc_response *resp)
{
    memset(resp, 0, sizeof *resp);
    attempt t = {.c = c, .resp = resp};
    int rc = wv_retry(&(wv_retry_opts){.max_attempts = c->max_attempts,
                                       .base_ms = c->base_ms,
                                       .max_ms = c->max_ms,
                                       .retryable = retryable},
                      try_once, &t);
    if (rc < 0 && t.tries > 1) {
        char msg[900];
        snprintf(msg, sizeof msg, "%s", wv_errmsg());
        wv_fail(rc, "%s (after %d tries)", msg, t.tries);
    }
    if (rc < 0)
        wv_httpc_response_free(resp);
    return rc;
}
