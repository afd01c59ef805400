/*
 * bench/bench_ws_floor.c: the floor of ws.broadcast (bench/run_ws.sh). A
 * bare single-threaded epoll loop, no framework: it accepts WebSocket
 * connections and relays every text a member sends to every member as
 * {"from":"<fd>","text":"<text>"}, encoded once and written with one
 * non-blocking send() per socket. That is the least a server that writes
 * each subscriber's socket can do, so the time it takes is what the kernel
 * costs; run_ws.sh prints it beside the figure.
 *
 *     bench_ws_floor PORT
 *
 * Prints "listening on ws://127.0.0.1:PORT" once it accepts. Not a server
 * to use: any path is the room, no texts over 4 KiB, no close
 * handshake (a close frame or EOF just closes), no fragmented messages, no
 * compression, and a member whose socket will not take a whole relay at once
 * is dropped (and counted on stderr). Weave's own code is not on the path:
 * it only borrows the frame codec (src/ws/frame.h) for the handshake key and
 * the headers.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ws/frame.h"

enum { BUF = 16384, MAX_TEXT = 4096, MAX_MEMBERS = 1 << 20 };

typedef struct peer {
    char *buf; /* bytes read and not yet used */
    size_t n;
    long member; /* index in members[], or -1 before the handshake */
} peer;

static peer *peers; /* by fd */
static int npeers;
static int *members;
static long nmembers;
static unsigned long dropped;
static int epfd;

static peer *peer_of(int fd)
{
    if (fd >= npeers) {
        int n = npeers ? npeers : 1024;
        while (n <= fd)
            n *= 2;
        peer *p = realloc(peers, (size_t)n * sizeof *p);
        if (!p)
            return NULL;
        memset(p + npeers, 0, (size_t)(n - npeers) * sizeof *p);
        peers = p;
        npeers = n;
    }
    return &peers[fd];
}

static void drop(int fd)
{
    peer *p = &peers[fd];
    if (p->member >= 0) { /* swap the last member into its slot */
        int last = members[--nmembers];
        members[p->member] = last;
        peers[last].member = p->member;
    }
    free(p->buf);
    *p = (peer){.member = -1};
    epoll_ctl(epfd, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
}

/* The value of header `name` in the request head h[0..n), or NULL. */
static const char *header(const char *h, size_t n, const char *name, size_t *len)
{
    size_t k = strlen(name);
    for (const char *line = memchr(h, '\n', n); line && (size_t)(line - h) + 1 < n;
         line = memchr(line + 1, '\n', n - (size_t)(line + 1 - h))) {
        const char *s = line + 1;
        if ((size_t)(h + n - s) > k + 1 && strncasecmp(s, name, k) == 0 && s[k] == ':') {
            const char *v = s + k + 1, *e = memchr(v, '\r', (size_t)(h + n - v));
            if (!e)
                return NULL;
            while (v < e && *v == ' ')
                v++;
            *len = (size_t)(e - v);
            return v;
        }
    }
    return NULL;
}

static int handshake(int fd, peer *p)
{
    char *end = memmem(p->buf, p->n, "\r\n\r\n", 4);
    if (!end)
        return p->n < 8192 ? 0 : -1;
    size_t head = (size_t)(end + 4 - p->buf), klen = 0;
    const char *key = header(p->buf, head, "Sec-WebSocket-Key", &klen);
    char accept[29];
    if (!key || ws_accept_key(key, klen, accept) < 0)
        return -1;
    char out[256];
    int m = snprintf(out, sizeof out,
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                     accept);
    if (send(fd, out, (size_t)m, MSG_NOSIGNAL) != m)
        return -1;
    if (nmembers == MAX_MEMBERS)
        return -1;
    memmove(p->buf, p->buf + head, p->n - head);
    p->n -= head;
    p->member = nmembers;
    members[nmembers++] = fd;
    return 1;
}

/* Relay text[0..n) to every member: one encoding, one send() each. */
static void relay(int from, const uint8_t *text, size_t n)
{
    static uint8_t frame[WS_HEADER_MAX + 32 + 6 * MAX_TEXT + 16];
    uint8_t body[32 + 6 * MAX_TEXT + 16];
    size_t b = (size_t)snprintf((char *)body, 32, "{\"from\":\"%d\",\"text\":\"", from);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = text[i];
        if (c == '"' || c == '\\') {
            body[b++] = '\\';
            body[b++] = c;
        } else if (c < 0x20) {
            b += (size_t)snprintf((char *)body + b, 7, "\\u%04x", c);
        } else {
            body[b++] = c;
        }
    }
    body[b++] = '"';
    body[b++] = '}';
    size_t h = ws_write_header(frame, true, 0, WS_OP_TEXT, b, NULL);
    memcpy(frame + h, body, b);
    for (long i = 0; i < nmembers; i++) {
        int fd = members[i];
        if (send(fd, frame, h + b, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)(h + b)) {
            dropped++;
            drop(fd);
            i--; /* the last member moved into slot i */
        }
    }
}

/* Use whole frames from the member's buffer: 0, -1 to drop it, or 1 when
 * a relay already dropped it (its socket was full). */
static int frames(int fd, peer *p)
{
    char *mine = p->buf;
    size_t at = 0;
    for (;;) {
        ws_header hd;
        int hs = ws_parse_header((uint8_t *)p->buf + at, p->n - at, true, 0, MAX_TEXT, &hd);
        if (hs < 0)
            return -1;
        if (hs == 0 || p->n - at < (size_t)hs + hd.len)
            break;
        uint8_t *payload = (uint8_t *)p->buf + at + hs;
        ws_unmask(payload, (size_t)hd.len, hd.mask, 0);
        at += (size_t)hs + (size_t)hd.len;
        if (hd.opcode == WS_OP_CLOSE || !hd.fin)
            return -1;
        if (hd.opcode == WS_OP_TEXT)
            relay(fd, payload, (size_t)hd.len);
        if (p->buf != mine)
            return 1;
    }
    memmove(p->buf, p->buf + at, p->n - at);
    p->n -= at;
    return 0;
}

static void readable(int fd)
{
    peer *p = &peers[fd];
    for (;;) {
        if (p->n == BUF) {
            drop(fd);
            return;
        }
        ssize_t r = recv(fd, p->buf + p->n, BUF - p->n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && errno == EAGAIN)
            return;
        if (r <= 0) {
            drop(fd);
            return;
        }
        p->n += (size_t)r;
        int rc = p->member < 0 ? handshake(fd, p) : 0;
        if (rc >= 0 && p->member >= 0)
            rc = frames(fd, p);
        if (rc < 0)
            drop(fd);
        if (rc < 0 || rc == 1)
            return;
    }
}

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1; /* epoll_wait returns EINTR: main says how many were dropped */
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_ws_floor PORT\n");
        return 2;
    }
    signal(SIGTERM, on_term);
    signal(SIGPIPE, SIG_IGN);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)atoi(argv[1])),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(lfd, 4096) < 0 ||
        epfd < 0 || epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &ev) < 0) {
        perror("bench_ws_floor");
        return 1;
    }
    members = malloc(sizeof *members * MAX_MEMBERS);
    if (!members)
        return 1;
    printf("listening on ws://127.0.0.1:%s\n", argv[1]);
    fflush(stdout);
    struct epoll_event evs[256];
    for (;;) {
        int k = epoll_wait(epfd, evs, 256, -1);
        if (stop) {
            fprintf(stderr, "bench_ws_floor: %lu members dropped (a relay did not fit at once)\n",
                    dropped);
            return 0;
        }
        for (int i = 0; i < k; i++) {
            int fd = evs[i].data.fd;
            if (fd != lfd) {
                if (fd < npeers && peers[fd].buf)
                    readable(fd);
                continue;
            }
            int c;
            while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                peer *p = peer_of(c);
                char *buf = p ? malloc(BUF) : NULL;
                struct epoll_event cev = {.events = EPOLLIN, .data.fd = c};
                if (!buf || epoll_ctl(epfd, EPOLL_CTL_ADD, c, &cev) < 0) {
                    free(buf);
                    close(c);
                    continue;
                }
                *p = (peer){.buf = buf, .member = -1};
            }
        }
    }
}
