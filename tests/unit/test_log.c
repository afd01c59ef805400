/*
 * Logging and error detail: level filtering (wv_log_level_set and the
 * WEAVE_LOG environment variable), the line format ("<UTC time> LEVEL
 * [shard N] text"), whole lines from concurrent shards, wv_fail/wv_errmsg
 * (fiber-local) and wv_strerror.
 *
 * stderr is captured by pointing fd 2 at a temporary file. WEAVE_LOG is
 * tested by re-running this executable with the variable set (argv[1] =
 * "--env-child"), so it does not matter when the library reads it.
 */
#include "harness.h"

#include <regex.h>
#include <time.h>

/* ------------------------------------------------------------ capture */

typedef struct capture {
    int saved;
    FILE *file;
} capture;

static void capture_start(capture *c)
{
    fflush(stderr);
    c->file = tmpfile();
    assert_non_null(c->file);
    c->saved = dup(2);
    assert_true(c->saved >= 0);
    assert_true(dup2(fileno(c->file), 2) >= 0);
}

/* Restore stderr; returns what was written (free() it). */
static char *capture_end(capture *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    fseek(c->file, 0, SEEK_END);
    long size = ftell(c->file);
    rewind(c->file);
    char *text = calloc(1, (size_t)size + 1);
    assert_non_null(text);
    size_t got = fread(text, 1, (size_t)size, c->file);
    text[got] = '\0';
    fclose(c->file);
    return text;
}

static int run_captured(int shards, wv_fn *fn, void *arg, char **out)
{
    capture c;
    capture_start(&c);
    int r = run_in_rt(shards, fn, arg);
    *out = capture_end(&c);
    return r;
}

/* The line of `text` containing `needle` (copied into line), or false. */
static bool find_line(const char *text, const char *needle, char *line, size_t cap)
{
    const char *hit = strstr(text, needle);
    if (hit == NULL)
        return false;
    const char *start = hit;
    while (start > text && start[-1] != '\n')
        start--;
    const char *end = strchr(hit, '\n');
    if (end == NULL)
        end = hit + strlen(hit);
    size_t n = (size_t)(end - start) < cap - 1 ? (size_t)(end - start) : cap - 1;
    memcpy(line, start, n);
    line[n] = '\0';
    return true;
}

static bool matches(const char *line, const char *pattern)
{
    regex_t re;
    if (regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB) != 0)
        return false;
    bool ok = regexec(&re, line, 0, NULL, 0) == 0;
    regfree(&re);
    return ok;
}

#define TIMESTAMP_RE "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "

/* ------------------------------------------------------------ levels */

static int log_four_levels(void *arg)
{
    const char *tag = arg;
    wv_debug("%s-debug", tag);
    wv_info("%s-info", tag);
    wv_warn("%s-warn", tag);
    wv_error("%s-error", tag);
    return 0;
}

static void test_log_level_set_hides_lower_levels(void **state)
{
    wv_log_level_set(WV_LOG_WARN);
    assert_int_equal(wv_log_level_get(), WV_LOG_WARN);
    char *out;
    assert_int_equal(run_captured(1, log_four_levels, "lvl", &out), 0);
    wv_log_level_set(WV_LOG_INFO);
    bool ok = !strstr(out, "lvl-debug") && !strstr(out, "lvl-info") && strstr(out, "lvl-warn") &&
              strstr(out, "lvl-error");
    if (!ok)
        print_error("captured:\n%s\n", out);
    free(out);
    assert_true(ok);
}

static void test_log_level_debug_shows_every_level(void **state)
{
    wv_log_level_set(WV_LOG_DEBUG);
    char *out;
    assert_int_equal(run_captured(1, log_four_levels, "all", &out), 0);
    wv_log_level_set(WV_LOG_INFO);
    bool ok = strstr(out, "all-debug") && strstr(out, "all-info") && strstr(out, "all-warn") &&
              strstr(out, "all-error");
    if (!ok)
        print_error("captured:\n%s\n", out);
    free(out);
    assert_true(ok);
}

static void test_log_level_off_silences_every_level(void **state)
{
    wv_log_level_set(WV_LOG_OFF);
    assert_int_equal(wv_log_level_get(), WV_LOG_OFF);
    char *out;
    assert_int_equal(run_captured(1, log_four_levels, "off", &out), 0);
    wv_log_level_set(WV_LOG_INFO);
    bool ok = strstr(out, "off-") == NULL;
    if (!ok)
        print_error("captured:\n%s\n", out);
    free(out);
    assert_true(ok);
}

/* ------------------------------------------------------------ format */

static int log_on_shard_1(void *arg)
{
    wv_warn("format-probe %d %s", 42, "x");
    wv_error("format-probe-error");
    wv_info("format-probe-info");
    wv_debug("format-probe-debug");
    return 0;
}

static int call_shard_1(void *arg)
{
    return wv_shard_call(1, log_on_shard_1, NULL);
}

static void test_log_line_has_utc_time_level_shard_and_text(void **state)
{
    wv_log_level_set(WV_LOG_DEBUG);
    char *out;
    assert_int_equal(run_captured(2, call_shard_1, NULL, &out), 0);
    wv_log_level_set(WV_LOG_INFO);
    static const struct {
        const char *needle, *pattern;
    } want[] = {
        {"format-probe 42", TIMESTAMP_RE "WARN +\\[shard 1\\] format-probe 42 x$"},
        {"format-probe-error", TIMESTAMP_RE "ERROR +\\[shard 1\\] format-probe-error$"},
        {"format-probe-info", TIMESTAMP_RE "INFO +\\[shard 1\\] format-probe-info$"},
        {"format-probe-debug", TIMESTAMP_RE "DEBUG +\\[shard 1\\] format-probe-debug$"},
    };
    for (size_t i = 0; i < ARRAY_LEN(want); i++) {
        char line[512];
        bool found = find_line(out, want[i].needle, line, sizeof(line));
        bool ok = found && matches(line, want[i].pattern);
        if (!ok) {
            print_error("no line matching /%s/ in:\n%s\n", want[i].pattern, out);
            free(out);
            fail();
        }
    }
    free(out);
}

static int log_time_probe(void *arg)
{
    wv_warn("time-probe");
    return 0;
}

static void test_log_timestamp_is_the_current_utc_time(void **state)
{
    char *out;
    time_t before = time(NULL);
    assert_int_equal(run_captured(1, log_time_probe, NULL, &out), 0);
    time_t after = time(NULL);
    char line[512];
    bool found = find_line(out, "time-probe", line, sizeof(line));
    free(out);
    assert_true(found);
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    int ms = -1;
    assert_int_equal(sscanf(line, "%4d-%2d-%2dT%2d:%2d:%2d.%3dZ", &tm.tm_year, &tm.tm_mon,
                            &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms),
                     7);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t logged = timegm(&tm);
    assert_true(logged >= before - 1 && logged <= after + 1);
    assert_in_range(ms, 0, 999);
}

enum { LINES_PER_SHARD = 200 };

static int log_many_lines(void *arg)
{
    int me = wv_shard_id();
    for (int i = 0; i < LINES_PER_SHARD; i++) {
        wv_warn("burst shard=%d line=%d padding-padding-padding-padding-padding-padding", me, i);
        if (i % 20 == 0 && wv_yield() != 0)
            return -EIO;
    }
    return 0;
}

static int log_from_every_shard(void *arg)
{
    return wv_shard_each(log_many_lines, NULL);
}

static void test_log_lines_from_concurrent_shards_are_never_interleaved(void **state)
{
    char *out;
    assert_int_equal(run_captured(4, log_from_every_shard, NULL, &out), 0);
    regex_t re;
    assert_int_equal(regcomp(&re,
                             TIMESTAMP_RE
                             "WARN +\\[shard ([0-3])\\] burst shard=([0-3]) line=[0-9]+ "
                             "padding-padding-padding-padding-padding-padding$",
                             REG_EXTENDED),
                     0);
    int count = 0, bad = 0;
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strstr(line, "burst") == NULL && strstr(line, "padding") == NULL)
            continue; /* the runtime's own lines */
        regmatch_t m[3];
        if (regexec(&re, line, 3, m, 0) != 0 || line[m[1].rm_so] != line[m[2].rm_so]) {
            if (bad++ == 0)
                print_error("mangled line: %s\n", line);
            continue;
        }
        count++;
    }
    regfree(&re);
    free(out);
    assert_int_equal(bad, 0);
    assert_int_equal(count, 4 * LINES_PER_SHARD);
}

static void test_log_outside_the_runtime_still_writes_one_line(void **state)
{
    capture c;
    capture_start(&c);
    wv_warn("outside-probe %d", 5);
    char *out = capture_end(&c);
    char line[512];
    bool ok = find_line(out, "outside-probe 5", line, sizeof(line)) &&
              matches(line, TIMESTAMP_RE "WARN .*outside-probe 5$");
    if (!ok)
        print_error("captured:\n%s\n", out);
    free(out);
    assert_true(ok);
}

/* ------------------------------------------------------------ WEAVE_LOG */

static int env_probe(void *arg)
{
    wv_debug("env-probe-debug");
    wv_info("env-probe-info");
    wv_warn("env-probe-warn");
    wv_error("env-probe-error");
    return (int)wv_log_level_get();
}

/* The re-executed child: exit status 10 + the level it saw. */
static int env_child_main(void)
{
    wv_main_opts opts = {.shards = 1, .no_signal_handling = true};
    int r = wv_main(&opts, env_probe, NULL);
    return r >= 0 && r <= WV_LOG_OFF ? 10 + r : 1;
}

static int exec_env_child(void *arg)
{
    const char *value = arg;
    if (value != NULL)
        setenv("WEAVE_LOG", value, 1);
    else
        unsetenv("WEAVE_LOG");
    execl("/proc/self/exe", "test_log", "--env-child", (char *)NULL);
    return 127;
}

static void expect_env_level(const char *value, wv_log_level level, const char *shown)
{
    child_result *r = malloc(sizeof(*r));
    assert_non_null(r);
    assert_int_equal(run_in_child(exec_env_child, (void *)value, r), 0);
    static const char *names[] = {"debug", "info", "warn", "error"};
    bool ok = WIFEXITED(r->status) && WEXITSTATUS(r->status) == 10 + (int)level;
    for (int i = 0; i < 4; i++) {
        char needle[32];
        snprintf(needle, sizeof(needle), "env-probe-%s", names[i]);
        bool want = strchr(shown, "DIWE"[i]) != NULL;
        if ((strstr(r->err, needle) != NULL) != want)
            ok = false;
    }
    if (!ok)
        print_error("WEAVE_LOG=%s: child status 0x%x (want exit %d); stderr:\n%s\n",
                    value ? value : "(unset)", r->status, 10 + (int)level, r->err);
    free(r);
    assert_true(ok);
}

static void test_weave_log_debug_shows_every_level(void **state)
{
    expect_env_level("debug", WV_LOG_DEBUG, "DIWE");
}

static void test_weave_log_warn_hides_debug_and_info(void **state)
{
    expect_env_level("warn", WV_LOG_WARN, "WE");
}

static void test_weave_log_error_shows_only_errors(void **state)
{
    expect_env_level("error", WV_LOG_ERROR, "E");
}

static void test_weave_log_off_silences_every_level(void **state)
{
    expect_env_level("off", WV_LOG_OFF, "");
}

static void test_log_level_is_info_without_weave_log(void **state)
{
    expect_env_level(NULL, WV_LOG_INFO, "IWE");
}

/* ------------------------------------------------------------ errmsg, strerror */

static int fail_sets_errmsg(void *arg)
{
    CHECK_STR_EQ(wv_errmsg(), "");
    CHECK_EQ(wv_fail(-EPROTO, "bad frame %d", 7), -EPROTO);
    CHECK_STR_EQ(wv_errmsg(), "bad frame 7");
    CHECK_EQ(wv_fail(-ECONNRESET, "second: %s", "reset"), -ECONNRESET);
    CHECK_STR_EQ(wv_errmsg(), "second: reset");
    return 0;
}

static void test_fail_sets_errmsg_and_returns_its_error_argument(void **state)
{
    assert_int_equal(run_in_rt(1, fail_sets_errmsg, NULL), 0);
    assert_checks_passed();
}

/* Wrapping the last message in a new one, the way callers add context:
 * the whole message, not one garbled by formatting into its own source. */
static void wrap_messages(void)
{
    wv_fail(-ECONNREFUSED, "connection to server at \"127.0.0.1\", port 1 failed: Connection "
                           "refused");
    wv_fail(-ECONNREFUSED, "database postgres://nobody@127.0.0.1:1/x: %s", wv_errmsg());
    CHECK_STR_EQ(wv_errmsg(), "database postgres://nobody@127.0.0.1:1/x: connection to server at "
                              "\"127.0.0.1\", port 1 failed: Connection refused");
    wv_fail(-EINVAL, " 0): invalid literal");
    wv_fail(-EINVAL, "the body is not JSON: %s", wv_errmsg());
    CHECK_STR_EQ(wv_errmsg(), "the body is not JSON:  0): invalid literal");
    wv_fail(-EINVAL, "%s%s", wv_errmsg(), wv_errmsg());
    CHECK_STR_EQ(wv_errmsg(), "the body is not JSON:  0): invalid literalthe body is not JSON:  "
                              "0): invalid literal");
    wv_errmsg_clear();
    CHECK_STR_EQ(wv_errmsg(), "");
}

static int wrap_in_fiber(void *arg)
{
    wrap_messages();
    return 0;
}

static void test_fail_can_wrap_the_previous_errmsg_whole(void **state)
{
    assert_int_equal(run_in_rt(1, wrap_in_fiber, NULL), 0);
    wrap_messages(); /* outside a fiber: the thread's buffer */
    assert_checks_passed();
}

typedef struct errmsg_fiber {
    const char *own;
    char seen_at_start[64];
    char seen_after_yield[64];
} errmsg_fiber;

static int fail_yield_look(void *arg)
{
    errmsg_fiber *f = arg;
    snprintf(f->seen_at_start, sizeof(f->seen_at_start), "%s", wv_errmsg());
    wv_fail(-EIO, "%s", f->own);
    if (wv_yield() != 0)
        return -EIO;
    snprintf(f->seen_after_yield, sizeof(f->seen_after_yield), "%s", wv_errmsg());
    return 0;
}

static int errmsg_per_fiber(void *arg)
{
    wv_fail(-EIO, "main's message");
    errmsg_fiber a = {.own = "from A"}, b = {.own = "from B"};
    wv_group *g = wv_group_new();
    REQUIRE(g != NULL);
    CHECK_EQ(wv_group_spawn(g, fail_yield_look, &a, NULL), 0);
    CHECK_EQ(wv_group_spawn(g, fail_yield_look, &b, NULL), 0);
    CHECK_EQ(wv_group_join(g), 0);
    wv_group_free(g);
    CHECK_STR_EQ(a.seen_at_start, "");
    CHECK_STR_EQ(b.seen_at_start, "");
    CHECK_STR_EQ(a.seen_after_yield, "from A");
    CHECK_STR_EQ(b.seen_after_yield, "from B");
    CHECK_STR_EQ(wv_errmsg(), "main's message");
    return 0;
}

static void test_errmsg_belongs_to_the_fiber_that_failed(void **state)
{
    assert_int_equal(run_in_rt(1, errmsg_per_fiber, NULL), 0);
    assert_checks_passed();
}

static int long_errmsg(void *arg)
{
    enum { N = 10000 };
    char *big = malloc(N + 1);
    REQUIRE(big != NULL);
    for (int i = 0; i < N; i++)
        big[i] = (char)('a' + i % 26);
    big[N] = '\0';
    CHECK_EQ(wv_fail(-E2BIG, "%s", big), -E2BIG);
    const char *m = wv_errmsg();
    size_t len = strlen(m);
    CHECK(len > 0 && len <= N);
    CHECK(strncmp(m, big, len) == 0); /* a prefix of it */
    free(big);
    return 0;
}

static void test_errmsg_keeps_a_prefix_of_a_very_long_message(void **state)
{
    assert_int_equal(run_in_rt(1, long_errmsg, NULL), 0);
    assert_checks_passed();
}

static void test_strerror_describes_negative_errno_values(void **state)
{
    assert_string_equal(wv_strerror(-ECONNREFUSED), "Connection refused");
    assert_string_equal(wv_strerror(-ETIMEDOUT), strerror(ETIMEDOUT));
    assert_string_equal(wv_strerror(-ECANCELED), strerror(ECANCELED));
    const char *unknown = wv_strerror(-99999);
    assert_non_null(unknown);
    assert_true(strlen(unknown) > 0);
}

static void test_version_is_major_minor_patch(void **state)
{
    const char *v = wv_version();
    assert_non_null(v);
    unsigned major, minor, patch;
    char tail;
    assert_int_equal(sscanf(v, "%u.%u.%u%c", &major, &minor, &patch, &tail), 3);
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--env-child") == 0)
        return env_child_main();
    harness_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log_level_set_hides_lower_levels),
        cmocka_unit_test(test_log_level_debug_shows_every_level),
        cmocka_unit_test(test_log_level_off_silences_every_level),
        cmocka_unit_test(test_log_line_has_utc_time_level_shard_and_text),
        cmocka_unit_test(test_log_timestamp_is_the_current_utc_time),
        cmocka_unit_test(test_log_lines_from_concurrent_shards_are_never_interleaved),
        cmocka_unit_test(test_log_outside_the_runtime_still_writes_one_line),
        cmocka_unit_test(test_weave_log_debug_shows_every_level),
        cmocka_unit_test(test_weave_log_warn_hides_debug_and_info),
        cmocka_unit_test(test_weave_log_error_shows_only_errors),
        cmocka_unit_test(test_weave_log_off_silences_every_level),
        cmocka_unit_test(test_log_level_is_info_without_weave_log),
        cmocka_unit_test(test_fail_sets_errmsg_and_returns_its_error_argument),
        cmocka_unit_test(test_fail_can_wrap_the_previous_errmsg_whole),
        cmocka_unit_test(test_errmsg_belongs_to_the_fiber_that_failed),
        cmocka_unit_test(test_errmsg_keeps_a_prefix_of_a_very_long_message),
        cmocka_unit_test(test_strerror_describes_negative_errno_values),
        cmocka_unit_test(test_version_is_major_minor_patch),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
