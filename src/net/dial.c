/*
 * Resolving and dialing (include/weave/net.h): a name to addresses
 * without blocking the loop, and addresses to one connected stream, raced
 * as RFC 8305 ("Happy Eyeballs v2") describes.
 *
 * Names go to getaddrinfo on the offload pool: it honours /etc/hosts,
 * nsswitch and the system's resolver configuration exactly as every other
 * program on the machine does, and a numeric address skips it (no system
 * call at all). Fibers of a shard asking for the same name at once share
 * one lookup, and lookups never hold more than half the offload threads
 * (docs/decisions.md: measured against c-ares).
 *
 * With one address the caller's fiber connects by itself. With several,
 * attempts start one by one, the next after attempt_delay_ms without an
 * answer or at once when one fails, each in a fiber of its own; the first
 * to connect wins and the others are cancelled (their sockets closed).
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/un.h>

#include "net/net_internal.h"

enum { MAX_ADDRS = 16, DEFAULT_ATTEMPT_DELAY_MS = 250 };

/* ----------------------------------------------------------- resolving */

typedef struct resolve_job {
    const char *host;
    int family;
    struct addrinfo *res;
    int gai;
} resolve_job;

static int resolve_fn(void *arg)
{
    resolve_job *j = arg;
    struct addrinfo hints = {.ai_family = j->family, .ai_socktype = SOCK_STREAM};
    j->gai = getaddrinfo(j->host, NULL, &hints, &j->res);
    return 0;
}

static void set_port(struct sockaddr_storage *ss, int port)
{
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

/* A numeric address: 1 with it in *ss, 0 when host is a name. */
static int numeric(const char *host, int family, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (family != AF_INET6 && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        return 1;
    }
    if (family != AF_INET && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        return 1;
    }
    return 0;
}

/* RFC 8305 4: keep the resolver's order within each family, and alternate
 * the families starting with the first address's. The same address
 * listed twice is tried once. */
int net_interleave(const struct addrinfo *res, int port, struct sockaddr_storage *out, int max)
{
    const struct addrinfo *fam[2][MAX_ADDRS];
    int count[2] = {0, 0};
    int first = res ? res->ai_family : AF_INET6;
    for (const struct addrinfo *a = res; a; a = a->ai_next) {
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
            continue;
        int k = a->ai_family == first ? 0 : 1;
        if (count[k] < MAX_ADDRS)
            fam[k][count[k]++] = a;
    }
    int n = 0;
    for (int i = 0; n < max && (i < count[0] || i < count[1]); i++) {
        for (int k = 0; k < 2 && n < max; k++) {
            if (i >= count[k])
                continue;
            memset(&out[n], 0, sizeof out[n]);
            memcpy(&out[n], fam[k][i]->ai_addr, fam[k][i]->ai_addrlen);
            set_port(&out[n], port);
            bool dup = false;
            for (int j = 0; j < n && !dup; j++)
                dup = memcmp(&out[j], &out[n], sizeof out[n]) == 0;
            if (!dup)
                n++;
        }
    }
    return n;
}

/*
 * Lookups in flight on this shard, so fibers asking for the same name at
 * once share one (a reconnect storm to one host costs one lookup), and a
 * cap on lookups in the whole process, so a resolver that does not answer
 * cannot hold every offload thread (SQLite and file reads share them).
 */
typedef struct lookup lookup;
struct lookup {
    char host[256];
    int family;
    wv_event done;
    int refs;   /* the fiber resolving and those waiting for it */
    int result; /* the count, or the error */
    char why[200];
    struct sockaddr_storage addrs[MAX_ADDRS]; /* port 0 */
    lookup *next;
};

static _Thread_local lookup *in_flight;
static _Atomic int lookups_running;
_Atomic unsigned long net_lookups;

static void lookup_unref(lookup *l)
{
    if (--l->refs == 0)
        free(l);
}

/* Answered: later fibers start a lookup of their own. */
static void lookup_unlink(lookup *l)
{
    for (lookup **p = &in_flight; *p; p = &(*p)->next)
        if (*p == l) {
            *p = l->next;
            break;
        }
}

/* Resolve into l (the fiber that made it), under the process-wide cap. */
static void lookup_run(lookup *l)
{
    int cap = wv_offload_threads() / 2;
    if (cap < 1)
        cap = 1;
    while (atomic_fetch_add(&lookups_running, 1) >= cap) {
        atomic_fetch_sub(&lookups_running, 1);
        int rc = wv_sleep_ms(1); /* rare: the resolver is slow for everyone */
        if (rc < 0) {
            l->result = rc;
            return;
        }
    }
    resolve_job j = {.host = l->host, .family = l->family};
    atomic_fetch_add(&net_lookups, 1);
    int rc = wv_offload(resolve_fn, &j);
    atomic_fetch_sub(&lookups_running, 1);
    if (rc < 0) {
        l->result = rc;
    } else if (j.gai != 0) {
        l->result = j.gai == EAI_AGAIN ? -EAGAIN : j.gai == EAI_MEMORY ? -ENOMEM : -EHOSTUNREACH;
        snprintf(l->why, sizeof l->why, "%s", gai_strerror(j.gai));
    } else {
        l->result = net_interleave(j.res, 0, l->addrs, MAX_ADDRS);
        if (l->result == 0) {
            l->result = -EHOSTUNREACH;
            snprintf(l->why, sizeof l->why, "no IPv4 or IPv6 address");
        }
    }
    if (j.res)
        freeaddrinfo(j.res);
}

int wv_resolve(const char *host, int port, int family, struct sockaddr_storage *out, int max)
{
    if (!host || !*host || max < 1 || port < 0 || port > 65535)
        return wv_fail(-EINVAL, "resolve: no host, or a bad port or count");
    if (family != AF_UNSPEC && family != AF_INET && family != AF_INET6)
        return wv_fail(-EINVAL, "resolve: family must be AF_UNSPEC, AF_INET or AF_INET6");
    if (numeric(host, family, &out[0])) {
        set_port(&out[0], port);
        return 1;
    }
    if (strlen(host) >= sizeof in_flight->host)
        return wv_fail(-EINVAL, "cannot resolve %.60s...: the name is too long", host);
    if (wv_shard_id() < 0)
        return -EPERM;
    for (;;) {
        lookup *l = in_flight;
        while (l && (l->family != family || strcmp(l->host, host) != 0))
            l = l->next;
        int rc;
        if (l) { /* someone is resolving it: wait for that answer */
            l->refs++;
            rc = wv_event_wait(&l->done);
            if (rc < 0) {
                lookup_unref(l);
                return wv_fail(rc, "cannot resolve %s: %s", host, wv_strerror(rc));
            }
            if (l->result == -ECANCELED || l->result == -ETIMEDOUT) {
                lookup_unref(l); /* its fiber gave up, not the resolver: ask again */
                continue;
            }
        } else {
            l = calloc(1, sizeof *l);
            if (!l)
                return wv_fail(-ENOMEM, "resolve: out of memory");
            snprintf(l->host, sizeof l->host, "%s", host);
            l->family = family;
            l->refs = 1;
            l->next = in_flight;
            in_flight = l;
            lookup_run(l);
            lookup_unlink(l);
            wv_event_set(&l->done);
        }
        rc = l->result;
        if (rc > 0) {
            int n = rc < max ? rc : max;
            for (int i = 0; i < n; i++) {
                out[i] = l->addrs[i];
                set_port(&out[i], port);
            }
            rc = n;
        } else {
            rc = wv_fail(rc, "cannot resolve %s: %s", host, l->why[0] ? l->why : wv_strerror(rc));
        }
        lookup_unref(l);
        return rc;
    }
}

/* -------------------------------------------------------------- sockets */

static socklen_t addr_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET6  ? sizeof(struct sockaddr_in6)
           : ss->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                      : sizeof(struct sockaddr_un);
}

static void tcp_options(int fd, const wv_dial_opts *o)
{
    int one = 1;
    if (!o->nagle)
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (o->keepalive_s > 0) {
        int idle = o->keepalive_s, intvl = 10, cnt = 3;
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
    }
}

/* One connection attempt in the calling fiber, within `until` as well as
 * the fiber's deadline: the connected socket, or an error. */
static int connect_one(const struct sockaddr_storage *ss, int64_t until)
{
    int fd = wv_socket(ss->ss_family, SOCK_STREAM, 0);
    if (fd < 0)
        return wv_fail(fd, "socket: %s", wv_strerror(fd));
    int64_t old = wv_deadline();
    if (until < old)
        wv_deadline_set(until);
    int rc = wv_connect(fd, (const struct sockaddr *)ss, addr_len(ss));
    wv_deadline_set(old);
    if (rc < 0) {
        wv_close(fd);
        /* our own attempt timeout, not the fiber's deadline */
        if (rc == -ETIMEDOUT && wv_now() < old)
            return wv_fail(-ETIMEDOUT, "connect timed out");
        return wv_fail(rc, "%s", wv_strerror(rc));
    }
    return fd;
}

/* ---------------------------------------------------------------- racing */

typedef struct race race;

typedef struct attempt {
    race *r;
    const struct sockaddr_storage *addr;
} attempt;

struct race {
    attempt at[MAX_ADDRS];
    int64_t until; /* each attempt's own timeout */
    int winner;    /* the connected socket, or -1 */
    int last_err;
    char last_msg[200];
    int running;
    wv_event changed; /* an attempt ended */
};

static int attempt_fn(void *arg)
{
    attempt *a = arg;
    race *r = a->r;
    int fd = connect_one(a->addr, r->until);
    r->running--;
    if (fd >= 0) {
        if (r->winner < 0)
            r->winner = fd;
        else
            wv_close(fd); /* a tie: the first one wins */
    } else if (fd != -ECANCELED) {
        r->last_err = fd;
        snprintf(r->last_msg, sizeof r->last_msg, "%s",
                 *wv_errmsg() ? wv_errmsg() : wv_strerror(fd));
    }
    wv_event_set(&r->changed);
    return 0;
}

/* Race the addresses: the winning socket, or the last error. */
int net_race(const struct sockaddr_storage *addrs, int n, const wv_dial_opts *o)
{
    int64_t delay = o->attempt_delay_ms > 0 ? o->attempt_delay_ms : DEFAULT_ATTEMPT_DELAY_MS;
    int64_t until = o->connect_timeout_ms > 0 ? wv_after_ms(o->connect_timeout_ms) : WV_NEVER;
    if (n == 1)
        return connect_one(&addrs[0], until);
    race r = {.until = until, .winner = -1, .last_err = -ECONNREFUSED};
    wv_group *g = wv_group_new();
    if (!g)
        return -ENOMEM;
    int started = 0, rc = 0;
    int64_t next_start = 0, deadline = wv_deadline();
    while (r.winner < 0) {
        if (started < n && (r.running == 0 || wv_now() >= next_start)) {
            r.at[started] = (attempt){.r = &r, .addr = &addrs[started]};
            r.running++;
            rc = wv_group_spawn(g, attempt_fn, &r.at[started], &(wv_spawn_opts){.name = "dial"});
            if (rc < 0) {
                r.running--;
                break;
            }
            started++;
            next_start = wv_now() + delay * 1000000;
            continue;
        }
        if (r.running == 0) /* every address failed */
            break;
        wv_event_clear(&r.changed);
        int64_t wake = started < n && next_start < deadline ? next_start : deadline;
        wv_deadline_set(wake);
        rc = wv_event_wait(&r.changed);
        wv_deadline_set(deadline);
        if (rc == -ETIMEDOUT && wv_now() < deadline)
            rc = 0; /* time to start the next attempt */
        if (rc < 0)
            break;
    }
    wv_group_cancel(g);
    wv_group_free(g); /* the losers close their sockets */
    if (r.winner >= 0)
        return r.winner;
    if (rc < 0) /* the fiber's deadline or cancellation */
        return wv_fail(rc, "%s", wv_strerror(rc));
    return wv_fail(r.last_err, "%s", r.last_msg);
}

/* ---------------------------------------------------------------- dialing */

static int unix_socket(const char *path)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_un *un = (struct sockaddr_un *)&ss;
    if (strlen(path) >= sizeof un->sun_path)
        return wv_fail(-ENAMETOOLONG, "the socket path %s is too long", path);
    un->sun_family = AF_UNIX;
    strcpy(un->sun_path, path);
    return connect_one(&ss, WV_NEVER);
}

static int finish(int fd, const char *host, int port, const wv_dial_opts *o, bool tls,
                  wv_stream **out)
{
    if (fd < 0) {
        char why[200];
        snprintf(why, sizeof why, "%s", wv_errmsg()); /* connect_one's, always set */
        return port ? wv_fail(fd, "cannot connect to %s%s%s:%d: %s", strchr(host, ':') ? "[" : "",
                              host, strchr(host, ':') ? "]" : "", port, why)
                    : wv_fail(fd, "cannot connect to unix:%s: %s", host, why);
    }
    if (port)
        tcp_options(fd, o);
    wv_stream *s;
    int rc = wv_stream_open(fd, &s);
    if (rc < 0)
        return rc;
    if (tls) {
        const char *name = o->server_name ? o->server_name : port ? host : NULL;
        rc = wv_stream_start_tls(s, o->tls, name);
        if (rc < 0) {
            wv_stream_close(s);
            return rc;
        }
    }
    *out = s;
    return 0;
}

static int dial(const char *host, int port, const wv_dial_opts *o, bool tls, wv_stream **out)
{
    *out = NULL;
    if (wv_shard_id() < 0)
        return -EPERM;
    if (host[0] == '/')
        return finish(unix_socket(host), host, 0, o, tls, out);
    if (port <= 0 || port > 65535)
        return wv_fail(-EINVAL, "dial %s: a port 1-65535 is needed", host);
    struct sockaddr_storage addrs[MAX_ADDRS];
    int n = wv_resolve(host, port, o->family, addrs, MAX_ADDRS);
    if (n < 0)
        return n;
    return finish(net_race(addrs, n, o), host, port, o, tls, out);
}

int wv_dial_host(const char *host, int port, const wv_dial_opts *opts, wv_stream **out)
{
    wv_dial_opts o = opts ? *opts : (wv_dial_opts){0};
    if (!out)
        return -EINVAL;
    if (!host || !*host) {
        *out = NULL;
        return wv_fail(-EINVAL, "dial: no host");
    }
    return dial(host, port, &o, o.tls != NULL, out);
}

/* "host:port", "[v6]:port", "/path", "unix:/path" (not a URL). */
static int dial_plain_address(const char *address, const wv_dial_opts *o, wv_stream **out)
{
    if (address[0] == '/')
        return dial(address, 0, o, o->tls != NULL, out);
    if (strncmp(address, "unix:", 5) == 0)
        return dial(address + 5, 0, o, o->tls != NULL, out);
    char host[256];
    const char *colon;
    if (address[0] == '[') {
        const char *close = strchr(address, ']');
        if (!close || close[1] != ':' || (size_t)(close - address - 1) >= sizeof host)
            return wv_fail(-EINVAL, "dial: bad address \"%s\" (expected [v6]:port)", address);
        memcpy(host, address + 1, (size_t)(close - address - 1));
        host[close - address - 1] = '\0';
        colon = close + 1;
    } else {
        colon = strrchr(address, ':');
        if (!colon || strchr(address, ':') != colon || (size_t)(colon - address) >= sizeof host)
            return wv_fail(-EINVAL, "dial: bad address \"%s\" (expected host:port)", address);
        memcpy(host, address, (size_t)(colon - address));
        host[colon - address] = '\0';
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (!host[0] || colon[1] == '\0' || *end || port < 1 || port > 65535)
        return wv_fail(-EINVAL, "dial: bad address \"%s\" (expected host:port)", address);
    return dial(host, (int)port, o, o->tls != NULL, out);
}

int wv_dial(const char *address, const wv_dial_opts *opts, wv_stream **out)
{
    wv_dial_opts o = opts ? *opts : (wv_dial_opts){0};
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!address || !*address)
        return wv_fail(-EINVAL, "dial: no address");
    if (!strstr(address, "://") && strncmp(address, "unix:/", 6) != 0)
        return dial_plain_address(address, &o, out);
    if (strncmp(address, "unix:", 5) == 0 && !strstr(address, "://"))
        return dial_plain_address(address, &o, out);
    wv_url u;
    int rc = wv_url_parse(address, &u);
    if (rc < 0)
        return rc;
    bool tls = o.tls != NULL || wv_url_scheme_is_tls(u.scheme);
    if (strcmp(u.scheme, "unix") == 0)
        rc = dial(u.path, 0, &o, tls, out);
    else if (u.host[0] == '/')
        rc = dial(u.host, 0, &o, tls, out);
    else if (!u.host[0])
        rc = wv_fail(-EINVAL, "dial: the URL names no host");
    else if (u.port == 0)
        rc = wv_fail(-EINVAL, "dial: the URL names no port and %s has no default", u.scheme);
    else
        rc = dial(u.host, u.port, &o, tls, out);
    wv_url_free(&u);
    return rc;
}
