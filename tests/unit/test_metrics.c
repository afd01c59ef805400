/*
 * Metrics: the exact exposition of counters, gauges and histograms in text
 * 0.0.4 and OpenMetrics 1.0.0 (escaping, bucket edges, number formatting),
 * registration rules (names, conflicts, re-registration), the cardinality
 * cap, updates from shards, from plain threads (more of them than have
 * cells of their own, and one after another) and during a scrape, cells of
 * a freed registry reused, gauge set across shards, collectors, the process
 * collector, the default registry, and Accept negotiation.
 */
#include "harness.h"

#include <math.h>
#include <pthread.h>
#include <time.h>

#include "metrics/metrics_internal.h"
#include "weave/metrics.h"

/* ------------------------------------------------------------ helpers */

static wv_metric *reg_opts(wv_metrics *r, wv_metric_opts o)
{
    wv_metric *m = NULL;
    int rc = wv_metric_register(r, &o, &m);
    if (rc < 0)
        fail_msg("registering %s: %d %s", o.name, rc, wv_errmsg());
    return m;
}

static wv_metric *reg(wv_metrics *r, wv_metric_type type, const char *name, const char *help,
                      const char *labels)
{
    return reg_opts(r,
                    (wv_metric_opts){.type = type, .name = name, .help = help, .labels = labels});
}

static wv_series *get(wv_metric *m, const char *const *values)
{
    wv_series *s = NULL;
    int rc = wv_metric_series(m, values, &s);
    if (rc < 0)
        fail_msg("resolving a series: %d %s", rc, wv_errmsg());
    return s;
}

#define GET(m, ...) get((m), (const char *const[]){__VA_ARGS__})

/* The exposition as a NUL-terminated string; free() it. */
static char *render(wv_metrics *r, wv_metrics_format f)
{
    wv_buf b = {0};
    int rc = wv_metrics_render(r, f, &b);
    if (rc < 0)
        fail_msg("render: %d %s", rc, wv_errmsg());
    wv_buf_append(&b, "", 1);
    return b.p;
}

static void expect_render(wv_metrics *r, wv_metrics_format f, const char *want)
{
    char *got = render(r, f);
    assert_string_equal(got, want);
    free(got);
}

static wv_metric_opts reject_opts;

/* Registering reject_opts fails with `err` and a message containing `words`. */
static void expect_rejected(wv_metrics *r, int err, const char *words)
{
    wv_metric *m = (wv_metric *)1;
    int rc = wv_metric_register(r, &reject_opts, &m);
    if (rc != err || m != NULL || !strstr(wv_errmsg(), words))
        fail_msg("registering \"%s\": got %d \"%s\", want %d with \"%s\"",
                 reject_opts.name ? reject_opts.name : "(null)", rc, wv_errmsg(), err, words);
}

/* The value of the first sample line starting with `prefix ` in text, or NAN. */
static double sample_value(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *line = text; *line;) {
        if (strncmp(line, prefix, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        const char *next = strchr(line, '\n');
        if (!next)
            break;
        line = next + 1;
    }
    return NAN;
}

static int count_substr(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, what)) != NULL; p += strlen(what))
        n++;
    return n;
}

/* The shared atomic copy of a series' first cell (threads past the
 * maximum, set): 0 when nothing went there. */
static uint64_t shared_copy(wv_series *s)
{
    cell_table *t = __atomic_load_n(&cell_slots[SHARED_SLOT], __ATOMIC_ACQUIRE);
    cell *c = t ? table_cells(t, ((struct wv__series_head *)(void *)s)->cell_) : NULL;
    return c ? cell_u64(c) : 0;
}

static int tables_in_use(void)
{
    int n = 0;
    for (int i = 0; i < WV_METRICS_MAX_THREADS; i++)
        n += __atomic_load_n(&cell_slots[i], __ATOMIC_ACQUIRE) != NULL;
    return n;
}

/* ------------------------------------------------------------ counters */

static void test_counter_without_labels_in_text_format(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_metric *m = reg(r, WV_METRIC_COUNTER, "app_jobs_total", "Jobs done.", NULL);
    wv_series *s = get(m, NULL);
    wv_counter_inc(s);
    wv_counter_inc(s);
    assert_int_equal(wv_counter_add(s, 40), 0);
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# HELP app_jobs_total Jobs done.\n"
                  "# TYPE app_jobs_total counter\n"
                  "app_jobs_total 42\n");
    wv_metrics_free(r);
}

static void test_counter_without_labels_in_openmetrics(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_counter_inc(get(reg(r, WV_METRIC_COUNTER, "app_jobs_total", "Jobs done.", NULL), NULL));
    expect_render(r, WV_METRICS_OPENMETRICS,
                  "# TYPE app_jobs counter\n"
                  "# HELP app_jobs Jobs done.\n"
                  "app_jobs_total 1\n"
                  "# EOF\n");
    wv_metrics_free(r);
}

static void test_counter_named_without_total_gets_total_samples(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_counter_inc(get(reg(r, WV_METRIC_COUNTER, "app_jobs", "Jobs.", NULL), NULL));
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# HELP app_jobs_total Jobs.\n"
                  "# TYPE app_jobs_total counter\n"
                  "app_jobs_total 1\n");
    expect_render(r, WV_METRICS_OPENMETRICS,
                  "# TYPE app_jobs counter\n"
                  "# HELP app_jobs Jobs.\n"
                  "app_jobs_total 1\n"
                  "# EOF\n");
    wv_metrics_free(r);
}

static void test_counter_with_labels_lists_series_in_creation_order(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_metric *m =
        reg(r, WV_METRIC_COUNTER, "http_requests_total", "HTTP requests.", "method,route,status");
    wv_series *a = GET(m, "GET", "/users/{id}", "200");
    wv_series *b = GET(m, "POST", "/users", "201");
    wv_series *c = GET(m, "GET", "/", "404");
    assert_ptr_equal(GET(m, "GET", "/users/{id}", "200"), a);
    wv_counter_inc(b);
    for (int i = 0; i < 5; i++)
        wv_counter_inc(a);
    (void)c;
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# HELP http_requests_total HTTP requests.\n"
                  "# TYPE http_requests_total counter\n"
                  "http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"} 5\n"
                  "http_requests_total{method=\"POST\",route=\"/users\",status=\"201\"} 1\n"
                  "http_requests_total{method=\"GET\",route=\"/\",status=\"404\"} 0\n");
    expect_render(r, WV_METRICS_OPENMETRICS,
                  "# TYPE http_requests counter\n"
                  "# HELP http_requests HTTP requests.\n"
                  "http_requests_total{method=\"GET\",route=\"/users/{id}\",status=\"200\"} 5\n"
                  "http_requests_total{method=\"POST\",route=\"/users\",status=\"201\"} 1\n"
                  "http_requests_total{method=\"GET\",route=\"/\",status=\"404\"} 0\n"
                  "# EOF\n");
    wv_metrics_free(r);
}

static void test_counter_add_keeps_fractions_and_exact_large_integers(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_metric *m = reg(r, WV_METRIC_COUNTER, "bytes_total", "", "kind");
    wv_series *frac = GET(m, "frac"), *big = GET(m, "big");
    assert_int_equal(wv_counter_add(frac, 0.5), 0);
    assert_int_equal(wv_counter_add(frac, 1), 0);
    assert_int_equal(wv_counter_add(big, 9007199254740992.0), 0); /* 2^53 */
    wv_counter_inc(big);                                          /* 2^53 + 1: no double has it */
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# TYPE bytes_total counter\n"
                  "bytes_total{kind=\"frac\"} 1.5\n"
                  "bytes_total{kind=\"big\"} 9007199254740993\n");
    wv_metrics_free(r);
}

static void test_counter_add_rejects_negative_and_nan(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_series *s = get(reg(r, WV_METRIC_COUNTER, "c_total", "", NULL), NULL);
    assert_int_equal(wv_counter_add(s, -1), -EINVAL);
    assert_non_null(strstr(wv_errmsg(), "c_total"));
    assert_int_equal(wv_counter_add(s, NAN), -EINVAL);
    assert_int_equal(wv_counter_set(s, -2), -EINVAL);
    assert_true(wv_series_value(s) == 0);
    wv_metrics_free(r);
}

static void test_counter_set_makes_it_read_the_value(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_series *s = get(reg(r, WV_METRIC_COUNTER, "cpu_seconds_total", "", NULL), NULL);
    wv_counter_inc(s);
    assert_int_equal(wv_counter_set(s, 12.25), 0);
    assert_true(wv_series_value(s) == 12.25);
    wv_counter_inc(s);
    assert_true(wv_series_value(s) == 13.25);
    wv_metrics_free(r);
}

/* ------------------------------------------------------------ gauges */

static void test_gauge_with_and_without_labels_in_both_formats(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_series *temp = get(reg(r, WV_METRIC_GAUGE, "room_temperature_celsius", "Now.", NULL), NULL);
    wv_metric *pool = reg(r, WV_METRIC_GAUGE, "weave_db_pool_connections", "Pool.", "db,state");
    wv_series *idle = GET(pool, "main", "idle"), *busy = GET(pool, "main", "busy");
    wv_gauge_set(temp, 21.5);
    wv_gauge_set(idle, 8);
    wv_gauge_dec(idle);
    wv_gauge_inc(busy);
    wv_gauge_add(busy, 2);
    wv_gauge_add(idle, -10);
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# HELP room_temperature_celsius Now.\n"
                  "# TYPE room_temperature_celsius gauge\n"
                  "room_temperature_celsius 21.5\n"
                  "# HELP weave_db_pool_connections Pool.\n"
                  "# TYPE weave_db_pool_connections gauge\n"
                  "weave_db_pool_connections{db=\"main\",state=\"idle\"} -3\n"
                  "weave_db_pool_connections{db=\"main\",state=\"busy\"} 3\n");
    expect_render(r, WV_METRICS_OPENMETRICS,
                  "# TYPE room_temperature_celsius gauge\n"
                  "# HELP room_temperature_celsius Now.\n"
                  "room_temperature_celsius 21.5\n"
                  "# TYPE weave_db_pool_connections gauge\n"
                  "# HELP weave_db_pool_connections Pool.\n"
                  "weave_db_pool_connections{db=\"main\",state=\"idle\"} -3\n"
                  "weave_db_pool_connections{db=\"main\",state=\"busy\"} 3\n"
                  "# EOF\n");
    wv_metrics_free(r);
}

static void test_gauge_can_hold_nan_and_infinities(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_metric *m = reg(r, WV_METRIC_GAUGE, "g", "", "v");
    wv_gauge_set(GET(m, "nan"), NAN);
    wv_gauge_set(GET(m, "inf"), INFINITY);
    wv_gauge_set(GET(m, "-inf"), -INFINITY);
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# TYPE g gauge\n"
                  "g{v=\"nan\"} NaN\n"
                  "g{v=\"inf\"} +Inf\n"
                  "g{v=\"-inf\"} -Inf\n");
    wv_metrics_free(r);
}

static void test_label_less_family_is_exposed_as_zero_before_any_update(void **state)
{
    wv_metrics *r = wv_metrics_new();
    reg(r, WV_METRIC_GAUGE, "idle_gauge", "", NULL);
    reg(r, WV_METRIC_COUNTER, "idle_total", "", NULL);
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# TYPE idle_gauge gauge\n"
                  "idle_gauge 0\n"
                  "# TYPE idle_total counter\n"
                  "idle_total 0\n");
    wv_metrics_free(r);
}

static void test_labelled_family_without_series_writes_only_its_metadata(void **state)
{
    wv_metrics *r = wv_metrics_new();
    reg(r, WV_METRIC_COUNTER, "none_total", "Nothing yet.", "a");
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# HELP none_total Nothing yet.\n"
                  "# TYPE none_total counter\n");
    expect_render(r, WV_METRICS_OPENMETRICS,
                  "# TYPE none counter\n"
                  "# HELP none Nothing yet.\n"
                  "# EOF\n");
    wv_metrics_free(r);
}

static void test_empty_registry_renders_nothing_or_just_eof(void **state)
{
    wv_metrics *r = wv_metrics_new();
    expect_render(r, WV_METRICS_PROMETHEUS, "");
    expect_render(r, WV_METRICS_OPENMETRICS, "# EOF\n");
    wv_metrics_free(r);
}

/* ------------------------------------------------------------ histograms */

static void test_histogram_with_default_buckets_in_both_formats(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_series *s =
        get(reg(r, WV_METRIC_HISTOGRAM, "job_duration_seconds", "Job time.", NULL), NULL);
    /* 0.25, 0.5, 1 and 10 are bounds: each counts in its own bucket */
    const double obs[] = {0.0625, 0.25, 0.5, 1, 10, 12};
    for (size_t i = 0; i < ARRAY_LEN(obs); i++)
        wv_histogram_observe(s, obs[i]);
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# HELP job_duration_seconds Job time.\n"
                  "# TYPE job_duration_seconds histogram\n"
                  "job_duration_seconds_bucket{le=\"0.005\"} 0\n"
                  "job_duration_seconds_bucket{le=\"0.01\"} 0\n"
                  "job_duration_seconds_bucket{le=\"0.025\"} 0\n"
                  "job_duration_seconds_bucket{le=\"0.05\"} 0\n"
                  "job_duration_seconds_bucket{le=\"0.075\"} 1\n"
                  "job_duration_seconds_bucket{le=\"0.1\"} 1\n"
                  "job_duration_seconds_bucket{le=\"0.25\"} 2\n"
                  "job_duration_seconds_bucket{le=\"0.5\"} 3\n"
                  "job_duration_seconds_bucket{le=\"0.75\"} 3\n"
                  "job_duration_seconds_bucket{le=\"1\"} 4\n"
                  "job_duration_seconds_bucket{le=\"2.5\"} 4\n"
                  "job_duration_seconds_bucket{le=\"5\"} 4\n"
                  "job_duration_seconds_bucket{le=\"7.5\"} 4\n"
                  "job_duration_seconds_bucket{le=\"10\"} 5\n"
                  "job_duration_seconds_bucket{le=\"+Inf\"} 6\n"
                  "job_duration_seconds_sum 23.8125\n"
                  "job_duration_seconds_count 6\n");
    expect_render(r, WV_METRICS_OPENMETRICS,
                  "# TYPE job_duration_seconds histogram\n"
                  "# HELP job_duration_seconds Job time.\n"
                  "job_duration_seconds_bucket{le=\"0.005\"} 0\n"
                  "job_duration_seconds_bucket{le=\"0.01\"} 0\n"
                  "job_duration_seconds_bucket{le=\"0.025\"} 0\n"
                  "job_duration_seconds_bucket{le=\"0.05\"} 0\n"
                  "job_duration_seconds_bucket{le=\"0.075\"} 1\n"
                  "job_duration_seconds_bucket{le=\"0.1\"} 1\n"
                  "job_duration_seconds_bucket{le=\"0.25\"} 2\n"
                  "job_duration_seconds_bucket{le=\"0.5\"} 3\n"
                  "job_duration_seconds_bucket{le=\"0.75\"} 3\n"
                  "job_duration_seconds_bucket{le=\"1.0\"} 4\n"
                  "job_duration_seconds_bucket{le=\"2.5\"} 4\n"
                  "job_duration_seconds_bucket{le=\"5.0\"} 4\n"
                  "job_duration_seconds_bucket{le=\"7.5\"} 4\n"
                  "job_duration_seconds_bucket{le=\"10.0\"} 5\n"
                  "job_duration_seconds_bucket{le=\"+Inf\"} 6\n"
                  "job_duration_seconds_sum 23.8125\n"
                  "job_duration_seconds_count 6\n"
                  "# EOF\n");
    assert_true(wv_series_value(s) == 6);
    wv_metrics_free(r);
}

static void test_histogram_with_labels_and_custom_buckets(void **state)
{
    wv_metrics *r = wv_metrics_new();
    static const double bounds[] = {1, 2, 4};
    wv_metric *m = reg_opts(r, (wv_metric_opts){.type = WV_METRIC_HISTOGRAM,
                                                .name = "payload_bytes",
                                                .help = "Sizes.",
                                                .labels = "route",
                                                .unit = "bytes",
                                                .buckets = bounds,
                                                .nbuckets = 3});
    wv_series *a = GET(m, "/a"), *b = GET(m, "/b");
    const double obs_a[] = {0, 1, 1.5, 2, 4, 4.5}; /* edges 1, 2, 4 are inclusive */
    for (size_t i = 0; i < ARRAY_LEN(obs_a); i++)
        wv_histogram_observe(a, obs_a[i]);
    wv_histogram_observe(b, 3);
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# HELP payload_bytes Sizes.\n"
                  "# TYPE payload_bytes histogram\n"
                  "payload_bytes_bucket{route=\"/a\",le=\"1\"} 2\n"
                  "payload_bytes_bucket{route=\"/a\",le=\"2\"} 4\n"
                  "payload_bytes_bucket{route=\"/a\",le=\"4\"} 5\n"
                  "payload_bytes_bucket{route=\"/a\",le=\"+Inf\"} 6\n"
                  "payload_bytes_sum{route=\"/a\"} 13\n"
                  "payload_bytes_count{route=\"/a\"} 6\n"
                  "payload_bytes_bucket{route=\"/b\",le=\"1\"} 0\n"
                  "payload_bytes_bucket{route=\"/b\",le=\"2\"} 0\n"
                  "payload_bytes_bucket{route=\"/b\",le=\"4\"} 1\n"
                  "payload_bytes_bucket{route=\"/b\",le=\"+Inf\"} 1\n"
                  "payload_bytes_sum{route=\"/b\"} 3\n"
                  "payload_bytes_count{route=\"/b\"} 1\n");
    expect_render(r, WV_METRICS_OPENMETRICS,
                  "# TYPE payload_bytes histogram\n"
                  "# UNIT payload_bytes bytes\n"
                  "# HELP payload_bytes Sizes.\n"
                  "payload_bytes_bucket{route=\"/a\",le=\"1.0\"} 2\n"
                  "payload_bytes_bucket{route=\"/a\",le=\"2.0\"} 4\n"
                  "payload_bytes_bucket{route=\"/a\",le=\"4.0\"} 5\n"
                  "payload_bytes_bucket{route=\"/a\",le=\"+Inf\"} 6\n"
                  "payload_bytes_sum{route=\"/a\"} 13\n"
                  "payload_bytes_count{route=\"/a\"} 6\n"
                  "payload_bytes_bucket{route=\"/b\",le=\"1.0\"} 0\n"
                  "payload_bytes_bucket{route=\"/b\",le=\"2.0\"} 0\n"
                  "payload_bytes_bucket{route=\"/b\",le=\"4.0\"} 1\n"
                  "payload_bytes_bucket{route=\"/b\",le=\"+Inf\"} 1\n"
                  "payload_bytes_sum{route=\"/b\"} 3\n"
                  "payload_bytes_count{route=\"/b\"} 1\n"
                  "# EOF\n");
    wv_metrics_free(r);
}

static void test_histogram_values_just_past_a_bound_go_to_the_next_bucket(void **state)
{
    wv_metrics *r = wv_metrics_new();
    static const double bounds[] = {0.1, 0.2};
    wv_series *s = get(reg_opts(r, (wv_metric_opts){.type = WV_METRIC_HISTOGRAM,
                                                    .name = "edge",
                                                    .buckets = bounds,
                                                    .nbuckets = 2}),
                       NULL);
    wv_histogram_observe(s, 0.1);               /* == bound: in le=0.1 */
    wv_histogram_observe(s, nextafter(0.1, 1)); /* just above: le=0.2 */
    wv_histogram_observe(s, nextafter(0.2, 1)); /* just above: +Inf */
    wv_histogram_observe(s, -5);                /* below every bound: first bucket */
    char *text = render(r, WV_METRICS_PROMETHEUS);
    assert_true(sample_value(text, "edge_bucket{le=\"0.1\"}") == 2);
    assert_true(sample_value(text, "edge_bucket{le=\"0.2\"}") == 3);
    assert_true(sample_value(text, "edge_bucket{le=\"+Inf\"}") == 4);
    assert_true(sample_value(text, "edge_count") == 4);
    free(text);
    wv_metrics_free(r);
}

static void test_histogram_nan_counts_in_inf_bucket_and_makes_the_sum_nan(void **state)
{
    wv_metrics *r = wv_metrics_new();
    static const double bounds[] = {1};
    wv_series *s = get(reg_opts(r, (wv_metric_opts){.type = WV_METRIC_HISTOGRAM,
                                                    .name = "h",
                                                    .buckets = bounds,
                                                    .nbuckets = 1}),
                       NULL);
    wv_histogram_observe(s, NAN);
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# TYPE h histogram\n"
                  "h_bucket{le=\"1\"} 0\n"
                  "h_bucket{le=\"+Inf\"} 1\n"
                  "h_sum NaN\n"
                  "h_count 1\n");
    wv_metrics_free(r);
}

static void test_histogram_with_negative_bounds_has_no_sum_in_openmetrics(void **state)
{
    wv_metrics *r = wv_metrics_new();
    static const double bounds[] = {-1, 0, 1, INFINITY};
    wv_series *s = get(reg_opts(r, (wv_metric_opts){.type = WV_METRIC_HISTOGRAM,
                                                    .name = "delta",
                                                    .buckets = bounds,
                                                    .nbuckets = 4}),
                       NULL);
    wv_histogram_observe(s, -0.5);
    expect_render(r, WV_METRICS_OPENMETRICS,
                  "# TYPE delta histogram\n"
                  "delta_bucket{le=\"-1.0\"} 0\n"
                  "delta_bucket{le=\"0.0\"} 1\n"
                  "delta_bucket{le=\"1.0\"} 1\n"
                  "delta_bucket{le=\"+Inf\"} 1\n"
                  "# EOF\n");
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# TYPE delta histogram\n"
                  "delta_bucket{le=\"-1\"} 0\n"
                  "delta_bucket{le=\"0\"} 1\n"
                  "delta_bucket{le=\"1\"} 1\n"
                  "delta_bucket{le=\"+Inf\"} 1\n"
                  "delta_sum -0.5\n"
                  "delta_count 1\n");
    wv_metrics_free(r);
}

/* ------------------------------------------------------------ escaping */

static void test_label_values_escape_backslash_quote_and_newline(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_metric *m = reg(r, WV_METRIC_COUNTER, "esc_total", "", "path,note");
    wv_counter_inc(GET(m, "C:\\dir\\", "say \"hi\"\nbye"));
    const char *line = "esc_total{path=\"C:\\\\dir\\\\\",note=\"say \\\"hi\\\"\\nbye\"} 1\n";
    char want[256];
    snprintf(want, sizeof want, "# TYPE esc_total counter\n%s", line);
    expect_render(r, WV_METRICS_PROMETHEUS, want);
    snprintf(want, sizeof want, "# TYPE esc counter\n%s# EOF\n", line);
    expect_render(r, WV_METRICS_OPENMETRICS, want);
    wv_metrics_free(r);
}

static void test_help_escapes_backslash_and_newline_and_quote_in_openmetrics(void **state)
{
    wv_metrics *r = wv_metrics_new();
    reg(r, WV_METRIC_GAUGE, "helpful", "A \\ \"quoted\"\nsecond line", NULL);
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# HELP helpful A \\\\ \"quoted\"\\nsecond line\n"
                  "# TYPE helpful gauge\n"
                  "helpful 0\n");
    expect_render(r, WV_METRICS_OPENMETRICS,
                  "# TYPE helpful gauge\n"
                  "# HELP helpful A \\\\ \\\"quoted\\\"\\nsecond line\n"
                  "helpful 0\n"
                  "# EOF\n");
    wv_metrics_free(r);
}

static void test_empty_label_values_and_utf8_are_written_as_given(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_metric *m = reg(r, WV_METRIC_GAUGE, "names", "", "a,b");
    wv_gauge_set(GET(m, "", "h\xc3\xa9llo"), 1);
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# TYPE names gauge\n"
                  "names{a=\"\",b=\"h\xc3\xa9llo\"} 1\n");
    wv_metrics_free(r);
}

/* ------------------------------------------------------------ numbers */

static void expect_number(double v, number_style style, const char *want)
{
    char out[NUMBER_MAX + 1];
    size_t n = format_number(out, v, style);
    out[n] = '\0';
    if (strcmp(out, want) != 0)
        fail_msg("format_number(%.17g, style %d): got \"%s\", want \"%s\"", v, (int)style, out,
                 want);
}

static void test_sample_values_are_formatted_like_the_go_client_with_integers_in_full(void **state)
{
    expect_number(0, NUMBER_VALUE, "0");
    expect_number(-0.0, NUMBER_VALUE, "0");
    expect_number(1, NUMBER_VALUE, "1");
    expect_number(-1, NUMBER_VALUE, "-1");
    expect_number(1027, NUMBER_VALUE, "1027");
    expect_number(1234567, NUMBER_VALUE, "1234567");                     /* Go: 1.234567e+06 */
    expect_number(9007199254740991.0, NUMBER_VALUE, "9007199254740991"); /* 2^53 - 1 */
    expect_number(9007199254740992.0, NUMBER_VALUE, "9.007199254740992e+15");
    expect_number(1e21, NUMBER_VALUE, "1e+21");
    expect_number(0.5, NUMBER_VALUE, "0.5");
    expect_number(-2.5, NUMBER_VALUE, "-2.5");
    expect_number(0.1 + 0.2, NUMBER_VALUE, "0.30000000000000004");
    expect_number(1.0 / 3, NUMBER_VALUE, "0.3333333333333333");
    expect_number(0.0001, NUMBER_VALUE, "0.0001");
    expect_number(0.00001, NUMBER_VALUE, "1e-05");
    expect_number(1.5e-7, NUMBER_VALUE, "1.5e-07");
    expect_number(123456.7, NUMBER_VALUE, "123456.7");
    expect_number(1234567.5, NUMBER_VALUE, "1.2345675e+06");
    expect_number(1712345678.25, NUMBER_VALUE, "1.71234567825e+09");
    expect_number(1e-300, NUMBER_VALUE, "1e-300");
    expect_number(5e-324, NUMBER_VALUE, "5e-324");
    expect_number(1.7976931348623157e308, NUMBER_VALUE, "1.7976931348623157e+308");
    expect_number(INFINITY, NUMBER_VALUE, "+Inf");
    expect_number(-INFINITY, NUMBER_VALUE, "-Inf");
    expect_number(NAN, NUMBER_VALUE, "NaN");
}

static void test_le_values_are_go_style_in_text_and_canonical_in_openmetrics(void **state)
{
    static const struct {
        double v;
        const char *text, *om;
    } cases[] = {
        {0, "0", "0.0"},
        {0.001, "0.001", "0.001"},
        {0.005, "0.005", "0.005"},
        {0.95, "0.95", "0.95"},
        {1, "1", "1.0"},
        {1.7, "1.7", "1.7"},
        {10, "10", "10.0"},
        {1e-10, "1e-10", "1e-10"},
        {1e-05, "1e-05", "1e-05"},
        {1e-4, "0.0001", "0.0001"},
        {100000, "100000", "100000.0"},
        {1e6, "1e+06", "1e+06"},
        {1e10, "1e+10", "1e+10"},
        {1.1e23, "1.1e+23", "1.1e+23"},
        {-1, "-1", "-1.0"},
        {INFINITY, "+Inf", "+Inf"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        expect_number(cases[i].v, NUMBER_LE_TEXT, cases[i].text);
        expect_number(cases[i].v, NUMBER_LE_OM, cases[i].om);
    }
}

/* ------------------------------------------------------------ registration */

static void test_registering_the_same_definition_again_returns_the_family(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_metric *a = reg(r, WV_METRIC_COUNTER, "same_total", "Same.", "x, y");
    wv_metric *b = reg(r, WV_METRIC_COUNTER, "same_total", "Same.", "x,y");
    wv_metric *c = reg(r, WV_METRIC_COUNTER, "same", "Same.", "x,y"); /* _total implied */
    assert_ptr_equal(a, b);
    assert_ptr_equal(a, c);
    static const double with_inf[] = {.005, .01, .025, .05, .075, .1, .25,     .5,
                                      .75,  1,   2.5,  5,   7.5,  10, INFINITY};
    wv_metric *h1 = reg(r, WV_METRIC_HISTOGRAM, "lat_seconds", "L.", NULL);
    wv_metric *h2 = reg_opts(r, (wv_metric_opts){.type = WV_METRIC_HISTOGRAM,
                                                 .name = "lat_seconds",
                                                 .help = "L.",
                                                 .buckets = with_inf,
                                                 .nbuckets = ARRAY_LEN(with_inf)});
    assert_ptr_equal(h1, h2);
    char *text = render(r, WV_METRICS_PROMETHEUS);
    assert_int_equal(count_substr(text, "# TYPE same_total counter"), 1);
    assert_int_equal(count_substr(text, "# TYPE lat_seconds histogram"), 1);
    free(text);
    wv_metrics_free(r);
}

static void test_conflicting_registrations_fail_with_eexist(void **state)
{
    wv_metrics *r = wv_metrics_new();
    reg(r, WV_METRIC_COUNTER, "taken_total", "One.", "a");
    reg(r, WV_METRIC_HISTOGRAM, "lat", "", NULL);

    reject_opts = (wv_metric_opts){
        .type = WV_METRIC_COUNTER, .name = "taken_total", .help = "Two.", .labels = "a"};
    expect_rejected(r, -EEXIST, "another definition");
    reject_opts.help = "One.";
    reject_opts.labels = "b";
    expect_rejected(r, -EEXIST, "another definition");
    reject_opts = (wv_metric_opts){.type = WV_METRIC_GAUGE, .name = "taken_total"};
    expect_rejected(r, -EEXIST, "clash with the counter taken_total");
    reject_opts = (wv_metric_opts){.type = WV_METRIC_GAUGE, .name = "taken"};
    expect_rejected(r, -EEXIST, "clash");
    reject_opts = (wv_metric_opts){.type = WV_METRIC_GAUGE, .name = "lat_bucket"};
    expect_rejected(r, -EEXIST, "clash with the histogram lat");
    reject_opts = (wv_metric_opts){.type = WV_METRIC_COUNTER, .name = "lat_count"};
    expect_rejected(r, -EEXIST, "clash");
    static const double other[] = {1, 2};
    reject_opts = (wv_metric_opts){
        .type = WV_METRIC_HISTOGRAM, .name = "lat", .buckets = other, .nbuckets = 2};
    expect_rejected(r, -EEXIST, "another definition");
    wv_metrics_free(r);
}

static void test_invalid_names_labels_units_and_buckets_are_rejected(void **state)
{
    wv_metrics *r = wv_metrics_new();
    const struct {
        wv_metric_opts o;
        const char *words;
    } bad[] = {
        {{.type = WV_METRIC_COUNTER, .name = "1abc"}, "bad metric name"},
        {{.type = WV_METRIC_COUNTER, .name = "a-b"}, "bad metric name"},
        {{.type = WV_METRIC_COUNTER, .name = ""}, "bad metric name"},
        {{.type = WV_METRIC_COUNTER, .name = NULL}, "bad metric name"},
        {{.type = WV_METRIC_COUNTER, .name = "a b"}, "bad metric name"},
        {{.type = 0, .name = "untyped"}, "unknown type"},
        {{.type = WV_METRIC_GAUGE, .name = "g", .labels = "1x"}, "bad label name \"1x\""},
        {{.type = WV_METRIC_GAUGE, .name = "g", .labels = "a:b"}, "bad label name"},
        {{.type = WV_METRIC_GAUGE, .name = "g", .labels = "a,,b"}, "bad label name \"\""},
        {{.type = WV_METRIC_GAUGE, .name = "g", .labels = "a,"}, "bad label name"},
        {{.type = WV_METRIC_GAUGE, .name = "g", .labels = "__name"}, "reserved"},
        {{.type = WV_METRIC_GAUGE, .name = "g", .labels = "a,b,a"}, "label a appears twice"},
        {{.type = WV_METRIC_GAUGE, .name = "g", .labels = "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"},
         "more than 16 labels"},
        {{.type = WV_METRIC_HISTOGRAM, .name = "h", .labels = "route,le"}, "label named le"},
        {{.type = WV_METRIC_GAUGE, .name = "g_seconds", .unit = "bytes"}, "must end in _bytes"},
        {{.type = WV_METRIC_GAUGE, .name = "g_bytes", .unit = "by tes"}, "bad unit"},
        {{.type = WV_METRIC_HISTOGRAM,
          .name = "h",
          .buckets = (const double[]){2, 1},
          .nbuckets = 2},
         "must increase"},
        {{.type = WV_METRIC_HISTOGRAM,
          .name = "h",
          .buckets = (const double[]){1, 1},
          .nbuckets = 2},
         "must increase"},
        {{.type = WV_METRIC_HISTOGRAM,
          .name = "h",
          .buckets = (const double[]){NAN},
          .nbuckets = 1},
         "not finite"},
        {{.type = WV_METRIC_HISTOGRAM,
          .name = "h",
          .buckets = (const double[]){-INFINITY, 1},
          .nbuckets = 2},
         "not finite"},
        {{.type = WV_METRIC_HISTOGRAM,
          .name = "h",
          .buckets = (const double[]){INFINITY},
          .nbuckets = 1},
         "at least one finite"},
        {{.type = WV_METRIC_HISTOGRAM, .name = "h", .buckets = (const double[]){1}, .nbuckets = 0},
         "at least one finite"},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        reject_opts = bad[i].o;
        expect_rejected(r, -EINVAL, bad[i].words);
    }
    /* "le" is an ordinary label on other types; colons are fine in metric names */
    reg(r, WV_METRIC_COUNTER, "ns:le_total", "", "le");
    wv_metric *m = (wv_metric *)1;
    assert_int_equal(wv_metric_register(r, NULL, &m), -EINVAL);
    assert_null(m);
    expect_render(r, WV_METRICS_PROMETHEUS, "# TYPE ns:le_total counter\n");
    wv_metrics_free(r);
}

static void test_series_resolve_from_string_slices_and_reject_missing_values(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_metric *m = reg(r, WV_METRIC_COUNTER, "slices_total", "", "method,route");
    const char *request = "GET /users/{id} HTTP/1.1";
    wv_str v[2] = {{request, 3}, {request + 4, 11}};
    wv_series *s = NULL;
    assert_int_equal(wv_metric_series_str(m, v, &s), 0);
    assert_ptr_equal(s, GET(m, "GET", "/users/{id}"));
    assert_int_equal(wv_metric_series(m, (const char *const[]){"GET", NULL}, &s), -EINVAL);
    assert_null(s);
    assert_int_equal(wv_metric_series(m, NULL, &s), -EINVAL);
    assert_int_equal(wv_metric_series(NULL, NULL, &s), -EINVAL);
    wv_metrics_free(r);
}

static void test_thousands_of_series_keep_their_handles_and_creation_order(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_metric *m = reg(r, WV_METRIC_COUNTER, "many_total", "", "id");
    enum { N = 3000 };
    static wv_series *made[N];
    char id[16];
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "%d", (i * 7919) % N);
        made[i] = GET(m, id);
        for (int k = 0; k <= i % 3; k++)
            wv_counter_inc(made[i]);
    }
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "%d", (i * 7919) % N);
        assert_ptr_equal(GET(m, id), made[i]);
    }
    char *text = render(r, WV_METRICS_PROMETHEUS), *p = text;
    for (int i = 0; i < N; i++) {
        char want[64];
        snprintf(want, sizeof want, "many_total{id=\"%d\"} %d\n", (i * 7919) % N, i % 3 + 1);
        p = strstr(p, want);
        if (!p)
            fail_msg("line %d (%s) missing or out of order", i, want);
    }
    free(text);
    wv_metrics_free(r);
}

/* ------------------------------------------------------------ cardinality */

static void test_label_sets_past_the_cap_fail_with_e2big_and_updates_go_nowhere(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_metric *m = reg_opts(r, (wv_metric_opts){.type = WV_METRIC_COUNTER,
                                                .name = "capped_total",
                                                .labels = "user",
                                                .max_series = 3});
    wv_series *a = GET(m, "a");
    GET(m, "b");
    GET(m, "c");
    wv_log_level old = wv_log_level_get();
    wv_log_level_set(WV_LOG_OFF); /* the once-per-family warning */
    wv_series *s = (wv_series *)1;
    assert_int_equal(wv_metric_series(m, (const char *const[]){"d"}, &s), -E2BIG);
    assert_string_equal(wv_errmsg(), "metric capped_total: more than 3 label sets");
    assert_null(s);
    wv_counter_inc(s); /* nowhere, no crash */
    assert_int_equal(wv_counter_add(s, 2), 0);
    wv_gauge_set(s, 1);
    wv_histogram_observe(s, 1);
    assert_true(wv_series_value(s) == 0);
    assert_int_equal(wv_metric_series(m, (const char *const[]){"e"}, &s), -E2BIG);
    wv_log_level_set(old);
    assert_ptr_equal(GET(m, "a"), a); /* known sets still resolve */

    wv_metric_set_max_series(m, 4);
    wv_counter_inc(GET(m, "d"));
    expect_render(r, WV_METRICS_PROMETHEUS,
                  "# TYPE capped_total counter\n"
                  "capped_total{user=\"a\"} 0\n"
                  "capped_total{user=\"b\"} 0\n"
                  "capped_total{user=\"c\"} 0\n"
                  "capped_total{user=\"d\"} 1\n");
    wv_metric_set_max_series(m, 0); /* back to the default, 10000 */
    assert_non_null(GET(m, "e"));
    wv_metrics_free(r);
}

static void test_default_cap_is_10000_label_sets(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_metric *m = reg(r, WV_METRIC_COUNTER, "http_requests_total", "", "path");
    char path[32];
    for (int i = 0; i < WV_METRIC_DEFAULT_MAX_SERIES; i++) {
        snprintf(path, sizeof path, "/item/%d", i);
        GET(m, path);
    }
    wv_log_level old = wv_log_level_get();
    wv_log_level_set(WV_LOG_OFF);
    wv_series *s;
    assert_int_equal(wv_metric_series(m, (const char *const[]){"/one-more"}, &s), -E2BIG);
    assert_string_equal(wv_errmsg(), "metric http_requests_total: more than 10000 label sets");
    wv_log_level_set(old);
    wv_metrics_free(r);
}

/* ------------------------------------------------------------ types */

static void test_updates_of_the_wrong_type_do_nothing(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_series *c = get(reg(r, WV_METRIC_COUNTER, "c_total", "", NULL), NULL);
    wv_series *g = get(reg(r, WV_METRIC_GAUGE, "g", "", NULL), NULL);
    wv_series *h = get(reg(r, WV_METRIC_HISTOGRAM, "h", "", NULL), NULL);
    wv_gauge_set(c, 5);
    wv_gauge_inc(h);
    wv_histogram_observe(g, 1);
    wv_counter_inc(g);
    assert_int_equal(wv_counter_add(g, 1), -EINVAL);
    assert_int_equal(wv_counter_set(h, 1), -EINVAL);
    assert_true(wv_series_value(c) == 0);
    assert_true(wv_series_value(g) == 0);
    assert_true(wv_series_value(h) == 0);
    assert_true(wv_series_value(NULL) == 0);
    wv_metrics_free(r);
}

/* ------------------------------------------------------------ shards */

typedef struct bump_args {
    wv_series *counter, *gauge, *hist;
    long n;
    atomic_int shards_seen;
} bump_args;

static int bump_on_this_shard(void *arg)
{
    bump_args *a = arg;
    atomic_fetch_or(&a->shards_seen, 1 << wv_shard_id());
    for (long i = 0; i < a->n; i++) {
        wv_counter_inc(a->counter);
        wv_gauge_inc(a->gauge);
        wv_histogram_observe(a->hist, (double)(i % 4)); /* 0 1 2 3 */
    }
    return 0;
}

static int bump_on_every_shard(void *arg)
{
    CHECK_EQ(wv_shard_each(bump_on_this_shard, arg), 0);
    return 0;
}

static void test_updates_from_two_shards_sum_exactly(void **state)
{
    wv_metrics *r = wv_metrics_new();
    static const double bounds[] = {0.5, 1.5, 2.5};
    bump_args a = {
        .counter = get(reg(r, WV_METRIC_COUNTER, "sharded_total", "", NULL), NULL),
        .gauge = get(reg(r, WV_METRIC_GAUGE, "sharded_gauge", "", NULL), NULL),
        .hist = get(reg_opts(r, (wv_metric_opts){.type = WV_METRIC_HISTOGRAM,
                                                 .name = "sharded_hist",
                                                 .buckets = bounds,
                                                 .nbuckets = 3}),
                    NULL),
        .n = 200000,
    };
    assert_int_equal(run_in_rt(2, bump_on_every_shard, &a), 0);
    assert_checks_passed();
    assert_int_equal(atomic_load(&a.shards_seen), 3);
    /* each shard wrote its own cells, none the shared atomic copy */
    assert_true(shared_copy(a.counter) == 0);
    char *text = render(r, WV_METRICS_PROMETHEUS);
    assert_true(sample_value(text, "sharded_total") == 400000);
    assert_true(sample_value(text, "sharded_gauge") == 400000);
    assert_true(sample_value(text, "sharded_hist_bucket{le=\"0.5\"}") == 100000);
    assert_true(sample_value(text, "sharded_hist_bucket{le=\"1.5\"}") == 200000);
    assert_true(sample_value(text, "sharded_hist_bucket{le=\"2.5\"}") == 300000);
    assert_true(sample_value(text, "sharded_hist_bucket{le=\"+Inf\"}") == 400000);
    assert_true(sample_value(text, "sharded_hist_sum") == 600000);
    assert_true(sample_value(text, "sharded_hist_count") == 400000);
    free(text);
    wv_metrics_free(r);
}

static void *bump_from_thread(void *arg)
{
    bump_args *a = arg;
    for (long i = 0; i < a->n; i++) {
        wv_counter_inc(a->counter);
        wv_gauge_add(a->gauge, 0.5); /* the shared slot's CAS loop */
        wv_histogram_observe(a->hist, 1);
    }
    return NULL;
}

static void test_updates_from_plain_threads_sum_exactly(void **state)
{
    wv_metrics *r = wv_metrics_new();
    static const double bounds[] = {1};
    bump_args a = {
        .counter = get(reg(r, WV_METRIC_COUNTER, "threads_total", "", NULL), NULL),
        .gauge = get(reg(r, WV_METRIC_GAUGE, "threads_gauge", "", NULL), NULL),
        .hist = get(reg_opts(r, (wv_metric_opts){.type = WV_METRIC_HISTOGRAM,
                                                 .name = "threads_hist",
                                                 .buckets = bounds,
                                                 .nbuckets = 1}),
                    NULL),
        .n = 50000,
    };
    assert_int_equal(wv_shard_id(), -1);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, bump_from_thread, &a), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_true(wv_series_value(a.counter) == 200000);
    assert_true(wv_series_value(a.gauge) == 100000);
    assert_true(wv_series_value(a.hist) == 200000);
    assert_true(shared_copy(a.counter) == 0); /* each thread had cells of its own */
    char *text = render(r, WV_METRICS_PROMETHEUS);
    assert_true(sample_value(text, "threads_hist_bucket{le=\"1\"}") == 200000);
    assert_true(sample_value(text, "threads_hist_sum") == 200000);
    free(text);
    wv_metrics_free(r);
}

/* Many threads alive at once: the first WV_METRICS_MAX_THREADS get cells of
 * their own, the rest share the atomic copy. */
typedef struct crowd {
    wv_series *counter;
    pthread_barrier_t all_started;
} crowd;

static void *crowd_member(void *arg)
{
    crowd *c = arg;
    pthread_barrier_wait(&c->all_started); /* nobody exits before all have a slot */
    for (int i = 0; i < 1000; i++)
        wv_counter_inc(c->counter);
    pthread_barrier_wait(&c->all_started);
    return NULL;
}

static void test_threads_past_the_maximum_share_an_atomic_copy_and_sum_exactly(void **state)
{
    enum { THREADS = WV_METRICS_MAX_THREADS + 44 };
    wv_metrics *r = wv_metrics_new();
    crowd c = {.counter = get(reg(r, WV_METRIC_COUNTER, "crowd_total", "", NULL), NULL)};
    assert_int_equal(pthread_barrier_init(&c.all_started, NULL, THREADS), 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    static pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], &attr, crowd_member, &c), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_attr_destroy(&attr);
    pthread_barrier_destroy(&c.all_started);
    assert_true(wv_series_value(c.counter) == THREADS * 1000.0);
    assert_true(shared_copy(c.counter) >= 44 * 1000);
    wv_metrics_free(r);
}

static void *count_ten(void *arg)
{
    for (int i = 0; i < 10; i++)
        wv_counter_inc(arg);
    return NULL;
}

static void test_a_finished_threads_cells_go_to_the_next_thread_with_their_values(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_series *s = get(reg(r, WV_METRIC_COUNTER, "relay_total", "", NULL), NULL);
    int before = tables_in_use();
    for (int i = 0; i < 500; i++) {
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, count_ten, s), 0);
        pthread_join(t, NULL);
    }
    assert_true(wv_series_value(s) == 5000);
    assert_true(tables_in_use() <= before + 1);
    assert_true(shared_copy(s) == 0);
    wv_metrics_free(r);
}

static void test_a_freed_registrys_cells_come_back_zeroed(void **state)
{
    for (int round = 0; round < 3; round++) {
        wv_metrics *r = wv_metrics_new();
        wv_series *s = get(reg(r, WV_METRIC_COUNTER, "reused_total", "", NULL), NULL);
        wv_series *g = get(reg(r, WV_METRIC_GAUGE, "reused_gauge", "", NULL), NULL);
        assert_true(wv_series_value(s) == 0);
        assert_true(wv_series_value(g) == 0);
        expect_render(r, WV_METRICS_PROMETHEUS,
                      "# TYPE reused_total counter\nreused_total 0\n"
                      "# TYPE reused_gauge gauge\nreused_gauge 0\n");
        wv_counter_inc(s);
        wv_gauge_add(g, 2.5);
        wv_gauge_set(g, 7);
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, count_ten, s), 0);
        pthread_join(t, NULL);
        assert_true(wv_series_value(s) == 11);
        assert_true(wv_series_value(g) == 7);
        wv_metrics_free(r);
    }
}

/* A scrape thread renders over and over while two shards increment and
 * make new series; every value it reads must be >= the one before. */
typedef struct race {
    wv_metrics *r;
    wv_metric *family;
    wv_series *counter;
    long n;
    atomic_bool stop;
    long scrapes;
    bool monotonic;
    bool parsed;
} race;

static void *scrape_loop(void *arg)
{
    race *x = arg;
    wv_buf b = {0};
    double last = 0;
    x->monotonic = x->parsed = true;
    while (!atomic_load(&x->stop) || x->scrapes < 3) {
        wv_buf_reset(&b);
        if (wv_metrics_render(
                x->r, (x->scrapes & 1) ? WV_METRICS_OPENMETRICS : WV_METRICS_PROMETHEUS, &b) < 0 ||
            wv_buf_append(&b, "", 1) < 0) {
            x->parsed = false;
            break;
        }
        double v = sample_value(b.p, "race_total");
        if (isnan(v))
            x->parsed = false;
        else if (v < last)
            x->monotonic = false;
        last = v;
        x->scrapes++;
    }
    wv_buf_free(&b);
    return NULL;
}

static int race_on_this_shard(void *arg)
{
    race *x = arg;
    char label[32];
    for (long i = 0; i < x->n; i++) {
        wv_counter_inc(x->counter);
        if (i % 64 == 0) {
            snprintf(label, sizeof label, "%d-%ld", wv_shard_id(), i);
            wv_series *s = NULL;
            CHECK_EQ(wv_metric_series(x->family, (const char *const[]){label}, &s), 0);
            wv_gauge_set(s, (double)i);
        }
        if (i % 4096 == 0)
            wv_yield();
    }
    return 0;
}

static int race_body(void *arg)
{
    CHECK_EQ(wv_shard_each(race_on_this_shard, arg), 0);
    return 0;
}

static void test_scrape_on_another_thread_while_shards_update_is_safe_and_exact(void **state)
{
    wv_metrics *r = wv_metrics_new();
    race x = {
        .r = r,
        .family = reg(r, WV_METRIC_GAUGE, "race_gauge", "", "id"),
        .counter = get(reg(r, WV_METRIC_COUNTER, "race_total", "", NULL), NULL),
        .n = 300000,
    };
    pthread_t scraper;
    assert_int_equal(pthread_create(&scraper, NULL, scrape_loop, &x), 0);
    assert_int_equal(run_in_rt(2, race_body, &x), 0);
    atomic_store(&x.stop, true);
    pthread_join(scraper, NULL);
    assert_checks_passed();
    assert_true(x.parsed);
    assert_true(x.monotonic);
    assert_true(x.scrapes >= 3);
    assert_true(wv_series_value(x.counter) == 2.0 * (double)x.n);
    char *text = render(r, WV_METRICS_PROMETHEUS);
    long series = 2 * ((x.n + 63) / 64);
    assert_int_equal(count_substr(text, "race_gauge{"), series);
    free(text);
    wv_metrics_free(r);
}

typedef struct gauge_args {
    wv_series *g;
} gauge_args;

static int add_five_or_three(void *arg)
{
    wv_gauge_add(((gauge_args *)arg)->g, wv_shard_id() == 0 ? 5 : 3);
    return 0;
}

static int add_one(void *arg)
{
    wv_gauge_inc(((gauge_args *)arg)->g);
    return 0;
}

static int set_across_shards(void *arg)
{
    gauge_args *a = arg;
    CHECK_EQ(wv_shard_each(add_five_or_three, a), 0);
    CHECK(wv_series_value(a->g) == 8);
    wv_gauge_set(a->g, 10); /* shard 0 sets; shard 1's +3 must not linger */
    CHECK(wv_series_value(a->g) == 10);
    CHECK_EQ(wv_shard_call(1, add_one, a), 0);
    CHECK(wv_series_value(a->g) == 11);
    return 0;
}

static void test_gauge_set_wins_over_what_every_shard_added(void **state)
{
    wv_metrics *r = wv_metrics_new();
    gauge_args a = {.g = get(reg(r, WV_METRIC_GAUGE, "level", "", NULL), NULL)};
    assert_int_equal(run_in_rt(2, set_across_shards, &a), 0);
    assert_checks_passed();
    wv_gauge_dec(a.g); /* and from outside the runtime */
    assert_true(wv_series_value(a.g) == 10);
    wv_metrics_free(r);
}

/* ------------------------------------------------------------ collectors */

typedef struct scrape_count {
    wv_series *g;
    int calls;
    pthread_t thread;
} scrape_count;

static void count_scrapes(wv_metrics *r, void *arg)
{
    scrape_count *c = arg;
    c->thread = pthread_self();
    wv_gauge_set(c->g, ++c->calls);
}

static void test_collectors_run_before_every_render_on_the_scraping_thread(void **state)
{
    wv_metrics *r = wv_metrics_new();
    scrape_count c = {.g = get(reg(r, WV_METRIC_GAUGE, "scrapes", "", NULL), NULL)};
    assert_int_equal(wv_metrics_add_collector(r, count_scrapes, &c), 0);
    assert_int_equal(wv_metrics_add_collector(r, NULL, NULL), -EINVAL);
    expect_render(r, WV_METRICS_PROMETHEUS, "# TYPE scrapes gauge\nscrapes 1\n");
    expect_render(r, WV_METRICS_PROMETHEUS, "# TYPE scrapes gauge\nscrapes 2\n");
    assert_true(pthread_equal(c.thread, pthread_self()));
    wv_metrics_free(r);
}

static void test_process_collector_reports_plausible_values(void **state)
{
    wv_metrics *r = wv_metrics_new();
    assert_int_equal(wv_metrics_add_process_collector(r), 0);
    assert_int_equal(wv_metrics_add_process_collector(r), 0); /* once only */
    int fd = open("/dev/null", O_RDONLY);
    assert_true(fd >= 0);
    char *text = render(r, WV_METRICS_PROMETHEUS);
    close(fd);
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    double now = (double)time(NULL);
    assert_true(sample_value(text, "process_open_fds") >= 4); /* 0 1 2, fd, the listing */
    assert_true(sample_value(text, "process_max_fds") == (double)rl.rlim_cur);
    assert_true(sample_value(text, "process_resident_memory_bytes") > 1 << 20);
    assert_true(sample_value(text, "process_virtual_memory_bytes") >
                sample_value(text, "process_resident_memory_bytes"));
    double start = sample_value(text, "process_start_time_seconds");
    assert_true(start > now - 3600 && start <= now + 1);
    double cpu = sample_value(text, "process_cpu_seconds_total");
    assert_true(cpu >= 0 && cpu < 3600);
    assert_int_equal(count_substr(text, "# TYPE process_open_fds gauge\n"), 1);
    assert_non_null(strstr(text, "# HELP process_cpu_seconds_total Total user and system CPU "
                                 "time spent in seconds.\n# TYPE process_cpu_seconds_total "
                                 "counter\n"));
    free(text);
    text = render(r, WV_METRICS_OPENMETRICS);
    assert_non_null(strstr(text, "# TYPE process_cpu_seconds counter\n"
                                 "# UNIT process_cpu_seconds seconds\n"));
    assert_non_null(strstr(text, "# UNIT process_resident_memory_bytes bytes\n"));
    free(text);
    wv_metrics_free(r);
}

static void test_default_registry_is_shared_and_has_the_process_metrics(void **state)
{
    wv_metrics *d = wv_metrics_default();
    assert_non_null(d);
    assert_ptr_equal(wv_metrics_default(), d);
    wv_metric *m = reg(NULL, WV_METRIC_COUNTER, "test_default_total", "In the default.", NULL);
    wv_counter_inc(get(m, NULL));
    wv_metrics_free(d); /* ignored */
    wv_metrics_free(NULL);
    char *text = render(NULL, WV_METRICS_PROMETHEUS);
    assert_true(strncmp(text, "# HELP process_cpu_seconds_total ", 33) == 0);
    assert_true(sample_value(text, "test_default_total") == 1);
    assert_true(sample_value(text, "process_open_fds") > 0);
    free(text);
}

/* ------------------------------------------------------------ negotiation */

static void expect_format(const char *accept, wv_metrics_format want)
{
    const char *ct = NULL;
    wv_str a = accept ? (wv_str){accept, strlen(accept)} : (wv_str){NULL, 0};
    wv_metrics_format got = wv_metrics_negotiate(a, &ct);
    if (got != want)
        fail_msg("Accept \"%s\": got format %d, want %d", accept ? accept : "(none)", (int)got,
                 (int)want);
    assert_string_equal(ct, want == WV_METRICS_OPENMETRICS
                                ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
                                : "text/plain; version=0.0.4; charset=utf-8");
}

static void test_accept_header_picks_openmetrics_only_when_asked_for(void **state)
{
    expect_format(NULL, WV_METRICS_PROMETHEUS);
    expect_format("", WV_METRICS_PROMETHEUS);
    expect_format("*/*", WV_METRICS_PROMETHEUS);
    expect_format("text/plain", WV_METRICS_PROMETHEUS);
    expect_format("text/plain;version=0.0.4;q=0.5,*/*;q=0.1", WV_METRICS_PROMETHEUS);
    expect_format("application/openmetrics-text", WV_METRICS_OPENMETRICS);
    /* what Prometheus 2.x sends */
    expect_format("application/openmetrics-text;version=1.0.0,application/openmetrics-text;"
                  "version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
                  WV_METRICS_OPENMETRICS);
    expect_format("Application/OpenMetrics-Text; version=1.0.0; charset=utf-8",
                  WV_METRICS_OPENMETRICS);
    expect_format("text/html, application/openmetrics-text ; q=0.2", WV_METRICS_OPENMETRICS);
    expect_format("application/openmetrics-text;q=0", WV_METRICS_PROMETHEUS);
    expect_format("application/openmetrics-text; q=0.000", WV_METRICS_PROMETHEUS);
    expect_format("text/plain;q=1, application/openmetrics-text;q=0.5", WV_METRICS_PROMETHEUS);
    expect_format("application/json, application/openmetrics-textual", WV_METRICS_PROMETHEUS);
    assert_int_equal(wv_metrics_negotiate(WV_STR("application/openmetrics-text"), NULL),
                     WV_METRICS_OPENMETRICS);
}

/* ------------------------------------------------------------ render errors */

static void test_render_reports_a_full_buffer_and_a_bad_format(void **state)
{
    wv_metrics *r = wv_metrics_new();
    wv_metric *m = reg(r, WV_METRIC_COUNTER, "big_total", "", "i");
    char label[16];
    for (int i = 0; i < 100; i++) {
        snprintf(label, sizeof label, "%d", i);
        GET(m, label);
    }
    wv_buf b = {.limit = 256};
    assert_int_equal(wv_metrics_render(r, WV_METRICS_PROMETHEUS, &b), -ENOMEM);
    assert_true(b.n <= 256);
    wv_buf_free(&b);
    assert_int_equal(wv_metrics_render(r, (wv_metrics_format)7, &b), -EINVAL);
    assert_int_equal(wv_metrics_render(r, WV_METRICS_PROMETHEUS, NULL), -EINVAL);
    wv_metrics_free(r);
}

static void test_render_appends_to_what_the_buffer_holds(void **state)
{
    wv_metrics *r = wv_metrics_new();
    reg(r, WV_METRIC_GAUGE, "g", "", NULL);
    wv_buf b = {0};
    wv_buf_puts(&b, "HTTP body: ");
    assert_int_equal(wv_metrics_render(r, WV_METRICS_PROMETHEUS, &b), 0);
    wv_buf_append(&b, "", 1);
    assert_string_equal(b.p, "HTTP body: # TYPE g gauge\ng 0\n");
    wv_buf_free(&b);
    wv_metrics_free(r);
}

/* ------------------------------------------------------------ promtool */

static void test_promtool_accepts_the_exposition_when_installed(void **state)
{
    if (system("command -v promtool >/dev/null 2>&1") != 0)
        skip();
    wv_metrics *r = wv_metrics_new();
    assert_int_equal(wv_metrics_add_process_collector(r), 0);
    wv_metric *m = reg(r, WV_METRIC_COUNTER, "http_requests_total", "Requests.", "method,route");
    wv_counter_inc(GET(m, "GET", "/a\"b\\c\nd"));
    wv_histogram_observe(
        get(reg(r, WV_METRIC_HISTOGRAM, "http_request_duration_seconds", "Latency.", NULL), NULL),
        0.3);
    char path[] = "/tmp/weave-metrics-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    char *text = render(r, WV_METRICS_PROMETHEUS);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    free(text);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    int rc = system(cmd);
    unlink(path);
    assert_int_equal(rc, 0);
    wv_metrics_free(r);
}

int main(void)
{
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter_without_labels_in_text_format),
        cmocka_unit_test(test_counter_without_labels_in_openmetrics),
        cmocka_unit_test(test_counter_named_without_total_gets_total_samples),
        cmocka_unit_test(test_counter_with_labels_lists_series_in_creation_order),
        cmocka_unit_test(test_counter_add_keeps_fractions_and_exact_large_integers),
        cmocka_unit_test(test_counter_add_rejects_negative_and_nan),
        cmocka_unit_test(test_counter_set_makes_it_read_the_value),
        cmocka_unit_test(test_gauge_with_and_without_labels_in_both_formats),
        cmocka_unit_test(test_gauge_can_hold_nan_and_infinities),
        cmocka_unit_test(test_label_less_family_is_exposed_as_zero_before_any_update),
        cmocka_unit_test(test_labelled_family_without_series_writes_only_its_metadata),
        cmocka_unit_test(test_empty_registry_renders_nothing_or_just_eof),
        cmocka_unit_test(test_histogram_with_default_buckets_in_both_formats),
        cmocka_unit_test(test_histogram_with_labels_and_custom_buckets),
        cmocka_unit_test(test_histogram_values_just_past_a_bound_go_to_the_next_bucket),
        cmocka_unit_test(test_histogram_nan_counts_in_inf_bucket_and_makes_the_sum_nan),
        cmocka_unit_test(test_histogram_with_negative_bounds_has_no_sum_in_openmetrics),
        cmocka_unit_test(test_label_values_escape_backslash_quote_and_newline),
        cmocka_unit_test(test_help_escapes_backslash_and_newline_and_quote_in_openmetrics),
        cmocka_unit_test(test_empty_label_values_and_utf8_are_written_as_given),
        cmocka_unit_test(test_sample_values_are_formatted_like_the_go_client_with_integers_in_full),
        cmocka_unit_test(test_le_values_are_go_style_in_text_and_canonical_in_openmetrics),
        cmocka_unit_test(test_registering_the_same_definition_again_returns_the_family),
        cmocka_unit_test(test_conflicting_registrations_fail_with_eexist),
        cmocka_unit_test(test_invalid_names_labels_units_and_buckets_are_rejected),
        cmocka_unit_test(test_series_resolve_from_string_slices_and_reject_missing_values),
        cmocka_unit_test(test_thousands_of_series_keep_their_handles_and_creation_order),
        cmocka_unit_test(test_label_sets_past_the_cap_fail_with_e2big_and_updates_go_nowhere),
        cmocka_unit_test(test_default_cap_is_10000_label_sets),
        cmocka_unit_test(test_updates_of_the_wrong_type_do_nothing),
        cmocka_unit_test(test_updates_from_two_shards_sum_exactly),
        cmocka_unit_test(test_updates_from_plain_threads_sum_exactly),
        cmocka_unit_test(test_threads_past_the_maximum_share_an_atomic_copy_and_sum_exactly),
        cmocka_unit_test(test_a_finished_threads_cells_go_to_the_next_thread_with_their_values),
        cmocka_unit_test(test_a_freed_registrys_cells_come_back_zeroed),
        cmocka_unit_test(test_scrape_on_another_thread_while_shards_update_is_safe_and_exact),
        cmocka_unit_test(test_gauge_set_wins_over_what_every_shard_added),
        cmocka_unit_test(test_collectors_run_before_every_render_on_the_scraping_thread),
        cmocka_unit_test(test_process_collector_reports_plausible_values),
        cmocka_unit_test(test_default_registry_is_shared_and_has_the_process_metrics),
        cmocka_unit_test(test_accept_header_picks_openmetrics_only_when_asked_for),
        cmocka_unit_test(test_render_reports_a_full_buffer_and_a_bad_format),
        cmocka_unit_test(test_render_appends_to_what_the_buffer_holds),
        cmocka_unit_test(test_promtool_accepts_the_exposition_when_installed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
