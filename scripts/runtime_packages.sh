#!/usr/bin/env bash
# Print the Debian packages that hold the shared libraries a binary links
# directly (its DT_NEEDED entries), one per line: what the image's runtime
# stage installs (Dockerfile). apt brings their own dependencies.
#
#   scripts/runtime_packages.sh build/release/chapter13
set -euo pipefail

bin=${1:?usage: runtime_packages.sh BINARY}
[ -x "$bin" ] || {
    echo "runtime_packages: $bin is not an executable" >&2
    exit 1
}

# "libpq.so.5 => /lib/x86_64-linux-gnu/libpq.so.5 (0x...)": the sonames the
# binary names itself, resolved to their files by the dynamic loader.
needed=$(LC_ALL=C readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
[ -n "$needed" ] || {
    echo "runtime_packages: $bin links no shared library" >&2
    exit 1
}
ldd "$bin" | while read -r soname _ path _; do
    grep -qxF "$soname" <<<"$needed" || continue
    [ -e "$path" ] || {
        echo "runtime_packages: $soname is not found" >&2
        exit 1
    }
    # dpkg records a file under the path its package installed it to, which
    # after Debian's merged /usr may be either /lib/... or /usr/lib/...
    real=$(realpath "$path")
    for candidate in "$path" "$real" "/usr${real#/usr}" "${real#/usr}"; do
        if owner=$(dpkg -S "$candidate" 2>/dev/null); then
            echo "${owner%%:*}"
            continue 2
        fi
    done
    echo "runtime_packages: no package owns $path" >&2
    exit 1
done | sort -u
