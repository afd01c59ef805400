# Entry points for weave. A thin wrapper around CMake/CTest; logic lives in
# CMakeLists.txt and scripts/.
#
#   make deps         install the Debian packages the build needs (scripts/deps.sh)
#   make build        Release build in build/release   (also: debug, asan)
#   make test         format-check + release & asan unit tests + install test (+ integration/e2e)
#   make run          build and start the chapter's service (examples/chapter13) on :8000
#   make bench        every bench/run_*.sh          make bench-rt   just bench/run_rt.sh
#   make fuzz         build (clang) and run every fuzzer for FUZZ_SECONDS each
#   make format       clang-format -i               make format-check
#   make install      PREFIX=/usr/local
#   make clean

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c

PREFIX       ?= /usr/local
FUZZ_SECONDS ?= 60
CMAKE        ?= cmake
GENERATOR    ?= Ninja

# Sources that clang-format owns (only directories that exist).
FORMAT_DIRS := $(wildcard src include tests bench examples fuzz)

.PHONY: deps build debug asan test run bench fuzz format format-check install clean

deps:
	bash scripts/deps.sh

# Configure a build directory only when it has no build.ninja; after that,
# `cmake --build` re-runs CMake by itself when a CMakeLists.txt or a glob changes.
build/release/build.ninja:
	$(CMAKE) -S . -B build/release -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Release

build/debug/build.ninja:
	$(CMAKE) -S . -B build/debug -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Debug

build/asan/build.ninja:
	CC=clang $(CMAKE) -S . -B build/asan -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Asan

build/fuzz/build.ninja:
	CC=clang $(CMAKE) -S . -B build/fuzz -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Asan \
	    -DWEAVE_FUZZ=ON -DWEAVE_TESTS=OFF -DWEAVE_BENCH=OFF

build: build/release/build.ninja
	bash scripts/build_web.sh
	$(CMAKE) --build build/release

debug: build/debug/build.ninja
	$(CMAKE) --build build/debug

asan: build/asan/build.ninja
	$(CMAKE) --build build/asan

test: deps
	bash scripts/test.sh

# The chapter's service on http://localhost:8000 (PORT, --help for the rest).
run: deps build
	@echo "running build/release/chapter13 (Ctrl-C stops it)"
	./build/release/chapter13 --web-dir examples/chapter13/web/dist

bench: deps build
	@found=0; \
	for s in bench/run_*.sh; do \
	    [ -e "$$s" ] || continue; found=1; \
	    echo "== $$s"; bash "$$s"; \
	done; \
	[ $$found = 1 ] || echo "no benchmark suites (bench/run_*.sh) yet"

bench-%: deps build
	@[ -f bench/run_$*.sh ] || { echo "no such suite: bench/run_$*.sh" >&2; exit 1; }
	bash bench/run_$*.sh

# Each fuzzer runs FUZZ_SECONDS. New corpus entries go to build/fuzz/corpus/<name>/
# (fuzz/corpus/<name>/ is read as the seed corpus and never written);
# crashes are written to build/fuzz/artifacts/.
fuzz: deps
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

install: build
	$(CMAKE) --install build/release --prefix $(PREFIX)

clean:
	rm -rf build
