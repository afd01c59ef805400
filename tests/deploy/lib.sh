# What the deploy tests share (sourced by tests/deploy/test_*.sh): one line
# per check, "PASS - what" or "FAIL - what: why", counted in $passed and
# $failed for the "N passed, M failed" line each script ends with.
# shellcheck shell=bash

passed=0
failed=0

# pass WHAT
pass()
{
    echo "PASS - $1"
    passed=$((passed + 1))
}

# fail WHAT [WHY]
fail()
{
    echo "FAIL - $1${2:+: $2}"
    failed=$((failed + 1))
}

# check WHAT COMMAND...: PASS if the command succeeds
check()
{
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
