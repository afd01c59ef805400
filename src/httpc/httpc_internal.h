/*
 * Private structures of the HTTP client, shared by the files of
 * src/httpc/.
 *
 * The picture. Each shard has one httpc_shard (shard.c), made by its first
 * request: a curl multi handle, a share of TLS sessions, and the two fibers
 * that drive the multi handle from the shard's loop (the io fiber watches
 * curl's sockets, the timer fiber keeps curl's timer). A request
 * (request.c) is an httpc_transfer on its fiber's stack: an easy handle set
 * up from wv_httpc_req, added to the multi handle, and a wait on the
 * transfer's event. Whichever fiber drives curl when the transfer ends
 * takes it out of the multi handle and sets the event; a fiber that stops
 * waiting (deadline, cancellation) takes its transfer out itself, which
 * aborts it at once. error.c turns curl's result into an errno and a
 * reason; response.c turns the received head into header fields.
 *
 * Every curl call of a shard happens on that shard's thread, in one of its
 * fibers, and none of the callbacks suspends: so curl is never entered
 * twice at once and needs no lock.
 */
#ifndef WEAVE_HTTPC_INTERNAL_H
#define WEAVE_HTTPC_INTERNAL_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "weave/buf.h"
#include "weave/httpc.h"
#include "weave/rt.h"

#pragma GCC visibility push(hidden)

#define HTTPC_NS_PER_MS INT64_C(1000000)

enum {
    HTTPC_DEFAULT_MAX_REDIRECTS = 10,
    HTTPC_DEFAULT_CONNECT_MS = 10000,
    HTTPC_MAX_HEAD = 1 << 20, /* bytes of response head kept at most */
};
#define HTTPC_DEFAULT_MAX_RESPONSE ((size_t)64 << 20)

typedef struct httpc_transfer httpc_transfer;
typedef struct httpc_shard httpc_shard;

/* One request in flight; lives on the requesting fiber's stack. */
struct httpc_transfer {
    httpc_shard *sc;
    CURL *easy;
    struct curl_slist *headers;
    wv_httpc_response *resp; /* where the body goes */
    size_t max_response;
    wv_buf head;      /* the header lines of the response being received */
    bool head_seen;   /* a status line has come */
    bool too_big;     /* the body passed max_response */
    bool head_big;    /* the head passed HTTPC_MAX_HEAD */
    bool no_memory;   /* a callback could not grow a buffer */
    bool in_multi;    /* added to the multi handle, not taken out yet */
    bool done;        /* curl finished it (code is its result) */
    bool shut_down;   /* taken out because the client is closing */
    int socket_errno; /* why the last socket could not be made (curl keeps no errno) */
    CURLcode code;
    wv_event done_ev;
    httpc_transfer *prev, *next;
    char errbuf[CURL_ERROR_SIZE];
};

/* shard.c: the calling shard's client, made on first use. NULL with *err
 * set: -EPERM outside the runtime, -ESHUTDOWN while it stops, -ENOMEM. */
httpc_shard *httpc_shard_get(int *err);

/* An easy handle to set up (fresh or reset), NULL on OOM; and back. A
 * handle that must not serve another request (it kept cookies) is freed. */
CURL *httpc_easy_take(httpc_shard *sc);
void httpc_easy_give(httpc_shard *sc, CURL *easy, bool reusable);

/* The settings every transfer's easy handle gets (callbacks that keep the
 * runtime's view of sockets right, the TLS session share); sets t->sc. */
void httpc_easy_attach(httpc_shard *sc, httpc_transfer *t);

/* Add t (set up) to the multi handle; its fiber then waits on done_ev. */
int httpc_transfer_start(httpc_shard *sc, httpc_transfer *t);

/* Take t out of the multi handle if it is still in it (abandoning it:
 * its connection is closed, or over HTTP/2 its stream reset). */
void httpc_transfer_abort(httpc_shard *sc, httpc_transfer *t);

/* The fiber is done with t: forget it and give back its easy handle. */
void httpc_transfer_end(httpc_shard *sc, httpc_transfer *t, bool reusable);

/* error.c: what a failed transfer means. */
typedef struct httpc_failure {
    CURLcode code;
    int os_errno;        /* CURLINFO_OS_ERRNO: the system's reason, 0 if none */
    int socket_errno;    /* socket(2) failed with it (curl keeps no errno then), or 0 */
    const char *detail;  /* curl's own words (its error buffer); "" when none */
    int max_redirects;   /* the request's bound */
    size_t max_response; /* the request's limit */
    const char *refused; /* for a refused redirect: where it led (NULL if unknown) */
} httpc_failure;

/* The negative errno for f, with the reason (without the request's method
 * and URL) written to why. */
int httpc_error(const httpc_failure *f, char *why, size_t cap);

/* response.c: move the head received (status line and header lines) into
 * resp->headers; head is emptied (its memory now belongs to resp).
 * 0 or -ENOMEM. */
int httpc_response_take_head(wv_httpc_response *resp, wv_buf *head);

#pragma GCC visibility pop

#endif
