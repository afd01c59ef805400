#!/usr/bin/env bash
# Install the Debian packages weave needs, by purpose, if missing.
#
#   scripts/deps.sh [build|test|bench]...     (no argument: build)
#
#   build  compile the library, the examples and the page, and run the
#          chapter's service: `make deps`, `make run`, `make build`
#   test   the servers and tools the tests drive: `make test`, `make fuzz`
#   bench  the benchmarks' anchors and load generators: `make bench`
#
# Several groups at once: `scripts/deps.sh build test`. Idempotent, and fast
# (no apt call) when everything is already installed. As root it runs
# apt-get; otherwise it prints the command to run and exits 1.
# A module adds its packages to the group that uses them, one comment per
# package group saying what uses it.
set -euo pipefail

BUILD_PACKAGES=(
    # toolchain and build
    build-essential cmake ninja-build pkg-config
    # libraries the library links (CMakeLists.txt WEAVE_PKG_DEPS): compression
    # (libbrotli-dev also holds the decoder the compression unit tests use)
    zlib1g-dev libbrotli-dev libzstd-dev
    # TLS (src/net/tls.c): OpenSSL 3
    libssl-dev
    # databases (src/pg, src/db): libpq and SQLite
    libpq-dev libsqlite3-dev
    # JSON reading: jsmn's tokenizer, header only (src/json/parse.c; bench/json_libs.md)
    libjsmn-dev
    # the HTTP client (src/httpc): libcurl built on OpenSSL, with HTTP/2
    # (nghttp2), gzip, br and zstd decoding
    libcurl4-openssl-dev
    # the Kafka client (src/kafka): librdkafka, whose mock cluster the
    # Kafka tests run against too
    librdkafka-dev
    # RabbitMQ (src/amqp): librabbitmq 0.11, used only as the AMQP 0-9-1
    # method codec (our own socket, framing, flow and recovery)
    librabbitmq-dev
    # the HTTP/2 server (src/h2): nghttp2's session, sans-I/O, as the framing engine
    libnghttp2-dev
    # gRPC messages: protoc-c turns .proto files into C and libprotobuf-c
    # packs and unpacks them (cmake/WeaveProtobufC.cmake, weave_protobuf_c;
    # the library itself links neither)
    libprotobuf-c-dev protobuf-c-compiler
)

TEST_PACKAGES=(
    # clang for the Asan build and libFuzzer (sanitizer runtimes: make asan,
    # make fuzz), clang-format for style (make format-check)
    clang libclang-rt-14-dev clang-format
    # unit tests (tests/unit; CMake builds them only when cmocka is installed);
    # gdb: a test that hangs prints every thread's stack before its watchdog
    # ends it (tests/unit/harness.h)
    libcmocka-dev gdb
    # the aarch64 context switch, cross-built and run under qemu-user (tests/cross)
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user
    # the integration tests run on Debian's python (always /usr/bin/python3);
    # procps (ps, pgrep) to look into the processes of a test run
    python3 procps
    # WebSocket peer for the integration tests (tests/integration/test_websockets.py, ...)
    python3-websockets
    # curl: the integration tests' HTTP client and the install test's request
    # (tests/integration/httptest.py, tests/install/run.sh); openssl: the
    # tests' certificates (tests/unit/test_tls.c, test_ws_client.py)
    curl openssl
    # HTTP/2 peers (tests/integration/test_h2*.py): nghttp with many streams on
    # one connection, h2load's thousands of requests, and Python's h2 (and its
    # hpack) driving frames by hand (flow control, resets, a bad preface, the
    # RFC 9113 error cases)
    nghttp2-client python3-h2
    # ss: a free port for the tests' PostgreSQL (scripts/test.sh)
    iproute2
    # a throwaway PostgreSQL 15 (scripts/pg_test_server.sh) and psql for the
    # database tests (tests/unit/test_pg.c, test_db.c, tests/integration)
    postgresql-15 postgresql-client-15
    # a real Prometheus scraping the service and promtool checking the
    # exposition (tests/integration/test_metrics_prometheus.py, tests/unit/test_metrics.c)
    prometheus
    # the browser test (tests/e2e): headless Chromium, driven by playwright-core from npm
    chromium
    # the cache tests (src/redis, src/memcache, src/cache): Redis 7 and
    # redis-cli (single node and a three-node cluster), memcached 1.6 and the
    # libmemcached tools; libmemcached-dev for the test that checks our
    # ketama placement against libmemcached's; Python redis and pymemcache as
    # peers, and pylibmc (libmemcached's placement, from Python: test_memcache)
    redis-server redis-tools memcached libmemcached-tools libmemcached-dev
    python3-redis python3-pymemcache python3-pylibmc
    # Celery 5.2 and kombu, which capture the task messages and results the
    # Celery codec's tests compare against (tests/unit/celery_fixtures/capture.py)
    python3-celery
    # python-rq 1.13, whose workers run the jobs the RQ producer enqueues and
    # whose Job reads what it wrote (tests/integration/test_rq.py), and whose
    # pickles the pickle codec's tests compare against
    # (tests/unit/pickle_fixtures/capture.py)
    python3-rq
    # the HTTP client's HTTP/2 peers: nghttpd, over TLS (ALPN h2) and h2c with
    # prior knowledge, and nginx, HTTP/2 and HTTP/1.1 over TLS and plain
    # (tests/unit/test_httpc.c)
    nghttp2-server nginx
    # the Kafka client's peers on librdkafka's mock cluster: kcat and Python's
    # confluent_kafka (tests/integration/test_kafka.py; kafkajs comes from
    # npm, tests/integration/node)
    kcat python3-confluent-kafka
    # the S3 client (src/s3): botocore as the offline oracle for our SigV4
    # signatures and boto3 as the peer that reads what weave wrote to s3rver
    # (tests/unit/test_s3_sign.c, tests/integration/test_s3.py); s3rver itself
    # comes from npm (tests/integration/node, scripts/s3_test_server.sh)
    python3-boto3
    # the RabbitMQ client (src/amqp): a throwaway RabbitMQ node for its tests
    # (scripts/rabbitmq_test_server.sh; rabbitmq-server brings Erlang and
    # epmd), and pika as the Python peer (tests/integration/test_amqp_peers.py;
    # amqplib, the Node peer, comes from npm: tests/integration/node)
    rabbitmq-server python3-pika
    # aio-pika, the chapter's own RabbitMQ client, as the asyncio peer
    # (tests/integration/test_amqp_aiopika.py)
    python3-aio-pika
    # gRPC's Python side as the oracle for the generated C: grpc_tools.protoc
    # compiles the chapter's service.proto for Python and protobuf packs the
    # messages our C must match (tests/integration/test_grpc_proto.py);
    # grpcio, the chapter's gRPC library, names the method paths, and serves
    # the Echo service weave's gRPC client calls (test_grpc_client.py; its
    # TLS case makes a self-signed certificate with openssl, above)
    python3-grpcio python3-grpc-tools python3-protobuf
    # the container image's test (tests/deploy/test_image.sh): podman builds
    # and runs it, on runc (podman's default crun cannot run on hosts with
    # hybrid cgroups); debootstrap makes its Debian base image from Debian's
    # archive when no registry is reachable (scripts/debian_base_image.sh)
    podman runc debootstrap
    # PyJWT (with cryptography for RS, PS and ES keys): tokens made by
    # Python's JWT library verified by weave and weave's read back by it
    # (tests/integration/test_auth.py)
    python3-jwt python3-cryptography
    # jsonschema: our JSON Schemas checked by Python's validator, which must
    # agree with our decoder on every input (tests/integration/test_schema_jsonschema.py)
    python3-jsonschema
    # PyYAML: the checks of the alert rules, Grafana provisioning and
    # compose.yaml (tests/deploy/monitoring/check.py)
    python3-yaml
)

BENCH_PACKAGES=(
    # the Python anchors run on Debian's python (always /usr/bin/python3)
    python3
    # HTTP load generator (bench/run_http.sh, run_metrics.sh, run_db.sh)
    wrk
    # the HTTP and HTTP/2 suites' C anchors (bench/http/nginx.conf.in,
    # h2o.conf.in; bench/h2/nginx.conf.in, h2o.conf.in)
    nginx h2o
    # FastAPI on uvicorn's fast mode (uvloop + httptools; without them uvicorn
    # falls back to asyncio + h11): the http and db suites' Python anchor
    python3-fastapi python3-uvicorn python3-uvloop python3-httptools
    # asyncpg: the db suite's anchor (bench/db/asyncpg_select.py, fastapi_tfb.py)
    python3-asyncpg
    # prometheus_client: the metrics.scrape anchor (bench/metrics/scrape_prometheus_client.py)
    python3-prometheus-client
    # websockets: the ws.echo anchor (bench/ws/websockets_server.py)
    python3-websockets
    # httpx and aiohttp: the HTTP client suite's anchors (bench/httpc/)
    python3-httpx python3-aiohttp
    # the db suite's PostgreSQL 15 (scripts/pg_test_server.sh), psql to load
    # its tables and pgbench as an anchor (bench/run_db.sh)
    postgresql-15 postgresql-client-15
    # readiness checks (curl) and port and listener checks (ss) in every suite
    curl iproute2
    # the runtime library the optional lwan anchor (LWAN_BIN) links; lwan
    # itself is not packaged (docs/benchmarking.md, "Optional anchors")
    libmariadb3
    # callgrind counts the user-space instructions per request
    # (bench/http/instructions.sh)
    valgrind
    # c-ares, for the resolver benchmark comparing it with getaddrinfo
    libc-ares-dev
    # h2load: the tls suite's new handshakes (bench/run_tls.sh) and the h2
    # suite's load (bench/run_h2.sh); the openssl command line for the tls
    # suite's certificates and handshake checks
    nghttp2-client openssl
    # the cache suite (bench/run_cache.sh): Redis and redis-benchmark,
    # memcached and memcaslap, hiredis's reader beside our RESP parser, the
    # Python anchors (redis.asyncio, pymemcache, cachetools), and hiredis's
    # Python parser, which redis-py uses when it is installed (its documented
    # setting for speed)
    redis-server redis-tools memcached libmemcached-tools libhiredis-dev
    python3-redis python3-hiredis python3-pymemcache python3-cachetools
    # boto3: the s3.put_multipart anchor (bench/httpc/boto3_upload.py); s3rver
    # itself comes from npm (tests/integration/node, scripts/s3_test_server.sh)
    python3-boto3
    # the messaging suite (bench/run_messaging.sh): a throwaway RabbitMQ node
    # (scripts/rabbitmq_test_server.sh), aio-pika (on uvloop, above) and
    # confluent_kafka as the anchors; librabbitmq (librabbitmq-dev, a build
    # package) for its C anchor, librdkafka's mock cluster for the Kafka figures
    rabbitmq-server python3-aio-pika python3-confluent-kafka
    # the gRPC suite (bench/run_grpc.sh): grpcio's grpc.aio server as the
    # anchor (bench/grpc/aio_server.py) and its client as the checker
    # (bench/grpc/check.py), grpc_tools.protoc to compile bench.proto for
    # both; the grpc-js anchor comes from npm (bench/grpc/package.json)
    python3-grpcio python3-grpc-tools python3-protobuf
    # the tasks suite (bench/run_tasks.sh): Celery 5.2's own workers as the
    # anchors (bench/tasks/celery_app.py, on Redis above), and gevent for
    # Celery's -P gevent pool, the anchor of tasks.sleep; py-amqp, kombu's
    # RabbitMQ transport, for tasks.amqp's Celery side (python3-kombu pulls
    # it in; named because the suite imports it). tasks.amqp also needs
    # rabbitmq-server, tasks.outbox postgresql-15 and asyncpg (its Celery
    # side's transactions): all above
    python3-celery python3-gevent python3-amqp
    # the api suite (bench/run_api.sh): pydantic 1.10, the model FastAPI
    # validates with and parse_raw's loop (api.decode), and PyJWT in the
    # anchor's bearer dependency (api.jwt); FastAPI and uvicorn are above
    python3-pydantic python3-jwt
)

usage()
{
    echo "usage: $0 [build|test|bench]...   (no argument: build)" >&2
    exit 2
}

groups=("$@")
[ ${#groups[@]} -gt 0 ] || groups=(build)

PACKAGES=()
for group in "${groups[@]}"; do
    case $group in
    build) PACKAGES+=("${BUILD_PACKAGES[@]}") ;;
    test) PACKAGES+=("${TEST_PACKAGES[@]}") ;;
    bench) PACKAGES+=("${BENCH_PACKAGES[@]}") ;;
    -h | --help) usage ;;
    *)
        echo "deps: unknown group '$group'" >&2
        usage
        ;;
    esac
done
# each package once, in the order first listed
mapfile -t PACKAGES < <(printf '%s\n' "${PACKAGES[@]}" | awk '!seen[$0]++')

export DEBIAN_FRONTEND=noninteractive

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = "install ok installed" ] || missing+=("$pkg")
done

# Node.js and npm build the chapter 13 page (scripts/build_web.sh), run the
# browser test and the Node WebSocket and S3 peers (test), the Node ws and
# grpc-js anchors (bench) and s3rver (test, bench). Any node on PATH will do (e.g. a newer
# one from NodeSource); only when there is no npm at all, take Debian's.
if ! command -v npm >/dev/null 2>&1; then
    missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
    echo "deps: all ${#PACKAGES[@]} packages present (${groups[*]})"
    exit 0
fi

install_cmd=(apt-get install -y -o DPkg::Lock::Timeout=900 --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing packages (${groups[*]}): ${missing[*]}" >&2
    echo "deps: run as root:" >&2
    echo "  apt-get update && DEBIAN_FRONTEND=noninteractive ${install_cmd[*]}" >&2
    exit 1
fi

echo "deps: installing (${groups[*]}) ${missing[*]}"
apt-get update
"${install_cmd[@]}"
