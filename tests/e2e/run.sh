#!/usr/bin/env bash
# The browser test of the chapter 13 service (run by `make test` through
# scripts/test.sh): builds the page, starts ${BUILD_DIR:-build/release}/chapter13
# on a free port with ASYNC_DELAY_MS=300, drives Debian's headless Chromium
# with playwright-core (tests/e2e/chapter13.test.mjs), then stops the service
# with SIGTERM and expects exit 0. The service stores its files (§13.7) in an
# s3rver started here (scripts/s3_test_server.sh).
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
started=$(date +%s%N)

finish()
{
    local rc=$?
    if [ -n "$service_pid" ] && kill -0 "$service_pid" 2>/dev/null; then
        kill -KILL "$service_pid" 2>/dev/null || true
    fi
    [ -z "$s3_started" ] || bash scripts/s3_test_server.sh stop "$OUT/s3" >/dev/null 2>&1 || true
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

# -- the service, on any free port; it prints "listening on http://127.0.0.1:N"
log=$OUT/chapter13.log
rm -f "$OUT/users.db" "$OUT/users.db-wal" "$OUT/users.db-shm" # a fresh list of users
"$BIN" --port 0 --web-dir "$WEB_DIST" --database-url "sqlite://$OUT/users.db" >"$log" 2>&1 &
service_pid=$!
port=""
for _ in $(seq 1 100); do
    port=$(sed -n 's#^listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*#\1#p' "$log" | head -n 1)
    [ -n "$port" ] && break
    kill -0 "$service_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$port" ]; then
    sed 's/^/  | /' "$log"
    die "$BIN did not print \"listening on http://127.0.0.1:N\" within 10 s"
fi
echo "ok - $BIN listening on port $port (ASYNC_DELAY_MS=$ASYNC_DELAY_MS)"
passed=$((passed + 1))

# -- the browser checks
rc=0
BASE_URL=http://127.0.0.1:$port CHROMIUM=$CHROMIUM SCREENSHOT_DIR=$OUT \
    node "$E2E/chapter13.test.mjs" 2>"$OUT/node-stderr.log" | tee "$OUT/browser.log" || rc=$?
counts=$(sed -n 's/^browser: \([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p' "$OUT/browser.log" | tail -n 1)
if [ -n "$counts" ]; then
    passed=$((passed + ${counts% *}))
    failed=$((failed + ${counts#* }))
    [ $rc -eq 0 ] || [ "${counts#* }" -ne 0 ] || {
        echo "FAIL - the browser test exited $rc"
        failed=$((failed + 1))
    }
else
    sed 's/^/  | /' "$OUT/node-stderr.log"
    echo "FAIL - the browser test broke (exit $rc) before its summary"
    failed=$((failed + 1))
fi

# -- SIGTERM: a graceful stop, exit status 0
kill -TERM "$service_pid"
stop_rc=""
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
    echo "FAIL - the service exited $stop_rc on SIGTERM (log: $log)"
    failed=$((failed + 1))
else
    echo "FAIL - the service was still running 10 s after SIGTERM"
    failed=$((failed + 1))
fi
service_pid=""

if [ "${UPDATE_SCREENSHOT:-0}" = 1 ] && [ $failed -eq 0 ] && [ -f "$OUT/chapter13.png" ]; then
    mkdir -p docs
    cp "$OUT/chapter13.png" docs/screenshot.png
    echo "e2e: copied $OUT/chapter13.png to docs/screenshot.png"
fi
