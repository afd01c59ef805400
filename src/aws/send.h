/*
 * The request path every AWS client shares: one call, its tries run by
 * wv_retry, each signed afresh, the transport's failures that may pass
 * told from the service's refusals. Internal, shared by src/s3 and
 * src/kinesis like src/aws/sigv4.h.
 */
#ifndef WEAVE_AWS_SEND_H
#define WEAVE_AWS_SEND_H

#include <stdbool.h>
#include <stdint.h>

#include "weave/httpc.h"

#pragma GCC visibility push(hidden)

typedef struct aws_call {
    const char *what; /* the message's start: "S3 PUT bucket/key" */
    /* Fill *req for one try, signed now (its strings stay the caller's
     * until the next call): 0, or an errno that ends the call */
    int (*sign)(void *arg, wv_httpc_req *req);
    /* A reply of 300 or more: its errno, with wv_errmsg set, and whether
     * another try may go better */
    int (*refusal)(void *arg, const wv_httpc_response *resp, bool *retry);
    void *arg;
    int max_attempts;        /* tries in all */
    int64_t base_ms, max_ms; /* the backoff (wv_retry_opts) */
} aws_call;

/*
 * Send c until a try succeeds (0, with *resp holding a 2xx response: free
 * it), fails for good, or the tries run out (the errno, *resp empty). A
 * connection refused, reset or broken is tried again, and so is a refusal
 * the refusal callback says may pass, after a backoff or the reply's
 * Retry-After (seconds), never past the fiber's deadline. wv_errmsg: the
 * last try's words, "(after N tries)" when there were several.
 */
int aws_send(const aws_call *c, wv_httpc_response *resp);

#pragma GCC visibility pop

#endif
