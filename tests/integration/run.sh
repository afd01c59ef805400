#!/usr/bin/env bash
# Integration tests: each tests/integration/test_*.py runs against real
# processes (the examples, the HTTP test server, and later the servers weave
# talks to) on loopback. Run by `make test` after the unit tests. A script
# that prints "N passed, M failed" counts as N + M tests, any other as one;
# the last line sums them all.
set -uo pipefail
cd "$(dirname "$0")/../.."
export BUILD_DIR=${BUILD_DIR:-build/release}
passed=0
failed=0
bad_scripts=0
for t in tests/integration/test_*.py; do
    echo "--- $t"
    out=$(/usr/bin/python3 "$t" 2>&1)
    rc=$?
    echo "$out"
    counts=$(echo "$out" | sed -n 's/^\([A-Za-z_.]*: \)\{0,1\}\([0-9]\{1,\}\) passed, \([0-9]\{1,\}\) failed.*$/\2 \3/p' | tail -n 1)
    if [ -n "$counts" ]; then
        passed=$((passed + ${counts% *}))
        failed=$((failed + ${counts#* }))
    elif [ $rc -eq 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
    if [ $rc -ne 0 ]; then
        bad_scripts=$((bad_scripts + 1))
        echo "FAILED: $t"
        [ -n "$counts" ] && [ "${counts#* }" = 0 ] && failed=$((failed + 1)) # died after its tests
    fi
done
echo "integration: $passed passed, $failed failed"
[ "$bad_scripts" -eq 0 ]
