/*
 * bench/bench_resolve.c: how weave should resolve names (bench/resolve/).
 *
 * wv_resolve (src/net/dial.c) runs getaddrinfo on the offload pool; the
 * alternative was c-ares driven by each shard's loop. This program measures
 * both, as bench/resolve/run.sh runs them (alternating, medians) and
 * bench/resolve/RESULTS.md records.
 *
 *     bench_resolve <figure> [n=N] [conc=C] [metric=M] [unit=us] [threads=T]
 *                   [stayopen=1] [nosort=1]
 *
 * prints one line `value=<number>` on stdout; every detail (lookups per
 * second, CPU, latency percentiles, how many c-ares answers came back before
 * ares_getaddrinfo returned) goes to stderr. A figure whose answers are
 * wrong prints why and exits 1 without a value line.
 *
 *   n        lookups timed (after a warm-up of n/10, at most 2000)
 *   conc     fibers resolving at once on the one shard (default 1); each
 *            does n/conc lookups back to back
 *   metric   per_lookup (default): wall time / lookups, the inverse of
 *            throughput; mean, p50, p99: each call's own latency;
 *            loop_cpu: CPU time of the shard's thread / lookups (what the
 *            loop pays); cpu: the whole process's CPU time / lookups
 *   unit     ns (default) or us
 *   threads  offload threads (wv_main_opts.offload_threads; 0 = the
 *            runtime's default, 4)
 *   stayopen c-ares keeps its UDP socket open between queries
 *            (ARES_FLAG_STAYOPEN; by default it closes it when idle)
 *   nosort   c-ares skips its RFC 6724 sort (ARES_AI_NOSORT), which costs a
 *            socket + connect + getsockname + close per address
 *
 * Figures (hosts: "localhost", answered from /etc/hosts; dns: names under
 * weave-bench.test, answered by bench/resolve/fake_dns.py on
 * 127.0.0.1:$FAKE_DNS_PORT, default 5353, which must be running):
 *
 *   gai_pool     hosts  wv_resolve("localhost", 80, AF_UNSPEC): getaddrinfo
 *                       on the offload pool
 *   ares_files   hosts  c-ares on the shard's loop, ARES_OPT_LOOKUPS "f"
 *   gai_direct   hosts  getaddrinfo in a plain loop, no runtime (the floor)
 *   ares_direct  hosts  ares_getaddrinfo, files only, plain loop, no runtime
 *   offload_noop -      wv_offload of an empty function (the thread hop)
 *   res_pool     dns    glibc's stub resolver (res_nquery, the code under
 *                       getaddrinfo's "dns" source) on the offload pool,
 *                       pointed at the fake server: one A query per lookup
 *   ares_dns     dns    c-ares on the shard's loop, DNS only, pointed at
 *                       the fake server, AF_INET: one A query per lookup
 *
 * getaddrinfo itself cannot be pointed at a server on another port without
 * editing /etc/resolv.conf, hence res_pool as its stand-in for the DNS
 * figures (what it leaves out: nsswitch, /etc/hosts, the A+AAAA pair).
 *
 * Building: CMake builds every bench/bench_*.c, but only CMake knows
 * whether c-ares is there to link, so the c-ares build is opted into with
 * WEAVE_HAVE_CARES (bench/resolve/RESULTS.md has the CMakeLists.txt lines);
 * without it, or without <ares.h>, this is a stub that says so. By hand:
 *
 *     cc -O2 -std=c17 -D_GNU_SOURCE -DWEAVE_HAVE_CARES -Iinclude \
 *        bench/bench_resolve.c build/release/libweave.a \
 *        $(pkg-config --libs zlib libbrotlienc libzstd libpq sqlite3 openssl \
 *          libcares) -lpthread -lm -o /tmp/bench_resolve
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#if defined(WEAVE_HAVE_CARES) && defined(__has_include)
#if __has_include(<ares.h>)
#define BENCH_RESOLVE_CARES 1
#endif
#endif

#ifndef BENCH_RESOLVE_CARES

#include <stdio.h>

int main(void)
{
    puts("bench_resolve: built without c-ares");
    return 0;
}

#else

#include <weave/net.h>
#include <weave/rt.h>

#include <ares.h>
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <resolv.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

enum { MAX_ADDRS = 16, MAX_SOCKS = 8, MAX_SHARDS = 64 };

#define HOSTS_NAME "localhost"
#define DNS_ZONE   "weave-bench.test"

typedef struct figure figure;
struct figure {
    const char *name;
    long default_n;
    bool runtime;                                                 /* runs inside wv_main */
    bool dns;                                                     /* needs the fake DNS server */
    int (*lookup)(long i, struct sockaddr_storage *out, int max); /* one resolution */
    int (*run_plain)(long n);                                     /* no runtime */
    const char *what;
};

static const figure *current;
static long arg_n, arg_conc = 1, arg_threads;
static bool arg_stayopen, arg_nosort;
static const char *arg_metric = "per_lookup";
static double result;
static bool reported;
static int64_t *lat;        /* each call's latency (the timed ones first) */
static int64_t wall_ns;     /* the timed lookups' wall time */
static int64_t loop_cpu_ns; /* CPU time of the thread that ran them (the shard's) */
static int64_t proc_cpu_ns; /* CPU time of the whole process meanwhile */
static long sync_answers;   /* c-ares callbacks run inside ares_getaddrinfo */
static long async_answers;  /* ... and later, from the loop */
static long driver_fibers;  /* socket-watching fibers started */
static long sockets_opened; /* sockets c-ares opened (sock_state_cb) */
static int dns_port = 5353;

static const unsigned char dns_answer_v4[4] = {127, 0, 0, 77}; /* fake_dns.py's A */

static void note(const char *fmt, ...) WV_PRINTF(1, 2);
static void note(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "bench_resolve %s: ", current->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static int wrong(const char *fmt, ...) WV_PRINTF(1, 2);
static int wrong(const char *fmt, ...)
{
    va_list ap;
    reported = true;
    fprintf(stderr, "bench_resolve %s: WRONG: ", current->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return -EIO;
}

static int64_t clock_ns(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t now_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

/* A DNS name for lookup i: a few distinct names, as a service's upstreams. */
static const char *dns_name(long i, char *buf, size_t cap)
{
    snprintf(buf, cap, "h%ld." DNS_ZONE, i % 8);
    return buf;
}

/* The first answer must be what the source hands out, with port 80 set. */
static int check_answer(const struct sockaddr_storage *ss, int n)
{
    if (n < 1)
        return wrong("no address");
    if (ss->ss_family != AF_INET)
        return wrong("first address of family %d, expected AF_INET", ss->ss_family);
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
    const unsigned char *a = (const unsigned char *)&v4->sin_addr;
    unsigned char want[4] = {127, 0, 0, 1};
    if (current->dns)
        memcpy(want, dns_answer_v4, 4);
    if (memcmp(a, want, 4) != 0 || ntohs(v4->sin_port) != 80)
        return wrong("got %u.%u.%u.%u:%u, expected %u.%u.%u.%u:80", a[0], a[1], a[2], a[3],
                     ntohs(v4->sin_port), want[0], want[1], want[2], want[3]);
    return 0;
}

/* ------------------------------------------------------ getaddrinfo, pool */

static int lookup_gai_pool(long i, struct sockaddr_storage *out, int max)
{
    (void)i;
    return wv_resolve(HOSTS_NAME, 80, AF_UNSPEC, out, max);
}

static int noop_fn(void *arg)
{
    (void)arg;
    return 7;
}

static int lookup_offload_noop(long i, struct sockaddr_storage *out, int max)
{
    (void)i;
    (void)max;
    int rc = wv_offload(noop_fn, NULL);
    if (rc != 7)
        return rc < 0 ? rc : -EIO;
    struct sockaddr_in *v4 = (struct sockaddr_in *)out; /* what check_answer wants */
    memset(out, 0, sizeof *out);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(80);
    v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return 1;
}

/* ------------------------------------------- glibc's stub resolver, pool */

/* One resolver state per offload thread, made once: nameserver the fake
 * server, two tries, 2 s timeout. */
static _Thread_local struct __res_state res_st;
static _Thread_local bool res_ready;

typedef struct resq_job {
    const char *name;
    unsigned char addr[4];
    int rc;
    int herr; /* res_nquery's h_errno */
} resq_job;

/* The first A record of a DNS answer, or -1. */
static int first_a(const unsigned char *msg, int len, unsigned char out[4])
{
    if (len < 12)
        return -1;
    int qd = msg[4] << 8 | msg[5], an = msg[6] << 8 | msg[7];
    int i = 12;
    for (int q = 0; q < qd; q++) { /* skip the questions */
        while (i < len && msg[i] != 0) {
            if ((msg[i] & 0xC0) == 0xC0) {
                i++;
                break;
            }
            i += msg[i] + 1;
        }
        i += 1 + 4;
    }
    for (int a = 0; a < an && i < len; a++) {
        while (i < len && msg[i] != 0) { /* the owner name */
            if ((msg[i] & 0xC0) == 0xC0) {
                i++;
                break;
            }
            i += msg[i] + 1;
        }
        i++;
        if (i + 10 > len)
            return -1;
        int type = msg[i] << 8 | msg[i + 1];
        int rdlen = msg[i + 8] << 8 | msg[i + 9];
        i += 10;
        if (i + rdlen > len)
            return -1;
        if (type == ns_t_a && rdlen == 4) {
            memcpy(out, msg + i, 4);
            return 0;
        }
        i += rdlen;
    }
    return -1;
}

static int resq_fn(void *arg)
{
    resq_job *j = arg;
    if (!res_ready) {
        memset(&res_st, 0, sizeof res_st);
        if (res_ninit(&res_st) != 0) {
            j->rc = -EIO;
            return 0;
        }
        res_st.nscount = 1;
        res_st.nsaddr_list[0].sin_family = AF_INET;
        res_st.nsaddr_list[0].sin_port = htons((uint16_t)dns_port);
        res_st.nsaddr_list[0].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        res_st.retrans = 2;
        res_st.retry = 2;
        res_ready = true;
    }
    unsigned char ans[512];
    int len = res_nquery(&res_st, j->name, ns_c_in, ns_t_a, ans, sizeof ans);
    j->herr = res_st.res_h_errno;
    j->rc = len < 0 ? -EHOSTUNREACH : first_a(ans, len, j->addr) < 0 ? -EPROTO : 0;
    return 0;
}

static int lookup_res_pool(long i, struct sockaddr_storage *out, int max)
{
    (void)max;
    char name[64];
    resq_job j = {.name = dns_name(i, name, sizeof name)};
    int rc = wv_offload(resq_fn, &j);
    if (rc < 0)
        return rc;
    if (j.rc < 0)
        return wv_fail(j.rc, "res_nquery %s: %s", j.name, hstrerror(j.herr));
    struct sockaddr_in *v4 = (struct sockaddr_in *)out;
    memset(out, 0, sizeof *out);
    v4->sin_family = AF_INET;
    v4->sin_port = htons(80);
    memcpy(&v4->sin_addr, j.addr, 4);
    return 1;
}

/* ------------------------------------------------- c-ares on the loop */

/*
 * One ares_channel per shard. c-ares says which sockets it wants watched
 * through sock_state_cb; each gets a fiber that waits in wv_fd_wait and
 * hands readiness to ares_process_fd (one for reading, one for writing
 * while c-ares wants that: TCP). A wv_timer at ares_timeout() runs
 * ares_process_fd with no socket for retries and timeouts. A lookup calls
 * ares_getaddrinfo; its callback fills the query and sets its event, and
 * may run before ares_getaddrinfo returns (a hosts-file answer), in which
 * case the fiber never suspends.
 */
typedef struct resolver resolver;

typedef struct sock_slot {
    resolver *r;
    int fd; /* -1: free */
    unsigned gen;
    bool want_in, want_out;
    bool in_fiber, out_fiber; /* a watching fiber runs for this generation */
} sock_slot;

struct resolver {
    ares_channel ch;
    sock_slot socks[MAX_SOCKS];
    wv_timer timer;
    int watchers; /* watching fibers alive, of any generation */
};

static resolver *resolvers[MAX_SHARDS];

static void arm_timeout(resolver *r);

/* What a watching fiber is given: its socket as it was when started. */
typedef struct watch_arg {
    sock_slot *s;
    unsigned gen;
    int fd;
    int dir; /* WV_IN or WV_OUT */
} watch_arg;

static int watch_fn(void *arg)
{
    watch_arg w = *(watch_arg *)arg;
    free(arg);
    sock_slot *s = w.s;
    resolver *r = s->r;
    int fresh = 0;
    while (s->gen == w.gen && (w.dir == WV_IN ? s->want_in : s->want_out)) {
        int rc = wv_fd_wait(w.fd, w.dir | fresh, WV_NEVER);
        if (s->gen != w.gen || rc < 0)
            break; /* closed (-EBADF, and maybe reused), or cancelled */
        if (w.dir == WV_IN)
            ares_process_fd(r->ch, w.fd, ARES_SOCKET_BAD); /* reads until EAGAIN */
        else
            ares_process_fd(r->ch, ARES_SOCKET_BAD, w.fd);
        fresh = WV_FRESH;
        arm_timeout(r);
    }
    if (s->gen == w.gen)
        *(w.dir == WV_IN ? &s->in_fiber : &s->out_fiber) = false;
    r->watchers--;
    return 0;
}

static void watch(sock_slot *s, int dir)
{
    bool *running = dir == WV_IN ? &s->in_fiber : &s->out_fiber;
    if (*running)
        return;
    watch_arg *w = malloc(sizeof *w);
    if (!w)
        return;
    *w = (watch_arg){.s = s, .gen = s->gen, .fd = s->fd, .dir = dir};
    if (wv_spawn(watch_fn, w, &(wv_spawn_opts){.name = dir == WV_IN ? "ares-in" : "ares-out"}) <
        0) {
        free(w);
        return;
    }
    *running = true;
    s->r->watchers++;
    driver_fibers++;
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    resolver *r = data;
    sock_slot *s = NULL, *free_slot = NULL;
    for (int i = 0; i < MAX_SOCKS; i++) {
        if (r->socks[i].fd == fd)
            s = &r->socks[i];
        else if (r->socks[i].fd < 0 && !free_slot)
            free_slot = &r->socks[i];
    }
    if (!readable && !writable) { /* c-ares closes it next */
        if (s) {
            wv_fd_forget(fd); /* its watchers wake with -EBADF */
            s->fd = -1;
            s->gen++;
            s->want_in = s->want_out = false;
            s->in_fiber = s->out_fiber = false;
        }
        return;
    }
    if (!s) {
        if (!free_slot) {
            wv_error("bench_resolve: more than %d c-ares sockets", MAX_SOCKS);
            return;
        }
        s = free_slot;
        s->fd = fd;
        s->r = r;
        sockets_opened++;
    }
    s->want_in = readable;
    s->want_out = writable;
    if (readable)
        watch(s, WV_IN);
    if (writable)
        watch(s, WV_OUT);
}

static void timer_cb(wv_timer *t)
{
    resolver *r = (resolver *)((char *)t - offsetof(resolver, timer));
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* retries, timeouts */
    arm_timeout(r);
}

static void arm_timeout(resolver *r)
{
    struct timeval tv, *tvp = ares_timeout(r->ch, NULL, &tv);
    if (!tvp) {
        wv_timer_stop(&r->timer);
        return;
    }
    wv_timer_start(&r->timer, wv_now() + (int64_t)tvp->tv_sec * 1000000000 + tvp->tv_usec * 1000,
                   timer_cb);
}

static int resolver_new(bool dns, resolver **out)
{
    resolver *r = calloc(1, sizeof *r);
    if (!r)
        return -ENOMEM;
    for (int i = 0; i < MAX_SOCKS; i++)
        r->socks[i].fd = -1;
    struct ares_options o = {0};
    int mask = ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB;
    o.lookups = dns ? "b" : "f";
    o.sock_state_cb = sock_state_cb;
    o.sock_state_cb_data = r;
    if (dns) { /* no search list; two tries of 2 s, as res_pool's */
        mask |= ARES_OPT_DOMAINS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS;
        o.ndomains = 0;
        o.domains = NULL;
        o.timeout = 2000;
        o.tries = 2;
        o.flags = ARES_FLAG_NOSEARCH | (arg_stayopen ? ARES_FLAG_STAYOPEN : 0);
    }
    int st = ares_init_options(&r->ch, &o, mask);
    if (st != ARES_SUCCESS) {
        free(r);
        return wrong("ares_init_options: %s", ares_strerror(st));
    }
    if (dns) {
        char csv[64];
        snprintf(csv, sizeof csv, "127.0.0.1:%d", dns_port);
        st = ares_set_servers_ports_csv(r->ch, csv);
        if (st != ARES_SUCCESS) {
            ares_destroy(r->ch);
            free(r);
            return wrong("ares_set_servers_ports_csv: %s", ares_strerror(st));
        }
    }
    *out = r;
    return 0;
}

static void resolver_free(resolver *r)
{
    if (!r)
        return;
    wv_timer_stop(&r->timer);
    ares_destroy(r->ch);    /* closes its sockets: sock_state_cb forgets them */
    while (r->watchers > 0) /* their fibers wake with -EBADF and leave */
        if (wv_yield() < 0)
            return; /* cancelled: leave r to them */
    free(r);
}

typedef struct cquery {
    wv_event done;
    int status;
    struct ares_addrinfo *res;
    bool abandoned; /* the fiber gave up: the callback frees */
} cquery;

static void cquery_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    cquery *q = arg;
    if (q->abandoned) {
        if (res)
            ares_freeaddrinfo(res);
        free(q);
        return;
    }
    q->status = status;
    q->res = res;
    wv_event_set(&q->done);
}

/* What wv_resolve would be with c-ares: up to max addresses for host. */
static int cares_resolve(const char *host, int port, int family, struct sockaddr_storage *out,
                         int max)
{
    int shard = wv_shard_id();
    if (shard < 0 || shard >= MAX_SHARDS)
        return -EPERM;
    resolver *r = resolvers[shard];
    if (!r)
        return -ENOTCONN;
    cquery *q = calloc(1, sizeof *q);
    if (!q)
        return -ENOMEM;
    struct ares_addrinfo_hints h = {.ai_family = family,
                                    .ai_socktype = SOCK_STREAM,
                                    .ai_flags = arg_nosort ? ARES_AI_NOSORT : 0};
    ares_getaddrinfo(r->ch, host, NULL, &h, cquery_cb, q);
    if (wv_event_is_set(&q->done)) {
        sync_answers++;
    } else {
        arm_timeout(r);
        int rc = wv_event_wait(&q->done);
        if (rc < 0) {
            q->abandoned = true;
            return rc;
        }
        async_answers++;
    }
    int n = 0;
    if (q->status == ARES_SUCCESS) {
        for (struct ares_addrinfo_node *a = q->res->nodes; a && n < max; a = a->ai_next) {
            if (a->ai_family != AF_INET && a->ai_family != AF_INET6)
                continue;
            memset(&out[n], 0, sizeof out[n]);
            memcpy(&out[n], a->ai_addr, a->ai_addrlen);
            if (a->ai_family == AF_INET)
                ((struct sockaddr_in *)&out[n])->sin_port = htons((uint16_t)port);
            else
                ((struct sockaddr_in6 *)&out[n])->sin6_port = htons((uint16_t)port);
            n++;
        }
    }
    int status = q->status;
    if (q->res)
        ares_freeaddrinfo(q->res);
    free(q);
    if (status != ARES_SUCCESS)
        return wv_fail(-EHOSTUNREACH, "cannot resolve %s: %s", host, ares_strerror(status));
    return n ? n : wv_fail(-EHOSTUNREACH, "cannot resolve %s: no address", host);
}

static int lookup_ares_files(long i, struct sockaddr_storage *out, int max)
{
    (void)i;
    return cares_resolve(HOSTS_NAME, 80, AF_UNSPEC, out, max);
}

static int lookup_ares_dns(long i, struct sockaddr_storage *out, int max)
{
    char name[64];
    return cares_resolve(dns_name(i, name, sizeof name), 80, AF_INET, out, max);
}

/* ---------------------------------------------- no runtime: the floors */

static int plain_loop(long n, int (*one)(struct sockaddr_storage *out))
{
    struct sockaddr_storage ss;
    long warm = n / 10 < 2000 ? n / 10 : 2000;
    for (long i = 0; i < warm; i++)
        if (one(&ss) < 0)
            return -EIO;
    int64_t t0 = now_ns();
    int64_t c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID), p0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    for (long i = 0; i < n; i++) {
        int64_t a = now_ns();
        int rc = one(&ss);
        lat[i] = now_ns() - a;
        if (rc < 0)
            return -EIO;
        if (i == 0 && check_answer(&ss, 1) < 0)
            return -EIO;
    }
    wall_ns = now_ns() - t0;
    loop_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
    proc_cpu_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - p0;
    note("%ld lookups in %.1f ms", n, (double)wall_ns / 1e6);
    return 0;
}

static int gai_once(struct sockaddr_storage *out)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int e = getaddrinfo(HOSTS_NAME, NULL, &hints, &res);
    if (e != 0) {
        wrong("getaddrinfo: %s", gai_strerror(e));
        return -EIO;
    }
    memset(out, 0, sizeof *out);
    memcpy(out, res->ai_addr, res->ai_addrlen);
    ((struct sockaddr_in *)out)->sin_port = htons(80);
    freeaddrinfo(res);
    return 0;
}

static ares_channel direct_ch;

typedef struct direct_q {
    bool done;
    int status;
    struct sockaddr_storage *out;
} direct_q;

static void direct_cb(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void)timeouts;
    direct_q *q = arg;
    q->done = true;
    q->status = status;
    if (status == ARES_SUCCESS && res->nodes) {
        memset(q->out, 0, sizeof *q->out);
        memcpy(q->out, res->nodes->ai_addr, res->nodes->ai_addrlen);
        ((struct sockaddr_in *)q->out)->sin_port = htons(80);
    }
    if (res)
        ares_freeaddrinfo(res);
}

static int ares_once(struct sockaddr_storage *out)
{
    direct_q q = {.out = out};
    struct ares_addrinfo_hints h = {.ai_family = AF_UNSPEC,
                                    .ai_socktype = SOCK_STREAM,
                                    .ai_flags = arg_nosort ? ARES_AI_NOSORT : 0};
    ares_getaddrinfo(direct_ch, HOSTS_NAME, NULL, &h, direct_cb, &q);
    if (!q.done) {
        wrong("the files-only answer did not come before ares_getaddrinfo returned");
        return -EIO;
    }
    if (q.status != ARES_SUCCESS) {
        wrong("ares_getaddrinfo: %s", ares_strerror(q.status));
        return -EIO;
    }
    return 0;
}

static int run_gai_direct(long n)
{
    return plain_loop(n, gai_once);
}

static int run_ares_direct(long n)
{
    struct ares_options o = {.lookups = "f"};
    int st = ares_init_options(&direct_ch, &o, ARES_OPT_LOOKUPS);
    if (st != ARES_SUCCESS)
        return wrong("ares_init_options: %s", ares_strerror(st));
    int rc = plain_loop(n, ares_once);
    ares_destroy(direct_ch);
    return rc;
}

/* ------------------------------------------------ in the runtime */

typedef struct worker {
    long first, count;
    int rc;
} worker;

static int worker_fn(void *arg)
{
    worker *w = arg;
    struct sockaddr_storage out[MAX_ADDRS];
    for (long i = w->first; i < w->first + w->count; i++) {
        int64_t t0 = wv_now();
        int n = current->lookup(i, out, MAX_ADDRS);
        lat[i] = wv_now() - t0;
        if (n < 0) {
            w->rc = n;
            return wrong("lookup %ld: %s (%s)", i, wv_strerror(n), wv_errmsg());
        }
        if (check_answer(out, n) < 0)
            return w->rc = -EIO;
    }
    return 0;
}

/* conc fibers share n lookups, numbered from `base`; the wall time. */
static int64_t run_fibers(long base, long n, int conc, int *rc_out)
{
    worker ws[256];
    wv_group *g = wv_group_new();
    if (!g) {
        *rc_out = -ENOMEM;
        return 0;
    }
    int64_t t0 = wv_now();
    long per = n / conc;
    for (int k = 0; k < conc; k++) {
        ws[k] = (worker){.first = base + k * per, .count = per};
        int rc = wv_group_spawn(g, worker_fn, &ws[k], &(wv_spawn_opts){.name = "resolve"});
        if (rc < 0) {
            wv_group_free(g);
            *rc_out = rc;
            return 0;
        }
    }
    int rc = wv_group_join(g);
    int64_t wall = wv_now() - t0;
    wv_group_free(g);
    *rc_out = rc;
    return wall;
}

static int run_in_runtime(void *arg)
{
    (void)arg;
    int rc = 0;
    bool ares = current->lookup == lookup_ares_files || current->lookup == lookup_ares_dns;
    if (ares && (rc = resolver_new(current->dns, &resolvers[wv_shard_id()])) < 0)
        return rc;
    long n = arg_n / arg_conc * arg_conc;
    long warm = n / 10 < 2000 ? n / 10 : 2000;
    warm = warm < arg_conc ? arg_conc : warm / arg_conc * arg_conc;
    run_fibers(n, warm, (int)arg_conc, &rc); /* warm-up: numbered after the timed ones */
    int64_t c0 = clock_ns(CLOCK_THREAD_CPUTIME_ID), p0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    int64_t wall = rc < 0 ? 0 : run_fibers(0, n, (int)arg_conc, &rc);
    loop_cpu_ns = clock_ns(CLOCK_THREAD_CPUTIME_ID) - c0;
    proc_cpu_ns = clock_ns(CLOCK_PROCESS_CPUTIME_ID) - p0;
    if (ares) {
        resolver_free(resolvers[wv_shard_id()]);
        resolvers[wv_shard_id()] = NULL;
    }
    if (rc < 0)
        return rc;
    arg_n = n;
    wall_ns = wall;
    note("%ld lookups by %ld fibers in %.1f ms", n, arg_conc, (double)wall / 1e6);
    return 0;
}

/* ---------------------------------------------------------- driver */

static const figure figures[] = {
    {"gai_pool", 100000, true, false, lookup_gai_pool, NULL,
     "wv_resolve(\"localhost\"): getaddrinfo on the offload pool"},
    {"ares_files", 100000, true, false, lookup_ares_files, NULL,
     "c-ares on the shard's loop, /etc/hosts only (lookups \"f\")"},
    {"gai_direct", 100000, false, false, NULL, run_gai_direct,
     "getaddrinfo(\"localhost\") in a plain loop, no runtime"},
    {"ares_direct", 100000, false, false, NULL, run_ares_direct,
     "ares_getaddrinfo(\"localhost\"), files only, plain loop, no runtime"},
    {"offload_noop", 100000, true, false, lookup_offload_noop, NULL,
     "wv_offload of an empty function: the thread hop alone"},
    {"res_pool", 20000, true, true, lookup_res_pool, NULL,
     "res_nquery A on the offload pool, against fake_dns.py"},
    {"ares_dns", 20000, true, true, lookup_ares_dns, NULL,
     "c-ares on the shard's loop, A query, against fake_dns.py"},
};

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_resolve <figure> [n=N] [conc=C]"
                    " [metric=per_lookup|mean|p50|p99|loop_cpu|cpu] [unit=ns|us] [threads=T]"
                    " [stayopen=1] [nosort=1]\nprints value=<number>\n");
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        fprintf(stderr, "  %-12s n=%-7ld %s\n", figures[i].name, figures[i].default_n,
                figures[i].what);
}

static bool arg_long(const char *arg, const char *key, long *out)
{
    size_t k = strlen(key);
    if (strncmp(arg, key, k) != 0 || arg[k] != '=')
        return false;
    char *end;
    long v = strtol(arg + k + 1, &end, 10);
    if (*end || v < 0) {
        fprintf(stderr, "bench_resolve: bad %s\n", arg);
        exit(2);
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 2;
    }
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++)
        if (strcmp(argv[1], figures[i].name) == 0)
            current = &figures[i];
    if (!current) {
        fprintf(stderr, "bench_resolve: no figure named '%s'\n", argv[1]);
        usage();
        return 2;
    }
    arg_n = current->default_n;
    long stayopen = 0, nosort = 0;
    bool in_us = false;
    for (int i = 2; i < argc; i++) {
        if (arg_long(argv[i], "n", &arg_n) || arg_long(argv[i], "conc", &arg_conc) ||
            arg_long(argv[i], "threads", &arg_threads) ||
            arg_long(argv[i], "stayopen", &stayopen) || arg_long(argv[i], "nosort", &nosort))
            continue;
        if (strcmp(argv[i], "unit=us") == 0 || strcmp(argv[i], "unit=ns") == 0) {
            in_us = argv[i][5] == 'u';
            continue;
        }
        if (strncmp(argv[i], "metric=", 7) == 0) {
            arg_metric = argv[i] + 7;
            continue;
        }
        fprintf(stderr, "bench_resolve: unknown argument '%s'\n", argv[i]);
        usage();
        return 2;
    }
    arg_stayopen = stayopen != 0;
    arg_nosort = nosort != 0;
    if (arg_n < 1 || arg_conc < 1 || arg_conc > 256 || arg_n < arg_conc) {
        fprintf(stderr, "bench_resolve: need n >= conc >= 1, conc <= 256\n");
        return 2;
    }
    if (strcmp(arg_metric, "per_lookup") && strcmp(arg_metric, "mean") &&
        strcmp(arg_metric, "p50") && strcmp(arg_metric, "p99") && strcmp(arg_metric, "loop_cpu") &&
        strcmp(arg_metric, "cpu")) {
        fprintf(stderr,
                "bench_resolve: metric must be per_lookup, mean, p50, p99, loop_cpu or cpu\n");
        return 2;
    }
    const char *port = getenv("FAKE_DNS_PORT");
    if (port && *port)
        dns_port = atoi(port);
    lat = calloc((size_t)(arg_n + 2000 + arg_conc), sizeof *lat); /* + the warm-up */
    if (!lat)
        return 1;
    int st = ares_library_init(ARES_LIB_INIT_ALL);
    if (st != ARES_SUCCESS) {
        note("ares_library_init: %s", ares_strerror(st));
        return 1;
    }

    int rc;
    if (!current->runtime) {
        rc = current->run_plain(arg_n);
    } else {
        wv_main_opts opts = {
            .shards = 1,
            .offload_threads = (int)arg_threads,
            .no_signal_handling = true,
        };
        rc = wv_main(&opts, run_in_runtime, NULL);
        if (rc < 0 && !reported)
            note("FAILED: %s (%d)", strerror(-rc), rc);
    }
    ares_library_cleanup();
    if (rc < 0)
        return 1;
    long n = arg_n;
    qsort(lat, (size_t)n, sizeof *lat, cmp_i64);
    double mean = 0;
    for (long i = 0; i < n; i++)
        mean += (double)lat[i];
    mean /= (double)n;
    double p50 = (double)lat[n / 2], p99 = (double)lat[n * 99 / 100];
    char how[64];
    if (current->runtime)
        snprintf(how, sizeof how, "%ld fibers, %ld offload threads", arg_conc,
                 arg_threads ? arg_threads : 4);
    else
        snprintf(how, sizeof how, "no runtime");
    note("%s%s%s: %.0f ns per lookup (%.0f lookups/s); CPU per"
         " lookup %.0f ns of the loop's thread, %.0f ns in all; latency mean %.0f ns, p50 %.0f,"
         " p99 %.0f, max %.0f",
         how, arg_stayopen ? ", stayopen" : "", arg_nosort ? ", nosort" : "",
         (double)wall_ns / (double)n, 1e9 * (double)n / (double)wall_ns,
         (double)loop_cpu_ns / (double)n, (double)proc_cpu_ns / (double)n, mean, p50, p99,
         (double)lat[n - 1]);
    if (sync_answers + async_answers > 0)
        note("c-ares answers: %ld before ares_getaddrinfo returned, %ld later from the loop;"
             " %ld sockets opened, %ld watching fibers started",
             sync_answers, async_answers, sockets_opened, driver_fibers);
    if (strcmp(arg_metric, "mean") == 0)
        result = mean;
    else if (strcmp(arg_metric, "p50") == 0)
        result = p50;
    else if (strcmp(arg_metric, "p99") == 0)
        result = p99;
    else if (strcmp(arg_metric, "loop_cpu") == 0)
        result = (double)loop_cpu_ns / (double)n;
    else if (strcmp(arg_metric, "cpu") == 0)
        result = (double)proc_cpu_ns / (double)n;
    else
        result = (double)wall_ns / (double)n;
    printf("value=%.3f\n", in_us ? result / 1000 : result);
    return 0;
}

#endif /* BENCH_RESOLVE_CARES */
