/*
 * Shared helpers for weave's unit tests (header-only: every function is
 * static, each test executable includes this once).
 *
 * The one rule: cmocka's assert_* macros longjmp out of the test when they
 * fail. Inside a fiber (another stack) or on a shard thread that jump would
 * cross stacks and threads, so code that runs inside the runtime never uses
 * them. It uses CHECK / CHECK_EQ / ... instead, which record the first
 * failing file:line (thread-safe) and let the fiber go on, and REQUIRE /
 * REQUIRE_EQ, which in addition return -1 from the current (int-returning)
 * function. The test function then calls assert_checks_passed() once wv_main
 * has returned:
 *
 *     static int body(void *arg)
 *     {
 *         CHECK_EQ(wv_sleep_ms(1), 0);
 *         return 0;
 *     }
 *     static void test_sleep_returns_zero(void **state)
 *     {
 *         assert_int_equal(run_in_rt(1, body, NULL), 0);
 *         assert_checks_passed();
 *     }
 *
 * Besides that: run_in_rt() (wv_main with a watchdog that prints every
 * thread's stack through gdb, when there is one, before it exits), timing helpers,
 * socket helpers, run_in_child() (fork, capture stderr, wait),
 * read_source_file() (fixtures), and harness_init() (unbuffered stdout,
 * so a hang or crash still shows which test was running).
 */
#ifndef WEAVE_TESTS_UNIT_HARNESS_H
#define WEAVE_TESTS_UNIT_HARNESS_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "weave/rt.h"

/* A test body that does not finish within this many seconds is a hang. */
#define HARNESS_WATCHDOG_SECONDS 60

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define NS_PER_MS    INT64_C(1000000)

/* ------------------------------------------------------------ checks */

static atomic_int checks_failed;
static char checks_first[512];

static inline void check_failed(const char *file, int line, const char *fmt, ...) WV_PRINTF(3, 4);

static inline void check_failed(const char *file, int line, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int n = atomic_fetch_add(&checks_failed, 1);
    if (n == 0)
        snprintf(checks_first, sizeof(checks_first), "%s:%d: %s", file, line, msg);
    if (n < 5)
        fprintf(stderr, "CHECK failed at %s:%d: %s\n", file, line, msg);
}

static inline bool check_true(bool ok, const char *file, int line, const char *expr)
{
    if (!ok)
        check_failed(file, line, "%s", expr);
    return ok;
}

static inline bool check_eq(int64_t got, int64_t want, const char *file, int line,
                            const char *got_expr, const char *want_expr)
{
    if (got != want)
        check_failed(file, line, "%s == %s: got %" PRId64 ", want %" PRId64, got_expr, want_expr,
                     got, want);
    return got == want;
}

static inline bool check_between(int64_t got, int64_t lo, int64_t hi, const char *file, int line,
                                 const char *expr)
{
    bool ok = got >= lo && got <= hi;
    if (!ok)
        check_failed(file, line, "%s: got %" PRId64 ", want in [%" PRId64 ", %" PRId64 "]", expr,
                     got, lo, hi);
    return ok;
}

static inline bool check_str_eq(const char *got, const char *want, const char *file, int line,
                                const char *got_expr)
{
    bool ok = got != NULL && strcmp(got, want) == 0;
    if (!ok)
        check_failed(file, line, "%s: got \"%s\", want \"%s\"", got_expr, got ? got : "(null)",
                     want);
    return ok;
}

/* Record a failure and carry on; each evaluates to true when it held. */
#define CHECK(cond) check_true((cond), __FILE__, __LINE__, #cond)
#define CHECK_EQ(got, want)                                                                        \
    check_eq((int64_t)(got), (int64_t)(want), __FILE__, __LINE__, #got, #want)
#define CHECK_BETWEEN(v, lo, hi)                                                                   \
    check_between((int64_t)(v), (int64_t)(lo), (int64_t)(hi), __FILE__, __LINE__, #v)
#define CHECK_STR_EQ(got, want) check_str_eq((got), (want), __FILE__, __LINE__, #got)

/* Record a failure and return -1 from the enclosing int function. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!CHECK(cond))                                                                          \
            return -1;                                                                             \
    } while (0)
#define REQUIRE_EQ(got, want)                                                                      \
    do {                                                                                           \
        if (!CHECK_EQ(got, want))                                                                  \
            return -1;                                                                             \
    } while (0)

/* In the test function, after the runtime has stopped: fail the test if any
 * CHECK failed, naming the first one; resets the record either way. */
#define assert_checks_passed() checks_assert_passed(__FILE__, __LINE__)

static inline void checks_assert_passed(const char *file, int line)
{
    int n = atomic_exchange(&checks_failed, 0);
    if (n != 0) {
        char first[sizeof(checks_first)];
        memcpy(first, checks_first, sizeof(first));
        checks_first[0] = '\0';
        print_error("%d check(s) failed inside the runtime; first: %s\n", n, first);
        _fail(file, line);
    }
}

/* ------------------------------------------------------------ time */

static inline int64_t ms_since(int64_t t0)
{
    return (wv_now() - t0) / NS_PER_MS;
}

/* ------------------------------------------------------------ runtime */

static inline void watchdog_fired(int sig)
{
    (void)sig;
    static const char msg[] = "\nwatchdog: the test body did not finish within the "
                              "watchdog period (a hang?); exiting\n";
    ssize_t r = write(2, msg, sizeof(msg) - 1);
    (void)r;
    /* where every thread is, for the log (best effort: gdb may be missing);
     * only async-signal-safe calls here */
    char pid[24], *e = pid + sizeof pid - 1;
    *e = '\0';
    for (pid_t v = getpid(); v > 0 || e == pid + sizeof pid - 1; v /= 10)
        *--e = (char)('0' + v % 10);
    pid_t child = fork();
    if (child == 0) {
        dup2(2, 1);
        execlp("gdb", "gdb", "-p", e, "-batch", "-ex", "thread apply all bt 16", (char *)NULL);
        _exit(127);
    }
    if (child > 0)
        waitpid(child, NULL, 0);
    _exit(3);
}

static inline int run_in_rt_opts(const wv_main_opts *opts, wv_fn *fn, void *arg)
{
    alarm(HARNESS_WATCHDOG_SECONDS);
    int r = wv_main(opts, fn, arg);
    alarm(0);
    return r;
}

/* Run fn(arg) as the main fiber of a runtime with `shards` shards and
 * signals left alone; returns what wv_main returns (fn's result). */
static inline int run_in_rt(int shards, wv_fn *fn, void *arg)
{
    wv_main_opts opts = {.shards = shards, .no_signal_handling = true};
    return run_in_rt_opts(&opts, fn, arg);
}

/* The file at path (relative to the source tree: $WEAVE_SOURCE_DIR, "."
 * when unset) read whole into a malloc'ed block with a NUL after its *n
 * bytes; the test fails when it cannot be read. For fixtures. */
static inline char *read_source_file(const char *path, size_t *n)
{
    const char *root = getenv("WEAVE_SOURCE_DIR");
    char full[4096];
    snprintf(full, sizeof full, "%s/%s", root ? root : ".", path);
    FILE *f = fopen(full, "rb");
    if (!f)
        fail_msg("cannot open %s (set WEAVE_SOURCE_DIR)", full);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)len + 1);
    if (!buf || len < 0 || fread(buf, 1, (size_t)len, f) != (size_t)len)
        fail_msg("cannot read %s", full);
    fclose(f);
    buf[len] = 0;
    *n = (size_t)len;
    return buf;
}

/* Call first in main(). */
static inline void harness_init(void)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = watchdog_fired;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
}

/* Poll (sleeping 1 ms between looks, inside a fiber) until *flag reaches
 * `want` or `timeout_ms` passes; returns whether it did. */
static inline bool wait_for_atomic(atomic_int *flag, int want, int64_t timeout_ms)
{
    int64_t end = wv_after_ms(timeout_ms);
    while (atomic_load(flag) < want) {
        if (wv_now() > end)
            return false;
        if (wv_sleep_ms(1) != 0)
            return atomic_load(flag) >= want;
    }
    return true;
}

/* ------------------------------------------------------------ sockets */

/* A connected AF_UNIX stream pair, non-blocking and close-on-exec. */
static inline int nb_socketpair(int sv[2])
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return -errno;
    return 0;
}

static inline struct sockaddr_in loopback_addr(uint16_t port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

/* A TCP port nothing listens on at 127.0.0.1 just now (bound, noted,
 * closed), or -1. A server started right after usually gets it; retry
 * with another when it does not. */
static inline int loopback_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = loopback_addr(0);
    socklen_t len = sizeof a;
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

/* A TCP listener on 127.0.0.1 and an ephemeral port (made with wv_socket,
 * so call it inside the runtime); the port goes to *port. fd or -errno. */
static inline int listen_loopback(uint16_t *port)
{
    int fd = wv_socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return fd;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in a = loopback_addr(0);
    socklen_t len = sizeof(a);
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    *port = ntohs(a.sin_port);
    return fd;
}

/* ------------------------------------------------------------ child processes */

typedef struct child_result {
    int status;      /* from waitpid */
    char err[16384]; /* the child's stderr (truncated, NUL-terminated) */
} child_result;

static inline bool child_died_abnormally(const child_result *r)
{
    return WIFSIGNALED(r->status) || (WIFEXITED(r->status) && WEXITSTATUS(r->status) != 0);
}

static inline bool child_exited_zero(const child_result *r)
{
    return WIFEXITED(r->status) && WEXITSTATUS(r->status) == 0;
}

/*
 * fork(); the child gets default handlers for the fatal signals (cmocka
 * installs its own), no core dumps and a 30 s alarm, sends its stderr into a
 * pipe, and _exit()s with body(arg). The parent collects that stderr and the
 * exit status into *out. Returns 0, or -errno when the fork failed.
 */
static inline int run_in_child(int (*body)(void *), void *arg, child_result *out)
{
    memset(out, 0, sizeof(*out));
    int p[2];
    if (pipe(p) != 0)
        return -errno;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        int e = -errno;
        close(p[0]);
        close(p[1]);
        return e;
    }
    if (pid == 0) {
        static const int fatal[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS, SIGALRM};
        for (size_t i = 0; i < ARRAY_LEN(fatal); i++)
            signal(fatal[i], SIG_DFL);
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        close(p[0]);
        dup2(p[1], 2);
        close(p[1]);
        alarm(30);
        _exit(body(arg));
    }
    close(p[1]);
    size_t used = 0;
    for (;;) {
        char chunk[4096];
        ssize_t n = read(p[0], chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        size_t room = sizeof(out->err) - 1 - used;
        size_t take = (size_t)n < room ? (size_t)n : room;
        memcpy(out->err + used, chunk, take);
        used += take;
    }
    out->err[used] = '\0';
    close(p[0]);
    while (waitpid(pid, &out->status, 0) < 0 && errno == EINTR) {
    }
    return 0;
}

#endif
