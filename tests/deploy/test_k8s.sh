#!/usr/bin/env bash
# The Kubernetes manifests (deploy/k8s), checked offline: each kustomization
# (base, overlays/dev, overlays/prod) rendered by `kubectl kustomize` when a
# kubectl with kustomize 5 is installed and always by a small built-in
# renderer (tests/deploy/k8s/render.mjs), the two required to agree; every
# rendered object validated against the Kubernetes API schemas
# (kubernetes-models) or the Prometheus operator's (ServiceMonitor), plus a
# check for unknown (misspelt) fields, which the schemas let through; then
# the consistency the schemas cannot see: probes, ports, user, selectors,
# grace period against the service's drain, and the image's Dockerfile.
# Every validator and check is also run on broken copies, which must fail.
#
#   CHAPTER13_BIN=PATH       the binary whose `--help` lists the variables the
#                            ConfigMap may set (default build/release/chapter13;
#                            skipped with a note when absent)
#   IMAGE_INSPECT_JSON=FILE  `podman image inspect weave-chapter13` output: the
#                            built image checked as well as the Dockerfile
#   KUBECTL=PATH             another kubectl (default: kubectl on PATH)
#
# Prints one line per check (PASS, FAIL, SKIP with the reason); the last line
# is "N passed, M failed". Exits 0 iff nothing failed.
set -euo pipefail

cd "$(dirname "$0")/../.."
DIR=tests/deploy/k8s

no_run()
{
    echo "FAIL - $*"
    echo "0 passed, 1 failed"
    exit 1
}

command -v node >/dev/null 2>&1 || no_run "node not found: \`scripts/deps.sh\` installs Debian's nodejs and npm"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || no_run "node $(node --version) is too old: the checks need Node.js 20 or newer"

installed=$DIR/node_modules/.package-lock.json
if [ ! -f "$installed" ] || [ "$DIR/package-lock.json" -nt "$installed" ] || [ "$DIR/package.json" -nt "$installed" ]; then
    echo "k8s: npm ci in $DIR"
    (cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error >&2) || no_run "npm ci failed in $DIR"
    touch "$installed"
fi

exec node "$DIR/check.mjs" .
