/*
 * Running botocore as the oracle for weave's SigV4 signer
 * (tests/unit/sigv4_botocore_oracle.py, which says the format of a case),
 * for test_s3_sign.c and test_kinesis_sign.c. Header-only, after
 * harness.h: a test writes its cases to a temporary file, adds one wrong
 * signature of zeros that the oracle must catch, and reads the verdicts.
 */
#ifndef WEAVE_TESTS_UNIT_SIGV4_ORACLE_H
#define WEAVE_TESTS_UNIT_SIGV4_ORACLE_H

#include "harness.h"

typedef struct sigv4_oracle {
    char path[64];
    FILE *in; /* the cases, one a line */
    int cases;
} sigv4_oracle;

static inline void sigv4_oracle_open(sigv4_oracle *o)
{
    snprintf(o->path, sizeof o->path, "/tmp/weave-sigv4-XXXXXX");
    int fd = mkstemp(o->path);
    assert_true(fd >= 0);
    o->in = fdopen(fd, "w");
    assert_non_null(o->in);
    o->cases = 0;
}

/* Bytes as hex, "-" for none (bodies, keys). */
static inline void sigv4_put_hex(FILE *f, const void *p, size_t n)
{
    const unsigned char *b = p;
    if (n == 0)
        fputc('-', f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", b[i]);
}

/*
 * Run botocore over the cases: the count it agreed with; *bad gets those
 * it did not (the first few printed, the zero signature aside) and *last
 * (may be NULL; 8192 bytes) its last verdict. Without botocore the test
 * fails, or is skipped when the environment variable skip_var is "1".
 */
static inline int sigv4_oracle_run(sigv4_oracle *o, const char *skip_var, int *bad, char *last)
{
    assert_int_equal(fclose(o->in), 0);
    const char *src = getenv("WEAVE_SOURCE_DIR");
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/tests/unit/sigv4_botocore_oracle.py < %s",
             src ? src : ".", o->path);
    FILE *out = popen(cmd, "r");
    assert_non_null(out);
    char line[8192];
    int ok = 0;
    bool missing = false;
    *bad = 0;
    while (fgets(line, sizeof line, out)) {
        if (strncmp(line, "NO-BOTOCORE", 11) == 0)
            missing = true;
        else if (strcmp(line, "OK\n") == 0)
            ok++;
        else if ((*bad)++ < 5 && !strstr(line, "Signature=000000"))
            print_error("botocore disagrees: %s", line);
        if (last)
            snprintf(last, 8192, "%s", line);
    }
    int st = pclose(out);
    unlink(o->path);
    const char *skip = getenv(skip_var);
    if (missing && skip && strcmp(skip, "1") == 0)
        skip();
    if (missing)
        print_error("botocore is not installed: apt-get install python3-boto3 (scripts/deps.sh "
                    "test), or set %s=1\n",
                    skip_var);
    assert_false(missing);
    assert_int_equal(st, 0);
    return ok;
}

#endif
