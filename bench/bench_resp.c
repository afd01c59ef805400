/*
 * bench/bench_resp.c: weave's RESP reader (src/redis/resp.c) against
 * hiredis 0.14's redisReader, on the same RESP2 bytes in the same run.
 *
 *   bench_resp [rounds]     BENCH lines (rounds: 5, 9 with BENCH_LONG=1)
 *
 * Four streams of about 1 MB, each many replies back to back as a
 * pipelined connection receives them, fed in 16 KB reads:
 *
 *   get        $100 CRLF <100 bytes> CRLF      (GET of a 100-byte value)
 *   lrange100  *100 of $10 bulk strings        (LRANGE 0 99)
 *   int        :12345 CRLF                     (INCR, EXISTS, ...)
 *   ok         +OK CRLF                        (SET)
 *
 * Each side does what a client does with every reply:
 *
 *   weave     resp_scan on the connection's buffer (compacted when a read
 *             does not fit), then one malloc of [nodes][bytes], the bytes
 *             copied, resp_build, the value read, free.
 *   weave fast (the _fast figures) resp_scan and the top-level description
 *             it leaves in the scanner, no tree: a GET's value copied to a
 *             reused buffer (the caller's), an integer or +OK read.
 *   hiredis   redisReaderFeed of each read, redisReaderGetReply until it
 *             has no more, the value read, freeReplyObject. maxbuf = 0
 *             (hiredis's documented setting for throughput: the reader
 *             keeps its buffer instead of freeing it when idle).
 *
 * Every reply's value is checked on both sides and the replies counted, so
 * a side that skipped or garbled one fails instead of looking fast. Timing:
 * per figure, the sides alternate for `rounds` rounds (A B C A B C ...),
 * each a loop of about 40 ms over the stream after a warm-up; the BENCH line
 * gives the medians in ns per reply and ratio = hiredis / weave (higher is
 * better for weave). Without hiredis (libhiredis-dev not installed) the
 * lines have no anchor.
 *
 * The clock is the thread's CPU time (CLOCK_THREAD_CPUTIME_ID), not the
 * wall: both sides are one thread that never blocks, so the two are the
 * same on an idle machine, and on a busy one the time the thread spent
 * descheduled (which once made one 40 ms loop ten times slower than the
 * next) stays out of the figure.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "redis/resp.h"

#ifdef WEAVE_HAVE_HIREDIS
#include <hiredis/hiredis.h>
#endif

enum {
    READ_SIZE = 16384,
    STREAM_BYTES = 1 << 20,
    MAX_ROUNDS = 15,
    TARGET_NS = 40 * 1000 * 1000,
};

/* ------------------------------------------------------------ streams */

typedef enum shape { GET, LRANGE, INT, OK, NSHAPES } shape;
static const char *shape_names[NSHAPES] = {"get", "lrange100", "int", "ok"};

typedef struct stream {
    char *p;
    size_t n;
    long replies;
    char value[101]; /* GET's value */
} stream;

static stream streams[NSHAPES];

static int make_stream(shape sh)
{
    stream *st = &streams[sh];
    char one[2048];
    size_t len = 0;
    for (int i = 0; i < 100; i++)
        st->value[i] = (char)('a' + i % 26);
    st->value[100] = '\0';
    switch (sh) {
    case GET:
        len = (size_t)snprintf(one, sizeof one, "$100\r\n%s\r\n", st->value);
        break;
    case LRANGE:
        len = (size_t)snprintf(one, sizeof one, "*100\r\n");
        for (int i = 0; i < 100; i++)
            len += (size_t)snprintf(one + len, sizeof one - len, "$10\r\nvalue-%04d\r\n", i);
        break;
    case INT:
        len = (size_t)snprintf(one, sizeof one, ":12345\r\n");
        break;
    case OK:
    case NSHAPES:
        len = (size_t)snprintf(one, sizeof one, "+OK\r\n");
        break;
    }
    st->replies = (long)(STREAM_BYTES / len);
    st->n = (size_t)st->replies * len;
    st->p = malloc(st->n);
    if (!st->p)
        return -ENOMEM;
    for (long i = 0; i < st->replies; i++)
        memcpy(st->p + (size_t)i * len, one, len);
    return 0;
}

/* ------------------------------------------------------------ weave */

typedef enum side { WEAVE, WEAVE_FAST, HIREDIS, NSIDES } side;
static const char *side_names[NSIDES] = {"weave", "weave_fast", "hiredis"};

/* The value of one reply as the client hands it out: nonzero when wrong. */
static int check_tree(shape sh, const wv_redis_reply *r, const char *value)
{
    switch (sh) {
    case GET:
        return r->type != WV_REDIS_STRING || r->len != 100 || memcmp(r->str, value, 100) != 0;
    case LRANGE:
        if (r->type != WV_REDIS_ARRAY || r->len != 100)
            return 1;
        for (size_t i = 0; i < r->len; i++)
            if (r->elem[i].type != WV_REDIS_STRING || r->elem[i].len != 10 ||
                r->elem[i].str[9] != (char)('0' + i % 10))
                return 1;
        return 0;
    case INT:
        return r->type != WV_REDIS_INT || r->integer != 12345;
    default:
        return r->type != WV_REDIS_STATUS || r->len != 2 || memcmp(r->str, "OK", 2) != 0;
    }
}

/* Without a tree: the scanner's description of the top level. */
static int check_fast(shape sh, const resp_scanner *s, const char *p, char *out, const char *value)
{
    switch (sh) {
    case GET:
        if (s->type != WV_REDIS_STRING || s->str_len != 100)
            return 1;
        memcpy(out, p + s->str_off, s->str_len); /* into the caller's buffer */
        return out[0] != value[0] || out[99] != value[99];
    case INT:
        return s->type != WV_REDIS_INT || s->integer != 12345;
    case OK:
        return s->type != WV_REDIS_STATUS || s->str_len != 2 || p[s->str_off] != 'O';
    default:
        return 1;
    }
}

/* One pass over the stream as a connection reads it: replies handled, or
 * -1 when one was wrong. */
static long weave_pass(shape sh, bool fast)
{
    static char in[4 * READ_SIZE];
    static char out[128];
    const stream *st = &streams[sh];
    resp_scanner s;
    resp_scanner_init(&s, 0);
    size_t start = 0, end = 0, fed = 0;
    long replies = 0;
    while (fed < st->n || start < end) {
        if (end + READ_SIZE > sizeof in) { /* compact: move the unconsumed bytes down */
            memmove(in, in + start, end - start);
            end -= start;
            start = 0;
        }
        size_t chunk = st->n - fed < READ_SIZE ? st->n - fed : READ_SIZE;
        memcpy(in + end, st->p + fed, chunk); /* the read */
        fed += chunk;
        end += chunk;
        for (;;) {
            ssize_t len = resp_scan(&s, in + start, end - start);
            if (len < 0)
                return -1;
            if (len == 0)
                break;
            const char *p = in + start;
            start += (size_t)len;
            replies++;
            if (fast) {
                if (check_fast(sh, &s, p, out, st->value))
                    return -1;
                continue;
            }
            size_t nodes = s.nodes;
            wv_redis_reply *r = malloc(nodes * sizeof *r + (size_t)len);
            if (!r)
                return -1;
            char *bytes = (char *)(r + nodes);
            memcpy(bytes, p, (size_t)len);
            int bad = resp_build(bytes, (size_t)len, r, nodes) < 0 || check_tree(sh, r, st->value);
            free(r);
            if (bad)
                return -1;
        }
        if (chunk == 0)
            break;
    }
    return start == end ? replies : -1;
}

/* ------------------------------------------------------------ hiredis */

#ifdef WEAVE_HAVE_HIREDIS
static int check_hiredis(shape sh, const redisReply *r, const char *value)
{
    switch (sh) {
    case GET:
        return r->type != REDIS_REPLY_STRING || r->len != 100 || memcmp(r->str, value, 100) != 0;
    case LRANGE:
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 100)
            return 1;
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i]->type != REDIS_REPLY_STRING || r->element[i]->len != 10 ||
                r->element[i]->str[9] != (char)('0' + i % 10))
                return 1;
        return 0;
    case INT:
        return r->type != REDIS_REPLY_INTEGER || r->integer != 12345;
    default:
        return r->type != REDIS_REPLY_STATUS || r->len != 2 || memcmp(r->str, "OK", 2) != 0;
    }
}

static long hiredis_pass(shape sh)
{
    const stream *st = &streams[sh];
    redisReader *reader = redisReaderCreate();
    if (!reader)
        return -1;
    reader->maxbuf = 0;
    long replies = 0;
    for (size_t fed = 0; fed < st->n;) {
        size_t chunk = st->n - fed < READ_SIZE ? st->n - fed : READ_SIZE;
        if (redisReaderFeed(reader, st->p + fed, chunk) != REDIS_OK)
            goto fail;
        fed += chunk;
        for (;;) {
            void *reply = NULL;
            if (redisReaderGetReply(reader, &reply) != REDIS_OK)
                goto fail;
            if (!reply)
                break;
            int bad = check_hiredis(sh, reply, st->value);
            freeReplyObject(reply);
            if (bad)
                goto fail;
            replies++;
        }
    }
    redisReaderFree(reader);
    return replies;
fail:
    redisReaderFree(reader);
    return -1;
}
#endif

static bool side_runs(shape sh, side sd)
{
    if (sd == WEAVE_FAST)
        return sh != LRANGE; /* an array needs its tree */
#ifdef WEAVE_HAVE_HIREDIS
    return true;
#else
    return sd != HIREDIS;
#endif
}

static long run_pass(shape sh, side sd)
{
#ifdef WEAVE_HAVE_HIREDIS
    if (sd == HIREDIS)
        return hiredis_pass(sh);
#endif
    return weave_pass(sh, sd == WEAVE_FAST);
}

/* ------------------------------------------------------------ timing */

/* What the loops are timed with (see the top of this file). */
static int64_t cpu_ns(void)
{
    return bench_clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

typedef struct figure {
    long passes;                /* per measurement */
    double samples[MAX_ROUNDS]; /* ns per reply */
    double median;
} figure;

static figure figures[NSHAPES][NSIDES];

/* Check one pass, warm up, size the loop to about TARGET_NS. */
static int prepare(shape sh, side sd)
{
    figure *f = &figures[sh][sd];
    if (run_pass(sh, sd) != streams[sh].replies) {
        fprintf(stderr, "bench_resp: %s read the %s stream wrong\n", side_names[sd],
                shape_names[sh]);
        return -1;
    }
    long n = 1;
    int64_t t;
    for (;;) {
        t = cpu_ns();
        for (long i = 0; i < n; i++)
            run_pass(sh, sd);
        t = cpu_ns() - t;
        if (t >= TARGET_NS / 8)
            break;
        n *= 2;
    }
    f->passes = (long)((double)n * TARGET_NS / (double)t) + 1;
    return 0;
}

static int measure(shape sh, side sd, int round)
{
    figure *f = &figures[sh][sd];
    long replies = 0;
    int64_t t = cpu_ns();
    for (long i = 0; i < f->passes; i++) {
        long got = run_pass(sh, sd);
        if (got < 0)
            return -1;
        replies += got;
    }
    t = cpu_ns() - t;
    if (replies != streams[sh].replies * f->passes) {
        fprintf(stderr, "bench_resp: %s lost replies of the %s stream\n", side_names[sd],
                shape_names[sh]);
        return -1;
    }
    f->samples[round] = (double)t / (double)replies;
    return 0;
}

/* ------------------------------------------------------------ load */

/* ------------------------------------------------------------ main */

static void print_samples(shape sh, side sd, int rounds)
{
    printf("# %s %s samples (ns/reply):", shape_names[sh], side_names[sd]);
    for (int r = 0; r < rounds; r++)
        printf(" %.1f", figures[sh][sd].samples[r]);
    printf("\n");
}

static void print_line(shape sh, side sd)
{
    const char *suffix = sd == WEAVE_FAST ? "_fast" : "";
    double value = figures[sh][sd].median;
#ifdef WEAVE_HAVE_HIREDIS
    double anchor = figures[sh][HIREDIS].median;
    printf("BENCH resp.%s%s value=%.1f unit=ns anchor=hiredis anchor_value=%.1f ratio=%.2f\n",
           shape_names[sh], suffix, value, anchor, anchor / value);
#else
    printf("BENCH resp.%s%s value=%.1f unit=ns anchor=none anchor_value=0 ratio=0\n",
           shape_names[sh], suffix, value);
#endif
}

int main(int argc, char **argv)
{
    int rounds = getenv("BENCH_LONG") ? 9 : 5;
    if (argc > 1)
        rounds = atoi(argv[1]);
    if (rounds < 1 || rounds > MAX_ROUNDS) {
        fprintf(stderr, "usage: bench_resp [rounds 1-%d]\n", MAX_ROUNDS);
        return 2;
    }
    for (int sh = 0; sh < NSHAPES; sh++)
        if (make_stream((shape)sh) < 0)
            return 1;

    int64_t t0 = now_ns();
    double busy0 = machine_busy_seconds(), own0 = own_cpu_seconds();
    printf("# bench_resp: RESP2 replies back to back, fed in %d-byte reads; ns (thread CPU time) "
           "per reply, median of %d alternating rounds\n",
           READ_SIZE, rounds);
    printf("# weave: resp_scan + one malloc of [nodes][bytes] + copy + resp_build + free; _fast: "
           "resp_scan and the scanner's top-level description, no tree\n");
#ifdef WEAVE_HAVE_HIREDIS
    printf("# hiredis %d.%d.%d: redisReaderFeed + redisReaderGetReply + freeReplyObject, "
           "maxbuf 0\n",
           HIREDIS_MAJOR, HIREDIS_MINOR, HIREDIS_PATCH);
#else
    printf("# hiredis: not built (libhiredis-dev not installed): no anchor\n");
#endif
    for (int sh = 0; sh < NSHAPES; sh++)
        printf("# %s stream: %ld replies, %zu bytes\n", shape_names[sh], streams[sh].replies,
               streams[sh].n);

    int failed = 0;
    for (int sh = 0; sh < NSHAPES; sh++) {
        bool ok = true;
        for (int sd = 0; sd < NSIDES; sd++)
            if (side_runs((shape)sh, (side)sd) && prepare((shape)sh, (side)sd) < 0)
                ok = false;
        for (int r = 0; r < rounds && ok; r++)
            for (int sd = 0; sd < NSIDES && ok; sd++)
                if (side_runs((shape)sh, (side)sd) && measure((shape)sh, (side)sd, r) < 0)
                    ok = false;
        if (!ok) {
            printf("# resp.%s: FAILED\n", shape_names[sh]);
            failed = 1;
            continue;
        }
        for (int sd = 0; sd < NSIDES; sd++) {
            if (!side_runs((shape)sh, (side)sd))
                continue;
            figures[sh][sd].median = median(figures[sh][sd].samples, rounds);
            print_samples((shape)sh, (side)sd, rounds);
        }
        print_line((shape)sh, WEAVE);
        if (side_runs((shape)sh, WEAVE_FAST))
            print_line((shape)sh, WEAVE_FAST);
        fflush(stdout);
    }
    print_load(t0, busy0, own0);
    for (int sh = 0; sh < NSHAPES; sh++)
        free(streams[sh].p);
    return failed;
}
