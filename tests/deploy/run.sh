#!/usr/bin/env bash
# The deployment files, tested as far as one machine allows (run by
# `make test` through scripts/test.sh; deploy/README.md says what only a real
# cluster can show):
#   test_image.sh       builds the Dockerfile with podman, runs and drains it
#   test_k8s.sh         deploy/k8s against the Kubernetes API schemas and the
#                       image built above (its inspect output, its --help)
#   test_pipelines.sh   the GitHub Actions and GitLab CI pipelines
#   test_monitoring.sh  Prometheus alert rules (promtool), Grafana
#                       provisioning, compose.yaml
# Each prints "N passed, M failed" last; so does this script, summed.
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 1
export BUILD_DIR=${BUILD_DIR:-build/release}
export CHAPTER13_BIN=${CHAPTER13_BIN:-$BUILD_DIR/chapter13}
export IMAGE_INSPECT_JSON=build/deploy/image-inspect.json
passed=0
failed=0
bad_scripts=0
rm -f "$IMAGE_INSPECT_JSON"
for t in test_image.sh test_k8s.sh test_pipelines.sh test_monitoring.sh; do
    t=tests/deploy/$t
    [ -x "$t" ] || continue
    echo "--- $t"
    out=$("$t" 2>&1)
    rc=$?
    echo "$out"
    counts=$(echo "$out" | sed -n 's/^\([0-9]\{1,\}\) passed, \([0-9]\{1,\}\) failed$/\1 \2/p' | tail -n 1)
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
        [ -n "$counts" ] && [ "${counts#* }" = 0 ] && failed=$((failed + 1)) # died after its checks
    fi
done
echo "deploy: $passed passed, $failed failed"
[ "$bad_scripts" -eq 0 ]
