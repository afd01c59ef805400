#!/usr/bin/env bash
# The browser test of the chapter 13 service (run by `make test` through
# scripts/test.sh): builds the page, starts ${BUILD_DIR:-build/release}/chapter13
# on a free port with ASYNC_DELAY_MS=300, drives Debian's headless Chromium
# with playwright-core (tests/e2e/chapter13.test.mjs), then stops the service
# with SIGTERM and expects exit 0. Then a second instance over HTTPS, with a
# test CA's certificate made here (tests/make_certs.sh): the page and its API
# over HTTP/2, its WebSockets over HTTP/1.1 (tests/e2e/chapter13-h2.test.mjs).
# The service stores its files (§13.7) in an s3rver started here
# (scripts/s3_test_server.sh), and runs its tasks (§13.8, --worker) on a
# redis-server started here (scripts/redis_test_server.sh).
#   UPDATE_SCREENSHOT=1   also copy build/e2e/chapter13.png to docs/screenshot.png
#   CHROMIUM=PATH         another Chromium binary (default /usr/bin/chromium)
# Prints one line per check; the last line is "N passed, M failed".
set -euo pipefail

cd "$(dirname "$0")/../.."
E2E=tests/e2e
OUT=build/e2e
BIN=${BUILD_DIR:-build/release}/chapter13
WEB_DIST=examples/chapter13/web/dist
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
export ASYNC_DELAY_MS=${ASYNC_DELAY_MS:-300}

passed=0
failed=0
service_pid=""
s3_started=""
redis_started=""
started=$(date +%s%N)

finish()
{
    local rc=$?
    if [ -n "$service_pid" ] && kill -0 "$service_pid" 2>/dev/null; then
        kill -KILL "$service_pid" 2>/dev/null || true
    fi
    [ -z "$s3_started" ] || bash scripts/s3_test_server.sh stop "$OUT/s3" >/dev/null 2>&1 || true
    [ -z "$redis_started" ] || bash scripts/redis_test_server.sh stop "$OUT/redis" >/dev/null 2>&1 || true
    [ $rc -eq 0 ] || [ $failed -gt 0 ] || failed=1
    echo "e2e: $(((($(date +%s%N) - started) / 1000000))) ms; logs and screenshots in $OUT/"
    echo "$passed passed, $failed failed"
    [ $failed -eq 0 ] && exit 0 || exit 1
}
trap finish EXIT

die()
{
    echo "FAIL - $*"
    failed=$((failed + 1))
    exit 1
}

# -- prerequisites: a clear word on what is missing
[ -x "$CHROMIUM" ] || die "$CHROMIUM not found: \`scripts/deps.sh test\` installs it (Debian package chromium)"
command -v node >/dev/null 2>&1 || die "node not found: \`scripts/deps.sh\` installs Debian's nodejs and npm"
node_major=$(node -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 20 ] || die "node $(node --version) is too old: playwright-core needs Node.js 20 or newer"
[ -x "$BIN" ] || die "$BIN not found: build it first (\`make build\`, or set BUILD_DIR)"

mkdir -p "$OUT"
rm -f "$OUT"/*.png

bash scripts/build_web.sh || die "scripts/build_web.sh failed"

installed=$E2E/node_modules/.package-lock.json
if [ ! -f "$installed" ] || [ "$E2E/package-lock.json" -nt "$installed" ] || [ "$E2E/package.json" -nt "$installed" ]; then
    echo "e2e: npm ci in $E2E"
    (cd "$E2E" && npm ci --no-audit --no-fund --loglevel=error) || die "npm ci failed in $E2E"
    touch "$installed"
fi

# -- s3rver for the file card (§13.7), on a free port, with a fresh bucket
s3_port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rm -rf "$OUT/s3"
export S3_BUCKET=e2e-files AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_REGION=us-east-1
S3_ENDPOINT=$(bash scripts/s3_test_server.sh start "$OUT/s3" "$s3_port" "$S3_BUCKET") ||
    die "scripts/s3_test_server.sh could not start s3rver"
export S3_ENDPOINT
s3_started=1
echo "ok - s3rver at $S3_ENDPOINT, bucket $S3_BUCKET"
passed=$((passed + 1))

# -- redis-server for the task card (§13.8): the broker and result backend
redis_port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
rm -rf "$OUT/redis"
TASKS_URL=$(bash scripts/redis_test_server.sh start "$OUT/redis" "$redis_port")/0 ||
    die "scripts/redis_test_server.sh could not start redis-server"
export TASKS_URL WORKER=true
redis_started=1
echo "ok - redis-server at $TASKS_URL for the tasks, with the service's own worker"
passed=$((passed + 1))

# start_service LOG ARGS...: the service on any free port, with a fresh list
# of users; it prints "listening on http(s)://127.0.0.1:N". Sets service_pid
# and port.
start_service()
{
    local log=$1 db=${1%.log}-users.db scheme
    shift
    rm -f "$db" "$db-wal" "$db-shm"
    "$BIN" --port 0 --web-dir "$WEB_DIST" --database-url "sqlite://$db" "$@" >"$log" 2>&1 &
    service_pid=$!
    port=""
    for _ in $(seq 1 100); do
        port=$(sed -n 's#^listening on https\{0,1\}://127\.0\.0\.1:\([0-9][0-9]*\).*#\1#p' "$log" | head -n 1)
        [ -n "$port" ] && break
        kill -0 "$service_pid" 2>/dev/null || break
        sleep 0.1
    done
    if [ -z "$port" ]; then
        sed 's/^/  | /' "$log"
        die "$BIN $* did not print \"listening on http(s)://127.0.0.1:N\" within 10 s"
    fi
    scheme=$(sed -n 's#^listening on \(https\{0,1\}\)://.*#\1#p' "$log" | head -n 1)
    echo "ok - $BIN $* listening on $scheme port $port (ASYNC_DELAY_MS=$ASYNC_DELAY_MS)"
    passed=$((passed + 1))
}

# run_browser NAME [VAR=VALUE...]: node $E2E/NAME.test.mjs with those
# variables, its lines shown and its "browser: N passed, M failed" counted.
run_browser()
{
    local name=$1 rc=0 counts
    shift
    env CHROMIUM="$CHROMIUM" "$@" node "$E2E/$name.test.mjs" 2>"$OUT/$name.node-stderr.log" |
        tee "$OUT/$name.browser.log" || rc=$?
    counts=$(sed -n 's/^browser: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p' "$OUT/$name.browser.log" | tail -n 1)
    if [ -n "$counts" ]; then
        passed=$((passed + ${counts% *}))
        failed=$((failed + ${counts#* }))
        [ $rc -eq 0 ] || [ "${counts#* }" -ne 0 ] || {
            echo "FAIL - $name.test.mjs exited $rc"
            failed=$((failed + 1))
        }
    else
        sed 's/^/  | /' "$OUT/$name.node-stderr.log"
        echo "FAIL - $name.test.mjs broke (exit $rc) before its summary"
        failed=$((failed + 1))
    fi
}

# stop_service LOG: SIGTERM, a graceful stop, exit status 0
stop_service()
{
    local stop_rc=""
    kill -TERM "$service_pid"
    for _ in $(seq 1 100); do
        if ! kill -0 "$service_pid" 2>/dev/null; then
            stop_rc=0
            wait "$service_pid" || stop_rc=$?
            break
        fi
        sleep 0.1
    done
    if [ "$stop_rc" = 0 ]; then
        echo "ok - the service exited 0 on SIGTERM"
        passed=$((passed + 1))
    elif [ -n "$stop_rc" ]; then
        echo "FAIL - the service exited $stop_rc on SIGTERM (log: $1)"
        failed=$((failed + 1))
    else
        echo "FAIL - the service was still running 10 s after SIGTERM"
        failed=$((failed + 1))
    fi
    service_pid=""
}

# -- plain HTTP: the browser checks (chapter13.test.mjs)
log=$OUT/chapter13.log
start_service "$log"
run_browser chapter13 BASE_URL="http://127.0.0.1:$port" SCREENSHOT_DIR="$OUT"
stop_service "$log"

# -- HTTPS with a test CA's certificate (tests/make_certs.sh): the page over
# HTTP/2 by ALPN, its WebSockets over HTTP/1.1 (chapter13-h2.test.mjs). The
# access log says which version each request came in.
certs=$OUT/certs
rm -rf "$certs"
bash tests/make_certs.sh "$certs" || die "tests/make_certs.sh failed"
log=$OUT/chapter13-h2.log
start_service "$log" --tls-cert "$certs/server.pem" --tls-key "$certs/server.key" --access-log common
run_browser chapter13-h2 BASE_URL="https://localhost:$port" TLS_CERT="$certs/server.pem" \
    CA_FILE="$certs/ca.pem" NODE_EXTRA_CA_CERTS="$certs/ca.pem"
stop_service "$log"
# the service's own account: the script over HTTP/2, the WebSockets HTTP/1.1 upgrades
if grep -q '"GET /app\.js[^ ]* HTTP/2\.0" 200 ' "$log" &&
    grep -q '"GET /ws/chat HTTP/1\.1" 101 ' "$log" &&
    ! grep -q '"GET /ws[^ ]* HTTP/2\.0"' "$log"; then
    echo "ok - the service logged GET /app.js over HTTP/2.0 and the WebSocket upgrades over HTTP/1.1"
    passed=$((passed + 1))
else
    echo "FAIL - the access log ($log) lacks GET /app.js HTTP/2.0 200 or GET /ws/chat HTTP/1.1 101"
    failed=$((failed + 1))
fi

if [ "${UPDATE_SCREENSHOT:-0}" = 1 ] && [ $failed -eq 0 ] && [ -f "$OUT/chapter13.png" ]; then
    mkdir -p docs
    cp "$OUT/chapter13.png" docs/screenshot.png
    echo "e2e: copied $OUT/chapter13.png to docs/screenshot.png"
fi
