#!/usr/bin/env bash
# Throwaway Redis 7 servers on loopback for weave's tests and benchmarks,
# each in its own directory, nothing saved to disk.
#
#   scripts/redis_test_server.sh start DIR PORT [TLS_PORT CERT KEY]
#       one server; prints its URL: redis://127.0.0.1:PORT
#       It also has an ACL user `app` with password `app-secret` (all keys,
#       all commands), DEBUG enabled from loopback (DEBUG SLEEP: the deadline
#       tests), and with TLS_PORT a TLS listener using CERT and KEY.
#   scripts/redis_test_server.sh cluster DIR PORT
#       three masters on PORT, PORT+1, PORT+2, joined into one cluster
#       (redis-cli --cluster create; every slot covered); prints
#       redis://127.0.0.1:PORT
#       With REDIS_APPENDONLY=1 in the environment the single server keeps
#       an append-only file synced at every write (appendfsync always), so
#       `kill` then `restart` loses nothing: a broker that crashes.
#   scripts/redis_test_server.sh stop DIR        stop what DIR holds (harmless if nothing)
#   scripts/redis_test_server.sh kill DIR        SIGKILL the single server (a crash)
#   scripts/redis_test_server.sh restart DIR     start the single server again, same ports
#
# A port another process already listens on is an error (we never talk to
# somebody else's server). Logs: DIR/*.log.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z $cmd || -z $dir ]]; then
    echo "usage: $0 start|cluster|stop|kill|restart DIR [PORT [TLS_PORT CERT KEY]]" >&2
    exit 2
fi
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    echo "redis_test_server.sh: no redis-server/redis-cli (scripts/deps.sh test installs them)" >&2
    exit 1
fi

port_free()
{
    if ss -ltnH "sport = :$1" | grep -q .; then
        echo "redis_test_server.sh: port $1 is already in use" >&2
        exit 1
    fi
}

wait_ready()
{
    local port=$1 i
    for i in $(seq 1 100); do
        if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
            return 0
        fi
        sleep 0.05
    done
    echo "redis_test_server.sh: the server on port $port did not start:" >&2
    tail -n 20 "$dir"/*.log >&2 || true
    exit 1
}

# one_server NAME PORT [extra redis-server arguments...]
one_server()
{
    local name=$1 port=$2
    shift 2
    port_free "$port"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --daemonize yes \
        --pidfile "$dir/$name.pid" --logfile "$dir/$name.log" --save '' --appendonly no \
        "$@" >/dev/null
    wait_ready "$port"
}

start()
{
    local port=${1:?PORT}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local tls=()
    if [[ -n ${2:-} ]]; then
        port_free "$2"
        tls=(--tls-port "$2" --tls-cert-file "$3" --tls-key-file "$4" --tls-auth-clients no)
    fi
    local keep=()
    if [[ ${REDIS_APPENDONLY:-0} == 1 ]]; then
        keep=(--appendonly yes --appendfsync always)
    fi
    printf '%s\n' "$port" "${tls[@]}" "${keep[@]}" >"$dir/args"
    one_server redis "$port" --enable-debug-command local --user app on ">app-secret" "~*" \
        "&*" "+@all" "${tls[@]}" "${keep[@]}"
    echo "redis://127.0.0.1:$port"
}

restart_single()
{
    dir=$(cd "$dir" && pwd)
    mapfile -t args <"$dir/args"
    local port=${args[0]}
    one_server redis "$port" --enable-debug-command local --user app on ">app-secret" "~*" \
        "&*" "+@all" "${args[@]:1}"
}

cluster()
{
    local port=${1:?PORT} p nodes=()
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    for p in "$port" $((port + 1)) $((port + 2)); do
        one_server "node-$p" "$p" --cluster-enabled yes --cluster-config-file "$dir/nodes-$p.conf" \
            --cluster-node-timeout 2000
        nodes+=("127.0.0.1:$p")
    done
    redis-cli --cluster create "${nodes[@]}" --cluster-yes >"$dir/create.log" 2>&1 || {
        echo "redis_test_server.sh: cluster create failed:" >&2
        tail -n 20 "$dir/create.log" >&2
        exit 1
    }
    local i
    for i in $(seq 1 100); do
        if redis-cli -p "$port" cluster info 2>/dev/null | grep -q 'cluster_state:ok'; then
            echo "redis://127.0.0.1:$port"
            return 0
        fi
        sleep 0.1
    done
    echo "redis_test_server.sh: the cluster did not become ready" >&2
    exit 1
}

# signal_all SIGNAL: every server DIR holds
signal_all()
{
    local f pid
    for f in "$dir"/*.pid; do
        [[ -f $f ]] || continue
        pid=$(cat "$f" 2>/dev/null || true)
        [[ -n $pid ]] && kill "-$1" "$pid" 2>/dev/null || true
    done
}

stop()
{
    [[ -d $dir ]] || return 0
    signal_all TERM
    local f pid i
    for f in "$dir"/*.pid; do
        [[ -f $f ]] || continue
        pid=$(cat "$f" 2>/dev/null || true)
        for i in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.05
        done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$f"
    done
}

kill_single()
{
    local pid
    pid=$(cat "$dir/redis.pid" 2>/dev/null || true)
    [[ -n $pid ]] || return 0
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.02; done
    rm -f "$dir/redis.pid"
}

case $cmd in
start) start "${@:3}" ;;
cluster) cluster "${@:3}" ;;
stop) stop ;;
kill) kill_single ;;
restart) restart_single ;;
*)
    echo "redis_test_server.sh: unknown command $cmd" >&2
    exit 2
    ;;
esac
