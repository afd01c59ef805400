#!/usr/bin/env bash
# A throwaway PostgreSQL 15 on loopback for weave's tests and benchmarks: its
# own data directory, run as the `postgres` user (when we are root), password
# (SCRAM) authentication over TCP, a role `app` / password `app` owning the
# database `appdb`.
#
#   scripts/pg_test_server.sh start DIR [PORT]   initdb (if DIR has no cluster) and start;
#                                                prints the URL on stdout:
#                                                postgres://app:app@127.0.0.1:PORT/appdb
#   scripts/pg_test_server.sh stop DIR           fast shutdown (harmless if not running)
#   scripts/pg_test_server.sh restart DIR        stop then start again (same port)
#
# PORT defaults to 15432; a port another process already listens on is an
# error (we never talk to somebody else's server). Logs: DIR/pg.log.
set -euo pipefail

pgbin=${PGBIN:-/usr/lib/postgresql/15/bin}
cmd=${1:-}
dir=${2:-}
if [[ -z $cmd || -z $dir ]]; then
    echo "usage: $0 start|stop|restart DIR [PORT]" >&2
    exit 2
fi
if [[ ! -x $pgbin/pg_ctl ]]; then
    echo "pg_test_server.sh: no $pgbin/pg_ctl (scripts/deps.sh installs postgresql-15)" >&2
    exit 1
fi

# as_pg CMD...: run as postgres when we are root (initdb refuses root)
as_pg()
{
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start()
{
    local port=${1:-15432}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    [[ $(id -u) == 0 ]] && chown postgres: "$dir"
    if [[ ! -f $dir/data/PG_VERSION ]]; then
        local pw=$dir/.pw
        printf 'postgres\n' >"$pw"
        [[ $(id -u) == 0 ]] && chown postgres: "$pw"
        as_pg "$pgbin/initdb" -D "$dir/data" -U postgres --pwfile="$pw" --auth-local=trust \
            --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
            echo "pg_test_server.sh: initdb failed:" >&2
            tail -n 20 "$dir/initdb.log" >&2
            exit 1
        }
        rm -f "$pw"
        echo "$port" >"$dir/port"
    fi
    port=$(cat "$dir/port" 2>/dev/null || echo "$port")
    if ss -ltnH "sport = :$port" | grep -q .; then
        echo "pg_test_server.sh: port $port is already in use" >&2
        exit 1
    fi
    as_pg "$pgbin/pg_ctl" -D "$dir/data" -l "$dir/pg.log" -w -t 30 start -o \
        "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
        >/dev/null || {
        echo "pg_test_server.sh: the server did not start:" >&2
        tail -n 20 "$dir/pg.log" >&2
        exit 1
    }
    # the role and database, once
    if ! as_pg psql -h "$dir" -p "$port" -U postgres -d postgres -Atqc \
        "select 1 from pg_roles where rolname = 'app'" | grep -q 1; then
        as_pg psql -h "$dir" -p "$port" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
            -c "CREATE ROLE app LOGIN PASSWORD 'app'" -c "CREATE DATABASE appdb OWNER app" >/dev/null
    fi
    echo "postgres://app:app@127.0.0.1:$port/appdb"
}

stop()
{
    [[ -f $dir/data/postmaster.pid ]] || return 0
    as_pg "$pgbin/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

case $cmd in
    start) start "${3:-}" ;;
    stop) stop ;;
    restart)
        stop
        start "${3:-}"
        ;;
    *)
        echo "usage: $0 start|stop|restart DIR [PORT]" >&2
        exit 2
        ;;
esac
