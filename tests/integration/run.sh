#!/usr/bin/env bash
# Integration tests: each tests/integration/test_*.py runs against real
# processes (the examples, and later the servers weave talks to) on loopback.
# Run by `make test` after the unit tests; prints "N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/../.."
export BUILD_DIR=${BUILD_DIR:-build/release}
passed=0
failed=0
for t in tests/integration/test_*.py; do
    echo "--- $t"
    if /usr/bin/python3 "$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAILED: $t"
    fi
done
echo "integration: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
