# The chapter 13 service as a container image: `make image` builds it
# (podman or docker), deploy/README.md says how to run and ship it, and
# tests/deploy/test_image.sh builds, runs and drains it on every `make test`.
#
#   build    Debian bookworm with the build packages (scripts/deps.sh build),
#            the release build of the chapter13 binary and the built page
#   runtime  Debian bookworm-slim with only the shared libraries the binary
#            links (found from the binary itself, so the list cannot go stale),
#            no compiler, running as uid 10001
#
# Configuration is the environment only: every variable `chapter13 --help`
# lists. The defaults below make a container that works alone (SQLite and
# files under /var/lib/weave, the only directory it writes).

FROM docker.io/library/debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive
WORKDIR /src

# The packages first, then the page's npm packages, then the sources: editing
# a C file reuses the first two layers.
COPY scripts/deps.sh scripts/deps.sh
RUN bash scripts/deps.sh build && rm -rf /var/lib/apt/lists/*
COPY examples/chapter13/web/package.json examples/chapter13/web/package-lock.json examples/chapter13/web/
# Behind a TLS-inspecting proxy, npm needs the proxy's certificate authority:
# `make image` passes the CA file npm uses on the host as the build secret
# "ca" (BUILD_CA_FILE); it is mounted for this step only, never stored.
RUN --mount=type=secret,id=ca \
    if [ -s /run/secrets/ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi \
    && cd examples/chapter13/web && npm ci --no-audit --no-fund --loglevel=error

COPY . .
RUN cmake -S . -B build/image -G Ninja -DCMAKE_BUILD_TYPE=Release \
        -DWEAVE_TESTS=OFF -DWEAVE_BENCH=OFF \
    && cmake --build build/image --target chapter13 \
    && bash scripts/build_web.sh \
    && bash scripts/runtime_packages.sh build/image/chapter13 > build/image/runtime-packages

FROM docker.io/library/debian:bookworm-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /src/build/image/runtime-packages /tmp/runtime-packages
# ca-certificates: TLS to the databases, brokers and clouds the service calls
RUN apt-get update \
    && xargs -a /tmp/runtime-packages apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/* /tmp/runtime-packages \
    && groupadd --gid 10001 weave \
    && useradd --uid 10001 --gid 10001 --home-dir /var/lib/weave --no-create-home \
        --shell /usr/sbin/nologin weave \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/weave

COPY --from=build /src/build/image/chapter13 /usr/local/bin/chapter13
COPY --from=build /src/examples/chapter13/web/dist /usr/share/weave/web

ENV PORT=8000 \
    GRPC_PORT=50051 \
    METRICS_PORT=9100 \
    WEB_DIR=/usr/share/weave/web \
    DATABASE_URL=sqlite:///var/lib/weave/chapter13.db \
    FILES_DIR=/var/lib/weave/files \
    LOG_LEVEL=info \
    DRAIN_TIMEOUT_MS=10000

# numeric, so that Kubernetes' runAsNonRoot can check it
USER 10001:10001
WORKDIR /var/lib/weave
EXPOSE 8000 50051 9100
# SIGTERM: stop accepting, let requests in flight finish (DRAIN_TIMEOUT_MS), exit 0
STOPSIGNAL SIGTERM
# bash's /dev/tcp: the image needs no HTTP client for its own health check
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/bin/bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT:-8000} && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && IFS= read -r status <&3 && [[ $status == 'HTTP/1.1 200'* ]]"]
ENTRYPOINT ["/usr/local/bin/chapter13"]
