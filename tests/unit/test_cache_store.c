/*
 * The embedded cache's store (src/cache/store.c): values in and out
 * (binary, empty, appended to the caller's buffer), replace / add / delete
 * / touch, expiry by moving `now` (lazy, by a set's sweep, by
 * cache_store_sweep), the byte budget under random load, CLOCK eviction
 * keeping what was read, the item size limit, every allocation failing in
 * turn, exact counters, one store seen from two shards, threads hammering
 * overlapping keys, and cache_store_free leaving nothing behind (the ASan
 * build's leak check and a counting allocator both watch).
 */
#include "harness.h"

#include <pthread.h>

#include "cache/store.h"

/* ------------------------------------------------- a counting allocator */

static atomic_long allocs_made, allocs_freed;
static atomic_long alloc_calls;
static long fail_from;            /* the first alloc call that fails (1-based); 0 = none */
static size_t fail_size_at_least; /* only calls of this size or more fail */

static void *counting_alloc(size_t size)
{
    long n = atomic_fetch_add(&alloc_calls, 1) + 1;
    if (fail_from && n >= fail_from && size >= fail_size_at_least)
        return NULL;
    void *p = malloc(size);
    if (p)
        atomic_fetch_add(&allocs_made, 1);
    return p;
}

static void counting_free(void *p)
{
    if (p)
        atomic_fetch_add(&allocs_freed, 1);
    free(p);
}

static void allocator_reset(void)
{
    atomic_store(&allocs_made, 0);
    atomic_store(&allocs_freed, 0);
    atomic_store(&alloc_calls, 0);
    fail_from = 0;
    fail_size_at_least = 0;
}

static long allocs_live(void)
{
    return atomic_load(&allocs_made) - atomic_load(&allocs_freed);
}

/* ------------------------------------------------------------- helpers */

static cache_store *new_store(cache_store_opts o)
{
    cache_store *s = NULL;
    assert_int_equal(cache_store_new(&o, &s), 0);
    assert_non_null(s);
    return s;
}

static cache_store_stats stats_of(cache_store *s)
{
    cache_store_stats st;
    cache_store_stats_get(s, &st);
    return st;
}

static int set_str(cache_store *s, const char *key, const char *value, int64_t ttl, int64_t now)
{
    return cache_store_set(s, key, strlen(key), value, strlen(value), ttl, now);
}

/* The value under key as a string in a static buffer, or NULL on a miss. */
static const char *get_str(cache_store *s, const char *key, int64_t now)
{
    static char text[4096];
    wv_buf b = {0};
    int rc = cache_store_get(s, key, strlen(key), now, &b);
    assert_true(rc == 0 || rc == 1);
    if (rc == 0) {
        assert_int_equal(b.n, 0);
        wv_buf_free(&b);
        return NULL;
    }
    assert_true(b.n < sizeof text);
    if (b.n)
        memcpy(text, b.p, b.n);
    text[b.n] = '\0';
    wv_buf_free(&b);
    return text;
}

static bool has(cache_store *s, const char *key, int64_t now)
{
    return get_str(s, key, now) != NULL;
}

static void assert_consistent(cache_store *s)
{
    int rc = cache_store_check(s);
    if (rc != 0)
        print_error("cache_store_check: %s\n", wv_errmsg());
    assert_int_equal(rc, 0);
}

/* ------------------------------------------------------- values in, out */

static void test_store_get_after_set_returns_the_value(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    assert_null(get_str(s, "user:1", 0));
    assert_int_equal(set_str(s, "user:1", "alice", 0, 0), 0);
    assert_string_equal(get_str(s, "user:1", 0), "alice");
    assert_null(get_str(s, "user:2", 0));
    cache_store_free(s);
}

static void test_store_keeps_binary_keys_and_values_with_nuls(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    const char key[] = {'k', 0, 'e', 0, (char)0xff};
    const char other[] = {'k', 0, 'e', 0, (char)0xfe};
    unsigned char value[300];
    for (size_t i = 0; i < sizeof value; i++)
        value[i] = (unsigned char)(i % 7 == 0 ? 0 : i);
    assert_int_equal(cache_store_set(s, key, sizeof key, value, sizeof value, 0, 0), 0);
    wv_buf b = {0};
    assert_int_equal(cache_store_get(s, key, sizeof key, 0, &b), 1);
    assert_int_equal(b.n, sizeof value);
    assert_memory_equal(b.p, value, sizeof value);
    assert_int_equal(cache_store_get(s, other, sizeof other, 0, &b), 0);
    assert_int_equal(cache_store_get(s, key, 2, 0, &b), 0); /* "k\0" is another key */
    assert_int_equal(b.n, sizeof value);
    wv_buf_free(&b);
    cache_store_free(s);
}

static void test_store_keeps_an_empty_value_and_an_empty_key(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    assert_int_equal(cache_store_set(s, "empty", 5, NULL, 0, 0, 0), 0);
    assert_int_equal(cache_store_set(s, NULL, 0, "for the empty key", 17, 0, 0), 0);
    wv_buf b = {0};
    assert_int_equal(cache_store_get(s, "empty", 5, 0, &b), 1); /* a hit, not a miss */
    assert_int_equal(b.n, 0);
    assert_int_equal(cache_store_get(s, "", 0, 0, &b), 1);
    assert_int_equal(b.n, 17);
    assert_memory_equal(b.p, "for the empty key", 17);
    assert_int_equal(stats_of(s).hits, 2);
    wv_buf_free(&b);
    cache_store_free(s);
}

static void test_store_get_appends_to_what_the_buffer_holds(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    assert_int_equal(set_str(s, "k", "value", 0, 0), 0);
    wv_buf b = {0};
    assert_int_equal(wv_buf_puts(&b, "prefix:"), 0);
    assert_int_equal(cache_store_get(s, "k", 1, 0, &b), 1);
    assert_int_equal(b.n, 12);
    assert_memory_equal(b.p, "prefix:value", 12);
    wv_buf_free(&b);
    cache_store_free(s);
}

static void test_store_get_copies_a_long_value_into_a_growing_buffer(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    size_t n = 300000;
    unsigned char *value = malloc(n);
    assert_non_null(value);
    for (size_t i = 0; i < n; i++)
        value[i] = (unsigned char)(i * 131 >> 3);
    assert_int_equal(cache_store_set(s, "big", 3, value, n, 0, 0), 0);
    wv_buf b = {0};
    assert_int_equal(cache_store_get(s, "big", 3, 0, &b), 1);
    assert_int_equal(b.n, n);
    assert_memory_equal(b.p, value, n);
    assert_consistent(s);
    wv_buf_free(&b);
    free(value);
    cache_store_free(s);
}

static void test_store_get_returns_enomem_when_the_buffer_limit_is_too_small(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    char value[2000];
    memset(value, 'v', sizeof value);
    assert_int_equal(cache_store_set(s, "k", 1, value, sizeof value, 0, 0), 0);
    wv_buf b = {.limit = 1000};
    assert_int_equal(wv_buf_puts(&b, "kept"), 0);
    assert_int_equal(cache_store_get(s, "k", 1, 0, &b), -ENOMEM);
    assert_int_equal(b.n, 4);
    assert_memory_equal(b.p, "kept", 4);
    cache_store_stats st = stats_of(s);
    assert_int_equal(st.hits, 0);
    assert_int_equal(st.misses, 0);
    assert_int_equal(st.items, 1);
    b.limit = 0;
    assert_int_equal(cache_store_get(s, "k", 1, 0, &b), 1);
    assert_int_equal(b.n, 4 + sizeof value);
    wv_buf_free(&b);
    cache_store_free(s);
}

/* ------------------------------------------- set, add, delete, touch */

static void test_store_set_replaces_the_old_value(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    assert_int_equal(set_str(s, "k", "first, and longer", 0, 0), 0);
    assert_int_equal(set_str(s, "k", "second", 0, 0), 0);
    assert_string_equal(get_str(s, "k", 0), "second");
    cache_store_stats st = stats_of(s);
    assert_int_equal(st.items, 1);
    assert_int_equal(st.bytes, cache_store_entry_size(1, 6));
    cache_store_free(s);
}

static void test_store_delete_removes_the_key_once(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    assert_int_equal(set_str(s, "k", "v", 0, 0), 0);
    assert_int_equal(set_str(s, "other", "v", 0, 0), 0);
    assert_int_equal(cache_store_delete(s, "k", 1, 0), 1);
    assert_null(get_str(s, "k", 0));
    assert_int_equal(cache_store_delete(s, "k", 1, 0), 0);
    assert_string_equal(get_str(s, "other", 0), "v");
    assert_int_equal(stats_of(s).items, 1);
    assert_int_equal(stats_of(s).bytes, cache_store_entry_size(5, 1));
    cache_store_free(s);
}

static void test_store_add_refuses_a_key_that_holds_a_live_value(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    assert_int_equal(cache_store_add(s, "lock", 4, "me", 2, 1000, 0), 0);
    assert_int_equal(cache_store_add(s, "lock", 4, "you", 3, 1000, 500), -EEXIST);
    assert_string_equal(get_str(s, "lock", 500), "me");
    assert_int_equal(stats_of(s).items, 1);
    cache_store_free(s);
}

static void test_store_add_takes_a_key_whose_value_expired(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    assert_int_equal(cache_store_add(s, "lock", 4, "me", 2, 1000, 0), 0);
    assert_int_equal(cache_store_add(s, "lock", 4, "you", 3, 1000, 1000), 0);
    assert_string_equal(get_str(s, "lock", 1000), "you");
    cache_store_stats st = stats_of(s);
    assert_int_equal(st.items, 1);
    assert_int_equal(st.expirations, 1);
    cache_store_free(s);
}

static void test_store_touch_gives_a_live_item_a_new_ttl(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    assert_int_equal(set_str(s, "k", "v", 100, 0), 0);
    assert_int_equal(cache_store_touch(s, "k", 1, 1000, 50), 1);
    assert_string_equal(get_str(s, "k", 1049), "v");
    assert_null(get_str(s, "k", 1050));
    assert_int_equal(cache_store_touch(s, "k", 1, 1000, 1050), 0);
    assert_int_equal(cache_store_touch(s, "never-set", 9, 1000, 0), 0);
    assert_int_equal(set_str(s, "forever", "v", 10, 0), 0);
    assert_int_equal(cache_store_touch(s, "forever", 7, 0, 5), 1); /* 0: no expiry now */
    assert_string_equal(get_str(s, "forever", INT64_MAX - 1), "v");
    cache_store_free(s);
}

static void test_store_refuses_a_negative_ttl_and_a_null_key_with_a_length(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    assert_int_equal(set_str(s, "k", "v", -1, 0), -EINVAL);
    assert_int_equal(cache_store_add(s, "k", 1, "v", 1, -5, 0), -EINVAL);
    assert_int_equal(cache_store_touch(s, "k", 1, -1, 0), -EINVAL);
    assert_int_equal(cache_store_set(s, NULL, 3, "v", 1, 0, 0), -EINVAL);
    assert_int_equal(cache_store_set(s, "k", 1, NULL, 3, 0, 0), -EINVAL);
    wv_buf b = {0};
    assert_int_equal(cache_store_get(s, NULL, 3, 0, &b), -EINVAL);
    assert_int_equal(cache_store_delete(s, NULL, 3, 0), -EINVAL);
    assert_int_equal(stats_of(s).items, 0);
    cache_store_free(s);
}

/* --------------------------------------------------------------- expiry */

static void test_store_item_expires_when_now_reaches_its_ttl(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    assert_int_equal(set_str(s, "k", "v", 100, 1000), 0);
    assert_string_equal(get_str(s, "k", 1099), "v");
    assert_null(get_str(s, "k", 1100));
    cache_store_stats st = stats_of(s);
    assert_int_equal(st.items, 0); /* freed by the get that found it expired */
    assert_int_equal(st.bytes, 0);
    assert_int_equal(st.expirations, 1);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    cache_store_free(s);
}

static void test_store_ttl_zero_never_expires(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    assert_int_equal(set_str(s, "k", "v", 0, 0), 0);
    assert_int_equal(set_str(s, "huge-ttl", "v", INT64_MAX, 10), 0); /* saturates: never */
    assert_string_equal(get_str(s, "k", INT64_MAX - 1), "v");
    assert_string_equal(get_str(s, "huge-ttl", INT64_MAX - 1), "v");
    cache_store_free(s);
}

static void test_store_delete_of_an_expired_item_reports_none_and_frees_it(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    assert_int_equal(set_str(s, "k", "v", 10, 0), 0);
    assert_int_equal(cache_store_delete(s, "k", 1, 10), 0);
    cache_store_stats st = stats_of(s);
    assert_int_equal(st.items, 0);
    assert_int_equal(st.expirations, 1);
    cache_store_free(s);
}

static void test_store_sweep_removes_expired_items_nobody_reads(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){.segments = 4});
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "short:%d", i);
        assert_int_equal(set_str(s, key, "v", 10, 0), 0);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "long:%d", i);
        assert_int_equal(set_str(s, key, "v", 0, 0), 0);
    }
    assert_int_equal(stats_of(s).items, 1100);
    assert_int_equal(cache_store_sweep(s, 5, 5000), 0); /* nothing has expired yet */
    size_t removed = 0, calls = 0;
    while (stats_of(s).items > 100) {
        size_t n = cache_store_sweep(s, 10, 64);
        assert_true(n <= 64);
        removed += n;
        assert_true(++calls < 1000);
    }
    assert_int_equal(removed, 1000);
    size_t bytes = 0;
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "long:%d", i);
        assert_true(has(s, key, 10));
        bytes += cache_store_entry_size(strlen(key), 1);
    }
    cache_store_stats st = stats_of(s);
    assert_int_equal(st.expirations, 1000);
    assert_int_equal(st.bytes, bytes);
    assert_consistent(s);
    cache_store_free(s);
}

static void test_store_sets_sweep_expired_items_of_their_segment(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){.segments = 1});
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "dead:%d", i);
        assert_int_equal(set_str(s, key, "v", 10, 0), 0);
    }
    /* each set looks at the next two items of the ring, which holds the
     * 100 dead items and at most 100 live ones: 100 sets pass them all */
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof key, "live:%d", i);
        assert_int_equal(set_str(s, key, "v", 0, 100), 0);
    }
    cache_store_stats st = stats_of(s);
    assert_int_equal(st.expirations, 100);
    assert_int_equal(st.items, 100);
    assert_int_equal(st.misses, 0); /* no get was needed */
    assert_consistent(s);
    cache_store_free(s);
}

/* ------------------------------------------------------ budget, eviction */

static void test_store_bytes_never_exceed_the_budget_under_random_sets(void **state)
{
    (void)state;
    const size_t budget = 256 << 10;
    cache_store *s =
        new_store((cache_store_opts){.max_bytes = budget, .max_item = 16 << 10, .segments = 4});
    static char value[16 << 10];
    memset(value, 'x', sizeof value);
    unsigned seed = 12345;
    char key[32];
    size_t stored = 0;
    for (int i = 0; i < 20000; i++) {
        int k = rand_r(&seed) % 3000;
        int klen = snprintf(key, sizeof key, "key:%d", k);
        /* mostly small, sometimes large: 1 in 8 up to 15 KiB */
        size_t vlen = rand_r(&seed) % 8 == 0 ? (size_t)(rand_r(&seed) % (15 << 10))
                                             : (size_t)(rand_r(&seed) % 200);
        int64_t ttl = rand_r(&seed) % 4 == 0 ? 1 + rand_r(&seed) % 50 : 0;
        assert_int_equal(cache_store_set(s, key, (size_t)klen, value, vlen, ttl, i / 10), 0);
        stored += cache_store_entry_size((size_t)klen, vlen);
        cache_store_stats st = stats_of(s);
        assert_true(st.bytes <= st.max_bytes);
        assert_true(st.max_bytes <= budget);
        if (i % 1000 == 0)
            assert_consistent(s);
    }
    cache_store_stats st = stats_of(s);
    assert_true(stored > 10 * budget); /* the budget was what stopped it */
    assert_true(st.evictions > 0);
    assert_true(st.bytes > budget / 2); /* and the room was used */
    assert_consistent(s);
    cache_store_free(s);
}

static void test_store_keeps_recently_read_items_and_evicts_unread_ones_first(void **state)
{
    (void)state;
    enum { N = 200 };
    size_t item = cache_store_entry_size(strlen("item:000"), 50);
    cache_store *s = new_store((cache_store_opts){.max_bytes = N * item, .segments = 1});
    char key[32], value[50];
    memset(value, 'v', sizeof value);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "item:%03d", i);
        assert_int_equal(cache_store_set(s, key, 8, value, sizeof value, 0, 0), 0);
    }
    assert_int_equal(stats_of(s).evictions, 0);
    /* read every even item: older and younger ones alike */
    wv_buf b = {0};
    for (int i = 0; i < N; i += 2) {
        snprintf(key, sizeof key, "item:%03d", i);
        assert_int_equal(cache_store_get(s, key, 8, 0, &b), 1);
    }
    wv_buf_free(&b);
    /* a wave of N/4 new items makes room for itself */
    for (int i = 0; i < N / 4; i++) {
        snprintf(key, sizeof key, "new:%04d", i);
        assert_int_equal(cache_store_set(s, key, 8, value, sizeof value, 0, 0), 0);
    }
    assert_int_equal(stats_of(s).evictions, N / 4);
    /* every item read survived; the oldest unread ones went, in order */
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "item:%03d", i);
        bool evicted = i % 2 == 1 && i < N / 2;
        assert_int_equal(has(s, key, 0), !evicted);
    }
    for (int i = 0; i < N / 4; i++) {
        snprintf(key, sizeof key, "new:%04d", i);
        assert_true(has(s, key, 0));
    }
    assert_consistent(s);
    cache_store_free(s);
}

static void test_store_evicts_expired_items_before_live_ones(void **state)
{
    (void)state;
    enum { N = 100 };
    size_t item = cache_store_entry_size(strlen("item:000"), 50);
    cache_store *s = new_store((cache_store_opts){.max_bytes = N * item, .segments = 1});
    char key[32], value[50];
    memset(value, 'v', sizeof value);
    for (int i = 0; i < N; i++) {
        snprintf(key, sizeof key, "item:%03d", i);
        /* the youngest ten expire at 10 */
        assert_int_equal(cache_store_set(s, key, 8, value, sizeof value, i >= N - 10 ? 10 : 0, 0),
                         0);
    }
    wv_buf b = {0};
    for (int i = 0; i < N - 10; i++) {
        snprintf(key, sizeof key, "item:%03d", i);
        assert_int_equal(cache_store_get(s, key, 8, 0, &b), 1);
    }
    wv_buf_free(&b);
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof key, "new:%04d", i);
        assert_int_equal(cache_store_set(s, key, 8, value, sizeof value, 0, 20), 0);
    }
    cache_store_stats st = stats_of(s);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.expirations, 10);
    assert_int_equal(st.items, N);
    cache_store_free(s);
}

static void test_store_refuses_an_item_over_max_item_with_emsgsize(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){.max_item = 1000});
    static char value[1000];
    assert_int_equal(cache_store_set(s, "k", 1, value, 999, 0, 0), 0); /* key + value = 1000 */
    assert_int_equal(cache_store_set(s, "k", 1, value, 1000, 0, 0), -EMSGSIZE);
    assert_non_null(strstr(wv_errmsg(), "1000 byte limit"));
    assert_int_equal(cache_store_add(s, "kk", 2, value, 999, 0, 0), -EMSGSIZE);
    wv_buf b = {0};
    assert_int_equal(cache_store_get(s, "k", 1, 0, &b), 1);
    assert_int_equal(b.n, 999); /* the refused set left the old value */
    wv_buf_free(&b);
    assert_int_equal(stats_of(s).items, 1);
    cache_store_free(s);
}

static void test_store_default_max_item_is_one_mebibyte(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    char *value = calloc(1, 1 << 20);
    assert_non_null(value);
    assert_int_equal(cache_store_set(s, "k", 1, value, (1 << 20) - 1, 0, 0), 0);
    assert_int_equal(cache_store_set(s, "k", 1, value, 1 << 20, 0, 0), -EMSGSIZE);
    cache_store_stats st = stats_of(s);
    assert_int_equal(st.max_item, 1 << 20);
    assert_int_equal(st.max_bytes, CACHE_STORE_DEFAULT_MAX_BYTES);
    free(value);
    cache_store_free(s);
}

static void test_store_new_rejects_a_budget_that_cannot_hold_one_item_per_segment(void **state)
{
    (void)state;
    cache_store *s = NULL;
    cache_store_opts o = {.max_bytes = 1 << 20, .max_item = 1 << 20};
    assert_int_equal(cache_store_new(&o, &s), -EINVAL);
    assert_null(s);
    o = (cache_store_opts){.max_bytes = 1 << 20, .max_item = 100 << 10, .segments = 16};
    assert_int_equal(cache_store_new(&o, &s), -EINVAL);
    o.segments = 8; /* 128 KiB each: fits */
    assert_int_equal(cache_store_new(&o, &s), 0);
    assert_int_equal(stats_of(s).segments, 8);
    cache_store_free(s);
    o = (cache_store_opts){.alloc_fn = counting_alloc}; /* one hook without the other */
    assert_int_equal(cache_store_new(&o, &s), -EINVAL);
}

static void test_store_picks_fewer_segments_for_a_small_budget(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){.max_bytes = 1 << 30});
    assert_int_equal(stats_of(s).segments, 64);
    cache_store_free(s);
    s = new_store((cache_store_opts){.max_bytes = 64 << 20}); /* 4 items of 1 MiB each */
    assert_int_equal(stats_of(s).segments, 8);
    cache_store_free(s);
    s = new_store((cache_store_opts){.max_bytes = 100 << 10}); /* max_item shrinks to 25 KiB */
    assert_int_equal(stats_of(s).segments, 1);
    assert_int_equal(stats_of(s).max_item, 25 << 10);
    cache_store_free(s);
}

/* ---------------------------------------------------- allocation failure */

static void test_store_set_returns_enomem_and_keeps_the_old_value(void **state)
{
    (void)state;
    allocator_reset();
    cache_store *s = new_store(
        (cache_store_opts){.segments = 2, .alloc_fn = counting_alloc, .free_fn = counting_free});
    assert_int_equal(set_str(s, "k", "old", 0, 0), 0);
    fail_from = atomic_load(&alloc_calls) + 1;
    assert_int_equal(set_str(s, "k", "new", 0, 0), -ENOMEM);
    assert_int_equal(set_str(s, "other", "new", 0, 0), -ENOMEM);
    assert_int_equal(cache_store_add(s, "k2", 2, "v", 1, 0, 0), -ENOMEM);
    fail_from = 0;
    assert_string_equal(get_str(s, "k", 0), "old");
    assert_null(get_str(s, "other", 0));
    cache_store_stats st = stats_of(s);
    assert_int_equal(st.items, 1);
    assert_int_equal(st.bytes, cache_store_entry_size(1, 3));
    assert_consistent(s);
    cache_store_free(s);
    assert_int_equal(allocs_live(), 0);
}

static void test_store_keeps_every_item_when_its_table_cannot_grow(void **state)
{
    (void)state;
    allocator_reset();
    cache_store *s = new_store(
        (cache_store_opts){.segments = 1, .alloc_fn = counting_alloc, .free_fn = counting_free});
    /* tables are the only allocations of 256 bytes or more here */
    fail_size_at_least = 256;
    fail_from = 1;
    char key[32];
    for (int i = 0; i < 2000; i++) {
        int n = snprintf(key, sizeof key, "key:%d", i);
        assert_int_equal(cache_store_set(s, key, (size_t)n, "v", 1, 0, 0), 0);
    }
    assert_consistent(s); /* 2000 items in 16 buckets: long chains, nothing lost */
    fail_from = 0;        /* the next set grows the table; the sets after it move the chains */
    for (int i = 2000; i < 3000; i++) {
        int n = snprintf(key, sizeof key, "key:%d", i);
        assert_int_equal(cache_store_set(s, key, (size_t)n, "v", 1, 0, 0), 0);
    }
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof key, "key:%d", i);
        assert_true(has(s, key, 0));
    }
    cache_store_stats st = stats_of(s);
    assert_int_equal(st.items, 3000);
    assert_int_equal(st.evictions, 0);
    assert_consistent(s);
    cache_store_free(s);
    assert_int_equal(allocs_live(), 0);
}

static void test_store_new_fails_cleanly_at_every_allocation(void **state)
{
    (void)state;
    for (long nth = 1;; nth++) {
        allocator_reset();
        fail_from = nth;
        cache_store *s = NULL;
        cache_store_opts o = {.segments = 8, .alloc_fn = counting_alloc, .free_fn = counting_free};
        int rc = cache_store_new(&o, &s);
        if (rc == 0) {
            assert_true(nth > 8); /* the store and 8 tables came first */
            cache_store_free(s);
            assert_int_equal(allocs_live(), 0);
            break;
        }
        assert_int_equal(rc, -ENOMEM);
        assert_null(s);
        assert_int_equal(allocs_live(), 0);
    }
    allocator_reset();
}

/* ---------------------------------------------------------------- stats */

static void test_store_stats_count_exactly(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){.segments = 4});
    assert_int_equal(set_str(s, "a", "1", 0, 0), 0);
    assert_int_equal(set_str(s, "bb", "22", 100, 0), 0);
    assert_int_equal(set_str(s, "ccc", "333", 0, 0), 0);
    assert_true(has(s, "a", 0));     /* hit */
    assert_true(has(s, "a", 0));     /* hit */
    assert_false(has(s, "zz", 0));   /* miss */
    assert_true(has(s, "bb", 99));   /* hit */
    assert_false(has(s, "bb", 100)); /* miss + expiration */
    assert_int_equal(cache_store_delete(s, "ccc", 3, 100), 1);
    assert_false(has(s, "ccc", 100));                          /* miss */
    assert_int_equal(cache_store_touch(s, "a", 1, 5, 100), 1); /* neither */
    cache_store_stats st = stats_of(s);
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 3);
    assert_int_equal(st.expirations, 1);
    assert_int_equal(st.evictions, 0);
    assert_int_equal(st.items, 1);
    assert_int_equal(st.bytes, cache_store_entry_size(1, 1));
    assert_int_equal(st.segments, 4);
    cache_store_free(s);
}

/* --------------------------------------------------------------- hashing */

static void test_store_hash_changes_about_half_the_bits_for_one_flipped_bit(void **state)
{
    (void)state;
    /* every length class of the hash: 1-3, 4-7, 8-16, 17+ bytes */
    const size_t lengths[] = {1, 3, 5, 8, 12, 16, 17, 40, 100};
    unsigned seed = 7;
    for (size_t l = 0; l < ARRAY_LEN(lengths); l++) {
        size_t n = lengths[l];
        unsigned char key[100];
        long flips = 0, trials = 0;
        int worst_bit_min = 64, worst_bit_max = 0;
        for (int t = 0; t < 200; t++) {
            for (size_t i = 0; i < n; i++)
                key[i] = (unsigned char)rand_r(&seed);
            uint64_t h = cache_store_hash(key, n, 42);
            for (size_t bit = 0; bit < n * 8; bit++) {
                key[bit / 8] ^= (unsigned char)(1u << (bit % 8));
                int d = __builtin_popcountll(h ^ cache_store_hash(key, n, 42));
                key[bit / 8] ^= (unsigned char)(1u << (bit % 8));
                flips += d;
                trials++;
                worst_bit_min = d < worst_bit_min ? d : worst_bit_min;
                worst_bit_max = d > worst_bit_max ? d : worst_bit_max;
            }
        }
        double mean = (double)flips / (double)trials;
        if (mean < 31.5 || mean > 32.5 || worst_bit_min < 8 || worst_bit_max > 56)
            print_error("length %zu: mean %.2f bits changed, min %d, max %d\n", n, mean,
                        worst_bit_min, worst_bit_max);
        assert_true(mean > 31.5 && mean < 32.5);
        assert_true(worst_bit_min >= 8 && worst_bit_max <= 56);
    }
    /* the length is hashed: zero bytes of different lengths differ */
    unsigned char zeros[32] = {0};
    for (size_t n = 0; n < 31; n++)
        assert_true(cache_store_hash(zeros, n, 42) != cache_store_hash(zeros, n + 1, 42));
    /* and the seed */
    assert_true(cache_store_hash("k", 1, 1) != cache_store_hash("k", 1, 2));
}

static void test_store_finds_every_key_while_its_table_grows(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){.max_bytes = 256 << 20, .segments = 1});
    char key[32];
    for (int i = 0; i < 100000; i++) {
        int n = snprintf(key, sizeof key, "grow:%d", i);
        assert_int_equal(cache_store_set(s, key, (size_t)n, key, (size_t)n, 0, 0), 0);
        if (i % 9973 == 0) {
            assert_consistent(s);
            for (int j = 0; j <= i; j += 97) {
                snprintf(key, sizeof key, "grow:%d", j);
                assert_string_equal(get_str(s, key, 0), key);
            }
        }
    }
    for (int i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "grow:%d", i);
        assert_string_equal(get_str(s, key, 0), key);
    }
    assert_int_equal(stats_of(s).evictions, 0);
    assert_consistent(s);
    cache_store_free(s);
}

/* ---------------------------------------------------------- many threads */

static int cross_shard_get(void *arg)
{
    cache_store *s = arg;
    wv_buf b = {0};
    int rc = cache_store_get(s, "session", 7, 0, &b);
    CHECK_EQ(rc, 1);
    if (rc == 1) {
        CHECK_EQ(b.n, 4);
        CHECK(memcmp(b.p, "abcd", 4) == 0);
    }
    wv_buf_free(&b);
    CHECK_EQ(cache_store_delete(s, "session", 7, 0), 1);
    return wv_shard_id();
}

static int cross_shard_body(void *arg)
{
    cache_store *s = arg;
    CHECK_EQ(wv_shard_id(), 0);
    CHECK_EQ(cache_store_set(s, "session", 7, "abcd", 4, 0, 0), 0);
    CHECK_EQ(wv_shard_call(1, cross_shard_get, s), 1);
    wv_buf b = {0};
    CHECK_EQ(cache_store_get(s, "session", 7, 0, &b), 0); /* shard 1's delete is seen here */
    wv_buf_free(&b);
    return 0;
}

static void test_store_a_write_on_one_shard_is_seen_on_another(void **state)
{
    (void)state;
    cache_store *s = new_store((cache_store_opts){0});
    assert_int_equal(run_in_rt(2, cross_shard_body, s), 0);
    assert_checks_passed();
    cache_store_free(s);
}

enum { HAMMER_THREADS = 4, HAMMER_KEYS = 256 };

typedef struct hammer {
    cache_store *s;
    int id;
    atomic_bool *stop;
    long gets, bad_values, errors;
} hammer;

/* A value names its key and version and carries a pattern of both, so a
 * get can tell a torn or misplaced value from a good one. */
static size_t make_value(unsigned char *v, uint32_t key, uint32_t version)
{
    size_t n = 8 + (key * 37 + version * 101) % 3000; /* some over COPY_UNDER_LOCK */
    memcpy(v, &key, 4);
    memcpy(v + 4, &version, 4);
    for (size_t i = 8; i < n; i++)
        v[i] = (unsigned char)(key * 31 + version * 7 + i);
    return n;
}

static bool value_ok(const unsigned char *v, size_t n, uint32_t key)
{
    uint32_t k, version;
    if (n < 8)
        return false;
    memcpy(&k, v, 4);
    memcpy(&version, v + 4, 4);
    unsigned char want[3008];
    return k == key && make_value(want, key, version) == n && memcmp(v, want, n) == 0;
}

static void *hammer_thread(void *arg)
{
    hammer *h = arg;
    unsigned seed = 1000u + (unsigned)h->id;
    unsigned char value[3008];
    char key[16];
    wv_buf b = {0};
    uint32_t version = 0;
    int64_t now = 0;
    while (!atomic_load_explicit(h->stop, memory_order_relaxed)) {
        for (int round = 0; round < 64; round++) {
            uint32_t k = (uint32_t)rand_r(&seed) % HAMMER_KEYS;
            int klen = snprintf(key, sizeof key, "key:%u", k);
            int op = rand_r(&seed) % 100;
            now++;
            int rc = 0;
            if (op < 50) {
                wv_buf_reset(&b);
                rc = cache_store_get(h->s, key, (size_t)klen, now, &b);
                h->gets++;
                if (rc == 1 && !value_ok((unsigned char *)b.p, b.n, k))
                    h->bad_values++;
            } else if (op < 75) {
                size_t n = make_value(value, k, ++version);
                int64_t ttl = rand_r(&seed) % 4 == 0 ? rand_r(&seed) % 50 : 0;
                rc = cache_store_set(h->s, key, (size_t)klen, value, n, ttl, now);
            } else if (op < 85) {
                size_t n = make_value(value, k, ++version);
                rc = cache_store_add(h->s, key, (size_t)klen, value, n, 20, now);
                if (rc == -EEXIST)
                    rc = 0;
            } else if (op < 95) {
                rc = cache_store_delete(h->s, key, (size_t)klen, now);
            } else if (op < 99) {
                rc = cache_store_touch(h->s, key, (size_t)klen, 30, now);
            } else {
                cache_store_sweep(h->s, now, 16);
            }
            if (rc < 0)
                h->errors++;
        }
    }
    wv_buf_free(&b);
    return NULL;
}

/* HAMMER_THREADS threads on overlapping keys for `ms`, then every check. */
static void hammer_store(cache_store_lock lock, int64_t ms)
{
    allocator_reset();
    /* small enough that sets evict all the time */
    cache_store *s = new_store((cache_store_opts){.max_bytes = 192 << 10,
                                                  .max_item = 8 << 10,
                                                  .segments = 4,
                                                  .lock = lock,
                                                  .alloc_fn = counting_alloc,
                                                  .free_fn = counting_free});
    atomic_bool stop = false;
    hammer h[HAMMER_THREADS];
    pthread_t t[HAMMER_THREADS];
    for (int i = 0; i < HAMMER_THREADS; i++) {
        h[i] = (hammer){.s = s, .id = i, .stop = &stop};
        assert_int_equal(pthread_create(&t[i], NULL, hammer_thread, &h[i]), 0);
    }
    int64_t t0 = wv_now();
    while (wv_now() - t0 < ms * NS_PER_MS)
        usleep(10000);
    atomic_store(&stop, true);
    long gets = 0;
    for (int i = 0; i < HAMMER_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(h[i].bad_values, 0);
        assert_int_equal(h[i].errors, 0);
        gets += h[i].gets;
    }
    assert_true(gets > 1000);
    cache_store_stats st = stats_of(s);
    assert_int_equal(st.hits + st.misses, gets);
    assert_true(st.evictions > 0);
    assert_true(st.bytes <= st.max_bytes);
    /* table, ring and counters agree; each key once; bytes = sum of items */
    assert_consistent(s);
    /* what is left is every item plus the store itself and its tables */
    assert_true(allocs_live() >= (long)st.items);
    assert_true(allocs_live() <= (long)st.items + 1 + 2 * 4);
    cache_store_free(s);
    assert_int_equal(allocs_live(), 0);
}

static void test_store_threads_hammering_overlapping_keys_keep_it_consistent(void **state)
{
    (void)state;
    hammer_store(CACHE_STORE_LOCK_SPIN, 1000);
}

static void test_store_threads_keep_it_consistent_with_either_mutex_too(void **state)
{
    (void)state;
    hammer_store(CACHE_STORE_LOCK_MUTEX, 250);
    hammer_store(CACHE_STORE_LOCK_MUTEX_SPIN, 250);
}

static void test_store_free_frees_every_item(void **state)
{
    (void)state;
    allocator_reset();
    cache_store *s = new_store(
        (cache_store_opts){.segments = 4, .alloc_fn = counting_alloc, .free_fn = counting_free});
    char key[32];
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof key, "key:%d", i);
        /* live, expiring and long values alike */
        size_t vlen = i % 100 == 0 ? 5000 : 10;
        static char value[5000];
        assert_int_equal(cache_store_set(s, key, (size_t)n, value, vlen, i % 2 ? 5 : 0, 0), 0);
    }
    assert_true(allocs_live() > 5000);
    cache_store_free(s);
    assert_int_equal(allocs_live(), 0);
    cache_store_free(NULL);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_store_get_after_set_returns_the_value),
        cmocka_unit_test(test_store_keeps_binary_keys_and_values_with_nuls),
        cmocka_unit_test(test_store_keeps_an_empty_value_and_an_empty_key),
        cmocka_unit_test(test_store_get_appends_to_what_the_buffer_holds),
        cmocka_unit_test(test_store_get_copies_a_long_value_into_a_growing_buffer),
        cmocka_unit_test(test_store_get_returns_enomem_when_the_buffer_limit_is_too_small),
        cmocka_unit_test(test_store_set_replaces_the_old_value),
        cmocka_unit_test(test_store_delete_removes_the_key_once),
        cmocka_unit_test(test_store_add_refuses_a_key_that_holds_a_live_value),
        cmocka_unit_test(test_store_add_takes_a_key_whose_value_expired),
        cmocka_unit_test(test_store_touch_gives_a_live_item_a_new_ttl),
        cmocka_unit_test(test_store_refuses_a_negative_ttl_and_a_null_key_with_a_length),
        cmocka_unit_test(test_store_item_expires_when_now_reaches_its_ttl),
        cmocka_unit_test(test_store_ttl_zero_never_expires),
        cmocka_unit_test(test_store_delete_of_an_expired_item_reports_none_and_frees_it),
        cmocka_unit_test(test_store_sweep_removes_expired_items_nobody_reads),
        cmocka_unit_test(test_store_sets_sweep_expired_items_of_their_segment),
        cmocka_unit_test(test_store_bytes_never_exceed_the_budget_under_random_sets),
        cmocka_unit_test(test_store_keeps_recently_read_items_and_evicts_unread_ones_first),
        cmocka_unit_test(test_store_evicts_expired_items_before_live_ones),
        cmocka_unit_test(test_store_refuses_an_item_over_max_item_with_emsgsize),
        cmocka_unit_test(test_store_default_max_item_is_one_mebibyte),
        cmocka_unit_test(test_store_new_rejects_a_budget_that_cannot_hold_one_item_per_segment),
        cmocka_unit_test(test_store_picks_fewer_segments_for_a_small_budget),
        cmocka_unit_test(test_store_set_returns_enomem_and_keeps_the_old_value),
        cmocka_unit_test(test_store_keeps_every_item_when_its_table_cannot_grow),
        cmocka_unit_test(test_store_new_fails_cleanly_at_every_allocation),
        cmocka_unit_test(test_store_stats_count_exactly),
        cmocka_unit_test(test_store_hash_changes_about_half_the_bits_for_one_flipped_bit),
        cmocka_unit_test(test_store_finds_every_key_while_its_table_grows),
        cmocka_unit_test(test_store_a_write_on_one_shard_is_seen_on_another),
        cmocka_unit_test(test_store_threads_hammering_overlapping_keys_keep_it_consistent),
        cmocka_unit_test(test_store_threads_keep_it_consistent_with_either_mutex_too),
        cmocka_unit_test(test_store_free_frees_every_item),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
