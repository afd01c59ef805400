/*
 * The rate limiter's pure parts (src/ratelimit/ratelimit_internal.h): the
 * token bucket's arithmetic on a clock the test moves by hand (refill,
 * burst, fractional rates, a clock that steps back), the shared table
 * (bounded memory under many keys, what eviction keeps, exact counts with
 * threads racing on one key), the header values, the peer and
 * X-Forwarded-For readers, and wv_ratelimit's refusals of bad options.
 */
#include "harness.h"

#include <math.h>
#include <pthread.h>

#include "ratelimit/ratelimit_internal.h"
#include "weave/metrics.h"
#include "weave/ratelimit.h"

#define S INT64_C(1000000000)

/* rate per second and burst, in ns */
static rl_params params(double rate, int64_t burst)
{
    int64_t interval = (int64_t)(1e9 / rate + 0.5);
    return (rl_params){.interval = interval, .tau = interval * burst};
}

/* Take n tokens at `now`, the state carried in *tat; how many were allowed. */
static int take_n(const rl_params *p, int64_t *tat, int64_t now, int n, rl_verdict *last)
{
    int ok = 0;
    for (int i = 0; i < n; i++) {
        wv__rl_take(p, *tat, now, last);
        if (last->allowed)
            ok++;
        *tat = last->tat;
    }
    return ok;
}

static void test_ratelimit_burst_then_refill(void **state)
{
    (void)state;
    rl_params p = params(10, 5); /* one token per 100 ms, 5 at most */
    int64_t now = 1000 * S, tat = 0;
    rl_verdict v;
    /* a new key has a full bucket: 5 at once, remaining counting down */
    for (int i = 0; i < 5; i++) {
        wv__rl_take(&p, tat, now, &v);
        assert_true(v.allowed);
        assert_int_equal(v.remaining, 4 - i);
        tat = v.tat;
    }
    /* the 6th waits one interval, and takes nothing */
    wv__rl_take(&p, tat, now, &v);
    assert_false(v.allowed);
    assert_int_equal(v.remaining, 0);
    assert_int_equal(v.wait, 100 * NS_PER_MS);
    assert_int_equal(v.tat, tat);
    /* 40 ms later: 60 ms to go */
    wv__rl_take(&p, tat, now + 40 * NS_PER_MS, &v);
    assert_false(v.allowed);
    assert_int_equal(v.wait, 60 * NS_PER_MS);
    /* one interval later: exactly one token, then limited again */
    now += 100 * NS_PER_MS;
    assert_int_equal(take_n(&p, &tat, now, 3, &v), 1);
    assert_false(v.allowed);
    /* 250 ms later: two tokens back (the half one stays pending) */
    now += 250 * NS_PER_MS;
    assert_int_equal(take_n(&p, &tat, now, 5, &v), 2);
    /* idle for an hour: never more than the burst */
    now += 3600 * S;
    assert_int_equal(take_n(&p, &tat, now, 100, &v), 5);
}

static void test_ratelimit_sustained_rate(void **state)
{
    (void)state;
    /* 1,000 s of a client asking every 10 ms at 10/s with a burst of 5:
     * burst + rate x time, not one more */
    rl_params p = params(10, 5);
    int64_t now = 50 * S, tat = 0;
    int ok = 0;
    rl_verdict v;
    for (int64_t t = 0; t <= 1000 * S; t += 10 * NS_PER_MS)
        ok += take_n(&p, &tat, now + t, 1, &v);
    assert_int_equal(ok, 5 + 10000);
}

static void test_ratelimit_fractional_rates(void **state)
{
    (void)state;
    /* 0.5 per second: one token every 2 s */
    rl_params p = params(0.5, 1);
    assert_int_equal(p.interval, 2 * S);
    int64_t now = 10 * S, tat = 0;
    rl_verdict v;
    assert_int_equal(take_n(&p, &tat, now, 2, &v), 1);
    assert_int_equal(v.wait, 2 * S);
    assert_int_equal(wv__rl_seconds_up(v.wait, S), 2);
    wv__rl_take(&p, tat, now + 1500 * NS_PER_MS, &v);
    assert_false(v.allowed);
    assert_int_equal(v.wait, 500 * NS_PER_MS);
    assert_int_equal(wv__rl_seconds_up(v.wait, S), 1);
    assert_int_equal(take_n(&p, &tat, now + 2 * S, 1, &v), 1);

    /* one per minute, burst 3: 3, then one a minute */
    p = params(1.0 / 60, 3);
    tat = 0;
    assert_int_equal(take_n(&p, &tat, now, 10, &v), 3);
    assert_int_equal(wv__rl_seconds_up(v.wait, S), 60);
    assert_int_equal(take_n(&p, &tat, now + 59 * S, 1, &v), 0);
    assert_int_equal(take_n(&p, &tat, now + 60 * S, 2, &v), 1);

    /* 3 per second: an interval that is not a whole number of ns; over
     * 300 s the count is still burst + 900 (a burst of 2 so that the 7 ms
     * between requests cost nothing: with 1, a token that arrives between
     * two requests waits for the next and the clock of the following one
     * starts late, as a token bucket's must) */
    p = params(3, 2);
    tat = 0;
    int ok = 0;
    for (int64_t t = 0; t < 300 * S; t += 7 * NS_PER_MS)
        ok += take_n(&p, &tat, now + t, 1, &v);
    assert_in_range(ok, 901, 902);
}

static void test_ratelimit_next_token_wait(void **state)
{
    (void)state;
    rl_params p = params(10, 5);
    int64_t now = 7 * S, tat = 0;
    rl_verdict v;
    /* after the first token of a full bucket, the next comes back in one
     * interval (t = 1 s rounded up) */
    take_n(&p, &tat, now, 1, &v);
    assert_true(v.allowed);
    assert_int_equal(v.wait, 100 * NS_PER_MS);
    /* 30 ms into the refill: 70 ms until the next */
    take_n(&p, &tat, now + 30 * NS_PER_MS, 1, &v);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 3);
    assert_int_equal(v.wait, 70 * NS_PER_MS);
}

static void test_ratelimit_clock_backwards(void **state)
{
    (void)state;
    rl_params p = params(10, 5);
    int64_t now = 100 * S, tat = 0;
    rl_verdict v;
    assert_int_equal(take_n(&p, &tat, now, 3, &v), 3);
    /* a reading 50 ms earlier (another shard's clock, behind): no token
     * appears that the later reading did not allow */
    wv__rl_take(&p, tat, now - 50 * NS_PER_MS, &v);
    assert_true(v.allowed);           /* 1.5 tokens 50 ms earlier (2 at `now`): this one... */
    assert_int_equal(v.remaining, 0); /* ...leaves half a token, not more */
    int64_t t2 = v.tat;
    wv__rl_take(&p, t2, now - 50 * NS_PER_MS, &v);
    assert_false(v.allowed);
    /* the clock stepped back an hour: the bucket reads as empty (not an
     * hour in debt), refills from there, and never grants the burst */
    int64_t back = now - 3600 * S;
    wv__rl_take(&p, t2, back, &v);
    assert_false(v.allowed);
    assert_true(v.wait <= p.interval);
    assert_int_equal(v.tat, back + p.tau);
    int64_t tat3 = v.tat;
    assert_int_equal(take_n(&p, &tat3, back + p.interval, 10, &v), 1);
    /* and once the clock is past the debt again, the burst is back */
    assert_int_equal(take_n(&p, &tat3, back + 10 * S, 10, &v), 5);
}

static void test_ratelimit_seconds_and_values(void **state)
{
    (void)state;
    assert_int_equal(wv__rl_seconds_up(0, S), 1);
    assert_int_equal(wv__rl_seconds_up(1, S), 1);
    assert_int_equal(wv__rl_seconds_up(S, S), 1);
    assert_int_equal(wv__rl_seconds_up(S + 1, S), 2);
    assert_int_equal(wv__rl_seconds_up(12 * S, S), 12);
    assert_int_equal(wv__rl_seconds_up(1500000, 1000000), 2);

    char out[128];
    /* 100 per minute: burst 100, 0.6 s per token, 60 s to fill */
    rl_params p = params(100.0 / 60, 100);
    wv__rl_policy_value(out, sizeof out, "default", 100, p.tau);
    assert_string_equal(out, "\"default\";q=100;w=60");
    wv__rl_limit_value(out, sizeof out, "default", 0, 11 * S + 1);
    assert_string_equal(out, "\"default\";r=0;t=12");
    wv__rl_limit_value(out, sizeof out, "api.v1", 42, 300 * NS_PER_MS);
    assert_string_equal(out, "\"api.v1\";r=42;t=1");
    /* a burst that fills in 2.5 s says w=3 */
    wv__rl_policy_value(out, sizeof out, "x", 5, 2500 * NS_PER_MS);
    assert_string_equal(out, "\"x\";q=5;w=3");
    /* cut like snprintf */
    wv__rl_limit_value(out, 8, "default", 0, S);
    assert_string_equal(out, "\"defaul");
}

static void test_ratelimit_table_bounded_under_many_keys(void **state)
{
    (void)state;
    rl_table *t;
    assert_int_equal(wv__rl_table_new(0, &t), -EINVAL);
    assert_int_equal(wv__rl_table_new(((size_t)1 << 28) + 1, &t), -EINVAL);
    assert_int_equal(wv__rl_table_new(1000, &t), 0);
    assert_int_equal(wv__rl_table_capacity(t), 1001); /* 143 sets of 7 */
    rl_params p = params(1, 5);
    int64_t now = 10 * S;
    rl_verdict v;
    int lost = 0;
    /* 200,000 keys, each taking a token: the table never holds more than
     * its capacity, every new key starts full */
    for (int i = 0; i < 200000; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "10.0.%d.%d", i / 256, i % 256);
        lost += wv__rl_table_take(t, &p, wv__rl_hash(t, 'a', key, (size_t)n), now, &v);
        assert_true(v.allowed);
        assert_int_equal(v.remaining, 4);
    }
    assert_true(wv__rl_table_count(t) <= wv__rl_table_capacity(t));
    assert_true(wv__rl_table_count(t) >= 990); /* and it is used: few sets short */
    assert_true(lost >= 200000 - 1001);        /* every bucket was in debt: those were lost */

    /* 50 more keys at once: every one costs a bucket in debt */
    lost = 0;
    for (int i = 0; i < 50; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "late-%d", i);
        lost += wv__rl_table_take(t, &p, wv__rl_hash(t, 'h', key, (size_t)n), now, &v);
    }
    assert_int_equal(lost, 50);
    /* once the buckets have refilled, forgetting them loses nothing (50
     * keys over 143 sets: none gets 8) */
    now += 60 * S;
    lost = 0;
    for (int i = 0; i < 50; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "fresh-%d", i);
        lost += wv__rl_table_take(t, &p, wv__rl_hash(t, 'h', key, (size_t)n), now, &v);
        assert_true(v.allowed);
    }
    assert_int_equal(lost, 0);
    /* a key met long ago, forgotten or not, has its whole burst */
    wv__rl_table_take(t, &p, wv__rl_hash(t, 'a', "10.0.0.1", 8), now, &v);
    assert_true(v.allowed);
    assert_int_equal(v.remaining, 4);
    wv__rl_table_free(t);
}

static void test_ratelimit_table_flood_keeps_limited_key(void **state)
{
    (void)state;
    /* a client that exhausted its bucket stays limited while another
     * floods the table with new keys: eviction takes the buckets closest
     * to full, and an exhausted one is the furthest */
    rl_table *t;
    assert_int_equal(wv__rl_table_new(70, &t), 0);
    rl_params p = params(1, 10);
    int64_t now = 5 * S;
    rl_verdict v;
    uint64_t victim = wv__rl_hash(t, 'a', "192.0.2.1", 9);
    for (int i = 0; i < 10; i++)
        wv__rl_table_take(t, &p, victim, now, &v);
    wv__rl_table_take(t, &p, victim, now, &v);
    assert_false(v.allowed);
    for (int i = 0; i < 100000; i++) {
        char key[32];
        int n = snprintf(key, sizeof key, "flood-%d", i);
        wv__rl_table_take(t, &p, wv__rl_hash(t, 'a', key, (size_t)n), now, &v);
    }
    wv__rl_table_take(t, &p, victim, now, &v);
    assert_false(v.allowed);
    assert_int_equal(v.wait, 1 * S);
    wv__rl_table_free(t);
}

static void test_ratelimit_hash_kinds(void **state)
{
    (void)state;
    rl_table *a, *b;
    assert_int_equal(wv__rl_table_new(7, &a), 0);
    assert_int_equal(wv__rl_table_new(7, &b), 0);
    uint64_t h = wv__rl_hash(a, 'a', "10.0.0.1", 8);
    assert_true(h != 0);
    assert_true(h == wv__rl_hash(a, 'a', "10.0.0.1", 8));
    assert_true(h != wv__rl_hash(a, 'h', "10.0.0.1", 8)); /* an address is not a header */
    assert_true(h != wv__rl_hash(a, 'a', "10.0.0.10", 9));
    assert_true(wv__rl_hash(a, 'a', "", 0) != wv__rl_hash(a, 'a', "\0", 1));
    assert_true(h != wv__rl_hash(b, 'a', "10.0.0.1", 8)); /* a secret seed per table */
    /* long keys: every byte counts */
    char k1[300], k2[300];
    memset(k1, 'k', sizeof k1);
    memcpy(k2, k1, sizeof k2);
    k2[150] = 'x';
    assert_true(wv__rl_hash(a, 'h', k1, sizeof k1) != wv__rl_hash(a, 'h', k2, sizeof k2));
    k2[150] = 'k';
    k2[299] = 'x';
    assert_true(wv__rl_hash(a, 'h', k1, sizeof k1) != wv__rl_hash(a, 'h', k2, sizeof k2));
    wv__rl_table_free(a);
    wv__rl_table_free(b);
}

typedef struct racer {
    rl_table *t;
    rl_params p;
    uint64_t h;
    int64_t now;
    int allowed;
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    rl_verdict v;
    int mine = 0;
    for (int i = 0; i < 20000; i++) {
        wv__rl_table_take(r->t, &r->p, r->h, r->now, &v);
        mine += v.allowed;
    }
    __atomic_fetch_add(&r->allowed, mine, __ATOMIC_RELAXED);
    return NULL;
}

static void test_ratelimit_table_threads_share_one_bucket(void **state)
{
    (void)state;
    /* four threads (shards) on one key at one instant: exactly the burst */
    racer r = {.p = params(1, 1000), .now = 3 * S};
    assert_int_equal(wv__rl_table_new(64, &r.t), 0);
    r.h = wv__rl_hash(r.t, 'h', "api-key", 7);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, race, &r), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(r.allowed, 1000);
    wv__rl_table_free(r.t);
}

static void test_ratelimit_peer_host(void **state)
{
    (void)state;
    wv_str h = wv__rl_peer_host("127.0.0.1:53122");
    assert_int_equal(h.n, 9);
    assert_memory_equal(h.p, "127.0.0.1", 9);
    h = wv__rl_peer_host("[::1]:53122");
    assert_int_equal(h.n, 3);
    assert_memory_equal(h.p, "::1", 3);
    h = wv__rl_peer_host("[2001:db8::7]:80");
    assert_int_equal(h.n, 11);
    h = wv__rl_peer_host("unix");
    assert_int_equal(h.n, 4);
    h = wv__rl_peer_host("::1");
    assert_int_equal(h.n, 3);
    h = wv__rl_peer_host(NULL);
    assert_int_equal(h.n, 0);
}

static int fwd(const char *line, int hops, char *out)
{
    wv_str l = {line, strlen(line)};
    return wv__rl_forwarded(&l, 1, hops, out);
}

static void test_ratelimit_forwarded_for(void **state)
{
    (void)state;
    char out[RL_ADDR_MAX];
    assert_int_equal(fwd("203.0.113.7", 1, out), 11);
    assert_string_equal(out, "203.0.113.7");
    /* the right-most is the one our proxy appended; the left is the client's word */
    assert_int_equal(fwd("6.6.6.6, 203.0.113.7", 1, out), 11);
    assert_string_equal(out, "203.0.113.7");
    assert_int_equal(fwd("6.6.6.6, 203.0.113.7,10.0.0.2", 2, out), 11);
    assert_string_equal(out, "203.0.113.7");
    /* spaces, tabs, empty elements, ports and brackets */
    assert_true(fwd(" \t198.51.100.1 \t,, ", 1, out) > 0);
    assert_string_equal(out, "198.51.100.1");
    assert_true(fwd("198.51.100.1:4711", 1, out) > 0);
    assert_string_equal(out, "198.51.100.1");
    assert_true(fwd("[2001:db8::1]:443", 1, out) > 0);
    assert_string_equal(out, "2001:db8::1");
    assert_true(fwd("[2001:DB8:0::0001]", 1, out) > 0);
    assert_string_equal(out, "2001:db8::1"); /* one key per address, however written */
    assert_true(fwd("2001:db8::1", 1, out) > 0);
    assert_string_equal(out, "2001:db8::1");
    /* fewer elements than hops, or no address at all */
    assert_int_equal(fwd("203.0.113.7", 2, out), -1);
    assert_int_equal(fwd("", 1, out), -1);
    assert_int_equal(fwd(" , ,", 1, out), -1);
    assert_int_equal(fwd("203.0.113.7", 0, out), -1);
    const char *bad[] = {
        "unknown", "1.2.3.4.5",       "1.2.3",        "256.1.1.1",      "[::1",
        "[::1]x",  "[::1]:",          "1.2.3.4:",     "1.2.3.4:99999x", "::1::1",
        "_hidden", "1.2.3.4 5.6.7.8", "[1.2.3.4]:80", "fe80::1%eth0",   "1.2.3.4:123456"};
    for (size_t i = 0; i < ARRAY_LEN(bad); i++)
        assert_int_equal(fwd(bad[i], 1, out), -1);
    /* several field lines are one list, in order */
    wv_str lines[] = {WV_STR("6.6.6.6"), WV_STR("192.0.2.9, 10.0.0.1")};
    assert_true(wv__rl_forwarded(lines, 2, 1, out) > 0);
    assert_string_equal(out, "10.0.0.1");
    assert_true(wv__rl_forwarded(lines, 2, 3, out) > 0);
    assert_string_equal(out, "6.6.6.6");
    assert_int_equal(wv__rl_forwarded(lines, 2, 4, out), -1);
    /* a huge element is refused, not copied */
    char big[5000];
    memset(big, '1', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(fwd(big, 1, out), -1);
    /* many elements: hops counts across them all */
    char many[4096] = "";
    for (int i = 0; i < 200; i++) {
        char one[24];
        snprintf(one, sizeof one, "%s10.1.%d.%d", i ? "," : "", i / 256, i % 256);
        strcat(many, one);
    }
    assert_true(fwd(many, 200, out) > 0);
    assert_string_equal(out, "10.1.0.0");
    assert_int_equal(fwd(many, 201, out), -1);
}

static wv_str no_key(wv_req *req, void *arg)
{
    return (wv_str){0};
}

static void test_ratelimit_refuses_bad_options(void **state)
{
    (void)state;
    wv_router *r = wv_router_new();
    assert_non_null(r);
    const wv_ratelimit_opts bad[] = {
        {.rate = 0},
        {.rate = -1},
        {.rate = NAN},
        {.rate = INFINITY},
        {.rate = 2e9},
        {.rate = 10, .burst = -1},
        {.rate = 10, .burst = 1000001},
        {.rate = 1e-9, .burst = 100}, /* fills in 3,000 years */
        {.rate = 10, .name = ""},
        {.rate = 10, .name = "has space"},
        {.rate = 10, .name = "quote\""},
        {.rate = 10, .name = "a-name-that-is-far-too-long-to-be-a-label-of-anything-useful-really"},
        {.rate = 10, .key = WV_RATELIMIT_KEY_HEADER},
        {.rate = 10, .key = WV_RATELIMIT_KEY_HEADER, .header = "X Bad"},
        {.rate = 10, .key = WV_RATELIMIT_KEY_FN},
        {.rate = 10, .key = (wv_ratelimit_key)7},
        {.rate = 10, .headers = (wv_ratelimit_headers)9},
        {.rate = 10, .forwarded_hops = -1},
        {.rate = 10, .redis_url = "http://127.0.0.1:6379"},
        {.rate = 10, .redis_url = "redis://x", .redis_prefix = "has space"},
        {.rate = 10, .redis_url = "redis://x", .redis_timeout_ms = -5},
        {.rate = 2e6, .redis_url = "redis://x"},
        {.rate = 10, .capacity = ((size_t)1 << 28) + 1},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        wv_errmsg_clear();
        int rc = wv_ratelimit(r, &bad[i]);
        if (rc != -EINVAL)
            fail_msg("option set %zu: %d, not -EINVAL", i, rc);
        assert_true(strlen(wv_errmsg()) > 0);
    }
    assert_int_equal(wv_ratelimit(NULL, &(wv_ratelimit_opts){.rate = 1}), -EINVAL);
    assert_int_equal(wv_ratelimit(r, NULL), -EINVAL);
    /* good ones are taken, and their series exist at 0 before any request */
    assert_int_equal(wv_ratelimit(r, &(wv_ratelimit_opts){.rate = 0.5}), 0);
    assert_int_equal(wv_ratelimit(r, &(wv_ratelimit_opts){.name = "keys",
                                                          .rate = 100,
                                                          .burst = 10,
                                                          .key = WV_RATELIMIT_KEY_FN,
                                                          .key_fn = no_key}),
                     0);
    assert_int_equal(wv_ratelimit(r, &(wv_ratelimit_opts){.name = "shared",
                                                          .rate = 5,
                                                          .redis_url = "redis://127.0.0.1:1"}),
                     0);
    wv_buf out = {0};
    assert_int_equal(wv_metrics_render(NULL, WV_METRICS_PROMETHEUS, &out), 0);
    assert_non_null(
        strstr(out.p, "weave_ratelimit_requests_total{limiter=\"keys\",result=\"limited\"} 0"));
    assert_non_null(strstr(out.p, "weave_ratelimit_evictions_total{limiter=\"default\"} 0"));
    wv_buf_free(&out);
    wv_router_free(r); /* frees them, outside the runtime */
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ratelimit_burst_then_refill),
        cmocka_unit_test(test_ratelimit_sustained_rate),
        cmocka_unit_test(test_ratelimit_fractional_rates),
        cmocka_unit_test(test_ratelimit_next_token_wait),
        cmocka_unit_test(test_ratelimit_clock_backwards),
        cmocka_unit_test(test_ratelimit_seconds_and_values),
        cmocka_unit_test(test_ratelimit_table_bounded_under_many_keys),
        cmocka_unit_test(test_ratelimit_table_flood_keeps_limited_key),
        cmocka_unit_test(test_ratelimit_hash_kinds),
        cmocka_unit_test(test_ratelimit_table_threads_share_one_bucket),
        cmocka_unit_test(test_ratelimit_peer_host),
        cmocka_unit_test(test_ratelimit_forwarded_for),
        cmocka_unit_test(test_ratelimit_refuses_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
