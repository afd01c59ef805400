/*
 * libFuzzer target for the rate limiter's reader of untrusted input
 * (src/ratelimit/bucket.c): X-Forwarded-For field lines and the peer's
 * host. `make fuzz` runs it; its seeds are in fuzz/corpus/fuzz_ratelimit/.
 *
 * Input: the first byte picks hops (1 to 8), the rest is split at '\n'
 * into up to 16 field lines, each copied to a block of exactly its size.
 * Checked:
 *   - a result is shorter than RL_ADDR_MAX, NUL-terminated there, an IPv4
 *     or IPv6 address in canonical form (inet_ntop of its own inet_pton);
 *   - the lines read as one list: joining them with ',' gives the same
 *     answer;
 *   - the peer reader's slice stays inside its input.
 * A violation aborts.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ratelimit/ratelimit_internal.h"
#include "fuzz_util.h"

enum { MAX_LINES = 16 };

static void check_address(const char *out, int n)
{
    CHECK(n > 0 && n < RL_ADDR_MAX && out[n] == '\0' && (int)strlen(out) == n);
    unsigned char bin[16];
    char again[RL_ADDR_MAX];
    int family = strchr(out, ':') ? AF_INET6 : AF_INET;
    CHECK(inet_pton(family, out, bin) == 1);
    CHECK(inet_ntop(family, bin, again, sizeof again) && strcmp(again, out) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int hops = 1 + data[0] % 8;
    const char *text = (const char *)data + 1;
    size_t n = size - 1;

    wv_str lines[MAX_LINES];
    char *blocks[MAX_LINES];
    int nlines = 0;
    size_t start = 0;
    for (size_t i = 0; i <= n && nlines < MAX_LINES; i++) {
        if (i == n || text[i] == '\n') {
            blocks[nlines] = copy_exact(text + start, i - start);
            lines[nlines] = (wv_str){blocks[nlines], i - start};
            nlines++;
            start = i + 1;
        }
    }

    char out[RL_ADDR_MAX + 8];
    memset(out, 0x5A, sizeof out);
    int got = wv__rl_forwarded(lines, nlines, hops, out);
    CHECK(got == -1 || got > 0);
    for (size_t i = RL_ADDR_MAX; i < sizeof out; i++)
        CHECK((unsigned char)out[i] == 0x5A); /* nothing past the bound */
    if (got > 0)
        check_address(out, got);

    /* the same list as one line */
    size_t total = 0;
    for (int i = 0; i < nlines; i++)
        total += lines[i].n + 1;
    char *joined = malloc(total ? total : 1);
    CHECK(joined);
    size_t at = 0;
    for (int i = 0; i < nlines; i++) {
        if (i)
            joined[at++] = ',';
        if (lines[i].n)
            memcpy(joined + at, lines[i].p, lines[i].n);
        at += lines[i].n;
    }
    char out2[RL_ADDR_MAX];
    wv_str one = {joined, at};
    int got2 = wv__rl_forwarded(&one, 1, hops, out2);
    CHECK(got2 == got);
    if (got > 0)
        CHECK(strcmp(out, out2) == 0);
    free(joined);

    /* the peer reader on the first line, NUL-terminated */
    char *peer = malloc(lines[0].n + 1);
    CHECK(peer);
    if (lines[0].n)
        memcpy(peer, lines[0].p, lines[0].n);
    peer[lines[0].n] = '\0';
    wv_str host = wv__rl_peer_host(peer);
    size_t plen = strlen(peer);
    CHECK(host.p >= peer && host.p + host.n <= peer + plen);
    free(peer);

    for (int i = 0; i < nlines; i++)
        free(blocks[i]);
    return 0;
}
