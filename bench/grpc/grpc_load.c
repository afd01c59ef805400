/*
 * grpc_load: the load client of the gRPC suite (bench/run_grpc.sh), the same
 * program for every server. One thread, nghttp2's client session on plain
 * sockets (h2c with prior knowledge), CONNS connections with STREAMS calls
 * in flight on each; a call that ends starts the next on its connection
 * until CALLS calls are done.
 *
 *   grpc_load -p PORT -k unary|stream [-c CONNS] [-m STREAMS] [-n CALLS]
 *             [-d SECONDS] [-r RATE] [-s COUNT] [-N NAME] [-T SECONDS]
 *
 *   -n CALLS   calls in all (default 100000; no limit with -d alone)
 *   -d SECONDS start calls for this long, then let those in flight end
 *              (with -n too: whichever comes first)
 *   -r RATE    start RATE calls a second in all, the i-th at i / RATE s
 *              from the start (0, the default: a call ending starts the
 *              next); calls in flight stay at most CONNS x STREAMS, so a
 *              server that cannot keep up gets fewer (the caller checks the
 *              rate reached: calls / secs)
 *   -c, -m     connections (default 8), calls in flight on each (default 8)
 *
 *   -k unary   /bench.BenchService/SayHello {name: NAME}; the answer must be
 *              exactly one message "Hello, NAME!"
 *   -k stream  /bench.BenchService/StreamHello {name: NAME, count: COUNT};
 *              the answer must be exactly COUNT messages, the i-th
 *              "Hello, NAME! i"
 *
 * Every call is checked, not counted blindly: HTTP status 200, a content-type
 * of application/grpc..., grpc-status 0 (in the trailers, or the headers of a
 * Trailers-Only answer), the stream closed without error, every message
 * uncompressed and byte for byte the one expected, and the count of them.
 * The first call that fails any of this fails the run (exit 1, why on
 * stderr); so do a connection error, no progress for 5 s, or the whole run
 * taking over SECONDS (default 120).
 *
 * On success it prints one line to stdout:
 *   calls=N messages=N secs=S cpu_s=C data_frames=N
 * secs from the first call's start to the last call's end, cpu_s this
 * process's own CPU time (user + system) over the same window, data_frames
 * the HTTP/2 DATA frames (with payload) the answers came in.
 */
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <nghttp2/nghttp2.h>

#define MSG_MAX 512 /* a response message's bytes at most (ours are < 64) */

typedef struct conn conn;

typedef struct call {
    conn *c;
    bool busy;
    int http_status;
    int grpc_status; /* -1: none seen */
    bool grpc_type;  /* content-type application/grpc... */
    size_t sent;     /* request bytes handed to nghttp2 */
    /* the response's gRPC framing: a 5-byte prefix, then the message */
    uint8_t prefix[5];
    int prefix_n;
    uint32_t msg_len, msg_got;
    uint8_t msg[MSG_MAX];
    long messages;
} call;

struct conn {
    int fd;
    nghttp2_session *s;
    call *calls;      /* STREAMS slots */
    uint8_t *pending; /* bytes nghttp2 gave that the socket did not take */
    size_t pending_n, pending_off, pending_cap;
    bool want_out;
};

static int kind_stream;
static const char *name = "bench";
static long n_calls = 100000, count = 100;
static int conns = 8, streams = 8, port;
static char authority[64];
static const char *path;
static uint8_t request[128];
static size_t request_n;
static uint8_t expected[MSG_MAX]; /* the unary answer, framed as protobuf */
static size_t expected_n;
static long started, done, messages, data_frames;
static bool stopping; /* -d: the time is up, start no more calls */
static double rate;   /* -r: calls started a second in all (0: as fast as answered) */
static call **idle;   /* -r: the slots free for the next calls, a stack */
static int idle_n;
static int ep;

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("grpc_load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* A string field (field number 1) as protobuf writes it: tag, length, bytes. */
static size_t put_string(uint8_t *p, const char *s, size_t n)
{
    p[0] = 0x0a;
    p[1] = (uint8_t)n; /* callers keep n < 128: one varint byte */
    memcpy(p + 2, s, n);
    return 2 + n;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t i = 0;
    while (v >= 0x80) {
        p[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[i++] = (uint8_t)v;
    return i;
}

/* ---------------------------------------------------------------- calls */

static ssize_t read_body(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *user)
{
    call *k = src->ptr;
    size_t n = request_n - k->sent;
    if (n > len)
        n = len;
    memcpy(buf, request + k->sent, n);
    k->sent += n;
    if (k->sent == request_n)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, strlen(v),                                  \
            NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE                           \
    }

static void start_call(conn *c, call *k)
{
    nghttp2_nv hdrs[] = {
        NV(":method", "POST"),
        NV(":scheme", "http"),
        NV(":authority", authority),
        NV(":path", path),
        NV("content-type", "application/grpc"),
        NV("te", "trailers"),
        NV("user-agent", "grpc_load (weave bench)"),
    };
    memset(k, 0, sizeof *k);
    k->c = c;
    k->busy = true;
    k->grpc_status = -1;
    nghttp2_data_provider body = {.source.ptr = k, .read_callback = read_body};
    int32_t id = nghttp2_submit_request(c->s, NULL, hdrs, sizeof hdrs / sizeof *hdrs, &body, k);
    if (id < 0)
        die("nghttp2_submit_request: %s", nghttp2_strerror(id));
    started++;
}

/* One whole message of call k: it must be the next one expected. */
static void check_message(call *k)
{
    const uint8_t *want = expected;
    size_t want_n = expected_n;
    uint8_t buf[MSG_MAX];
    if (kind_stream) {
        char text[256];
        int n = snprintf(text, sizeof text, "Hello, %s! %ld", name, k->messages);
        want_n = put_string(buf, text, (size_t)n);
        want = buf;
        if (k->messages >= count)
            die("a call got more than the %ld messages asked for", count);
    } else if (k->messages >= 1) {
        die("a unary call got a second message");
    }
    if (k->msg_len != want_n || memcmp(k->msg, want, want_n) != 0)
        die("a call got an unexpected message (%u bytes: '%.*s'), not '%.*s'", k->msg_len,
            (int)(k->msg_len > 2 ? k->msg_len - 2 : 0), k->msg + 2, (int)want_n - 2, want + 2);
    k->messages++;
    messages++;
}

static int on_data(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data, size_t len,
                   void *user)
{
    call *k = nghttp2_session_get_stream_user_data(s, id);
    if (!k)
        return 0;
    while (len) {
        if (k->prefix_n < 5) {
            k->prefix[k->prefix_n++] = *data++;
            len--;
            if (k->prefix_n == 5) {
                if (k->prefix[0] != 0)
                    die("a compressed message (flag %u): the client asked for none", k->prefix[0]);
                k->msg_len = (uint32_t)k->prefix[1] << 24 | (uint32_t)k->prefix[2] << 16 |
                             (uint32_t)k->prefix[3] << 8 | k->prefix[4];
                if (k->msg_len > MSG_MAX)
                    die("a %u-byte message, over the %d expected at most", k->msg_len, MSG_MAX);
                k->msg_got = 0;
            }
        } else {
            size_t n = k->msg_len - k->msg_got;
            if (n > len)
                n = len;
            memcpy(k->msg + k->msg_got, data, n);
            k->msg_got += (uint32_t)n;
            data += n;
            len -= n;
        }
        if (k->prefix_n == 5 && k->msg_got == k->msg_len) {
            check_message(k);
            k->prefix_n = 0;
        }
    }
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *n, size_t nlen,
                     const uint8_t *v, size_t vlen, uint8_t flags, void *user)
{
    call *k = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!k || f->hd.type != NGHTTP2_HEADERS)
        return 0;
    if (nlen == 7 && !memcmp(n, ":status", 7))
        k->http_status = atoi((const char *)v); /* nghttp2 NUL-terminates values */
    else if (nlen == 11 && !memcmp(n, "grpc-status", 11))
        k->grpc_status = atoi((const char *)v);
    else if (nlen == 12 && !memcmp(n, "content-type", 12))
        k->grpc_type = vlen >= 16 && !memcmp(v, "application/grpc", 16);
    return 0;
}

/* DATA frames with payload that carried the answers: how the server framed
 * its messages (one a frame, or several together), printed beside the count */
static int on_frame(nghttp2_session *s, const nghttp2_frame *f, void *user)
{
    if (f->hd.type == NGHTTP2_DATA && f->hd.length > 0)
        data_frames++;
    return 0;
}

static int on_close(nghttp2_session *s, int32_t id, uint32_t err, void *user)
{
    call *k = nghttp2_session_get_stream_user_data(s, id);
    if (!k)
        return 0;
    long want = kind_stream ? count : 1;
    if (err != NGHTTP2_NO_ERROR)
        die("a call's stream was reset (%s)", nghttp2_http2_strerror(err));
    if (k->http_status != 200)
        die("a call was answered HTTP %d, not 200", k->http_status);
    if (!k->grpc_type)
        die("a call's answer has no content-type application/grpc");
    if (k->grpc_status != 0)
        die("a call ended with grpc-status %d, not 0 (OK)", k->grpc_status);
    if (k->prefix_n != 0)
        die("a call ended inside a message");
    if (k->messages != want)
        die("a call got %ld messages, not %ld", k->messages, want);
    k->busy = false;
    done++;
    if (rate > 0)
        idle[idle_n++] = k; /* the main loop starts the next when it is due */
    else if (started < n_calls && !stopping)
        start_call(k->c, k);
    return 0;
}

/* ----------------------------------------------------------- the sockets */

static void set_events(conn *c, bool out)
{
    if (out == c->want_out)
        return;
    c->want_out = out;
    struct epoll_event ev = {.events = EPOLLIN | (out ? EPOLLOUT : 0), .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
}

/* Write what nghttp2 has to send: its frames gathered into one buffer (up
 * to OUT_BATCH bytes a write, as h2load does), keeping what the socket does
 * not take for when it can. */
#define OUT_BATCH 65536

static void flush(conn *c)
{
    for (;;) {
        if (c->pending_off < c->pending_n) {
            ssize_t w = write(c->fd, c->pending + c->pending_off, c->pending_n - c->pending_off);
            if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
                set_events(c, true);
                return;
            }
            if (w < 0)
                die("write: %s", strerror(errno));
            c->pending_off += (size_t)w;
            continue;
        }
        c->pending_off = c->pending_n = 0;
        while (c->pending_n < OUT_BATCH) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->s, &data);
            if (n < 0)
                die("nghttp2_session_mem_send: %s", nghttp2_strerror((int)n));
            if (n == 0)
                break;
            if (c->pending_n + (size_t)n > c->pending_cap) {
                size_t cap = c->pending_cap ? c->pending_cap : OUT_BATCH;
                while (cap < c->pending_n + (size_t)n)
                    cap *= 2;
                if (!(c->pending = realloc(c->pending, cap)))
                    die("out of memory");
                c->pending_cap = cap;
            }
            memcpy(c->pending + c->pending_n, data, (size_t)n);
            c->pending_n += (size_t)n;
        }
        if (c->pending_n == 0)
            break;
    }
    set_events(c, false);
}

static void on_readable(conn *c)
{
    uint8_t buf[65536];
    for (;;) {
        ssize_t r = read(c->fd, buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            break;
        if (r < 0)
            die("read: %s", strerror(errno));
        if (r == 0)
            die("the server closed a connection (%ld of %ld started calls done)", done, started);
        ssize_t n = nghttp2_session_mem_recv(c->s, buf, (size_t)r);
        if (n < 0)
            die("nghttp2_session_mem_recv: %s", nghttp2_strerror((int)n));
        if ((size_t)r < sizeof buf)
            break;
    }
}

static void open_conn(conn *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (c->fd < 0)
        die("socket: %s", strerror(errno));
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("connect to 127.0.0.1:%d: %s", port, strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK);

    nghttp2_session_callbacks *cb;
    nghttp2_session_callbacks_new(&cb);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cb, on_data);
    nghttp2_session_callbacks_set_on_header_callback(cb, on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(cb, on_close);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cb, on_frame);
    if (nghttp2_session_client_new(&c->s, cb, c) != 0)
        die("nghttp2_session_client_new failed");
    nghttp2_session_callbacks_del(cb);
    /* windows as large as gRPC's own clients open them, so that flow control
     * does not set the pace of a stream */
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 22},
    };
    nghttp2_submit_settings(c->s, NGHTTP2_FLAG_NONE, iv, sizeof iv / sizeof *iv);
    nghttp2_session_set_local_window_size(c->s, NGHTTP2_FLAG_NONE, 0, 1 << 24);
    c->calls = calloc((size_t)streams, sizeof *c->calls);
    if (!c->calls)
        die("out of memory");
    for (int j = 0; j < streams; j++)
        c->calls[j].c = c;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
        die("epoll_ctl: %s", strerror(errno));
}

static void usage(void)
{
    fprintf(stderr, "usage: grpc_load -p PORT -k unary|stream [-c CONNS] [-m STREAMS] "
                    "[-n CALLS] [-d SECONDS] [-r RATE] [-s COUNT] [-N NAME] [-T SECONDS]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *kind = NULL;
    bool n_given = false;
    double limit = 120, duration = 0;
    int opt;
    while ((opt = getopt(argc, argv, "p:k:c:m:n:s:N:T:d:r:")) != -1) {
        switch (opt) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'k':
            kind = optarg;
            break;
        case 'c':
            conns = atoi(optarg);
            break;
        case 'm':
            streams = atoi(optarg);
            break;
        case 'n':
            n_calls = atol(optarg), n_given = true;
            break;
        case 's':
            count = atol(optarg);
            break;
        case 'N':
            name = optarg;
            break;
        case 'T':
            limit = atof(optarg);
            break;
        case 'd':
            duration = atof(optarg);
            break;
        case 'r':
            rate = atof(optarg);
            break;
        default:
            usage();
        }
    }
    if (port <= 0 || !kind || conns <= 0 || streams <= 0 || n_calls <= 0 || count < 0 ||
        duration < 0 || rate < 0 || strlen(name) > 64)
        usage();
    if (duration > 0 && !n_given)
        n_calls = LONG_MAX;
    snprintf(authority, sizeof authority, "127.0.0.1:%d", port);

    /* the request, framed: a 5-byte prefix (uncompressed, length), then protobuf */
    uint8_t *m = request + 5;
    size_t mn = put_string(m, name, strlen(name));
    if (!strcmp(kind, "unary")) {
        path = "/bench.BenchService/SayHello";
        char text[128];
        int n = snprintf(text, sizeof text, "Hello, %s!", name);
        expected_n = put_string(expected, text, (size_t)n);
    } else if (!strcmp(kind, "stream")) {
        kind_stream = 1;
        path = "/bench.BenchService/StreamHello";
        if (count > 0) {
            m[mn++] = 0x10; /* field 2, varint */
            mn += put_varint(m + mn, (uint64_t)count);
        }
    } else {
        usage();
    }
    request[0] = 0;
    request[1] = (uint8_t)(mn >> 24);
    request[2] = (uint8_t)(mn >> 16);
    request[3] = (uint8_t)(mn >> 8);
    request[4] = (uint8_t)mn;
    request_n = 5 + mn;

    ep = epoll_create1(0);
    if (ep < 0)
        die("epoll_create1: %s", strerror(errno));
    conn *cs = calloc((size_t)conns, sizeof *cs);
    if (!cs)
        die("out of memory");
    for (int i = 0; i < conns; i++)
        open_conn(&cs[i]);

    double t0 = now(), cpu0 = cpu_now();
    if (rate > 0) {
        /* every slot idle, popped connection by connection */
        if (!(idle = calloc((size_t)conns * (size_t)streams, sizeof *idle)))
            die("out of memory");
        for (int j = streams - 1; j >= 0; j--)
            for (int i = conns - 1; i >= 0; i--)
                idle[idle_n++] = &cs[i].calls[j];
    } else {
        for (int j = 0; j < streams; j++)
            for (int i = 0; i < conns && started < n_calls; i++)
                start_call(&cs[i], &cs[i].calls[j]);
        for (int i = 0; i < conns; i++)
            flush(&cs[i]);
    }

    struct epoll_event evs[256];
    double last_progress = t0;
    long last_done = 0;
    while (done < started || (started < n_calls && !stopping)) {
        int wait_ms = 1000;
        if (rate > 0 && !stopping) {
            /* the calls due by now: the i-th (from 0) at t0 + i / rate */
            double at = now() - t0;
            long due = (long)(at * rate) + 1;
            if (due > n_calls)
                due = n_calls;
            bool any = false;
            while (started < due && idle_n > 0) {
                call *k = idle[--idle_n];
                start_call(k->c, k);
                any = true;
            }
            if (any)
                for (int i = 0; i < conns; i++)
                    flush(&cs[i]);
            if (started < n_calls && idle_n > 0) {
                double next = (double)started / rate - (now() - t0);
                wait_ms = next <= 0 ? 0 : (int)(next * 1000) + 1;
            }
        }
        int n = epoll_wait(ep, evs, 256, wait_ms);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++) {
            conn *c = evs[i].data.ptr;
            if (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                on_readable(c);
            flush(c);
        }
        double t = now();
        if (duration > 0 && t - t0 >= duration)
            stopping = true;
        if (done != last_done) {
            last_done = done;
            last_progress = t;
        } else if (t - last_progress > 5) {
            die("no call ended for 5 s (%ld of %ld started done)", done, started);
        }
        if (t - t0 > limit)
            die("the run took over %.0f s (%ld of %ld started calls done)", limit, done, started);
    }
    double secs = now() - t0, cpu = cpu_now() - cpu0;

    for (int i = 0; i < conns; i++) {
        nghttp2_session_terminate_session(cs[i].s, NGHTTP2_NO_ERROR);
        flush(&cs[i]);
        nghttp2_session_del(cs[i].s);
        close(cs[i].fd);
        free(cs[i].calls);
        free(cs[i].pending);
    }
    free(cs);
    free(idle);
    printf("calls=%ld messages=%ld secs=%.6f cpu_s=%.6f data_frames=%ld\n", done, messages, secs,
           cpu, data_frames);
    return 0;
}
