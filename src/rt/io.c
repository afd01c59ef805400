/*
 * Non-blocking socket helpers that suspend the fiber on EAGAIN, and the
 * fault-injection counters that let tests fail any of them on purpose.
 *
 * Each helper tries the system call first (the common case on a busy server
 * is that data is already there) and only on EAGAIN waits for the fd's next
 * edge; the fiber's deadline and cancellation apply through that wait.
 */
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include "rt/rt_internal.h"

/* ----------------------------------------------------------- fault points */

_Atomic int wv__faults_armed;
static _Atomic int fault_countdown[WV_FAULT_COUNT_];
static _Atomic int fault_errno[WV_FAULT_COUNT_];

void wv_fault_inject(wv_fault what, int nth, int err)
{
    if ((unsigned)what >= WV_FAULT_COUNT_)
        return;
    atomic_store(&fault_errno[what], err);
    atomic_store(&fault_countdown[what], nth > 0 ? nth : 0);
    int any = 0;
    for (int i = 0; i < WV_FAULT_COUNT_; i++)
        any |= atomic_load(&fault_countdown[i]) > 0;
    atomic_store(&wv__faults_armed, any);
}

void wv_fault_clear(void)
{
    for (int i = 0; i < WV_FAULT_COUNT_; i++)
        atomic_store(&fault_countdown[i], 0);
    atomic_store(&wv__faults_armed, 0);
}

/* Counts one call of `what`; true (with *err = -errno) when it must fail. */
bool fault_hit(wv_fault what, int *err)
{
    int n = atomic_load(&fault_countdown[what]);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&fault_countdown[what], &n, n - 1)) {
            if (n == 1) {
                *err = -atomic_load(&fault_errno[what]);
                return true;
            }
            return false;
        }
    }
    return false;
}

/* ---------------------------------------------------------------- helpers */

static int in_fiber(void)
{
    return wv__shard && wv__shard->cur ? 0 : -EPERM;
}

int wv_fd_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

int wv_socket(int domain, int type, int protocol)
{
    int err;
    if (FAULT(WV_FAULT_SOCKET, &err))
        return err;
    int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
    return fd < 0 ? -errno : fd;
}

int wv_accept(int fd, struct sockaddr *addr, socklen_t *len)
{
    int rc = in_fiber();
    if (rc < 0)
        return rc;
    for (;;) {
        int err;
        if (FAULT(WV_FAULT_ACCEPT, &err))
            return err;
        int c = accept4(fd, addr, len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (c >= 0)
            return c;
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno != EAGAIN)
            return -errno;
        rc = fd_wait_again(fd, WV_IN);
        if (rc < 0)
            return rc;
    }
}

int wv_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    int rc = in_fiber();
    if (rc < 0)
        return rc;
    int err;
    if (FAULT(WV_FAULT_CONNECT, &err))
        return err;
    if (connect(fd, addr, len) == 0)
        return 0;
    if (errno != EINPROGRESS && errno != EINTR)
        return -errno;
    rc = fd_wait_again(fd, WV_OUT);
    if (rc < 0)
        return rc;
    if (!fd_error_seen(fd))
        return 0; /* writable with no error or hang-up: connected */
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0)
        return -errno;
    return -soerr;
}

/* wv_read and wv_recv: recv_flags < 0 for read(2). */
static ssize_t read_or_recv(int fd, void *buf, size_t n, int recv_flags)
{
    int rc = in_fiber();
    if (rc < 0)
        return rc;
    rc = fd_wait_if_drained(fd);
    if (rc < 0)
        return rc;
    for (;;) {
        int err;
        if (FAULT(WV_FAULT_READ, &err))
            return err;
        ssize_t r = recv_flags < 0 ? read(fd, buf, n) : recv(fd, buf, n, recv_flags);
        if (r > 0 && (size_t)r < n)
            fd_note_short_read(fd);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        rc = fd_wait_again(fd, WV_IN);
        if (rc < 0)
            return rc;
    }
}

ssize_t wv_read(int fd, void *buf, size_t n)
{
    return read_or_recv(fd, buf, n, -1);
}

ssize_t wv_recv(int fd, void *buf, size_t n, int flags)
{
    return read_or_recv(fd, buf, n, flags < 0 ? 0 : flags);
}

ssize_t wv_send(int fd, const void *buf, size_t n, int flags)
{
    int rc = in_fiber();
    if (rc < 0)
        return rc;
    const char *p = buf;
    size_t done = 0;
    while (done < n) {
        int err;
        if (FAULT(WV_FAULT_WRITE, &err))
            return err;
        ssize_t w = send(fd, p + done, n - done, flags | MSG_NOSIGNAL);
        if (w >= 0) {
            done += (size_t)w;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        rc = fd_wait_again(fd, WV_OUT);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)n;
}

ssize_t wv_write(int fd, const void *buf, size_t n)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = n};
    return wv_writev(fd, &iov, 1);
}

static ssize_t writev_all(int fd, struct iovec *v, int iovcnt, size_t total)
{
    size_t done = 0;
    while (done < total) {
        int err;
        if (FAULT(WV_FAULT_WRITE, &err))
            return err;
        ssize_t w = writev(fd, v, iovcnt);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN)
                return -errno;
            int rc = fd_wait_again(fd, WV_OUT);
            if (rc < 0)
                return rc;
            continue;
        }
        done += (size_t)w;
        size_t skip = (size_t)w;
        while (iovcnt > 0 && skip >= v->iov_len) {
            skip -= v->iov_len;
            v++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            v->iov_base = (char *)v->iov_base + skip;
            v->iov_len -= skip;
        }
    }
    return (ssize_t)total;
}

ssize_t wv_writev(int fd, const struct iovec *iov, int iovcnt)
{
    int rc = in_fiber();
    if (rc < 0)
        return rc;
    if (iovcnt < 0 || iovcnt > IOV_MAX)
        return -EINVAL;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    /* the kernel may take part of the batch: advance over a private copy */
    struct iovec local[16];
    struct iovec *v = iovcnt <= 16 ? local : malloc((size_t)iovcnt * sizeof *v);
    if (!v)
        return -ENOMEM;
    for (int i = 0; i < iovcnt; i++)
        v[i] = iov[i];
    ssize_t r = writev_all(fd, v, iovcnt, total);
    if (v != local)
        free(v);
    return r;
}

ssize_t wv_sendfile(int out_fd, int in_fd, off_t *offset, size_t count)
{
    int rc = in_fiber();
    if (rc < 0)
        return rc;
    size_t sent = 0;
    while (sent < count) {
        int err;
        if (FAULT(WV_FAULT_SENDFILE, &err))
            return err;
        ssize_t w = sendfile(out_fd, in_fd, offset, count - sent);
        if (w > 0) {
            sent += (size_t)w;
            continue;
        }
        if (w == 0)
            break; /* end of file */
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            return -errno;
        rc = fd_wait_again(out_fd, WV_OUT);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)sent;
}
