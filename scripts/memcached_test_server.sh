#!/usr/bin/env bash
# Throwaway memcached 1.6 servers on loopback for weave's tests, one per
# directory, nothing kept (memcached keeps nothing anyway).
#
#   scripts/memcached_test_server.sh start DIR PORT [memcached arguments...]
#       one server on 127.0.0.1:PORT (64 MB, no UDP); prints 127.0.0.1:PORT.
#       Extra arguments go to memcached as they are (-I 2k: a small item
#       size limit).
#   scripts/memcached_test_server.sh stop DIR      stop it (harmless if nothing runs)
#   scripts/memcached_test_server.sh kill DIR      SIGKILL it (a crash)
#   scripts/memcached_test_server.sh restart DIR   start it again: same port, same arguments
#
# A port another process already listens on is an error (we never talk to
# somebody else's server). Its output: DIR/memcached.log.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z $cmd || -z $dir ]]; then
    echo "usage: $0 start|stop|kill|restart DIR [PORT [memcached arguments...]]" >&2
    exit 2
fi
if ! command -v memcached >/dev/null; then
    echo "memcached_test_server.sh: no memcached (scripts/deps.sh test installs it)" >&2
    exit 1
fi

port_free()
{
    if ss -ltnH "sport = :$1" | grep -q .; then
        echo "memcached_test_server.sh: port $1 is already in use" >&2
        exit 1
    fi
}

# ready PORT: the server answers `version` (bash's /dev/tcp, no client needed)
ready()
{
    local line
    exec 3<>"/dev/tcp/127.0.0.1/$1" || return 1
    printf 'version\r\n' >&3
    read -r -t 1 line <&3 || true
    exec 3<&- 3>&-
    [[ $line == VERSION* ]]
}

wait_ready()
{
    local port=$1 i
    for i in $(seq 1 100); do
        if ready "$port" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    echo "memcached_test_server.sh: the server on port $port did not start:" >&2
    tail -n 20 "$dir/memcached.log" >&2 || true
    exit 1
}

# run PORT [arguments...]: as root memcached needs -u to start at all
run()
{
    local port=$1
    shift
    port_free "$port"
    local user=()
    if [[ $(id -u) == 0 ]]; then user=(-u root); fi
    memcached "${user[@]}" -l 127.0.0.1 -p "$port" -U 0 -m 64 -d -P "$dir/pid" "$@" \
        >>"$dir/memcached.log" 2>&1
    wait_ready "$port"
}

start()
{
    local port=${1:?PORT}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    printf '%s\n' "$@" >"$dir/args"
    run "$@"
    echo "127.0.0.1:$port"
}

restart()
{
    dir=$(cd "$dir" && pwd)
    mapfile -t args <"$dir/args"
    run "${args[@]}"
}

pid_of()
{
    cat "$dir/pid" 2>/dev/null || true
}

# alive PID: running, and not a zombie waiting for PID 1 to reap it (the
# server is a daemon: its parent is init, which may take a while)
alive()
{
    local state
    state=$(sed -n 's/^State:[[:space:]]*\([A-Z]\).*/\1/p' "/proc/$1/status" 2>/dev/null) || return 1
    [[ -n $state && $state != Z && $state != X ]]
}

stop()
{
    [[ -d $dir ]] || return 0
    local pid i
    pid=$(pid_of)
    [[ -n $pid ]] || return 0
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 100); do
        alive "$pid" || break
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$dir/pid"
}

kill_it()
{
    local pid
    pid=$(pid_of)
    [[ -n $pid ]] || return 0
    kill -KILL "$pid" 2>/dev/null || true
    while alive "$pid"; do sleep 0.02; done
    rm -f "$dir/pid"
}

case $cmd in
start) start "${@:3}" ;;
stop) stop ;;
kill) kill_it ;;
restart) restart ;;
*)
    echo "memcached_test_server.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
