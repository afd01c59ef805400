/*
 * The runtime demo that `make run` starts until the HTTP server lands: a TCP
 * echo server with one listener per shard (SO_REUSEPORT) and one fiber per
 * connection. Ctrl-C (SIGINT) or SIGTERM stops it gracefully: listeners
 * close, connections get a second to finish, then it exits 0.
 *
 *   PORT=8000 build/release/echo      then      nc 127.0.0.1 8000
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <weave/rt.h>

static int port;

static int serve_connection(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buf[16384];
    for (;;) {
        ssize_t n = wv_read(fd, buf, sizeof buf);
        if (n <= 0)
            break; /* EOF, error, or cancelled at shutdown */
        if (wv_write(fd, buf, (size_t)n) < 0)
            break;
    }
    wv_close(fd);
    return 0;
}

static int listen_on(int p)
{
    int fd = wv_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 4096) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

typedef struct listener {
    int fd;
    wv_group *conns; /* the shard's connections: none outlives the listener */
} listener;

static int accept_loop(void *arg)
{
    listener *l = arg;
    for (;;) {
        int fd = wv_accept(l->fd, NULL, NULL);
        if (fd < 0)
            return fd == -ECANCELED || fd == -EBADF ? 0 : fd;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (wv_group_spawn(l->conns, serve_connection, (void *)(intptr_t)fd, NULL) < 0)
            wv_close(fd);
    }
}

/* One per shard: listen, accept until a stop is requested, then give open
 * connections up to a second to finish and cancel the rest. */
static int shard_server(void *arg)
{
    (void)arg;
    listener l = {.fd = listen_on(port), .conns = wv_group_new()};
    if (l.fd < 0) {
        wv_group_free(l.conns);
        return wv_fail(l.fd, "cannot listen on port %d: %s", port, wv_strerror(l.fd));
    }
    wv_group *g = wv_group_new();
    wv_group_spawn(g, accept_loop, &l, &(wv_spawn_opts){.name = "accept"});
    wv_stop_wait();
    wv_close(l.fd); /* wakes the accept loop with -EBADF */
    wv_group_join(g);
    wv_group_free(g);
    wv_deadline_set(wv_after_ms(1000));
    wv_group_join(l.conns); /* past the deadline: cancels the rest and waits */
    wv_group_free(l.conns);
    return 0;
}

static int app(void *arg)
{
    (void)arg;
    wv_info("weave %s echo demo: %d shards, listening on tcp://0.0.0.0:%d (Ctrl-C stops)",
            wv_version(), wv_shard_count(), port);
    int rc = wv_shard_each(shard_server, NULL);
    if (rc < 0)
        wv_error("echo: %s", wv_strerror(rc));
    else
        wv_info("stopped");
    return rc < 0 ? 1 : 0;
}

int main(void)
{
    const char *p = getenv("PORT");
    port = p ? atoi(p) : 8000;
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "echo: PORT=%s is not a port number\n", p);
        return 2;
    }
    int rc = wv_main(NULL, app, NULL);
    if (rc < 0) {
        fprintf(stderr, "echo: %s\n", wv_strerror(rc));
        return 1;
    }
    return rc;
}
