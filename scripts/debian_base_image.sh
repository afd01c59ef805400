#!/usr/bin/env bash
# Make the Dockerfile's base image, docker.io/library/debian:bookworm-slim,
# without a registry: debootstrap a minimal bookworm from Debian's archive and
# import it under that name, trimmed the way Debian's own slim image is (no
# documentation, manual pages or translations, now or in what apt installs
# later; no apt lists or downloaded packages). For machines that reach
# Debian's archive but not Docker Hub (tests/deploy/test_image.sh, an
# air-gapped build host); `podman build --pull=never` then uses it.
#
#   scripts/debian_base_image.sh [podman|docker]     (default: podman if installed)
#   DEBIAN_MIRROR, DEBIAN_SECURITY_MIRROR   the archives (default: deb.debian.org's)
#
# Does nothing when the image exists; FORCE=1 makes it again. Needs root
# (debootstrap) and the debootstrap package.
set -euo pipefail

NAME=docker.io/library/debian:bookworm-slim
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
tool=${1:-}
if [ -z "$tool" ]; then
    if command -v podman >/dev/null 2>&1; then tool=podman; else tool=docker; fi
fi

if [ "${FORCE:-0}" != 1 ] && $tool image inspect "$NAME" >/dev/null 2>&1; then
    exit 0
fi
command -v debootstrap >/dev/null 2>&1 || {
    echo "debian_base_image: debootstrap is not installed (apt-get install debootstrap)" >&2
    exit 1
}

root=$(mktemp -d /tmp/weave-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debian_base_image: debootstrap bookworm into $root"
debootstrap --variant=minbase bookworm "$root" "$MIRROR" >"$root.log" 2>&1 || {
    tail -n 20 "$root.log" >&2
    rm -f "$root.log"
    echo "debian_base_image: debootstrap failed" >&2
    exit 1
}
rm -f "$root.log"

# What Debian's slim variant leaves out, for this image and for every
# package installed on top of it (the copyright files stay).
cat >"$root/etc/dpkg/dpkg.cfg.d/docker-slim" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/groff/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
CFG
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/{man,info,groff,lintian,linda}/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
# the archive the image's apt uses: the one debootstrap used
echo "deb $MIRROR bookworm main" >"$root/etc/apt/sources.list"
echo "deb $MIRROR bookworm-updates main" >>"$root/etc/apt/sources.list"
echo "deb $SECURITY_MIRROR bookworm-security main" >>"$root/etc/apt/sources.list"

tar -C "$root" -c . | $tool import --change 'CMD ["bash"]' - "$NAME" >/dev/null
echo "debian_base_image: $NAME ($($tool image inspect --format '{{.Size}}' "$NAME") bytes)"
