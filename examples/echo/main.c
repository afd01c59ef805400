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

static int accept_loop(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    for (;;) {
        int c = wv_accept(lfd, NULL, NULL);
        if (c < 0)
            return c == -ECANCELED || c == -EBADF ? 0 : c;
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (wv_spawn(serve_connection, (void *)(intptr_t)c, NULL) < 0)
            wv_close(c);
    }
}

/* One per shard: listen, accept until a stop is requested, then drain. */
static int shard_server(void *arg)
{
    (void)arg;
    int lfd = listen_on(port);
    if (lfd < 0)
        return wv_fail(lfd, "cannot listen on port %d: %s", port, wv_strerror(lfd));
    wv_group *g = wv_group_new();
    wv_group_spawn(g, accept_loop, (void *)(intptr_t)lfd, &(wv_spawn_opts){.name = "accept"});
    wv_stop_wait();
    wv_close(lfd); /* wakes the accept loop with -EBADF */
    wv_group_join(g);
    wv_group_free(g);
    wv_sleep_ms(200); /* let in-flight echoes finish */
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
