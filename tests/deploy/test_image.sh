#!/usr/bin/env bash
# The container image, built and run here with podman (run by
# tests/deploy/run.sh, so by `make test`):
#   - makes the base image from Debian's archive when it is missing
#     (scripts/debian_base_image.sh: no registry is needed) and builds the
#     Dockerfile with `make image IMAGE_BUILD_FLAGS=--pull=never`;
#   - checks the image's configuration (non-root uid 10001, ports, stop
#     signal, health check, entry point), that its last stage has no compiler,
#     and reports its size;
#   - runs it as Kubernetes would (read-only root, writable /var/lib/weave and
#     /tmp only, every capability dropped): /healthz, /readyz, the page and
#     its script, an API call that writes to its SQLite file, /metrics on the
#     admin port, the image's own HEALTHCHECK, and the shards a 1-CPU quota
#     allows;
#   - sends SIGTERM with requests in flight: every one completes with 200 and
#     the container exits 0;
#   - runs it once more with DATABASE_URL on the tests' PostgreSQL (host
#     network): the user it creates is in PostgreSQL's table.
# Writes build/deploy/image-inspect.json (the image's configuration, for the
# Kubernetes checks) and logs to build/deploy/. Needs root, podman and runc.
#   IMAGE=NAME                the tag to build and test (localhost/weave-chapter13:test)
#   CONTAINER_RUNTIME=NAME    podman's OCI runtime (runc: crun cannot run on hosts
#                             with hybrid cgroups)
# Prints one line per check; the last line is "N passed, M failed".
set -euo pipefail

cd "$(dirname "$0")/../.."
OUT=build/deploy
IMAGE=${IMAGE:-localhost/weave-chapter13:test}
BASE=docker.io/library/debian:bookworm-slim
mkdir -p "$OUT"

# podman's defaults that do not hold everywhere: runc and the cgroupfs manager
# work on hybrid cgroup hosts and inside containers; explicit limits, because
# podman's default open-file limit may exceed the host's hard limit.
PODMAN=(podman --runtime "${CONTAINER_RUNTIME:-runc}" --cgroup-manager cgroupfs)
LIMITS=(--ulimit nofile=4096:4096 --ulimit nproc=4096:4096)
# as deploy/k8s runs it: read-only root, the two writable directories (U:
# owned by the image's user, as fsGroup does), no capabilities, no privilege
# escalation
LOCKED=(--read-only --tmpfs /tmp:rw,mode=1777
    --tmpfs /var/lib/weave:rw,mode=0750,U
    --cap-drop ALL --security-opt no-new-privileges)

containers=()
pg_dir=""
started=$(date +%s)
# shellcheck source=tests/deploy/lib.sh
. tests/deploy/lib.sh

finish()
{
    local rc=$?
    local c
    for c in "${containers[@]}"; do
        "${PODMAN[@]}" rm -f -t 0 "$c" >/dev/null 2>&1 || true
    done
    if [ -n "$pg_dir" ]; then
        scripts/pg_test_server.sh stop "$pg_dir" >/dev/null 2>&1 || true
        rm -rf "$pg_dir"
    fi
    [ $rc -eq 0 ] || [ $failed -gt 0 ] || failed=1
    echo "image: $(($(date +%s) - started)) s; logs in $OUT/"
    echo "$passed passed, $failed failed"
    [ $failed -eq 0 ] && exit 0 || exit 1
}
trap finish EXIT

die()
{
    fail "$*"
    exit 1
}

for tool in podman "${CONTAINER_RUNTIME:-runc}" debootstrap curl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (scripts/deps.sh test installs it)"
done
[ "$(id -u)" = 0 ] || die "the image test runs as root (debootstrap, podman's networking)"

# ---- build

bash scripts/debian_base_image.sh podman >"$OUT/base-image.log" 2>&1 ||
    die "the base image $BASE: $(tail -n 3 "$OUT/base-image.log")"
pass "base image $BASE present"

t0=$(date +%s)
if make --no-print-directory image IMAGE="$IMAGE" IMAGE_BUILD_FLAGS=--pull=never \
    >"$OUT/image-build.log" 2>&1; then
    pass "make image built $IMAGE in $(($(date +%s) - t0)) s"
else
    tail -n 30 "$OUT/image-build.log"
    die "make image failed (log: $OUT/image-build.log)"
fi

# ---- the image's configuration

podman image inspect "$IMAGE" >"$OUT/image-inspect.json"
config()
{
    podman image inspect --format "$1" "$IMAGE"
}
user=$(config '{{.Config.User}}')
check "runs as uid 10001, not root (User: $user)" [ "$user" = 10001:10001 ]
ports=$(config '{{range $p, $v := .Config.ExposedPorts}}{{$p}} {{end}}')
for p in 8000/tcp 50051/tcp 9100/tcp; do
    check "exposes $p" grep -qw "$p" <<<"$ports"
done
check "stops with SIGTERM" [ "$(config '{{.Config.StopSignal}}')" = SIGTERM ]
health=$(config '{{if .HealthCheck}}{{join .HealthCheck.Test " "}}{{end}}')
check "its HEALTHCHECK asks /healthz" grep -q /healthz <<<"$health"
check "its entry point is the chapter13 binary" \
    [ "$(config '{{join .Config.Entrypoint " "}}')" = /usr/local/bin/chapter13 ]
size=$(config '{{.Size}}')
base_size=$(podman image inspect --format '{{.Size}}' "$BASE")
echo "image size: $((size / 1000000)) MB ($(((size - base_size) / 1000000)) MB over $BASE)"
# the base is ~80 MB; the runtime libraries (libcurl, librdkafka, libpq and
# their dependencies) and the binary add ~45 MB. A compiler or a build tree
# left in the last stage would add hundreds.
check "the image is small: $((size / 1000000)) MB <= 200 MB" [ "$size" -le 200000000 ]
no_toolchain()
{
    "${PODMAN[@]}" run --rm "${LIMITS[@]}" --network none --entrypoint /bin/bash "$IMAGE" -c \
        'for t in cc gcc clang c++ g++ ld cmake ninja make node npm; do
             command -v "$t" && exit 1
         done
         [ ! -e /src ]' >"$OUT/toolchain.log" 2>&1
}
check "the last stage has no compiler, linker or build tree" no_toolchain

# ---- running it

# the first free port from $1
free_port()
{
    local port=$1
    while ss -ltnH "sport = :$port" | grep -q .; do port=$((port + 1)); done
    echo "$port"
}

# start NAME [podman run options...] [-- args]: start a container on the host
# network with free ports; sets PORT_HTTP and PORT_METRICS
start()
{
    local name=$1
    shift
    PORT_HTTP=$(free_port 18000)
    PORT_METRICS=$(free_port $((PORT_HTTP + 1)))
    "${PODMAN[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true
    containers+=("$name")
    # (podman logs that it cannot schedule the HEALTHCHECK without systemd;
    # `podman healthcheck run` below runs it by hand)
    "${PODMAN[@]}" run -d --name "$name" --network host "${LIMITS[@]}" "${LOCKED[@]}" \
        -e PORT="$PORT_HTTP" -e METRICS_PORT="$PORT_METRICS" -e GRPC_PORT=0 "$@" "$IMAGE" \
        >"$OUT/$name.run.log" 2>&1
}

# wait_up NAME: /healthz answers within 30 s
wait_up()
{
    local i
    for ((i = 0; i < 300; i++)); do
        if curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$PORT_HTTP/healthz" 2>/dev/null; then
            return 0
        fi
        if [ "$("${PODMAN[@]}" inspect --format '{{.State.Running}}' "$1")" != true ]; then
            "${PODMAN[@]}" logs "$1" >"$OUT/$1.log" 2>&1 || true
            return 1
        fi
        sleep 0.1
    done
    return 1
}

# status URL [curl options]: the HTTP status code
status()
{
    local url=$1
    shift
    curl -sS -o /dev/null -w '%{http_code}' --max-time 10 "$@" "$url" 2>/dev/null || true
}

# exit_code NAME: wait for the container to stop (40 s at most), print its code
exit_code()
{
    timeout 40 "${PODMAN[@]}" wait "$1" 2>/dev/null || echo "did not stop"
}

# A, the image alone: its SQLite file in /var/lib/weave, and a 1-CPU quota
start weave-image-a --cpus 1 -e ASYNC_DELAY_MS=1500 || die "podman run failed"
wait_up weave-image-a || die "the container did not answer /healthz in 30 s: $(tail -n 5 "$OUT/weave-image-a.log" 2>/dev/null)"
base="http://127.0.0.1:$PORT_HTTP"
check "GET /healthz answers 200" [ "$(status "$base/healthz")" = 200 ]
check "GET /readyz answers 200" [ "$(status "$base/readyz")" = 200 ]
page=$(curl -fsS --max-time 10 "$base/" || true)
check "GET / serves the page" grep -q '<div id="root">' <<<"$page"
script=$(sed -n 's/.*<script src="\([^"]*\)".*/\1/p' <<<"$page")
check "the page's script ($script) is served" [ "$(status "$base/${script:-app.js}")" = 200 ]
created=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' -d '{"name":"Ada"}' \
    "$base/users" || true)
id=$(sed -n 's/.*"id": *\([0-9][0-9]*\).*/\1/p' <<<"$created")
check "POST /users creates a user in the SQLite file ($created)" [ -n "$id" ]
check "GET /users/$id reads it back" grep -q '"Ada"' <<<"$(curl -fsS --max-time 10 "$base/users/${id:-0}" || true)"
check "the SQLite file is in /var/lib/weave" \
    "${PODMAN[@]}" exec weave-image-a /bin/bash -c '[ -s /var/lib/weave/chapter13.db ]'
metrics=$(curl -fsS --max-time 10 "http://127.0.0.1:$PORT_METRICS/metrics" || true)
check "/metrics on the admin port counts the requests" grep -q '^http_requests_total{' <<<"$metrics"
check "the image's HEALTHCHECK passes" "${PODMAN[@]}" healthcheck run weave-image-a
check "the process runs as uid 10001" \
    [ "$("${PODMAN[@]}" exec weave-image-a /bin/bash -c 'echo $(id -u):$(id -g)')" = 10001:10001 ]
"${PODMAN[@]}" logs weave-image-a >"$OUT/weave-image-a.log" 2>&1 || true
check "a 1-CPU quota runs 1 shard ($(grep -o '[0-9]* shards\{0,1\}' "$OUT/weave-image-a.log" | head -n 1))" \
    grep -q '· 1 shard$' "$OUT/weave-image-a.log"

# SIGTERM with requests in flight: each /async-endpoint takes 1.5 s
inflight=10
for ((i = 0; i < inflight; i++)); do
    curl -sS -o /dev/null -w '%{http_code}\n' --max-time 20 "$base/async-endpoint" \
        >"$OUT/drain-$i.status" 2>&1 &
done
sleep 0.5
"${PODMAN[@]}" kill --signal TERM weave-image-a >/dev/null
code=$(exit_code weave-image-a)
wait
ok=0
for ((i = 0; i < inflight; i++)); do
    [ "$(cat "$OUT/drain-$i.status")" = 200 ] && ok=$((ok + 1))
done
check "SIGTERM with $inflight requests in flight: $ok of them answered 200" [ "$ok" = "$inflight" ]
check "... and the container exited 0 (exit $code)" [ "$code" = 0 ]
"${PODMAN[@]}" logs weave-image-a >"$OUT/weave-image-a.log" 2>&1 || true

# B, with PostgreSQL: the tests' server (make test), else one started here
if [ -z "${WEAVE_TEST_PG_URL:-}" ]; then
    pg_dir=$(mktemp -d /tmp/weave-image-pg.XXXXXX)
    WEAVE_TEST_PG_URL=$(scripts/pg_test_server.sh start "$pg_dir" "$(free_port 15540)") ||
        die "could not start a PostgreSQL"
fi
name="image-test-$$-$RANDOM"
start weave-image-pg -e DATABASE_URL="$WEAVE_TEST_PG_URL" -e ASYNC_DELAY_MS=10 ||
    die "podman run failed"
wait_up weave-image-pg || die "the container on PostgreSQL did not answer: $(tail -n 5 "$OUT/weave-image-pg.log" 2>/dev/null)"
base="http://127.0.0.1:$PORT_HTTP"
check "on PostgreSQL: GET /readyz answers 200" [ "$(status "$base/readyz")" = 200 ]
created=$(curl -fsS --max-time 10 -H 'Content-Type: application/json' -d "{\"name\":\"$name\"}" \
    "$base/users" || true)
id=$(sed -n 's/.*"id": *\([0-9][0-9]*\).*/\1/p' <<<"$created")
rows=$(psql "$WEAVE_TEST_PG_URL" -Atqc "select count(*) from users where name = '$name'" 2>&1 || true)
check "on PostgreSQL: POST /users wrote the row PostgreSQL holds ($rows)" [ "$rows" = 1 ]
check "on PostgreSQL: DELETE /users/$id removes it" \
    [ "$(status "$base/users/${id:-0}" -X DELETE)" = 204 ]
"${PODMAN[@]}" kill --signal TERM weave-image-pg >/dev/null
code=$(exit_code weave-image-pg)
check "on PostgreSQL: SIGTERM, exit 0 (exit $code)" [ "$code" = 0 ]
"${PODMAN[@]}" logs weave-image-pg >"$OUT/weave-image-pg.log" 2>&1 || true
