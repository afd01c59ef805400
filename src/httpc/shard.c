/*
 * The per-shard client: one curl multi handle per shard, driven by the
 * shard's loop with curl's multi-socket API.
 *
 * How curl's sockets are watched. curl says which sockets it wants to hear
 * about (CURLMOPT_SOCKETFUNCTION: in, out, both, none) and expects to be
 * told again and again while one stays ready: level-triggered readiness.
 * The runtime's own fd waits are edge-triggered and hold one fiber per
 * direction of each fd, made for code that reads until EAGAIN. So curl's
 * sockets go into an epoll set of the client's own, level-triggered, and
 * only that set's descriptor is registered with the shard's loop. The io
 * fiber waits for it to become readable (wv_fd_wait, WV_FRESH after it saw
 * the set empty), takes what is ready with a zero-timeout epoll_wait,
 * hands each socket's events to curl_multi_socket_action, and yields
 * between batches so a busy client cannot starve the shard. One fd and one
 * fiber per shard, however many sockets curl has open; no fiber per socket
 * and no translation of curl's level semantics onto edges.
 *
 * The set changes only when what curl wants of a socket changes (a table
 * by fd says what the set holds). When a transfer ends, curl stops
 * watching its connection; the next request on that connection wants to
 * read it again at once. So a socket of our own that curl lets go of
 * stays in the set, marked idle: if the next transfer wants it as it is,
 * no system call is made at all; if it fires while idle (the server
 * closed the connection), it leaves the set then, and curl finds the
 * connection dead when it next looks, as it would have. Sockets curl made
 * by other means (its resolver's) leave the set when curl lets them go.
 *
 * How curl's timer is kept. curl asks for one timeout at a time
 * (CURLMOPT_TIMERFUNCTION). The timer fiber parks on an event with that
 * time as its deadline, and calls curl_multi_socket_action with
 * CURL_SOCKET_TIMEOUT when it passes. A fiber cannot wait on the epoll set
 * and an event at once, hence two fibers; the timer callback, called from
 * whichever fiber is inside curl, wakes the timer fiber only when the new
 * time is earlier than the one it waits for (a burst of new requests in
 * one pass costs one wake-up, and no system call).
 *
 * Sockets and the runtime. curl opens its sockets through
 * CURLOPT_OPENSOCKETFUNCTION (wv_socket: non-blocking, close-on-exec, and
 * fault injection applies) and closes them through
 * CURLOPT_CLOSESOCKETFUNCTION (wv_close), so the runtime forgets every fd
 * curl closes and a number the kernel hands out again never meets stale
 * readiness state. Closing also takes the fd out of the epoll set.
 *
 * Completions. After every curl_multi_socket_action the fiber that made
 * it reads curl's messages, takes each finished easy handle out of the
 * multi handle (its connection goes back to the shard's cache at once)
 * and wakes the transfer's fiber.
 *
 * Life. The client is made by the shard's first request and lives until
 * the runtime stops. The runtime has no per-shard exit hook: at shutdown
 * it cancels every fiber of the shard, and the timer fiber's cancellation
 * is the hook. It stops the io fiber, fails the transfers still running
 * (their fibers are being cancelled too), waits until each of those fibers
 * has let go of its easy handle, then frees the multi handle (closing
 * the connections), the pooled transfers and their easy handles, the share
 * and the epoll set, all on the shard's thread while its loop still runs.
 *
 * The pool. A transfer and its easy handle are made together and kept
 * together: the options every transfer has (the callbacks, whose data is
 * the transfer itself; the sockets' hooks; the TLS session share; signals
 * off) are set once, when the handle is made, and a request taken from the
 * pool sets only the options it wants otherwise than the last request on
 * the handle left them (request.c). curl keeps an easy handle's options
 * from one transfer to the next and starts each transfer's own state
 * afresh, so nothing else carries over.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "httpc/httpc_internal.h"

enum {
    MAX_EVENTS = 64,          /* socket events handed to curl per batch */
    MAX_WATCH = 1 << 24,      /* fds past it go without the table (never, in practice) */
    POOL_MAX = 32,            /* idle transfers (and easy handles) kept for reuse */
    DRIVER_STACK = 256 << 10, /* curl and OpenSSL run on the drivers' stacks */
    TIMER_RUNNING = 0,        /* timer_parked_at while the timer fiber runs */
};

/* What the epoll set holds for a socket, by fd. */
enum {
    WATCH_IN = 1,   /* EPOLLIN */
    WATCH_OUT = 2,  /* EPOLLOUT */
    WATCH_SET = 4,  /* in the set, with the two bits above */
    WATCH_IDLE = 8, /* in the set, but curl wants to hear no more of it */
    WATCH_OURS = 16 /* made by open_socket, closed by close_socket */
};

struct httpc_shard {
    CURLM *multi;
    CURLSH *share;  /* TLS sessions, so a new connection to a host resumes */
    int epfd;       /* curl's sockets, level-triggered */
    uint8_t *watch; /* WATCH_ bits by fd */
    size_t nwatch;
    int64_t timer_at;        /* curl's timeout (wv_now clock); WV_NEVER when none */
    int64_t timer_parked_at; /* what the timer fiber waits for; TIMER_RUNNING when running */
    wv_event kick;           /* wakes the timer fiber: curl's timeout moved earlier */
    wv_group *io;            /* the io fiber */
    bool closing;
    httpc_transfer *transfers; /* every transfer a fiber holds, in the multi or not */
    int64_t ntransfers;
    wv_event idle;        /* set when closing and the last transfer has ended */
    httpc_transfer *pool; /* idle transfers, each with its easy handle */
    int npool;
    char user_agent[64];
    struct curl_slist *headers[2][2]; /* httpc_shard_headers' lists: [decode][sends_body] */
    wv_httpc_stats stats;
};

/* connections kept open per shard for reuse (idle ones past it are closed) */
enum { IDLE_CONNECTIONS = 256 };

static _Thread_local httpc_shard *here;

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;
static char accept_encoding[64];

static void global_init(void)
{
    /* once per process, before any thread uses curl; never undone: OpenSSL,
     * which it initialises, is weave's too */
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    /* the codings curl decodes, in the order it lists them itself
     * ("identity" when it decodes none) */
    int features = curl_version_info(CURLVERSION_NOW)->features;
    char list[48] = "";
    if (features & CURL_VERSION_LIBZ)
        strcat(list, ", deflate, gzip");
    if (features & CURL_VERSION_BROTLI)
        strcat(list, ", br");
    if (features & CURL_VERSION_ZSTD)
        strcat(list, ", zstd");
    snprintf(accept_encoding, sizeof accept_encoding, "Accept-Encoding: %s",
             list[0] ? list + 2 : "identity");
}

const char *httpc_accept_encoding(void)
{
    return accept_encoding;
}

/* ------------------------------------------------------------ driving */

/* Hand finished transfers back to their fibers. */
static void harvest(httpc_shard *sc)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(sc->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *easy = m->easy_handle;
        CURLcode code = m->data.result; /* m is gone once the handle is removed */
        char *priv = NULL;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        curl_multi_remove_handle(sc->multi, easy);
        httpc_transfer *t = (httpc_transfer *)priv;
        if (!t)
            continue;
        t->in_multi = false;
        t->code = code;
        t->done = true;
        wv_event_set(&t->wake);
    }
}

static void drive(httpc_shard *sc, curl_socket_t fd, int events)
{
    int running;
    CURLMcode mc = curl_multi_socket_action(sc->multi, fd, events, &running);
    if (mc != CURLM_OK)
        wv_debug("httpc: curl_multi_socket_action: %s", curl_multi_strerror(mc));
    harvest(sc);
}

static int socket_events(uint32_t ev)
{
    int what = 0;
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLRDHUP))
        what |= CURL_CSELECT_IN;
    if (ev & EPOLLOUT)
        what |= CURL_CSELECT_OUT;
    if (ev & EPOLLERR)
        what |= CURL_CSELECT_ERR;
    return what;
}

/* fd's entry in the table (grown as needed), or NULL when it cannot be had
 * (the set is then handled as if no table existed: every change a call). */
static uint8_t *watch_of(httpc_shard *sc, int fd)
{
    if (fd < 0 || fd >= MAX_WATCH)
        return NULL;
    if ((size_t)fd >= sc->nwatch) {
        size_t n = sc->nwatch ? sc->nwatch : 256;
        while (n <= (size_t)fd)
            n *= 2;
        uint8_t *w = realloc(sc->watch, n);
        if (!w)
            return NULL;
        memset(w + sc->nwatch, 0, n - sc->nwatch);
        sc->watch = w;
        sc->nwatch = n;
    }
    return &sc->watch[fd];
}

/* Take fd out of the set. */
static void unwatch(httpc_shard *sc, int fd)
{
    epoll_ctl(sc->epfd, EPOLL_CTL_DEL, fd, NULL);
    if ((size_t)fd < sc->nwatch)
        sc->watch[fd] &= WATCH_OURS;
}

/* Was fd let go of by curl while still in the set? Then it leaves it now:
 * nothing wants to hear of it. */
static bool idle_fired(httpc_shard *sc, int fd)
{
    if (fd < 0 || (size_t)fd >= sc->nwatch || !(sc->watch[fd] & WATCH_IDLE))
        return false;
    unwatch(sc, fd);
    return true;
}

static int io_main(void *arg)
{
    httpc_shard *sc = arg;
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(sc->epfd, evs, MAX_EVENTS, 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            /* nothing ready: wait for the set to become readable again */
            int rc = wv_fd_wait(sc->epfd, WV_IN | WV_FRESH, WV_NEVER);
            if (rc == -ECANCELED)
                return 0;
            if (rc < 0) {
                wv_warn("httpc: waiting for curl's sockets: %s", wv_strerror(rc));
                if (wv_sleep_ms(10) == -ECANCELED)
                    return 0;
            }
            continue;
        }
        for (int i = 0; i < n; i++)
            if (!idle_fired(sc, evs[i].data.fd))
                drive(sc, evs[i].data.fd, socket_events(evs[i].events));
        if (wv_yield() == -ECANCELED)
            return 0;
    }
}

static void shard_close(httpc_shard *sc);

static int timer_main(void *arg)
{
    httpc_shard *sc = arg;
    for (;;) {
        wv_event_clear(&sc->kick);
        int64_t at = sc->timer_at;
        int rc;
        if (at > wv_now()) {
            sc->timer_parked_at = at;
            wv_deadline_set(at);
            rc = wv_event_wait(&sc->kick);
            wv_deadline_set(WV_NEVER);
            sc->timer_parked_at = TIMER_RUNNING;
            if (rc == 0)
                continue; /* curl's timeout moved: look again */
        } else {
            rc = wv_yield(); /* due now: the fibers already ready go first */
        }
        if (rc == -ECANCELED)
            break;
        if (sc->timer_at <= wv_now()) {
            sc->timer_at = WV_NEVER;
            drive(sc, CURL_SOCKET_TIMEOUT, 0);
        }
    }
    shard_close(sc);
    return 0;
}

/* ------------------------------------------------------ curl's callbacks */

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *arg, void *socketp)
{
    httpc_shard *sc = arg;
    uint8_t *w = watch_of(sc, fd);
    if (what == CURL_POLL_REMOVE) {
        if (w && (*w & WATCH_OURS) && (*w & WATCH_SET))
            *w |= WATCH_IDLE; /* the next request on its connection wants it again */
        else
            unwatch(sc, fd);
        return 0;
    }
    uint8_t want = (what & CURL_POLL_IN ? WATCH_IN : 0) | (what & CURL_POLL_OUT ? WATCH_OUT : 0);
    /* the table is trusted for our own sockets only: curl closes the
     * others itself, and the kernel takes them out of the set unseen */
    if (w && (*w & WATCH_OURS) && (*w & WATCH_SET) && (*w & (WATCH_IN | WATCH_OUT)) == want) {
        *w &= (uint8_t)~WATCH_IDLE; /* as it is: no call */
        return 0;
    }
    struct epoll_event ev = {.events = (want & WATCH_IN ? EPOLLIN : 0u) |
                                       (want & WATCH_OUT ? EPOLLOUT : 0u),
                             .data.fd = fd};
    int op = w ? (*w & WATCH_SET ? EPOLL_CTL_MOD : EPOLL_CTL_ADD) : EPOLL_CTL_ADD;
    if (epoll_ctl(sc->epfd, op, fd, &ev) < 0) {
        op = errno == EEXIST ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
        if (epoll_ctl(sc->epfd, op, fd, &ev) < 0) {
            /* -1 would make curl give up every transfer of the shard; this
             * one's own timeout ends it instead */
            wv_warn("httpc: cannot watch socket %d: %s", fd, wv_strerror(-errno));
            if (w)
                *w &= WATCH_OURS;
            return 0;
        }
    }
    if (w)
        *w = (uint8_t)((*w & WATCH_OURS) | WATCH_SET | want);
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *arg)
{
    httpc_shard *sc = arg;
    sc->timer_at = timeout_ms < 0 ? WV_NEVER : wv_now() + (int64_t)timeout_ms * HTTPC_NS_PER_MS;
    if (sc->timer_at < sc->timer_parked_at)
        wv_event_set(&sc->kick);
    return 0;
}

/* arg: the transfer that connects (a connection is made for one) */
static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *addr)
{
    httpc_transfer *t = arg;
    if (purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKET_BAD;
    int fd = wv_socket(addr->family, addr->socktype, addr->protocol);
    if (fd < 0) {
        t->socket_errno = -fd;
        return CURL_SOCKET_BAD;
    }
    uint8_t *w = watch_of(t->sc, fd);
    if (w)
        *w = WATCH_OURS;
    t->sc->stats.connections++;
    return fd;
}

/* arg: the shard (a connection may be closed long after the transfer
 * that made it is gone) */
static int close_socket(void *arg, curl_socket_t fd)
{
    httpc_shard *sc = arg;
    if ((size_t)fd < sc->nwatch) {
        /* out of the set first: closing alone would leave it there while
         * another process holds the socket too (a child between fork and
         * exec) */
        if (sc->watch[fd] & WATCH_SET)
            epoll_ctl(sc->epfd, EPOLL_CTL_DEL, fd, NULL);
        sc->watch[fd] = 0;
    }
    return wv_close(fd) < 0 ? 1 : 0;
}

/* ------------------------------------------------------------- the client */

static void transfer_destroy(httpc_transfer *t);

static void shard_free(httpc_shard *sc)
{
    if (sc->multi)
        curl_multi_cleanup(sc->multi); /* closes the cached connections */
    while (sc->pool) {
        httpc_transfer *t = sc->pool;
        sc->pool = t->pool_next;
        transfer_destroy(t);
    }
    if (sc->share)
        curl_share_cleanup(sc->share);
    for (int i = 0; i < 4; i++)
        curl_slist_free_all(sc->headers[i / 2][i % 2]);
    if (sc->epfd >= 0)
        wv_close(sc->epfd);
    free(sc->watch);
    if (here == sc)
        here = NULL;
    free(sc);
}

static void shard_close(httpc_shard *sc)
{
    sc->closing = true;
    wv_group_free(sc->io); /* cancels the io fiber and waits for it */
    sc->io = NULL;
    httpc_transfer *next;
    for (httpc_transfer *t = sc->transfers; t; t = next) {
        next = t->next;
        if (t->in_multi) {
            curl_multi_remove_handle(sc->multi, t->easy);
            t->in_multi = false;
            t->shut_down = true;
            wv_event_set(&t->wake);
        }
        if (t->is_stream && !t->busy)
            httpc_transfer_orphan(sc, t); /* nobody may ever close it */
    }
    /* their fibers still hold easy handles that point at the share */
    while (sc->ntransfers > 0) {
        wv_event_clear(&sc->idle);
        wv_event_wait_shielded(&sc->idle);
    }
    shard_free(sc);
}

bool httpc_slist_add(struct curl_slist **list, const char *line)
{
    struct curl_slist *l = curl_slist_append(*list, line);
    if (l)
        *list = l;
    return l != NULL;
}

/* The four lists of httpc_shard_headers. */
static bool shard_headers_make(httpc_shard *sc)
{
    for (int decode = 0; decode < 2; decode++) {
        for (int body = 0; body < 2; body++) {
            struct curl_slist **l = &sc->headers[decode][body];
            if ((decode && !httpc_slist_add(l, accept_encoding)) ||
                (body && (!httpc_slist_add(l, "Content-Type:") || !httpc_slist_add(l, "Expect:"))))
                return false;
        }
    }
    return true;
}

const struct curl_slist *httpc_shard_headers(httpc_shard *sc, bool decode, bool sends_body)
{
    return sc->headers[decode][sends_body];
}

static int shard_new(httpc_shard **out)
{
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK)
        return wv_fail(-ENOMEM, "httpc: curl_global_init failed: %s",
                       curl_easy_strerror(global_rc));
    httpc_shard *sc = calloc(1, sizeof *sc);
    if (!sc)
        return wv_fail(-ENOMEM, "httpc: out of memory");
    sc->epfd = epoll_create1(EPOLL_CLOEXEC);
    snprintf(sc->user_agent, sizeof sc->user_agent, "weave/%s", wv_version());
    sc->timer_at = WV_NEVER;
    sc->timer_parked_at = TIMER_RUNNING;
    if (sc->epfd < 0) {
        int rc = -errno;
        sc->epfd = -1;
        shard_free(sc);
        return wv_fail(rc, "httpc: epoll_create1: %s", wv_strerror(rc));
    }
    sc->multi = curl_multi_init();
    sc->share = curl_share_init();
    if (!sc->multi || !sc->share ||
        curl_share_setopt(sc->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION) != CURLSHE_OK ||
        !shard_headers_make(sc)) {
        shard_free(sc);
        return wv_fail(-ENOMEM, "httpc: out of memory");
    }
    curl_multi_setopt(sc->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(sc->multi, CURLMOPT_SOCKETDATA, sc);
    curl_multi_setopt(sc->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(sc->multi, CURLMOPT_TIMERDATA, sc);
    curl_multi_setopt(sc->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    /* curl sizes its connection cache at 4 times the transfers added, and
     * ours come and go with each request: between two bursts it would
     * close the connections the next burst wants. A fixed cache keeps
     * them (64 fibers GETting in a loop opened 1,830 connections for
     * 70,000 requests without it). */
    curl_multi_setopt(sc->multi, CURLMOPT_MAXCONNECTS, (long)IDLE_CONNECTIONS);

    int rc = -ENOMEM;
    sc->io = wv_group_new();
    if (sc->io)
        rc = wv_group_spawn(sc->io, io_main, sc,
                            &(wv_spawn_opts){.stack_size = DRIVER_STACK, .name = "httpc io"});
    if (rc == 0)
        rc = wv_spawn(timer_main, sc,
                      &(wv_spawn_opts){.stack_size = DRIVER_STACK, .name = "httpc timer"});
    if (rc < 0) {
        wv_group_free(sc->io); /* an io fiber that never ran still runs, and leaves */
        sc->io = NULL;
        shard_free(sc);
        return wv_fail(rc, "httpc: cannot start the client's fibers: %s", wv_strerror(rc));
    }
    *out = sc;
    return 0;
}

httpc_shard *httpc_shard_get(int *err)
{
    if (wv_shard_id() < 0 || !wv_fiber_id()) {
        *err = wv_fail(-EPERM, "httpc: requests are made from a fiber");
        return NULL;
    }
    if (here) {
        if (!here->closing)
            return here;
        *err = wv_fail(-ESHUTDOWN, "httpc: the runtime is stopping");
        return NULL;
    }
    httpc_shard *sc = NULL;
    int rc = shard_new(&sc);
    if (rc < 0) {
        *err = rc;
        return NULL;
    }
    here = sc;
    return sc;
}

bool httpc_shard_is_here(const httpc_shard *sc)
{
    return sc && sc == here;
}

void httpc_shard_count_retry(httpc_shard *sc)
{
    sc->stats.retries++;
}

void wv_httpc_stats_get(wv_httpc_stats *st)
{
    if (here)
        *st = here->stats;
    else
        memset(st, 0, sizeof *st);
}

/* ------------------------------------------------------------ the pool */

#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (curl_easy_setopt(e, (opt), (val)) != CURLE_OK)                                         \
            ok = false;                                                                            \
    } while (0)

/* What every transfer's easy handle has, whatever the request. */
static bool configure(httpc_shard *sc, httpc_transfer *t)
{
    CURL *e = t->easy;
    bool ok = true;
    SET(CURLOPT_PRIVATE, (char *)t);
    SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
    SET(CURLOPT_OPENSOCKETDATA, t);
    SET(CURLOPT_CLOSESOCKETFUNCTION, close_socket);
    SET(CURLOPT_CLOSESOCKETDATA, sc);
    SET(CURLOPT_SHARE, sc->share);
    SET(CURLOPT_NOSIGNAL, 1L);
    /* a transfer abandoned while its name is being resolved leaves curl's
     * resolver thread to finish alone, instead of the shard waiting for it */
    SET(CURLOPT_QUICK_EXIT, 1L);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_WRITEFUNCTION, httpc_on_body);
    SET(CURLOPT_WRITEDATA, t);
    SET(CURLOPT_HEADERFUNCTION, httpc_on_header);
    SET(CURLOPT_HEADERDATA, t);
    SET(CURLOPT_READFUNCTION, httpc_on_read);
    SET(CURLOPT_READDATA, t);
    SET(CURLOPT_SEEKFUNCTION, httpc_on_seek);
    SET(CURLOPT_SEEKDATA, t);
    /* a proxy's "200 Connection established" is not the answer */
    SET(CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    SET(CURLOPT_ERRORBUFFER, t->errbuf);
    SET(CURLOPT_TCP_KEEPALIVE, 1L);
    /* replaced by a User-Agent among the request's headers, if it has one */
    SET(CURLOPT_USERAGENT, sc->user_agent);
    /* a fresh or reset handle has curl's own method options: a GET */
    free(t->opts.ca_file);
    t->opts = (httpc_easy_opts){.plain_get = true};
    return ok;
}

#undef SET

static void transfer_destroy(httpc_transfer *t)
{
    if (t->easy)
        curl_easy_cleanup(t->easy);
    free(t->opts.ca_file);
    free(t);
}

int httpc_easy_reset(httpc_transfer *t)
{
    curl_easy_reset(t->easy); /* keeps the handle's caches, forgets every option */
    return configure(t->sc, t) ? 0 : -ENOMEM;
}

httpc_transfer *httpc_transfer_take(httpc_shard *sc)
{
    httpc_transfer *t = sc->pool;
    if (t) {
        sc->pool = t->pool_next;
        sc->npool--;
    } else {
        if (!(t = calloc(1, sizeof *t)))
            return NULL;
        t->sc = sc;
        if (!(t->easy = curl_easy_init()) || !configure(sc, t)) {
            transfer_destroy(t);
            return NULL;
        }
    }
    memset((char *)t + HTTPC_TRANSFER_REQUEST, 0, sizeof *t - HTTPC_TRANSFER_REQUEST);
    t->pool_next = NULL;
    t->errbuf[0] = '\0';
    t->what[0] = '\0';
    return t;
}

void httpc_transfer_give(httpc_shard *sc, httpc_transfer *t, bool reusable)
{
    if (t->headers) {
        if (t->easy) /* no pointer to freed memory left in the handle */
            curl_easy_setopt(t->easy, CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
        curl_slist_free_all(t->headers);
        t->headers = NULL;
    }
    wv_buf_free(&t->head);
    httpc_bodies_free(t);
    /* a transfer that ended paused leaves curl's pause state behind */
    reusable = reusable && !t->recv_paused && !t->send_paused;
    if (sc && reusable && t->easy && !sc->closing && sc->npool < POOL_MAX) {
        t->pool_next = sc->pool;
        sc->pool = t;
        sc->npool++;
        return;
    }
    transfer_destroy(t);
}

/* -------------------------------------------------------------- transfers */

int httpc_transfer_start(httpc_shard *sc, httpc_transfer *t)
{
    if (sc->closing)
        return wv_fail(-ESHUTDOWN, "the runtime is stopping");
    CURLMcode mc = curl_multi_add_handle(sc->multi, t->easy);
    if (mc != CURLM_OK)
        return wv_fail(mc == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO, "curl_multi_add_handle: %s",
                       curl_multi_strerror(mc));
    t->in_multi = true;
    t->prev = NULL;
    t->next = sc->transfers;
    if (sc->transfers)
        sc->transfers->prev = t;
    sc->transfers = t;
    sc->ntransfers++;
    sc->stats.requests++;
    sc->stats.in_flight++;
    return 0;
}

void httpc_transfer_abort(httpc_shard *sc, httpc_transfer *t)
{
    if (!t->in_multi)
        return;
    curl_multi_remove_handle(sc->multi, t->easy);
    t->in_multi = false;
}

void httpc_transfer_orphan(httpc_shard *sc, httpc_transfer *t)
{
    t->shut_down = true;
    httpc_transfer_end(sc, t);
    curl_easy_cleanup(t->easy); /* it points at the share, freed next */
    t->easy = NULL;
    t->sc = NULL;
    t->orphan = true;
}

void httpc_transfer_end(httpc_shard *sc, httpc_transfer *t)
{
    httpc_transfer_abort(sc, t);
    if (t->prev)
        t->prev->next = t->next;
    else
        sc->transfers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    sc->ntransfers--;
    sc->stats.in_flight--;
    if (sc->closing && sc->ntransfers == 0)
        wv_event_set(&sc->idle);
}
