#!/usr/bin/env bash
# Cross-architecture check: build the runtime and tests/cross/smoke.c for
# aarch64 and run it under qemu-user, so the aarch64 context switch is
# exercised on every `make test` (scripts/deps.sh test installs the toolchain).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=build/cross
mkdir -p "$out"
CC=${AARCH64_CC:-aarch64-linux-gnu-gcc}
"$CC" -std=c17 -D_GNU_SOURCE -O2 -g -Wall -Wextra -Werror -Iinclude -Isrc \
    src/rt/*.c src/rt/*.S tests/cross/smoke.c -lpthread -o "$out/smoke_aarch64"
echo "aarch64 smoke test under qemu-user:"
qemu-aarch64 -L /usr/aarch64-linux-gnu "$out/smoke_aarch64"
