/*
 * Deadline propagation, the server's end (wv_deadline_header in
 * include/weave/http.h): X-Request-Timeout-Ms, the milliseconds a caller
 * will still wait, becomes the handler fiber's deadline, as gRPC servers
 * turn grpc-timeout into their call's deadline.
 *
 * A middleware's `before`, nothing more: it only ever narrows the fiber's
 * deadline (the server's own limits stay the bound), counts from the
 * request's first byte (the time its head took to arrive and wait is part
 * of what the caller spent), and leaves restoring the deadline to
 * server.c, which puts the fiber's deadline back after every request
 * whatever the route did with it. The response says which budget the
 * server took (Server-Timing: deadline;dur=<ms>, after the cap).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/http_internal.h"

#define NS_PER_MS INT64_C(1000000)

enum { MAX_DIGITS = 12 }; /* 10^12 ms: 31 years, plenty, and no overflow */

static int apply(wv_req *req, wv_res *res, void *arg)
{
    const wv_deadline_opts *o = arg;
    wv_str v = wv_req_header(req, WV_DEADLINE_HEADER);
    if (!v.p)
        return WV_NEXT;
    while (v.n && (v.p[v.n - 1] == ' ' || v.p[v.n - 1] == '\t'))
        v.n--;
    int64_t ms = 0;
    bool ok = v.n > 0 && v.n <= MAX_DIGITS;
    for (size_t i = 0; ok && i < v.n; i++) {
        ok = v.p[i] >= '0' && v.p[i] <= '9';
        ms = ms * 10 + (v.p[i] - '0');
    }
    if (!ok)
        return wv_fail(-EINVAL, "%s must be a whole number of milliseconds, got \"%.*s\"",
                       WV_DEADLINE_HEADER, (int)(v.n > 40 ? 40 : v.n), v.p);
    if (o->max_ms > 0 && ms > o->max_ms)
        ms = o->max_ms;
    /* the budget this server took, for the caller to read beside a 504:
     * the header itself is never echoed */
    char timing[40];
    snprintf(timing, sizeof timing, "deadline;dur=%lld", (long long)ms);
    wv_res_header(res, "Server-Timing", timing);
    int64_t at = wv_req_start(req) + ms * NS_PER_MS;
    if (at < wv_deadline())
        wv_deadline_set(at);
    if (ms == 0 || wv_deadline() <= wv_now())
        return wv_fail(-ETIMEDOUT, "the caller's deadline (%s: %.*s) passed before the handler ran",
                       WV_DEADLINE_HEADER, (int)v.n, v.p);
    return WV_NEXT;
}

int wv_deadline_header(wv_router *r, const wv_deadline_opts *opts)
{
    if (!r)
        return -EINVAL;
    wv_deadline_opts *o = calloc(1, sizeof *o);
    if (!o)
        return -ENOMEM;
    if (opts)
        *o = *opts;
    return wv_router_use_first(
        r, &(wv_middleware){.name = "deadline", .before = apply, .arg = o, .free = free});
}
