#!/usr/bin/env bash
# scripts/check_exports.sh <path-to-libweave.so>
#
# Fails (exit 1) when the shared library exports a symbol outside the public
# API, printing each one and the source file that defines it (when a grep of
# src/ finds it). Run by CTest as the test `exported_symbols`.
#
# Allowed:
#   - wv_<name>: the public API (include/weave/*.h). Not wv__<name>: the
#     double-underscore names are the library's internals;
#   - the wv__ names in ALLOWED_INTERNAL below, which public inline functions
#     in include/weave/*.h reference, so programs must be able to link them;
#   - what the toolchain adds to every shared object (TOOLCHAIN below).
# Everything else is a leak: a function or variable that is neither static
# nor declared after `#pragma GCC visibility push(hidden)` in a private header.
set -euo pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 <path-to-libweave.so>" >&2
    exit 2
fi
lib=$1
if [ ! -f "$lib" ]; then
    echo "check_exports: no such file: $lib" >&2
    exit 2
fi
src_dir=$(cd "$(dirname "$0")/../src" && pwd)

# Referenced by the inline counter/gauge updates of include/weave/metrics.h.
ALLOWED_INTERNAL=(
    wv__counter_inc_slow
    wv__gauge_add_slow
    wv__metrics_chunks
)
# Linker-defined symbols, not ours (GNU ld, gold, lld).
TOOLCHAIN=(
    _init _fini
    __bss_start _edata _end
)

declare -A allowed=()
for s in "${ALLOWED_INTERNAL[@]}" "${TOOLCHAIN[@]}"; do
    allowed[$s]=1
done

# Every defined dynamic symbol but the version definitions (type A, none
# today); nm -D prints "address type name", name@@VERSION when versioned.
symbols=$(nm -D --defined-only "$lib" | awk 'NF >= 3 && $2 != "A" { sub(/@.*/, "", $3); print $3 }')
if [ -z "$symbols" ]; then
    echo "check_exports: no dynamic symbols in $lib (not a shared library?)" >&2
    exit 2
fi

bad=0
while read -r sym; do
    if [[ $sym == wv_* && $sym != wv__* ]] || [ -n "${allowed[$sym]:-}" ]; then
        continue
    fi
    # The definition: the name at the start of a line or after a type, at
    # the start of a line (the project's style), followed by '(' or '[' or
    # ' =' or ';'. Cheap and approximate; "?" when not found.
    where=$(grep -rEl --include='*.c' --include='*.S' \
        "^([A-Za-z_].*[^A-Za-z0-9_])?\**${sym}(\(| *\[| *=| *;|:)" "$src_dir" 2>/dev/null |
        sed "s|^$src_dir/|src/|" | paste -sd ' ' - || true)
    echo "exported: $sym (defined in ${where:-?})"
    bad=$((bad + 1))
done <<<"$symbols"

if [ "$bad" -ne 0 ]; then
    echo "check_exports: $lib exports $bad symbol(s) outside the public API: make each" \
        "static, or declare it in its module's private header between" \
        "'#pragma GCC visibility push(hidden)' and 'pop'" >&2
    exit 1
fi
echo "check_exports: $(wc -l <<<"$symbols") exported symbols, all public API"
