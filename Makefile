# Entry points for weave. A thin wrapper around CMake/CTest; logic lives in
# CMakeLists.txt and scripts/.
#
#   make deps         install the Debian packages building and running need
#                     (scripts/deps.sh build: toolchain, linked libraries, Node for the page)
#   make deps-test    ... and what the tests drive (scripts/deps.sh build test)
#   make deps-bench   ... and the benchmarks' anchors and load generators (build bench)
#   make build        Release build in build/release, the page included (also: debug, asan)
#   make lib          only the library (libweave.a, libweave.so) in build/release: no page, no Node
#   make test         deps-test, then format-check + release & asan unit tests + install
#                     test (+ integration/e2e): scripts/test.sh
#   make run          deps + build, then start the chapter's service (examples/chapter13) on :8000
#   make bench        deps-bench + build, every bench/run_*.sh
#   make bench-rt     the same for bench/run_rt.sh alone (any bench-<suite>)
#   make fuzz         deps-test, build (clang) and run every fuzzer for FUZZ_SECONDS each
#   make image        the container image (Dockerfile) with podman, else docker:
#                     IMAGE (weave-chapter13:latest), IMAGE_BUILD_FLAGS (e.g. --pull=never),
#                     BUILD_CA_FILE (CA certificates for npm behind a TLS-inspecting proxy)
#   make format       clang-format -i               make format-check
#   make install      PREFIX=/usr/local: make lib, then install the library, headers,
#                     weave.pc and the CMake package (runs ldconfig as root)
#   make clean

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

PREFIX       ?= /usr/local
comma        := ,
IMAGE        ?= weave-chapter13:latest
IMAGE_BUILD_FLAGS ?=
# npm's own setting on this host, if any: the image build trusts what npm here trusts
BUILD_CA_FILE ?= $(or $(NODE_EXTRA_CA_CERTS),$(shell npm config get cafile 2>/dev/null | grep '^/'))
FUZZ_SECONDS ?= 60
CMAKE        ?= cmake
GENERATOR    ?= Ninja

# Sources that clang-format owns (only directories that exist).
FORMAT_DIRS := $(wildcard src include tests bench examples fuzz)

.PHONY: deps deps-test deps-bench configure-release lib build debug asan test run bench fuzz \
	image format format-check install clean

deps:
	bash scripts/deps.sh build

deps-test:
	bash scripts/deps.sh build test

deps-bench:
	bash scripts/deps.sh build bench

# The unit tests and the integration test servers need cmocka, a test
# package: build/release builds them when cmocka is installed, so that
# `make run` and `make install` need the build packages only.
RELEASE_TESTS = $(shell pkg-config --exists cmocka 2>/dev/null && echo ON || echo OFF)

# Configure a build directory only when it has no build.ninja (build/release
# also when cmocka came or went since); after that, `cmake --build` re-runs
# CMake by itself when a CMakeLists.txt or a glob changes.
configure-release:
	@tests=$(RELEASE_TESTS); \
	if [ ! -f build/release/build.ninja ] || \
	    ! grep -qx "WEAVE_TESTS:BOOL=$$tests" build/release/CMakeCache.txt 2>/dev/null; then \
	    echo "$(CMAKE) -S . -B build/release -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Release -DWEAVE_TESTS:BOOL=$$tests"; \
	    $(CMAKE) -S . -B build/release -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Release \
	        -DWEAVE_TESTS:BOOL=$$tests; \
	fi

build/debug/build.ninja:
	$(CMAKE) -S . -B build/debug -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Debug

build/asan/build.ninja:
	CC=clang $(CMAKE) -S . -B build/asan -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Asan

build/fuzz/build.ninja:
	CC=clang $(CMAKE) -S . -B build/fuzz -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Asan \
	    -DWEAVE_FUZZ=ON -DWEAVE_TESTS=OFF -DWEAVE_BENCH=OFF

build: configure-release
	bash scripts/build_web.sh
	$(CMAKE) --build build/release

# The library targets alone: what `make install` installs, without the page.
lib: configure-release
	$(CMAKE) --build build/release --target weave_static weave_shared

debug: build/debug/build.ninja
	$(CMAKE) --build build/debug

asan: build/asan/build.ninja
	$(CMAKE) --build build/asan

test: deps-test
	bash scripts/test.sh

# The chapter's service on http://localhost:8000 (PORT, --help for the rest).
run: deps build
	@echo "running build/release/chapter13 (Ctrl-C stops it)"
	./build/release/chapter13 --web-dir examples/chapter13/web/dist --grpc-port 50051

bench: deps-bench build
	@found=0; \
	for s in bench/run_*.sh; do \
	    [ -e "$$s" ] || continue; found=1; \
	    echo "== $$s"; bash "$$s"; \
	done; \
	[ $$found = 1 ] || echo "no benchmark suites (bench/run_*.sh) yet"

bench-%: deps-bench build
	@[ -f bench/run_$*.sh ] || { echo "no such suite: bench/run_$*.sh" >&2; exit 1; }
	bash bench/run_$*.sh

# podman first (no daemon), else docker (with BuildKit, for the secret
# mount). podman builds in the Docker image format, whose HEALTHCHECK the OCI
# format would drop, and runs RUN steps with chroot isolation, which needs no
# nested cgroups (a CI container, a hybrid cgroup host).
image:
	@secret='$(if $(BUILD_CA_FILE),--secret id=ca$(comma)src=$(BUILD_CA_FILE))'; \
	if command -v podman >/dev/null 2>&1; then \
	    echo "podman build -t $(IMAGE) ."; \
	    podman build --format docker --isolation chroot $$secret $(IMAGE_BUILD_FLAGS) -t $(IMAGE) .; \
	elif command -v docker >/dev/null 2>&1; then \
	    echo "docker build -t $(IMAGE) ."; \
	    DOCKER_BUILDKIT=1 docker build $$secret $(IMAGE_BUILD_FLAGS) -t $(IMAGE) .; \
	else \
	    echo "make image: neither podman nor docker is installed (apt-get install podman)" >&2; exit 1; \
	fi

# Each fuzzer runs FUZZ_SECONDS. New corpus entries go to build/fuzz/corpus/<name>/
# (fuzz/corpus/<name>/ is read as the seed corpus and never written);
# crashes are written to build/fuzz/artifacts/.
fuzz: deps-test
	@shopt -s nullglob; srcs=(fuzz/fuzz_*.c); \
	if [ $${#srcs[@]} -eq 0 ]; then echo "no fuzz targets (fuzz/fuzz_*.c) yet"; exit 0; fi; \
	$(MAKE) --no-print-directory build/fuzz/build.ninja; \
	$(CMAKE) --build build/fuzz --target fuzzers; \
	mkdir -p build/fuzz/artifacts; \
	export ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=0; \
	export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1; \
	for src in "$${srcs[@]}"; do \
	    name=$$(basename "$$src" .c); \
	    corpus=(build/fuzz/corpus/$$name); mkdir -p "$${corpus[0]}"; \
	    if [ -d fuzz/corpus/$$name ]; then corpus+=(fuzz/corpus/$$name); fi; \
	    echo "== $$name for $(FUZZ_SECONDS)s, corpus: $${corpus[*]}"; \
	    ./build/fuzz/$$name -max_total_time=$(FUZZ_SECONDS) \
	        -artifact_prefix=build/fuzz/artifacts/$$name- "$${corpus[@]}"; \
	done

format:
	@files=$$( [ -z "$(FORMAT_DIRS)" ] || find $(FORMAT_DIRS) -type f \( -name '*.c' -o -name '*.h' \) | sort ); \
	if [ -n "$$files" ]; then clang-format -i $$files; fi

format-check:
	@files=$$( [ -z "$(FORMAT_DIRS)" ] || find $(FORMAT_DIRS) -type f \( -name '*.c' -o -name '*.h' \) | sort ); \
	if [ -n "$$files" ]; then clang-format --dry-run -Werror $$files; fi; \
	echo "format-check: $$(wc -w <<<"$$files") files ok"

# Only the library is built (no page, so no Node); as root, ldconfig lets
# programs find libweave.so under a system prefix such as /usr/local.
install: lib
	$(CMAKE) --install build/release --prefix $(PREFIX)
	@if [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

clean:
	rm -rf build
