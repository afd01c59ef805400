/*
 * The default number of shards: the CPUs the process may use, capped by its
 * cgroup's CPU quota (src/rt/cpus.c), read from fake cgroup trees made in a
 * temporary directory (cgroup v2's cpu.max and v1's cpu.cfs_quota_us).
 */
#include "harness.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rt/rt_internal.h"

static char root[] = "/tmp/weave-cpus-XXXXXX";

/* Write text to root/rel, making its directories. */
static void put(const char *rel, const char *text)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0755);
            *p = '/';
        }
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int limit(const char *proc_cgroup_text)
{
    put("proc-cgroup", proc_cgroup_text);
    char sysfs[512], proc[512];
    snprintf(sysfs, sizeof sysfs, "%s/sys", root);
    snprintf(proc, sizeof proc, "%s/proc-cgroup", root);
    return wv__cgroup_cpu_limit(sysfs, proc);
}

static void test_cpus_cgroup_v2_quota_rounds_up_and_the_tightest_ancestor_wins(void **state)
{
    (void)state;
    put("sys/kubepods/cpu.max", "max 100000\n");
    put("sys/kubepods/pod1/cpu.max", "250000 100000\n");
    put("sys/kubepods/pod1/ctr/cpu.max", "max 100000\n");
    assert_int_equal(limit("0::/kubepods/pod1/ctr\n"), 3); /* 2.5 CPUs: 3 shards */
    put("sys/kubepods/cpu.max", "100000 100000\n");
    assert_int_equal(limit("0::/kubepods/pod1/ctr\n"), 1);
    /* inside a cgroup namespace the container's own cgroup is the root */
    put("sys/cpu.max", "200000 100000\n");
    assert_int_equal(limit("0::/\n"), 2);
    put("sys/cpu.max", "max 100000\n");
    assert_int_equal(limit("0::/\n"), 0);
}

static void test_cpus_cgroup_v1_cfs_quota(void **state)
{
    (void)state;
    put("sys/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "150000\n");
    put("sys/cpu,cpuacct/docker/abc/cpu.cfs_period_us", "100000\n");
    assert_int_equal(limit("12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n"), 2);
    put("sys/cpu,cpuacct/docker/abc/cpu.cfs_quota_us", "-1\n");
    assert_int_equal(limit("4:cpu,cpuacct:/docker/abc\n"), 0);
    /* the hierarchy mounted as "cpu" only */
    put("sys/cpu/cpu.cfs_quota_us", "400000\n");
    put("sys/cpu/cpu.cfs_period_us", "100000\n");
    assert_int_equal(limit("1:cpu:/\n"), 4);
    /* cpuacct alone is not the cpu controller */
    assert_int_equal(limit("3:cpuacct:/\n"), 0);
}

static void test_cpus_nothing_readable_is_no_limit(void **state)
{
    (void)state;
    assert_int_equal(limit("0::/no/such/group\n"), 0);
    put("sys/bad/cpu.max", "lots\n");
    assert_int_equal(limit("0::/bad\n"), 0);
    put("sys/zero/cpu.max", "0 100000\n");
    assert_int_equal(limit("0::/zero\n"), 0);
    assert_int_equal(limit("garbage without colons\n\n"), 0);
    assert_int_equal(wv__cgroup_cpu_limit("/nonexistent", "/nonexistent/cgroup"), 0);
    /* the real count: at least 1, at most what the machine has */
    int n = wv__cpu_count();
    assert_true(n >= 1 && n <= sysconf(_SC_NPROCESSORS_CONF));
}

int main(void)
{
    harness_init();
    if (!mkdtemp(root))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cpus_cgroup_v2_quota_rounds_up_and_the_tightest_ancestor_wins),
        cmocka_unit_test(test_cpus_cgroup_v1_cfs_quota),
        cmocka_unit_test(test_cpus_nothing_readable_is_no_limit),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0)
        rc = rc ? rc : 1;
    return rc;
}
