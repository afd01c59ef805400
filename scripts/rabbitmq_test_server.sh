#!/usr/bin/env bash
# A throwaway RabbitMQ node on loopback for weave's AMQP tests, everything it
# owns under one directory: its Erlang node name, cookie, database (mnesia),
# logs, config and its own epmd.
#
#   scripts/rabbitmq_test_server.sh start DIR PORT [TLS_PORT CERT KEY CA]
#       start a node (a new one, or the one DIR already holds: its queues
#       and persistent messages survive) and wait until it serves AMQP;
#       prints its URL: amqp://guest:guest@127.0.0.1:PORT/
#       Ports: PORT AMQP, PORT+1 Erlang distribution, PORT+2 the node's own
#       epmd, TLS_PORT AMQP over TLS (amqps) with CERT, KEY and CA (PEM).
#       Also made: a user `weave` / `weave-secret` with all rights on the
#       virtual hosts "/" and "weave/test" (a name with a slash, so the
#       tests cover percent-decoding: amqp://.../weave%2Ftest).
#   scripts/rabbitmq_test_server.sh stop DIR      stop the node (it saves its state, ~3 s),
#                                                 then its epmd; harmless if nothing runs
#   scripts/rabbitmq_test_server.sh restart DIR   start again with the same ports and DIR
#   scripts/rabbitmq_test_server.sh ctl DIR ARGS  rabbitmqctl ARGS against the node
#
# The node runs as the calling user (root included) with HOME=DIR, so its
# cookie is its own and no system-wide RabbitMQ or epmd is touched. Every
# listener binds 127.0.0.1 only. A port another process already listens on
# is an error (we never talk to somebody else's broker). Logs: DIR/log/.
set -euo pipefail

cmd=${1:-}
dir=${2:-}
if [[ -z $cmd || -z $dir ]]; then
    echo "usage: $0 start|stop|restart|ctl DIR [PORT [TLS_PORT CERT KEY CA]] [ARGS]" >&2
    exit 2
fi
rmq_bin=${RABBITMQ_BIN:-/usr/lib/rabbitmq/bin}
if [[ ! -x $rmq_bin/rabbitmq-server ]] || ! command -v epmd >/dev/null; then
    echo "rabbitmq_test_server.sh: no $rmq_bin/rabbitmq-server or epmd" \
        "(scripts/deps.sh test installs rabbitmq-server)" >&2
    exit 1
fi

die()
{
    echo "rabbitmq_test_server.sh: $*" >&2
    exit 1
}

port_free()
{
    if ss -ltnH "sport = :$1" | grep -q .; then
        die "port $1 is already in use"
    fi
}

# node_env: the environment every program of the node runs with (from DIR/ports)
node_env()
{
    local port tls_port
    read -r port tls_port <"$dir/ports"
    export HOME=$dir
    export RABBITMQ_NODENAME=weave$port@localhost
    export RABBITMQ_DIST_PORT=$((port + 1))
    export ERL_EPMD_PORT=$((port + 2)) ERL_EPMD_ADDRESS=127.0.0.1
    export RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log
    export RABBITMQ_PID_FILE=$dir/pid
    export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
    export RABBITMQ_CONFIG_FILE=$dir/rabbitmq
    export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS='-kernel inet_dist_use_interface {127,0,0,1}'
    AMQP_PORT=$port
    TLS_PORT=$tls_port
}

ctl()
{
    "$rmq_bin/rabbitmqctl" -q "$@"
}

# the node's own epmd, on its own port; its pid in DIR/epmd.pid
start_epmd()
{
    if [[ -f $dir/epmd.pid ]] && kill -0 "$(cat "$dir/epmd.pid")" 2>/dev/null; then
        return 0
    fi
    port_free "$ERL_EPMD_PORT"
    setsid epmd -address 127.0.0.1 -port "$ERL_EPMD_PORT" </dev/null >"$dir/log/epmd.log" 2>&1 &
    echo $! >"$dir/epmd.pid"
    for _ in $(seq 1 100); do
        epmd -port "$ERL_EPMD_PORT" -names >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    die "epmd did not start on port $ERL_EPMD_PORT"
}

run_node()
{
    node_env
    mkdir -p "$dir/log"
    port_free "$AMQP_PORT"
    port_free "$RABBITMQ_DIST_PORT"
    [[ $TLS_PORT == - ]] || port_free "$TLS_PORT"
    start_epmd
    rm -f "$dir/pid"
    "$rmq_bin/rabbitmq-server" -detached >"$dir/log/start.log" 2>&1 ||
        die "rabbitmq-server failed: $(cat "$dir/log/start.log")"
    if ! ctl wait --timeout 120 "$dir/pid" >/dev/null 2>&1; then
        tail -n 30 "$dir/log/"*.log >&2 || true
        die "the node did not start"
    fi
    # the answer must come from this node: its name is ours, its listener our port
    ctl status 2>/dev/null | grep -q "127.0.0.1, port: $AMQP_PORT, protocol: amqp" ||
        die "node $RABBITMQ_NODENAME does not listen on $AMQP_PORT"
}

start()
{
    local port=${1:?PORT} tls_port=${2:--} cert=${3:-} key=${4:-} ca=${5:-}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    echo "$port $tls_port" >"$dir/ports"
    echo '[].' >"$dir/enabled_plugins"
    {
        echo "listeners.tcp.1 = 127.0.0.1:$port"
        if [[ $tls_port != - ]]; then
            echo "listeners.ssl.1 = 127.0.0.1:$tls_port"
            echo "ssl_options.certfile = $cert"
            echo "ssl_options.keyfile = $key"
            echo "ssl_options.cacertfile = $ca"
            echo "ssl_options.verify = verify_none"
            echo "ssl_options.fail_if_no_peer_cert = false"
        fi
        # fsyncs stay (the restart tests rely on confirmed = on disk), but
        # a smaller disk watermark keeps a busy /tmp from blocking publishers
        echo "disk_free_limit.absolute = 10MB"
    } >"$dir/rabbitmq.conf"
    run_node
    if ! ctl list_users 2>/dev/null | grep -q '^weave'; then
        ctl add_user weave weave-secret >/dev/null
        ctl add_vhost weave/test >/dev/null
        local vhost
        for vhost in / weave/test; do
            ctl set_permissions -p "$vhost" weave '.*' '.*' '.*' >/dev/null
            ctl set_permissions -p "$vhost" guest '.*' '.*' '.*' >/dev/null
        done
    fi
    echo "amqp://guest:guest@127.0.0.1:$port/"
}

restart()
{
    dir=$(cd "$dir" && pwd)
    [[ -f $dir/ports ]] || die "$dir holds no node (start it first)"
    run_node
}

# wait_gone PID SECONDS: until the process is gone (SIGKILL after SECONDS)
wait_gone()
{
    local pid=$1
    for _ in $(seq 1 $(($2 * 20))); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.05
    done
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
}

stop_node()
{
    local pid
    pid=$(cat "$dir/pid" 2>/dev/null || true)
    [[ -n $pid ]] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        ctl stop "$dir/pid" >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 30
    fi
    rm -f "$dir/pid"
}

stop()
{
    [[ -f $dir/ports ]] || return 0
    dir=$(cd "$dir" && pwd)
    node_env
    stop_node
    local pid
    pid=$(cat "$dir/epmd.pid" 2>/dev/null || true)
    if [[ -n $pid ]]; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 5
        rm -f "$dir/epmd.pid"
    fi
}

case $cmd in
start) start "${@:3}" ;;
stop) stop ;;
restart) restart ;;
ctl)
    dir=$(cd "$dir" && pwd)
    node_env
    ctl "${@:3}"
    ;;
*) die "unknown command $cmd" ;;
esac
