#!/usr/bin/env bash
# The whole test run behind `make test` (and so CI):
#   0. a throwaway PostgreSQL 15 on loopback
#      (scripts/pg_test_server.sh; WEAVE_TEST_PG_URL, _DIR and _CTL exported
#      for the tests, stopped and removed at exit), and Redis 7: one server
#      with a TLS port and a three-node cluster (scripts/redis_test_server.sh;
#      WEAVE_TEST_REDIS_URL, _TLS_URL, _CA, _DIR, _CTL, _CLUSTER_URL), and
#      three memcached 1.6 servers (scripts/memcached_test_server.sh;
#      WEAVE_TEST_MEMCACHED_SERVERS, _DIRS, _CTL), and a RabbitMQ node with
#      a TLS listener (scripts/rabbitmq_test_server.sh; WEAVE_TEST_AMQP_URL,
#      _TLS_URL, _CA, _DIR, _CTL)
#   1. format-check
#   2. Release build, its unit tests (ctest)
#   3. Asan build (clang, ASan+UBSan), its unit tests (ctest)
#   4. tests/install/run.sh (install into a temp prefix, build consumers against it)
#   5. every fuzzer for FUZZ_TEST_SECONDS (15) after replaying its corpus
#   6. tests/cross/run.sh (aarch64 under qemu-user, on x86-64 hosts)
#   7. tests/integration/run.sh and tests/e2e/run.sh, if present and executable
#   8. tests/deploy/run.sh: the container image built and run with podman, the
#      Kubernetes manifests, pipelines, alert rules and compose file checked
# Stops at the first failure with a non-zero exit. The last line is always
# "N passed, M failed": N/M add up the ctest counts of both builds, 1 for the
# install test, and for each integration/e2e script either the
# "N passed, M failed" line it prints last or 1 for the script as a whole.
# A step that is not a test (format-check, a build) counts 1 failed if it fails.
set -euo pipefail

cd "$(dirname "$0")/.."
mkdir -p build
LOG_DIR=build/test-logs
rm -rf "$LOG_DIR"
mkdir -p "$LOG_DIR"

passed=0
failed=0
step=""

PG_DIR=""
REDIS_DIR=""
MEMCACHED_DIR=""
RABBITMQ_DIR=""

summary()
{
    local rc=$?
    if [ -n "$PG_DIR" ]; then
        scripts/pg_test_server.sh stop "$PG_DIR" || true
        rm -rf "$PG_DIR"
    fi
    if [ -n "$REDIS_DIR" ]; then
        scripts/redis_test_server.sh stop "$REDIS_DIR/single" || true
        scripts/redis_test_server.sh stop "$REDIS_DIR/cluster" || true
        rm -rf "$REDIS_DIR"
    fi
    if [ -n "$MEMCACHED_DIR" ]; then
        for d in "$MEMCACHED_DIR"/s*; do
            scripts/memcached_test_server.sh stop "$d" || true
        done
        rm -rf "$MEMCACHED_DIR"
    fi
    if [ -n "$RABBITMQ_DIR" ]; then
        scripts/rabbitmq_test_server.sh stop "$RABBITMQ_DIR/node" || true
        rm -rf "$RABBITMQ_DIR"
    fi
    if [ $rc -ne 0 ]; then
        echo "test.sh: FAILED at: ${step:-?} (exit $rc); logs in $LOG_DIR/" >&2
    fi
    echo "$passed passed, $failed failed"
    exit $rc
}
trap summary EXIT

# Run a step that is not itself counted as tests; a failure counts 1 failed.
run_step()
{
    step=$1
    shift
    echo "==> $step"
    if ! "$@"; then
        failed=$((failed + 1))
        return 1
    fi
}

# run_ctest DIR NAME [VAR=value...]: run ctest in DIR with those environment
# variables, add its counts, fail if any test failed.
run_ctest()
{
    local dir=$1 name=$2 log="$LOG_DIR/ctest-$2.log" rc=0 counts
    shift 2
    step="ctest ($name)"
    echo "==> $step"
    (cd "$dir" && env "$@" ctest --output-on-failure -j2) 2>&1 | tee "$log" || rc=$?
    # "100% tests passed, 0 tests failed out of 7" / "71% tests passed, 2 tests failed out of 7"
    counts=$(sed -n 's/^[0-9]*% tests passed, \([0-9]*\) tests\{0,1\} failed out of \([0-9]*\).*/\1 \2/p' "$log" | tail -n 1)
    if [ -n "$counts" ]; then
        local f=${counts% *} total=${counts#* }
        passed=$((passed + total - f))
        failed=$((failed + f))
        if [ "$f" -ne 0 ] && [ $rc -eq 0 ]; then rc=1; fi
    elif grep -q 'No tests were found' "$log"; then
        echo "ctest ($name): no tests found"
    else
        failed=$((failed + 1)) # ctest itself broke
        [ $rc -ne 0 ] || rc=1
    fi
    return "$rc"
}

# Run a test script; count its own "N passed, M failed" last line, or 1 for it.
run_script()
{
    local script=$1 log="$LOG_DIR/$(echo "$1" | tr / _).log" rc=0 counts
    step=$script
    echo "==> $step"
    "$script" 2>&1 | tee "$log" || rc=$?
    counts=$(sed -n 's/^\([A-Za-z]*: \)\{0,1\}\([0-9]\{1,\}\) passed, \([0-9]\{1,\}\) failed.*$/\2 \3/p' "$log" |
        tail -n 1)
    if [ -n "$counts" ]; then
        passed=$((passed + ${counts% *}))
        failed=$((failed + ${counts#* }))
        if [ $rc -eq 0 ] && [ "${counts#* }" -ne 0 ]; then rc=1; fi
    elif [ $rc -eq 0 ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
    fi
    return "$rc"
}

# PostgreSQL for the database tests: the first free port from 15440
start_pg()
{
    local port=15440
    while ss -ltnH "sport = :$port" | grep -q .; do port=$((port + 1)); done
    PG_DIR=$(mktemp -d /tmp/weave-test-pg.XXXXXX)
    WEAVE_TEST_PG_URL=$(scripts/pg_test_server.sh start "$PG_DIR" "$port") || return 1
    export WEAVE_TEST_PG_URL WEAVE_TEST_PG_DIR=$PG_DIR
    WEAVE_TEST_PG_CTL=$(pwd)/scripts/pg_test_server.sh
    export WEAVE_TEST_PG_CTL
    echo "PostgreSQL for the tests: $WEAVE_TEST_PG_URL"
}
run_step "PostgreSQL (test server)" start_pg

# the first port from `from` such that `count` ports in a row are free
# (and, with a third argument, each port plus that offset too: a Redis
# cluster node also listens on its port + 10000 for the cluster bus)
free_ports()
{
    local port=$1 count=$2 also=${3:-} i ok
    while :; do
        ok=1
        for ((i = 0; i < count; i++)); do
            if ss -ltnH "sport = :$((port + i))" | grep -q .; then ok=0; fi
            if [ -n "$also" ] && ss -ltnH "sport = :$((port + i + also))" | grep -q .; then ok=0; fi
        done
        [ $ok = 1 ] && break
        port=$((port + count))
    done
    echo "$port"
}

# Redis for the cache tests: one server (plus its TLS port) and a cluster
start_redis()
{
    REDIS_DIR=$(mktemp -d /tmp/weave-test-redis.XXXXXX)
    bash tests/make_certs.sh "$REDIS_DIR/certs"
    local port
    port=$(free_ports 16379 2)
    WEAVE_TEST_REDIS_URL=$(scripts/redis_test_server.sh start "$REDIS_DIR/single" "$port" \
        $((port + 1)) "$REDIS_DIR/certs/server.pem" "$REDIS_DIR/certs/server.key") || return 1
    WEAVE_TEST_REDIS_TLS_URL="rediss://127.0.0.1:$((port + 1))"
    WEAVE_TEST_REDIS_CA=$REDIS_DIR/certs/ca.pem
    WEAVE_TEST_REDIS_DIR=$REDIS_DIR/single
    WEAVE_TEST_REDIS_CTL=$(pwd)/scripts/redis_test_server.sh
    port=$(free_ports 17379 3 10000)
    WEAVE_TEST_REDIS_CLUSTER_URL=$(scripts/redis_test_server.sh cluster "$REDIS_DIR/cluster" \
        "$port") || return 1
    export WEAVE_TEST_REDIS_URL WEAVE_TEST_REDIS_TLS_URL WEAVE_TEST_REDIS_CA \
        WEAVE_TEST_REDIS_DIR WEAVE_TEST_REDIS_CTL WEAVE_TEST_REDIS_CLUSTER_URL
    echo "Redis for the tests: $WEAVE_TEST_REDIS_URL, cluster $WEAVE_TEST_REDIS_CLUSTER_URL"
}
run_step "Redis (test servers)" start_redis

# memcached for the cache tests: three servers, so keys spread by ketama
# (test_memcache kills and restarts the second: _DIRS and _CTL)
start_memcached()
{
    MEMCACHED_DIR=$(mktemp -d /tmp/weave-test-memcached.XXXXXX)
    local port i addr list="" dirs=""
    port=$(free_ports 21211 3)
    for i in 1 2 3; do
        addr=$(scripts/memcached_test_server.sh start "$MEMCACHED_DIR/s$i" $((port + i - 1))) ||
            return 1
        list+="${list:+,}$addr"
        dirs+="${dirs:+,}$MEMCACHED_DIR/s$i"
    done
    WEAVE_TEST_MEMCACHED_SERVERS=$list
    WEAVE_TEST_MEMCACHED_DIRS=$dirs
    WEAVE_TEST_MEMCACHED_CTL=$(pwd)/scripts/memcached_test_server.sh
    export WEAVE_TEST_MEMCACHED_SERVERS WEAVE_TEST_MEMCACHED_DIRS WEAVE_TEST_MEMCACHED_CTL
    echo "memcached for the tests: $WEAVE_TEST_MEMCACHED_SERVERS"
}
run_step "memcached (test servers)" start_memcached

# RabbitMQ for the AMQP tests: one node (AMQP, and AMQP over TLS three
# ports up); test_amqp stops and starts it mid-test (_DIR, _CTL)
start_rabbitmq()
{
    RABBITMQ_DIR=$(mktemp -d /tmp/weave-test-rabbitmq.XXXXXX)
    bash tests/make_certs.sh "$RABBITMQ_DIR/certs"
    local port certs=$RABBITMQ_DIR/certs
    port=$(free_ports 25680 4)
    WEAVE_TEST_AMQP_URL=$(scripts/rabbitmq_test_server.sh start "$RABBITMQ_DIR/node" "$port" \
        $((port + 3)) "$certs/server.pem" "$certs/server.key" "$certs/ca.pem") || return 1
    WEAVE_TEST_AMQP_TLS_URL="amqps://guest:guest@127.0.0.1:$((port + 3))/"
    WEAVE_TEST_AMQP_CA=$certs/ca.pem
    WEAVE_TEST_AMQP_DIR=$RABBITMQ_DIR/node
    WEAVE_TEST_AMQP_CTL=$(pwd)/scripts/rabbitmq_test_server.sh
    export WEAVE_TEST_AMQP_URL WEAVE_TEST_AMQP_TLS_URL WEAVE_TEST_AMQP_CA WEAVE_TEST_AMQP_DIR \
        WEAVE_TEST_AMQP_CTL
    echo "RabbitMQ for the tests: $WEAVE_TEST_AMQP_URL"
}
run_step "RabbitMQ (test server)" start_rabbitmq

run_step format-check make --no-print-directory format-check

run_step "build (release)" make --no-print-directory build
run_ctest build/release release

run_step "build (asan)" make --no-print-directory asan
run_ctest build/asan asan \
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

run_script tests/install/run.sh

# every fuzzer, briefly: replays fuzz/corpus/<name>/ (regression inputs
# included), then explores for FUZZ_TEST_SECONDS; `make fuzz` runs long
run_step "fuzz (${FUZZ_TEST_SECONDS:-15} s per target)" \
    make --no-print-directory fuzz FUZZ_SECONDS="${FUZZ_TEST_SECONDS:-15}"

# the other architecture's context switch, under qemu-user (x86-64 hosts)
if [ "$(uname -m)" = x86_64 ]; then
    run_script tests/cross/run.sh
fi

for script in tests/integration/run.sh tests/e2e/run.sh tests/deploy/run.sh; do
    if [ -f "$script" ] && [ -x "$script" ]; then
        run_script "$script"
    fi
done

step=""
