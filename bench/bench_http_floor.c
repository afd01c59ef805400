/*
 * bench/bench_http_floor.c: the floor of http.plaintext_cpu (bench/run_http.sh).
 *
 * The least any HTTP server on epoll can do per keep-alive request: one
 * edge-triggered epoll loop, one recv that empties the socket, the
 * requests in it counted by their blank line (nothing else parsed: no
 * method, no path, no header), and one send of a response fixed once (the
 * same status line, headers and 13-byte body weave and nginx send; the
 * Date is set at start). No runtime, no fibers, no timers, no allocation
 * per request. What a real server spends beyond this is its own; what
 * this spends is the kernel's, which every server pays, so the figure it
 * gives beside nginx says how far ahead of nginx any server can be.
 *
 *     bench_http_floor PORT          (127.0.0.1, one thread)
 *
 * GET /plaintext is the only answer it knows (anything else is answered the
 * same); it is a measuring instrument, not a server.
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
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { MAX_EVENTS = 256, READ_SIZE = 16384, MAX_RESPONSES = 64 };

static char response[256];
static size_t response_len;

/* Requests in buf: each ends with a blank line. */
static int count_requests(const char *buf, size_t n)
{
    int k = 0;
    for (size_t i = 3; i < n; i++)
        if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' && buf[i - 3] == '\r')
            k++;
    return k;
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
        perror("bench_http_floor: listen");
        exit(1);
    }
    return fd;
}

static void accept_all(int ep, int lfd)
{
    int fd;
    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = fd};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
    }
}

/* Read what came, answer every request in it with one send. */
static void serve(int fd)
{
    static char buf[READ_SIZE];
    static char out[MAX_RESPONSES * sizeof response];
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0) {
            if (r == 0 || errno != EAGAIN)
                close(fd);
            return;
        }
        int k = count_requests(buf, (size_t)r);
        if (k > MAX_RESPONSES)
            k = MAX_RESPONSES;
        size_t m = 0;
        for (int i = 0; i < k; i++, m += response_len)
            memcpy(out + m, response, response_len);
        if (m && send(fd, out, m, MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
            close(fd);
            return;
        }
        if ((size_t)r < sizeof buf)
            return; /* short: the socket is empty, wait for the next edge */
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: bench_http_floor PORT\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    response_len = (size_t)snprintf(response, sizeof response,
                                    "HTTP/1.1 200 OK\r\nServer: floor\r\nDate: %s\r\n"
                                    "Content-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
                                    "Hello, World!",
                                    date);
    int lfd = listen_on(atoi(argv[1]));
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = lfd};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.fd == lfd)
                accept_all(ep, lfd);
            else
                serve(evs[i].data.fd);
        }
    }
}
