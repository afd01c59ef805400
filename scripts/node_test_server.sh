# shellcheck shell=bash
# What the scripts that run a Node test server share (sourced by
# scripts/s3_test_server.sh and scripts/kinesis_test_server.sh, not run).
# The caller sets `name` (its name in messages) and defines start(); then
#   die MESSAGE...            the message on stderr, exit 1
#   ensure_node_packages FILE `npm ci` in tests/integration/node unless FILE
#                             (relative to its node_modules) is there; one
#                             install at a time, as tests may start their
#                             servers at the same moment and two `npm ci`
#                             in one folder undo each other
#   wait_ready PID DIR PORT CHECK...
#                             until the command CHECK... succeeds (30 s),
#                             dying with DIR/log if PID exits first
#   stop DIR                  SIGTERM, SIGKILL after 5 s, until it is gone
#   dispatch USAGE "$@"       start or stop, as the first argument says
: "${name:?the script that sources this one sets name}"
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
node_dir=$root/tests/integration/node

die()
{
    echo "$name: $*" >&2
    exit 1
}

ensure_node_packages()
{
    command -v node >/dev/null 2>&1 || die "node not found (scripts/deps.sh installs nodejs and npm)"
    local lock
    lock=${TMPDIR:-/tmp}/weave-npm-ci-$(printf '%s' "$node_dir" | md5sum | cut -c1-12).lock
    (
        flock 9
        if [ ! -f "$node_dir/node_modules/$1" ]; then
            echo "$name: npm ci in $node_dir" >&2
            cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error >&2
        fi
    ) 9>"$lock" || die "npm ci failed in $node_dir"
}

wait_ready()
{
    local pid=$1 dir=$2 port=$3
    shift 3
    for _ in $(seq 1 300); do
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$dir/log" >&2
            die "the server exited (port $port taken?)"
        fi
        if "$@"; then
            return 0
        fi
        sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    die "the server did not answer on port $port within 30 s"
}

stop()
{
    [ $# -ge 1 ] || die "usage: stop DIR"
    local dir=$1 pid
    [ -f "$dir/pid" ] || return 0
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$dir/pid"
}

dispatch()
{
    local usage=$1
    shift
    case ${1:-} in
    start)
        shift
        start "$@"
        ;;
    stop)
        shift
        stop "$@"
        ;;
    *) die "usage: $usage" ;;
    esac
}
