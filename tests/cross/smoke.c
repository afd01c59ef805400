/*
 * A self-contained smoke test of the runtime for other architectures, run
 * under qemu-user by tests/cross/run.sh (cmocka is not installed for them).
 * It drives what depends on the architecture: the context switch (many
 * fibers, deep call chains, callee-saved registers and floating point kept
 * across switches), fiber start-up, and the loop around them.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <weave/rt.h>

static int passed, failed;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (cond) {                                                                                \
            passed++;                                                                              \
        } else {                                                                                   \
            failed++;                                                                              \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
        }                                                                                          \
    } while (0)

/* Values live in callee-saved registers across yields; a switch that lost
 * one would change the sum. */
static int registers_survive(void *arg)
{
    long *out = arg;
    long a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7, h = 8;
    double x = 1.5, y = 2.25, z = 3.125;
    for (int i = 0; i < 1000; i++) {
        wv_yield();
        a += b, b += c, c += d, d += e, e += f, f += g, g += h, h += 1;
        x *= 1.0001, y += x, z -= y / 1000.0;
    }
    *out = a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ (long)(x * 1000) ^ (long)(y * 1000) ^ (long)(z * 1000);
    return 0;
}

static long reference(void)
{
    long a = 1, b = 2, c = 3, d = 4, e = 5, f = 6, g = 7, h = 8;
    double x = 1.5, y = 2.25, z = 3.125;
    for (int i = 0; i < 1000; i++) {
        a += b, b += c, c += d, d += e, e += f, f += g, g += h, h += 1;
        x *= 1.0001, y += x, z -= y / 1000.0;
    }
    return a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ (long)(x * 1000) ^ (long)(y * 1000) ^ (long)(z * 1000);
}

static __attribute__((noinline)) int deep(int n)
{
    volatile char pad[256];
    pad[0] = (char)n;
    if (n == 0) {
        wv_yield();
        return pad[0];
    }
    return deep(n - 1) + pad[0];
}

static int deep_body(void *arg)
{
    *(int *)arg = deep(100);
    return 0;
}

static int sleeper(void *arg)
{
    (void)arg;
    return wv_sleep_ms(1000) == -ECANCELED ? 0 : -EINVAL;
}

static int failing(void *arg)
{
    (void)arg;
    return -EIO;
}

typedef struct pingpong {
    wv_chan *ping, *pong;
} pingpong;

static int ponger(void *arg)
{
    pingpong *p = arg;
    int v;
    while (wv_chan_recv(p->ping, &v) == 0)
        if (wv_chan_send(p->pong, &(int){v + 1}) < 0)
            break;
    return 0;
}

static int remote_id(void *arg)
{
    (void)arg;
    return wv_shard_id() + 100;
}

static int app(void *arg)
{
    (void)arg;
    long got[16];
    wv_group *g = wv_group_new();
    for (int i = 0; i < 16; i++)
        wv_group_spawn(g, registers_survive, &got[i], NULL);
    CHECK(wv_group_join(g) == 0);
    long want = reference();
    for (int i = 0; i < 16; i++)
        CHECK(got[i] == want);

    int d = 0;
    wv_group_spawn(g, deep_body, &d, NULL);
    CHECK(wv_group_join(g) == 0);
    CHECK(d == 5050); /* 1 + 2 + ... + 100, one frame each, across a yield */

    for (int i = 0; i < 100; i++)
        wv_group_spawn(g, sleeper, NULL, NULL);
    wv_group_spawn(g, failing, NULL, NULL);
    CHECK(wv_group_join(g) == -EIO); /* the failure cancelled the sleepers */
    wv_group_free(g);

    pingpong p = {wv_chan_new(sizeof(int), 1), wv_chan_new(sizeof(int), 1)};
    wv_spawn(ponger, &p, NULL);
    int v = 0;
    for (int i = 0; i < 10000; i++) {
        wv_chan_send(p.ping, &v);
        wv_chan_recv(p.pong, &v);
    }
    CHECK(v == 10000);
    wv_chan_close(p.ping);
    wv_yield();
    wv_chan_free(p.ping);
    wv_chan_free(p.pong);

    int64_t t0 = wv_now();
    CHECK(wv_sleep_ms(20) == 0);
    CHECK(wv_now() - t0 >= 20 * 1000000);
    int64_t old = wv_deadline_set(wv_after_ms(10));
    CHECK(wv_sleep_ms(1000) == -ETIMEDOUT);
    wv_deadline_set(old);

    CHECK(wv_shard_call(1, remote_id, NULL) == 101);
    return 0;
}

int main(void)
{
    int rc = wv_main(&(wv_main_opts){.shards = 2, .no_signal_handling = true}, app, NULL);
    CHECK(rc == 0);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
