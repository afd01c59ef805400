/*
 * libFuzzer target for an HTTP/2 server connection (src/h2/server.c behind
 * src/http's connection, h2c by prior knowledge). `make fuzz` runs it; its
 * seeds (valid exchanges made with Python's h2) and every crash input are
 * kept in fuzz/corpus/fuzz_h2_server/.
 *
 * Input: the bytes a client sends after HTTP/2's preface (at most 64 KiB).
 * Each input runs in one runtime kept for the whole run (wv_main, one
 * shard, on a thread of its own): a socketpair, the
 * server's side served by http_serve_fd with a small router (a plain
 * answer, an echo of the body with a trailer, a streamed body with
 * trailers, a trailers-only answer, a streamed read of the body, a short
 * sleep), the client's side writing the preface and the input, closing its
 * write side and reading until the server closes. Checked: nothing crashes
 * and the sanitizers stay quiet (libFuzzer's leak check included), and the
 * connection ends within 5 s of the client's EOF (the server answers what
 * is whole, resets the rest and says GOAWAY), so no stream or fiber hangs.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/http_internal.h"
#include "weave/h2.h"
#include "fuzz_util.h"

enum { MAX_INPUT = 64 * 1024 };

static int plain(wv_req *req, wv_res *res)
{
    (void)req;
    return wv_res_text(res, 200, "ok");
}

static int echo(wv_req *req, wv_res *res)
{
    wv_str body;
    int rc = wv_req_body(req, &body);
    if (rc < 0)
        return rc;
    wv_res_trailer(res, "x-bytes", "n");
    return wv_res_send(res, 200, "application/octet-stream", body.p, body.n);
}

static int stream(wv_req *req, wv_res *res)
{
    (void)req;
    int rc = wv_res_begin(res, 200, "text/plain");
    for (int i = 0; i < 3 && rc == 0; i++)
        rc = wv_res_write(res, "piece\n", 6);
    if (rc == 0)
        rc = wv_res_trailer(res, "grpc-status", "0");
    return rc < 0 ? rc : wv_res_end(res);
}

static int trailers_only(wv_req *req, wv_res *res)
{
    (void)req;
    wv_res_header(res, "grpc-status", "5");
    return wv_res_send(res, 200, "application/grpc", NULL, 0);
}

static int reader(wv_req *req, wv_res *res)
{
    char buf[1000];
    size_t total = 0;
    ssize_t n;
    while ((n = wv_req_read(req, buf, sizeof buf)) > 0)
        total += (size_t)n;
    if (n < 0)
        return (int)n;
    return wv_res_text(res, 200, total ? "some" : "none");
}

static int nap(wv_req *req, wv_res *res)
{
    (void)req;
    int rc = wv_sleep_ms(1);
    return rc < 0 ? rc : wv_res_text(res, 200, "slept");
}

static wv_router *routes(void)
{
    static wv_router *r;
    if (!r) {
        r = wv_router_new();
        CHECK(r);
        CHECK(wv_get(r, "/", plain) == 0);
        CHECK(wv_post(r, "/echo", echo) == 0);
        CHECK(wv_get(r, "/stream", stream) == 0);
        CHECK(wv_get(r, "/trailers-only", trailers_only) == 0);
        CHECK(wv_post(r, "/read", reader) == 0);
        CHECK(wv_get(r, "/nap", nap) == 0);
    }
    return r;
}

typedef struct input {
    const uint8_t *p;
    size_t n;
    int fds[2];
} input;

static int serve_side(void *arg)
{
    input *in = arg;
    wv_http_opts o = {.max_body = 16 * 1024,
                      .max_head = 4096,
                      .max_headers = 20,
                      .h2_max_streams = 8,
                      .header_timeout_ms = 2000,
                      .idle_timeout_ms = 2000,
                      .body_timeout_ms = 2000};
    int fd = in->fds[0];
    in->fds[0] = -1;
    CHECK(http_serve_fd(routes(), &o, fd) == 0);
    return 0;
}

static int client_side(void *arg)
{
    input *in = arg;
    wv_stream *s;
    int fd = in->fds[1];
    in->fds[1] = -1;
    CHECK(wv_stream_open(fd, &s) == 0);
    /* the server may stop reading early (a GOAWAY): a failed write is fine */
    if (wv_stream_write(s, WV_H2_PREFACE, WV_H2_PREFACE_LEN) == WV_H2_PREFACE_LEN && in->n)
        wv_stream_write(s, in->p, in->n);
    wv_stream_shutdown(s, SHUT_WR);
    int64_t old = wv_deadline_set(wv_after_ms(5000));
    char buf[16384];
    ssize_t got;
    while ((got = wv_stream_read(s, buf, sizeof buf)) > 0) {
    }
    wv_deadline_set(old);
    CHECK(got != -ETIMEDOUT); /* the server ends the connection after our EOF */
    wv_stream_close(s);
    return 0;
}

/* One exchange over a socketpair: the client's fiber and the server's. */
static int run_one(input *in)
{
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, in->fds) == 0);
    wv_group *g = wv_group_new();
    CHECK(g);
    CHECK(wv_group_spawn(g, client_side, in, NULL) == 0);
    CHECK(wv_group_spawn(g, serve_side, in, NULL) == 0);
    CHECK(wv_group_join(g) == 0);
    wv_group_free(g);
    return 0;
}

/*
 * One runtime for the whole run, on a thread of its own (a runtime per
 * input costs thread and loop set-up, and memory the sanitizers keep per
 * thread): its main fiber takes each input's address from a pipe, runs it,
 * and answers on another pipe, which libFuzzer's thread waits on.
 */
static int to_rt[2], from_rt[2];
static wv_stream *cmd; /* to_rt's end, a global so that the leak check sees it */

static int rt_main(void *arg)
{
    (void)arg;
    CHECK(wv_stream_open(to_rt[0], &cmd) == 0);
    input *in;
    while (wv_stream_read(cmd, &in, sizeof in) == (ssize_t)sizeof in) {
        run_one(in);
        char done = 1;
        CHECK(write(from_rt[1], &done, 1) == 1);
    }
    wv_stream_close(cmd);
    return 0;
}

static void *rt_thread(void *arg)
{
    (void)arg;
    wv_main_opts o = {.shards = 1, .no_signal_handling = true};
    CHECK(wv_main(&o, rt_main, NULL) == 0);
    return NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    CHECK(pipe2(to_rt, O_NONBLOCK | O_CLOEXEC) == 0);
    CHECK(pipe2(from_rt, O_CLOEXEC) == 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, rt_thread, NULL) == 0);
    CHECK(pthread_detach(t) == 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT)
        return 0;
    uint8_t *copy = copy_exact(data, size);
    input in = {.p = copy, .n = size, .fds = {-1, -1}};
    input *ptr = &in;
    CHECK(write(to_rt[1], &ptr, sizeof ptr) == (ssize_t)sizeof ptr);
    char done;
    CHECK(read(from_rt[0], &done, 1) == 1);
    free(copy);
    return 0;
}
