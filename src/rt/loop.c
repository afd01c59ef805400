/*
 * The shard loop: epoll (edge-triggered), the mailbox other threads post
 * into, timers, and waiting on file descriptors.
 *
 * Every fd a fiber waits on is added to the shard's epoll once, for both
 * directions, edge-triggered, and stays there until wv_close/wv_fd_forget.
 * Its record remembers the waiting reader and writer and any readiness that
 * arrived while nobody waited, so a later wv_fd_wait returns at once. The I/O
 * helpers only wait after the system call said EAGAIN, and clear the stale
 * readiness first: an edge cannot slip between the two, because events are
 * only taken in this loop, while no fiber runs.
 */
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "rt/rt_internal.h"

enum { MAX_EVENTS = 256 };

#define TAG_DOORBELL UINT64_MAX
#define TAG_SIGNAL   (UINT64_MAX - 1)

/* ---------------------------------------------------------------- mailbox */

void mailbox_init(mailbox *mb)
{
    atomic_store_explicit(&mb->stub.next, NULL, memory_order_relaxed);
    atomic_store_explicit(&mb->head, &mb->stub, memory_order_relaxed);
    mb->tail = &mb->stub;
}

void mailbox_push(mailbox *mb, msg *m)
{
    atomic_store_explicit(&m->next, NULL, memory_order_relaxed);
    msg *prev = atomic_exchange_explicit(&mb->head, m, memory_order_seq_cst);
    atomic_store_explicit(&prev->next, m, memory_order_release);
}

bool mailbox_empty(mailbox *mb)
{
    return atomic_load_explicit(&mb->head, memory_order_seq_cst) == &mb->stub &&
           mb->tail == &mb->stub;
}

msg *mailbox_pop(mailbox *mb)
{
    msg *tail = mb->tail;
    msg *next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (tail == &mb->stub) {
        if (!next)
            return NULL;
        mb->tail = next;
        tail = next;
        next = atomic_load_explicit(&next->next, memory_order_acquire);
    }
    if (next) {
        mb->tail = next;
        return tail;
    }
    if (tail != atomic_load_explicit(&mb->head, memory_order_acquire))
        return NULL; /* a producer is between its exchange and its link */
    mailbox_push(mb, &mb->stub);
    next = atomic_load_explicit(&tail->next, memory_order_acquire);
    if (next) {
        mb->tail = next;
        return tail;
    }
    return NULL;
}

void shard_ring(shard *target)
{
    if (atomic_exchange_explicit(&target->sleeping, 0, memory_order_seq_cst)) {
        uint64_t one = 1;
        ssize_t w = write(target->evfd, &one, sizeof one);
        (void)w; /* EAGAIN means the counter is already non-zero: rung */
    }
}

void shard_post_msg(shard *target, msg *m)
{
    mailbox_push(&target->mb, m);
    if (WV_UNLIKELY(wv__rt && wv__rt->vclock))
        atomic_store(&target->vquiet, 0); /* before the sender may sleep: no jump over it */
    shard_ring(target);
}

/* ----------------------------------------------------------- shard setup */

int shard_init(shard *sh, int id)
{
    memset(sh, 0, sizeof *sh);
    sh->id = id;
    sh->sigfd = -1;
    mailbox_init(&sh->mb);
    sh->now = wv_now();
    wheel_init(&sh->timers, sh->now);
    sh->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (sh->epfd < 0)
        return -errno;
    sh->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (sh->evfd < 0) {
        int err = -errno;
        close(sh->epfd);
        return err;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = TAG_DOORBELL};
    if (epoll_ctl(sh->epfd, EPOLL_CTL_ADD, sh->evfd, &ev) < 0) {
        int err = -errno;
        close(sh->evfd);
        close(sh->epfd);
        return err;
    }
    return 0;
}

int shard_watch_signals(shard *sh, const sigset_t *set)
{
    sh->sigfd = signalfd(-1, set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sh->sigfd < 0)
        return -errno;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = TAG_SIGNAL};
    if (epoll_ctl(sh->epfd, EPOLL_CTL_ADD, sh->sigfd, &ev) < 0)
        return -errno;
    return 0;
}

void shard_destroy(shard *sh)
{
    wheel_free(&sh->timers);
    free(sh->fds);
    sh->fds = NULL;
    stacks_free(sh);
    if (sh->sigfd >= 0)
        close(sh->sigfd);
    close(sh->evfd);
    close(sh->epfd);
}

void shard_sched_stack_bounds(shard *sh)
{
    pthread_attr_t attr;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        void *addr;
        size_t size;
        if (pthread_attr_getstack(&attr, &addr, &size) == 0) {
            sh->sched_stack_lo = addr;
            sh->sched_stack_size = size;
        }
        pthread_attr_destroy(&attr);
    }
}

/* ------------------------------------------------------- fd readiness */

typedef struct fdwait {
    wv_fiber *f;
    shard *sh;
    int fd;
    int events;
    int got;
} fdwait;

static fdrec *fdrec_get(shard *sh, int fd)
{
    if (fd >= sh->nfds) {
        int n = sh->nfds ? sh->nfds : 64;
        while (n <= fd)
            n *= 2;
        fdrec *v = realloc(sh->fds, (size_t)n * sizeof *v);
        if (!v)
            die("out of memory growing the fd table");
        memset(v + sh->nfds, 0, (size_t)(n - sh->nfds) * sizeof *v);
        sh->fds = v;
        sh->nfds = n;
    }
    return &sh->fds[fd];
}

static void fdwait_unlink(void *p)
{
    fdwait *w = p;
    if (w->fd >= w->sh->nfds)
        return;
    fdrec *r = &w->sh->fds[w->fd];
    if (r->reader == (wv_fiber *)w)
        r->reader = NULL;
    if (r->writer == (wv_fiber *)w)
        r->writer = NULL;
}

/* The fdrec's reader/writer slots hold the fdwait (cast), not the fiber. */
static void fd_event(shard *sh, int fd, uint32_t ev)
{
    if (fd < 0 || fd >= sh->nfds)
        return;
    fdrec *r = &sh->fds[fd];
    if (!r->registered)
        return;
    int mask = 0;
    if (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        mask |= WV_IN;
    if (ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
        r->hup = 1;
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        mask |= WV_OUT;
    fdwait *rd = (fdwait *)r->reader, *wr = (fdwait *)r->writer;
    if (rd && (mask & WV_IN)) {
        rd->got |= WV_IN;
        mask &= ~WV_IN;
        fiber_wake(rd->f, 0);
    }
    if (wr && (mask & WV_OUT)) {
        wr->got |= WV_OUT;
        mask &= ~WV_OUT;
        if (wr != rd || wr->f->state == FIBER_WAITING)
            fiber_wake(wr->f, 0);
    }
    r->ready |= (uint8_t)mask;
}

static int fd_register(shard *sh, int fd, fdrec *r)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                             .data.u64 = (uint64_t)fd};
    if (epoll_ctl(sh->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        if (errno == EEXIST) {
            if (epoll_ctl(sh->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
                return -errno;
        } else if (errno == EPERM) {
            /* regular files and directories: always ready */
            r->ready = WV_IN | WV_OUT;
            r->registered = 2;
            return 0;
        } else {
            return -errno;
        }
    }
    r->registered = 1;
    return 0;
}

static int fd_wait(int fd, int events, int64_t at, bool fresh)
{
    shard *sh = wv__shard;
    if (!sh || !sh->cur)
        return -EPERM;
    if (fd < 0 || !(events & (WV_IN | WV_OUT)) || (events & ~(WV_IN | WV_OUT)))
        return fd < 0 ? -EBADF : -EINVAL;
    fdrec *r = fdrec_get(sh, fd);
    if (!r->registered) {
        int rc = fd_register(sh, fd, r);
        if (rc < 0)
            return rc;
    }
    if (fresh && r->registered == 1)
        r->ready &= (uint8_t)~events;
    int ready = r->ready & events;
    if (ready) {
        if (r->registered == 1)
            r->ready &= (uint8_t)~ready;
        return ready;
    }
    if (((events & WV_IN) && r->reader) || ((events & WV_OUT) && r->writer))
        return -EBUSY;
    fdwait w = {.f = sh->cur, .sh = sh, .fd = fd, .events = events};
    if (events & WV_IN)
        r->reader = (wv_fiber *)&w;
    if (events & WV_OUT)
        r->writer = (wv_fiber *)&w;
    sh->ext_waits++; /* the virtual clock does not jump over a socket's answer */
    int rc = park(at, fdwait_unlink, &w);
    sh->ext_waits--;
    fdwait_unlink(&w);
    if (w.got)
        return w.got; /* readiness beats a timeout that fired in the same pass */
    return rc;
}

int wv_fd_wait(int fd, int events, int64_t at)
{
    shard *sh = wv__shard;
    if (sh && (events & WV_IN) && fd >= 0 && fd < sh->nfds && sh->fds[fd].registered == 1 &&
        sh->fds[fd].hup) {
        /* the peer's FIN came (maybe with the last bytes, read already): no
         * edge will follow, and a read returns what is left, then 0 */
        sh->fds[fd].drained = 0;
        return WV_IN;
    }
    int rc = fd_wait(fd, events & (WV_IN | WV_OUT), at, (events & WV_FRESH) != 0);
    /* the caller saw input arrive: a read after this must not wait for
     * yet another edge because an earlier read came back short */
    if (rc > 0 && (rc & WV_IN))
        wv__shard->fds[fd].drained = 0;
    return rc;
}

/* For the I/O helpers: the call just said EAGAIN, so older readiness is
 * stale; wait for a new edge. */
int fd_wait_again(int fd, int events)
{
    return fd_wait(fd, events, WV_NEVER, true);
}

/*
 * A read that returned less than it asked for drained the socket, so the
 * next read would only say EAGAIN: wv_read waits for the next edge first and
 * saves that system call (one of a keep-alive request's three), as nginx
 * does. Readiness that arrived meanwhile is kept in `ready`, so no data is
 * missed. A FIN is different: once it is queued, a short read leaves EOF
 * behind it and no new edge will come, so after EPOLLRDHUP reads never
 * wait (this is what made 64 echo clients hang in CLOSE-WAIT before).
 */
void fd_note_short_read(int fd)
{
    shard *sh = wv__shard;
    if (fd < sh->nfds && sh->fds[fd].registered == 1)
        sh->fds[fd].drained = 1;
}

bool fd_error_seen(int fd)
{
    shard *sh = wv__shard;
    return !sh || fd < 0 || fd >= sh->nfds || sh->fds[fd].hup;
}

int fd_wait_if_drained(int fd)
{
    shard *sh = wv__shard;
    if (fd >= sh->nfds || !sh->fds[fd].drained)
        return 0;
    sh->fds[fd].drained = 0;
    if (sh->fds[fd].hup)
        return 0;
    int rc = fd_wait(fd, WV_IN, WV_NEVER, false);
    return rc < 0 ? rc : 0;
}

void fds_wake_all(shard *sh, int fd, int result)
{
    if (fd < 0 || fd >= sh->nfds)
        return;
    fdrec *r = &sh->fds[fd];
    fdwait *rd = (fdwait *)r->reader, *wr = (fdwait *)r->writer;
    r->reader = r->writer = NULL;
    if (rd)
        fiber_wake(rd->f, result);
    if (wr && wr != rd)
        fiber_wake(wr->f, result);
}

void wv_fd_forget(int fd)
{
    shard *sh = wv__shard;
    if (!sh || fd < 0 || fd >= sh->nfds)
        return;
    fdrec *r = &sh->fds[fd];
    if (r->registered == 1)
        epoll_ctl(sh->epfd, EPOLL_CTL_DEL, fd, NULL);
    fds_wake_all(sh, fd, -EBADF);
    memset(r, 0, sizeof *r);
}

/* Like wv_fd_forget, without the EPOLL_CTL_DEL: closing the descriptor
 * takes it out of the epoll set (our sockets are close-on-exec and never
 * duplicated), one system call fewer per connection. */
int wv_close(int fd)
{
    shard *sh = wv__shard;
    if (sh && fd >= 0 && fd < sh->nfds) {
        fds_wake_all(sh, fd, -EBADF);
        memset(&sh->fds[fd], 0, sizeof sh->fds[fd]);
    }
    return close(fd) < 0 ? -errno : 0;
}

/* ------------------------------------------------------------- the loop */

static void ring_doorbell_consumed(shard *sh)
{
    uint64_t v;
    while (read(sh->evfd, &v, sizeof v) > 0) {
    }
}

static int poll_timeout_ns(shard *sh, int64_t *out)
{
    if (sh->runq_head) {
        *out = 0;
        return 0;
    }
    int64_t next = wheel_next(&sh->timers);
    if (next == WV_NEVER) {
        *out = -1;
        return 0;
    }
    sh->now = wv_now();
    int64_t d = next - sh->now;
    *out = d < 0 ? 0 : d;
    return 0;
}

static int have_pwait2 = 1;

/* epoll_pwait2 takes a nanosecond timeout (Linux 5.11); older kernels get
 * epoll_wait with the timeout rounded up to a millisecond. */
static int wait_events(int epfd, struct epoll_event *evs, struct timespec *tsp, int64_t timeout)
{
    if (have_pwait2) {
        int n = epoll_pwait2(epfd, evs, MAX_EVENTS, tsp, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        have_pwait2 = 0;
    }
    int ms = timeout < 0                       ? -1
             : timeout > INT32_MAX * 1000000LL ? INT32_MAX
                                               : (int)((timeout + 999999) / 1000000);
    return epoll_wait(epfd, evs, MAX_EVENTS, ms);
}

/* Going idle after a burst: give the allocator's free memory back to the
 * kernel (glibc keeps freed blocks below its mmap threshold, so 10,000
 * closed connections would otherwise stay in RSS). At most every 5 s. */
static void idle_trim_heap(shard *sh)
{
    int64_t now = wv_now();
    if (now - sh->last_heap_trim < 5000000000LL)
        return;
    sh->last_heap_trim = now;
    malloc_trim(64 * 1024);
}

void wv_pass_hook_queue(wv_pass_hook *h, void (*fn)(wv_pass_hook *h))
{
    shard *sh = wv__shard;
    h->fn_ = fn;
    if (h->queued_ || !sh)
        return;
    h->queued_ = true;
    h->prev_ = NULL;
    h->next_ = sh->deferred;
    if (sh->deferred)
        sh->deferred->prev_ = h;
    sh->deferred = h;
}

void wv_pass_hook_cancel(wv_pass_hook *h)
{
    shard *sh = wv__shard;
    if (!h->queued_ || !sh)
        return;
    if (h->prev_)
        h->prev_->next_ = h->next_;
    else
        sh->deferred = h->next_;
    if (h->next_)
        h->next_->prev_ = h->prev_;
    h->queued_ = false;
    h->prev_ = h->next_ = NULL;
}

/* Run what the fibers of this pass deferred; hooks queued meanwhile (a
 * hook's own work) run too, before the poll. */
static void run_deferred(shard *sh)
{
    while (sh->deferred) {
        wv_pass_hook *h = sh->deferred;
        wv_pass_hook_cancel(h);
        h->fn_(h);
    }
}

void shard_loop(shard *sh)
{
    struct epoll_event evs[MAX_EVENTS];
    const bool vclock = wv__rt->vclock;
    for (;;) {
        wv_fiber *f = runq_pop(sh);
        if (f)
            sched_run(sh, f);
        if (sh->deferred)
            run_deferred(sh);
        if (shard_should_exit(sh))
            break;

        int64_t timeout;
        poll_timeout_ns(sh, &timeout);
        if (timeout != 0) {
            if (sh->pool_n > sh->pool_clean)
                pool_trim(sh); /* all but the warmest stacks */
            idle_trim_heap(sh);
            atomic_store_explicit(&sh->sleeping, 1, memory_order_seq_cst);
            if (!mailbox_empty(&sh->mb))
                timeout = 0;
            else if (WV_UNLIKELY(vclock))
                timeout = vclock_idle(sh, timeout, f != NULL);
        }
        struct timespec ts, *tsp = NULL;
        if (timeout >= 0) {
            ts.tv_sec = timeout / 1000000000;
            ts.tv_nsec = timeout % 1000000000;
            tsp = &ts;
        }
        int n = wait_events(sh->epfd, evs, tsp, timeout);
        atomic_store_explicit(&sh->sleeping, 0, memory_order_relaxed);
        if (WV_UNLIKELY(vclock)) {
            bool active = !mailbox_empty(&sh->mb);
            for (int i = 0; i < n && !active; i++)
                active = evs[i].data.u64 != TAG_DOORBELL;
            vclock_woke(sh, active);
        }
        for (int i = 0; i < n; i++) {
            uint64_t tag = evs[i].data.u64;
            if (tag == TAG_DOORBELL)
                ring_doorbell_consumed(sh);
            else if (tag == TAG_SIGNAL)
                signals_received(sh);
            else
                fd_event(sh, (int)tag, evs[i].events);
        }
        msg *m;
        while ((m = mailbox_pop(&sh->mb)) != NULL)
            m->run(m);
        sh->now = wv_now(); /* one clock read a pass: timers, and wv_now_coarse */
        if (sh->timers.count)
            wheel_advance(&sh->timers, sh->now);
    }
}
